//! Heap allocations per forwarded request, counted by the filter's `count-allocations` build
//! (`make build` builds it beside the release module): the numbers are held exactly, each
//! remaining allocation with its reason.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use external_service_conformance::scenarios::{plugin_config, Setup};
use host_tests::{Action, Module, Plugin, PluginOptions};

/// The one allocation a forwarded request cannot avoid: the host writes the `:authority`
/// value into memory the module allocates for it (`proxy_on_memory_allocate`), and the module
/// reads it in place as its `String`. The stream's context is an entry in a reused map, not an
/// allocation.
const FORWARD: u64 = 1;

fn plugin() -> Plugin {
    let module = Module::load_allocation_counting().unwrap_or_else(|e| panic!("{e:#}"));
    let options =
        PluginOptions::with_configuration(plugin_config(Setup::Closed).to_string()).quiet();
    Plugin::start(&module, options).unwrap_or_else(|e| panic!("{e}"))
}

/// Allocations of one whole request to `authority`: context created, headers, done, deleted.
fn allocations_of(plugin: &mut Plugin, authority: &str) -> (Action, u64) {
    let before = plugin.allocations().unwrap();
    let stream = plugin.new_http_context().unwrap();
    let action = plugin
        .call_on_request_headers(stream, &[(":authority", authority)], true)
        .unwrap();
    assert!(plugin.complete_http_stream(stream).unwrap());
    (action, plugin.allocations().unwrap() - before)
}

#[test]
fn a_forwarded_request_allocates_only_what_the_host_makes_it() {
    let mut plugin = plugin();
    // The first stream grows the module's stream map once; every later one reuses it.
    let (_, first) = allocations_of(&mut plugin, "httpbin.org");
    assert!(first >= FORWARD, "{first}");
    for authority in [
        // Already the real authority: no rewrite, no filter state.
        "httpbin.org",
        // Rewritten, and the name the app used put in filter state.
        "httpbin.mesh",
        "httpbin.org:443",
        "api.example.com:8080",
    ] {
        let (action, allocations) = allocations_of(&mut plugin, authority);
        assert_eq!(action, Action::Continue, "{authority}");
        assert_eq!(allocations, FORWARD, "{authority}");
    }
}

/// The count is real: a denial (off the hot path) formats its reply, and that shows.
#[test]
fn the_counter_sees_a_denials_allocations() {
    let mut plugin = plugin();
    allocations_of(&mut plugin, "httpbin.org");
    let (action, allocations) = allocations_of(&mut plugin, "evil.example");
    assert_eq!(action, Action::Pause);
    assert!(allocations > FORWARD, "{allocations}");
}
