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

#[test]
fn kumas_validator_cases_give_kumas_violations_in_both_forms() {
    let cases = support::kuma_cases("mesh_passthrough");
    let tags: Vec<&str> = cases.iter().map(|c| c.expected.kuma.as_str()).collect();
    assert_eq!(
        tags,
        ["2.9.0", "2.9.0", "v2.14.3", "v2.14.3"],
        "2 cases in each tag"
    );
    for case in &cases {
        let documents =
            support::policy_documents("MeshPassthrough", &case.expected.name, &case.spec);
        for (form, doc) in documents {
            assert_eq!(
                support::violations("MeshPassthrough", &doc),
                case.expected.ours(),
                "Kuma testdata {} in {form} form",
                case.stem
            );
        }
    }
}
