//! `loadgen latency`: publish → client receipt latency, at a rate or as a burst.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail};
use chrono::{SecondsFormat, Utc};
use clap::Args;
use futures_util::StreamExt as _;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::http::Uri;
use tokio_util::sync::CancellationToken;

use crate::channels::{ChannelArgs, ChannelLoad, NOTIFICATION_KEY};
use crate::shared::*;
use crate::tokens::{Tokens, with_token};
use crate::wire::{Client, ClientKind};

#[derive(Debug, Args)]
pub(crate) struct LatencyArgs {
    /// WebSocket URL of the gateway (loopback only).
    #[arg(long, default_value = "ws://127.0.0.1:8080/ws")]
    url: String,
    /// Subscribed clients.
    #[arg(long, default_value_t = 1000)]
    clients: usize,
    /// Events published per second (rate mode).
    #[arg(long, default_value_t = 20.0)]
    rate: f64,
    /// How long to publish (rate mode).
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Publish this many events as fast as possible instead (burst mode).
    #[arg(long)]
    burst: Option<usize>,
    /// AMQP URL of the broker (loopback only).
    #[arg(
        long,
        env = "RABBITMQ_URL",
        default_value = "amqp://guest:guest@127.0.0.1:5672"
    )]
    amqp: String,
    /// Topic exchange the gateway consumes (it must exist).
    #[arg(long, env = "RABBITMQ_EXCHANGE", default_value = "tour_booking_events")]
    exchange: String,
    /// Routing key of the published events.
    #[arg(long, default_value = "tour.availability.updated")]
    routing_key: String,
    /// Events rotate over this many tours (`lg_tour_0`, `lg_tour_1`, …).
    #[arg(long, default_value_t = 3)]
    tours: usize,
    /// What every client subscribes to.
    #[arg(long, default_value = "*")]
    subscribe: String,
    /// The tour clients' kind: tokio-tungstenite WebSocket (`ws`), a raw
    /// WebSocket offering permessage-deflate (`deflate`), or a raw
    /// Server-Sent Events stream (`sse`).
    #[arg(long, value_enum, default_value = "ws")]
    client: ClientKind,
    /// Pad each event's `tourName` to about this many bytes (so that events
    /// pass `COMPRESSION_MIN_BYTES`); 0 keeps the short name.
    #[arg(long, default_value_t = 0)]
    tour_name_bytes: usize,
    /// Handshakes in flight at once during the ramp.
    #[arg(long, default_value_t = 128)]
    concurrency: usize,
    /// Wait between the ramp and the first publish.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    warmup: Duration,
    /// After the last publish, wait at most this long for deliveries.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    drain: Duration,
    /// The gateway's pid, to report its CPU time per delivery.
    #[arg(long)]
    pid: Option<u32>,
    /// Skip the broker probe: an exclusive classic queue bound to the
    /// exchange, consumed by the load generator itself, which times the
    /// broker alone (publish → AMQP delivery) in the same run.
    #[arg(long)]
    no_probe: bool,
    /// Also time the broker through this stream (the gateway's
    /// `--rabbitmq-stream`), read from `next` by the load generator.
    #[arg(long)]
    probe_stream: Option<String>,
    /// Also print the summary as one JSON line.
    #[arg(long)]
    json: bool,
    /// Tokens, and the other channels' connections.
    #[command(flatten)]
    channels: ChannelArgs,
}

/// What the publisher and the clients share.
pub(crate) struct Shared {
    /// Marks this run's events: `eventId` is `{run}{index}`.
    run: String,
    /// The common clock.
    base: Instant,
    /// Publish time of event `i`, in ns since `base`, plus one (0 = not yet).
    published_ns: Vec<AtomicU64>,
    /// Deliveries of this run's events, over all clients.
    delivered: AtomicU64,
}

impl Shared {
    fn now_ns(&self) -> u64 {
        self.base.elapsed().as_nanos() as u64
    }

    /// The index of this run's event in `text`, if it is one.
    fn event_index(&self, text: &str) -> Option<usize> {
        let start = text.find(&self.run)? + self.run.len();
        let digits = &text[start..];
        let end = digits
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(digits.len());
        digits[..end].parse().ok()
    }
}

