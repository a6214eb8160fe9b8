//! Shared by the test files that drive the real filter module (`mod support;`).

#![allow(dead_code, clippy::panic)]

use std::sync::OnceLock;

use host_tests::Module;

/// The filter module, compiled once per test binary (a few seconds in a debug build) and shared
/// by every test thread. Panics with the build command when the module is missing.
pub fn filter_module() -> Module {
    static MODULE: OnceLock<Result<Module, String>> = OnceLock::new();
    match MODULE.get_or_init(|| Module::load_default().map_err(|e| format!("{e:#}"))) {
        Ok(module) => module.clone(),
        Err(e) => panic!("{e}"),
    }
}
