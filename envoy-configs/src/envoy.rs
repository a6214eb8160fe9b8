//! The parts of Envoy's v3 API that the generator writes, as typed values that serialise to
//! Envoy's proto-JSON/YAML form: proto field names, defaults left out, `Any` as `@type` plus
//! the message's fields, fields in the order a reader wants them.
//!
//! Written by hand rather than taken from a crate: `envoy-types` (the whole API, prost and
//! tonic) has no serde at all, and prost messages do not serialise to this form without
//! pbjson; `xds-api` with its `pbjson` feature lacks most extensions written here (wasm,
//! tcp_proxy, the stdout access log, c-ares, the dynamic forward proxy, HTTP protocol
//! options), expands `Any` only for the xDS top-level messages, writes fields in proto order
//! and leaves out the `false`s the DNS resolver spells out, so the output would change. Either
//! would also bring prost, tonic and megabytes of generated code for the few dozen messages
//! below.
//!
//! Every `typed_config` is an enum of the messages written there, tagged with `@type`.

use std::net::SocketAddr;

use base64::Engine as _;
use serde::{Serialize, Serializer};

// ------------------------------------------------------------------------------------------
// Common types
// ------------------------------------------------------------------------------------------

/// A proto `map` or `google.protobuf.Struct` of strings, keys in the order they are written.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Map<V>(pub Vec<(String, V)>);

impl<V> Map<V> {
    pub fn of(key: &str, value: V) -> Map<V> {
        Map(vec![(key.to_string(), value)])
    }
}

impl<V: Serialize> Serialize for Map<V> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter().map(|(k, v)| (k, v)))
    }
}

/// A `google.protobuf.Duration`: `5s`, `0.250s`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Duration(pub std::time::Duration);

impl Duration {
    pub const fn from_secs(secs: u64) -> Duration {
        Duration(std::time::Duration::from_secs(secs))
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let (secs, nanos) = (self.0.as_secs(), self.0.subsec_nanos());
        if nanos == 0 {
            s.collect_str(&format_args!("{secs}s"))
        } else {
            let fraction = format!("{nanos:09}");
            s.collect_str(&format_args!("{secs}.{}s", fraction.trim_end_matches('0')))
        }
    }
}

/// `config.core.v3.Address` (socket addresses only).
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Address {
    pub socket_address: SocketAddress,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct SocketAddress {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protocol: Option<SocketProtocol>,
    /// An IP (IPv6 without brackets) or, for STRICT_DNS endpoints, a host name.
    pub address: String,
    pub port_value: u16,
}

/// TCP unless written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SocketProtocol {
    Udp,
}

impl Address {
    pub fn new(address: String, port_value: u16) -> Address {
        Address {
            socket_address: SocketAddress {
                protocol: None,
                address,
                port_value,
            },
        }
    }
}

impl From<SocketAddr> for Address {
    fn from(a: SocketAddr) -> Address {
        Address::new(a.ip().to_string(), a.port())
    }
}

/// `config.core.v3.DataSource`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DataSource {
    Filename(String),
    /// Bytes, written as base64 (proto-JSON's form of `bytes`).
    InlineBytes(#[serde(serialize_with = "base64")] Vec<u8>),
    InlineString(String),
}

fn base64<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(bytes))
}

/// An extension: `TypedExtensionConfig`, and the same shape under other names (network and
/// HTTP filters, transport sockets, access logs, custom cluster types).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Extension<T> {
    pub name: &'static str,
    pub typed_config: T,
}

// ------------------------------------------------------------------------------------------
// Bootstrap
// ------------------------------------------------------------------------------------------

/// `config.bootstrap.v3.Bootstrap`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Bootstrap {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<Node>,
    pub admin: Admin,
    pub stats_config: StatsConfig,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub typed_dns_resolver_config: Option<Extension<DnsResolverConfig>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub static_resources: Option<StaticResources>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dynamic_resources: Option<DynamicResources>,
}

/// `config.metrics.v3.StatsConfig`: tags that turn parts of stat names into labels.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StatsConfig {
    pub stats_tags: Vec<TagSpecifier>,
}

