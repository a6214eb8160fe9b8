//! Arbitrary text as a YAML resource file, read the way envoy-configs/src/read.rs reads one,
//! then `config::check`.
#![no_main]

use serde::Deserialize;
use serde_json::Value;

#[path = "../checks.rs"]
mod checks;

/// The documents of a YAML stream up to the first that is not well-formed, as `extsvc` reads
/// them: an empty document holds nothing, a list holds several resources.
fn yaml_documents(text: &str) -> Vec<Value> {
    let mut values = Vec::new();
    for document in serde_yaml_ng::Deserializer::from_str(text) {
        match Value::deserialize(document) {
            Ok(Value::Null) => {}
            Ok(Value::Array(items)) => values.extend(items),
            Ok(value) => values.push(value),
            Err(_) => break,
        }
    }
    values
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        checks::documents(yaml_documents(text));
    }
});
