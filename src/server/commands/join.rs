//! `join` → `joined`, then the room's recent messages, or with `since`
//! exactly the missed ones (see [`subscription`](super::subscription) for
//! the waiting part).

use super::subscription::{Recovering, Subscription, Then, resolve};
use super::{Context, ErrorReply};
use crate::channel::Request;
use crate::engine::Acknowledging;
use crate::hub::Target;
use crate::protocol::v1::{self, ErrorCode, StreamPosition};

/// Become a member of a room.
pub struct Join {
    request: Request,
    since: Option<StreamPosition>,
    request_id: Option<String>,
}

impl Join {
    /// From the validated protocol message.
    pub fn parse(message: v1::Join) -> Self {
        Join {
            request: Request::Room(message.room),
            since: message.since,
            request_id: message.request_id,
        }
    }

    /// Checks the `rooms` claim, then joins like a subscribe.
    pub fn apply(self, context: &mut Context<'_>) -> Option<Recovering> {
        let target = resolve(&self.request, &self.request_id, context)?;
        if let Err(error) = context.engine.check_limit(context.subs, &target) {
            ErrorReply::new(ErrorCode::Forbidden, error.to_string())
                .at("/room")
                .answering(self.request_id)
                .send(context.client);
            return None;
        }
        let Target::Room(room) = &target else {
            return None;
        };
        // Entered before `joined` is queued: its members include this
        // user, and the others hear of a first connection at once.
        let membership = context.presence.enter(
            context.engine.hub(),
            room,
            &context.room_user(),
            context.client.id(),
        );
        let subscription = Subscription {
            target,
            since: self.since,
            ack: Acknowledging {
                request_id: self.request_id,
                membership: Some(membership),
            },
            path: "/room",
            then: Then::Nothing,
        };
        subscription.start(context)
    }
}
