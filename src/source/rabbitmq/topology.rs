//! Declaring what the gateway reads and writes on the broker: the
//! platform's exchange, the event stream bound to it, and the checkpoint
//! stream.
//!
//! An exchange or stream that already exists with other settings (another
//! retention, say) is used as it is, with a warning: refusing to start over
//! a retention setting would take the gateway down for nothing.

use std::future::Future;

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::protocol::{AMQPErrorKind, AMQPSoftError};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{Connection, ErrorKind, ExchangeKind};

use super::RabbitArgs;

/// Whether an error is the broker's PRECONDITION_FAILED (a redeclaration
/// with other settings than the existing entity's).
pub fn is_precondition_failed(error: &lapin::Error) -> bool {
    matches!(
        error.kind(),
        ErrorKind::ProtocolError(amqp)
            if *amqp.kind() == AMQPErrorKind::Soft(AMQPSoftError::PRECONDITIONFAILED)
    )
}

/// An AMQP long string value.
pub(super) fn long_string(text: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(text))
}

fn clamp_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// Runs `declare(channel, passive)` on a new channel, actively; when the
/// entity exists with other settings, warns (`what` says which) and uses
/// it as it is: declared passively, on a fresh channel, since the failed
/// declaration closed the first. Returns the channel that succeeded.
async fn declare_or_use_existing<F, Fut>(
    connection: &Connection,
    what: &str,
    declare: F,
) -> Result<lapin::Channel, lapin::Error>
where
    F: Fn(lapin::Channel, bool) -> Fut,
    Fut: Future<Output = Result<lapin::Channel, lapin::Error>>,
{
    match declare(connection.create_channel().await?, false).await {
        Ok(channel) => Ok(channel),
        Err(error) if is_precondition_failed(&error) => {
            tracing::warn!(%error, "{what}; using it as it is");
            declare(connection.create_channel().await?, true).await
        }
        Err(error) => Err(error),
    }
}

/// Declares `exchange` as a durable topic exchange, as the platform's
/// publishers and every gateway do, and returns an open channel.
pub async fn declare_exchange(
    connection: &Connection,
    exchange: &str,
) -> Result<lapin::Channel, lapin::Error> {
    let what = format!("the exchange {exchange:?} exists, but not as a durable topic exchange");
    declare_or_use_existing(connection, &what, |channel, passive| async move {
        let options = ExchangeDeclareOptions {
            durable: true,
            passive,
            ..ExchangeDeclareOptions::default()
        };
        channel
            .exchange_declare(
                exchange.into(),
                ExchangeKind::Topic,
                options,
                FieldTable::default(),
            )
            .await?;
        Ok(channel)
    })
    .await
}

/// Declares the durable stream `name` with `arguments` (its type and
/// retention), and returns an open channel.
pub async fn declare_stream(
    connection: &Connection,
    name: &str,
    arguments: FieldTable,
) -> Result<lapin::Channel, lapin::Error> {
    let what = format!("the stream {name:?} exists with other settings");
    declare_or_use_existing(connection, &what, |channel, passive| {
        // A passive declaration checks existence only: no arguments.
        let arguments = if passive {
            FieldTable::default()
        } else {
            arguments.clone()
        };
        async move {
            let options = QueueDeclareOptions {
                durable: true,
                passive,
                ..QueueDeclareOptions::default()
            };
            channel
                .queue_declare(name.into(), options, arguments)
                .await?;
            Ok(channel)
        }
    })
    .await
}

/// A stream's arguments: its type and retention (`max_age` a RabbitMQ
/// interval, or none).
pub fn stream_arguments(max_age: Option<&str>, max_bytes: u64, segment_bytes: u64) -> FieldTable {
    let mut table = FieldTable::default();
    table.insert("x-queue-type".into(), long_string("stream"));
    if let Some(max_age) = max_age {
        table.insert("x-max-age".into(), long_string(max_age));
    }
    table.insert(
        "x-max-length-bytes".into(),
        AMQPValue::LongLongInt(clamp_i64(max_bytes)),
    );
    table.insert(
        "x-stream-max-segment-size-bytes".into(),
        AMQPValue::LongLongInt(clamp_i64(segment_bytes)),
    );
    table
}

/// Declares the exchange and the event stream, and binds the stream to
/// the exchange with every configured key.
pub(super) async fn declare(
    connection: &Connection,
    args: &RabbitArgs,
) -> Result<(), lapin::Error> {
    let _ = declare_exchange(connection, &args.broker.exchange)
        .await?
        .close(200, "exchange declared".into())
        .await;
    let arguments = stream_arguments(
        Some(&args.stream_max_age),
        args.stream_max_bytes,
        args.stream_segment_bytes,
    );
    let channel = declare_stream(connection, &args.stream, arguments).await?;
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
