//! `loadgen rooms`: one room of many members over two gateway instances
//! (issue 20's benchmark), then presence churn in many small rooms.
//!
//! - **Chat.** `--members` WebSocket clients (alternating instances) join
//!   one room; `--publishers` of them publish `--rate` messages per second in
//!   total for `--duration`. Every text is this run's marker and the
//!   message's index, and the publisher stamps the send instant on the
//!   shared monotonic clock just before it writes the frame, so every
//!   member times publish → `room.message` (the gateway's write to the
//!   stream, the broker, and the fan-out on both instances), and counts
//!   what it got against what was confirmed (`published`): missing,
//!   duplicated, or delivered without a confirmation.
//! - **Churn.** The same member connections join and leave `--churn-rooms`
//!   small rooms, `--churn-rate` operations per second for
//!   `--churn-duration`, from a seeded generator, while one watcher per
//!   room on each instance keeps the room's latest `memberCount` (from its
//!   `joined` and every `presence`). Convergence is the time from the last
//!   operation's answer until every watcher on both instances shows the
//!   driver's truth.
//!
//! Gateway CPU (utime + stime of every `--pid`) is taken around each phase.
//! The rooms must stay at or under the gateway's `ROOM_PRESENCE_LIMIT` for
//! the churn's `presence` to carry each change (above it, counts come once
//! a second and convergence would measure that throttle instead).

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail};
use clap::Args;
use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

use crate::latency::{percentile_ms, process_cpu};
use crate::shared::*;

/// Rooms one watcher connection covers (the gateway allows 32 per connection).
const ROOMS_PER_WATCHER: usize = 30;
/// Churn rooms one member may be in at once (its chat room is one more,
/// and `MAX_ROOMS_PER_CONNECTION` is 32).
const MAX_CHURN_ROOMS_PER_MEMBER: usize = 30;

#[derive(Debug, Args)]
pub(crate) struct RoomsArgs {
    /// WebSocket URL of each gateway instance (loopback only); members
    /// alternate between them.
    #[arg(long = "url", required = true)]
    urls: Vec<String>,
    /// Each gateway's pid, for its CPU time.
    #[arg(long = "pid")]
    pids: Vec<u32>,
    /// Members of the chat room (and the churning users).
    #[arg(long, default_value_t = 1000)]
    members: usize,
    /// Members that publish (alternating instances).
    #[arg(long, default_value_t = 10)]
    publishers: usize,
    /// Room messages per second, over all publishers.
    #[arg(long, default_value_t = 100.0)]
    rate: f64,
    /// How long to publish (0 skips the chat).
    #[arg(long, default_value = "20s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// After the last publish, wait at most this long for deliveries.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    drain: Duration,
    /// Joins and leaves per second, over all members.
    #[arg(long, default_value_t = 1000.0)]
    churn_rate: f64,
    /// How long to churn (0 skips the churn).
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    churn_duration: Duration,
    /// Rooms the members churn in (keep their size under ROOM_PRESENCE_LIMIT).
    #[arg(long, default_value_t = 200)]
    churn_rooms: usize,
    /// Give up on convergence after this long.
    #[arg(long, default_value = "15s", value_parser = humantime::parse_duration)]
    convergence_timeout: Duration,
    /// Seed of the churn's choices.
    #[arg(long, default_value_t = 20)]
    seed: u64,
    /// Handshakes in flight at once during the ramp.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Wait between the ramp and the first publish; the gateways' idle CPU
    /// is measured over it.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    warmup: Duration,
    /// Also print the summary as one JSON line.
    #[arg(long)]
    json: bool,
}

/// What the driver and the connections share.
struct Shared {
    /// This run's marker: room names and message texts start with it.
    run: String,
    base: Instant,
    /// Send instant of publish `i`, ns since `base`, plus one (0 = not sent).
    sent_ns: Vec<AtomicU64>,
    /// Answer to publish `i`: 0 none yet, 1 `published`, 2 an error.
    answered: Vec<AtomicU64>,
    /// `room.message` receipts of this run's publishes, over all members.
    delivered: AtomicU64,
    /// Churn operations sent and not yet answered.
    pending: AtomicU64,
    /// Latest churn answer, ns since `base`.
    last_answer_ns: AtomicU64,
    /// Churn operations answered with an error.
    churn_errors: AtomicU64,
    /// Latest `memberCount` seen by the watcher of room `r` on instance
    /// `i` (index `i * rooms + r`), plus one (0 = none yet).
    counts: Vec<AtomicU64>,
    /// `presence` frames received by members and watchers.
    presence_frames: AtomicU64,
    errors: Failures,
}

