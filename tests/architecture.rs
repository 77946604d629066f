//! The layering of eventbus-core, checked from its source: each top-level module imports only
//! from the layers below it in [`LAYERS`], so the module graph has no cycle. Names re-exported
//! from `lib.rs` (`crate::EventBus`) count as imports of the module that defines them. A new
//! top-level module must be given its place here.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

const SRC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../eventbus-core/src");

/// The top-level modules, bottom up (docs/architecture.md draws them).
const LAYERS: &[&str] = &[
    "event",
    "report",
    "topology",
    "handler",
    "engine",
    "bus",
    "middleware",
    "testing",
    "wire",
    "saga",
    "bridge",
    "redis",
    "rabbitmq",
];

/// The top-level modules of lib.rs.
fn modules(lib: &str) -> Vec<String> {
    lib.lines()
        .filter_map(|line| {
            let line = line.trim_start();
            let line = line.strip_prefix("pub ").unwrap_or(line);
            let name = line.strip_prefix("mod ")?.strip_suffix(';')?;
            Some(name.trim().to_owned())
        })
        .collect()
}

/// Name -> defining module, from `pub use module::{..}` lines of lib.rs.
fn reexports(lib: &str, modules: &[String]) -> BTreeMap<String, String> {
    let mut names = BTreeMap::new();
    let flat = lib.replace('\n', " ");
    for stmt in flat.split(';') {
        let Some(rest) = stmt.trim().strip_prefix("pub use ") else {
            continue;
        };
        let rest = rest.trim_start_matches("crate::");
        let Some((module, items)) = rest.split_once("::") else {
            continue;
        };
        if !modules.iter().any(|m| m == module) {
            continue;
        }
        let items = items.trim_matches(|c| c == '{' || c == '}' || c == ' ');
        for item in items.split(',') {
            let name = item.trim().split("::").last().unwrap_or("").trim();
            if !name.is_empty() {
                names.entry(name.to_owned()).or_insert(module.to_owned());
            }
        }
    }
    names
}

fn files(module: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let file = Path::new(SRC).join(format!("{module}.rs"));
    if file.is_file() {
        out.push(file);
    }
    let mut dirs = vec![Path::new(SRC).join(module)];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    out
}

/// The modules one module's code names through `crate::` (comments and unit tests aside).
fn imports(module: &str, modules: &[String], names: &BTreeMap<String, String>) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for file in files(module) {
        let text = fs::read_to_string(&file).unwrap();
        let text = text.split("#[cfg(test)]\nmod tests").next().unwrap_or("");
        for line in text.lines().map(|l| l.split("//").next().unwrap_or("")) {
            for (at, _) in line.match_indices("crate::") {
                let path = &line[at + "crate::".len()..];
                let first: String = path
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                let target = if modules.contains(&first) {
                    Some(first)
                } else if first.is_empty() {
                    // `crate::{A, B}`: each name through the re-exports.
                    let group = path.trim_start_matches('{');
                    let group = group.split('}').next().unwrap_or("");
                    for name in group.split(',') {
                        let name = name.trim().split("::").next().unwrap_or("").trim();
                        if let Some(m) = names.get(name).or(modules.iter().find(|m| *m == name)) {
                            found.insert(m.clone());
                        }
                    }
                    None
                } else {
                    names.get(&first).cloned()
                };
                if let Some(target) = target {
                    found.insert(target);
                }
            }
        }
    }
    found.remove(module);
    found
}

#[test]
fn each_module_imports_only_from_the_layers_below_it() {
    let lib = fs::read_to_string(Path::new(SRC).join("lib.rs")).unwrap();
    let modules = modules(&lib);
    let mut declared: Vec<&str> = modules.iter().map(String::as_str).collect();
    let mut layered = LAYERS.to_vec();
    declared.sort();
    layered.sort();
    assert_eq!(
        declared, layered,
        "every top-level module has a place in LAYERS"
    );
    let names = reexports(&lib, &modules);
    let mut upward = Vec::new();
    for (position, module) in LAYERS.iter().enumerate() {
        for import in imports(module, &modules, &names) {
            if !LAYERS[..position].contains(&import.as_str()) {
                upward.push(format!("{module} -> {import}"));
            }
        }
    }
    assert!(
        upward.is_empty(),
        "imports that point up (or sideways) in the layering {LAYERS:?}: {upward:?}"
    );
}
