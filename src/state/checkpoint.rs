//! The projection, written down and read back:
//! [`Projection::checkpoint`] turns the folded state into a
//! `tourcast.v1.Checkpoint` valid at one stream position, and
//! [`Projection::restore`] rebuilds a projection from one, so that a
//! starting instance replays only the events after it.
//!
//! A restored projection must answer exactly as the projection that wrote
//! it, except that it keeps less history in memory: a checkpoint holds at
//! most a budget of recent events (spread over the tours), and every older
//! one is marked dropped (each tour's [`Ring`] watermark), so a recovery
//! reaching past it is read back from the stream, as it would be on the
//! writing instance once its own history rolled over. The duplicate
//! filter, the skipped positions and the notification inbox are kept
//! whole (rooms share the history budget, as tours do): without them a replay after the checkpoint would apply what the
//! writer dropped.

use std::sync::Arc;

use super::inbox::Inbox;
use super::recent_ids::RecentIds;
use super::rooms::KeptRoom;
use super::{LazyMessage, Projection, Ring, TourEntry, Tours};
use crate::protocol::ServerMessage;
use crate::protocol::codec::{Encoded, decode_server_proto};
use crate::protocol::v1::{
    Checkpoint, CheckpointMessage, CheckpointNotification, CheckpointRoom, CheckpointTour,
};

/// Why a checkpoint cannot be restored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RestoreError {
    /// Written for another epoch or stream: its numbers mean something else.
    #[error("the checkpoint is for epoch {found:?}, not {expected:?}")]
    OtherEpoch {
        /// The checkpoint's.
        found: String,
        /// This instance's.
        expected: String,
    },
    /// Written with settings under which it cannot stand for this
    /// instance's own fold (a smaller duplicate window).
    #[error("the checkpoint does not fit this instance's settings: {0}")]
    Settings(String),
    /// A part of it does not make sense (a message that does not decode,
    /// positions out of order): it is corrupt, whatever its digest says.
    #[error("the checkpoint is inconsistent: {0}")]
    Inconsistent(String),
}

/// How much a checkpoint keeps.
#[derive(Debug, Clone, Copy)]
pub struct CheckpointLimits {
    /// Most recent events kept over all tours (at least one per tour that
    /// has any, at most the projection's history length per tour).
    pub history_budget: usize,
}

impl Projection {
    /// The projection at its current position, or `None` when its numbers are
    /// not stream positions (the demo feed, or a projection that numbered an
    /// event itself): a checkpoint of it could not be resumed from.
    pub fn checkpoint(&self, stream: &str, limits: CheckpointLimits) -> Option<Checkpoint> {
        self.checkpoint_draft(limits)
            .map(|draft| draft.finish(stream))
    }

    /// What [`Projection::checkpoint`] needs, taken quickly: the engine calls it
    /// under its lock, where every event waits, and encodes the draft
    /// after releasing it. Only states, ids and shared handles are copied
    /// here; history is not encoded, nothing is sorted.
    pub fn checkpoint_draft(&self, limits: CheckpointLimits) -> Option<CheckpointDraft> {
        if !self.numbered_by_stream || self.last_seq == 0 {
            return None;
        }
        let per_tour = (limits.history_budget / self.tours.len().max(1)).clamp(1, self.history_len);
        let tours = self
            .tours
            .values()
            .map(|entry| DraftTour {
                state: entry.state.clone(),
                version: entry.version,
                evicted_through: entry.history.dropped_through_keeping(per_tour),
                history: entry.history.newest(per_tour).cloned().collect(),
            })
            .collect();
        Some(CheckpointDraft {
            epoch: self.epoch.clone(),
            position: self.last_position(),
            dedupe_window: self.applied_ids.capacity() as u64,
            position_fingerprint: self.last_fingerprint,
            last_seq: self.last_seq,
            first_position: self.first_position.unwrap_or(0),
            tours,
            applied_ids: self.applied_ids.oldest_first().map(str::to_owned).collect(),
            skipped: self
                .skipped
                .iter()
                .map(|(position, ())| *position)
                .collect(),
            skipped_forgotten: self.skipped.dropped_through(),
            notifications: self
                .inbox
                .oldest_first()
                .map(|(seq, user_id, message)| (seq, user_id.to_string(), message.clone()))
                .collect(),
            notifications_evicted_through: self.inbox.evicted_through(),
            rooms: self.rooms.newest(
                (limits.history_budget / self.rooms.len().max(1))
                    .clamp(1, self.rooms.history_len()),
            ),
            rooms_evicted_through: self.rooms.evicted_through(),
        })
    }

