//! Hostile requests that only the module can be given, passthrough off: header values that are
//! not UTF-8, a second `:authority`, a `host` header, CONNECT. Every hostile authority that is
//! text (case, dots, ports, IPv6 forms, NUL and control bytes, 64 KiB) is a row of the shared
//! scenario table (filter/conformance/src/scenarios.rs), run natively and through the module.
//! Each gets the same columns as a table row; nothing traps.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use external_service_conformance::scenarios::{
    outcome, plugin_config, Setup, Then, BAD_CHARACTER, BAD_EMPTY,
};
use host_tests::LogLevel;

const HTTPBIN: Then = Then::Forward {
    authority: "httpbin.org",
};

/// A request's headers, values as bytes.
type Headers<'a> = &'a [(&'a str, &'a [u8])];

/// Each request's headers and what the module must leave, against one closed filter.
fn expect_all(rows: &[(Headers<'_>, Then)]) {
    let mut plugin = support::start(&plugin_config(Setup::Closed), LogLevel::Info);
    for (headers, then) in rows {
        let authority = headers
            .iter()
            .find(|(name, _)| *name == ":authority")
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned());
        let want = outcome(authority.as_deref(), None, *then);
        assert_eq!(support::outcome(&mut plugin, headers), want, "{headers:?}");
    }
}

/// A `:authority` that is not UTF-8 is refused as a bad authority, the bytes echoed as U+FFFD:
/// the module reads header values as bytes and never traps on them (a getter that assumed UTF-8
/// would panic). The module is still healthy afterwards.
#[test]
fn non_utf8_authority_gets_400_bad_authority_not_a_trap() {
    let bad = Then::BadAuthority(BAD_CHARACTER);
    expect_all(&[
        (&[(":authority", b"httpbin.mesh\xff")], bad),
        (&[(":authority", b"\xffhttpbin.mesh")], bad),
        (&[(":authority", b"httpbin.\xc3\x28mesh")], bad),
        (&[(":authority", b"\xed\xa0\x80.mesh")], bad),
        (&[(":authority", b"\xff\xfe\xfd")], bad),
        (&[(":authority", b"httpbin.mesh")], HTTPBIN),
    ]);
}

/// Two `:authority` headers: the module reads the first, as Envoy presents only one (its
/// codecs refuse or merge a second Host); a declared first value cannot smuggle the second,
/// and the rewrite leaves one. A `host` header changes nothing: the glue reads `:authority`.
#[test]
fn the_first_authority_decides_and_host_is_ignored() {
    expect_all(&[
        (
            &[
                (":authority", b"evil.example"),
                (":authority", b"httpbin.mesh"),
            ],
            Then::Undeclared,
        ),
        (
            &[
                (":authority", b"httpbin.mesh"),
                (":authority", b"evil.example"),
            ],
            HTTPBIN,
        ),
        (
            &[(":authority", b"evil.example"), ("host", b"httpbin.mesh")],
            Then::Undeclared,
        ),
        (&[("host", b"httpbin.mesh")], Then::BadAuthority(BAD_EMPTY)),
    ]);
}

/// CONNECT: the authority is judged as any other; an undeclared one is refused.
#[test]
fn connect_is_judged_by_its_authority() {
    expect_all(&[
        (
            &[(":method", b"CONNECT"), (":authority", b"evil.example:443")],
            Then::Undeclared,
        ),
        (
            &[(":method", b"CONNECT"), (":authority", b"127.0.0.1:22")],
            Then::Undeclared,
        ),
        (
            &[(":method", b"CONNECT"), (":authority", b"httpbin.mesh:443")],
            HTTPBIN,
        ),
    ]);
}
