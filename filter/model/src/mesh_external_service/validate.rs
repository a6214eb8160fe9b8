//! MES validation: Kuma's validator (`meshexternalservice/api/v1alpha1/validator.go` and
//! `api/common/v1alpha1/tls/tls.go`, 2.9.0 and v2.14.3) in its words, order and field paths,
//! then what this project refuses on top.

use crate::validate::data_source;
use crate::violation::Violation;

use super::spec::{Endpoint, MeshExternalServiceSpec, Tls, Version};

const MATCH_PROTOCOLS: [&str; 4] = ["tcp", "grpc", "http", "http2"];
const TLS_VERSIONS: [&str; 5] = ["TLSAuto", "TLS10", "TLS11", "TLS12", "TLS13"];
const VERIFICATION_MODES: [&str; 4] = ["SkipSAN", "SkipCA", "SkipAll", "Secured"];
const SAN_MATCH_TYPES: [&str; 2] = ["Prefix", "Exact"];
const PORT: &str = "port must be a valid (1-65535)";
/// Kuma 2.14's `priority` bounds (its CRD; the Go validator does not check them).
const MAX_PRIORITY: u32 = 128;

/// Every violation of one MES: Kuma's, then this project's.
pub fn validate(name: &str, spec: &MeshExternalServiceSpec) -> Vec<Violation> {
    let mut out = kuma(name, spec);
    out.extend(beyond_kuma(spec));
    out
}

/// Kuma's validator: name, match, then (without an extension) endpoints and tls, then the
/// extension's type. Where 2.9 and 2.14 differ, what either accepts is accepted: an empty
/// `match.type` or `verification.mode` (refused by 2.9, accepted by 2.10+).
pub fn kuma(name: &str, spec: &MeshExternalServiceSpec) -> Vec<Violation> {
    let mut out = Vec::new();
    if name.len() > 63 {
        out.push(Violation::new(
            "name",
            "must not be longer than 63 characters",
        ));
    }
    let matcher = &spec.matcher;
    if let Some(kind) = matcher.kind.as_deref() {
        if !kind.is_empty() && kind != "HostnameGenerator" {
            out.push(Violation::new(
                "spec.match.type",
                format!("unrecognized type '{kind}' - only 'HostnameGenerator' is supported"),
            ));
        }
    }
    if !valid_port(matcher.port) {
        out.push(Violation::new("spec.match.port", PORT));
    }
    if !MATCH_PROTOCOLS.contains(&matcher.protocol.as_deref().unwrap_or_default()) {
        out.push(one_of("spec.match.protocol", "protocol", &MATCH_PROTOCOLS));
    }
    if spec.extension.is_none() {
        for (i, endpoint) in spec.endpoints.iter().flatten().enumerate() {
            out.extend(kuma_endpoint(i, endpoint));
        }
        if let Some(tls) = &spec.tls {
            kuma_tls(tls, &mut out);
        }
    }
    if spec.extension.as_ref().is_some_and(|e| e.kind.is_empty()) {
        out.push(Violation::new("spec.extension.type", "must not be empty"));
    }
    out
}

fn kuma_endpoint(i: usize, endpoint: &Endpoint) -> Option<Violation> {
    let at = |field: &str| format!("spec.endpoints[{i}].{field}");
    if !is_ip(&endpoint.address) && !is_dns_name(&endpoint.address) {
        Some(Violation::new(
            at("address"),
            "address has to be a valid IP or hostname",
        ))
    } else if !valid_port(endpoint.port) {
        Some(Violation::new(at("port"), PORT))
    } else {
        None
    }
}

fn kuma_tls(tls: &Tls, out: &mut Vec<Violation>) {
    if let Some(version) = &tls.version {
        kuma_version(version, out);
    }
    let Some(verification) = &tls.verification else {
        return;
    };
    let at = |field: &str| format!("spec.tls.verification.{field}");
    if let Some(server_name) = &verification.server_name {
        if !is_dns_name(server_name) {
            out.push(Violation::new(at("serverName"), "must be a valid DNS name"));
        }
    }
    let mode = verification.mode.as_deref().unwrap_or_default();
    if !mode.is_empty() && !VERIFICATION_MODES.contains(&mode) {
        out.push(one_of(&at("mode"), "mode", &VERIFICATION_MODES));
    }
    for (i, san) in verification.subject_alt_names.iter().flatten().enumerate() {
        if !SAN_MATCH_TYPES.contains(&san.kind.as_deref().unwrap_or_default()) {
            let field = at(&format!("subjectAltNames[{i}].type"));
            out.push(one_of(&field, "type", &SAN_MATCH_TYPES));
        }
    }
    match (&verification.client_cert, &verification.client_key) {
        (Some(_), None) => out.push(Violation::new(
            at("clientKey"),
            "must be defined when clientCert is defined",
        )),
        (None, Some(_)) => out.push(Violation::new(
            at("clientCert"),
            "must be defined when clientKey is defined",
        )),
        _ => {}
    }
}

