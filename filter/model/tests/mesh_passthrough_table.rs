//! The MeshPassthrough match table against a slow, obvious reading of the same rules, over
//! random matches and requests, and the cases the rules name.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::IpAddr;

use external_service_model::authority::HostRef;
use external_service_model::mesh_passthrough::{Class, Match, MergedMatch, Query, Table};
use proptest::prelude::*;

fn entry(kind: &str, value: &str, port: Option<i64>, protocol: &str) -> MergedMatch {
    MergedMatch {
        policy: "p".into(),
        matcher: Match {
            kind: kind.into(),
            value: value.into(),
            port,
            protocol: Some(protocol.into()),
        },
    }
}

fn name_query(host: &str, port: u16, class: Class) -> Query<'_> {
    Query {
        host: HostRef::Name(host),
        port,
        class,
    }
}

fn ip_query(ip: &str, port: u16, class: Class) -> Query<'static> {
    Query {
        host: HostRef::Ip(ip.parse().unwrap()),
        port,
        class,
    }
}

/// The slow reading: every match that allows the request, ranked by port (its own before
/// every port), host (exact, wildcards by labels, `*`, IP, CIDR by prefix), class (its own
/// before `tcp`), then list order; the first.
fn slow(matches: &[MergedMatch], query: &Query<'_>) -> Option<usize> {
    let class_of = |p: &str| match p {
        "tcp" | "mysql" => Class::Tcp,
        "tls" => Class::Tls,
        _ => Class::Http,
    };
    let mut best: Option<((u8, u32, u8), usize)> = None;
    for (i, m) in matches.iter().enumerate() {
        let m = &m.matcher;
        let port_rank = match m.port {
            Some(p) if p == i64::from(query.port) => 0,
            None => 1,
            Some(_) => continue,
        };
        let class = class_of(m.protocol.as_deref().unwrap());
        let class_rank = if class == query.class {
            0
        } else if class == Class::Tcp {
            1
        } else {
            continue;
        };
        let host_rank = match (query.host, m.kind.as_str()) {
            (HostRef::Name(raw), "Domain") => {
                let name = raw.strip_suffix('.').unwrap_or(raw).to_ascii_lowercase();
                if name.is_empty() || name.split('.').any(str::is_empty) {
                    continue;
                }
                let value = m.value.to_ascii_lowercase();
                if value == name {
                    0
                } else if value == "*" {
                    300
                } else if let Some(suffix) = value.strip_prefix("*.") {
                    if !name.ends_with(&format!(".{suffix}")) {
                        continue;
                    }
                    200 - suffix.split('.').count() as u32
                } else {
                    continue;
                }
            }
            (HostRef::Ip(ip), "IP") => {
                if m.value.parse::<IpAddr>().unwrap() != ip {
                    continue;
                }
                400
            }
            (HostRef::Ip(ip), "CIDR") => {
                let (net, bits) = m.value.split_once('/').unwrap();
                let bits: u32 = bits.parse().unwrap();
                let within = match (net.parse::<IpAddr>().unwrap(), ip) {
                    (IpAddr::V4(n), IpAddr::V4(a)) => {
                        bits == 0 || (u32::from(n) ^ u32::from(a)) >> (32 - bits) == 0
                    }
                    (IpAddr::V6(n), IpAddr::V6(a)) => {
                        bits == 0 || (u128::from(n) ^ u128::from(a)) >> (128 - bits) == 0
                    }
                    _ => false,
                };
                if !within {
                    continue;
                }
                500 + (128 - bits)
            }
            _ => continue,
        };
        let rank = (port_rank, host_rank, class_rank);
        if best.is_none_or(|(b, _)| rank < b) {
            best = Some((rank, i));
        }
    }
    best.map(|(_, i)| i)
}

fn fast(matches: &[MergedMatch], query: &Query<'_>) -> Option<usize> {
    Table::new(matches.to_vec()).allow(query).map(|a| a.index)
}

#[test]
fn wildcards_match_any_number_of_labels_but_not_the_name_itself_nor_a_longer_one() {
    let matches = vec![entry("Domain", "*.example.test", Some(443), "tls")];
    let table = Table::new(matches);
    let allowed = |host: &str| table.allow(&name_query(host, 443, Class::Tls)).is_some();
    assert!(allowed("a.example.test"));
    assert!(allowed("a.b.example.test"));
    assert!(allowed("A.Example.TEST."));
    assert!(!allowed("example.test"));
    assert!(!allowed("example.test.evil.test"));
    assert!(!allowed("aexample.test"));
    assert!(!allowed("a..example.test"));
    assert!(!allowed("a.example.test.."));
}

#[test]
fn exact_before_wildcard_more_labels_first_and_port_before_every_port() {
    let matches = vec![
        entry("Domain", "*.test", None, "tls"),
        entry("Domain", "*.example.test", None, "tls"),
        entry("Domain", "a.example.test", None, "tls"),
        entry("Domain", "*.test", Some(443), "tls"),
    ];
    let table = Table::new(matches);
    let index = |host: &str, port: u16| {
        table
            .allow(&name_query(host, port, Class::Tls))
            .map(|a| a.index)
    };
    assert_eq!(index("a.example.test", 8443), Some(2));
    assert_eq!(index("b.example.test", 8443), Some(1));
    assert_eq!(index("other.test", 8443), Some(0));
    assert_eq!(index("a.example.test", 443), Some(3));
}

