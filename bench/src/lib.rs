//! The benchmark (`make bench`, `src/bin/bench.rs`): the filter against native Envoy routes and
//! Lua, the per-request cost inside the filter (fuel), release profiles, and scale to 10,000
//! services. Writes BENCHMARKS.md (or `--out`), keeping the "## Soak" section `make soak`
//! writes there.
//!
//! - [`config`]: the resources, `extsvc generate` under `/usr/bin/time`, and variants B and C
//!   made from the generated configuration.
//! - [`load`]: wrk, and the proxy's CPU time around it.
//! - [`throughput`]: part 1, A/B/C side by side in rotated rounds.
//! - [`instructions`]: the instructions each variant executes per request, under callgrind
//!   (parts 1 and 4).
//! - [`fuel`]: part 2 (`cargo bench -p host-tests --bench filter_cost`) and the profile builds.
//! - [`scale`]: part 3, generate and start at 10 .. 10,000 services.
//! - [`transparent`]: part 4, A/B/C through the transparent proxy's VIP listeners, in network
//!   namespaces.
//! - [`minimal`]: the least a proxy-wasm module can cost for this job (read `:authority`; read
//!   and rewrite it), counted beside A, B and C in part 1 and in `make bench-hostcalls`.
//! - [`mesh_passthrough`]: part 5, Envoy's instructions per request with the transparent
//!   proxy's MeshPassthrough at 10 and at 10,000 matches, in network namespaces.
//! - [`report`]: writes BENCHMARKS.md.
//! - [`hostcalls`]: what each host call of the forward path costs (`make bench-hostcalls`, not
//!   in `make bench`).

pub mod config;
pub mod fleet;
pub mod fuel;
pub mod hostcalls;
pub mod instructions;
pub mod load;
pub mod mesh_passthrough;
pub mod minimal;
pub mod report;
pub mod scale;
pub mod throughput;
pub mod transparent;

use std::collections::BTreeMap;
use std::fs;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use extsvc_testkit::runner::{self, Tracked};
use extsvc_testkit::{free_port, Ca, EnvoyOptions, Upstream, UpstreamBuilder};

/// The proxies under test run here; wrk and the upstream on [`LOAD_CPU`].
pub const PROXY_CPU: usize = 0;
pub const LOAD_CPU: usize = 1;
/// Every measured request asks for this service ([`name`] of [`TARGET_SERVICE`]).
pub const TARGET_HOST: &str = "svc-00042.mesh";
pub const TARGET_SERVICE: usize = 42;
const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// `make bench`'s wrk connections and part 1's service count, by default.
pub const CONNECTIONS: usize = 16;
pub const SERVICES: usize = 100;

/// The flags the `bench` and `hostcalls` binaries share; each also reads its `BENCH_*` variable.
#[derive(clap::Args, Clone, Debug)]
pub struct Rounds {
    /// Rounds of every variant, rotated.
    #[arg(long, env = "BENCH_ROUNDS", default_value_t = 5)]
    pub rounds: usize,
    /// Seconds of each wrk run at the configured connections.
    #[arg(long, env = "BENCH_SECONDS", default_value_t = 6)]
    pub seconds: u64,
    /// Fixed ports from here (upstream +80 and +443, proxies +101..+106) instead of free ones.
    #[arg(long, env = "BENCH_PORT_BASE")]
    pub port_base: Option<u16>,
}

/// What a run measures (the `BENCH_*` variables).
#[derive(Clone, Debug)]
pub struct Knobs {
    pub rounds: usize,
    pub seconds: u64,
    pub lat_seconds: u64,
    pub connections: usize,
    pub services: usize,
    pub scale: Vec<usize>,
    pub profiles: bool,
    /// Fixed ports from here (upstream +80/+443, proxies +101..+106); else free ports.
    pub port_base: Option<u16>,
    /// Keep the generated access log in every variant.
    pub access_log: bool,
    /// Part 4's rounds (0 skips it) and seconds per wrk run.
    pub tproxy_rounds: usize,
    pub tproxy_seconds: u64,
    /// The paths (`plain`, `tls`, `transparent`, and `profiles` for the release profile study)
    /// whose variants' instructions per request are counted under callgrind.
    pub callgrind: Vec<String>,
    /// Part 5's match counts (none skips it) and requests counted per request kind.
    pub mpt_matches: Vec<usize>,
    pub mpt_requests: usize,
    /// Part 6: how many times the fleet test runs (0 skips it).
    pub fleet_rounds: usize,
}

