//! End to end: resources YAML -> the real `extsvc generate` -> a real Envoy 1.40 with the
//! real filter module -> real TLS / mTLS / HTTP/2 / TCP upstreams (a second Envoy, which also
//! serves DNS for the `*.test` names). Each scenario of the issue is its own test; each test
//! has its own temp dir, upstream and Envoy, and checks what the app got, what the upstream
//! saw, the access log line and the filter's counters.
//!
//! Keep a test's files: `EXTSVC_KEEP_TEST_DIRS=1 cargo test -p envoy-configs --test all e2e::`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use extsvc_testkit as support;

use std::ffi::OsString;
use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use base64::Engine as _;
use external_service_model::contract::{denied_details, forwarded_stat};
use serde_json::Value;
use support::{
    assert_503_without_upstream, assert_forwarded_line, assert_ok_from, assert_tls_failure_line,
    ca_file, dataplane, dedent, docs, free_port, generate, http_service, https_service,
    loopback_ports_bindable, mesh, tcp_echo, test_dir, validate_config, with_dns, Ca, CertKey,
    Curl, Envoy, EnvoyOptions, Pki, Response, Sidecar, Upstream, UpstreamBuilder,
};
use tempfile::TempDir;

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

// ---------------------------------------------------------------------------------------------
// Access by name
// ---------------------------------------------------------------------------------------------

/// `curl -x <envoy> http://httpbin.mesh/get` and `-H "Host: httpbin.mesh"` (also with the
/// service's port, and in another case): the app speaks plain HTTP, the upstream gets TLS
/// with SNI httpbin.test and Host = the real host.
#[test]
fn mesh_name_is_plain_http_for_the_app_and_tls_with_the_real_host_upstream() {
    let (_dir, up, s, real) = httpbin_trusted();
    let port = up.port("tls");

    let responses = [
        s.via_proxy("http://httpbin.mesh/get").run(),
        s.with_host("httpbin.mesh", "/get").run(),
        s.via_proxy(&format!("http://httpbin.mesh:{port}/get"))
            .run(),
        s.with_host("HttpBin.MESH", "/get").run(),
        s.via_proxy(&format!("http://httpbin.test:{port}/get"))
            .run(),
    ];
    for r in &responses {
        assert_reached(r, "tls", Some("httpbin.test"), &real);
        assert_eq!(r.header("x-seen-path"), Some("/get"), "{r:?}");
        assert_eq!(r.header("x-seen-tls-version"), Some("TLSv1.3"), "{r:?}");
        assert_eq!(r.header("x-seen-protocol"), Some("HTTP/1.1"), "{r:?}");
        // The app's side stays plain HTTP/1.1.
        assert_eq!(r.http_version, "1.1");
    }

    let log = assert_forwarded(&s, 5, "httpbin", &real);
    for line in &log {
        assert_eq!(line["upstream_host"], format!("127.0.0.1:{port}"), "{line}");
        assert_eq!(line["path"], "/get", "{line}");
    }
    // The rewritten authority is one; what each app asked for is told apart.
    let requested: Vec<&str> = log
        .iter()
        .map(|l| l["requested_authority"].as_str().unwrap_or("-"))
        .collect();
    // The app that named the real authority itself needs no rewrite, and gets no filter state.
    let mesh_port = format!("httpbin.mesh:{port}");
    assert_eq!(
        requested,
        [
            "httpbin.mesh",
            "httpbin.mesh",
            &mesh_port,
            "HttpBin.MESH",
            "-"
        ]
    );
    // Prometheus sees the service as a label of its cluster's stats, not as part of the
    // metric's name.
    let (_, prometheus) = s.envoy.admin_get("/stats/prometheus").unwrap();
    let forwarded: Vec<&str> = prometheus
        .lines()
        .filter(|l| {
            l.starts_with("envoy_cluster_upstream_rq_completed{")
                && l.contains("external_service=\"httpbin\"")
        })
        .collect();
    assert_eq!(forwarded.len(), 1, "{prometheus}");
    assert!(forwarded[0].ends_with("} 5"), "{prometheus}");
    assert!(
        prometheus.contains("\nexternal_service_denied{reason=\"undeclared-host\"} 0\n"),
        "{prometheus}"
    );
    s.denied("undeclared-host", 0);
    // One TLS connection, kept open and used by all five requests.
    assert_eq!(cluster_counter(&s, "httpbin", "ssl.handshake"), 1);
    assert_eq!(cluster_counter(&s, "httpbin", "upstream_rq_200"), 5);
}

