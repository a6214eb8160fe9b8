//! Arbitrary text as a YAML resource file, read as `extsvc` reads one
//! (`documents::yaml_documents`), then `config::check`.
#![no_main]

use external_service_conformance::checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let (documents, _syntax_error) = external_service_model::documents::yaml_documents("fuzz", text);
        checks::documents(documents);
    }
});
