//! Request scenarios shared by the native decision tests (tests/decisions.rs) and the tests
//! that run the compiled module (host-tests/tests/filter.rs): one table, two engines, as
//! proxytest's `vmTest` runs one test body natively and in the VM. Each row says what the
//! filter leaves behind (`:authority`, filter state, the counter that moves, the local reply);
//! each engine reads the same columns back and `run` compares them.

use std::fmt::Write as _;

use external_service_model::contract::{denied_details, denied_metric};
use serde_json::{json, Value};

/// The ExternalServices every scenario configuration starts from.
pub fn services() -> Vec<Value> {
    let es = |name: &str, service: &str, protocol: Option<&str>, address: &str, tls: bool| {
        let mut tags = json!({ "kuma.io/service": service });
        if let Some(p) = protocol {
            tags["kuma.io/protocol"] = json!(p);
        }
        let mut networking = json!({ "address": address });
        if tls {
            networking["tls"] = json!({ "enabled": true });
        }
        json!({ "type": "ExternalService", "mesh": "default", "name": name, "tags": tags, "networking": networking })
    };
    let mut hidden = es(
        "hidden",
        "hidden",
        Some("http"),
        "hidden.example.com:443",
        true,
    );
    hidden["networking"]["disableHostDNSEntry"] = json!(true);
    // One host with two sets of client certificates (Kuma issues 4400 and 4824): two services
    // on one address, both without their real name.
    let hidden_on = |name: &str, address: &str| {
        let mut es = es(name, name, Some("http"), address, true);
        es["networking"]["disableHostDNSEntry"] = json!(true);
        es
    };
    vec![
        es("httpbin", "httpbin", Some("http"), "httpbin.org:443", true),
        es(
            "my-svc",
            "my_svc",
            Some("http"),
            "api.example.com:8080",
            false,
        ),
        es("redis", "redis", None, "redis.example.com:6379", false),
        es(
            "kafka",
            "kafka",
            Some("kafka"),
            "kafka.example.com:9092",
            true,
        ),
        es(
            "grpc-svc",
            "grpc-svc",
            Some("grpc"),
            "grpc.example.com:443",
            true,
        ),
        es("h2", "h2", Some("http2"), "h2.example.com:8443", true),
        es("ip-svc", "ip-svc", Some("http"), "127.0.0.5:8080", false),
        es("ipv6-svc", "ipv6-svc", Some("http"), "[::1]:9443", true),
        hidden,
        es(
            "web-a",
            "web-a",
            Some("http"),
            "shared.example.com:443",
            true,
        ),
        es(
            "web-b",
            "web-b",
            Some("http"),
            "shared.example.com:8443",
            true,
        ),
        // One host on the default ports of TLS and of plain HTTP: both would shorten to
        // `dual.example.com`, so both keep their ports.
        es(
            "dual-tls",
            "dual-tls",
            Some("http"),
            "dual.example.com:443",
            true,
        ),
        es(
            "dual-plain",
            "dual-plain",
            Some("http"),
            "dual.example.com:80",
            false,
        ),
        hidden_on("tenant-a", "tenants.example.com:443"),
        hidden_on("tenant-b", "tenants.example.com:443"),
        // One of two services on one address kept its real name: it keeps its authority.
        es(
            "owner",
            "owner",
            Some("http"),
            "owned.example.com:443",
            true,
        ),
        hidden_on("guest", "owned.example.com:443"),
    ]
}

/// The MeshExternalServices every scenario configuration has besides: named by Kuma's default
/// HostnameGenerator (`<display name>.extsvc.mesh.local`), on their `match.port` only.
pub fn mesh_external_services() -> Vec<Value> {
    let mes = |name: &str, port: u16, protocol: &str, labels: Value| {
        json!({ "type": "MeshExternalService", "mesh": "default", "name": name, "labels": labels,
                "spec": { "match": { "type": "HostnameGenerator", "port": port, "protocol": protocol },
                          "endpoints": [{ "address": format!("{name}.upstream.example"), "port": 443 }],
                          "tls": { "enabled": true } } })
    };
    vec![
        mes("mes-api", 80, "http", json!({})),
        // The name of an ExternalService's kuma.io/service too: each kind keeps its own.
        mes("httpbin", 8000, "http", json!({})),
        mes("mes-db", 5432, "tcp", json!({})),
        // Both want `dup.extsvc.mesh.local`: the first by name gets it, the other none.
        mes(
            "dup-a",
            80,
            "http",
            json!({ "kuma.io/display-name": "dup" }),
        ),
        mes(
            "dup-b",
            80,
            "http",
            json!({ "kuma.io/display-name": "dup" }),
        ),
    ]
}

