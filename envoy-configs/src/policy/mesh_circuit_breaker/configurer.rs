//! MeshCircuitBreaker on Envoy: the cluster's circuit breakers and outlier detection.

use external_service_model::catalog::Service;

use crate::envoy::{CircuitBreakers, Cluster, OutlierDetection, Thresholds};
use crate::policy::duration::Duration as PolicyDuration;
use crate::policy::Configure;

use super::{ConnectionLimits, Consecutive, Conf, SuccessRate};

impl Configure for Conf {
    fn cluster(&self, _service: &Service, cluster: &mut Cluster) {
        cluster.circuit_breakers = self.connection_limits.as_ref().map(limits);
        cluster.outlier_detection = self
            .outlier_detection
            .as_ref()
            .filter(|o| o.disabled != Some(true))
            .map(outlier_detection);
    }
}

/// MeshCircuitBreaker's `connectionLimits`, as the default priority's thresholds.
fn limits(l: &ConnectionLimits) -> CircuitBreakers {
    CircuitBreakers {
        thresholds: vec![Thresholds {
            max_connections: l.max_connections,
            max_pending_requests: l.max_pending_requests,
            max_requests: l.max_requests,
            max_retries: l.max_retries,
            max_connection_pools: l.max_connection_pools,
        }],
    }
}

/// Full enforcement of each detector named, none of the others (as Kuma maps them).
fn outlier_detection(o: &super::OutlierDetection) -> OutlierDetection {
    let enforced = |on: bool| if on { 100 } else { 0 };
    let d = o.detectors.clone().unwrap_or_default();
    let consecutive =
        |c: &Option<Consecutive>| c.as_ref().and_then(|c| c.consecutive);
    OutlierDetection {
        interval: o.interval.map(PolicyDuration::to_envoy),
        base_ejection_time: o.base_ejection_time.map(PolicyDuration::to_envoy),
        max_ejection_percent: o.max_ejection_percent,
        split_external_local_origin_errors: o.split_external_and_local_errors == Some(true),
        consecutive_5xx: consecutive(&d.total_failures),
        enforcing_consecutive_5xx: enforced(d.total_failures.is_some()),
        consecutive_gateway_failure: consecutive(&d.gateway_failures),
        enforcing_consecutive_gateway_failure: enforced(d.gateway_failures.is_some()),
        consecutive_local_origin_failure: consecutive(&d.local_origin_failures),
        enforcing_consecutive_local_origin_failure: enforced(d.local_origin_failures.is_some()),
        success_rate_minimum_hosts: d.success_rate.as_ref().and_then(|s| s.minimum_hosts),
        success_rate_request_volume: d.success_rate.as_ref().and_then(|s| s.request_volume),
        success_rate_stdev_factor: d
            .success_rate
            .as_ref()
            .and_then(SuccessRate::factor)
            .map(|f| (f * 1000.0).round() as u32),
        enforcing_success_rate: enforced(d.success_rate.is_some()),
        failure_percentage_minimum_hosts: d
            .failure_percentage
            .as_ref()
            .and_then(|f| f.minimum_hosts),
        failure_percentage_request_volume: d
            .failure_percentage
            .as_ref()
            .and_then(|f| f.request_volume),
        failure_percentage_threshold: d.failure_percentage.as_ref().and_then(|f| f.threshold),
        enforcing_failure_percentage: enforced(d.failure_percentage.is_some()),
    }
}
