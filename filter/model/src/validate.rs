//! Validation: Kuma's rules with Kuma's wording, plus this project's stricter checks, every
//! violation at once. Pure: no files, no clocks; what needs I/O lives in `extsvc`
//! (envoy-configs/src/resolve.rs).

use std::collections::BTreeMap;

use rustc_hash::FxHashMap;

use crate::address::{self, Address};
use crate::data_source::{decode_base64, find_secret, single_source};
use crate::mesh_external_service;
use crate::mesh_passthrough;
use crate::protocol::Protocol;
use crate::resource::{
    BackendRef, DataSource, DataplaneSpec, ExternalServiceSpec, Kind, MeshSpec, Resource, Selected,
    Source, Spec, ZoneEgressSpec, PROTOCOL_TAG, SERVICE_TAG,
};
use crate::traffic_permission;
use crate::violation::Violation;

/// Validates each resource on its own and against the others of its mesh.
/// The result is aligned with `resources`: one (possibly empty) list per resource.
pub fn validate(resources: &[Resource]) -> Vec<Vec<Violation>> {
    let mut found: Vec<Vec<Violation>> = resources.iter().map(validate_one).collect();
    for (i, extra) in cross_checks(resources) {
        found[i].push(extra);
    }
    found
}

fn validate_one(resource: &Resource) -> Vec<Violation> {
    match &resource.spec {
        Spec::ExternalService(es) => external_service(es),
        Spec::Secret(secret) => base64_data("data", &secret.data),
        Spec::Dataplane(dp) => dataplane(dp),
        Spec::MeshExternalService(_) | Spec::HostnameGenerator(_) => {
            mesh_external_service::validate_resource(resource)
        }
        Spec::MeshPassthrough(spec) => mesh_passthrough::validate::validate(spec),
        Spec::Mesh(m) => mesh(m),
        Spec::ZoneEgress(egress) => zone_egress(egress),
        Spec::MeshTrafficPermission(spec) => {
            traffic_permission::validate::mesh_traffic_permission(spec)
        }
        Spec::TrafficPermission(spec) => traffic_permission::validate::traffic_permission(spec),
        // Policies are checked by `extsvc`, which is what applies them.
        Spec::Policy { .. } => Vec::new(),
    }
}

fn external_service(es: &ExternalServiceSpec) -> Vec<Violation> {
    let mut out = Vec::new();
    match &es.networking {
        None => out.push(Violation::new("networking", "should have networking")),
        Some(net) => {
            if let Err(problems) = address::parse(&net.address) {
                for p in problems {
                    out.push(Violation::new("networking.address", p));
                }
            }
            if let Some(tls) = &net.tls {
                if tls.server_name.as_deref() == Some("") {
                    out.push(Violation::new(
                        "networking.tls.serverName",
                        "cannot be empty",
                    ));
                }
                let sources = [
                    ("caCert", &tls.ca_cert),
                    ("clientCert", &tls.client_cert),
                    ("clientKey", &tls.client_key),
                ];
                for (name, source) in sources {
                    if let Some(ds) = source {
                        out.extend(data_source(&format!("networking.tls.{name}"), ds));
                    }
                }
                match (&tls.client_cert, &tls.client_key) {
                    (Some(_), None) => out.push(Violation::new(
                        "networking.tls.clientKey",
                        "clientCert is set without clientKey: mTLS needs both",
                    )),
                    (None, Some(_)) => out.push(Violation::new(
                        "networking.tls.clientCert",
                        "clientKey is set without clientCert: mTLS needs both",
                    )),
                    _ => {}
                }
            }
        }
    }
    out.extend(tags(&es.tags));
    if let (Some(service), Some(net)) = (es.service(), &es.networking) {
        if address::split_host(&net.address) == Some(service) {
            out.push(
                Violation::new(
                    tag_field(SERVICE_TAG),
                    "cannot be the same as networking.address",
                )
                .with_hint(service_name_hint(service)),
            );
        }
    }
    out
}

