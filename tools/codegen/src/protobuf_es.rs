//! The TypeScript client's protobuf code in `bindings/proto/`, generated
//! from `proto/` by protoc-gen-es (`@bufbuild/protoc-gen-es`) through
//! `buf generate`, both installed from the npm lockfile in `bindings/`.
//! Run rather than reimplemented: it is the protobuf-es project's own
//! generator, and the client's runtime expects exactly its output.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::Error;
use crate::files::GeneratedFile;

/// Directories whose every file this generator writes.
pub const GENERATED_DIRS: &[&str] = &["bindings/proto/tourcast/v1"];

/// Runs `buf generate` (template `bindings/buf.gen.yaml`) into a temporary
/// directory and returns what it wrote, as files of the repository.
pub fn generate(root: &Path) -> Result<Vec<GeneratedFile>, Error> {
    let bindings = root.join("bindings");
    let bin = bindings.join("node_modules").join(".bin");
    if !bin.join("buf").exists() || !bin.join("protoc-gen-es").exists() {
        return Err(Error::Tool(format!(
            "{} has no buf / protoc-gen-es: run `npm ci` in bindings/ first \
             (they generate the TypeScript protobuf code in bindings/proto/)",
            bin.display()
        )));
    }
    let out = scratch_dir();
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut search = vec![bin.clone()];
    search.extend(std::env::split_paths(&path));
    let search = std::env::join_paths(search).map_err(|e| Error::Tool(format!("PATH: {e}")))?;
    let status = Command::new(bin.join("buf"))
        .current_dir(&bindings)
        .env("PATH", search)
        .arg("generate")
        .arg(root.join("proto"))
        .args(["--template", "buf.gen.yaml", "--output"])
        .arg(&out)
        .status();
    let files = match status {
        Ok(status) if status.success() => collect(&out.join("proto"), "bindings/proto"),
        Ok(status) => Err(Error::Tool(format!("buf generate failed ({status})"))),
        Err(e) => Err(Error::Tool(format!("running buf generate: {e}"))),
    };
    let _ = std::fs::remove_dir_all(&out);
    files
}

/// A fresh directory name under the system's temporary directory.
fn scratch_dir() -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    std::env::temp_dir().join(format!(
        "tourcast-protobuf-es-{}-{nanos}",
        std::process::id()
    ))
}

/// Every file under `dir`, named `prefix/<path below dir>`, sorted.
fn collect(dir: &Path, prefix: &str) -> Result<Vec<GeneratedFile>, Error> {
    let mut files = Vec::new();
    let mut pending: Vec<(PathBuf, String)> = vec![(dir.to_path_buf(), prefix.to_string())];
    while let Some((dir, name)) = pending.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|e| Error::io(&dir, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| Error::io(&dir, e))?;
            let child = format!("{name}/{}", entry.file_name().to_string_lossy());
            let path = entry.path();
            if path.is_dir() {
                pending.push((path, child));
            } else {
                let content = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
                files.push(GeneratedFile {
                    path: child,
                    content,
                });
            }
        }
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(files)
}
