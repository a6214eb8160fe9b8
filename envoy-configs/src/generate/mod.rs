//! Envoy bootstrap generation: validated resources in, a full Envoy v3 bootstrap out.
//!
//! One small builder per Envoy concern, in the manner of Kuma's cluster configurers, each
//! making typed Envoy values ([`crate::envoy`]):
//!
//! - [`cluster`]: one cluster per `kuma.io/service` (endpoints, type, DNS) and the passthrough
//!   cluster;
//! - [`tls`]: TLS origination (`UpstreamTlsContext`) in a cluster's transport socket;
//! - [`protocol`]: HTTP/2 upstream options and ALPN;
//! - [`listener`]: the outbound HTTP proxy listener and one listener per Dataplane outbound;
//! - [`transparent`]: with `--transparent-proxy`, the capture listener, one listener per
//!   VIP:port, the builtin DNS and passthrough or refusal of everything else;
//! - [`http`]: the HTTP connection manager and its routes (timeouts from MeshTimeout);
//! - [`retry`]: a route's retry policy from MeshRetry;
//! - [`traffic`]: MeshRateLimit and MeshFaultInjection on a service's routes;
//! - [`wasm`]: the filter, with its plugin configuration;
//! - [`access_log`]: one JSON line on stdout per request or connection;
//! - [`secrets`]: TLS material inline, or in files of its own (`--secrets-dir`);
//! - [`xds`]: listeners and clusters in files Envoy watches, for live updates (`--xds-dir`).
//!
//! [`generate`] checks what one Envoy configuration cannot hold, then combines them. Rules on
//! the resources are validation's: the builders take valid resources and do not check again.

pub mod access_log;
pub mod cluster;
pub mod http;
pub mod listener;
mod not_served;
pub mod protocol;
pub mod retry;
pub mod sds;
pub mod secrets;
pub mod stats;
#[cfg(test)]
mod test_support;
pub mod tls;
pub mod traffic;
pub mod transparent;
pub mod wasm;
pub mod xds;

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use external_service_model::catalog::{self, Catalog, Service};
use external_service_model::config::Checked;
use external_service_model::resource::{Kind, Resource, Spec};
use external_service_model::Report;
use serde_json::Value;

use crate::envoy::{self, Admin, StaticResources};
use crate::policy::Policies;
use secrets::{SecretFile, Secrets};

pub use external_service_model::contract::MODULE_PATH as DEFAULT_WASM;
/// Debian's bundle of trusted CAs: what verifies servers when an ExternalService has no caCert.
pub const DEFAULT_SYSTEM_CA: &str = "/etc/ssl/certs/ca-certificates.crt";
pub const DEFAULT_LISTEN: &str = "127.0.0.1:15001";
pub const DEFAULT_ADMIN: &str = "127.0.0.1:9901";
/// How long a route waits for an upstream's whole answer before a 504 (Envoy's own default).
pub const DEFAULT_ROUTE_TIMEOUT_SECS: u64 = 15;
/// Where a Dataplane outbound listens when it names no address (Kuma's default).
pub const DEFAULT_OUTBOUND_ADDRESS: &str = "127.0.0.1";

/// What the generated Envoy looks like beyond the resources.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// The outbound HTTP proxy listener (`outbound_http`).
    pub listen: SocketAddr,
    pub admin: SocketAddr,
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
            admin: SocketAddr::from(([127, 0, 0, 1], 9901)),
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
    /// A TLS DataSource whose material cannot be had (validation makes sure it can).
    DataSource {
        service: String,
        resource: String,
        field: &'static str,
        message: String,
    },
    /// Two HTTP services that the filter sends to the same authority: no route can tell them
    /// apart.
    SameAuthority {
        authority: String,
        services: [String; 2],
    },
    /// Two listeners (or one and the admin) on one address.
    SameAddress {
        address: SocketAddr,
        listeners: [String; 2],
    },
    /// The transparent proxy's VIPs cannot be given out.
    Vips(String),
    /// A valid resource of a kind that is read and validated but not served yet.
    NotServed {
        file: String,
        kind: Kind,
        name: String,
    },
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
            Error::DataSource {
                service,
                resource,
                field,
                message,
            } => write!(
                f,
                "service {service:?}: ExternalService {resource:?}: networking.tls.{field}: {message}"
            ),
            Error::SameAuthority {
                authority,
                services: [a, b],
            } => write!(
                f,
                "services {a:?} and {b:?} are both forwarded with authority {authority:?}, so no route can tell them apart; give one of them another port or set disableHostDNSEntry on it"
            ),
            Error::SameAddress {
                address,
                listeners: [a, b],
            } => write!(f, "listeners {a:?} and {b:?} both use {address}"),
            Error::Vips(e) => f.write_str(e),
            Error::NotServed { file, kind, name } => write!(
                f,
                "{file}: {kind} {name:?} is validated but not served yet: `extsvc validate` checks it as Kuma does, `extsvc generate` serves ExternalService only (take it out of the files to generate)"
            ),
            Error::Serialize(e) => write!(f, "cannot write the configuration: {e}"),
        }
    }
}

