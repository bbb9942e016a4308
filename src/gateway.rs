//! The gateway, wired: the one place that puts the parts together (the
//! engine, an event source, the stats board and its peers, the HTTP and
//! WebSocket server), so that the binary and the tests start the same
//! gateway the same way.
//!
//! ```no_run
//! # async fn example(config: tourcast::config::GatewayConfig) -> Result<(), Box<dyn std::error::Error>> {
//! use tourcast::gateway::Gateway;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let gateway = Gateway::from_config(&config).start(listener).await?;
//! gateway.stopped().await?; // after SIGTERM, say: gateway.shutdown_token().cancel()
//! # Ok(()) }
//! ```

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::auth::{AuthConfig, Authenticator, KeyError};
use crate::config::GatewayConfig;
use crate::engine::{Engine, EngineConfig};
use crate::presence::{self, Presence};
use crate::protocol::codec::SchemaError;
use crate::server::limits::ConnectionLimit;
use crate::server::{self, AppState, ServerSettings, listener};
use crate::source::demo::{self, DemoConfig};
use crate::source::rabbitmq::writer::RoomWriter;
use crate::source::rabbitmq::{self, Connector, RabbitArgs};
use crate::source::{SourceState, SourceStatus, StreamWriter};
use crate::stats::{self, StatsBoard};

/// How often the metrics recorder summarises its histograms.
const METRICS_UPKEEP: Duration = Duration::from_secs(5);

