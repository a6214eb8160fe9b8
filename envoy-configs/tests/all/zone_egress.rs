//! A Dataplane's sidecar (`generate --dataplane`) sending external traffic through the
//! ZoneEgress (`generate --zone-egress`), on loopback: the mesh's `provided` CA issues each
//! Envoy its certificate, the egress takes only the mesh's clients, picks the service by SNI
//! and originates TLS to the real host; `watch` renews the certificates with no restart; two
//! egresses share the load and one that stops is noticed and avoided.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use extsvc_testkit as support;

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::fs;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use serde_json::Value;
use support::{
    assert_not_permitted, ca_file, dedent, docs, eventually, extsvc, free_port, https_service,
    mesh_through_egress, tcp_echo, test_dir, with_dns, zone_egress, Ca, Curl, Envoy, EnvoyOptions,
    Pki, Sidecar, TlsClient, Upstream, UpstreamBuilder, WAIT,
};
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

use crate::live::{Stream, Watch};

/// The sidecar's outbound for the tcp MeshExternalService `db`.
const DB_OUTBOUND: &str = "127.0.0.1";

/// An upstream world (`httpbin.test` over HTTPS, `db.test` a TCP echo), the mesh's CA, and
/// the ports the ZoneEgress instances listen on.
struct World {
    dir: tempfile::TempDir,
    pki: Pki,
    mesh_ca: Ca,
    up: Upstream,
    egress_ports: Vec<u16>,
    db_port: u16,
}

impl World {
    fn new(egresses: usize) -> World {
        let dir = test_dir();
        let pki = Pki::new(dir.path());
        let mesh_ca = Ca::new(dir.path(), "mesh-ca");
        let up = with_dns(
            UpstreamBuilder::new().tls("tls", &pki.server).tcp("tcp"),
            &["httpbin.test", "db.test"],
        )
        .start(dir.path());
        World {
            egress_ports: (0..egresses).map(|_| free_port()).collect(),
            db_port: free_port(),
            dir,
            pki,
            mesh_ca,
            up,
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The mesh (mTLS by the provided CA, certificates living `expiration`, external traffic
    /// through the ZoneEgress), its egresses, `httpbin` (HTTPS), `db` (a tcp
    /// MeshExternalService), the Dataplanes `web` (with an outbound to `db`), `batch` and
    /// `audit`, and who may reach `httpbin`: `web`, and `audit` with a shadow denial (`db`,
    /// a MeshExternalService no rule names, anyone of the mesh).
    fn resources(&self, expiration: &str) -> String {
        let mesh = mesh_through_egress(&self.mesh_ca, Some(expiration));
        let egresses = self
            .egress_ports
            .iter()
            .enumerate()
            .map(|(i, port)| zone_egress(i + 1, "127.0.0.1", *port));
        let db = dedent(&format!(
            "
            type: MeshExternalService
            mesh: default
            name: db
            spec:
              match: {{port: 5432, protocol: tcp}}
              endpoints: [{{address: db.test, port: {}}}]
            ",
            self.up.port("tcp")
        ));
        let dataplane = |name: &str, outbound: &str| {
            format!(
                "type: Dataplane\nmesh: default\nname: {name}\nnetworking:\n  address: 127.0.0.1\n  \
                 inbound: [{{port: 8080, tags: {{kuma.io/service: {name}, team: a}}}}]\n  \
                 outbound: [{outbound}]\n"
            )
        };
        let mut parts = vec![mesh];
        parts.extend(egresses);
        parts.extend([
            https_service(
                "httpbin",
                "http",
                &format!("httpbin.test:{}", self.up.port("tls")),
                &[ca_file(&self.pki.ca)],
            ),
            db,
            dataplane(
                "web",
                &format!(
                    "{{address: {DB_OUTBOUND}, port: {}, backendRef: {{kind: MeshExternalService, name: db}}}}",
                    self.db_port
                ),
            ),
            dataplane("batch", ""),
            dataplane("audit", ""),
            dedent(
                "
                type: MeshTrafficPermission
                mesh: default
                name: httpbin-callers
                spec:
                  targetRef: {kind: MeshService, name: httpbin}
                  from:
                  - targetRef: {kind: MeshSubset, tags: {kuma.io/service: web}}
                    default: {action: Allow}
                  - targetRef: {kind: MeshSubset, tags: {kuma.io/service: audit}}
                    default: {action: AllowWithShadowDeny}
                ",
            ),
        ]);
        docs(&parts)
    }

    /// The folder of one Envoy's files (`<world>/<name>/`), created.
    fn folder(&self, name: &str) -> PathBuf {
        let d = self.path().join(name);
        fs::create_dir_all(&d).unwrap();
        d
    }

    /// `extsvc generate` of `role` (`--dataplane web`, `--zone-egress egress-1`), Envoy
    /// started on it in `<world>/<name>/`, the xDS files in `<world>/<name>/xds/`.
    fn start(&self, name: &str, role: &[&str], resources: &str) -> Sidecar {
        let d = self.folder(name);
        let mut extra: Vec<OsString> = role.iter().map(OsString::from).collect();
        extra.extend(["--xds-dir".into(), d.join("xds").into()]);
        Sidecar::start(&d, self.up.dns_addr(), resources, &extra)
    }

    fn egress(&self, n: usize, resources: &str) -> Sidecar {
        let name = format!("egress-{n}");
        self.start(&name, &["--zone-egress", &name], resources)
    }

    fn sidecar(&self, dataplane: &str, resources: &str) -> Sidecar {
        self.start(dataplane, &["--dataplane", dataplane], resources)
    }

    /// The egress's address.
    fn egress_at(&self, n: usize) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.egress_ports[n - 1]))
    }

