//! The hub: who receives which channel's messages, and delivery to them.
//!
//! Each connection is a [`ClientHandle`]: a bounded outbound queue that also
//! carries the server's request to close it, with its [`CloseReason`] (see
//! [`outbox`]). A fan-out delivers one message to every recipient of a
//! channel; each delivery is a non-blocking `try_send` of an already encoded
//! frame (a reference-count bump), so a fan-out never waits on a client; a
//! client whose queue is full is closed as too slow and counted.
//!
//! The hub knows channels only as [`Target`]s: it keeps no per-kind logic
//! beyond "every tour" (a `"*"` subscriber receives each tour's messages).
//! Memberships are sharded by target so that connections coming and going
//! on different channels do not contend on one lock. Every open connection
//! is also listed (sharded by id), so that shutdown can close them all.
//! Locks are `parking_lot` locks held only for map operations and
//! `try_send`s, never across an `.await`.

mod close;
pub mod outbox;
mod subscriptions;

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::RwLock;
use tokio::sync::mpsc;

use crate::protocol::ServerMessage;
use crate::protocol::codec::Encoding;
use crate::protocol::frame::{Encoded, Frame};

pub use crate::channel::Target;
pub use close::CloseReason;
pub use subscriptions::Subscriptions;

/// Identifies a connection within this process.
pub type ConnId = u64;

const SHARDS: usize = 16;

/// Which transport a connection uses: a label the hub keeps for counts
/// (metrics, the stats channel); what each one is lives in
/// [`transport`](crate::transport).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransportKind {
    /// WebSocket.
    WebSocket,
    /// Server-Sent Events.
    Sse,
}

impl TransportKind {
    /// The label of metrics and logs.
    pub fn label(self) -> &'static str {
        match self {
            TransportKind::WebSocket => "websocket",
            TransportKind::Sse => "sse",
        }
    }
}

/// The sending side of one connection.
#[derive(Clone, Debug)]
pub struct ClientHandle {
    id: ConnId,
    encoding: Encoding,
    transport: TransportKind,
    tx: outbox::Sender,
}

/// What happened to a frame offered to a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offer {
    /// Queued for sending.
    Queued,
    /// The queue was full: the client has just been closed as too slow.
    Slow,
    /// The queue was full of a client already closing; the frame is dropped.
    Dropped,
    /// The connection is already gone.
    Closed,
}

impl ClientHandle {
    /// A handle sending (and closing) through `tx`.
    pub fn new(id: ConnId, encoding: Encoding, tx: outbox::Sender) -> Self {
        ClientHandle {
            id,
            encoding,
            transport: TransportKind::WebSocket,
            tx,
        }
    }

    /// The same handle, for a connection over `transport` (WebSocket unless
    /// said).
    pub fn over(mut self, transport: TransportKind) -> Self {
        self.transport = transport;
        self
    }

    /// The connection's transport.
    pub fn transport(&self) -> TransportKind {
        self.transport
    }

    /// The connection's id.
    pub fn id(&self) -> ConnId {
        self.id
    }

    /// The connection's encoding.
    pub fn encoding(&self) -> Encoding {
        self.encoding
    }

    /// Queues a frame without waiting; a full queue closes the client.
    pub fn offer(&self, frame: Frame) -> Offer {
        match self.tx.try_send(frame) {
            Ok(()) => Offer::Queued,
            Err(mpsc::error::TrySendError::Full(_)) => {
                if self.tx.close(CloseReason::SlowConsumer) {
                    Offer::Slow
                } else {
                    Offer::Dropped
                }
            }
            Err(mpsc::error::TrySendError::Closed(_)) => Offer::Closed,
        }
    }

    /// Asks the connection to close; returns true if this was the first ask.
    pub fn close(&self, reason: CloseReason) -> bool {
        self.tx.close(reason)
    }

    /// Why the connection was asked to close, if it was.
    pub fn close_reason(&self) -> Option<CloseReason> {
        self.tx.close_reason()
    }

    /// Queues a shared event in this client's encoding.
    pub fn offer_encoded(&self, encoded: &Encoded) -> Offer {
        self.offer(encoded.frame(self.encoding))
    }

    /// Queues a recovery replay (events of one shared encoding each) whole:
    /// see [`outbox::Sender::send_whole`].
    pub fn offer_replay(&self, events: &[std::sync::Arc<Encoded>]) -> Offer {
        let frames = events.iter().map(|event| event.frame(self.encoding));
        if self.tx.send_whole(frames) {
            Offer::Queued
        } else {
            Offer::Closed
        }
    }

