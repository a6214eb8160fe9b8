//! Resource documents from text: JSON (one resource or an array of them) and, with the `yaml`
//! feature, YAML streams (`---` between documents), as `extsvc` and the fuzz targets read them.

use std::fmt;

use serde::Serialize;
use serde_json::Value;

/// A text that is not well-formed YAML or JSON, with where the reader stopped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SyntaxError {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.line, self.column, self.message
        )
    }
}

/// Splits a JSON text into documents: one resource, or an array of them.
pub fn json_documents(text: &str) -> Result<Vec<Value>, serde_json::Error> {
    Ok(match serde_json::from_str(text)? {
        Value::Array(items) => items,
        one => vec![one],
    })
}

/// [`json_documents`], with a failure as a [`SyntaxError`] of `file`.
pub fn json_file_documents(file: &str, text: &str) -> (Vec<Value>, Option<SyntaxError>) {
    match json_documents(text) {
        Ok(values) => (values, None),
        Err(e) => (
            Vec::new(),
            Some(SyntaxError {
                file: file.to_string(),
                line: e.line(),
                column: e.column(),
                message: e.to_string(),
            }),
        ),
    }
}

/// The documents of a YAML stream, up to the first that is not well-formed.
#[cfg(feature = "yaml")]
pub fn yaml_documents(file: &str, text: &str) -> (Vec<Value>, Option<SyntaxError>) {
    use serde::Deserialize as _;
    let mut values = Vec::new();
    for document in serde_yaml_ng::Deserializer::from_str(text) {
        match Value::deserialize(document) {
            // An empty document, such as after a final `---`, holds no resource.
            Ok(Value::Null) => {}
            Ok(Value::Array(items)) => values.extend(items),
            Ok(value) => values.push(value),
            Err(e) => {
                let (line, column) = e.location().map_or((0, 0), |l| (l.line(), l.column()));
                let error = SyntaxError {
                    file: file.to_string(),
                    line,
                    column,
                    message: e.to_string(),
                };
                return (values, Some(error));
            }
        }
    }
    (values, None)
}
