//! Validation of traffic policies with exact (resource, field, message) triples, in Kuma's
//! wording: `tests/policies/valid.yaml` has none, `invalid.yaml` every one.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use extsvc::read;

use super::fixture;

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
        ("MeshTimeout bad-timeouts", "spec.to[0].targetRef.name", "must be set with kind MeshService"),
        ("MeshTimeout bad-timeouts", "spec.to[0].default.connectionTimeout", "must be greater than zero when defined"),
        ("MeshTimeout bad-timeouts", "spec.to[0].default.http.requestTimeout", "must not be negative when defined"),
        ("MeshTimeout bad-timeouts", "spec.to[1].targetRef.name", "using name with kind Mesh is not yet supported"),
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
        ("MeshAccessLog not-read", "type", "unsupported resource \"MeshAccessLog\": extsvc reads ExternalService, Mesh, Secret, Dataplane, MeshExternalService, HostnameGenerator, MeshPassthrough, ZoneEgress, MeshTrafficPermission, TrafficPermission, MeshTimeout, MeshRetry, MeshCircuitBreaker, MeshHealthCheck, MeshFaultInjection and MeshRateLimit"),
    ];
    let want: Vec<(String, String, String)> = want
        .iter()
        .map(|(r, f, m)| (r.to_string(), f.to_string(), m.to_string()))
        .collect();
    assert_eq!(violations("invalid.yaml"), want);
}
