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

use axum::extract::ws::Message;
use clap::Parser as _;
use prost::Message as _;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::time::Instant;

use tourcast::channel::Target;
use tourcast::config::Cli;
use tourcast::gateway::Gateway;
use tourcast::hub::{ClientHandle, ConnId, Hub, outbox};
use tourcast::presence::{PRESENCE_ROUTING_KEY, Presence};
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
            let Message::Text(text) = frame else {
                panic!("a JSON frame")
            };
            let message: Value = serde_json::from_str(&text).expect("JSON");
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
