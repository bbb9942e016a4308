//! Every client and server message survives JSON → typed → protobuf → typed →
//! JSON unchanged, and the SPEC's JSON examples decode and encode as written.
//!
//! The fixtures are the SPEC's examples ("The protocol" and "Messages the old
//! service sent") with the `…` placeholders filled in with real values, plus
//! the fields tourcast adds (`seq`, `protocol`, `encoding`, `epoch`).

use std::collections::BTreeSet;

use prost::Message as _;
use serde_json::{Value, json};
use tourcast::protocol::codec::{
    Codec, Encoded, decode_server_proto, encode_json, encode_proto, request_id_of,
};
use tourcast::protocol::{ClientMessage, ServerMessage, v1};

/// The JSON `type` of a client message. Exhaustive on purpose: a new variant
/// fails to compile here until it gets a fixture below.
fn client_type(message: &ClientMessage) -> &'static str {
    match message {
        ClientMessage::Ping(_) => "ping",
        ClientMessage::Subscribe(_) => "subscribe",
        ClientMessage::Unsubscribe(_) => "unsubscribe",
        ClientMessage::Refresh(_) => "refresh",
        ClientMessage::RefreshStats(_) => "refreshStats",
        ClientMessage::Join(_) => "join",
        ClientMessage::Leave(_) => "leave",
        ClientMessage::Publish(_) => "publish",
    }
}

/// The JSON `type` of a server message; exhaustive for the same reason.
fn server_type(message: &ServerMessage) -> &'static str {
    match message {
        ServerMessage::Connection(_) => "connection",
        ServerMessage::Subscribed(_) => "subscribed",
        ServerMessage::Unsubscribed(_) => "unsubscribed",
        ServerMessage::Snapshot(_) => "snapshot",
        ServerMessage::AvailabilityUpdated(_) => "tour.availability.updated",
        ServerMessage::AvailabilityLow(_) => "tour.availability.low",
        ServerMessage::Pong(_) => "pong",
        ServerMessage::Error(_) => "error",
        ServerMessage::Refreshed(_) => "refreshed",
        ServerMessage::Notification(_) => "notification",
        ServerMessage::Stats(_) => "stats",
        ServerMessage::Joined(_) => "joined",
        ServerMessage::Left(_) => "left",
        ServerMessage::RoomMessage(_) => "room.message",
        ServerMessage::Presence(_) => "presence",
        ServerMessage::Published(_) => "published",
        ServerMessage::Viewers(_) => "viewers",
    }
}

const ALL_CLIENT_TYPES: &[&str] = &[
    "ping",
    "subscribe",
    "unsubscribe",
    "refresh",
    "refreshStats",
    "join",
    "leave",
    "publish",
];
const ALL_SERVER_TYPES: &[&str] = &[
    "connection",
    "subscribed",
    "unsubscribed",
    "snapshot",
    "tour.availability.updated",
    "tour.availability.low",
    "pong",
    "error",
    "refreshed",
    "notification",
    "stats",
    "joined",
    "left",
    "room.message",
    "presence",
    "published",
    "viewers",
];

