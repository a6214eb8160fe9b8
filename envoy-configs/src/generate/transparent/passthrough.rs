//! MeshPassthrough on the capture listener: which connections to undeclared destinations go
//! out. `All` and `None` are the mesh's passthrough on and off; `Matched` is the merged
//! `appendMatch` list as filter chains, Envoy's equivalent of the model's `Table`:
//! - `Domain` + `tls`: the SNI (`server_names`), `Domain` + `http`/`http2`/`grpc`: the `Host`
//!   (virtual hosts of a connection manager); both connect to what the NAME resolves to (the
//!   dynamic forward proxy), never to the address the app dialled. Kuma sends them to the
//!   original destination, so an app that dials any address with an allowed SNI or `Host`
//!   reaches that address: here it reaches only the named host.
//! - `IP` and `CIDR`: the original destination (`prefix_ranges`), whatever the protocol.
//! - A match on one port, else on every port: a port's chains hold the every-port matches too,
//!   as Envoy never goes back from the port it chose.
//!
//! What no match allows is refused: plain HTTP gets 403 (`DENIED_HEADER: not-matched`, a
//! body naming the host), anything else is closed; both logged with the original
//! destination, and the SNI or `Host`.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use external_service_model::contract::DENIED_HEADER;
use external_service_model::mesh_passthrough::validate::parse_cidr;
use external_service_model::mesh_passthrough::{Class, MergedMatch, PassthroughMode};

use crate::envoy::{
    AccessLog, AccessLogConfig, Action, CidrRange, DataSource, DirectResponseAction, Duration,
    Extension, FilterChain, FilterChainMatch, FilterStateValue, HttpConnectionManager,
    HttpFilterConfig, Inspector, Listener, ListenerFilter, ListenerFilterConfig, Map,
    NetworkFilter, NetworkFilterConfig, PathMatch, ResponseMapper, Route, RouteAction, RouteMatch,
    Router, SetFilterState, SniDynamicForwardProxy, StdoutAccessLog, SubstitutionFormatString,
    TcpProxy, VirtualHost,
};
use crate::generate::{access_log, cluster, http, Context, Error};

/// The cluster `Domain` matches connect through: the name's address, from the DNS cache.
pub const BY_NAME: &str = "mesh_passthrough_by_name";
/// The access log's `denied`, and `DENIED_HEADER`'s value, for what no match allows.
pub const NOT_MATCHED: &str = "not-matched";
const LISTENER: &str = "outbound_capture_mesh_passthrough";

/// What the capture listener does with a connection to an undeclared destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Passthrough {
    All,
    None,
    Matched(Vec<MergedMatch>),
}

/// The MeshPassthroughs of the mesh (each selects this proxy: `extsvc` is one), merged, with
/// the mesh's own flag (Kuma 2.9's rule, `effective`).
pub(super) fn of(ctx: &Context<'_>) -> Passthrough {
    // The catalog merged the MeshPassthroughs that apply to this Envoy, as for the proxy port.
    match &ctx.catalog.mesh_passthrough {
        None if ctx.catalog.passthrough => Passthrough::All,
        None => Passthrough::None,
        Some(policy) => match policy.mode {
            PassthroughMode::All => Passthrough::All,
            PassthroughMode::None => Passthrough::None,
            PassthroughMode::Matched => Passthrough::Matched(policy.table.matches().to_vec()),
        },
    }
}

/// The matches on one port (or on every port), as the chains will hold them.
#[derive(Debug, Default, Clone)]
struct OnPort {
    /// SNI names (`*.example.com` as written, `*` for any).
    tls: BTreeSet<String>,
    /// `Host` names, with the policy of each (to name it in an error).
    http: BTreeMap<String, String>,
    networks: BTreeSet<(IpAddr, u8)>,
}

