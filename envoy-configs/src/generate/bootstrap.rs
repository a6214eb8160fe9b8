//! The whole bootstrap: [`generate`] runs every builder over one mesh and combines what they
//! make, with the warnings a user should read and the checks only the options allow.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use external_service_model::catalog::{self, Catalog, Service};
use external_service_model::resource::{Kind, MeshSpec, Spec, ZoneEgressSpec, SERVICE_TAG};
use external_service_model::traffic_permission::Permissions;
use serde_json::Value;

use super::admin::{self, AdminAddress};
use super::context::{outbounds, Context, Options, Outbound, Upstreams};
use super::mesh_tls::MeshTls;
use super::sds::Sds;
use super::secrets::{SecretFile, Secrets};
use super::{cluster, listener, stats, to_egress, transparent, xds, zone_egress, Error};
use crate::envoy::{self, Cluster, Listener, StaticResources};
use crate::policy::Policies;
use crate::read::Loaded;
use crate::role::{self, Role};

/// A generated bootstrap.
#[derive(Debug, Clone, PartialEq)]
pub struct Bootstrap {
    /// The Envoy v3 bootstrap ([`envoy::Bootstrap`] as JSON), keys in the order a reader
    /// wants them.
    pub config: Value,
    /// Whether a private key is written inline (the file must then be private).
    pub inline_private_keys: bool,
    /// The files in [`Options::secrets_dir`] that the configuration names: write them first.
    pub secret_files: Vec<SecretFile>,
    /// With [`Options::xds_dir`], the listeners and clusters: the files the bootstrap names.
    pub xds: Option<xds::Files>,
    /// What the user should know about a valid configuration (see [`warnings`]).
    pub warnings: Vec<String>,
    /// With [`Options::transparent`], every name's VIP: what `--xds-dir` keeps.
    pub vips: Option<transparent::Vips>,
}

impl Bootstrap {
    /// The bootstrap as YAML.
    pub fn to_yaml(&self) -> Result<String, Error> {
        serde_yaml_ng::to_string(&self.config).map_err(|e| Error::Serialize(e.to_string()))
    }

    /// The bootstrap as JSON, for a file Envoy reads by its `.json` name.
    pub fn to_json(&self) -> Result<String, Error> {
        serde_json::to_string_pretty(&self.config)
            .map(|json| json + "\n")
            .map_err(|e| Error::Serialize(e.to_string()))
    }
}

/// Generates the bootstrap for the resources of one mesh, read and checked by
/// [`crate::read`]; invalid ones, and valid ones this generator cannot build, are refused with
/// every report, as `validate` prints them.
pub fn generate(loaded: &Loaded, options: &Options) -> Result<Bootstrap, Error> {
    let checked = &loaded.checked;
    if !loaded.is_buildable() {
        return Err(Error::Invalid(loaded.refusals()));
    }
    let resources = checked.resources.as_slice();
    let mesh = catalog::select_mesh(resources, options.mesh.as_deref()).map_err(Error::Mesh)?;
    let mut catalog = Catalog::build(resources, &mesh);
    let mut source_service = None;
    if let Role::Dataplane(name) = &options.role {
        let (_, dataplane) = role::dataplane(resources, &mesh, name).map_err(Error::Proxy)?;
        let mut tags = dataplane.inbound_tags();
        let permissions = Permissions::of_mesh(resources, &mesh);
        catalog.refuse_unpermitted(&permissions, name, &tags);
        source_service = tags.remove(SERVICE_TAG);
    }
    let policies = Policies::build(resources);
    let mesh_spec = role::mesh(resources, &mesh).map(|(_, spec)| spec);
    let through_egress =
        matches!(options.role, Role::Dataplane(_)) && mesh_spec.is_some_and(MeshSpec::zone_egress);
    let ctx = Context {
        options,
        catalog: &catalog,
        resources,
        resolved: &loaded.resolved,
        policies: &policies,
        source_service: source_service.as_deref(),
        upstreams: if through_egress {
            Upstreams::ZoneEgress
        } else {
            Upstreams::Own
        },
    };

    let sds = (options.xds_dir.as_deref()).map(|dir| Sds::new(dir, options.in_pod));
    let mut secrets = Secrets::new(options.secrets_dir.as_deref(), sds);
    let Parts {
        mut listeners,
        mut clusters,
        vips,
        warnings,
    } = match &options.role {
        Role::ZoneEgress(name) => zone_egress_parts(&ctx, &mut secrets, name)?,
        Role::Mesh | Role::Dataplane(_) => sidecar_parts(&ctx, &mut secrets)?,
    };

    let mut bootstrap = envoy::Bootstrap {
        node: None,
        admin: admin::admin(&options.admin),
        stats_config: stats::labels(),
        typed_dns_resolver_config: options.dns_resolver.map(cluster::dns_resolver),
        static_resources: None,
        dynamic_resources: None,
    };
    // The stats listener goes with the admin: in the bootstrap, which only a restart rereads.
    let stats = StaticResources {
        listeners: options
            .stats_listen
            .map(admin::stats_listener)
            .into_iter()
            .collect(),
        clusters: options
            .stats_listen
            .map(|_| admin::admin_cluster(&options.admin))
            .into_iter()
            .collect(),
    };
    let files = match &options.xds_dir {
        None => {
            listeners.extend(stats.listeners);
            clusters.extend(stats.clusters);
            bootstrap.static_resources = Some(StaticResources {
                listeners,
                clusters,
            });
            None
        }
        Some(dir) => {
            bootstrap.node = Some(xds::node(&mesh));
            bootstrap.dynamic_resources = Some(xds::dynamic_resources(dir));
            if !stats.listeners.is_empty() {
                bootstrap.static_resources = Some(stats);
            }
            Some(xds::Files::new(&listeners, &clusters, secrets.served())?)
        }
    };
    Ok(Bootstrap {
        config: serde_json::to_value(&bootstrap).map_err(|e| Error::Serialize(e.to_string()))?,
        inline_private_keys: secrets.inline_private_keys(),
        secret_files: secrets.into_files(),
        xds: files,
        warnings,
        vips,
    })
}

