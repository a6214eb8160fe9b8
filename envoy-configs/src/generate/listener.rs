//! Listeners: `outbound_http`, the HTTP proxy apps use, and one per Dataplane outbound.

use std::net::SocketAddr;

use crate::envoy::{
    Address, Extension, FilterChain, Listener, NetworkFilter, NetworkFilterConfig, TcpProxy,
};

use super::{access_log, cluster, http, Context, Outbound};

pub const OUTBOUND_HTTP: &str = "outbound_http";

fn listener(name: &str, address: SocketAddr, network_filter: NetworkFilter) -> Listener {
    Listener {
        name: name.to_string(),
        address: Address::from(address),
        filter_chains: vec![FilterChain {
            filters: vec![network_filter],
        }],
    }
}

/// The HTTP proxy listener (`http_proxy=http://127.0.0.1:15001`, or a Host header).
pub fn outbound_http(ctx: &Context<'_>) -> Listener {
    let passthrough = ctx.catalog.passthrough;
    let hcm = http::connection_manager(
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
fn stat_prefix(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

/// A Dataplane outbound: HTTP services through the filter bound to the service, the others
/// through `tcp_proxy`.
pub fn outbound(ctx: &Context<'_>, outbound: &Outbound<'_>) -> Listener {
    let name = outbound_name(outbound.address);
    let service = outbound.service;
    let filter = if service.protocol.is_http() {
        http::connection_manager(
            &name,
            &stat_prefix(&name),
            http::bound_virtual_hosts(ctx, service),
            http::filters(ctx, Some(&service.name), false),
        )
    } else {
        Extension {
            name: "envoy.filters.network.tcp_proxy",
            typed_config: NetworkFilterConfig::TcpProxy(TcpProxy {
                stat_prefix: stat_prefix(&name),
                cluster: cluster::name(&service.name),
                access_log: access_log::tcp(&name, &service.name),
            }),
        }
    };
    listener(&name, outbound.address, filter)
}