impl OnPort {
    fn add(&mut self, m: &MergedMatch) {
        let matcher = &m.matcher;
        let class = Class::of_protocol(matcher.protocol.as_deref().unwrap_or("tcp"));
        match matcher.kind.as_str() {
            "Domain" => {
                let name = matcher
                    .value
                    .strip_suffix('.')
                    .unwrap_or(&matcher.value)
                    .to_ascii_lowercase();
                match class {
                    Some(Class::Tls) => {
                        self.tls.insert(name);
                    }
                    Some(Class::Http) => {
                        self.http.entry(name).or_insert_with(|| m.policy.clone());
                    }
                    // Kuma's validator refuses a Domain with `tcp` (or `mysql`).
                    Some(Class::Tcp) | None => {}
                }
            }
            "IP" => {
                if let Ok(ip) = matcher.value.parse::<IpAddr>() {
                    let ip = ip.to_canonical();
                    self.networks
                        .insert((ip, if ip.is_ipv4() { 32 } else { 128 }));
                }
            }
            "CIDR" => {
                if let Some((ip, bits)) = parse_cidr(&matcher.value) {
                    self.networks.insert((ip, bits));
                }
            }
            _ => {}
        }
    }

    fn extend(&mut self, other: &OnPort) {
        self.tls.extend(other.tls.iter().cloned());
        for (name, policy) in &other.http {
            self.http
                .entry(name.clone())
                .or_insert_with(|| policy.clone());
        }
        self.networks.extend(other.networks.iter().copied());
    }
}

/// The matches by port (`None`: every port), each port's holding the every-port ones too.
fn by_port(matches: &[MergedMatch]) -> BTreeMap<Option<u16>, OnPort> {
    let mut ports: BTreeMap<Option<u16>, OnPort> = BTreeMap::new();
    for m in matches {
        let port = match m.matcher.port {
            None => None,
            // Kuma's validator refuses any other.
            Some(port) => match u16::try_from(port) {
                Ok(port) if port != 0 => Some(port),
                _ => continue,
            },
        };
        ports.entry(port).or_default().add(m);
    }
    let every = ports.get(&None).cloned().unwrap_or_default();
    for (port, on) in ports.iter_mut() {
        if port.is_some() {
            on.extend(&every);
        }
    }
    // Plain HTTP on any port still gets its 403.
    ports.entry(None).or_default();
    ports
}

/// The capture listener's chains for `Matched`; what none matches goes to the listener's
/// default chain ([`refused`]).
pub(super) fn chains(
    ctx: &Context<'_>,
    matches: &[MergedMatch],
) -> Result<Vec<FilterChain>, Error> {
    let listen = ctx.options.listen;
    let itself = (listen.ip(), if listen.is_ipv4() { 32 } else { 128 });
    let mut chains = Vec::new();
    for (port, mut on) in by_port(matches) {
        // The capture listener's own address is refused (it would loop), in a chain of the
        // same match, which Envoy would not take twice.
        if port == Some(listen.port()) {
            on.networks.remove(&itself);
        }
        let at = |m: FilterChainMatch| {
            Some(FilterChainMatch {
                destination_port: port,
                ..m
            })
        };
        if !on.networks.is_empty() {
            chains.push(FilterChain {
                filter_chain_match: at(FilterChainMatch {
                    prefix_ranges: on
                        .networks
                        .iter()
                        .map(|&(ip, bits)| CidrRange {
                            address_prefix: ip.to_string(),
                            prefix_len: bits,
                        })
                        .collect(),
                    ..FilterChainMatch::default()
                }),
                filters: vec![tcp_proxy(cluster::PASSTHROUGH, "")],
                ..FilterChain::default()
            });
        }
        if !on.tls.is_empty() {
            // `*` matches any SNI: no `server_names`.
            let server_names = if on.tls.contains("*") {
                Vec::new()
            } else {
                on.tls.iter().cloned().collect()
            };
            chains.push(FilterChain {
                filter_chain_match: at(FilterChainMatch {
                    server_names,
                    transport_protocol: Some("tls"),
                    ..FilterChainMatch::default()
                }),
                filters: by_sni(port),
                ..FilterChain::default()
            });
        }
        chains.push(FilterChain {
            filter_chain_match: at(FilterChainMatch {
                transport_protocol: Some("raw_buffer"),
                application_protocols: vec!["http/1.1", "h2c"],
                ..FilterChainMatch::default()
            }),
            filters: vec![by_host(ctx, port, &on.http)?],
            ..FilterChain::default()
        });
    }
    Ok(chains)
}

