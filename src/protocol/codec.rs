//! Client frames in, server messages out.
//!
//! Every client frame passes through [`Codec::decode`] before anything routes
//! it, by way of the shared [`decode`](super::decode) pipeline. Text frames
//! are JSON checked against the generated JSON Schema (compiled once per
//! message `type`, so errors name the offending field); binary frames are a
//! protobuf `ClientMessage` envelope whose variant is checked by the
//! generated `buf.validate` impls. Both give the same error codes and JSON
//! pointers for the same mistakes.
//!
//! Server messages are encoded here ([`encode_json`], [`encode_proto`]),
//! once per encoding, into the shareable [`Frame`](super::frame::Frame)s
//! the hub queues.

use std::collections::HashMap;

use bytes::Bytes;
use prost::Message as _;
use serde_json::Value;
use thiserror::Error;

use super::decode::{self, Refusal, Rules, truncate};
pub use super::frame::{Encoded, Frame};
use super::v1::{self, ErrorCode};
use super::{ClientMessage, ServerMessage, schema};

pub use super::decode::SchemaError;
/// The wire encoding of a connection, chosen at the handshake.
pub use super::v1::Encoding;

/// Longest `requestId` echoed back in an error (the schema's own limit).
const MAX_ECHOED_REQUEST_ID: usize = 64;

/// Why a client frame was refused: a code the protocol defines
/// (`invalid_message` or `unknown_type`), the pointer, and the frame's
/// `requestId` when it could be read.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{code:?}: {message}")]
pub struct DecodeError {
    /// The error code sent to the client.
    pub code: ErrorCode,
    /// Human-readable explanation.
    pub message: String,
    /// JSON pointer to the offending field, when there is one.
    pub path: Option<String>,
    /// The frame's `requestId`, when it could be read.
    pub request_id: Option<String>,
}

impl DecodeError {
    fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        DecodeError {
            code,
            message: message.into(),
            path: None,
            request_id: None,
        }
    }

    fn at(mut self, path: impl Into<String>) -> Self {
        self.path = Some(path.into());
        self
    }

    fn with_request_id(mut self, request_id: Option<String>) -> Self {
        self.request_id = request_id;
        self
    }

    /// The `error` message that tells the client what was wrong.
    pub fn to_reply(&self) -> ServerMessage {
        error_reply(
            self.code,
            self.message.clone(),
            self.path.clone(),
            self.request_id.clone(),
        )
    }
}

/// An `error` server message.
pub fn error_reply(
    code: ErrorCode,
    message: String,
    path: Option<String>,
    request_id: Option<String>,
) -> ServerMessage {
    ServerMessage::Error(v1::ErrorReply {
        code: code as i32,
        message,
        path,
        request_id,
    })
}

impl From<Refusal> for DecodeError {
    fn from(refusal: Refusal) -> Self {
        match refusal {
            Refusal::Invalid(violation) => {
                DecodeError::new(ErrorCode::InvalidMessage, violation.message).at(violation.path)
            }
            Refusal::NotAnObject => {
                DecodeError::new(ErrorCode::InvalidMessage, refusal.to_string()).at("")
            }
            other => DecodeError::new(ErrorCode::InvalidMessage, other.to_string()),
        }
    }
}

/// Decodes and validates client frames. Build one at start-up and share it.
pub struct Codec {
    /// One message's rules per JSON `type`, from that message's definition
    /// in the generated `ClientMessage` schema.
    rules: HashMap<String, Rules>,
}

impl Codec {
    /// Compiles the rules from the generated `ClientMessage` schema: one
    /// validator per `type`, from that message's definition.
    pub fn new() -> Result<Self, SchemaError> {
        let mut rules = HashMap::new();
        for (message_type, variant) in schema::variants(&schema::client_message()) {
            let compiled = Rules::compile(&message_type, variant)?;
            rules.insert(message_type, compiled);
        }
        if rules.is_empty() {
            return Err(SchemaError::new(
                "ClientMessage",
                "the generated schema names no message type",
            ));
        }
        Ok(Codec { rules })
    }

