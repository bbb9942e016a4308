//! `loadgen replay`: how fast a gateway becomes ready over a full stream.
//!
//! It fills a fresh RabbitMQ stream with N availability events over T tours
//! (pipelined publishes with confirms; built once per run and reused by
//! every round), then, for each gateway binary under test, interleaved
//! round by round:
//! 1. a full replay (`--ignore-checkpoints`): time from process start to
//!    `/ready` 200, replay events/s (N over the time from the first
//!    delivery `/metrics` shows to ready), VmRSS once ready; it also
//!    writes checkpoints (`--checkpoint-interval`), and once one is
//!    counted written, the `*` snapshot is timed (subscribe → last part,
//!    total bytes) and the gateway is stopped (SIGTERM writes a final one);
//! 2. a start from that checkpoint (the default): time to ready, the
//!    events replayed after it, VmRSS.
//!
//! Each binary writes its own checkpoint stream, so no binary starts from
//! another's. Everything it declares is deleted at the end, unless
//! `--keep`; `--reuse` runs against a stream kept from an earlier run.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail};
use chrono::{SecondsFormat, Utc};
use clap::Args;
use futures_util::stream::FuturesOrdered;
use futures_util::{SinkExt as _, StreamExt as _};
use lapin::options::{
    BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions, ExchangeDeleteOptions,
    QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{BasicProperties, Confirmation, Connection, ConnectionProperties, ExchangeKind};
use rand::RngExt as _;
use tokio_tungstenite::tungstenite::Message;

use crate::shared::{Target, connect_ws, read_rss};

const ROUTING_KEY: &str = "tour.availability.updated";
/// Publishes awaiting their confirm at once: enough to keep the broker's
/// stream writer busy without unbounded memory.
const PUBLISH_WINDOW: usize = 4_000;
/// How often `/ready` and `/metrics` are polled while a gateway starts.
const POLL: Duration = Duration::from_millis(25);
/// How long a stopped gateway may take to exit before it is killed.
const EXIT_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, Args)]
pub(crate) struct ReplayArgs {
    /// Events retained in the stream.
    #[arg(long, default_value_t = 100_000)]
    events: usize,
    /// Distinct tours the events are spread over (round robin).
    #[arg(long, default_value_t = 10_000)]
    tours: usize,
    /// Gateway binaries to compare, as `label=path` or a path (repeat).
    #[arg(long = "gateway", required = true)]
    gateways: Vec<String>,
    /// Rounds; each round runs every gateway once, in turn.
    #[arg(long, default_value_t = 1)]
    rounds: usize,
    /// First port; gateway i listens on port + i.
    #[arg(long, default_value_t = 18_600)]
    port: u16,
    /// AMQP URL (loopback only).
    #[arg(long, default_value = "amqp://guest:guest@127.0.0.1:5672/%2f")]
    amqp: String,
    /// Extra flags for every gateway, e.g. `--flag=--rabbitmq-prefetch=2000`.
    #[arg(long = "flag", allow_hyphen_values = true)]
    flags: Vec<String>,
    /// Skip the start from a checkpoint.
    #[arg(long)]
    no_checkpoint: bool,
    /// Longest a gateway may take to be ready.
    #[arg(long, default_value = "15m", value_parser = humantime::parse_duration)]
    ready_timeout: Duration,
    /// Keep the exchange and stream at the end (and print their name).
    #[arg(long)]
    keep: bool,
    /// Use the exchange and stream `<name>` of an earlier `--keep` run
    /// (`<name>` is both the stream and, with `_x`, the exchange) instead
    /// of filling a new one.
    #[arg(long)]
    reuse: Option<String>,
    /// Gateway logs go here (one file per start).
    #[arg(long, default_value = "/tmp")]
    log_dir: PathBuf,
    /// Print one JSON summary line at the end.
    #[arg(long)]
    json: bool,
}

struct Gateway {
    label: String,
    path: PathBuf,
}

fn parse_gateway(spec: &str) -> Result<Gateway> {
    let (label, path) = match spec.split_once('=') {
        Some((label, path)) => (label.to_string(), PathBuf::from(path)),
        None => {
            let path = PathBuf::from(spec);
            let label = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| spec.to_string());
            (label, path)
        }
    };
    if !path.exists() {
        bail!("no gateway binary at {}", path.display());
    }
    Ok(Gateway { label, path })
}

/// What the run declared on the broker.
struct Topology {
    amqp: String,
    stream: String,
    exchange: String,
}

