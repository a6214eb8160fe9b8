//! Names of Envoy resources that several builders use.

use external_service_model::catalog::Service;
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
