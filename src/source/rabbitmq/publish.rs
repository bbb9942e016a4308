//! `tourcast publish`: publishes availability events to the exchange, the
//! way the booking and catalog services do. It is the tool for trying the
//! system and scripting demos:
//!
//! ```text
//! tourcast publish --tour-id tour_paris --seats 3
//! tourcast publish --kind low --tour-id tour_rome --seats 2 --threshold 3 --format proto
//! echo '{"tourId":"tour_london","availableSeats":7}' | tourcast publish
//! ```
//!
//! Events are validated before they are sent (what the gateway would refuse
//! is refused here), get an `eventId` and a `timestamp` when they lack one,
//! and are published persistent, mandatory, with publisher confirms: the
//! command fails if RabbitMQ did not take the event, or if no queue is bound
//! to receive it. `--raw` sends stdin lines exactly as they are, to try how
//! the gateway handles bad input.

use std::time::Duration;

use chrono::{SecondsFormat, Utc};
use clap::{Args, ValueEnum};
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Confirmation, Connection, ConnectionProperties, ExchangeKind};
use prost::Message as _;
use serde_json::Value;
use thiserror::Error;
use tokio::io::AsyncBufReadExt as _;

use super::topology::is_precondition_failed;
use super::{parse_amqp_name, parse_amqp_url};
use crate::protocol::v1::AvailabilityEvent;
use crate::source::EventKind;
use crate::source::publisher::{
    DEFAULT_MAX_EVENT_BYTES, Incoming, JSON_CONTENT_TYPE, PROTOBUF_CONTENT_TYPE, PoisonError,
    PublisherDecoder, SchemaError,
};

/// How long the broker may take to confirm everything published.
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(30);
/// Publish this many events before waiting for their confirms.
const CONFIRM_BATCH: usize = 1_000;

/// Arguments of `tourcast publish`.
#[derive(Debug, Clone, Args)]
pub struct PublishArgs {
    /// AMQP URL of the broker.
    #[arg(
        long = "rabbitmq-url",
        env = "RABBITMQ_URL",
        default_value = "amqp://guest:guest@localhost:5672",
        value_parser = parse_amqp_url,
        hide_env_values = true
    )]
    pub url: String,

    /// Topic exchange to publish to.
    #[arg(
        long = "rabbitmq-exchange",
        env = "RABBITMQ_EXCHANGE",
        default_value = "tour_booking_events",
        value_parser = parse_amqp_name
    )]
    pub exchange: String,

    /// Kind of event (its routing key is `tour.availability.<kind>`).
    #[arg(long, value_enum, default_value_t = Kind::Updated)]
    pub kind: Kind,

    /// Tour id. Without it, events are read from stdin, one JSON object per line.
    #[arg(long)]
    pub tour_id: Option<String>,

    /// Seats still bookable (required with --tour-id).
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

    /// Payload encoding.
    #[arg(long, value_enum, default_value_t = Format::Json)]
    pub format: Format,

    /// Routing key (default: the event's kind).
    #[arg(long, value_parser = parse_amqp_name)]
    pub routing_key: Option<String>,

    /// Publish stdin lines exactly as they are: no validation, no defaults.
    #[arg(long, conflicts_with = "tour_id")]
    pub raw: bool,
}

/// The event kinds, as `--kind` names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Kind {
    /// `tour.availability.updated`
    Updated,
    /// `tour.availability.low`
    Low,
}

impl From<Kind> for EventKind {
    fn from(kind: Kind) -> Self {
        match kind {
            Kind::Updated => EventKind::Updated,
            Kind::Low => EventKind::Low,
        }
    }
}

