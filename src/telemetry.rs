//! Prometheus metrics: every name in one place, recorded through the
//! `metrics` facade and rendered by `metrics-exporter-prometheus` at
//! `/metrics`. Without an installed recorder (library tests) recording is a
//! no-op.

use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder, PrometheusHandle};

/// Open WebSocket connections, by `encoding`.
pub const CONNECTIONS_OPEN: &str = "tourcast_connections_open";
/// Accepted WebSocket connections, by `encoding`.
pub const CONNECTIONS_TOTAL: &str = "tourcast_connections_total";
/// Handshakes refused before the upgrade, by `reason` (including pending
/// connections closed by the header-read timeout or the pending cap).
pub const HANDSHAKE_REFUSALS: &str = "tourcast_handshake_refusals_total";
/// TCP connections accepted that have not upgraded (nor been closed) yet.
pub const PENDING_CONNECTIONS: &str = "tourcast_pending_connections";
/// Connections closed, by `reason`.
pub const DISCONNECTS: &str = "tourcast_disconnects_total";
/// Valid client messages, by `type`.
pub const CLIENT_MESSAGES: &str = "tourcast_client_messages_total";
/// Error replies sent to clients, by `code`.
pub const CLIENT_ERRORS: &str = "tourcast_client_errors_total";
/// Client messages dropped by the rate limit.
pub const RATE_LIMITED: &str = "tourcast_rate_limited_total";
/// Events from the source, by `outcome` (applied, duplicate, stale, poison).
pub const EVENTS: &str = "tourcast_events_total";
/// Frames queued to clients (events and replies).
pub const DELIVERIES: &str = "tourcast_deliveries_total";
/// Clients disconnected because their outbound queue was full.
pub const SLOW_DISCONNECTS: &str = "tourcast_slow_client_disconnects_total";
/// Time from an event being consumed to it being queued for every recipient.
pub const FANOUT_SECONDS: &str = "tourcast_event_fanout_seconds";
/// 1 while the event source is connected, by `source`.
pub const SOURCE_UP: &str = "tourcast_event_source_up";
/// Times the event source lost its connection, by `source`.
pub const SOURCE_RECONNECTS: &str = "tourcast_event_source_reconnects_total";
/// Deliveries received from the RabbitMQ stream.
pub const RABBITMQ_DELIVERIES: &str = "tourcast_rabbitmq_deliveries_total";
/// Publisher messages that did not decode or validate, by `reason`.
pub const RABBITMQ_POISON: &str = "tourcast_rabbitmq_poison_total";
/// Stream deliveries skipped because their offset was applied before a reconnect.
pub const RABBITMQ_REDELIVERED: &str = "tourcast_rabbitmq_redelivered_total";
/// One past the offset of the last stream delivery handled.
pub const RABBITMQ_STREAM_OFFSET: &str = "tourcast_rabbitmq_stream_next_offset";
/// Tours seeded from the catalog service.
/// Checkpoints written, loaded and skipped, by `outcome`.
pub const CHECKPOINTS: &str = "tourcast_checkpoints_total";
/// Catalog tours.
pub const CATALOG_TOURS: &str = "tourcast_catalog_tours";
/// Failed catalog bootstrap attempts.
pub const CATALOG_FAILURES: &str = "tourcast_catalog_failures_total";
/// Clients' room `publish`es, by outcome (`written` to the stream,
/// `unavailable`: the broker did not confirm, `refused` before writing).
pub const ROOM_PUBLISHES: &str = "tourcast_room_publishes_total";
/// Rooms with members, on any instance.
pub const PRESENCE_ROOMS: &str = "tourcast_presence_rooms";
/// Users in rooms, on any instance, summed over the rooms.
pub const PRESENCE_MEMBERS: &str = "tourcast_presence_members";
/// `presence` frames queued to clients.
pub const PRESENCE_FRAMES: &str = "tourcast_presence_frames_total";

/// Installs the global Prometheus recorder; keep the handle to render.
pub fn install() -> Result<PrometheusHandle, BuildError> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full(FANOUT_SECONDS.into()),
            &[
                0.000_01, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.05,
            ],
        )?
        .install_recorder()?;
    describe();
    Ok(handle)
}

/// Records an event outcome (sources record `poison` themselves).
pub fn event_outcome(outcome: &'static str) {
    metrics::counter!(EVENTS, "outcome" => outcome).increment(1);
}

