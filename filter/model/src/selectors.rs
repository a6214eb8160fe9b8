//! Kuma's selectors as policies write them: a `targetRef`, and a map of tags, with Kuma's
//! checks of both in its words (`ValidateTargetRef`, `ValidateTags` and `ValidateSelector` of
//! `pkg/core/resources/apis/mesh/validators.go`, 2.9.0 and v2.14.3). Where the two differ,
//! what either accepts is accepted, and a value both refuse is named in 2.14's words; each
//! such place says so.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::violation::Violation;

/// Kuma's common `TargetRef`, every field it has, so that Kuma's validator can name the ones
/// a kind does not take.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct TargetRef {
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mesh: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tags: Option<BTreeMap<String, String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub section_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proxy_types: Option<Vec<String>>,
}

impl TargetRef {
    /// The name, empty when unset.
    pub fn name(&self) -> &str {
        self.name.as_deref().unwrap_or_default()
    }

    /// The tags, none when unset.
    pub fn tags(&self) -> &BTreeMap<String, String> {
        static NONE: BTreeMap<String, String> = BTreeMap::new();
        self.tags.as_ref().unwrap_or(&NONE)
    }
}

/// Which tag values a map of tags takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TagValues {
    /// `ValidateTags`: `[a-zA-Z0-9.\-_:]`, what a data plane's tags hold.
    Exact,
    /// `ValidateSelector`: those and `/`, or `*` alone (any value).
    Selector,
}

/// Kuma's `ValidateTargetRef` of a target at `at` (`spec.targetRef`, `spec.from[0].targetRef`)
/// for a policy that takes `kinds`. `inbound_policy`: the policy has `from` or `rules`, so a
/// `Dataplane` may name its `sectionName`.
///
/// 2.9 and 2.14 differ, and what either accepts is accepted, in 2.14's words:
/// - an unsupported kind is named (2.9: `value is not supported`);
/// - a `MeshService` with neither name nor labels: 2.9 said `name: must be set with kind
///   MeshService`; 2.9 also refused `sectionName` with `labels` there, which 2.14 takes;
/// - `MeshServiceSubset` tags are a selector (`*` and `/` taken, as 2.14; 2.9 refused them);
/// - a required name is `must be set when kind is X` (2.9: `must be set with kind X`).
///
/// `proxyTypes: []` is refused with `Mesh` and `MeshSubset`, by 2.14's validator and by 2.9's
/// schema (`MinItems=1`).
pub fn validate_target_ref(
    target: &TargetRef,
    at: &str,
    kinds: &[&str],
    inbound_policy: bool,
    out: &mut Vec<Violation>,
) {
    let field = |name: &str| format!("{at}.{name}");
    let kind = target.kind.as_str();
    let not_set = |out: &mut Vec<Violation>, name: &str, set: bool| {
        if set {
            out.push(Violation::new(
                field(name),
                format!("must not be set with kind {kind}"),
            ));
        }
    };
    let name = is_set(&target.name);
    let mesh = is_set(&target.mesh);
    let tags = !target.tags().is_empty();
    let labels = target.labels.as_ref().is_some_and(|l| !l.is_empty());
    let namespace = is_set(&target.namespace);
    let section_name = is_set(&target.section_name);
    let proxy_types = target.proxy_types.as_ref().is_some_and(|p| !p.is_empty());
    if kind.is_empty() {
        out.push(Violation::new(field("kind"), "must be defined"));
        return;
    }
    if !kinds.contains(&kind) {
        out.push(Violation::new(
            field("kind"),
            format!("value '{kind}' is not supported"),
        ));
        return;
    }
    let labels_or_name = |out: &mut Vec<Violation>| {
        if labels && (name || namespace) {
            out.push(Violation::new(
                field("labels"),
                "either labels or name and namespace must be specified",
            ));
        }
    };
    match kind {
        "Mesh" => {
            if name {
                out.push(Violation::new(
                    field("name"),
                    "using name with kind Mesh is not yet supported",
                ));
            }
            not_set(out, "mesh", mesh);
            not_set(out, "tags", tags);
            not_set(out, "labels", labels);
            not_set(out, "namespace", namespace);
            not_set(out, "sectionName", section_name);
            empty_proxy_types(target, &field, out);
        }
        "Dataplane" => {
            not_set(out, "tags", tags);
            not_set(out, "mesh", mesh);
            not_set(out, "proxyTypes", proxy_types);
            labels_or_name(out);
            if section_name && !inbound_policy {
                out.push(Violation::new(
                    field("sectionName"),
                    "can only be used with inbound policies",
                ));
            }
        }
        "MeshSubset" => {
            not_set(out, "name", name);
            not_set(out, "mesh", mesh);
            validate_tags(&field("tags"), target.tags(), TagValues::Exact, false, out);
            not_set(out, "labels", labels);
            not_set(out, "namespace", namespace);
            not_set(out, "sectionName", section_name);
            empty_proxy_types(target, &field, out);
        }
        "MeshService" => {
            resource_name(target.name(), &field, out);
            not_set(out, "mesh", mesh);
            not_set(out, "tags", tags);
            not_set(out, "proxyTypes", proxy_types);
            if !labels && !name {
                out.push(Violation::new(
                    at,
                    format!("name or labels must be set when kind is {kind}"),
                ));
            }
            labels_or_name(out);
        }
        "MeshServiceSubset" => {
            if !name {
                out.push(Violation::new(
                    field("name"),
                    format!("must be set when kind is {kind}"),
                ));
            }
            resource_name(target.name(), &field, out);
            not_set(out, "mesh", mesh);
            not_set(out, "proxyTypes", proxy_types);
            validate_tags(
                &field("tags"),
                target.tags(),
                TagValues::Selector,
                false,
                out,
            );
            not_set(out, "labels", labels);
            not_set(out, "namespace", namespace);
            not_set(out, "sectionName", section_name);
        }
        // Kinds neither kind of policy here takes; a caller that lists one gets no check.
        _ => {}
    }
}

