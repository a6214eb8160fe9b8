//! The module's engine for the scenario table, shared by tests/filter.rs and tests/hostile.rs
//! (`mod support;`): start the filter, send a request, read every column back from the host.

#![allow(clippy::unwrap_used, clippy::panic)]

use std::collections::BTreeMap;
use std::sync::OnceLock;

use external_service_conformance::scenarios::{Outcome, Reply};
use external_service_model::contract::{DENIED_HEADER, REQUESTED_AUTHORITY_PROPERTY};
use host_tests::{Action, LogLevel, MetricValue, Module, Plugin, PluginOptions};

/// The filter module, compiled once per test binary (a few seconds in a debug build) and shared
/// by every test thread. Panics with the build command when the module is missing.
pub fn filter_module() -> Module {
    static MODULE: OnceLock<Result<Module, String>> = OnceLock::new();
    match MODULE.get_or_init(|| Module::load_default().map_err(|e| format!("{e:#}"))) {
        Ok(module) => module.clone(),
        Err(e) => panic!("{e}"),
    }
}

/// Starts the filter with this plugin configuration, Envoy's log level at `level`.
pub fn start(config: &serde_json::Value, level: LogLevel) -> Plugin {
    let options = PluginOptions::with_configuration(config.to_string())
        .log_level(level)
        .quiet();
    Plugin::start(&filter_module(), options).unwrap_or_else(|e| panic!("{e}"))
}

/// Sends `headers` on a new stream, then reads the table's columns from what the module left:
/// `:authority`, the stream's filter state, the counter that moved, the local reply.
pub fn outcome(plugin: &mut Plugin, headers: &[(&str, &[u8])]) -> Outcome {
    let before = counters(plugin);
    let stream = plugin.new_http_context().unwrap();
    let action = plugin
        .call_on_request_headers_bytes(stream, headers, true)
        .unwrap_or_else(|e| panic!("the module trapped on {headers:?}: {e:#}"));
    let reply = plugin.sent_local_response(stream);
    assert_eq!(
        action == Action::Pause,
        reply.is_some(),
        "{headers:?}: {action:?}, local reply {reply:?}"
    );
    let outcome = Outcome {
        authority: plugin.request_header(stream, ":authority"),
        filter_state: plugin
            .stream_property(stream, &[REQUESTED_AUTHORITY_PROPERTY])
            .map(|v| String::from_utf8_lossy(&v).into_owned()),
        counter: moved(&before, &counters(plugin)),
        reply: reply.map(|r| Reply {
            status: r.status,
            denied: r.header(DENIED_HEADER).unwrap_or_default().to_owned(),
            details: r.details.clone(),
            body: r.body_text(),
        }),
    };
    assert!(plugin.complete_http_stream(stream).unwrap());
    outcome
}

fn counters(plugin: &Plugin) -> BTreeMap<String, u64> {
    plugin
        .metrics()
        .iter()
        .filter_map(|m| match m.value {
            MetricValue::Counter(v) => Some((m.name.clone(), v)),
            _ => None,
        })
        .collect()
}

/// The name of the one counter that went up by one, `None` when none moved; else what moved,
/// so the row fails.
fn moved(before: &BTreeMap<String, u64>, after: &BTreeMap<String, u64>) -> Option<String> {
    let changes: Vec<(&String, u64)> = after
        .iter()
        .filter(|(name, v)| before.get(*name) != Some(v))
        .map(|(name, v)| (name, v - before.get(name).copied().unwrap_or(0)))
        .collect();
    match changes[..] {
        [] => None,
        [(name, 1)] => Some(name.clone()),
        _ => Some(format!("counters moved: {changes:?}")),
    }
}
