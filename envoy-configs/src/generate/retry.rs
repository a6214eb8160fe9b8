//! A route's retry policy from the service's MeshRetry, as Kuma maps it: `http` for http and
//! http2 services, `grpc` for grpc ones; `numRetries: 0` means no retries.

use external_service_model::protocol::Protocol;

use crate::envoy::{
    Duration, HeaderMatch, HeaderMatcher, RateLimitedRetryBackOff, ResetHeader, ResetHeaderFormat,
    RetryBackOff, RetryPolicy, StringMatcher,
};
use crate::policy::retry::{
    self, BackOff, HeaderMatchType, HttpRetryOn, RateLimitedBackOff, ResetFormat, GRPC_RETRY_ON,
};

/// Kuma's conditions when `retryOn` is not given.
const HTTP_RETRY_ON_DEFAULT: &str = "gateway-error,connect-failure,refused-stream";
const GRPC_RETRY_ON_DEFAULT: &str =
    "cancelled,connect-failure,gateway-error,refused-stream,reset,resource-exhausted,unavailable";
const RETRIABLE_STATUS_CODES: &str = "retriable-status-codes";
/// Envoy's base interval when a back-off gives only its maximum (Kuma documents the same).
const DEFAULT_BASE_INTERVAL: Duration = Duration(std::time::Duration::from_millis(25));

pub fn policy(conf: &retry::Conf, protocol: Protocol) -> Option<RetryPolicy> {
    match protocol {
        Protocol::Http | Protocol::Http2 => conf.http.as_ref().and_then(http),
        Protocol::Grpc => conf.grpc.as_ref().and_then(grpc),
        Protocol::Tcp | Protocol::Kafka => None,
    }
}

fn duration(d: crate::policy::duration::Duration) -> Duration {
    Duration(d.to_std())
}

fn http(conf: &retry::Http) -> Option<RetryPolicy> {
    if conf.num_retries == Some(0) {
        return None;
    }
    let mut conditions = Vec::new();
    let mut policy = RetryPolicy {
        num_retries: conf.num_retries,
        per_try_timeout: conf.per_try_timeout.map(duration),
        retry_back_off: conf.back_off.as_ref().map(back_off),
        rate_limited_retry_back_off: conf.rate_limited_back_off.as_ref().map(rate_limited),
        ..RetryPolicy::default()
    };
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
    let headers = |list: &Option<Vec<retry::HeaderMatch>>| {
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

fn grpc(conf: &retry::Grpc) -> Option<RetryPolicy> {
    if conf.num_retries == Some(0) {
        return None;
    }
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
        num_retries: conf.num_retries,
        per_try_timeout: conf.per_try_timeout.map(duration),
        retry_back_off: conf.back_off.as_ref().map(back_off),
        rate_limited_retry_back_off: conf.rate_limited_back_off.as_ref().map(rate_limited),
        ..RetryPolicy::default()
    })
}

fn back_off(b: &BackOff) -> RetryBackOff {
    RetryBackOff {
        base_interval: b.base_interval.map_or(DEFAULT_BASE_INTERVAL, duration),
        max_interval: b.max_interval.map(duration),
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
        max_interval: r.max_interval.map(duration),
    }
}

fn header_matcher(h: &retry::HeaderMatch) -> HeaderMatcher {
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
