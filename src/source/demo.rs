//! The embedded demo feed: the SPEC's three-tour catalog with random bookings,
//! so `tourcast --demo` shows a living system with no RabbitMQ at hand.
//!
//! Every `interval` a random tour with seats left loses 1 to 3 of them
//! (never below 0) and a `tour.availability.updated` is published. A tour
//! that falls to the low threshold also gets a `tour.availability.low`.
//! When every tour is sold out, all are refilled.
//!
//! Every third booking is also a `booking.confirmed` notification for the
//! demo user [`DEMO_USER`], so that a client holding a token with that
//! `sub` (`tourcast token --sub demo-user`) sees personal pushes too.
//!
//! Every [`AGENT_EVERY`]th tick a support agent posts into the room
//! [`DEMO_ROOM`], and clients' own posts go through [`DemoWriter`]: the
//! demo has no stream, so the feed's order is the order.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use rand::RngExt as _;
use tokio_util::sync::CancellationToken;

use futures_util::future::BoxFuture;

use super::{AvailabilityKind, SourceEvent, SourceState, SourceStatus, StreamWriter, WriteError};
use crate::engine::Engine;
use crate::event::{AvailabilityChange, BookingKind, BookingNotice, RoomPost};
use crate::protocol::v1::RoomEvent;

/// The user the demo feed's booking notifications are for.
pub const DEMO_USER: &str = "demo-user";

/// One booking in this many is the demo user's (and notified).
const DEMO_USER_EVERY: u64 = 3;

/// The room the demo's support agent posts into.
pub const DEMO_ROOM: &str = "support_demo";
/// The demo's support agent.
pub const DEMO_AGENT: &str = "support_agent_1";
/// The agent posts once every this many ticks.
const AGENT_EVERY: u64 = 10;
/// What the agent says, in turn.
const AGENT_LINES: [&str; 4] = [
    "Bonjour ! Comment puis-je vous aider ?",
    "Paris City Tour still has seats this weekend.",
    "Groups of more than 10 get a guide of their own.",
    "Anything else I can help you with?",
];

/// One tour of the demo catalog.
#[derive(Debug, Clone)]
pub struct DemoTour {
    /// Tour id.
    pub id: &'static str,
    /// Display name.
    pub name: &'static str,
    /// Seats when full.
    pub capacity: u32,
}

/// The catalog the platform uses in its examples.
pub const CATALOG: [DemoTour; 3] = [
    DemoTour {
        id: "tour_paris",
        name: "Paris City Tour",
        capacity: 20,
    },
    DemoTour {
        id: "tour_london",
        name: "London Eye Experience",
        capacity: 15,
    },
    DemoTour {
        id: "tour_rome",
        name: "Rome Colosseum Tour",
        capacity: 18,
    },
];

/// Settings of the demo feed.
#[derive(Debug, Clone)]
pub struct DemoConfig {
    /// Time between bookings.
    pub interval: Duration,
    /// Seats at or below which a low-availability alert is sent.
    pub low_threshold: u32,
}

/// Publishes the demo catalog at full capacity and marks the source caught
/// up. Synchronous, so that the gateway's state is complete before it
/// listens (the handshake refuses clients until then).
pub fn seed(engine: &Engine, status: &SourceStatus) {
    for tour in &CATALOG {
        engine.apply(event(AvailabilityKind::Updated, tour, tour.capacity, None));
    }
    status.set(SourceState::Connected);
}

/// Runs the demo feed until `shutdown`, starting from the seeded catalog.
pub async fn run(
    config: DemoConfig,
    engine: Arc<Engine>,
    status: SourceStatus,
    shutdown: CancellationToken,
) {
    let mut seats: Vec<u32> = CATALOG.iter().map(|t| t.capacity).collect();
    tracing::info!(tours = CATALOG.len(), interval = ?config.interval, "demo feed started");

    let mut ticker = tokio::time::interval(config.interval);
    ticker.tick().await; // the first tick is immediate; the catalog was just published
    let mut bookings = 0u64;
    let mut ticks = 0u64;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = ticker.tick() => {}
        }
        ticks += 1;
        if ticks.is_multiple_of(AGENT_EVERY) {
            let line = AGENT_LINES[(ticks / AGENT_EVERY) as usize % AGENT_LINES.len()];
            engine.apply(agent_post(line));
        }
        let before = seats.clone();
        for (kind, index, left) in next_bookings(&mut seats, config.low_threshold) {
            let threshold = (kind == AvailabilityKind::Low).then_some(config.low_threshold);
            engine.apply(event(kind, &CATALOG[index], left, threshold));
            let booked = before[index].saturating_sub(left);
            if kind == AvailabilityKind::Updated && booked > 0 {
                bookings += 1;
                if bookings.is_multiple_of(DEMO_USER_EVERY) {
                    engine.apply(notification(&CATALOG[index], booked, bookings));
                }
            }
        }
    }
    status.set(SourceState::Stopped);
}

