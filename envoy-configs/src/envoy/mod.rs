//! The parts of Envoy's v3 API that the generator writes, as typed values that serialise to
//! Envoy's proto-JSON/YAML form: proto field names, defaults left out, `Any` as `@type` plus
//! the message's fields, fields in the order a reader wants them.
//!
//! Written by hand rather than taken from a crate: `envoy-types` (the whole API, prost and
//! tonic) has no serde at all, and prost messages do not serialise to this form without
//! pbjson; `xds-api` with its `pbjson` feature lacks most extensions written here (wasm,
//! tcp_proxy, the stdout access log, c-ares, the dynamic forward proxy, HTTP protocol
//! options), expands `Any` only for the xDS top-level messages, writes fields in proto order
//! and leaves out the `false`s the DNS resolver spells out, so the output would change. Either
//! would also bring prost, tonic and megabytes of generated code for the few dozen messages
//! below.
//!
//! Every `typed_config` is an enum of the messages written there, tagged with `@type`.

mod access_log;
mod bootstrap;
mod cluster;
mod config_source;
mod core;
mod http;
mod listener;
mod rbac;
mod tls;
mod wasm;

pub use access_log::*;
pub use bootstrap::*;
pub use cluster::*;
pub use config_source::*;
pub use core::*;
pub use http::*;
pub use listener::*;
pub use rbac::*;
pub use tls::*;
pub use wasm::*;
