//! What every kind's spec shares: the `targetRef`s, and where the entries are (`to[]`, or
//! `from[]` and `rules[]`), checked in Kuma's wording; and a loose read of the entries of a
//! valid policy, to find what applies where.

use external_service_model::report::Violation;
use external_service_model::resource::{typed, Kind};
use serde::Deserialize;
use serde_json::Value;

use super::rules::MUST_NOT_BE_DEFINED;
use super::{Conf, Shape};

/// Where a policy entry applies: every service (`Mesh`), one ExternalService's
/// `kuma.io/service` (`MeshService`) or one MeshExternalService.
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
const MESH_EXTERNAL_SERVICE: &str = "MeshExternalService";

/// A declared service as a policy names it: its kind (an ExternalService's `kuma.io/service`,
/// or a MeshExternalService) and its name. A `MeshService` target never selects a
/// MeshExternalService of the same name, nor the other way round.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Named<'a> {
    pub kind: Kind,
    pub name: &'a str,
}

/// The kind of service a targetRef kind names, if it names one.
fn named_kind(target_kind: &str) -> Option<Kind> {
    match target_kind {
        MESH_SERVICE => Some(Kind::ExternalService),
        MESH_EXTERNAL_SERVICE => Some(Kind::MeshExternalService),
        _ => None,
    }
}

impl TargetRef {
    /// Kuma's specificity (`Mesh` < `MeshService` < `MeshExternalService`, its
    /// `TargetRefKind` order): a more specific entry is applied later and so wins.
    fn rank(&self) -> u8 {
        match self.kind.as_str() {
            MESH_SERVICE => 1,
            MESH_EXTERNAL_SERVICE => 2,
            _ => 0,
        }
    }

    fn selects(&self, service: Named<'_>) -> bool {
        self.kind == MESH || self.named() == Some(service)
    }

    /// The service this target names, if it names one.
    fn named(&self) -> Option<Named<'_>> {
        Some(Named {
            kind: named_kind(&self.kind)?,
            name: self.name.as_deref()?,
        })
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
            (MESH, Some(name)) if !name.is_empty() => out.push(Violation::new(
                format!("{path}.name"),
                "using name with kind Mesh is not yet supported",
            )),
            (kind, None | Some("")) if named_kind(kind).is_some() => out.push(Violation::new(
                format!("{path}.name"),
                format!("must be set with kind {kind}"),
            )),
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

pub(super) fn check_to_policy<C: Conf>(spec: &Value) -> Vec<Violation> {
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
        // Every `to[]` kind here takes MeshExternalService as Kuma 2.14 does (MeshTimeout
        // and MeshRetry since 2.9; MeshCircuitBreaker and MeshHealthCheck since 2.14).
        entry.target_ref.validate(
            &format!("{path}.targetRef"),
            &[MESH, MESH_SERVICE, MESH_EXTERNAL_SERVICE],
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

pub(super) fn check_from_policy<C: Conf>(spec: &Value) -> Vec<Violation> {
    let spec: FromPolicy<C> = match typed(spec.clone()) {
        Ok(spec) => spec,
        Err(found) => return prefixed(found),
    };
    let mut out = Vec::new();
    if let Some(target) = &spec.target_ref {
        target.validate("spec.targetRef", &[MESH, MESH_SERVICE], &mut out);
    }
    if spec.to.is_some() {
        out.push(Violation::new("spec.to", MUST_NOT_BE_DEFINED));
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
pub(super) struct Entries {
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
    pub(super) fn top_rank(&self, service: Named<'_>) -> Option<u8> {
        match &self.target_ref {
            None => Some(0),
            Some(t) => t.selects(service).then(|| t.rank()),
        }
    }

    /// The `default`s that apply to `service`, each with its entry's rank.
    pub(super) fn defaults(&self, shape: Shape, service: Named<'_>) -> Vec<(u8, &Value)> {
        match shape {
            Shape::To => self
                .to
                .iter()
                .filter(|e| e.target_ref.selects(service))
                .map(|e| (e.target_ref.rank(), &e.default))
                .collect(),
            // Kuma's egress applies `from[]` and `rules[]` to ExternalServices only: a
            // MeshExternalService gets none (MADR-062: "out of scope").
            Shape::From if service.kind == Kind::MeshExternalService => Vec::new(),
            Shape::From => self
                .from
                .iter()
                .map(|e| (0, &e.default))
                .chain(self.rules.iter().map(|r| (0, &r.default)))
                .collect(),
        }
    }

    /// Where the policy names a service: `(field, service)`.
    pub(super) fn named_services(&self) -> Vec<(String, Named<'_>)> {
        let top = self
            .target_ref
            .iter()
            .filter_map(|t| Some(("spec.targetRef.name".to_string(), t.named()?)));
        let to = self.to.iter().enumerate().filter_map(|(i, e)| {
            Some((
                format!("spec.to[{i}].targetRef.name"),
                e.target_ref.named()?,
            ))
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
