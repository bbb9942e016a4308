//! `loadgen soak`: a long run against a real gateway process, with broker
//! connection closes and a gateway restart, that checks every client's
//! received events against the stream's contents.
//!
//! The load generator starts the gateway itself (on its own exchange and
//! stream), opens N JSON WebSocket clients subscribed to `*`, then publishes
//! `tour.availability.updated` events at a fixed rate with publisher
//! confirms. Meanwhile it closes the gateway's AMQP connection every
//! `--close-every` (`rabbitmqctl close_connection`, as an operator would)
//! and restarts the gateway at `--restart-at` (SIGTERM, then the same
//! command on the same port). Clients that lose their connection reconnect
//! with backoff and jitter and resubscribe with `since`.
//!
//! At the end it reads the whole stream from `first` (the authoritative
//! list: `seq` = stream offset + 1, the first message of each `eventId`)
//! and compares it with each client's received `seq`s: missing, duplicated,
//! out of order. It reports those, the recoveries the server refused
//! (`recovered:false`), reconnects, and the gateway's RSS along the run.
//!
//! Bounded: the whole run is cancelled `--max-overrun` after its planned
//! end, and every wait inside it has its own limit.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail};
use chrono::{DateTime, SecondsFormat, Utc};
use clap::Args;
use futures_util::{SinkExt as _, StreamExt as _};
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, ExchangeDeclareOptions, ExchangeDeleteOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Confirmation, Connection, ConnectionProperties, ExchangeKind};
use rand::RngExt as _;
use serde::Deserialize;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::http::Uri;
use tokio_util::sync::CancellationToken;

use crate::shared::{Target, Ws, connect_ws, loopback_ip, median, raise_nofile, read_rss};

/// The full run of the issue: 30 minutes at 50 events/s with 1,000 clients,
/// a broker connection closed every 5 minutes, a restart in the middle.
const FULL: Preset = Preset {
    clients: 1000,
    duration: Duration::from_secs(30 * 60),
    close_every: Duration::from_secs(5 * 60),
    restart_at: Duration::from_secs(15 * 60),
};

/// `--short`: the same scenario in two minutes.
const SHORT: Preset = Preset {
    clients: 200,
    duration: Duration::from_secs(2 * 60),
    close_every: Duration::from_secs(30),
    restart_at: Duration::from_secs(60),
};

struct Preset {
    clients: usize,
    duration: Duration,
    close_every: Duration,
    restart_at: Duration,
}

/// Client reconnect backoff: first delay, doubling up to the maximum,
/// each with 50–100 % jitter.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(2);
/// Limits of single steps.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const GATEWAY_EXIT_TIMEOUT: Duration = Duration::from_secs(30);
const CLIENTS_BACK_TIMEOUT: Duration = Duration::from_secs(60);
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(10);
const RABBITMQCTL_TIMEOUT: Duration = Duration::from_secs(30);
/// Routing key of the published events.
const ROUTING_KEY: &str = "tour.availability.updated";

#[derive(Debug, Args)]
pub(super) struct SoakArgs {
    /// The gateway binary to start (and restart).
    #[arg(long, default_value = "target/release/tourcast")]
    gateway_bin: PathBuf,
    /// Extra flag for the gateway, repeatable (`--gateway-arg=--history-size=512`);
    /// a flag given here replaces the soak's own setting of it.
    #[arg(long = "gateway-arg", allow_hyphen_values = true)]
    gateway_args: Vec<String>,
    /// The short scenario: 200 clients, 2m, a close every 30s, restart at 60s
    /// (flags given explicitly still win).
    #[arg(long)]
    short: bool,
    /// WebSocket clients, all subscribed to `*` [default: 1000; --short 200].
    #[arg(long)]
    clients: Option<usize>,
    /// Events published per second.
    #[arg(long, default_value_t = 50.0)]
    rate: f64,
    /// How long to publish [default: 30m; --short 2m].
    #[arg(long, value_parser = humantime::parse_duration)]
    duration: Option<Duration>,
    /// Close the gateway's AMQP connection this often; 0s: never
    /// [default: 5m; --short 30s].
    #[arg(long, value_parser = humantime::parse_duration)]
    close_every: Option<Duration>,
    /// Restart the gateway this long after the first publish; 0s: never
    /// [default: 15m; --short 60s].
    #[arg(long, value_parser = humantime::parse_duration)]
    restart_at: Option<Duration>,
    /// Events rotate over this many tours (`soak_tour_0`, …).
    #[arg(long, default_value_t = 50)]
    tours: usize,
    /// The gateway's port on 127.0.0.1 (default: a free one).
    #[arg(long)]
    port: Option<u16>,
    /// AMQP URL of the broker (loopback only).
    #[arg(
        long,
        env = "RABBITMQ_URL",
        default_value = "amqp://guest:guest@127.0.0.1:5672/%2f"
    )]
    amqp: String,
    /// Exchange of this run (default `tc-soak-<id>`); deleted at the end.
    #[arg(long)]
    exchange: Option<String>,
    /// Stream of this run (default `tc-soak-<id>.stream`); deleted at the end.
    #[arg(long)]
    stream: Option<String>,
    /// The gateway's `--outbound-queue`. It replays at most half of it on a
    /// `since`, so half of it must hold a restart's gap at `--rate`.
    #[arg(long, default_value_t = 4096)]
    outbound_queue: u32,
    /// Handshakes in flight at once.
    #[arg(long, default_value_t = 128)]
    concurrency: usize,
    /// After the last publish, wait at most this long for deliveries.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    settle: Duration,
    /// How long a (re)started gateway may take to answer `/ready` 200.
    #[arg(long, default_value = "120s", value_parser = humantime::parse_duration)]
    ready_timeout: Duration,
    /// Give up this long after the planned end of the run.
    #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
    max_overrun: Duration,
    /// Time between samples of the gateway's RSS [default: duration/30, at least 5s].
    #[arg(long, value_parser = humantime::parse_duration)]
    rss_every: Option<Duration>,
    /// Write the JSON report here.
    #[arg(long)]
    report: Option<PathBuf>,
    /// The gateways' stdout and stderr (default: `<tmp>/soak-<id>-gateway.log`).
    #[arg(long)]
    gateway_log: Option<PathBuf>,
    /// Keep the exchange and stream at the end.
    #[arg(long)]
    keep: bool,
}

/// The scenario with the presets resolved.
#[derive(Debug, Clone)]
struct Plan {
    id: String,
    clients: usize,
    rate: f64,
    duration: Duration,
    close_every: Option<Duration>,
    restart_at: Option<Duration>,
    tours: usize,
    events: usize,
    port: u16,
    amqp: String,
    exchange: String,
    stream: String,
    connection_name: String,
    gateway_bin: PathBuf,
    gateway_args: Vec<String>,
    gateway_log: PathBuf,
    outbound_queue: u32,
    history_size: u32,
    concurrency: usize,
    settle: Duration,
    ready_timeout: Duration,
    rss_every: Duration,
}

impl Plan {
    fn new(args: &SoakArgs) -> Result<Self> {
        let preset = if args.short { &SHORT } else { &FULL };
        let nonzero = |d: Duration| (!d.is_zero()).then_some(d);
        let amqp_host: Uri = args
            .amqp
            .parse()
            .with_context(|| format!("bad AMQP URL {:?}", args.amqp))?;
        loopback_ip(amqp_host.host().unwrap_or_default())?;
        if args.rate.is_nan() || args.rate <= 0.0 {
            bail!("--rate must be positive");
        }
        let duration = args.duration.unwrap_or(preset.duration);
        let events = (args.rate * duration.as_secs_f64()).round() as usize;
        if events == 0 {
            bail!("nothing to publish");
        }
        if args.tours == 0 {
            bail!("--tours must be at least 1");
        }
        let clients = args.clients.unwrap_or(preset.clients);
        if clients == 0 {
            bail!("--clients must be at least 1");
        }
        let id = uuid::Uuid::new_v4().simple().to_string()[..12].to_string();
        let port = match args.port {
            Some(port) => port,
            None => free_port()?,
        };
        let gateway_log = args
            .gateway_log
            .clone()
            .unwrap_or_else(|| std::env::temp_dir().join(format!("soak-{id}-gateway.log")));
        // What the gateway will run with, for the report and the replay budget.
        let outbound_queue = flag_value(&args.gateway_args, "--outbound-queue")
            .and_then(|v| v.parse().ok())
            .unwrap_or(args.outbound_queue);
        let history_size = flag_value(&args.gateway_args, "--history-size")
            .and_then(|v| v.parse().ok())
            .unwrap_or(128);
        Ok(Plan {
            clients,
            rate: args.rate,
            duration,
            close_every: nonzero(args.close_every.unwrap_or(preset.close_every)),
            restart_at: nonzero(args.restart_at.unwrap_or(preset.restart_at))
                .filter(|at| *at < duration),
            tours: args.tours,
            events,
            port,
            amqp: args.amqp.clone(),
            exchange: args
                .exchange
                .clone()
                .unwrap_or_else(|| format!("tc-soak-{id}")),
            stream: args
                .stream
                .clone()
                .unwrap_or_else(|| format!("tc-soak-{id}.stream")),
            connection_name: format!("soak-{id}"),
            gateway_bin: args.gateway_bin.clone(),
            gateway_args: args.gateway_args.clone(),
            gateway_log,
            outbound_queue,
            history_size,
            concurrency: args.concurrency.max(1),
            settle: args.settle,
            ready_timeout: args.ready_timeout,
            rss_every: args
                .rss_every
                .unwrap_or(duration / 30)
                .max(Duration::from_secs(5)),
            id,
        })
    }

