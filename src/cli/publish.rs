//! `tourcast publish`: publishes availability events and booking
//! notifications to the exchange, the way the booking and catalog services
//! do. It is the tool for trying the system and scripting demos, and a
//! model of how a publisher should behave:
//!
//! ```text
//! tourcast publish --tour-id tour_paris --seats 3
//! tourcast publish --kind low --tour-id tour_rome --seats 2 --threshold 3 --format proto
//! tourcast publish --kind booking-confirmed --user-id alice --tour-id tour_paris --seats 2
//! producer | tourcast publish          # JSON lines, published as they arrive
//! ```
//!
//! Events are validated before they are sent (what the gateway would refuse
//! is refused here, and reading stops there), get an `eventId` and a
//! `timestamp` when they lack one, and are published persistent, mandatory,
//! with publisher confirms. `--raw` sends stdin lines exactly as they are,
//! to try how the gateway handles bad input. One `published …` line is
//! printed per event once RabbitMQ has accepted it, and the command exits
//! non-zero if any event was not accepted.
//!
//! # Accepted means acked *and* routed
//!
//! An ack alone proves little: right after a broker restart
//! (`rabbitmqctl stop_app` / `start_app`) the exchange and its binding are
//! back before the stream is, and for a moment (0.3 s measured on 3.10.8)
//! RabbitMQ acks events it routed to no queue. Outside testing lost 241
//! confirmed events that way. So an event counts as accepted only when it is
//! acked and was not returned (`basic.return`, which `mandatory` asks for),
//! and three outcomes are retried instead:
//!
//! - returned (`Confirmation::Ack(Some(_))`): no queue took it;
//! - nacked: the broker could not take it;
//! - no confirm: the connection dropped, or stayed silent past
//!   [`CONFIRM_TIMEOUT`]. Every event in flight is sent again on a new
//!   connection, reconnecting with backoff. Some of them may have reached
//!   the stream before the connection died, so a retry can duplicate an
//!   event but never loses one; the gateway drops duplicates by `eventId`.
//!
//! Retrying goes on for `--retry-for` (60 s) since RabbitMQ last accepted
//! an event, then the command fails naming every event not accepted.
//! Errors that retrying cannot fix (refused credentials, a missing vhost)
//! fail at once.
//!
//! # Order
//!
//! While everything is accepted up to [`WINDOW`] events are in flight at
//! once, which is what makes a large file fast. Once one fails nothing new
//! is sent: the others in flight settle, and what failed is sent again,
//! oldest first and before anything newer, **stop-and-wait** (each
//! confirmed before the next is sent) until [`HEALTHY_AFTER`] in a row are
//! accepted with nothing left to retry. Stop-and-wait is what keeps a later
//! event from being routed ahead of an earlier one that failed: with several
//! in flight, the broker may return the first and route the second. The one
//! reordering left is among the events that were already in flight together
//! when a route went away and came back within that instant (a few
//! milliseconds); a broker restart closes the connection, so its events are
//! all retried in order.
//!
//! Input is read as a stream (a thread feeds a small channel), and only
//! while everything taken has been sent: when RabbitMQ does not accept,
//! the producer is held back by the pipe rather than buffered here.

use std::collections::VecDeque;
use std::io::BufRead as _;
use std::time::Duration;

use chrono::Utc;

use crate::time::now_rfc3339;
use clap::{Args, ValueEnum};
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::protocol::{AMQPErrorKind, AMQPHardError, AMQPSoftError};
use lapin::{BasicProperties, Confirmation, Connection, ErrorKind};
use prost::Message as _;
use serde_json::Value;
use thiserror::Error;
use tokio::sync::mpsc;
use tokio::time::{Instant, timeout, timeout_at};

use crate::backoff::Backoff;
use crate::event::{BookingKind, ROOM_MESSAGE, SourceEvent};
use crate::protocol::v1::{AvailabilityEvent, BookingEvent, RoomEvent, RoomMember};
use crate::source::AvailabilityKind;
use crate::source::inbound::{
    DEFAULT_MAX_EVENT_BYTES, EventDecoder, Incoming, JSON_CONTENT_TYPE, PROTOBUF_CONTENT_TYPE,
    PoisonError, SchemaError,
};
use crate::source::rabbitmq::{
    BrokerArgs, ConnectError, Connector, declare_exchange, parse_amqp_name,
};

/// How long a confirm may take before the connection counts as lost.
pub const CONFIRM_TIMEOUT: Duration = Duration::from_secs(15);
/// How long connecting (with the exchange declared) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long closing may take: the connection may be half dead.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);
/// Events in flight at once while RabbitMQ accepts everything.
pub const WINDOW: usize = 256;
/// After a failure, events accepted one at a time in a row before
/// pipelining again.
pub const HEALTHY_AFTER: usize = 16;
/// Backoff between attempts after a failure, doubling, with jitter. The
/// ceiling is low: one publisher retrying once a second costs the broker
/// nothing, and the event gets through soon after the stream is back.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(1);
/// The connection name `rabbitmqctl list_connections` shows.
const CONNECTION_NAME: &str = "tourcast publish";
/// Stdin lines read ahead of the publisher.
const READ_AHEAD: usize = 64;

/// Arguments of `tourcast publish`.
#[derive(Debug, Clone, Args)]
pub struct PublishArgs {
    /// The broker and the exchange to publish to.
    #[command(flatten)]
    pub broker: BrokerArgs,

