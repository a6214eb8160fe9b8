//! MeshRetry on Envoy: a route's retry policy, as Kuma maps it (`http` for http and http2
//! services, `grpc` for grpc ones; `numRetries: 0` means no retries), and a tcp service's
//! connection attempts.

use external_service_model::catalog::Service;
use external_service_model::protocol::Protocol;

use crate::envoy::{
    Duration, HeaderMatch, HeaderMatcher, RateLimitedRetryBackOff, ResetHeader, ResetHeaderFormat,
    RetryBackOff, RetryPolicy, RouteAction, StringMatcher, TcpProxy,
};
use crate::policy::duration::Duration as PolicyDuration;
use crate::policy::Configure;

use super::{
    BackOff, Conf, Grpc, HeaderMatchType, Http, HttpRetryOn, RateLimitedBackOff, ResetFormat,
    GRPC_RETRY_ON,
};

/// Kuma's conditions when `retryOn` is not given.
const HTTP_RETRY_ON_DEFAULT: &str = "gateway-error,connect-failure,refused-stream";
const GRPC_RETRY_ON_DEFAULT: &str =
    "cancelled,connect-failure,gateway-error,refused-stream,reset,resource-exhausted,unavailable";
const RETRIABLE_STATUS_CODES: &str = "retriable-status-codes";
/// Envoy's base interval when a back-off gives only its maximum (Kuma documents the same).
const DEFAULT_BASE_INTERVAL: Duration = Duration(std::time::Duration::from_millis(25));

impl Configure for Conf {
    fn route(&self, service: &Service, route: &mut RouteAction) {
        let policy = match service.protocol {
            Protocol::Http | Protocol::Http2 => self.http.as_ref().and_then(http),
            Protocol::Grpc => self.grpc.as_ref().and_then(grpc),
            Protocol::Tcp | Protocol::Kafka => None,
        };
        if let Some(policy) = policy {
            route.retry_policy = Some(Box::new(policy));
        }
    }

    /// `tcp.maxConnectAttempt`.
    fn tcp_proxy(&self, proxy: &mut TcpProxy) {
        if let Some(attempts) = self.tcp.as_ref().and_then(|t| t.max_connect_attempt) {
            proxy.max_connect_attempts = Some(attempts);
        }
    }
}

/// What the `http` and `grpc` sections set alike; no retries for `numRetries: 0`.
fn retries(
    num_retries: Option<u32>,
    per_try_timeout: Option<PolicyDuration>,
    back_offs: (&Option<BackOff>, &Option<RateLimitedBackOff>),
) -> Option<RetryPolicy> {
    (num_retries != Some(0)).then(|| RetryPolicy {
        num_retries,
        per_try_timeout: per_try_timeout.map(PolicyDuration::to_envoy),
        retry_back_off: back_offs.0.as_ref().map(back_off),
        rate_limited_retry_back_off: back_offs.1.as_ref().map(rate_limited),
        ..RetryPolicy::default()
    })
}

fn http(conf: &Http) -> Option<RetryPolicy> {
    let mut policy = retries(
        conf.num_retries,
        conf.per_try_timeout,
        (&conf.back_off, &conf.rate_limited_back_off),
    )?;
    let mut conditions = Vec::new();
    for item in conf.retry_on.iter().flatten() {
        match HttpRetryOn::parse(item) {
            Some(HttpRetryOn::Condition(c)) => conditions.push(c),
            Some(HttpRetryOn::Method(m)) => policy.retriable_request_headers.push(HeaderMatcher {
                name: ":method".to_string(),
                matcher: HeaderMatch::StringMatch(StringMatcher::Exact(m.to_string())),
            }),
            Some(HttpRetryOn::Status(code)) => policy.retriable_status_codes.push(code),
            // Validation refuses any other item.
            None => {}
        }
    }
    if !policy.retriable_status_codes.is_empty() {
        conditions.push(RETRIABLE_STATUS_CODES);
    }
    policy.retry_on = if conditions.is_empty() || conditions == [RETRIABLE_STATUS_CODES] {
        // Kuma keeps its default conditions beside status codes given alone.
        let mut all = vec![HTTP_RETRY_ON_DEFAULT];
        all.extend(conditions);
        all.join(",")
    } else {
        conditions.join(",")
    };
    let headers = |list: &Option<Vec<super::HeaderMatch>>| {
        list.iter()
            .flatten()
            .map(header_matcher)
            .collect::<Vec<_>>()
    };
    policy
        .retriable_request_headers
        .extend(headers(&conf.retriable_request_headers));
    policy.retriable_headers = headers(&conf.retriable_response_headers);
    Some(policy)
}

fn grpc(conf: &Grpc) -> Option<RetryPolicy> {
    let policy = retries(
        conf.num_retries,
        conf.per_try_timeout,
        (&conf.back_off, &conf.rate_limited_back_off),
    )?;
    let conditions: Vec<&str> = conf
        .retry_on
        .iter()
        .flatten()
        .filter_map(|item| GRPC_RETRY_ON.iter().find(|(kuma, _)| kuma == item))
        .map(|(_, envoy)| *envoy)
        .collect();
    Some(RetryPolicy {
        retry_on: if conditions.is_empty() {
            GRPC_RETRY_ON_DEFAULT.to_string()
        } else {
            conditions.join(",")
        },
        ..policy
    })
}

fn back_off(b: &BackOff) -> RetryBackOff {
    RetryBackOff {
        base_interval: b.base_interval.map_or(DEFAULT_BASE_INTERVAL, PolicyDuration::to_envoy),
        max_interval: b.max_interval.map(PolicyDuration::to_envoy),
    }
}

fn rate_limited(r: &RateLimitedBackOff) -> RateLimitedRetryBackOff {
    RateLimitedRetryBackOff {
        reset_headers: r
            .reset_headers
            .iter()
            .flatten()
            .map(|h| ResetHeader {
                name: h.name.clone(),
                format: match h.format {
                    ResetFormat::Seconds => ResetHeaderFormat::Seconds,
                    ResetFormat::UnixTimestamp => ResetHeaderFormat::UnixTimestamp,
                },
            })
            .collect(),
        max_interval: r.max_interval.map(PolicyDuration::to_envoy),
    }
}

fn header_matcher(h: &super::HeaderMatch) -> HeaderMatcher {
    let value = h.value.clone().unwrap_or_default();
    HeaderMatcher {
        name: h.name.clone(),
        matcher: match h.match_type {
            HeaderMatchType::Exact => HeaderMatch::StringMatch(StringMatcher::Exact(value)),
            HeaderMatchType::Prefix => HeaderMatch::StringMatch(StringMatcher::Prefix(value)),
            HeaderMatchType::RegularExpression => {
                HeaderMatch::StringMatch(StringMatcher::SafeRegex { regex: value })
            }
            HeaderMatchType::Present => HeaderMatch::PresentMatch(true),
            HeaderMatchType::Absent => HeaderMatch::PresentMatch(false),
        },
    }
}
