//! Checkpoints on the broker: the folded state, written to a second stream
//! (`<stream>.checkpoints`) every `CHECKPOINT_INTERVAL`, and the newest
//! valid one read at start-up, so that an instance replays only the events
//! after it.
//!
//! The event stream stays the truth. A checkpoint is only a shortcut to a
//! position in it, and it is believed only when everything checks: its
//! digest (`CheckpointEnvelope.sha256`), its format, its epoch and stream,
//! its own consistency (see [`crate::state`]), and that the event stream
//! still holds the event at its position (not recreated, not expired). A
//! checkpoint that fails any of these is logged, counted and skipped, and
//! the previous one is tried, then a full replay. Several instances writing
//! is harmless: at one position they write the same state, and a reader
//! takes the newest that checks.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt as _;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Connection};
use prost::Message as _;
use sha2::{Digest as _, Sha256};
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;

use super::connect::{ConnectError, Connector};
use super::stream::{probe_tail, stream_offset};
use super::topology::{declare_stream, stream_arguments};
use crate::engine::{Engine, ReadBack, ReadBackError};
use crate::protocol::v1::{Checkpoint, CheckpointEnvelope};
use crate::state::CheckpointLimits;
use crate::telemetry::CHECKPOINTS;
use crate::time::now_rfc3339;

/// The layout of `CheckpointEnvelope.body` this build writes and reads.
pub const FORMAT: u32 = 1;
/// Checkpoints tried at start-up, newest first, before a full replay.
const CANDIDATES: u64 = 4;
/// Checkpoints can be megabytes: read them a few at a time.
const READ_PREFETCH: u16 = 2;
/// The longest start-up may wait on the checkpoint stream.
const LOAD_DEADLINE: Duration = Duration::from_secs(20);
/// Silence this long from the checkpoint stream ends a read.
const READ_IDLE: Duration = Duration::from_secs(2);
/// The longest a write may take, connection included.
const WRITE_DEADLINE: Duration = Duration::from_secs(20);

/// Settings of checkpointing.
#[derive(Debug, Clone)]
pub struct CheckpointConfig {
    /// The checkpoint stream.
    pub stream: String,
    /// The event stream the checkpoints fold (named in each checkpoint).
    pub event_stream: String,
    /// Time between writes; zero writes none.
    pub interval: Duration,
    /// What a checkpoint keeps.
    pub limits: CheckpointLimits,
    /// Retention of the checkpoint stream, in bytes.
    pub max_bytes: u64,
    /// Skip loading (a full replay), e.g. to measure one.
    pub ignore: bool,
    /// Written into each checkpoint, for logs.
    pub instance_id: String,
}

/// Reads and writes checkpoints on one broker.
pub struct CheckpointStore {
    connector: Connector,
    config: CheckpointConfig,
}

/// Why a checkpoint was not used.
#[derive(Debug, thiserror::Error)]
enum Skip {
    #[error("its digest does not match: corrupt or truncated")]
    Corrupt,
    #[error("it does not decode: {0}")]
    Malformed(String),
    #[error("format {0} is not this build's ({FORMAT})")]
    Format(u32),
    #[error("it is for stream {0:?}")]
    OtherStream(String),
    #[error("the event stream no longer holds its position {0}")]
    Gone(u64),
    #[error("the event stream holds another event at its position {0} (recreated?)")]
    Replaced(u64),
    #[error("{0}")]
    Restore(#[from] crate::state::RestoreError),
}

impl Skip {
    fn label(&self) -> &'static str {
        match self {
            Skip::Corrupt | Skip::Malformed(_) => "corrupt",
            Skip::Format(_) | Skip::OtherStream(_) => "incompatible",
            Skip::Gone(_) | Skip::Replaced(_) => "gone",
            Skip::Restore(crate::state::RestoreError::OtherEpoch { .. })
            | Skip::Restore(crate::state::RestoreError::Settings(_)) => "incompatible",
            Skip::Restore(_) => "corrupt",
        }
    }
}

impl CheckpointStore {
    /// A store for `config`, connecting with `connector`.
    pub fn new(connector: Connector, config: CheckpointConfig) -> Self {
        CheckpointStore { connector, config }
    }

    /// Declares the checkpoint stream (a stream of its own, with its own
    /// retention: a few checkpoints are all anyone needs).
    async fn declare(&self, connection: &Connection) -> Result<lapin::Channel, lapin::Error> {
        let max_bytes = self.config.max_bytes;
        let arguments = stream_arguments(None, max_bytes, (max_bytes / 4).max(1_000_000));
        declare_stream(connection, &self.config.stream, arguments).await
    }

