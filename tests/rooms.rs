//! Rooms end to end: the real `tourcast` binary, two instances on one real
//! broker (127.0.0.1:5672), real WebSocket clients with real tokens. Each
//! test has its own exchange and stream.
//!
//! - two users on two instances chat: every message reaches every member
//!   once, in stream order, with the same `seq` everywhere, `from` being
//!   the token's `sub`, and each publisher gets `published` with that `seq`;
//! - a late joiner gets the recent history; a rejoin with `since` on the
//!   other instance gets exactly what it missed (from memory, or read back
//!   from the stream once memory lost it);
//! - a backend post through RabbitMQ arrives with its `from`; poison room
//!   events are counted and skipped;
//! - who may: the `rooms` claim, `--rooms-open`, publish only after join;
//!   the schema refuses a forged `from` and an empty text;
//! - limits: rooms and channels per connection, the publish bucket;
//! - a publish the broker does not take (unroutable, broker gone) is
//!   answered `unavailable` and delivered to nobody.

mod common;
#[path = "common/rabbit.rs"]
mod rabbit;

use std::time::Duration;

use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::{Value, json};

#[allow(unused_imports)]
use common::{Client, Encoding, GatewayProcess, Received, http_get};
use rabbit::{BrokerProxy, Rabbit, metric};

const SECRET: &str = "rooms-test-secret";
const ROOM: &str = "support_42";

fn token(sub: &str, rooms: Value) -> String {
    let exp = chrono::Utc::now().timestamp() + 600;
    let claims = json!({"sub": sub, "exp": exp, "tours": "*", "rooms": rooms});
    encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .expect("signs")
}

async fn connect(gateway: &GatewayProcess, sub: &str, encoding: Encoding) -> Member {
    let url = format!("{}?token={}", gateway.ws_url(), token(sub, json!([ROOM])));
    Member::new(Client::connect(&url, encoding).await)
}

/// Joins `room` (with `since`), returns `joined`.
async fn join(client: &mut Member, room: &str, since: Option<(&str, u64)>) -> Value {
    let mut message = json!({"type": "join", "room": room, "requestId": "j"});
    if let Some((epoch, seq)) = since {
        message["since"] = json!({"epoch": epoch, "seq": seq});
    }
    client.send(message).await;
    let joined = client.recv_type("joined").await;
    assert_eq!(joined["room"], room, "{joined}");
    assert_eq!(joined["requestId"], "j", "{joined}");
    assert!(joined["seq"].is_u64(), "{joined}");
    joined
}

/// A client in a room: what it read while waiting for something else
/// (room messages before its `published`) is kept for [`Member::messages`].
struct Member {
    client: Client,
    seen: std::collections::VecDeque<Value>,
}

impl std::ops::Deref for Member {
    type Target = Client;
    fn deref(&self) -> &Client {
        &self.client
    }
}

impl std::ops::DerefMut for Member {
    fn deref_mut(&mut self) -> &mut Client {
        &mut self.client
    }
}

impl Member {
    fn new(client: Client) -> Self {
        Member {
            client,
            seen: Default::default(),
        }
    }

    /// Publishes `text`; returns `published`, or the `error` answering it.
    async fn publish(&mut self, text: &str, request_id: &str) -> Value {
        self.client
            .send(json!({"type": "publish", "room": ROOM, "text": text, "requestId": request_id}))
            .await;
        loop {
            let reply = self.client.recv().await;
            match reply["type"].as_str() {
                Some("published") | Some("error") => {
                    assert_eq!(reply["requestId"], request_id, "{reply}");
                    return reply;
                }
                Some("room.message") => self.seen.push_back(reply),
                Some("presence") => {}
                _ => panic!("expected published, got {reply}"),
            }
        }
    }

