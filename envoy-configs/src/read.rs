//! Reading resource files: YAML (`---` between documents) or JSON (one resource or an array),
//! then every check, from one list: the model's, the file and PEM checks only a native tool can
//! make, the traffic policies' and the generator's own limits. The DataSources are resolved
//! once, here, for the builders.

use std::fmt;
use std::path::{Path, PathBuf};

use external_service_model::config::{self, Checked};
pub use external_service_model::documents::SyntaxError;
use external_service_model::documents::{field_positions, json_file_documents, yaml_documents};
use external_service_model::report::Violation;
use external_service_model::resource::Resource;
use external_service_model::{Origin, Report};
use serde_json::Value;

use crate::resolve::{self, Resolved};
use crate::{cluster_rules, identity, policy};

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

/// Everything read from the files, checked, with its DataSources resolved: what generation
/// takes.
#[derive(Debug, Default)]
pub struct Loaded {
    pub checked: Checked,
    pub resolved: Resolved,
    /// Valid resources (Kuma takes them) that this generator cannot build
    /// (`cluster_rules::endpoints`), one report each: `validate` warns, `generate` refuses.
    pub limits: Vec<Report>,
    pub syntax_errors: Vec<SyntaxError>,
}

impl Loaded {
    pub fn is_valid(&self) -> bool {
        self.syntax_errors.is_empty() && self.checked.is_valid()
    }

    /// Whether `generate` can build it all.
    pub fn is_buildable(&self) -> bool {
        self.is_valid() && self.limits.is_empty()
    }

    /// Every report, with what the generator cannot build added: what `generate` refuses with.
    pub fn refusals(&self) -> Vec<Report> {
        let mut reports = self.checked.reports.clone();
        for limit in &self.limits {
            let same = |r: &&mut Report| r.file == limit.file && r.document == limit.document;
            match reports.iter_mut().find(same) {
                Some(report) => report.violations.extend(limit.violations.iter().cloned()),
                None => reports.push(limit.clone()),
            }
        }
        reports
    }
}

/// The name standard input goes by, as a file argument and in reports.
pub const STDIN: &str = "-";

/// The files a list of arguments names: `-` is standard input, a directory is all its
/// `*.yaml`, `*.yml` and `*.json` files in name order (as `kubectl apply -f DIR`).
pub fn expand(args: &[PathBuf]) -> Result<Vec<PathBuf>, ReadError> {
    let mut files = Vec::new();
    for arg in args {
        if arg.as_os_str() == STDIN || !arg.is_dir() {
            files.push(arg.clone());
            continue;
        }
        let error = |error| ReadError {
            file: arg.clone(),
            error,
        };
        let mut found = Vec::new();
        for entry in std::fs::read_dir(arg).map_err(error)? {
            let path = entry.map_err(error)?.path();
            let resource_file = path.extension().and_then(|e| e.to_str()).is_some_and(|e| {
                ["yaml", "yml", "json"].contains(&e.to_ascii_lowercase().as_str())
            });
            if resource_file && path.is_file() {
                found.push(path);
            }
        }
        found.sort();
        files.extend(found);
    }
    Ok(files)
}

/// The documents of every file, read but not yet checked (see [`read`]).
#[derive(Debug, Default)]
pub struct Documents {
    pub documents: Vec<(Value, Origin)>,
    texts: Vec<(String, String)>,
    syntax_errors: Vec<SyntaxError>,
}

impl Documents {
    /// Every check of [`check`], with each violation located in its file.
    pub fn check(self) -> Loaded {
        let mut loaded = check(self.documents);
        locate(&mut loaded, &self.texts);
        loaded.syntax_errors = self.syntax_errors;
        loaded
    }
}

/// Reads and checks every file (see [`expand`]); resources of all files are validated
/// together. Input with no resource at all is an error of each file: an empty file must not
/// become an open proxy.
pub fn load(args: &[PathBuf]) -> Result<Loaded, ReadError> {
    Ok(read(args)?.check())
}

