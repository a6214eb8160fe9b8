//! MeshExternalService and HostnameGenerator through the model's reader and validator: the
//! two forms, Kubernetes' CRD defaults, and what this project refuses beyond Kuma.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use external_service_model::resource::{self, Kind, Origin, Spec};

fn read(yaml: &str) -> external_service_model::Checked {
    support::read_yaml("mes.yaml", yaml)
}

fn violations(yaml: &str) -> Vec<(String, String)> {
    support::violations_in_yaml("mes.yaml", yaml)
}

use support::pairs;

const PROTOCOLS: &str = r#""protocol" must be one of ["tcp", "grpc", "http", "http2"]"#;

#[test]
fn both_forms_read_the_same_resource() {
    let universal = "type: MeshExternalService\nname: httpbin\nmesh: m\nspec:\n  match: {type: HostnameGenerator, port: 80, protocol: http}\n  endpoints:\n  - {address: httpbin.org, port: 443}\n  tls:\n    enabled: true\n    verification: {mode: Secured}\n";
    let kubernetes = "apiVersion: kuma.io/v1alpha1\nkind: MeshExternalService\nmetadata:\n  name: httpbin\n  namespace: kuma-system\n  labels: {kuma.io/mesh: m}\nspec:\n  match: {type: HostnameGenerator, port: 80, protocol: http}\n  endpoints:\n  - {address: httpbin.org, port: 443}\n  tls:\n    enabled: true\n    verification: {mode: Secured}\n";
    let (u, k) = (read(universal), read(kubernetes));
    assert!(
        u.is_valid() && k.is_valid(),
        "{:?} {:?}",
        u.reports,
        k.reports
    );
    let (u, k) = (&u.resources[0], &k.resources[0]);
    assert_eq!(
        (u.kind(), u.name.as_str(), u.mesh.as_str()),
        (Kind::MeshExternalService, "httpbin", "m")
    );
    assert_eq!(u.spec, k.spec);
    // Written back in Universal form, it reads the same.
    let again = resource::from_value(u.to_universal(), Origin::default()).unwrap();
    assert_eq!(again.spec, u.spec);
    let Spec::MeshExternalService(spec) = &u.spec else {
        panic!("{:?}", u.spec)
    };
    assert_eq!(spec.matcher.port, 80);
    assert!(spec.tls.as_ref().unwrap().enabled);
}

#[test]
fn kubernetes_takes_the_crd_defaults_universal_does_not() {
    // Kuma's CRD defaults `protocol` to tcp and a SAN's `type` to Exact; Universal has no CRD,
    // and Kuma's validator refuses both left out.
    let spec = "spec:\n  match: {port: 80}\n  endpoints: [{address: 1.1.1.1, port: 80}]\n  tls:\n    verification:\n      subjectAltNames: [{value: a.example}]\n";
    let universal = format!("type: MeshExternalService\nname: a\n{spec}");
    let kubernetes = format!(
        "apiVersion: kuma.io/v1alpha1\nkind: MeshExternalService\nmetadata: {{name: a}}\n{spec}"
    );
    assert_eq!(
        violations(&universal),
        pairs(&[
            ("spec.match.protocol", PROTOCOLS),
            (
                "spec.tls.verification.subjectAltNames[0].type",
                r#""type" must be one of ["Prefix", "Exact"]"#
            ),
        ])
    );
    assert_eq!(violations(&kubernetes), vec![]);
    let checked = read(&kubernetes);
    let Spec::MeshExternalService(spec) = &checked.resources[0].spec else {
        panic!()
    };
    assert_eq!(spec.matcher.protocol.as_deref(), Some("tcp"));
    assert_eq!(spec.matcher.kind.as_deref(), Some("HostnameGenerator"));
}

#[test]
fn a_missing_match_is_reported_in_kumas_words() {
    assert_eq!(
        violations("type: MeshExternalService\nname: a\nspec: {}\n"),
        pairs(&[
            ("spec.match.port", "port must be a valid (1-65535)"),
            ("spec.match.protocol", PROTOCOLS),
        ])
    );
}

#[test]
fn unknown_fields_are_named_with_their_spec_path_in_both_forms() {
    let universal = "type: MeshExternalService\nname: a\nspec:\n  match: {port: 80, protocol: tcp, prot: 1}\n  endpoint: []\nlabel: {}\n";
    let found = violations(universal);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].0, "label");
    let universal = "type: MeshExternalService\nname: a\nspec:\n  match: {port: 80, protocol: tcp, prot: 1}\n  endpoint: []\n";
    // Which comes first follows serde_json's map order (its `preserve_order` feature, on in
    // the workspace's build, off in this crate's alone): the paths are what is checked.
    let fields = |text| {
        let mut fields: Vec<String> = violations(text).into_iter().map(|v| v.0).collect();
        fields.sort();
        fields
    };
    assert_eq!(fields(universal), ["spec.endpoint", "spec.match.prot"]);
    let kubernetes = "apiVersion: kuma.io/v1alpha1\nkind: MeshExternalService\nmetadata: {name: a}\nspec:\n  match: {port: 80, protocol: tcp, prot: 1}\n  endpoint: []\n";
    assert_eq!(fields(kubernetes), ["spec.endpoint", "spec.match.prot"]);
}