    /// The gateway's command line: the soak's settings, unless
    /// `--gateway-arg` sets the same flag, then the extra flags.
    fn gateway_command(&self) -> Vec<String> {
        let per_ip = (self.clients + 100).to_string();
        let ours: [(&str, String); 9] = [
            ("--bind", "127.0.0.1".into()),
            ("--port", self.port.to_string()),
            ("--rabbitmq-url", self.amqp.clone()),
            ("--rabbitmq-exchange", self.exchange.clone()),
            ("--rabbitmq-stream", self.stream.clone()),
            ("--rabbitmq-connection-name", self.connection_name.clone()),
            ("--outbound-queue", self.outbound_queue.to_string()),
            ("--max-connections-per-ip", per_ip),
            ("--rabbitmq-reconnect-max", "2s".into()),
        ];
        let mut command = Vec::new();
        for (flag, value) in ours {
            if flag_value(&self.gateway_args, flag).is_none() {
                command.push(flag.to_string());
                command.push(value);
            }
        }
        command.extend(self.gateway_args.iter().cloned());
        command
    }

    /// The most events the gateway replays on a `since` before it sends a
    /// snapshot instead.
    fn replay_budget(&self) -> usize {
        self.outbound_queue as usize / 2
    }

    /// The eventId of event `index`.
    fn event_id(&self, index: usize) -> String {
        format!("soak-{}-{index}", self.id)
    }

    fn tour_of(&self, index: usize) -> usize {
        index % self.tours
    }
}

/// The value of `flag` in `args` (`--flag value` or `--flag=value`).
fn flag_value<'a>(args: &'a [String], flag: &str) -> Option<&'a str> {
    args.iter().enumerate().find_map(|(i, arg)| {
        if arg == flag {
            Some(args.get(i + 1).map_or("", String::as_str))
        } else {
            arg.strip_prefix(flag)?.strip_prefix('=')
        }
    })
}

/// A port nobody listens on right now.
fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}

pub(super) async fn soak(args: SoakArgs) -> Result<()> {
    let plan = Plan::new(&args)?;
    let target = Target::parse(&format!("ws://127.0.0.1:{}/ws", plan.port))?;
    if !plan.gateway_bin.exists() {
        bail!(
            "no gateway binary at {} (cargo build --release --bin tourcast)",
            plan.gateway_bin.display()
        );
    }
    // The gateway child inherits the limit.
    raise_nofile(plan.clients as u64 * 2 + 512)?;
    eprintln!(
        "soak {}: {} clients, {} events/s for {:?} ({} events over {} tours), broker close every {}, \
         restart at {}; gateway on port {}, exchange {}, stream {}, log {}",
        plan.id,
        plan.clients,
        plan.rate,
        plan.duration,
        plan.events,
        plan.tours,
        plan.close_every
            .map_or("never".to_string(), |d| format!("{d:?}")),
        plan.restart_at
            .map_or("never".to_string(), |d| format!("{d:?}")),
        plan.port,
        plan.exchange,
        plan.stream,
        plan.gateway_log.display(),
    );

    // The exchange first (as the gateway declares it), so that nothing
    // depends on which side comes first.
    admin(&plan, |channel, plan| async move {
        channel
            .exchange_declare(
                plan.exchange.as_str().into(),
                ExchangeKind::Topic,
                ExchangeDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .context("declaring the exchange")
    })
    .await?;

    let limit = plan.duration + plan.ready_timeout * 2 + args.max_overrun;
    let outcome = match tokio::time::timeout(limit, run(&plan, target)).await {
        Ok(outcome) => outcome,
        Err(_) => Err(anyhow!("the soak did not finish within {limit:?}")),
    };

    // Every gateway is gone by now (stopped, or killed on drop): the stream
    // can go without one of them recreating it.
    if args.keep {
        eprintln!("soak: keeping {} and {}", plan.exchange, plan.stream);
    } else if let Err(error) = delete_topology(&plan).await {
        eprintln!(
            "soak: could not delete {} and {}: {error:#}",
            plan.stream, plan.exchange
        );
    }

    let report = outcome?;
    report.print(&plan);
    let json = report.json(&plan);
    if let Some(path) = &args.report {
        std::fs::write(path, serde_json::to_string_pretty(&json)? + "\n")
            .with_context(|| format!("writing {}", path.display()))?;
        eprintln!("soak: report written to {}", path.display());
    }
    let bad = report.totals.missing + report.totals.duplicated + report.totals.out_of_order;
    if bad > 0 || report.totals.unexpected > 0 || report.seq_mismatches > 0 {
        bail!(
            "the clients' received sets differ from the stream (missing {}, duplicated {}, \
             out of order {}, unexpected {}, wrong event for seq {})",
            report.totals.missing,
            report.totals.duplicated,
            report.totals.out_of_order,
            report.totals.unexpected,
            report.seq_mismatches
        );
    }
    Ok(())
}

/// Runs `work` on a channel of a short-lived connection of our own.
async fn admin<'a, F, Fut>(plan: &'a Plan, work: F) -> Result<()>
where
    F: FnOnce(lapin::Channel, &'a Plan) -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    let name = format!("{}-admin", plan.connection_name);
    let connection = Connection::connect(
        &plan.amqp,
        ConnectionProperties::default().with_connection_name(name.into()),
    )
    .await
    .context("connecting to RabbitMQ")?;
    let result = work(connection.create_channel().await?, plan).await;
    let _ = tokio::time::timeout(
        Duration::from_secs(2),
        connection.close(200, "soak admin".into()),
    )
    .await;
    result
}

