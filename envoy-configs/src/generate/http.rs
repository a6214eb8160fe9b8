//! The HTTP connection manager and its routes. The filter rewrites `:authority` to the
//! service's real authority, so one virtual host per service, matching exactly that, routes it.

use external_service_model::catalog::Service;

use crate::envoy::{
    Action, DataSource, DirectResponseAction, Extension, HttpConnectionManager, HttpFilter,
    HttpFilterConfig, NetworkFilter, NetworkFilterConfig, Route, RouteAction, RouteConfiguration,
    RouteMatch, Router, Seconds, VirtualHost,
};

use super::{access_log, cluster, wasm, Context};

/// The HCM network filter.
pub fn connection_manager(
    listener: &str,
    stat_prefix: &str,
    virtual_hosts: Vec<VirtualHost>,
    http_filters: Vec<HttpFilter>,
) -> NetworkFilter {
    Extension {
        name: "envoy.filters.network.http_connection_manager",
        typed_config: NetworkFilterConfig::HttpConnectionManager(HttpConnectionManager {
            stat_prefix: stat_prefix.to_string(),
            access_log: access_log::http(listener),
            route_config: RouteConfiguration {
                name: listener.to_string(),
                virtual_hosts,
            },
            http_filters,
        }),
    }
}

/// The filter, the dynamic forward proxy when passthrough is on, the router.
pub fn filters(ctx: &Context<'_>, bound: Option<&str>, passthrough: bool) -> Vec<HttpFilter> {
    let mut filters = vec![wasm::http_filter(ctx, bound)];
    if passthrough {
        filters.push(Extension {
            name: "envoy.filters.http.dynamic_forward_proxy",
            typed_config: HttpFilterConfig::DynamicForwardProxy(cluster::dns_cache()),
        });
    }
    filters.push(Extension {
        name: "envoy.filters.http.router",
        typed_config: HttpFilterConfig::Router(Router {}),
    });
    filters
}

/// Every path.
fn all(action: Action) -> Route {
    Route {
        route_match: RouteMatch {
            prefix: "/".to_string(),
        },
        action,
    }
}

/// The route to a service's cluster, with the options' timeout for the whole upstream answer
/// (504 `UT` past it). With endpoints on several hosts, `Host` follows the endpoint chosen.
pub fn route(ctx: &Context<'_>, service: &Service) -> Route {
    all(Action::Route(RouteAction {
        cluster: cluster::name(&service.name),
        timeout: Some(Seconds(ctx.options.route_timeout.as_secs())),
        auto_host_rewrite: cluster::distinct_hosts(service).len() > 1,
    }))
}

/// One virtual host per HTTP service of the catalog, by the authority the filter writes, then
/// the default: passthrough, or a 403 that holds even without the filter.
pub fn outbound_virtual_hosts(ctx: &Context<'_>) -> Vec<VirtualHost> {
    let mut hosts: Vec<VirtualHost> = ctx
        .catalog
        .services
        .iter()
        .filter(|s| s.protocol.is_http())
        .map(|service| VirtualHost {
            name: cluster::name(&service.name),
            domains: vec![service.authority.clone()],
            routes: vec![route(ctx, service)],
        })
        .collect();
    hosts.push(if ctx.catalog.passthrough {
        VirtualHost {
            name: cluster::PASSTHROUGH.to_string(),
            domains: vec!["*".to_string()],
            routes: vec![all(Action::Route(RouteAction {
                cluster: cluster::PASSTHROUGH.to_string(),
                timeout: None,
                auto_host_rewrite: false,
            }))],
        }
    } else {
        let body = format!(
            "the host is not declared by any ExternalService of mesh {:?}, and the mesh's passthrough is off\n",
            ctx.mesh()
        );
        VirtualHost {
            name: "undeclared".to_string(),
            domains: vec!["*".to_string()],
            routes: vec![all(Action::DirectResponse(DirectResponseAction {
                status: 403,
                body: DataSource::InlineString(body),
            }))],
        }
    });
    hosts
}

/// A listener bound to one service: everything goes to its cluster.
pub fn bound_virtual_hosts(ctx: &Context<'_>, service: &Service) -> Vec<VirtualHost> {
    vec![VirtualHost {
        name: cluster::name(&service.name),
        domains: vec!["*".to_string()],
        routes: vec![route(ctx, service)],
    }]
}
