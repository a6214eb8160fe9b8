//! The HTTP connection manager and its routes. The filter rewrites `:authority` to the
//! service's real authority, so one virtual host per service, matching exactly that, routes it.

use external_service_model::catalog::{Catalog, Service};
use external_service_model::contract::{
    CONNECT_DENIAL, DENIED_HEADER, HTTPS_URL_DENIAL, PATH_DENIAL, UPGRADE_DENIAL,
    UPSTREAM_FAILURE_HEADER,
};

use crate::envoy::{
    AccessLog, AccessLogFilter, AccessLogFilterConfig, Action, CelExpressionFilter, CidrRange,
    DataSource, DirectResponseAction, Duration, Empty, Extension, HeaderMatch, HeaderMatcher,
    HeaderValue, HeaderValueOption, HttpConnectionManager, HttpFilter, HttpFilterConfig,
    InternalAddressConfig, LocalReplyConfig, Map, NetworkFilter, NetworkFilterConfig, PathMatch,
    ResponseFlagFilter, ResponseMapper, RetryPolicy, RetryPriorityConfig, Route, RouteAction,
    RouteConfiguration, RouteMatch, Router, StringMatcher, SubstitutionFormatString, UpgradeConfig,
    VirtualHost,
};
use crate::policy::KINDS;

use super::{access_log, cluster, names, wasm, Context, Upstreams};

/// The HCM network filter. It serves no `Upgrade:` request: Envoy refuses each before any
/// filter or route. CONNECT is taken only where a route tunnels it (the passthrough's, for
/// what the filter lets out), off by default, so no other route turns a request into a byte
/// tunnel; a CONNECT the filter lets by to a declared service finds no route; [`refusals`]
/// says why.
pub fn connection_manager(
    ctx: &Context<'_>,
    listener: &str,
    stat_prefix: &str,
    virtual_hosts: Vec<VirtualHost>,
    http_filters: Vec<HttpFilter>,
) -> NetworkFilter {
    logged_connection_manager(
        ctx,
        (listener, access_log::http(listener, ctx.source_service)),
        stat_prefix,
        virtual_hosts,
        http_filters,
    )
}

/// [`connection_manager`] with its own access log (`(listener, log)`: the route
/// configuration is named after the listener).
pub fn logged_connection_manager(
    ctx: &Context<'_>,
    (listener, access_log): (&str, Vec<AccessLog>),
    stat_prefix: &str,
    virtual_hosts: Vec<VirtualHost>,
    http_filters: Vec<HttpFilter>,
) -> NetworkFilter {
    let tunnels = virtual_hosts
        .iter()
        .flat_map(|v| &v.routes)
        .any(|r| matches!(r.route_match.path, PathMatch::ConnectMatcher(_)));
    Extension {
        name: "envoy.filters.network.http_connection_manager",
        typed_config: NetworkFilterConfig::HttpConnectionManager(HttpConnectionManager {
            stat_prefix: stat_prefix.to_string(),
            access_log,
            route_config: RouteConfiguration {
                name: listener.to_string(),
                virtual_hosts,
                // From xDS files, a route may name a cluster Envoy has yet to read (see xds).
                validate_clusters: ctx.options.xds_dir.is_some().then_some(false),
                // Envoy's internal headers that its own cleaning keeps: nobody sets it here
                // (no route rewrites a path), so a client's is dropped.
                internal_only_headers: vec!["x-envoy-original-path".to_string()],
                // Set by Envoy for an external client: its address is not the service's business.
                request_headers_to_remove: vec!["x-envoy-external-address".to_string()],
            },
            http_filters,
            use_remote_address: true,
            skip_xff_append: true,
            internal_address_config: no_internal_client(),
            local_reply_config: local_replies(ctx.catalog),
            upgrade_configs: if tunnels {
                vec![connect_upgrade(false)]
            } else {
                Vec::new()
            },
        }),
    }
}

/// Every client is external, loopback included (Envoy's default trusts loopback and RFC 1918):
/// the one range is the unspecified address, which no peer has.
pub(super) fn no_internal_client() -> InternalAddressConfig {
    InternalAddressConfig {
        cidr_ranges: vec![CidrRange {
            address_prefix: "0.0.0.0".to_string(),
            prefix_len: 32,
        }],
    }
}

