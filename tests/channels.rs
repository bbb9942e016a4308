//! Channels beyond tours, end to end: the real `tourcast` binary, several
//! instances on one real broker (127.0.0.1:5672), real WebSocket clients
//! with real tokens. Each test has its own exchange and stream.
//!
//! - notifications reach every connection of their user, on every
//!   instance, once and in order, and nobody else;
//! - a reconnect with `since`, on either instance, gets exactly what it
//!   missed, from memory or read back from the stream;
//! - who may subscribe: `notifications` needs a user, `stats` the admin claim;
//! - `stats` comes at once, then every interval, totals every live
//!   instance, and drops one that stops within two intervals.

mod common;
#[path = "common/rabbit.rs"]
mod rabbit;

use std::time::Duration;

use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::{Value, json};

#[allow(unused_imports)]
use common::{Client, Encoding, GatewayProcess, Received, http_get};
use rabbit::Rabbit;

const SECRET: &str = "channels-test-secret";
const CONFIRMED: &str = "notification.booking.confirmed";
const CANCELLED: &str = "notification.booking.cancelled";

fn token(sub: &str, admin: bool) -> String {
    let exp = chrono::Utc::now().timestamp() + 600;
    let mut claims = json!({"sub": sub, "exp": exp, "tours": "*"});
    if admin {
        claims["admin"] = json!(true);
    }
    encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .expect("signs")
}

/// A booking notification as a publisher sends it.
fn booking(event_id: &str, user: &str, booking: &str, seats: u32) -> Value {
    json!({
        "eventId": event_id,
        "userId": user,
        "bookingId": booking,
        "tourId": "tour_paris",
        "tourName": "Paris City Tour",
        "seats": seats,
        "message": format!("Your booking {booking} is confirmed!"),
    })
}

async fn connect(gateway: &GatewayProcess, sub: &str, admin: bool, encoding: Encoding) -> Client {
    let url = format!("{}?token={}", gateway.ws_url(), token(sub, admin));
    Client::connect(&url, encoding).await
}

/// Subscribes to the notifications channel; returns the acknowledgement.
async fn subscribe_notifications(client: &mut Client, since: Option<(&str, u64)>) -> Value {
    let mut message = json!({"type": "subscribe", "channel": "notifications", "requestId": "n"});
    if let Some((epoch, seq)) = since {
        message["since"] = json!({"epoch": epoch, "seq": seq});
    }
    client.send(message).await;
    let ack = client.recv().await;
    assert_eq!(ack["type"], "subscribed", "{ack}");
    assert_eq!(ack["channel"], "notifications", "{ack}");
    assert_eq!(ack["requestId"], "n", "{ack}");
    assert!(ack.get("tourId").is_none(), "{ack}");
    // Where it starts: a client dropped before any notification resumes here.
    assert!(ack["seq"].is_u64(), "{ack}");
    ack
}

/// The next `count` notifications, checked to be of the given bookings in order.
async fn expect_bookings(client: &mut Client, bookings: &[&str]) -> Vec<Value> {
    let mut received = Vec::new();
    for expected in bookings {
        let message = client.recv().await;
        assert_eq!(message["type"], "notification", "{message}");
        assert_eq!(message["bookingId"], *expected, "{message}");
        received.push(message);
    }
    let seqs: Vec<u64> = received
        .iter()
        .map(|m| m["seq"].as_u64().expect("seq"))
        .collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "in order: {seqs:?}");
    received
}

async fn stop(mut gateway: GatewayProcess) {
    gateway.terminate();
    let _ = tokio::time::timeout(Duration::from_secs(10), gateway.child.wait()).await;
}

