//! The gateway against real WebSocket clients over real TCP: handshake,
//! commands, subscriptions, recovery, errors, limits, slow and dead clients,
//! and shutdown. The test plays the event source by calling `engine.apply`.

mod common;

use std::time::Duration;

use chrono::Utc;
use futures_util::StreamExt as _;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::http::HeaderValue;

use common::{Client, Encoding, TestServer, event, http_get, updated};
use tourcast::engine::ApplyOutcome;
use tourcast::event::AvailabilityKind;
use tourcast::source::SourceState;

#[tokio::test]
async fn greets_with_the_connection_message_in_each_encoding() {
    let server = TestServer::start().await;
    for (client, encoding) in [
        (server.json_client().await, "json"),
        (server.proto_client().await, "proto"),
    ] {
        let greeting = &client.greeting;
        assert!(uuid::Uuid::parse_str(greeting["clientId"].as_str().unwrap()).is_ok());
        assert_eq!(greeting["protocol"], "tourcast.v1");
        assert_eq!(greeting["encoding"], encoding);
        assert_eq!(greeting["epoch"], server.engine.epoch());
        assert!(greeting["timestamp"].as_str().unwrap().ends_with('Z'));
    }
    server.stop().await;
}

#[tokio::test]
async fn ping_is_answered_with_pong_echoing_request_id_in_both_encodings() {
    let server = TestServer::start().await;
    for mut client in [server.json_client().await, server.proto_client().await] {
        client
            .send(json!({"type": "ping", "requestId": "r-42"}))
            .await;
        let pong = client.recv().await;
        assert_eq!(pong["type"], "pong");
        assert_eq!(pong["requestId"], "r-42");
        client.send(json!({"type": "ping"})).await;
        assert!(client.recv().await.get("requestId").is_none());
    }
    server.stop().await;
}

#[tokio::test]
async fn old_clients_connect_at_root_and_encoding_can_come_from_the_query() {
    let server = TestServer::start().await;
    let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/", server.addr))
        .await
        .unwrap();
    let mut old = Client::greeted(ws, Encoding::Json).await;
    old.send(json!({"type": "ping"})).await;
    assert_eq!(old.recv().await["type"], "pong");

    let (ws, _) = tokio_tungstenite::connect_async(format!("{}?encoding=proto", server.ws_url()))
        .await
        .unwrap();
    let proto = Client::greeted(ws, Encoding::Proto).await;
    assert_eq!(proto.greeting["encoding"], "proto");

    let refused =
        tokio_tungstenite::connect_async(format!("{}?encoding=xml", server.ws_url())).await;
    assert_http_status(refused, 400);
    server.stop().await;
}

#[tokio::test]
async fn subscribe_is_acknowledged_then_followed_by_a_snapshot() {
    let server = TestServer::start().await;
    server.engine.apply(updated("tour_paris", 12));
    server.engine.apply(updated("tour_rome", 7));
    let mut client = server.json_client().await;
    client
        .send(json!({"type": "subscribe", "tourId": "tour_paris", "requestId": "s1"}))
        .await;
    let ack = client.recv_type("subscribed").await;
    assert_eq!(ack["tourId"], "tour_paris");
    assert_eq!(ack["requestId"], "s1");
    let snapshot = client.recv().await;
    assert_eq!(snapshot["type"], "snapshot");
    assert_eq!(snapshot["requestId"], "s1");
    assert_eq!(snapshot["epoch"], server.engine.epoch());
    let tours = snapshot["tours"].as_array().unwrap();
    assert_eq!(tours.len(), 1);
    assert_eq!(tours[0]["tourId"], "tour_paris");
    assert_eq!(tours[0]["availableSeats"], 12);
    assert_eq!(tours[0]["tourName"], "Tour tour_paris");
    assert_eq!(tours[0]["maxGroupSize"], 20);
    assert_eq!(tours[0]["seq"], 1);
    assert!(tours[0]["updatedAt"].is_string());

    // Only the subscribed tour's events follow.
    server.engine.apply(updated("tour_rome", 6));
    server.engine.apply(updated("tour_paris", 11));
    let update = client.recv().await;
    assert_eq!(update["type"], "tour.availability.updated");
    assert_eq!(update["data"]["tourId"], "tour_paris");
    assert_eq!(update["data"]["availableSeats"], 11);
    assert_eq!(update["seq"], 4);
    server.stop().await;
}