    /// Decodes a text frame: JSON, schema-validated, then typed.
    pub fn decode_json(&self, text: &str) -> Result<ClientMessage, DecodeError> {
        let value = decode::parse_object_str(text)?;
        let request_id = value
            .get("requestId")
            .and_then(Value::as_str)
            .filter(|id| id.len() <= MAX_ECHOED_REQUEST_ID)
            .map(str::to_owned);
        let message_type = match value.get("type") {
            None => {
                return Err(
                    DecodeError::new(ErrorCode::InvalidMessage, "type is required")
                        .at("/type")
                        .with_request_id(request_id),
                );
            }
            Some(Value::String(t)) => t.as_str(),
            Some(_) => {
                return Err(
                    DecodeError::new(ErrorCode::InvalidMessage, "type must be a string")
                        .at("/type")
                        .with_request_id(request_id),
                );
            }
        };
        let Some(rules) = self.rules.get(message_type) else {
            return Err(DecodeError::new(
                ErrorCode::UnknownType,
                format!("unknown message type {:?}", truncate(message_type, 64)),
            )
            .at("/type")
            .with_request_id(request_id));
        };
        if let Err(violation) = rules.check_json(&value) {
            return Err(DecodeError::from(Refusal::Invalid(violation)).with_request_id(request_id));
        }
        let message = into_typed(value).map_err(|e| {
            // JSON Schema calls any integral number an integer (`41.0`, `1e19`,
            // `18446744073709551616`), but the typed fields are u64 and serde
            // refuses floats: point at that number. This path is rare, so it
            // re-parses the text rather than keeping a copy of the value.
            let inexact = serde_json::from_str::<Value>(text)
                .ok()
                .and_then(|v| inexact_integer_path(&v));
            match inexact {
                Some(path) => DecodeError::new(
                    ErrorCode::InvalidMessage,
                    format!(
                        "{} must be a whole number from 0 to {}, without a fraction or exponent",
                        path.rsplit('/').next().unwrap_or_default(),
                        u64::MAX
                    ),
                )
                .at(path),
                // Otherwise the schema accepted what serde refused: a bug.
                None => {
                    DecodeError::new(ErrorCode::InvalidMessage, format!("invalid message: {e}"))
                }
            }
            .with_request_id(request_id.clone())
        })?;
        // What the schema cannot state (a JSON object's size), on the
        // typed message: the same check and words as the protobuf side.
        if let Err(violation) = rules.check_typed_json(&message) {
            return Err(DecodeError::from(Refusal::Invalid(violation)).with_request_id(request_id));
        }
        Ok(message)
    }

    /// Decodes a binary frame: protobuf, then the same rules as the schema.
    pub fn decode_proto(&self, bytes: &[u8]) -> Result<ClientMessage, DecodeError> {
        let envelope: v1::ClientMessage = decode::decode_proto(bytes)?;
        let Some(message) = envelope.kind else {
            // The variant is JSON's `type`. None at all is JSON's `{}`; only
            // fields this server does not know is JSON's unknown `type`.
            return Err(if bytes.is_empty() {
                DecodeError::new(
                    ErrorCode::InvalidMessage,
                    "type is required (the envelope is empty)",
                )
            } else {
                DecodeError::new(
                    ErrorCode::UnknownType,
                    "the message sets no variant this server knows",
                )
            }
            .at("/type"));
        };
        let checked = match &message {
            ClientMessage::Ping(m) => self.check("ping", m),
            ClientMessage::Subscribe(m) => self.check("subscribe", m),
            ClientMessage::Unsubscribe(m) => self.check("unsubscribe", m),
            ClientMessage::Refresh(m) => self.check("refresh", m),
            ClientMessage::RefreshStats(m) => self.check("refreshStats", m),
            ClientMessage::Join(m) => self.check("join", m),
            ClientMessage::Leave(m) => self.check("leave", m),
            ClientMessage::Publish(m) => self.check("publish", m),
        };
        checked.map_err(|error| {
            // Copied only on this error path: a valid message allocates nothing more.
            let request_id = request_id_of(&message)
                .filter(|id| id.len() <= MAX_ECHOED_REQUEST_ID)
                .map(str::to_owned);
            error.with_request_id(request_id)
        })?;
        Ok(message)
    }