/// The regex's first group is cut from the name; its second, inside it, is the tag's value.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TagSpecifier {
    pub tag_name: String,
    pub regex: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Admin {
    pub address: Address,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StaticResources {
    pub listeners: Vec<Listener>,
    pub clusters: Vec<Cluster>,
}

/// `config.core.v3.Node`: who this Envoy is, which xDS requires.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Node {
    pub id: String,
    pub cluster: String,
}

/// `config.bootstrap.v3.Bootstrap.DynamicResources`: listeners and clusters from xDS.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DynamicResources {
    pub lds_config: ConfigSource,
    pub cds_config: ConfigSource,
}

/// `config.core.v3.ConfigSource`, from a file only.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConfigSource {
    pub path_config_source: PathConfigSource,
}

/// A file Envoy reads again whenever a file is moved into `watched_directory`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PathConfigSource {
    pub path: String,
    pub watched_directory: WatchedDirectory,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WatchedDirectory {
    pub path: String,
}

/// `service.discovery.v3.DiscoveryResponse` as a file: what a `path_config_source` holds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DiscoveryResponse<R> {
    pub version_info: String,
    pub resources: Vec<R>,
}

/// A resource of a DiscoveryResponse, as an `Any`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "@type")]
pub enum XdsResource<'a> {
    #[serde(rename = "type.googleapis.com/envoy.config.listener.v3.Listener")]
    Listener(&'a Listener),
    #[serde(rename = "type.googleapis.com/envoy.config.cluster.v3.Cluster")]
    Cluster(&'a Cluster),
    #[serde(rename = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret")]
    Secret(&'a Secret),
}

/// `extensions.transport_sockets.tls.v3.Secret`: TLS material served by SDS.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Secret {
    pub name: String,
    #[serde(flatten)]
    pub material: SecretMaterial,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SecretMaterial {
    TlsCertificate(TlsCertificate),
    ValidationContext(CertificateValidationContext),
}

/// `SdsSecretConfig`: a secret by name, from the file its `sds_config` names.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SdsSecretConfig {
    pub name: String,
    pub sds_config: ConfigSource,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "@type")]
pub enum DnsResolverConfig {
    #[serde(
        rename = "type.googleapis.com/envoy.extensions.network.dns_resolver.cares.v3.CaresDnsResolverConfig"
    )]
    Cares(CaresDnsResolverConfig),
}

/// The c-ares resolver. Its booleans are written even when false: the choice is the point.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CaresDnsResolverConfig {
    pub resolvers: Vec<Address>,
    pub use_resolvers_as_fallback: bool,
    pub dns_resolver_options: DnsResolverOptions,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DnsResolverOptions {
    pub use_tcp_for_dns_lookups: bool,
    pub no_default_search_domain: bool,
}

// ------------------------------------------------------------------------------------------
// Clusters
// ------------------------------------------------------------------------------------------

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
    pub lb_endpoints: Vec<LbEndpoint>,
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

// ------------------------------------------------------------------------------------------
// Upstream TLS
// ------------------------------------------------------------------------------------------

