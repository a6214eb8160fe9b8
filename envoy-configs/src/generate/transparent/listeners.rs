//! The listeners of the transparent proxy: the capture listener, one listener per declared
//! VIP:port, and the clusters of every other destination (passthrough or refusal).

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use external_service_model::address::Host;
use external_service_model::authority::HostRef;
use external_service_model::catalog::{Catalog, Service, Target};
use external_service_model::resource::Kind;

use crate::envoy::{
    Address, CidrRange, Cluster, DiscoveryType, Extension, FilterChain, FilterChainMatch, LbPolicy,
    Listener, ListenerFilterConfig, NetworkFilter, NetworkFilterConfig, OriginalDst, TcpProxy,
};

use crate::generate::{access_log, cluster, listener, Context, Error};

use super::passthrough::{self, Passthrough};

use super::dns::{mesh_external_services, Names};
use super::vips::{Cidr6, Vips};

pub const CAPTURE: &str = "outbound_capture";
/// The capture listener of IPv6: the REDIRECT sends IPv6 to `[::1]`, not to `--listen`.
pub const CAPTURE_IPV6: &str = "outbound_capture_ipv6";
/// The cluster of refused connections: no endpoints, so every connection closes at once.
pub const REFUSED: &str = "refused";
/// The access log's `denied` for a connection to a destination no service declares.
pub const UNDECLARED_DESTINATION: &str = "undeclared-destination";

/// A declared destination and the one service it reaches.
pub(super) struct Destination<'a> {
    pub(super) address: SocketAddr,
    pub(super) service: &'a Service,
}

/// Each declared destination: every VIP:port a service takes, on the VIP and on its IPv6
/// twin (in `vip_cidr6`), and each ExternalService's own IP address.
pub(super) fn destinations<'a>(
    catalog: &'a Catalog,
    names: &Names,
    vips: &Vips,
    vip_cidr6: Cidr6,
) -> Vec<Destination<'a>> {
    let service = |host: HostRef<'_>, port: u16| match catalog.lookup(host, Some(port)) {
        Some(Target::Service(id)) => catalog.services.get(id),
        Some(Target::Ambiguous) | None => None,
    };
    let mut found = Vec::new();
    let mut at_vip = |vip: Ipv4Addr, port: u16, service: &'a Service| {
        for ip in [IpAddr::V4(vip), IpAddr::V6(vip_cidr6.twin(vip))] {
            found.push(Destination {
                address: SocketAddr::new(ip, port),
                service,
            });
        }
    };
    for (name, ports) in &names.ports {
        let Some(vip) = vips.get(name) else { continue };
        for &port in ports {
            if let Some(service) = service(HostRef::Name(name), port) {
                at_vip(vip, port, service);
            }
        }
    }
    // A MeshExternalService's VIP is its own.
    for (service, matched) in mesh_external_services(catalog) {
        if let Some(vip) = vips.of_mesh_external_service(&service.name) {
            at_vip(vip, matched.port, service);
        }
    }
    // An ExternalService's IP address is its own VIP.
    let ips: BTreeSet<(IpAddr, u16)> = catalog
        .services
        .iter()
        .filter(|s| s.kind == Kind::ExternalService)
        .flat_map(|s| &s.endpoints)
        .filter(|e| !e.disable_host_dns_entry)
        .filter_map(|e| match e.address.host {
            Host::Ip(ip) => Some((ip, e.address.port)),
            Host::Name(_) => None,
        })
        .collect();
    for (ip, port) in ips {
        if let Some(service) = service(HostRef::Ip(ip), port) {
            found.push(Destination {
                address: SocketAddr::new(ip, port),
                service,
            });
        }
    }
    found
}