    /// Kind of event: `updated` and `low` are `tour.availability.<kind>`,
    /// `booking-confirmed` and `booking-cancelled` are
    /// `notification.booking.<confirmed|cancelled>`, `room-message` is
    /// `room.message` (a backend service posting into a room: `--room`,
    /// `--from`, `--text`).
    #[arg(long, value_enum, default_value_t = Kind::Updated)]
    pub kind: Kind,

    /// The user a booking notification is for (their tokens' `sub`).
    #[arg(long, requires = "tour_id")]
    pub user_id: Option<String>,

    /// Booking id of a notification (default: generated).
    #[arg(long, requires = "tour_id")]
    pub booking_id: Option<String>,

    /// Text of a notification (default: a sentence for its kind).
    #[arg(long, requires = "tour_id")]
    pub message: Option<String>,

    /// Tour id. Without it, events are read from stdin, one JSON object per line.
    #[arg(long)]
    pub tour_id: Option<String>,

    /// Seats still bookable, or the seats a booking holds (required with --tour-id).
    #[arg(long, requires = "tour_id")]
    pub seats: Option<u32>,

    /// Display name of the tour (`tourName`, or `tourTitle` on low events).
    #[arg(long, requires = "tour_id")]
    pub tour_name: Option<String>,

    /// Size of the largest group the tour takes.
    #[arg(long, requires = "tour_id")]
    pub max_group_size: Option<u32>,

    /// Threshold crossed (low events).
    #[arg(long, requires = "tour_id")]
    pub threshold: Option<u32>,

    /// Event id (default: generated).
    #[arg(long, requires = "tour_id")]
    pub event_id: Option<String>,

    /// Event time, RFC 3339 (default: now).
    #[arg(long, requires = "tour_id")]
    pub timestamp: Option<String>,

    /// The room a `room-message` is posted into. With it, the event comes
    /// from the flags, not from stdin.
    #[arg(long, conflicts_with_all = ["tour_id", "raw"])]
    pub room: Option<String>,

    /// Who posts a `room-message` (e.g. `support_agent_1`).
    #[arg(long, requires = "room")]
    pub from: Option<String>,

    /// Text of a `room-message`.
    #[arg(long, requires = "room")]
    pub text: Option<String>,

    /// Structured content of a `room-message`: a JSON object (at most 8 KiB).
    #[arg(long, requires = "room")]
    pub data: Option<String>,

    /// Payload encoding.
    #[arg(long, value_enum, default_value_t = Format::Json)]
    pub format: Format,

    /// Routing key (default: the event's kind).
    #[arg(long, value_parser = parse_amqp_name)]
    pub routing_key: Option<String>,

    /// Publish stdin lines exactly as they are: no validation, no defaults.
    #[arg(long, conflicts_with = "tour_id")]
    pub raw: bool,

    /// How long to keep retrying events RabbitMQ did not accept (returned
    /// unroutable, nacked, or unconfirmed when the connection dropped),
    /// counted from the last event it accepted; 0 fails at the first one.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub retry_for: Duration,
}

/// The event kinds, as `--kind` names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Kind {
    /// `tour.availability.updated`.
    Updated,
    /// `tour.availability.low`.
    Low,
    /// `notification.booking.confirmed`.
    BookingConfirmed,
    /// `notification.booking.cancelled`.
    BookingCancelled,
    /// `room.message`.
    RoomMessage,
}

impl Kind {
    /// The routing key (and `eventType`) of this kind.
    pub fn routing_key(self) -> &'static str {
        match self {
            Kind::Updated => AvailabilityKind::Updated.as_str(),
            Kind::Low => AvailabilityKind::Low.as_str(),
            Kind::BookingConfirmed => BookingKind::Confirmed.routing_key(),
            Kind::BookingCancelled => BookingKind::Cancelled.routing_key(),
            Kind::RoomMessage => ROOM_MESSAGE,
        }
    }
}

/// Payload encodings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// JSON, `application/json`.
    Json,
    /// Protobuf `tourcast.v1.AvailabilityEvent` (or `BookingEvent`), `application/x-protobuf`.
    Proto,
}

