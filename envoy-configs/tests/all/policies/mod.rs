//! Traffic policies (MeshTimeout, MeshRetry, MeshCircuitBreaker, MeshHealthCheck,
//! MeshRateLimit, MeshFaultInjection) beside ExternalServices: validation with exact
//! field/message pairs (`tests/policies/*.yaml`), the effective view and warnings of
//! `extsvc validate`, and a real Envoy against upstreams that misbehave on purpose.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use extsvc_testkit as support;

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use external_service_model::resource::Kind;
use extsvc::read;
use serde_json::Value;
use support::{dedent, docs, extsvc, http_service, mesh, test_dir, Reply, Scripted, Sidecar};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/policies")
        .join(name)
}

/// Every (resource, field, message) of a fixture's invalid resources.
fn violations(file: &str) -> Vec<(String, String, String)> {
    let loaded = read::load(&[fixture(file)]).unwrap();
    loaded
        .checked
        .reports
        .iter()
        .flat_map(|r| {
            r.violations.iter().map(|v| {
                (
                    format!("{} {}", r.kind, r.name),
                    v.field.clone(),
                    v.message.clone(),
                )
            })
        })
        .collect()
}

#[test]
fn valid_policies_are_valid() {
    assert_eq!(violations("valid.yaml"), Vec::new());
}

