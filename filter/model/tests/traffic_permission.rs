//! MeshTrafficPermission and TrafficPermission through the model: the two forms, what Kuma
//! 2.9 or 2.14 takes, and the decision: Kuma's merge of `from` (its own rule-building cases
//! included), `rules`, the older TrafficPermission, Kuma's defaults, mTLS, and the warnings.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::BTreeMap;

use external_service_model::resource::{from_value, Kind};
use external_service_model::traffic_permission::identity::uri_sans;
use external_service_model::traffic_permission::{
    sni, warnings, Action, Caller, Grant, Permissions, PolicyRef, Principal, Verdict,
};

fn read(yaml: &str) -> external_service_model::Checked {
    support::read_yaml("permissions.yaml", yaml)
}

fn violations(yaml: &str) -> Vec<(String, String)> {
    support::violations_in_yaml("permissions.yaml", yaml)
}

use support::pairs;

const MESH_MTLS: &str = "type: Mesh\nname: default\nmtls:\n  enabledBackend: ca-1\n  backends:\n  - {name: ca-1, type: builtin}\n";
const HTTPBIN: &str = "type: ExternalService\nname: httpbin\nmesh: default\ntags:\n  kuma.io/service: httpbin\n  kuma.io/protocol: http\n  env: prod\nnetworking:\n  address: httpbin.org:443\n";
const MES: &str = "type: MeshExternalService\nname: aurora\nmesh: default\nspec:\n  match: {type: HostnameGenerator, port: 5432, protocol: tcp}\n  endpoints:\n  - {address: aurora.example, port: 5432}\n";

/// The permissions of mesh `default` from valid documents.
fn permissions(yaml: &str) -> Permissions {
    let checked = read(yaml);
    let invalid: Vec<String> = checked.invalid().map(ToString::to_string).collect();
    assert!(invalid.is_empty(), "{}", invalid.join("\n"));
    Permissions::of_mesh(&checked.resources, "default")
}

fn mtp(name: &str, spec: &str) -> String {
    format!("type: MeshTrafficPermission\nname: {name}\nmesh: default\nspec:\n{spec}")
}

fn tags(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn service(name: &str) -> BTreeMap<String, String> {
    tags(&[("kuma.io/service", name)])
}

/// The verdict for a caller with `caller` tags reaching ExternalService `httpbin`.
fn to_httpbin(p: &Permissions, caller: &BTreeMap<String, String>) -> Verdict {
    p.decide(Kind::ExternalService, "httpbin", &Caller { tags: caller })
}

fn by(kind: Kind, name: &str) -> Option<PolicyRef> {
    Some(PolicyRef {
        kind,
        name: name.to_string(),
    })
}

fn verdict(action: Action, decided_by: Option<PolicyRef>) -> Verdict {
    Verdict { action, decided_by }
}

fn by_mtp(name: &str) -> Option<PolicyRef> {
    by(Kind::MeshTrafficPermission, name)
}

// Reading.

#[test]
fn both_forms_read_the_same_and_write_back() {
    let spec = "  targetRef: {kind: MeshService, name: httpbin}\n  from:\n  - targetRef: {kind: MeshSubset, tags: {app: web}}\n    default: {action: Allow}\n";
    let universal = mtp("allow-web", spec);
    let kubernetes = format!("apiVersion: kuma.io/v1alpha1\nkind: MeshTrafficPermission\nmetadata:\n  name: allow-web\n  namespace: kuma-system\n  labels: {{kuma.io/mesh: default}}\nspec:\n{spec}");
    let tp_universal = "type: TrafficPermission\nname: tp\nmesh: default\nsources:\n- match: {kuma.io/service: web}\ndestinations:\n- match: {kuma.io/service: httpbin}\n";
    let tp_kubernetes = "apiVersion: kuma.io/v1alpha1\nkind: TrafficPermission\nmesh: default\nmetadata:\n  name: tp\nspec:\n  sources:\n  - match: {kuma.io/service: web}\n  destinations:\n  - match: {kuma.io/service: httpbin}\n";
    for (a, b) in [
        (universal, kubernetes),
        (tp_universal.into(), tp_kubernetes.into()),
    ] {
        let (a, b) = (read(&a), read(&b));
        assert!(a.is_valid() && b.is_valid());
        let (a, b) = (&a.resources[0], &b.resources[0]);
        assert_eq!((&a.spec, &a.mesh, &a.name), (&b.spec, &b.mesh, &b.name));
        let written_back = from_value(a.to_universal(), a.origin.clone()).unwrap();
        assert_eq!(&written_back, a);
    }
}

#[test]
fn a_field_kuma_does_not_have_is_named() {
    let found = violations(&mtp("p", "  targetRef: {kind: Mesh}\n  to: []\n"));
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].0, "spec.to");
    assert!(found[0].1.starts_with("unknown field `to`"), "{found:?}");
}

