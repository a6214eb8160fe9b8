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
