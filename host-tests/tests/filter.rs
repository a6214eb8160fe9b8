//! The filter's rules through the compiled module: the same scenario table as the native
//! decision tests, plus what only the module shows (headers, local replies, metrics, logs,
//! properties, memory).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use external_service_conformance::scenarios;

use std::collections::HashMap;

use host_tests::{Action, LogLevel, Plugin, PluginOptions};
use scenarios::{cases, plugin_config, Case, Expect, Setup};
use serde_json::json;

fn start(config: &serde_json::Value, level: LogLevel) -> Plugin {
    let options = PluginOptions::with_configuration(config.to_string())
        .log_level(level)
        .quiet();
    Plugin::start(&support::filter_module(), options).unwrap_or_else(|e| panic!("{e}"))
}

fn request_headers(case: &Case) -> Vec<(&'static str, &'static str)> {
    let mut headers = vec![(":method", "GET"), (":path", "/get"), (":scheme", "http")];
    if let Some(authority) = case.authority {
        headers.push((":authority", authority));
    }
    if let Some(content_type) = case.content_type {
        headers.push(("content-type", content_type));
    }
    headers
}

#[test]
fn every_scenario_through_the_module() {
    let mut plugins: HashMap<String, Plugin> = HashMap::new();
    let mut forwarded: HashMap<&str, u64> = HashMap::new();
    for case in cases() {
        let plugin = plugins
            .entry(format!("{:?}", case.setup))
            .or_insert_with(|| start(&plugin_config(case.setup), LogLevel::Info));
        let stream = plugin.new_http_context().unwrap();
        let action = plugin
            .call_on_request_headers(stream, &request_headers(&case), true)
            .unwrap();
        let reply = plugin.sent_local_response(stream);
        match case.expect {
            Expect::Forward { service, authority } => {
                assert_eq!(action, Action::Continue, "{case:?}");
                assert!(reply.is_none(), "{case:?}: {reply:?}");
                assert_eq!(
                    plugin.request_header(stream, ":authority").as_deref(),
                    Some(authority),
                    "{case:?}"
                );
                assert_eq!(
                    plugin.property(&["external_service"]).as_deref(),
                    Some(service.as_bytes()),
                    "{case:?}"
                );
                *forwarded.entry(service).or_default() += 1;
            }
            Expect::Passthrough => {
                assert_eq!(action, Action::Continue, "{case:?}");
                assert!(reply.is_none(), "{case:?}: {reply:?}");
                assert_eq!(
                    plugin.request_header(stream, ":authority").as_deref(),
                    case.authority,
                    "{case:?}"
                );
            }
            Expect::Deny { status, reason } => {
                assert_eq!(action, Action::Pause, "{case:?}");
                let reply = reply.unwrap_or_else(|| panic!("{case:?}: no local reply"));
                assert_eq!(reply.status, status, "{case:?}");
                assert_eq!(
                    reply.header("x-external-service-denied"),
                    Some(reason),
                    "{case:?}"
                );
                assert!(
                    reply.body_text().ends_with('\n') && reply.body_text().len() > 20,
                    "{case:?}"
                );
            }
        }
        plugin.complete_http_stream(stream).unwrap();
    }
    // Per-service counters, summed over every plugin that forwarded.
    for (service, want) in forwarded {
        let got: u64 = plugins
            .values()
            .filter_map(|p| p.counter(&format!("external_service.forwarded.{service}")))
            .sum();
        assert_eq!(got, want, "forwarded to {service}");
    }
}

