//! MeshFaultInjection on Envoy: the fault filter sits inert in the connection manager, and
//! each service's route configures it (`typed_per_filter_config`), so it acts on that service
//! only.

use crate::envoy::{
    Denominator, Duration, Extension, FaultAbort, FaultDelay, FaultRateLimit, FixedLimit,
    FractionalPercent, HttpFault, HttpFilter, HttpFilterConfig,
};
use crate::policy::Configure;

use super::{share as percentage, Conf};

const FAULT: &str = "envoy.filters.http.fault";

impl Configure for Conf {
    fn http_filter(&self) -> Option<HttpFilter> {
        Some(Extension {
            name: FAULT,
            typed_config: HttpFilterConfig::Fault(HttpFault::default()),
        })
    }

    fn route_filters(&self, config: &mut Vec<(String, HttpFilterConfig)>) {
        if let Some(fault) = fault_config(self) {
            config.push((FAULT.to_string(), HttpFilterConfig::Fault(fault)));
        }
    }
}

/// A percentage of 0-100 (validated), as Envoy's parts per million.
fn share(percent: f64) -> FractionalPercent {
    FractionalPercent {
        numerator: (percent * 10_000.0).round() as u32,
        denominator: Denominator::Million,
    }
}

fn fault_config(conf: &Conf) -> Option<HttpFault> {
    let faults = conf.http.as_deref().unwrap_or_default();
    let bandwidth = faults.iter().find_map(|f| f.response_bandwidth.as_ref());
    let config = HttpFault {
        delay: faults
            .iter()
            .find_map(|f| f.delay.as_ref())
            .map(|d| FaultDelay {
                fixed_delay: Duration(d.value.to_std()),
                percentage: share(percentage(&d.percentage)),
            }),
        abort: faults
            .iter()
            .find_map(|f| f.abort.as_ref())
            .map(|a| FaultAbort {
                http_status: u32::try_from(a.http_status).unwrap_or_default(),
                percentage: share(percentage(&a.percentage)),
            }),
        response_rate_limit: bandwidth.and_then(|b| {
            Some(FaultRateLimit {
                fixed_limit: FixedLimit {
                    limit_kbps: b.kbps()?,
                },
                percentage: share(percentage(&b.percentage)),
            })
        }),
    };
    (config.delay.is_some() || config.abort.is_some() || config.response_rate_limit.is_some())
        .then_some(config)
}
