//! The crate's arrows point down: no top-level module of `src/` uses
//! another that uses it back, directly or around a longer circle. A module
//! "uses" another when its code (comments aside) names `crate::<other>`, or
//! `super::<other>` from a file directly under `src/`.
//!
//! Hand-written rather than `cargo modules`: that tool needs a build of
//! rust-analyzer's crates in CI (minutes) to answer what a text scan of
//! `use` paths answers in milliseconds.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every `.rs` file under `dir`.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).expect("readable src/") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files
}

/// The top-level module a file under `src/` belongs to (`None`: the crate
/// roots and binaries, which may use anything).
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let relative = file.strip_prefix(src).ok()?;
    let first = relative.components().next()?.as_os_str().to_str()?;
    match first {
        "lib.rs" | "main.rs" | "bin" => None,
        name => Some(name.trim_end_matches(".rs").to_string()),
    }
}

/// The code of a file without its comments (a doc link is not a use).
fn code_of(text: &str) -> String {
    text.lines()
        .map(|line| match line.find("//") {
            Some(at) => &line[..at],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn dependencies() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let modules: BTreeSet<String> = rust_files(&src)
        .iter()
        .filter_map(|f| module_of(&src, f))
        .collect();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in rust_files(&src) {
        let Some(module) = module_of(&src, &file) else {
            continue;
        };
        let code = code_of(&std::fs::read_to_string(&file).expect("readable file"));
        let entry = graph.entry(module.clone()).or_default();
        for other in &modules {
            if other == &module {
                continue;
            }
            let named = code.contains(&format!("crate::{other}::"))
                || code.contains(&format!("crate::{other};"))
                || code.contains(&format!("crate::{other} "))
                || code.contains(&format!("crate::{{{other}"))
                || code.contains(&format!("crate::{other}}}"))
                || code.contains(&format!("crate::{other},"));
            if named {
                entry.insert(other.clone());
            }
        }
    }
    graph
}

/// A circle through `start`, if there is one.
fn circle_from(graph: &BTreeMap<String, BTreeSet<String>>, start: &str) -> Option<Vec<String>> {
    let mut stack = vec![(start.to_string(), vec![start.to_string()])];
    let mut seen = BTreeSet::new();
    while let Some((node, path)) = stack.pop() {
        for next in graph.get(&node).into_iter().flatten() {
            if next == start {
                let mut circle = path.clone();
                circle.push(start.to_string());
                return Some(circle);
            }
            if seen.insert(next.clone()) {
                let mut longer = path.clone();
                longer.push(next.clone());
                stack.push((next.clone(), longer));
            }
        }
    }
    None
}

#[test]
fn no_module_uses_one_that_uses_it_back() {
    let graph = dependencies();
    assert!(graph.len() >= 8, "the scan found the modules: {graph:?}");
    let circles: Vec<String> = graph
        .keys()
        .filter_map(|module| circle_from(&graph, module))
        .map(|circle| circle.join(" → "))
        .collect();
    assert!(
        circles.is_empty(),
        "circular module uses:\n{}",
        circles.join("\n")
    );
}

#[test]
fn the_scan_sees_known_edges() {
    // Guards the scan itself: if it found nothing, the test above would pass vacuously.
    let graph = dependencies();
    for (from, to) in [
        ("engine", "state"),
        ("server", "engine"),
        ("source", "engine"),
        ("state", "event"),
    ] {
        assert!(
            graph.get(from).is_some_and(|uses| uses.contains(to)),
            "{from} → {to} not found in {graph:?}"
        );
    }
}

/// The transport seam (issue 21): WebSocket and HTTP-streaming types stay
/// in `transport/` (and `server/`, which picks a transport per endpoint);
/// the hub, the protocol, the engine and the state queue transport-free
/// frames. Before the seam, axum's `Message` was in `protocol/codec.rs`,
/// `hub/mod.rs` and `hub/outbox.rs`.
#[test]
fn no_transport_type_leaks_below_the_server() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut leaks = Vec::new();
    for file in rust_files(&src) {
        let module = module_of(&src, &file);
        if matches!(module.as_deref(), None | Some("transport" | "server")) {
            continue;
        }
        let code = code_of(&std::fs::read_to_string(&file).expect("readable"));
        for marker in [
            "extract::ws",
            "tungstenite",
            "text/event-stream",
            "close_code",
        ] {
            if code.contains(marker) {
                leaks.push(format!("{} names {marker}", file.display()));
            }
        }
    }
    assert!(leaks.is_empty(), "{leaks:#?}");
}