/// The doc's own shape, `httpbin.org:443`: with the upstream really on port 443 (and a plain
/// one on port 80), the port is left out of Host, as the scheme's default: `Host:
/// httpbin.test` over TLS, `Host: plain.test` without. `curl httpbin.mesh` (port 80) and the
/// real name on port 443 both speak plain HTTP to Envoy.
#[test]
fn default_ports_are_left_out_of_the_host_header() {
    let Some(ip) = loopback_ports_bindable(&[443, 80]) else {
        eprintln!("SKIPPED: cannot bind ports 443 and 80 on a loopback address (not root?)");
        return;
    };
    let dir = test_dir();
    let d = dir.path();
    let p = Pki::new(d);
    let up = UpstreamBuilder::new()
        .tls("tls", &p.server)
        .at(SocketAddr::new(ip, 443))
        .plain("plain")
        .at(SocketAddr::new(ip, 80))
        .dns("httpbin.test", &[ip])
        .dns("plain.test", &[ip])
        .start(d);
    let s = sidecar(
        d,
        &up,
        &[
            https_service("httpbin", "http", "httpbin.test:443", &[ca_file(&p.ca)]),
            http_service("plainsvc", "plain.test:80"),
        ],
        &[],
    );

    for url in [
        "http://httpbin.mesh/get",
        "http://httpbin.test:443/get",
        "http://httpbin.test/get",
    ] {
        assert_reached(
            &s.via_proxy(url).run(),
            "tls",
            Some("httpbin.test"),
            "httpbin.test",
        );
    }
    for url in ["http://plainsvc.mesh/get", "http://plain.test/get"] {
        assert_reached(&s.via_proxy(url).run(), "plain", None, "plain.test");
    }
    let log = s.access_log(5);
    for line in &log[..3] {
        assert_forwarded_line(line, "outbound_http", "httpbin", "httpbin.test", 200);
        assert_eq!(line["upstream_host"], format!("{ip}:443"), "{line}");
    }
    for line in &log[3..] {
        assert_forwarded_line(line, "outbound_http", "plainsvc", "plain.test", 200);
        assert_eq!(line["upstream_host"], format!("{ip}:80"), "{line}");
    }
    s.forwarded("httpbin", 3);
    s.forwarded("plainsvc", 2);
}

/// The real name on the service's port reaches it (proxy form and Host header), and so does
/// the real name without a port (port 80) when no other service claims it.
#[test]
fn real_name_on_the_service_port_reaches_the_service() {
    let (_dir, _up, s, real) = httpbin_trusted();

    for r in [
        s.via_proxy(&format!("http://{real}/anything")).run(),
        s.with_host(&real, "/anything").run(),
        s.via_proxy("http://httpbin.test/anything").run(),
    ] {
        assert_reached(&r, "tls", Some("httpbin.test"), &real);
        assert_eq!(r.header("x-seen-path"), Some("/anything"), "{r:?}");
    }
    assert_forwarded(&s, 3, "httpbin", &real);
}

/// One host on two ports declared as two services: each port reaches its own service (and
/// upstream), each `.mesh` name too; the bare host is ambiguous and refused.
#[test]
fn same_host_on_two_ports_is_two_services() {
    let (dir, p, up) = setup(&["httpbin.test"], |b, p| {
        b.tls("first", &p.server).tls("second", &p.server)
    });
    let d = dir.path();
    let a = format!("httpbin.test:{}", up.port("first"));
    let b = format!("httpbin.test:{}", up.port("second"));
    let s = sidecar(
        d,
        &up,
        &[
            https_service("httpbin-a", "http", &a, &[ca_file(&p.ca)]),
            https_service("httpbin-b", "http", &b, &[ca_file(&p.ca)]),
        ],
        &[],
    );

    for (url, upstream, host) in [
        (format!("http://{a}/"), "first", &a),
        (format!("http://{b}/"), "second", &b),
        ("http://httpbin-a.mesh/".to_string(), "first", &a),
        ("http://httpbin-b.mesh/".to_string(), "second", &b),
    ] {
        assert_reached(
            &s.via_proxy(&url).run(),
            upstream,
            Some("httpbin.test"),
            host,
        );
    }
    assert_refused(
        &s.via_proxy("http://httpbin.test/").run(),
        403,
        "ambiguous-host",
    );

    let log = s.access_log(5);
    assert_forwarded_line(&log[0], "outbound_http", "httpbin-a", &a, 200);
    assert_forwarded_line(&log[1], "outbound_http", "httpbin-b", &b, 200);
    assert_forwarded_line(&log[2], "outbound_http", "httpbin-a", &a, 200);
    assert_forwarded_line(&log[3], "outbound_http", "httpbin-b", &b, 200);
    assert_denied_line(&log[4], "ambiguous-host");
    assert_eq!(log[4]["response_code"], 403, "{}", log[4]);
    assert!(log[4]["upstream_cluster"].is_null(), "{}", log[4]);
    s.forwarded("httpbin-a", 2);
    s.forwarded("httpbin-b", 2);
    s.denied("ambiguous-host", 1);
}

// ---------------------------------------------------------------------------------------------
// TLS origination: mTLS, trust, names
// ---------------------------------------------------------------------------------------------

