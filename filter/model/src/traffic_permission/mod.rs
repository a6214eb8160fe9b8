//! Who may reach what: Kuma's MeshTrafficPermission and the older TrafficPermission, their
//! specs as written (`spec`), Kuma's validators in Kuma's words (`validate`), a caller's
//! identity as Kuma's certificates carry it (`identity`), the SNI a sidecar presents to the
//! egress (`sni`), and the decision (`decide`): per destination, a first-match-wins list of
//! grants that answers a caller by its tags and is what Envoy's RBAC on the egress enforces.
//!
//! Kinds of their own, not of `with_policy_kinds!`: no Envoy slice of `extsvc` applies them
//! one by one; the model decides, for a sidecar and for the egress alike.
//!
//! How a destination is decided, Kuma's egress (2.9.0 `meshtrafficpermission/plugin`
//! `configureEgress`, `core/rules`, `core/permissions`; v2.14.3 for `rules`) unless said:
//! 1. Not enforced without mTLS: a mesh whose `Mesh` has no `mtls.enabledBackend` lets every
//!    caller through (decided by the `Mesh`), and `warnings` says so.
//! 2. The MeshTrafficPermissions whose top-level target selects the destination: `Mesh` (or
//!    none) every one; `MeshSubset`, `MeshService` (its `kuma.io/service`) and
//!    `MeshServiceSubset` an ExternalService by its tags, as Kuma's egress does; `Dataplane`
//!    selects Dataplanes, never a service here (`warnings` says so). They are taken in Kuma's
//!    order: the more specific target later, then by name, the name that sorts first last.
//! 3. Their 2.12+ `rules`, where a match applies to the destination: a `sni` match must name
//!    its SNI (`sni`; an ExternalService's `<service>{mesh=<mesh>}` is no DNS name, so only a
//!    MeshExternalService can be named), a match without `sni` applies to every destination
//!    the policy selects. If any applies, they decide, as Kuma 2.14's RBAC matcher does:
//!    denials first, then allowances (`allowWithShadowDeny` before `allow`, so that a caller
//!    in both is logged), else denied. `from` is then not looked at (Kuma 2.14: rules take a
//!    listener over from `from`).
//! 4. ExternalService: their `from` items, merged as Kuma merges them: the last item (in the
//!    policies' order, then the items') whose target selects the caller gives its action. So
//!    a `Deny` for a subset written after a `Mesh` `Allow`, or in a more specific policy,
//!    wins; one written before it is overridden, as in Kuma.
//! 5. ExternalService, no MeshTrafficPermission item: the one TrafficPermission whose
//!    `destinations` match it most specifically (Kuma's `SelectInboundConnectionPolicy`), the
//!    one read last among equals; its `sources` are allowed, everyone else denied.
//! 6. Nothing: an ExternalService is denied (Kuma: no permission, no traffic).
//!    A MeshExternalService is allowed, unless the `Mesh` sets
//!    `routing.defaultForbidMeshExternalServiceAccess` (Kuma 2.9 to 2.14: its egress applies
//!    no per-source rule to a MeshExternalService; the flag denies them all). So `from`
//!    never decides for a MeshExternalService; the `rules` of step 3 do, by its SNI, as on
//!    Kuma 2.14's mesh-scoped zone egress and in Kuma 3.0, which a Kuma user writing `rules`
//!    expects.
//!
//! Kuma's control plane creates no permission with a mesh (the `allow-all` TrafficPermission
//! of old needs `KUMA_DEFAULTS_CREATE_MESH_ROUTING_RESOURCES`, off by default in 2.9 and
//! 2.14), so none is assumed here.

pub mod decide;
pub mod identity;
pub mod sni;
pub mod spec;
pub mod validate;
mod warnings;

pub use decide::{Caller, Grant, Permissions, PolicyRef, Principal, Verdict};
pub use spec::{Action, MeshTrafficPermissionSpec, TrafficPermissionSpec};
pub use warnings::warnings;

use serde_json::Value;

use crate::resource::{typed_spec, Spec};
use crate::violation::Violation;

/// Reads a MeshTrafficPermission's spec, kept under `spec` in both forms (`prefix` is `spec.`
/// for Kubernetes, which names the fields itself) and named `spec.…` in both.
pub(crate) fn read_spec(body: Value, prefix: &str) -> Result<Spec, Vec<Violation>> {
    let spec: MeshTrafficPermissionSpec = typed_spec(body, prefix)?;
    Ok(Spec::MeshTrafficPermission(Box::new(spec)))
}