/// The `appendMatch` list of the MeshPassthrough of [`Setup::Matched`].
pub fn passthrough_matches() -> Vec<Value> {
    let m = |kind: &str, value: &str, port: Option<u16>, protocol: &str| {
        let mut m = json!({ "type": kind, "value": value, "protocol": protocol });
        if let Some(port) = port {
            m["port"] = json!(port);
        }
        m
    };
    vec![
        m("Domain", "*.example.test", Some(80), "http"),
        m("Domain", "apple.example.org", None, "http"),
        m("IP", "127.0.0.7", None, "tcp"),
        m("Domain", "tls-only.example.org", Some(443), "tls"),
        m("IP", "127.0.0.9", Some(8080), "http"),
        m("CIDR", "10.1.0.0/16", None, "http2"),
    ]
}

fn mesh_passthrough(name: &str, mode: &str, matches: Vec<Value>) -> Value {
    json!({ "type": "MeshPassthrough", "mesh": "default", "name": name,
            "spec": { "targetRef": { "kind": "Mesh" },
                      "default": { "passthroughMode": mode, "appendMatch": matches } } })
}

/// The MeshPassthrough of [`Setup::ClosedByPolicy`].
pub const CLOSING_POLICY: &str = "closed";

fn mesh(passthrough: bool) -> Value {
    json!({ "type": "Mesh", "name": "default", "networking": { "outbound": { "passthrough": passthrough } } })
}

