//! Presence: who is in which room, on every instance, and each tour's
//! viewer count. Presence is not history: nothing of it is numbered, kept
//! or written to the stream.
//!
//! Each instance knows its own connections exactly (room → user → the
//! connections of that user in the room) and, per peer instance, the users
//! that peer has in each room and its named subscribers per tour, in a
//! [`PeerTable`] (so a peer that stops saying anything drops out, as in
//! the `stats` board). A room's members are the union of the local users
//! and every live peer's.
//!
//! Whenever a user enters or leaves that union (their first connection in a
//! room on any instance, their last one anywhere, or every user of a peer
//! that left or died), the room's local members get `presence`; the
//! instance where it happened also tells its peers at once, over the peer
//! link (`tourcast.presence`), so a change reaches every instance within a
//! broker round trip, not at the next interval. Once per `STATS_INTERVAL`
//! each instance also sends its full state, which replaces what its peers
//! held for it: a peer that missed a change, or started later, converges,
//! and its silence is what expires it.
//!
//! A room above `ROOM_PRESENCE_LIMIT` members gets no individual joins and
//! leaves (N joining would cost N² frames); its members get a
//! `presence {action: count}` instead, at most once per second, when the
//! count changed.
//!
//! Viewer counts ([`viewers`]) ride on the same full reports.

pub mod viewers;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::Utc;
use parking_lot::Mutex;
use prost::Message as _;
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

use crate::channel::Target;
use crate::engine::Engine;
use crate::hub::{ConnId, Hub};
use crate::peer_table::PeerTable;
use crate::protocol::ServerMessage;
use crate::protocol::codec::Encoded;
use crate::protocol::v1::{
    PeerPresence, PeerPresenceChange, PeerRoom, PeerTourViewers, Presence as PresenceMessage,
    PresenceAction,
};
use crate::telemetry::{PRESENCE_FRAMES, PRESENCE_MEMBERS, PRESENCE_ROOMS};
use crate::time::rfc3339;

/// The routing key instances share presence under (the stream binds no
/// `tourcast.*` key, so none of it reaches the stream).
pub const PRESENCE_ROUTING_KEY: &str = "tourcast.presence";
/// Default `ROOM_PRESENCE_LIMIT`.
pub const DEFAULT_ROOM_PRESENCE_LIMIT: usize = 100;
/// How often a large room's members hear its count, at most.
pub const COUNT_EVERY: Duration = Duration::from_secs(1);
/// Longest instance id, room or user a peer may send (as the protocol's
/// own limits): a peer is another process, not to be trusted with memory.
const MAX_NAME: usize = 256;

pub use crate::channel::Membership;

/// How presence reaches the other instances (a share of the peer link).
pub struct PresencePeers {
    /// Encoded [`PeerPresence`] to publish.
    pub outgoing: mpsc::Sender<Vec<u8>>,
    /// Every instance's [`PeerPresence`], this one's included.
    pub incoming: mpsc::Receiver<Vec<u8>>,
}

/// Presence counters (the one count, which `/metrics` renders).
#[derive(Debug, Default)]
pub struct PresenceCounters {
    /// `presence` frames queued to clients.
    pub frames: AtomicU64,
}

/// Presence on this instance and its peers.
pub struct Presence {
    instance_id: String,
    interval: Duration,
    limit: usize,
    state: Mutex<State>,
    /// Wakes [`run`] when there are changes for the peers.
    changed: Notify,
    counters: PresenceCounters,
    viewers: viewers::ViewerCounts,
}

/// What a peer instance has: users per room, named subscribers per tour.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Remote {
    rooms: HashMap<String, HashSet<String>>,
    viewers: HashMap<String, u32>,
}

impl Remote {
    fn has(&self, room: &str, user: &str) -> bool {
        self.rooms
            .get(room)
            .is_some_and(|users| users.contains(user))
    }

    fn set(&mut self, room: &str, user: &str, present: bool) {
        if present {
            self.rooms
                .entry(room.to_string())
                .or_default()
                .insert(user.to_string());
        } else if let Some(users) = self.rooms.get_mut(room) {
            users.remove(user);
            if users.is_empty() {
                self.rooms.remove(room);
            }
        }
    }

    fn pairs(&self) -> impl Iterator<Item = (String, String)> + '_ {
        self.rooms
            .iter()
            .flat_map(|(room, users)| users.iter().map(move |user| (room.clone(), user.clone())))
    }
}

