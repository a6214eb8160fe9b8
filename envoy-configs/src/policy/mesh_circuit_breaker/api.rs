//! MeshCircuitBreaker: `to[].default` (connection limits, outlier detection) and Kuma's rules.

use external_service_model::report::Violation;
use external_service_model::resource::Kind;
use serde::Deserialize;
use serde_json::Value;

use crate::policy::duration::Duration;
use crate::policy::rules::{greater_than_zero, int_or_string, percentage, positive};

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct Conf {
    pub connection_limits: Option<ConnectionLimits>,
    pub outlier_detection: Option<OutlierDetection>,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct ConnectionLimits {
    pub max_connections: Option<u32>,
    pub max_pending_requests: Option<u32>,
    pub max_requests: Option<u32>,
    pub max_retries: Option<u32>,
    pub max_connection_pools: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct OutlierDetection {
    pub disabled: Option<bool>,
    pub interval: Option<Duration>,
    pub base_ejection_time: Option<Duration>,
    pub max_ejection_percent: Option<u32>,
    pub split_external_and_local_errors: Option<bool>,
    pub detectors: Option<Detectors>,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct Detectors {
    pub total_failures: Option<Consecutive>,
    pub gateway_failures: Option<Consecutive>,
    pub local_origin_failures: Option<Consecutive>,
    pub success_rate: Option<SuccessRate>,
    pub failure_percentage: Option<FailurePercentage>,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct Consecutive {
    pub consecutive: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct SuccessRate {
    pub minimum_hosts: Option<u32>,
    pub request_volume: Option<u32>,
    /// Kuma's IntOrString: `1.9` written as a number or a string.
    pub standard_deviation_factor: Option<Value>,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct FailurePercentage {
    pub minimum_hosts: Option<u32>,
    pub request_volume: Option<u32>,
    pub threshold: Option<u32>,
}

impl SuccessRate {
    /// The factor as a number, if it is one.
    pub fn factor(&self) -> Option<f64> {
        int_or_string(self.standard_deviation_factor.as_ref()?)
    }
}

const DETECTORS: &str = "must have at least one defined: totalFailures, gatewayFailures, localOriginFailures, successRate, failurePercentage";

impl crate::policy::Conf for Conf {
    const KIND: Kind = Kind::MeshCircuitBreaker;

    fn validate(&self, path: &str, out: &mut Vec<Violation>) {
        if self.connection_limits.is_none() && self.outlier_detection.is_none() {
            out.push(Violation::new(
                path,
                "at least one of: 'connectionLimits' or 'outlierDetection' should be configured",
            ));
            return;
        }
        if let Some(limits) = &self.connection_limits {
            let path = format!("{path}.connectionLimits");
            positive(&path, "maxConnections", limits.max_connections, out);
            positive(
                &path,
                "maxConnectionPools",
                limits.max_connection_pools,
                out,
            );
            positive(
                &path,
                "maxPendingRequests",
                limits.max_pending_requests,
                out,
            );
            positive(&path, "maxRetries", limits.max_retries, out);
            positive(&path, "maxRequests", limits.max_requests, out);
        }
        let Some(outlier) = &self.outlier_detection else {
            return;
        };
        let path = format!("{path}.outlierDetection");
        greater_than_zero(&path, "interval", outlier.interval, out);
        greater_than_zero(&path, "baseEjectionTime", outlier.base_ejection_time, out);
        percentage(
            &path,
            "maxEjectionPercent",
            outlier.max_ejection_percent,
            out,
        );
        let path = format!("{path}.detectors");
        let Some(d) = &outlier.detectors else {
            out.push(Violation::new(path, crate::policy::rules::DEFINED));
            return;
        };
        if d.total_failures.is_none()
            && d.gateway_failures.is_none()
            && d.local_origin_failures.is_none()
            && d.success_rate.is_none()
            && d.failure_percentage.is_none()
        {
            out.push(Violation::new(path, DETECTORS));
            return;
        }
        for (name, detector) in [
            ("totalFailures", &d.total_failures),
            ("gatewayFailures", &d.gateway_failures),
            ("localOriginFailures", &d.local_origin_failures),
        ] {
            if let Some(c) = detector {
                positive(&format!("{path}.{name}"), "consecutive", c.consecutive, out);
            }
        }
        if let Some(s) = &d.success_rate {
            let path = format!("{path}.successRate");
            positive(&path, "minimumHosts", s.minimum_hosts, out);
            positive(&path, "requestVolume", s.request_volume, out);
            if s.standard_deviation_factor.is_some() {
                match s.factor() {
                    None => out.push(Violation::new(
                        format!("{path}.standardDeviationFactor"),
                        "invalid number",
                    )),
                    Some(f) if f <= 0.0 => out.push(Violation::new(
                        format!("{path}.standardDeviationFactor"),
                        "must be greater than 0",
                    )),
                    Some(_) => {}
                }
            }
        }
        if let Some(f) = &d.failure_percentage {
            let path = format!("{path}.failurePercentage");
            positive(&path, "minimumHosts", f.minimum_hosts, out);
            positive(&path, "requestVolume", f.request_volume, out);
            percentage(&path, "threshold", f.threshold, out);
        }
    }
}