/// Client fixtures: the SPEC's examples first, then every optional field set.
fn client_fixtures() -> Vec<Value> {
    vec![
        // SPEC: `{"type":"ping"}` → pong (the wscat example).
        json!({"type": "ping"}),
        json!({"type": "ping", "requestId": "r1"}),
        // SPEC: subscribe to one tour.
        json!({"type": "subscribe", "tourId": "tour_paris"}),
        // SPEC: "*" subscribes to every tour.
        json!({"type": "subscribe", "tourId": "*"}),
        // SPEC: resubscribe with `since` after a reconnect.
        json!({"type": "subscribe", "tourId": "tour_paris", "since": {"epoch": "e1736330000", "seq": 41}}),
        json!({
            "type": "subscribe",
            "tourId": "tour_london",
            "since": {"epoch": "amqp-stream:tour_booking_events", "seq": 0},
            "requestId": "sub-1"
        }),
        // A seq beyond 2^53 still round-trips: serde_json keeps u64 exact.
        json!({"type": "subscribe", "tourId": "tour_rome", "since": {"epoch": "e1", "seq": u64::MAX}}),
        // SPEC: unsubscribe.
        json!({"type": "unsubscribe", "tourId": "tour_paris"}),
        json!({"type": "unsubscribe", "tourId": "*", "requestId": "u-9"}),
        // Token refresh (a JWT: header.payload.signature, base64url).
        json!({"type": "refresh", "token": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1c2VyXzEifQ.c2lnbmF0dXJl"}),
        json!({"type": "refresh", "token": "eyJhbGciOiJub25lIn0.e30.", "requestId": "rf-1"}),
        // SPEC "Channels": the user's own notifications, and admin stats.
        json!({"type": "subscribe", "channel": "notifications"}),
        json!({"type": "subscribe", "channel": "notifications", "since": {"epoch": "rmq:s", "seq": 12}, "requestId": "n-1"}),
        json!({"type": "subscribe", "channel": "stats"}),
        json!({"type": "unsubscribe", "channel": "stats", "requestId": "u-2"}),
        json!({"type": "refreshStats"}),
        json!({"type": "refreshStats", "requestId": "rs-1"}),
        // SPEC "Rooms".
        json!({"type": "join", "room": "support_42"}),
        json!({"type": "join", "room": "support_42", "since": {"epoch": "rmq:s", "seq": 7}, "requestId": "j-1"}),
        json!({"type": "leave", "room": "support_42", "requestId": "l-1"}),
        json!({"type": "publish", "room": "support_42", "text": "Bonjour !"}),
        json!({"type": "publish", "room": "support_42", "text": "édition", "requestId": "p-1"}),
        json!({"type": "subscribe", "tourId": "tour_paris", "viewers": true}),
    ]
}

/// Server fixtures: every variant, with and without its optional fields.
fn server_fixtures() -> Vec<Value> {
    vec![
        // SPEC: on connect, the old shape plus protocol, encoding and epoch.
        json!({
            "type": "connection",
            "clientId": "1b4e28ba-2fa1-11d2-883f-0016d3cca427",
            "message": "Connected to tourcast",
            "protocol": "tourcast.v1",
            "encoding": "json",
            "epoch": "e1736330000",
            "timestamp": "2025-01-08T10:30:00.000Z"
        }),
        json!({
            "type": "connection",
            "clientId": "1b4e28ba-2fa1-11d2-883f-0016d3cca427",
            "message": "Connected to tourcast",
            "protocol": "tourcast.v1",
            "encoding": "proto",
            "epoch": "e1736330000",
            "timestamp": "2025-01-08T10:30:00.000Z"
        }),
        json!({"type": "subscribed", "tourId": "tour_paris"}),
        json!({"type": "subscribed", "tourId": "tour_paris", "recovered": true, "requestId": "sub-1"}),
        json!({"type": "subscribed", "tourId": "*", "recovered": false}),
        json!({"type": "unsubscribed", "tourId": "tour_paris"}),
        json!({"type": "unsubscribed", "tourId": "*", "requestId": "u-9"}),
        json!({"type": "subscribed", "channel": "notifications", "recovered": true}),
        json!({"type": "unsubscribed", "channel": "stats"}),
        // SPEC "Channels": a notification, on every connection of its user.
        json!({
            "type": "notification",
            "kind": "booking.confirmed",
            "notificationId": "evt_b1",
            "bookingId": "booking_456",
            "tourId": "tour_paris",
            "tourName": "Paris City Tour",
            "seats": 2,
            "message": "Your booking is confirmed!",
            "seq": 42,
            "timestamp": "2025-01-08T10:30:00.000Z"
        }),
        json!({
            "type": "notification",
            "kind": "booking.cancelled",
            "notificationId": "seq-43",
            "bookingId": "booking_456",
            "tourId": "tour_paris",
            "tourName": "Paris City Tour",
            "seats": 2,
            "message": "Your booking was cancelled.",
            "seq": 43,
            "timestamp": "2025-01-08T10:31:00.000Z"
        }),
        json!({
            "type": "stats",
            "connectedClients": 3,
            "clientsByEncoding": {"json": 2, "proto": 1},
            "eventsPerSecond": 12.5,
            "deliveriesPerSecond": 30.25,
            "slowClientDisconnects": 1,
            "instances": [{
                "instanceId": "gw-a:1",
                "connectedClients": 3,
                "clientsByEncoding": {"json": 2, "proto": 1},
                "eventsPerSecond": 12.5,
                "deliveriesPerSecond": 30.25,
                "slowClientDisconnects": 1,
                "sourceKind": "rabbitmq",
                "sourceState": "connected",
                "uptimeSeconds": 3600,
                "topTours": [{"tourId": "tour_paris", "subscribers": 2}],
                "reportedAt": "2025-01-08T10:30:00.000Z",
                "leaving": false
            }],
            "topTours": [{"tourId": "tour_paris", "subscribers": 2}],
            "intervalSeconds": 5,
            "timestamp": "2025-01-08T10:30:00.000Z",
            "requestId": "rs-1"
        }),
        // SPEC: snapshot of the demo catalog.
        json!({
            "type": "snapshot",
            "tours": [
                {"tourId": "tour_paris", "tourName": "Paris City Tour", "availableSeats": 20, "maxGroupSize": 20, "seq": 3, "updatedAt": "2025-01-08T10:30:00.000Z"},
                {"tourId": "tour_london", "tourName": "London Eye Experience", "availableSeats": 4, "maxGroupSize": 15, "seq": 17, "updatedAt": "2025-01-08T10:31:00.000Z"},
                {"tourId": "tour_rome", "availableSeats": 0, "seq": 0, "updatedAt": "2025-01-08T10:32:00.000Z"}
            ],
            "epoch": "e1736330000",
            "timestamp": "2025-01-08T10:33:00.000Z"
        }),
        // SPEC: a snapshot replacing events that are no longer in the history.
        json!({
            "type": "snapshot",
            "tours": [],
            "epoch": "e1736330000",
            "recovered": false,
            "requestId": "sub-1",
            "timestamp": "2025-01-08T10:33:00.000Z"
        }),
        // SPEC: `{"type":…,"data":{tourId,tourName,availableSeats,maxGroupSize},"seq":N,"timestamp":…}`.
        json!({
            "type": "tour.availability.updated",
            "data": {"tourId": "tour_paris", "tourName": "Paris City Tour", "availableSeats": 8, "maxGroupSize": 20},
            "seq": 42,
            "timestamp": "2025-01-08T10:30:00.000Z"
        }),
        json!({
            "type": "tour.availability.updated",
            "data": {"tourId": "tour_123", "availableSeats": 8},
            "seq": 1,
            "timestamp": "2025-01-08T10:30:00.000Z",
            "eventId": "evt_1736330000000"
        }),
        // SPEC: the old low-availability shape plus `seq`.
        json!({
            "type": "tour.availability.low",
            "data": {"tourId": "tour_123", "tourTitle": "Randonnée Montagne", "availableSeats": 3, "maxGroupSize": 15, "threshold": 3},
            "seq": 7,
            "timestamp": "2025-01-08T10:30:00.000Z"
        }),
        json!({
            "type": "tour.availability.low",
            "data": {"tourId": "tour_rome", "tourTitle": "tour_rome", "availableSeats": 0, "threshold": 5},
            "seq": u64::MAX,
            "timestamp": "2025-01-08T10:30:00.000Z",
            "eventId": "evt_2"
        }),
        // SPEC: `{"type":"pong","timestamp":"…"}`.
        json!({"type": "pong", "timestamp": "2025-01-08T10:30:00.000Z"}),
        json!({"type": "pong", "requestId": "r1", "timestamp": "2025-01-08T10:30:00.000Z"}),
        // SPEC: `{"type":"error","code":"invalid_message","message":"…","path":"/tourId","requestId":…}`.
        json!({
            "type": "error",
            "code": "invalid_message",
            "message": "tourId is required and must not be empty",
            "path": "/tourId",
            "requestId": "sub-1"
        }),
        json!({"type": "error", "code": "unknown_type", "message": "unknown message type \"hello\"", "path": "/type"}),
        json!({"type": "error", "code": "unsupported_encoding", "message": "binary frame on a JSON connection"}),
        json!({"type": "error", "code": "rate_limited", "message": "slow down"}),
        json!({"type": "error", "code": "forbidden", "message": "not allowed"}),
        json!({"type": "error", "code": "too_large", "message": "frame too large"}),
        json!({"type": "error", "code": "internal", "message": "try again"}),
        json!({"type": "error", "code": "unauthorized", "message": "the token has expired", "requestId": "rf-1"}),
        json!({"type": "refreshed", "expiresAt": "2025-01-08T11:30:00.000Z"}),
        json!({"type": "refreshed", "expiresAt": "2025-01-08T11:30:00.000Z", "requestId": "rf-1"}),
        // SPEC "Rooms" and "Viewers".
        json!({"type": "joined", "room": "support_42", "members": [{"userId": "alice"}, {"userId": "support_agent_1"}], "memberCount": 2, "seq": 41}),
        json!({"type": "joined", "room": "support_42", "members": [], "memberCount": 0, "seq": 0, "recovered": true, "requestId": "j-1"}),
        json!({"type": "left", "room": "support_42"}),
        json!({"type": "left", "room": "support_42", "requestId": "l-1"}),
        json!({"type": "room.message", "room": "support_42", "from": {"userId": "support_agent_1"}, "text": "Bonjour ! Comment puis-je vous aider ?", "messageId": "evt_1", "seq": 42, "timestamp": "2025-01-08T10:30:00.000Z"}),
        json!({"type": "presence", "room": "support_42", "userId": "alice", "action": "joined", "memberCount": 2, "timestamp": "2025-01-08T10:30:00.000Z"}),
        json!({"type": "presence", "room": "support_42", "userId": "alice", "action": "left", "memberCount": 1, "timestamp": "2025-01-08T10:30:00.000Z"}),
        json!({"type": "presence", "room": "lobby", "action": "count", "memberCount": 250, "timestamp": "2025-01-08T10:30:00.000Z"}),
        json!({"type": "published", "room": "support_42", "seq": 42, "messageId": "1b4e28ba-2fa1-11d2-883f-0016d3cca427", "requestId": "p-1"}),
        json!({"type": "error", "code": "unavailable", "message": "the broker is unavailable", "requestId": "p-2"}),
        json!({"type": "viewers", "tourId": "tour_paris", "count": 5, "timestamp": "2025-01-08T10:30:00.000Z"}),
    ]
}

#[test]
fn every_client_message_round_trips_json_proto_json() {
    let codec = Codec::new().unwrap();
    let mut seen = BTreeSet::new();
    for fixture in client_fixtures() {
        let text = fixture.to_string();

        // JSON → typed, through the validating codec (as the server reads it).
        let typed = codec
            .decode_json(&text)
            .unwrap_or_else(|e| panic!("{text}: {e}"));
        seen.insert(client_type(&typed));
        // …and through plain serde, which must agree with the codec.
        let plain: ClientMessage = serde_json::from_str(&text).unwrap();
        assert_eq!(typed, plain, "{text}");

        // typed → protobuf → typed, through the validating codec again.
        let envelope = v1::ClientMessage {
            kind: Some(typed.clone()),
        };
        let bytes = envelope.encode_to_vec();
        let from_proto = codec
            .decode_proto(&bytes)
            .unwrap_or_else(|e| panic!("{text} as protobuf: {e}"));
        assert_eq!(from_proto, typed, "{text}");
        assert_eq!(request_id_of(&from_proto), request_id_of(&typed));

        // typed → JSON: the same value we started from.
        let back = serde_json::to_value(&from_proto).unwrap();
        assert_eq!(back, fixture, "{text}");
    }
    let all: BTreeSet<_> = ALL_CLIENT_TYPES.iter().copied().collect();
    assert_eq!(seen, all, "a client message type has no round-trip fixture");
}

#[test]
fn every_server_message_round_trips_json_proto_json() {
    let mut seen = BTreeSet::new();
    for fixture in server_fixtures() {
        let text = fixture.to_string();

        let typed: ServerMessage =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
        seen.insert(server_type(&typed));

        // typed → protobuf → typed.
        let bytes = encode_proto(&typed);
        let from_proto = decode_server_proto(&bytes).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(from_proto, typed, "{text}");
        // The payload is exactly the `ServerMessage` envelope's encoding.
        let envelope = v1::ServerMessage {
            kind: Some(typed.clone()),
        };
        assert_eq!(&bytes[..], &envelope.encode_to_vec()[..], "{text}");

        // typed → JSON, the way the server sends it.
        let json_text = String::from_utf8(encode_json(&from_proto).to_vec()).unwrap();
        let back: Value = serde_json::from_str(json_text.as_str()).unwrap();
        assert_eq!(back, fixture, "{text}");

        // Encoded::new shares exactly those two payloads.
        let encoded = Encoded::new(&typed);
        assert_eq!(encoded.json.as_str(), json_text.as_str());
        assert_eq!(encoded.proto.payload(), &bytes);
        let shared = encoded.clone();
        assert_eq!(
            shared.proto.as_ptr(),
            encoded.proto.as_ptr(),
            "clones share bytes"
        );
    }
    let all: BTreeSet<_> = ALL_SERVER_TYPES.iter().copied().collect();
    assert_eq!(seen, all, "a server message type has no round-trip fixture");
}

/// The SPEC's client examples decode to exactly the typed values they describe.
#[test]
fn spec_client_examples_decode_as_written() {
    let codec = Codec::new().unwrap();

    assert_eq!(
        codec.decode_json(r#"{"type":"ping"}"#).unwrap(),
        ClientMessage::Ping(v1::Ping { request_id: None })
    );
    assert_eq!(
        codec
            .decode_json(r#"{"type":"subscribe","tourId":"tour_paris"}"#)
            .unwrap(),
        ClientMessage::Subscribe(v1::Subscribe {
            tour_id: Some("tour_paris".into()),
            channel: None,
            since: None,
            request_id: None,
            viewers: None,
        })
    );
    assert_eq!(
        codec
            .decode_json(r#"{"type":"subscribe","tourId":"*"}"#)
            .unwrap(),
        ClientMessage::Subscribe(v1::Subscribe {
            tour_id: Some("*".into()),
            channel: None,
            since: None,
            request_id: None,
            viewers: None,
        })
    );
    assert_eq!(
        codec
            .decode_json(
                r#"{"type":"subscribe","tourId":"tour_paris","since":{"epoch":"e1736330000","seq":41}}"#
            )
            .unwrap(),
        ClientMessage::Subscribe(v1::Subscribe {
            tour_id: Some("tour_paris".into()),
            channel: None,
            since: Some(v1::StreamPosition {
                epoch: "e1736330000".into(),
                seq: 41,
            }),
            request_id: None,
            viewers: None,
        })
    );
    assert_eq!(
        codec
            .decode_json(r#"{"type":"unsubscribe","tourId":"tour_paris"}"#)
            .unwrap(),
        ClientMessage::Unsubscribe(v1::Unsubscribe {
            tour_id: Some("tour_paris".into()),
            channel: None,
            request_id: None,
        })
    );
    // Whitespace and key order are the client's business.
    assert_eq!(
        codec
            .decode_json("{ \"tourId\" : \"tour_paris\",\n \"type\" : \"unsubscribe\" }")
            .unwrap(),
        ClientMessage::Unsubscribe(v1::Unsubscribe {
            tour_id: Some("tour_paris".into()),
            channel: None,
            request_id: None,
        })
    );
}

/// The server encodes typed messages into exactly the SPEC's JSON shapes.
#[test]
fn spec_server_examples_encode_as_written() {
    let cases: Vec<(ServerMessage, Value)> = vec![
        (
            ServerMessage::Error(v1::ErrorReply {
                code: v1::ErrorCode::InvalidMessage as i32,
                message: "tourId is required and must not be empty".into(),
                path: Some("/tourId".into()),
                request_id: Some("r1".into()),
            }),
            json!({"type":"error","code":"invalid_message","message":"tourId is required and must not be empty","path":"/tourId","requestId":"r1"}),
        ),
        (
            ServerMessage::AvailabilityLow(v1::AvailabilityLow {
                data: Some(v1::LowAvailability {
                    tour_id: "tour_123".into(),
                    tour_title: "Randonnée Montagne".into(),
                    available_seats: 3,
                    max_group_size: Some(15),
                    threshold: 3,
                }),
                seq: 7,
                timestamp: "2025-01-08T10:30:00.000Z".into(),
                event_id: None,
            }),
            json!({"type":"tour.availability.low","data":{"tourId":"tour_123","tourTitle":"Randonnée Montagne","availableSeats":3,"maxGroupSize":15,"threshold":3},"seq":7,"timestamp":"2025-01-08T10:30:00.000Z"}),
        ),
        (
            ServerMessage::AvailabilityUpdated(v1::AvailabilityUpdated {
                data: Some(v1::TourAvailability {
                    tour_id: "tour_paris".into(),
                    tour_name: Some("Paris City Tour".into()),
                    available_seats: 8,
                    max_group_size: Some(20),
                }),
                seq: 42,
                timestamp: "2025-01-08T10:30:00.000Z".into(),
                event_id: None,
            }),
            json!({"type":"tour.availability.updated","data":{"tourId":"tour_paris","tourName":"Paris City Tour","availableSeats":8,"maxGroupSize":20},"seq":42,"timestamp":"2025-01-08T10:30:00.000Z"}),
        ),
        (
            ServerMessage::Pong(v1::Pong {
                request_id: None,
                timestamp: "2025-01-08T10:30:00.000Z".into(),
            }),
            json!({"type":"pong","timestamp":"2025-01-08T10:30:00.000Z"}),
        ),
    ];
    for (message, expected) in cases {
        let text = String::from_utf8(encode_json(&message).to_vec()).unwrap();
        let actual: Value = serde_json::from_str(text.as_str()).unwrap();
        assert_eq!(actual, expected);
        // The discriminator comes first, as old clients' logs show it.
        assert!(
            text.as_str().starts_with(r#"{"type":"#),
            "{}",
            text.as_str()
        );
        // And the SPEC text parses back into the same typed message.
        let parsed: ServerMessage = serde_json::from_value(expected).unwrap();
        assert_eq!(parsed, message);
    }
}

/// Optional fields are omitted, never `null`; 64-bit numbers are JSON numbers.
#[test]
fn json_view_omits_absent_optionals_and_keeps_u64_numbers() {
    let message = ServerMessage::AvailabilityUpdated(v1::AvailabilityUpdated {
        data: Some(v1::TourAvailability {
            tour_id: "tour_rome".into(),
            tour_name: None,
            available_seats: 18,
            max_group_size: None,
        }),
        seq: 9_007_199_254_740_993, // 2^53 + 1: not representable as f64
        timestamp: "2025-01-08T10:30:00.000Z".into(),
        event_id: None,
    });
    let text = String::from_utf8(encode_json(&message).to_vec()).unwrap();
    assert_eq!(
        text.as_str(),
        r#"{"type":"tour.availability.updated","data":{"tourId":"tour_rome","availableSeats":18},"seq":9007199254740993,"timestamp":"2025-01-08T10:30:00.000Z"}"#
    );
    assert!(!text.as_str().contains("null"));
}

// --- the fixtures the Node contract checks use (tests/contract) ------------

/// `tests/contract/fixtures.json`: what ajv checks against `schemas/`.
fn contract_fixtures() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/contract/fixtures.json");
    let text = std::fs::read_to_string(path).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// A committed schema, compiled as a Rust consumer would: the `jsonschema`
/// crate picks the draft from `$schema`, with its default options.
fn committed_schema(file: &str) -> jsonschema::Validator {
    let path = format!("{}/schemas/{file}", env!("CARGO_MANIFEST_DIR"));
    let schema: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    jsonschema::validator_for(&schema).unwrap()
}

fn fixture_list<'a>(fixtures: &'a Value, kind: &str, validity: &str) -> &'a Vec<Value> {
    let list = fixtures[kind][validity].as_array().unwrap();
    assert!(!list.is_empty(), "no {validity} {kind} fixtures");
    list
}

/// The Rust side of "ajv agrees with the Rust validator": every fixture ajv
/// accepts, the codec accepts; every one ajv refuses, the codec refuses with
/// the `code` and `path` the fixture names.
#[test]
fn codec_agrees_with_the_contract_fixtures_for_client_messages() {
    let codec = Codec::new().unwrap();
    let schema = committed_schema("client_message.schema.json");
    let fixtures = contract_fixtures();
    for fixture in fixture_list(&fixtures, "client", "valid") {
        let (name, message) = (&fixture["name"], &fixture["message"]);
        assert!(schema.is_valid(message), "{name}");
        let typed = codec
            .decode_json(&message.to_string())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(&serde_json::to_value(&typed).unwrap(), message, "{name}");
    }
    for fixture in fixture_list(&fixtures, "client", "invalid") {
        let (name, message) = (&fixture["name"], &fixture["message"]);
        assert!(!schema.is_valid(message), "{name}");
        let error = match codec.decode_json(&message.to_string()) {
            Ok(typed) => panic!("{name}: accepted as {typed:?}"),
            Err(error) => error,
        };
        let code = serde_json::to_value(error.to_reply()).unwrap()["code"].clone();
        assert_eq!(code, fixture["code"], "{name}: {error:?}");
        assert_eq!(
            error.path.as_deref(),
            fixture["path"].as_str(),
            "{name}: {error:?}"
        );
    }
}

#[test]
fn server_types_agree_with_the_contract_fixtures() {
    let schema = committed_schema("server_message.schema.json");
    let fixtures = contract_fixtures();
    for fixture in fixture_list(&fixtures, "server", "valid") {
        let (name, message) = (&fixture["name"], &fixture["message"]);
        assert!(schema.is_valid(message), "{name}");
        let typed: ServerMessage =
            serde_json::from_value(message.clone()).unwrap_or_else(|e| panic!("{name}: {e}"));
        let text = String::from_utf8(encode_json(&typed).to_vec()).unwrap();
        let back: Value = serde_json::from_str(text.as_str()).unwrap();
        assert_eq!(&back, message, "{name}");
    }
    // The server never sends these: the schema refuses them. (serde is more
    // lenient on input, e.g. it reads `null` as an absent optional, which is
    // why the check is the schema's, as a client's CI would run it.)
    for fixture in fixture_list(&fixtures, "server", "invalid") {
        let (name, message) = (&fixture["name"], &fixture["message"]);
        assert!(!schema.is_valid(message), "{name}");
    }
}

#[test]
fn publisher_events_agree_with_the_contract_fixtures() {
    use tourcast::protocol::validate::Validate as _;
    let schema = committed_schema("availability_event.schema.json");
    let fixtures = contract_fixtures();
    for fixture in fixture_list(&fixtures, "event", "valid") {
        let (name, message) = (&fixture["name"], &fixture["message"]);
        assert!(schema.is_valid(message), "{name}");
        let event: v1::AvailabilityEvent =
            serde_json::from_value(message.clone()).unwrap_or_else(|e| panic!("{name}: {e}"));
        event
            .validate("")
            .unwrap_or_else(|e| panic!("{name}: {e:?}"));
    }
    for fixture in fixture_list(&fixtures, "event", "invalid") {
        let (name, message) = (&fixture["name"], &fixture["message"]);
        assert!(!schema.is_valid(message), "{name}");
        let typed = serde_json::from_value::<v1::AvailabilityEvent>(message.clone());
        assert!(
            typed.is_err() || typed.as_ref().is_ok_and(|e| e.validate("").is_err()),
            "{name}: the typed event accepts what the schema refuses: {typed:?}"
        );
    }
}

#[test]
fn booking_events_agree_with_the_contract_fixtures() {
    use tourcast::protocol::validate::Validate as _;
    let schema = committed_schema("booking_event.schema.json");
    let fixtures = contract_fixtures();
    for fixture in fixture_list(&fixtures, "booking", "valid") {
        let (name, message) = (&fixture["name"], &fixture["message"]);
        assert!(schema.is_valid(message), "{name}");
        let event: v1::BookingEvent =
            serde_json::from_value(message.clone()).unwrap_or_else(|e| panic!("{name}: {e}"));
        event
            .validate("")
            .unwrap_or_else(|e| panic!("{name}: {e:?}"));
    }
    for fixture in fixture_list(&fixtures, "booking", "invalid") {
        let (name, message) = (&fixture["name"], &fixture["message"]);
        assert!(!schema.is_valid(message), "{name}");
        let typed = serde_json::from_value::<v1::BookingEvent>(message.clone());
        assert!(
            typed.is_err() || typed.as_ref().is_ok_and(|e| e.validate("").is_err()),
            "{name}: the typed event accepts what the schema refuses: {typed:?}"
        );
    }
}
