//! The per-resource reports that `extsvc validate` and the filter print.

use std::fmt;

use serde::Serialize;

use crate::resource::{Rejected, Resource};
pub use crate::violation::Violation;

/// Everything said about one resource; valid resources have no violations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    pub file: String,
    pub kind: String,
    pub name: String,
    pub mesh: String,
    pub violations: Vec<Violation>,
    /// 0-based position in the file; named in the heading of a resource that has no name.
    #[serde(skip)]
    pub document: usize,
}

impl Report {
    pub fn of(resource: &Resource, violations: Vec<Violation>) -> Self {
        Report {
            file: resource.origin.file.clone(),
            kind: resource.kind().to_string(),
            name: resource.name.clone(),
            mesh: resource.mesh.clone(),
            violations,
            document: resource.origin.document,
        }
    }

    pub fn is_valid(&self) -> bool {
        self.violations.is_empty()
    }

    /// `file: Kind "name" (mesh "m")`, the line that heads a report.
    pub fn heading(&self) -> String {
        let kind = if self.kind.is_empty() {
            "resource"
        } else {
            &self.kind
        };
        let mut heading = format!("{}: {kind}", self.file);
        if self.name.is_empty() {
            heading.push_str(&format!(" (document {})", self.document + 1));
        } else {
            heading.push_str(&format!(" {:?}", self.name));
        }
        if !self.mesh.is_empty() {
            heading.push_str(&format!(" (mesh {:?})", self.mesh));
        }
        heading
    }
}

impl From<Rejected> for Report {
    fn from(r: Rejected) -> Self {
        Report {
            file: r.origin.file,
            kind: r.kind,
            name: r.name,
            mesh: r.mesh,
            violations: r.violations,
            document: r.origin.document,
        }
    }
}

impl fmt::Display for Report {
    /// The heading, then one indented `field: message` line per violation.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.heading())?;
        for v in &self.violations {
            write!(f, "\n  {v}")?;
        }
        Ok(())
    }
}
