//! Generates the Rust protocol types from `proto/`.
//!
//! The `.proto` files are the single definition of the protocol. This script
//! compiles them with `protox` (pure Rust, so no `protoc` is needed), then:
//!
//! 1. drives `prost-build` to emit the message types, adding the serde,
//!    schemars and ts-rs attributes that give them the JSON view of the SPEC
//!    (a `type` discriminator, camelCase, absent optionals omitted, enums as
//!    strings). The schemars attributes carry each field's standard
//!    `buf.validate` rules, so the JSON Schemas (and through them the JSON
//!    validator and the TypeScript types) derive from the same rules;
//! 2. generates a `Validate` impl per message from the same rules, so
//!    protobuf frames obey them without reflection (see
//!    `src/protocol/validate.rs` for why this is not `prost-protovalidate`);
//!    a `buf.validate` rule it does not implement fails the build;
//! 3. writes that and the rest of the support module (enum JSON names, the
//!    TypeScript export list) with `quote`, formatted by `prettyplease`.

use std::path::PathBuf;

use proc_macro2::TokenStream;
use prost_reflect::{DescriptorPool, DynamicMessage, FieldDescriptor, Kind, MessageDescriptor};
use quote::{format_ident, quote};

const PACKAGE: &str = "tourcast.v1";
const PROTO_ROOT: &str = "proto";
const PROTO_FILES: &[&str] = &[
    "tourcast/v1/options.proto",
    "tourcast/v1/tour.proto",
    "tourcast/v1/client.proto",
    "tourcast/v1/notification.proto",
    "tourcast/v1/stats.proto",
    "tourcast/v1/server.proto",
    "tourcast/v1/event.proto",
];
/// Messages that are protobuf-only envelopes: their JSON view is their oneof.
const ENVELOPES: &[&str] = &["ClientMessage", "ServerMessage"];

/// The `buf.validate` rules of one field that the JSON Schema expresses.
#[derive(Default, Debug)]
struct Rules {
    min_len: Option<u64>,
    max_len: Option<u64>,
    pattern: Option<String>,
    required: bool,
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
    let messages: Vec<MessageDescriptor> = pool
        .all_messages()
        .filter(|m| m.package_name() == PACKAGE)
        .collect();

    let mut support = Vec::new();
    for message in &messages {
        let path = format!(".{}", message.full_name());
        if ENVELOPES.contains(&message.name()) {
            annotate_envelope(&mut config, &pool, message);
        } else {
            annotate_message(&mut config, &pool, message, &path);
        }
        support.push(validator_for(&pool, message));
    }