#[tokio::test]
async fn a_never_subscribed_connection_gets_every_tour_until_it_subscribes() {
    let server = TestServer::start().await;
    let mut client = server.json_client().await;
    server.engine.apply(updated("tour_paris", 12));
    server.engine.apply(updated("tour_rome", 7));
    assert_eq!(client.recv().await["data"]["tourId"], "tour_paris");
    assert_eq!(client.recv().await["data"]["tourId"], "tour_rome");

    client
        .send(json!({"type": "subscribe", "tourId": "tour_rome"}))
        .await;
    client.recv_type("snapshot").await;
    server.engine.apply(updated("tour_paris", 11));
    server.engine.apply(updated("tour_rome", 6));
    let next = client.recv().await;
    assert_eq!(
        next["data"]["tourId"], "tour_rome",
        "paris is no longer delivered"
    );
    server.stop().await;
}

#[tokio::test]
async fn star_subscribes_to_every_tour_without_duplicates() {
    let server = TestServer::start().await;
    server.engine.apply(updated("tour_paris", 12));
    server.engine.apply(updated("tour_rome", 7));
    let mut client = server.json_client().await;
    client
        .send(json!({"type": "subscribe", "tourId": "tour_paris"}))
        .await;
    client.recv_type("snapshot").await;
    client
        .send(json!({"type": "subscribe", "tourId": "*"}))
        .await;
    assert_eq!(client.recv_type("subscribed").await["tourId"], "*");
    let snapshot = client.recv().await;
    assert_eq!(snapshot["tours"].as_array().unwrap().len(), 2);

    server.engine.apply(updated("tour_paris", 10));
    server.engine.apply(updated("tour_rome", 5));
    assert_eq!(client.recv().await["data"]["tourId"], "tour_paris");
    assert_eq!(client.recv().await["data"]["tourId"], "tour_rome");
    client.expect_silence(Duration::from_millis(200)).await;
    server.stop().await;
}

#[tokio::test]
async fn unsubscribe_is_acknowledged_and_stops_the_events() {
    let server = TestServer::start().await;
    let mut client = server.json_client().await;
    client
        .send(json!({"type": "subscribe", "tourId": "tour_paris"}))
        .await;
    client.recv_type("snapshot").await;
    client
        .send(json!({"type": "unsubscribe", "tourId": "tour_paris", "requestId": "u1"}))
        .await;
    let ack = client.recv().await;
    assert_eq!(ack["type"], "unsubscribed");
    assert_eq!(ack["tourId"], "tour_paris");
    assert_eq!(ack["requestId"], "u1");
    server.engine.apply(updated("tour_paris", 3));
    client.expect_silence(Duration::from_millis(200)).await;
    assert_eq!(server.engine.hub().registrations(), 0);
    server.stop().await;
}

#[tokio::test]
async fn low_availability_keeps_the_old_shape_plus_seq() {
    let server = TestServer::start().await;
    let mut client = server.json_client().await;
    let mut low = event(AvailabilityKind::Low, "tour_alps", 3, Utc::now());
    low.tour_name = Some("Randonnée Montagne".into());
    low.max_group_size = Some(15);
    server.engine.apply(low);
    let alert = client.recv().await;
    assert_eq!(alert["type"], "tour.availability.low");
    assert_eq!(
        alert["data"],
        json!({"tourId": "tour_alps", "tourTitle": "Randonnée Montagne", "availableSeats": 3, "maxGroupSize": 15, "threshold": 3})
    );
    assert_eq!(alert["seq"], 1);
    assert!(alert["timestamp"].is_string());
    server.stop().await;
}

