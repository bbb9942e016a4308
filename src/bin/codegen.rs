//! Regenerates `schemas/` and `bindings/` from `proto/`, or checks them.
//!
//! `cargo run --bin codegen` rewrites the generated files;
//! `cargo run --bin codegen -- --check` exits 1 and names every file whose
//! committed content differs from what `proto/` generates.
//!
//! The Rust types come from `build.rs`; this binary renders their JSON
//! Schemas (schemars) and TypeScript types (ts-rs), and runs protoc-gen-es
//! (installed by `npm ci` in `bindings/`) for the client's `bindings/proto/`.

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
    let mut files = tourcast::protocol::codegen::generated_files()?;
    files.extend(protobuf_es::generate(&args.root)?);
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
    let dirs = tourcast::protocol::codegen::GENERATED_DIRS.iter();
    for dir in dirs.chain(protobuf_es::GENERATED_DIRS) {
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

/// The client's protobuf code in `bindings/proto/`, generated from `proto/` by
/// protoc-gen-es (`@bufbuild/protoc-gen-es`) through `buf generate`, both
/// installed from the npm lockfile in `bindings/`.
mod protobuf_es {
    use std::path::{Path, PathBuf};
    use std::process::Command;

    use anyhow::{Context, Result, bail};

    /// Directories whose every file this generator writes.
    pub const GENERATED_DIRS: &[&str] = &["bindings/proto/tourcast/v1"];

    /// Runs `buf generate` (template `bindings/buf.gen.yaml`) into a temporary
    /// directory; returns (path relative to the repository root, content).
    pub fn generate(root: &Path) -> Result<Vec<(String, String)>> {
        let bindings = root.join("bindings");
        let bin = bindings.join("node_modules").join(".bin");
        if !bin.join("buf").exists() || !bin.join("protoc-gen-es").exists() {
            bail!(
                "{} has no buf / protoc-gen-es: run `npm ci` in bindings/ first \
                 (they generate the TypeScript protobuf code in bindings/proto/)",
                bin.display()
            );
        }
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or_default();
        let out = std::env::temp_dir().join(format!(
            "tourcast-protobuf-es-{}-{nanos}",
            std::process::id()
        ));
        let path = std::env::var_os("PATH").unwrap_or_default();
        let mut search = vec![bin.clone()];
        search.extend(std::env::split_paths(&path));
        let result = Command::new(bin.join("buf"))
            .current_dir(&bindings)
            .env("PATH", std::env::join_paths(search)?)
            .arg("generate")
            .arg(root.join("proto"))
            .args(["--template", "buf.gen.yaml", "--output"])
            .arg(&out)
            .status()
            .context("running buf generate");
        let files = match result {
            Ok(status) if status.success() => collect(&out.join("proto"), "bindings/proto"),
            Ok(status) => Err(anyhow::anyhow!("buf generate failed ({status})")),
            Err(e) => Err(e),
        };
        let _ = std::fs::remove_dir_all(&out);
        files
    }

    /// Every file under `dir`, named `prefix/<path below dir>`, sorted.
    fn collect(dir: &Path, prefix: &str) -> Result<Vec<(String, String)>> {
        let mut files = Vec::new();
        let mut pending: Vec<(PathBuf, String)> = vec![(dir.to_path_buf(), prefix.to_string())];
        while let Some((dir, name)) = pending.pop() {
            for entry in
                std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))?
            {
                let entry = entry?;
                let child = format!("{name}/{}", entry.file_name().to_string_lossy());
                if entry.file_type()?.is_dir() {
                    pending.push((entry.path(), child));
                } else {
                    files.push((child, std::fs::read_to_string(entry.path())?));
                }
            }
        }
        files.sort();
        Ok(files)
    }
}