    for enumeration in pool.all_enums().filter(|e| e.package_name() == PACKAGE) {
        let path = format!(".{}", enumeration.full_name());
        config.enum_attribute(
            &path,
            "#[derive(serde::Serialize, serde::Deserialize, schemars::JsonSchema, ts_rs::TS)]\n\
             #[serde(rename_all = \"snake_case\")]",
        );
        support.push(enum_json_module(enumeration.name()));
        // The zero value exists only because proto3 needs one; it is never valid on the wire.
        if let Some(zero) = enumeration.values().find(|v| v.number() == 0) {
            config.field_attribute(format!("{path}.{}", zero.name()), "#[serde(skip)]");
        }
        for value in enumeration.values() {
            let json_value = extension(&pool, &value.options(), &format!("{PACKAGE}.json_value"))
                .and_then(|v| v.as_str().map(str::to_owned));
            if let Some(json_value) = json_value {
                config.field_attribute(
                    format!("{path}.{}", value.name()),
                    format!("#[serde(rename = \"{json_value}\")]"),
                );
            }
        }
    }
    support.push(typescript_exports(&messages, &pool));

    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    // buf.validate's own messages are options, not wire types: generate
    // nothing for them (nothing refers to this path).
    config.extern_path(".buf.validate", "crate::protocol::buf_validate_unused");
    config.compile_fds(compiler.file_descriptor_set())?;
    let support = syn::parse2(quote! { #(#support)* })?;
    std::fs::write(
        out_dir.join("tourcast.v1.support.rs"),
        prettyplease::unparse(&support),
    )?;
    Ok(())
}

/// prost stores enum fields as i32; this module gives serde their JSON name.
fn enum_json_module(name: &str) -> TokenStream {
    let module = format_ident!("{}_json", snake(name));
    let name = format_ident!("{name}");
    quote! {
        // Not every enum is used both plain and `optional`.
        #[allow(dead_code)]
        pub(crate) mod #module {
            pub fn serialize<S: serde::Serializer>(value: &i32, serializer: S) -> Result<S::Ok, S::Error> {
                crate::protocol::json_enum::serialize::<super::#name, S>(value, serializer)
            }
            pub fn deserialize<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<i32, D::Error> {
                crate::protocol::json_enum::deserialize::<super::#name, D>(deserializer)
            }
            /// The same for an `optional` enum field (`Option<i32>`).
            pub mod option {
                pub fn serialize<S: serde::Serializer>(value: &Option<i32>, serializer: S) -> Result<S::Ok, S::Error> {
                    crate::protocol::json_enum::serialize_option::<super::super::#name, S>(value, serializer)
                }
                pub fn deserialize<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<i32>, D::Error> {
                    crate::protocol::json_enum::deserialize_option::<super::super::#name, D>(deserializer)
                }
            }
        }
    }
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
        let json_type = json_type_of(pool, &field).unwrap_or_else(|| field.name().to_string());
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
    // A `(buf.validate.message).oneof` group: at most one of its fields
    // (exactly one when required), in JSON Schema terms.
    for group in oneof_rules(pool, message) {
        let alternatives: Vec<String> = group
            .fields
            .iter()
            .map(|f| {
                let name = f.json_name();
                format!("{{\"properties\": {{\"{name}\": true}}, \"required\": [\"{name}\"]}}")
            })
            .collect();
        // `anyOf` + `not` rather than `oneOf`: each failure then names its
        // fields (the missing ones, or the pair set together), which the
        // server words the same as the protobuf side.
        let exclusive = format!(
            "\"not\" = {{\"anyOf\": [{}]}}",
            pairs_of(&group.fields).join(", ")
        );
        let keywords = if group.required {
            format!("\"anyOf\" = [{}], {exclusive}", alternatives.join(", "))
        } else {
            exclusive
        };
        config.message_attribute(path, format!("#[schemars(extend({keywords}))]"));
    }

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
                let (module, with) = if optional {
                    (
                        format!("{}_json::option", snake(name)),
                        format!("Option<{name}>"),
                    )
                } else {
                    (format!("{}_json", snake(name)), name.to_string())
                };
                attrs.push(format!(
                    "#[serde(with = \"{module}\")]\n#[schemars(with = \"{with}\")]\n#[ts(as = \"{with}\")]"
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

/// The field's `(buf.validate.field)` rules, as far as the JSON view needs them.
fn rules_of(pool: &DescriptorPool, field: &FieldDescriptor) -> Rules {
    let Some(rules) = extension(pool, &field.options(), "buf.validate.field") else {
        return Rules::default();
    };
    let rules = rules.as_message().cloned().unwrap_or_else(|| {
        panic!(
            "(buf.validate.field) on {} is not a message",
            field.full_name()
        )
    });
    let mut parsed = Rules {
        required: get(&rules, "required").and_then(|v| v.as_bool()) == Some(true),
        ..Rules::default()
    };
    supported_only(field, &rules, &["required", "string", "uint32", "uint64"]);
    assert!(
        !parsed.required || matches!(field.kind(), Kind::Message(_)),
        "{}: `required` on a scalar field is not implemented by build.rs's validators",
        field.full_name()
    );
    if let Some(string) = get(&rules, "string") {
        let string = string.as_message().cloned().expect("StringRules");
        supported_only(field, &string, &["min_len", "max_len", "pattern"]);
        parsed.min_len = get(&string, "min_len").and_then(|v| v.as_u64());
        parsed.max_len = get(&string, "max_len").and_then(|v| v.as_u64());
        parsed.pattern = get(&string, "pattern").and_then(|v| v.as_str().map(str::to_owned));
    }
    for (kind, widen) in [("uint32", true), ("uint64", false)] {
        if let Some(numbers) = get(&rules, kind) {
            let numbers = numbers.as_message().cloned().expect("UInt*Rules");
            supported_only(field, &numbers, &["gte", "lte", "gt", "lt"]);
            let value = |name: &str| {
                get(&numbers, name).and_then(|v| {
                    if widen {
                        v.as_u32().map(u64::from)
                    } else {
                        v.as_u64()
                    }
                })
            };
            parsed.min = value("gte").or_else(|| value("gt").map(|gt| gt + 1));
            parsed.max = value("lte").or_else(|| value("lt").and_then(|lt| lt.checked_sub(1)));
        }
    }
    parsed
}

/// Fails the build when `rules` sets anything but `supported`: a rule the
/// generated validators would silently skip must not exist.
fn supported_only(field: &FieldDescriptor, rules: &DynamicMessage, supported: &[&str]) {
    for (descriptor, _) in rules.fields() {
        assert!(
            supported.contains(&descriptor.name()),
            "{}: buf.validate rule `{}` is not implemented by build.rs's validators",
            field.full_name(),
            descriptor.full_name()
        );
    }
}

/// A set field of a dynamic message (unset ones are `None`).
fn get(message: &DynamicMessage, name: &str) -> Option<prost_reflect::Value> {
    message
        .has_field_by_name(name)
        .then(|| message.get_field_by_name(name).map(|v| v.into_owned()))
        .flatten()
}

/// The value of the extension `name` in `options`, when set.
fn extension(
    pool: &DescriptorPool,
    options: &DynamicMessage,
    name: &str,
) -> Option<prost_reflect::Value> {
    let ext = pool.get_extension_by_name(name)?;
    options
        .has_extension(&ext)
        .then(|| options.get_extension(&ext).into_owned())
}

fn json_type_of(pool: &DescriptorPool, field: &FieldDescriptor) -> Option<String> {
    extension(pool, &field.options(), &format!("{PACKAGE}.json_type"))
        .and_then(|v| v.as_str().map(str::to_owned))
}

fn message_allows_unknown_fields(pool: &DescriptorPool, message: &MessageDescriptor) -> bool {
    extension(
        pool,
        &message.options(),
        &format!("{PACKAGE}.json_allow_unknown_fields"),
    )
    .and_then(|v| v.as_bool())
    .unwrap_or(false)
}

/// A `(buf.validate.message).oneof` rule: at most one of `fields` is set;
/// exactly one when `required`.
struct OneofRule {
    fields: Vec<FieldDescriptor>,
    required: bool,
}

/// The message's `(buf.validate.message)` oneof rules; any other message
/// rule fails the build, as an unimplemented field rule does.
fn oneof_rules(pool: &DescriptorPool, message: &MessageDescriptor) -> Vec<OneofRule> {
    let Some(rules) = extension(pool, &message.options(), "buf.validate.message") else {
        return Vec::new();
    };
    let rules = rules.as_message().cloned().expect("MessageRules");
    for (descriptor, _) in rules.fields() {
        assert!(
            descriptor.name() == "oneof",
            "{}: (buf.validate.message) rule `{}` is not implemented by build.rs's validators",
            message.full_name(),
            descriptor.name()
        );
    }
    let Some(groups) = get(&rules, "oneof") else {
        return Vec::new();
    };
    let groups = groups.as_list().map(<[_]>::to_vec).unwrap_or_default();
    groups
        .iter()
        .map(|group| {
            let group = group.as_message().expect("MessageOneofRule");
            let names = get(group, "fields")
                .and_then(|v| v.as_list().map(<[_]>::to_vec))
                .unwrap_or_default();
            let fields: Vec<FieldDescriptor> = names
                .iter()
                .map(|name| {
                    let name = name.as_str().expect("field name");
                    let field = message.get_field_by_name(name).unwrap_or_else(|| {
                        panic!("{}: oneof rule names no field {name}", message.full_name())
                    });
                    assert!(
                        field.supports_presence() && !field.is_list(),
                        "{}: oneof rules over fields without presence are not implemented",
                        field.full_name()
                    );
                    field
                })
                .collect();
            assert!(
                fields.len() >= 2,
                "{}: a oneof rule needs two fields",
                message.full_name()
            );
            OneofRule {
                fields,
                required: get(group, "required").and_then(|v| v.as_bool()) == Some(true),
            }
        })
        .collect()
}

/// JSON Schema alternatives "these two are both present", for every pair.
fn pairs_of(fields: &[FieldDescriptor]) -> Vec<String> {
    let mut pairs = Vec::new();
    for (i, a) in fields.iter().enumerate() {
        for b in &fields[i + 1..] {
            // `properties` names them for validators in strict mode (ajv's
            // strictRequired), which refuse a `required` they cannot see defined.
            let (a, b) = (a.json_name(), b.json_name());
            pairs.push(format!(
                "{{\"properties\": {{\"{a}\": true, \"{b}\": true}}, \"required\": [\"{a}\", \"{b}\"]}}"
            ));
        }
    }
    pairs
}

/// `impl Validate for <Message>`: the protobuf-side twin of the JSON Schema.
/// Pointers are only built when a check fails, so a valid message allocates
/// nothing.
fn validator_for(pool: &DescriptorPool, message: &MessageDescriptor) -> TokenStream {
    // Oneof-level rules are not implemented: refuse them rather than let
    // protobuf frames skip what JSON Schema would check.
    for oneof in message.oneofs() {
        assert!(
            extension(pool, &oneof.options(), "buf.validate.oneof").is_none(),
            "{}: (buf.validate.oneof) rules are not implemented by build.rs's validators",
            oneof.full_name()
        );
    }
    let name = format_ident!("{}", message.name());
    if ENVELOPES.contains(&message.name()) {
        let module = format_ident!("{}", snake(message.name()));
        let arms = message.fields().map(|field| {
            let variant = format_ident!("{}", upper_camel(field.name()));
            quote! { Some(#module::Kind::#variant(inner)) => inner.validate(path), }
        });
        return quote! {
            impl Validate for #name {
                fn validate(&self, path: &str) -> Result<(), Violation> {
                    match &self.kind {
                        #(#arms)*
                        None => Ok(()),
                    }
                }
            }
        };
    }
    let mut statics = Vec::new();
    let mut checks = Vec::new();
    for group in oneof_rules(pool, message) {
        let present = group.fields.iter().map(|f| {
            let ident = format_ident!("{}", f.name());
            quote! { self.#ident.is_some() }
        });
        let names: Vec<String> = group
            .fields
            .iter()
            .map(|f| f.json_name().to_string())
            .collect();
        let missing = if group.required {
            quote! { if set.is_empty() { return Err(Violation::one_of_missing(path, &[#(#names),*])); } }
        } else {
            quote! {}
        };
        checks.push(quote! {
            {
                let present = [#(#present),*];
                let set: Vec<&str> = [#(#names),*]
                    .into_iter()
                    .zip(present)
                    .filter_map(|(name, is_set)| is_set.then_some(name))
                    .collect();
                if set.len() > 1 { return Err(Violation::one_of_conflict(path, &[#(#names),*], set[1])); }
                #missing
            }
        });
    }
    for field in message.fields() {
        let rules = rules_of(pool, &field);
        let json = field.json_name();
        let ident = format_ident!("{}", field.name());
        match field.kind() {
            Kind::Message(_) if field.is_list() => checks.push(quote! {
                for (i, item) in self.#ident.iter().enumerate() {
                    item.validate("").map_err(|v| v.under(path, &format!("{}/{i}", #json)))?;
                }
            }),
            Kind::Message(_) => {
                let missing = if rules.required {
                    quote! { return Err(Violation::missing(path, #json)) }
                } else {
                    quote! {}
                };
                checks.push(quote! {
                    match &self.#ident {
                        Some(inner) => inner.validate("").map_err(|v| v.under(path, #json))?,
                        None => { #missing }
                    }
                });
            }
            Kind::String => {
                let mut string_checks = Vec::new();
                if let Some(min) = rules.min_len {
                    let min = min as usize;
                    string_checks.push(quote! { check_min_len(value, #min, path, #json)?; });
                }
                if let Some(max) = rules.max_len {
                    let max = max as usize;
                    string_checks.push(quote! { check_max_len(value, #max, path, #json)?; });
                }
                if let Some(pattern) = &rules.pattern {
                    let regex = format_ident!(
                        "{}_{}_PATTERN",
                        snake(message.name()).to_ascii_uppercase(),
                        field.name().to_ascii_uppercase()
                    );
                    statics.push(quote! {
                        static #regex: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
                            regex::Regex::new(#pattern).expect("proto pattern compiles")
                        });
                    });
                    string_checks
                        .push(quote! { check_pattern(value, &#regex, #pattern, path, #json)?; });
                }
                if !string_checks.is_empty() {
                    checks.push(if field.supports_presence() {
                        quote! { if let Some(value) = &self.#ident { #(#string_checks)* } }
                    } else {
                        quote! { { let value = &self.#ident; #(#string_checks)* } }
                    });
                }
            }
            Kind::Uint32 | Kind::Uint64 => {
                let mut number_checks = Vec::new();
                if let Some(min) = rules.min {
                    number_checks.push(quote! { check_min(u64::from(value), #min, path, #json)?; });
                }
                if let Some(max) = rules.max {
                    number_checks.push(quote! { check_max(u64::from(value), #max, path, #json)?; });
                }
                if !number_checks.is_empty() {
                    checks.push(if field.supports_presence() {
                        quote! { if let Some(value) = self.#ident { #(#number_checks)* } }
                    } else {
                        quote! { { let value = self.#ident; #(#number_checks)* } }
                    });
                }
            }
            Kind::Enum(inner) => {
                // The zero value means "unset", and proto3 keeps unknown numbers:
                // neither is a value the protocol defines.
                let enumeration = format_ident!("{}", inner.name());
                checks.push(if field.supports_presence() {
                    quote! { if let Some(value) = self.#ident { check_enum::<#enumeration>(value, path, #json)?; } }
                } else {
                    quote! { check_enum::<#enumeration>(self.#ident, path, #json)?; }
                });
            }
            _ => {}
        }
    }
    quote! {
        #(#statics)*
        impl Validate for #name {
            #[allow(unused_variables)]
            fn validate(&self, path: &str) -> Result<(), Violation> {
                #(#checks)*
                Ok(())
            }
        }
    }
}

/// `typescript_exports()`: every type of the JSON view, rendered by ts-rs.
/// Generated here so the list always matches `proto/`.
fn typescript_exports(messages: &[MessageDescriptor], pool: &DescriptorPool) -> TokenStream {
    let mut types: Vec<(String, TokenStream)> = Vec::new();
    for message in messages {
        let name = message.name();
        let ident = format_ident!("{name}");
        if ENVELOPES.contains(&name) {
            let module = format_ident!("{}", snake(name));
            types.push((name.to_string(), quote! { #module::Kind }));
        } else {
            types.push((name.to_string(), quote! { #ident }));
        }
    }
    for enumeration in pool.all_enums().filter(|e| e.package_name() == PACKAGE) {
        let ident = format_ident!("{}", enumeration.name());
        types.push((enumeration.name().to_string(), quote! { #ident }));
    }
    types.sort_by(|a, b| a.0.cmp(&b.0));
    // ts-rs renders a message as one object type; a oneof rule makes it a
    // union, which codegen writes around it: (message, [(field, TS type)], required).
    let oneofs = messages.iter().flat_map(|message| {
        let name = message.name().to_string();
        oneof_rules(pool, message).into_iter().map(move |group| {
            let fields = group.fields.iter().map(|f| {
                let json = f.json_name().to_string();
                let ts = match f.kind() {
                    Kind::String => "string".to_string(),
                    Kind::Bool => "boolean".to_string(),
                    Kind::Enum(e) => e.name().to_string(),
                    Kind::Message(m) => m.name().to_string(),
                    _ => "number".to_string(),
                };
                quote! { (#json, #ts) }
            });
            let required = group.required;
            let name = name.clone();
            quote! { (#name, &[#(#fields),*], #required) }
        })
    });
    let entries = types
        .iter()
        .map(|(ts_name, rust_path)| quote! { (#ts_name, #rust_path::export_to_string(cfg)) });
    quote! {
        /// The `(buf.validate.message).oneof` rules, for the TypeScript
        /// types: (message, its group's (JSON field, TypeScript type)s,
        /// whether one is required).
        pub const TYPESCRIPT_ONEOFS: &[(&str, &[(&str, &str)], bool)] = &[#(#oneofs),*];

        /// Every type of the JSON view, as (TypeScript name, rendered module).
        pub fn typescript_exports(cfg: &ts_rs::Config) -> Vec<(&'static str, Result<String, ts_rs::ExportError>)> {
            use ts_rs::TS as _;
            vec![#(#entries),*]
        }
    }
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
