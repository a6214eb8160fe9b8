//! End to end: resources YAML -> the real `extsvc generate` -> a real Envoy 1.40 with the
//! real filter module -> real TLS / mTLS / HTTP/2 / TCP upstreams (a second Envoy, which also
//! serves DNS for the `*.test` names). Each scenario of the issue is its own test; each test
//! has its own temp dir, upstream and Envoy, and checks what the app got, what the upstream
//! saw, the access log line and the filter's counters.
//!
//! This module holds the setups and checks the tests share; the tests are in one module per
//! theme:
//!
//! - `names`: access by name (`.mesh`, the real name and port, Host headers, endpoints,
//!   `disableHostDNSEntry`).
//! - `tls`: TLS origination: mTLS, trust, SNI and SANs.
//! - `passthrough`: undeclared hosts with passthrough off and on.
//! - `protocols`: Dataplane outbounds, HTTP/2, gRPC, TCP with and without TLS.
//! - `bad_input`: what `generate` and Envoy refuse.
//! - `policy_doc_examples`: the policy document's own resources.
//!
//! Keep a test's files: `EXTSVC_KEEP_TEST_DIRS=1 cargo test -p extsvc --test all e2e::`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use extsvc_testkit as support;

use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};

use external_service_model::contract::denied_details;
use serde_json::Value;
use support::{
    assert_forwarded_line, assert_ok_from, ca_file, dataplane, docs, https_service, mesh, test_dir,
    with_dns, Ca, CertKey, Pki, Response, Sidecar, Upstream, UpstreamBuilder,
};
use tempfile::TempDir;

mod bad_input;
mod mesh_passthrough;
mod names;
mod passthrough;
mod policy_doc_examples;
mod protocols;
mod tls;

// ---------------------------------------------------------------------------------------------
// Setups and checks the tests share
// ---------------------------------------------------------------------------------------------

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    fs::write(&p, text).unwrap();
    p
}

/// The sidecar on the upstream's DNS, passthrough off, with these services and CLI options.
fn sidecar(d: &Path, up: &Upstream, services: &[String], extra: &[OsString]) -> Sidecar {
    let resources: Vec<String> = std::iter::once(mesh(false))
        .chain(services.iter().cloned())
        .collect();
    Sidecar::start(d, up.dns_addr(), &docs(&resources), extra)
}

/// A test dir, the kit's Pki with a server certificate for `names` (and 127.0.0.1), and an
/// upstream with the listeners `listeners` adds and DNS for `names`.
fn setup(
    names: &[&str],
    listeners: impl FnOnce(UpstreamBuilder, &Pki) -> UpstreamBuilder,
) -> (TempDir, Pki, Upstream) {
    let dir = test_dir();
    let p = Pki::for_names(dir.path(), names);
    let up = with_dns(listeners(UpstreamBuilder::new(), &p), names).start(dir.path());
    (dir, p, up)
}

/// [`setup`], and the address `<names[0]>:<port of the upstream listener `listener`>`.
fn setup_at(
    names: &[&str],
    listeners: impl FnOnce(UpstreamBuilder, &Pki) -> UpstreamBuilder,
    listener: &str,
) -> (TempDir, Pki, Upstream, String) {
    let (dir, p, up) = setup(names, listeners);
    let real = format!("{}:{}", names[0], up.port(listener));
    (dir, p, up, real)
}

/// A TLS upstream (listener `tls`, certificate `server`) with DNS for `httpbin.test`, and its
/// real address `httpbin.test:<port>`.
fn httpbin_upstream(d: &Path, server: &CertKey) -> (Upstream, String) {
    let up = with_dns(UpstreamBuilder::new().tls("tls", server), &["httpbin.test"]).start(d);
    let real = format!("httpbin.test:{}", up.port("tls"));
    (up, real)
}

/// A test dir, the kit's Pki and [`httpbin_upstream`] with its server certificate.
fn httpbin() -> (TempDir, Pki, Upstream, String) {
    let dir = test_dir();
    let p = Pki::new(dir.path());
    let (up, real) = httpbin_upstream(dir.path(), &p.server);
    (dir, p, up, real)
}

/// [`httpbin_upstream`], and the sidecar with `httpbin` declared there over TLS (passthrough
/// off), with these more `tls:` lines and CLI options. Returns the upstream (keep it: dropped,
/// it stops), the sidecar and the real address `httpbin.test:<port>`.
fn httpbin_over_tls(
    d: &Path,
    server: &CertKey,
    tls: &[String],
    extra: &[OsString],
) -> (Upstream, Sidecar, String) {
    let (up, real) = httpbin_upstream(d, server);
    let s = sidecar(
        d,
        &up,
        &[https_service("httpbin", "http", &real, tls)],
        extra,
    );
    (up, s, real)
}

/// A 200 from the upstream listener `listener`, which saw this SNI (`None`: none) and Host.
fn assert_reached(r: &Response, listener: &str, sni: Option<&str>, host: &str) {
    assert_ok_from(r, listener);
    assert_eq!(r.header("x-seen-sni"), sni, "{r:?}");
    assert_eq!(r.header("x-seen-host"), Some(host), "{r:?}");
}

/// A refusal's access log line names its reason twice: the `x-external-service-denied` header
/// the filter answered with, and the response code details of its local reply.
fn assert_denied_line(line: &Value, reason: &str) {
    assert_eq!(line["denied"], reason, "{line}");
    assert_eq!(
        line["response_code_details"],
        denied_details(reason),
        "{line}"
    );
}

