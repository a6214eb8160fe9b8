//! What a service gets, and from where: `extsvc validate`'s effective view (which policy won
//! each field), Kuma's order at one level, the warning for a target that names no service,
//! and the generator (not the filter) holding the policies.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use extsvc_testkit as support;

use std::ffi::OsString;

use external_service_model::resource::Kind;
use extsvc::read;
use serde_json::Value;
use support::{dedent, docs, extsvc, http_service, mesh, test_dir};

use super::fixture;

#[test]
fn validate_json_says_which_policy_won_each_field() {
    let dir = test_dir();
    let args: Vec<OsString> = vec![
        "validate".into(),
        fixture("valid.yaml").into(),
        "--format".into(),
        "json".into(),
    ];
    let cli = extsvc(dir.path(), &args);
    assert_eq!(cli.code, Some(0), "{cli:?}");
    let report: Value = serde_json::from_str(&cli.stdout).unwrap();
    let effective = report["effective"].as_array().unwrap();
    let of = |service: &str| {
        effective
            .iter()
            .find(|e| e["service"] == service)
            .unwrap_or_else(|| panic!("no {service} in {effective:?}"))["policies"]
            .clone()
    };
    let httpbin = of("httpbin");
    // The MeshService entry is more specific than the Mesh one, whatever the names.
    assert_eq!(
        httpbin["MeshTimeout"]["conf"]["http"]["requestTimeout"],
        "500ms"
    );
    assert_eq!(
        httpbin["MeshTimeout"]["fields"]["http.requestTimeout"],
        "httpbin-timeouts"
    );
    // What the specific entry leaves unset comes from the mesh-wide one.
    assert_eq!(
        httpbin["MeshTimeout"]["fields"]["http.streamIdleTimeout"],
        "mesh-timeouts"
    );
    assert_eq!(
        httpbin["MeshTimeout"]["fields"]["connectionTimeout"],
        "mesh-timeouts"
    );
    assert_eq!(httpbin["MeshRetry"]["fields"]["http.numRetries"], "retries");
    assert_eq!(
        httpbin["MeshCircuitBreaker"]["fields"]["connectionLimits.maxConnections"],
        "breaker"
    );
    assert_eq!(httpbin["MeshHealthCheck"]["fields"]["http.path"], "health");
    assert_eq!(
        httpbin["MeshRateLimit"]["fields"]["local.http.requestRate.num"],
        "limit"
    );
    assert!(httpbin.get("MeshFaultInjection").is_none(), "{httpbin}");
    let other = of("other");
    assert_eq!(
        other["MeshTimeout"]["conf"]["http"]["requestTimeout"],
        "10s"
    );
    assert!(other.get("MeshRetry").is_none(), "{other}");
    assert!(other.get("MeshCircuitBreaker").is_none(), "{other}");
    assert_eq!(other["MeshHealthCheck"]["conf"]["interval"], "10s");
    assert_eq!(other["MeshFaultInjection"]["fields"]["http"], "faults");
    assert!(other.get("MeshRateLimit").is_none(), "{other}");
    assert_eq!(report["warnings"], Value::Array(Vec::new()));
}

/// Same level: the name that sorts first wins (Kuma's inverted lexicographic order).
#[test]
fn at_the_same_level_the_name_that_sorts_first_wins() {
    let dir = test_dir();
    let timeout = |name: &str, value: &str| {
        dedent(&format!(
            "
            type: MeshTimeout
            name: {name}
            mesh: default
            spec:
              to:
              - targetRef: {{kind: MeshService, name: a}}
                default: {{http: {{requestTimeout: {value}}}}}
            "
        ))
    };
    let resources = docs(&[
        http_service("a", "a.test:80"),
        timeout("zz", "9s"),
        timeout("aa", "1s"),
        timeout("mm", "5s"),
    ]);
    let file = dir.path().join("r.yaml");
    std::fs::write(&file, resources).unwrap();
    let loaded = read::load(&[file]).unwrap();
    let policies = extsvc::policy::Policies::build(&loaded.checked.resources);
    let catalog = external_service_model::Catalog::build(&loaded.checked.resources, "default");
    let applied = policies
        .of("default", &catalog.services[0])
        .get(Kind::MeshTimeout)
        .unwrap();
    assert_eq!(applied.fields["http.requestTimeout"], "aa");
    assert_eq!(applied.merged["http"]["requestTimeout"], "1s");
}

#[test]
fn a_target_that_names_no_service_is_a_warning_of_validate_and_generate() {
    let dir = test_dir();
    let resources = docs(&[
        mesh(false),
        http_service("httpbin", "127.0.0.1:1"),
        dedent(
            "
            type: MeshRetry
            name: typo
            mesh: default
            spec:
              to:
              - targetRef: {kind: MeshService, name: httpbim}
                default: {http: {numRetries: 2}}
            ",
        ),
    ]);
    let file = dir.path().join("r.yaml");
    std::fs::write(&file, &resources).unwrap();
    let warning = "MeshRetry \"typo\" (mesh \"default\"): spec.to[0].targetRef.name: no ExternalService of mesh \"default\" has kuma.io/service \"httpbim\", so this entry applies to nothing";
    let validate = extsvc(dir.path(), &["validate".into(), file.clone().into()]);
    assert_eq!(validate.code, Some(0), "{validate:?}");
    assert!(validate.stdout.contains(warning), "{validate:?}");
    let generate = support::generate(dir.path(), &resources, 15001, None, &[]);
    assert_eq!(generate.code, Some(0), "{generate:?}");
    assert!(generate.stderr.contains(warning), "{generate:?}");
}

/// Policies are the generator's: the filter's plugin configuration holds none of them.
#[test]
fn the_filters_configuration_holds_no_policy() {
    let dir = test_dir();
    let resources = std::fs::read_to_string(fixture("valid.yaml")).unwrap();
    let cli = support::generate(dir.path(), &resources, 15001, None, &[]);
    assert_eq!(cli.code, Some(0), "{cli:?}");
    let config = std::fs::read_to_string(dir.path().join("envoy.yaml")).unwrap();
    assert!(config.contains("external_service_httpbin"), "{config}");
    for kind in [
        "MeshTimeout",
        "MeshRetry",
        "MeshCircuitBreaker",
        "MeshHealthCheck",
        "MeshRateLimit",
        "MeshFaultInjection",
    ] {
        assert!(
            !config.contains(kind),
            "{kind} in the generated configuration"
        );
    }
}
