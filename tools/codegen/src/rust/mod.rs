//! The Rust side of the protocol: prost-build writes the message types,
//! with the serde attributes of their JSON view ([`attributes`]); this
//! module writes the support code included next to them: the enums' serde
//! helpers ([`enums`]), a `Validate` impl per message ([`validators`]),
//! and each publisher event's routing keys.
//!
//! The generated code calls a small runtime that the including crate
//! provides at `runtime` (the gateway's is `crate::protocol`):
//! `runtime::validate` (`Validate`, `Violation`, the `check_*` functions),
//! `runtime::json_enum` (the enum serde functions) and
//! `runtime::json_object` (a JSON object's bytes); it also uses the
//! `regex` and `serde` crates.

pub mod attributes;
pub mod enums;
pub mod validators;

use std::path::Path;

use proc_macro2::TokenStream;
use quote::{ToTokens, format_ident, quote};

use crate::Error;
use crate::load::Compiled;
use crate::model::Protocol;

/// Writes `<package>.rs` (prost-build's types) and `<package>.support.rs`
/// into `out_dir`. `runtime` is the Rust path of the runtime, e.g.
/// `crate::protocol`.
pub fn generate(
    compiled: &Compiled,
    protocol: &Protocol,
    runtime: &str,
    out_dir: &Path,
) -> Result<(), Error> {
    let mut config = prost_build::Config::new();
    config.out_dir(out_dir);
    attributes::configure(&mut config, protocol, runtime);
    // Other packages (buf.validate's options, tourcast's options seen from
    // another package) are options, not wire types: generate nothing for
    // them; nothing refers to this path.
    for file in &compiled.files.file {
        let package = file.package();
        if package != protocol.package && !package.starts_with("google.protobuf") {
            config.extern_path(
                format!(".{package}"),
                format!("{runtime}::unused_extern_package"),
            );
        }
    }
    config
        .compile_fds(compiled.files.clone())
        .map_err(Error::ProstBuild)?;
    let support = support_module(protocol, runtime)?;
    let path = out_dir.join(format!("{}.support.rs", protocol.package));
    std::fs::write(&path, support).map_err(|e| Error::io(&path, e))
}

/// The support module's source, formatted.
pub fn support_module(protocol: &Protocol, runtime: &str) -> Result<String, Error> {
    let runtime: TokenStream = syn::parse_str::<syn::Path>(runtime)?.to_token_stream();
    let mut items = Vec::new();
    for enumeration in &protocol.enums {
        items.push(enums::json_module(enumeration, &runtime));
    }
    let beyond_schema = validators::beyond_schema(&protocol.messages);
    for message in &protocol.messages {
        items.push(validators::message_impl(message, &runtime, &beyond_schema));
    }
    for envelope in &protocol.envelopes {
        items.push(validators::envelope_impl(envelope, &runtime));
        items.push(json_type_impl(envelope));
    }
    for event in protocol.events() {
        let name = format_ident!("{}", event.name);
        let keys = &event.routing_keys;
        items.push(quote! {
            impl #name {
                /// The routing keys publishers put this event on the exchange with
                /// (`(tourcast.v1.routing_key)` in the proto).
                pub const ROUTING_KEYS: &'static [&'static str] = &[#(#keys),*];
            }
        });
    }
    let file: syn::File = syn::parse2(quote! { #(#items)* })?;
    Ok(prettyplease::unparse(&file))
}

/// `json_type()` on an envelope's oneof enum: the `type` its JSON view
/// carries, without encoding it (Server-Sent Events name each event by it).
fn json_type_impl(envelope: &crate::model::Envelope) -> TokenStream {
    let module = format_ident!("{}", crate::names::snake(&envelope.name));
    let oneof = format_ident!("{}", crate::names::upper_camel(&envelope.oneof));
    let variants = envelope
        .variants
        .iter()
        .map(|variant| format_ident!("{}", crate::names::upper_camel(&variant.field)));
    let json_types = envelope.variants.iter().map(|variant| &variant.json_type);
    quote! {
        impl #module::#oneof {
            /// The message's JSON `type` (`(tourcast.v1.json_type)`, or the
            /// field name in lowerCamelCase).
            pub fn json_type(&self) -> &'static str {
                match self {
                    #(Self::#variants(_) => #json_types,)*
                }
            }
        }
    }
}
