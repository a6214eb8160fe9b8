//! What each fuzz target does with one input, and the invariants it asserts. The property
//! tests and tests/regressions.rs (saved crash inputs) run the same code.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv6Addr};
use std::sync::OnceLock;

use external_service_model::authority::{self, HostRef, NameBuf};
use external_service_model::config::{self, Filter, PLUGIN_CONFIGURATION};
use external_service_model::documents;
use external_service_model::resource::Origin;
use external_service_model::{decide, Decision, Denial, Kind, Request, Service};
use serde_json::Value;

use crate::scenarios::{passthrough_matches, plugin_config, Setup};

/// Target `resources_json`: the bytes as the plugin configuration, then as resource documents.
pub fn resources_json(data: &[u8]) {
    match config::configure(data) {
        Ok(filter) => configured(&filter),
        Err(e) => {
            let lines = e.lines();
            let source = format!("{PLUGIN_CONFIGURATION}: ");
            assert!(
                !lines.is_empty() && lines.iter().all(|l| l.starts_with(&source)),
                "each line of a refusal names the plugin configuration: {lines:#?}"
            );
        }
    }
    if let Ok(Ok(values)) = std::str::from_utf8(data).map(documents::json_documents) {
        documents(values);
    }
}

/// Target `resources_yaml`: the text read as `extsvc` reads a YAML file, then checked.
pub fn resources_yaml(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let (values, _syntax_error) = documents::yaml_documents(FILE, text);
        documents(values);
    }
}

/// The file name the fuzz targets' documents come from.
const FILE: &str = "fuzz";

/// Documents as a resource file holds them: one report each, in order, headed by what the
/// document says it is.
fn documents(values: Vec<Value>) {
    let checked = config::check(with_origins(values.clone()), None);
    assert_eq!(
        checked.reports.len(),
        values.len(),
        "one report per document"
    );
    for (document, (report, value)) in checked.reports.iter().zip(&values).enumerate() {
        assert_eq!(report.document, document, "reports out of order");
        heading_names_the_document(&report.heading(), document, value);
    }
    if !checked.is_valid() {
        return;
    }
    // The generator writes valid resources back in Universal form for the filter to read:
    // they must read back the same, and stay valid.
    let written = checked.resources.iter().map(|r| r.to_universal()).collect();
    let again = config::check(with_origins(written), None);
    assert!(
        again.is_valid(),
        "valid resources invalid once written: {:?}",
        again.invalid().collect::<Vec<_>>()
    );
    assert_eq!(again.resources, checked.resources, "changed once written");
}

/// `fuzz: Kind "name"` from the document's own `type`/`kind` and `name`/`metadata.name`; with
/// no kind, `resource`; with no name, the document's place.
fn heading_names_the_document(heading: &str, document: usize, value: &Value) {
    let kubernetes = value.get("apiVersion").is_some() || value.get("metadata").is_some();
    let (kind, name) = if kubernetes {
        (value["kind"].as_str(), value["metadata"]["name"].as_str())
    } else {
        (value["type"].as_str(), value["name"].as_str())
    };
    let kind = kind.filter(|k| !k.is_empty()).unwrap_or("resource");
    let name = match name.filter(|n| !n.is_empty()) {
        Some(name) => format!("{name:?}"),
        None => format!("(document {})", document + 1),
    };
    let want = format!("{FILE}: {kind} {name}");
    assert!(
        heading == want || heading.starts_with(&format!("{want} (mesh ")),
        "heading {heading:?} for document {document} {value}; want {want:?}"
    );
}

fn with_origins(values: Vec<Value>) -> Vec<(Value, Origin)> {
    Origin::in_file(FILE, values)
}

/// Whatever a configured filter holds, deciding for its own names must not panic or point
/// outside its tables.
fn configured(filter: &Filter) {
    let catalog = &filter.catalog;
    if let Some(bound) = filter.bound {
        assert!(bound < catalog.services.len());
    }
    for service in &catalog.services {
        let mesh_name = format!("{}.mesh", service.name);
        for name in [service.authority.as_str(), mesh_name.as_str()] {
            let request = Plain {
                authority: Some(name),
                content_type: Some("application/grpc"),
            };
            match decide(catalog, filter.bound, &request) {
                Decision::Forward(id, s) => assert!(std::ptr::eq(s, &catalog.services[id])),
                Decision::Passthrough => assert!(catalog.passthrough),
                Decision::Deny(d) => {
                    let _ = d.body(catalog, &request);
                }
            }
        }
    }
}