/// Payload encodings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// JSON, `application/json`.
    Json,
    /// Protobuf `tourcast.v1.AvailabilityEvent`, `application/x-protobuf`.
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
    /// RabbitMQ failed.
    #[error("RabbitMQ: {0}")]
    Amqp(#[from] lapin::Error),
    /// No queue is bound for the routing key: RabbitMQ dropped the event.
    #[error(
        "no queue is bound to exchange {exchange:?} for {routing_key:?}: RabbitMQ dropped the \
         event (start a gateway once, it declares and binds its stream)"
    )]
    Unroutable {
        /// The exchange.
        exchange: String,
        /// The routing key.
        routing_key: String,
    },
    /// RabbitMQ refused the event.
    #[error("RabbitMQ refused event {0}")]
    Nacked(String),
    /// RabbitMQ did not confirm in time.
    #[error("RabbitMQ did not confirm the events within {0:?}")]
    Timeout(Duration),
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

fn now_rfc3339() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Builds the event that the flags describe.
pub fn event_from_flags(args: &PublishArgs) -> Result<Outgoing, PublishError> {
    let Some(tour_id) = args.tour_id.clone() else {
        return Err(PublishError::Usage("--tour-id is required".into()));
    };
    let Some(seats) = args.seats else {
        return Err(PublishError::Usage(
            "--seats is required with --tour-id".into(),
        ));
    };
    let kind = EventKind::from(args.kind);
    let event = AvailabilityEvent {
        event_id: Some(args.event_id.clone().unwrap_or_else(new_event_id)),
        event_type: Some(kind.as_str().into()),
        tour_id,
        // The SPEC's low events carry `tourTitle`; updates carry `tourName`.
        tour_name: args
            .tour_name
            .clone()
            .filter(|_| kind == EventKind::Updated),
        tour_title: args.tour_name.clone().filter(|_| kind == EventKind::Low),
        available_seats: seats,
        max_group_size: args.max_group_size,
        threshold: args.threshold,
        timestamp: Some(args.timestamp.clone().unwrap_or_else(now_rfc3339)),
        version: None,
    };
    let value = serde_json::to_value(&event)
        .map_err(|e| PublishError::Usage(format!("cannot encode the event: {e}")))?;
    let decoder = PublisherDecoder::new(DEFAULT_MAX_EVENT_BYTES)?;
    prepare(&decoder, value, args, 1)
}

