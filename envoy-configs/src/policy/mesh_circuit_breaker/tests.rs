use external_service_model::protocol::Protocol::Http;

use super::Conf;
use crate::policy::test_support::{
    assert_applies_to_mesh_external_service, assert_hooks, assert_violations,
};

#[test]
fn what_it_sets_on_envoy() {
    assert_hooks::<Conf>(&[
        (
            "{connectionLimits: {maxConnections: 2, maxPendingRequests: 1}}",
            Http,
            "
cluster:
  circuit_breakers:
    thresholds:
    - max_connections: 2
      max_pending_requests: 1
",
        ),
        (
            "{outlierDetection: {interval: 5s, baseEjectionTime: 30s, maxEjectionPercent: 50, \
             detectors: {totalFailures: {consecutive: 3}, successRate: \
             {standardDeviationFactor: '1.9'}}}}",
            Http,
            "
cluster:
  outlier_detection:
    interval: 5s
    base_ejection_time: 30s
    max_ejection_percent: 50
    consecutive_5xx: 3
    enforcing_consecutive_5xx: 100
    enforcing_consecutive_gateway_failure: 0
    enforcing_consecutive_local_origin_failure: 0
    success_rate_stdev_factor: 1900
    enforcing_success_rate: 100
    enforcing_failure_percentage: 0
",
        ),
        (
            "{outlierDetection: {disabled: true, detectors: {totalFailures: {}}}}",
            Http,
            "
{}
",
        ),
    ]);
}

#[test]
fn kumas_rules() {
    assert_violations::<Conf>(&[
        (
            "{}",
            &["default: at least one of: 'connectionLimits' or 'outlierDetection' should be configured"],
        ),
        (
            "{connectionLimits: {maxRetries: 0}, outlierDetection: {}}",
            &[
                "default.connectionLimits.maxRetries: must be greater than 0",
                "default.outlierDetection.detectors: must be defined",
            ],
        ),
    ]);
}

/// Kuma 2.14 takes `to[].targetRef.kind: MeshExternalService` for this kind.
#[test]
fn applies_to_a_mesh_external_service_it_names() {
    assert_applies_to_mesh_external_service::<Conf>("{connectionLimits: {maxConnections: 2}}", Http);
}
