//! `make bench`: the filter against native Envoy routes and Lua (proxy CPU per request,
//! requests/s, latency), the per-request cost inside the filter (fuel), release profiles,
//! scale to 10,000 services, A/B/C again through the transparent proxy, and Envoy with the
//! transparent proxy's MeshPassthrough at 10 and 10,000 matches. Writes BENCHMARKS.md (or
//! `--out`), keeping its "## Soak" section. Everything runs on 127.0.0.1, except parts 4 and
//! 5, which each run in two network namespaces of their own (joined to nothing else); every
//! process started is stopped and the namespaces removed on exit, Ctrl-C included.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use extsvc_bench as bench;
use extsvc_testkit::runner;

/// Benchmark the filter (see the file's doc comment). Each flag also reads its BENCH_* variable.
#[derive(Parser, Debug)]
#[command(
    name = "bench",
    after_help = "Example (a quick check, not numbers to keep):\n  BENCH_ROUNDS=1 BENCH_SECONDS=1 BENCH_SCALE=1,100 BENCH_PROFILES=0 BENCH_TPROXY_ROUNDS=1 BENCH_TPROXY_SECONDS=1 BENCH_MPT_REQUESTS=500 \\\n    cargo run --release -p extsvc-bench --bin bench -- --out /tmp/bench-check.md\nPart 5 alone:\n  BENCH_ONLY=mesh-passthrough BENCH_MPT_REQUESTS=500 \\\n    cargo run --release -p extsvc-bench --bin bench -- --out /tmp/bench-mpt.md\nPart 1's instruction counts alone, plain path (~7 min):\n  BENCH_ONLY=instructions BENCH_CALLGRIND=plain BENCH_ROUNDS=1 BENCH_SECONDS=1 \\\n    cargo run --release -p extsvc-bench --bin bench -- --out /tmp/bench-instructions.md"
)]
struct Args {
    #[command(flatten)]
    run: bench::Rounds,
    /// Seconds of each wrk run at 1 connection.
    #[arg(long, env = "BENCH_LAT_SECONDS", default_value_t = 3)]
    lat_seconds: u64,
    /// wrk connections.
    #[arg(long, env = "BENCH_CONNECTIONS", default_value_t = bench::CONNECTIONS)]
    connections: usize,
    /// ExternalServices in part 1.
    #[arg(long, env = "BENCH_SERVICES", default_value_t = bench::SERVICES)]
    services: usize,
    /// Service counts of part 3 (comma list).
    #[arg(
        long,
        env = "BENCH_SCALE",
        value_delimiter = ',',
        default_value = "10,1000,10000"
    )]
    scale: Vec<usize>,
    /// 0 skips the release profile study.
    #[arg(long, env = "BENCH_PROFILES", default_value_t = 1)]
    profiles: u8,
    /// 1 keeps the generated access log in every variant.
    #[arg(long, env = "BENCH_ACCESS_LOG", default_value_t = 0)]
    access_log: u8,
    /// Rounds of part 4 (A/B/C through the transparent proxy, root only); 0 skips it.
    #[arg(long, env = "BENCH_TPROXY_ROUNDS", default_value_t = 3)]
    tproxy_rounds: usize,
    /// Seconds of each of part 4's wrk runs.
    #[arg(long, env = "BENCH_TPROXY_SECONDS", default_value_t = 5)]
    tproxy_seconds: u64,
    /// Paths whose instructions per request are counted under callgrind (comma list of plain,
    /// tls, transparent, and profiles: A with each module of the release profile study, one at
    /// a time, ~4 min each); 0 counts none.
    #[arg(
        long,
        env = "BENCH_CALLGRIND",
        value_delimiter = ',',
        default_value = "plain,tls,transparent"
    )]
    callgrind: Vec<String>,
    /// MeshPassthrough match counts of part 5 (comma list; Envoy under callgrind with the
    /// transparent proxy's chains, root only); 0 skips it.
    #[arg(
        long,
        env = "BENCH_MPT_MATCHES",
        value_delimiter = ',',
        default_value = "10,10000"
    )]
    mpt_matches: Vec<usize>,
    /// Requests counted for each of part 5's four requests at each count.
    #[arg(long, env = "BENCH_MPT_REQUESTS", default_value_t = bench::instructions::COUNTED)]
    mpt_requests: usize,
    /// Part 6: how many times the fleet test runs (its convergence times; 0 skips it).
    #[arg(long, env = "BENCH_FLEET_ROUNDS", default_value_t = 3)]
    fleet_rounds: usize,
    /// `mesh-passthrough`: run part 5 alone and write only its section; `instructions`: part
    /// 1's instruction counts alone (A, B, C, and the minimal modules R and W) on the paths of
    /// BENCH_CALLGRIND (plain, tls). Both need --out.
    #[arg(long, env = "BENCH_ONLY")]
    only: Option<String>,
    /// The report [default: BENCHMARKS.md in the workspace].
    #[arg(long)]
    out: Option<PathBuf>,
}