impl Topology {
    fn checkpoint_stream(&self, gateway: usize) -> String {
        format!("{}.cp{gateway}", self.stream)
    }

    async fn admin(&self) -> Result<(Connection, lapin::Channel)> {
        let connection = Connection::connect(
            &self.amqp,
            ConnectionProperties::default()
                .with_connection_name(format!("loadgen-replay {}", self.stream).into()),
        )
        .await
        .context("connecting to RabbitMQ")?;
        let channel = connection.create_channel().await?;
        Ok((connection, channel))
    }

    /// The exchange, and the stream bound to it with retention large
    /// enough for the run (the gateway uses an existing stream as it is).
    async fn declare(&self, events: usize) -> Result<()> {
        let (connection, channel) = self.admin().await?;
        channel
            .exchange_declare(
                self.exchange.as_str().into(),
                ExchangeKind::Topic,
                ExchangeDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .context("declaring the exchange")?;
        let mut arguments = FieldTable::default();
        arguments.insert(
            "x-queue-type".into(),
            AMQPValue::LongString(LongString::from("stream")),
        );
        arguments.insert(
            "x-max-length-bytes".into(),
            AMQPValue::LongLongInt(((events as i64) * 1_000).max(100_000_000)),
        );
        channel
            .queue_declare(
                self.stream.as_str().into(),
                QueueDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                arguments,
            )
            .await
            .context("declaring the stream")?;
        channel
            .queue_bind(
                self.stream.as_str().into(),
                self.exchange.as_str().into(),
                ROUTING_KEY.into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .context("binding the stream")?;
        let _ = connection.close(200, "declared".into()).await;
        Ok(())
    }

    async fn delete(&self, gateways: usize) -> Result<()> {
        let (connection, channel) = self.admin().await?;
        let mut streams = vec![self.stream.clone()];
        streams.extend((0..gateways).map(|i| self.checkpoint_stream(i)));
        for stream in streams {
            channel
                .queue_delete(stream.as_str().into(), QueueDeleteOptions::default())
                .await
                .with_context(|| format!("deleting {stream}"))?;
        }
        channel
            .exchange_delete(
                self.exchange.as_str().into(),
                ExchangeDeleteOptions::default(),
            )
            .await
            .context("deleting the exchange")?;
        let _ = connection.close(200, "deleted".into()).await;
        Ok(())
    }

    /// Publishes `events` availability events over `tours` tours, with at
    /// most [`PUBLISH_WINDOW`] awaiting their confirm. Returns events/s.
    async fn fill(&self, events: usize, tours: usize) -> Result<f64> {
        let (connection, channel) = self.admin().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        let properties = BasicProperties::default()
            .with_content_type("application/json".into())
            .with_delivery_mode(2);
        let started = Instant::now();
        let mut pending = FuturesOrdered::new();
        let timestamp = Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true);
        for index in 0..events {
            let payload = event_payload(&self.stream, index, tours, &timestamp);
            let confirm = channel
                .basic_publish(
                    self.exchange.as_str().into(),
                    ROUTING_KEY.into(),
                    BasicPublishOptions::default(),
                    payload.as_bytes(),
                    properties.clone(),
                )
                .await
                .context("publishing")?;
            pending.push_back(confirm);
            while pending.len() >= PUBLISH_WINDOW {
                check_confirm(pending.next().await)?;
            }
            if index % 250_000 == 0 && index > 0 {
                eprintln!(
                    "replay: {index} published ({:.0}/s)",
                    index as f64 / started.elapsed().as_secs_f64()
                );
            }
        }
        while !pending.is_empty() {
            check_confirm(pending.next().await)?;
        }
        let rate = events as f64 / started.elapsed().as_secs_f64();
        let _ = connection.close(200, "filled".into()).await;
        Ok(rate)
    }
}

fn check_confirm(confirm: Option<lapin::Result<Confirmation>>) -> Result<()> {
    match confirm {
        Some(Ok(Confirmation::Ack(_))) => Ok(()),
        Some(Ok(other)) => bail!("publish not confirmed: {other:?}"),
        Some(Err(error)) => Err(error).context("awaiting a confirm"),
        None => Ok(()),
    }
}

/// `tour.availability.updated` in the SPEC's publisher shape.
fn event_payload(run: &str, index: usize, tours: usize, timestamp: &str) -> String {
    let tour = index % tours;
    serde_json::json!({
        "eventId": format!("{run}_{index}"),
        "tourId": format!("tour_{tour}"),
        "tourName": format!("Replay Tour {tour}"),
        "availableSeats": ((index / tours) % 20) as u32,
        "maxGroupSize": 20,
        "timestamp": timestamp,
    })
    .to_string()
}

/// One gateway process.
struct Process {
    child: tokio::process::Child,
    pid: u32,
    started: Instant,
    base: String,
}

impl Process {
    fn start(binary: &Gateway, port: u16, args: &[String], log: PathBuf) -> Result<Self> {
        let file = std::fs::File::create(&log).with_context(|| format!("{}", log.display()))?;
        let mut command = tokio::process::Command::new(&binary.path);
        command
            .args(args)
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .kill_on_drop(true);
        if std::env::var_os("RUST_LOG").is_none() {
            command.env("RUST_LOG", "info,lapin=error");
        }
        let started = Instant::now();
        let child = command
            .spawn()
            .with_context(|| format!("starting {}", binary.path.display()))?;
        let pid = child.id().ok_or_else(|| anyhow!("the gateway exited"))?;
        Ok(Process {
            child,
            pid,
            started,
            base: format!("http://127.0.0.1:{port}"),
        })
    }

