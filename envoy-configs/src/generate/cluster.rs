//! Clusters: one per `kuma.io/service`, its endpoints, and the passthrough cluster.

use std::net::SocketAddr;

use external_service_model::address::Host;
use external_service_model::catalog::Service;
use external_service_model::protocol::Protocol;

use crate::envoy::{
    self, Address, CaresDnsResolverConfig, CircuitBreakers, Cluster, ClusterLoadAssignment,
    ClusterTypeConfig, CommonHttpProtocolOptions, CommonLbConfig, DiscoveryType, DnsCacheConfig,
    DnsLookupFamily, DnsResolverConfig, DnsResolverOptions, DynamicForwardProxyConfig, Endpoint,
    Extension, HealthCheck, HealthCheckEventFileSink, HealthCheckEventSink, HealthChecker,
    Int64Range, LbEndpoint, LbPolicy, LocalityLbEndpoints, Map, Metadata, OutlierDetection,
    Payload, Percent, Thresholds, TransportSocketMatch,
};

use super::secrets::Secrets;
use super::{protocol, tls, traffic, Context};
use crate::policy::{circuit_breaker, health_check, timeout};

/// Kuma's default connection timeout; a MeshTimeout's `connectionTimeout` replaces it.
pub const CONNECT_TIMEOUT: envoy::Duration = envoy::Duration::from_secs(5);
/// Resolve both families, use IPv4 when there is one: loopback test servers and most hosts.
pub const DNS_LOOKUP_FAMILY: DnsLookupFamily = DnsLookupFamily::V4Preferred;
/// The dynamic forward proxy cluster (and DNS cache) undeclared hosts go to when passthrough
/// is on.
pub const PASSTHROUGH: &str = "passthrough";
/// Endpoint metadata key that picks an endpoint's TLS settings when a service has several
/// hosts (each needs its own SNI and SAN).
const HOST_MATCH_KEY: &str = "external_service_host";

/// The cluster name of a service: readable and stable.
pub fn name(service: &str) -> String {
    format!("external_service_{service}")
}

/// A service's cluster: STRICT_DNS for host names, STATIC for IPs; TLS origination and HTTP/2
/// as the service asks.
pub fn service_cluster(ctx: &Context<'_>, secrets: &mut Secrets, service: &Service) -> Cluster {
    let name = name(&service.name);
    let policies = ctx.policies.of(ctx.mesh(), &service.name);
    let timeouts = policies.timeout.as_ref().map(|t| &t.conf);
    let breaker = policies.circuit_breaker.as_ref().map(|b| &b.conf);
    let health = policies.health_check.as_ref().map(|h| &h.conf);
    // The endpoints are all IPs or all names (`cluster_rules`): the first says which.
    let by_ip = service
        .endpoints
        .first()
        .is_some_and(|e| e.address.host.is_ip());
    let hosts = distinct_hosts(service);
    let per_host_tls = service
        .tls
        .as_ref()
        .is_some_and(|t| t.server_name.is_none())
        && hosts.len() > 1;

    let mut sockets = Vec::new();
    if let Some(settings) = &service.tls {
        let wanted = if per_host_tls { hosts.len() } else { 1 };
        for host in hosts.iter().take(wanted) {
            sockets.push((host, tls::upstream(ctx, secrets, service, settings, host)));
        }
    }
    let transport_socket_matches = if per_host_tls {
        sockets
            .iter()
            .map(|(host, socket)| TransportSocketMatch {
                name: host.to_string(),
                criteria: Map::of(HOST_MATCH_KEY, host.to_string()),
                transport_socket: socket.clone(),
            })
            .collect()
    } else {
        Vec::new()
    };
    Cluster {
        load_assignment: Some(load_assignment(&name, service, per_host_tls)),
        name,
        discovery_type: Some(if by_ip {
            DiscoveryType::Static
        } else {
            DiscoveryType::StrictDns
        }),
        connect_timeout: timeouts
            .and_then(|t| t.connection_timeout)
            .map_or(CONNECT_TIMEOUT, policy_duration),
        dns_lookup_family: (!by_ip).then_some(DNS_LOOKUP_FAMILY),
        typed_extension_protocol_options: protocol::options(
            service.protocol,
            timeouts.and_then(connection_lifetime),
        ),
        transport_socket_matches,
        // With per-host matches too: an endpoint that matches none still gets TLS.
        transport_socket: sockets.into_iter().next().map(|(_, socket)| socket),
        circuit_breakers: breaker
            .and_then(|b| b.connection_limits.as_ref())
            .map(limits),
        outlier_detection: breaker
            .and_then(|b| b.outlier_detection.as_ref())
            .filter(|o| o.disabled != Some(true))
            .map(outlier_detection),
        health_checks: health
            .and_then(|h| health_check(h, service.protocol))
            .into_iter()
            .collect(),
        common_lb_config: health
            .and_then(health_check::Conf::panic_threshold)
            .map(|value| CommonLbConfig {
                healthy_panic_threshold: Percent { value },
            }),
        ..Cluster::default()
    }
}

