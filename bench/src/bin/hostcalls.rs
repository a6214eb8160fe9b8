//! `make bench-hostcalls`: what each per-request host call of the filter costs in Envoy (proxy
//! CPU per request), from scratch builds of the committed tree with one statement of the forward
//! path removed or added (see `extsvc_bench::hostcalls`). Prints a Markdown table.
//! Everything runs on 127.0.0.1; every process started is stopped on exit, Ctrl-C included.

use std::process::ExitCode;

use clap::Parser;
use extsvc_bench as bench;
use extsvc_testkit::runner;

/// Measure the filter's host calls (see the file's doc comment). Each flag also reads its
/// BENCH_* variable, as the bench does.
#[derive(Parser, Debug)]
#[command(
    name = "hostcalls",
    after_help = "Example (a quick check, not numbers to keep):\n  BENCH_ROUNDS=1 BENCH_SECONDS=1 cargo run --release -p extsvc-bench --bin hostcalls\nThe filter's .mesh request beside the minimal rewrite only (~8 min):\n  BENCH_HOSTCALLS_MODULES=rewrite-and-set_property,rewrite-authority BENCH_ROUNDS=1 BENCH_SECONDS=1 \\\n    cargo run --release -p extsvc-bench --bin hostcalls"
)]
struct Args {
    #[command(flatten)]
    run: bench::Rounds,
    /// The modules to run (comma list; all when not given): the filter's variants (as-is,
    /// rewrite-and-set_property, ...) and the minimal floor, read-authority, rewrite-authority.
    /// B (native) always runs.
    #[arg(long, env = "BENCH_HOSTCALLS_MODULES", value_delimiter = ',')]
    modules: Vec<String>,
}

fn main() -> ExitCode {
    runner::install();
    let a = Args::parse();
    if a.run.rounds == 0 {
        eprintln!("hostcalls: --rounds must be above 0");
        return ExitCode::from(2);
    }
    // Part 1's load and services, as `make bench` has them by default.
    let knobs = bench::Knobs {
        rounds: a.run.rounds,
        seconds: a.run.seconds.max(1),
        // No runs at 1 connection here.
        lat_seconds: 1,
        connections: bench::CONNECTIONS,
        services: bench::SERVICES,
        scale: Vec::new(),
        profiles: false,
        port_base: a.run.port_base,
        access_log: false,
        tproxy_rounds: 0,
        tproxy_seconds: 1,
        callgrind: Vec::new(),
        mpt_matches: Vec::new(),
        mpt_requests: 0,
        fleet_rounds: 0,
    };
    match bench::hostcalls::run(knobs, &a.modules) {
        Ok(table) => {
            println!("{table}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("hostcalls: {e}");
            ExitCode::from(1)
        }
    }
}
