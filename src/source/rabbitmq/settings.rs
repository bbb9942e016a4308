//! What the gateway and `tourcast publish` are told about the broker:
//! where it is, the exchange, the stream and its retention, where to start
//! reading, checkpoints, the catalog; and the epoch, which names the
//! stream for clients.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use clap::Args;
use lapin::uri::AMQPUri;

use crate::source::inbound::DEFAULT_MAX_EVENT_BYTES;

/// Where the broker is and which exchange the platform publishes to: the
/// arguments the gateway and `tourcast publish` share.
#[derive(Clone, Args)]
pub struct BrokerArgs {
    /// AMQP URL of the broker (add `?heartbeat=N` to change the 10 s default).
    #[arg(
        long = "rabbitmq-url",
        env = "RABBITMQ_URL",
        default_value = "amqp://guest:guest@localhost:5672",
        value_parser = parse_amqp_url,
        hide_env_values = true
    )]
    pub url: String,

    /// Durable topic exchange the services publish to.
    #[arg(
        long = "rabbitmq-exchange",
        env = "RABBITMQ_EXCHANGE",
        default_value = "tour_booking_events",
        value_parser = parse_amqp_name
    )]
    pub exchange: String,
}

impl fmt::Debug for BrokerArgs {
    // By hand, so that printing the configuration never prints a password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BrokerArgs")
            .field("url", &redact_url(&self.url))
            .field("exchange", &self.exchange)
            .finish()
    }
}

/// RabbitMQ settings of the gateway.
#[derive(Clone, Debug, Args)]
pub struct RabbitArgs {
    /// The broker and the exchange.
    #[command(flatten)]
    pub broker: BrokerArgs,

    /// Durable stream bound to the exchange, read by every gateway instance.
    #[arg(
        long = "rabbitmq-stream",
        env = "RABBITMQ_STREAM",
        default_value = "tourcast.availability",
        value_parser = parse_amqp_name
    )]
    pub stream: String,

    /// Routing-key patterns bound to the stream, comma-separated.
    #[arg(
        long = "rabbitmq-binding-keys",
        env = "RABBITMQ_BINDING_KEYS",
        value_delimiter = ',',
        default_value = "tour.availability.updated,tour.availability.low,notification.booking.confirmed,notification.booking.cancelled,room.message",
        value_parser = parse_amqp_name
    )]
    pub binding_keys: Vec<String>,

    /// Unacknowledged deliveries in flight (basic.qos prefetch).
    #[arg(
        long = "rabbitmq-prefetch",
        env = "RABBITMQ_PREFETCH",
        default_value_t = 256,
        value_parser = clap::value_parser!(u16).range(1..)
    )]
    pub prefetch: u16,

    /// Stream retention by age (`x-max-age`): a number and one of Y M D h m s.
    #[arg(
        long = "rabbitmq-stream-max-age",
        env = "RABBITMQ_STREAM_MAX_AGE",
        default_value = "24h",
        value_parser = parse_max_age
    )]
    pub stream_max_age: String,

    /// Stream retention by size (`x-max-length-bytes`).
    #[arg(
        long = "rabbitmq-stream-max-bytes",
        env = "RABBITMQ_STREAM_MAX_BYTES",
        default_value_t = 1_000_000_000
    )]
    pub stream_max_bytes: u64,

    /// Stream segment size (`x-stream-max-segment-size-bytes`); retention drops whole segments.
    #[arg(
        long = "rabbitmq-stream-segment-bytes",
        env = "RABBITMQ_STREAM_SEGMENT_BYTES",
        default_value_t = 50_000_000
    )]
    pub stream_segment_bytes: u64,

    /// Where a starting gateway begins reading the stream: `first` (the whole
    /// retention window), `last`, `next`, an offset, or an interval like `2h`.
    #[arg(
        long = "rabbitmq-replay-from",
        env = "RABBITMQ_REPLAY_FROM",
        default_value = "first"
    )]
    pub replay_from: ReplayFrom,

    /// Name of the AMQP connection as `rabbitmqctl list_connections` shows it
    /// (default: `tourcast@<host>:<pid>`).
    #[arg(long = "rabbitmq-connection-name", env = "RABBITMQ_CONNECTION_NAME")]
    pub connection_name: Option<String>,

    /// Epoch override; by default it is derived from the vhost and stream
    /// name. Change it if the stream is ever deleted and recreated.
    #[arg(long = "rabbitmq-epoch", env = "RABBITMQ_EPOCH", value_parser = parse_epoch)]
    pub epoch: Option<String>,

    /// Largest event payload accepted; larger ones are poison.
    #[arg(
        long = "rabbitmq-max-event-bytes",
        env = "RABBITMQ_MAX_EVENT_BYTES",
        default_value_t = DEFAULT_MAX_EVENT_BYTES
    )]
    pub max_event_bytes: usize,

    /// First delay before reconnecting to the broker; doubles up to the maximum.
    #[arg(
        long = "rabbitmq-reconnect-min",
        env = "RABBITMQ_RECONNECT_MIN",
        default_value = "250ms",
        value_parser = humantime::parse_duration
    )]
    pub reconnect_min: Duration,

    /// Longest delay between reconnection attempts.
    #[arg(
        long = "rabbitmq-reconnect-max",
        env = "RABBITMQ_RECONNECT_MAX",
        default_value = "3s",
        value_parser = humantime::parse_duration
    )]
    pub reconnect_max: Duration,

    /// Time between checkpoints of the folded state (to the checkpoint
    /// stream); a starting instance loads the newest and replays only what
    /// follows it. `0s` writes none.
    #[arg(
        long = "checkpoint-interval",
        env = "CHECKPOINT_INTERVAL",
        default_value = "60s",
        value_parser = humantime::parse_duration
    )]
    pub checkpoint_interval: Duration,

    /// The checkpoint stream (default: the event stream's name + `.checkpoints`).
    #[arg(long = "checkpoint-stream", env = "CHECKPOINT_STREAM", value_parser = parse_amqp_name)]
    pub checkpoint_stream: Option<String>,

    /// Most recent events a checkpoint keeps for recovery, over all tours;
    /// older recoveries read the stream back.
    #[arg(
        long = "checkpoint-history",
        env = "CHECKPOINT_HISTORY",
        default_value_t = 20_000
    )]
    pub checkpoint_history: usize,

    /// Retention of the checkpoint stream, in bytes.
    #[arg(
        long = "checkpoint-max-bytes",
        env = "CHECKPOINT_MAX_BYTES",
        default_value_t = 500_000_000
    )]
    pub checkpoint_max_bytes: u64,

    /// Start with a full replay, ignoring checkpoints (they are still written).
    #[arg(long = "ignore-checkpoints", env = "IGNORE_CHECKPOINTS")]
    pub ignore_checkpoints: bool,

    /// Catalog service to load the initial state from, e.g.
    /// `http://localhost:3001/api/tours` (a JSON array of tours).
    #[arg(long = "catalog-url", env = "CATALOG_URL", hide_env_values = true)]
    pub catalog_url: Option<String>,

    /// Delay between attempts when the catalog is down or returns garbage.
    #[arg(
        long = "catalog-retry",
        env = "CATALOG_RETRY",
        default_value = "10s",
        value_parser = humantime::parse_duration
    )]
    pub catalog_retry: Duration,
}

