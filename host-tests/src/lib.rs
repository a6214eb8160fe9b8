//! A proxy-wasm host (ABI 0.2.1, the one the filter module speaks) on wasmtime, for tests that
//! drive the compiled filter the way Envoy would and then look at the state it left: headers,
//! local responses, logs, metrics, properties, foreign calls.
//!
//! ```no_run
//! use host_tests::{Action, LogLevel, Module, Plugin, PluginOptions};
//! # fn main() -> anyhow::Result<()> {
//! let module = Module::load_default()?; // compile once, clone for each test
//! let mut plugin = Plugin::start(&module, PluginOptions::with_configuration(r#"{}"#))?;
//! let stream = plugin.new_http_context()?;
//! let action = plugin.call_on_request_headers(stream, &[(":authority", "httpbin.mesh")], true)?;
//! assert_eq!(action, Action::Continue);
//! assert!(plugin.sent_local_response(stream).is_none());
//! assert!(plugin.logs(LogLevel::Error).is_empty());
//! # Ok(()) }
//! ```
//!
//! State lives in one wasmtime `Store<HostState>` per [`Plugin`]: tests run in parallel.
//! Compile the module once per test binary and clone it (see `tests/support/mod.rs`).
//! Imports the host does not implement still link, and trap naming the function if called.
//!
//! Clean build of this crate (wasmtime 48.0.8 with cranelift, runtime, parallel-compilation;
//! 2 cores): 1m20s debug, 2m39s release.

mod abi;
mod imports;
mod plugin;
mod state;

pub use abi::{
    deserialize_map, serialize_map, split_property_path, Action, LogLevel, MetricType, Status,
};
pub use plugin::{HttpStream, Module, Plugin, PluginOptions, StartError, StartFailure};
pub use state::{HeaderMap, LocalResponse, LogEntry, Metric, MetricValue};
