//! Kuma's own validator cases for MeshExternalService, in Kuma's own form: every
//! `pkg/core/resources/apis/meshexternalservice/api/v1alpha1/testdata/*.input.yaml` of Kuma
//! 2.9.0 and v2.14.3 (the newest 2.14 tag read), transcribed as data in
//! `tests/kuma/mesh_external_service/`: `<case>.input.yaml` holds the spec, and
//! `<case>.expected.yaml` the Kuma tags whose testdata hold the case, the resource name its
//! `validator_test.go` entry gives and the field/message pairs of its `*.output.yaml`. Each is
//! read in Universal and in Kubernetes form through the model's reader and validator, and must
//! give exactly Kuma's violations, in Kuma's order.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use support::indented;

use std::fs;
use std::path::Path;

use serde::Deserialize;

/// The folder of the transcribed cases.
const CASES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/kuma/mesh_external_service"
);

/// One case: its testdata file's stem and the spec of its `.input.yaml`, with what
/// `<stem>.expected.yaml` says of it.
struct Case {
    file: String,
    spec: String,
    expected: Expected,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Expected {
    /// The Kuma tags whose testdata hold the case.
    kuma: Vec<String>,
    /// The resource name `validator_test.go` gives it.
    name: String,
    /// The `.output.yaml`'s pairs, in its order; none for a valid case.
    violations: Vec<Pair>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Pair {
    field: String,
    message: String,
}

/// Every case of the folder, by file name; each input with its expected file, and nothing else.
fn cases() -> Vec<Case> {
    let mut names: Vec<String> = fs::read_dir(CASES)
        .unwrap_or_else(|e| panic!("{CASES}: {e}"))
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    let read = |name: &str| {
        let path = Path::new(CASES).join(name);
        fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    };
    let inputs: Vec<&str> = names
        .iter()
        .filter_map(|n| n.strip_suffix(".input.yaml"))
        .collect();
    let paired: Vec<String> = inputs
        .iter()
        .flat_map(|file| {
            [
                format!("{file}.expected.yaml"),
                format!("{file}.input.yaml"),
            ]
        })
        .collect();
    assert_eq!(
        names, paired,
        "each <case>.input.yaml with its <case>.expected.yaml only"
    );
    inputs
        .into_iter()
        .map(|file| Case {
            file: file.to_string(),
            spec: read(&format!("{file}.input.yaml")),
            expected: serde_yaml_ng::from_str(&read(&format!("{file}.expected.yaml")))
                .unwrap_or_else(|e| panic!("{file}.expected.yaml: {e}")),
        })
        .collect()
}

fn universal(case: &Case) -> String {
    format!(
        "type: MeshExternalService\nname: {}\nmesh: default\nspec:\n{}",
        case.expected.name,
        indented(&case.spec)
    )
}

fn kubernetes(case: &Case) -> String {
    format!(
        "apiVersion: kuma.io/v1alpha1\nkind: MeshExternalService\nmetadata:\n  name: {}\n  namespace: kuma-system\n  labels:\n    kuma.io/mesh: default\nspec:\n{}",
        case.expected.name,
        indented(&case.spec)
    )
}

/// The (field, message) pairs the model gives for one document of this kind.
fn violations(yaml: &str) -> Vec<(String, String)> {
    support::violations("MeshExternalService", yaml)
}

#[test]
fn kumas_validator_cases_give_kumas_violations_in_both_forms() {
    let cases = cases();
    assert_eq!(cases.len(), 10, "8 cases in 2.9.0, 10 in v2.14.3");
    let in_2_9 = cases
        .iter()
        .filter(|c| c.expected.kuma.iter().any(|k| k == "2.9.0"));
    assert_eq!(in_2_9.count(), 8, "8 cases in 2.9.0");
    for case in &cases {
        let expected: Vec<(String, String)> = case
            .expected
            .violations
            .iter()
            .map(|p| (p.field.clone(), p.message.clone()))
            .collect();
        for (form, doc) in [
            ("Universal", universal(case)),
            ("Kubernetes", kubernetes(case)),
        ] {
            assert_eq!(
                violations(&doc),
                expected,
                "Kuma {} testdata/{} in {form} form",
                case.expected.kuma.join(", "),
                case.file
            );
        }
    }
}

/// Where 2.9.0's and v2.14.3's validator code differ (no testdata of either covers these):
/// what either accepts is accepted.
#[test]
fn what_2_9_refuses_and_2_14_accepts_is_accepted() {
    let with = |extra: &str| {
        format!(
            "type: MeshExternalService\nname: a\nspec:\n  match:\n    port: 80\n    protocol: tcp\n{extra}  endpoints:\n  - address: example.com\n    port: 443\n"
        )
    };
    // 2.9: `Type *MatchType`, so `type: ""` is "unrecognized type ''"; 2.10+: "" is allowed.
    assert_eq!(violations(&with("    type: \"\"\n")), vec![]);
    // 2.9: `Mode *VerificationMode`, so `mode: ""` is refused; 2.10+: "" is allowed.
    let empty_mode = "type: MeshExternalService\nname: a\nspec:\n  match: {port: 80, protocol: tcp}\n  tls:\n    verification:\n      mode: \"\"\n";
    assert_eq!(violations(empty_mode), vec![]);
}