/// Kuma allows one CA backend per mesh (`AllowedMTLSBackends`, 2.9 to 2.14).
const ALLOWED_MTLS_BACKENDS: usize = 1;

/// The Mesh's `mtls` and `routing`, in Kuma's words (its `mesh_validator.go`, 2.9 to 2.14).
/// The other sections are Kuma's business and are not checked here.
fn mesh(m: &MeshSpec) -> Vec<Violation> {
    let mut out = Vec::new();
    if let Some(mtls) = &m.mtls {
        if mtls.backends.len() > ALLOWED_MTLS_BACKENDS {
            out.push(Violation::new(
                "mtls.backends",
                format!("cannot have more than {ALLOWED_MTLS_BACKENDS} backends"),
            ));
        }
        let mut used = Vec::new();
        for (i, backend) in mtls.backends.iter().enumerate() {
            if used.contains(&backend.name.as_str()) {
                out.push(Violation::new(
                    format!("mtls.backends[{i}].name"),
                    format!(
                        "{:?} name is already used for another backend",
                        backend.name
                    ),
                ));
            }
            used.push(&backend.name);
        }
        if let Some(enabled) = mtls.enabled_backend.as_deref() {
            if !enabled.is_empty() && !used.contains(&enabled) {
                out.push(Violation::new(
                    "mtls.enabledBackend",
                    "has to be set to one of the backends in the mesh",
                ));
            }
        }
    }
    let backend_named = m
        .mtls
        .as_ref()
        .and_then(|t| t.enabled_backend.as_deref())
        .is_some_and(|b| !b.is_empty());
    if m.zone_egress() && !backend_named {
        out.push(Violation::new(
            "mtls",
            "has to be set when zoneEgress enabled",
        ));
    }
    out
}

/// Kuma's ZoneEgress validator (`zoneegress_validator.go`): an address, when given, is an IP
/// or a domain name other than the unspecified address (the sidecars dial it); the port is in
/// range. Kuma reports the address at `networking.address.address`; this names the field.
fn zone_egress(egress: &ZoneEgressSpec) -> Vec<Violation> {
    let mut out = Vec::new();
    let address = egress.networking.address.as_str();
    if address == "0.0.0.0" || address == "::" {
        out.push(Violation::new(
            "networking.address",
            "must not be 0.0.0.0 or ::",
        ));
    } else if !address.is_empty()
        && address.parse::<std::net::IpAddr>().is_err()
        && !address::is_dns_name(address)
    {
        out.push(Violation::new(
            "networking.address",
            "address has to be valid IP address or domain name",
        ));
    }
    if egress.networking.port == 0 || egress.networking.port > 65535 {
        out.push(Violation::new("networking.port", address::PORT_RANGE));
    }
    out
}

/// Names Kuma takes for a service named after its host: underscores for dots, or the first
/// label (`httpbin_org` or `httpbin` for `httpbin.org`).
fn service_name_hint(host: &str) -> String {
    let underscored = host.replace('.', "_");
    let forms = match host.split_once('.') {
        Some((first, _)) if !first.is_empty() => format!("{underscored} or {first}"),
        _ => format!("{underscored}_service"),
    };
    format!("name the service another way, such as kuma.io/service: {forms}")
}

/// `tags["key"]`, Kuma's notation for a tag's field path.
pub fn tag_field(key: &str) -> String {
    format!("tags[{key:?}]")
}