/// A user who entered or left a room's union: what `presence` reports.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Change {
    room: String,
    user: String,
    joined: bool,
}

#[derive(Debug)]
struct State {
    /// room → user → this instance's connections of that user in the room.
    local: HashMap<String, HashMap<String, HashSet<ConnId>>>,
    /// connection → the (room, user) pairs it is in, for a closing one.
    by_conn: HashMap<ConnId, HashSet<(String, String)>>,
    peers: PeerTable<Remote>,
    /// Local changes not yet told to the peers, oldest first.
    pending: Vec<PeerPresenceChange>,
    /// Large rooms whose count may have changed since their last update.
    dirty: HashSet<String>,
    /// The count each large room's members were last told.
    told: HashMap<String, u32>,
    /// Each room's members on every instance, sorted: kept up to date by
    /// [`State::diff`], through which every change of the union goes, so a
    /// count or the first hundred members are a lookup, not a union of
    /// every instance's users.
    union: HashMap<String, BTreeSet<String>>,
}

impl State {
    fn new(interval: Duration) -> Self {
        State {
            local: HashMap::new(),
            by_conn: HashMap::new(),
            peers: PeerTable::new(interval),
            pending: Vec::new(),
            dirty: HashSet::new(),
            told: HashMap::new(),
            union: HashMap::new(),
        }
    }

    fn local_has(&self, room: &str, user: &str) -> bool {
        self.local
            .get(room)
            .is_some_and(|users| users.contains_key(user))
    }

    /// Whether `user` is in `room` on any instance.
    fn in_union(&self, room: &str, user: &str) -> bool {
        self.local_has(room, user) || self.peers.values().any(|peer| peer.has(room, user))
    }

    fn membership(&self, room: &str) -> Membership {
        let members = self.union.get(room);
        Membership {
            members: members
                .map(|users| users.iter().take(Membership::LISTED).cloned().collect())
                .unwrap_or_default(),
            member_count: self.member_count(room),
        }
    }

    fn member_count(&self, room: &str) -> u32 {
        self.union
            .get(room)
            .map_or(0, |users| u32::try_from(users.len()).unwrap_or(u32::MAX))
    }

    /// Applies `apply` to the peer table (or to one peer) and returns the
    /// union changes it made among `pairs`.
    fn diff(
        &mut self,
        pairs: HashSet<(String, String)>,
        apply: impl FnOnce(&mut Self),
    ) -> Vec<Change> {
        let before: Vec<bool> = pairs
            .iter()
            .map(|(room, user)| self.in_union(room, user))
            .collect();
        apply(self);
        let changes: Vec<Change> = pairs
            .into_iter()
            .zip(before)
            .filter_map(|((room, user), was)| {
                let is = self.in_union(&room, &user);
                (is != was).then_some(Change {
                    room,
                    user,
                    joined: is,
                })
            })
            .collect();
        for change in &changes {
            if change.joined {
                self.union
                    .entry(change.room.clone())
                    .or_default()
                    .insert(change.user.clone());
            } else if let Some(users) = self.union.get_mut(&change.room) {
                users.remove(&change.user);
                if users.is_empty() {
                    self.union.remove(&change.room);
                }
            }
        }
        changes
    }

    /// Folds in a peer's message; returns the union changes.
    fn receive(&mut self, message: PeerPresence) -> Vec<Change> {
        let id = message.instance_id.clone();
        // Everything the peer had, for the two messages that replace it
        // all. Only for those: it is one pair per member the peer has, and
        // collecting it for every change message made each join or leave on
        // a peer cost as much as all its members (half a core for 1,000
        // joins/leaves a second with 1,750 members per instance).
        let old_pairs = |state: &Self| -> HashSet<(String, String)> {
            state
                .peers
                .iter()
                .find(|(peer, _)| *peer == id)
                .map(|(_, remote)| remote.pairs().collect())
                .unwrap_or_default()
        };
        if message.leaving {
            let old_pairs = old_pairs(self);
            return self.diff(old_pairs, |state| {
                state.peers.remove(&id);
            });
        }
        if message.full {
            let mut remote = Remote::default();
            for room in message.rooms {
                for user in room.users {
                    remote.set(&room.room, &user, true);
                }
            }
            remote.viewers = message
                .viewers
                .into_iter()
                .filter(|tour| tour.count > 0)
                .map(|tour| (tour.tour_id, tour.count))
                .collect();
            let mut pairs = old_pairs(self);
            pairs.extend(remote.pairs());
            return self.diff(pairs, |state| {
                state.peers.insert(&id, remote);
            });
        }
        let pairs: HashSet<(String, String)> = message
            .changes
            .iter()
            .map(|change| (change.room.clone(), change.user_id.clone()))
            .collect();
        self.diff(pairs, |state| {
            let remote = state.peers.touch(&id, Remote::default);
            for change in &message.changes {
                remote.set(&change.room, &change.user_id, change.present);
            }
        })
    }

