//! Mesh identity without a control plane: the Mesh's `provided` CA checked as Kuma checks it
//! ([`check`], one of `read::check`'s), and the certificate this run's Envoy presents, issued
//! from it ([`for_role`]): a Dataplane's says who it is as Kuma's certificates do, the
//! ZoneEgress's says it is the egress. `generate` writes both into SDS files of `--xds-dir`
//! (the key only into its own, private file) and `watch` renews them before they expire. The
//! CA key is read to sign and never written anywhere.
//!
//! No Dataplane certificate can pass as the egress's: the egress's identity is Kuma's, the
//! service `zone-egress`, and `extsvc` refuses to issue a Dataplane a certificate for it (Kuma
//! itself would; here no control plane stands between the two).

pub mod ca;
pub mod expiration;
pub mod issue;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime};

use external_service_model::report::Violation;
use external_service_model::resource::{
    CaBackend, DataplaneSpec, MeshSpec, Resource, Spec, SERVICE_TAG,
};
use external_service_model::traffic_permission::identity::{kuma_uri, spiffe_id};
use serde_json::Value;

pub use ca::MeshCa;
pub use issue::{Issued, Kept};

use crate::resolve::{Resolved, PROVIDED};
use crate::role::{self, Role};

/// The service Kuma names the ZoneEgress's identity with (`ZoneEgressServiceName`).
pub const ZONE_EGRESS_SERVICE: &str = "zone-egress";

/// The identity sidecars check the egress by.
pub fn zone_egress_id(mesh: &str) -> String {
    spiffe_id(mesh, ZONE_EGRESS_SERVICE)
}

/// Every value of every tag of the Dataplane's inbounds (Kuma's `MultiValueTagSet`), sorted.
fn inbound_tag_set(dataplane: &DataplaneSpec) -> BTreeMap<String, BTreeSet<String>> {
    let mut tags: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for inbound in &dataplane.networking.inbound {
        let Some(Value::Object(map)) = inbound.get("tags") else {
            continue;
        };
        for (key, value) in map {
            if let Value::String(value) = value {
                tags.entry(key.clone()).or_default().insert(value.clone());
            }
        }
    }
    tags
}

/// The URI SANs Kuma gives a certificate for these tags (`newWorkloadTemplate`): the SPIFFE
/// ID of each `kuma.io/service`, then `kuma://<tag>/<value>` for every tag, that one too.
fn uris_of(mesh: &str, tags: &BTreeMap<String, BTreeSet<String>>) -> Vec<String> {
    let services = tags.get(SERVICE_TAG).into_iter().flatten();
    let mut uris: Vec<String> = services.map(|s| spiffe_id(mesh, s)).collect();
    for (tag, values) in tags {
        uris.extend(values.iter().map(|value| kuma_uri(tag, value)));
    }
    uris
}

/// The URI SANs of a Dataplane's certificate.
pub fn dataplane_uris(mesh: &str, dataplane: &DataplaneSpec) -> Vec<String> {
    uris_of(mesh, &inbound_tag_set(dataplane))
}

/// The URI SANs of the ZoneEgress's certificate: those of the service `zone-egress`.
pub fn zone_egress_uris(mesh: &str) -> Vec<String> {
    let tags = BTreeMap::from([(
        SERVICE_TAG.to_string(),
        BTreeSet::from([ZONE_EGRESS_SERVICE.to_string()]),
    )]);
    uris_of(mesh, &tags)
}

/// The Mesh checks of Kuma that need the resolved material or that the model leaves to
/// `extsvc`: each backend's `dpCert.rotation.expiration` (Kuma's path for it), and each
/// `provided` backend's certificate and key. Aligned with `resources`.
pub fn check(resources: &[Resource], resolved: &Resolved) -> Vec<Vec<Violation>> {
    resources
        .iter()
        .map(|r| match &r.spec {
            Spec::Mesh(mesh) => mesh_violations(&r.name, mesh, resolved),
            _ => Vec::new(),
        })
        .collect()
}