fn tags(tags: &BTreeMap<String, String>) -> Vec<Violation> {
    let mut out = Vec::new();
    if let Some(value) = tags.get(PROTOCOL_TAG) {
        if Protocol::parse(value).is_none() {
            out.push(Violation::new(
                tag_field(PROTOCOL_TAG),
                format!(
                    "tag {PROTOCOL_TAG:?} has an invalid value {value:?}. Allowed values: {}",
                    Protocol::ALLOWED
                ),
            ));
        }
    }
    for (key, value) in tags {
        let mut problem = |message: &str| out.push(Violation::new(tag_field(key), message));
        if key.is_empty() {
            problem("tag name must be non-empty");
        }
        if value.is_empty() {
            problem("tag value must be non-empty");
        }
        if !key.bytes().all(|b| is_tag_char(b) || b == b'/') {
            problem("tag name must consist of alphanumeric characters, dots, dashes, slashes and underscores");
        }
        if !value.bytes().all(is_tag_char) {
            problem(
                "tag value must consist of alphanumeric characters, dots, dashes and underscores",
            );
        }
    }
    if !tags.contains_key(SERVICE_TAG) {
        out.push(Violation::new(
            "tags",
            format!("mandatory tag {SERVICE_TAG:?} is missing"),
        ));
    }
    out
}

/// Kuma's tag character set: `[a-zA-Z0-9.\-_:]` (names also allow `/`).
fn is_tag_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':')
}

pub(crate) fn data_source(field: &str, ds: &DataSource) -> Vec<Violation> {
    let sources = ds.sources();
    match sources.as_slice() {
        [] => vec![Violation::new(field, "data source cannot be empty")],
        [Source::Inline(v)] => {
            if v.is_empty() {
                vec![Violation::new(field, "data source cannot be empty")]
            } else {
                base64_data(&format!("{field}.inline"), v)
            }
        }
        [Source::InlineString(v) | Source::Secret(v) | Source::File(v)] => {
            if v.is_empty() {
                vec![Violation::new(field, "data source cannot be empty")]
            } else {
                Vec::new()
            }
        }
        _ => vec![Violation::new(
            field,
            "data source must set exactly one of inline, inlineString, secret, file",
        )],
    }
}

fn base64_data(field: &str, data: &str) -> Vec<Violation> {
    if data.is_empty() {
        return vec![Violation::new(field, "cannot be empty")];
    }
    match decode_base64(data) {
        Ok(_) => Vec::new(),
        Err(e) => vec![Violation::new(field, format!("is not valid base64: {e}"))],
    }
}

fn dataplane(dp: &DataplaneSpec) -> Vec<Violation> {
    let mut out = Vec::new();
    let mut seen: FxHashMap<(String, u32), usize> = FxHashMap::default();
    for (i, ob) in dp.networking.outbound.iter().enumerate() {
        let at = |f: &str| format!("networking.outbound[{i}].{f}");
        if ob.port == 0 || ob.port > 65535 {
            out.push(Violation::new(at("port"), address::PORT_RANGE));
        }
        if let Some(addr) = &ob.address {
            if addr.parse::<std::net::IpAddr>().is_err() {
                out.push(Violation::new(
                    at("address"),
                    "address has to be valid IP address",
                ));
            }
        }
        match (&ob.backend_ref, ob.service()) {
            (Some(backend), _) => out.extend(backend_ref(&at, backend)),
            (None, None) => out.push(Violation::new(
                at("tags"),
                format!("mandatory tag {SERVICE_TAG:?} is missing"),
            )),
            (None, Some("")) => out.push(Violation::new(
                format!("{}[{SERVICE_TAG:?}]", at("tags")),
                "tag value must be non-empty",
            )),
            (None, Some(_)) => {}
        }
        let tagged = !ob.tags.is_empty() || ob.service.as_deref().is_some_and(|s| !s.is_empty());
        if ob.backend_ref.is_some() && tagged {
            out.push(Violation::new(
                at("backendRef"),
                "both backendRef and tags/service cannot be defined",
            ));
        }
        let key = (ob.address.clone().unwrap_or_default(), ob.port);
        if let Some(first) = seen.insert(key, i) {
            out.push(Violation::new(
                at("port"),
                format!("the same address and port as networking.outbound[{first}]"),
            ));
        }
    }
    out
}

