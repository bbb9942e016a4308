//! `leave` → `left`.

use super::Context;
use crate::hub::Target;
use crate::protocol::v1;

/// Stop being a member of a room.
pub struct Leave {
    room: String,
    request_id: Option<String>,
}

impl Leave {
    /// From the validated protocol message.
    pub fn parse(message: v1::Leave) -> Self {
        Leave {
            room: message.room,
            request_id: message.request_id,
        }
    }

    /// Leaves the room and acknowledges it. Leaving a room never joined is
    /// acknowledged all the same.
    pub fn apply(self, context: &mut Context<'_>) {
        leave(context, Target::Room(self.room), self.request_id);
    }
}

/// Takes the connection out of `room` (a `leave`, or a refreshed token
/// that no longer names it), answering `left`.
pub fn leave(context: &mut Context<'_>, room: Target, request_id: Option<String>) {
    let was_member = context.subs.contains(&room);
    context
        .engine
        .leave(context.client, context.subs, room.clone(), request_id);
    if let (true, Target::Room(name)) = (was_member, &room) {
        context.presence.leave(
            context.engine.hub(),
            name,
            &context.room_user(),
            context.client.id(),
        );
    }
}