/// Service `i`'s name: fixed width, so that strings have the same length at every count.
pub fn name(i: usize) -> String {
    format!("svc-{i:05}")
}

/// `[bench HH:MM:SS] msg` on stderr.
pub fn log(msg: &str) {
    let s = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
        % 86_400;
    eprintln!(
        "[bench {:02}:{:02}:{:02}] {msg}",
        s / 3600,
        s / 60 % 60,
        s % 60
    );
}

/// Round `r`'s order: `items` turned left by `r` (ABC, BCA, CAB, ...), so that a slow phase
/// of the machine does not always hit the same variant.
pub fn rotated<T>(items: &[T], r: usize) -> impl Iterator<Item = &T> {
    let shift = r % items.len().max(1);
    items[shift..].iter().chain(&items[..shift])
}

/// Logs one measured wrk run of round `r` (from 0).
pub fn log_sample(label: &str, r: usize, rounds: usize, kind: &str, s: &Sample) {
    log(&format!(
        "{label} round {}/{rounds} {kind}: {:.0} req/s, {:.1} us CPU/req, p99 {:.0} us",
        r + 1,
        s.rps,
        s.cpu_us,
        s.p99
    ));
}

/// The statistics module's median (mean of the middle two for an even count).
pub fn med(xs: &[f64]) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

pub fn min(xs: &[f64]) -> f64 {
    xs.iter().copied().fold(f64::INFINITY, f64::min)
}

pub fn max(xs: &[f64]) -> f64 {
    xs.iter().copied().fold(f64::NEG_INFINITY, f64::max)
}

/// One wrk run against one proxy.
#[derive(Clone, Debug)]
pub struct Sample {
    pub requests: u64,
    pub rps: f64,
    /// Latency percentiles in µs.
    pub p50: f64,
    pub p99: f64,
    /// Proxy CPU time per request, µs.
    pub cpu_us: f64,
}

impl Sample {
    pub fn get(&self, key: &str) -> f64 {
        match key {
            "rps" => self.rps,
            "p50" => self.p50,
            "p99" => self.p99,
            "cpu_us" => self.cpu_us,
            _ => f64::NAN,
        }
    }
}

/// Part 1's results for one upstream kind (plain or TLS) or the profile study.
#[derive(Clone, Debug, Default)]
pub struct Throughput {
    /// Variant -> one sample per round at the configured connections.
    pub results: BTreeMap<String, Vec<Sample>>,
    /// Variant -> one sample per round at 1 connection.
    pub latency: BTreeMap<String, Vec<Sample>>,
    pub gen_cmd: Vec<String>,
    pub wrk_cmd: Vec<String>,
    pub lat_cmd: Vec<String>,
    pub dir: PathBuf,
}

/// The fixed parts of a run: where it works, the upstream, the certificates, the binaries.
pub struct Bench {
    pub knobs: Knobs,
    pub root: PathBuf,
    pub work: PathBuf,
    pub extsvc: PathBuf,
    pub wasm: PathBuf,
    /// The CA that signed the upstream's certificate (SANs: every service host).
    pub ca: Ca,
    pub upstream_http: u16,
    pub upstream_tls: u16,
    pub dns: SocketAddr,
    /// Proxy listener port per variant letter (A, B, C, S, and R and W: the minimal modules).
    ports: BTreeMap<char, u16>,
    // Drop order: untracked, then the upstream is killed.
    _tracked: Tracked,
    _upstream: Upstream,
}