#[test]
fn a_spec_written_with_no_value_is_an_empty_spec_in_both_forms() {
    let neither = pairs(&[(
        "spec",
        "at least one of 'from' or 'rules' has to be defined",
    )]);
    assert_eq!(
        violations("type: MeshTrafficPermission\nname: p\nspec:\n"),
        neither
    );
    assert_eq!(
        violations("apiVersion: kuma.io/v1alpha1\nkind: MeshTrafficPermission\nmetadata: {name: p}\nspec:\n"),
        neither
    );
}

/// What one tag accepts is accepted: 2.12's `rules`, 2.10's `Dataplane` target, 2.14's
/// MeshService by labels with a sectionName (2.9 refused it), and 2.14's selector values in a
/// MeshServiceSubset (2.9 refused `*`).
#[test]
fn what_either_kuma_takes_is_taken() {
    let specs = [
        "  rules:\n  - default:\n      allow:\n      - spiffeID: {type: Prefix, value: 'spiffe://default'}\n",
        "  targetRef: {kind: Dataplane, labels: {app: web}}\n  from:\n  - targetRef: {kind: Mesh}\n    default: {action: Deny}\n",
        "  targetRef: {kind: MeshService, labels: {app: web}, sectionName: http}\n  from:\n  - targetRef: {kind: Mesh}\n    default: {action: Allow}\n",
        "  targetRef: {kind: MeshServiceSubset, name: web, tags: {version: '*'}}\n  from:\n  - targetRef: {kind: MeshServiceSubset, name: web, tags: {zone: 'eu/west'}}\n    default: {action: AllowWithShadowDeny}\n",
    ];
    for spec in specs {
        assert_eq!(violations(&mtp("p", spec)), vec![], "{spec}");
    }
}

#[test]
fn what_both_kumas_refuse_is_named() {
    let spec = "  targetRef: {kind: MeshService}\n  from:\n  - targetRef: {kind: MeshServiceSubset, name: Web, tags: {version: 'v 1'}}\n    default: {action: Reject}\n  rules:\n  - default:\n      deny:\n      - spiffeID: {value: 'spiffe://default/web'}\n      allow:\n      - spiffeID: {type: Suffix, value: 'spiffe://default/'}\n        sni: {type: Prefix, value: Aurora.example}\n";
    assert_eq!(
        violations(&mtp("p", spec)),
        pairs(&[
            ("spec.targetRef", "name or labels must be set when kind is MeshService"),
            ("spec", "field 'from' must be empty when 'rules' is defined"),
            ("spec.rules[0].default.allow[0].spiffeID.type", "in body should be one of [Exact Prefix]"),
            ("spec.rules[0].allow[0].spiffeID", "must be a valid Spiffe ID: path cannot have a trailing slash"),
            ("spec.rules[0].allow[0].sni.type", "unrecognized type \"Prefix\", supported values are: Exact"),
            ("spec.rules[0].allow[0].sni.value", "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"),
            ("spec.rules[0].default.deny[0].spiffeID.type", "in body is required"),
            ("spec.from[0].targetRef.name", "invalid characters: must consist of lower case alphanumeric characters, '-', '.' and '_'."),
            ("spec.from[0].targetRef.tags[\"version\"]", "tag value must consist of alphanumeric characters, dots, dashes, slashes and underscores or be \"*\""),
            ("spec.from[0].default.action", "in body should be one of [Allow Deny AllowWithShadowDeny]"),
        ])
    );
}