    /// Encodes `message` for this client alone (replies, acknowledgements)
    /// and queues it.
    pub fn send(&self, message: &ServerMessage) -> Offer {
        self.offer(Frame::encode(message, self.encoding))
    }

    /// Encodes `messages` for this client and queues them as one unit, on
    /// top of the live capacity, like a replay (the parts of a large
    /// snapshot: nothing may come between them, and their size is bounded
    /// by the caller).
    pub fn send_all(&self, messages: &[ServerMessage]) -> Offer {
        let frames = messages
            .iter()
            .map(|message| Frame::encode(message, self.encoding));
        if self.tx.send_whole(frames) {
            Offer::Queued
        } else {
            Offer::Closed
        }
    }
}

/// Delivery counters: the one count, which `/metrics` renders as
/// `tourcast_deliveries_total` and `tourcast_slow_client_disconnects_total`
/// (and the `stats` channel samples).
#[derive(Debug, Default)]
pub struct DeliveryCounters {
    /// Frames queued to clients.
    pub delivered: AtomicU64,
    /// Clients closed because their queue was full.
    pub slow_closed: AtomicU64,
}

type Members = HashMap<ConnId, ClientHandle>;

/// Subscriptions and delivery.
pub struct Hub {
    /// Members of each channel (a tour, a user, the stats), sharded by channel.
    shards: Box<[RwLock<HashMap<Target, Members>>]>,
    /// Connections receiving every tour: `"*"` subscribers and connections
    /// that never subscribed (the old service sent every event to everyone).
    all_tours: RwLock<Members>,
    /// Every open connection, sharded by id.
    connections: Box<[RwLock<Members>]>,
    hasher: RandomState,
    counters: DeliveryCounters,
}

impl Default for Hub {
    fn default() -> Self {
        Hub::new()
    }
}

impl Hub {
    /// An empty hub.
    pub fn new() -> Self {
        Hub {
            shards: (0..SHARDS).map(|_| RwLock::new(HashMap::new())).collect(),
            all_tours: RwLock::new(HashMap::new()),
            connections: (0..SHARDS).map(|_| RwLock::new(HashMap::new())).collect(),
            hasher: RandomState::new(),
            counters: DeliveryCounters::default(),
        }
    }

    fn shard(&self, target: &Target) -> &RwLock<HashMap<Target, Members>> {
        let index = self.hasher.hash_one(target) as usize % SHARDS;
        &self.shards[index]
    }

    fn connection_shard(&self, id: ConnId) -> &RwLock<Members> {
        &self.connections[id as usize % SHARDS]
    }

    /// Lists an open connection (see [`Hub::close_all`]).
    pub fn add_connection(&self, client: &ClientHandle) {
        self.connection_shard(client.id)
            .write()
            .insert(client.id, client.clone());
    }

    /// Forgets a connection that has ended.
    pub fn remove_connection(&self, id: ConnId) {
        self.connection_shard(id).write().remove(&id);
    }

    /// Asks every open connection to close (e.g. at shutdown); returns
    /// how many were asked for the first time.
    pub fn close_all(&self, reason: CloseReason) -> usize {
        self.connections
            .iter()
            .map(|shard| {
                shard
                    .read()
                    .values()
                    .filter(|client| client.close(reason))
                    .count()
            })
            .sum()
    }

    /// Starts delivering `target`'s messages to `client`.
    pub fn add(&self, target: &Target, client: &ClientHandle) {
        match target {
            Target::AllTours => {
                self.all_tours.write().insert(client.id, client.clone());
            }
            channel => {
                self.shard(channel)
                    .write()
                    .entry(channel.clone())
                    .or_default()
                    .insert(client.id, client.clone());
            }
        }
    }

    /// Stops delivering `target`'s messages to connection `id`.
    pub fn remove(&self, target: &Target, id: ConnId) {
        match target {
            Target::AllTours => {
                self.all_tours.write().remove(&id);
            }
            channel => {
                let mut shard = self.shard(channel).write();
                if let Some(members) = shard.get_mut(channel) {
                    members.remove(&id);
                    // Drop empty entries so channels nobody watches cost nothing.
                    if members.is_empty() {
                        shard.remove(channel);
                    }
                }
            }
        }
    }