#[tokio::test]
async fn notifications_reach_every_connection_of_their_user_on_every_instance_and_nobody_else() {
    let rabbit = Rabbit::new().await;
    let auth = ["--jwt-secret", SECRET];
    let first = rabbit.gateway(1, &auth).await;
    let second = rabbit.gateway(2, &auth).await;

    // Two users with a connection on each instance, in both encodings; a
    // third user, and a tour subscriber, who must get none of it.
    let mut alice = vec![
        connect(&first, "alice", false, Encoding::Json).await,
        connect(&second, "alice", false, Encoding::Proto).await,
    ];
    let mut bob = vec![
        connect(&first, "bob", false, Encoding::Proto).await,
        connect(&second, "bob", false, Encoding::Json).await,
    ];
    let mut carol = connect(&second, "carol", false, Encoding::Json).await;
    let mut tours = connect(&first, "dave", false, Encoding::Json).await;
    for client in alice.iter_mut().chain(bob.iter_mut()) {
        subscribe_notifications(client, None).await;
    }
    subscribe_notifications(&mut carol, None).await;
    tours
        .send(json!({"type": "subscribe", "tourId": "*"}))
        .await;
    assert_eq!(tours.recv().await["type"], "subscribed");
    assert_eq!(tours.recv().await["type"], "snapshot");

    let mut events = Vec::new();
    for i in 0..12 {
        let user = if i % 3 == 0 { "bob" } else { "alice" };
        events.push((user, format!("booking_{i}")));
    }
    for (i, (user, booking_id)) in events.iter().enumerate() {
        let key = if i == 4 { CANCELLED } else { CONFIRMED };
        let mut event = booking(&format!("evt_n{i}"), user, booking_id, 1 + i as u32 % 3);
        if i == 4 {
            event["message"] = json!("Your booking was cancelled.");
        }
        rabbit.publish_json(key, &event).await;
    }
    // A tour event in between: tour subscribers still get theirs.
    rabbit
        .publish_json(
            "tour.availability.updated",
            &json!({"tourId": "tour_paris", "availableSeats": 7}),
        )
        .await;

    let of = |who: &str| -> Vec<&str> {
        events
            .iter()
            .filter(|(user, _)| *user == who)
            .map(|(_, b)| b.as_str())
            .collect()
    };
    let mut seen_by_alice = Vec::new();
    for client in &mut alice {
        let got = expect_bookings(client, &of("alice")).await;
        seen_by_alice.push(
            got.iter()
                .map(|m| (m["seq"].clone(), m["notificationId"].clone()))
                .collect::<Vec<_>>(),
        );
        // booking_4 was the cancellation.
        let cancelled = got.iter().find(|m| m["bookingId"] == "booking_4");
        let cancelled = cancelled.expect("booking_4 is alice's");
        assert_eq!(cancelled["kind"], "booking.cancelled", "{cancelled}");
        assert_eq!(cancelled["notificationId"], "evt_n4");
        assert_eq!(cancelled["tourName"], "Paris City Tour");
        assert!(cancelled["timestamp"].is_string());
        client.expect_silence(Duration::from_millis(300)).await;
    }
    // The same numbers on both instances: the stream's positions.
    assert_eq!(seen_by_alice[0], seen_by_alice[1]);
    for client in &mut bob {
        let got = expect_bookings(client, &of("bob")).await;
        assert!(got.iter().all(|m| m["kind"] == "booking.confirmed"));
        client.expect_silence(Duration::from_millis(300)).await;
    }
    carol.expect_silence(Duration::from_millis(300)).await;
    let event = tours.recv().await;
    assert_eq!(event["type"], "tour.availability.updated", "{event}");
    tours.expect_silence(Duration::from_millis(300)).await;

    stop(first).await;
    stop(second).await;
    rabbit.cleanup().await;
}

