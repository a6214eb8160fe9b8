//! Hostile requests through the compiled module, passthrough off: the inputs of the scenario
//! table's hostile rows that only the module can be given (non-UTF-8 bytes, NUL, 64 KiB, a
//! second `:authority`, CONNECT), plus IPv6 and dot forms the table lacks. Each gets a local
//! reply with a reason, or is forwarded to the declared service it names; nothing traps.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use external_service_conformance::scenarios;

use host_tests::{Action, LogLevel, Plugin, PluginOptions};
use scenarios::{plugin_config, Setup};

fn closed() -> Plugin {
    let options = PluginOptions::with_configuration(plugin_config(Setup::Closed).to_string())
        .log_level(LogLevel::Info)
        .quiet();
    Plugin::start(&support::filter_module(), options).unwrap_or_else(|e| panic!("{e}"))
}

/// What the module did with one request.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    /// Forwarded with `:authority` rewritten to this.
    Forward(String),
    /// A local reply: status and `x-external-service-denied`.
    Deny(u32, String),
}

fn send(plugin: &mut Plugin, headers: &[(&str, &[u8])]) -> Outcome {
    let stream = plugin.new_http_context().unwrap();
    let action = plugin
        .call_on_request_headers_bytes(stream, headers, true)
        .unwrap_or_else(|e| panic!("the module trapped on {headers:?}: {e:#}"));
    let outcome = match plugin.sent_local_response(stream) {
        Some(reply) => {
            assert_eq!(action, Action::Pause, "{headers:?}");
            Outcome::Deny(
                reply.status,
                reply
                    .header("x-external-service-denied")
                    .unwrap_or("")
                    .to_string(),
            )
        }
        None => {
            assert_eq!(action, Action::Continue, "{headers:?}");
            Outcome::Forward(plugin.request_header(stream, ":authority").unwrap())
        }
    };
    assert!(plugin.complete_http_stream(stream).unwrap());
    outcome
}

fn get(plugin: &mut Plugin, authority: &[u8]) -> Outcome {
    send(
        plugin,
        &[
            (":method", b"GET"),
            (":scheme", b"http"),
            (":path", b"/get"),
            (":authority", authority),
        ],
    )
}

fn bad() -> Outcome {
    Outcome::Deny(400, "bad-authority".into())
}

fn undeclared() -> Outcome {
    Outcome::Deny(403, "undeclared-host".into())
}

fn to(authority: &str) -> Outcome {
    Outcome::Forward(authority.into())
}

/// A `:authority` that is not UTF-8 is refused as a bad authority: the module reads header
/// values as bytes and never traps on them (the SDK's string getter would panic).
#[test]
fn non_utf8_authority_gets_400_bad_authority_not_a_trap() {
    let mut p = closed();
    for authority in [
        &b"httpbin.mesh\xff"[..],
        b"\xffhttpbin.mesh",
        b"httpbin.\xc3\x28mesh",
        b"\xed\xa0\x80.mesh",
        b"\xff\xfe\xfd",
    ] {
        assert_eq!(get(&mut p, authority), bad(), "{authority:?}");
    }
    // The module is still healthy afterwards.
    assert_eq!(get(&mut p, b"httpbin.mesh"), to("httpbin.org"));
    assert_eq!(p.counter("external_service.denied.bad-authority"), Some(5));
}

/// Non-ASCII (valid UTF-8, IDN look-alikes), NUL and other control bytes: refused.
#[test]
fn non_ascii_nul_and_control_bytes_are_refused() {
    let mut p = closed();
    for authority in [
        "httpbín.mesh",
        "httpbin.mesh\u{200b}",
        "ｈttpbin.mesh",
        "httpbin.mesh\0",
        "httpbin.mesh\0.evil.example",
        "\0",
        "httpbin.mesh\r\nx: y",
        "httpbin.mesh\t",
        "httpbin.mesh ",
    ] {
        assert_eq!(get(&mut p, authority.as_bytes()), bad(), "{authority:?}");
    }
}

/// Case, trailing dots, suffixes and look-alikes.
#[test]
fn case_dots_and_suffixes() {
    let mut p = closed();
    let cases: Vec<(&str, Outcome)> = vec![
        ("HTTPBIN.MESH", to("httpbin.org")),
        ("hTtPbIn.MeSh", to("httpbin.org")),
        ("httpbin.mesh.", to("httpbin.org")),
        ("httpbin.mesh.:443", to("httpbin.org")),
        ("httpbin.mesh..", bad()),
        (".httpbin.mesh", bad()),
        ("httpbin..mesh", bad()),
        ("httpbin.mesh.evil.example", undeclared()),
        ("httpbin.mesh.evil.example.", undeclared()),
        ("evil.example#httpbin.mesh", bad()),
        ("evil.example/httpbin.mesh", bad()),
        ("evil.example?httpbin.mesh", bad()),
        ("evil.example\\httpbin.mesh", bad()),
        ("user@httpbin.mesh", bad()),
        ("httpbin.mesh@evil.example", bad()),
        ("user:pass@httpbin.mesh", bad()),
        ("%68ttpbin.mesh", bad()),
    ];
    for (authority, want) in cases {
        assert_eq!(get(&mut p, authority.as_bytes()), want, "{authority:?}");
    }
}

