//! Channels: what a connection can subscribe to, and who may.
//!
//! A subscription names a [`Target`]: a tour (or every tour), the user's
//! own notifications, the admin statistics, or a room (which a connection
//! `join`s). The hub delivers by target,
//! the state numbers and keeps history by target, and the connection never
//! looks inside one. What a client *asks* for ([`Request`]) becomes a
//! target only here, against the connection's [`Identity`]: the user of a
//! notification channel is always the token's `sub`, never a name the
//! client sent, and the stats channel needs the admin claim.
//!
//! Each kind is a module here that owns what is particular to it: who may
//! have it (its `resolve`), and the messages it sends ([`tour`],
//! [`notifications`], [`stats`], [`room`]). The hub, the connection loop
//! and the commands that subscribe know channels only as [`Target`]s.
//! Adding a kind means its module, a variant of [`Target`] and
//! [`Request`], and what feeds it: the state, for kinds numbered by the
//! stream (its history is a [`Ring`](crate::state::Ring)); its own task for
//! live figures, like `stats`.

pub mod notifications;
pub mod room;
pub mod stats;
pub mod tour;

use crate::auth::Identity;
use crate::protocol::v1::Channel;

pub use room::Membership;

/// What a registration in the hub covers.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Target {
    /// Every tour (`"*"`, or a connection that never subscribed).
    AllTours,
    /// One tour.
    Tour(String),
    /// One user's notifications, by the `sub` of their tokens.
    User(String),
    /// The admin statistics.
    Stats,
    /// One room's members (presence and room messages).
    Room(String),
    /// The connections that asked for a tour's `viewers` count.
    Viewers(String),
    /// A connection subscribed to a tour by name: one of the tour's
    /// viewers. Nothing is delivered under it; it is counted.
    Viewing(String),
}

impl Target {
    /// A tour subscription: `"*"` means every tour.
    pub fn tour(tour_id: &str) -> Self {
        if tour_id == "*" {
            Target::AllTours
        } else {
            Target::Tour(tour_id.to_string())
        }
    }

    /// The tour id; `"*"` for every tour; `None` for other channels.
    pub fn tour_id(&self) -> Option<&str> {
        match self {
            Target::AllTours => Some("*"),
            Target::Tour(id) => Some(id),
            Target::User(_)
            | Target::Stats
            | Target::Room(_)
            | Target::Viewers(_)
            | Target::Viewing(_) => None,
        }
    }

    /// Whether this is a room.
    pub fn is_room(&self) -> bool {
        matches!(self, Target::Room(_))
    }

    /// Whether this is a tour subscription (one tour, or every tour).
    pub fn is_tour(&self) -> bool {
        matches!(self, Target::AllTours | Target::Tour(_))
    }

    /// The protocol's name for a channel target (`None` for tours), as
    /// `subscribed` and `unsubscribed` carry it.
    pub fn channel(&self) -> Option<Channel> {
        match self {
            Target::User(_) => Some(Channel::Notifications),
            Target::Stats => Some(Channel::Stats),
            Target::AllTours
            | Target::Tour(_)
            | Target::Room(_)
            | Target::Viewers(_)
            | Target::Viewing(_) => None,
        }
    }

    /// The `(tourId, channel)` pair a reply names this target by.
    pub fn reply_names(&self) -> (Option<String>, Option<i32>) {
        (
            self.tour_id().map(str::to_owned),
            self.channel().map(i32::from),
        )
    }
}

/// What a `subscribe` or `unsubscribe` names, as validated from the wire
/// (the schema guarantees exactly one of the two).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// `tourId`: a tour, or `"*"`.
    Tour(String),
    /// `channel`.
    Channel(Channel),
    /// A room, by `join` (or `leave`).
    Room(String),
}

/// Why a request does not become a target.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// The token does not cover this tour.
    #[error("not allowed to subscribe to {0}")]
    Tour(String),
    /// `notifications` on a connection with no user.
    #[error("the notifications channel needs an authenticated connection (a token with a `sub`)")]
    Anonymous,
    /// `stats` without the admin claim.
    #[error("the stats channel is for admin tokens only")]
    NotAdmin,
    /// A channel value this server does not serve.
    #[error("unknown channel")]
    Unknown,
    /// The token's `rooms` claim does not name this room (or rooms are
    /// closed: JWT off without `--rooms-open`).
    #[error("not allowed to join room {0}")]
    Room(String),
}

