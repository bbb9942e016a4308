//! `tourcast publish` through a broker restart (`rabbitmqctl stop_app` /
//! `start_app`): every event fed to it is in the stream, once at least and
//! in order, it exits 0, and the gateway ends up with each tour's last event.
//!
//! Outside testing found a publisher whose events RabbitMQ *confirmed* in the
//! seconds after a restart, while the stream was not available yet: mandatory
//! publishes came back unroutable and were lost. This test replays that: a
//! producer feeds stdin at 50 lines/s, the broker restarts in the middle, and
//! the stream is then read from its first offset. The unroutable window after
//! a restart is short (0.3 s measured here) and a reconnecting publisher hits
//! it only sometimes, so the gateway, which binds the stream, also starts
//! only after the first lines: those certainly come back unroutable first.
//!
//! It restarts the node that every test shares, so it lives in a file of its
//! own (cargo runs test binaries one at a time), has a single test, takes
//! `/tmp/tourcast-broker.lock` around the restart, and brings the broker
//! back even when it fails.

mod common;
#[path = "common/rabbit.rs"]
mod rabbit;

use std::collections::{HashMap, HashSet};
use std::process::Stdio;
use std::time::Duration;

use futures_util::StreamExt as _;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicQosOptions, ExchangeDeleteOptions,
    QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{Connection, ConnectionProperties};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::time::{Instant, timeout};

// `rabbit` reaches the gateway helpers through the crate root.
use common::{Client, Encoding, GatewayProcess, http_get};
use rabbit::{Rabbit, amqp_url, wait_ready};

/// Serializes broker restarts between test runs on this machine.
const LOCK: &str = "/tmp/tourcast-broker.lock";
/// Events the producer writes, and how fast.
const EVENTS: usize = 300;
const LINE_INTERVAL: Duration = Duration::from_millis(20);
/// The gateway (and so the stream's binding) comes once this many lines
/// are written, the restart once this many.
const GATEWAY_AT: usize = 25;
const RESTART_AT: usize = 100;
const TOURS: usize = 5;

/// Runs `script` with `sh -c` under the broker lock; its exit status.
fn locked(script: &str) -> std::io::Result<std::process::ExitStatus> {
    std::process::Command::new("flock")
        .args(["-w", "120", LOCK, "-c", script])
        .status()
}

/// Brings the broker back when dropped, so that a failing test does not
/// leave every other test without one (`start_app` on a running node is a
/// no-op).
struct BrokerBack;

impl Drop for BrokerBack {
    fn drop(&mut self) {
        let _ =
            locked("timeout 60 rabbitmqctl -q start_app; timeout 90 rabbitmqctl -q await_startup");
    }
}

fn event_line(tag: &str, n: usize) -> (String, Value) {
    let event = json!({
        "eventId": format!("evt_restart_{tag}_{n:03}"),
        "eventType": "tour.availability.updated",
        "tourId": format!("tour_r{}", n % TOURS),
        "tourName": format!("Restart Tour {}", n % TOURS),
        "availableSeats": n % 40,
        "maxGroupSize": 40,
    });
    (format!("{event}\n"), event)
}

