//! The JSON Schemas of the protocol, derived from the generated types.
//!
//! The same functions feed `cargo run --bin codegen` (which writes
//! `schemas/`) and the server's validators, so what the server enforces is
//! exactly what the committed schemas publish.

use schemars::{JsonSchema, Schema, generate::SchemaSettings};
use serde_json::Value;

use super::v1::AvailabilityEvent;
use super::{ClientMessage, ServerMessage};

/// The `$id` base of the published schemas.
pub const SCHEMA_ID_BASE: &str = "https://tourcast.dev/schemas/v1/";

/// Every published schema: its file name under `schemas/` and its content.
pub fn all() -> Vec<(&'static str, Value)> {
    vec![
        ("client_message.schema.json", client_message()),
        ("server_message.schema.json", server_message()),
        ("availability_event.schema.json", availability_event()),
    ]
}

/// Schema of every client → server message.
pub fn client_message() -> Value {
    schema_of::<ClientMessage>("client_message.schema.json")
}

/// Schema of every server → client message.
pub fn server_message() -> Value {
    schema_of::<ServerMessage>("server_message.schema.json")
}

/// Schema of the availability event that publishers put on RabbitMQ.
pub fn availability_event() -> Value {
    schema_of::<AvailabilityEvent>("availability_event.schema.json")
}

fn schema_of<T: JsonSchema>(file: &str) -> Value {
    let generator = SchemaSettings::draft2020_12().into_generator();
    let schema: Schema = generator.into_root_schema_for::<T>();
    let mut value = schema.to_value();
    strip_null(&mut value);
    if let Value::Object(map) = &mut value {
        map.insert(
            "$id".into(),
            Value::String(format!("{SCHEMA_ID_BASE}{file}")),
        );
    }
    value
}

/// Makes optional fields "absent or valid" rather than "null or valid".
///
/// schemars describes `Option<T>` as nullable, but in this protocol an
/// optional field is omitted, never `null` (and the TypeScript bindings say
/// `requestId?: string`), so the schema must refuse `null` like they do.
fn strip_null(value: &mut Value) {
    match value {
        Value::Object(map) => {
            if let Some(Value::Array(types)) = map.get_mut("type") {
                types.retain(|t| t != "null");
                if types.len() == 1 {
                    let single = types.remove(0);
                    map.insert("type".into(), single);
                }
            }
            if let Some(Value::Array(any_of)) = map.get("anyOf") {
                let non_null: Vec<Value> = any_of
                    .iter()
                    .filter(|s| s.get("type").and_then(Value::as_str) != Some("null"))
                    .cloned()
                    .collect();
                if non_null.len() == 1 && any_of.len() == 2 {
                    map.remove("anyOf");
                    if let Value::Object(inner) = &non_null[0] {
                        for (k, v) in inner {
                            map.entry(k.clone()).or_insert_with(|| v.clone());
                        }
                    }
                }
            }
            if map.get("const").is_some_and(Value::is_null) {
                map.remove("const");
            }
            map.values_mut().for_each(strip_null);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_null),
        _ => {}
    }
}
