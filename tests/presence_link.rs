//! Presence between instances over the real peer link, before any client
//! command uses it: two gateways wired by the binary's own builder and
//! configuration (in this process, so the test can call
//! [`Presence::enter`]/`leave` as `join`/`leave` will), on one real broker
//! (a fresh exchange per test). A room's members are registered in each
//! gateway's hub as the join command will register them (a queue per
//! member, read here), since `join` is not served on this branch yet:
//! `tests/presence.rs` checks the same over real WebSocket clients once it is.
//!
//! - a first join and a last leave on one instance reach the members on the
//!   other within a broker round trip, with exact counts;
//! - a stopping instance's users leave at once (its goodbye);
//! - a silent instance (a peer played by the test, which stops reporting
//!   like a killed process) is expired, and its users leave, within two
//!   intervals; while it reports, nobody leaves.

mod common;
#[path = "common/rabbit.rs"]
mod rabbit;

use std::time::Duration;

use clap::Parser as _;
use prost::Message as _;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::time::Instant;

use tourcast::channel::Target;
use tourcast::config::Cli;
use tourcast::gateway::Gateway;
use tourcast::hub::{ClientHandle, ConnId, Hub, outbox};
use tourcast::presence::{Membership, PRESENCE_ROUTING_KEY, Presence};
use tourcast::protocol::codec::Encoding;
use tourcast::protocol::v1::{PeerPresence, PeerRoom};

#[allow(unused_imports)]
use common::{GatewayProcess, http_get};
use rabbit::Rabbit;

const INTERVAL: Duration = Duration::from_secs(1);
/// A broker round trip, with slack for a loaded machine; well under the interval.
const AT_ONCE: Duration = Duration::from_millis(700);

/// A gateway as the binary configures it, on the test's exchange.
async fn gateway(rabbit: &Rabbit, n: usize, id: &str) -> Gateway {
    let mut args: Vec<String> = vec![
        "tourcast".into(),
        "--stats-interval".into(),
        "1s".into(),
        "--instance-id".into(),
        id.into(),
    ];
    args.extend(rabbit.gateway_args(n));
    let cli = Cli::try_parse_from(args).expect("valid flags");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    Gateway::from_config(&cli.gateway)
        .start(listener)
        .await
        .expect("starts")
}

