//! Generates the protocol's Rust types and JSON Schemas from `proto/`.
//!
//! `proto/` is the single definition of the protocol; `tools/codegen`
//! (`tourcast-codegen`) compiles it. Here it writes, into `OUT_DIR`:
//! - `tourcast.v1.rs`: the prost types, with the serde attributes of their
//!   JSON view (`src/protocol/mod.rs` includes it);
//! - `tourcast.v1.support.rs`: the enums' serde helpers, a `Validate` impl
//!   per message from its `buf.validate` rules (calling
//!   `crate::protocol::validate`), the events' routing keys;
//! - `schemas/*.schema.json`: the JSON Schemas, the same text as the
//!   committed `schemas/`, which the codec compiles its JSON validators
//!   from (`src/protocol/schema.rs`).
//!
//! A rule or shape the generator cannot honour fails the build, naming it.

use std::path::{Path, PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    tourcast_codegen::build_script(
        Path::new("proto"),
        &out_dir,
        &tourcast_codegen::Config::tourcast(),
        "crate::protocol",
    )?;
    Ok(())
}
