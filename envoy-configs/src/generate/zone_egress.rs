//! The ZoneEgress's Envoy (`--zone-egress NAME`), as Kuma's egress generator makes it
//! (`pkg/xds/generator/egress`): one listener on the ZoneEgress's `networking.address:port`,
//! which reads the SNI (`tls_inspector`) and has one filter chain per service of the mesh,
//! picked by the SNI the sidecars present for it ([`names::egress_sni`]). Each chain ends TLS
//! with the egress's certificate and takes only clients with a certificate of the mesh CA,
//! then the RBAC of who may reach the service ([`rbac`]: the traffic permissions, by the
//! client certificate's URI SANs, never by anything the client says), then an HTTP
//! connection manager (an HTTP service) or
//! `tcp_proxy` to the service's cluster, which originates TLS to the real host as any
//! cluster of `extsvc` does. An unknown SNI matches no chain: the connection is closed.
//!
//! What the sidecar's policies did (timeouts, retries, faults, rate limits) is not done again;
//! the clusters' policies (circuit breakers, health checks) are here, with the endpoints, as
//! Kuma places them.

use std::net::{IpAddr, SocketAddr};

use external_service_model::catalog::Service;
use external_service_model::resource::{Resource, ZoneEgressSpec};
use external_service_model::traffic_permission::Permissions;

use crate::envoy::{
    Extension, FilterChain, FilterChainMatch, HttpFilter, HttpFilterConfig, Inspector, Listener,
    ListenerFilterConfig, NetworkFilter, NetworkFilterConfig, Router, TcpProxy,
    UpstreamConnectMode, VirtualHost,
};
use crate::role;

use super::mesh_tls::MeshTls;
use super::{access_log, cluster, http, listener, names, rbac, Context, Error};

/// What the egress holds from a client before its service's upstream is connected: a TLS
/// client hello, or a first request.
const EARLY_DATA_BYTES: u32 = 64 * 1024;

/// Kuma's name for the egress's listener.
pub fn listener_name(address: SocketAddr) -> String {
    format!("egress:{address}")
}

/// The egress's listener, where it binds: `networking.address`, which must be an IP; in a
/// pod, every address on its port (the pods of its Deployment share the address, their
/// Service's).
pub fn listener_of(
    ctx: &Context<'_>,
    tls: &MeshTls,
    (resource, egress): (&Resource, &ZoneEgressSpec),
) -> Result<Listener, Error> {
    let ip: IpAddr = egress.networking.address.parse().map_err(|_| {
        Error::Proxy(role::fault(
            resource,
            "networking.address",
            "the egress listens there, so it must be an IP address (sidecars may reach it by \
             a name of another ZoneEgress resource)",
        ))
    })?;
    let port = u16::try_from(egress.networking.port).unwrap_or_default();
    let bind = match ctx.options.in_pod {
        true => IpAddr::from([0, 0, 0, 0]),
        false => ip,
    };
    let address = SocketAddr::new(bind, port);
    let name = listener_name(address);
    let permissions = Permissions::of_mesh(ctx.resources, ctx.mesh());
    Ok(Listener {
        name: name.clone(),
        address: address.into(),
        listener_filters: vec![Extension {
            name: "envoy.filters.listener.tls_inspector",
            typed_config: ListenerFilterConfig::TlsInspector(Inspector {}),
        }],
        filter_chains: ctx
            .catalog
            .services
            .iter()
            .map(|service| chain(ctx, tls, &permissions, &name, service))
            .collect(),
        access_log: access_log::egress_connection(&name),
        ..Listener::default()
    })
}

/// The chain of one service: picked by its SNI, mTLS ended, who may reach it, then to its
/// cluster.
fn chain(
    ctx: &Context<'_>,
    tls: &MeshTls,
    permissions: &Permissions,
    listener: &str,
    service: &Service,
) -> FilterChain {
    let logged = names::logged(service);
    let stat_prefix = format!("egress_{}", listener::stat_prefix(&cluster::name(service)));
    let to_service = if service.protocol.is_http() {
        http::logged_connection_manager(
            ctx,
            (listener, access_log::egress_http(listener, &logged)),
            &stat_prefix,
            vec![VirtualHost {
                name: cluster::name(service),
                domains: vec!["*".to_string()],
                routes: http::egress_routes(ctx, service),
            }],
            vec![router()],
        )
    } else {
        Extension {
            name: "envoy.filters.network.tcp_proxy",
            typed_config: NetworkFilterConfig::TcpProxy(TcpProxy {
                stat_prefix: stat_prefix.clone(),
                cluster: cluster::name(service),
                // The listener's line tells the connection.
                access_log: Vec::new(),
                // A client refused before its first byte never has the service dialled.
                upstream_connect_mode: Some(UpstreamConnectMode::OnDownstreamData),
                max_early_data_bytes: Some(EARLY_DATA_BYTES),
                ..TcpProxy::default()
            }),
        }
    };
    let grants = permissions.grants(service.kind, &service.name);
    let who_may = Extension {
        name: "envoy.filters.network.rbac",
        typed_config: NetworkFilterConfig::Rbac(rbac::rules(ctx.mesh(), &stat_prefix, &grants)),
    };
    let filters: Vec<NetworkFilter> = vec![who_may, to_service];
    FilterChain {
        name: Some(logged),
        filter_chain_match: Some(FilterChainMatch {
            server_names: vec![names::egress_sni(ctx.resources, ctx.mesh(), service)],
            transport_protocol: Some("tls"),
            ..FilterChainMatch::default()
        }),
        filters,
        transport_socket: Some(tls.at_egress()),
    }
}

fn router() -> HttpFilter {
    Extension {
        name: "envoy.filters.http.router",
        typed_config: HttpFilterConfig::Router(Router {}),
    }
}
