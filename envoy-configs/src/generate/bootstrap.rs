//! The whole bootstrap: [`generate`] runs every builder over one mesh and combines what they
//! make, with the warnings a user should read and the checks only the options allow.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use external_service_model::catalog::{self, Catalog, Service};
use external_service_model::resource::{Kind, Spec};
use serde_json::Value;

use super::admin::{self, AdminAddress};
use super::context::{outbounds, Context, Options, Outbound};
use super::secrets::{SecretFile, Secrets};
use super::{cluster, listener, stats, transparent, xds, Error};
use crate::envoy::{self, StaticResources};
use crate::policy::Policies;
use crate::read::Loaded;

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
    let catalog = Catalog::build(resources, &mesh);
    let policies = Policies::build(resources);
    let ctx = Context {
        options,
        catalog: &catalog,
        resources,
        resolved: &loaded.resolved,
        policies: &policies,
    };

    let mut secrets = Secrets::new(options.secrets_dir.as_deref(), options.xds_dir.as_deref());
    let mut clusters = Vec::new();
    for service in &catalog.services {
        clusters.push(cluster::service_cluster(&ctx, &mut secrets, service));
    }

    let outbounds = outbounds(&ctx);
    check_addresses(options, &outbounds)?;
    let mut warnings = warnings(&ctx, &outbounds);
    warnings.extend(policies.warnings().iter().cloned());
    let mut listeners = Vec::new();
    let mut vips = None;
    match &options.transparent {
        Some(transparent) => {
            let parts = transparent::build(&ctx, transparent)?;
            listeners.extend(parts.listeners);
            clusters.extend(parts.clusters);
            vips = Some(parts.vips);
        }
        None => {
            listeners.push(listener::outbound_http(&ctx));
            if catalog.passthrough {
                clusters.push(cluster::passthrough());
            }
        }
    }
    listeners.extend(outbounds.iter().map(|o| listener::outbound(&ctx, o)));

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

/// Envoy refuses to start when two listeners (or the admin) share an address; say which.
fn check_addresses(options: &Options, outbounds: &[Outbound<'_>]) -> Result<(), Error> {
    let mut seen: BTreeMap<SocketAddr, String> = BTreeMap::new();
    let listen = match options.transparent {
        Some(_) => transparent::CAPTURE,
        None => listener::OUTBOUND_HTTP,
    };
    let listeners = std::iter::once((options.listen, listen.to_string())).chain(
        outbounds
            .iter()
            .map(|o| (o.address, listener::outbound_name(o.address))),
    );
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
            options, outbounds,
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
