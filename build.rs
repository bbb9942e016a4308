//! Generates the Rust protocol types from `proto/`.
//!
//! The `.proto` files are the single definition of the protocol. This script
//! compiles them with `protox` (pure Rust, so no `protoc` is needed), then:
//!
//! 1. drives `prost-build` to emit the message types, adding the serde,
//!    schemars and ts-rs attributes that give them the JSON view of the SPEC
//!    (a `type` discriminator, camelCase, absent optionals omitted, enums as
//!    strings) — the JSON Schemas and TypeScript types derive from those;
//! 2. reads the `tourcast.v1.rules` custom options and writes a `Validate`
//!    impl per message, so protobuf frames obey the same constraints that the
//!    JSON Schema enforces on JSON frames.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use prost_reflect::{DescriptorPool, DynamicMessage, FieldDescriptor, Kind, MessageDescriptor};

const PACKAGE: &str = "tourcast.v1";
const PROTO_ROOT: &str = "proto";
const PROTO_FILES: &[&str] = &[
    "tourcast/v1/options.proto",
    "tourcast/v1/tour.proto",
    "tourcast/v1/client.proto",
    "tourcast/v1/server.proto",
    "tourcast/v1/event.proto",
];
/// Messages that are protobuf-only envelopes: their JSON view is their oneof.
const ENVELOPES: &[&str] = &["ClientMessage", "ServerMessage"];
/// Messages that only describe the custom options themselves.
const OPTION_MESSAGES: &[&str] = &["FieldRules", "MessageRules"];

/// The rules of one field, read from its `(tourcast.v1.rules)` option.
#[derive(Default, Debug)]
struct Rules {
    min_len: Option<u32>,
    max_len: Option<u32>,
    pattern: Option<String>,
    required: bool,
    json_type: Option<String>,
    min: Option<u64>,
    max: Option<u64>,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed={PROTO_ROOT}");
    for file in PROTO_FILES {
        println!("cargo:rerun-if-changed={PROTO_ROOT}/{file}");
    }

    let mut compiler = protox::Compiler::new([PROTO_ROOT])?;
    compiler.include_source_info(true).include_imports(true);
    compiler.open_files(PROTO_FILES)?;
    let pool = compiler.descriptor_pool();

    let mut config = prost_build::Config::new();
    let mut support = String::new();
    let messages: Vec<MessageDescriptor> = pool
        .all_messages()
        .filter(|m| m.package_name() == PACKAGE)
        .collect();

    for message in &messages {
        let name = message.name();
        if OPTION_MESSAGES.contains(&name) {
            continue;
        }
        let path = format!(".{}", message.full_name());
        if ENVELOPES.contains(&name) {
            annotate_envelope(&mut config, &pool, message);
        } else {
            annotate_message(&mut config, &pool, message, &path);
        }
        support.push_str(&validator_for(&pool, message));
    }

    for enumeration in pool.all_enums().filter(|e| e.package_name() == PACKAGE) {
        let path = format!(".{}", enumeration.full_name());
        config.enum_attribute(
            &path,
            "#[derive(serde::Serialize, serde::Deserialize, schemars::JsonSchema, ts_rs::TS)]\n\
             #[serde(rename_all = \"snake_case\")]",
        );
        // prost stores enum fields as i32; this module gives serde their JSON name.
        let _ = writeln!(
            support,
            "pub(crate) mod {module}_json {{\n\
             pub fn serialize<S: serde::Serializer>(value: &i32, serializer: S) -> Result<S::Ok, S::Error> {{\n\
             crate::protocol::json_enum::serialize::<super::{name}, S>(value, serializer)\n}}\n\
             pub fn deserialize<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<i32, D::Error> {{\n\
             crate::protocol::json_enum::deserialize::<super::{name}, D>(deserializer)\n}}\n}}",
            module = snake(enumeration.name()),
            name = enumeration.name()
        );
        // The zero value exists only because proto3 needs one; it is never valid on the wire.
        if let Some(zero) = enumeration.values().find(|v| v.number() == 0) {
            config.field_attribute(format!("{path}.{}", zero.name()), "#[serde(skip)]");
        }
    }