/// Waits until `gateway` has heard from `instances` instances in all
/// (itself included), over the same link presence uses.
async fn until_peers(gateway: &Gateway, instances: usize) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while gateway.state().stats.current(None).instances.len() < instances {
        assert!(Instant::now() < deadline, "the instances never met");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A member of `room` in `hub`, as `join` registers one.
fn member(hub: &Hub, room: &str, id: ConnId) -> outbox::Receiver {
    let (tx, rx) = outbox::channel(256);
    hub.add(
        &Target::Room(room.into()),
        &ClientHandle::new(id, Encoding::Json, tx),
    );
    rx
}

/// The next `presence` queued to `rx` within `limit`.
async fn next_presence(rx: &outbox::Receiver, limit: Duration) -> Option<Value> {
    let deadline = Instant::now() + limit;
    loop {
        if let Ok(frame) = rx.try_recv() {
            assert!(frame.is_text(), "a JSON frame");
            let message: Value = serde_json::from_slice(&frame).expect("JSON");
            if message["type"] == "presence" {
                return Some(message);
            }
            continue;
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn expect_presence(rx: &outbox::Receiver, limit: Duration) -> Value {
    next_presence(rx, limit)
        .await
        .unwrap_or_else(|| panic!("no presence within {limit:?}"))
}

fn presence(gateway: &Gateway) -> &Presence {
    &gateway.state().presence
}

#[tokio::test]
async fn joins_and_leaves_cross_instances_at_once_and_a_stopping_one_says_goodbye() {
    let rabbit = Rabbit::new().await;
    let a = gateway(&rabbit, 1, "gw-a").await;
    let b = gateway(&rabbit, 2, "gw-b").await;
    until_peers(&a, 2).await;
    until_peers(&b, 2).await;
    let (hub_a, hub_b) = (a.engine().hub(), b.engine().hub());

    let bob = member(hub_a, "support_42", 1_000_001);
    presence(&a).enter(hub_a, "support_42", "bob", 1_000_001);
    // b learns of bob from the change itself, not a later full report.
    let deadline = Instant::now() + AT_ONCE;
    while presence(&b).membership("support_42").member_count < 1 {
        assert!(Instant::now() < deadline, "bob's join did not reach b");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let alice = member(hub_b, "support_42", 2_000_001);
    let joined_at = Instant::now();
    let membership = presence(&b).enter(hub_b, "support_42", "alice", 2_000_001);
    assert_eq!(membership.members, ["alice", "bob"]);
    assert_eq!(membership.member_count, 2);
    let news = expect_presence(&bob, AT_ONCE).await;
    let latency = joined_at.elapsed();
    assert_eq!(news["userId"], "alice", "{news}");
    assert_eq!(news["action"], "joined");
    assert_eq!(news["memberCount"], 2);
    assert!(
        next_presence(&alice, Duration::from_millis(200))
            .await
            .is_none(),
        "alice is not told of her own join"
    );

    // A second connection of alice, on a: no news anywhere.
    presence(&a).enter(hub_a, "support_42", "alice", 1_000_002);
    presence(&b).leave(hub_b, "support_42", "alice", 2_000_001);
    assert!(next_presence(&bob, INTERVAL * 2).await.is_none());

    // Her last connection closes: bob hears it at once.
    let left_at = Instant::now();
    presence(&a).forget_connection(hub_a, 1_000_002);
    let news = expect_presence(&bob, AT_ONCE).await;
    assert_eq!(news["action"], "left", "{news}");
    assert_eq!(news["memberCount"], 1);
    assert!(left_at.elapsed() < AT_ONCE);

    // Carol on b; b stops: its goodbye makes her leave at once, not at expiry.
    let _carol = member(hub_b, "support_42", 2_000_002);
    presence(&b).enter(hub_b, "support_42", "carol", 2_000_002);
    assert_eq!(expect_presence(&bob, AT_ONCE).await["userId"], "carol");
    let stopped_at = Instant::now();
    tokio::time::timeout(Duration::from_secs(10), b.stop())
        .await
        .expect("b stops")
        .expect("b stopped cleanly");
    let news = expect_presence(&bob, INTERVAL).await;
    assert_eq!(news["userId"], "carol", "{news}");
    assert_eq!(news["action"], "left");
    assert!(
        stopped_at.elapsed() < INTERVAL + Duration::from_millis(500),
        "left after {:?}",
        stopped_at.elapsed()
    );
    eprintln!("join latency a→b→a: {latency:?}");
    let _ = a.stop().await;
    rabbit.cleanup().await;
}

#[tokio::test]
async fn a_silent_instances_users_leave_within_two_intervals() {
    let rabbit = Rabbit::new().await;
    let a = gateway(&rabbit, 1, "gw-a").await;
    until_peers(&a, 1).await;
    let hub = a.engine().hub();
    let bob = member(hub, "support_7", 1_000_001);
    presence(&a).enter(hub, "support_7", "bob", 1_000_001);
    // The peer link is up once a hears its own stats; give the presence
    // share of it the same moment.
    tokio::time::sleep(Duration::from_millis(300)).await;

    // A peer instance, played by the test: full reports every interval.
    let report = PeerPresence {
        instance_id: "gw-ghost".into(),
        full: true,
        rooms: vec![PeerRoom {
            room: "support_7".into(),
            users: vec!["carol".into(), "dave".into()],
        }],
        ..PeerPresence::default()
    };
    let publish = || async {
        rabbit
            .publish(
                PRESENCE_ROUTING_KEY,
                Some("application/x-protobuf"),
                &report.encode_to_vec(),
            )
            .await;
    };
    publish().await;
    let mut joined = Vec::new();
    for _ in 0..2 {
        let news = expect_presence(&bob, AT_ONCE).await;
        assert_eq!(news["action"], "joined", "{news}");
        joined.push(news["userId"].as_str().expect("userId").to_string());
    }
    joined.sort();
    assert_eq!(joined, ["carol", "dave"]);
    // While it reports, it stays: three intervals, nobody leaves.
    for _ in 0..3 {
        tokio::time::sleep(INTERVAL).await;
        publish().await;
        assert_eq!(presence(&a).membership("support_7").member_count, 3);
    }
    assert!(
        next_presence(&bob, Duration::from_millis(10))
            .await
            .is_none()
    );

    // It falls silent, as a killed process does.
    let silent_at = Instant::now();
    let mut left = Vec::new();
    for _ in 0..2 {
        let news = expect_presence(&bob, INTERVAL * 3).await;
        assert_eq!(news["action"], "left", "{news}");
        left.push(news["userId"].as_str().expect("userId").to_string());
    }
    let waited = silent_at.elapsed();
    left.sort();
    assert_eq!(left, ["carol", "dave"]);
    assert!(
        waited >= INTERVAL && waited <= INTERVAL * 2,
        "left {waited:?} after the last report"
    );
    let membership = presence(&a).membership("support_7");
    assert_eq!(membership.members, ["bob"]);
    let _ = a.stop().await;
    rabbit.cleanup().await;
}

/// This process's CPU time (user + system), both gateways and the driver.
fn process_cpu() -> Duration {
    // SAFETY: getrusage writes into the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let time = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    time(usage.ru_utime) + time(usage.ru_stime)
}

/// The benchmark of presence churn (BENCHMARKS.md, "Presence churn"): two
/// gateways, `ROOMS` rooms with a watcher on each instance, users entering
/// and leaving at `PRESENCE_BENCH_RATE` operations per second (default
/// 1,000), alternating instances, for `PRESENCE_BENCH_SECONDS` (default 5).
/// Then: how long until both instances agree with the truth on every room
/// (convergence), and the process's CPU per second of churn.
///
/// `cargo test --test presence_link -- --ignored --nocapture bench_presence_churn`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run explicitly (see BENCHMARKS.md)"]
async fn bench_presence_churn() {
    let setting = |name: &str, default: u64| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let rate = setting("PRESENCE_BENCH_RATE", 1000);
    let seconds = setting("PRESENCE_BENCH_SECONDS", 5);
    let rooms = setting("PRESENCE_BENCH_ROOMS", 50) as usize;
    let users_per_room = setting("PRESENCE_BENCH_USERS", 40) as usize;
    let rabbit = Rabbit::new().await;
    let a = gateway(&rabbit, 1, "gw-a").await;
    let b = gateway(&rabbit, 2, "gw-b").await;
    until_peers(&a, 2).await;
    until_peers(&b, 2).await;
    let gateways = [&a, &b];
    let room = |r: usize| format!("bench_{r}");
    let mut watchers = Vec::new();
    for (i, gateway) in gateways.iter().enumerate() {
        for r in 0..rooms {
            let id = 9_000_000 + (i * rooms + r) as ConnId;
            watchers.push(member(gateway.engine().hub(), &room(r), id));
        }
    }
    // Drain the watchers' queues as clients would, counting frames.
    let frames = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let drain = {
        let frames = std::sync::Arc::clone(&frames);
        tokio::spawn(async move {
            loop {
                for watcher in &watchers {
                    while watcher.try_recv().is_ok() {
                        frames.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };

    // The truth: which (instance, room, user) connections are in.
    let mut inside = std::collections::HashSet::<(usize, usize, usize)>::new();
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut random = move |n: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n as u64) as usize
    };
    // What the two idle gateways and the driver's draining cost alone.
    let idle_from = (process_cpu(), Instant::now());
    tokio::time::sleep(INTERVAL * 2).await;
    let idle = (process_cpu() - idle_from.0).as_secs_f64() / idle_from.1.elapsed().as_secs_f64();
    let total = rate * seconds;
    let cpu_before = process_cpu();
    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    let per_tick = (rate / 100).max(1);
    let mut done = 0u64;
    while done < total {
        tick.tick().await;
        for _ in 0..per_tick {
            let instance = (done % 2) as usize;
            let (r, u) = (random(rooms), random(users_per_room));
            let conn = 1 + (instance * rooms * users_per_room + r * users_per_room + u) as ConnId;
            let (gateway, user) = (gateways[instance], format!("user_{u}"));
            let hub = gateway.engine().hub();
            if inside.remove(&(instance, r, u)) {
                presence(gateway).leave(hub, &room(r), &user, conn);
            } else {
                inside.insert((instance, r, u));
                presence(gateway).enter(hub, &room(r), &user, conn);
            }
            done += 1;
        }
    }
    let churned = started.elapsed();
    let cpu_churn = process_cpu() - cpu_before;

    // Convergence: both instances agree with the truth on every room.
    let stopped = Instant::now();
    let truth: Vec<Vec<String>> = (0..rooms)
        .map(|r| {
            let mut users: Vec<String> = (0..users_per_room)
                .filter(|u| inside.contains(&(0, r, *u)) || inside.contains(&(1, r, *u)))
                .map(|u| format!("user_{u}"))
                .collect();
            users.sort();
            users
        })
        .collect();
    // `membership` lists the first hundred members and counts them all.
    let agreed = |gateway: &Gateway| {
        (0..rooms).all(|r| {
            let membership = presence(gateway).membership(&room(r));
            membership.member_count as usize == truth[r].len()
                && membership.members[..] == truth[r][..truth[r].len().min(Membership::LISTED)]
        })
    };
    let mut converged = None;
    while stopped.elapsed() < INTERVAL * 5 {
        if agreed(&a) && agreed(&b) {
            converged = Some(stopped.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let members: usize = truth.iter().map(Vec::len).sum();
    drain.abort();
    let sent = presence(&a)
        .counters()
        .frames
        .load(std::sync::atomic::Ordering::Relaxed)
        + presence(&b)
            .counters()
            .frames
            .load(std::sync::atomic::Ordering::Relaxed);
    println!(
        "presence churn: {total} joins/leaves over {churned:.2?} ({:.0}/s) on 2 instances, {rooms} rooms x {users_per_room} users, {members} members at the end",
        total as f64 / churned.as_secs_f64()
    );
    println!(
        "converged {:?} after the last change; process CPU during churn {:.2?} ({:.1}% of one core, {:.1}% when idle; both gateways and the driver, not the broker); presence frames queued {sent}, drained {}",
        converged,
        cpu_churn,
        100.0 * cpu_churn.as_secs_f64() / churned.as_secs_f64(),
        100.0 * idle,
        frames.load(std::sync::atomic::Ordering::Relaxed)
    );
    assert!(converged.is_some(), "the instances never agreed");
    let _ = a.stop().await;
    let _ = b.stop().await;
    rabbit.cleanup().await;
}