/// Turns one stdin line into a message (`None` for a blank line).
pub fn event_from_line(
    decoder: &PublisherDecoder,
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
            .unwrap_or_else(|| EventKind::from(args.kind).as_str().to_string());
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
            reason: crate::source::publisher::PoisonReason::MalformedJson(e.to_string()),
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
    decoder: &PublisherDecoder,
    value: Value,
    args: &PublishArgs,
    number: usize,
) -> Result<Outgoing, PublishError> {
    let json = serde_json::to_vec(&value)
        .map_err(|e| PublishError::Usage(format!("cannot encode the event: {e}")))?;
    let default_key = EventKind::from(args.kind).as_str();
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
    let routing_key = args
        .routing_key
        .clone()
        .unwrap_or_else(|| event.kind.as_str().to_string());
    let summary = format!(
        "{routing_key} {} tour={} seats={}",
        event.event_id.as_deref().unwrap_or("-"),
        event.tour_id,
        event.available_seats
    );
    let (content_type, payload) = match args.format {
        Format::Json => (JSON_CONTENT_TYPE, json),
        Format::Proto => {
            let typed: AvailabilityEvent =
                serde_json::from_value(value).map_err(|e| PublishError::Invalid {
                    line: number,
                    error: PoisonError {
                        event_id: event.event_id.clone(),
                        reason: crate::source::publisher::PoisonReason::Invalid {
                            path: String::new(),
                            message: e.to_string(),
                        },
                    },
                })?;
            (PROTOBUF_CONTENT_TYPE, typed.encode_to_vec())
        }
    };
    Ok(Outgoing {
        routing_key,
        content_type,
        payload,
        event_id: event.event_id,
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
    pub async fn connect(url: &str, exchange: &str) -> Result<Self, PublishError> {
        let properties =
            ConnectionProperties::default().with_connection_name("tourcast publish".into());
        let connection = Connection::connect(url, properties).await?;
        let mut channel = connection.create_channel().await?;
        let options = ExchangeDeclareOptions {
            durable: true,
            ..ExchangeDeclareOptions::default()
        };
        if let Err(error) = channel
            .exchange_declare(
                exchange.into(),
                ExchangeKind::Topic,
                options,
                FieldTable::default(),
            )
            .await
        {
            if !is_precondition_failed(&error) {
                return Err(error.into());
            }
            // It exists with other settings: publish to it as it is.
            channel = connection.create_channel().await?;
        }
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        Ok(Publisher {
            connection,
            channel,
            exchange: exchange.to_string(),
        })
    }

    /// Publishes messages and waits until RabbitMQ confirms every one.
    pub async fn publish_all(&self, messages: &[Outgoing]) -> Result<(), PublishError> {
        let mut pending = Vec::with_capacity(messages.len().min(CONFIRM_BATCH));
        for message in messages {
            let mut properties = BasicProperties::default()
                .with_content_type(message.content_type.into())
                .with_delivery_mode(2)
                .with_app_id("tourcast-publish".into())
                .with_timestamp(u64::try_from(Utc::now().timestamp()).unwrap_or_default());
            if let Some(id) = message.event_id.as_deref().filter(|id| id.len() <= 255) {
                properties = properties.with_message_id(id.into());
            }
            let confirm = self
                .channel
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
                .await?;
            pending.push((message, confirm));
            if pending.len() >= CONFIRM_BATCH {
                self.confirm(std::mem::take(&mut pending)).await?;
            }
        }
        self.confirm(pending).await
    }

    async fn confirm(
        &self,
        pending: Vec<(&Outgoing, lapin::PublisherConfirm)>,
    ) -> Result<(), PublishError> {
        let wait = async {
            for (message, confirm) in pending {
                match confirm.await? {
                    Confirmation::Ack(None) | Confirmation::NotRequested => {}
                    Confirmation::Ack(Some(_returned)) => {
                        return Err(PublishError::Unroutable {
                            exchange: self.exchange.clone(),
                            routing_key: message.routing_key.clone(),
                        });
                    }
                    Confirmation::Nack(_) => {
                        return Err(PublishError::Nacked(message.summary.clone()));
                    }
                }
            }
            Ok(())
        };
        tokio::time::timeout(CONFIRM_TIMEOUT, wait)
            .await
            .map_err(|_| PublishError::Timeout(CONFIRM_TIMEOUT))?
    }

    /// Closes the connection.
    pub async fn close(self) {
        let _ = self.connection.close(200, "published".into()).await;
    }
}

/// Runs `tourcast publish`: events from the flags, or from stdin.
pub async fn run(args: PublishArgs) -> Result<(), PublishError> {
    let messages = if args.tour_id.is_some() {
        vec![event_from_flags(&args)?]
    } else {
        let decoder = PublisherDecoder::new(DEFAULT_MAX_EVENT_BYTES)?;
        let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
        let mut messages = Vec::new();
        let mut number = 0;
        while let Some(line) = lines.next_line().await? {
            number += 1;
            if let Some(message) = event_from_line(&decoder, &line, number, &args)? {
                messages.push(message);
            }
        }
        if messages.is_empty() {
            return Err(PublishError::Usage(
                "nothing to publish: give --tour-id and --seats, or JSON events on stdin".into(),
            ));
        }
        messages
    };
    let publisher = Publisher::connect(&args.url, &args.exchange).await?;
    let result = publisher.publish_all(&messages).await;
    publisher.close().await;
    result?;
    for message in &messages {
        println!("published {} to {}", message.summary, args.exchange);
    }
    Ok(())
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

    fn decoder() -> PublisherDecoder {
        PublisherDecoder::new(DEFAULT_MAX_EVENT_BYTES).expect("schema compiles")
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
    fn raw_lines_are_sent_as_they_are() {
        let message = event_from_line(&decoder(), "not json", 1, &args(&["--raw"]))
            .expect("raw")
            .expect("not blank");
        assert_eq!(message.payload, b"not json");
        assert_eq!(message.routing_key, "tour.availability.updated");
    }
}
