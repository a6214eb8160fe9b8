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