    /// The next `count` room messages.
    async fn messages(&mut self, count: usize) -> Vec<Value> {
        let mut received: Vec<Value> = Vec::new();
        while received.len() < count {
            if let Some(message) = self.seen.pop_front() {
                received.push(message);
                continue;
            }
            let message = self.client.recv().await;
            match message["type"].as_str() {
                Some("room.message") => received.push(message),
                Some("published") | Some("presence") => {}
                _ => panic!("expected room.message, got {message}"),
            }
        }
        received
    }
}

fn texts(messages: &[Value]) -> Vec<String> {
    messages
        .iter()
        .map(|m| m["text"].as_str().unwrap_or_default().to_string())
        .collect()
}

fn seqs(messages: &[Value]) -> Vec<u64> {
    messages
        .iter()
        .map(|m| m["seq"].as_u64().expect("seq"))
        .collect()
}

async fn stop(mut gateway: GatewayProcess) {
    gateway.terminate();
    let _ = tokio::time::timeout(Duration::from_secs(10), gateway.child.wait()).await;
}

#[tokio::test]
async fn two_users_on_two_instances_chat_through_the_stream() {
    let rabbit = Rabbit::new().await;
    let auth = ["--jwt-secret", SECRET];
    let first = rabbit.gateway(1, &auth).await;
    let second = rabbit.gateway(2, &auth).await;

    let mut alice = connect(&first, "alice", Encoding::Json).await;
    let mut agent = connect(&second, "agent", Encoding::Proto).await;
    join(&mut alice, ROOM, None).await;
    join(&mut agent, ROOM, None).await;

    // Interleaved from both instances, as fast as each client can.
    let mut published = Vec::new();
    for i in 0..6 {
        let (client, who) = if i % 2 == 0 {
            (&mut alice, "alice")
        } else {
            (&mut agent, "agent")
        };
        let reply = client
            .publish(&format!("{who} {i}"), &format!("p{i}"))
            .await;
        assert_eq!(reply["room"], ROOM, "{reply}");
        published.push(reply);
    }
    let on_first = alice.messages(6).await;
    let on_second = agent.messages(6).await;
    // The same messages, in the same (stream) order, with the same numbers.
    assert_eq!(texts(&on_first), texts(&on_second));
    assert_eq!(seqs(&on_first), seqs(&on_second));
    assert!(seqs(&on_first).windows(2).all(|w| w[0] < w[1]));
    assert_eq!(
        texts(&on_first),
        [
            "alice 0", "agent 1", "alice 2", "agent 3", "alice 4", "agent 5"
        ]
    );
    for (message, reply) in on_first.iter().zip(&published) {
        // `published` says where the message landed, under its id.
        assert_eq!(message["seq"], reply["seq"], "{message} {reply}");
        assert_eq!(
            message["messageId"], reply["messageId"],
            "{message} {reply}"
        );
        // `from` is the token's sub.
        let who = message["text"]
            .as_str()
            .unwrap_or_default()
            .split(' ')
            .next();
        assert_eq!(message["from"]["userId"].as_str(), who, "{message}");
    }
    // Exactly once: nothing more arrives.
    alice.expect_silence(Duration::from_millis(300)).await;
    agent.expect_silence(Duration::from_millis(300)).await;

    // A late joiner on either instance gets the recent history, in order.
    let mut late = connect(&first, "bob", Encoding::Json).await;
    let joined = join(&mut late, ROOM, None).await;
    assert_eq!(joined["seq"], on_first[5]["seq"], "{joined}");
    let history = late.messages(6).await;
    assert_eq!(texts(&history), texts(&on_first));
    assert_eq!(seqs(&history), seqs(&on_first));

    stop(first).await;
    stop(second).await;
    rabbit.cleanup().await;
}

