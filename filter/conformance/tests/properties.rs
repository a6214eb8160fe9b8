//! Properties of authority parsing and the decision: normalising is idempotent, nothing panics
//! whatever the request holds, and a forwarded request only ever reaches a service that declares
//! the name asked for, with an authority that leads back to that service.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use external_service_conformance::checks;

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv6Addr};

use external_service_model::authority::{self, HostRef, NameBuf};
use external_service_model::catalog::Target;
use external_service_model::config::{self, Filter};
use external_service_model::{decide, Decision};
use proptest::prelude::*;
use serde_json::{json, Value};

use checks::Plain;

/// Host-like text: the characters a host may hold, and a few it may not.
fn host_like() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z0-9_.-]{1,30}\\.?(:[0-9]{1,6})?",
        "[0-9]{1,3}(\\.[0-9]{1,3}){3}(:[0-9]{1,5})?",
        "\\[[0-9a-fA-F:.]{2,40}\\](:[0-9]{1,5})?",
        "[a-z.]{0,10}[@#/ \\[\\]%\u{0}\u{e9}\u{212a}:][a-z.:0-9]{0,10}",
        ".{0,40}",
        // Near the scenario MeshPassthrough's matches (scenarios::passthrough_matches).
        "[a-cA-C]{0,2}\\.?(example\\.test|apple\\.example\\.org|example\\.test\\.evil\\.test)\\.?(:(80|443|8080|9999))?",
        "(127\\.0\\.0\\.[6-9]|10\\.[0-2]\\.[0-9]{1,3}\\.[0-9]{1,3})(:(80|1234|8080|8443))?",
    ]
}

/// Anything a header value could carry, up to 64 KiB.
fn any_header() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => host_like(),
        2 => any::<String>(),
        1 => (any::<char>(), 60_000usize..=65_536).prop_map(|(c, n)| c.to_string().repeat(n)),
        1 => ("[a-z.]{1,12}", 1usize..=65_536).prop_map(|(s, n)| s.repeat(n).chars().take(65_536).collect()),
        1 => Just("httpbin.mesh\0".to_string()),
    ]
}

fn content_type() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        Just(None),
        "(?i)application/grpc([+;][a-z=-]{0,10})?".prop_map(Some),
        any_header().prop_map(Some),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// A parsed authority, written out again, parses to the same host and port (the fuzz
    /// target `authority`'s check).
    #[test]
    fn normalising_is_idempotent(raw in host_like()) {
        checks::normalised_is_stable(&raw);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    /// The scenario catalog with passthrough off, on, bound, and by a MeshPassthrough's
    /// matches: no panic, and every answer
    /// the fuzz target `authority` allows (see filter/fuzz/checks.rs).
    #[test]
    fn any_request_gets_an_allowed_answer(
        authority in prop::option::weighted(0.95, any_header()),
        content_type in content_type(),
    ) {
        checks::request(authority.as_deref(), content_type.as_deref());
    }
}

fn format_authority(host: HostRef<'_>, port: Option<u16>) -> String {
    let host = match host {
        HostRef::Name(name) => name.to_string(),
        HostRef::Ip(IpAddr::V4(ip)) => ip.to_string(),
        HostRef::Ip(IpAddr::V6(ip)) => format!("[{ip}]"),
    };
    match port {
        Some(port) => format!("{host}:{port}"),
        None => host,
    }
}

/// One ExternalService of a generated mesh, from small pools so that names and ports collide.
#[derive(Debug, Clone)]
struct Es {
    service: &'static str,
    host: &'static str,
    port: u16,
    protocol: &'static str,
    tls: bool,
    hidden: bool,
}

const SERVICES: &[&str] = &["api", "Api", "my_svc", "my.svc", "web-a", "shared"];
const HOSTS: &[&str] = &[
    "api.example.com",
    "API.Example.com.",
    "shared.example.com",
    "api.mesh",
    "my.svc.mesh",
    "127.0.0.1",
    "[::1]",
    "[fd00::1]",
];
const PORTS: &[u16] = &[80, 443, 8080, 8443];
const PROTOCOLS: &[&str] = &["http", "http2", "grpc", "tcp"];

fn es() -> impl Strategy<Value = Es> {
    (
        prop::sample::select(SERVICES),
        prop::sample::select(HOSTS),
        prop::sample::select(PORTS),
        prop::sample::select(PROTOCOLS),
        any::<bool>(),
        prop::bool::weighted(0.2),
    )
        .prop_map(|(service, host, port, protocol, tls, hidden)| Es {
            service,
            host,
            port,
            protocol,
            tls,
            hidden,
        })
}