/// The refusals Envoy makes before the filter runs carry a reason as the filter's do
/// (`DENIED_HEADER`, so the access log's `denied`): a CONNECT nothing tunnels gets 403 and what to do instead,
/// any other upgrade 403, an `https://` URL over plain HTTP 403, a path that is not absolute
/// (`OPTIONS *`) Envoy's 404.
fn refusals() -> Vec<ResponseMapper> {
    let refusal = |filter, status_code, body: Option<&str>, reason| ResponseMapper {
        filter,
        status_code,
        body: body.map(|b| DataSource::InlineString(b.to_string())),
        headers_to_add: vec![header(DENIED_HEADER, reason)],
        body_format_override: None,
    };
    vec![
        refusal(
            // The filter judges a CONNECT's authority; past it, no route matches CONNECT.
            cel("request.method == 'CONNECT' && response.code_details == 'route_not_found'"),
            Some(403),
            Some(CONNECT_REFUSAL),
            CONNECT_DENIAL,
        ),
        refusal(
            cel("response.code_details == 'upgrade_failed'"),
            None,
            Some(UPGRADE_REFUSAL),
            UPGRADE_DENIAL,
        ),
        // Envoy's HTTP/1 codec refuses it for a client it does not trust, as here all are.
        refusal(
            cel("response.code_details == 'http1.https_url_on_plaintext_connection'"),
            None,
            Some(HTTPS_URL_REFUSAL),
            HTTPS_URL_DENIAL,
        ),
        refusal(
            cel("response.code_details == 'absolute_path_rejected'"),
            None,
            None,
            PATH_DENIAL,
        ),
    ]
}

/// What Envoy says in the replies it makes itself: the [`refusals`] first. A 503 for a failed upstream connection
/// says why (a TLS verification error, say) in `UPSTREAM_FAILURE_HEADER`, not only in the
/// access log, and so does one with no endpoint to send to (the host did not resolve). A
/// proxied URL Envoy's HTTP/1 parser refuses, as it refuses a host with `_`, gets a body that
/// names the dotted form of a Kuma service name.
fn local_replies(catalog: &Catalog) -> LocalReplyConfig {
    let flag = |flag| AccessLogFilter::ResponseFlagFilter(ResponseFlagFilter { flags: vec![flag] });
    LocalReplyConfig {
        mappers: refusals()
            .into_iter()
            .chain([
                ResponseMapper {
                    filter: flag("UF"),
                    headers_to_add: vec![header(
                        UPSTREAM_FAILURE_HEADER,
                        "%UPSTREAM_TRANSPORT_FAILURE_REASON%",
                    )],
                    status_code: None,
                    body: None,
                    body_format_override: None,
                },
                ResponseMapper {
                    filter: flag("UH"),
                    headers_to_add: vec![header(UPSTREAM_FAILURE_HEADER, NO_ENDPOINT)],
                    status_code: None,
                    body: None,
                    body_format_override: None,
                },
                ResponseMapper {
                    // Only Envoy's own replies and refusals run it, no forwarded request.
                    filter: cel("response.code_details == 'http1.invalid_url'"),
                    status_code: None,
                    body: None,
                    headers_to_add: Vec::new(),
                    body_format_override: Some(SubstitutionFormatString::TextFormatSource(
                        DataSource::InlineString(invalid_url_body(catalog)),
                    )),
                },
            ])
            .collect(),
    }
}

/// A local reply whose attributes (`response.code_details`, ...) match a CEL expression.
pub(super) fn cel(expression: &str) -> AccessLogFilter {
    AccessLogFilter::ExtensionFilter(Extension {
        name: "envoy.access_loggers.extension_filters.cel",
        typed_config: AccessLogFilterConfig::Cel(CelExpressionFilter {
            expression: expression.to_string(),
        }),
    })
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

pub(super) fn header(key: &str, value: &str) -> HeaderValueOption {
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
pub fn filters(ctx: &Context<'_>, bound: Option<&Service>, passthrough: bool) -> Vec<HttpFilter> {
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
                .find_map(|s| ctx.policies.of(ctx.mesh(), s).get(slice.kind))
                .and_then(|policy| policy.conf.http_filter())
        })
        .collect()
}

/// CONNECT as an upgrade, on or off; on, a TCP tunnel to the route's cluster.
fn connect_upgrade(enabled: bool) -> UpgradeConfig {
    UpgradeConfig {
        upgrade_type: "CONNECT".to_string(),
        enabled,
        connect_config: enabled.then_some(Empty {}),
    }
}

/// What the filter lets out goes to the passthrough cluster (the dynamic forward proxy
/// resolves its authority): every path and, where a MeshPassthrough decides (`All`, or
/// `Matched` by its matches), CONNECT as a tunnel. With the Mesh's flag alone, CONNECT finds
/// no route, as before MeshPassthrough was served.
fn passthrough_routes(catalog: &Catalog) -> Vec<Route> {
    let mut routes = Vec::new();
    if catalog.mesh_passthrough.is_some() {
        routes.push(connect_route(None, cluster::PASSTHROUGH));
    }
    routes.extend(all(
        None,
        Action::Route(RouteAction::to(cluster::PASSTHROUGH)),
        None,
    ));
    routes
}

