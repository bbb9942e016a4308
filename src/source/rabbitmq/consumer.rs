//! The live consumer of the event stream: connect, declare, replay,
//! follow, reconnect.
//!
//! Manual acks after [`Engine::apply_from_stream`] returns, a bounded
//! prefetch, and our own reconnect loop (exponential backoff with jitter)
//! that resumes at the offset after the last one applied. lapin's
//! auto-recovery was tried against the broker: it reconnects after
//! `rabbitmqctl close_connection`, but it replays the original
//! `basic.consume`, i.e. `x-stream-offset: first` again, re-reading the
//! whole stream; and it gives up after 16 attempts. A stream consumer has
//! to choose its own resume point, so we reconnect ourselves.
//!
//! Poison messages (undecodable, invalid, too large) are logged with their
//! `eventId`, routing key and offset, counted, acknowledged and skipped. A
//! stream cannot dead-letter, and it keeps the message for inspection (e.g.
//! `x-stream-offset` = the logged offset) until retention drops it.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use futures_util::{FutureExt as _, StreamExt as _};
use lapin::message::Delivery;
use lapin::options::{BasicConsumeOptions, BasicQosOptions};
use lapin::types::FieldTable;
use lapin::{Acker, Connection};
use thiserror::Error;
use tokio::sync::watch;
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;

use super::connect::{ConnectError, Connector};
use super::stream::{AckBatch, incoming, offset_argument, probe_tail, stream_offset};
use super::{RabbitArgs, ReplayFrom, redact_url, topology};
use crate::backoff::Backoff;
use crate::engine::{ApplyOutcome, Engine};
use crate::source::inbound::{EventDecoder, SchemaError};
use crate::source::{SourceState, SourceStatus};
use crate::telemetry as metric;

/// While replaying, a pause this long means there is nothing left to replay
/// (e.g. `replay-from` an interval that holds no message).
const CATCH_UP_IDLE: Duration = Duration::from_millis(500);
/// While replaying towards a known end, silence this long means the end
/// will not come (the stream was truncated meanwhile): go live anyway.
const CATCH_UP_STALL: Duration = Duration::from_secs(10);
/// Frames the busiest connection may be handed back to back before the
/// consumer yields to the connection tasks they woke (a small share of the
/// default outbound queue).
const YIELD_EVERY: u32 = 16;
/// How long a resuming consumer waits for the offset it attached at, which
/// an intact stream delivers at once.
const RESUME_CHECK: Duration = Duration::from_secs(3);
/// How long closing a connection may take before we drop it.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// Why one connection ended.
#[derive(Debug, Error)]
enum SessionError {
    #[error(transparent)]
    Connect(#[from] ConnectError),
    #[error(transparent)]
    Amqp(#[from] lapin::Error),
    #[error("the broker cancelled the consumer (was the stream deleted?)")]
    Cancelled,
    #[error("the stream was recreated")]
    Recreated,
}

/// The RabbitMQ stream consumer and its reconnect loop.
pub(super) struct StreamConsumer {
    args: RabbitArgs,
    connector: Connector,
    engine: Arc<Engine>,
    status: SourceStatus,
    decoder: EventDecoder,
    caught_up: watch::Sender<bool>,
    /// The stream offset to resume from: one past the last delivery handled.
    next_offset: Option<u64>,
    /// The stream was found recreated: read the new one from its start.
    recreated: bool,
    /// The state was restored from a checkpoint at `next_offset`.
    restored: bool,
    warned_no_offset: bool,
}

impl StreamConsumer {
    pub(super) fn new(
        args: RabbitArgs,
        connector: Connector,
        engine: Arc<Engine>,
        status: SourceStatus,
    ) -> Result<Self, SchemaError> {
        let decoder = EventDecoder::new(args.max_event_bytes)?;
        Ok(StreamConsumer {
            args,
            connector,
            engine,
            status,
            decoder,
            caught_up: watch::Sender::new(false),
            next_offset: None,
            recreated: false,
            restored: false,
            warned_no_offset: false,
        })
    }

    /// Resumes after a checkpoint: the engine's state is at stream
    /// `position`, so reading starts at the offset of the next event.
    pub(super) fn resume_at(&mut self, position: u64) {
        self.next_offset = Some(position);
        self.restored = true;
    }

    /// Becomes true once the first replay has reached the stream's end.
    pub(super) fn caught_up(&self) -> watch::Receiver<bool> {
        self.caught_up.subscribe()
    }

    /// Consumes until `shutdown`, reconnecting with backoff after every failure.
    pub(super) async fn run(mut self, shutdown: CancellationToken) {
        tracing::info!(
            url = %redact_url(&self.args.broker.url),
            exchange = %self.args.broker.exchange,
            stream = %self.args.stream,
            connection = %self.connector.name(),
            "starting the RabbitMQ source"
        );
        let mut backoff = Backoff::new(self.args.reconnect_min, self.args.reconnect_max);
        loop {
            let result = self.session(&shutdown, &mut backoff).await;
            if shutdown.is_cancelled() {
                break;
            }
            let error = match result {
                Ok(()) => break,
                Err(error) => error,
            };
            self.status.set(SourceState::Reconnecting);
            let delay = backoff.next_delay();
            tracing::warn!(
                %error,
                attempt = backoff.failures(),
                retry_in = ?delay,
                "RabbitMQ connection lost or refused; reconnecting"
            );
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(delay) => {}
            }
        }
        self.status.set(SourceState::Stopped);
        tracing::info!("RabbitMQ source stopped");
    }

    /// One connection, from connect to its end. `Ok` means shutdown.
    async fn session(
        &mut self,
        shutdown: &CancellationToken,
        backoff: &mut Backoff,
    ) -> Result<(), SessionError> {
        let connection = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            connection = self.connector.connect() => connection?,
        };
        // The broker answered: the backoff starts over. (Counting on until
        // the consumer is attached let a broker restart, whose queues come
        // up seconds after its listener, push the delay to the maximum.)
        backoff.reset();
        let result = self.consume(&connection, shutdown).await;
        // Closing tells the broker to drop our consumer now rather than at
        // the next missed heartbeat; on a dead socket it fails fast.
        let _ = timeout(
            CLOSE_TIMEOUT,
            connection.close(200, "tourcast stopping".into()),
        )
        .await;
        result
    }