    /// A projection rebuilt from `checkpoint`, with this instance's limits
    /// (history length, duplicate window, inbox size).
    pub fn restore(
        checkpoint: Checkpoint,
        epoch: &str,
        history_len: usize,
        dedupe_window: usize,
        notification_history: usize,
    ) -> Result<Projection, RestoreError> {
        if checkpoint.epoch != epoch {
            return Err(RestoreError::OtherEpoch {
                found: checkpoint.epoch,
                expected: epoch.to_string(),
            });
        }
        // A smaller window than ours remembers fewer ids than our own full
        // replay would: an old redelivery could then be applied again.
        if (checkpoint.dedupe_window as usize) < dedupe_window {
            return Err(RestoreError::Settings(format!(
                "written with a duplicate window of {}, smaller than this instance's {dedupe_window}",
                checkpoint.dedupe_window
            )));
        }
        let position = checkpoint.position;
        let inconsistent = |what: String| Err(RestoreError::Inconsistent(what));
        if position == 0 || checkpoint.last_seq > position || checkpoint.last_seq == 0 {
            return inconsistent(format!(
                "position {position}, last seq {}",
                checkpoint.last_seq
            ));
        }
        let mut projection =
            Projection::with_inbox(epoch, history_len, dedupe_window, notification_history);
        projection.last_seq = checkpoint.last_seq;
        projection.last_fingerprint = checkpoint.position_fingerprint;
        projection.first_position =
            (checkpoint.first_position > 0).then_some(checkpoint.first_position);
        let mut tours = Tours::with_capacity_and_hasher(checkpoint.tours.len(), Default::default());
        for tour in checkpoint.tours {
            let Some(state) = tour.state else {
                return inconsistent("a tour without state".into());
            };
            if state.seq > position || tour.evicted_through > position {
                return inconsistent(format!("tour {} is ahead of the position", state.tour_id));
            }
            // This instance may keep less history than the writer did: the
            // ring drops the oldest, and says so in its watermark.
            let mut history = Ring::new(projection.history_len);
            history.mark_dropped(tour.evicted_through);
            for kept in tour.history {
                let (seq, message) = restore_message(&kept, position)?;
                // Encoded again when first needed, like a replayed event.
                if !history.push_checked(seq, Arc::new(LazyMessage::new(message))) {
                    return inconsistent(format!("tour {} history out of order", state.tour_id));
                }
            }
            let id = state.tour_id.clone();
            let entry = TourEntry {
                state,
                version: tour.version,
                history,
            };
            if tours.insert(id.clone(), entry).is_some() {
                return inconsistent(format!("tour {id} twice"));
            }
        }
        projection.tours = tours;
        let mut ids = RecentIds::new(dedupe_window);
        for id in checkpoint.applied_ids {
            ids.insert(&id);
        }
        projection.applied_ids = ids;
        if checkpoint.skipped.windows(2).any(|w| w[0] >= w[1])
            || checkpoint
                .skipped
                .last()
                .is_some_and(|last| *last > position)
        {
            return inconsistent("skipped positions out of order".into());
        }
        // Pushed in order (checked above); a reader with a smaller duplicate
        // window forgets the oldest, and its watermark says so.
        for position in checkpoint.skipped {
            projection.skipped.push(position, ());
        }
        projection
            .skipped
            .mark_dropped(checkpoint.skipped_forgotten);
        let mut inbox = Inbox::new(notification_history);
        inbox.mark_evicted(checkpoint.notifications_evicted_through);
        for kept in checkpoint.notifications {
            let Some(message) = kept.message else {
                return inconsistent("a notification without a message".into());
            };
            let (seq, message) = restore_message(&message, position)?;
            if !inbox.push_checked(seq, &kept.user_id, Arc::new(Encoded::new(&message))) {
                return inconsistent("notifications out of order".into());
            }
        }
        projection.inbox = inbox;
        projection
            .rooms
            .mark_evicted(checkpoint.rooms_evicted_through);
        for room in checkpoint.rooms {
            if room.evicted_through > position {
                return inconsistent(format!("room {} is ahead of the position", room.room));
            }
            let mut messages = Vec::with_capacity(room.history.len());
            for kept in &room.history {
                let (seq, message) = restore_message(kept, position)?;
                if messages.last().is_some_and(|(last, _)| *last >= seq)
                    || seq <= room.evicted_through
                {
                    return inconsistent(format!("room {} history out of order", room.room));
                }
                messages.push((seq, Arc::new(LazyMessage::new(message))));
            }
            projection
                .rooms
                .restore(&room.room, room.evicted_through, messages);
        }
        Ok(projection)
    }
}

