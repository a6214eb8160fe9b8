//! `extsvc migrate`: its MeshExternalServices validate and generate the clusters the
//! ExternalServices did (but for what differs by design), it keeps the input's form, lists
//! what it cannot carry over, and refuses input with no ExternalService or invalid input.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::ffi::OsString;
use std::fs;
use std::path::Path;

use base64::Engine;
use extsvc_testkit::{extsvc, test_dir, wasm_module, Cli, Pki};
use serde_json::Value;

fn run(dir: &Path, args: &[&str]) -> Cli {
    let args: Vec<OsString> = args.iter().map(OsString::from).collect();
    extsvc(dir, &args)
}

const MESH_OFF: &str =
    "type: Mesh\nname: default\nnetworking:\n  outbound:\n    passthrough: false\n";

/// Services of every kind migrate maps: http with every TLS source (a file, a Secret, an inline
/// string) and a server name, tcp over two endpoints, kafka.
fn services(pki: &Pki) -> String {
    let cert = pki.client.cert_pem.replace('\n', "\n        ");
    format!(
        r#"type: ExternalService
name: httpbin
mesh: default
tags:
  kuma.io/service: httpbin
  kuma.io/protocol: http
networking:
  address: httpbin.test:8443
  tls:
    enabled: true
    serverName: httpbin.test
    allowRenegotiation: true
    caCert: {{file: ca.pem}}
    clientCert:
      inlineString: |
        {cert}
    clientKey: {{secret: client-key}}
---
type: ExternalService
name: db-1
mesh: default
tags:
  kuma.io/service: db
networking:
  address: db.test:5432
---
type: ExternalService
name: db-2
mesh: default
tags:
  kuma.io/service: db
networking:
  address: db-backup.test:5433
---
type: ExternalService
name: events
mesh: default
tags:
  kuma.io/service: events
  kuma.io/protocol: kafka
networking:
  address: kafka.test:9092
"#
    )
}

fn secret(pki: &Pki) -> String {
    let data = base64::engine::general_purpose::STANDARD.encode(&pki.client.key_pem);
    format!("type: Secret\nname: client-key\nmesh: default\ndata: {data}\n")
}

