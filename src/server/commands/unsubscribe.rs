//! `unsubscribe` → `unsubscribed`.

use super::Context;
use crate::hub::Target;
use crate::protocol::v1;

/// Stop receiving a tour's (or every tour's) events.
pub struct Unsubscribe {
    target: Target,
    request_id: Option<String>,
}

impl Unsubscribe {
    /// From the validated protocol message.
    pub fn parse(message: v1::Unsubscribe) -> Self {
        Unsubscribe {
            target: Target::parse(&message.tour_id),
            request_id: message.request_id,
        }
    }

    /// Drops the subscription and acknowledges it.
    pub fn apply(self, context: &mut Context<'_>) {
        context
            .engine
            .unsubscribe(context.client, context.subs, self.target, self.request_id);
    }
}
