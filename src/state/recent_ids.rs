//! A bounded set of recently seen ids: the duplicate filter.
//!
//! Written by hand because it is twenty lines: a hash set for lookups and a
//! queue for eviction order, so memory stays fixed however long we run.
//! Both hold the same shared string (one allocation per id), and the set
//! hashes with aHash, seeded per process: every replayed event passes here,
//! and SipHash was a visible share of a replay.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;

/// Remembers the last `capacity` ids inserted.
pub struct RecentIds {
    capacity: usize,
    set: HashSet<Arc<str>, ahash::RandomState>,
    order: VecDeque<Arc<str>>,
}

impl RecentIds {
    /// A filter remembering up to `capacity` ids (0 remembers none).
    pub fn new(capacity: usize) -> Self {
        RecentIds {
            capacity,
            set: HashSet::default(),
            order: VecDeque::new(),
        }
    }

    /// How many ids it remembers at most.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Whether `id` is among the remembered ids.
    pub fn contains(&self, id: &str) -> bool {
        self.set.contains(id)
    }

    /// Remembers `id`, forgetting the oldest id when full.
    pub fn insert(&mut self, id: &str) {
        if self.capacity == 0 || self.set.contains(id) {
            return;
        }
        if self.order.len() == self.capacity
            && let Some(oldest) = self.order.pop_front()
        {
            self.set.remove(&oldest);
        }
        let id: Arc<str> = Arc::from(id);
        self.set.insert(Arc::clone(&id));
        self.order.push_back(id);
    }

    /// The remembered ids, oldest first (for a checkpoint).
    pub fn oldest_first(&self) -> impl Iterator<Item = &str> {
        self.order.iter().map(|id| &**id)
    }
}

#[cfg(test)]
mod tests {
    use super::RecentIds;

    #[test]
    fn forgets_the_oldest_when_full() {
        let mut ids = RecentIds::new(2);
        ids.insert("a");
        ids.insert("b");
        ids.insert("c");
        assert!(!ids.contains("a"));
        assert!(ids.contains("b") && ids.contains("c"));
    }
}
