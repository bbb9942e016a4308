//! Checkpoints end to end: the real `tourcast` binary on a real broker.
//! A gateway started after a checkpoint must serve exactly what a full
//! replay serves (state and recovery answers), a corrupt checkpoint must
//! never be believed, instances checkpointing together must be harmless,
//! and a client must miss nothing across a checkpoint.

mod common;
#[path = "common/rabbit.rs"]
mod rabbit;

use std::time::Duration;

use serde_json::{Value, json};

#[allow(unused_imports)]
use common::{Client, Encoding, GatewayProcess, http_get};
use rabbit::{Rabbit, metric};

const UPDATED: &str = "tour.availability.updated";
const CONFIRMED: &str = "notification.booking.confirmed";

/// Publishes `count` availability events over `tours` tours (every fifth
/// a redelivery of the one before), starting at event number `from`.
async fn publish_events(rabbit: &Rabbit, from: usize, count: usize, tours: usize) {
    let events: Vec<Value> = (from..from + count)
        .map(|n| {
            let id = if n % 5 == 4 { n - 1 } else { n };
            json!({
                "eventId": format!("evt_{id}"),
                "tourId": format!("tour_{}", n % tours),
                "tourName": format!("Tour {}", n % tours),
                "availableSeats": (n * 7) % 30,
                "timestamp": "2026-11-23T10:30:00.000Z",
            })
        })
        .collect();
    rabbit.publish_json_batch(UPDATED, &events).await;
}

async fn publish_notifications(rabbit: &Rabbit, from: usize, count: usize) {
    let events: Vec<Value> = (from..from + count)
        .map(|n| {
            json!({
                "eventId": format!("evt_n{n}"),
                "userId": if n % 2 == 0 { "alice" } else { "bob" },
                "bookingId": format!("b{n}"),
                "tourId": "tour_1",
                "tourName": "Tour 1",
                "seats": 2,
                "message": "ok",
                "timestamp": "2026-11-23T10:30:00.000Z",
            })
        })
        .collect();
    rabbit.publish_json_batch(CONFIRMED, &events).await;
}

/// The `*` snapshot's tours (their `updatedAt` included: events carry a
/// timestamp), and the connection's epoch.
async fn everything(gateway: &GatewayProcess) -> (Vec<Value>, String) {
    // Any valid token, for gateways with JWT on (ignored when it is off).
    let url = format!("{}?token={}", gateway.ws_url(), token("reader"));
    let mut client = Client::connect(&url, Encoding::Json).await;
    let epoch = client.greeting["epoch"]
        .as_str()
        .expect("epoch")
        .to_string();
    client
        .send(json!({"type": "subscribe", "tourId": "*"}))
        .await;
    let snapshot = client.recv_type("snapshot").await;
    let tours = snapshot["tours"].as_array().expect("tours").clone();
    (tours, epoch)
}

/// What a client resubscribing with `since` gets, up to a quiet moment:
/// the acknowledgement and every message after it.
async fn recovery(gateway: &GatewayProcess, token: Option<&str>, subscribe: Value) -> Vec<Value> {
    let url = match token {
        Some(token) => format!("{}?token={token}", gateway.ws_url()),
        None => gateway.ws_url(),
    };
    let mut client = Client::connect(&url, Encoding::Json).await;
    client.send(subscribe).await;
    let mut received = vec![client.recv_type("subscribed").await];
    loop {
        match tokio::time::timeout(Duration::from_millis(700), client.recv()).await {
            Ok(mut message) => {
                // A snapshot's own timestamp is when it was taken.
                if message["type"] == "snapshot" {
                    message.as_object_mut().map(|o| o.remove("timestamp"));
                }
                received.push(message);
            }
            Err(_) => return received,
        }
    }
}

fn token(sub: &str) -> String {
    use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
    let claims = json!({"sub": sub, "exp": chrono::Utc::now().timestamp() + 600, "tours": "*"});
    encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(b"cp-secret"),
    )
    .expect("signs")
}

async fn stop(mut gateway: GatewayProcess) {
    gateway.terminate();
    let _ = tokio::time::timeout(Duration::from_secs(15), gateway.child.wait()).await;
}

