//! Where events come from: availability changes, booking notifications
//! and room messages (see [`crate::event`]); and where a client's room
//! message goes to come back as one ([`StreamWriter`]).
//!
//! Every source (the embedded demo feed, RabbitMQ) turns its input into
//! [`SourceEvent`]s and hands each one to
//! [`Engine::apply`](crate::engine::Engine::apply), which applies it
//! to the projection and fans it out to its channel. `apply` is synchronous and never waits
//! on a client, so a source can acknowledge its input as soon as it returns.
//! Each source reports its liveness through a [`SourceStatus`], which
//! `/health` and `/ready` read.

pub mod catalog;
pub mod demo;
pub mod inbound;
pub mod rabbitmq;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures_util::future::BoxFuture;
use tokio::sync::watch;

pub use crate::event::{AvailabilityKind, SourceEvent};
use crate::protocol::v1::RoomEvent;

/// Writes a client's room message into the stream the gateway reads (for
/// RabbitMQ, by publishing it on the exchange), so that it comes back
/// numbered, in order, to every instance like any other event: there is
/// no shortcut that could reorder, duplicate or lose it.
pub trait StreamWriter: Send + Sync {
    /// Resolves once the stream has the message (the broker confirmed it),
    /// or with why it does not. A failed write delivered nothing.
    fn write(&self, event: RoomEvent) -> BoxFuture<'static, Result<(), WriteError>>;
}

/// Why a room message did not reach the stream.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WriteError {
    /// No connection to the broker now (down, restarting, unreachable).
    #[error("the broker is unavailable: {0}")]
    Unavailable(String),
    /// The broker routed it to no queue: the stream is not bound (yet).
    #[error("the broker routed the message to no stream ({0})")]
    Unroutable(String),
    /// The broker refused it (nack).
    #[error("the broker refused the message")]
    Refused,
    /// No confirmation in time (the connection stalled).
    #[error(
        "the broker did not confirm the message within {0:?} (it may still arrive, under its messageId)"
    )]
    Timeout(std::time::Duration),
}

/// The liveness of an event source, as `/health` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceState {
    /// Not connected yet.
    Starting,
    /// Connected and consuming.
    Connected,
    /// Lost its connection; retrying with backoff.
    Reconnecting,
    /// Stopped for good (shutdown).
    Stopped,
}

impl SourceState {
    /// The name `/health` shows.
    pub fn as_str(self) -> &'static str {
        match self {
            SourceState::Starting => "starting",
            SourceState::Connected => "connected",
            SourceState::Reconnecting => "reconnecting",
            SourceState::Stopped => "stopped",
        }
    }
}

/// A source's name and live state, shared with the HTTP handlers.
#[derive(Debug, Clone)]
pub struct SourceStatus {
    kind: &'static str,
    state: watch::Sender<SourceState>,
    /// Set once the source first reached `Connected`, i.e. the state it
    /// folded is complete (a stream source is `Connected` only after its
    /// start-up replay). Until then the handshake refuses clients, so that
    /// nobody is shown partial state as current. It stays set through later
    /// outages: the state is then stale-but-whole, and clients keep it.
    caught_up: Arc<AtomicBool>,
}

impl SourceStatus {
    /// A status for a source of the given kind ("demo", "rabbitmq").
    pub fn new(kind: &'static str) -> Self {
        SourceStatus {
            kind,
            state: watch::Sender::new(SourceState::Starting),
            caught_up: Arc::new(AtomicBool::new(false)),
        }
    }

    /// The kind of source.
    pub fn kind(&self) -> &'static str {
        self.kind
    }

    /// The current state.
    pub fn get(&self) -> SourceState {
        *self.state.borrow()
    }

    /// Whether the source has ever caught up (see the field).
    pub fn caught_up(&self) -> bool {
        self.caught_up.load(Ordering::Acquire)
    }

    /// Records a new state (and mirrors it in the metrics).
    pub fn set(&self, state: SourceState) {
        if state == SourceState::Connected {
            self.caught_up.store(true, Ordering::Release);
        }
        let previous = self.state.send_replace(state);
        let up = if state == SourceState::Connected {
            1.0
        } else {
            0.0
        };
        metrics::gauge!(crate::telemetry::SOURCE_UP, "source" => self.kind).set(up);
        if state == SourceState::Reconnecting && previous != SourceState::Reconnecting {
            metrics::counter!(crate::telemetry::SOURCE_RECONNECTS, "source" => self.kind)
                .increment(1);
        }
    }

    /// Watches state changes (tests and readiness waits).
    pub fn subscribe(&self) -> watch::Receiver<SourceState> {
        self.state.subscribe()
    }
}
