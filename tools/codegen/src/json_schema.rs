//! The JSON Schemas of the JSON view, as committed in `schemas/` and as the
//! gateway compiles them (build.rs writes the same text to `OUT_DIR`).
//!
//! One schema per envelope (`client_message.schema.json`,
//! `server_message.schema.json`) and per publisher event (a message with a
//! `(tourcast.v1.routing_key)`), shaped for every mainstream validator
//! (ajv and ajv-cli with no flags, python-jsonschema, the `jsonschema`
//! crate):
//!
//! - draft-07, no `format` (integer widths are `minimum` / `maximum`);
//! - optional fields are "absent or valid", never `null`;
//! - a union is discriminated on `type`: one `if`/`then` per variant, each
//!   variant a definition titled with its message name, so a validator
//!   reports the offending field (`/tourId`) as the server does, not "no
//!   branch of oneOf matched" at `/`;
//! - a `(buf.validate.message).oneof` group is `anyOf` (one is present,
//!   when required) plus `not` `anyOf` (two are), so that each failure
//!   names its fields, which the server words as the protobuf side does.
//!
//! Keys are sorted (serde_json's map), so the output is stable byte for byte.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use crate::Error;
use crate::model::{
    Cardinality, Enumeration, Envelope, Field, FieldType, Integer, Message, Protocol,
};
use crate::names::snake;
use crate::rules::OneofRule;

/// The `$id` base of the schemas.
pub const SCHEMA_ID_BASE: &str = "https://tourcast.dev/schemas/v1/";

/// The draft the schemas declare: the one every validator supports by
/// default (ajv-cli's, python-jsonschema, most schema-to-type generators).
pub const DRAFT: &str = "http://json-schema.org/draft-07/schema#";

/// One schema file.
#[derive(Debug, Clone)]
pub struct SchemaFile {
    /// Its file name, e.g. `client_message.schema.json`.
    pub file: String,
    /// Its root's title, the envelope's or event's name.
    pub title: String,
    /// The schema.
    pub schema: Value,
}

impl SchemaFile {
    /// The file's text: pretty-printed, with a final newline.
    pub fn text(&self) -> String {
        // Serializing a `Value` cannot fail (every key is a string).
        serde_json::to_string_pretty(&self.schema).unwrap_or_default() + "\n"
    }
}

/// The schema file name of an envelope or event: `ClientMessage` →
/// `client_message.schema.json`.
pub fn file_name(type_name: &str) -> String {
    format!("{}.schema.json", snake(type_name))
}

/// Every schema: the envelopes', then the publisher events'.
pub fn schema_files(protocol: &Protocol) -> Result<Vec<SchemaFile>, Error> {
    let mut files = Vec::new();
    for envelope in &protocol.envelopes {
        files.push(SchemaFile {
            file: file_name(&envelope.name),
            title: envelope.name.clone(),
            schema: envelope_schema(protocol, envelope)?,
        });
    }
    for event in protocol.events() {
        files.push(SchemaFile {
            file: file_name(&event.name),
            title: event.name.clone(),
            schema: event_schema(protocol, event),
        });
    }
    Ok(files)
}

/// An envelope's schema: the `type`-discriminated union of its variants.
fn envelope_schema(protocol: &Protocol, envelope: &Envelope) -> Result<Value, Error> {
    let mut definitions = BTreeMap::new();
    let mut dispatch = Vec::new();
    let mut types = Vec::new();
    let variant_messages: Vec<&Message> = envelope
        .variants
        .iter()
        .filter_map(|v| protocol.message(&v.message.full_name))
        .collect();
    collect_definitions(protocol, &variant_messages, &mut definitions);
    for (variant, message) in envelope.variants.iter().zip(&variant_messages) {
        let title = &message.name;
        if definitions.contains_key(title) {
            return Err(Error::Collision(format!(
                "{}: the variant {title} is also a field's type, so its definition \
                 would collide with the variant's",
                envelope.full_name
            )));
        }
        let description = variant.doc.text().or_else(|| message.doc.text());
        let mut schema = message_schema(message, description, Some(&variant.json_type));
        schema.insert("title".into(), json!(title));
        definitions.insert(title.clone(), Value::Object(schema));
        dispatch.push(json!({
            "if": {
                "type": "object",
                "required": ["type"],
                "properties": { "type": { "const": variant.json_type } }
            },
            "then": { "$ref": format!("#/definitions/{title}") }
        }));
        types.push(json!(variant.json_type));
    }
    let mut root = Map::new();
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
    if let Some(description) = envelope.oneof_doc.text() {
        root.insert("description".into(), json!(description));
    }
    Ok(document(root, &envelope.name, definitions))
}

