//! The compiled filter in a real Envoy, configured by hand (no generator): it rewrites
//! `httpbin.mesh` to `httpbin.org`, refuses undeclared hosts when passthrough is off, counts
//! what it does, and an invalid configuration keeps Envoy from starting.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use extsvc_testkit as support;

use std::path::Path;

use serde_json::json;
use support::envoy::wasm_module;
use support::{test_dir, Curl, Envoy, EnvoyOptions};

/// A bootstrap whose routes answer directly, echoing the authority they were chosen for.
fn bootstrap(plugin_config: &serde_json::Value) -> String {
    let wasm = wasm_module();
    let config = serde_json::to_string(&plugin_config.to_string()).unwrap();
    format!(
        r#"
admin:
  address: {{ socket_address: {{ address: 127.0.0.1, port_value: 0 }} }}
static_resources:
  listeners:
  - name: outbound_http
    address: {{ socket_address: {{ address: 127.0.0.1, port_value: 0 }} }}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: outbound_http
          access_log:
          - name: envoy.access_loggers.stdout
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog
              log_format:
                text_format_source:
                  inline_string: "service=%FILTER_STATE(wasm.external_service:PLAIN)% authority=%REQ(:AUTHORITY)% code=%RESPONSE_CODE%\n"
          route_config:
            virtual_hosts:
            - name: httpbin
              domains: ["httpbin.org"]
              routes:
              - match: {{ prefix: "/" }}
                direct_response: {{ status: 200, body: {{ inline_string: "httpbin" }} }}
                response_headers_to_add:
                - header: {{ key: x-routed-authority, value: "%REQ(:AUTHORITY)%" }}
            - name: anything_else
              domains: ["*"]
              routes:
              - match: {{ prefix: "/" }}
                direct_response: {{ status: 404, body: {{ inline_string: "no route" }} }}
          http_filters:
          - name: envoy.filters.http.wasm
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm
              config:
                name: external_service
                vm_config:
                  runtime: envoy.wasm.runtime.v8
                  code: {{ local: {{ filename: "{wasm}" }} }}
                configuration:
                  "@type": type.googleapis.com/google.protobuf.StringValue
                  value: {config}
                fail_open: false
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
"#,
        wasm = wasm.display()
    )
}

fn resources(address: &str, passthrough: bool) -> serde_json::Value {
    json!({ "resources": [
        { "type": "ExternalService", "name": "httpbin", "mesh": "default",
          "tags": { "kuma.io/service": "httpbin", "kuma.io/protocol": "http" },
          "networking": { "address": address, "tls": { "enabled": true } } },
        { "type": "Mesh", "name": "default", "networking": { "outbound": { "passthrough": passthrough } } }
    ]})
}

fn start(dir: &Path, config: &serde_json::Value) -> Envoy {
    Envoy::start(dir, "envoy", &bootstrap(config))
}

#[test]
fn rewrites_mesh_names_and_refuses_undeclared_hosts() {
    let tmp = test_dir();
    let envoy = start(tmp.path(), &resources("httpbin.org:443", false));
    let proxy = format!("http://127.0.0.1:{}", envoy.listener_port("outbound_http"));

    let via_proxy = Curl::get("http://httpbin.mesh/get").proxy(&proxy).run();
    assert_eq!(via_proxy.status, 200, "{via_proxy:?}");
    assert_eq!(via_proxy.header("x-routed-authority"), Some("httpbin.org"));

    let via_host = Curl::get(format!("{proxy}/get")).host("httpbin.mesh").run();
    assert_eq!(via_host.status, 200, "{via_host:?}");
    assert_eq!(via_host.header("x-routed-authority"), Some("httpbin.org"));

    let refused = Curl::get("http://evil.example/").proxy(&proxy).run();
    assert_eq!(refused.status, 403, "{refused:?}");
    assert_eq!(
        refused.header("x-external-service-denied"),
        Some("undeclared-host")
    );
    assert!(
        refused.body.contains("\"evil.example\""),
        "{}",
        refused.body
    );

    let forwarded = envoy.wait_for_stat(
        "wasmcustom.external_service.forwarded.httpbin",
        std::time::Duration::from_secs(5),
        |n| n == 2,
    );
    assert_eq!(forwarded, 2);
    assert_eq!(
        envoy.counter("wasmcustom.external_service.denied.undeclared-host"),
        1
    );

    // The matched service reaches the access log through filter state.
    let log = support::eventually(
        "three access log lines",
        std::time::Duration::from_secs(5),
        std::time::Duration::from_millis(50),
        || {
            let out = envoy.stdout();
            if out.lines().count() >= 3 {
                Ok(out)
            } else {
                Err(out)
            }
        },
    );
    assert!(
        log.contains("service=httpbin authority=httpbin.org code=200"),
        "{log}"
    );
}

#[test]
fn invalid_configuration_keeps_envoy_from_starting() {
    let tmp = test_dir();
    let result = Envoy::try_start(
        tmp.path(),
        "envoy",
        &bootstrap(&resources("http://httpbin.org:443", false)),
        &EnvoyOptions::default(),
    );
    let error = match result {
        Ok(_) => panic!("Envoy started with an invalid filter configuration"),
        Err(e) => e,
    };
    assert!(
        error.contains("plugin configuration: ExternalService \"httpbin\" (mesh \"default\"): networking.address: unable to parse address"),
        "{error}"
    );
}