pub struct Plain<'a> {
    pub authority: Option<&'a str>,
    pub content_type: Option<&'a str>,
}

impl Request for Plain<'_> {
    fn authority(&self) -> Option<&str> {
        self.authority
    }
    fn content_type(&self) -> Option<&str> {
        self.content_type
    }
}

/// A host as the invariants compare them, worked out without the crate's parser.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Host {
    Name(String),
    V6(Ipv6Addr),
}

/// What the scenario configuration declares, read from its JSON rather than from the catalog.
struct Declared {
    /// Service key ([`key`]) -> the hosts it declares and the ports they may be asked for on.
    hosts: BTreeMap<String, (BTreeSet<Host>, BTreeSet<u16>)>,
    /// Service key -> the authority a forwarded request gets.
    authority: BTreeMap<String, String>,
}

/// A service's key in [`Declared`]: its `kuma.io/service`, or `MeshExternalService/<name>`.
fn key(service: &Service) -> String {
    match service.kind {
        Kind::MeshExternalService => format!("MeshExternalService/{}", service.name),
        _ => service.name.clone(),
    }
}

struct Fixture {
    closed: Filter,
    open: Filter,
    bound: Filter,
    /// A MeshPassthrough `Matched` ([`Setup::Matched`]).
    matched: Filter,
    declared: Declared,
}

const BOUND: &str = "httpbin";

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let filter = |setup| {
            let bytes = plugin_config(setup).to_string();
            match config::configure(bytes.as_bytes()) {
                Ok(filter) => filter,
                Err(e) => panic!("the scenario configuration is refused: {e:?}"),
            }
        };
        Fixture {
            closed: filter(Setup::Closed),
            open: filter(Setup::Open),
            bound: filter(Setup::Bound(BOUND)),
            matched: filter(Setup::Matched),
            declared: declared(
                &crate::scenarios::services(),
                &crate::scenarios::mesh_external_services(),
            ),
        }
    })
}

fn declared(services: &[Value], mesh_external_services: &[Value]) -> Declared {
    let mut hosts: BTreeMap<String, (BTreeSet<Host>, BTreeSet<u16>)> = BTreeMap::new();
    // Per service, its first endpoint: the authority without the scheme's default port, the
    // address, and whether the service gave up its real name.
    let mut first: BTreeMap<&str, (&str, &str, bool)> = BTreeMap::new();
    for es in services {
        let service = es["tags"]["kuma.io/service"].as_str().unwrap_or_default();
        let networking = &es["networking"];
        let address = networking["address"].as_str().unwrap_or_default();
        let (host, port) = address.rsplit_once(':').unwrap_or((address, "0"));
        let port: u16 = port.parse().unwrap_or(0);
        let tls = networking["tls"]["enabled"].as_bool().unwrap_or(false);
        let hidden = networking["disableHostDNSEntry"].as_bool().unwrap_or(false);
        let entry = hosts.entry(service.to_string()).or_default();
        let mesh = format!("{}.mesh", service.to_ascii_lowercase());
        entry.0.insert(Host::Name(mesh.replace('_', ".")));
        entry.0.insert(Host::Name(mesh));
        if !hidden {
            entry.0.extend(host_of(host));
        }
        entry.1.extend([port, 80]);
        let default_port = if tls { 443 } else { 80 };
        let short = if port == default_port { host } else { address };
        first.entry(service).or_insert((short, address, hidden));
    }
    // Services on one address that gave up their real name are routed by their `.mesh` name.
    let on_address = count(first.values().map(|(_, address, _)| *address));
    let by_mesh_name =
        |address: &str, hidden: bool| hidden && on_address.get(address).is_some_and(|&n| n > 1);
    // Where two other services would get the same authority (`dual.example.com` for `:443`
    // with TLS and `:80` without), each keeps its port.
    let short_users = count(
        first
            .values()
            .filter(|(_, address, hidden)| !by_mesh_name(address, *hidden))
            .map(|(short, _, _)| *short),
    );
    let authority = first
        .iter()
        .map(|(service, (short, address, hidden))| {
            let rewritten = if by_mesh_name(address, *hidden) {
                format!("{}.mesh", service.to_ascii_lowercase())
            } else if short_users[short] > 1 {
                address.to_string()
            } else {
                short.to_string()
            };
            (service.to_string(), rewritten)
        })
        .collect();
    let mut declared = Declared { hosts, authority };
    // A MeshExternalService: `<display name>.extsvc.mesh.local` on `match.port`, the first
    // by name of those wanting one hostname (the others have none).
    let mut taken = BTreeSet::new();
    let mut by_name: Vec<&Value> = mesh_external_services.iter().collect();
    by_name.sort_by_key(|m| m["name"].as_str());
    for mes in by_name {
        let name = mes["name"].as_str().unwrap_or_default();
        let display = mes["labels"]["kuma.io/display-name"]
            .as_str()
            .unwrap_or(name);
        let hostname = format!("{display}.extsvc.mesh.local");
        let port = mes["spec"]["match"]["port"].as_u64().unwrap_or(0) as u16;
        let key = format!("MeshExternalService/{name}");
        if !taken.insert(hostname.clone()) {
            let none = format!("{name}.mesh-external-service.invalid");
            declared.hosts.insert(key.clone(), Default::default());
            declared.authority.insert(key, none);
            continue;
        }
        let authority = if port == 80 {
            hostname.clone()
        } else {
            format!("{hostname}:{port}")
        };
        declared.hosts.insert(
            key.clone(),
            (
                BTreeSet::from([Host::Name(hostname)]),
                BTreeSet::from([port]),
            ),
        );
        declared.authority.insert(key, authority);
    }
    declared
}

