//! The match table: the merged `appendMatch` list, built once at configure time, answering
//! per request which match lets it through, if any. Per-request cost does not grow with the
//! number of matches, and a lookup allocates nothing:
//! - exact names, IPs: one hash lookup each;
//! - wildcards (`*.example.com`): one hash lookup per suffix of the name, so at most its
//!   number of labels;
//! - CIDRs: one hash lookup per prefix length in use, so at most 33 (IPv4) or 129 (IPv6);
//! - all of it twice at most: the request's port, then the matches for every port.
//!
//! Order (Kuma's, `plugin/xds/order.go`, and Envoy's filter-chain match, which does Kuma's
//! matching): a match on the request's port before one on every port (Envoy matches
//! `destination_port` first); then exact names, wildcards with more labels first, `*`, then
//! IPs, then CIDRs longest prefix first; then a match of the request's own protocol class
//! before a `tcp` one; then the order of the merged list. Unlike Envoy, which never goes
//! back once a port or an address has chosen its filter chains, a request that the most
//! specific entry does not allow is tried against the next: a match allows what it names.
//!
//! Names: ASCII case ignored, one trailing dot ignored, a name with an empty label never
//! matches. `*.example.com` matches `a.example.com` and `a.b.example.com` (any number of
//! labels, as Envoy's `server_names` and virtual-host wildcards), never `example.com` nor
//! `example.com.evil.test`. A bare `*` matches every name. IPv4-mapped IPv6 addresses are
//! taken as the IPv4 address they map.

use std::net::IpAddr;

use rustc_hash::FxHashMap;

use super::merge::MergedMatch;
use super::validate::parse_cidr;
use crate::authority::{HostRef, MAX_NAME};

/// What a caller knows of a request's protocol: `Tls` when it read an SNI, `Http` when it
/// read a request (its `Host`), `Tcp` otherwise (the original destination alone).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Class {
    Tcp,
    Tls,
    Http,
}

impl Class {
    /// The class of a match's protocol: `tcp` and `mysql` pass bytes, `tls` is matched by
    /// SNI, `http`, `http2` and `grpc` by `Host`.
    pub fn of_protocol(protocol: &str) -> Option<Class> {
        match protocol {
            "tcp" | "mysql" => Some(Class::Tcp),
            "tls" => Some(Class::Tls),
            "http" | "http2" | "grpc" => Some(Class::Http),
            _ => None,
        }
    }

    fn slot(self) -> usize {
        self as usize
    }
}

/// One request: its host (the SNI or `Host` name, or the original destination IP), its
/// port, and its class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Query<'a> {
    pub host: HostRef<'a>,
    pub port: u16,
    pub class: Class,
}

/// The match that allows a request, and its place in the merged list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Allowed<'t> {
    pub index: usize,
    pub matcher: &'t MergedMatch,
}

/// For one host entry, the first match of each class (by [`Class::slot`]).
#[derive(Debug, Clone, Copy, Default)]
struct Slots([Option<u32>; 3]);

impl Slots {
    fn add(&mut self, class: Class, index: u32) {
        self.0[class.slot()].get_or_insert(index);
    }

    /// A match of the request's class, else a `tcp` one, which passes any bytes.
    fn allowing(&self, class: Class) -> Option<u32> {
        self.0[class.slot()].or(self.0[Class::Tcp.slot()])
    }
}

/// The host entries of one port (or of every port).
#[derive(Debug, Clone, Default)]
struct Hosts {
    exact: FxHashMap<Box<str>, Slots>,
    /// `*.example.com` under `example.com`.
    wildcard: FxHashMap<Box<str>, Slots>,
    /// `*`.
    any_name: Slots,
    ips: FxHashMap<IpAddr, Slots>,
    /// Networks by prefix length, longest first.
    v4: Vec<(u8, FxHashMap<u32, Slots>)>,
    v6: Vec<(u8, FxHashMap<u128, Slots>)>,
}

#[derive(Debug, Clone, Default)]
pub struct Table {
    matches: Vec<MergedMatch>,
    by_port: FxHashMap<u16, Hosts>,
    all_ports: Hosts,
}

impl Table {
    /// The table of a merged list. A match Kuma's validator refuses (it is not given one)
    /// has no entry.
    pub fn new(matches: Vec<MergedMatch>) -> Table {
        let mut table = Table::default();
        for (index, merged) in matches.iter().enumerate() {
            let Ok(index) = u32::try_from(index) else {
                break;
            };
            table.add(index, merged);
        }
        for hosts in table.by_port.values_mut().chain([&mut table.all_ports]) {
            hosts.v4.sort_by_key(|(bits, _)| std::cmp::Reverse(*bits));
            hosts.v6.sort_by_key(|(bits, _)| std::cmp::Reverse(*bits));
        }
        table.matches = matches;
        table
    }

    fn add(&mut self, index: u32, merged: &MergedMatch) {
        let m = &merged.matcher;
        let Some(class) = Class::of_protocol(m.protocol.as_deref().unwrap_or("tcp")) else {
            return;
        };
        let hosts = match m.port {
            None => &mut self.all_ports,
            Some(port) => match u16::try_from(port) {
                Ok(port) if port != 0 => self.by_port.entry(port).or_default(),
                _ => return,
            },
        };
        let slots = match m.kind.as_str() {
            "Domain" => hosts.domain(&m.value),
            "IP" => match m.value.parse::<IpAddr>() {
                Ok(ip) => Some(hosts.ips.entry(ip.to_canonical()).or_default()),
                Err(_) => None,
            },
            "CIDR" => parse_cidr(&m.value).map(|(ip, bits)| hosts.network(ip, bits)),
            _ => None,
        };
        if let Some(slots) = slots {
            slots.add(class, index);
        }
    }

