//! The notification inbox: the last notifications of every user, for
//! recovery with `since`.
//!
//! One ring for all users, not one per user: memory is bounded by the
//! number of notifications kept, whatever the number of users. A user's
//! recovery filters the ring; what the ring has dropped is read back from
//! the stream, like a tour's evicted history.

use std::sync::Arc;

use super::Ring;
use crate::protocol::codec::Encoded;

/// Recent notifications, oldest first.
pub struct Inbox {
    kept: Ring<Kept>,
}

struct Kept {
    user_id: Box<str>,
    message: Arc<Encoded>,
}

impl Inbox {
    /// An empty inbox keeping the last `capacity` notifications.
    pub fn new(capacity: usize) -> Self {
        Inbox {
            kept: Ring::new(capacity),
        }
    }

    fn kept(user_id: &str, message: Arc<Encoded>) -> Kept {
        Kept {
            user_id: user_id.into(),
            message,
        }
    }

    /// Keeps a notification numbered `seq` (greater than every earlier one).
    pub fn push(&mut self, seq: u64, user_id: &str, message: Arc<Encoded>) {
        self.kept.push(seq, Inbox::kept(user_id, message));
    }

    /// Keeps a notification restored from a checkpoint; `false` (and
    /// nothing kept) when `seq` is not above the newest kept one.
    pub fn push_checked(&mut self, seq: u64, user_id: &str, message: Arc<Encoded>) -> bool {
        self.kept.push_checked(seq, Inbox::kept(user_id, message))
    }

    /// Records that notifications through `seq` are no longer kept.
    pub fn mark_evicted(&mut self, seq: u64) {
        self.kept.mark_dropped(seq);
    }

    /// `seq` of the newest notification dropped (0: none).
    pub fn evicted_through(&self) -> u64 {
        self.kept.dropped_through()
    }

    /// The kept notifications, oldest first: `(seq, user, message)`.
    pub fn oldest_first(&self) -> impl Iterator<Item = (u64, &str, &Encoded)> {
        self.kept
            .iter()
            .map(|(seq, kept)| (*seq, &*kept.user_id, &*kept.message))
    }

    /// `user_id`'s notifications after `since_seq`, oldest first; `None`
    /// when the ring dropped some that may have been theirs.
    pub fn since(&self, user_id: &str, since_seq: u64) -> Option<Vec<Arc<Encoded>>> {
        if !self.kept.holds_all_after(since_seq) {
            return None;
        }
        Some(
            self.kept
                .after(since_seq)
                .filter(|(_, kept)| &*kept.user_id == user_id)
                .map(|(_, kept)| Arc::clone(&kept.message))
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