fn is_set(value: &Option<String>) -> bool {
    value.as_deref().is_some_and(|v| !v.is_empty())
}

fn empty_proxy_types(target: &TargetRef, field: &dyn Fn(&str) -> String, out: &mut Vec<Violation>) {
    if target.proxy_types.as_ref().is_some_and(Vec::is_empty) {
        out.push(Violation::new(
            field("proxyTypes"),
            "must be undefined or have at least one element",
        ));
    }
}

/// Kuma's `validateName`: `[0-9a-z.\-_]*`, a Kubernetes-style resource name.
fn resource_name(name: &str, field: &dyn Fn(&str) -> String, out: &mut Vec<Violation>) {
    let allowed = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b".-_".contains(&b);
    if !name.bytes().all(allowed) {
        out.push(Violation::new(
            field("name"),
            "invalid characters: must consist of lower case alphanumeric characters, '-', '.' and '_'.",
        ));
    }
}

/// `at["key"]`, Kuma's path of one key of a map.
pub fn key_path(at: &str, key: &str) -> String {
    format!("{at}[{key:?}]")
}

/// Kuma's `ValidateTags` (`values` Exact) and `ValidateSelector` (`values` Selector) of the
/// map at `at`, keys in sorted order; `at_least_one`: an empty map is refused.
pub fn validate_tags(
    at: &str,
    tags: &BTreeMap<String, String>,
    values: TagValues,
    at_least_one: bool,
    out: &mut Vec<Violation>,
) {
    if at_least_one && tags.is_empty() {
        out.push(Violation::new(at, "must have at least one tag"));
    }
    let name_char = |b: u8| b.is_ascii_alphanumeric() || b".-_:/".contains(&b);
    for (key, value) in tags {
        if key.is_empty() {
            out.push(Violation::new(at, "tag name must be non-empty"));
        }
        if !key.bytes().all(name_char) {
            out.push(Violation::new(
                key_path(at, key),
                "tag name must consist of alphanumeric characters, dots, dashes, slashes and underscores",
            ));
        }
        if value.is_empty() {
            out.push(Violation::new(
                key_path(at, key),
                "tag value must be non-empty",
            ));
        }
        let (valid, message) = match values {
            TagValues::Exact => (
                value.bytes().all(|b| b.is_ascii_alphanumeric() || b".-_:".contains(&b)),
                "tag value must consist of alphanumeric characters, dots, dashes and underscores",
            ),
            TagValues::Selector => (
                value == "*" || value.bytes().all(name_char),
                "tag value must consist of alphanumeric characters, dots, dashes, slashes and underscores or be \"*\"",
            ),
        };
        if !valid {
            out.push(Violation::new(key_path(at, key), message));
        }
    }
}

/// Kuma's `TagSelector.Matches`: every tag of the selector is among `tags`, with its value or
/// any value for `*`. An empty selector matches everything.
pub fn selector_matches(
    selector: &BTreeMap<String, String>,
    tags: &BTreeMap<String, String>,
) -> bool {
    selector
        .iter()
        .all(|(key, value)| tags.get(key).is_some_and(|v| value == "*" || v == value))
}
