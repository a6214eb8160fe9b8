//! Envoy bootstrap generation: validated resources in, a full Envoy v3 bootstrap out.
//!
//! One small builder per Envoy concern, in the manner of Kuma's cluster configurers, each
//! making typed Envoy values ([`crate::envoy`]):
//!
//! - [`cluster`]: one cluster per `kuma.io/service` (endpoints, type, DNS) and the passthrough
//!   cluster;
//! - [`names`]: the names several builders use (a service's cluster);
//! - [`tls`]: TLS origination (`UpstreamTlsContext`) in a cluster's transport socket;
//! - [`protocol`]: HTTP/2 upstream options and ALPN;
//! - [`listener`]: the outbound HTTP proxy listener and one listener per Dataplane outbound;
//! - [`transparent`]: with `--transparent-proxy`, the capture listener, one listener per
//!   VIP:port, the builtin DNS and passthrough or refusal of everything else;
//! - [`http`]: the HTTP connection manager and its routes;
//! - [`wasm`]: the filter, with its plugin configuration;
//! - [`access_log`]: one JSON line on stdout per request or connection;
//! - [`secrets`]: TLS material inline, or in files of its own (`--secrets-dir`);
//! - [`xds`]: listeners and clusters in files Envoy watches, for live updates (`--xds-dir`).
//!
//! The cluster, route, listener, `tcp_proxy` and HTTP filter builders call the hooks of the
//! service's traffic policies ([`crate::policy::Configure`]) and know no kind by name.
//!
//! [`generate`] combines them. Rules on the resources, the generator's own limits among them
//! (`cluster_rules`), are checked once, in [`crate::read::check`]: the builders take checked
//! resources and their resolved DataSources, and do not check again.

pub mod access_log;
pub mod admin;
pub mod cluster;
pub mod http;
pub mod listener;
pub mod names;
pub mod protocol;
pub mod sds;
pub mod secrets;
pub mod stats;
#[cfg(test)]
mod test_support;
pub mod tls;
pub mod transparent;
pub mod wasm;
pub mod xds;

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use external_service_model::catalog::{self, Catalog, Service};
use external_service_model::resource::{Resource, Spec};
use external_service_model::Report;
use serde_json::Value;

use crate::envoy::{self, StaticResources};
use crate::policy::Policies;
use crate::read::Loaded;
use crate::resolve::Resolved;
use admin::AdminAddress;
use secrets::{SecretFile, Secrets};

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
    /// With `--transparent-proxy`: `listen` is the capture listener, and no HTTP proxy
    /// listener is written.
    pub transparent: Option<transparent::Options>,
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
            transparent: None,
        }
    }
}

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

/// Why no configuration could be made. Each names the service, resource or field at fault.
#[derive(Debug, Clone, PartialEq)]
pub enum Error {
    /// Invalid resources: every report, as `extsvc validate` prints them (valid ones included).
    Invalid(Vec<Report>),
    /// The mesh to serve is not clear (several meshes, none named).
    Mesh(String),
    /// Two listeners (or one and the admin) on one address.
    SameAddress {
        address: SocketAddr,
        listeners: [String; 2],
    },
    /// The transparent proxy's VIPs cannot be given out.
    Vips(String),
    Serialize(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Invalid(reports) => {
                let n = reports.iter().filter(|r| !r.is_valid()).count();
                write!(f, "{n} invalid resource{}", if n == 1 { "" } else { "s" })
            }
            Error::Mesh(e) => write!(f, "{e}: name the one to serve with --mesh NAME"),
            Error::SameAddress {
                address,
                listeners: [a, b],
            } => write!(f, "listeners {a:?} and {b:?} both use {address}"),
            Error::Vips(e) => f.write_str(e),
            Error::Serialize(e) => write!(f, "cannot write the configuration: {e}"),
        }
    }
}

impl std::error::Error for Error {}

/// What every builder may need: the options, the mesh's catalog, all resources and their
/// resolved DataSources.
pub struct Context<'a> {
    pub options: &'a Options,
    pub catalog: &'a Catalog,
    pub resources: &'a [Resource],
    pub resolved: &'a Resolved,
    /// The traffic policies that apply to each service.
    pub policies: &'a Policies,
}

impl Context<'_> {
    pub fn mesh(&self) -> &str {
        &self.catalog.mesh
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

/// What passthrough lets out when no Mesh says otherwise, and tcp services no listener reaches.
fn warnings(ctx: &Context<'_>, outbounds: &[Outbound<'_>]) -> Vec<String> {
    let mesh = ctx.mesh();
    let mut found = Vec::new();
    let has_mesh = ctx
        .resources
        .iter()
        .any(|r| matches!(r.spec, Spec::Mesh(_)) && r.name == mesh);
    if !has_mesh {
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
        if !outbounds.iter().any(|o| o.service.name == service.name) {
            found.push(format!(
                "service {:?} is {} and no Dataplane outbound names it, so no listener reaches it: \
                 add a Dataplane outbound with kuma.io/service {:?}, or tag it kuma.io/protocol: http",
                service.name, service.protocol, service.name
            ));
        }
    }
    found
}

/// A Dataplane outbound of the served mesh, resolved to its service.
pub struct Outbound<'a> {
    pub address: SocketAddr,
    pub service: &'a Service,
}

fn outbounds<'a>(ctx: &Context<'a>) -> Vec<Outbound<'a>> {
    let mut found = Vec::new();
    for r in ctx.resources.iter().filter(|r| r.mesh == ctx.mesh()) {
        let Spec::Dataplane(dp) = &r.spec else {
            continue;
        };
        for ob in &dp.networking.outbound {
            // Validation makes sure that the outbound names a service of its mesh, that its
            // address is an IP and its port in range.
            let service = ctx
                .catalog
                .services
                .iter()
                .find(|s| ob.service() == Some(s.name.as_str()));
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

    use super::test_support::{service, Fixture};
    use super::*;

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