// The decision.

#[test]
fn a_deny_on_a_subset_written_after_a_mesh_allow_wins_and_one_written_before_is_overridden() {
    let after = mtp("p", "  targetRef: {kind: Mesh}\n  from:\n  - targetRef: {kind: Mesh}\n    default: {action: Allow}\n  - targetRef: {kind: MeshSubset, tags: {version: v1}}\n    default: {action: Deny}\n");
    let p = permissions(&format!("{MESH_MTLS}---\n{HTTPBIN}---\n{after}"));
    let v1 = tags(&[("kuma.io/service", "web"), ("version", "v1")]);
    let v2 = tags(&[("kuma.io/service", "web"), ("version", "v2")]);
    assert_eq!(to_httpbin(&p, &v1), verdict(Action::Deny, by_mtp("p")));
    assert_eq!(to_httpbin(&p, &v2), verdict(Action::Allow, by_mtp("p")));
    let before = mtp("p", "  targetRef: {kind: Mesh}\n  from:\n  - targetRef: {kind: MeshSubset, tags: {version: v1}}\n    default: {action: Deny}\n  - targetRef: {kind: Mesh}\n    default: {action: Allow}\n");
    let p = permissions(&format!("{MESH_MTLS}---\n{HTTPBIN}---\n{before}"));
    assert_eq!(to_httpbin(&p, &v1), verdict(Action::Allow, by_mtp("p")));
    assert_eq!(
        p.grants(Kind::ExternalService, "httpbin"),
        vec![Grant {
            who: Principal::AnyMeshIdentity,
            action: Action::Allow,
            decided_by: by_mtp("p"),
        }],
        "nothing after a grant to everyone is kept"
    );
}

#[test]
fn a_more_specific_policy_is_applied_later_and_among_equals_the_name_that_sorts_first() {
    let allow_all = mtp("allow-all", "  targetRef: {kind: Mesh}\n  from:\n  - targetRef: {kind: Mesh}\n    default: {action: Allow}\n");
    let deny_batch = mtp("zz-deny-batch", "  targetRef: {kind: MeshService, name: httpbin}\n  from:\n  - targetRef: {kind: MeshService, name: batch}\n    default: {action: Deny}\n");
    let p = permissions(&[MESH_MTLS, HTTPBIN, &deny_batch, &allow_all].join("---\n"));
    assert_eq!(
        to_httpbin(&p, &service("batch")),
        verdict(Action::Deny, by_mtp("zz-deny-batch"))
    );
    assert_eq!(
        to_httpbin(&p, &service("web")),
        verdict(Action::Allow, by_mtp("allow-all"))
    );
    // Two policies on the same target: "a" sorts first, so is applied last, and wins.
    let a = mtp("a", "  targetRef: {kind: Mesh}\n  from:\n  - targetRef: {kind: Mesh}\n    default: {action: Deny}\n");
    let b = mtp("b", "  targetRef: {kind: Mesh}\n  from:\n  - targetRef: {kind: Mesh}\n    default: {action: Allow}\n");
    for order in [[&a, &b], [&b, &a]] {
        let p = permissions(&[MESH_MTLS, HTTPBIN, order[0], order[1]].join("---\n"));
        assert_eq!(
            to_httpbin(&p, &service("web")),
            verdict(Action::Deny, by_mtp("a"))
        );
    }
}

