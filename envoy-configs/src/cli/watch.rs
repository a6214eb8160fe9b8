//! `extsvc watch FILE_OR_DIR... --xds-dir DIR`: `generate` once, then again on every change
//! of the resource files, so that a running Envoy follows the edits; one line per update.

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use clap::Args;
use signal_hook::consts::{SIGINT, SIGTERM};

use super::generate::{Error, GenerateArgs};
use crate::pipeline::{self, Generated};
use crate::read::{self, Loaded};

/// How often the files are looked at: a few `stat` calls each time.
const POLL: Duration = Duration::from_millis(100);
/// How long the files must hold still before an update: an editor's save is one update.
const QUIET: Duration = Duration::from_millis(300);

#[derive(Debug, Args)]
#[command(after_help = "Examples:
  extsvc watch services/ --xds-dir /etc/extsvc/xds -o envoy.yaml
  envoy -c envoy.yaml      # then edit, add or remove files in services/

Each update prints one line: `updated`, `unchanged` (the files changed, the configuration
did not), or `refused`, with the first problem and the count (`extsvc validate` prints them
all); a refused change leaves DIR as it was. With --dataplane or --zone-egress, the
certificate is renewed at 4/5 of its life (only its SDS file changes) and the line says when
it expires. Ctrl-C (SIGINT) or SIGTERM stops it, exit 0.
Exit status 2 when it cannot run (no --xds-dir, standard input, missing module).")]
pub struct WatchArgs {
    /// The options of `generate`; --xds-dir is required. With -o the bootstrap is written
    /// with each update (it changes only with the options).
    #[command(flatten)]
    pub generate: GenerateArgs,
}

/// Runs until SIGINT or SIGTERM: Ok then; Err when it cannot run at all.
pub fn run(args: &WatchArgs, out: &mut dyn Write, notes: &mut dyn Write) -> Result<(), Error> {
    let args = &args.generate;
    if args.kubernetes().is_some() {
        return Err(Error::Usage(
            "watch keeps an xDS directory of this machine up to date; for a fleet on Kubernetes, \
             run `extsvc generate --format kubernetes -o FILE` after each change and apply FILE"
                .into(),
        ));
    }
    let inputs = args.inputs.all();
    let Some(dir) = &args.xds_dir else {
        return Err(Error::Usage(
            "watch updates a running Envoy through its xDS files: give --xds-dir DIR".into(),
        ));
    };
    if inputs.iter().any(|i| i.as_os_str() == read::STDIN) {
        return Err(Error::Usage(
            "watch reads files it can look at again: standard input (-) cannot be watched".into(),
        ));
    }
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [SIGINT, SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&stop))
            .map_err(|e| Error::Usage(format!("cannot handle signal {signal}: {e}")))?;
    }
    let dir = dir.display().to_string();
    let mut seen = Snapshot::take(&inputs);
    let mut renew_at = update(args, &dir, out, notes)?.renew_at();
    let mut changed_at: Option<Instant> = None;
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(POLL);
        let now = Snapshot::take(&inputs);
        let due = renew_at.is_some_and(|at| SystemTime::now() >= at);
        if now != seen {
            seen = now;
            changed_at = Some(Instant::now());
        } else if due || changed_at.is_some_and(|t| t.elapsed() >= QUIET) {
            changed_at = None;
            renew_at = match update(args, &dir, out, notes)? {
                Update::Applied(next) => next,
                // The certificate must not run out while the files are being fixed.
                Update::Refused if due => Some(SystemTime::now() + RENEWAL_RETRY),
                Update::Refused => renew_at,
            };
        }
    }
    report(out, "stopped");
    Ok(())
}

/// How long after a refused renewal the next try is.
const RENEWAL_RETRY: Duration = Duration::from_secs(5);

/// What an update did.
enum Update {
    /// Written; when the certificate it holds is to be renewed, if it holds one.
    Applied(Option<SystemTime>),
    /// Not written: the previous files stay.
    Refused,
}

impl Update {
    fn renew_at(&self) -> Option<SystemTime> {
        match self {
            Update::Applied(at) => *at,
            Update::Refused => None,
        }
    }
}

/// One update, reported on one line; only a problem of the command itself ends the watch.
fn update(
    args: &GenerateArgs,
    dir: &str,
    out: &mut dyn Write,
    notes: &mut dyn Write,
) -> Result<Update, Error> {
    let (line, update) = match args.request().and_then(|request| {
        let generated = pipeline::apply(&request, notes)?;
        if let Some(path) = &args.output {
            pipeline::write_bootstrap(path, &generated)?;
        }
        Ok(generated)
    }) {
        Ok(applied) => (
            outcome(&applied, dir),
            Update::Applied(applied.identity.map(|i| i.renew_at)),
        ),
        Err(e @ Error::Usage(_)) => return Err(e),
        Err(Error::Invalid(loaded)) => (
            format!("refused, {dir} unchanged: {}", condensed(&loaded)),
            Update::Refused,
        ),
        Err(e @ (Error::Read(_) | Error::Generate(_) | Error::Manifests(_))) => {
            (format!("refused, {dir} unchanged: {e}"), Update::Refused)
        }
        Err(e @ Error::Write(_)) => (format!("failed: {e}"), Update::Refused),
    };
    report(out, &line);
    Ok(update)
}

