//! Server-Sent Events: a streamed `text/event-stream` response, for
//! networks that refuse WebSocket upgrades and for read-only pages.
//!
//! Each server message is one event: `event: <its JSON type>`, `id: <its
//! stream position>` when it has one, `data: <the JSON message>` (compact
//! JSON never holds a raw newline). A reconnecting EventSource sends the
//! last id back as `Last-Event-ID`, and the endpoint
//! ([`server::sse`](crate::server::sse)) resumes after it.
//!
//! That id must mean "everything up to here has arrived", for every
//! subscription of the stream. A connection's opening subscriptions are
//! answered one after another (tour A's missed events, then tour B's), so
//! an id written mid-way could skip some of B's; ids are therefore
//! withheld until every opening answer is written, and the last opening
//! answer then carries `id: <highest position written>`. That answer is
//! held back until the session says the opening is over: it must be a
//! dispatched event, because a script sees an id only on a `MessageEvent`
//! (an id-only block sets EventSource's reconnect id, but a client that
//! opens a new stream itself, say for a new subscription set, never learns
//! it). With one subscription the last answer is its snapshot, whose id is
//! then the position it reflects. Every later message is live, in stream
//! order, and carries its own id.
//!
//! The client sends nothing: the stream ends when the client goes away
//! (the response body is dropped) or the server ends it. A connection the
//! server closes gets a last comment naming why, then the end of the
//! stream; EventSource reconnects by itself after `retry`.

use std::io::Write as _;
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use tokio::sync::mpsc;

use super::{ClientFrame, Ending, Transport, TransportKind};
use crate::hub::CloseReason;
use crate::protocol::frame::Frame;

/// Buffered bytes past which `feed` writes before the batch's flush.
const FLUSH_AT_BYTES: usize = 16 * 1024;
/// Chunks the response body may hold before writes wait for the client
/// to read (then the session's write deadline applies).
const BODY_CHUNKS: usize = 2;

/// One event stream, the session's side of it.
pub struct SseTransport {
    body: mpsc::Sender<Bytes>,
    buffer: Vec<u8>,
    /// Whether events carry their `id:` yet (see the module docs).
    numbering: bool,
    /// The highest stream position written.
    highest: Option<u64>,
    /// While the opening answers are written: where the last one starts in
    /// `buffer`. It stays buffered until it gets the resume point.
    last_opening: Option<usize>,
}

impl SseTransport {
    /// A transport and the response body it streams into, which opens with
    /// `retry: <reconnect_after>`.
    pub fn new(reconnect_after: Duration) -> (Self, Body) {
        let (tx, rx) = mpsc::channel::<Bytes>(BODY_CHUNKS);
        let body = Body::from_stream(futures_util::stream::unfold(rx, |mut rx| async move {
            let chunk = rx.recv().await?;
            Some((Ok::<_, std::convert::Infallible>(chunk), rx))
        }));
        let mut buffer = Vec::new();
        let _ = write!(buffer, "retry: {}\n\n", reconnect_after.as_millis());
        (
            SseTransport {
                body: tx,
                buffer,
                numbering: false,
                highest: None,
                last_opening: None,
            },
            body,
        )
    }

    /// Sends what is buffered, except a held-back last opening answer.
    async fn write_buffer(&mut self) -> Result<(), Ending> {
        let held = match self.last_opening {
            Some(start) => {
                self.last_opening = Some(0);
                self.buffer.split_off(start)
            }
            None => Vec::new(),
        };
        let chunk = std::mem::replace(&mut self.buffer, held);
        if chunk.is_empty() {
            return Ok(());
        }
        self.body
            .send(Bytes::from(chunk))
            .await
            .map_err(|_| Ending::Lost)
    }
}

impl Transport for SseTransport {
    const KIND: TransportKind = TransportKind::Sse;

    async fn recv(&mut self) -> Result<ClientFrame, Ending> {
        // Nothing comes from the client; the body's end says it left.
        self.body.closed().await;
        Err(Ending::Lost)
    }