#[test]
fn allow_with_shadow_deny_lets_the_caller_through_to_be_logged() {
    let shadow = mtp(
        "shadow",
        "  from:\n  - targetRef: {kind: Mesh}\n    default: {action: AllowWithShadowDeny}\n",
    );
    let p = permissions(&[MESH_MTLS, HTTPBIN, &shadow].join("---\n"));
    let v = to_httpbin(&p, &service("web"));
    assert_eq!(v, verdict(Action::AllowWithShadowDeny, by_mtp("shadow")));
    assert!(v.action.allows());
    assert!(!Action::Deny.allows());
}

/// A caller's tags, and the action Kuma gives it.
type Expected = (Vec<(&'static str, &'static str)>, Action);

/// Kuma's own rule-building cases (`core/rules/testdata/rules/from`, 2.9.0), each caller with
/// the action of its rule in Kuma's golden file. (Kuma's test builds them in the order
/// written; `multiple-mtp` is named here so that Kuma's order of policies, the name that
/// sorts first applied last, is that order.)
#[test]
fn kumas_rule_building_cases_give_kumas_actions() {
    let cases: [(&str, Vec<String>, Vec<Expected>); 4] = [
        (
            "single-mtp-from-overiding-one-another",
            vec![mtp("default-demo-app", "  targetRef: {kind: MeshSubset, tags: {k8s.kuma.io/service-name: demo-app}}\n  from:\n  - {default: {action: Deny}, targetRef: {kind: Mesh}}\n  - {default: {action: Allow}, targetRef: {kind: MeshSubset, tags: {app.kubernetes.io/name: ui}}}\n  - {default: {action: Allow}, targetRef: {kind: MeshSubset, tags: {app.kubernetes.io/name: service-order}}}\n  - {default: {action: Allow}, targetRef: {kind: MeshSubset, tags: {app.kubernetes.io/name: service-payment}}}\n")],
            vec![
                (vec![("app.kubernetes.io/name", "ui")], Action::Allow),
                (vec![("app.kubernetes.io/name", "service-payment")], Action::Allow),
                (vec![("app.kubernetes.io/name", "service-order")], Action::Allow),
                (vec![("app.kubernetes.io/name", "other")], Action::Deny),
                (vec![], Action::Deny),
            ],
        ),
        (
            "mtp-mix-ms-and-mss",
            vec![mtp("mtp-1", "  targetRef: {kind: Mesh}\n  from:\n  - {targetRef: {kind: MeshService, name: backend}, default: {action: Allow}}\n  - {targetRef: {kind: MeshServiceSubset, name: web, tags: {version: v1}}, default: {action: Deny}}\n")],
            vec![
                (vec![("kuma.io/service", "web"), ("version", "v1")], Action::Deny),
                (vec![("kuma.io/service", "backend")], Action::Allow),
                // No rule: Kuma's RBAC has no principal for it.
                (vec![("kuma.io/service", "web"), ("version", "v2")], Action::Deny),
            ],
        ),
        (
            "multiple-mtp",
            vec![
                mtp("mtp-b", "  targetRef: {kind: Mesh}\n  from:\n  - {targetRef: {kind: Mesh}, default: {action: Allow}}\n"),
                mtp("mtp-a", "  targetRef: {kind: Mesh}\n  from:\n  - {targetRef: {kind: MeshSubset, tags: {zone: us-east}}, default: {action: Deny}}\n  - {targetRef: {kind: MeshSubset, tags: {env: dev}}, default: {action: Allow}}\n  - {targetRef: {kind: MeshSubset, tags: {env: prod}}, default: {action: Allow}}\n"),
            ],
            vec![
                (vec![("env", "prod"), ("zone", "us-east")], Action::Allow),
                (vec![("env", "dev"), ("zone", "us-east")], Action::Allow),
                (vec![("env", "qa"), ("zone", "us-east")], Action::Deny),
                (vec![("zone", "us-east")], Action::Deny),
                (vec![("env", "prod"), ("zone", "eu")], Action::Allow),
                (vec![("env", "qa")], Action::Allow),
            ],
        ),
        (
            "mtp-single-shadow-deny",
            vec![mtp("mtp", "  targetRef: {kind: Mesh}\n  from:\n  - {targetRef: {kind: Mesh}, default: {action: AllowWithShadowDeny}}\n  - {targetRef: {kind: MeshService, name: a}, default: {action: Deny}}\n  - {targetRef: {kind: MeshService, name: b}, default: {action: Deny}}\n  - {targetRef: {kind: MeshService, name: c}, default: {action: Allow}}\n")],
            vec![
                (vec![("kuma.io/service", "c")], Action::Allow),
                (vec![("kuma.io/service", "b")], Action::Deny),
                (vec![("kuma.io/service", "a")], Action::Deny),
                (vec![("kuma.io/service", "d")], Action::AllowWithShadowDeny),
            ],
        ),
    ];
    // The service of the first case's target.
    let demo_app = "type: ExternalService\nname: demo-app\nmesh: default\ntags:\n  kuma.io/service: demo-app\n  k8s.kuma.io/service-name: demo-app\nnetworking:\n  address: demo.example:443\n";
    for (case, policies, callers) in cases {
        let mut docs = vec![MESH_MTLS.to_string(), demo_app.to_string()];
        docs.extend(policies);
        let p = permissions(&docs.join("---\n"));
        for (caller, want) in callers {
            let tags = tags(&caller);
            let got = p.decide(Kind::ExternalService, "demo-app", &Caller { tags: &tags });
            assert_eq!(got.action, want, "{case}: {caller:?}");
        }
    }
}

