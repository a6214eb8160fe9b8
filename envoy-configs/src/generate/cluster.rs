//! Clusters: one per `kuma.io/service` and per MeshExternalService, its endpoints by priority,
//! and the passthrough cluster.

use std::net::SocketAddr;

use external_service_model::address::Host;
use external_service_model::catalog::Service;
use external_service_model::upstream_tls::Sni;

use crate::envoy::{
    self, Address, CaresDnsResolverConfig, Cluster, ClusterLoadAssignment, ClusterTypeConfig,
    CommonHttpProtocolOptions, DiscoveryType, DnsCacheConfig, DnsLookupFamily, DnsResolverConfig,
    DnsResolverOptions, DynamicForwardProxyConfig, Endpoint, Extension, LbEndpoint, LbPolicy,
    LocalityLbEndpoints, Map, Metadata, TransportSocketMatch,
};

use super::secrets::Secrets;
use super::{protocol, tls, Context};

pub use super::names::cluster as name;

/// Kuma's default connection timeout (a policy's hook may replace it).
pub const CONNECT_TIMEOUT: envoy::Duration = envoy::Duration::from_secs(5);
/// Resolve both families, use IPv4 when there is one: loopback test servers and most hosts.
pub const DNS_LOOKUP_FAMILY: DnsLookupFamily = DnsLookupFamily::V4Preferred;
/// The dynamic forward proxy cluster (and DNS cache) undeclared hosts go to when passthrough
/// is on.
pub const PASSTHROUGH: &str = "passthrough";
/// Endpoint metadata key that picks an endpoint's TLS settings when a service has several
/// hosts (each needs its own SNI and SAN).
const HOST_MATCH_KEY: &str = "external_service_host";

/// A service's cluster: STATIC when every endpoint is an IP, else STRICT_DNS (which takes
/// IPs too); TLS origination and HTTP/2 as the service asks.
pub fn service_cluster(ctx: &Context<'_>, secrets: &mut Secrets, service: &Service) -> Cluster {
    let name = name(service);
    let by_ip = service.endpoints.iter().all(|e| e.address.host.is_ip());
    let hosts = distinct_hosts(service);
    // Without one SNI for all, each host gets its own name checked (and sent, for an
    // ExternalService).
    let per_host_tls = service.tls.as_ref().is_some_and(|t| match t.sni {
        Sni::EachHost => true,
        Sni::None => t.verify_name,
        Sni::Name(_) => false,
    }) && hosts.len() > 1;

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
    let mut cluster = Cluster {
        load_assignment: Some(load_assignment(&name, service, per_host_tls)),
        name,
        discovery_type: Some(if by_ip {
            DiscoveryType::Static
        } else {
            DiscoveryType::StrictDns
        }),
        connect_timeout: CONNECT_TIMEOUT,
        dns_lookup_family: (!by_ip).then_some(DNS_LOOKUP_FAMILY),
        transport_socket_matches,
        // With per-host matches too: an endpoint that matches none still gets TLS.
        transport_socket: sockets.into_iter().next().map(|(_, socket)| socket),
        ..Cluster::default()
    };
    let mut http = CommonHttpProtocolOptions {
        idle_timeout: None,
        max_connection_duration: None,
    };
    for policy in ctx.policies.of(ctx.mesh(), service).configurers() {
        policy.cluster(service, &mut cluster);
        policy.upstream_http(&mut http);
    }
    let http_set = http.idle_timeout.is_some() || http.max_connection_duration.is_some();
    cluster.typed_extension_protocol_options =
        protocol::options(service.protocol, http_set.then_some(http));
    cluster
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

/// The service's priority levels, each once, lowest (tried first) first.
pub fn priority_levels(service: &Service) -> Vec<u32> {
    let mut levels: Vec<u32> = service.endpoints.iter().map(|e| e.priority).collect();
    levels.sort_unstable();
    levels.dedup();
    levels
}

/// The endpoints, one group per priority level, lowest (tried first) first.
fn load_assignment(cluster: &str, service: &Service, per_host_tls: bool) -> ClusterLoadAssignment {
    // With endpoints on several hosts the route's `auto_host_rewrite` sets `Host` from the
    // endpoint's hostname, which is the bare DNS name unless given: give `host:port` when the
    // port is not the scheme's default, as the filter does for a single host. (A
    // MeshExternalService's upstream gets the bare address, as Kuma's.)
    let several_hosts = service.matched.is_none() && distinct_hosts(service).len() > 1;
    let default_port = if service.tls.is_some() { 443 } else { 80 };
    let endpoints = priority_levels(service)
        .into_iter()
        .map(|priority| LocalityLbEndpoints {
            priority,
            lb_endpoints: lb_endpoints(
                service,
                priority,
                several_hosts,
                default_port,
                per_host_tls,
            ),
        })
        .collect();
    ClusterLoadAssignment {
        cluster_name: cluster.to_string(),
        endpoints,
    }
}

fn lb_endpoints(
    service: &Service,
    priority: u32,
    several_hosts: bool,
    default_port: u16,
    per_host_tls: bool,
) -> Vec<LbEndpoint> {
    service
        .endpoints
        .iter()
        .filter(|e| e.priority == priority)
        .map(|e| LbEndpoint {
            endpoint: Endpoint {
                address: Address::new(e.address.bare_host(), e.address.port),
                // `auto_host_rewrite` takes a MeshExternalService's `Host` from here, an
                // IP's too (a STATIC endpoint has no hostname of its own).
                hostname: if service.matched.is_some() {
                    Some(e.address.bare_host())
                } else {
                    (several_hosts && e.address.port != default_port).then(|| e.address.to_string())
                },
            },
            metadata: per_host_tls.then(|| Metadata {
                filter_metadata: Map::of(
                    "envoy.transport_socket_match",
                    Map::of(HOST_MATCH_KEY, e.address.host.to_string()),
                ),
            }),
        })
        .collect()
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
    dynamic_forward_proxy(PASSTHROUGH)
}

/// The cluster of a service this Dataplane may not reach: its name, so that routes and
/// listeners that name it stay valid, and no endpoint, no TLS and no certificate. The filter
/// refuses its requests first (`not-permitted`); a connection that reaches it gets nothing.
pub fn refused(service: &Service) -> Cluster {
    let cluster_name = name(service);
    Cluster {
        discovery_type: Some(DiscoveryType::Static),
        connect_timeout: CONNECT_TIMEOUT,
        load_assignment: Some(ClusterLoadAssignment {
            cluster_name: cluster_name.clone(),
            endpoints: Vec::new(),
        }),
        name: cluster_name,
        ..Cluster::default()
    }
}

/// A cluster that connects to the name a request (its `Host`) or a connection (its SNI) gives,
/// resolved in the shared DNS cache.
pub fn dynamic_forward_proxy(name: &str) -> Cluster {
    Cluster {
        name: name.to_string(),
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
