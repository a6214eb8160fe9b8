//! Kuma's traffic policies on external services: read, validated in Kuma's wording, resolved
//! to each service in Kuma's merge order, and handed to the generator as one effective
//! configuration per service and kind, with the policy that set each field.
//!
//! - [`timeout`]: MeshTimeout; [`retry`]: MeshRetry; [`circuit_breaker`]: MeshCircuitBreaker;
//!   [`health_check`]: MeshHealthCheck (all `to[]` policies of this outbound Envoy).
//! - The other kinds the model recognises (MeshRateLimit, MeshFaultInjection) are refused as
//!   not supported yet.
//!
//! Merge order (Kuma's): policies sort by their top-level `targetRef` (only `Mesh` here), then
//! by name with the name that sorts first winning; their matching `to[]` entries are
//! concatenated in that order and sorted again by `to[].targetRef` (`Mesh` before
//! `MeshService`); the `default`s are applied in that order as JSON merge patches (RFC 7386),
//! so the last to set a field wins it.

pub mod circuit_breaker;
pub mod duration;
pub mod health_check;
pub mod retry;
pub mod timeout;

use std::collections::BTreeMap;

use external_service_model::report::Violation;
use external_service_model::resource::{typed, Kind, Resource, Spec};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Where a policy entry applies: every service (`Mesh`) or one `kuma.io/service`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetRef {
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub name: Option<String>,
}

const MESH: &str = "Mesh";
const MESH_SERVICE: &str = "MeshService";

impl TargetRef {
    /// Kuma's specificity: a more specific entry is applied later and so wins.
    fn rank(&self) -> u8 {
        u8::from(self.kind == MESH_SERVICE)
    }

    fn selects(&self, service: &str) -> bool {
        match self.kind.as_str() {
            MESH => true,
            MESH_SERVICE => self.name.as_deref() == Some(service),
            _ => false,
        }
    }

    /// Kuma's `ValidateTargetRef` for the kinds a field supports.
    fn validate(&self, path: &str, supported: &[&str], out: &mut Vec<Violation>) {
        if self.kind.is_empty() {
            out.push(Violation::new(format!("{path}.kind"), "must be set"));
            return;
        }
        if !supported.contains(&self.kind.as_str()) {
            out.push(Violation::new(
                format!("{path}.kind"),
                "value is not supported",
            ));
            return;
        }
        match (self.kind.as_str(), self.name.as_deref()) {
            (MESH, Some(_)) => out.push(Violation::new(
                format!("{path}.name"),
                "must not be set with kind Mesh",
            )),
            (MESH_SERVICE, None | Some("")) => {
                out.push(Violation::new(format!("{path}.name"), "must be set"))
            }
            _ => {}
        }
    }
}

/// An outbound policy's spec: the top-level target (the whole mesh) and its `to[]` entries.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ToPolicy<C> {
    #[serde(default)]
    target_ref: Option<TargetRef>,
    #[serde(default)]
    to: Option<Vec<To<C>>>,
    #[serde(default)]
    from: Option<Value>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct To<C> {
    #[serde(default)]
    target_ref: TargetRef,
    #[serde(default)]
    default: C,
}

/// A policy kind's `default`: how it is checked, in Kuma's wording, at `path`.
pub trait Conf: DeserializeOwned + Default {
    const KIND: Kind;
    /// The message of an empty or missing `to` (Kuma words it per kind).
    const EMPTY_TO: (&'static str, &'static str);
    fn validate(&self, path: &str, out: &mut Vec<Violation>);
}

fn check_to_policy<C: Conf>(spec: &Value) -> Vec<Violation> {
    let spec: ToPolicy<C> = match typed(spec.clone()) {
        Ok(spec) => spec,
        Err(found) => return prefixed(found),
    };
    let mut out = Vec::new();
    if let Some(target) = &spec.target_ref {
        target.validate("spec.targetRef", &[MESH], &mut out);
    }
    if spec.from.is_some() {
        out.push(Violation::new(
            "spec.from",
            "not supported: this Envoy has only outbound traffic, so only `to` applies",
        ));
    }
    let to = spec.to.as_deref().unwrap_or_default();
    if to.is_empty() {
        let (field, message) = C::EMPTY_TO;
        out.push(Violation::new(field, message));
    }
    for (i, entry) in to.iter().enumerate() {
        let path = format!("spec.to[{i}]");
        entry.target_ref.validate(
            &format!("{path}.targetRef"),
            &[MESH, MESH_SERVICE],
            &mut out,
        );
        entry.default.validate(&format!("{path}.default"), &mut out);
    }
    out
}

fn prefixed(found: Vec<Violation>) -> Vec<Violation> {
    found
        .into_iter()
        .map(|v| {
            let field = if v.field.is_empty() {
                "spec".to_string()
            } else {
                format!("spec.{}", v.field)
            };
            Violation::new(field, v.message)
        })
        .collect()
}

