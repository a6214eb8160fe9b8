//! Listeners: `outbound_http`, the HTTP proxy apps use, and one per Dataplane outbound (the
//! transparent proxy's listeners are in [`super::transparent`]).

use std::net::SocketAddr;

use external_service_model::catalog::Service;

use crate::envoy::{
    Address, Extension, FilterChain, Listener, NetworkFilter, NetworkFilterConfig, TcpProxy,
};

use super::{access_log, cluster, http, names, Context, Outbound};

pub const OUTBOUND_HTTP: &str = "outbound_http";

pub fn listener(name: &str, address: SocketAddr, network_filter: NetworkFilter) -> Listener {
    listener_of(name, address, vec![network_filter])
}

/// A listener whose one chain has these network filters, in order.
fn listener_of(name: &str, address: SocketAddr, filters: Vec<NetworkFilter>) -> Listener {
    Listener {
        name: name.to_string(),
        address: Address::from(address),
        filter_chains: vec![FilterChain {
            filter_chain_match: None,
            filters,
            ..FilterChain::default()
        }],
        ..Listener::default()
    }
}

/// The HTTP proxy listener (`http_proxy=http://127.0.0.1:15001`, or a Host header).
pub fn outbound_http(ctx: &Context<'_>) -> Listener {
    let passthrough = ctx.catalog.passthrough;
    let hcm = http::connection_manager(
        ctx,
        OUTBOUND_HTTP,
        OUTBOUND_HTTP,
        http::outbound_virtual_hosts(ctx),
        http::filters(ctx, None, passthrough),
    );
    listener(OUTBOUND_HTTP, ctx.options.listen, hcm)
}

/// Kuma's name for an outbound listener.
pub fn outbound_name(address: SocketAddr) -> String {
    format!("outbound:{address}")
}

