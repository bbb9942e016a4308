//! Why the server closes a connection: the domain's reasons, each with a
//! label for logs and metrics. Each transport maps them to its own way of
//! ending a connection ([`transport`](crate::transport): WebSocket close
//! codes, or the end of an event stream).
//!
//! The hub cannot close a socket (it never awaits), so it asks: the reason
//! is recorded in the connection's [`outbox`](super::outbox), which wakes the
//! connection's task to send the connection's end. The first reason wins.

/// Why the server closes a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// The outbound queue filled up: the client does not read fast enough.
    SlowConsumer,
    /// Two keep-alive pings went unanswered.
    KeepaliveTimeout,
    /// The server is shutting down; reconnect elsewhere.
    ServerShutdown,
    /// A frame exceeded the hard size limit.
    FrameTooLarge,
    /// The client kept violating policy (e.g. flooding after warnings).
    PolicyViolation,
    /// The connection's access token expired and was not refreshed.
    TokenExpired,
    /// A text frame was not valid UTF-8 (RFC 6455 §8.1).
    InvalidPayload,
    /// The client broke the WebSocket framing rules (e.g. an unmasked frame).
    ProtocolError,
}

impl CloseReason {
    /// A short label for logs and metrics.
    pub fn label(self) -> &'static str {
        match self {
            CloseReason::SlowConsumer => "slow_consumer",
            CloseReason::KeepaliveTimeout => "keepalive_timeout",
            CloseReason::ServerShutdown => "shutdown",
            CloseReason::FrameTooLarge => "frame_too_large",
            CloseReason::PolicyViolation => "policy_violation",
            CloseReason::TokenExpired => "token_expired",
            CloseReason::InvalidPayload => "invalid_payload",
            CloseReason::ProtocolError => "protocol_error",
        }
    }
}