fn describe() {
    describe_gauge!(
        CONNECTIONS_OPEN,
        "Open connections, by encoding and transport (websocket, sse)."
    );
    describe_counter!(
        CONNECTIONS_TOTAL,
        "Accepted connections, by encoding and transport (websocket, sse)."
    );
    describe_counter!(
        HANDSHAKE_REFUSALS,
        "Connections refused at admission (before an upgrade or an event stream), by reason."
    );
    describe_gauge!(
        PENDING_CONNECTIONS,
        "TCP connections accepted that have not upgraded yet."
    );
    describe_counter!(DISCONNECTS, "Connections closed, by reason and transport.");
    describe_counter!(CLIENT_MESSAGES, "Valid client messages, by type.");
    describe_counter!(CLIENT_ERRORS, "Error replies sent to clients, by code.");
    describe_counter!(
        RATE_LIMITED,
        "Client messages dropped by the per-connection rate limit."
    );
    describe_counter!(EVENTS, "Events from the event source, by outcome.");
    describe_counter!(DELIVERIES, "Frames queued to clients.");
    describe_counter!(
        SLOW_DISCONNECTS,
        "Clients disconnected because their outbound queue was full."
    );
    describe_histogram!(
        FANOUT_SECONDS,
        Unit::Seconds,
        "Time from an event being consumed to it being queued for every recipient."
    );
    describe_gauge!(SOURCE_UP, "1 while the event source is connected.");
    describe_counter!(
        SOURCE_RECONNECTS,
        "Times the event source lost its connection."
    );
    describe_counter!(
        RABBITMQ_DELIVERIES,
        "Deliveries received from the RabbitMQ stream."
    );
    describe_counter!(
        RABBITMQ_POISON,
        "Publisher messages that did not decode or validate, by reason; skipped."
    );
    describe_counter!(
        RABBITMQ_REDELIVERED,
        "Stream deliveries skipped because they were applied before a reconnect."
    );
    describe_gauge!(
        RABBITMQ_STREAM_OFFSET,
        "One past the offset of the last RabbitMQ stream delivery handled."
    );
    describe_gauge!(CATALOG_TOURS, "Tours seeded from the catalog service.");
    describe_counter!(CATALOG_FAILURES, "Failed catalog bootstrap attempts.");
    describe_gauge!(PRESENCE_ROOMS, "Rooms with members, on any instance.");
    describe_gauge!(
        PRESENCE_MEMBERS,
        "Users in rooms, on any instance, summed over the rooms."
    );
    describe_counter!(PRESENCE_FRAMES, "presence frames queued to clients.");
}

/// Rate-limits one kind of log line, so that an attack (thousands of
/// refused handshakes a second) cannot flood the logs, while the counters
/// stay exact: at most one line per `interval`, and the line that gets
/// through says how many were held back since the previous one.
///
/// Hand-written: `tracing` has no sampling, and a per-callsite limiter is
/// two atomics.
pub struct LogThrottle {
    interval_ms: u64,
    /// Milliseconds since [`process_start`] of the last line let through,
    /// plus one (0: none yet).
    last_ms: std::sync::atomic::AtomicU64,
    suppressed: std::sync::atomic::AtomicU64,
}

impl LogThrottle {
    /// A throttle letting one line through per `interval_ms` milliseconds.
    pub const fn per_millis(interval_ms: u64) -> Self {
        LogThrottle {
            interval_ms,
            last_ms: std::sync::atomic::AtomicU64::new(0),
            suppressed: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// `Some(held back since the last line)` when this line should be
    /// logged, `None` when it is held back (and counted).
    pub fn admit(&self) -> Option<u64> {
        use std::sync::atomic::Ordering;
        let now = process_start().elapsed().as_millis() as u64 + 1;
        let last = self.last_ms.load(Ordering::Relaxed);
        if (last == 0 || now.saturating_sub(last) >= self.interval_ms)
            && self
                .last_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            return Some(self.suppressed.swap(0, Ordering::Relaxed));
        }
        self.suppressed.fetch_add(1, Ordering::Relaxed);
        None
    }
}

/// A fixed instant early in the process, for cheap monotonic timestamps.
fn process_start() -> std::time::Instant {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    *START.get_or_init(std::time::Instant::now)
}

#[cfg(test)]
mod tests {
    use super::LogThrottle;

    #[test]
    fn one_line_per_interval_and_the_next_one_counts_the_rest() {
        let throttle = LogThrottle::per_millis(60_000);
        assert_eq!(throttle.admit(), Some(0));
        for _ in 0..999 {
            assert_eq!(throttle.admit(), None);
        }
        let quick = LogThrottle::per_millis(0);
        assert_eq!(quick.admit(), Some(0));
        assert_eq!(quick.admit(), Some(0));
        assert_eq!(
            throttle
                .suppressed
                .load(std::sync::atomic::Ordering::Relaxed),
            999
        );
    }
}
