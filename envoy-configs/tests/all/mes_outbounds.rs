//! Dataplane outbounds by backendRef (MADR-052) to MeshExternalServices, through real Envoy to
//! loopback upstreams: an http one through the filter bound to it, a tcp one through
//! tcp_proxy, each on its own `127.0.0.1:<port>` whatever the app asks for.

use extsvc_testkit::{docs, mesh, tcp_echo, test_dir, Curl, Sidecar, UpstreamBuilder};

/// A MeshExternalService on `match.port` 443 (never what the outbound listens on) whose one
/// endpoint is `endpoint`.
fn mes(name: &str, protocol: &str, endpoint: std::net::SocketAddr) -> String {
    format!(
        "type: MeshExternalService\nmesh: default\nname: {name}\nspec:\n  \
         match: {{port: 443, protocol: {protocol}}}\n  \
         endpoints: [{{address: {}, port: {}}}]\n",
        endpoint.ip(),
        endpoint.port()
    )
}

#[test]
fn backend_ref_outbounds_reach_an_http_and_a_tcp_mesh_external_service() {
    let dir = test_dir();
    let up = UpstreamBuilder::new()
        .plain("web")
        .tcp("echo")
        .start(dir.path());
    let s = Sidecar::start_with_outbounds(dir.path(), None, 2, &[], |ports| {
        docs(&[
            mesh(false),
            mes("web", "http", up.addr("web")),
            mes("echo", "tcp", up.addr("echo")),
            format!(
                "type: Dataplane\nmesh: default\nname: app\nnetworking:\n  address: 127.0.0.1\n  \
                 inbound: [{{port: 9000, tags: {{kuma.io/service: app}}}}]\n  outbound:\n  \
                 - {{port: {}, backendRef: {{kind: MeshExternalService, name: web}}}}\n  \
                 - {{port: {}, backendRef: {{kind: MeshExternalService, name: echo}}}}\n",
                ports[0], ports[1]
            ),
        ])
    });
    let (web, echo) = (s.outbound[0], s.outbound[1]);

    let r = Curl::get(format!("http://127.0.0.1:{web}/get"))
        .host("whatever.example")
        .run();
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("x-upstream-name"), Some("web"), "{r:?}");
    // Kuma's auto_host_rewrite: the upstream sees its endpoint's address as Host.
    assert_eq!(r.header("x-seen-host"), Some("127.0.0.1"), "{r:?}");
    s.expect_counter("cluster.external_service_mes_web.upstream_rq_total", 1);

    let at = std::net::SocketAddr::from(([127, 0, 0, 1], echo));
    assert_eq!(tcp_echo(at, "ping\n"), "ping\n");
    let line = s.envoy.wait_for_stdout(
        "\"external_service\":\"MeshExternalService/echo\"",
        std::time::Duration::from_secs(10),
    );
    assert!(
        line.contains(&format!("outbound:127.0.0.1:{echo}")),
        "{line}"
    );
    s.expect_counter("cluster.external_service_mes_echo.upstream_cx_total", 1);
}
