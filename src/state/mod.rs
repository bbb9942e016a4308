//! The projection: the stream folded into state. It holds the current
//! availability of every tour, the bounded history of every channel that
//! serves recovery (each tour's events, the [`inbox`] of users'
//! notifications, and each room's recent messages in [`rooms`], each a
//! [`Ring`]), and the memory of applied event ids
//! and of the stream positions it skipped.
//!
//! It is plain synchronous data; the [`Engine`](crate::engine::Engine) owns
//! it behind a lock and decides when to fan events out. Every event it
//! applies comes back with the channel it belongs to.
//!
//! `seq` numbers are global within an epoch: every applied event gets a
//! number larger than every earlier one, so a tour's `seq` grows with each of
//! its events, and a `"*"` subscriber can resume from the single highest
//! `seq` it holds.

mod checkpoint;
mod inbox;
mod lazy_message;
mod recent_ids;
mod ring;
pub mod rooms;

pub use checkpoint::{CheckpointDraft, CheckpointLimits, RestoreError};
pub use lazy_message::LazyMessage;
pub use ring::Ring;

use std::collections::HashMap;
use std::sync::Arc;

use crate::auth::Permissions;
use crate::channel::{self, Target};
use crate::event::{AvailabilityChange, SourceEvent};
use crate::protocol::codec::Encoded;
use crate::protocol::v1::TourState;
use crate::time::rfc3339;

use inbox::Inbox;
use recent_ids::RecentIds;
use rooms::{Recent, Rooms};

/// What became of an event offered to the projection.
#[derive(Debug, Clone)]
pub enum Applied {
    /// Applied to the state; `message` is the event to fan out to
    /// `channel`, encoded once per encoding when someone receives it.
    Fresh {
        /// The event's sequence number.
        seq: u64,
        /// The channel it belongs to (a tour, a user).
        channel: Target,
        /// The event, as its history keeps it.
        message: Arc<LazyMessage>,
    },
    /// Its `eventId` was applied before (a redelivery).
    Duplicate,
    /// Behind the tour's state: its publisher-supplied `version` is not
    /// greater than the tour's, or its stream position is behind the projection's.
    /// Applying it would roll the state back.
    Stale,
    /// A new tour while the projection holds `max_tours` already: refused, so
    /// that memory stays bounded (`MAX_TOURS`) whatever a publisher sends.
    OverCapacity,
}

/// Which events a snapshot or a recovery covers: a channel's.
#[derive(Debug, Clone, Copy)]
pub enum Scope<'a> {
    /// One tour.
    Tour(&'a str),
    /// Every tour these permissions allow.
    Permitted(&'a Permissions),
    /// One user's notifications.
    User(&'a str),
    /// One room's messages.
    Room(&'a str),
}

impl Scope<'_> {
    /// Whether the scope covers `event`.
    pub fn includes(&self, event: &SourceEvent) -> bool {
        match (self, event) {
            (Scope::Tour(id), SourceEvent::Availability(e)) => *id == e.tour_id,
            (Scope::Permitted(permissions), SourceEvent::Availability(e)) => {
                permissions.allows(&e.tour_id)
            }
            (Scope::User(user), SourceEvent::Booking(e)) => *user == e.user_id,
            (Scope::Room(room), SourceEvent::Room(e)) => *room == e.room,
            _ => false,
        }
    }

    fn entries<'b>(&self, tours: &'b Tours) -> Vec<&'b TourEntry> {
        match self {
            Scope::User(_) | Scope::Room(_) => Vec::new(),
            Scope::Tour(id) => tours.get(*id).into_iter().collect(),
            Scope::Permitted(permissions) => tours
                .iter()
                .filter(|(id, _)| permissions.allows(id))
                .map(|(_, entry)| entry)
                .collect(),
        }
    }
}

/// How a subscription with `since` can be served.
#[derive(Debug)]
pub enum Recovery {
    /// These events (oldest first) are all the client missed.
    Replay(Vec<Arc<Encoded>>),
    /// Memory no longer holds every event after `since`, but each `seq` up
    /// to the projection's last is a position in the stream: reading the stream
    /// back over `(since, last_seq]` recovers them.
    ReadBack {
        /// The highest `seq` the projection has applied.
        through: u64,
    },
    /// Nothing can fill the gap (another epoch, a `seq` from the future,
    /// or events the projection numbered itself): send a snapshot.
    Snapshot,
}