impl Shared {
    fn now_ns(&self) -> u64 {
        self.base.elapsed().as_nanos() as u64
    }

    fn chat_room(&self) -> String {
        format!("{}chat", self.run)
    }

    fn churn_room(&self, room: usize) -> String {
        format!("{}c{room}", self.run)
    }

    /// The index in `name` of one of this run's churn rooms.
    fn churn_index(&self, name: &str) -> Option<usize> {
        name.strip_prefix(&self.run)?
            .strip_prefix('c')?
            .parse()
            .ok()
    }

    /// The publish index in a frame that carries this run's marker as a
    /// message text (`"text":"<run>m<i>"`).
    fn message_index(&self, text: &str) -> Option<usize> {
        let marker = format!("\"text\":\"{}m", self.run);
        let start = text.find(&marker)? + marker.len();
        let digits = &text[start..];
        let end = digits
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(digits.len());
        digits[..end].parse().ok()
    }
}

/// What the driver asks a member connection to do.
enum Command {
    /// Publish message `i` into the chat room.
    Publish(usize),
    /// Send this frame as it is (join and leave).
    Send(String),
}

/// What one member saw.
#[derive(Default)]
struct MemberReport {
    instance: usize,
    /// Latency in ns of each delivery from a publisher on the same
    /// instance, and from one on the other.
    same: Vec<u64>,
    cross: Vec<u64>,
    /// Publish indices received (each once).
    seen: Vec<bool>,
    duplicates: u64,
    closed: Option<String>,
}

