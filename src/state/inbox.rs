//! The notification inbox: the last notifications of every user, for
//! recovery with `since`.
//!
//! One ring for all users, not one per user: memory is bounded by the
//! number of notifications kept, whatever the number of users. A user's
//! recovery filters the ring; what the ring has dropped is read back from
//! the stream, like a tour's evicted history.

use std::collections::VecDeque;
use std::sync::Arc;

use crate::protocol::codec::Encoded;

/// Recent notifications, oldest first.
pub struct Inbox {
    kept: VecDeque<Kept>,
    capacity: usize,
    /// `seq` of the newest notification dropped from the ring (0: none).
    evicted_through: u64,
}

struct Kept {
    seq: u64,
    user_id: Box<str>,
    message: Arc<Encoded>,
}

impl Inbox {
    /// An empty inbox keeping the last `capacity` notifications.
    pub fn new(capacity: usize) -> Self {
        Inbox {
            kept: VecDeque::new(),
            capacity: capacity.max(1),
            evicted_through: 0,
        }
    }

    /// Keeps a notification numbered `seq` (greater than every earlier one).
    pub fn push(&mut self, seq: u64, user_id: &str, message: Arc<Encoded>) {
        if self.kept.len() == self.capacity
            && let Some(evicted) = self.kept.pop_front()
        {
            self.evicted_through = evicted.seq;
        }
        self.kept.push_back(Kept {
            seq,
            user_id: user_id.into(),
            message,
        });
    }

    /// Keeps a notification restored from a checkpoint; `false` (and
    /// nothing kept) when `seq` is not above the newest kept one.
    pub fn push_checked(&mut self, seq: u64, user_id: &str, message: Arc<Encoded>) -> bool {
        if self.kept.back().is_some_and(|newest| newest.seq >= seq) || seq <= self.evicted_through {
            return false;
        }
        self.push(seq, user_id, message);
        true
    }

    /// Records that notifications through `seq` are no longer kept.
    pub fn mark_evicted(&mut self, seq: u64) {
        self.evicted_through = self.evicted_through.max(seq);
    }

    /// `seq` of the newest notification dropped (0: none).
    pub fn evicted_through(&self) -> u64 {
        self.evicted_through
    }

    /// The kept notifications, oldest first: `(seq, user, message)`.
    pub fn oldest_first(&self) -> impl Iterator<Item = (u64, &str, &Encoded)> {
        self.kept
            .iter()
            .map(|kept| (kept.seq, &*kept.user_id, &*kept.message))
    }

    /// `user_id`'s notifications after `since_seq`, oldest first; `None`
    /// when the ring dropped some that may have been theirs.
    pub fn since(&self, user_id: &str, since_seq: u64) -> Option<Vec<Arc<Encoded>>> {
        if self.evicted_through > since_seq {
            return None;
        }
        // Newest last: skip from the back only what is newer than `since`.
        let start = self.kept.partition_point(|kept| kept.seq <= since_seq);
        Some(
            self.kept
                .range(start..)
                .filter(|kept| &*kept.user_id == user_id)
                .map(|kept| Arc::clone(&kept.message))
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::ServerMessage;
    use crate::protocol::v1::Pong;

    fn message(n: u64) -> Arc<Encoded> {
        Arc::new(Encoded::new(&ServerMessage::Pong(Pong {
            request_id: Some(n.to_string()),
            timestamp: "t".into(),
        })))
    }

    #[test]
    fn a_user_gets_only_their_own_notifications_after_since() {
        let mut inbox = Inbox::new(10);
        inbox.push(3, "alice", message(3));
        inbox.push(5, "bob", message(5));
        inbox.push(8, "alice", message(8));
        assert_eq!(inbox.since("alice", 0).map(|v| v.len()), Some(2));
        assert_eq!(inbox.since("alice", 3).map(|v| v.len()), Some(1));
        assert_eq!(inbox.since("bob", 5).map(|v| v.len()), Some(0));
    }

    #[test]
    fn past_the_ring_the_answer_is_unknown() {
        let mut inbox = Inbox::new(2);
        for seq in 1..=4 {
            inbox.push(seq, "alice", message(seq));
        }
        assert_eq!(inbox.kept.len(), 2);
        assert!(inbox.since("alice", 1).is_none());
        assert_eq!(inbox.since("alice", 2).map(|v| v.len()), Some(2));
    }
}