impl Bench {
    /// Makes the certificates and starts the upstream Envoy (pinned to [`LOAD_CPU`]):
    /// `direct_response` 200 on plain HTTP and on TLS 1.2..1.3, and DNS for every service host.
    pub fn start(knobs: Knobs) -> Result<Bench, String> {
        let root = runner::root();
        let work = root.join("target/bench");
        let certs = work.join("certs");
        fs::create_dir_all(&certs).map_err(|e| format!("{}: {e}", certs.display()))?;
        let ca = Ca::new(&certs, "bench-ca");
        let hosts: Vec<String> = (0..knobs.services)
            .map(|i| format!("{}.bench.test", name(i)))
            .collect();
        let host_refs: Vec<&str> = hosts.iter().map(String::as_str).collect();
        let server = ca.server_cert(&certs, "server", &host_refs, &[]);
        let mut b = UpstreamBuilder::new().without_echo().plain("http");
        if let Some(base) = knobs.port_base {
            b = b.at(SocketAddr::new(LOCALHOST, base + 80));
        }
        b = b.tls("tls", &server);
        if let Some(base) = knobs.port_base {
            b = b.at(SocketAddr::new(LOCALHOST, base + 443));
        }
        for h in &hosts {
            b = b.dns(h, &[LOCALHOST]);
        }
        runner::check()?;
        let upstream = runner::on_cpu(Some(LOAD_CPU), || b.start_named(&work, "upstream"));
        let tracked = Tracked::new(upstream.envoy.pid().unwrap_or(0));
        let dns = upstream
            .dns_addr()
            .ok_or("the upstream has no DNS listener")?;
        let ports = ['A', 'B', 'C', 'S', 'R', 'W']
            .iter()
            .enumerate()
            .map(|(i, k)| {
                let port = match knobs.port_base {
                    Some(base) => base + 101 + i as u16,
                    None => free_port(),
                };
                (*k, port)
            })
            .collect();
        Ok(Bench {
            extsvc: canonical(extsvc_testkit::extsvc_binary()),
            wasm: canonical(extsvc_testkit::wasm_module()),
            upstream_http: upstream.port("http"),
            upstream_tls: upstream.port("tls"),
            dns,
            ports,
            knobs,
            root,
            work,
            ca,
            _tracked: tracked,
            _upstream: upstream,
        })
    }

    /// The listener port of variant `kind` (its first letter counts: `A-o3` is A's).
    pub fn port(&self, kind: &str) -> u16 {
        let letter = kind.chars().next().unwrap_or('A');
        self.ports.get(&letter).copied().unwrap_or(0)
    }

    /// How the proxies run: `-l error`, up to 120 s to get ready.
    pub fn envoy_options(&self) -> EnvoyOptions {
        EnvoyOptions {
            log_level: "error".to_string(),
            ready_timeout: Duration::from_secs(120),
            ..EnvoyOptions::default()
        }
    }

    /// A path relative to the workspace root, for the report.
    pub fn rel(&self, p: &Path) -> String {
        p.strip_prefix(&self.root)
            .unwrap_or(p)
            .display()
            .to_string()
    }
}

fn canonical(p: PathBuf) -> PathBuf {
    p.canonicalize().unwrap_or(p)
}

/// Everything a run measured, for the report.
pub struct Results {
    pub machine: report::Machine,
    pub plain: Throughput,
    pub tls: Throughput,
    pub cost_cmd: Vec<String>,
    pub cost_out: String,
    /// (name, module path, build command)
    pub prof_built: Vec<(String, PathBuf, String)>,
    pub prof_t: Option<Throughput>,
    pub scale: Vec<scale::Row>,
    pub transparent: Option<Throughput>,
    pub mesh_passthrough: Option<mesh_passthrough::Cost>,
    /// Part 6: the fleet's convergence, when run.
    pub fleet: Option<fleet::Convergence>,
    /// Path (`plain`, `tls`, `transparent`, `profiles`) -> variant -> instructions, when counted.
    pub instructions: BTreeMap<String, BTreeMap<String, instructions::Counted>>,
    pub elapsed: Duration,
}