#[tokio::test]
async fn who_may_subscribe_to_notifications_and_stats() {
    let rabbit = Rabbit::new().await;
    // JWT off: nobody has a user, and stats needs --admin-open.
    let open = rabbit.gateway(1, &[]).await;
    let mut anonymous = Client::connect(&open.ws_url(), Encoding::Json).await;
    for channel in ["notifications", "stats"] {
        anonymous
            .send(json!({"type": "subscribe", "channel": channel, "requestId": channel}))
            .await;
        let refusal = anonymous.recv().await;
        assert_eq!(refusal["type"], "error", "{refusal}");
        assert_eq!(refusal["code"], "forbidden", "{refusal}");
        assert_eq!(refusal["path"], "/channel", "{refusal}");
        assert_eq!(refusal["requestId"], channel, "{refusal}");
    }
    // The connection is still fine, and stats was never registered.
    anonymous
        .send(json!({"type": "refreshStats", "requestId": "r"}))
        .await;
    let refusal = anonymous.recv().await;
    assert_eq!(refusal["code"], "forbidden", "{refusal}");
    assert_eq!(refusal["requestId"], "r", "{refusal}");
    // A client cannot name a user: there is no such field.
    anonymous
        .send_raw(tokio_tungstenite::tungstenite::Message::text(
            r#"{"type":"subscribe","channel":"notifications","userId":"alice"}"#,
        ))
        .await;
    let refusal = anonymous.recv().await;
    assert_eq!(refusal["code"], "invalid_message", "{refusal}");
    assert_eq!(refusal["path"], "/userId", "{refusal}");
    // Both a tour and a channel: one subscription names one thing.
    anonymous.send(json!({"type": "ping"})).await;
    assert_eq!(anonymous.recv().await["type"], "pong");
    anonymous
        .send_raw(tokio_tungstenite::tungstenite::Message::text(
            r#"{"type":"subscribe","tourId":"tour_paris","channel":"stats"}"#,
        ))
        .await;
    let refusal = anonymous.recv().await;
    assert_eq!(refusal["code"], "invalid_message", "{refusal}");
    assert_eq!(refusal["path"], "/channel", "{refusal}");
    stop(open).await;

    // With --admin-open (JWT off) stats is allowed; notifications still not.
    let admin_open = rabbit.gateway(2, &["--admin-open"]).await;
    let mut anyone = Client::connect(&admin_open.ws_url(), Encoding::Json).await;
    anyone
        .send(json!({"type": "subscribe", "channel": "stats"}))
        .await;
    assert_eq!(anyone.recv().await["type"], "subscribed");
    assert_eq!(anyone.recv().await["type"], "stats");
    anyone
        .send(json!({"type": "subscribe", "channel": "notifications"}))
        .await;
    assert_eq!(anyone.recv_type("error").await["code"], "forbidden");
    stop(admin_open).await;

    // JWT on: a non-admin token gets notifications but not stats.
    let secured = rabbit.gateway(3, &["--jwt-secret", SECRET]).await;
    let mut user = connect(&secured, "alice", false, Encoding::Proto).await;
    user.send(json!({"type": "subscribe", "channel": "stats", "requestId": "s"}))
        .await;
    let refusal = user.recv().await;
    assert_eq!(refusal["code"], "forbidden", "{refusal}");
    assert_eq!(refusal["path"], "/channel", "{refusal}");
    subscribe_notifications(&mut user, None).await;
    user.send(json!({"type": "unsubscribe", "channel": "notifications"}))
        .await;
    let ack = user.recv().await;
    assert_eq!(ack["type"], "unsubscribed", "{ack}");
    assert_eq!(ack["channel"], "notifications", "{ack}");
    stop(secured).await;
    rabbit.cleanup().await;
}

