//! The layering of `src/`: every reference from one top-level module to another
//! (`crate::<module>`, `super::<module>` from a top-level file, or `janus_cloud::<module>`
//! in `main.rs`) must go down the order that `ARCHITECTURE.md` declares, so there is no
//! cycle and no layer reaches above itself.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// The layer names of the "## Layers" block of ARCHITECTURE.md, top first.
fn declared_order(root: &Path) -> Vec<String> {
    let text = fs::read_to_string(root.join("ARCHITECTURE.md")).expect("read ARCHITECTURE.md");
    let after = text
        .split("## Layers")
        .nth(1)
        .expect("ARCHITECTURE.md has a '## Layers' section");
    let block = after
        .split("```")
        .nth(1)
        .expect("the Layers section has a code block");
    block
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in fs::read_dir(dir).expect("read src").flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The top-level module a file of `src/` belongs to (`main` for main.rs, none for lib.rs).
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).ok()?;
    let first = rel.components().next()?.as_os_str().to_str()?.to_string();
    match first.strip_suffix(".rs") {
        Some("lib") => None,
        Some(m) => Some(m.to_string()),
        None => Some(first),
    }
}

/// Top-level modules a file's code refers to, outside comments.
fn references(text: &str, prefixes: &[&str], modules: &BTreeSet<String>) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or("");
        for prefix in prefixes {
            for (i, _) in code.match_indices(prefix) {
                let before = code[..i].chars().next_back();
                if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                    continue;
                }
                let rest = &code[i + prefix.len()..];
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if modules.contains(&name) {
                    found.insert(name);
                }
            }
        }
    }
    found
}

#[test]
fn modules_only_use_the_layers_below_them() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let src = root.join("src");
    let order = declared_order(root);
    let rank: BTreeMap<&str, usize> = order
        .iter()
        .enumerate()
        .map(|(i, m)| (m.as_str(), i))
        .collect();
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let modules: BTreeSet<String> = files.iter().filter_map(|f| module_of(&src, f)).collect();
    for m in &modules {
        assert!(
            rank.contains_key(m.as_str()),
            "src/{m} is not in the Layers list of ARCHITECTURE.md ({order:?})"
        );
    }
    let mut violations = Vec::new();
    for file in &files {
        let Some(from) = module_of(&src, file) else {
            continue;
        };
        let text = fs::read_to_string(file).expect("read source");
        let top_level_file = file.parent() == Some(src.as_path());
        let mut prefixes = vec!["crate::", "janus_cloud::"];
        if top_level_file {
            prefixes.push("super::");
        }
        for to in references(&text, &prefixes, &modules) {
            if to != from && rank[to.as_str()] <= rank[from.as_str()] {
                violations.push(format!(
                    "{} ({from}) uses {to}, which is not below it",
                    file.strip_prefix(root).unwrap_or(file).display()
                ));
            }
        }
    }
    assert!(
        violations.is_empty(),
        "layering broken (order in ARCHITECTURE.md: {order:?}):\n{}",
        violations.join("\n")
    );
}

#[test]
fn the_reference_scanner_sees_uses_and_skips_comments() {
    let modules: BTreeSet<String> = ["core", "plugins", "api"].map(String::from).into();
    let text = "use crate::core::shard;\n// crate::plugins in a comment\nlet x = crate::api::json::kind(v); my_crate::core";
    let found = references(text, &["crate::"], &modules);
    assert_eq!(found, ["api", "core"].map(String::from).into());
}
