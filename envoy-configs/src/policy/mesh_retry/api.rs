//! MeshRetry: `to[].default` and Kuma's rules on it.

use external_service_model::report::Violation;
use external_service_model::resource::Kind;
use serde::Deserialize;

use crate::policy::duration::Duration;
use crate::policy::rules::{DEFINED, DEFINED_AND_GREATER_THAN_ZERO, NOT_EMPTY};

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct Conf {
    pub tcp: Option<Tcp>,
    pub http: Option<Http>,
    pub grpc: Option<Grpc>,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct Tcp {
    pub max_connect_attempt: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct Http {
    pub num_retries: Option<u32>,
    pub per_try_timeout: Option<Duration>,
    pub back_off: Option<BackOff>,
    pub rate_limited_back_off: Option<RateLimitedBackOff>,
    pub retry_on: Option<Vec<String>>,
    pub retriable_response_headers: Option<Vec<HeaderMatch>>,
    pub retriable_request_headers: Option<Vec<HeaderMatch>>,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct Grpc {
    pub num_retries: Option<u32>,
    pub per_try_timeout: Option<Duration>,
    pub back_off: Option<BackOff>,
    pub rate_limited_back_off: Option<RateLimitedBackOff>,
    pub retry_on: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct BackOff {
    pub base_interval: Option<Duration>,
    pub max_interval: Option<Duration>,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct RateLimitedBackOff {
    pub reset_headers: Option<Vec<ResetHeader>>,
    pub max_interval: Option<Duration>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ResetHeader {
    #[serde(default)]
    pub name: String,
    pub format: ResetFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum ResetFormat {
    Seconds,
    UnixTimestamp,
}

/// Kuma's `HeaderMatch`: `type` defaults to `Exact`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HeaderMatch {
    #[serde(default, rename = "type")]
    pub match_type: HeaderMatchType,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub value: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub enum HeaderMatchType {
    #[default]
    Exact,
    Present,
    RegularExpression,
    Absent,
    Prefix,
}

/// Kuma's `retryOn` words for HTTP and what Envoy calls them; `HttpMethod*` become method
/// matches, status codes `retriable_status_codes`.
pub const HTTP_RETRY_ON: [(&str, &str); 8] = [
    ("5xx", "5xx"),
    ("GatewayError", "gateway-error"),
    ("Reset", "reset"),
    ("Retriable4xx", "retriable-4xx"),
    ("ConnectFailure", "connect-failure"),
    ("EnvoyRatelimited", "envoy-ratelimited"),
    ("RefusedStream", "refused-stream"),
    ("Http3PostConnectFailure", "http3-post-connect-failure"),
];
pub const HTTP_METHOD_PREFIX: &str = "HttpMethod";
pub const HTTP_METHODS: [&str; 9] = [
    "CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "TRACE",
];
pub const GRPC_RETRY_ON: [(&str, &str); 5] = [
    // Envoy spells it `cancelled` (Kuma writes `canceled`, which Envoy does not know).
    ("Canceled", "cancelled"),
    ("DeadlineExceeded", "deadline-exceeded"),
    ("Internal", "internal"),
    ("ResourceExhausted", "resource-exhausted"),
    ("Unavailable", "unavailable"),
];

/// What one HTTP `retryOn` item is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpRetryOn {
    Condition(&'static str),
    Method(&'static str),
    Status(u32),
}

impl HttpRetryOn {
    pub fn parse(item: &str) -> Option<HttpRetryOn> {
        if let Some((_, envoy)) = HTTP_RETRY_ON.iter().find(|(kuma, _)| *kuma == item) {
            return Some(HttpRetryOn::Condition(envoy));
        }
        if let Some(method) = item.strip_prefix(HTTP_METHOD_PREFIX) {
            // `HttpMethodGet` for GET: the method's first letter only in capitals.
            return HTTP_METHODS
                .iter()
                .find(|m| method.len() == m.len() && capitalised(m) == method)
                .map(|m| HttpRetryOn::Method(m));
        }
        // Any status code Go's http.StatusText knows: 100-599 with a name; approximated by
        // the range, as Kuma refuses only codes without a name.
        item.parse::<u32>()
            .ok()
            .filter(|code| (100..=599).contains(code))
            .map(HttpRetryOn::Status)
    }
}

fn capitalised(method: &str) -> String {
    let (first, rest) = method.split_at(1);
    format!("{first}{}", rest.to_lowercase())
}

impl crate::policy::Conf for Conf {
    const KIND: Kind = Kind::MeshRetry;
    const EMPTY_TO: (&'static str, &'static str) = ("spec.to", "needs at least one item");

    fn validate(&self, path: &str, out: &mut Vec<Violation>) {
        if self.tcp.is_none() && self.http.is_none() && self.grpc.is_none() {
            out.push(Violation::new(
                path,
                "at least one of the 'tcp', 'http', 'grpc' must be specified",
            ));
        }
        if let Some(tcp) = &self.tcp {
            if tcp.max_connect_attempt.is_none() {
                out.push(Violation::new(format!("{path}.tcp"), NOT_EMPTY));
            }
        }
        if let Some(http) = &self.http {
            let section = Section {
                path: format!("{path}.http"),
                empty: *http == Http::default(),
                back_off: &http.back_off,
                rate_limited: &http.rate_limited_back_off,
                retry_on: &http.retry_on,
            };
            section.validate(|item| HttpRetryOn::parse(item).is_some(), out);
        }
        if let Some(grpc) = &self.grpc {
            let section = Section {
                path: format!("{path}.grpc"),
                empty: *grpc == Grpc::default(),
                back_off: &grpc.back_off,
                rate_limited: &grpc.rate_limited_back_off,
                retry_on: &grpc.retry_on,
            };
            section.validate(
                |item| GRPC_RETRY_ON.iter().any(|(kuma, _)| *kuma == item),
                out,
            );
        }
    }
}

/// What the `http` and `grpc` sections share, for their common rules.
struct Section<'a> {
    path: String,
    empty: bool,
    back_off: &'a Option<BackOff>,
    rate_limited: &'a Option<RateLimitedBackOff>,
    retry_on: &'a Option<Vec<String>>,
}

impl Section<'_> {
    fn validate(&self, known: impl Fn(&str) -> bool, out: &mut Vec<Violation>) {
        if self.empty {
            out.push(Violation::new(self.path.as_str(), NOT_EMPTY));
        }
        back_offs(&self.path, self.back_off, self.rate_limited, out);
        for (i, item) in self.retry_on.iter().flatten().enumerate() {
            if !known(item) {
                out.push(Violation::new(
                    format!("{}.retryOn[{i}]", self.path),
                    format!("unknown item '{item}'"),
                ));
            }
        }
    }
}

fn back_offs(
    path: &str,
    back_off: &Option<BackOff>,
    rate_limited: &Option<RateLimitedBackOff>,
    out: &mut Vec<Violation>,
) {
    if let Some(b) = back_off {
        if b.base_interval.is_none() && b.max_interval.is_none() {
            out.push(Violation::new(format!("{path}.backOff"), NOT_EMPTY));
        }
    }
    let Some(r) = rate_limited else {
        return;
    };
    let path = format!("{path}.rateLimitedBackOff");
    if r.max_interval
        .is_some_and(|d| d.is_negative() || d.is_zero())
    {
        out.push(Violation::new(
            format!("{path}.maxInterval"),
            DEFINED_AND_GREATER_THAN_ZERO,
        ));
    }
    match &r.reset_headers {
        None => out.push(Violation::new(format!("{path}.resetHeaders"), DEFINED)),
        Some(headers) => {
            for (i, h) in headers.iter().enumerate() {
                if h.name.is_empty() {
                    out.push(Violation::new(
                        format!("{path}.resetHeaders[{i}].name"),
                        DEFINED,
                    ));
                }
            }
        }
    }
}
