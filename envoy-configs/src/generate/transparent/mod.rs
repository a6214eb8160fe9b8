//! The transparent proxy (`--transparent-proxy`), after Kuma's: a capture listener that the
//! iptables REDIRECT of `extsvc transparent-proxy install` sends every outbound TCP connection
//! to; one listener per VIP:port (not bound to a port) that the capture listener hands a
//! connection to by its original destination; the builtin DNS that answers declared names
//! with their VIPs; and, for every other destination, passthrough or a logged refusal.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::str::FromStr;

use external_service_model::address::{self, Host};
use external_service_model::authority::HostRef;
use external_service_model::catalog::{Catalog, Service, Target, DEFAULT_REQUEST_PORT};
use serde::{Deserialize, Serialize};

use crate::envoy::{
    Address, AddressList, CidrRange, Cluster, DiscoveryType, DnsClientConfig, DnsEndpoint,
    DnsFilterConfig, DnsServerConfig, DnsTable, DnsVirtualDomain, Duration, Extension, FilterChain,
    FilterChainMatch, LbPolicy, Listener, ListenerFilterConfig, NetworkFilter, NetworkFilterConfig,
    OriginalDst, SocketProtocol, TcpProxy,
};

use super::{access_log, cluster, listener, Context, Error};

/// Kuma's range for VIPs: reserved addresses that route out of the namespace, so the
/// REDIRECT rule sees them.
pub const DEFAULT_VIP_CIDR: &str = "240.0.0.0/4";
pub const DEFAULT_DNS_LISTEN: &str = "127.0.0.1:15053";
pub const CAPTURE: &str = "outbound_capture";
pub const DNS: &str = "builtin_dns";
/// The cluster of refused connections: no endpoints, so every connection closes at once.
pub const REFUSED: &str = "refused";
/// The access log's `denied` for a connection to a destination no service declares.
pub const UNDECLARED_DESTINATION: &str = "undeclared-destination";
/// What `--xds-dir` keeps beside the listeners: every name ever given a VIP.
pub const VIPS_FILE: &str = "vips.json";
/// The DNS filter's smallest answer TTL.
const ANSWER_TTL: Duration = Duration::from_secs(30);

/// What the transparent proxy needs beyond the resources.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    pub vip_cidr: Cidr,
    /// The builtin DNS's UDP address (`--redirect-dns` sends port 53 there).
    pub dns_listen: SocketAddr,
    /// With `--xds-dir`, the allocation earlier runs kept there (empty on the first): its
    /// VIPs do not move, and a new name whose first choice is taken gets a free one.
    pub previous: Option<Vips>,
}

/// An IPv4 range `a.b.c.d/n`, its host bits zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    base: u32,
    prefix_len: u8,
}

impl Cidr {
    /// How many addresses it holds, the first and last left out.
    fn usable(self) -> u64 {
        (1u64 << (32 - u32::from(self.prefix_len))) - 2
    }

    fn nth_usable(self, n: u64) -> Ipv4Addr {
        // n < usable() < 2^32, so the sum fits.
        Ipv4Addr::from(self.base + 1 + u32::try_from(n).unwrap_or(0))
    }

    fn contains(self, ip: Ipv4Addr) -> bool {
        let mask = u32::MAX << (32 - u32::from(self.prefix_len));
        u32::from(ip) & mask == self.base
    }
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Cidr, String> {
        let (ip, len) = s
            .split_once('/')
            .ok_or_else(|| format!("{s:?} is not an IPv4 range such as {DEFAULT_VIP_CIDR}"))?;
        let ip: Ipv4Addr = ip
            .parse()
            .map_err(|_| format!("{ip:?} is not an IPv4 address"))?;
        let prefix_len: u8 = len
            .parse()
            .ok()
            .filter(|n| (1..=30).contains(n))
            .ok_or_else(|| format!("prefix length {len:?} is not in 1..=30"))?;
        let cidr = Cidr {
            base: u32::from(ip),
            prefix_len,
        };
        if !cidr.contains(ip) {
            return Err(format!(
                "{s:?} has host bits set: write the range's first address"
            ));
        }
        Ok(cidr)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", Ipv4Addr::from(self.base), self.prefix_len)
    }
}

