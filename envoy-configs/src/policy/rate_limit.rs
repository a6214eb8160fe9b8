//! MeshRateLimit: `from[]`/`rules[]` `default.local` and Kuma's rules.

use std::time::Duration as StdDuration;

use external_service_model::report::Violation;
use external_service_model::resource::Kind;
use serde::Deserialize;
use serde_json::Value;

use super::duration::Duration;
use super::rules::{not_yet, positive, DEFINED};
use super::Shape;

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Conf {
    #[serde(default)]
    pub local: Option<Local>,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Local {
    #[serde(default)]
    pub http: Option<LocalHttp>,
    #[serde(default)]
    pub tcp: Option<Value>,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LocalHttp {
    #[serde(default)]
    pub disabled: Option<bool>,
    #[serde(default)]
    pub request_rate: Option<Rate>,
    #[serde(default)]
    pub on_rate_limit: Option<OnRateLimit>,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Rate {
    #[serde(default)]
    pub num: u32,
    #[serde(default)]
    pub interval: Duration,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct OnRateLimit {
    #[serde(default)]
    pub status: Option<u32>,
    #[serde(default)]
    pub headers: Option<HeaderModifier>,
}

/// Kuma's HeaderModifier: headers to add to (or set on) the refusal.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HeaderModifier {
    #[serde(default)]
    pub add: Option<Vec<Header>>,
    #[serde(default)]
    pub set: Option<Vec<Header>>,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Header {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub value: String,
}

/// Kuma's floor on a rate's interval.
const MIN_INTERVAL: StdDuration = StdDuration::from_millis(50);

impl super::Conf for Conf {
    const KIND: Kind = Kind::MeshRateLimit;
    const SHAPE: Shape = Shape::From;

    fn validate(&self, path: &str, out: &mut Vec<Violation>) {
        let path = format!("{path}.local");
        let Some(local) = &self.local else {
            out.push(Violation::new(path, DEFINED));
            return;
        };
        if local.http.is_none() && local.tcp.is_none() {
            out.push(Violation::new(
                path.as_str(),
                "must have at least one defined: tcp, http",
            ));
        }
        not_yet(&path, "tcp", local.tcp.is_some(), out);
        let Some(http) = &local.http else {
            return;
        };
        let path = format!("{path}.http");
        if http.disabled.is_none() && http.request_rate.is_none() && http.on_rate_limit.is_none() {
            out.push(Violation::new(
                path,
                "must have at least one defined: disabled, requestRate, onRateLimit",
            ));
            return;
        }
        if let Some(rate) = &http.request_rate {
            let path = format!("{path}.requestRate");
            if rate.num == 0 {
                out.push(Violation::new(
                    format!("{path}.num"),
                    "must be greater than 0",
                ));
            }
            if rate.interval.is_negative() || rate.interval.to_std() <= MIN_INTERVAL {
                out.push(Violation::new(
                    format!("{path}.interval"),
                    "must be greater than: 50ms",
                ));
            }
        }
        if let Some(on) = &http.on_rate_limit {
            positive(&format!("{path}.onRateLimit"), "status", on.status, out);
        }
    }
}
