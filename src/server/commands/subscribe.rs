//! `subscribe` → `subscribed`, then a `snapshot` or the missed events;
//! with `viewers` (a tour by name), then the tour's `viewers` count (see
//! [`subscription`](super::subscription) for the waiting part).

use super::subscription::{Recovering, Subscription, Then, resolve};
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
    /// Also deliver the tour's viewer count.
    viewers: bool,
}

impl Subscribe {
    /// From the validated protocol message.
    pub fn parse(message: v1::Subscribe) -> Self {
        Subscribe {
            request: Request::from_fields(message.tour_id, message.channel),
            since: message.since,
            request_id: message.request_id,
            viewers: message.viewers.unwrap_or(false),
        }
    }

    /// Registers the subscription and queues the acknowledgement and state,
    /// unless the stream must be read back first.
    pub fn apply(self, context: &mut Context<'_>) -> Option<Recovering> {
        let named_tour = matches!(&self.request, Request::Tour(id) if id != "*");
        if self.viewers && !named_tour {
            // A count of "every tour" means nothing; refused before anything
            // is subscribed, as the schema would refuse a bad field.
            ErrorReply::new(
                ErrorCode::InvalidMessage,
                "`viewers` needs a tour id (not \"*\")",
            )
            .at("/viewers")
            .answering(self.request_id)
            .send(context.client);
            return None;
        }
        let target = resolve(&self.request, &self.request_id, context)?;
        let then = match &target {
            Target::Stats => Then::FirstStats,
            // Each subscribe to a tour says afresh whether the count is wanted.
            Target::Tour(tour_id) => Then::Viewers {
                tour_id: tour_id.clone(),
                wanted: self.viewers,
            },
            _ => Then::Nothing,
        };
        Subscription {
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
            then,
        }
        .start(context)
    }
}
