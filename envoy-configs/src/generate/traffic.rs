//! MeshRateLimit and MeshFaultInjection on a service's routes: Envoy's local rate limit and
//! fault filters sit inert in the connection manager, and each service's route configures them
//! (`typed_per_filter_config`), so they act on that service only. And what MeshTimeout and
//! MeshRetry set on a tcp service's `tcp_proxy`, and MeshRateLimit's connection rate on the
//! listeners bound to a service.

use crate::envoy::{
    AppendAction, Denominator, Duration, Extension, FaultAbort, FaultDelay, FaultRateLimit,
    FixedLimit, FractionalPercent, HeaderValue, HeaderValueOption, HttpFault, HttpFilter,
    HttpFilterConfig, HttpStatus, LocalRateLimit, Map, NetworkFilter, NetworkFilterConfig,
    NetworkLocalRateLimit, RuntimeFractionalPercent, TokenBucket,
};
use external_service_model::catalog::Service;

use crate::policy::{fault, rate_limit, Effective};

use super::cluster::policy_duration;
use super::Context;

pub const FAULT: &str = "envoy.filters.http.fault";
pub const LOCAL_RATE_LIMIT: &str = "envoy.filters.http.local_ratelimit";
const RATE_LIMIT_STATS: &str = "external_service_rate_limit";
/// Kuma's answer to a request over the limit.
const DEFAULT_STATUS: u32 = 429;

/// The filters some HTTP service's policies need, configured to do nothing by themselves.
pub fn inert_filters(ctx: &Context<'_>) -> Vec<HttpFilter> {
    let effective = || {
        ctx.catalog
            .services
            .iter()
            .filter(|s| s.protocol.is_http())
            .map(|s| ctx.policies.of(ctx.mesh(), &s.name))
    };
    let mut filters = Vec::new();
    if effective().any(|e| e.fault.is_some()) {
        filters.push(Extension {
            name: FAULT,
            typed_config: HttpFilterConfig::Fault(HttpFault::default()),
        });
    }
    if effective().any(|e| e.rate_limit.is_some()) {
        filters.push(Extension {
            name: LOCAL_RATE_LIMIT,
            typed_config: HttpFilterConfig::LocalRateLimit(LocalRateLimit {
                stat_prefix: RATE_LIMIT_STATS.to_string(),
                token_bucket: None,
                filter_enabled: None,
                filter_enforced: None,
                status: None,
                response_headers_to_add: Vec::new(),
            }),
        });
    }
    filters
}

/// What a service's route turns on in those filters.
pub fn per_route(policies: &Effective) -> Option<Map<HttpFilterConfig>> {
    let mut config = Vec::new();
    if let Some(f) = policies.fault.as_ref().and_then(|f| fault_config(&f.conf)) {
        config.push((FAULT.to_string(), HttpFilterConfig::Fault(f)));
    }
    if let Some(l) = policies
        .rate_limit
        .as_ref()
        .and_then(|r| rate_limit_config(&r.conf))
    {
        config.push((
            LOCAL_RATE_LIMIT.to_string(),
            HttpFilterConfig::LocalRateLimit(l),
        ));
    }
    (!config.is_empty()).then_some(Map(config))
}

/// A percentage of 0-100 (validated), as Envoy's parts per million.
fn share(percent: f64) -> FractionalPercent {
    FractionalPercent {
        numerator: (percent * 10_000.0).round() as u32,
        denominator: Denominator::Million,
    }
}

fn all() -> RuntimeFractionalPercent {
    RuntimeFractionalPercent {
        default_value: FractionalPercent {
            numerator: 100,
            denominator: Denominator::Hundred,
        },
        runtime_key: "local_rate_limit_enabled".to_string(),
    }
}