/// Kuma's `ValidateVersion`: each bound one of the versions, and a specific minimum not
/// above a specific maximum.
fn kuma_version(version: &Version, out: &mut Vec<Violation>) {
    let mut specific = [None, None];
    for (slot, (name, value)) in specific
        .iter_mut()
        .zip([("min", &version.min), ("max", &version.max)])
    {
        let Some(value) = value.as_deref() else {
            continue;
        };
        match TLS_VERSIONS.iter().position(|v| *v == value) {
            None => out.push(one_of(
                &format!("spec.tls.version.{name}"),
                name,
                &TLS_VERSIONS,
            )),
            Some(0) => {}
            Some(order) => *slot = Some(order),
        }
    }
    if let [Some(min), Some(max)] = specific {
        if min > max {
            out.push(Violation::new(
                "spec.tls.version.min",
                "min version must be lower than max",
            ));
        }
    }
}

/// What this project refuses that Kuma does not: an extension (nothing here acts on one), a
/// data source Kuma's MES cannot have or that gives no bytes, a priority out of Kuma's CRD
/// bounds.
fn beyond_kuma(spec: &MeshExternalServiceSpec) -> Vec<Violation> {
    let mut out = Vec::new();
    if let Some(extension) = spec.extension.as_ref().filter(|e| !e.kind.is_empty()) {
        out.push(Violation::new(
            "spec.extension.type",
            format!(
                "extension {:?} is not supported: extsvc acts on no MeshExternalService extension (remove it and give endpoints)",
                extension.kind
            ),
        ));
    }
    for (i, endpoint) in spec.endpoints.iter().flatten().enumerate() {
        if endpoint.priority.is_some_and(|p| p > MAX_PRIORITY) {
            out.push(Violation::new(
                format!("spec.endpoints[{i}].priority"),
                format!("must be in inclusive range [0, {MAX_PRIORITY}]"),
            ));
        }
    }
    let verification = spec.tls.as_ref().and_then(|t| t.verification.as_ref());
    if let Some(verification) = verification {
        let sources = [
            ("caCert", &verification.ca_cert),
            ("clientCert", &verification.client_cert),
            ("clientKey", &verification.client_key),
        ];
        for (name, source) in sources {
            let Some(ds) = source else { continue };
            let field = format!("spec.tls.verification.{name}");
            if ds.file.is_some() {
                out.push(Violation::new(
                    format!("{field}.file"),
                    "a MeshExternalService data source is secret, inline or inlineString",
                ));
            } else {
                out.extend(data_source(&field, ds));
            }
        }
    }
    out
}

/// Kuma's `MakeFieldMustBeOneOfErr`: `"field" must be one of ["a", "b"]`.
fn one_of(path: &str, field: &str, allowed: &[&str]) -> Violation {
    let quoted: Vec<String> = allowed.iter().map(|a| format!("{a:?}")).collect();
    Violation::new(
        path,
        format!("{field:?} must be one of [{}]", quoted.join(", ")),
    )
}

fn valid_port(port: i64) -> bool {
    (1..=65535).contains(&port)
}

/// govalidator's `IsIP`: Go's `net.ParseIP`.
fn is_ip(s: &str) -> bool {
    s.parse::<std::net::IpAddr>().is_ok()
}

/// govalidator's `IsDNSName`: not an IP, at most 255 characters besides dots, and labels of
/// `[a-zA-Z0-9_]` then up to 62 of `[a-zA-Z0-9_-]`, with one trailing `.` allowed.
pub fn is_dns_name(s: &str) -> bool {
    if s.is_empty() || s.bytes().filter(|&b| b != b'.').count() > 255 || is_ip(s) {
        return false;
    }
    let body = s.strip_suffix('.').unwrap_or(s);
    body.split('.').all(|label| {
        let mut bytes = label.bytes();
        let first_ok = bytes
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_');
        first_ok
            && label.len() <= 63
            && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    })
}