/// mTLS: the upstream requires a client certificate; the one from the resources (clientCert
/// from a Secret, clientKey from a file) is presented and the upstream sees its subject.
#[test]
fn mtls_presents_the_client_certificate() {
    let (dir, p, up, real) = setup_at(
        &["httpbin.test"],
        |b, p| b.mtls("mtls", &p.server, &p.ca),
        "mtls",
    );
    let d = dir.path();
    let b64 = base64::engine::general_purpose::STANDARD.encode(&p.client.cert_pem);
    let s = sidecar(
        d,
        &up,
        &[
            dedent(&format!(
                "
                type: Secret
                mesh: default
                name: httpbin-client-cert
                data: {b64}
                "
            )),
            https_service(
                "httpbin",
                "http",
                &real,
                &[
                    ca_file(&p.ca),
                    "clientCert: {secret: httpbin-client-cert}".to_string(),
                    format!("clientKey: {{file: \"{}\"}}", p.client.key_path.display()),
                ],
            ),
        ],
        &[],
    );

    let r = get_httpbin_once(&s, "mtls", "httpbin.test", &real);
    assert_eq!(
        r.header("x-seen-peer-subject"),
        Some("CN=client-app"),
        "{r:?}"
    );
}

/// mTLS upstream, no clientCert in the resource: the handshake fails and the app gets 503.
#[test]
fn mtls_without_client_certificate_fails_with_503() {
    let (_dir, up, s, real) = one_service(
        &["httpbin.test"],
        |b, p| b.mtls("mtls", &p.server, &p.ca),
        "mtls",
        "httpbin",
        "http",
    );

    let r = s.via_proxy("http://httpbin.mesh/get").run();
    assert_503_without_upstream(&r);
    let line = &s.access_log(1)[0];
    assert_forwarded_line(line, "outbound_http", "httpbin", &real, 503);
    // With TLS 1.3 the client's side of the handshake is done before the server checks the
    // (empty) certificate; its alert then ends the connection: `UC`, "connection termination"
    // (`UF` with TLS 1.2, see ENVOY_FACTS.md a). No request reached the upstream.
    assert_eq!(line["response_flags"], "UC", "{line}");
    assert_eq!(
        line["response_code_details"],
        "upstream_reset_before_response_started{connection_termination}",
        "{line}"
    );
    s.forwarded("httpbin", 1);
    // The upstream refused the handshake for want of a client certificate.
    assert_eq!(
        up.envoy
            .counter("listener.127.0.0.1_0.ssl.fail_verify_no_cert"),
        1
    );
    assert_eq!(up.envoy.counter("http.mtls.downstream_rq_total"), 0);
    assert_eq!(cluster_counter(&s, "httpbin", "ssl.connection_error"), 1);
}

/// A caCert that did not sign the server certificate: 503 five times out of five, each with
/// the TLS failure in the access log; the right CA beside it (as `inlineString`): 200.
#[test]
fn wrong_ca_fails_every_time_and_the_right_ca_succeeds() {
    let dir = test_dir();
    let d = dir.path();
    let names = ["httpbin.test", "good.test"];
    let p = Pki::for_names(d, &names);
    let other = Ca::new(d, "other-ca");
    let up = with_dns(UpstreamBuilder::new().tls("tls", &p.server), &names).start(d);
    let port = up.port("tls");
    let s = sidecar(
        d,
        &up,
        &[
            https_service(
                "httpbin",
                "http",
                &format!("httpbin.test:{port}"),
                &[ca_file(&other)],
            ),
            https_service(
                "good",
                "http",
                &format!("good.test:{port}"),
                &[format!(
                    "caCert: {{inlineString: {}}}",
                    serde_json::to_string(p.ca.ca_pem()).unwrap()
                )],
            ),
        ],
        &[],
    );

    for _ in 0..5 {
        assert_503_without_upstream(&s.via_proxy("http://httpbin.mesh/get").run());
    }
    assert_ok_from(&s.via_proxy("http://good.mesh/get").run(), "tls");

    let log = s.access_log(6);
    for line in &log[..5] {
        assert_tls_failure_line(line, "httpbin", "CERTIFICATE_VERIFY_FAILED");
        assert_tls_failure_line(line, "httpbin", "unable_to_get_local_issuer_certificate");
    }
    assert_forwarded_line(
        &log[5],
        "outbound_http",
        "good",
        &format!("good.test:{port}"),
        200,
    );
    s.forwarded("httpbin", 5);
    s.forwarded("good", 1);
    assert_eq!(cluster_counter(&s, "httpbin", "ssl.fail_verify_error"), 5);
}

/// No caCert: the server is verified against the bundle given by `--system-ca`.
#[test]
fn no_ca_cert_verifies_against_the_system_ca_bundle() {
    let (_dir, _up, s, real) = httpbin_with_system_bundle(true);
    get_httpbin_once(&s, "tls", "httpbin.test", &real);
}

