//! Kuma's traffic policies on external services: read, validated in Kuma's wording, merged
//! for each service in Kuma's order, and applied to Envoy through each kind's hooks.
//!
//! One folder per kind, as Kuma's `pkg/plugins/policies/<kind>/`: `api.rs` holds the
//! `default`'s spec and Kuma's rules on it ([`Conf`]), `configurer.rs` what it does to Envoy
//! ([`Configure`]), `tests.rs` its table tests. The model's `with_policy_kinds!` lists the kinds, one line each, and `registry!` makes
//! their slices from it.
//!
//! - `to[]` policies of this outbound Envoy: MeshTimeout, MeshRetry, MeshCircuitBreaker,
//!   MeshHealthCheck.
//! - `from[]`/`rules[]` policies, which Kuma applies where the service is reached (its egress,
//!   here this Envoy): MeshFaultInjection, MeshRateLimit.
//!
//! A `to[]` entry selects every service (`Mesh`), an ExternalService's `kuma.io/service`
//! (`MeshService`) or a MeshExternalService (`MeshExternalService`); a MeshExternalService
//! gets no `from[]`/`rules[]` policy (Kuma's egress applies them to ExternalServices only).
//!
//! Merge order (Kuma's): policies sort by their top-level `targetRef` (`Mesh` before
//! `MeshService`), then by name with the name that sorts first winning; their matching entries
//! are concatenated in that order and sorted again by `to[].targetRef` (`Mesh` before
//! `MeshService` before `MeshExternalService`); the `default`s are applied in that order as
//! JSON merge patches (RFC 7386), so the last to set a field wins it.

pub mod configure;
pub mod duration;
pub mod header_modifier;
mod merge;
pub mod rules;
mod spec;
#[cfg(test)]
mod test_support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use external_service_model::catalog::Service;
use external_service_model::report::Violation;
use external_service_model::resource::{Kind, Resource, Spec};
use serde::de::DeserializeOwned;
use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};
use serde_json::Value;

pub use configure::Configure;
use merge::Parsed;
use spec::Named;

/// Declares each kind's folder and lists it in [`KINDS`].
/// The slices of the kinds of the model's one list ([`external_service_model::with_policy_kinds`]):
/// each kind's folder, and its entry in [`KINDS`].
macro_rules! registry {
    ($($kind:ident => $folder:ident),* $(,)?) => {
        $(pub mod $folder;)*

        /// Every kind, in the order their hooks run (and so the order of the HTTP filters they
        /// add, and of a route's filter configurations).
        pub static KINDS: &[Slice] = &[$(Slice::of::<$folder::Conf>()),*];
    };
}

external_service_model::with_policy_kinds!(registry);

/// Where a kind's entries are: `to[]` (outbound: this Envoy calling the service), or `from[]`
/// and `rules[]` under a top-level target (where the service is reached, as Kuma's egress).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    To,
    From,
}

/// A kind's `default`: its spec, how it is checked in Kuma's wording at `path`, and (as
/// [`Configure`]) what it does to Envoy.
pub trait Conf: DeserializeOwned + Default + Configure + 'static {
    const KIND: Kind;
    const SHAPE: Shape = Shape::To;
    /// The violation of an empty or missing `to` (Kuma words it per kind).
    const EMPTY_TO: (&'static str, &'static str) =
        ("spec", "at least one of 'from', 'to' has to be defined");
    fn validate(&self, path: &str, out: &mut Vec<Violation>);
}

