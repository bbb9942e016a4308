//! The engine: applies source events to the projection and fans them out
//! through the hub to their channel, and serves subscriptions with
//! snapshots or replays.
//!
//! One lock (the projection's) orders everything that must be ordered: an
//! event is applied and queued to every recipient under it, and a
//! subscription is registered and answered under it. So a subscriber's snapshot or replay is
//! always followed by exactly the events after it, never a gap or a repeat.
//! The lock is a `parking_lot::Mutex` held only for synchronous work.
//!
//! A recovery that memory can no longer serve reads the stream back
//! ([`ReadBack`], implemented over the RabbitMQ stream) in two steps:
//! [`Engine::subscribe`] answers [`Subscribing::ReadBack`] without
//! registering anything; the connection reads the range of the stream
//! without any lock held; then [`Engine::subscribe_after_read_back`] takes
//! the lock, adds whatever memory holds after that range, and registers the
//! subscription, as one step again.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use chrono::Utc;
use futures_util::future::BoxFuture;
use parking_lot::Mutex;

use crate::auth::Permissions;
use crate::channel::{self, Membership};
use crate::event::SourceEvent;
use crate::hub::{ClientHandle, CloseReason, Hub, Offer, Subscriptions, Target};
use crate::protocol::ServerMessage;
use crate::protocol::codec::Encoded;
use crate::protocol::snapshot;
use crate::protocol::v1::Checkpoint;
use crate::protocol::v1::{
    Published, Snapshot, StreamPosition, Subscribed, TourState, Unsubscribed,
};
use crate::state::rooms::Recent;
use crate::state::{Applied, CheckpointLimits, Projection, Recovery, RestoreError, Scope};
use crate::telemetry::FANOUT_SECONDS;
use crate::time::rfc3339;

/// The result of [`Engine::apply`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApplyOutcome {
    /// Applied and queued to `recipients` clients.
    Applied {
        /// The event's sequence number.
        seq: u64,
        /// How many clients it was queued for.
        recipients: usize,
    },
    /// Already applied (same `eventId`): dropped.
    Duplicate,
    /// Older than the tour's state: dropped.
    Stale,
    /// A new tour beyond `MAX_TOURS`: refused.
    OverCapacity,
}

/// The durable, ordered stream the engine's events come from, read back
/// for recoveries that memory cannot serve. Every `seq` is a stream
/// position.
pub trait ReadBack: Send + Sync {
    /// The stream's events with positions in `(after, through]`, oldest
    /// first, each with its `position` set. Fails with
    /// [`ReadBackError::Expired`] when the stream no longer holds position
    /// `after + 1` (retention dropped it).
    fn read(
        &self,
        after: u64,
        through: u64,
    ) -> BoxFuture<'static, Result<Vec<SourceEvent>, ReadBackError>>;
}

/// Why the stream could not be read back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadBackError {
    /// Retention dropped the start of the range.
    #[error("the stream no longer holds those events")]
    Expired,
    /// The range is longer than one recovery may read.
    #[error("the gap is {0} events, more than one recovery reads")]
    TooLong(u64),
    /// The broker is unreachable, or the read timed out.
    #[error("the stream cannot be read now: {0}")]
    Unavailable(String),
}

/// How [`Engine::subscribe`] went.
#[derive(Debug)]
pub enum Subscribing {
    /// Answered: the acknowledgement and the state or missed events are queued.
    Answered,
    /// Memory no longer holds what the client missed: read this range of
    /// the stream, then call [`Engine::subscribe_after_read_back`]. Nothing is
    /// registered or queued yet.
    ReadBack(ReadBackRange),
}

/// A range of the stream a recovery needs, with what earlier reads found.
#[derive(Debug)]
pub struct ReadBackRange {
    /// Read the events after this position…
    pub after: u64,
    /// …through this one.
    pub through: u64,
    /// Events of the subscription's scope found by earlier rounds.
    found: Vec<Arc<Encoded>>,
    /// Rounds read so far (a busy stream can outrun memory again meanwhile).
    rounds: u32,
    /// For a plain `join` whose room memory lost: keep only the newest
    /// this many (the room's recent messages), and claim no recovery.
    recent: Option<usize>,
}

