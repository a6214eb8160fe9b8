//! What each per-request host call of the filter costs in Envoy (`make bench-hostcalls`,
//! `src/bin/hostcalls.rs`; an experiment, not in `make bench`).
//!
//! Copies the committed tree to a scratch directory, builds the module once as is and once per
//! [`VARIANTS`] entry with one statement of the forward path removed or added (matched by exact
//! text, so a changed `filter/src/lib.rs` fails loudly), then runs variant A of part 1 with each
//! module, and with the minimal modules of `minimal.rs` (`bench/floor.wat`, the least a
//! proxy-wasm filter can be; `read_authority.wat`; `rewrite_authority.wat`), one proxy at a
//! time, rotated, and B (native) beside them: proxy CPU per request, then instructions per
//! request under callgrind (`instructions.rs`), which resolve what CPU time on a shared machine
//! cannot. The cost is Envoy's side of each call (C++ and V8), which the wasmtime host of
//! host-tests cannot stand in for: hence Envoy, not fuel. Every request uses the real
//! authority, which routes even when the filter does nothing; variants that always rewrite
//! measure a `.mesh` request.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use external_service_model::contract::MODULE_PATH;

use super::instructions::Counted;
use super::report::{fmt_range, values};
use super::throughput::{self, Plan};
use super::{config, log, med, minimal, Bench, Knobs, Throughput, TARGET_SERVICE};
use extsvc_testkit::runner;

/// The glue, relative to the workspace root.
const GLUE: &str = "filter/src/lib.rs";

/// The guard that skips the rewrite when the app already asked for the real authority.
const REWRITE_IF_CHANGED: &str = "if service.rewrites(requested) {";
/// The guard that keeps the requested authority only when it is rewritten (or, for a
/// MeshExternalService, its route rewrites it).
const KEEP_IF_REWRITTEN: &str = ".filter(|_| service.keeps_requested(requested))";
const PROPERTY: &str = "                if let Some(requested) = requested.filter(|_| service.keeps_requested(requested)) {
                    host::set_property(REQUESTED_AUTHORITY_PROPERTY, requested.as_bytes());
                }
";
/// The head of the exported request-headers callback: an early `return` there leaves only
/// Envoy's call into the VM.
const HEAD: &str =
    "pub extern \"C\" fn proxy_on_request_headers(stream: u32, _headers: u32, _end: u32) -> Action {\n";
const CONTINUE_AT_ONCE: &str = "    #[allow(unreachable_code)]
    if true {
        return Action::Continue;
    }
";

/// The filter state write of the requested authority, as a request header instead (a
/// replace of a header that is not there adds it): what a cheaper host call would buy. Not a
/// way to ship it: the header would go upstream, and removing it there removes it from the
/// access log too (the router edits the same header map).
const PROPERTY_AS_HEADER: &str = "host::set_request_header(\"x-requested-authority\", requested);";
const SET_PROPERTY: &str =
    "host::set_property(REQUESTED_AUTHORITY_PROPERTY, requested.as_bytes());";
/// The logger's static, after which a `proxy_on_delete` is exported again.
const LOGGER: &str = "static HOST_LOG: HostLog = HostLog;\n";
/// The callback the module no longer exports: Envoy then calls into the VM once more per
/// request, as it did.
const ON_DELETE: &str = "
#[no_mangle]
pub extern \"C\" fn proxy_on_delete(_context: u32) {}
";

