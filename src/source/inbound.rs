//! Inbound events: what publishers put on the exchange, decoded into
//! [`SourceEvent`]s by the [`EventDecoder`]. (Publishing itself is
//! `tourcast publish`'s, in [`crate::cli::publish`].)
//!
//! Booking and catalog services publish availability events and booking
//! notifications, and the gateway itself (for its clients) and backend
//! services publish room messages, as JSON (the SPEC's shapes, validated against the
//! generated publisher-event schemas) or as protobuf
//! `tourcast.v1.AvailabilityEvent` / `BookingEvent` / `RoomEvent` (content
//! type `application/x-protobuf`, checked by the generated `buf.validate`
//! impls, which carry the same rules), through the same
//! [decode pipeline](crate::protocol::decode) as client frames. Anything that
//! does not decode or validate
//! becomes a [`PoisonError`] naming why, with the `eventId` when it could be
//! read, so that the consumer can log and count it and move on.
//!
//! Nothing here trusts the publisher: no panics, no unbounded work. Payloads
//! over the size limit are refused before they are parsed.

use chrono::{DateTime, Duration, Utc};
use serde_json::Value;
use thiserror::Error;

use super::{AvailabilityKind, SourceEvent};
use crate::event::{AvailabilityChange, BookingKind, BookingNotice, ROOM_MESSAGE, RoomPost};
use crate::protocol::decode::{self, Refusal, Rules, truncate};
use crate::protocol::schema;
use crate::protocol::v1::{AvailabilityEvent, BookingEvent, RoomEvent};

pub use crate::protocol::decode::SchemaError;

/// Content type of protobuf-encoded events.
pub const PROTOBUF_CONTENT_TYPE: &str = "application/x-protobuf";
/// Content type of JSON-encoded events.
pub const JSON_CONTENT_TYPE: &str = "application/json";
/// Default largest payload accepted; availability events are ~200 bytes.
pub const DEFAULT_MAX_EVENT_BYTES: usize = 64 * 1024;

/// How far in the future a publisher's timestamp may be before it is
/// replaced by the receipt time: clients show it, and a page should not say
/// "updated tomorrow" because of one publisher's clock.
const MAX_CLOCK_SKEW: Duration = Duration::minutes(5);
/// Longest `eventId` copied into a poison report (the schema's own limit).
const MAX_REPORTED_ID: usize = 128;

/// Why a payload was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PoisonReason {
    /// Larger than the configured limit; not parsed at all.
    #[error("payload of {size} bytes exceeds the {max}-byte limit")]
    TooLarge {
        /// Payload size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// Not JSON (or not UTF-8).
    #[error("malformed JSON: {0}")]
    MalformedJson(String),
    /// Valid JSON, but not an object.
    #[error("an event must be a JSON object")]
    NotAnObject,
    /// Broke a rule of the publisher-event schema.
    #[error("{message} (at {path})")]
    Invalid {
        /// JSON pointer to the offending field (`/tourId`), or "" for the whole event.
        path: String,
        /// What was wrong.
        message: String,
    },
    /// Not a protobuf `AvailabilityEvent`.
    #[error("malformed protobuf: {0}")]
    MalformedProtobuf(String),
    /// Neither the `eventType` nor the routing key names an availability event.
    #[error("unknown event type {0:?}")]
    UnknownKind(String),
    /// `timestamp` is not RFC 3339.
    #[error("timestamp {0:?} is not RFC 3339")]
    BadTimestamp(String),
}

/// A payload that cannot become an event: logged, counted and skipped.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("poison event{}: {reason}", .event_id.as_deref().map(|id| format!(" {id}")).unwrap_or_default())]
pub struct PoisonError {
    /// The event's `eventId`, when the payload was readable enough to hold one.
    pub event_id: Option<String>,
    /// Why it was refused.
    pub reason: PoisonReason,
}

impl PoisonError {
    fn new(event_id: Option<String>, reason: PoisonReason) -> Self {
        PoisonError { event_id, reason }
    }

    /// A short, stable label for the reason (metrics and logs).
    pub fn label(&self) -> &'static str {
        match self.reason {
            PoisonReason::TooLarge { .. } => "too_large",
            PoisonReason::MalformedJson(_) => "malformed_json",
            PoisonReason::NotAnObject => "not_an_object",
            PoisonReason::Invalid { .. } => "invalid",
            PoisonReason::MalformedProtobuf(_) => "malformed_protobuf",
            PoisonReason::UnknownKind(_) => "unknown_type",
            PoisonReason::BadTimestamp(_) => "bad_timestamp",
        }
    }
}