/// Waits until `gateway` has written `written` checkpoints.
async fn wait_for_checkpoint(gateway: &GatewayProcess, written: f64) {
    for _ in 0..100 {
        let count = metric(gateway, "tourcast_checkpoints_total{outcome=\"written\"}").await;
        if count.unwrap_or(0.0) >= written {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no checkpoint written");
}

#[tokio::test]
async fn a_restart_after_a_checkpoint_serves_what_a_full_replay_serves() {
    let rabbit = Rabbit::new().await;
    let writer = rabbit
        .gateway(
            1,
            &["--jwt-secret", "cp-secret", "--checkpoint-interval", "1s"],
        )
        .await;
    publish_events(&rabbit, 0, 400, 40).await;
    publish_notifications(&rabbit, 0, 30).await;
    wait_for_checkpoint(&writer, 1.0).await;
    stop(writer).await;
    // Events after the checkpoint: the restored gateway replays only these.
    publish_events(&rabbit, 400, 50, 40).await;
    publish_notifications(&rabbit, 30, 6).await;

    let restored = rabbit
        .gateway(
            2,
            &["--jwt-secret", "cp-secret", "--checkpoint-interval", "0s"],
        )
        .await;
    let replayed = rabbit
        .gateway(
            3,
            &[
                "--jwt-secret",
                "cp-secret",
                "--checkpoint-interval",
                "0s",
                "--ignore-checkpoints",
            ],
        )
        .await;
    assert_eq!(
        metric(&restored, "tourcast_checkpoints_total{outcome=\"loaded\"}").await,
        Some(1.0)
    );
    assert!(
        !restored
            .log_lines("restored the state from a checkpoint")
            .is_empty()
    );
    // The restored gateway read a fraction of the stream.
    let read = |g| async move {
        metric(g, "tourcast_rabbitmq_deliveries_total")
            .await
            .unwrap_or(0.0)
    };
    let (read_restored, read_replayed) = (read(&restored).await, read(&replayed).await);
    assert_eq!(read_replayed, 486.0, "the full replay reads every event");
    assert!(
        read_restored <= 60.0,
        "only what followed the checkpoint: {read_restored}"
    );

    // The same state…
    let (restored_tours, epoch) = everything(&restored).await;
    let (replayed_tours, replayed_epoch) = everything(&replayed).await;
    assert_eq!(epoch, replayed_epoch);
    // (Every fifth event is a duplicate: tours 4, 9, 14… only ever get those.)
    assert_eq!(restored_tours.len(), 32);
    assert_eq!(restored_tours, replayed_tours);
    // …and the same answers to `since`, in memory and past it, tours and
    // notifications alike.
    let last: u64 = restored_tours
        .iter()
        .map(|t| t["seq"].as_u64().unwrap())
        .max()
        .unwrap();
    for since in [0, 10, 200, 395, 430, last - 3, last] {
        for subscribe in [
            json!({"type": "subscribe", "tourId": "tour_7", "since": {"epoch": epoch, "seq": since}}),
            json!({"type": "subscribe", "tourId": "*", "since": {"epoch": epoch, "seq": since}}),
        ] {
            let from_restored = recovery(&restored, Some(&token("x")), subscribe.clone()).await;
            let from_replayed = recovery(&replayed, Some(&token("x")), subscribe.clone()).await;
            assert_eq!(from_restored, from_replayed, "{subscribe}");
        }
        let notifications = json!({"type": "subscribe", "channel": "notifications", "since": {"epoch": epoch, "seq": since}});
        let from_restored = recovery(&restored, Some(&token("alice")), notifications.clone()).await;
        let from_replayed = recovery(&replayed, Some(&token("alice")), notifications.clone()).await;
        assert_eq!(from_restored, from_replayed, "{notifications}");
    }
    // The duplicate filter came with the checkpoint: a redelivery of an
    // event applied before it is dropped, not applied again.
    let outcome = |gateway, outcome: &'static str| async move {
        let sample = format!("tourcast_events_total{{outcome=\"{outcome}\"}}");
        metric(gateway, &sample).await.unwrap_or(0.0)
    };
    let applied = outcome(&restored, "applied").await;
    let duplicates = outcome(&restored, "duplicate").await;
    rabbit
        .publish_json(
            UPDATED,
            &json!({"eventId": "evt_3", "tourId": "tour_3", "availableSeats": 29}),
        )
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(outcome(&restored, "applied").await, applied);
    assert_eq!(outcome(&restored, "duplicate").await, duplicates + 1.0);
    assert_eq!(everything(&restored).await, everything(&replayed).await);

    stop(restored).await;
    stop(replayed).await;
    rabbit.cleanup().await;
}

#[tokio::test]
async fn a_corrupt_truncated_or_foreign_checkpoint_is_skipped_for_the_previous_one() {
    let rabbit = Rabbit::new().await;
    let writer = rabbit.gateway(1, &["--checkpoint-interval", "1s"]).await;
    publish_events(&rabbit, 0, 200, 20).await;
    wait_for_checkpoint(&writer, 1.0).await;
    stop(writer).await;
    publish_events(&rabbit, 200, 20, 20).await;

    // Newer than the good one: garbage, a truncated copy of a real
    // envelope, and one of a format this build does not know.
    let checkpoints = rabbit.checkpoint_stream();
    rabbit
        .publish_to_queue(&checkpoints, b"not a checkpoint")
        .await;
    let real = {
        use prost::Message as _;
        tourcast::protocol::v1::CheckpointEnvelope {
            format: 1,
            body: vec![1, 2, 3, 4, 5, 6, 7, 8],
            sha256: vec![0; 32],
        }
        .encode_to_vec()
    };
    rabbit
        .publish_to_queue(&checkpoints, &real[..real.len() / 2])
        .await;
    let foreign = {
        use prost::Message as _;
        tourcast::protocol::v1::CheckpointEnvelope {
            format: 99,
            body: vec![],
            sha256: vec![],
        }
        .encode_to_vec()
    };
    rabbit.publish_to_queue(&checkpoints, &foreign).await;

    let restored = rabbit.gateway(2, &["--checkpoint-interval", "0s"]).await;
    let replayed = rabbit
        .gateway(3, &["--checkpoint-interval", "0s", "--ignore-checkpoints"])
        .await;
    assert_eq!(
        metric(&restored, "tourcast_checkpoints_total{outcome=\"loaded\"}").await,
        Some(1.0),
        "the good one behind them was used: {:#?}",
        restored.log_lines("checkpoint")
    );
    assert_eq!(
        metric(&restored, "tourcast_checkpoints_total{outcome=\"corrupt\"}").await,
        Some(2.0)
    );
    assert_eq!(
        metric(
            &restored,
            "tourcast_checkpoints_total{outcome=\"incompatible\"}"
        )
        .await,
        Some(1.0)
    );
    assert_eq!(restored.log_lines("skipped a checkpoint").len(), 3);
    assert_eq!(everything(&restored).await, everything(&replayed).await);
    stop(restored).await;

    // Nothing usable at all (four bad ones in a row): a full replay, and
    // still the same state.
    for _ in 0..4 {
        rabbit
            .publish_to_queue(&checkpoints, b"\x0a\x05broken")
            .await;
    }
    let fallback = rabbit.gateway(4, &["--checkpoint-interval", "0s"]).await;
    assert_eq!(
        metric(&fallback, "tourcast_checkpoints_total{outcome=\"loaded\"}").await,
        None
    );
    assert_eq!(
        metric(&fallback, "tourcast_rabbitmq_deliveries_total").await,
        Some(220.0),
        "a full replay"
    );
    assert_eq!(everything(&fallback).await, everything(&replayed).await);
    stop(fallback).await;

    stop(replayed).await;
    rabbit.cleanup().await;
}

#[tokio::test]
async fn two_instances_checkpointing_at_once_are_harmless_and_a_client_misses_nothing_across() {
    let rabbit = Rabbit::new().await;
    let fast = ["--checkpoint-interval", "300ms"];
    let first = rabbit.gateway(1, &fast).await;
    let second = rabbit.gateway(2, &fast).await;
    let mut watcher = Client::connect(&first.ws_url(), Encoding::Proto).await;
    watcher
        .send(json!({"type": "subscribe", "tourId": "*"}))
        .await;
    watcher.recv_type("subscribed").await;
    let snapshot = watcher.recv().await;
    assert_eq!(snapshot["type"], "snapshot");

    // Events keep coming while both write checkpoints under them.
    for round in 0..10 {
        publish_events(&rabbit, round * 30, 30, 15).await;
        tokio::time::sleep(Duration::from_millis(120)).await;
    }
    // Every applied event (each fifth is a duplicate, dropped) arrives once,
    // in order, across however many checkpoints were taken meanwhile.
    let mut seqs = Vec::new();
    for _ in 0..240 {
        let event = watcher.recv().await;
        assert_eq!(event["type"], UPDATED, "{event}");
        seqs.push(event["seq"].as_u64().expect("seq"));
    }
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "in order");
    watcher.expect_silence(Duration::from_millis(500)).await;
    for gateway in [&first, &second] {
        let written = metric(gateway, "tourcast_checkpoints_total{outcome=\"written\"}").await;
        assert!(written.unwrap_or(0.0) >= 2.0, "{written:?}");
    }

    // A third instance starts from whichever checkpoint is newest.
    let third = rabbit.gateway(3, &["--checkpoint-interval", "0s"]).await;
    assert_eq!(
        metric(&third, "tourcast_checkpoints_total{outcome=\"loaded\"}").await,
        Some(1.0)
    );
    let state = everything(&first).await;
    assert_eq!(everything(&second).await, state);
    assert_eq!(everything(&third).await, state);

    // The watcher reconnects to it with the seq it stopped at in the middle
    // of the run: it gets exactly what followed.
    let middle = seqs[100];
    let subscribe =
        json!({"type": "subscribe", "tourId": "*", "since": {"epoch": state.1, "seq": middle}});
    let answer = recovery(&third, None, subscribe).await;
    assert_eq!(answer[0]["recovered"], true, "{}", answer[0]);
    let replayed: Vec<u64> = answer[1..]
        .iter()
        .map(|m| m["seq"].as_u64().expect("seq"))
        .collect();
    assert_eq!(replayed, seqs[101..].to_vec());

    stop(first).await;
    stop(second).await;
    stop(third).await;
    rabbit.cleanup().await;
}

