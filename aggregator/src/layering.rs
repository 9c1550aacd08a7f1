//! The aggregator's modules form layers with no import cycle (docs/architecture.md#layers):
//! read from `crate::…` paths in the source, so a new import that closes a cycle fails here.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Top-level module → the top-level modules its code names through `crate::`.
fn imports() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut files = vec![src.clone()];
    while let Some(p) = files.pop() {
        if p.is_dir() {
            files.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
            continue;
        }
        let rel = p.strip_prefix(&src).unwrap().to_string_lossy().into_owned();
        let module = rel.split('/').next().unwrap().trim_end_matches(".rs").to_owned();
        if !rel.ends_with(".rs") || ["lib", "main", "layering"].contains(&module.as_str()) {
            continue;
        }
        let deps = graph.entry(module.clone()).or_default();
        let text = std::fs::read_to_string(&p).unwrap();
        for line in text.lines().map(|l| l.split("//").next().unwrap_or_default()) {
            let mut rest = line;
            while let Some(at) = rest.find("crate::") {
                rest = &rest[at + "crate::".len()..];
                let name: String = rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
                // Items lib.rs re-exports from their modules.
                let dep = match name.as_str() {
                    "AggregatorError" => "error".to_owned(),
                    "AggregatorConfig" => "config".to_owned(),
                    _ => name,
                };
                if !dep.is_empty() && dep != module {
                    deps.insert(dep);
                }
            }
        }
    }
    graph
}

/// A cycle through `m`, if any (depth-first search).
fn cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        m: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|p| p == m) {
            let mut c = path[at..].to_vec();
            c.push(m.to_owned());
            return Some(c);
        }
        if done.contains(m) {
            return None;
        }
        path.push(m.to_owned());
        for dep in graph.get(m).into_iter().flatten() {
            if let Some(c) = visit(dep, graph, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(m.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    graph.keys().find_map(|m| visit(m, graph, &mut Vec::new(), &mut done))
}

#[test]
fn the_modules_have_no_import_cycle() {
    let graph = imports();
    assert!(graph.contains_key("model") && graph.contains_key("store"), "{graph:?}");
    if let Some(c) = cycle(&graph) {
        panic!("import cycle: {}", c.join(" → "));
    }
}

#[test]
fn the_core_reads_top_down() {
    let graph = imports();
    let allowed = |m: &str, deps: &[&str]| {
        let extra: Vec<&String> = graph[m].iter().filter(|d| !deps.contains(&d.as_str())).collect();
        assert!(extra.is_empty(), "{m} must not import {extra:?}");
    };
    // The model knows no I/O and nothing above it; config is a leaf over the model's settings;
    // rules read the model only; the episode state machine is pure.
    allowed("model", &[]);
    allowed("config", &["model", "error"]);
    allowed("rules", &["model", "error"]);
    allowed("episode", &["model", "rules"]);
}

#[test]
fn a_cycle_is_found() {
    let graph: BTreeMap<String, BTreeSet<String>> = [("a", "b"), ("b", "c"), ("c", "a")]
        .into_iter()
        .map(|(m, d)| (m.to_owned(), BTreeSet::from([d.to_owned()])))
        .collect();
    assert_eq!(cycle(&graph).unwrap().join(" → "), "a → b → c → a");
}
