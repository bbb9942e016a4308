//! Viewer counts on tours, end to end: two real `tourcast` processes on one
//! real broker (127.0.0.1:5672, a fresh exchange and stream per test), real
//! WebSocket clients.
//!
//! - `subscribe {tourId, viewers:true}` gets the count at once, after
//!   `subscribed` and the snapshot;
//! - the count follows named subscribers on both instances (not `"*"`, not
//!   other tours), and comes at most once per `STATS_INTERVAL`;
//! - `viewers` with `"*"` is `invalid_message` at `/viewers`;
//! - unsubscribing from the tour stops the counts.

mod common;
#[path = "common/rabbit.rs"]
mod rabbit;

use std::time::Duration;

use serde_json::{Value, json};
use tokio::time::Instant;

#[allow(unused_imports)]
use common::{Client, Encoding, GatewayProcess, Received, http_get};
use rabbit::Rabbit;

const INTERVAL: Duration = Duration::from_secs(1);

async fn two_gateways(rabbit: &Rabbit) -> (GatewayProcess, GatewayProcess) {
    let extra = ["--stats-interval", "1s"];
    let a = rabbit
        .gateway_with_env(1, &extra, &[("INSTANCE_ID", "gw-a")])
        .await;
    let b = rabbit
        .gateway_with_env(2, &extra, &[("INSTANCE_ID", "gw-b")])
        .await;
    (a, b)
}

async fn client(gateway: &GatewayProcess) -> Client {
    Client::connect(&gateway.ws_url(), Encoding::Json).await
}

/// Subscribes to `tour` by name (answers read up to the snapshot).
async fn subscribe(client: &mut Client, tour: &str, viewers: bool) {
    let mut message = json!({"type": "subscribe", "tourId": tour, "requestId": "s"});
    if viewers {
        message["viewers"] = json!(true);
    }
    client.send(message).await;
    let ack = client.recv().await;
    assert_eq!(ack["type"], "subscribed", "{ack}");
    let snapshot = client.recv().await;
    assert_eq!(snapshot["type"], "snapshot", "{snapshot}");
}

/// The next `viewers` within `limit` (other messages skipped), with when it came.
async fn next_viewers(client: &mut Client, limit: Duration) -> Option<(Value, Instant)> {
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, client.next()).await {
            Ok(Received::Message(message)) if message["type"] == "viewers" => {
                return Some((message, Instant::now()));
            }
            Ok(Received::Message(_)) => continue,
            Ok(other) => panic!("connection ended waiting for viewers: {other:?}"),
            Err(_) => return None,
        }
    }
}

/// Reads `viewers` until one says `count` (within `limit`); returns every
/// one read, with times.
async fn until_count(client: &mut Client, count: u64, limit: Duration) -> Vec<(Value, Instant)> {
    let deadline = Instant::now() + limit;
    let mut seen = Vec::new();
    while let Some((message, at)) =
        next_viewers(client, deadline.saturating_duration_since(Instant::now())).await
    {
        let done = message["count"] == count;
        seen.push((message, at));
        if done {
            return seen;
        }
    }
    panic!("no viewers count {count} within {limit:?}; saw {seen:?}");
}

#[tokio::test]
async fn viewer_counts_follow_named_subscribers_on_every_instance() {
    let rabbit = Rabbit::new().await;
    let (a, b) = two_gateways(&rabbit).await;

    let mut watcher = client(&a).await;
    let asked = Instant::now();
    subscribe(&mut watcher, "tour_paris", true).await;
    // At once, right behind the snapshot: the watcher is its own viewer.
    let first = tokio::time::timeout(Duration::from_millis(500), watcher.recv())
        .await
        .expect("viewers comes at once");
    assert_eq!(first["type"], "viewers", "{first}");
    assert_eq!(first["tourId"], "tour_paris");
    assert_eq!(first["count"], 1, "{first}");
    assert!(first["timestamp"].is_string());
    assert!(asked.elapsed() < INTERVAL);

    // A named subscriber on the other instance counts; "*" and another
    // tour's subscribers do not.
    let mut on_b = client(&b).await;
    subscribe(&mut on_b, "tour_paris", false).await;
    let mut star = client(&b).await;
    subscribe(&mut star, "*", false).await;
    let mut rome = client(&a).await;
    subscribe(&mut rome, "tour_rome", false).await;
    let mut seen = until_count(&mut watcher, 2, INTERVAL * 5).await;
    assert!(
        seen.iter().all(|(m, _)| m["count"] == 2),
        "only the named subscriber on b counts: {seen:?}"
    );

    // It leaves: back to 1.
    on_b.close().await;
    seen.extend(until_count(&mut watcher, 1, INTERVAL * 5).await);
    // Nothing changes any more: nothing more is sent.
    assert!(
        next_viewers(&mut watcher, INTERVAL * 3).await.is_none(),
        "no count without a change"
    );
    // Counts after the first come on change, at most once per interval.
    for pair in seen.windows(2) {
        let gap = pair[1].1 - pair[0].1;
        assert!(
            gap >= INTERVAL - Duration::from_millis(150),
            "two viewers {gap:?} apart: {seen:?}"
        );
    }
    drop((a, b));
    rabbit.cleanup().await;
}