/// What a subscription's acknowledgement echoes and, for a room, who is in it.
#[derive(Debug, Clone, Default)]
pub struct Acknowledging {
    /// The request's `requestId`.
    pub request_id: Option<String>,
    /// For a `join`: the room's members, for `joined`.
    pub membership: Option<Membership>,
}

/// What follows a subscription's acknowledgement.
enum Answer {
    /// No `since`: a tour's snapshot, a room's recent messages.
    Fresh,
    /// Exactly the events missed after `since`.
    Recovered(Vec<Arc<Encoded>>),
    /// `since` could not be served: a fresh snapshot (tours) or the recent
    /// messages (rooms), marked unrecovered.
    Unrecovered,
    /// A room's recent messages, read back from the stream.
    Recent(Vec<Arc<Encoded>>),
}

/// Reads of the stream one recovery may take before settling for a snapshot.
const MAX_READ_BACK_ROUNDS: u32 = 3;

/// Event counters, by outcome: the one count, which `/metrics` renders as
/// `tourcast_events_total{outcome}` (sources add `poison` themselves).
#[derive(Debug, Default)]
pub struct EventCounters {
    /// Events applied and fanned out.
    pub applied: AtomicU64,
    /// Events dropped as duplicates.
    pub duplicates: AtomicU64,
    /// Events dropped as stale.
    pub stale: AtomicU64,
    /// Events refused because they would add a tour beyond `MAX_TOURS`.
    pub over_capacity: AtomicU64,
}

/// Settings of the engine.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// The epoch `seq` numbers count in.
    pub epoch: String,
    /// Events kept per tour for recovery.
    pub history_len: usize,
    /// Event ids remembered for duplicate detection.
    pub dedupe_window: usize,
    /// Most events replayed to a resubscribing client before a snapshot is
    /// sent instead (a replay must fit in the client's outbound queue).
    pub max_replay: usize,
    /// Most tours and channels one connection may subscribe to
    /// (`MAX_CHANNELS_PER_CONNECTION`).
    pub max_channels_per_connection: usize,
    /// Most rooms one connection may be in (`MAX_ROOMS_PER_CONNECTION`).
    pub max_rooms_per_connection: usize,
    /// Messages kept per room (`ROOM_HISTORY`).
    pub room_history: usize,
    /// Most rooms whose history is held (`MAX_ROOMS`).
    pub max_rooms: usize,
    /// Most stream events one recovery may read back (`RECOVERY_MAX_SCAN`).
    pub max_read_back: u64,
    /// Notifications kept in memory for recovery, over all users
    /// (`NOTIFICATION_HISTORY`).
    pub notification_history: usize,
    /// Largest snapshot frame; larger snapshots come in parts
    /// (`SNAPSHOT_FRAME_BYTES`).
    pub snapshot_frame_bytes: usize,
    /// Most tours held (`MAX_TOURS`): with `history_len`, what bounds memory.
    pub max_tours: usize,
}

#[derive(Debug, Clone, Copy)]
struct ProjectionLimits {
    history_len: usize,
    dedupe_window: usize,
    notification_history: usize,
    room_history: usize,
    max_rooms: usize,
}

impl ProjectionLimits {
    fn empty_projection(&self, epoch: &str, max_tours: usize) -> Projection {
        Projection::with_inbox(
            epoch,
            self.history_len,
            self.dedupe_window,
            self.notification_history,
        )
        .with_tour_limit(max_tours)
        .with_rooms(self.room_history, self.max_rooms)
    }
}

/// Why a subscribe (or a join) was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubscribeError {
    /// The connection subscribes to too many tours and channels.
    #[error("too many subscriptions (at most {0} tours and channels per connection)")]
    TooManyChannels(usize),
    /// The connection is in too many rooms.
    #[error("too many rooms (at most {0} per connection)")]
    TooManyRooms(usize),
}

/// A client's `publish` on its way through the stream: when the message
/// comes back from it, the client is told its position.
#[derive(Debug)]
struct PendingPublish {
    client: ClientHandle,
    room: String,
    request_id: Option<String>,
}

