//! Rooms: two-way channels a connection `join`s and `publish`es into.
//! Who may: the token's `rooms` claim, or anyone under `--rooms-open`.
//! What flows: `joined` (with who is in the room), the room's messages
//! (`room.message`, through the stream like every event), `presence`,
//! `left`. Who a connection is in a room is the server's to say: the
//! token's `sub`, else its `clientId`.

use crate::auth::Identity;
use crate::event::RoomPost;
use crate::protocol::ServerMessage;
use crate::protocol::v1::{Joined, Left, RoomMember, RoomMessage};
use crate::time::rfc3339;

use super::{Refused, Target};

/// Who is in a room, as `joined` tells a joining connection: at most
/// [`Membership::LISTED`] users by name, and the exact count.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Membership {
    /// Users in the room (at most [`Membership::LISTED`]), sorted.
    pub members: Vec<String>,
    /// How many users are in the room.
    pub member_count: u32,
}

impl Membership {
    /// Most members `joined` lists by name.
    pub const LISTED: usize = 100;
}

/// The room `room` for `identity`, or why it may not join it.
pub fn resolve(room: &str, identity: &Identity) -> Result<Target, Refused> {
    if identity.rooms.allows(room) {
        Ok(Target::Room(room.to_string()))
    } else {
        Err(Refused::Room(room.to_string()))
    }
}

/// Who a connection is in rooms: its token's `sub`, else its `clientId`.
pub fn user(identity: &Identity, client_id: &str) -> String {
    identity
        .subject
        .clone()
        .unwrap_or_else(|| client_id.to_string())
}

/// The acknowledgement of a `join`: who is in the room, where live
/// messages start (`seq`), and whether `since` was recovered.
pub fn joined(
    room: &str,
    membership: Membership,
    seq: u64,
    recovered: Option<bool>,
    request_id: Option<String>,
) -> ServerMessage {
    ServerMessage::Joined(Joined {
        room: room.to_string(),
        members: membership
            .members
            .into_iter()
            .map(|user_id| RoomMember { user_id })
            .collect(),
        member_count: membership.member_count,
        seq,
        recovered,
        request_id,
    })
}

/// The acknowledgement of a `leave`.
pub fn left(room: &str, request_id: Option<String>) -> ServerMessage {
    ServerMessage::Left(Left {
        room: room.to_string(),
        request_id,
    })
}

/// The message a room's members receive for a post.
pub fn message(post: &RoomPost, seq: u64) -> ServerMessage {
    ServerMessage::RoomMessage(RoomMessage {
        room: post.room.clone(),
        from: Some(RoomMember {
            user_id: post.from.clone(),
        }),
        text: post.text.clone(),
        data: post.data.clone(),
        // The same on every instance: the publisher's id, or the position.
        message_id: post
            .event_id
            .clone()
            .unwrap_or_else(|| format!("seq-{seq}")),
        seq,
        timestamp: rfc3339(post.timestamp),
    })
}