#[test]
fn every_violation_in_kumas_wording_with_its_field() {
    let want = [
        ("MeshTimeout bad-timeouts", "spec.targetRef.kind", "value is not supported"),
        ("MeshTimeout bad-timeouts", "spec.to[0].targetRef.name", "must be set"),
        ("MeshTimeout bad-timeouts", "spec.to[0].default.connectionTimeout", "must be greater than zero when defined"),
        ("MeshTimeout bad-timeouts", "spec.to[0].default.http.requestTimeout", "must not be negative when defined"),
        ("MeshTimeout bad-timeouts", "spec.to[1].targetRef.name", "must not be set with kind Mesh"),
        ("MeshTimeout bad-timeouts", "spec.to[1].default", "at least one timeout should be configured"),
        ("MeshTimeout bad-timeouts", "spec.to[2].default.http", "at least one timeout in this section should be configured"),
        ("MeshTimeout no-to", "spec", "at least one of 'from', 'to' has to be defined"),
        ("MeshTimeout unknown-field", "spec.to[0].default.conectionTimeout", "unknown field `conectionTimeout`, expected one of `connectionTimeout`, `idleTimeout`, `http`"),
        ("MeshTimeout unknown-field", "spec.to[0].default.idleTimeout", "time: unknown unit \"d\" in duration \"1d\""),
        ("MeshRetry bad-retries", "spec.to[0].default.http.backOff", "must not be empty"),
        ("MeshRetry bad-retries", "spec.to[0].default.http.rateLimitedBackOff.maxInterval", "must be defined and greater than zero"),
        ("MeshRetry bad-retries", "spec.to[0].default.http.rateLimitedBackOff.resetHeaders", "must be defined"),
        ("MeshRetry bad-retries", "spec.to[0].default.http.retryOn[1]", "unknown item 'Sometimes'"),
        ("MeshRetry bad-retries", "spec.to[0].default.http.retryOn[2]", "unknown item '999'"),
        ("MeshRetry bad-retries", "spec.to[0].default.grpc", "must not be empty"),
        ("MeshRetry empty-retries", "spec.to", "needs at least one item"),
        ("MeshCircuitBreaker bad-breaker", "spec.to[0].default.connectionLimits.maxConnections", "must be greater than 0"),
        ("MeshCircuitBreaker bad-breaker", "spec.to[0].default.outlierDetection.interval", "must be greater than zero when defined"),
        ("MeshCircuitBreaker bad-breaker", "spec.to[0].default.outlierDetection.maxEjectionPercent", "must be in inclusive range [0, 100]"),
        ("MeshCircuitBreaker bad-breaker", "spec.to[0].default.outlierDetection.detectors.totalFailures.consecutive", "must be greater than 0"),
        ("MeshCircuitBreaker bad-breaker", "spec.to[0].default.outlierDetection.detectors.successRate.standardDeviationFactor", "invalid number"),
        ("MeshCircuitBreaker bad-breaker", "spec.to[0].default.outlierDetection.detectors.failurePercentage.threshold", "must be in inclusive range [0, 100]"),
        ("MeshCircuitBreaker bad-breaker", "spec.to[1].default", "at least one of: 'connectionLimits' or 'outlierDetection' should be configured"),
        ("MeshCircuitBreaker bad-breaker", "spec.to[2].default.outlierDetection.detectors", "must have at least one defined: totalFailures, gatewayFailures, localOriginFailures, successRate, failurePercentage"),
        ("MeshHealthCheck bad-health", "spec.to[0].default.interval", "must be greater than zero when defined"),
        ("MeshHealthCheck bad-health", "spec.to[0].default.unhealthyThreshold", "must be greater than zero when defined"),
        ("MeshHealthCheck bad-health", "spec.to[0].default.healthyPanicThreshold", "must be in inclusive range [0.0, 100.0]"),
        ("MeshHealthCheck bad-health", "spec.to[0].default.eventLogPath", "must be a valid path when defined"),
        ("MeshHealthCheck bad-health", "spec.to[0].default.http.path", "must be defined"),
        ("MeshHealthCheck bad-health", "spec.to[0].default.http.expectedStatuses[1]", "must be in inclusive range [100, 599]"),
        ("MeshHealthCheck bad-health", "spec.to[1].default", "must have at least one defined: http, tcp, grpc"),
        ("MeshRateLimit bad-limit", "spec.to", "must not be defined"),
        ("MeshRateLimit bad-limit", "spec.from[0].targetRef.kind", "value is not supported"),
        ("MeshRateLimit bad-limit", "spec.from[0].default.local.http.requestRate.num", "must be greater than 0"),
        ("MeshRateLimit bad-limit", "spec.from[0].default.local.http.requestRate.interval", "must be greater than: 50ms"),
        ("MeshRateLimit bad-limit", "spec.from[0].default.local.http.onRateLimit.status", "must be greater than 0"),
        ("MeshRateLimit bad-limit", "spec.from[1].default.local", "must be defined"),
        ("MeshRateLimit bad-limit", "spec.from[2].default.local.http", "must have at least one defined: disabled, requestRate, onRateLimit"),
        ("MeshRateLimit bad-limit", "spec.from[3].default.local.tcp.connectionRate.num", "must be greater than 0"),
        ("MeshRateLimit bad-limit", "spec.from[3].default.local.tcp.connectionRate.interval", "must be greater than: 50ms"),
        ("MeshRateLimit bad-limit", "spec.from[4].default.local.tcp", "must have at least one defined: disabled, connectionRate"),
        ("MeshFaultInjection bad-faults", "spec.from[0].default.http[0].abort.httpStatus", "must be in inclusive range [100, 599]"),
        ("MeshFaultInjection bad-faults", "spec.from[0].default.http[0].abort.percentage", "must be in inclusive range [0.0, 100.0]"),
        ("MeshFaultInjection bad-faults", "spec.from[0].default.http[0].delay.value", "must not be negative when defined"),
        ("MeshFaultInjection bad-faults", "spec.from[0].default.http[0].delay.percentage", "string must be a valid number"),
        ("MeshFaultInjection bad-faults", "spec.from[0].default.http[0].responseBandwidth.limit", "must be in kbps/Mbps/Gbps units"),
        ("MeshFaultInjection bad-faults", "spec.from[0].default.http[1].responseBandwidth.limit", "must be greater than 0"),
        ("MeshFaultInjection bad-faults", "spec.from[0].default.http[1].responseBandwidth.percentage", "must be in inclusive range [0.0, 100.0]"),
        ("MeshFaultInjection bad-faults", "spec.from[0].default.http[2].responseBandwidth.limit", "must be defined"),
        ("MeshFaultInjection bad-faults", "spec.from[0].default.http", "not supported yet by extsvc: more than one abort"),
        ("MeshFaultInjection bad-faults", "spec.from[0].default.http", "not supported yet by extsvc: more than one responseBandwidth"),
        ("MeshTrafficPermission not-read", "type", "unsupported resource \"MeshTrafficPermission\": extsvc reads ExternalService, Mesh, Secret, Dataplane, MeshExternalService, HostnameGenerator, MeshTimeout, MeshRetry, MeshCircuitBreaker, MeshHealthCheck, MeshRateLimit and MeshFaultInjection"),
    ];
    let want: Vec<(String, String, String)> = want
        .iter()
        .map(|(r, f, m)| (r.to_string(), f.to_string(), m.to_string()))
        .collect();
    assert_eq!(violations("invalid.yaml"), want);
}

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
    let applied = policies.of("default", "a").get(Kind::MeshTimeout).unwrap();
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