    fn check<M: super::validate::Validate>(
        &self,
        message_type: &str,
        message: &M,
    ) -> Result<(), DecodeError> {
        match self.rules.get(message_type) {
            Some(rules) => rules
                .check_proto(message)
                .map_err(|violation| Refusal::Invalid(violation).into()),
            None => Ok(()),
        }
    }

    /// Decodes a frame in the given encoding.
    pub fn decode(&self, encoding: Encoding, frame: &[u8]) -> Result<ClientMessage, DecodeError> {
        match encoding {
            Encoding::Proto => self.decode_proto(frame),
            _ => match std::str::from_utf8(frame) {
                Ok(text) => self.decode_json(text),
                Err(_) => Err(DecodeError::new(
                    ErrorCode::InvalidMessage,
                    "frame is not UTF-8",
                )),
            },
        }
    }
}

/// A schema-valid JSON object as a typed message, without a second copy.
///
/// serde reads an internally tagged enum (`{"type":…}`) by buffering the whole
/// object and then reading the buffer as the variant, copying every string
/// twice. The schema has already pinned `type`, so take it out and read the
/// variant's struct directly. A name missing here still decodes, through
/// serde's own (slower) path.
fn into_typed(value: Value) -> Result<ClientMessage, serde_json::Error> {
    let Value::Object(mut object) = value else {
        return serde_json::from_value(value);
    };
    let Some(Value::String(message_type)) = object.remove("type") else {
        return serde_json::from_value(Value::Object(object));
    };
    match message_type.as_str() {
        "ping" => serde_json::from_value(Value::Object(object)).map(ClientMessage::Ping),
        "subscribe" => serde_json::from_value(Value::Object(object)).map(ClientMessage::Subscribe),
        "unsubscribe" => {
            serde_json::from_value(Value::Object(object)).map(ClientMessage::Unsubscribe)
        }
        "refresh" => serde_json::from_value(Value::Object(object)).map(ClientMessage::Refresh),
        _ => {
            object.insert("type".into(), Value::String(message_type));
            serde_json::from_value(Value::Object(object))
        }
    }
}

/// The `requestId` a client message carries, if any.
pub fn request_id_of(message: &ClientMessage) -> Option<&str> {
    match message {
        ClientMessage::Ping(m) => m.request_id.as_deref(),
        ClientMessage::Subscribe(m) => m.request_id.as_deref(),
        ClientMessage::Unsubscribe(m) => m.request_id.as_deref(),
        ClientMessage::Refresh(m) => m.request_id.as_deref(),
        ClientMessage::RefreshStats(m) => m.request_id.as_deref(),
        ClientMessage::Join(m) => m.request_id.as_deref(),
        ClientMessage::Leave(m) => m.request_id.as_deref(),
        ClientMessage::Publish(m) => m.request_id.as_deref(),
    }
}

/// JSON pointer to the first number that is not an exact integer in `i64` or
/// `u64` (serde_json stores it as `f64`), if any. Depth is bounded by
/// serde_json's recursion limit.
fn inexact_integer_path(value: &Value) -> Option<String> {
    match value {
        Value::Number(n) if n.is_f64() => Some(String::new()),
        Value::Object(map) => map.iter().find_map(|(key, v)| {
            let key = key.replace('~', "~0").replace('/', "~1");
            inexact_integer_path(v).map(|rest| format!("/{key}{rest}"))
        }),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, v)| inexact_integer_path(v).map(|rest| format!("/{i}{rest}"))),
        _ => None,
    }
}

