//! The `stats` channel: live figures of every gateway instance, for admins.
//!
//! Each instance keeps a [`StatsBoard`]: its own figures, sampled once per
//! interval from the counters the engine and the hub keep anyway, and the
//! latest report of every other instance. [`run`] publishes this
//! instance's report to its peers every interval (over the broker, see
//! [`crate::source::rabbitmq::peers`]), folds in theirs, forgets a peer
//! that has been silent for one and a half intervals, and sends `stats` to
//! the channel's subscribers. A subscriber gets one at once too, and on
//! `refreshStats`.
//!
//! Figures are not events: they are not numbered, kept or recovered. A
//! `stats` message always carries the whole picture, so a missed one costs
//! nothing.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use chrono::Utc;
use parking_lot::Mutex;
use prost::Message as _;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::channel::Target;
use crate::engine::Engine;
use crate::hub::ClientHandle;
use crate::peer_table::PeerTable;
use crate::protocol::ServerMessage;
use crate::protocol::codec::Encoded;
use crate::protocol::v1::{
    ClientsByEncoding, ClientsByTransport, InstanceStats, SourceState, Stats, TourSubscribers,
};
use crate::protocol::validate::Validate as _;
use crate::source::{self, SourceStatus};
use crate::time::rfc3339;

/// Tours listed in `topTours`, per instance and in total.
pub const TOP_TOURS: usize = 10;
/// The routing key instances share their figures under.
pub const STATS_ROUTING_KEY: &str = "tourcast.stats";

/// How the board reaches the other instances (the broker's peer link).
pub struct Peers {
    /// Reports to publish.
    pub outgoing: mpsc::Sender<Vec<u8>>,
    /// Reports every instance published, this one's included.
    pub incoming: mpsc::Receiver<Vec<u8>>,
    /// Done once the last report is out.
    pub task: tokio::task::JoinHandle<()>,
}

/// This instance's figures and its peers' latest reports.
pub struct StatsBoard {
    instance_id: String,
    interval: Duration,
    started: Instant,
    engine: Arc<Engine>,
    source: SourceStatus,
    state: Mutex<BoardState>,
}

struct BoardState {
    /// Counters at the last sample, for the rates.
    sampled_at: Instant,
    applied: u64,
    delivered: u64,
    /// Rates over the last interval: events/s, deliveries/s.
    rates: (f64, f64),
    /// Other instances' latest reports.
    peers: PeerTable<InstanceStats>,
}

impl StatsBoard {
    /// A board for this instance.
    pub fn new(
        instance_id: String,
        interval: Duration,
        engine: Arc<Engine>,
        source: SourceStatus,
    ) -> Self {
        let now = Instant::now();
        StatsBoard {
            instance_id,
            interval,
            started: now,
            state: Mutex::new(BoardState {
                sampled_at: now,
                applied: engine.counters().applied.load(Ordering::Relaxed),
                delivered: engine.hub().counters().delivered.load(Ordering::Relaxed),
                rates: (0.0, 0.0),
                peers: PeerTable::new(interval),
            }),
            engine,
            source,
        }
    }

    /// This instance's id.
    pub fn instance_id(&self) -> &str {
        &self.instance_id
    }

    /// Takes a new sample: the rates become those since the last one.
    fn sample(&self) {
        let applied = self.engine.counters().applied.load(Ordering::Relaxed);
        let delivered = self
            .engine
            .hub()
            .counters()
            .delivered
            .load(Ordering::Relaxed);
        let now = Instant::now();
        let mut state = self.state.lock();
        let seconds = now.duration_since(state.sampled_at).as_secs_f64();
        if seconds > 0.0 {
            state.rates = (
                applied.saturating_sub(state.applied) as f64 / seconds,
                delivered.saturating_sub(state.delivered) as f64 / seconds,
            );
        }
        state.sampled_at = now;
        state.applied = applied;
        state.delivered = delivered;
    }

