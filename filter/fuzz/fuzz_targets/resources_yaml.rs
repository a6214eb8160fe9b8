//! Arbitrary text as a YAML resource file, read as `extsvc` reads one
//! (`envoy_configs::read::yaml_documents`), then `config::check`.
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let (documents, _syntax_error) = envoy_configs::read::yaml_documents("fuzz", text);
        checks::documents(documents);
    }
});