/// What one role's Envoy is made of, besides the admin and the stats listener.
struct Parts {
    listeners: Vec<Listener>,
    clusters: Vec<Cluster>,
    vips: Option<transparent::Vips>,
    warnings: Vec<String>,
}

/// The mesh's Envoy, or one Dataplane's: a cluster per service it may reach, the HTTP proxy
/// or transparent proxy listeners, and the Dataplanes' outbounds.
fn sidecar_parts(ctx: &Context<'_>, secrets: &mut Secrets) -> Result<Parts, Error> {
    let to_egress = match ctx.upstreams {
        Upstreams::ZoneEgress => Some((mesh_tls(ctx, secrets)?, egresses(ctx)?)),
        Upstreams::Own => None,
    };
    let mut clusters = Vec::new();
    for service in &ctx.catalog.services {
        clusters.push(match (&service.refused, &to_egress) {
            (Some(_), _) => cluster::refused(service),
            (None, Some((tls, egresses))) => to_egress::cluster(ctx, tls, service, egresses),
            (None, None) => cluster::service_cluster(ctx, secrets, service),
        });
    }

    let outbounds = outbounds(ctx);
    check_addresses(ctx.options, sidecar_addresses(ctx.options, &outbounds))?;
    let mut warnings = warnings(ctx, &outbounds);
    warnings.extend(ctx.policies.warnings().iter().cloned());
    let mut listeners = Vec::new();
    let mut vips = None;
    match &ctx.options.transparent {
        Some(transparent) => {
            let parts = transparent::build(ctx, transparent)?;
            listeners.extend(parts.listeners);
            clusters.extend(parts.clusters);
            vips = Some(parts.vips);
        }
        None => {
            listeners.push(listener::outbound_http(ctx));
            if ctx.catalog.passthrough {
                clusters.push(cluster::passthrough());
            }
        }
    }
    listeners.extend(outbounds.iter().map(|o| listener::outbound(ctx, o)));
    Ok(Parts {
        listeners,
        clusters,
        vips,
        warnings,
    })
}

/// Every ZoneEgress, which a Dataplane of a mesh with `routing.zoneEgress` sends through.
fn egresses<'r>(ctx: &Context<'r>) -> Result<Vec<&'r ZoneEgressSpec>, Error> {
    let egresses: Vec<&ZoneEgressSpec> = role::zone_egresses(ctx.resources)
        .into_iter()
        .map(|(_, spec)| spec)
        .collect();
    if egresses.is_empty() {
        return Err(Error::Proxy(format!(
            "Mesh {:?} sends external traffic through the ZoneEgress (routing.zoneEgress), and no ZoneEgress is declared: add one (type: ZoneEgress, networking.address and port)",
            ctx.mesh()
        )));
    }
    Ok(egresses)
}