/// CONNECT to each tcp service, by the authority the filter writes (in the default virtual
/// host, whose `*` no service's own domain takes from it), tunnelled to its cluster.
fn tcp_connect_routes(catalog: &Catalog) -> Vec<Route> {
    catalog
        .services
        .iter()
        .filter(|s| !s.protocol.is_http())
        .map(|service| {
            let mut route = connect_route(Some(&service.authority), &cluster::name(service));
            route.name = Some(names::logged(service));
            route
        })
        .collect()
}

/// CONNECT (with this `:authority`, or any) to `cluster`, as a TCP tunnel.
fn connect_route(authority: Option<&str>, cluster: &str) -> Route {
    Route {
        name: None,
        route_match: RouteMatch {
            path: PathMatch::ConnectMatcher(Empty {}),
            headers: authority
                .map(|a| HeaderMatcher {
                    name: ":authority".to_string(),
                    matcher: HeaderMatch::StringMatch(StringMatcher::Exact(a.to_string())),
                })
                .into_iter()
                .collect(),
        },
        action: Action::Route(RouteAction {
            upgrade_configs: vec![connect_upgrade(true)],
            ..RouteAction::to(cluster)
        }),
        typed_per_filter_config: None,
    }
}

/// Every path, in a route of this name.
fn all(
    name: Option<&str>,
    action: Action,
    typed_per_filter_config: Option<Map<HttpFilterConfig>>,
) -> Vec<Route> {
    vec![Route {
        name: name.map(str::to_string),
        route_match: RouteMatch {
            path: PathMatch::Prefix("/".to_string()),
            headers: Vec::new(),
        },
        action,
        typed_per_filter_config,
    }]
}

const CONNECT_REFUSAL: &str = "CONNECT (https_proxy) is not served here: send plain HTTP through \
    the proxy (http_proxy=http://...), and Envoy originates TLS to the service; an app that \
    speaks TLS itself connects to a tcp service's listener (a Dataplane outbound)\n";

const HTTPS_URL_REFUSAL: &str = "an https:// URL is not served over plain HTTP: send \
    http://host:443/... through the proxy, and Envoy originates TLS to the service\n";

const UPGRADE_REFUSAL: &str = "upgrades (Upgrade: websocket, CONNECT, ...) are not served here: \
    an app that needs a byte stream connects to a tcp service's listener (a Dataplane \
    outbound)\n";

/// The route to a service's cluster, named after the service (the access log's
/// `external_service`), with the options' timeout for the whole upstream answer (504 `UT` past
/// it); the service's policies set the rest through their hooks. With endpoints on several
/// hosts, `Host` follows the endpoint chosen; a service routed by its `.mesh` name gives the
/// upstream its real authority back. A MeshExternalService's upstream sees the endpoint's
/// address as `Host`, as Kuma's routes to one set `auto_host_rewrite`. Through the ZoneEgress,
/// the egress does what depends on the endpoints (`Host`, failing over by priority).
pub fn routes(ctx: &Context<'_>, service: &Service) -> Vec<Route> {
    let own_endpoints = ctx.upstreams == Upstreams::Own;
    let mut route = route_to(ctx, service, own_endpoints);
    let mut filter_config = Vec::new();
    for policy in ctx.policies.of(ctx.mesh(), service).configurers() {
        policy.route(service, &mut route);
        policy.route_filters(&mut filter_config);
    }
    if own_endpoints {
        fail_over_by_priority(service, &mut route);
    }
    all(
        Some(&names::logged(service)),
        Action::Route(route),
        (!filter_config.is_empty()).then_some(Map(filter_config)),
    )
}

/// The ZoneEgress's route to a service's cluster (its endpoints): `Host` by endpoint and
/// failover by priority, as [`routes`]; the service's policies were the sidecar's.
pub fn egress_routes(ctx: &Context<'_>, service: &Service) -> Vec<Route> {
    let mut route = route_to(ctx, service, true);
    fail_over_by_priority(service, &mut route);
    all(Some(&names::logged(service)), Action::Route(route), None)
}

