//! Writing clients' room messages into the stream: each one is published
//! on the exchange (routing key `room.message`, persistent, mandatory, in
//! confirm mode), which routes it into the stream every instance reads.
//! The write is done when the broker confirms it; a message it returns
//! (no stream bound), refuses, or leaves unconfirmed is reported, never
//! retried here: the client is told and may retry.
//!
//! One task publishes, in the order the writes were asked for, over one
//! connection and channel (opened on the first write and again after one
//! fails): a client's messages reach the stream in the order it sent them.
//! Confirms are awaited beside it, so a slow confirm holds up no publish.

use std::time::Duration;

use chrono::Utc;
use futures_util::future::BoxFuture;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::{BasicProperties, Channel, Confirmation, Connection, PublisherConfirm};
use tokio::sync::{mpsc, oneshot};
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;

use super::Connector;
use crate::event::ROOM_MESSAGE;
use crate::protocol::v1::RoomEvent;
use crate::source::inbound::JSON_CONTENT_TYPE;
use crate::source::{StreamWriter, WriteError};

/// How long the broker may take to confirm a message.
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(5);
/// AMQP delivery mode 2: written to disk (the stream is durable anyway).
const PERSISTENT: u8 = 2;
/// Writes waiting for the publishing task; beyond them a write is
/// refused at once rather than queued without bound.
const QUEUE: usize = 4096;

type Write = (RoomEvent, oneshot::Sender<Result<(), WriteError>>);

/// Publishes room messages on the exchange, for [`StreamWriter`].
pub struct RoomWriter {
    queue: mpsc::Sender<Write>,
}

impl RoomWriter {
    /// Starts the publishing task (until `shutdown`), publishing on
    /// `exchange` over connections from `connector`.
    pub fn start(connector: Connector, exchange: String, shutdown: CancellationToken) -> Self {
        let (queue, writes) = mpsc::channel(QUEUE);
        tokio::spawn(publish_in_order(connector, exchange, writes, shutdown));
        RoomWriter { queue }
    }
}

impl StreamWriter for RoomWriter {
    fn write(&self, event: RoomEvent) -> BoxFuture<'static, Result<(), WriteError>> {
        let (done, written) = oneshot::channel();
        // Queued now, in the caller's order (a connection's commands run one
        // after another), and published in that order.
        let queued = self.queue.try_send((event, done));
        Box::pin(async move {
            if queued.is_err() {
                return Err(WriteError::Unavailable(
                    "too many messages are waiting for the broker".into(),
                ));
            }
            written
                .await
                .unwrap_or_else(|_| Err(WriteError::Unavailable("the gateway is stopping".into())))
        })
    }
}

/// The publishing task: one publish at a time, in queue order.
async fn publish_in_order(
    connector: Connector,
    exchange: String,
    mut writes: mpsc::Receiver<Write>,
    shutdown: CancellationToken,
) {
    let mut link: Option<(Connection, Channel)> = None;
    loop {
        let (event, done) = tokio::select! {
            _ = shutdown.cancelled() => return,
            write = writes.recv() => match write {
                Some(write) => write,
                None => return,
            },
        };
        let published = match channel(&connector, &mut link).await {
            Ok(channel) => publish(&channel, &exchange, &event).await,
            Err(error) => Err(error),
        };
        match published {
            Ok(confirm) => {
                // The confirm is awaited beside the next publishes.
                tokio::spawn(async move {
                    let _ = done.send(settle(confirm).await);
                });
            }
            Err(error) => {
                link = None;
                let _ = done.send(Err(error));
            }
        }
    }
}

/// The open channel, or a new one (in confirm mode) if there is none or
/// the last one died.
async fn channel(
    connector: &Connector,
    link: &mut Option<(Connection, Channel)>,
) -> Result<Channel, WriteError> {
    if let Some((connection, channel)) = link.as_ref()
        && connection.status().connected()
        && channel.status().connected()
    {
        return Ok(channel.clone());
    }
    let unavailable = |error: &dyn std::fmt::Display| WriteError::Unavailable(error.to_string());
    let connection = connector.connect().await.map_err(|e| unavailable(&e))?;
    let channel = connection
        .create_channel()
        .await
        .map_err(|e| unavailable(&e))?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .map_err(|e| unavailable(&e))?;
    *link = Some((connection, channel.clone()));
    Ok(channel)
}

/// Publishes one message (JSON, as backend services publish it and
/// transcript consumers read it; the decoder validates it again on the way
/// back); the broker's confirm is still to come.
async fn publish(
    channel: &Channel,
    exchange: &str,
    event: &RoomEvent,
) -> Result<PublisherConfirm, WriteError> {
    let payload = serde_json::to_vec(event)
        .map_err(|e| WriteError::Unavailable(format!("cannot encode: {e}")))?;
    let mut properties = BasicProperties::default()
        .with_content_type(JSON_CONTENT_TYPE.into())
        .with_delivery_mode(PERSISTENT)
        .with_app_id("tourcast".into())
        .with_timestamp(u64::try_from(Utc::now().timestamp()).unwrap_or_default());
    if let Some(id) = event.event_id.as_deref() {
        properties = properties.with_message_id(id.into());
    }
    channel
        .basic_publish(
            exchange.into(),
            ROOM_MESSAGE.into(),
            BasicPublishOptions {
                mandatory: true,
                ..BasicPublishOptions::default()
            },
            &payload,
            properties,
        )
        .await
        .map_err(|error| WriteError::Unavailable(error.to_string()))
}

/// What the broker said of a published message.
async fn settle(confirm: PublisherConfirm) -> Result<(), WriteError> {
    match timeout(CONFIRM_TIMEOUT, confirm).await {
        Ok(Ok(Confirmation::Ack(None) | Confirmation::NotRequested)) => Ok(()),
        Ok(Ok(Confirmation::Ack(Some(returned)))) => Err(WriteError::Unroutable(format!(
            "{} {}",
            returned.reply_code, returned.reply_text
        ))),
        Ok(Ok(Confirmation::Nack(_))) => Err(WriteError::Refused),
        Ok(Err(error)) => Err(WriteError::Unavailable(error.to_string())),
        Err(_) => Err(WriteError::Timeout(CONFIRM_TIMEOUT)),
    }
}