#[tokio::test]
async fn a_reconnect_with_since_on_either_instance_gets_exactly_what_it_missed() {
    let rabbit = Rabbit::new().await;
    let auth = ["--jwt-secret", SECRET];
    let first = rabbit.gateway(1, &auth).await;
    // The second keeps only two notifications in memory: its recoveries
    // of longer gaps read the stream back.
    let second = rabbit
        .gateway(2, &["--jwt-secret", SECRET, "--notification-history", "2"])
        .await;

    let mut alice = connect(&first, "alice", false, Encoding::Json).await;
    let epoch = alice.greeting["epoch"].as_str().expect("epoch").to_string();
    subscribe_notifications(&mut alice, None).await;
    for i in 0..3 {
        rabbit
            .publish_json(
                CONFIRMED,
                &booking(&format!("evt_a{i}"), "alice", &format!("a{i}"), 1),
            )
            .await;
    }
    let got = expect_bookings(&mut alice, &["a0", "a1", "a2"]).await;
    let last = got[2]["seq"].as_u64().expect("seq");
    alice.close().await;

    // Missed while away: alice's, bob's, and tour events in between.
    for i in 3..7 {
        rabbit
            .publish_json(
                CONFIRMED,
                &booking(&format!("evt_a{i}"), "alice", &format!("a{i}"), 2),
            )
            .await;
        rabbit
            .publish_json(
                CONFIRMED,
                &booking(&format!("evt_b{i}"), "bob", &format!("b{i}"), 1),
            )
            .await;
        rabbit
            .publish_json(
                "tour.availability.updated",
                &json!({"tourId": "tour_rome", "availableSeats": i}),
            )
            .await;
    }
    // Let both instances apply all of it before alice comes back.
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Back on the other instance (stream read-back: its memory holds 2).
    let mut on_second = connect(&second, "alice", false, Encoding::Proto).await;
    assert_eq!(
        on_second.greeting["epoch"], epoch,
        "one epoch across instances"
    );
    let ack = subscribe_notifications(&mut on_second, Some((&epoch, last))).await;
    assert_eq!(ack["recovered"], true, "{ack}");
    let missed = expect_bookings(&mut on_second, &["a3", "a4", "a5", "a6"]).await;
    on_second.expect_silence(Duration::from_millis(300)).await;

    // And on the first instance (from memory), the same answer.
    let mut on_first = connect(&first, "alice", false, Encoding::Json).await;
    let ack = subscribe_notifications(&mut on_first, Some((&epoch, last))).await;
    assert_eq!(ack["recovered"], true, "{ack}");
    let again = expect_bookings(&mut on_first, &["a3", "a4", "a5", "a6"]).await;
    // The same notifications with the same numbers. (These events carry no
    // `timestamp`, so each instance stamps its own receipt time: publishers
    // that want one time everywhere set it, as `tourcast publish` does.)
    let without_time = |messages: &[Value]| -> Vec<Value> {
        messages
            .iter()
            .map(|m| {
                let mut m = m.clone();
                m.as_object_mut().map(|o| o.remove("timestamp"));
                m
            })
            .collect()
    };
    assert_eq!(
        without_time(&missed),
        without_time(&again),
        "the same notifications, the same numbers"
    );
    on_first.expect_silence(Duration::from_millis(300)).await;

    // Live ones follow the recovery on both, once.
    rabbit
        .publish_json(CONFIRMED, &booking("evt_a7", "alice", "a7", 1))
        .await;
    expect_bookings(&mut on_second, &["a7"]).await;
    expect_bookings(&mut on_first, &["a7"]).await;

    // A position from another epoch cannot be recovered: said so, no replay.
    let mut stranger = connect(&first, "alice", false, Encoding::Json).await;
    let ack = subscribe_notifications(&mut stranger, Some(("other-epoch", 1))).await;
    assert_eq!(ack["recovered"], false, "{ack}");
    stranger.expect_silence(Duration::from_millis(300)).await;

    stop(first).await;
    stop(second).await;
    rabbit.cleanup().await;
}

/// The next `stats` message within `limit`, skipping anything else.
async fn next_stats(client: &mut Client, limit: Duration) -> Value {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match tokio::time::timeout(left, client.next()).await {
            Ok(Received::Message(message)) if message["type"] == "stats" => return message,
            Ok(Received::Message(_)) => continue,
            Ok(other) => panic!("connection ended waiting for stats: {other:?}"),
            Err(_) => panic!("no stats within {limit:?}"),
        }
    }
}