    /// Drops silent peers; returns the union changes.
    fn expire(&mut self) -> Vec<Change> {
        let gone = self.peers.expire();
        if gone.is_empty() {
            return Vec::new();
        }
        let pairs: HashSet<(String, String)> =
            gone.iter().flat_map(|(_, remote)| remote.pairs()).collect();
        let ids: Vec<String> = gone.iter().map(|(id, _)| id.clone()).collect();
        // Back in the table for the "before" side of the comparison only.
        for (id, remote) in gone {
            self.peers.insert(&id, remote);
        }
        self.diff(pairs, |state| {
            for id in &ids {
                state.peers.remove(id);
            }
        })
    }
}

impl Presence {
    /// Presence for this instance, with peers reporting every `interval`,
    /// and individual `presence` events up to `limit` members per room.
    pub fn new(instance_id: String, interval: Duration, limit: usize) -> Self {
        Presence {
            instance_id,
            interval,
            limit,
            state: Mutex::new(State::new(interval)),
            changed: Notify::new(),
            counters: PresenceCounters::default(),
            viewers: viewers::ViewerCounts::default(),
        }
    }

    /// A tour's `viewers` message for a connection that just asked for it.
    pub fn viewers_for_new_watcher(
        &self,
        hub: &Hub,
        tour_id: &str,
    ) -> crate::protocol::v1::Viewers {
        self.viewers.for_new_watcher(hub, self, tour_id)
    }

    /// Sends `viewers` to the watchers of every tour whose count changed.
    pub fn send_viewers(&self, hub: &Hub) -> usize {
        self.viewers.send(hub, self)
    }

    /// Presence counters.
    pub fn counters(&self) -> &PresenceCounters {
        &self.counters
    }

    /// Connection `conn` of `user` enters `room`. When this is the user's
    /// first connection in the room on any instance, the room's other
    /// members get `presence joined`, and the peers are told at once.
    /// Returns the room as `joined` reports it (the user included).
    pub fn enter(&self, hub: &Hub, room: &str, user: &str, conn: ConnId) -> Membership {
        let mut state = self.state.lock();
        let first_here = !state.local_has(room, user);
        let pair = (room.to_string(), user.to_string());
        let changes = state.diff(HashSet::from([pair.clone()]), |state| {
            state
                .local
                .entry(room.to_string())
                .or_default()
                .entry(user.to_string())
                .or_default()
                .insert(conn);
            state.by_conn.entry(conn).or_default().insert(pair);
        });
        if first_here {
            self.tell_peers(&mut state, room, user, true);
        }
        self.announce(&mut state, hub, changes, Some(conn));
        state.membership(room)
    }

    /// Who is in `room` now, on every instance.
    pub fn membership(&self, room: &str) -> Membership {
        self.state.lock().membership(room)
    }

    /// Connection `conn` of `user` leaves `room`. When it was the user's
    /// last connection there on any instance, the room's other members get
    /// `presence left`; the peers hear of the user's last local one at once.
    pub fn leave(&self, hub: &Hub, room: &str, user: &str, conn: ConnId) {
        let mut state = self.state.lock();
        self.leave_locked(&mut state, hub, room, user, conn);
    }

    /// A connection closed: it leaves every room it was in.
    pub fn forget_connection(&self, hub: &Hub, conn: ConnId) {
        let mut state = self.state.lock();
        let Some(pairs) = state.by_conn.get(&conn).cloned() else {
            return;
        };
        for (room, user) in pairs {
            self.leave_locked(&mut state, hub, &room, &user, conn);
        }
    }

