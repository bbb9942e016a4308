//! Transports: how a session's frames reach its client, and the client's
//! messages come back. The session loop
//! ([`server::session`](crate::server::session)) owns what a connection
//! does (its outbox, rate limits, token expiry, recoveries, commands) and
//! is written once against [`Transport`]; each transport owns only its
//! wire:
//! - [`websocket`]: frames over an upgraded socket, pings for liveness,
//!   close frames with codes;
//! - [`sse`]: Server-Sent Events over a streamed HTTP response: one way,
//!   numbered events for `Last-Event-ID`, comments for keep-alive, and a
//!   connection ends by ending the stream.
//!
//! Below this module nothing knows a transport: the hub queues
//! [`Frame`]s, and why a connection ends is a [`CloseReason`] (the
//! server's) or an [`Ending`].

pub mod sse;
pub mod websocket;

use std::future::Future;

use bytes::Bytes;

use crate::hub::CloseReason;
pub use crate::hub::TransportKind;
use crate::protocol::frame::Frame;

/// A message from the client, as its transport delivered it.
#[derive(Debug)]
pub struct ClientFrame {
    /// The message's bytes.
    pub payload: Bytes,
    /// Whether it came as text (JSON) rather than binary (protobuf).
    pub text: bool,
}

/// How a connection ends: the one answer of the session loop, of a write,
/// and of the close log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// The server ends it, for this reason.
    Close(CloseReason),
    /// The client ended it (a WebSocket close frame).
    ClientClosed,
    /// The network went away: a failed or timed-out write, EOF without a
    /// close, a disconnected event stream.
    Lost,
}

impl Ending {
    /// A label for logs and metrics.
    pub fn label(self) -> &'static str {
        match self {
            Ending::Close(reason) => reason.label(),
            Ending::ClientClosed => "client_closed",
            Ending::Lost => "connection_lost",
        }
    }
}

/// One client's wire. Every method may be cancelled between awaits by the
/// session's `select!` without losing a client message (`recv`) or
/// corrupting the stream (writes are not cancelled: the session bounds
/// them with a deadline and then drops the connection).
pub trait Transport: Send {
    /// Which transport this is.
    const KIND: TransportKind;

    /// The client's next message; an [`Ending`] when there is none to
    /// come. A transport without client messages (SSE) waits until the
    /// client goes away.
    fn recv(&mut self) -> impl Future<Output = Result<ClientFrame, Ending>> + Send;

    /// Adds `frame` to what the next [`Transport::flush`] writes (it may
    /// write already, when its buffer is full).
    fn feed(&mut self, frame: Frame) -> impl Future<Output = Result<(), Ending>> + Send;

    /// Writes everything fed.
    fn flush(&mut self) -> impl Future<Output = Result<(), Ending>> + Send;

    /// A keep-alive tick: proves the connection alive, or ends it
    /// (WebSocket: a ping, and the end after unanswered ones; SSE: a
    /// comment that keeps proxies from timing the stream out).
    fn keep_alive(&mut self) -> impl Future<Output = Result<(), Ending>> + Send;

    /// Everything queued before now has been written: a transport that
    /// numbers what it sends may number from here (see [`sse`]). Called
    /// once, when the subscriptions a connection opened with (if any) are
    /// answered.
    fn initial_answers_written(&mut self) -> impl Future<Output = Result<(), Ending>> + Send {
        async { Ok(()) }
    }

    /// Ends the connection for `reason`, as this transport does (a close
    /// frame and its handshake; the end of the event stream).
    fn close(&mut self, reason: CloseReason) -> impl Future<Output = ()> + Send;
}