/// A kind in the registry: its checks and its merge, for the kind's own [`Conf`].
pub struct Slice {
    pub kind: Kind,
    check: fn(&Value) -> Vec<Violation>,
    merge: fn(&[Parsed<'_>], &str, Named<'_>) -> Option<KindConf>,
}

impl Slice {
    const fn of<C: Conf>() -> Slice {
        Slice {
            kind: C::KIND,
            check: match C::SHAPE {
                Shape::To => spec::check_to_policy::<C>,
                Shape::From => spec::check_from_policy::<C>,
            },
            merge: merge::merge::<C>,
        }
    }
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
    match KINDS.iter().find(|s| s.kind == kind) {
        Some(slice) => (slice.check)(spec),
        None => vec![Violation::new(
            "",
            format!("{kind} is not a traffic policy"),
        )],
    }
}

/// One kind's merged configuration for a service, and which policy set each field.
#[derive(Debug, Clone, Serialize)]
pub struct KindConf {
    #[serde(skip)]
    pub kind: Kind,
    /// The merged `default`, read: what the hooks apply.
    #[serde(skip)]
    pub conf: Arc<dyn Configure>,
    /// The merged `default`, as Kuma's `kumactl inspect` shows it.
    #[serde(rename = "conf")]
    pub merged: Value,
    /// Field path (`http.requestTimeout`) -> the policy whose entry set it.
    pub fields: BTreeMap<String, String>,
}

/// Everything that applies to one service: each kind at most once, in the registry's order.
#[derive(Debug, Clone, Default)]
pub struct Effective {
    kinds: Vec<KindConf>,
}

impl Effective {
    /// What `kind` sets for the service, if any policy of it applies.
    pub fn get(&self, kind: Kind) -> Option<&KindConf> {
        self.kinds.iter().find(|k| k.kind == kind)
    }

    /// The hooks of every kind that applies, in the registry's order.
    pub fn configurers(&self) -> impl Iterator<Item = &dyn Configure> {
        self.kinds.iter().map(|k| &*k.conf)
    }
}

/// By kind name, in the model's order of kinds.
impl Serialize for Effective {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut kinds: Vec<&KindConf> = self.kinds.iter().collect();
        kinds.sort_by_key(|k| k.kind);
        let mut map = s.serialize_map(Some(kinds.len()))?;
        for k in kinds {
            map.serialize_entry(k.kind.as_str(), k)?;
        }
        map.end()
    }
}

/// The effective policies of one service, for `extsvc validate --format json`.
#[derive(Debug, Clone, Serialize)]
pub struct ServicePolicies {
    pub mesh: String,
    /// `ExternalService` (then `service` is its `kuma.io/service`) or `MeshExternalService`.
    pub kind: Kind,
    pub service: String,
    pub policies: Effective,
}

/// A declared service: its mesh, its kind and its name (an ExternalService's
/// `kuma.io/service`, a MeshExternalService's name).
type Declared = BTreeSet<(String, Kind, String)>;

/// Valid policies merged for the declared services of every mesh.
#[derive(Debug, Clone, Default)]
pub struct Policies {
    /// By (mesh, kind, name), as [`Declared`].
    services: BTreeMap<(String, Kind, String), Effective>,
    warnings: Vec<String>,
}

static NONE: Effective = Effective { kinds: Vec::new() };

impl Policies {
    /// Merges the valid policies of `resources` (invalid ones are left out) for the
    /// ExternalServices' `kuma.io/service`s and the MeshExternalServices.
    pub fn build(resources: &[Resource]) -> Policies {
        // Each policy is checked and read once; a service then looks only at the policies.
        let parsed: Vec<Parsed<'_>> = resources.iter().filter_map(Parsed::of).collect();
        let declared = declared(resources);
        let mut policies = Policies::default();
        for (mesh, kind, name) in declared.iter().filter(|_| !parsed.is_empty()) {
            let service = Named { kind: *kind, name };
            let kinds = KINDS
                .iter()
                .filter_map(|slice| (slice.merge)(&parsed, mesh, service))
                .collect();
            policies
                .services
                .insert((mesh.clone(), *kind, name.clone()), Effective { kinds });
        }
        policies.warnings = unmatched_targets(&parsed, &declared);
        policies
    }

    /// What applies to `service` of `mesh` (nothing, for a service no policy names).
    pub fn of(&self, mesh: &str, service: &Service) -> &Effective {
        self.services
            .get(&(mesh.to_string(), service.kind, service.name.clone()))
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
            .filter(|(_, e)| !e.kinds.is_empty())
            .map(|((mesh, kind, service), policies)| ServicePolicies {
                mesh: mesh.clone(),
                kind: *kind,
                service: service.clone(),
                policies: policies.clone(),
            })
            .collect()
    }
}