/// Every DNS name that was ever given a VIP, with it; a removed service's names stay, so that
/// their VIPs never go to another name.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Vips {
    pub vip_cidr: String,
    pub vips: BTreeMap<String, Ipv4Addr>,
}

impl Vips {
    pub fn get(&self, name: &str) -> Option<Ipv4Addr> {
        self.vips.get(name).copied()
    }
}

/// The VIP of each of `names` (sorted, distinct). A name's first choice is a hash of the name
/// alone, so adding a service never moves another's VIP. With a previous allocation, its VIPs
/// stay and a new name whose first choice is taken gets the next free address; without one,
/// two names with one first choice are an error (no order of names can decide fairly).
pub fn allocate(names: &BTreeSet<String>, options: &Options) -> Result<Vips, Error> {
    let cidr = options.vip_cidr;
    let mut vips = match &options.previous {
        Some(previous) => {
            if let Some((name, ip)) = previous.vips.iter().find(|(_, ip)| !cidr.contains(**ip)) {
                return Err(Error::Vips(format!(
                    "{VIPS_FILE} gives {name:?} the VIP {ip}, outside --vip-cidr {cidr} (it was \
                     made with {}): keep that range, or remove the file to give every name a new VIP",
                    previous.vip_cidr
                )));
            }
            previous.vips.clone()
        }
        None => BTreeMap::new(),
    };
    let mut taken: BTreeMap<Ipv4Addr, String> =
        vips.iter().map(|(n, ip)| (*ip, n.clone())).collect();
    let size = cidr.usable();
    let new: Vec<&String> = names.iter().filter(|n| !vips.contains_key(*n)).collect();
    for name in new {
        let first = first_index(name, cidr);
        let free = (0..size)
            .map(|step| cidr.nth_usable((first + step) % size))
            .take(if options.previous.is_some() {
                usize::MAX
            } else {
                1
            })
            .find(|ip| !taken.contains_key(ip));
        let Some(ip) = free else {
            let holder = taken
                .get(&first_choice(name, cidr))
                .cloned()
                .unwrap_or_default();
            return Err(Error::Vips(if options.previous.is_some() {
                format!("--vip-cidr {cidr} has no free VIP left for {name:?}: give a wider range")
            } else {
                format!(
                    "{name:?} and {holder:?} hash to the same VIP {} in --vip-cidr {cidr}: give a \
                     wider range, or --xds-dir, which keeps an allocation that tells them apart",
                    first_choice(name, cidr)
                )
            }));
        };
        taken.insert(ip, name.clone());
        vips.insert(name.clone(), ip);
    }
    Ok(Vips {
        vip_cidr: cidr.to_string(),
        vips,
    })
}

/// The VIP a new name gets in `cidr` when no other name holds it: a hash of the name alone.
pub fn first_choice(name: &str, cidr: Cidr) -> Ipv4Addr {
    cidr.nth_usable(first_index(name, cidr))
}

fn first_index(name: &str, cidr: Cidr) -> u64 {
    fnv1a(name) % cidr.usable()
}

