//! Smoke tests of the test kit (`extsvc_testkit`) against real Envoy 1.40, and the checks
//! behind `testkit/ENVOY_FACTS.md`: each configuration fact the generator relies on is
//! exercised here with a hand-written bootstrap, the filter module's too.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use extsvc_testkit as support;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use support::{
    dns_resolver_yaml, tcp_echo, test_dir, validate_yaml, Ca, CertKey, Curl, Envoy, EnvoyOptions,
    KubeletVolume, Pki, Upstream, UpstreamBuilder, Validity,
};

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// The kit's [`Pki`] (server certificate for httpbin.test and 127.0.0.1, client `CN=client-app`),
/// and what only these checks need: an unrelated CA with a client certificate of its own, and
/// server certificates that are expired or not yet valid.
struct Certs {
    pki: Pki,
    other_ca: Ca,
    expired: CertKey,
    not_yet_valid: CertKey,
    foreign_client: CertKey,
}

fn pki(dir: &Path) -> Certs {
    let pki = Pki::new(dir);
    let ca = &pki.ca;
    let other_ca = Ca::new(dir, "other-ca");
    Certs {
        expired: ca.server_cert_with_validity(
            dir,
            "expired",
            &["httpbin.test"],
            &[LOCALHOST],
            Validity::Expired,
        ),
        not_yet_valid: ca.server_cert_with_validity(
            dir,
            "not-yet-valid",
            &["httpbin.test"],
            &[LOCALHOST],
            Validity::NotYetValid,
        ),
        foreign_client: other_ca.client_cert(dir, "foreign-client", "intruder"),
        other_ca,
        pki,
    }
}

/// One upstream Envoy with every kind of listener and a DNS server for *.test names.
fn upstream(dir: &Path, p: &Certs) -> Upstream {
    UpstreamBuilder::new()
        .plain("plain")
        .tls("tls", &p.pki.server)
        .mtls("mtls", &p.pki.server, &p.pki.ca)
        .h2("h2", &p.pki.server)
        .tls("expired", &p.expired)
        .tls("not_yet_valid", &p.not_yet_valid)
        .tcp("tcp")
        .tcp_tls("tcp_tls", &p.pki.server)
        .dns("httpbin.test", &[LOCALHOST])
        .dns("other.test", &[LOCALHOST])
        .echo_request_header("x-test")
        .start(dir)
}

