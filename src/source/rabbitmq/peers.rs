//! A link between gateway instances over the broker itself: each instance
//! publishes small transient messages on the platform's exchange under one
//! routing key, and reads everyone's (its own included) from an exclusive,
//! auto-delete queue bound to that key. No new infrastructure; nothing is
//! stored (the queue dies with the connection, messages are not
//! persistent), and nothing reaches the event stream (its bindings do not
//! match the key).
//!
//! The link carries opaque bytes: what they mean is the caller's business
//! (the stats channel sends `tourcast.v1.InstanceStats`). It reconnects by
//! itself; while the broker is away, outgoing messages are dropped, which
//! is right for figures that are stale a moment later.

use std::time::Duration;

use futures_util::StreamExt as _;
use lapin::options::{
    BasicConsumeOptions, BasicPublishOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{FieldTable, LongString};
use lapin::{BasicProperties, Connection, ConnectionProperties};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{RabbitArgs, consumer, topology};

/// Messages kept in either direction while the other side is busy.
const BUFFER: usize = 64;
/// How long a peer message may wait in the queue before the broker drops
/// it: an old figure is worse than none.
const MESSAGE_TTL_MS: u32 = 10_000;
/// Longest wait before reconnecting.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// The two ends of a peer link.
pub struct PeerLink {
    /// Messages to publish to every instance. Dropping every sender ends
    /// the link, after what was queued is published.
    pub outgoing: mpsc::Sender<Vec<u8>>,
    /// Messages every instance published, this one's included.
    pub incoming: mpsc::Receiver<Vec<u8>>,
    /// The link's task, done once the link has ended.
    pub task: tokio::task::JoinHandle<()>,
}

type LinkError = Box<dyn std::error::Error + Send + Sync>;

/// Starts the link for `routing_key` on the exchange of `args`. It runs
/// until every `outgoing` sender is dropped (publishing what they queued
/// first) or, while it cannot reach the broker, until `shutdown`.
pub fn spawn(args: &RabbitArgs, routing_key: &str, shutdown: CancellationToken) -> PeerLink {
    let (outgoing, mut to_publish) = mpsc::channel::<Vec<u8>>(BUFFER);
    let (received, incoming) = mpsc::channel::<Vec<u8>>(BUFFER);
    let args = args.clone();
    let routing_key = routing_key.to_string();
    let task = tokio::spawn(async move {
        let mut backoff = Duration::from_millis(200);
        loop {
            let run = run_once(&args, &routing_key, &mut to_publish, &received, &shutdown);
            match run.await {
                Ok(()) => return,
                Err(error) => {
                    tracing::debug!(%error, "peer link lost; reconnecting");
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
            // Figures queued while away are stale: drop them.
            while to_publish.try_recv().is_ok() {}
        }
    });
    PeerLink {
        outgoing,
        incoming,
        task,
    }
}

/// One connection's life: `Ok` once the senders are gone (or at shutdown
/// before connecting), `Err` when the broker went away.
async fn run_once(
    args: &RabbitArgs,
    routing_key: &str,
    to_publish: &mut mpsc::Receiver<Vec<u8>>,
    received: &mpsc::Sender<Vec<u8>>,
    shutdown: &CancellationToken,
) -> Result<(), LinkError> {
    if shutdown.is_cancelled() {
        return Ok(());
    }
    let uri = consumer::broker_uri(args)?;
    let name = format!("{} (peers)", consumer::connection_name(args));
    let properties =
        ConnectionProperties::default().with_connection_name(LongString::from(name.as_str()));
    let connection = Connection::connect_uri(uri, properties).await?;
    let channel = topology::declare_exchange(&connection, &args.broker.exchange).await?;
    let mut queue_args = FieldTable::default();
    queue_args.insert("x-message-ttl".into(), MESSAGE_TTL_MS.into());
    let queue = channel
        .queue_declare(
            "".into(),
            QueueDeclareOptions {
                exclusive: true,
                auto_delete: true,
                ..QueueDeclareOptions::default()
            },
            queue_args,
        )
        .await?;
    channel
        .queue_bind(
            queue.name().as_str().into(),
            args.broker.exchange.as_str().into(),
            routing_key.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let mut deliveries = channel
        .basic_consume(
            queue.name().as_str().into(),
            "".into(),
            BasicConsumeOptions {
                no_ack: true,
                exclusive: true,
                ..BasicConsumeOptions::default()
            },
            FieldTable::default(),
        )
        .await?;
    tracing::debug!(routing_key, "peer link up");
    let publish = |payload: Vec<u8>| {
        let channel = channel.clone();
        let exchange = args.broker.exchange.clone();
        let routing_key = routing_key.to_string();
        async move {
            // Transient and not mandatory: a figure nobody reads is fine.
            channel
                .basic_publish(
                    exchange.as_str().into(),
                    routing_key.as_str().into(),
                    BasicPublishOptions::default(),
                    &payload,
                    BasicProperties::default()
                        .with_content_type("application/x-protobuf".into())
                        .with_delivery_mode(1),
                )
                .await
                .map(|_| ())
        }
    };
    loop {
        tokio::select! {
            payload = to_publish.recv() => match payload {
                Some(payload) => publish(payload).await?,
                None => {
                    let _ = connection.close(200, "shutdown".into()).await;
                    return Ok(());
                }
            },
            delivery = deliveries.next() => match delivery {
                Some(Ok(delivery)) => {
                    // A full buffer means the reader is behind: drop, it
                    // only wants the latest figures anyway.
                    let _ = received.try_send(delivery.data);
                }
                Some(Err(error)) => return Err(error.into()),
                None => return Err("the broker cancelled the peer queue's consumer".into()),
            },
        }
    }
}