/// A checkpoint not yet encoded (see [`Projection::checkpoint_draft`]).
pub struct CheckpointDraft {
    epoch: String,
    position: u64,
    dedupe_window: u64,
    position_fingerprint: u64,
    last_seq: u64,
    first_position: u64,
    tours: Vec<DraftTour>,
    applied_ids: Vec<String>,
    skipped: Vec<u64>,
    skipped_forgotten: u64,
    notifications: Vec<(u64, String, Encoded)>,
    notifications_evicted_through: u64,
    rooms: Vec<KeptRoom>,
    rooms_evicted_through: u64,
}

struct DraftTour {
    state: crate::protocol::v1::TourState,
    version: Option<u64>,
    evicted_through: u64,
    history: Vec<(u64, Arc<LazyMessage>)>,
}

impl CheckpointDraft {
    /// The checkpoint of `stream`: history encoded (protobuf only), tours
    /// sorted so that two instances at one position write the same state.
    pub fn finish(self, stream: &str) -> Checkpoint {
        let mut tours: Vec<CheckpointTour> = self
            .tours
            .into_iter()
            .map(|tour| CheckpointTour {
                state: Some(tour.state),
                version: tour.version,
                evicted_through: tour.evicted_through,
                history: kept_messages(&tour.history),
            })
            .collect();
        tours.sort_by(|a, b| tour_id(a).cmp(tour_id(b)));
        let mut rooms: Vec<CheckpointRoom> = self
            .rooms
            .into_iter()
            .map(|kept| CheckpointRoom {
                room: kept.room,
                evicted_through: kept.dropped_through,
                history: kept_messages(&kept.messages),
            })
            .collect();
        rooms.sort_by(|a, b| a.room.cmp(&b.room));
        Checkpoint {
            epoch: self.epoch,
            stream: stream.to_string(),
            position: self.position,
            dedupe_window: self.dedupe_window,
            position_fingerprint: self.position_fingerprint,
            last_seq: self.last_seq,
            first_position: self.first_position,
            tours,
            applied_ids: self.applied_ids,
            skipped: self.skipped,
            skipped_forgotten: self.skipped_forgotten,
            notifications: self
                .notifications
                .into_iter()
                .map(|(seq, user_id, message)| CheckpointNotification {
                    user_id,
                    message: Some(message_of(seq, &message)),
                })
                .collect(),
            notifications_evicted_through: self.notifications_evicted_through,
            rooms,
            rooms_evicted_through: self.rooms_evicted_through,
            written_by: String::new(),
            written_at: String::new(),
        }
    }
}

/// A history as a checkpoint keeps it: each message's protobuf.
fn kept_messages(history: &[(u64, Arc<LazyMessage>)]) -> Vec<CheckpointMessage> {
    history
        .iter()
        .map(|(seq, message)| CheckpointMessage {
            seq: *seq,
            message: message.proto(),
        })
        .collect()
}

fn tour_id(tour: &CheckpointTour) -> &str {
    tour.state.as_ref().map_or("", |s| s.tour_id.as_str())
}

fn message_of(seq: u64, message: &Encoded) -> CheckpointMessage {
    CheckpointMessage {
        seq,
        message: message.proto.to_vec(),
    }
}

