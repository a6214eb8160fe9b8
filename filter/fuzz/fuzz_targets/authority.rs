//! Arbitrary bytes as a request's `:authority` (first line) and content-type (the rest), through
//! `authority::parse` and `decide` with passthrough off, on, and a filter bound to one service.
#![no_main]

use external_service_conformance::checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::authority(data));