/// The policies' violations, aligned with `resources` (as the model's extra checks are).
pub fn check(resources: &[Resource]) -> Vec<Vec<Violation>> {
    resources
        .iter()
        .map(|r| match &r.spec {
            Spec::Policy { kind, spec } => check_policy(*kind, spec),
            _ => Vec::new(),
        })
        .collect()
}

fn check_policy(kind: Kind, spec: &Value) -> Vec<Violation> {
    match kind {
        Kind::MeshTimeout => check_to_policy::<timeout::Conf>(spec),
        Kind::MeshRetry => check_to_policy::<retry::Conf>(spec),
        Kind::MeshCircuitBreaker => check_to_policy::<circuit_breaker::Conf>(spec),
        Kind::MeshHealthCheck => check_to_policy::<health_check::Conf>(spec),
        other => vec![Violation::new(
            "",
            format!(
                "{other} is not supported yet: extsvc applies MeshTimeout, MeshRetry, MeshCircuitBreaker and MeshHealthCheck; remove this {other} or keep it out of the files given to extsvc"
            ),
        )],
    }
}

/// One kind's effective configuration for a service, and which policy set each field.
#[derive(Debug, Clone, Serialize)]
pub struct Applied<C> {
    #[serde(skip)]
    pub conf: C,
    /// The merged `default`, as Kuma's `kumactl inspect` shows it.
    #[serde(rename = "conf")]
    pub merged: Value,
    /// Field path (`http.requestTimeout`) -> the policy whose entry set it.
    pub fields: BTreeMap<String, String>,
}

/// Everything that applies to one service.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Effective {
    #[serde(rename = "MeshTimeout", skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Applied<timeout::Conf>>,
    #[serde(rename = "MeshRetry", skip_serializing_if = "Option::is_none")]
    pub retry: Option<Applied<retry::Conf>>,
    #[serde(rename = "MeshCircuitBreaker", skip_serializing_if = "Option::is_none")]
    pub circuit_breaker: Option<Applied<circuit_breaker::Conf>>,
    #[serde(rename = "MeshHealthCheck", skip_serializing_if = "Option::is_none")]
    pub health_check: Option<Applied<health_check::Conf>>,
}

impl Effective {
    fn is_empty(&self) -> bool {
        self.timeout.is_none()
            && self.retry.is_none()
            && self.circuit_breaker.is_none()
            && self.health_check.is_none()
    }
}

/// The effective policies of one service, for `extsvc validate --format json`.
#[derive(Debug, Clone, Serialize)]
pub struct ServicePolicies {
    pub mesh: String,
    pub service: String,
    pub policies: Effective,
}

/// Valid policies resolved to the declared services of every mesh.
#[derive(Debug, Clone, Default)]
pub struct Policies {
    /// By (mesh, service).
    services: BTreeMap<(String, String), Effective>,
    warnings: Vec<String>,
}

static NONE: Effective = Effective {
    timeout: None,
    retry: None,
    circuit_breaker: None,
    health_check: None,
};

impl Policies {
    /// Resolves the valid policies of `resources` (invalid ones are left out) to the
    /// ExternalServices' `kuma.io/service`s.
    pub fn build(resources: &[Resource]) -> Policies {
        let mut declared: BTreeMap<(String, String), ()> = BTreeMap::new();
        for r in resources {
            if let Spec::ExternalService(es) = &r.spec {
                if let Some(service) = es.service() {
                    declared.insert((r.mesh.clone(), service.to_string()), ());
                }
            }
        }
        let mut policies = Policies::default();
        for (mesh, service) in declared.keys() {
            let effective = Effective {
                timeout: resolve::<timeout::Conf>(resources, mesh, service),
                retry: resolve::<retry::Conf>(resources, mesh, service),
                circuit_breaker: resolve::<circuit_breaker::Conf>(resources, mesh, service),
                health_check: resolve::<health_check::Conf>(resources, mesh, service),
            };
            policies
                .services
                .insert((mesh.clone(), service.clone()), effective);
        }
        policies.warnings = unmatched_targets(resources, &declared);
        policies
    }

    /// What applies to `service` of `mesh` (nothing, for a service no policy names).
    pub fn of(&self, mesh: &str, service: &str) -> &Effective {
        self.services
            .get(&(mesh.to_string(), service.to_string()))
            .unwrap_or(&NONE)
    }

    /// Policy entries whose target names no declared service: they apply to nothing.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Every service that some policy applies to, for the effective view.
    pub fn view(&self) -> Vec<ServicePolicies> {
        self.services
            .iter()
            .filter(|(_, e)| !e.is_empty())
            .map(|((mesh, service), policies)| ServicePolicies {
                mesh: mesh.clone(),
                service: service.clone(),
                policies: policies.clone(),
            })
            .collect()
    }
}