/// The ZoneEgress's Envoy: its listener, and a cluster per service of the mesh.
fn zone_egress_parts(ctx: &Context<'_>, secrets: &mut Secrets, name: &str) -> Result<Parts, Error> {
    let egress = role::zone_egress(ctx.resources, name).map_err(Error::Proxy)?;
    let tls = mesh_tls(ctx, secrets)?;
    let listener = zone_egress::listener_of(ctx, &tls, egress)?;
    let at = match &listener.address {
        envoy::Address::SocketAddress(a) => a
            .address
            .parse()
            .ok()
            .map(|ip| (SocketAddr::new(ip, a.port_value), listener.name.clone())),
        envoy::Address::Pipe(_) => None,
    };
    check_addresses(ctx.options, at.into_iter().collect())?;
    let clusters = ctx
        .catalog
        .services
        .iter()
        .map(|service| cluster::service_cluster(ctx, secrets, service))
        .collect();
    let mut warnings = catalog::hostname_warnings(ctx.resources, ctx.mesh());
    warnings.extend(ctx.policies.warnings().iter().cloned());
    Ok(Parts {
        listeners: vec![listener],
        clusters,
        vips: None,
        warnings,
    })
}

/// The SDS secrets of this Envoy's certificate and the mesh CA.
fn mesh_tls(ctx: &Context<'_>, secrets: &mut Secrets) -> Result<MeshTls, Error> {
    let issued = ctx.options.identity.as_ref().ok_or_else(|| {
        Error::Proxy(format!(
            "this Envoy needs a certificate of mesh {:?} and none was issued",
            ctx.mesh()
        ))
    })?;
    let sds = secrets.sds().ok_or_else(|| {
        Error::Proxy(
            "--dataplane and --zone-egress give Envoy its certificate as SDS files, which a \
             renewal replaces with no restart: give --xds-dir DIR"
                .to_string(),
        )
    })?;
    Ok(MeshTls::new(sds, ctx.mesh(), issued))
}

/// What passthrough lets out when no Mesh says otherwise, tcp services no listener reaches,
/// and MeshExternalServices left without a hostname.
fn warnings(ctx: &Context<'_>, outbounds: &[Outbound<'_>]) -> Vec<String> {
    let mesh = ctx.mesh();
    let mut found = Vec::new();
    let has_mesh = ctx
        .resources
        .iter()
        .any(|r| matches!(r.spec, Spec::Mesh(_)) && r.name == mesh);
    // A MeshPassthrough decides what passes whatever the Mesh's flag.
    if !has_mesh && ctx.catalog.mesh_passthrough.is_none() {
        found.push(format!(
            "no Mesh resource {mesh:?}, so passthrough is on and requests to undeclared hosts go \
             out as they are; add `type: Mesh`, `name: {mesh}` with \
             `networking.outbound.passthrough: false` to refuse them"
        ));
    }
    // The transparent proxy gives every service listeners of its own.
    let reachable_by_vip = ctx.options.transparent.is_some();
    for service in ctx
        .catalog
        .services
        .iter()
        .filter(|s| !s.protocol.is_http() && !reachable_by_vip)
    {
        if !outbounds.iter().any(|o| std::ptr::eq(o.service, service)) {
            found.push(unreached(service));
        }
    }
    found.extend(catalog::hostname_warnings(ctx.resources, mesh));
    found.extend(catalog::passthrough_warnings(ctx.resources, mesh));
    let zone_egress = role::mesh(ctx.resources, mesh).is_some_and(|(_, m)| m.zone_egress());
    if zone_egress && ctx.options.role == Role::Mesh {
        found.push(format!(
            "Mesh {mesh:?} sends external traffic through the ZoneEgress (routing.zoneEgress), \
             but this Envoy is no Dataplane's and reaches the services itself: generate each \
             sidecar with --dataplane NAME"
        ));
    }
    found
}

/// Why a tcp service no listener reaches, and what reaches it.
fn unreached(service: &Service) -> String {
    let name = &service.name;
    let protocol = service.protocol;
    match service.kind {
        Kind::MeshExternalService => format!(
            "MeshExternalService {name:?} is {protocol} and no Dataplane outbound names it, so no \
             listener reaches it: add a Dataplane outbound with backendRef {{kind: \
             MeshExternalService, name: {name}}}, or use --transparent-proxy"
        ),
        _ => format!(
            "service {name:?} is {protocol} and no Dataplane outbound names it, so no listener \
             reaches it: add a Dataplane outbound with kuma.io/service {name:?}, or tag it \
             kuma.io/protocol: http"
        ),
    }
}