// ---------------------------------------------------------------------------------------------
// Real Envoy
// ---------------------------------------------------------------------------------------------

fn sidecar(dir: &Path, services: &[String]) -> Sidecar {
    let resources: Vec<String> = std::iter::once(mesh(false))
        .chain(services.iter().cloned())
        .collect();
    Sidecar::start(dir, None, &docs(&resources), &[])
}

fn timeout_for(service: &str, request_timeout: &str) -> String {
    dedent(&format!(
        "
        type: MeshTimeout
        name: {service}-timeout
        mesh: default
        spec:
          targetRef: {{kind: Mesh}}
          to:
          - targetRef: {{kind: MeshService, name: {service}}}
            default: {{http: {{requestTimeout: {request_timeout}}}}}
        "
    ))
}

#[test]
fn a_slow_upstream_gets_504_at_the_mesh_timeout_and_other_services_keep_the_default() {
    let dir = test_dir();
    let slow = Scripted::start(vec![Reply::status(200).after(Duration::from_secs(3))]);
    let also_slow = Scripted::start(vec![Reply::status(200).after(Duration::from_secs(3))]);
    let s = sidecar(
        dir.path(),
        &[
            http_service("slow", &slow.addr().to_string()),
            http_service("untouched", &also_slow.addr().to_string()),
            timeout_for("slow", "300ms"),
        ],
    );
    let started = Instant::now();
    let r = s.with_host("slow.mesh", "/").run();
    assert_eq!(r.status, 504, "{r:?}");
    assert!(
        started.elapsed() < Duration::from_millis(2900),
        "504 should come at the 300ms timeout, not after the upstream's 3s: {:?}",
        started.elapsed()
    );
    // The other service keeps `--route-timeout` (15 s): its slow answer arrives.
    let r = s.with_host("untouched.mesh", "/").run();
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        s.envoy
            .counter("cluster.external_service_slow.upstream_rq_timeout"),
        1
    );
    assert_eq!(
        s.envoy
            .counter("cluster.external_service_untouched.upstream_rq_timeout"),
        0
    );
}

#[test]
fn a_failing_then_healthy_upstream_is_retried_to_success() {
    let dir = test_dir();
    let flaky = Scripted::start(vec![
        Reply::status(503),
        Reply::status(503),
        Reply::status(200),
    ]);
    let failing = Scripted::start(vec![Reply::status(503), Reply::status(200)]);
    let retry = dedent(
        "
        type: MeshRetry
        name: flaky-retries
        mesh: default
        spec:
          targetRef: {kind: Mesh}
          to:
          - targetRef: {kind: MeshService, name: flaky}
            default:
              http:
                numRetries: 3
                backOff: {baseInterval: 10ms, maxInterval: 50ms}
                retryOn: [5xx]
        ",
    );
    let s = sidecar(
        dir.path(),
        &[
            http_service("flaky", &flaky.addr().to_string()),
            http_service("unretried", &failing.addr().to_string()),
            retry,
        ],
    );
    let r = s.with_host("flaky.mesh", "/").run();
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("x-request-number"), Some("3"), "{r:?}");
    // Two retries reached the upstream, and Envoy counted them.
    assert_eq!(flaky.requests(), 3);
    assert_eq!(
        s.envoy
            .counter("cluster.external_service_flaky.upstream_rq_retry"),
        2
    );
    // No MeshRetry names the other service: its 503 is the answer, asked once.
    let r = s.with_host("unretried.mesh", "/").run();
    assert_eq!(r.status, 503, "{r:?}");
    assert_eq!(failing.requests(), 1);
}