/// The plugin configurations the scenarios name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setup {
    /// Passthrough off: only declared hosts leave.
    Closed,
    /// No Mesh resource: Kuma's default, passthrough on.
    Open,
    /// Bound to one service, as on a Dataplane outbound listener.
    Bound(&'static str),
    /// Bound to one MeshExternalService.
    BoundMes(&'static str),
    /// The Mesh's passthrough off, a MeshPassthrough `Matched` with [`passthrough_matches`]:
    /// only those leave undeclared.
    Matched,
    /// The Mesh's passthrough on, a MeshPassthrough `None`: it closes.
    ClosedByPolicy,
    /// The Mesh's passthrough off, a MeshPassthrough `All` (its matches ignored): it opens.
    OpenedByPolicy,
    /// The sidecar of this Dataplane (`web-1` of service `web`, or `batch-1` of `batch`) in a
    /// mesh with mTLS: [`permissions`] decide what it may reach.
    Sidecar(&'static str),
}

/// The MeshTrafficPermission of `httpbin`: the whole mesh may reach it, then `batch` may not
/// (a later `from` item wins where both select the caller, as in Kuma).
pub const HTTPBIN_PERMISSION: &str = "httpbin-callers";

/// Two Dataplanes, and permissions for `httpbin` only: every other ExternalService has none
/// (Kuma denies it), MeshExternalServices none (Kuma allows them).
fn permissions() -> Vec<Value> {
    let dataplane = |name: &str, service: &str| {
        json!({ "type": "Dataplane", "mesh": "default", "name": name, "networking": {
            "address": "127.0.0.1",
            "inbound": [{ "port": 8080, "tags": { "kuma.io/service": service } }] } })
    };

    vec![
        json!({ "type": "Mesh", "name": "default",
            "networking": { "outbound": { "passthrough": false } },
            "mtls": { "enabledBackend": "ca", "backends": [{ "name": "ca", "type": "provided" }] } }),
        dataplane("web-1", "web"),
        dataplane("batch-1", "batch"),
        json!({ "type": "MeshTrafficPermission", "mesh": "default", "name": HTTPBIN_PERMISSION,
            "spec": {
                "targetRef": { "kind": "MeshService", "name": "httpbin" },
                "from": [
                    { "targetRef": { "kind": "Mesh" }, "default": { "action": "Allow" } },
                    { "targetRef": { "kind": "MeshSubset", "tags": { "kuma.io/service": "batch" } },
                      "default": { "action": "Deny" } }] } }),
    ]
}

pub fn plugin_config(setup: Setup) -> Value {
    let mut resources = services();
    resources.extend(mesh_external_services());
    let mut config = json!({});
    match setup {
        Setup::Closed => resources.push(mesh(false)),
        Setup::Open => {}
        Setup::Bound(service) => {
            resources.push(mesh(false));
            config["service"] = json!(service);
        }
        Setup::BoundMes(name) => {
            resources.push(mesh(false));
            config["meshExternalService"] = json!(name);
        }
        Setup::Matched => resources.extend([
            mesh(false),
            mesh_passthrough("allowed", "Matched", passthrough_matches()),
        ]),
        Setup::ClosedByPolicy => resources.extend([
            mesh(true),
            mesh_passthrough(CLOSING_POLICY, "None", passthrough_matches()),
        ]),
        Setup::OpenedByPolicy => {
            resources.extend([mesh(false), mesh_passthrough("open", "All", Vec::new())])
        }
        Setup::Sidecar(dataplane) => {
            resources.extend(permissions());
            config["dataplane"] = json!(dataplane);
        }
    }
    config["resources"] = Value::Array(resources);
    config
}

/// What the filter leaves behind after one request's headers: the table's columns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// `:authority` as the filter leaves it: rewritten on a forward, as sent otherwise.
    pub authority: Option<String>,
    /// The filter state `contract::REQUESTED_AUTHORITY_PROPERTY`: the authority a forwarded
    /// request asked for, set only when the filter rewrote it.
    pub filter_state: Option<String>,
    /// The one counter of the filter that went up, by one: a denial's
    /// (`contract::denied_metric`). A forward or passthrough moves none (Envoy's cluster stats
    /// count those).
    pub counter: Option<String>,
    /// The local reply, when the request is refused.
    pub reply: Option<Reply>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u32,
    /// The `contract::DENIED_HEADER` value: the denial's reason.
    pub denied: String,
    /// The reply's response code details (`contract::denied_details`).
    pub details: String,
    pub body: String,
}

/// What a row expects, in short; [`outcome`] spells out every column from it and the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Then {
    /// Forwarded with `:authority` rewritten to `authority` (which names the service's route
    /// and cluster: Envoy counts and logs the service from there).
    Forward { authority: &'static str },
    /// Forwarded to a MeshExternalService: as `Forward`, and the name asked for is kept even
    /// when unchanged, as its route gives the upstream the endpoint's address.
    ForwardMes { authority: &'static str },
    /// Left untouched: passthrough is on and the host is not declared.
    Passthrough,
    /// 403 `undeclared-host`.
    Undeclared,
    /// 403 `undeclared-host`, closed by the MeshPassthrough [`CLOSING_POLICY`].
    UndeclaredByPolicy,
    /// 403 `not-matched`; the reply names the `appendMatch` that would let it out: its type,
    /// value and port.
    NotMatched(&'static str, &'static str, u16),
    /// 403 `ambiguous-host`.
    Ambiguous,
    /// 400 `bad-authority`, for this reason (one of the `BAD_*` texts).
    BadAuthority(&'static str),
    /// 421 `not-http`: the service is declared with this protocol, or none (tcp by default).
    NotHttp {
        service: &'static str,
        protocol: Option<&'static str>,
    },
    /// 415 `not-grpc`: a grpc-svc request without a gRPC content-type.
    NotGrpc,
    /// 421 `not-http`: a MeshExternalService of `match.protocol: tcp`.
    MesNotHttp(&'static str),
    /// 403 `not-permitted`: the ExternalService `service` may not be reached by this
    /// `Sidecar`, as the MeshTrafficPermission `policy` says, or because none allows it.
    NotPermitted {
        service: &'static str,
        dataplane: &'static str,
        policy: Option<&'static str>,
    },
}

pub const BAD_EMPTY: &str = "the host is empty";
pub const BAD_TOO_LONG: &str = "the host is longer than 253 characters";
pub const BAD_CHARACTER: &str =
    "the host may hold only letters, digits, '-', '_' and '.' (IPv6 in brackets)";
pub const BAD_EMPTY_LABEL: &str = "the host has an empty label";
pub const BAD_IP: &str = "the host looks like an IP address but is not one";
pub const BAD_PORT: &str = "the port must be a number from 1 to 65535 without leading zeros";

/// The mesh every scenario configuration serves.
const MESH: &str = "default";

/// Every column of `then` for a request with this `:authority` and content-type.
pub fn outcome(authority: Option<&str>, content_type: Option<&str>, then: Then) -> Outcome {
    let host = echo(authority.unwrap_or(""));
    let untouched = authority.map(str::to_owned);
    let deny = |status: u32, reason: &str, body: String| Outcome {
        authority: untouched.clone(),
        filter_state: None,
        counter: Some(denied_metric(reason)),
        reply: Some(Reply {
            status,
            denied: reason.to_owned(),
            details: denied_details(reason),
            body: body + "\n",
        }),
    };
    match then {
        Then::Forward { authority: real } => Outcome {
            authority: Some(real.to_owned()),
            filter_state: untouched.clone().filter(|requested| requested != real),
            counter: None,
            reply: None,
        },
        Then::ForwardMes { authority: real } => Outcome {
            authority: Some(real.to_owned()),
            filter_state: untouched.clone(),
            counter: None,
            reply: None,
        },
        Then::Passthrough => Outcome {
            authority: untouched,
            filter_state: None,
            counter: None,
            reply: None,
        },
        Then::Undeclared => deny(
            403,
            "undeclared-host",
            format!("host {host} is not declared by any ExternalService or MeshExternalService of mesh \"{MESH}\", and the mesh's passthrough is off"),
        ),
        Then::UndeclaredByPolicy => deny(
            403,
            "undeclared-host",
            format!("host {host} is not declared by any ExternalService or MeshExternalService of mesh \"{MESH}\", and MeshPassthrough \"{CLOSING_POLICY}\" sets passthroughMode: None"),
        ),
        Then::NotMatched(kind, value, port) => deny(
            403,
            "not-matched",
            format!("host {host} is not declared by any ExternalService or MeshExternalService of mesh \"{MESH}\", and no MeshPassthrough of the mesh matches it (passthroughMode: Matched); to let it out, add to a MeshPassthrough appendMatch {{type: {kind}, value: {value}, port: {port}, protocol: http}}"),
        ),
        Then::Ambiguous => deny(
            403,
            "ambiguous-host",
            format!("host {host} is declared by several services of mesh \"{MESH}\" on different ports; add the port to the request"),
        ),
        Then::BadAuthority(why) => deny(
            400,
            "bad-authority",
            format!("the request authority {host} is not a valid host[:port]: {why}"),
        ),
        Then::NotHttp { service, protocol } => {
            let why = match protocol {
                Some(protocol) => format!("is declared kuma.io/protocol: {protocol}, so it"),
                None => "has no kuma.io/protocol tag, so it is tcp (Kuma's default) and".to_owned(),
            };
            deny(
                421,
                "not-http",
                format!("service \"{service}\" {why} cannot be reached through this HTTP listener; connect to it over TCP through its TCP listener (a Dataplane outbound), or declare kuma.io/protocol: http, http2 or grpc"),
            )
        }
        Then::MesNotHttp(name) => deny(
            421,
            "not-http",
            format!("MeshExternalService \"{name}\" has match.protocol tcp and cannot be reached through this HTTP listener; connect to it over TCP through its VIP or a Dataplane outbound, or set match.protocol: http, http2 or grpc"),
        ),
        Then::NotPermitted {
            service,
            dataplane,
            policy,
        } => deny(
            403,
            "not-permitted",
            format!(
                "ExternalService \"{service}\" may not be reached by \"{}\" (Dataplane \"{dataplane}\"): {}",
                dataplane.trim_end_matches("-1"),
                policy.map_or_else(
                    || "no MeshTrafficPermission or TrafficPermission allows it".to_string(),
                    |p| format!("MeshTrafficPermission \"{p}\" denies it"),
                )
            ),
        ),
        Then::NotGrpc => deny(
            415,
            "not-grpc",
            format!(
                "service \"grpc-svc\" is declared kuma.io/protocol: grpc and takes only gRPC requests (content-type application/grpc), not {}",
                echo(content_type.unwrap_or(""))
            ),
        ),
    }
}

/// A request value as a reply quotes it: Rust-escaped, the first 100 characters only.
fn echo(raw: &str) -> String {
    match raw.char_indices().nth(100) {
        None => format!("{raw:?}"),
        Some((cut, _)) => {
            let mut out = format!("{:?}", &raw[..cut]);
            let _ = write!(out, " (cut, {} bytes in all)", raw.len());
            out
        }
    }
}

#[derive(Debug, Clone)]
pub struct Case {
    pub setup: Setup,
    /// `None`: the request carries no `:authority` at all.
    pub authority: Option<String>,
    pub content_type: Option<String>,
    pub expect: Outcome,
}

/// Runs every case through `engine` and fails once, listing every row that differs.
pub fn run(mut engine: impl FnMut(&Case) -> Outcome) {
    let mut wrong = String::new();
    let all = cases();
    for case in &all {
        let got = engine(case);
        if got != case.expect {
            let _ = write!(
                wrong,
                "\n{:?} {} content-type {}:\n  want {}\n  got  {}",
                case.setup,
                short(&case.authority),
                short(&case.content_type),
                short(&case.expect),
                short(&got)
            );
        }
    }
    assert!(
        wrong.is_empty(),
        "of {} scenarios, these differ:{wrong}",
        all.len()
    );
}

/// `{:?}` of `value`, its middle cut out past 600 bytes (the 64 KiB rows).
fn short(value: &impl std::fmt::Debug) -> String {
    let text = format!("{value:?}");
    let (Some((head, _)), Some((tail, _))) = (
        text.char_indices().nth(300),
        text.char_indices().nth_back(300),
    ) else {
        return text;
    };
    if tail <= head {
        return text;
    }
    format!("{} ... {}", &text[..head], &text[tail..])
}

fn with(setup: Setup, authority: Option<String>, content_type: Option<String>, then: Then) -> Case {
    let expect = outcome(authority.as_deref(), content_type.as_deref(), then);
    Case {
        setup,
        authority,
        content_type,
        expect,
    }
}

fn case(setup: Setup, authority: impl Into<String>, then: Then) -> Case {
    with(setup, Some(authority.into()), None, then)
}

fn closed(authority: impl Into<String>, then: Then) -> Case {
    case(Setup::Closed, authority, then)
}

fn grpc(content_type: Option<String>, then: Then) -> Case {
    with(
        Setup::Closed,
        Some("grpc-svc.mesh".into()),
        content_type,
        then,
    )
}

const fn forward(authority: &'static str) -> Then {
    Then::Forward { authority }
}

const fn mes(authority: &'static str) -> Then {
    Then::ForwardMes { authority }
}

const fn not_http(service: &'static str, protocol: Option<&'static str>) -> Then {
    Then::NotHttp { service, protocol }
}

pub fn cases() -> Vec<Case> {
    use Setup::*;
    use Then::{
        Ambiguous, BadAuthority as Bad, NotGrpc, NotMatched, Passthrough, Undeclared,
        UndeclaredByPolicy,
    };
    let httpbin = forward("httpbin.org");
    let my_svc = forward("api.example.com:8080");
    let ipv6 = forward("[::1]:9443");
    let grpc_svc = forward("grpc.example.com");
    vec![
        // `<service>.mesh`: no port, port 80, the service's own port; any case; one trailing
        // dot, with or without a port.
        closed("httpbin.mesh", httpbin),
        closed("httpbin.mesh:80", httpbin),
        closed("httpbin.mesh:443", httpbin),
        closed("HttpBin.MESH.", httpbin),
        closed("httpbin.mesh.:443", httpbin),
        closed("httpbin.mesh:8080", Undeclared),
        // Underscores in the service tag: reachable with dots too, on its own port or 80 only.
        closed("my_svc.mesh", my_svc),
        closed("my.svc.mesh", my_svc),
        closed("my.svc.mesh:8080", my_svc),
        closed("my_svc.mesh:443", Undeclared),
        // The real name on the service's port, and on port 80 (or none) for a DNS host.
        closed("httpbin.org:443", httpbin),
        closed("httpbin.org", httpbin),
        closed("httpbin.org:80", httpbin),
        closed("HTTPBIN.ORG.:443", httpbin),
        closed("api.example.com:8080", my_svc),
        closed("h2.mesh", forward("h2.example.com:8443")),
        // IP services: the address itself, no port-80 alias; IPv6 in brackets, any spelling.
        closed("127.0.0.5:8080", forward("127.0.0.5:8080")),
        closed("127.0.0.5", Undeclared),
        closed("[::1]:9443", ipv6),
        closed("[0:0::1]:9443", ipv6),
        closed("[0:0:0:0:0:0:0:1]:9443", ipv6),
        closed("ipv6-svc.mesh", ipv6),
        closed("[::1]", Undeclared),
        closed("[::1]:80", Undeclared),
        closed("[::ffff:127.0.0.5]:8080", Undeclared),
        // IPv6 not in brackets, unclosed, with a zone, or not an address.
        closed("::1", Bad(BAD_PORT)),
        closed("::1:9443", Bad(BAD_PORT)),
        closed("::1]", Bad(BAD_PORT)),
        closed("[::1", Bad(BAD_IP)),
        closed("[::1]x", Bad(BAD_PORT)),
        closed("[fe80::1%25eth0]:9443", Bad(BAD_IP)),
        closed("[v1.x]", Bad(BAD_IP)),
        closed("[]", Bad(BAD_IP)),
        closed("[evil.example]", Bad(BAD_IP)),
        // disableHostDNSEntry: the .mesh name only.
        closed("hidden.mesh", forward("hidden.example.com")),
        closed("hidden.example.com:443", Undeclared),
        closed("hidden.example.com", Undeclared),
        // Two services on one address without their real names: each by its .mesh name, which
        // names its route (the route gives the upstream the real authority back).
        closed("tenant-a.mesh", forward("tenant-a.mesh")),
        closed("TENANT-B.mesh:443", forward("tenant-b.mesh")),
        closed("tenants.example.com", Undeclared),
        closed("tenants.example.com:443", Undeclared),
        closed("owned.example.com", forward("owned.example.com")),
        closed("guest.mesh", forward("guest.mesh")),
        // One host on two ports: without a port the name is ambiguous, with one it is not.
        closed("shared.example.com", Ambiguous),
        closed(
            "shared.example.com:8443",
            forward("shared.example.com:8443"),
        ),
        closed("shared.example.com:443", forward("shared.example.com")),
        closed("dual.example.com:443", forward("dual.example.com:443")),
        closed("dual.example.com", forward("dual.example.com:80")),
        closed("dual-tls.mesh", forward("dual.example.com:443")),
        // Undeclared hosts, and names that only look declared.
        closed("evil.example", Undeclared),
        closed("httpbin.mesh.evil.example", Undeclared),
        closed("httpbin.mesh.evil.example.", Undeclared),
        closed("evilhttpbin.mesh", Undeclared),
        // Malformed authorities are refused whatever passthrough says: user info, URL parts,
        // escapes, empty labels.
        closed("", Bad(BAD_EMPTY)),
        closed("user@httpbin.mesh", Bad(BAD_CHARACTER)),
        closed("httpbin.mesh@evil.example", Bad(BAD_CHARACTER)),
        closed("user:pass@httpbin.mesh", Bad(BAD_PORT)),
        closed("evil.example#httpbin.mesh", Bad(BAD_CHARACTER)),
        closed("evil.example/httpbin.mesh", Bad(BAD_CHARACTER)),
        closed("evil.example?httpbin.mesh", Bad(BAD_CHARACTER)),
        closed("evil.example\\httpbin.mesh", Bad(BAD_CHARACTER)),
        closed("%68ttpbin.mesh", Bad(BAD_CHARACTER)),
        closed("httpbin.mesh..", Bad(BAD_EMPTY_LABEL)),
        closed(".httpbin.mesh", Bad(BAD_EMPTY_LABEL)),
        closed("httpbin..mesh", Bad(BAD_EMPTY_LABEL)),
        case(Open, "bad host", Bad(BAD_CHARACTER)),
        with(Closed, None, None, Bad(BAD_EMPTY)),
        // Ports: zero, too large, zero-padded, empty, signed, two, hex.
        closed("httpbin.mesh:0", Bad(BAD_PORT)),
        closed("httpbin.mesh:99999", Bad(BAD_PORT)),
        closed("httpbin.mesh:65536", Bad(BAD_PORT)),
        closed("httpbin.mesh:080", Bad(BAD_PORT)),
        closed("httpbin.mesh:", Bad(BAD_PORT)),
        closed("httpbin.mesh:+80", Bad(BAD_PORT)),
        closed("httpbin.mesh:-1", Bad(BAD_PORT)),
        closed("httpbin.mesh:80:80", Bad(BAD_PORT)),
        closed("httpbin.mesh:0x50", Bad(BAD_PORT)),
        // Non-ASCII (IDN look-alikes, a zero-width space), NUL, CR LF and other control bytes;
        // the reply echoes them escaped.
        closed("httpbín.mesh", Bad(BAD_CHARACTER)),
        closed("httpbin.mesh\u{200b}", Bad(BAD_CHARACTER)),
        closed("ｈttpbin.mesh", Bad(BAD_CHARACTER)),
        closed("httpbin.mesh\0", Bad(BAD_CHARACTER)),
        closed("httpbin.mesh\0.evil.example", Bad(BAD_CHARACTER)),
        closed("\0", Bad(BAD_CHARACTER)),
        closed("httpbin.mesh\r\nx: y", Bad(BAD_PORT)),
        closed("httpbin.mesh\t", Bad(BAD_CHARACTER)),
        closed("httpbin.mesh ", Bad(BAD_CHARACTER)),
        // Too long for DNS (64 KiB, or one past 253), refused with the value cut short; a
        // label past 63 characters is only undeclared.
        closed("a".repeat(64 * 1024), Bad(BAD_TOO_LONG)),
        closed(
            format!("{}.httpbin.mesh", "a.".repeat(32 * 1024)),
            Bad(BAD_TOO_LONG),
        ),
        closed(format!("{}.mesh", "a".repeat(249)), Bad(BAD_TOO_LONG)),
        closed(format!("{}.mesh", "a".repeat(64)), Undeclared),
        // Protocol rules.
        closed("redis.mesh", not_http("redis", None)),
        closed("redis.example.com:6379", not_http("redis", None)),
        closed("kafka.mesh", not_http("kafka", Some("kafka"))),
        grpc(Some("application/grpc".into()), grpc_svc),
        grpc(Some("application/grpc+proto".into()), grpc_svc),
        grpc(Some("Application/GRPC;charset=utf-8".into()), grpc_svc),
        grpc(Some("text/plain".into()), NotGrpc),
        grpc(Some("application/grpcx".into()), NotGrpc),
        grpc(None, NotGrpc),
        grpc(Some("x".repeat(64 * 1024)), NotGrpc),
        // Passthrough on: unknown hosts go on untouched; declared ones are still rewritten.
        case(Open, "evil.example", Passthrough),
        case(Open, "shared.example.com", Passthrough),
        case(Open, "httpbin.mesh", httpbin),
        // Bound to a service: the host does not choose.
        case(Bound("httpbin"), "anything.example", httpbin),
        case(Bound("httpbin"), "127.0.0.1:10000", httpbin),
        case(Bound("redis"), "127.0.0.1:10001", not_http("redis", None)),
        // MeshExternalServices: by hostname on match.port (no port is port 80), any case.
        closed(
            "mes-api.extsvc.mesh.local",
            mes("mes-api.extsvc.mesh.local"),
        ),
        closed(
            "MES-API.extsvc.mesh.local.:80",
            mes("mes-api.extsvc.mesh.local"),
        ),
        closed("mes-api.extsvc.mesh.local:443", Undeclared),
        closed("mes-api.upstream.example", Undeclared),
        closed("mes-api.mesh", Undeclared),
        closed(
            "httpbin.extsvc.mesh.local:8000",
            mes("httpbin.extsvc.mesh.local:8000"),
        ),
        closed("httpbin.extsvc.mesh.local", Undeclared),
        closed("mes-db.extsvc.mesh.local:5432", Then::MesNotHttp("mes-db")),
        closed("dup.extsvc.mesh.local", mes("dup.extsvc.mesh.local")),
        closed("dup-b.extsvc.mesh.local", Undeclared),
        case(
            Open,
            "mes-api.extsvc.mesh.local",
            mes("mes-api.extsvc.mesh.local"),
        ),
        // Bound to a MeshExternalService, even one left without a hostname.
        case(
            BoundMes("mes-api"),
            "anything.example",
            mes("mes-api.extsvc.mesh.local"),
        ),
        case(
            BoundMes("httpbin"),
            "httpbin.mesh",
            mes("httpbin.extsvc.mesh.local:8000"),
        ),
        case(
            BoundMes("dup-b"),
            "dup.extsvc.mesh.local",
            mes("dup-b.mesh-external-service.invalid"),
        ),
        // MeshPassthrough `Matched` (the Mesh's flag off, and ignored): declared hosts as
        // ever; undeclared ones only as a match allows, for HTTP on its port.
        case(Matched, "httpbin.mesh", httpbin),
        case(Matched, "a.example.test", Passthrough),
        case(Matched, "b.example.test:80", Passthrough),
        case(Matched, "a.b.example.test", Passthrough),
        case(Matched, "A.Example.TEST.", Passthrough),
        case(Matched, "xn--80ak6aa92e.example.test", Passthrough),
        case(
            Matched,
            "a.example.test:8080",
            NotMatched("Domain", "a.example.test", 8080),
        ),
        case(
            Matched,
            "example.test",
            NotMatched("Domain", "example.test", 80),
        ),
        case(
            Matched,
            "example.test.evil.test",
            NotMatched("Domain", "example.test.evil.test", 80),
        ),
        case(
            Matched,
            "aexample.test",
            NotMatched("Domain", "aexample.test", 80),
        ),
        // The wildcard written as a host, an empty label, a Unicode look-alike: not names.
        case(Matched, "*.example.test", Bad(BAD_CHARACTER)),
        case(Matched, ".example.test", Bad(BAD_EMPTY_LABEL)),
        case(Matched, "a..example.test", Bad(BAD_EMPTY_LABEL)),
        case(Matched, "a.example.test..", Bad(BAD_EMPTY_LABEL)),
        case(Matched, "\u{430}pple.example.org", Bad(BAD_CHARACTER)),
        // A match without a port: every port; its punycode look-alike is another name.
        case(Matched, "apple.example.org", Passthrough),
        case(Matched, "apple.example.org:9999", Passthrough),
        case(
            Matched,
            "xn--pple-43d.example.org",
            NotMatched("Domain", "xn--pple-43d.example.org", 80),
        ),
        case(
            Matched,
            "sub.apple.example.org",
            NotMatched("Domain", "sub.apple.example.org", 80),
        ),
        // A `tls` match is for TLS (CONNECT), not a plain HTTP request.
        case(
            Matched,
            "tls-only.example.org:443",
            NotMatched("Domain", "tls-only.example.org", 443),
        ),
        // IPs and CIDRs, IPv4-mapped IPv6 as the IPv4 address it maps.
        case(Matched, "127.0.0.9:8080", Passthrough),
        case(Matched, "[::ffff:127.0.0.9]:8080", Passthrough),
        case(Matched, "127.0.0.9", NotMatched("IP", "127.0.0.9", 80)),
        case(Matched, "10.1.2.3", Passthrough),
        // A `tcp` match passes any bytes, HTTP too.
        case(Matched, "127.0.0.7:1234", Passthrough),
        case(Matched, "10.1.255.255:8443", Passthrough),
        case(Matched, "10.2.0.1", NotMatched("IP", "10.2.0.1", 80)),
        case(Matched, "[::1]:80", NotMatched("IP", "::1", 80)),
        // An ambiguous host no match allows stays ambiguous.
        case(Matched, "shared.example.com", Ambiguous),
        // `None` closes whatever the Mesh says; `All` opens whatever it says.
        case(ClosedByPolicy, "a.example.test", UndeclaredByPolicy),
        case(ClosedByPolicy, "httpbin.mesh", httpbin),
        case(OpenedByPolicy, "evil.example", Passthrough),
        case(OpenedByPolicy, "shared.example.com", Passthrough),
        // A sidecar reaches what its permissions allow; the rest of the catalog is refused
        // as not permitted, not as undeclared. Undeclared hosts stay undeclared.
        case(Sidecar("web-1"), "httpbin.mesh", httpbin),
        case(
            Sidecar("batch-1"),
            "httpbin.mesh",
            Then::NotPermitted {
                service: "httpbin",
                dataplane: "batch-1",
                policy: Some(HTTPBIN_PERMISSION),
            },
        ),
        case(
            Sidecar("web-1"),
            "api.example.com:8080",
            Then::NotPermitted {
                service: "my_svc",
                dataplane: "web-1",
                policy: None,
            },
        ),
        case(
            Sidecar("batch-1"),
            "mes-api.extsvc.mesh.local",
            mes("mes-api.extsvc.mesh.local"),
        ),
        case(Sidecar("batch-1"), "evil.example", Undeclared),
    ]
}
