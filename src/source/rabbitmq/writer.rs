//! Writing clients' room messages into the stream: each one is published
//! on the exchange (routing key `room.message`, persistent, mandatory, in
//! confirm mode), which routes it into the stream every instance reads.
//! The write is done when the broker confirms it; a message it returns
//! (no stream bound), refuses, or leaves unconfirmed is reported, never
//! retried here: the client is told and may retry.
//!
//! One connection and channel for the whole gateway, opened on the first
//! write and again after it fails. Writes from every connection share it;
//! lapin pipelines them and matches each confirm to its publish.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use futures_util::future::BoxFuture;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::{BasicProperties, Channel, Confirmation, Connection};
use tokio::sync::Mutex;
use tokio::time::timeout;

use super::Connector;
use crate::event::ROOM_MESSAGE;
use crate::protocol::v1::RoomEvent;
use crate::source::inbound::JSON_CONTENT_TYPE;
use crate::source::{StreamWriter, WriteError};

/// How long the broker may take to confirm a message.
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(5);
/// AMQP delivery mode 2: written to disk (the stream is durable anyway).
const PERSISTENT: u8 = 2;

/// Publishes room messages on the exchange, for [`StreamWriter`].
pub struct RoomWriter {
    connector: Connector,
    exchange: String,
    link: Arc<Mutex<Option<(Connection, Channel)>>>,
}

impl RoomWriter {
    /// A writer publishing on `exchange` over connections from `connector`.
    pub fn new(connector: Connector, exchange: String) -> Self {
        RoomWriter {
            connector,
            exchange,
            link: Arc::new(Mutex::new(None)),
        }
    }
}

impl StreamWriter for RoomWriter {
    fn write(&self, event: RoomEvent) -> BoxFuture<'static, Result<(), WriteError>> {
        let connector = self.connector.clone();
        let exchange = self.exchange.clone();
        let link = Arc::clone(&self.link);
        Box::pin(async move {
            // JSON, as backend services publish it and transcript consumers
            // read it; the decoder validates it again on the way back.
            let payload = serde_json::to_vec(&event)
                .map_err(|e| WriteError::Unavailable(format!("cannot encode: {e}")))?;
            let channel = channel(&connector, &link).await?;
            let mut properties = BasicProperties::default()
                .with_content_type(JSON_CONTENT_TYPE.into())
                .with_delivery_mode(PERSISTENT)
                .with_app_id("tourcast".into())
                .with_timestamp(u64::try_from(Utc::now().timestamp()).unwrap_or_default());
            if let Some(id) = event.event_id.as_deref() {
                properties = properties.with_message_id(id.into());
            }
            let published = channel
                .basic_publish(
                    exchange.as_str().into(),
                    ROOM_MESSAGE.into(),
                    BasicPublishOptions {
                        mandatory: true,
                        ..BasicPublishOptions::default()
                    },
                    &payload,
                    properties,
                )
                .await;
            let confirm = match published {
                Ok(confirm) => confirm,
                Err(error) => {
                    *link.lock().await = None;
                    return Err(WriteError::Unavailable(error.to_string()));
                }
            };
            match timeout(CONFIRM_TIMEOUT, confirm).await {
                Ok(Ok(Confirmation::Ack(None) | Confirmation::NotRequested)) => Ok(()),
                Ok(Ok(Confirmation::Ack(Some(returned)))) => Err(WriteError::Unroutable(format!(
                    "{} {}",
                    returned.reply_code, returned.reply_text
                ))),
                Ok(Ok(Confirmation::Nack(_))) => Err(WriteError::Refused),
                Ok(Err(error)) => {
                    *link.lock().await = None;
                    Err(WriteError::Unavailable(error.to_string()))
                }
                Err(_) => {
                    *link.lock().await = None;
                    Err(WriteError::Timeout(CONFIRM_TIMEOUT))
                }
            }
        })
    }
}

/// The shared channel, opened (in confirm mode) if there is none or the
/// last one died.
async fn channel(
    connector: &Connector,
    link: &Mutex<Option<(Connection, Channel)>>,
) -> Result<Channel, WriteError> {
    let mut link = link.lock().await;
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
