//! The compiled form of one mesh's valid resources: its services, and a table from every name
//! a request may use to the service it reaches. Built once at configure time.

use std::collections::{BTreeMap, BTreeSet};
use std::hash::Hash;

use rustc_hash::FxHashMap;
use std::net::IpAddr;

use crate::address::{self, Address, Host};
use crate::authority::HostRef;
use crate::hostname_generator::{self, Generator, Outcome};
use crate::mesh_external_service::MeshExternalServiceSpec;
use crate::mesh_passthrough::{self, Class, MeshPassthroughSpec, PassthroughMode, Query, Table};
use crate::protocol::Protocol;
use crate::resource::{Kind, Resource, Spec, DEFAULT_MESH, PROTOCOL_TAG, SERVICE_TAG};
use crate::traffic_permission::{Caller, Permissions};
use crate::upstream_tls::UpstreamTls;

pub type ServiceId = usize;

/// The zone this data plane is in, for HostnameGenerator templates (`.Zone`): a standalone
/// Kuma control plane's.
pub const ZONE: &str = "default";

/// One `kuma.io/service` (every ExternalService with that tag is an endpoint of it), or one
/// MeshExternalService.
#[derive(Debug, Clone, PartialEq)]
pub struct Service {
    /// `ExternalService` or `MeshExternalService`.
    pub kind: Kind,
    /// The `kuma.io/service`, or the MeshExternalService's name.
    pub name: String,
    pub protocol: Protocol,
    /// No endpoint has a `kuma.io/protocol` tag: `protocol` is Kuma's default, tcp.
    pub protocol_untagged: bool,
    pub endpoints: Vec<Endpoint>,
    /// Shared by every endpoint (validation makes sure); `None` when TLS origination is off.
    pub tls: Option<UpstreamTls>,
    /// What `:authority` becomes on the way out, which names the service's route: the first
    /// endpoint's host, with its port unless that is the default for the scheme (443 with
    /// TLS, 80 without). A service that shares it with another and gave up its real name
    /// (`disableHostDNSEntry`) is routed by its `.mesh` name instead.
    pub authority: String,
    /// The authority the route gives the upstream when `authority` is the `.mesh` name.
    pub host_rewrite: Option<String>,
    /// A MeshExternalService's `match`: `None` for an ExternalService.
    pub matched: Option<Matched>,
    /// Set when this Envoy is one Dataplane's and a traffic permission does not let it reach
    /// the service: every request to it is refused (`not-permitted`).
    pub refused: Option<Refusal>,
}

/// Why a Dataplane may not reach a service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The Dataplane's name and its `kuma.io/service`: who asked.
    pub dataplane: String,
    pub source: String,
    /// The policy that denies it (`MeshTrafficPermission "deny-batch"`), or `None` when no
    /// policy allows it.
    pub decided_by: Option<String>,
}

impl Service {
    /// A forwarded request's `:authority` must become this service's.
    pub fn rewrites(&self, requested: Option<&str>) -> bool {
        requested != Some(self.authority.as_str())
    }

    /// The name a forwarded request asked for is kept for the access log: Envoy no longer
    /// knows it once the authority is rewritten, here or (for a MeshExternalService) by its
    /// route's `auto_host_rewrite`.
    pub fn keeps_requested(&self, requested: Option<&str>) -> bool {
        requested.is_some() && (self.rewrites(requested) || self.matched.is_some())
    }
}

/// What a MeshExternalService is reached by.
#[derive(Debug, Clone, PartialEq)]
pub struct Matched {
    pub port: u16,
    /// From its HostnameGenerators, in their order; none when no generator gave it one (a
    /// collision): then it is reached only by its VIP or a Dataplane outbound.
    pub hostnames: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Endpoint {
    /// The resource that declared it.
    pub resource: String,
    pub address: Address,
    pub disable_host_dns_entry: bool,
    /// Envoy's priority level (MeshExternalService `priority`): 0 is tried first.
    pub priority: u32,
}

/// What a name leads to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Service(ServiceId),
    /// Several services claim the name with equal right (e.g. one host on two ports, asked
    /// for without a port): refusing beats guessing.
    Ambiguous,
}

/// How strongly a service claims a name: an explicit claim beats one inferred from defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Rank {
    /// The real host on port 80, or a `.mesh` alias with dots for underscores.
    Inferred,
    Exact,
}

#[derive(Debug, Clone, Copy)]
struct Claim {
    target: Target,
    rank: Rank,
}

/// Ports of one host; a handful at most, so a short list beats a map.
type Ports = Vec<(u16, Claim)>;