/// The whole `make bench`: parts 1, 2, the profile study, parts 3 and 4, then the report.
pub fn run(knobs: Knobs, out: &Path) -> Result<(), String> {
    let started = Instant::now();
    let mut machine = report::Machine::now(&knobs);
    log(&format!(
        "machine: {} x {}, load {}",
        machine.nproc, machine.cpu, machine.load
    ));
    let bench = Bench::start(knobs.clone())?;
    log("part 1: plain HTTP upstream");
    let mut counted = BTreeMap::new();
    let minimal = minimal_modules(&bench)?;
    let mut part1_counted = |label: &'static str, tls: bool| -> Result<Throughput, String> {
        let t = throughput::run(&bench, &part1(label, tls, &knobs))?;
        if knobs.callgrind.iter().any(|p| p == label) {
            counted.insert(label.to_string(), part1_count(&bench, &t, tls, &minimal)?);
        }
        Ok(t)
    };
    let plain = part1_counted("plain", false)?;
    log("part 1: TLS origination");
    let tls = part1_counted("tls", true)?;
    let prof_built = if knobs.profiles {
        fuel::build_profiles(&bench)?
    } else {
        Vec::new()
    };
    log("part 2: fuel");
    let mut modules = vec![(
        "release (opt-level 3, then wasm-opt -O3: as built)".to_string(),
        bench.wasm.clone(),
    )];
    modules.extend(prof_built.iter().map(|(n, p, _)| (n.clone(), p.clone())));
    let (cost_cmd, cost_out) = fuel::filter_cost(&bench, &modules)?;
    let prof_t = if prof_built.is_empty() {
        None
    } else {
        log("profile study: throughput of A with each module");
        let kinds: Vec<(String, Option<PathBuf>)> = prof_built
            .iter()
            .map(|(n, p, _)| (format!("A-{n}"), Some(p.clone())))
            .collect();
        let kinds: Vec<(&str, Option<PathBuf>)> =
            kinds.iter().map(|(k, p)| (k.as_str(), p.clone())).collect();
        Some(throughput::run(
            &bench,
            &throughput::Plan {
                label: "profiles",
                tls: false,
                kinds: &kinds,
                rounds: (knobs.rounds / 2).max(2),
                seconds: (knobs.seconds / 2).max(3),
                latency: false,
                host: TARGET_HOST,
                smoke: true,
            },
        )?)
    };
    if let Some(t) = prof_t
        .as_ref()
        .filter(|_| knobs.callgrind.iter().any(|p| p == "profiles"))
    {
        log("profile study: instructions per request of A with each module, under callgrind");
        counted.insert(
            "profiles".to_string(),
            throughput::count(&bench, t, TARGET_HOST)?,
        );
    }
    log("part 3: scale");
    let scale = scale::run(&bench)?;
    let transparent = if knobs.tproxy_rounds > 0 {
        log("part 4: through the transparent proxy");
        let (t, c) = transparent::run(&bench, knobs.tproxy_rounds, knobs.tproxy_seconds)?;
        if let Some(c) = c {
            counted.insert("transparent".to_string(), c);
        }
        Some(t)
    } else {
        None
    };
    let mesh_passthrough = part5(&bench)?;
    let fleet = match knobs.fleet_rounds {
        0 => None,
        rounds => {
            log("part 6: a fleet on ConfigMap volumes (the fleet test)");
            Some(fleet::run(&bench, rounds)?)
        }
    };
    let elapsed = started.elapsed();
    machine.load_after = runner::load_average(true);
    let results = Results {
        machine,
        plain,
        tls,
        cost_cmd,
        cost_out,
        prof_built,
        prof_t,
        scale,
        transparent,
        mesh_passthrough,
        fleet,
        instructions: counted,
        elapsed,
    };
    report::write(&bench, &results, out)?;
    log(&format!(
        "wrote {} in {:.0} s",
        out.display(),
        elapsed.as_secs_f64()
    ));
    Ok(())
}

/// Part 1's variants.
const ABC: [(&str, Option<PathBuf>); 3] = [("A", None), ("B", None), ("C", None)];

