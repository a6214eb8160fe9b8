//! Reading resource files: YAML (`---` between documents) or JSON (one resource or an array),
//! then the filter crate's checks plus the file and PEM checks only a native tool can make.

use std::fmt;
use std::path::{Path, PathBuf};

use external_service_filter::config::{self, Checked};
use external_service_filter::{resolve, Origin};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A file that is not well-formed YAML or JSON.
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

/// A file that could not be read at all: a usage problem rather than bad content.
#[derive(Debug)]
pub struct ReadError {
    pub file: PathBuf,
    pub error: std::io::Error,
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot read {}: {}", self.file.display(), self.error)
    }
}

impl std::error::Error for ReadError {}

/// Everything read from the files, checked.
#[derive(Debug, Default)]
pub struct Loaded {
    pub checked: Checked,
    pub syntax_errors: Vec<SyntaxError>,
}

impl Loaded {
    pub fn is_valid(&self) -> bool {
        self.syntax_errors.is_empty() && self.checked.is_valid()
    }
}

/// Reads and checks every file; resources of all files are validated together.
pub fn load(paths: &[PathBuf]) -> Result<Loaded, ReadError> {
    let mut documents = Vec::new();
    let mut syntax_errors = Vec::new();
    for path in paths {
        let text = std::fs::read_to_string(path).map_err(|error| ReadError {
            file: path.clone(),
            error,
        })?;
        let file = path.display().to_string();
        let (values, error) = if is_json(path, &text) {
            json_documents(&file, &text)
        } else {
            yaml_documents(&file, &text)
        };
        syntax_errors.extend(error);
        documents.extend(values.into_iter().enumerate().map(|(document, value)| {
            let origin = Origin {
                file: file.clone(),
                document,
            };
            (value, origin)
        }));
    }
    let checked = config::check(documents, Some(&resolve::check));
    Ok(Loaded {
        checked,
        syntax_errors,
    })
}

fn is_json(path: &Path, text: &str) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"))
        || text.trim_start().starts_with(['{', '['])
}

fn json_documents(file: &str, text: &str) -> (Vec<Value>, Option<SyntaxError>) {
    match external_service_filter::resource::json_documents(text) {
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

/// The documents of a YAML stream, up to the first that is not well-formed (the fuzz target
/// `resources_yaml` reads text the same way).
pub fn yaml_documents(file: &str, text: &str) -> (Vec<Value>, Option<SyntaxError>) {
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
