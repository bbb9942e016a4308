//! Why the server closes a connection: each reason maps to a documented
//! close code, a reason text, and a label for logs and metrics.
//!
//! The hub cannot close a socket (it never awaits), so it kicks: the reason
//! is recorded in the connection's [`outbox`](super::outbox), which wakes the
//! connection's task to send the close frame. The first reason wins.

/// Why the server closes a connection. Each maps to a documented close code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disconnect {
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

impl Disconnect {
    /// The WebSocket close code sent for this reason.
    pub fn close_code(self) -> u16 {
        match self {
            // 1008 is "policy violation"; a too-slow reader breaks the
            // delivery policy, and clients should back off before retrying.
            Disconnect::SlowConsumer => 1008,
            // Private-use code: the peer stopped answering pings.
            Disconnect::KeepaliveTimeout => 4000,
            Disconnect::ServerShutdown => 1001,
            Disconnect::FrameTooLarge => 1009,
            Disconnect::PolicyViolation => 1008,
            // Private-use code: reconnect with a fresh token.
            Disconnect::TokenExpired => 4001,
            Disconnect::InvalidPayload => 1007,
            Disconnect::ProtocolError => 1002,
        }
    }

    /// The close reason text (at most 123 bytes by the WebSocket RFC).
    pub fn reason(self) -> &'static str {
        match self {
            Disconnect::SlowConsumer => "slow consumer: outbound queue full",
            Disconnect::KeepaliveTimeout => "keep-alive timeout: no pong",
            Disconnect::ServerShutdown => "server shutting down",
            Disconnect::FrameTooLarge => "frame too large",
            Disconnect::PolicyViolation => "policy violation: rate limit exceeded repeatedly",
            Disconnect::TokenExpired => "token expired",
            Disconnect::InvalidPayload => "invalid UTF-8 in a text frame",
            Disconnect::ProtocolError => "WebSocket protocol error",
        }
    }

    /// A short label for logs and metrics.
    pub fn label(self) -> &'static str {
        match self {
            Disconnect::SlowConsumer => "slow_consumer",
            Disconnect::KeepaliveTimeout => "keepalive_timeout",
            Disconnect::ServerShutdown => "shutdown",
            Disconnect::FrameTooLarge => "frame_too_large",
            Disconnect::PolicyViolation => "policy_violation",
            Disconnect::TokenExpired => "token_expired",
            Disconnect::InvalidPayload => "invalid_payload",
            Disconnect::ProtocolError => "protocol_error",
        }
    }
}