/// Why publishing failed.
#[derive(Debug, Error)]
pub enum PublishError {
    /// Bad arguments.
    #[error("{0}")]
    Usage(String),
    /// An event would be refused by the gateway.
    #[error("event {line}: {error}")]
    Invalid {
        /// 1-based position of the event (its stdin line).
        line: usize,
        /// What is wrong with it.
        error: PoisonError,
    },
    /// Reading stdin failed.
    #[error("reading stdin: {0}")]
    Stdin(#[from] std::io::Error),
    /// The publisher-event schema did not compile.
    #[error(transparent)]
    Schema(#[from] SchemaError),
    /// Starting the stdin reader failed.
    #[error("starting the stdin reader: {0}")]
    Thread(#[source] std::io::Error),
    /// RabbitMQ did not accept some events, and retrying did not help.
    #[error(
        "RabbitMQ did not accept {count} event(s) ({accepted} published): {cause}\n  {list}",
        count = .events.len(),
        list = .events.join("\n  ")
    )]
    NotAccepted {
        /// The last reason, and where the input stopped.
        cause: String,
        /// How many events were published.
        accepted: usize,
        /// Each event not accepted: its stdin line and summary (eventId,
        /// tour, seats), oldest first.
        events: Vec<String>,
    },
}

/// One message ready to be sent.
#[derive(Debug, Clone, PartialEq)]
pub struct Outgoing {
    /// Routing key.
    pub routing_key: String,
    /// Content type.
    pub content_type: &'static str,
    /// Payload.
    pub payload: Vec<u8>,
    /// Its `eventId`, when it has one (also the AMQP `message_id`).
    pub event_id: Option<String>,
    /// A one-line description for the command's output.
    pub summary: String,
}

/// A fresh event id: `evt_<millis>_<random>`, unique across publishers.
pub fn new_event_id() -> String {
    let random = uuid::Uuid::new_v4().simple().to_string();
    format!("evt_{}_{}", Utc::now().timestamp_millis(), &random[..8])
}

/// Builds the event that the flags describe.
pub fn event_from_flags(args: &PublishArgs) -> Result<Outgoing, PublishError> {
    if args.kind == Kind::RoomMessage || args.room.is_some() {
        return room_message_from_flags(args);
    }
    let Some(tour_id) = args.tour_id.clone() else {
        return Err(PublishError::Usage("--tour-id is required".into()));
    };
    let Some(seats) = args.seats else {
        return Err(PublishError::Usage(
            "--seats is required with --tour-id".into(),
        ));
    };
    let booking = match args.kind {
        Kind::BookingConfirmed => Some(BookingKind::Confirmed),
        Kind::BookingCancelled => Some(BookingKind::Cancelled),
        Kind::Updated | Kind::Low | Kind::RoomMessage => None,
    };
    if let Some(booking) = booking {
        let Some(user_id) = args.user_id.clone() else {
            return Err(PublishError::Usage(
                "--user-id is required for a booking notification".into(),
            ));
        };
        let text = match booking {
            BookingKind::Confirmed => "Your booking is confirmed!",
            BookingKind::Cancelled => "Your booking was cancelled.",
        };
        let event = BookingEvent {
            event_id: Some(args.event_id.clone().unwrap_or_else(new_event_id)),
            event_type: Some(booking.routing_key().into()),
            user_id,
            booking_id: args.booking_id.clone().unwrap_or_else(|| {
                format!(
                    "booking_{}",
                    &uuid::Uuid::new_v4().simple().to_string()[..12]
                )
            }),
            tour_name: args.tour_name.clone().unwrap_or_else(|| tour_id.clone()),
            tour_id,
            seats,
            message: args.message.clone().unwrap_or_else(|| text.into()),
            timestamp: Some(args.timestamp.clone().unwrap_or_else(now_rfc3339)),
        };
        let value = serde_json::to_value(&event)
            .map_err(|e| PublishError::Usage(format!("cannot encode the event: {e}")))?;
        let decoder = EventDecoder::new(DEFAULT_MAX_EVENT_BYTES)?;
        return prepare(&decoder, value, args, 1);
    }
    let kind = if args.kind == Kind::Low {
        AvailabilityKind::Low
    } else {
        AvailabilityKind::Updated
    };
    let event = AvailabilityEvent {
        event_id: Some(args.event_id.clone().unwrap_or_else(new_event_id)),
        event_type: Some(kind.as_str().into()),
        tour_id,
        // The SPEC's low events carry `tourTitle`; updates carry `tourName`.
        tour_name: args
            .tour_name
            .clone()
            .filter(|_| kind == AvailabilityKind::Updated),
        tour_title: args
            .tour_name
            .clone()
            .filter(|_| kind == AvailabilityKind::Low),
        available_seats: seats,
        max_group_size: args.max_group_size,
        threshold: args.threshold,
        timestamp: Some(args.timestamp.clone().unwrap_or_else(now_rfc3339)),
        version: None,
    };
    let value = serde_json::to_value(&event)
        .map_err(|e| PublishError::Usage(format!("cannot encode the event: {e}")))?;
    let decoder = EventDecoder::new(DEFAULT_MAX_EVENT_BYTES)?;
    prepare(&decoder, value, args, 1)
}

/// A `room.message` from `--room`, `--from` and `--text`.
fn room_message_from_flags(args: &PublishArgs) -> Result<Outgoing, PublishError> {
    let required = |value: &Option<String>, flag: &str| {
        value
            .clone()
            .ok_or_else(|| PublishError::Usage(format!("--{flag} is required for a room message")))
    };
    if args.kind != Kind::RoomMessage {
        return Err(PublishError::Usage(
            "--room posts a room message: add --kind room-message".into(),
        ));
    }
    let event = RoomEvent {
        event_id: Some(args.event_id.clone().unwrap_or_else(new_event_id)),
        event_type: Some(ROOM_MESSAGE.into()),
        room: required(&args.room, "room")?,
        from: Some(RoomMember {
            user_id: required(&args.from, "from")?,
        }),
        text: required(&args.text, "text")?,
        data: args.data.as_ref().map(|data| data.as_bytes().to_vec()),
        timestamp: Some(args.timestamp.clone().unwrap_or_else(now_rfc3339)),
    };
    let value = serde_json::to_value(&event)
        .map_err(|e| PublishError::Usage(format!("cannot encode the event: {e}")))?;
    let decoder = EventDecoder::new(DEFAULT_MAX_EVENT_BYTES)?;
    prepare(&decoder, value, args, 1)
}

/// Turns one stdin line into a message (`None` for a blank line).
pub fn event_from_line(
    decoder: &EventDecoder,
    line: &str,
    number: usize,
    args: &PublishArgs,
) -> Result<Option<Outgoing>, PublishError> {
    let line = line.trim();
    if line.is_empty() {
        return Ok(None);
    }
    if args.raw {
        let routing_key = args
            .routing_key
            .clone()
            .unwrap_or_else(|| args.kind.routing_key().to_string());
        return Ok(Some(Outgoing {
            summary: format!("{routing_key} raw ({} bytes)", line.len()),
            routing_key,
            content_type: match args.format {
                Format::Json => JSON_CONTENT_TYPE,
                Format::Proto => PROTOBUF_CONTENT_TYPE,
            },
            payload: line.as_bytes().to_vec(),
            event_id: None,
        }));
    }
    let mut value: Value = serde_json::from_str(line).map_err(|e| PublishError::Invalid {
        line: number,
        error: PoisonError {
            event_id: None,
            reason: crate::source::inbound::PoisonReason::MalformedJson(e.to_string()),
        },
    })?;
    if let Value::Object(object) = &mut value {
        object
            .entry("eventId")
            .or_insert_with(|| Value::String(new_event_id()));
        object
            .entry("timestamp")
            .or_insert_with(|| Value::String(now_rfc3339()));
    }
    prepare(decoder, value, args, number).map(Some)
}

/// Validates an event as the gateway would, then encodes it.
fn prepare(
    decoder: &EventDecoder,
    value: Value,
    args: &PublishArgs,
    number: usize,
) -> Result<Outgoing, PublishError> {
    let json = serde_json::to_vec(&value)
        .map_err(|e| PublishError::Usage(format!("cannot encode the event: {e}")))?;
    let default_key = args.kind.routing_key();
    let routing_key = args.routing_key.as_deref().unwrap_or(default_key);
    let event = decoder
        .decode(
            Incoming {
                routing_key,
                content_type: Some(JSON_CONTENT_TYPE),
                payload: &json,
                sent_at: None,
            },
            Utc::now(),
        )
        .map_err(|error| PublishError::Invalid {
            line: number,
            error,
        })?;
    // The event's own kind routes it, unless a key was given.
    let (own_key, summary) = match &event {
        SourceEvent::Availability(e) => (
            e.kind.as_str(),
            format!("tour={} seats={}", e.tour_id, e.available_seats),
        ),
        SourceEvent::Booking(e) => (
            e.kind.routing_key(),
            format!("user={} tour={} seats={}", e.user_id, e.tour_id, e.seats),
        ),
        SourceEvent::Room(e) => (ROOM_MESSAGE, format!("room={} from={}", e.room, e.from)),
    };
    let routing_key = args
        .routing_key
        .clone()
        .unwrap_or_else(|| own_key.to_string());
    let event_id = event.event_id().map(str::to_owned);
    let summary = format!(
        "{routing_key} {} {summary}",
        event_id.as_deref().unwrap_or("-")
    );
    let (content_type, payload) = match args.format {
        Format::Json => (JSON_CONTENT_TYPE, json),
        Format::Proto => {
            let invalid = |e: serde_json::Error| PublishError::Invalid {
                line: number,
                error: PoisonError {
                    event_id: event_id.clone(),
                    reason: crate::source::inbound::PoisonReason::Invalid {
                        path: String::new(),
                        message: e.to_string(),
                    },
                },
            };
            let payload = match &event {
                SourceEvent::Availability(_) => serde_json::from_value::<AvailabilityEvent>(value)
                    .map_err(invalid)?
                    .encode_to_vec(),
                SourceEvent::Booking(_) => serde_json::from_value::<BookingEvent>(value)
                    .map_err(invalid)?
                    .encode_to_vec(),
                SourceEvent::Room(_) => serde_json::from_value::<RoomEvent>(value)
                    .map_err(invalid)?
                    .encode_to_vec(),
            };
            (PROTOBUF_CONTENT_TYPE, payload)
        }
    };
    Ok(Outgoing {
        routing_key,
        content_type,
        payload,
        event_id,
        summary,
    })
}

/// A connection and confirm-mode channel to publish on.
pub struct Publisher {
    connection: Connection,
    channel: lapin::Channel,
    exchange: String,
}

impl Publisher {
    /// Connects, enables publisher confirms and declares the exchange (a
    /// durable topic exchange, as the gateway declares it).
    pub async fn connect(connector: &Connector, exchange: &str) -> Result<Self, ConnectError> {
        let connection = connector.connect().await?;
        let channel = declare_exchange(&connection, exchange).await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        Ok(Publisher {
            connection,
            channel,
            exchange: exchange.to_string(),
        })
    }

