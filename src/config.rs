//! Configuration: every setting in one place, from CLI flags or the
//! environment (the SPEC's variables), with defaults and clear errors.

use std::net::IpAddr;

use ipnet::IpNet;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::auth::{AuthConfig, Secret};
use crate::source::rabbitmq::RabbitArgs;

/// tourcast: RabbitMQ availability events → typed WebSocket pushes.
#[derive(Debug, Parser)]
#[command(name = "tourcast", version, about)]
pub struct Cli {
    /// What to run; the gateway when omitted.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Gateway settings (used when no subcommand is given).
    #[command(flatten)]
    pub gateway: GatewayConfig,
}

/// Subcommands besides the gateway itself.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway (the default).
    Serve,
    /// Publish an event to RabbitMQ: an availability change, a booking notification or a room message (flags, or JSON lines on stdin).
    Publish(crate::cli::publish::PublishArgs),
    /// Issue an access token for trying authentication (prints a JWT).
    Token(crate::cli::token::TokenArgs),
}

/// Settings of the gateway process.
#[derive(Debug, Clone, Args)]
pub struct GatewayConfig {
    /// HTTP/WebSocket port.
    #[arg(long, env = "PORT", default_value_t = 8080)]
    pub port: u16,

    /// Address to listen on.
    #[arg(long, env = "BIND_ADDRESS", default_value = "0.0.0.0")]
    pub bind: IpAddr,

