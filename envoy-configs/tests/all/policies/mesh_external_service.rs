//! Policies that target a MeshExternalService (`to[].targetRef.kind: MeshExternalService`):
//! which kinds take it and Kuma's words for those that refuse it, the effective view and the
//! warnings naming the kind, and a MeshTimeout on one in real Envoy.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use extsvc_testkit as support;

use std::ffi::OsString;
use std::time::{Duration, Instant};

use extsvc::read;
use serde_json::Value;
use support::{dedent, docs, extsvc, http_service, mesh, test_dir, Reply, Scripted};

use super::sidecar;

/// A MeshExternalService of mesh `default`: http on port 80, one endpoint.
fn mesh_external_service(name: &str, endpoint: &str) -> String {
    let (address, port) = endpoint.rsplit_once(':').unwrap();
    dedent(&format!(
        "
        type: MeshExternalService
        name: {name}
        mesh: default
        spec:
          match: {{port: 80, protocol: http}}
          endpoints: [{{address: {address}, port: {port}}}]
        "
    ))
}

/// A policy of `kind` named `name` in mesh `default`, its `spec` in flow YAML.
fn policy(kind: &str, name: &str, spec: &str) -> String {
    format!("type: {kind}\nname: {name}\nmesh: default\nspec: {spec}\n")
}

/// Every (resource, field, message) `extsvc`'s checks find in `resources`.
fn violations(resources: &[String]) -> Vec<(String, String, String)> {
    let dir = test_dir();
    let file = dir.path().join("r.yaml");
    std::fs::write(&file, docs(resources)).unwrap();
    let loaded = read::load(&[file]).unwrap();
    loaded
        .checked
        .reports
        .iter()
        .flat_map(|r| {
            let resource = format!("{} {}", r.kind, r.name);
            r.violations
                .iter()
                .map(move |v| (resource.clone(), v.field.clone(), v.message.clone()))
        })
        .collect()
}

fn triples(want: &[(&str, &str, &str)]) -> Vec<(String, String, String)> {
    want.iter()
        .map(|(r, f, m)| (r.to_string(), f.to_string(), m.to_string()))
        .collect()
}

/// MeshTimeout and MeshRetry take the kind since Kuma 2.9, MeshCircuitBreaker and
/// MeshHealthCheck since 2.14 (2.9 to 2.13 refuse it there with `value is not supported`):
/// a file 2.14 accepts is accepted.
#[test]
fn the_to_kinds_accept_a_mesh_external_service_target() {
    let to = |default: &str| {
        format!(
            "{{to: [{{targetRef: {{kind: MeshExternalService, name: ext}}, default: {default}}}]}}"
        )
    };
    let resources = [
        mesh_external_service("ext", "127.0.0.1:1"),
        policy("MeshTimeout", "t", &to("{http: {requestTimeout: 1s}}")),
        policy("MeshRetry", "r", &to("{http: {numRetries: 2}}")),
        policy(
            "MeshCircuitBreaker",
            "c",
            &to("{connectionLimits: {maxConnections: 1}}"),
        ),
        policy(
            "MeshHealthCheck",
            "h",
            &to("{interval: 5s, tcp: {send: ping}}"),
        ),
    ];
    assert_eq!(violations(&resources), Vec::new());
}

/// Where Kuma refuses the kind, its words: not at a `to[]` policy's top level, nor anywhere in
/// MeshFaultInjection and MeshRateLimit (their egress applies them to ExternalServices only);
/// a MeshExternalService target needs its name.
#[test]
fn where_kuma_refuses_a_mesh_external_service_target_its_words() {
    let ext = "{kind: MeshExternalService, name: ext}";
    let resources = [
        mesh_external_service("ext", "127.0.0.1:1"),
        policy(
            "MeshTimeout",
            "top-level",
            &format!("{{targetRef: {ext}, to: [{{targetRef: {{kind: Mesh}}, default: {{idleTimeout: 1s}}}}]}}"),
        ),
        policy(
            "MeshRetry",
            "no-name",
            "{to: [{targetRef: {kind: MeshExternalService}, default: {http: {numRetries: 1}}}]}",
        ),
        policy(
            "MeshRateLimit",
            "limit",
            &format!(
                "{{targetRef: {ext}, to: [{{targetRef: {ext}, default: {{local: {{http: {{disabled: true}}}}}}}}]}}"
            ),
        ),
        policy(
            "MeshFaultInjection",
            "faults",
            &format!(
                "{{from: [{{targetRef: {ext}, default: {{http: [{{abort: {{httpStatus: 503, percentage: 1}}}}]}}}}]}}"
            ),
        ),
    ];
    let want = triples(&[
        (
            "MeshTimeout top-level",
            "spec.targetRef.kind",
            "value is not supported",
        ),
        (
            "MeshRetry no-name",
            "spec.to[0].targetRef.name",
            "must be set with kind MeshExternalService",
        ),
        (
            "MeshRateLimit limit",
            "spec.targetRef.kind",
            "value is not supported",
        ),
        ("MeshRateLimit limit", "spec.to", "must not be defined"),
        (
            "MeshFaultInjection faults",
            "spec.from[0].targetRef.kind",
            "value is not supported",
        ),
    ]);
    assert_eq!(violations(&resources), want);
}