/// Part 1 on one path: A, B and C side by side in rotated rounds, to [`TARGET_HOST`].
fn part1<'a>(label: &'a str, tls: bool, knobs: &Knobs) -> throughput::Plan<'a> {
    throughput::Plan {
        label,
        tls,
        kinds: &ABC,
        rounds: knobs.rounds,
        seconds: knobs.seconds,
        latency: true,
        host: TARGET_HOST,
        smoke: true,
    }
}

/// Part 1's instruction counts on the path `t` ran: A, B and C, and the minimal modules.
fn part1_count(
    bench: &Bench,
    t: &Throughput,
    tls: bool,
    minimal: &[(&str, PathBuf)],
) -> Result<BTreeMap<String, instructions::Counted>, String> {
    log("part 1: instructions per request under callgrind, with the minimal modules");
    let real = config::address(bench, TARGET_SERVICE, tls, false);
    let limits = throughput::Limits {
        real: &real,
        modules: minimal,
    };
    throughput::count_with_limits(bench, t, TARGET_HOST, Some(&limits))
}

/// Part 1's instruction counts alone (`BENCH_ONLY=instructions`) on the paths of
/// `BENCH_CALLGRIND` (plain, tls): each path's rounds (keep them short: their CPU figures are
/// not reported), then the counts; the report in `out`.
pub fn run_instructions_only(knobs: Knobs, out: &Path) -> Result<(), String> {
    let started = Instant::now();
    let mut machine = report::Machine::now(&knobs);
    let bench = Bench::start(knobs.clone())?;
    let minimal = minimal_modules(&bench)?;
    let mut counted = BTreeMap::new();
    for (label, tls) in [("plain", false), ("tls", true)] {
        if knobs.callgrind.iter().any(|p| p == label) {
            let t = throughput::run(&bench, &part1(label, tls, &knobs))?;
            counted.insert(label.to_string(), part1_count(&bench, &t, tls, &minimal)?);
        }
    }
    if counted.is_empty() {
        return Err("BENCH_CALLGRIND names neither plain nor tls: nothing to count".to_string());
    }
    machine.load_after = runner::load_average(true);
    report::write_instructions_only(&machine, &counted, started.elapsed(), out)?;
    log(&format!("wrote {}", out.display()));
    Ok(())
}

/// Part 1's minimal modules, compiled: (kind, module).
fn minimal_modules(bench: &Bench) -> Result<Vec<(&'static str, PathBuf)>, String> {
    let dir = bench.work.join("minimal");
    [minimal::READ, minimal::REWRITE]
        .iter()
        .map(|m| Ok((m.kind, m.compile(bench, &dir)?)))
        .collect()
}

/// Part 5, unless `BENCH_MPT_MATCHES` names no count.
fn part5(bench: &Bench) -> Result<Option<mesh_passthrough::Cost>, String> {
    if bench.knobs.mpt_matches.is_empty() {
        return Ok(None);
    }
    log("part 5: MeshPassthrough's filter chains in Envoy, under callgrind");
    mesh_passthrough::run(bench).map(Some)
}

/// Part 5 alone (`BENCH_ONLY=mesh-passthrough`): its section, after the machine's, in `out`.
pub fn run_mesh_passthrough_only(knobs: Knobs, out: &Path) -> Result<(), String> {
    let started = Instant::now();
    let mut machine = report::Machine::now(&knobs);
    let bench = Bench::start(knobs)?;
    let cost = part5(&bench)?.ok_or("BENCH_MPT_MATCHES names no count: nothing to run")?;
    machine.load_after = runner::load_average(true);
    report::write_mesh_passthrough_only(&bench, &machine, &cost, started.elapsed(), out)?;
    log(&format!("wrote {}", out.display()));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::rotated;

    #[test]
    fn rounds_rotate() {
        let order = |r| rotated(&['A', 'B', 'C'], r).collect::<String>();
        assert_eq!(
            [order(0), order(1), order(2), order(3)],
            ["ABC", "BCA", "CAB", "ABC"]
        );
    }
}