/// How many times each key stands in `keys`.
fn count<'a>(keys: impl Iterator<Item = &'a str>) -> BTreeMap<&'a str, usize> {
    let mut users = BTreeMap::new();
    for k in keys {
        *users.entry(k).or_default() += 1;
    }
    users
}

/// `Name` lower case without one trailing dot, or a bracketed IPv6 address.
fn host_of(raw: &str) -> Option<Host> {
    if let Some(inner) = raw.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
        return inner.parse().ok().map(Host::V6);
    }
    let name = raw.strip_suffix('.').unwrap_or(raw);
    Some(Host::Name(name.to_ascii_lowercase()))
}

/// Splits off a `:port` (any digits) and normalises the host: case, one trailing dot.
fn oracle(raw: &str) -> Option<(Host, Option<u16>)> {
    let (host, port) = match raw.rsplit_once(':') {
        Some((host, digits)) if host.ends_with(']') || !host.contains(':') => {
            (host, Some(digits.parse::<u16>().ok()?))
        }
        _ => (raw, None),
    };
    Some((host_of(host)?, port))
}

/// Whether one of [`passthrough_matches`] lets an HTTP request to `host:port` out, by the
/// plainest reading of each: a `Domain` equal to the name or, for `*.suffix`, a name ending in
/// `.suffix`; an `IP` equal to the address; a `CIDR` whose first bits are the address's; on
/// the match's port or, without one, any; protocol HTTP or `tcp`.
fn allowed_by_matches((host, port): &(Host, Option<u16>)) -> bool {
    let ip = match host {
        Host::Name(name) => name.parse::<IpAddr>().ok(),
        Host::V6(v6) => Some(v6.to_ipv4_mapped().map_or(IpAddr::V6(*v6), IpAddr::V4)),
    };
    let port = port.unwrap_or(80);
    passthrough_matches().iter().any(|m| {
        let value = m["value"].as_str().unwrap_or_default();
        let on_port = m["port"].as_u64().is_none_or(|p| p == u64::from(port));
        let for_http = matches!(
            m["protocol"].as_str(),
            Some("http" | "http2" | "grpc" | "tcp")
        );
        let names = match (m["type"].as_str(), host, ip) {
            (Some("Domain"), Host::Name(name), None) => match value.strip_prefix("*.") {
                Some(suffix) => name
                    .strip_suffix(suffix)
                    .is_some_and(|head| head.len() > 1 && head.ends_with('.')),
                None => name == value,
            },
            (Some("IP"), _, Some(ip)) => value.parse::<IpAddr>().ok() == Some(ip),
            (Some("CIDR"), _, Some(IpAddr::V4(ip))) => {
                let (network, bits) = value.split_once('/').unwrap_or_default();
                let bits: u32 = bits.parse().unwrap_or(33);
                let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
                network
                    .parse::<std::net::Ipv4Addr>()
                    .is_ok_and(|n| u32::from(n) & mask == u32::from(ip) & mask)
            }
            _ => false,
        };
        on_port && for_http && names
    })
}

/// Target `authority`: the first line is `:authority`, the rest (if any) the content-type.
pub fn authority(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let (authority, content_type) = match text.split_once('\n') {
        Some((a, ct)) => (a, Some(ct)),
        None => (text.as_ref(), None),
    };
    normalised_is_stable(authority);
    for content_type in [content_type, None] {
        request(Some(authority), content_type);
    }
}

