//! Kuma's own validator cases for MeshExternalService, transcribed: every
//! `pkg/core/resources/apis/meshexternalservice/api/v1alpha1/testdata/*.input.yaml` with the
//! resource name its `validator_test.go` entry gives and the field/message pairs of its
//! `*.output.yaml`, at Kuma 2.9.0 and v2.14.3 (the newest 2.14 tag read). Each is read in
//! Universal and in Kubernetes form through the model's reader and validator, and must give
//! exactly Kuma's violations, in Kuma's order.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use external_service_model::config::check;
use external_service_model::resource::Origin;
use serde_json::Value;

struct Case {
    /// The testdata file's stem.
    file: &'static str,
    /// The Kuma tags whose testdata hold the case.
    kuma: &'static str,
    /// The resource name `validator_test.go` gives it.
    name: &'static str,
    /// The `.input.yaml`: the spec.
    spec: &'static str,
    /// The `.output.yaml`: (field, message) pairs; none for a valid case.
    violations: &'static [(&'static str, &'static str)],
}

const BOTH: &str = "2.9.0, v2.14.3";
const NAME: &str = "external-service";

const CASES: &[Case] = &[
    Case {
        file: "minimal-valid",
        kuma: BOTH,
        name: NAME,
        spec: "
match:
  port: 80
  protocol: http
endpoints:
  - address: 1.1.1.1
    port: 12345
",
        violations: &[],
    },
    Case {
        file: "full-without-extension-valid",
        kuma: BOTH,
        name: NAME,
        spec: r#"
match:
  type: HostnameGenerator
  port: 8080
  protocol: http
endpoints:
  - address: 1.1.1.1
    port: 12345
  - address: example.com
    port: 80
tls:
  version:
    min: TLS12
    max: TLS13
  allowRenegotiation: false
  verification:
    serverName: "example.com"
    subjectAltNames:
      - type: Exact
        value: example.com
      - type: Prefix
        value: "spiffe://example.local/ns/local"
    caCert:
      inline: dGVzdA==
    clientCert:
      secret: "123"
    clientKey:
      secret: "123"
"#,
        violations: &[],
    },
    Case {
        file: "minimal-invalid",
        kuma: BOTH,
        name: NAME,
        spec: "
match:
  type: HostnameGenerator
  port: 80
  protocol: unknown
endpoints:
  - address: 1.1.1.1
    port: 12345
",
        violations: &[(
            "spec.match.protocol",
            r#""protocol" must be one of ["tcp", "grpc", "http", "http2"]"#,
        )],
    },
    Case {
        file: "minimal-invalid-extension",
        kuma: BOTH,
        name: NAME,
        spec: "
match:
  type: HostnameGenerator
  port: 80
  protocol: http
extension:
  config:
    example: true
",
        violations: &[("spec.extension.type", "must not be empty")],
    },
    Case {
        file: "missing-client-cert-invalid",
        kuma: BOTH,
        name: NAME,
        spec: r#"
match:
  type: HostnameGenerator
  port: 8080
  protocol: http
endpoints:
  - address: 1.1.1.1
    port: 12345
tls:
  verification:
    clientKey:
      secret: "123"
"#,
        violations: &[(
            "spec.tls.verification.clientCert",
            "must be defined when clientKey is defined",
        )],
    },
    Case {
        file: "full-invalid",
        kuma: BOTH,
        name: NAME,
        spec: r#"
match:
  type: UnknownMatchType
  port: 0
  protocol: unknown
endpoints:
  - address: 1.1.1.1
  - address: 1.1.1.2
    port: 999999
  - address: example.com
  - port: 90
tls:
  version:
    min: TLS15
    max: TLS16
  verification:
    serverName: not[]valid
    mode: Unknown
    subjectAltNames:
      - type: Regex
        value: .*.example.com
    clientCert:
      secret: "123"
"#,
        violations: &[
            (
                "spec.match.type",
                "unrecognized type 'UnknownMatchType' - only 'HostnameGenerator' is supported",
            ),
            ("spec.match.port", "port must be a valid (1-65535)"),
            (
                "spec.match.protocol",
                r#""protocol" must be one of ["tcp", "grpc", "http", "http2"]"#,
            ),
            ("spec.endpoints[0].port", "port must be a valid (1-65535)"),
            ("spec.endpoints[1].port", "port must be a valid (1-65535)"),
            ("spec.endpoints[2].port", "port must be a valid (1-65535)"),
            (
                "spec.endpoints[3].address",
                "address has to be a valid IP or hostname",
            ),
            (
                "spec.tls.version.min",
                r#""min" must be one of ["TLSAuto", "TLS10", "TLS11", "TLS12", "TLS13"]"#,
            ),
            (
                "spec.tls.version.max",
                r#""max" must be one of ["TLSAuto", "TLS10", "TLS11", "TLS12", "TLS13"]"#,
            ),
            (
                "spec.tls.verification.serverName",
                "must be a valid DNS name",
            ),
            (
                "spec.tls.verification.mode",
                r#""mode" must be one of ["SkipSAN", "SkipCA", "SkipAll", "Secured"]"#,
            ),
            (
                "spec.tls.verification.subjectAltNames[0].type",
                r#""type" must be one of ["Prefix", "Exact"]"#,
            ),
            (
                "spec.tls.verification.clientKey",
                "must be defined when clientCert is defined",
            ),
        ],
    },
    Case {
        file: "min-higher-than-max-invalid",
        kuma: BOTH,
        name: NAME,
        spec: "
match:
  type: HostnameGenerator
  port: 80
  protocol: http
endpoints:
  - address: 1.1.1.1
    port: 12345
tls:
  version:
    min: TLS13
    max: TLS12
",
        violations: &[("spec.tls.version.min", "min version must be lower than max")],
    },
    Case {
        file: "name-too-long",
        kuma: BOTH,
        name:
            "external-service-very-long-very-long-very-long-very-long-very-long-very-long-very-long",
        spec: "
match:
  type: HostnameGenerator
  port: 80
  protocol: http
endpoints:
  - address: 1.1.1.1
    port: 12345
",
        violations: &[("name", "must not be longer than 63 characters")],
    },
    // Added in 2.14 (absent from 2.9.0's testdata).
    Case {
        file: "name-length-63",
        kuma: "v2.14.3",
        name: "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb",
        spec: "
match:
  port: 80
  protocol: http
endpoints:
  - address: 1.1.1.1
    port: 12345
",
        violations: &[],
    },
    Case {
        file: "endpoints-with-priority-valid",
        kuma: "v2.14.3",
        name: NAME,
        spec: "
match:
  type: HostnameGenerator
  port: 8080
  protocol: http
endpoints:
  - address: 1.1.1.1
    port: 443
    priority: 0
  - address: 2.2.2.2
    port: 443
    priority: 1
  - address: 3.3.3.3
    port: 443
    priority: 2
",
        violations: &[],
    },
];

