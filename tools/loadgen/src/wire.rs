//! Clients on the wire, for what tokio-tungstenite cannot be: a WebSocket
//! client that offers permessage-deflate (tungstenite refuses RSV1 frames)
//! and a Server-Sent Events client. Both are raw sockets with a hand-written
//! handshake, and count the bytes that cross the wire.

use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use flate2::{Decompress, FlushDecompress};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Utf8Bytes;
use tokio_tungstenite::tungstenite::http::Uri;

use crate::shared::{Target, Ws, connect_ws_url};

/// Which client a load test uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum ClientKind {
    /// tokio-tungstenite, no extension offered.
    Ws,
    /// The raw WebSocket client below, no extension offered (the
    /// same client code as `deflate`, and it counts its bytes).
    Plain,
    /// A raw WebSocket client offering permessage-deflate.
    Deflate,
    /// A raw Server-Sent Events client (`GET /sse`).
    Sse,
}

/// One connected client of any kind.
pub(crate) enum Client {
    Ws(Box<Ws>),
    Raw(Box<RawClient>),
}

impl Client {
    /// Connects and subscribes to `tour` (`*` for every tour); returns once
    /// the snapshot has arrived.
    pub(crate) async fn subscribed(
        kind: ClientKind,
        target: &Target,
        url: &str,
        tour: &str,
    ) -> Result<Self> {
        use futures_util::SinkExt as _;
        match kind {
            ClientKind::Ws => {
                let mut ws = connect_ws_url(target, url).await?;
                crate::shared::next_text(&mut ws)
                    .await
                    .context("the greeting")?;
                let request = serde_json::json!({"type": "subscribe", "tourId": tour});
                ws.send(tokio_tungstenite::tungstenite::Message::text(
                    request.to_string(),
                ))
                .await?;
                let mut client = Client::Ws(Box::new(ws));
                client.until_snapshot().await?;
                Ok(client)
            }
            ClientKind::Plain | ClientKind::Deflate => {
                let deflate = kind == ClientKind::Deflate;
                let mut raw = RawClient::websocket(target, url, deflate).await?;
                raw.next_text().await.context("the greeting")?;
                let request = serde_json::json!({"type": "subscribe", "tourId": tour});
                raw.send_text(&request.to_string()).await?;
                let mut client = Client::Raw(Box::new(raw));
                client.until_snapshot().await?;
                Ok(client)
            }
            ClientKind::Sse => {
                let raw = RawClient::sse(target, &format!("/sse?tours={tour}")).await?;
                let mut client = Client::Raw(Box::new(raw));
                client.until_snapshot().await?;
                Ok(client)
            }
        }
    }

    async fn until_snapshot(&mut self) -> Result<()> {
        loop {
            let text = self.next_text().await?;
            if text.contains(r#""type":"snapshot""#) {
                // Count what follows the snapshot only.
                if let Client::Raw(raw) = self {
                    raw.wire_bytes = raw.buffered.len() as u64;
                }
                return Ok(());
            }
            if text.starts_with(r#"{"type":"error""#) {
                bail!("subscribe refused: {text}");
            }
        }
    }

    /// The next text message (a JSON server message).
    pub(crate) async fn next_text(&mut self) -> Result<Utf8Bytes> {
        match self {
            Client::Ws(ws) => crate::shared::next_text(ws).await,
            Client::Raw(raw) => raw.next_text().await.map(Utf8Bytes::from),
        }
    }

    /// Bytes received on the wire so far (raw clients only).
    pub(crate) fn wire_bytes(&self) -> Option<u64> {
        match self {
            Client::Ws(_) => None,
            Client::Raw(raw) => Some(raw.wire_bytes),
        }
    }
}

enum Protocol {
    WebSocket {
        inflater: Option<Decompress>,
    },
    /// Bytes of the chunked body still to read in the current chunk.
    Sse {
        chunk_left: usize,
        text: String,
    },
}

/// A raw client: WebSocket (optionally with deflate) or SSE.
pub(crate) struct RawClient {
    socket: TcpStream,
    buffered: Vec<u8>,
    protocol: Protocol,
    /// Bytes read off the socket after the handshake.
    pub(crate) wire_bytes: u64,
    /// Whether the last message came compressed.
    pub(crate) last_compressed: bool,
}

async fn open(target: &Target, request: String) -> Result<(TcpStream, Vec<u8>, String)> {
    let mut socket = TcpStream::connect(target.addr)
        .await
        .context("TCP connect")?;
    socket.set_nodelay(true)?;
    socket.write_all(request.as_bytes()).await?;
    let mut buffered = Vec::new();
    let end = loop {
        if let Some(end) = buffered.windows(4).position(|w| w == b"\r\n\r\n") {
            break end;
        }
        let mut chunk = [0u8; 4096];
        let n = socket.read(&mut chunk).await?;
        if n == 0 {
            bail!("closed during the handshake");
        }
        buffered.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buffered[..end]).to_string();
    buffered.drain(..end + 4);
    Ok((socket, buffered, head))
}

