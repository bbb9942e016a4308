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
/// Tours are the one kind with rules here ("every tour", and per-tour
/// permissions); every other channel (notifications, stats, and any kind
/// added later) is registered as it was subscribed, so a new kind of
/// channel does not touch this type.
#[derive(Debug, Clone)]
pub struct Subscriptions {
    explicit: bool,
    /// Every channel subscribed explicitly, `AllTours` (`"*"`) included.
    channels: BTreeSet<Target>,
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
            permissions,
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
    pub fn unsubscribe(&mut self, target: &Target) -> bool {
        self.explicit = true;
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn implicit_until_the_first_subscribe() {
        let mut subs = Subscriptions::default();
        assert_eq!(subs.effective(), vec![Target::AllTours]);
        subs.subscribe(&Target::tour("paris"));
        assert_eq!(subs.effective(), vec![Target::Tour("paris".into())]);
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
        assert_eq!(subs.effective(), vec![Target::AllTours]);
        subs.unsubscribe(&Target::AllTours);
        assert_eq!(subs.effective(), vec![Target::Tour("paris".into())]);
    }
}