/// Every tour by id. aHash (seeded per process) rather than SipHash: each
/// applied event looks its tour up, and SipHash was a visible share of a
/// replay.
type Tours = HashMap<String, TourEntry, ahash::RandomState>;

struct TourEntry {
    state: TourState,
    /// The publisher-supplied version of the last event that carried one.
    /// Timestamps are never compared: they come from publishers' clocks,
    /// and the stream's order is the order.
    version: Option<u64>,
    /// The last events of this tour, encoded on first use.
    history: Ring<Arc<LazyMessage>>,
}

/// The stream folded: every tour's state, every channel's history.
pub struct Projection {
    epoch: String,
    tours: Tours,
    /// Users' recent notifications.
    inbox: Inbox,
    /// Rooms' recent messages.
    rooms: Rooms,
    applied_ids: RecentIds,
    /// Events kept per tour.
    history_len: usize,
    last_seq: u64,
    /// Whether every `seq` so far is the event's stream position, so that a
    /// range of `seq`s can be read back from the stream. Cleared for good by
    /// the first event the projection numbers itself.
    numbered_by_stream: bool,
    /// Stream positions of events that were not applied (duplicates,
    /// stale versions): a read-back of the stream must skip them too. Its
    /// watermark is the newest one forgotten to keep it bounded: a
    /// read-back from before it could no longer tell.
    skipped: Ring<()>,
    /// The first stream position the projection applied: memory knows nothing
    /// before it (retention, or `replay-from` past the start).
    first_position: Option<u64>,
    /// Most tours held (`MAX_TOURS`).
    max_tours: usize,
    /// [`SourceEvent::fingerprint`] of the event at the newest stream position
    /// taken in: a checkpoint carries it, so that a reader can tell the
    /// stream it resumes is the one the checkpoint folded.
    last_fingerprint: u64,
}

impl Projection {
    /// An empty projection for `epoch`, keeping `history_len` events per tour and
    /// remembering `dedupe_window` event ids.
    pub fn new(epoch: impl Into<String>, history_len: usize, dedupe_window: usize) -> Self {
        Projection::with_inbox(
            epoch,
            history_len,
            dedupe_window,
            DEFAULT_NOTIFICATION_HISTORY,
        )
    }

    /// [`Projection::new`], keeping the last `notification_history` notifications.
    pub fn with_inbox(
        epoch: impl Into<String>,
        history_len: usize,
        dedupe_window: usize,
        notification_history: usize,
    ) -> Self {
        Projection {
            epoch: epoch.into(),
            tours: Tours::default(),
            inbox: Inbox::new(notification_history),
            rooms: Rooms::new(DEFAULT_ROOM_HISTORY, DEFAULT_MAX_ROOMS),
            applied_ids: RecentIds::new(dedupe_window),
            history_len: history_len.max(1),
            last_seq: 0,
            numbered_by_stream: true,
            skipped: Ring::new(dedupe_window),
            first_position: None,
            max_tours: usize::MAX,
            last_fingerprint: 0,
        }
    }

    /// Caps the tours held: events creating one more are refused.
    pub fn limit_tours(&mut self, max_tours: usize) {
        self.max_tours = max_tours.max(1);
    }

    /// Keeps `history_len` messages per room, for at most `max_rooms`
    /// rooms (the least recently posted one is evicted to the stream).
    pub fn with_rooms(mut self, history_len: usize, max_rooms: usize) -> Self {
        let rooms = std::mem::replace(&mut self.rooms, Rooms::new(1, 1));
        self.rooms = rooms.resized(history_len, max_rooms);
        self
    }

    /// [`Projection::limit_tours`], by value.
    pub fn with_tour_limit(mut self, max_tours: usize) -> Self {
        self.limit_tours(max_tours);
        self
    }

    /// The epoch `seq` numbers count in.
    pub fn epoch(&self) -> &str {
        &self.epoch
    }