pub type TransportSocket = Extension<TransportSocketConfig>;

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "@type")]
pub enum TransportSocketConfig {
    #[serde(
        rename = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext"
    )]
    UpstreamTls(UpstreamTlsContext),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UpstreamTlsContext {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sni: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub allow_renegotiation: bool,
    pub common_tls_context: CommonTlsContext,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CommonTlsContext {
    pub tls_params: TlsParameters,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub alpn_protocols: Vec<&'static str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tls_certificates: Vec<TlsCertificate>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tls_certificate_sds_secret_configs: Vec<SdsSecretConfig>,
    #[serde(flatten)]
    pub validation: Validation,
}

/// How the server is verified: all in the cluster, or the CA from SDS (so that it rotates)
/// with the name checks in the cluster.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Validation {
    ValidationContext(CertificateValidationContext),
    CombinedValidationContext(CombinedValidationContext),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CombinedValidationContext {
    pub default_validation_context: CertificateValidationContext,
    pub validation_context_sds_secret_config: SdsSecretConfig,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TlsParameters {
    pub tls_minimum_protocol_version: TlsVersion,
    pub tls_maximum_protocol_version: TlsVersion,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum TlsVersion {
    #[serde(rename = "TLSv1_2")]
    Tls12,
    #[serde(rename = "TLSv1_3")]
    Tls13,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TlsCertificate {
    pub certificate_chain: DataSource,
    pub private_key: DataSource,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CertificateValidationContext {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trusted_ca: Option<DataSource>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub match_typed_subject_alt_names: Vec<SubjectAltNameMatcher>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SubjectAltNameMatcher {
    pub san_type: SanType,
    pub matcher: StringMatcher,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SanType {
    Dns,
    IpAddress,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StringMatcher {
    Exact(String),
    Prefix(String),
    SafeRegex { regex: String },
}

// ------------------------------------------------------------------------------------------
// Listeners and network filters
// ------------------------------------------------------------------------------------------

/// `config.listener.v3.Listener`.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Listener {
    pub name: String,
    pub address: Address,
    /// `false`: a listener that only takes connections handed over by one that has
    /// `use_original_dst` (a VIP:port of the transparent proxy).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bind_to_port: Option<bool>,
    /// Hand each connection to the listener of its original destination, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub use_original_dst: Option<bool>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub listener_filters: Vec<ListenerFilter>,
    /// Empty for a UDP listener, whose listener filter does the work.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub filter_chains: Vec<FilterChain>,
}

pub type ListenerFilter = Extension<ListenerFilterConfig>;

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "@type")]
pub enum ListenerFilterConfig {
    #[serde(
        rename = "type.googleapis.com/envoy.extensions.filters.listener.original_dst.v3.OriginalDst"
    )]
    OriginalDst(OriginalDst),
    #[serde(
        rename = "type.googleapis.com/envoy.extensions.filters.udp.dns_filter.v3.DnsFilterConfig"
    )]
    DnsFilter(DnsFilterConfig),
}

/// Envoy's defaults: the destination before the iptables REDIRECT (`SO_ORIGINAL_DST`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OriginalDst {}

/// `extensions.filters.udp.dns_filter.v3.DnsFilterConfig`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DnsFilterConfig {
    pub stat_prefix: String,
    pub server_config: DnsServerConfig,
    /// Without it, a name the table does not hold gets NXDOMAIN and goes nowhere.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_config: Option<DnsClientConfig>,
    pub access_log: Vec<AccessLog>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DnsServerConfig {
    pub inline_dns_table: DnsTable,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DnsTable {
    pub virtual_domains: Vec<DnsVirtualDomain>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DnsVirtualDomain {
    pub name: String,
    pub endpoint: DnsEndpoint,
    pub answer_ttl: Duration,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DnsEndpoint {
    pub address_list: AddressList,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AddressList {
    pub address: Vec<String>,
}

/// How the DNS filter resolves names it does not hold: Envoy's default c-ares resolver (the
/// system's `/etc/resolv.conf`) unless one is named.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DnsClientConfig {
    pub resolver_timeout: Duration,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub typed_dns_resolver_config: Option<Extension<DnsResolverConfig>>,
    pub max_pending_lookups: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FilterChain {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filter_chain_match: Option<FilterChainMatch>,
    pub filters: Vec<NetworkFilter>,
}

/// Connections to this destination only (the most specific chain wins).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FilterChainMatch {
    pub destination_port: u16,
    pub prefix_ranges: Vec<CidrRange>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CidrRange {
    pub address_prefix: String,
    pub prefix_len: u8,
}

pub type NetworkFilter = Extension<NetworkFilterConfig>;

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "@type")]
pub enum NetworkFilterConfig {
    #[serde(
        rename = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
    )]
    HttpConnectionManager(HttpConnectionManager),
    #[serde(rename = "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy")]
    TcpProxy(TcpProxy),
    #[serde(
        rename = "type.googleapis.com/envoy.extensions.filters.network.local_ratelimit.v3.LocalRateLimit"
    )]
    LocalRateLimit(NetworkLocalRateLimit),
}

/// `extensions.filters.network.local_ratelimit.v3.LocalRateLimit`: a connection over the
/// bucket is closed at once.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NetworkLocalRateLimit {
    pub stat_prefix: String,
    pub token_bucket: TokenBucket,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TcpProxy {
    pub stat_prefix: String,
    pub cluster: String,
    pub access_log: Vec<AccessLog>,
    /// Envoy's default is 1h.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idle_timeout: Option<Duration>,
    /// Envoy's default is 1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_connect_attempts: Option<u32>,
}

