//! MeshExternalService and HostnameGenerator as a user meets them today: `extsvc validate`
//! checks them as Kuma does, with line and column, in both forms; `extsvc generate` refuses a
//! file holding one, since it does not serve them yet.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::ffi::OsString;
use std::fs;
use std::path::Path;

use extsvc_testkit::{extsvc, test_dir, wasm_module, Cli};

fn run(dir: &Path, args: &[&str]) -> Cli {
    let args: Vec<OsString> = args.iter().map(OsString::from).collect();
    extsvc(dir, &args)
}

/// `extsvc generate FILE -o envoy.yaml` in `dir`, with the built filter module.
fn generate_to_envoy_yaml(dir: &Path, file: &str) -> Cli {
    let wasm = wasm_module();
    let wasm = wasm.to_str().unwrap();
    run(dir, &["generate", "--wasm", wasm, file, "-o", "envoy.yaml"])
}

/// Kuma's `full-invalid` and `min-higher-than-max-invalid` cases (2.9.0 and v2.14.3
/// testdata; transcribed whole in `filter/model/tests/kuma/mesh_external_service/`) in one
/// resource, shortened, as a user writes it in Universal form.
const UNIVERSAL_INVALID: &str = r#"type: MeshExternalService
name: httpbin
mesh: default
spec:
  match:
    type: UnknownMatchType
    port: 0
    protocol: unknown
  endpoints:
    - address: 1.1.1.1
    - port: 90
  tls:
    version:
      min: TLS13
      max: TLS12
    verification:
      serverName: not[]valid
      mode: Unknown
      subjectAltNames:
        - type: Regex
          value: .*.example.com
      clientCert:
        secret: "123"
"#;

const KUBERNETES_INVALID: &str = r#"apiVersion: kuma.io/v1alpha1
kind: MeshExternalService
metadata:
  name: api
  namespace: kuma-system
  labels:
    kuma.io/mesh: default
spec:
  match:
    port: 70000
  endpoints:
    - address: httpbin.org
      port: 443
  tls:
    enabled: true
    verification:
      clientKey:
        secret: key
  extension:
    type: Lambda
"#;

#[test]
fn validate_prints_kumas_messages_with_line_and_column_in_both_forms() {
    let d = test_dir();
    fs::write(d.path().join("universal.yaml"), UNIVERSAL_INVALID).unwrap();
    fs::write(d.path().join("kubernetes.yaml"), KUBERNETES_INVALID).unwrap();
    let validated = run(d.path(), &["validate", "universal.yaml", "kubernetes.yaml"]);
    assert_eq!(validated.code, Some(1), "{validated:?}");
    let want = [
        "universal.yaml: MeshExternalService \"httpbin\" (mesh \"default\"): 10 violations",
        "  spec.match.type: unrecognized type 'UnknownMatchType' - only 'HostnameGenerator' is supported (line 6, column 5)",
        "  spec.match.port: port must be a valid (1-65535) (line 7, column 5)",
        "  spec.match.protocol: \"protocol\" must be one of [\"tcp\", \"grpc\", \"http\", \"http2\"] (line 8, column 5)",
        "  spec.endpoints[0].port: port must be a valid (1-65535) (line 10, column 7)",
        "  spec.endpoints[1].address: address has to be a valid IP or hostname (line 11, column 7)",
        "  spec.tls.version.min: min version must be lower than max (line 14, column 7)",
        "  spec.tls.verification.serverName: must be a valid DNS name (line 17, column 7)",
        "  spec.tls.verification.mode: \"mode\" must be one of [\"SkipSAN\", \"SkipCA\", \"SkipAll\", \"Secured\"] (line 18, column 7)",
        "  spec.tls.verification.subjectAltNames[0].type: \"type\" must be one of [\"Prefix\", \"Exact\"] (line 20, column 11)",
        "  spec.tls.verification.clientKey: must be defined when clientCert is defined (line 16, column 5)",
        // Kubernetes: the CRD's `protocol: tcp` default applies; with an extension, Kuma leaves
        // endpoints and tls to it, and extsvc refuses the extension.
        "kubernetes.yaml: MeshExternalService \"api\" (mesh \"default\"): 2 violations",
        "  spec.match.port: port must be a valid (1-65535) (line 10, column 5)",
        "  spec.extension.type: extension \"Lambda\" is not supported: extsvc acts on no MeshExternalService extension (remove it and give endpoints) (line 20, column 5)",
    ];
    assert_eq!(
        validated.stdout.lines().collect::<Vec<_>>(),
        want,
        "{}",
        validated.stdout
    );
}