    /// Sends one message, persistent and mandatory; its confirm comes later.
    pub async fn send(&self, message: &Outgoing) -> Result<lapin::PublisherConfirm, lapin::Error> {
        let mut properties = BasicProperties::default()
            .with_content_type(message.content_type.into())
            .with_delivery_mode(2)
            .with_app_id("tourcast-publish".into())
            .with_timestamp(u64::try_from(Utc::now().timestamp()).unwrap_or_default());
        if let Some(id) = message.event_id.as_deref().filter(|id| id.len() <= 255) {
            properties = properties.with_message_id(id.into());
        }
        self.channel
            .basic_publish(
                self.exchange.as_str().into(),
                message.routing_key.as_str().into(),
                BasicPublishOptions {
                    mandatory: true,
                    ..BasicPublishOptions::default()
                },
                &message.payload,
                properties,
            )
            .await
    }

    /// Closes the connection (bounded: it may be half dead).
    pub async fn close(self) {
        let _ = timeout(
            CLOSE_TIMEOUT,
            self.connection.close(200, "published".into()),
        )
        .await;
    }
}

/// Whether retrying cannot help: the broker refused who we are or what we
/// asked, rather than being away or restarting.
fn is_permanent(error: &lapin::Error) -> bool {
    match error.kind() {
        ErrorKind::AuthProviderError(_) | ErrorKind::InvalidProtocolVersion(_) => true,
        ErrorKind::ProtocolError(amqp) => matches!(
            amqp.kind(),
            AMQPErrorKind::Soft(
                AMQPSoftError::ACCESSREFUSED
                    | AMQPSoftError::NOTFOUND
                    | AMQPSoftError::CONTENTTOOLARGE
                    | AMQPSoftError::PRECONDITIONFAILED
            ) | AMQPErrorKind::Hard(
                AMQPHardError::NOTALLOWED
                    | AMQPHardError::INVALIDPATH
                    | AMQPHardError::FRAMEERROR
                    | AMQPHardError::SYNTAXERROR
                    | AMQPHardError::COMMANDINVALID
                    | AMQPHardError::NOTIMPLEMENTED
            )
        ),
        _ => false,
    }
}

/// An event taken from the input, with its stdin line (1 with flags).
struct Queued {
    line: usize,
    message: Outgoing,
}

impl Queued {
    fn describe(&self) -> String {
        format!("line {}: {}", self.line, self.message.summary)
    }
}

/// An event sent and not confirmed yet.
struct InFlight {
    queued: Queued,
    confirm: lapin::PublisherConfirm,
    /// Past this without a confirm, the connection counts as lost.
    deadline: Instant,
}

/// How the oldest event in flight ended (a returned message's body is
/// dropped here: the event is still in hand).
enum Settled {
    Accepted,
    Returned { code: u16, text: String },
    Nacked,
    Lost(lapin::Error),
    NoConfirm,
}

impl From<Confirmation> for Settled {
    fn from(confirmation: Confirmation) -> Self {
        match confirmation {
            Confirmation::Ack(None) | Confirmation::NotRequested => Settled::Accepted,
            Confirmation::Ack(Some(returned)) => Settled::Returned {
                code: returned.reply_code,
                text: returned.reply_text.to_string(),
            },
            Confirmation::Nack(_) => Settled::Nacked,
        }
    }
}

/// Why an event was not accepted this time.
enum Failure {
    /// No queue took it: RabbitMQ returned it, then acked it.
    Returned {
        code: u16,
        text: String,
    },
    Nacked,
    /// The connection failed or stalled: nothing in flight is known taken.
    Lost(lapin::Error),
    NoConfirm,
    Connect(ConnectError),
    ConnectTimeout,
}

impl Failure {
    fn permanent(&self) -> bool {
        match self {
            Failure::Lost(error) | Failure::Connect(ConnectError::Amqp(error)) => {
                is_permanent(error)
            }
            _ => false,
        }
    }

