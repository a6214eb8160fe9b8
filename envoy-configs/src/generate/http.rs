//! The HTTP connection manager and its routes. The filter rewrites `:authority` to the
//! service's real authority, so one virtual host per service, matching exactly that, routes it.

use external_service_model::catalog::{Catalog, Service};
use external_service_model::contract::{CONNECT_DENIAL, DENIED_HEADER, UPSTREAM_FAILURE_HEADER};

use crate::envoy::{
    AccessLogFilter, AccessLogFilterConfig, Action, CelExpressionFilter, DataSource,
    DirectResponseAction, Duration, Extension, HeaderValue, HeaderValueOption,
    HttpConnectionManager, HttpFilter, HttpFilterConfig, LocalReplyConfig, Map, NetworkFilter,
    NetworkFilterConfig, ResponseFlagFilter, ResponseMapper, Route, RouteAction,
    RouteConfiguration, RouteMatch, Router, SubstitutionFormatString, UpgradeConfig, VirtualHost,
};
use crate::policy::KINDS;

use super::{access_log, cluster, wasm, Context};

/// The HCM network filter.
pub fn connection_manager(
    ctx: &Context<'_>,
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
                // From xDS files, a route may name a cluster Envoy has yet to read (see xds).
                validate_clusters: ctx.options.xds_dir.is_some().then_some(false),
            },
            http_filters,
            // Without it Envoy answers CONNECT itself (403) before the filter can; no route
            // tunnels: the only CONNECT routes refuse (`all`).
            upgrade_configs: vec![UpgradeConfig {
                upgrade_type: "CONNECT",
            }],
            local_reply_config: local_replies(ctx.catalog),
        }),
    }
}

/// What Envoy says in the replies it makes itself. A 503 for a failed upstream connection
/// says why (a TLS verification error, say) in `UPSTREAM_FAILURE_HEADER`, not only in the
/// access log, and so does one with no endpoint to send to (the host did not resolve). A
/// proxied URL Envoy's HTTP/1 parser refuses, as it refuses a host with `_`, gets a body that
/// names the dotted form of a Kuma service name.
fn local_replies(catalog: &Catalog) -> LocalReplyConfig {
    let flag = |flag| AccessLogFilter::ResponseFlagFilter(ResponseFlagFilter { flags: vec![flag] });
    LocalReplyConfig {
        mappers: vec![
            ResponseMapper {
                filter: flag("UF"),
                headers_to_add: vec![header(
                    UPSTREAM_FAILURE_HEADER,
                    "%UPSTREAM_TRANSPORT_FAILURE_REASON%",
                )],
                body_format_override: None,
            },
            ResponseMapper {
                filter: flag("UH"),
                headers_to_add: vec![header(UPSTREAM_FAILURE_HEADER, NO_ENDPOINT)],
                body_format_override: None,
            },
            ResponseMapper {
                // Only Envoy's own replies and refusals run it, no forwarded request.
                filter: AccessLogFilter::ExtensionFilter(Extension {
                    name: "envoy.access_loggers.extension_filters.cel",
                    typed_config: AccessLogFilterConfig::Cel(CelExpressionFilter {
                        expression: "response.code_details == 'http1.invalid_url'".to_string(),
                    }),
                }),
                headers_to_add: Vec::new(),
                body_format_override: Some(SubstitutionFormatString::TextFormat(invalid_url_body(
                    catalog,
                ))),
            },
        ],
    }
}

/// `UPSTREAM_FAILURE_HEADER` of a 503 `no healthy upstream`: a STRICT_DNS cluster whose hosts
/// did not resolve has no endpoint; so has one whose endpoints all failed their health checks
/// with a `healthyPanicThreshold` of 0.
const NO_ENDPOINT: &str =
    "no endpoint: the service's host did not resolve (DNS), or every endpoint is unhealthy";