#[test]
fn concurrent_requests_over_the_circuit_breakers_limits_get_503_at_once() {
    let dir = test_dir();
    let slow = Scripted::start(vec![Reply::status(200).after(Duration::from_secs(4))]);
    let other = Scripted::start(vec![Reply::status(200).after(Duration::from_millis(500))]);
    let breaker = dedent(
        "
        type: MeshCircuitBreaker
        name: one-at-a-time
        mesh: default
        spec:
          to:
          - targetRef: {kind: MeshService, name: limited}
            default:
              connectionLimits: {maxConnections: 1, maxPendingRequests: 1}
        ",
    );
    let s = sidecar(
        dir.path(),
        &[
            http_service("limited", &slow.addr().to_string()),
            http_service("unlimited", &other.addr().to_string()),
            breaker,
        ],
    );
    let concurrent = |host: &'static str| {
        let requests: Vec<_> = (0..4)
            .map(|_| {
                let curl = s.with_host(host, "/");
                std::thread::spawn(move || {
                    let started = Instant::now();
                    let r = curl.run();
                    (r, started.elapsed())
                })
            })
            .collect();
        requests
            .into_iter()
            .map(|t| t.join().unwrap())
            .collect::<Vec<_>>()
    };
    let answers = concurrent("limited.mesh");
    let refused: Vec<_> = answers.iter().filter(|(r, _)| r.status == 503).collect();
    let served = answers.iter().filter(|(r, _)| r.status == 200).count();
    // At most one request on the one connection and one pending: the others overflow. (The
    // first can still be pending while its connection opens, so the second may overflow too.)
    assert!((2..=3).contains(&refused.len()), "{answers:?}");
    assert_eq!(served + refused.len(), 4, "{answers:?}");
    for (r, took) in &refused {
        assert!(
            *took < Duration::from_secs(3),
            "not at once: {took:?} {r:?}"
        );
        assert_eq!(r.header("x-envoy-overloaded"), Some("true"), "{r:?}");
    }
    assert_eq!(
        s.envoy
            .counter("cluster.external_service_limited.upstream_rq_pending_overflow"),
        refused.len() as u64
    );
    assert_eq!(slow.requests(), served);
    // The service without a MeshCircuitBreaker takes all four at once.
    let answers = concurrent("unlimited.mesh");
    assert!(answers.iter().all(|(r, _)| r.status == 200), "{answers:?}");
    assert_eq!(other.requests(), 4);
}

/// A MeshHealthCheck of `service` alone, checking every 200 ms, with `default`'s fields (flow
/// YAML, without braces) besides.
fn health_check_of(service: &str, default: &str) -> String {
    dedent(&format!(
        "
        type: MeshHealthCheck
        name: {service}-health
        mesh: default
        spec:
          to:
          - targetRef: {{kind: MeshService, name: {service}}}
            default: {{interval: 200ms, noTrafficInterval: 200ms, {default}}}
        "
    ))
}