fn fault_config(conf: &fault::Conf) -> Option<HttpFault> {
    let faults = conf.http.as_deref().unwrap_or_default();
    let bandwidth = faults.iter().find_map(|f| f.response_bandwidth.as_ref());
    let config = HttpFault {
        delay: faults
            .iter()
            .find_map(|f| f.delay.as_ref())
            .map(|d| FaultDelay {
                fixed_delay: Duration(d.value.to_std()),
                percentage: share(fault::share(&d.percentage)),
            }),
        abort: faults
            .iter()
            .find_map(|f| f.abort.as_ref())
            .map(|a| FaultAbort {
                http_status: u32::try_from(a.http_status).unwrap_or_default(),
                percentage: share(fault::share(&a.percentage)),
            }),
        response_rate_limit: bandwidth.and_then(|b| {
            Some(FaultRateLimit {
                fixed_limit: FixedLimit {
                    limit_kbps: b.kbps()?,
                },
                percentage: share(fault::share(&b.percentage)),
            })
        }),
    };
    (config.delay.is_some() || config.abort.is_some() || config.response_rate_limit.is_some())
        .then_some(config)
}

fn rate_limit_config(conf: &rate_limit::Conf) -> Option<LocalRateLimit> {
    let http = conf.local.as_ref()?.http.as_ref()?;
    if http.disabled == Some(true) {
        return None;
    }
    let rate = http.request_rate.as_ref()?;
    let on_limit = http.on_rate_limit.as_ref();
    Some(LocalRateLimit {
        stat_prefix: RATE_LIMIT_STATS.to_string(),
        token_bucket: Some(token_bucket(rate)),
        filter_enabled: Some(all()),
        filter_enforced: Some(all()),
        status: Some(HttpStatus {
            code: on_limit.and_then(|o| o.status).unwrap_or(DEFAULT_STATUS),
        }),
        response_headers_to_add: on_limit
            .and_then(|o| o.headers.as_ref())
            .map(headers)
            .unwrap_or_default(),
    })
}

/// `num` tokens, all refilled every `interval` (as Kuma maps a rate).
fn token_bucket(rate: &rate_limit::Rate) -> TokenBucket {
    TokenBucket {
        max_tokens: rate.num,
        tokens_per_fill: rate.num,
        fill_interval: Duration(rate.interval.to_std()),
    }
}

/// Kuma's HeaderModifier: `add` appends (Envoy's default), `set` overwrites.
pub fn headers(modifier: &rate_limit::HeaderModifier) -> Vec<HeaderValueOption> {
    let added = modifier.add.iter().flatten().map(|h| header(h, None));
    let set = modifier
        .set
        .iter()
        .flatten()
        .map(|h| header(h, Some(AppendAction::OverwriteIfExistsOrAdd)));
    added.chain(set).collect()
}

fn header(h: &rate_limit::Header, append_action: Option<AppendAction>) -> HeaderValueOption {
    HeaderValueOption {
        header: HeaderValue {
            key: h.name.clone(),
            value: h.value.clone(),
        },
        append_action,
    }
}

/// A service's MeshRateLimit `local.tcp.connectionRate`, as the network filter that goes
/// before the listener's own on each listener bound to the service.
pub fn connection_limit(
    ctx: &Context<'_>,
    service: &Service,
    stat_prefix: &str,
) -> Option<NetworkFilter> {
    let limit = ctx
        .policies
        .of(ctx.mesh(), &service.name)
        .rate_limit
        .as_ref()?;
    let tcp = limit.conf.local.as_ref()?.tcp.as_ref()?;
    if tcp.disabled == Some(true) {
        return None;
    }
    Some(Extension {
        name: "envoy.filters.network.local_ratelimit",
        typed_config: NetworkFilterConfig::LocalRateLimit(NetworkLocalRateLimit {
            stat_prefix: stat_prefix.to_string(),
            token_bucket: token_bucket(tcp.connection_rate.as_ref()?),
        }),
    })
}

/// A tcp service's MeshTimeout `idleTimeout`, for its `tcp_proxy`.
pub fn tcp_idle_timeout(ctx: &Context<'_>, service: &Service) -> Option<Duration> {
    let timeout = ctx
        .policies
        .of(ctx.mesh(), &service.name)
        .timeout
        .as_ref()?;
    timeout.conf.idle_timeout.map(policy_duration)
}

/// A tcp service's MeshRetry `tcp.maxConnectAttempt`, for its `tcp_proxy`.
pub fn max_connect_attempts(ctx: &Context<'_>, service: &Service) -> Option<u32> {
    let retry = ctx.policies.of(ctx.mesh(), &service.name).retry.as_ref()?;
    retry.conf.tcp.as_ref()?.max_connect_attempt
}
