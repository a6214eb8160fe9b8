//! HTTP connection manager, routes, HTTP filters.

use serde::Serialize;

use super::access_log::{AccessLog, SubstitutionFormatString};
use super::cluster::DynamicForwardProxyConfig;
use super::core::{
    CidrRange, DataSource, Duration, Extension, HeaderValueOption, Map, StringMatcher,
};
use super::wasm::Wasm;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HttpConnectionManager {
    pub stat_prefix: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
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
    /// The upgrades the connection manager takes, each enabled or not by default (a route's
    /// own `upgrade_configs` decide for it).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub upgrade_configs: Vec<UpgradeConfig>,
}

/// `HttpConnectionManager.UpgradeConfig` and `RouteAction.UpgradeConfig`: one upgrade type
/// (`CONNECT` for the method), on or off; for a route, `connect_config` makes a CONNECT a TCP
/// tunnel to the cluster.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UpgradeConfig {
    pub upgrade_type: String,
    pub enabled: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connect_config: Option<Empty>,
}

/// A message with no field set.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Empty {}

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
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub headers_to_add: Vec<HeaderValueOption>,
    /// The reply's body instead of Envoy's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body_format_override: Option<SubstitutionFormatString>,
}

/// `config.accesslog.v3.AccessLogFilter`, the kinds used.
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
    Cel(CelExpressionFilter),
}

/// A CEL expression over the request's attributes (`response.code_details`, ...).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CelExpressionFilter {
    pub expression: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ResponseFlagFilter {
    pub flags: Vec<&'static str>,
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

/// `config.route.v3.RouteMatch`: the path, and headers that must match too.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RouteMatch {
    #[serde(flatten)]
    pub path: PathMatch,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<HeaderMatcher>,
}

/// The `path_specifier` oneof: a prefix, or the whole path (query string excluded).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PathMatch {
    Prefix(String),
    Path(String),
    /// A CONNECT request, whatever its authority (it has no path).
    ConnectMatcher(Empty),
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
    /// The `Host` the upstream gets; one of this and `auto_host_rewrite`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_rewrite_literal: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub upgrade_configs: Vec<UpgradeConfig>,
}

impl RouteAction {
    /// To `cluster`, with Envoy's defaults otherwise.
    pub fn to(cluster: &str) -> RouteAction {
        RouteAction {
            cluster: cluster.to_string(),
            timeout: None,
            idle_timeout: None,
            max_stream_duration: None,
            retry_policy: None,
            auto_host_rewrite: false,
            host_rewrite_literal: None,
            upgrade_configs: Vec::new(),
        }
    }
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
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_priority: Option<Extension<RetryPriorityConfig>>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "@type")]
pub enum RetryPriorityConfig {
    /// A retry goes to a priority level not tried yet (`envoy.retry_priorities.previous_priorities`).
    #[serde(
        rename = "type.googleapis.com/envoy.extensions.retry.priority.previous_priorities.v3.PreviousPrioritiesConfig"
    )]
    PreviousPriorities { update_frequency: u32 },
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