#[test]
fn an_unhealthy_upstream_gets_503_without_a_request_reaching_it_then_is_served_again() {
    let dir = test_dir();
    let up = Scripted::start(vec![Reply::status(200)]);
    let health = health_check_of(
        "checked",
        "timeout: 1s, unhealthyThreshold: 1, healthyThreshold: 1, healthyPanicThreshold: 0, \
         http: {path: /health}",
    );
    let s = sidecar(
        dir.path(),
        &[http_service("checked", &up.addr().to_string()), health],
    );
    let app_requests = || up.paths().iter().filter(|p| *p != "/health").count();
    let status = || s.with_host("checked.mesh", "/app").run().status;
    let wait = Duration::from_secs(20);
    let poll = Duration::from_millis(100);
    support::eventually("served while healthy", wait, poll, || match status() {
        200 => Ok(()),
        other => Err(format!(
            "status {other}; health checks: {}",
            s.envoy
                .counter("cluster.external_service_checked.health_check.success")
        )),
    });
    assert!(
        up.paths().iter().any(|p| p == "/health"),
        "{:?}",
        up.paths()
    );

    up.play(vec![Reply::status(503)]);
    support::eventually("refused once unhealthy", wait, poll, || {
        let before = app_requests();
        let r = s.with_host("checked.mesh", "/app").run();
        match (r.status, app_requests() == before) {
            (503, true) => Ok(()),
            _ => Err(format!(
                "{} (upstream reached: {})",
                r.status,
                app_requests() != before
            )),
        }
    });
    // Now every request is refused by Envoy itself: the upstream sees health checks only.
    let before = app_requests();
    for _ in 0..3 {
        let r = s.with_host("checked.mesh", "/app").run();
        assert_eq!(r.status, 503, "{r:?}");
        assert_eq!(r.body, "no healthy upstream", "{r:?}");
    }
    assert_eq!(app_requests(), before);

    up.play(vec![Reply::status(200)]);
    support::eventually("served again once healthy", wait, poll, || match status() {
        200 => Ok(()),
        other => Err(format!("status {other}")),
    });
}

#[test]
fn the_rate_limits_third_request_gets_its_configured_status() {
    let dir = test_dir();
    let limited = Scripted::start(vec![Reply::status(200)]);
    let free = Scripted::start(vec![Reply::status(200)]);
    let limit = dedent(
        "
        type: MeshRateLimit
        name: two-a-minute
        mesh: default
        spec:
          targetRef: {kind: MeshService, name: limited}
          from:
          - targetRef: {kind: Mesh}
            default:
              local:
                http:
                  requestRate: {num: 2, interval: 1m}
                  onRateLimit: {status: 503, headers: {set: [{name: x-limited, value: by-policy}]}}
        ",
    );
    let s = sidecar(
        dir.path(),
        &[
            http_service("limited", &limited.addr().to_string()),
            http_service("free", &free.addr().to_string()),
            limit,
        ],
    );
    let statuses: Vec<u16> = (0..3)
        .map(|_| s.with_host("limited.mesh", "/").run().status)
        .collect();
    assert_eq!(statuses, [200, 200, 503]);
    let r = s.with_host("limited.mesh", "/").run();
    assert_eq!(r.header("x-limited"), Some("by-policy"), "{r:?}");
    assert_eq!(limited.requests(), 2);
    // The other service has no limit.
    for _ in 0..4 {
        assert_eq!(s.with_host("free.mesh", "/").run().status, 200);
    }
    assert_eq!(free.requests(), 4);
}