#[derive(Debug, Clone)]
pub struct Catalog {
    pub mesh: String,
    /// Whether a host no service declares may go out at all: the `Mesh`'s flag, or the mode
    /// the mesh's MeshPassthroughs give.
    pub passthrough: bool,
    /// The MeshPassthroughs that apply to this Envoy (its proxy port and its transparent
    /// proxy), merged; `None` when there are none.
    pub mesh_passthrough: Option<ProxyPortPassthrough>,
    pub services: Vec<Service>,
    // Fx, not SipHash: the keys come from the configuration, so requests cannot aim
    // collisions at the table, and every request hashes its host once.
    names: FxHashMap<Box<str>, Ports>,
    ips: FxHashMap<IpAddr, Ports>,
}

impl Catalog {
    /// Marks every service that the Dataplane `dataplane` (with its inbound `tags`) may not
    /// reach by `permissions`: its requests are refused. Done once, at configure time, so a
    /// request pays one check whatever the number of services and rules.
    pub fn refuse_unpermitted(
        &mut self,
        permissions: &Permissions,
        dataplane: &str,
        tags: &BTreeMap<String, String>,
    ) {
        let caller = Caller { tags };
        let source = tags.get(SERVICE_TAG).cloned().unwrap_or_default();
        for service in &mut self.services {
            let verdict = permissions.decide(service.kind, &service.name, &caller);
            if !verdict.action.allows() {
                service.refused = Some(Refusal {
                    dataplane: dataplane.to_string(),
                    source: source.clone(),
                    decided_by: verdict.decided_by.map(|p| p.to_string()),
                });
            }
        }
    }
}

/// The port a request without one means: apps speak plain HTTP to the outbound listener.
pub const DEFAULT_REQUEST_PORT: u16 = 80;

impl Catalog {
    /// Builds the tables for `mesh` from resources that passed validation.
    pub fn build(resources: &[Resource], mesh: &str) -> Catalog {
        let mut catalog = Catalog {
            mesh: mesh.to_string(),
            passthrough: true,
            mesh_passthrough: None,
            services: Vec::new(),
            names: FxHashMap::default(),
            ips: FxHashMap::default(),
        };
        let mut by_name: FxHashMap<&str, ServiceId> = FxHashMap::default();
        let hostnames = mesh_external_service_hostnames(resources, mesh);
        for r in resources.iter().filter(|r| r.mesh == mesh) {
            match &r.spec {
                Spec::Mesh(m) => catalog.passthrough = m.passthrough(),
                Spec::ExternalService(es) => {
                    let (Some(service), Some(net)) = (es.service(), &es.networking) else {
                        continue;
                    };
                    let Ok(address) = address::parse(&net.address) else {
                        continue;
                    };
                    let endpoint = Endpoint {
                        resource: r.name.clone(),
                        address,
                        disable_host_dns_entry: net.disable_host_dns_entry,
                        priority: 0,
                    };
                    let tag = es.tags.get(PROTOCOL_TAG).map(String::as_str);
                    let id = *by_name.entry(service).or_insert_with(|| {
                        let tls = net.tls.as_ref().and_then(UpstreamTls::of_external_service);
                        let authority = short_authority(&endpoint.address, tls.is_some());
                        catalog.services.push(Service {
                            kind: Kind::ExternalService,
                            name: service.to_string(),
                            protocol: Protocol::of_tag(tag),
                            protocol_untagged: true,
                            endpoints: Vec::new(),
                            tls,
                            authority,
                            host_rewrite: None,
                            matched: None,
                            refused: None,
                        });
                        catalog.services.len() - 1
                    });
                    let service = &mut catalog.services[id];
                    service.protocol = service.protocol.common(Protocol::of_tag(tag));
                    service.protocol_untagged &= tag.is_none();
                    service.endpoints.push(endpoint);
                }
                Spec::MeshExternalService(mes) => {
                    let names = hostnames.get(r.name.as_str()).cloned().unwrap_or_default();
                    if let Some(service) = mesh_external_service(&r.name, mes, names) {
                        catalog.services.push(service);
                    }
                }
                Spec::Secret(_)
                | Spec::Dataplane(_)
                | Spec::HostnameGenerator(_)
                | Spec::MeshPassthrough(_)
                | Spec::ZoneEgress(_)
                | Spec::MeshTrafficPermission(_)
                | Spec::TrafficPermission(_)
                | Spec::Policy { .. } => {}
            }
        }
        catalog.mesh_passthrough = proxy_port_passthrough(resources, mesh);
        if let Some(policy) = &catalog.mesh_passthrough {
            catalog.passthrough = policy.mode != PassthroughMode::None;
        }
        catalog.route_hidden_services_by_mesh_name();
        catalog.keep_ports_where_authorities_clash();
        for id in 0..catalog.services.len() {
            catalog.claim_names(id);
        }
        catalog
    }

