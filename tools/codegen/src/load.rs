//! Compiles proto sources into descriptors with `protox` (pure Rust, so no
//! `protoc` is needed): from the repository's `proto/` directory for the
//! gateway's build script and the codegen binary, or from sources held in
//! memory for tests.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use prost_reflect::DescriptorPool;
use prost_types::FileDescriptorSet;
use protox::file::{
    ChainFileResolver, File, FileResolver, GoogleFileResolver, IncludeFileResolver,
};

use crate::Error;

/// Compiled protos: the pool the generators read, and the file set
/// prost-build compiles (both with comments, and with every import).
pub struct Compiled {
    /// Every file, imports included, for reflection.
    pub pool: DescriptorPool,
    /// The same files as prost-build takes them.
    pub files: FileDescriptorSet,
}

/// The `.proto` files of `package` under `proto_root` (`tourcast.v1` →
/// `tourcast/v1/*.proto`), sorted, as import names. Found rather than
/// listed, so a new file is picked up without touching the generator.
pub fn package_files(proto_root: &Path, package: &str) -> Result<Vec<String>, Error> {
    let relative: PathBuf = package.split('.').collect();
    let dir = proto_root.join(&relative);
    let entries = std::fs::read_dir(&dir).map_err(|e| Error::io(&dir, e))?;
    let mut files = Vec::new();
    for entry in entries {
        let name = entry.map_err(|e| Error::io(&dir, e))?.file_name();
        let name = name.to_string_lossy();
        if name.ends_with(".proto") {
            files.push(format!("{}/{name}", package.replace('.', "/")));
        }
    }
    files.sort();
    Ok(files)
}

/// Compiles every file of `package` under `proto_root`.
pub fn from_directory(proto_root: &Path, package: &str) -> Result<Compiled, Error> {
    let files = package_files(proto_root, package)?;
    let mut resolver = ChainFileResolver::new();
    resolver.add(IncludeFileResolver::new(proto_root.to_path_buf()));
    resolver.add(GoogleFileResolver::new());
    compile(resolver, &files)
}

/// Compiles in-memory `sources` (import name, text); their imports are
/// looked up among the sources, then under `includes` (e.g. the
/// repository's `proto/` for `buf/validate/validate.proto` and
/// `tourcast/v1/options.proto`), then among Google's well-known files.
pub fn from_sources(sources: &[(&str, &str)], includes: &[&Path]) -> Result<Compiled, Error> {
    let mut resolver = ChainFileResolver::new();
    resolver.add(InMemory(
        sources
            .iter()
            .map(|(name, text)| (name.to_string(), text.to_string()))
            .collect(),
    ));
    for include in includes {
        resolver.add(IncludeFileResolver::new(include.to_path_buf()));
    }
    resolver.add(GoogleFileResolver::new());
    let names: Vec<&str> = sources.iter().map(|(name, _)| *name).collect();
    compile(resolver, &names)
}

fn compile(
    resolver: impl FileResolver + 'static,
    files: &[impl AsRef<str>],
) -> Result<Compiled, Error> {
    let mut compiler = protox::Compiler::with_file_resolver(resolver);
    compiler.include_source_info(true).include_imports(true);
    for file in files {
        compiler.open_file(file.as_ref())?;
    }
    Ok(Compiled {
        pool: compiler.descriptor_pool(),
        files: compiler.file_descriptor_set(),
    })
}

/// Proto sources held in memory, by import name.
struct InMemory(HashMap<String, String>);

impl FileResolver for InMemory {
    fn open_file(&self, name: &str) -> Result<File, protox::Error> {
        match self.0.get(name) {
            Some(source) => File::from_source(name, source),
            None => Err(protox::Error::file_not_found(name)),
        }
    }
}