    support.push_str(&typescript_exports(&messages, &pool));

    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    config.compile_fds(compiler.file_descriptor_set())?;
    std::fs::write(out_dir.join("tourcast.v1.support.rs"), support)?;
    Ok(())
}

/// A oneof envelope: no JSON view of its own; its `kind` enum is the JSON
/// message, internally tagged by `type`.
fn annotate_envelope(
    config: &mut prost_build::Config,
    pool: &DescriptorPool,
    message: &MessageDescriptor,
) {
    let oneof_path = format!(".{}.kind", message.full_name());
    config.type_attribute(
        &oneof_path,
        format!(
            "#[derive(serde::Serialize, serde::Deserialize, schemars::JsonSchema, ts_rs::TS)]\n\
             #[serde(tag = \"type\")]\n\
             #[schemars(rename = \"{0}\")]\n\
             #[ts(rename = \"{0}\")]",
            message.name()
        ),
    );
    for field in message.fields() {
        let rules = rules_of(pool, &field);
        let json_type = rules.json_type.unwrap_or_else(|| field.name().to_string());
        config.field_attribute(
            format!("{oneof_path}.{}", field.name()),
            format!("#[serde(rename = \"{json_type}\")]"),
        );
    }
}

fn annotate_message(
    config: &mut prost_build::Config,
    pool: &DescriptorPool,
    message: &MessageDescriptor,
    path: &str,
) {
    let open = message_allows_unknown_fields(pool, message);
    config.message_attribute(
        path,
        format!(
            "#[derive(serde::Serialize, serde::Deserialize, schemars::JsonSchema, ts_rs::TS)]\n\
             #[serde(rename_all = \"camelCase\"{})]",
            if open { "" } else { ", deny_unknown_fields" }
        ),
    );

    for field in message.fields() {
        let rules = rules_of(pool, &field);
        let mut attrs: Vec<String> = Vec::new();
        let is_message = matches!(field.kind(), Kind::Message(_));
        let optional = !field.is_list() && field.supports_presence() && !rules.required;

        if optional {
            attrs.push("#[serde(default, skip_serializing_if = \"Option::is_none\")]".into());
            attrs.push("#[ts(optional)]".into());
        }

        match field.kind() {
            Kind::Message(inner) if rules.required => {
                // prost wraps every message field in Option; the JSON view of a
                // required one is the plain type.
                attrs.push(format!(
                    "#[schemars(with = \"{0}\")]\n#[ts(as = \"{0}\")]",
                    inner.name()
                ));
            }
            Kind::Enum(inner) => {
                // prost stores enums as i32; JSON carries the snake_case name.
                let name = inner.name();
                attrs.push(format!(
                    "#[serde(with = \"{}_json\")]\n#[schemars(with = \"{name}\")]\n#[ts(as = \"{name}\")]",
                    snake(name)
                ));
            }
            Kind::Uint64 | Kind::Int64 | Kind::Fixed64 | Kind::Sfixed64 | Kind::Sint64 => {
                // The SPEC carries 64-bit numbers as plain JSON numbers.
                attrs.push("#[ts(type = \"number\")]".into());
            }
            _ => {}
        }
        if !is_message {
            attrs.extend(schema_constraints(&rules));
        }
        if !attrs.is_empty() {
            config.field_attribute(format!("{path}.{}", field.name()), attrs.join("\n"));
        }
    }
}

/// schemars validation attributes for a scalar field's rules.
fn schema_constraints(rules: &Rules) -> Vec<String> {
    let mut attrs = Vec::new();
    let mut length = Vec::new();
    if let Some(min) = rules.min_len {
        length.push(format!("min = {min}"));
    }
    if let Some(max) = rules.max_len {
        length.push(format!("max = {max}"));
    }
    if !length.is_empty() {
        attrs.push(format!("#[schemars(length({}))]", length.join(", ")));
    }
    if let Some(pattern) = &rules.pattern {
        attrs.push(format!("#[schemars(pattern({pattern:?}))]"));
    }
    let mut range = Vec::new();
    if let Some(min) = rules.min {
        range.push(format!("min = {min}"));
    }
    if let Some(max) = rules.max {
        range.push(format!("max = {max}"));
    }
    if !range.is_empty() {
        attrs.push(format!("#[schemars(range({}))]", range.join(", ")));
    }
    attrs
}