#[test]
fn a_fault_abort_and_a_fault_delay_act_on_the_share_they_name() {
    let dir = test_dir();
    let aborted = Scripted::start(vec![Reply::status(200)]);
    let delayed = Scripted::start(vec![Reply::status(200)]);
    let fault = |service: &str, fault: &str| {
        dedent(&format!(
            "
            type: MeshFaultInjection
            name: {service}-faults
            mesh: default
            spec:
              targetRef: {{kind: MeshService, name: {service}}}
              from:
              - targetRef: {{kind: Mesh}}
                default: {{http: [{fault}]}}
            "
        ))
    };
    let s = sidecar(
        dir.path(),
        &[
            http_service("aborted", &aborted.addr().to_string()),
            http_service("delayed", &delayed.addr().to_string()),
            fault("aborted", "{abort: {httpStatus: 418, percentage: 50}}"),
            fault("delayed", "{delay: {value: 400ms, percentage: 100}}"),
        ],
    );
    let tries = 60;
    let teapots = (0..tries)
        .filter(|_| s.with_host("aborted.mesh", "/").run().status == 418)
        .count();
    // Half of 60; outside 12..=48 is over four standard deviations away.
    assert!((12..=48).contains(&teapots), "{teapots} of {tries} aborted");
    assert_eq!(aborted.requests(), tries - teapots);
    for _ in 0..3 {
        let started = Instant::now();
        let r = s.with_host("delayed.mesh", "/").run();
        assert_eq!(r.status, 200, "{r:?}");
        assert!(
            started.elapsed() >= Duration::from_millis(400),
            "{:?}",
            started.elapsed()
        );
    }
    assert_eq!(
        s.envoy.counter("http.outbound_http.fault.delays_injected"),
        3
    );
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

/// A tcp service behind a Dataplane outbound, with these policies.
fn tcp_sidecar(dir: &Path, address: &str, policies: &[String]) -> Sidecar {
    let service = dedent(&format!(
        "
        type: ExternalService
        mesh: default
        name: raw
        tags: {{kuma.io/service: raw, kuma.io/protocol: tcp}}
        networking: {{address: {address}}}
        "
    ));
    Sidecar::start_with_outbounds(dir, None, 1, &[], |ports| {
        let mut all = vec![
            mesh(false),
            service.clone(),
            support::dataplane(ports[0], "raw"),
        ];
        all.extend(policies.iter().cloned());
        docs(&all)
    })
}

#[test]
fn a_tcp_service_is_connected_to_as_many_times_as_its_mesh_retry_says() {
    let dir = test_dir();
    // Nothing listens there: every attempt fails.
    let closed = format!("127.0.0.1:{}", support::free_port());
    let retry = dedent(
        "
        type: MeshRetry
        name: tcp-attempts
        mesh: default
        spec:
          to:
          - targetRef: {kind: MeshService, name: raw}
            default: {tcp: {maxConnectAttempt: 3}}
        ",
    );
    let s = tcp_sidecar(dir.path(), &closed, &[retry]);
    let mut app = std::net::TcpStream::connect(("127.0.0.1", s.outbound[0])).unwrap();
    app.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut buf = [0u8; 16];
    // Envoy closes the app's connection once the attempts are spent.
    let _ = std::io::Read::read(&mut app, &mut buf);
    let failures = "cluster.external_service_raw.upstream_cx_connect_fail";
    support::eventually(
        "three attempts",
        Duration::from_secs(10),
        Duration::from_millis(100),
        || match s.envoy.counter(failures) {
            3 => Ok(()),
            n => Err(format!("{n} attempts")),
        },
    );
}

#[test]
fn an_idle_tcp_connection_is_closed_at_the_mesh_timeouts_idle_timeout() {
    let dir = test_dir();
    let up = support::UpstreamBuilder::new()
        .tcp("echo")
        .start(dir.path());
    let timeout = dedent(
        "
        type: MeshTimeout
        name: tcp-idle
        mesh: default
        spec:
          to:
          - targetRef: {kind: Mesh}
            default: {idleTimeout: 500ms}
        ",
    );
    let s = tcp_sidecar(dir.path(), &up.addr("echo").to_string(), &[timeout]);
    let mut app = std::net::TcpStream::connect(("127.0.0.1", s.outbound[0])).unwrap();
    app.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    std::io::Write::write_all(&mut app, b"ping").unwrap();
    let mut buf = [0u8; 4];
    std::io::Read::read_exact(&mut app, &mut buf).unwrap();
    assert_eq!(&buf, b"ping");
    let idle_since = Instant::now();
    let mut rest = [0u8; 1];
    // Closed by Envoy, not by the read timeout.
    assert_eq!(std::io::Read::read(&mut app, &mut rest).unwrap(), 0);
    let idle = idle_since.elapsed();
    assert!(
        idle >= Duration::from_millis(450) && idle < Duration::from_secs(8),
        "{idle:?}"
    );
    let stat = format!("tcp.outbound_127_0_0_1_{}.idle_timeout", s.outbound[0]);
    assert_eq!(s.envoy.counter(&stat), 1, "{stat}");
}

/// Two http services and a MeshTimeout `default` for the first (`closed`) only: Envoy closes
/// its upstream connection, counted by the cluster's `stat`; the other's (`kept`, Envoy's
/// defaults) stays open.
fn only_the_timed_out_services_upstream_connection_is_closed(default: &str, stat: &str) {
    let dir = test_dir();
    let up = support::UpstreamBuilder::new()
        .plain("a")
        .plain("b")
        .start(dir.path());
    let timeout = dedent(&format!(
        "
        type: MeshTimeout
        name: http-connections
        mesh: default
        spec:
          to:
          - targetRef: {{kind: MeshService, name: closed}}
            default: {default}
        "
    ));
    let s = sidecar(
        dir.path(),
        &[
            http_service("closed", &up.addr("a").to_string()),
            http_service("kept", &up.addr("b").to_string()),
            timeout,
        ],
    );
    assert_eq!(s.with_host("closed.mesh", "/").run().status, 200);
    assert_eq!(s.with_host("kept.mesh", "/").run().status, 200);
    let closed = format!("cluster.external_service_closed.{stat}");
    support::eventually(
        &closed,
        Duration::from_secs(10),
        Duration::from_millis(100),
        || match s.envoy.counter(&closed) {
            1 => Ok(()),
            n => Err(format!("{n} closed")),
        },
    );
    assert_eq!(
        s.envoy
            .counter(&format!("cluster.external_service_kept.{stat}")),
        0
    );
    assert_eq!(
        s.envoy
            .counter("cluster.external_service_kept.upstream_cx_active"),
        1
    );
}

#[test]
fn an_idle_upstream_http_connection_is_closed_at_the_mesh_timeouts_idle_timeout() {
    only_the_timed_out_services_upstream_connection_is_closed(
        "{idleTimeout: 300ms}",
        "upstream_cx_idle_timeout",
    );
}

#[test]
fn an_upstream_http_connection_is_closed_at_the_mesh_timeouts_max_connection_duration() {
    only_the_timed_out_services_upstream_connection_is_closed(
        "{http: {maxConnectionDuration: 300ms}}",
        "upstream_cx_max_duration_reached",
    );
}

/// An HTTP/1.1 upstream that answers every request 200 with `body_len` bytes, and keeps each
/// request's head (lowercased); stops when dropped.
struct Recording {
    addr: std::net::SocketAddr,
    heads: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
}

impl Recording {
    fn start(body_len: usize) -> Recording {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let heads = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (kept, stopping) = (heads.clone(), stop.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(stream) = stream else { continue };
                let kept = kept.clone();
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(&stream);
                    let mut head = String::new();
                    let mut line = String::new();
                    while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
                        head.push_str(&line.to_ascii_lowercase());
                        line.clear();
                    }
                    kept.lock().unwrap().push(head);
                    let _ = write!(
                        &stream,
                        "HTTP/1.1 200 OK\r\ncontent-length: {body_len}\r\nconnection: close\r\n\r\n{}",
                        "x".repeat(body_len)
                    );
                });
            }
        });
        Recording { addr, heads, stop }
    }

    fn heads(&self) -> Vec<String> {
        self.heads.lock().unwrap().clone()
    }
}