/// The TLS inspector (SNI) and the HTTP inspector (plain HTTP), which the chains match on.
pub(super) fn inspectors() -> [ListenerFilter; 2] {
    [
        Extension {
            name: "envoy.filters.listener.tls_inspector",
            typed_config: ListenerFilterConfig::TlsInspector(Inspector {}),
        },
        Extension {
            name: "envoy.filters.listener.http_inspector",
            typed_config: ListenerFilterConfig::HttpInspector(Inspector {}),
        },
    ]
}

/// How long the inspectors wait for a client's first bytes: a protocol whose server speaks
/// first (SSH, SMTP, MySQL) sends none, and its connection goes on after this wait, with no
/// SNI and no HTTP found, so only an `IP` or `CIDR` match can take it.
pub const INSPECTION_TIMEOUT: Duration = Duration::from_secs(1);

pub(super) fn inspect_briefly(listener: &mut Listener) {
    listener.listener_filters_timeout = Some(INSPECTION_TIMEOUT);
    listener.continue_on_listener_filters_timeout = Some(true);
}

/// For what no match allows: closed at once, logged.
pub(super) fn refused() -> FilterChain {
    FilterChain {
        filter_chain_match: None,
        filters: vec![tcp_proxy(super::REFUSED, NOT_MATCHED)],
        ..FilterChain::default()
    }
}

fn tcp_proxy(cluster: &str, denied: &str) -> NetworkFilter {
    Extension {
        name: "envoy.filters.network.tcp_proxy",
        typed_config: NetworkFilterConfig::TcpProxy(TcpProxy {
            stat_prefix: LISTENER.to_string(),
            cluster: cluster.to_string(),
            access_log: access_log::capture(LISTENER, denied),
            idle_timeout: None,
            max_connect_attempts: None,
            ..TcpProxy::default()
        }),
    }
}

/// The SNI resolved, connected to on the port the app dialled (the chain's, or the original
/// destination's on a chain for every port).
fn by_sni(port: Option<u16>) -> Vec<NetworkFilter> {
    let dialled_port = Extension {
        name: "envoy.filters.network.set_filter_state",
        typed_config: NetworkFilterConfig::SetFilterState(SetFilterState {
            on_new_connection: vec![FilterStateValue {
                object_key: "envoy.upstream.dynamic_port",
                format_string: SubstitutionFormatString::TextFormatSource(
                    DataSource::InlineString("%DOWNSTREAM_LOCAL_PORT%".to_string()),
                ),
            }],
        }),
    };
    let resolve = Extension {
        name: "envoy.filters.network.sni_dynamic_forward_proxy",
        typed_config: NetworkFilterConfig::SniDynamicForwardProxy(SniDynamicForwardProxy {
            dns_cache_config: cluster::dns_cache().dns_cache_config,
            // Taken only when the dialled port is unknown, which it never is here.
            port_value: port.unwrap_or(443),
        }),
    };
    let mut filters = vec![resolve, tcp_proxy(BY_NAME, "")];
    if port.is_none() {
        filters.insert(0, dialled_port);
    }
    filters
}