    fn leave_locked(&self, state: &mut State, hub: &Hub, room: &str, user: &str, conn: ConnId) {
        let pair = (room.to_string(), user.to_string());
        let Some(conns) = state.by_conn.get_mut(&conn) else {
            return;
        };
        if !conns.remove(&pair) {
            return;
        }
        if conns.is_empty() {
            state.by_conn.remove(&conn);
        }
        let mut last_here = false;
        let changes = state.diff(HashSet::from([pair]), |state| {
            let Some(users) = state.local.get_mut(room) else {
                return;
            };
            if let Some(conns) = users.get_mut(user) {
                conns.remove(&conn);
                if conns.is_empty() {
                    users.remove(user);
                    last_here = true;
                }
            }
            if users.is_empty() {
                state.local.remove(room);
            }
        });
        if last_here {
            self.tell_peers(state, room, user, false);
        }
        self.announce(state, hub, changes, Some(conn));
    }

    /// Queues a local change for the peers and wakes [`run`] to send it.
    fn tell_peers(&self, state: &mut State, room: &str, user: &str, present: bool) {
        state.pending.push(PeerPresenceChange {
            room: room.to_string(),
            user_id: user.to_string(),
            present,
        });
        self.changed.notify_one();
    }

    /// Sends `presence` for each change to the room's local members (but
    /// `except`), or marks a large room for a count update.
    fn announce(&self, state: &mut State, hub: &Hub, changes: Vec<Change>, except: Option<ConnId>) {
        for change in changes {
            let count = state.member_count(&change.room);
            if count as usize > self.limit {
                state.dirty.insert(change.room);
                continue;
            }
            // Back under the limit: individual events again, and a later
            // climb starts its count updates afresh.
            state.told.remove(&change.room);
            let action = if change.joined {
                PresenceAction::Joined
            } else {
                PresenceAction::Left
            };
            let message = ServerMessage::Presence(PresenceMessage {
                room: change.room.clone(),
                user_id: Some(change.user),
                action: action.into(),
                member_count: count,
                timestamp: rfc3339(Utc::now()),
            });
            let sent =
                hub.fan_out_except(&Target::Room(change.room), &Encoded::new(&message), except);
            self.count_frames(sent);
        }
    }

    fn count_frames(&self, sent: usize) {
        self.counters
            .frames
            .fetch_add(sent as u64, Ordering::Relaxed);
        metrics::counter!(PRESENCE_FRAMES).increment(sent as u64);
    }

    /// Sends `presence count` to each large room whose count changed since
    /// its members were last told. Called every [`COUNT_EVERY`].
    pub fn send_counts(&self, hub: &Hub) -> usize {
        let mut state = self.state.lock();
        let dirty: Vec<String> = state.dirty.drain().collect();
        let mut rooms = 0;
        for room in dirty {
            let count = state.member_count(&room);
            if count as usize <= self.limit || state.told.get(&room) == Some(&count) {
                continue;
            }
            state.told.insert(room.clone(), count);
            let message = ServerMessage::Presence(PresenceMessage {
                room: room.clone(),
                user_id: None,
                action: PresenceAction::Count.into(),
                member_count: count,
                timestamp: rfc3339(Utc::now()),
            });
            let sent = hub.fan_out(&Target::Room(room), &Encoded::new(&message));
            self.count_frames(sent);
            rooms += 1;
        }
        rooms
    }

    /// Folds in a peer's message (this instance's own is ignored) and
    /// tells the local members what changed.
    pub fn receive(&self, hub: &Hub, message: PeerPresence) {
        if message.instance_id == self.instance_id || !sane(&message) {
            return;
        }
        let mut state = self.state.lock();
        let changes = state.receive(message);
        self.announce(&mut state, hub, changes, None);
    }

    /// Drops peers silent for one and a half intervals; their users leave.
    pub fn expire(&self, hub: &Hub) {
        let mut state = self.state.lock();
        let changes = state.expire();
        self.announce(&mut state, hub, changes, None);
    }

    /// The local changes not yet sent, as one message (`None`: nothing new).
    fn take_changes(&self) -> Option<PeerPresence> {
        let mut state = self.state.lock();
        if state.pending.is_empty() {
            return None;
        }
        Some(PeerPresence {
            instance_id: self.instance_id.clone(),
            changes: std::mem::take(&mut state.pending),
            ..PeerPresence::default()
        })
    }

