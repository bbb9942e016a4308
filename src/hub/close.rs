//! Why the server closes a connection: the domain's reasons, each with a
//! label for logs and metrics, and (for now) the WebSocket close code and
//! text it is sent as. Another transport would map the same reasons to its
//! own way of ending a connection.
//!
//! The hub cannot close a socket (it never awaits), so it asks: the reason
//! is recorded in the connection's [`outbox`](super::outbox), which wakes the
//! connection's task to send the close frame. The first reason wins.

/// Why the server closes a connection. Each maps to a documented close code.
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
    /// The WebSocket close code sent for this reason.
    pub fn close_code(self) -> u16 {
        match self {
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

    /// The close reason text (at most 123 bytes by the WebSocket RFC).
    pub fn reason(self) -> &'static str {
        match self {
            CloseReason::SlowConsumer => "slow consumer: outbound queue full",
            CloseReason::KeepaliveTimeout => "keep-alive timeout: no pong",
            CloseReason::ServerShutdown => "server shutting down",
            CloseReason::FrameTooLarge => "frame too large",
            CloseReason::PolicyViolation => "policy violation: rate limit exceeded repeatedly",
            CloseReason::TokenExpired => "token expired",
            CloseReason::InvalidPayload => "invalid UTF-8 in a text frame",
            CloseReason::ProtocolError => "WebSocket protocol error",
        }
    }

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