    /// What went wrong, for stderr and the final error; no event in it, so
    /// that the same trouble is told once.
    fn describe(&self, exchange: &str, routing_key: Option<&str>) -> String {
        match self {
            Failure::Returned { code, text } => format!(
                "RabbitMQ routed the event to no queue ({code} {text}): nothing bound to \
                 exchange {exchange:?} for {:?} took it, because no gateway ever declared its \
                 stream, or the stream is not available yet after a broker restart",
                routing_key.unwrap_or("-")
            ),
            Failure::Nacked => "RabbitMQ refused the event (nack)".into(),
            Failure::Lost(error) => format!("the connection to RabbitMQ failed: {error}"),
            Failure::NoConfirm => {
                format!("RabbitMQ confirmed nothing within {CONFIRM_TIMEOUT:?}")
            }
            Failure::Connect(error) => format!("cannot connect to RabbitMQ: {error}"),
            Failure::ConnectTimeout => {
                format!("cannot connect to RabbitMQ within {CONNECT_TIMEOUT:?}")
            }
        }
    }
}

/// Publishes events in their order and makes sure RabbitMQ took each one,
/// retrying what it did not (see the module comment).
struct Sender<'a> {
    args: &'a PublishArgs,
    publisher: Option<Publisher>,
    in_flight: VecDeque<InFlight>,
    /// Events to send again, oldest first: they go before anything newer.
    retry: VecDeque<Queued>,
    /// Taken from the input and not sent yet.
    fresh: VecDeque<Queued>,
    /// `Some(n)` while stop-and-wait after a failure, with `n` accepted in a row.
    careful: Option<usize>,
    /// When the current trouble began (nothing accepted since).
    failing_since: Option<Instant>,
    /// The last failure told on stderr, to tell each kind once.
    told: Option<String>,
    backoff: Backoff,
    /// The broker, from `--rabbitmq-url` (an error when the URL does not parse).
    connector: Result<Connector, String>,
    /// Nothing is sent, and no connection tried, before this.
    next_attempt: Instant,
    /// Events accepted, and events taken from the input.
    accepted: usize,
    taken: usize,
}

impl<'a> Sender<'a> {
    fn new(args: &'a PublishArgs) -> Self {
        Sender {
            args,
            publisher: None,
            in_flight: VecDeque::new(),
            retry: VecDeque::new(),
            fresh: VecDeque::new(),
            careful: None,
            failing_since: None,
            told: None,
            backoff: Backoff::new(BACKOFF_MIN, BACKOFF_MAX),
            connector: Connector::new(&args.broker.url, CONNECTION_NAME),
            next_attempt: Instant::now(),
            accepted: 0,
            taken: 0,
        }
    }

    fn take(&mut self, queued: Queued) {
        self.taken += 1;
        self.fresh.push_back(queued);
    }

    fn window(&self) -> usize {
        if self.careful.is_some() { 1 } else { WINDOW }
    }

    fn has_queued(&self) -> bool {
        !self.retry.is_empty() || !self.fresh.is_empty()
    }

    /// Whether more input may be taken: only once everything taken is sent,
    /// so that a broker that does not accept holds the producer back
    /// (through the pipe) instead of filling memory.
    fn wants_input(&self) -> bool {
        !self.has_queued() && self.in_flight.len() < self.window()
    }

