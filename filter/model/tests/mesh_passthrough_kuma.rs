//! Kuma's own validator cases for MeshPassthrough: every
//! `pkg/plugins/policies/meshpassthrough/api/v1alpha1/testdata/*.input.yaml` of Kuma 2.9.0
//! and v2.14.3 (the newest 2.14 tag read), transcribed as data in `tests/kuma/mesh_passthrough/`:
//! `<tag>-<case>.input.yaml` holds the spec, and `<tag>-<case>.expected.yaml` the pairs of
//! its `*.output.yaml` and where this project answers otherwise, and why (2.9 and 2.14 differ
//! there, and what either accepts is accepted). Each is read in Universal and in Kubernetes
//! form through the model's reader and validator, and must give exactly those violations, in
//! Kuma's order.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use support::indented;

use std::fs;
use std::path::Path;

use serde::Deserialize;

const CASES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/kuma/mesh_passthrough");

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Expected {
    kuma: String,
    name: String,
    violations: Vec<Pair>,
    differences: Vec<Difference>,
}

#[derive(Deserialize, Clone, PartialEq, Debug)]
#[serde(deny_unknown_fields)]
struct Pair {
    field: String,
    message: String,
}

/// Kuma's violation at `violation` (0-based), answered with `ours` instead, or accepted.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Difference {
    violation: usize,
    ours: Option<String>,
    why: String,
}

impl Expected {
    /// Kuma's pairs with this project's differences applied.
    fn ours(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (i, pair) in self.violations.iter().enumerate() {
            match self.differences.iter().find(|d| d.violation == i) {
                None => out.push((pair.field.clone(), pair.message.clone())),
                Some(d) => {
                    assert!(!d.why.is_empty());
                    if let Some(message) = &d.ours {
                        out.push((pair.field.clone(), message.clone()));
                    }
                }
            }
        }
        out
    }
}

fn read(name: &str) -> String {
    let path = Path::new(CASES).join(name);
    fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every case of the folder; each input with its expected file, and nothing else.
fn cases() -> Vec<(String, String, Expected)> {
    let mut names: Vec<String> = fs::read_dir(CASES)
        .unwrap_or_else(|e| panic!("{CASES}: {e}"))
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    let stems: Vec<String> = names
        .iter()
        .filter_map(|n| n.strip_suffix(".input.yaml").map(str::to_string))
        .collect();
    let paired: Vec<String> = stems
        .iter()
        .flat_map(|s| [format!("{s}.expected.yaml"), format!("{s}.input.yaml")])
        .collect();
    assert_eq!(
        names, paired,
        "each <case>.input.yaml with its <case>.expected.yaml only"
    );
    stems
        .into_iter()
        .map(|stem| {
            let spec = read(&format!("{stem}.input.yaml"));
            let expected: Expected =
                serde_yaml_ng::from_str(&read(&format!("{stem}.expected.yaml")))
                    .unwrap_or_else(|e| panic!("{stem}.expected.yaml: {e}"));
            (stem, spec, expected)
        })
        .collect()
}

/// The (field, message) pairs the model gives for one document of this kind.
fn violations(yaml: &str) -> Vec<(String, String)> {
    support::violations("MeshPassthrough", yaml)
}

#[test]
fn kumas_validator_cases_give_kumas_violations_in_both_forms() {
    let cases = cases();
    let tags: Vec<&str> = cases.iter().map(|(_, _, e)| e.kuma.as_str()).collect();
    assert_eq!(
        tags,
        ["2.9.0", "2.9.0", "v2.14.3", "v2.14.3"],
        "2 cases in each tag"
    );
    for (stem, spec, expected) in &cases {
        assert!(stem.starts_with(&expected.kuma), "{stem}");
        let universal = format!(
            "type: MeshPassthrough\nname: {}\nmesh: default\nspec:\n{}",
            expected.name,
            indented(spec)
        );
        let kubernetes = format!(
            "apiVersion: kuma.io/v1alpha1\nkind: MeshPassthrough\nmetadata:\n  name: {}\n  namespace: kuma-system\n  labels:\n    kuma.io/mesh: default\nspec:\n{}",
            expected.name,
            indented(spec)
        );
        for (form, doc) in [("Universal", universal), ("Kubernetes", kubernetes)] {
            assert_eq!(
                violations(&doc),
                expected.ours(),
                "Kuma testdata {stem} in {form} form"
            );
        }
    }
}
