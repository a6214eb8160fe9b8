//! MeshRateLimit on Envoy: the local rate limit filter sits inert in the connection manager,
//! and each service's route configures it (`typed_per_filter_config`), so it acts on that
//! service only; `local.tcp.connectionRate` limits the listeners bound to the service.

use crate::envoy::{
    Denominator, Duration, Extension, FractionalPercent, HttpFilter, HttpFilterConfig,
    HttpStatus, LocalRateLimit, NetworkFilter, NetworkFilterConfig, NetworkLocalRateLimit,
    RuntimeFractionalPercent, TokenBucket,
};
use crate::policy::header_modifier::HeaderModifier;
use crate::policy::Configure;

use super::{Conf, Rate};

const LOCAL_RATE_LIMIT: &str = "envoy.filters.http.local_ratelimit";
const RATE_LIMIT_STATS: &str = "external_service_rate_limit";
/// Kuma's answer to a request over the limit.
const DEFAULT_STATUS: u32 = 429;

impl Configure for Conf {
    fn http_filter(&self) -> Option<HttpFilter> {
        Some(Extension {
            name: LOCAL_RATE_LIMIT,
            typed_config: HttpFilterConfig::LocalRateLimit(LocalRateLimit {
                stat_prefix: RATE_LIMIT_STATS.to_string(),
                token_bucket: None,
                filter_enabled: None,
                filter_enforced: None,
                status: None,
                response_headers_to_add: Vec::new(),
            }),
        })
    }

    fn route_filters(&self, config: &mut Vec<(String, HttpFilterConfig)>) {
        if let Some(limit) = rate_limit_config(self) {
            config.push((
                LOCAL_RATE_LIMIT.to_string(),
                HttpFilterConfig::LocalRateLimit(limit),
            ));
        }
    }

    /// `local.tcp.connectionRate`, before the listener's own filter.
    fn listener(&self, stat_prefix: &str, filters: &mut Vec<NetworkFilter>) {
        filters.extend(connection_limit(self, stat_prefix));
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

fn rate_limit_config(conf: &Conf) -> Option<LocalRateLimit> {
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
            .map(HeaderModifier::to_envoy)
            .unwrap_or_default(),
    })
}

/// `num` tokens, all refilled every `interval` (as Kuma maps a rate).
fn token_bucket(rate: &Rate) -> TokenBucket {
    TokenBucket {
        max_tokens: rate.num,
        tokens_per_fill: rate.num,
        fill_interval: Duration(rate.interval.to_std()),
    }
}

/// The network filter of `local.tcp.connectionRate`, unless disabled.
fn connection_limit(conf: &Conf, stat_prefix: &str) -> Option<NetworkFilter> {
    let tcp = conf.local.as_ref()?.tcp.as_ref()?;
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
