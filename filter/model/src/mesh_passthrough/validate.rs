//! MeshPassthrough validation: Kuma's validator (`meshpassthrough/api/v1alpha1/validator.go`
//! and `ValidateTargetRef`, 2.9.0 and v2.14.3) in its words, order and field paths, every
//! violation at once. Where 2.9 and 2.14 differ, what either accepts is accepted; each such
//! place says so.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;

use crate::address::is_dns_name;
use crate::validate::tag_field;
use crate::violation::Violation;

use super::spec::{Match, MeshPassthroughSpec, PassthroughMode, TargetRef};

/// 2.9's five and 2.10's `mysql`. A message names 2.14's list.
const PROTOCOLS: [&str; 6] = ["tcp", "tls", "grpc", "http", "http2", "mysql"];
/// Protocols that may not share a port with another protocol.
const L7: [&str; 3] = ["grpc", "http", "http2"];
const PORT: &str = "port must be a valid (1-65535)";

/// Every violation of one MeshPassthrough.
pub fn validate(spec: &MeshPassthroughSpec) -> Vec<Violation> {
    let mut out = Vec::new();
    if let Some(target) = &spec.target_ref {
        target_ref(target, &mut out);
    }
    let mode = spec.default.passthrough_mode.as_deref();
    if PassthroughMode::of(mode).is_none() {
        // Kuma's schema check (Universal API server, Kubernetes CRD), in the API server's words.
        out.push(Violation::new(
            "spec.default.passthroughMode",
            format!(
                "in body should be one of [{}]",
                PassthroughMode::NAMES.join(" ")
            ),
        ));
    }
    append_match(spec.matches(), &mut out);
    out
}

/// Kuma's `ValidateTargetRef` for the kinds a MeshPassthrough takes: `Mesh` and `MeshSubset`
/// (2.9), and `Dataplane` (2.10+, so accepted). An unsupported kind is named in 2.14's words
/// (2.9 said `value is not supported`).
fn target_ref(target: &TargetRef, out: &mut Vec<Violation>) {
    let at = |field: &str| format!("spec.targetRef.{field}");
    let kind = target.kind.as_str();
    let not_set = |out: &mut Vec<Violation>, field: &str, set: bool| {
        if set {
            out.push(Violation::new(
                at(field),
                format!("must not be set with kind {kind}"),
            ));
        }
    };
    let name = is_set(&target.name);
    let mesh = is_set(&target.mesh);
    let tags = target.tags.as_ref().is_some_and(|t| !t.is_empty());
    let labels = target.labels.as_ref().is_some_and(|l| !l.is_empty());
    let namespace = is_set(&target.namespace);
    let section_name = is_set(&target.section_name);
    match kind {
        "" => out.push(Violation::new(at("kind"), "must be defined")),
        "Mesh" => {
            if name {
                out.push(Violation::new(
                    at("name"),
                    "using name with kind Mesh is not yet supported",
                ));
            }
            not_set(out, "mesh", mesh);
            not_set(out, "tags", tags);
            not_set(out, "labels", labels);
            not_set(out, "namespace", namespace);
            not_set(out, "sectionName", section_name);
            empty_proxy_types(target, out);
        }
        "MeshSubset" => {
            not_set(out, "name", name);
            not_set(out, "mesh", mesh);
            subset_tags(target.tags.as_ref(), out);
            not_set(out, "labels", labels);
            not_set(out, "namespace", namespace);
            not_set(out, "sectionName", section_name);
            empty_proxy_types(target, out);
        }
        "Dataplane" => {
            not_set(out, "tags", tags);
            not_set(out, "mesh", mesh);
            let proxy_types = target.proxy_types.as_ref().is_some_and(|p| !p.is_empty());
            not_set(out, "proxyTypes", proxy_types);
            if labels && (name || namespace) {
                out.push(Violation::new(
                    at("labels"),
                    "either labels or name and namespace must be specified",
                ));
            }
            if section_name {
                out.push(Violation::new(
                    at("sectionName"),
                    "can only be used with inbound policies",
                ));
            }
        }
        other => out.push(Violation::new(
            at("kind"),
            format!("value '{other}' is not supported"),
        )),
    }
}

fn is_set(value: &Option<String>) -> bool {
    value.as_deref().is_some_and(|v| !v.is_empty())
}

/// 2.14: `proxyTypes: []` is refused (2.9 let it be, and it means every type there).
fn empty_proxy_types(target: &TargetRef, out: &mut Vec<Violation>) {
    if target.proxy_types.as_ref().is_some_and(Vec::is_empty) {
        out.push(Violation::new(
            "spec.targetRef.proxyTypes",
            "must be undefined or have at least one element",
        ));
    }
}

/// Kuma's `ValidateTags` on `MeshSubset` tags, keys in sorted order.
fn subset_tags(tags: Option<&BTreeMap<String, String>>, out: &mut Vec<Violation>) {
    let name_char = |b: u8| b.is_ascii_alphanumeric() || b".-_:/".contains(&b);
    let value_char = |b: u8| b.is_ascii_alphanumeric() || b".-_:".contains(&b);
    for (key, value) in tags.into_iter().flatten() {
        let at = format!("spec.targetRef.{}", tag_field(key));
        if key.is_empty() {
            out.push(Violation::new(
                "spec.targetRef.tags",
                "tag name must be non-empty",
            ));
        }
        if !key.bytes().all(name_char) {
            out.push(Violation::new(
                &at,
                "tag name must consist of alphanumeric characters, dots, dashes, slashes and underscores",
            ));
        }
        if value.is_empty() {
            out.push(Violation::new(&at, "tag value must be non-empty"));
        }
        if !value.bytes().all(value_char) {
            out.push(Violation::new(
                &at,
                "tag value must consist of alphanumeric characters, dots, dashes and underscores",
            ));
        }
    }
}

