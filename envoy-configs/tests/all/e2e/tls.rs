//! TLS origination: mTLS, trust (caCert, wrong CA, the system bundle), names (SNI,
//! `serverName`, skipped hostname verification, an IP address's SAN).

use base64::Engine as _;
use extsvc_testkit::{
    assert_503_without_upstream, assert_forwarded_line, assert_ok_from, assert_tls_failure_line,
    ca_file, dedent, https_service, test_dir, with_dns, Ca, Pki, UpstreamBuilder,
};

use super::{
    assert_forwarded, assert_reached, cluster_counter, get_httpbin_once, httpbin,
    httpbin_with_cert_for, httpbin_with_system_bundle, one_service, setup_at, sidecar,
};

/// mTLS: the upstream requires a client certificate; the one from the resources (clientCert
/// from a Secret, clientKey from a file) is presented and the upstream sees its subject.
#[test]
fn mtls_presents_the_client_certificate() {
    let (dir, p, up, real) = setup_at(
        &["httpbin.test"],
        |b, p| b.mtls("mtls", &p.server, &p.ca),
        "mtls",
    );
    let d = dir.path();
    let b64 = base64::engine::general_purpose::STANDARD.encode(&p.client.cert_pem);
    let s = sidecar(
        d,
        &up,
        &[
            dedent(&format!(
                "
                type: Secret
                mesh: default
                name: httpbin-client-cert
                data: {b64}
                "
            )),
            https_service(
                "httpbin",
                "http",
                &real,
                &[
                    ca_file(&p.ca),
                    "clientCert: {secret: httpbin-client-cert}".to_string(),
                    format!("clientKey: {{file: \"{}\"}}", p.client.key_path.display()),
                ],
            ),
        ],
        &[],
    );

    let r = get_httpbin_once(&s, "mtls", "httpbin.test", &real);
    assert_eq!(
        r.header("x-seen-peer-subject"),
        Some("CN=client-app"),
        "{r:?}"
    );
}

/// mTLS upstream, no clientCert in the resource: the handshake fails and the app gets 503.
#[test]
fn mtls_without_client_certificate_fails_with_503() {
    let (_dir, up, s, real) = one_service(
        &["httpbin.test"],
        |b, p| b.mtls("mtls", &p.server, &p.ca),
        "mtls",
        "httpbin",
        "http",
    );

    let r = s.via_proxy("http://httpbin.mesh/get").run();
    assert_503_without_upstream(&r);
    let line = &s.access_log(1)[0];
    assert_forwarded_line(line, "outbound_http", "httpbin", &real, 503);
    // With TLS 1.3 the client's side of the handshake is done before the server checks the
    // (empty) certificate; its alert then ends the connection: `UC`, "connection termination"
    // (`UF` with TLS 1.2, see ENVOY_FACTS.md a). No request reached the upstream.
    assert_eq!(line["response_flags"], "UC", "{line}");
    assert_eq!(
        line["response_code_details"],
        "upstream_reset_before_response_started{connection_termination}",
        "{line}"
    );
    s.forwarded("httpbin", 1);
    // The upstream refused the handshake for want of a client certificate.
    assert_eq!(
        up.envoy
            .counter("listener.127.0.0.1_0.ssl.fail_verify_no_cert"),
        1
    );
    assert_eq!(up.envoy.counter("http.mtls.downstream_rq_total"), 0);
    assert_eq!(cluster_counter(&s, "httpbin", "ssl.connection_error"), 1);
}