impl Drop for Recording {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop so that it sees `stop`.
        let _ = std::net::TcpStream::connect(self.addr);
    }
}

#[test]
fn health_checks_carry_the_mesh_health_checks_request_headers() {
    let dir = test_dir();
    let up = Recording::start(0);
    let health = health_check_of(
        "checked",
        "http: {path: /health, requestHeadersToAdd: {\
         add: [{name: x-checked-by, value: extsvc}], \
         set: [{name: user-agent, value: mesh-health-check}]}}",
    );
    let _s = sidecar(
        dir.path(),
        &[http_service("checked", &up.addr.to_string()), health],
    );
    support::eventually(
        "a health check",
        Duration::from_secs(20),
        Duration::from_millis(100),
        || match up.heads().first() {
            Some(head) => Ok(head.clone()),
            None => Err("none yet".to_string()),
        },
    );
    let head = &up.heads()[0];
    assert!(head.starts_with("get /health "), "{head}");
    assert!(head.contains("\r\nx-checked-by: extsvc\r\n"), "{head}");
    // `set` replaces Envoy's own `user-agent: Envoy/HC`.
    assert!(
        head.contains("\r\nuser-agent: mesh-health-check\r\n"),
        "{head}"
    );
    assert!(!head.contains("envoy/hc"), "{head}");
}