fn plugin_config(services: &[Es], passthrough: bool) -> Value {
    let mut resources: Vec<Value> = services
        .iter()
        .enumerate()
        .map(|(i, es)| {
            json!({
                "type": "ExternalService", "mesh": "default", "name": format!("es-{i}"),
                "tags": { "kuma.io/service": es.service, "kuma.io/protocol": es.protocol },
                "networking": {
                    "address": format!("{}:{}", es.host, es.port),
                    "tls": { "enabled": es.tls },
                    "disableHostDNSEntry": es.hidden,
                }
            })
        })
        .collect();
    resources.push(json!({ "type": "Mesh", "name": "default",
                           "networking": { "outbound": { "passthrough": passthrough } } }));
    json!({ "resources": resources })
}

/// A request made from the same pools: a host, its case scrambled, maybe a trailing dot, maybe
/// a port.
#[derive(Debug, Clone)]
struct Ask {
    host: String,
    upper: Vec<bool>,
    dot: bool,
    port: Option<u16>,
}

fn ask() -> impl Strategy<Value = Ask> {
    let hosts: Vec<String> = HOSTS
        .iter()
        .map(|h| h.to_string())
        .chain(SERVICES.iter().map(|s| format!("{s}.mesh")))
        .chain(
            [
                "my_svc.mesh",
                "evil.example",
                "api.example.com.evil.example",
                "[0:0::1]",
                "[::ffff:127.0.0.1]",
            ]
            .map(String::from),
        )
        .collect();
    (
        prop::sample::select(hosts),
        prop::collection::vec(any::<bool>(), 40),
        prop::bool::weighted(0.2),
        prop::option::of(prop::sample::select(&[80u16, 443, 8080, 8443, 9999][..])),
    )
        .prop_map(|(host, upper, dot, port)| Ask {
            host,
            upper,
            dot,
            port,
        })
}

impl Ask {
    fn authority(&self) -> String {
        let mut s: String = self
            .host
            .chars()
            .zip(self.upper.iter().chain(std::iter::repeat(&false)))
            .map(|(c, &up)| if up { c.to_ascii_uppercase() } else { c })
            .collect();
        if self.dot && !s.ends_with(['.', ']']) {
            s.push('.');
        }
        if let Some(port) = self.port {
            s = format!("{s}:{port}");
        }
        s
    }
}

/// A host as the oracle compares them: lower-case name without a trailing dot, or an address.
fn oracle_host(host: &str) -> Option<Host> {
    if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return inner
            .parse::<Ipv6Addr>()
            .ok()
            .map(|ip| Host::Ip(IpAddr::V6(ip)));
    }
    let name = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
    Some(match name.parse::<IpAddr>() {
        Ok(ip) => Host::Ip(ip),
        Err(_) => Host::Name(name),
    })
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Host {
    Name(String),
    Ip(IpAddr),
}

/// Does `service` declare `host` on `port` (80 when the request names none)? Kuma's names: the
/// `.mesh` name (and its dotted form) on any of the service's ports or 80; each endpoint's own
/// host on its port, and a DNS host on 80 too, unless disableHostDNSEntry hides it.
fn declares(services: &[Es], service: &str, host: &Host, port: Option<u16>) -> bool {
    let port = port.unwrap_or(80);
    let endpoints: Vec<&Es> = services.iter().filter(|e| e.service == service).collect();
    let ports: BTreeSet<u16> = endpoints.iter().map(|e| e.port).chain([80]).collect();
    let mesh = format!("{}.mesh", service.to_ascii_lowercase());
    let mesh_names = [mesh.clone(), mesh.replace('_', ".")];
    if mesh_names.iter().any(|m| *host == Host::Name(m.clone())) && ports.contains(&port) {
        return true;
    }
    endpoints.iter().filter(|e| !e.hidden).any(|e| {
        let Some(own) = oracle_host(e.host) else {
            return false;
        };
        own == *host && (port == e.port || (matches!(own, Host::Name(_)) && port == 80))
    })
}