    fn idle(&self) -> bool {
        !self.has_queued() && self.in_flight.is_empty()
    }

    /// When to send again, if there is something to send and room for it
    /// (possibly now: a backoff that just ended must still wake the loop).
    fn backing_off(&self) -> Option<Instant> {
        (self.has_queued() && self.in_flight.len() < self.window()).then_some(self.next_attempt)
    }

    /// Puts an event back among those to retry, in its place by age.
    fn requeue(&mut self, queued: Queued) {
        let at = self.retry.partition_point(|q| q.line < queued.line);
        self.retry.insert(at, queued);
    }

    /// Sends what is queued, as far as the window and the backoff allow.
    async fn pump(&mut self) -> Result<(), PublishError> {
        while self.has_queued()
            && self.in_flight.len() < self.window()
            && Instant::now() >= self.next_attempt
        {
            let publisher = match &self.publisher {
                Some(publisher) => publisher,
                None => {
                    let connector = self
                        .connector
                        .as_ref()
                        .map_err(|error| PublishError::Usage(format!("--rabbitmq-url: {error}")))?;
                    let connecting = Publisher::connect(connector, &self.args.broker.exchange);
                    match timeout(CONNECT_TIMEOUT, connecting).await {
                        Ok(Ok(publisher)) => self.publisher.insert(publisher),
                        Ok(Err(error)) => {
                            self.fail(Failure::Connect(error), None).await?;
                            continue;
                        }
                        Err(_) => {
                            self.fail(Failure::ConnectTimeout, None).await?;
                            continue;
                        }
                    }
                }
            };
            let Some(queued) = self.retry.pop_front().or_else(|| self.fresh.pop_front()) else {
                break;
            };
            match publisher.send(&queued.message).await {
                Ok(confirm) => self.in_flight.push_back(InFlight {
                    queued,
                    confirm,
                    deadline: Instant::now() + CONFIRM_TIMEOUT,
                }),
                Err(error) => {
                    self.requeue(queued);
                    self.connection_lost(Failure::Lost(error)).await?;
                }
            }
        }
        Ok(())
    }

    /// Handles how the oldest event in flight ended.
    async fn settled(&mut self, settled: Settled) -> Result<(), PublishError> {
        let Some(front) = self.in_flight.pop_front() else {
            return Ok(());
        };
        let failure = match settled {
            Settled::Accepted => {
                self.accept(&front.queued);
                return Ok(());
            }
            Settled::Returned { code, text } => Failure::Returned { code, text },
            Settled::Nacked => Failure::Nacked,
            Settled::Lost(error) => {
                self.requeue(front.queued);
                return self.connection_lost(Failure::Lost(error)).await;
            }
            Settled::NoConfirm => {
                self.requeue(front.queued);
                return self.connection_lost(Failure::NoConfirm).await;
            }
        };
        let routing_key = front.queued.message.routing_key.clone();
        self.requeue(front.queued);
        self.fail(failure, Some(&routing_key)).await
    }

    fn accept(&mut self, queued: &Queued) {
        println!(
            "published {} to {}",
            queued.message.summary, self.args.broker.exchange
        );
        self.accepted += 1;
        if let Some(since) = self.failing_since.take() {
            eprintln!(
                "tourcast publish: RabbitMQ accepts events again, after {:.1?}",
                since.elapsed()
            );
        }
        self.told = None;
        self.backoff.reset();
        self.careful = match self.careful {
            Some(n) if n + 1 < HEALTHY_AFTER || !self.retry.is_empty() => Some(n + 1),
            _ => None,
        };
    }

    /// The channel is unusable: everything in flight goes back to be sent
    /// again on a new connection.
    async fn connection_lost(&mut self, failure: Failure) -> Result<(), PublishError> {
        while let Some(lost) = self.in_flight.pop_front() {
            self.requeue(lost.queued);
        }
        if let Some(publisher) = self.publisher.take() {
            publisher.close().await;
        }
        self.fail(failure, None).await
    }

    /// Records a failure: stop-and-wait from now on, back off, and give up
    /// once `--retry-for` has passed since RabbitMQ last accepted an event.
    async fn fail(
        &mut self,
        failure: Failure,
        routing_key: Option<&str>,
    ) -> Result<(), PublishError> {
        let now = Instant::now();
        let since = *self.failing_since.get_or_insert(now);
        let cause = failure.describe(&self.args.broker.exchange, routing_key);
        if failure.permanent() || now.duration_since(since) >= self.args.retry_for {
            return Err(self.give_up(cause).await);
        }
        if self.told.as_deref() != Some(cause.as_str()) {
            eprintln!(
                "tourcast publish: {cause}; retrying for up to {} (--retry-for)",
                humantime::format_duration(self.args.retry_for)
            );
            self.told = Some(cause);
        }
        self.careful = Some(0);
        let pause = self.backoff.next_delay();
        self.next_attempt = (now + pause).min(since + self.args.retry_for);
        Ok(())
    }

    /// Stops: settles what is still in flight (so that the report is
    /// exact), then names every event RabbitMQ did not accept.
    async fn give_up(&mut self, cause: String) -> PublishError {
        while let Some(mut front) = self.in_flight.pop_front() {
            match timeout_at(front.deadline, &mut front.confirm).await {
                Ok(Ok(Confirmation::Ack(None) | Confirmation::NotRequested)) => {
                    self.accept(&front.queued);
                }
                _ => self.requeue(front.queued),
            }
        }
        if let Some(publisher) = self.publisher.take() {
            publisher.close().await;
        }
        let events: Vec<String> = self
            .retry
            .drain(..)
            .chain(self.fresh.drain(..))
            .map(|queued| queued.describe())
            .collect();
        PublishError::NotAccepted {
            cause,
            accepted: self.accepted,
            events,
        }
    }