/// The body of Envoy's 400 `http1.invalid_url` (a substitution format: `%` doubled), with a
/// service of the catalog whose name holds `_` as the example.
fn invalid_url_body(catalog: &Catalog) -> String {
    let name = catalog
        .services
        .iter()
        .map(|s| s.name.to_ascii_lowercase())
        .find(|n| n.contains('_'))
        .unwrap_or_else(|| "my_svc".to_string());
    format!(
        "Envoy's HTTP/1 parser refused the request's URL: a proxied URL's host (http_proxy, \
         curl -x) may hold only letters, digits, '-' and '.', not '_'.\nWrite a service name's \
         '_' as '.' (http://{dotted}.mesh/ reaches {name}.mesh), or send the name in a Host \
         header to this listener.\n",
        dotted = name.replace('_', "."),
    )
    .replace('%', "%%")
}

fn header(key: &str, value: &str) -> HeaderValueOption {
    HeaderValueOption {
        header: HeaderValue {
            key: key.to_string(),
            value: value.to_string(),
        },
        append_action: None,
    }
}

/// The filter, the filters that some HTTP service's policies need (inert here: each service's
/// routes turn them on), the dynamic forward proxy when passthrough is on, the router.
pub fn filters(ctx: &Context<'_>, bound: Option<&str>, passthrough: bool) -> Vec<HttpFilter> {
    let mut filters = vec![wasm::http_filter(ctx, bound)];
    filters.extend(policy_filters(ctx));
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

/// Each kind's filter, in the registry's order, when some HTTP service has that kind.
fn policy_filters(ctx: &Context<'_>) -> Vec<HttpFilter> {
    KINDS
        .iter()
        .filter_map(|slice| {
            ctx.catalog
                .services
                .iter()
                .filter(|s| s.protocol.is_http())
                .find_map(|s| ctx.policies.of(ctx.mesh(), &s.name).get(slice.kind))
                .and_then(|policy| policy.conf.http_filter())
        })
        .collect()
}

/// Every path, in a route of this name; CONNECT first gets the refusal that says what to do
/// instead.
fn all(
    name: Option<&str>,
    action: Action,
    typed_per_filter_config: Option<Map<HttpFilterConfig>>,
) -> Vec<Route> {
    vec![
        Route {
            name: None,
            route_match: RouteMatch::ConnectMatcher {},
            action: Action::DirectResponse(DirectResponseAction {
                status: 405,
                body: DataSource::InlineString(CONNECT_REFUSAL.to_string()),
            }),
            response_headers_to_add: vec![header(DENIED_HEADER, CONNECT_DENIAL)],
            typed_per_filter_config: None,
        },
        Route {
            name: name.map(str::to_string),
            route_match: RouteMatch::Prefix("/".to_string()),
            action,
            response_headers_to_add: Vec::new(),
            typed_per_filter_config,
        },
    ]
}

const CONNECT_REFUSAL: &str = "CONNECT (https_proxy) is not served here: send plain HTTP through \
    the proxy (http_proxy=http://...), and Envoy originates TLS to the service; an app that \
    speaks TLS itself connects to a tcp service's listener (a Dataplane outbound)\n";

/// The route to a service's cluster, named after the service (the access log's
/// `external_service`), with the options' timeout for the whole upstream answer (504 `UT` past
/// it); the service's policies set the rest through their hooks. With endpoints on several
/// hosts, `Host` follows the endpoint chosen; a service routed by its `.mesh` name gives the
/// upstream its real authority back.
pub fn routes(ctx: &Context<'_>, service: &Service) -> Vec<Route> {
    let auto_host_rewrite = cluster::distinct_hosts(service).len() > 1;
    let mut route = RouteAction {
        cluster: cluster::name(&service.name),
        timeout: Some(Duration(ctx.options.route_timeout)),
        idle_timeout: None,
        max_stream_duration: None,
        retry_policy: None,
        auto_host_rewrite,
        host_rewrite_literal: service.host_rewrite.clone().filter(|_| !auto_host_rewrite),
    };
    let mut filter_config = Vec::new();
    for policy in ctx.policies.of(ctx.mesh(), &service.name).configurers() {
        policy.route(service, &mut route);
        policy.route_filters(&mut filter_config);
    }
    all(
        Some(&service.name),
        Action::Route(route),
        (!filter_config.is_empty()).then_some(Map(filter_config)),
    )
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
            routes: routes(ctx, service),
        })
        .collect();
    hosts.push(if ctx.catalog.passthrough {
        VirtualHost {
            name: cluster::PASSTHROUGH.to_string(),
            domains: vec!["*".to_string()],
            routes: all(None, Action::Route(RouteAction {
                cluster: cluster::PASSTHROUGH.to_string(),
                timeout: None,
                idle_timeout: None,
                max_stream_duration: None,
                retry_policy: None,
                auto_host_rewrite: false,
                host_rewrite_literal: None,
            }), None),
        }
    } else {
        let body = format!(
            "the host is not declared by any ExternalService of mesh {:?}, and the mesh's passthrough is off\n",
            ctx.mesh()
        );
        VirtualHost {
            name: "undeclared".to_string(),
            domains: vec!["*".to_string()],
            routes: all(None, Action::DirectResponse(DirectResponseAction {
                status: 403,
                body: DataSource::InlineString(body),
            }), None),
        }
    });
    hosts
}