impl RawClient {
    /// A WebSocket handshake on `url`'s path, offering deflate if asked.
    pub(crate) async fn websocket(target: &Target, url: &str, deflate: bool) -> Result<Self> {
        let uri: Uri = url.parse()?;
        let path = uri.path_and_query().map_or("/ws", |p| p.as_str());
        let offer = if deflate {
            "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
        } else {
            ""
        };
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
             Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{offer}\r\n",
            target.addr
        );
        let (socket, buffered, head) = open(target, request).await?;
        if !head.starts_with("HTTP/1.1 101") {
            bail!("handshake refused: {}", head.lines().next().unwrap_or(""));
        }
        let agreed = head.to_ascii_lowercase().contains("permessage-deflate");
        if deflate && !agreed {
            bail!("the server did not agree to permessage-deflate");
        }
        Ok(RawClient {
            socket,
            wire_bytes: buffered.len() as u64,
            buffered,
            protocol: Protocol::WebSocket {
                inflater: agreed.then(|| Decompress::new(false)),
            },
            last_compressed: false,
        })
    }

    /// An event stream: `GET {path}`.
    pub(crate) async fn sse(target: &Target, path: &str) -> Result<Self> {
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nAccept: text/event-stream\r\n\r\n",
            target.addr
        );
        let (socket, buffered, head) = open(target, request).await?;
        if !head.starts_with("HTTP/1.1 200") {
            bail!("stream refused: {}", head.lines().next().unwrap_or(""));
        }
        Ok(RawClient {
            socket,
            wire_bytes: buffered.len() as u64,
            buffered,
            protocol: Protocol::Sse {
                chunk_left: 0,
                text: String::new(),
            },
            last_compressed: false,
        })
    }

    async fn fill(&mut self) -> Result<()> {
        let mut chunk = [0u8; 16 * 1024];
        let n = self.socket.read(&mut chunk).await?;
        if n == 0 {
            bail!("connection ended");
        }
        self.wire_bytes += n as u64;
        self.buffered.extend_from_slice(&chunk[..n]);
        Ok(())
    }

    /// Sends a text message (masked, uncompressed).
    pub(crate) async fn send_text(&mut self, text: &str) -> Result<()> {
        self.send_frame(0x1, text.as_bytes()).await
    }

    async fn send_frame(&mut self, opcode: u8, payload: &[u8]) -> Result<()> {
        let mask = [0x5a, 0x11, 0x72, 0x03];
        let mut frame = vec![0x80 | opcode];
        match payload.len() {
            n @ 0..=125 => frame.push(0x80 | n as u8),
            n => {
                frame.push(0x80 | 126);
                frame.extend_from_slice(&(n as u16).to_be_bytes());
            }
        }
        frame.extend_from_slice(&mask);
        frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        self.socket.write_all(&frame).await?;
        Ok(())
    }

    /// The next text message: an inflated WebSocket text frame, or an event's `data:`.
    pub(crate) async fn next_text(&mut self) -> Result<String> {
        if matches!(self.protocol, Protocol::Sse { .. }) {
            return self.next_event().await;
        }
        loop {
            let Some((fin, rsv1, opcode, payload)) = self.parse_frame() else {
                self.fill().await?;
                continue;
            };
            match opcode {
                0x1 if fin => {
                    self.last_compressed = rsv1;
                    let bytes = if rsv1 {
                        self.inflate(&payload)?
                    } else {
                        payload
                    };
                    return String::from_utf8(bytes).context("UTF-8");
                }
                0x8 => bail!("closed by server: {payload:?}"),
                0x9 => self.send_frame(0xA, &payload).await?,
                0x1 | 0x0 => bail!("fragmented server messages are not expected"),
                _ => {}
            }
        }
    }

    fn parse_frame(&mut self) -> Option<(bool, bool, u8, Vec<u8>)> {
        let b = &self.buffered;
        if b.len() < 2 {
            return None;
        }
        let (len, header) = match b[1] & 0x7F {
            126 => (
                u16::from_be_bytes(b.get(2..4)?.try_into().ok()?) as usize,
                4,
            ),
            127 => (
                u64::from_be_bytes(b.get(2..10)?.try_into().ok()?) as usize,
                10,
            ),
            n => (n as usize, 2),
        };
        let payload = b.get(header..header + len)?.to_vec();
        let (fin, rsv1, opcode) = (b[0] & 0x80 != 0, b[0] & 0x40 != 0, b[0] & 0x0F);
        self.buffered.drain(..header + len);
        Some((fin, rsv1, opcode, payload))
    }

    fn inflate(&mut self, compressed: &[u8]) -> Result<Vec<u8>> {
        let Protocol::WebSocket {
            inflater: Some(inflater),
        } = &mut self.protocol
        else {
            bail!("a compressed frame without the extension");
        };
        // The server agreed no context takeover: each message on its own.
        inflater.reset(false);
        let mut input = compressed.to_vec();
        input.extend_from_slice(&[0, 0, 0xFF, 0xFF]);
        let mut out = Vec::with_capacity(input.len() * 8 + 256);
        loop {
            let at = inflater.total_in() as usize;
            inflater.decompress_vec(&input[at..], &mut out, FlushDecompress::Sync)?;
            if inflater.total_in() as usize == input.len() && out.len() < out.capacity() {
                return Ok(out);
            }
            out.reserve(out.capacity());
        }
    }

    /// The next SSE event's data, from the chunked body.
    async fn next_event(&mut self) -> Result<String> {
        loop {
            // Move decoded chunk bytes into `text`.
            loop {
                let Protocol::Sse { chunk_left, text } = &mut self.protocol else {
                    unreachable!("an event stream")
                };
                if *chunk_left > 0 {
                    let take = (*chunk_left).min(self.buffered.len());
                    text.push_str(&String::from_utf8_lossy(&self.buffered[..take]));
                    self.buffered.drain(..take);
                    *chunk_left -= take;
                    if *chunk_left > 0 {
                        break;
                    }
                    // The CRLF after the chunk, once it is there.
                    if self.buffered.len() < 2 {
                        *chunk_left = 0;
                        break;
                    }
                    self.buffered.drain(..2);
                    continue;
                }
                let Some(end) = self.buffered.windows(2).position(|w| w == b"\r\n") else {
                    break;
                };
                let size = String::from_utf8_lossy(&self.buffered[..end]).to_string();
                if size.is_empty() {
                    // A chunk's trailing CRLF that arrived late.
                    self.buffered.drain(..2);
                    continue;
                }
                let size = usize::from_str_radix(size.trim(), 16).context("chunk size")?;
                if size == 0 {
                    bail!("the stream ended");
                }
                self.buffered.drain(..end + 2);
                *chunk_left = size;
            }
            let Protocol::Sse { text, .. } = &mut self.protocol else {
                unreachable!("an event stream")
            };
            if let Some(end) = text.find("\n\n") {
                let block: String = text.drain(..end + 2).collect();
                if let Some(data) = block.lines().find_map(|l| l.strip_prefix("data: ")) {
                    return Ok(data.to_string());
                }
                continue;
            }
            tokio::time::timeout(Duration::from_secs(60), self.fill())
                .await
                .context("waiting for an event")??;
        }
    }
}