/// What one client saw.
#[derive(Default)]
struct ClientReport {
    /// (event index, latency in ns) per delivery.
    latencies: Vec<(u32, u64)>,
    duplicates: u64,
    /// Notifications received (a tour client has no user's channel).
    notifications: u64,
    /// Latest receipt, in ns since `base`.
    last_receipt_ns: u64,
    /// Why the server closed the connection, if it did.
    closed: Option<String>,
    /// Bytes read off the wire (raw clients).
    wire_bytes: u64,
}

pub(crate) async fn latency(args: LatencyArgs) -> Result<()> {
    let target = Arc::new(Target::parse(&args.url)?);
    let amqp_host: Uri = args
        .amqp
        .parse()
        .with_context(|| format!("bad AMQP URL {:?}", args.amqp))?;
    loopback_ip(amqp_host.host().unwrap_or_default())?;
    if args.burst.is_none() && (args.rate.is_nan() || args.rate <= 0.0) {
        bail!("--rate must be positive");
    }
    let events = match args.burst {
        Some(n) => n,
        None => (args.rate * args.duration.as_secs_f64()).round() as usize,
    };
    if events == 0 {
        bail!("nothing to publish");
    }
    raise_nofile((args.clients + args.channels.connections()) as u64 + 256)?;
    // With JWT on, the tour clients share one token (a user of their own).
    let tour_url = Arc::new(match &args.channels.jwt_secret {
        Some(secret) => with_token(
            &target.url,
            &Tokens::new(secret).sign("loadgen-tours", false)?,
        ),
        None => target.url.clone(),
    });

    let run = format!("lg-{}-", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let shared = Arc::new(Shared {
        run,
        base: Instant::now(),
        published_ns: (0..events).map(|_| AtomicU64::new(0)).collect(),
        delivered: AtomicU64::new(0),
    });

    // The broker first: fail fast if the exchange is not there.
    let amqp = lapin::Connection::connect(
        &args.amqp,
        lapin::ConnectionProperties::default().with_connection_name("tourcast-loadgen".into()),
    )
    .await
    .context("connecting to RabbitMQ")?;
    let channel = amqp.create_channel().await.context("opening a channel")?;
    channel
        .exchange_declare(
            args.exchange.as_str().into(),
            lapin::ExchangeKind::Topic,
            lapin::options::ExchangeDeclareOptions {
                passive: true,
                ..Default::default()
            },
            lapin::types::FieldTable::default(),
        )
        .await
        .with_context(|| {
            format!(
                "exchange {:?} does not exist (start the gateway on it first)",
                args.exchange
            )
        })?;

    // The broker probes, subscribed before anything is published.
    let mut probes = Vec::new();
    if !args.no_probe {
        probes.push(
            Probe::start(&args, None, Arc::clone(&shared))
                .await
                .context("starting the classic-queue probe")?,
        );
    }
    if let Some(stream) = &args.probe_stream {
        probes.push(
            Probe::start(&args, Some(stream.clone()), Arc::clone(&shared))
                .await
                .context("starting the stream probe")?,
        );
    }

    // The clients.
    eprintln!("latency: connecting {} clients…", args.clients);
    let stop = CancellationToken::new();
    let gate = Arc::new(Semaphore::new(args.concurrency.max(1)));
    let ready = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(Failures::default());
    let mut clients = JoinSet::new();
    let ramp_started = Instant::now();
    for _ in 0..args.clients {
        let (target, shared, stop, gate) = (
            Arc::clone(&target),
            Arc::clone(&shared),
            stop.clone(),
            Arc::clone(&gate),
        );
        let (ready, failures) = (Arc::clone(&ready), Arc::clone(&failures));
        let subscribe = args.subscribe.clone();
        let url = Arc::clone(&tour_url);
        let kind = args.client;
        clients.spawn(async move {
            let setup = async {
                let _permit = gate.acquire().await?;
                Client::subscribed(kind, &target, &url, &subscribe).await
            };
            match tokio::time::timeout(Duration::from_secs(30), setup).await {
                Ok(Ok(ws)) => {
                    ready.fetch_add(1, Ordering::Relaxed);
                    receive(ws, &shared, &stop).await
                }
                Ok(Err(error)) => {
                    failures.record(&error).await;
                    ClientReport::default()
                }
                Err(_) => {
                    failures.record(&anyhow!("timed out subscribing")).await;
                    ClientReport::default()
                }
            }
        });
    }
    let deadline = ramp_started + Duration::from_secs(120);
    while ready.load(Ordering::Relaxed) + failures.count.load(Ordering::Relaxed) < args.clients {
        if Instant::now() >= deadline {
            stop.cancel();
            bail!("clients not ready after 120 s");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let subscribed = ready.load(Ordering::Relaxed);
    failures.report("clients").await;
    eprintln!(
        "latency: {subscribed} clients subscribed in {:.1}s",
        ramp_started.elapsed().as_secs_f64(),
    );
    let other_channels = if args.channels.any() {
        let connected = ChannelLoad::connect(&args.channels, &target, &gate, shared.base, &stop)
            .await
            .context("connecting the other channels");
        match connected {
            Ok(load) => Some(load),
            Err(error) => {
                stop.cancel();
                return Err(error);
            }
        }
    } else {
        None
    };
    eprintln!("latency: warming up {:?}…", args.warmup);
    tokio::time::sleep(args.warmup).await;

    // Publish.
    let properties = lapin::BasicProperties::default()
        .with_content_type("application/json".into())
        .with_delivery_mode(2);
    let publish = |index: usize| {
        let payload = event_payload(&shared.run, index, args.tours, args.tour_name_bytes);
        let (channel, properties, exchange, key) = (
            channel.clone(),
            properties.clone(),
            args.exchange.clone(),
            args.routing_key.clone(),
        );
        let shared = Arc::clone(&shared);
        async move {
            shared.published_ns[index].store(shared.now_ns() + 1, Ordering::Release);
            channel
                .basic_publish(
                    exchange.as_str().into(),
                    key.as_str().into(),
                    lapin::options::BasicPublishOptions::default(),
                    payload.as_bytes(),
                    properties,
                )
                .await
                .context("publishing")
        }
    };
    // Notification `i` right behind tour event `i` (the rest after the
    // last one), or all of them after it with `--notifications-after`.
    let notifications = other_channels
        .as_ref()
        .map_or(0, ChannelLoad::notifications);
    let interleaved = if args.channels.notifications_after {
        0
    } else {
        notifications.min(events)
    };
    let publish_notification = |index: usize| {
        let payload = other_channels
            .as_ref()
            .map(|load| load.notification_payload(index))
            .unwrap_or_default();
        let (channel, properties, exchange) =
            (channel.clone(), properties.clone(), args.exchange.clone());
        async move {
            channel
                .basic_publish(
                    exchange.as_str().into(),
                    NOTIFICATION_KEY.into(),
                    lapin::options::BasicPublishOptions::default(),
                    payload.as_bytes(),
                    properties,
                )
                .await
                .context("publishing a notification")
        }
    };
    let cpu_before = (args.pid.and_then(process_cpu), self_cpu());
    let first_publish_ns = shared.now_ns();
    let publishing = Instant::now();
    match args.burst {
        Some(_) => {
            eprintln!("latency: publishing a burst of {events} events…");
            for index in 0..events {
                publish(index).await?;
                if index < interleaved {
                    publish_notification(index).await?;
                }
            }
        }
        None => {
            eprintln!("latency: publishing {events} events at {}/s…", args.rate);
            let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / args.rate));
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            for index in 0..events {
                ticker.tick().await;
                publish(index).await?;
                if index < interleaved {
                    publish_notification(index).await?;
                }
            }
        }
    }
    for index in interleaved..notifications {
        publish_notification(index).await?;
    }
    let publish_time = publishing.elapsed();

    // Drain: until every delivery arrived, or the drain time is over.
    let expected = (subscribed * events) as u64;
    let drain_deadline = Instant::now() + args.drain;
    let all_arrived = || {
        shared.delivered.load(Ordering::Relaxed) >= expected
            && other_channels
                .as_ref()
                .is_none_or(|load| load.delivered() >= notifications)
    };
    while !all_arrived() && Instant::now() < drain_deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // CPU up to the last delivery (or the end of the drain time).
    let cpu_after = (args.pid.and_then(process_cpu), self_cpu());
    let probe_deadline = Instant::now() + Duration::from_secs(2);
    while probes.iter().any(|p| p.received() < events) && Instant::now() < probe_deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop.cancel();
    let mut probe_results = Vec::new();
    for probe in probes {
        probe_results.push(probe.finish().await);
    }
    let mut reports = Vec::with_capacity(args.clients);
    let collected = tokio::time::timeout(Duration::from_secs(15), async {
        while let Some(report) = clients.join_next().await {
            if let Ok(report) = report {
                reports.push(report);
            }
        }
    })
    .await;
    if collected.is_err() {
        clients.abort_all();
    }
    let _ = amqp.close(200, "done".into()).await;
    let last_receipt = reports.iter().map(|r| r.last_receipt_ns).max().unwrap_or(0);
    let channel_report = match other_channels {
        Some(load) => Some(
            load.finish(notifications, (first_publish_ns, last_receipt))
                .await,
        ),
        None => None,
    };

    // Summary.
    let mut latencies: Vec<u64> = reports
        .iter()
        .flat_map(|r| r.latencies.iter().map(|(_, ns)| *ns))
        .collect();
    latencies.sort_unstable();
    let delivered = latencies.len() as u64;
    // Per event: the first receipt (broker + gateway, one client) and the
    // spread to the last one (the fan-out to every client).
    let mut first = vec![u64::MAX; events];
    let mut last = vec![0u64; events];
    for (index, ns) in reports.iter().flat_map(|r| r.latencies.iter()) {
        let i = *index as usize;
        first[i] = first[i].min(*ns);
        last[i] = last[i].max(*ns);
    }
    let (mut firsts, mut spreads): (Vec<u64>, Vec<u64>) = first
        .iter()
        .zip(&last)
        .filter(|(f, _)| **f != u64::MAX)
        .map(|(f, l)| (*f, l - f))
        .unzip();
    let first_p50 = median(&mut firsts) as f64 / 1e6;
    let spread_p50 = median(&mut spreads) as f64 / 1e6;
    let duplicates: u64 = reports.iter().map(|r| r.duplicates).sum();
    let notifications_to_tour_clients: u64 = reports.iter().map(|r| r.notifications).sum();
    let closed: Vec<&str> = reports.iter().filter_map(|r| r.closed.as_deref()).collect();
    let span_s = last_receipt.saturating_sub(first_publish_ns) as f64 / 1e9;
    let per_second = if span_s > 0.0 {
        delivered as f64 / span_s
    } else {
        0.0
    };
    let pct = |p: f64| percentile_ms(&latencies, p);
    let mean = if latencies.is_empty() {
        f64::NAN
    } else {
        latencies.iter().map(|&v| v as f64).sum::<f64>() / latencies.len() as f64 / 1e6
    };
    let mode = if args.burst.is_some() {
        "burst"
    } else {
        "rate"
    };
    println!(
        "loadgen latency ({mode}): {} clients, {events} events{}, exchange {:?}",
        subscribed,
        if args.burst.is_some() {
            String::new()
        } else {
            format!(" at {}/s", args.rate)
        },
        args.exchange
    );
    println!(
        "  deliveries     {delivered} of {expected} expected ({} missing, {duplicates} duplicates), {} clients closed by server",
        expected.saturating_sub(delivered),
        closed.len()
    );
    if let Some(reason) = closed.first() {
        println!("  e.g. closed    {reason}");
    }
    if notifications_to_tour_clients > 0 {
        println!(
            "  NOTE           {notifications_to_tour_clients} notifications reached tour clients"
        );
    }
    if let Some(report) = &channel_report {
        report.print();
    }
    println!(
        "  latency ms     p50 {:.3}  p90 {:.3}  p99 {:.3}  p99.9 {:.3}  max {:.3}  mean {:.3}",
        pct(50.0),
        pct(90.0),
        pct(99.0),
        pct(99.9),
        pct(100.0),
        mean
    );
    println!(
        "  per event      first receipt p50 {first_p50:.3} ms, first → last receipt p50 {spread_p50:.3} ms"
    );
    let gateway_cpu = cpu_before
        .0
        .zip(cpu_after.0)
        .map(|(a, b)| b.saturating_sub(a));
    let loadgen_cpu = cpu_after.1.saturating_sub(cpu_before.1);
    let per_delivery_us = |cpu: Duration| cpu.as_secs_f64() * 1e6 / delivered.max(1) as f64;
    println!(
        "  CPU            gateway {}, loadgen {:.2} s ({:.1} µs per delivery)",
        gateway_cpu.map_or("n/a (no --pid)".to_string(), |c| format!(
            "{:.2} s ({:.1} µs per delivery)",
            c.as_secs_f64(),
            per_delivery_us(c)
        )),
        loadgen_cpu.as_secs_f64(),
        per_delivery_us(loadgen_cpu)
    );
    for probe in &probe_results {
        println!(
            "  broker alone   {:<22} p50 {:.3}  p90 {:.3}  p99 {:.3}  max {:.3} ms ({} of {events} received)",
            probe.name,
            probe.percentile(50.0),
            probe.percentile(90.0),
            probe.percentile(99.0),
            probe.percentile(100.0),
            probe.latencies.len()
        );
    }
    println!(
        "  publishing     {:.3} s ({:.0} messages/s: {events} events{})",
        publish_time.as_secs_f64(),
        (events + notifications) as f64 / publish_time.as_secs_f64().max(1e-9),
        if notifications > 0 {
            format!(" and {notifications} notifications")
        } else {
            String::new()
        }
    );
    println!(
        "  throughput     {per_second:.0} deliveries/s (first publish → last receipt {span_s:.3} s)"
    );
    let wire_bytes: u64 = reports.iter().map(|r| r.wire_bytes).sum();
    if wire_bytes > 0 {
        // Everything the clients read after their handshakes, snapshots
        // included, over the deliveries.
        println!(
            "  wire           {:?} clients read {wire_bytes} bytes after the snapshot ({:.0} bytes per delivery)",
            args.client,
            wire_bytes as f64 / delivered.max(1) as f64
        );
    }
    if args.json {
        let summary = serde_json::json!({
            "mode": mode,
            "clients": subscribed,
            "events": events,
            "rate": args.burst.is_none().then_some(args.rate),
            "expected": expected,
            "delivered": delivered,
            "duplicates": duplicates,
            "client": format!("{:?}", args.client),
            "wireBytes": wire_bytes,
            "closedByServer": closed.len(),
            "p50ms": pct(50.0),
            "p90ms": pct(90.0),
            "p99ms": pct(99.0),
            "p999ms": pct(99.9),
            "maxms": pct(100.0),
            "meanms": mean,
            "publishSeconds": publish_time.as_secs_f64(),
            "spanSeconds": span_s,
            "deliveriesPerSecond": per_second,
            "firstReceiptP50ms": first_p50,
            "gatewayCpuUsPerDelivery": gateway_cpu.map(per_delivery_us),
            "loadgenCpuUsPerDelivery": per_delivery_us(loadgen_cpu),
            "brokerProbes": probe_results.iter().map(|p| serde_json::json!({
                "probe": p.name,
                "received": p.latencies.len(),
                "p50ms": p.percentile(50.0),
                "p90ms": p.percentile(90.0),
                "p99ms": p.percentile(99.0),
                "maxms": p.percentile(100.0),
            })).collect::<Vec<_>>(),
            "fanoutSpreadP50ms": spread_p50,
            "notificationsToTourClients": notifications_to_tour_clients,
            "channels": channel_report.as_ref().map(|r| r.json()),
        });
        println!("{summary}");
    }
    Ok(())
}

/// A consumer timing publish → AMQP delivery, without the gateway. It runs
/// on its own thread, runtime and AMQP connection, so that the load
/// generator's busy client tasks do not delay it.
pub(crate) struct Probe {
    name: String,
    thread: std::thread::JoinHandle<Vec<u64>>,
    received: Arc<AtomicUsize>,
    stop: CancellationToken,
}

/// What a probe measured, in ns.
pub(crate) struct ProbeResult {
    name: String,
    latencies: Vec<u64>,
}

impl ProbeResult {
    fn percentile(&self, p: f64) -> f64 {
        percentile_ms(&self.latencies, p)
    }
}

impl Probe {
    /// An exclusive classic queue bound to the exchange (`stream: None`), or
    /// a consumer of `stream` from its tail. Returns once it is consuming.
    pub(crate) async fn start(
        args: &LatencyArgs,
        stream: Option<String>,
        shared: Arc<Shared>,
    ) -> Result<Self> {
        let name = match &stream {
            None => "classic queue".to_string(),
            Some(stream) => format!("stream {stream}"),
        };
        let (url, exchange, key) = (
            args.amqp.clone(),
            args.exchange.clone(),
            args.routing_key.clone(),
        );
        let received = Arc::new(AtomicUsize::new(0));
        let stop = CancellationToken::new();
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<Result<()>>();
        let thread = {
            let (received, stop) = (Arc::clone(&received), stop.clone());
            std::thread::Builder::new()
                .name("loadgen-probe".into())
                .spawn(move || {
                    let runtime = match tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                    {
                        Ok(runtime) => runtime,
                        Err(error) => {
                            let _ = ready_tx.send(Err(error.into()));
                            return Vec::new();
                        }
                    };
                    runtime.block_on(async move {
                        let consuming =
                            Probe::consume(&url, &exchange, &key, stream.as_deref()).await;
                        let (connection, mut consumer) = match consuming {
                            Ok(consuming) => consuming,
                            Err(error) => {
                                let _ = ready_tx.send(Err(error));
                                return Vec::new();
                            }
                        };
                        let _ = ready_tx.send(Ok(()));
                        let manual_ack = stream.is_some();
                        let mut latencies = Vec::new();
                        let mut seen = vec![false; shared.published_ns.len()];
                        loop {
                            let delivery = tokio::select! {
                                delivery = consumer.next() => delivery,
                                _ = stop.cancelled() => break,
                            };
                            let Some(Ok(delivery)) = delivery else { break };
                            let now = shared.now_ns();
                            if manual_ack {
                                let _ = delivery
                                    .acker
                                    .ack(lapin::options::BasicAckOptions::default())
                                    .await;
                            }
                            let Ok(text) = std::str::from_utf8(&delivery.data) else {
                                continue;
                            };
                            let Some(index) = shared.event_index(text) else {
                                continue;
                            };
                            let Some(published) = shared.published_ns.get(index) else {
                                continue;
                            };
                            let published = published.load(Ordering::Acquire);
                            if published == 0 || std::mem::replace(&mut seen[index], true) {
                                continue;
                            }
                            latencies.push(now.saturating_sub(published - 1));
                            received.fetch_add(1, Ordering::Relaxed);
                        }
                        let _ = connection.close(200, "done".into()).await;
                        latencies.sort_unstable();
                        latencies
                    })
                })
                .context("starting the probe thread")?
        };
        ready_rx
            .await
            .map_err(|_| anyhow!("the probe thread ended early"))??;
        Ok(Probe {
            name,
            thread,
            received,
            stop,
        })
    }

    /// Connects and starts consuming.
    pub(crate) async fn consume(
        url: &str,
        exchange: &str,
        key: &str,
        stream: Option<&str>,
    ) -> Result<(lapin::Connection, lapin::Consumer)> {
        use lapin::options::{
            BasicConsumeOptions, BasicQosOptions, QueueBindOptions, QueueDeclareOptions,
        };
        use lapin::types::{AMQPValue, FieldTable};
        let connection = lapin::Connection::connect(
            url,
            lapin::ConnectionProperties::default()
                .with_connection_name("tourcast-loadgen-probe".into()),
        )
        .await
        .context("connecting the probe to RabbitMQ")?;
        let channel = connection.create_channel().await?;
        let tag = format!("loadgen-probe-{}", uuid::Uuid::new_v4().simple());
        let (queue, options, arguments) = match stream {
            None => {
                let declared = channel
                    .queue_declare(
                        "".into(),
                        QueueDeclareOptions {
                            exclusive: true,
                            auto_delete: true,
                            ..Default::default()
                        },
                        FieldTable::default(),
                    )
                    .await?;
                let queue = declared.name().to_string();
                channel
                    .queue_bind(
                        queue.as_str().into(),
                        exchange.into(),
                        key.into(),
                        QueueBindOptions::default(),
                        FieldTable::default(),
                    )
                    .await?;
                let options = BasicConsumeOptions {
                    no_ack: true,
                    ..Default::default()
                };
                (queue, options, FieldTable::default())
            }
            Some(stream) => {
                channel.basic_qos(1000, BasicQosOptions::default()).await?;
                let mut arguments = FieldTable::default();
                arguments.insert(
                    "x-stream-offset".into(),
                    AMQPValue::LongString("next".into()),
                );
                (
                    stream.to_string(),
                    BasicConsumeOptions::default(),
                    arguments,
                )
            }
        };
        let consumer = channel
            .basic_consume(
                queue.as_str().into(),
                tag.as_str().into(),
                options,
                arguments,
            )
            .await?;
        Ok((connection, consumer))
    }

    pub(crate) fn received(&self) -> usize {
        self.received.load(Ordering::Relaxed)
    }

    pub(crate) async fn finish(self) -> ProbeResult {
        self.stop.cancel();
        let thread = self.thread;
        let latencies = tokio::task::spawn_blocking(move || thread.join())
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or_default();
        ProbeResult {
            name: self.name,
            latencies,
        }
    }
}

/// Nearest-rank percentile of sorted ns values, in ms.
pub(crate) fn percentile_ms(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1] as f64 / 1e6
}

