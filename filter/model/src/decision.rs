//! The per-request decision: forward to a declared service, let an unknown host pass, or refuse
//! with a reason. Pure; the proxy-wasm glue only gathers the request and applies the answer.

use std::fmt::Write as _;

use crate::authority::{self, Authority, AuthorityError, HostRef, NameBuf};
use crate::catalog::{Catalog, Service, ServiceId, Target, DEFAULT_REQUEST_PORT};
use crate::mesh_passthrough::{Class, PassthroughMode};
use crate::protocol::Protocol;
use crate::resource::Kind;

/// What the decision may ask of the request; the glue reads headers lazily behind this.
pub trait Request {
    fn authority(&self) -> Option<&str>;
    fn content_type(&self) -> Option<&str>;
    /// A CONNECT (`https_proxy`): a byte tunnel to the authority, not one request. Asked only
    /// of a request no service takes, or one for a tcp service.
    fn is_connect(&self) -> bool {
        false
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Decision<'c> {
    /// Send to this service, with `:authority` rewritten to `service.authority`.
    Forward(ServiceId, &'c Service),
    /// Not ours: the host is not declared, and the mesh's passthrough lets it out.
    Passthrough,
    Deny(Denial),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denial {
    BadAuthority(AuthorityError),
    /// Passthrough is off (the Mesh's flag, or a MeshPassthrough's `None`) and no service has
    /// this name.
    UndeclaredHost,
    /// No service has this name, and no match of the mesh's MeshPassthroughs (`Matched`)
    /// allows it.
    NotMatched,
    /// Passthrough does not let it out and the name belongs to several services (one host, several ports).
    AmbiguousHost,
    /// A tcp or kafka service asked for through an HTTP listener.
    NotHttp(ServiceId),
    /// A grpc service asked for without a gRPC content-type.
    NotGrpc(ServiceId),
    /// This Envoy's Dataplane may not reach the service (its traffic permissions).
    NotPermitted(ServiceId),
}

impl Denial {
    pub const ALL_REASONS: [&'static str; 7] = [
        "bad-authority",
        "undeclared-host",
        "ambiguous-host",
        "not-http",
        "not-grpc",
        "not-matched",
        "not-permitted",
    ];

    /// A short, stable name: the value of the `x-external-service-denied` header and the
    /// metric suffix.
    pub fn reason(&self) -> &'static str {
        Self::ALL_REASONS[self.reason_index()]
    }

    /// Position of `reason()` in `ALL_REASONS`, for per-reason tables.
    pub fn reason_index(&self) -> usize {
        match self {
            Denial::BadAuthority(_) => 0,
            Denial::UndeclaredHost => 1,
            Denial::AmbiguousHost => 2,
            Denial::NotHttp(_) => 3,
            Denial::NotGrpc(_) => 4,
            Denial::NotMatched => 5,
            Denial::NotPermitted(_) => 6,
        }
    }

    pub fn status(&self) -> u32 {
        match self {
            Denial::BadAuthority(_) => 400,
            Denial::UndeclaredHost
            | Denial::AmbiguousHost
            | Denial::NotMatched
            | Denial::NotPermitted(_) => 403,
            // The request reached the wrong kind of listener for this service.
            Denial::NotHttp(_) => 421,
            Denial::NotGrpc(_) => 415,
        }
    }

    /// The local reply's body: what was refused and what to do about it.
    pub fn body(&self, catalog: &Catalog, request: &dyn Request) -> String {
        let host = quoted(request.authority().unwrap_or(""));
        let mut body = match self {
            Denial::BadAuthority(e) => format!("the request authority {host} is not a valid host[:port]: {e}"),
            Denial::UndeclaredHost => format!(
                "host {host} is not declared by any ExternalService or MeshExternalService of mesh {:?}, and {}",
                catalog.mesh,
                closed_by(catalog)
            ),
            Denial::NotMatched => format!(
                "host {host} is not declared by any ExternalService or MeshExternalService of mesh {:?}, and no MeshPassthrough of the mesh matches it (passthroughMode: Matched); to let it out, add to a MeshPassthrough {}",
                catalog.mesh,
                append_match(request.authority().unwrap_or(""), request_class(request))
            ),
            Denial::AmbiguousHost => format!(
                "host {host} is declared by several services of mesh {:?} on different ports; add the port to the request",
                catalog.mesh
            ),
            Denial::NotHttp(id) => {
                let declared = &catalog.services[*id];
                let name = &declared.name;
                if declared.kind == Kind::MeshExternalService {
                    format!(
                        "MeshExternalService {name:?} has match.protocol {} and cannot be reached through this HTTP listener; connect to it over TCP through its VIP or a Dataplane outbound, or set match.protocol: http, http2 or grpc",
                        declared.protocol
                    )
                } else {
                    let why = if declared.protocol_untagged {
                        "has no kuma.io/protocol tag, so it is tcp (Kuma's default) and".to_string()
                    } else {
                        format!("is declared kuma.io/protocol: {}, so it", declared.protocol)
                    };
                    format!(
                        "service {name:?} {why} cannot be reached through this HTTP listener; connect to it over TCP through its TCP listener (a Dataplane outbound), or declare kuma.io/protocol: http, http2 or grpc"
                    )
                }
            }
            Denial::NotGrpc(id) => {
                let declared = &catalog.services[*id];
                let what = if declared.kind == Kind::MeshExternalService {
                    format!("MeshExternalService {:?} has match.protocol: grpc", declared.name)
                } else {
                    format!("service {:?} is declared kuma.io/protocol: grpc", declared.name)
                };
                format!(
                    "{what} and takes only gRPC requests (content-type application/grpc), not {}",
                    quoted(request.content_type().unwrap_or(""))
                )
            }
            Denial::NotPermitted(id) => {
                let declared = &catalog.services[*id];
                match &declared.refused {
                    Some(r) => format!(
                        "{} {:?} may not be reached by {:?} (Dataplane {:?}): {}",
                        declared.kind,
                        declared.name,
                        r.source,
                        r.dataplane,
                        r.decided_by.as_ref().map_or_else(
                            || "no MeshTrafficPermission or TrafficPermission allows it".to_string(),
                            |policy| format!("{policy} denies it"),
                        )
                    ),
                    None => format!("{} {:?} may not be reached", declared.kind, declared.name),
                }
            }
        };
        body.push('\n');
        body
    }
}

/// What keeps undeclared hosts in.
fn closed_by(catalog: &Catalog) -> String {
    match catalog
        .mesh_passthrough
        .as_ref()
        .map(|p| (p.mode, &p.mode_from))
    {
        Some((PassthroughMode::None, Some(name))) => {
            format!("MeshPassthrough {name:?} sets passthroughMode: None")
        }
        _ => "the mesh's passthrough is off".to_string(),
    }
}

/// The `appendMatch` entry that would let a request to `raw` (a valid authority) of `class`
/// out.
fn append_match(raw: &str, class: Class) -> String {
    let mut buf = NameBuf::new();
    let Ok(a) = authority::parse(raw, &mut buf) else {
        return "an appendMatch entry for it".to_string();
    };
    let (kind, value) = match a.host {
        HostRef::Name(name) => ("Domain", name.to_string()),
        HostRef::Ip(ip) => ("IP", ip.to_string()),
    };
    format!(
        "appendMatch {{type: {kind}, value: {value}, port: {}, protocol: {}}}",
        a.port.unwrap_or(DEFAULT_REQUEST_PORT),
        if class == Class::Tls { "tls" } else { "http" }
    )
}

/// Echoes a request value safely: escaped, and cut short when long.
fn quoted(raw: &str) -> String {
    const SHOWN: usize = 100;
    let mut out = String::new();
    let cut = raw.char_indices().nth(SHOWN).map(|(i, _)| i);
    let _ = write!(out, "{:?}", &raw[..cut.unwrap_or(raw.len())]);
    if cut.is_some() {
        let _ = write!(out, " (cut, {} bytes in all)", raw.len());
    }
    out
}

/// Decides one request. `bound` pins the filter to one service (a Dataplane outbound listener):
/// then the authority does not choose the service.
pub fn decide<'c>(
    catalog: &'c Catalog,
    bound: Option<ServiceId>,
    request: &dyn Request,
) -> Decision<'c> {
    let mut buf = NameBuf::new();
    let id = match bound {
        Some(id) => id,
        None => match authority::parse(request.authority().unwrap_or(""), &mut buf) {
            Ok(a) => match catalog.lookup(a.host, a.port) {
                Some(Target::Service(id)) => id,
                target => return undeclared(catalog, target, a, request),
            },
            Err(e) => return Decision::Deny(Denial::BadAuthority(e)),
        },
    };
    let service = &catalog.services[id];
    if service.refused.is_some() {
        return Decision::Deny(Denial::NotPermitted(id));
    }
    match service.protocol {
        Protocol::Http | Protocol::Http2 => Decision::Forward(id, service),
        Protocol::Grpc if is_grpc(request.content_type()) => Decision::Forward(id, service),
        Protocol::Grpc => Decision::Deny(Denial::NotGrpc(id)),
        // A byte stream to a byte-stream service: Envoy tunnels it to the service's cluster.
        Protocol::Tcp | Protocol::Kafka if request.is_connect() => Decision::Forward(id, service),
        Protocol::Tcp | Protocol::Kafka => Decision::Deny(Denial::NotHttp(id)),
    }
}

