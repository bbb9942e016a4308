//! The JSON Schemas of the protocol, derived from the generated types.
//!
//! The same types feed `cargo run --bin codegen` (which writes `schemas/`)
//! and the server's validators, so what the server enforces is exactly what
//! the committed schemas publish:
//!
//! - [`client_message`] is the union as schemars renders it, a `oneOf` of
//!   inline variants; the codec compiles one validator per `type` from it.
//! - [`all`] publishes the same variants for every mainstream validator
//!   (ajv and ajv-cli with no flags, python-jsonschema, the `jsonschema`
//!   crate): draft-07, no custom `format`s (integer widths become `minimum` /
//!   `maximum`), and each union discriminated on `type`, with one titled
//!   definition per message, so that a generic validator reports the
//!   offending field (`/tourId`) as the server does, not "no branch of
//!   oneOf matched" at `/`.

use std::collections::BTreeMap;

use schemars::{JsonSchema, Schema, generate::SchemaSettings};
use serde_json::{Map, Value, json};

use super::v1::{AvailabilityEvent, BookingEvent};
use super::{ClientMessage, ServerMessage};

/// The `$id` base of the published schemas.
pub const SCHEMA_ID_BASE: &str = "https://tourcast.dev/schemas/v1/";

/// The draft the published schemas declare: the one every validator
/// supports by default (ajv-cli's default, python-jsonschema, the
/// `jsonschema` crate, most schema-to-type generators).
pub const PUBLISHED_DRAFT: &str = "http://json-schema.org/draft-07/schema#";

/// Every published schema: its file name under `schemas/` and its content.
pub fn all() -> Vec<(&'static str, Value)> {
    vec![
        (
            "client_message.schema.json",
            publish(client_message(), &branch_titles::<ClientMessage>()),
        ),
        (
            "server_message.schema.json",
            publish(server_message(), &branch_titles::<ServerMessage>()),
        ),
        (
            "availability_event.schema.json",
            publish(availability_event(), &BTreeMap::new()),
        ),
        (
            "booking_event.schema.json",
            publish(booking_event(), &BTreeMap::new()),
        ),
    ]
}

/// Schema of every client → server message, as the codec compiles it.
pub fn client_message() -> Value {
    schema_of::<ClientMessage>("client_message.schema.json")
}

/// Schema of every server → client message (draft 2020-12, `oneOf`).
pub fn server_message() -> Value {
    schema_of::<ServerMessage>("server_message.schema.json")
}

/// Schema of the availability event that publishers put on RabbitMQ.
pub fn availability_event() -> Value {
    schema_of::<AvailabilityEvent>("availability_event.schema.json")
}

/// Schema of the booking notification that publishers put on RabbitMQ.
pub fn booking_event() -> Value {
    schema_of::<BookingEvent>("booking_event.schema.json")
}

