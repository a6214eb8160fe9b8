//! `extsvc validate FILE...`: every violation of every resource, Kuma's wording.

use std::collections::BTreeSet;
use std::fs;
use std::io::Write;
use std::path::PathBuf;

use clap::{Args, ValueEnum};
use external_service_model::{catalog, Report};
use serde::Serialize;

use super::{format_word, Inputs};
use crate::policy::{Policies, ServicePolicies};
use crate::read::{self, Loaded, SyntaxError};

#[derive(Debug, Args)]
#[command(after_help = "Examples:
  extsvc validate services.yaml
  extsvc validate mesh.yaml services/ --format json
  kubectl get externalservices -o yaml | extsvc validate -

Exit status: 0 when every resource is valid, 1 when any is not, 2 when the command
cannot run (unknown flag, missing file).")]
pub struct ValidateArgs {
    #[command(flatten)]
    pub inputs: Inputs,

    /// text: one line per resource, then one `field: message` line per violation.
    /// json: {"resources":[{"file","kind","name","mesh","violations":[{"field","message"}]}],
    /// "errors":[{"file","line","column","message"}], "effective":[{"mesh","service",
    /// "policies":{"MeshTimeout":{"conf","fields":{FIELD: POLICY}}}}], "warnings":[...]}.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,

    /// Write the report to FILE instead of stdout. (`-o json` and `-o text`, the old spelling
    /// of --format, still work.)
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,
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
    /// Each service some policy applies to, with the merged configuration per kind and the
    /// policy that set each field.
    effective: Vec<ServicePolicies>,
    warnings: &'a [String],
    /// Valid resources that `generate` refuses: one Envoy cluster per service cannot hold them.
    #[serde(skip_serializing_if = "<[Report]>::is_empty")]
    generator_limits: &'a [Report],
}

/// Runs the command: Ok(verdict), or why it could not run (exit 2). Notes for the user go
/// to `notes`.
pub fn run(
    args: &ValidateArgs,
    out: &mut dyn Write,
    notes: &mut dyn Write,
) -> Result<bool, Box<dyn std::error::Error>> {
    let (format, file) = match args.output.as_deref().map(|o| (o, old_spelling(o))) {
        Some((_, Some((word, format)))) => {
            let _ = writeln!(
                notes,
                "extsvc: `-o {word}` is deprecated: use --format {word} (-o names a file)"
            );
            (format, None)
        }
        Some((path, None)) => (args.format, Some(path)),
        None => (args.format, None),
    };
    let loaded = read::load(&args.inputs.all())?;
    // Kuma takes these, so they are no violations; `generate` refuses them in these words.
    for limit in &loaded.limits {
        for v in &limit.violations {
            let _ = writeln!(
                notes,
                "extsvc: warning: generate refuses {}: {v}",
                limit.heading()
            );
        }
    }
    let policies = Policies::build(&loaded.checked.resources);
    let warnings = warnings(&loaded, &policies);
    let mut report = Vec::new();
    let _ = match format {
        Format::Text => write_text(&loaded, &mut report).and_then(|()| {
            warnings
                .iter()
                .try_for_each(|w| writeln!(report, "warning: {w}"))
        }),
        Format::Json => {
            let json = JsonReport {
                resources: &loaded.checked.reports,
                errors: &loaded.syntax_errors,
                effective: policies.view(),
                warnings: &warnings,
                generator_limits: &loaded.limits,
            };
            serde_json::to_writer_pretty(&mut report, &json)
                .map_err(std::io::Error::from)
                .and_then(|()| writeln!(report))
        }
    };
    match file {
        Some(path) => {
            fs::write(path, &report).map_err(|e| format!("cannot write {}: {e}", path.display()))?
        }
        // A closed pipe is the reader's choice; the verdict stands.
        None => {
            let _ = out.write_all(&report);
        }
    }
    Ok(loaded.is_valid())
}

/// What Kuma accepts but a user should know: policy targets that name no service, and
/// MeshExternalServices a HostnameGenerator gave no hostname (every mesh's).
fn warnings(loaded: &Loaded, policies: &Policies) -> Vec<String> {
    let resources = &loaded.checked.resources;
    let meshes: BTreeSet<&str> = resources.iter().map(|r| r.mesh.as_str()).collect();
    let mut found = policies.warnings().to_vec();
    for mesh in meshes {
        found.extend(catalog::hostname_warnings(resources, mesh));
        found.extend(catalog::passthrough_warnings(resources, mesh));
    }
    found
}

/// `-o json` and `-o text`, the old spelling of `--format`: only validate's formats; any other
/// name is a file.
fn old_spelling(output: &std::path::Path) -> Option<(&str, Format)> {
    let word = format_word(output)?;
    Some((word, Format::from_str(word, true).ok()?))
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
