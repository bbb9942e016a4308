//! Presence in rooms, end to end: two real `tourcast` processes on one real
//! broker (a fresh exchange and stream per test), real WebSocket clients
//! with real tokens (`rooms: "*"`, so the user ids are the tokens' `sub`).
//!
//! - `joined` lists the room's members on both instances and counts them;
//! - a user's first connection joining, and its last one leaving, reach
//!   the other members on the other instance as `presence`, within a
//!   fraction of a second (not at the next interval); a second connection
//!   of the same user is no news;
//! - closing a connection leaves its rooms;
//! - a SIGKILLed instance's members leave within two `STATS_INTERVAL`s.

mod common;
#[path = "common/rabbit.rs"]
mod rabbit;

use std::time::Duration;

use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::{Value, json};
use tokio::time::Instant;

#[allow(unused_imports)]
use common::{Client, Encoding, GatewayProcess, Received, http_get};
use rabbit::Rabbit;

const SECRET: &str = "presence-test-secret";
const INTERVAL: Duration = Duration::from_secs(1);
/// "Within a fraction of a second": a broker round trip, with slack for a
/// loaded CI machine, well under the interval.
const AT_ONCE: Duration = Duration::from_millis(700);

fn token(sub: &str) -> String {
    let exp = chrono::Utc::now().timestamp() + 600;
    let claims = json!({"sub": sub, "exp": exp, "tours": "*", "rooms": "*"});
    encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .expect("signs")
}

async fn two_gateways(rabbit: &Rabbit) -> (GatewayProcess, GatewayProcess) {
    let extra = ["--jwt-secret", SECRET, "--stats-interval", "1s"];
    let a = rabbit
        .gateway_with_env(1, &extra, &[("INSTANCE_ID", "gw-a")])
        .await;
    let b = rabbit
        .gateway_with_env(2, &extra, &[("INSTANCE_ID", "gw-b")])
        .await;
    (a, b)
}

async fn connect(gateway: &GatewayProcess, user: &str) -> Client {
    let url = format!("{}?token={}", gateway.ws_url(), token(user));
    Client::connect(&url, Encoding::Json).await
}

/// Joins `room`; returns `joined`.
async fn join(client: &mut Client, room: &str) -> Value {
    client
        .send(json!({"type": "join", "room": room, "requestId": "j"}))
        .await;
    let joined = client.recv().await;
    assert_eq!(joined["type"], "joined", "{joined}");
    assert_eq!(joined["room"], room, "{joined}");
    joined
}

fn members(joined: &Value) -> Vec<String> {
    let mut members: Vec<String> = joined["members"]
        .as_array()
        .expect("members")
        .iter()
        .map(|m| m["userId"].as_str().expect("userId").to_string())
        .collect();
    members.sort();
    members
}

/// The next `presence` within `limit`, other messages skipped.
async fn next_presence(client: &mut Client, limit: Duration) -> Option<Value> {
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, client.next()).await {
            Ok(Received::Message(message)) if message["type"] == "presence" => {
                return Some(message);
            }
            Ok(Received::Message(_)) => continue,
            Ok(other) => panic!("connection ended waiting for presence: {other:?}"),
            Err(_) => return None,
        }
    }
}

async fn expect_presence(client: &mut Client, limit: Duration) -> Value {
    next_presence(client, limit)
        .await
        .unwrap_or_else(|| panic!("no presence within {limit:?}"))
}

#[tokio::test]

