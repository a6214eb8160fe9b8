//! What Kuma accepts in a mesh's permissions but does not do as a user may think.

use crate::resource::{Resource, Spec};

/// The permissions of `mesh` that decide nothing: all of them when its mTLS is not enabled
/// (Kuma enforces none then), and MeshTrafficPermissions that target Dataplanes.
pub fn warnings(resources: &[Resource], mesh: &str, mtls_enabled: bool) -> Vec<String> {
    let in_mesh = || resources.iter().filter(|r| r.mesh == mesh);
    let mut found = Vec::new();
    let permissions: Vec<String> = in_mesh()
        .filter(|r| {
            matches!(
                r.spec,
                Spec::MeshTrafficPermission(_) | Spec::TrafficPermission(_)
            )
        })
        .map(|r| format!("{} {:?}", r.kind(), r.name))
        .collect();
    if !mtls_enabled && !permissions.is_empty() {
        found.push(format!(
            "mesh {mesh:?} has no mTLS (its Mesh sets no mtls.enabledBackend), so {} {} not \
             enforced and every source may reach every service: Mutual TLS has to be enabled to \
             make MeshTrafficPermission work",
            permissions.join(", "),
            if permissions.len() == 1 { "is" } else { "are" }
        ));
    }
    for r in in_mesh() {
        if let Spec::MeshTrafficPermission(spec) = &r.spec {
            if spec
                .target_ref
                .as_ref()
                .is_some_and(|t| t.kind == "Dataplane")
            {
                found.push(format!(
                    "MeshTrafficPermission {:?} targets Dataplane, which selects the traffic into \
                     Dataplanes, and extsvc serves none: it decides nothing here; to decide who \
                     reaches an external service, target Mesh, or MeshService by its kuma.io/service",
                    r.name
                ));
            }
        }
    }
    found
}
