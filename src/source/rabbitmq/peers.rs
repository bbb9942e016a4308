//! A link between gateway instances over the broker itself: each instance
//! publishes small transient messages on the platform's exchange under a
//! few routing keys (one per kind: `tourcast.stats`, `tourcast.presence`),
//! and reads everyone's (its own included) from one exclusive, auto-delete
//! queue bound to those keys. No new infrastructure; nothing is
//! stored (the queue dies with the connection, messages are not
//! persistent), and nothing reaches the event stream (its bindings do not
//! match the key).
//!
//! The link carries opaque bytes: what they mean is the caller's business
//! (the stats channel sends `tourcast.v1.InstanceStats`, presence
//! `tourcast.v1.PeerPresence`); [`PeerLink::split`] gives each kind its own
//! pair of channels, so that neither sees the other's. It reconnects by
//! itself; while the broker is away, outgoing messages are dropped, which
//! is right for figures that are stale a moment later.

use std::time::Duration;

use futures_util::StreamExt as _;
use lapin::BasicProperties;
use lapin::options::{
    BasicConsumeOptions, BasicPublishOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::connect::Connector;
use super::{RabbitArgs, topology};
use crate::backoff::Backoff;

/// Messages kept in either direction while the other side is busy.
const BUFFER: usize = 64;
/// How long a peer message may wait in the queue before the broker drops
/// it: an old figure is worse than none.
const MESSAGE_TTL_MS: u32 = 10_000;
/// First and longest waits before reconnecting.
const MIN_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// A message on the link: its routing key and its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerMessage {
    /// One of the keys the link was started for.
    pub routing_key: String,
    /// What the caller sent.
    pub payload: Vec<u8>,
}

/// The two ends of a peer link.
pub struct PeerLink {
    /// Messages to publish to every instance. Dropping every sender ends
    /// the link, after what was queued is published.
    pub outgoing: mpsc::Sender<PeerMessage>,
    /// Messages every instance published, this one's included.
    pub incoming: mpsc::Receiver<PeerMessage>,
    /// The link's task, done once the link has ended.
    pub task: tokio::task::JoinHandle<()>,
}

/// One routing key's share of a link (see [`PeerLink::split`]).
pub struct PeerChannel {
    /// Payloads to publish under the key. The link ends once every
    /// key's senders are dropped.
    pub outgoing: mpsc::Sender<Vec<u8>>,
    /// Payloads every instance published under the key.
    pub incoming: mpsc::Receiver<Vec<u8>>,
}

impl PeerLink {
    /// One [`PeerChannel`] per key of `keys` (in that order), and the
    /// link's task. Messages under a key not listed are dropped.
    pub fn split(self, keys: &[&str]) -> (Vec<PeerChannel>, tokio::task::JoinHandle<()>) {
        let PeerLink {
            outgoing,
            mut incoming,
            task,
        } = self;
        let mut channels = Vec::new();
        let mut routes = Vec::new();
        for key in keys {
            let (to_send, mut sending) = mpsc::channel::<Vec<u8>>(BUFFER);
            let (to_deliver, delivered) = mpsc::channel::<Vec<u8>>(BUFFER);
            let link = outgoing.clone();
            let routing_key = key.to_string();
            // Tags the key's payloads; ends (releasing its share of the
            // link) when the key's senders are gone.
            tokio::spawn(async move {
                while let Some(payload) = sending.recv().await {
                    let message = PeerMessage {
                        routing_key: routing_key.clone(),
                        payload,
                    };
                    if link.send(message).await.is_err() {
                        return;
                    }
                }
            });
            routes.push((key.to_string(), to_deliver));
            channels.push(PeerChannel {
                outgoing: to_send,
                incoming: delivered,
            });
        }
        drop(outgoing);
        tokio::spawn(async move {
            while let Some(message) = incoming.recv().await {
                if let Some((_, route)) = routes.iter().find(|(key, _)| *key == message.routing_key)
                {
                    // Full: that kind's reader is behind; it only wants
                    // the latest anyway (as on the link itself).
                    let _ = route.try_send(message.payload);
                }
            }
        });
        (channels, task)
    }
}

type LinkError = Box<dyn std::error::Error + Send + Sync>;

/// Starts the link for `routing_keys` on the exchange of `args`. It runs
/// until every `outgoing` sender is dropped (publishing what they queued
/// first) or, while it cannot reach the broker, until `shutdown`.
pub fn spawn(args: &RabbitArgs, routing_keys: &[&str], shutdown: CancellationToken) -> PeerLink {
    let (outgoing, mut to_publish) = mpsc::channel::<PeerMessage>(BUFFER);
    let (received, incoming) = mpsc::channel::<PeerMessage>(BUFFER);
    let connector = Connector::for_gateway(args).map(|c| c.for_job("peers"));
    let exchange = args.broker.exchange.clone();
    let routing_keys = routing_keys.iter().map(|key| key.to_string()).collect();
    let task = tokio::spawn(async move {
        let connector = match connector {
            Ok(connector) => connector,
            Err(error) => {
                tracing::error!(%error, "invalid RABBITMQ_URL: no peer link");
                return;
            }
        };
        let link = Link {
            connector,
            exchange,
            routing_keys,
        };
        let mut backoff = Backoff::new(MIN_BACKOFF, MAX_BACKOFF);
        loop {
            let run = link.run_once(&mut to_publish, &received, &shutdown, &mut backoff);
            match run.await {
                Ok(()) => return,
                Err(error) => {
                    tracing::debug!(%error, "peer link lost; reconnecting");
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(backoff.next_delay()) => {}
            }
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

/// Where the link runs: the broker, the exchange, the routing keys.
struct Link {
    connector: Connector,
    exchange: String,
    routing_keys: Vec<String>,
}

impl Link {
    /// One connection's life: `Ok` once the senders are gone (or at shutdown
    /// before connecting), `Err` when the broker went away.
    async fn run_once(
        &self,
        to_publish: &mut mpsc::Receiver<PeerMessage>,
        received: &mpsc::Sender<PeerMessage>,
        shutdown: &CancellationToken,
        backoff: &mut Backoff,
    ) -> Result<(), LinkError> {
        if shutdown.is_cancelled() {
            return Ok(());
        }
        let exchange = self.exchange.as_str();
        let connection = self.connector.connect().await?;
        let channel = topology::declare_exchange(&connection, exchange).await?;
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
        for routing_key in &self.routing_keys {
            channel
                .queue_bind(
                    queue.name().as_str().into(),
                    exchange.into(),
                    routing_key.as_str().into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await?;
        }
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
        tracing::debug!(routing_keys = ?self.routing_keys, "peer link up");
        backoff.reset();
        let publish = |message: PeerMessage| {
            let channel = channel.clone();
            let exchange = exchange.to_string();
            let PeerMessage {
                routing_key,
                payload,
            } = message;
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
                        let _ = received.try_send(PeerMessage {
                            routing_key: delivery.routing_key.to_string(),
                            payload: delivery.data,
                        });
                    }
                    Some(Err(error)) => return Err(error.into()),
                    None => return Err("the broker cancelled the peer queue's consumer".into()),
                },
            }
        }
    }
}