#[tokio::test]
async fn every_error_code_the_gateway_owns_is_sent_without_closing() {
    let server = TestServer::start_with(|settings, engine, _| {
        settings.max_message_bytes = 256;
        engine.max_channels_per_connection = 2;
    })
    .await;
    let mut client = server.json_client().await;

    client
        .send(json!({"type": "subscribe", "tourId": "", "requestId": "bad-1"}))
        .await;
    let error = client.recv().await;
    assert_eq!(error["type"], "error");
    assert_eq!(error["code"], "invalid_message");
    assert_eq!(error["path"], "/tourId");
    assert_eq!(error["requestId"], "bad-1");

    client.send(json!({"type": "teleport"})).await;
    let error = client.recv().await;
    assert_eq!(
        (error["code"].as_str(), error["path"].as_str()),
        (Some("unknown_type"), Some("/type"))
    );

    client.send_raw(Message::binary(vec![8u8, 1])).await;
    assert_eq!(client.recv().await["code"], "unsupported_encoding");

    let padding = "x".repeat(300);
    client
        .send_raw(Message::text(format!(
            r#"{{"type":"ping","requestId":"{padding}"}}"#
        )))
        .await;
    assert_eq!(client.recv().await["code"], "too_large");

    for tour in ["a", "b"] {
        client
            .send(json!({"type": "subscribe", "tourId": tour}))
            .await;
        client.recv_type("snapshot").await;
    }
    client
        .send(json!({"type": "subscribe", "tourId": "c", "requestId": "s3"}))
        .await;
    let error = client.recv().await;
    assert_eq!(error["code"], "forbidden");
    assert_eq!(error["requestId"], "s3");

    client.send_raw(Message::text("{not json")).await;
    let error = client.recv().await;
    assert_eq!(error["code"], "invalid_message");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("malformed JSON")
    );

    // Still open and serving after all of that.
    client
        .send(json!({"type": "ping", "requestId": "alive"}))
        .await;
    assert_eq!(client.recv().await["requestId"], "alive");
    server.stop().await;
}

#[tokio::test]
async fn protobuf_errors_match_json_errors() {
    let server = TestServer::start().await;
    let mut json_client = server.json_client().await;
    let mut proto_client = server.proto_client().await;
    let bad = json!({"type": "subscribe", "tourId": "bad id!", "requestId": "r"});
    json_client.send(bad.clone()).await;
    proto_client.send(bad).await;
    let (from_json, from_proto) = (json_client.recv().await, proto_client.recv().await);
    assert_eq!(from_json["code"], from_proto["code"]);
    assert_eq!(from_json["path"], from_proto["path"]);
    assert_eq!(
        from_json["message"], from_proto["message"],
        "worded alike too"
    );
    assert_eq!(from_proto["requestId"], "r");

    proto_client
        .send_raw(Message::binary(vec![0x12, 0x05, 0x0a]))
        .await;
    assert_eq!(proto_client.recv().await["code"], "invalid_message");
    proto_client.send_raw(Message::text("{}")).await;
    assert_eq!(proto_client.recv().await["code"], "unsupported_encoding");
    server.stop().await;
}

#[tokio::test]
async fn both_encodings_receive_the_same_events() {
    let server = TestServer::start().await;
    let mut json_client = server.json_client().await;
    let mut proto_client = server.proto_client().await;
    server.engine.apply(updated("tour_paris", 9));
    let (a, b) = (json_client.recv().await, proto_client.recv().await);
    assert_eq!(a, b);
    assert_eq!(a["type"], "tour.availability.updated");
    server.stop().await;
}