/// The clusters of `extsvc generate FILES -o NAME.json`, by name.
fn clusters(dir: &Path, name: &str, files: &[&str]) -> serde_json::Map<String, Value> {
    let wasm = wasm_module();
    let out = format!("{name}.json");
    let mut args = vec!["generate", "--wasm", wasm.to_str().unwrap(), "-o", &out];
    args.extend_from_slice(files);
    let generated = run(dir, &args);
    assert_eq!(generated.code, Some(0), "{generated:?}");
    let bootstrap: Value =
        serde_json::from_str(&fs::read_to_string(dir.join(&out)).unwrap()).unwrap();
    bootstrap["static_resources"]["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["name"].as_str().unwrap().to_string(), c.clone()))
        .collect()
}

/// A cluster with its own name taken out, where it names itself.
fn unnamed(mut cluster: Value) -> Value {
    cluster.as_object_mut().unwrap().remove("name");
    if let Some(assignment) = cluster["load_assignment"].as_object_mut() {
        assignment.remove("cluster_name");
    }
    cluster
}

/// Each endpoint's `hostname` taken out, and those of an MES cluster checked: by design an
/// MES endpoint's is its address (the route's `auto_host_rewrite` sends it as `Host`, as Kuma
/// does for MES; tcp has no route and none), where an ExternalService's endpoints of a
/// several-endpoint service carry their `host:port`, the `Host` each gets.
fn without_hostnames(mut cluster: Value, mes: bool) -> Value {
    let localities = cluster.pointer_mut("/load_assignment/endpoints").unwrap();
    for locality in localities.as_array_mut().unwrap() {
        for lb in locality["lb_endpoints"].as_array_mut().unwrap() {
            let endpoint = lb["endpoint"].as_object_mut().unwrap();
            if let (Some(hostname), true) = (endpoint.remove("hostname"), mes) {
                assert_eq!(hostname, endpoint["address"]["socket_address"]["address"]);
            }
        }
    }
    cluster
}

/// A trusted CA given by file, as its content inline: by design `migrate` inlines a `file`
/// source, which an MES cannot have in Kuma 2.9 to 2.14.
fn ca_inlined(mut cluster: Value) -> Value {
    let at = "/transport_socket/typed_config/common_tls_context/validation_context/trusted_ca";
    if let Some(ca) = cluster.pointer_mut(at).and_then(Value::as_object_mut) {
        if let Some(Value::String(path)) = ca.remove("filename") {
            let pem = fs::read_to_string(path).unwrap();
            ca.insert("inline_string".into(), Value::String(pem));
        }
    }
    cluster
}

#[test]
fn the_mesh_external_services_validate_and_generate_the_same_clusters() {
    let d = test_dir();
    let pki = Pki::new(d.path());
    fs::write(d.path().join("mesh.yaml"), MESH_OFF).unwrap();
    fs::write(d.path().join("secrets.yaml"), secret(&pki)).unwrap();
    fs::write(d.path().join("services.yaml"), services(&pki)).unwrap();
    let migrated = run(
        d.path(),
        &["migrate", "services.yaml", "secrets.yaml", "-o", "mes.yaml"],
    );
    assert_eq!(migrated.code, Some(0), "{migrated:?}");
    let validated = run(d.path(), &["validate", "mes.yaml", "secrets.yaml"]);
    assert_eq!(validated.code, Some(0), "{validated:?}");
    assert_eq!(
        validated.stdout.matches(": valid\n").count(),
        4,
        "{validated:?}"
    );

    let before = clusters(
        d.path(),
        "es",
        &["mesh.yaml", "secrets.yaml", "services.yaml"],
    );
    let after = clusters(d.path(), "mes", &["mesh.yaml", "secrets.yaml", "mes.yaml"]);
    // By design the name differs: `external_service_mes_<name>` keeps the two kinds apart.
    for service in ["httpbin", "db", "events"] {
        let es = before[&format!("external_service_{service}")].clone();
        let mes = after[&format!("external_service_mes_{service}")].clone();
        assert_eq!(
            without_hostnames(ca_inlined(unnamed(es)), false),
            without_hostnames(unnamed(mes), true),
            "cluster of {service}"
        );
    }
    assert_eq!(before.len(), after.len(), "{:?}", after.keys());
}

#[test]
fn kubernetes_in_is_kubernetes_out_with_the_notes_on_stderr() {
    let d = test_dir();
    let es = "apiVersion: kuma.io/v1alpha1\nkind: ExternalService\nmesh: default\nmetadata:\n  name: web\nspec:\n  tags:\n    kuma.io/service: web\n    kuma.io/protocol: http\n  networking:\n    address: web.test:80\n";
    fs::write(d.path().join("es.yaml"), es).unwrap();
    let migrated = run(d.path(), &["migrate", "es.yaml"]);
    assert_eq!(migrated.code, Some(0), "{migrated:?}");
    assert_eq!(
        migrated.stdout,
        "apiVersion: kuma.io/v1alpha1\nkind: MeshExternalService\nmetadata:\n  name: web\n  namespace: kuma-system\n  labels:\n    kuma.io/mesh: default\nspec:\n  match:\n    type: HostnameGenerator\n    port: 80\n    protocol: http\n  endpoints:\n  - address: web.test\n    port: 80\n"
    );
    assert_eq!(
        migrated.stderr,
        "es.yaml: ExternalService \"web\" (mesh \"default\"):\n  \
         tags[\"kuma.io/service\"]: `web.mesh` is not carried over: the MeshExternalService is reached as `web.extsvc.mesh.local`, the name Kuma's default HostnameGenerator gives it (`{{ .DisplayName }}.extsvc.mesh.local`)\n  \
         networking.address: the MeshExternalService is reached on port 80 (`match.port`), as an http app called `http://web.mesh/`; it calls `http://web.extsvc.mesh.local/` now\n  \
         networking.address: the real name `web.test:80` is not carried over: a MeshExternalService is reached only by its generated hostnames (`web.extsvc.mesh.local`), and Kuma advises against taking real names with one; use a MeshPassthrough for traffic to the real name\n"
    );
    fs::write(d.path().join("mes.yaml"), &migrated.stdout).unwrap();
    let validated = run(d.path(), &["validate", "mes.yaml"]);
    assert_eq!(validated.code, Some(0), "{validated:?}");
}

#[test]
fn no_external_service_or_an_invalid_one_is_refused() {
    let d = test_dir();
    fs::write(d.path().join("mesh.yaml"), MESH_OFF).unwrap();
    let none = run(d.path(), &["migrate", "mesh.yaml"]);
    assert_eq!(
        (none.code, none.stdout.as_str(), none.stderr.as_str()),
        (
            Some(1),
            "",
            "extsvc: no ExternalService in the files: nothing to migrate\n"
        )
    );
    let bad = "type: ExternalService\nname: bad\nmesh: default\ntags:\n  kuma.io/service: bad\nnetworking:\n  address: bad.test\n";
    fs::write(d.path().join("bad.yaml"), bad).unwrap();
    let invalid = run(d.path(), &["migrate", "bad.yaml", "-o", "mes.yaml"]);
    assert_eq!(invalid.code, Some(1), "{invalid:?}");
    assert!(
        invalid.stderr.starts_with(
            "bad.yaml: ExternalService \"bad\" (mesh \"default\"): 4 violations\n  networking.address: unable to parse address (line 7, column 3)\n"
        ),
        "{invalid:?}"
    );
    assert!(
        invalid
            .stderr
            .ends_with("extsvc: invalid resources: nothing migrated\n"),
        "{invalid:?}"
    );
    assert!(!d.path().join("mes.yaml").exists());
}