/// The kinds a Dataplane outbound's backendRef may name in Kuma, sorted as its message lists
/// them.
const BACKEND_REF_KINDS: [&str; 3] = ["MeshExternalService", "MeshMultiZoneService", "MeshService"];

/// Kuma's checks of an outbound's backendRef (`at` gives an outbound field's path); the port
/// only matters for a MeshService, as a MeshExternalService has its own.
fn backend_ref(at: &impl Fn(&str) -> String, backend: &BackendRef) -> Vec<Violation> {
    let mut out = Vec::new();
    if !BACKEND_REF_KINDS.contains(&backend.kind.as_str()) {
        out.push(Violation::new(
            at("backendRef.kind"),
            format!(
                "invalid value. Available values are: {}",
                BACKEND_REF_KINDS.join(",")
            ),
        ));
    }
    if backend.name.is_empty() && backend.labels.is_empty() {
        out.push(Violation::new(
            at("backendRef"),
            "either 'name' or 'labels' should be specified",
        ));
    }
    let port = backend.port.unwrap_or(0);
    if backend.kind != Kind::MeshExternalService.as_str() && (port == 0 || port > 65535) {
        out.push(Violation::new(at("backendRef.port"), address::PORT_RANGE));
    }
    out
}

/// Checks between resources of one mesh; returns (resource index, violation) pairs.
fn cross_checks(resources: &[Resource]) -> Vec<(usize, Violation)> {
    let mut out = Vec::new();
    duplicate_names(resources, &mut out);
    secret_references(resources, &mut out);
    shared_addresses(resources, &mut out);
    outbound_services(resources, &mut out);
    out
}

fn duplicate_names(resources: &[Resource], out: &mut Vec<(usize, Violation)>) {
    let mut seen: FxHashMap<(Kind, &str, &str), usize> = FxHashMap::default();
    for (i, r) in resources.iter().enumerate() {
        if let Some(&first) = seen.get(&(r.kind(), &r.mesh, &r.name)) {
            out.push((
                i,
                Violation::new(
                    "name",
                    format!(
                        "another {} named {:?} in mesh {:?} comes first ({})",
                        r.kind(),
                        r.name,
                        r.mesh,
                        resources[first].origin.file
                    ),
                ),
            ));
        } else {
            seen.insert((r.kind(), &r.mesh, &r.name), i);
        }
    }
}

pub fn external_services(
    resources: &[Resource],
) -> impl Iterator<Item = (usize, &Resource, &ExternalServiceSpec)> {
    resources
        .iter()
        .enumerate()
        .filter_map(|(i, r)| match &r.spec {
            Spec::ExternalService(es) => Some((i, r, es)),
            _ => None,
        })
}

fn secret_references(resources: &[Resource], out: &mut Vec<(usize, Violation)>) {
    for (i, r, es) in external_services(resources) {
        let Some(tls) = es.networking.as_ref().and_then(|n| n.tls.as_ref()) else {
            continue;
        };
        let sources = [
            ("caCert", &tls.ca_cert),
            ("clientCert", &tls.client_cert),
            ("clientKey", &tls.client_key),
        ];
        for (field, ds) in sources {
            let Some(Source::Secret(name)) = ds.as_ref().and_then(single_source) else {
                continue;
            };
            if !name.is_empty() && find_secret(resources, &r.mesh, name).is_none() {
                out.push((
                    i,
                    Violation::new(
                        format!("networking.tls.{field}"),
                        format!("secret {name:?} not found in mesh {:?}", r.mesh),
                    ),
                ));
            }
        }
    }
}

