//! Names of Envoy resources that several builders use.

use external_service_model::catalog::Service;
use external_service_model::hostname_generator::DISPLAY_NAME_LABEL;
use external_service_model::resource::Resource;
use external_service_model::traffic_permission::sni;
use external_service_model::Kind;

/// The prefix of every service's cluster: the stats of all of them start so.
pub const CLUSTER_PREFIX: &str = "external_service_";

/// The cluster name of a service: readable, stable, and apart for the two kinds (an
/// ExternalService's `kuma.io/service` may be a MeshExternalService's name too).
pub fn cluster(service: &Service) -> String {
    cluster_of(service.kind, &service.name)
}

/// How the access log's `external_service` field and the route name a service: its
/// `kuma.io/service`, or `MeshExternalService/<name>`.
pub fn logged(service: &Service) -> String {
    match service.kind {
        Kind::MeshExternalService => format!("{}/{}", service.kind, service.name),
        _ => service.name.clone(),
    }
}

/// The cluster name of the service of `kind` named `name`.
pub fn cluster_of(kind: Kind, name: &str) -> String {
    match kind {
        Kind::MeshExternalService => format!("{CLUSTER_PREFIX}mes_{name}"),
        _ => format!("{CLUSTER_PREFIX}{name}"),
    }
}

/// The SNI a sidecar presents to the ZoneEgress for a service, in Kuma's format for its kind
/// (the model's `traffic_permission::sni`): the egress picks the service's chain by it. A
/// MeshExternalService is named by its display name (its `kuma.io/display-name` label, else
/// its name) and `match.port`.
pub fn egress_sni(resources: &[Resource], mesh: &str, service: &Service) -> String {
    match (service.kind, &service.matched) {
        (Kind::MeshExternalService, Some(matched)) => {
            let name = display_name(resources, mesh, &service.name);
            sni::mesh_external_service(name, mesh, matched.port)
        }
        _ => sni::external_service(&service.name, mesh),
    }
}

/// The MeshExternalService's `kuma.io/display-name` label, else its name.
fn display_name<'r>(resources: &'r [Resource], mesh: &str, name: &'r str) -> &'r str {
    resources
        .iter()
        .find(|r| r.mesh == mesh && r.name == name && r.kind() == Kind::MeshExternalService)
        .and_then(|r| r.labels.get(DISPLAY_NAME_LABEL))
        .map_or(name, String::as_str)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use crate::generate::test_support::{mesh_external_service, service, Fixture};

    #[test]
    fn the_egress_sni_is_kumas_for_each_kind() {
        let f = Fixture::new(
            &[
                service("httpbin", "http", "{address: httpbin.test:80}"),
                mesh_external_service("backend", "http", 8080, "backend.test:80"),
                mesh_external_service("shown", "tcp", 5432, "db.test:5432").replace(
                    "name: shown\n",
                    "name: shown\nlabels: {kuma.io/display-name: db}\n",
                ),
            ]
            .concat(),
        );
        let sni_of = |kind: Kind, name: &str| {
            let id = f.catalog.service_id(kind, name).unwrap();
            egress_sni(&f.resources, "default", &f.catalog.services[id])
        };
        assert_eq!(
            sni_of(Kind::ExternalService, "httpbin"),
            "httpbin{mesh=default}"
        );
        assert_eq!(
            sni_of(Kind::MeshExternalService, "backend"),
            sni::mesh_external_service("backend", "default", 8080)
        );
        // By its display name.
        assert_eq!(
            sni_of(Kind::MeshExternalService, "shown"),
            sni::mesh_external_service("db", "default", 5432)
        );
    }
}