impl std::error::Error for Error {}

/// What every builder may need: the options, the mesh's catalog and all resources (for secrets).
pub struct Context<'a> {
    pub options: &'a Options,
    pub catalog: &'a Catalog,
    pub resources: &'a [Resource],
    /// The traffic policies that apply to each service.
    pub policies: &'a Policies,
}

impl Context<'_> {
    pub fn mesh(&self) -> &str {
        &self.catalog.mesh
    }
}

/// Generates the bootstrap for the resources of one mesh.
pub fn generate(checked: &Checked, options: &Options) -> Result<Bootstrap, Error> {
    refuse_invalid(checked)?;
    not_served::refuse(&checked.resources)?;
    let resources = checked.resources.as_slice();
    let mesh = catalog::select_mesh(resources, options.mesh.as_deref()).map_err(Error::Mesh)?;
    let catalog = Catalog::build(resources, &mesh);
    let policies = Policies::build(resources);
    let ctx = Context {
        options,
        catalog: &catalog,
        resources,
        policies: &policies,
    };

    let mut secrets = Secrets::new(options.secrets_dir.as_deref(), options.xds_dir.as_deref());
    let mut clusters = Vec::new();
    for service in &catalog.services {
        clusters.push(cluster::service_cluster(&ctx, &mut secrets, service)?);
    }

    check_authorities(&catalog)?;
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
        admin: Admin {
            address: options.admin.into(),
        },
        stats_config: stats::labels(),
        typed_dns_resolver_config: options.dns_resolver.map(cluster::dns_resolver),
        static_resources: None,
        dynamic_resources: None,
    };
    let files = match &options.xds_dir {
        None => {
            bootstrap.static_resources = Some(StaticResources {
                listeners,
                clusters,
            });
            None
        }
        Some(dir) => {
            bootstrap.node = Some(xds::node(&mesh));
            bootstrap.dynamic_resources = Some(xds::dynamic_resources(dir));
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

/// Invalid resources, and valid ones that one Envoy cluster per service cannot hold, are
/// refused with every report, so the CLI prints what `validate` prints.
fn refuse_invalid(checked: &Checked) -> Result<(), Error> {
    let extra = crate::cluster_rules::check(&checked.resources);
    if checked.is_valid() && extra.iter().all(Vec::is_empty) {
        return Ok(());
    }
    let mut reports = checked.reports.clone();
    for (resource, violations) in checked.resources.iter().zip(extra) {
        if violations.is_empty() {
            continue;
        }
        let same = |r: &&mut Report| {
            r.file == resource.origin.file
                && r.document == resource.origin.document
                && r.name == resource.name
        };
        match reports.iter_mut().find(same) {
            Some(report) => report.violations.extend(violations),
            None => reports.push(Report::of(resource, violations)),
        }
    }
    Err(Error::Invalid(reports))
}

/// Two HTTP services that the filter sends to the same authority: no route can tell them
/// apart.
fn check_authorities(catalog: &Catalog) -> Result<(), Error> {
    let mut owners: BTreeMap<&str, &str> = BTreeMap::new();
    for service in catalog.services.iter().filter(|s| s.protocol.is_http()) {
        if let Some(other) = owners.insert(&service.authority, &service.name) {
            return Err(Error::SameAuthority {
                authority: service.authority.clone(),
                services: [other.to_string(), service.name.clone()],
            });
        }
    }
    Ok(())
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
    for (address, name) in std::iter::once((options.admin, "admin".to_string())).chain(listeners) {
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
        assert_eq!(
            clash(&defaults, &[at("127.0.0.1:9901")]),
            Some(["admin".into(), "outbound:127.0.0.1:9901".into()])
        );
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
