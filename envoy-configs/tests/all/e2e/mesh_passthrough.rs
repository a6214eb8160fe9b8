//! MeshPassthrough through the proxy port: undeclared hosts leave only as its matches allow,
//! by name through the dynamic forward proxy (the test kit's DNS given as `--dns-resolver`),
//! or by IP; `All` and `None` open and close whatever the Mesh says. And CONNECT through the
//! proxy port: tunnelled where a MeshPassthrough allows it, or to a declared tcp service.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use extsvc_testkit::{docs, mesh, tcp_service, test_dir, with_dns, Sidecar, UpstreamBuilder};

use super::{assert_denied_line, assert_reached, assert_refused, setup};
use extsvc_testkit::assert_ok_from;

/// A `targetRef: Mesh` MeshPassthrough with `mode` and these `appendMatch` entries (YAML
/// flow mappings).
fn mesh_passthrough(mode: &str, matches: &[String]) -> String {
    let mut doc = format!(
        "type: MeshPassthrough\nname: egress\nmesh: default\nspec:\n  targetRef: {{kind: Mesh}}\n  default:\n    passthroughMode: {mode}\n"
    );
    if !matches.is_empty() {
        doc.push_str("    appendMatch:\n");
        for m in matches {
            doc.push_str(&format!("    - {m}\n"));
        }
    }
    doc
}

/// Sends `CONNECT target` to the proxy port and returns the head of the answer (status line
/// and headers), lower-cased.
fn connect(listen: u16, target: &str) -> String {
    tunnel(listen, target).0
}

/// Sends `CONNECT target` to the proxy port; the head of the answer, and the connection.
fn tunnel(listen: u16, target: &str) -> (String, TcpStream) {
    exchange(
        listen,
        &format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n"),
    )
}

/// Sends `request` to the proxy port; the head of the answer, lower-cased, and the
/// connection, past the head.
fn exchange(listen: u16, request: &str) -> (String, TcpStream) {
    let mut s = TcpStream::connect(("127.0.0.1", listen)).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let start = Instant::now();
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    while start.elapsed() < Duration::from_secs(10) {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(_) => {}
        }
        if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            return (String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase(), s);
        }
    }
    panic!(
        "no answer to {request:?}: {:?}",
        String::from_utf8_lossy(&raw)
    );
}

const NAMES: [&str; 4] = [
    "a.example.test",
    "b.example.test",
    "example.test",
    "example.test.evil.test",
];

#[test]
fn a_wildcard_domain_lets_out_its_subdomains_and_a_cidr_its_addresses_nothing_else() {
    let dir = test_dir();
    let d = dir.path();
    let up = with_dns(UpstreamBuilder::new().plain("plain"), &NAMES).start(d);
    let port = up.port("plain");
    let policy = mesh_passthrough(
        "Matched",
        &[
            format!("{{type: Domain, value: '*.example.test', port: {port}, protocol: http}}"),
            format!("{{type: CIDR, value: 127.0.0.0/8, port: {port}, protocol: http}}"),
        ],
    );
    // The Mesh's flag is off: the MeshPassthrough decides.
    let s = Sidecar::start(d, up.dns_addr(), &docs(&[mesh(false), policy]), &[]);

    for host in [
        format!("a.example.test:{port}"),
        format!("b.example.test:{port}"),
        format!("127.0.0.1:{port}"),
    ] {
        let r = s.via_proxy(&format!("http://{host}/get")).run();
        assert_reached(&r, "plain", None, &host);
    }
    for name in ["example.test", "example.test.evil.test"] {
        let r = s.via_proxy(&format!("http://{name}:{port}/get")).run();
        assert_refused(&r, 403, "not-matched");
        let wanted =
            format!("appendMatch {{type: Domain, value: {name}, port: {port}, protocol: http}}");
        assert!(r.body.contains(&wanted), "{}", r.body);
    }
    // On another port the wildcard does not apply.
    let other = port.wrapping_add(1).max(1);
    let r = s
        .via_proxy(&format!("http://b.example.test:{other}/get"))
        .run();
    assert_refused(&r, 403, "not-matched");

    let log = s.access_log(6);
    assert_denied_line(&log[3], "not-matched");
    assert!(log[0]["external_service"].is_null(), "{}", log[0]);
    s.denied("not-matched", 3);
    s.denied("undeclared-host", 0);
    assert_eq!(up.envoy.counter("http.plain.downstream_rq_total"), 3);
}