pub(crate) async fn rooms(args: RoomsArgs) -> Result<()> {
    if args.urls.len() < 2 {
        bail!("give two --url (the two instances)");
    }
    let targets: Vec<Arc<Target>> = args
        .urls
        .iter()
        .map(|url| Target::parse(url).map(Arc::new))
        .collect::<Result<_>>()?;
    let instances = targets.len();
    let messages = (args.rate * args.duration.as_secs_f64()).round() as usize;
    if args.publishers == 0 || args.publishers > args.members {
        bail!("--publishers must be between 1 and --members");
    }
    let watchers_per_instance = args.churn_rooms.div_ceil(ROOMS_PER_WATCHER);
    raise_nofile((args.members + instances * watchers_per_instance) as u64 + 256)?;

    let run = format!("lg{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let shared = Arc::new(Shared {
        run,
        base: Instant::now(),
        sent_ns: (0..messages).map(|_| AtomicU64::new(0)).collect(),
        answered: (0..messages).map(|_| AtomicU64::new(0)).collect(),
        delivered: AtomicU64::new(0),
        pending: AtomicU64::new(0),
        last_answer_ns: AtomicU64::new(0),
        churn_errors: AtomicU64::new(0),
        counts: (0..instances * args.churn_rooms)
            .map(|_| AtomicU64::new(0))
            .collect(),
        presence_frames: AtomicU64::new(0),
        errors: Failures::default(),
    });
    let stop = CancellationToken::new();
    let gate = Arc::new(Semaphore::new(args.concurrency.max(1)));

    // The members: connect, join the chat room, then serve commands.
    eprintln!(
        "rooms: connecting {} members to {instances} instances…",
        args.members
    );
    let ramp = Instant::now();
    let ready = Arc::new(AtomicUsize::new(0));
    let mut members = JoinSet::new();
    let mut commands = Vec::with_capacity(args.members);
    for member in 0..args.members {
        let instance = member % instances;
        let (tx, rx) = mpsc::unbounded_channel();
        commands.push(tx);
        let (target, shared, stop, gate, ready) = (
            Arc::clone(&targets[instance]),
            Arc::clone(&shared),
            stop.clone(),
            Arc::clone(&gate),
            Arc::clone(&ready),
        );
        let publishers = args.publishers;
        members.spawn(async move {
            let mut report = MemberReport {
                instance,
                seen: vec![false; shared.sent_ns.len()],
                ..Default::default()
            };
            let setup = async {
                let _permit = gate.acquire().await?;
                let mut ws = connect_ws(&target).await?;
                next_text(&mut ws)
                    .await
                    .context("waiting for the greeting")?;
                let join = json!({"type": "join", "room": shared.chat_room(), "requestId": "j"});
                ws.send(Message::text(join.to_string())).await?;
                loop {
                    let text = next_text(&mut ws).await?;
                    let frame: Value = serde_json::from_str(&text)?;
                    match frame["type"].as_str() {
                        Some("joined") => break,
                        Some("error") => bail!("join refused: {text}"),
                        _ => {}
                    }
                }
                Ok::<_, anyhow::Error>(ws)
            };
            match tokio::time::timeout(Duration::from_secs(60), setup).await {
                Ok(Ok(ws)) => {
                    ready.fetch_add(1, Ordering::Relaxed);
                    serve(ws, rx, &shared, &stop, publishers, instances, &mut report).await;
                }
                Ok(Err(error)) => {
                    shared.errors.record(&error).await;
                    report.closed = Some(format!("setup: {error:#}"));
                }
                Err(_) => {
                    shared.errors.record(&anyhow!("timed out joining")).await;
                    report.closed = Some("setup timed out".into());
                }
            }
            report
        });
    }
    let deadline = ramp + Duration::from_secs(120);
    while ready.load(Ordering::Relaxed) + shared.errors.count.load(Ordering::Relaxed) < args.members
    {
        if Instant::now() >= deadline {
            stop.cancel();
            bail!("members not ready after 120 s");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let joined = ready.load(Ordering::Relaxed);
    shared.errors.report("members").await;
    if joined < args.members {
        stop.cancel();
        bail!("only {joined} of {} members joined", args.members);
    }
    eprintln!(
        "rooms: {joined} members joined in {:.1}s",
        ramp.elapsed().as_secs_f64()
    );

    // The watchers: one per churn room on each instance.
    let mut watchers = JoinSet::new();
    if !args.churn_duration.is_zero() {
        let watching = Arc::new(AtomicUsize::new(0));
        for (instance, target) in targets.iter().enumerate() {
            for first in (0..args.churn_rooms).step_by(ROOMS_PER_WATCHER) {
                let rooms: Vec<usize> =
                    (first..(first + ROOMS_PER_WATCHER).min(args.churn_rooms)).collect();
                let (target, shared, stop, watching) = (
                    Arc::clone(target),
                    Arc::clone(&shared),
                    stop.clone(),
                    Arc::clone(&watching),
                );
                let room_count = args.churn_rooms;
                watchers.spawn(async move {
                    let result = watch(
                        &target, &rooms, instance, room_count, &shared, &stop, &watching,
                    )
                    .await;
                    if let Err(error) = &result {
                        shared.errors.record(error).await;
                    }
                    result
                });
            }
        }
        let wanted = instances * watchers_per_instance;
        let deadline = Instant::now() + Duration::from_secs(60);
        while watching.load(Ordering::Relaxed) < wanted {
            if Instant::now() >= deadline || shared.errors.count.load(Ordering::Relaxed) > 0 {
                stop.cancel();
                shared.errors.report("watchers").await;
                bail!("watchers not ready");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    // Idle: what the gateways spend with everyone connected and quiet.
    let cpu = |pids: &[u32]| -> Option<Duration> {
        pids.iter()
            .map(|pid| process_cpu(*pid))
            .sum::<Option<Duration>>()
    };
    let idle_before = cpu(&args.pids);
    let idle_started = Instant::now();
    tokio::time::sleep(args.warmup).await;
    let idle_cpu = idle_before
        .zip(cpu(&args.pids))
        .map(|(a, b)| b.saturating_sub(a).as_secs_f64() / idle_started.elapsed().as_secs_f64());

    // Chat.
    let mut chat = None;
    if messages > 0 {
        eprintln!(
            "rooms: {messages} messages from {} publishers at {}/s…",
            args.publishers, args.rate
        );
        let cpu_before = cpu(&args.pids);
        let started = Instant::now();
        let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / args.rate));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        for index in 0..messages {
            ticker.tick().await;
            let _ = commands[index % args.publishers].send(Command::Publish(index));
        }
        let publish_s = started.elapsed().as_secs_f64();
        let drain_deadline = Instant::now() + args.drain;
        let done = || {
            let answered: Vec<u64> = shared
                .answered
                .iter()
                .map(|a| a.load(Ordering::Relaxed))
                .collect();
            let confirmed = answered.iter().filter(|a| **a == 1).count() as u64;
            let all_answered = answered.iter().all(|a| *a != 0);
            all_answered && shared.delivered.load(Ordering::Relaxed) >= confirmed * joined as u64
        };
        while !done() && Instant::now() < drain_deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let cpu_used = cpu_before.zip(cpu(&args.pids)).map(|(a, b)| b - a);
        chat = Some((publish_s, started.elapsed().as_secs_f64(), cpu_used));
    }

    // Churn.
    let mut churn = None;
    if !args.churn_duration.is_zero() {
        let ops = (args.churn_rate * args.churn_duration.as_secs_f64()).round() as usize;
        eprintln!(
            "rooms: churn, {ops} joins/leaves over {} rooms at {}/s…",
            args.churn_rooms, args.churn_rate
        );
        let mut rng = XorShift(args.seed.max(1));
        let mut in_room: Vec<HashSet<usize>> = vec![HashSet::new(); args.churn_rooms];
        let mut rooms_of: Vec<Vec<usize>> = vec![Vec::new(); args.members];
        let cpu_before = cpu(&args.pids);
        let started = Instant::now();
        // Batches every 10 ms: a timer per operation would be coarser
        // than the rate.
        let per_tick = (args.churn_rate / 100.0).max(1.0);
        let mut ticker = tokio::time::interval(Duration::from_millis(10));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        let (mut sent, mut joins, mut leaves, mut tick) = (0usize, 0usize, 0usize, 0usize);
        while sent < ops {
            ticker.tick().await;
            tick += 1;
            let due = ((tick as f64 * per_tick).round() as usize).min(ops);
            while sent < due {
                // A random member leaves one of its rooms or joins a
                // random one, half and half (a join into a room it is
                // already in is a leave), so the rooms neither fill nor
                // empty.
                let member = rng.below(args.members);
                let mine = &rooms_of[member];
                let (room, leave) = if !mine.is_empty()
                    && (mine.len() >= MAX_CHURN_ROOMS_PER_MEMBER || rng.below(2) == 0)
                {
                    (mine[rng.below(mine.len())], true)
                } else {
                    let room = rng.below(args.churn_rooms);
                    (room, in_room[room].contains(&member))
                };
                let kind = if leave {
                    in_room[room].remove(&member);
                    rooms_of[member].retain(|r| *r != room);
                    leaves += 1;
                    "leave"
                } else {
                    in_room[room].insert(member);
                    rooms_of[member].push(room);
                    joins += 1;
                    "join"
                };
                let frame =
                    json!({"type": kind, "room": shared.churn_room(room), "requestId": "c"});
                shared.pending.fetch_add(1, Ordering::Relaxed);
                let _ = commands[member].send(Command::Send(frame.to_string()));
                sent += 1;
            }
        }
        let churn_s = started.elapsed().as_secs_f64();
        let last_sent_ns = shared.now_ns();
        // Every operation answered: the last change is in its instance.
        let answer_deadline = Instant::now() + args.convergence_timeout;
        while shared.pending.load(Ordering::Relaxed) > 0 && Instant::now() < answer_deadline {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let unanswered = shared.pending.load(Ordering::Relaxed);
        let last_answer_ns = shared.last_answer_ns.load(Ordering::Relaxed);
        // Then until every watcher shows the truth (its own two watchers included).
        let truth: Vec<u64> = in_room
            .iter()
            .map(|members| (members.len() + instances) as u64)
            .collect();
        let converged = || {
            (0..instances).all(|instance| {
                truth.iter().enumerate().all(|(room, count)| {
                    shared.counts[instance * args.churn_rooms + room].load(Ordering::Acquire)
                        == count + 1
                })
            })
        };
        let converge_deadline = Instant::now() + args.convergence_timeout;
        let mut converged_ns = None;
        loop {
            if converged() {
                converged_ns = Some(shared.now_ns());
                break;
            }
            if Instant::now() >= converge_deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let cpu_used = cpu_before.zip(cpu(&args.pids)).map(|(a, b)| b - a);
        let wrong: Vec<String> = (0..instances)
            .flat_map(|instance| {
                let shared = &shared;
                truth.iter().enumerate().filter_map(move |(room, count)| {
                    let seen =
                        shared.counts[instance * args.churn_rooms + room].load(Ordering::Acquire);
                    (seen != count + 1).then(|| {
                        format!(
                            "instance {instance} room {room}: {} (truth {count})",
                            seen as i64 - 1
                        )
                    })
                })
            })
            .collect();
        churn = Some(Churn {
            ops,
            joins,
            leaves,
            seconds: churn_s,
            unanswered,
            errors: shared.churn_errors.load(Ordering::Relaxed),
            // From the last answer (or the last send, if later).
            convergence_ms: converged_ns
                .map(|at| at.saturating_sub(last_answer_ns.max(last_sent_ns)) as f64 / 1e6),
            convergence_from_last_answer_ms: converged_ns
                .map(|at| at.saturating_sub(last_answer_ns) as f64 / 1e6),
            members_at_end: in_room.iter().map(HashSet::len).sum(),
            largest_room: in_room.iter().map(HashSet::len).max().unwrap_or(0),
            cpu: cpu_used,
            wrong,
        });
    }

    stop.cancel();
    let mut reports = Vec::with_capacity(args.members);
    let collected = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(report) = members.join_next().await {
            if let Ok(report) = report {
                reports.push(report);
            }
        }
    })
    .await;
    if collected.is_err() {
        members.abort_all();
    }
    watchers.abort_all();

    // Summary.
    let answered: Vec<u64> = shared
        .answered
        .iter()
        .map(|a| a.load(Ordering::Relaxed))
        .collect();
    let confirmed: Vec<bool> = answered.iter().map(|a| *a == 1).collect();
    let confirmed_count = confirmed.iter().filter(|c| **c).count();
    let refused = answered.iter().filter(|a| **a == 2).count();
    let unanswered_publishes = answered.iter().filter(|a| **a == 0).count();
    let mut missing = 0u64;
    let mut unconfirmed = 0u64;
    let mut complete_members = 0usize;
    for report in &reports {
        let mut member_missing = 0;
        for (got, ok) in report.seen.iter().zip(&confirmed) {
            match (got, ok) {
                (false, true) => member_missing += 1,
                (true, false) => unconfirmed += 1,
                _ => {}
            }
        }
        missing += member_missing;
        if member_missing == 0 && report.closed.is_none() {
            complete_members += 1;
        }
    }
    let duplicates: u64 = reports.iter().map(|r| r.duplicates).sum();
    let closed: Vec<&str> = reports.iter().filter_map(|r| r.closed.as_deref()).collect();
    let mut all: Vec<u64> = reports
        .iter()
        .flat_map(|r| r.same.iter().copied())
        .collect();
    all.sort_unstable();
    let mut cross: Vec<u64> = reports
        .iter()
        .flat_map(|r| r.cross.iter().copied())
        .collect();
    cross.sort_unstable();
    let mut every: Vec<u64> = all.iter().chain(&cross).copied().collect();
    every.sort_unstable();
    let delivered = every.len() as u64;
    // By the member's instance: whether a delay is one instance's or both.
    let by_member: Vec<Vec<u64>> = (0..instances)
        .map(|i| {
            let mut values: Vec<u64> = reports
                .iter()
                .filter(|r| r.instance == i)
                .flat_map(|r| r.same.iter().chain(&r.cross).copied())
                .collect();
            values.sort_unstable();
            values
        })
        .collect();
    let pct = |values: &[u64], p: f64| percentile_ms(values, p);
    let per_instance: Vec<usize> = (0..instances)
        .map(|i| reports.iter().filter(|r| r.instance == i).count())
        .collect();

    println!(
        "loadgen rooms: {joined} members over {instances} instances ({per_instance:?}), run {}",
        shared.run
    );
    println!(
        "  idle           gateways' CPU {} with everyone connected",
        idle_cpu.map_or("n/a".into(), |c| format!("{:.1}% of a core", c * 100.0))
    );
    let mut chat_json = Value::Null;
    if let Some((publish_s, span_s, cpu_used)) = chat {
        let expected = confirmed_count as u64 * joined as u64;
        let cpu_us = cpu_used.map(|c| c.as_secs_f64() * 1e6 / delivered.max(1) as f64);
        println!(
            "  chat           {messages} publishes in {publish_s:.2} s from {} publishers: {confirmed_count} confirmed, {refused} refused, {unanswered_publishes} unanswered",
            args.publishers
        );
        println!(
            "  deliveries     {delivered} of {expected} expected ({missing} missing, {duplicates} duplicates, {unconfirmed} unconfirmed); {complete_members} of {joined} members got every message once; {} closed",
            closed.len()
        );
        if let Some(reason) = closed.first() {
            println!("  e.g. closed    {reason}");
        }
        println!(
            "  latency ms     p50 {:.3}  p90 {:.3}  p99 {:.3}  p99.9 {:.3}  max {:.3}",
            pct(&every, 50.0),
            pct(&every, 90.0),
            pct(&every, 99.0),
            pct(&every, 99.9),
            pct(&every, 100.0)
        );
        println!(
            "  same / other   p50 {:.3} / {:.3}  p99 {:.3} / {:.3} ms (publisher on the member's instance / the other)",
            pct(&all, 50.0),
            pct(&cross, 50.0),
            pct(&all, 99.0),
            pct(&cross, 99.0)
        );
        for (instance, values) in by_member.iter().enumerate() {
            println!(
                "  at instance {instance}  p50 {:.3}  p99 {:.3}  max {:.3} ms (members connected there)",
                pct(values, 50.0),
                pct(values, 99.0),
                pct(values, 100.0)
            );
        }
        println!(
            "  CPU            gateways {} over {span_s:.2} s",
            cpu_used.map_or("n/a (no --pid)".into(), |c| format!(
                "{:.2} s ({:.1}% of a core; {:.2} µs per delivery)",
                c.as_secs_f64(),
                c.as_secs_f64() * 100.0 / span_s,
                cpu_us.unwrap_or(f64::NAN)
            ))
        );
        chat_json = json!({
            "messages": messages,
            "confirmed": confirmed_count,
            "refused": refused,
            "unanswered": unanswered_publishes,
            "expected": expected,
            "delivered": delivered,
            "missing": missing,
            "duplicates": duplicates,
            "unconfirmedDeliveries": unconfirmed,
            "completeMembers": complete_members,
            "closed": closed.len(),
            "p50ms": pct(&every, 50.0),
            "p90ms": pct(&every, 90.0),
            "p99ms": pct(&every, 99.0),
            "p999ms": pct(&every, 99.9),
            "maxms": pct(&every, 100.0),
            "sameInstanceP50ms": pct(&all, 50.0),
            "sameInstanceP99ms": pct(&all, 99.0),
            "otherInstanceP50ms": pct(&cross, 50.0),
            "otherInstanceP99ms": pct(&cross, 99.0),
            "byMemberInstance": by_member.iter().map(|values| json!({
                "p50ms": pct(values, 50.0),
                "p99ms": pct(values, 99.0),
                "maxms": pct(values, 100.0),
            })).collect::<Vec<_>>(),
            "publishSeconds": publish_s,
            "spanSeconds": span_s,
            "gatewayCpuSeconds": cpu_used.map(|c| c.as_secs_f64()),
            "gatewayCpuUsPerDelivery": cpu_us,
        });
    }
    let mut churn_json = Value::Null;
    if let Some(churn) = &churn {
        println!(
            "  churn          {} operations ({} joins, {} leaves) in {:.2} s ({:.0}/s), {} unanswered, {} refused; {} members in {} rooms at the end (largest {})",
            churn.ops,
            churn.joins,
            churn.leaves,
            churn.seconds,
            churn.ops as f64 / churn.seconds,
            churn.unanswered,
            churn.errors,
            churn.members_at_end,
            args.churn_rooms,
            churn.largest_room
        );
        println!(
            "  convergence    {} after the last change (both instances' presence = the truth in every room)",
            churn
                .convergence_ms
                .map_or("NOT REACHED".into(), |ms| format!("{ms:.1} ms"))
        );
        for wrong in churn.wrong.iter().take(5) {
            println!("  differs        {wrong}");
        }
        let cpu_s = churn.cpu.map(|c| c.as_secs_f64());
        println!(
            "  CPU            gateways {}",
            cpu_s.map_or("n/a (no --pid)".into(), |c| format!(
                "{c:.2} s ({:.1}% of a core; {:.1} µs per operation)",
                c * 100.0 / churn.seconds,
                c * 1e6 / churn.ops.max(1) as f64
            ))
        );
        churn_json = json!({
            "operations": churn.ops,
            "joins": churn.joins,
            "leaves": churn.leaves,
            "seconds": churn.seconds,
            "unanswered": churn.unanswered,
            "refused": churn.errors,
            "membersAtEnd": churn.members_at_end,
            "largestRoom": churn.largest_room,
            "convergenceMs": churn.convergence_ms,
            "convergenceFromLastAnswerMs": churn.convergence_from_last_answer_ms,
            "differing": churn.wrong.len(),
            "gatewayCpuSeconds": cpu_s,
            "gatewayCpuCorePercent": cpu_s.map(|c| c * 100.0 / churn.seconds),
            "gatewayCpuUsPerOperation": cpu_s.map(|c| c * 1e6 / churn.ops.max(1) as f64),
        });
    }
    println!(
        "  presence       {} frames to members and watchers",
        shared.presence_frames.load(Ordering::Relaxed)
    );
    shared.errors.report("requests").await;
    if args.json {
        let summary = json!({
            "members": joined,
            "perInstance": per_instance,
            "idleCpuCorePercent": idle_cpu.map(|c| c * 100.0),
            "chat": chat_json,
            "churn": churn_json,
            "presenceFrames": shared.presence_frames.load(Ordering::Relaxed),
            "errors": shared.errors.count.load(Ordering::Relaxed),
        });
        println!("{summary}");
    }
    Ok(())
}

struct Churn {
    ops: usize,
    joins: usize,
    leaves: usize,
    seconds: f64,
    unanswered: u64,
    errors: u64,
    convergence_ms: Option<f64>,
    convergence_from_last_answer_ms: Option<f64>,
    members_at_end: usize,
    largest_room: usize,
    cpu: Option<Duration>,
    wrong: Vec<String>,
}

/// A member's connection: runs the driver's commands, times this run's
/// room messages, and counts the answers, until `stop`.
async fn serve(
    mut ws: Ws,
    mut commands: mpsc::UnboundedReceiver<Command>,
    shared: &Shared,
    stop: &CancellationToken,
    publishers: usize,
    instances: usize,
    report: &mut MemberReport,
) {
    let stopped = stop.cancelled();
    tokio::pin!(stopped);
    loop {
        tokio::select! {
            biased;
            _ = &mut stopped => break,
            command = commands.recv() => {
                let frame = match command {
                    Some(Command::Publish(index)) => {
                        let text = json!({
                            "type": "publish",
                            "room": shared.chat_room(),
                            "text": format!("{}m{index}", shared.run),
                            "requestId": format!("p{index}"),
                        });
                        shared.sent_ns[index].store(shared.now_ns() + 1, Ordering::Release);
                        text.to_string()
                    }
                    Some(Command::Send(text)) => text,
                    None => break,
                };
                if let Err(error) = ws.send(Message::text(frame)).await {
                    report.closed = Some(format!("sending: {error}"));
                    break;
                }
            }
            frame = ws.next() => {
                let now = shared.now_ns();
                match frame {
                    Some(Ok(Message::Text(text))) => {
                        if let Some(index) = shared.message_index(&text) {
                            let Some(sent) = shared.sent_ns.get(index) else { continue };
                            let sent = sent.load(Ordering::Acquire);
                            if sent == 0 {
                                continue;
                            }
                            if std::mem::replace(&mut report.seen[index], true) {
                                report.duplicates += 1;
                                continue;
                            }
                            let latency = now.saturating_sub(sent - 1);
                            // Publisher `index % publishers` is on instance
                            // `(index % publishers) % instances`.
                            if (index % publishers) % instances == report.instance {
                                report.same.push(latency);
                            } else {
                                report.cross.push(latency);
                            }
                            shared.delivered.fetch_add(1, Ordering::Relaxed);
                        } else {
                            answer(&text, shared, now).await;
                        }
                    }
                    Some(Ok(Message::Close(frame))) => {
                        report.closed = Some(match frame {
                            Some(f) => format!("{} {}", u16::from(f.code), f.reason),
                            None => "close without code".into(),
                        });
                        break;
                    }
                    Some(Ok(_)) => {}
                    Some(Err(error)) => {
                        report.closed = Some(format!("error: {error}"));
                        break;
                    }
                    None => {
                        report.closed = Some("connection ended".into());
                        break;
                    }
                }
            }
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(1), Ws::close(&mut ws, None)).await;
}

/// A frame that is not one of this run's room messages: publish and churn
/// answers, presence.
async fn answer(text: &str, shared: &Shared, now: u64) {
    let Ok(frame) = serde_json::from_str::<Value>(text) else {
        return;
    };
    let request = frame["requestId"].as_str().unwrap_or_default();
    match frame["type"].as_str().unwrap_or_default() {
        "presence" => {
            shared.presence_frames.fetch_add(1, Ordering::Relaxed);
        }
        "published" => {
            if let Some(slot) = publish_index(request).and_then(|i| shared.answered.get(i)) {
                slot.store(1, Ordering::Relaxed);
            }
        }
        "joined" | "left" if request == "c" => {
            shared.last_answer_ns.fetch_max(now, Ordering::Relaxed);
            shared.pending.fetch_sub(1, Ordering::Relaxed);
        }
        "error" => {
            if let Some(index) = publish_index(request) {
                if let Some(slot) = shared.answered.get(index) {
                    slot.store(2, Ordering::Relaxed);
                }
            } else if request == "c" {
                shared.churn_errors.fetch_add(1, Ordering::Relaxed);
                shared.last_answer_ns.fetch_max(now, Ordering::Relaxed);
                shared.pending.fetch_sub(1, Ordering::Relaxed);
            }
            shared.errors.record(&anyhow!("{text}")).await;
        }
        _ => {}
    }
}

fn publish_index(request: &str) -> Option<usize> {
    request.strip_prefix('p')?.parse().ok()
}

/// A watcher: joins `rooms` on one instance and keeps each one's latest
/// `memberCount` in `shared.counts`, until `stop`.
async fn watch(
    target: &Target,
    rooms: &[usize],
    instance: usize,
    room_count: usize,
    shared: &Shared,
    stop: &CancellationToken,
    watching: &AtomicUsize,
) -> Result<()> {
    let mut ws = connect_ws(target).await?;
    next_text(&mut ws)
        .await
        .context("waiting for the greeting")?;
    let record = |frame: &Value| {
        let Some(room) = frame["room"].as_str().and_then(|r| shared.churn_index(r)) else {
            return;
        };
        if let Some(count) = frame["memberCount"].as_u64() {
            shared.counts[instance * room_count + room].store(count + 1, Ordering::Release);
        }
    };
    for room in rooms {
        let join = json!({"type": "join", "room": shared.churn_room(*room), "requestId": "w"});
        ws.send(Message::text(join.to_string())).await?;
        loop {
            let text = next_text(&mut ws).await?;
            let frame: Value = serde_json::from_str(&text)?;
            match frame["type"].as_str() {
                Some("joined") => {
                    record(&frame);
                    break;
                }
                Some("presence") => record(&frame),
                Some("error") => bail!("watcher join refused: {text}"),
                _ => {}
            }
        }
    }
    watching.fetch_add(1, Ordering::Relaxed);
    let stopped = stop.cancelled();
    tokio::pin!(stopped);
    loop {
        let frame = tokio::select! {
            biased;
            _ = &mut stopped => break,
            frame = next_text(&mut ws) => frame?,
        };
        let Ok(frame) = serde_json::from_str::<Value>(&frame) else {
            continue;
        };
        if frame["type"] == "presence" {
            shared.presence_frames.fetch_add(1, Ordering::Relaxed);
            record(&frame);
        }
    }
    Ok(())
}

/// A small seeded generator: the churn's choices repeat from run to run.
struct XorShift(u64);

impl XorShift {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n.max(1) as u64) as usize
    }
}
