//! Access by name: `.mesh` names, the real name and port, Host headers, default ports,
//! one host on two ports, endpoints on two hosts, and `disableHostDNSEntry`.

use std::net::SocketAddr;

use extsvc_testkit::{
    assert_forwarded_line, ca_file, http_service, https_service, loopback_ports_bindable, test_dir,
    with_dns, Ca, Pki, UpstreamBuilder,
};

use super::{
    assert_denied_line, assert_forwarded, assert_reached, assert_refused, cluster_counter, httpbin,
    httpbin_trusted, setup, sidecar,
};

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