/// Ports: zero, too large, zero-padded, empty, signed, the wrong one for the service.
#[test]
fn ports() {
    let mut p = closed();
    let cases: Vec<(&str, Outcome)> = vec![
        ("httpbin.mesh:0", bad()),
        ("httpbin.mesh:99999", bad()),
        ("httpbin.mesh:65536", bad()),
        ("httpbin.mesh:080", bad()),
        ("httpbin.mesh:", bad()),
        ("httpbin.mesh:+80", bad()),
        ("httpbin.mesh:-1", bad()),
        ("httpbin.mesh:80:80", bad()),
        ("httpbin.mesh:0x50", bad()),
        // `.mesh` takes port 80 and the service's own port (443 here).
        ("httpbin.mesh:80", to("httpbin.org")),
        ("httpbin.mesh:443", to("httpbin.org")),
        ("httpbin.mesh:8443", undeclared()),
        // A service on 8080: its `.mesh` name on 443 is not it.
        ("my-svc.mesh:443", undeclared()),
    ];
    for (authority, want) in cases {
        assert_eq!(get(&mut p, authority.as_bytes()), want, "{authority:?}");
    }
}

/// IPv6: only the bracketed, declared address and port is a service; other forms are refused.
#[test]
fn ipv6_forms() {
    let mut p = closed();
    let cases: Vec<(&str, Outcome)> = vec![
        ("[::1]:9443", to("[::1]:9443")),
        ("[0:0:0:0:0:0:0:1]:9443", to("[::1]:9443")),
        ("[::1]", undeclared()),
        ("[::1]:80", undeclared()),
        ("::1", bad()),
        ("::1:9443", bad()),
        ("[::1", bad()),
        ("::1]", bad()),
        ("[::1]x", bad()),
        ("[fe80::1%25eth0]:9443", bad()),
        ("[::ffff:127.0.0.5]:8080", undeclared()),
        ("[v1.x]", bad()),
        ("[]", bad()),
        ("[evil.example]", bad()),
    ];
    for (authority, want) in cases {
        assert_eq!(get(&mut p, authority.as_bytes()), want, "{authority:?}");
    }
}

/// A 64 KiB authority (and one just past the DNS limit) is refused quickly, without a trap.
#[test]
fn oversized_authorities_are_refused() {
    let mut p = closed();
    let huge = "a".repeat(64 * 1024);
    assert_eq!(get(&mut p, huge.as_bytes()), bad());
    let huge_mesh = format!("{}.httpbin.mesh", "a.".repeat(32 * 1024));
    assert_eq!(get(&mut p, huge_mesh.as_bytes()), bad());
    let just_over = format!("{}.mesh", "a".repeat(249));
    assert_eq!(just_over.len(), 254);
    assert_eq!(get(&mut p, just_over.as_bytes()), bad());
    let label_too_long = format!("{}.mesh", "a".repeat(64));
    assert_eq!(get(&mut p, label_too_long.as_bytes()), undeclared());
    // The reply quotes what was refused, bounded: not 64 KiB back.
    let stream = p.new_http_context().unwrap();
    p.call_on_request_headers_bytes(stream, &[(":authority", huge.as_bytes())], true)
        .unwrap();
    let reply = p.sent_local_response(stream).unwrap();
    assert!(
        reply.body.len() < 4096,
        "reply body {} bytes",
        reply.body.len()
    );
}

/// Two `:authority` headers: the module reads the first, as Envoy presents only one (its
/// codecs refuse or merge a second Host). A declared first value cannot smuggle the second.
#[test]
fn two_authorities_read_the_first_only() {
    let mut p = closed();
    let two = |first: &'static [u8], second: &'static [u8]| -> Vec<(&'static str, &'static [u8])> {
        vec![(":authority", first), (":authority", second)]
    };
    assert_eq!(
        send(&mut p, &two(b"evil.example", b"httpbin.mesh")),
        undeclared()
    );
    assert_eq!(
        send(&mut p, &two(b"httpbin.mesh", b"evil.example")),
        to("httpbin.org")
    );
    // Host: the glue reads `:authority` only; a `host` header changes nothing.
    assert_eq!(
        send(
            &mut p,
            &[(":authority", b"evil.example"), ("host", b"httpbin.mesh")]
        ),
        undeclared()
    );
    assert_eq!(send(&mut p, &[("host", b"httpbin.mesh")]), bad());
}

/// CONNECT: the authority is judged as any other; an undeclared one is refused.
#[test]
fn connect_is_judged_by_its_authority() {
    let mut p = closed();
    let connect = |authority: &'static [u8]| -> Vec<(&'static str, &'static [u8])> {
        vec![(":method", b"CONNECT"), (":authority", authority)]
    };
    assert_eq!(send(&mut p, &connect(b"evil.example:443")), undeclared());
    assert_eq!(send(&mut p, &connect(b"127.0.0.1:22")), undeclared());
    assert_eq!(
        send(&mut p, &connect(b"httpbin.mesh:443")),
        to("httpbin.org")
    );
}

/// No authority at all (an HTTP/1.0 request without Host, as Envoy would pass it on).
#[test]
fn no_authority_is_a_bad_authority() {
    let mut p = closed();
    assert_eq!(send(&mut p, &[(":method", b"GET"), (":path", b"/")]), bad());
    assert_eq!(get(&mut p, b""), bad());
}