    async fn feed(&mut self, frame: Frame) -> Result<(), Ending> {
        // Sessions over SSE are JSON; a protobuf frame has no text form.
        if !frame.is_text() {
            tracing::debug!(
                kind = frame.json_type(),
                "binary frame on an event stream; dropped"
            );
            return Ok(());
        }
        if !self.numbering {
            self.last_opening = Some(self.buffer.len());
        }
        let _ = writeln!(self.buffer, "event: {}", frame.json_type());
        if let Some(position) = frame.position() {
            if self.numbering && self.highest.is_none_or(|highest| position > highest) {
                let _ = writeln!(self.buffer, "id: {position}");
            }
            self.highest = self.highest.max(Some(position));
        }
        self.buffer.extend_from_slice(b"data: ");
        self.buffer.extend_from_slice(frame.payload());
        self.buffer.extend_from_slice(b"\n\n");
        if self.buffer.len() >= FLUSH_AT_BYTES {
            self.write_buffer().await?;
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), Ending> {
        self.write_buffer().await
    }

    async fn keep_alive(&mut self) -> Result<(), Ending> {
        self.buffer.extend_from_slice(b": keep-alive\n\n");
        self.write_buffer().await
    }

    async fn initial_answers_written(&mut self) -> Result<(), Ending> {
        self.numbering = true;
        if let (Some(highest), Some(start)) = (self.highest, self.last_opening.take()) {
            // After its `event:` line, as live events have it.
            let event_line = self.buffer[start..]
                .iter()
                .position(|&byte| byte == b'\n')
                .map_or(0, |newline| newline + 1);
            let at = start + event_line;
            self.buffer
                .splice(at..at, format!("id: {highest}\n").into_bytes());
        }
        self.write_buffer().await
    }

    async fn close(&mut self, reason: CloseReason) {
        // Best effort, never waiting: a slow client's body is full.
        self.buffer.clear();
        self.last_opening = None;
        let _ = write!(self.buffer, ": closing: {}\n\n", reason.label());
        let _ = self
            .body
            .try_send(Bytes::from(std::mem::take(&mut self.buffer)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::ServerMessage;
    use crate::protocol::codec::Encoding;
    use crate::protocol::v1::{AvailabilityUpdated, Pong, TourAvailability};

    fn event(seq: u64) -> Frame {
        Frame::encode(
            &ServerMessage::AvailabilityUpdated(AvailabilityUpdated {
                data: Some(TourAvailability {
                    tour_id: "tour_paris".into(),
                    available_seats: 3,
                    ..Default::default()
                }),
                seq,
                timestamp: "t".into(),
                event_id: None,
            }),
            Encoding::Json,
        )
    }

    #[tokio::test]
    async fn ids_wait_for_the_opening_answers_then_the_last_answer_carries_the_resume_point() {
        let (mut sse, body) = SseTransport::new(Duration::from_millis(1500));
        let (chunks_tx, mut chunks) = mpsc::unbounded_channel();
        let collect = tokio::spawn(async move {
            use futures_util::StreamExt as _;
            let mut stream = body.into_data_stream();
            while let Some(chunk) = stream.next().await {
                let _ = chunks_tx.send(chunk.unwrap());
            }
        });
        // Opening answers: tour B's replay after tour A's newer event.
        sse.feed(event(9)).await.unwrap();
        sse.feed(event(5)).await.unwrap();
        sse.feed(Frame::encode(
            &ServerMessage::Pong(Pong::default()),
            Encoding::Json,
        ))
        .await
        .unwrap();
        sse.flush().await.unwrap();
        // The flush sent all but the last answer, which waits for its id.
        let sent = chunks.recv().await.unwrap();
        let sent = std::str::from_utf8(&sent).unwrap();
        assert!(!sent.contains("pong"), "{sent}");
        sse.initial_answers_written().await.unwrap();
        sse.feed(event(10)).await.unwrap();
        sse.keep_alive().await.unwrap();
        let mut text = sent.to_string();
        // Read it all, as a client would: the close is only best effort.
        while !text.contains("keep-alive") {
            text.push_str(std::str::from_utf8(&chunks.recv().await.unwrap()).unwrap());
        }
        sse.close(CloseReason::ServerShutdown).await;
        drop(sse);
        collect.await.unwrap();
        while let Ok(chunk) = chunks.try_recv() {
            text.push_str(std::str::from_utf8(&chunk).unwrap());
        }
        let blocks: Vec<&str> = text.split("\n\n").collect();
        assert_eq!(blocks[0], "retry: 1500");
        assert!(
            blocks[1].starts_with("event: tour.availability.updated\ndata: {"),
            "{text}"
        );
        assert!(blocks[1].contains(r#""seq":9"#));
        assert!(!blocks[2].contains("id:"));
        assert!(
            blocks[3].starts_with("event: pong\nid: 9\ndata: {"),
            "{text}"
        );
        assert!(blocks[4].starts_with("event: tour.availability.updated\nid: 10\ndata: {"));
        assert_eq!(blocks[5], ": keep-alive");
        assert_eq!(blocks[6], ": closing: shutdown");
    }

    #[tokio::test]
    async fn a_dropped_body_ends_the_session() {
        let (mut sse, body) = SseTransport::new(Duration::from_secs(1));
        drop(body);
        assert_eq!(sse.recv().await.unwrap_err(), Ending::Lost);
        assert!(sse.keep_alive().await.is_err());
    }
}