    /// This instance's figures now (rates from the last sample).
    pub fn local(&self) -> InstanceStats {
        let hub = self.engine.hub();
        let (json, proto) = hub.connections_by_encoding();
        let (websocket, sse) = hub.connections_by_transport();
        let (events_per_second, deliveries_per_second) = self.state.lock().rates;
        InstanceStats {
            instance_id: self.instance_id.clone(),
            connected_clients: saturate(json + proto),
            clients_by_encoding: Some(ClientsByEncoding {
                json: saturate(json),
                proto: saturate(proto),
            }),
            events_per_second: round2(events_per_second),
            deliveries_per_second: round2(deliveries_per_second),
            slow_client_disconnects: hub.counters().slow_closed.load(Ordering::Relaxed),
            source_kind: self.source.kind().to_string(),
            source_state: source_state(self.source.get()).into(),
            uptime_seconds: self.started.elapsed().as_secs(),
            top_tours: hub
                .top_tours(TOP_TOURS)
                .into_iter()
                .map(|(tour_id, subscribers)| TourSubscribers {
                    tour_id,
                    subscribers: saturate(subscribers),
                })
                .collect(),
            reported_at: rfc3339(Utc::now()),
            leaving: false,
            clients_by_transport: Some(ClientsByTransport {
                websocket: saturate(websocket),
                sse: saturate(sse),
            }),
        }
    }

    /// Folds in a peer's report (this instance's own is ignored: it is
    /// always counted fresh). Returns whether the set of instances changed.
    pub fn receive(&self, mut report: InstanceStats) -> bool {
        if report.instance_id == self.instance_id {
            return false;
        }
        // A peer is another process: one that sends a rate that is not a
        // number, or a list longer than ours, must not spoil every admin's
        // totals or swell every `stats` frame.
        let sane = |rate: f64| rate.is_finite() && rate >= 0.0;
        if !sane(report.events_per_second) || !sane(report.deliveries_per_second) {
            tracing::debug!(instance = %report.instance_id, "ignored a stats report with a bad rate");
            return false;
        }
        report.top_tours.truncate(TOP_TOURS);
        let mut state = self.state.lock();
        if report.leaving {
            return state.peers.remove(&report.instance_id).is_some();
        }
        let id = report.instance_id.clone();
        state.peers.insert(&id, report).is_none()
    }

    /// Forgets peers silent for longer than one and a half intervals (a
    /// live one reports every interval). Returns whether any was dropped.
    pub fn expire(&self) -> bool {
        !self.state.lock().peers.expire().is_empty()
    }

    /// The `stats` message: this instance and every live peer, totalled.
    pub fn current(&self, request_id: Option<String>) -> Stats {
        let mut instances = vec![self.local()];
        instances.extend(self.state.lock().peers.values().cloned());
        instances.sort_by(|a, b| a.instance_id.cmp(&b.instance_id));
        let mut by_encoding = ClientsByEncoding::default();
        let mut by_transport = ClientsByTransport::default();
        let mut tours: HashMap<&str, u32> = HashMap::new();
        let mut stats = Stats {
            interval_seconds: saturate(self.interval.as_secs().max(1) as usize),
            timestamp: rfc3339(Utc::now()),
            request_id,
            ..Stats::default()
        };
        for instance in &instances {
            stats.connected_clients = stats
                .connected_clients
                .saturating_add(instance.connected_clients);
            if let Some(counts) = &instance.clients_by_encoding {
                by_encoding.json = by_encoding.json.saturating_add(counts.json);
                by_encoding.proto = by_encoding.proto.saturating_add(counts.proto);
            }
            // An instance from before SSE has WebSocket clients only.
            let transports = instance.clients_by_transport.unwrap_or(ClientsByTransport {
                websocket: instance.connected_clients,
                sse: 0,
            });
            by_transport.websocket = by_transport.websocket.saturating_add(transports.websocket);
            by_transport.sse = by_transport.sse.saturating_add(transports.sse);
            // Every instance applies every event: the stream's rate is the
            // busiest instance's, not their sum (deliveries do add up).
            stats.events_per_second = stats.events_per_second.max(instance.events_per_second);
            stats.deliveries_per_second += instance.deliveries_per_second;
            stats.slow_client_disconnects = stats
                .slow_client_disconnects
                .saturating_add(instance.slow_client_disconnects);
            for tour in &instance.top_tours {
                let count = tours.entry(&tour.tour_id).or_default();
                *count = count.saturating_add(tour.subscribers);
            }
        }
        let mut top: Vec<TourSubscribers> = tours
            .into_iter()
            .map(|(tour_id, subscribers)| TourSubscribers {
                tour_id: tour_id.to_string(),
                subscribers,
            })
            .collect();
        top.sort_by(|a, b| {
            b.subscribers
                .cmp(&a.subscribers)
                .then_with(|| a.tour_id.cmp(&b.tour_id))
        });
        top.truncate(TOP_TOURS);
        stats.events_per_second = round2(stats.events_per_second);
        stats.deliveries_per_second = round2(stats.deliveries_per_second);
        stats.clients_by_encoding = Some(by_encoding);
        stats.clients_by_transport = Some(by_transport);
        stats.top_tours = top;
        stats.instances = instances;
        stats
    }

