//! Key material: never printed by the CLI (validate, generate), never in Envoy's access log or
//! its own log; a configuration holding an inline key is created mode 0600; `file:` sources
//! stay paths; `--secrets-dir` moves inline and Secret material into 0600 files in a 0700
//! directory and the configuration names them (and works in real Envoy with mTLS).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use extsvc_testkit as support;

use std::ffi::OsString;
use std::fs;
use std::net::{IpAddr, Ipv4Addr};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use base64::Engine as _;
use support::{
    dedent, docs, extsvc, https_service, mesh, test_dir, Ca, CertKey, Curl, Pki, Sidecar, Upstream,
    UpstreamBuilder,
};

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// Pieces of `key` that must never show: the PEM label, any 32-byte run of its body, and the
/// same in the base64 a Secret or `inline` carries.
fn assert_no_key(what: &str, text: &str, key: &CertKey) {
    assert!(!text.contains("PRIVATE KEY"), "{what}: a PEM key label");
    let body: String = key
        .key_pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    let encoded = b64(&key.key_pem);
    for source in [&body, &encoded] {
        for start in (0..source.len().saturating_sub(32)).step_by(16) {
            let piece = &source[start..start + 32];
            assert!(!text.contains(piece), "{what}: key bytes {piece:?}");
        }
    }
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// An mTLS service whose client key is `inline` (base64), client certificate a Secret, CA
/// `inlineString`: every kind of material that ends up in the configuration.
fn inline_resources(ca: &Ca, client: &CertKey, address: &str) -> String {
    docs(&[
        mesh(false),
        dedent(&format!(
            "
            type: Secret
            mesh: default
            name: client-cert
            data: {}
            ",
            b64(&client.cert_pem)
        )),
        https_service(
            "httpbin",
            "http",
            address,
            &[
                format!(
                    "caCert: {{inlineString: {}}}",
                    serde_json::to_string(ca.ca_pem()).unwrap()
                ),
                "clientCert: {secret: client-cert}".to_string(),
                format!("clientKey: {{inline: {}}}", b64(&client.key_pem)),
            ],
        ),
    ])
}

/// An mTLS upstream for `httpbin.test`, and the sidecar on [`inline_resources`] for it with
/// these more CLI options. Returns the client certificate, the upstream (keep it: dropped, it
/// stops) and the sidecar.
fn mtls_sidecar(d: &Path, extra: &[OsString]) -> (CertKey, Upstream, Sidecar) {
    let p = Pki::new(d);
    let up = UpstreamBuilder::new()
        .mtls("mtls", &p.server, &p.ca)
        .dns("httpbin.test", &[LOCALHOST])
        .start(d);
    let real = format!("httpbin.test:{}", up.port("mtls"));
    let s = Sidecar::start(
        d,
        up.dns_addr(),
        &inline_resources(&p.ca, &p.client, &real),
        extra,
    );
    (p.client, up, s)
}

/// Once `requests` access log lines are out: neither they nor Envoy's own log hold `key`.
fn assert_logs_hold_no_key(s: &Sidecar, requests: usize, key: &CertKey) {
    s.access_log(requests);
    assert_no_key("access log", &s.envoy.stdout(), key);
    assert_no_key("envoy log", &s.envoy.log(), key);
}

fn args(parts: &[&dyn AsRef<std::ffi::OsStr>]) -> Vec<OsString> {
    parts.iter().map(|p| p.as_ref().to_os_string()).collect()
}

/// validate and generate print no key material, also when they refuse the resources; the
/// generated file with an inline key is 0600, even when it replaces a 0644 file, and so is
/// the clusters' xDS file that holds it.
#[test]
fn the_cli_never_prints_keys_and_writes_inline_keys_privately() {
    let dir = test_dir();
    let d = dir.path();
    let Pki { ca, client, .. } = Pki::new(d);
    let good = inline_resources(&ca, &client, "httpbin.test:443");
    let input = d.join("resources.yaml");
    fs::write(&input, &good).unwrap();

    let run = extsvc(d, &args(&[&"validate", &input]));
    assert_eq!(run.code, Some(0), "{run:?}");
    assert_no_key("validate stdout", &run.stdout, &client);
    assert_no_key("validate stderr", &run.stderr, &client);

    let out = d.join("envoy.yaml");
    fs::write(&out, "old").unwrap();
    fs::set_permissions(&out, fs::Permissions::from_mode(0o644)).unwrap();
    let run = extsvc(d, &args(&[&"generate", &input, &"-o", &out]));
    assert_eq!(run.code, Some(0), "{run:?}");
    assert_no_key("generate stdout", &run.stdout, &client);
    assert_no_key("generate stderr", &run.stderr, &client);
    assert_eq!(mode(&out), 0o600, "a file with an inline key");
    assert!(fs::read_to_string(&out).unwrap().contains("PRIVATE KEY"));

    // With --xds-dir the key is in its SDS secret's file, private as well; the clusters'
    // file only names it.
    let xds = d.join("xds");
    let run = extsvc(
        d,
        &args(&[&"generate", &input, &"-o", &out, &"--xds-dir", &xds]),
    );
    assert_eq!(run.code, Some(0), "{run:?}");
    let secret = xds.join("sds/external_service_httpbin.client-certificate.yaml");
    assert_eq!(mode(&secret), 0o600, "an SDS file with an inline key");
    assert!(fs::read_to_string(&secret).unwrap().contains("PRIVATE KEY"));
    assert_no_key(
        "cds.yaml",
        &fs::read_to_string(xds.join("cds.yaml")).unwrap(),
        &client,
    );
    assert_no_key("the bootstrap", &fs::read_to_string(&out).unwrap(), &client);

    // Invalid beside the key (a bad address; a key that is not the certificate's): the
    // reports name the fields, never the bytes.
    let other = ca.client_cert(d, "other", "other-app");
    let bad = good
        .replace("httpbin.test:443", "httpbin.test:99999")
        .replace(&b64(&client.key_pem), &b64(&other.key_pem));
    fs::write(&input, &bad).unwrap();
    let bad_out = d.join("bad.yaml");
    for (cmd, argv) in [
        ("validate", args(&[&"validate", &input])),
        ("generate", args(&[&"generate", &input, &"-o", &bad_out])),
    ] {
        let run = extsvc(d, &argv);
        assert_eq!(run.code, Some(1), "{cmd}: {run:?}");
        let all = format!("{}{}", run.stdout, run.stderr);
        assert!(all.contains("clientKey"), "{cmd}: {all}");
        assert_no_key(cmd, &all, &other);
        assert_no_key(cmd, &all, &client);
    }
    assert!(!d.join("bad.yaml").exists());
}

/// `file:` sources are referenced by absolute path, never read into the configuration, which
/// then needs no special mode.
#[test]
fn file_sources_stay_paths() {
    let dir = test_dir();
    let d = dir.path();
    let client = Pki::new(d).client;
    let resources = docs(&[
        mesh(false),
        https_service(
            "httpbin",
            "http",
            "httpbin.test:443",
            &[
                "caCert: {file: ca.pem}".to_string(),
                "clientCert: {file: client.pem}".to_string(),
                "clientKey: {file: client.key}".to_string(),
            ],
        ),
    ]);
    fs::write(d.join("resources.yaml"), resources).unwrap();
    let out = d.join("envoy.yaml");
    let run = extsvc(d, &args(&[&"generate", &"resources.yaml", &"-o", &out]));
    assert_eq!(run.code, Some(0), "{run:?}");
    let config = fs::read_to_string(&out).unwrap();
    assert_no_key("config", &config, &client);
    assert!(!config.contains("BEGIN"), "{config}");
    for f in ["ca.pem", "client.pem", "client.key"] {
        let abs = d.canonicalize().unwrap().join(f);
        assert!(
            config.contains(&format!("filename: {}", abs.display())),
            "{f} by absolute path in {config}"
        );
    }
    assert_eq!(mode(&out), 0o644);
}

/// `--secrets-dir`: the material goes to 0600 files in a 0700 directory, the configuration
/// (no longer private) names them, and real Envoy uses them: mTLS to the upstream works, and
/// neither the access log nor Envoy's log holds key material.
#[test]
fn secrets_dir_moves_material_to_private_files_that_envoy_uses() {
    let dir = test_dir();
    let d = dir.path();
    let secrets = d.join("secrets");
    let (client, _up, s) = mtls_sidecar(d, &["--secrets-dir".into(), secrets.clone().into()]);

    assert_eq!(mode(&secrets), 0o700);
    let mut names: Vec<String> = fs::read_dir(&secrets)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "external_service_httpbin.ca-cert.pem",
            "external_service_httpbin.client-cert.pem",
            "external_service_httpbin.client-key.pem",
        ]
    );
    for n in &names {
        assert_eq!(mode(&secrets.join(n)), 0o600, "{n}");
    }
    assert_eq!(
        fs::read_to_string(secrets.join("external_service_httpbin.client-key.pem")).unwrap(),
        client.key_pem
    );
    let config_path = d.join("envoy.yaml");
    let config = fs::read_to_string(&config_path).unwrap();
    assert!(!config.contains("BEGIN"), "{config}");
    assert_no_key("config", &config, &client);
    assert!(config.contains(&format!(
        "filename: {}",
        secrets
            .join("external_service_httpbin.client-key.pem")
            .display()
    )));
    assert_eq!(mode(&config_path), 0o644);

    let r = Curl::get("http://httpbin.mesh/get").proxy(s.proxy()).run();
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("x-seen-peer-subject"), Some("CN=client-app"));
    let denied = Curl::get("http://evil.example/").proxy(s.proxy()).run();
    assert_eq!(denied.status, 403);
    assert_logs_hold_no_key(&s, 2, &client);
}

/// The inline form in real Envoy: the access log and Envoy's log (info) hold no key either.
#[test]
fn inline_keys_stay_out_of_envoy_logs() {
    let dir = test_dir();
    let d = dir.path();
    let (client, _up, s) = mtls_sidecar(d, &[]);
    let r = Curl::get("http://httpbin.mesh/get").proxy(s.proxy()).run();
    assert_eq!(r.status, 200, "{r:?}");
    assert_logs_hold_no_key(&s, 1, &client);
    // The filter's configuration (in the same file) carries no TLS material at all.
    assert_eq!(mode(&d.join("envoy.yaml")), 0o600);
}