#[tokio::test]
async fn publish_loses_nothing_across_a_broker_restart() {
    // A restart left half done by another run finishes first.
    locked("timeout 90 rabbitmqctl -q await_startup").expect("flock and rabbitmqctl run");
    let started = Instant::now();
    // The exchange only: the gateway, started below, binds its stream.
    let rabbit = Rabbit::new().await;
    // Declared after `rabbit`, so dropped before it: the broker is back
    // before `Rabbit`'s drop deletes this test's stream and exchange.
    let broker_back = BrokerBack;

    let mut publish = tokio::process::Command::new(env!("CARGO_BIN_EXE_tourcast"))
        .args([
            "publish",
            "--rabbitmq-url",
            &amqp_url(),
            "--rabbitmq-exchange",
            &rabbit.exchange,
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("tourcast publish starts");

    // Its output, read as it comes: when the first event was reported
    // published tells whether stdin is read as a stream.
    let stdout = publish.stdout.take().expect("stdout");
    let stdout = tokio::spawn(async move {
        let mut lines = BufReader::new(stdout).lines();
        let mut first_published = None;
        let mut all = Vec::new();
        while let Ok(Some(line)) = lines.next_line().await {
            if line.starts_with("published ") && first_published.is_none() {
                first_published = Some(Instant::now());
            }
            all.push(line);
        }
        (first_published, all)
    });
    let stderr = publish.stderr.take().expect("stderr");
    let stderr = tokio::spawn(async move {
        let mut text = String::new();
        let _ = BufReader::new(stderr).read_to_string(&mut text).await;
        text
    });

    let lines: Vec<(String, Value)> = (0..EVENTS).map(|n| event_line(&rabbit.tag, n)).collect();
    let expected: Vec<String> = lines
        .iter()
        .map(|(_, event)| event["eventId"].as_str().expect("id").to_string())
        .collect();
    let mut last_seats: HashMap<String, u64> = HashMap::new();
    for (_, event) in &lines {
        last_seats.insert(
            event["tourId"].as_str().expect("tour").to_string(),
            event["availableSeats"].as_u64().expect("seats"),
        );
    }

    // The producer: one line every 20 ms, whatever the broker does. It
    // says when it has written `n` lines, and when it closed stdin.
    let mut stdin = publish.stdin.take().expect("stdin");
    let (written_tx, mut written) = tokio::sync::watch::channel(0usize);
    let producer = tokio::spawn(async move {
        let mut tick = tokio::time::interval(LINE_INTERVAL);
        for (n, (line, _)) in lines.iter().enumerate() {
            tick.tick().await;
            stdin.write_all(line.as_bytes()).await?;
            stdin.flush().await?;
            let _ = written_tx.send(n + 1);
        }
        drop(stdin);
        std::io::Result::Ok(Instant::now())
    });

    // No queue is bound yet, so the first events certainly come back
    // unroutable, as they did after the restart in the finding; the
    // gateway then declares and binds the stream.
    timeout(
        Duration::from_secs(30),
        written.wait_for(|n| *n >= GATEWAY_AT),
    )
    .await
    .expect("the producer writes its first lines in time")
    .expect("the producer runs");
    let gateway = rabbit.gateway(1, &[]).await;

    timeout(
        Duration::from_secs(30),
        written.wait_for(|n| *n >= RESTART_AT),
    )
    .await
    .expect("the producer writes in time")
    .expect("the producer runs");
    let restart = tokio::task::spawn_blocking(|| {
        locked(
            "timeout 60 rabbitmqctl -q stop_app && sleep 3 \
             && timeout 60 rabbitmqctl -q start_app && timeout 90 rabbitmqctl -q await_startup",
        )
    });
    let restart_began = started.elapsed();
    let restarted = timeout(Duration::from_secs(240), restart)
        .await
        .expect("the restart ends in time")
        .expect("the restart task runs")
        .expect("flock runs");
    assert!(restarted.success(), "rabbitmqctl restart: {restarted}");
    let restart_done = started.elapsed();

    let stdin_closed = timeout(Duration::from_secs(60), producer)
        .await
        .expect("the producer ends in time")
        .expect("the producer task runs")
        .expect("the publisher takes every line");
    let status = timeout(Duration::from_secs(120), publish.wait())
        .await
        .expect("tourcast publish exits in time")
        .expect("tourcast publish runs");
    let (first_published, stdout) = stdout.await.expect("stdout reader");
    let stdout = stdout.join("\n");
    let stderr = stderr.await.expect("stderr reader");
    eprintln!(
        "restart from {restart_began:?} to {restart_done:?}, publish exited after {:?}; \
         publish stderr:\n{stderr}",
        started.elapsed()
    );
    assert!(
        status.success(),
        "tourcast publish failed ({status}): {stderr}"
    );
    assert!(
        first_published.is_some_and(|at| at < stdin_closed),
        "events are published as stdin brings them, not once it ends"
    );

    // It reports each event once, and only events it got confirmed; its
    // stdout is that report and nothing else (retries are told on stderr).
    assert!(
        stdout.lines().all(|line| line.starts_with("published ")),
        "stdout holds only `published` lines: {stdout}"
    );
    let reported: Vec<&str> = stdout
        .lines()
        .filter_map(|line| line.strip_prefix("published "))
        .filter_map(|line| line.split_whitespace().nth(1))
        .collect();
    let reported_set: HashSet<&str> = reported.iter().copied().collect();
    assert_eq!(
        reported.len(),
        EVENTS,
        "one `published` line each: {stdout}"
    );
    assert!(
        expected.iter().all(|id| reported_set.contains(id.as_str())),
        "every event is reported published: {stdout}"
    );

    // Every one of them is in the stream (a retry after a lost connection
    // may add a duplicate, which the gateway drops by eventId), and their
    // first copies are in the order they were written.
    let connection = Connection::connect(&amqp_url(), ConnectionProperties::default())
        .await
        .expect("the broker is back");
    let channel = connection.create_channel().await.expect("channel");
    channel
        .basic_qos(500, BasicQosOptions::default())
        .await
        .expect("qos");
    let mut arguments = FieldTable::default();
    arguments.insert(
        "x-stream-offset".into(),
        AMQPValue::LongString(LongString::from("first")),
    );
    let mut consumer = channel
        .basic_consume(
            rabbit.stream.as_str().into(),
            "broker-restart-check".into(),
            BasicConsumeOptions::default(),
            arguments,
        )
        .await
        .expect("consume the stream");
    let wanted: HashSet<&str> = expected.iter().map(String::as_str).collect();
    let mut seen: Vec<String> = Vec::new();
    let mut copies = 0usize;
    let deadline = Instant::now() + Duration::from_secs(30);
    while seen.len() < EVENTS {
        let Ok(Some(delivery)) = tokio::time::timeout_at(deadline, consumer.next()).await else {
            break;
        };
        let delivery = delivery.expect("a delivery");
        let event: Value = serde_json::from_slice(&delivery.data).expect("JSON in the stream");
        let id = event["eventId"].as_str().unwrap_or_default().to_string();
        copies += 1;
        if wanted.contains(id.as_str()) && !seen.contains(&id) {
            seen.push(id);
        }
        delivery.ack(BasicAckOptions::default()).await.expect("ack");
    }
    let missing: Vec<&String> = expected.iter().filter(|id| !seen.contains(id)).collect();
    assert!(
        missing.is_empty(),
        "{} of {EVENTS} published events are not in the stream: {missing:?}; publish stderr: {stderr}",
        missing.len()
    );
    assert_eq!(seen, expected, "the stream holds the events in order");
    eprintln!(
        "stream: {copies} messages for {EVENTS} events ({} duplicates from retries)",
        copies.saturating_sub(EVENTS)
    );

    // The gateway, reconnected by itself, serves each tour's last event.
    wait_ready(&gateway).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut client = Client::connect(&gateway.ws_url(), Encoding::Json).await;
        client
            .send(json!({"type": "subscribe", "tourId": "*"}))
            .await;
        let snapshot = client.recv_type("snapshot").await;
        let held: HashMap<String, u64> = snapshot["tours"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|tour| {
                Some((
                    tour["tourId"].as_str()?.to_string(),
                    tour["availableSeats"].as_u64()?,
                ))
            })
            .collect();
        client.close().await;
        if held == last_seats {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the gateway's snapshot {held:?} has each tour's last event {last_seats:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let mut gateway = gateway;
    gateway.terminate();
    let _ = timeout(Duration::from_secs(10), gateway.child.wait()).await;
    // `rabbit`'s own connection died with the restart: delete this test's
    // stream and exchange on the connection that read the stream.
    let _ = channel
        .queue_delete(rabbit.stream.as_str().into(), QueueDeleteOptions::default())
        .await;
    let _ = channel
        .exchange_delete(
            rabbit.exchange.as_str().into(),
            ExchangeDeleteOptions::default(),
        )
        .await;
    let _ = connection.close(200, "test done".into()).await;
    drop(broker_back);
    rabbit.cleanup().await;
    eprintln!("broker restart test took {:?}", started.elapsed());
}
