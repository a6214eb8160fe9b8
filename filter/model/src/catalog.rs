//! The compiled form of one mesh's valid resources: its services, and a table from every name
//! a request may use to the service it reaches. Built once at configure time.

use std::collections::BTreeSet;

use rustc_hash::FxHashMap;
use std::net::IpAddr;

use crate::address::{self, Address, Host};
use crate::authority::HostRef;
use crate::protocol::Protocol;
use crate::resource::{Resource, Spec, Tls, DEFAULT_MESH, PROTOCOL_TAG};

pub type ServiceId = usize;

/// One `kuma.io/service`: every ExternalService with that tag is an endpoint of it.
#[derive(Debug, Clone, PartialEq)]
pub struct Service {
    pub name: String,
    pub protocol: Protocol,
    /// No endpoint has a `kuma.io/protocol` tag: `protocol` is Kuma's default, tcp.
    pub protocol_untagged: bool,
    pub endpoints: Vec<Endpoint>,
    /// Shared by every endpoint (validation makes sure); `None` when TLS origination is off.
    pub tls: Option<Tls>,
    /// What `:authority` becomes on the way out, which names the service's route: the first
    /// endpoint's host, with its port unless that is the default for the scheme (443 with
    /// TLS, 80 without). A service that shares it with another and gave up its real name
    /// (`disableHostDNSEntry`) is routed by its `.mesh` name instead.
    pub authority: String,
    /// The authority the route gives the upstream when `authority` is the `.mesh` name.
    pub host_rewrite: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Endpoint {
    /// The ExternalService resource that declared it.
    pub resource: String,
    pub address: Address,
    pub disable_host_dns_entry: bool,
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
    pub passthrough: bool,
    pub services: Vec<Service>,
    // Fx, not SipHash: the keys come from the configuration, so requests cannot aim
    // collisions at the table, and every request hashes its host once.
    names: FxHashMap<Box<str>, Ports>,
    ips: FxHashMap<IpAddr, Ports>,
}

/// The port a request without one means: apps speak plain HTTP to the outbound listener.
pub const DEFAULT_REQUEST_PORT: u16 = 80;

impl Catalog {
    /// Builds the tables for `mesh` from resources that passed validation.
    pub fn build(resources: &[Resource], mesh: &str) -> Catalog {
        let mut catalog = Catalog {
            mesh: mesh.to_string(),
            passthrough: true,
            services: Vec::new(),
            names: FxHashMap::default(),
            ips: FxHashMap::default(),
        };
        let mut by_name: FxHashMap<&str, ServiceId> = FxHashMap::default();
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
                    };
                    let tag = es.tags.get(PROTOCOL_TAG).map(String::as_str);
                    let id = *by_name.entry(service).or_insert_with(|| {
                        let tls = net.tls.clone().filter(Tls::is_enabled);
                        let authority = short_authority(&endpoint.address, tls.is_some());
                        catalog.services.push(Service {
                            name: service.to_string(),
                            protocol: Protocol::of_tag(tag),
                            protocol_untagged: true,
                            endpoints: Vec::new(),
                            tls,
                            authority,
                            host_rewrite: None,
                        });
                        catalog.services.len() - 1
                    });
                    let service = &mut catalog.services[id];
                    service.protocol = service.protocol.common(Protocol::of_tag(tag));
                    service.protocol_untagged &= tag.is_none();
                    service.endpoints.push(endpoint);
                }
                // MeshExternalServices are validated, not served yet.
                Spec::Secret(_)
                | Spec::Dataplane(_)
                | Spec::MeshExternalService(_)
                | Spec::HostnameGenerator(_)
                | Spec::Policy { .. } => {}
            }
        }
        catalog.route_hidden_services_by_mesh_name();
        catalog.keep_ports_where_authorities_clash();
        for id in 0..catalog.services.len() {
            catalog.claim_names(id);
        }
        catalog
    }

    /// The services whose `key` another service has too.
    fn sharing(&self, key: impl Fn(&Service) -> String) -> Vec<ServiceId> {
        let keys: Vec<String> = self.services.iter().map(key).collect();
        let mut users: FxHashMap<&str, usize> = FxHashMap::default();
        for k in &keys {
            *users.entry(k).or_default() += 1;
        }
        (0..keys.len())
            .filter(|&id| users[keys[id].as_str()] > 1)
            .collect()
    }

    /// `api.test:443` with TLS and `api.test:80` without both shorten to `api.test`: such
    /// services keep their ports, so the upstream side (routes) can still tell them apart.
    /// (A `.mesh` name has no port to keep.)
    fn keep_ports_where_authorities_clash(&mut self) {
        for id in self.sharing(|s| s.authority.clone()) {
            let service = &mut self.services[id];
            if service.host_rewrite.is_some() {
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
            if service
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

    fn claim_names(&mut self, id: ServiceId) {
        let service = &self.services[id];
        let target = Target::Service(id);
        let mut ports: Vec<u16> = service.endpoints.iter().map(|e| e.address.port).collect();
        ports.push(DEFAULT_REQUEST_PORT);
        ports.sort_unstable();
        ports.dedup();
        let mut mesh_name = service.name.to_ascii_lowercase();
        mesh_name.push_str(".mesh");
        let mut claims: Vec<(Host, Vec<(u16, Rank)>)> = Vec::new();
        if address::is_dns_name(&mesh_name) {
            let exact = ports.iter().map(|&p| (p, Rank::Exact)).collect();
            if mesh_name.contains('_') {
                let inferred = ports.iter().map(|&p| (p, Rank::Inferred)).collect();
                claims.push((Host::Name(mesh_name.replace('_', ".")), inferred));
            }
            claims.push((Host::Name(mesh_name), exact));
        }
        for e in service
            .endpoints
            .iter()
            .filter(|e| !e.disable_host_dns_entry)
        {
            let mut on = vec![(e.address.port, Rank::Exact)];
            if !e.address.host.is_ip() {
                on.push((DEFAULT_REQUEST_PORT, Rank::Inferred));
            }
            claims.push((e.address.host.clone(), on));
        }
        for (host, on) in claims {
            let held = match host {
                Host::Name(name) => self.names.entry(name.into_boxed_str()).or_default(),
                Host::Ip(ip) => self.ips.entry(ip).or_default(),
            };
            for (port, rank) in on {
                claim(held, port, Claim { target, rank });
            }
        }
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

    pub fn service_id(&self, name: &str) -> Option<ServiceId> {
        self.services.iter().position(|s| s.name == name)
    }
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
pub fn select_mesh(resources: &[Resource], asked: Option<&str>) -> Result<String, String> {
    let meshes: BTreeSet<&str> = resources.iter().map(|r| r.mesh.as_str()).collect();
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
