//! Listeners and network filters.

use serde::Serialize;

use super::access_log::{AccessLog, SubstitutionFormatString};
use super::cluster::DnsCacheConfig;
use super::core::{Address, CidrRange, DnsResolverConfig, Duration, Extension};
use super::http::{HttpConnectionManager, TokenBucket};
use super::rbac::Rbac;
use super::tls::TransportSocket;

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
    /// How long the listener filters may wait for the bytes they inspect (Envoy's default:
    /// 15 s).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listener_filters_timeout: Option<Duration>,
    /// After that wait, pick the connection's chain with what they found (none: close it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub continue_on_listener_filters_timeout: Option<bool>,
    /// Empty for a UDP listener, whose listener filter does the work.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub filter_chains: Vec<FilterChain>,
    /// For a connection no chain matches (none: it is closed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_filter_chain: Option<FilterChain>,
    /// One line per connection, when it closes (refused ones too).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub access_log: Vec<AccessLog>,
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
    #[serde(
        rename = "type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector"
    )]
    TlsInspector(Inspector),
    #[serde(
        rename = "type.googleapis.com/envoy.extensions.filters.listener.http_inspector.v3.HttpInspector"
    )]
    HttpInspector(Inspector),
}

/// The TLS inspector (SNI, ALPN) and the HTTP inspector (plain HTTP's version), with Envoy's
/// defaults.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Inspector {}

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

#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct FilterChain {
    /// What `%FILTER_CHAIN_NAME%` logs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filter_chain_match: Option<FilterChainMatch>,
    pub filters: Vec<NetworkFilter>,
    /// TLS ended here (the egress's chains); none: the bytes as they come.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transport_socket: Option<TransportSocket>,
}

/// Connections to this destination only (the most specific chain wins, criterion by
/// criterion in this order, never going back); a criterion left out matches any.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct FilterChainMatch {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub destination_port: Option<u16>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub prefix_ranges: Vec<CidrRange>,
    /// SNI, wildcards (`*.example.com`) allowed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub server_names: Vec<String>,
    /// `tls` or `raw_buffer`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transport_protocol: Option<&'static str>,
    /// ALPN, or what the HTTP inspector found (`http/1.1`, `h2c`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub application_protocols: Vec<&'static str>,
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
    #[serde(
        rename = "type.googleapis.com/envoy.extensions.filters.network.sni_dynamic_forward_proxy.v3.FilterConfig"
    )]
    SniDynamicForwardProxy(SniDynamicForwardProxy),
    #[serde(
        rename = "type.googleapis.com/envoy.extensions.filters.network.set_filter_state.v3.Config"
    )]
    SetFilterState(SetFilterState),
    #[serde(rename = "type.googleapis.com/envoy.extensions.filters.network.rbac.v3.RBAC")]
    Rbac(Rbac),
}

/// `extensions.filters.network.set_filter_state.v3.Config`: objects set on each new
/// connection.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SetFilterState {
    pub on_new_connection: Vec<FilterStateValue>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FilterStateValue {
    pub object_key: &'static str,
    pub format_string: SubstitutionFormatString,
}

/// `extensions.filters.network.sni_dynamic_forward_proxy.v3.FilterConfig`: resolves the SNI
/// in the DNS cache, for a dynamic forward proxy cluster to connect to on `port_value`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SniDynamicForwardProxy {
    pub dns_cache_config: DnsCacheConfig,
    pub port_value: u16,
}

/// `extensions.filters.network.local_ratelimit.v3.LocalRateLimit`: a connection over the
/// bucket is closed at once.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NetworkLocalRateLimit {
    pub stat_prefix: String,
    pub token_bucket: TokenBucket,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize)]
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
    /// When the upstream is dialled; Envoy's default is at once, before the filters before
    /// this one have seen a byte.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream_connect_mode: Option<UpstreamConnectMode>,
    /// What is held from the client until the upstream is connected (required with a mode
    /// other than at once).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_early_data_bytes: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum UpstreamConnectMode {
    /// Once the client has sent bytes, which the filters before have let through.
    OnDownstreamData,
}