/// The route to the service's cluster with the options' timeout; `Host` from the endpoint
/// chosen when the cluster's endpoints are the service's own and it has several hosts (or is
/// a MeshExternalService).
fn route_to(ctx: &Context<'_>, service: &Service, own_endpoints: bool) -> RouteAction {
    let by_endpoint = service.matched.is_some() || cluster::distinct_hosts(service).len() > 1;
    RouteAction {
        cluster: cluster::name(service),
        timeout: Some(Duration(ctx.options.route_timeout)),
        idle_timeout: None,
        max_stream_duration: None,
        retry_policy: None,
        auto_host_rewrite: own_endpoints && by_endpoint,
        host_rewrite_literal: service.host_rewrite.clone().filter(|_| !by_endpoint),
        upgrade_configs: Vec::new(),
    }
}

/// Envoy leaves a priority level only once its hosts are known unhealthy, and nothing marks
/// them so (Kuma adds no health check or outlier detection to a MeshExternalService): a dead
/// priority-0 endpoint would answer every request 503. So a service with several levels
/// retries a connect failure on a level not tried yet, once per other level; a retry
/// policy of the service's own (MeshRetry) keeps its conditions and gains that choice.
fn fail_over_by_priority(service: &Service, route: &mut RouteAction) {
    let levels = cluster::priority_levels(service).len();
    let Some(others) = u32::try_from(levels.saturating_sub(1))
        .ok()
        .filter(|n| *n > 0)
    else {
        return;
    };
    let policy = route.retry_policy.get_or_insert_with(|| {
        Box::new(RetryPolicy {
            retry_on: "connect-failure".to_string(),
            num_retries: Some(others),
            ..RetryPolicy::default()
        })
    });
    policy.retry_priority = Some(Extension {
        name: "envoy.retry_priorities.previous_priorities",
        // Recomputed after every attempt: each retry skips every level tried so far.
        typed_config: RetryPriorityConfig::PreviousPriorities {
            update_frequency: 1,
        },
    });
}

/// One virtual host per HTTP service of the catalog, by the authority the filter writes, then
/// the default: CONNECT to each tcp service, then passthrough, or a 403 that holds even
/// without the filter.
pub fn outbound_virtual_hosts(ctx: &Context<'_>) -> Vec<VirtualHost> {
    let mut hosts: Vec<VirtualHost> = ctx
        .catalog
        .services
        .iter()
        .filter(|s| s.protocol.is_http())
        .map(|service| VirtualHost {
            name: cluster::name(service),
            domains: vec![service.authority.clone()],
            routes: routes(ctx, service),
        })
        .collect();
    let mut default = if ctx.catalog.passthrough {
        VirtualHost {
            name: cluster::PASSTHROUGH.to_string(),
            domains: vec!["*".to_string()],
            routes: passthrough_routes(ctx.catalog),
        }
    } else {
        let body = format!(
            "the host is not declared by any ExternalService or MeshExternalService of mesh {:?}, and the mesh's passthrough is off\n",
            ctx.mesh()
        );
        VirtualHost {
            name: "undeclared".to_string(),
            domains: vec!["*".to_string()],
            routes: all(
                None,
                Action::DirectResponse(DirectResponseAction {
                    status: 403,
                    body: DataSource::InlineString(body),
                }),
                None,
            ),
        }
    };
    // Before the default's own routes: a CONNECT the filter sent to a tcp service.
    default.routes.splice(0..0, tcp_connect_routes(ctx.catalog));
    hosts.push(default);
    hosts
}

