//! Arbitrary text as a YAML resource file, read as `extsvc` reads one
//! (`documents::yaml_documents`), then `config::check`.
#![no_main]

use external_service_conformance::checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::resources_yaml(data));
