//! Common types.

use std::net::SocketAddr;

use base64::Engine as _;
use serde::{Serialize, Serializer};

/// A proto `map` or `google.protobuf.Struct` of strings, keys in the order they are written.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Map<V>(pub Vec<(String, V)>);

impl<V> Map<V> {
    pub fn of(key: &str, value: V) -> Map<V> {
        Map(vec![(key.to_string(), value)])
    }
}

impl<V: Serialize> Serialize for Map<V> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter().map(|(k, v)| (k, v)))
    }
}

/// A `google.protobuf.Duration`: `5s`, `0.250s`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Duration(pub std::time::Duration);

impl Duration {
    pub const fn from_secs(secs: u64) -> Duration {
        Duration(std::time::Duration::from_secs(secs))
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let (secs, nanos) = (self.0.as_secs(), self.0.subsec_nanos());
        if nanos == 0 {
            s.collect_str(&format_args!("{secs}s"))
        } else {
            let fraction = format!("{nanos:09}");
            s.collect_str(&format_args!("{secs}.{}s", fraction.trim_end_matches('0')))
        }
    }
}

/// `config.core.v3.Address`: an IP socket, or a Unix socket (`pipe`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Address {
    SocketAddress(SocketAddress),
    Pipe(Pipe),
}

impl Default for Address {
    fn default() -> Address {
        Address::SocketAddress(SocketAddress::default())
    }
}

/// `config.core.v3.Pipe`: a Unix socket's path, and for one Envoy binds, the file's mode.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Pipe {
    pub path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct SocketAddress {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protocol: Option<SocketProtocol>,
    /// An IP (IPv6 without brackets) or, for STRICT_DNS endpoints, a host name.
    pub address: String,
    pub port_value: u16,
}

/// TCP unless written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SocketProtocol {
    Udp,
}

impl Address {
    pub fn new(address: String, port_value: u16) -> Address {
        Address::SocketAddress(SocketAddress {
            protocol: None,
            address,
            port_value,
        })
    }

    /// A UDP socket at `a`.
    pub fn udp(a: SocketAddr) -> Address {
        Address::SocketAddress(SocketAddress {
            protocol: Some(SocketProtocol::Udp),
            address: a.ip().to_string(),
            port_value: a.port(),
        })
    }
}

impl From<SocketAddr> for Address {
    fn from(a: SocketAddr) -> Address {
        Address::new(a.ip().to_string(), a.port())
    }
}

/// `config.core.v3.DataSource`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DataSource {
    Filename(String),
    /// Bytes, written as base64 (proto-JSON's form of `bytes`).
    InlineBytes(#[serde(serialize_with = "base64")] Vec<u8>),
    InlineString(String),
}

fn base64<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(bytes))
}

/// An extension: `TypedExtensionConfig`, and the same shape under other names (network and
/// HTTP filters, transport sockets, access logs, custom cluster types).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Extension<T> {
    pub name: &'static str,
    pub typed_config: T,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "@type")]
pub enum DnsResolverConfig {
    #[serde(
        rename = "type.googleapis.com/envoy.extensions.network.dns_resolver.cares.v3.CaresDnsResolverConfig"
    )]
    Cares(CaresDnsResolverConfig),
}

/// The c-ares resolver. Its booleans are written even when false: the choice is the point.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CaresDnsResolverConfig {
    pub resolvers: Vec<Address>,
    pub use_resolvers_as_fallback: bool,
    pub dns_resolver_options: DnsResolverOptions,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DnsResolverOptions {
    pub use_tcp_for_dns_lookups: bool,
    pub no_default_search_domain: bool,
}

/// A header to add; its value may hold Envoy's `%...%` formatters, and an empty result adds
/// nothing.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HeaderValueOption {
    pub header: HeaderValue,
    /// Envoy's default is to append.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub append_action: Option<AppendAction>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StringMatcher {
    Exact(String),
    Prefix(String),
    SafeRegex { regex: String },
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HeaderValue {
    pub key: String,
    pub value: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AppendAction {
    OverwriteIfExistsOrAdd,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CidrRange {
    pub address_prefix: String,
    pub prefix_len: u8,
}