/// No caCert, and the `--system-ca` bundle lacks the server's CA: refused.
#[test]
fn no_ca_cert_is_refused_when_the_system_bundle_lacks_the_ca() {
    let (_dir, _up, s, _) = httpbin_with_system_bundle(false);

    assert_503_without_upstream(&s.via_proxy("http://httpbin.mesh/get").run());
    let line = &s.access_log(1)[0];
    assert_tls_failure_line(line, "httpbin", "unable_to_get_local_issuer_certificate");
    s.forwarded("httpbin", 1);
    assert_eq!(cluster_counter(&s, "httpbin", "ssl.fail_verify_error"), 1);
}

/// A server certificate for another name with `skipHostnameVerification: true`: accepted (the
/// chain is still verified against the caCert; without it the SAN check refuses it, see
/// `faults::bad_server_certificates_fail_closed`).
#[test]
fn skip_hostname_verification_accepts_a_san_mismatch() {
    let (_dir, _up, s, real) =
        httpbin_with_cert_for("elsewhere.test", "skipHostnameVerification: true");
    get_httpbin_once(&s, "tls", "httpbin.test", &real);
}

/// `serverName` is the SNI the upstream sees, and the name its certificate is checked
/// against; Host stays the real address.
#[test]
fn server_name_sets_the_sni() {
    let (_dir, _up, s, real) =
        httpbin_with_cert_for("api.internal.test", "serverName: api.internal.test");
    get_httpbin_once(&s, "tls", "api.internal.test", &real);
}

// ---------------------------------------------------------------------------------------------
// Passthrough
// ---------------------------------------------------------------------------------------------

/// Passthrough off: an undeclared host gets the filter's 403 and never reaches the upstream.
#[test]
fn passthrough_off_refuses_an_undeclared_host() {
    let (_dir, up, s, real) = one_service(
        &["httpbin.test", "plain.test"],
        |b, p| b.tls("tls", &p.server).plain("plain"),
        "tls",
        "httpbin",
        "http",
    );
    let undeclared = format!("plain.test:{}", up.port("plain"));

    let r = s.via_proxy(&format!("http://{undeclared}/get")).run();
    assert_refused(&r, 403, "undeclared-host");
    assert!(
        r.body
            .contains(&format!("host \"{undeclared}\" is not declared")),
        "{}",
        r.body
    );
    // The declared service still works beside it.
    assert_ok_from(&s.via_proxy("http://httpbin.mesh/").run(), "tls");
    // An authority that is no host[:port] is refused as such.
    assert_refused(
        &s.with_host("httpbin.mesh:99999", "/").run(),
        400,
        "bad-authority",
    );

    let log = s.access_log(3);
    assert_denied_line(&log[0], "undeclared-host");
    assert_eq!(log[0]["response_code"], 403, "{}", log[0]);
    assert_eq!(log[0]["authority"], undeclared, "{}", log[0]);
    assert!(log[0]["external_service"].is_null(), "{}", log[0]);
    assert!(log[0]["upstream_cluster"].is_null(), "{}", log[0]);
    assert_forwarded_line(&log[1], "outbound_http", "httpbin", &real, 200);
    assert_denied_line(&log[2], "bad-authority");
    assert_eq!(log[2]["response_code"], 400, "{}", log[2]);
    s.denied("undeclared-host", 1);
    s.denied("bad-authority", 1);
    s.forwarded("httpbin", 1);
    assert_eq!(up.envoy.counter("http.plain.downstream_rq_total"), 0);
}

/// Passthrough on: an undeclared local plain-HTTP upstream is reached as it is, by name and
/// by IP; declared services are still forwarded.
#[test]
fn passthrough_on_reaches_an_undeclared_plain_http_upstream() {
    let (dir, p, up, real) = setup_at(
        &["httpbin.test", "plain.test"],
        |b, p| b.tls("tls", &p.server).plain("plain"),
        "tls",
    );
    let d = dir.path();
    let plain = up.port("plain");
    let s = Sidecar::start(
        d,
        up.dns_addr(),
        &docs(&[
            mesh(true),
            https_service("httpbin", "http", &real, &[ca_file(&p.ca)]),
        ]),
        &[],
    );

    for host in [format!("plain.test:{plain}"), format!("127.0.0.1:{plain}")] {
        let r = s.via_proxy(&format!("http://{host}/get")).run();
        assert_reached(&r, "plain", None, &host);
        assert_eq!(r.header("x-external-service-denied"), None);
    }
    assert_ok_from(&s.via_proxy("http://httpbin.mesh/").run(), "tls");

    let log = s.access_log(3);
    for line in &log[..2] {
        assert_eq!(line["upstream_cluster"], "passthrough", "{line}");
        assert_eq!(
            line["upstream_host"],
            format!("127.0.0.1:{plain}"),
            "{line}"
        );
        assert_eq!(line["response_code"], 200, "{line}");
        assert_eq!(line["response_flags"], "-", "{line}");
        assert!(line["external_service"].is_null(), "{line}");
        assert!(line["denied"].is_null(), "{line}");
    }
    assert_forwarded_line(&log[2], "outbound_http", "httpbin", &real, 200);
    s.expect_counter(&forwarded_stat("passthrough"), 2);
    s.forwarded("httpbin", 1);
    s.denied("undeclared-host", 0);
}

