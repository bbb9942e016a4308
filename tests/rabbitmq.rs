//! The RabbitMQ source end to end: the real `tourcast` binary consuming a
//! real broker (127.0.0.1:5672), real WebSocket clients. Each test has its
//! own exchange and stream (uuid names) and deletes them at the end.

mod common;
#[path = "common/rabbit.rs"]
mod rabbit;

use std::time::Duration;

use chrono::{SecondsFormat, Utc};
use prost::Message as _;
use serde_json::{Value, json};

use common::{Client, Encoding, GatewayProcess, Received, http_get};
use rabbit::{BrokerProxy, LOW, Rabbit, UPDATED, close_connection, metric, wait_for_state};
use tourcast::protocol::v1::AvailabilityEvent;

fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The SPEC's `tour.availability.updated` publisher shape.
fn updated(event_id: &str, tour: &str, seats: u32) -> Value {
    json!({
        "eventId": event_id,
        "eventType": UPDATED,
        "tourId": tour,
        "availableSeats": seats,
        "timestamp": now(),
    })
}

fn seq(message: &Value) -> u64 {
    match &message["seq"] {
        Value::Number(n) => n.as_u64().expect("seq is a u64"),
        Value::String(s) => s.parse().expect("seq is a u64"),
        other => panic!("no seq in {message}: {other}"),
    }
}

/// Subscribes and returns the snapshot that follows the acknowledgement.
async fn subscribe(client: &mut Client, tour: &str) -> Value {
    client
        .send(json!({"type": "subscribe", "tourId": tour}))
        .await;
    // Until the subscribe takes effect a never-subscribed client gets every
    // tour's events (the implicit broadcast), so events may come first; the
    // snapshot, though, always follows the acknowledgement directly.
    let ack = client.recv_type("subscribed").await;
    assert_eq!(ack["type"], "subscribed", "{ack}");
    let snapshot = client.recv().await;
    assert_eq!(snapshot["type"], "snapshot", "{snapshot}");
    snapshot
}

/// The next event a client receives, checked to be of `kind` for `tour`.
async fn expect_event(client: &mut Client, kind: &str, tour: &str, seats: u32) -> Value {
    let message = client.recv().await;
    assert_eq!(message["type"], kind, "{message}");
    assert_eq!(message["data"]["tourId"], tour, "{message}");
    assert_eq!(message["data"]["availableSeats"], seats, "{message}");
    message
}

