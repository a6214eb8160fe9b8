//! The decision: the permissions of one mesh compiled, once, into a first-match-wins list of
//! grants per destination. The same list answers a caller known by its tags (`decide`, for a
//! sidecar) and is what Envoy's RBAC on the egress is given (`grants`), where a caller is
//! known only by its certificate's URI SANs (`identity::uri_sans`). Kuma's semantics, and
//! where this project chooses, are in the module's documentation (`traffic_permission`).

use std::cmp::Reverse;
use std::collections::BTreeMap;
use std::fmt;

use rustc_hash::FxHashMap;
use serde::Serialize;

use crate::hostname_generator::DISPLAY_NAME_LABEL;
use crate::resource::{Kind, Resource, Spec, SERVICE_TAG};
use crate::selectors::{selector_matches, TargetRef};

use super::identity::{spiffe_id, spiffe_id_problem};
use super::sni;
use super::spec::{Action, Match, MeshTrafficPermissionSpec, TrafficPermissionSpec};

/// Who calls: a Dataplane's tags (its inbounds', `DataplaneSpec::inbound_tags`),
/// `kuma.io/service` included.
#[derive(Debug, Clone, Copy)]
pub struct Caller<'a> {
    pub tags: &'a BTreeMap<String, String>,
}

/// The resource that decided: a permission, or the `Mesh` itself (no mTLS, or its
/// `routing.defaultForbidMeshExternalServiceAccess`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PolicyRef {
    pub kind: Kind,
    pub name: String,
}

impl fmt::Display for PolicyRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {:?}", self.kind, self.name)
    }
}

/// What a caller may do to a destination, and what decided it: `None` when no rule speaks of
/// the caller and Kuma's default answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verdict {
    pub action: Action,
    pub decided_by: Option<PolicyRef>,
}

/// A group of callers, as Envoy's RBAC can tell them from a client certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Principal {
    /// Any client with a certificate of the mesh's CA.
    AnyMeshIdentity,
    /// Every tag must be present: `kuma.io/service` as the URI SAN `spiffe://<mesh>/<value>`,
    /// every other tag as the URI SAN `kuma://<tag>/<value>` (Kuma's certificate format).
    Tags(BTreeMap<String, String>),
    /// A URI SAN equal to this SPIFFE ID.
    SpiffeExact(String),
    /// A URI SAN that starts with this (as Kuma's `Prefix`, a plain string prefix).
    SpiffePrefix(String),
}

impl Principal {
    /// Whether a caller of `mesh` is one of this group: what its certificate would prove. (Only
    /// valid SPIFFE IDs make principals, so a SPIFFE principal can only be the caller's SPIFFE
    /// ID, never one of its `kuma://` SANs.)
    pub fn admits(&self, mesh: &str, caller: &Caller<'_>) -> bool {
        let own_id = || caller.tags.get(SERVICE_TAG).map(|s| spiffe_id(mesh, s));
        match self {
            Principal::AnyMeshIdentity => true,
            Principal::Tags(tags) => tags.iter().all(|(k, v)| caller.tags.get(k) == Some(v)),
            Principal::SpiffeExact(id) => own_id().is_some_and(|own| own == *id),
            Principal::SpiffePrefix(prefix) => {
                own_id().is_some_and(|own| own.starts_with(prefix.as_str()))
            }
        }
    }
}

/// One entry of a destination's first-match-wins list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Grant {
    pub who: Principal,
    pub action: Action,
    /// `None` for Kuma's default, which ends every list.
    pub decided_by: Option<PolicyRef>,
}

/// The permissions of one mesh, built once from its resources.
#[derive(Debug, Clone)]
pub struct Permissions {
    mesh: String,
    enforced: bool,
    forbid_mesh_external_services: bool,
    /// In Kuma's order: by top-level target, the more specific later, then by name, the name
    /// that sorts first last.
    mesh_traffic_permissions: Vec<(String, MeshTrafficPermissionSpec)>,
    /// In the order read, standing for the order Kuma's control plane got them.
    traffic_permissions: Vec<(String, TrafficPermissionSpec)>,
    /// The compiled list of each declared service, by kind and name.
    compiled: FxHashMap<Kind, FxHashMap<String, Vec<Grant>>>,
}

/// What a destination is matched by.
struct Destination {
    kind: Kind,
    name: String,
    /// An ExternalService's tags (MeshSubset and TrafficPermission destinations select by
    /// them); a MeshExternalService has none.
    tags: BTreeMap<String, String>,
    /// The SNI a sidecar presents for it; unknown for a MeshExternalService not declared.
    sni: Option<String>,
}