// ---------------------------------------------------------------------------------------------
// Dataplane outbounds, protocols
// ---------------------------------------------------------------------------------------------

/// The policy doc's Dataplane: `127.0.0.1:<outbound port>` reaches httpbin over TLS,
/// whatever Host the app sends.
#[test]
fn dataplane_outbound_reaches_httpbin() {
    let (dir, p, up, real) = httpbin();
    let d = dir.path();
    let (s, out) = with_outbound(
        d,
        &up,
        &https_service("httpbin", "http", &real, &[ca_file(&p.ca)]),
        "httpbin",
    );
    let listener = format!("outbound:127.0.0.1:{out}");
    assert_eq!(s.envoy.listener_port(&listener), out);

    let direct = Curl::get(format!("http://127.0.0.1:{out}/get")).run();
    let other_host = Curl::get(format!("http://127.0.0.1:{out}/get"))
        .host("whatever.example")
        .run();
    for r in [&direct, &other_host] {
        assert_reached(r, "tls", Some("httpbin.test"), &real);
    }
    for line in s.access_log(2) {
        assert_forwarded_line(&line, &listener, "httpbin", &real, 200);
    }
    s.forwarded("httpbin", 2);
}

/// `kuma.io/protocol: http2`: the app speaks HTTP/1.1, the upstream sees HTTP/2 (ALPN h2).
#[test]
fn http2_service_reaches_the_upstream_over_http2() {
    let (_dir, _up, s, real) = h2_service("grpcbin.test", "grpcbin", "http2");

    let r = s.via_proxy("http://grpcbin.mesh/get").run();
    assert_reached(&r, "h2", Some("grpcbin.test"), &real);
    assert_eq!(r.header("x-seen-protocol"), Some("HTTP/2"), "{r:?}");
    assert_eq!(r.http_version, "1.1");
    let line = &s.access_log(1)[0];
    assert_forwarded_line(line, "outbound_http", "grpcbin", &real, 200);
    assert_eq!(line["protocol"], "HTTP/1.1", "{line}");
    s.forwarded("grpcbin", 1);
    assert_eq!(cluster_counter(&s, "grpcbin", "upstream_cx_http2_total"), 1);
}

/// `kuma.io/protocol: tcp` with TLS off: a TLS-speaking client goes through the Dataplane
/// outbound's TCP listener end to end (the upstream sees the client's own SNI and Host);
/// the same service asked for through the HTTP listener is refused as not HTTP.
#[test]
fn tcp_service_without_tls_carries_the_clients_tls_end_to_end() {
    let (dir, p, up, real) = setup_at(&["secure.test"], |b, p| b.tls("tls", &p.server), "tls");
    let d = dir.path();
    let port = up.port("tls");
    let secure = dedent(&format!(
        "
        type: ExternalService
        mesh: default
        name: secure
        tags:
          kuma.io/service: secure
          kuma.io/protocol: tcp
        networking:
          address: {real}
          tls:
            enabled: false
        "
    ));
    let (s, out) = with_outbound(d, &up, &secure, "secure");
    let listener = format!("outbound:127.0.0.1:{out}");

    let r = Curl::get(format!("https://{real}/over-tls"))
        .connect_to("secure.test", port, "127.0.0.1", out)
        .cacert(p.ca.ca_path())
        .run();
    assert_reached(&r, "tls", Some("secure.test"), &real);
    assert_eq!(r.header("x-seen-path"), Some("/over-tls"), "{r:?}");

    assert_refused(&s.via_proxy("http://secure.mesh/").run(), 421, "not-http");

    let log = s.access_log(2);
    let tcp = log
        .iter()
        .find(|l| l["listener"] == listener.as_str())
        .unwrap_or_else(|| panic!("no TCP access log line: {log:?}"));
    assert_eq!(tcp["external_service"], "secure", "{tcp}");
    assert_eq!(tcp["upstream_cluster"], "external_service_secure", "{tcp}");
    assert_eq!(tcp["upstream_host"], format!("127.0.0.1:{port}"), "{tcp}");
    assert_eq!(tcp["response_flags"], "-", "{tcp}");
    assert!(tcp["upstream_transport_failure_reason"].is_null(), "{tcp}");
    // Every byte of the client's TLS went to the upstream and back, as it was.
    s.expect_counter(
        "cluster.external_service_secure.upstream_cx_tx_bytes_total",
        tcp["bytes_received"].as_u64().unwrap(),
    );
    s.expect_counter(
        "cluster.external_service_secure.upstream_cx_rx_bytes_total",
        tcp["bytes_sent"].as_u64().unwrap(),
    );
    let http = log
        .iter()
        .find(|l| l["listener"] == "outbound_http")
        .unwrap_or_else(|| panic!("no HTTP access log line: {log:?}"));
    assert_denied_line(http, "not-http");
    assert_eq!(http["response_code"], 421, "{http}");
    s.denied("not-http", 1);
    // Envoy made no TLS of its own: the cluster has no TLS transport socket.
    assert_eq!(cluster_counter(&s, "secure", "ssl.handshake"), 0);
    assert_eq!(cluster_counter(&s, "secure", "upstream_cx_total"), 1);
}