    /// The highest `seq` applied so far.
    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// The highest stream position taken in, applied or not: where a reader
    /// of the stream resumes after (see [`Projection::checkpoint`]).
    pub fn last_position(&self) -> u64 {
        self.last_seq
            .max(self.skipped.newest_seq().unwrap_or_default())
    }

    /// Number of known tours.
    pub fn len(&self) -> usize {
        self.tours.len()
    }

    /// Whether no tour is known yet.
    pub fn is_empty(&self) -> bool {
        self.tours.is_empty()
    }

    /// Applies an event: numbers it, and folds it into its channel's state
    /// and history (encoded later, once, if anyone needs it).
    pub fn apply(&mut self, event: impl Into<SourceEvent>) -> Applied {
        let event = event.into();
        let seq = match event.position() {
            // A stream position is only meaningful if it moves forward.
            Some(position) if position <= self.last_seq => return Applied::Stale,
            Some(position) => {
                self.first_position.get_or_insert(position);
                self.last_fingerprint = event.fingerprint();
                position
            }
            None => {
                self.numbered_by_stream = false;
                self.last_seq + 1
            }
        };
        if let Some(id) = event.event_id()
            && self.applied_ids.contains(id)
        {
            self.skip(event.position());
            return Applied::Duplicate;
        }
        if let SourceEvent::Availability(change) = &event
            && let (Some(entry), Some(version)) = (self.tours.get(&change.tour_id), change.version)
            && entry.version.is_some_and(|applied| version <= applied)
        {
            self.skip(event.position());
            return Applied::Stale;
        }
        if let SourceEvent::Availability(change) = &event
            && self.tours.len() >= self.max_tours
            && !self.tours.contains_key(&change.tour_id)
        {
            self.skip(event.position());
            return Applied::OverCapacity;
        }
        if let Some(id) = event.event_id() {
            self.applied_ids.insert(id);
        }
        self.last_seq = seq;
        match event {
            SourceEvent::Availability(change) => self.apply_availability(seq, change),
            SourceEvent::Booking(notice) => {
                let message =
                    Arc::new(Encoded::new(&channel::notifications::message(&notice, seq)));
                self.inbox.push(seq, &notice.user_id, Arc::clone(&message));
                Applied::Fresh {
                    seq,
                    channel: Target::User(notice.user_id),
                    message: Arc::new(LazyMessage::from_encoded(message)),
                }
            }
            SourceEvent::Room(post) => {
                let message = Arc::new(LazyMessage::new(channel::room::message(&post, seq)));
                self.rooms.push(seq, &post.room, Arc::clone(&message));
                Applied::Fresh {
                    seq,
                    channel: Target::Room(post.room),
                    message,
                }
            }
        }
    }

    fn apply_availability(&mut self, seq: u64, event: AvailabilityChange) -> Applied {
        // Looked up before inserting: `entry` would copy the id for every
        // event of a known tour.
        if !self.tours.contains_key(&event.tour_id) {
            self.tours.insert(
                event.tour_id.clone(),
                TourEntry {
                    state: TourState {
                        tour_id: event.tour_id.clone(),
                        ..TourState::default()
                    },
                    version: None,
                    history: Ring::new(self.history_len),
                },
            );
        }
        let Some(entry) = self.tours.get_mut(&event.tour_id) else {
            // Inserted just above.
            return Applied::Stale;
        };
        let state = &mut entry.state;
        if event.tour_name.is_some() {
            state.tour_name.clone_from(&event.tour_name);
        }
        if event.max_group_size.is_some() {
            state.max_group_size = event.max_group_size;
        }
        state.available_seats = event.available_seats;
        state.seq = seq;
        state.updated_at = rfc3339(event.timestamp);
        if event.version.is_some() {
            entry.version = event.version;
        }

        // Not encoded yet: during a replay nobody receives it, and most
        // history entries roll out before anyone asks for them.
        let message = Arc::new(LazyMessage::new(channel::tour::message(&event, state)));
        entry.history.push(seq, Arc::clone(&message));
        Applied::Fresh {
            seq,
            channel: Target::Tour(event.tour_id),
            message,
        }
    }