    /// The match that allows `query`, if one does.
    pub fn allow(&self, query: &Query<'_>) -> Option<Allowed<'_>> {
        let mut name = [0u8; MAX_NAME];
        let host = match query.host {
            HostRef::Name(raw) => Host::Name(normalize(raw, &mut name)?),
            HostRef::Ip(ip) => Host::Ip(ip.to_canonical()),
        };
        let index = self
            .by_port
            .get(&query.port)
            .and_then(|hosts| hosts.allow(host, query.class))
            .or_else(|| self.all_ports.allow(host, query.class))?;
        let index = index as usize;
        Some(Allowed {
            index,
            matcher: &self.matches[index],
        })
    }

    /// The merged list the table was built from.
    pub fn matches(&self) -> &[MergedMatch] {
        &self.matches
    }
}

#[derive(Clone, Copy)]
enum Host<'a> {
    Name(&'a str),
    Ip(IpAddr),
}

impl Hosts {
    fn domain(&mut self, value: &str) -> Option<&mut Slots> {
        let value = value
            .strip_suffix('.')
            .unwrap_or(value)
            .to_ascii_lowercase();
        Some(match value.strip_prefix("*.") {
            Some(suffix) => self.wildcard.entry(suffix.into()).or_default(),
            None if value == "*" => &mut self.any_name,
            None => self.exact.entry(value.into()).or_default(),
        })
    }

    fn network(&mut self, ip: IpAddr, bits: u8) -> &mut Slots {
        // An IPv4-mapped network (`::ffff:10.0.0.0/104`) is the IPv4 one it maps. (A
        // shorter IPv6 network over the mapped range is kept as IPv6, and so does not see
        // the IPv4 requests that addresses in that range are taken as.)
        let (ip, bits) = match ip {
            IpAddr::V6(v6) if bits >= 96 && v6.to_ipv4_mapped().is_some() => {
                (ip.to_canonical(), bits - 96)
            }
            _ => (ip, bits),
        };
        match ip {
            IpAddr::V4(v4) => {
                let at = by_length(&mut self.v4, bits);
                at.entry(u32::from(v4) & mask_v4(bits)).or_default()
            }
            IpAddr::V6(v6) => {
                let at = by_length(&mut self.v6, bits);
                at.entry(u128::from(v6) & mask_v6(bits)).or_default()
            }
        }
    }

    fn allow(&self, host: Host<'_>, class: Class) -> Option<u32> {
        match host {
            Host::Name(name) => self.allow_name(name, class),
            Host::Ip(ip) => self.allow_ip(ip, class),
        }
    }

    fn allow_name(&self, name: &str, class: Class) -> Option<u32> {
        if let Some(found) = self.exact.get(name).and_then(|s| s.allowing(class)) {
            return Some(found);
        }
        // Each suffix after a dot, longest (most labels) first.
        let dots = name.bytes().enumerate().filter(|(_, b)| *b == b'.');
        for (at, _) in dots {
            let suffix = &name[at + 1..];
            if let Some(found) = self.wildcard.get(suffix).and_then(|s| s.allowing(class)) {
                return Some(found);
            }
        }
        self.any_name.allowing(class)
    }

    fn allow_ip(&self, ip: IpAddr, class: Class) -> Option<u32> {
        if let Some(found) = self.ips.get(&ip).and_then(|s| s.allowing(class)) {
            return Some(found);
        }
        match ip {
            IpAddr::V4(v4) => self.v4.iter().find_map(|(bits, networks)| {
                let key = u32::from(v4) & mask_v4(*bits);
                networks.get(&key).and_then(|s| s.allowing(class))
            }),
            IpAddr::V6(v6) => self.v6.iter().find_map(|(bits, networks)| {
                let key = u128::from(v6) & mask_v6(*bits);
                networks.get(&key).and_then(|s| s.allowing(class))
            }),
        }
    }
}

fn by_length<K>(
    lengths: &mut Vec<(u8, FxHashMap<K, Slots>)>,
    bits: u8,
) -> &mut FxHashMap<K, Slots> {
    let at = match lengths.iter().position(|(b, _)| *b == bits) {
        Some(at) => at,
        None => {
            lengths.push((bits, FxHashMap::default()));
            lengths.len() - 1
        }
    };
    &mut lengths[at].1
}

fn mask_v4(bits: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(bits)).unwrap_or(0)
}

fn mask_v6(bits: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(bits)).unwrap_or(0)
}

/// `raw` lower-cased into `buf` without one trailing dot; `None` for a name that is empty,
/// too long, or has an empty label.
fn normalize<'b>(raw: &str, buf: &'b mut [u8; MAX_NAME]) -> Option<&'b str> {
    let name = raw.strip_suffix('.').unwrap_or(raw);
    if name.is_empty() || name.len() > MAX_NAME {
        return None;
    }
    let out = &mut buf[..name.len()];
    let mut previous = b'.';
    for (slot, &b) in out.iter_mut().zip(name.as_bytes()) {
        if b == b'.' && previous == b'.' {
            return None;
        }
        previous = b;
        *slot = b.to_ascii_lowercase();
    }
    if previous == b'.' {
        return None;
    }
    // Lower-casing ASCII bytes keeps UTF-8 valid.
    std::str::from_utf8(out).ok()
}