#[test]
fn a_top_level_target_selects_an_external_service_by_its_service_and_tags() {
    let by_tags = mtp("by-tags", "  targetRef: {kind: MeshSubset, tags: {env: prod}}\n  from:\n  - targetRef: {kind: Mesh}\n    default: {action: Allow}\n");
    let other = mtp("other", "  targetRef: {kind: MeshServiceSubset, name: httpbin, tags: {env: dev}}\n  from:\n  - targetRef: {kind: Mesh}\n    default: {action: Deny}\n");
    let p = permissions(&[MESH_MTLS, HTTPBIN, &by_tags, &other].join("---\n"));
    assert_eq!(
        to_httpbin(&p, &service("web")),
        verdict(Action::Allow, by_mtp("by-tags"))
    );
}

#[test]
fn an_older_traffic_permission_allows_its_sources_the_most_specific_one_and_the_last_among_equals()
{
    let tp = |name: &str, source: &str, destination: &str| {
        format!("type: TrafficPermission\nname: {name}\nmesh: default\nsources:\n- match: {source}\ndestinations:\n- match: {destination}\n")
    };
    let broad = tp("broad", "{kuma.io/service: '*'}", "{kuma.io/service: '*'}");
    let specific = tp(
        "specific",
        "{kuma.io/service: web, version: '*'}",
        "{kuma.io/service: httpbin}",
    );
    let equal = tp(
        "equal-later",
        "{kuma.io/service: batch}",
        "{kuma.io/service: httpbin}",
    );
    let by_tp = |name| by(Kind::TrafficPermission, name);
    let p = permissions(&[MESH_MTLS, HTTPBIN, &broad, &specific].join("---\n"));
    assert_eq!(
        to_httpbin(&p, &service("web")),
        verdict(Action::Allow, by_tp("specific"))
    );
    assert_eq!(
        to_httpbin(&p, &service("batch")),
        verdict(Action::Deny, None)
    );
    // `version: '*'` asks nothing of a certificate, as Kuma's egress RBAC.
    assert_eq!(
        p.grants(Kind::ExternalService, "httpbin")[0].who,
        Principal::Tags(service("web"))
    );
    let p = permissions(&[MESH_MTLS, HTTPBIN, &specific, &equal].join("---\n"));
    assert_eq!(
        to_httpbin(&p, &service("batch")),
        verdict(Action::Allow, by_tp("equal-later"))
    );
    assert_eq!(to_httpbin(&p, &service("web")), verdict(Action::Deny, None));
    // A MeshTrafficPermission with `from` for the service takes over from it.
    let deny = mtp(
        "deny",
        "  from:\n  - targetRef: {kind: Mesh}\n    default: {action: Deny}\n",
    );
    let p = permissions(&[MESH_MTLS, HTTPBIN, &broad, &deny].join("---\n"));
    assert_eq!(
        to_httpbin(&p, &service("web")),
        verdict(Action::Deny, by_mtp("deny"))
    );
}