/// One change to the glue, at a statement that must be there exactly once.
pub enum Edit {
    Drop(&'static str),
    /// Code put after the statement.
    After(&'static str, &'static str),
    /// Code put in place of the statement.
    Replace(&'static str, &'static str),
}

/// Module name -> the edits it is built with. Requests name the real authority, so as is the
/// filter reads and decides but writes nothing; the others add back the work of a `.mesh`
/// request (the rewrite, with and without the filter state, or with a header in its place),
/// or the `proxy_on_delete` the module no longer exports.
pub const VARIANTS: [(&str, &[Edit]); 7] = [
    ("as-is", &[]),
    (
        "rewrite-and-set_property",
        &[
            Edit::Replace(REWRITE_IF_CHANGED, "if true {"),
            Edit::Drop(KEEP_IF_REWRITTEN),
        ],
    ),
    (
        "rewrite-only",
        &[
            Edit::Replace(REWRITE_IF_CHANGED, "if true {"),
            Edit::Drop(PROPERTY),
        ],
    ),
    (
        "rewrite-and-header",
        &[
            Edit::Replace(REWRITE_IF_CHANGED, "if true {"),
            Edit::Drop(KEEP_IF_REWRITTEN),
            Edit::Replace(SET_PROPERTY, PROPERTY_AS_HEADER),
        ],
    ),
    (
        "rewrite-and-set_property-with-proxy_on_delete",
        &[
            Edit::Replace(REWRITE_IF_CHANGED, "if true {"),
            Edit::Drop(KEEP_IF_REWRITTEN),
            Edit::After(LOGGER, ON_DELETE),
        ],
    ),
    (
        "as-is-with-proxy_on_delete",
        &[Edit::After(LOGGER, ON_DELETE)],
    ),
    (
        "returns-Continue-at-once",
        &[Edit::After(HEAD, CONTINUE_AT_ONCE)],
    ),
];

/// `glue` with `edits` made, or which statement is no longer there exactly once.
pub fn edited(glue: &str, edits: &[Edit]) -> Result<String, String> {
    edits.iter().try_fold(glue.to_string(), |text, edit| {
        let (at, new) = match *edit {
            Edit::Drop(at) => (at, String::new()),
            Edit::After(at, code) => (at, format!("{at}{code}")),
            Edit::Replace(at, code) => (at, code.to_string()),
        };
        match text.matches(at).count() {
            1 => Ok(text.replacen(at, &new, 1)),
            n => Err(format!(
                "{GLUE}: the statement {:?} is there {n} times, not once",
                at.trim()
            )),
        }
    })
}

/// The committed tree in `scratch/src`, built once per `wanted` variant into
/// `scratch/<name>.wasm`: (name, module) for each, in [`VARIANTS`] order.
pub fn build(
    b: &Bench,
    scratch: &Path,
    wanted: &dyn Fn(&str) -> bool,
) -> Result<Vec<(String, PathBuf)>, String> {
    let src = scratch.join("src");
    if src.exists() {
        fs::remove_dir_all(&src).map_err(|e| format!("{}: {e}", src.display()))?;
    }
    fs::create_dir_all(&src).map_err(|e| format!("{}: {e}", src.display()))?;
    let tar = scratch.join("src.tar");
    let mut archive = Command::new("git");
    archive
        .arg("-C")
        .arg(&b.root)
        .args(["archive", "-o"])
        .arg(&tar)
        .arg("HEAD");
    let mut extract = Command::new("tar");
    extract.arg("-xf").arg(&tar).arg("-C").arg(&src);
    succeed(&mut archive, Duration::from_secs(120))?;
    succeed(&mut extract, Duration::from_secs(120))?;
    let glue = src.join(GLUE);
    let original = fs::read_to_string(&glue).map_err(|e| format!("{}: {e}", glue.display()))?;
    // Every variant's edits first: a changed glue fails before anything is built.
    let texts = VARIANTS
        .iter()
        .map(|(name, edits)| edited(&original, edits).map_err(|e| format!("{name}: {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    let target = scratch.join("target");
    let mut built = Vec::new();
    for ((name, _), text) in VARIANTS.iter().zip(texts).filter(|((n, _), _)| wanted(n)) {
        fs::write(&glue, text).map_err(|e| format!("{}: {e}", glue.display()))?;
        log(&format!("building {name}"));
        let mut cargo = Command::new("cargo");
        cargo
            .args(["build", "-q", "--release", "--target", "wasm32-wasip1"])
            .args(["-p", "external-service-filter"])
            .current_dir(&src)
            .env("CARGO_TARGET_DIR", &target);
        succeed(&mut cargo, Duration::from_secs(1800))?;
        let out = scratch.join(format!("{name}.wasm"));
        // MODULE_PATH is <root>/target/...: the same place under the scratch target.
        fs::copy(scratch.join(MODULE_PATH), &out).map_err(|e| format!("{}: {e}", out.display()))?;
        built.push((name.to_string(), out));
    }
    Ok(built)
}

/// The minimal modules (`minimal.rs`) compiled into `scratch`, named as in the table:
/// `floor`, `read-authority`, `rewrite-authority`.
fn minimal_modules(b: &Bench, scratch: &Path) -> Result<Vec<(String, PathBuf)>, String> {
    [
        ("floor", minimal::FLOOR),
        ("read-authority", minimal::READ),
        ("rewrite-authority", minimal::REWRITE),
    ]
    .into_iter()
    .map(|(name, m)| Ok((name.to_string(), m.compile(b, scratch)?)))
    .collect()
}

fn succeed(cmd: &mut Command, limit: Duration) -> Result<(), String> {
    let o = runner::run(cmd, limit)?;
    if o.status.success() {
        Ok(())
    } else {
        Err(format!("{cmd:?} failed ({}):\n{}", o.status, o.stderr))
    }
}

/// The Markdown table: each module's proxy CPU per request (median, range) and instructions
/// per request (callgrind), against as-is and against B, and requests/s.
pub fn table(t: &Throughput, counted: &BTreeMap<String, Counted>, kinds: &[&str]) -> String {
    let empty = Vec::new();
    let cpu = |k: &str| values(t.results.get(k).unwrap_or(&empty), "cpu_us");
    let instructions = |k: &str| counted.get(k).map_or(f64::NAN, Counted::per_request);
    let as_is = format!("A-{}", VARIANTS[0].0);
    let base = med(&cpu(&as_is));
    let native = med(&cpu("B"));
    let mut rows = vec![
        "| module | proxy CPU µs/request | vs as-is | vs native (B) | instructions per request | vs as-is | vs native (B) | requests/s |".to_string(),
        "|---|---:|---:|---:|---:|---:|---:|---:|".to_string(),
    ];
    for k in kinds {
        let c = cpu(k);
        let m = med(&c);
        let i = instructions(k);
        rows.push(format!(
            "| {k} | {} | {:+.2} | {:+.2} | {i:.0} | {:+.0} | {:+.0} | {} |",
            fmt_range(&c, 2),
            m - base,
            m - native,
            i - instructions(&as_is),
            i - instructions("B"),
            fmt_range(&values(t.results.get(*k).unwrap_or(&empty), "rps"), 0)
        ));
    }
    rows.join("\n")
}

/// Builds the modules, runs A with each and B (`knobs.rounds` rounds of `knobs.seconds`), and
/// returns [`table`]. `only` names the modules to run (a [`VARIANTS`] name, `floor`,
/// `read-authority`, `rewrite-authority`), all when empty; B always runs.
pub fn run(knobs: Knobs, only: &[String]) -> Result<String, String> {
    let names = module_names();
    if let Some(unknown) = only.iter().find(|n| !names.contains(&n.as_str())) {
        return Err(format!(
            "BENCH_HOSTCALLS_MODULES: no module {unknown:?}; there are {}",
            names.join(", ")
        ));
    }
    let wanted = |name: &str| only.is_empty() || only.iter().any(|n| n == name);
    let bench = Bench::start(knobs)?;
    let label = "hostcalls";
    let scratch = bench.work.join(label);
    let mut modules = if VARIANTS.iter().any(|(name, _)| wanted(name)) {
        build(&bench, &scratch, &wanted)?
    } else {
        Vec::new()
    };
    modules.extend(
        minimal_modules(&bench, &scratch)?
            .into_iter()
            .filter(|(name, _)| wanted(name)),
    );
    let names: Vec<String> = modules
        .iter()
        .map(|(n, _)| format!("A-{n}"))
        .chain(["B".to_string()])
        .collect();
    let kinds: Vec<(&str, Option<PathBuf>)> = names
        .iter()
        .map(String::as_str)
        .zip(modules.into_iter().map(|(_, p)| Some(p)).chain([None]))
        .collect();
    let host = config::address(&bench, TARGET_SERVICE, false, false);
    log(&format!(
        "throughput of A with each module, and B, to {host}"
    ));
    let t = throughput::run(
        &bench,
        &Plan {
            label,
            tls: false,
            kinds: &kinds,
            rounds: bench.knobs.rounds,
            seconds: bench.knobs.seconds,
            latency: false,
            host: &host,
            smoke: false,
        },
    )?;
    log("instructions per request of each, under callgrind");
    let counted = throughput::count(&bench, &t, &host)?;
    let order: Vec<&str> = kinds.iter().map(|(k, _)| *k).collect();
    Ok(table(&t, &counted, &order))
}

/// Every module `make bench-hostcalls` can run, in its order.
pub fn module_names() -> Vec<&'static str> {
    VARIANTS
        .iter()
        .map(|(name, _)| *name)
        .chain(["floor", "read-authority", "rewrite-authority"])
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Sample;

    const CURRENT_GLUE: &str = include_str!("../../filter/src/lib.rs");

    #[test]
    fn every_variant_applies_to_the_glue() {
        for (name, edits) in &VARIANTS {
            let text = edited(CURRENT_GLUE, edits).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(text == CURRENT_GLUE, edits.is_empty(), "{name}");
        }
    }

    #[test]
    fn a_missing_or_repeated_statement_fails() {
        let e = edited("a\n", &[Edit::Drop("b\n")]).unwrap_err();
        assert!(e.contains("0 times") && e.contains("\"b\""), "{e}");
        assert!(edited("b\nb\n", &[Edit::Drop("b\n")]).is_err());
        assert_eq!(
            edited("a\nb\n", &[Edit::Drop("b\n"), Edit::After("a\n", "y\n")]).unwrap(),
            "a\ny\n"
        );
    }

    #[test]
    fn the_table_compares_with_as_is_and_native() {
        let sample = |cpu_us| Sample {
            requests: 1,
            rps: 1000.0,
            p50: 0.0,
            p99: 0.0,
            cpu_us,
        };
        let mut t = Throughput::default();
        t.results
            .insert("A-as-is".into(), vec![sample(50.0), sample(52.0)]);
        t.results.insert("A-x".into(), vec![sample(48.0)]);
        t.results.insert("B".into(), vec![sample(40.0)]);
        let counted = [("A-as-is", 150_000), ("A-x", 140_000), ("B", 100_000)]
            .map(|(k, n)| {
                let c = Counted {
                    requests: 10,
                    instructions: n * 10 + 500,
                    seconds: 1.0,
                    idle_per_second: 500.0,
                };
                (k.to_string(), c)
            })
            .into();
        let table = table(&t, &counted, &["A-as-is", "A-x", "B"]);
        let rows: Vec<&str> = table.lines().collect();
        assert_eq!(
            rows[2],
            "| A-as-is | 51.00 (50.00–52.00) | +0.00 | +11.00 | 150000 | +0 | +50000 | 1000 (1000–1000) |"
        );
        assert_eq!(
            rows[3],
            "| A-x | 48.00 (48.00–48.00) | -3.00 | +8.00 | 140000 | -10000 | +40000 | 1000 (1000–1000) |"
        );
        assert_eq!(
            rows[4],
            "| B | 40.00 (40.00–40.00) | -11.00 | +0.00 | 100000 | -50000 | +0 | 1000 (1000–1000) |"
        );
    }
}