    /// The certificate and key an Envoy's identity SDS file holds, written out as PEM files
    /// (`<world>/<name>/identity.pem`, `.key`), as a client stealing them would use them.
    fn identity_files(&self, name: &str) -> (PathBuf, PathBuf) {
        let (cert, key) = identity_of(&self.path().join(name).join("xds"));
        let d = self.path().join(name);
        fs::write(d.join("identity.pem"), cert).unwrap();
        fs::write(d.join("identity.key"), key).unwrap();
        (d.join("identity.pem"), d.join("identity.key"))
    }
}

/// The certificate and key PEM of the identity SDS file in `xds`.
pub fn identity_of(xds: &Path) -> (String, String) {
    let text = fs::read_to_string(xds.join("sds/identity.yaml")).unwrap();
    let file: Value = serde_yaml_ng::from_str(&text).unwrap();
    let certificate = &file["resources"][0]["tls_certificate"];
    let pem = |field: &str| {
        certificate[field]["inline_string"]
            .as_str()
            .unwrap()
            .to_string()
    };
    (pem("certificate_chain"), pem("private_key"))
}

/// `GET /get` for `httpbin.mesh` through the sidecar's HTTP proxy listener.
fn httpbin(s: &Sidecar) -> Curl {
    Curl::get(format!("{}/get", s.proxy())).host("httpbin.mesh")
}

/// An HTTP/1.1 request that asks the server to close after answering.
const REQUEST: &str = "GET /get HTTP/1.1\r\nHost: httpbin.test\r\nConnection: close\r\n\r\n";

