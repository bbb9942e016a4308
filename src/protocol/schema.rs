//! The JSON Schemas of the protocol, as the server enforces them.
//!
//! `build.rs` generates them from `proto/` (with `tools/codegen`, the same
//! code that writes the committed `schemas/`) into `OUT_DIR`; they are
//! embedded here, so what the server enforces is byte for byte what
//! `schemas/` holds (a test below checks the two agree).

use serde_json::{Map, Value};

/// Every schema, as (file name under `schemas/`, text).
pub const ALL: &[(&str, &str)] = &[
    ("client_message.schema.json", CLIENT_MESSAGE),
    ("server_message.schema.json", SERVER_MESSAGE),
    ("availability_event.schema.json", AVAILABILITY_EVENT),
    ("booking_event.schema.json", BOOKING_EVENT),
    ("room_event.schema.json", ROOM_EVENT),
];

const CLIENT_MESSAGE: &str = include_str!(concat!(
    env!("OUT_DIR"),
    "/schemas/client_message.schema.json"
));
const SERVER_MESSAGE: &str = include_str!(concat!(
    env!("OUT_DIR"),
    "/schemas/server_message.schema.json"
));
const AVAILABILITY_EVENT: &str = include_str!(concat!(
    env!("OUT_DIR"),
    "/schemas/availability_event.schema.json"
));
const BOOKING_EVENT: &str = include_str!(concat!(
    env!("OUT_DIR"),
    "/schemas/booking_event.schema.json"
));

const ROOM_EVENT: &str = include_str!(concat!(env!("OUT_DIR"), "/schemas/room_event.schema.json"));

/// Schema of every client → server message: a `type`-discriminated union,
/// one titled definition per message (the codec compiles one validator
/// per `type` from it).
pub fn client_message() -> Value {
    parse(CLIENT_MESSAGE)
}

/// Schema of every server → client message.
pub fn server_message() -> Value {
    parse(SERVER_MESSAGE)
}

/// Schema of the availability event that publishers put on RabbitMQ.
pub fn availability_event() -> Value {
    parse(AVAILABILITY_EVENT)
}

/// Schema of the booking notification that publishers put on RabbitMQ.
pub fn booking_event() -> Value {
    parse(BOOKING_EVENT)
}

/// Schema of the room message that the gateway and backend services put on RabbitMQ.
pub fn room_event() -> Value {
    parse(ROOM_EVENT)
}

/// The generator writes these files with serde_json: they always parse.
/// Should one not, the empty schema it becomes fails the codec's start-up
/// check (`Codec::new` finds no message type), not a request.
fn parse(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or(Value::Null)
}

/// The variants of a `type`-discriminated union schema, as (`type`, the
/// variant's schema with the definitions it refers to beside it, so its
/// `#/definitions/…` references resolve).
pub fn variants(union: &Value) -> Vec<(String, Value)> {
    let definitions = union.get("definitions").and_then(Value::as_object);
    let branches = union.get("allOf").and_then(Value::as_array);
    let mut variants = Vec::new();
    for branch in branches.into_iter().flatten() {
        let message_type = branch
            .pointer("/if/properties/type/const")
            .and_then(Value::as_str);
        let title = branch
            .pointer("/then/$ref")
            .and_then(Value::as_str)
            .and_then(|target| target.strip_prefix(DEFINITIONS));
        let (Some(message_type), Some(title), Some(definitions)) =
            (message_type, title, definitions)
        else {
            continue;
        };
        let Some(Value::Object(mut variant)) = definitions.get(title).cloned() else {
            continue;
        };
        let referenced = referenced(&Value::Object(variant.clone()), definitions);
        if !referenced.is_empty() {
            variant.insert("definitions".into(), Value::Object(referenced));
        }
        variants.push((message_type.to_string(), Value::Object(variant)));
    }
    variants
}

const DEFINITIONS: &str = "#/definitions/";

/// The definitions `schema` refers to, directly or through one another.
fn referenced(schema: &Value, definitions: &Map<String, Value>) -> Map<String, Value> {
    let mut found = Map::new();
    let mut pending = vec![schema];
    while let Some(schema) = pending.pop() {
        let mut targets = Vec::new();
        collect_refs(schema, &mut targets);
        for name in targets {
            if let (false, Some(definition)) = (found.contains_key(name), definitions.get(name)) {
                found.insert(name.to_string(), definition.clone());
                pending.push(definition);
            }
        }
    }
    found
}

fn collect_refs<'a>(schema: &'a Value, targets: &mut Vec<&'a str>) {
    match schema {
        Value::Object(map) => {
            if let Some(name) = map
                .get("$ref")
                .and_then(Value::as_str)
                .and_then(|target| target.strip_prefix(DEFINITIONS))
            {
                targets.push(name);
            }
            map.values().for_each(|value| collect_refs(value, targets));
        }
        Value::Array(items) => items.iter().for_each(|value| collect_refs(value, targets)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The embedded schemas (what the server enforces) are the committed
    /// ones (what clients validate against).
    #[test]
    fn the_enforced_schemas_are_the_committed_ones() {
        for (file, text) in ALL {
            let path = format!("{}/schemas/{file}", env!("CARGO_MANIFEST_DIR"));
            let committed = std::fs::read_to_string(&path).unwrap();
            assert_eq!(
                *text, committed,
                "{file}: run `cargo run -p tourcast-codegen`"
            );
        }
    }

    #[test]
    fn every_client_message_type_has_a_variant() {
        let types: Vec<String> = variants(&client_message())
            .into_iter()
            .map(|(t, _)| t)
            .collect();
        assert_eq!(
            types,
            [
                "ping",
                "subscribe",
                "unsubscribe",
                "refresh",
                "refreshStats",
                "join",
                "leave",
                "publish"
            ]
        );
        // Each carries the definitions it refers to, and only those.
        let (_, subscribe) = &variants(&client_message())[1];
        let definitions = subscribe["definitions"].as_object().unwrap();
        let names: Vec<&String> = definitions.keys().collect();
        assert_eq!(names, ["Channel", "StreamPosition"]);
        let (_, ping) = &variants(&client_message())[0];
        assert!(ping.get("definitions").is_none());
        let server = variants(&server_message());
        assert_eq!(server.len(), 17);
        for (message_type, variant) in server {
            assert_eq!(
                variant["properties"]["type"]["const"], message_type,
                "{message_type}"
            );
        }
    }

    #[test]
    fn no_schema_uses_a_format() {
        for (file, text) in ALL {
            assert!(!text.contains("\"format\""), "{file}");
        }
    }
}
