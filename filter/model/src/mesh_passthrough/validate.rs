//! MeshPassthrough validation: Kuma's validator (`meshpassthrough/api/v1alpha1/validator.go`
//! and `ValidateTargetRef`, 2.9.0 and v2.14.3) in its words, order and field paths, every
//! violation at once. Where 2.9 and 2.14 differ, what either accepts is accepted; each such
//! place says so.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

use crate::address::is_dns_name;
use crate::selectors::validate_target_ref;
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
/// (2.9), and `Dataplane` (2.10+, so accepted); it has no inbound rules.
fn target_ref(target: &TargetRef, out: &mut Vec<Violation>) {
    let kinds = ["Mesh", "MeshSubset", "Dataplane"];
    validate_target_ref(target, "spec.targetRef", &kinds, false, out);
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
