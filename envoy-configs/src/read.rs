//! Reading resource files: YAML (`---` between documents) or JSON (one resource or an array),
//! then the model's checks plus the file and PEM checks only a native tool can make.

use std::fmt;
use std::path::{Path, PathBuf};

use external_service_model::config::{self, Checked};
pub use external_service_model::documents::SyntaxError;
use external_service_model::documents::{json_file_documents, yaml_documents};
use external_service_model::Origin;

use crate::resolve;

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
            json_file_documents(&file, &text)
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