/// Like [`expect_event`], waiting longer than a frame's usual timeout
/// (answering keep-alive pings meanwhile).
async fn expect_event_within(
    client: &mut Client,
    kind: &str,
    tour: &str,
    seats: u32,
    limit: Duration,
) -> Value {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout(Duration::from_secs(1), client.send(json!({"type": "ping"})))
            .await
        {
            Ok(()) => {}
            Err(_) => panic!("cannot send a ping"),
        }
        let message = client.recv().await;
        if message["type"] == "pong" {
            assert!(
                tokio::time::Instant::now() < deadline,
                "no {kind} for {tour} within {limit:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        }
        assert_eq!(message["type"], kind, "{message}");
        assert_eq!(message["data"]["tourId"], tour, "{message}");
        assert_eq!(message["data"]["availableSeats"], seats, "{message}");
        // Drain the pong of this round.
        assert_eq!(client.recv().await["type"], "pong");
        return message;
    }
}

/// Poison log lines (JSON logs) of a gateway.
fn poison_logs(gateway: &GatewayProcess) -> Vec<Value> {
    gateway
        .log_lines("poison message skipped")
        .iter()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect()
}

async fn stop(mut gateway: GatewayProcess) {
    gateway.terminate();
    let _ = tokio::time::timeout(Duration::from_secs(10), gateway.child.wait()).await;
}

#[tokio::test]
async fn delivers_both_kinds_to_subscribed_and_never_subscribed_clients() {
    let rabbit = Rabbit::new().await;
    let gateway = rabbit.gateway(1, &[]).await;
    let mut everyone = Client::connect(&gateway.ws_url(), Encoding::Json).await;
    let mut paris = Client::connect(&gateway.ws_url(), Encoding::Proto).await;
    let mut rome = Client::connect(&gateway.ws_url(), Encoding::Json).await;
    subscribe(&mut paris, "tour_paris").await;
    subscribe(&mut rome, "tour_rome").await;

    rabbit
        .publish_json(UPDATED, &updated("evt_1736330000000", "tour_paris", 8))
        .await;
    // The old low shape: no eventId, no timestamp, `tourTitle`.
    rabbit
        .publish_json(
            LOW,
            &json!({"tourId": "tour_paris", "tourTitle": "Paris City Tour",
                    "availableSeats": 3, "maxGroupSize": 20, "threshold": 3}),
        )
        .await;
    rabbit
        .publish_json(
            UPDATED,
            &json!({"eventId": "evt_r1", "tourId": "tour_rome", "tourName": "Rome Colosseum Tour",
                    "maxGroupSize": 18, "availableSeats": 12}),
        )
        .await;

    for client in [&mut everyone, &mut paris] {
        let first = expect_event(client, UPDATED, "tour_paris", 8).await;
        assert_eq!(first["eventId"], "evt_1736330000000");
        let low = expect_event(client, LOW, "tour_paris", 3).await;
        assert_eq!(low["data"]["tourTitle"], "Paris City Tour");
        assert_eq!(low["data"]["threshold"], 3);
        assert_eq!(low["data"]["maxGroupSize"], 20);
        // Stream offsets 0 and 1 are the events' seq 1 and 2, on every instance.
        assert_eq!((seq(&first), seq(&low)), (1, 2));
    }
    let rome_event = expect_event(&mut everyone, UPDATED, "tour_rome", 12).await;
    assert_eq!(rome_event["data"]["tourName"], "Rome Colosseum Tour");
    assert_eq!(seq(&rome_event), 3);
    expect_event(&mut rome, UPDATED, "tour_rome", 12).await;

    paris.expect_silence(Duration::from_millis(300)).await;
    rome.expect_silence(Duration::from_millis(100)).await;
    everyone.expect_silence(Duration::from_millis(100)).await;
    stop(gateway).await;
    rabbit.cleanup().await;
}

#[tokio::test]
async fn protobuf_events_reach_json_and_protobuf_clients() {
    let rabbit = Rabbit::new().await;
    let gateway = rabbit.gateway(1, &[]).await;
    let mut json_client = Client::connect(&gateway.ws_url(), Encoding::Json).await;
    let mut proto_client = Client::connect(&gateway.ws_url(), Encoding::Proto).await;

    let updated = AvailabilityEvent {
        event_id: Some("evt_p1".into()),
        event_type: Some(UPDATED.into()),
        tour_id: "tour_london".into(),
        tour_name: Some("London Eye Experience".into()),
        available_seats: 9,
        max_group_size: Some(15),
        timestamp: Some(now()),
        ..Default::default()
    };
    rabbit
        .publish(
            UPDATED,
            Some("application/x-protobuf"),
            &updated.encode_to_vec(),
        )
        .await;
    let low = AvailabilityEvent {
        event_id: Some("evt_p2".into()),
        tour_id: "tour_london".into(),
        tour_title: Some("London Eye Experience".into()),
        available_seats: 2,
        threshold: Some(3),
        ..Default::default()
    };
    rabbit
        .publish(LOW, Some("application/x-protobuf"), &low.encode_to_vec())
        .await;

    for client in [&mut json_client, &mut proto_client] {
        let message = expect_event(client, UPDATED, "tour_london", 9).await;
        assert_eq!(message["data"]["tourName"], "London Eye Experience");
        assert_eq!(message["data"]["maxGroupSize"], 15);
        assert_eq!(message["eventId"], "evt_p1");
        let message = expect_event(client, LOW, "tour_london", 2).await;
        assert_eq!(message["data"]["threshold"], 3);
    }
    stop(gateway).await;
    rabbit.cleanup().await;
}

#[tokio::test]
async fn poison_messages_are_logged_counted_and_skipped_while_the_stream_goes_on() {
    let rabbit = Rabbit::new().await;
    let gateway = rabbit.gateway(1, &[]).await;
    let mut client = Client::connect(&gateway.ws_url(), Encoding::Json).await;

    rabbit
        .publish_json(UPDATED, &updated("evt_ok_1", "tour_paris", 10))
        .await;
    rabbit
        .publish(UPDATED, Some("text/plain"), b"this is not JSON")
        .await;
    rabbit
        .publish_json(
            UPDATED,
            &json!({"eventId": "evt_types", "tourId": "tour_paris", "availableSeats": "eight"}),
        )
        .await;
    rabbit
        .publish_json(
            UPDATED,
            &json!({"eventId": "evt_no_tour", "availableSeats": 4}),
        )
        .await;
    let huge = json!({
        "eventId": "evt_huge", "tourId": "tour_paris", "availableSeats": 1,
        "tourName": "x".repeat(200_000),
    });
    rabbit.publish_json(UPDATED, &huge).await;
    rabbit
        .publish(LOW, Some("application/x-protobuf"), b"\xff\xff\xff\xff")
        .await;
    rabbit
        .publish_json(UPDATED, &updated("evt_ok_2", "tour_paris", 9))
        .await;

    // The stream goes on: both valid events arrive, in order, and nothing else.
    let first = expect_event(&mut client, UPDATED, "tour_paris", 10).await;
    let second = expect_event(&mut client, UPDATED, "tour_paris", 9).await;
    assert_eq!(second["eventId"], "evt_ok_2");
    assert_eq!(seq(&second) - seq(&first), 6, "seq is the stream offset");
    client.expect_silence(Duration::from_millis(300)).await;

    // Each poison message is logged with its eventId and routing key.
    let logs = poison_logs(&gateway);
    assert_eq!(logs.len(), 5, "one log line per poison message: {logs:#?}");
    let ids: Vec<&str> = logs
        .iter()
        .map(|l| l["fields"]["event_id"].as_str().unwrap_or("?"))
        .collect();
    assert_eq!(ids, ["-", "evt_types", "evt_no_tour", "evt_huge", "-"]);
    let keys: Vec<&str> = logs
        .iter()
        .map(|l| l["fields"]["routing_key"].as_str().unwrap_or("?"))
        .collect();
    assert_eq!(keys, [UPDATED, UPDATED, UPDATED, UPDATED, LOW]);
    assert!(
        logs[2]["fields"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("/tourId"))
    );

    // And counted, by reason, in /metrics.
    for (reason, count) in [
        ("malformed_json", 1.0),
        ("invalid", 2.0),
        ("too_large", 1.0),
        ("malformed_protobuf", 1.0),
    ] {
        let sample = format!("tourcast_rabbitmq_poison_total{{reason=\"{reason}\"}}");
        assert_eq!(metric(&gateway, &sample).await, Some(count), "{reason}");
    }
    assert_eq!(
        metric(&gateway, "tourcast_events_total{outcome=\"poison\"}").await,
        Some(5.0)
    );
    assert_eq!(
        metric(&gateway, "tourcast_events_total{outcome=\"applied\"}").await,
        Some(2.0)
    );
    let (_, health) = http_get(&gateway.http_url("/health")).await;
    assert_eq!(health["eventSource"]["state"], "connected", "{health}");
    stop(gateway).await;
    rabbit.cleanup().await;
}

#[tokio::test]
async fn a_duplicate_event_is_broadcast_once() {
    let rabbit = Rabbit::new().await;
    let gateway = rabbit.gateway(1, &[]).await;
    let mut client = Client::connect(&gateway.ws_url(), Encoding::Json).await;

    let event = updated("evt_dup", "tour_rome", 5);
    rabbit.publish_json(UPDATED, &event).await;
    rabbit.publish_json(UPDATED, &event).await;
    rabbit
        .publish_json(UPDATED, &updated("evt_after", "tour_rome", 4))
        .await;

    let first = expect_event(&mut client, UPDATED, "tour_rome", 5).await;
    assert_eq!(first["eventId"], "evt_dup");
    let next = expect_event(&mut client, UPDATED, "tour_rome", 4).await;
    assert_eq!(next["eventId"], "evt_after");
    client.expect_silence(Duration::from_millis(300)).await;
    assert_eq!(
        metric(&gateway, "tourcast_events_total{outcome=\"duplicate\"}").await,
        Some(1.0)
    );
    stop(gateway).await;
    rabbit.cleanup().await;
}

#[tokio::test]
async fn a_restarted_gateway_loses_nothing_published_while_it_was_down() {
    let rabbit = Rabbit::new().await;
    let first = rabbit.gateway(1, &[]).await;
    let mut client = Client::connect(&first.ws_url(), Encoding::Json).await;
    let epoch = client.greeting["epoch"].clone();
    rabbit
        .publish_json(UPDATED, &updated("evt_before", "tour_paris", 10))
        .await;
    let seen = expect_event(&mut client, UPDATED, "tour_paris", 10).await;
    stop(first).await;

    // Published while no gateway runs: the stream keeps them.
    rabbit
        .publish_json(UPDATED, &updated("evt_down_1", "tour_paris", 9))
        .await;
    rabbit
        .publish_json(UPDATED, &updated("evt_down_2", "tour_london", 5))
        .await;
    rabbit
        .publish_json(
            LOW,
            &json!({"eventId": "evt_down_3", "tourId": "tour_paris",
                                    "availableSeats": 2, "threshold": 3}),
        )
        .await;

    let second = rabbit.gateway(2, &[]).await;
    // The client comes back to the new process and resumes where it was:
    // same epoch, same seq numbers, so the missed events are replayed.
    let mut client = Client::connect(&second.ws_url(), Encoding::Json).await;
    assert_eq!(
        client.greeting["epoch"], epoch,
        "the epoch outlives the process"
    );
    client
        .send(json!({"type": "subscribe", "tourId": "*",
                     "since": {"epoch": epoch, "seq": seq(&seen)}}))
        .await;
    let ack = client.recv().await;
    assert_eq!(ack["type"], "subscribed");
    assert_eq!(ack["recovered"], true, "{ack}");
    let missed = [
        expect_event(&mut client, UPDATED, "tour_paris", 9).await,
        expect_event(&mut client, UPDATED, "tour_london", 5).await,
        expect_event(&mut client, LOW, "tour_paris", 2).await,
    ];
    let ids: Vec<&Value> = missed.iter().map(|m| &m["eventId"]).collect();
    assert_eq!(ids, ["evt_down_1", "evt_down_2", "evt_down_3"]);
    client.expect_silence(Duration::from_millis(300)).await;

    // A new client's snapshot holds the latest state of both tours.
    let mut fresh = Client::connect(&second.ws_url(), Encoding::Json).await;
    let snapshot = subscribe(&mut fresh, "*").await;
    let seats: Vec<(String, u64)> = snapshot["tours"]
        .as_array()
        .expect("tours")
        .iter()
        .map(|t| {
            (
                t["tourId"].as_str().unwrap_or_default().to_string(),
                t["availableSeats"].as_u64().unwrap_or(99),
            )
        })
        .collect();
    assert_eq!(
        seats,
        [
            ("tour_london".to_string(), 5),
            ("tour_paris".to_string(), 2)
        ]
    );
    stop(second).await;
    rabbit.cleanup().await;
}

#[tokio::test]
async fn a_connection_closed_by_the_broker_is_reopened_without_loss() {
    let rabbit = Rabbit::new().await;
    // A slow first retry, so the outage is observable from outside.
    let gateway = rabbit
        .gateway(
            1,
            &[
                "--rabbitmq-reconnect-min",
                "1s",
                "--rabbitmq-reconnect-max",
                "1s",
            ],
        )
        .await;
    let mut client = Client::connect(&gateway.ws_url(), Encoding::Json).await;
    rabbit
        .publish_json(UPDATED, &updated("evt_c0", "tour_rome", 18))
        .await;
    expect_event(&mut client, UPDATED, "tour_rome", 18).await;

    close_connection(&rabbit.connection_name(1)).await;
    wait_for_state(&gateway, "reconnecting", Duration::from_secs(5)).await;
    let (status, body) = http_get(&gateway.http_url("/ready")).await;
    if body["eventSource"]["state"] != "connected" {
        assert_eq!(status, 503, "not ready while disconnected: {body}");
    }
    // WebSockets keep being served during the outage.
    client.send(json!({"type": "ping"})).await;
    assert_eq!(client.recv().await["type"], "pong");

    // Published during the outage.
    for seats in (13..=17).rev() {
        rabbit
            .publish_json(
                UPDATED,
                &updated(&format!("evt_c{seats}"), "tour_rome", seats),
            )
            .await;
    }
    wait_for_state(&gateway, "connected", Duration::from_secs(10)).await;
    let mut last = 0;
    for seats in (13..=17).rev() {
        let message = expect_event(&mut client, UPDATED, "tour_rome", seats).await;
        assert!(seq(&message) > last, "in order");
        last = seq(&message);
    }
    client.expect_silence(Duration::from_millis(500)).await;
    assert!(
        !gateway.log_lines("reconnecting").is_empty(),
        "the reconnect is logged"
    );
    stop(gateway).await;
    rabbit.cleanup().await;
}

#[tokio::test]
async fn a_backlog_larger_than_the_outbound_queue_reaches_healthy_clients() {
    // After an outage the stream hands over everything published meanwhile
    // at once. On one worker thread (a busy host: the gateway's other
    // workers get no CPU), the consumer must let the connection tasks drain
    // while it applies the backlog, or every client's queue fills and the
    // hub closes healthy clients as slow consumers (1008).
    const BACKLOG: u32 = 120;
    let rabbit = Rabbit::new().await;
    let gateway = rabbit
        .gateway_with_env(
            1,
            &[
                "--outbound-queue",
                "32",
                "--rabbitmq-reconnect-min",
                "2s",
                "--rabbitmq-reconnect-max",
                "2s",
            ],
            &[("TOKIO_WORKER_THREADS", "1")],
        )
        .await;
    let mut clients = Vec::new();
    for _ in 0..3 {
        clients.push(Client::connect(&gateway.ws_url(), Encoding::Json).await);
    }
    close_connection(&rabbit.connection_name(1)).await;
    wait_for_state(&gateway, "reconnecting", Duration::from_secs(5)).await;
    for seats in 1..=BACKLOG {
        rabbit
            .publish_json(
                UPDATED,
                &updated(&format!("evt_b{seats}"), "tour_oslo", seats),
            )
            .await;
    }
    wait_for_state(&gateway, "connected", Duration::from_secs(10)).await;
    for client in &mut clients {
        for seats in 1..=BACKLOG {
            match client.next().await {
                Received::Message(message) => {
                    assert_eq!(message["data"]["availableSeats"], seats, "{message}");
                }
                other => panic!("event {seats} of {BACKLOG}: got {other:?}"),
            }
        }
    }
    let slow = metric(&gateway, "tourcast_slow_client_disconnects_total").await;
    assert_eq!(slow.unwrap_or(0.0), 0.0, "no client was closed as slow");
    stop(gateway).await;
    rabbit.cleanup().await;
}

#[tokio::test]
async fn a_recreated_stream_is_read_again_from_its_start_without_loss() {
    let rabbit = Rabbit::new().await;
    let gateway = rabbit.gateway(1, &[]).await;
    let mut client = Client::connect(&gateway.ws_url(), Encoding::Json).await;
    for seats in [9, 8, 7] {
        rabbit
            .publish_json(
                UPDATED,
                &updated(&format!("evt_old_{seats}"), "tour_paris", seats),
            )
            .await;
    }
    let mut last = 0;
    for seats in [9, 8, 7] {
        last = seq(&expect_event(&mut client, UPDATED, "tour_paris", seats).await);
    }

    // An operator deletes the stream; the gateway declares it anew on
    // reconnect. The first event that reaches the new stream is at offset 0,
    // far behind what the gateway applied.
    rabbit.delete_stream().await;
    let event = updated("evt_new_1", "tour_paris", 6);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while !rabbit.try_publish_json(UPDATED, &event).await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the stream was not redeclared"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let message = expect_event_within(
        &mut client,
        UPDATED,
        "tour_paris",
        6,
        Duration::from_secs(15),
    )
    .await;
    assert_eq!(message["eventId"], "evt_new_1");
    assert!(seq(&message) > last, "seq keeps growing: {message}");
    rabbit
        .publish_json(UPDATED, &updated("evt_new_2", "tour_paris", 5))
        .await;
    let message = expect_event(&mut client, UPDATED, "tour_paris", 5).await;
    assert!(seq(&message) > last + 1);
    client.expect_silence(Duration::from_millis(300)).await;
    assert!(
        !gateway.log_lines("recreated").is_empty(),
        "the recreation is logged"
    );
    stop(gateway).await;
    rabbit.cleanup().await;
}