/// One step of the simulation: the events it produces, as (kind, tour index, seats left).
fn next_bookings(seats: &mut [u32], low_threshold: u32) -> Vec<(AvailabilityKind, usize, u32)> {
    let mut rng = rand::rng();
    let open: Vec<usize> = (0..seats.len()).filter(|&i| seats[i] > 0).collect();
    if open.is_empty() {
        // Everything sold out: refill, so the demo never goes quiet.
        return CATALOG
            .iter()
            .enumerate()
            .map(|(i, tour)| {
                seats[i] = tour.capacity;
                (AvailabilityKind::Updated, i, tour.capacity)
            })
            .collect();
    }
    let index = open[rng.random_range(0..open.len())];
    let before = seats[index];
    let booked = rng.random_range(1..=3).min(before);
    seats[index] = before - booked;
    let mut events = vec![(AvailabilityKind::Updated, index, seats[index])];
    if before > low_threshold && seats[index] <= low_threshold {
        events.push((AvailabilityKind::Low, index, seats[index]));
    }
    events
}

fn agent_post(text: &str) -> SourceEvent {
    SourceEvent::Room(RoomPost {
        event_id: Some(uuid::Uuid::new_v4().to_string()),
        room: DEMO_ROOM.to_string(),
        from: DEMO_AGENT.to_string(),
        text: text.to_string(),
        data: None,
        timestamp: Utc::now(),
        position: None,
    })
}

/// Clients' room messages in the demo: applied straight to the engine,
/// beside the feed's own events (there is no stream to go through).
pub struct DemoWriter {
    engine: Arc<Engine>,
}

impl DemoWriter {
    /// A writer applying to `engine`.
    pub fn new(engine: Arc<Engine>) -> Self {
        DemoWriter { engine }
    }
}

impl StreamWriter for DemoWriter {
    fn write(&self, event: RoomEvent) -> BoxFuture<'static, Result<(), WriteError>> {
        self.engine.apply(SourceEvent::Room(RoomPost {
            event_id: event.event_id,
            room: event.room,
            from: event.from.map(|from| from.user_id).unwrap_or_default(),
            text: event.text,
            data: event.data,
            timestamp: Utc::now(),
            position: None,
        }));
        Box::pin(std::future::ready(Ok(())))
    }
}

fn notification(tour: &DemoTour, seats: u32, number: u64) -> SourceEvent {
    let plural = if seats == 1 { "" } else { "s" };
    SourceEvent::Booking(BookingNotice {
        kind: BookingKind::Confirmed,
        event_id: None,
        user_id: DEMO_USER.to_string(),
        booking_id: format!("demo_booking_{number}"),
        tour_id: tour.id.to_string(),
        tour_name: tour.name.to_string(),
        seats,
        message: format!(
            "Your booking of {seats} seat{plural} on {} is confirmed!",
            tour.name
        ),
        timestamp: Utc::now(),
        position: None,
    })
}

fn event(
    kind: AvailabilityKind,
    tour: &DemoTour,
    seats: u32,
    threshold: Option<u32>,
) -> SourceEvent {
    SourceEvent::Availability(AvailabilityChange {
        kind,
        event_id: None,
        tour_id: tour.id.to_string(),
        tour_name: Some(tour.name.to_string()),
        available_seats: seats,
        max_group_size: Some(tour.capacity),
        threshold,
        timestamp: Utc::now(),
        version: None,
        position: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bookings_never_go_negative_and_refill_when_sold_out() {
        let mut seats: Vec<u32> = CATALOG.iter().map(|t| t.capacity).collect();
        let mut lows = 0;
        let mut refills = 0;
        for _ in 0..500 {
            let before: u32 = seats.iter().sum();
            let events = next_bookings(&mut seats, 5);
            lows += events
                .iter()
                .filter(|(k, _, _)| *k == AvailabilityKind::Low)
                .count();
            if events.len() == CATALOG.len() {
                refills += 1;
            } else {
                let after: u32 = seats.iter().sum();
                assert!((1..=3).contains(&(before - after)));
            }
        }
        assert!(
            refills > 0,
            "500 bookings of 1-3 seats must sell out 53 seats"
        );
        assert!(
            lows >= 3,
            "each tour crosses the threshold before selling out"
        );
    }
}