#[tokio::test]
async fn a_rejoin_with_since_on_the_other_instance_gets_exactly_what_it_missed() {
    let rabbit = Rabbit::new().await;
    // The second instance keeps 2 messages per room: its recovery of 4
    // missed messages reads the stream back.
    let first = rabbit.gateway(1, &["--jwt-secret", SECRET]).await;
    let second = rabbit
        .gateway(2, &["--jwt-secret", SECRET, "--room-history", "2"])
        .await;

    let mut alice = connect(&first, "alice", Encoding::Json).await;
    let mut agent = connect(&first, "agent", Encoding::Json).await;
    let joined = join(&mut alice, ROOM, None).await;
    join(&mut agent, ROOM, None).await;
    let epoch = alice.greeting["epoch"].as_str().expect("epoch").to_string();
    agent.publish("before", "b").await;
    let before = alice.messages(1).await;
    let held = before[0]["seq"].as_u64().expect("seq");
    assert!(held > joined["seq"].as_u64().unwrap_or_default());
    alice.client.close().await;

    for i in 0..4 {
        agent
            .publish(&format!("missed {i}"), &format!("m{i}"))
            .await;
    }
    let sent = agent.messages(5).await;
    let missed: Vec<Value> = sent[1..].to_vec();

    // From memory (first instance) and from the stream (second): the same.
    for gateway in [&first, &second] {
        let mut back = connect(gateway, "alice", Encoding::Json).await;
        let joined = join(&mut back, ROOM, Some((&epoch, held))).await;
        assert_eq!(joined["recovered"], true, "{joined}");
        let recovered = back.messages(4).await;
        assert_eq!(texts(&recovered), texts(&missed));
        assert_eq!(seqs(&recovered), seqs(&missed));
        back.expect_silence(Duration::from_millis(300)).await;
    }
    // Another epoch is not recovered: the recent messages follow instead.
    let mut other = connect(&second, "alice", Encoding::Json).await;
    let joined = join(&mut other, ROOM, Some(("another-epoch", held))).await;
    assert_eq!(joined["recovered"], false, "{joined}");
    let recent = other.messages(2).await;
    assert_eq!(texts(&recent), ["missed 2", "missed 3"]);

    stop(first).await;
    stop(second).await;
    rabbit.cleanup().await;
}

#[tokio::test]
async fn a_backend_post_arrives_with_its_from_and_poison_is_skipped() {
    let rabbit = Rabbit::new().await;
    let gateway = rabbit.gateway(1, &["--jwt-secret", SECRET]).await;
    let mut alice = connect(&gateway, "alice", Encoding::Proto).await;
    join(&mut alice, ROOM, None).await;

    // A support desk posts with the SPEC's event, then three poison events
    // (no `from`, an empty text, a client-style `from` string), then a
    // post through `tourcast publish`.
    rabbit
        .publish_json(
            "room.message",
            &json!({"eventId": "desk-1", "room": ROOM, "from": {"userId": "support_agent_1"},
                    "text": "Bonjour ! Comment puis-je vous aider ?", "timestamp": "2026-12-05T10:00:00Z"}),
        )
        .await;
    for poison in [
        json!({"eventId": "bad-1", "room": ROOM, "text": "no sender"}),
        json!({"eventId": "bad-2", "room": ROOM, "from": {"userId": "x"}, "text": ""}),
        json!({"eventId": "bad-3", "room": ROOM, "from": "x", "text": "flat from"}),
    ] {
        rabbit.publish_json("room.message", &poison).await;
    }
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_tourcast"))
        .args(["publish", "--kind", "room-message", "--room", ROOM])
        .args(["--from", "transcript_bot", "--text", "Saved."])
        .args(["--rabbitmq-url", &rabbit::amqp_url()])
        .args(["--rabbitmq-exchange", &rabbit.exchange])
        .output()
        .expect("runs tourcast publish");
    assert!(output.status.success(), "{output:?}");

    let received = alice.messages(2).await;
    assert_eq!(received[0]["from"]["userId"], "support_agent_1");
    assert_eq!(received[0]["messageId"], "desk-1");
    assert_eq!(received[0]["timestamp"], "2026-12-05T10:00:00.000Z");
    assert_eq!(received[1]["from"]["userId"], "transcript_bot");
    assert_eq!(received[1]["text"], "Saved.");
    // The poison sits between them in the stream, skipped and counted.
    assert!(received[1]["seq"].as_u64() > received[0]["seq"].as_u64().map(|s| s + 3));
    let poison = metric(
        &gateway,
        "tourcast_rabbitmq_poison_total{reason=\"invalid\"}",
    )
    .await;
    assert_eq!(poison, Some(3.0));
    alice.expect_silence(Duration::from_millis(300)).await;

    stop(gateway).await;
    rabbit.cleanup().await;
}