/// Kuma's `validateDefault`: each match in turn, its checks in Kuma's order. The port checks
/// carry state from one match to the next, as Kuma's maps do.
fn append_match(matches: &[Match], out: &mut Vec<Violation>) {
    let mut protocol_of_port: HashMap<i64, &str> = HashMap::new();
    let mut values: HashSet<(i64, &str, &str)> = HashSet::new();
    for (i, m) in matches.iter().enumerate() {
        let at = |field: &str| format!("spec.default.appendMatch[{i}].{field}");
        let protocol = m.protocol.as_deref().unwrap_or_default();
        let l7 = L7.contains(&protocol);
        if protocol == "mysql" && m.port.is_none() {
            out.push(Violation::new(
                at("port"),
                "port must be defined for Mysql protocol",
            ));
        }
        if let Some(port) = m.port {
            // 2.9's signed `int` let a negative port through, 2.10's `uint32` cannot read one:
            // it names no port, so it is refused as out of range.
            if !(1..=65535).contains(&port) {
                out.push(Violation::new(at("port"), PORT));
            }
            match protocol_of_port.get(&port) {
                Some(first) if *first != protocol && l7 => out.push(Violation::new(
                    at("port"),
                    format!("using the same port in multiple matches requires the same protocol for the following protocols: [{}]", L7.join(" ")),
                )),
                _ => {
                    protocol_of_port.insert(port, protocol);
                }
            }
            if !values.insert((port, protocol, m.value.as_str())) {
                out.push(Violation::new(
                    at("value"),
                    // "defiend" is Kuma's spelling.
                    format!(
                        "value {} is already defiend for this port and protocol",
                        m.value
                    ),
                ));
            }
        }
        if !PROTOCOLS.contains(&protocol) {
            let quoted: Vec<String> = PROTOCOLS.iter().map(|p| format!("{p:?}")).collect();
            out.push(Violation::new(
                at("protocol"),
                format!("\"protocol\" must be one of [{}]", quoted.join(", ")),
            ));
        }
        match m.kind.as_str() {
            "CIDR" if !is_cidr(&m.value) => {
                out.push(Violation::new(at("value"), "provided CIDR has incorrect value"))
            }
            "IP" if m.value.parse::<IpAddr>().is_err() => {
                out.push(Violation::new(at("value"), "provided IP has incorrect value"))
            }
            "CIDR" | "IP" => {}
            "Domain" => domain(m, protocol, &at, out),
            other => out.push(Violation::new(
                at("type"),
                format!("provided type {other} is not supported, one of Domain, IP, or CIDR is supported"),
            )),
        }
    }
}

fn domain(m: &Match, protocol: &str, at: &dyn Fn(&str) -> String, out: &mut Vec<Violation>) {
    if protocol == "tcp" || protocol == "mysql" {
        out.push(Violation::new(
            at("protocol"),
            format!("protocol {protocol} is not supported for a domain"),
        ));
    }
    let value = m.value.as_str();
    if is_partial_wildcard(value) {
        out.push(Violation::new(
            at("value"),
            "provided DNS has incorrect value, partial wildcard is currently not supported",
        ));
    }
    // 2.10+ refuses a wildcard on every port for an L7 protocol (Envoy's virtual hosts cannot
    // say `*.example.com:*`); 2.9 accepts it, and so does this project, whose own matching
    // has no such limit. (Kuma 2.14's testdata full-invalid case 10.)
    // 2.14 also checks the name after `*.` (so refuses `*.` and `*.hello@world`); 2.9 checks
    // no value that starts with `*`, and what it accepts is accepted. Such a wildcard can
    // never match a request's host, which is always a DNS name. (2.14's testdata
    // full-invalid case 13.)
    if !value.starts_with('*') && !is_dns_name(value) {
        out.push(Violation::new(
            at("value"),
            "provided DNS has incorrect value",
        ));
    }
}

/// Kuma's `^\*[^.]+`: a `*` followed by something other than a dot, as `*w.example.com`.
fn is_partial_wildcard(value: &str) -> bool {
    value
        .strip_prefix('*')
        .and_then(|rest| rest.bytes().next())
        .is_some_and(|b| b != b'.')
}

/// Go's `net.ParseCIDR`, as govalidator's `IsCIDR` uses it: an IP, `/`, and a prefix length
/// of decimal digits no longer than the address.
pub fn parse_cidr(value: &str) -> Option<(IpAddr, u8)> {
    let (ip, bits) = value.split_once('/')?;
    let ip: IpAddr = ip.parse().ok()?;
    if bits.is_empty() || bits.len() > 3 || !bits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let bits: u8 = bits.parse().ok()?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    (bits <= max).then_some((ip, bits))
}

fn is_cidr(value: &str) -> bool {
    parse_cidr(value).is_some()
}
