//! Smoke tests of the end-to-end harness (`tests/support`) against real Envoy 1.40, and the
//! checks behind `tests/support/ENVOY_FACTS.md`: each configuration fact the generator
//! relies on is exercised here with a hand-written bootstrap.

mod support;

use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use support::{
    dns_resolver_yaml, test_dir, validate_yaml, Ca, CertKey, Curl, Envoy, EnvoyOptions, Upstream,
    UpstreamBuilder, Validity,
};

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// Test PKI: a CA, an unrelated CA, server certs for httpbin.test (+127.0.0.1), an expired
/// and a not-yet-valid one, and client certs from both CAs.
struct Pki {
    ca: Ca,
    other_ca: Ca,
    server: CertKey,
    expired: CertKey,
    not_yet_valid: CertKey,
    client: CertKey,
    foreign_client: CertKey,
}

fn pki(dir: &Path) -> Pki {
    let ca = Ca::new(dir, "test-ca");
    let other_ca = Ca::new(dir, "other-ca");
    Pki {
        server: ca.server_cert(dir, "httpbin", &["httpbin.test"], &[LOCALHOST]),
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
        client: ca.client_cert(dir, "client", "client-app"),
        foreign_client: other_ca.client_cert(dir, "foreign-client", "intruder"),
        ca,
        other_ca,
    }
}

/// One upstream Envoy with every kind of listener and a DNS server for *.test names.
fn upstream(dir: &Path, p: &Pki) -> Upstream {
    UpstreamBuilder::new()
        .plain("plain")
        .tls("tls", &p.server)
        .mtls("mtls", &p.server, &p.ca)
        .h2("h2", &p.server)
        .tls("expired", &p.expired)
        .tls("not_yet_valid", &p.not_yet_valid)
        .tcp("tcp")
        .tcp_tls("tcp_tls", &p.server)
        .dns("httpbin.test", &[LOCALHOST])
        .dns("other.test", &[LOCALHOST])
        .echo_request_header("x-test")
        .start(dir)
}

/// Reads a raw TCP answer (bounded by 5 s).
fn tcp_read(addr: SocketAddr) -> String {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(3)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("read timeout");
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).to_string()
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
        &p.ca.cert,
        &p.server,
        &p.client,
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
    assert_ne!(p.ca.ca_pem(), p.other_ca.ca_pem());
    assert_ne!(p.foreign_client.cert_pem, p.client.cert_pem);
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
        .cacert(p.ca.ca_path())
        .run();
    assert_eq!(r.header("x-seen-sni"), Some("httpbin.test"));
    assert_eq!(r.header("x-seen-tls-version"), Some("TLSv1.3"));
    assert_eq!(r.header("x-seen-protocol"), Some("HTTP/1.1"));
    // The server certificate also carries IP SAN 127.0.0.1.
    let r = Curl::get(format!("https://127.0.0.1:{port}/"))
        .cacert(p.ca.ca_path())
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
        .cacert(p.ca.ca_path());
    assert!(base.send().is_err(), "mTLS without a client cert must fail");
    assert!(
        base.clone()
            .client_cert(&p.foreign_client.cert_path, &p.foreign_client.key_path)
            .send()
            .is_err(),
        "a client cert from another CA must fail"
    );
    let r = base
        .client_cert(&p.client.cert_path, &p.client.key_path)
        .run();
    assert_eq!(r.header("x-seen-peer-subject"), Some("CN=client-app"));

    // ALPN h2 listener speaks HTTP/2 when offered, HTTP/1.1 otherwise.
    let port = up.port("h2");
    let base = Curl::get(format!("https://httpbin.test:{port}/"))
        .resolve("httpbin.test", port, "127.0.0.1")
        .cacert(p.ca.ca_path());
    assert_eq!(base.run().header("x-seen-protocol"), Some("HTTP/2"));
    assert_eq!(
        base.http1_1().run().header("x-seen-protocol"),
        Some("HTTP/1.1")
    );

    // Expired and not-yet-valid server certificates are refused by curl.
    for l in ["expired", "not_yet_valid"] {
        let e = Curl::get(format!("https://127.0.0.1:{}/", up.port(l)))
            .cacert(p.ca.ca_path())
            .send()
            .expect_err("bad validity must fail");
        assert_eq!(e.exit_code, Some(60), "{l}: {e}");
    }

    // Raw TCP.
    assert_eq!(tcp_read(up.addr("tcp")), "hello from tcp\n");

    // Stats by name.
    up.envoy.wait_for_stat(
        "http.plain.downstream_rq_2xx",
        Duration::from_secs(5),
        |v| v >= 2,
    );
    assert!(up.dns_addr().is_some());
}