/// A URL without its password, for logs.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}:***@{host}{tail}")
        }
        None => url.to_string(),
    }
}

/// Where a consumer starts reading a stream (`x-stream-offset`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplayFrom {
    /// The oldest retained message.
    First,
    /// The last chunk written.
    Last,
    /// Only messages published from now on.
    Next,
    /// A given offset.
    Offset(u64),
    /// Messages younger than an interval, e.g. `2h` (RabbitMQ's units Y M D h m s).
    Interval(String),
}

impl FromStr for ReplayFrom {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim() {
            "first" => Ok(ReplayFrom::First),
            "last" => Ok(ReplayFrom::Last),
            "next" => Ok(ReplayFrom::Next),
            other => {
                if let Ok(offset) = other.parse::<u64>() {
                    Ok(ReplayFrom::Offset(offset))
                } else if is_interval(other) {
                    Ok(ReplayFrom::Interval(other.to_string()))
                } else {
                    Err(format!(
                        "{other:?} is not first, last, next, an offset or an interval like 2h"
                    ))
                }
            }
        }
    }
}

impl fmt::Display for ReplayFrom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReplayFrom::First => f.write_str("first"),
            ReplayFrom::Last => f.write_str("last"),
            ReplayFrom::Next => f.write_str("next"),
            ReplayFrom::Offset(offset) => write!(f, "{offset}"),
            ReplayFrom::Interval(interval) => f.write_str(interval),
        }
    }
}

/// `<digits><unit>` with RabbitMQ's units (Y, M, D, h, m, s).
fn is_interval(text: &str) -> bool {
    let Some(unit) = text.chars().last() else {
        return false;
    };
    let digits = &text[..text.len() - unit.len_utf8()];
    matches!(unit, 'Y' | 'M' | 'D' | 'h' | 'm' | 's')
        && !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
}

fn parse_max_age(text: &str) -> Result<String, String> {
    if is_interval(text) {
        Ok(text.to_string())
    } else {
        Err(format!(
            "{text:?} is not a number followed by one of Y M D h m s (e.g. 24h, 7D)"
        ))
    }
}

/// Validates an AMQP URL (and keeps it as given).
pub fn parse_amqp_url(text: &str) -> Result<String, String> {
    AMQPUri::from_str(text).map(|_| text.to_string())
}

/// Exchange, queue and routing-key names are AMQP short strings.
pub fn parse_amqp_name(text: &str) -> Result<String, String> {
    if text.is_empty() {
        Err("must not be empty".into())
    } else if text.len() > 255 {
        Err(format!("is {} bytes long; AMQP allows 255", text.len()))
    } else {
        Ok(text.to_string())
    }
}

