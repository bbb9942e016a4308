//! HTTP: the listener, the routes, and the shared state the handlers read.
//! [`admission`] decides whether a client may connect, for both
//! endpoints: WebSocket ([`handshake`]) and Server-Sent Events ([`sse`]).
//! Each admitted connection runs a [`session::Session`] over its
//! [`transport`](crate::transport), which decodes client messages with the
//! codec and executes them as [`commands`].

pub mod admission;
pub mod commands;
pub mod dashboard;
pub mod forwarded;
pub mod handshake;
pub mod health;
pub mod limits;
pub mod listener;
pub mod session;
pub mod sse;

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderValue, Method};
use axum::routing::get;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower_http::cors::{AllowOrigin, CorsLayer};

use metrics_exporter_prometheus::PrometheusHandle;

use crate::auth::Authenticator;
use crate::config::GatewayConfig;
use crate::engine::Engine;
use crate::hub::CloseReason;
use crate::presence::Presence;
use crate::protocol::codec::{Codec, SchemaError};
use crate::source::{SourceStatus, StreamWriter};
use crate::stats::StatsBoard;
use crate::transport::websocket::{self, Compression};

use limits::ConnectionLimit;

/// Settings the connection handlers need.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    /// Allowed browser origins; empty allows any.
    pub allowed_origins: Vec<String>,
    /// Keep-alive ping interval.
    pub keepalive_interval: Duration,
    /// Outbound queue capacity per connection.
    pub outbound_queue: usize,
    /// Largest message answered normally (larger: `too_large` error).
    pub max_message_bytes: usize,
    /// Largest frame accepted at all (larger: close 1009).
    pub max_frame_bytes: usize,
    /// Client messages per second per connection.
    pub rate_limit: u32,
    /// Client messages per connection in a burst.
    pub rate_burst: u32,
    /// Consecutive rate-limited messages before the connection is closed.
    pub flood_limit: u32,
    /// Room messages per second per connection (`PUBLISH_RATE`).
    pub publish_rate: u32,
    /// Room messages per connection in a burst (`PUBLISH_BURST`).
    pub publish_burst: u32,
    /// Limits on connections that have not upgraded yet.
    pub pending: listener::PendingLimits,
    /// Proxies whose `X-Forwarded-For` names the client.
    pub trusted_proxies: forwarded::TrustedProxies,
    /// permessage-deflate for the WebSocket clients that offer it (`None`:
    /// off).
    pub compression: Option<Compression>,
}

impl ServerSettings {
    /// The server part of the gateway configuration.
    pub fn from_config(config: &GatewayConfig) -> Self {
        ServerSettings {
            allowed_origins: config.origins(),
            keepalive_interval: config.keepalive_interval,
            outbound_queue: config.outbound_queue as usize,
            max_message_bytes: config.max_message_bytes,
            max_frame_bytes: config.max_frame_bytes.max(config.max_message_bytes),
            rate_limit: config.rate_limit.max(1),
            rate_burst: config.rate_burst.max(1),
            flood_limit: config.flood_limit.max(1),
            publish_rate: config.publish_rate.max(1),
            publish_burst: config.publish_burst.max(1),
            pending: listener::PendingLimits {
                handshake_timeout: config.handshake_timeout,
                max_pending: config.max_pending_connections,
            },
            trusted_proxies: forwarded::TrustedProxies::new(config.trusted_proxies.clone()),
            compression: (config.compression_level > 0).then_some(Compression {
                min_bytes: config.compression_min_bytes,
                level: config.compression_level,
            }),
        }
    }
}

/// What every handler shares: one pointer to [`Shared`], so that a request
/// or a connection holding it costs 8 bytes, not a copy of every field
/// (an idle connection's session keeps one for its whole life).
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The parts of [`AppState`].
pub struct Shared {
    /// State, fan-out and subscriptions.
    pub engine: Arc<Engine>,
    /// The validating codec, compiled once.
    pub codec: Arc<Codec>,
    /// Connection settings.
    pub settings: Arc<ServerSettings>,
    /// What every WebSocket connection shares (from `settings`).
    pub websocket: Arc<websocket::Settings>,
    /// The event source's liveness.
    pub source: SourceStatus,
    /// Open connections and the caps on them.
    pub connections: Arc<ConnectionLimit>,
    /// Token verification (a no-op when auth is off).
    pub auth: Arc<Authenticator>,
    /// Renders `/metrics` when a recorder is installed.
    pub metrics: Option<PrometheusHandle>,
    /// Cancelled when the server shuts down.
    pub shutdown: CancellationToken,
    /// Tracks connection tasks so shutdown can wait for them.
    pub tasks: TaskTracker,
    /// Source of connection ids.
    pub next_id: Arc<AtomicU64>,
    /// The `stats` channel's figures.
    pub stats: Arc<StatsBoard>,
    /// Where clients' room messages are written (none: `publish` is
    /// answered `unavailable`).
    pub writer: Option<Arc<dyn StreamWriter>>,
    /// Who is in which room on every instance; tours' viewer counts.
    pub presence: Arc<Presence>,
}