#[tokio::test]
async fn who_may_join_and_publish_and_what_the_schema_refuses() {
    let rabbit = Rabbit::new().await;
    let secured = rabbit.gateway(1, &["--jwt-secret", SECRET]).await;
    let mut alice = connect(&secured, "alice", Encoding::Json).await;

    // Outside the claim.
    alice
        .send(json!({"type": "join", "room": "support_43", "requestId": "x"}))
        .await;
    let refused = alice.recv().await;
    assert_eq!(
        (
            &refused["type"],
            &refused["code"],
            &refused["path"],
            &refused["requestId"]
        ),
        (
            &json!("error"),
            &json!("forbidden"),
            &json!("/room"),
            &json!("x")
        ),
        "{refused}"
    );
    // Publishing before joining.
    alice
        .send(json!({"type": "publish", "room": ROOM, "text": "hi", "requestId": "y"}))
        .await;
    let refused = alice.recv().await;
    assert_eq!(refused["code"], "forbidden", "{refused}");
    assert_eq!(refused["path"], "/room", "{refused}");
    join(&mut alice, ROOM, None).await;
    // The schema: a forged `from`, an empty text, a text over 4,096 characters.
    for (message, path) in [
        (
            json!({"type": "publish", "room": ROOM, "text": "hi", "from": {"userId": "admin"}}),
            "/from",
        ),
        (
            json!({"type": "publish", "room": ROOM, "text": ""}),
            "/text",
        ),
        (
            json!({"type": "publish", "room": ROOM, "text": "é".repeat(4097)}),
            "/text",
        ),
    ] {
        alice.send(message).await;
        let refused = alice.recv().await;
        assert_eq!(refused["code"], "invalid_message", "{refused}");
        assert_eq!(refused["path"], path, "{refused}");
    }
    // 4,096 characters (8,192 bytes of UTF-8) is the most, and goes through.
    let long = "é".repeat(4096);
    alice
        .send(json!({"type": "publish", "room": ROOM, "text": long, "requestId": "long"}))
        .await;
    let reply = alice.recv().await;
    assert!(
        reply["type"] == "published" || reply["type"] == "room.message",
        "{reply}"
    );
    // Leave: no more messages, and publishing is refused again.
    alice
        .send(json!({"type": "leave", "room": ROOM, "requestId": "l"}))
        .await;
    let left = alice.recv_type("left").await;
    assert_eq!(
        (&left["room"], &left["requestId"]),
        (&json!(ROOM), &json!("l"))
    );

    // JWT off: rooms are closed unless --rooms-open.
    let closed = rabbit.gateway(2, &[]).await;
    let mut anonymous = Member::new(Client::connect(&closed.ws_url(), Encoding::Json).await);
    anonymous.send(json!({"type": "join", "room": ROOM})).await;
    assert_eq!(anonymous.recv().await["code"], "forbidden");
    let open = rabbit.gateway(3, &["--rooms-open"]).await;
    let mut anonymous = Member::new(Client::connect(&open.ws_url(), Encoding::Json).await);
    let client_id = anonymous.greeting["clientId"].clone();
    let joined = join(&mut anonymous, ROOM, None).await;
    assert_eq!(
        joined["members"],
        json!([{"userId": client_id}]),
        "{joined}"
    );
    anonymous.publish("anonymous hello", "a").await;
    let mine = anonymous.messages(2).await;
    // The long message first (history), then this one, from the clientId.
    assert_eq!(mine[1]["from"]["userId"], client_id, "{}", mine[1]);

    stop(secured).await;
    stop(closed).await;
    stop(open).await;
    rabbit.cleanup().await;
}

