//! A bounded history numbered by `seq`: the one shape behind every kind of
//! recovery memory (a tour's last events, the notification inbox, the
//! positions the projection skipped, and a room's last messages next).
//!
//! It keeps the newest `capacity` items, oldest first, and remembers the
//! highest `seq` it dropped (the *watermark*): a recovery from `since`
//! can be served from memory only when nothing after `since` was dropped,
//! and otherwise must read the stream back. Items are pushed in increasing
//! `seq` order, so lookups are binary searches.
//!
//! Written by hand: it is a `VecDeque` and a number, and what matters is
//! the watermark's rule, which no ring-buffer crate keeps.

use std::collections::VecDeque;

/// The newest `capacity` items, each under its `seq`, and the highest
/// `seq` dropped to keep it bounded.
#[derive(Debug, Clone)]
pub struct Ring<T> {
    items: VecDeque<(u64, T)>,
    capacity: usize,
    /// `seq` of the newest item dropped (0: none).
    dropped_through: u64,
}

impl<T> Ring<T> {
    /// An empty ring keeping at most `capacity` items (at least one).
    pub fn new(capacity: usize) -> Self {
        Ring {
            items: VecDeque::new(),
            capacity: capacity.max(1),
            dropped_through: 0,
        }
    }

    /// Keeps `item` under `seq` (greater than every `seq` pushed before),
    /// dropping the oldest item when full; returns the dropped one.
    pub fn push(&mut self, seq: u64, item: T) -> Option<(u64, T)> {
        let dropped = if self.items.len() >= self.capacity {
            self.items.pop_front()
        } else {
            None
        };
        if let Some((dropped_seq, _)) = &dropped {
            self.dropped_through = *dropped_seq;
        }
        self.items.push_back((seq, item));
        dropped
    }

    /// [`Ring::push`] for input that may be out of order (a checkpoint
    /// read back): `false`, and nothing kept, when `seq` is not above both
    /// the newest item and the watermark.
    pub fn push_checked(&mut self, seq: u64, item: T) -> bool {
        if seq <= self.dropped_through || self.newest_seq().is_some_and(|newest| newest >= seq) {
            return false;
        }
        self.push(seq, item);
        true
    }

    /// Records that items through `seq` are not kept (restoring a ring
    /// that had dropped them); the watermark only moves up.
    pub fn mark_dropped(&mut self, seq: u64) {
        self.dropped_through = self.dropped_through.max(seq);
    }

    /// `seq` of the newest item dropped (0: none).
    pub fn dropped_through(&self) -> u64 {
        self.dropped_through
    }

    /// Whether every item after `since` is still here: nothing newer than
    /// `since` was dropped.
    pub fn holds_all_after(&self, since: u64) -> bool {
        self.dropped_through <= since
    }

    /// The items after `since`, oldest first (found by binary search).
    pub fn after(&self, since: u64) -> impl Iterator<Item = &(u64, T)> {
        let start = self.items.partition_point(|(seq, _)| *seq <= since);
        self.items.range(start..)
    }

    /// Whether an item is kept under `seq`.
    pub fn contains(&self, seq: u64) -> bool {
        self.items
            .binary_search_by_key(&seq, |(kept, _)| *kept)
            .is_ok()
    }

    /// `seq` of the newest item kept.
    pub fn newest_seq(&self) -> Option<u64> {
        self.items.back().map(|(seq, _)| *seq)
    }

    /// The newest `n` items, oldest first.
    pub fn newest(&self, n: usize) -> impl Iterator<Item = &(u64, T)> {
        self.items.range(self.items.len().saturating_sub(n)..)
    }

    /// The watermark the ring would have if it kept only its newest `n`
    /// items (what a checkpoint keeping fewer must say it dropped).
    pub fn dropped_through_keeping(&self, n: usize) -> u64 {
        let dropped = self.items.len().saturating_sub(n);
        match dropped.checked_sub(1) {
            Some(newest_dropped) => self.items[newest_dropped].0,
            None => self.dropped_through,
        }
    }

