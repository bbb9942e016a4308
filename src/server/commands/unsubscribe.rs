//! `unsubscribe` → `unsubscribed`.

use super::Context;
use crate::channel::Request;
use crate::protocol::v1;

/// Stop receiving a tour's (or every tour's), or a channel's, messages.
pub struct Unsubscribe {
    request: Request,
    request_id: Option<String>,
}

impl Unsubscribe {
    /// From the validated protocol message.
    pub fn parse(message: v1::Unsubscribe) -> Self {
        Unsubscribe {
            request: Request::from_fields(message.tour_id, message.channel),
            request_id: message.request_id,
        }
    }

    /// Drops the subscription and acknowledges it. Unsubscribing from
    /// something never subscribed is acknowledged all the same.
    pub fn apply(self, context: &mut Context<'_>) {
        match self.request.target_to_drop(context.identity) {
            Some(target) => {
                context
                    .engine
                    .unsubscribe(context.client, context.subs, target, self.request_id)
            }
            None => {
                // A channel this connection cannot have (`notifications`
                // without a user): nothing to drop, answered in the
                // client's own terms.
                let channel = match self.request {
                    Request::Channel(channel) => Some(channel.into()),
                    Request::Tour(_) | Request::Room(_) => None,
                };
                let notice = crate::protocol::ServerMessage::Unsubscribed(v1::Unsubscribed {
                    tour_id: None,
                    channel,
                    request_id: self.request_id,
                });
                context.client.send(&notice);
            }
        }
    }
}