// ------------------------------------------------------------------------------------------
// HTTP connection manager, routes, HTTP filters
// ------------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HttpConnectionManager {
    pub stat_prefix: String,
    pub access_log: Vec<AccessLog>,
    pub route_config: RouteConfiguration,
    pub http_filters: Vec<HttpFilter>,
    /// With `internal_address_config`, every client is external: Envoy strips the `x-envoy-*`
    /// headers it would otherwise honour from it.
    pub use_remote_address: bool,
    /// The client's address is not added to `x-forwarded-for` upstream.
    pub skip_xff_append: bool,
    pub internal_address_config: InternalAddressConfig,
    pub local_reply_config: LocalReplyConfig,
}

/// Which clients are internal: those in `cidr_ranges` (Envoy's default, when it is empty, is
/// RFC 1918 and loopback).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InternalAddressConfig {
    pub cidr_ranges: Vec<CidrRange>,
}

/// What Envoy changes in the replies it makes itself.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LocalReplyConfig {
    pub mappers: Vec<ResponseMapper>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ResponseMapper {
    pub filter: AccessLogFilter,
    /// The reply's status instead of Envoy's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_code: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<DataSource>,
    pub headers_to_add: Vec<HeaderValueOption>,
}

/// `config.accesslog.v3.AccessLogFilter`: by response flag, or a CEL expression.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AccessLogFilter {
    ResponseFlagFilter(ResponseFlagFilter),
    ExtensionFilter(Extension<AccessLogFilterConfig>),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "@type")]
pub enum AccessLogFilterConfig {
    #[serde(
        rename = "type.googleapis.com/envoy.extensions.access_loggers.filters.cel.v3.ExpressionFilter"
    )]
    Cel { expression: String },
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ResponseFlagFilter {
    pub flags: Vec<&'static str>,
}

/// A header to add; its value may hold Envoy's `%...%` formatters, and an empty result adds
/// nothing.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HeaderValueOption {
    pub header: HeaderValue,
    /// Envoy's default is to append.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub append_action: Option<AppendAction>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AppendAction {
    OverwriteIfExistsOrAdd,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HeaderValue {
    pub key: String,
    pub value: String,
}

/// `config.route.v3.RouteConfiguration`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RouteConfiguration {
    pub name: String,
    pub virtual_hosts: Vec<VirtualHost>,
    /// Envoy's default for an inline route table is to refuse it while a route names a
    /// cluster it does not have.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub validate_clusters: Option<bool>,
    /// Headers stripped from every external client's request (all are, here).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub internal_only_headers: Vec<String>,
    /// Headers removed from every request sent upstream.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub request_headers_to_remove: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VirtualHost {
    pub name: String,
    pub domains: Vec<String>,
    pub routes: Vec<Route>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Route {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(rename = "match")]
    pub route_match: RouteMatch,
    #[serde(flatten)]
    pub action: Action,
    /// By filter name: what the connection manager's (inert) filters do on this route.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub typed_per_filter_config: Option<Map<HttpFilterConfig>>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RouteMatch {
    Prefix(String),
}

/// What a route does (the `action` oneof).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Route(RouteAction),
    DirectResponse(DirectResponseAction),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RouteAction {
    pub cluster: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
    /// The stream idle timeout of this route (the connection manager's otherwise).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idle_timeout: Option<Duration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_stream_duration: Option<MaxStreamDuration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_policy: Option<Box<RetryPolicy>>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub auto_host_rewrite: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MaxStreamDuration {
    pub max_stream_duration: Duration,
}