impl From<Refusal> for PoisonReason {
    fn from(refusal: Refusal) -> Self {
        match refusal {
            Refusal::MalformedJson(detail) => PoisonReason::MalformedJson(detail),
            Refusal::MalformedProtobuf(detail) => PoisonReason::MalformedProtobuf(detail),
            Refusal::NotAnObject => PoisonReason::NotAnObject,
            Refusal::Invalid(violation) => PoisonReason::Invalid {
                path: violation.path,
                message: violation.message,
            },
        }
    }
}

/// One received message, as the transport saw it.
#[derive(Debug, Clone, Copy)]
pub struct Incoming<'a> {
    /// The routing key it was published with.
    pub routing_key: &'a str,
    /// Its content type, when the publisher set one.
    pub content_type: Option<&'a str>,
    /// The payload.
    pub payload: &'a [u8],
    /// When the publisher sent it (AMQP `timestamp` property), if set; used
    /// when the payload has no `timestamp` of its own.
    pub sent_at: Option<DateTime<Utc>>,
}

/// Decodes what publishers send. Build one at start-up (it compiles the
/// schema) and reuse it for every message.
pub struct EventDecoder {
    rules: Rules,
    booking_rules: Rules,
    room_rules: Rules,
    max_bytes: usize,
}

impl std::fmt::Debug for EventDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventDecoder")
            .field("max_bytes", &self.max_bytes)
            .finish_non_exhaustive()
    }
}

impl EventDecoder {
    /// Compiles the publisher-event schema; payloads over `max_bytes` are refused unread.
    pub fn new(max_bytes: usize) -> Result<Self, SchemaError> {
        let rules = Rules::compile("AvailabilityEvent", schema::availability_event())?;
        let booking_rules = Rules::compile("BookingEvent", schema::booking_event())?;
        let room_rules = Rules::compile("RoomEvent", schema::room_event())?;
        Ok(EventDecoder {
            rules,
            booking_rules,
            room_rules,
            max_bytes,
        })
    }

    /// The size limit.
    pub fn max_bytes(&self) -> usize {
        self.max_bytes
    }

    /// Decodes and validates one message. `received_at` stands in for a
    /// missing timestamp and bounds a timestamp from the future.
    pub fn decode(
        &self,
        message: Incoming<'_>,
        received_at: DateTime<Utc>,
    ) -> Result<SourceEvent, PoisonError> {
        if message.payload.len() > self.max_bytes {
            return Err(PoisonError::new(
                sniff_event_id(message.payload),
                PoisonReason::TooLarge {
                    size: message.payload.len(),
                    max: self.max_bytes,
                },
            ));
        }
        if is_protobuf(message.content_type) {
            // Protobuf carries no `eventType` to look at before decoding:
            // the routing key says which message it is.
            if message.routing_key == ROOM_MESSAGE {
                let event = decode_proto(&self.room_rules, message.payload, |e: &RoomEvent| {
                    e.event_id.as_deref()
                })?;
                return into_room(event, message, received_at);
            }
            if is_notification(message.routing_key) {
                let event =
                    decode_proto(&self.booking_rules, message.payload, |e: &BookingEvent| {
                        e.event_id.as_deref()
                    })?;
                return into_booking(event, message, received_at);
            }
            let event = decode_proto(&self.rules, message.payload, |e: &AvailabilityEvent| {
                e.event_id.as_deref()
            })?;
            return into_availability(event, message, received_at);
        }
        if let Some(event) = fast_availability(message) {
            return into_availability(event, message, received_at);
        }
        self.decode_json_in_full(message, received_at)
    }

    /// The JSON path that decides every payload: parsed, checked against
    /// the schema (which words the refusals), then typed.
    fn decode_json_in_full(
        &self,
        message: Incoming<'_>,
        received_at: DateTime<Utc>,
    ) -> Result<SourceEvent, PoisonError> {
        let value =
            decode::parse_object(message.payload).map_err(|r| PoisonError::new(None, r.into()))?;
        // The payload's `eventType` is the more specific statement; the
        // routing key decides when it is absent.
        let named = value.get("eventType").and_then(Value::as_str);
        if named.unwrap_or(message.routing_key) == ROOM_MESSAGE {
            let event = decode_json(&self.room_rules, value)?;
            into_room(event, message, received_at)
        } else if is_notification(named.unwrap_or(message.routing_key)) {
            let event = decode_json(&self.booking_rules, value)?;
            into_booking(event, message, received_at)
        } else {
            let event = decode_json(&self.rules, value)?;
            into_availability(event, message, received_at)
        }
    }
}

