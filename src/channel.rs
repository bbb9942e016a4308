//! Channels: what a connection can subscribe to, and who may.
//!
//! A subscription names a [`Target`]: a tour (or every tour), the user's
//! own notifications, or the admin statistics. The hub delivers by target,
//! the state numbers and keeps history by target, and the connection never
//! looks inside one. What a client *asks* for ([`Request`]) becomes a
//! target only here, against the connection's [`Identity`]: the user of a
//! notification channel is always the token's `sub`, never a name the
//! client sent, and the stats channel needs the admin claim.
//!
//! Adding a kind of channel means a variant here, its rule in
//! [`Request::resolve`], and the module that feeds it (the state for
//! channels numbered by the stream, like notifications; its own task for
//! live figures, like `stats`).

use crate::auth::Identity;
use crate::protocol::v1::Channel;

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
}

impl Refused {
    /// The JSON pointer of the field the refusal is about.
    pub fn path(&self) -> &'static str {
        match self {
            Refused::Tour(_) => "/tourId",
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
            Request::Tour(tour_id) => {
                let target = Target::tour(tour_id);
                match &target {
                    Target::Tour(id) if !identity.permissions.allows(id) => {
                        Err(Refused::Tour(id.clone()))
                    }
                    _ => Ok(target),
                }
            }
            Request::Channel(Channel::Notifications) => identity
                .subject
                .clone()
                .map(Target::User)
                .ok_or(Refused::Anonymous),
            Request::Channel(Channel::Stats) if identity.admin => Ok(Target::Stats),
            Request::Channel(Channel::Stats) => Err(Refused::NotAdmin),
            Request::Channel(Channel::Unspecified) => Err(Refused::Unknown),
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
        }
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