    /// Restores the newest checkpoint that checks into `engine`, trying
    /// older ones after a failure; returns the stream position it is at, or
    /// `None` (a full replay). `log` is the event stream, to check that it
    /// still holds the checkpoint's position.
    pub async fn load(&self, engine: &Engine, log: &dyn ReadBack) -> Option<u64> {
        if self.config.ignore {
            tracing::info!("ignoring checkpoints (--ignore-checkpoints): full replay");
            return None;
        }
        let candidates = match timeout(LOAD_DEADLINE, self.newest()).await {
            Ok(Ok(candidates)) => candidates,
            Ok(Err(error)) => {
                tracing::warn!(%error, "cannot read the checkpoint stream; full replay");
                metrics::counter!(CHECKPOINTS, "outcome" => "unreadable").increment(1);
                return None;
            }
            Err(_) => {
                tracing::warn!("the checkpoint stream did not answer in time; full replay");
                metrics::counter!(CHECKPOINTS, "outcome" => "unreadable").increment(1);
                return None;
            }
        };
        for (offset, payload) in candidates {
            match self.try_restore(engine, log, &payload).await {
                Ok((position, checkpoint_of)) => {
                    metrics::counter!(CHECKPOINTS, "outcome" => "loaded").increment(1);
                    tracing::info!(
                        checkpoint_offset = offset,
                        position,
                        written_by = %checkpoint_of.0,
                        written_at = %checkpoint_of.1,
                        bytes = payload.len(),
                        "restored the state from a checkpoint; replaying only what follows"
                    );
                    return Some(position);
                }
                Err(skip) => {
                    metrics::counter!(CHECKPOINTS, "outcome" => skip.label()).increment(1);
                    tracing::warn!(
                        checkpoint_offset = offset,
                        reason = %skip,
                        "skipped a checkpoint"
                    );
                }
            }
        }
        tracing::info!("no usable checkpoint: replaying the whole stream");
        None
    }

    async fn try_restore(
        &self,
        engine: &Engine,
        log: &dyn ReadBack,
        payload: &[u8],
    ) -> Result<(u64, (String, String)), Skip> {
        let checkpoint = open(payload)?;
        if checkpoint.stream != self.config.event_stream {
            return Err(Skip::OtherStream(checkpoint.stream));
        }
        let position = checkpoint.position;
        if position == 0 {
            return Err(Skip::Malformed("position 0".into()));
        }
        // The event at the checkpoint's position must still be in the
        // stream: otherwise the stream was recreated or has expired past
        // it, and what follows would not follow from this state.
        // And it must be the same event: a stream recreated under the same
        // name may have grown past the position with other events.
        match log.read(position - 1, position).await {
            Ok(events)
                if events.iter().any(|event| {
                    event.position() == Some(position)
                        && event.fingerprint() == checkpoint.position_fingerprint
                }) => {}
            Ok(_) => return Err(Skip::Replaced(position)),
            Err(ReadBackError::Expired) => return Err(Skip::Gone(position)),
            Err(error) => {
                tracing::debug!(%error, "cannot check the checkpoint's position");
                return Err(Skip::Gone(position));
            }
        }
        let written = (checkpoint.written_by.clone(), checkpoint.written_at.clone());
        let position = engine.restore(checkpoint)?;
        Ok((position, written))
    }

    /// The last few checkpoints, newest first, with their offsets.
    async fn newest(&self) -> Result<Vec<(u64, Vec<u8>)>, ConnectError> {
        let connection = self.connector.connect().await?;
        let result = async {
            let channel = self.declare(&connection).await?;
            let _ = channel.close(200, "declared".into()).await;
            let tag = format!("tourcast-checkpoint-{}", uuid::Uuid::new_v4().simple());
            let Some(tail) =
                probe_tail(&connection, &self.config.stream, &format!("{tag}-probe")).await?
            else {
                return Ok(Vec::new());
            };
            let from = tail.saturating_sub(CANDIDATES - 1);
            let channel = connection.create_channel().await?;
            channel
                .basic_qos(READ_PREFETCH, BasicQosOptions::default())
                .await?;
            let mut arguments = FieldTable::default();
            arguments.insert(
                "x-stream-offset".into(),
                AMQPValue::LongLongInt(i64::try_from(from).unwrap_or(0)),
            );
            let mut consumer = channel
                .basic_consume(
                    self.config.stream.as_str().into(),
                    tag.as_str().into(),
                    BasicConsumeOptions::default(),
                    arguments,
                )
                .await?;
            let mut found = Vec::new();
            while let Ok(Some(delivery)) = timeout(READ_IDLE, consumer.next()).await {
                let delivery = delivery?;
                let offset = stream_offset(&delivery.properties);
                delivery.ack(BasicAckOptions::default()).await?;
                let Some(offset) = offset else { continue };
                if offset >= from {
                    found.push((offset, delivery.data));
                }
                if offset >= tail {
                    break;
                }
            }
            let _ = channel.close(200, "checkpoints read".into()).await;
            found.sort_by_key(|(offset, _)| std::cmp::Reverse(*offset));
            Ok::<_, lapin::Error>(found)
        }
        .await;
        let _ = connection.close(200, "checkpoints read".into()).await;
        Ok(result?)
    }