// ---------------------------------------------------------------------------------------------
// Bad input
// ---------------------------------------------------------------------------------------------

/// Invalid resources: `extsvc generate` exits 1 with the report `validate` gives (every
/// violation of the invalid resource with the line and column of its field, the valid ones
/// named as such) and writes nothing.
#[test]
fn generate_refuses_invalid_resources_and_writes_nothing() {
    let dir = test_dir();
    let d = dir.path();
    let resources = docs(&[
        mesh(false),
        dedent(
            "
            type: ExternalService
            mesh: default
            name: broken
            tags:
              kuma.io/protocol: websocket
            networking:
              address: http://httpbin.test:8080
            ",
        ),
        http_service("fine", "fine.test:80"),
    ]);
    let cli = generate(d, &resources, free_port(), None, &[]);
    assert_eq!(cli.code, Some(1), "{cli:?}");
    let file = d.join("resources.yaml");
    let file = file.display();
    assert_eq!(
        cli.stderr,
        format!(
            "{file}: Mesh \"default\" (mesh \"default\"): valid
{file}: ExternalService \"broken\" (mesh \"default\"): 6 violations
  networking.address: unable to parse address (line 14, column 3)
  networking.address: address has to be a valid IP address or a domain name (line 14, column 3)
  networking.address: unable to parse port in address (line 14, column 3)
  networking.address: port must be in the range [1, 65535] (line 14, column 3)
  tags[\"kuma.io/protocol\"]: tag \"kuma.io/protocol\" has an invalid value \"websocket\". \
Allowed values: grpc, http, http2, kafka, tcp (line 12, column 3)
  tags: mandatory tag \"kuma.io/service\" is missing (line 11, column 1)
{file}: ExternalService \"fine\" (mesh \"default\"): valid
extsvc: invalid resources: no configuration written
"
        ),
        "{cli:?}"
    );
    assert_eq!(cli.stdout, "", "{cli:?}");
    // Neither the output nor a temporary file beside it.
    let written: Vec<_> = fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("envoy.yaml"))
        .collect();
    assert_eq!(written, Vec::<String>::new());
}

/// A generated configuration whose plugin configuration is corrupted (one resource made
/// invalid behind the generator's back): `envoy --mode validate` refuses it, and Envoy refuses
/// to start with its log naming the violation. The generator's own stanza, FAIL_RELOAD: a
/// failing `on_configure` stops Envoy whatever the failure policy (ENVOY_FACTS.md, e).
#[test]
fn envoy_refuses_a_generated_config_with_an_invalid_plugin_configuration() {
    let (dir, p, up, real) = httpbin();
    let d = dir.path();
    let resources = docs(&[
        mesh(false),
        https_service("httpbin", "http", &real, &[ca_file(&p.ca)]),
    ]);
    let cli = generate(d, &resources, free_port(), up.dns_addr(), &[]);
    assert_eq!(cli.code, Some(0), "{cli:?}");
    let text = fs::read_to_string(d.join("envoy.yaml")).unwrap();
    let mut config: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).unwrap();

    let wasm = &mut config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
        ["typed_config"]["http_filters"][0]["typed_config"]["config"];
    assert_eq!(wasm["failure_policy"].as_str(), Some("FAIL_RELOAD"));
    let value = &mut wasm["configuration"]["value"];
    let mut plugin: Value = serde_json::from_str(value.as_str().unwrap()).unwrap();
    let service = plugin["resources"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|r| r["type"] == "ExternalService")
        .unwrap();
    service["tags"]["kuma.io/protocol"] = Value::from("websocket");
    *value = serde_yaml_ng::Value::from(plugin.to_string());

    let corrupted = serde_yaml_ng::to_string(&config).unwrap();
    let violation = "ExternalService \"httpbin\" (mesh \"default\"): tags[\"kuma.io/protocol\"]: \
                     tag \"kuma.io/protocol\" has an invalid value \"websocket\"";
    let validation = validate_config(&write(d, "corrupted-validate.yaml", &corrupted));
    assert!(!validation.ok, "{}", validation.output);
    for part in [violation, "Unable to create Wasm plugin external_service"] {
        assert!(validation.output.contains(part), "{}", validation.output);
    }
    let started = Instant::now();
    let error = match Envoy::try_start(d, "corrupted", &corrupted, &EnvoyOptions::default()) {
        Ok(_) => panic!("Envoy started with an invalid plugin configuration"),
        Err(e) => e,
    };
    assert!(error.contains(violation), "{error}");
    assert!(
        error.contains("Unable to create Wasm plugin external_service"),
        "{error}"
    );
    assert!(started.elapsed() < Duration::from_secs(15));
}

// ---------------------------------------------------------------------------------------------
// The policy document's own resources
// ---------------------------------------------------------------------------------------------