/// How long the service's upstream connections may stay open: MeshTimeout's `idleTimeout`
/// and `http.maxConnectionDuration`.
fn connection_lifetime(t: &timeout::Conf) -> Option<CommonHttpProtocolOptions> {
    let common = CommonHttpProtocolOptions {
        idle_timeout: t.idle_timeout.map(policy_duration),
        max_connection_duration: t
            .http
            .as_ref()
            .and_then(|h| h.max_connection_duration)
            .map(policy_duration),
    };
    (common.idle_timeout.is_some() || common.max_connection_duration.is_some()).then_some(common)
}

/// MeshCircuitBreaker's `connectionLimits`, as the default priority's thresholds.
fn limits(l: &circuit_breaker::ConnectionLimits) -> CircuitBreakers {
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
fn outlier_detection(o: &circuit_breaker::OutlierDetection) -> OutlierDetection {
    let enforced = |on: bool| if on { 100 } else { 0 };
    let d = o.detectors.clone().unwrap_or_default();
    let consecutive =
        |c: &Option<circuit_breaker::Consecutive>| c.as_ref().and_then(|c| c.consecutive);
    OutlierDetection {
        interval: o.interval.map(policy_duration),
        base_ejection_time: o.base_ejection_time.map(policy_duration),
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
            .and_then(circuit_breaker::SuccessRate::factor)
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

/// Kuma's defaults for what a MeshHealthCheck leaves out.
const HEALTH_INTERVAL: envoy::Duration = envoy::Duration::from_secs(60);
const HEALTH_TIMEOUT: envoy::Duration = envoy::Duration::from_secs(15);
const UNHEALTHY_THRESHOLD: u32 = 5;
const HEALTHY_THRESHOLD: u32 = 1;

/// The active health check of MeshHealthCheck: the service's own protocol (HTTP for http and
/// http2, gRPC for grpc) unless that section is missing or disabled, else TCP; none when no
/// section applies.
fn health_check(h: &health_check::Conf, protocol: Protocol) -> Option<HealthCheck> {
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
                        .map(traffic::headers)
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
        timeout: h.timeout.map_or(HEALTH_TIMEOUT, policy_duration),
        interval: h.interval.map_or(HEALTH_INTERVAL, policy_duration),
        unhealthy_threshold: h.unhealthy_threshold.unwrap_or(UNHEALTHY_THRESHOLD),
        healthy_threshold: h.healthy_threshold.unwrap_or(HEALTHY_THRESHOLD),
        initial_jitter: h.initial_jitter.map(policy_duration),
        interval_jitter: h.interval_jitter.map(policy_duration),
        no_traffic_interval: h.no_traffic_interval.map(policy_duration),
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

pub fn policy_duration(d: crate::policy::duration::Duration) -> envoy::Duration {
    envoy::Duration(d.to_std())
}

/// The endpoints' hosts, each once, in declaration order.
pub fn distinct_hosts(service: &Service) -> Vec<&Host> {
    let mut hosts: Vec<&Host> = Vec::new();
    for e in &service.endpoints {
        if !hosts.contains(&&e.address.host) {
            hosts.push(&e.address.host);
        }
    }
    hosts
}

fn load_assignment(cluster: &str, service: &Service, per_host_tls: bool) -> ClusterLoadAssignment {
    // With endpoints on several hosts the route's `auto_host_rewrite` sets `Host` from the
    // endpoint's hostname, which is the bare DNS name unless given: give `host:port` when the
    // port is not the scheme's default, as the filter does for a single host.
    let several_hosts = distinct_hosts(service).len() > 1;
    let default_port = if service.tls.is_some() { 443 } else { 80 };
    let lb_endpoints = service
        .endpoints
        .iter()
        .map(|e| LbEndpoint {
            endpoint: Endpoint {
                address: Address::new(e.address.bare_host(), e.address.port),
                hostname: (several_hosts && e.address.port != default_port)
                    .then(|| e.address.to_string()),
            },
            metadata: per_host_tls.then(|| Metadata {
                filter_metadata: Map::of(
                    "envoy.transport_socket_match",
                    Map::of(HOST_MATCH_KEY, e.address.host.to_string()),
                ),
            }),
        })
        .collect();
    ClusterLoadAssignment {
        cluster_name: cluster.to_string(),
        endpoints: vec![LocalityLbEndpoints { lb_endpoints }],
    }
}

/// The DNS cache shared by the dynamic forward proxy filter and cluster.
pub fn dns_cache() -> DynamicForwardProxyConfig {
    DynamicForwardProxyConfig {
        dns_cache_config: DnsCacheConfig {
            name: PASSTHROUGH,
            dns_lookup_family: DNS_LOOKUP_FAMILY,
        },
    }
}

/// Undeclared plain-HTTP hosts, when the mesh's passthrough is on.
pub fn passthrough() -> Cluster {
    Cluster {
        name: PASSTHROUGH.to_string(),
        connect_timeout: CONNECT_TIMEOUT,
        lb_policy: Some(LbPolicy::ClusterProvided),
        cluster_type: Some(Extension {
            name: "envoy.clusters.dynamic_forward_proxy",
            typed_config: ClusterTypeConfig::DynamicForwardProxy(dns_cache()),
        }),
        ..Cluster::default()
    }
}

/// Envoy's c-ares resolver pointed at one server only (bootstrap level: every cluster and the
/// DNS cache use it).
pub fn dns_resolver(server: SocketAddr) -> Extension<DnsResolverConfig> {
    Extension {
        name: "envoy.network.dns_resolver.cares",
        typed_config: DnsResolverConfig::Cares(CaresDnsResolverConfig {
            resolvers: vec![Address::from(server)],
            use_resolvers_as_fallback: false,
            dns_resolver_options: DnsResolverOptions {
                use_tcp_for_dns_lookups: false,
                no_default_search_domain: true,
            },
        }),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use crate::generate::test_support::{assert_cases, service, yaml, yaml_eliding, Fixture};

    fn cluster_of(resources: &str, name: &str) -> Cluster {
        let f = Fixture::new(resources);
        service_cluster(&f.ctx(), &mut Secrets::default(), f.service(name))
    }

    fn first_endpoint(cluster: &Cluster) -> &LbEndpoint {
        &cluster.load_assignment.as_ref().unwrap().endpoints[0].lb_endpoints[0]
    }

    /// Two ExternalServices of one `kuma.io/service`.
    fn two_hosts(tls: &str) -> String {
        let es = |name: &str, address: &str| {
            format!(
                "type: ExternalService\nmesh: default\nname: {name}\n\
                 tags: {{kuma.io/service: api, kuma.io/protocol: http}}\n\
                 networking: {{address: {address}{tls}}}\n---\n"
            )
        };
        es("eu", "eu.api.test:8443") + &es("us", "us.api.test:443")
    }

    #[test]
    fn clusters_and_endpoints() {
        assert_cases(&[
            (
                "a host name: STRICT_DNS, plain TCP",
                yaml(&cluster_of(
                    &service("httpbin", "http", "{address: httpbin.test:80}"),
                    "httpbin",
                )),
                "
name: external_service_httpbin
type: STRICT_DNS
connect_timeout: 5s
dns_lookup_family: V4_PREFERRED
load_assignment:
  cluster_name: external_service_httpbin
  endpoints:
  - lb_endpoints:
    - endpoint:
        address:
          socket_address:
            address: httpbin.test
            port_value: 80
",
            ),
            (
                "an IP: STATIC; gRPC: HTTP/2 upstream",
                yaml(&cluster_of(
                    &service("rpc", "grpc", "{address: '[::1]:9000'}"),
                    "rpc",
                )),
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
            address: ::1
            port_value: 9000
typed_extension_protocol_options:
  envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
    '@type': type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
    explicit_http_config:
      http2_protocol_options: {}
",
            ),
            (
                "several hosts: each endpoint names itself with a port that is not the default",
                yaml(&cluster_of(&two_hosts(""), "api").load_assignment),
                "
cluster_name: external_service_api
endpoints:
- lb_endpoints:
  - endpoint:
      address:
        socket_address:
          address: eu.api.test
          port_value: 8443
      hostname: eu.api.test:8443
  - endpoint:
      address:
        socket_address:
          address: us.api.test
          port_value: 443
      hostname: us.api.test:443
",
            ),
            (
                "undeclared hosts with passthrough on",
                yaml(&passthrough()),
                "
name: passthrough
connect_timeout: 5s
lb_policy: CLUSTER_PROVIDED
cluster_type:
  name: envoy.clusters.dynamic_forward_proxy
  typed_config:
    '@type': type.googleapis.com/envoy.extensions.clusters.dynamic_forward_proxy.v3.ClusterConfig
    dns_cache_config:
      name: passthrough
      dns_lookup_family: V4_PREFERRED
",
            ),
            (
                "one DNS server for all",
                yaml(&dns_resolver("127.0.0.1:5353".parse().unwrap())),
                "
name: envoy.network.dns_resolver.cares
typed_config:
  '@type': type.googleapis.com/envoy.extensions.network.dns_resolver.cares.v3.CaresDnsResolverConfig
  resolvers:
  - socket_address:
      address: 127.0.0.1
      port_value: 5353
  use_resolvers_as_fallback: false
  dns_resolver_options:
    use_tcp_for_dns_lookups: false
    no_default_search_domain: true
",
            ),
        ]);
    }

    #[test]
    fn tls_on_several_hosts_picks_each_endpoints_socket_by_its_host() {
        let tls = ", tls: {enabled: true}";
        let with_sni = ", tls: {serverName: api.test}";
        assert_cases(&[
            (
                "a socket per host, and the first for any other endpoint",
                yaml_eliding(
                    &cluster_of(&two_hosts(tls), "api"),
                    &[
                        "/load_assignment",
                        "/transport_socket_matches/0/transport_socket",
                        "/transport_socket_matches/1/transport_socket",
                        "/transport_socket",
                    ],
                ),
                "
name: external_service_api
type: STRICT_DNS
connect_timeout: 5s
dns_lookup_family: V4_PREFERRED
load_assignment: <elided>
transport_socket_matches:
- name: eu.api.test
  match:
    external_service_host: eu.api.test
  transport_socket: <elided>
- name: us.api.test
  match:
    external_service_host: us.api.test
  transport_socket: <elided>
transport_socket: <elided>
",
            ),
            (
                "endpoints carry their host",
                yaml(&first_endpoint(&cluster_of(&two_hosts(tls), "api"))),
                "
endpoint:
  address:
    socket_address:
      address: eu.api.test
      port_value: 8443
  hostname: eu.api.test:8443
metadata:
  filter_metadata:
    envoy.transport_socket_match:
      external_service_host: eu.api.test
",
            ),
            (
                "one server name: one socket",
                yaml_eliding(
                    &cluster_of(&two_hosts(with_sni), "api"),
                    &["/load_assignment", "/transport_socket/typed_config"],
                ),
                "
name: external_service_api
type: STRICT_DNS
connect_timeout: 5s
dns_lookup_family: V4_PREFERRED
load_assignment: <elided>
transport_socket:
  name: envoy.transport_sockets.tls
  typed_config: <elided>
",
            ),
        ]);
    }
}
