//! MeshHealthCheck in real Envoy: an unhealthy upstream taken out and back, the checks'
//! request headers, and the event log.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use extsvc_testkit as support;

use std::time::Duration;

use serde_json::Value;
use support::{dedent, http_service, test_dir, Reply, Scripted};

use super::{sidecar, Recording};

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
