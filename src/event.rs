//! An event as the engine applies it: what every source produces and the
//! state folds in. Its own module, below both, so that neither the state
//! nor the engine has to import the sources.

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

/// One availability event, decoded and validated, ready to be applied.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceEvent {
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