fn json_lines(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

#[test]
fn certificates_are_pem_files_and_keys_are_private() {
    let dir = test_dir();
    let p = pki(dir.path());
    for ck in [
        &p.pki.ca.cert,
        &p.pki.server,
        &p.pki.client,
        &p.expired,
        &p.other_ca.cert,
    ] {
        let cert = std::fs::read_to_string(&ck.cert_path).expect("cert file");
        assert!(cert.starts_with("-----BEGIN CERTIFICATE-----"), "{cert}");
        let key = std::fs::read_to_string(&ck.key_path).expect("key file");
        assert!(key.contains("PRIVATE KEY-----"), "{key}");
        let mode = std::fs::metadata(&ck.key_path)
            .expect("key metadata")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{}", ck.key_path.display());
    }
    assert_ne!(p.pki.ca.ca_pem(), p.other_ca.ca_pem());
    assert_ne!(p.foreign_client.cert_pem, p.pki.client.cert_pem);
}

#[test]
fn validate_mode_accepts_good_and_rejects_bad_configs() {
    let dir = test_dir();
    let good = validate_yaml(
        dir.path(),
        "good",
        "static_resources:\n  clusters:\n  - name: c\n    type: STATIC\n    load_assignment: {cluster_name: c}\n",
    );
    assert!(good.ok, "{}", good.output);
    let bad = validate_yaml(
        dir.path(),
        "bad",
        "static_resources:\n  clusters:\n  - name: c\n    type: NOPE\n",
    );
    assert!(!bad.ok, "{}", bad.output);
    assert!(bad.output.contains("NOPE"), "{}", bad.output);
}

#[test]
fn a_failed_start_reports_envoys_log() {
    let dir = test_dir();
    let started = Instant::now();
    let err = match Envoy::try_start(
        dir.path(),
        "broken",
        "admin: {address: {socket_address: {address: 127.0.0.1, port_value: 0}}}\nstatic_resources: {clusters: [{name: c, type: NOPE}]}\n",
        &EnvoyOptions::default(),
    ) {
        Ok(_) => panic!("a broken config must not start"),
        Err(e) => e,
    };
    assert!(err.contains("exited"), "{err}");
    assert!(err.contains("NOPE"), "log tail must be in the error: {err}");
    assert!(started.elapsed() < Duration::from_secs(15));
}

#[test]
fn upstream_echoes_sni_host_protocol_and_client_subject() {
    let dir = test_dir();
    let p = pki(dir.path());
    let up = upstream(dir.path(), &p);
    eprintln!("upstream Envoy ready in {:?}", up.envoy.startup);

    // Plain HTTP/1.1, then cleartext HTTP/2 with prior knowledge.
    let r = Curl::get(format!("http://127.0.0.1:{}/get", up.port("plain")))
        .host("plain.test")
        .header("x-test", "one")
        .run();
    assert_eq!(r.status, 200);
    assert_eq!(r.body, "hello from plain\n");
    assert_eq!(r.header("x-upstream-name"), Some("plain"));
    assert_eq!(r.header("x-seen-host"), Some("plain.test"));
    assert_eq!(r.header("x-seen-path"), Some("/get"));
    assert_eq!(r.header("x-seen-protocol"), Some("HTTP/1.1"));
    assert_eq!(r.header("x-seen-x-test"), Some("one"));
    assert_eq!(r.header("x-seen-sni"), None);
    let r = Curl::get(format!("http://127.0.0.1:{}/", up.port("plain")))
        .http2_prior_knowledge()
        .run();
    assert_eq!(r.header("x-seen-protocol"), Some("HTTP/2"));
    assert_eq!(r.http_version, "2");

    // TLS: SNI and TLS version seen by the upstream.
    let port = up.port("tls");
    let r = Curl::get(format!("https://httpbin.test:{port}/tls"))
        .resolve("httpbin.test", port, "127.0.0.1")
        .cacert(p.pki.ca.ca_path())
        .run();
    assert_eq!(r.header("x-seen-sni"), Some("httpbin.test"));
    assert_eq!(r.header("x-seen-tls-version"), Some("TLSv1.3"));
    assert_eq!(r.header("x-seen-protocol"), Some("HTTP/1.1"));
    // The server certificate also carries IP SAN 127.0.0.1.
    let r = Curl::get(format!("https://127.0.0.1:{port}/"))
        .cacert(p.pki.ca.ca_path())
        .run();
    assert_eq!(r.status, 200);
    // A client trusting another CA refuses it (curl 60: peer certificate).
    let e = Curl::get(format!("https://127.0.0.1:{port}/"))
        .cacert(p.other_ca.ca_path())
        .send()
        .expect_err("wrong CA must fail");
    assert_eq!(e.exit_code, Some(60), "{e}");

    // mTLS: no client cert and a foreign one fail; the right one is seen with its subject.
    let port = up.port("mtls");
    let base = Curl::get(format!("https://httpbin.test:{port}/"))
        .resolve("httpbin.test", port, "127.0.0.1")
        .cacert(p.pki.ca.ca_path());
    assert!(base.send().is_err(), "mTLS without a client cert must fail");
    assert!(
        base.clone()
            .client_cert(&p.foreign_client.cert_path, &p.foreign_client.key_path)
            .send()
            .is_err(),
        "a client cert from another CA must fail"
    );
    let r = base
        .client_cert(&p.pki.client.cert_path, &p.pki.client.key_path)
        .run();
    assert_eq!(r.header("x-seen-peer-subject"), Some("CN=client-app"));

    // ALPN h2 listener speaks HTTP/2 when offered, HTTP/1.1 otherwise.
    let port = up.port("h2");
    let base = Curl::get(format!("https://httpbin.test:{port}/"))
        .resolve("httpbin.test", port, "127.0.0.1")
        .cacert(p.pki.ca.ca_path());
    assert_eq!(base.run().header("x-seen-protocol"), Some("HTTP/2"));
    assert_eq!(
        base.http1_1().run().header("x-seen-protocol"),
        Some("HTTP/1.1")
    );

    // Expired and not-yet-valid server certificates are refused by curl.
    for l in ["expired", "not_yet_valid"] {
        let e = Curl::get(format!("https://127.0.0.1:{}/", up.port(l)))
            .cacert(p.pki.ca.ca_path())
            .send()
            .expect_err("bad validity must fail");
        assert_eq!(e.exit_code, Some(60), "{l}: {e}");
    }

    // Raw TCP.
    assert_eq!(tcp_echo(up.addr("tcp"), "ping\n"), "ping\n");

    // Stats by name.
    up.envoy.wait_for_stat(
        "http.plain.downstream_rq_2xx",
        Duration::from_secs(5),
        |v| v == 2,
    );
    assert_eq!(up.dns_addr().map(|a| a.ip()), Some(LOCALHOST));
}

// ---------------------------------------------------------------------------------------
// The facts in ENVOY_FACTS.md, checked with a hand-written client bootstrap.
// ---------------------------------------------------------------------------------------

/// A YAML double-quoted scalar (JSON string syntax is valid YAML).
fn q(s: &str) -> String {
    serde_json::to_string(s).expect("json string")
}

/// An UpstreamTlsContext transport socket, indented for a cluster.
fn upstream_tls(body: &str) -> String {
    format!(
        "    transport_socket:
      name: envoy.transport_sockets.tls
      typed_config:
        \"@type\": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
{body}"
    )
}

fn cluster(name: &str, ty: &str, host: &str, port: u16, rest: &str) -> String {
    format!(
        "  - name: {name}
    type: {ty}
    connect_timeout: 2s
    dns_lookup_family: V4_ONLY
    load_assignment:
      cluster_name: {name}
      endpoints:
      - lb_endpoints:
        - endpoint: {{address: {{socket_address: {{address: {host}, port_value: {port}}}}}}}
{rest}"
    )
}

const HCM: &str = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager";
const ROUTER: &str =
    "{\"@type\": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}";

/// JSON access log on stdout with what the tests (and the generator) care about.
const ACCESS_LOG: &str = "          access_log:
          - name: envoy.access_loggers.stdout
            typed_config:
              \"@type\": type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog
              log_format:
                json_format:
                  authority: \"%REQ(:AUTHORITY)%\"
                  code: \"%RESPONSE_CODE%\"
                  flags: \"%RESPONSE_FLAGS%\"
                  details: \"%RESPONSE_CODE_DETAILS%\"
                  cluster: \"%UPSTREAM_CLUSTER%\"
                  upstream_host: \"%UPSTREAM_HOST%\"
                  tls_failure: \"%UPSTREAM_TRANSPORT_FAILURE_REASON%\"
                  requested_authority: \"%FILTER_STATE(wasm.requested_authority:PLAIN)%\"
";

const DFP_CACHE: &str = "name: passthrough
                dns_lookup_family: V4_ONLY";

/// The client ("sidecar") bootstrap: outbound HTTP listener with passthrough on, the same
/// with passthrough off, two tcp_proxy listeners, and one cluster per TLS variant.
fn client_yaml(p: &Certs, up: &Upstream) -> String {
    let dns = up.dns_addr().expect("upstream DNS");
    let ca_file = p.pki.ca.ca_path().display().to_string();
    let sans_dns = "            match_typed_subject_alt_names:
            - san_type: DNS
              matcher: {exact: httpbin.test}
";
    let tls13 = "          tls_params: {tls_minimum_protocol_version: TLSv1_2, tls_maximum_protocol_version: TLSv1_3}\n";
    // `httpbin.test` (STRICT_DNS) on `port`, over TLS with this UpstreamTlsContext body.
    let tls_cluster = |name: &str, port: u16, tls: &str| {
        cluster(name, "STRICT_DNS", "httpbin.test", port, &upstream_tls(tls))
    };
    // SNI httpbin.test, verified against the CA in `ca` with the DNS SAN; `params`: "" or
    // `tls13`.
    let verified_by = |ca: &str, params: &str| {
        format!(
            "        sni: httpbin.test
        common_tls_context:
{params}          validation_context:
            trusted_ca: {{filename: \"{ca}\"}}
{sans_dns}"
        )
    };
    let mut clusters = String::new();
    // a. CA by file, DNS SAN, TLS 1.2..1.3.
    clusters += &tls_cluster(
        "tls_file",
        up.port("tls"),
        &format!(
            "        sni: httpbin.test
        allow_renegotiation: false
        common_tls_context:
{tls13}          validation_context:
            trusted_ca: {{filename: \"{ca_file}\"}}
{sans_dns}"
        ),
    );
    // a. CA inline, DNS + IP SANs (either may match), no tls_params: TLS 1.2 at most.
    clusters += &tls_cluster(
        "tls_inline",
        up.port("tls"),
        &format!(
            "        sni: httpbin.test
        common_tls_context:
          validation_context:
            trusted_ca: {{inline_string: {}}}
            match_typed_subject_alt_names:
            - san_type: DNS
              matcher: {{exact: httpbin.test}}
            - san_type: IP_ADDRESS
              matcher: {{exact: 127.0.0.1}}
",
            q(p.pki.ca.ca_pem())
        ),
    );
    // a. An IP endpoint: STATIC, no SNI, IP SAN.
    clusters += &cluster(
        "tls_ip",
        "STATIC",
        "127.0.0.1",
        up.port("tls"),
        &upstream_tls(&format!(
            "        common_tls_context:
{tls13}          validation_context:
            trusted_ca: {{filename: \"{ca_file}\"}}
            match_typed_subject_alt_names:
            - san_type: IP_ADDRESS
              matcher: {{exact: 127.0.0.1}}
"
        )),
    );
    // a. mTLS, client cert by file and inline; and without one.
    clusters += &tls_cluster(
        "mtls_file",
        up.port("mtls"),
        &format!(
            "        sni: httpbin.test
        common_tls_context:
{tls13}          tls_certificates:
          - certificate_chain: {{filename: \"{}\"}}
            private_key: {{filename: \"{}\"}}
          validation_context:
            trusted_ca: {{filename: \"{ca_file}\"}}
{sans_dns}",
            p.pki.client.cert_path.display(),
            p.pki.client.key_path.display()
        ),
    );
    clusters += &tls_cluster(
        "mtls_inline",
        up.port("mtls"),
        &format!(
            "        sni: httpbin.test
        common_tls_context:
          tls_certificates:
          - certificate_chain: {{inline_string: {}}}
            private_key: {{inline_string: {}}}
          validation_context:
            trusted_ca: {{inline_string: {}}}
{sans_dns}",
            q(&p.pki.client.cert_pem),
            q(&p.pki.client.key_pem),
            q(p.pki.ca.ca_pem())
        ),
    );
    clusters += &tls_cluster(
        "mtls_none",
        up.port("mtls"),
        &format!(
            "        sni: httpbin.test
        common_tls_context:
          validation_context:
            trusted_ca: {{filename: \"{ca_file}\"}}
"
        ),
    );
    // a. Failures: wrong CA, SAN mismatch, expired and not-yet-valid certificates.
    let other_ca = p.other_ca.ca_path().display().to_string();
    clusters += &tls_cluster("wrong_ca", up.port("tls"), &verified_by(&other_ca, ""));
    clusters += &tls_cluster(
        "bad_san",
        up.port("tls"),
        &format!(
            "        sni: httpbin.test
        common_tls_context:
          validation_context:
            trusted_ca: {{filename: \"{ca_file}\"}}
            match_typed_subject_alt_names:
            - san_type: DNS
              matcher: {{exact: other.test}}
"
        ),
    );
    for l in ["expired", "not_yet_valid"] {
        clusters += &tls_cluster(l, up.port(l), &verified_by(&ca_file, ""));
    }
    // b. HTTP/2 upstream over TLS with ALPN h2.
    clusters += &cluster(
        "h2",
        "STRICT_DNS",
        "httpbin.test",
        up.port("h2"),
        &format!(
            "    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        \"@type\": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config:
          http2_protocol_options: {{}}
{}",
            upstream_tls(&format!(
                "        sni: httpbin.test
        common_tls_context:
{tls13}          alpn_protocols: [h2]
          validation_context:
            trusted_ca: {{filename: \"{ca_file}\"}}
{sans_dns}"
            ))
        ),
    );
    // f. TCP: TLS passthrough (the client speaks TLS) and TLS origination.
    clusters += &cluster(
        "tcp_passthrough",
        "STRICT_DNS",
        "httpbin.test",
        up.port("tls"),
        "",
    );
    clusters += &tls_cluster(
        "tcp_originate",
        up.port("tcp_tls"),
        &verified_by(&ca_file, tls13),
    );
    // c. Passthrough on: the dynamic forward proxy cluster.
    clusters += &format!(
        "  - name: passthrough
    connect_timeout: 2s
    lb_policy: CLUSTER_PROVIDED
    cluster_type:
      name: envoy.clusters.dynamic_forward_proxy
      typed_config:
        \"@type\": type.googleapis.com/envoy.extensions.clusters.dynamic_forward_proxy.v3.ClusterConfig
        dns_cache_config:
          {}
",
        DFP_CACHE.replace("\n                ", "\n          ")
    );

    let vhost = |name: &str, domains: &str, cluster: &str| {
        format!(
            "            - name: {name}
              domains: [{domains}]
              routes: [{{match: {{prefix: \"/\"}}, route: {{cluster: {cluster}}}}}]
"
        )
    };
    let mut vhosts = vhost(
        "httpbin",
        "\"httpbin.test\", \"httpbin.test:8443\"",
        "tls_file",
    );
    for c in [
        "tls_inline",
        "tls_ip",
        "mtls_file",
        "mtls_inline",
        "mtls_none",
        "wrong_ca",
        "bad_san",
        "expired",
        "not_yet_valid",
        "h2",
    ] {
        vhosts += &vhost(c, &format!("\"{}.test\"", c.replace('_', "-")), c);
    }
    let open = format!(
        "{vhosts}            - name: passthrough
              domains: [\"*\"]
              routes: [{{match: {{prefix: \"/\"}}, route: {{cluster: passthrough}}}}]
"
    );
    let closed = format!(
        "{vhosts}            - name: passthrough_off
              domains: [\"*\"]
              routes: [{{match: {{prefix: \"/\"}}, direct_response: {{status: 403, body: {{inline_string: \"passthrough is off\\n\"}}}}}}]
"
    );
    // A listener on a loopback port whose one network filter `filter` (of type `kind`) has
    // the stat prefix `name`, then the lines `rest`.
    let listener = |name: &str, filter: &str, kind: &str, rest: &str| {
        format!(
            "  - name: {name}
    address: {{socket_address: {{address: 127.0.0.1, port_value: 0}}}}
    filter_chains:
    - filters:
      - name: {filter}
        typed_config:
          \"@type\": {kind}
          stat_prefix: {name}
{rest}"
        )
    };
    let hcm = |name: &str, vhosts: &str, dfp: bool| {
        let dfp_filter = if dfp {
            format!(
                "          - name: envoy.filters.http.dynamic_forward_proxy
            typed_config:
              \"@type\": type.googleapis.com/envoy.extensions.filters.http.dynamic_forward_proxy.v3.FilterConfig
              dns_cache_config:
                {DFP_CACHE}
"
            )
        } else {
            String::new()
        };
        listener(
            name,
            "envoy.filters.network.http_connection_manager",
            HCM,
            &format!(
                "{ACCESS_LOG}          route_config:
            name: {name}
            virtual_hosts:
{vhosts}          http_filters:
{dfp_filter}          - name: envoy.filters.http.router
            typed_config: {ROUTER}
"
            ),
        )
    };
    let tcp = |name: &str, cluster: &str| {
        listener(
            name,
            "envoy.filters.network.tcp_proxy",
            "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
            &format!("          cluster: {cluster}\n"),
        )
    };
    format!(
        "admin:
  address: {{socket_address: {{address: 127.0.0.1, port_value: 0}}}}
{}static_resources:
  listeners:
{}{}{}{}  clusters:
{clusters}",
        dns_resolver_yaml(dns, 0),
        hcm("outbound", &open, true),
        hcm("outbound_closed", &closed, false),
        tcp("tcp_passthrough", "tcp_passthrough"),
        tcp("tcp_originate", "tcp_originate"),
    )
}

struct Setup {
    dir: tempfile::TempDir,
    p: Certs,
    up: Upstream,
    client: Envoy,
}

impl Setup {
    fn new() -> Setup {
        let dir = test_dir();
        let p = pki(dir.path());
        let up = upstream(dir.path(), &p);
        let started = Instant::now();
        let client = Envoy::start(dir.path(), "client", &client_yaml(&p, &up));
        eprintln!(
            "upstream ready in {:?}, client ready in {:?} (wall {:?})",
            up.envoy.startup,
            client.startup,
            started.elapsed()
        );
        Setup { dir, p, up, client }
    }

    fn proxy(&self) -> String {
        format!("http://127.0.0.1:{}", self.client.listener_port("outbound"))
    }

    fn get(&self, host: &str) -> support::Response {
        Curl::get(format!("http://{host}/get"))
            .proxy(self.proxy())
            .run()
    }

    /// The access log entries for one authority, waiting for `n` of them.
    fn access_log(&self, authority: &str, n: usize) -> Vec<serde_json::Value> {
        let needle = format!("\"authority\":\"{authority}\"");
        let lines = self
            .client
            .wait_for_stdout_lines(&needle, n, Duration::from_secs(5));
        json_lines(&lines.join("\n"))
    }
}

#[test]
fn fact_a_tls_origination_sni_ca_sans_and_client_certs() {
    let s = Setup::new();
    let tls_port = s.up.port("tls");

    // CA by file + DNS SAN + tls_params 1.2..1.3: absolute-form request through the proxy.
    let r = s.get("httpbin.test");
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body, "hello from tls\n");
    assert_eq!(r.header("x-seen-sni"), Some("httpbin.test"));
    assert_eq!(r.header("x-seen-host"), Some("httpbin.test"));
    assert_eq!(r.header("x-seen-path"), Some("/get"));
    assert_eq!(r.header("x-seen-tls-version"), Some("TLSv1.3"));
    let log = &s.access_log("httpbin.test", 1)[0];
    assert_eq!(log["code"], 200);
    assert_eq!(log["flags"], "-");
    assert_eq!(log["cluster"], "tls_file");
    assert_eq!(log["upstream_host"], format!("127.0.0.1:{tls_port}"));
    assert_eq!(log["tls_failure"], serde_json::Value::Null);
    assert_eq!(log["external_service"], serde_json::Value::Null);

    // Inline CA, DNS + IP SAN list; no tls_params: Envoy's default maximum is TLS 1.2.
    let r = s.get("tls-inline.test");
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("x-seen-tls-version"), Some("TLSv1.2"));
    // IP endpoint, STATIC, no SNI, IP SAN.
    let r = s.get("tls-ip.test");
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("x-seen-sni"), None);

    // Client certificates by file and inline.
    for host in ["mtls-file.test", "mtls-inline.test"] {
        let r = s.get(host);
        assert_eq!(r.status, 200, "{host}: {r:?}");
        assert_eq!(r.header("x-seen-peer-subject"), Some("CN=client-app"));
    }
    // mTLS upstream, no client certificate: 503 UF, TLS alert from the server.
    let r = s.get("mtls-none.test");
    assert_eq!(r.status, 503);
    let log = &s.access_log("mtls-none.test", 1)[0];
    assert_eq!(log["flags"], "UF", "{log}");
    assert_eq!(
        s.client.counter("cluster.mtls_none.ssl.connection_error"),
        1
    );

    // Wrong CA: 503 UF every time, fail_verify_error counts each handshake.
    for _ in 0..3 {
        let r = s.get("wrong-ca.test");
        assert_eq!(r.status, 503);
        assert!(r.body.contains("upstream connect error"), "{}", r.body);
    }
    assert_eq!(
        s.client.counter("cluster.wrong_ca.ssl.fail_verify_error"),
        3
    );
    let logs = s.access_log("wrong-ca.test", 3);
    for log in &logs {
        assert_eq!(log["code"], 503);
        assert_eq!(log["flags"], "UF", "{log}");
        assert_eq!(log["cluster"], "wrong_ca");
        let reason = log["tls_failure"].as_str().unwrap_or_default();
        assert!(
            reason.contains("CERTIFICATE_VERIFY_FAILED"),
            "transport failure reason: {log}"
        );
    }
    eprintln!("wrong CA access log: {}", logs[0]);

    // SAN mismatch.
    let r = s.get("bad-san.test");
    assert_eq!(r.status, 503);
    assert_eq!(s.client.counter("cluster.bad_san.ssl.fail_verify_san"), 1);
    let log = &s.access_log("bad-san.test", 1)[0];
    assert_eq!(log["flags"], "UF", "{log}");
    eprintln!("SAN mismatch access log: {log}");

    // Expired and not-yet-valid server certificates.
    for (host, cluster) in [
        ("expired.test", "expired"),
        ("not-yet-valid.test", "not_yet_valid"),
    ] {
        let r = s.get(host);
        assert_eq!(r.status, 503, "{host}");
        assert_eq!(
            s.client
                .counter(&format!("cluster.{cluster}.ssl.fail_verify_error")),
            1,
            "{host}"
        );
        let log = &s.access_log(host, 1)[0];
        eprintln!("{host} access log: {log}");
    }
    let _ = (&s.dir, &s.p);
}

#[test]
fn fact_b_http2_upstream_with_alpn() {
    let s = Setup::new();
    let r = s.get("h2.test");
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("x-seen-protocol"), Some("HTTP/2"));
    assert_eq!(r.header("x-seen-sni"), Some("httpbin.test"));
    assert_eq!(r.header("x-upstream-name"), Some("h2"));
    assert_eq!(s.client.counter("cluster.h2.upstream_cx_http2_total"), 1);
}

#[test]
fn fact_c_outbound_listener_domains_and_passthrough() {
    let s = Setup::new();
    let outbound = s.client.listener_port("outbound");
    // Host-header (origin-form) request with a port in the authority.
    let r = Curl::get(format!("http://127.0.0.1:{outbound}/anything"))
        .host("httpbin.test:8443")
        .run();
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("x-upstream-name"), Some("tls"));
    assert_eq!(r.header("x-seen-host"), Some("httpbin.test:8443"));
    // Absolute form through the proxy port.
    assert_eq!(
        s.get("httpbin.test:8443").header("x-upstream-name"),
        Some("tls")
    );

    // Passthrough on: undeclared hosts go through the dynamic forward proxy.
    let plain = s.up.port("plain");
    for host in [format!("localhost:{plain}"), format!("127.0.0.1:{plain}")] {
        let r = s.get(&host);
        assert_eq!(r.status, 200, "{host}: {r:?}");
        assert_eq!(r.header("x-upstream-name"), Some("plain"));
        assert_eq!(r.header("x-seen-host"), Some(host.as_str()));
        let log = &s.access_log(&host, 1)[0];
        assert_eq!(log["cluster"], "passthrough");
        assert_eq!(log["upstream_host"], format!("127.0.0.1:{plain}"));
    }
    // A name only the test DNS knows, through the DNS cache.
    let r = s.get(&format!("other.test:{plain}"));
    assert_eq!(r.status, 200, "{r:?}");

    // Passthrough off: declared hosts work, everything else is 403.
    let closed = format!(
        "http://127.0.0.1:{}",
        s.client.listener_port("outbound_closed")
    );
    let r = Curl::get("http://httpbin.test/get").proxy(&closed).run();
    assert_eq!(r.status, 200, "{r:?}");
    let r = Curl::get(format!("http://localhost:{plain}/get"))
        .proxy(&closed)
        .run();
    assert_eq!(r.status, 403);
    assert_eq!(r.body, "passthrough is off\n");
    let log = &s.access_log(&format!("localhost:{plain}"), 2)[1];
    assert_eq!(log["code"], 403);
    assert_eq!(log["details"], "direct_response");
}

#[test]
fn fact_f_tcp_proxy_tls_passthrough_and_origination() {
    let s = Setup::new();
    // The client speaks TLS end to end through tcp_proxy: the upstream sees its SNI.
    let port = s.client.listener_port("tcp_passthrough");
    let r = Curl::get(format!("https://httpbin.test:{port}/tcp"))
        .resolve("httpbin.test", port, "127.0.0.1")
        .cacert(s.p.pki.ca.ca_path())
        .run();
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("x-seen-sni"), Some("httpbin.test"));
    assert_eq!(r.header("x-upstream-name"), Some("tls"));
    // Plain TCP in, Envoy originates TLS to the upstream.
    let addr = SocketAddr::from(([127, 0, 0, 1], s.client.listener_port("tcp_originate")));
    assert_eq!(tcp_echo(addr, "over tls\n"), "over tls\n");
    assert_eq!(s.client.counter("cluster.tcp_originate.ssl.handshake"), 1);
}

/// The wasm HTTP filter stanza (fact e) with its configuration as a StringValue.
fn wasm_filter(module: &Path, configuration_json: &str) -> String {
    format!(
        "          - name: envoy.filters.http.wasm
            typed_config:
              \"@type\": type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm
              config:
                name: external_service
                root_id: external_service
                failure_policy: FAIL_RELOAD
                vm_config:
                  vm_id: external_service
                  runtime: envoy.wasm.runtime.v8
                  code: {{local: {{filename: \"{}\"}}}}
                configuration:
                  \"@type\": type.googleapis.com/google.protobuf.StringValue
                  value: {}
",
        module.display(),
        q(configuration_json)
    )
}

/// A sidecar with the real filter: `httpbin.mesh` goes to the TLS upstream as httpbin.test,
/// undeclared hosts are refused (passthrough off).
fn wasm_client_yaml(p: &Pki, up: &Upstream, configuration_json: &str) -> String {
    let port = up.port("tls");
    format!(
        "admin:
  address: {{socket_address: {{address: 127.0.0.1, port_value: 0}}}}
{dns}static_resources:
  listeners:
  - name: outbound
    address: {{socket_address: {{address: 127.0.0.1, port_value: 0}}}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          \"@type\": {HCM}
          stat_prefix: outbound
{ACCESS_LOG}          route_config:
            virtual_hosts:
            - name: httpbin
              domains: [\"httpbin.test\", \"httpbin.test:{port}\"]
              routes: [{{match: {{prefix: \"/\"}}, route: {{cluster: httpbin}}}}]
            - name: passthrough_off
              domains: [\"*\"]
              routes: [{{match: {{prefix: \"/\"}}, direct_response: {{status: 403}}}}]
          http_filters:
{wasm}          - name: envoy.filters.http.router
            typed_config: {ROUTER}
  clusters:
{cluster}",
        dns = dns_resolver_yaml(up.dns_addr().expect("dns"), 0),
        wasm = wasm_filter(&support::wasm_module(), configuration_json),
        cluster = cluster(
            "httpbin",
            "STRICT_DNS",
            "httpbin.test",
            port,
            &upstream_tls(&format!(
                "        sni: httpbin.test
        common_tls_context:
          validation_context:
            trusted_ca: {{filename: \"{}\"}}
            match_typed_subject_alt_names:
            - san_type: DNS
              matcher: {{exact: httpbin.test}}
",
                p.ca.ca_path().display()
            ))
        ),
    )
}

fn filter_configuration(address: &str) -> String {
    serde_json::json!({
        "resources": [
            {"type": "Mesh", "name": "default",
             "networking": {"outbound": {"passthrough": false}}},
            {"type": "ExternalService", "mesh": "default", "name": "httpbin",
             "tags": {"kuma.io/service": "httpbin", "kuma.io/protocol": "http"},
             "networking": {"address": address, "tls": {"enabled": true}}}
        ]
    })
    .to_string()
}

/// The filter module in a hand-written bootstrap: `httpbin.mesh`, by proxy and by Host header,
/// is rewritten to the real authority, for which Envoy picks the route again (TLS to the
/// upstream); the name the app asked for reaches the access log through filter state; an undeclared
/// host gets the filter's own 403; the cluster counts the forwards, the filter the refusal.
#[test]
fn fact_d_e_wasm_rewrite_reroutes_and_filter_state_reaches_the_access_log() {
    let dir = test_dir();
    let p = pki(dir.path());
    let up = upstream(dir.path(), &p);
    let address = format!("httpbin.test:{}", up.port("tls"));

    let client = Envoy::start(
        dir.path(),
        "sidecar",
        &wasm_client_yaml(&p.pki, &up, &filter_configuration(&address)),
    );
    eprintln!("Envoy with the wasm filter ready in {:?}", client.startup);
    let proxy = format!("http://127.0.0.1:{}", client.listener_port("outbound"));
    for r in [
        Curl::get("http://httpbin.mesh/get").proxy(&proxy).run(),
        Curl::get(format!("{proxy}/get")).host("httpbin.mesh").run(),
    ] {
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(r.header("x-upstream-name"), Some("tls"));
        assert_eq!(r.header("x-seen-sni"), Some("httpbin.test"));
        assert_eq!(r.header("x-seen-host"), Some(address.as_str()));
    }
    let lines = client.wait_for_stdout_lines(
        &format!("\"authority\":\"{address}\""),
        2,
        Duration::from_secs(5),
    );
    for log in json_lines(&lines.join("\n")) {
        assert_eq!(log["requested_authority"], "httpbin.mesh", "{log}");
        assert_eq!(log["cluster"], "httpbin", "{log}");
        assert_eq!(log["code"], 200, "{log}");
    }

    let r = Curl::get("http://elsewhere.test/").proxy(&proxy).run();
    assert_eq!(r.status, 403, "{r:?}");
    assert_eq!(
        r.header("x-external-service-denied"),
        Some("undeclared-host")
    );
    assert!(r.body.contains("\"elsewhere.test\""), "{}", r.body);
    // Envoy counts the forwards on the service's cluster; the filter counts only refusals.
    client.wait_for_stat(
        "cluster.httpbin.upstream_rq_completed",
        Duration::from_secs(5),
        |n| n == 2,
    );
    assert_eq!(
        client.counter("wasmcustom.external_service.denied.undeclared-host"),
        1
    );
}

// ---------------------------------------------------------------------------------------
// Fact g: file-based xDS from a ConfigMap volume, laid out and swapped as kubelet does.
// ---------------------------------------------------------------------------------------

/// An LDS file: one HTTP listener per name, each answering its own name.
fn lds_file(version: &str, listeners: &[&str]) -> Vec<u8> {
    let listeners: String = listeners
        .iter()
        .map(|name| {
            format!(
                "- \"@type\": type.googleapis.com/envoy.config.listener.v3.Listener
  name: {name}
  address: {{socket_address: {{address: 127.0.0.1, port_value: 0}}}}
  filter_chains:
  - filters:
    - name: envoy.filters.network.http_connection_manager
      typed_config:
        \"@type\": {HCM}
        stat_prefix: {name}
        route_config:
          virtual_hosts:
          - name: all
            domains: [\"*\"]
            routes: [{{match: {{prefix: \"/\"}}, direct_response: {{status: 200, body: {{inline_string: {name}}}}}}}]
        http_filters:
        - name: envoy.filters.http.router
          typed_config: {ROUTER}
"
            )
        })
        .collect();
    format!("version_info: {}\nresources:\n{listeners}", q(version)).into_bytes()
}

/// An SDS file: a validation context secret named `name` trusting `ca`.
fn sds_file(name: &str, ca: &Ca) -> Vec<u8> {
    format!(
        "resources:
- \"@type\": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret
  name: {name}
  validation_context: {{trusted_ca: {{inline_string: {}}}}}
",
        q(ca.ca_pem())
    )
    .into_bytes()
}

/// The ConfigMap's items: `lds.yaml`, and two secrets under `sds/`.
fn configmap_payload(version: &str, listeners: &[&str], ca: &Ca) -> BTreeMap<String, Vec<u8>> {
    BTreeMap::from([
        ("lds.yaml".to_string(), lds_file(version, listeners)),
        ("sds/root.yaml".to_string(), sds_file("root_watched", ca)),
        ("sds/sub.yaml".to_string(), sds_file("sds_watched", ca)),
    ])
}

/// A cluster whose upstream CA comes from the SDS file `file` of the volume, watched at
/// `watched` (a path under the volume too).
fn sds_cluster(name: &str, vol: &Path, file: &str, watched: &str) -> String {
    format!(
        "  - name: {name}
    type: STATIC
    load_assignment: {{cluster_name: {name}}}
    transport_socket:
      name: envoy.transport_sockets.tls
      typed_config:
        \"@type\": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
        common_tls_context:
          validation_context_sds_secret_config:
            name: {name}
            sds_config:
              path_config_source:
                path: {}
                watched_directory: {{path: {}}}
",
        q(&vol.join(file).display().to_string()),
        q(&vol.join(watched).display().to_string()),
    )
}

/// LDS from `<vol>/lds.yaml` watched at the volume's root, and two clusters whose CA secrets
/// are `<vol>/sds/*.yaml`: one watched at the root, one at `<vol>/sds` (through the
/// `sds -> ..data/sds` symlink).
fn configmap_bootstrap(vol: &Path) -> String {
    format!(
        "admin:
  address: {{socket_address: {{address: 127.0.0.1, port_value: 0}}}}
node: {{id: \"configmap\", cluster: \"configmap\"}}
dynamic_resources:
  lds_config:
    path_config_source:
      path: {}
      watched_directory: {{path: {}}}
static_resources:
  clusters:
{}{}",
        q(&vol.join("lds.yaml").display().to_string()),
        q(&vol.display().to_string()),
        sds_cluster("root_watched", vol, "sds/root.yaml", ""),
        sds_cluster("sds_watched", vol, "sds/sub.yaml", "sds"),
    )
}

/// LDS's `version_text` (a text stat, which [`Envoy::stats`] leaves out).
fn lds_version_text(envoy: &Envoy) -> String {
    let (status, body) = envoy
        .admin_get("/stats?filter=^listener_manager\\.lds\\.version_text$")
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(status, 200, "{body}");
    body.trim()
        .strip_prefix("listener_manager.lds.version_text: ")
        .unwrap_or_else(|| panic!("no lds version_text in {body:?}"))
        .trim_matches('"')
        .to_string()
}

fn served_by(envoy: &Envoy, listener: &str) -> String {
    Curl::get(format!(
        "http://127.0.0.1:{}/",
        envoy.listener_port(listener)
    ))
    .run()
    .body
}

/// kubelet's swap of `..data` reaches an Envoy that watches the volume's root: the new
/// listener is served, LDS counts the update and reports the new version, and a secret
/// watched at the root is reloaded. A secret watched at `<vol>/sds` misses it: that watch is
/// on the old timestamped directory's `sds`, which nothing is moved into (it is deleted).
#[test]
fn fact_g_a_configmap_swap_reaches_envoy_only_through_the_volume_root() {
    let dir = test_dir();
    let vol = KubeletVolume::config_map(&dir.path().join("xds")).expect("volume");
    let (ca_one, ca_two) = (Ca::new(dir.path(), "ca-one"), Ca::new(dir.path(), "ca-two"));
    vol.write(&configmap_payload("v1", &["one"], &ca_one))
        .expect("first write");
    let envoy = Envoy::start(dir.path(), "configmap", &configmap_bootstrap(vol.root()));
    assert_eq!(lds_version_text(&envoy), "v1");
    assert_eq!(served_by(&envoy, "one"), "one");
    for secret in ["root_watched", "sds_watched"] {
        assert_eq!(envoy.counter(&format!("sds.{secret}.update_success")), 1);
    }
    let lds_before = envoy.counter("listener_manager.lds.update_success");

    let swapped = Instant::now();
    vol.write(&configmap_payload("v2", &["one", "two"], &ca_two))
        .expect("update");
    envoy.wait_for_stat(
        "listener_manager.lds.update_success",
        Duration::from_secs(5),
        |n| n > lds_before,
    );
    eprintln!("LDS took up kubelet's swap in {:?}", swapped.elapsed());
    assert_eq!(envoy.counter("listener_manager.lds.update_rejected"), 0);
    assert_eq!(lds_version_text(&envoy), "v2");
    assert_eq!(served_by(&envoy, "two"), "two");
    envoy.wait_for_stat(
        "sds.root_watched.update_success",
        Duration::from_secs(5),
        |n| n == 2,
    );
    // The same inotify event would have reached the watch on <vol>/sds by now; a second more.
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        envoy.counter("sds.sds_watched.update_success"),
        1,
        "a watch on <vol>/sds saw kubelet's swap"
    );
}
