//! An event as the engine applies it: what every source produces and the
//! state folds in. Its own module, below both, so that neither the state
//! nor the engine has to import the sources.
//!
//! The stream carries more than one kind of event: availability changes
//! (tour channels), booking notifications (a user's channel) and room
//! messages (a room's channel). They share
//! what the stream gives every event: a position, an optional publisher id
//! (for duplicates) and a timestamp.

use chrono::{DateTime, Utc};

/// The two kinds of availability event on the platform's bus.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AvailabilityKind {
    /// `tour.availability.updated`: the tour's seat count changed.
    Updated,
    /// `tour.availability.low`: the tour fell to or below a threshold.
    Low,
}

impl AvailabilityKind {
    /// The routing key and JSON `type` of this kind.
    pub fn as_str(self) -> &'static str {
        match self {
            AvailabilityKind::Updated => "tour.availability.updated",
            AvailabilityKind::Low => "tour.availability.low",
        }
    }

    /// Parses a routing key or `eventType`.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "tour.availability.updated" => Some(AvailabilityKind::Updated),
            "tour.availability.low" => Some(AvailabilityKind::Low),
            _ => None,
        }
    }
}

/// One event of the stream, decoded and validated, ready to be applied.
#[derive(Debug, Clone, PartialEq)]
pub enum SourceEvent {
    /// A tour's availability changed (a tour channel).
    Availability(AvailabilityChange),
    /// A booking notification for one user (that user's channel).
    Booking(BookingNotice),
    /// A message posted into a room (that room's channel).
    Room(RoomPost),
}

impl SourceEvent {
    /// The publisher's unique id, used to drop redelivered duplicates.
    pub fn event_id(&self) -> Option<&str> {
        match self {
            SourceEvent::Availability(e) => e.event_id.as_deref(),
            SourceEvent::Booking(e) => e.event_id.as_deref(),
            SourceEvent::Room(e) => e.event_id.as_deref(),
        }
    }

    /// The event's position in the stream, when it came from one.
    pub fn position(&self) -> Option<u64> {
        match self {
            SourceEvent::Availability(e) => e.position,
            SourceEvent::Booking(e) => e.position,
            SourceEvent::Room(e) => e.position,
        }
    }

    /// Sets (or clears) the stream position.
    pub fn set_position(&mut self, position: Option<u64>) {
        match self {
            SourceEvent::Availability(e) => e.position = position,
            SourceEvent::Booking(e) => e.position = position,
            SourceEvent::Room(e) => e.position = position,
        }
    }
}

impl SourceEvent {
    /// A stable hash of what the publisher sent (not of what the receiver
    /// added, such as a receipt time): the same event read from the same
    /// stream position hashes alike in every process and build. It tells a
    /// checkpoint's last event from another one at the same position (a
    /// stream recreated under the same name).
    pub fn fingerprint(&self) -> u64 {
        let mut hash = Fnv1a::default();
        match self {
            SourceEvent::Availability(e) => {
                hash.text(e.kind.as_str());
                hash.opt_text(e.event_id.as_deref());
                hash.text(&e.tour_id);
                hash.opt_text(e.tour_name.as_deref());
                hash.number(u64::from(e.available_seats));
                hash.opt_number(e.max_group_size.map(u64::from));
                hash.opt_number(e.threshold.map(u64::from));
                hash.opt_number(e.version);
            }
            SourceEvent::Booking(e) => {
                hash.text(e.kind.routing_key());
                hash.opt_text(e.event_id.as_deref());
                hash.text(&e.user_id);
                hash.text(&e.booking_id);
                hash.text(&e.tour_id);
                hash.text(&e.tour_name);
                hash.number(u64::from(e.seats));
                hash.text(&e.message);
            }
            SourceEvent::Room(e) => {
                hash.text(ROOM_MESSAGE);
                hash.opt_text(e.event_id.as_deref());
                hash.text(&e.room);
                hash.text(&e.from);
                hash.text(&e.text);
                hash.opt_text(
                    e.data
                        .as_deref()
                        .map(|d| std::str::from_utf8(d).unwrap_or("")),
                );
            }
        }
        hash.0
    }
}

/// FNV-1a, 64-bit: stable across processes and releases (std's hasher is
/// not), and twenty lines; collisions only matter against a deliberately
/// recreated stream, where a checkpoint is then merely not used.
struct Fnv1a(u64);

