//! WebSocket (RFC 6455), with permessage-deflate (RFC 7692), over an
//! upgraded HTTP/1.1 connection.
//!
//! What is WebSocket's alone lives here: the upgrade ([`upgrade`]), the
//! framing ([`frame`]), compression ([`deflate`]), pings and the pongs that
//! prove liveness, fragmented client messages, the close handshake, the
//! close codes each [`CloseReason`] is sent as, and telling a client's
//! broken framing (answered with a close code) from the network going
//! away.
//!
//! Hand-written, on evidence (the closing note of issue 21 has the
//! comparison): no maintained Rust WebSocket library both accepts
//! compressed client frames and lets the server send bytes it compressed
//! once for many connections (tungstenite refuses RSV1; the libraries with
//! deflate compress per connection). It passes the Autobahn testsuite's
//! fuzzing client (`tools/autobahn`).
//!
//! An idle connection holds no buffer: reads go through one buffer per
//! worker thread, and only bytes of an unfinished frame are kept; the
//! write buffer is freed once written.

pub mod deflate;
pub mod frame;
pub mod upgrade;

use std::cell::RefCell;
use std::future::poll_fn;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt as _, ReadBuf};

use super::{ClientFrame, Ending, Transport, TransportKind};
use crate::hub::CloseReason;
use crate::protocol::frame::Frame;
use deflate::{Agreement, InflateError};

/// Keep-alive pings that may go unanswered before the connection is closed.
const MAX_MISSED_PONGS: u8 = 2;
/// How long the client's answer to our close frame may take.
const CLOSE_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(1);
/// Queued bytes past which `feed` writes before the batch's flush.
const WRITE_AT_BYTES: usize = 64 * 1024;
/// The per-thread read buffer.
const READ_CHUNK: usize = 16 * 1024;

/// permessage-deflate settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Compression {
    /// Messages shorter than this go plain (`COMPRESSION_MIN_BYTES`).
    pub min_bytes: usize,
    /// The deflate level, 1 (fast) to 9 (small) (`COMPRESSION_LEVEL`).
    pub level: u32,
}

/// What every WebSocket connection of a server shares.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The largest client message, compressed or inflated; past it the
    /// connection is closed with 1009.
    pub max_message_bytes: usize,
    /// How long a close frame (and a ping) may wait for the client to read.
    pub write_timeout: Duration,
    /// permessage-deflate, when offered; `None`: never negotiated.
    pub compression: Option<Compression>,
}

/// A message being reassembled from its fragments.
struct Partial {
    text: bool,
    compressed: bool,
    data: Vec<u8>,
}

/// What one parsed frame amounted to.
enum Parsed {
    /// A whole client message.
    Message(ClientFrame),
    /// A ping, a pong, or a fragment: nothing for the session yet.
    Nothing,
    /// The client's close frame (answered, unless we closed first).
    PeerClosed,
    /// The buffered bytes hold no whole frame.
    NeedMore,
}

thread_local! {
    /// Every connection of a worker thread reads through this buffer, so
    /// that a silent socket holds none.
    static READ_BUFFER: RefCell<Box<[u8]>> = RefCell::new(vec![0; READ_CHUNK].into_boxed_slice());
}

