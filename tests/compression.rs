//! permessage-deflate (RFC 7692) against a raw socket: a handshake written
//! by hand, frames read byte by byte (RSV1 included), and flate2 as the
//! client's inflater, so nothing of the gateway's own WebSocket code is on
//! the client side.
//!
//! - deflate is negotiated with `server_no_context_takeover` (and
//!   `client_no_context_takeover`), only with clients that offer it;
//! - a large message arrives compressed and inflates to exactly the JSON a
//!   client without the extension receives; small ones arrive plain;
//! - compressed client frames are understood;
//! - a frame that would inflate past `MAX_FRAME_BYTES` is closed with 1009,
//!   and a compressed frame without the extension with 1002.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use common::{TestServer, updated};

/// One frame as read off the wire.
#[derive(Debug)]
struct WireFrame {
    rsv1: bool,
    opcode: u8,
    payload: Vec<u8>,
}

struct RawClient {
    socket: TcpStream,
    buffered: Vec<u8>,
    /// The response's `Sec-WebSocket-Extensions`, if any.
    extensions: Option<String>,
}

impl RawClient {
    async fn connect(addr: SocketAddr, offer: Option<&str>) -> Self {
        let mut socket = TcpStream::connect(addr).await.expect("connect");
        let mut request = format!(
            "GET /ws HTTP/1.1\r\nHost: {addr}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
             Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        );
        if let Some(offer) = offer {
            request.push_str(&format!("Sec-WebSocket-Extensions: {offer}\r\n"));
        }
        request.push_str("\r\n");
        socket.write_all(request.as_bytes()).await.expect("write");
        let mut buffered = Vec::new();
        let end = loop {
            if let Some(end) = buffered.windows(4).position(|w| w == b"\r\n\r\n") {
                break end;
            }
            let mut chunk = [0u8; 4096];
            let n = socket.read(&mut chunk).await.expect("read");
            assert!(n > 0, "closed during the handshake");
            buffered.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buffered[..end]).to_string();
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        assert!(
            head.contains("sec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
            "{head}"
        );
        let extensions = head
            .lines()
            .find_map(|line| line.strip_prefix("sec-websocket-extensions: "))
            .map(str::to_string);
        buffered.drain(..end + 4);
        RawClient {
            socket,
            buffered,
            extensions,
        }
    }

    async fn frame(&mut self) -> WireFrame {
        tokio::time::timeout(Duration::from_secs(5), self.read_frame())
            .await
            .expect("a frame within 5 s")
    }

    async fn read_frame(&mut self) -> WireFrame {
        loop {
            if let Some((frame, used)) = parse(&self.buffered) {
                self.buffered.drain(..used);
                return frame;
            }
            let mut chunk = [0u8; 65536];
            let n = self.socket.read(&mut chunk).await.expect("read");
            assert!(n > 0, "the server closed the socket");
            self.buffered.extend_from_slice(&chunk[..n]);
        }
    }

    /// The next text message's JSON, inflated when RSV1 says so; with
    /// whether it came compressed.
    async fn message(&mut self) -> (Value, bool) {
        loop {
            let frame = self.frame().await;
            if frame.opcode == 0x1 {
                let text = if frame.rsv1 {
                    inflate(&frame.payload)
                } else {
                    frame.payload
                };
                return (serde_json::from_slice(&text).expect("JSON"), frame.rsv1);
            }
        }
    }

    async fn send(&mut self, opcode: u8, rsv1: bool, payload: &[u8]) {
        let mask = [7u8, 1, 2, 9];
        let mut frame = vec![0x80 | if rsv1 { 0x40 } else { 0 } | opcode];
        match payload.len() {
            n @ 0..=125 => frame.push(0x80 | n as u8),
            n if n <= 0xFFFF => {
                frame.push(0x80 | 126);
                frame.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                frame.push(0x80 | 127);
                frame.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        frame.extend_from_slice(&mask);
        frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        self.socket.write_all(&frame).await.expect("write");
    }

    /// The close frame's code, skipping whatever comes before it.
    async fn close_code(&mut self) -> u16 {
        loop {
            let frame = self.frame().await;
            if frame.opcode == 0x8 {
                return u16::from_be_bytes([frame.payload[0], frame.payload[1]]);
            }
        }
    }
}

/// A server frame (unmasked) and the bytes it used, once complete.
fn parse(bytes: &[u8]) -> Option<(WireFrame, usize)> {
    if bytes.len() < 2 {
        return None;
    }
    let (len, header) = match bytes[1] & 0x7F {
        126 => (
            u16::from_be_bytes(bytes.get(2..4)?.try_into().ok()?) as usize,
            4,
        ),
        127 => (
            u64::from_be_bytes(bytes.get(2..10)?.try_into().ok()?) as usize,
            10,
        ),
        n => (n as usize, 2),
    };
    assert_eq!(bytes[1] & 0x80, 0, "server frames are not masked");
    let payload = bytes.get(header..header + len)?.to_vec();
    Some((
        WireFrame {
            rsv1: bytes[0] & 0x40 != 0,
            opcode: bytes[0] & 0x0F,
            payload,
        },
        header + len,
    ))
}

/// RFC 7692 §7.2.2: append 00 00 FF FF and inflate, with no context kept.
fn inflate(compressed: &[u8]) -> Vec<u8> {
    let mut input = compressed.to_vec();
    input.extend_from_slice(&[0, 0, 0xFF, 0xFF]);
    let mut inflater = Decompress::new(false);
    let mut out = Vec::with_capacity(input.len() * 20 + 1024);
    loop {
        let at = inflater.total_in() as usize;
        inflater
            .decompress_vec(&input[at..], &mut out, FlushDecompress::Sync)
            .expect("valid deflate data");
        if inflater.total_in() as usize == input.len() && out.len() < out.capacity() {
            return out;
        }
        out.reserve(out.capacity());
    }
}

/// A client's compressed message: deflate, sync flush, tail removed.
fn deflate(payload: &[u8]) -> Vec<u8> {
    let mut compressor = Compress::new(Compression::default(), false);
    let mut out = Vec::with_capacity(payload.len() + 64);
    compressor
        .compress_vec(payload, &mut out, FlushCompress::Sync)
        .expect("compress");
    assert!(out.ends_with(&[0, 0, 0xFF, 0xFF]));
    out.truncate(out.len() - 4);
    out
}

/// A server with 200 tours, so that a `"*"` snapshot is large.
async fn server_with_tours() -> TestServer {
    let server = TestServer::start().await;
    for i in 0..200 {
        server
            .engine
            .apply(updated(&format!("tour_{i:03}"), 10 + i % 7));
    }
    server
}

const OFFER: &str = "permessage-deflate; client_max_window_bits";

#[tokio::test]
async fn deflate_is_agreed_with_no_context_takeover_only_when_offered() {
    let server = TestServer::start().await;
    let offered = RawClient::connect(server.addr, Some(OFFER)).await;
    assert_eq!(
        offered.extensions.as_deref(),
        Some("permessage-deflate; server_no_context_takeover; client_no_context_takeover")
    );
    let narrow = RawClient::connect(
        server.addr,
        Some("permessage-deflate; server_max_window_bits=10"),
    )
    .await;
    assert!(
        narrow
            .extensions
            .as_deref()
            .is_some_and(|e| e.ends_with("server_max_window_bits=10")),
        "{:?}",
        narrow.extensions
    );
    let unknown = RawClient::connect(server.addr, Some("x-webkit-deflate-frame")).await;
    assert_eq!(unknown.extensions, None);
    let plain = RawClient::connect(server.addr, None).await;
    assert_eq!(plain.extensions, None);
    server.stop().await;
}

#[tokio::test]
async fn large_messages_come_compressed_and_inflate_to_what_plain_clients_get() {
    let server = server_with_tours().await;
    let mut compressed = RawClient::connect(server.addr, Some(OFFER)).await;
    let mut other = RawClient::connect(server.addr, Some(OFFER)).await;
    let mut plain = RawClient::connect(server.addr, None).await;
    for client in [&mut compressed, &mut other, &mut plain] {
        let (hello, _) = client.message().await;
        assert_eq!(hello["type"], "connection");
    }
    // The greeting is small: plain even where deflate was agreed.
    let subscribe = json!({"type": "subscribe", "tourId": "*", "requestId": "s"}).to_string();
    for client in [&mut compressed, &mut other, &mut plain] {
        client.send(0x1, false, subscribe.as_bytes()).await;
        let (ack, was_compressed) = client.message().await;
        assert_eq!(ack["type"], "subscribed");
        assert!(
            !was_compressed,
            "a {}-byte ack goes plain",
            ack.to_string().len()
        );
    }
    let (mut deflated, was_compressed) = compressed.message().await;
    assert!(was_compressed, "the snapshot is compressed");
    let (mut raw, was_plain) = plain.message().await;
    assert!(!was_plain);
    assert_eq!(deflated["type"], "snapshot");
    // Each snapshot is stamped when it is taken; the rest is the same.
    deflated["timestamp"] = Value::Null;
    raw["timestamp"] = Value::Null;
    assert!(
        deflated == raw,
        "inflates to exactly the plain client's JSON"
    );

    // A live event, small: plain for everyone.
    server.engine.apply(updated("tour_007", 1));
    let (event, was_compressed) = compressed.message().await;
    assert_eq!(event["type"], "tour.availability.updated");
    assert!(!was_compressed, "{event}");
    let (mut other_snapshot, was_compressed) = other.message().await;
    other_snapshot["timestamp"] = Value::Null;
    assert!(was_compressed && other_snapshot == raw);
    server.stop().await;
}

#[tokio::test]
async fn compressed_client_frames_are_understood_fragmented_or_not() {
    let server = TestServer::start().await;
    let mut client = RawClient::connect(server.addr, Some(OFFER)).await;
    client.message().await;
    let ping = json!({"type": "ping", "requestId": "deflated-ping"}).to_string();
    client.send(0x1, true, &deflate(ping.as_bytes())).await;
    let (pong, _) = client.message().await;
    assert_eq!(pong["type"], "pong");
    assert_eq!(pong["requestId"], "deflated-ping");
    // In two fragments: RSV1 on the first only.
    let subscribe = deflate(
        json!({"type": "subscribe", "tourId": "tour_paris"})
            .to_string()
            .as_bytes(),
    );
    let (head, tail) = subscribe.split_at(subscribe.len() / 2);
    // Not final, RSV1, text; then a final continuation. A zero mask.
    let mask = [0u8; 4];
    let mut frame = vec![0x41, 0x80 | head.len() as u8];
    frame.extend_from_slice(&mask);
    frame.extend_from_slice(head);
    frame.push(0x80);
    frame.push(0x80 | tail.len() as u8);
    frame.extend_from_slice(&mask);
    frame.extend_from_slice(tail);
    client.socket.write_all(&frame).await.expect("write");
    let (ack, _) = client.message().await;
    assert_eq!(ack["type"], "subscribed", "{ack}");
    server.stop().await;
}

#[tokio::test]
async fn a_decompression_bomb_is_closed_with_1009_and_rsv1_without_deflate_with_1002() {
    // MAX_FRAME_BYTES is 64 KiB in the tests.
    let server = TestServer::start().await;
    let mut client = RawClient::connect(server.addr, Some(OFFER)).await;
    client.message().await;
    let bomb = deflate(&vec![b' '; 16 << 20]);
    assert!(bomb.len() < 64 * 1024, "{} bytes on the wire", bomb.len());
    client.send(0x1, true, &bomb).await;
    assert_eq!(client.close_code().await, 1009);

    let mut plain = RawClient::connect(server.addr, None).await;
    plain.message().await;
    plain
        .send(0x1, true, &deflate(b"{\"type\":\"ping\"}"))
        .await;
    assert_eq!(plain.close_code().await, 1002);
    server.stop().await;
}