fn indented(spec: &str) -> String {
    spec.trim_start_matches('\n')
        .lines()
        .map(|l| format!("  {l}\n"))
        .collect()
}

fn universal(case: &Case) -> String {
    format!(
        "type: MeshExternalService\nname: {}\nmesh: default\nspec:\n{}",
        case.name,
        indented(case.spec)
    )
}

fn kubernetes(case: &Case) -> String {
    format!(
        "apiVersion: kuma.io/v1alpha1\nkind: MeshExternalService\nmetadata:\n  name: {}\n  namespace: kuma-system\n  labels:\n    kuma.io/mesh: default\nspec:\n{}",
        case.name,
        indented(case.spec)
    )
}

/// The (field, message) pairs the model gives for one document.
fn violations(yaml: &str) -> Vec<(String, String)> {
    let value: Value = serde_yaml_ng::from_str(yaml).expect("the case is YAML");
    let checked = check(Origin::in_file("case.yaml", vec![value]), None);
    assert_eq!(checked.reports.len(), 1);
    let report = &checked.reports[0];
    assert_eq!(report.kind, "MeshExternalService", "{yaml}");
    report
        .violations
        .iter()
        .map(|v| (v.field.clone(), v.message.clone()))
        .collect()
}

#[test]
fn kumas_validator_cases_give_kumas_violations_in_both_forms() {
    assert_eq!(CASES.len(), 10, "8 cases in 2.9.0, 10 in v2.14.3");
    for case in CASES {
        let expected: Vec<(String, String)> = case
            .violations
            .iter()
            .map(|(f, m)| (f.to_string(), m.to_string()))
            .collect();
        for (form, doc) in [
            ("Universal", universal(case)),
            ("Kubernetes", kubernetes(case)),
        ] {
            assert_eq!(
                violations(&doc),
                expected,
                "Kuma {} testdata/{} in {form} form",
                case.kuma,
                case.file
            );
        }
    }
}

/// Where 2.9.0's and v2.14.3's validator code differ (no testdata of either covers these):
/// what either accepts is accepted.
#[test]
fn what_2_9_refuses_and_2_14_accepts_is_accepted() {
    let with = |extra: &str| {
        format!(
            "type: MeshExternalService\nname: a\nspec:\n  match:\n    port: 80\n    protocol: tcp\n{extra}  endpoints:\n  - address: example.com\n    port: 443\n"
        )
    };
    // 2.9: `Type *MatchType`, so `type: ""` is "unrecognized type ''"; 2.10+: "" is allowed.
    assert_eq!(violations(&with("    type: \"\"\n")), vec![]);
    // 2.9: `Mode *VerificationMode`, so `mode: ""` is refused; 2.10+: "" is allowed.
    let empty_mode = "type: MeshExternalService\nname: a\nspec:\n  match: {port: 80, protocol: tcp}\n  tls:\n    verification:\n      mode: \"\"\n";
    assert_eq!(violations(empty_mode), vec![]);
}
