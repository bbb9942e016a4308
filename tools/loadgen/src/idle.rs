//! `loadgen idle`: N idle connections, and the server's memory per connection.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail};
use clap::Args;
use futures_util::{SinkExt as _, StreamExt as _};
use tokio::io::AsyncReadExt as _;
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

use crate::shared::*;

#[derive(Debug, Args)]
pub(crate) struct IdleArgs {
    /// WebSocket URL of the server (loopback only).
    #[arg(long, default_value = "ws://127.0.0.1:8080/ws")]
    url: String,
    /// Connections to open.
    #[arg(long, default_value_t = 10_000)]
    connections: usize,
    /// Process whose resident memory is sampled (the server).
    #[arg(long)]
    pid: u32,
    /// Handshakes in flight at once during the ramp.
    #[arg(long, default_value_t = 128)]
    concurrency: usize,
    /// Wait after the ramp before sampling.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    settle: Duration,
    /// Memory samples taken before and after (the median is reported).
    #[arg(long, default_value_t = 5)]
    samples: usize,
    /// Time between memory samples.
    #[arg(long, default_value = "500ms", value_parser = humantime::parse_duration)]
    sample_interval: Duration,
    /// Keep the connections open this long after sampling.
    #[arg(long, default_value = "0s", value_parser = humantime::parse_duration)]
    hold: Duration,
    /// Plain TCP connections instead of WebSockets (for `loadgen bare --mode tcp`).
    #[arg(long)]
    tcp: bool,
    /// Offer permessage-deflate (what an idle connection with the
    /// extension agreed costs).
    #[arg(long)]
    offer_deflate: bool,
    /// Send `{"type":"subscribe","tourId":…}` on every connection first.
    #[arg(long)]
    subscribe: Option<String>,
    /// Give up on the ramp after this long.
    #[arg(long, default_value = "120s", value_parser = humantime::parse_duration)]
    ramp_timeout: Duration,
    /// Also print the summary as one JSON line.
    #[arg(long)]
    json: bool,
}

