//! Dataplane outbounds and `kuma.io/protocol`: HTTP/2, gRPC, and TCP with and without TLS.

use std::net::SocketAddr;

use extsvc_testkit::{assert_forwarded_line, ca_file, https_service, tcp_echo, tcp_service, Curl};

use super::{
    assert_denied_line, assert_reached, assert_refused, cluster_counter, h2_service, httpbin,
    setup_at, with_outbound,
};

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
    let secure = tcp_service("secure", &real, &["enabled: false"]);
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
