//! Kuma's traffic policies on external services: read, validated in Kuma's wording, resolved
//! to each service in Kuma's merge order, and handed to the generator as one effective
//! configuration per service and kind, with the policy that set each field.
//!
//! - `to[]` policies of this outbound Envoy: [`timeout`] (MeshTimeout), [`retry`] (MeshRetry),
//!   [`circuit_breaker`] (MeshCircuitBreaker), [`health_check`] (MeshHealthCheck).
//! - `from[]`/`rules[]` policies, which Kuma applies where the service is reached (its egress,
//!   here this Envoy): [`rate_limit`] (MeshRateLimit), [`fault`] (MeshFaultInjection).
//!
//! Merge order (Kuma's): policies sort by their top-level `targetRef` (`Mesh` before
//! `MeshService`), then by name with the name that sorts first winning; their matching entries
//! are concatenated in that order and sorted again by `to[].targetRef` (`Mesh` before
//! `MeshService`); the `default`s are applied in that order as JSON merge patches (RFC 7386),
//! so the last to set a field wins it.

pub mod circuit_breaker;
pub mod duration;
pub mod fault;
pub mod health_check;
pub mod rate_limit;
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

/// Where a kind's entries are: `to[]` (outbound: this Envoy calling the service), or `from[]`
/// and `rules[]` under a top-level target (where the service is reached, as Kuma's egress).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    To,
    From,
}

/// A policy kind's `default`: how it is checked, in Kuma's wording, at `path`.
pub trait Conf: DeserializeOwned + Default {
    const KIND: Kind;
    const SHAPE: Shape = Shape::To;
    /// The violation of an empty or missing `to` (Kuma words it per kind).
    const EMPTY_TO: (&'static str, &'static str) =
        ("spec", "at least one of 'from', 'to' has to be defined");
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

/// A `from[]`/`rules[]` policy's spec: the service it is for, and its entries.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct FromPolicy<C> {
    #[serde(default)]
    target_ref: Option<TargetRef>,
    #[serde(default)]
    from: Option<Vec<To<C>>>,
    #[serde(default)]
    rules: Option<Vec<Rule<C>>>,
    #[serde(default)]
    to: Option<Value>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Rule<C> {
    #[serde(default)]
    default: C,
}

fn check_from_policy<C: Conf>(spec: &Value) -> Vec<Violation> {
    let spec: FromPolicy<C> = match typed(spec.clone()) {
        Ok(spec) => spec,
        Err(found) => return prefixed(found),
    };
    let mut out = Vec::new();
    if let Some(target) = &spec.target_ref {
        target.validate("spec.targetRef", &[MESH, MESH_SERVICE], &mut out);
    }
    if spec.to.is_some() {
        out.push(Violation::new("spec.to", rules::MUST_NOT_BE_DEFINED));
    }
    for (i, entry) in spec.from.iter().flatten().enumerate() {
        let path = format!("spec.from[{i}]");
        entry
            .target_ref
            .validate(&format!("{path}.targetRef"), &[MESH], &mut out);
        entry.default.validate(&format!("{path}.default"), &mut out);
    }
    for (i, rule) in spec.rules.iter().flatten().enumerate() {
        rule.default
            .validate(&format!("spec.rules[{i}].default"), &mut out);
    }
    out
}

/// Any valid policy, read loosely to find what applies where.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Entries {
    #[serde(default)]
    target_ref: Option<TargetRef>,
    #[serde(default)]
    to: Vec<To<Value>>,
    #[serde(default)]
    from: Vec<To<Value>>,
    #[serde(default)]
    rules: Vec<Rule<Value>>,
}

impl Entries {
    /// The top-level target's rank, if it selects `service` (absent is the whole mesh).
    fn top_rank(&self, service: &str) -> Option<u8> {
        match &self.target_ref {
            None => Some(0),
            Some(t) => t.selects(service).then(|| t.rank()),
        }
    }

    /// The `default`s that apply to `service`, each with its entry's rank.
    fn defaults(&self, shape: Shape, service: &str) -> Vec<(u8, &Value)> {
        match shape {
            Shape::To => self
                .to
                .iter()
                .filter(|e| e.target_ref.selects(service))
                .map(|e| (e.target_ref.rank(), &e.default))
                .collect(),
            Shape::From => self
                .from
                .iter()
                .map(|e| (0, &e.default))
                .chain(self.rules.iter().map(|r| (0, &r.default)))
                .collect(),
        }
    }