#[tokio::test]
async fn origins_outside_the_allow_list_are_refused_before_the_upgrade() {
    let server = TestServer::start_with(|settings, _, _| {
        settings.allowed_origins = vec!["http://localhost:5173".into()];
    })
    .await;
    let with_origin = |origin: &'static str| {
        let mut request = server.ws_url().into_client_request().unwrap();
        request
            .headers_mut()
            .insert("origin", HeaderValue::from_static(origin));
        request
    };
    assert_http_status(
        tokio_tungstenite::connect_async(with_origin("http://evil.example")).await,
        403,
    );
    let (ws, _) = tokio_tungstenite::connect_async(with_origin("http://localhost:5173"))
        .await
        .expect("allowed origin connects");
    Client::greeted(ws, Encoding::Json).await;
    // Non-browser clients send no Origin and are not what the list protects against.
    server.json_client().await;
    // CORS for the HTTP endpoints follows the same list.
    for (origin, allowed) in [
        ("http://localhost:5173", true),
        ("http://evil.example", false),
    ] {
        let response = reqwest::Client::new()
            .get(server.http_url("/health"))
            .header("origin", origin)
            .send()
            .await
            .unwrap();
        let header = response.headers().get("access-control-allow-origin");
        assert_eq!(header.is_some(), allowed, "{origin}");
    }
    // Issue 10, finding 6: Origin = Host no longer passes as same-origin;
    // a DNS-rebinding page sends both as evil.com.
    let ws = server.ws_url();
    let rebinding =
        common::ws_handshake_with(&ws, &[("origin", "http://evil.com"), ("host", "evil.com")])
            .await;
    assert_eq!(rebinding.0, 403, "{rebinding:?}");
    let own = format!("http://{}", server.addr);
    assert_eq!(
        common::ws_handshake_with(&ws, &[("origin", &own)]).await.0,
        403
    );
    // Two Origin headers: refused, even if one of them is allowed.
    let two = common::ws_handshake_with(
        &ws,
        &[
            ("origin", "http://localhost:5173"),
            ("origin", "http://evil.com"),
        ],
    )
    .await;
    assert_eq!(two.0, 403, "{two:?}");
    server.stop().await;
}

/// The dashboard's own origin is allowed by naming it: `PUBLIC_URL`.
#[tokio::test]
async fn the_public_url_is_an_allowed_origin_when_a_list_is_set() {
    let gateway = common::GatewayProcess::start(
        &[
            "--demo",
            "--allowed-origins",
            "http://localhost:5173",
            "--public-url",
            "https://rt.example.com/dashboard",
        ],
        &[],
    )
    .await;
    let ws = gateway.ws_url();
    for (origin, status) in [
        ("https://rt.example.com", 101),
        ("http://localhost:5173", 101),
        ("http://rt.example.com", 403),
    ] {
        let answer = common::ws_handshake_with(&ws, &[("origin", origin)]).await;
        assert_eq!(answer.0, status, "{origin}: {answer:?}");
    }
}

#[tokio::test]
async fn the_connection_cap_answers_503_and_frees_slots_on_close() {
    let server = TestServer::start_with(|_, _, max| *max = 2).await;
    let first = server.json_client().await;
    let _second = server.json_client().await;
    assert_http_status(tokio_tungstenite::connect_async(server.ws_url()).await, 503);
    let (_, health) = http_get(&server.http_url("/health")).await;
    assert_eq!(health["connectedClients"], 2);

    first.close().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    server.json_client().await;
    server.stop().await;
}

#[tokio::test]
async fn an_oversize_frame_closes_with_1009() {
    let server = TestServer::start_with(|settings, _, _| settings.max_frame_bytes = 8 * 1024).await;
    let mut client = server.json_client().await;
    let mut bystander = server.json_client().await;
    client.send_raw(Message::text("x".repeat(20 * 1024))).await;
    let close = client.expect_close().await.expect("a close frame");
    assert_eq!(close.0, 1009);
    bystander.send(json!({"type": "ping"})).await;
    assert_eq!(bystander.recv().await["type"], "pong");
    server.stop().await;
}