/// FNV-1a, 64 bits: fixed forever, unlike std's hasher, so VIPs survive a rebuild.
fn fnv1a(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The names the builtin DNS answers, and the VIPs behind them.
struct Names {
    /// Each VIP's name (`<service>.mesh`, a real host) with the ports a listener may serve on
    /// it: `<service>.mesh` on the service's ports and 80, each real host without
    /// `disableHostDNSEntry` on its port and 80. The catalog decides, port by port, which
    /// service (if any single one) a name reaches.
    ports: BTreeMap<String, BTreeSet<u16>>,
    /// Every name the DNS answers, with the VIP's name it answers with: itself, or for
    /// `<service>.mesh` with dots for underscores, the service's own `.mesh` name (one VIP for
    /// both, as Kuma gives).
    answers: BTreeMap<String, String>,
}

fn dns_names(catalog: &Catalog) -> Names {
    let mut ports: BTreeMap<String, BTreeSet<u16>> = BTreeMap::new();
    // Dotted alias -> the `.mesh` names it stands for (more than one: it answers nothing).
    let mut aliases: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for service in &catalog.services {
        let mut on: BTreeSet<u16> = service.endpoints.iter().map(|e| e.address.port).collect();
        on.insert(DEFAULT_REQUEST_PORT);
        let mesh_name = format!("{}.mesh", service.name.to_ascii_lowercase());
        if mesh_name.contains('_') {
            aliases
                .entry(mesh_name.replace('_', "."))
                .or_default()
                .insert(mesh_name.clone());
        }
        let hosts = service
            .endpoints
            .iter()
            .filter(|e| !e.disable_host_dns_entry)
            .filter_map(|e| match &e.address.host {
                Host::Name(name) => Some(address::normalize_name(name)),
                Host::Ip(_) => None,
            });
        for name in std::iter::once(mesh_name).chain(hosts) {
            ports.entry(name).or_default().extend(&on);
        }
    }
    let mut answers: BTreeMap<String, String> =
        ports.keys().map(|n| (n.clone(), n.clone())).collect();
    for (alias, mut owners) in aliases {
        // A name some service holds as its own keeps its own VIP.
        if ports.contains_key(&alias) || owners.len() > 1 {
            continue;
        }
        if let Some(owner) = owners.pop_first() {
            answers.insert(alias, owner);
        }
    }
    Names { ports, answers }
}

/// A declared destination and the one service it reaches.
struct Destination<'a> {
    address: SocketAddr,
    service: &'a Service,
}

fn destinations<'a>(catalog: &'a Catalog, names: &Names, vips: &Vips) -> Vec<Destination<'a>> {
    let service = |host: HostRef<'_>, port: u16| match catalog.lookup(host, Some(port)) {
        Some(Target::Service(id)) => catalog.services.get(id),
        Some(Target::Ambiguous) | None => None,
    };
    let mut found = Vec::new();
    for (name, ports) in &names.ports {
        let Some(vip) = vips.get(name) else { continue };
        for &port in ports {
            if let Some(service) = service(HostRef::Name(name), port) {
                found.push(Destination {
                    address: SocketAddr::new(IpAddr::V4(vip), port),
                    service,
                });
            }
        }
    }
    // An IP address is its own VIP.
    let ips: BTreeSet<(IpAddr, u16)> = catalog
        .services
        .iter()
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

/// What the transparent proxy adds to a configuration.
pub struct Parts {
    pub listeners: Vec<Listener>,
    pub clusters: Vec<Cluster>,
    pub vips: Vips,
}

/// The capture listener, the builtin DNS, one listener per declared VIP:port, and the cluster
/// for everything else (passthrough to the original destination, or refusal).
pub fn build(ctx: &Context<'_>, options: &Options) -> Result<Parts, Error> {
    let names = dns_names(ctx.catalog);
    let vips = allocate(&names.ports.keys().cloned().collect(), options)?;
    let mut listeners = vec![capture(ctx), dns(ctx, options.dns_listen, &names, &vips)];
    listeners.extend(
        destinations(ctx.catalog, &names, &vips)
            .into_iter()
            .map(|d| Listener {
                bind_to_port: Some(false),
                ..listener::bound(ctx, d.address, d.service)
            }),
    );
    // With passthrough on, `refused` still takes connections made to the capture listener.
    let mut clusters = vec![refused()];
    if ctx.catalog.passthrough {
        clusters.insert(0, original_destination());
    }
    Ok(Parts {
        listeners,
        clusters,
        vips,
    })
}

