use external_service_model::protocol::Protocol::{Grpc, Http, Tcp};

use super::Conf;
use crate::policy::test_support::{
    assert_applies_to_mesh_external_service, assert_hooks, assert_violations,
};

#[test]
fn what_it_sets_on_envoy() {
    assert_hooks::<Conf>(&[
        (
            "{interval: 5s, healthyPanicThreshold: 30, http: {path: /health, \
             expectedStatuses: [200], requestHeadersToAdd: {set: [{name: x-check, value: '1'}]}}, \
             tcp: {send: ping}}",
            Http,
            "
cluster:
  health_checks:
  - timeout: 15s
    interval: 5s
    unhealthy_threshold: 5
    healthy_threshold: 1
    http_health_check:
      path: /health
      expected_statuses:
      - start: 200
        end: 201
      request_headers_to_add:
      - header:
          key: x-check
          value: '1'
        append_action: OVERWRITE_IF_EXISTS_OR_ADD
  common_lb_config:
    healthy_panic_threshold:
      value: 30.0
",
        ),
        ("{http: {disabled: true}, tcp: {receive: [pong]}}", Http, "
cluster:
  health_checks:
  - timeout: 15s
    interval: 60s
    unhealthy_threshold: 5
    healthy_threshold: 1
    tcp_health_check:
      receive:
      - text: 706f6e67
"),
        ("{timeout: 2s, unhealthyThreshold: 3, grpc: {serviceName: svc}}", Grpc, "
cluster:
  health_checks:
  - timeout: 2s
    interval: 60s
    unhealthy_threshold: 3
    healthy_threshold: 1
    grpc_health_check:
      service_name: svc
"),
        ("{http: {path: /health}}", Tcp, "
{}
"),
    ]);
}

#[test]
fn kumas_rules() {
    assert_violations::<Conf>(&[
        ("{}", &["default: must have at least one defined: http, tcp, grpc"]),
        (
            "{healthyThreshold: 0, eventLogPath: relative, tcp: {}}",
            &[
                "default.healthyThreshold: must be greater than zero when defined",
                "default.eventLogPath: must be a valid path when defined",
            ],
        ),
    ]);
}

/// Kuma 2.14 takes `to[].targetRef.kind: MeshExternalService` for this kind.
#[test]
fn applies_to_a_mesh_external_service_it_names() {
    assert_applies_to_mesh_external_service::<Conf>("{interval: 5s, tcp: {send: ping}}", Tcp);
}
