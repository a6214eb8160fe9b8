//! Clusters.

use serde::Serialize;

use super::core::{Address, Duration, Extension, HeaderValueOption, Map};
use super::tls::TransportSocket;

/// `config.cluster.v3.Cluster`.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Cluster {
    pub name: String,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub discovery_type: Option<DiscoveryType>,
    pub connect_timeout: Duration,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dns_lookup_family: Option<DnsLookupFamily>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lb_policy: Option<LbPolicy>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster_type: Option<Extension<ClusterTypeConfig>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub load_assignment: Option<ClusterLoadAssignment>,
    /// By the full name of the options' message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub typed_extension_protocol_options: Option<Map<ProtocolOptions>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub transport_socket_matches: Vec<TransportSocketMatch>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transport_socket: Option<TransportSocket>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub circuit_breakers: Option<CircuitBreakers>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outlier_detection: Option<OutlierDetection>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub health_checks: Vec<HealthCheck>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub common_lb_config: Option<CommonLbConfig>,
}

/// `config.cluster.v3.CircuitBreakers`: one threshold set, for the default priority.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CircuitBreakers {
    pub thresholds: Vec<Thresholds>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Thresholds {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_pending_requests: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_requests: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_retries: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_connection_pools: Option<u32>,
}

/// `config.cluster.v3.OutlierDetection`; every `enforcing_*` is written, so that a detector
/// the policy does not name is off rather than Envoy's default.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct OutlierDetection {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interval: Option<Duration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base_ejection_time: Option<Duration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_ejection_percent: Option<u32>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub split_external_local_origin_errors: bool,
    #[serde(rename = "consecutive_5xx", skip_serializing_if = "Option::is_none")]
    pub consecutive_5xx: Option<u32>,
    #[serde(rename = "enforcing_consecutive_5xx")]
    pub enforcing_consecutive_5xx: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consecutive_gateway_failure: Option<u32>,
    pub enforcing_consecutive_gateway_failure: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consecutive_local_origin_failure: Option<u32>,
    pub enforcing_consecutive_local_origin_failure: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub success_rate_minimum_hosts: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub success_rate_request_volume: Option<u32>,
    /// The factor times 1000, as Envoy reads it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub success_rate_stdev_factor: Option<u32>,
    pub enforcing_success_rate: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure_percentage_minimum_hosts: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure_percentage_request_volume: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure_percentage_threshold: Option<u32>,
    pub enforcing_failure_percentage: u32,
}

/// `config.core.v3.HealthCheck`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HealthCheck {
    pub timeout: Duration,
    pub interval: Duration,
    pub unhealthy_threshold: u32,
    pub healthy_threshold: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub initial_jitter: Option<Duration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interval_jitter: Option<Duration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub no_traffic_interval: Option<Duration>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub always_log_health_check_failures: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub event_logger: Vec<Extension<HealthCheckEventSink>>,
    #[serde(flatten)]
    pub checker: HealthChecker,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "@type")]
pub enum HealthCheckEventSink {
    #[serde(
        rename = "type.googleapis.com/envoy.extensions.health_check.event_sinks.file.v3.HealthCheckEventFileSink"
    )]
    File(HealthCheckEventFileSink),
}

/// Each health check event as a line of JSON, appended to this file.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HealthCheckEventFileSink {
    pub event_log_path: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthChecker {
    HttpHealthCheck {
        path: String,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        expected_statuses: Vec<Int64Range>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        request_headers_to_add: Vec<HeaderValueOption>,
    },
    TcpHealthCheck {
        #[serde(skip_serializing_if = "Option::is_none")]
        send: Option<Payload>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        receive: Vec<Payload>,
    },
    GrpcHealthCheck {
        #[serde(skip_serializing_if = "Option::is_none")]
        service_name: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        authority: Option<String>,
    },
}

/// `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Int64Range {
    pub start: i64,
    pub end: i64,
}

/// Bytes as hex text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Payload {
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CommonLbConfig {
    pub healthy_panic_threshold: Percent,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Percent {
    pub value: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DiscoveryType {
    Static,
    StrictDns,
    /// Endpoints are the connections' original destinations (transparent passthrough).
    OriginalDst,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DnsLookupFamily {
    V4Preferred,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum LbPolicy {
    ClusterProvided,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "@type")]
pub enum ClusterTypeConfig {
    #[serde(
        rename = "type.googleapis.com/envoy.extensions.clusters.dynamic_forward_proxy.v3.ClusterConfig"
    )]
    DynamicForwardProxy(DynamicForwardProxyConfig),
}

/// The dynamic forward proxy's cluster and HTTP filter configurations (the same fields here).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DynamicForwardProxyConfig {
    pub dns_cache_config: DnsCacheConfig,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DnsCacheConfig {
    pub name: &'static str,
    pub dns_lookup_family: DnsLookupFamily,
}

/// `config.endpoint.v3.ClusterLoadAssignment`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClusterLoadAssignment {
    pub cluster_name: String,
    pub endpoints: Vec<LocalityLbEndpoints>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LocalityLbEndpoints {
    /// Envoy's priority level: 0, the default, is tried first.
    #[serde(skip_serializing_if = "is_zero")]
    pub priority: u32,
    pub lb_endpoints: Vec<LbEndpoint>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LbEndpoint {
    pub endpoint: Endpoint,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Metadata>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Endpoint {
    pub address: Address,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
}

/// `config.core.v3.Metadata`: by filter name, a Struct.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Metadata {
    pub filter_metadata: Map<Map<String>>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "@type")]
pub enum ProtocolOptions {
    #[serde(rename = "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions")]
    Http(HttpProtocolOptions),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HttpProtocolOptions {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub common_http_protocol_options: Option<CommonHttpProtocolOptions>,
    pub explicit_http_config: ExplicitHttpConfig,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CommonHttpProtocolOptions {
    /// How long an upstream connection with no request may stay open (Envoy's default 1h).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idle_timeout: Option<Duration>,
    /// How long an upstream connection may stay open at all (Envoy's default: no limit).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_connection_duration: Option<Duration>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ExplicitHttpConfig {
    HttpProtocolOptions(Http1ProtocolOptions),
    Http2ProtocolOptions(Http2ProtocolOptions),
}

/// Envoy's defaults.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Http1ProtocolOptions {}

/// Envoy's defaults.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Http2ProtocolOptions {}

/// `Cluster.TransportSocketMatch`: endpoints whose metadata holds `match` get this socket.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TransportSocketMatch {
    pub name: String,
    #[serde(rename = "match")]
    pub criteria: Map<String>,
    pub transport_socket: TransportSocket,
}