    /// Browser origins allowed to connect, comma-separated; empty allows any (with a warning).
    #[arg(
        long,
        env = "ALLOWED_ORIGINS",
        value_delimiter = ',',
        default_value = ""
    )]
    pub allowed_origins: Vec<String>,

    /// The gateway's own public URL (e.g. `https://rt.example.com`), whose
    /// origin is allowed alongside ALLOWED_ORIGINS: the dashboard it serves
    /// connects from there.
    #[arg(long, env = "PUBLIC_URL", value_parser = parse_origin)]
    pub public_url: Option<String>,

    /// Serve the embedded demo feed instead of consuming RabbitMQ.
    #[arg(long, env = "DEMO")]
    pub demo: bool,

    /// Demo feed: time between random bookings.
    #[arg(long, env = "DEMO_INTERVAL", default_value = "3s", value_parser = humantime::parse_duration)]
    pub demo_interval: Duration,

    /// Demo feed: seats at or below which `tour.availability.low` is emitted.
    #[arg(long, env = "DEMO_LOW_THRESHOLD", default_value_t = 5)]
    pub demo_low_threshold: u32,

    /// Interval between WebSocket keep-alive pings; two missed pongs close the connection.
    #[arg(long, env = "KEEPALIVE_INTERVAL", default_value = "30s", value_parser = humantime::parse_duration)]
    pub keepalive_interval: Duration,

    /// Frames a connection may have queued for sending before it counts as too slow and is closed.
    #[arg(long, env = "OUTBOUND_QUEUE", default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=65536))]
    pub outbound_queue: u32,

    /// Events remembered per tour for `subscribe` with `since`.
    #[arg(long, env = "HISTORY_SIZE", default_value_t = 128, value_parser = clap::value_parser!(u32).range(1..=100000))]
    pub history_size: u32,

    /// Most missed events one recovery sends a client (from memory or the
    /// stream); a larger gap gets a fresh snapshot. They are queued whole,
    /// on top of OUTBOUND_QUEUE.
    #[arg(long, env = "MAX_REPLAY", default_value_t = 2048, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=100_000))]
    pub max_replay: usize,

    /// Most stream events one recovery may read back when a client's gap
    /// is older than HISTORY_SIZE (larger gaps get a fresh snapshot).
    #[arg(long, env = "RECOVERY_MAX_SCAN", default_value_t = 100_000)]
    pub recovery_max_scan: u64,

    /// Event ids remembered to drop redelivered duplicates.
    #[arg(long, env = "DEDUPE_WINDOW", default_value_t = 100_000)]
    pub dedupe_window: usize,

    /// Maximum concurrent WebSocket connections; further handshakes get 503.
    #[arg(long, env = "MAX_CONNECTIONS", default_value_t = 18_000)]
    pub max_connections: usize,

    /// Largest client message answered normally; larger ones get a `too_large` error.
    /// 32 KiB: a room `publish` may hold 4,096 characters of text (up to 16 KiB
    /// of UTF-8) and 8 KiB of `data`; every other message is far smaller, and
    /// its fields are bounded by the schema anyway.
    #[arg(long, env = "MAX_MESSAGE_BYTES", default_value_t = 32 * 1024)]
    pub max_message_bytes: usize,

    /// Largest WebSocket frame accepted at all; larger ones close the connection with 1009.
    /// A compressed client message may inflate to this much and no more.
    #[arg(long, env = "MAX_FRAME_BYTES", default_value_t = 64 * 1024)]
    pub max_frame_bytes: usize,

    /// permessage-deflate: messages shorter than this go uncompressed
    /// (compressing a small event costs more than it saves).
    #[arg(long, env = "COMPRESSION_MIN_BYTES", default_value_t = 256)]
    pub compression_min_bytes: usize,

    /// permessage-deflate's level, 1 (fast) to 9 (small); 0 turns the
    /// extension off (clients that offer it are served uncompressed).
    /// Each message is compressed once for every compressing client.
    #[arg(long, env = "COMPRESSION_LEVEL", default_value_t = 6, value_parser = clap::value_parser!(u32).range(0..=9))]
    pub compression_level: u32,

    /// Time a new connection has to send its complete request head (the
    /// WebSocket handshake); idle keep-alive HTTP connections get the same.
    #[arg(long, env = "HANDSHAKE_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub handshake_timeout: Duration,

    /// Connections allowed to wait for their handshake at once; when full,
    /// the oldest waiting one is closed. Lowered to fit the file limit.
    #[arg(long, env = "MAX_PENDING_CONNECTIONS", default_value_t = 1024, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub max_pending_connections: usize,

    /// How long graceful shutdown waits for connections to close.
    #[arg(long, env = "SHUTDOWN_GRACE", default_value = "5s", value_parser = humantime::parse_duration)]
    pub shutdown_grace: Duration,

    /// Concurrent connections allowed from one IP address.
    #[arg(long, env = "MAX_CONNECTIONS_PER_IP", default_value_t = 1000)]
    pub max_connections_per_ip: usize,

    /// Reverse proxies whose `X-Forwarded-For` names the client (for the
    /// per-IP cap and the logs): addresses or networks, comma-separated.
    /// Empty trusts nobody, and the TCP peer is the client.
    #[arg(long, env = "TRUSTED_PROXIES", value_delimiter = ',', value_parser = parse_proxy)]
    pub trusted_proxies: Vec<IpNet>,

    /// Client messages per second allowed on one connection (token bucket refill rate).
    #[arg(long, env = "RATE_LIMIT", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    pub rate_limit: u32,

    /// Client messages a connection may send in a burst (token bucket size).
    #[arg(long, env = "RATE_BURST", default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
    pub rate_burst: u32,

    /// Consecutive rate-limited messages after which the connection is closed with 1008.
    #[arg(long, env = "FLOOD_LIMIT", default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
    pub flood_limit: u32,

    /// HS256 secret; setting it (or JWT_PUBLIC_KEY) makes tokens mandatory.
    #[arg(long, env = "JWT_SECRET", hide_env_values = true, default_value = "")]
    pub jwt_secret: Secret,

    /// RS256/ES256 public key (PEM text or a path to a PEM file); makes tokens mandatory.
    #[arg(long, env = "JWT_PUBLIC_KEY", hide_env_values = true)]
    pub jwt_public_key: Option<String>,

    /// Required token audience (`aud`), if any.
    #[arg(long, env = "JWT_AUDIENCE")]
    pub jwt_audience: Option<String>,

    /// Required token issuer (`iss`), if any.
    #[arg(long, env = "JWT_ISSUER")]
    pub jwt_issuer: Option<String>,

    /// Clock skew tolerated when checking a token's `exp`, `nbf` and `iat`.
    #[arg(long, env = "JWT_LEEWAY", default_value = "5s", value_parser = humantime::parse_duration)]
    pub jwt_leeway: Duration,

    /// Token claim listing the tours a connection may see (`["tour_paris"]` or `"*"`).
    #[arg(long, env = "JWT_TOURS_CLAIM", default_value = "tours")]
    pub jwt_tours_claim: String,

    /// Token claim that marks an admin (it must be `true`): admins may
    /// subscribe to the `stats` channel.
    #[arg(long, env = "JWT_ADMIN_CLAIM", default_value = "admin")]
    pub jwt_admin_claim: String,

    /// With JWT off, let every connection subscribe to the `stats` channel.
    /// Anyone who can reach the port then sees connection counts, event
    /// rates and the busiest tours of every instance: use it on a laptop or
    /// behind an authenticating proxy, never on an open port.
    #[arg(long, env = "ADMIN_OPEN")]
    pub admin_open: bool,

    /// Token claim listing the rooms a connection may join (`["support_42"]` or `"*"`).
    #[arg(long, env = "JWT_ROOMS_CLAIM", default_value = "rooms")]
    pub jwt_rooms_claim: String,

    /// With JWT off, let every connection join and post in any room, under
    /// its `clientId`. Anyone who can reach the port may then read every
    /// room and post under a name nobody vouches for: use it on a laptop,
    /// in the demo (`--demo` implies it), or behind an authenticating
    /// proxy, never on an open port.
    #[arg(long, env = "ROOMS_OPEN")]
    pub rooms_open: bool,

    /// Messages kept in memory per room, sent to a joining client and
    /// used for recovery with `since`.
    #[arg(long, env = "ROOM_HISTORY", default_value_t = 50, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=10_000))]
    pub room_history: usize,

    /// Most rooms whose history is held in memory; the room posted to least
    /// recently is evicted beyond it (its messages are then read back from
    /// the stream).
    #[arg(long, env = "MAX_ROOMS", default_value_t = 10_000, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=10_000_000))]
    pub max_rooms: usize,

    /// Most rooms one connection may be in.
    #[arg(long, env = "MAX_ROOMS_PER_CONNECTION", default_value_t = 32, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=10_000))]
    pub max_rooms_per_connection: usize,

    /// Most tours and channels one connection may subscribe to (`"*"` counts as one).
    #[arg(long, env = "MAX_CHANNELS_PER_CONNECTION", default_value_t = 128, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=100_000))]
    pub max_channels_per_connection: usize,

    /// Room messages one connection may publish per second (its own
    /// bucket, apart from RATE_LIMIT); beyond it `publish` is `rate_limited`.
    #[arg(long, env = "PUBLISH_RATE", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub publish_rate: u32,

    /// Room messages one connection may publish in a burst.
    #[arg(long, env = "PUBLISH_BURST", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub publish_burst: u32,

    /// Notifications kept in memory for recovery with `since`, over all
    /// users; older ones are read back from the stream.
    #[arg(long, env = "NOTIFICATION_HISTORY", default_value_t = 10_000)]
    pub notification_history: usize,

    /// Most tours held. With `HISTORY_SIZE` it bounds the state's memory;
    /// an event that would add one more tour is refused, logged once and
    /// counted (`tourcast_events_total{outcome="over_capacity"}`).
    #[arg(long, env = "MAX_TOURS", default_value_t = 1_000_000)]
    pub max_tours: usize,

    /// Largest snapshot frame: a larger snapshot (a `"*"` of a big
    /// catalog) comes as numbered parts of at most this size.
    #[arg(long, env = "SNAPSHOT_FRAME_BYTES", default_value_t = crate::protocol::snapshot::DEFAULT_MAX_FRAME_BYTES, value_parser = parse_frame_bytes)]
    pub snapshot_frame_bytes: usize,

    /// How often each instance shares its figures and `stats` subscribers get a message.
    #[arg(long, env = "STATS_INTERVAL", default_value = "5s", value_parser = parse_stats_interval)]
    pub stats_interval: Duration,

    /// Rooms with more members than this get a throttled `presence`
    /// count (at most once per second) instead of each join and leave.
    #[arg(long, env = "ROOM_PRESENCE_LIMIT", default_value_t = crate::presence::DEFAULT_ROOM_PRESENCE_LIMIT)]
    pub room_presence_limit: usize,

    /// This instance's name in `stats` (default: host name and process id).
    #[arg(long, env = "INSTANCE_ID")]
    pub instance_id: Option<String>,

    /// Serve `/metrics` on this separate admin port instead of the main one.
    #[arg(long, env = "METRICS_PORT")]
    pub metrics_port: Option<u16>,

    /// Log output: `text` or `json`.
    #[arg(long, env = "LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    pub log_format: String,

    /// RabbitMQ settings.
    #[command(flatten)]
    pub rabbitmq: RabbitArgs,
}