/// A listener bound to one service: everything goes to its cluster.
pub fn bound_virtual_hosts(ctx: &Context<'_>, service: &Service) -> Vec<VirtualHost> {
    vec![VirtualHost {
        name: cluster::name(&service.name),
        domains: vec!["*".to_string()],
        routes: routes(ctx, service),
    }]
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use crate::generate::test_support::{assert_cases, service, yaml, yaml_eliding, Fixture};

    const PASSTHROUGH_OFF: &str =
        "type: Mesh\nname: default\nnetworking: {outbound: {passthrough: false}}\n---\n";

    #[test]
    fn virtual_hosts_and_routes() {
        let httpbin = service("httpbin", "http", "{address: httpbin.test:80}");
        let two_hosts = [
            PASSTHROUGH_OFF,
            &service("redis", "tcp", "{address: redis.test:6379}"),
            "type: ExternalService\nmesh: default\nname: api-eu\n\
             tags: {kuma.io/service: api, kuma.io/protocol: http}\n\
             networking: {address: eu.api.test:8080}\n---\n",
            "type: ExternalService\nmesh: default\nname: api-us\n\
             tags: {kuma.io/service: api, kuma.io/protocol: http}\n\
             networking: {address: us.api.test:8080}\n",
        ]
        .concat();
        let f = Fixture::new(&httpbin);
        let mut no_timeout = Fixture::new(&httpbin);
        no_timeout.options.route_timeout = std::time::Duration::ZERO;
        assert_cases(&[
            (
                "the outbound listener: a service by its authority, then passthrough",
                yaml_eliding(
                    &outbound_virtual_hosts(&f.ctx()),
                    &["/0/routes/0", "/1/routes"],
                ),
                "
- name: external_service_httpbin
  domains:
  - httpbin.test
  routes:
  - <elided>
  - name: httpbin
    match:
      prefix: /
    route:
      cluster: external_service_httpbin
      timeout: 15s
- name: passthrough
  domains:
  - '*'
  routes: <elided>
",
            ),
            (
                "passthrough on: everything else goes to the passthrough cluster",
                yaml(&outbound_virtual_hosts(&f.ctx())[1].routes[1]),
                "
match:
  prefix: /
route:
  cluster: passthrough
",
            ),
            (
                "passthrough off: HTTP services only, Host by endpoint, then a 403",
                yaml_eliding(
                    &outbound_virtual_hosts(&Fixture::new(&two_hosts).ctx()),
                    &["/0/routes/0", "/1/routes/0"],
                ),
                "
- name: external_service_api
  domains:
  - eu.api.test:8080
  routes:
  - <elided>
  - name: api
    match:
      prefix: /
    route:
      cluster: external_service_api
      timeout: 15s
      auto_host_rewrite: true
- name: undeclared
  domains:
  - '*'
  routes:
  - <elided>
  - match:
      prefix: /
    direct_response:
      status: 403
      body:
        inline_string: |
          the host is not declared by any ExternalService of mesh \"default\", and the mesh's passthrough is off
",
            ),
            (
                "a listener bound to one service",
                yaml_eliding(
                    &bound_virtual_hosts(&f.ctx(), f.service("httpbin")),
                    &["/0/routes"],
                ),
                "
- name: external_service_httpbin
  domains:
  - '*'
  routes: <elided>
",
            ),
            (
                "every virtual host refuses CONNECT first, saying what to do instead",
                yaml(&routes(&f.ctx(), f.service("httpbin"))[0]),
                "
match:
  connect_matcher: {}
direct_response:
  status: 405
  body:
    inline_string: |
      CONNECT (https_proxy) is not served here: send plain HTTP through the proxy (http_proxy=http://...), and Envoy originates TLS to the service; an app that speaks TLS itself connects to a tcp service's listener (a Dataplane outbound)
response_headers_to_add:
- header:
    key: x-external-service-denied
    value: connect-not-served
",
            ),
            (
                "a timeout of 0 turns it off",
                yaml(&routes(&no_timeout.ctx(), no_timeout.service("httpbin"))[1].action),
                "
route:
  cluster: external_service_httpbin
  timeout: 0s
",
            ),
        ]);
    }

    #[test]
    fn connection_manager_and_its_filters() {
        let f = Fixture::new(&service("httpbin", "http", "{address: httpbin.test:80}"));
        let hcm = connection_manager(
            &f.ctx(),
            "l",
            "l_stats",
            Vec::new(),
            filters(&f.ctx(), None, true),
        );
        let names: Vec<&str> = filters(&f.ctx(), None, false)
            .iter()
            .map(|filter| filter.name)
            .collect();
        assert_cases(&[
            (
                "passthrough on: the filter, the dynamic forward proxy, the router",
                yaml_eliding(
                    &hcm,
                    &[
                        "/typed_config/access_log/0/typed_config",
                        "/typed_config/http_filters/0/typed_config",
                    ],
                ),
                "
name: envoy.filters.network.http_connection_manager
typed_config:
  '@type': type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
  stat_prefix: l_stats
  access_log:
  - name: envoy.access_loggers.stdout
    typed_config: <elided>
  route_config:
    name: l
    virtual_hosts: []
  http_filters:
  - name: external_service
    typed_config: <elided>
  - name: envoy.filters.http.dynamic_forward_proxy
    typed_config:
      '@type': type.googleapis.com/envoy.extensions.filters.http.dynamic_forward_proxy.v3.FilterConfig
      dns_cache_config:
        name: passthrough
        dns_lookup_family: V4_PREFERRED
  - name: envoy.filters.http.router
    typed_config:
      '@type': type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  upgrade_configs:
  - upgrade_type: CONNECT
  local_reply_config:
    mappers:
    - filter:
        response_flag_filter:
          flags:
          - UF
      headers_to_add:
      - header:
          key: x-external-service-upstream-failure
          value: '%UPSTREAM_TRANSPORT_FAILURE_REASON%'
    - filter:
        response_flag_filter:
          flags:
          - UH
      headers_to_add:
      - header:
          key: x-external-service-upstream-failure
          value: 'no endpoint: the service''s host did not resolve (DNS), or every endpoint is unhealthy'
    - filter:
        extension_filter:
          name: envoy.access_loggers.extension_filters.cel
          typed_config:
            '@type': type.googleapis.com/envoy.extensions.access_loggers.filters.cel.v3.ExpressionFilter
            expression: response.code_details == 'http1.invalid_url'
      body_format_override:
        text_format: |
          Envoy's HTTP/1 parser refused the request's URL: a proxied URL's host (http_proxy, curl -x) may hold only letters, digits, '-' and '.', not '_'.
          Write a service name's '_' as '.' (http://my.svc.mesh/ reaches my_svc.mesh), or send the name in a Host header to this listener.
",
            ),
            (
                "passthrough off: the filter and the router",
                yaml(&names),
                "
- external_service
- envoy.filters.http.router
",
            ),
        ]);
    }
}