#[tokio::test]
async fn a_client_that_stops_reading_is_disconnected_while_others_keep_receiving() {
    let server = TestServer::start_with(|settings, _, _| settings.outbound_queue = 64).await;
    let stalled = server.json_client().await;
    let mut healthy = server.json_client().await;
    let mut stalled = stalled.into_inner(); // never read from again, for now

    // ~22 MB of events: more than the stalled client's socket buffers hold.
    let reader = tokio::spawn(async move {
        let mut received = 0u64;
        while received < 20_000 {
            let message = healthy.recv().await;
            if message["type"] == "tour.availability.updated" {
                received += 1;
            }
        }
        (healthy, received)
    });
    let padding = "p".repeat(1000);
    for i in 0..20_000u32 {
        let mut e = updated("tour_paris", i % 20);
        e.tour_name = Some(format!("Paris {padding}"));
        server.engine.apply(e);
        if i % 32 == 0 {
            // Paced so a reading client keeps up with a queue of 64.
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    let (mut healthy, received) = reader.await.unwrap();
    assert_eq!(received, 20_000, "the healthy client got every event");
    let slow = server
        .engine
        .hub()
        .counters()
        .slow_closed
        .load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(slow, 1, "the stalled client was counted once");

    // The stalled client's connection was ended by the server.
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match stalled.next().await {
                Some(Ok(Message::Close(frame))) => return frame.map(|f| u16::from(f.code)),
                Some(Ok(_)) => continue,
                _ => return None,
            }
        }
    })
    .await
    .expect("the stalled connection ends");
    // Issue 10, finding 5: the close frame used to be dropped (1006).
    assert_eq!(
        ended,
        Some(1008),
        "closed as a slow consumer, with a close frame"
    );
    healthy.send(json!({"type": "ping"})).await;
    assert_eq!(healthy.recv_type("pong").await["type"], "pong");
    server.stop().await;
}

#[tokio::test]
async fn a_client_that_never_answers_pings_is_closed_by_keepalive() {
    let server = TestServer::start_with(|settings, _, _| {
        settings.keepalive_interval = Duration::from_millis(150);
    })
    .await;
    let mut alive = server.json_client().await;
    let dead = server.json_client().await.into_inner();
    // tungstenite answers pings only while reading: `alive` reads, `dead` does not.
    alive.expect_silence(Duration::from_millis(800)).await;
    assert_eq!(
        server.engine.hub().registrations(),
        1,
        "the dead client's registration is freed"
    );

    let mut dead = common::Client::greeted_raw(dead);
    let close = dead.expect_close().await;
    assert_eq!(close.map(|c| c.0), Some(4000));
    // The live client (reading, so answering pings) is still there.
    alive.send(json!({"type": "ping"})).await;
    assert_eq!(alive.recv_type("pong").await["type"], "pong");
    server.stop().await;
}

#[tokio::test]
async fn resubscribing_with_since_replays_what_was_missed() {
    let server = TestServer::start().await;
    server.engine.apply(updated("tour_paris", 20));
    let mut client = server.json_client().await;
    client
        .send(json!({"type": "subscribe", "tourId": "tour_paris"}))
        .await;
    let held = client.recv_type("snapshot").await["tours"][0]["seq"]
        .as_u64()
        .unwrap();
    client.close().await;

    server.engine.apply(updated("tour_paris", 19));
    server.engine.apply(updated("tour_rome", 5));
    server.engine.apply(updated("tour_paris", 18));

    let mut back = server.json_client().await;
    back.send(json!({"type": "subscribe", "tourId": "tour_paris", "since": {"epoch": server.engine.epoch(), "seq": held}}))
        .await;
    let ack = back.recv_type("subscribed").await;
    assert_eq!(ack["recovered"], true);
    let first = back.recv().await;
    let second = back.recv().await;
    assert_eq!(
        (
            first["data"]["availableSeats"].as_u64(),
            second["data"]["availableSeats"].as_u64()
        ),
        (Some(19), Some(18))
    );
    assert!(first["seq"].as_u64() < second["seq"].as_u64());
    back.expect_silence(Duration::from_millis(200)).await;
    server.stop().await;
}