#[test]
fn denials_are_counted_per_reason_and_logged_at_info() {
    let mut plugin = start(&plugin_config(Setup::Closed), LogLevel::Info);
    for authority in ["evil.example", "other.example", "user@x", "redis.mesh"] {
        let stream = plugin.new_http_context().unwrap();
        plugin
            .call_on_request_headers(stream, &[(":authority", authority)], true)
            .unwrap();
    }
    assert_eq!(
        plugin.counter("external_service.denied.undeclared-host"),
        Some(2)
    );
    assert_eq!(
        plugin.counter("external_service.denied.bad-authority"),
        Some(1)
    );
    assert_eq!(plugin.counter("external_service.denied.not-http"), Some(1));
    assert_eq!(plugin.counter("external_service.denied.not-grpc"), Some(0));
    let info = plugin.logs(LogLevel::Info);
    assert!(
        info.iter()
            .any(|l| l.contains("denied (undeclared-host)") && l.contains("\"evil.example\"")),
        "{info:?}"
    );
    assert!(
        plugin.logs(LogLevel::Debug).is_empty(),
        "no debug lines when Envoy logs at info"
    );
}

#[test]
fn debug_lines_only_when_the_host_asks_for_them() {
    let mut quiet = start(&plugin_config(Setup::Open), LogLevel::Info);
    let mut chatty = start(&plugin_config(Setup::Open), LogLevel::Debug);
    for plugin in [&mut quiet, &mut chatty] {
        for authority in ["httpbin.mesh", "elsewhere.example"] {
            let stream = plugin.new_http_context().unwrap();
            plugin
                .call_on_request_headers(stream, &[(":authority", authority)], true)
                .unwrap();
        }
    }
    assert!(quiet.logs(LogLevel::Debug).is_empty());
    let debug = chatty.logs(LogLevel::Debug);
    assert!(
        debug
            .iter()
            .any(|l| l.contains("forward") && l.contains("httpbin")),
        "{debug:?}"
    );
    assert!(
        debug
            .iter()
            .any(|l| l.contains("passthrough") && l.contains("elsewhere.example")),
        "{debug:?}"
    );
    assert_eq!(chatty.counter("external_service.passthrough"), Some(1));
}

#[test]
fn invalid_configurations_are_refused_with_every_violation() {
    let config = json!({ "resources": [
        { "type": "ExternalService", "name": "bad", "mesh": "default",
          "tags": { "kuma.io/protocol": "nope" },
          "networking": { "address": "http://example.com:8080",
                          "tls": { "clientKey": { "inlineString": "-----BEGIN PRIVATE KEY-----SECRETMARKER" } } } },
        { "type": "ExternalService", "name": "typo", "tags": { "kuma.io/service": "t" },
          "networking": { "adress": "t.example:80" } }
    ]});
    let error = Plugin::start(
        &support::filter_module(),
        PluginOptions::with_configuration(config.to_string()).quiet(),
    )
    .unwrap_err();
    assert!(error.is_configure_rejected(), "{error}");
    let heading = "plugin configuration: ExternalService \"bad\" (mesh \"default\")";
    let want = [
        format!("{heading}: networking.address: unable to parse address"),
        format!("{heading}: networking.address: address has to be a valid IP address or a domain name"),
        format!("{heading}: networking.address: unable to parse port in address"),
        format!("{heading}: networking.address: port must be in the range [1, 65535]"),
        format!("{heading}: networking.tls.clientCert: clientKey is set without clientCert: mTLS needs both"),
        format!(
            "{heading}: tags[\"kuma.io/protocol\"]: tag \"kuma.io/protocol\" has an invalid value \"nope\". Allowed values: grpc, http, http2, kafka, tcp"
        ),
        format!("{heading}: tags: mandatory tag \"kuma.io/service\" is missing"),
    ];
    let errors = error.logs(LogLevel::Error);
    assert_eq!(&errors[..want.len()], &want[..], "{errors:#?}");
    assert!(errors[want.len()].starts_with(
        "plugin configuration: ExternalService \"typo\" (mesh \"default\"): networking.adress: unknown field `adress`"
    ));
    assert_eq!(errors.len(), want.len() + 1);
    assert!(
        error
            .logs
            .iter()
            .all(|l| !l.message.contains("SECRETMARKER")),
        "key material logged"
    );
}