/// A caCert that did not sign the server certificate: 503 five times out of five, each with
/// the TLS failure in the access log; the right CA beside it (as `inlineString`): 200.
#[test]
fn wrong_ca_fails_every_time_and_the_right_ca_succeeds() {
    let dir = test_dir();
    let d = dir.path();
    let names = ["httpbin.test", "good.test"];
    let p = Pki::for_names(d, &names);
    let other = Ca::new(d, "other-ca");
    let up = with_dns(UpstreamBuilder::new().tls("tls", &p.server), &names).start(d);
    let port = up.port("tls");
    let s = sidecar(
        d,
        &up,
        &[
            https_service(
                "httpbin",
                "http",
                &format!("httpbin.test:{port}"),
                &[ca_file(&other)],
            ),
            https_service(
                "good",
                "http",
                &format!("good.test:{port}"),
                &[format!(
                    "caCert: {{inlineString: {}}}",
                    serde_json::to_string(p.ca.ca_pem()).unwrap()
                )],
            ),
        ],
        &[],
    );

    for _ in 0..5 {
        assert_503_without_upstream(&s.via_proxy("http://httpbin.mesh/get").run());
    }
    assert_ok_from(&s.via_proxy("http://good.mesh/get").run(), "tls");

    let log = s.access_log(6);
    for line in &log[..5] {
        assert_tls_failure_line(line, "httpbin", "CERTIFICATE_VERIFY_FAILED");
        assert_tls_failure_line(line, "httpbin", "unable_to_get_local_issuer_certificate");
    }
    assert_forwarded_line(
        &log[5],
        "outbound_http",
        "good",
        &format!("good.test:{port}"),
        200,
    );
    s.forwarded("httpbin", 5);
    s.forwarded("good", 1);
    assert_eq!(cluster_counter(&s, "httpbin", "ssl.fail_verify_error"), 5);
}

/// No caCert: the server is verified against the bundle given by `--system-ca`.
#[test]
fn no_ca_cert_verifies_against_the_system_ca_bundle() {
    let (_dir, _up, s, real) = httpbin_with_system_bundle(true);
    get_httpbin_once(&s, "tls", "httpbin.test", &real);
}

/// No caCert, and the `--system-ca` bundle lacks the server's CA: refused.
#[test]
fn no_ca_cert_is_refused_when_the_system_bundle_lacks_the_ca() {
    let (_dir, _up, s, _) = httpbin_with_system_bundle(false);

    assert_503_without_upstream(&s.via_proxy("http://httpbin.mesh/get").run());
    let line = &s.access_log(1)[0];
    assert_tls_failure_line(line, "httpbin", "unable_to_get_local_issuer_certificate");
    s.forwarded("httpbin", 1);
    assert_eq!(cluster_counter(&s, "httpbin", "ssl.fail_verify_error"), 1);
}

/// A server certificate for another name with `skipHostnameVerification: true`: accepted (the
/// chain is still verified against the caCert; without it the SAN check refuses it, see
/// `faults::bad_server_certificates_fail_closed`).
#[test]
fn skip_hostname_verification_accepts_a_san_mismatch() {
    let (_dir, _up, s, real) =
        httpbin_with_cert_for("elsewhere.test", "skipHostnameVerification: true");
    get_httpbin_once(&s, "tls", "httpbin.test", &real);
}

/// `serverName` is the SNI the upstream sees, and the name its certificate is checked
/// against; Host stays the real address.
#[test]
fn server_name_sets_the_sni() {
    let (_dir, _up, s, real) =
        httpbin_with_cert_for("api.internal.test", "serverName: api.internal.test");
    get_httpbin_once(&s, "tls", "api.internal.test", &real);
}

/// An IP address: a STATIC cluster, no SNI sent, the certificate checked for the IP SAN
/// (caCert given as `inline` base64).
#[test]
fn ip_address_service_sends_no_sni_and_checks_the_ip_san() {
    let (dir, p, up, _) = httpbin();
    let d = dir.path();
    let real = format!("127.0.0.1:{}", up.port("tls"));
    let s = sidecar(
        d,
        &up,
        &[https_service(
            "byip",
            "http",
            &real,
            &[format!(
                "caCert: {{inline: {}}}",
                base64::engine::general_purpose::STANDARD.encode(p.ca.ca_pem())
            )],
        )],
        &[],
    );

    for r in [
        s.via_proxy("http://byip.mesh/").run(),
        s.via_proxy(&format!("http://{real}/")).run(),
    ] {
        assert_reached(&r, "tls", None, &real);
    }
    assert_forwarded(&s, 2, "byip", &real);
}
