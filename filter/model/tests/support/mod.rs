//! What the tests of Kuma's transcribed validator cases share: a case's spec indented under
//! `spec:`, and the (field, message) pairs the model gives for one document of a kind.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use external_service_model::config::check;
use external_service_model::resource::Origin;
use serde_json::Value;

/// A spec's lines indented by two spaces, to stand under `spec:`.
pub fn indented(spec: &str) -> String {
    spec.lines().map(|l| format!("  {l}\n")).collect()
}

/// The (field, message) pairs the model gives for one document, which must read as `kind`.
pub fn violations(kind: &str, yaml: &str) -> Vec<(String, String)> {
    let value: Value = serde_yaml_ng::from_str(yaml).expect("the case is YAML");
    let checked = check(Origin::in_file("case.yaml", vec![value]), None);
    assert_eq!(checked.reports.len(), 1);
    let report = &checked.reports[0];
    assert_eq!(report.kind, kind, "{yaml}");
    report
        .violations
        .iter()
        .map(|v| (v.field.clone(), v.message.clone()))
        .collect()
}

/// The documents of a YAML text (`---` between them), read and checked together as the file
/// `file`.
pub fn read_yaml(file: &str, yaml: &str) -> external_service_model::Checked {
    let values = yaml
        .split("\n---\n")
        .map(|doc| serde_yaml_ng::from_str::<Value>(doc).expect("YAML"))
        .collect();
    check(Origin::in_file(file, values), None)
}

/// (field, message) of every violation of every document of a YAML text.
pub fn violations_in_yaml(file: &str, yaml: &str) -> Vec<(String, String)> {
    read_yaml(file, yaml)
        .reports
        .iter()
        .flat_map(|r| r.violations.iter())
        .map(|v| (v.field.clone(), v.message.clone()))
        .collect()
}

/// Expected (field, message) pairs, owned.
pub fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
    expected
        .iter()
        .map(|(f, m)| (f.to_string(), m.to_string()))
        .collect()
}

/// The (field, message) pairs of each document, in order.
pub fn violations_of_each(docs: Vec<Value>) -> Vec<Vec<(String, String)>> {
    check(Origin::in_file("test.json", docs), None)
        .reports
        .into_iter()
        .map(|r| {
            r.violations
                .into_iter()
                .map(|v| (v.field, v.message))
                .collect()
        })
        .collect()
}

/// One of Kuma's validator cases transcribed in a folder of `tests/kuma/`:
/// `<tag>-<case>.input.yaml` holds the spec, `<tag>-<case>.expected.yaml` an `Expected`.
pub struct KumaCase {
    /// The file stem, `<tag>-<case>`.
    pub stem: String,
    pub spec: String,
    pub expected: Expected,
}

/// A case's `*.expected.yaml`: the Kuma tag whose testdata (or `validator_test.go` entry)
/// holds it, the resource name to give it, Kuma's field/message pairs in Kuma's order, and
/// where this project answers otherwise, and why.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expected {
    pub kuma: String,
    pub name: String,
    pub violations: Vec<Pair>,
    pub differences: Vec<Difference>,
}

#[derive(serde::Deserialize, Clone, PartialEq, Debug)]
#[serde(deny_unknown_fields)]
pub struct Pair {
    pub field: String,
    pub message: String,
}

/// Kuma's violation at `violation` (0-based), answered with `ours` instead (at `field`, when
/// the other tag names another field), or accepted (no `ours`).
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Difference {
    pub violation: usize,
    #[serde(default)]
    pub field: Option<String>,
    pub ours: Option<String>,
    pub why: String,
}

impl Expected {
    /// Kuma's pairs with this project's differences applied.
    pub fn ours(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (i, pair) in self.violations.iter().enumerate() {
            match self.differences.iter().find(|d| d.violation == i) {
                None => out.push((pair.field.clone(), pair.message.clone())),
                Some(d) => {
                    assert!(!d.why.is_empty());
                    if let Some(message) = &d.ours {
                        let field = d.field.as_ref().unwrap_or(&pair.field);
                        out.push((field.clone(), message.clone()));
                    }
                }
            }
        }
        out
    }
}

/// Every case of `folder` (under `tests/kuma/`), by file name; each input with its expected
/// file, and nothing else.
pub fn kuma_cases(folder: &str) -> Vec<KumaCase> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/kuma")
        .join(folder);
    let read = |name: &str| {
        let path = dir.join(name);
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    };
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
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
            assert!(stem.starts_with(&expected.kuma), "{stem}");
            KumaCase {
                stem,
                spec,
                expected,
            }
        })
        .collect()
}

/// A policy kept under `spec` in both forms, as a Universal and a Kubernetes document.
pub fn policy_documents(kind: &str, name: &str, spec: &str) -> [(&'static str, String); 2] {
    let spec = indented(spec);
    [
        (
            "Universal",
            format!("type: {kind}\nname: {name}\nmesh: default\nspec:\n{spec}"),
        ),
        (
            "Kubernetes",
            format!("apiVersion: kuma.io/v1alpha1\nkind: {kind}\nmetadata:\n  name: {name}\n  namespace: kuma-system\n  labels:\n    kuma.io/mesh: default\nspec:\n{spec}"),
        ),
    ]
}
