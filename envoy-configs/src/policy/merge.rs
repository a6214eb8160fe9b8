//! Kuma's merge: the valid policies of a kind that apply to a service, in Kuma's order, their
//! `default`s applied as JSON merge patches (RFC 7386), recording which policy set each field.

use std::collections::BTreeMap;
use std::sync::Arc;

use external_service_model::resource::{Kind, Resource, Spec};
use serde_json::{Map, Value};

use super::spec::{Entries, Named};
use super::{check_policy, Conf, KindConf};

/// A valid policy, read.
pub(super) struct Parsed<'a> {
    pub resource: &'a Resource,
    pub kind: Kind,
    pub entries: Entries,
}

impl<'a> Parsed<'a> {
    /// `resource` read as a policy, if it is a valid one.
    pub fn of(resource: &'a Resource) -> Option<Parsed<'a>> {
        let Spec::Policy { kind, spec } = &resource.spec else {
            return None;
        };
        if !check_policy(*kind, spec).is_empty() {
            return None;
        }
        let entries = serde_json::from_value(spec.clone()).ok()?;
        Some(Parsed {
            resource,
            kind: *kind,
            entries,
        })
    }
}

/// The entries of `C::KIND` that apply to `service`, in Kuma's order, merged: policies by
/// their top-level target's rank, then by name (the name that sorts first is applied last,
/// and so wins); their entries then by their own target's rank, policy order kept within one.
pub(super) fn merge<C: Conf>(
    parsed: &[Parsed<'_>],
    mesh: &str,
    service: Named<'_>,
) -> Option<KindConf> {
    let mut policies: Vec<(u8, &str, &Entries)> = parsed
        .iter()
        .filter(|p| p.kind == C::KIND && p.resource.mesh == mesh)
        .filter_map(|p| {
            let rank = p.entries.top_rank(service)?;
            Some((rank, p.resource.name.as_str(), &p.entries))
        })
        .collect();
    policies.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(a.1)));
    let mut defaults: Vec<(u8, &str, &Value)> = policies
        .iter()
        .flat_map(|(_, name, entries)| {
            entries
                .defaults(C::SHAPE, service)
                .into_iter()
                .map(move |(rank, default)| (rank, *name, default))
        })
        .collect();
    defaults.sort_by_key(|(rank, _, _)| *rank);
    if defaults.is_empty() {
        return None;
    }
    let mut merged = Value::Object(Map::new());
    let mut fields = BTreeMap::new();
    for (_, name, default) in defaults {
        merge_patch(&mut merged, default, name, "", &mut fields);
    }
    // Each part is a valid `default` and every field of one is optional, so the merge reads.
    let conf: C = serde_json::from_value(merged.clone()).ok()?;
    Some(KindConf {
        kind: C::KIND,
        conf: Arc::new(conf),
        merged,
        fields,
    })
}

/// RFC 7386 merge patch of `patch` into `target`, recording `policy` for each field it sets.
fn merge_patch(
    target: &mut Value,
    patch: &Value,
    policy: &str,
    path: &str,
    fields: &mut BTreeMap<String, String>,
) {
    let Value::Object(patch) = patch else {
        fields.retain(|f, _| !is_within(f, path));
        fields.insert(path.to_string(), policy.to_string());
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Value::Object(target) = target else {
        return;
    };
    for (key, value) in patch {
        let field = if path.is_empty() {
            key.clone()
        } else {
            format!("{path}.{key}")
        };
        if value.is_null() {
            target.remove(key);
            fields.retain(|f, _| !is_within(f, &field));
            continue;
        }
        let slot = target.entry(key.clone()).or_insert(Value::Null);
        merge_patch(slot, value, policy, &field, fields);
    }
}

fn is_within(field: &str, path: &str) -> bool {
    path.is_empty()
        || field == path
        || field
            .strip_prefix(path)
            .is_some_and(|rest| rest.starts_with('.'))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::policy::mesh_timeout;
    use crate::policy::test_support::{merged, policy};
    use serde_json::json;

    /// Kuma sorts `to[]` entries `Mesh` < `MeshService` < `MeshExternalService`: a
    /// MeshExternalService's own entry wins over a mesh-wide one whatever the policies' names
    /// and the entries' order, and leaves it the fields it does not set.
    #[test]
    fn a_mesh_external_services_entry_wins_over_the_mesh_wide_one() {
        let policies = [
            policy::<mesh_timeout::Conf>(
                "a",
                "{to: [{targetRef: {kind: MeshExternalService, name: ext}, \
                  default: {http: {requestTimeout: 5s}}}, \
                  {targetRef: {kind: Mesh}, default: {http: {requestTimeout: 1s}, idleTimeout: 1h}}]}",
            ),
            policy::<mesh_timeout::Conf>(
                "z",
                "{to: [{targetRef: {kind: Mesh}, default: {http: {requestTimeout: 2s}}}]}",
            ),
        ];
        let (conf, fields) =
            merged::<mesh_timeout::Conf>(&policies, Kind::MeshExternalService, "ext").unwrap();
        assert_eq!(
            conf,
            json!({"http": {"requestTimeout": "5s"}, "idleTimeout": "1h"})
        );
        assert_eq!(fields, ["http.requestTimeout: a", "idleTimeout: a"]);
    }

    /// A `MeshService` entry is for an ExternalService's `kuma.io/service`, a
    /// `MeshExternalService` entry for a MeshExternalService: one name, two services.
    #[test]
    fn a_target_selects_its_own_kind_of_service_only() {
        let policies = [policy::<mesh_timeout::Conf>(
            "p",
            "{to: [{targetRef: {kind: MeshService, name: ext}, default: {http: {requestTimeout: 1s}}}, \
              {targetRef: {kind: MeshExternalService, name: ext}, default: {http: {requestTimeout: 2s}}}]}",
        )];
        let timeout = |kind| {
            merged::<mesh_timeout::Conf>(&policies, kind, "ext")
                .unwrap()
                .0["http"]["requestTimeout"]
                .clone()
        };
        assert_eq!(timeout(Kind::ExternalService), "1s");
        assert_eq!(timeout(Kind::MeshExternalService), "2s");
        let others = merged::<mesh_timeout::Conf>(&policies, Kind::MeshExternalService, "other");
        assert_eq!(others, None);
    }

    #[test]
    fn merge_patch_records_the_policy_of_each_field() {
        let mut merged = json!({});
        let mut fields = BTreeMap::new();
        merge_patch(
            &mut merged,
            &json!({"http": {"requestTimeout": "1s", "streamIdleTimeout": "2s"}, "idleTimeout": "1h"}),
            "b",
            "",
            &mut fields,
        );
        merge_patch(
            &mut merged,
            &json!({"http": {"requestTimeout": "5s"}, "idleTimeout": null}),
            "a",
            "",
            &mut fields,
        );
        assert_eq!(
            merged,
            json!({"http": {"requestTimeout": "5s", "streamIdleTimeout": "2s"}})
        );
        assert_eq!(
            fields,
            BTreeMap::from([
                ("http.requestTimeout".to_string(), "a".to_string()),
                ("http.streamIdleTimeout".to_string(), "b".to_string()),
            ])
        );
    }
}
