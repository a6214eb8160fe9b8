//! The host against the real filter module: it loads, links and reaches `proxy_on_configure`,
//! and the module's verdict comes back with what it logged. The filter's behaviour is tested
//! elsewhere; this only checks the host can drive it.

use host_tests::{LogLevel, Module, Plugin, PluginOptions};

#[test]
fn the_filter_module_loads_and_configure_runs_without_trapping() -> anyhow::Result<()> {
    let module = Module::load_default()?;
    for (options, want) in [
        (
            PluginOptions::with_configuration("{}"),
            "plugin configuration: missing field `resources` at line 1 column 2",
        ),
        (
            PluginOptions::default(),
            "plugin configuration: EOF while parsing a value at line 1 column 0",
        ),
    ] {
        match Plugin::start(&module, options.quiet()) {
            Ok(_) => anyhow::bail!("accepted, though it should refuse with {want:?}"),
            Err(e) if e.is_configure_rejected() => assert_eq!(e.logs(LogLevel::Error), [want]),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Envoy calls every callback a module exports, and each call is a trip into the VM on every
/// request: the module exports what the filter needs and nothing else (no response, log or
/// done callbacks, which Envoy then skips).
#[test]
fn the_filter_module_exports_only_what_the_filter_needs() -> anyhow::Result<()> {
    let mut exports = Module::load_default()?.exports();
    exports.sort();
    assert_eq!(
        exports,
        [
            "_initialize",
            "memory",
            "proxy_abi_version_0_2_1",
            "proxy_on_configure",
            "proxy_on_context_create",
            "proxy_on_delete",
            "proxy_on_memory_allocate",
            "proxy_on_request_headers",
            "proxy_on_tick",
            "proxy_on_vm_start",
        ]
    );
    Ok(())
}

/// A stream that names a root context the module does not know is answered 500 and stopped,
/// never forwarded open; the module's own streams still work afterwards.
#[test]
fn a_stream_of_an_unknown_root_is_answered_500_not_forwarded() -> anyhow::Result<()> {
    use external_service_conformance::scenarios::{plugin_config, Setup};
    use external_service_model::contract::UNCONFIGURED_DETAILS;
    use host_tests::Action;

    let module = Module::load_default()?;
    let options = PluginOptions::with_configuration(plugin_config(Setup::Closed).to_string());
    let mut plugin = Plugin::start(&module, options.quiet()).map_err(|e| anyhow::anyhow!("{e}"))?;
    let stray = plugin.new_http_context_of(9_999)?;
    let action = plugin.call_on_request_headers(stray, &[(":authority", "httpbin.org")], true)?;
    assert_eq!(action, Action::Pause);
    let reply = plugin
        .sent_local_response(stray)
        .ok_or_else(|| anyhow::anyhow!("no local reply"))?;
    assert_eq!(
        (reply.status, reply.details.as_str()),
        (500, UNCONFIGURED_DETAILS)
    );
    assert_eq!(
        plugin.request_header(stray, ":authority").as_deref(),
        Some("httpbin.org")
    );
    assert_eq!(
        plugin.logs(LogLevel::Error).len(),
        1,
        "{:?}",
        plugin.logs(LogLevel::Error)
    );
    assert!(plugin.complete_http_stream(stray)?);

    let stream = plugin.new_http_context()?;
    let action = plugin.call_on_request_headers(stream, &[(":authority", "httpbin.org")], true)?;
    assert_eq!(action, Action::Continue);
    assert!(plugin.sent_local_response(stream).is_none());
    Ok(())
}
