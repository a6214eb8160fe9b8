//! Listeners: `outbound_http`, the HTTP proxy apps use, and one per Dataplane outbound.

use std::net::SocketAddr;

use serde_json::{json, Value};

use super::{access_log, cluster, http, Context, Error, Outbound};

pub const OUTBOUND_HTTP: &str = "outbound_http";

pub fn socket_address(address: SocketAddr) -> Value {
    json!({"socket_address": {
        "address": address.ip().to_string(),
        "port_value": address.port(),
    }})
}

/// The address a generated listener binds, read back.
pub fn address_of(listener: &Value) -> Option<SocketAddr> {
    let sa = &listener["address"]["socket_address"];
    let ip = sa["address"].as_str()?.parse().ok()?;
    let port = u16::try_from(sa["port_value"].as_u64()?).ok()?;
    Some(SocketAddr::new(ip, port))
}

fn listener(name: &str, address: SocketAddr, network_filter: Value) -> Value {
    json!({
        "name": name,
        "address": socket_address(address),
        "filter_chains": [{"filters": [network_filter]}],
    })
}

/// The HTTP proxy listener (`http_proxy=http://127.0.0.1:15001`, or a Host header).
pub fn outbound_http(ctx: &Context<'_>) -> Result<Value, Error> {
    let passthrough = ctx.catalog.passthrough;
    let hcm = http::connection_manager(
        OUTBOUND_HTTP,
        OUTBOUND_HTTP,
        http::outbound_virtual_hosts(ctx)?,
        http::filters(ctx, None, passthrough),
    );
    Ok(listener(OUTBOUND_HTTP, ctx.options.listen, hcm))
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
pub fn outbound(ctx: &Context<'_>, outbound: &Outbound<'_>) -> Result<Value, Error> {
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
        json!({
            "name": "envoy.filters.network.tcp_proxy",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
                "stat_prefix": stat_prefix(&name),
                "cluster": cluster::name(&service.name),
                "access_log": access_log::tcp(&name, &service.name),
            },
        })
    };
    Ok(listener(&name, outbound.address, filter))
}
