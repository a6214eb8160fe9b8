//! MeshPassthrough as read: both forms, Kuma's defaults, the targets and modes each Kuma
//! version takes, and the resource written back.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use external_service_model::config::check;
use external_service_model::mesh_passthrough::{MeshPassthroughSpec, PassthroughMode};
use external_service_model::resource::{from_value, Origin, Spec};
use serde_json::Value;

fn read(yaml: &str) -> MeshPassthroughSpec {
    let value: Value = serde_yaml_ng::from_str(yaml).unwrap();
    let resource = from_value(value, Origin::default()).unwrap();
    let written_back = from_value(resource.to_universal(), Origin::default()).unwrap();
    assert_eq!(written_back, resource, "written back and read again");
    match resource.spec {
        Spec::MeshPassthrough(spec) => *spec,
        other => panic!("{other:?}"),
    }
}

fn violations(yaml: &str) -> Vec<(String, String)> {
    let value: Value = serde_yaml_ng::from_str(yaml).unwrap();
    let checked = check(Origin::in_file("case.yaml", vec![value]), None);
    checked.reports[0]
        .violations
        .iter()
        .map(|v| (v.field.clone(), v.message.clone()))
        .collect()
}

const UNIVERSAL: &str = "type: MeshPassthrough\nname: mp\nmesh: default\nspec:\n";
const KUBERNETES: &str = "apiVersion: kuma.io/v1alpha1\nkind: MeshPassthrough\nmetadata:\n  name: mp\n  namespace: kuma-system\nspec:\n";

#[test]
fn both_forms_read_the_same_with_protocol_tcp_and_mode_matched_by_default() {
    let spec = "  default:\n    appendMatch:\n    - type: CIDR\n      value: 10.0.0.0/8\n";
    let universal = read(&format!("{UNIVERSAL}{spec}"));
    let kubernetes = read(&format!("{KUBERNETES}{spec}"));
    assert_eq!(universal, kubernetes);
    assert_eq!(universal.matches()[0].protocol.as_deref(), Some("tcp"));
    assert_eq!(universal.matches()[0].port, None);
    let mode = universal.default.passthrough_mode.as_deref();
    assert_eq!(PassthroughMode::of(mode), Some(PassthroughMode::Matched));
    assert_eq!(violations(&format!("{UNIVERSAL}{spec}")), vec![]);
}

#[test]
fn targets_of_2_9_and_2_10_are_taken_and_others_named_in_kumas_words() {
    let with_target = |target: &str| {
        violations(&format!(
            "{UNIVERSAL}  targetRef:\n{target}  default:\n    passthroughMode: None\n"
        ))
    };
    assert_eq!(with_target("    kind: Mesh\n"), vec![]);
    assert_eq!(
        with_target("    kind: MeshSubset\n    tags:\n      app: web\n"),
        vec![]
    );
    assert_eq!(with_target("    kind: Dataplane\n    name: web\n"), vec![]);
    let pair = |f: &str, m: &str| (f.to_string(), m.to_string());
    assert_eq!(
        with_target("    kind: MeshService\n    name: web\n"),
        vec![pair(
            "spec.targetRef.kind",
            "value 'MeshService' is not supported"
        )]
    );
    assert_eq!(
        with_target("    kind: Mesh\n    name: web\n    tags:\n      a: b\n"),
        vec![
            pair(
                "spec.targetRef.name",
                "using name with kind Mesh is not yet supported"
            ),
            pair("spec.targetRef.tags", "must not be set with kind Mesh"),
        ]
    );
    assert_eq!(
        with_target("    kind: MeshSubset\n    name: web\n    tags:\n      a: ''\n"),
        vec![
            pair(
                "spec.targetRef.name",
                "must not be set with kind MeshSubset"
            ),
            pair("spec.targetRef.tags[\"a\"]", "tag value must be non-empty"),
        ]
    );
    assert_eq!(
        with_target(
            "    kind: Dataplane\n    name: web\n    labels:\n      a: b\n    sectionName: http\n"
        ),
        vec![
            pair(
                "spec.targetRef.labels",
                "either labels or name and namespace must be specified"
            ),
            pair(
                "spec.targetRef.sectionName",
                "can only be used with inbound policies"
            ),
        ]
    );
    assert_eq!(
        with_target("    name: web\n"),
        vec![pair("spec.targetRef.kind", "must be defined")]
    );
}

#[test]
fn modes_are_all_matched_or_none_in_the_api_servers_words() {
    for mode in ["All", "Matched", "None"] {
        let yaml = format!("{UNIVERSAL}  default:\n    passthroughMode: {mode}\n");
        assert_eq!(violations(&yaml), vec![], "{mode}");
    }
    let yaml = format!("{UNIVERSAL}  default:\n    passthroughMode: Some\n");
    assert_eq!(
        violations(&yaml),
        vec![(
            "spec.default.passthroughMode".to_string(),
            "in body should be one of [All Matched None]".to_string()
        )]
    );
}

#[test]
fn what_2_9_accepts_and_2_14_refuses_is_accepted_and_the_reverse_too() {
    let with_match = |m: &str| {
        violations(&format!(
            "{UNIVERSAL}  default:\n    appendMatch:\n    - {m}\n"
        ))
    };
    // 2.9 checks no Domain that starts with `*`; 2.14 refuses these.
    assert_eq!(
        with_match("{type: Domain, value: '*.', port: 443, protocol: tls}"),
        vec![]
    );
    // 2.9 takes a wildcard with an L7 protocol on every port; 2.10+ refuses it.
    assert_eq!(
        with_match("{type: Domain, value: '*.example.com', protocol: http}"),
        vec![]
    );
    // 2.10+ takes mysql, which 2.9 did not know.
    assert_eq!(
        with_match("{type: IP, value: 10.0.0.1, port: 3306, protocol: mysql}"),
        vec![]
    );
    // Refused by both (2.9's signed port let a negative one through unchecked).
    assert_eq!(
        with_match("{type: IP, value: 10.0.0.1, port: -1}"),
        vec![(
            "spec.default.appendMatch[0].port".to_string(),
            "port must be a valid (1-65535)".to_string()
        )]
    );
}

#[test]
fn an_unknown_field_is_named() {
    let yaml = format!(
        "{UNIVERSAL}  default:\n    appendMatch:\n    - {{type: IP, value: 10.0.0.1, ports: 80}}\n"
    );
    let found = violations(&yaml);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].0, "spec.default.appendMatch[0].ports");
    assert!(found[0].1.contains("unknown field `ports`"), "{found:?}");
}