/// The access log lines of `envoy` (JSON on stdout) that hold `needle`, parsed.
fn lines(envoy: &Envoy, needle: &str, count: usize) -> Vec<Value> {
    envoy
        .wait_for_stdout_lines(needle, count, WAIT)
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn a_dataplane_reaches_https_and_tcp_services_through_the_egress_which_originates_tls() {
    let w = World::new(1);
    let resources = w.resources("1h");
    let egress = w.egress(1, &resources);
    let web = w.sidecar("web", &resources);

    let r = httpbin(&web).run();
    assert_eq!(r.status, 200, "{r:?}\n{}", egress.envoy.log_tail(20));
    assert_eq!(r.header("x-upstream-name"), Some("tls"), "{r:?}");
    // The egress, not the sidecar, spoke TLS to the real host, by its name.
    assert_eq!(r.header("x-seen-sni"), Some("httpbin.test"), "{r:?}");
    let sidecar_line = &web.access_log(1)[0];
    assert_eq!(
        sidecar_line["upstream_host"],
        w.egress_at(1).to_string(),
        "{sidecar_line}"
    );
    let request = &lines(&egress.envoy, "\"method\":", 1)[0];
    assert_eq!(request["external_service"], "httpbin", "{request}");
    assert_eq!(request["response_code"], 200, "{request}");
    assert_eq!(
        request["source_identity"], "spiffe://default/web,kuma://kuma.io/service/web,kuma://team/a",
        "{request}"
    );
    assert_eq!(
        request["upstream_cluster"], "external_service_httpbin",
        "{request}"
    );

    let db = SocketAddr::new(DB_OUTBOUND.parse().unwrap(), w.db_port);
    assert_eq!(
        tcp_echo(db, "ping through the egress"),
        "ping through the egress"
    );
    let connection = eventually(
        "the egress logs the tcp connection",
        WAIT,
        WAIT / 50,
        || {
            let found = egress.envoy.stdout().lines().find_map(|l| {
                let v: Value = serde_json::from_str(l).ok()?;
                (v["external_service"] == "MeshExternalService/db" && v["bytes_sent"] != 0)
                    .then_some(v)
            });
            found.ok_or_else(|| egress.envoy.stdout())
        },
    );
    assert_eq!(
        connection["upstream_cluster"], "external_service_mes_db",
        "{connection}"
    );
    assert!(
        connection["source_identity"]
            .as_str()
            .unwrap()
            .starts_with("spiffe://default/web,"),
        "{connection}"
    );
    assert_eq!(
        egress
            .envoy
            .counter("cluster.external_service_httpbin.ssl.handshake"),
        1
    );
}

/// A sidecar refuses, itself, what its Dataplane may not reach: `batch` gets 403
/// `not-permitted` for `httpbin` (no rule lets it), naming itself and that no policy allows
/// it, counted and logged; its cluster for `httpbin` has no endpoint, so nothing reaches the
/// egress. `db` (a MeshExternalService, allowed by Kuma's default) it still reaches.
#[test]
fn a_sidecar_refuses_what_its_dataplane_may_not_reach_before_the_egress() {
    let w = World::new(1);
    let resources = w.resources("1h");
    let egress = w.egress(1, &resources);
    let batch = w.sidecar("batch", &resources);

    let r = httpbin(&batch).run();
    assert_not_permitted(&r);
    assert_eq!(
        r.body,
        "ExternalService \"httpbin\" may not be reached by \"batch\" (Dataplane \"batch\"): no MeshTrafficPermission or TrafficPermission allows it\n"
    );
    batch.denied("not-permitted", 1);
    let line = &batch.access_log(1)[0];
    assert_eq!(line["denied"], "not-permitted", "{line}");
    assert_eq!(line["source_service"], "batch", "{line}");
    assert_eq!(line["response_code"], 403, "{line}");
    let (_, clusters) = batch.envoy.admin_get("/clusters?format=json").unwrap();
    let clusters: Value = serde_json::from_str(&clusters).unwrap();
    let hosts_of = |name: &str| {
        clusters["cluster_statuses"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .map(|c| c["host_statuses"].as_array().map_or(0, Vec::len))
    };
    assert_eq!(hosts_of("external_service_httpbin"), Some(0), "{clusters}");
    assert_eq!(
        egress
            .envoy
            .counter("cluster.external_service_httpbin.upstream_rq_total"),
        0
    );
    assert_eq!(w.up.envoy.counter("http.tls.downstream_rq_total"), 0);
    // What it may reach keeps its cluster: db, through the egress.
    assert_eq!(hosts_of("external_service_mes_db"), Some(1), "{clusters}");
}

#[test]
fn the_egress_takes_only_clients_of_the_mesh_ca_it_permits_by_their_certificate() {
    let w = World::new(1);
    let resources = w.resources("1h");
    let egress = w.egress(1, &resources);
    // Generating a sidecar issues its certificate; its Envoy need not run. A client holding
    // one speaks to the egress straight, as a stolen key would.
    let identity = |dataplane: &str| {
        let cli = extsvc_generate(&w, dataplane, &["--dataplane", dataplane], &resources);
        assert_eq!(cli.code, Some(0), "{cli:?}");
        w.identity_files(dataplane)
    };
    let (web, audit, batch) = (identity("web"), identity("audit"), identity("batch"));
    let client = |sni: &str| TlsClient::new(w.egress_at(1), sni).trust(w.mesh_ca.ca_path());
    let httpbin_as = |(cert, key): &(PathBuf, PathBuf)| {
        client("httpbin{mesh=default}")
            .certificate(cert, key)
            .send(w.path(), REQUEST)
    };
    let stat = |name: &str| format!("egress_external_service_httpbin.rbac.{name}");
    let listener = format!("listener.127.0.0.1_{}.ssl", w.egress_ports[0]);

    // web is allowed; audit too, counted and logged as a shadow denial.
    let ok = httpbin_as(&web);
    assert!(ok.received.starts_with("HTTP/1.1 200"), "{ok:?}");
    let shadowed = httpbin_as(&audit);
    assert!(
        shadowed.received.starts_with("HTTP/1.1 200"),
        "{shadowed:?}"
    );
    egress
        .envoy
        .wait_for_stat(&stat("allowed"), WAIT, |n| n == 2);
    egress
        .envoy
        .wait_for_stat(&stat("shadow_denied"), WAIT, |n| n == 1);
    let audit_line = &lines(&egress.envoy, "spiffe://default/audit", 2)
        .into_iter()
        .find(|l| l.get("termination").is_some())
        .unwrap();
    assert_eq!(audit_line["rbac_shadow"], "denied", "{audit_line}");

    // batch holds a real certificate of the mesh, and no permission: the connection is
    // closed at its first bytes, and the world sees nothing of it.
    let refused = httpbin_as(&batch);
    assert!(
        refused.log.contains("CONNECTION ESTABLISHED"),
        "{refused:?}"
    );
    assert_eq!(refused.received, "", "{refused:?}");
    egress
        .envoy
        .wait_for_stat(&stat("denied"), WAIT, |n| n == 1);
    let batch_line = &lines(&egress.envoy, "spiffe://default/batch", 1)[0];
    assert_eq!(batch_line["external_service"], "httpbin", "{batch_line}");
    assert!(
        batch_line["termination"]
            .as_str()
            .unwrap()
            .starts_with("rbac_access_denied"),
        "{batch_line}"
    );

    // Another CA's certificate: refused at the handshake.
    let other = client("httpbin{mesh=default}")
        .certificate(&w.pki.client.cert_path, &w.pki.client.key_path)
        .send(w.path(), REQUEST);
    assert!(other.log.contains("alert unknown ca"), "{other:?}");
    assert_eq!(other.received, "", "{other:?}");
    egress
        .envoy
        .wait_for_stat(&format!("{listener}.fail_verify_error"), WAIT, |n| n == 1);

    // No certificate: refused at the handshake.
    let none = client("httpbin{mesh=default}").send(w.path(), REQUEST);
    assert!(none.log.contains("alert certificate required"), "{none:?}");
    assert_eq!(none.received, "", "{none:?}");
    egress
        .envoy
        .wait_for_stat(&format!("{listener}.fail_verify_no_cert"), WAIT, |n| n == 1);

    // An SNI of no service: no chain, the connection closed before any handshake.
    let unknown = client("elsewhere.test")
        .certificate(&web.0, &web.1)
        .send(w.path(), REQUEST);
    assert!(
        !unknown.log.contains("CONNECTION ESTABLISHED"),
        "{unknown:?}"
    );
    let nowhere = lines(
        &egress.envoy,
        "\"requested_server_name\":\"elsewhere.test\"",
        1,
    );
    assert_eq!(nowhere[0]["response_flags"], "NR", "{}", nowhere[0]);

    // The world saw the two requests allowed, nothing of the others.
    assert_eq!(w.up.envoy.counter("http.tls.downstream_rq_total"), 2);
}

/// `extsvc generate` of `role` into `<world>/<name>/` (bootstrap and `xds/`), no Envoy.
fn extsvc_generate(w: &World, name: &str, role: &[&str], resources: &str) -> support::Cli {
    let d = w.folder(name);
    let input = d.join("resources.yaml");
    fs::write(&input, resources).unwrap();
    let mut args: Vec<OsString> = vec![
        "generate".into(),
        input.into(),
        "-o".into(),
        d.join("envoy.yaml").into(),
        "--xds-dir".into(),
        d.join("xds").into(),
        "--wasm".into(),
        support::wasm_module().into(),
    ];
    args.extend(role.iter().map(OsString::from));
    extsvc(&d, &args)
}

/// A certificate's URI SANs, validity in seconds, and issuer, from its PEM.
fn read_certificate(pem: &str) -> (Vec<String>, i64, String) {
    let der = CertificateDer::from_pem_slice(pem.as_bytes()).unwrap();
    let (_, cert) = X509Certificate::from_der(&der).unwrap();
    let sans = cert.subject_alternative_name().unwrap().unwrap();
    let uris = sans
        .value
        .general_names
        .iter()
        .filter_map(|n| match n {
            GeneralName::URI(u) => Some(u.to_string()),
            _ => None,
        })
        .collect();
    let validity = cert.validity();
    let seconds = validity.not_after.timestamp() - validity.not_before.timestamp();
    (uris, seconds, cert.issuer().to_string())
}

/// Every file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(files_under(&path));
        } else {
            found.push(path);
        }
    }
    found
}

