//! One connection's subscriptions, and what the hub must deliver to it.

use std::collections::BTreeSet;

use crate::auth::Permissions;
use crate::channel::Target;

/// A connection's subscription state: the channels it subscribed to, by
/// [`Target`], under the permissions of its token.
///
/// A connection that never subscribed receives every tour (as the old
/// service sent every event to everyone); its first `subscribe` switches
/// it to explicit subscriptions. The hub holds exactly the *effective*
/// registrations: `AllTours` alone while every tour is covered, the
/// individual tours otherwise, so an event is never delivered twice. A
/// connection whose token grants only some tours never covers more than
/// those: for it, "every tour" means every tour it may see.
///
/// Each tour subscribed by name also registers [`Target::Viewing`] (the
/// connection is one of the tour's viewers, counted whatever else covers
/// the tour), and [`Target::Viewers`] when it asked for the count.
///
/// Tours are the one kind with rules here ("every tour", and per-tour
/// permissions); every other channel (notifications, stats, and any kind
/// added later) is registered as it was subscribed, so a new kind of
/// channel does not touch this type.
#[derive(Debug, Clone)]
pub struct Subscriptions {
    explicit: bool,
    /// Every channel subscribed explicitly, `AllTours` (`"*"`) included.
    channels: BTreeSet<Target>,
    /// Tours subscribed by name with `viewers`.
    viewers: BTreeSet<String>,
    permissions: Permissions,
}

impl Default for Subscriptions {
    fn default() -> Self {
        Subscriptions::new(Permissions::All)
    }
}

impl Subscriptions {
    /// No subscriptions yet, under `permissions`.
    pub fn new(permissions: Permissions) -> Self {
        Subscriptions {
            explicit: false,
            channels: BTreeSet::new(),
            viewers: BTreeSet::new(),
            permissions,
        }
    }

    /// Explicitly nothing, under `permissions`: for a connection whose
    /// subscriptions are all named up front (an event stream's query), so
    /// that naming none is not the every-tour delivery of a connection
    /// that never subscribed.
    pub fn none(permissions: Permissions) -> Self {
        Subscriptions {
            explicit: true,
            ..Subscriptions::new(permissions)
        }
    }

    /// What the connection may see.
    pub fn permissions(&self) -> &Permissions {
        &self.permissions
    }

    /// Replaces the permissions (a refreshed token); returns the explicitly
    /// subscribed tours they no longer allow, which are dropped.
    pub fn set_permissions(&mut self, permissions: Permissions) -> Vec<String> {
        let revoked: Vec<String> = self
            .channels
            .iter()
            .filter_map(|target| match target {
                Target::Tour(id) if !permissions.allows(id) => Some(id.clone()),
                _ => None,
            })
            .collect();
        for tour in &revoked {
            self.channels.remove(&Target::Tour(tour.clone()));
            self.viewers.remove(tour);
        }
        self.permissions = permissions;
        revoked
    }

    /// The hub registrations matching this state.
    pub fn effective(&self) -> Vec<Target> {
        let mut targets = self.effective_tours();
        targets.extend(
            self.channels
                .iter()
                .filter(|target| !target.is_tour())
                .cloned(),
        );
        for target in &self.channels {
            if let Target::Tour(id) = target {
                targets.push(Target::Viewing(id.clone()));
                if self.viewers.contains(id) {
                    targets.push(Target::Viewers(id.clone()));
                }
            }
        }
        targets
    }

    fn effective_tours(&self) -> Vec<Target> {
        let covers_all = !self.explicit || self.channels.contains(&Target::AllTours);
        match (&self.permissions, covers_all) {
            (Permissions::All, true) => vec![Target::AllTours],
            (Permissions::Tours(permitted), true) => {
                permitted.iter().cloned().map(Target::Tour).collect()
            }
            (permissions, false) => self
                .channels
                .iter()
                .filter(|target| matches!(target, Target::Tour(id) if permissions.allows(id)))
                .cloned()
                .collect(),
        }
    }

    /// Number of explicit subscriptions (`"*"` and each channel count as one).
    pub fn len(&self) -> usize {
        self.channels.len()
    }

    /// Whether there are no explicit subscriptions.
    pub fn is_empty(&self) -> bool {
        self.channels.is_empty()
    }

    /// Whether `target` is already subscribed explicitly.
    pub fn contains(&self, target: &Target) -> bool {
        self.channels.contains(target)
    }

    /// Records a subscription.
    pub fn subscribe(&mut self, target: &Target) {
        self.explicit = true;
        self.channels.insert(target.clone());
    }

    /// Records an unsubscription; returns whether it was subscribed.
    /// Dropping a tour drops its `viewers` too.
    pub fn unsubscribe(&mut self, target: &Target) -> bool {
        self.explicit = true;
        if let Target::Tour(id) = target {
            self.viewers.remove(id);
        }
        self.channels.remove(target)
    }

