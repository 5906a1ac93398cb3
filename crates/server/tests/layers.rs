//! The server's layer rule, checked on its source: every module imports only modules of its own
//! layer or below (see docs/architecture.md), nothing below `http/` names the HTTP layer, and
//! the modules' import graph has no cycle. Reads `src/` as text; rerun with
//! `cargo test -p bzapper-server --test layers -- --nocapture` to see the graph's figures.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The layers from the top down; a module may import its own layer and those after it.
/// Modules of one layer may import each other as long as no cycle forms.
const LAYERS: &[(&str, &[&str])] = &[
    ("composition root", &["", "startup"]),
    ("http", &["http"]),
    ("app", &["app"]),
    ("runtime", &["runtime"]),
    ("services", &["events", "cluster", "media", "outbound"]),
    ("model", &["model"]),
];

/// A source file as a module: `a/b.rs` and `a/b/mod.rs` are `a::b`; `lib.rs` is the root.
fn module_of(rel: &Path) -> String {
    let mut parts: Vec<String> =
        rel.iter().map(|p| p.to_string_lossy().into_owned()).collect::<Vec<_>>();
    let file = parts.pop().expect("a file name");
    let stem = file.trim_end_matches(".rs");
    if stem != "mod" && stem != "lib" {
        parts.push(stem.to_string());
    }
    parts.join("::")
}

fn layer_of(module: &str) -> usize {
    let top = module.split("::").next().unwrap_or("");
    LAYERS
        .iter()
        .position(|(_, tops)| tops.contains(&top))
        .unwrap_or_else(|| panic!("module `{module}` is in no layer: add its folder to LAYERS"))
}

/// Test code may reach anywhere; it is left out (test-only files, and a file's trailing
/// `#[cfg(test)] mod …`).
fn production_source(text: &str) -> String {
    let mut out = String::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let t = line.trim();
        if t == "#[cfg(test)]" && lines.peek().is_some_and(|n| n.trim_start().starts_with("mod ")) {
            let next = lines.next().unwrap_or_default();
            // `#[cfg(test)] mod tests;` (a file of its own) skips one line; an inline module
            // runs to its closing brace at the start of a line.
            if next.trim_end().ends_with(';') {
                continue;
            }
            for l in lines.by_ref() {
                if l.starts_with('}') {
                    break;
                }
            }
            continue;
        }
        let code = match t.find("//") {
            Some(0) => continue,
            _ => line,
        };
        out.push_str(code);
        out.push('\n');
    }
    out
}

/// Every path written after `crate::`, `super::`, `self::` or the name of one of the module's
/// own child modules, expanded through `{…}` groups, as full paths from the crate root.
fn paths_used(module: &str, children: &[String], source: &str) -> Vec<String> {
    let mut found = Vec::new();
    let bytes = source.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if !source.is_char_boundary(i) {
            i += 1;
            continue;
        }
        let rest = &source[i..];
        let (prefix_len, base) = if rest.starts_with("crate::") && !preceded_by_ident(source, i) {
            (7, String::new())
        } else if rest.starts_with("super::") && !preceded_by_ident(source, i) {
            let mut base: Vec<&str> = module.split("::").filter(|s| !s.is_empty()).collect();
            let mut j = i;
            // `super::super::…`: each one leaves a module (`a/mod.rs` is `a`, `a/b.rs` is
            // `a::b`, so both pop one segment).
            while source[j..].starts_with("super::") {
                base.pop();
                j += 7;
            }
            (j - i, base.join("::"))
        } else if let Some(child) = children
            .iter()
            .find(|c| rest.starts_with(&format!("{c}::")) && !preceded_by_ident(source, i))
        {
            // `child::item` names the child module itself: the path is read from its name.
            let _ = child;
            (0, module.to_string())
        } else if rest.starts_with("self::") && !preceded_by_ident(source, i) {
            (6, module.to_string())
        } else {
            i += 1;
            continue;
        };
        let (tree, used) = read_use_tree(&source[i + prefix_len..]);
        for p in expand(&tree) {
            let full = if base.is_empty() { p } else { format!("{base}::{p}") };
            found.push(full);
        }
        i += prefix_len + used.max(1);
    }
    found
}

fn preceded_by_ident(source: &str, i: usize) -> bool {
    source[..i].chars().next_back().is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':')
}

/// Reads a path or a `{…}` group after `crate::`; returns the text and its length.
fn read_use_tree(s: &str) -> (String, usize) {
    let mut depth = 0usize;
    for (k, c) in s.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => return (s[..k].to_string(), k),
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return (s[..=k].to_string(), k + 1);
                }
            }
            c if depth == 0 && !(c.is_alphanumeric() || c == '_' || c == ':') => {
                return (s[..k].to_string(), k);
            }
            _ => {}
        }
    }
    (s.to_string(), s.len())
}

/// `a::{b, c::{d}}` → `a::b`, `a::c::d`.
fn expand(tree: &str) -> Vec<String> {
    let tree: String = tree.chars().filter(|c| !c.is_whitespace()).collect();
    let Some(open) = tree.find('{') else {
        return vec![tree.trim_end_matches("::").to_string()];
    };
    let head = tree[..open].trim_end_matches("::");
    let inner = &tree[open + 1..tree.len().saturating_sub(1)];
    let mut items = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (k, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(&inner[start..k]);
                start = k + 1;
            }
            _ => {}
        }
    }
    items.push(&inner[start..]);
    let mut out = Vec::new();
    for item in items.into_iter().filter(|s| !s.is_empty()) {
        for sub in expand(item) {
            if sub == "self" || sub.is_empty() {
                out.push(head.to_string());
            } else if head.is_empty() {
                out.push(sub);
            } else {
                out.push(format!("{head}::{sub}"));
            }
        }
    }
    out
}

