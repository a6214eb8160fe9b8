//! The builtin DNS: the names it answers (each service's `.mesh` name and dotted alias, each
//! real host, each MeshExternalService's hostnames), the VIPs behind them, and its UDP
//! listener.

use std::collections::{BTreeMap, BTreeSet};

use external_service_model::address::{self, Host};
use external_service_model::catalog::{Catalog, Matched, Service, DEFAULT_REQUEST_PORT};
use external_service_model::resource::Kind;

use crate::envoy::{
    Address, AddressList, DnsClientConfig, DnsEndpoint, DnsFilterConfig, DnsServerConfig, DnsTable,
    DnsVirtualDomain, Duration, Extension, Listener, ListenerFilterConfig,
};

use crate::generate::{access_log, cluster, Context};

use super::vips::Vips;
use super::Options;

pub const DEFAULT_DNS_LISTEN: &str = "127.0.0.1:15053";
pub const DNS: &str = "builtin_dns";
/// The DNS filter's smallest answer TTL.
const ANSWER_TTL: Duration = Duration::from_secs(30);

/// The names the builtin DNS answers, and the VIPs behind them.
pub(super) struct Names {
    /// Each VIP's name (`<service>.mesh`, a real host) with the ports a listener may serve on
    /// it: `<service>.mesh` on the service's ports and 80, each real host without
    /// `disableHostDNSEntry` on its port and 80, and a MeshExternalService's hostname that is
    /// also one of these on its `match.port`. The catalog decides, port by port, which
    /// service (if any single one) a name reaches.
    pub(super) ports: BTreeMap<String, BTreeSet<u16>>,
    /// Every name the DNS answers, with the VIP it answers with.
    answers: BTreeMap<String, Answer>,
}

/// Whose VIP a name answers with.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Answer {
    /// A name's: itself, or for `<service>.mesh` with dots for underscores, the service's own
    /// `.mesh` name (one VIP for both, as Kuma gives).
    Name(String),
    /// A MeshExternalService's (by name): each of its hostnames.
    MeshExternalService(String),
}

