//! `networking.address`: Kuma's parsing rules (Go's `net.SplitHostPort`, govalidator's IP and
//! DNS-name checks, a port in [1, 65535]) and the normalised form the rest of the crate uses.

use std::fmt;
use std::net::IpAddr;

pub const EMPTY: &str = "address can't be empty";
pub const UNPARSABLE: &str = "unable to parse address";
pub const NOT_IP_OR_DOMAIN: &str = "address has to be a valid IP address or a domain name";
pub const BAD_PORT: &str = "unable to parse port in address";
pub const PORT_RANGE: &str = "port must be in the range [1, 65535]";

/// A host as lookups see it: names lower-cased without a trailing dot, IPs parsed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Host {
    Name(String),
    Ip(IpAddr),
}

impl Host {
    pub fn is_ip(&self) -> bool {
        matches!(self, Host::Ip(_))
    }
}

impl fmt::Display for Host {
    /// The host as it stands in an authority: IPv6 in brackets.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Name(n) => f.write_str(n),
            Host::Ip(IpAddr::V4(ip)) => write!(f, "{ip}"),
            Host::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]"),
        }
    }
}

/// A valid `host:port`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Address {
    pub host: Host,
    pub port: u16,
}

impl Address {
    /// The host without brackets, as DNS, SNI and SAN checks want it.
    pub fn bare_host(&self) -> String {
        match &self.host {
            Host::Name(n) => n.clone(),
            Host::Ip(ip) => ip.to_string(),
        }
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

/// Parses `networking.address`; on failure, every message Kuma gives, in Kuma's order.
pub fn parse(address: &str) -> Result<Address, Vec<&'static str>> {
    if address.is_empty() {
        return Err(vec![EMPTY]);
    }
    let mut problems = Vec::new();
    let (host, port) = split_host_port(address).unwrap_or_else(|| {
        problems.push(UNPARSABLE);
        ("", "")
    });
    let ip = parse_ip(host);
    if ip.is_none() && !is_dns_name(host) {
        problems.push(NOT_IP_OR_DOMAIN);
    }
    let port = match parse_uint32(port) {
        Some(p) => p,
        None => {
            problems.push(BAD_PORT);
            // Go's ParseUint yields 0 for syntax errors and the maximum on overflow.
            if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) {
                u64::from(u32::MAX)
            } else {
                0
            }
        }
    };
    if port == 0 || port > 65535 {
        problems.push(PORT_RANGE);
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let host = match ip {
        Some(ip) => Host::Ip(ip),
        None => Host::Name(normalize_name(host)),
    };
    Ok(Address {
        host,
        port: u16::try_from(port).map_err(|_| vec![PORT_RANGE])?,
    })
}

/// The host part as Go's `net.SplitHostPort` returns it, when that succeeds.
pub fn split_host(address: &str) -> Option<&str> {
    split_host_port(address).map(|(host, _)| host)
}

/// Go's `net.SplitHostPort`: `host:port` or `[host]:port`, else `None`.
fn split_host_port(s: &str) -> Option<(&str, &str)> {
    let last_colon = s.rfind(':')?;
    let (host, after_host) = if let Some(rest) = s.strip_prefix('[') {
        let end = rest.find(']')? + 1;
        if end + 1 != last_colon {
            return None;
        }
        (&s[1..end], end + 1)
    } else {
        let host = &s[..last_colon];
        if host.contains(':') {
            return None;
        }
        (host, 0)
    };
    let opens_after = if after_host == 0 { 0 } else { 1 };
    if s[opens_after..].contains('[') || s[after_host..].contains(']') {
        return None;
    }
    Some((host, &s[last_colon + 1..]))
}

fn parse_uint32(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse::<u64>().ok().filter(|&p| p <= u64::from(u32::MAX))
}

/// `host` as an IP literal, if it is one. Most hosts are names, and `IpAddr`'s parser (which
/// tries IPv4, then IPv6) is most of the cost of reading one: it accepts nothing but hex
/// digits, dots and colons, so any other character settles it at once.
fn parse_ip(host: &str) -> Option<IpAddr> {
    let may_be_ip = host
        .bytes()
        .all(|b| b.is_ascii_hexdigit() || b == b'.' || b == b':');
    may_be_ip.then(|| host.parse().ok()).flatten()
}

/// govalidator's `IsDNSName`: labels of letters, digits, `_` and `-` (not leading), at most 63
/// characters each, an optional final `.` or `_`, at most 255 characters without the dots.
pub fn is_dns_name(s: &str) -> bool {
    if s.is_empty() || s.bytes().filter(|&b| b != b'.').count() > 255 {
        return false;
    }
    if parse_ip(s).is_some() {
        return false;
    }
    let body = s.strip_suffix('.').unwrap_or(s);
    !body.is_empty() && body.split('.').all(is_dns_label)
}

fn is_dns_label(label: &str) -> bool {
    let bytes = label.as_bytes();
    let word = |b: &u8| b.is_ascii_alphanumeric() || *b == b'_';
    match bytes.split_first() {
        Some((first, rest)) => {
            word(first) && rest.len() <= 62 && rest.iter().all(|b| word(b) || *b == b'-')
        }
        None => false,
    }
}

/// Kubernetes' `IsDNS1123Subdomain`: each of its problems with `s`, in its words; none when
/// `s` is one.
pub fn dns1123_subdomain(s: &str) -> Vec<&'static str> {
    let mut problems = Vec::new();
    if s.len() > 253 {
        problems.push("must be no more than 253 characters");
    }
    let label_ok = |l: &str| {
        let b = l.as_bytes();
        let edge = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
        b.first().is_some_and(edge)
            && b.last().is_some_and(edge)
            && b.iter().all(|c| edge(c) || *c == b'-')
    };
    if !s.split('.').all(label_ok) {
        problems.push("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')");
    }
    problems
}