pub(crate) async fn idle(args: IdleArgs) -> Result<()> {
    let target = Target::parse(&args.url)?;
    raise_nofile(args.connections as u64 + 256)?;
    read_rss(args.pid).context("the --pid process")?;

    eprintln!(
        "idle: sampling pid {} before ({} samples)…",
        args.pid, args.samples
    );
    let before = sample_rss(args.pid, args.samples, args.sample_interval).await?;

    let target = Arc::new(target);
    let stop = CancellationToken::new();
    let gate = Arc::new(Semaphore::new(args.concurrency.max(1)));
    let connected = Arc::new(AtomicUsize::new(0));
    let lost = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(Failures::default());
    let subscribe: Option<Arc<str>> = args.subscribe.as_deref().map(Arc::from);
    let mut tasks = JoinSet::new();
    let ramp_started = Instant::now();
    for _ in 0..args.connections {
        let (target, stop, gate) = (Arc::clone(&target), stop.clone(), Arc::clone(&gate));
        let (connected, lost, failures) = (
            Arc::clone(&connected),
            Arc::clone(&lost),
            Arc::clone(&failures),
        );
        let subscribe = subscribe.clone();
        let tcp = args.tcp;
        let offer_deflate = args.offer_deflate;
        tasks.spawn(async move {
            let opened = {
                let Ok(_permit) = gate.acquire().await else {
                    return;
                };
                let open = async {
                    if tcp {
                        let stream = TcpStream::connect(target.addr).await?;
                        Ok::<_, anyhow::Error>(Idle::Tcp(stream))
                    } else {
                        let mut ws = if offer_deflate {
                            connect_ws_offering_deflate(&target).await?
                        } else {
                            connect_ws(&target).await?
                        };
                        next_text(&mut ws)
                            .await
                            .context("waiting for the greeting")?;
                        if let Some(tour) = subscribe {
                            let request =
                                serde_json::json!({"type": "subscribe", "tourId": &*tour});
                            ws.send(Message::text(request.to_string())).await?;
                        }
                        Ok(Idle::Ws(Box::new(ws)))
                    }
                };
                tokio::time::timeout(Duration::from_secs(30), open)
                    .await
                    .unwrap_or_else(|_| Err(anyhow!("timed out opening")))
            };
            match opened {
                Ok(conn) => {
                    connected.fetch_add(1, Ordering::Relaxed);
                    if !conn.hold(&stop).await {
                        lost.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Err(error) => failures.record(&error).await,
            }
        });
    }

    // Ramp: wait until every connection is open or failed.
    let deadline = ramp_started + args.ramp_timeout;
    let mut last_report = Instant::now();
    loop {
        let done = connected.load(Ordering::Relaxed) + failures.count.load(Ordering::Relaxed);
        if done >= args.connections || Instant::now() >= deadline {
            break;
        }
        if last_report.elapsed() >= Duration::from_secs(2) {
            eprintln!("  {done}/{} …", args.connections);
            last_report = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let ramp = ramp_started.elapsed();
    let open = connected.load(Ordering::Relaxed);
    eprintln!(
        "idle: {open} connections open in {:.1}s; settling {:?}…",
        ramp.as_secs_f64(),
        args.settle
    );
    tokio::time::sleep(args.settle).await;
    let after = sample_rss(args.pid, args.samples, args.sample_interval).await?;
    let still_open = open - lost.load(Ordering::Relaxed);
    let server_count = connected_clients(&target).await;

    if !args.hold.is_zero() {
        eprintln!("idle: holding for {:?}…", args.hold);
        tokio::time::sleep(args.hold).await;
    }
    stop.cancel();
    let closing = tokio::time::timeout(Duration::from_secs(15), async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if closing.is_err() {
        tasks.abort_all();
    }
    // Memory the server keeps once the connections are gone.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let closed = sample_rss(args.pid, args.samples, args.sample_interval)
        .await
        .ok();

    failures.report("connections").await;
    let n = still_open.max(1) as f64;
    let delta_vm = after.vm_rss as i64 - before.vm_rss as i64;
    let delta_anon = after.rss_anon as i64 - before.rss_anon as i64;
    let per_vm = delta_vm as f64 / n;
    let per_anon = delta_anon as f64 / n;
    println!(
        "loadgen idle: {} ({})",
        args.url,
        if args.tcp { "tcp" } else { "websocket" }
    );
    println!(
        "  connections    requested {}  open {}  failed {}  lost {}  server says {}",
        args.connections,
        still_open,
        failures.count.load(Ordering::Relaxed),
        lost.load(Ordering::Relaxed),
        server_count.map_or("n/a".to_string(), |c| c.to_string())
    );
    println!("  ramp           {:.2} s", ramp.as_secs_f64());
    println!(
        "  VmRSS  before {:>9.0} KiB  after {:>9.0} KiB  delta {:>9} KiB  per connection {:.2} KiB",
        kib(before.vm_rss),
        kib(after.vm_rss),
        delta_vm,
        per_vm
    );
    println!(
        "  RssAnon before {:>8.0} KiB  after {:>9.0} KiB  delta {:>9} KiB  per connection {:.2} KiB",
        kib(before.rss_anon),
        kib(after.rss_anon),
        delta_anon,
        per_anon
    );
    if let Some(closed) = closed {
        println!(
            "  after close    VmRSS {:.0} KiB (retained {} KiB)",
            kib(closed.vm_rss),
            closed.vm_rss as i64 - before.vm_rss as i64
        );
    }
    if args.json {
        let summary = serde_json::json!({
            "mode": "idle",
            "url": args.url,
            "tcp": args.tcp,
            "requested": args.connections,
            "open": still_open,
            "failed": failures.count.load(Ordering::Relaxed),
            "serverConnectedClients": server_count,
            "rampSeconds": ramp.as_secs_f64(),
            "vmRssBeforeKiB": before.vm_rss,
            "vmRssAfterKiB": after.vm_rss,
            "vmRssPerConnectionKiB": per_vm,
            "rssAnonPerConnectionKiB": per_anon,
            "vmRssAfterCloseKiB": closed.map(|c| c.vm_rss),
        });
        println!("{summary}");
    }
    if still_open < args.connections {
        bail!(
            "only {still_open} of {} connections stayed open",
            args.connections
        );
    }
    Ok(())
}

/// One idle connection.
enum Idle {
    Tcp(TcpStream),
    Ws(Box<Ws>),
}

impl Idle {
    /// Keeps reading until `stop`; returns false if the server ended it first.
    async fn hold(self, stop: &CancellationToken) -> bool {
        match self {
            Idle::Tcp(mut stream) => {
                let mut buf = [0u8; 64];
                loop {
                    tokio::select! {
                        _ = stop.cancelled() => return true,
                        read = stream.read(&mut buf) => match read {
                            Ok(0) | Err(_) => return false,
                            Ok(_) => {}
                        },
                    }
                }
            }
            Idle::Ws(mut ws) => loop {
                tokio::select! {
                    _ = stop.cancelled() => {
                        let _ = tokio::time::timeout(Duration::from_secs(2), Ws::close(&mut ws, None)).await;
                        return true;
                    }
                    // Reading also answers the server's pings.
                    frame = ws.next() => match frame {
                        Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return false,
                        Some(Ok(_)) => {}
                    },
                }
            },
        }
    }
}