impl Refused {
    /// The JSON pointer of the field the refusal is about.
    pub fn path(&self) -> &'static str {
        match self {
            Refused::Tour(_) => "/tourId",
            Refused::Room(_) => "/room",
            _ => "/channel",
        }
    }
}

impl Request {
    /// From the validated message's `tourId` and `channel` fields.
    pub fn from_fields(tour_id: Option<String>, channel: Option<i32>) -> Self {
        match (tour_id, channel) {
            (Some(tour_id), _) => Request::Tour(tour_id),
            (None, Some(channel)) => {
                Request::Channel(Channel::try_from(channel).unwrap_or(Channel::Unspecified))
            }
            // The schema refuses a message naming neither; treat a bug
            // there as a request for nothing anyone may have.
            (None, None) => Request::Channel(Channel::Unspecified),
        }
    }

    /// The target this request names for `identity`, or why it may not
    /// have it. `"*"` is always allowed: for a restricted token it means
    /// "every tour I may see".
    pub fn resolve(&self, identity: &Identity) -> Result<Target, Refused> {
        match self {
            Request::Tour(tour_id) => tour::resolve(tour_id, identity),
            Request::Channel(Channel::Notifications) => notifications::resolve(identity),
            Request::Channel(Channel::Stats) => stats::resolve(identity),
            Request::Channel(Channel::Unspecified) => Err(Refused::Unknown),
            Request::Room(room) => room::resolve(room, identity),
        }
    }

    /// The target to drop for `unsubscribe`: no permission is needed to
    /// stop receiving something, but a connection without a user has no
    /// notification channel to drop.
    pub fn target_to_drop(&self, identity: &Identity) -> Option<Target> {
        match self {
            Request::Tour(tour_id) => Some(Target::tour(tour_id)),
            Request::Channel(Channel::Notifications) => identity.subject.clone().map(Target::User),
            Request::Channel(Channel::Stats) => Some(Target::Stats),
            Request::Channel(Channel::Unspecified) => None,
            Request::Room(room) => Some(Target::Room(room.clone())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Permissions;

    fn user(sub: &str, admin: bool) -> Identity {
        Identity {
            subject: Some(sub.into()),
            permissions: Permissions::Tours(["tour_paris".to_string()].into()),
            expires_at: None,
            admin,
            rooms: crate::auth::RoomGrant::Only(["support_42".to_string()].into()),
        }
    }

    #[test]
    fn rooms_follow_the_rooms_claim() {
        let alice = user("alice", false);
        assert_eq!(
            Request::Room("support_42".into()).resolve(&alice),
            Ok(Target::Room("support_42".into()))
        );
        let refused = Request::Room("support_43".into()).resolve(&alice);
        assert_eq!(refused, Err(Refused::Room("support_43".into())));
        assert_eq!(refused.map_err(|r| r.path()), Err("/room"));
        // JWT off without --rooms-open: no room.
        assert!(
            Request::Room("support_42".into())
                .resolve(&Identity::anonymous())
                .is_err()
        );
    }

    #[test]
    fn notifications_are_always_the_tokens_own_user() {
        let alice = user("alice", false);
        let request = Request::Channel(Channel::Notifications);
        assert_eq!(request.resolve(&alice), Ok(Target::User("alice".into())));
        assert_eq!(
            request.resolve(&Identity::anonymous()),
            Err(Refused::Anonymous)
        );
    }

    #[test]
    fn stats_needs_the_admin_claim() {
        let request = Request::Channel(Channel::Stats);
        assert_eq!(request.resolve(&user("a", true)), Ok(Target::Stats));
        assert_eq!(request.resolve(&user("a", false)), Err(Refused::NotAdmin));
        assert_eq!(
            request.resolve(&Identity::anonymous()),
            Err(Refused::NotAdmin)
        );
    }

    #[test]
    fn tours_follow_the_tours_claim_and_star_is_always_allowed() {
        let alice = user("alice", false);
        assert!(Request::Tour("tour_paris".into()).resolve(&alice).is_ok());
        assert_eq!(
            Request::Tour("tour_rome".into()).resolve(&alice),
            Err(Refused::Tour("tour_rome".into()))
        );
        assert_eq!(
            Request::Tour("*".into()).resolve(&alice),
            Ok(Target::AllTours)
        );
    }
}