#[tokio::test]
async fn a_burst_of_subscribers_gives_at_most_one_count_per_interval() {
    let rabbit = Rabbit::new().await;
    let (a, b) = two_gateways(&rabbit).await;
    let mut watcher = client(&a).await;
    subscribe(&mut watcher, "tour_lyon", true).await;
    let first = watcher.recv().await;
    assert_eq!(first["count"], 1, "{first}");

    // Ten subscribers arrive over two seconds or so, alternating instances.
    let started = Instant::now();
    let mut crowd = Vec::new();
    let mut counts = Vec::new();
    for n in 0..10 {
        let gateway = if n % 2 == 0 { &a } else { &b };
        let mut viewer = client(gateway).await;
        subscribe(&mut viewer, "tour_lyon", false).await;
        crowd.push(viewer);
        if let Some(seen) = next_viewers(&mut watcher, Duration::from_millis(200)).await {
            counts.push(seen);
        }
    }
    counts.extend(until_count(&mut watcher, 11, INTERVAL * 5).await);
    for pair in counts.windows(2) {
        let gap = pair[1].1 - pair[0].1;
        assert!(
            gap >= INTERVAL - Duration::from_millis(150),
            "two viewers {gap:?} apart: {counts:?}"
        );
    }
    let values: Vec<u64> = counts
        .iter()
        .map(|(m, _)| m["count"].as_u64().expect("count"))
        .collect();
    assert!(
        values.windows(2).all(|w| w[0] <= w[1]),
        "the count only grows: {values:?}"
    );
    // Fewer counts than arrivals: one per interval at most (plus one for
    // the interval the burst started in).
    let spread = counts.last().expect("a count").1 - started;
    let most = spread.as_secs_f64() / INTERVAL.as_secs_f64() + 1.0;
    assert!(
        values.len() as f64 <= most && values.len() < 10,
        "ten arrivals over {spread:?} gave {} counts: {values:?}",
        values.len()
    );
    drop((a, b));
    rabbit.cleanup().await;
}

#[tokio::test]
async fn viewers_with_star_is_invalid_and_unsubscribing_stops_the_counts() {
    let rabbit = Rabbit::new().await;
    let a = rabbit
        .gateway_with_env(1, &["--stats-interval", "1s"], &[("INSTANCE_ID", "gw-a")])
        .await;
    let mut watcher = client(&a).await;
    watcher
        .send(json!({"type": "subscribe", "tourId": "*", "viewers": true, "requestId": "v"}))
        .await;
    let refusal = watcher.recv().await;
    assert_eq!(refusal["type"], "error", "{refusal}");
    assert_eq!(refusal["code"], "invalid_message", "{refusal}");
    assert_eq!(refusal["path"], "/viewers", "{refusal}");
    assert_eq!(refusal["requestId"], "v", "{refusal}");

    subscribe(&mut watcher, "tour_paris", true).await;
    assert_eq!(watcher.recv().await["count"], 1);
    watcher
        .send(json!({"type": "unsubscribe", "tourId": "tour_paris"}))
        .await;
    assert_eq!(
        watcher.recv_type("unsubscribed").await["tourId"],
        "tour_paris"
    );
    let mut other = client(&a).await;
    subscribe(&mut other, "tour_paris", false).await;
    assert!(
        next_viewers(&mut watcher, INTERVAL * 3).await.is_none(),
        "unsubscribed: no more counts"
    );

    // Subscribing again without `viewers`: still none; with it, at once.
    subscribe(&mut watcher, "tour_paris", false).await;
    assert!(next_viewers(&mut watcher, INTERVAL * 2).await.is_none());
    subscribe(&mut watcher, "tour_paris", true).await;
    let again = watcher.recv().await;
    assert_eq!(again["type"], "viewers", "{again}");
    assert_eq!(again["count"], 2, "{again}");
    drop(a);
    rabbit.cleanup().await;
}
