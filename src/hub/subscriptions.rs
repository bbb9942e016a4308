//! One connection's subscriptions, and what the hub must deliver to it.

use std::collections::BTreeSet;

use crate::auth::Permissions;
use crate::channel::Target;

/// A connection's subscription state.
///
/// A connection that never subscribed receives every tour (as the old
/// service broadcast to everyone); its first `subscribe` switches it to
/// explicit subscriptions. The hub holds exactly the *effective*
/// registrations: `All` alone while every tour is covered, the individual
/// tours otherwise, so an event is never delivered twice. A connection whose
/// token grants only some tours never covers more than those: for it, "every
/// tour" means every tour it may see.
///
/// Channels other than tours (notifications, stats) are registered as
/// they are; subscribing to one is a first subscribe like any other.
#[derive(Debug, Clone)]
pub struct Subscriptions {
    explicit: bool,
    all: bool,
    tours: BTreeSet<String>,
    /// Subscribed non-tour channels.
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
            all: false,
            tours: BTreeSet::new(),
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
            .tours
            .iter()
            .filter(|t| !permissions.allows(t))
            .cloned()
            .collect();
        for tour in &revoked {
            self.tours.remove(tour);
        }
        self.permissions = permissions;
        revoked
    }

    /// The hub registrations matching this state.
    pub fn effective(&self) -> Vec<Target> {
        let mut targets = self.effective_tours();
        targets.extend(self.channels.iter().cloned());
        targets
    }

    fn effective_tours(&self) -> Vec<Target> {
        let covers_all = !self.explicit || self.all;
        match (&self.permissions, covers_all) {
            (Permissions::All, true) => vec![Target::All],
            (Permissions::Tours(permitted), true) => {
                permitted.iter().cloned().map(Target::Tour).collect()
            }
            (permissions, false) => self
                .tours
                .iter()
                .filter(|t| permissions.allows(t))
                .cloned()
                .map(Target::Tour)
                .collect(),
        }
    }

    /// Number of explicit subscriptions (`"*"` and each channel count as one).
    pub fn len(&self) -> usize {
        self.tours.len() + usize::from(self.all) + self.channels.len()
    }

    /// Whether there are no explicit subscriptions.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether `target` is already subscribed explicitly.
    pub fn contains(&self, target: &Target) -> bool {
        match target {
            Target::All => self.all,
            Target::Tour(id) => self.tours.contains(id),
            channel => self.channels.contains(channel),
        }
    }

    /// Records a subscription.
    pub fn subscribe(&mut self, target: &Target) {
        self.explicit = true;
        match target {
            Target::All => self.all = true,
            Target::Tour(id) => {
                self.tours.insert(id.clone());
            }
            channel => {
                self.channels.insert(channel.clone());
            }
        }
    }

    /// Records an unsubscription; returns whether it was subscribed.
    pub fn unsubscribe(&mut self, target: &Target) -> bool {
        self.explicit = true;
        match target {
            Target::All => std::mem::take(&mut self.all),
            Target::Tour(id) => self.tours.remove(id),
            channel => self.channels.remove(channel),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn implicit_until_the_first_subscribe() {
        let mut subs = Subscriptions::default();
        assert_eq!(subs.effective(), vec![Target::All]);
        subs.subscribe(&Target::tour("paris"));
        assert_eq!(subs.effective(), vec![Target::Tour("paris".into())]);
    }

    #[test]
    fn restricted_connections_only_ever_cover_their_tours() {
        let permitted = Permissions::Tours(["paris".to_string()].into());
        let mut subs = Subscriptions::new(permitted);
        assert_eq!(subs.effective(), vec![Target::Tour("paris".into())]);
        subs.subscribe(&Target::All);
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
        subs.subscribe(&Target::All);
        assert_eq!(
            subs.effective(),
            vec![Target::All, Target::User("alice".into())]
        );
        assert_eq!(subs.len(), 2);
        assert!(subs.unsubscribe(&Target::User("alice".into())));
        assert_eq!(subs.effective(), vec![Target::All]);
    }

    #[test]
    fn star_covers_individual_tours_until_removed() {
        let mut subs = Subscriptions::default();
        subs.subscribe(&Target::tour("paris"));
        subs.subscribe(&Target::All);
        assert_eq!(subs.effective(), vec![Target::All]);
        subs.unsubscribe(&Target::All);
        assert_eq!(subs.effective(), vec![Target::Tour("paris".into())]);
    }
}