#[tokio::test]
async fn stats_come_at_once_then_every_interval_and_total_every_live_instance() {
    let rabbit = Rabbit::new().await;
    let extra = ["--jwt-secret", SECRET, "--stats-interval", "1s"];
    let first = rabbit
        .gateway_with_env(1, &extra, &[("INSTANCE_ID", "gw-first")])
        .await;
    let mut second = rabbit
        .gateway_with_env(2, &extra, &[("INSTANCE_ID", "gw-second")])
        .await;
    let interval = Duration::from_secs(1);

    // Clients on both: 2 on the first (the admin's included), 3 on the second.
    let mut admin = connect(&first, "root", true, Encoding::Json).await;
    let mut others = vec![connect(&first, "u1", false, Encoding::Proto).await];
    for n in 0..3 {
        let mut client = connect(&second, &format!("u{n}"), false, Encoding::Json).await;
        client
            .send(json!({"type": "subscribe", "tourId": "tour_paris"}))
            .await;
        others.push(client);
    }

    admin
        .send(json!({"type": "subscribe", "channel": "stats", "requestId": "s1"}))
        .await;
    let ack = admin.recv().await;
    assert_eq!(ack["type"], "subscribed", "{ack}");
    assert_eq!(ack["channel"], "stats", "{ack}");
    let started = tokio::time::Instant::now();
    // At once: the very next message, not one interval later.
    let initial = tokio::time::timeout(Duration::from_millis(300), admin.recv())
        .await
        .expect("the first stats comes at once");
    assert_eq!(initial["type"], "stats", "{initial}");
    assert_eq!(initial["intervalSeconds"], 1);
    let next = next_stats(&mut admin, interval + Duration::from_millis(500)).await;
    assert!(started.elapsed() <= interval + Duration::from_millis(500));
    assert!(next["timestamp"].is_string());

    // Within a few intervals both instances are in, and the totals add up.
    let mut totals = Value::Null;
    for _ in 0..8 {
        totals = next_stats(&mut admin, interval * 2).await;
        if totals["instances"].as_array().map(Vec::len) == Some(2)
            && totals["connectedClients"] == 5
        {
            break;
        }
    }
    assert_eq!(totals["connectedClients"], 5, "{totals}");
    let ids: Vec<&str> = totals["instances"]
        .as_array()
        .expect("instances")
        .iter()
        .map(|i| i["instanceId"].as_str().expect("id"))
        .collect();
    assert_eq!(ids, ["gw-first", "gw-second"], "{totals}");
    assert_eq!(totals["clientsByEncoding"], json!({"json": 4, "proto": 1}));
    let second_figures = &totals["instances"][1];
    assert_eq!(second_figures["connectedClients"], 3, "{totals}");
    assert_eq!(second_figures["sourceKind"], "rabbitmq");
    assert_eq!(second_figures["sourceState"], "connected");
    assert_eq!(
        totals["topTours"][0],
        json!({"tourId": "tour_paris", "subscribers": 3}),
        "{totals}"
    );

    // Events show in the rates of both instances.
    for seats in 0..20 {
        rabbit
            .publish_json(
                "tour.availability.updated",
                &json!({"tourId": "tour_paris", "availableSeats": seats}),
            )
            .await;
    }
    let mut busy = Value::Null;
    for _ in 0..6 {
        busy = next_stats(&mut admin, interval * 2).await;
        let instances = busy["instances"].as_array().cloned().unwrap_or_default();
        if instances.len() == 2
            && instances
                .iter()
                .all(|i| i["eventsPerSecond"].as_f64().unwrap_or(0.0) > 0.0)
        {
            break;
        }
    }
    assert!(
        busy["eventsPerSecond"].as_f64().unwrap_or(0.0) > 0.0,
        "{busy}"
    );
    assert!(
        busy["deliveriesPerSecond"].as_f64().unwrap_or(0.0) > 0.0,
        "{busy}"
    );

    // refreshStats answers at once, with the requestId echoed.
    admin
        .send(json!({"type": "refreshStats", "requestId": "now-1"}))
        .await;
    let mut echoed = Value::Null;
    for _ in 0..4 {
        echoed = next_stats(&mut admin, Duration::from_millis(500)).await;
        if echoed["requestId"] == "now-1" {
            break;
        }
    }
    assert_eq!(echoed["requestId"], "now-1", "{echoed}");

    // The second instance dies without a word: within two intervals it is
    // out of the totals.
    second.child.start_kill().expect("kill");
    let killed = tokio::time::Instant::now();
    loop {
        let stats = next_stats(&mut admin, interval * 2).await;
        if stats["instances"].as_array().map(Vec::len) == Some(1) {
            assert_eq!(stats["connectedClients"], 2, "{stats}");
            break;
        }
        assert!(
            killed.elapsed() <= interval * 2,
            "still counted {:?} after the kill: {stats}",
            killed.elapsed()
        );
    }
    assert!(killed.elapsed() <= interval * 2, "{:?}", killed.elapsed());

    let _ = second.child.wait().await;
    drop(others);
    stop(first).await;
    rabbit.cleanup().await;
}

#[tokio::test]
async fn a_gateway_stopped_cleanly_leaves_the_totals_at_once() {
    let rabbit = Rabbit::new().await;
    let extra = ["--jwt-secret", SECRET, "--stats-interval", "2s"];
    let first = rabbit.gateway(1, &extra).await;
    let second = rabbit.gateway(2, &extra).await;
    let mut admin = connect(&first, "root", true, Encoding::Proto).await;
    admin
        .send(json!({"type": "subscribe", "channel": "stats"}))
        .await;
    assert_eq!(admin.recv().await["type"], "subscribed");
    let mut stats = next_stats(&mut admin, Duration::from_secs(1)).await;
    for _ in 0..5 {
        if stats["instances"].as_array().map(Vec::len) == Some(2) {
            break;
        }
        stats = next_stats(&mut admin, Duration::from_secs(4)).await;
    }
    assert_eq!(
        stats["instances"].as_array().map(Vec::len),
        Some(2),
        "{stats}"
    );
    // SIGTERM: its last report says it is leaving; no waiting for silence.
    let stopped = tokio::time::Instant::now();
    stop(second).await;
    loop {
        let stats = next_stats(&mut admin, Duration::from_secs(4)).await;
        if stats["instances"].as_array().map(Vec::len) == Some(1) {
            break;
        }
    }
    assert!(
        stopped.elapsed() < Duration::from_secs(2),
        "gone in {:?}, less than one interval",
        stopped.elapsed()
    );
    stop(first).await;
    rabbit.cleanup().await;
}

