//! Rooms' recent messages: each room's last `ROOM_HISTORY` messages, for
//! `join` (the recent history) and for recovery with `since`.
//!
//! Memory is bounded whatever the number of rooms: at most `max_rooms`
//! rooms are held, and a message for one more evicts the room posted to
//! least recently. What an evicted room held is still in the stream: its
//! messages are found by reading the stream back, as for any history that
//! memory no longer holds. One watermark says how far that goes: the newest
//! `seq` evicted with any room. A room taken in after an eviction cannot
//! tell whether it had messages up to there, so its ring starts with that
//! watermark.

use std::collections::HashMap;
use std::sync::Arc;

use super::{LazyMessage, Ring};
use crate::protocol::codec::Encoded;

/// Recent messages of the rooms held in memory.
pub struct Rooms {
    rooms: HashMap<Box<str>, RoomHistory, ahash::RandomState>,
    history_len: usize,
    max_rooms: usize,
    /// `seq` of the newest message evicted with its room (0: none).
    evicted_through: u64,
    /// Grows with every message, to tell the least recently posted room.
    clock: u64,
}

struct RoomHistory {
    messages: Ring<Arc<LazyMessage>>,
    last_posted: u64,
}

/// A room as a checkpoint keeps it: its name, the watermark of what it
/// does not keep, and its messages oldest first.
#[derive(Debug, Clone)]
pub struct KeptRoom {
    /// The room.
    pub room: String,
    /// `seq` of the newest of its messages not kept (0: none).
    pub dropped_through: u64,
    /// Its messages kept, oldest first.
    pub messages: Vec<(u64, Arc<LazyMessage>)>,
}

/// A room's recent messages, for a plain `join`.
#[derive(Debug)]
pub enum Recent {
    /// All of them (up to the history length), oldest first.
    Complete(Vec<Arc<Encoded>>),
    /// Memory may have lost some (the room, or another, was evicted): the
    /// stream holds them.
    Incomplete,
}

impl Rooms {
    /// No rooms; each keeps `history_len` messages, at most `max_rooms` held.
    pub fn new(history_len: usize, max_rooms: usize) -> Self {
        Rooms {
            rooms: HashMap::default(),
            history_len: history_len.max(1),
            max_rooms: max_rooms.max(1),
            evicted_through: 0,
            clock: 0,
        }
    }

    /// Messages kept per room.
    pub fn history_len(&self) -> usize {
        self.history_len
    }

    /// Rooms held in memory.
    pub fn len(&self) -> usize {
        self.rooms.len()
    }

    /// Whether no room is held.
    pub fn is_empty(&self) -> bool {
        self.rooms.is_empty()
    }

    /// `seq` of the newest message evicted with its room (0: none).
    pub fn evicted_through(&self) -> u64 {
        self.evicted_through
    }

    /// Keeps `message`, numbered `seq` (greater than every earlier one), in
    /// `room`'s history; takes the room in, evicting the least recently
    /// posted one when `max_rooms` are held.
    pub fn push(&mut self, seq: u64, room: &str, message: Arc<LazyMessage>) {
        self.clock += 1;
        let clock = self.clock;
        if let Some(history) = self.rooms.get_mut(room) {
            history.messages.push(seq, message);
            history.last_posted = clock;
            return;
        }
        if self.rooms.len() >= self.max_rooms {
            self.evict_least_recent();
        }
        let mut messages = Ring::new(self.history_len);
        messages.mark_dropped(self.evicted_through);
        messages.push(seq, message);
        self.rooms.insert(
            room.into(),
            RoomHistory {
                messages,
                last_posted: clock,
            },
        );
    }

    /// Takes a room in from a checkpoint: its messages oldest first and
    /// the watermark its ring had.
    pub fn restore(
        &mut self,
        room: &str,
        dropped_through: u64,
        messages: impl IntoIterator<Item = (u64, Arc<LazyMessage>)>,
    ) {
        self.clock += 1;
        let mut ring = Ring::new(self.history_len);
        ring.mark_dropped(dropped_through);
        for (seq, message) in messages {
            ring.push_checked(seq, message);
        }
        if self.rooms.len() >= self.max_rooms {
            self.evict_least_recent();
        }
        self.rooms.insert(
            room.into(),
            RoomHistory {
                messages: ring,
                last_posted: self.clock,
            },
        );
    }

    /// Records the eviction watermark of a restored state.
    pub fn mark_evicted(&mut self, seq: u64) {
        self.evicted_through = self.evicted_through.max(seq);
    }

    /// A linear scan, run only when a room beyond the cap is taken in: one
    /// pass over at most `max_rooms` entries, where an ordered index would
    /// cost every message a second map update.
    fn evict_least_recent(&mut self) {
        let Some(oldest) = self
            .rooms
            .iter()
            .min_by_key(|(_, history)| history.last_posted)
            .map(|(room, _)| room.clone())
        else {
            return;
        };
        if let Some(history) = self.rooms.remove(&oldest) {
            let newest = history
                .messages
                .newest_seq()
                .unwrap_or(0)
                .max(history.messages.dropped_through());
            self.evicted_through = self.evicted_through.max(newest);
        }
    }

