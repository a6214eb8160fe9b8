//! The request's `:authority`, read strictly and without allocating: a host a request may name
//! is a DNS-style name, an IPv4 address or a bracketed IPv6 address, with an optional port.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Longest host name DNS allows; longer authorities are refused before any other work.
pub const MAX_NAME: usize = 253;

/// Stack space for the lower-cased host name, so lookups need no allocation.
pub struct NameBuf([u8; MAX_NAME]);

impl NameBuf {
    pub fn new() -> Self {
        NameBuf([0; MAX_NAME])
    }
}

impl Default for NameBuf {
    fn default() -> Self {
        Self::new()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostRef<'a> {
    /// Lower case, without a trailing dot.
    Name(&'a str),
    Ip(IpAddr),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Authority<'a> {
    pub host: HostRef<'a>,
    pub port: Option<u16>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthorityError {
    Empty,
    TooLong,
    BadCharacter,
    EmptyLabel,
    BadIpAddress,
    BadPort,
}

impl fmt::Display for AuthorityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AuthorityError::Empty => "the host is empty",
            AuthorityError::TooLong => "the host is longer than 253 characters",
            AuthorityError::BadCharacter => {
                "the host may hold only letters, digits, '-', '_' and '.' (IPv6 in brackets)"
            }
            AuthorityError::EmptyLabel => "the host has an empty label",
            AuthorityError::BadIpAddress => "the host looks like an IP address but is not one",
            AuthorityError::BadPort => {
                "the port must be a number from 1 to 65535 without leading zeros"
            }
        })
    }
}

/// Parses `host[:port]`; the name is lower-cased into `buf`, one trailing dot dropped.
pub fn parse<'b>(raw: &str, buf: &'b mut NameBuf) -> Result<Authority<'b>, AuthorityError> {
    if raw.is_empty() {
        return Err(AuthorityError::Empty);
    }
    // Host, brackets, colon and five digits at the most.
    if raw.len() > MAX_NAME + 8 {
        return Err(AuthorityError::TooLong);
    }
    if let Some(rest) = raw.strip_prefix('[') {
        let end = rest.find(']').ok_or(AuthorityError::BadIpAddress)?;
        let ip: Ipv6Addr = rest[..end]
            .parse()
            .map_err(|_| AuthorityError::BadIpAddress)?;
        let port = match &rest[end + 1..] {
            "" => None,
            tail => Some(parse_port(
                tail.strip_prefix(':').ok_or(AuthorityError::BadPort)?,
            )?),
        };
        return Ok(Authority {
            host: HostRef::Ip(IpAddr::V6(ip)),
            port,
        });
    }
    let (host, port) = match raw.split_once(':') {
        Some((host, port)) => (host, Some(parse_port(port)?)),
        None => (raw, None),
    };
    let host = host.strip_suffix('.').unwrap_or(host);
    if host.is_empty() {
        return Err(AuthorityError::Empty);
    }
    if host.len() > MAX_NAME {
        return Err(AuthorityError::TooLong);
    }
    let out = &mut buf.0[..host.len()];
    let mut numeric = true;
    let mut previous = b'.';
    for (slot, &b) in out.iter_mut().zip(host.as_bytes()) {
        if !(b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')) {
            return Err(AuthorityError::BadCharacter);
        }
        if b == b'.' && previous == b'.' {
            return Err(AuthorityError::EmptyLabel);
        }
        numeric &= b.is_ascii_digit() || b == b'.';
        previous = b;
        *slot = b.to_ascii_lowercase();
    }
    if previous == b'.' {
        return Err(AuthorityError::EmptyLabel);
    }
    // Only ASCII bytes were copied, so this cannot fail.
    let name = std::str::from_utf8(out).map_err(|_| AuthorityError::BadCharacter)?;
    let host = if numeric {
        // "1.2.3" or "010.0.0.1" mean different hosts to different parsers: refuse them.
        HostRef::Ip(IpAddr::V4(
            name.parse::<Ipv4Addr>()
                .map_err(|_| AuthorityError::BadIpAddress)?,
        ))
    } else {
        HostRef::Name(name)
    };
    Ok(Authority { host, port })
}

fn parse_port(digits: &str) -> Result<u16, AuthorityError> {
    let valid = !digits.is_empty()
        && digits.len() <= 5
        && !digits.starts_with('0')
        && digits.bytes().all(|b| b.is_ascii_digit());
    if !valid {
        return Err(AuthorityError::BadPort);
    }
    digits.parse::<u16>().map_err(|_| AuthorityError::BadPort)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(raw: &str) -> (String, Option<u16>) {
        let mut buf = NameBuf::new();
        let a = parse(raw, &mut buf).unwrap();
        let host = match a.host {
            HostRef::Name(n) => n.to_string(),
            HostRef::Ip(ip) => format!("ip:{ip}"),
        };
        (host, a.port)
    }

    fn err(raw: &str) -> AuthorityError {
        parse(raw, &mut NameBuf::new()).unwrap_err()
    }

    #[test]
    fn accepted_forms() {
        assert_eq!(ok("httpbin.mesh"), ("httpbin.mesh".into(), None));
        assert_eq!(ok("HttpBin.Mesh.:80"), ("httpbin.mesh".into(), Some(80)));
        assert_eq!(ok("my_svc.mesh"), ("my_svc.mesh".into(), None));
        assert_eq!(ok("127.0.0.1:8443"), ("ip:127.0.0.1".into(), Some(8443)));
        assert_eq!(ok("[FD00::1]:8443"), ("ip:fd00::1".into(), Some(8443)));
        assert_eq!(ok("[::1]"), ("ip:::1".into(), None));
        assert_eq!(ok("a:65535"), ("a".into(), Some(65535)));
    }

    #[test]
    fn refused_forms() {
        use AuthorityError::*;
        let long = "a".repeat(70_000);
        let cases: &[(&str, AuthorityError)] = &[
            ("", Empty),
            (".", Empty),
            (":80", Empty),
            (&long, TooLong),
            ("user@httpbin.mesh", BadCharacter),
            ("evil.example#httpbin.mesh", BadCharacter),
            ("a/b", BadCharacter),
            ("a b", BadCharacter),
            ("h\u{e9}.mesh", BadCharacter),
            ("a\0b", BadCharacter),
            ("a..b", EmptyLabel),
            (".a", EmptyLabel),
            ("a..", EmptyLabel),
            ("1.2.3", BadIpAddress),
            ("010.0.0.1", BadIpAddress),
            ("[fd00::1", BadIpAddress),
            ("[zz::1]:80", BadIpAddress),
            ("fd00::1", BadPort),
            ("a:", BadPort),
            ("a:0", BadPort),
            ("a:080", BadPort),
            ("a:99999", BadPort),
            ("a:+80", BadPort),
            ("[::1]80", BadPort),
        ];
        for (raw, want) in cases {
            assert_eq!(err(raw), *want, "{raw:?}");
        }
    }
}
