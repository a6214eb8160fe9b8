//! Arbitrary bytes as the filter's plugin configuration (`config::configure`), and as a JSON
//! resource file (`config::check`).
#![no_main]

use external_service_conformance::checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::resources_json(data));
