//! Stats tags: the filter's per-service and per-reason counters carry the service and the
//! reason as labels (`external_service_forwarded{external_service="httpbin"}`
//! in Prometheus), not baked into the metric's name.

use external_service_model::contract::{DENIED_METRIC, ENVOY_METRIC_PREFIX, FORWARDED_METRIC};

use crate::envoy::{StatsConfig, TagSpecifier};

/// The label of the service a request was forwarded to.
pub const SERVICE_TAG: &str = "external_service";
/// The label of a refusal's reason.
pub const REASON_TAG: &str = "reason";

pub fn labels() -> StatsConfig {
    StatsConfig {
        stats_tags: vec![
            tag(SERVICE_TAG, FORWARDED_METRIC),
            tag(REASON_TAG, DENIED_METRIC),
        ],
    }
}

/// `<prefix><metric>.<value>`: the `.<value>` part leaves the name and becomes the tag.
fn tag(tag_name: &str, metric: &str) -> TagSpecifier {
    let name = format!("{ENVOY_METRIC_PREFIX}{metric}").replace('.', "\\.");
    TagSpecifier {
        tag_name: tag_name.to_string(),
        regex: format!("^{name}(\\.(.+))$"),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use crate::generate::test_support::{assert_cases, yaml};

    #[test]
    fn the_service_and_the_reason_are_labels() {
        assert_cases(&[(
            "one tag per counter family",
            yaml(&labels()),
            r"
stats_tags:
- tag_name: external_service
  regex: ^wasmcustom\.external_service\.forwarded(\.(.+))$
- tag_name: reason
  regex: ^wasmcustom\.external_service\.denied(\.(.+))$
",
        )]);
    }
}