/// The hostile suite's name tricks against a wildcard, by `Host` header: case and one
/// trailing dot are the same name; the wildcard itself, a look-alike label (punycode, as a
/// browser sends an IDN), a suffix that only ends like it, or two trailing dots are not.
#[test]
fn wildcard_tricks_in_the_host_header() {
    let dir = test_dir();
    let d = dir.path();
    let up = with_dns(UpstreamBuilder::new().plain("plain"), &NAMES).start(d);
    let port = up.port("plain");
    let policy = mesh_passthrough(
        "Matched",
        &[format!(
            "{{type: Domain, value: '*.example.test', port: {port}, protocol: http}}"
        )],
    );
    let s = Sidecar::start(d, up.dns_addr(), &docs(&[mesh(false), policy]), &[]);
    let r = s
        .with_host(&format!("a.example.test.:{port}"), "/get")
        .run();
    assert_ok_from(&r, "plain");
    // Let through, then resolved as written: the test's DNS server (Envoy's DNS filter)
    // compares names byte for byte (envoyproxy/envoy#45381), as a real resolver would not.
    let r = s.with_host(&format!("A.Example.TEST:{port}"), "/get").run();
    assert_eq!(r.header("x-external-service-denied"), None, "{r:?}");
    assert_eq!(
        (r.status, r.body.as_str()),
        (503, "DNS resolution failure"),
        "{r:?}"
    );
    for (host, status, reason) in [
        (format!("*.example.test:{port}"), 400, "bad-authority"),
        (format!("a.xn--exmple-cua.test:{port}"), 403, "not-matched"),
        (
            format!("a.example.test.evil.test:{port}"),
            403,
            "not-matched",
        ),
        (format!("aexample.test:{port}"), 403, "not-matched"),
        (format!("a.example.test..:{port}"), 400, "bad-authority"),
    ] {
        let r = s.with_host(&host, "/get").run();
        assert_refused(&r, status, reason);
    }
    assert_eq!(up.envoy.counter("http.plain.downstream_rq_total"), 1);
}

#[test]
fn all_opens_and_none_closes_whatever_the_mesh_says() {
    let dir = test_dir();
    let d = dir.path();
    let up = with_dns(UpstreamBuilder::new().plain("plain"), &NAMES).start(d);
    let host = format!("a.example.test:{}", up.port("plain"));
    let url = format!("http://{host}/get");

    let all = mesh_passthrough("All", &[]);
    let opened = Sidecar::start(d, up.dns_addr(), &docs(&[mesh(false), all]), &[]);
    assert_reached(&opened.via_proxy(&url).run(), "plain", None, &host);
    drop(opened);

    // `None` closes even what its own matches name.
    let none = mesh_passthrough(
        "None",
        &["{type: Domain, value: '*.example.test', protocol: http}".to_string()],
    );
    let closed = Sidecar::start(d, up.dns_addr(), &docs(&[mesh(true), none]), &[]);
    let r = closed.via_proxy(&url).run();
    assert_refused(&r, 403, "undeclared-host");
    assert!(
        r.body
            .contains("MeshPassthrough \"egress\" sets passthroughMode: None"),
        "{}",
        r.body
    );
    assert_eq!(up.envoy.counter("http.plain.downstream_rq_total"), 1);
}