impl Default for Fnv1a {
    fn default() -> Self {
        Fnv1a(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv1a {
    fn bytes(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 = (self.0 ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    fn text(&mut self, text: &str) {
        self.number(text.len() as u64);
        self.bytes(text.as_bytes());
    }
    fn opt_text(&mut self, text: Option<&str>) {
        match text {
            Some(text) => {
                self.bytes(&[1]);
                self.text(text);
            }
            None => self.bytes(&[0]),
        }
    }
    fn number(&mut self, number: u64) {
        self.bytes(&number.to_le_bytes());
    }
    fn opt_number(&mut self, number: Option<u64>) {
        match number {
            Some(number) => {
                self.bytes(&[1]);
                self.number(number);
            }
            None => self.bytes(&[0]),
        }
    }
}

impl From<AvailabilityChange> for SourceEvent {
    fn from(event: AvailabilityChange) -> Self {
        SourceEvent::Availability(event)
    }
}

impl From<BookingNotice> for SourceEvent {
    fn from(event: BookingNotice) -> Self {
        SourceEvent::Booking(event)
    }
}

impl From<RoomPost> for SourceEvent {
    fn from(event: RoomPost) -> Self {
        SourceEvent::Room(event)
    }
}

/// The routing key (and `eventType`) of a room message.
pub const ROOM_MESSAGE: &str = "room.message";

/// A message posted into a room, decoded and validated: by a client
/// through the gateway, or by a backend service on the exchange.
#[derive(Debug, Clone, PartialEq)]
pub struct RoomPost {
    /// The publisher's unique id (duplicates; the client's `messageId`).
    pub event_id: Option<String>,
    /// The room.
    pub room: String,
    /// Who posted it (a token's `sub`, a connection's `clientId`, or a
    /// backend service's name).
    pub from: String,
    /// The text.
    pub text: String,
    /// Structured content: a JSON object's text (at most 8 KiB), e.g. a
    /// collaborative edit `{"field":"description","value":"…"}`.
    pub data: Option<Vec<u8>>,
    /// When it was posted (the publisher's timestamp, or receipt time).
    pub timestamp: DateTime<Utc>,
    /// The event's position in the stream (see [`AvailabilityChange::position`]).
    pub position: Option<u64>,
}

/// The two kinds of booking notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BookingKind {
    /// `notification.booking.confirmed`.
    Confirmed,
    /// `notification.booking.cancelled`.
    Cancelled,
}

impl BookingKind {
    /// The routing key (and `eventType`) of this kind.
    pub fn routing_key(self) -> &'static str {
        match self {
            BookingKind::Confirmed => "notification.booking.confirmed",
            BookingKind::Cancelled => "notification.booking.cancelled",
        }
    }

    /// Parses a routing key or `eventType`.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "notification.booking.confirmed" => Some(BookingKind::Confirmed),
            "notification.booking.cancelled" => Some(BookingKind::Cancelled),
            _ => None,
        }
    }
}

/// A booking notification for one user, decoded and validated.
#[derive(Debug, Clone, PartialEq)]
pub struct BookingNotice {
    /// Confirmed or cancelled.
    pub kind: BookingKind,
    /// The publisher's unique id (duplicates; the client's `notificationId`).
    pub event_id: Option<String>,
    /// The user to notify (the `sub` of their tokens).
    pub user_id: String,
    /// The booking.
    pub booking_id: String,
    /// The booked tour.
    pub tour_id: String,
    /// Its display name.
    pub tour_name: String,
    /// Seats the booking holds.
    pub seats: u32,
    /// Text for the user.
    pub message: String,
    /// When it happened (the publisher's timestamp, or receipt time).
    pub timestamp: DateTime<Utc>,
    /// The event's position in the stream (see [`AvailabilityChange::position`]).
    pub position: Option<u64>,
}

/// One availability event, decoded and validated, ready to be applied.
#[derive(Debug, Clone, PartialEq)]
pub struct AvailabilityChange {
    /// Which kind of event this is.
    pub kind: AvailabilityKind,
    /// The publisher's unique id, used to drop redelivered duplicates.
    pub event_id: Option<String>,
    /// The tour the event is about.
    pub tour_id: String,
    /// The tour's display name (`tourName`, or `tourTitle` on low events).
    pub tour_name: Option<String>,
    /// Seats still bookable.
    pub available_seats: u32,
    /// Size of the largest group, when the publisher sent it.
    pub max_group_size: Option<u32>,
    /// Low events: the threshold that was crossed.
    pub threshold: Option<u32>,
    /// When the event happened (the publisher's timestamp, or receipt time).
    /// Shown to clients; never used to order events.
    pub timestamp: DateTime<Utc>,
    /// The publisher's per-tour version, when it sends one: an event whose
    /// version is not above the tour's last one is stale.
    pub version: Option<u64>,
    /// The event's position in a durable, ordered stream (e.g. a RabbitMQ stream
    /// offset). When set it becomes the event's `seq`, so every gateway
    /// instance reading the same log numbers events identically; when unset
    /// the engine numbers the tour's events itself.
    pub position: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(seats: u32, at: DateTime<Utc>) -> SourceEvent {
        SourceEvent::Availability(AvailabilityChange {
            kind: AvailabilityKind::Updated,
            event_id: Some("evt_1".into()),
            tour_id: "tour_paris".into(),
            tour_name: None,
            available_seats: seats,
            max_group_size: Some(20),
            threshold: None,
            timestamp: at,
            version: None,
            position: Some(7),
        })
    }

    #[test]
    fn a_fingerprint_is_the_publishers_fields_only_and_stable() {
        let now = Utc::now();
        // A receipt time stands in for a missing timestamp: not fingerprinted.
        assert_eq!(
            change(3, now).fingerprint(),
            change(3, now + chrono::Duration::seconds(5)).fingerprint()
        );
        assert_ne!(change(3, now).fingerprint(), change(4, now).fingerprint());
        // Stable across processes and releases: a fixed value.
        // (Checkpoints written by one build are read by the next.)
        assert_eq!(change(3, now).fingerprint(), 10_464_155_527_959_924_231);
        let mut moved = change(3, now);
        moved.set_position(Some(8));
        assert_eq!(moved.fingerprint(), change(3, now).fingerprint());
    }
}