#[test]
fn configurations_that_are_not_json_or_bind_an_unknown_service_are_refused() {
    for (config, needle) in [
        ("not json".to_string(), "plugin configuration: expected"),
        (
            "{\"resources\": [], \"servce\": \"x\"}".to_string(),
            "unknown field `servce`",
        ),
        (
            json!({ "resources": [], "service": "ghost" }).to_string(),
            "service: no ExternalService of mesh \"default\" has kuma.io/service \"ghost\"",
        ),
    ] {
        let error = Plugin::start(
            &support::filter_module(),
            PluginOptions::with_configuration(config.clone()).quiet(),
        )
        .unwrap_err();
        assert!(error.is_configure_rejected(), "{config}: {error}");
        let errors = error.logs(LogLevel::Error);
        assert!(
            errors.iter().any(|l| l.contains(needle)),
            "{config}: {errors:?}"
        );
    }
}

#[test]
fn a_hundred_thousand_requests_leave_memory_flat() {
    let mut plugin = start(&plugin_config(Setup::Closed), LogLevel::Info);
    let run = |plugin: &mut Plugin, n: usize| {
        for i in 0..n {
            let authority = match i % 4 {
                0 => "httpbin.mesh",
                1 => "evil.example",
                2 => "user@bad",
                _ => "api.example.com:8080",
            };
            let stream = plugin.new_http_context().unwrap();
            plugin
                .call_on_request_headers(stream, &[(":authority", authority)], true)
                .unwrap();
            plugin.complete_http_stream(stream).unwrap();
        }
    };
    run(&mut plugin, 2_000);
    let warm = plugin.memory_size_bytes();
    run(&mut plugin, 100_000);
    assert_eq!(plugin.memory_size_bytes(), warm, "linear memory grew");
    assert_eq!(
        plugin.counter("external_service.forwarded.httpbin"),
        Some(25_500)
    );
}

#[test]
fn ten_thousand_services_still_forward_correctly() {
    let mut resources: Vec<serde_json::Value> = (0..10_000)
        .map(|i| {
            json!({ "type": "ExternalService", "name": format!("es-{i}"),
                    "tags": { "kuma.io/service": format!("svc-{i}"), "kuma.io/protocol": "http" },
                    "networking": { "address": format!("host-{i}.example.com:8443"), "tls": {} } })
        })
        .collect();
    resources.push(json!({ "type": "Mesh", "name": "default", "networking": { "outbound": { "passthrough": false } } }));
    let mut plugin = start(&json!({ "resources": resources }), LogLevel::Info);
    for (authority, want) in [
        ("svc-9999.mesh", Some("host-9999.example.com:8443")),
        (
            "host-5000.example.com:8443",
            Some("host-5000.example.com:8443"),
        ),
        ("svc-10000.mesh", None),
    ] {
        let stream = plugin.new_http_context().unwrap();
        plugin
            .call_on_request_headers(stream, &[(":authority", authority)], true)
            .unwrap();
        match want {
            Some(rewritten) => assert_eq!(
                plugin.request_header(stream, ":authority").as_deref(),
                Some(rewritten)
            ),
            None => assert_eq!(
                plugin.sent_local_response(stream).map(|r| r.status),
                Some(403)
            ),
        }
    }
}

#[test]
fn vm_memory_is_published_as_a_gauge_every_ten_seconds() {
    let mut plugin = start(&plugin_config(Setup::Closed), LogLevel::Info);
    assert_eq!(plugin.tick_period_ms(), 10_000);
    let at_configure = plugin.gauge("external_service.vm_memory_bytes").unwrap();
    assert_eq!(at_configure as usize, plugin.memory_size_bytes());
    plugin.call_on_tick().unwrap();
    assert_eq!(
        plugin.gauge("external_service.vm_memory_bytes").unwrap() as usize,
        plugin.memory_size_bytes()
    );
}
