//! MeshHealthCheck: `to[].default` (active health checks) and Kuma's rules.

use external_service_model::report::Violation;
use external_service_model::resource::Kind;
use serde::Deserialize;
use serde_json::Value;

use crate::policy::duration::Duration;
use crate::policy::header_modifier::HeaderModifier;
use crate::policy::rules::{greater_than_zero, int_or_string, GREATER_THAN_ZERO};

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct Conf {
    pub interval: Option<Duration>,
    pub timeout: Option<Duration>,
    pub unhealthy_threshold: Option<u32>,
    pub healthy_threshold: Option<u32>,
    pub initial_jitter: Option<Duration>,
    pub interval_jitter: Option<Duration>,
    pub no_traffic_interval: Option<Duration>,
    /// Kuma's IntOrString percentage of healthy hosts under which Envoy ignores health.
    pub healthy_panic_threshold: Option<Value>,
    pub event_log_path: Option<String>,
    pub always_log_health_check_failures: Option<bool>,
    pub http: Option<Http>,
    pub tcp: Option<Tcp>,
    pub grpc: Option<Grpc>,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct Http {
    pub disabled: Option<bool>,
    pub path: Option<String>,
    pub expected_statuses: Option<Vec<i64>>,
    pub request_headers_to_add: Option<HeaderModifier>,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct Tcp {
    pub disabled: Option<bool>,
    pub send: Option<String>,
    pub receive: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct Grpc {
    pub disabled: Option<bool>,
    pub service_name: Option<String>,
    pub authority: Option<String>,
}

impl Conf {
    /// The panic threshold as a number, if it is one.
    pub fn panic_threshold(&self) -> Option<f64> {
        int_or_string(self.healthy_panic_threshold.as_ref()?)
    }
}

impl crate::policy::Conf for Conf {
    const KIND: Kind = Kind::MeshHealthCheck;
    const EMPTY_TO: (&'static str, &'static str) = ("spec.to", "needs at least one item");

    fn validate(&self, path: &str, out: &mut Vec<Violation>) {
        greater_than_zero(path, "interval", self.interval, out);
        greater_than_zero(path, "timeout", self.timeout, out);
        for (field, n) in [
            ("unhealthyThreshold", self.unhealthy_threshold),
            ("healthyThreshold", self.healthy_threshold),
        ] {
            if n == Some(0) {
                out.push(Violation::new(format!("{path}.{field}"), GREATER_THAN_ZERO));
            }
        }
        greater_than_zero(path, "initialJitter", self.initial_jitter, out);
        greater_than_zero(path, "intervalJitter", self.interval_jitter, out);
        greater_than_zero(path, "noTrafficInterval", self.no_traffic_interval, out);
        if self.healthy_panic_threshold.is_some()
            && !self
                .panic_threshold()
                .is_some_and(|p| (0.0..=100.0).contains(&p))
        {
            out.push(Violation::new(
                format!("{path}.healthyPanicThreshold"),
                "must be in inclusive range [0.0, 100.0]",
            ));
        }
        // Kuma's `ValidatePathOrNil`: an absolute path.
        if self
            .event_log_path
            .as_deref()
            .is_some_and(|p| !p.starts_with('/') || p.contains('\0'))
        {
            out.push(Violation::new(
                format!("{path}.eventLogPath"),
                "must be a valid path when defined",
            ));
        }
        if let Some(http) = &self.http {
            let path = format!("{path}.http");
            if http.path.as_deref() == Some("") {
                out.push(Violation::new(
                    format!("{path}.path"),
                    crate::policy::rules::DEFINED,
                ));
            }
            for (i, status) in http.expected_statuses.iter().flatten().enumerate() {
                if !(100..=599).contains(status) {
                    out.push(Violation::new(
                        format!("{path}.expectedStatuses[{i}]"),
                        "must be in inclusive range [100, 599]",
                    ));
                }
            }
        }
        if self.http.is_none() && self.tcp.is_none() && self.grpc.is_none() {
            out.push(Violation::new(
                path,
                "must have at least one defined: http, tcp, grpc",
            ));
        }
    }
}
