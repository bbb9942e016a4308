//! Server-Sent Events (`GET /sse`) against a raw HTTP client
//! (`common/sse.rs`: a hand-written request, the chunked body and the
//! event stream decoded by hand).
//!
//! In-process (the test plays the event source):
//! - the stream opens with `retry:`, greets, answers the query's
//!   subscriptions, withholds ids until they are answered, then numbers
//!   every live event by its `seq`; the `tours=` filter holds;
//! - `Last-Event-ID` and `?lastEventId=` resume with exactly the missed
//!   events, across several tours; a resume point memory lost gets a
//!   fresh snapshot with `recovered:false`;
//! - bad queries are 400 naming the parameter; Origin and the caps apply;
//! - a client that stops reading is dropped, and event streams are not
//!   "pending" connections that a flood of silent sockets could evict;
//! - shutdown ends every stream.
//!
//! Against the real binary on a real broker (own exchange and stream):
//! - notifications over SSE with a JWT, and 401 and 403;
//! - SIGTERM ends the stream, and EventSource's reconnect to another
//!   instance with `Last-Event-ID` misses nothing; `/metrics` counts
//!   connections by transport.

mod common;
#[path = "common/rabbit.rs"]
mod rabbit;
#[path = "common/sse.rs"]
mod sse_client;

use std::time::Duration;

use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::{Value, json};

#[allow(unused_imports)]
use common::{GatewayProcess, TestServer, http_get, updated};
use rabbit::{Rabbit, metric};
use sse_client::{SseClient, SseEvent, connect};

fn seq(event: &SseEvent) -> u64 {
    event.data["seq"].as_u64().expect("seq")
}

/// Opens `/sse{query}` on `server`, which must accept.
async fn open(server: &TestServer, query: &str, headers: &[(&str, &str)]) -> SseClient {
    match connect(server.addr, &format!("/sse{query}"), headers).await {
        Ok(client) => client,
        Err((status, body)) => panic!("/sse{query} refused: {status} {body}"),
    }
}

/// The `connection` greeting, then `subscribed` for each tour in order.
async fn greeted(client: &mut SseClient, tours: &[&str]) {
    let hello = client.next().await;
    assert_eq!(hello.event, "connection", "{hello:?}");
    assert_eq!(hello.data["encoding"], "json");
    for tour in tours {
        let ack = client.next_of("subscribed").await;
        assert_eq!(ack.data["tourId"], *tour, "{ack:?}");
    }
}

#[tokio::test]
async fn a_stream_greets_answers_its_query_then_numbers_live_events_of_its_tours_only() {
    let server = TestServer::start().await;
    server.engine.apply(updated("tour_paris", 12));
    server.engine.apply(updated("tour_rome", 7));

    let mut client = open(&server, "?tours=tour_paris", &[]).await;
    assert_eq!(client.header("content-type"), Some("text/event-stream"));
    assert_eq!(client.header("cache-control"), Some("no-cache"));
    greeted(&mut client, &["tour_paris"]).await;
    assert_eq!(client.retry, Some(1000));
    let snapshot = client.next().await;
    assert_eq!(snapshot.event, "snapshot");
    // The last opening answer carries the resume point on a dispatched
    // event, where a script can read it (the snapshot reflects paris at 1).
    assert_eq!(snapshot.id, Some(1), "{snapshot:?}");
    let tours = snapshot.data["tours"].as_array().expect("tours");
    assert_eq!(tours.len(), 1, "{snapshot:?}");
    assert_eq!(tours[0]["availableSeats"], 12);

    server.engine.apply(updated("tour_rome", 6));
    server.engine.apply(updated("tour_paris", 11));
    let live = client.next().await;
    assert_eq!(live.event, "tour.availability.updated");
    assert_eq!(live.data["data"]["tourId"], "tour_paris", "{live:?}");
    assert_eq!(live.id, Some(4));
    assert_eq!(client.last_id, Some(4));
    assert!(
        client
            .next_within(Duration::from_millis(300))
            .await
            .is_none()
    );
    server.stop().await;
}

#[tokio::test]
async fn an_empty_tours_parameter_is_nothing_while_no_parameter_is_every_tour() {
    let server = TestServer::start().await;
    server.engine.apply(updated("tour_paris", 12));

    let mut nothing = open(&server, "?tours=", &[]).await;
    let mut every = open(&server, "", &[]).await;
    greeted(&mut every, &["*"]).await;
    let snapshot = every.next_of("snapshot").await;
    assert!(!snapshot.data["tours"].as_array().expect("tours").is_empty());
    assert_eq!(nothing.next().await.event, "connection");

    server.engine.apply(updated("tour_paris", 11));
    let live = every.next().await;
    assert_eq!(live.event, "tour.availability.updated", "{live:?}");
    assert!(
        nothing
            .next_within(Duration::from_millis(300))
            .await
            .is_none(),
        "a stream with no tours carries nothing"
    );
    assert!(!nothing.ended, "and stays open");
    server.stop().await;
}