/// A `SNAPSHOT_FRAME_BYTES`: at least 1 KiB (a tour must fit in a part).
fn parse_frame_bytes(text: &str) -> Result<usize, String> {
    let bytes: usize = text.parse().map_err(|e| format!("{e}"))?;
    if bytes < 1024 {
        return Err(format!("{bytes} is below 1024"));
    }
    Ok(bytes)
}

/// A `STATS_INTERVAL`: between 100 ms and an hour.
fn parse_stats_interval(text: &str) -> Result<Duration, String> {
    let interval = humantime::parse_duration(text).map_err(|e| e.to_string())?;
    if interval < Duration::from_millis(100) || interval > Duration::from_secs(3600) {
        return Err(format!("{text:?} is outside 100ms..1h"));
    }
    Ok(interval)
}

/// The origin (`scheme://host[:port]`) of a URL such as `PUBLIC_URL`.
fn parse_origin(text: &str) -> Result<String, String> {
    let (scheme, rest) = text
        .trim()
        .split_once("://")
        .ok_or_else(|| format!("{text:?} is not a URL like https://rt.example.com"))?;
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if !matches!(scheme, "http" | "https") || host.is_empty() {
        return Err(format!("{text:?} is not an http(s) URL with a host"));
    }
    Ok(format!("{scheme}://{host}"))
}