    /// This instance's whole state, for the peers; it supersedes the
    /// changes not sent yet. `viewers` are the named subscribers per tour.
    fn full_report(&self, viewers: Vec<(String, usize)>) -> PeerPresence {
        let mut state = self.state.lock();
        state.pending.clear();
        let mut rooms: Vec<PeerRoom> = state
            .local
            .iter()
            .map(|(room, users)| PeerRoom {
                room: room.clone(),
                users: users.keys().cloned().collect(),
            })
            .collect();
        rooms.sort_by(|a, b| a.room.cmp(&b.room));
        PeerPresence {
            instance_id: self.instance_id.clone(),
            full: true,
            rooms,
            viewers: viewers
                .into_iter()
                .map(|(tour_id, count)| PeerTourViewers {
                    tour_id,
                    count: u32::try_from(count).unwrap_or(u32::MAX),
                })
                .collect(),
            ..PeerPresence::default()
        }
    }

    /// Named subscribers of `tour_id` on every live peer (not this instance).
    pub fn remote_viewers(&self, tour_id: &str) -> u32 {
        self.state
            .lock()
            .peers
            .values()
            .filter_map(|peer| peer.viewers.get(tour_id))
            .fold(0u32, |sum, count| sum.saturating_add(*count))
    }

    /// Renders the gauges: rooms with members, and members summed per room.
    fn record_gauges(&self) {
        let state = self.state.lock();
        let members: usize = state.union.values().map(BTreeSet::len).sum();
        metrics::gauge!(PRESENCE_ROOMS).set(state.union.len() as f64);
        metrics::gauge!(PRESENCE_MEMBERS).set(members as f64);
    }
}

/// Whether a peer's message stays within the protocol's own limits.
fn sane(message: &PeerPresence) -> bool {
    let ok = |name: &str| !name.is_empty() && name.len() <= MAX_NAME;
    ok(&message.instance_id)
        && message
            .rooms
            .iter()
            .all(|room| ok(&room.room) && room.users.iter().all(|user| ok(user)))
        && message
            .changes
            .iter()
            .all(|change| ok(&change.room) && ok(&change.user_id))
        && message.viewers.iter().all(|tour| ok(&tour.tour_id))
}

/// Sends local changes to the peers as they happen, the full state every
/// interval, expires silent peers, sends large rooms' counts and the
/// tours' viewer counts; at `shutdown`, says `leaving`.
pub async fn run(
    presence: Arc<Presence>,
    engine: Arc<Engine>,
    peers: Option<PresencePeers>,
    shutdown: CancellationToken,
) {
    let (outgoing, mut incoming) = match peers {
        Some(peers) => (Some(peers.outgoing), Some(peers.incoming)),
        None => (None, None),
    };
    let mut report = tokio::time::interval(presence.interval);
    report.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut check = tokio::time::interval((presence.interval / 4).max(Duration::from_millis(25)));
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut counts = tokio::time::interval(COUNT_EVERY);
    counts.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let send = |message: PeerPresence| {
        if let Some(outgoing) = &outgoing {
            // A full queue means the broker is slow: the next full report
            // carries the change anyway.
            let _ = outgoing.try_send(message.encode_to_vec());
        }
    };
    let hub = engine.hub();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = presence.changed.notified() => {
                if let Some(changes) = presence.take_changes() {
                    send(changes);
                }
            }
            _ = report.tick() => {
                send(presence.full_report(viewers::local_counts(hub)));
                presence.expire(hub);
                presence.send_viewers(hub);
                presence.record_gauges();
            }
            _ = check.tick() => presence.expire(hub),
            _ = counts.tick() => {
                presence.send_counts(hub);
            }
            Some(payload) = recv(&mut incoming) => {
                match PeerPresence::decode(payload.as_slice()) {
                    Ok(message) => presence.receive(hub, message),
                    // A peer on another protocol version, or noise on the key.
                    Err(_) => tracing::debug!("ignored a malformed presence report"),
                }
            }
        }
    }
    if let Some(outgoing) = outgoing {
        let goodbye = PeerPresence {
            instance_id: presence.instance_id.clone(),
            leaving: true,
            ..PeerPresence::default()
        };
        let _ = outgoing.try_send(goodbye.encode_to_vec());
    }
}

