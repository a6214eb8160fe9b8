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