    /// Sends everything still queued and waits for its confirms.
    async fn finish(&mut self) -> Result<(), PublishError> {
        loop {
            self.pump().await?;
            if self.idle() {
                break;
            }
            if let Some(wake) = self.backing_off() {
                tokio::time::sleep_until(wake).await;
                continue;
            }
            let settled = settle(&mut self.in_flight).await;
            self.settled(settled).await?;
        }
        if let Some(publisher) = self.publisher.take() {
            publisher.close().await;
        }
        Ok(())
    }
}

/// Waits for the oldest confirm (cancel-safe: the confirm stays in place).
async fn settle(in_flight: &mut VecDeque<InFlight>) -> Settled {
    let Some(front) = in_flight.front_mut() else {
        return std::future::pending().await;
    };
    match timeout_at(front.deadline, &mut front.confirm).await {
        Ok(Ok(confirmation)) => confirmation.into(),
        Ok(Err(error)) => Settled::Lost(error),
        Err(_) => Settled::NoConfirm,
    }
}

/// Where events come from: the flags (one event), or stdin lines as they
/// arrive.
enum Input {
    Flags(Option<Outgoing>),
    Stdin {
        lines: mpsc::Receiver<std::io::Result<String>>,
        decoder: Box<EventDecoder>,
        number: usize,
    },
}

impl Input {
    fn new(args: &PublishArgs) -> Result<Self, PublishError> {
        if args.tour_id.is_some() || args.room.is_some() {
            return Ok(Input::Flags(Some(event_from_flags(args)?)));
        }
        let decoder = Box::new(EventDecoder::new(DEFAULT_MAX_EVENT_BYTES)?);
        let (tx, lines) = mpsc::channel(READ_AHEAD);
        // A thread of its own rather than tokio's stdin: a read pending on
        // tokio's blocking pool would hold the runtime's shutdown (and so
        // the exit) until the producer writes again or closes the pipe.
        std::thread::Builder::new()
            .name("stdin".into())
            .spawn(move || {
                for line in std::io::stdin().lock().lines() {
                    let failed = line.is_err();
                    if tx.blocking_send(line).is_err() || failed {
                        break;
                    }
                }
            })
            .map_err(PublishError::Thread)?;
        Ok(Input::Stdin {
            lines,
            decoder,
            number: 0,
        })
    }

    /// The next event; `None` at the end of the input. Cancel-safe: the
    /// only await is the channel's `recv`.
    async fn next(&mut self, args: &PublishArgs) -> Option<Result<Queued, PublishError>> {
        match self {
            Input::Flags(event) => event.take().map(|message| Ok(Queued { line: 1, message })),
            Input::Stdin {
                lines,
                decoder,
                number,
            } => loop {
                let line = match lines.recv().await? {
                    Ok(line) => line,
                    Err(error) => return Some(Err(PublishError::Stdin(error))),
                };
                *number += 1;
                match event_from_line(decoder, &line, *number, args) {
                    Ok(Some(message)) => {
                        return Some(Ok(Queued {
                            line: *number,
                            message,
                        }));
                    }
                    Ok(None) => continue,
                    Err(error) => return Some(Err(error)),
                }
            },
        }
    }

    fn read_to(&self) -> Option<usize> {
        match self {
            Input::Flags(_) => None,
            Input::Stdin { number, .. } => Some(*number),
        }
    }
}

/// Runs `tourcast publish`: events from the flags, or from stdin as they
/// come. Prints one `published …` line per event RabbitMQ accepted, when
/// it accepts it.
pub async fn run(args: PublishArgs) -> Result<(), PublishError> {
    let mut input = Input::new(&args)?;
    let mut sender = Sender::new(&args);
    // Why input stopped before its end: a bad line or a failed read. What
    // came before it is still published.
    let mut stopped = None;
    let mut ended = false;
    let result = async {
        while !ended && stopped.is_none() {
            sender.pump().await?;
            enum Step {
                Settled(Settled),
                Input(Option<Result<Queued, PublishError>>),
                Wake,
            }
            // One branch is always enabled: with nothing queued there is
            // room for input; with something queued there is either a
            // confirm to wait for or a time to send it.
            let wake = sender.backing_off();
            let step = tokio::select! {
                settled = settle(&mut sender.in_flight), if !sender.in_flight.is_empty() => {
                    Step::Settled(settled)
                }
                next = input.next(&args), if sender.wants_input() => Step::Input(next),
                () = sleep_until_some(wake), if wake.is_some() => Step::Wake,
            };
            match step {
                Step::Settled(settled) => sender.settled(settled).await?,
                Step::Input(Some(Ok(queued))) => sender.take(queued),
                Step::Input(Some(Err(error))) => stopped = Some(error),
                Step::Input(None) => ended = true,
                Step::Wake => {}
            }
        }
        sender.finish().await
    }
    .await;
    match result {
        Err(PublishError::NotAccepted {
            cause,
            accepted,
            events,
        }) => {
            let note = match (&stopped, input.read_to()) {
                (Some(error), _) => format!("; input stopped before: {error}"),
                (None, Some(line)) if !ended => {
                    format!("; stdin was read up to line {line}, nothing after it")
                }
                _ => String::new(),
            };
            Err(PublishError::NotAccepted {
                cause: format!("{cause}{note}"),
                accepted,
                events,
            })
        }
        Err(error) => Err(error),
        Ok(()) => match stopped {
            Some(error) => Err(error),
            None if sender.taken == 0 => Err(PublishError::Usage(
                "nothing to publish: give --tour-id and --seats, or JSON events on stdin".into(),
            )),
            None => Ok(()),
        },
    }
}