fn rules_of(pool: &DescriptorPool, field: &FieldDescriptor) -> Rules {
    let Some(ext) = pool.get_extension_by_name(&format!("{PACKAGE}.rules")) else {
        return Rules::default();
    };
    let options = field.options();
    if !options.has_extension(&ext) {
        return Rules::default();
    }
    let value = options.get_extension(&ext);
    let Some(rules) = value.as_message() else {
        return Rules::default();
    };
    let get = |name: &str| -> Option<prost_reflect::Value> {
        rules
            .has_field_by_name(name)
            .then(|| rules.get_field_by_name(name).map(|v| v.into_owned()))
            .flatten()
    };
    Rules {
        min_len: get("min_len").and_then(|v| v.as_u32()),
        max_len: get("max_len").and_then(|v| v.as_u32()),
        pattern: get("pattern").and_then(|v| v.as_str().map(str::to_owned)),
        required: get("required").and_then(|v| v.as_bool()).unwrap_or(false),
        json_type: get("json_type").and_then(|v| v.as_str().map(str::to_owned)),
        min: get("min").and_then(|v| v.as_u64()),
        max: get("max").and_then(|v| v.as_u64()),
    }
}

fn message_allows_unknown_fields(pool: &DescriptorPool, message: &MessageDescriptor) -> bool {
    let Some(ext) = pool.get_extension_by_name(&format!("{PACKAGE}.message_rules")) else {
        return false;
    };
    let options: DynamicMessage = message.options();
    if !options.has_extension(&ext) {
        return false;
    }
    options
        .get_extension(&ext)
        .as_message()
        .and_then(|m| {
            m.get_field_by_name("allow_unknown_fields")
                .map(|v| v.as_bool() == Some(true))
        })
        .unwrap_or(false)
}