/// Where the gateway's events come from.
#[derive(Debug, Clone)]
pub enum Source {
    /// The embedded demo feed (`--demo`).
    Demo(DemoConfig),
    /// The RabbitMQ stream; instances also share their figures over the
    /// broker.
    RabbitMq(Box<RabbitArgs>),
    /// The caller applies events itself, through [`Gateway::engine`]; the
    /// source reports under this kind and is live from the start (tests
    /// playing the event source).
    External(&'static str),
}

impl Source {
    fn kind(&self) -> &'static str {
        match self {
            Source::Demo(_) => "demo",
            Source::RabbitMq(_) => "rabbitmq",
            Source::External(kind) => kind,
        }
    }
}

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The JWT key does not load.
    #[error("loading the JWT key: {0}")]
    Key(#[from] KeyError),
    /// The generated protocol schemas do not compile (a build bug).
    #[error("compiling the protocol schemas: {0}")]
    Schema(#[from] SchemaError),
    /// The listener has no local address.
    #[error("reading the listener's address: {0}")]
    Address(std::io::Error),
}

/// The settings of a gateway not started yet (see [`Gateway::builder`]).
#[derive(Debug)]
pub struct GatewayBuilder {
    settings: ServerSettings,
    engine: EngineConfig,
    max_connections: usize,
    max_connections_per_ip: usize,
    auth: AuthConfig,
    source: Source,
    instance_id: String,
    stats_interval: Duration,
    room_presence_limit: usize,
    metrics: Option<PrometheusHandle>,
    admin: Option<TcpListener>,
    shutdown_grace: Duration,
}

/// A running gateway.
pub struct Gateway {
    addr: SocketAddr,
    state: AppState,
    served: JoinHandle<std::io::Result<()>>,
    /// The source's and the stats board's tasks, awaited (bounded) at the end.
    tasks: Vec<JoinHandle<()>>,
    shutdown_grace: Duration,
}

impl Gateway {
    /// A gateway with these server and engine settings; everything else
    /// has a default: caps of 1,000 connections, no JWT, an external
    /// source, stats every 5 s, no metrics recorder, 5 s of shutdown grace.
    pub fn builder(settings: ServerSettings, engine: EngineConfig) -> GatewayBuilder {
        GatewayBuilder {
            settings,
            engine,
            max_connections: 1_000,
            max_connections_per_ip: 1_000,
            auth: AuthConfig::default(),
            source: Source::External("external"),
            instance_id: stats::default_instance_id(),
            stats_interval: Duration::from_secs(5),
            room_presence_limit: presence::DEFAULT_ROOM_PRESENCE_LIMIT,
            metrics: None,
            admin: None,
            shutdown_grace: Duration::from_secs(5),
        }
    }

    /// The gateway `config` describes, as the binary runs it. Raises the
    /// process's soft open-file limit to the hard one and fits the
    /// connection caps under it (logged when it lowers them).
    pub fn from_config(config: &GatewayConfig) -> GatewayBuilder {
        let mut settings = ServerSettings::from_config(config);
        let budget =
            listener::fit_to_file_limit(config.max_connections, settings.pending.max_pending);
        if budget.max_connections < config.max_connections
            || budget.max_pending < settings.pending.max_pending
        {
            tracing::warn!(
                file_limit = budget.file_limit,
                max_connections = budget.max_connections,
                max_pending_connections = budget.max_pending,
                "connection caps lowered to fit the open-file limit (raise `ulimit -n` for more)"
            );
        }
        settings.pending.max_pending = budget.max_pending;
        let (epoch, source) = if config.demo {
            let epoch = format!("demo-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
            let demo = DemoConfig {
                interval: config.demo_interval,
                low_threshold: config.demo_low_threshold,
            };
            (epoch, Source::Demo(demo))
        } else {
            let epoch = rabbitmq::epoch(&config.rabbitmq);
            (epoch, Source::RabbitMq(Box::new(config.rabbitmq.clone())))
        };
        let engine = EngineConfig {
            epoch,
            history_len: config.history_size as usize,
            dedupe_window: config.dedupe_window,
            max_replay: config.max_replay,
            max_channels_per_connection: config.max_channels_per_connection,
            max_rooms_per_connection: config.max_rooms_per_connection,
            room_history: config.room_history,
            max_rooms: config.max_rooms,
            max_read_back: config.recovery_max_scan,
            notification_history: config.notification_history,
            snapshot_frame_bytes: config.snapshot_frame_bytes,
            max_tours: config.max_tours,
        };
        let mut builder = Gateway::builder(settings, engine)
            .connection_caps(budget.max_connections, config.max_connections_per_ip)
            .auth(config.auth())
            .source(source)
            .stats_interval(config.stats_interval)
            .room_presence_limit(config.room_presence_limit)
            .shutdown_grace(config.shutdown_grace);
        if let Some(id) = &config.instance_id {
            builder = builder.instance_id(id.clone());
        }
        builder
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// State, fan-out and subscriptions (an external source applies its
    /// events here).
    pub fn engine(&self) -> &Arc<Engine> {
        &self.state.engine
    }

    /// The event source's liveness, as `/health` reports it.
    pub fn source(&self) -> &SourceStatus {
        &self.state.source
    }

    /// What every handler shares.
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Cancel it to shut the gateway down: it stops accepting, closes
    /// every connection with 1001, and stops its source.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.state.shutdown.clone()
    }

    /// Waits until the gateway has stopped (after its shutdown token is
    /// cancelled): the listener closed, the connections closed (within
    /// the shutdown grace), then the source and the stats board, each
    /// given the grace again.
    pub async fn stopped(self) -> std::io::Result<()> {
        let served = match self.served.await {
            Ok(served) => served,
            Err(panicked) => Err(std::io::Error::other(panicked)),
        };
        // The server may also end on its own (a failed accept loop).
        self.state.shutdown.cancel();
        for task in self.tasks {
            let _ = tokio::time::timeout(self.shutdown_grace, task).await;
        }
        served
    }

    /// Shuts the gateway down and waits for it (see [`Gateway::stopped`]).
    pub async fn stop(self) -> std::io::Result<()> {
        self.state.shutdown.cancel();
        self.stopped().await
    }
}

impl GatewayBuilder {
    /// Caps on open connections, in all and per client IP.
    pub fn connection_caps(mut self, max: usize, per_ip: usize) -> Self {
        self.max_connections = max;
        self.max_connections_per_ip = per_ip;
        self
    }

    /// Token verification (off when no key is set) and admin rights.
    pub fn auth(mut self, auth: AuthConfig) -> Self {
        self.auth = auth;
        self
    }

    /// Where events come from.
    pub fn source(mut self, source: Source) -> Self {
        self.source = source;
        self
    }

    /// This instance's id in the `stats` channel.
    pub fn instance_id(mut self, id: String) -> Self {
        self.instance_id = id;
        self
    }

    /// Time between `stats` messages (and reports to peers).
    pub fn stats_interval(mut self, interval: Duration) -> Self {
        self.stats_interval = interval;
        self
    }

    /// Rooms above this many members get a throttled count instead of
    /// each `presence` join and leave (`ROOM_PRESENCE_LIMIT`).
    pub fn room_presence_limit(mut self, limit: usize) -> Self {
        self.room_presence_limit = limit;
        self
    }

    /// Renders `/metrics` from `handle` (the installed recorder): on
    /// `admin` alone when given, else on the main port.
    pub fn metrics(mut self, handle: PrometheusHandle, admin: Option<TcpListener>) -> Self {
        self.metrics = Some(handle);
        self.admin = admin;
        self
    }

    /// How long shutdown waits for connections, and then for the source.
    pub fn shutdown_grace(mut self, grace: Duration) -> Self {
        self.shutdown_grace = grace;
        self
    }

    /// Starts everything and serves on `listener` until the gateway's
    /// shutdown token is cancelled.
    pub async fn start(self, listener: TcpListener) -> Result<Gateway, StartError> {
        let addr = listener.local_addr().map_err(StartError::Address)?;
        let auth = Authenticator::new(&self.auth)?;
        if auth.enabled() {
            tracing::info!("JWT authentication is on: connections need a token");
        } else if self.auth.admin_open {
            tracing::warn!("--admin-open: every connection may subscribe to the stats channel");
        }
        if self.settings.allowed_origins.is_empty() {
            tracing::warn!("ALLOWED_ORIGINS is empty: browsers from any origin may connect");
        }
        let shutdown = CancellationToken::new();
        let engine = Arc::new(Engine::new(self.engine));
        let status = SourceStatus::new(self.source.kind());
        let mut tasks = Vec::new();
        let mut writer: Option<Arc<dyn StreamWriter>> = None;
        let (peers, presence_peers) = match self.source {
            Source::Demo(config) => {
                demo::seed(&engine, &status);
                writer = Some(Arc::new(demo::DemoWriter::new(Arc::clone(&engine))));
                let feed = demo::run(
                    config,
                    Arc::clone(&engine),
                    status.clone(),
                    shutdown.clone(),
                );
                tasks.push(tokio::spawn(feed));
                (None, None)
            }
            Source::RabbitMq(args) => {
                // The parser validated the URL; a hand-built bad one leaves
                // rooms without a stream to write to (and the source says why).
                if let Ok(connector) = Connector::for_gateway(&args) {
                    writer = Some(Arc::new(RoomWriter::start(
                        connector.for_job("room-writer"),
                        args.broker.exchange.clone(),
                        shutdown.clone(),
                    )));
                }
                // Instances share their figures and presence over the broker,
                // on one link.
                let keys = [stats::STATS_ROUTING_KEY, presence::PRESENCE_ROUTING_KEY];
                let link = rabbitmq::peers::spawn(&args, &keys, shutdown.clone());
                let (mut channels, link_task) = link.split(&keys);
                let for_presence = channels.pop().map(|channel| presence::PresencePeers {
                    outgoing: channel.outgoing,
                    incoming: channel.incoming,
                });
                let for_stats = channels.pop().map(|channel| stats::Peers {
                    outgoing: channel.outgoing,
                    incoming: channel.incoming,
                    task: link_task,
                });
                let consumer =
                    rabbitmq::run(*args, Arc::clone(&engine), status.clone(), shutdown.clone());
                tasks.push(tokio::spawn(consumer));
                (for_stats, for_presence)
            }
            Source::External(_) => {
                status.set(SourceState::Connected);
                (None, None)
            }
        };
        let presence = Arc::new(Presence::new(
            self.instance_id.clone(),
            self.stats_interval,
            self.room_presence_limit,
        ));
        tasks.push(tokio::spawn(presence::run(
            Arc::clone(&presence),
            Arc::clone(&engine),
            presence_peers,
            shutdown.clone(),
        )));
        let board = Arc::new(StatsBoard::new(
            self.instance_id,
            self.stats_interval,
            Arc::clone(&engine),
            status.clone(),
        ));
        tasks.push(tokio::spawn(stats::run(
            Arc::clone(&board),
            peers,
            shutdown.clone(),
        )));
        if let Some(handle) = &self.metrics {
            tokio::spawn(metrics_upkeep(handle.clone(), shutdown.clone()));
        }
        let state = AppState::new(
            engine,
            board,
            presence,
            self.settings,
            status,
            ConnectionLimit::new(self.max_connections, self.max_connections_per_ip),
            auth,
            shutdown.clone(),
            writer,
            self.metrics,
        )?;
        let with_metrics = self.admin.is_none();
        if let Some(admin) = self.admin {
            if let Ok(address) = admin.local_addr() {
                tracing::info!(%address, "metrics served on the admin port");
            }
            // Through the same accept loop as the main port: its header-read
            // timeout and pending cap keep silent sockets there from using
            // up the files both ports share.
            tokio::spawn(listener::run(
                admin,
                server::admin_router(state.clone()),
                state.settings.pending,
                shutdown.clone(),
            ));
        }
        // The tests of the real binary read the address from this line.
        tracing::info!(
            address = %addr,
            epoch = state.engine.epoch(),
            source = state.source.kind(),
            "tourcast listening"
        );
        let served = tokio::spawn(server::serve(
            listener,
            state.clone(),
            with_metrics,
            self.shutdown_grace,
        ));
        Ok(Gateway {
            addr,
            state,
            served,
            tasks,
            shutdown_grace: self.shutdown_grace,
        })
    }
}

/// Histograms are summarised lazily; without the exporter's own HTTP
/// listener, someone has to run its upkeep.
async fn metrics_upkeep(handle: PrometheusHandle, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(METRICS_UPKEEP);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => handle.run_upkeep(),
        }
    }
}