/// An upgraded WebSocket connection over `S`.
pub struct WebSocketTransport<S> {
    io: S,
    settings: Arc<Settings>,
    /// permessage-deflate, when negotiated.
    deflate: Option<Agreement>,
    /// Received bytes not yet parsed (an unfinished frame).
    inbound: Vec<u8>,
    /// A fragmented message in progress.
    message: Option<Box<Partial>>,
    /// Bytes to write, from `written` on.
    out: Vec<u8>,
    written: usize,
    /// Pings sent since the client last sent anything.
    missed_pongs: u8,
    /// A close frame went out (ours, or the echo of the client's).
    close_sent: bool,
    /// The client's close frame came (valid or not): after ours, nothing
    /// is left to wait for, and the server drops the TCP connection.
    close_received: bool,
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> WebSocketTransport<S> {
    /// A connection on `io`, upgraded already, with `deflate` as agreed.
    pub fn new(io: S, settings: Arc<Settings>, deflate: Option<Agreement>) -> Self {
        WebSocketTransport {
            io,
            settings,
            deflate,
            inbound: Vec::new(),
            message: None,
            out: Vec::new(),
            written: 0,
            missed_pongs: 0,
            close_sent: false,
            close_received: false,
        }
    }

    /// Whether permessage-deflate was negotiated.
    pub fn compressing(&self) -> bool {
        self.deflate.is_some()
    }

    /// Writes what `out` holds. Safe to cancel: what was written is
    /// remembered, and the rest goes out first on the next write.
    async fn write_out(&mut self) -> Result<(), Ending> {
        while self.written < self.out.len() {
            match self.io.write(&self.out[self.written..]).await {
                Ok(0) | Err(_) => return Err(Ending::Lost),
                Ok(n) => self.written += n,
            }
        }
        // Freed rather than kept: an idle connection holds no buffer.
        self.out = Vec::new();
        self.written = 0;
        Ok(())
    }

    /// Reads what the socket has into `inbound`, through the thread's buffer.
    async fn read_more(&mut self) -> Result<(), Ending> {
        let io = &mut self.io;
        let inbound = &mut self.inbound;
        poll_fn(|cx| {
            READ_BUFFER.with(|buffer| {
                let mut buffer = buffer.borrow_mut();
                let mut read = ReadBuf::new(&mut buffer[..]);
                match Pin::new(&mut *io).poll_read(cx, &mut read) {
                    Poll::Pending => Poll::Pending,
                    Poll::Ready(Err(_)) => Poll::Ready(Err(Ending::Lost)),
                    Poll::Ready(Ok(())) if read.filled().is_empty() => {
                        Poll::Ready(Err(Ending::Lost))
                    }
                    Poll::Ready(Ok(())) => {
                        inbound.extend_from_slice(read.filled());
                        Poll::Ready(Ok(()))
                    }
                }
            })
        })
        .await
    }

    /// Parses the next frame in `inbound`, checking everything RFC 6455
    /// and 7692 ask of a client's frames.
    fn parse_one(&mut self) -> Result<Parsed, CloseReason> {
        let Some(header) = frame::parse(&self.inbound) else {
            return Ok(Parsed::NeedMore);
        };
        let limit = self.settings.max_message_bytes;
        let Some(mask) = header.mask else {
            return Err(CloseReason::ProtocolError);
        };
        if header.rsv23 {
            return Err(CloseReason::ProtocolError);
        }
        if header.is_control() {
            let known = matches!(header.opcode, frame::CLOSE | frame::PING | frame::PONG);
            if !known || !header.fin || header.rsv1 || header.payload_len > 125 {
                return Err(CloseReason::ProtocolError);
            }
        } else {
            let continuation = header.opcode == frame::CONTINUATION;
            let known = matches!(
                header.opcode,
                frame::CONTINUATION | frame::TEXT | frame::BINARY
            );
            let compressed_ok = !header.rsv1 || (self.deflate.is_some() && !continuation);
            if !known || !compressed_ok || continuation != self.message.is_some() {
                return Err(CloseReason::ProtocolError);
            }
            let so_far = self.message.as_ref().map_or(0, |m| m.data.len());
            if header.payload_len > (limit - so_far.min(limit)) as u64 {
                // Refused from the header: the payload is never buffered.
                return Err(CloseReason::FrameTooLarge);
            }
        }
        let end = header.len + header.payload_len as usize;
        if self.inbound.len() < end {
            return Ok(Parsed::NeedMore);
        }
        frame::unmask(&mut self.inbound[header.len..end], mask);
        let payload: Vec<u8> = if end == self.inbound.len() {
            let mut whole = std::mem::take(&mut self.inbound);
            whole.drain(..header.len);
            whole
        } else {
            let payload = self.inbound[header.len..end].to_vec();
            self.inbound.drain(..end);
            payload
        };
        match header.opcode {
            frame::PING => {
                frame::write_frame(&mut self.out, frame::PONG, false, &payload);
                Ok(Parsed::Nothing)
            }
            frame::PONG => Ok(Parsed::Nothing),
            frame::CLOSE => {
                self.close_received = true;
                let code = close_payload_code(&payload)?;
                if !self.close_sent {
                    let echo = code.map(u16::to_be_bytes);
                    frame::write_frame(
                        &mut self.out,
                        frame::CLOSE,
                        false,
                        echo.as_ref().map_or(&[][..], |c| &c[..]),
                    );
                    self.close_sent = true;
                }
                Ok(Parsed::PeerClosed)
            }
            opcode => {
                let partial = self.message.get_or_insert_with(|| {
                    Box::new(Partial {
                        text: opcode == frame::TEXT,
                        compressed: header.rsv1,
                        data: Vec::new(),
                    })
                });
                if partial.data.is_empty() {
                    partial.data = payload;
                } else {
                    partial.data.extend_from_slice(&payload);
                }
                if !header.fin {
                    return Ok(Parsed::Nothing);
                }
                let Some(message) = self.message.take() else {
                    return Ok(Parsed::Nothing);
                };
                let data = if message.compressed {
                    deflate::inflate(&message.data, limit).map_err(|error| match error {
                        InflateError::TooLarge => CloseReason::FrameTooLarge,
                        InflateError::Corrupt => CloseReason::InvalidPayload,
                    })?
                } else {
                    message.data
                };
                if message.text && std::str::from_utf8(&data).is_err() {
                    return Err(CloseReason::InvalidPayload);
                }
                Ok(Parsed::Message(ClientFrame {
                    payload: Bytes::from(data),
                    text: message.text,
                }))
            }
        }
    }
}

/// The status code of a close frame's payload (none when empty), refusing
/// a one-byte payload, a code no endpoint may send, and a reason that is
/// not UTF-8.
fn close_payload_code(payload: &[u8]) -> Result<Option<u16>, CloseReason> {
    match payload {
        [] => Ok(None),
        [_] => Err(CloseReason::ProtocolError),
        [high, low, reason @ ..] => {
            let code = u16::from_be_bytes([*high, *low]);
            let sendable = matches!(code, 1000..=1003 | 1007..=1011 | 3000..=4999);
            if !sendable {
                return Err(CloseReason::ProtocolError);
            }
            if std::str::from_utf8(reason).is_err() {
                return Err(CloseReason::InvalidPayload);
            }
            Ok(Some(code))
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Transport for WebSocketTransport<S> {
    const KIND: TransportKind = TransportKind::WebSocket;

    async fn recv(&mut self) -> Result<ClientFrame, Ending> {
        loop {
            // Pongs owed go out before more is read.
            self.write_out().await?;
            match self.parse_one() {
                Err(reason) => return Err(Ending::Close(reason)),
                Ok(Parsed::Message(message)) => {
                    self.missed_pongs = 0;
                    return Ok(message);
                }
                Ok(Parsed::Nothing) => self.missed_pongs = 0,
                Ok(Parsed::PeerClosed) => {
                    // Boxed, as in `keep_alive`: rare, and a timer inline
                    // would stay in every connection's read future.
                    let timeout = self.settings.write_timeout;
                    let _ = Box::pin(tokio::time::timeout(timeout, self.write_out())).await;
                    return Err(Ending::ClientClosed);
                }
                Ok(Parsed::NeedMore) => self.read_more().await?,
            }
        }
    }

    async fn feed(&mut self, frame: Frame) -> Result<(), Ending> {
        if self.close_sent {
            return Ok(());
        }
        let opcode = if frame.is_text() {
            frame::TEXT
        } else {
            frame::BINARY
        };
        let compressed = match (self.deflate, self.settings.compression) {
            (Some(agreement), Some(compression))
                if frame.len() >= compression.min_bytes && agreement.fits_window(frame.len()) =>
            {
                frame.compressed_with(|payload| deflate::compress(payload, compression.level))
            }
            _ => None,
        };
        match compressed {
            Some(bytes) => frame::write_frame(&mut self.out, opcode, true, bytes),
            None => frame::write_frame(&mut self.out, opcode, false, frame.payload()),
        }
        if self.out.len() - self.written >= WRITE_AT_BYTES {
            self.write_out().await?;
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), Ending> {
        self.write_out().await?;
        self.io.flush().await.map_err(|_| Ending::Lost)
    }

    async fn keep_alive(&mut self) -> Result<(), Ending> {
        if self.missed_pongs >= MAX_MISSED_PONGS {
            return Err(Ending::Close(CloseReason::KeepaliveTimeout));
        }
        self.missed_pongs += 1;
        frame::write_frame(&mut self.out, frame::PING, false, b"");
        // Boxed: one allocation per keep-alive interval, instead of a timer
        // inline in every connection's future for its whole life.
        let timeout = self.settings.write_timeout;
        match Box::pin(tokio::time::timeout(timeout, self.flush())).await {
            Ok(result) => result,
            Err(_) => Err(Ending::Lost),
        }
    }

    /// Sends a close frame for `reason` and gives the client a moment to
    /// answer.
    ///
    /// The frame skips the outbox (it is the last frame; what is still
    /// queued is dropped), but follows whatever was written already. A
    /// slow consumer's socket is full, so the frame may wait for the
    /// client to read: as long as any write may (a keep-alive interval),
    /// after which the peer counts as gone. Without that wait a slow
    /// client saw 1006 instead of 1008.
    async fn close(&mut self, reason: CloseReason) {
        if self.close_sent {
            return;
        }
        let mut payload = close_code(reason).to_be_bytes().to_vec();
        payload.extend_from_slice(close_text(reason).as_bytes());
        frame::write_frame(&mut self.out, frame::CLOSE, false, &payload);
        self.close_sent = true;
        let write_timeout = self.settings.write_timeout;
        let flushed = tokio::time::timeout(write_timeout, self.flush()).await;
        if !matches!(flushed, Ok(Ok(()))) || self.close_received {
            return;
        }
        // The client's close, skipping whatever it still sends first.
        let _ = tokio::time::timeout(CLOSE_HANDSHAKE_TIMEOUT, async {
            loop {
                match self.parse_one() {
                    Ok(Parsed::PeerClosed) | Err(_) => return,
                    Ok(Parsed::NeedMore) => {
                        if self.read_more().await.is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                }
            }
        })
        .await;
    }
}

/// The close code `reason` is sent as.
pub fn close_code(reason: CloseReason) -> u16 {
    match reason {
        // 1008 is "policy violation"; a too-slow reader breaks the
        // delivery policy, and clients should back off before retrying.
        CloseReason::SlowConsumer => 1008,
        // Private-use code: the peer stopped answering pings.
        CloseReason::KeepaliveTimeout => 4000,
        CloseReason::ServerShutdown => 1001,
        CloseReason::FrameTooLarge => 1009,
        CloseReason::PolicyViolation => 1008,
        // Private-use code: reconnect with a fresh token.
        CloseReason::TokenExpired => 4001,
        CloseReason::InvalidPayload => 1007,
        CloseReason::ProtocolError => 1002,
    }
}

/// The close frame's reason text (at most 123 bytes by RFC 6455).
pub fn close_text(reason: CloseReason) -> &'static str {
    match reason {
        CloseReason::SlowConsumer => "slow consumer: outbound queue full",
        CloseReason::KeepaliveTimeout => "keep-alive timeout: no pong",
        CloseReason::ServerShutdown => "server shutting down",
        CloseReason::FrameTooLarge => "frame too large",
        CloseReason::PolicyViolation => "policy violation: rate limit exceeded repeatedly",
        CloseReason::TokenExpired => "token expired",
        CloseReason::InvalidPayload => "invalid payload: bad UTF-8 or deflate data",
        CloseReason::ProtocolError => "WebSocket protocol error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt as _, DuplexStream, duplex};

    fn transport(deflate: bool) -> (WebSocketTransport<DuplexStream>, DuplexStream) {
        let (server, client) = duplex(1 << 20);
        let settings = Arc::new(Settings {
            max_message_bytes: 64 * 1024,
            write_timeout: Duration::from_secs(1),
            compression: Some(Compression {
                min_bytes: 16,
                level: 6,
            }),
        });
        let agreement = deflate.then(|| deflate::negotiate(["permessage-deflate"]).unwrap());
        (WebSocketTransport::new(server, settings, agreement), client)
    }

    fn client_frame(opcode: u8, fin: bool, rsv1: bool, payload: &[u8]) -> Vec<u8> {
        let mask = [1, 2, 3, 4];
        let mut out = vec![(if fin { 0x80 } else { 0 }) | (if rsv1 { 0x40 } else { 0 }) | opcode];
        match payload.len() {
            n @ 0..=125 => out.push(0x80 | n as u8),
            n => {
                out.push(0x80 | 126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
        }
        out.extend_from_slice(&mask);
        let mut masked = payload.to_vec();
        frame::unmask(&mut masked, mask);
        out.extend_from_slice(&masked);
        out
    }

    #[tokio::test]
    async fn fragments_and_pings_between_them_make_one_message_and_a_pong() {
        let (mut ws, mut client) = transport(false);
        let mut bytes = client_frame(frame::TEXT, false, false, b"{\"type\":");
        bytes.extend(client_frame(frame::PING, true, false, b"hi"));
        bytes.extend(client_frame(frame::CONTINUATION, true, false, b"\"ping\"}"));
        client.write_all(&bytes).await.unwrap();
        let message = ws.recv().await.unwrap();
        assert!(message.text);
        assert_eq!(&message.payload[..], br#"{"type":"ping"}"#);
        let mut pong = [0u8; 4];
        client.read_exact(&mut pong).await.unwrap();
        assert_eq!(pong, [0x8A, 2, b'h', b'i']);
    }

    #[tokio::test]
    async fn a_compressed_client_message_inflates_and_a_bomb_is_refused_with_1009() {
        let (mut ws, mut client) = transport(true);
        let json = br#"{"type":"subscribe","tourId":"tour_paris","requestId":"r1"}"#;
        let compressed = deflate::compress(&json.repeat(4), 6).unwrap();
        client
            .write_all(&client_frame(frame::TEXT, true, true, &compressed))
            .await
            .unwrap();
        assert_eq!(&ws.recv().await.unwrap().payload[..], &json.repeat(4)[..]);
        let bomb = deflate::compress(&vec![b' '; 1 << 20], 9).unwrap();
        let bomb = client_frame(frame::TEXT, true, true, &bomb);
        assert_eq!(ending_after(&bomb, true).await, CloseReason::FrameTooLarge);
    }

    /// How a connection (with deflate agreed or not) ends after `bytes`.
    async fn ending_after(bytes: &[u8], deflate: bool) -> CloseReason {
        let (mut ws, mut client) = transport(deflate);
        client.write_all(bytes).await.unwrap();
        match ws.recv().await {
            Err(Ending::Close(reason)) => reason,
            other => panic!("not closed: {other:?}"),
        }
    }

    #[tokio::test]
    async fn rsv1_without_the_extension_and_unmasked_frames_are_protocol_errors() {
        let compressed = client_frame(frame::TEXT, true, true, b"x");
        assert_eq!(
            ending_after(&compressed, false).await,
            CloseReason::ProtocolError
        );
        let unmasked = [0x81, 0x01, b'x'];
        assert_eq!(
            ending_after(&unmasked, true).await,
            CloseReason::ProtocolError
        );
    }

    #[tokio::test]
    async fn large_frames_go_compressed_once_and_small_ones_plain() {
        use crate::protocol::codec::Encoding;
        let (mut ws, mut client) = transport(true);
        let big = Frame::verbatim(Bytes::from("{\"a\":1}".repeat(50)), Encoding::Json);
        let small = Frame::verbatim(Bytes::from_static(b"{}"), Encoding::Json);
        ws.feed(big.clone()).await.unwrap();
        ws.feed(small).await.unwrap();
        ws.flush().await.unwrap();
        let shared = big
            .compressed_with(|_| unreachable!("compressed already"))
            .unwrap()
            .clone();
        let mut head = [0u8; 2];
        client.read_exact(&mut head).await.unwrap();
        assert_eq!(head, [0xC1, shared.len() as u8], "FIN, RSV1, text");
        let mut body = vec![0u8; shared.len()];
        client.read_exact(&mut body).await.unwrap();
        assert_eq!(
            deflate::inflate(&body, 1 << 20).unwrap(),
            "{\"a\":1}".repeat(50).as_bytes()
        );
        let mut plain = [0u8; 4];
        client.read_exact(&mut plain).await.unwrap();
        assert_eq!(plain, [0x81, 2, b'{', b'}']);
    }

    #[tokio::test]
    async fn a_client_close_is_echoed_and_bad_close_codes_refused() {
        let (mut ws, mut client) = transport(false);
        client
            .write_all(&client_frame(
                frame::CLOSE,
                true,
                false,
                &1000u16.to_be_bytes(),
            ))
            .await
            .unwrap();
        assert_eq!(ws.recv().await.unwrap_err(), Ending::ClientClosed);
        let mut echo = [0u8; 4];
        client.read_exact(&mut echo).await.unwrap();
        assert_eq!(echo, [0x88, 2, 0x03, 0xE8]);
        for code in [999u16, 1004, 1005, 1006, 1012, 1016, 2999, 5000] {
            let close = client_frame(frame::CLOSE, true, false, &code.to_be_bytes());
            let reason = ending_after(&close, false).await;
            assert_eq!(reason, CloseReason::ProtocolError, "{code}");
        }
    }
}