/// `external-service-policy.md`, Universal tab: the `httpbin` ExternalService as written (only
/// the address points at a local HTTPS upstream; no caCert, so it is verified against the
/// system store, here a bundle with the test CA) and the Dataplane (another outbound port).
/// As the document says: `curl httpbin.mesh` (port 80) speaks plain HTTP and gets the HTTPS
/// service, the real name and port work, and the Dataplane outbound reaches httpbin.
#[test]
fn policy_doc_universal_example_works_as_documented() {
    let (dir, p, up, real) = httpbin();
    let d = dir.path();
    let bundle = system_ca(d, "system-ca.pem", p.ca.ca_pem());
    let s = Sidecar::start_with_outbounds(d, up.dns_addr(), 1, &bundle, |ports| {
        docs(&[
            dedent(&format!(
                "
                type: ExternalService
                mesh: default
                name: httpbin
                tags:
                  kuma.io/service: httpbin
                  kuma.io/protocol: http
                networking:
                  address: {real}
                  tls:
                    enabled: true
                "
            )),
            dataplane(ports[0], "httpbin"),
        ])
    });
    let out = s.outbound[0];

    for r in [
        s.via_proxy("http://httpbin.mesh/get").run(),
        s.with_host("httpbin.mesh:80", "/get").run(),
        s.via_proxy(&format!("http://{real}/get")).run(),
        Curl::get(format!("http://127.0.0.1:{out}/get")).run(),
    ] {
        assert_reached(&r, "tls", Some("httpbin.test"), &real);
        assert_eq!(r.header("x-seen-tls-version"), Some("TLSv1.3"), "{r:?}");
    }
    let log = s.access_log(4);
    for line in &log[..3] {
        assert_forwarded_line(line, "outbound_http", "httpbin", &real, 200);
    }
    assert_forwarded_line(
        &log[3],
        &format!("outbound:127.0.0.1:{out}"),
        "httpbin",
        &real,
        200,
    );
    s.forwarded("httpbin", 4);
}

/// The Kubernetes tab of the same document: the same service, the same behaviour.
#[test]
fn policy_doc_kubernetes_example_works_as_documented() {
    let (dir, p, up, real) = httpbin();
    let d = dir.path();
    let bundle = system_ca(d, "system-ca.pem", p.ca.ca_pem());
    let s = Sidecar::start(
        d,
        up.dns_addr(),
        &dedent(&format!(
            "
            apiVersion: kuma.io/v1alpha1
            kind: ExternalService
            mesh: default
            metadata:
              namespace: default
              name: httpbin
            spec:
              tags:
                kuma.io/service: httpbin
                kuma.io/protocol: http
              networking:
                address: {real}
                tls:
                  enabled: true
            "
        )),
        &bundle,
    );

    for r in [
        s.via_proxy("http://httpbin.mesh/get").run(),
        s.via_proxy(&format!("http://{real}/get")).run(),
    ] {
        assert_reached(&r, "tls", Some("httpbin.test"), &real);
    }
    assert_forwarded(&s, 2, "httpbin", &real);
}

// ---------------------------------------------------------------------------------------------
// More shapes of services
// ---------------------------------------------------------------------------------------------

/// An IP address: a STATIC cluster, no SNI sent, the certificate checked for the IP SAN
/// (caCert given as `inline` base64).
#[test]
fn ip_address_service_sends_no_sni_and_checks_the_ip_san() {
    let (dir, p, up, _) = httpbin();
    let d = dir.path();
    let real = format!("127.0.0.1:{}", up.port("tls"));
    let s = sidecar(
        d,
        &up,
        &[https_service(
            "byip",
            "http",
            &real,
            &[format!(
                "caCert: {{inline: {}}}",
                base64::engine::general_purpose::STANDARD.encode(p.ca.ca_pem())
            )],
        )],
        &[],
    );

    for r in [
        s.via_proxy("http://byip.mesh/").run(),
        s.via_proxy(&format!("http://{real}/")).run(),
    ] {
        assert_reached(&r, "tls", None, &real);
    }
    assert_forwarded(&s, 2, "byip", &real);
}