#[tokio::test]
async fn the_broker_going_away_and_coming_back_loses_nothing() {
    let rabbit = Rabbit::new().await;
    let mut proxy = BrokerProxy::start().await;
    let gateway = rabbit.gateway(1, &["--rabbitmq-url", &proxy.url()]).await;
    let mut client = Client::connect(&gateway.ws_url(), Encoding::Json).await;
    rabbit
        .publish_json(UPDATED, &updated("evt_g0", "tour_london", 15))
        .await;
    expect_event(&mut client, UPDATED, "tour_london", 15).await;

    // The broker vanishes: the socket drops, reconnects are refused.
    proxy.cut();
    wait_for_state(&gateway, "reconnecting", Duration::from_secs(5)).await;
    let (status, _) = http_get(&gateway.http_url("/ready")).await;
    assert_eq!(status, 503, "not ready while the broker is away");
    client.send(json!({"type": "ping"})).await;
    assert_eq!(
        client.recv().await["type"],
        "pong",
        "WebSockets are still served"
    );

    // Events published meanwhile wait in the stream.
    for seats in [14, 13, 12] {
        rabbit
            .publish_json(
                UPDATED,
                &updated(&format!("evt_g{seats}"), "tour_london", seats),
            )
            .await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await; // some refused attempts
    proxy.restore().await;
    wait_for_state(&gateway, "connected", Duration::from_secs(10)).await;
    for seats in [14, 13, 12] {
        expect_event(&mut client, UPDATED, "tour_london", seats).await;
    }
    client.expect_silence(Duration::from_millis(500)).await;
    stop(gateway).await;
    rabbit.cleanup().await;
}

/// A gateway that never reached the broker has no state to serve: it
/// answers /health and /ready, refuses WebSockets with 503 (clients back
/// off and retry), and serves as soon as it has caught up.
#[tokio::test]
async fn a_gateway_started_without_a_broker_answers_health_and_serves_once_caught_up() {
    let rabbit = Rabbit::new().await;
    let mut proxy = BrokerProxy::start().await;
    proxy.cut();
    let gateway = rabbit
        .start_gateway(1, &["--rabbitmq-url", &proxy.url()])
        .await;
    wait_for_state(&gateway, "reconnecting", Duration::from_secs(5)).await;
    let (status, body) = http_get(&gateway.http_url("/ready")).await;
    assert_eq!(status, 503, "{body}");
    let (status, body) = common::ws_handshake_status(&gateway.ws_url()).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["code"], "unavailable", "{body}");

    proxy.restore().await;
    wait_for_state(&gateway, "connected", Duration::from_secs(10)).await;
    let mut client = Client::connect(&gateway.ws_url(), Encoding::Json).await;
    client
        .send(json!({"type": "ping", "requestId": "r1"}))
        .await;
    assert_eq!(client.recv().await["requestId"], "r1");
    rabbit
        .publish_json(UPDATED, &updated("evt_late", "tour_rome", 3))
        .await;
    expect_event(&mut client, UPDATED, "tour_rome", 3).await;
    stop(gateway).await;
    rabbit.cleanup().await;
}