/// The common case, decided quickly: a JSON availability event that the
/// schema accepts, typed by serde straight from the bytes and checked by the
/// generated [`Validate`](crate::protocol::validate::Validate) impl (the same
/// rules as the schema). Building a `serde_json::Value` and walking the
/// schema over it was most of a replayed event's decoding.
///
/// `None` hands the payload to the full path, which decides it and words
/// any refusal; so this only ever accepts, and only what the full path
/// accepts the same way. Where typed serde is more lenient than the
/// schema it is not used: a `null` (serde reads it as an absent optional
/// field, the schema refuses it) or a non-object (serde reads an array as
/// a struct). Duplicate keys, wrong types and missing fields make serde
/// fail, and go the full way.
fn fast_availability(message: Incoming<'_>) -> Option<AvailabilityEvent> {
    let payload = message.payload;
    if payload.trim_ascii_start().first() != Some(&b'{')
        || payload.windows(4).any(|window| window == b"null")
    {
        return None;
    }
    let event: AvailabilityEvent = serde_json::from_slice(payload).ok()?;
    let kind_name = event.event_type.as_deref().unwrap_or(message.routing_key);
    if is_notification(kind_name) || kind_name == ROOM_MESSAGE {
        return None;
    }
    use crate::protocol::validate::Validate as _;
    event.validate("").ok()?;
    Some(event)
}

/// Whether a routing key or `eventType` names a notification
/// (`notification.booking.confirmed`, …), not an availability event.
fn is_notification(name: &str) -> bool {
    name.starts_with("notification.")
}

fn decode_json<T: serde::de::DeserializeOwned + crate::protocol::validate::Validate>(
    rules: &Rules,
    value: Value,
) -> Result<T, PoisonError> {
    let event_id = value
        .get("eventId")
        .and_then(Value::as_str)
        .map(|id| truncate(id, MAX_REPORTED_ID));
    let checked = rules.check_json(&value).map_err(Refusal::Invalid);
    checked
        .and_then(|()| decode::typed(value))
        .map_err(|r| PoisonError::new(event_id, r.into()))
}

fn decode_proto<T>(
    rules: &Rules,
    payload: &[u8],
    event_id: impl Fn(&T) -> Option<&str>,
) -> Result<T, PoisonError>
where
    T: prost::Message + Default + crate::protocol::validate::Validate,
{
    let event: T = decode::decode_proto(payload).map_err(|r| PoisonError::new(None, r.into()))?;
    if let Err(violation) = rules.check_proto(&event) {
        let event_id = event_id(&event).map(|id| truncate(id, MAX_REPORTED_ID));
        return Err(PoisonError::new(
            event_id,
            Refusal::Invalid(violation).into(),
        ));
    }
    Ok(event)
}

/// Whether a content type names protobuf (parameters and case ignored).
pub fn is_protobuf(content_type: Option<&str>) -> bool {
    let Some(content_type) = content_type else {
        return false;
    };
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    matches!(
        essence.as_str(),
        PROTOBUF_CONTENT_TYPE | "application/protobuf" | "application/vnd.google.protobuf"
    )
}

/// How far into an oversized payload we look for its `eventId`.
const SNIFF_BYTES: usize = 4096;

/// The `eventId` of a JSON payload too large to parse, when it appears as
/// `"eventId":"…"` near the start: enough to name the event in the log.
fn sniff_event_id(payload: &[u8]) -> Option<String> {
    let head = &payload[..payload.len().min(SNIFF_BYTES)];
    let text = String::from_utf8_lossy(head);
    let after_key = &text[text.find("\"eventId\"")? + "\"eventId\"".len()..];
    let value = after_key
        .trim_start()
        .strip_prefix(':')?
        .trim_start()
        .strip_prefix('"')?;
    let id = &value[..value.find('"')?];
    let plain = !id.is_empty() && id.chars().all(|c| c != '\\' && !c.is_control());
    plain.then(|| truncate(id, MAX_REPORTED_ID))
}