/// A parsed authority, written out again, parses to the same host and port.
pub fn normalised_is_stable(raw: &str) {
    let mut buf = NameBuf::new();
    let Ok(first) = authority::parse(raw, &mut buf) else {
        return;
    };
    let written = match first.host {
        HostRef::Name(name) => {
            assert!(!name.ends_with('.') && name.len() <= authority::MAX_NAME);
            assert_eq!(name, name.to_ascii_lowercase());
            name.to_string()
        }
        HostRef::Ip(std::net::IpAddr::V4(ip)) => ip.to_string(),
        HostRef::Ip(std::net::IpAddr::V6(ip)) => format!("[{ip}]"),
    };
    let written = match first.port {
        Some(port) => format!("{written}:{port}"),
        None => written,
    };
    let mut again_buf = NameBuf::new();
    let again = authority::parse(&written, &mut again_buf);
    assert_eq!(again, Ok(first), "{raw:?} normalised to {written:?}");
}

/// Decides one request with each scenario filter and checks what each may answer.
pub fn request(authority: Option<&str>, content_type: Option<&str>) {
    let fixture = fixture();
    let request = Plain {
        authority,
        content_type,
    };
    let oracle = authority.and_then(oracle);
    for filter in [
        &fixture.closed,
        &fixture.open,
        &fixture.bound,
        &fixture.matched,
    ] {
        let matched_only = std::ptr::eq(filter, &fixture.matched);
        let catalog = &filter.catalog;
        let decision = decide(catalog, filter.bound, &request);
        match decision {
            Decision::Forward(id, service) => {
                assert!(std::ptr::eq(service, &catalog.services[id]));
                let declared = fixture.declared.hosts.get(&key(service));
                let (hosts, ports) = match declared {
                    Some(d) => d,
                    None => panic!("{authority:?} forwarded to undeclared {:?}", service.name),
                };
                assert_eq!(
                    fixture.declared.authority.get(&key(service)),
                    Some(&service.authority),
                    "{authority:?} forwarded with another service's authority"
                );
                if filter.bound.is_some() {
                    assert_eq!(service.name, BOUND);
                    continue;
                }
                // Chosen by name: the name, modulo case, one trailing dot and port, and the
                // port (80 when none) must be ones this service declares.
                match &oracle {
                    Some((host, port)) if hosts.contains(host) => assert!(
                        ports.contains(&port.unwrap_or(80)),
                        "{authority:?} forwarded to {:?} on an undeclared port",
                        service.name
                    ),
                    _ => panic!(
                        "{authority:?} forwarded to {:?}, which does not declare it",
                        service.name
                    ),
                }
            }
            Decision::Passthrough => {
                assert!(
                    catalog.passthrough && filter.bound.is_none(),
                    "{authority:?} passed through with passthrough off"
                );
                let mut buf = NameBuf::new();
                assert!(authority::parse(authority.unwrap_or(""), &mut buf).is_ok());
                if matched_only {
                    assert!(
                        oracle.as_ref().is_some_and(allowed_by_matches),
                        "{authority:?} passed through, which no MeshPassthrough match allows"
                    );
                }
            }
            Decision::Deny(denial) => {
                if filter.bound.is_some() {
                    panic!("{authority:?} denied ({denial:?}) on a filter bound to http");
                }
                if let Denial::UndeclaredHost = denial {
                    assert!(!catalog.passthrough);
                }
                if let Denial::NotMatched | Denial::AmbiguousHost = denial {
                    assert!(
                        !catalog.passthrough || matched_only,
                        "{authority:?}: {denial:?} with passthrough on for every host"
                    );
                }
                if let Denial::NotMatched = denial {
                    assert!(
                        oracle.as_ref().is_some_and(|o| !allowed_by_matches(o)),
                        "{authority:?} refused as not matched, which a MeshPassthrough match allows"
                    );
                }
                let body = denial.body(catalog, &request);
                // The request's values are echoed 100 characters at most, each escaped to at
                // most 10 bytes (`\u{10ffff}`).
                assert!(body.len() < 2560, "a {} byte reply", body.len());
                let line = body.strip_suffix('\n').unwrap_or(&body);
                assert!(
                    !line.contains(['\n', '\r', '\0']),
                    "the reply echoes control characters: {body:?}"
                );
            }
        }
    }
}