    async fn consume(
        &mut self,
        connection: &Connection,
        shutdown: &CancellationToken,
    ) -> Result<(), SessionError> {
        topology::declare(connection, &self.args).await?;
        let tag = format!("tourcast-{}", uuid::Uuid::new_v4().simple());
        let tail = probe_tail(connection, &self.args.stream, &format!("{tag}-probe")).await?;
        let (start, ready_at) = self.start_position(tail);
        // Resuming attaches at the last offset applied, which an intact
        // stream delivers at once (and `handle` skips). If it never comes,
        // the stream no longer has it: it was deleted and recreated.
        let mut verifying = matches!(start, ReplayFrom::Offset(_)) && self.next_offset.is_some();

        let channel = connection.create_channel().await?;
        channel
            .basic_qos(self.args.prefetch, BasicQosOptions::default())
            .await?;
        let mut arguments = FieldTable::default();
        arguments.insert("x-stream-offset".into(), offset_argument(&start));
        let mut consumer = channel
            .basic_consume(
                self.args.stream.as_str().into(),
                tag.as_str().into(),
                BasicConsumeOptions::default(),
                arguments,
            )
            .await?;

        tracing::info!(
            stream = %self.args.stream,
            from = %start,
            tail = ?tail,
            "consuming the RabbitMQ stream"
        );

        let floor = match start {
            ReplayFrom::Offset(offset) => offset,
            _ => 0,
        };
        let mut acks = AckBatch::new(self.args.prefetch);
        let mut live = false;
        let mut replayed: u64 = 0;
        let mut first_delivery = true;
        let mut since_yield = YieldWindow::default();
        loop {
            if !live && ready_at.is_none_or(|end| self.next_offset.unwrap_or(floor) >= end) {
                live = true;
                self.go_live(replayed);
            }
            if shutdown.is_cancelled() {
                return Ok(());
            }
            // Deliveries already buffered are handled at once; acks are sent
            // (one `multiple` ack) only when the buffer runs dry or a batch
            // is full, not one round trip to the I/O loop per event.
            let next = match consumer.next().now_or_never() {
                Some(next) => Some(next),
                None => {
                    acks.flush().await?;
                    let idle_limit = if verifying {
                        Some(RESUME_CHECK)
                    } else {
                        // With the stream's end known, a pause in
                        // deliveries (a busy broker) is not the end: only a
                        // much longer silence is. Going live early would
                        // show clients partial state.
                        (!live).then_some(if ready_at.is_some() {
                            CATCH_UP_STALL
                        } else {
                            CATCH_UP_IDLE
                        })
                    };
                    tokio::select! {
                        biased;
                        _ = shutdown.cancelled() => return Ok(()),
                        next = next_within(&mut consumer, idle_limit) => next,
                    }
                }
            };
            if verifying && next.is_none() {
                return Err(self.stream_recreated());
            }
            verifying = false;
            let Some(next) = next else {
                // Replaying, and nothing came for a while: nothing is left.
                tracing::debug!(?ready_at, next_offset = ?self.next_offset, "replay went idle");
                live = true;
                self.go_live(replayed);
                continue;
            };
            match next {
                None => return Err(SessionError::Cancelled),
                Some(Err(error)) => return Err(error.into()),
                Some(Ok(delivery)) => {
                    let (acker, recipients) = self.handle(delivery, first_delivery);
                    acks.push(acker).await?;
                    first_delivery = false;
                    if !live {
                        replayed += 1;
                    }
                    if since_yield.add(recipients) {
                        // Let the connection tasks these events woke drain
                        // their queues before more buffered deliveries are
                        // applied. Without it a burst, or the backlog after
                        // an outage, could fill a healthy client's queue
                        // while its task waited for this worker, and close
                        // it as slow. A slow client still cannot hold us
                        // back: its task just finds its socket full.
                        tokio::task::yield_now().await;
                    }
                }
            }
        }
    }