    /// The services whose `key` another service has too.
    fn sharing<'s, K: Hash + Eq>(&'s self, key: impl Fn(&'s Service) -> K) -> Vec<ServiceId> {
        let keys: Vec<K> = self.services.iter().map(key).collect();
        let mut users: FxHashMap<&K, usize> = FxHashMap::default();
        for k in &keys {
            *users.entry(k).or_default() += 1;
        }
        (0..keys.len()).filter(|&id| users[&keys[id]] > 1).collect()
    }

    /// `api.test:443` with TLS and `api.test:80` without both shorten to `api.test`: such
    /// services keep their ports, so the upstream side (routes) can still tell them apart.
    /// (A `.mesh` name has no port to keep.)
    fn keep_ports_where_authorities_clash(&mut self) {
        for id in self.sharing(|s| s.authority.as_str()) {
            let service = &mut self.services[id];
            if service.host_rewrite.is_some() || service.matched.is_some() {
                continue;
            }
            if let Some(first) = service.endpoints.first() {
                service.authority = first.address.to_string();
            }
        }
    }

    /// Services on one `host:port` that gave up their real name (Kuma users reach one host
    /// with two sets of client certificates so) are told apart by their `.mesh` names: the
    /// route of each matches that name and gives the upstream the real authority back. The
    /// one service on that address that kept its real name keeps its authority.
    fn route_hidden_services_by_mesh_name(&mut self) {
        let first_address = |s: &Service| {
            s.endpoints
                .first()
                .map(|e| e.address.to_string())
                .unwrap_or_default()
        };
        for id in self.sharing(first_address) {
            let service = &mut self.services[id];
            if service.kind == Kind::ExternalService
                && service
                    .endpoints
                    .first()
                    .is_some_and(|e| e.disable_host_dns_entry)
            {
                let mut mesh_name = service.name.to_ascii_lowercase();
                mesh_name.push_str(".mesh");
                service.host_rewrite = Some(std::mem::replace(&mut service.authority, mesh_name));
            }
        }
    }

    /// Claims every name and IP the service is reached by, straight into the tables: this runs
    /// once per service, so it builds no list of claims on the way.
    fn claim_names(&mut self, id: ServiceId) {
        let Catalog {
            services,
            names,
            ips,
            ..
        } = self;
        let service = &services[id];
        let target = Target::Service(id);
        if let Some(matched) = &service.matched {
            // A MeshExternalService is reached by its hostnames on its port, nothing else.
            for hostname in &matched.hostnames {
                let held = names.entry(hostname.as_str().into()).or_default();
                claim_all(held, target, [(matched.port, Rank::Exact)]);
            }
            return;
        }
        let mut ports: Vec<u16> = Vec::with_capacity(service.endpoints.len() + 1);
        ports.extend(service.endpoints.iter().map(|e| e.address.port));
        ports.push(DEFAULT_REQUEST_PORT);
        ports.sort_unstable();
        ports.dedup();
        let mut mesh_name = String::with_capacity(service.name.len() + ".mesh".len());
        mesh_name.push_str(&service.name);
        mesh_name.make_ascii_lowercase();
        mesh_name.push_str(".mesh");
        if address::is_dns_name(&mesh_name) {
            if mesh_name.contains('_') {
                let held = names.entry(mesh_name.replace('_', ".").into()).or_default();
                claim_all(held, target, ports.iter().map(|&p| (p, Rank::Inferred)));
            }
            let held = names.entry(mesh_name.into_boxed_str()).or_default();
            claim_all(held, target, ports.iter().map(|&p| (p, Rank::Exact)));
        }
        for e in service
            .endpoints
            .iter()
            .filter(|e| !e.disable_host_dns_entry)
        {
            let port = e.address.port;
            match &e.address.host {
                Host::Name(name) => {
                    let held = names.entry(name.as_str().into()).or_default();
                    let on = [(port, Rank::Exact), (DEFAULT_REQUEST_PORT, Rank::Inferred)];
                    claim_all(held, target, on);
                }
                Host::Ip(ip) => {
                    claim_all(ips.entry(*ip).or_default(), target, [(port, Rank::Exact)]);
                }
            }
        }
    }