/// User + system CPU time of process `pid` (from `/proc/<pid>/stat`).
pub(crate) fn process_cpu(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Some(Duration::from_micros(ticks * 1_000_000 / hz))
}

/// User + system CPU time of this process.
fn self_cpu() -> Duration {
    process_cpu(std::process::id()).unwrap_or_default()
}

/// A `tour.availability.updated` event in the SPEC's publisher shape.
fn event_payload(run: &str, index: usize, tours: usize, name_bytes: usize) -> String {
    let tour = index % tours.max(1);
    let mut name = format!("Loadgen Tour {tour}");
    // A name that compresses like a real description: words, not one byte.
    while name.len() < name_bytes {
        name.push_str(" with a guide, skip-the-line entry and a river cruise");
    }
    // The publisher schema allows 256 bytes of name.
    name.truncate(name_bytes.clamp(name.len().min(256), 256));
    serde_json::json!({
        "eventId": format!("{run}{index}"),
        "eventType": "tour.availability.updated",
        "tourId": format!("lg_tour_{tour}"),
        "tourName": name,
        "availableSeats": (index % 20) as u32,
        "maxGroupSize": 20,
        "timestamp": Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
    })
    .to_string()
}

/// Reads until `stop`, timing every event of this run.
async fn receive(mut client: Client, shared: &Shared, stop: &CancellationToken) -> ClientReport {
    let mut report = ClientReport::default();
    let mut seen = vec![false; shared.published_ns.len()];
    // Created once: every client shares `stop`, and a fresh `cancelled()`
    // per frame would take its lock twice per delivery.
    let stopped = stop.cancelled();
    tokio::pin!(stopped);
    loop {
        let text = tokio::select! {
            biased;
            text = client.next_text() => text,
            _ = &mut stopped => break,
        };
        let now = shared.now_ns();
        match text {
            Ok(text) => {
                let Some(index) = shared.event_index(&text) else {
                    if text.contains(r#""type":"notification""#) {
                        report.notifications += 1;
                    }
                    continue;
                };
                let Some(published) = shared.published_ns.get(index) else {
                    continue;
                };
                let published = published.load(Ordering::Acquire);
                if published == 0 {
                    continue;
                }
                if std::mem::replace(&mut seen[index], true) {
                    report.duplicates += 1;
                    continue;
                }
                let latency = now.saturating_sub(published - 1);
                report.latencies.push((index as u32, latency));
                report.last_receipt_ns = report.last_receipt_ns.max(now);
                shared.delivered.fetch_add(1, Ordering::Relaxed);
            }
            Err(error) => {
                report.closed = Some(format!("{error:#}"));
                break;
            }
        }
    }
    report.wire_bytes = client.wire_bytes().unwrap_or(0);
    report
}
