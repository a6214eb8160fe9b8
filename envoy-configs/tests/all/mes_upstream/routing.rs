//! Where a MeshExternalService's requests go: priority failover, the protocols, the `Host`
//! the upstream sees, passthrough off, and Kuma's documentation example.

use std::net::SocketAddr;

use extsvc_testkit::{
    dedent, docs, free_port, generate, loopback_ports_bindable, mesh, test_dir, Sidecar,
    UpstreamBuilder,
};

use super::{
    assert_forwarded, assert_reached, endpoint, generated_cluster, get, inline_string, mes, serve,
    setup, url, verification, API,
};

/// Priority 0 dead (a closed port), priority 1 alive: every request reaches priority 1 at
/// once, by the route's retry on a priority not tried yet (without it, Envoy keeps sending
/// to the dead host it has no reason to think unhealthy, and answers 503). With priority 0
/// alive, priority 1 gets nothing.
#[test]
fn a_dead_priority_zero_endpoint_fails_over_to_priority_one() {
    let dir = test_dir();
    let d = dir.path();
    let (_p, _other, up) = setup(d, |b, _, _| b.plain("first").plain("second"));
    let closed = free_port();
    let at = |port: u16, priority: u32| {
        format!("{{address: {API}, port: {port}, priority: {priority}}}")
    };
    let s = serve(
        d,
        &up,
        &[
            mes(
                "failover",
                "http",
                &[at(closed, 0), at(up.port("second"), 1)],
                &[],
            ),
            mes(
                "primary-alive",
                "http",
                &[at(up.port("first"), 0), at(up.port("second"), 1)],
                &[],
            ),
        ],
        &[],
    );

    for _ in 0..3 {
        assert_reached(&get(&s, "failover"), "second", "failover");
        assert_reached(&get(&s, "primary-alive"), "first", "primary-alive");
    }
    assert_forwarded(&s, "failover", 3);
    assert_forwarded(&s, "primary-alive", 3);
    let counter = |name: &str| {
        s.envoy
            .counter(&format!("cluster.external_service_mes_{name}"))
    };
    assert!(counter("failover.upstream_cx_connect_fail") >= 1);
    assert_eq!(
        counter("failover.upstream_rq_retry"),
        counter("failover.upstream_cx_connect_fail")
    );
    assert_eq!(counter("primary-alive.upstream_rq_retry"), 0);
}

/// `http` over HTTP/1.1, `http2` over HTTP/2 (TLS with ALPN h2, and cleartext), `grpc` over
/// HTTP/2; each upstream sees the endpoint's address as `Host` (Kuma's `auto_host_rewrite`),
/// not the `*.extsvc.mesh.local` name the app used.
#[test]
fn each_protocol_reaches_its_upstream_which_sees_the_endpoint_address_as_host() {
    let dir = test_dir();
    let d = dir.path();
    let (p, _other, up) = setup(d, |b, p, _| b.plain("plain").h2("h2", &p.server));
    let tls = [verification(&[inline_string("caCert", p.ca.ca_pem())])];
    let s = serve(
        d,
        &up,
        &[
            mes("http", "http", &[endpoint(up.port("plain"))], &[]),
            mes("h2c", "http2", &[endpoint(up.port("plain"))], &[]),
            mes("h2", "http2", &[endpoint(up.port("h2"))], &tls),
            mes("grpc", "grpc", &[endpoint(up.port("h2"))], &tls),
        ],
        &[],
    );

    let grpc = s
        .via_proxy(&url("grpc"))
        .header("content-type", "application/grpc")
        .data("")
        .run();
    let cases = [
        ("http", get(&s, "http"), "plain", "HTTP/1.1"),
        ("h2c", get(&s, "h2c"), "plain", "HTTP/2"),
        ("h2", get(&s, "h2"), "h2", "HTTP/2"),
        ("grpc", grpc, "h2", "HTTP/2"),
    ];
    for (name, r, listener, protocol) in &cases {
        assert_reached(r, listener, name);
        assert_eq!(
            r.header("x-seen-protocol"),
            Some(*protocol),
            "{name}: {r:?}"
        );
        assert_eq!(r.header("x-seen-host"), Some(API), "{name}: {r:?}");
        assert_forwarded(&s, name, 1);
    }
    assert_eq!(cases[3].1.header("x-seen-method"), Some("POST"));
    for name in ["h2c", "h2", "grpc"] {
        let http2 = s.envoy.counter(&format!(
            "cluster.external_service_mes_{name}.upstream_cx_http2_total"
        ));
        assert_eq!(http2, 1, "{name}");
    }
}