fn configure(config: &Value) -> Option<Filter> {
    config::configure(config.to_string().as_bytes()).ok()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Generated meshes: a forward goes to a service that declares the name and port asked
    /// for, and its new authority leads back to that service; passthrough off never lets an
    /// undeclared name through.
    #[test]
    fn forwards_only_to_a_service_that_declares_the_name(
        services in prop::collection::vec(es(), 1..6),
        passthrough in any::<bool>(),
        asks in prop::collection::vec(ask(), 1..12),
    ) {
        // Resources validation refuses (one address for two services, mixed endpoint
        // kinds) never reach a filter.
        let Some(filter) = configure(&plugin_config(&services, passthrough)) else {
            return Ok(());
        };
        let catalog = &filter.catalog;
        for ask in &asks {
            let authority = ask.authority();
            let request = Plain { authority: Some(&authority), content_type: Some("application/grpc") };
            let asked = oracle_host(&ask.host);
            match decide(catalog, None, &request) {
                Decision::Forward(id, service) => {
                    prop_assert!(std::ptr::eq(service, &catalog.services[id]));
                    let host = asked.clone();
                    prop_assert!(
                        host.is_some_and(|h| declares(&services, &service.name, &h, ask.port)),
                        "{:?} forwarded to {:?}, which does not declare it; services {:?}",
                        authority, service.name, services
                    );
                    rewritten_leads_back(&services, &filter, id)?;
                }
                Decision::Passthrough => prop_assert!(passthrough),
                Decision::Deny(denial) => {
                    let _ = denial.body(catalog, &request);
                }
            }
            if !passthrough {
                let declared = asked.as_ref().is_some_and(|h| {
                    services.iter().any(|e| declares(&services, e.service, h, ask.port))
                });
                let decision = decide(catalog, None, &request);
                prop_assert!(
                    declared || !matches!(decision, Decision::Forward(..) | Decision::Passthrough),
                    "undeclared {:?} got {:?}", authority, decision
                );
            }
        }
    }
}

/// The authority a forwarded request gets leads back to the same service, at the port it names
/// (80 when none) or at one of the service's own ports; or it is a name that service declares
/// but shares with another (a `.mesh` name as an endpoint host), which the catalog refuses as
/// ambiguous. Not when the endpoint it comes from hides its host (disableHostDNSEntry): then
/// the catalog need not know the name.
fn rewritten_leads_back(services: &[Es], filter: &Filter, id: usize) -> Result<(), TestCaseError> {
    let catalog = &filter.catalog;
    let service = &catalog.services[id];
    let mut buf = NameBuf::new();
    let parsed = authority::parse(&service.authority, &mut buf);
    prop_assert!(parsed.is_ok(), "{:?}: {:?}", service.authority, parsed);
    let parsed = parsed.unwrap();
    if service
        .endpoints
        .first()
        .is_some_and(|e| e.disable_host_dns_entry)
    {
        return Ok(());
    }
    let ports =
        std::iter::once(parsed.port).chain(service.endpoints.iter().map(|e| Some(e.address.port)));
    let targets: Vec<Option<Target>> = ports.map(|p| catalog.lookup(parsed.host, p)).collect();
    let declared = oracle_host(&format_authority(parsed.host, None))
        .is_some_and(|host| declares(services, &service.name, &host, parsed.port));
    prop_assert!(
        targets.contains(&Some(Target::Service(id))) || declared,
        "{:?} of {:?} does not lead back: {:?}",
        service.authority,
        service.name,
        targets
    );
    Ok(())
}

/// Any JSON at all, nested a few levels.
fn arbitrary_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        "[a-zA-Z0-9:./\\[\\]_@ -]{0,24}".prop_map(Value::String),
        prop::sample::select(vec![
            "ExternalService",
            "Mesh",
            "Secret",
            "Dataplane",
            "kuma.io/v1alpha1",
            "v1",
            "kuma.io/service",
            "kuma.io/protocol",
            "[::1]:80",
            "a.example:443",
            "default"
        ])
        .prop_map(|s| Value::String(s.into())),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        let keys = prop::sample::select(vec![
            "type",
            "name",
            "mesh",
            "kind",
            "apiVersion",
            "metadata",
            "spec",
            "tags",
            "networking",
            "address",
            "tls",
            "caCert",
            "clientCert",
            "clientKey",
            "inline",
            "secret",
            "file",
            "serverName",
            "outbound",
            "passthrough",
            "data",
            "port",
            "enabled",
            "x",
        ]);
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(keys.prop_map(String::from), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Documents as a resource file and as a plugin configuration, through the fuzz target
    /// `resources_json`'s checks.
    #[test]
    fn arbitrary_documents_pass_the_fuzz_checks(docs in prop::collection::vec(arbitrary_json(), 0..5)) {
        checks::resources_json(Value::Array(docs.clone()).to_string().as_bytes());
        checks::resources_json(json!({ "resources": docs }).to_string().as_bytes());
    }

    #[test]
    fn arbitrary_plugin_bytes_pass_the_fuzz_checks(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        checks::resources_json(&bytes);
    }
}
