//! The workspace's layers (docs/architecture.md#layers): no import cycle anywhere — every module of
//! every crate, read from the `crate::…` and `super::…` paths of its source, so an import that
//! closes a cycle between top-level modules (`config` ↔ `keys`) or between siblings deeper down
//! (`loadgen::book` ↔ `loadgen::draw`) fails here, whichever crate it is in — and the aggregator's
//! core reading top-down (the model pure, config a leaf, rules and episodes over the model only).
//!
//! A module is a file (`foo.rs` or `foo/mod.rs`). A path to an item of an ancestor module (the
//! crate root's re-exports, `super::*` in a child's tests) is not an edge: the ancestor is the
//! facade that declares the child, not a layer beside it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A module as its path from the crate root: `[]` is the root, `["store", "inputs"]` a child.
type Module = Vec<String>;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// Every crate's `src` folder in the workspace.
fn crates() -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(workspace())
        .unwrap()
        .map(|e| e.unwrap().path().join("src"))
        .filter(|src| src.is_dir() && src.parent().unwrap().join("Cargo.toml").is_file())
        .collect();
    out.sort();
    out
}

/// Every `.rs` file under `src` with the module it is.
fn modules(src: &Path) -> BTreeMap<Module, PathBuf> {
    let mut out = BTreeMap::new();
    let mut todo = vec![src.to_path_buf()];
    while let Some(p) = todo.pop() {
        if p.is_dir() {
            todo.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
            continue;
        }
        let rel = p.strip_prefix(src).unwrap();
        if p.extension().is_none_or(|e| e != "rs") || rel.starts_with("bin") {
            continue; // binaries in src/bin are crate roots of their own, over the library
        }
        let mut parts: Module = rel.iter().map(|c| c.to_string_lossy().trim_end_matches(".rs").to_owned()).collect();
        if matches!(parts.last().map(String::as_str), Some("mod" | "lib" | "main")) {
            parts.pop();
        }
        out.insert(parts, p);
    }
    out
}

/// The deepest known module a path names, from `base` (`crate::a::b::Item` → `[a, b]`).
fn resolve(base: Module, path: &[&str], known: &BTreeMap<Module, PathBuf>) -> Module {
    let mut m = base;
    let mut best = m.clone();
    for seg in path {
        m.push((*seg).to_owned());
        if known.contains_key(&m) {
            best = m.clone();
        } else {
            break;
        }
    }
    best
}

/// Module → the modules it names (ancestors left out).
fn graph(src: &Path) -> BTreeMap<Module, BTreeSet<Module>> {
    let known = modules(src);
    let mut graph: BTreeMap<Module, BTreeSet<Module>> = BTreeMap::new();
    for (module, file) in &known {
        let deps = graph.entry(module.clone()).or_default();
        let text = std::fs::read_to_string(file).unwrap();
        let mut cfg_test = false;
        for line in text.lines() {
            let line = line.split("//").next().unwrap_or_default();
            // An inline test module's `super::` is the file's own module: stop at it.
            if cfg_test && line.trim_start().starts_with("mod ") && line.trim_end().ends_with('{') {
                break;
            }
            cfg_test = line.trim() == "#[cfg(test)]";
            for (prefix, base) in
                [("crate::", Vec::new()), ("super::", module[..module.len().saturating_sub(1)].to_vec())]
            {
                let mut rest = line;
                while let Some(at) = rest.find(prefix) {
                    let before = rest[..at].chars().last();
                    rest = &rest[at + prefix.len()..];
                    if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':') {
                        continue; // `super::super::` or `foo::crate::`: not a path start we read
                    }
                    let path: Vec<&str> = rest
                        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
                        .next()
                        .unwrap_or_default()
                        .split("::")
                        .filter(|s| !s.is_empty())
                        .collect();
                    let dep = resolve(base.clone(), &path, &known);
                    if &dep != module && !module.starts_with(&dep) {
                        deps.insert(dep);
                    }
                }
            }
        }
    }
    graph
}

