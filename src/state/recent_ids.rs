//! A bounded set of recently seen ids: the duplicate filter.
//!
//! Written by hand because it is twenty lines: a hash set for lookups and a
//! queue for eviction order, so memory stays fixed however long we run.

use std::collections::{HashSet, VecDeque};

/// Remembers the last `capacity` ids inserted.
pub struct RecentIds {
    capacity: usize,
    set: HashSet<String>,
    order: VecDeque<String>,
}

impl RecentIds {
    /// A filter remembering up to `capacity` ids (0 remembers none).
    pub fn new(capacity: usize) -> Self {
        RecentIds {
            capacity,
            set: HashSet::new(),
            order: VecDeque::new(),
        }
    }

    /// Whether `id` is among the remembered ids.
    pub fn contains(&self, id: &str) -> bool {
        self.set.contains(id)
    }

    /// Remembers `id`, forgetting the oldest id when full.
    pub fn insert(&mut self, id: String) {
        if self.capacity == 0 || self.set.contains(&id) {
            return;
        }
        if self.order.len() == self.capacity
            && let Some(oldest) = self.order.pop_front()
        {
            self.set.remove(&oldest);
        }
        self.set.insert(id.clone());
        self.order.push_back(id);
    }

    /// The remembered ids, oldest first (for a checkpoint).
    pub fn oldest_first(&self) -> impl Iterator<Item = &str> {
        self.order.iter().map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::RecentIds;

    #[test]
    fn forgets_the_oldest_when_full() {
        let mut ids = RecentIds::new(2);
        ids.insert("a".into());
        ids.insert("b".into());
        ids.insert("c".into());
        assert!(!ids.contains("a"));
        assert!(ids.contains("b") && ids.contains("c"));
    }
}