/// `--listen`, and its IPv6 twin: every captured connection arrives here and goes on to the
/// listener of its original destination; one with none goes through (passthrough), is refused
/// and logged, or goes where a MeshPassthrough match says ([`passthrough::chains`]). When
/// something may go through, a connection made to this address itself is refused: passing it
/// through would loop.
pub(super) fn capture(
    ctx: &Context<'_>,
    name: &str,
    listen: SocketAddr,
    passthrough: &Passthrough,
) -> Result<Listener, Error> {
    let to = |cluster: &str, denied: &str| NetworkFilter {
        name: "envoy.filters.network.tcp_proxy",
        typed_config: NetworkFilterConfig::TcpProxy(TcpProxy {
            stat_prefix: CAPTURE.to_string(),
            cluster: cluster.to_string(),
            access_log: access_log::capture(CAPTURE, denied),
            idle_timeout: None,
            max_connect_attempts: None,
            ..TcpProxy::default()
        }),
    };
    let mut capture = match passthrough {
        Passthrough::All => listener::listener(name, listen, to(cluster::PASSTHROUGH, "")),
        Passthrough::None => listener::listener(name, listen, to(REFUSED, UNDECLARED_DESTINATION)),
        Passthrough::Matched(matches) => Listener {
            name: name.to_string(),
            address: Address::from(listen),
            filter_chains: passthrough::chains(ctx, matches)?,
            default_filter_chain: Some(passthrough::refused()),
            ..Listener::default()
        },
    };
    if *passthrough != Passthrough::None {
        capture.filter_chains.insert(
            0,
            FilterChain {
                filter_chain_match: Some(FilterChainMatch {
                    destination_port: Some(listen.port()),
                    prefix_ranges: vec![CidrRange {
                        address_prefix: listen.ip().to_string(),
                        prefix_len: if listen.is_ipv4() { 32 } else { 128 },
                    }],
                    ..FilterChainMatch::default()
                }),
                filters: vec![to(REFUSED, UNDECLARED_DESTINATION)],
                ..FilterChain::default()
            },
        );
    }
    let mut listener_filters = vec![Extension {
        name: "envoy.filters.listener.original_dst",
        typed_config: ListenerFilterConfig::OriginalDst(OriginalDst {}),
    }];
    let mut capture = Listener {
        use_original_dst: Some(true),
        ..capture
    };
    if let Passthrough::Matched(_) = passthrough {
        listener_filters.extend(passthrough::inspectors());
        passthrough::inspect_briefly(&mut capture);
    }
    Ok(Listener {
        listener_filters,
        ..capture
    })
}

/// Where the REDIRECT sends captured IPv6 on `--listen`'s port: `[::1]`, or `[::]` when
/// `--listen` is on every address; none when `--listen` is IPv6 itself.
pub(super) fn ipv6_capture_address(listen: SocketAddr) -> Option<SocketAddr> {
    let ip = match listen.ip() {
        IpAddr::V6(_) => return None,
        IpAddr::V4(v4) if v4.is_unspecified() => Ipv6Addr::UNSPECIFIED,
        IpAddr::V4(_) => Ipv6Addr::LOCALHOST,
    };
    Some(SocketAddr::new(IpAddr::V6(ip), listen.port()))
}

/// Passthrough on: a connection to an undeclared destination goes there as it is.
pub(super) fn original_destination() -> Cluster {
    Cluster {
        name: cluster::PASSTHROUGH.to_string(),
        discovery_type: Some(DiscoveryType::OriginalDst),
        connect_timeout: cluster::CONNECT_TIMEOUT,
        lb_policy: Some(LbPolicy::ClusterProvided),
        ..Cluster::default()
    }
}