#[test]
fn each_certificate_says_who_for_the_backends_lifetime_and_the_ca_key_is_in_no_output() {
    let w = World::new(1);
    let resources = w.resources("2h");
    for (name, role) in [
        ("web", ["--dataplane", "web"]),
        ("batch", ["--dataplane", "batch"]),
        ("egress-1", ["--zone-egress", "egress-1"]),
    ] {
        let cli = extsvc_generate(&w, name, &role, &resources);
        assert_eq!(cli.code, Some(0), "{cli:?}");
        // The CA key's body is nowhere: not in what extsvc printed, nor in any file it wrote.
        let ca_key_body: String = w
            .mesh_ca
            .cert
            .key_pem
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect();
        for said in [&cli.stdout, &cli.stderr] {
            assert!(!said.replace('\n', "").contains(&ca_key_body), "{said}");
        }
        for file in files_under(&w.path().join(name)) {
            let text = fs::read_to_string(&file).unwrap_or_default();
            let compact: String = text.split_whitespace().collect();
            assert!(
                !compact.contains(&ca_key_body),
                "the CA key is in {}",
                file.display()
            );
        }
        let xds = w.path().join(name).join("xds");
        let mode = |file: &str| fs::metadata(xds.join(file)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode("sds/identity.yaml"), 0o600, "{name}: the key's file");
        assert_eq!(mode("sds/mesh_ca.yaml"), 0o644, "{name}");
        assert_eq!(mode("cds.yaml"), 0o644, "{name}");
    }
    // Generating again keeps the certificate while it serves: Envoy is not woken for nothing.
    let web_identity = || fs::read(w.path().join("web/xds/sds/identity.yaml")).unwrap();
    let first = web_identity();
    let again = extsvc_generate(&w, "web", &["--dataplane", "web"], &resources);
    assert_eq!(again.code, Some(0), "{again:?}");
    assert_eq!(web_identity(), first);
    let issued = |name: &str| read_certificate(&identity_of(&w.path().join(name).join("xds")).0);
    let ca_subject = {
        let der = CertificateDer::from_pem_slice(w.mesh_ca.ca_pem().as_bytes()).unwrap();
        X509Certificate::from_der(&der)
            .unwrap()
            .1
            .subject()
            .to_string()
    };
    // Two hours, from 10 s before issue (Kuma's allowance for a clock behind).
    let lifetime = 2 * 60 * 60 + 10;
    let with_ca = |(uris, seconds, issuer): (Vec<String>, i64, String)| {
        assert_eq!(seconds, lifetime, "{uris:?}");
        assert_eq!(issuer, ca_subject, "{uris:?}");
        uris
    };
    assert_eq!(
        with_ca(issued("web")),
        [
            "spiffe://default/web",
            "kuma://kuma.io/service/web",
            "kuma://team/a"
        ]
    );
    assert_eq!(
        with_ca(issued("batch")),
        [
            "spiffe://default/batch",
            "kuma://kuma.io/service/batch",
            "kuma://team/a"
        ]
    );
    assert_eq!(
        with_ca(issued("egress-1")),
        [
            "spiffe://default/zone-egress",
            "kuma://kuma.io/service/zone-egress"
        ]
    );
}