/// The address and name of each listener of a sidecar: the proxy (or capture) listener and
/// the outbounds.
fn sidecar_addresses(options: &Options, outbounds: &[Outbound<'_>]) -> Vec<(SocketAddr, String)> {
    let listen = match options.transparent {
        Some(_) => transparent::CAPTURE,
        None => listener::OUTBOUND_HTTP,
    };
    std::iter::once((options.listen, listen.to_string()))
        .chain(
            outbounds
                .iter()
                .map(|o| (o.address, listener::outbound_name(o.address))),
        )
        .collect()
}

/// Envoy refuses to start when two listeners (or the admin) share an address; say which.
/// `listeners`: each listener's address and name.
fn check_addresses(options: &Options, listeners: Vec<(SocketAddr, String)>) -> Result<(), Error> {
    let mut seen: BTreeMap<SocketAddr, String> = BTreeMap::new();
    let admin = match options.admin {
        AdminAddress::Tcp(at) => Some((at, "admin".to_string())),
        AdminAddress::Unix(_) => None,
    };
    let stats = options
        .stats_listen
        .map(|at| (at, admin::STATS.to_string()));
    for (address, name) in admin.into_iter().chain(stats).chain(listeners) {
        // Port 0 lets the kernel choose: never a clash. Envoy binds the IP and port only.
        let address = SocketAddr::new(address.ip(), address.port());
        if address.port() == 0 {
            continue;
        }
        if let Some(first) = seen.insert(address, name.clone()) {
            return Err(Error::SameAddress {
                address,
                listeners: [first, name],
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use crate::generate::test_support::{service, Fixture};

    #[test]
    fn listeners_and_the_admin_need_addresses_of_their_own() {
        let f = Fixture::new(&service("h", "http", "{address: h.test:80}"));
        let at = |address: &str| Outbound {
            address: address.parse().unwrap(),
            service: f.service("h"),
        };
        let with = |listen: &str, admin: &str| Options {
            listen: listen.parse().unwrap(),
            admin: admin.parse().unwrap(),
            stats_listen: None,
            ..Options::default()
        };
        let clash = |options: &Options, outbounds: &[Outbound<'_>]| match check_addresses(
            options,
            sidecar_addresses(options, outbounds),
        ) {
            Ok(()) => None,
            Err(Error::SameAddress { listeners, .. }) => Some(listeners),
            Err(e) => panic!("{e:?}"),
        };
        let defaults = Options::default();
        assert_eq!(clash(&defaults, &[at("127.0.0.1:10000")]), None);
        // The admin is a Unix socket; its stats listener has the old admin port.
        assert_eq!(
            clash(&defaults, &[at("127.0.0.1:9901")]),
            Some(["stats".into(), "outbound:127.0.0.1:9901".into()])
        );
        assert_eq!(
            clash(
                &with("127.0.0.1:15001", "127.0.0.1:9902"),
                &[at("127.0.0.1:9902")]
            ),
            Some(["admin".into(), "outbound:127.0.0.1:9902".into()])
        );
        let both = Options {
            stats_listen: Some("127.0.0.1:9902".parse().unwrap()),
            ..with("127.0.0.1:15001", "127.0.0.1:9902")
        };
        assert_eq!(clash(&both, &[]), Some(["admin".into(), "stats".into()]));
        assert_eq!(
            clash(&defaults, &[at("127.0.0.1:10000"), at("127.0.0.1:10000")]),
            Some([
                "outbound:127.0.0.1:10000".into(),
                "outbound:127.0.0.1:10000".into()
            ])
        );
        assert_eq!(
            clash(
                &with("127.0.0.1:10000", "127.0.0.1:9901"),
                &[at("127.0.0.1:10000")]
            ),
            Some(["outbound_http".into(), "outbound:127.0.0.1:10000".into()])
        );
        // Port 0: the kernel chooses, so never a clash.
        assert_eq!(
            clash(&with("127.0.0.1:0", "127.0.0.1:0"), &[at("127.0.0.1:0")]),
            None
        );
    }
}