/// Encodes a server message as a JSON text payload.
pub fn encode_json(message: &ServerMessage) -> Bytes {
    // Serializing generated types to a String cannot fail: no maps with
    // non-string keys, no custom serializers that error on valid values.
    let text = serde_json::to_string(message).unwrap_or_else(|e| {
        format!(r#"{{"type":"error","code":"internal","message":"encoding failed: {e}"}}"#)
    });
    Bytes::from(text)
}

/// Encodes a server message as a protobuf binary payload.
pub fn encode_proto(message: &ServerMessage) -> Bytes {
    // A oneof's fields are the envelope's own fields, so encoding the variant
    // yields the `ServerMessage` envelope's bytes without cloning into one.
    let mut buf = Vec::with_capacity(message.encoded_len());
    message.encode(&mut buf);
    Bytes::from(buf)
}

/// Decodes a protobuf server message; used by clients and tests.
pub fn decode_server_proto(bytes: &[u8]) -> Result<ServerMessage, DecodeError> {
    v1::ServerMessage::decode(bytes)
        .map_err(|e| {
            DecodeError::new(
                ErrorCode::InvalidMessage,
                format!("malformed protobuf: {e}"),
            )
        })?
        .kind
        .ok_or_else(|| DecodeError::new(ErrorCode::UnknownType, "no variant set"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn publish(data: Value) -> Value {
        json!({
            "type": "publish",
            "room": "support_42",
            "text": "edited the description",
            "requestId": "r1",
            "data": data
        })
    }

    /// `{"v":"xxx…"}`: a JSON object whose compact text is `bytes` long.
    fn object_of(bytes: usize) -> Value {
        json!({ "v": "x".repeat(bytes - r#"{"v":""}"#.len()) })
    }

    fn publish_proto(data: &[u8]) -> Vec<u8> {
        v1::ClientMessage {
            kind: Some(ClientMessage::Publish(v1::Publish {
                room: "support_42".into(),
                text: "edited".into(),
                request_id: Some("r2".into()),
                data: Some(data.to_vec()),
            })),
        }
        .encode_to_vec()
    }

    fn refusal(error: DecodeError) -> (ErrorCode, Option<String>, String, Option<String>) {
        (error.code, error.path, error.message, error.request_id)
    }

    #[test]
    fn publish_data_round_trips_json_typed_json_and_protobuf() {
        let codec = Codec::new().unwrap();
        let message = publish(json!({
            "field": "description",
            "value": "Sunset cruise ✓ \"quoted\"",
            "nested": {"n": [1, 2.5, null, true, -7]}
        }));
        let typed = codec.decode_json(&message.to_string()).unwrap();
        let ClientMessage::Publish(publish) = &typed else {
            panic!("{typed:?}");
        };
        // Protobuf carries the object's JSON text.
        let text = std::str::from_utf8(publish.data.as_deref().unwrap()).unwrap();
        assert_eq!(
            serde_json::from_str::<Value>(text).unwrap(),
            message["data"]
        );
        assert_eq!(serde_json::to_value(&typed).unwrap(), message);
        // Through protobuf bytes, as a binary frame.
        let bytes = v1::ClientMessage {
            kind: Some(typed.clone()),
        }
        .encode_to_vec();
        let decoded = codec.decode_proto(&bytes).unwrap();
        assert_eq!(decoded, typed);
        assert_eq!(serde_json::to_value(&decoded).unwrap(), message);
        // A room.message carrying it: the object in JSON, its text in protobuf.
        let room_message = ServerMessage::RoomMessage(v1::RoomMessage {
            room: "support_42".into(),
            from: Some(v1::RoomMember {
                user_id: "agent_7".into(),
            }),
            text: publish.text.clone(),
            message_id: "m1".into(),
            seq: 9,
            timestamp: "2026-12-05T21:40:00.000Z".into(),
            data: publish.data.clone(),
        });
        let encoded = Encoded::new(&room_message);
        let json: Value = serde_json::from_str(encoded.json.as_str()).unwrap();
        assert_eq!(json["type"], "room.message");
        assert_eq!(json["data"], message["data"]);
        assert_eq!(decode_server_proto(&encoded.proto).unwrap(), room_message);
        // Without data, there is no `data` at all.
        let mut plain = message.clone();
        plain.as_object_mut().unwrap().remove("data");
        let typed = codec.decode_json(&plain.to_string()).unwrap();
        assert_eq!(serde_json::to_value(&typed).unwrap(), plain);
    }

    #[test]
    fn publish_data_must_be_an_object_in_both_encodings() {
        let codec = Codec::new().unwrap();
        let not_an_object = |request_id: &str| {
            (
                ErrorCode::InvalidMessage,
                Some("/data".to_string()),
                "data must be a JSON object".to_string(),
                Some(request_id.to_string()),
            )
        };
        for data in [json!([1]), json!("{}"), json!(1), json!(null)] {
            let error = codec.decode_json(&publish(data).to_string()).unwrap_err();
            assert_eq!(refusal(error), not_an_object("r1"));
        }
        for data in [
            b"[1]".as_slice(),
            b"\"{}\"",
            b"",
            b"{\"a\":",
            b"{\"a\":\"\xff\"}",
        ] {
            let error = codec.decode_proto(&publish_proto(data)).unwrap_err();
            assert_eq!(refusal(error), not_an_object("r2"), "{data:?}");
        }
    }

    #[test]
    fn publish_data_is_at_most_8_kib_in_both_encodings() {
        let codec = Codec::new().unwrap();
        let fits = object_of(8192);
        let typed = codec.decode_json(&publish(fits.clone()).to_string());
        assert!(typed.is_ok(), "{typed:?}");
        let text = fits.to_string();
        assert_eq!(text.len(), 8192);
        assert!(codec.decode_proto(&publish_proto(text.as_bytes())).is_ok());
        let too_large = |request_id: &str| {
            (
                ErrorCode::InvalidMessage,
                Some("/data".to_string()),
                "data must be at most 8192 bytes of JSON".to_string(),
                Some(request_id.to_string()),
            )
        };
        let over = object_of(8193);
        let error = codec
            .decode_json(&publish(over.clone()).to_string())
            .unwrap_err();
        assert_eq!(refusal(error), too_large("r1"));
        let error = codec
            .decode_proto(&publish_proto(over.to_string().as_bytes()))
            .unwrap_err();
        assert_eq!(refusal(error), too_large("r2"));
        // JSON counts the object written compactly: a frame's spaces are free.
        let spaced = publish(fits).to_string().replace(':', " : ");
        assert!(codec.decode_json(&spaced).is_ok());
    }

    #[test]
    fn publish_data_nests_at_most_32_deep_in_both_encodings() {
        let codec = Codec::new().unwrap();
        let nested = |levels: usize| {
            format!(
                "{}{}",
                "{\"a\":".repeat(levels - 1) + "{",
                "}".repeat(levels)
            )
        };
        let frame = |levels: usize| {
            format!(
                r#"{{"type":"publish","room":"r","text":"t","requestId":"r1","data":{}}}"#,
                nested(levels)
            )
        };
        assert!(codec.decode_json(&frame(32)).is_ok());
        assert!(
            codec
                .decode_proto(&publish_proto(nested(32).as_bytes()))
                .is_ok()
        );
        let too_deep = |request_id: &str| {
            (
                ErrorCode::InvalidMessage,
                Some("/data".to_string()),
                "data must nest at most 32 levels deep".to_string(),
                Some(request_id.to_string()),
            )
        };
        let error = codec.decode_json(&frame(33)).unwrap_err();
        assert_eq!(refusal(error), too_deep("r1"));
        // Protobuf carries any depth a sender writes: 3,000 levels fit in
        // 8 KiB, and would break every JSON reader of the room.message.
        let deep = format!("{{\"a\":{}{}}}", "[".repeat(3000), "]".repeat(3000));
        assert!(deep.len() <= 8192);
        let error = codec
            .decode_proto(&publish_proto(deep.as_bytes()))
            .unwrap_err();
        assert_eq!(refusal(error), too_deep("r2"));
    }
}