    /// Whether a host no service declares may go out: passthrough on, and, when the mesh's
    /// MeshPassthroughs say `Matched`, one of their matches allows it. `class` is asked only
    /// then: the glue reads `:method` for it, a host call no other request needs.
    pub fn passes(&self, host: HostRef<'_>, port: u16, class: impl FnOnce() -> Class) -> bool {
        self.passthrough
            && self.mesh_passthrough.as_ref().is_none_or(|policy| {
                policy.mode != PassthroughMode::Matched || {
                    let query = Query {
                        host,
                        port,
                        class: class(),
                    };
                    policy.table.allow(&query).is_some()
                }
            })
    }

    /// The service a request for `host:port` reaches, if any. No port means port 80.
    pub fn lookup(&self, host: HostRef<'_>, port: Option<u16>) -> Option<Target> {
        let ports = match host {
            HostRef::Name(name) => self.names.get(name)?,
            HostRef::Ip(ip) => self.ips.get(&ip)?,
        };
        let port = port.unwrap_or(DEFAULT_REQUEST_PORT);
        ports
            .iter()
            .find(|(p, _)| *p == port)
            .map(|(_, c)| c.target)
    }

    /// The service of `kind` (`ExternalService` for a `kuma.io/service`) named `name`.
    pub fn service_id(&self, kind: Kind, name: &str) -> Option<ServiceId> {
        self.services
            .iter()
            .position(|s| s.kind == kind && s.name == name)
    }
}

/// A MeshExternalService as a service: its endpoints with their priorities, its TLS, and the
/// authority its route is found by (its hostname, with the port unless 80). Kuma leaves one
/// with an extension to the extension, which validation refuses here.
fn mesh_external_service(
    name: &str,
    mes: &MeshExternalServiceSpec,
    hostnames: Vec<String>,
) -> Option<Service> {
    let port = u16::try_from(mes.matcher.port).ok()?;
    let written = mes.endpoints.as_deref().unwrap_or_default();
    let endpoints = written
        .iter()
        .filter_map(|e| {
            let host = match e.address.parse() {
                Ok(ip) => Host::Ip(ip),
                Err(_) => Host::Name(address::normalize_name(&e.address)),
            };
            Some(Endpoint {
                resource: name.to_string(),
                address: Address {
                    host,
                    port: u16::try_from(e.port).ok()?,
                },
                disable_host_dns_entry: false,
                priority: e.priority.unwrap_or(0),
            })
        })
        .collect();
    let authority = match hostnames.first() {
        Some(h) if port == DEFAULT_REQUEST_PORT => h.clone(),
        Some(h) => format!("{h}:{port}"),
        // Never a name a request can use (RFC 2606 reserves `.invalid`): the route is found
        // only through the listener bound to the service, which sets it.
        None => format!(
            "{}.mesh-external-service.invalid",
            name.to_ascii_lowercase()
        ),
    };
    Some(Service {
        kind: Kind::MeshExternalService,
        name: name.to_string(),
        protocol: Protocol::of_tag(mes.matcher.protocol.as_deref()),
        protocol_untagged: false,
        endpoints,
        tls: mes
            .tls
            .as_ref()
            .and_then(|t| UpstreamTls::of_mesh_external_service(t, written)),
        authority,
        host_rewrite: None,
        matched: Some(Matched { port, hostnames }),
        refused: None,
    })
}

/// The hostnames each MeshExternalService of `mesh` gets from the HostnameGenerators (global
/// resources: every mesh's apply), by MES name; Kuma's default generator when none is given.
pub fn mesh_external_service_hostnames<'r>(
    resources: &'r [Resource],
    mesh: &str,
) -> FxHashMap<&'r str, Vec<String>> {
    let (generators, services) = hostname_inputs(resources, mesh);
    let mut out: FxHashMap<&str, Vec<String>> = FxHashMap::default();
    for a in hostname_generator::assign(&generators, &services, ZONE) {
        if let Outcome::Generated(hostname) = a.outcome {
            out.entry(services[a.service].name)
                .or_default()
                .push(hostname.to_ascii_lowercase());
        }
    }
    out
}

/// Why a MeshExternalService of `mesh` got no hostname from a generator (a collision, a
/// template that does not render), naming the service that has it: Kuma's conditions, as
/// warnings (Kuma accepts such resources).
pub fn hostname_warnings(resources: &[Resource], mesh: &str) -> Vec<String> {
    let (generators, services) = hostname_inputs(resources, mesh);
    hostname_generator::assign(&generators, &services, ZONE)
        .iter()
        .filter_map(|a| a.warning(&services))
        .collect()
}

