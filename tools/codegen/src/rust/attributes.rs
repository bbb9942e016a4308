//! The serde attributes prost-build puts on the generated types, which give
//! them the JSON view: a `type` discriminator on envelopes, the proto JSON
//! names, absent optionals left out, enums as their JSON names, a
//! `(tourcast.v1.json_object)`'s bytes as the object itself, unknown
//! properties refused unless the message allows them.
//!
//! Every name is written out (`rename`) rather than derived by serde's
//! `rename_all`, so serde, the JSON Schema and the TypeScript types take it
//! from the same place: the descriptor.

use prost_build::Config;

use crate::model::{Cardinality, Envelope, Field, FieldType, Message, Protocol};
use crate::names::snake;

const DERIVE: &str = "#[derive(serde::Serialize, serde::Deserialize)]";

/// Adds every attribute of the JSON view to `config`; `runtime` is the
/// Rust path of the validation runtime (see [`super`]).
pub fn configure(config: &mut Config, protocol: &Protocol, runtime: &str) {
    for message in &protocol.messages {
        annotate_message(config, message, runtime);
    }
    for envelope in &protocol.envelopes {
        annotate_envelope(config, envelope);
    }
    for enumeration in &protocol.enums {
        let path = format!(".{}", enumeration.full_name);
        config.enum_attribute(&path, DERIVE);
        for value in &enumeration.values {
            let attribute = match &value.json_name {
                Some(name) => format!("#[serde(rename = \"{name}\")]"),
                // The zero value exists only because proto3 needs one.
                None => "#[serde(skip)]".to_string(),
            };
            config.field_attribute(format!("{path}.{}", value.name), attribute);
        }
    }
}

fn annotate_message(config: &mut Config, message: &Message, runtime: &str) {
    let path = format!(".{}", message.full_name);
    config.message_attribute(&path, DERIVE);
    if !message.allows_unknown_fields {
        config.message_attribute(&path, "#[serde(deny_unknown_fields)]");
    }
    for field in &message.fields {
        config.field_attribute(
            format!("{path}.{}", field.name),
            field_attributes(field, runtime).join("\n"),
        );
    }
}

/// A field's attributes: its JSON name, "left out when unset", and the
/// serde helpers of an enum field (prost stores enums as `i32`) or of a
/// JSON object's bytes (the runtime's `json_object`).
fn field_attributes(field: &Field, runtime: &str) -> Vec<String> {
    let mut attributes = vec![format!("#[serde(rename = \"{}\")]", field.json_name)];
    let optional = field.cardinality == Cardinality::Optional;
    if optional {
        attributes.push("#[serde(default, skip_serializing_if = \"Option::is_none\")]".into());
    }
    if let FieldType::Enum(enumeration) = &field.ty {
        let module = super::enums::module_name(&enumeration.name);
        let with = if optional && field.has_presence {
            format!("{module}::option")
        } else {
            module
        };
        attributes.push(format!("#[serde(with = \"{with}\")]"));
    }
    if field.ty == FieldType::JsonObject {
        // The model only accepts `optional bytes` here: `Option<Vec<u8>>`.
        attributes.push(format!("#[serde(with = \"{runtime}::json_object\")]"));
    }
    attributes
}

/// An envelope has no JSON view of its own: its oneof's enum is the JSON
/// message, internally tagged by `type`.
fn annotate_envelope(config: &mut Config, envelope: &Envelope) {
    let path = format!(".{}.{}", envelope.full_name, envelope.oneof);
    config.type_attribute(&path, format!("{DERIVE}\n#[serde(tag = \"type\")]"));
    for variant in &envelope.variants {
        config.field_attribute(
            format!("{path}.{}", variant.field),
            format!("#[serde(rename = \"{}\")]", variant.json_type),
        );
    }
}

/// The Rust path of an envelope's oneof enum, e.g. `server_message::Kind`.
pub fn oneof_enum(envelope: &Envelope) -> String {
    format!(
        "{}::{}",
        snake(&envelope.name),
        crate::names::upper_camel(&envelope.oneof)
    )
}