#[tokio::test]
async fn a_checkpoint_of_a_stream_recreated_under_the_same_name_is_not_believed() {
    let rabbit = Rabbit::new().await;
    let writer = rabbit.gateway(1, &["--checkpoint-interval", "1s"]).await;
    publish_events(&rabbit, 0, 100, 10).await;
    wait_for_checkpoint(&writer, 1.0).await;
    stop(writer).await;

    // The stream is deleted and recreated (same name, same epoch), and grows
    // past the checkpoint's position with other events.
    rabbit.delete_stream().await;
    let declarer = rabbit
        .gateway(2, &["--checkpoint-interval", "0s", "--ignore-checkpoints"])
        .await;
    stop(declarer).await;
    publish_events(&rabbit, 1000, 150, 7).await;

    let restarted = rabbit.gateway(3, &["--checkpoint-interval", "0s"]).await;
    let fresh = rabbit
        .gateway(4, &["--checkpoint-interval", "0s", "--ignore-checkpoints"])
        .await;
    assert_eq!(
        metric(&restarted, "tourcast_checkpoints_total{outcome=\"loaded\"}").await,
        None,
        "{:#?}",
        restarted.log_lines("checkpoint")
    );
    assert!(
        metric(&restarted, "tourcast_checkpoints_total{outcome=\"gone\"}")
            .await
            .unwrap_or(0.0)
            >= 1.0
    );
    // Only the new stream's tours: nothing of the old one survives.
    let (tours, _) = everything(&restarted).await;
    assert!(
        tours
            .iter()
            .all(|t| t["tourId"].as_str().unwrap() < "tour_7")
    );
    assert_eq!(everything(&restarted).await, everything(&fresh).await);
    stop(restarted).await;
    stop(fresh).await;
    rabbit.cleanup().await;
}