/// The module a path names: its longest prefix that is a module of the crate.
fn resolve(path: &str, modules: &BTreeSet<String>) -> String {
    let parts: Vec<&str> = path.split("::").collect();
    for n in (0..=parts.len()).rev() {
        let candidate = parts[..n].join("::");
        if modules.contains(&candidate) {
            return candidate;
        }
    }
    String::new()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable src") {
        let path = entry.expect("a dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// File-level import graph of the server's production code: module → modules it imports.
fn import_graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut sources = BTreeMap::new();
    for f in &files {
        let rel = f.strip_prefix(&src).expect("under src");
        let name = rel.file_name().unwrap_or_default().to_string_lossy();
        if name == "tests.rs" || name == "test_support.rs" || rel.starts_with("tests") {
            continue;
        }
        if rel.iter().any(|p| p == "tests") {
            continue;
        }
        let text = std::fs::read_to_string(f).expect("readable source");
        sources.insert(module_of(rel), production_source(&text));
    }
    let modules: BTreeSet<String> = sources.keys().cloned().collect();
    let mut graph = BTreeMap::new();
    for (module, text) in &sources {
        let children: Vec<String> = modules
            .iter()
            .filter_map(|m| {
                let rest = if module.is_empty() {
                    Some(m.as_str())
                } else {
                    m.strip_prefix(&format!("{module}::"))
                };
                rest.filter(|r| !r.is_empty() && !r.contains("::")).map(str::to_string)
            })
            .collect();
        let targets: BTreeSet<String> = paths_used(module, &children, text)
            .iter()
            .map(|p| resolve(p, &modules))
            .filter(|t| t != module)
            .collect();
        graph.insert(module.clone(), targets);
    }
    graph
}

/// Strongly connected components with more than one module (Tarjan).
fn cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct State<'a> {
        graph: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        next: usize,
        out: Vec<Vec<String>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a str) {
        s.index.insert(v, s.next);
        s.low.insert(v, s.next);
        s.next += 1;
        s.stack.push(v);
        s.on_stack.insert(v);
        let graph = s.graph;
        for w in graph.get(v).into_iter().flatten() {
            let w = w.as_str();
            if !graph.contains_key(w) {
                continue;
            }
            if !s.index.contains_key(w) {
                visit(s, w);
                let lw = s.low[w];
                let lv = s.low.get_mut(v).expect("visited");
                *lv = (*lv).min(lw);
            } else if s.on_stack.contains(w) {
                let iw = s.index[w];
                let lv = s.low.get_mut(v).expect("visited");
                *lv = (*lv).min(iw);
            }
        }
        if s.low[v] == s.index[v] {
            let mut component = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                component.push(w.to_string());
                if w == v {
                    break;
                }
            }
            if component.len() > 1 {
                component.sort();
                s.out.push(component);
            }
        }
    }
    let mut s = State {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        next: 0,
        out: Vec::new(),
    };
    for v in graph.keys() {
        if !s.index.contains_key(v.as_str()) {
            visit(&mut s, v);
        }
    }
    s.out
}

fn display(module: &str) -> &str {
    if module.is_empty() {
        "(crate root)"
    } else {
        module
    }
}

#[test]
fn the_server_has_no_import_cycle() {
    let graph = import_graph();
    let edges: usize = graph.values().map(BTreeSet::len).sum();
    println!("{} modules, {edges} imports between them", graph.len());
    let found = cycles(&graph);
    let mut report = String::new();
    for component in &found {
        report.push_str(&format!("  cycle among {}; its imports:\n", component.join(", ")));
        for from in component {
            for to in graph[from].iter().filter(|t| component.contains(t)) {
                report.push_str(&format!("    {} → {}\n", display(from), display(to)));
            }
        }
    }
    assert!(found.is_empty(), "import cycles among the server's modules:\n{report}");
}

#[test]
fn every_module_imports_only_its_own_layer_or_below() {
    let graph = import_graph();
    let mut upward = Vec::new();
    for (from, targets) in &graph {
        for to in targets {
            if layer_of(to) < layer_of(from) {
                upward.push(format!(
                    "  {} ({}) imports {} ({})",
                    display(from),
                    LAYERS[layer_of(from)].0,
                    display(to),
                    LAYERS[layer_of(to)].0
                ));
            }
        }
    }
    assert!(upward.is_empty(), "imports that run up the layers:\n{}", upward.join("\n"));
}

#[test]
fn the_checker_sees_imports_groups_and_cycles() {
    let modules: BTreeSet<String> = ["a", "a::b", "c"].iter().map(|s| s.to_string()).collect();
    let used = paths_used("c", &[], "use crate::{a::{b::X, self}, c::Y};\nlet _ = crate::a::f();");
    let resolved: BTreeSet<String> = used.iter().map(|p| resolve(p, &modules)).collect();
    assert_eq!(resolved, ["a", "a::b", "c"].iter().map(|s| s.to_string()).collect());
    assert_eq!(paths_used("a::b", &[], "use super::Z;"), vec!["a::Z".to_string()]);
    let skipped =
        production_source("use crate::a;\n#[cfg(test)]\nmod tests {\n use crate::c;\n}\n");
    assert!(!skipped.contains("crate::c"));
    let mut graph = BTreeMap::new();
    graph.insert("a".to_string(), BTreeSet::from(["c".to_string()]));
    graph.insert("c".to_string(), BTreeSet::from(["a".to_string()]));
    graph.insert("a::b".to_string(), BTreeSet::from(["a".to_string()]));
    assert_eq!(cycles(&graph), vec![vec!["a".to_string(), "c".to_string()]]);
}
