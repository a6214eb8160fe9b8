//! MeshRateLimit: `from[]`/`rules[]` `default.local` and Kuma's rules.

use std::time::Duration as StdDuration;

use external_service_model::report::Violation;
use external_service_model::resource::Kind;
use serde::Deserialize;

use crate::policy::duration::Duration;
use crate::policy::header_modifier::HeaderModifier;
use crate::policy::rules::{positive, DEFINED};
use crate::policy::Shape;

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct Conf {
    pub local: Option<Local>,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct Local {
    pub http: Option<LocalHttp>,
    pub tcp: Option<LocalTcp>,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct LocalTcp {
    pub disabled: Option<bool>,
    pub connection_rate: Option<Rate>,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct LocalHttp {
    pub disabled: Option<bool>,
    pub request_rate: Option<Rate>,
    pub on_rate_limit: Option<OnRateLimit>,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct Rate {
    pub num: u32,
    pub interval: Duration,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct OnRateLimit {
    pub status: Option<u32>,
    pub headers: Option<HeaderModifier>,
}

/// Kuma's floor on a rate's interval.
const MIN_INTERVAL: StdDuration = StdDuration::from_millis(50);

impl crate::policy::Conf for Conf {
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
        if let Some(http) = &local.http {
            validate_http(&format!("{path}.http"), http, out);
        }
        if let Some(tcp) = &local.tcp {
            let path = format!("{path}.tcp");
            match &tcp.connection_rate {
                Some(rate) => rate.validate(&format!("{path}.connectionRate"), out),
                None if tcp.disabled.is_none() => out.push(Violation::new(
                    path,
                    "must have at least one defined: disabled, connectionRate",
                )),
                None => {}
            }
        }
    }
}

fn validate_http(path: &str, http: &LocalHttp, out: &mut Vec<Violation>) {
    if http.disabled.is_none() && http.request_rate.is_none() && http.on_rate_limit.is_none() {
        out.push(Violation::new(
            path,
            "must have at least one defined: disabled, requestRate, onRateLimit",
        ));
        return;
    }
    if let Some(rate) = &http.request_rate {
        rate.validate(&format!("{path}.requestRate"), out);
    }
    if let Some(on) = &http.on_rate_limit {
        positive(&format!("{path}.onRateLimit"), "status", on.status, out);
    }
}

impl Rate {
    /// Kuma's `validateRate`.
    fn validate(&self, path: &str, out: &mut Vec<Violation>) {
        if self.num == 0 {
            out.push(Violation::new(
                format!("{path}.num"),
                "must be greater than 0",
            ));
        }
        if self.interval.is_negative() || self.interval.to_std() <= MIN_INTERVAL {
            out.push(Violation::new(
                format!("{path}.interval"),
                "must be greater than: 50ms",
            ));
        }
    }
}
