//! MeshExternalService upstreams through the HTTP proxy port, against real Envoy and real
//! local upstreams (the kit's PKI, loopback only), one module per theme:
//!
//! - `tls`: every verification mode, accepted and refused; SNI, `serverName` and
//!   `subjectAltNames`; TLS versions; client certificates from each DataSource; renegotiation.
//! - `routing`: priority failover, protocols (http, http2, grpc; tcp's cluster), the `Host`
//!   the upstream sees, passthrough off, and Kuma's documentation example as written.
//!
//! Each test starts one upstream Envoy (several listeners) and one sidecar serving several
//! MeshExternalServices, each of which reaches one listener.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs;
use std::path::Path;

use external_service_model::contract::{forwarded_stat, UPSTREAM_FAILURE_HEADER};
use extsvc_testkit::{docs, mesh, with_dns, Ca, Pki, Response, Sidecar, Upstream, UpstreamBuilder};
use serde_json::Value;

mod routing;
mod tls;

/// Every MeshExternalService here is matched on this port.
const MATCH_PORT: u16 = 8080;
/// The name every endpoint has (the upstream's DNS resolves it to 127.0.0.1).
const API: &str = "api.test";

/// A MeshExternalService `name` matched on [`MATCH_PORT`] for `protocol`, with these
/// `endpoints` (flow mappings, see [`endpoint`]) and, when `tls` is not empty, a `tls:` block
/// with `enabled: true` and these lines.
fn mes(name: &str, protocol: &str, endpoints: &[String], tls: &[String]) -> String {
    let mut y = format!(
        "type: MeshExternalService\nname: {name}\nmesh: default\nspec:\n  match: {{type: HostnameGenerator, port: {MATCH_PORT}, protocol: {protocol}}}\n  endpoints:\n"
    );
    for e in endpoints {
        y.push_str(&format!("  - {e}\n"));
    }
    if !tls.is_empty() {
        y.push_str("  tls:\n    enabled: true\n");
        for line in tls {
            y.push_str(&format!("    {line}\n"));
        }
    }
    y
}

/// An endpoint at `API:<port>`.
fn endpoint(port: u16) -> String {
    format!("{{address: {API}, port: {port}}}")
}

/// The `verification:` line with these entries.
fn verification(entries: &[String]) -> String {
    format!("verification: {{{}}}", entries.join(", "))
}

/// `caCert` (or another DataSource field) as `inlineString`.
fn inline_string(field: &str, pem: &str) -> String {
    format!(
        "{field}: {{inlineString: {}}}",
        serde_json::to_string(pem).unwrap()
    )
}

/// The kit's Pki for [`API`], another CA, and an upstream with DNS for [`API`] and the
/// listeners `listeners` adds.
fn setup(
    d: &Path,
    listeners: impl FnOnce(UpstreamBuilder, &Pki, &Ca) -> UpstreamBuilder,
) -> (Pki, Ca, Upstream) {
    let p = Pki::for_names(d, &[API]);
    let other = Ca::new(d, "other-ca");
    let up = with_dns(listeners(UpstreamBuilder::new(), &p, &other), &[API]).start(d);
    (p, other, up)
}

/// The sidecar on the upstream's DNS, passthrough off, serving `resources`.
fn serve(d: &Path, up: &Upstream, resources: &[String], extra: &[std::ffi::OsString]) -> Sidecar {
    let all: Vec<String> = std::iter::once(mesh(false))
        .chain(resources.iter().cloned())
        .collect();
    Sidecar::start(d, up.dns_addr(), &docs(&all), extra)
}

/// `GET http://<name>.extsvc.mesh.local:8080<path>` through the proxy port (the hostname
/// Kuma's default HostnameGenerator gives).
fn get(s: &Sidecar, name: &str) -> Response {
    s.via_proxy(&url(name)).run()
}

fn url(name: &str) -> String {
    format!("http://{name}.extsvc.mesh.local:{MATCH_PORT}/")
}

/// A 200 from the upstream listener `listener`.
fn assert_reached(r: &Response, listener: &str, what: &str) {
    assert_eq!(r.status, 200, "{what}: {r:?}");
    assert_eq!(r.header("x-upstream-name"), Some(listener), "{what}: {r:?}");
}

/// A 503 that never reached an upstream, its reason (containing `reason`) in
/// `x-external-service-upstream-failure`.
fn assert_upstream_failure(r: &Response, reason: &str, what: &str) {
    assert_eq!(r.status, 503, "{what}: {r:?}");
    assert_eq!(r.header("x-upstream-name"), None, "{what}: {r:?}");
    let why = r.header(UPSTREAM_FAILURE_HEADER).unwrap_or_default();
    assert!(why.contains(reason), "{what}: {reason:?} not in {r:?}");
}

/// The requests Envoy forwarded to the MeshExternalService `name` reach `n`.
fn assert_forwarded(s: &Sidecar, name: &str, n: u64) {
    s.expect_counter(&forwarded_stat(&format!("external_service_mes_{name}")), n);
}

/// The cluster `external_service_mes_<name>` in the configuration `extsvc generate` wrote to
/// `<d>/envoy.yaml`.
fn generated_cluster(d: &Path, name: &str) -> Value {
    let config: Value =
        serde_yaml_ng::from_str(&fs::read_to_string(d.join("envoy.yaml")).unwrap()).unwrap();
    let cluster = format!("external_service_mes_{name}");
    config["static_resources"]["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == cluster.as_str())
        .unwrap_or_else(|| panic!("no cluster {cluster}"))
        .clone()
}