/// Most publishes waiting for their message to come back from the stream,
/// over all connections: each is a few hundred bytes, and the publish rate
/// bucket keeps the normal number far below this.
const MAX_PENDING_PUBLISHES: usize = 100_000;

/// Why a publish could not be awaited.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublishRefused {
    /// Too many publishes are waiting for the stream already.
    #[error("too many messages are on their way through the stream; retry shortly")]
    Busy,
}

/// State, fan-out and subscriptions.
pub struct Engine {
    epoch: String,
    projection: Mutex<Projection>,
    /// The projection's limits, for a projection restored from a checkpoint.
    limits: ProjectionLimits,
    hub: Hub,
    counters: EventCounters,
    max_replay: usize,
    max_channels_per_connection: usize,
    max_rooms_per_connection: usize,
    max_read_back: u64,
    snapshot_frame_bytes: usize,
    max_tours: usize,
    /// The stream, read back for recoveries memory cannot serve.
    stream: OnceLock<Arc<dyn ReadBack>>,
    /// Clients' publishes not yet back from the stream, by `messageId`.
    pending_publishes: Mutex<HashMap<String, PendingPublish>>,
}

impl Engine {
    /// A fresh engine with an empty projection.
    pub fn new(config: EngineConfig) -> Self {
        let limits = ProjectionLimits {
            history_len: config.history_len,
            dedupe_window: config.dedupe_window,
            notification_history: config.notification_history,
            room_history: config.room_history,
            max_rooms: config.max_rooms,
        };
        Engine {
            projection: Mutex::new(limits.empty_projection(&config.epoch, config.max_tours)),
            limits,
            epoch: config.epoch,
            hub: Hub::new(),
            counters: EventCounters::default(),
            max_replay: config.max_replay,
            max_channels_per_connection: config.max_channels_per_connection,
            max_rooms_per_connection: config.max_rooms_per_connection,
            max_read_back: config.max_read_back,
            snapshot_frame_bytes: config.snapshot_frame_bytes,
            max_tours: config.max_tours,
            stream: OnceLock::new(),
            pending_publishes: Mutex::new(HashMap::new()),
        }
    }

    /// Attaches the stream the events come from (once; later calls
    /// are ignored), so that recoveries can reach past memory.
    pub fn attach_read_back(&self, stream: Arc<dyn ReadBack>) {
        let _ = self.stream.set(stream);
    }

