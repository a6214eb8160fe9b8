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
/// request: the module exports what the filter needs and nothing else (no response, log,
/// done or delete callbacks, which Envoy then skips).
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

/// The configuration a stream is decided by is its own root's: streams of two roots of one VM
/// (Envoy's one root per plugin, e.g. per VIP listener), created and decided one after the
/// other in any order, never take each other's.
#[test]
fn each_stream_is_decided_by_its_own_root_context() -> anyhow::Result<()> {
    use external_service_conformance::scenarios::{plugin_config, Setup};
    use host_tests::Action;

    let module = Module::load_default()?;
    let closed = plugin_config(Setup::Closed).to_string();
    let options = PluginOptions::with_configuration(closed);
    let mut plugin = Plugin::start(&module, options.quiet()).map_err(|e| anyhow::anyhow!("{e}"))?;
    let (open, accepted) = plugin.new_root_context(plugin_config(Setup::Open).to_string())?;
    assert!(accepted);
    let undeclared = [(":authority", "undeclared.example.com")];
    for round in 0..3 {
        let closed_stream = plugin.new_http_context()?;
        let action = plugin.call_on_request_headers(closed_stream, &undeclared, true)?;
        assert_eq!(
            action,
            Action::Pause,
            "round {round}: the closed root denies"
        );
        let open_stream = plugin.new_http_context_of(open)?;
        let action = plugin.call_on_request_headers(open_stream, &undeclared, true)?;
        assert_eq!(
            action,
            Action::Continue,
            "round {round}: the open root passes"
        );
        assert!(plugin.sent_local_response(open_stream).is_none());
    }
    Ok(())
}

/// The module keeps no table of streams (no `proxy_on_delete`): it takes a stream's root from
/// the stream created last, since Envoy hands over a stream's request headers right after
/// creating it. Headers of any other stream are not Envoy's order: answered 500, never
/// forwarded under another stream's configuration.
#[test]
fn headers_of_a_stream_that_was_not_created_last_are_answered_500() -> anyhow::Result<()> {
    use external_service_conformance::scenarios::{plugin_config, Setup};
    use external_service_model::contract::UNCONFIGURED_DETAILS;
    use host_tests::Action;

    let module = Module::load_default()?;
    let options = PluginOptions::with_configuration(plugin_config(Setup::Closed).to_string());
    let mut plugin = Plugin::start(&module, options.quiet()).map_err(|e| anyhow::anyhow!("{e}"))?;
    let earlier = plugin.new_http_context()?;
    let last = plugin.new_http_context()?;
    let httpbin = [(":authority", "httpbin.org")];
    assert_eq!(
        plugin.call_on_request_headers(earlier, &httpbin, true)?,
        Action::Pause
    );
    let reply = plugin
        .sent_local_response(earlier)
        .ok_or_else(|| anyhow::anyhow!("no local reply"))?;
    assert_eq!(
        (reply.status, reply.details.as_str()),
        (500, UNCONFIGURED_DETAILS)
    );
    assert_eq!(
        plugin.call_on_request_headers(last, &httpbin, true)?,
        Action::Continue
    );
    Ok(())
}

/// Without `proxy_on_delete` the module learns that Envoy deleted a root context from its
/// ticks stopping (Envoy ticks only live roots): a root that falls three ticks per
/// root behind the others is forgotten (its memory freed; a stream naming it would be answered
/// 500), while roots that tick, however many ticks pass, are kept.
#[test]
fn a_root_context_that_stops_ticking_is_forgotten_and_one_that_ticks_is_kept() -> anyhow::Result<()>
{
    use external_service_conformance::scenarios::{plugin_config, Setup};
    use host_tests::Action;

    let module = Module::load_default()?;
    let config = plugin_config(Setup::Closed).to_string();
    let options = PluginOptions::with_configuration(config.clone());
    let mut plugin = Plugin::start(&module, options.quiet()).map_err(|e| anyhow::anyhow!("{e}"))?;
    let (kept, _) = plugin.new_root_context(config.clone())?;
    let (deleted, _) = plugin.new_root_context(config)?;
    let forwards = |plugin: &mut Plugin, root: u32| -> anyhow::Result<bool> {
        let stream = plugin.new_http_context_of(root)?;
        let action =
            plugin.call_on_request_headers(stream, &[(":authority", "httpbin.org")], true)?;
        Ok(action == Action::Continue)
    };
    // Every root ticks, in turns, for many periods: all kept.
    for _ in 0..50 {
        plugin.call_on_tick()?;
        plugin.call_on_tick_of(kept)?;
        plugin.call_on_tick_of(deleted)?;
    }
    assert!(forwards(&mut plugin, deleted)?);
    // `deleted` stops ticking; two periods later it is still kept (a late tick is no deletion).
    for _ in 0..2 {
        plugin.call_on_tick()?;
        plugin.call_on_tick_of(kept)?;
    }
    assert!(forwards(&mut plugin, deleted)?);
    // Three roots, 3 ticks per root behind: forgotten at the next sweep; the others are kept.
    for _ in 0..4 {
        plugin.call_on_tick()?;
        plugin.call_on_tick_of(kept)?;
    }
    assert!(!forwards(&mut plugin, deleted)?);
    assert!(forwards(&mut plugin, kept)?);
    // Were it live after all, its next tick says so in Envoy's log.
    plugin.clear_logs();
    plugin.call_on_tick_of(deleted)?;
    assert_eq!(
        plugin.logs(LogLevel::Error),
        [format!(
            "external-service filter: root context {deleted} ticked after it was taken for deleted; its requests are answered 500"
        )]
    );
    let own = plugin.new_http_context()?;
    let action = plugin.call_on_request_headers(own, &[(":authority", "httpbin.org")], true)?;
    assert_eq!(action, Action::Continue);
    Ok(())
}
