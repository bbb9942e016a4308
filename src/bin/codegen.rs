//! Regenerates `schemas/` and `bindings/` from `proto/`, or checks them.
//!
//! `cargo run --bin codegen` rewrites the generated files;
//! `cargo run --bin codegen -- --check` exits 1 and names every file whose
//! committed content differs from what `proto/` generates.
//!
//! The Rust types come from `build.rs`; this binary renders their JSON
//! Schemas (schemars) and TypeScript types (ts-rs).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Parser;

#[derive(Parser)]
#[command(about = "Regenerate schemas/ and bindings/ from proto/")]
struct Args {
    /// Compare instead of writing; exit 1 when a generated file is stale.
    #[arg(long)]
    check: bool,
    /// The repository root (defaults to this crate's directory).
    #[arg(long, default_value = env!("CARGO_MANIFEST_DIR"))]
    root: PathBuf,
}

fn main() -> Result<ExitCode> {
    let args = Args::parse();
    let files = tourcast::protocol::codegen::generated_files()?;
    let mut stale = Vec::new();
    for (relative, content) in &files {
        let path = args.root.join(relative);
        let current = std::fs::read_to_string(&path).ok();
        if current.as_deref() == Some(content.as_str()) {
            continue;
        }
        if args.check {
            stale.push(relative.clone());
        } else {
            write(&path, content)?;
            println!("wrote {relative}");
        }
    }
    // A generated file that proto/ no longer produces is stale too.
    for dir in tourcast::protocol::codegen::GENERATED_DIRS {
        for leftover in orphans(&args.root, dir, &files)? {
            if args.check {
                stale.push(leftover);
            } else {
                std::fs::remove_file(args.root.join(&leftover))?;
                println!("removed {leftover}");
            }
        }
    }
    if args.check && !stale.is_empty() {
        eprintln!("generated files differ from proto/ (run `cargo run --bin codegen`):");
        for file in &stale {
            eprintln!("  {file}");
        }
        return Ok(ExitCode::FAILURE);
    }
    if args.check {
        println!("codegen: {} generated files match proto/", files.len());
    }
    Ok(ExitCode::SUCCESS)
}

fn write(path: &Path, content: &str) -> Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(path, content).with_context(|| format!("writing {}", path.display()))
}

/// Files in a generated directory that the generator did not produce.
fn orphans(root: &Path, dir: &str, files: &[(String, String)]) -> Result<Vec<String>> {
    let Ok(entries) = std::fs::read_dir(root.join(dir)) else {
        return Ok(Vec::new());
    };
    let mut found = Vec::new();
    for entry in entries {
        let name = entry?.file_name().to_string_lossy().into_owned();
        let relative = format!("{dir}/{name}");
        if !files.iter().any(|(f, _)| *f == relative) {
            found.push(relative);
        }
    }
    Ok(found)
}
