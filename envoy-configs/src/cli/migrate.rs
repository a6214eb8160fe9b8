//! `extsvc migrate FILE...`: the MeshExternalServices that do what the ExternalServices do
//! (YAML on stdout or `-o FILE`), and what cannot be carried over (stderr).

use std::fmt;
use std::io::Write;
use std::path::PathBuf;

use clap::Args;
use external_service_model::resource::{Kind, Origin, Spec};
use external_service_model::Report;

use super::Inputs;
use crate::atomic::{self, WriteError};
use crate::migrate::{self, Form, Migrated};
use crate::read::{self, Loaded, ReadError};

#[derive(Debug, Args)]
#[command(after_help = "Examples:
  extsvc migrate services.yaml -o mesh-external-services.yaml
  kubectl get externalservices -o yaml | extsvc migrate -

The ExternalServices of one kuma.io/service become one MeshExternalService with one
endpoint each, written in the form they were (Universal or Kubernetes). What cannot be
carried over is listed on stderr, per ExternalService, with the reason.

Exit status: 0 when the MeshExternalServices were written, 1 when the resources are
invalid (the report is the one `extsvc validate` prints) or hold no ExternalService, 2 when
the command cannot run (unknown flag, missing file).")]
pub struct MigrateArgs {
    #[command(flatten)]
    pub inputs: Inputs,

    /// Write the MeshExternalServices to FILE instead of stdout (mode 0600 when they hold an
    /// inline client key).
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,
}

#[derive(Debug)]
pub enum Error {
    Read(ReadError),
    /// The resources are invalid: `validate`'s report says why.
    Invalid(Box<Loaded>),
    NoExternalService,
    /// The MeshExternalServices made are not valid (a name too long, two services that get
    /// one name): their report.
    Unmigratable(Box<Loaded>),
    Migrate(String),
    Write(WriteError),
}

impl Error {
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Read(_) | Error::Write(_) => 2,
            _ => 1,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Read(e) => e.fmt(f),
            Error::Invalid(_) => f.write_str("invalid resources: nothing migrated"),
            Error::NoExternalService => {
                f.write_str("no ExternalService in the files: nothing to migrate")
            }
            Error::Unmigratable(_) => {
                f.write_str("the MeshExternalServices made would not be valid: nothing migrated")
            }
            Error::Migrate(e) => write!(f, "{e}"),
            Error::Write(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for Error {}

/// Runs the command: the MeshExternalServices to `out` (or `-o`), the notes to `notes`.
pub fn run(args: &MigrateArgs, out: &mut dyn Write, notes: &mut dyn Write) -> Result<(), Error> {
    let documents = read::read(&args.inputs.all()).map_err(Error::Read)?;
    let kubernetes: Vec<Origin> = documents
        .documents
        .iter()
        .filter(|(value, _)| Form::of(value) == Form::Kubernetes)
        .map(|(_, origin)| origin.clone())
        .collect();
    let loaded = documents.check();
    if !loaded.is_valid() {
        return Err(Error::Invalid(Box::new(loaded)));
    }
    let resources = &loaded.checked.resources;
    if !resources.iter().any(|r| r.kind() == Kind::ExternalService) {
        return Err(Error::NoExternalService);
    }
    let read_file = |path: &std::path::Path| {
        std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
    };
    let migration = migrate::migrate(resources, &loaded.resolved, &kubernetes, &read_file)
        .map_err(Error::Migrate)?;
    check_made(&migration.services, &loaded)?;
    for report in &migration.notes {
        let _ = write_notes(report, notes);
    }
    let text = yaml(&migration.services);
    match &args.output {
        Some(path) => {
            atomic::write_file(path, text.as_bytes(), holds_client_key(&migration.services))
                .map_err(Error::Write)
        }
        // A closed pipe is the reader's choice.
        None => {
            let _ = out.write_all(text.as_bytes());
            Ok(())
        }
    }
}

/// Checks what was made as `validate` would, beside the Secrets its `secret:` sources name.
fn check_made(services: &[Migrated], loaded: &Loaded) -> Result<(), Error> {
    let origin = |document| Origin {
        file: "migrated".into(),
        document,
    };
    let secrets = loaded
        .checked
        .resources
        .iter()
        .filter(|r| r.kind() == Kind::Secret)
        .map(|r| r.to_universal());
    let documents = services
        .iter()
        .map(migrate::document)
        .chain(secrets)
        .enumerate()
        .map(|(i, value)| (value, origin(i)))
        .collect();
    let made = read::check(documents);
    match made.is_valid() {
        true => Ok(()),
        false => Err(Error::Unmigratable(Box::new(made))),
    }
}

fn write_notes(report: &Report, notes: &mut dyn Write) -> std::io::Result<()> {
    writeln!(notes, "{}:", report.heading())?;
    for note in &report.violations {
        writeln!(notes, "  {note}")?;
    }
    Ok(())
}

fn yaml(services: &[Migrated]) -> String {
    services
        .iter()
        .map(|m| serde_yaml_ng::to_string(&migrate::document(m)).unwrap_or_default())
        .collect::<Vec<_>>()
        .join("---\n")
}

fn holds_client_key(services: &[Migrated]) -> bool {
    services.iter().any(|m| match &m.resource.spec {
        Spec::MeshExternalService(spec) => spec
            .tls
            .as_ref()
            .and_then(|t| t.verification.as_ref())
            .and_then(|v| v.client_key.as_ref())
            .is_some_and(|key| key.secret.is_none()),
        _ => false,
    })
}
