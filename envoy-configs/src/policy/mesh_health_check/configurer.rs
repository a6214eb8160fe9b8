//! MeshHealthCheck on Envoy: the cluster's active health check and its panic threshold.

use external_service_model::catalog::Service;
use external_service_model::protocol::Protocol;

use crate::envoy::{
    self, Cluster, CommonLbConfig, Extension, HealthCheck, HealthCheckEventFileSink,
    HealthCheckEventSink, HealthChecker, Int64Range, Payload, Percent,
};
use crate::policy::duration::Duration as PolicyDuration;
use crate::policy::header_modifier::HeaderModifier;
use crate::policy::Configure;

use super::Conf;

impl Configure for Conf {
    fn cluster(&self, service: &Service, cluster: &mut Cluster) {
        cluster.health_checks = health_check(self, service.protocol).into_iter().collect();
        cluster.common_lb_config = self.panic_threshold().map(|value| CommonLbConfig {
            healthy_panic_threshold: Percent { value },
        });
    }
}

/// Kuma's defaults for what a MeshHealthCheck leaves out.
const HEALTH_INTERVAL: envoy::Duration = envoy::Duration::from_secs(60);
const HEALTH_TIMEOUT: envoy::Duration = envoy::Duration::from_secs(15);
const UNHEALTHY_THRESHOLD: u32 = 5;
const HEALTHY_THRESHOLD: u32 = 1;

/// The active health check of MeshHealthCheck: the service's own protocol (HTTP for http and
/// http2, gRPC for grpc) unless that section is missing or disabled, else TCP; none when no
/// section applies.
fn health_check(h: &Conf, protocol: Protocol) -> Option<HealthCheck> {
    let on = |disabled: Option<bool>| disabled != Some(true);
    let tcp = h
        .tcp
        .as_ref()
        .filter(|t| on(t.disabled))
        .map(|t| HealthChecker::TcpHealthCheck {
            send: t.send.as_deref().map(hex_payload),
            receive: t.receive.iter().flatten().map(|r| hex_payload(r)).collect(),
        });
    let own = match protocol {
        Protocol::Http | Protocol::Http2 => {
            h.http
                .as_ref()
                .filter(|x| on(x.disabled))
                .map(|x| HealthChecker::HttpHealthCheck {
                    path: x.path.clone().unwrap_or_else(|| "/".to_string()),
                    expected_statuses: x
                        .expected_statuses
                        .iter()
                        .flatten()
                        .map(|&s| Int64Range {
                            start: s,
                            end: s + 1,
                        })
                        .collect(),
                    request_headers_to_add: x
                        .request_headers_to_add
                        .as_ref()
                        .map(HeaderModifier::to_envoy)
                        .unwrap_or_default(),
                })
        }
        Protocol::Grpc => {
            h.grpc
                .as_ref()
                .filter(|g| on(g.disabled))
                .map(|g| HealthChecker::GrpcHealthCheck {
                    service_name: g.service_name.clone(),
                    authority: g.authority.clone(),
                })
        }
        Protocol::Tcp | Protocol::Kafka => None,
    };
    Some(HealthCheck {
        timeout: h.timeout.map_or(HEALTH_TIMEOUT, PolicyDuration::to_envoy),
        interval: h.interval.map_or(HEALTH_INTERVAL, PolicyDuration::to_envoy),
        unhealthy_threshold: h.unhealthy_threshold.unwrap_or(UNHEALTHY_THRESHOLD),
        healthy_threshold: h.healthy_threshold.unwrap_or(HEALTHY_THRESHOLD),
        initial_jitter: h.initial_jitter.map(PolicyDuration::to_envoy),
        interval_jitter: h.interval_jitter.map(PolicyDuration::to_envoy),
        no_traffic_interval: h.no_traffic_interval.map(PolicyDuration::to_envoy),
        always_log_health_check_failures: h.always_log_health_check_failures == Some(true),
        event_logger: h
            .event_log_path
            .iter()
            .map(|path| Extension {
                name: "envoy.health_check.event_sinks.file",
                typed_config: HealthCheckEventSink::File(HealthCheckEventFileSink {
                    event_log_path: path.clone(),
                }),
            })
            .collect(),
        checker: own.or(tcp)?,
    })
}

fn hex_payload(text: &str) -> Payload {
    Payload {
        text: text.bytes().map(|b| format!("{b:02x}")).collect(),
    }
}
