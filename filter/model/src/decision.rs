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
}

impl Denial {
    pub const ALL_REASONS: [&'static str; 6] = [
        "bad-authority",
        "undeclared-host",
        "ambiguous-host",
        "not-http",
        "not-grpc",
        "not-matched",
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
        }
    }

    pub fn status(&self) -> u32 {
        match self {
            Denial::BadAuthority(_) => 400,
            Denial::UndeclaredHost | Denial::AmbiguousHost | Denial::NotMatched => 403,
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
                append_match(request.authority().unwrap_or(""))
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

/// The `appendMatch` entry that would let a request to `raw` (a valid authority) out.
fn append_match(raw: &str) -> String {
    let mut buf = NameBuf::new();
    let Ok(a) = authority::parse(raw, &mut buf) else {
        return "an appendMatch entry for it".to_string();
    };
    let (kind, value) = match a.host {
        HostRef::Name(name) => ("Domain", name.to_string()),
        HostRef::Ip(ip) => ("IP", ip.to_string()),
    };
    format!(
        "appendMatch {{type: {kind}, value: {value}, port: {}, protocol: http}}",
        a.port.unwrap_or(DEFAULT_REQUEST_PORT)
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
                target => return undeclared(catalog, target, a),
            },
            Err(e) => return Decision::Deny(Denial::BadAuthority(e)),
        },
    };
    let service = &catalog.services[id];
    match service.protocol {
        Protocol::Http | Protocol::Http2 => Decision::Forward(id, service),
        Protocol::Grpc if is_grpc(request.content_type()) => Decision::Forward(id, service),
        Protocol::Grpc => Decision::Deny(Denial::NotGrpc(id)),
        Protocol::Tcp | Protocol::Kafka => Decision::Deny(Denial::NotHttp(id)),
    }
}

/// A request no single service takes: out through passthrough if the mesh lets it, else
/// refused with why.
fn undeclared<'c>(catalog: &'c Catalog, target: Option<Target>, a: Authority<'_>) -> Decision<'c> {
    let port = a.port.unwrap_or(DEFAULT_REQUEST_PORT);
    if catalog.passes(a.host, port, Class::Http) {
        return Decision::Passthrough;
    }
    Decision::Deny(match target {
        Some(_) => Denial::AmbiguousHost,
        None if catalog.passthrough => Denial::NotMatched,
        None => Denial::UndeclaredHost,
    })
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
