//! One JSON line on stdout per request (HTTP) or connection (TCP). Never key material: only
//! names, addresses, codes and Envoy's failure reasons.

use external_service_model::contract::{DENIED_HEADER, REQUESTED_AUTHORITY_FILTER_STATE};

use crate::envoy::{
    AccessLog, AccessLogConfig, Extension, Map, StdoutAccessLog, SubstitutionFormatString,
};

/// For an HTTP connection manager; a sidecar's names its Dataplane's service (`source`).
pub fn http(listener: &str, source: Option<&str>) -> Vec<AccessLog> {
    with_source(
        source,
        &[
            ("start_time", "%START_TIME%"),
            ("listener", listener),
            ("method", "%REQ(:METHOD)%"),
            ("authority", "%REQ(:AUTHORITY)%"),
            // Set by the filter only when it rewrote the authority; null when the app named the
            // real one (then `authority` is what it asked for).
            (
                "requested_authority",
                &format!("%FILTER_STATE({REQUESTED_AUTHORITY_FILTER_STATE}:PLAIN)%"),
            ),
            // No route rewrites a path, and a client's `x-envoy-original-path` is stripped.
            ("path", "%REQ(:PATH)%"),
            ("protocol", "%PROTOCOL%"),
            // Each service's routes are named after it (`http::routes`).
            ("external_service", "%ROUTE_NAME%"),
            ("upstream_cluster", "%UPSTREAM_CLUSTER%"),
            ("upstream_host", "%UPSTREAM_HOST%"),
            ("response_code", "%RESPONSE_CODE%"),
            // A gRPC request's refusal is HTTP 200 with `grpc-status` 7 (PERMISSION_DENIED).
            ("grpc_status", "%GRPC_STATUS_NUMBER%"),
            ("response_flags", "%RESPONSE_FLAGS%"),
            ("response_code_details", "%RESPONSE_CODE_DETAILS%"),
            (
                "upstream_transport_failure_reason",
                "%UPSTREAM_TRANSPORT_FAILURE_REASON%",
            ),
            ("denied", &format!("%RESP({DENIED_HEADER})%")),
            ("duration_ms", "%DURATION%"),
        ],
    )
}

/// For a `tcp_proxy` bound to one service: the service is known, no request fields exist.
pub fn tcp(listener: &str, service: &str, source: Option<&str>) -> Vec<AccessLog> {
    with_source(
        source,
        &[
            ("start_time", "%START_TIME%"),
            ("listener", listener),
            ("external_service", service),
            ("downstream_remote_address", "%DOWNSTREAM_REMOTE_ADDRESS%"),
            ("upstream_cluster", "%UPSTREAM_CLUSTER%"),
            ("upstream_host", "%UPSTREAM_HOST%"),
            ("response_flags", "%RESPONSE_FLAGS%"),
            (
                "upstream_transport_failure_reason",
                "%UPSTREAM_TRANSPORT_FAILURE_REASON%",
            ),
            ("bytes_received", "%BYTES_RECEIVED%"),
            ("bytes_sent", "%BYTES_SENT%"),
            ("duration_ms", "%DURATION%"),
        ],
    )
}

/// `fields`, and after the listener the sidecar's `source_service` when there is one.
fn with_source(source: Option<&str>, fields: &[(&str, &str)]) -> Vec<AccessLog> {
    let mut all = fields.to_vec();
    if let Some(source) = source {
        all.insert(2, ("source_service", source));
    }
    stdout(&all)
}

/// For the transparent proxy's capture listener: a connection to no declared service, passed
/// through or refused (`denied`), with the destination the app asked for.
pub fn capture(listener: &str, denied: &str) -> Vec<AccessLog> {
    stdout(&[
        ("start_time", "%START_TIME%"),
        ("listener", listener),
        // With original_dst, the local address is the app's destination before the REDIRECT.
        ("original_destination", "%DOWNSTREAM_LOCAL_ADDRESS%"),
        // The SNI, when a MeshPassthrough's chains read it (null otherwise).
        ("requested_server_name", "%REQUESTED_SERVER_NAME%"),
        ("downstream_remote_address", "%DOWNSTREAM_REMOTE_ADDRESS%"),
        ("upstream_cluster", "%UPSTREAM_CLUSTER%"),
        ("upstream_host", "%UPSTREAM_HOST%"),
        ("response_flags", "%RESPONSE_FLAGS%"),
        ("denied", denied),
        ("bytes_received", "%BYTES_RECEIVED%"),
        ("bytes_sent", "%BYTES_SENT%"),
        ("duration_ms", "%DURATION%"),
    ])
}

