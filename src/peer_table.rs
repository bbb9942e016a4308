//! What this instance last heard from each other gateway instance, and
//! when: the one expiring per-instance table that the `stats` board and
//! presence both keep.
//!
//! A live instance reports every interval, so one silent for one and a half
//! intervals is taken for dead and dropped (a killed process never says
//! goodbye); one that says it is leaving is dropped at once. The table
//! holds plain values and no lock: each owner keeps it under its own, next
//! to the rest of its state, and decides what a dropped peer means.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Per-instance values, by instance id, with the time each was last heard.
#[derive(Debug)]
pub struct PeerTable<T> {
    /// How long a peer may stay silent before it is dropped.
    expiry: Duration,
    peers: HashMap<String, Heard<T>>,
}

#[derive(Debug)]
struct Heard<T> {
    value: T,
    at: Instant,
}

impl<T> PeerTable<T> {
    /// An empty table for peers reporting every `interval`.
    pub fn new(interval: Duration) -> Self {
        PeerTable {
            expiry: interval + interval / 2,
            peers: HashMap::new(),
        }
    }

    /// Replaces `id`'s value and marks it heard now; returns the one it had
    /// (`None` when the peer is new).
    pub fn insert(&mut self, id: &str, value: T) -> Option<T> {
        let heard = Heard {
            value,
            at: Instant::now(),
        };
        self.peers
            .insert(id.to_string(), heard)
            .map(|previous| previous.value)
    }

    /// `id`'s value, marked heard now; a new peer starts from `new()`.
    pub fn touch(&mut self, id: &str, new: impl FnOnce() -> T) -> &mut T {
        let heard = self.peers.entry(id.to_string()).or_insert_with(|| Heard {
            value: new(),
            at: Instant::now(),
        });
        heard.at = Instant::now();
        &mut heard.value
    }

    /// Drops `id` (it said it is leaving); returns its value.
    pub fn remove(&mut self, id: &str) -> Option<T> {
        self.peers.remove(id).map(|heard| heard.value)
    }

    /// Drops every peer silent for longer than the expiry; returns them.
    pub fn expire(&mut self) -> Vec<(String, T)> {
        let now = Instant::now();
        let silent: Vec<String> = self
            .peers
            .iter()
            .filter(|(_, heard)| now.duration_since(heard.at) > self.expiry)
            .map(|(id, _)| id.clone())
            .collect();
        silent
            .into_iter()
            .filter_map(|id| self.peers.remove(&id).map(|heard| (id, heard.value)))
            .collect()
    }

    /// The live peers' values.
    pub fn values(&self) -> impl Iterator<Item = &T> {
        self.peers.values().map(|heard| &heard.value)
    }

    /// The live peers, with their ids.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &T)> {
        self.peers
            .iter()
            .map(|(id, heard)| (id.as_str(), &heard.value))
    }

    /// How many peers are live.
    pub fn len(&self) -> usize {
        self.peers.len()
    }

    /// Whether no peer is live.
    pub fn is_empty(&self) -> bool {
        self.peers.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_silent_peer_expires_after_one_and_a_half_intervals_and_a_heard_one_stays() {
        let mut table = PeerTable::new(Duration::from_millis(100));
        assert_eq!(table.insert("b", 1), None);
        assert_eq!(table.insert("b", 2), Some(1));
        table.insert("c", 3);
        std::thread::sleep(Duration::from_millis(90));
        *table.touch("c", || 0) += 1;
        assert!(table.expire().is_empty(), "nobody is past 150 ms yet");
        std::thread::sleep(Duration::from_millis(80));
        assert_eq!(table.expire(), vec![("b".to_string(), 2)]);
        assert_eq!(table.values().copied().collect::<Vec<_>>(), vec![4]);
        assert_eq!(table.remove("c"), Some(4));
        assert!(table.is_empty());
    }

    #[test]
    fn touch_starts_a_new_peer_from_its_default() {
        let mut table: PeerTable<Vec<u32>> = PeerTable::new(Duration::from_secs(1));
        table.touch("b", Vec::new).push(7);
        table.touch("b", Vec::new).push(8);
        assert_eq!(table.iter().collect::<Vec<_>>(), vec![("b", &vec![7, 8])]);
        assert_eq!(table.len(), 1);
    }
}
