//! One JSON line on stdout per request (HTTP) or connection (TCP). Never key material: only
//! names, addresses, codes and Envoy's failure reasons.

use external_service_model::contract::{DENIED_HEADER, SERVICE_FILTER_STATE};

use crate::envoy::{
    AccessLog, AccessLogConfig, Extension, Map, StdoutAccessLog, SubstitutionFormatString,
};

/// For an HTTP connection manager.
pub fn http(listener: &str) -> Vec<AccessLog> {
    stdout(&[
        ("start_time", "%START_TIME%"),
        ("listener", listener),
        ("method", "%REQ(:METHOD)%"),
        ("authority", "%REQ(:AUTHORITY)%"),
        ("path", "%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%"),
        ("protocol", "%PROTOCOL%"),
        (
            "external_service",
            &format!("%FILTER_STATE({SERVICE_FILTER_STATE}:PLAIN)%"),
        ),
        ("upstream_cluster", "%UPSTREAM_CLUSTER%"),
        ("upstream_host", "%UPSTREAM_HOST%"),
        ("response_code", "%RESPONSE_CODE%"),
        ("response_flags", "%RESPONSE_FLAGS%"),
        ("response_code_details", "%RESPONSE_CODE_DETAILS%"),
        (
            "upstream_transport_failure_reason",
            "%UPSTREAM_TRANSPORT_FAILURE_REASON%",
        ),
        ("denied", &format!("%RESP({DENIED_HEADER})%")),
        ("duration_ms", "%DURATION%"),
    ])
}

/// For a `tcp_proxy` bound to one service: the service is known, no request fields exist.
pub fn tcp(listener: &str, service: &str) -> Vec<AccessLog> {
    stdout(&[
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
            log_format: SubstitutionFormatString { json_format },
        }),
    }]
}
