//! `impl Validate for <Message>`: the protobuf side's twin of the JSON
//! Schema, generated from the same `buf.validate` rules, so protobuf frames
//! obey them without reflection. The checks call the runtime's `check_*`
//! functions, which word a violation as the JSON side does; pointers are
//! only built when a check fails, so a valid message allocates nothing.
//!
//! A JSON Schema cannot bound a JSON object's size in bytes, nor its depth:
//! messages holding one also get a `validate_typed_json`, which the gateway
//! runs on JSON frames after the schema and serde.

use std::collections::BTreeSet;

use proc_macro2::TokenStream;
use quote::{format_ident, quote};

use crate::model::{Cardinality, Envelope, Field, FieldType, Integer, Message};
use crate::names::snake;
use crate::rules::OneofRule;

/// An envelope's impls: its oneof enum's (the JSON view's union, which
/// the gateway decodes JSON into) checks the set variant; the envelope's
/// checks its oneof, when set.
pub fn envelope_impl(envelope: &Envelope, runtime: &TokenStream) -> TokenStream {
    let name = format_ident!("{}", envelope.name);
    let module = format_ident!("{}", snake(&envelope.name));
    let oneof = format_ident!("{}", crate::names::upper_camel(&envelope.oneof));
    let field = format_ident!("{}", envelope.oneof);
    let variants: Vec<_> = envelope
        .variants
        .iter()
        .map(|variant| format_ident!("{}", crate::names::upper_camel(&variant.field)))
        .collect();
    quote! {
        impl #runtime::validate::Validate for #module::#oneof {
            fn validate(&self, path: &str) -> Result<(), #runtime::validate::Violation> {
                match self {
                    #(Self::#variants(inner) => #runtime::validate::Validate::validate(inner, path),)*
                }
            }
            fn validate_typed_json(&self, path: &str) -> Result<(), #runtime::validate::Violation> {
                match self {
                    #(Self::#variants(inner) => #runtime::validate::Validate::validate_typed_json(inner, path),)*
                }
            }
        }
        impl #runtime::validate::Validate for #name {
            fn validate(&self, path: &str) -> Result<(), #runtime::validate::Violation> {
                match &self.#field {
                    Some(kind) => #runtime::validate::Validate::validate(kind, path),
                    None => Ok(()),
                }
            }
            fn validate_typed_json(&self, path: &str) -> Result<(), #runtime::validate::Violation> {
                match &self.#field {
                    Some(kind) => #runtime::validate::Validate::validate_typed_json(kind, path),
                    None => Ok(()),
                }
            }
        }
    }
}

/// A message's impl: its oneof rules, then each field's rules in order.
/// `beyond_schema` names the messages (fully qualified) that have checks a
/// JSON Schema cannot state, themselves or in a message they hold (see
/// [`beyond_schema`]): theirs get a `validate_typed_json`.
pub fn message_impl(
    message: &Message,
    runtime: &TokenStream,
    beyond_schema: &BTreeSet<String>,
) -> TokenStream {
    let name = format_ident!("{}", message.name);
    let mut statics = Vec::new();
    let mut checks: Vec<TokenStream> = message
        .oneof_rules
        .iter()
        .map(|rule| oneof_rule_check(message, rule, runtime))
        .collect();
    for field in &message.fields {
        checks.extend(field_check(message, field, runtime, &mut statics));
    }
    let typed_json = beyond_schema
        .contains(&message.full_name)
        .then(|| typed_json_method(message, runtime, beyond_schema));
    quote! {
        #(#statics)*
        impl #runtime::validate::Validate for #name {
            #[allow(unused_variables)]
            fn validate(&self, path: &str) -> Result<(), #runtime::validate::Violation> {
                #(#checks)*
                Ok(())
            }
            #typed_json
        }
    }
}

