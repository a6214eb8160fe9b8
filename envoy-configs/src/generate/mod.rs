//! Envoy bootstrap generation: validated resources in, a full Envoy v3 bootstrap out.
//!
//! One small builder per Envoy concern, in the manner of Kuma's cluster configurers, each
//! making typed Envoy values ([`crate::envoy`]):
//!
//! - [`cluster`]: one cluster per `kuma.io/service` (endpoints, type, DNS) and the passthrough
//!   cluster;
//! - [`names`]: the names several builders use (a service's cluster, its SNI to the egress);
//! - [`tls`]: TLS origination (`UpstreamTlsContext`) in a cluster's transport socket;
//! - [`protocol`]: HTTP/2 upstream options and ALPN;
//! - [`listener`]: the outbound HTTP proxy listener and one listener per Dataplane outbound;
//! - [`transparent`]: with `--transparent-proxy`, the capture listener, one listener per
//!   VIP:port, the builtin DNS and passthrough or refusal of everything else;
//! - [`http`]: the HTTP connection manager and its routes;
//! - [`wasm`]: the filter, with its plugin configuration;
//! - [`access_log`]: one JSON line on stdout per request or connection;
//! - [`secrets`]: TLS material inline, or in files of its own (`--secrets-dir`);
//! - [`xds`]: listeners and clusters in files Envoy watches, for live updates (`--xds-dir`);
//!   [`sds`]: the clusters' TLS material as SDS secrets there;
//! - [`mesh_tls`]: mTLS inside the mesh (a Dataplane's sidecar and the ZoneEgress), their
//!   certificate and the mesh CA as SDS secrets;
//! - [`to_egress`]: a Dataplane's clusters when its mesh sends external traffic through the
//!   ZoneEgress (`--dataplane`, `routing.zoneEgress`);
//! - [`zone_egress`]: the ZoneEgress's listener, a chain per service by SNI (`--zone-egress`);
//!   [`rbac`]: who may reach each service there, from the traffic permissions;
//! - [`admin`]: Envoy's admin (a Unix socket by default) and the read-only stats listener.
//!
//! What each builder is given is in `context.rs` ([`Options`], [`Context`]); the whole
//! bootstrap is put together in `bootstrap.rs` ([`generate`], [`Bootstrap`]).
//!
//! The cluster, route, listener, `tcp_proxy` and HTTP filter builders call the hooks of the
//! service's traffic policies ([`crate::policy::Configure`]) and know no kind by name.
//!
//! [`generate`] combines them. Rules on the resources, the generator's own limits among them
//! (`cluster_rules`), are checked once, in [`crate::read::check`]: the builders take checked
//! resources and their resolved DataSources, and do not check again.

pub mod access_log;
pub mod admin;
mod bootstrap;
pub mod cluster;
mod context;
pub mod http;
pub mod listener;
pub mod mesh_tls;
pub mod names;
pub mod protocol;
pub mod rbac;
pub mod sds;
pub mod secrets;
pub mod stats;
#[cfg(test)]
pub(crate) mod test_support;
pub mod tls;
pub mod to_egress;
pub mod transparent;
pub mod wasm;
pub mod xds;
pub mod zone_egress;

use std::fmt;
use std::net::SocketAddr;

use external_service_model::Report;

pub use bootstrap::{generate, Bootstrap};
pub use context::{
    Context, Options, Outbound, Upstreams, DEFAULT_LISTEN, DEFAULT_OUTBOUND_ADDRESS,
    DEFAULT_ROUTE_TIMEOUT_SECS, DEFAULT_SYSTEM_CA, DEFAULT_WASM,
};

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
    /// A MeshPassthrough match the transparent proxy cannot hold to what it names.
    MeshPassthrough(String),
    /// The Envoy the role asks for cannot be made: no such Dataplane or ZoneEgress, no
    /// ZoneEgress to send through, no certificate.
    Proxy(String),
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
            Error::Vips(e) | Error::MeshPassthrough(e) | Error::Proxy(e) => f.write_str(e),
            Error::Serialize(e) => write!(f, "cannot write the configuration: {e}"),
        }
    }
}

impl std::error::Error for Error {}
