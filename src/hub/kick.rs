//! Telling a connection to close itself, from anywhere, with a reason.
//!
//! The hub cannot close a socket (it never awaits), so it records why the
//! connection must go and wakes the connection's task, which sends the close
//! frame. The first reason wins.

use std::sync::OnceLock;

use tokio_util::sync::CancellationToken;

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
        }
    }
}

/// A one-shot "close this connection" signal with its reason.
#[derive(Debug, Default)]
pub struct Kick {
    reason: OnceLock<Disconnect>,
    token: CancellationToken,
}

impl Kick {
    /// Asks the connection to close; returns true if this was the first ask.
    pub fn kick(&self, reason: Disconnect) -> bool {
        let first = self.reason.set(reason).is_ok();
        self.token.cancel();
        first
    }

    /// Why the connection was kicked, if it was.
    pub fn reason(&self) -> Option<Disconnect> {
        self.reason.get().copied()
    }

    /// Resolves once the connection has been kicked.
    pub async fn kicked(&self) -> Disconnect {
        self.token.cancelled().await;
        self.reason().unwrap_or(Disconnect::PolicyViolation)
    }
}