/// The `to[]` entries of `C::KIND` that select `service`, in Kuma's order, merged.
fn resolve<C: Conf>(resources: &[Resource], mesh: &str, service: &str) -> Option<Applied<C>> {
    let mut policies: Vec<(&str, ToPolicy<Value>)> = resources
        .iter()
        .filter(|r| r.mesh == mesh)
        .filter_map(|r| match &r.spec {
            Spec::Policy { kind, spec }
                if *kind == C::KIND && check_policy(*kind, spec).is_empty() =>
            {
                serde_json::from_value(spec.clone())
                    .ok()
                    .map(|p| (r.name.as_str(), p))
            }
            _ => None,
        })
        .collect();
    // The top-level targetRef is `Mesh` for every valid policy here: the name decides, and the
    // name that sorts first is applied last.
    policies.sort_by(|a, b| b.0.cmp(a.0));
    let mut entries: Vec<(&str, &To<Value>)> = policies
        .iter()
        .flat_map(|(name, p)| {
            p.to.iter()
                .flatten()
                .filter(|e| e.target_ref.selects(service))
                .map(move |e| (*name, e))
        })
        .collect();
    // Stable: policy order is kept within each level.
    entries.sort_by_key(|(_, e)| e.target_ref.rank());
    if entries.is_empty() {
        return None;
    }
    let mut merged = Value::Object(Map::new());
    let mut fields = BTreeMap::new();
    for (name, entry) in entries {
        merge_patch(&mut merged, &entry.default, name, "", &mut fields);
    }
    // Each part is a valid `default` and every field of one is optional, so the merge reads.
    let conf = serde_json::from_value(merged.clone()).ok()?;
    Some(Applied {
        conf,
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

/// A warning per valid policy entry that names a `kuma.io/service` no ExternalService of its
/// mesh declares.
fn unmatched_targets(
    resources: &[Resource],
    declared: &BTreeMap<(String, String), ()>,
) -> Vec<String> {
    let mut found = Vec::new();
    for r in resources {
        let Spec::Policy { kind, spec } = &r.spec else {
            continue;
        };
        if !check_policy(*kind, spec).is_empty() {
            continue;
        }
        let Ok(policy) = serde_json::from_value::<ToPolicy<Value>>(spec.clone()) else {
            continue;
        };
        for (i, entry) in policy.to.iter().flatten().enumerate() {
            let Some(name) = entry.target_ref.name.as_deref() else {
                continue;
            };
            if entry.target_ref.kind == MESH_SERVICE
                && !declared.contains_key(&(r.mesh.clone(), name.to_string()))
            {
                found.push(format!(
                    "{}: {kind} {:?} (mesh {:?}): spec.to[{i}].targetRef.name: no ExternalService of mesh {:?} has kuma.io/service {name:?}, so this entry applies to nothing",
                    r.origin.file, r.name, r.mesh, r.mesh
                ));
            }
        }
    }
    found
}

/// Kuma's shared rules on a `default`'s fields.
pub mod rules {
    use external_service_model::report::Violation;

    use super::duration::Duration;

    pub const NOT_NEGATIVE: &str = "must not be negative when defined";
    pub const GREATER_THAN_ZERO: &str = "must be greater than zero when defined";
    pub const DEFINED_AND_GREATER_THAN_ZERO: &str = "must be defined and greater than zero";
    pub const NOT_EMPTY: &str = "must not be empty";
    pub const DEFINED: &str = "must be defined";

    pub fn not_negative(path: &str, field: &str, d: Option<Duration>, out: &mut Vec<Violation>) {
        if d.is_some_and(Duration::is_negative) {
            out.push(Violation::new(format!("{path}.{field}"), NOT_NEGATIVE));
        }
    }

    /// The number in Kuma's IntOrString decimals (`1.9` or `"1.9"`), if it is one.
    pub fn int_or_string(value: &serde_json::Value) -> Option<f64> {
        match value {
            serde_json::Value::Number(n) => n.as_f64(),
            serde_json::Value::String(s) => s.parse().ok(),
            _ => None,
        }
    }

    /// Kuma's `ValidateIntegerGreaterThanZeroOrNil`.
    pub fn positive(path: &str, field: &str, n: Option<u32>, out: &mut Vec<Violation>) {
        if n == Some(0) {
            out.push(Violation::new(
                format!("{path}.{field}"),
                "must be greater than 0",
            ));
        }
    }

    /// Kuma's `ValidateUInt32PercentageOrNil`.
    pub fn percentage(path: &str, field: &str, n: Option<u32>, out: &mut Vec<Violation>) {
        if n.is_some_and(|n| n > 100) {
            out.push(Violation::new(
                format!("{path}.{field}"),
                "must be in inclusive range [0, 100]",
            ));
        }
    }

    /// A field Kuma has that extsvc does not apply yet: refused rather than ignored.
    pub fn not_yet(path: &str, field: &str, set: bool, out: &mut Vec<Violation>) {
        if set {
            out.push(Violation::new(
                format!("{path}.{field}"),
                "not supported yet by extsvc",
            ));
        }
    }

    pub fn greater_than_zero(
        path: &str,
        field: &str,
        d: Option<Duration>,
        out: &mut Vec<Violation>,
    ) {
        if d.is_some_and(|d| d.is_negative() || d.is_zero()) {
            out.push(Violation::new(format!("{path}.{field}"), GREATER_THAN_ZERO));
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use serde_json::json;

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