/// The event's time: its `timestamp` (RFC 3339), else the AMQP timestamp,
/// else the receipt time; never later than the receipt time allows.
fn event_time(
    timestamp: Option<&str>,
    event_id: Option<&str>,
    message: Incoming<'_>,
    received_at: DateTime<Utc>,
) -> Result<DateTime<Utc>, PoisonReason> {
    let timestamp = match timestamp {
        Some(text) => DateTime::parse_from_rfc3339(text)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|_| PoisonReason::BadTimestamp(truncate(text, 64)))?,
        None => message.sent_at.unwrap_or(received_at),
    };
    if timestamp > received_at + MAX_CLOCK_SKEW {
        tracing::debug!(
            event_id = event_id.unwrap_or(""),
            %timestamp,
            "event timestamp is in the future; using the receipt time"
        );
        return Ok(received_at);
    }
    Ok(timestamp)
}

/// An event's kind, parsed by `parse` from its `eventType` or, when it has
/// none, from the routing key (the old low-availability publishers never
/// set it; the payload's `eventType` is the more specific statement), and
/// its time (see [`event_time`]).
fn kind_and_time<K>(
    parse: fn(&str) -> Option<K>,
    event_type: Option<&str>,
    timestamp: Option<&str>,
    event_id: Option<&str>,
    message: Incoming<'_>,
    received_at: DateTime<Utc>,
) -> Result<(K, DateTime<Utc>), PoisonReason> {
    let name = event_type.unwrap_or(message.routing_key);
    let kind = parse(name).ok_or_else(|| PoisonReason::UnknownKind(truncate(name, 64)))?;
    Ok((kind, event_time(timestamp, event_id, message, received_at)?))
}

fn into_booking(
    event: BookingEvent,
    message: Incoming<'_>,
    received_at: DateTime<Utc>,
) -> Result<SourceEvent, PoisonError> {
    let BookingEvent {
        event_id,
        event_type,
        user_id,
        booking_id,
        tour_id,
        tour_name,
        seats,
        message: text,
        timestamp,
    } = event;
    let (kind, timestamp) = kind_and_time(
        BookingKind::from_name,
        event_type.as_deref(),
        timestamp.as_deref(),
        event_id.as_deref(),
        message,
        received_at,
    )
    .map_err(|reason| PoisonError::new(event_id.clone(), reason))?;
    Ok(SourceEvent::Booking(BookingNotice {
        kind,
        event_id,
        user_id,
        booking_id,
        tour_id,
        tour_name,
        seats,
        message: text,
        timestamp,
        position: None,
    }))
}

fn into_room(
    event: RoomEvent,
    message: Incoming<'_>,
    received_at: DateTime<Utc>,
) -> Result<SourceEvent, PoisonError> {
    let RoomEvent {
        event_id,
        event_type,
        room,
        from,
        text,
        timestamp,
        data,
    } = event;
    let (_, timestamp) = kind_and_time(
        |name| (name == ROOM_MESSAGE).then_some(()),
        event_type.as_deref(),
        timestamp.as_deref(),
        event_id.as_deref(),
        message,
        received_at,
    )
    .map_err(|reason| PoisonError::new(event_id.clone(), reason))?;
    // The schema requires `from`; a protobuf publisher that left it out
    // was refused by the same rule.
    let from = from.map(|member| member.user_id).unwrap_or_default();
    Ok(SourceEvent::Room(RoomPost {
        event_id,
        room,
        from,
        text,
        data,
        timestamp,
        position: None,
    }))
}

fn into_availability(
    event: AvailabilityEvent,
    message: Incoming<'_>,
    received_at: DateTime<Utc>,
) -> Result<SourceEvent, PoisonError> {
    let AvailabilityEvent {
        event_id,
        event_type,
        tour_id,
        tour_name,
        tour_title,
        available_seats,
        max_group_size,
        threshold,
        timestamp,
        version,
    } = event;
    let (kind, timestamp) = kind_and_time(
        AvailabilityKind::from_name,
        event_type.as_deref(),
        timestamp.as_deref(),
        event_id.as_deref(),
        message,
        received_at,
    )
    .map_err(|reason| PoisonError::new(event_id.clone(), reason))?;
    Ok(SourceEvent::Availability(AvailabilityChange {
        kind,
        event_id,
        tour_id,
        // `tourName` on updates, `tourTitle` on the old low-availability shape.
        tour_name: tour_name.or(tour_title).filter(|name| !name.is_empty()),
        available_seats,
        max_group_size,
        threshold,
        timestamp,
        version,
        position: None,
    }))
}