/// The services policies may name: each ExternalService's `kuma.io/service` and each
/// MeshExternalService, by mesh.
fn declared(resources: &[Resource]) -> Declared {
    resources
        .iter()
        .filter_map(|r| {
            let (kind, name) = match &r.spec {
                Spec::ExternalService(es) => (Kind::ExternalService, es.service()?),
                Spec::MeshExternalService(_) => (Kind::MeshExternalService, r.name.as_str()),
                _ => return None,
            };
            Some((r.mesh.clone(), kind, name.to_string()))
        })
        .collect()
}

/// A warning per valid policy target that names a service its mesh does not declare: a
/// `kuma.io/service` no ExternalService has, or no MeshExternalService's name.
fn unmatched_targets(parsed: &[Parsed<'_>], declared: &Declared) -> Vec<String> {
    let mut found = Vec::new();
    for Parsed {
        resource: r,
        kind,
        entries,
    } in parsed
    {
        for (field, service) in entries.named_services() {
            let key = (r.mesh.clone(), service.kind, service.name.to_string());
            if !declared.contains(&key) {
                found.push(format!(
                    "{}: {kind} {:?} (mesh {:?}): {field}: {}, so this entry applies to nothing",
                    r.origin.file,
                    r.name,
                    r.mesh,
                    undeclared(&r.mesh, service)
                ));
            }
        }
    }
    found
}

/// Why no service of `mesh` is `service`, in the words of its kind.
fn undeclared(mesh: &str, service: Named<'_>) -> String {
    let name = service.name;
    match service.kind {
        Kind::MeshExternalService => {
            format!("no MeshExternalService of mesh {mesh:?} is named {name:?}")
        }
        _ => format!("no ExternalService of mesh {mesh:?} has kuma.io/service {name:?}"),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::collections::BTreeSet;
    use std::fs;
    use std::path::Path;

    use super::*;

    /// `MeshCircuitBreaker` -> `mesh_circuit_breaker`.
    fn folder_of(kind: Kind) -> String {
        let mut folder = String::new();
        for c in kind.as_str().chars() {
            if c.is_ascii_uppercase() && !folder.is_empty() {
                folder.push('_');
            }
            folder.push(c.to_ascii_lowercase());
        }
        folder
    }

    /// ARCHITECTURE.md's "Adding a Kuma kind" is what every kind is: a folder named after it
    /// with the same four files, and one line in the model's `with_policy_kinds!` naming the
    /// kind and that folder; every policy kind the model reads has a slice, once, in that order.
    #[test]
    fn every_kind_is_one_folder_and_one_registry_line() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/policy");
        let folders: BTreeSet<String> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.is_dir())
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        let registered: BTreeSet<String> = KINDS.iter().map(|s| folder_of(s.kind)).collect();
        assert_eq!(folders, registered);
        for folder in &folders {
            let files: BTreeSet<String> = fs::read_dir(dir.join(folder))
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            let want = ["api.rs", "configurer.rs", "mod.rs", "tests.rs"];
            assert_eq!(files, want.map(String::from).into(), "{folder}");
        }
        let model =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../filter/model/src/resource/spec.rs");
        let source = fs::read_to_string(model).unwrap();
        let (_, list) = source.split_once("        $then! {\n").unwrap();
        let (list, _) = list.split_once("\n        }").unwrap();
        let lines: Vec<&str> = list.lines().map(str::trim).collect();
        let want: Vec<String> = KINDS
            .iter()
            .map(|s| format!("{} => {},", s.kind, folder_of(s.kind)))
            .collect();
        assert_eq!(lines, want);
        let kinds: Vec<Kind> = KINDS.iter().map(|s| s.kind).collect();
        assert_eq!(kinds, Kind::POLICIES);
    }
}