#[tokio::test]
async fn two_instances_each_deliver_every_event_once_with_the_same_numbering() {
    let rabbit = Rabbit::new().await;
    let one = rabbit.gateway(1, &[]).await;
    let two = rabbit.gateway(2, &[]).await;
    let mut clients = vec![
        Client::connect(&one.ws_url(), Encoding::Json).await,
        Client::connect(&one.ws_url(), Encoding::Proto).await,
        Client::connect(&two.ws_url(), Encoding::Json).await,
        Client::connect(&two.ws_url(), Encoding::Proto).await,
    ];
    assert_eq!(clients[0].greeting["epoch"], clients[2].greeting["epoch"]);

    let tours = ["tour_paris", "tour_london", "tour_rome"];
    let events: Vec<(String, &str, u32)> = (0..30u32)
        .map(|i| (format!("evt_two_{i}"), tours[i as usize % 3], 100 - i))
        .collect();
    for (id, tour, seats) in &events {
        rabbit
            .publish_json(UPDATED, &updated(id, tour, *seats))
            .await;
    }
    let mut numbering: Option<Vec<u64>> = None;
    for client in &mut clients {
        let mut seqs = Vec::new();
        for (id, tour, seats) in &events {
            let message = expect_event(client, UPDATED, tour, *seats).await;
            assert_eq!(message["eventId"], id.as_str());
            seqs.push(seq(&message));
        }
        client.expect_silence(Duration::from_millis(200)).await;
        match &numbering {
            None => numbering = Some(seqs),
            Some(expected) => assert_eq!(&seqs, expected, "every instance numbers alike"),
        }
    }
    stop(one).await;
    stop(two).await;
    rabbit.cleanup().await;
}