/// Plain HTTP: each allowed `Host` to the name's address, every other one refused with 403.
/// The `Host` must carry the chain's port (but for 80, which it may leave out), so the
/// request reaches the named host on the port the app dialled; a chain for every port
/// cannot say which, so it holds no `Host` and a match there is refused.
fn by_host(
    ctx: &Context<'_>,
    port: Option<u16>,
    hosts: &BTreeMap<String, String>,
) -> Result<NetworkFilter, Error> {
    let mut allowed = Vec::new();
    for (name, policy) in hosts {
        let Some(port) = port else {
            return Err(Error::MeshPassthrough(format!(
                "MeshPassthrough {policy:?}: the Domain match {name:?} with an HTTP protocol \
                 needs a port with --transparent-proxy: a request's Host cannot be held to the \
                 port the app dialled otherwise"
            )));
        };
        if name == "*" {
            return Err(Error::MeshPassthrough(format!(
                "MeshPassthrough {policy:?}: the Domain match \"*\" with an HTTP protocol cannot \
                 be held to port {port} with --transparent-proxy (any Host would name any \
                 port): use protocol tcp with an IP or CIDR match instead"
            )));
        }
        allowed.push(format!("{name}:{port}"));
        if port == 80 {
            allowed.push(name.clone());
        }
    }
    let route = |action| Route {
        name: None,
        route_match: RouteMatch {
            path: PathMatch::Prefix("/".to_string()),
            headers: Vec::new(),
        },
        action,
        typed_per_filter_config: None,
    };
    let mut virtual_hosts = Vec::new();
    if !allowed.is_empty() {
        virtual_hosts.push(VirtualHost {
            name: "mesh_passthrough".to_string(),
            domains: allowed,
            routes: vec![route(Action::Route(RouteAction::to(BY_NAME)))],
        });
    }
    virtual_hosts.push(VirtualHost {
        name: NOT_MATCHED.to_string(),
        domains: vec!["*".to_string()],
        routes: vec![route(Action::DirectResponse(DirectResponseAction {
            status: 403,
            body: DataSource::InlineString(String::new()),
        }))],
    });
    let filters = vec![
        Extension {
            name: "envoy.filters.http.dynamic_forward_proxy",
            typed_config: HttpFilterConfig::DynamicForwardProxy(cluster::dns_cache()),
        },
        Extension {
            name: "envoy.filters.http.router",
            typed_config: HttpFilterConfig::Router(Router {}),
        },
    ];
    let mut hcm = http::connection_manager(ctx, LISTENER, LISTENER, virtual_hosts, filters);
    if let NetworkFilterConfig::HttpConnectionManager(HttpConnectionManager {
        local_reply_config,
        access_log,
        ..
    }) = &mut hcm.typed_config
    {
        local_reply_config.mappers.insert(0, not_matched());
        log_original_destination(access_log);
    }
    Ok(hcm)
}

/// The HTTP access log's fields, and after `listener` the address the app dialled, as the
/// capture listener's TCP log has it.
fn log_original_destination(logs: &mut [AccessLog]) {
    for log in logs {
        let AccessLogConfig::Stdout(StdoutAccessLog {
            log_format: SubstitutionFormatString::JsonFormat(Map(fields)),
        }) = &mut log.typed_config
        else {
            continue;
        };
        let at = fields
            .iter()
            .position(|(k, _)| k == "listener")
            .map_or(0, |i| i + 1);
        fields.insert(
            at,
            (
                "original_destination".to_string(),
                "%DOWNSTREAM_LOCAL_ADDRESS%".to_string(),
            ),
        );
    }
}

/// The body and reason of the 403: the host, and what would allow it.
pub const NOT_MATCHED_BODY: &str = "no MeshPassthrough allows %REQ(:AUTHORITY)% on port \
     %DOWNSTREAM_LOCAL_PORT%: a Domain match for it with protocol http on that port would\n";