/// A cycle, if any (depth-first search).
fn cycle(graph: &BTreeMap<Module, BTreeSet<Module>>) -> Option<Vec<Module>> {
    fn visit(
        m: &Module,
        graph: &BTreeMap<Module, BTreeSet<Module>>,
        path: &mut Vec<Module>,
        done: &mut BTreeSet<Module>,
    ) -> Option<Vec<Module>> {
        if let Some(at) = path.iter().position(|p| p == m) {
            let mut c = path[at..].to_vec();
            c.push(m.clone());
            return Some(c);
        }
        if done.contains(m) {
            return None;
        }
        path.push(m.clone());
        for dep in graph.get(m).into_iter().flatten() {
            if let Some(c) = visit(dep, graph, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(m.clone());
        None
    }
    let mut done = BTreeSet::new();
    graph.keys().find_map(|m| visit(m, graph, &mut Vec::new(), &mut done))
}

fn show(c: &[Module]) -> String {
    c.iter().map(|m| if m.is_empty() { "(root)".to_owned() } else { m.join("::") }).collect::<Vec<_>>().join(" → ")
}

#[test]
fn no_crate_has_an_import_cycle() {
    let crates = crates();
    let names: Vec<String> =
        crates.iter().map(|c| c.parent().unwrap().file_name().unwrap().to_string_lossy().into_owned()).collect();
    for want in ["aggregator", "console", "ingest", "schemas", "testkit", "tools"] {
        assert!(names.iter().any(|n| n == want), "{want} not found among {names:?}");
    }
    let mut cycles = Vec::new();
    for (name, src) in names.iter().zip(&crates) {
        let g = graph(src);
        assert!(g.len() > 1, "{name}: no modules read");
        if let Some(c) = cycle(&g) {
            cycles.push(format!("{name}: {}", show(&c)));
        }
    }
    assert!(cycles.is_empty(), "import cycles:\n{}", cycles.join("\n"));
}

/// What the modules under `prefix` import from outside it, as the deepest modules named.
fn imports_of(graph: &BTreeMap<Module, BTreeSet<Module>>, prefix: &str) -> BTreeSet<String> {
    let p: Module = prefix.split("::").map(str::to_owned).collect();
    graph
        .iter()
        .filter(|(m, _)| m.starts_with(&p))
        .flat_map(|(_, deps)| deps.iter().filter(|d| !d.starts_with(&p)).map(|d| d.join("::")))
        .collect()
}

#[test]
fn the_aggregator_core_reads_top_down() {
    let g = graph(&workspace().join("aggregator/src"));
    let allowed = |m: &str, deps: &[&str]| {
        let extra: Vec<String> = imports_of(&g, m)
            .into_iter()
            .filter(|d| !deps.iter().any(|a| d == a || d.starts_with(&format!("{a}::"))))
            .collect();
        assert!(extra.is_empty(), "{m} must not import {extra:?}");
    };
    assert!(g.contains_key(&vec!["evaluate".to_owned(), "rules".to_owned()]), "{:?}", g.keys());
    // The model knows no I/O and nothing above it; config is a leaf over the model's settings;
    // rules read the model only; the episode state machine is pure; the consume path knows
    // nothing of evaluation, and evaluation nothing of the consume path but partition ownership.
    allowed("model", &[]);
    allowed("config", &["model", "error"]);
    allowed("evaluate::rules", &["model", "error"]);
    allowed("evaluate::episode", &["model", "evaluate::rules"]);
    allowed("consume", &["config", "error", "model", "store", "telemetry"]);
    allowed("evaluate", &["config", "consume::ownership", "error", "model", "store", "telemetry"]);
}

#[test]
fn the_reader_sees_nested_and_sibling_imports() {
    let aggregator = workspace().join("aggregator/src");
    let g = graph(&aggregator);
    let m = |s: &str| s.split("::").map(str::to_owned).collect::<Module>();
    // A top-level import and a nested one are both edges.
    assert!(g.values().flatten().any(|d| d == &m("model")), "{g:?}");
    assert!(g.keys().any(|k| k.len() > 1), "nested modules are modules: {:?}", g.keys());
}

#[test]
fn a_cycle_is_found() {
    let m = |s: &str| vec![s.to_owned()];
    let graph: BTreeMap<Module, BTreeSet<Module>> =
        [("a", "b"), ("b", "c"), ("c", "a")].into_iter().map(|(x, d)| (m(x), BTreeSet::from([m(d)]))).collect();
    assert_eq!(show(&cycle(&graph).unwrap()), "a → b → c → a");
}
