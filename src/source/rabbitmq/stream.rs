//! Reading a RabbitMQ stream, whoever reads it (the live consumer, a
//! read-back, the checkpoint loader): where a consumer attaches
//! (`x-stream-offset`), the offset of each delivery, where the stream
//! ends, acknowledgements (which on a stream are consumer credit), and
//! what the event decoder needs of a delivery.

use std::time::Duration;

use chrono::DateTime;
use futures_util::StreamExt as _;
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Acker, BasicProperties, Connection};
use tokio::time::{Instant, timeout};

use super::ReplayFrom;
use super::topology::long_string;
use crate::source::inbound::Incoming;

/// Prefetch of the tail probe: enough for a whole chunk of a busy stream.
const PROBE_PREFETCH: u16 = 2_000;
/// How long the probe waits for a first delivery before calling the stream empty.
const PROBE_EMPTY_WAIT: Duration = Duration::from_millis(300);
/// A pause this long after the last delivery ends the last chunk.
const PROBE_IDLE: Duration = Duration::from_millis(100);
/// The probe never takes longer than this, even on a stream that never pauses.
const PROBE_MAX: Duration = Duration::from_secs(2);

/// What the event decoder needs of a delivery.
pub fn incoming(delivery: &Delivery) -> Incoming<'_> {
    let properties = &delivery.properties;
    Incoming {
        routing_key: delivery.routing_key.as_str(),
        content_type: properties.content_type().as_ref().map(|c| c.as_str()),
        payload: &delivery.data,
        sent_at: properties
            .timestamp()
            .and_then(|secs| i64::try_from(secs).ok())
            .and_then(|secs| DateTime::from_timestamp(secs, 0)),
    }
}

/// Acknowledgements of applied deliveries, sent as one `multiple` ack per
/// batch. On a stream an ack is consumer credit (the message stays in the
/// log), so batching only has to keep the credit flowing: a batch is at most
/// a quarter of the prefetch, and is flushed whenever the consumer waits.
pub struct AckBatch {
    last: Option<Acker>,
    pending: usize,
    limit: usize,
}

impl AckBatch {
    pub fn new(prefetch: u16) -> Self {
        AckBatch {
            last: None,
            pending: 0,
            limit: usize::from(prefetch / 4).max(1),
        }
    }

    /// Records an applied delivery; acks the batch when it is full.
    pub async fn push(&mut self, acker: Acker) -> Result<(), lapin::Error> {
        self.last = Some(acker);
        self.pending += 1;
        if self.pending >= self.limit {
            self.flush().await?;
        }
        Ok(())
    }

    /// Acks every delivery recorded so far.
    pub async fn flush(&mut self) -> Result<(), lapin::Error> {
        if let Some(acker) = self.last.take() {
            self.pending = 0;
            acker.ack(BasicAckOptions { multiple: true }).await?;
        }
        Ok(())
    }
}

/// `x-stream-offset` for a start position.
pub fn offset_argument(start: &ReplayFrom) -> AMQPValue {
    match start {
        ReplayFrom::First => long_string("first"),
        ReplayFrom::Last => long_string("last"),
        ReplayFrom::Next => long_string("next"),
        ReplayFrom::Offset(offset) => {
            AMQPValue::LongLongInt(i64::try_from(*offset).unwrap_or(i64::MAX))
        }
        ReplayFrom::Interval(interval) => long_string(interval),
    }
}

/// The stream offset RabbitMQ puts in the headers of each delivery.
pub fn stream_offset(properties: &BasicProperties) -> Option<u64> {
    let value = properties
        .headers()
        .as_ref()?
        .inner()
        .get("x-stream-offset")?;
    match value {
        AMQPValue::LongLongInt(v) => u64::try_from(*v).ok(),
        AMQPValue::LongInt(v) => u64::try_from(*v).ok(),
        AMQPValue::LongUInt(v) => Some(u64::from(*v)),
        AMQPValue::Timestamp(v) => Some(*v),
        _ => None,
    }
}

/// The offset of the last message in the stream, or `None` when it is empty.
///
/// AMQP 0-9-1 has no "stream length" (a stream's `message_count` is always
/// 0), so a short-lived consumer attaches at `last`, which delivers the last
/// chunk, and keeps the highest offset it sees. The main consumer reports the
/// gateway ready once it has replayed up to that offset: a fresh instance
/// then serves complete snapshots from its first client on.
pub(super) async fn probe_tail(
    connection: &Connection,
    stream: &str,
    tag: &str,
) -> Result<Option<u64>, lapin::Error> {
    let channel = connection.create_channel().await?;
    channel
        .basic_qos(PROBE_PREFETCH, BasicQosOptions::default())
        .await?;
    let mut arguments = FieldTable::default();
    arguments.insert("x-stream-offset".into(), long_string("last"));
    let mut consumer = channel
        .basic_consume(
            stream.into(),
            tag.into(),
            BasicConsumeOptions::default(),
            arguments,
        )
        .await?;
    let deadline = Instant::now() + PROBE_MAX;
    let mut tail: Option<u64> = None;
    loop {
        let wait = if tail.is_some() {
            PROBE_IDLE
        } else {
            PROBE_EMPTY_WAIT
        };
        let wait = wait.min(deadline.saturating_duration_since(Instant::now()));
        match timeout(wait, consumer.next()).await {
            Ok(Some(Ok(delivery))) => {
                if let Some(offset) = stream_offset(&delivery.properties) {
                    tail = Some(tail.map_or(offset, |t| t.max(offset)));
                }
                // Acks are a stream consumer's credit: without them a chunk
                // larger than the prefetch would stall the probe.
                delivery.ack(BasicAckOptions::default()).await?;
            }
            Ok(Some(Err(error))) => return Err(error),
            Ok(None) | Err(_) => break,
        }
    }
    let _ = channel.close(200, "tail probed".into()).await;
    Ok(tail)
}
