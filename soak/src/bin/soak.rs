//! `make soak`: fixed-rate load through the generated configuration with TLS origination;
//! declared requests must be 2xx, undeclared ones 403 and never reach their upstream, and the
//! filter's VM memory and Envoy's RSS must stay flat. Writes soak/RESULTS.md and the "## Soak"
//! section of BENCHMARKS.md (nothing else in that file is touched); exits 1 when a check fails.
//! Everything runs on 127.0.0.1; every process started is stopped on exit, Ctrl-C included.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use extsvc_soak as soak;
use extsvc_testkit::runner;

/// Soak the generated configuration (see the file's doc comment).
#[derive(Parser, Debug)]
#[command(
    name = "soak",
    after_help = "Example: cargo run --release -p extsvc-soak --bin soak -- --seconds 10 --rate 50 --out /tmp/soak.md --results /tmp/soak-results.md"
)]
struct Args {
    /// How long the load runs, in seconds.
    #[arg(long, env = "SOAK_SECONDS", default_value_t = 600.0)]
    seconds: f64,
    /// Requests per second.
    #[arg(long, env = "SOAK_RATE", default_value_t = 200.0)]
    rate: f64,
    /// Every Nth request asks for the undeclared host.
    #[arg(long, default_value_t = 10)]
    undeclared_every: usize,
    /// Keep-alive connections.
    #[arg(long, default_value_t = 8)]
    workers: usize,
    /// Seconds before memory is judged.
    #[arg(long, default_value_t = 30.0)]
    warmup: f64,
    /// The file whose "## Soak" section is written [default: BENCHMARKS.md in the workspace].
    #[arg(long)]
    out: Option<PathBuf>,
    /// The results file written whole [default: soak/RESULTS.md in the workspace].
    #[arg(long)]
    results: Option<PathBuf>,
    /// Keep the work directory (configs, logs, certificates).
    #[arg(long)]
    keep: bool,
}

fn main() -> ExitCode {
    runner::install();
    let a = Args::parse();
    let root = runner::root();
    let opts = soak::Options {
        seconds: a.seconds,
        rate: a.rate,
        undeclared_every: a.undeclared_every,
        workers: a.workers,
        warmup: a.warmup,
        out: a.out.unwrap_or_else(|| root.join("BENCHMARKS.md")),
        results: a.results.unwrap_or_else(|| root.join("soak/RESULTS.md")),
        keep: a.keep,
    };
    match soak::run(&opts) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("soak: {e}");
            ExitCode::from(2)
        }
    }
}
