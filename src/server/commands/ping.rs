//! `ping` → `pong`, echoing `requestId`.

use chrono::Utc;

use super::Context;
use crate::protocol::{ServerMessage, v1};
use crate::time::rfc3339;

/// A liveness check.
pub struct Ping {
    request_id: Option<String>,
}

impl Ping {
    /// From the validated protocol message.
    pub fn parse(message: v1::Ping) -> Self {
        Ping {
            request_id: message.request_id,
        }
    }

    /// Answers with a `pong`.
    pub fn apply(self, context: &mut Context<'_>) {
        let pong = ServerMessage::Pong(v1::Pong {
            request_id: self.request_id,
            timestamp: rfc3339(Utc::now()),
        });
        context.client.send(&pong);
    }
}
