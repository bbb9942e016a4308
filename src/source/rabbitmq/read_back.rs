//! Reading the stream back: the [`ReadBack`] behind recoveries that are
//! older than the engine's in-memory history.
//!
//! A client that resubscribes with `since` after missing more than
//! `HISTORY_SIZE` events of a tour used to get a snapshot, which restores
//! seat counts but loses the `tour.availability.low` alerts of the gap. The
//! stream still holds those events (within retention), so this reads the
//! range back with a short-lived consumer attached at the offset after
//! `since`: the stream offset *is* the `seq` minus one, on every instance.
//!
//! Each read is bounded: by the engine's `RECOVERY_MAX_SCAN` events, by a
//! deadline, and by a few reads at a time per gateway (a reconnect storm
//! queues here instead of opening a consumer per client). The reads share
//! one AMQP connection, opened on first use and again after it breaks.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use futures_util::StreamExt as _;
use futures_util::future::BoxFuture;
use lapin::Connection;
use lapin::options::{BasicCancelOptions, BasicConsumeOptions, BasicQosOptions};
use lapin::types::FieldTable;
use tokio::sync::{Mutex, Semaphore};
use tokio::time::timeout;

use super::ReplayFrom;
use super::connect::Connector;
use super::stream::{AckBatch, incoming, offset_argument, stream_offset};
use crate::engine::{ReadBack, ReadBackError};
use crate::event::SourceEvent;
use crate::source::inbound::EventDecoder;

/// Reads running at once; more wait their turn.
const CONCURRENT_READS: usize = 4;
/// Deliveries in flight per read.
const READ_PREFETCH: u16 = 1_000;
/// The longest one read may take, connection included.
const READ_DEADLINE: Duration = Duration::from_secs(10);
/// Silence from the stream this long ends a read as unavailable.
const DELIVERY_WAIT: Duration = Duration::from_secs(3);

/// The stream, read back on demand.
pub(super) struct StreamReadBack {
    inner: Arc<Inner>,
}

struct Inner {
    connector: Connector,
    stream: String,
    decoder: EventDecoder,
    connection: Mutex<Option<Connection>>,
    reads: Semaphore,
}

impl StreamReadBack {
    pub(super) fn new(connector: Connector, stream: String, decoder: EventDecoder) -> Self {
        StreamReadBack {
            inner: Arc::new(Inner {
                connector,
                stream,
                decoder,
                connection: Mutex::new(None),
                reads: Semaphore::new(CONCURRENT_READS),
            }),
        }
    }
}

impl ReadBack for StreamReadBack {
    fn read(
        &self,
        after: u64,
        through: u64,
    ) -> BoxFuture<'static, Result<Vec<SourceEvent>, ReadBackError>> {
        let inner = Arc::clone(&self.inner);
        Box::pin(async move {
            // The wait for a turn counts against the deadline too: in a
            // reconnect storm a client gets a snapshot after the deadline
            // rather than queueing without end (its connection does not
            // read meanwhile).
            let read = async {
                let _turn = inner
                    .reads
                    .acquire()
                    .await
                    .map_err(|_| ReadBackError::Unavailable("shutting down".into()))?;
                inner.read(after, through).await
            };
            timeout(READ_DEADLINE, read).await.map_err(|_| {
                ReadBackError::Unavailable(format!("no answer in {READ_DEADLINE:?}"))
            })?
        })
    }
}

impl Inner {
    /// Positions `(after, through]` are offsets `after ..= through - 1`.
    async fn read(&self, after: u64, through: u64) -> Result<Vec<SourceEvent>, ReadBackError> {
        let channel = self.channel().await?;
        let result = self.consume(&channel, after, through).await;
        let _ = channel.close(200, "recovery read done".into()).await;
        result
    }

    async fn consume(
        &self,
        channel: &lapin::Channel,
        after: u64,
        through: u64,
    ) -> Result<Vec<SourceEvent>, ReadBackError> {
        channel
            .basic_qos(READ_PREFETCH, BasicQosOptions::default())
            .await
            .map_err(unavailable)?;
        let tag = format!("tourcast-recovery-{}", uuid::Uuid::new_v4().simple());
        let mut arguments = FieldTable::default();
        arguments.insert(
            "x-stream-offset".into(),
            offset_argument(&ReplayFrom::Offset(after)),
        );
        let mut consumer = channel
            .basic_consume(
                self.stream.as_str().into(),
                tag.as_str().into(),
                BasicConsumeOptions::default(),
                arguments,
            )
            .await
            .map_err(unavailable)?;
        let mut acks = AckBatch::new(READ_PREFETCH);
        let mut events = Vec::new();
        let mut first = true;
        loop {
            let delivery = match timeout(DELIVERY_WAIT, consumer.next()).await {
                Ok(Some(Ok(delivery))) => delivery,
                Ok(Some(Err(error))) => return Err(unavailable(error)),
                Ok(None) => return Err(ReadBackError::Unavailable("consumer cancelled".into())),
                Err(_) => return Err(ReadBackError::Unavailable("the stream went quiet".into())),
            };
            let offset = stream_offset(&delivery.properties);
            let payload = incoming(&delivery);
            let decoded = self.decoder.decode(payload, Utc::now());
            acks.push(delivery.acker).await.map_err(unavailable)?;
            let Some(offset) = offset else {
                return Err(ReadBackError::Unavailable(
                    "deliveries carry no offset".into(),
                ));
            };
            // A consumer attaches at the start of the chunk holding `after`.
            if offset < after {
                continue;
            }
            if first && offset > after {
                // Retention dropped the start of the range.
                return Err(ReadBackError::Expired);
            }
            first = false;
            let position = offset + 1;
            if position > through {
                break;
            }
            // Poison was skipped live too.
            if let Ok(mut event) = decoded {
                event.set_position(Some(position));
                events.push(event);
            }
            if position == through {
                break;
            }
        }
        let _ = acks.flush().await;
        let _ = channel
            .basic_cancel(tag.as_str().into(), BasicCancelOptions::default())
            .await;
        Ok(events)
    }

    /// A channel on the shared connection, (re)connecting when needed.
    async fn channel(&self) -> Result<lapin::Channel, ReadBackError> {
        let mut connection = self.connection.lock().await;
        if let Some(open) = connection.as_ref()
            && open.status().connected()
            && let Ok(channel) = open.create_channel().await
        {
            return Ok(channel);
        }
        let fresh: Connection = self
            .connector
            .connect()
            .await
            .map_err(|error| ReadBackError::Unavailable(error.to_string()))?;
        let channel = fresh.create_channel().await.map_err(unavailable)?;
        *connection = Some(fresh);
        Ok(channel)
    }
}

fn unavailable(error: lapin::Error) -> ReadBackError {
    ReadBackError::Unavailable(error.to_string())
}
