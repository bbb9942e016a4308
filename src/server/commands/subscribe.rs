//! `subscribe` → `subscribed`, then a `snapshot` or the missed events
//! (see [`subscription`](super::subscription) for the waiting part).

use super::subscription::{Recovering, Subscription};
use super::{Context, ErrorReply};
use crate::channel::Request;
use crate::engine::Acknowledging;
use crate::hub::Target;
use crate::protocol::v1::{self, ErrorCode, StreamPosition};

/// Start receiving a tour's (or every tour's), or a channel's, messages.
pub struct Subscribe {
    request: Request,
    since: Option<StreamPosition>,
    request_id: Option<String>,
}

impl Subscribe {
    /// From the validated protocol message.
    pub fn parse(message: v1::Subscribe) -> Self {
        Subscribe {
            request: Request::from_fields(message.tour_id, message.channel),
            since: message.since,
            request_id: message.request_id,
        }
    }

    /// Registers the subscription and queues the acknowledgement and state,
    /// unless the stream must be read back first.
    pub fn apply(self, context: &mut Context<'_>) -> Option<Recovering> {
        let target = match self.request.resolve(context.identity) {
            Ok(target) => target,
            Err(refused) => {
                ErrorReply::new(ErrorCode::Forbidden, refused.to_string())
                    .at(refused.path())
                    .answering(self.request_id)
                    .send(context.client);
                return None;
            }
        };
        let is_stats = target == Target::Stats;
        let subscription = Subscription {
            path: if target.is_tour() {
                "/tourId"
            } else {
                "/channel"
            },
            target,
            since: self.since,
            ack: Acknowledging {
                request_id: self.request_id,
                membership: None,
            },
        };
        let (recovering, answered) = subscription.start(context);
        if answered && is_stats {
            // The channel's first message, right behind the acknowledgement.
            context.stats.send_current(context.client, None);
        }
        recovering
    }
}
