//! The filter's rules through the compiled module: the same scenario table as the native
//! decision tests, each column read back from the host's state, plus what only the module
//! shows (logs, refused configurations, memory, the gauge, 10,000 services).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::HashMap;

use external_service_conformance::scenarios::{self, plugin_config, Outcome, Setup, Then};
use external_service_model::contract::{denied_metric, VM_MEMORY_METRIC};
use host_tests::{LogLevel, Plugin, PluginOptions, StartError};
use serde_json::json;

fn start(config: &serde_json::Value) -> Plugin {
    support::start(config, LogLevel::Info)
}

fn refused(config: impl Into<Vec<u8>>) -> StartError {
    let options = PluginOptions::with_configuration(config).quiet();
    let error = Plugin::start(&support::filter_module(), options).unwrap_err();
    assert!(error.is_configure_rejected(), "{error}");
    error
}

/// One request to `authority` on a new stream, completed.
fn send(plugin: &mut Plugin, authority: &str) {
    support::outcome(plugin, &[(":authority", authority.as_bytes())]);
}

#[test]
fn every_scenario_through_the_module() {
    let mut plugins: HashMap<String, Plugin> = HashMap::new();
    scenarios::run(|case| {
        let plugin = plugins
            .entry(format!("{:?}", case.setup))
            .or_insert_with(|| start(&plugin_config(case.setup)));
        let mut headers: Vec<(&str, &[u8])> = vec![
            (":method", b"GET"),
            (":path", b"/get"),
            (":scheme", b"http"),
        ];
        if let Some(authority) = &case.authority {
            headers.push((":authority", authority.as_bytes()));
        }
        if let Some(content_type) = &case.content_type {
            headers.push(("content-type", content_type.as_bytes()));
        }
        support::outcome(plugin, &headers)
    });
}

/// A denial is logged at info, once, with its reason and the reply's words; Envoy's default
/// level shows it.
#[test]
fn denials_are_logged_at_info() {
    let mut plugin = start(&plugin_config(Setup::Closed));
    plugin.clear_logs();
    send(&mut plugin, "evil.example");
    assert_eq!(
        plugin.logs(LogLevel::Info),
        ["denied (undeclared-host): host \"evil.example\" is not declared by any ExternalService or MeshExternalService of mesh \"default\", and the mesh's passthrough is off"]
    );
}

#[test]
fn debug_lines_only_when_the_host_asks_for_them() {
    let mut quiet = start(&plugin_config(Setup::Open));
    let mut chatty = support::start(&plugin_config(Setup::Open), LogLevel::Debug);
    for plugin in [&mut quiet, &mut chatty] {
        for authority in ["httpbin.mesh", "elsewhere.example"] {
            send(plugin, authority);
        }
    }
    assert_eq!(quiet.logs(LogLevel::Debug), Vec::<String>::new());
    assert_eq!(
        chatty.logs(LogLevel::Debug),
        [
            "forward Some(\"httpbin.mesh\") to service \"httpbin\" as \"httpbin.org\"",
            "passthrough Some(\"elsewhere.example\")",
        ]
    );
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
    let error = refused(config.to_string());
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
        "plugin configuration: ExternalService \"typo\" (mesh \"default\"): networking.adress: unknown field `adress`, expected one of `address`, `disableHostDNSEntry`, `tls`".to_string(),
    ];
    assert_eq!(error.logs(LogLevel::Error), want);
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
    for (config, want) in [
        (
            "not json".to_string(),
            "plugin configuration: expected ident at line 1 column 2",
        ),
        (
            "{\"resources\": [], \"servce\": \"x\"}".to_string(),
            "plugin configuration: unknown field `servce`, expected one of `resources`, `mesh`, `service`, `meshExternalService`, `dataplane` at line 1 column 26",
        ),
        (
            json!({ "resources": [], "meshExternalService": "ghost" }).to_string(),
            "plugin configuration: meshExternalService: mesh \"default\" has no MeshExternalService \"ghost\"",
        ),
        (
            json!({ "resources": [], "service": "a", "meshExternalService": "b" }).to_string(),
            "plugin configuration: service and meshExternalService both bind the filter: set one",
        ),
        (
            json!({ "resources": [], "dataplane": "ghost" }).to_string(),
            "plugin configuration: dataplane: mesh \"default\" has no Dataplane \"ghost\" among the resources",
        ),
        (
            json!({ "resources": [], "service": "ghost" }).to_string(),
            "plugin configuration: service: no ExternalService of mesh \"default\" has kuma.io/service \"ghost\"",
        ),
    ] {
        assert_eq!(refused(config.clone()).logs(LogLevel::Error), [want], "{config}");
    }
}