impl Permissions {
    /// Reads the `Mesh`, MeshTrafficPermissions and TrafficPermissions of `mesh` and compiles
    /// the list of each of its ExternalServices (by `kuma.io/service`) and
    /// MeshExternalServices. Parts that Kuma's validator refuses are left out.
    pub fn of_mesh(resources: &[Resource], mesh: &str) -> Permissions {
        let mut permissions = Permissions {
            mesh: mesh.to_string(),
            enforced: false,
            forbid_mesh_external_services: false,
            mesh_traffic_permissions: Vec::new(),
            traffic_permissions: Vec::new(),
            compiled: FxHashMap::default(),
        };
        for r in resources.iter().filter(|r| r.mesh == mesh) {
            match &r.spec {
                Spec::Mesh(spec) => {
                    permissions.enforced = spec.mtls_enabled();
                    permissions.forbid_mesh_external_services =
                        spec.forbids_mesh_external_services_by_default();
                }
                Spec::MeshTrafficPermission(spec) => permissions
                    .mesh_traffic_permissions
                    .push((r.name.clone(), (**spec).clone())),
                Spec::TrafficPermission(spec) => permissions
                    .traffic_permissions
                    .push((r.name.clone(), spec.clone())),
                _ => {}
            }
        }
        permissions
            .mesh_traffic_permissions
            .sort_by(|(a, sa), (b, sb)| {
                let key = |name, spec: &MeshTrafficPermissionSpec| {
                    (rank(spec.target_ref.as_ref()), Reverse(name))
                };
                key(a, sa).cmp(&key(b, sb))
            });
        for destination in destinations(resources, mesh) {
            let grants = permissions.compile(&destination);
            permissions
                .compiled
                .entry(destination.kind)
                .or_default()
                .insert(destination.name, grants);
        }
        permissions
    }

    /// Whether Kuma enforces permissions in this mesh: its mTLS is enabled.
    pub fn enforced(&self) -> bool {
        self.enforced
    }

    /// What `caller` may do to the service of `kind` (`ExternalService` for a
    /// `kuma.io/service`, or `MeshExternalService`) named `service`. A service no resource
    /// declares is judged by the rules that would select it. Its cost does not grow with the
    /// number of services.
    pub fn decide(&self, kind: Kind, service: &str, caller: &Caller<'_>) -> Verdict {
        let decide = |grants: &[Grant]| {
            grants
                .iter()
                .find(|g| g.who.admits(&self.mesh, caller))
                .map(|g| Verdict {
                    action: g.action,
                    decided_by: g.decided_by.clone(),
                })
        };
        let found = match self.declared(kind, service) {
            Some(grants) => decide(grants),
            None => decide(&self.compile(&undeclared(kind, service, &self.mesh))),
        };
        // Every list ends with a grant to every identity; this is never reached.
        found.unwrap_or(Verdict {
            action: Action::Deny,
            decided_by: None,
        })
    }

    /// The same rules for the service, as a first-match-wins list for Envoy's RBAC on the
    /// egress, which knows a caller only by its certificate's URI SANs. Never empty: the last
    /// grant is to every identity, with Kuma's default (or the Mesh's) when no policy is.
    pub fn grants(&self, kind: Kind, service: &str) -> Vec<Grant> {
        match self.declared(kind, service) {
            Some(grants) => grants.to_vec(),
            None => self.compile(&undeclared(kind, service, &self.mesh)),
        }
    }

    fn declared(&self, kind: Kind, service: &str) -> Option<&[Grant]> {
        self.compiled
            .get(&kind)
            .and_then(|by_name| by_name.get(service))
            .map(Vec::as_slice)
    }

    fn compile(&self, destination: &Destination) -> Vec<Grant> {
        let mut grants = self.decided(destination);
        // Nothing after a grant to every identity is ever reached.
        if let Some(any) = grants
            .iter()
            .position(|g| g.who == Principal::AnyMeshIdentity)
        {
            grants.truncate(any + 1);
        }
        grants
    }

    fn decided(&self, destination: &Destination) -> Vec<Grant> {
        if !self.enforced {
            return vec![everyone(Action::Allow, Some(self.mesh_ref()))];
        }
        let selecting: Vec<&(String, MeshTrafficPermissionSpec)> = self
            .mesh_traffic_permissions
            .iter()
            .filter(|(_, spec)| selects(spec.target_ref.as_ref(), destination))
            .collect();
        let mut grants = rule_grants(&selecting, destination);
        if grants.is_empty() && destination.kind == Kind::ExternalService {
            grants = from_grants(&selecting);
        }
        if grants.is_empty() && destination.kind == Kind::ExternalService {
            grants = self.traffic_permission_grants(destination);
        }
        if grants.is_empty() && destination.kind == Kind::MeshExternalService {
            return vec![match self.forbid_mesh_external_services {
                true => everyone(Action::Deny, Some(self.mesh_ref())),
                false => everyone(Action::Allow, None),
            }];
        }
        grants.push(everyone(Action::Deny, None));
        grants
    }