#[test]
fn valid_mesh_external_services_and_generators_validate_in_both_forms() {
    let d = test_dir();
    let universal = "type: MeshExternalService\nname: httpbin\nmesh: default\nspec:\n  match:\n    type: HostnameGenerator\n    port: 80\n    protocol: http\n  endpoints:\n    - address: httpbin.org\n      port: 443\n      priority: 0\n    - address: 1.1.1.1\n      port: 443\n      priority: 1\n  tls:\n    enabled: true\n    version: {min: TLS12, max: TLS13}\n    verification:\n      mode: SkipSAN\n      serverName: httpbin.org\n      subjectAltNames: [{type: Prefix, value: httpbin}]\n---\ntype: HostnameGenerator\nname: local-mesh-external-service\nspec:\n  selector:\n    meshExternalService:\n      matchLabels: {kuma.io/origin: zone}\n  template: '{{ .DisplayName }}.extsvc.mesh.local'\n";
    let kubernetes = "apiVersion: kuma.io/v1alpha1\nkind: MeshExternalService\nmetadata:\n  name: api\n  namespace: kuma-system\n  labels: {kuma.io/mesh: default}\nspec:\n  match: {port: 443}\n  endpoints: [{address: api.example.com, port: 443}]\n";
    fs::write(d.path().join("u.yaml"), universal).unwrap();
    fs::write(d.path().join("k.yaml"), kubernetes).unwrap();
    let validated = run(d.path(), &["validate", "u.yaml", "k.yaml"]);
    assert_eq!(validated.code, Some(0), "{validated:?}");
    assert_eq!(
        validated.stdout.lines().collect::<Vec<_>>(),
        [
            "u.yaml: MeshExternalService \"httpbin\" (mesh \"default\"): valid",
            "u.yaml: HostnameGenerator \"local-mesh-external-service\" (mesh \"default\"): valid",
            "k.yaml: MeshExternalService \"api\" (mesh \"default\"): valid",
        ]
    );
}

#[test]
fn generate_serves_both_kinds_side_by_side() {
    let d = test_dir();
    let es = "type: ExternalService\nname: httpbin\nmesh: default\ntags:\n  kuma.io/service: httpbin\n  kuma.io/protocol: http\nnetworking:\n  address: httpbin.org:80\n";
    // An MES may share a name with a kuma.io/service: each kind has its own cluster.
    let mes = "type: MeshExternalService\nname: httpbin\nmesh: default\nspec:\n  match: {port: 8080, protocol: http}\n  endpoints: [{address: api.example.com, port: 80}]\n";
    fs::write(d.path().join("both.yaml"), format!("{es}---\n{mes}")).unwrap();
    let generated = generate_to_envoy_yaml(d.path(), "both.yaml");
    assert_eq!(generated.code, Some(0), "{generated:?}");
    let config: serde_json::Value =
        serde_yaml_ng::from_str(&fs::read_to_string(d.path().join("envoy.yaml")).unwrap()).unwrap();
    let clusters: Vec<&str> = config["static_resources"]["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert!(
        clusters.contains(&"external_service_httpbin")
            && clusters.contains(&"external_service_mes_httpbin"),
        "{clusters:?}"
    );
    let text = serde_json::to_string(&config).unwrap();
    assert!(
        text.contains("\"httpbin.extsvc.mesh.local:8080\""),
        "the MES's route is found by its hostname and port"
    );
}

#[test]
fn a_mesh_external_service_ca_that_is_not_pem_is_refused_at_its_field() {
    let d = test_dir();
    let mes = "type: MeshExternalService\nname: api\nmesh: default\nspec:\n  match: {port: 443, protocol: http}\n  endpoints: [{address: api.example.com, port: 443}]\n  tls:\n    enabled: true\n    verification:\n      caCert: {inlineString: not a certificate}\n";
    fs::write(d.path().join("m.yaml"), mes).unwrap();
    let validated = run(d.path(), &["validate", "m.yaml"]);
    assert_eq!(validated.code, Some(1), "{validated:?}");
    assert!(
        validated.stdout.contains(
            "spec.tls.verification.caCert: holds no PEM certificate (-----BEGIN CERTIFICATE-----) (line 10, column 7)"
        ),
        "{validated:?}"
    );
}

#[test]
fn a_hostname_collision_is_warned_and_only_the_first_service_gets_the_name() {
    let d = test_dir();
    let mes = |name: &str| {
        format!("type: MeshExternalService\nname: {name}\nmesh: default\nlabels:\n  kuma.io/display-name: dup\nspec:\n  match: {{port: 80, protocol: http}}\n  endpoints: [{{address: {name}.example.com, port: 80}}]\n")
    };
    fs::write(
        d.path().join("dup.yaml"),
        format!("{}---\n{}", mes("dup-b"), mes("dup-a")),
    )
    .unwrap();
    // Kuma's condition names the service it is on (`generator.go`); ours adds who has the name.
    let warning = "warning: MeshExternalService \"dup-b\" (mesh \"default\"): HostnameGenerator \"local-mesh-external-service\": Hostname collision with MeshExternalService: dup-b (\"dup.extsvc.mesh.local\" is MeshExternalService \"dup-a\"'s)";
    // Kuma takes both: valid, with the loser named.
    let validated = run(d.path(), &["validate", "dup.yaml"]);
    assert_eq!(validated.code, Some(0), "{validated:?}");
    assert!(
        validated.stdout.lines().any(|l| l == warning),
        "{validated:?}"
    );
    let generated = generate_to_envoy_yaml(d.path(), "dup.yaml");
    assert_eq!(generated.code, Some(0), "{generated:?}");
    assert!(
        generated.stderr.contains(&format!("extsvc: {warning}")),
        "{generated:?}"
    );
    let config = fs::read_to_string(d.path().join("envoy.yaml")).unwrap();
    // The name routes to dup-a alone; dup-b keeps a cluster, reached only when bound to it.
    assert_eq!(
        config.matches("- dup.extsvc.mesh.local").count(),
        1,
        "{config}"
    );
    let route_of_dup = config
        .split("- dup.extsvc.mesh.local")
        .nth(1)
        .and_then(|rest| rest.split("cluster: ").nth(1))
        .and_then(|rest| rest.lines().next());
    assert_eq!(route_of_dup, Some("external_service_mes_dup-a"));
}