    /// Where the policy names a service: `(field, name)`.
    fn named_services(&self) -> Vec<(String, &str)> {
        let top = self
            .target_ref
            .iter()
            .filter(|t| t.kind == MESH_SERVICE)
            .filter_map(|t| Some(("spec.targetRef.name".to_string(), t.name.as_deref()?)));
        let to = self.to.iter().enumerate().filter_map(|(i, e)| {
            let name = e.target_ref.name.as_deref()?;
            (e.target_ref.kind == MESH_SERVICE)
                .then(|| (format!("spec.to[{i}].targetRef.name"), name))
        });
        top.chain(to).collect()
    }
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
        Kind::MeshRateLimit => check_from_policy::<rate_limit::Conf>(spec),
        Kind::MeshFaultInjection => check_from_policy::<fault::Conf>(spec),
        other => vec![Violation::new(
            "",
            format!("{other} is not a traffic policy"),
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
    #[serde(rename = "MeshRateLimit", skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<Applied<rate_limit::Conf>>,
    #[serde(rename = "MeshFaultInjection", skip_serializing_if = "Option::is_none")]
    pub fault: Option<Applied<fault::Conf>>,
}

impl Effective {
    fn is_empty(&self) -> bool {
        self.timeout.is_none()
            && self.retry.is_none()
            && self.circuit_breaker.is_none()
            && self.health_check.is_none()
            && self.rate_limit.is_none()
            && self.fault.is_none()
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
    rate_limit: None,
    fault: None,
};

impl Policies {
    /// Resolves the valid policies of `resources` (invalid ones are left out) to the
    /// ExternalServices' `kuma.io/service`s.
    pub fn build(resources: &[Resource]) -> Policies {
        // Each policy is checked and read once; a service then looks only at the policies.
        let parsed: Vec<Parsed<'_>> = resources.iter().filter_map(Parsed::of).collect();
        let mut declared: BTreeMap<(String, String), ()> = BTreeMap::new();
        for r in resources {
            if let Spec::ExternalService(es) = &r.spec {
                if let Some(service) = es.service() {
                    declared.insert((r.mesh.clone(), service.to_string()), ());
                }
            }
        }
        let mut policies = Policies::default();
        for (mesh, service) in declared.keys().filter(|_| !parsed.is_empty()) {
            let effective = Effective {
                timeout: resolve::<timeout::Conf>(&parsed, mesh, service),
                retry: resolve::<retry::Conf>(&parsed, mesh, service),
                circuit_breaker: resolve::<circuit_breaker::Conf>(&parsed, mesh, service),
                health_check: resolve::<health_check::Conf>(&parsed, mesh, service),
                rate_limit: resolve::<rate_limit::Conf>(&parsed, mesh, service),
                fault: resolve::<fault::Conf>(&parsed, mesh, service),
            };
            policies
                .services
                .insert((mesh.clone(), service.clone()), effective);
        }
        policies.warnings = unmatched_targets(&parsed, &declared);
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

/// The entries of `C::KIND` that apply to `service`, in Kuma's order, merged: policies by
/// their top-level target's rank, then by name (the name that sorts first is applied last,
/// and so wins); their entries then by their own target's rank, policy order kept within one.
/// A valid policy, read.
struct Parsed<'a> {
    resource: &'a Resource,
    kind: Kind,
    entries: Entries,
}

impl<'a> Parsed<'a> {
    /// `resource` read as a policy, if it is a valid one.
    fn of(resource: &'a Resource) -> Option<Parsed<'a>> {
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

fn resolve<C: Conf>(parsed: &[Parsed<'_>], mesh: &str, service: &str) -> Option<Applied<C>> {
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

/// A warning per valid policy target that names a `kuma.io/service` no ExternalService of
/// its mesh declares.
fn unmatched_targets(
    parsed: &[Parsed<'_>],
    declared: &BTreeMap<(String, String), ()>,
) -> Vec<String> {
    let mut found = Vec::new();
    for Parsed {
        resource: r,
        kind,
        entries,
    } in parsed
    {
        for (field, name) in entries.named_services() {
            if !declared.contains_key(&(r.mesh.clone(), name.to_string())) {
                found.push(format!(
                    "{}: {kind} {:?} (mesh {:?}): {field}: no ExternalService of mesh {:?} has kuma.io/service {name:?}, so this entry applies to nothing",
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
    pub const MUST_NOT_BE_DEFINED: &str = "must not be defined";
    pub const PERCENTAGE: &str = "must be in inclusive range [0.0, 100.0]";
    pub const STATUS_CODE: &str = "must be in inclusive range [100, 599]";

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