/// Writes `impl Validate for <Message>`: the protobuf-side twin of the JSON Schema.
fn validator_for(pool: &DescriptorPool, message: &MessageDescriptor) -> String {
    let rust_name = message.name();
    let mut body = String::new();
    let mut patterns: BTreeMap<String, String> = BTreeMap::new();

    if ENVELOPES.contains(&message.name()) {
        let _ = writeln!(body, "match &self.kind {{");
        for field in message.fields() {
            let variant = upper_camel(field.name());
            let module = snake(message.name());
            let _ = writeln!(
                body,
                "    Some({module}::Kind::{variant}(inner)) => inner.validate(path),"
            );
        }
        let _ = writeln!(body, "    None => Ok(()),\n}}");
    } else {
        for field in message.fields() {
            let rules = rules_of(pool, &field);
            let json = field.json_name();
            let ident = rust_field_ident(field.name());
            // Pointers are only built when a check fails, so a valid message allocates nothing.
            let child = format!("path, \"{json}\"");
            match field.kind() {
                Kind::Message(_) if field.is_list() => {
                    let _ = writeln!(
                        body,
                        "for (i, item) in self.{ident}.iter().enumerate() {{ item.validate(\"\").map_err(|v| v.under(path, &format!(\"{json}/{{i}}\")))?; }}"
                    );
                }
                Kind::Message(_) => {
                    let _ = writeln!(body, "match &self.{ident} {{");
                    let _ = writeln!(
                        body,
                        "    Some(inner) => inner.validate(\"\").map_err(|v| v.under(path, \"{json}\"))?,"
                    );
                    if rules.required {
                        let _ =
                            writeln!(body, "    None => return Err(Violation::missing({child})),");
                    } else {
                        let _ = writeln!(body, "    None => {{}}");
                    }
                    let _ = writeln!(body, "}}");
                }
                Kind::String => {
                    let optional = field.supports_presence();
                    let value = if optional {
                        let _ = writeln!(body, "if let Some(value) = &self.{ident} {{");
                        "value".to_string()
                    } else {
                        let _ = writeln!(body, "{{ let value = &self.{ident};");
                        "value".to_string()
                    };
                    if let Some(min) = rules.min_len {
                        let _ = writeln!(body, "    check_min_len({value}, {min}, {child})?;");
                    }
                    if let Some(max) = rules.max_len {
                        let _ = writeln!(body, "    check_max_len({value}, {max}, {child})?;");
                    }
                    if let Some(pattern) = &rules.pattern {
                        let id = format!("PATTERN_{}", patterns.len());
                        patterns.insert(id.clone(), pattern.clone());
                        let _ = writeln!(
                            body,
                            "    check_pattern({value}, &{id}, {pattern:?}, {child})?;"
                        );
                    }
                    let _ = writeln!(body, "}}");
                }
                Kind::Uint32 | Kind::Uint64 => {
                    let access = if field.supports_presence() {
                        format!("if let Some(value) = self.{ident} {{")
                    } else {
                        format!("{{ let value = self.{ident};")
                    };
                    let mut checks = String::new();
                    if let Some(min) = rules.min {
                        let _ = write!(checks, " check_min(u64::from(value), {min}, {child})?;");
                    }
                    if let Some(max) = rules.max {
                        let _ = write!(checks, " check_max(u64::from(value), {max}, {child})?;");
                    }
                    if !checks.is_empty() {
                        let _ = writeln!(body, "{access}{checks} }}");
                    }
                }
                Kind::Enum(inner) => {
                    let name = inner.name();
                    let _ = writeln!(body, "check_enum::<{name}>(self.{ident}, {child})?;");
                }
                _ => {}
            }
        }
        let _ = writeln!(body, "Ok(())");
    }

    let mut out = String::new();
    for (id, pattern) in &patterns {
        let _ = writeln!(
            out,
            "#[allow(non_upper_case_globals)]\nstatic {rust_name}_{id}: std::sync::LazyLock<regex::Regex> = \
             std::sync::LazyLock::new(|| regex::Regex::new({pattern:?}).expect(\"proto pattern compiles\"));"
        );
    }
    let body = patterns.keys().fold(body, |acc, id| {
        acc.replace(&format!("&{id},"), &format!("&{rust_name}_{id},"))
    });
    let _ = writeln!(
        out,
        "impl Validate for {rust_name} {{\n#[allow(unused_variables)]\nfn validate(&self, path: &str) -> Result<(), Violation> {{\n{body}}}\n}}\n"
    );
    out
}

/// Writes `typescript_exports()`: every type of the JSON view, rendered by ts-rs.
/// Generated here so the list always matches `proto/`.
fn typescript_exports(messages: &[MessageDescriptor], pool: &DescriptorPool) -> String {
    let mut types: Vec<(String, String)> = Vec::new();
    for message in messages {
        let name = message.name();
        if OPTION_MESSAGES.contains(&name) {
            continue;
        }
        if ENVELOPES.contains(&name) {
            types.push((name.to_string(), format!("{}::Kind", snake(name))));
        } else {
            types.push((name.to_string(), name.to_string()));
        }
    }
    for enumeration in pool.all_enums().filter(|e| e.package_name() == PACKAGE) {
        types.push((
            enumeration.name().to_string(),
            enumeration.name().to_string(),
        ));
    }
    types.sort();
    let mut out = String::from(
        "/// Every type of the JSON view, as (TypeScript name, rendered module).\n\
         pub fn typescript_exports(cfg: &ts_rs::Config) -> Vec<(&'static str, Result<String, ts_rs::ExportError>)> {\n\
         use ts_rs::TS as _;\nvec![\n",
    );
    for (ts_name, rust_path) in types {
        let _ = writeln!(
            out,
            "    (\"{ts_name}\", {rust_path}::export_to_string(cfg)),"
        );
    }
    out.push_str("]\n}\n");
    out
}

fn upper_camel(snake: &str) -> String {
    snake
        .split('_')
        .map(|part| {
            let mut chars = part.chars();
            chars
                .next()
                .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect()
}

fn snake(camel: &str) -> String {
    let mut out = String::new();
    for (i, c) in camel.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

fn rust_field_ident(name: &str) -> String {
    match name {
        "type" | "ref" | "match" | "in" => format!("r#{name}"),
        other => other.to_string(),
    }
}
