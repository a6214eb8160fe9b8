//! Permission validation: Kuma's validators in their words, order and field paths, every
//! violation at once. MeshTrafficPermission: `meshtrafficpermission/api/v1alpha1/validator.go`
//! (2.9.0 and v2.14.3) with `ValidateTargetRef` and `ValidateMatch`, and the enumerations of
//! its schema (`rest.yaml`) in the API server's words. TrafficPermission:
//! `traffic_permission_validator.go` with `ValidateSelectors` (the same in both tags). Where
//! 2.9 and 2.14 differ, what either accepts is accepted; each such place says so.

use crate::address::dns1123_subdomain;
use crate::selectors::{validate_tags, validate_target_ref, TagValues};
use crate::violation::Violation;

use super::identity::spiffe_id_problem;
use super::spec::{Action, Match, MeshTrafficPermissionSpec, Selector, TrafficPermissionSpec};

/// What the top-level `targetRef` takes: 2.9's four kinds and 2.10's `Dataplane`.
const TOP_KINDS: [&str; 5] = [
    "Mesh",
    "MeshSubset",
    "MeshService",
    "MeshServiceSubset",
    "Dataplane",
];
/// What a `from` item's `targetRef` takes.
const FROM_KINDS: [&str; 4] = ["Mesh", "MeshSubset", "MeshService", "MeshServiceSubset"];
const SPIFFE_ID_TYPES: [&str; 2] = ["Exact", "Prefix"];

/// Every violation of one MeshTrafficPermission.
///
/// 2.9 had only `from`, and said `spec.from: needs at least one item` where 2.14 says `spec: at
/// least one of 'from' or 'rules' has to be defined`; 2.14's `rules` are taken, and its words
/// are used.
pub fn mesh_traffic_permission(spec: &MeshTrafficPermissionSpec) -> Vec<Violation> {
    let mut out = Vec::new();
    let (from, rules) = (spec.from_items(), spec.rule_items());
    let inbound_policy = !from.is_empty() || !rules.is_empty();
    if let Some(target) = &spec.target_ref {
        validate_target_ref(
            target,
            "spec.targetRef",
            &TOP_KINDS,
            inbound_policy,
            &mut out,
        );
    }
    if !from.is_empty() && !rules.is_empty() {
        out.push(Violation::new(
            "spec",
            "field 'from' must be empty when 'rules' is defined",
        ));
    }
    if !inbound_policy {
        out.push(Violation::new(
            "spec",
            "at least one of 'from' or 'rules' has to be defined",
        ));
    }
    for (i, rule) in rules.iter().enumerate() {
        let at = format!("spec.rules[{i}]");
        let lists = [
            ("allow", &rule.default.allow),
            ("allowWithShadowDeny", &rule.default.allow_with_shadow_deny),
            ("deny", &rule.default.deny),
        ];
        if lists
            .iter()
            .all(|(_, l)| l.as_ref().is_none_or(Vec::is_empty))
        {
            out.push(Violation::new(
                &at,
                "at least one of 'allow', 'allowWithShadowDeny', 'deny' has to be defined",
            ));
        }
        for (list, matches) in lists {
            for (j, m) in matches.iter().flatten().enumerate() {
                // Kuma's validator names a match without `default`; its schema, with it.
                let validator_at = format!("{at}.{list}[{j}]");
                let schema_at = format!("spec.rules[{i}].default.{list}[{j}]");
                validate_match(m, &validator_at, &schema_at, &mut out);
            }
        }
    }
    for (i, item) in from.iter().enumerate() {
        let at = format!("spec.from[{i}]");
        let target_at = format!("{at}.targetRef");
        validate_target_ref(&item.target_ref, &target_at, &FROM_KINDS, false, &mut out);
        let action_at = format!("{at}.default.action");
        match item.default.action.as_deref() {
            None | Some("") => out.push(Violation::new(action_at, "must be defined")),
            Some(action) if Action::parse(action).is_none() => {
                out.push(Violation::new(action_at, in_body_one_of(&Action::NAMES)))
            }
            Some(_) => {}
        }
    }
    out
}

/// The schema's enumeration check, in the API server's words.
fn in_body_one_of(values: &[&str]) -> String {
    format!("in body should be one of [{}]", values.join(" "))
}

/// Kuma's `ValidateMatch` (2.12+) at `at`, and the schema's check of a SPIFFE ID's `type`
/// (which the validator leaves to it) at `schema_at`. A match with neither part is taken, as
/// Kuma takes it, and matches nobody.
fn validate_match(m: &Match, at: &str, schema_at: &str, out: &mut Vec<Violation>) {
    if let Some(spiffe_id) = &m.spiffe_id {
        let type_at = format!("{schema_at}.spiffeID.type");
        if spiffe_id.kind.is_empty() {
            out.push(Violation::new(type_at, "in body is required"));
        } else if !SPIFFE_ID_TYPES.contains(&spiffe_id.kind.as_str()) {
            out.push(Violation::new(type_at, in_body_one_of(&SPIFFE_ID_TYPES)));
        }
        if let Err(problem) = spiffe_id_problem(&spiffe_id.value) {
            out.push(Violation::new(
                format!("{at}.spiffeID"),
                format!("must be a valid Spiffe ID: {problem}"),
            ));
        }
    }
    if let Some(sni) = &m.sni {
        match sni.kind.as_str() {
            "Exact" => {}
            "" => out.push(Violation::new(format!("{at}.sni.type"), "must be set")),
            other => out.push(Violation::new(
                format!("{at}.sni.type"),
                format!("unrecognized type {other:?}, supported values are: Exact"),
            )),
        }
        let value_at = format!("{at}.sni.value");
        if sni.value.is_empty() {
            out.push(Violation::new(value_at, "must be set"));
        } else {
            for problem in dns1123_subdomain(&sni.value) {
                out.push(Violation::new(&value_at, problem));
            }
        }
    }
}

/// Every violation of one TrafficPermission: Kuma's `ValidateSelectors` of `sources` and of
/// `destinations`, each needing a selector and each selector a tag.
pub fn traffic_permission(spec: &TrafficPermissionSpec) -> Vec<Violation> {
    let mut out = Vec::new();
    selectors("sources", &spec.sources, &mut out);
    selectors("destinations", &spec.destinations, &mut out);
    out
}

fn selectors(at: &str, selectors: &[Selector], out: &mut Vec<Violation>) {
    if selectors.is_empty() {
        out.push(Violation::new(at, "must have at least one element"));
    }
    for (i, selector) in selectors.iter().enumerate() {
        let match_at = format!("{at}[{i}].match");
        validate_tags(&match_at, &selector.tags, TagValues::Selector, true, out);
    }
}
