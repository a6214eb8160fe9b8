//! Request scenarios shared by the native decision tests (tests/decisions.rs) and the tests
//! that run the compiled module (host-tests/tests/filter.rs): one table, two engines.

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
    ]
}

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
}

pub fn plugin_config(setup: Setup) -> Value {
    let mut resources = services();
    let mut config = json!({});
    match setup {
        Setup::Closed => resources.push(mesh(false)),
        Setup::Open => {}
        Setup::Bound(service) => {
            resources.push(mesh(false));
            config["service"] = json!(service);
        }
    }
    config["resources"] = Value::Array(resources);
    config
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Forwarded to `service` with `:authority` rewritten to `authority`.
    Forward {
        service: &'static str,
        authority: &'static str,
    },
    /// Left untouched.
    Passthrough,
    /// A local reply with this status and `x-external-service-denied: reason`.
    Deny { status: u32, reason: &'static str },
}

#[derive(Debug, Clone, Copy)]
pub struct Case {
    pub setup: Setup,
    /// `None`: the request carries no `:authority` at all.
    pub authority: Option<&'static str>,
    pub content_type: Option<&'static str>,
    pub expect: Expect,
}

const fn forward(service: &'static str, authority: &'static str) -> Expect {
    Expect::Forward { service, authority }
}

const UNDECLARED: Expect = Expect::Deny {
    status: 403,
    reason: "undeclared-host",
};
const BAD_AUTHORITY: Expect = Expect::Deny {
    status: 400,
    reason: "bad-authority",
};

const fn case(setup: Setup, authority: &'static str, expect: Expect) -> Case {
    Case {
        setup,
        authority: Some(authority),
        content_type: None,
        expect,
    }
}

const fn grpc(content_type: Option<&'static str>, expect: Expect) -> Case {
    Case {
        setup: Setup::Closed,
        authority: Some("grpc-svc.mesh"),
        content_type,
        expect,
    }
}

pub fn cases() -> Vec<Case> {
    use Setup::*;
    vec![
        // `<service>.mesh`: no port, port 80, the service's own port; any case; one trailing dot.
        case(Closed, "httpbin.mesh", forward("httpbin", "httpbin.org")),
        case(Closed, "httpbin.mesh:80", forward("httpbin", "httpbin.org")),
        case(
            Closed,
            "httpbin.mesh:443",
            forward("httpbin", "httpbin.org"),
        ),
        case(Closed, "HttpBin.MESH.", forward("httpbin", "httpbin.org")),
        case(Closed, "httpbin.mesh:8080", UNDECLARED),
        // Underscores in the service tag: reachable with dots too.
        case(
            Closed,
            "my_svc.mesh",
            forward("my_svc", "api.example.com:8080"),
        ),
        case(
            Closed,
            "my.svc.mesh",
            forward("my_svc", "api.example.com:8080"),
        ),
        case(
            Closed,
            "my.svc.mesh:8080",
            forward("my_svc", "api.example.com:8080"),
        ),
        // The real name on the service's port, and on port 80 (or none) for a DNS host.
        case(Closed, "httpbin.org:443", forward("httpbin", "httpbin.org")),
        case(Closed, "httpbin.org", forward("httpbin", "httpbin.org")),
        case(Closed, "httpbin.org:80", forward("httpbin", "httpbin.org")),
        case(
            Closed,
            "HTTPBIN.ORG.:443",
            forward("httpbin", "httpbin.org"),
        ),
        case(
            Closed,
            "api.example.com:8080",
            forward("my_svc", "api.example.com:8080"),
        ),
        case(Closed, "h2.mesh", forward("h2", "h2.example.com:8443")),
        // IP services: the address itself, no port-80 alias; IPv6 in brackets.
        case(
            Closed,
            "127.0.0.5:8080",
            forward("ip-svc", "127.0.0.5:8080"),
        ),
        case(Closed, "127.0.0.5", UNDECLARED),
        case(Closed, "[::1]:9443", forward("ipv6-svc", "[::1]:9443")),
        case(Closed, "[0:0::1]:9443", forward("ipv6-svc", "[::1]:9443")),
        case(Closed, "ipv6-svc.mesh", forward("ipv6-svc", "[::1]:9443")),
        // disableHostDNSEntry: the .mesh name only.
        case(
            Closed,
            "hidden.mesh",
            forward("hidden", "hidden.example.com"),
        ),
        case(Closed, "hidden.example.com:443", UNDECLARED),
        case(Closed, "hidden.example.com", UNDECLARED),
        // One host on two ports: without a port the name is ambiguous, with one it is not.
        case(
            Closed,
            "shared.example.com",
            Expect::Deny {
                status: 403,
                reason: "ambiguous-host",
            },
        ),
        case(
            Closed,
            "shared.example.com:8443",
            forward("web-b", "shared.example.com:8443"),
        ),
        case(
            Closed,
            "shared.example.com:443",
            forward("web-a", "shared.example.com"),
        ),
        case(
            Closed,
            "dual.example.com:443",
            forward("dual-tls", "dual.example.com:443"),
        ),
        case(
            Closed,
            "dual.example.com",
            forward("dual-plain", "dual.example.com:80"),
        ),
        case(
            Closed,
            "dual-tls.mesh",
            forward("dual-tls", "dual.example.com:443"),
        ),
        // Undeclared hosts, and names that only look declared.
        case(Closed, "evil.example", UNDECLARED),
        case(Closed, "httpbin.mesh.evil.example", UNDECLARED),
        case(Closed, "evilhttpbin.mesh", UNDECLARED),
        // Malformed authorities are refused whatever passthrough says.
        case(Closed, "", BAD_AUTHORITY),
        case(Closed, "user@httpbin.mesh", BAD_AUTHORITY),
        case(Closed, "evil.example#httpbin.mesh", BAD_AUTHORITY),
        case(Closed, "httpbin.mesh:080", BAD_AUTHORITY),
        case(Closed, "httpbin.mesh:0", BAD_AUTHORITY),
        case(Closed, "httpbin.mesh:99999", BAD_AUTHORITY),
        case(Open, "bad host", BAD_AUTHORITY),
        Case {
            setup: Closed,
            authority: None,
            content_type: None,
            expect: BAD_AUTHORITY,
        },
        // Protocol rules.
        case(
            Closed,
            "redis.mesh",
            Expect::Deny {
                status: 421,
                reason: "not-http",
            },
        ),
        case(
            Closed,
            "redis.example.com:6379",
            Expect::Deny {
                status: 421,
                reason: "not-http",
            },
        ),
        case(
            Closed,
            "kafka.mesh",
            Expect::Deny {
                status: 421,
                reason: "not-http",
            },
        ),
        grpc(
            Some("application/grpc"),
            forward("grpc-svc", "grpc.example.com"),
        ),
        grpc(
            Some("application/grpc+proto"),
            forward("grpc-svc", "grpc.example.com"),
        ),
        grpc(
            Some("Application/GRPC;charset=utf-8"),
            forward("grpc-svc", "grpc.example.com"),
        ),
        grpc(
            Some("text/plain"),
            Expect::Deny {
                status: 415,
                reason: "not-grpc",
            },
        ),
        grpc(
            Some("application/grpcx"),
            Expect::Deny {
                status: 415,
                reason: "not-grpc",
            },
        ),
        grpc(
            None,
            Expect::Deny {
                status: 415,
                reason: "not-grpc",
            },
        ),
        // Passthrough on: unknown hosts go on untouched; declared ones are still rewritten.
        case(Open, "evil.example", Expect::Passthrough),
        case(Open, "shared.example.com", Expect::Passthrough),
        case(Open, "httpbin.mesh", forward("httpbin", "httpbin.org")),
        // Bound to a service: the host does not choose.
        case(
            Bound("httpbin"),
            "anything.example",
            forward("httpbin", "httpbin.org"),
        ),
        case(
            Bound("httpbin"),
            "127.0.0.1:10000",
            forward("httpbin", "httpbin.org"),
        ),
        case(
            Bound("redis"),
            "127.0.0.1:10001",
            Expect::Deny {
                status: 421,
                reason: "not-http",
            },
        ),
    ]
}