    /// Adds `state` as a tour's base state if the projection does not know
    /// the tour; it carries no event, no history, and `seq` 0 ("before the
    /// stream"). Returns whether it was added.
    pub fn seed(&mut self, state: TourState) -> bool {
        if self.tours.contains_key(&state.tour_id) || self.tours.len() >= self.max_tours {
            return false;
        }
        let state = TourState { seq: 0, ..state };
        self.tours.insert(
            state.tour_id.clone(),
            TourEntry {
                state,
                version: None,
                history: Ring::new(self.history_len),
            },
        );
        true
    }

    /// Remembers a stream position that was not applied.
    fn skip(&mut self, position: Option<u64>) {
        if let Some(position) = position {
            self.skipped.push(position, ());
        }
    }

    /// The message clients were sent for an event read back from the stream
    /// at `position`, or `None` if the projection did not apply it then (a
    /// duplicate or a stale version). A field the event left out is taken
    /// from the tour's current state, as close to what was sent as the
    /// projection can tell without keeping every past state.
    pub fn rebuilt_message(&self, event: &SourceEvent, position: u64) -> Option<Arc<Encoded>> {
        if position > self.last_seq || self.skipped.contains(position) {
            return None;
        }
        let event = match event {
            SourceEvent::Availability(change) => change,
            SourceEvent::Booking(notice) => {
                let message = channel::notifications::message(notice, position);
                return Some(Arc::new(Encoded::new(&message)));
            }
            SourceEvent::Room(post) => {
                return Some(Arc::new(Encoded::new(&channel::room::message(
                    post, position,
                ))));
            }
        };
        let current = self.tours.get(&event.tour_id).map(|e| &e.state);
        let state = TourState {
            tour_id: event.tour_id.clone(),
            tour_name: event
                .tour_name
                .clone()
                .or_else(|| current.and_then(|s| s.tour_name.clone())),
            available_seats: event.available_seats,
            max_group_size: event
                .max_group_size
                .or_else(|| current.and_then(|s| s.max_group_size)),
            seq: position,
            updated_at: rfc3339(event.timestamp),
        };
        Some(Arc::new(Encoded::new(&channel::tour::message(
            event, &state,
        ))))
    }

    /// The state of one tour, if known.
    pub fn tour(&self, tour_id: &str) -> Option<&TourState> {
        self.tours.get(tour_id).map(|e| &e.state)
    }

    /// The state of the tours in `scope`, sorted by id.
    pub fn snapshot(&self, scope: Scope<'_>) -> Vec<TourState> {
        let mut tours: Vec<TourState> = scope
            .entries(&self.tours)
            .into_iter()
            .map(|e| e.state.clone())
            .collect();
        tours.sort_by(|a, b| a.tour_id.cmp(&b.tour_id));
        tours
    }

    /// A room's recent messages, for a `join` without `since`.
    pub fn recent_in_room(&self, room: &str) -> Recent {
        self.rooms.recent(room)
    }

    /// Messages kept per room.
    pub fn room_history_len(&self) -> usize {
        self.rooms.history_len()
    }

    /// Whether every `seq` so far is a stream position (so a range of them
    /// can be read back), and the first position memory holds.
    pub fn stream_numbered_from(&self) -> Option<u64> {
        self.numbered_by_stream
            .then_some(self.first_position)
            .flatten()
    }

    /// What a client that holds `since_seq` of `epoch` missed in `scope`.
    pub fn recover(&self, scope: Scope<'_>, epoch: &str, since_seq: u64) -> Recovery {
        if epoch != self.epoch || since_seq > self.last_seq {
            return Recovery::Snapshot;
        }
        let read_back = || {
            if self.numbered_by_stream && self.skipped.holds_all_after(since_seq) {
                Recovery::ReadBack {
                    through: self.last_seq,
                }
            } else {
                Recovery::Snapshot
            }
        };
        // Older than anything memory saw: only the stream can tell what came
        // between (and says so when retention dropped it).
        if self
            .first_position
            .is_some_and(|first| since_seq + 1 < first)
        {
            return read_back();
        }
        if let Scope::User(user) = scope {
            return match self.inbox.since(user, since_seq) {
                Some(missed) => Recovery::Replay(missed),
                None => read_back(),
            };
        }
        if let Scope::Room(room) = scope {
            return match self.rooms.since(room, since_seq) {
                Some(missed) => Recovery::Replay(missed),
                None => read_back(),
            };
        }
        let entries = scope.entries(&self.tours);
        let mut missed: Vec<(u64, Arc<Encoded>)> = Vec::new();
        for entry in entries {
            if !entry.history.holds_all_after(since_seq) {
                return read_back();
            }
            missed.extend(
                entry
                    .history
                    .after(since_seq)
                    .map(|(seq, m)| (*seq, m.encoded())),
            );
        }
        missed.sort_by_key(|(seq, _)| *seq);
        Recovery::Replay(missed.into_iter().map(|(_, m)| m).collect())
    }
}