#[cfg(test)]
mod tests {
    use prost::Message as _;

    use super::*;

    fn availability(event: SourceEvent) -> AvailabilityChange {
        match event {
            SourceEvent::Availability(change) => change,
            other => panic!("expected an availability event, got {other:?}"),
        }
    }

    fn booking(event: SourceEvent) -> BookingNotice {
        match event {
            SourceEvent::Booking(notice) => notice,
            other => panic!("expected a booking notification, got {other:?}"),
        }
    }

    #[test]
    fn booking_notifications_decode_by_routing_key_or_event_type() {
        let payload = r#"{"eventId":"evt_b1","userId":"alice","bookingId":"booking_456","tourId":"tour_paris","tourName":"Paris City Tour","seats":2,"message":"Your booking is confirmed!","timestamp":"2025-01-08T10:30:00Z"}"#;
        let notice = decoder()
            .decode(json("notification.booking.confirmed", payload), now())
            .map(booking)
            .expect("valid notification");
        assert_eq!(notice.kind, BookingKind::Confirmed);
        assert_eq!(notice.user_id, "alice");
        assert_eq!(notice.seats, 2);
        let typed = r#"{"eventType":"notification.booking.cancelled","userId":"bob","bookingId":"b","tourId":"t","tourName":"T","seats":1,"message":"m"}"#;
        let notice = decoder()
            .decode(json("anything", typed), now())
            .map(booking)
            .expect("valid notification");
        assert_eq!(notice.kind, BookingKind::Cancelled);
        assert_eq!(notice.timestamp, now(), "receipt time stands in");
    }

    #[test]
    fn a_booking_notification_without_a_user_is_poison_and_names_its_event() {
        let payload = r#"{"eventId":"evt_b2","bookingId":"b","tourId":"t","tourName":"T","seats":1,"message":"m"}"#;
        let error = poison("notification.booking.confirmed", payload);
        assert_eq!(error.event_id.as_deref(), Some("evt_b2"));
        assert_eq!(
            error.reason,
            PoisonReason::Invalid {
                path: "/userId".into(),
                message: "userId is required".into()
            }
        );
        let unknown =
            r#"{"userId":"a","bookingId":"b","tourId":"t","tourName":"T","seats":1,"message":"m"}"#;
        assert_eq!(
            poison("notification.booking.refunded", unknown).label(),
            "unknown_type"
        );
    }

    #[test]
    fn a_protobuf_booking_notification_is_decoded_by_its_routing_key() {
        let event = BookingEvent {
            user_id: "alice".into(),
            booking_id: "b1".into(),
            tour_id: "tour_rome".into(),
            tour_name: "Rome".into(),
            seats: 3,
            message: "ok".into(),
            ..BookingEvent::default()
        };
        let payload = event.encode_to_vec();
        let notice = decoder()
            .decode(
                proto_message("notification.booking.confirmed", &payload),
                now(),
            )
            .map(booking)
            .expect("valid notification");
        assert_eq!((notice.user_id.as_str(), notice.seats), ("alice", 3));
    }

    fn decoder() -> EventDecoder {
        EventDecoder::new(DEFAULT_MAX_EVENT_BYTES).expect("schema compiles")
    }