pub(super) fn dns_names(catalog: &Catalog) -> Names {
    let mut ports: BTreeMap<String, BTreeSet<u16>> = BTreeMap::new();
    // Dotted alias -> the `.mesh` names it stands for (more than one: it answers nothing).
    let mut aliases: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for service in catalog
        .services
        .iter()
        .filter(|s| s.kind == Kind::ExternalService)
    {
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
    let mut answers: BTreeMap<String, Answer> = ports
        .keys()
        .map(|n| (n.clone(), Answer::Name(n.clone())))
        .collect();
    for (alias, mut owners) in aliases {
        // A name some service holds as its own keeps its own VIP.
        if ports.contains_key(&alias) || owners.len() > 1 {
            continue;
        }
        if let Some(owner) = owners.pop_first() {
            answers.insert(alias, Answer::Name(owner));
        }
    }
    for (service, matched) in mesh_external_services(catalog) {
        for hostname in &matched.hostnames {
            match ports.get_mut(hostname) {
                // An ExternalService's name keeps its VIP; the catalog tells, port by port,
                // which of the two a listener on it reaches.
                Some(on) => {
                    on.insert(matched.port);
                }
                None => {
                    answers
                        .entry(hostname.clone())
                        .or_insert_with(|| Answer::MeshExternalService(service.name.clone()));
                }
            }
        }
    }
    Names { ports, answers }
}

/// Each MeshExternalService of the catalog, with its `match`.
pub(super) fn mesh_external_services(
    catalog: &Catalog,
) -> impl Iterator<Item = (&Service, &Matched)> {
    catalog
        .services
        .iter()
        .filter_map(|s| Some((s, s.matched.as_ref()?)))
}

/// The builtin DNS: declared names answer with their VIPs (A) and the VIPs' IPv6 twins
/// (AAAA). The rest go to `--dns-resolver` (else the system's resolver) when something
/// undeclared may go out (`forward`: passthrough on, or a MeshPassthrough that matches); else
/// they get NXDOMAIN and leave nothing, as a name can carry data out through any recursive
/// resolver. Each query is logged.
pub(super) fn dns(
    ctx: &Context<'_>,
    options: &Options,
    names: &Names,
    vips: &Vips,
    forward: bool,
) -> Listener {
    let virtual_domains = names
        .answers
        .iter()
        .filter_map(|(name, answer)| {
            let vip = match answer {
                Answer::Name(vip_name) => vips.get(vip_name),
                Answer::MeshExternalService(service) => vips.of_mesh_external_service(service),
            };
            let vip = vip?;
            Some(DnsVirtualDomain {
                name: name.clone(),
                endpoint: DnsEndpoint {
                    address_list: AddressList {
                        address: vec![vip.to_string(), options.vip_cidr6.twin(vip).to_string()],
                    },
                },
                answer_ttl: ANSWER_TTL,
            })
        })
        .collect();
    Listener {
        name: DNS.to_string(),
        address: Address::udp(options.dns_listen),
        listener_filters: vec![Extension {
            name: "envoy.filters.udp.dns_filter",
            typed_config: ListenerFilterConfig::DnsFilter(DnsFilterConfig {
                stat_prefix: DNS.to_string(),
                server_config: DnsServerConfig {
                    inline_dns_table: DnsTable { virtual_domains },
                },
                client_config: forward.then(|| DnsClientConfig {
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use crate::generate::test_support::{mesh_external_service, service, Fixture};
    use crate::generate::transparent::tests::options;
    use crate::generate::transparent::{
        build, Cidr, Cidr6, Parts, DEFAULT_MES_VIP_CIDR, DEFAULT_VIP_CIDR, DEFAULT_VIP_CIDR6,
    };

    /// The builtin DNS's configuration.
    fn dns_filter(parts: &Parts) -> &DnsFilterConfig {
        let ListenerFilterConfig::DnsFilter(dns) =
            &parts.listeners[2].listener_filters[0].typed_config
        else {
            panic!("the third listener is the builtin DNS")
        };
        dns
    }

    /// The DNS filter's answers: each name with its VIP, after checking that the name also
    /// answers (AAAA) with the VIP's IPv6 twin in the default `--vip-cidr6`.
    fn answers(parts: &Parts) -> BTreeMap<String, String> {
        let cidr6: Cidr6 = DEFAULT_VIP_CIDR6.parse().unwrap();
        dns_filter(parts)
            .server_config
            .inline_dns_table
            .virtual_domains
            .iter()
            .map(|d| {
                let [a, aaaa] = d.endpoint.address_list.address.as_slice() else {
                    panic!("{} answers {:?}", d.name, d.endpoint.address_list)
                };
                assert_eq!(aaaa, &cidr6.twin(a.parse().unwrap()).to_string());
                (d.name.clone(), a.clone())
            })
            .collect()
    }

    #[test]
    fn only_passthrough_or_a_mesh_passthrough_match_lets_an_undeclared_name_go_to_a_resolver() {
        let web = service("web", "http", "{address: web.test:80}");
        let off = format!("type: Mesh\nname: default\nnetworking: {{outbound: {{passthrough: false}}}}\n---\n{web}");
        let mesh_passthrough = |mode: &str| {
            format!("type: MeshPassthrough\nname: mpt\nmesh: default\nspec:\n  default: {{passthroughMode: {mode}}}\n---\n")
        };
        let matched = format!("{off}{}", mesh_passthrough("Matched"));
        let none = format!("{}{web}", mesh_passthrough("None"));
        for (resources, forwards) in [
            (web.clone(), true),
            (off, false),
            (matched, true),
            (none, false),
        ] {
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
    fn a_mesh_external_service_answers_by_its_hostnames_with_its_own_vip() {
        let display = |name: &str, display: &str| {
            mesh_external_service(name, "http", 8080, "api.test:80").replace(
                &format!("name: {name}\n"),
                &format!("name: {name}\nlabels: {{kuma.io/display-name: {display}}}\n"),
            )
        };
        let f = Fixture::new(
            &[
                display("ext", "shared"),
                // Its hostname is `ext`'s: a collision leaves it none.
                display("lost", "shared"),
                mesh_external_service("db", "tcp", 5432, "10.1.2.3:5432"),
                // A real host that is also a MeshExternalService's hostname.
                service("web", "http", "{address: db.extsvc.mesh.local:80}"),
            ]
            .concat(),
        );
        let parts = build(&f.ctx(), &options(DEFAULT_VIP_CIDR, None)).unwrap();
        let answers = answers(&parts);
        let mes = |name: &str| parts.vips.of_mesh_external_service(name).unwrap();
        let mes_range: Cidr = DEFAULT_MES_VIP_CIDR.parse().unwrap();
        assert_eq!(answers["shared.extsvc.mesh.local"], mes("ext").to_string());
        assert!(["ext", "lost", "db"]
            .iter()
            .all(|n| mes_range.contains(mes(n))));
        // Neither a `.mesh` name nor the endpoints' hosts: Kuma's hostnames alone.
        for absent in [
            "ext.mesh",
            "ext.extsvc.mesh.local",
            "api.test",
            "lost.mesh",
            "10.1.2.3",
        ] {
            assert!(!answers.contains_key(absent), "{absent}: {answers:?}");
        }
        // The ExternalService keeps its name's VIP; its listener on the MeshExternalService's
        // port reaches the MeshExternalService.
        let web = parts.vips.get("db.extsvc.mesh.local").unwrap();
        assert_eq!(answers["db.extsvc.mesh.local"], web.to_string());
        let bound: BTreeMap<String, String> = parts.listeners[3..]
            .iter()
            .map(|l| {
                let l = serde_json::to_value(l).unwrap();
                let chain = "/filter_chains/0/filters/0/typed_config";
                let to = [
                    format!("{chain}/route_config/virtual_hosts/0/name"),
                    format!("{chain}/cluster"),
                ]
                .iter()
                .find_map(|p| l.pointer(p)?.as_str())
                .unwrap_or_default()
                .to_string();
                (l["name"].as_str().unwrap().to_string(), to)
            })
            .collect();
        let to = |address: String| bound.get(&format!("outbound:{address}")).cloned();
        assert_eq!(
            to(format!("{}:8080", mes("ext"))).as_deref(),
            Some("external_service_mes_ext")
        );
        assert_eq!(
            to(format!("{}:8080", mes("lost"))).as_deref(),
            Some("external_service_mes_lost"),
            "no name, still its VIP"
        );
        assert_eq!(
            to(format!("{}:5432", mes("db"))).as_deref(),
            Some("external_service_mes_db")
        );
        let cidr6: Cidr6 = DEFAULT_VIP_CIDR6.parse().unwrap();
        assert_eq!(
            to(format!("[{}]:5432", cidr6.twin(mes("db")))).as_deref(),
            Some("external_service_mes_db"),
            "its VIP's IPv6 twin reaches it too"
        );
        assert_eq!(
            to(format!("{web}:5432")).as_deref(),
            Some("external_service_mes_db")
        );
        assert_eq!(
            to(format!("{web}:80")).as_deref(),
            Some("external_service_web")
        );
        assert_eq!(
            to("10.1.2.3:5432".to_string()),
            None,
            "an endpoint's IP is no VIP"
        );
    }
}