#[tokio::test]
async fn poison_notifications_are_logged_counted_and_skipped_and_tourcast_publish_sends_them() {
    let rabbit = Rabbit::new().await;
    let gateway = rabbit.gateway(1, &["--jwt-secret", SECRET]).await;
    let mut alice = connect(&gateway, "alice", false, Encoding::Json).await;
    subscribe_notifications(&mut alice, None).await;

    rabbit
        .publish_json(CONFIRMED, &booking("evt_ok_1", "alice", "ok1", 1))
        .await;
    // No user: whom would it be for? Poison, not a broadcast.
    let mut nobody = booking("evt_no_user", "alice", "x", 1);
    nobody.as_object_mut().map(|o| o.remove("userId"));
    rabbit.publish_json(CONFIRMED, &nobody).await;
    // A kind nobody defined (its `eventType` says so, on a bound key).
    let mut refund = booking("evt_refund", "alice", "x", 1);
    refund["eventType"] = json!("notification.booking.refunded");
    rabbit.publish_json(CONFIRMED, &refund).await;
    rabbit
        .publish(CONFIRMED, Some("application/x-protobuf"), b"\xff\xff\xff")
        .await;

    // `tourcast publish` sends the notification kinds too, validated.
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_tourcast"))
        .args([
            "publish",
            "--rabbitmq-url",
            &rabbit::amqp_url(),
            "--rabbitmq-exchange",
            &rabbit.exchange,
            "--kind",
            "booking-cancelled",
            "--user-id",
            "alice",
            "--booking-id",
            "ok2",
            "--tour-id",
            "tour_rome",
            "--tour-name",
            "Rome Colosseum Tour",
            "--seats",
            "3",
        ])
        .output()
        .await
        .expect("tourcast publish runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("notification.booking.cancelled") && stdout.contains("user=alice"),
        "{stdout}"
    );
    // …and refuses one the gateway would refuse, before sending anything.
    let refused = tokio::process::Command::new(env!("CARGO_BIN_EXE_tourcast"))
        .args([
            "publish",
            "--rabbitmq-url",
            &rabbit::amqp_url(),
            "--rabbitmq-exchange",
            &rabbit.exchange,
            "--kind",
            "booking-confirmed",
            "--tour-id",
            "tour_rome",
            "--seats",
            "1",
        ])
        .output()
        .await
        .expect("tourcast publish runs");
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("--user-id"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );

    let got = expect_bookings(&mut alice, &["ok1", "ok2"]).await;
    assert_eq!(got[1]["kind"], "booking.cancelled", "{}", got[1]);
    assert_eq!(got[1]["message"], "Your booking was cancelled.");
    assert_eq!(got[1]["tourName"], "Rome Colosseum Tour");
    assert_eq!(
        got[1]["seq"].as_u64().unwrap() - got[0]["seq"].as_u64().unwrap(),
        4,
        "the poison kept its stream positions"
    );
    alice.expect_silence(Duration::from_millis(300)).await;

    for (reason, count) in [
        ("invalid", 1.0),
        ("unknown_type", 1.0),
        ("malformed_protobuf", 1.0),
    ] {
        let sample = format!("tourcast_rabbitmq_poison_total{{reason=\"{reason}\"}}");
        assert_eq!(
            rabbit::metric(&gateway, &sample).await,
            Some(count),
            "{reason}"
        );
    }
    let ids: Vec<String> = gateway
        .log_lines("poison message skipped")
        .iter()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .map(|l| l["fields"]["event_id"].as_str().unwrap_or("?").to_string())
        .collect();
    assert_eq!(ids, ["evt_no_user", "evt_refund", "-"], "{ids:?}");
    stop(gateway).await;
    rabbit.cleanup().await;
}
