//! The layout's rules, held: no module of a crate imports, directly or through others, a
//! module that imports it back (a child using its parent's items is no circle; a parent
//! declares its children). Read from the source: every `crate::`, `super::` and `self::` path
//! outside comments and test modules.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// The crates whose modules must form no circle, from the workspace root.
const CRATES: &[&str] = &[
    "envoy-configs/src",
    "envoy-configs/testkit/src",
    "filter/model/src",
    "filter/src",
    "filter/conformance/src",
    "host-tests/src",
];

#[test]
fn no_module_imports_one_that_imports_it_back() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut circles = Vec::new();
    for krate in CRATES {
        let graph = import_graph(&root.join(krate));
        assert!(graph.len() > 1, "{krate}: no modules found");
        circles.extend(
            strongly_connected(&graph)
                .into_iter()
                .map(|c| format!("{krate}: {}", c.join(" -> "))),
        );
    }
    assert!(
        circles.is_empty(),
        "modules that import each other:\n{}",
        circles.join("\n")
    );
}

#[test]
fn a_circle_is_found() {
    let graph = BTreeMap::from([
        ("a".to_string(), BTreeSet::from(["b".to_string()])),
        ("b".to_string(), BTreeSet::from(["c".to_string()])),
        ("c".to_string(), BTreeSet::from(["a".to_string()])),
        ("d".to_string(), BTreeSet::from(["a".to_string()])),
    ]);
    assert_eq!(strongly_connected(&graph), vec![vec!["a", "b", "c"]]);
    let source = "use super::{x, y::{Z, W}};\n// use crate::q;\nfn f() { crate::r::go(); }";
    assert_eq!(
        paths(source),
        ["super::x", "super::y::Z", "super::y::W", "crate::r::go"]
    );
}

/// Module path (`generate::cluster`; the crate root is "") -> the modules it uses.
type Graph = BTreeMap<String, BTreeSet<String>>;

fn import_graph(src: &Path) -> Graph {
    let files = rust_files(src);
    let module_of = |file: &Path| -> Vec<String> {
        let relative = file.strip_prefix(src).unwrap_or(file).with_extension("");
        let mut parts: Vec<String> = relative
            .iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect();
        if matches!(
            parts.last().map(String::as_str),
            Some("mod" | "lib" | "main")
        ) {
            parts.pop();
        }
        parts
    };
    let modules: BTreeSet<Vec<String>> = files.iter().map(|f| module_of(f)).collect();
    let mut graph = Graph::new();
    for file in &files {
        let this = module_of(file);
        let text = fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let uses = graph.entry(this.join("::")).or_default();
        for path in paths(&text) {
            let Some(target) = resolve(&this, &path, &modules) else {
                continue;
            };
            // A child naming its ancestor's items, or a module naming itself, is no edge.
            if !this.starts_with(&target) {
                uses.insert(target.join("::"));
            }
        }
    }
    graph
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let entries = fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            // `src/bin/` holds programs of their own, not modules of the crate.
            if path.file_name().is_some_and(|n| n != "bin") {
                files.extend(rust_files(&path));
            }
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files
}

/// The `crate::`/`super::`/`self::` paths of `source`, use trees expanded, comments and the
/// code after the first `#[cfg(test)]` left out.
fn paths(source: &str) -> Vec<String> {
    let code = source.split("#[cfg(test)]").next().unwrap_or_default();
    let code: String = code
        .lines()
        .map(|l| l.split("//").next().unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n");
    let mut found = Vec::new();
    let bytes = code.as_bytes();
    let mut i = 0;
    while i < code.len() {
        let rest = &code[i..];
        let boundary = i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_');
        let start = ["crate::", "super::", "self::"]
            .iter()
            .find(|p| boundary && rest.starts_with(**p));
        match start {
            Some(_) => {
                let len = path_len(rest);
                expand("", &rest[..len], &mut found);
                i += len.max(1);
            }
            None => i += rest.chars().next().map_or(1, char::len_utf8),
        }
    }
    found
}

/// The length of the path (with its use tree) at the start of `s`.
fn path_len(s: &str) -> usize {
    let mut depth = 0usize;
    for (i, c) in s.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth > 0 => depth -= 1,
            c if depth > 0 || c.is_alphanumeric() || c == '_' || c == ':' || c == '*' => {}
            _ => return i,
        }
        if depth == 0 && c == '}' {
            return i + 1;
        }
    }
    s.len()
}

/// `prefix` + the use tree `tree` (`a::{b, c::{d}}`), one path per leaf.
fn expand(prefix: &str, tree: &str, out: &mut Vec<String>) {
    let tree: String = tree.chars().filter(|c| !c.is_whitespace()).collect();
    let Some(open) = tree.find('{') else {
        let path = format!("{prefix}{}", tree.trim_end_matches("::"));
        if !path.is_empty() {
            out.push(path);
        }
        return;
    };
    let head = format!("{prefix}{}", &tree[..open]);
    let inner = &tree[open + 1..tree.len().saturating_sub(1)];
    let mut depth = 0;
    let mut item = String::new();
    for c in inner.chars().chain([',']) {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            _ => {}
        }
        if c == ',' && depth == 0 {
            if item == "self" {
                out.push(head.trim_end_matches("::").to_string());
            } else if !item.is_empty() {
                expand(&head, &item, out);
            }
            item.clear();
        } else {
            item.push(c);
        }
    }
}

/// The module a path names: its longest prefix that is a module of the crate.
fn resolve(this: &[String], path: &str, modules: &BTreeSet<Vec<String>>) -> Option<Vec<String>> {
    let mut segments = path.split("::").peekable();
    let mut base: Vec<String> = match segments.peek().copied() {
        Some("crate") => {
            segments.next();
            Vec::new()
        }
        _ => this.to_vec(),
    };
    while let Some(&s) = segments.peek() {
        match s {
            "super" => {
                base.pop();
            }
            "self" => {}
            _ => break,
        }
        segments.next();
    }
    let mut candidate = base;
    candidate.extend(segments.map(str::to_string));
    while !candidate.is_empty() {
        if modules.contains(&candidate) {
            return Some(candidate);
        }
        candidate.pop();
    }
    None
}

/// The circles of `graph` (its strongly connected parts of two or more), each sorted.
fn strongly_connected(graph: &Graph) -> Vec<Vec<String>> {
    struct Walk<'a> {
        graph: &'a Graph,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        circles: Vec<Vec<String>>,
    }
    fn visit<'a>(w: &mut Walk<'a>, v: &'a str) {
        let n = w.index.len();
        w.index.insert(v, n);
        w.low.insert(v, n);
        w.stack.push(v);
        for u in w.graph.get(v).into_iter().flatten() {
            let u = u.as_str();
            if !w.index.contains_key(u) {
                visit(w, u);
                let low = w.low[v].min(w.low[u]);
                w.low.insert(v, low);
            } else if w.stack.contains(&u) {
                let low = w.low[v].min(w.index[u]);
                w.low.insert(v, low);
            }
        }
        if w.low[v] == w.index[v] {
            let at = w.stack.iter().rposition(|x| *x == v).unwrap_or(0);
            let mut part: Vec<String> = w.stack.drain(at..).map(str::to_string).collect();
            if part.len() > 1 {
                part.sort();
                w.circles.push(part);
            }
        }
    }
    let mut walk = Walk {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        circles: Vec::new(),
    };
    for v in graph.keys() {
        if !walk.index.contains_key(v.as_str()) {
            visit(&mut walk, v);
        }
    }
    walk.circles
}
