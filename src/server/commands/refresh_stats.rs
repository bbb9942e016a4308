//! `refreshStats` → `stats`, echoing `requestId`.

use super::{Context, ErrorReply};
use crate::channel::Target;
use crate::protocol::v1::{self, ErrorCode};

/// Ask for the stats channel's message now.
pub struct RefreshStats {
    request_id: Option<String>,
}

impl RefreshStats {
    /// From the validated protocol message.
    pub fn parse(message: v1::RefreshStats) -> Self {
        RefreshStats {
            request_id: message.request_id,
        }
    }

    /// Sends the current `stats`, to a `stats` subscriber only: the
    /// subscription is where the admin claim was checked.
    pub fn apply(self, context: &mut Context<'_>) {
        if !context.subs.contains(&Target::Stats) {
            ErrorReply::new(
                ErrorCode::Forbidden,
                "subscribe to the stats channel before asking for stats",
            )
            .answering(self.request_id)
            .send(context.client);
            return;
        }
        context.stats.send_current(context.client, self.request_id);
    }
}