fn report(out: &mut dyn Write, line: &str) {
    // A closed stdout is the reader's choice; the watch goes on.
    let _ = writeln!(out, "extsvc: {line}").and_then(|()| out.flush());
}

/// `updated DIR: 3 clusters, 2 listeners, 1 secret (version <version>)`.
fn outcome(generated: &Generated, dir: &str) -> String {
    let Some((files, changed)) = &generated.xds else {
        return format!("updated {dir}");
    };
    let count = |response: &serde_json::Value| {
        response["resources"]
            .as_array()
            .map_or(0, |resources| resources.len())
    };
    let plural = |n: usize, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
    let certificate = generated.identity.as_ref().map_or(String::new(), |issued| {
        let left = |at: SystemTime| at.duration_since(SystemTime::now()).unwrap_or_default();
        format!(
            "; certificate {} expires in {}s, renewed in {}s",
            issued.uris.first().map_or("", String::as_str),
            left(issued.not_after).as_secs(),
            left(issued.renew_at).as_secs(),
        )
    });
    format!(
        "{} {dir}: {}, {}, {} (version {}){certificate}",
        if *changed { "updated" } else { "unchanged" },
        plural(count(&files.cds), "cluster"),
        plural(count(&files.lds), "listener"),
        plural(files.sds.len(), "secret"),
        files.version(),
    )
}

/// `validate`'s report in one line: the first problem, and how many there are.
fn condensed(loaded: &Loaded) -> String {
    let invalid: Vec<_> = loaded
        .checked
        .reports
        .iter()
        .filter(|r| !r.is_valid())
        .collect();
    let problems =
        loaded.syntax_errors.len() + invalid.iter().map(|r| r.violations.len()).sum::<usize>();
    let first = match (loaded.syntax_errors.first(), invalid.first()) {
        (Some(error), _) => error.to_string(),
        (None, Some(report)) => match report.violations.first() {
            Some(violation) => format!("{}: {violation}", report.heading()),
            None => report.heading(),
        },
        (None, None) => "invalid resources".to_string(),
    };
    match problems {
        0 | 1 => first,
        n => format!("{first} (and {} more; `extsvc validate` lists them)", n - 1),
    }
}

/// What the watch compares: the files the arguments name now (a directory's files come and
/// go), with each one's modification time and size.
#[derive(Debug, PartialEq, Eq)]
struct Snapshot(Result<Vec<(PathBuf, Stamp)>, String>);

/// A file's modification time and size; `None` once it is gone.
type Stamp = Option<(SystemTime, u64)>;

impl Snapshot {
    fn take(inputs: &[PathBuf]) -> Snapshot {
        Snapshot(
            read::expand(inputs)
                .map(|files| {
                    files
                        .into_iter()
                        .map(|file| {
                            let stamp = std::fs::metadata(&file)
                                .ok()
                                .and_then(|m| Some((m.modified().ok()?, m.len())));
                            (file, stamp)
                        })
                        .collect()
                })
                .map_err(|e| e.to_string()),
        )
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn loaded(text: &str) -> (tempfile::TempDir, Loaded) {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("services.yaml");
        std::fs::write(&file, text).unwrap();
        let loaded = read::load(&[file]).unwrap();
        (dir, loaded)
    }

    #[test]
    fn a_refusal_is_the_first_problem_and_how_many_more() {
        let service = |name: &str, address: &str| {
            format!(
                "type: ExternalService\nmesh: default\nname: {name}\ntags:\n  \
                 kuma.io/service: {name}\nnetworking:\n  address: {address}\n"
            )
        };
        let (_dir, one) = loaded(&service("a", "a.test:0"));
        let line = condensed(&one);
        assert!(line.contains("services.yaml"), "{line}");
        assert!(line.contains("ExternalService \"a\""), "{line}");
        assert!(line.contains("networking.address"), "{line}");
        assert!(!line.contains("more"), "{line}");

        let two = format!(
            "{}---\n{}",
            service("a", "a.test:0"),
            service("b", "b.test:0")
        );
        let (_dir, two) = loaded(&two);
        let line = condensed(&two);
        assert!(line.contains("ExternalService \"a\""), "{line}");
        assert!(
            line.ends_with("(and 1 more; `extsvc validate` lists them)"),
            "{line}"
        );

        let (_dir, broken) = loaded("type: [\n");
        let line = condensed(&broken);
        assert!(line.contains("services.yaml:"), "{line}");
        assert!(!line.contains('\n'), "{line}");
    }
}