impl AppState {
    /// Shared state for a server in front of `engine` (see
    /// [`crate::gateway`], which builds it).
    #[allow(clippy::too_many_arguments)] // one per part, each named at the one call site
    pub fn new(
        engine: Arc<Engine>,
        stats: Arc<StatsBoard>,
        presence: Arc<Presence>,
        settings: ServerSettings,
        source: SourceStatus,
        connections: ConnectionLimit,
        auth: Authenticator,
        shutdown: CancellationToken,
        writer: Option<Arc<dyn StreamWriter>>,
        metrics: Option<PrometheusHandle>,
    ) -> Result<Self, SchemaError> {
        Ok(AppState(Arc::new(Shared {
            stats,
            presence,
            engine,
            codec: Arc::new(Codec::new()?),
            websocket: Arc::new(websocket::Settings {
                max_message_bytes: settings.max_frame_bytes,
                write_timeout: settings.keepalive_interval,
                compression: settings.compression,
            }),
            settings: Arc::new(settings),
            source,
            connections: Arc::new(connections),
            auth: Arc::new(auth),
            metrics,
            shutdown,
            tasks: TaskTracker::new(),
            next_id: Arc::new(AtomicU64::new(1)),
            writer,
        })))
    }
}

/// The HTTP routes: WebSocket at `/ws` and `/`, Server-Sent Events at
/// `/sse`, health, readiness, and
/// `/metrics` unless it is served on a separate admin port.
pub fn router(state: AppState, with_metrics: bool) -> Router {
    let cors = cors_for(&state.settings.allowed_origins);
    let router = Router::new()
        .route("/ws", get(handshake::upgrade))
        .route("/", get(handshake::upgrade_or_index))
        .route("/sse", get(sse::stream))
        .route("/health", get(health::health))
        .route("/ready", get(health::ready))
        .merge(dashboard::router());
    let router = if with_metrics {
        router.route("/metrics", get(health::metrics))
    } else {
        router
    };
    router.layer(cors).with_state(state)
}

/// Lets pages from the allowed origins (any, when the list is empty) read
/// `/health`, `/ready` and `/metrics` with `fetch`. The WebSocket itself is
/// guarded by the handshake's Origin check, which CORS does not cover.
fn cors_for(origins: &[String]) -> CorsLayer {
    let layer = CorsLayer::new().allow_methods([Method::GET]);
    if origins.is_empty() {
        layer.allow_origin(AllowOrigin::any())
    } else {
        layer.allow_origin(AllowOrigin::list(
            origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()),
        ))
    }
}

/// The admin router: `/metrics` alone.
pub fn admin_router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(health::metrics))
        .with_state(state)
}

/// Serves until `state.shutdown` is cancelled (see [`listener`] for what
/// happens before an upgrade), then closes every connection with 1001 and
/// waits up to `grace` for them to finish.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    with_metrics: bool,
    grace: Duration,
) -> std::io::Result<()> {
    let shutdown = state.shutdown.clone();
    let tasks = state.tasks.clone();
    let engine = Arc::clone(&state.engine);
    let limits = state.settings.pending;
    let app = router(state, with_metrics);
    listener::run(listener, app, limits, shutdown).await;
    // Every handler sends 1001 and ends.
    engine.close_all(CloseReason::ServerShutdown);
    // Upgraded connections live in their own tasks: wait for their
    // handlers, asked to close just above.
    tasks.close();
    if tokio::time::timeout(grace, tasks.wait()).await.is_err() {
        tracing::warn!(
            remaining = tasks.len(),
            "shutdown grace period over; dropping connections"
        );
    }
    Ok(())
}