/// The messages with checks a JSON Schema cannot state (the depth and byte
/// size of a `(tourcast.v1.json_object)`), themselves or in a message
/// field, at any depth.
pub fn beyond_schema(messages: &[Message]) -> BTreeSet<String> {
    let mut found: BTreeSet<String> = messages
        .iter()
        .filter(|m| m.fields.iter().any(|f| f.ty == FieldType::JsonObject))
        .map(|m| m.full_name.clone())
        .collect();
    loop {
        let holders: Vec<String> = messages
            .iter()
            .filter(|m| !found.contains(&m.full_name))
            .filter(|m| {
                m.fields
                    .iter()
                    .any(|f| matches!(&f.ty, FieldType::Message(t) if found.contains(&t.full_name)))
            })
            .map(|m| m.full_name.clone())
            .collect();
        if holders.is_empty() {
            return found;
        }
        found.extend(holders);
    }
}

/// `validate_typed_json`: what the JSON Schema could not check, on a
/// message typed from schema-valid JSON. A JSON object's depth and size
/// are those of the text serde typed it into (the object written
/// compactly), the bytes protobuf would carry.
fn typed_json_method(
    message: &Message,
    runtime: &TokenStream,
    beyond_schema: &BTreeSet<String>,
) -> TokenStream {
    let checks = message.fields.iter().filter_map(|field| {
        let ident = format_ident!("{}", field.name);
        let json = &field.json_name;
        match &field.ty {
            FieldType::JsonObject => {
                let size = field.rules.max_bytes.map(|max| {
                    let max = max as usize;
                    quote! { #runtime::validate::check_max_bytes(value, #max, path, #json)?; }
                });
                Some(quote! {
                    if let Some(value) = &self.#ident {
                        #runtime::validate::check_json_depth(value, path, #json)?;
                        #size
                    }
                })
            }
            FieldType::Message(t) if beyond_schema.contains(&t.full_name) => {
                Some(if field.cardinality == Cardinality::Repeated {
                    quote! {
                        for (i, item) in self.#ident.iter().enumerate() {
                            #runtime::validate::Validate::validate_typed_json(item, "")
                                .map_err(|v| v.under(path, &format!("{}/{i}", #json)))?;
                        }
                    }
                } else {
                    quote! {
                        if let Some(inner) = &self.#ident {
                            #runtime::validate::Validate::validate_typed_json(inner, "")
                                .map_err(|v| v.under(path, #json))?;
                        }
                    }
                })
            }
            _ => None,
        }
    });
    quote! {
        fn validate_typed_json(&self, path: &str) -> Result<(), #runtime::validate::Violation> {
            #(#checks)*
            Ok(())
        }
    }
}

/// At most one of the group is set (the pointer names the second one
/// set); when the group is required, one is.
fn oneof_rule_check(message: &Message, rule: &OneofRule, runtime: &TokenStream) -> TokenStream {
    let fields: Vec<&Field> = rule
        .fields
        .iter()
        .filter_map(|name| message.fields.iter().find(|f| &f.name == name))
        .collect();
    let present = fields.iter().map(|f| {
        let ident = format_ident!("{}", f.name);
        quote! { self.#ident.is_some() }
    });
    let names: Vec<&str> = fields.iter().map(|f| f.json_name.as_str()).collect();
    let missing = if rule.required {
        quote! {
            if set.is_empty() {
                return Err(#runtime::validate::Violation::one_of_missing(path, &[#(#names),*]));
            }
        }
    } else {
        quote! {}
    };
    quote! {
        {
            let present = [#(#present),*];
            let set: Vec<&str> = [#(#names),*]
                .into_iter()
                .zip(present)
                .filter_map(|(name, is_set)| is_set.then_some(name))
                .collect();
            if set.len() > 1 {
                return Err(#runtime::validate::Violation::one_of_conflict(path, &[#(#names),*], set[1]));
            }
            #missing
        }
    }
}

/// The checks of one field, if its type or rules call for any.
fn field_check(
    message: &Message,
    field: &Field,
    runtime: &TokenStream,
    statics: &mut Vec<TokenStream>,
) -> Option<TokenStream> {
    let ident = format_ident!("{}", field.name);
    let json = &field.json_name;
    match &field.ty {
        FieldType::Message(_) if field.cardinality == Cardinality::Repeated => Some(quote! {
            for (i, item) in self.#ident.iter().enumerate() {
                #runtime::validate::Validate::validate(item, "")
                    .map_err(|v| v.under(path, &format!("{}/{i}", #json)))?;
            }
        }),
        FieldType::Message(_) => {
            let missing = if field.cardinality == Cardinality::Required {
                quote! { return Err(#runtime::validate::Violation::missing(path, #json)) }
            } else {
                quote! {}
            };
            Some(quote! {
                match &self.#ident {
                    Some(inner) => #runtime::validate::Validate::validate(inner, "")
                        .map_err(|v| v.under(path, #json))?,
                    None => { #missing }
                }
            })
        }
        FieldType::String => {
            let checks = string_checks(message, field, runtime, statics);
            guarded(field, &checks, true)
        }
        FieldType::Integer(Integer::Uint32 | Integer::Uint64) => {
            let checks = number_checks(field, runtime);
            guarded(field, &checks, false)
        }
        FieldType::JsonObject => {
            // Protobuf carries any bytes: they must be a JSON object's
            // text, as the JSON view's schema requires an object.
            let mut checks =
                vec![quote! { #runtime::validate::check_json_object(value, path, #json)?; }];
            if let Some(max) = field.rules.max_bytes {
                let max = max as usize;
                checks.push(
                    quote! { #runtime::validate::check_max_bytes(value, #max, path, #json)?; },
                );
            }
            guarded(field, &checks, true)
        }
        FieldType::Enum(enumeration) => {
            // The zero value means "unset", and proto3 keeps unknown
            // numbers: neither is a value the protocol defines.
            let enumeration = format_ident!("{}", enumeration.name);
            let check =
                quote! { #runtime::validate::check_enum::<#enumeration>(value, path, #json)?; };
            guarded(field, &[check], false)
        }
        _ => None,
    }
}

/// `min_len`, `max_len`, `pattern` (compiled once, into a static).
fn string_checks(
    message: &Message,
    field: &Field,
    runtime: &TokenStream,
    statics: &mut Vec<TokenStream>,
) -> Vec<TokenStream> {
    let json = &field.json_name;
    let rules = &field.rules;
    let mut checks = Vec::new();
    if let Some(min) = rules.min_len {
        let min = min as usize;
        checks.push(quote! { #runtime::validate::check_min_len(value, #min, path, #json)?; });
    }
    if let Some(max) = rules.max_len {
        let max = max as usize;
        checks.push(quote! { #runtime::validate::check_max_len(value, #max, path, #json)?; });
    }
    if let Some(pattern) = &rules.pattern {
        let regex = format_ident!(
            "{}_{}_PATTERN",
            snake(&message.name).to_ascii_uppercase(),
            field.name.to_ascii_uppercase()
        );
        statics.push(quote! {
            static #regex: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
                regex::Regex::new(#pattern).expect("proto pattern compiles")
            });
        });
        checks.push(
            quote! { #runtime::validate::check_pattern(value, &#regex, #pattern, path, #json)?; },
        );
    }
    checks
}

/// `gte`/`gt` and `lte`/`lt`, as inclusive bounds.
fn number_checks(field: &Field, runtime: &TokenStream) -> Vec<TokenStream> {
    let json = &field.json_name;
    let mut checks = Vec::new();
    if let Some(min) = field.rules.min {
        checks
            .push(quote! { #runtime::validate::check_min(u64::from(value), #min, path, #json)?; });
    }
    if let Some(max) = field.rules.max {
        checks
            .push(quote! { #runtime::validate::check_max(u64::from(value), #max, path, #json)?; });
    }
    checks
}

/// The checks on `value`, the field's value: under `if let Some` for a
/// field with presence (an unset field breaks no value rule). `by_ref`
/// borrows rather than copies it.
fn guarded(field: &Field, checks: &[TokenStream], by_ref: bool) -> Option<TokenStream> {
    if checks.is_empty() {
        return None;
    }
    let ident = format_ident!("{}", field.name);
    let value = if by_ref {
        quote! { &self.#ident }
    } else {
        quote! { self.#ident }
    };
    Some(if field.has_presence {
        quote! { if let Some(value) = #value { #(#checks)* } }
    } else {
        quote! { { let value = #value; #(#checks)* } }
    })
}
