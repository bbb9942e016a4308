//! Viewer counts on tours: how many connections are subscribed to a tour by
//! name (not through `"*"`), on every instance, for the subscribers that
//! asked for `viewers`.
//!
//! The hub already knows this instance's share: each named subscription
//! registers [`Target::Viewing`], and each request for the count
//! [`Target::Viewers`] (see [`crate::hub::Subscriptions`]). Peers' shares
//! come with their full presence reports, once per `STATS_INTERVAL`. The
//! count goes out on change, checked once per interval, so at most once per
//! interval; a new subscriber gets the current count at once.

use std::collections::HashMap;

use chrono::Utc;
use parking_lot::Mutex;

use super::Presence;
use crate::channel::Target;
use crate::hub::Hub;
use crate::protocol::ServerMessage;
use crate::protocol::codec::Encoded;
use crate::protocol::v1::Viewers;
use crate::time::rfc3339;

/// This instance's named subscribers, per tour (tours with none left out).
pub fn local_counts(hub: &Hub) -> Vec<(String, usize)> {
    hub.member_counts(|target| match target {
        Target::Viewing(tour_id) => Some(tour_id.clone()),
        _ => None,
    })
}

/// A tour's `viewers` message now: this instance's named subscribers and
/// every live peer's.
pub fn current(hub: &Hub, presence: &Presence, tour_id: &str) -> Viewers {
    let local =
        u32::try_from(hub.member_count(&Target::Viewing(tour_id.to_string()))).unwrap_or(u32::MAX);
    Viewers {
        tour_id: tour_id.to_string(),
        count: local.saturating_add(presence.remote_viewers(tour_id)),
        timestamp: rfc3339(Utc::now()),
    }
}

/// The count each watched tour's subscribers were last sent.
#[derive(Debug, Default)]
pub struct ViewerCounts {
    sent: Mutex<HashMap<String, u32>>,
}

impl ViewerCounts {
    /// The tour's `viewers` for a new subscriber. The first watcher's count
    /// is the one every watcher has been sent, so the next check sends only
    /// a change.
    pub fn for_new_watcher(&self, hub: &Hub, presence: &Presence, tour_id: &str) -> Viewers {
        let viewers = current(hub, presence, tour_id);
        self.sent
            .lock()
            .entry(tour_id.to_string())
            .or_insert(viewers.count);
        viewers
    }

    /// Sends `viewers` for every watched tour whose count changed since the
    /// last call; returns how many tours it sent. Call once per interval.
    pub fn send(&self, hub: &Hub, presence: &Presence) -> usize {
        let watched = hub.member_counts(|target| match target {
            Target::Viewers(tour_id) => Some(tour_id.clone()),
            _ => None,
        });
        let mut sent = self.sent.lock();
        // Tours nobody watches any more: forget, so a new watcher's first
        // change is sent.
        sent.retain(|tour_id, _| watched.iter().any(|(watched, _)| watched == tour_id));
        let mut tours = 0;
        for (tour_id, _) in watched {
            let viewers = current(hub, presence, &tour_id);
            if sent.get(&tour_id) == Some(&viewers.count) {
                continue;
            }
            sent.insert(tour_id.clone(), viewers.count);
            let target = Target::Viewers(tour_id);
            hub.fan_out(&target, &Encoded::new(&ServerMessage::Viewers(viewers)));
            tours += 1;
        }
        tours
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::hub::{ClientHandle, ConnId, outbox};
    use crate::protocol::codec::Encoding;
    use crate::protocol::v1::{PeerPresence, PeerTourViewers};

    fn register(hub: &Hub, target: Target, id: ConnId) -> outbox::Receiver {
        let (tx, rx) = outbox::channel(16);
        hub.add(&target, &ClientHandle::new(id, Encoding::Json, tx));
        rx
    }

    fn counts(rx: &outbox::Receiver) -> Vec<u64> {
        let mut counts = Vec::new();
        while let Ok(frame) = rx.try_recv() {
            let json: serde_json::Value = serde_json::from_slice(&frame).expect("json");
            assert_eq!(json["type"], "viewers");
            counts.push(json["count"].as_u64().expect("count"));
        }
        counts
    }

    #[test]
    fn counts_named_viewers_here_and_on_peers_and_sends_only_changes() {
        let hub = Hub::new();
        let presence = Presence::new("a".into(), Duration::from_secs(1), 100);
        let paris = || "paris".to_string();
        let watcher = register(&hub, Target::Viewers(paris()), 1);
        let _viewing = register(&hub, Target::Viewing(paris()), 1);
        assert_eq!(presence.viewers_for_new_watcher(&hub, "paris").count, 1);
        assert_eq!(presence.send_viewers(&hub), 0, "the watcher has 1 already");
        let _other = register(&hub, Target::Viewing(paris()), 2);
        // A "*" subscriber or another tour's is not a viewer of paris.
        let _star = register(&hub, Target::AllTours, 3);
        let _rome = register(&hub, Target::Viewing("rome".into()), 4);
        presence.receive(
            &hub,
            PeerPresence {
                instance_id: "b".into(),
                full: true,
                viewers: vec![PeerTourViewers {
                    tour_id: paris(),
                    count: 5,
                }],
                ..PeerPresence::default()
            },
        );
        assert_eq!(presence.send_viewers(&hub), 1);
        assert_eq!(counts(&watcher), vec![7]);
        assert_eq!(presence.send_viewers(&hub), 0);
        hub.remove(&Target::Viewing(paris()), 2);
        assert_eq!(presence.send_viewers(&hub), 1);
        assert_eq!(counts(&watcher), vec![6]);
        let mut local = local_counts(&hub);
        local.sort();
        assert_eq!(local, vec![(paris(), 1), ("rome".to_string(), 1)]);
    }
}