async fn presence_crosses_instances_at_once_for_first_and_last_connections() {
    let rabbit = Rabbit::new().await;
    let (a, b) = two_gateways(&rabbit).await;

    let mut bob = connect(&a, "bob").await;
    let joined = join(&mut bob, "support_42").await;
    assert_eq!(members(&joined), ["bob"]);
    assert_eq!(joined["memberCount"], 1);

    // Alice joins on the other instance: bob hears it at once. Her
    // `joined` lists him, or, when his own join is still on its way over
    // the peer link (a few milliseconds), a `presence` for him follows at
    // once: either way her member list has both of them.
    let mut alice = connect(&b, "alice").await;
    let asked = Instant::now();
    let joined = join(&mut alice, "support_42").await;
    if members(&joined) == ["alice"] {
        assert_eq!(joined["memberCount"], 1, "{joined}");
        let news = expect_presence(&mut alice, AT_ONCE).await;
        assert_eq!(
            (&news["userId"], &news["action"], &news["memberCount"]),
            (&json!("bob"), &json!("joined"), &json!(2)),
            "{news}"
        );
    } else {
        assert_eq!(members(&joined), ["alice", "bob"], "{joined}");
        assert_eq!(joined["memberCount"], 2);
    }
    let news = expect_presence(&mut bob, AT_ONCE).await;
    assert!(asked.elapsed() < INTERVAL, "{:?}", asked.elapsed());
    assert_eq!(news["room"], "support_42");
    assert_eq!(news["userId"], "alice");
    assert_eq!(news["action"], "joined");
    assert_eq!(news["memberCount"], 2);
    assert!(
        next_presence(&mut alice, Duration::from_millis(300))
            .await
            .is_none(),
        "nobody is told of their own join"
    );

    // A second connection of alice, on a: no news for anyone.
    let mut alice_again = connect(&a, "alice").await;
    assert_eq!(join(&mut alice_again, "support_42").await["memberCount"], 2);
    assert!(next_presence(&mut bob, INTERVAL * 2).await.is_none());

    // Her connection on b leaves: she is still there on a.
    alice
        .send(json!({"type": "leave", "room": "support_42"}))
        .await;
    assert_eq!(alice.recv_type("left").await["room"], "support_42");
    assert!(next_presence(&mut bob, INTERVAL * 2).await.is_none());

    // Her last one closes: left, at once, with the count.
    let closed = Instant::now();
    alice_again.close().await;
    let news = expect_presence(&mut bob, AT_ONCE).await;
    assert!(closed.elapsed() < INTERVAL);
    assert_eq!(news["userId"], "alice");
    assert_eq!(news["action"], "left");
    assert_eq!(news["memberCount"], 1);
    drop((a, b));
    rabbit.cleanup().await;
}

#[tokio::test]

async fn a_killed_instances_members_leave_within_two_intervals() {
    let rabbit = Rabbit::new().await;
    let (a, mut b) = two_gateways(&rabbit).await;
    let mut bob = connect(&a, "bob").await;
    join(&mut bob, "support_7").await;
    let mut carol = connect(&b, "carol").await;
    join(&mut carol, "support_7").await;
    let mut dave = connect(&b, "dave").await;
    join(&mut dave, "support_7").await;
    for _ in 0..2 {
        assert_eq!(expect_presence(&mut bob, AT_ONCE).await["action"], "joined");
    }

    // SIGKILL: no goodbye. Its members leave once a's table expires it.
    b.child.start_kill().expect("kill");
    let killed = Instant::now();
    let mut gone = Vec::new();
    for _ in 0..2 {
        let news = expect_presence(&mut bob, INTERVAL * 3).await;
        assert_eq!(news["action"], "left", "{news}");
        gone.push(news["userId"].as_str().expect("userId").to_string());
    }
    let waited = killed.elapsed();
    gone.sort();
    assert_eq!(gone, ["carol", "dave"]);
    assert!(waited <= INTERVAL * 2, "left after {waited:?}");
    // bob alone: a new joiner's list says so.
    let mut erin = connect(&a, "erin").await;
    let joined = join(&mut erin, "support_7").await;
    assert_eq!(members(&joined), ["bob", "erin"], "{joined}");
    drop(a);
    rabbit.cleanup().await;
}

#[tokio::test]

async fn a_stopped_instance_says_goodbye_and_a_late_one_learns_the_room() {
    let rabbit = Rabbit::new().await;
    let extra = ["--jwt-secret", SECRET, "--stats-interval", "1s"];
    let a = rabbit
        .gateway_with_env(1, &extra, &[("INSTANCE_ID", "gw-a")])
        .await;
    let mut bob = connect(&a, "bob").await;
    join(&mut bob, "room_late").await;

    // An instance that starts after bob joined learns of him from a's next
    // full report, within an interval or two.
    let b = rabbit
        .gateway_with_env(2, &extra, &[("INSTANCE_ID", "gw-b")])
        .await;
    tokio::time::sleep(INTERVAL * 2 + Duration::from_millis(500)).await;
    let mut carol = connect(&b, "carol").await;
    let joined = join(&mut carol, "room_late").await;
    assert_eq!(members(&joined), ["bob", "carol"], "{joined}");
    assert_eq!(expect_presence(&mut bob, AT_ONCE).await["userId"], "carol");

    // SIGTERM: b says it is leaving; carol leaves at once, not at expiry.
    b.terminate();
    let news = expect_presence(&mut bob, INTERVAL).await;
    assert_eq!(news["userId"], "carol");
    assert_eq!(news["action"], "left");
    drop((a, b));
    rabbit.cleanup().await;
}
