//! The HTTP connection manager and its routes. The filter rewrites `:authority` to the
//! service's real authority, so one virtual host per service, matching exactly that, routes it.

use std::collections::BTreeMap;

use external_service_model::catalog::Service;
use serde_json::{json, Value};

use super::{access_log, cluster, wasm, Context, Error};

/// The HCM network filter.
pub fn connection_manager(
    listener: &str,
    stat_prefix: &str,
    virtual_hosts: Vec<Value>,
    http_filters: Vec<Value>,
) -> Value {
    json!({
        "name": "envoy.filters.network.http_connection_manager",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
            "stat_prefix": stat_prefix,
            "access_log": access_log::http(listener),
            "route_config": {
                "name": listener,
                "virtual_hosts": virtual_hosts,
            },
            "http_filters": http_filters,
        },
    })
}

/// The filter, the dynamic forward proxy when passthrough is on, the router.
pub fn filters(ctx: &Context<'_>, bound: Option<&str>, passthrough: bool) -> Vec<Value> {
    let mut filters = vec![wasm::http_filter(ctx, bound)];
    if passthrough {
        filters.push(json!({
            "name": "envoy.filters.http.dynamic_forward_proxy",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.dynamic_forward_proxy.v3.FilterConfig",
                "dns_cache_config": cluster::dns_cache(),
            },
        }));
    }
    filters.push(json!({
        "name": "envoy.filters.http.router",
        "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"},
    }));
    filters
}

/// The route to a service's cluster, with the options' timeout for the whole upstream answer
/// (504 `UT` past it). With endpoints on several hosts, `Host` follows the endpoint chosen.
pub fn route(ctx: &Context<'_>, service: &Service) -> Value {
    let mut route = json!({
        "cluster": cluster::name(&service.name),
        "timeout": format!("{}s", ctx.options.route_timeout.as_secs()),
    });
    if cluster::distinct_hosts(service).len() > 1 {
        route["auto_host_rewrite"] = json!(true);
    }
    json!({"match": {"prefix": "/"}, "route": route})
}

/// One virtual host per HTTP service of the catalog, by the authority the filter writes, then
/// the default: passthrough, or a 403 that holds even without the filter.
pub fn outbound_virtual_hosts(ctx: &Context<'_>) -> Result<Vec<Value>, Error> {
    let mut owners: BTreeMap<&str, &str> = BTreeMap::new();
    let mut hosts = Vec::new();
    for service in ctx.catalog.services.iter().filter(|s| s.protocol.is_http()) {
        if let Some(other) = owners.insert(&service.authority, &service.name) {
            return Err(Error::SameAuthority {
                authority: service.authority.clone(),
                services: [other.to_string(), service.name.clone()],
            });
        }
        hosts.push(json!({
            "name": cluster::name(&service.name),
            "domains": [service.authority],
            "routes": [route(ctx, service)],
        }));
    }
    hosts.push(if ctx.catalog.passthrough {
        json!({
            "name": cluster::PASSTHROUGH,
            "domains": ["*"],
            "routes": [{"match": {"prefix": "/"}, "route": {"cluster": cluster::PASSTHROUGH}}],
        })
    } else {
        let body = format!(
            "the host is not declared by any ExternalService of mesh {:?}, and the mesh's passthrough is off\n",
            ctx.mesh()
        );
        json!({
            "name": "undeclared",
            "domains": ["*"],
            "routes": [{
                "match": {"prefix": "/"},
                "direct_response": {"status": 403, "body": {"inline_string": body}},
            }],
        })
    });
    Ok(hosts)
}

/// A listener bound to one service: everything goes to its cluster.
pub fn bound_virtual_hosts(ctx: &Context<'_>, service: &Service) -> Vec<Value> {
    vec![json!({
        "name": cluster::name(&service.name),
        "domains": ["*"],
        "routes": [route(ctx, service)],
    })]
}
