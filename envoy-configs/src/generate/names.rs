//! Names of Envoy resources that several builders use.

use external_service_model::catalog::Service;
use external_service_model::hostname_generator::DISPLAY_NAME_LABEL;
use external_service_model::resource::Resource;
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
/// (`pkg/xds/envoy/tls/sni.go`, 2.9): the egress picks the service's chain by it.
/// An ExternalService: `SNIFromTags` of its `kuma.io/service` and mesh,
/// `<service>{mesh=<mesh>}`. A MeshExternalService: `SNIForResource` of its display name (its
/// `kuma.io/display-name` label, else its name) and `match.port`.
pub fn egress_sni(resources: &[Resource], mesh: &str, service: &Service) -> String {
    match (service.kind, &service.matched) {
        (Kind::MeshExternalService, Some(matched)) => {
            let name = display_name(resources, mesh, &service.name);
            mesh_external_service_sni(name, mesh, matched.port)
        }
        _ => format!("{}{{mesh={mesh}}}", service.name),
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

/// Kuma's limit of a DNS label, less the `x` that marks a name cut short.
const SNI_LABEL: usize = 62;

/// `a<fnv-1a 64 of "<name>;<mesh>;">.<name>.<port>.<mesh>.mes` (format version `a`), a name
/// or mesh longer than 62 bytes cut to 62 and marked with `x`.
fn mesh_external_service_sni(name: &str, mesh: &str, port: u16) -> String {
    let hash = format!("{name};{mesh};")
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
    let label = |text: &str| match text.get(..SNI_LABEL) {
        Some(cut) if text.len() > SNI_LABEL => format!("{cut}x"),
        _ => text.to_string(),
    };
    format!("a{hash:016x}.{}.{port}.{}.mes", label(name), label(mesh))
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
        let sni = |kind: Kind, name: &str| {
            let id = f.catalog.service_id(kind, name).unwrap();
            egress_sni(&f.resources, "default", &f.catalog.services[id])
        };
        assert_eq!(
            sni(Kind::ExternalService, "httpbin"),
            "httpbin{mesh=default}"
        );
        // Kuma's own case (`sni_test.go`, "simple", for a MeshService: only the suffix differs).
        assert_eq!(
            mesh_external_service_sni("backend", "demo", 8080),
            "ae10a8071b8a8eeb8.backend.8080.demo.mes"
        );
        assert_eq!(
            sni(Kind::MeshExternalService, "backend"),
            mesh_external_service_sni("backend", "default", 8080)
        );
        assert_eq!(
            sni(Kind::MeshExternalService, "shown"),
            mesh_external_service_sni("db", "default", 5432)
        );
        let long = format!("{}-qwe", "a".repeat(62));
        let cut = mesh_external_service_sni(&long, "demo", 443);
        assert_eq!(
            cut.split('.').nth(1).unwrap(),
            format!("{}x", "a".repeat(62))
        );
        // The hash is of the whole name: two names cut alike differ.
        assert_ne!(
            cut,
            mesh_external_service_sni(&format!("{}-rty", "a".repeat(62)), "demo", 443)
        );
    }
}