fn not_matched() -> ResponseMapper {
    ResponseMapper {
        filter: http::cel("response.code_details == 'direct_response'"),
        status_code: None,
        body: None,
        headers_to_add: vec![http::header(DENIED_HEADER, NOT_MATCHED)],
        body_format_override: Some(SubstitutionFormatString::TextFormatSource(
            DataSource::InlineString(NOT_MATCHED_BODY.to_string()),
        )),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use crate::generate::test_support::{service, Fixture};
    use crate::generate::transparent::tests::options;
    use crate::generate::transparent::{build, CAPTURE, DEFAULT_VIP_CIDR, REFUSED};

    const OFF: &str =
        "type: Mesh\nname: default\nnetworking: {outbound: {passthrough: false}}\n---\n";

    fn mesh_passthrough(mode: Option<&str>, matches: &[&str]) -> String {
        let mode = mode.map_or(String::new(), |m| format!("    passthroughMode: {m}\n"));
        let matches: String = matches.iter().map(|m| format!("    - {m}\n")).collect();
        format!(
            "type: MeshPassthrough\nname: allow\nmesh: default\nspec:\n  targetRef: {{kind: Mesh}}\n  default:\n{mode}    appendMatch:\n{matches}---\n"
        )
    }

    fn capture(resources: &str) -> Result<Listener, Error> {
        let f = Fixture::new(&format!(
            "{resources}{}",
            service("web", "http", "{address: web.test:80}")
        ));
        build(&f.ctx(), &options(DEFAULT_VIP_CIDR, None)).map(|parts| {
            let capture = parts.listeners.into_iter().next().unwrap();
            assert_eq!(capture.name, CAPTURE);
            capture
        })
    }

    /// Each chain as one line: its match, then each filter's cluster or virtual hosts.
    fn chains(listener: &Listener) -> Vec<String> {
        listener
            .filter_chains
            .iter()
            .chain(&listener.default_filter_chain)
            .map(|c| {
                let m = c.filter_chain_match.clone().unwrap_or_default();
                let mut line = format!(
                    "port={} ips={} sni={} transport={} alpn={}:",
                    m.destination_port.map_or("*".into(), |p| p.to_string()),
                    m.prefix_ranges
                        .iter()
                        .map(|r| format!("{}/{}", r.address_prefix, r.prefix_len))
                        .collect::<Vec<_>>()
                        .join(","),
                    m.server_names.join(","),
                    m.transport_protocol.unwrap_or(""),
                    m.application_protocols.join(",")
                );
                for f in &c.filters {
                    let what = match &f.typed_config {
                        NetworkFilterConfig::TcpProxy(t) => format!("tcp_proxy({})", t.cluster),
                        NetworkFilterConfig::HttpConnectionManager(h) => format!(
                            "hcm({})",
                            h.route_config
                                .virtual_hosts
                                .iter()
                                .map(|v| format!("{}={}", v.name, v.domains.join("|")))
                                .collect::<Vec<_>>()
                                .join(" ")
                        ),
                        NetworkFilterConfig::SniDynamicForwardProxy(s) => {
                            format!("sni_dfp({})", s.port_value)
                        }
                        NetworkFilterConfig::SetFilterState(_) => "dialled_port".to_string(),
                        NetworkFilterConfig::LocalRateLimit(_) => "rate_limit".to_string(),
                        NetworkFilterConfig::Rbac(_) => "rbac".to_string(),
                    };
                    line.push(' ');
                    line.push_str(&what);
                }
                line
            })
            .collect()
    }

    #[test]
    fn matched_names_go_by_name_addresses_to_the_original_destination_and_the_rest_is_refused() {
        let resources = format!(
            "{OFF}{}",
            mesh_passthrough(
                None,
                &[
                    "{type: Domain, value: '*.example.test', port: 443, protocol: tls}",
                    "{type: Domain, value: api.other.test, protocol: tls}",
                    "{type: Domain, value: web.example.test, port: 8080, protocol: http}",
                    "{type: Domain, value: '*.wild.test', port: 80, protocol: http2}",
                    "{type: CIDR, value: 10.9.0.0/16}",
                    "{type: IP, value: 10.8.0.1, port: 5432, protocol: tls}",
                ]
            )
        );
        let capture = capture(&resources).unwrap();
        let pass = cluster::PASSTHROUGH;
        let refused_http = "hcm(not-matched=*)";
        let http = "transport=raw_buffer alpn=http/1.1,h2c:";
        let tls = "transport=tls alpn=:";
        let want = [
            format!("port=15001 ips=127.0.0.1/32 sni= transport= alpn=: tcp_proxy({REFUSED})"),
            // Every port: what holds to no port of its own.
            format!("port=* ips=10.9.0.0/16 sni= transport= alpn=: tcp_proxy({pass})"),
            format!("port=* ips= sni=api.other.test {tls} dialled_port sni_dfp(443) tcp_proxy({BY_NAME})"),
            format!("port=* ips= sni= {http} {refused_http}"),
            // A port's chains hold the every-port matches too.
            format!("port=80 ips=10.9.0.0/16 sni= transport= alpn=: tcp_proxy({pass})"),
            format!("port=80 ips= sni=api.other.test {tls} sni_dfp(80) tcp_proxy({BY_NAME})"),
            format!("port=80 ips= sni= {http} hcm(mesh_passthrough=*.wild.test:80|*.wild.test not-matched=*)"),
            format!("port=443 ips=10.9.0.0/16 sni= transport= alpn=: tcp_proxy({pass})"),
            format!("port=443 ips= sni=*.example.test,api.other.test {tls} sni_dfp(443) tcp_proxy({BY_NAME})"),
            format!("port=443 ips= sni= {http} {refused_http}"),
            format!("port=5432 ips=10.8.0.1/32,10.9.0.0/16 sni= transport= alpn=: tcp_proxy({pass})"),
            format!("port=5432 ips= sni=api.other.test {tls} sni_dfp(5432) tcp_proxy({BY_NAME})"),
            format!("port=5432 ips= sni= {http} {refused_http}"),
            format!("port=8080 ips=10.9.0.0/16 sni= transport= alpn=: tcp_proxy({pass})"),
            format!("port=8080 ips= sni=api.other.test {tls} sni_dfp(8080) tcp_proxy({BY_NAME})"),
            format!("port=8080 ips= sni= {http} hcm(mesh_passthrough=web.example.test:8080 not-matched=*)"),
            // The listener's default chain.
            format!("port=* ips= sni= transport= alpn=: tcp_proxy({REFUSED})"),
        ];
        assert_eq!(chains(&capture), want);
        let inspectors: Vec<&str> = capture.listener_filters.iter().map(|f| f.name).collect();
        assert_eq!(capture.listener_filters_timeout, Some(INSPECTION_TIMEOUT));
        assert_eq!(capture.continue_on_listener_filters_timeout, Some(true));
        assert_eq!(
            inspectors,
            [
                "envoy.filters.listener.original_dst",
                "envoy.filters.listener.tls_inspector",
                "envoy.filters.listener.http_inspector"
            ]
        );
    }

    #[test]
    fn the_capture_listeners_own_address_stays_refused() {
        let capture = capture(&mesh_passthrough(
            None,
            &["{type: IP, value: 127.0.0.1, port: 15001}"],
        ))
        .unwrap();
        let own: Vec<String> = chains(&capture)
            .into_iter()
            .filter(|c| c.contains("ips=127.0.0.1/32"))
            .collect();
        assert_eq!(
            own,
            [format!(
                "port=15001 ips=127.0.0.1/32 sni= transport= alpn=: tcp_proxy({REFUSED})"
            )]
        );
    }

    #[test]
    fn the_mode_decides_over_the_meshs_flag_and_no_policy_leaves_it_to_the_flag() {
        let through = format!(
            "port=* ips= sni= transport= alpn=: tcp_proxy({})",
            cluster::PASSTHROUGH
        );
        let closed = format!("port=* ips= sni= transport= alpn=: tcp_proxy({REFUSED})");
        let tls = "{type: Domain, value: a.test, port: 443, protocol: tls}";
        for (resources, last) in [
            (
                format!("{OFF}{}", mesh_passthrough(Some("All"), &[tls])),
                &through,
            ),
            (mesh_passthrough(Some("None"), &[tls]), &closed),
            (String::new(), &through),
            (OFF.to_string(), &closed),
        ] {
            let capture = capture(&resources).unwrap();
            assert_eq!(chains(&capture).last(), Some(last), "{resources}");
            assert_eq!(
                capture.listener_filters.len(),
                1,
                "no inspector: {resources}"
            );
        }
    }

    #[test]
    fn a_denied_request_gets_403_with_the_reason_and_the_host_named() {
        let capture = capture(&mesh_passthrough(None, &[])).unwrap();
        let hcm = capture
            .filter_chains
            .iter()
            .flat_map(|c| &c.filters)
            .find_map(|f| match &f.typed_config {
                NetworkFilterConfig::HttpConnectionManager(h) => Some(h),
                _ => None,
            })
            .unwrap();
        let route = &hcm.route_config.virtual_hosts[0].routes[0];
        assert!(matches!(&route.action, Action::DirectResponse(d) if d.status == 403));
        assert_eq!(hcm.local_reply_config.mappers[0], not_matched());
        assert!(NOT_MATCHED_BODY.contains("%REQ(:AUTHORITY)%"));
    }

    #[test]
    fn an_http_name_that_cannot_be_held_to_a_port_is_refused_naming_the_policy() {
        for (m, says) in [
            (
                "{type: Domain, value: api.test, protocol: http}",
                "MeshPassthrough \"allow\": the Domain match \"api.test\" with an HTTP protocol needs a port",
            ),
            (
                "{type: Domain, value: '*', port: 80, protocol: http}",
                "MeshPassthrough \"allow\": the Domain match \"*\" with an HTTP protocol cannot be held to port 80",
            ),
        ] {
            let Err(Error::MeshPassthrough(e)) = capture(&mesh_passthrough(None, &[m])) else {
                panic!("{m} is served")
            };
            assert!(e.starts_with(says), "{e}");
        }
    }
}