/// Two services may not share `host:port` unless one gives up its real name.
fn shared_addresses(resources: &[Resource], out: &mut Vec<(usize, Violation)>) {
    let mut owners: FxHashMap<(&str, Address), (usize, &Resource, &str)> = FxHashMap::default();
    for (i, r, es) in external_services(resources) {
        let (Some(net), Some(service)) = (&es.networking, es.service()) else {
            continue;
        };
        if net.disable_host_dns_entry {
            continue;
        }
        let Ok(addr) = address::parse(&net.address) else {
            continue;
        };
        let key = (r.mesh.as_str(), addr.clone());
        match owners.get(&key) {
            Some(&(first, other, other_service)) if other_service != service => {
                let say = |name: &str, svc: &str| {
                    format!(
                        "{addr} is also the address of ExternalService {name:?} (kuma.io/service {svc:?}): \
                         its real name would be ambiguous; give both the same kuma.io/service or set \
                         disableHostDNSEntry on one"
                    )
                };
                out.push((
                    i,
                    Violation::new("networking.address", say(&other.name, other_service)),
                ));
                out.push((
                    first,
                    Violation::new("networking.address", say(&r.name, service)),
                ));
            }
            Some(_) => {}
            None => {
                owners.insert(key, (i, r, service));
            }
        }
    }
}

/// A Dataplane outbound must name an ExternalService (by `kuma.io/service`) or a
/// MeshExternalService (by backendRef) of its mesh.
fn outbound_services(resources: &[Resource], out: &mut Vec<(usize, Violation)>) {
    for (i, r) in resources.iter().enumerate() {
        let Spec::Dataplane(dp) = &r.spec else {
            continue;
        };
        for (j, ob) in dp.networking.outbound.iter().enumerate() {
            if let Some(backend) = &ob.backend_ref {
                let at = |f: &str| format!("networking.outbound[{j}].{f}");
                out.extend(unserved_backend_ref(resources, &r.mesh, backend, &at).map(|v| (i, v)));
                continue;
            }
            let Some(service) = ob.service().filter(|s| !s.is_empty()) else {
                continue;
            };
            let declared = external_services(resources)
                .any(|(_, other, es)| other.mesh == r.mesh && es.service() == Some(service));
            if !declared {
                out.push((
                    i,
                    Violation::new(
                        format!("networking.outbound[{j}]"),
                        format!(
                            "no ExternalService in mesh {:?} has kuma.io/service {service:?}",
                            r.mesh
                        ),
                    ),
                ));
            }
        }
    }
}

/// Why a backendRef that Kuma's checks let through reaches nothing here: a kind this proxy
/// does not serve, or no single MeshExternalService of `mesh` that it selects (`at` gives an
/// outbound field's path).
fn unserved_backend_ref(
    resources: &[Resource],
    mesh: &str,
    backend: &BackendRef,
    at: &impl Fn(&str) -> String,
) -> Option<Violation> {
    let kind = backend.kind.as_str();
    if kind != Kind::MeshExternalService.as_str() {
        return BACKEND_REF_KINDS.contains(&kind).then(|| {
            Violation::new(
                at("backendRef.kind"),
                format!(
                    "kind {kind:?} is not supported: extsvc serves external services only (a \
                     MeshExternalService by backendRef, an ExternalService by kuma.io/service)"
                ),
            )
        });
    }
    if backend.name.is_empty() && backend.labels.is_empty() {
        return None;
    }
    let by = if backend.labels.is_empty() {
        format!("named {:?}", backend.name)
    } else {
        let labels: Vec<String> = backend
            .labels
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect();
        format!("with labels {{{}}}", labels.join(", "))
    };
    match backend.select_mesh_external_service(resources, mesh) {
        Selected::One(_) => None,
        Selected::None => Some(Violation::new(
            at("backendRef"),
            format!("no MeshExternalService in mesh {mesh:?} {by}"),
        )),
        Selected::Several(names) => Some(Violation::new(
            at("backendRef.labels"),
            format!(
                "{} MeshExternalServices in mesh {mesh:?} are {by} ({}): Kuma takes the oldest, \
                 which files do not tell; select one",
                names.len(),
                names.join(", ")
            ),
        )),
    }
}