#[tokio::test]
async fn a_fresh_instance_serves_a_complete_snapshot_at_once() {
    let rabbit = Rabbit::new().await;
    let first = rabbit.gateway(1, &[]).await;
    let mut watcher = Client::connect(&first.ws_url(), Encoding::Json).await;
    let events = [
        ("tour_paris", 20),
        ("tour_london", 15),
        ("tour_rome", 18),
        ("tour_paris", 17),
        ("tour_rome", 11),
    ];
    for (i, (tour, seats)) in events.into_iter().enumerate() {
        rabbit
            .publish_json(UPDATED, &updated(&format!("evt_s{i}"), tour, seats))
            .await;
    }
    // The first instance has applied all five once its client saw them.
    for (tour, seats) in events {
        expect_event(&mut watcher, UPDATED, tour, seats).await;
    }
    let mut reader = Client::connect(&first.ws_url(), Encoding::Json).await;
    let reference = subscribe(&mut reader, "*").await;

    // A new instance, ready only once it has replayed the stream: its very
    // first snapshot is complete, without waiting for any new event.
    let fresh = rabbit.gateway(2, &[]).await;
    let mut client = Client::connect(&fresh.ws_url(), Encoding::Json).await;
    let snapshot = subscribe(&mut client, "*").await;
    let view = |snapshot: &Value| -> Vec<(String, u64, u64)> {
        snapshot["tours"]
            .as_array()
            .expect("tours")
            .iter()
            .map(|t| {
                (
                    t["tourId"].as_str().unwrap_or_default().to_string(),
                    t["availableSeats"].as_u64().unwrap_or(999),
                    seq(t),
                )
            })
            .collect()
    };
    assert_eq!(
        view(&snapshot),
        [
            ("tour_london".to_string(), 15, 2),
            ("tour_paris".to_string(), 17, 4),
            ("tour_rome".to_string(), 11, 5),
        ]
    );
    assert_eq!(view(&snapshot), view(&reference), "both instances agree");
    stop(first).await;
    stop(fresh).await;
    rabbit.cleanup().await;
}