    /// Every item kept, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &(u64, T)> {
        self.items.iter()
    }

    /// How many items are kept.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether nothing is kept.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Most items kept.
    pub fn capacity(&self) -> usize {
        self.capacity
    }
}

#[cfg(test)]
mod tests {
    use super::Ring;

    fn ring_of(capacity: usize, seqs: &[u64]) -> Ring<char> {
        let mut ring = Ring::new(capacity);
        for &seq in seqs {
            ring.push(seq, char::from(b'a' + (seq % 26) as u8));
        }
        ring
    }

    fn seqs<'a, T: 'a>(items: impl Iterator<Item = &'a (u64, T)>) -> Vec<u64> {
        items.map(|(seq, _)| *seq).collect()
    }

    #[test]
    fn keeps_the_newest_and_remembers_the_highest_seq_dropped() {
        let mut ring = ring_of(3, &[2, 5, 7]);
        assert_eq!(ring.dropped_through(), 0);
        assert_eq!(ring.push(9, 'x'), Some((2, 'c')));
        assert_eq!(ring.push(12, 'y').map(|(seq, _)| seq), Some(5));
        assert_eq!(seqs(ring.iter()), [7, 9, 12]);
        assert_eq!((ring.len(), ring.capacity()), (3, 3));
        assert_eq!(ring.dropped_through(), 5);
        assert_eq!(ring.newest_seq(), Some(12));
    }

    #[test]
    fn a_zero_capacity_keeps_one() {
        let ring = ring_of(0, &[1, 2]);
        assert_eq!(seqs(ring.iter()), [2]);
        assert_eq!(ring.dropped_through(), 1);
    }

    #[test]
    fn after_since_is_served_only_while_nothing_newer_was_dropped() {
        let ring = ring_of(3, &[2, 5, 7, 9]);
        // 2 was dropped: from 2 on memory holds everything, before it not.
        assert!(ring.holds_all_after(2));
        assert!(ring.holds_all_after(8));
        assert!(!ring.holds_all_after(1));
        assert_eq!(seqs(ring.after(2)), [5, 7, 9]);
        assert_eq!(seqs(ring.after(5)), [7, 9]);
        assert_eq!(seqs(ring.after(6)), [7, 9]);
        assert_eq!(seqs(ring.after(9)), Vec::<u64>::new());
        assert_eq!(seqs(ring.after(100)), Vec::<u64>::new());
    }

    #[test]
    fn contains_finds_kept_seqs_only() {
        let ring = ring_of(3, &[2, 5, 7, 9]);
        assert!(ring.contains(5) && ring.contains(9));
        assert!(!ring.contains(2), "dropped");
        assert!(!ring.contains(6), "never pushed");
    }

    #[test]
    fn keeping_fewer_moves_the_watermark_to_the_newest_left_out() {
        let ring = ring_of(4, &[3, 4, 8, 10]);
        assert_eq!(ring.dropped_through_keeping(4), 0);
        assert_eq!(ring.dropped_through_keeping(9), 0);
        assert_eq!(ring.dropped_through_keeping(2), 4);
        assert_eq!(ring.dropped_through_keeping(0), 10);
        assert_eq!(seqs(ring.newest(2)), [8, 10]);
        assert_eq!(seqs(ring.newest(9)), [3, 4, 8, 10]);
        let full = ring_of(2, &[1, 2, 3]);
        assert_eq!(full.dropped_through_keeping(2), 1);
    }

    #[test]
    fn checked_pushes_refuse_what_is_not_newer() {
        let mut ring: Ring<()> = Ring::new(4);
        ring.mark_dropped(5);
        ring.mark_dropped(3);
        assert_eq!(ring.dropped_through(), 5, "the watermark only moves up");
        assert!(!ring.push_checked(5, ()), "at the watermark");
        assert!(ring.push_checked(6, ()));
        assert!(!ring.push_checked(6, ()), "not above the newest");
        assert!(ring.push_checked(8, ()));
        assert_eq!(seqs(ring.iter()), [6, 8]);
    }
}