/// A publisher event's schema: the message itself.
fn event_schema(protocol: &Protocol, event: &Message) -> Value {
    let mut definitions = BTreeMap::new();
    collect_definitions(protocol, &[event], &mut definitions);
    let root = message_schema(event, event.doc.text(), None);
    document(root, &event.name, definitions)
}

/// A schema document: `root` with what every schema file carries: `$id`, `$schema`,
/// its title and its definitions.
fn document(
    mut root: Map<String, Value>,
    title: &str,
    definitions: BTreeMap<String, Value>,
) -> Value {
    root.insert(
        "$id".into(),
        json!(format!("{SCHEMA_ID_BASE}{}", file_name(title))),
    );
    root.insert("$schema".into(), json!(DRAFT));
    root.insert("title".into(), json!(title));
    if !definitions.is_empty() {
        root.insert("definitions".into(), json!(definitions));
    }
    Value::Object(root)
}

/// Adds a titled definition for every message and enum the `roots` refer
/// to, directly or through another definition.
fn collect_definitions(
    protocol: &Protocol,
    roots: &[&Message],
    definitions: &mut BTreeMap<String, Value>,
) {
    let mut pending: Vec<&Message> = roots.to_vec();
    while let Some(message) = pending.pop() {
        for field in &message.fields {
            match &field.ty {
                FieldType::Message(t) if !definitions.contains_key(&t.name) => {
                    if let Some(inner) = protocol.message(&t.full_name) {
                        let mut schema = message_schema(inner, inner.doc.text(), None);
                        schema.insert("title".into(), json!(inner.name));
                        definitions.insert(inner.name.clone(), Value::Object(schema));
                        pending.push(inner);
                    }
                }
                FieldType::Enum(t) if !definitions.contains_key(&t.name) => {
                    if let Some(inner) = protocol.enumeration(&t.full_name) {
                        definitions.insert(inner.name.clone(), enum_schema(inner));
                    }
                }
                _ => {}
            }
        }
    }
}

/// A message as a JSON object schema (untitled). `json_type` adds the
/// `type` discriminator of an envelope variant.
fn message_schema(
    message: &Message,
    description: Option<String>,
    json_type: Option<&str>,
) -> Map<String, Value> {
    let mut properties = Map::new();
    let mut required = Vec::new();
    if let Some(json_type) = json_type {
        properties.insert(
            "type".into(),
            json!({ "const": json_type, "type": "string" }),
        );
        required.push(json!("type"));
    }
    for field in &message.fields {
        properties.insert(field.json_name.clone(), field_schema(field));
        if field.cardinality != Cardinality::Optional {
            required.push(json!(field.json_name));
        }
    }
    let mut schema = Map::new();
    schema.insert("type".into(), json!("object"));
    schema.insert("properties".into(), Value::Object(properties));
    if !required.is_empty() {
        schema.insert("required".into(), Value::Array(required));
    }
    if !message.allows_unknown_fields {
        schema.insert("additionalProperties".into(), json!(false));
    }
    if let Some(description) = description {
        schema.insert("description".into(), json!(description));
    }
    add_oneof_rules(&mut schema, message);
    schema
}

/// The `(buf.validate.message).oneof` groups: one group's keywords sit on
/// the message itself; several go under `allOf`, one entry each.
fn add_oneof_rules(schema: &mut Map<String, Value>, message: &Message) {
    let json_names = |rule: &OneofRule| -> Vec<String> {
        rule.fields
            .iter()
            .filter_map(|name| message.fields.iter().find(|f| &f.name == name))
            .map(|f| f.json_name.clone())
            .collect()
    };
    let mut groups: Vec<Map<String, Value>> = message
        .oneof_rules
        .iter()
        .map(|rule| oneof_keywords(&json_names(rule), rule.required))
        .collect();
    match groups.len() {
        0 => {}
        1 => schema.extend(groups.remove(0)),
        _ => {
            let all: Vec<Value> = groups.into_iter().map(Value::Object).collect();
            schema.insert("allOf".into(), Value::Array(all));
        }
    }
}