    /// Records a room joined. Unlike a `subscribe`, joining a room does not
    /// end the implicit every-tour delivery of a connection that never
    /// subscribed: a room is not a tour subscription.
    pub fn join(&mut self, room: &Target) {
        self.channels.insert(room.clone());
    }

    /// Records a room left; returns whether it was joined.
    pub fn leave(&mut self, room: &Target) -> bool {
        self.channels.remove(room)
    }

    /// Rooms joined.
    pub fn rooms(&self) -> impl Iterator<Item = &Target> {
        self.channels.iter().filter(|target| target.is_room())
    }

    /// Explicit subscriptions that are not rooms (tours, `"*"`, channels).
    pub fn channel_count(&self) -> usize {
        self.channels.len() - self.rooms().count()
    }

    /// Whether a tour subscribed by name also gets its `viewers` count (a
    /// tour not subscribed by name never does).
    pub fn set_viewers(&mut self, tour_id: &str, on: bool) {
        if on && self.channels.contains(&Target::Tour(tour_id.to_string())) {
            self.viewers.insert(tour_id.to_string());
        } else {
            self.viewers.remove(tour_id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn implicit_until_the_first_subscribe() {
        let mut subs = Subscriptions::default();
        assert_eq!(subs.effective(), vec![Target::AllTours]);
        subs.subscribe(&Target::tour("paris"));
        assert_eq!(
            subs.effective(),
            vec![
                Target::Tour("paris".into()),
                Target::Viewing("paris".into())
            ]
        );
    }

    #[test]
    fn none_is_nothing_until_a_subscribe() {
        let mut subs = Subscriptions::none(Permissions::All);
        assert_eq!(subs.effective(), vec![]);
        subs.subscribe(&Target::tour("paris"));
        assert!(subs.unsubscribe(&Target::tour("paris")));
        assert_eq!(subs.effective(), vec![]);
    }

    #[test]
    fn named_tours_are_viewed_and_viewers_follow_the_tour() {
        let mut subs = Subscriptions::default();
        subs.set_viewers("paris", true);
        assert_eq!(subs.effective(), vec![Target::AllTours]);
        subs.subscribe(&Target::tour("paris"));
        subs.subscribe(&Target::AllTours);
        subs.set_viewers("paris", true);
        // Covered by "*" for delivery, still a viewer by name.
        assert_eq!(
            subs.effective(),
            vec![
                Target::AllTours,
                Target::Viewing("paris".into()),
                Target::Viewers("paris".into())
            ]
        );
        assert!(subs.unsubscribe(&Target::tour("paris")));
        assert_eq!(subs.effective(), vec![Target::AllTours]);
        subs.subscribe(&Target::tour("paris"));
        assert!(
            !subs.effective().contains(&Target::Viewers("paris".into())),
            "a new subscription asks for viewers afresh"
        );
    }

    #[test]
    fn restricted_connections_only_ever_cover_their_tours() {
        let permitted = Permissions::Tours(["paris".to_string()].into());
        let mut subs = Subscriptions::new(permitted);
        assert_eq!(subs.effective(), vec![Target::Tour("paris".into())]);
        subs.subscribe(&Target::AllTours);
        assert_eq!(subs.effective(), vec![Target::Tour("paris".into())]);
        let revoked = subs.set_permissions(Permissions::Tours(Default::default()));
        assert!(revoked.is_empty());
        assert!(subs.effective().is_empty());
    }

    #[test]
    fn channels_are_registered_next_to_tours() {
        let mut subs = Subscriptions::default();
        subs.subscribe(&Target::User("alice".into()));
        assert_eq!(subs.effective(), vec![Target::User("alice".into())]);
        subs.subscribe(&Target::AllTours);
        assert_eq!(
            subs.effective(),
            vec![Target::AllTours, Target::User("alice".into())]
        );
        assert_eq!(subs.len(), 2);
        assert!(subs.unsubscribe(&Target::User("alice".into())));
        assert_eq!(subs.effective(), vec![Target::AllTours]);
    }

    #[test]
    fn joining_a_room_keeps_the_implicit_every_tour_delivery() {
        let mut subs = Subscriptions::default();
        let room = Target::Room("support_42".into());
        subs.join(&room);
        assert_eq!(subs.effective(), vec![Target::AllTours, room.clone()]);
        assert_eq!((subs.rooms().count(), subs.channel_count()), (1, 0));
        assert!(subs.leave(&room));
        assert_eq!(subs.effective(), vec![Target::AllTours]);
    }

    #[test]
    fn star_covers_individual_tours_until_removed() {
        let mut subs = Subscriptions::default();
        subs.subscribe(&Target::tour("paris"));
        subs.subscribe(&Target::AllTours);
        let viewing = Target::Viewing("paris".into());
        assert_eq!(subs.effective(), vec![Target::AllTours, viewing.clone()]);
        subs.unsubscribe(&Target::AllTours);
        assert_eq!(
            subs.effective(),
            vec![Target::Tour("paris".into()), viewing]
        );
    }
}
