//! The RabbitMQ event source, one file per job:
//! - [`settings`]: what it is told (broker, exchange, stream, retention,
//!   checkpoints) and the epoch that names the stream;
//! - [`connect`]: how every connection to the broker is opened and named;
//! - `topology`: declaring the exchange, the streams and the bindings;
//! - `stream`: reading a stream: offsets, where it ends, acks as credit;
//! - `consumer`: the live consumer, which folds the stream into the engine;
//! - `read_back`: reading a range of the stream again, for recoveries
//!   older than memory;
//! - [`checkpoints`]: the folded state written to, and restored from, a
//!   stream of its own;
//! - [`peers`]: the transient link instances share figures over;
//! - [`writer`]: clients' room messages, published into the stream.
//!
//! # Topology
//! Publishers send to the durable topic exchange (`RABBITMQ_EXCHANGE`). The
//! gateway binds one durable RabbitMQ **stream** (`RABBITMQ_STREAM`) to it
//! with the routing keys it serves, and every gateway instance reads that
//! same stream with its own (non-destructive) consumer:
//! - an instance that starts replays the retention window (`first` by
//!   default) to rebuild every tour's state before it reports ready, then
//!   follows the stream live, so its snapshot is complete at once;
//! - a restarted instance loses nothing: the stream kept what was published
//!   while it was down (within retention);
//! - every instance sees every event, and no per-instance queue is left
//!   behind when an instance goes away;
//! - the stream offset (+1) becomes the event's `seq`, so every instance
//!   numbers events identically and `seq`/`epoch` outlive one process:
//!   a client can resume with `since` on any instance, after any restart.

pub mod checkpoints;
pub mod connect;
mod consumer;
pub mod peers;
mod read_back;
pub mod settings;
mod stream;
mod topology;
pub mod writer;

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::inbound::EventDecoder;
use super::{SourceState, SourceStatus, catalog};
use crate::engine::Engine;

pub use connect::{ConnectError, Connector};
pub use settings::{
    BrokerArgs, RabbitArgs, ReplayFrom, epoch, parse_amqp_name, parse_amqp_url, redact_url,
};
pub use topology::declare_exchange;

/// Consumes RabbitMQ until `shutdown`: declares the topology, replays the
/// stream, follows it live, and reconnects with backoff whenever the broker
/// goes away. Never returns early: every failure is logged and retried.
pub async fn run(
    args: RabbitArgs,
    engine: Arc<Engine>,
    status: SourceStatus,
    shutdown: CancellationToken,
) {
    let stop = |error: &dyn std::fmt::Display| {
        tracing::error!(%error, "the RabbitMQ source cannot start");
        status.set(SourceState::Stopped);
    };
    // The argument parser validated the URL; a caller that built the
    // arguments by hand with a bad one is told so, not silently redirected.
    let connector = match Connector::for_gateway(&args) {
        Ok(connector) => connector,
        Err(error) => return stop(&format!("invalid RABBITMQ_URL: {error}")),
    };
    // Only a build bug (the generated schema) makes the decoders fail.
    let decoder = match EventDecoder::new(args.max_event_bytes) {
        Ok(decoder) => decoder,
        Err(error) => return stop(&error),
    };
    let read_back = Arc::new(read_back::StreamReadBack::new(
        connector.for_job("read-back"),
        args.stream.clone(),
        decoder,
    ));
    engine.attach_read_back(read_back.clone());
    let checkpoints = Arc::new(checkpoints::CheckpointStore::new(
        connector.for_job("checkpoints"),
        checkpoints::CheckpointConfig {
            stream: args
                .checkpoint_stream
                .clone()
                .unwrap_or_else(|| format!("{}.checkpoints", args.stream)),
            event_stream: args.stream.clone(),
            interval: args.checkpoint_interval,
            limits: crate::state::CheckpointLimits {
                history_budget: args.checkpoint_history,
            },
            max_bytes: args.checkpoint_max_bytes,
            ignore: args.ignore_checkpoints,
            instance_id: connector.name().to_string(),
        },
    ));
    let mut consumer = match consumer::StreamConsumer::new(
        args.clone(),
        connector,
        Arc::clone(&engine),
        status.clone(),
    ) {
        Ok(consumer) => consumer,
        Err(error) => return stop(&error),
    };
    // The stream's topology first: the checkpoint's position is checked
    // against it. A broker that is down now means a full replay later.
    if let Some(position) = checkpoints.load(&engine, read_back.as_ref()).await {
        consumer.resume_at(position);
    }
    let writer = tokio::spawn(Arc::clone(&checkpoints).run_writer(
        Arc::clone(&engine),
        consumer.caught_up(),
        shutdown.clone(),
    ));
    let catalog = args.catalog_url.clone().map(|url| {
        tokio::spawn(catalog::bootstrap(
            catalog::CatalogConfig {
                url,
                retry: args.catalog_retry,
            },
            engine,
            consumer.caught_up(),
            shutdown.clone(),
        ))
    });
    consumer.run(shutdown).await;
    if let Some(task) = catalog {
        task.abort();
    }
    // The last checkpoint at shutdown, so that a restart replays little.
    let _ = writer.await;
}