    /// Where to attach, and the offset the replay must pass before the
    /// gateway reports ready (`None`: ready at once).
    fn start_position(&mut self, tail: Option<u64>) -> (ReplayFrom, Option<u64>) {
        // `tail` may fall short of the real end (the probe stops at a pause
        // in deliveries); that only makes the gateway ready a little early.
        let end = tail.map(|t| t + 1);
        match self.next_offset {
            // One before `next`: its arrival proves the stream is intact.
            Some(next) => (ReplayFrom::Offset(next.saturating_sub(1)), end),
            None if self.recreated => (ReplayFrom::First, end),
            None => match &self.args.replay_from {
                ReplayFrom::Next => (ReplayFrom::Next, None),
                other => (other.clone(), end),
            },
        }
    }

    /// The offset we resume from is not in the stream any more: the stream
    /// was deleted and recreated, and its offsets restarted. Read it again
    /// from the start. Its offsets cannot be our `seq` until they pass the
    /// old ones; `process` lets the engine number events meanwhile, so none
    /// is lost.
    fn stream_recreated(&mut self) -> SessionError {
        tracing::error!(
            stream = %self.args.stream,
            applied_up_to = ?self.next_offset,
            "the stream no longer holds the last offset this gateway applied: it was \
             recreated; reading it again from the start (give every gateway a new \
             RABBITMQ_EPOCH to renumber events)"
        );
        self.next_offset = None;
        self.recreated = true;
        if std::mem::take(&mut self.restored) && !*self.caught_up.borrow() {
            // The checkpoint's state does not continue into this stream:
            // forget it before anyone sees it, and fold the stream afresh.
            tracing::warn!("the restored checkpoint does not match the stream; full replay");
            self.engine.reset();
        }
        SessionError::Recreated
    }

    fn go_live(&self, replayed: u64) {
        self.status.set(SourceState::Connected);
        if !*self.caught_up.borrow() {
            tracing::info!(
                replayed,
                next_offset = ?self.next_offset,
                "caught up with the RabbitMQ stream; following it live"
            );
            self.caught_up.send_replace(true);
        }
    }

