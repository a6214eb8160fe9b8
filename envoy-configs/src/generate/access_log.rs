//! One JSON line on stdout per request (HTTP) or connection (TCP). Never key material: only
//! names, addresses, codes and Envoy's failure reasons.

use serde_json::{json, Map, Value};

use external_service_model::contract::{DENIED_HEADER, SERVICE_FILTER_STATE};

/// For an HTTP connection manager.
pub fn http(listener: &str) -> Value {
    let mut format = Map::new();
    let mut field = |k: &str, v: String| {
        format.insert(k.into(), Value::String(v));
    };
    field("start_time", "%START_TIME%".into());
    field("listener", listener.into());
    field("method", "%REQ(:METHOD)%".into());
    field("authority", "%REQ(:AUTHORITY)%".into());
    field("path", "%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%".into());
    field("protocol", "%PROTOCOL%".into());
    field(
        "external_service",
        format!("%FILTER_STATE({SERVICE_FILTER_STATE}:PLAIN)%"),
    );
    field("upstream_cluster", "%UPSTREAM_CLUSTER%".into());
    field("upstream_host", "%UPSTREAM_HOST%".into());
    field("response_code", "%RESPONSE_CODE%".into());
    field("response_flags", "%RESPONSE_FLAGS%".into());
    field("response_code_details", "%RESPONSE_CODE_DETAILS%".into());
    field(
        "upstream_transport_failure_reason",
        "%UPSTREAM_TRANSPORT_FAILURE_REASON%".into(),
    );
    field("denied", format!("%RESP({DENIED_HEADER})%"));
    field("duration_ms", "%DURATION%".into());
    stdout(format)
}

/// For a `tcp_proxy` bound to one service: the service is known, no request fields exist.
pub fn tcp(listener: &str, service: &str) -> Value {
    let mut format = Map::new();
    let mut field = |k: &str, v: &str| {
        format.insert(k.into(), Value::String(v.into()));
    };
    field("start_time", "%START_TIME%");
    field("listener", listener);
    field("external_service", service);
    field("downstream_remote_address", "%DOWNSTREAM_REMOTE_ADDRESS%");
    field("upstream_cluster", "%UPSTREAM_CLUSTER%");
    field("upstream_host", "%UPSTREAM_HOST%");
    field("response_flags", "%RESPONSE_FLAGS%");
    field(
        "upstream_transport_failure_reason",
        "%UPSTREAM_TRANSPORT_FAILURE_REASON%",
    );
    field("bytes_received", "%BYTES_RECEIVED%");
    field("bytes_sent", "%BYTES_SENT%");
    field("duration_ms", "%DURATION%");
    stdout(format)
}

fn stdout(format: Map<String, Value>) -> Value {
    json!([{
        "name": "envoy.access_loggers.stdout",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog",
            "log_format": {"json_format": format},
        },
    }])
}
