//! The `kuma.io/protocol` tag.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    Tcp,
    Http,
    Http2,
    Grpc,
    Kafka,
}

impl Protocol {
    /// Kuma's list, as its validation message gives it.
    pub const ALLOWED: &'static str = "grpc, http, http2, kafka, tcp";

    pub fn parse(value: &str) -> Option<Protocol> {
        Some(match value {
            "tcp" => Protocol::Tcp,
            "http" => Protocol::Http,
            "http2" => Protocol::Http2,
            "grpc" => Protocol::Grpc,
            "kafka" => Protocol::Kafka,
            _ => return None,
        })
    }

    /// The tag's value; no tag means tcp.
    pub fn of_tag(tag: Option<&str>) -> Protocol {
        tag.and_then(Protocol::parse).unwrap_or(Protocol::Tcp)
    }

    /// Whether requests for it may go through an HTTP listener.
    pub fn is_http(self) -> bool {
        matches!(self, Protocol::Http | Protocol::Http2 | Protocol::Grpc)
    }

    /// Whether the upstream speaks HTTP/2.
    pub fn is_http2(self) -> bool {
        matches!(self, Protocol::Http2 | Protocol::Grpc)
    }

    /// What endpoints declaring `self` and `other` can all speak, as Kuma infers it: the same
    /// protocol, HTTP/1.1 for http with http2, http2 for http2 with grpc, else tcp.
    pub fn common(self, other: Protocol) -> Protocol {
        use Protocol::*;
        match (self, other) {
            (a, b) if a == b => a,
            (Http, Http2) | (Http2, Http) => Http,
            (Http2, Grpc) | (Grpc, Http2) => Http2,
            _ => Tcp,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Http => "http",
            Protocol::Http2 => "http2",
            Protocol::Grpc => "grpc",
            Protocol::Kafka => "kafka",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