    fn mesh_ref(&self) -> PolicyRef {
        PolicyRef {
            kind: Kind::Mesh,
            name: self.mesh.clone(),
        }
    }

    /// Kuma's `SelectInboundConnectionPolicy`: the one TrafficPermission whose destination
    /// selector matches the service's tags most specifically (more tags, then more exact
    /// values), the one read last among equals (Kuma: created last); its sources allowed.
    /// A `*` value asks nothing of a certificate, so it is left out of the principal (Kuma's
    /// egress RBAC), and a source of `*` only admits every identity.
    fn traffic_permission_grants(&self, destination: &Destination) -> Vec<Grant> {
        let mut best: Option<((usize, usize), &str, &TrafficPermissionSpec)> = None;
        for (name, spec) in &self.traffic_permissions {
            let matching = spec
                .destinations
                .iter()
                .filter(|s| selector_matches(&s.tags, &destination.tags))
                .map(|s| selector_rank(&s.tags))
                .max();
            if let Some(r) = matching {
                if best.is_none_or(|(best_rank, _, _)| r >= best_rank) {
                    best = Some((r, name, spec));
                }
            }
        }
        let Some((_, name, spec)) = best else {
            return Vec::new();
        };
        spec.sources
            .iter()
            .map(|source| {
                let exact = source
                    .tags
                    .iter()
                    .filter(|(_, v)| *v != "*")
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                Grant {
                    who: tags_principal(exact),
                    action: Action::Allow,
                    decided_by: Some(policy_ref(Kind::TrafficPermission, name)),
                }
            })
            .collect()
    }
}

fn everyone(action: Action, decided_by: Option<PolicyRef>) -> Grant {
    Grant {
        who: Principal::AnyMeshIdentity,
        action,
        decided_by,
    }
}

fn policy_ref(kind: Kind, name: &str) -> PolicyRef {
    PolicyRef {
        kind,
        name: name.to_string(),
    }
}

/// Kuma's order of top-level targets (`TargetRefKind.Compare`, 2.14's ranks): a more specific
/// target is applied later.
fn rank(target: Option<&TargetRef>) -> u8 {
    match target.map(|t| t.kind.as_str()) {
        None | Some("Mesh") => 1,
        Some("Dataplane") => 2,
        Some("MeshSubset") => 3,
        Some("MeshService") => 5,
        Some("MeshServiceSubset") => 8,
        Some(_) => 0,
    }
}

/// `TagSelectorRank`: more tags first, then more exact values.
fn selector_rank(tags: &BTreeMap<String, String>) -> (usize, usize) {
    let exact = tags.values().filter(|v| *v != "*").count();
    (tags.len(), exact)
}

/// Whether a top-level target selects the destination, as Kuma's egress matches policies to
/// an ExternalService by its tags (`serviceSelectedByTargetRef`); a MeshExternalService is
/// selected by `Mesh` alone, and `Dataplane` selects Dataplanes, never a service here.
fn selects(target: Option<&TargetRef>, destination: &Destination) -> bool {
    let Some(target) = target else { return true };
    let external = destination.kind == Kind::ExternalService;
    let named = || target.name() == destination.name;
    let tagged = || selector_matches(target.tags(), &destination.tags);
    match target.kind.as_str() {
        "Mesh" => true,
        "MeshSubset" => external && tagged(),
        "MeshService" => external && named(),
        "MeshServiceSubset" => external && named() && tagged(),
        _ => false,
    }
}

/// The 2.12+ `rules` of the selecting policies that apply to the destination, as Kuma 2.14's
/// RBAC matcher orders them: every denial, then every allowance (those logged as denied
/// first), each in the policies' order.
fn rule_grants(
    selecting: &[&(String, MeshTrafficPermissionSpec)],
    destination: &Destination,
) -> Vec<Grant> {
    let mut lists: [Vec<Grant>; 3] = Default::default();
    for (name, spec) in selecting {
        for rule in spec.rule_items() {
            let conf = &rule.default;
            let parts = [
                (&conf.deny, Action::Deny),
                (&conf.allow_with_shadow_deny, Action::AllowWithShadowDeny),
                (&conf.allow, Action::Allow),
            ];
            for (list, (matches, action)) in lists.iter_mut().zip(parts) {
                list.extend(matches.iter().flatten().filter_map(|m| {
                    Some(Grant {
                        who: match_principal(m, destination)?,
                        action,
                        decided_by: Some(policy_ref(Kind::MeshTrafficPermission, name)),
                    })
                }));
            }
        }
    }
    lists.into_iter().flatten().collect()
}