/// CONNECT to a domain a `tls` match allows is a tunnel: the app's own TLS reaches the
/// upstream (which sees the app's SNI and answers with its certificate, which the app checks).
/// CONNECT to another name, to the allowed name on a port its match is not for, or to an IP
/// no match names is refused with 403 `not-matched`, never tunnelled.
#[test]
fn connect_tunnels_the_apps_own_tls_to_an_allowed_tls_domain_and_nothing_else() {
    let (dir, p, up) = setup(&["secure.example.test", "other.example.org"], |b, p| {
        b.tls("tls", &p.server).plain("plain")
    });
    let d = dir.path();
    let (tls, plain) = (up.port("tls"), up.port("plain"));
    let policy = mesh_passthrough(
        "Matched",
        &[
            format!("{{type: Domain, value: '*.example.test', port: {tls}, protocol: tls}}"),
            format!("{{type: Domain, value: '*.example.test', port: {plain}, protocol: http}}"),
        ],
    );
    let s = Sidecar::start(d, up.dns_addr(), &docs(&[mesh(false), policy]), &[]);

    let host = format!("secure.example.test:{tls}");
    let r = s
        .via_proxy(&format!("https://{host}/get"))
        .cacert(p.ca.ca_path())
        .run();
    assert_reached(&r, "tls", Some("secure.example.test"), &host);
    // An SNI that differs from the tunnel's host: CONNECT names the allowed host, and that is
    // what is judged and dialled; the app's own TLS, SNI included, passes through untouched
    // (-k: the certificate is for another name). CONNECT to the SNI's name is refused below.
    let r = s
        .via_proxy(&format!("https://other.example.org:{tls}/get"))
        .connect_to("other.example.org", tls, "secure.example.test", tls)
        .insecure()
        .run();
    assert_ok_from(&r, "tls");
    assert_eq!(r.header("x-seen-sni"), Some("other.example.org"), "{r:?}");

    for target in [
        format!("other.example.org:{tls}"),
        format!("secure.example.test:{plain}"),
        format!("127.0.0.1:{tls}"),
    ] {
        let head = connect(s.listen, &target);
        assert!(head.starts_with("http/1.1 403"), "CONNECT {target}: {head}");
        assert!(
            head.contains("x-external-service-denied: not-matched"),
            "CONNECT {target}: {head}"
        );
    }
    // Only the CONNECT route tunnels: an `Upgrade: CONNECT` request to an allowed host is
    // still no upgrade.
    let (head, _) = exchange(
        s.listen,
        &format!("GET / HTTP/1.1\r\nHost: secure.example.test:{plain}\r\nConnection: Upgrade\r\nUpgrade: CONNECT\r\n\r\n"),
    );
    assert!(head.starts_with("http/1.1 403"), "{head}");
    assert!(
        head.contains("x-external-service-denied: upgrade-not-served"),
        "{head}"
    );
    s.denied("not-matched", 3);
    assert_eq!(up.envoy.counter("http.tls.downstream_rq_total"), 2);
    assert_eq!(up.envoy.counter("http.plain.downstream_rq_total"), 0);
}

/// CONNECT to a declared tcp service, by its real name or its `.mesh` name, is a tunnel to
/// its cluster: bytes go both ways. No MeshPassthrough, and passthrough off: an undeclared
/// CONNECT is refused 403 `undeclared-host`.
#[test]
fn connect_to_a_declared_tcp_service_is_a_tunnel_to_its_cluster() {
    let dir = test_dir();
    let d = dir.path();
    let up = with_dns(UpstreamBuilder::new().tcp("echo"), &["echo.test"]).start(d);
    let port = up.port("echo");
    let s = Sidecar::start(
        d,
        up.dns_addr(),
        &docs(&[
            mesh(false),
            tcp_service("echo", &format!("echo.test:{port}"), &[]),
        ]),
        &[],
    );
    for target in [format!("echo.test:{port}"), format!("echo.mesh:{port}")] {
        let (head, mut stream) = tunnel(s.listen, &target);
        assert!(head.starts_with("http/1.1 200"), "CONNECT {target}: {head}");
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        stream.write_all(b"ping through the tunnel\n").unwrap();
        let mut echoed = [0u8; 24];
        stream.read_exact(&mut echoed).unwrap();
        assert_eq!(&echoed, b"ping through the tunnel\n", "CONNECT {target}");
    }
    let head = connect(s.listen, &format!("elsewhere.test:{port}"));
    assert!(head.starts_with("http/1.1 403"), "{head}");
    assert!(
        head.contains("x-external-service-denied: undeclared-host"),
        "{head}"
    );
    s.forwarded("echo", 2);
}