/// Lower case, without one trailing dot: the form lookups use.
pub fn normalize_name(name: &str) -> String {
    name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kuma_examples() {
        let ok = |s: &str| parse(s).unwrap().to_string();
        assert_eq!(ok("192.168.0.1:8080"), "192.168.0.1:8080");
        assert_eq!(ok("example.com:8080"), "example.com:8080");
        assert_eq!(ok("[fd00:a123::1]:8080"), "[fd00:a123::1]:8080");
        assert_eq!(ok("HttpBin.Org.:443"), "httpbin.org:443");

        assert_eq!(parse(""), Err(vec![EMPTY]));
        assert_eq!(parse("..>_<..:8080"), Err(vec![NOT_IP_OR_DOMAIN]));
        let all_four = Err(vec![UNPARSABLE, NOT_IP_OR_DOMAIN, BAD_PORT, PORT_RANGE]);
        assert_eq!(parse("http://example.com:8080"), all_four);
        assert_eq!(parse("fd00:1234::1:8080"), all_four);
        assert_eq!(parse("example.com"), all_four);
        assert_eq!(parse("192.168.0.1:65536"), Err(vec![PORT_RANGE]));
        assert_eq!(parse("192.168.0.1:0"), Err(vec![PORT_RANGE]));
        assert_eq!(
            parse("192.168.0.1:99999999999"),
            Err(vec![BAD_PORT, PORT_RANGE])
        );
        assert_eq!(parse("example.com:https"), Err(vec![BAD_PORT, PORT_RANGE]));
    }

    #[test]
    fn split_matches_go() {
        assert_eq!(split_host_port("a:1"), Some(("a", "1")));
        assert_eq!(split_host_port("[::1]:1"), Some(("::1", "1")));
        assert_eq!(split_host_port(":1"), Some(("", "1")));
        assert_eq!(split_host_port("[::1]"), None);
        assert_eq!(split_host_port("[::1]x:1"), None);
        assert_eq!(split_host_port("a]:1"), None);
        assert_eq!(split_host_port("a[:1"), None);
        assert_eq!(split_host_port("a"), None);
    }

    #[test]
    fn dns_names() {
        for good in ["a", "a.b", "under_score.com", "a-.b", "x.", "_a", "a_"] {
            assert!(is_dns_name(good), "{good}");
        }
        let long_label = "a".repeat(64);
        for bad in [
            "",
            ".",
            "-a",
            "a..b",
            "a b",
            "1.2.3.4",
            "::1",
            long_label.as_str(),
        ] {
            assert!(!is_dns_name(bad), "{bad}");
        }
    }

    proptest::proptest! {
        /// The shortcut for names never changes what `IpAddr`'s parser says.
        #[test]
        fn parse_ip_is_the_std_parser(host in "[0-9a-fA-F.:%\\[\\]gz-]{0,40}") {
            proptest::prop_assert_eq!(parse_ip(&host), host.parse::<IpAddr>().ok());
        }

        #[test]
        fn parse_ip_reads_every_ip(ip in proptest::prelude::any::<IpAddr>()) {
            proptest::prop_assert_eq!(parse_ip(&ip.to_string()), Some(ip));
        }
    }

    #[test]
    fn parse_ip_reads_both_families_and_skips_names() {
        assert_eq!(parse_ip("10.0.0.1"), "10.0.0.1".parse().ok());
        assert_eq!(parse_ip("::ffff:1.2.3.4"), "::ffff:1.2.3.4".parse().ok());
        assert_eq!(parse_ip("fe80::1%eth0"), None);
        assert_eq!(parse_ip("cafe.example"), None);
    }
}