/// `n` access log lines, each a 200 of `service` for `authority` on `outbound_http`, and the
/// filter's counter for the service at `n`. Returns the lines.
fn assert_forwarded(s: &Sidecar, n: usize, service: &str, authority: &str) -> Vec<Value> {
    let log = s.access_log(n);
    for line in &log {
        assert_forwarded_line(line, "outbound_http", service, authority, 200);
    }
    s.forwarded(service, n as u64);
    log
}

/// A test dir and [`httpbin_over_tls`] with the kit's server certificate, trusting the kit's
/// CA by file.
fn httpbin_trusted() -> (TempDir, Upstream, Sidecar, String) {
    let dir = test_dir();
    let d = dir.path();
    let p = Pki::new(d);
    let (up, s, real) = httpbin_over_tls(d, &p.server, &[ca_file(&p.ca)], &[]);
    (dir, up, s, real)
}

/// A test dir and [`httpbin_over_tls`] with a server certificate for `cert_name` only (no IP
/// SAN) from a test CA the service trusts by file, and `tls_option`, one more `tls:` line.
fn httpbin_with_cert_for(
    cert_name: &str,
    tls_option: &str,
) -> (TempDir, Upstream, Sidecar, String) {
    let dir = test_dir();
    let d = dir.path();
    let p = Pki::for_names(d, &[]);
    let cert = p.ca.server_cert(d, "named", &[cert_name], &[]);
    let (up, s, real) = httpbin_over_tls(d, &cert, &[ca_file(&p.ca), tls_option.to_string()], &[]);
    (dir, up, s, real)
}

/// A test dir and [`httpbin_over_tls`] without caCert, the kit's server certificate verified
/// against the `--system-ca` bundle: an unrelated CA, and the kit's CA when `with_kit_ca`.
fn httpbin_with_system_bundle(with_kit_ca: bool) -> (TempDir, Upstream, Sidecar, String) {
    let dir = test_dir();
    let d = dir.path();
    let p = Pki::new(d);
    let unrelated = Ca::new(d, "unrelated-ca");
    let kit_ca = if with_kit_ca { p.ca.ca_pem() } else { "" };
    let bundle = system_ca(d, "bundle.pem", &format!("{}{kit_ca}", unrelated.ca_pem()));
    let (up, s, real) = httpbin_over_tls(d, &p.server, &[], &bundle);
    (dir, up, s, real)
}

/// The CLI options `--system-ca <d>/<name>`, that file holding `pem`.
fn system_ca(d: &Path, name: &str, pem: &str) -> Vec<OsString> {
    vec!["--system-ca".into(), write(d, name, pem).into()]
}

/// [`setup`] for `names`, and the sidecar (passthrough off) with the one HTTPS service `service`
/// (`protocol`) at `<names[0]>:<port of the upstream listener listener>`, trusting the kit's CA
/// by file. Returns the test dir, the upstream, the sidecar and that address.
fn one_service(
    names: &[&str],
    listeners: impl FnOnce(UpstreamBuilder, &Pki) -> UpstreamBuilder,
    listener: &str,
    service: &str,
    protocol: &str,
) -> (TempDir, Upstream, Sidecar, String) {
    let (dir, p, up, real) = setup_at(names, listeners, listener);
    let s = sidecar(
        dir.path(),
        &up,
        &[https_service(service, protocol, &real, &[ca_file(&p.ca)])],
        &[],
    );
    (dir, up, s, real)
}

/// [`one_service`] on an HTTP/2 upstream (listener `h2`) for `host`.
fn h2_service(host: &str, service: &str, protocol: &str) -> (TempDir, Upstream, Sidecar, String) {
    one_service(
        &[host],
        |b, p| b.h2("h2", &p.server),
        "h2",
        service,
        protocol,
    )
}

/// The sidecar (passthrough off) with `resource`, and a Dataplane whose one outbound goes to
/// `service`. Returns the sidecar and that outbound's port.
fn with_outbound(d: &Path, up: &Upstream, resource: &str, service: &str) -> (Sidecar, u16) {
    let s = Sidecar::start_with_outbounds(d, up.dns_addr(), 1, &[], |ports| {
        docs(&[
            mesh(false),
            resource.to_string(),
            dataplane(ports[0], service),
        ])
    });
    let out = s.outbound[0];
    (s, out)
}

/// One `http://httpbin.mesh/get` through the proxy: it reaches the upstream listener `listener`
/// with this SNI and Host `real`, and is forwarded as `httpbin`'s one request. Returns the
/// response.
fn get_httpbin_once(s: &Sidecar, listener: &str, sni: &str, real: &str) -> Response {
    let r = s.via_proxy("http://httpbin.mesh/get").run();
    assert_reached(&r, listener, Some(sni), real);
    assert_forwarded(s, 1, "httpbin", real);
    r
}

/// The cluster counter `cluster.external_service_<service>.<stat>`, now.
fn cluster_counter(s: &Sidecar, service: &str, stat: &str) -> u64 {
    s.envoy
        .counter(&format!("cluster.external_service_{service}.{stat}"))
}

/// The filter's refusal: `status`, with `reason` in `x-external-service-denied`.
fn assert_refused(r: &Response, status: u16, reason: &str) {
    assert_eq!(r.status, status, "{r:?}");
    assert_eq!(r.header("x-external-service-denied"), Some(reason));
}