    /// Applies one delivery (or skips it) and returns its acker: the ack
    /// is sent by [`AckBatch`], after `apply` has returned.
    fn handle(&mut self, delivery: Delivery, first: bool) -> (Acker, usize) {
        metrics::counter!(metric::RABBITMQ_DELIVERIES).increment(1);
        let offset = stream_offset(&delivery.properties);
        if let (Some(offset), Some(next)) = (offset, self.next_offset) {
            if offset < next {
                // Already applied before a reconnect.
                metrics::counter!(metric::RABBITMQ_REDELIVERED).increment(1);
                return (delivery.acker, 0);
            }
            if first && offset > next {
                tracing::warn!(
                    missed = offset - next,
                    "events expired from the stream (retention) before this gateway read them"
                );
            }
        }
        if offset.is_none() && !self.warned_no_offset {
            self.warned_no_offset = true;
            tracing::warn!(
                stream = %self.args.stream,
                "deliveries carry no stream offset: is the queue a classic queue rather than \
                 a stream? Gateway instances would then compete for its messages"
            );
        }
        let recipients = self.process(&delivery, offset);
        if let Some(offset) = offset {
            self.next_offset = Some(offset + 1);
            metrics::gauge!(metric::RABBITMQ_STREAM_OFFSET).set((offset + 1) as f64);
        }
        (delivery.acker, recipients)
    }

    /// Applies one delivery; returns how many clients it was queued for.
    fn process(&self, delivery: &Delivery, offset: Option<u64>) -> usize {
        match self.decoder.decode(incoming(delivery), Utc::now()) {
            // The engine counts the outcome (applied, duplicate, stale).
            Ok(event) => {
                let outcome = match offset {
                    Some(offset) => self.engine.apply_from_stream(event, offset),
                    None => self.engine.apply(event),
                };
                match outcome {
                    ApplyOutcome::Applied { recipients, .. } => recipients,
                    _ => 0,
                }
            }
            Err(poison) => {
                crate::telemetry::event_outcome("poison");
                metrics::counter!(metric::RABBITMQ_POISON, "reason" => poison.label()).increment(1);
                tracing::warn!(
                    event_id = poison.event_id.as_deref().unwrap_or("-"),
                    routing_key = %delivery.routing_key,
                    offset = ?offset,
                    reason = %poison.reason,
                    "poison message skipped (left in the stream)"
                );
                0
            }
        }
    }
}

/// When to yield between deliveries: after the busiest recipient was
/// handed [`YIELD_EVERY`] frames. An event's recipients tell how far it
/// spread; the most any event of the window reached stands for the
/// connections that got all of them (a `"*"` subscriber). So a run of
/// tour events fanned out to a thousand clients yields every sixteen, and
/// the one-recipient notifications between them (a user's few tabs) do
/// not make the busy connections flush twice as often.
#[derive(Debug, Default)]
struct YieldWindow {
    frames: usize,
    widest: usize,
}

impl YieldWindow {
    /// Counts an applied delivery; true (and a new window) when it is time to yield.
    fn add(&mut self, recipients: usize) -> bool {
        self.frames += recipients.max(1);
        self.widest = self.widest.max(recipients.max(1));
        if self.frames >= self.widest * YIELD_EVERY as usize {
            *self = YieldWindow::default();
            return true;
        }
        false
    }
}

/// The consumer's next item, or `None` when `limit` passes first.
async fn next_within(
    consumer: &mut lapin::Consumer,
    limit: Option<Duration>,
) -> Option<Option<lapin::Result<Delivery>>> {
    match limit {
        Some(limit) => timeout(limit, consumer.next()).await.ok(),
        None => Some(consumer.next().await),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deliveries_until_yield(window: &mut YieldWindow, recipients: &[usize]) -> usize {
        recipients
            .iter()
            .cycle()
            .position(|r| window.add(*r))
            .map_or(0, |at| at + 1)
    }

    #[test]
    fn a_window_yields_after_the_busiest_connection_got_its_share() {
        let every = YIELD_EVERY as usize;
        // Tour events to a thousand clients: every sixteen, as before.
        assert_eq!(
            deliveries_until_yield(&mut YieldWindow::default(), &[1000]),
            every
        );
        // Notifications to one user's tab in between do not count as much.
        assert_eq!(
            deliveries_until_yield(&mut YieldWindow::default(), &[1000, 1]),
            2 * every - 1
        );
        // Nobody listening (a replay): every sixteen deliveries still.
        assert_eq!(
            deliveries_until_yield(&mut YieldWindow::default(), &[0]),
            every
        );
    }
}
