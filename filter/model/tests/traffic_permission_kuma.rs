//! Kuma's own validator cases for the permissions, transcribed as data in `tests/kuma/`: every
//! entry of MeshTrafficPermission's `api/v1alpha1/validator_test.go` (Kuma 2.9.0 and v2.14.3,
//! in `mesh_traffic_permission/`) and of `traffic_permission_validator_test.go` (the same in
//! both tags, in `traffic_permission/`). `<tag>-<case>.input.yaml` holds the spec and
//! `<tag>-<case>.expected.yaml` the entry's expected violations and where this project answers
//! otherwise, and why (2.9 and 2.14 differ there, and what either accepts is accepted). Each
//! is read in Universal and in Kubernetes form through the model's reader and validator, and
//! must give exactly those violations, in Kuma's order.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use support::{indented, kuma_cases, policy_documents, violations, KumaCase};

/// How many cases each tag holds, so that a case left out is noticed.
fn count(cases: &[KumaCase], tag: &str) -> usize {
    cases.iter().filter(|c| c.expected.kuma == tag).count()
}

#[test]
fn kumas_mesh_traffic_permission_cases_give_kumas_violations_in_both_forms() {
    let cases = kuma_cases("mesh_traffic_permission");
    assert_eq!(count(&cases, "2.9.0"), 7, "2.9.0's seven entries");
    assert_eq!(count(&cases, "v2.14.3"), 15, "v2.14.3's fifteen entries");
    for case in &cases {
        let documents = policy_documents("MeshTrafficPermission", &case.expected.name, &case.spec);
        for (form, doc) in documents {
            assert_eq!(
                violations("MeshTrafficPermission", &doc),
                case.expected.ours(),
                "Kuma's case {} in {form} form",
                case.stem
            );
        }
    }
}

#[test]
fn kumas_traffic_permission_cases_give_kumas_violations_in_both_forms() {
    let cases = kuma_cases("traffic_permission");
    assert_eq!(count(&cases, "2.9.0"), 4);
    assert_eq!(count(&cases, "v2.14.3"), 4);
    for case in &cases {
        let name = &case.expected.name;
        // The older kinds keep their spec at the top level in Universal form.
        let universal = format!(
            "type: TrafficPermission\nname: {name}\nmesh: default\n{}",
            case.spec
        );
        let kubernetes = format!(
            "apiVersion: kuma.io/v1alpha1\nkind: TrafficPermission\nmesh: default\nmetadata:\n  name: {name}\nspec:\n{}",
            indented(&case.spec)
        );
        for (form, doc) in [("Universal", universal), ("Kubernetes", kubernetes)] {
            assert_eq!(
                violations("TrafficPermission", &doc),
                case.expected.ours(),
                "Kuma's case {} in {form} form",
                case.stem
            );
        }
    }
}