fn main() -> ExitCode {
    runner::install();
    let a = Args::parse();
    if let Some(p) = a
        .callgrind
        .iter()
        .find(|p| !["0", "plain", "tls", "transparent", "profiles"].contains(&p.as_str()))
    {
        eprintln!("bench: BENCH_CALLGRIND takes plain, tls, transparent, profiles or 0, not {p:?}");
        return ExitCode::from(2);
    }
    if a.services < 43 || a.scale.contains(&0) || a.run.rounds == 0 {
        eprintln!("bench: --services must be at least 43 (requests go to svc-00042), --scale counts and --rounds above 0");
        return ExitCode::from(2);
    }
    let mpt_matches: Vec<usize> = a.mpt_matches.into_iter().filter(|&n| n != 0).collect();
    if mpt_matches.iter().any(|&n| n < 4) || a.mpt_requests == 0 {
        eprintln!("bench: BENCH_MPT_MATCHES counts must be 0 (skip) or at least 4 (an exact name and a wildcard for each protocol), BENCH_MPT_REQUESTS above 0");
        return ExitCode::from(2);
    }
    let only = match a.only.as_deref() {
        None => None,
        Some(part @ ("mesh-passthrough" | "instructions")) if a.out.is_some() => Some(part),
        Some("mesh-passthrough" | "instructions") => {
            eprintln!("bench: BENCH_ONLY writes a report of one part: give --out, so that BENCHMARKS.md stays whole");
            return ExitCode::from(2);
        }
        Some(other) => {
            eprintln!("bench: BENCH_ONLY takes mesh-passthrough or instructions, not {other:?}");
            return ExitCode::from(2);
        }
    };
    let knobs = bench::Knobs {
        rounds: a.run.rounds,
        seconds: a.run.seconds.max(1),
        lat_seconds: a.lat_seconds.max(1),
        connections: a.connections,
        services: a.services,
        scale: a.scale,
        profiles: a.profiles != 0,
        port_base: a.run.port_base,
        access_log: a.access_log == 1,
        tproxy_rounds: a.tproxy_rounds,
        tproxy_seconds: a.tproxy_seconds.max(1),
        callgrind: a.callgrind.into_iter().filter(|p| p != "0").collect(),
        mpt_matches,
        mpt_requests: a.mpt_requests,
        fleet_rounds: a.fleet_rounds,
    };
    let out = a
        .out
        .unwrap_or_else(|| runner::root().join("BENCHMARKS.md"));
    let ran = match only {
        Some("mesh-passthrough") => bench::run_mesh_passthrough_only(knobs, &out),
        Some(_) => bench::run_instructions_only(knobs, &out),
        None => bench::run(knobs, &out),
    };
    match ran {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench: {e}");
            ExitCode::from(1)
        }
    }
}