#[tokio::test]
async fn since_beyond_the_history_or_from_another_epoch_gets_a_fresh_snapshot() {
    let server = TestServer::start_with(|_, engine, _| engine.history_len = 2).await;
    server.engine.apply(updated("tour_paris", 20));
    for seats in (10..20).rev() {
        server.engine.apply(updated("tour_paris", seats));
    }
    let mut client = server.json_client().await;
    for since in [
        json!({"epoch": server.engine.epoch(), "seq": 1}),
        json!({"epoch": "another-epoch", "seq": 5}),
    ] {
        client
            .send(json!({"type": "subscribe", "tourId": "tour_paris", "since": since}))
            .await;
        assert_eq!(client.recv_type("subscribed").await["recovered"], false);
        let snapshot = client.recv().await;
        assert_eq!(snapshot["type"], "snapshot");
        assert_eq!(snapshot["recovered"], false);
        assert_eq!(snapshot["tours"][0]["availableSeats"], 10);
        assert_eq!(snapshot["tours"][0]["seq"], 11);
    }
    server.stop().await;
}

#[tokio::test]
async fn duplicate_and_stale_events_are_not_delivered() {
    let server = TestServer::start().await;
    let mut client = server.json_client().await;
    let mut first = updated("tour_paris", 8);
    first.event_id = Some("evt_1".into());
    first.version = Some(7);
    assert!(matches!(
        server.engine.apply(first.clone()),
        ApplyOutcome::Applied { .. }
    ));
    assert_eq!(server.engine.apply(first), ApplyOutcome::Duplicate);
    // Stale means an older publisher version; a timestamp never decides.
    let mut older = event(
        AvailabilityKind::Updated,
        "tour_paris",
        2,
        Utc::now() + chrono::Duration::minutes(5),
    );
    older.version = Some(6);
    assert_eq!(server.engine.apply(older), ApplyOutcome::Stale);

    assert_eq!(client.recv().await["data"]["availableSeats"], 8);
    client.expect_silence(Duration::from_millis(200)).await;
    assert_eq!(
        server.engine.tours()[0].available_seats,
        8,
        "state not rolled back"
    );
    server.stop().await;
}

#[tokio::test]
async fn health_reports_clients_and_source_and_ready_follows_the_source() {
    let server = TestServer::start().await;
    let _client = server.json_client().await;
    let (status, health) = http_get(&server.http_url("/health")).await;
    assert_eq!(status, 200);
    assert_eq!(health["status"], "ok");
    assert_eq!(health["service"], "websocket-server");
    assert_eq!(health["connectedClients"], 1);
    assert_eq!(health["eventSource"]["state"], "connected");
    assert_eq!(http_get(&server.http_url("/ready")).await.0, 200);

    // Pages on other origins may read it (CORS), e.g. a dev server's dashboard.
    let response = reqwest::Client::new()
        .get(server.http_url("/health"))
        .header("origin", "http://localhost:5173")
        .send()
        .await
        .unwrap();
    assert_eq!(
        response
            .headers()
            .get("access-control-allow-origin")
            .unwrap(),
        "*"
    );

    server.source.set(SourceState::Reconnecting);
    assert_eq!(http_get(&server.http_url("/ready")).await.0, 503);
    let (status, health) = http_get(&server.http_url("/health")).await;
    assert_eq!(
        (status, health["eventSource"]["state"].as_str()),
        (200, Some("reconnecting"))
    );
    server.stop().await;
}

#[tokio::test]
async fn shutdown_closes_every_client_with_1001() {
    let server = TestServer::start().await;
    let mut a = server.json_client().await;
    let mut b = server.proto_client().await;
    let shutdown = server.shutdown.clone();
    shutdown.cancel();
    assert_eq!(a.expect_close().await.map(|c| c.0), Some(1001));
    assert_eq!(b.expect_close().await.map(|c| c.0), Some(1001));
    server.stop().await;
}

