//! `loadgen`: load generator for tourcast benchmarks (loopback only).
//!
//! - `loadgen idle`: opens N idle WebSocket (or plain TCP) connections with
//!   bounded concurrency, keeps them reading (so keep-alive pongs go back),
//!   and reports the target process's resident-memory growth per connection
//!   (`VmRSS` from `/proc/<pid>/status`, median of several samples).
//! - `loadgen latency`: N clients subscribed to `*`; publishes availability
//!   events to RabbitMQ at a fixed rate (or as one burst) and measures
//!   publish → client receipt latency for every (client, event). With
//!   `--jwt-secret`, it can add notification subscribers and a stats
//!   admin (`loadgen/channels.rs`) to measure what they cost the tours.
//! - `loadgen bare`: a bare accept loop (plain TCP, or tungstenite with the
//!   gateway's buffer sizes) to compare per-connection costs against; with
//!   `--mode fanout`, the least a push server can do per delivery (forward
//!   each RabbitMQ message to every socket), the floor for `latency` runs.
//! - `loadgen soak` (in `loadgen/soak.rs`): starts the gateway itself and
//!   runs N clients against it for a long time while events are published,
//!   the broker connection is closed and the gateway restarted; then checks
//!   every client's received events against the stream (missing,
//!   duplicated, out of order) and reports the gateway's RSS along the way.
//! - `loadgen replay` (in `loadgen/replay.rs`): fills a stream with N events
//!   over T tours, then times each gateway binary's full replay and its
//!   start from a checkpoint: ready, events/s, RSS, the `*` snapshot.
//! - `loadgen rooms` (in `loadgen/rooms.rs`): a room of many members over
//!   two instances (publish → delivery latency at every member, each
//!   message once, gateway CPU per delivery), then presence churn over
//!   many small rooms (convergence of both instances, CPU).
//!
//! Every target must be a loopback address, and every run is bounded in time.

use anyhow::{Context as _, Result};
use clap::{Parser, Subcommand};

mod bare;
mod channels;
mod idle;
mod latency;
mod replay;
mod rooms;
mod shared;
mod soak;
mod tokens;
mod wire;

use bare::BareArgs;
use idle::IdleArgs;
use latency::LatencyArgs;

/// Load generator for tourcast (targets loopback addresses only).
#[derive(Debug, Parser)]
#[command(name = "loadgen", version, about)]
struct Cli {
    /// Tokio worker threads of the load generator (default: one per core).
    #[arg(long, global = true)]
    threads: Option<usize>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Open N idle connections and measure the server's memory growth.
    Idle(IdleArgs),
    /// Publish events to RabbitMQ and measure publish → client latency.
    Latency(LatencyArgs),
    /// Run a bare accept loop to compare per-connection costs against.
    Bare(BareArgs),
    /// Long run with broker closes and a gateway restart; checks every
    /// client's received set against the stream.
    Soak(soak::SoakArgs),
    /// Fill a stream, then time full replays and checkpoint starts of
    /// gateway binaries (ready, events/s, RSS, `*` snapshot).
    Replay(replay::ReplayArgs),
    /// A 1,000-member room over two instances (publish → delivery latency,
    /// exactly-once counts, CPU per delivery), then presence churn
    /// (convergence time, CPU).
    Rooms(rooms::RoomsArgs),
    /// The bytes a `"*"` snapshot takes on the wire, plain and with
    /// permessage-deflate.
    Wire(wire::WireArgs),
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(threads) = cli.threads {
        builder.worker_threads(threads.max(1));
    }
    let runtime = builder
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    runtime.block_on(async move {
        match cli.command {
            Command::Idle(args) => idle::idle(args).await,
            Command::Latency(args) => latency::latency(args).await,
            Command::Bare(args) => bare::bare(args).await,
            Command::Soak(args) => soak::soak(args).await,
            Command::Replay(args) => replay::replay(args).await,
            Command::Rooms(args) => rooms::rooms(args).await,
            Command::Wire(args) => wire::wire(args).await,
        }
    })
}
