use external_service_model::protocol::Protocol::{Grpc, Http, Tcp};

use super::Conf;
use crate::policy::test_support::{
    assert_applies_to_mesh_external_service, assert_hooks, assert_violations,
};

#[test]
fn what_it_sets_on_envoy() {
    assert_hooks::<Conf>(&[
        (
            "{connectionTimeout: 2s, idleTimeout: 1h, http: {requestTimeout: 1s, \
             streamIdleTimeout: 3s, maxStreamDuration: 4s, maxConnectionDuration: 5s}}",
            Http,
            "
cluster:
  connect_timeout: 2s
upstream_http:
  idle_timeout: 3600s
  max_connection_duration: 5s
route:
  timeout: 1s
  idle_timeout: 3s
  max_stream_duration:
    max_stream_duration: 4s
",
        ),
        ("{http: {requestTimeout: 0s}}", Grpc, "
route:
  timeout: 0s
"),
        ("{idleTimeout: 10m}", Tcp, "
upstream_http:
  idle_timeout: 600s
tcp_proxy:
  idle_timeout: 600s
"),
    ]);
}

#[test]
fn kumas_rules() {
    assert_violations::<Conf>(&[
        ("{}", &["default: at least one timeout should be configured"]),
        (
            "{http: {}}",
            &["default.http: at least one timeout in this section should be configured"],
        ),
        (
            "{connectionTimeout: 0s, idleTimeout: -1s, http: {streamIdleTimeout: -1s}}",
            &[
                "default.connectionTimeout: must be greater than zero when defined",
                "default.idleTimeout: must not be negative when defined",
                "default.http.streamIdleTimeout: must not be negative when defined",
            ],
        ),
    ]);
}

/// Kuma 2.14 takes `to[].targetRef.kind: MeshExternalService` for this kind.
#[test]
fn applies_to_a_mesh_external_service_it_names() {
    assert_applies_to_mesh_external_service::<Conf>("{connectionTimeout: 2s, http: {requestTimeout: 1s}}", Http);
}
