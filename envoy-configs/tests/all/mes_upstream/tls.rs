//! TLS origination to a MeshExternalService as Kuma configures it (`outbound.go`,
//! `tls.go` `UpstreamTlsContextOutsideMesh`).

use base64::Engine as _;
use extsvc_testkit::{dedent, docs, free_port, generate, mesh, test_dir, validate_config};

use super::{
    assert_forwarded, assert_reached, assert_upstream_failure, endpoint, generated_cluster, get,
    inline_string, mes, serve, setup, verification, API,
};

/// What a request to one MeshExternalService must get.
#[derive(Clone, Copy)]
enum Expect {
    /// 200 from this upstream listener.
    Reached(&'static str),
    /// 503, the TLS failure's reason containing this.
    TlsFailure(&'static str),
}

const VERIFY_FAILED: &str = "CERTIFICATE_VERIFY_FAILED";

/// Checks each case (MES name, expectation) and returns the responses by name.
fn check_all(
    s: &extsvc_testkit::Sidecar,
    cases: &[(&str, Expect)],
) -> Vec<extsvc_testkit::Response> {
    cases
        .iter()
        .map(|(name, expect)| {
            let r = get(s, name);
            match expect {
                Expect::Reached(listener) => assert_reached(&r, listener, name),
                Expect::TlsFailure(reason) => assert_upstream_failure(&r, reason, name),
            }
            assert_forwarded(s, name, 1);
            r
        })
        .collect()
}

/// Each verification mode accepts what it should and refuses what it should: `Secured` (the
/// default) wants the given CA and the name; `SkipSAN` skips the name only; `SkipCA` skips
/// every check of the server but still presents the client certificate; `SkipAll` also
/// leaves the client certificate out.
#[test]
fn each_verification_mode_accepts_and_refuses_as_kuma() {
    let dir = test_dir();
    let d = dir.path();
    let (p, _other, up) = setup(d, |b, p, other| {
        let wrong_name = p.ca.server_cert(d, "elsewhere", &["elsewhere.test"], &[]);
        let other_ca = other.server_cert(d, "other-ca-server", &[API], &[]);
        let stranger = other.server_cert(d, "stranger", &["elsewhere.test"], &[]);
        b.tls("right", &p.server)
            .tls("other_ca", &other_ca)
            .tls("wrong_name", &wrong_name)
            .tls("stranger", &stranger)
            .mtls("mtls_stranger", &stranger, &p.ca)
    });
    let ca = inline_string("caCert", p.ca.ca_pem());
    let client = [
        inline_string("clientCert", &p.client.cert_pem),
        inline_string("clientKey", &p.client.key_pem),
    ];
    let service = |name: &str, mode: Option<&str>, listener: &str, with_client: bool| {
        let mut entries = vec![ca.clone()];
        entries.extend(mode.map(|m| format!("mode: {m}")));
        if with_client {
            entries.extend(client.iter().cloned());
        }
        mes(
            name,
            "http",
            &[endpoint(up.port(listener))],
            &[verification(&entries)],
        )
    };
    let s = serve(
        d,
        &up,
        &[
            service("secured-right", None, "right", false),
            service("secured-other-ca", Some("Secured"), "other_ca", false),
            service("secured-wrong-name", Some("Secured"), "wrong_name", false),
            service("skipsan-wrong-name", Some("SkipSAN"), "wrong_name", false),
            service("skipsan-other-ca", Some("SkipSAN"), "other_ca", false),
            service("skipca-stranger", Some("SkipCA"), "stranger", false),
            service("skipca-mtls", Some("SkipCA"), "mtls_stranger", true),
            service("skipall-stranger", Some("SkipAll"), "stranger", false),
            service("skipall-mtls", Some("SkipAll"), "mtls_stranger", true),
        ],
        &[],
    );

    let r = check_all(
        &s,
        &[
            ("secured-right", Expect::Reached("right")),
            ("secured-other-ca", Expect::TlsFailure(VERIFY_FAILED)),
            ("secured-wrong-name", Expect::TlsFailure(VERIFY_FAILED)),
            ("skipsan-wrong-name", Expect::Reached("wrong_name")),
            ("skipsan-other-ca", Expect::TlsFailure(VERIFY_FAILED)),
            ("skipca-stranger", Expect::Reached("stranger")),
            ("skipca-mtls", Expect::Reached("mtls_stranger")),
        ],
    );
    assert_eq!(r[0].header("x-seen-sni"), Some(API), "{:?}", r[0]);
    // SkipSAN sends no SNI either (Kuma clears the server name).
    assert_eq!(r[3].header("x-seen-sni"), None, "{:?}", r[3]);
    assert_eq!(
        r[6].header("x-seen-peer-subject"),
        Some("CN=client-app"),
        "{:?}",
        r[6]
    );

    assert_reached(&get(&s, "skipall-stranger"), "stranger", "skipall-stranger");
    // SkipAll presents no client certificate: the upstream that requires one refuses.
    let refused = get(&s, "skipall-mtls");
    assert_eq!(refused.status, 503, "{refused:?}");
    assert_eq!(refused.header("x-upstream-name"), None, "{refused:?}");
    assert_eq!(
        up.envoy
            .counter("listener.127.0.0.1_0.ssl.fail_verify_no_cert"),
        1
    );
}

/// The name check is one list: the SNI (the first endpoint's name, or `serverName`) and the
/// `subjectAltNames`, any one matching is enough, `Exact` or `Prefix`; a certificate that
/// matches none is refused; a listed name is checked against IP SANs too. The SNI is what the
/// upstream sees; an IP endpoint sends none.
#[test]
fn sni_server_name_and_subject_alt_names_are_one_name_check() {
    let dir = test_dir();
    let d = dir.path();
    let (p, _other, up) = setup(d, |b, p, _| {
        let elsewhere = p.ca.server_cert(d, "elsewhere", &["elsewhere.test"], &[]);
        let internal = p.ca.server_cert(d, "internal", &["api.internal.test"], &[]);
        let ip_only =
            p.ca.server_cert(d, "ip-only", &[], &[[127, 0, 0, 1].into()]);
        b.tls("right", &p.server)
            .tls("elsewhere", &elsewhere)
            .tls("internal", &internal)
            .tls("ip_only", &ip_only)
    });
    let ca = inline_string("caCert", p.ca.ca_pem());
    let service = |name: &str, listener: &str, entries: &[&str]| {
        let mut all = vec![ca.clone()];
        all.extend(entries.iter().map(|e| e.to_string()));
        mes(
            name,
            "http",
            &[endpoint(up.port(listener))],
            &[verification(&all)],
        )
    };
    let by_ip = mes(
        "by-ip",
        "http",
        &[format!(
            "{{address: 127.0.0.1, port: {}}}",
            up.port("right")
        )],
        &[verification(std::slice::from_ref(&ca))],
    );
    let s = serve(
        d,
        &up,
        &[
            service("default-sni", "right", &[]),
            service(
                "server-name",
                "internal",
                &["serverName: api.internal.test"],
            ),
            service(
                "server-name-checked",
                "right",
                &["serverName: api.internal.test"],
            ),
            service(
                "san-exact",
                "elsewhere",
                &["subjectAltNames: [{type: Exact, value: elsewhere.test}]"],
            ),
            service(
                "san-prefix",
                "elsewhere",
                &["subjectAltNames: [{type: Prefix, value: elsewhere.}]"],
            ),
            service(
                "sni-beside-sans",
                "right",
                &["subjectAltNames: [{type: Exact, value: elsewhere.test}]"],
            ),
            service(
                "san-exact-miss",
                "elsewhere",
                &["subjectAltNames: [{type: Exact, value: elsewhere.tes}]"],
            ),
            service(
                "san-prefix-miss",
                "elsewhere",
                &["subjectAltNames: [{type: Prefix, value: nowhere.}]"],
            ),
            by_ip,
            service(
                "san-ip-prefix",
                "ip_only",
                &["subjectAltNames: [{type: Prefix, value: '127.0.'}]"],
            ),
        ],
        &[],
    );

    let r = check_all(
        &s,
        &[
            ("default-sni", Expect::Reached("right")),
            ("server-name", Expect::Reached("internal")),
            ("server-name-checked", Expect::TlsFailure(VERIFY_FAILED)),
            ("san-exact", Expect::Reached("elsewhere")),
            ("san-prefix", Expect::Reached("elsewhere")),
            ("sni-beside-sans", Expect::Reached("right")),
            ("san-exact-miss", Expect::TlsFailure(VERIFY_FAILED)),
            ("san-prefix-miss", Expect::TlsFailure(VERIFY_FAILED)),
            ("by-ip", Expect::Reached("right")),
            // Checked against IP SANs too, as Kuma does.
            ("san-ip-prefix", Expect::Reached("ip_only")),
        ],
    );
    let sni = |i: usize| r[i].header("x-seen-sni");
    assert_eq!(sni(0), Some(API), "the first endpoint's name");
    assert_eq!(sni(1), Some("api.internal.test"), "serverName");
    // A listed SAN is accepted although the SNI sent is still the endpoint's name.
    assert_eq!(sni(3), Some(API));
    assert_eq!(sni(4), Some(API));
    assert_eq!(sni(8), None, "an IP endpoint: no SNI");
}

/// `version.min: TLS13` against an upstream that stops at TLS 1.2: refused, the reason in
/// the 503's header. `min: TLS13` alone against a TLS 1.3 upstream works, since the maximum
/// is raised with it (Kuma leaves Envoy's maximum, TLS 1.2, and every handshake fails);
/// `max: TLS12` holds the handshake to TLS 1.2.
#[test]
fn tls_versions_bound_the_handshake() {
    let dir = test_dir();
    let d = dir.path();
    let (p, _other, up) = setup(d, |b, p, _| {
        b.tls12_only("tls12", &p.server).tls("tls13", &p.server)
    });
    let ca = inline_string("caCert", p.ca.ca_pem());
    let service = |name: &str, listener: &str, version: &str| {
        mes(
            name,
            "http",
            &[endpoint(up.port(listener))],
            &[
                format!("version: {version}"),
                verification(std::slice::from_ref(&ca)),
            ],
        )
    };
    let s = serve(
        d,
        &up,
        &[
            service("min13-to-tls12", "tls12", "{min: TLS13}"),
            service("min13-to-tls13", "tls13", "{min: TLS13}"),
            service("max12-to-tls13", "tls13", "{max: TLS12}"),
        ],
        &[],
    );

    let r = check_all(
        &s,
        &[
            ("min13-to-tls12", Expect::TlsFailure("PROTOCOL_VERSION")),
            ("min13-to-tls13", Expect::Reached("tls13")),
            ("max12-to-tls13", Expect::Reached("tls13")),
        ],
    );
    assert_eq!(
        r[1].header("x-seen-tls-version"),
        Some("TLSv1.3"),
        "{:?}",
        r[1]
    );
    assert_eq!(
        r[2].header("x-seen-tls-version"),
        Some("TLSv1.2"),
        "{:?}",
        r[2]
    );
}

/// `clientCert` and `clientKey` from each DataSource, `inline` (base64), `inlineString` and
/// `secret`, are presented to an upstream that requires a client certificate; without them
/// it refuses.
#[test]
fn client_certificates_from_every_data_source_are_presented() {
    let dir = test_dir();
    let d = dir.path();
    let (p, _other, up) = setup(d, |b, p, _| b.mtls("mtls", &p.server, &p.ca));
    let b64 = |pem: &str| base64::engine::general_purpose::STANDARD.encode(pem);
    let secret = |name: &str, pem: &str| {
        dedent(&format!(
            "
            type: Secret
            mesh: default
            name: {name}
            data: {}
            ",
            b64(pem)
        ))
    };
    let ca = inline_string("caCert", p.ca.ca_pem());
    let service = |name: &str, client: &[String]| {
        let mut entries = vec![ca.clone()];
        entries.extend(client.iter().cloned());
        mes(
            name,
            "http",
            &[endpoint(up.port("mtls"))],
            &[verification(&entries)],
        )
    };
    let s = serve(
        d,
        &up,
        &[
            secret("client-cert", &p.client.cert_pem),
            secret("client-key", &p.client.key_pem),
            service(
                "inline",
                &[
                    format!("clientCert: {{inline: {}}}", b64(&p.client.cert_pem)),
                    format!("clientKey: {{inline: {}}}", b64(&p.client.key_pem)),
                ],
            ),
            service(
                "inline-string",
                &[
                    inline_string("clientCert", &p.client.cert_pem),
                    inline_string("clientKey", &p.client.key_pem),
                ],
            ),
            service(
                "secret",
                &[
                    "clientCert: {secret: client-cert}".to_string(),
                    "clientKey: {secret: client-key}".to_string(),
                ],
            ),
            service("no-client-cert", &[]),
        ],
        &[],
    );

    for name in ["inline", "inline-string", "secret"] {
        let r = get(&s, name);
        assert_reached(&r, "mtls", name);
        assert_eq!(
            r.header("x-seen-peer-subject"),
            Some("CN=client-app"),
            "{name}: {r:?}"
        );
        assert_forwarded(&s, name, 1);
    }
    let refused = get(&s, "no-client-cert");
    assert_eq!(refused.status, 503, "{refused:?}");
    assert_eq!(
        up.envoy
            .counter("listener.127.0.0.1_0.ssl.fail_verify_no_cert"),
        1
    );
}

/// `allowRenegotiation` reaches Envoy's upstream TLS context (and only when asked), and
/// Envoy accepts the configuration. (A server that renegotiates is not in the kit: Envoy,
/// the kit's server, never asks for it.)
#[test]
fn allow_renegotiation_reaches_envoy() {
    let dir = test_dir();
    let d = dir.path();
    let service = |name: &str, tls: &str| mes(name, "http", &[endpoint(443)], &[tls.to_string()]);
    let resources = docs(&[
        mesh(false),
        service("renegotiating", "allowRenegotiation: true"),
        service("default", "allowRenegotiation: false"),
    ]);
    let generated = generate(d, &resources, free_port(), None, &[]);
    assert_eq!(generated.code, Some(0), "{generated:?}");
    let context =
        |name: &str| generated_cluster(d, name)["transport_socket"]["typed_config"].clone();
    assert_eq!(context("renegotiating")["allow_renegotiation"], true);
    assert!(context("default")["allow_renegotiation"].is_null());
    let validated = validate_config(&d.join("envoy.yaml"));
    assert!(validated.ok, "{validated:?}");
}