/// `--listen`: every captured connection arrives here and goes on to the listener of its
/// original destination; one with none goes through (passthrough) or is refused and logged.
/// With passthrough on, a connection made to this address itself is refused: passing it
/// through would loop.
fn capture(ctx: &Context<'_>) -> Listener {
    let listen = ctx.options.listen;
    let (cluster, denied) = if ctx.catalog.passthrough {
        (cluster::PASSTHROUGH, "")
    } else {
        (REFUSED, UNDECLARED_DESTINATION)
    };
    let to = |cluster: &str, denied: &str| NetworkFilter {
        name: "envoy.filters.network.tcp_proxy",
        typed_config: NetworkFilterConfig::TcpProxy(TcpProxy {
            stat_prefix: CAPTURE.to_string(),
            cluster: cluster.to_string(),
            access_log: access_log::capture(CAPTURE, denied),
            idle_timeout: None,
            max_connect_attempts: None,
        }),
    };
    let mut capture = listener::listener(CAPTURE, listen, to(cluster, denied));
    if ctx.catalog.passthrough {
        capture.filter_chains.insert(
            0,
            FilterChain {
                filter_chain_match: Some(FilterChainMatch {
                    destination_port: listen.port(),
                    prefix_ranges: vec![CidrRange {
                        address_prefix: listen.ip().to_string(),
                        prefix_len: if listen.is_ipv4() { 32 } else { 128 },
                    }],
                }),
                filters: vec![to(REFUSED, UNDECLARED_DESTINATION)],
            },
        );
    }
    Listener {
        use_original_dst: Some(true),
        listener_filters: vec![Extension {
            name: "envoy.filters.listener.original_dst",
            typed_config: ListenerFilterConfig::OriginalDst(OriginalDst {}),
        }],
        ..capture
    }
}

/// The builtin DNS: declared names answer with their VIPs. The rest go to `--dns-resolver`
/// (else the system's resolver) with passthrough on; with it off they get NXDOMAIN and leave
/// nothing, as a name can carry data out through any recursive resolver. Each query is logged.
fn dns(ctx: &Context<'_>, at: SocketAddr, names: &Names, vips: &Vips) -> Listener {
    let virtual_domains = names
        .answers
        .iter()
        .filter_map(|(name, vip_name)| {
            Some(DnsVirtualDomain {
                name: name.clone(),
                endpoint: DnsEndpoint {
                    address_list: AddressList {
                        address: vec![vips.get(vip_name)?.to_string()],
                    },
                },
                answer_ttl: ANSWER_TTL,
            })
        })
        .collect();
    let mut address = Address::from(at);
    address.socket_address.protocol = Some(SocketProtocol::Udp);
    Listener {
        name: DNS.to_string(),
        address,
        listener_filters: vec![Extension {
            name: "envoy.filters.udp.dns_filter",
            typed_config: ListenerFilterConfig::DnsFilter(DnsFilterConfig {
                stat_prefix: DNS.to_string(),
                server_config: DnsServerConfig {
                    inline_dns_table: DnsTable { virtual_domains },
                },
                client_config: ctx.catalog.passthrough.then(|| DnsClientConfig {
                    resolver_timeout: Duration::from_secs(5),
                    typed_dns_resolver_config: ctx.options.dns_resolver.map(cluster::dns_resolver),
                    max_pending_lookups: 256,
                }),
                access_log: access_log::dns(DNS),
            }),
        }],
        ..Listener::default()
    }
}