    /// Reads a range of the stream for a recovery (see [`Subscribing::ReadBack`]).
    pub fn read_back(
        &self,
        range: &ReadBackRange,
    ) -> BoxFuture<'static, Result<Vec<SourceEvent>, ReadBackError>> {
        let span = range.through.saturating_sub(range.after);
        match self.stream.get() {
            _ if span > self.max_read_back => {
                Box::pin(std::future::ready(Err(ReadBackError::TooLong(span))))
            }
            Some(stream) => stream.read(range.after, range.through),
            None => Box::pin(std::future::ready(Err(ReadBackError::Unavailable(
                "no stream to read back".into(),
            )))),
        }
    }

    /// The most tours and channels one connection may follow.
    pub fn max_channels_per_connection(&self) -> usize {
        self.max_channels_per_connection
    }

    /// The epoch `seq` numbers count in.
    pub fn epoch(&self) -> &str {
        &self.epoch
    }

    /// The hub (delivery counters, registrations).
    pub fn hub(&self) -> &Hub {
        &self.hub
    }

    /// Event counters.
    pub fn counters(&self) -> &EventCounters {
        &self.counters
    }

    /// The state of every known tour.
    pub fn tours(&self) -> Vec<TourState> {
        self.projection
            .lock()
            .snapshot(Scope::Permitted(&Permissions::All))
    }

    /// The highest `seq` applied.
    pub fn last_seq(&self) -> u64 {
        self.projection.lock().last_seq()
    }

    /// Applies an event and queues it to every recipient. Never waits on a
    /// client: a source may acknowledge its input as soon as this returns.
    pub fn apply(&self, event: impl Into<SourceEvent>) -> ApplyOutcome {
        let started = Instant::now();
        let projection = self.projection.lock();
        self.apply_locked(projection, event.into(), started)
    }

    /// Expects a client's published message back from the stream: when the
    /// event with `message_id` is applied, `client` gets `published` with
    /// its position (see [`Engine::apply`]). Refused when too many wait.
    pub fn expect_published(
        &self,
        message_id: &str,
        client: &ClientHandle,
        room: &str,
        request_id: Option<String>,
    ) -> Result<(), PublishRefused> {
        let mut pending = self.pending_publishes.lock();
        if pending.len() >= MAX_PENDING_PUBLISHES {
            return Err(PublishRefused::Busy);
        }
        pending.insert(
            message_id.to_string(),
            PendingPublish {
                client: client.clone(),
                room: room.to_string(),
                request_id,
            },
        );
        Ok(())
    }

    /// Stops expecting a publish whose write to the stream failed.
    /// Returns whether it was still expected: `false` means its message
    /// came back from the stream (and was answered) after all, so the
    /// failure must not be reported.
    pub fn forget_published(&self, message_id: &str) -> bool {
        self.pending_publishes.lock().remove(message_id).is_some()
    }

    /// Applies an event read from the stream at `offset`: its `seq`
    /// is the position `offset + 1`, checked against the projection in the same
    /// step. A position the projection has passed (a stream deleted and
    /// recreated, whose offsets restarted) cannot be a `seq`; the projection
    /// numbers that event itself rather than drop it.
    pub fn apply_from_stream(&self, mut event: SourceEvent, offset: u64) -> ApplyOutcome {
        let started = Instant::now();
        let projection = self.projection.lock();
        let position = offset + 1;
        event.set_position((position > projection.last_seq()).then_some(position));
        self.apply_locked(projection, event, started)
    }

    /// The projection as a checkpoint of `stream` at its current position
    /// (`None` when its numbers are not stream positions). Taken under the
    /// lock, as one consistent state; encoding it is the caller's.
    pub fn checkpoint(&self, stream: &str, limits: CheckpointLimits) -> Option<Checkpoint> {
        // Drafted under the lock (copies and shared handles only), encoded
        // and sorted after it, so fan-out waits as little as possible.
        let draft = self.projection.lock().checkpoint_draft(limits)?;
        Some(draft.finish(stream))
    }

    /// Replaces the projection with one restored from `checkpoint`, before the
    /// source replays what follows it. Returns the stream position it has
    /// taken in (applied or dropped), after which reading resumes. Only
    /// for start-up: nobody may be subscribed yet.
    pub fn restore(&self, checkpoint: Checkpoint) -> Result<u64, RestoreError> {
        let limits = self.limits;
        let projection = Projection::restore(
            checkpoint,
            &self.epoch,
            limits.history_len,
            limits.dedupe_window,
            limits.notification_history,
        )?
        .with_tour_limit(self.max_tours)
        .with_rooms(limits.room_history, limits.max_rooms);
        let position = projection.last_position();
        *self.projection.lock() = projection;
        Ok(position)
    }

    /// Forgets everything: an empty projection, as at start-up. For a restored
    /// checkpoint that the stream turned out not to continue (recreated
    /// under it), before anything was served.
    pub fn reset(&self) {
        *self.projection.lock() = self.limits.empty_projection(&self.epoch, self.max_tours);
    }

    /// Seeds tours the projection does not know yet as base state (from a catalog
    /// service, say), atomically: no event is numbered or sent, so every
    /// `seq` stays a stream position. Returns how many were new.
    pub fn seed(&self, tours: impl IntoIterator<Item = TourState>) -> usize {
        let mut projection = self.projection.lock();
        tours
            .into_iter()
            .filter(|tour| projection.seed(tour.clone()))
            .count()
    }

    fn apply_locked(
        &self,
        mut projection: parking_lot::MutexGuard<'_, Projection>,
        event: SourceEvent,
        started: Instant,
    ) -> ApplyOutcome {
        // A room message may be a client's publish coming back.
        let message_id = match &event {
            SourceEvent::Room(post) => post.event_id.clone(),
            _ => None,
        };
        match projection.apply(event) {
            Applied::Fresh {
                seq,
                channel,
                message,
            } => {
                if let Some(id) = message_id {
                    self.answer_publish(id, seq);
                }
                // Nobody to send it to (a replay, a quiet tour): it stays
                // unencoded until a recovery or a later fan-out asks.
                let recipients = if self.hub.has_recipients(&channel) {
                    self.hub.fan_out(&channel, &message.encoded())
                } else {
                    0
                };
                drop(projection);
                metrics::histogram!(FANOUT_SECONDS).record(started.elapsed().as_secs_f64());
                self.counters.applied.fetch_add(1, Ordering::Relaxed);
                ApplyOutcome::Applied { seq, recipients }
            }
            Applied::Duplicate => {
                self.counters.duplicates.fetch_add(1, Ordering::Relaxed);
                ApplyOutcome::Duplicate
            }
            Applied::Stale => {
                self.counters.stale.fetch_add(1, Ordering::Relaxed);
                ApplyOutcome::Stale
            }
            Applied::OverCapacity => {
                if self.counters.over_capacity.fetch_add(1, Ordering::Relaxed) == 0 {
                    tracing::warn!(
                        max_tours = self.max_tours,
                        "an event would add a tour beyond MAX_TOURS; refusing new tours (counted in tourcast_events_total{{outcome=\"over_capacity\"}})"
                    );
                }
                ApplyOutcome::OverCapacity
            }
        }
    }

    /// Tells the client that published `message_id`, if it waits here,
    /// where its message landed. Before the fan-out, under the projection
    /// lock: its `published` comes before its own copy of the message.
    fn answer_publish(&self, message_id: String, seq: u64) {
        let Some(pending) = self.pending_publishes.lock().remove(&message_id) else {
            return;
        };
        let reply = ServerMessage::Published(Published {
            room: pending.room,
            seq,
            message_id,
            request_id: pending.request_id,
        });
        if pending.client.send(&reply) == Offer::Slow {
            self.hub.count_slow();
        }
    }

    /// Registers a new connection (which receives every tour until it subscribes).
    pub fn add_connection(&self, client: &ClientHandle, subs: &Subscriptions) {
        self.hub.add_connection(client);
        for target in subs.effective() {
            self.hub.add(&target, client);
        }
    }

    /// Removes a connection from the hub.
    pub fn remove_connection(&self, client: &ClientHandle, subs: &Subscriptions) {
        for target in subs.effective() {
            self.hub.remove(&target, client.id());
        }
        self.hub.remove_connection(client.id());
        // Its publishes still on their way are delivered to the room, but
        // nobody is left to tell where they landed.
        self.pending_publishes
            .lock()
            .retain(|_, pending| pending.client.id() != client.id());
    }

    /// Asks every open connection to close (e.g. `ServerShutdown`).
    pub fn close_all(&self, reason: CloseReason) -> usize {
        self.hub.close_all(reason)
    }

    /// Subscribes `client` to `target` (or joins a room), queuing the
    /// acknowledgement (`subscribed`, or `joined` with `membership`) then
    /// a `snapshot` (tours), the room's recent messages (rooms), or (with
    /// `since`) the missed events when memory still holds them. When only
    /// the stream does, nothing happens yet: the answer is
    /// [`Subscribing::ReadBack`].
    pub fn subscribe(
        &self,
        client: &ClientHandle,
        subs: &mut Subscriptions,
        target: Target,
        since: Option<&StreamPosition>,
        request: Acknowledging,
    ) -> Result<Subscribing, SubscribeError> {
        self.check_limit(subs, &target)?;
        let projection = self.projection.lock();
        let scope = scope_of(&target, subs);
        let read_back_from = |after: u64, through: u64, recent: Option<usize>| {
            Subscribing::ReadBack(ReadBackRange {
                after,
                through,
                found: Vec::new(),
                rounds: 0,
                recent,
            })
        };
        // Channels without history (stats) have nothing to recover.
        let answer = match (since, scope) {
            (None, _) | (_, None) => Answer::Fresh,
            (Some(position), Some(scope)) => {
                match projection.recover(scope, &position.epoch, position.seq) {
                    Recovery::Replay(missed) if missed.len() <= self.max_replay => {
                        Answer::Recovered(missed)
                    }
                    Recovery::ReadBack { through } if self.stream.get().is_some() => {
                        // While the stream is read back, nothing of the
                        // target's scope may reach the client live (it would
                        // come again, out of order, in the recovery): stop
                        // the implicit every-tour delivery and any
                        // registration of the target now; `answer`
                        // registers it when the recovery is complete.
                        self.reregister(client, subs, |subs| {
                            subs.unsubscribe(&target);
                        });
                        return Ok(read_back_from(position.seq, through, None));
                    }
                    _ => Answer::Unrecovered,
                }
            }
        };
        // A plain join of a room whose recent messages memory lost (its
        // room, or another, was evicted): the newest of them are in the
        // last stretch of the stream.
        if let (Answer::Fresh, Target::Room(room)) = (&answer, &target)
            && matches!(projection.recent_in_room(room), Recent::Incomplete)
            && self.stream.get().is_some()
            && let Some(first) = projection.stream_numbered_from()
        {
            let through = projection.last_seq();
            let after = through
                .saturating_sub(self.max_read_back)
                .max(first.saturating_sub(1));
            // Rejoining: no live message until the read-back is answered.
            self.reregister(client, subs, |subs| {
                subs.leave(&target);
            });
            return Ok(read_back_from(
                after,
                through,
                Some(projection.room_history_len()),
            ));
        }
        self.answer(&projection, client, subs, target, answer, request);
        Ok(Subscribing::Answered)
    }

    /// Completes a subscription whose recovery needed the stream: `read` is
    /// what [`Engine::read_back`] returned for `range`. Events after the
    /// range come from memory, under the same lock that registers the
    /// subscription; if memory has lost those too, another (bounded) round
    /// of reading is asked for.
    #[allow(clippy::too_many_arguments)]
    pub fn subscribe_after_read_back(
        &self,
        client: &ClientHandle,
        subs: &mut Subscriptions,
        target: Target,
        since: Option<&StreamPosition>,
        request: Acknowledging,
        mut range: ReadBackRange,
        read: Result<Vec<SourceEvent>, ReadBackError>,
    ) -> Result<Subscribing, SubscribeError> {
        self.check_limit(subs, &target)?;
        let projection = self.projection.lock();
        let scope = scope_of(&target, subs);
        // The most a range may keep: a recovery's missed events all fit
        // the client's replay budget; a room's recent messages are capped.
        let budget = range.recent.unwrap_or(self.max_replay);
        let keep_newest = |found: &mut Vec<Arc<Encoded>>| {
            if let Some(recent) = range.recent
                && found.len() > recent
            {
                found.drain(..found.len() - recent);
            }
        };
        let epoch = since.map_or(self.epoch.as_str(), |since| since.epoch.as_str());
        let recovered = match (read, scope) {
            (_, None) => None,
            (Err(error), _) => {
                tracing::debug!(conn = client.id(), %error, "recovery from the stream failed; answering unrecovered");
                None
            }
            (Ok(events), Some(scope)) => {
                // Count before encoding: a recovery too large for one
                // client is refused without doing the work under the lock.
                let in_scope: Vec<&SourceEvent> = events
                    .iter()
                    .filter(|event| scope.includes(event))
                    .collect();
                range.rounds += 1;
                if range.recent.is_some() || range.found.len() + in_scope.len() <= budget {
                    range.found.extend(
                        in_scope.into_iter().filter_map(|event| {
                            projection.rebuilt_message(event, event.position()?)
                        }),
                    );
                    keep_newest(&mut range.found);
                } else {
                    range.found.clear();
                    range.rounds = MAX_READ_BACK_ROUNDS + 1;
                }
                match projection.recover(scope, epoch, range.through) {
                    _ if range.rounds > MAX_READ_BACK_ROUNDS => None,
                    Recovery::Replay(newer)
                        if range.recent.is_some() || range.found.len() + newer.len() <= budget =>
                    {
                        range.found.extend(newer);
                        keep_newest(&mut range.found);
                        Some(std::mem::take(&mut range.found))
                    }
                    Recovery::ReadBack { through } if range.rounds < MAX_READ_BACK_ROUNDS => {
                        range.after = range.through;
                        range.through = through;
                        return Ok(Subscribing::ReadBack(range));
                    }
                    _ => None,
                }
            }
        };
        let answer = match (recovered, range.recent) {
            (Some(found), Some(_)) => Answer::Recent(found),
            (None, Some(_)) => Answer::Recent(Vec::new()),
            (Some(missed), None) => Answer::Recovered(missed),
            (None, None) => Answer::Unrecovered,
        };
        self.answer(&projection, client, subs, target, answer, request);
        Ok(Subscribing::Answered)
    }

    /// Refuses a new subscription (or room) beyond the per-connection
    /// limits. [`Engine::subscribe`] checks it too; a `join` asks first,
    /// before it tells the room's members that someone came.
    pub fn check_limit(&self, subs: &Subscriptions, target: &Target) -> Result<(), SubscribeError> {
        if subs.contains(target) {
            return Ok(());
        }
        if target.is_room() {
            if subs.rooms().count() >= self.max_rooms_per_connection {
                return Err(SubscribeError::TooManyRooms(self.max_rooms_per_connection));
            }
        } else if subs.channel_count() >= self.max_channels_per_connection {
            return Err(SubscribeError::TooManyChannels(
                self.max_channels_per_connection,
            ));
        }
        Ok(())
    }

    /// Registers `target` and queues its acknowledgement, then what the
    /// answer holds: the missed events, or a tour's snapshot (marked
    /// unrecovered after a failed recovery), or a room's recent messages.
    /// A notification channel has no snapshot: an unrecovered gap is said in
    /// `subscribed` alone. The stats channel's first message comes from
    /// the stats task. Called under the projection lock.
    fn answer(
        &self,
        projection: &Projection,
        client: &ClientHandle,
        subs: &mut Subscriptions,
        target: Target,
        answer: Answer,
        request: Acknowledging,
    ) {
        let recovered = match &answer {
            Answer::Fresh | Answer::Recent(_) => None,
            Answer::Recovered(_) => Some(true),
            Answer::Unrecovered => Some(false),
        };
        let ack = match &target {
            Target::Room(room) => {
                self.reregister(client, subs, |subs| subs.join(&target));
                channel::room::joined(
                    room,
                    request.membership.unwrap_or_default(),
                    // Where live messages start (what follows has a larger seq).
                    projection.last_seq(),
                    recovered,
                    request.request_id.clone(),
                )
            }
            _ => {
                self.reregister(client, subs, |subs| subs.subscribe(&target));
                let (tour_id, channel) = target.reply_names();
                // A notification channel has no snapshot to resume from: the
                // ack says where it starts (what follows is what this client gets).
                let seq = matches!(target, Target::User(_)).then(|| projection.last_seq());
                ServerMessage::Subscribed(Subscribed {
                    tour_id,
                    channel,
                    recovered,
                    request_id: request.request_id.clone(),
                    seq,
                })
            }
        };
        let mut offers = vec![client.send(&ack)];
        let scope = scope_of(&target, subs);
        match (answer, scope, &target) {
            (Answer::Recovered(events) | Answer::Recent(events), _, _) => {
                offers.push(client.offer_replay(&events));
            }
            (Answer::Fresh | Answer::Unrecovered, _, Target::Room(room)) => {
                // A room has no snapshot: its recent messages stand for it.
                if let Recent::Complete(recent) = projection.recent_in_room(room) {
                    offers.push(client.offer_replay(&recent));
                }
            }
            (answer, Some(scope), _) if target.is_tour() => {
                let snapshot = Snapshot {
                    tours: projection.snapshot(scope),
                    epoch: self.epoch.clone(),
                    recovered: matches!(answer, Answer::Unrecovered).then_some(false),
                    request_id: request.request_id,
                    timestamp: rfc3339(Utc::now()),
                    part: None,
                    parts: None,
                };
                let parts = snapshot::split(snapshot, client.encoding(), self.snapshot_frame_bytes);
                offers.push(match parts.as_slice() {
                    [whole] => client.send(whole),
                    parts => client.send_all(parts),
                });
            }
            _ => {}
        }
        if offers.contains(&Offer::Slow) {
            self.hub.count_slow();
        }
    }

    /// Takes `client` out of `room` and queues `left`.
    pub fn leave(
        &self,
        client: &ClientHandle,
        subs: &mut Subscriptions,
        room: Target,
        request_id: Option<String>,
    ) {
        let _projection = self.projection.lock();
        self.reregister(client, subs, |subs| {
            subs.leave(&room);
        });
        let Target::Room(name) = &room else {
            return;
        };
        let ack = channel::room::left(name, request_id);
        if client.send(&ack) == Offer::Slow {
            self.hub.count_slow();
        }
    }

    /// Unsubscribes `client` from `target` and queues `unsubscribed`.
    pub fn unsubscribe(
        &self,
        client: &ClientHandle,
        subs: &mut Subscriptions,
        target: Target,
        request_id: Option<String>,
    ) {
        // Under the projection lock so no event slips between the registration
        // change and the acknowledgement.
        let _projection = self.projection.lock();
        self.reregister(client, subs, |subs| {
            subs.unsubscribe(&target);
        });
        let (tour_id, channel) = target.reply_names();
        let ack = ServerMessage::Unsubscribed(Unsubscribed {
            tour_id,
            channel,
            request_id,
        });
        if client.send(&ack) == Offer::Slow {
            self.hub.count_slow();
        }
    }

    /// Whether `client`, subscribed to `tour_id` by name, also receives the
    /// tour's `viewers` count (see [`Subscriptions::set_viewers`]).
    pub fn set_viewers(
        &self,
        client: &ClientHandle,
        subs: &mut Subscriptions,
        tour_id: &str,
        on: bool,
    ) {
        self.reregister(client, subs, |subs| subs.set_viewers(tour_id, on));
    }

    /// Applies new permissions (a refreshed token): drops subscriptions they
    /// no longer allow, with an `unsubscribed` for each, and re-registers.
    pub fn set_permissions(
        &self,
        client: &ClientHandle,
        subs: &mut Subscriptions,
        permissions: Permissions,
    ) {
        let _projection = self.projection.lock();
        let mut revoked = Vec::new();
        self.reregister(client, subs, |subs| {
            revoked = subs.set_permissions(permissions)
        });
        for tour_id in revoked {
            let notice = ServerMessage::Unsubscribed(Unsubscribed {
                tour_id: Some(tour_id),
                channel: None,
                request_id: None,
            });
            client.send(&notice);
        }
    }

    /// Applies `change` to `subs` and moves the hub registrations from the
    /// old effective set to the new one.
    fn reregister(
        &self,
        client: &ClientHandle,
        subs: &mut Subscriptions,
        change: impl FnOnce(&mut Subscriptions),
    ) {
        let before = subs.effective();
        change(subs);
        let after = subs.effective();
        for gone in before.iter().filter(|t| !after.contains(t)) {
            self.hub.remove(gone, client.id());
        }
        for new in after.iter().filter(|t| !before.contains(t)) {
            self.hub.add(new, client);
        }
    }
}

/// Which events a subscription to `target` covers, for its snapshot and
/// its recovery; `None` for a channel with no history (stats).
fn scope_of<'a>(target: &'a Target, subs: &'a Subscriptions) -> Option<Scope<'a>> {
    match target {
        Target::Tour(id) => Some(Scope::Tour(id)),
        Target::AllTours => Some(Scope::Permitted(subs.permissions())),
        Target::User(user) => Some(Scope::User(user)),
        Target::Room(room) => Some(Scope::Room(room)),
        Target::Stats | Target::Viewers(_) | Target::Viewing(_) => None,
    }
}