/// For the ZoneEgress's listener: one line per connection when it closes, refused ones too
/// (RBAC's reason in `termination`, an unknown SNI as `NR`), with who the client is by its
/// certificate, the service its chain is for, and RBAC's shadow verdict.
pub fn egress_connection(listener: &str) -> Vec<AccessLog> {
    stdout(&[
        ("start_time", "%START_TIME%"),
        ("listener", listener),
        // Each chain is named after its service.
        ("external_service", "%FILTER_CHAIN_NAME%"),
        ("source_identity", "%DOWNSTREAM_PEER_URI_SAN%"),
        ("requested_server_name", "%REQUESTED_SERVER_NAME%"),
        ("downstream_remote_address", "%DOWNSTREAM_REMOTE_ADDRESS%"),
        ("upstream_cluster", "%UPSTREAM_CLUSTER%"),
        ("upstream_host", "%UPSTREAM_HOST%"),
        ("response_flags", "%RESPONSE_FLAGS%"),
        ("termination", "%CONNECTION_TERMINATION_DETAILS%"),
        // `denied` for a client an AllowWithShadowDeny let through.
        (
            "rbac_shadow",
            "%DYNAMIC_METADATA(envoy.filters.network.rbac:shadow_engine_result)%",
        ),
        (
            "upstream_transport_failure_reason",
            "%UPSTREAM_TRANSPORT_FAILURE_REASON%",
        ),
        ("bytes_received", "%BYTES_RECEIVED%"),
        ("bytes_sent", "%BYTES_SENT%"),
        ("duration_ms", "%DURATION%"),
    ])
}

/// For an HTTP service's chain at the ZoneEgress: one line per request, with who sent it.
pub fn egress_http(listener: &str, service: &str) -> Vec<AccessLog> {
    stdout(&[
        ("start_time", "%START_TIME%"),
        ("listener", listener),
        ("external_service", service),
        ("source_identity", "%DOWNSTREAM_PEER_URI_SAN%"),
        ("method", "%REQ(:METHOD)%"),
        ("authority", "%REQ(:AUTHORITY)%"),
        ("path", "%REQ(:PATH)%"),
        ("protocol", "%PROTOCOL%"),
        ("upstream_cluster", "%UPSTREAM_CLUSTER%"),
        ("upstream_host", "%UPSTREAM_HOST%"),
        ("response_code", "%RESPONSE_CODE%"),
        ("response_flags", "%RESPONSE_FLAGS%"),
        ("response_code_details", "%RESPONSE_CODE_DETAILS%"),
        (
            "upstream_transport_failure_reason",
            "%UPSTREAM_TRANSPORT_FAILURE_REASON%",
        ),
        ("duration_ms", "%DURATION%"),
    ])
}

/// For the builtin DNS: a query, and how it was answered (`response_code` 3, NXDOMAIN, for a
/// name that is not declared when passthrough is off).
pub fn dns(listener: &str) -> Vec<AccessLog> {
    stdout(&[
        ("listener", listener),
        ("query_name", "%QUERY_NAME%"),
        ("query_type", "%QUERY_TYPE%"),
        ("response_code", "%RESPONSE_CODE%"),
        ("answers", "%ANSWER_COUNT%"),
    ])
}

/// A JSON line of these fields, in this order.
fn stdout(fields: &[(&str, &str)]) -> Vec<AccessLog> {
    let json_format = Map(fields
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect());
    vec![Extension {
        name: "envoy.access_loggers.stdout",
        typed_config: AccessLogConfig::Stdout(StdoutAccessLog {
            log_format: SubstitutionFormatString::JsonFormat(json_format),
        }),
    }]
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use crate::generate::test_support::{assert_cases, part, yaml};

    #[test]
    fn access_logs() {
        assert_cases(&[
            (
                "HTTP: the request, the service the filter chose, the answer",
                yaml(&http("outbound_http", None)),
                "
- name: envoy.access_loggers.stdout
  typed_config:
    '@type': type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog
    log_format:
      json_format:
        start_time: '%START_TIME%'
        listener: outbound_http
        method: '%REQ(:METHOD)%'
        authority: '%REQ(:AUTHORITY)%'
        requested_authority: '%FILTER_STATE(wasm.requested_authority:PLAIN)%'
        path: '%REQ(:PATH)%'
        protocol: '%PROTOCOL%'
        external_service: '%ROUTE_NAME%'
        upstream_cluster: '%UPSTREAM_CLUSTER%'
        upstream_host: '%UPSTREAM_HOST%'
        response_code: '%RESPONSE_CODE%'
        grpc_status: '%GRPC_STATUS_NUMBER%'
        response_flags: '%RESPONSE_FLAGS%'
        response_code_details: '%RESPONSE_CODE_DETAILS%'
        upstream_transport_failure_reason: '%UPSTREAM_TRANSPORT_FAILURE_REASON%'
        denied: '%RESP(x-external-service-denied)%'
        duration_ms: '%DURATION%'
",
            ),
            (
                "TCP (the same logger): the connection, to the service the listener is bound to",
                yaml(&part(
                    &tcp("outbound:127.0.0.1:10001", "redis", None),
                    "/0/typed_config/log_format/json_format",
                )),
                "
start_time: '%START_TIME%'
listener: outbound:127.0.0.1:10001
external_service: redis
downstream_remote_address: '%DOWNSTREAM_REMOTE_ADDRESS%'
upstream_cluster: '%UPSTREAM_CLUSTER%'
upstream_host: '%UPSTREAM_HOST%'
response_flags: '%RESPONSE_FLAGS%'
upstream_transport_failure_reason: '%UPSTREAM_TRANSPORT_FAILURE_REASON%'
bytes_received: '%BYTES_RECEIVED%'
bytes_sent: '%BYTES_SENT%'
duration_ms: '%DURATION%'
",
            ),
        ]);
    }
}