/// Applies `events`; returns their seqs.
fn apply_all(server: &TestServer, events: &[(&str, u32)]) -> Vec<u64> {
    events
        .iter()
        .map(|(tour, seats)| {
            server.engine.apply(updated(tour, *seats));
            server.engine.last_seq()
        })
        .collect()
}

#[tokio::test]
async fn last_event_id_by_header_or_query_resumes_every_tour_with_exactly_what_was_missed() {
    let server = TestServer::start().await;
    apply_all(&server, &[("tour_paris", 12), ("tour_rome", 7)]);
    let tours = "?tours=tour_paris,tour_rome";
    let mut first = open(&server, tours, &[]).await;
    greeted(&mut first, &["tour_paris"]).await;
    apply_all(&server, &[("tour_paris", 11)]);
    first.next_of("tour.availability.updated").await;
    let resume_from = first.last_id.expect("an id");
    assert_eq!(resume_from, 3);
    drop(first);

    // Missed: newer events of both tours, rome's interleaved.
    let mut missed: Vec<(&str, u64)> = [("tour_rome", 6), ("tour_paris", 10), ("tour_rome", 5)]
        .into_iter()
        .map(|(tour, seats)| (tour, apply_all(&server, &[(tour, seats)])[0]))
        .collect();
    for how in ["header", "query"] {
        let id = resume_from.to_string();
        let mut client = match how {
            "header" => open(&server, tours, &[("Last-Event-ID", &id)]).await,
            _ => open(&server, &format!("{tours}&lastEventId={id}"), &[]).await,
        };
        client.next_of("connection").await;
        let mut replayed = Vec::new();
        let mut ids = Vec::new();
        for _ in 0..2 {
            let ack = client.next_of("subscribed").await;
            assert_eq!(ack.data["recovered"], true, "{how}: {ack:?}");
            // Each subscription's missed events follow its ack.
            let tour = ack.data["tourId"].as_str().expect("tourId").to_string();
            for _ in missed.iter().filter(|(of, _)| *of == tour) {
                let event = client.next().await;
                assert_eq!(event.data["data"]["tourId"], tour.as_str(), "{event:?}");
                ids.push(event.id);
                replayed.push(seq(&event));
            }
        }
        // No id while answers are pending; the last one carries the newest
        // position written.
        let mut expected: Vec<u64> = missed.iter().map(|(_, seq)| *seq).collect();
        let newest = expected.iter().max().copied();
        let mut expected_ids = vec![None; expected.len() - 1];
        expected_ids.push(newest);
        assert_eq!(ids, expected_ids, "{how}");
        replayed.sort_unstable();
        expected.sort_unstable();
        assert_eq!(replayed, expected, "{how}: exactly the missed events");
        // A live event; the next round, resuming from the same point, has
        // missed it too.
        let live_seq = apply_all(&server, &[("tour_paris", 9)])[0];
        missed.push(("tour_paris", live_seq));
        let live = client.next().await;
        assert_eq!(live.id, Some(live_seq), "{how}: {live:?}");
        assert!(
            client.comments.is_empty() || client.comments.iter().all(|c| c == "keep-alive"),
            "{:?}",
            client.comments
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn the_resume_point_is_set_once_the_opening_answers_are_written() {
    let server = TestServer::start().await;
    apply_all(
        &server,
        &[("tour_paris", 12), ("tour_rome", 7), ("tour_rome", 6)],
    );
    let mut client = open(
        &server,
        "?tours=tour_paris,tour_rome",
        &[("Last-Event-ID", "1")],
    )
    .await;
    // Paris has nothing missed; rome two. No id is set until both are
    // answered, then the last answer carries the highest position written
    // (3), on an event a script sees.
    client.next_of("connection").await;
    client.next_of("subscribed").await;
    assert_eq!(client.last_id, None);
    client.next_of("subscribed").await;
    assert_eq!(client.next().await.id, None);
    let last = client.next().await;
    assert_eq!(last.id, Some(3), "{last:?}");
    assert!(
        client
            .next_within(Duration::from_millis(300))
            .await
            .is_none()
    );
    assert_eq!(client.last_id, Some(3));
    server.stop().await;
}

#[tokio::test]
async fn a_resume_point_memory_has_lost_gets_a_fresh_snapshot_marked_unrecovered() {
    // 16 events of history per tour, at most 32 replayed.
    let server = TestServer::start().await;
    apply_all(&server, &[("tour_paris", 40)]);
    for seats in (0..40).rev() {
        apply_all(&server, &[("tour_paris", seats)]);
    }
    let mut client = open(&server, "?tours=tour_paris&lastEventId=1", &[]).await;
    client.next_of("connection").await;
    let ack = client.next_of("subscribed").await;
    assert_ne!(ack.data["recovered"], true, "{ack:?}");
    let snapshot = client.next_of("snapshot").await;
    assert_eq!(snapshot.data["recovered"], false, "{snapshot:?}");
    assert_eq!(snapshot.data["tours"][0]["availableSeats"], 0);
    server.stop().await;
}

#[tokio::test]
async fn bad_queries_are_refused_with_400_naming_the_parameter() {
    let server = TestServer::start().await;
    for (query, names) in [
        ("?tours=bad%20id", "tours"),
        ("?tours=*&viewers=1", "viewers"),
        ("?viewers=maybe", "viewers"),
        ("?channels=weather", "channels"),
        ("?tours=tour_paris&lastEventId=abc", "lastEventId"),
        ("?tours=a,b,c,d,e,f,g,h,i", "at most 8"),
    ] {
        let (status, body) = connect(server.addr, &format!("/sse{query}"), &[])
            .await
            .err()
            .unwrap_or_else(|| panic!("{query} was accepted"));
        assert_eq!(status, 400, "{query}: {body}");
        assert_eq!(body["code"], "invalid_message", "{query}: {body}");
        let message = body["message"].as_str().unwrap_or_default();
        assert!(message.contains(names), "{query}: {body}");
    }
    server.stop().await;
}

#[tokio::test]
async fn origin_and_the_connection_caps_apply_as_for_websockets() {
    let server = TestServer::start_with(|settings, _, max_connections| {
        settings.allowed_origins = vec!["https://tours.example".into()];
        *max_connections = 1;
    })
    .await;
    let (status, body) = connect(server.addr, "/sse", &[("Origin", "https://evil.example")])
        .await
        .err()
        .expect("refused");
    assert_eq!((status, body["code"].as_str()), (403, Some("forbidden")));
    let mut allowed = open(&server, "", &[("Origin", "https://tours.example")]).await;
    allowed.next_of("connection").await;
    let (status, body) = connect(server.addr, "/sse", &[]).await.err().expect("full");
    assert_eq!((status, body["code"].as_str()), (503, Some("unavailable")));
    server.stop().await;
}

#[tokio::test]
async fn a_stream_whose_client_stops_reading_is_ended_as_too_slow() {
    let server = TestServer::start_with(|settings, _, _| settings.outbound_queue = 16).await;
    let mut client = open(&server, "?tours=*", &[]).await;
    client.next_of("connection").await;
    // Far more than the socket buffers and the queue hold, unread.
    for i in 0..60_000u32 {
        server
            .engine
            .apply(updated(&format!("tour_{}", i % 50), i % 40));
    }
    let events = client.until_end(Duration::from_secs(20)).await;
    assert!(client.ended);
    assert!(
        events.len() < 60_000,
        "dropped, not served: {}",
        events.len()
    );
    server.stop().await;
}

#[tokio::test]
async fn event_streams_are_not_pending_connections_a_flood_can_evict() {
    let server = TestServer::start_with(|settings, _, _| settings.pending.max_pending = 2).await;
    let mut streams = Vec::new();
    for _ in 0..3 {
        let mut client = open(&server, "?tours=tour_paris", &[]).await;
        client.next_of("snapshot").await;
        streams.push(client);
    }
    // Silent sockets: each evicts the oldest pending connection.
    let mut silent = Vec::new();
    for _ in 0..6 {
        silent.push(
            tokio::net::TcpStream::connect(server.addr)
                .await
                .expect("connect"),
        );
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    server.engine.apply(updated("tour_paris", 3));
    for client in &mut streams {
        let live = client.next_of("tour.availability.updated").await;
        assert_eq!(live.data["data"]["availableSeats"], 3);
    }
    server.stop().await;
}

#[tokio::test]
async fn shutdown_ends_every_stream_saying_why() {
    let server = TestServer::start().await;
    let mut client = open(&server, "", &[]).await;
    client.next_of("connection").await;
    let stopping = tokio::spawn(server.stop());
    client.until_end(Duration::from_secs(5)).await;
    assert!(
        client.comments.iter().any(|c| c == "closing: shutdown"),
        "{:?}",
        client.comments
    );
    stopping.await.expect("stopped");
}

// --- against the binary, on a real broker ------------------------------

const SECRET: &str = "sse-test-secret";

fn token(sub: &str) -> String {
    let claims = json!({"sub": sub, "exp": chrono::Utc::now().timestamp() + 600, "tours": "*"});
    encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .expect("signs")
}

fn availability(event_id: &str, tour: &str, seats: u32) -> Value {
    json!({
        "eventId": event_id,
        "eventType": "tour.availability.updated",
        "tourId": tour,
        "availableSeats": seats,
        "timestamp": chrono::Utc::now().to_rfc3339(),
    })
}

async fn stop(mut gateway: GatewayProcess) {
    gateway.terminate();
    let _ = tokio::time::timeout(Duration::from_secs(10), gateway.child.wait()).await;
}

#[tokio::test]
async fn notifications_over_sse_need_a_token_whose_user_they_are_for() {
    let rabbit = Rabbit::new().await;
    let gateway = rabbit.gateway(1, &["--jwt-secret", SECRET]).await;
    let (status, body) = connect(gateway.addr, "/sse?channels=notifications", &[])
        .await
        .err()
        .expect("no token");
    assert_eq!((status, body["code"].as_str()), (401, Some("unauthorized")));
    let (status, body) = connect(
        gateway.addr,
        &format!("/sse?channels=stats&token={}", token("ann")),
        &[],
    )
    .await
    .err()
    .expect("not an admin");
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("forbidden")),
        "{body}"
    );

    let bearer = format!("Bearer {}", token("ann"));
    let mut ann = connect(
        gateway.addr,
        "/sse?channels=notifications",
        &[("Authorization", &bearer)],
    )
    .await
    .expect("ann's stream");
    let mut bob = connect(
        gateway.addr,
        &format!("/sse?channels=notifications&token={}", token("bob")),
        &[],
    )
    .await
    .expect("bob's stream");
    ann.next_of("subscribed").await;
    bob.next_of("subscribed").await;
    rabbit
        .publish_json(
            "notification.booking.confirmed",
            &json!({
                "eventId": "n1", "userId": "ann", "bookingId": "b1", "tourId": "tour_paris",
                "tourName": "Paris", "seats": 2, "message": "Your booking b1 is confirmed!",
            }),
        )
        .await;
    let note = ann.next_of("notification").await;
    assert_eq!(note.data["bookingId"], "b1");
    assert_eq!(note.id, Some(seq(&note)));
    assert!(bob.next_within(Duration::from_millis(500)).await.is_none());
    stop(gateway).await;
    rabbit.cleanup().await;
}

#[tokio::test]
async fn sigterm_ends_the_stream_and_a_reconnect_elsewhere_misses_nothing() {
    let rabbit = Rabbit::new().await;
    let first = rabbit.gateway(1, &[]).await;
    let second = rabbit.gateway(2, &[]).await;
    let query = "/sse?tours=tour_paris,tour_rome";
    let mut client = connect(first.addr, query, &[]).await.expect("stream");
    client.next_of("connection").await;
    assert_eq!(
        metric(
            &first,
            r#"tourcast_connections_open{encoding="json",transport="sse"}"#
        )
        .await,
        Some(1.0)
    );
    rabbit
        .publish_json(
            "tour.availability.updated",
            &availability("e1", "tour_paris", 9),
        )
        .await;
    let seen = client.next_of("tour.availability.updated").await;
    let last = client.last_id.expect("an id");
    assert_eq!(Some(last), seen.id);

    first.terminate();
    client.until_end(Duration::from_secs(10)).await;
    assert!(
        client.comments.iter().any(|c| c == "closing: shutdown"),
        "{:?}",
        client.comments
    );
    // Published while the client is between instances.
    for (i, tour) in ["tour_rome", "tour_paris", "tour_rome"].iter().enumerate() {
        let id = format!("e{}", i + 2);
        rabbit
            .publish_json("tour.availability.updated", &availability(&id, tour, 8))
            .await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut again = connect(second.addr, query, &[("Last-Event-ID", &last.to_string())])
        .await
        .expect("stream on the second instance");
    again.next_of("connection").await;
    let mut ids = Vec::new();
    while ids.len() < 3 {
        let event = again.next().await;
        if event.event == "tour.availability.updated" {
            ids.push(event.data["eventId"].as_str().map(str::to_string));
        }
    }
    ids.sort();
    assert_eq!(
        ids,
        [Some("e2".into()), Some("e3".into()), Some("e4".into())]
    );
    assert!(
        again
            .next_within(Duration::from_millis(300))
            .await
            .is_none()
    );
    assert_eq!(
        metric(
            &second,
            r#"tourcast_connections_open{encoding="json",transport="sse"}"#
        )
        .await,
        Some(1.0)
    );
    let mut first = first;
    let _ = tokio::time::timeout(Duration::from_secs(10), first.child.wait()).await;
    stop(second).await;
    rabbit.cleanup().await;
}