/// Stat names split on dots and colons: `outbound_127_0_0_1_10000`.
pub fn stat_prefix(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

/// A Dataplane outbound: HTTP services through the filter bound to the service, the others
/// through `tcp_proxy`.
pub fn outbound(ctx: &Context<'_>, outbound: &Outbound<'_>) -> Listener {
    bound(ctx, outbound.address, outbound.service)
}

/// A listener at `address` that reaches only `service`, whatever an HTTP request names; the
/// network filters of the service's policies come first.
pub fn bound(ctx: &Context<'_>, address: SocketAddr, service: &Service) -> Listener {
    let name = outbound_name(address);
    let policies = ctx.policies.of(ctx.mesh(), service);
    let mut filters = Vec::new();
    for policy in policies.configurers() {
        policy.listener(&stat_prefix(&name), &mut filters);
    }
    let filter = if service.protocol.is_http() {
        http::connection_manager(
            ctx,
            &name,
            &stat_prefix(&name),
            http::bound_virtual_hosts(ctx, service),
            http::filters(ctx, Some(service), false),
        )
    } else {
        let mut proxy = TcpProxy {
            stat_prefix: stat_prefix(&name),
            cluster: cluster::name(service),
            access_log: access_log::tcp(&name, &names::logged(service), ctx.source_service),
            idle_timeout: None,
            max_connect_attempts: None,
            ..TcpProxy::default()
        };
        for policy in policies.configurers() {
            policy.tcp_proxy(&mut proxy);
        }
        Extension {
            name: "envoy.filters.network.tcp_proxy",
            typed_config: NetworkFilterConfig::TcpProxy(proxy),
        }
    };
    filters.push(filter);
    listener_of(&name, address, filters)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use crate::generate::test_support::{
        assert_cases, mesh_external_service, part, service, yaml, yaml_eliding, Fixture,
    };
    use external_service_model::resource::Kind;

    const FILTER: &str = "/filter_chains/0/filters/0/typed_config";

    fn outbound_of(f: &Fixture, address: &str, service: &str) -> Listener {
        let address = address.parse().unwrap();
        let service = f.service(service);
        outbound(&f.ctx(), &Outbound { address, service })
    }

    #[test]
    fn listeners() {
        let mut f = Fixture::new(
            &[
                service("httpbin", "http", "{address: httpbin.test:80}"),
                service("kafka", "kafka", "{address: kafka.test:9092}"),
            ]
            .concat(),
        );
        f.options.listen = "[::1]:15001".parse().unwrap();
        let http = outbound_of(&f, "127.0.0.1:10000", "httpbin");
        let tcp = outbound_of(&f, "127.0.0.2:10002", "kafka");
        let filter = |l: &Listener| part(l, "/filter_chains/0/filters/0");
        assert_cases(&[
            (
                "the HTTP proxy apps use",
                yaml_eliding(&outbound_http(&f.ctx()), &[FILTER]),
                "
name: outbound_http
address:
  socket_address:
    address: ::1
    port_value: 15001
filter_chains:
- filters:
  - name: envoy.filters.network.http_connection_manager
    typed_config: <elided>
",
            ),
            (
                "outbounds by Kuma's names",
                yaml(&[&http.name, &tcp.name]),
                "
- outbound:127.0.0.1:10000
- outbound:127.0.0.2:10002
",
            ),
            (
                "an HTTP service's outbound: the connection manager, stats by the listener",
                yaml(&[
                    part(&filter(&http), "/name"),
                    part(&filter(&http), "/typed_config/stat_prefix"),
                ]),
                "
- envoy.filters.network.http_connection_manager
- outbound_127_0_0_1_10000
",
            ),
            (
                "any other service's outbound: tcp_proxy to its cluster",
                yaml_eliding(&filter(&tcp), &["/typed_config/access_log"]),
                "
name: envoy.filters.network.tcp_proxy
typed_config:
  '@type': type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
  stat_prefix: outbound_127_0_0_2_10002
  cluster: external_service_kafka
  access_log: <elided>
",
            ),
        ]);
    }

    #[test]
    fn a_mesh_external_services_outbound_is_bound_to_it() {
        let f = Fixture::new(
            &[
                // An ExternalService of the same name must not be taken for it.
                service("ext", "http", "{address: es.test:80}"),
                mesh_external_service("ext", "http", 8080, "api.test:80"),
                mesh_external_service("db", "tcp", 5432, "db.test:5432"),
            ]
            .concat(),
        );
        let mes = |name: &str| {
            let id = f.catalog.service_id(Kind::MeshExternalService, name);
            &f.catalog.services[id.unwrap()]
        };
        let bound = |address: &str, name: &str| {
            let address = address.parse().unwrap();
            outbound(
                &f.ctx(),
                &Outbound {
                    address,
                    service: mes(name),
                },
            )
        };
        let http = bound("127.0.0.1:10000", "ext");
        let tcp = bound("127.0.0.1:10001", "db");
        let hcm = part(&http, "/filter_chains/0/filters/0/typed_config");
        let wasm_config = part(
            &hcm,
            "/http_filters/0/typed_config/config/configuration/value",
        );
        let plugin: serde_json::Value =
            serde_json::from_str(wasm_config.as_str().unwrap()).unwrap();
        assert_cases(&[
            (
                "HTTP: the route to its cluster only, whatever the request names",
                yaml(&part(&hcm, "/route_config/virtual_hosts/0/name")),
                "external_service_mes_ext\n",
            ),
            (
                "the filter bound to the MeshExternalService",
                yaml(&[&plugin["meshExternalService"], &plugin["service"]]),
                "
- ext
- null
",
            ),
            (
                "tcp: tcp_proxy to its cluster, logged by kind and name",
                yaml(&[
                    part(&tcp, "/filter_chains/0/filters/0/typed_config/cluster"),
                    part(&tcp, "/filter_chains/0/filters/0/typed_config/access_log")
                        .to_string()
                        .contains("\"external_service\":\"MeshExternalService/db\"")
                        .into(),
                ]),
                "
- external_service_mes_db
- true
",
            ),
        ]);
    }

    #[test]
    fn a_connection_rate_goes_first_on_every_listener_bound_to_its_service() {
        let limit = "type: MeshRateLimit\nmesh: default\nname: conns\nspec:\n  \
                     targetRef: {kind: MeshService, name: kafka}\n  \
                     rules:\n  - default: {local: {tcp: {connectionRate: {num: 5, interval: 2s}}}}\n";
        let f = Fixture::new(
            &[
                service("httpbin", "http", "{address: httpbin.test:80}"),
                service("kafka", "kafka", "{address: kafka.test:9092}"),
                limit.to_string(),
            ]
            .concat(),
        );
        let limited = outbound_of(&f, "127.0.0.2:10002", "kafka");
        let other = outbound_of(&f, "127.0.0.1:10000", "httpbin");
        let names = |l: &Listener| {
            part(l, "/filter_chains/0/filters")
                .as_array()
                .unwrap()
                .iter()
                .map(|f| f["name"].clone())
                .collect::<Vec<_>>()
        };
        assert_cases(&[
            (
                "the token bucket, then tcp_proxy",
                yaml(&part(&limited, "/filter_chains/0/filters/0")),
                "
name: envoy.filters.network.local_ratelimit
typed_config:
  '@type': type.googleapis.com/envoy.extensions.filters.network.local_ratelimit.v3.LocalRateLimit
  stat_prefix: outbound_127_0_0_2_10002
  token_bucket:
    max_tokens: 5
    tokens_per_fill: 5
    fill_interval: 2s
",
            ),
            (
                "in that order",
                yaml(&names(&limited)),
                "
- envoy.filters.network.local_ratelimit
- envoy.filters.network.tcp_proxy
",
            ),
            (
                "another service's listener: no limit",
                yaml(&names(&other)),
                "
- envoy.filters.network.http_connection_manager
",
            ),
        ]);
    }
}