#[test]
fn what_cannot_be_made_is_refused_saying_what_to_change() {
    let w = World::new(1);
    let resources = w.resources("1h")
        + "---\n"
        + &dedent(
            "
            type: Dataplane
            mesh: default
            name: impostor
            networking:
              address: 127.0.0.1
              inbound: [{port: 8080, tags: {kuma.io/service: zone-egress}}]
            ",
        );
    let cli = extsvc_generate(&w, "impostor", &["--dataplane", "impostor"], &resources);
    assert_eq!(cli.code, Some(1), "{cli:?}");
    assert!(
        cli.stderr.contains(
            "Dataplane \"impostor\" (mesh \"default\"): networking.inbound[0].tags[\"kuma.io/service\"]: \"zone-egress\" is the ZoneEgress's identity"
        ),
        "{cli:?}"
    );
    assert!(!w.path().join("impostor/xds/sds/identity.yaml").exists());

    let cli = extsvc_generate(&w, "nobody", &["--dataplane", "nobody"], &resources);
    assert_eq!(cli.code, Some(1), "{cli:?}");
    assert!(
        cli.stderr.contains(
            "no Dataplane \"nobody\" in mesh \"default\": there are \"web\", \"batch\", \"audit\", \"impostor\""
        ),
        "{cli:?}"
    );

    let d = w.folder("no-xds");
    fs::write(d.join("resources.yaml"), &resources).unwrap();
    let cli = extsvc(
        &d,
        &[
            "generate".into(),
            d.join("resources.yaml").into(),
            "--zone-egress".into(),
            "egress-1".into(),
        ],
    );
    assert_eq!(cli.code, Some(2), "{cli:?}");
    assert!(cli.stderr.contains("give --xds-dir DIR"), "{cli:?}");

    // The egress binds its address: a name there cannot be listened on.
    let by_name = resources.replace(
        "name: egress-1\nnetworking: {address: 127.0.0.1,",
        "name: egress-1\nnetworking: {address: egress.test,",
    );
    let cli = extsvc_generate(&w, "by-name", &["--zone-egress", "egress-1"], &by_name);
    assert_eq!(cli.code, Some(1), "{cli:?}");
    assert!(
        cli.stderr
            .contains("ZoneEgress \"egress-1\": networking.address: the egress listens there"),
        "{cli:?}"
    );

    // A mesh that routes through the egress, and none is declared.
    let no_egress: String = resources
        .split("---\n")
        .filter(|doc| !doc.starts_with("type: ZoneEgress"))
        .collect::<Vec<_>>()
        .join("---\n");
    let cli = extsvc_generate(&w, "no-egress", &["--dataplane", "web"], &no_egress);
    assert_eq!(cli.code, Some(1), "{cli:?}");
    assert!(cli.stderr.contains("no ZoneEgress is declared"), "{cli:?}");
}

