//! The README's recipes as a new user follows them, through real Envoy: a Kuma service name
//! with `_` through the proxy port, and Envoy run as a dedicated uid.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use extsvc_testkit::{
    assert_ok_from, docs, http_service, mesh, test_dir, Curl, Sidecar, UpstreamBuilder,
};

/// Envoy's HTTP/1 parser refuses `_` in the host of a proxied URL before any filter sees it:
/// its 400 names the dotted form, which reaches the same service, as the name in a `Host`
/// header does.
#[test]
fn a_service_name_with_underscores_through_the_proxy_port() {
    let dir = test_dir();
    let up = UpstreamBuilder::new().plain("web").start(dir.path());
    let resources = docs(&[
        mesh(false),
        http_service("httpbin_org", &up.addr("web").to_string()),
    ]);
    let s = Sidecar::start(dir.path(), None, &resources, &[]);

    let r = Curl::get("http://httpbin_org.mesh/get")
        .proxy(s.proxy())
        .run();
    assert_eq!(r.status, 400, "{r:?}");
    assert!(
        r.body
            .contains("'_' as '.' (http://httpbin.org.mesh/ reaches httpbin_org.mesh)"),
        "{r:?}"
    );

    let r = Curl::get("http://httpbin.org.mesh/get")
        .proxy(s.proxy())
        .run();
    assert_ok_from(&r, "web");
    assert_ok_from(&s.with_host("httpbin_org.mesh", "/get").run(), "web");
    s.forwarded("httpbin_org", 2);
}
