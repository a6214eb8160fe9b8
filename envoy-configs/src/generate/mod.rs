//! Envoy bootstrap generation: validated resources in, a full Envoy v3 bootstrap out.
//!
//! One small builder per Envoy concern, in the manner of Kuma's cluster configurers:
//!
//! - [`cluster`]: one cluster per `kuma.io/service` (endpoints, type, DNS) and the passthrough
//!   cluster;
//! - [`tls`]: TLS origination (`UpstreamTlsContext`) in a cluster's transport socket;
//! - [`protocol`]: HTTP/2 upstream options and ALPN;
//! - [`listener`]: the outbound HTTP proxy listener and one listener per Dataplane outbound;
//! - [`http`]: the HTTP connection manager and its routes;
//! - [`wasm`]: the filter, with its plugin configuration;
//! - [`access_log`]: one JSON line on stdout per request or connection.
//!
//! [`generate`] combines them and checks what one Envoy configuration cannot hold.

pub mod access_log;
pub mod cluster;
pub mod http;
pub mod listener;
pub mod protocol;
pub mod secrets;
pub mod tls;
pub mod wasm;

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use external_service_model::catalog::{self, Catalog, Service};
use external_service_model::config::Checked;
use external_service_model::resource::{Resource, Spec};
use external_service_model::Report;
use serde_json::{json, Value};

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
        }
    }
}

/// A generated bootstrap.
#[derive(Debug, Clone, PartialEq)]
pub struct Bootstrap {
    /// The Envoy v3 bootstrap, keys in the order a reader wants them.
    pub config: Value,
    /// Whether a private key is written inline (the file must then be private).
    pub inline_private_keys: bool,
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
    /// A service whose endpoints mix IP addresses and host names (one cluster cannot).
    MixedEndpoints {
        service: String,
    },
    /// A TLS DataSource whose material cannot be had.
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
    /// A Dataplane outbound naming no ExternalService of the mesh.
    UnknownService {
        dataplane: String,
        outbound: usize,
        service: String,
    },
    /// Two listeners on one address.
    SameAddress {
        address: SocketAddr,
        listeners: [String; 2],
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
            Error::MixedEndpoints { service } => write!(
                f,
                "service {service:?}: its endpoints mix IP addresses and host names; one Envoy cluster cannot hold both"
            ),
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
            Error::UnknownService {
                dataplane,
                outbound,
                service,
            } => write!(
                f,
                "Dataplane {dataplane:?}: networking.outbound[{outbound}]: no ExternalService has kuma.io/service {service:?}"
            ),
            Error::SameAddress {
                address,
                listeners: [a, b],
            } => write!(f, "listeners {a:?} and {b:?} both use {address}"),
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
}

impl Context<'_> {
    pub fn mesh(&self) -> &str {
        &self.catalog.mesh
    }
}

/// Generates the bootstrap for the resources of one mesh.
pub fn generate(checked: &Checked, options: &Options) -> Result<Bootstrap, Error> {
    refuse_invalid(checked)?;
    let resources = checked.resources.as_slice();
    let mesh = catalog::select_mesh(resources, options.mesh.as_deref()).map_err(Error::Mesh)?;
    let catalog = Catalog::build(resources, &mesh);
    let ctx = Context {
        options,
        catalog: &catalog,
        resources,
    };

    let mut clusters = Vec::new();
    let mut inline_private_keys = false;
    for service in &catalog.services {
        let built = cluster::service_cluster(&ctx, service)?;
        inline_private_keys |= built.inline_private_key;
        clusters.push(built.cluster);
    }
    if catalog.passthrough {
        clusters.push(cluster::passthrough());
    }

    let mut listeners = vec![listener::outbound_http(&ctx)?];
    for outbound in outbounds(&ctx)? {
        listeners.push(listener::outbound(&ctx, &outbound)?);
    }
    check_addresses(&listeners, options.admin)?;

    let mut bootstrap = json!({
        "admin": {"address": listener::socket_address(options.admin)},
    });
    if let Some(dns) = options.dns_resolver {
        bootstrap["typed_dns_resolver_config"] = cluster::dns_resolver(dns);
    }
    bootstrap["static_resources"] = json!({
        "listeners": listeners,
        "clusters": clusters,
    });
    Ok(Bootstrap {
        config: bootstrap,
        inline_private_keys,
    })
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

/// A Dataplane outbound of the served mesh, resolved to its service.
pub struct Outbound<'a> {
    pub dataplane: &'a str,
    pub address: SocketAddr,
    pub service: &'a Service,
}

fn outbounds<'a>(ctx: &Context<'a>) -> Result<Vec<Outbound<'a>>, Error> {
    let mut found = Vec::new();
    for r in ctx.resources.iter().filter(|r| r.mesh == ctx.mesh()) {
        let Spec::Dataplane(dp) = &r.spec else {
            continue;
        };
        for (i, ob) in dp.networking.outbound.iter().enumerate() {
            let name = ob.service().unwrap_or_default();
            let service = ctx
                .catalog
                .services
                .iter()
                .find(|s| s.name == name)
                .ok_or_else(|| Error::UnknownService {
                    dataplane: r.name.clone(),
                    outbound: i,
                    service: name.to_string(),
                })?;
            let ip = ob.address.as_deref().unwrap_or(DEFAULT_OUTBOUND_ADDRESS);
            // Validation checked both; a bad value is reported rather than trusted.
            let address = format!("{}:{}", bracket(ip), ob.port)
                .parse::<SocketAddr>()
                .map_err(|_| {
                    Error::Invalid(vec![Report::of(
                        r,
                        vec![external_service_model::Violation::new(
                            format!("networking.outbound[{i}]"),
                            "address and port do not make a socket address",
                        )],
                    )])
                })?;
            found.push(Outbound {
                dataplane: &r.name,
                address,
                service,
            });
        }
    }
    Ok(found)
}

fn bracket(ip: &str) -> String {
    if ip.contains(':') {
        format!("[{ip}]")
    } else {
        ip.to_string()
    }
}

/// Envoy refuses to start when two listeners (or the admin) share an address; say which.
fn check_addresses(listeners: &[Value], admin: SocketAddr) -> Result<(), Error> {
    let mut seen: BTreeMap<SocketAddr, String> = BTreeMap::new();
    if admin.port() != 0 {
        seen.insert(admin, "admin".to_string());
    }
    for l in listeners {
        let name = l["name"].as_str().unwrap_or_default().to_string();
        // Port 0 lets the kernel choose: never a clash.
        let Some(address) = listener::address_of(l).filter(|a| a.port() != 0) else {
            continue;
        };
        if let Some(first) = seen.insert(address, name.clone()) {
            return Err(Error::SameAddress {
                address,
                listeners: [first, name],
            });
        }
    }
    Ok(())
}