/// `loadgen wire`: the bytes a `"*"` snapshot takes on the wire, with and
/// without permessage-deflate.
#[derive(Debug, clap::Args)]
pub(crate) struct WireArgs {
    /// WebSocket URL of the gateway (loopback only).
    #[arg(long, default_value = "ws://127.0.0.1:8080/ws")]
    url: String,
}

pub(crate) async fn wire(args: WireArgs) -> Result<()> {
    let target = Target::parse(&args.url)?;
    for deflate in [false, true] {
        let mut raw = RawClient::websocket(&target, &args.url, deflate).await?;
        raw.next_text().await?;
        raw.send_text(r#"{"type":"subscribe","tourId":"*"}"#)
            .await?;
        let before = raw.wire_bytes - raw.buffered.len() as u64;
        let (mut text_bytes, mut tours, mut parts, mut compressed) =
            (0usize, 0usize, 0usize, 0usize);
        loop {
            let text = raw.next_text().await?;
            let message: serde_json::Value = serde_json::from_str(&text)?;
            if message["type"] != "snapshot" {
                continue;
            }
            text_bytes += text.len();
            parts += 1;
            compressed += usize::from(raw.last_compressed);
            tours += message["tours"].as_array().map_or(0, Vec::len);
            if message["part"] == message["parts"] {
                break;
            }
        }
        let on_wire = raw.wire_bytes - raw.buffered.len() as u64 - before;
        println!(
            "  snapshot of {tours} tours, {}: {on_wire} bytes on the wire for {text_bytes} bytes of JSON in {parts} parts ({compressed} compressed), {:.3} of the JSON",
            if deflate {
                "permessage-deflate"
            } else {
                "plain"
            },
            on_wire as f64 / text_bytes.max(1) as f64
        );
    }
    Ok(())
}