/// A request no single service takes: out through passthrough if the mesh lets it, else
/// refused with why.
fn undeclared<'c>(
    catalog: &'c Catalog,
    target: Option<Target>,
    a: Authority<'_>,
    request: &dyn Request,
) -> Decision<'c> {
    let port = a.port.unwrap_or(DEFAULT_REQUEST_PORT);
    if catalog.passes(a.host, port, || request_class(request)) {
        return Decision::Passthrough;
    }
    Decision::Deny(match target {
        Some(_) => Denial::AmbiguousHost,
        None if catalog.passthrough => Denial::NotMatched,
        None => Denial::UndeclaredHost,
    })
}

/// What MeshPassthrough's matches see of a request: a plain HTTP request is `Http`; a CONNECT
/// is taken as `Tls`, what an app tunnels through `https_proxy` (a `tls` match allows it, and
/// a `tcp` one, which passes any bytes; an `http` one does not).
fn request_class(request: &dyn Request) -> Class {
    if request.is_connect() {
        Class::Tls
    } else {
        Class::Http
    }
}

/// `application/grpc`, optionally followed by `+proto`, `+json`, `;...`: what gRPC clients send.
fn is_grpc(content_type: Option<&str>) -> bool {
    const GRPC: &str = "application/grpc";
    content_type.is_some_and(|ct| {
        ct.len() >= GRPC.len()
            && ct.as_bytes()[..GRPC.len()].eq_ignore_ascii_case(GRPC.as_bytes())
            && matches!(ct.as_bytes().get(GRPC.len()), None | Some(b'+' | b';'))
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]

    use super::*;
    use crate::config;

    struct Connect(&'static str);

    impl Request for Connect {
        fn authority(&self) -> Option<&str> {
            Some(self.0)
        }
        fn content_type(&self) -> Option<&str> {
            None
        }
        fn is_connect(&self) -> bool {
            true
        }
    }

    /// A CONNECT is matched as TLS: a `tls` entry allows it, an `http` one for its host and
    /// port does not, and the refusal names the `tls` entry to add; a declared tcp service
    /// takes it.
    #[test]
    fn a_connect_is_allowed_by_a_tls_match_not_an_http_one() {
        let config = serde_json::json!({ "resources": [{
            "type": "MeshPassthrough", "name": "egress", "mesh": "default",
            "spec": { "default": { "passthroughMode": "Matched", "appendMatch": [
                { "type": "Domain", "value": "*.secure.test", "port": 443, "protocol": "tls" },
                { "type": "Domain", "value": "*.plain.test", "port": 8080, "protocol": "http" }
            ] } } },
            { "type": "ExternalService", "name": "redis", "mesh": "default",
              "tags": { "kuma.io/service": "redis", "kuma.io/protocol": "tcp" },
              "networking": { "address": "redis.example.com:6379" } }] });
        let filter = config::configure(config.to_string().as_bytes()).unwrap();
        let decide = |authority| decide(&filter.catalog, None, &Connect(authority));
        assert_eq!(decide("a.secure.test:443"), Decision::Passthrough);
        // A declared tcp service takes a CONNECT (a plain request gets 421 `not-http`).
        assert!(matches!(decide("redis.mesh:6379"), Decision::Forward(_, s) if s.name == "redis"));
        assert_eq!(
            decide("a.secure.test:8443"),
            Decision::Deny(Denial::NotMatched)
        );
        let request = Connect("a.plain.test:8080");
        let Decision::Deny(denial) = decide(request.0) else {
            panic!("an http entry let a CONNECT out");
        };
        assert!(denial.body(&filter.catalog, &request).contains(
            "appendMatch {type: Domain, value: a.plain.test, port: 8080, protocol: tls}"
        ));
    }
}