/// Two ExternalServices with one `kuma.io/service` and different hosts: one cluster, each
/// endpoint with its own SNI (and SAN check), Host following the endpoint chosen.
#[test]
fn one_service_with_endpoints_on_two_hosts() {
    let dir = test_dir();
    let d = dir.path();
    let names = ["one.test", "two.test"];
    let ca = Ca::new(d, "test-ca");
    let one = ca.server_cert(d, "one", &["one.test"], &[]);
    let two = ca.server_cert(d, "two", &["two.test"], &[]);
    let up = with_dns(
        UpstreamBuilder::new().tls("one", &one).tls("two", &two),
        &names,
    )
    .start(d);
    let (p1, p2) = (up.port("one"), up.port("two"));
    let s = sidecar(
        d,
        &up,
        &[
            https_service("pair-1", "http", &format!("one.test:{p1}"), &[ca_file(&ca)])
                .replace("kuma.io/service: pair-1", "kuma.io/service: pair"),
            https_service("pair-2", "http", &format!("two.test:{p2}"), &[ca_file(&ca)])
                .replace("kuma.io/service: pair-2", "kuma.io/service: pair"),
        ],
        &[],
    );

    let mut seen = std::collections::BTreeMap::new();
    for _ in 0..6 {
        let r = s.via_proxy("http://pair.mesh/").run();
        assert_eq!(r.status, 200, "{r:?}");
        let name = r.header("x-upstream-name").unwrap().to_string();
        let sni = r.header("x-seen-sni").unwrap_or("-").to_string();
        let host = r.header("x-seen-host").unwrap_or("-").to_string();
        seen.insert(name, (sni, host));
    }
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(seen["one"], ("one.test".into(), format!("one.test:{p1}")));
    assert_eq!(seen["two"], ("two.test".into(), format!("two.test:{p2}")));
    for line in s.access_log(6) {
        assert_eq!(line["external_service"], "pair", "{line}");
        assert_eq!(line["upstream_cluster"], "external_service_pair", "{line}");
        assert_eq!(line["response_code"], 200, "{line}");
    }
    s.forwarded("pair", 6);
}

/// `kuma.io/protocol: grpc`: gRPC requests go to the upstream over HTTP/2; anything else is
/// refused by the filter (415) before it leaves.
#[test]
fn grpc_service_takes_only_grpc_requests() {
    let (_dir, _up, s, real) = h2_service("grpc.test", "grpcsvc", "grpc");

    let r = s
        .via_proxy("http://grpcsvc.mesh/pkg.Service/Method")
        .header("content-type", "application/grpc")
        .data("")
        .run();
    assert_reached(&r, "h2", Some("grpc.test"), &real);
    assert_eq!(r.header("x-seen-protocol"), Some("HTTP/2"), "{r:?}");
    assert_eq!(r.header("x-seen-method"), Some("POST"), "{r:?}");
    assert_refused(&s.via_proxy("http://grpcsvc.mesh/").run(), 415, "not-grpc");

    let log = s.access_log(2);
    assert_forwarded_line(&log[0], "outbound_http", "grpcsvc", &real, 200);
    assert_denied_line(&log[1], "not-grpc");
    assert!(log[1]["upstream_cluster"].is_null(), "{}", log[1]);
    s.forwarded("grpcsvc", 1);
    s.denied("not-grpc", 1);
    assert_eq!(cluster_counter(&s, "grpcsvc", "upstream_cx_http2_total"), 1);
}

/// `kuma.io/protocol: tcp` with TLS on: plain bytes into the Dataplane outbound, TLS (with
/// the service's SNI and CA) to the upstream.
#[test]
fn tcp_service_with_tls_originates_tls() {
    let (dir, p, up, real) = setup_at(&["echo.test"], |b, p| b.tcp_tls("echo", &p.server), "echo");
    let d = dir.path();
    let (s, out) = with_outbound(
        d,
        &up,
        &https_service("echo", "tcp", &real, &[ca_file(&p.ca)]),
        "echo",
    );

    let msg = "ping over tls\n";
    assert_eq!(tcp_echo(SocketAddr::from(([127, 0, 0, 1], out)), msg), msg);

    let line = &s.access_log(1)[0];
    assert_eq!(
        line["listener"],
        format!("outbound:127.0.0.1:{out}"),
        "{line}"
    );
    assert_eq!(line["external_service"], "echo", "{line}");
    assert_eq!(line["upstream_cluster"], "external_service_echo", "{line}");
    assert_eq!(line["bytes_received"], msg.len(), "{line}");
    assert_eq!(line["bytes_sent"], msg.len(), "{line}");
    assert_eq!(cluster_counter(&s, "echo", "ssl.handshake"), 1);
    assert_eq!(up.envoy.counter("listener.127.0.0.1_0.ssl.handshake"), 1);
}

/// `disableHostDNSEntry: true`: the `.mesh` name still works, the real name is no longer
/// the service's (passthrough off: refused as undeclared).
#[test]
fn disable_host_dns_entry_hides_the_real_name() {
    let (dir, p, up, real) = httpbin();
    let d = dir.path();
    let s = sidecar(
        d,
        &up,
        &[https_service("httpbin", "http", &real, &[ca_file(&p.ca)])
            .replace("  address:", "  disableHostDNSEntry: true\n  address:")],
        &[],
    );

    let r = s.via_proxy("http://httpbin.mesh/get").run();
    assert_reached(&r, "tls", Some("httpbin.test"), &real);
    assert_refused(
        &s.via_proxy(&format!("http://{real}/get")).run(),
        403,
        "undeclared-host",
    );
    let log = s.access_log(2);
    assert_forwarded_line(&log[0], "outbound_http", "httpbin", &real, 200);
    assert_denied_line(&log[1], "undeclared-host");
    s.forwarded("httpbin", 1);
    s.denied("undeclared-host", 1);
}
