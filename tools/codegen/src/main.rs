//! Regenerates `schemas/` and `bindings/` from `proto/`, or checks them.
//!
//! `cargo run -p tourcast-codegen` rewrites the generated files;
//! `cargo run -p tourcast-codegen -- --check` exits 1 and names every file
//! whose committed content differs from what `proto/` generates. Both need
//! `npm ci` in `bindings/` first (protoc-gen-es writes `bindings/proto/`).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Parser;
use tourcast_codegen::files;

#[derive(Parser)]
#[command(about = "Regenerate schemas/ and bindings/ from proto/")]
struct Args {
    /// Compare instead of writing; exit 1 when a generated file is stale.
    #[arg(long)]
    check: bool,
    /// The repository root (defaults to the one this crate sits in).
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))]
    root: PathBuf,
}

fn main() -> Result<ExitCode> {
    let args = Args::parse();
    let generated = files::all(&args.root)?;
    let outcome = files::sync(&args.root, &generated, args.check)?;
    for file in &outcome.written {
        println!("wrote {file}");
    }
    for file in &outcome.removed {
        println!("removed {file}");
    }
    if !outcome.stale.is_empty() {
        eprintln!("generated files differ from proto/ (run `cargo run -p tourcast-codegen`):");
        for file in &outcome.stale {
            eprintln!("  {file}");
        }
        return Ok(ExitCode::FAILURE);
    }
    if args.check {
        println!("codegen: {} generated files match proto/", generated.len());
    }
    Ok(ExitCode::SUCCESS)
}
