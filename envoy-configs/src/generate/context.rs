//! What every builder is given: the options beyond the resources, and the context of one run
//! (the mesh's catalog, its resources, their resolved DataSources and policies).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use external_service_model::catalog::{Catalog, Service};
use external_service_model::resource::{Kind, Resource, Selected, Spec};

use super::admin::{self, AdminAddress};
use super::transparent;
use crate::identity::Issued;
use crate::policy::Policies;
use crate::resolve::Resolved;
use crate::role::Role;

pub use external_service_model::contract::MODULE_PATH as DEFAULT_WASM;
/// Debian's bundle of trusted CAs: what verifies servers when an ExternalService has no caCert.
pub const DEFAULT_SYSTEM_CA: &str = "/etc/ssl/certs/ca-certificates.crt";
pub const DEFAULT_LISTEN: &str = "127.0.0.1:15001";
/// How long a route waits for an upstream's whole answer before a 504 (Envoy's own default).
pub const DEFAULT_ROUTE_TIMEOUT_SECS: u64 = 15;
/// Where a Dataplane outbound listens when it names no address (Kuma's default).
pub const DEFAULT_OUTBOUND_ADDRESS: &str = "127.0.0.1";

/// What the generated Envoy looks like beyond the resources.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// The outbound HTTP proxy listener (`outbound_http`).
    pub listen: SocketAddr,
    /// Envoy's admin interface: a Unix socket (mode 0600) unless a TCP address is asked for.
    pub admin: AdminAddress,
    /// The read-only listener that serves the admin's `/stats/prometheus` and `/ready`.
    pub stats_listen: Option<SocketAddr>,
    /// The filter module, as Envoy will find it.
    pub wasm: PathBuf,
    /// The trust store for ExternalServices without a caCert.
    pub system_ca: PathBuf,
    /// A DNS resolver for Envoy to use instead of the system's (tests run one on loopback).
    pub dns_resolver: Option<SocketAddr>,
    /// The mesh to serve; needed only when the resources span several.
    pub mesh: Option<String>,
    /// Each route's timeout for the upstream's whole answer (whole seconds; 0 turns it off).
    pub route_timeout: Duration,
    /// Where TLS material given inline or by a Secret goes instead of the configuration: one
    /// file per piece, named by the configuration ([`Bootstrap::secret_files`]).
    pub secrets_dir: Option<PathBuf>,
    /// Where listeners and clusters go instead of the bootstrap, as files Envoy watches
    /// ([`xds`], [`Bootstrap::xds`]); absolute, as the bootstrap names it.
    pub xds_dir: Option<PathBuf>,
    /// Envoy runs in a Kubernetes pod (`--format kubernetes`): its xDS directory is a volume
    /// the kubelet replaces all at once by swapping `DIR/..data` (the SDS files watch DIR
    /// too), and a ZoneEgress listens on every address of the pod, its `networking.address`
    /// being its Service's.
    pub in_pod: bool,
    /// With `--transparent-proxy`: `listen` is the capture listener, and no HTTP proxy
    /// listener is written.
    pub transparent: Option<transparent::Options>,
    /// Whose Envoy this is: the mesh's (every Dataplane's outbounds), one Dataplane's, or a
    /// ZoneEgress's.
    pub role: Role,
    /// The certificate this Envoy presents in the mesh, when its role needs one
    /// (`crate::identity::for_role`): served with the mesh CA through SDS.
    pub identity: Option<Issued>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            listen: SocketAddr::from(([127, 0, 0, 1], 15001)),
            admin: AdminAddress::Unix(PathBuf::from(format!(
                "{}.admin.sock",
                admin::DEFAULT_SOCKET_STEM
            ))),
            stats_listen: Some(SocketAddr::from(([127, 0, 0, 1], 9901))),
            wasm: PathBuf::from(DEFAULT_WASM),
            system_ca: PathBuf::from(DEFAULT_SYSTEM_CA),
            dns_resolver: None,
            mesh: None,
            route_timeout: Duration::from_secs(DEFAULT_ROUTE_TIMEOUT_SECS),
            secrets_dir: None,
            xds_dir: None,
            in_pod: false,
            transparent: None,
            role: Role::Mesh,
            identity: None,
        }
    }
}

/// Where this Envoy's service clusters lead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Upstreams {
    /// To each service's own endpoints, TLS originated here.
    #[default]
    Own,
    /// To the ZoneEgress instances, which hold the endpoints (a Dataplane's sidecar in a mesh
    /// with `routing.zoneEgress`).
    ZoneEgress,
}