fn parse_epoch(text: &str) -> Result<String, String> {
    if valid_epoch(text) {
        Ok(text.to_string())
    } else {
        Err("an epoch is 1 to 64 of A-Z a-z 0-9 _ . : -".into())
    }
}

/// The rule `StreamPosition.epoch` carries in `proto/`.
fn valid_epoch(text: &str) -> bool {
    (1..=64).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'))
}

/// The epoch of an engine fed by this source: it names the stream, so every
/// instance reading the same stream, and every restart, shares it.
///
/// It is `rmq:<stream>` (with the vhost when it is not `/`), reduced to the
/// characters clients may send back, or `--rabbitmq-epoch` when set. When the
/// name does not fit, a hash of it is used.
pub fn epoch(args: &RabbitArgs) -> String {
    if let Some(epoch) = &args.epoch {
        return epoch.clone();
    }
    let vhost = AMQPUri::from_str(&args.broker.url)
        .map(|uri| uri.vhost)
        .unwrap_or_default();
    let name = if vhost.is_empty() || vhost == "/" {
        format!("rmq:{}", args.stream)
    } else {
        format!("rmq:{vhost}:{}", args.stream)
    };
    let cleaned: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if cleaned == name && valid_epoch(&cleaned) {
        cleaned
    } else {
        // Distinct names must not collapse into one epoch.
        format!("rmq:{:016x}", fnv1a(name.as_bytes()))
    }
}

/// A stable 64-bit hash (std's `DefaultHasher` may change between releases).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        rabbit: RabbitArgs,
    }

    fn args(extra: &[&str]) -> RabbitArgs {
        let mut argv = vec!["tourcast"];
        argv.extend_from_slice(extra);
        Cli::try_parse_from(argv).expect("valid arguments").rabbit
    }

    #[test]
    fn defaults_match_the_platform() {
        let args = args(&[]);
        assert_eq!(args.broker.exchange, "tour_booking_events");
        assert_eq!(
            args.binding_keys,
            [
                "tour.availability.updated",
                "tour.availability.low",
                "notification.booking.confirmed",
                "notification.booking.cancelled",
                "room.message"
            ]
        );
        assert_eq!(args.replay_from, ReplayFrom::First);
    }

    #[test]
    fn the_epoch_names_the_stream_and_is_a_valid_epoch() {
        assert_eq!(epoch(&args(&[])), "rmq:tourcast.availability");
        assert_eq!(
            epoch(&args(&[
                "--rabbitmq-url",
                "amqp://localhost/prod",
                "--rabbitmq-stream",
                "s1"
            ])),
            "rmq:prod:s1"
        );
        let odd = epoch(&args(&["--rabbitmq-stream", "events/with spaces"]));
        assert!(valid_epoch(&odd), "{odd}");
        assert_ne!(
            odd,
            epoch(&args(&["--rabbitmq-stream", "events/with_spaces"]))
        );
        let long = "s".repeat(200);
        assert!(valid_epoch(&epoch(&args(&["--rabbitmq-stream", &long]))));
        assert_eq!(epoch(&args(&["--rabbitmq-epoch", "gen2"])), "gen2");
    }

    #[test]
    fn bad_values_are_refused_clearly() {
        let parse = |extra: &[&str]| {
            let mut argv = vec!["tourcast"];
            argv.extend_from_slice(extra);
            Cli::try_parse_from(argv).map(|_| ())
        };
        assert!(parse(&["--rabbitmq-url", "http://x"]).is_err());
        assert!(parse(&["--rabbitmq-stream-max-age", "1 day"]).is_err());
        assert!(parse(&["--rabbitmq-replay-from", "yesterday"]).is_err());
        assert!(parse(&["--rabbitmq-prefetch", "0"]).is_err());
        assert!(parse(&["--rabbitmq-epoch", "has space"]).is_err());
        let long = "x".repeat(256);
        assert!(parse(&["--rabbitmq-exchange", &long]).is_err());
    }

    #[test]
    fn urls_are_redacted_for_logs() {
        assert_eq!(
            redact_url("amqp://guest:secret@rabbit:5672/%2f"),
            "amqp://guest:***@rabbit:5672/%2f"
        );
        assert_eq!(redact_url("amqp://rabbit:5672"), "amqp://rabbit:5672");
        let debug = format!("{:?}", args(&["--rabbitmq-url", "amqp://u:hunter2@h/v"]));
        assert!(!debug.contains("hunter2"), "{debug}");
    }

    #[test]
    fn replay_positions_parse() {
        assert_eq!("last".parse(), Ok(ReplayFrom::Last));
        assert_eq!("next".parse(), Ok(ReplayFrom::Next));
        assert_eq!("42".parse(), Ok(ReplayFrom::Offset(42)));
        assert_eq!("2h".parse(), Ok(ReplayFrom::Interval("2h".into())));
        assert!("h".parse::<ReplayFrom>().is_err());
    }
}