#[tokio::test]
async fn limits_on_rooms_channels_and_publishing() {
    let rabbit = Rabbit::new().await;
    let gateway = rabbit
        .gateway(
            1,
            &[
                "--rooms-open",
                "--max-rooms-per-connection",
                "2",
                "--max-channels-per-connection",
                "3",
                "--publish-rate",
                "1",
                "--publish-burst",
                "2",
            ],
        )
        .await;
    let mut client = Member::new(Client::connect(&gateway.ws_url(), Encoding::Json).await);
    join(&mut client, "a", None).await;
    join(&mut client, "b", None).await;
    client
        .send(json!({"type": "join", "room": "c", "requestId": "c"}))
        .await;
    let refused = client.recv().await;
    assert_eq!(refused["code"], "forbidden", "{refused}");
    assert_eq!(refused["path"], "/room", "{refused}");
    assert!(
        refused["message"]
            .as_str()
            .unwrap_or_default()
            .contains("at most 2")
    );
    // Rooms do not count against tours and channels, and tours are capped too.
    for tour in ["t1", "t2", "t3"] {
        client
            .send(json!({"type": "subscribe", "tourId": tour}))
            .await;
        assert_eq!(client.recv().await["type"], "subscribed");
        assert_eq!(client.recv().await["type"], "snapshot");
    }
    client
        .send(json!({"type": "subscribe", "tourId": "t4", "requestId": "t4"}))
        .await;
    let refused = client.recv().await;
    assert_eq!(refused["code"], "forbidden", "{refused}");
    assert_eq!(refused["path"], "/tourId", "{refused}");

    // The publish bucket: a burst of 2, then rate_limited; other messages
    // (a ping) are not counted against it.
    let mut outcomes = Vec::new();
    for i in 0..4 {
        client
            .send(json!({"type": "publish", "room": "a", "text": format!("m{i}"), "requestId": format!("r{i}")}))
            .await;
    }
    while outcomes.len() < 4 {
        let reply = client.recv().await;
        match reply["type"].as_str() {
            Some("published") => outcomes.push("published".to_string()),
            Some("error") => outcomes.push(reply["code"].as_str().unwrap_or_default().to_string()),
            _ => {}
        }
    }
    outcomes.sort();
    assert_eq!(
        outcomes,
        ["published", "published", "rate_limited", "rate_limited"]
    );
    client.send(json!({"type": "ping"})).await;
    assert_eq!(client.recv_type("pong").await["type"], "pong");

    stop(gateway).await;
    rabbit.cleanup().await;
}