/// The serial numbers of the certificates an Envoy presents (its admin's `/certs`).
fn serials(envoy: &Envoy) -> BTreeSet<String> {
    let (status, body) = envoy.admin_get("/certs").unwrap();
    assert_eq!(status, 200, "{body}");
    let certs: Value = serde_json::from_str(&body).unwrap();
    certs["certificates"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["cert_chain"].as_array().cloned().unwrap_or_default())
        .filter_map(|c| c["serial_number"].as_str().map(str::to_string))
        .collect()
}

/// `extsvc watch` of `role` in `<world>/<name>/`, and Envoy started on its bootstrap once it
/// wrote the files.
fn watched(w: &World, name: &str, role: &[&str], resources: &str) -> (Watch, Envoy) {
    let d = w.folder(name);
    let input = d.join("resources.yaml");
    fs::write(&input, resources).unwrap();
    let mut args: Vec<OsString> = vec![
        input.into(),
        "-o".into(),
        d.join("envoy.yaml").into(),
        "--xds-dir".into(),
        d.join("xds").into(),
        "--listen".into(),
        format!("127.0.0.1:{}", free_port()).into(),
        "--stats-listen".into(),
        "127.0.0.1:0".into(),
        "--wasm".into(),
        support::wasm_module().into(),
        "--dns-resolver".into(),
        w.up.dns_addr().unwrap().to_string().into(),
    ];
    args.extend(role.iter().map(OsString::from));
    let watch = Watch::spawn(&d, &args);
    let first = watch.expect_line("updated");
    assert!(first.contains("; certificate "), "{first}");
    let envoy = Envoy::try_start_file(&d, name, &d.join("envoy.yaml"), &EnvoyOptions::default())
        .unwrap_or_else(|e| panic!("{e}"));
    (watch, envoy)
}

/// A permission granted and taken back through `watch`, under a stream of allowed requests:
/// `batch` is let through by its sidecar and the egress once both took the change, then
/// refused again at its sidecar; no Envoy restarts, no xDS update is rejected, and not one of
/// `web`'s requests fails.
#[test]
fn a_permission_change_through_watch_takes_effect_with_no_restart_and_no_failed_request() {
    let w = World::new(1);
    let before = w.resources("1h");
    let (_egress_watch, egress) = watched(&w, "egress-1", &["--zone-egress", "egress-1"], &before);
    let (_web_watch, web) = watched(&w, "web", &["--dataplane", "web"], &before);
    let (_batch_watch, batch) = watched(&w, "batch", &["--dataplane", "batch"], &before);
    let pids = [egress.pid(), web.pid(), batch.pid()];
    let port = |envoy: &Envoy| envoy.listener_port("outbound_http");
    let web_proxy = format!("http://127.0.0.1:{}", port(&web));
    let stream = Stream::of(move || Curl::get(format!("{web_proxy}/get")).host("httpbin.mesh"));
    stream.wait_for_more(5);
    let batch_get = || {
        Curl::get(format!("http://127.0.0.1:{}/get", port(&batch)))
            .host("httpbin.mesh")
            .run()
    };
    assert_eq!(
        batch_get().header("x-external-service-denied"),
        Some("not-permitted")
    );

    let with_batch = |resources: &str| {
        resources.replace(
            "default: {action: Allow}",
            "default: {action: Allow}\n  - targetRef: {kind: MeshSubset, tags: {kuma.io/service: batch}}\n    default: {action: Allow}",
        )
    };
    let granted = with_batch(&before);
    assert_ne!(granted, before, "the grant must change the resources");
    let rewrite = |resources: &str| {
        for name in ["egress-1", "web", "batch"] {
            fs::write(w.path().join(name).join("resources.yaml"), resources).unwrap();
        }
    };
    rewrite(&granted);
    eventually("batch is let through", WAIT, WAIT / 50, || {
        let r = batch_get();
        (r.status == 200).then_some(()).ok_or(format!("{r:?}"))
    });
    rewrite(&before);
    eventually("batch is refused again", WAIT, WAIT / 50, || {
        let r = batch_get();
        (r.header("x-external-service-denied") == Some("not-permitted"))
            .then_some(())
            .ok_or(format!("{r:?}"))
    });
    stream.wait_for_more(5);
    stream.assert_all_served();
    assert_eq!([egress.pid(), web.pid(), batch.pid()], pids);
    for envoy in [&egress, &web, &batch] {
        assert_eq!(envoy.counter("listener_manager.lds.update_rejected"), 0);
        assert_eq!(envoy.counter("cluster_manager.cds.update_rejected"), 0);
    }
}