    /// Writes one checkpoint of `engine`, if it has moved since `after`;
    /// returns the position written.
    pub async fn write(&self, engine: &Engine, after: u64) -> Result<Option<u64>, String> {
        let Some(mut checkpoint) = engine.checkpoint(&self.config.event_stream, self.config.limits)
        else {
            return Ok(None);
        };
        if checkpoint.position <= after {
            return Ok(None);
        }
        checkpoint.written_by.clone_from(&self.config.instance_id);
        checkpoint.written_at = now_rfc3339();
        let position = checkpoint.position;
        let payload = seal(&checkpoint);
        let publish = async {
            let connection = self.connector.connect().await?;
            let result = async {
                let channel = self.declare(&connection).await?;
                channel
                    .confirm_select(ConfirmSelectOptions::default())
                    .await?;
                let confirm = channel
                    .basic_publish(
                        "".into(),
                        self.config.stream.as_str().into(),
                        BasicPublishOptions {
                            mandatory: true,
                            ..BasicPublishOptions::default()
                        },
                        &payload,
                        BasicProperties::default()
                            .with_content_type("application/x-protobuf".into())
                            .with_delivery_mode(2),
                    )
                    .await?
                    .await?;
                Ok::<_, lapin::Error>(confirm)
            }
            .await;
            let _ = connection.close(200, "checkpoint written".into()).await;
            Ok::<_, ConnectError>(result?)
        };
        let written = match timeout(WRITE_DEADLINE, publish).await {
            Ok(Ok(confirm)) => Ok(confirm.is_ack() && confirm.take_message().is_none()),
            Ok(Err(error)) => Err(error.to_string()),
            Err(_) => Err(format!("no confirm within {WRITE_DEADLINE:?}")),
        };
        match written {
            // Acked and not returned: the stream has it.
            Ok(true) => {
                metrics::counter!(CHECKPOINTS, "outcome" => "written").increment(1);
                tracing::info!(position, bytes = payload.len(), "checkpoint written");
                Ok(Some(position))
            }
            Ok(false) => Err("the broker did not take the checkpoint".into()),
            Err(error) => Err(error),
        }
    }

    /// Writes a checkpoint every interval while the source is caught up,
    /// and a last one at shutdown, so that a restart replays little.
    pub async fn run_writer(
        self: Arc<Self>,
        engine: Arc<Engine>,
        caught_up: tokio::sync::watch::Receiver<bool>,
        shutdown: CancellationToken,
    ) {
        if self.config.interval.is_zero() {
            return;
        }
        let mut written = 0u64;
        let mut ticker = tokio::time::interval(self.config.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.tick().await;
        loop {
            let stopping = tokio::select! {
                _ = shutdown.cancelled() => true,
                _ = ticker.tick() => false,
            };
            // Only a caught-up state is worth resuming from.
            if *caught_up.borrow() {
                match self.write(&engine, written).await {
                    Ok(Some(position)) => written = position,
                    Ok(None) => {}
                    Err(error) => {
                        metrics::counter!(CHECKPOINTS, "outcome" => "write_failed").increment(1);
                        tracing::warn!(%error, "checkpoint not written");
                    }
                }
            }
            if stopping {
                return;
            }
        }
    }
}

/// A checkpoint in its envelope, as published.
pub fn seal(checkpoint: &Checkpoint) -> Vec<u8> {
    let body = checkpoint.encode_to_vec();
    let sha256 = Sha256::digest(&body).to_vec();
    CheckpointEnvelope {
        format: FORMAT,
        body,
        sha256,
    }
    .encode_to_vec()
}

/// The checkpoint in a published envelope, if it checks.
fn open(payload: &[u8]) -> Result<Checkpoint, Skip> {
    let envelope =
        CheckpointEnvelope::decode(payload).map_err(|e| Skip::Malformed(e.to_string()))?;
    if envelope.format != FORMAT {
        return Err(Skip::Format(envelope.format));
    }
    if Sha256::digest(&envelope.body).as_slice() != envelope.sha256.as_slice() {
        return Err(Skip::Corrupt);
    }
    Checkpoint::decode(envelope.body.as_slice()).map_err(|e| Skip::Malformed(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checkpoint() -> Checkpoint {
        Checkpoint {
            epoch: "e".into(),
            stream: "s".into(),
            position: 42,
            ..Checkpoint::default()
        }
    }

    #[test]
    fn a_sealed_checkpoint_opens_and_any_flipped_byte_is_caught() {
        let sealed = seal(&checkpoint());
        assert_eq!(open(&sealed).expect("opens").position, 42);
        for at in 0..sealed.len() {
            let mut broken = sealed.clone();
            broken[at] ^= 0x20;
            assert!(open(&broken).is_err(), "byte {at} flipped went unnoticed");
        }
        assert!(open(&sealed[..sealed.len() - 3]).is_err(), "truncated");
    }

    #[test]
    fn another_format_is_incompatible() {
        let body = checkpoint().encode_to_vec();
        let envelope = CheckpointEnvelope {
            format: FORMAT + 1,
            sha256: Sha256::digest(&body).to_vec(),
            body,
        };
        let skip = open(&envelope.encode_to_vec()).expect_err("refused");
        assert_eq!(skip.label(), "incompatible");
    }
}