#[test]
fn with_no_rule_an_external_service_is_denied_and_a_mesh_external_service_allowed_unless_the_mesh_forbids_it(
) {
    let p = permissions(&[MESH_MTLS, HTTPBIN, MES].join("---\n"));
    let web = service("web");
    let caller = Caller { tags: &web };
    assert_eq!(to_httpbin(&p, &web), verdict(Action::Deny, None));
    assert_eq!(
        p.decide(Kind::MeshExternalService, "aurora", &caller),
        verdict(Action::Allow, None)
    );
    let forbidding =
        format!("{MESH_MTLS}routing:\n  defaultForbidMeshExternalServiceAccess: true\n");
    let p = permissions(&[&forbidding, HTTPBIN, MES].join("---\n"));
    assert_eq!(
        p.decide(Kind::MeshExternalService, "aurora", &caller),
        verdict(Action::Deny, by(Kind::Mesh, "default"))
    );
    // `from` never decides for a MeshExternalService (Kuma 2.9 to 2.14).
    let allow = mtp(
        "allow",
        "  from:\n  - targetRef: {kind: Mesh}\n    default: {action: Allow}\n",
    );
    let p = permissions(&[&forbidding, HTTPBIN, MES, &allow].join("---\n"));
    assert_eq!(
        p.decide(Kind::MeshExternalService, "aurora", &caller),
        verdict(Action::Deny, by(Kind::Mesh, "default"))
    );
    assert_eq!(
        to_httpbin(&p, &web),
        verdict(Action::Allow, by_mtp("allow"))
    );
}

#[test]
fn without_mtls_nothing_is_enforced_and_a_warning_says_so() {
    let deny = mtp(
        "deny",
        "  from:\n  - targetRef: {kind: Mesh}\n    default: {action: Deny}\n",
    );
    let mesh = "type: Mesh\nname: default\n";
    let checked = read(&[mesh, HTTPBIN, &deny].join("---\n"));
    let p = Permissions::of_mesh(&checked.resources, "default");
    assert!(!p.enforced());
    assert_eq!(
        to_httpbin(&p, &service("web")),
        verdict(Action::Allow, by(Kind::Mesh, "default"))
    );
    assert_eq!(
        warnings(&checked.resources, "default", p.enforced()),
        vec!["mesh \"default\" has no mTLS (its Mesh sets no mtls.enabledBackend), so MeshTrafficPermission \"deny\" is not enforced and every source may reach every service: Mutual TLS has to be enabled to make MeshTrafficPermission work".to_string()]
    );
    let checked = read(&[MESH_MTLS, HTTPBIN, &deny].join("---\n"));
    let p = Permissions::of_mesh(&checked.resources, "default");
    assert!(p.enforced());
    assert_eq!(
        warnings(&checked.resources, "default", p.enforced()),
        Vec::<String>::new()
    );
}

#[test]
fn a_dataplane_target_decides_nothing_here_and_is_warned_about() {
    let dataplane = mtp("inbound", "  targetRef: {kind: Dataplane, name: web-01}\n  from:\n  - targetRef: {kind: Mesh}\n    default: {action: Allow}\n");
    let checked = read(&[MESH_MTLS, HTTPBIN, &dataplane].join("---\n"));
    let p = Permissions::of_mesh(&checked.resources, "default");
    assert_eq!(to_httpbin(&p, &service("web")), verdict(Action::Deny, None));
    let found = warnings(&checked.resources, "default", true);
    assert_eq!(found.len(), 1);
    assert!(
        found[0].starts_with("MeshTrafficPermission \"inbound\" targets Dataplane"),
        "{found:?}"
    );
}

