//! The crate's dependency order holds: a top-level module may use only modules of a lower layer
//! (docs/ARCHITECTURE.md). Reads every source file and fails on each upward or sideways
//! `crate::` edge, naming the file and the edge.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Layers, lowest first. A module may use modules of lower layers only.
const LAYERS: &[&[&str]] = &[
    &["error"],
    &["util"],
    &["gpu"],
    &["kernels"],
    &["env", "model"],
    &["planner", "train"],
    &["run"],
    &["sac"],
    &["pets", "mpc", "mbpo"],
    &["bench", "verify", "distill"],
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&module))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let p = entry.expect("dir entry").path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

/// The top-level modules named after `crate::` in `text`, including grouped imports
/// (`use crate::{a, b::c}`).
fn crate_refs(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (i, _) in text.match_indices("crate::") {
        let rest = &text[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for part in group[..end].split(',') {
                let name: String = part.trim().chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                if !name.is_empty() {
                    out.push(name);
                }
            }
        } else {
            let name: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
            out.push(name);
        }
    }
    out
}

/// Strips `//` comments so that prose mentioning `crate::x` does not count.
fn code_only(text: &str) -> String {
    text.lines().map(|l| l.split("//").next().unwrap_or("")).collect::<Vec<_>>().join("\n")
}

#[test]
fn every_crate_edge_points_down() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut checked = BTreeMap::new();
    let mut violations = Vec::new();
    for f in &files {
        let rel = f.strip_prefix(&src).expect("under src");
        let first = rel.components().next().expect("a component").as_os_str().to_string_lossy().to_string();
        let module = first.trim_end_matches(".rs").to_string();
        if module == "lib" || module == "bin" {
            continue;
        }
        let Some(own) = layer_of(&module) else {
            violations.push(format!("{}: module {module} is missing from LAYERS", rel.display()));
            continue;
        };
        let text = code_only(&std::fs::read_to_string(f).expect("read source"));
        for used in crate_refs(&text) {
            if used == module {
                continue;
            }
            *checked.entry(module.clone()).or_insert(0) += 1;
            match layer_of(&used) {
                Some(l) if l < own => {}
                Some(l) => {
                    violations.push(format!("{}: {module} (layer {own}) uses crate::{used} (layer {l})", rel.display()))
                }
                None => violations.push(format!("{}: crate::{used} is not a known module", rel.display())),
            }
        }
    }
    assert!(checked.len() >= 8, "too few modules with crate:: edges were read: {checked:?}");
    assert!(violations.is_empty(), "dependency order broken:\n{}", violations.join("\n"));
}

#[test]
fn the_edge_parser_sees_grouped_and_plain_paths() {
    let refs = crate_refs("use crate::{gpu::X, env};\nlet a = crate::model::Ensemble::random;");
    assert_eq!(refs, ["gpu", "env", "model"]);
    assert_eq!(code_only("let x = 1; // crate::pets"), "let x = 1; ");
}