fn hostname_inputs<'r>(
    resources: &'r [Resource],
    mesh: &str,
) -> (Vec<Generator<'r>>, Vec<hostname_generator::Service<'r>>) {
    let mut generators = Vec::new();
    let mut services = Vec::new();
    for r in resources {
        match &r.spec {
            Spec::HostnameGenerator(spec) => generators.push(Generator {
                name: &r.name,
                spec,
            }),
            Spec::MeshExternalService(_) if r.mesh == mesh => {
                services.push(hostname_generator::Service {
                    name: &r.name,
                    mesh: &r.mesh,
                    labels: &r.labels,
                })
            }
            _ => {}
        }
    }
    (generators, services)
}

/// The host, with the port unless that is the scheme's default (443 with TLS, 80 without).
fn short_authority(address: &Address, tls: bool) -> String {
    let default_port = if tls { 443 } else { 80 };
    if address.port == default_port {
        address.host.to_string()
    } else {
        address.to_string()
    }
}

fn claim_all(held: &mut Ports, target: Target, on: impl IntoIterator<Item = (u16, Rank)>) {
    for (port, rank) in on {
        claim(held, port, Claim { target, rank });
    }
}

fn claim(ports: &mut Ports, port: u16, new: Claim) {
    let Some((_, held)) = ports.iter_mut().find(|(p, _)| *p == port) else {
        ports.push((port, new));
        return;
    };
    if new.rank > held.rank {
        *held = new;
    } else if new.rank == held.rank && new.target != held.target {
        held.target = Target::Ambiguous;
    }
}

/// The mesh a filter or a generated config serves: the one asked for, else the only mesh the
/// resources name, else `default`.
/// The MeshPassthroughs of a mesh, merged, as they apply to this Envoy.
#[derive(Debug, Clone)]
pub struct ProxyPortPassthrough {
    /// The effective mode (Kuma 2.9's rule: a MeshPassthrough overrides the `Mesh`'s flag).
    pub mode: PassthroughMode,
    /// The MeshPassthrough that set `mode`, if one did.
    pub mode_from: Option<String>,
    pub table: Table,
}

/// Only the MeshPassthroughs that target the whole mesh (`Mesh`, or no `targetRef`) apply:
/// this Envoy is no Dataplane, so it has no tags or name for `MeshSubset` or `Dataplane` to
/// select ([`passthrough_warnings`] names the ones left out).
fn selects_the_proxy_port(spec: &MeshPassthroughSpec) -> bool {
    spec.target_ref.as_ref().is_none_or(|t| t.kind == "Mesh")
}

fn proxy_port_passthrough(resources: &[Resource], mesh: &str) -> Option<ProxyPortPassthrough> {
    let selected: Vec<mesh_passthrough::Selected<'_>> = resources
        .iter()
        .filter(|r| r.mesh == mesh)
        .filter_map(|r| match &r.spec {
            Spec::MeshPassthrough(spec) if selects_the_proxy_port(spec) => {
                Some(mesh_passthrough::Selected {
                    name: &r.name,
                    spec,
                })
            }
            _ => None,
        })
        .collect();
    let merged = mesh_passthrough::merge(&selected)?;
    Some(ProxyPortPassthrough {
        mode: merged.mode,
        mode_from: merged.mode_from,
        table: Table::new(merged.matches),
    })
}

/// The MeshPassthroughs of `mesh` that this Envoy leaves out: those that select proxies by
/// tags, labels or name.
pub fn passthrough_warnings(resources: &[Resource], mesh: &str) -> Vec<String> {
    resources
        .iter()
        .filter(|r| r.mesh == mesh)
        .filter_map(|r| match &r.spec {
            Spec::MeshPassthrough(spec) if !selects_the_proxy_port(spec) => Some(format!(
                "MeshPassthrough {:?} targets {}, which selects Dataplanes: this Envoy is none \
                 (its proxy port nor its transparent proxy) and applies only MeshPassthroughs that \
                 target the whole Mesh, so it ignores this one",
                r.name,
                spec.target_ref.as_ref().map_or("", |t| t.kind.as_str())
            )),
            _ => None,
        })
        .collect()
}

pub fn select_mesh(resources: &[Resource], asked: Option<&str>) -> Result<String, String> {
    // A ZoneEgress belongs to no mesh (its `mesh` is empty).
    let meshes: BTreeSet<&str> = resources
        .iter()
        .map(|r| r.mesh.as_str())
        .filter(|m| !m.is_empty())
        .collect();
    match (asked, meshes.len()) {
        (Some(mesh), _) => Ok(mesh.to_string()),
        (None, 0) => Ok(DEFAULT_MESH.to_string()),
        (None, 1) => Ok(meshes
            .iter()
            .next()
            .map(|m| m.to_string())
            .unwrap_or_default()),
        (None, _) => Err(format!(
            "the resources belong to several meshes ({})",
            meshes.into_iter().collect::<Vec<_>>().join(", ")
        )),
    }
}