#[test]
fn watch_renews_both_certificates_before_they_expire_with_no_restart_and_no_failed_request() {
    let w = World::new(1);
    let resources = w.resources("10s");
    let (egress_watch, egress) =
        watched(&w, "egress-1", &["--zone-egress", "egress-1"], &resources);
    let (web_watch, web) = watched(&w, "web", &["--dataplane", "web"], &resources);
    let started = Instant::now();
    let proxy = format!("http://127.0.0.1:{}", web.listener_port("outbound_http"));
    let stream = Stream::of(move || Curl::get(format!("{proxy}/get")).host("httpbin.mesh"));
    stream.wait_for_more(5);
    let (first_web, first_egress) = (serials(&web), serials(&egress));
    assert_eq!(first_web.len(), 1, "{first_web:?}");
    let xds_files = |name: &str| {
        let xds = w.path().join(name).join("xds");
        (
            fs::read(xds.join("lds.yaml")).unwrap(),
            fs::read(xds.join("cds.yaml")).unwrap(),
        )
    };
    let before = (xds_files("web"), xds_files("egress-1"));
    let updates = |envoy: &Envoy| {
        (
            envoy.counter("listener_manager.lds.update_success"),
            envoy.counter("cluster_manager.cds.update_success"),
        )
    };
    let updates_before = (updates(&web), updates(&egress));

    // At 4/5 of 10 s each watch issues a new certificate, and only its SDS file changes.
    for watch in [&web_watch, &egress_watch] {
        let line = watch.expect_line_within("updated", Duration::from_secs(12));
        assert!(
            line.contains("expires in 9s") || line.contains("expires in 10s"),
            "{line}"
        );
    }
    eventually(
        "both Envoys present new certificates",
        WAIT,
        WAIT / 50,
        || {
            let (now_web, now_egress) = (serials(&web), serials(&egress));
            if now_web.is_disjoint(&first_web) && now_egress.is_disjoint(&first_egress) {
                Ok(())
            } else {
                Err(format!("{now_web:?} {now_egress:?}"))
            }
        },
    );
    let renewed_after = started.elapsed();
    assert_eq!((xds_files("web"), xds_files("egress-1")), before);
    assert_eq!((updates(&web), updates(&egress)), updates_before);

    // Past the first certificates' end, the renewed ones carry the traffic.
    while started.elapsed() < Duration::from_secs(12) {
        thread::sleep(Duration::from_millis(200));
    }
    stream.wait_for_more(5);
    stream.assert_all_served();
    eprintln!("certificates renewed {renewed_after:?} after the Envoys started");
}