/// A listener bound to one service: everything goes to its cluster.
pub fn bound_virtual_hosts(ctx: &Context<'_>, service: &Service) -> Vec<VirtualHost> {
    vec![VirtualHost {
        name: cluster::name(service),
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
    fn several_priority_levels_retry_a_connect_failure_on_a_level_not_tried() {
        let mes = |name: &str, priorities: &[u32]| {
            let endpoints: Vec<String> = priorities
                .iter()
                .map(|p| format!("{{address: api.test, port: 443, priority: {p}}}"))
                .collect();
            format!(
                "type: MeshExternalService\nmesh: default\nname: {name}\n\
                 spec: {{match: {{port: 80, protocol: http}}, endpoints: [{}]}}\n---\n",
                endpoints.join(", ")
            )
        };
        let f = Fixture::new(&(mes("three", &[0, 1, 2, 1]) + &mes("one", &[0, 0])));
        let route = |name: &str| match &routes(&f.ctx(), f.service(name))[0].action {
            Action::Route(route) => route.retry_policy.clone(),
            Action::DirectResponse(_) => panic!("{name}: no route"),
        };
        assert_eq!(route("one"), None, "one level: nothing to fail over to");
        assert_cases(&[(
            "three levels: up to two retries, each on a level not tried yet",
            yaml(&route("three")),
            "
retry_on: connect-failure
num_retries: 2
retry_priority:
  name: envoy.retry_priorities.previous_priorities
  typed_config:
    '@type': type.googleapis.com/envoy.extensions.retry.priority.previous_priorities.v3.PreviousPrioritiesConfig
    update_frequency: 1
",
        )]);
    }

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
                    &["/1/routes"],
                ),
                "
- name: external_service_httpbin
  domains:
  - httpbin.test
  routes:
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
                yaml(&outbound_virtual_hosts(&f.ctx())[1].routes[0]),
                "
match:
  prefix: /
route:
  cluster: passthrough
",
            ),
            (
                "passthrough off: HTTP services only, Host by endpoint, a tcp service by CONNECT, then a 403",
                yaml(&outbound_virtual_hosts(&Fixture::new(&two_hosts).ctx())),
                "
- name: external_service_api
  domains:
  - eu.api.test:8080
  routes:
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
  - name: redis
    match:
      connect_matcher: {}
      headers:
      - name: :authority
        string_match:
          exact: redis.test:6379
    route:
      cluster: external_service_redis
      upgrade_configs:
      - upgrade_type: CONNECT
        enabled: true
        connect_config: {}
  - match:
      prefix: /
    direct_response:
      status: 403
      body:
        inline_string: |
          the host is not declared by any ExternalService or MeshExternalService of mesh \"default\", and the mesh's passthrough is off
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
                "a timeout of 0 turns it off",
                yaml(&routes(&no_timeout.ctx(), no_timeout.service("httpbin"))[0].action),
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
        // A local reply mapper's filter: a CEL expression over the reply's attributes.
        let cel_mapper = |expression: &str| {
            format!(
                "    - filter:
        extension_filter:
          name: envoy.access_loggers.extension_filters.cel
          typed_config:
            '@type': type.googleapis.com/envoy.extensions.access_loggers.filters.cel.v3.ExpressionFilter
            expression: {expression}"
            )
        };
        assert_cases(&[
            (
                "passthrough on: the filter, the dynamic forward proxy, the router; no upgrade, every client external, Envoy's own refusals with a reason",
                yaml_eliding(
                    &hcm,
                    &[
                        "/typed_config/access_log/0/typed_config",
                        "/typed_config/http_filters/0/typed_config",
                    ],
                ),
                &format!(
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
    internal_only_headers:
    - x-envoy-original-path
    request_headers_to_remove:
    - x-envoy-external-address
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
  use_remote_address: true
  skip_xff_append: true
  internal_address_config:
    cidr_ranges:
    - address_prefix: 0.0.0.0
      prefix_len: 32
  local_reply_config:
    mappers:
{connect}
      status_code: 403
      body:
        inline_string: |
          CONNECT (https_proxy) is not served here: send plain HTTP through the proxy (http_proxy=http://...), and Envoy originates TLS to the service; an app that speaks TLS itself connects to a tcp service's listener (a Dataplane outbound)
      headers_to_add:
      - header:
          key: x-external-service-denied
          value: connect-not-served
{upgrade}
      body:
        inline_string: |
          upgrades (Upgrade: websocket, CONNECT, ...) are not served here: an app that needs a byte stream connects to a tcp service's listener (a Dataplane outbound)
      headers_to_add:
      - header:
          key: x-external-service-denied
          value: upgrade-not-served
{https_url}
      body:
        inline_string: |
          an https:// URL is not served over plain HTTP: send http://host:443/... through the proxy, and Envoy originates TLS to the service
      headers_to_add:
      - header:
          key: x-external-service-denied
          value: https-url-not-served
{bad_path}
      headers_to_add:
      - header:
          key: x-external-service-denied
          value: bad-path
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
{invalid_url}
      body_format_override:
        text_format_source:
          inline_string: |
            Envoy's HTTP/1 parser refused the request's URL: a proxied URL's host (http_proxy, curl -x) may hold only letters, digits, '-' and '.', not '_'.
            Write a service name's '_' as '.' (http://my.svc.mesh/ reaches my_svc.mesh), or send the name in a Host header to this listener.
",
                    connect = cel_mapper("request.method == 'CONNECT' && response.code_details == 'route_not_found'"),
                    upgrade = cel_mapper("response.code_details == 'upgrade_failed'"),
                    https_url = cel_mapper("response.code_details == 'http1.https_url_on_plaintext_connection'"),
                    bad_path = cel_mapper("response.code_details == 'absolute_path_rejected'"),
                    invalid_url = cel_mapper("response.code_details == 'http1.invalid_url'"),
                ),
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