/// Deletes the run's stream and exchange, retrying for a while (the broker
/// may be restarting: it is shared with other tests).
async fn delete_topology(plan: &Plan) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let attempt = admin(plan, |channel, plan| async move {
            channel
                .queue_delete(plan.stream.as_str().into(), QueueDeleteOptions::default())
                .await
                .context("deleting the stream")?;
            channel
                .exchange_delete(
                    plan.exchange.as_str().into(),
                    ExchangeDeleteOptions::default(),
                )
                .await
                .context("deleting the exchange")?;
            Ok(())
        });
        let error = match tokio::time::timeout(Duration::from_secs(10), attempt).await {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(error)) => error,
            Err(_) => anyhow!("timed out"),
        };
        if Instant::now() > deadline {
            return Err(error);
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// The run itself: gateway, clients, publisher, operator, verification.
async fn run(plan: &Plan, target: Target) -> Result<Report> {
    let started = Instant::now();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        .build()?;
    let ready_url = format!("http://{}/ready", target.addr);
    let metrics_url = format!("http://{}/metrics", target.addr);

    let mut gateway = Gateway::start(plan).await?;
    let first_ready = gateway
        .wait_ready(&http, &ready_url, plan.ready_timeout)
        .await
        .context("the gateway did not become ready")?;
    let rss_idle = read_rss(gateway.pid).map(|r| r.vm_rss).ok();
    eprintln!(
        "soak: gateway pid {} ready after {:.2}s; connecting {} clients…",
        gateway.pid,
        first_ready.as_secs_f64(),
        plan.clients
    );

    // Clients, all subscribed before the first publish.
    let shared = Arc::new(Shared {
        target,
        run_prefix: format!("soak-{}-", plan.id),
        tours: plan.tours,
        gate: Semaphore::new(plan.concurrency),
        subscribed_now: AtomicUsize::new(0),
        ever_subscribed: AtomicUsize::new(0),
        distinct: AtomicU64::new(0),
        seq_event: (0..plan.events * 2 + 1024)
            .map(|_| AtomicU32::new(0))
            .collect(),
        seq_conflicts: AtomicU64::new(0),
    });
    // Whatever ends the run (an error, the overall time limit) stops the
    // clients, the publisher and the sampler.
    let stop = CancellationToken::new();
    let _stop_on_exit = stop.clone().drop_guard();
    let mut clients = JoinSet::new();
    for _ in 0..plan.clients {
        let (shared, stop) = (Arc::clone(&shared), stop.clone());
        clients.spawn(async move { client(&shared, &stop).await });
    }
    let ramp = Instant::now();
    while shared.ever_subscribed.load(Ordering::Relaxed) < plan.clients {
        if ramp.elapsed() > Duration::from_secs(120) {
            stop.cancel();
            bail!(
                "only {} of {} clients subscribed after 120 s",
                shared.ever_subscribed.load(Ordering::Relaxed),
                plan.clients
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!(
        "soak: {} clients subscribed in {:.1}s",
        plan.clients,
        ramp.elapsed().as_secs_f64()
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut rss = RssMarks {
        idle: rss_idle,
        start: sample_vm_rss(gateway.pid).await,
        ..Default::default()
    };

    // Publisher.
    let hard_stop = CancellationToken::new();
    let _hard_stop_on_exit = hard_stop.clone().drop_guard();
    let publish_started = Instant::now();
    // On a thread and runtime of its own, so that the clients' work (a
    // thousand sockets) does not delay the schedule or the confirms.
    let publisher = {
        let (plan, hard_stop) = (plan.clone(), hard_stop.clone());
        let (done, finished) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name("soak-publisher".into())
            .spawn(move || {
                let stats = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime.block_on(publish(plan, publish_started, hard_stop)),
                    Err(error) => PublisherStats {
                        aborted: Some(format!("no runtime: {error}")),
                        ..Default::default()
                    },
                };
                let _ = done.send(stats);
            })
            .context("starting the publisher thread")?;
        finished
    };
    eprintln!(
        "soak: publishing {} events at {}/s…",
        plan.events, plan.rate
    );

    // RSS along the run (the pid changes at the restart).
    let current_pid = Arc::new(AtomicU32::new(gateway.pid));
    let sampler = {
        let (pid, every, stop) = (Arc::clone(&current_pid), plan.rss_every, stop.clone());
        tokio::spawn(async move {
            let mut samples = Vec::new();
            let mut tick = tokio::time::interval(every);
            loop {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tick.tick() => {}
                }
                let pid = pid.load(Ordering::Relaxed);
                if let Ok(rss) = read_rss(pid) {
                    samples.push((publish_started.elapsed().as_secs_f64(), pid, rss.vm_rss));
                }
            }
            samples
        })
    };

    // The operator: broker closes and the restart, in time order (a close
    // due at the restart's instant comes right after it).
    let mut actions: Vec<(Duration, Action)> = Vec::new();
    if let Some(every) = plan.close_every {
        let mut at = every;
        while at < plan.duration {
            actions.push((at, Action::CloseBroker));
            at += every;
        }
    }
    if let Some(at) = plan.restart_at {
        actions.push((at, Action::Restart));
    }
    actions.sort_by_key(|(at, action)| (*at, *action != Action::Restart));
    let mut closes = Vec::new();
    let mut restart = None;
    for (at, action) in actions {
        tokio::time::sleep_until((publish_started + at).into()).await;
        let due = publish_started.elapsed();
        match action {
            Action::CloseBroker => {
                let urls = (ready_url.as_str(), metrics_url.as_str());
                let record = close_broker(plan, &http, urls, at, due).await;
                eprintln!("soak: {}", record.line());
                closes.push(record);
            }
            Action::Restart => {
                let record = restart_gateway(
                    plan,
                    &mut gateway,
                    &http,
                    &ready_url,
                    &shared,
                    &mut rss,
                    at,
                    due,
                )
                .await?;
                current_pid.store(gateway.pid, Ordering::Relaxed);
                eprintln!("soak: {}", record.line());
                restart = Some(record);
            }
        }
    }

    // The end: publishing over, deliveries settle.
    let publisher =
        match tokio::time::timeout(plan.duration + Duration::from_secs(120), publisher).await {
            Ok(finished) => finished.context("the publisher thread ended early")?,
            Err(_) => {
                hard_stop.cancel();
                bail!("the publisher did not finish in time");
            }
        };
    let publish_seconds = publish_started.elapsed().as_secs_f64();
    eprintln!(
        "soak: published {} events in {:.1}s; settling (at most {:?})…",
        publisher.confirmed, publish_seconds, plan.settle
    );
    let expected = (plan.clients * publisher.confirmed) as u64;
    let settle_deadline = Instant::now() + plan.settle;
    while shared.distinct.load(Ordering::Relaxed) < expected && Instant::now() < settle_deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    rss.end = sample_vm_rss(gateway.pid).await;
    let metrics = scrape_metrics(&http, &metrics_url).await;
    stop.cancel();
    let mut stats = Vec::with_capacity(plan.clients);
    let collected = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(joined) = clients.join_next().await {
            if let Ok(client) = joined {
                stats.push(client);
            }
        }
    })
    .await;
    if collected.is_err() {
        clients.abort_all();
    }
    let rss_series = sampler.await.unwrap_or_default();

    // The authoritative list, then the gateway goes.
    eprintln!("soak: reading the stream {} from first…", plan.stream);
    let mut attempts = 0;
    let stream = loop {
        attempts += 1;
        match read_stream(plan, publisher.confirmed).await {
            Ok(stream) => break stream,
            // The shared broker may be restarting.
            Err(error) if attempts < 5 => {
                eprintln!("soak: reading the stream failed ({error:#}); again in 5s");
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
            Err(error) => return Err(error),
        }
    };
    let last_exit = gateway.stop().await;

    Ok(Report::build(
        plan,
        &shared,
        stats,
        stream,
        publisher,
        Timeline {
            first_ready,
            closes,
            restart,
            publish_seconds,
            last_exit,
            wall: started.elapsed(),
        },
        rss,
        rss_series,
        metrics,
    ))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    CloseBroker,
    Restart,
}

// ---------------------------------------------------------------- gateway --

/// A gateway child process (killed if dropped while running).
struct Gateway {
    child: tokio::process::Child,
    pid: u32,
}

impl Gateway {
    async fn start(plan: &Plan) -> Result<Self> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&plan.gateway_log)
            .with_context(|| format!("opening {}", plan.gateway_log.display()))?;
        let mut command = tokio::process::Command::new(&plan.gateway_bin);
        command
            .args(plan.gateway_command())
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true);
        if std::env::var_os("RUST_LOG").is_none() {
            command.env("RUST_LOG", "info,lapin=error");
        }
        let child = command
            .spawn()
            .with_context(|| format!("starting {}", plan.gateway_bin.display()))?;
        let pid = child
            .id()
            .ok_or_else(|| anyhow!("the gateway exited at once"))?;
        Ok(Gateway { child, pid })
    }

    /// Waits until `/ready` answers 200; fails if the process exits.
    async fn wait_ready(
        &mut self,
        http: &reqwest::Client,
        url: &str,
        limit: Duration,
    ) -> Result<Duration> {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!("the gateway exited ({status}) before it was ready");
            }
            if let Ok(response) = http.get(url).send().await
                && response.status().is_success()
            {
                return Ok(started.elapsed());
            }
            if started.elapsed() > limit {
                bail!("the gateway was not ready within {limit:?}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// SIGTERM, then waits for the exit (SIGKILL after a while). Returns
    /// how long it took and how it ended.
    async fn stop(&mut self) -> Exit {
        let started = Instant::now();
        // SAFETY: kill(2) with a pid we spawned and have not reaped.
        unsafe {
            libc::kill(self.pid as libc::pid_t, libc::SIGTERM);
        }
        let status = match tokio::time::timeout(GATEWAY_EXIT_TIMEOUT, self.child.wait()).await {
            Ok(Ok(status)) => status.to_string(),
            Ok(Err(error)) => format!("wait failed: {error}"),
            Err(_) => {
                let _ = self.child.kill().await;
                format!("killed after {GATEWAY_EXIT_TIMEOUT:?}")
            }
        };
        Exit {
            seconds: started.elapsed().as_secs_f64(),
            status,
        }
    }
}

#[derive(Debug, Clone)]
struct Exit {
    seconds: f64,
    status: String,
}

/// Median VmRSS (KiB) of 3 samples, 300 ms apart.
async fn sample_vm_rss(pid: u32) -> Option<u64> {
    let mut values = Vec::new();
    for i in 0..3 {
        if i > 0 {
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        values.push(read_rss(pid).ok()?.vm_rss);
    }
    Some(median(&mut values))
}

/// Gateway RSS (KiB) at the marks of the run.
#[derive(Debug, Default, Clone, Copy)]
struct RssMarks {
    /// Ready, before any client.
    idle: Option<u64>,
    /// Clients subscribed, before the first publish.
    start: Option<u64>,
    before_restart: Option<u64>,
    /// The new process, once every client is back.
    after_restart: Option<u64>,
    /// After the settle, clients still connected.
    end: Option<u64>,
}

#[derive(Debug, Clone)]
struct CloseRecord {
    planned: Duration,
    done_at: Duration,
    /// `rabbitmqctl close_connection` closed this many connections.
    closed: usize,
    error: Option<String>,
    /// `/ready` answered 503 at least once after rabbitmqctl returned.
    saw_unready: bool,
    /// From rabbitmqctl's return to `/ready` 200 with one more reconnect
    /// counted by the gateway (`None`: not within 60 s).
    ready_again: Option<f64>,
}

impl CloseRecord {
    fn line(&self) -> String {
        match &self.error {
            Some(error) => format!(
                "broker close at {:.1}s failed: {error}",
                self.done_at.as_secs_f64()
            ),
            None => format!(
                "broker close at {:.1}s: {} connection(s) closed, gateway reconnected and ready {}{}",
                self.done_at.as_secs_f64(),
                self.closed,
                self.ready_again
                    .map_or("(not within 60s)".to_string(), |s| format!("{s:.2}s later")),
                if self.saw_unready {
                    ""
                } else {
                    " (already back when rabbitmqctl returned)"
                }
            ),
        }
    }
}

async fn close_broker(
    plan: &Plan,
    http: &reqwest::Client,
    urls: (&str, &str),
    planned: Duration,
    due: Duration,
) -> CloseRecord {
    let (ready_url, metrics_url) = urls;
    let reconnects = || async {
        scrape_metrics(http, metrics_url)
            .await
            .iter()
            .filter(|(name, _)| name.starts_with("tourcast_event_source_reconnects_total"))
            .map(|(_, value)| *value)
            .sum::<f64>()
    };
    let before = reconnects().await;
    let closing =
        tokio::time::timeout(RABBITMQCTL_TIMEOUT, close_connection(&plan.connection_name))
            .await
            .unwrap_or_else(|_| Err(anyhow!("rabbitmqctl took over {RABBITMQCTL_TIMEOUT:?}")));
    let closed_at = Instant::now();
    let mut record = CloseRecord {
        planned,
        done_at: due,
        closed: 0,
        error: None,
        saw_unready: false,
        ready_again: None,
    };
    match closing {
        Ok(closed) => record.closed = closed,
        Err(error) => {
            record.error = Some(format!("{error:#}"));
            return record;
        }
    }
    // Done when the gateway counted a reconnect and is ready again (it may
    // have reconnected before rabbitmqctl returned).
    while closed_at.elapsed() < Duration::from_secs(60) {
        let ready = matches!(http.get(ready_url).send().await, Ok(r) if r.status().is_success());
        if !ready {
            record.saw_unready = true;
        } else if reconnects().await > before {
            record.ready_again = Some(closed_at.elapsed().as_secs_f64());
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    record
}

/// Closes the broker side of every AMQP connection named `name`, as an
/// operator would (`rabbitmqctl close_connection`). Returns how many.
async fn close_connection(name: &str) -> Result<usize> {
    let needle = format!("{{\"connection_name\",\"{name}\"}}");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let listed = tokio::process::Command::new("rabbitmqctl")
            .args([
                "list_connections",
                "-q",
                "--no-table-headers",
                "pid",
                "client_properties",
            ])
            .kill_on_drop(true)
            .output()
            .await
            .context("running rabbitmqctl list_connections")?;
        let listed = String::from_utf8_lossy(&listed.stdout);
        let pids: Vec<&str> = listed
            .lines()
            .filter(|line| line.contains(&needle))
            .filter_map(|line| line.split_whitespace().next())
            .collect();
        if !pids.is_empty() {
            for pid in &pids {
                let closed = tokio::process::Command::new("rabbitmqctl")
                    .args(["close_connection", "-q", pid, "soak"])
                    .kill_on_drop(true)
                    .output()
                    .await
                    .context("running rabbitmqctl close_connection")?;
                if !closed.status.success() {
                    bail!(
                        "rabbitmqctl close_connection {pid}: {}",
                        String::from_utf8_lossy(&closed.stderr).trim()
                    );
                }
            }
            return Ok(pids.len());
        }
        if Instant::now() > deadline {
            bail!("no AMQP connection named {name}");
        }
        // Reconnecting right now: look again.
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[derive(Debug, Clone)]
struct RestartRecord {
    planned: Duration,
    done_at: Duration,
    old_pid: u32,
    new_pid: u32,
    /// SIGTERM → exit.
    exit: Exit,
    /// SIGTERM → `/ready` 200 from the new process.
    downtime: f64,
    /// New process started → `/ready` 200 (its replay of the stream).
    replay: f64,
    /// SIGTERM → every client subscribed again.
    clients_back: Option<f64>,
    /// Clients already subscribed to the new process when it became ready
    /// (it accepted them during its replay).
    subscribed_at_ready: usize,
}

impl RestartRecord {
    fn line(&self) -> String {
        format!(
            "restart at {:.1}s: pid {} exited in {:.2}s ({}), pid {} ready after {:.2}s \
             (downtime {:.2}s), {} clients subscribed before it was ready, every client back after {}",
            self.done_at.as_secs_f64(),
            self.old_pid,
            self.exit.seconds,
            self.exit.status,
            self.new_pid,
            self.replay,
            self.downtime,
            self.subscribed_at_ready,
            self.clients_back
                .map_or("(not within the limit)".to_string(), |s| format!("{s:.2}s")),
        )
    }
}

#[allow(clippy::too_many_arguments)]
async fn restart_gateway(
    plan: &Plan,
    gateway: &mut Gateway,
    http: &reqwest::Client,
    ready_url: &str,
    shared: &Shared,
    rss: &mut RssMarks,
    planned: Duration,
    done_at: Duration,
) -> Result<RestartRecord> {
    rss.before_restart = sample_vm_rss(gateway.pid).await;
    let old_pid = gateway.pid;
    let sigterm = Instant::now();
    let subscribed = || shared.subscribed_now.load(Ordering::Relaxed);
    // Watches the clients leave and come back, while the gateway restarts.
    let watch = async {
        let limit = GATEWAY_EXIT_TIMEOUT + plan.ready_timeout + CLIENTS_BACK_TIMEOUT;
        let mut left = false;
        while sigterm.elapsed() < limit {
            let now = subscribed();
            left |= now < plan.clients;
            if left && now >= plan.clients {
                return Some(sigterm.elapsed().as_secs_f64());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        None
    };
    let restart = async {
        let exit = gateway.stop().await;
        // The port may linger a moment: a gateway that cannot bind exits,
        // so start again until one comes up (bounded).
        let mut attempts = 0;
        loop {
            attempts += 1;
            let mut next = Gateway::start(plan).await?;
            match next.wait_ready(http, ready_url, plan.ready_timeout).await {
                Ok(replay) => {
                    let at_ready = subscribed();
                    *gateway = next;
                    return Ok::<_, anyhow::Error>((exit, replay, sigterm.elapsed(), at_ready));
                }
                Err(error) if attempts < 5 => {
                    eprintln!("soak: restarted gateway failed ({error:#}); starting it again");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(error) => return Err(error.context("restarting the gateway")),
            }
        }
    };
    let (restarted, clients_back) = tokio::join!(restart, watch);
    let (exit, replay, downtime, subscribed_at_ready) = restarted?;
    rss.after_restart = sample_vm_rss(gateway.pid).await;
    Ok(RestartRecord {
        planned,
        done_at,
        old_pid,
        new_pid: gateway.pid,
        exit,
        downtime: downtime.as_secs_f64(),
        replay: replay.as_secs_f64(),
        clients_back,
        subscribed_at_ready,
    })
}

/// The gateway's counters that tell what happened inside it (the last
/// process only: counters restart with it).
async fn scrape_metrics(http: &reqwest::Client, url: &str) -> BTreeMap<String, f64> {
    const WANTED: [&str; 6] = [
        "tourcast_event_source_reconnects_total",
        "tourcast_slow_client_disconnects_total",
        "tourcast_events_total",
        "tourcast_disconnects_total",
        "tourcast_deliveries_total",
        "tourcast_rabbitmq_redelivered_total",
    ];
    let Ok(response) = http.get(url).send().await else {
        return BTreeMap::new();
    };
    let text = response.text().await.unwrap_or_default();
    text.lines()
        .filter(|line| WANTED.iter().any(|w| line.starts_with(w)))
        .filter_map(|line| {
            let (name, value) = line.rsplit_once(' ')?;
            Some((name.to_string(), value.parse().ok()?))
        })
        .collect()
}

// -------------------------------------------------------------- publisher --

#[derive(Debug, Default, Clone)]
struct PublisherStats {
    /// Events the broker confirmed (each once, in order).
    confirmed: usize,
    attempts: u64,
    returned: u64,
    nacked: u64,
    errors: u64,
    timeouts: u64,
    connections: u64,
    /// Latest a publish went out after its due time.
    max_lag: Duration,
    /// Stopped before every event was confirmed.
    aborted: Option<String>,
    /// The first few failures, with the time since the first publish.
    failures: Vec<String>,
}

impl PublisherStats {
    fn failed(&mut self, start: Instant, what: impl std::fmt::Display) {
        if self.failures.len() < 5 {
            let at = start.elapsed().as_secs_f64();
            self.failures.push(format!("{at:.1}s: {what}"));
        }
    }
}

/// Publishes event 0, 1, … at `plan.rate` from `start`, each persistent and
/// `mandatory`, and waits for its confirm before the next (stop-and-wait
/// keeps the stream in publish order even across retries). A return, nack,
/// timeout or connection loss retries the same payload; a retry may leave a
/// second copy in the stream, which the gateway drops by `eventId`.
async fn publish(plan: Plan, start: Instant, hard_stop: CancellationToken) -> PublisherStats {
    let mut stats = PublisherStats::default();
    let mut channel: Option<(Connection, lapin::Channel)> = None;
    let properties = BasicProperties::default()
        .with_content_type("application/json".into())
        .with_delivery_mode(2);
    let interval = Duration::from_secs_f64(1.0 / plan.rate);
    for index in 0..plan.events {
        let due = start + interval.mul_f64(index as f64);
        tokio::time::sleep_until(due.into()).await;
        stats.max_lag = stats.max_lag.max(due.elapsed());
        let payload = event_payload(&plan, index);
        let mut failures = 0u32;
        loop {
            if hard_stop.is_cancelled() {
                stats.aborted = Some(format!("stopped at event {index}"));
                return stats;
            }
            if failures > 0 {
                let delay = (Duration::from_millis(100) * 2u32.pow(failures.min(5)))
                    .min(Duration::from_secs(2));
                tokio::time::sleep(delay).await;
            }
            if channel.is_none() {
                match connect_publisher(&plan).await {
                    Ok(open) => {
                        stats.connections += 1;
                        channel = Some(open);
                    }
                    Err(error) => {
                        stats.errors += 1;
                        stats.failed(start, format!("connecting: {error:#}"));
                        failures += 1;
                        continue;
                    }
                }
            }
            let Some((_, chan)) = &channel else {
                continue;
            };
            stats.attempts += 1;
            let confirm = tokio::time::timeout(PUBLISH_TIMEOUT, async {
                chan.basic_publish(
                    plan.exchange.as_str().into(),
                    ROUTING_KEY.into(),
                    BasicPublishOptions {
                        mandatory: true,
                        ..Default::default()
                    },
                    payload.as_bytes(),
                    properties.clone(),
                )
                .await?
                .await
            })
            .await;
            match confirm {
                Ok(Ok(Confirmation::Ack(None))) => break,
                Ok(Ok(Confirmation::Ack(Some(_)))) => {
                    stats.returned += 1;
                    stats.failed(start, "returned (unroutable)");
                }
                Ok(Ok(Confirmation::Nack(_))) => {
                    stats.nacked += 1;
                    stats.failed(start, "nacked");
                }
                Ok(Ok(Confirmation::NotRequested)) => {
                    stats.errors += 1;
                    stats.failed(start, "no confirm");
                    close_quietly(channel.take()).await;
                }
                Ok(Err(error)) => {
                    stats.errors += 1;
                    stats.failed(start, format!("publishing: {error}"));
                    close_quietly(channel.take()).await;
                }
                Err(_) => {
                    stats.timeouts += 1;
                    stats.failed(start, "no confirm within the timeout");
                    close_quietly(channel.take()).await;
                }
            }
            failures += 1;
        }
        stats.confirmed += 1;
    }
    close_quietly(channel).await;
    stats
}

/// Closes a publisher connection that may be broken already (bounded).
async fn close_quietly(open: Option<(Connection, lapin::Channel)>) {
    if let Some((connection, _)) = open {
        let closing = connection.close(200, "soak publisher".into());
        let _ = tokio::time::timeout(Duration::from_secs(2), closing).await;
    }
}

async fn connect_publisher(plan: &Plan) -> Result<(Connection, lapin::Channel)> {
    let connect = Connection::connect(
        &plan.amqp,
        ConnectionProperties::default()
            .with_connection_name(format!("{}-publisher", plan.connection_name).into()),
    );
    let connection = tokio::time::timeout(CONNECT_TIMEOUT, connect)
        .await
        .map_err(|_| anyhow!("connecting timed out"))??;
    let channel = connection.create_channel().await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    Ok((connection, channel))
}

/// `tour.availability.updated` in the SPEC's publisher shape.
fn event_payload(plan: &Plan, index: usize) -> String {
    let tour = plan.tour_of(index);
    serde_json::json!({
        "eventId": plan.event_id(index),
        "eventType": ROUTING_KEY,
        "tourId": format!("soak_tour_{tour}"),
        "tourName": format!("Soak Tour {tour}"),
        "availableSeats": (index / plan.tours % 20) as u32,
        "maxGroupSize": 20,
        "timestamp": Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
    })
    .to_string()
}

// ---------------------------------------------------------------- clients --

/// What the clients share.
struct Shared {
    target: Target,
    /// `eventId` prefix of this run's events.
    run_prefix: String,
    tours: usize,
    /// Handshakes in flight.
    gate: Semaphore,
    /// Clients whose current connection is subscribed.
    subscribed_now: AtomicUsize,
    /// Clients that subscribed at least once.
    ever_subscribed: AtomicUsize,
    /// Distinct `seq`s received, summed over clients (for the settle).
    distinct: AtomicU64,
    /// `seq` → index of the event a client received with it, plus one (0:
    /// none yet); compared with the stream at the end.
    seq_event: Vec<AtomicU32>,
    /// A client received a `seq` with another event than others did.
    seq_conflicts: AtomicU64,
}

impl Shared {
    fn event_index(&self, event_id: &str) -> Option<usize> {
        event_id.strip_prefix(&self.run_prefix)?.parse().ok()
    }
}

/// A server frame, as far as the soak reads it.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Frame<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    seq: Option<u64>,
    #[serde(borrow)]
    event_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    data: Option<FrameData<'a>>,
    recovered: Option<bool>,
    #[serde(borrow)]
    epoch: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FrameData<'a> {
    #[serde(borrow)]
    tour_id: Option<Cow<'a, str>>,
}

/// A growable set of `seq`s.
#[derive(Default)]
struct SeqSet(Vec<u64>);

impl SeqSet {
    /// Adds `seq`; false if it was there.
    fn insert(&mut self, seq: u64) -> bool {
        let (word, bit) = ((seq / 64) as usize, seq % 64);
        if word >= self.0.len() {
            self.0.resize(word + 1 + word / 4, 0);
        }
        let had = self.0[word] & (1 << bit) != 0;
        self.0[word] |= 1 << bit;
        !had
    }

    fn contains(&self, seq: u64) -> bool {
        let (word, bit) = ((seq / 64) as usize, seq % 64);
        self.0.get(word).is_some_and(|w| w & (1 << bit) != 0)
    }

    fn len(&self) -> u64 {
        self.0.iter().map(|w| u64::from(w.count_ones())).sum()
    }
}

/// What one client saw over the whole run.
#[derive(Default)]
struct ClientStats {
    received: SeqSet,
    max_seq: u64,
    /// Event frames received (after `subscribed`), repeats included.
    deliveries: u64,
    /// An event whose `seq` this client already held.
    duplicated: u64,
    /// A new `seq` lower than one already held.
    out_of_order: u64,
    /// Event frames with no `seq`, or not of this run.
    unparsed: u64,
    /// An event whose `data.tourId` is not the one its `eventId` was published for.
    wrong_tour: u64,
    /// Events received before the `subscribed` of a reconnection: a
    /// never-subscribed connection receives every tour, and the replay
    /// that follows covers them, so they are not counted as received.
    before_subscribed: u64,
    /// Connections that reached the `connection` message.
    connections: u32,
    /// Connections that got their `subscribed`.
    subscriptions: u32,
    /// Resubscriptions after a reconnect, by `subscribed.recovered`.
    recovered_true: u32,
    recovered_false: u32,
    recovered_absent: u32,
    snapshots: u32,
    /// `connection.epoch` differed from the first one.
    epoch_changes: u32,
    /// `error` frames.
    errors: u32,
    /// Failed connection attempts, by kind.
    connect_failures: BTreeMap<String, u32>,
    /// How connections ended, by close code and reason.
    ends: BTreeMap<String, u32>,
}

enum SessionEnd {
    /// The soak is over.
    Stopped,
    /// The connection ended (or never opened); `subscribed`: it had been.
    Ended { subscribed: bool },
}

/// One client: connect, subscribe, read; reconnect and resubscribe with
/// `since` until `stop`.
async fn client(shared: &Shared, stop: &CancellationToken) -> ClientStats {
    let mut stats = ClientStats::default();
    let mut epoch: Option<String> = None;
    let mut failures: u32 = 0;
    loop {
        match session(shared, stop, &mut stats, &mut epoch).await {
            SessionEnd::Stopped => break,
            SessionEnd::Ended { subscribed } => {
                if subscribed {
                    failures = 0;
                }
            }
        }
        let ceiling = (BACKOFF_MIN * 2u32.pow(failures.min(8))).min(BACKOFF_MAX);
        let delay = ceiling.mul_f64(rand::rng().random_range(0.5..=1.0));
        failures = failures.saturating_add(1);
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep(delay) => {}
        }
    }
    stats
}

fn tally(map: &mut BTreeMap<String, u32>, key: impl Into<String>) {
    *map.entry(key.into()).or_default() += 1;
}

/// Why a connection attempt failed, in a few words.
fn connect_failure_kind(error: &anyhow::Error) -> String {
    for cause in error.chain() {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            return format!("{:?}", io.kind());
        }
        if let Some(tokio_tungstenite::tungstenite::Error::Http(response)) =
            cause.downcast_ref::<tokio_tungstenite::tungstenite::Error>()
        {
            return format!("HTTP {}", response.status().as_u16());
        }
    }
    let text = format!("{error:#}");
    text.chars().take(60).collect()
}

async fn session(
    shared: &Shared,
    stop: &CancellationToken,
    stats: &mut ClientStats,
    epoch: &mut Option<String>,
) -> SessionEnd {
    let opened = async {
        let _permit = shared.gate.acquire().await?;
        let mut ws = connect_ws(&shared.target).await?;
        // The `connection` message names the epoch.
        loop {
            let Some(frame) = ws.next().await else {
                bail!("connection ended before the greeting");
            };
            if let Message::Text(text) = frame.context("reading the greeting")?
                && let Ok(frame) = serde_json::from_str::<Frame>(&text)
                && frame.kind == "connection"
            {
                return Ok::<_, anyhow::Error>((ws, frame.epoch.map(Cow::into_owned)));
            }
        }
    };
    let opened = tokio::select! {
        _ = stop.cancelled() => return SessionEnd::Stopped,
        opened = tokio::time::timeout(CONNECT_TIMEOUT, opened) => opened,
    };
    let (mut ws, server_epoch) = match opened {
        Ok(Ok(opened)) => opened,
        Ok(Err(error)) => {
            tally(&mut stats.connect_failures, connect_failure_kind(&error));
            return SessionEnd::Ended { subscribed: false };
        }
        Err(_) => {
            tally(&mut stats.connect_failures, "timeout");
            return SessionEnd::Ended { subscribed: false };
        }
    };
    let resubscribing = stats.subscriptions > 0;
    stats.connections += 1;
    match (&*epoch, server_epoch) {
        (None, Some(new)) => *epoch = Some(new),
        (Some(old), Some(new)) if *old != new => {
            stats.epoch_changes += 1;
            *epoch = Some(new);
        }
        _ => {}
    }
    let mut request = serde_json::json!({"type": "subscribe", "tourId": "*"});
    if resubscribing && let Some(epoch) = epoch.as_deref() {
        request["since"] = serde_json::json!({"epoch": epoch, "seq": stats.max_seq});
    }
    if ws.send(Message::text(request.to_string())).await.is_err() {
        tally(&mut stats.ends, "send failed");
        return SessionEnd::Ended { subscribed: false };
    }

    let mut subscribed = false;
    // Created once: a fresh `cancelled()` per frame would take the shared
    // token's lock twice per delivery, in every client.
    let stopped = stop.cancelled();
    tokio::pin!(stopped);
    let end = loop {
        let frame = tokio::select! {
            biased;
            frame = ws.next() => frame,
            _ = &mut stopped => {
                let _ = tokio::time::timeout(Duration::from_secs(1), Ws::close(&mut ws, None)).await;
                break SessionEnd::Stopped;
            }
        };
        match frame {
            Some(Ok(Message::Text(text))) => {
                let Ok(frame) = serde_json::from_str::<Frame>(&text) else {
                    stats.unparsed += 1;
                    continue;
                };
                match &*frame.kind {
                    "tour.availability.updated" | "tour.availability.low" => {
                        if subscribed {
                            record(shared, stats, &frame);
                        } else {
                            stats.before_subscribed += 1;
                        }
                    }
                    "subscribed" => {
                        if !subscribed {
                            subscribed = true;
                            stats.subscriptions += 1;
                            shared.subscribed_now.fetch_add(1, Ordering::Relaxed);
                            if !resubscribing {
                                shared.ever_subscribed.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        if resubscribing {
                            match frame.recovered {
                                Some(true) => stats.recovered_true += 1,
                                Some(false) => stats.recovered_false += 1,
                                None => stats.recovered_absent += 1,
                            }
                        }
                    }
                    "snapshot" => stats.snapshots += 1,
                    "error" => stats.errors += 1,
                    _ => {}
                }
            }
            Some(Ok(Message::Close(frame))) => {
                tally(
                    &mut stats.ends,
                    match frame {
                        Some(f) => format!("{} {}", u16::from(f.code), f.reason),
                        None => "close without code".into(),
                    },
                );
                break SessionEnd::Ended { subscribed };
            }
            Some(Ok(_)) => {}
            Some(Err(error)) => {
                tally(&mut stats.ends, format!("error: {error}"));
                break SessionEnd::Ended { subscribed };
            }
            None => {
                tally(&mut stats.ends, "connection ended");
                break SessionEnd::Ended { subscribed };
            }
        }
    };
    if subscribed {
        shared.subscribed_now.fetch_sub(1, Ordering::Relaxed);
    }
    end
}

/// Records one event receipt.
fn record(shared: &Shared, stats: &mut ClientStats, frame: &Frame<'_>) {
    let Some(seq) = frame.seq else {
        stats.unparsed += 1;
        return;
    };
    stats.deliveries += 1;
    if !stats.received.insert(seq) {
        stats.duplicated += 1;
        return;
    }
    if seq < stats.max_seq {
        stats.out_of_order += 1;
    } else {
        stats.max_seq = seq;
    }
    shared.distinct.fetch_add(1, Ordering::Relaxed);
    let Some(index) = frame
        .event_id
        .as_deref()
        .and_then(|id| shared.event_index(id))
    else {
        return;
    };
    let tour = frame.data.as_ref().and_then(|d| {
        d.tour_id
            .as_deref()?
            .strip_prefix("soak_tour_")?
            .parse::<usize>()
            .ok()
    });
    if tour != Some(index % shared.tours) {
        stats.wrong_tour += 1;
    }
    if let Some(slot) = shared.seq_event.get(seq as usize) {
        let tag = index as u32 + 1;
        if let Err(other) = slot.compare_exchange(0, tag, Ordering::Relaxed, Ordering::Relaxed)
            && other != tag
        {
            shared.seq_conflicts.fetch_add(1, Ordering::Relaxed);
        }
    }
}

// ----------------------------------------------------------------- stream --

/// The stream as the gateway sees it.
struct StreamContents {
    /// Messages read (offsets 0..).
    messages: u64,
    /// `seq`s the gateway applies, in stream order: the first message of
    /// each `eventId`.
    expected: Vec<u64>,
    /// `seq` → event index, for the expected ones.
    event_of: HashMap<u64, usize>,
    /// Later copies of an `eventId` (publisher retries), dropped by the gateway.
    repeated_ids: u64,
    /// Events older than their tour's state (the gateway drops them as stale).
    stale: u64,
    /// Messages that are not this run's events.
    foreign: u64,
    /// Offsets not contiguous from 0.
    offset_gaps: u64,
    /// Confirmed events not found in the stream.
    confirmed_missing: u64,
}

/// Reads the stream from `first` with manual acks until every confirmed
/// event was seen and nothing came for a second (bounded).
async fn read_stream(plan: &Plan, confirmed: usize) -> Result<StreamContents> {
    let connection = Connection::connect(
        &plan.amqp,
        ConnectionProperties::default()
            .with_connection_name(format!("{}-verify", plan.connection_name).into()),
    )
    .await
    .context("connecting the stream reader")?;
    let channel = connection.create_channel().await?;
    channel.basic_qos(2000, BasicQosOptions::default()).await?;
    let mut arguments = FieldTable::default();
    arguments.insert(
        "x-stream-offset".into(),
        AMQPValue::LongString("first".into()),
    );
    let mut consumer = channel
        .basic_consume(
            plan.stream.as_str().into(),
            format!("{}-verify", plan.connection_name).as_str().into(),
            BasicConsumeOptions::default(),
            arguments,
        )
        .await
        .context("consuming the stream")?;

    let mut contents = StreamContents {
        messages: 0,
        expected: Vec::new(),
        event_of: HashMap::new(),
        repeated_ids: 0,
        stale: 0,
        foreign: 0,
        offset_gaps: 0,
        confirmed_missing: 0,
    };
    let mut seen = vec![false; plan.events];
    let mut seen_count = 0usize;
    let mut last_ts: HashMap<String, DateTime<Utc>> = HashMap::new();
    let mut next_offset = 0u64;
    let deadline = Instant::now() + Duration::from_secs(60 + plan.events as u64 / 2000);
    let mut pending = 0u32;
    while Instant::now() < deadline {
        let idle = if seen_count >= confirmed {
            Duration::from_secs(1)
        } else {
            Duration::from_secs(10)
        };
        let delivery = match tokio::time::timeout(idle, consumer.next()).await {
            Ok(Some(Ok(delivery))) => delivery,
            Ok(Some(Err(error))) => return Err(error).context("reading the stream"),
            Ok(None) | Err(_) => break,
        };
        pending += 1;
        if pending >= 200 {
            pending = 0;
            delivery
                .acker
                .ack(BasicAckOptions { multiple: true })
                .await?;
        }
        contents.messages += 1;
        let Some(offset) = header_offset(&delivery.properties) else {
            contents.foreign += 1;
            continue;
        };
        if offset != next_offset {
            contents.offset_gaps += 1;
        }
        next_offset = offset + 1;
        let Ok(event) = serde_json::from_slice::<serde_json::Value>(&delivery.data) else {
            contents.foreign += 1;
            continue;
        };
        let index = event["eventId"]
            .as_str()
            .and_then(|id| {
                id.strip_prefix(&format!("soak-{}-", plan.id))?
                    .parse::<usize>()
                    .ok()
            })
            .filter(|&i| i < plan.events);
        let Some(index) = index else {
            contents.foreign += 1;
            continue;
        };
        if std::mem::replace(&mut seen[index], true) {
            contents.repeated_ids += 1;
            continue;
        }
        seen_count += 1;
        let tour = event["tourId"].as_str().unwrap_or_default().to_string();
        let timestamp = event["timestamp"]
            .as_str()
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc));
        if let Some(timestamp) = timestamp {
            if last_ts.get(&tour).is_some_and(|last| timestamp < *last) {
                contents.stale += 1;
                continue;
            }
            last_ts.insert(tour, timestamp);
        }
        contents.expected.push(offset + 1);
        contents.event_of.insert(offset + 1, index);
    }
    contents.confirmed_missing = confirmed.saturating_sub(seen_count) as u64;
    let _ = channel.close(200, "verified".into()).await;
    let _ = connection.close(200, "verified".into()).await;
    Ok(contents)
}

/// The stream offset RabbitMQ puts in each delivery's headers.
fn header_offset(properties: &BasicProperties) -> Option<u64> {
    match properties
        .headers()
        .as_ref()?
        .inner()
        .get("x-stream-offset")?
    {
        AMQPValue::LongLongInt(v) => u64::try_from(*v).ok(),
        AMQPValue::LongInt(v) => u64::try_from(*v).ok(),
        AMQPValue::LongUInt(v) => Some(u64::from(*v)),
        AMQPValue::Timestamp(v) => Some(*v),
        _ => None,
    }
}

// ----------------------------------------------------------------- report --

struct Timeline {
    first_ready: Duration,
    closes: Vec<CloseRecord>,
    restart: Option<RestartRecord>,
    publish_seconds: f64,
    last_exit: Exit,
    wall: Duration,
}

/// Sums over every client.
#[derive(Debug, Default, Clone, Copy)]
struct Totals {
    missing: u64,
    duplicated: u64,
    out_of_order: u64,
    /// Received `seq`s the stream does not have as an event of this run.
    unexpected: u64,
    deliveries: u64,
    unparsed: u64,
    wrong_tour: u64,
    before_subscribed: u64,
    reconnects: u64,
    recovered_true: u64,
    recovered_false: u64,
    recovered_absent: u64,
    snapshots: u64,
    epoch_changes: u64,
    errors: u64,
    /// Clients with at least one missing event.
    clients_missing: u64,
    /// Clients that never subscribed.
    clients_never_subscribed: u64,
}

struct Report {
    clients: usize,
    stream: StreamContents,
    publisher: PublisherStats,
    timeline: Timeline,
    rss: RssMarks,
    rss_series: Vec<(f64, u32, u64)>,
    metrics: BTreeMap<String, f64>,
    totals: Totals,
    worst_missing: u64,
    missing_example: Vec<u64>,
    /// Expected `seq`s whose event (as the clients got it) is not the
    /// stream's, plus conflicting receipts between clients.
    seq_mismatches: u64,
    connect_failures: BTreeMap<String, u64>,
    ends: BTreeMap<String, u64>,
}

impl Report {
    #[allow(clippy::too_many_arguments)]
    fn build(
        plan: &Plan,
        shared: &Shared,
        stats: Vec<ClientStats>,
        stream: StreamContents,
        publisher: PublisherStats,
        timeline: Timeline,
        rss: RssMarks,
        rss_series: Vec<(f64, u32, u64)>,
        metrics: BTreeMap<String, f64>,
    ) -> Self {
        let mut totals = Totals {
            clients_never_subscribed: plan.clients.saturating_sub(stats.len()) as u64,
            ..Totals::default()
        };
        let mut worst_missing = 0;
        let mut missing_example = Vec::new();
        let mut connect_failures = BTreeMap::new();
        let mut ends = BTreeMap::new();
        for client in &stats {
            let held = stream
                .expected
                .iter()
                .filter(|&&seq| client.received.contains(seq))
                .count() as u64;
            let missing = stream.expected.len() as u64 - held;
            if missing > 0 {
                totals.clients_missing += 1;
                if missing_example.is_empty() {
                    missing_example = stream
                        .expected
                        .iter()
                        .copied()
                        .filter(|&seq| !client.received.contains(seq))
                        .take(10)
                        .collect();
                }
            }
            worst_missing = worst_missing.max(missing);
            totals.missing += missing;
            totals.unexpected += client.received.len() - held;
            totals.duplicated += client.duplicated;
            totals.out_of_order += client.out_of_order;
            totals.deliveries += client.deliveries;
            totals.unparsed += client.unparsed;
            totals.wrong_tour += client.wrong_tour;
            totals.before_subscribed += client.before_subscribed;
            totals.reconnects += u64::from(client.connections.saturating_sub(1));
            totals.recovered_true += u64::from(client.recovered_true);
            totals.recovered_false += u64::from(client.recovered_false);
            totals.recovered_absent += u64::from(client.recovered_absent);
            totals.snapshots += u64::from(client.snapshots);
            totals.epoch_changes += u64::from(client.epoch_changes);
            totals.errors += u64::from(client.errors);
            if client.subscriptions == 0 {
                totals.clients_never_subscribed += 1;
            }
            for (kind, n) in &client.connect_failures {
                *connect_failures.entry(kind.clone()).or_default() += u64::from(*n);
            }
            for (kind, n) in &client.ends {
                *ends.entry(kind.clone()).or_default() += u64::from(*n);
            }
        }
        let mut seq_mismatches = shared.seq_conflicts.load(Ordering::Relaxed);
        for (&seq, &index) in &stream.event_of {
            if let Some(slot) = shared.seq_event.get(seq as usize) {
                let tag = slot.load(Ordering::Relaxed);
                if tag != 0 && tag != index as u32 + 1 {
                    seq_mismatches += 1;
                }
            }
        }
        Report {
            clients: plan.clients,
            stream,
            publisher,
            timeline,
            rss,
            rss_series,
            metrics,
            totals,
            worst_missing,
            missing_example,
            seq_mismatches,
            connect_failures,
            ends,
        }
    }

    fn print(&self, plan: &Plan) {
        let mib = |kib: Option<u64>| {
            kib.map_or("n/a".to_string(), |k| {
                format!("{:.1} MiB", k as f64 / 1024.0)
            })
        };
        let t = &self.totals;
        let expected = self.stream.expected.len();
        println!(
            "loadgen soak {}: {} clients, {} events/s for {:?} over {} tours",
            plan.id, self.clients, plan.rate, plan.duration, plan.tours
        );
        println!(
            "  gateway        {} {}",
            plan.gateway_bin.display(),
            plan.gateway_command().join(" ")
        );
        println!(
            "  replay budget  {} events on a since (--outbound-queue {} / 2) = {:.1}s at {}/s; \
             history {} per tour = {:.0}s at {:.2}/s per tour",
            plan.replay_budget(),
            plan.outbound_queue,
            plan.replay_budget() as f64 / plan.rate,
            plan.rate,
            plan.history_size,
            plan.history_size as f64 * plan.tours as f64 / plan.rate,
            plan.rate / plan.tours as f64
        );
        println!(
            "  events         {} published and confirmed{}; the stream holds {} messages ({} repeated eventIds, \
             {} stale, {} foreign, {} offset gaps, {} confirmed not found): {} expected per client",
            self.publisher.confirmed,
            self.publisher
                .aborted
                .as_deref()
                .map_or(String::new(), |a| format!(" ({a})")),
            self.stream.messages,
            self.stream.repeated_ids,
            self.stream.stale,
            self.stream.foreign,
            self.stream.offset_gaps,
            self.stream.confirmed_missing,
            expected
        );
        println!(
            "  deliveries     {} received ({} expected in all); {} events before a resubscribe's `subscribed` not counted",
            t.deliveries,
            expected as u64 * self.clients as u64,
            t.before_subscribed
        );
        println!(
            "  RECEIVED SETS  missing {}  duplicated {}  out of order {}   (unexpected {}, wrong event for seq {}, \
             wrong tour {}, unparsed {}; {} clients missing something, worst {})",
            t.missing,
            t.duplicated,
            t.out_of_order,
            t.unexpected,
            self.seq_mismatches,
            t.wrong_tour,
            t.unparsed,
            t.clients_missing,
            self.worst_missing
        );
        if !self.missing_example.is_empty() {
            println!("  e.g. missing   seq {:?}", self.missing_example);
        }
        println!(
            "  resubscribes   {} reconnects: recovered:true {}, recovered:false {} (snapshot instead), \
             no recovered field {}; {} snapshots in all, {} epoch changes, {} error frames",
            t.reconnects,
            t.recovered_true,
            t.recovered_false,
            t.recovered_absent,
            t.snapshots,
            t.epoch_changes,
            t.errors
        );
        println!(
            "  connections    ended: {:?}; failed attempts: {:?}; never subscribed: {}",
            self.ends, self.connect_failures, t.clients_never_subscribed
        );
        for close in &self.timeline.closes {
            println!("  broker close   {}", close.line());
        }
        if let Some(restart) = &self.timeline.restart {
            println!(
                "  restart        {}; ≈ {} events published while clients were away",
                restart.line(),
                restart
                    .clients_back
                    .map_or("n/a".to_string(), |s| format!("{:.0}", s * plan.rate))
            );
        }
        println!(
            "  gateway RSS    ready (no clients) {}, start {}, before restart {}, after restart {}, end {}",
            mib(self.rss.idle),
            mib(self.rss.start),
            mib(self.rss.before_restart),
            mib(self.rss.after_restart),
            mib(self.rss.end)
        );
        println!(
            "  publisher      {} attempts for {} events: {} returned, {} nacked, {} errors, {} timeouts, \
             {} connections; latest publish {:.1} ms behind schedule",
            self.publisher.attempts,
            self.publisher.confirmed,
            self.publisher.returned,
            self.publisher.nacked,
            self.publisher.errors,
            self.publisher.timeouts,
            self.publisher.connections,
            self.publisher.max_lag.as_secs_f64() * 1e3
        );
        for failure in &self.publisher.failures {
            println!("  e.g. publish   {failure}");
        }
        println!("  gateway says   {:?} (last process)", self.metrics);
        println!(
            "  wall time      {:.1}s (publishing {:.1}s; first ready {:.2}s; last exit {:.2}s, {})",
            self.timeline.wall.as_secs_f64(),
            self.timeline.publish_seconds,
            self.timeline.first_ready.as_secs_f64(),
            self.timeline.last_exit.seconds,
            self.timeline.last_exit.status
        );
    }

    fn json(&self, plan: &Plan) -> serde_json::Value {
        let t = &self.totals;
        // In parts: one `json!` this large exceeds the macro recursion limit.
        let scenario = serde_json::json!({
            "mode": "soak",
            "id": plan.id,
            "clients": self.clients,
            "rate": plan.rate,
            "durationSeconds": plan.duration.as_secs_f64(),
            "closeEverySeconds": plan.close_every.map(|d| d.as_secs_f64()),
            "restartAtSeconds": plan.restart_at.map(|d| d.as_secs_f64()),
            "tours": plan.tours,
            "exchange": plan.exchange,
            "stream": plan.stream,
            "gatewayCommand": plan.gateway_command(),
            "outboundQueue": plan.outbound_queue,
            "replayBudgetEvents": plan.replay_budget(),
            "historySize": plan.history_size,
            "gatewayLog": plan.gateway_log.display().to_string(),
        });
        let events = serde_json::json!({
            "published": self.publisher.confirmed,
            "publisher": {
                "attempts": self.publisher.attempts,
                "returned": self.publisher.returned,
                "nacked": self.publisher.nacked,
                "errors": self.publisher.errors,
                "timeouts": self.publisher.timeouts,
                "connections": self.publisher.connections,
                "maxLagMs": self.publisher.max_lag.as_secs_f64() * 1e3,
                "aborted": self.publisher.aborted,
                "failures": self.publisher.failures,
            },
            "streamContents": {
                "messages": self.stream.messages,
                "expectedEvents": self.stream.expected.len(),
                "repeatedEventIds": self.stream.repeated_ids,
                "stale": self.stream.stale,
                "foreign": self.stream.foreign,
                "offsetGaps": self.stream.offset_gaps,
                "confirmedNotFound": self.stream.confirmed_missing,
            },
        });
        let received = serde_json::json!({
            "missing": t.missing,
            "duplicated": t.duplicated,
            "outOfOrder": t.out_of_order,
            "unexpected": t.unexpected,
            "seqMismatches": self.seq_mismatches,
            "wrongTour": t.wrong_tour,
            "unparsed": t.unparsed,
            "clientsMissing": t.clients_missing,
            "worstClientMissing": self.worst_missing,
            "missingExample": self.missing_example,
            "deliveries": t.deliveries,
            "expectedDeliveries": self.stream.expected.len() as u64 * self.clients as u64,
            "beforeSubscribed": t.before_subscribed,
            "reconnects": t.reconnects,
            "recoveredTrue": t.recovered_true,
            "recoveredFalse": t.recovered_false,
            "recoveredAbsent": t.recovered_absent,
            "snapshots": t.snapshots,
            "epochChanges": t.epoch_changes,
            "errorFrames": t.errors,
            "clientsNeverSubscribed": t.clients_never_subscribed,
            "connectionEnds": self.ends,
            "connectFailures": self.connect_failures,
        });
        let process = serde_json::json!({
            "brokerCloses": self.timeline.closes.iter().map(|c| serde_json::json!({
                "plannedSeconds": c.planned.as_secs_f64(),
                "atSeconds": c.done_at.as_secs_f64(),
                "closed": c.closed,
                "error": c.error,
                "sawUnready": c.saw_unready,
                "readyAgainSeconds": c.ready_again,
            })).collect::<Vec<_>>(),
            "restart": self.timeline.restart.as_ref().map(|r| serde_json::json!({
                "plannedSeconds": r.planned.as_secs_f64(),
                "atSeconds": r.done_at.as_secs_f64(),
                "oldPid": r.old_pid,
                "newPid": r.new_pid,
                "exitSeconds": r.exit.seconds,
                "exitStatus": r.exit.status,
                "downtimeSeconds": r.downtime,
                "replaySeconds": r.replay,
                "clientsBackSeconds": r.clients_back,
                "subscribedAtReady": r.subscribed_at_ready,
            })),
            "rssKiB": {
                "ready": self.rss.idle,
                "start": self.rss.start,
                "beforeRestart": self.rss.before_restart,
                "afterRestart": self.rss.after_restart,
                "end": self.rss.end,
                "series": self.rss_series.iter().map(|(t, pid, kib)| serde_json::json!([t, pid, kib])).collect::<Vec<_>>(),
            },
            "gatewayMetrics": self.metrics,
            "firstReadySeconds": self.timeline.first_ready.as_secs_f64(),
            "publishSeconds": self.timeline.publish_seconds,
            "lastExit": {"seconds": self.timeline.last_exit.seconds, "status": self.timeline.last_exit.status},
            "wallSeconds": self.timeline.wall.as_secs_f64(),
        });
        let mut report = serde_json::Map::new();
        for part in [scenario, events, received, process] {
            if let serde_json::Value::Object(fields) = part {
                report.extend(fields);
            }
        }
        serde_json::Value::Object(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seq_sets_grow_and_count() {
        let mut set = SeqSet::default();
        assert!(set.insert(1));
        assert!(set.insert(700));
        assert!(!set.insert(1));
        assert!(set.contains(700) && !set.contains(699));
        assert_eq!(set.len(), 2);
    }

    #[test]
    fn flag_values_are_found_in_both_forms() {
        let args: Vec<String> = ["--history-size=512", "--outbound-queue", "8192"]
            .map(String::from)
            .into();
        assert_eq!(flag_value(&args, "--history-size"), Some("512"));
        assert_eq!(flag_value(&args, "--outbound-queue"), Some("8192"));
        assert_eq!(flag_value(&args, "--port"), None);
        assert_eq!(flag_value(&args, "--history"), None);
    }
}