    /// Whether [`Hub::fan_out`] to `channel` would reach anyone now: a
    /// member of it, or (for a tour) a connection that receives every
    /// tour. Subscriptions change under the engine's lock, as fan-outs
    /// do; a new connection that opens in between simply came after the
    /// event, as it could have a moment later anyway.
    pub fn has_recipients(&self, channel: &Target) -> bool {
        let members = self
            .shard(channel)
            .read()
            .get(channel)
            .is_some_and(|members| !members.is_empty());
        members || (matches!(channel, Target::Tour(_)) && !self.all_tours.read().is_empty())
    }

    /// Fans a message of `channel` out to every recipient: its members,
    /// and for a tour also every `"*"` subscriber. Returns how many clients
    /// it was delivered to (queued for).
    pub fn fan_out(&self, channel: &Target, encoded: &Encoded) -> usize {
        self.fan_out_except(channel, encoded, None)
    }

    /// [`Hub::fan_out`] to every recipient but connection `except` (the
    /// one whose own action the message reports).
    pub fn fan_out_except(
        &self,
        channel: &Target,
        encoded: &Encoded,
        except: Option<ConnId>,
    ) -> usize {
        // Encoded once per encoding upstream; here each recipient costs a
        // reference-count bump and a `try_send`.
        let json = encoded.frame(Encoding::Json);
        let proto = encoded.frame(Encoding::Proto);
        let mut queued = 0usize;
        let mut slow = 0u64;
        let mut deliver = |client: &ClientHandle| {
            if Some(client.id) == except {
                return;
            }
            let frame = match client.encoding {
                Encoding::Proto => proto.clone(),
                _ => json.clone(),
            };
            match client.offer(frame) {
                Offer::Queued => queued += 1,
                Offer::Slow => slow += 1,
                Offer::Dropped | Offer::Closed => {}
            }
        };
        if let Some(members) = self.shard(channel).read().get(channel) {
            members.values().for_each(&mut deliver);
        }
        if let Target::Tour(_) = channel {
            self.all_tours.read().values().for_each(&mut deliver);
        }
        self.counters
            .delivered
            .fetch_add(queued as u64, Ordering::Relaxed);
        self.counters.slow_closed.fetch_add(slow, Ordering::Relaxed);
        queued
    }

    /// Open connections, by encoding: `(json, proto)`.
    pub fn connections_by_encoding(&self) -> (usize, usize) {
        let mut counts = (0, 0);
        for shard in self.connections.iter() {
            for client in shard.read().values() {
                match client.encoding {
                    Encoding::Proto => counts.1 += 1,
                    _ => counts.0 += 1,
                }
            }
        }
        counts
    }

    /// Open connections by transport: (WebSocket, SSE).
    pub fn connections_by_transport(&self) -> (usize, usize) {
        let mut counts = (0, 0);
        for shard in self.connections.iter() {
            for client in shard.read().values() {
                match client.transport {
                    TransportKind::WebSocket => counts.0 += 1,
                    TransportKind::Sse => counts.1 += 1,
                }
            }
        }
        counts
    }

    /// The `limit` tours with the most connections subscribed to them by
    /// name, busiest first (ties by id).
    pub fn top_tours(&self, limit: usize) -> Vec<(String, usize)> {
        let mut tours: Vec<(String, usize)> = Vec::new();
        for shard in self.shards.iter() {
            for (target, members) in shard.read().iter() {
                if let Target::Tour(id) = target {
                    tours.push((id.clone(), members.len()));
                }
            }
        }
        tours.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        tours.truncate(limit);
        tours
    }

    /// Members of `target` (for a tour, not counting `"*"` subscribers).
    pub fn member_count(&self, target: &Target) -> usize {
        self.shard(target)
            .read()
            .get(target)
            .map_or(0, HashMap::len)
    }

    /// The member count of every target `select` picks, under the key it
    /// gives (e.g. each tour's viewers by tour id).
    pub fn member_counts<K>(&self, select: impl Fn(&Target) -> Option<K>) -> Vec<(K, usize)> {
        let mut counts = Vec::new();
        for shard in self.shards.iter() {
            for (target, members) in shard.read().iter() {
                if let Some(key) = select(target) {
                    counts.push((key, members.len()));
                }
            }
        }
        counts
    }

    /// Counts a slow client found outside a fan-out (e.g. while replaying).
    pub fn count_slow(&self) {
        self.counters.slow_closed.fetch_add(1, Ordering::Relaxed);
    }

    /// Delivery counters.
    pub fn counters(&self) -> &DeliveryCounters {
        &self.counters
    }

