//! The `data` of a room `publish` (issue 20: "a JSON object of at most
//! 8 KiB, protobuf carries the same"), through the real `tourcast` binary
//! and real WebSocket clients in both encodings: what is not a JSON object,
//! is larger than 8 KiB or nests deeper than 32 levels is refused with the
//! same `invalid_message`, pointer and words in JSON and protobuf; a valid
//! one passes validation and the message size limit (what rooms then
//! answer is theirs to test).

mod common;

use prost::Message as _;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use common::{Client, Encoding, GatewayProcess};
use tourcast::protocol::{ClientMessage, v1};

async fn gateway() -> GatewayProcess {
    // The demo feed: no broker needed to decode frames.
    GatewayProcess::start(&["--demo", "--demo-interval", "1h"], &[]).await
}

/// A `publish` frame whose `data` is `data` (the JSON text, in protobuf).
fn proto_publish(data: &[u8], request_id: &str) -> Message {
    let publish = v1::Publish {
        room: "support_42".into(),
        text: "edited".into(),
        request_id: Some(request_id.into()),
        data: Some(data.to_vec()),
    };
    let envelope = v1::ClientMessage {
        kind: Some(ClientMessage::Publish(publish)),
    };
    Message::binary(envelope.encode_to_vec())
}

fn json_publish(data: &str, request_id: &str) -> Message {
    Message::text(format!(
        r#"{{"type":"publish","room":"support_42","text":"edited","requestId":"{request_id}","data":{data}}}"#
    ))
}

/// `{"v":"xxx…"}`: a JSON object whose compact text is `bytes` long.
fn object_of(bytes: usize) -> String {
    json!({ "v": "x".repeat(bytes - r#"{"v":""}"#.len()) }).to_string()
}

fn nested(levels: usize) -> String {
    format!("{}{{{}", r#"{"a":"#.repeat(levels - 1), "}".repeat(levels))
}

fn refused(reply: &Value, words: &str, request_id: &str) {
    assert_eq!(
        reply,
        &json!({
            "type": "error",
            "code": "invalid_message",
            "message": words,
            "path": "/data",
            "requestId": request_id
        })
    );
}

#[tokio::test]
async fn bad_data_is_refused_alike_in_json_and_protobuf() {
    let gateway = gateway().await;
    let mut json_client = Client::connect(&gateway.ws_url(), Encoding::Json).await;
    let mut proto_client = Client::connect(&gateway.ws_url(), Encoding::Proto).await;
    let not_an_object = "data must be a JSON object";
    let too_large = "data must be at most 8192 bytes of JSON";
    let too_deep = "data must nest at most 32 levels deep";
    for (data, words) in [
        ("[1]".to_string(), not_an_object),
        (r#""{}""#.to_string(), not_an_object),
        (object_of(8193), too_large),
        (nested(33), too_deep),
    ] {
        json_client.send_raw(json_publish(&data, "j1")).await;
        refused(&json_client.recv().await, words, "j1");
        proto_client
            .send_raw(proto_publish(data.as_bytes(), "p1"))
            .await;
        refused(&proto_client.recv().await, words, "p1");
    }
    // What only protobuf can carry: bytes that are no JSON text at all.
    for data in [b"\xff\xfe".as_slice(), b"{\"a\":", b""] {
        proto_client.send_raw(proto_publish(data, "p2")).await;
        refused(&proto_client.recv().await, not_an_object, "p2");
    }
    // The connection stays up: bad input never closes it.
    json_client
        .send(json!({"type": "ping", "requestId": "r"}))
        .await;
    assert_eq!(json_client.recv().await["type"], "pong");
    json_client.close().await;
    proto_client.close().await;
}

#[tokio::test]
async fn data_within_the_limits_passes_validation_in_both_encodings() {
    let gateway = gateway().await;
    for encoding in [Encoding::Json, Encoding::Proto] {
        let mut client = Client::connect(&gateway.ws_url(), encoding).await;
        for data in [
            object_of(8192),
            nested(32),
            json!({"field": "description", "value": "Sunset cruise ✓"}).to_string(),
        ] {
            let frame = match encoding {
                Encoding::Json => json_publish(&data, "ok"),
                Encoding::Proto => proto_publish(data.as_bytes(), "ok"),
            };
            client.send_raw(frame).await;
            let reply = client.recv().await;
            // Past validation: rooms answer (`published`, or an error of
            // their own while they are not served), never invalid_message.
            assert!(
                reply["type"] == "published" || reply["type"] == "error",
                "{encoding:?}: {reply}"
            );
            // Nor too_large: MAX_MESSAGE_BYTES leaves room for 8 KiB of data.
            for refusal in ["invalid_message", "too_large"] {
                assert_ne!(reply["code"], refusal, "{encoding:?}: {reply}");
            }
        }
        client.close().await;
    }
}