#[test]
fn an_extension_is_refused_naming_its_type() {
    let yaml = "type: MeshExternalService\nname: a\nspec:\n  match: {port: 80, protocol: tcp}\n  extension:\n    type: Lambda\n    config: {arn: x}\n";
    assert_eq!(
        violations(yaml),
        pairs(&[(
            "spec.extension.type",
            "extension \"Lambda\" is not supported: extsvc acts on no MeshExternalService extension (remove it and give endpoints)"
        )])
    );
}

#[test]
fn beyond_kuma_data_sources_and_priorities() {
    let yaml = r#"type: MeshExternalService
name: a
spec:
  match: {port: 80, protocol: tcp}
  endpoints:
  - {address: a.example, port: 443, priority: 129}
  tls:
    verification:
      caCert: {file: /etc/ca.pem}
      clientCert: {inline: "not base64!"}
      clientKey: {secret: ""}
"#;
    let fields: Vec<String> = violations(yaml).into_iter().map(|v| v.0).collect();
    assert_eq!(
        fields,
        [
            "spec.endpoints[0].priority",
            "spec.tls.verification.caCert.file",
            "spec.tls.verification.clientCert.inline",
            "spec.tls.verification.clientKey",
        ]
    );
}

#[test]
fn endpoint_addresses_are_ips_or_dns_names_as_govalidator_says() {
    let cases = [
        ("1.1.1.1", true),
        ("::1", true),
        ("example.com", true),
        ("example.com.", true),
        ("under_score.example", true),
        ("a.b-c.d", true),
        ("-a.example", false),
        ("a..example", false),
        ("", false),
        ("unix:///tmp/sock", false),
        ("not[]valid", false),
        ("1.1.1.1:80", false),
    ];
    for (address, ok) in cases {
        let yaml = format!(
            "type: MeshExternalService\nname: a\nspec:\n  match: {{port: 80, protocol: tcp}}\n  endpoints: [{{address: {address:?}, port: 80}}]\n"
        );
        let expected = if ok {
            vec![]
        } else {
            pairs(&[(
                "spec.endpoints[0].address",
                "address has to be a valid IP or hostname",
            )])
        };
        assert_eq!(violations(&yaml), expected, "{address:?}");
    }
}

#[test]
fn a_hostname_generator_is_read_and_validated_in_kumas_words() {
    let ok = "type: HostnameGenerator\nname: local-mesh-external-service\nspec:\n  selector:\n    meshExternalService:\n      matchLabels: {kuma.io/origin: zone}\n  template: '{{ .DisplayName }}.extsvc.mesh.local'\n";
    let checked = read(ok);
    assert!(checked.is_valid(), "{:?}", checked.reports);
    assert_eq!(checked.resources[0].kind(), Kind::HostnameGenerator);
    assert_eq!(checked.resources[0].mesh, "default");
    let kubernetes = "apiVersion: kuma.io/v1alpha1\nkind: HostnameGenerator\nmetadata: {name: g, namespace: kuma-system}\nspec:\n  selector: {meshService: {}, meshExternalService: {}}\n  template: ''\n";
    assert_eq!(
        violations(kubernetes),
        pairs(&[
            (
                "spec.selector",
                "exact one selector (meshService, meshExternalService) must be defined"
            ),
            ("spec.template", "must not be empty"),
        ])
    );
}

#[test]
fn labels_are_read_in_both_forms_and_written_back() {
    let universal = "type: MeshExternalService\nname: a\nmesh: m\nlabels: {team: data, kuma.io/display-name: shown}\nspec:\n  match: {port: 80, protocol: http}\n  endpoints: [{address: a.test, port: 80}]\n";
    let kubernetes = "apiVersion: kuma.io/v1alpha1\nkind: MeshExternalService\nmetadata:\n  name: a\n  labels: {kuma.io/mesh: m, team: data}\nspec:\n  match: {port: 80, protocol: http}\n  endpoints: [{address: a.test, port: 80}]\n";
    let (u, k) = (read(universal), read(kubernetes));
    let (u, k) = (&u.resources[0], &k.resources[0]);
    assert_eq!(u.labels.get("team").map(String::as_str), Some("data"));
    assert_eq!(k.labels.get("team").map(String::as_str), Some("data"));
    assert_eq!(k.labels.get("kuma.io/mesh").map(String::as_str), Some("m"));
    let again = resource::from_value(u.to_universal(), Origin::default()).unwrap();
    assert_eq!(again.labels, u.labels);
    // The label gives the hostname (`.DisplayName`).
    let catalog = external_service_model::Catalog::build(std::slice::from_ref(u), "m");
    assert_eq!(catalog.services[0].authority, "shown.extsvc.mesh.local");
}

#[test]
fn labels_that_are_not_a_map_of_strings_are_named() {
    let bad = "type: MeshExternalService\nname: a\nmesh: m\nlabels: {team: 5}\nspec:\n  match: {port: 80, protocol: http}\n";
    assert_eq!(
        violations(bad),
        pairs(&[("labels.team", "expected a string, found a number")])
    );
    let bad = "apiVersion: kuma.io/v1alpha1\nkind: MeshExternalService\nmetadata:\n  name: a\n  labels: [x]\nspec:\n  match: {port: 80, protocol: http}\n";
    assert_eq!(
        violations(bad),
        pairs(&[("metadata.labels", "expected a map of strings, found a list")])
    );
}