#[test]
fn rules_deny_first_name_a_mesh_external_service_by_its_sni_and_take_over_from_from() {
    let aurora_sni = sni::mesh_external_service("aurora", "default", 5432);
    let rules = mtp("rules", &format!("  targetRef: {{kind: Mesh}}\n  rules:\n  - default:\n      allow:\n      - spiffeID: {{type: Prefix, value: 'spiffe://default/web'}}\n        sni: {{type: Exact, value: {aurora_sni}}}\n      - spiffeID: {{type: Exact, value: 'spiffe://default/batch'}}\n  - default:\n      deny:\n      - spiffeID: {{type: Exact, value: 'spiffe://default/web-admin'}}\n"));
    let from = mtp(
        "from",
        "  from:\n  - targetRef: {kind: Mesh}\n    default: {action: Allow}\n",
    );
    let p = permissions(&[MESH_MTLS, HTTPBIN, MES, &rules, &from].join("---\n"));
    let decide = |kind, name: &str, caller: &str| {
        let tags = service(caller);
        p.decide(kind, name, &Caller { tags: &tags })
    };
    let mes = Kind::MeshExternalService;
    assert_eq!(
        decide(mes, "aurora", "web"),
        verdict(Action::Allow, by_mtp("rules"))
    );
    // The prefix is a string prefix, as Kuma's; the denial comes first although written last.
    assert_eq!(
        decide(mes, "aurora", "web-admin"),
        verdict(Action::Deny, by_mtp("rules"))
    );
    assert_eq!(
        decide(mes, "aurora", "batch"),
        verdict(Action::Allow, by_mtp("rules"))
    );
    assert_eq!(decide(mes, "aurora", "other"), verdict(Action::Deny, None));
    // The SNI match names aurora only; what is left of the rules still takes over from `from`.
    let es = Kind::ExternalService;
    assert_eq!(decide(es, "httpbin", "web"), verdict(Action::Deny, None));
    assert_eq!(
        decide(es, "httpbin", "batch"),
        verdict(Action::Allow, by_mtp("rules"))
    );
    assert_eq!(
        p.grants(es, "httpbin"),
        vec![
            Grant {
                who: Principal::SpiffeExact("spiffe://default/web-admin".into()),
                action: Action::Deny,
                decided_by: by_mtp("rules")
            },
            Grant {
                who: Principal::SpiffeExact("spiffe://default/batch".into()),
                action: Action::Allow,
                decided_by: by_mtp("rules")
            },
            Grant {
                who: Principal::AnyMeshIdentity,
                action: Action::Deny,
                decided_by: None
            },
        ]
    );
}

#[test]
fn a_service_no_resource_declares_is_judged_by_the_rules_that_select_it() {
    let deny = mtp("deny-batch", "  targetRef: {kind: MeshService, name: undeclared}\n  from:\n  - targetRef: {kind: Mesh}\n    default: {action: Allow}\n  - targetRef: {kind: MeshService, name: batch}\n    default: {action: Deny}\n");
    let p = permissions(&[MESH_MTLS, &deny].join("---\n"));
    let decide = |caller: &str| {
        let tags = service(caller);
        p.decide(Kind::ExternalService, "undeclared", &Caller { tags: &tags })
    };
    assert_eq!(decide("web"), verdict(Action::Allow, by_mtp("deny-batch")));
    assert_eq!(decide("batch"), verdict(Action::Deny, by_mtp("deny-batch")));
}

// Identity.

#[test]
fn a_caller_is_known_by_kumas_uri_sans() {
    let caller = tags(&[("kuma.io/service", "web"), ("version", "v1")]);
    assert_eq!(
        uri_sans("default", &caller),
        vec![
            "spiffe://default/web".to_string(),
            "kuma://version/v1".to_string()
        ]
    );
}
