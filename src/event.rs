//! An event as the engine applies it: what every source produces and the
//! state folds in. Its own module, below both, so that neither the state
//! nor the engine has to import the sources.
//!
//! The stream carries more than one kind of event: availability changes
//! (tour channels) and booking notifications (a user's channel). They share
//! what the log gives every event: a position, an optional publisher id
//! (for duplicates) and a timestamp.

use chrono::{DateTime, Utc};

/// The two kinds of availability event on the platform's bus.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// `tour.availability.updated`: the tour's seat count changed.
    Updated,
    /// `tour.availability.low`: the tour fell to or below a threshold.
    Low,
}

impl EventKind {
    /// The routing key and JSON `type` of this kind.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Updated => "tour.availability.updated",
            EventKind::Low => "tour.availability.low",
        }
    }

    /// Parses a routing key or `eventType`.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "tour.availability.updated" => Some(EventKind::Updated),
            "tour.availability.low" => Some(EventKind::Low),
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
}

impl SourceEvent {
    /// The publisher's unique id, used to drop redelivered duplicates.
    pub fn event_id(&self) -> Option<&str> {
        match self {
            SourceEvent::Availability(e) => e.event_id.as_deref(),
            SourceEvent::Booking(e) => e.event_id.as_deref(),
        }
    }

    /// The event's position in the durable log, when it came from one.
    pub fn position(&self) -> Option<u64> {
        match self {
            SourceEvent::Availability(e) => e.position,
            SourceEvent::Booking(e) => e.position,
        }
    }

    /// Sets (or clears) the log position.
    pub fn set_position(&mut self, position: Option<u64>) {
        match self {
            SourceEvent::Availability(e) => e.position = position,
            SourceEvent::Booking(e) => e.position = position,
        }
    }

    /// The tour it concerns (every kind names one).
    pub fn tour_id(&self) -> &str {
        match self {
            SourceEvent::Availability(e) => &e.tour_id,
            SourceEvent::Booking(e) => &e.tour_id,
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
    /// The event's position in the durable log (see [`AvailabilityChange::position`]).
    pub position: Option<u64>,
}

/// One availability event, decoded and validated, ready to be applied.
#[derive(Debug, Clone, PartialEq)]
pub struct AvailabilityChange {
    /// Which kind of event this is.
    pub kind: EventKind,
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
    /// The event's position in a durable, ordered log (e.g. a RabbitMQ stream
    /// offset). When set it becomes the event's `seq`, so every gateway
    /// instance reading the same log numbers events identically; when unset
    /// the engine numbers the tour's events itself.
    pub position: Option<u64>,
}