async fn recv(incoming: &mut Option<mpsc::Receiver<Vec<u8>>>) -> Option<Vec<u8>> {
    match incoming {
        Some(incoming) => incoming.recv().await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {

    use super::*;
    use crate::hub::{ClientHandle, outbox};
    use crate::protocol::codec::Encoding;

    /// A member of `room` as the hub sees it, with its queue.
    fn member(hub: &Hub, room: &str, id: ConnId) -> outbox::Receiver {
        let (tx, rx) = outbox::channel(64);
        hub.add(
            &Target::Room(room.into()),
            &ClientHandle::new(id, Encoding::Json, tx),
        );
        rx
    }

    /// Every `presence` queued, as (action, userId, memberCount).
    fn heard(rx: &outbox::Receiver) -> Vec<(String, Option<String>, u64)> {
        let mut heard = Vec::new();
        while let Ok(frame) = rx.try_recv() {
            assert!(frame.is_text(), "a text frame");
            let json: serde_json::Value = serde_json::from_slice(&frame).expect("json");
            assert_eq!(json["type"], "presence");
            heard.push((
                json["action"].as_str().expect("action").to_string(),
                json["userId"].as_str().map(str::to_string),
                json["memberCount"].as_u64().expect("memberCount"),
            ));
        }
        heard
    }

    fn joined(user: &str, count: u64) -> (String, Option<String>, u64) {
        ("joined".into(), Some(user.into()), count)
    }

    fn left(user: &str, count: u64) -> (String, Option<String>, u64) {
        ("left".into(), Some(user.into()), count)
    }

    fn presence(limit: usize) -> Presence {
        Presence::new("a".into(), Duration::from_millis(100), limit)
    }

    fn change(from: &str, room: &str, user: &str, present: bool) -> PeerPresence {
        PeerPresence {
            instance_id: from.into(),
            changes: vec![PeerPresenceChange {
                room: room.into(),
                user_id: user.into(),
                present,
            }],
            ..PeerPresence::default()
        }
    }

    fn full(from: &str, room: &str, users: &[&str]) -> PeerPresence {
        PeerPresence {
            instance_id: from.into(),
            full: true,
            rooms: vec![PeerRoom {
                room: room.into(),
                users: users.iter().map(|user| user.to_string()).collect(),
            }],
            ..PeerPresence::default()
        }
    }

    #[test]
    fn only_a_users_first_connection_joins_and_its_last_leaves() {
        let (hub, presence) = (Hub::new(), presence(100));
        let bob = member(&hub, "r", 1);
        presence.enter(&hub, "r", "bob", 1);
        let alice = member(&hub, "r", 2);
        let membership = presence.enter(&hub, "r", "alice", 2);
        assert_eq!(membership.members, vec!["alice", "bob"]);
        assert_eq!(membership.member_count, 2);
        assert_eq!(heard(&bob), vec![joined("alice", 2)]);
        assert!(heard(&alice).is_empty(), "not told of itself");
        presence.enter(&hub, "r", "alice", 3);
        assert!(heard(&bob).is_empty(), "a second connection is no news");
        presence.leave(&hub, "r", "alice", 2);
        assert!(heard(&bob).is_empty(), "alice is still there on 3");
        presence.forget_connection(&hub, 3);
        assert_eq!(heard(&bob), vec![left("alice", 1)]);
        presence.leave(&hub, "r", "alice", 3);
        assert!(heard(&bob).is_empty(), "leaving twice is nothing");
        // Every change went to the peers, in order, once per first/last.
        let sent = presence.take_changes().expect("changes");
        let sent: Vec<_> = sent
            .changes
            .iter()
            .map(|c| (c.user_id.as_str(), c.present))
            .collect();
        assert_eq!(sent, vec![("bob", true), ("alice", true), ("alice", false)]);
    }

    #[test]
    fn members_are_the_union_of_local_and_remote_users() {
        let (hub, presence) = (Hub::new(), presence(100));
        let bob = member(&hub, "r", 1);
        presence.enter(&hub, "r", "bob", 1);
        presence.receive(&hub, change("b", "r", "alice", true));
        assert_eq!(heard(&bob), vec![joined("alice", 2)]);
        // Alice also here: already in the room, no news.
        let membership = presence.enter(&hub, "r", "alice", 2);
        assert_eq!(membership.member_count, 2);
        assert!(heard(&bob).is_empty());
        // Her instance b stops: she stays, through this instance.
        presence.receive(
            &hub,
            PeerPresence {
                instance_id: "b".into(),
                leaving: true,
                ..PeerPresence::default()
            },
        );
        assert!(heard(&bob).is_empty());
        presence.leave(&hub, "r", "alice", 2);
        assert_eq!(heard(&bob), vec![left("alice", 1)]);
        // Own reports come back on the link: ignored.
        presence.receive(&hub, change("a", "r", "zed", true));
        assert!(heard(&bob).is_empty());
    }

    #[test]
    fn a_full_report_replaces_the_peers_users_and_a_silent_peer_expires() {
        let (hub, presence) = (Hub::new(), presence(100));
        let bob = member(&hub, "r", 1);
        presence.enter(&hub, "r", "bob", 1);
        presence.receive(&hub, full("b", "r", &["dave", "erin"]));
        let mut news = heard(&bob);
        news.sort();
        assert_eq!(news, vec![joined("dave", 3), joined("erin", 3)]);
        presence.receive(&hub, full("b", "r", &["erin"]));
        assert_eq!(heard(&bob), vec![left("dave", 2)]);
        presence.expire(&hub);
        assert!(heard(&bob).is_empty(), "b reported just now");
        std::thread::sleep(Duration::from_millis(200));
        presence.expire(&hub);
        assert_eq!(heard(&bob), vec![left("erin", 1)]);
    }

    #[test]
    fn large_rooms_get_a_throttled_count_instead_of_each_join() {
        let (hub, presence) = (Hub::new(), presence(2));
        let watcher = member(&hub, "r", 1);
        presence.enter(&hub, "r", "u1", 1);
        presence.enter(&hub, "r", "u2", 2);
        assert_eq!(heard(&watcher), vec![joined("u2", 2)]);
        presence.enter(&hub, "r", "u3", 3);
        presence.receive(&hub, change("b", "r", "u4", true));
        assert!(heard(&watcher).is_empty(), "above the limit: no joins");
        assert_eq!(presence.send_counts(&hub), 1);
        assert_eq!(heard(&watcher), vec![("count".into(), None, 4)]);
        assert_eq!(presence.send_counts(&hub), 0, "nothing changed");
        // A join and a leave in the same second: the count is as it was.
        presence.enter(&hub, "r", "u5", 5);
        presence.leave(&hub, "r", "u5", 5);
        assert_eq!(presence.send_counts(&hub), 0);
        presence.leave(&hub, "r", "u3", 3);
        assert_eq!(presence.send_counts(&hub), 1);
        assert_eq!(heard(&watcher), vec![("count".into(), None, 3)]);
        // Back at the limit: individual events again.
        presence.receive(&hub, change("b", "r", "u4", false));
        assert_eq!(heard(&watcher), vec![left("u4", 2)]);
    }

    #[test]
    fn joined_lists_at_most_a_hundred_members_and_counts_them_all() {
        let (hub, presence) = (Hub::new(), presence(1000));
        let users: Vec<String> = (0..150).map(|i| format!("user{i:03}")).collect();
        presence.receive(
            &hub,
            full(
                "b",
                "r",
                &users.iter().map(String::as_str).collect::<Vec<_>>(),
            ),
        );
        let membership = presence.enter(&hub, "r", "zz", 1);
        assert_eq!(membership.member_count, 151);
        assert_eq!(membership.members.len(), Membership::LISTED);
        assert_eq!(membership.members[0], "user000");
        assert!(membership.members.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn a_peer_message_beyond_the_limits_is_ignored() {
        let (hub, presence) = (Hub::new(), presence(100));
        let bob = member(&hub, "r", 1);
        presence.enter(&hub, "r", "bob", 1);
        presence.receive(&hub, change("b", "r", &"x".repeat(MAX_NAME + 1), true));
        presence.receive(&hub, change("", "r", "alice", true));
        assert!(heard(&bob).is_empty());
    }

    #[test]
    fn a_full_report_carries_the_rooms_and_viewers_and_supersedes_changes() {
        let (hub, presence) = (Hub::new(), presence(100));
        presence.enter(&hub, "r", "bob", 1);
        let report = presence.full_report(vec![("paris".into(), 3)]);
        assert!(report.full);
        assert_eq!(
            report.rooms,
            vec![PeerRoom {
                room: "r".into(),
                users: vec!["bob".into()]
            }]
        );
        assert!(presence.take_changes().is_none());
        let other = Presence::new("c".into(), Duration::from_secs(1), 100);
        other.receive(&hub, report);
        assert_eq!(other.remote_viewers("paris"), 3);
        assert_eq!(other.remote_viewers("rome"), 0);
    }
}
