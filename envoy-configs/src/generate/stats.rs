//! Stats tags: a service's cluster stats carry the service as a label
//! (`envoy_cluster_upstream_rq_completed{external_service="httpbin",...}` in Prometheus), and
//! the filter's per-reason counters the reason (`external_service_denied{reason="..."}`), not
//! baked into the metric's name.

use external_service_model::contract::{DENIED_METRIC, ENVOY_METRIC_PREFIX};

use super::names;
use crate::envoy::{StatsConfig, TagSpecifier};

/// The label of the service a request was forwarded to.
pub const SERVICE_TAG: &str = "external_service";
/// The label of a refusal's reason.
pub const REASON_TAG: &str = "reason";

pub fn labels() -> StatsConfig {
    StatsConfig {
        stats_tags: vec![service_clusters(), denial_reasons()],
    }
}

/// `cluster.<cluster prefix><service>.<stat>`: the service, up to the first dot as Envoy's
/// own `envoy_cluster_name` label reads a cluster's name, becomes the label (Envoy's label for
/// the whole cluster name stays).
fn service_clusters() -> TagSpecifier {
    let prefix = escape(&format!("cluster.{}", names::CLUSTER_PREFIX));
    TagSpecifier {
        tag_name: SERVICE_TAG.to_string(),
        regex: format!("^{prefix}((.+?)\\.)"),
    }
}

/// `<prefix><metric>.<reason>`: the `.<reason>` part leaves the name and becomes the tag.
fn denial_reasons() -> TagSpecifier {
    let name = escape(&format!("{ENVOY_METRIC_PREFIX}{DENIED_METRIC}"));
    TagSpecifier {
        tag_name: REASON_TAG.to_string(),
        regex: format!("^{name}(\\.(.+))$"),
    }
}

fn escape(name: &str) -> String {
    name.replace('.', "\\.")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use crate::generate::test_support::{assert_cases, yaml};

    #[test]
    fn the_service_and_the_reason_are_labels() {
        assert_cases(&[(
            "the service of a cluster, the reason of a denial",
            yaml(&labels()),
            r"
stats_tags:
- tag_name: external_service
  regex: ^cluster\.external_service_((.+?)\.)
- tag_name: reason
  regex: ^wasmcustom\.external_service\.denied(\.(.+))$
",
        )]);
    }
}
