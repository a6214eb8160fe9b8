//! A Dataplane's clusters when its mesh sends external traffic through the ZoneEgress
//! (`routing.zoneEgress`): each service's cluster has every ZoneEgress as an endpoint, round
//! robin, over mTLS with the Dataplane's certificate and the service's SNI (Kuma's
//! `fillExternalServicesOutboundsThroughEgress`). The egress originates TLS to the service.
//!
//! An egress that stops is noticed two ways: a connection to it that fails ejects it at once
//! (outlier detection), and a health check (the TLS handshake with the service's SNI: the
//! egress's chain for the service answers) marks it unhealthy within a second. No request
//! goes to it after that; when every egress is down the app gets 503 at once rather than a
//! try at a dead one. The check costs each egress a handshake a second per service of each
//! sidecar, traffic or not: Envoy's slower check of an idle cluster would come back whenever
//! the stats are flushed (every 5 s) with no new connection, and notice a minute late.

use external_service_model::catalog::Service;
use external_service_model::resource::ZoneEgressSpec;

use crate::envoy::{
    Address, Cluster, ClusterLoadAssignment, CommonLbConfig, DiscoveryType, Endpoint, HealthCheck,
    HealthChecker, LbEndpoint, LocalityLbEndpoints, OutlierDetection, Percent,
};

use super::mesh_tls::MeshTls;
use super::{cluster, names, protocol, Context};

/// How often each egress is checked, and how long a check may take.
pub const HEALTH_INTERVAL: crate::envoy::Duration = crate::envoy::Duration::from_secs(1);
/// How long an egress whose connection failed stays out (a passing check does not end it).
pub const EJECTION: crate::envoy::Duration = crate::envoy::Duration::from_secs(10);

/// `service`'s cluster, to the egresses.
pub fn cluster(
    ctx: &Context<'_>,
    tls: &MeshTls,
    service: &Service,
    egresses: &[&ZoneEgressSpec],
) -> Cluster {
    let name = names::cluster(service);
    let by_ip = egresses
        .iter()
        .all(|e| e.networking.address.parse::<std::net::IpAddr>().is_ok());
    let lb_endpoints = egresses
        .iter()
        .map(|e| LbEndpoint {
            endpoint: Endpoint {
                address: Address::new(
                    e.networking.address.clone(),
                    u16::try_from(e.networking.port).unwrap_or_default(),
                ),
                hostname: None,
            },
            metadata: None,
        })
        .collect();
    let sni = names::egress_sni(ctx.resources, ctx.mesh(), service);
    Cluster {
        load_assignment: Some(ClusterLoadAssignment {
            cluster_name: name.clone(),
            endpoints: vec![LocalityLbEndpoints {
                priority: 0,
                lb_endpoints,
            }],
        }),
        name,
        discovery_type: Some(if by_ip {
            DiscoveryType::Static
        } else {
            DiscoveryType::StrictDns
        }),
        connect_timeout: cluster::CONNECT_TIMEOUT,
        dns_lookup_family: (!by_ip).then_some(cluster::DNS_LOOKUP_FAMILY),
        transport_socket: Some(tls.to_egress(sni)),
        typed_extension_protocol_options: protocol::options(service.protocol, None),
        health_checks: vec![HealthCheck {
            timeout: HEALTH_INTERVAL,
            interval: HEALTH_INTERVAL,
            unhealthy_threshold: 1,
            healthy_threshold: 1,
            initial_jitter: None,
            interval_jitter: None,
            // Envoy's default checks a cluster once a minute when it has no new connections.
            no_traffic_interval: Some(HEALTH_INTERVAL),
            always_log_health_check_failures: false,
            event_logger: Vec::new(),
            // Connected means handshaken: the cluster's TLS is the check's.
            checker: HealthChecker::TcpHealthCheck {
                send: None,
                receive: Vec::new(),
            },
        }],
        outlier_detection: Some(OutlierDetection {
            interval: Some(HEALTH_INTERVAL),
            base_ejection_time: Some(EJECTION),
            max_ejection_percent: Some(100),
            split_external_local_origin_errors: true,
            consecutive_local_origin_failure: Some(1),
            enforcing_consecutive_local_origin_failure: 100,
            ..OutlierDetection::default()
        }),
        // Never to an egress known down, even when most are.
        common_lb_config: Some(CommonLbConfig {
            healthy_panic_threshold: Percent { value: 0.0 },
        }),
        ..Cluster::default()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use std::path::Path;
    use std::time::UNIX_EPOCH;

    use super::*;
    use crate::generate::sds::Sds;
    use crate::generate::test_support::{assert_cases, service, yaml, yaml_eliding, Fixture};
    use crate::identity::Issued;

    fn egress(address: &str, port: u32) -> ZoneEgressSpec {
        let mut spec = ZoneEgressSpec::default();
        spec.networking.address = address.to_string();
        spec.networking.port = port;
        spec
    }

    #[test]
    fn every_egress_is_an_endpoint_checked_and_ejected_when_down() {
        let f = Fixture::new(&service("rpc", "grpc", "{address: rpc.test:443}"));
        let issued = Issued {
            certificate_pem: "CERT".into(),
            key_pem: "KEY".into(),
            trust_pem: "CA".into(),
            uris: Vec::new(),
            not_after: UNIX_EPOCH,
            renew_at: UNIX_EPOCH,
        };
        let tls = MeshTls::new(&mut Sds::new(Path::new("/x"), false), "default", &issued);
        let (one, two) = (egress("10.0.0.1", 10002), egress("egress.test", 10002));
        let by_ip = cluster(&f.ctx(), &tls, f.service("rpc"), &[&one, &one]);
        let by_name = cluster(&f.ctx(), &tls, f.service("rpc"), &[&one, &two]);
        assert_cases(&[
            (
                "IPs: STATIC; the service's SNI to the egress; HTTP/2 as the service speaks",
                yaml_eliding(
                    &by_ip,
                    &[
                        "/transport_socket/typed_config/common_tls_context",
                        "/load_assignment/endpoints/0/lb_endpoints/1",
                    ],
                ),
                "
name: external_service_rpc
type: STATIC
connect_timeout: 5s
load_assignment:
  cluster_name: external_service_rpc
  endpoints:
  - lb_endpoints:
    - endpoint:
        address:
          socket_address:
            address: 10.0.0.1
            port_value: 10002
    - <elided>
typed_extension_protocol_options:
  envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
    '@type': type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
    explicit_http_config:
      http2_protocol_options: {}
transport_socket:
  name: envoy.transport_sockets.tls
  typed_config:
    '@type': type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
    sni: rpc{mesh=default}
    common_tls_context: <elided>
outlier_detection:
  interval: 1s
  base_ejection_time: 10s
  max_ejection_percent: 100
  split_external_local_origin_errors: true
  enforcing_consecutive_5xx: 0
  enforcing_consecutive_gateway_failure: 0
  consecutive_local_origin_failure: 1
  enforcing_consecutive_local_origin_failure: 100
  enforcing_success_rate: 0
  enforcing_failure_percentage: 0
health_checks:
- timeout: 1s
  interval: 1s
  unhealthy_threshold: 1
  healthy_threshold: 1
  no_traffic_interval: 1s
  tcp_health_check: {}
common_lb_config:
  healthy_panic_threshold:
    value: 0.0
",
            ),
            (
                "a name among them: STRICT_DNS",
                yaml(&(&by_name.discovery_type, &by_name.dns_lookup_family)),
                "
- STRICT_DNS
- V4_PREFERRED
",
            ),
        ]);
    }
}