async fn sleep_until_some(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        publish: PublishArgs,
    }

    fn args(extra: &[&str]) -> PublishArgs {
        let mut argv = vec!["publish"];
        argv.extend_from_slice(extra);
        Cli::try_parse_from(argv).expect("valid arguments").publish
    }

    fn decoder() -> EventDecoder {
        EventDecoder::new(DEFAULT_MAX_EVENT_BYTES).expect("schema compiles")
    }

    #[test]
    fn flags_make_a_complete_updated_event() {
        let message = event_from_flags(&args(&[
            "--tour-id",
            "tour_paris",
            "--seats",
            "3",
            "--tour-name",
            "Paris City Tour",
        ]))
        .expect("valid");
        assert_eq!(message.routing_key, "tour.availability.updated");
        assert_eq!(message.content_type, JSON_CONTENT_TYPE);
        let json: Value = serde_json::from_slice(&message.payload).expect("JSON");
        assert_eq!(json["tourId"], "tour_paris");
        assert_eq!(json["tourName"], "Paris City Tour");
        assert_eq!(json["availableSeats"], 3);
        assert_eq!(json["eventType"], "tour.availability.updated");
        assert!(
            json["eventId"]
                .as_str()
                .is_some_and(|id| id.starts_with("evt_"))
        );
        assert!(json["timestamp"].is_string());
    }

    #[test]
    fn low_events_carry_a_tour_title_and_can_be_protobuf() {
        let message = event_from_flags(&args(&[
            "--kind",
            "low",
            "--tour-id",
            "tour_rome",
            "--seats",
            "2",
            "--tour-name",
            "Rome",
            "--threshold",
            "3",
            "--format",
            "proto",
        ]))
        .expect("valid");
        assert_eq!(message.routing_key, "tour.availability.low");
        assert_eq!(message.content_type, PROTOBUF_CONTENT_TYPE);
        let event = AvailabilityEvent::decode(message.payload.as_slice()).expect("protobuf");
        assert_eq!(event.tour_title.as_deref(), Some("Rome"));
        assert_eq!(event.tour_name, None);
        assert_eq!(event.threshold, Some(3));
    }

    #[test]
    fn stdin_lines_get_defaults_and_route_by_their_type() {
        let args = args(&[]);
        let message = event_from_line(
            &decoder(),
            r#"{"eventType":"tour.availability.low","tourId":"a","availableSeats":1,"threshold":2}"#,
            1,
            &args,
        )
        .expect("valid")
        .expect("not blank");
        assert_eq!(message.routing_key, "tour.availability.low");
        let json: Value = serde_json::from_slice(&message.payload).expect("JSON");
        assert!(json["eventId"].is_string());
        assert!(json["timestamp"].is_string());
        assert!(
            event_from_line(&decoder(), "   ", 2, &args)
                .expect("blank")
                .is_none()
        );
    }

    #[test]
    fn invalid_events_are_refused_before_sending() {
        let error = event_from_line(&decoder(), r#"{"availableSeats":1}"#, 4, &args(&[]))
            .expect_err("refused");
        assert!(error.to_string().contains("event 4"), "{error}");
        assert!(error.to_string().contains("tourId"), "{error}");
        assert!(matches!(
            event_from_flags(&args(&["--tour-id", "a"])),
            Err(PublishError::Usage(_))
        ));
    }

    #[test]
    fn retries_go_out_oldest_first_and_before_new_events() {
        let args = args(&[]);
        let decoder = decoder();
        let event = |line| Queued {
            line,
            message: event_from_line(
                &decoder,
                r#"{"tourId":"a","availableSeats":1}"#,
                line,
                &args,
            )
            .expect("valid")
            .expect("not blank"),
        };
        let mut sender = Sender::new(&args);
        sender.take(event(4));
        for line in [3, 1, 2] {
            sender.requeue(event(line));
        }
        let retried: Vec<usize> = sender.retry.iter().map(|q| q.line).collect();
        assert_eq!(retried, [1, 2, 3]);
        // Nothing more is read while events wait to be sent.
        assert!(!sender.wants_input());
        assert!(sender.backing_off().is_some());
    }

    #[test]
    fn retrying_lasts_a_minute_unless_told_otherwise() {
        assert_eq!(args(&[]).retry_for, Duration::from_secs(60));
        assert_eq!(args(&["--retry-for", "0s"]).retry_for, Duration::ZERO);
        assert_eq!(
            args(&["--retry-for", "2m"]).retry_for,
            Duration::from_secs(120)
        );
    }

    #[test]
    fn refused_credentials_are_not_retried_a_lost_connection_is() {
        let refused: lapin::Error = ErrorKind::AuthProviderError("no".into()).into();
        assert!(Failure::Connect(ConnectError::Amqp(refused)).permanent());
        assert!(!Failure::Connect(ConnectError::Timeout(Duration::from_secs(1))).permanent());
        let reset: lapin::Error = std::io::Error::from(std::io::ErrorKind::ConnectionReset).into();
        assert!(!Failure::Lost(reset).permanent());
        assert!(!Failure::NoConfirm.permanent());
    }

    #[test]
    fn raw_lines_are_sent_as_they_are() {
        let message = event_from_line(&decoder(), "not json", 1, &args(&["--raw"]))
            .expect("raw")
            .expect("not blank");
        assert_eq!(message.payload, b"not json");
        assert_eq!(message.routing_key, "tour.availability.updated");
    }
}
