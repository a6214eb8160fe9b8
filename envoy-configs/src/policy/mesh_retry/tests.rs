use external_service_model::protocol::Protocol::{Grpc, Http, Tcp};

use super::Conf;
use crate::policy::test_support::{
    assert_applies_to_mesh_external_service, assert_hooks, assert_violations,
};

#[test]
fn what_it_sets_on_envoy() {
    assert_hooks::<Conf>(&[
        ("{http: {numRetries: 3}}", Http, "
route:
  retry_policy:
    retry_on: gateway-error,connect-failure,refused-stream
    num_retries: 3
"),
        (
            "{http: {numRetries: 2, perTryTimeout: 1s, backOff: {maxInterval: 1s}, \
             retryOn: [5xx, HttpMethodGet, 503], retriableRequestHeaders: [{name: x-retry, \
             type: Present}], rateLimitedBackOff: {resetHeaders: [{name: retry-after, \
             format: Seconds}]}}}",
            Http,
            "
route:
  retry_policy:
    retry_on: 5xx,retriable-status-codes
    num_retries: 2
    per_try_timeout: 1s
    retry_back_off:
      base_interval: 0.025s
      max_interval: 1s
    rate_limited_retry_back_off:
      reset_headers:
      - name: retry-after
        format: SECONDS
    retriable_status_codes:
    - 503
    retriable_request_headers:
    - name: :method
      string_match:
        exact: GET
    - name: x-retry
      present_match: true
",
        ),
        ("{http: {retryOn: [503]}}", Http, "
route:
  retry_policy:
    retry_on: gateway-error,connect-failure,refused-stream,retriable-status-codes
    retriable_status_codes:
    - 503
"),
        ("{http: {numRetries: 0}}", Http, "
{}
"),
        ("{grpc: {numRetries: 2, retryOn: [Canceled, Unavailable]}}", Grpc, "
route:
  retry_policy:
    retry_on: cancelled,unavailable
    num_retries: 2
"),
        ("{grpc: {numRetries: 2}}", Grpc, "
route:
  retry_policy:
    retry_on: cancelled,connect-failure,gateway-error,refused-stream,reset,resource-exhausted,unavailable
    num_retries: 2
"),
        ("{http: {numRetries: 2}}", Grpc, "
{}
"),
        ("{tcp: {maxConnectAttempt: 4}}", Tcp, "
tcp_proxy:
  max_connect_attempts: 4
"),
    ]);
}

#[test]
fn kumas_rules() {
    assert_violations::<Conf>(&[
        (
            "{}",
            &["default: at least one of the 'tcp', 'http', 'grpc' must be specified"],
        ),
        (
            "{tcp: {}, http: {}, grpc: {retryOn: [Sometimes]}}",
            &[
                "default.tcp: must not be empty",
                "default.http: must not be empty",
                "default.grpc.retryOn[0]: unknown item 'Sometimes'",
            ],
        ),
    ]);
}

/// Kuma 2.14 takes `to[].targetRef.kind: MeshExternalService` for this kind.
#[test]
fn applies_to_a_mesh_external_service_it_names() {
    assert_applies_to_mesh_external_service::<Conf>("{http: {numRetries: 3}, tcp: {maxConnectAttempt: 2}}", Http);
}