#[tokio::test]
async fn the_binary_shuts_down_gracefully_on_sigterm() {
    let gateway = common::GatewayProcess::start(&["--demo", "--demo-interval", "100ms"], &[]).await;
    let mut client = Client::connect(&gateway.ws_url(), Encoding::Json).await;
    // The demo feed is alive: events arrive without subscribing.
    assert_eq!(client.recv().await["type"], "tour.availability.updated");
    gateway.terminate();
    assert_eq!(client.expect_close().await.map(|c| c.0), Some(1001));
    let mut child = gateway.child;
    let status = tokio::time::timeout(Duration::from_secs(5), child.wait())
        .await
        .expect("exits within the grace period")
        .unwrap();
    assert!(status.success());
}

fn assert_http_status<T: std::fmt::Debug>(
    result: Result<T, tokio_tungstenite::tungstenite::Error>,
    expected: u16,
) {
    match result {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status().as_u16(), expected)
        }
        other => panic!("expected HTTP {expected}, got {other:?}"),
    }
}

/// Issue 10, finding 5: invalid UTF-8 in a text frame closes with 1007, and
/// is counted as such, not as a lost connection.
#[tokio::test]
async fn invalid_utf8_in_a_text_frame_closes_with_1007_and_is_counted_apart() {
    use tokio_tungstenite::tungstenite::protocol::frame::Frame;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};

    let gateway = common::GatewayProcess::start(&["--demo"], &[]).await;
    let mut client = Client::connect(&gateway.ws_url(), Encoding::Json).await;
    let invalid = vec![b'{', 0xff, 0xfe, b'}'];
    client
        .send_raw(Message::Frame(Frame::message(
            invalid,
            OpCode::Data(Data::Text),
            true,
        )))
        .await;
    let close = client.expect_close().await.expect("a close frame");
    assert_eq!(close.0, 1007, "{close:?}");

    let metrics = reqwest::get(gateway.http_url("/metrics"))
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("metrics text");
    assert!(
        metrics.contains(
            "tourcast_disconnects_total{reason=\"invalid_payload\",transport=\"websocket\"} 1"
        ),
        "{metrics}"
    );
    assert!(!metrics.contains("reason=\"connection_lost\""), "{metrics}");
}

#[tokio::test]
async fn a_large_star_snapshot_comes_in_bounded_numbered_parts_before_any_later_event() {
    let server = TestServer::start().await;
    for i in 0..10_000u32 {
        let mut event = updated(&format!("tour_{i:05}"), i % 40);
        event.tour_name = Some(format!("Tour number {i}, a name of some length"));
        server.engine.apply(event);
    }
    for encoding in [Encoding::Json, Encoding::Proto] {
        let mut client = Client::connect(&server.ws_url(), encoding).await;
        client
            .send(json!({"type": "subscribe", "tourId": "*", "requestId": "big"}))
            .await;
        assert_eq!(client.recv().await["type"], "subscribed");
        // An event applied right after the subscribe must come after every part.
        server.engine.apply(updated("tour_00042", 39));
        let mut tours = std::collections::BTreeSet::new();
        let mut expected_part = 1;
        loop {
            let part = client.recv().await;
            assert_eq!(part["type"], "snapshot", "{}", part["type"]);
            assert_eq!(part["requestId"], "big");
            assert_eq!(part["part"], expected_part);
            // A JSON part's text is what was sent (parts of a protobuf
            // connection are cut to its own, smaller, encoding).
            if encoding == Encoding::Json {
                assert!(part.to_string().len() <= 64 * 1024, "part {expected_part}");
            }
            for tour in part["tours"].as_array().expect("tours") {
                assert!(tours.insert(tour["tourId"].as_str().unwrap().to_string()));
            }
            if part["part"] == part["parts"] {
                break;
            }
            expected_part += 1;
        }
        assert!(expected_part > 10, "{expected_part} parts");
        assert_eq!(tours.len(), 10_000);
        let event = client.recv().await;
        assert_eq!(event["type"], "tour.availability.updated");
        assert_eq!(event["data"]["tourId"], "tour_00042");
    }
    server.stop().await;
}
