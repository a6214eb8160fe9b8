//! The policy document's own resources (`external-service-policy.md`, Universal and Kubernetes
//! tabs), working as documented.

use extsvc_testkit::{assert_forwarded_line, dataplane, dedent, docs, Curl, Sidecar};

use super::{assert_forwarded, assert_reached, httpbin, system_ca};

/// `external-service-policy.md`, Universal tab: the `httpbin` ExternalService as written (only
/// the address points at a local HTTPS upstream; no caCert, so it is verified against the
/// system store, here a bundle with the test CA) and the Dataplane (another outbound port).
/// As the document says: `curl httpbin.mesh` (port 80) speaks plain HTTP and gets the HTTPS
/// service, the real name and port work, and the Dataplane outbound reaches httpbin.
#[test]
fn policy_doc_universal_example_works_as_documented() {
    let (dir, p, up, real) = httpbin();
    let d = dir.path();
    let bundle = system_ca(d, "system-ca.pem", p.ca.ca_pem());
    let s = Sidecar::start_with_outbounds(d, up.dns_addr(), 1, &bundle, |ports| {
        docs(&[
            dedent(&format!(
                "
                type: ExternalService
                mesh: default
                name: httpbin
                tags:
                  kuma.io/service: httpbin
                  kuma.io/protocol: http
                networking:
                  address: {real}
                  tls:
                    enabled: true
                "
            )),
            dataplane(ports[0], "httpbin"),
        ])
    });
    let out = s.outbound[0];

    for r in [
        s.via_proxy("http://httpbin.mesh/get").run(),
        s.with_host("httpbin.mesh:80", "/get").run(),
        s.via_proxy(&format!("http://{real}/get")).run(),
        Curl::get(format!("http://127.0.0.1:{out}/get")).run(),
    ] {
        assert_reached(&r, "tls", Some("httpbin.test"), &real);
        assert_eq!(r.header("x-seen-tls-version"), Some("TLSv1.3"), "{r:?}");
    }
    let log = s.access_log(4);
    for line in &log[..3] {
        assert_forwarded_line(line, "outbound_http", "httpbin", &real, 200);
    }
    assert_forwarded_line(
        &log[3],
        &format!("outbound:127.0.0.1:{out}"),
        "httpbin",
        &real,
        200,
    );
    s.forwarded("httpbin", 4);
}

/// The Kubernetes tab of the same document: the same service, the same behaviour.
#[test]
fn policy_doc_kubernetes_example_works_as_documented() {
    let (dir, p, up, real) = httpbin();
    let d = dir.path();
    let bundle = system_ca(d, "system-ca.pem", p.ca.ca_pem());
    let s = Sidecar::start(
        d,
        up.dns_addr(),
        &dedent(&format!(
            "
            apiVersion: kuma.io/v1alpha1
            kind: ExternalService
            mesh: default
            metadata:
              namespace: default
              name: httpbin
            spec:
              tags:
                kuma.io/service: httpbin
                kuma.io/protocol: http
              networking:
                address: {real}
                tls:
                  enabled: true
            "
        )),
        &bundle,
    );

    for r in [
        s.via_proxy("http://httpbin.mesh/get").run(),
        s.via_proxy(&format!("http://{real}/get")).run(),
    ] {
        assert_reached(&r, "tls", Some("httpbin.test"), &real);
    }
    assert_forwarded(&s, 2, "httpbin", &real);
}