/// A `TRUSTED_PROXIES` entry: `10.0.0.0/8`, `fd00::/8`, or one address.
pub(crate) fn parse_proxy(text: &str) -> Result<IpNet, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("an empty entry (write addresses or networks, comma-separated)".into());
    }
    text.parse::<IpNet>()
        .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| format!("{text:?} is neither an IP address nor a network like 10.0.0.0/8"))
}

impl GatewayConfig {
    /// The authentication part of the configuration.
    pub fn auth(&self) -> AuthConfig {
        AuthConfig {
            secret: self.jwt_secret.clone(),
            public_key: self.jwt_public_key.clone(),
            audience: self.jwt_audience.clone(),
            issuer: self.jwt_issuer.clone(),
            tours_claim: self.jwt_tours_claim.clone(),
            leeway: self.jwt_leeway,
            admin_claim: self.jwt_admin_claim.clone(),
            admin_open: self.admin_open,
            rooms_claim: self.jwt_rooms_claim.clone(),
            // The demo's support-chat page works out of the box.
            rooms_open: self.rooms_open || self.demo,
        }
    }

    /// The origin allow-list, without blanks, plus the public URL's origin
    /// when a list is set; empty means any origin.
    pub fn origins(&self) -> Vec<String> {
        let mut origins: Vec<String> = self
            .allowed_origins
            .iter()
            .map(|o| o.trim().trim_end_matches('/').to_string())
            .filter(|o| !o.is_empty())
            .collect();
        if !origins.is_empty()
            && let Some(public) = &self.public_url
        {
            origins.push(public.clone());
        }
        origins
    }
}