/// Reads every file (see [`expand`]) into documents, for a command that looks at them as
/// written before [`Documents::check`].
pub fn read(args: &[PathBuf]) -> Result<Documents, ReadError> {
    let paths = expand(args)?;
    let mut read = Documents::default();
    for path in &paths {
        let text = read_text(path)?;
        let file = file_name(path);
        let (values, error) = if is_json(path, &text) {
            json_file_documents(&file, &text)
        } else {
            yaml_documents(&file, &text)
        };
        read.syntax_errors.extend(error);
        read.documents.extend(Origin::in_file(&file, values));
        read.texts.push((file, text));
    }
    if read.documents.is_empty() && read.syntax_errors.is_empty() {
        // A directory without resource files is named itself.
        let named = if paths.is_empty() { args } else { &paths };
        read.syntax_errors = named.iter().map(|path| no_resources(path)).collect();
    }
    Ok(read)
}

/// Reads the documents as resources and runs every check on them: the model's validation,
/// then [`NATIVE_CHECKS`], then the generator's limits. Resolves the DataSources once, for the
/// checks and the builders.
pub fn check(documents: Vec<(Value, Origin)>) -> Loaded {
    let mut resolved = Resolved::default();
    let mut native = |resources: &[Resource]| {
        resolved = resolve::resolve(resources);
        let mut found = vec![Vec::new(); resources.len()];
        for checker in NATIVE_CHECKS {
            for (all, more) in found.iter_mut().zip(checker(resources, &resolved)) {
                all.extend(more);
            }
        }
        found
    };
    let checked = config::check(documents, Some(&mut native));
    let limits = checked
        .resources
        .iter()
        .zip(cluster_rules::endpoints(&checked.resources))
        .filter(|(_, found)| !found.is_empty())
        .map(|(r, found)| Report::of(r, found))
        .collect();
    Loaded {
        checked,
        resolved,
        limits,
        syntax_errors: Vec::new(),
    }
}

/// A check beyond the model's: one list of violations per resource, aligned with them.
type NativeCheck = fn(&[Resource], &Resolved) -> Vec<Vec<Violation>>;

/// The checks the model leaves to `extsvc`, in the order their violations are reported.
const NATIVE_CHECKS: [NativeCheck; 4] = [
    // Files and PEM data.
    resolve::check,
    // The Mesh's CA and its certificates' lifetime.
    identity::check,
    // The traffic policies.
    |resources, _| policy::check(resources),
    // What the routes of one Envoy configuration cannot tell apart.
    |resources, _| cluster_rules::routes(resources),
];

/// Adds where each violation's field is written, reading again only files with violations.
fn locate(loaded: &mut Loaded, texts: &[(String, String)]) {
    for (file, text) in texts {
        let mut positions = None;
        let reports = loaded.checked.reports.iter_mut().chain(&mut loaded.limits);
        for report in reports.filter(|r| &r.file == file) {
            if report.violations.is_empty() {
                continue;
            }
            let positions = positions.get_or_insert_with(|| field_positions(text));
            let Some(fields) = positions.get(report.document) else {
                continue;
            };
            for v in &mut report.violations {
                if let Some((line, column)) = fields.of(&v.field) {
                    (v.line, v.column) = (Some(line), Some(column));
                }
            }
        }
    }
}

/// How reports name a file; standard input is `stdin`.
fn file_name(path: &Path) -> String {
    if path.as_os_str() == STDIN {
        "stdin".to_string()
    } else {
        path.display().to_string()
    }
}

fn no_resources(path: &Path) -> SyntaxError {
    SyntaxError {
        file: file_name(path),
        line: 1,
        column: 1,
        message: "no resources: expected ExternalService, Mesh, Secret, Dataplane or Mesh* policy documents"
            .to_string(),
    }
}

fn read_text(path: &Path) -> Result<String, ReadError> {
    let error = |error| ReadError {
        file: path.to_path_buf(),
        error,
    };
    if path.as_os_str() == STDIN {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin().lock(), &mut text).map_err(error)?;
        return Ok(text);
    }
    std::fs::read_to_string(path).map_err(error)
}

fn is_json(path: &Path, text: &str) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"))
        || text.trim_start().starts_with(['{', '['])
}