    fn json<'a>(routing_key: &'a str, payload: &'a str) -> Incoming<'a> {
        Incoming {
            routing_key,
            content_type: Some(JSON_CONTENT_TYPE),
            payload: payload.as_bytes(),
            sent_at: None,
        }
    }

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2025-01-08T10:31:00Z")
            .expect("valid")
            .with_timezone(&Utc)
    }

    #[test]
    fn decodes_the_spec_updated_shape() {
        let payload = r#"{"eventId":"evt_1736330000000","eventType":"tour.availability.updated","tourId":"tour_123","availableSeats":8,"timestamp":"2025-01-08T10:30:00.000Z"}"#;
        let event = decoder()
            .decode(json("tour.availability.updated", payload), now())
            .map(availability)
            .expect("valid event");
        assert_eq!(event.kind, AvailabilityKind::Updated);
        assert_eq!(event.event_id.as_deref(), Some("evt_1736330000000"));
        assert_eq!(event.tour_id, "tour_123");
        assert_eq!(event.available_seats, 8);
        assert_eq!(event.tour_name, None);
        assert_eq!(event.timestamp.to_rfc3339(), "2025-01-08T10:30:00+00:00");
        assert_eq!(event.position, None);
    }

    #[test]
    fn decodes_the_spec_low_shape_without_id_or_timestamp() {
        let payload = r#"{"tourId":"tour_alps","tourTitle":"Randonnée Montagne","availableSeats":3,"maxGroupSize":15,"threshold":3}"#;
        let event = decoder()
            .decode(json("tour.availability.low", payload), now())
            .map(availability)
            .expect("valid event");
        assert_eq!(event.kind, AvailabilityKind::Low);
        assert_eq!(event.event_id, None);
        assert_eq!(event.tour_name.as_deref(), Some("Randonnée Montagne"));
        assert_eq!(event.max_group_size, Some(15));
        assert_eq!(event.threshold, Some(3));
        assert_eq!(event.timestamp, now(), "receipt time stands in");
    }

    #[test]
    fn optional_fields_and_unknown_fields_are_accepted() {
        let payload = r#"{"tourId":"tour_paris","tourName":"Paris City Tour","maxGroupSize":20,"availableSeats":5,"publisher":"booking-v2"}"#;
        let event = decoder()
            .decode(json("tour.availability.updated", payload), now())
            .map(availability)
            .expect("valid event");
        assert_eq!(event.tour_name.as_deref(), Some("Paris City Tour"));
        assert_eq!(event.max_group_size, Some(20));
    }

    #[test]
    fn the_amqp_timestamp_stands_in_for_a_missing_one() {
        let sent = now() - Duration::seconds(30);
        let mut message = json(
            "tour.availability.updated",
            r#"{"tourId":"a","availableSeats":1}"#,
        );
        message.sent_at = Some(sent);
        let event = decoder()
            .decode(message, now())
            .map(availability)
            .expect("valid event");
        assert_eq!(event.timestamp, sent);
    }

    #[test]
    fn a_timestamp_from_the_future_is_replaced_by_the_receipt_time() {
        let payload = r#"{"tourId":"a","availableSeats":1,"timestamp":"2030-01-01T00:00:00Z"}"#;
        let event = decoder()
            .decode(json("tour.availability.updated", payload), now())
            .map(availability)
            .expect("valid event");
        assert_eq!(event.timestamp, now());
    }

    #[test]
    fn event_type_wins_over_the_routing_key() {
        let payload = r#"{"eventType":"tour.availability.low","tourId":"a","availableSeats":1,"threshold":2}"#;
        let event = decoder()
            .decode(json("tour.availability.updated", payload), now())
            .map(availability)
            .expect("valid event");
        assert_eq!(event.kind, AvailabilityKind::Low);
    }

    /// The fast path decides exactly as the full path, on payloads at
    /// the edges of what it takes: the same event, or the same refusal in
    /// the same words.
    #[test]
    fn the_fast_path_decides_as_the_full_path() {
        let decoder = decoder();
        let payloads = [
            r#"{"eventId":"e1","tourId":"tour_paris","tourName":"Paris","availableSeats":8,"maxGroupSize":20,"timestamp":"2025-01-08T10:30:00.000Z"}"#,
            r#"  {"tourId":"t","availableSeats":0}"#,
            r#"{"tourId":"t","availableSeats":8,"extra":{"nested":[1,2,{"x":true}]}}"#,
            r#"{"tourId":"t","availableSeats":8,"eventId":null}"#,
            r#"{"tourId":"t","availableSeats":8,"tourName":"nullarbor"}"#,
            r#"{"tourId":"t","availableSeats":8,"tourId":"u"}"#,
            r#"{"tourId":"t","availableSeats":8.0}"#,
            r#"{"tourId":"t","availableSeats":"8"}"#,
            r#"{"tourId":"t","availableSeats":-1}"#,
            r#"{"tourId":"t","availableSeats":1000001}"#,
            r#"{"tourId":"t","availableSeats":4294967296}"#,
            r#"{"tourId":"bad id","availableSeats":1}"#,
            r#"{"tourId":"","availableSeats":1}"#,
            r#"{"availableSeats":1}"#,
            r#"{"tourId":"t"}"#,
            r#"{"tourId":"t","availableSeats":1,"eventId":""}"#,
            r#"{"tourId":"t","availableSeats":1,"timestamp":"yesterday"}"#,
            r#"{"tourId":"t","availableSeats":1,"eventType":"tour.availability.low","threshold":3}"#,
            r#"{"tourId":"t","availableSeats":1,"eventType":"tour.availability.gone"}"#,
            r#"{"tourId":"t","availableSeats":1,"eventType":"notification.booking.confirmed"}"#,
            r#"{"tourId":"t","availableSeats":1,"version":18446744073709551615}"#,
            r#"{"tourId":"t","availableSeats":1,"tourName":"é"}"#,
            r#"["t",1]"#,
            r#"{"tourId":"t","availableSeats":1} trailing"#,
            r#"not json"#,
        ];
        let long_name = format!(
            r#"{{"tourId":"t","availableSeats":1,"tourName":"{}"}}"#,
            "é".repeat(257)
        );
        for payload in payloads.iter().copied().chain([long_name.as_str()]) {
            for routing_key in [
                "tour.availability.updated",
                "tour.availability.low",
                "other",
            ] {
                let message = json(routing_key, payload);
                let full = decoder.decode_json_in_full(message, now());
                assert_eq!(
                    decoder.decode(message, now()),
                    full,
                    "{routing_key} {payload}"
                );
                if fast_availability(message).is_some() {
                    // What it takes, the schema takes.
                    let value = decode::parse_object(payload.as_bytes()).expect("an object");
                    assert!(decoder.rules.check_json(&value).is_ok(), "{payload}");
                }
            }
        }
        // The common shape does take the fast path.
        assert!(fast_availability(json("tour.availability.updated", payloads[0])).is_some());
    }

    fn poison(routing_key: &str, payload: &str) -> PoisonError {
        decoder()
            .decode(json(routing_key, payload), now())
            .expect_err("poison")
    }

    #[test]
    fn not_json_is_poison() {
        let error = poison("tour.availability.updated", "hello there");
        assert_eq!(error.label(), "malformed_json");
        assert_eq!(error.event_id, None);
        let error = decoder()
            .decode(
                Incoming {
                    payload: &[0xff, 0xfe, 0x00],
                    ..json("tour.availability.updated", "")
                },
                now(),
            )
            .expect_err("poison");
        assert_eq!(error.label(), "malformed_json");
    }

    #[test]
    fn a_non_object_is_poison() {
        assert_eq!(
            poison("tour.availability.updated", "[1,2]").reason,
            PoisonReason::NotAnObject
        );
        assert_eq!(
            poison("tour.availability.updated", "null").reason,
            PoisonReason::NotAnObject
        );
    }

    #[test]
    fn a_missing_tour_id_is_poison_with_its_path_and_event_id() {
        let error = poison(
            "tour.availability.updated",
            r#"{"eventId":"evt_9","availableSeats":3}"#,
        );
        assert_eq!(error.event_id.as_deref(), Some("evt_9"));
        assert_eq!(
            error.reason,
            PoisonReason::Invalid {
                path: "/tourId".into(),
                message: "tourId is required".into()
            }
        );
        assert!(error.to_string().contains("evt_9"), "{error}");
    }

    #[test]
    fn wrong_types_are_poison() {
        for payload in [
            r#"{"eventId":"e","tourId":"a","availableSeats":"eight"}"#,
            r#"{"eventId":"e","tourId":"a","availableSeats":-1}"#,
            r#"{"eventId":"e","tourId":"a","availableSeats":1.5}"#,
            r#"{"eventId":"e","tourId":42,"availableSeats":1}"#,
            r#"{"eventId":"e","tourId":"a","availableSeats":1,"maxGroupSize":null}"#,
            r#"{"eventId":"e","tourId":"a","availableSeats":4294967296}"#,
            r#"{"eventId":"e","tourId":"has spaces","availableSeats":1}"#,
        ] {
            let error = poison("tour.availability.updated", payload);
            assert_eq!(error.label(), "invalid", "{payload}: {error}");
            assert_eq!(error.event_id.as_deref(), Some("e"));
            let PoisonReason::Invalid { path, .. } = &error.reason else {
                unreachable!()
            };
            assert!(path.starts_with('/'), "{payload}: path {path:?}");
        }
    }

    #[test]
    fn an_unknown_kind_is_poison() {
        let error = poison("tour.created", r#"{"tourId":"a","availableSeats":1}"#);
        assert_eq!(
            error.reason,
            PoisonReason::UnknownKind("tour.created".into())
        );
        let error = poison(
            "tour.availability.updated",
            r#"{"eventType":"tour.deleted","tourId":"a","availableSeats":1}"#,
        );
        assert_eq!(error.label(), "unknown_type");
    }

    #[test]
    fn a_bad_timestamp_is_poison() {
        let error = poison(
            "tour.availability.updated",
            r#"{"eventId":"e1","tourId":"a","availableSeats":1,"timestamp":"yesterday"}"#,
        );
        assert_eq!(error.label(), "bad_timestamp");
        assert_eq!(error.event_id.as_deref(), Some("e1"));
    }

    #[test]
    fn a_huge_payload_is_refused_unread() {
        let decoder = EventDecoder::new(1024).expect("schema compiles");
        let payload = format!(
            r#"{{"eventId" : "evt_big","tourId":"a","availableSeats":1,"tourName":"{}"}}"#,
            "x".repeat(2000)
        );
        let error = decoder
            .decode(json("tour.availability.updated", &payload), now())
            .expect_err("poison");
        assert_eq!(
            error.reason,
            PoisonReason::TooLarge {
                size: payload.len(),
                max: 1024
            }
        );
        assert_eq!(
            error.event_id.as_deref(),
            Some("evt_big"),
            "named in the log"
        );
        let error = decoder
            .decode(json("tour.availability.updated", &"y".repeat(5000)), now())
            .expect_err("poison");
        assert_eq!(error.event_id, None);
    }

    fn proto(event: &AvailabilityEvent) -> Vec<u8> {
        event.encode_to_vec()
    }

    fn proto_message<'a>(routing_key: &'a str, payload: &'a [u8]) -> Incoming<'a> {
        Incoming {
            routing_key,
            content_type: Some(PROTOBUF_CONTENT_TYPE),
            payload,
            sent_at: None,
        }
    }

    #[test]
    fn decodes_protobuf_events() {
        let payload = proto(&AvailabilityEvent {
            event_id: Some("evt_p1".into()),
            tour_id: "tour_rome".into(),
            tour_name: Some("Rome Colosseum Tour".into()),
            available_seats: 4,
            max_group_size: Some(18),
            timestamp: Some("2025-01-08T10:30:00Z".into()),
            ..Default::default()
        });
        let event = decoder()
            .decode(proto_message("tour.availability.updated", &payload), now())
            .map(availability)
            .expect("valid event");
        assert_eq!(event.kind, AvailabilityKind::Updated);
        assert_eq!(event.event_id.as_deref(), Some("evt_p1"));
        assert_eq!(event.tour_id, "tour_rome");
        assert_eq!(event.tour_name.as_deref(), Some("Rome Colosseum Tour"));
        assert_eq!(event.available_seats, 4);
        assert_eq!(event.max_group_size, Some(18));
    }

    #[test]
    fn protobuf_content_types_are_recognised() {
        assert!(is_protobuf(Some("application/x-protobuf")));
        assert!(is_protobuf(Some(
            "Application/X-Protobuf; proto=tourcast.v1.AvailabilityEvent"
        )));
        assert!(is_protobuf(Some("application/protobuf")));
        assert!(!is_protobuf(Some("application/json")));
        assert!(!is_protobuf(None));
    }

    #[test]
    fn invalid_protobuf_events_are_poison_with_the_same_paths() {
        let payload = proto(&AvailabilityEvent {
            event_id: Some("evt_p2".into()),
            available_seats: 4,
            ..Default::default()
        });
        let error = decoder()
            .decode(proto_message("tour.availability.updated", &payload), now())
            .expect_err("poison");
        assert_eq!(error.event_id.as_deref(), Some("evt_p2"));
        let PoisonReason::Invalid { path, .. } = &error.reason else {
            panic!("expected a violation, got {error}")
        };
        assert_eq!(path, "/tourId");

        let error = decoder()
            .decode(
                proto_message("tour.availability.updated", b"\xff\xff\xff not protobuf"),
                now(),
            )
            .expect_err("poison");
        assert_eq!(error.label(), "malformed_protobuf");
    }

    #[test]
    fn json_sent_with_a_protobuf_content_type_is_poison() {
        let error = decoder()
            .decode(
                proto_message(
                    "tour.availability.updated",
                    br#"{"tourId":"a","availableSeats":1}"#,
                ),
                now(),
            )
            .expect_err("poison");
        assert!(
            matches!(error.label(), "malformed_protobuf" | "invalid"),
            "{error}"
        );
    }
}
