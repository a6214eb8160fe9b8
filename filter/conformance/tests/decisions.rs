//! The decision for every scenario of the shared table, natively.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use external_service_conformance::scenarios;

use external_service_model::config::{self, Filter};
use external_service_model::{decide, Decision, Request};
use scenarios::{cases, plugin_config, Expect, Setup};

struct Plain {
    authority: Option<&'static str>,
    content_type: Option<&'static str>,
}

impl Request for Plain {
    fn authority(&self) -> Option<&str> {
        self.authority
    }
    fn content_type(&self) -> Option<&str> {
        self.content_type
    }
}

fn filter(setup: Setup) -> Filter {
    let bytes = plugin_config(setup).to_string();
    config::configure(bytes.as_bytes()).unwrap()
}

#[test]
fn every_scenario() {
    for case in cases() {
        let filter = filter(case.setup);
        let request = Plain {
            authority: case.authority,
            content_type: case.content_type,
        };
        let got = match decide(&filter.catalog, filter.bound, &request) {
            Decision::Forward(_, service) => Expect::Forward {
                service: service.name.clone().leak(),
                authority: service.authority.clone().leak(),
            },
            Decision::Passthrough => Expect::Passthrough,
            Decision::Deny(denial) => Expect::Deny {
                status: denial.status(),
                reason: denial.reason(),
            },
        };
        assert_eq!(got, case.expect, "{case:?}");
    }
}

#[test]
fn denial_bodies_say_what_and_why() {
    let closed = filter(Setup::Closed);
    let body = |authority, content_type| {
        let request = Plain {
            authority: Some(authority),
            content_type,
        };
        match decide(&closed.catalog, None, &request) {
            Decision::Deny(d) => d.body(&closed.catalog, &request),
            other => panic!("{authority}: {other:?}"),
        }
    };
    let undeclared = body("evil.example", None);
    assert!(
        undeclared.contains("\"evil.example\"") && undeclared.contains("passthrough is off"),
        "{undeclared}"
    );
    assert_eq!(
        body("redis.mesh", None),
        "service \"redis\" has no kuma.io/protocol tag, so it is tcp (Kuma's default) and cannot be reached through this HTTP listener; connect to it over TCP through its TCP listener (a Dataplane outbound), or declare kuma.io/protocol: http, http2 or grpc\n"
    );
    assert_eq!(
        body("kafka.mesh", None),
        "service \"kafka\" is declared kuma.io/protocol: kafka, so it cannot be reached through this HTTP listener; connect to it over TCP through its TCP listener (a Dataplane outbound), or declare kuma.io/protocol: http, http2 or grpc\n"
    );
    let grpc = body("grpc-svc.mesh", Some("text/plain"));
    assert!(
        grpc.contains("grpc") && grpc.contains("\"text/plain\""),
        "{grpc}"
    );
    let bad = body("user@httpbin.mesh", None);
    assert!(
        bad.contains("\"user@httpbin.mesh\"") && bad.contains("not a valid host"),
        "{bad}"
    );
    // A huge authority is echoed cut short, never whole.
    let huge: &'static str = "a".repeat(70_000).leak();
    let long = body(huge, None);
    assert!(
        long.len() < 400 && long.contains("70000 bytes"),
        "{}",
        long.len()
    );
}

#[test]
fn ten_thousand_services_still_resolve() {
    let mut resources: Vec<serde_json::Value> = (0..10_000)
        .map(|i| {
            serde_json::json!({
                "type": "ExternalService", "name": format!("es-{i}"),
                "tags": { "kuma.io/service": format!("svc-{i}"), "kuma.io/protocol": "http" },
                "networking": { "address": format!("host-{i}.example.com:8443"), "tls": {} }
            })
        })
        .collect();
    resources.push(serde_json::json!({"type": "Mesh", "name": "default", "networking": {"outbound": {"passthrough": false}}}));
    let bytes = serde_json::json!({ "resources": resources }).to_string();
    let filter = config::configure(bytes.as_bytes()).unwrap();
    for (authority, want) in [
        ("svc-9999.mesh", "host-9999.example.com:8443"),
        ("host-0.example.com", "host-0.example.com:8443"),
    ] {
        let request = Plain {
            authority: Some(authority),
            content_type: None,
        };
        match decide(&filter.catalog, None, &request) {
            Decision::Forward(_, s) => assert_eq!(s.authority, want),
            other => panic!("{authority}: {other:?}"),
        }
    }
}
