//! What the filter must do, written once and run by three engines: the native decision tests
//! (this crate's tests), the compiled module in the wasmtime host (host-tests), and the fuzz
//! targets (filter/fuzz).

// Checks for tests and fuzzers: failing loudly is the point.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod checks;
pub mod scenarios;