    /// `room`'s messages after `since_seq`, oldest first; `None` when memory
    /// may have lost some of them (only the stream can tell).
    pub fn since(&self, room: &str, since_seq: u64) -> Option<Vec<Arc<Encoded>>> {
        match self.rooms.get(room) {
            Some(history) if history.messages.holds_all_after(since_seq) => Some(
                history
                    .messages
                    .after(since_seq)
                    .map(|(_, message)| message.encoded())
                    .collect(),
            ),
            Some(_) => None,
            None if self.evicted_through <= since_seq => Some(Vec::new()),
            None => None,
        }
    }

    /// `room`'s recent messages, for a `join` without `since`.
    pub fn recent(&self, room: &str) -> Recent {
        match self.rooms.get(room) {
            Some(history)
                if history.messages.dropped_through() == 0
                    || history.messages.len() == self.history_len =>
            {
                Recent::Complete(
                    history
                        .messages
                        .iter()
                        .map(|(_, message)| message.encoded())
                        .collect(),
                )
            }
            None if self.evicted_through == 0 => Recent::Complete(Vec::new()),
            _ => Recent::Incomplete,
        }
    }

    /// Every room held, keeping at most `per_room` messages each (for a
    /// checkpoint).
    pub fn newest(&self, per_room: usize) -> Vec<KeptRoom> {
        self.rooms
            .iter()
            .map(|(room, history)| KeptRoom {
                room: room.to_string(),
                dropped_through: history.messages.dropped_through_keeping(per_room),
                messages: history.messages.newest(per_room).cloned().collect(),
            })
            .collect()
    }

    /// The same rooms under other limits (a restored checkpoint, taken in
    /// with this instance's settings).
    pub fn resized(self, history_len: usize, max_rooms: usize) -> Rooms {
        let mut resized = Rooms::new(history_len, max_rooms);
        resized.evicted_through = self.evicted_through;
        let mut held: Vec<(Box<str>, RoomHistory)> = self.rooms.into_iter().collect();
        held.sort_by_key(|(_, history)| history.last_posted);
        for (room, history) in held {
            let dropped = history.messages.dropped_through();
            let messages = history.messages.iter().cloned().collect::<Vec<_>>();
            resized.restore(&room, dropped, messages);
        }
        resized
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::ServerMessage;
    use crate::protocol::v1::Pong;

    fn message(n: u64) -> Arc<LazyMessage> {
        Arc::new(LazyMessage::new(ServerMessage::Pong(Pong {
            request_id: Some(n.to_string()),
            timestamp: "t".into(),
        })))
    }

    fn seqs(messages: &[Arc<Encoded>]) -> Vec<String> {
        messages
            .iter()
            .map(|m| m.json.as_str().to_string())
            .map(|json| json.split('"').nth(7).unwrap_or_default().to_string())
            .collect()
    }

    #[test]
    fn a_room_keeps_its_last_messages_and_recovers_after_since() {
        let mut rooms = Rooms::new(3, 10);
        for seq in 1..=5 {
            rooms.push(seq, "a", message(seq));
        }
        rooms.push(6, "b", message(6));
        let Recent::Complete(recent) = rooms.recent("a") else {
            panic!("a full ring is complete");
        };
        assert_eq!(seqs(&recent), ["3", "4", "5"]);
        assert_eq!(
            rooms.since("a", 3).map(|m| seqs(&m)),
            Some(vec!["4".into(), "5".into()])
        );
        // Seq 2 rolled out of the ring: only the stream knows what followed 1.
        assert!(rooms.since("a", 1).is_none());
        // A room never posted to, with nothing evicted, has no messages.
        assert!(matches!(rooms.recent("c"), Recent::Complete(m) if m.is_empty()));
        assert_eq!(rooms.since("c", 0).map(|m| m.len()), Some(0));
    }

    #[test]
    fn beyond_max_rooms_the_least_recently_posted_room_goes_to_the_stream() {
        let mut rooms = Rooms::new(5, 2);
        rooms.push(1, "a", message(1));
        rooms.push(2, "b", message(2));
        rooms.push(3, "a", message(3));
        // "b" was posted to least recently: it goes.
        rooms.push(4, "c", message(4));
        assert_eq!(rooms.len(), 2);
        assert_eq!(rooms.evicted_through(), 2);
        assert!(matches!(rooms.recent("b"), Recent::Incomplete));
        assert!(rooms.since("b", 0).is_none());
        assert_eq!(rooms.since("b", 2).map(|m| m.len()), Some(0));
        // The new room cannot tell what it had before the eviction either.
        assert!(matches!(rooms.recent("c"), Recent::Incomplete));
        assert!(rooms.since("c", 1).is_none());
        assert_eq!(rooms.since("c", 2).map(|m| m.len()), Some(1));
        // "a" is untouched.
        assert!(matches!(rooms.recent("a"), Recent::Complete(m) if m.len() == 2));
    }
}