    /// Queues the current `stats` to one client (a new subscriber, or a
    /// `refreshStats`).
    pub fn send_current(&self, client: &ClientHandle, request_id: Option<String>) {
        let message = ServerMessage::Stats(self.current(request_id));
        client.send(&message);
    }

    /// Sends the current `stats` to every subscriber of the channel.
    pub fn fan_out(&self) -> usize {
        let message = Encoded::new(&ServerMessage::Stats(self.current(None)));
        self.engine.hub().fan_out(&Target::Stats, &message)
    }
}

/// Every interval: sample, report to the peers, send `stats`; in between,
/// fold in peers' reports, and send at once when an instance joins or
/// drops out, so that the totals follow within a fraction of an interval.
/// At `shutdown` the last report says `leaving`.
pub async fn run(board: Arc<StatsBoard>, peers: Option<Peers>, shutdown: CancellationToken) {
    let (outgoing, mut incoming, link) = match peers {
        Some(peers) => (Some(peers.outgoing), Some(peers.incoming), Some(peers.task)),
        None => (None, None, None),
    };
    let mut report = tokio::time::interval(board.interval);
    report.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut check = tokio::time::interval((board.interval / 4).max(Duration::from_millis(25)));
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = report.tick() => {
                board.sample();
                if let Some(outgoing) = &outgoing {
                    // A full queue means the broker is slow: skip a figure.
                    let _ = outgoing.try_send(board.local().encode_to_vec());
                }
                board.expire();
                board.fan_out();
            }
            _ = check.tick() => {
                if board.expire() {
                    board.fan_out();
                }
            }
            Some(payload) = recv(&mut incoming) => {
                match InstanceStats::decode(payload.as_slice()) {
                    Ok(peer) if peer.validate("").is_ok() => {
                        if board.receive(peer) {
                            board.fan_out();
                        }
                    }
                    // A peer on another protocol version, or noise on the key.
                    _ => tracing::debug!("ignored a malformed stats report"),
                }
            }
        }
    }
    if let Some(outgoing) = outgoing {
        let goodbye = InstanceStats {
            leaving: true,
            ..board.local()
        };
        let _ = outgoing.try_send(goodbye.encode_to_vec());
        drop(outgoing);
        if let Some(link) = link {
            // The goodbye is a courtesy; never hold shutdown for it.
            let _ = tokio::time::timeout(Duration::from_secs(1), link).await;
        }
    }
}

async fn recv(incoming: &mut Option<mpsc::Receiver<Vec<u8>>>) -> Option<Vec<u8>> {
    match incoming {
        Some(incoming) => incoming.recv().await,
        None => std::future::pending().await,
    }
}

/// The default instance id: host name and process id.
pub fn default_instance_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into());
    format!("{host}:{}", std::process::id())
}