/// What every builder may need: the options, the mesh's catalog, all resources and their
/// resolved DataSources.
pub struct Context<'a> {
    pub options: &'a Options,
    pub catalog: &'a Catalog,
    pub resources: &'a [Resource],
    pub resolved: &'a Resolved,
    /// The traffic policies that apply to each service.
    pub policies: &'a Policies,
    /// The `kuma.io/service` of the Dataplane whose sidecar this is (`--dataplane`): who every
    /// request comes from, for its access log.
    pub source_service: Option<&'a str>,
    /// Where the service clusters lead: the routes rewrite `Host` from an endpoint only where
    /// the endpoints are the service's.
    pub upstreams: Upstreams,
}

impl Context<'_> {
    pub fn mesh(&self) -> &str {
        &self.catalog.mesh
    }
}

/// A Dataplane outbound of the served mesh, resolved to its service.
pub struct Outbound<'a> {
    pub address: SocketAddr,
    pub service: &'a Service,
}

/// The outbounds of every Dataplane of the mesh, or of the one whose Envoy this is.
pub(super) fn outbounds<'a>(ctx: &Context<'a>) -> Vec<Outbound<'a>> {
    let mut found = Vec::new();
    let this_one = |r: &Resource| match &ctx.options.role {
        Role::Dataplane(name) => r.name == *name,
        Role::Mesh | Role::ZoneEgress(_) => true,
    };
    for r in ctx
        .resources
        .iter()
        .filter(|r| r.mesh == ctx.mesh() && this_one(r))
    {
        let Spec::Dataplane(dp) = &r.spec else {
            continue;
        };
        for ob in &dp.networking.outbound {
            // Validation makes sure that the outbound names a service of its mesh, that its
            // address is an IP and its port in range.
            let id = match &ob.backend_ref {
                Some(backend) => match backend.select_mesh_external_service(ctx.resources, &r.mesh)
                {
                    Selected::One(name) => ctx.catalog.service_id(Kind::MeshExternalService, name),
                    Selected::None | Selected::Several(_) => None,
                },
                None => ob
                    .service()
                    .and_then(|name| ctx.catalog.service_id(Kind::ExternalService, name)),
            };
            let service = id.and_then(|id| ctx.catalog.services.get(id));
            let ip = ob.address.as_deref().unwrap_or(DEFAULT_OUTBOUND_ADDRESS);
            let (Some(service), Ok(ip), Ok(port)) =
                (service, ip.parse::<IpAddr>(), u16::try_from(ob.port))
            else {
                continue;
            };
            found.push(Outbound {
                address: SocketAddr::new(ip, port),
                service,
            });
        }
    }
    found
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use crate::generate::test_support::{mesh_external_service, service, Fixture};

    /// Each outbound's address with the kind and name of the service it reaches.
    fn resolved(f: &Fixture) -> Vec<(String, String)> {
        outbounds(&f.ctx())
            .iter()
            .map(|o| {
                let s = o.service;
                (o.address.to_string(), format!("{}/{}", s.kind, s.name))
            })
            .collect()
    }

    #[test]
    fn a_backend_ref_outbound_reaches_its_mesh_external_service_and_a_tag_its_external_service() {
        // An ExternalService and a MeshExternalService may share a name.
        let dataplane = "type: Dataplane\nmesh: default\nname: dp\nnetworking:\n  \
                         address: 127.0.0.1\n  outbound:\n  \
                         - {port: 54321, backendRef: {kind: MeshExternalService, name: ext-svc}}\n  \
                         - {port: 54322, address: 127.0.0.2, backendRef: {kind: MeshExternalService, labels: {team: db}}}\n  \
                         - {port: 54323, tags: {kuma.io/service: ext-svc}}\n";
        let db = mesh_external_service("db", "tcp", 5432, "db.test:5432")
            .replace("name: db\n", "name: db\nlabels: {team: db}\n");
        let f = Fixture::new(
            &[
                service("ext-svc", "http", "{address: es.test:80}"),
                mesh_external_service("ext-svc", "http", 80, "mes.test:8080"),
                db,
                dataplane.to_string(),
            ]
            .concat(),
        );
        let pair = |a: &str, s: &str| (a.to_string(), s.to_string());
        assert_eq!(
            resolved(&f),
            [
                pair("127.0.0.1:54321", "MeshExternalService/ext-svc"),
                pair("127.0.0.2:54322", "MeshExternalService/db"),
                pair("127.0.0.1:54323", "ExternalService/ext-svc"),
            ]
        );
    }
}