    /// Number of (connection, channel) registrations, `"*"` included.
    pub fn registrations(&self) -> usize {
        let tours: usize = self
            .shards
            .iter()
            .map(|s| s.read().values().map(HashMap::len).sum::<usize>())
            .sum();
        tours + self.all_tours.read().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::v1::Pong;

    fn client(id: ConnId, capacity: usize) -> (ClientHandle, outbox::Receiver) {
        let (tx, rx) = outbox::channel(capacity);
        (ClientHandle::new(id, Encoding::Json, tx), rx)
    }

    fn event() -> Encoded {
        Encoded::new(&ServerMessage::Pong(Pong {
            request_id: None,
            timestamp: "t".into(),
        }))
    }

    #[test]
    fn delivers_to_tour_and_all_tours_subscribers_only() {
        let hub = Hub::new();
        let (a, a_rx) = client(1, 4);
        let (b, b_rx) = client(2, 4);
        let (c, c_rx) = client(3, 4);
        hub.add(&Target::Tour("paris".into()), &a);
        hub.add(&Target::AllTours, &b);
        hub.add(&Target::Tour("rome".into()), &c);
        assert_eq!(hub.fan_out(&Target::Tour("paris".into()), &event()), 2);
        assert!(a_rx.try_recv().is_ok());
        assert!(b_rx.try_recv().is_ok());
        assert!(c_rx.try_recv().is_err());
    }

    #[test]
    fn has_recipients_agrees_with_fan_out() {
        let hub = Hub::new();
        let paris = Target::Tour("paris".into());
        let alice = Target::User("alice".into());
        assert!(!hub.has_recipients(&paris));
        let (a, _a_rx) = client(1, 4);
        hub.add(&paris, &a);
        assert!(hub.has_recipients(&paris));
        assert!(!hub.has_recipients(&Target::Tour("rome".into())));
        hub.remove(&paris, 1);
        assert!(!hub.has_recipients(&paris));
        // A `*` member receives every tour, not a user's channel.
        let (b, _b_rx) = client(2, 4);
        hub.add(&Target::AllTours, &b);
        assert!(hub.has_recipients(&Target::Tour("rome".into())));
        assert!(!hub.has_recipients(&alice));
        assert_eq!(hub.fan_out(&alice, &event()), 0);
    }

    #[test]
    fn a_full_queue_closes_the_client_without_blocking_others() {
        let hub = Hub::new();
        let (slow, _slow_rx) = client(1, 1);
        let (fast, fast_rx) = client(2, 8);
        hub.add(&Target::AllTours, &slow);
        hub.add(&Target::AllTours, &fast);
        for _ in 0..3 {
            hub.fan_out(&Target::Tour("paris".into()), &event());
            assert!(fast_rx.try_recv().is_ok());
        }
        assert_eq!(slow.close_reason(), Some(CloseReason::SlowConsumer));
        assert_eq!(fast.close_reason(), None);
        // Counted once, however many events it then misses before it is gone.
        assert_eq!(hub.counters().slow_closed.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn a_user_channel_reaches_its_members_and_no_star_subscriber() {
        let hub = Hub::new();
        let (alice, alice_rx) = client(1, 4);
        let (star, star_rx) = client(2, 4);
        hub.add(&Target::User("alice".into()), &alice);
        hub.add(&Target::AllTours, &star);
        assert_eq!(hub.fan_out(&Target::User("alice".into()), &event()), 1);
        assert!(alice_rx.try_recv().is_ok());
        assert!(star_rx.try_recv().is_err());
        assert_eq!(hub.fan_out(&Target::User("bob".into()), &event()), 0);
    }

    #[test]
    fn removing_the_last_member_frees_the_tour() {
        let hub = Hub::new();
        let (a, _rx) = client(1, 1);
        hub.add(&Target::Tour("paris".into()), &a);
        hub.remove(&Target::Tour("paris".into()), 1);
        assert_eq!(hub.registrations(), 0);
    }

    #[test]
    fn close_all_reaches_every_open_connection_once() {
        let hub = Hub::new();
        let clients: Vec<_> = (1..=40).map(|id| client(id, 1)).collect();
        for (handle, _) in &clients {
            hub.add_connection(handle);
        }
        hub.remove_connection(7);
        assert_eq!(hub.close_all(CloseReason::ServerShutdown), 39);
        assert_eq!(hub.close_all(CloseReason::ServerShutdown), 0);
        assert_eq!(clients[6].0.close_reason(), None);
        assert_eq!(
            clients[0].0.close_reason(),
            Some(CloseReason::ServerShutdown)
        );
    }
}