#[tokio::test]
async fn the_catalog_fills_in_tours_the_stream_does_not_know_and_is_retried() {
    use axum::routing::get;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    // A catalog that fails once, then answers in the old service's shape.
    let calls = Arc::new(AtomicUsize::new(0));
    let app = axum::Router::new().route(
        "/api/tours",
        get({
            let calls = Arc::clone(&calls);
            move || async move {
                if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                    (axum::http::StatusCode::SERVICE_UNAVAILABLE, "down".to_string())
                } else {
                    (
                        axum::http::StatusCode::OK,
                        json!([
                            {"id": "tour_paris", "name": "Paris City Tour", "available_seats": 20, "max_group_size": 20},
                            {"id": "tour_london", "title": "London Eye Experience", "availableSeats": 15, "maxGroupSize": 15},
                        ])
                        .to_string(),
                    )
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let catalog_url = format!("http://{}/api/tours", listener.local_addr().expect("addr"));
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let rabbit = Rabbit::new().await;
    // One tour is known from the stream already; the stream wins for it.
    let first = rabbit.gateway(1, &[]).await;
    rabbit
        .publish_json(UPDATED, &updated("evt_cat", "tour_paris", 7))
        .await;
    stop(first).await;

    let gateway = rabbit
        .gateway(
            2,
            &["--catalog-url", &catalog_url, "--catalog-retry", "200ms"],
        )
        .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let tours = loop {
        let mut client = Client::connect(&gateway.ws_url(), Encoding::Json).await;
        let snapshot = subscribe(&mut client, "*").await;
        let tours: Vec<(String, u64)> = snapshot["tours"]
            .as_array()
            .expect("tours")
            .iter()
            .map(|t| {
                (
                    t["tourId"].as_str().unwrap_or_default().to_string(),
                    t["availableSeats"].as_u64().unwrap_or(999),
                )
            })
            .collect();
        if tours.len() == 2 || tokio::time::Instant::now() > deadline {
            break tours;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(
        tours,
        [
            ("tour_london".to_string(), 15),
            ("tour_paris".to_string(), 7)
        ]
    );
    assert!(
        calls.load(Ordering::SeqCst) >= 2,
        "the failed attempt was retried"
    );
    assert!(!gateway.log_lines("catalog bootstrap failed").is_empty());

    // Live events still flow after the seeding.
    let mut client = Client::connect(&gateway.ws_url(), Encoding::Json).await;
    rabbit
        .publish_json(UPDATED, &updated("evt_cat2", "tour_london", 14))
        .await;
    expect_event(&mut client, UPDATED, "tour_london", 14).await;
    stop(gateway).await;
    server.abort();
    rabbit.cleanup().await;
}

#[tokio::test]
async fn tourcast_publish_sends_events_a_client_receives() {
    let rabbit = Rabbit::new().await;
    let gateway = rabbit.gateway(1, &[]).await;
    let mut client = Client::connect(&gateway.ws_url(), Encoding::Json).await;
    let publish = |extra: &[&str], stdin: Option<&str>| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_tourcast"));
        command
            .args([
                "publish",
                "--rabbitmq-url",
                &rabbit::amqp_url(),
                "--rabbitmq-exchange",
                &rabbit.exchange,
            ])
            .args(extra)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = command.spawn().expect("tourcast publish starts");
        if let Some(input) = stdin {
            use std::io::Write as _;
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(input.as_bytes())
                .expect("write stdin");
        } else {
            drop(child.stdin.take());
        }
        child.wait_with_output().expect("tourcast publish runs")
    };

    let out = publish(
        &[
            "--tour-id",
            "tour_paris",
            "--seats",
            "3",
            "--tour-name",
            "Paris City Tour",
        ],
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("tour=tour_paris seats=3"));
    let message = expect_event(&mut client, UPDATED, "tour_paris", 3).await;
    assert_eq!(message["data"]["tourName"], "Paris City Tour");

    let out = publish(
        &[
            "--kind",
            "low",
            "--tour-id",
            "tour_paris",
            "--seats",
            "2",
            "--threshold",
            "3",
            "--format",
            "proto",
        ],
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    expect_event(&mut client, LOW, "tour_paris", 2).await;

    let lines = "{\"tourId\":\"tour_rome\",\"availableSeats\":6}\n\n{\"eventType\":\"tour.availability.low\",\"tourId\":\"tour_rome\",\"availableSeats\":1,\"threshold\":3}\n";
    let out = publish(&[], Some(lines));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    expect_event(&mut client, UPDATED, "tour_rome", 6).await;
    expect_event(&mut client, LOW, "tour_rome", 1).await;

    // An event the gateway would refuse is refused before it is sent.
    let out = publish(&[], Some("{\"availableSeats\":1}\n"));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("tourId"));
    client.expect_silence(Duration::from_millis(300)).await;
    stop(gateway).await;
    rabbit.cleanup().await;
}

/// The tours and seats of a snapshot, sorted by tour.
fn snapshot_seats(snapshot: &Value) -> Vec<(String, u64)> {
    snapshot["tours"]
        .as_array()
        .expect("tours")
        .iter()
        .map(|t| {
            (
                t["tourId"].as_str().unwrap_or_default().to_string(),
                t["availableSeats"].as_u64().unwrap_or(u64::MAX),
            )
        })
        .collect()
}

/// Issue 10, finding 1: events were dropped as "stale" when a publisher's
/// clock ran behind the gateway's (or behind an event with no timestamp,
/// which took the receipt time). The stream's order is the order.
#[tokio::test]
async fn events_from_publishers_with_skewed_or_missing_clocks_all_arrive_in_stream_order() {
    let rabbit = Rabbit::new().await;
    let gateway = rabbit.gateway(1, &[]).await;
    let mut client = Client::connect(&gateway.ws_url(), Encoding::Json).await;
    subscribe(&mut client, "*").await;

    let behind = |minutes: i64| {
        (Utc::now() - chrono::Duration::minutes(minutes))
            .to_rfc3339_opts(SecondsFormat::Millis, true)
    };
    // updated (8) → low (3, the SPEC's shape: no timestamp) → updated (7)
    // from a publisher a second behind the gateway.
    rabbit
        .publish_json(UPDATED, &updated("evt_clock_1", "tour_paris", 8))
        .await;
    rabbit
        .publish_json(
            LOW,
            &json!({"tourId": "tour_paris", "tourTitle": "Paris City Tour",
                    "availableSeats": 3, "maxGroupSize": 20, "threshold": 3}),
        )
        .await;
    let mut late = updated("evt_clock_2", "tour_paris", 7);
    late["timestamp"] = json!(
        (Utc::now() - chrono::Duration::seconds(1)).to_rfc3339_opts(SecondsFormat::Millis, true)
    );
    rabbit.publish_json(UPDATED, &late).await;
    // One publisher on time, then five from one ten minutes behind.
    rabbit
        .publish_json(UPDATED, &updated("evt_rome_0", "tour_rome", 18))
        .await;
    for (n, seats) in (12..17).rev().enumerate() {
        let mut event = updated(&format!("evt_rome_{}", n + 1), "tour_rome", seats);
        event["timestamp"] = json!(behind(10));
        rabbit.publish_json(UPDATED, &event).await;
    }

    let mut seqs = vec![
        seq(&expect_event(&mut client, UPDATED, "tour_paris", 8).await),
        seq(&expect_event(&mut client, LOW, "tour_paris", 3).await),
        seq(&expect_event(&mut client, UPDATED, "tour_paris", 7).await),
        seq(&expect_event(&mut client, UPDATED, "tour_rome", 18).await),
    ];
    for seats in (12..17).rev() {
        seqs.push(seq(
            &expect_event(&mut client, UPDATED, "tour_rome", seats).await
        ));
    }
    assert_eq!(
        seqs,
        (1..=9).collect::<Vec<u64>>(),
        "every event, in stream order"
    );
    client.expect_silence(Duration::from_millis(200)).await;

    let mut fresh = Client::connect(&gateway.ws_url(), Encoding::Json).await;
    let snapshot = subscribe(&mut fresh, "*").await;
    assert_eq!(
        snapshot_seats(&snapshot),
        [("tour_paris".to_string(), 7), ("tour_rome".to_string(), 12)]
    );
    assert_eq!(
        metric(&gateway, "tourcast_events_total{outcome=\"stale\"}").await,
        None,
        "nothing was dropped as stale"
    );
    stop(gateway).await;
    rabbit.cleanup().await;
}

/// A publisher-supplied per-tour `version` is the one thing that makes an
/// event stale: a racing publisher's older version is dropped, counted.
#[tokio::test]
async fn a_publisher_version_not_above_the_tours_is_dropped_as_stale() {
    let rabbit = Rabbit::new().await;
    let gateway = rabbit.gateway(1, &[]).await;
    let mut client = Client::connect(&gateway.ws_url(), Encoding::Json).await;
    subscribe(&mut client, "tour_paris").await;
    for (id, seats, version) in [("v_1", 10, 5), ("v_2", 4, 4), ("v_3", 9, 6)] {
        let mut event = updated(id, "tour_paris", seats);
        event["version"] = json!(version);
        rabbit.publish_json(UPDATED, &event).await;
    }
    expect_event(&mut client, UPDATED, "tour_paris", 10).await;
    expect_event(&mut client, UPDATED, "tour_paris", 9).await;
    client.expect_silence(Duration::from_millis(200)).await;
    assert_eq!(
        metric(&gateway, "tourcast_events_total{outcome=\"stale\"}").await,
        Some(1.0)
    );
    stop(gateway).await;
    rabbit.cleanup().await;
}

/// Issue 10, finding 2: a restarting instance accepted clients while it
/// replayed the stream, served them partial snapshots, then pushed the
/// replayed history to them as live events. Now every handshake during the
/// replay gets 503, and the first accepted client sees the whole state.
#[tokio::test]
async fn a_client_reconnecting_during_a_replay_gets_503_or_a_complete_snapshot_never_history() {
    let rabbit = Rabbit::new().await;
    // The gateway declares the stream; then it goes away (like `kill -9`).
    let first = rabbit.gateway(1, &[]).await;
    let epoch = first_epoch(&first).await;
    stop(first).await;

    const TOURS: u32 = 50;
    const EVENTS: u32 = 20_000;
    let events: Vec<Value> = (0..EVENTS)
        .map(|n| {
            updated(
                &format!("evt_r{n}"),
                &format!("tour_{}", n % TOURS),
                n / TOURS % 900,
            )
        })
        .collect();
    for chunk in events.chunks(2_000) {
        rabbit.publish_json_batch(UPDATED, chunk).await;
    }
    let final_seats: Vec<(String, u64)> = {
        let mut seats: Vec<(String, u64)> = (0..TOURS)
            .map(|t| {
                let last = (0..EVENTS)
                    .rev()
                    .find(|n| n % TOURS == t)
                    .expect("an event");
                (format!("tour_{t}"), u64::from(last / TOURS % 900))
            })
            .collect();
        seats.sort();
        seats
    };

    let gateway = rabbit.start_gateway(2, &[]).await;
    let mut refused = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut client = loop {
        assert!(tokio::time::Instant::now() < deadline, "never accepted");
        match common::ws_handshake_status(&gateway.ws_url()).await {
            (503, body) => {
                assert_eq!(body["code"], "unavailable", "{body}");
                refused += 1;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            (101, _) => break Client::connect(&gateway.ws_url(), Encoding::Json).await,
            (status, body) => panic!("unexpected handshake answer {status}: {body}"),
        }
    };
    assert!(
        refused > 0,
        "the test must race the replay to mean anything"
    );
    // Resubscribe as a client coming back from the killed instance.
    client
        .send(json!({"type": "subscribe", "tourId": "*", "since": {"epoch": epoch, "seq": 1}}))
        .await;
    let ack = client.recv().await;
    assert_eq!(ack["type"], "subscribed", "{ack}");
    assert_eq!(
        ack["recovered"], false,
        "the gap exceeds what one client is sent"
    );
    let snapshot = client.recv().await;
    assert_eq!(snapshot["type"], "snapshot", "{snapshot}");
    assert_eq!(snapshot_seats(&snapshot), final_seats, "the whole state");
    client.expect_silence(Duration::from_millis(500)).await;
    stop(gateway).await;
    rabbit.cleanup().await;
}

/// The epoch a gateway announces to its clients.
async fn first_epoch(gateway: &GatewayProcess) -> Value {
    let client = Client::connect(&gateway.ws_url(), Encoding::Json).await;
    client.greeting["epoch"].clone()
}

/// Issue 10, finding 3: a gap longer than the in-memory history fell back
/// to a snapshot, which restores the seats but loses the gap's low alerts.
/// The stream still holds them: they are read back from it, in order, at
/// the default settings (history 128 per tour, replays up to 2,048), and
/// events published during the read-back arrive once, after it.
#[tokio::test]
async fn a_gap_larger_than_the_history_is_replayed_from_the_stream_alerts_included() {
    let rabbit = Rabbit::new().await;
    let gateway = rabbit.gateway(1, &[]).await;
    let mut client = Client::connect(&gateway.ws_url(), Encoding::Json).await;
    let epoch = client.greeting["epoch"].clone();
    subscribe(&mut client, "tour_paris").await;
    rabbit
        .publish_json(UPDATED, &updated("evt_gap_0", "tour_paris", 20))
        .await;
    let held = seq(&expect_event(&mut client, UPDATED, "tour_paris", 20).await);
    client.close().await;

    // 200 events while the client is away (more than the 128 memory keeps),
    // a low alert every tenth, and another tour's events in between.
    let mut expected = Vec::new();
    let mut paris = Vec::new();
    let mut rome = Vec::new();
    for n in 1..=200u32 {
        let seats = 20 - n % 20;
        if n % 10 == 0 {
            paris.push(
                json!({"eventId": format!("evt_gap_low_{n}"), "tourId": "tour_paris",
                              "tourTitle": "Paris City Tour", "availableSeats": seats,
                              "maxGroupSize": 20, "threshold": 3}),
            );
            expected.push((LOW, seats));
        } else {
            paris.push(updated(&format!("evt_gap_{n}"), "tour_paris", seats));
            expected.push((UPDATED, seats));
        }
        rome.push(updated(&format!("evt_rome_{n}"), "tour_rome", n % 50));
    }
    for (event, other) in paris.iter().zip(&rome) {
        let key = if event.get("threshold").is_some() {
            LOW
        } else {
            UPDATED
        };
        rabbit.publish_json(key, event).await;
        rabbit.publish_json(UPDATED, other).await;
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while common::snapshot_of(&gateway, "tour_rome").await != Some(0) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the gateway never caught up"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A fresh connection (it receives every tour until it subscribes)
    // resumes; more events are published while the stream is read back.
    let mut back = Client::connect(&gateway.ws_url(), Encoding::Json).await;
    back.send(json!({"type": "subscribe", "tourId": "tour_paris",
                     "since": {"epoch": epoch, "seq": held}, "requestId": "resume"}))
        .await;
    for n in 1..=5u32 {
        rabbit
            .publish_json(
                UPDATED,
                &updated(&format!("evt_during_{n}"), "tour_paris", n),
            )
            .await;
        expected.push((UPDATED, n));
    }
    let ack = back.recv().await;
    assert_eq!(
        ack["type"], "subscribed",
        "nothing before the acknowledgement: {ack}"
    );
    assert_eq!(ack["recovered"], true, "read back from the stream: {ack}");
    let mut last = held;
    for (kind, seats) in expected {
        let event = expect_event(&mut back, kind, "tour_paris", seats).await;
        assert!(seq(&event) > last, "in order, once: {event}");
        last = seq(&event);
        if kind == LOW {
            assert_eq!(event["data"]["tourTitle"], "Paris City Tour");
        }
    }
    back.expect_silence(Duration::from_millis(300)).await;
    stop(gateway).await;
    rabbit.cleanup().await;
}