#[test]
fn ips_before_cidrs_longest_prefix_first_in_both_families_and_tcp_passes_any_class() {
    let matches = vec![
        entry("CIDR", "10.0.0.0/8", None, "tcp"),
        entry("CIDR", "10.1.0.0/16", None, "tls"),
        entry("IP", "10.1.2.3", None, "http"),
        entry("CIDR", "fd00::/8", Some(443), "tcp"),
        entry("IP", "fd00::1", Some(443), "tls"),
    ];
    let table = Table::new(matches);
    let index = |ip: &str, class: Class| table.allow(&ip_query(ip, 443, class)).map(|a| a.index);
    assert_eq!(index("10.1.2.3", Class::Http), Some(2));
    assert_eq!(index("10.1.2.3", Class::Tls), Some(1));
    assert_eq!(index("10.1.2.3", Class::Tcp), Some(0));
    assert_eq!(index("::ffff:10.9.9.9", Class::Tcp), Some(0));
    assert_eq!(index("11.0.0.1", Class::Tcp), None);
    assert_eq!(index("fd00::1", Class::Tls), Some(4));
    assert_eq!(index("fd00::2", Class::Tls), Some(3));
    assert_eq!(index("fe80::1", Class::Tcp), None);
    // A name is never allowed by an address match, nor an address by a name.
    assert_eq!(table.allow(&name_query("fd00.test", 443, Class::Tls)), None);
}

#[test]
fn a_bare_star_matches_every_name_after_the_named_ones() {
    let table = Table::new(vec![
        entry("Domain", "*", Some(80), "http"),
        entry("Domain", "a.test", Some(80), "http"),
    ]);
    let index = |host: &str| {
        table
            .allow(&name_query(host, 80, Class::Http))
            .map(|a| a.index)
    };
    assert_eq!(index("a.test"), Some(1));
    assert_eq!(index("anything.else"), Some(0));
    assert_eq!(table.allow(&name_query("a.test", 80, Class::Tls)), None);
}

fn label() -> impl Strategy<Value = String> {
    prop::sample::select(vec!["a", "b", "example", "test", "evil"]).prop_map(String::from)
}

fn name() -> impl Strategy<Value = String> {
    prop::collection::vec(label(), 1..4).prop_map(|labels| labels.join("."))
}

fn v4() -> impl Strategy<Value = String> {
    (0u8..3, 0u8..3).prop_map(|(a, b)| format!("10.{a}.0.{b}"))
}

fn v6() -> impl Strategy<Value = String> {
    (0u8..3, 0u8..3).prop_map(|(a, b)| format!("fd00:{a}::{b}"))
}

fn port() -> impl Strategy<Value = Option<i64>> {
    prop::sample::select(vec![None, Some(80), Some(443)])
}

fn protocol() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec!["tcp", "tls", "http", "http2", "grpc", "mysql"])
}

fn a_match() -> impl Strategy<Value = MergedMatch> {
    let value = prop_oneof![
        name().prop_map(|n| ("Domain", n)),
        name().prop_map(|n| ("Domain", format!("*.{n}"))),
        Just(("Domain", "*".to_string())),
        v4().prop_map(|ip| ("IP", ip)),
        v6().prop_map(|ip| ("IP", ip)),
        (v4(), 0u8..=32).prop_map(|(ip, bits)| ("CIDR", format!("{ip}/{bits}"))),
        (v6(), 0u8..=128).prop_map(|(ip, bits)| ("CIDR", format!("{ip}/{bits}"))),
    ];
    (value, port(), protocol())
        .prop_map(|((kind, value), port, protocol)| entry(kind, &value, port, protocol))
}

fn class() -> impl Strategy<Value = Class> {
    prop::sample::select(vec![Class::Tcp, Class::Tls, Class::Http])
}

proptest! {
    #[test]
    fn the_table_answers_names_as_the_slow_reading(
        matches in prop::collection::vec(a_match(), 0..24),
        host in name(),
        upper in any::<bool>(),
        dot in any::<bool>(),
        port in prop::sample::select(vec![80u16, 443, 8080]),
        class in class(),
    ) {
        let mut host = if upper { host.to_ascii_uppercase() } else { host };
        if dot {
            host.push('.');
        }
        let query = name_query(&host, port, class);
        prop_assert_eq!(fast(&matches, &query), slow(&matches, &query));
    }

    #[test]
    fn the_table_answers_addresses_as_the_slow_reading(
        matches in prop::collection::vec(a_match(), 0..24),
        ip in prop_oneof![v4(), v6()],
        port in prop::sample::select(vec![80u16, 443, 8080]),
        class in class(),
    ) {
        let query = ip_query(&ip, port, class);
        prop_assert_eq!(fast(&matches, &query), slow(&matches, &query));
    }
}