/// Who a `rules` match admits to the destination: `None` when its `sni` names another
/// destination, or when it asks for nothing (Kuma's matcher skips an empty match).
fn match_principal(m: &Match, destination: &Destination) -> Option<Principal> {
    if let Some(sni) = &m.sni {
        if sni.kind != "Exact" || destination.sni.as_deref() != Some(sni.value.as_str()) {
            return None;
        }
    }
    match &m.spiffe_id {
        Some(id) if spiffe_id_problem(&id.value).is_err() => None,
        Some(id) if id.kind == "Exact" => Some(Principal::SpiffeExact(id.value.clone())),
        Some(id) if id.kind == "Prefix" => Some(Principal::SpiffePrefix(id.value.clone())),
        Some(_) => None,
        None => m.sni.is_some().then_some(Principal::AnyMeshIdentity),
    }
}

/// The `from` items of the selecting policies as Kuma merges them (`core/rules BuildRules`):
/// a caller gets the action of the last item, in the policies' order and then the items',
/// whose target selects it. So the list is those items, last first.
fn from_grants(selecting: &[&(String, MeshTrafficPermissionSpec)]) -> Vec<Grant> {
    let mut grants: Vec<Grant> = selecting
        .iter()
        .flat_map(|(name, spec)| {
            spec.from_items().iter().filter_map(move |item| {
                Some(Grant {
                    who: from_principal(&item.target_ref)?,
                    action: Action::parse(item.default.action.as_deref()?)?,
                    decided_by: Some(policy_ref(Kind::MeshTrafficPermission, name)),
                })
            })
        })
        .collect();
    grants.reverse();
    grants
}

/// The callers a `from` target selects (Kuma's `asSubset`): `Mesh` all, `MeshSubset` by tags,
/// `MeshService` by `kuma.io/service`, `MeshServiceSubset` by both. `None` for a target that
/// can select nobody (no name, or a `kuma.io/service` tag other than the name).
fn from_principal(target: &TargetRef) -> Option<Principal> {
    let with_service = |mut tags: BTreeMap<String, String>| {
        let name = target.name();
        let other = tags.insert(SERVICE_TAG.to_string(), name.to_string());
        (!name.is_empty() && other.is_none_or(|o| o == name)).then_some(Principal::Tags(tags))
    };
    match target.kind.as_str() {
        "Mesh" => Some(Principal::AnyMeshIdentity),
        "MeshSubset" => Some(tags_principal(target.tags().clone())),
        "MeshService" => with_service(BTreeMap::new()),
        "MeshServiceSubset" => with_service(target.tags().clone()),
        _ => None,
    }
}

fn tags_principal(tags: BTreeMap<String, String>) -> Principal {
    if tags.is_empty() {
        Principal::AnyMeshIdentity
    } else {
        Principal::Tags(tags)
    }
}

/// The declared services of `mesh`: each ExternalService `kuma.io/service` with the tags of
/// the ExternalService whose name sorts last (Kuma matches policies per ExternalService, and
/// the last one listed, by name, stays), and each MeshExternalService with its SNI.
fn destinations(resources: &[Resource], mesh: &str) -> Vec<Destination> {
    let mut external: BTreeMap<&str, (&str, &BTreeMap<String, String>)> = BTreeMap::new();
    let mut out = Vec::new();
    for r in resources.iter().filter(|r| r.mesh == mesh) {
        match &r.spec {
            Spec::ExternalService(es) => {
                if let Some(service) = es.service() {
                    let kept = external.entry(service).or_insert((&r.name, &es.tags));
                    if r.name.as_str() > kept.0 {
                        *kept = (&r.name, &es.tags);
                    }
                }
            }
            Spec::MeshExternalService(mes) => {
                let display = r
                    .labels
                    .get(DISPLAY_NAME_LABEL)
                    .map_or(r.name.as_str(), String::as_str);
                out.push(Destination {
                    kind: Kind::MeshExternalService,
                    name: r.name.clone(),
                    tags: BTreeMap::new(),
                    sni: u16::try_from(mes.matcher.port)
                        .ok()
                        .map(|port| sni::mesh_external_service(display, mesh, port)),
                });
            }
            _ => {}
        }
    }
    out.extend(
        external
            .into_iter()
            .map(|(service, (_, tags))| Destination {
                kind: Kind::ExternalService,
                name: service.to_string(),
                tags: tags.clone(),
                sni: Some(sni::external_service(service, mesh)),
            }),
    );
    out
}

/// A service of `mesh` no resource declares: an ExternalService known by its
/// `kuma.io/service` alone, a MeshExternalService without a port for its SNI.
fn undeclared(kind: Kind, service: &str, mesh: &str) -> Destination {
    let external = kind == Kind::ExternalService;
    Destination {
        kind,
        name: service.to_string(),
        tags: match external {
            true => BTreeMap::from([(SERVICE_TAG.to_string(), service.to_string())]),
            false => BTreeMap::new(),
        },
        sni: external.then(|| sni::external_service(service, mesh)),
    }
}