/// `match.protocol: tcp` gets a TCP cluster: TLS with the SNI, the name check and no ALPN,
/// no HTTP protocol options. (Served through a Dataplane outbound, tested with those.)
#[test]
fn a_tcp_mesh_external_service_gets_a_tcp_cluster_with_tls() {
    let dir = test_dir();
    let d = dir.path();
    let resources = docs(&[
        mesh(false),
        mes(
            "echo",
            "tcp",
            &[endpoint(4243)],
            &["verification: {serverName: echo.test}".to_string()],
        ),
    ]);
    let generated = generate(d, &resources, free_port(), None, &[]);
    assert_eq!(generated.code, Some(0), "{generated:?}");
    let cluster = generated_cluster(d, "echo");
    assert!(
        cluster["typed_extension_protocol_options"].is_null(),
        "{cluster}"
    );
    let context = &cluster["transport_socket"]["typed_config"];
    assert_eq!(context["sni"], "echo.test", "{context}");
    let common = &context["common_tls_context"];
    assert!(common["alpn_protocols"].is_null(), "{common}");
    assert_eq!(
        common["validation_context"]["match_typed_subject_alt_names"][0]["matcher"]["exact"],
        "echo.test",
        "{common}"
    );
}

/// Passthrough off: an undeclared host gets 403 `undeclared-host`, the MeshExternalService's
/// hostname is served.
#[test]
fn passthrough_off_refuses_an_undeclared_host_and_serves_the_mesh_external_service() {
    let dir = test_dir();
    let d = dir.path();
    let (_p, _other, up) = setup(d, |b, _, _| b.plain("plain"));
    let s = serve(
        d,
        &up,
        &[mes("api", "http", &[endpoint(up.port("plain"))], &[])],
        &[],
    );

    let undeclared = s
        .via_proxy(&format!("http://{API}:{}/", up.port("plain")))
        .run();
    assert_eq!(undeclared.status, 403, "{undeclared:?}");
    assert_eq!(
        undeclared.header("x-external-service-denied"),
        Some("undeclared-host"),
        "{undeclared:?}"
    );
    assert_reached(&get(&s, "api"), "plain", "api");
    s.denied("undeclared-host", 1);
    assert_forwarded(&s, "api", 1);
    assert_eq!(up.envoy.counter("http.plain.downstream_rq_total"), 1);
}

/// Kuma's documentation (kuma-website `app/_src/networking/meshexternalservice.md`): its
/// HostnameGenerator and its HTTP and HTTPS examples, as its Universal tab shows them (the
/// page's source also carries `apiVersion: kuma.io/v1alpha1`, which its `policy_yaml` tag
/// keeps for the Kubernetes tab only); no field changed. Only the world around them is local: `httpbin.org` resolves (through the test's DNS) to a loopback address of this
/// test's own, where the upstream listens on 80 and 443 with a certificate for httpbin.org
/// from the test CA, which `--system-ca` names (the HTTPS example trusts the system CA).
#[test]
fn kumas_documentation_example_validates_and_is_served() {
    let dir = test_dir();
    let d = dir.path();
    let ip = loopback_ports_bindable(&[80, 443]).unwrap_or_else(|| {
        panic!("no loopback address where ports 80 and 443 can be bound: this test needs root")
    });
    let p = extsvc_testkit::Pki::for_names(d, &["httpbin.org"]);
    let up = UpstreamBuilder::new()
        .plain("http")
        .at(SocketAddr::new(ip, 80))
        .tls("https", &p.server)
        .at(SocketAddr::new(ip, 443))
        .dns("httpbin.org", &[ip])
        .start(d);
    let generator = dedent(
        r#"
        type: HostnameGenerator
        name: example
        mesh: default
        spec:
          selector:
            meshExternalService:
              matchLabels: {}
          template: "{{ .Name }}.meshexternalservice"
        "#,
    );
    let http = dedent(
        "
        type: MeshExternalService
        name: mes-http
        mesh: default
        spec:
          match:
            type: HostnameGenerator
            port: 80
            protocol: http
          endpoints:
            - address: httpbin.org
              port: 80
        ",
    );
    let https = dedent(
        "
        type: MeshExternalService
        name: mes-https
        mesh: default
        spec:
          match:
            type: HostnameGenerator
            port: 80
            protocol: http
          endpoints:
            - address: httpbin.org
              port: 443
          tls:
            enabled: true
            verification:
              serverName: httpbin.org
        ",
    );
    let system_ca: Vec<std::ffi::OsString> = vec!["--system-ca".into(), p.ca.ca_path().into()];
    let s: Sidecar = serve(d, &up, &[generator, http, https], &system_ca);

    let plain = s.via_proxy("http://mes-http.meshexternalservice/get").run();
    assert_reached(&plain, "http", "mes-http");
    let tls = s
        .via_proxy("http://mes-https.meshexternalservice/get")
        .run();
    assert_reached(&tls, "https", "mes-https");
    assert_eq!(tls.header("x-seen-sni"), Some("httpbin.org"), "{tls:?}");
    for r in [&plain, &tls] {
        assert_eq!(r.header("x-seen-host"), Some("httpbin.org"), "{r:?}");
    }
    assert_forwarded(&s, "mes-http", 1);
    assert_forwarded(&s, "mes-https", 1);
}