#[test]
fn an_invalid_mesh_external_service_refuses_the_configuration_in_kumas_words() {
    // Left out, it would let passthrough send its traffic out undeclared.
    let mes = json!({ "type": "MeshExternalService", "name": "httpbin", "mesh": "default",
        "spec": { "match": { "port": 80, "protocol": "udp" },
                  "endpoints": [{ "address": "httpbin.org", "port": 443 }] } });
    let generator = json!({ "type": "HostnameGenerator", "name": "g",
        "spec": { "selector": { "meshExternalService": {} }, "template": "" } });
    for (resource, want) in [
        (mes, "plugin configuration: MeshExternalService \"httpbin\" (mesh \"default\"): spec.match.protocol: \"protocol\" must be one of [\"tcp\", \"grpc\", \"http\", \"http2\"]"),
        (generator, "plugin configuration: HostnameGenerator \"g\" (mesh \"default\"): spec.template: must not be empty"),
    ] {
        let config = json!({ "resources": [resource] });
        assert_eq!(refused(config.to_string()).logs(LogLevel::Error), [want]);
    }
}

/// The filter serves MeshPassthrough: the configuration is taken, its configure line says
/// what leaves undeclared, and a refusal by its matches is counted under its own reason.
#[test]
fn a_mesh_passthrough_is_served_and_its_refusals_counted() {
    let mut plugin = start(&plugin_config(Setup::Matched));
    assert!(
        plugin
            .logs(LogLevel::Info)
            .iter()
            .any(|l| l.ends_with("passthrough matched (6 MeshPassthrough matches)")),
        "{:?}",
        plugin.logs(LogLevel::Info)
    );
    for authority in ["a.example.test", "example.test.evil.test", "evil.example"] {
        send(&mut plugin, authority);
    }
    assert_eq!(plugin.counter(&denied_metric("not-matched")), Some(2));
    assert_eq!(plugin.counter(&denied_metric("undeclared-host")), Some(0));
}

#[test]
fn a_hundred_thousand_requests_leave_memory_flat() {
    let mut plugin = start(&plugin_config(Setup::Closed));
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
        plugin.counter(&denied_metric("undeclared-host")),
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
    let mut plugin = start(&json!({ "resources": resources }));
    let forwarded = |rewritten_from: Option<&str>, authority: &str| Outcome {
        authority: Some(authority.to_owned()),
        filter_state: rewritten_from.map(str::to_owned),
        counter: None,
        reply: None,
    };
    for (authority, want) in [
        (
            "svc-9999.mesh",
            forwarded(Some("svc-9999.mesh"), "host-9999.example.com:8443"),
        ),
        (
            "host-5000.example.com:8443",
            forwarded(None, "host-5000.example.com:8443"),
        ),
        (
            "svc-10000.mesh",
            scenarios::outcome(Some("svc-10000.mesh"), None, Then::Undeclared),
        ),
    ] {
        let got = support::outcome(&mut plugin, &[(":authority", authority.as_bytes())]);
        assert_eq!(got, want, "{authority}");
    }
}

#[test]
fn vm_memory_is_published_as_a_gauge_every_ten_seconds() {
    let mut plugin = start(&plugin_config(Setup::Closed));
    assert_eq!(plugin.tick_period_ms(), 10_000);
    let at_configure = plugin.gauge(VM_MEMORY_METRIC).unwrap();
    assert_eq!(at_configure as usize, plugin.memory_size_bytes());
    plugin.call_on_tick().unwrap();
    assert_eq!(
        plugin.gauge(VM_MEMORY_METRIC).unwrap() as usize,
        plugin.memory_size_bytes()
    );
}