#[test]
fn a_response_is_slowed_to_the_mesh_fault_injections_bandwidth() {
    let dir = test_dir();
    let size = 64 * 1024;
    let throttled = Recording::start(size);
    let free = Recording::start(size);
    let fault = dedent(
        "
        type: MeshFaultInjection
        name: slow-lane
        mesh: default
        spec:
          targetRef: {kind: MeshService, name: throttled}
          from:
          - targetRef: {kind: Mesh}
            default: {http: [{responseBandwidth: {limit: 16kbps, percentage: 100}}]}
        ",
    );
    let s = sidecar(
        dir.path(),
        &[
            http_service("throttled", &throttled.addr.to_string()),
            http_service("free", &free.addr.to_string()),
            fault,
        ],
    );
    let started = Instant::now();
    let r = s.with_host("throttled.mesh", "/").run();
    let took = started.elapsed();
    assert_eq!((r.status, r.body.len()), (200, size), "{:?}", r.status);
    // 64 KiB at 16 KiB/s, the first second's worth at once: about 3 s.
    assert!(took >= Duration::from_secs(2), "{took:?}");
    let injected = "http.outbound_http.fault.response_rl_injected";
    assert_eq!(s.envoy.counter(injected), 1);
    // The other service's route has no limit.
    let r = s.with_host("free.mesh", "/").run();
    assert_eq!((r.status, r.body.len()), (200, size), "{:?}", r.status);
    assert_eq!(s.envoy.counter(injected), 1);
}

#[test]
fn the_third_tcp_connection_in_the_mesh_rate_limits_interval_is_refused() {
    let dir = test_dir();
    let up = support::UpstreamBuilder::new()
        .tcp("echo")
        .start(dir.path());
    let limit = dedent(
        "
        type: MeshRateLimit
        name: two-connections-a-minute
        mesh: default
        spec:
          targetRef: {kind: MeshService, name: raw}
          from:
          - targetRef: {kind: Mesh}
            default: {local: {tcp: {connectionRate: {num: 2, interval: 1m}}}}
        ",
    );
    let s = tcp_sidecar(dir.path(), &up.addr("echo").to_string(), &[limit]);
    let echoed = || {
        let mut app = std::net::TcpStream::connect(("127.0.0.1", s.outbound[0])).unwrap();
        app.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        // Refused, the write may already fail; the read says what happened.
        let _ = app.write_all(b"ping");
        let mut buf = [0u8; 4];
        match app.read(&mut buf) {
            Ok(4) => Ok(buf),
            Ok(n) => Err(format!("{n} bytes")),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                panic!("neither served nor closed: {e}")
            }
            Err(e) => Err(e.to_string()),
        }
    };
    assert_eq!(echoed(), Ok(*b"ping"));
    assert_eq!(echoed(), Ok(*b"ping"));
    let third = echoed();
    assert!(third.is_err(), "{third:?}");
    let stat = format!(
        "local_rate_limit.outbound_127_0_0_1_{}.rate_limited",
        s.outbound[0]
    );
    assert_eq!(s.envoy.counter(&stat), 1, "{stat}");
}

#[test]
fn health_check_events_are_logged_to_the_mesh_health_checks_event_log_path() {
    let dir = test_dir();
    let up = Recording::start(0);
    let log = dir.path().join("health-events.log");
    let health = health_check_of(
        "logged",
        &format!("eventLogPath: {}, http: {{path: /health}}", log.display()),
    );
    let _s = sidecar(
        dir.path(),
        &[http_service("logged", &up.addr.to_string()), health],
    );
    // The first passing check makes the host healthy: Envoy logs that event.
    support::eventually(
        "the host's first healthy event",
        Duration::from_secs(20),
        Duration::from_millis(100),
        || {
            let events = std::fs::read_to_string(&log).unwrap_or_default();
            match events.lines().find(|l| l.contains("add_healthy_event")) {
                Some(event) => Ok(event.to_string()),
                None => Err(format!("events so far: {events:?}")),
            }
        },
    );
    let events = std::fs::read_to_string(&log).unwrap();
    let event: Value = serde_json::from_str(events.lines().next().unwrap()).unwrap();
    assert_eq!(event["cluster_name"], "external_service_logged", "{event}");
}