    /// Polls `/ready` (and `/metrics`, for the first delivery) until 200.
    /// Returns (time to ready, time of the first delivery seen).
    async fn wait_ready(
        &mut self,
        http: &reqwest::Client,
        limit: Duration,
    ) -> Result<(Duration, Option<Duration>)> {
        let mut first_delivery = None;
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!("the gateway exited ({status}) before it was ready");
            }
            if let Ok(response) = http.get(format!("{}/ready", self.base)).send().await
                && response.status().is_success()
            {
                return Ok((self.started.elapsed(), first_delivery));
            }
            if first_delivery.is_none() {
                let metrics = self.metrics(http).await;
                if metrics.get(DELIVERIES).copied().unwrap_or(0.0) > 0.0 {
                    first_delivery = Some(self.started.elapsed());
                }
            }
            if self.started.elapsed() > limit {
                bail!("the gateway was not ready within {limit:?}");
            }
            tokio::time::sleep(POLL).await;
        }
    }

    async fn metrics(&self, http: &reqwest::Client) -> BTreeMap<String, f64> {
        let Ok(response) = http.get(format!("{}/metrics", self.base)).send().await else {
            return BTreeMap::new();
        };
        let text = response.text().await.unwrap_or_default();
        text.lines()
            .filter(|line| !line.starts_with('#'))
            .filter_map(|line| {
                let (name, value) = line.rsplit_once(' ')?;
                Some((name.to_string(), value.parse().ok()?))
            })
            .collect()
    }

    /// Waits for `tourcast_checkpoints_total{outcome="written"}` ≥ 1.
    async fn wait_checkpoint(&self, http: &reqwest::Client, limit: Duration) -> Result<Duration> {
        let started = Instant::now();
        loop {
            let metrics = self.metrics(http).await;
            if metrics.get(CHECKPOINT_WRITTEN).copied().unwrap_or(0.0) >= 1.0 {
                return Ok(started.elapsed());
            }
            if started.elapsed() > limit {
                bail!("no checkpoint written within {limit:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn rss_mib(&self) -> Option<f64> {
        read_rss(self.pid).ok().map(|r| r.vm_rss as f64 / 1024.0)
    }

    /// SIGTERM (the gateway writes its final checkpoint), then waits.
    async fn stop(mut self) -> Result<()> {
        // SAFETY: kill(2) on the pid we spawned and have not reaped.
        unsafe {
            libc::kill(self.pid as libc::pid_t, libc::SIGTERM);
        }
        match tokio::time::timeout(EXIT_TIMEOUT, self.child.wait()).await {
            Ok(status) => {
                status?;
                Ok(())
            }
            Err(_) => {
                let _ = self.child.kill().await;
                bail!("the gateway did not exit within {EXIT_TIMEOUT:?}")
            }
        }
    }
}

const DELIVERIES: &str = "tourcast_rabbitmq_deliveries_total";
const CHECKPOINT_WRITTEN: &str = "tourcast_checkpoints_total{outcome=\"written\"}";

/// The `*` snapshot as a client sees it.
#[derive(Debug, Clone, Copy, serde::Serialize)]
struct SnapshotTiming {
    /// Subscribe sent → last part received.
    ms: f64,
    bytes: usize,
    frames: usize,
    tours: usize,
}

async fn star_snapshot(port: u16) -> Result<SnapshotTiming> {
    let target = Target::parse(&format!("ws://127.0.0.1:{port}/ws"))?;
    let mut ws = connect_ws(&target).await?;
    // The `connection` greeting first.
    crate::shared::next_text(&mut ws).await?;
    let started = Instant::now();
    ws.send(Message::text(r#"{"type":"subscribe","tourId":"*"}"#))
        .await?;
    let mut timing = SnapshotTiming {
        ms: 0.0,
        bytes: 0,
        frames: 0,
        tours: 0,
    };
    let deadline = Duration::from_secs(120);
    loop {
        let text = tokio::time::timeout(deadline, crate::shared::next_text(&mut ws))
            .await
            .map_err(|_| anyhow!("no snapshot within {deadline:?}"))??;
        let value: serde_json::Value = serde_json::from_str(text.as_str())?;
        if value.get("type").and_then(|t| t.as_str()) != Some("snapshot") {
            continue;
        }
        timing.bytes += text.len();
        timing.frames += 1;
        timing.tours += value
            .get("tours")
            .and_then(|t| t.as_array())
            .map_or(0, Vec::len);
        let part = value.get("part").and_then(|p| p.as_u64());
        let parts = value.get("parts").and_then(|p| p.as_u64());
        if part == parts {
            timing.ms = started.elapsed().as_secs_f64() * 1e3;
            let _ = ws.close(None).await;
            return Ok(timing);
        }
    }
}

/// One start of one gateway.
#[derive(Debug, Clone, Default, serde::Serialize)]
struct Start {
    ready_s: f64,
    /// Events delivered by the time it was ready.
    replayed: f64,
    /// `replayed` over (ready − first delivery seen).
    replay_per_s: Option<f64>,
    rss_mib: Option<f64>,
    /// CPU seconds (user + system) the gateway used from start to ready.
    gateway_cpu_s: Option<f64>,
    /// CPU seconds the broker (`beam.smp`) used meanwhile, all its work
    /// included (other users of a shared broker too).
    broker_cpu_s: Option<f64>,
    snapshot: Option<SnapshotTiming>,
}

#[derive(Debug, Clone, serde::Serialize)]
struct Round {
    gateway: String,
    round: usize,
    full: Start,
    checkpoint: Option<Start>,
}

async fn one_round(
    args: &ReplayArgs,
    topology: &Topology,
    gateway: &Gateway,
    index: usize,
    round: usize,
    http: &reqwest::Client,
) -> Result<Round> {
    let port = args
        .port
        .checked_add(index as u16)
        .ok_or_else(|| anyhow!("port out of range"))?;
    let mut base = vec![
        "--rabbitmq-url".to_string(),
        args.amqp.clone(),
        "--rabbitmq-exchange".into(),
        topology.exchange.clone(),
        "--rabbitmq-stream".into(),
        topology.stream.clone(),
        "--checkpoint-stream".into(),
        topology.checkpoint_stream(index),
        "--port".into(),
        port.to_string(),
        "--bind".into(),
        "127.0.0.1".into(),
    ];
    base.extend(args.flags.iter().cloned());
    let log = |what: &str| {
        args.log_dir.join(format!(
            "{}-{}-r{round}-{what}.log",
            topology.stream, gateway.label
        ))
    };

    // 1. Full replay; it writes a checkpoint once caught up.
    let mut full_args = base.clone();
    full_args.extend([
        "--ignore-checkpoints".into(),
        "--checkpoint-interval".into(),
    ]);
    full_args.push(if args.no_checkpoint { "0s" } else { "2s" }.into());
    let broker = broker_pid();
    let broker_before = broker.and_then(cpu_seconds);
    let mut process = Process::start(gateway, port, &full_args, log("full"))?;
    let (ready, first) = process.wait_ready(http, args.ready_timeout).await?;
    let gateway_cpu = cpu_seconds(process.pid);
    let broker_cpu = broker
        .and_then(cpu_seconds)
        .zip(broker_before)
        .map(|(after, before)| after - before);
    let rss = process.rss_mib();
    let replayed = process
        .metrics(http)
        .await
        .get(DELIVERIES)
        .copied()
        .unwrap_or(0.0);
    if !args.no_checkpoint {
        process
            .wait_checkpoint(http, Duration::from_secs(60))
            .await?;
    }
    // Right after a checkpoint: the next one is two seconds away.
    let snapshot = star_snapshot(port).await?;
    process.stop().await?;
    let full = Start {
        ready_s: ready.as_secs_f64(),
        replayed,
        replay_per_s: first.map(|first| replayed / (ready - first).as_secs_f64().max(1e-3)),
        rss_mib: rss,
        gateway_cpu_s: gateway_cpu,
        broker_cpu_s: broker_cpu,
        snapshot: Some(snapshot),
    };
    eprintln!(
        "replay: {} round {round} full: ready {:.2}s, {replayed} replayed at {:.0}/s, CPU gateway {:.2}s \
         broker {:.2}s, RSS {:.0} MiB, * snapshot {:.0} ms {} B in {} frames",
        gateway.label,
        full.ready_s,
        full.replay_per_s.unwrap_or(0.0),
        full.gateway_cpu_s.unwrap_or(0.0),
        full.broker_cpu_s.unwrap_or(0.0),
        full.rss_mib.unwrap_or(0.0),
        snapshot.ms,
        snapshot.bytes,
        snapshot.frames
    );

    // 2. From the checkpoint (the default), writing no more.
    let checkpoint = if args.no_checkpoint {
        None
    } else {
        let mut cp_args = base;
        cp_args.extend(["--checkpoint-interval".into(), "0s".into()]);
        let mut process = Process::start(gateway, port, &cp_args, log("checkpoint"))?;
        let (ready, first) = process.wait_ready(http, args.ready_timeout).await?;
        let gateway_cpu = cpu_seconds(process.pid);
        let rss = process.rss_mib();
        let metrics = process.metrics(http).await;
        let loaded = metrics
            .get("tourcast_checkpoints_total{outcome=\"loaded\"}")
            .copied()
            .unwrap_or(0.0);
        let replayed = metrics.get(DELIVERIES).copied().unwrap_or(0.0);
        let snapshot = star_snapshot(port).await?;
        process.stop().await?;
        if loaded < 1.0 {
            bail!(
                "{}: the start after a checkpoint loaded none",
                gateway.label
            );
        }
        let start = Start {
            ready_s: ready.as_secs_f64(),
            replayed,
            replay_per_s: first.map(|first| replayed / (ready - first).as_secs_f64().max(1e-3)),
            rss_mib: rss,
            gateway_cpu_s: gateway_cpu,
            broker_cpu_s: None,
            snapshot: Some(snapshot),
        };
        eprintln!(
            "replay: {} round {round} from checkpoint: ready {:.2}s ({replayed} replayed), RSS {:.0} MiB, \
             * snapshot {:.0} ms {} B",
            gateway.label,
            start.ready_s,
            start.rss_mib.unwrap_or(0.0),
            snapshot.ms,
            snapshot.bytes
        );
        Some(start)
    };
    Ok(Round {
        gateway: gateway.label.clone(),
        round,
        full,
        checkpoint,
    })
}

pub(crate) async fn replay(args: ReplayArgs) -> Result<()> {
    let gateways: Vec<Gateway> = args
        .gateways
        .iter()
        .map(|spec| parse_gateway(spec))
        .collect::<Result<_>>()?;
    let uri: lapin::uri::AMQPUri = args
        .amqp
        .parse()
        .map_err(|e| anyhow!("bad AMQP URL: {e}"))?;
    crate::shared::loopback_ip(&uri.authority.host)?;
    let stream = match &args.reuse {
        Some(name) => name.clone(),
        None => format!("rp14_{:08x}", rand::rng().random::<u32>()),
    };
    let topology = Topology {
        amqp: args.amqp.clone(),
        exchange: format!("{stream}_x"),
        stream,
    };
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()?;

    let publish_rate = if args.reuse.is_some() {
        None
    } else {
        topology.declare(args.events).await?;
        eprintln!(
            "replay: filling {} with {} events over {} tours",
            topology.stream, args.events, args.tours
        );
        let rate = topology.fill(args.events, args.tours).await?;
        eprintln!("replay: published at {rate:.0} events/s");
        Some(rate)
    };

    let mut rounds = Vec::new();
    let mut failure = None;
    'rounds: for round in 1..=args.rounds {
        for (index, gateway) in gateways.iter().enumerate() {
            match one_round(&args, &topology, gateway, index, round, &http).await {
                Ok(result) => rounds.push(result),
                Err(error) => {
                    failure = Some(error.context(format!("{} round {round}", gateway.label)));
                    break 'rounds;
                }
            }
        }
    }

    if args.keep {
        eprintln!("replay: keeping stream {}", topology.stream);
    } else if let Err(error) = topology.delete(gateways.len()).await {
        eprintln!("replay: could not delete {}: {error:#}", topology.stream);
    }
    if let Some(error) = failure {
        return Err(error);
    }

    // Medians per gateway, and the full-replay rate against the first.
    let summary: Vec<serde_json::Value> = gateways
        .iter()
        .map(|gateway| {
            let mine: Vec<&Round> = rounds.iter().filter(|r| r.gateway == gateway.label).collect();
            let med = |values: Vec<f64>| median_f64(values);
            serde_json::json!({
                "gateway": gateway.label,
                "readyFullS": med(mine.iter().map(|r| r.full.ready_s).collect()),
                "replayPerS": med(mine.iter().filter_map(|r| r.full.replay_per_s).collect()),
                "rssFullMiB": med(mine.iter().filter_map(|r| r.full.rss_mib).collect()),
                "gatewayCpuFullS": med(mine.iter().filter_map(|r| r.full.gateway_cpu_s).collect()),
                "brokerCpuFullS": med(mine.iter().filter_map(|r| r.full.broker_cpu_s).collect()),
                "readyCheckpointS": med(mine.iter().filter_map(|r| r.checkpoint.as_ref().map(|c| c.ready_s)).collect()),
                "rssCheckpointMiB": med(mine.iter().filter_map(|r| r.checkpoint.as_ref().and_then(|c| c.rss_mib)).collect()),
                "snapshotMs": med(mine.iter().filter_map(|r| r.full.snapshot.map(|s| s.ms)).collect()),
                "snapshotBytes": mine.first().and_then(|r| r.full.snapshot.map(|s| s.bytes)),
                "snapshotFrames": mine.first().and_then(|r| r.full.snapshot.map(|s| s.frames)),
            })
        })
        .collect();
    let base_rate = summary
        .first()
        .and_then(|s| s["replayPerS"].as_f64())
        .unwrap_or(0.0);
    for s in &summary {
        let rate = s["replayPerS"].as_f64().unwrap_or(0.0);
        eprintln!(
            "replay: {:<12} ready full {:>7.2}s  cp {:>6}s  replay {:>9.0}/s ({:.1}x)  CPU gw {:.2}s broker {:.2}s  RSS {:>5.0} MiB  * {:>6.0} ms {} B",
            s["gateway"].as_str().unwrap_or("?"),
            s["readyFullS"].as_f64().unwrap_or(0.0),
            s["readyCheckpointS"]
                .as_f64()
                .map_or("-".into(), |v| format!("{v:.2}")),
            rate,
            if base_rate > 0.0 {
                rate / base_rate
            } else {
                0.0
            },
            s["gatewayCpuFullS"].as_f64().unwrap_or(0.0),
            s["brokerCpuFullS"].as_f64().unwrap_or(0.0),
            s["rssFullMiB"].as_f64().unwrap_or(0.0),
            s["snapshotMs"].as_f64().unwrap_or(0.0),
            s["snapshotBytes"].as_u64().unwrap_or(0),
        );
    }
    if args.json {
        let line = serde_json::json!({
            "events": args.events,
            "tours": args.tours,
            "stream": topology.stream,
            "publishPerS": publish_rate,
            "summary": summary,
            "rounds": rounds,
        });
        println!("{line}");
    }
    Ok(())
}

/// User + system CPU seconds of a process (`/proc/<pid>/stat`).
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name; utime and stime are
    // the 14th and 15th fields overall.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    // SAFETY: sysconf only reads a configuration value.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    Some(ticks / hz.max(1) as f64)
}

/// The local broker's Erlang VM, when it runs on this machine.
fn broker_pid() -> Option<u32> {
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .find_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
            (comm.trim() == "beam.smp").then_some(pid)
        })
}

fn median_f64(mut values: Vec<f64>) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    Some(values[values.len() / 2])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_have_the_publisher_shape() {
        let value: serde_json::Value = serde_json::from_str(&event_payload(
            "r",
            12_345,
            10_000,
            "2025-01-08T10:30:00.000Z",
        ))
        .unwrap();
        assert_eq!(value["eventId"], "r_12345");
        assert_eq!(value["tourId"], "tour_2345");
        assert_eq!(value["availableSeats"], 1);
    }

    #[test]
    fn medians_ignore_order() {
        assert_eq!(median_f64(vec![3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median_f64(Vec::new()), None);
    }
}