#[tokio::test]
async fn a_publish_the_broker_does_not_take_is_unavailable_and_delivered_to_nobody() {
    let rabbit = Rabbit::new().await;
    // This stream does not bind `room.message`: the exchange routes the
    // gateway's publish nowhere, and the broker returns it.
    let unbound = rabbit
        .gateway(
            1,
            &[
                "--rooms-open",
                "--rabbitmq-binding-keys",
                "tour.availability.updated",
            ],
        )
        .await;
    let mut client = Member::new(Client::connect(&unbound.ws_url(), Encoding::Json).await);
    join(&mut client, ROOM, None).await;
    client
        .send(json!({"type": "publish", "room": ROOM, "text": "lost?", "requestId": "u"}))
        .await;
    let reply = client.recv().await;
    assert_eq!(reply["code"], "unavailable", "{reply}");
    assert_eq!(reply["requestId"], "u", "{reply}");
    assert!(
        reply["message"]
            .as_str()
            .unwrap_or_default()
            .contains("routed the message to no stream"),
        "{reply}"
    );
    client.expect_silence(Duration::from_millis(500)).await;
    stop(unbound).await;

    // The broker goes away under a running gateway: its publish is
    // unavailable; when the broker is back, publishing works again.
    let mut proxy = BrokerProxy::start().await;
    let url = proxy.url();
    let through_proxy = rabbit
        .gateway(2, &["--rooms-open", "--rabbitmq-url", &url])
        .await;
    let mut client = Member::new(Client::connect(&through_proxy.ws_url(), Encoding::Json).await);
    join(&mut client, ROOM, None).await;
    client.publish("first", "f").await;
    client.messages(1).await;
    proxy.cut();
    client
        .send(json!({"type": "publish", "room": ROOM, "text": "while down", "requestId": "d"}))
        .await;
    let reply = tokio::time::timeout(Duration::from_secs(20), client.recv())
        .await
        .expect("an answer while the broker is away");
    assert_eq!(reply["code"], "unavailable", "{reply}");
    assert_eq!(reply["requestId"], "d", "{reply}");
    proxy.restore().await;
    // The writer reconnects on the next publish (its first try may still
    // meet the dead connection).
    let mut answered = None;
    for attempt in 0..20 {
        client
            .send(json!({"type": "publish", "room": ROOM, "text": "back", "requestId": format!("again{attempt}")}))
            .await;
        let reply = client.recv().await;
        if reply["type"] == "published" {
            answered = Some(reply);
            break;
        }
        assert_eq!(reply["code"], "unavailable", "{reply}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(
        answered.is_some(),
        "publishing works again once the broker is back"
    );
    let after = client.messages(1).await;
    // "while down" never reached the stream.
    assert_eq!(texts(&after), ["back"]);

    stop(through_proxy).await;
    rabbit.cleanup().await;
}

#[tokio::test]
async fn a_room_evicted_from_memory_still_gives_its_recent_messages_from_the_stream() {
    let rabbit = Rabbit::new().await;
    // One room's history in memory: posting into a second room evicts the first.
    let gateway = rabbit
        .gateway(
            1,
            &["--rooms-open", "--max-rooms", "1", "--room-history", "3"],
        )
        .await;
    let mut poster = Member::new(Client::connect(&gateway.ws_url(), Encoding::Json).await);
    join(&mut poster, ROOM, None).await;
    for i in 0..5 {
        poster.publish(&format!("old {i}"), &format!("o{i}")).await;
    }
    let sent = poster.messages(5).await;
    rabbit
        .publish_json(
            "room.message",
            &json!({"eventId": "other-1", "room": "other_room", "from": {"userId": "bot"}, "text": "evicts"}),
        )
        .await;
    // The eviction has happened once the other room's message is applied.
    let mut watcher = Member::new(Client::connect(&gateway.ws_url(), Encoding::Json).await);
    join(&mut watcher, "other_room", None).await;
    assert_eq!(texts(&watcher.messages(1).await), ["evicts"]);

    let mut late = Member::new(Client::connect(&gateway.ws_url(), Encoding::Json).await);
    let joined = join(&mut late, ROOM, None).await;
    assert!(joined.get("recovered").is_none(), "{joined}");
    let recent = late.messages(3).await;
    assert_eq!(texts(&recent), ["old 2", "old 3", "old 4"]);
    assert_eq!(seqs(&recent), seqs(&sent[2..]));
    late.expect_silence(Duration::from_millis(300)).await;

    stop(gateway).await;
    rabbit.cleanup().await;
}

#[tokio::test]
async fn structured_data_round_trips_in_json_and_in_protobuf_across_instances() {
    let rabbit = Rabbit::new().await;
    let auth = ["--jwt-secret", SECRET];
    let first = rabbit.gateway(1, &auth).await;
    let second = rabbit.gateway(2, &auth).await;
    let mut editor = connect(&first, "alice", Encoding::Json).await;
    let mut viewer = connect(&second, "bob", Encoding::Proto).await;
    join(&mut editor, ROOM, None).await;
    join(&mut viewer, ROOM, None).await;

    // A collaborative edit from the JSON client, another from the protobuf one.
    let edit = json!({"field": "description", "value": "Sunset cruise on the Seine", "rev": 3, "tags": ["évasion", null]});
    editor
        .send(json!({"type": "publish", "room": ROOM, "text": "edited", "data": edit, "requestId": "e1"}))
        .await;
    let reply = editor.recv_type("published").await;
    assert_eq!(reply["requestId"], "e1", "{reply}");
    let proto_edit = json!({"field": "title", "value": "Paris by night"});
    viewer
        .send(json!({"type": "publish", "room": ROOM, "text": "renamed", "data": proto_edit, "requestId": "e2"}))
        .await;
    let on_first = editor.messages(2).await;
    let on_second = viewer.messages(2).await;
    for received in [&on_first, &on_second] {
        assert_eq!(received[0]["data"], edit, "{}", received[0]);
        assert_eq!(received[1]["data"], proto_edit, "{}", received[1]);
    }
    // A message without data has none.
    editor.publish("plain", "e3").await;
    let plain = viewer.messages(1).await;
    assert!(plain[0].get("data").is_none(), "{}", plain[0]);

    // A backend's post carries data through the exchange too, and a late
    // joiner's history keeps it.
    rabbit
        .publish_json(
            "room.message",
            &json!({"eventId": "desk-2", "room": ROOM, "from": {"userId": "desk"}, "text": "moved", "data": {"seat": 12}}),
        )
        .await;
    assert_eq!(viewer.messages(1).await[0]["data"], json!({"seat": 12}));
    let mut late = connect(&second, "carol", Encoding::Proto).await;
    join(&mut late, ROOM, None).await;
    let history = late.messages(4).await;
    assert_eq!(history[0]["data"], edit);
    assert_eq!(history[3]["data"], json!({"seat": 12}));

    stop(first).await;
    stop(second).await;
    rabbit.cleanup().await;
}

#[tokio::test]
async fn a_connections_publishes_reach_the_stream_in_the_order_it_sent_them() {
    let rabbit = Rabbit::new().await;
    let gateway = rabbit
        .gateway(
            1,
            &[
                "--rooms-open",
                "--publish-rate",
                "1000",
                "--publish-burst",
                "1000",
                "--rate-limit",
                "1000",
                "--rate-burst",
                "1000",
            ],
        )
        .await;
    let mut client = Member::new(Client::connect(&gateway.ws_url(), Encoding::Json).await);
    join(&mut client, ROOM, None).await;
    // Sent back to back, without waiting for any `published`: each write
    // is confirmed on its own, but they are published in this order.
    for i in 0..40 {
        client
            .send(json!({"type": "publish", "room": ROOM, "text": format!("m{i}"), "requestId": format!("r{i}")}))
            .await;
    }
    let received = client.messages(40).await;
    let expected: Vec<String> = (0..40).map(|i| format!("m{i}")).collect();
    assert_eq!(texts(&received), expected);

    stop(gateway).await;
    rabbit.cleanup().await;
}

#[tokio::test]
async fn a_refreshed_token_that_no_longer_names_a_room_leaves_it() {
    let rabbit = Rabbit::new().await;
    let gateway = rabbit.gateway(1, &["--jwt-secret", SECRET]).await;
    let mut alice = connect(&gateway, "alice", Encoding::Json).await;
    join(&mut alice, ROOM, None).await;
    alice
        .send(json!({"type": "refresh", "token": token("alice", json!(["other_room"])), "requestId": "rf"}))
        .await;
    let left = alice.recv_type("left").await;
    assert_eq!(left["room"], ROOM, "{left}");
    assert!(left.get("requestId").is_none(), "{left}");
    assert_eq!(alice.recv_type("refreshed").await["requestId"], "rf");
    // No longer a member: publishing is refused, and joining again too.
    alice
        .send(json!({"type": "publish", "room": ROOM, "text": "still here?"}))
        .await;
    assert_eq!(alice.recv().await["code"], "forbidden");
    alice.send(json!({"type": "join", "room": ROOM})).await;
    assert_eq!(alice.recv().await["code"], "forbidden");

    stop(gateway).await;
    rabbit.cleanup().await;
}