/// An ExternalService whose `kuma.io/service` is `ext` and a MeshExternalService `ext`: each
/// gets its own entries and the mesh-wide ones, and `validate --format json` tells them apart
/// by `kind`; targets naming no service of their kind are warnings that name the kind.
#[test]
fn the_effective_view_tells_the_kinds_apart_and_warnings_name_the_kind() {
    let dir = test_dir();
    let timeouts = policy(
        "MeshTimeout",
        "timeouts",
        "{to: [{targetRef: {kind: Mesh}, default: {connectionTimeout: 3s}}, \
         {targetRef: {kind: MeshService, name: ext}, default: {http: {requestTimeout: 1s}}}, \
         {targetRef: {kind: MeshExternalService, name: ext}, default: {http: {requestTimeout: 2s}}}, \
         {targetRef: {kind: MeshExternalService, name: nowhere}, default: {idleTimeout: 1s}}, \
         {targetRef: {kind: MeshService, name: only-mes}, default: {idleTimeout: 1s}}]}",
    );
    let resources = docs(&[
        mesh(false),
        http_service("ext", "127.0.0.1:1"),
        mesh_external_service("ext", "127.0.0.1:1"),
        mesh_external_service("only-mes", "127.0.0.1:1"),
        timeouts,
    ]);
    let file = dir.path().join("r.yaml");
    std::fs::write(&file, resources).unwrap();
    let args: Vec<OsString> = vec![
        "validate".into(),
        file.clone().into(),
        "--format".into(),
        "json".into(),
    ];
    let cli = extsvc(dir.path(), &args);
    assert_eq!(cli.code, Some(0), "{cli:?}");
    let report: Value = serde_json::from_str(&cli.stdout).unwrap();
    let views: Vec<(String, String, Value, Value)> = report["effective"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let timeout = &e["policies"]["MeshTimeout"];
            (
                e["kind"].as_str().unwrap().to_string(),
                e["service"].as_str().unwrap().to_string(),
                timeout["conf"].clone(),
                timeout["fields"]["connectionTimeout"].clone(),
            )
        })
        .collect();
    let want = |kind: &str, service: &str, conf: Value| {
        (
            kind.to_string(),
            service.to_string(),
            conf,
            Value::from("timeouts"),
        )
    };
    assert_eq!(
        views,
        [
            want(
                "ExternalService",
                "ext",
                serde_json::json!({"connectionTimeout": "3s", "http": {"requestTimeout": "1s"}})
            ),
            want(
                "MeshExternalService",
                "ext",
                serde_json::json!({"connectionTimeout": "3s", "http": {"requestTimeout": "2s"}})
            ),
            want(
                "MeshExternalService",
                "only-mes",
                serde_json::json!({"connectionTimeout": "3s"})
            ),
        ]
    );
    let at = format!(
        "{}: MeshTimeout \"timeouts\" (mesh \"default\")",
        file.display()
    );
    assert_eq!(
        report["warnings"],
        serde_json::json!([
            format!("{at}: spec.to[3].targetRef.name: no MeshExternalService of mesh \"default\" is named \"nowhere\", so this entry applies to nothing"),
            format!("{at}: spec.to[4].targetRef.name: no ExternalService of mesh \"default\" has kuma.io/service \"only-mes\", so this entry applies to nothing"),
        ])
    );
}

/// A MeshTimeout on a MeshExternalService cuts its slow upstream (504 `UT` at the policy's
/// timeout), while an ExternalService of the same name, which the entry does not target,
/// keeps the default and gets its slow answer.
#[test]
fn a_mesh_timeout_on_a_mesh_external_service_cuts_it_and_not_the_external_service() {
    let dir = test_dir();
    let delay = Duration::from_secs(2);
    let mes_upstream = Scripted::start(vec![Reply::status(200).after(delay)]);
    let es_upstream = Scripted::start(vec![Reply::status(200).after(delay)]);
    let s = sidecar(
        dir.path(),
        &[
            http_service("slow", &es_upstream.addr().to_string()),
            mesh_external_service("slow", &mes_upstream.addr().to_string()),
            policy(
                "MeshTimeout",
                "mes-timeout",
                "{to: [{targetRef: {kind: MeshExternalService, name: slow}, \
                 default: {http: {requestTimeout: 300ms}}}]}",
            ),
        ],
    );
    let started = Instant::now();
    let r = s.with_host("slow.extsvc.mesh.local", "/").run();
    let took = started.elapsed();
    assert_eq!(r.status, 504, "{r:?}");
    assert!(
        took >= Duration::from_millis(250) && took < delay,
        "504 should come at the 300ms timeout, not after the upstream's {delay:?}: {took:?}"
    );
    let r = s.with_host("slow.mesh", "/").run();
    assert_eq!(r.status, 200, "{r:?}");
    let log = s.access_log(2);
    let flags: Vec<(&str, &str, &str)> = log
        .iter()
        .map(|l| {
            (
                l["external_service"].as_str().unwrap_or_default(),
                l["response_flags"].as_str().unwrap_or_default(),
                l["requested_authority"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    // The name the app used is logged for the MES too, whose route gives the upstream the
    // endpoint's address as `Host`.
    assert_eq!(
        flags,
        [
            ("MeshExternalService/slow", "UT", "slow.extsvc.mesh.local"),
            ("slow", "-", "slow.mesh"),
        ],
        "{log:?}"
    );
    assert_eq!(
        s.envoy
            .counter("cluster.external_service_mes_slow.upstream_rq_timeout"),
        1
    );
    assert_eq!(
        s.envoy
            .counter("cluster.external_service_slow.upstream_rq_timeout"),
        0
    );
}