/// A kept message, decoded from its protobuf (to be encoded again, JSON
/// included: the codec writes the same JSON from the same message).
fn restore_message(
    kept: &CheckpointMessage,
    position: u64,
) -> Result<(u64, ServerMessage), RestoreError> {
    if kept.seq == 0 || kept.seq > position {
        return Err(RestoreError::Inconsistent(format!(
            "a message at seq {} outside 1..={position}",
            kept.seq
        )));
    }
    let message = decode_server_proto(&kept.message)
        .map_err(|e| RestoreError::Inconsistent(format!("a message does not decode: {e}")))?;
    Ok((kept.seq, message))
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use prost::Message as _;

    use super::*;
    use crate::auth::Permissions;
    use crate::event::{
        AvailabilityChange, AvailabilityKind, BookingKind, BookingNotice, RoomPost, SourceEvent,
    };
    use crate::state::{Applied, Recovery, Scope};

    fn tour_event(position: u64, tour: &str, seats: u32, id: Option<&str>) -> SourceEvent {
        SourceEvent::Availability(AvailabilityChange {
            kind: if seats < 3 {
                AvailabilityKind::Low
            } else {
                AvailabilityKind::Updated
            },
            event_id: id.map(str::to_owned),
            tour_id: tour.into(),
            tour_name: Some(format!("{tour} name")),
            available_seats: seats,
            max_group_size: Some(20),
            threshold: Some(3),
            timestamp: Utc::now(),
            version: None,
            position: Some(position),
        })
    }

    fn notice(position: u64, user: &str) -> SourceEvent {
        SourceEvent::Booking(BookingNotice {
            kind: BookingKind::Confirmed,
            event_id: Some(format!("evt_n{position}")),
            user_id: user.into(),
            booking_id: format!("b{position}"),
            tour_id: "a".into(),
            tour_name: "A".into(),
            seats: 1,
            message: "ok".into(),
            timestamp: Utc::now(),
            position: Some(position),
        })
    }

    fn post(position: u64, room: &str) -> SourceEvent {
        SourceEvent::Room(RoomPost {
            event_id: Some(format!("evt_r{position}")),
            room: room.into(),
            from: "alice".into(),
            text: format!("message {position}"),
            data: None,
            timestamp: Utc::now(),
            position: Some(position),
        })
    }

    /// A projection with tours, duplicates, notifications and room
    /// messages over 60 positions.
    fn busy_projection() -> Projection {
        let mut projection = Projection::with_inbox("stream", 8, 1000, 50).with_rooms(4, 100);
        for position in 1..=60u64 {
            let event = match position % 5 {
                _ if position % 7 == 6 => post(position, if position < 30 { "r1" } else { "r2" }),
                0 => notice(position, if position % 2 == 0 { "alice" } else { "bob" }),
                // A redelivery of the previous event's id: a duplicate.
                4 => tour_event(position, "b", 9, Some(&format!("evt_{}", position - 1))),
                _ => tour_event(
                    position,
                    ["a", "b", "c"][position as usize % 3],
                    (position % 20) as u32,
                    Some(&format!("evt_{position}")),
                ),
            };
            projection.apply(event);
        }
        projection
    }

    /// A checkpoint of [`busy_projection`] keeping `history_budget` events.
    fn busy_checkpoint(history_budget: usize) -> Checkpoint {
        busy_projection()
            .checkpoint("s", CheckpointLimits { history_budget })
            .expect("numbered by the stream")
    }

    fn recoveries(projection: &Projection) -> Vec<String> {
        let mut answers = Vec::new();
        for since in [0, 1, 10, 30, 55, 59, 60, 61] {
            for scope in [
                Scope::Tour("a"),
                Scope::Tour("b"),
                Scope::Permitted(&Permissions::All),
                Scope::User("alice"),
                Scope::User("bob"),
                Scope::Room("r1"),
                Scope::Room("r2"),
            ] {
                answers.push(match projection.recover(scope, "stream", since) {
                    Recovery::Replay(missed) => format!(
                        "replay {:?}",
                        missed
                            .iter()
                            .map(|m| m.json.as_str().to_string())
                            .collect::<Vec<_>>()
                    ),
                    Recovery::ReadBack { through } => format!("read back {through}"),
                    Recovery::Snapshot => "snapshot".into(),
                });
            }
        }
        answers
    }

    #[test]
    fn a_restored_projection_answers_as_the_one_that_wrote_it() {
        let projection = busy_projection();
        let limits = CheckpointLimits {
            history_budget: 1000,
        };
        let checkpoint = projection
            .checkpoint("s", limits)
            .expect("numbered by the stream");
        // Through the wire format, as it is stored.
        let bytes = checkpoint.encode_to_vec();
        let decoded = Checkpoint::decode(bytes.as_slice()).expect("decodes");
        let mut restored = Projection::restore(decoded, "stream", 8, 1000, 50)
            .expect("restores")
            .with_rooms(4, 100);
        let mut original = projection;
        assert!(!checkpoint.rooms.is_empty());
        for room in ["r1", "r2", "r3"] {
            assert_eq!(
                format!("{:?}", restored.recent_in_room(room)),
                format!("{:?}", original.recent_in_room(room)),
                "{room}"
            );
        }
        assert_eq!(restored.last_seq(), original.last_seq());
        let all = Scope::Permitted(&Permissions::All);
        assert_eq!(restored.snapshot(all), original.snapshot(all));
        assert_eq!(recoveries(&restored), recoveries(&original));
        // Read back from the stream, skipped positions are skipped alike.
        let duplicate = tour_event(54, "b", 9, Some("evt_53"));
        assert!(original.rebuilt_message(&duplicate, 54).is_none());
        assert!(restored.rebuilt_message(&duplicate, 54).is_none());
        // And both go on alike: the same duplicates dropped, the same bytes.
        for (position, event) in [
            (61, tour_event(61, "a", 4, Some("evt_58"))),
            (62, tour_event(62, "c", 5, Some("evt_62"))),
            (63, notice(63, "alice")),
            (64, post(64, "r2")),
        ] {
            let outcome = |applied: Applied| match applied {
                Applied::Fresh { seq, message, .. } => {
                    format!("{seq} {}", message.encoded().json.as_str())
                }
                other => format!("{other:?}"),
            };
            assert_eq!(
                outcome(restored.apply(event.clone())),
                outcome(original.apply(event)),
                "position {position}"
            );
        }
    }

    #[test]
    fn a_small_budget_sends_older_recoveries_to_the_stream() {
        let projection = busy_projection();
        let checkpoint = projection
            .checkpoint("s", CheckpointLimits { history_budget: 3 })
            .expect("checkpoint");
        assert!(checkpoint.tours.iter().all(|t| t.history.len() == 1));
        let restored = Projection::restore(checkpoint, "stream", 8, 1000, 50).expect("restores");
        // The newest event of a tour is still in memory…
        let last_a = restored.tour("a").expect("a").seq;
        assert!(matches!(
            restored.recover(Scope::Tour("a"), "stream", last_a - 1),
            Recovery::Replay(m) if m.len() == 1
        ));
        // …and anything older is read back, never answered wrongly.
        assert!(matches!(
            restored.recover(Scope::Tour("a"), "stream", 1),
            Recovery::ReadBack { through: 60 }
        ));
    }

    #[test]
    fn another_epoch_or_a_broken_message_is_refused() {
        let checkpoint = busy_checkpoint(100);
        assert!(matches!(
            Projection::restore(checkpoint.clone(), "other", 8, 1000, 50),
            Err(RestoreError::OtherEpoch { .. })
        ));
        let mut broken = checkpoint.clone();
        broken.tours[0].history[0].message = vec![0xff, 0xff, 0xff];
        assert!(matches!(
            Projection::restore(broken, "stream", 8, 1000, 50),
            Err(RestoreError::Inconsistent(_))
        ));
        let mut ahead = checkpoint;
        ahead.position = 10;
        assert!(matches!(
            Projection::restore(ahead, "stream", 8, 1000, 50),
            Err(RestoreError::Inconsistent(_))
        ));
    }

    #[test]
    fn a_reader_keeping_less_history_sends_what_it_dropped_to_the_stream() {
        let checkpoint = busy_checkpoint(1000);
        let tour_a = |c: &Checkpoint| {
            c.tours
                .iter()
                .find(|t| t.state.as_ref().is_some_and(|s| s.tour_id == "a"))
                .map(|t| t.history.iter().map(|m| m.seq).collect::<Vec<_>>())
                .expect("tour a")
        };
        let written = tour_a(&checkpoint);
        assert!(written.len() > 2, "{written:?}");
        let restored = Projection::restore(checkpoint, "stream", 2, 1000, 50).expect("restores");
        // Kept: the newest two; from the second newest on, memory answers.
        let newest_two = &written[written.len() - 2..];
        assert!(matches!(
            restored.recover(Scope::Tour("a"), "stream", newest_two[0]),
            Recovery::Replay(m) if m.len() == 1
        ));
        // From before the newest one this reader dropped: read back.
        let dropped = written[written.len() - 3];
        assert!(matches!(
            restored.recover(Scope::Tour("a"), "stream", dropped - 1),
            Recovery::ReadBack { .. }
        ));
    }

    #[test]
    fn history_at_or_below_its_own_watermark_is_inconsistent() {
        let mut checkpoint = busy_checkpoint(1000);
        let tour = &mut checkpoint.tours[0];
        tour.evicted_through = tour.history[0].seq;
        assert!(matches!(
            Projection::restore(checkpoint, "stream", 8, 1000, 50),
            Err(RestoreError::Inconsistent(_))
        ));
    }

    #[test]
    fn a_checkpoint_with_a_smaller_duplicate_window_is_refused() {
        let checkpoint = busy_checkpoint(100);
        assert!(matches!(
            Projection::restore(checkpoint.clone(), "stream", 8, 5000, 50),
            Err(RestoreError::Settings(_))
        ));
        // A smaller window of its own is fine: it remembers at least as much.
        assert!(Projection::restore(checkpoint, "stream", 8, 100, 50).is_ok());
    }

    #[test]
    fn a_projection_that_numbered_events_itself_writes_no_checkpoint() {
        let mut projection = Projection::new("demo", 8, 100);
        let mut event = tour_event(1, "a", 5, None);
        event.set_position(None);
        projection.apply(event);
        let limits = CheckpointLimits { history_budget: 10 };
        assert!(projection.checkpoint("s", limits).is_none());
    }
}