fn mesh_violations(name: &str, mesh: &MeshSpec, resolved: &Resolved) -> Vec<Violation> {
    let backends = mesh.mtls.iter().flat_map(|m| &m.backends);
    let mut out = Vec::new();
    for (i, backend) in backends.enumerate() {
        // Kuma reads `dpCert` whenever it is there, an empty one too.
        if backend.dp_cert.is_some() && lifetime_written(backend).is_none() {
            out.push(Violation::new(
                "mtls.dpcert.rotation.expiration",
                expiration::INVALID,
            ));
        }
        out.extend(ca::check_provided(name, mesh, i, backend, resolved));
    }
    out
}

/// The written expiration, read: `None` when it cannot be read (or is missing from a
/// `dpCert` that is there).
fn lifetime_written(backend: &CaBackend) -> Option<Duration> {
    let rotation = backend.dp_cert.as_ref()?.rotation.as_ref()?;
    expiration::parse(rotation.expiration.as_deref()?)
}

/// How long the backend's certificates live: its expiration, else Kuma's default.
fn lifetime(backend: &CaBackend) -> Duration {
    match backend.dp_cert {
        Some(_) => lifetime_written(backend).unwrap_or(expiration::DEFAULT),
        None => expiration::DEFAULT,
    }
}

/// The certificate this run's Envoy presents, when it needs one: a Dataplane's when its mesh
/// routes through the ZoneEgress, the ZoneEgress's always. `kept` is the one written last
/// time: kept while it serves. Every error names what to change.
pub fn for_role(
    resources: &[Resource],
    resolved: &Resolved,
    mesh: &str,
    role: &Role,
    kept: Option<&Kept>,
    now: SystemTime,
) -> Result<Option<Issued>, String> {
    let mesh_spec = role::mesh(resources, mesh);
    let uris = match role {
        Role::Mesh => return Ok(None),
        Role::Dataplane(name) => {
            let (resource, dataplane) = role::dataplane(resources, mesh, name)?;
            if !mesh_spec.is_some_and(|(_, m)| m.zone_egress()) {
                return Ok(None);
            }
            refuse_egress_claim(resource, dataplane)?;
            dataplane_uris(mesh, dataplane)
        }
        Role::ZoneEgress(name) => {
            role::zone_egress(resources, name)?;
            zone_egress_uris(mesh)
        }
    };
    let (mesh_resource, spec) = mesh_spec.ok_or_else(|| {
        format!(
            "no Mesh {mesh:?} in the resources: its certificates come from its CA (a Mesh with \
             mtls and a provided backend)"
        )
    })?;
    let (i, backend) = spec
        .enabled_ca()
        .and_then(|ca| {
            Some((
                spec.mtls.as_ref()?.backends.iter().position(|b| b == ca)?,
                ca,
            ))
        })
        .ok_or_else(|| {
            role::fault(
                mesh_resource,
                "mtls.enabledBackend",
                "is not set: a ZoneEgress serves meshes with mTLS, whose CA issues the \
                 certificates it checks",
            )
        })?;
    if backend.kind != PROVIDED {
        return Err(role::fault(
            mesh_resource,
            &format!("mtls.backends[{i}].type"),
            &format!(
                "{:?} cannot issue certificates without Kuma's control plane: use a \
                 \"provided\" backend (the CA's certificate and key as DataSources)",
                backend.kind
            ),
        ));
    }
    let at = |e: String| role::fault(mesh_resource, &format!("mtls.backends[{i}]"), &e);
    let ca = MeshCa::load(mesh, backend, resolved).map_err(at)?;
    issue::provide(&ca, &uris, lifetime(backend), kept, now)
        .map(Some)
        .map_err(at)
}

/// A Dataplane whose service is `zone-egress` would get the egress's identity.
fn refuse_egress_claim(resource: &Resource, dataplane: &DataplaneSpec) -> Result<(), String> {
    for (i, inbound) in dataplane.networking.inbound.iter().enumerate() {
        let service = inbound
            .get("tags")
            .and_then(|tags| tags.get(SERVICE_TAG))
            .and_then(Value::as_str);
        if service == Some(ZONE_EGRESS_SERVICE) {
            return Err(role::fault(
                resource,
                &format!("networking.inbound[{i}].tags[\"{SERVICE_TAG}\"]"),
                &format!(
                    "{ZONE_EGRESS_SERVICE:?} is the ZoneEgress's identity: a Dataplane \
                     certificate for it would pass as the egress, so none is issued; name the \
                     service otherwise"
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