/// `anyOf` of "this one is present" (when one is required) and `not anyOf`
/// of "these two are present", for every pair. Each alternative names its
/// fields in `properties` too: validators in strict mode (ajv's
/// strictRequired) refuse a `required` they cannot see defined.
fn oneof_keywords(fields: &[String], required: bool) -> Map<String, Value> {
    let present = |names: &[&String]| {
        let properties: Map<String, Value> = names
            .iter()
            .map(|name| (name.to_string(), json!(true)))
            .collect();
        json!({ "properties": properties, "required": names })
    };
    let mut pairs = Vec::new();
    for (i, a) in fields.iter().enumerate() {
        for b in &fields[i + 1..] {
            pairs.push(present(&[a, b]));
        }
    }
    let mut keywords = Map::new();
    if required {
        let alternatives: Vec<Value> = fields.iter().map(|f| present(&[f])).collect();
        keywords.insert("anyOf".into(), Value::Array(alternatives));
    }
    keywords.insert("not".into(), json!({ "anyOf": pairs }));
    keywords
}

/// A field's schema, with its description and its rules.
fn field_schema(field: &Field) -> Value {
    let mut schema = if field.cardinality == Cardinality::Repeated {
        let mut array = Map::new();
        array.insert("type".into(), json!("array"));
        array.insert("items".into(), Value::Object(value_schema(field)));
        array
    } else {
        value_schema(field)
    };
    if let Some(description) = field.doc.text() {
        schema.insert("description".into(), json!(description));
    }
    Value::Object(schema)
}

/// The schema of one value of the field's type (an array's item).
fn value_schema(field: &Field) -> Map<String, Value> {
    let rules = &field.rules;
    let mut schema = Map::new();
    match &field.ty {
        FieldType::Bool => {
            schema.insert("type".into(), json!("boolean"));
        }
        FieldType::Float => {
            schema.insert("type".into(), json!("number"));
        }
        FieldType::String => {
            schema.insert("type".into(), json!("string"));
            if let Some(min) = rules.min_len {
                schema.insert("minLength".into(), json!(min));
            }
            if let Some(max) = rules.max_len {
                schema.insert("maxLength".into(), json!(max));
            }
            if let Some(pattern) = &rules.pattern {
                schema.insert("pattern".into(), json!(pattern));
            }
        }
        FieldType::Integer(integer) => {
            let (min, max) = bounds(*integer);
            schema.insert("type".into(), json!("integer"));
            schema.insert("minimum".into(), rules.min.map_or(min, |m| json!(m)));
            schema.insert("maximum".into(), rules.max.map_or(max, |m| json!(m)));
        }
        FieldType::Message(t) | FieldType::Enum(t) => {
            schema.insert("$ref".into(), json!(format!("#/definitions/{}", t.name)));
        }
        // Any object: its size (`bytes.max_len`) has no JSON Schema
        // keyword; the server checks it, and the proto comment states it.
        FieldType::JsonObject => {
            schema.insert("type".into(), json!("object"));
        }
    }
    schema
}

/// The bounds of an integer type, as JSON numbers.
fn bounds(integer: Integer) -> (Value, Value) {
    match integer {
        Integer::Uint32 => (json!(0), json!(u32::MAX)),
        Integer::Uint64 => (json!(0), json!(u64::MAX)),
        Integer::Int32 => (json!(i32::MIN), json!(i32::MAX)),
        Integer::Int64 => (json!(i64::MIN), json!(i64::MAX)),
    }
}

/// An enum: one `const` per defined value (the zero value excluded).
fn enum_schema(enumeration: &Enumeration) -> Value {
    let values: Vec<Value> = enumeration
        .values
        .iter()
        .filter_map(|value| {
            let json_name = value.json_name.as_ref()?;
            let mut schema = Map::new();
            schema.insert("const".into(), json!(json_name));
            schema.insert("type".into(), json!("string"));
            if let Some(description) = value.doc.text() {
                schema.insert("description".into(), json!(description));
            }
            Some(Value::Object(schema))
        })
        .collect();
    let mut schema = Map::new();
    schema.insert("oneOf".into(), Value::Array(values));
    schema.insert("title".into(), json!(enumeration.name));
    if let Some(description) = enumeration.doc.text() {
        schema.insert("description".into(), json!(description));
    }
    Value::Object(schema)
}