/// Messages kept per room when the configuration does not say (`ROOM_HISTORY`).
pub const DEFAULT_ROOM_HISTORY: usize = 50;
/// Rooms whose history is held when the configuration does not say (`MAX_ROOMS`).
pub const DEFAULT_MAX_ROOMS: usize = 10_000;

/// Notifications kept for recovery when the configuration does not say.
pub const DEFAULT_NOTIFICATION_HISTORY: usize = 10_000;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{AvailabilityKind, BookingKind, BookingNotice};
    use chrono::{DateTime, Duration, Utc};

    fn event(tour: &str, seats: u32, at: DateTime<Utc>) -> AvailabilityChange {
        AvailabilityChange {
            kind: AvailabilityKind::Updated,
            event_id: None,
            tour_id: tour.into(),
            tour_name: Some(format!("{tour} name")),
            available_seats: seats,
            max_group_size: Some(20),
            threshold: None,
            timestamp: at,
            version: None,
            position: None,
        }
    }

    fn seq_of(applied: Applied) -> u64 {
        match applied {
            Applied::Fresh { seq, .. } => seq,
            other => panic!("expected a fresh event, got {other:?}"),
        }
    }

    #[test]
    fn seq_grows_across_tours_and_state_follows() {
        let mut projection = Projection::new("e1", 8, 100);
        let now = Utc::now();
        assert_eq!(seq_of(projection.apply(event("a", 10, now))), 1);
        assert_eq!(seq_of(projection.apply(event("b", 5, now))), 2);
        assert_eq!(seq_of(projection.apply(event("a", 9, now))), 3);
        let a = projection.tour("a").unwrap();
        assert_eq!((a.available_seats, a.seq), (9, 3));
        assert_eq!(
            projection
                .snapshot(Scope::Permitted(&Permissions::All))
                .len(),
            2
        );
    }

    #[test]
    fn history_is_encoded_only_when_someone_needs_it() {
        let mut projection = Projection::new("e1", 8, 100);
        let Applied::Fresh { message, .. } = projection.apply(event("a", 10, Utc::now())) else {
            panic!("expected a fresh event");
        };
        // Applied with nobody to send it to: nothing encoded yet.
        assert!(!message.is_encoded());
        // A recovery encodes it, once, and shares those bytes from then on.
        let Recovery::Replay(missed) = projection.recover(Scope::Tour("a"), "e1", 0) else {
            panic!("expected a replay");
        };
        assert!(message.is_encoded());
        assert!(Arc::ptr_eq(&missed[0], &message.encoded()));
        assert!(missed[0].json.as_str().contains(r#""seq":1"#));
    }

    #[test]
    fn timestamps_never_make_an_event_stale() {
        // updated (8) → low (3, receipt time) → updated (7) from a publisher
        // whose clock runs ten minutes behind: all three apply, in order.
        let mut projection = Projection::new("e1", 8, 100);
        let now = Utc::now();
        projection.apply(event("a", 8, now - Duration::seconds(1)));
        let mut low = event("a", 3, now);
        low.kind = AvailabilityKind::Low;
        assert_eq!(seq_of(projection.apply(low)), 2);
        assert_eq!(
            seq_of(projection.apply(event("a", 7, now - Duration::minutes(10)))),
            3
        );
        assert_eq!(projection.tour("a").unwrap().available_seats, 7);
    }

    #[test]
    fn a_version_not_above_the_tours_is_stale_and_only_versions_are_compared() {
        let mut projection = Projection::new("e1", 8, 100);
        let now = Utc::now();
        let versioned = |seats, version| AvailabilityChange {
            version: Some(version),
            ..event("a", seats, now)
        };
        projection.apply(versioned(10, 5));
        assert!(matches!(projection.apply(versioned(3, 4)), Applied::Stale));
        assert!(matches!(projection.apply(versioned(3, 5)), Applied::Stale));
        assert_eq!(projection.tour("a").unwrap().available_seats, 10);
        // No version: never stale, and the tour keeps its last version.
        assert_eq!(seq_of(projection.apply(event("a", 9, now))), 2);
        assert!(matches!(projection.apply(versioned(1, 5)), Applied::Stale));
        assert_eq!(seq_of(projection.apply(versioned(8, 6))), 3);
        assert_eq!(projection.tour("a").unwrap().available_seats, 8);
    }

    #[test]
    fn past_max_tours_a_new_tour_is_refused_and_known_ones_go_on() {
        let mut projection = Projection::new("stream", 8, 100);
        projection.limit_tours(2);
        let now = Utc::now();
        for (position, tour) in [(1, "a"), (2, "b")] {
            let mut e = event(tour, 5, now);
            e.position = Some(position);
            projection.apply(e);
        }
        let mut third = event("c", 5, now);
        third.position = Some(3);
        assert!(matches!(
            projection.apply(third.clone()),
            Applied::OverCapacity
        ));
        // Its position is skipped like a duplicate's, on a read-back too.
        assert!(projection.rebuilt_message(&third.into(), 3).is_none());
        let mut known = event("a", 4, now);
        known.position = Some(4);
        assert_eq!(seq_of(projection.apply(known)), 4);
        assert_eq!(projection.len(), 2);
    }

    #[test]
    fn a_repeated_event_id_is_a_duplicate() {
        let mut projection = Projection::new("e1", 8, 100);
        let mut e = event("a", 10, Utc::now());
        e.event_id = Some("evt_1".into());
        projection.apply(e.clone());
        assert!(matches!(projection.apply(e), Applied::Duplicate));
        assert_eq!(projection.last_seq(), 1);
    }

    #[test]
    fn stream_positions_become_seq_and_must_move_forward() {
        let mut projection = Projection::new("stream", 8, 100);
        let now = Utc::now();
        let mut e = event("a", 10, now);
        e.position = Some(40);
        assert_eq!(seq_of(projection.apply(e.clone())), 40);
        e.position = Some(12);
        assert!(matches!(projection.apply(e), Applied::Stale));
    }

    #[test]
    fn past_the_history_a_stream_numbered_projection_sends_recovery_to_a_read_back() {
        let mut projection = Projection::new("stream", 2, 100);
        let now = Utc::now();
        for position in 1..=5 {
            let mut e = event("a", 10 - position as u32, now);
            e.position = Some(position);
            e.event_id = Some(format!("evt_{position}"));
            projection.apply(e);
        }
        let mut duplicate = event("a", 1, now);
        duplicate.position = Some(6);
        duplicate.event_id = Some("evt_5".into());
        assert!(matches!(
            projection.apply(duplicate.clone()),
            Applied::Duplicate
        ));
        assert!(matches!(
            projection.recover(Scope::Tour("a"), "stream", 1),
            Recovery::ReadBack { through: 5 }
        ));
        // Read back, the duplicate at position 6 is skipped as it was live.
        assert!(projection.rebuilt_message(&duplicate.into(), 6).is_none());
        let mut second = event("a", 8, now);
        second.tour_name = None;
        let message = projection
            .rebuilt_message(&second.into(), 2)
            .expect("applied then");
        assert!(
            message.json.as_str().contains("\"seq\":2"),
            "{}",
            message.json.as_str()
        );
        assert!(
            message.json.as_str().contains("a name"),
            "{}",
            message.json.as_str()
        );
    }

    #[test]
    fn recovery_replays_within_history_and_refuses_beyond_it() {
        let mut projection = Projection::new("e1", 3, 100);
        let now = Utc::now();
        for seats in (1..=6).rev() {
            projection.apply(event("a", seats, now));
        }
        // History holds seq 4..=6; seq 3 was evicted.
        match projection.recover(Scope::Tour("a"), "e1", 4) {
            Recovery::Replay(missed) => assert_eq!(missed.len(), 2),
            other => panic!("expected a replay, got {other:?}"),
        }
        match projection.recover(Scope::Tour("a"), "e1", 3) {
            Recovery::Replay(missed) => assert_eq!(missed.len(), 3),
            other => panic!("expected a replay, got {other:?}"),
        }
        // Evicted, and the projection numbered these events itself: no read-back.
        assert!(matches!(
            projection.recover(Scope::Tour("a"), "e1", 2),
            Recovery::Snapshot
        ));
        assert!(matches!(
            projection.recover(Scope::Tour("a"), "other", 5),
            Recovery::Snapshot
        ));
        assert!(matches!(
            projection.recover(Scope::Tour("a"), "e1", 99),
            Recovery::Snapshot
        ));
    }

    fn notice(user: &str, booking: &str, position: u64) -> BookingNotice {
        BookingNotice {
            kind: BookingKind::Confirmed,
            event_id: Some(format!("evt_{booking}")),
            user_id: user.into(),
            booking_id: booking.into(),
            tour_id: "a".into(),
            tour_name: "A".into(),
            seats: 2,
            message: "ok".into(),
            timestamp: Utc::now(),
            position: Some(position),
        }
    }

    #[test]
    fn notifications_are_numbered_by_the_stream_and_go_to_their_users_channel() {
        let mut projection = Projection::with_inbox("stream", 8, 100, 3);
        let mut tour = event("a", 5, Utc::now());
        tour.position = Some(1);
        projection.apply(tour);
        match projection.apply(notice("alice", "b1", 2)) {
            Applied::Fresh {
                seq,
                channel,
                message,
            } => {
                assert_eq!((seq, channel), (2, Target::User("alice".into())));
                let message = message.encoded();
                let json = message.json.as_str();
                assert!(json.contains(r#""kind":"booking.confirmed""#), "{json}");
                assert!(json.contains(r#""notificationId":"evt_b1""#), "{json}");
            }
            other => panic!("expected a fresh notification, got {other:?}"),
        }
        // A redelivery is a duplicate, like any event.
        assert!(matches!(
            projection.apply(notice("alice", "b1", 3)),
            Applied::Duplicate
        ));
        // The tour's state is not touched by a booking notice.
        assert_eq!(projection.tour("a").map(|t| t.seq), Some(1));
    }

    #[test]
    fn a_users_recovery_is_theirs_alone_and_past_the_inbox_is_read_back() {
        let mut projection = Projection::with_inbox("stream", 8, 100, 3);
        for (position, user) in [(1, "alice"), (2, "bob"), (3, "alice"), (4, "alice")] {
            projection.apply(notice(user, &format!("b{position}"), position));
        }
        match projection.recover(Scope::User("alice"), "stream", 1) {
            Recovery::Replay(missed) => assert_eq!(missed.len(), 2),
            other => panic!("expected a replay, got {other:?}"),
        }
        match projection.recover(Scope::User("bob"), "stream", 2) {
            Recovery::Replay(missed) => assert!(missed.is_empty()),
            other => panic!("expected a replay, got {other:?}"),
        }
        // The inbox keeps 3: position 1 is gone, so since 0 needs the stream.
        assert!(matches!(
            projection.recover(Scope::User("alice"), "stream", 0),
            Recovery::ReadBack { through: 4 }
        ));
        // Read back, a notice is rebuilt with its position as seq; a tour
        // scope never includes it, the user's does.
        let read_back: SourceEvent = notice("alice", "b1", 1).into();
        assert!(Scope::User("alice").includes(&read_back));
        assert!(!Scope::User("bob").includes(&read_back));
        assert!(!Scope::Tour("a").includes(&read_back));
        assert!(!Scope::Permitted(&Permissions::All).includes(&read_back));
        let message = projection
            .rebuilt_message(&read_back, 1)
            .expect("applied then");
        assert!(message.json.as_str().contains(r#""seq":1"#));
    }
}
