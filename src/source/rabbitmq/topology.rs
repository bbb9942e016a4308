//! Declaring the exchange, the stream and its bindings, and finding where
//! the stream ends.

use std::time::Duration;

use futures_util::StreamExt as _;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicQosOptions, ExchangeDeclareOptions,
    QueueBindOptions, QueueDeclareOptions,
};
use lapin::protocol::{AMQPErrorKind, AMQPSoftError};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{BasicProperties, Connection, ErrorKind, ExchangeKind};
use tokio::time::{Instant, timeout};

use super::RabbitArgs;

/// Prefetch of the tail probe: enough for a whole chunk of a busy stream.
const PROBE_PREFETCH: u16 = 2_000;
/// How long the probe waits for a first delivery before calling the stream empty.
const PROBE_EMPTY_WAIT: Duration = Duration::from_millis(300);
/// A pause this long after the last delivery ends the last chunk.
const PROBE_IDLE: Duration = Duration::from_millis(100);
/// The probe never takes longer than this, even on a stream that never pauses.
const PROBE_MAX: Duration = Duration::from_secs(2);

/// Whether an error is the broker's PRECONDITION_FAILED (a redeclaration
/// with other settings than the existing entity's).
pub fn is_precondition_failed(error: &lapin::Error) -> bool {
    matches!(
        error.kind(),
        ErrorKind::ProtocolError(amqp)
            if *amqp.kind() == AMQPErrorKind::Soft(AMQPSoftError::PRECONDITIONFAILED)
    )
}

/// The stream's arguments: its type and retention.
pub(super) fn stream_arguments(args: &RabbitArgs) -> FieldTable {
    let mut table = FieldTable::default();
    table.insert("x-queue-type".into(), long_string("stream"));
    table.insert("x-max-age".into(), long_string(&args.stream_max_age));
    table.insert(
        "x-max-length-bytes".into(),
        AMQPValue::LongLongInt(clamp_i64(args.stream_max_bytes)),
    );
    table.insert(
        "x-stream-max-segment-size-bytes".into(),
        AMQPValue::LongLongInt(clamp_i64(args.stream_segment_bytes)),
    );
    table
}

fn clamp_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

pub(super) fn long_string(text: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(text))
}

/// Declares `exchange` as a durable topic exchange, as the platform's
/// publishers and every gateway do, and returns an open channel. One that
/// exists with other settings is used as it is, with a warning.
pub async fn declare_exchange(
    connection: &Connection,
    exchange: &str,
) -> Result<lapin::Channel, lapin::Error> {
    let channel = connection.create_channel().await?;
    let durable = ExchangeDeclareOptions {
        durable: true,
        ..ExchangeDeclareOptions::default()
    };
    let declared = channel
        .exchange_declare(
            exchange.into(),
            ExchangeKind::Topic,
            durable,
            FieldTable::default(),
        )
        .await;
    match declared {
        Ok(()) => Ok(channel),
        Err(error) if is_precondition_failed(&error) => {
            tracing::warn!(
                exchange,
                %error,
                "the exchange exists, but not as a durable topic exchange; using it as it is"
            );
            // The failed declaration closed the channel; it must still exist.
            let channel = connection.create_channel().await?;
            channel
                .exchange_declare(
                    exchange.into(),
                    ExchangeKind::Topic,
                    ExchangeDeclareOptions {
                        passive: true,
                        ..durable
                    },
                    FieldTable::default(),
                )
                .await?;
            Ok(channel)
        }
        Err(error) => Err(error),
    }
}

/// Declares the durable topic exchange and the stream, and binds the
/// stream to the exchange with every configured key.
///
/// An exchange or stream that already exists with other settings (another
/// retention, say) is used as it is, with a warning: refusing to start over a
/// retention setting would take the gateway down for nothing.
pub(super) async fn declare(
    connection: &Connection,
    args: &RabbitArgs,
) -> Result<(), lapin::Error> {
    let mut channel = declare_exchange(connection, &args.broker.exchange).await?;

    let durable = QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    };
    if let Err(error) = channel
        .queue_declare(args.stream.as_str().into(), durable, stream_arguments(args))
        .await
    {
        if !is_precondition_failed(&error) {
            return Err(error);
        }
        tracing::warn!(
            stream = %args.stream,
            %error,
            "the stream exists with other settings; using it as it is"
        );
        channel = connection.create_channel().await?;
        channel
            .queue_declare(
                args.stream.as_str().into(),
                QueueDeclareOptions {
                    passive: true,
                    ..durable
                },
                FieldTable::default(),
            )
            .await?;
    }

    for key in &args.binding_keys {
        channel
            .queue_bind(
                args.stream.as_str().into(),
                args.broker.exchange.as_str().into(),
                key.as_str().into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
    }
    let _ = channel.close(200, "topology declared".into()).await;
    Ok(())
}

/// The stream offset RabbitMQ puts in the headers of each delivery.
pub(super) fn stream_offset(properties: &BasicProperties) -> Option<u64> {
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