/// Passthrough on: a connection to an undeclared destination goes there as it is.
fn original_destination() -> Cluster {
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
fn refused() -> Cluster {
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
    use crate::generate::test_support::{service, Fixture};

    fn options(cidr: &str, previous: Option<Vips>) -> Options {
        Options {
            vip_cidr: cidr.parse().unwrap(),
            dns_listen: DEFAULT_DNS_LISTEN.parse().unwrap(),
            previous,
        }
    }

    fn names(list: &[&str]) -> BTreeSet<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn cidrs() {
        assert_eq!(
            DEFAULT_VIP_CIDR.parse::<Cidr>().unwrap().to_string(),
            "240.0.0.0/4"
        );
        for (bad, why) in [
            ("240.0.0.0", "not an IPv4 range"),
            ("240.0.0.1/4", "host bits set"),
            ("240.0.0.0/31", "not in 1..=30"),
            ("fd00::/8", "not an IPv4 address"),
        ] {
            let e = bad.parse::<Cidr>().unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn a_vip_depends_on_its_name_alone_and_stays_in_the_range() {
        let o = options(DEFAULT_VIP_CIDR, None);
        let one = allocate(&names(&["httpbin.mesh"]), &o).unwrap();
        let more = allocate(&names(&["a.mesh", "httpbin.mesh", "z.example"]), &o).unwrap();
        assert_eq!(one.get("httpbin.mesh"), more.get("httpbin.mesh"));
        let cidr: Cidr = DEFAULT_VIP_CIDR.parse().unwrap();
        assert!(more.vips.values().all(|ip| cidr.contains(*ip)));
        let distinct: BTreeSet<_> = more.vips.values().collect();
        assert_eq!(distinct.len(), 3);
    }

    #[test]
    fn a_kept_allocation_keeps_every_vip_and_never_reuses_one() {
        // A /30 holds two usable addresses: the third name cannot have one.
        let first = allocate(
            &names(&["a.mesh", "b.mesh"]),
            &options("10.0.0.0/30", Some(Vips::default())),
        )
        .unwrap();
        let again = allocate(
            &names(&["b.mesh"]),
            &options("10.0.0.0/30", Some(first.clone())),
        )
        .unwrap();
        assert_eq!(again, first, "a removed name keeps its VIP");
        let e = allocate(
            &names(&["b.mesh", "c.mesh"]),
            &options("10.0.0.0/30", Some(again)),
        )
        .unwrap_err();
        assert!(
            e.to_string().contains("no free VIP left for \"c.mesh\""),
            "{e}"
        );
        let moved =
            allocate(&names(&["a.mesh"]), &options("192.168.0.0/16", Some(first))).unwrap_err();
        assert!(
            moved
                .to_string()
                .contains("outside --vip-cidr 192.168.0.0/16"),
            "{moved}"
        );
    }

    #[test]
    fn without_a_kept_allocation_two_names_on_one_vip_are_an_error() {
        let e = allocate(
            &names(&["a.mesh", "b.mesh", "c.mesh"]),
            &options("10.0.0.0/30", None),
        )
        .unwrap_err();
        assert!(e.to_string().contains("hash to the same VIP"), "{e}");
    }

    /// The builtin DNS's configuration.
    fn dns_filter(parts: &Parts) -> &DnsFilterConfig {
        let ListenerFilterConfig::DnsFilter(dns) =
            &parts.listeners[1].listener_filters[0].typed_config
        else {
            panic!("the second listener is the builtin DNS")
        };
        dns
    }

    /// The DNS filter's answers: each name with its address.
    fn answers(parts: &Parts) -> BTreeMap<String, String> {
        dns_filter(parts)
            .server_config
            .inline_dns_table
            .virtual_domains
            .iter()
            .map(|d| (d.name.clone(), d.endpoint.address_list.address.join(",")))
            .collect()
    }

    #[test]
    fn only_passthrough_lets_an_undeclared_name_go_to_a_resolver() {
        let web = service("web", "http", "{address: web.test:80}");
        let off = format!("type: Mesh\nname: default\nnetworking: {{outbound: {{passthrough: false}}}}\n---\n{web}");
        for (resources, forwards) in [(web.clone(), true), (off, false)] {
            let f = Fixture::new(&resources);
            let parts = build(&f.ctx(), &options(DEFAULT_VIP_CIDR, None)).unwrap();
            let dns = dns_filter(&parts);
            assert_eq!(dns.client_config.is_some(), forwards, "{resources}");
            assert_eq!(dns.access_log.len(), 1);
        }
    }

    #[test]
    fn a_mesh_name_and_its_dotted_alias_share_one_vip() {
        let f = Fixture::new(
            &[
                service("my_db", "http", "{address: db.test:5432}"),
                // Its alias `a.b.mesh` is another service's own name: that one keeps it.
                service("a_b", "http", "{address: ab.test:81}"),
                service("a.b", "http", "{address: dotted.test:82}"),
                // Two services with one alias: it answers neither.
                service("x_y.z", "http", "{address: xyz.test:83}"),
                service("x.y_z", "http", "{address: zyx.test:84}"),
            ]
            .concat(),
        );
        let parts = build(&f.ctx(), &options(DEFAULT_VIP_CIDR, None)).unwrap();
        let answers = answers(&parts);
        let vip = |name: &str| parts.vips.get(name).unwrap().to_string();
        assert_eq!(answers["my.db.mesh"], vip("my_db.mesh"));
        assert_eq!(answers["my_db.mesh"], vip("my_db.mesh"));
        assert_ne!(
            answers["db.test"],
            vip("my_db.mesh"),
            "the real host has its own"
        );
        assert_eq!(answers["a.b.mesh"], vip("a.b.mesh"));
        assert_ne!(vip("a.b.mesh"), vip("a_b.mesh"));
        assert!(!answers.contains_key("x.y.z.mesh"), "{answers:?}");
        assert!(parts.vips.get("my.db.mesh").is_none(), "no VIP of its own");
        // One listener per VIP:port, on the shared VIP.
        let names: BTreeSet<&str> = parts.listeners.iter().map(|l| l.name.as_str()).collect();
        let shared = vip("my_db.mesh");
        assert!(
            names.contains(format!("outbound:{shared}:5432").as_str()),
            "{names:?}"
        );
        assert!(
            names.contains(format!("outbound:{shared}:80").as_str()),
            "{names:?}"
        );
        assert_eq!(names.len(), parts.listeners.len(), "a listener twice");
    }

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
        let mut got: Vec<(String, String)> = parts.listeners[2..]
            .iter()
            .map(|l| {
                let a = &l.address.socket_address;
                let host = parts
                    .vips
                    .vips
                    .iter()
                    .find(|(_, ip)| ip.to_string() == a.address)
                    .map_or(a.address.clone(), |(n, _)| n.clone());
                (format!("{host}:{}", a.port_value), l.name.clone())
            })
            .collect();
        got.sort();
        let want = |name: &str, port: u16| {
            (
                format!("{name}:{port}"),
                format!("outbound:{}:{port}", vip(name)),
            )
        };
        let mut expected = vec![
            want("hidden.mesh", 80),
            want("hidden.mesh", 81),
            want("httpbin.mesh", 80),
            want("httpbin.mesh", 8443),
            want("httpbin.test", 80),
            want("httpbin.test", 8443),
            want("my_db.mesh", 80),
            want("my_db.mesh", 5432),
            (
                "10.1.2.3:5432".to_string(),
                "outbound:10.1.2.3:5432".to_string(),
            ),
        ];
        expected.sort();
        assert_eq!(got, expected);
        assert!(
            parts.vips.get("hidden.test").is_none(),
            "disableHostDNSEntry: no name"
        );
        assert!(parts.listeners[2..]
            .iter()
            .all(|l| l.bind_to_port == Some(false)));
        let clusters: Vec<&str> = parts.clusters.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(clusters, [cluster::PASSTHROUGH, REFUSED]);
    }
}