/// `config.route.v3.RetryPolicy`.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct RetryPolicy {
    pub retry_on: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub num_retries: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub per_try_timeout: Option<Duration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_back_off: Option<RetryBackOff>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limited_retry_back_off: Option<RateLimitedRetryBackOff>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub retriable_status_codes: Vec<u32>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub retriable_headers: Vec<HeaderMatcher>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub retriable_request_headers: Vec<HeaderMatcher>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RetryBackOff {
    /// Envoy requires it; Kuma's default is 25ms.
    pub base_interval: Duration,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_interval: Option<Duration>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RateLimitedRetryBackOff {
    pub reset_headers: Vec<ResetHeader>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_interval: Option<Duration>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ResetHeader {
    pub name: String,
    pub format: ResetHeaderFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ResetHeaderFormat {
    Seconds,
    UnixTimestamp,
}

/// `config.route.v3.HeaderMatcher`: a string match, or presence (`present_match: false` is
/// absence).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HeaderMatcher {
    pub name: String,
    #[serde(flatten)]
    pub matcher: HeaderMatch,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HeaderMatch {
    StringMatch(StringMatcher),
    PresentMatch(bool),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DirectResponseAction {
    pub status: u32,
    pub body: DataSource,
}

pub type HttpFilter = Extension<HttpFilterConfig>;

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "@type")]
pub enum HttpFilterConfig {
    #[serde(rename = "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm")]
    Wasm(Wasm),
    #[serde(
        rename = "type.googleapis.com/envoy.extensions.filters.http.dynamic_forward_proxy.v3.FilterConfig"
    )]
    DynamicForwardProxy(DynamicForwardProxyConfig),
    #[serde(rename = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router")]
    Router(Router),
    #[serde(
        rename = "type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit"
    )]
    LocalRateLimit(LocalRateLimit),
    #[serde(rename = "type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault")]
    Fault(HttpFault),
}

/// `extensions.filters.http.local_ratelimit.v3.LocalRateLimit`; without a token bucket (in the
/// connection manager) it limits nothing, and a route's own configuration turns it on there.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LocalRateLimit {
    pub stat_prefix: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_bucket: Option<TokenBucket>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filter_enabled: Option<RuntimeFractionalPercent>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filter_enforced: Option<RuntimeFractionalPercent>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<HttpStatus>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub response_headers_to_add: Vec<HeaderValueOption>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TokenBucket {
    pub max_tokens: u32,
    pub tokens_per_fill: u32,
    pub fill_interval: Duration,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuntimeFractionalPercent {
    pub default_value: FractionalPercent,
    pub runtime_key: String,
}

/// `type.v3.FractionalPercent`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct FractionalPercent {
    pub numerator: u32,
    pub denominator: Denominator,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Denominator {
    Hundred,
    Million,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct HttpStatus {
    pub code: u32,
}

/// `extensions.filters.http.fault.v3.HTTPFault`; empty (in the connection manager) it injects
/// nothing.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct HttpFault {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delay: Option<FaultDelay>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub abort: Option<FaultAbort>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_rate_limit: Option<FaultRateLimit>,
}

/// `extensions.filters.common.fault.v3.FaultRateLimit` with a fixed limit.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FaultRateLimit {
    pub fixed_limit: FixedLimit,
    pub percentage: FractionalPercent,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct FixedLimit {
    /// KiB per second (Envoy's name says kbps).
    pub limit_kbps: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FaultDelay {
    pub fixed_delay: Duration,
    pub percentage: FractionalPercent,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FaultAbort {
    pub http_status: u32,
    pub percentage: FractionalPercent,
}

/// Envoy's defaults.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Router {}

// ------------------------------------------------------------------------------------------
// Wasm
// ------------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Wasm {
    pub config: PluginConfig,
}

/// `extensions.wasm.v3.PluginConfig`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PluginConfig {
    pub name: &'static str,
    pub vm_config: VmConfig,
    pub configuration: PluginConfiguration,
    pub failure_policy: FailurePolicy,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VmConfig {
    pub vm_id: &'static str,
    pub runtime: &'static str,
    pub code: AsyncDataSource,
}

/// `config.core.v3.AsyncDataSource` (local only).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AsyncDataSource {
    pub local: DataSource,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "@type")]
pub enum PluginConfiguration {
    #[serde(rename = "type.googleapis.com/google.protobuf.StringValue")]
    String(StringValue),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StringValue {
    pub value: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum FailurePolicy {
    FailReload,
}

// ------------------------------------------------------------------------------------------
// Access logs
// ------------------------------------------------------------------------------------------

pub type AccessLog = Extension<AccessLogConfig>;

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "@type")]
pub enum AccessLogConfig {
    #[serde(
        rename = "type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog"
    )]
    Stdout(StdoutAccessLog),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StdoutAccessLog {
    pub log_format: SubstitutionFormatString,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SubstitutionFormatString {
    pub json_format: Map<String>,
}
