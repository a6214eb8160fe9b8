//! `extsvc validate FILE...`: every violation of every resource, Kuma's wording.

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, ValueEnum};
use external_service_model::Report;
use serde::Serialize;

use crate::read::{self, Loaded, SyntaxError};

#[derive(Debug, Args)]
#[command(after_help = "Examples:
  extsvc validate services.yaml
  extsvc validate mesh.yaml services/*.yaml -o json

Exit status: 0 when every resource is valid, 1 when any is not, 2 when the command
cannot run (unknown flag, missing file).")]
pub struct ValidateArgs {
    /// Resource files: YAML (documents separated by ---) or JSON (one resource or an array),
    /// in Kuma's Universal or Kubernetes form. All files are checked together.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,

    /// Output format. text: one line per resource, then one `field: message` line per
    /// violation. json: {"resources":[{"file","kind","name","mesh","violations":[{"field","message"}]}],
    /// "errors":[{"file","line","column","message"}]}.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Format::Text)]
    pub output: Format,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
}

#[derive(Serialize)]
struct JsonReport<'a> {
    resources: &'a [Report],
    errors: &'a [SyntaxError],
}

/// Runs the command; the exit status is the result.
pub fn run(args: &ValidateArgs, out: &mut dyn Write) -> Result<bool, read::ReadError> {
    let loaded = read::load(&args.files)?;
    let written = match args.output {
        Format::Text => write_text(&loaded, out),
        Format::Json => {
            let report = JsonReport {
                resources: &loaded.checked.reports,
                errors: &loaded.syntax_errors,
            };
            serde_json::to_writer_pretty(&mut *out, &report)
                .map_err(std::io::Error::from)
                .and_then(|()| writeln!(out))
        }
    };
    // A closed pipe is the reader's choice; the verdict stands.
    let _ = written;
    Ok(loaded.is_valid())
}

/// Text output, shared with `generate`'s refusal.
pub fn write_text(loaded: &Loaded, out: &mut dyn Write) -> std::io::Result<()> {
    for error in &loaded.syntax_errors {
        writeln!(out, "{error}")?;
    }
    for report in &loaded.checked.reports {
        match report.violations.len() {
            0 => writeln!(out, "{}: valid", report.heading())?,
            n => writeln!(
                out,
                "{}: {n} violation{}",
                report.heading(),
                if n == 1 { "" } else { "s" }
            )?,
        }
        for v in &report.violations {
            writeln!(out, "  {v}")?;
        }
    }
    Ok(())
}
