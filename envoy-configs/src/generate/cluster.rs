//! Clusters: one per `kuma.io/service`, its endpoints, and the passthrough cluster.

use std::net::SocketAddr;

use external_service_model::address::Host;
use external_service_model::catalog::Service;
use serde_json::{json, Map, Value};

use super::{protocol, tls, Context, Error};

pub const CONNECT_TIMEOUT: &str = "5s";
/// Resolve both families, use IPv4 when there is one: loopback test servers and most hosts.
pub const DNS_LOOKUP_FAMILY: &str = "V4_PREFERRED";
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

pub struct Built {
    pub cluster: Value,
    pub inline_private_key: bool,
}

/// A service's cluster: STRICT_DNS for host names, STATIC for IPs; TLS origination and HTTP/2
/// as the service asks.
pub fn service_cluster(ctx: &Context<'_>, service: &Service) -> Result<Built, Error> {
    let name = name(&service.name);
    let by_ip = endpoints_by_ip(service)?;
    let hosts = distinct_hosts(service);
    let per_host_tls = service
        .tls
        .as_ref()
        .is_some_and(|t| t.server_name.is_none())
        && hosts.len() > 1;

    let mut cluster = Map::new();
    cluster.insert("name".into(), json!(name));
    cluster.insert(
        "type".into(),
        json!(if by_ip { "STATIC" } else { "STRICT_DNS" }),
    );
    cluster.insert("connect_timeout".into(), json!(CONNECT_TIMEOUT));
    if !by_ip {
        cluster.insert("dns_lookup_family".into(), json!(DNS_LOOKUP_FAMILY));
    }
    cluster.insert(
        "load_assignment".into(),
        load_assignment(&name, service, per_host_tls),
    );
    if service.protocol.is_http2() {
        cluster.insert(
            "typed_extension_protocol_options".into(),
            protocol::http2_options(),
        );
    }
    let mut inline_private_key = false;
    if let Some(settings) = &service.tls {
        let mut sockets = Vec::new();
        for host in &hosts {
            let built = tls::upstream(ctx, service, settings, host)?;
            inline_private_key |= built.inline_private_key;
            sockets.push((host, built.transport_socket));
        }
        if per_host_tls {
            let matches: Vec<Value> = sockets
                .iter()
                .map(|(host, socket)| {
                    json!({
                        "name": host.to_string(),
                        "match": {HOST_MATCH_KEY: host.to_string()},
                        "transport_socket": socket,
                    })
                })
                .collect();
            cluster.insert("transport_socket_matches".into(), Value::Array(matches));
        }
        // With per-host matches too: an endpoint that matches none still gets TLS.
        if let Some((_, socket)) = sockets.into_iter().next() {
            cluster.insert("transport_socket".into(), socket);
        }
    }
    Ok(Built {
        cluster: Value::Object(cluster),
        inline_private_key,
    })
}

/// Whether the endpoints are IPs (STATIC) rather than names (STRICT_DNS); never a mix.
fn endpoints_by_ip(service: &Service) -> Result<bool, Error> {
    let ips = service
        .endpoints
        .iter()
        .filter(|e| e.address.host.is_ip())
        .count();
    match ips {
        0 => Ok(false),
        n if n == service.endpoints.len() => Ok(true),
        _ => Err(Error::MixedEndpoints {
            service: service.name.clone(),
        }),
    }
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

fn load_assignment(cluster: &str, service: &Service, per_host_tls: bool) -> Value {
    // With endpoints on several hosts the route's `auto_host_rewrite` sets `Host` from the
    // endpoint's hostname, which is the bare DNS name unless given: give `host:port` when the
    // port is not the scheme's default, as the filter does for a single host.
    let several_hosts = distinct_hosts(service).len() > 1;
    let default_port = if service.tls.is_some() { 443 } else { 80 };
    let lb_endpoints: Vec<Value> = service
        .endpoints
        .iter()
        .map(|e| {
            let mut lb = json!({
                "endpoint": {"address": {"socket_address": {
                    "address": e.address.bare_host(),
                    "port_value": e.address.port,
                }}},
            });
            if several_hosts && e.address.port != default_port {
                lb["endpoint"]["hostname"] = json!(e.address.to_string());
            }
            if per_host_tls {
                lb["metadata"] = json!({"filter_metadata": {
                    "envoy.transport_socket_match": {HOST_MATCH_KEY: e.address.host.to_string()},
                }});
            }
            lb
        })
        .collect();
    json!({
        "cluster_name": cluster,
        "endpoints": [{"lb_endpoints": lb_endpoints}],
    })
}

/// The DNS cache shared by the dynamic forward proxy filter and cluster.
pub fn dns_cache() -> Value {
    json!({
        "name": PASSTHROUGH,
        "dns_lookup_family": DNS_LOOKUP_FAMILY,
    })
}

/// Undeclared plain-HTTP hosts, when the mesh's passthrough is on.
pub fn passthrough() -> Value {
    json!({
        "name": PASSTHROUGH,
        "connect_timeout": CONNECT_TIMEOUT,
        "lb_policy": "CLUSTER_PROVIDED",
        "cluster_type": {
            "name": "envoy.clusters.dynamic_forward_proxy",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.clusters.dynamic_forward_proxy.v3.ClusterConfig",
                "dns_cache_config": dns_cache(),
            },
        },
    })
}

/// Envoy's c-ares resolver pointed at one server only (bootstrap level: every cluster and the
/// DNS cache use it).
pub fn dns_resolver(server: SocketAddr) -> Value {
    json!({
        "name": "envoy.network.dns_resolver.cares",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.network.dns_resolver.cares.v3.CaresDnsResolverConfig",
            "resolvers": [{"socket_address": {
                "address": server.ip().to_string(),
                "port_value": server.port(),
            }}],
            "use_resolvers_as_fallback": false,
            "dns_resolver_options": {
                "use_tcp_for_dns_lookups": false,
                "no_default_search_domain": true,
            },
        },
    })
}
