//! tourcast's protocol compiler: `proto/` is the single definition of the
//! protocol, and this crate derives everything else from it.
//!
//! | from the descriptors | module | lands in |
//! |---|---|---|
//! | serde attributes of the JSON view, `Validate` impls, routing keys | [`rust`] | the gateway's `OUT_DIR` (its `build.rs` calls [`build_script`]) |
//! | JSON Schemas | [`json_schema`] | `schemas/*.schema.json`, and `OUT_DIR/schemas/` for the gateway's validators |
//! | TypeScript types | [`typescript`] | `bindings/types/`, `bindings/index.ts` |
//! | AsyncAPI 3.0 document | [`asyncapi`] | `schemas/asyncapi.yaml` |
//! | protobuf-es code (run, not reimplemented) | [`protobuf_es`] | `bindings/proto/` |
//!
//! The pipeline: [`load`] compiles the protos with protox; [`model`] reads
//! them once into a [`Protocol`] (JSON names, comments via [`comments`],
//! `buf.validate` rules via [`rules`], tourcast's options via [`options`]),
//! refusing what the generators cannot honour; each generator renders the
//! model; [`files`] writes or checks the repository's generated files (the
//! `codegen` binary, `cargo run -p tourcast-codegen -- [--check]`).

pub mod asyncapi;
pub mod comments;
mod error;
pub mod files;
pub mod json_schema;
pub mod load;
pub mod model;
pub mod names;
pub mod options;
pub mod protobuf_es;
pub mod rules;
pub mod rust;
pub mod typescript;

use std::path::Path;

pub use error::Error;
pub use model::{Config, Protocol};

/// What the gateway's `build.rs` runs: compiles `proto_root`'s package
/// (`config`) and writes its Rust code and JSON Schemas into `out_dir`
/// (see [`write_rust_and_schemas`]). Prints the `cargo:rerun-if-changed`
/// lines for the protos.
pub fn build_script(
    proto_root: &Path,
    out_dir: &Path,
    config: &Config,
    runtime: &str,
) -> Result<(), Error> {
    println!("cargo:rerun-if-changed={}", proto_root.display());
    for file in load::package_files(proto_root, &config.package)? {
        println!("cargo:rerun-if-changed={}", proto_root.join(file).display());
    }
    let compiled = load::from_directory(proto_root, &config.package)?;
    write_rust_and_schemas(&compiled, config, runtime, out_dir)?;
    Ok(())
}

/// Writes, into `out_dir`, the Rust types and their support module
/// (`<package>.rs`, `<package>.support.rs`) and the JSON Schemas
/// (`schemas/*.schema.json`, the text of `schemas/`, which the gateway
/// embeds and compiles its validators from). `runtime` is the Rust path of
/// the validation runtime (see [`rust`]). Returns the protocol it read.
pub fn write_rust_and_schemas(
    compiled: &load::Compiled,
    config: &Config,
    runtime: &str,
    out_dir: &Path,
) -> Result<Protocol, Error> {
    let protocol = Protocol::from_pool(&compiled.pool, config)?;
    rust::generate(compiled, &protocol, runtime, out_dir)?;
    let schemas_dir = out_dir.join("schemas");
    std::fs::create_dir_all(&schemas_dir).map_err(|e| Error::io(&schemas_dir, e))?;
    for schema in json_schema::schema_files(&protocol)? {
        let path = schemas_dir.join(&schema.file);
        std::fs::write(&path, schema.text()).map_err(|e| Error::io(&path, e))?;
    }
    Ok(protocol)
}