#[test]
fn two_egresses_share_the_load_and_a_stopped_one_is_avoided_once_noticed() {
    let w = World::new(2);
    let resources = w.resources("1h");
    let mut egresses = vec![w.egress(1, &resources), w.egress(2, &resources)];
    let web = w.sidecar("web", &resources);
    for _ in 0..10 {
        assert_eq!(httpbin(&web).run().status, 200);
    }
    let hosts: BTreeSet<String> = web
        .access_log(10)
        .iter()
        .map(|l| l["upstream_host"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        hosts,
        BTreeSet::from([w.egress_at(1).to_string(), w.egress_at(2).to_string()]),
        "round robin over both"
    );

    // Egress 2 stops at once, as a crash would.
    drop(egresses.pop());
    let stopped = Instant::now();
    let gone = w.egress_at(2).to_string();
    let noticed = eventually(
        "the sidecar notices",
        WAIT,
        Duration::from_millis(10),
        || {
            let (_, clusters) = web.envoy.admin_get("/clusters").unwrap();
            let flag = format!("external_service_httpbin::{gone}::health_flags::/failed_active_hc");
            if clusters.lines().any(|l| l.starts_with(&flag)) {
                Ok(stopped.elapsed())
            } else {
                Err(clusters)
            }
        },
    );
    eprintln!("a stopped egress was noticed by the health check after {noticed:?}");
    assert!(noticed < Duration::from_millis(2500), "{noticed:?}");
    let log_before = web.access_log(10).len();
    for _ in 0..20 {
        let r = httpbin(&web).run();
        assert_eq!(r.status, 200, "{r:?}");
    }
    let after: Vec<Value> = web.access_log(log_before + 20)[log_before..].to_vec();
    assert!(
        after
            .iter()
            .all(|l| l["upstream_host"] == w.egress_at(1).to_string()),
        "{after:?}"
    );
    assert_eq!(egresses.len(), 1);
}

/// `openssl` run in `dir` with these arguments, which must succeed.
fn openssl(dir: &Path, args: &[&str]) {
    let out = std::process::Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run openssl (install it): {e}"));
    assert!(out.status.success(), "openssl {args:?}: {out:?}");
}

#[test]
fn validate_reports_the_mesh_ca_in_kumas_words_and_issuing_names_a_key_it_cannot_sign_with() {
    let w = World::new(1);
    let d = w.folder("ca");
    // A leaf, not a CA: Kuma refuses it as the provided CA.
    let leaf = w.pki.server.clone();
    let resources = w
        .resources("1h")
        .replace(
            &w.mesh_ca.cert.cert_path.display().to_string(),
            &leaf.cert_path.display().to_string(),
        )
        .replace(
            &w.mesh_ca.cert.key_path.display().to_string(),
            &leaf.key_path.display().to_string(),
        );
    fs::write(d.join("leaf.yaml"), &resources).unwrap();
    let cli = extsvc(&d, &["validate".into(), d.join("leaf.yaml").into()]);
    assert_eq!(cli.code, Some(1), "{cli:?}");
    assert!(
        cli.stdout.contains("Mesh \"default\"")
            && cli.stdout.contains("mtls.backends[0].conf.cert[0]")
            && cli.stdout.contains(
                "basic constraint 'CA' must be set to 'true' (see X509-SVID: 4.1. Basic Constraints)"
            ),
        "{cli:?}"
    );

    // A CA whose key is SEC1 (`openssl ecparam -genkey`): Kuma takes it, so validate does;
    // issuing from it needs PKCS#8, and says how to convert it.
    openssl(
        &d,
        &[
            "ecparam",
            "-name",
            "prime256v1",
            "-genkey",
            "-noout",
            "-out",
            "sec1.key",
        ],
    );
    openssl(
        &d,
        &[
            "req",
            "-x509",
            "-new",
            "-key",
            "sec1.key",
            "-out",
            "sec1.pem",
            "-days",
            "3",
            "-subj",
            "/CN=sec1-ca",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    );
    let sec1 = w
        .resources("1h")
        .replace(
            &w.mesh_ca.cert.cert_path.display().to_string(),
            &d.join("sec1.pem").display().to_string(),
        )
        .replace(
            &w.mesh_ca.cert.key_path.display().to_string(),
            &d.join("sec1.key").display().to_string(),
        );
    fs::write(d.join("sec1.yaml"), &sec1).unwrap();
    let cli = extsvc(&d, &["validate".into(), d.join("sec1.yaml").into()]);
    assert_eq!(cli.code, Some(0), "{cli:?}");
    let cli = extsvc_generate(&w, "sec1", &["--zone-egress", "egress-1"], &sec1);
    assert_eq!(cli.code, Some(1), "{cli:?}");
    assert!(
        cli.stderr
            .contains("mtls.backends[0]: conf.key: only a PKCS#8 key")
            && cli.stderr.contains("openssl pkcs8 -topk8 -nocrypt"),
        "{cli:?}"
    );
}

#[test]
fn without_routing_through_the_egress_a_dataplane_reaches_its_services_itself() {
    let w = World::new(1);
    let direct = w
        .resources("1h")
        .replace("routing: {zoneEgress: true}\n", "");
    let cli = extsvc_generate(&w, "web", &["--dataplane", "web"], &direct);
    assert_eq!(cli.code, Some(0), "{cli:?}");
    let xds = w.path().join("web/xds");
    let cds: Value =
        serde_yaml_ng::from_str(&fs::read_to_string(xds.join("cds.yaml")).unwrap()).unwrap();
    let httpbin = cds["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "external_service_httpbin")
        .unwrap();
    let endpoint = &httpbin["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"];
    assert_eq!(
        endpoint["address"]["socket_address"]["address"], "httpbin.test",
        "{httpbin}"
    );
    assert_eq!(
        httpbin["transport_socket"]["typed_config"]["sni"], "httpbin.test",
        "{httpbin}"
    );
    assert!(
        !xds.join("sds/identity.yaml").exists(),
        "no certificate needed"
    );
}
