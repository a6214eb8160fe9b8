//! Client certificates through real Envoy: one host reached with two sets of client
//! certificates by two `.mesh` names (Kuma issues 4400 and 4824), and X.509 v1 certificates.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use extsvc_testkit as support;

use std::path::Path;
use std::process::Command;

use support::{
    assert_ok_from, ca_file, docs, https_service, mesh, test_dir, with_dns, Ca, CertKey, Pki,
    Sidecar, Upstream, UpstreamBuilder,
};

/// An upstream that asks for a client certificate signed by the kit's CA (listener `mtls`),
/// with DNS for `httpbin.test`; and its address `httpbin.test:<port>`.
fn mtls_upstream(d: &Path, p: &Pki) -> (Upstream, String) {
    let up = with_dns(
        UpstreamBuilder::new().mtls("mtls", &p.server, &p.ca),
        &["httpbin.test"],
    )
    .start(d);
    let real = format!("httpbin.test:{}", up.port("mtls"));
    (up, real)
}

/// An HTTP service at `real` over TLS with this client certificate from files, trusting the
/// kit's CA; `hidden` sets disableHostDNSEntry.
fn service_with_client_cert(
    name: &str,
    real: &str,
    ca: &Ca,
    client: &CertKey,
    hidden: bool,
) -> String {
    let mut y = https_service(
        name,
        "http",
        real,
        &[
            ca_file(ca),
            format!("clientCert: {{file: \"{}\"}}", client.cert_path.display()),
            format!("clientKey: {{file: \"{}\"}}", client.key_path.display()),
        ],
    );
    if hidden {
        y.push_str("  disableHostDNSEntry: true\n");
    }
    y
}

fn sidecar(d: &Path, up: &Upstream, services: &[String]) -> Sidecar {
    let resources: Vec<String> = std::iter::once(mesh(false))
        .chain(services.iter().cloned())
        .collect();
    Sidecar::start(d, up.dns_addr(), &docs(&resources), &[])
}

/// Two services on one `host:port`, each with its own client certificate and its real name
/// given up: each `.mesh` name presents its own certificate, the upstream sees the real host,
/// and the real name reaches neither.
#[test]
fn one_host_with_two_client_certificates_by_two_mesh_names() {
    let dir = test_dir();
    let d = dir.path();
    let p = Pki::new(d);
    let (up, real) = mtls_upstream(d, &p);
    let a = p.ca.client_cert(d, "client-a", "client-a");
    let b = p.ca.client_cert(d, "client-b", "client-b");
    let s = sidecar(
        d,
        &up,
        &[
            service_with_client_cert("tenant-a", &real, &p.ca, &a, true),
            service_with_client_cert("tenant-b", &real, &p.ca, &b, true),
        ],
    );
    for (name, subject) in [("tenant-a", "CN=client-a"), ("tenant-b", "CN=client-b")] {
        let r = s.via_proxy(&format!("http://{name}.mesh/get")).run();
        assert_ok_from(&r, "mtls");
        assert_eq!(r.header("x-seen-peer-subject"), Some(subject), "{r:?}");
        assert_eq!(r.header("x-seen-host"), Some(real.as_str()), "{r:?}");
    }
    let r = s.via_proxy(&format!("http://{real}/get")).run();
    assert_eq!(r.status, 403, "{r:?}");
    assert_eq!(
        r.header("x-external-service-denied"),
        Some("undeclared-host")
    );
    s.forwarded("tenant-a", 1);
    s.forwarded("tenant-b", 1);
}

/// `openssl x509 -req` without extensions makes a version 1 certificate: curl, BoringSSL and
/// Envoy take it as a client certificate, and so does extsvc.
#[test]
fn an_x509_v1_client_certificate_is_presented() {
    let dir = test_dir();
    let d = dir.path();
    let p = Pki::new(d);
    let v1 = v1_client_cert(d, &p.ca, "v1-client");
    let (up, real) = mtls_upstream(d, &p);
    let s = sidecar(
        d,
        &up,
        &[service_with_client_cert(
            "httpbin", &real, &p.ca, &v1, false,
        )],
    );
    let r = s.via_proxy("http://httpbin.mesh/get").run();
    assert_ok_from(&r, "mtls");
    assert_eq!(
        r.header("x-seen-peer-subject"),
        Some("CN=v1-client"),
        "{r:?}"
    );
}

/// A version 1 client certificate `CN=<cn>` signed by `ca`, made by openssl as a user would.
pub fn v1_client_cert(d: &Path, ca: &Ca, cn: &str) -> CertKey {
    let key_path = d.join(format!("{cn}.key"));
    let csr = d.join(format!("{cn}.csr"));
    let cert_path = d.join(format!("{cn}.pem"));
    let run = |args: &[&str]| {
        let out = Command::new("openssl").args(args).output().unwrap();
        assert!(out.status.success(), "openssl {args:?}: {out:?}");
    };
    run(&[
        "req",
        "-new",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        &key_path.display().to_string(),
        "-subj",
        &format!("/CN={cn}"),
        "-out",
        &csr.display().to_string(),
    ]);
    run(&[
        "x509",
        "-req",
        "-in",
        &csr.display().to_string(),
        "-CA",
        &ca.cert.cert_path.display().to_string(),
        "-CAkey",
        &ca.cert.key_path.display().to_string(),
        "-CAcreateserial",
        "-days",
        "30",
        "-out",
        &cert_path.display().to_string(),
    ]);
    let cert_pem = std::fs::read_to_string(&cert_path).unwrap();
    let text = Command::new("openssl")
        .args(["x509", "-noout", "-text", "-in"])
        .arg(&cert_path)
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&text.stdout).contains("Version: 1 (0x0)"),
        "openssl made no v1 certificate: {text:?}"
    );
    CertKey {
        key_pem: std::fs::read_to_string(&key_path).unwrap(),
        cert_pem,
        cert_path,
        key_path,
    }
}
