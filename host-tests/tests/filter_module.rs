//! The host against the real filter module: it loads, links and reaches `proxy_on_configure`.
//! The filter's behaviour is tested elsewhere; this only checks the host can drive it.

mod support;

use host_tests::{Plugin, PluginOptions, StartFailure};

#[test]
fn the_filter_module_loads_and_configure_runs_without_trapping() -> anyhow::Result<()> {
    let module = support::filter_module();
    for options in [
        PluginOptions::with_configuration("{}"),
        PluginOptions::default(),
    ] {
        match Plugin::start(&module, options) {
            Ok(_) => {}
            // Refusing a configuration is the filter's call; trapping is not.
            Err(e) if matches!(e.failure, StartFailure::ConfigureRejected) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}
