//! Passthrough off and on: an undeclared host refused, or reached as it is.

use external_service_model::contract::forwarded_stat;
use extsvc_testkit::{
    assert_forwarded_line, assert_ok_from, ca_file, docs, https_service, mesh, Sidecar,
};

use super::{assert_denied_line, assert_reached, assert_refused, one_service, setup_at};

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
