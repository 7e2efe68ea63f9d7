//! The harness's modules form no import cycle, and each stage folder uses only the stages
//! before it in `tcptwin::LAYERS`: loading, building, running, judging and reporting can
//! each be read (and tested) without the ones after it.
//!
//! A module's imports are read from its source: `crate::a::b` paths, `super::` paths, and,
//! in a `mod.rs`, its uses of its own submodules (`pub use kernel::KernelDut`). Comments
//! and `#[cfg(test)] mod tests` are left out: a test may reach anywhere.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every module of the library, by path (`dut::kernel`), with its source file.
fn modules(src: &Path) -> BTreeMap<String, PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("src is readable") {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    walk(src, &mut files);
    files
        .into_iter()
        .filter_map(|file| {
            let rel = file.strip_prefix(src).ok()?.to_str()?.to_string();
            if rel == "lib.rs" || rel == "main.rs" {
                return None;
            }
            let name = rel
                .trim_end_matches(".rs")
                .trim_end_matches("/mod")
                .replace('/', "::");
            Some((name, file))
        })
        .collect()
}

/// The code of a file without comments and without its test module.
fn code(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(at) => &text[..at],
        None => text,
    };
    text.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The paths written after `prefix` in `code` (`crate::` → `dut::kernel::KernelDut`).
fn paths_after<'a>(code: &'a str, prefix: &'a str) -> impl Iterator<Item = Vec<&'a str>> + 'a {
    code.match_indices(prefix).filter_map(move |(at, _)| {
        let before = code[..at].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
            return None;
        }
        let rest = &code[at + prefix.len()..];
        let end = rest
            .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
            .unwrap_or(rest.len());
        let parts: Vec<&str> = rest[..end].split("::").filter(|p| !p.is_empty()).collect();
        (!parts.is_empty()).then_some(parts)
    })
}

/// The longest prefix of `parts` that names a module.
fn resolve(mods: &BTreeMap<String, PathBuf>, parts: &[&str]) -> Option<String> {
    (1..=parts.len())
        .rev()
        .map(|k| parts[..k].join("::"))
        .find(|name| mods.contains_key(name))
}

/// Module → the modules it imports.
fn imports(mods: &BTreeMap<String, PathBuf>) -> BTreeMap<String, BTreeSet<String>> {
    mods.iter()
        .map(|(name, file)| {
            let text = std::fs::read_to_string(file).expect("a source file is readable");
            let code = code(&text);
            let mut to = BTreeSet::new();
            for parts in paths_after(&code, "crate::") {
                to.extend(resolve(mods, &parts));
            }
            let parent: Vec<&str> = name.split("::").collect();
            let parent = &parent[..parent.len() - 1];
            for parts in paths_after(&code, "super::") {
                let full: Vec<&str> = parent.iter().copied().chain(parts).collect();
                to.extend(resolve(mods, &full).or_else(|| resolve(mods, parent)));
            }
            if file.ends_with("mod.rs") {
                for line in code.lines() {
                    let line = line.trim_start().trim_start_matches("pub ");
                    if let Some(child) = line.strip_prefix("mod ").and_then(|l| l.strip_suffix(';'))
                    {
                        if paths_after(&code, &format!("{child}::")).next().is_some() {
                            to.insert(format!("{name}::{child}"));
                        }
                    }
                }
            }
            to.remove(name);
            (name.clone(), to)
        })
        .collect()
}

/// A cycle in `graph`, if it has one.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut cycle = path[at..].to_vec();
            cycle.push(node.to_string());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|node| visit(node, graph, &mut Vec::new(), &mut done))
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

#[test]
fn no_module_imports_itself_through_others() {
    let mods = modules(&src());
    assert!(mods.len() > 40, "found only {} modules", mods.len());
    let graph = imports(&mods);
    assert_eq!(find_cycle(&graph), None, "an import cycle");
}

#[test]
fn each_stage_uses_only_the_stages_before_it() {
    let mods = modules(&src());
    let layer = |name: &str| {
        let top = name.split("::").next().unwrap_or(name);
        tcptwin::LAYERS
            .iter()
            .position(|l| *l == top)
            .unwrap_or_else(|| panic!("module `{name}` is in no layer of tcptwin::LAYERS"))
    };
    let wrong: Vec<String> = imports(&mods)
        .iter()
        .flat_map(|(from, to)| to.iter().map(move |t| (from, t)))
        .filter(|(from, to)| layer(to) > layer(from))
        .map(|(from, to)| format!("{from} uses {to}"))
        .collect();
    assert!(wrong.is_empty(), "stages used before their turn: {wrong:?}");
}

/// The checker itself finds a cycle and a stage used too early, so the tests above can fail.
#[test]
fn the_checker_sees_a_cycle_and_an_early_stage() {
    let dir = std::env::temp_dir().join(format!("tcptwin-layers-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("dut")).unwrap();
    std::fs::write(
        dir.join("dut/mod.rs"),
        "pub mod kernel;\npub use kernel::K;\n",
    )
    .unwrap();
    std::fs::write(dir.join("dut/kernel.rs"), "use crate::dut::Dut;\n").unwrap();
    std::fs::write(dir.join("case.rs"), "use crate::report::x;\n").unwrap();
    std::fs::write(dir.join("report.rs"), "// crate::case in a comment\n").unwrap();
    let mods = modules(&dir);
    let graph = imports(&mods);
    std::fs::remove_dir_all(&dir).unwrap();
    let cycle = find_cycle(&graph).expect("dut ↔ dut::kernel is a cycle");
    assert!(cycle.contains(&"dut::kernel".to_string()), "{cycle:?}");
    assert!(graph["case"].contains("report"));
    assert!(graph["report"].is_empty(), "a comment is not an import");
}