fn source_state(state: source::SourceState) -> SourceState {
    match state {
        source::SourceState::Starting => SourceState::Starting,
        source::SourceState::Connected => SourceState::Connected,
        source::SourceState::Reconnecting => SourceState::Reconnecting,
        source::SourceState::Stopped => SourceState::Stopped,
    }
}

fn saturate(count: usize) -> u32 {
    u32::try_from(count).unwrap_or(u32::MAX)
}

/// Rates to two decimals: more is noise, and it keeps messages short.
fn round2(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::EngineConfig;

    fn board(id: &str) -> StatsBoard {
        let engine = Arc::new(Engine::new(EngineConfig {
            epoch: "e".into(),
            history_len: 4,
            dedupe_window: 16,
            max_replay: 16,
            max_channels_per_connection: 16,
            max_rooms_per_connection: 4,
            room_history: 4,
            max_rooms: 16,
            max_read_back: 16,
            notification_history: 16,
            snapshot_frame_bytes: crate::protocol::snapshot::DEFAULT_MAX_FRAME_BYTES,
            max_tours: usize::MAX,
        }));
        StatsBoard::new(
            id.into(),
            Duration::from_millis(200),
            engine,
            SourceStatus::new("demo"),
        )
    }

    fn report(id: &str, clients: u32, tour: &str) -> InstanceStats {
        InstanceStats {
            instance_id: id.into(),
            connected_clients: clients,
            clients_by_encoding: Some(ClientsByEncoding {
                json: clients,
                proto: 0,
            }),
            events_per_second: 1.5,
            top_tours: vec![TourSubscribers {
                tour_id: tour.into(),
                subscribers: clients,
            }],
            ..InstanceStats::default()
        }
    }

    #[test]
    fn totals_add_up_every_live_instance_and_merge_top_tours() {
        let board = board("a");
        assert!(board.receive(report("b", 3, "tour_paris")));
        assert!(!board.receive(report("b", 4, "tour_paris")));
        assert!(board.receive(report("c", 2, "tour_paris")));
        assert!(
            !board.receive(report("a", 99, "tour_rome")),
            "own report ignored"
        );
        let stats = board.current(Some("r1".into()));
        assert_eq!(stats.instances.len(), 3);
        assert_eq!(stats.connected_clients, 6);
        // Each folds the same stream: the rate is one instance's, not the sum.
        assert_eq!(stats.events_per_second, 1.5);
        assert_eq!(stats.top_tours[0].tour_id, "tour_paris");
        assert_eq!(stats.top_tours[0].subscribers, 6);
        assert_eq!(stats.request_id.as_deref(), Some("r1"));
    }

    #[test]
    fn a_report_with_a_bad_rate_is_ignored_and_long_lists_are_cut() {
        let board = board("a");
        let nan = InstanceStats {
            events_per_second: f64::NAN,
            ..report("b", 3, "t")
        };
        assert!(!board.receive(nan));
        let mut long = report("c", 3, "t");
        long.top_tours = (0..500)
            .map(|i| TourSubscribers {
                tour_id: format!("t{i}"),
                subscribers: 1,
            })
            .collect();
        assert!(board.receive(long));
        let stats = board.current(None);
        assert_eq!(stats.instances.len(), 2);
        assert!(
            stats
                .instances
                .iter()
                .all(|i| i.top_tours.len() <= TOP_TOURS)
        );
        assert!(stats.events_per_second.is_finite());
    }

    #[test]
    fn a_leaving_or_silent_peer_drops_out() {
        let board = board("a");
        board.receive(report("b", 3, "t"));
        board.receive(report("c", 3, "t"));
        let leaving = InstanceStats {
            leaving: true,
            ..report("b", 0, "t")
        };
        assert!(board.receive(leaving));
        assert_eq!(board.current(None).instances.len(), 2);
        std::thread::sleep(Duration::from_millis(350));
        assert!(board.expire());
        assert_eq!(board.current(None).instances.len(), 1);
    }
}