/// For refused connections (every undeclared one with passthrough off): no endpoints, so the
/// connection is closed at once (flag `UH`) and counted in
/// `cluster.refused.upstream_cx_none_healthy`.
pub(super) fn refused() -> Cluster {
    Cluster {
        name: REFUSED.to_string(),
        discovery_type: Some(DiscoveryType::Static),
        connect_timeout: cluster::CONNECT_TIMEOUT,
        ..Cluster::default()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use crate::envoy::Address;
    use crate::generate::test_support::{service, Fixture};
    use crate::generate::transparent::tests::options;
    use crate::generate::transparent::{build, DEFAULT_VIP_CIDR, DEFAULT_VIP_CIDR6};

    #[test]
    fn listeners_per_name_and_port_reach_one_service_each() {
        let f = Fixture::new(
            &[
                service("httpbin", "http", "{address: httpbin.test:8443}"),
                service("my_db", "tcp", "{address: 10.1.2.3:5432}"),
                service(
                    "hidden",
                    "http",
                    "{address: hidden.test:81, disableHostDNSEntry: true}",
                ),
            ]
            .concat(),
        );
        let parts = build(&f.ctx(), &options(DEFAULT_VIP_CIDR, None)).unwrap();
        let vip = |name: &str| parts.vips.get(name).unwrap();
        let cidr6: Cidr6 = DEFAULT_VIP_CIDR6.parse().unwrap();
        let mut got: Vec<(String, String)> = parts.listeners[3..]
            .iter()
            .map(|l| {
                let Address::SocketAddress(a) = &l.address else {
                    panic!("{} has no socket address", l.name)
                };
                let host = parts
                    .vips
                    .vips
                    .iter()
                    .find_map(|(name, ip)| {
                        if ip.to_string() == a.address {
                            Some(name.clone())
                        } else {
                            (cidr6.twin(*ip).to_string() == a.address)
                                .then(|| format!("{name} (IPv6)"))
                        }
                    })
                    .unwrap_or(a.address.clone());
                (format!("{host}:{}", a.port_value), l.name.clone())
            })
            .collect();
        got.sort();
        // Each VIP:port, and the same on the VIP's IPv6 twin.
        let want = |name: &str, port: u16| {
            [
                (
                    format!("{name}:{port}"),
                    format!("outbound:{}:{port}", vip(name)),
                ),
                (
                    format!("{name} (IPv6):{port}"),
                    format!("outbound:[{}]:{port}", cidr6.twin(vip(name))),
                ),
            ]
        };
        let mut expected: Vec<(String, String)> = [
            want("hidden.mesh", 80),
            want("hidden.mesh", 81),
            want("httpbin.mesh", 80),
            want("httpbin.mesh", 8443),
            want("httpbin.test", 80),
            want("httpbin.test", 8443),
            want("my_db.mesh", 80),
            want("my_db.mesh", 5432),
        ]
        .concat();
        // An ExternalService's own IP address has no twin.
        expected.push((
            "10.1.2.3:5432".to_string(),
            "outbound:10.1.2.3:5432".to_string(),
        ));
        expected.sort();
        assert_eq!(got, expected);
        assert!(
            parts.vips.get("hidden.test").is_none(),
            "disableHostDNSEntry: no name"
        );
        assert!(parts.listeners[3..]
            .iter()
            .all(|l| l.bind_to_port == Some(false)));
        let clusters: Vec<&str> = parts.clusters.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(clusters, [cluster::PASSTHROUGH, REFUSED]);
    }

    #[test]
    fn ipv6_is_captured_where_the_redirect_sends_it() {
        for (listen, want) in [
            ("127.0.0.1:15001", Some("[::1]:15001")),
            ("0.0.0.0:16001", Some("[::]:16001")),
            ("[::1]:15001", None),
        ] {
            let got = ipv6_capture_address(listen.parse().unwrap()).map(|a| a.to_string());
            assert_eq!(got.as_deref(), want, "{listen}");
        }
        let on = Fixture::new(&service("web", "http", "{address: web.test:80}"));
        let parts = build(&on.ctx(), &options(DEFAULT_VIP_CIDR, None)).unwrap();
        let capture6 = serde_json::to_value(&parts.listeners[1]).unwrap();
        assert_eq!(capture6["name"], CAPTURE_IPV6);
        assert_eq!(capture6["use_original_dst"], true);
        assert_eq!(
            capture6.pointer("/address/socket_address/address"),
            Some(&serde_json::json!("::1"))
        );
        // Passthrough on: a connection to `[::1]:15001` itself is refused, not looped.
        let loop_guard = capture6
            .pointer("/filter_chains/0/filter_chain_match/prefix_ranges/0")
            .unwrap();
        assert_eq!(
            loop_guard,
            &serde_json::json!({"address_prefix": "::1", "prefix_len": 128})
        );
    }
}