fn schema_of<T: JsonSchema>(file: &str) -> Value {
    let generator = SchemaSettings::draft2020_12().into_generator();
    let schema: Schema = generator.into_root_schema_for::<T>();
    let mut value = schema.to_value();
    strip_null(&mut value);
    integer_formats_to_bounds(&mut value);
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

/// Replaces schemars' integer-width formats (`uint32`, `uint64`, …), which
/// no validator knows (ajv refuses them in strict mode, python-jsonschema
/// ignores them), by the `minimum` / `maximum` they stand for, keeping a
/// tighter bound that the proto rules already set.
fn integer_formats_to_bounds(value: &mut Value) {
    match value {
        Value::Object(map) => {
            // Every JSON number is a double already; the format only
            // upsets validators that do not know it.
            if matches!(
                map.get("format").and_then(Value::as_str),
                Some("double" | "float")
            ) {
                map.remove("format");
            }
            let range = map
                .get("format")
                .and_then(Value::as_str)
                .and_then(|format| {
                    Some(match format {
                        "uint8" => (json!(0), json!(u8::MAX)),
                        "uint16" => (json!(0), json!(u16::MAX)),
                        "uint32" | "uint" => (json!(0), json!(u32::MAX)),
                        "uint64" => (json!(0), json!(u64::MAX)),
                        "int8" => (json!(i8::MIN), json!(i8::MAX)),
                        "int16" => (json!(i16::MIN), json!(i16::MAX)),
                        "int32" | "int" => (json!(i32::MIN), json!(i32::MAX)),
                        "int64" => (json!(i64::MIN), json!(i64::MAX)),
                        _ => return None,
                    })
                });
            if let Some((min, max)) = range {
                map.remove("format");
                let tighter_min = map
                    .get("minimum")
                    .is_some_and(|m| as_f64(m) >= as_f64(&min));
                if !tighter_min {
                    map.insert("minimum".into(), min);
                }
                let tighter_max = map
                    .get("maximum")
                    .is_some_and(|m| as_f64(m) <= as_f64(&max));
                if !tighter_max {
                    map.insert("maximum".into(), max);
                }
            }
            map.values_mut().for_each(integer_formats_to_bounds);
        }
        Value::Array(items) => items.iter_mut().for_each(integer_formats_to_bounds),
        _ => {}
    }
}

fn as_f64(value: &Value) -> f64 {
    value.as_f64().unwrap_or(f64::NAN)
}

/// The name of each variant of a `type`-tagged union, by its JSON `type`:
/// the generated type's name, as in `bindings/types/` (`"subscribe"` →
/// `Subscribe`, `"error"` → `ErrorReply`). Read from ts-rs's rendering of
/// the union (`{ "type": "ping" } & Ping | …`), so it follows `proto/`.
pub fn branch_titles<T: ts_rs::TS>() -> BTreeMap<String, String> {
    let rendered = T::inline(&ts_rs::Config::new());
    let mut titles = BTreeMap::new();
    for branch in rendered.split(" | ") {
        let parsed = branch
            .strip_prefix("{ \"type\": \"")
            .and_then(|rest| rest.split_once("\" } & "));
        if let Some((message_type, name)) = parsed {
            titles.insert(message_type.to_string(), name.trim().to_string());
        }
    }
    titles
}

/// The published form of a schema (see the module docs). `titles` names the
/// variants of a `oneOf` union by their `type`; a union variant without a
/// name is a generator bug and panics, naming it.
pub fn publish(mut schema: Value, titles: &BTreeMap<String, String>) -> Value {
    let Value::Object(root) = &mut schema else {
        return schema;
    };
    let mut definitions = match root.remove("$defs") {
        Some(Value::Object(defs)) => defs,
        _ => Map::new(),
    };
    if let Some(Value::Array(variants)) = root.remove("oneOf") {
        let mut types = Vec::new();
        let mut dispatch = Vec::new();
        for mut variant in variants {
            let message_type = variant
                .pointer("/properties/type/const")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .unwrap_or_else(|| panic!("a union variant has no `type` const: {variant}"));
            let title = titles.get(&message_type).unwrap_or_else(|| {
                panic!("schema.rs: no name for the union variant with type {message_type:?}")
            });
            assert!(
                !definitions.contains_key(title),
                "schema.rs: the variant {title} collides with a definition of that name"
            );
            if let Value::Object(map) = &mut variant {
                map.insert("title".into(), Value::String(title.clone()));
            }
            definitions.insert(title.clone(), variant);
            dispatch.push(json!({
                "if": {
                    "type": "object",
                    "required": ["type"],
                    "properties": { "type": { "const": message_type } }
                },
                "then": { "$ref": format!("#/definitions/{title}") }
            }));
            types.push(Value::String(message_type));
        }
        root.insert("type".into(), json!("object"));
        root.insert("required".into(), json!(["type"]));
        root.insert(
            "properties".into(),
            json!({ "type": {
                "description": "Names the message; the other fields are those of the definition of that name.",
                "type": "string",
                "enum": types
            }}),
        );
        root.insert("allOf".into(), Value::Array(dispatch));
    }
    for (name, definition) in definitions.iter_mut() {
        if let Value::Object(map) = definition {
            map.entry("title")
                .or_insert_with(|| Value::String(name.clone()));
        }
    }
    if !definitions.is_empty() {
        root.insert("definitions".into(), Value::Object(definitions));
    }
    root.insert("$schema".into(), Value::String(PUBLISHED_DRAFT.into()));
    rewrite_refs(&mut schema);
    schema
}

/// `#/$defs/X` → `#/definitions/X` (draft-07 spelling).
fn rewrite_refs(value: &mut Value) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(target)) = map.get_mut("$ref")
                && let Some(name) = target.strip_prefix("#/$defs/")
            {
                *target = format!("#/definitions/{name}");
            }
            map.values_mut().for_each(rewrite_refs);
        }
        Value::Array(items) => items.iter_mut().for_each(rewrite_refs),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the server enforces per `type` (the codec compiles one validator
    /// per `oneOf` variant of [`client_message`]) is what the published schema
    /// enforces for that `type`: the same schema, titled, refs respelled.
    #[test]
    fn published_branches_are_the_codec_variants() {
        for (internal, titles, file) in [
            (
                client_message(),
                branch_titles::<ClientMessage>(),
                "client_message.schema.json",
            ),
            (
                server_message(),
                branch_titles::<ServerMessage>(),
                "server_message.schema.json",
            ),
        ] {
            let published = publish(internal.clone(), &titles);
            let variants = internal["oneOf"].as_array().unwrap();
            assert_eq!(titles.len(), variants.len(), "{file}: {titles:?}");
            for variant in variants {
                let message_type = variant["properties"]["type"]["const"].as_str().unwrap();
                let title = &titles[message_type];
                let mut expected = variant.clone();
                expected["title"] = json!(title);
                rewrite_refs(&mut expected);
                assert_eq!(published["definitions"][title], expected, "{file}: {title}");
            }
            assert!(published.get("oneOf").is_none() && published.get("$defs").is_none());
        }
    }

    #[test]
    fn branches_are_named_like_the_typescript_types() {
        let titles = branch_titles::<ServerMessage>();
        assert_eq!(titles["error"], "ErrorReply");
        assert_eq!(titles["tour.availability.updated"], "AvailabilityUpdated");
        assert_eq!(branch_titles::<ClientMessage>()["subscribe"], "Subscribe");
    }

    #[test]
    fn no_published_schema_uses_a_format() {
        for (file, schema) in all() {
            assert!(!schema.to_string().contains("\"format\""), "{file}");
        }
    }
}
