//! BENCHMARKS.md: targets, part 1 tables and ratios, fuel, profiles, scale, the transparent
//! proxy (parts 4 and 5), the hand-written notes (`bench/NOTES.md`), and the "## Soak" section
//! kept from the file as it was; or part 5's section alone (`BENCH_ONLY`).

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::time::Duration;

use super::instructions::{callgrind, Counted, COUNTED, IDLE, WARM_UP};
use super::mesh_passthrough::{self as mpt, Cost, Request};
use super::minimal;
use super::throughput::A_REAL;
use super::{
    max, med, min, Bench, Knobs, Results, Sample, Throughput, LOAD_CPU, PROXY_CPU, TARGET_HOST,
};
use extsvc_testkit::runner::{self, sh};

/// The machine and versions, read at the start of a run.
#[derive(Clone, Debug)]
pub struct Machine {
    pub date: String,
    pub nproc: String,
    pub cpu: String,
    pub kernel: String,
    pub debian: String,
    pub envoy: String,
    pub wrk: String,
    pub rustc: String,
    pub wasm_opt: String,
    pub commit: String,
    pub load: String,
    pub load_after: String,
    pub knobs: Knobs,
}

impl Machine {
    pub fn now(knobs: &Knobs) -> Machine {
        let root = runner::root();
        let dirty = !sh(&format!(
            "git -C '{}' status --porcelain --untracked-files=no",
            root.display()
        ))
        .is_empty();
        let wasm_opt = sh("wasm-opt --version 2>/dev/null");
        Machine {
            date: runner::utc_now(),
            nproc: sh("nproc"),
            cpu: sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2")
                .trim()
                .to_string(),
            kernel: sh("uname -r"),
            debian: sh("cat /etc/debian_version"),
            envoy: sh(&format!(
                "'{}' --version",
                extsvc_testkit::envoy_binary().display()
            )),
            wrk: sh("wrk --version 2>&1 | head -1"),
            rustc: sh("rustc --version"),
            wasm_opt: if wasm_opt.is_empty() {
                "not installed".to_string()
            } else {
                wasm_opt
            },
            commit: format!(
                "{}{}",
                runner::commit(),
                if dirty { " (dirty tree)" } else { "" }
            ),
            load: runner::load_average(true),
            load_after: String::new(),
            knobs: knobs.clone(),
        }
    }
}

/// `median (min–max)` with `decimals` decimals; `–` for none.
pub(super) fn fmt_range(xs: &[f64], decimals: usize) -> String {
    if xs.is_empty() {
        return "–".to_string();
    }
    format!(
        "{:.d$} ({:.d$}–{:.d$})",
        med(xs),
        min(xs),
        max(xs),
        d = decimals
    )
}

/// One [`Sample`] field of every sample.
pub(super) fn values(rs: &[Sample], key: &str) -> Vec<f64> {
    rs.iter().map(|s| s.get(key)).collect()
}

/// Ratios of medians, and the range of the per-round (paired) ratios.
struct Ratios {
    of: BTreeMap<&'static str, (f64, f64, f64)>,
    p99_added_1c: Option<f64>,
}

impl Ratios {
    fn new(t: &Throughput, a: &str, b: &str) -> Ratios {
        let empty = Vec::new();
        let ra = t.results.get(a).unwrap_or(&empty);
        let rb = t.results.get(b).unwrap_or(&empty);
        let mut of = BTreeMap::new();
        for key in ["cpu_us", "rps", "p99"] {
            let paired: Vec<f64> = ra
                .iter()
                .zip(rb)
                .map(|(x, y)| x.get(key) / y.get(key))
                .collect();
            of.insert(
                key,
                (
                    med(&values(ra, key)) / med(&values(rb, key)),
                    min(&paired),
                    max(&paired),
                ),
            );
        }
        let la = t.latency.get(a).unwrap_or(&empty);
        let lb = t.latency.get(b).unwrap_or(&empty);
        let p99_added_1c = (!la.is_empty() && !lb.is_empty())
            .then(|| med(&values(la, "p99")) - med(&values(lb, "p99")));
        Ratios { of, p99_added_1c }
    }

    fn get(&self, key: &str) -> f64 {
        self.of.get(key).map_or(f64::NAN, |r| r.0)
    }

    fn fmt(&self, key: &str) -> String {
        let (m, lo, hi) = self
            .of
            .get(key)
            .copied()
            .unwrap_or((f64::NAN, f64::NAN, f64::NAN));
        format!("{m:.3} ({lo:.3}–{hi:.3})")
    }

    fn added(&self) -> String {
        self.p99_added_1c
            .map_or("–".to_string(), |a| format!("{a:+.0} µs"))
    }
}

fn throughput_table(t: &Throughput, kinds: &[&str], names: &BTreeMap<&str, &str>) -> String {
    let mut rows = vec![
        "| variant | requests/s | p50 µs | p99 µs | proxy CPU µs/request | p50 µs at 1 connection | p99 µs at 1 connection |".to_string(),
        "|---|---:|---:|---:|---:|---:|---:|".to_string(),
    ];
    let empty = Vec::new();
    for k in kinds {
        let r = t.results.get(*k).unwrap_or(&empty);
        let lat = t.latency.get(*k).unwrap_or(&empty);
        rows.push(format!(
            "| {} | {} | {} | {} | {} | {} | {} |",
            names.get(k).copied().unwrap_or(k),
            fmt_range(&values(r, "rps"), 0),
            fmt_range(&values(r, "p50"), 0),
            fmt_range(&values(r, "p99"), 0),
            fmt_range(&values(r, "cpu_us"), 2),
            fmt_range(&values(lat, "p50"), 0),
            fmt_range(&values(lat, "p99"), 0),
        ));
    }
    rows.join("\n")
}

/// `x`'s instructions per request over `y`'s; NaN when either was not counted.
fn instruction_ratio(c: &BTreeMap<String, Counted>, x: &str, y: &str) -> f64 {
    match (c.get(x), c.get(y)) {
        (Some(x), Some(y)) => x.per_request() / y.per_request(),
        _ => f64::NAN,
    }
}

fn instructions_table(c: &BTreeMap<String, Counted>) -> String {
    let mut rows = vec![
        "| variant | instructions per request (callgrind) | vs B | vs C | added over B |"
            .to_string(),
        "|---|---:|---:|---:|---:|".to_string(),
    ];
    let b = c.get("B").map_or(f64::NAN, Counted::per_request);
    for (kind, n) in c {
        rows.push(format!(
            "| {kind} | {:.0} | {:.3} | {:.3} | {:+.0} |",
            n.per_request(),
            instruction_ratio(c, kind, "B"),
            instruction_ratio(c, kind, "C"),
            n.per_request() - b
        ));
    }
    rows.join("\n") + "\n"
}

/// The targets of the request-path issue: proxy CPU per request and requests/s of the filter
/// against native routes, and Envoy LIVE with the filter at 10,000 services.
const CPU_RATIO_TARGET: f64 = 1.08;
const RPS_RATIO_TARGET: f64 = 0.93;
const LIVE_AFTER_NATIVE_TARGET_S: f64 = 0.3;
/// The filter against the minimal modules, in instructions per request (issue 25).
const MINIMAL_RATIO_TARGET: f64 = 1.02;

/// The filter over each minimal module on the request both serve, when counted: (what, ratio).
fn limit_ratios(c: &BTreeMap<String, Counted>) -> Vec<(String, f64)> {
    [
        ("A's `.mesh` request", "A", minimal::REWRITE),
        ("A's request to the real authority", A_REAL, minimal::READ),
    ]
    .into_iter()
    .map(|(what, a, m)| {
        (
            format!("{what} over {} ({})", m.kind, m.does),
            instruction_ratio(c, a, m.kind),
        )
    })
    .filter(|(_, ratio)| !ratio.is_nan())
    .collect()
}

fn ok(c: bool) -> &'static str {
    if c {
        "met"
    } else {
        "**missed**"
    }
}

fn bold_ok(c: bool) -> &'static str {
    if c {
        "**met**"
    } else {
        "**missed**"
    }
}

/// The machine and versions, and how long the run took.
fn machine_lines(m: &Machine, elapsed: Duration) -> Vec<String> {
    vec![
        "## Machine and versions\n".into(),
        format!(
            "- Date: {}; commit {}; whole run {:.1} min",
            m.date,
            m.commit,
            elapsed.as_secs_f64() / 60.0
        ),
        format!(
            "- `nproc`: {}; CPU: {}; kernel {}; Debian {}",
            m.nproc, m.cpu, m.kernel, m.debian
        ),
        format!(
            "- Load average before / after: `{}` / `{}` (the machine is shared)",
            m.load, m.load_after
        ),
        format!("- Envoy: `{}`", m.envoy),
        format!(
            "- wrk: `{}`; {}; wasm-opt: {}\n",
            m.wrk, m.rustc, m.wasm_opt
        ),
    ]
}

/// Instructions per request of part 5 may grow this much from the fewest matches to the most,
/// as per-request fuel may in the filter (part 2).
const MPT_RATIO_TARGET: f64 = 1.10;

/// The largest of part 5's ratios (most matches over fewest), over the four requests.
fn mpt_worst_ratio(c: &Cost) -> f64 {
    Request::ALL
        .iter()
        .map(|&r| c.ratio(r))
        .fold(f64::NEG_INFINITY, f64::max)
}

/// Part 5's target row.
fn mpt_target(c: &Cost) -> String {
    let counts: Vec<&usize> = c.counted.keys().collect();
    let (fewest, most) = (
        counts.first().map_or(0, |n| **n),
        counts.last().map_or(0, |n| **n),
    );
    let worst = mpt_worst_ratio(c);
    format!(
        "| Envoy's MeshPassthrough chains (transparent proxy): instructions per request {fewest} -> {most} matches <= +{:.0}% | worst x{worst:.3} | {} |",
        (MPT_RATIO_TARGET - 1.0) * 100.0,
        ok(worst <= MPT_RATIO_TARGET)
    )
}

/// Part 5's section: setup, then instructions per request by request and match count.
/// `dir`: where its files are, as the report names it.
fn mesh_passthrough_section(c: &Cost, kn: &Knobs, dir: &str) -> Vec<String> {
    let mut l = vec![
        "## 5. MeshPassthrough in Envoy: the transparent proxy's capture listener at scale\n".to_string(),
        format!(
            "Setup: two network namespaces of its own, as in part 4 (`extsvc transparent-proxy install --envoy-uid 5678` in the app's). \
             The Mesh's passthrough off and one MeshPassthrough (`Matched`) of N `appendMatch` entries: N/2 `Domain` with protocol `http` \
             on port {http} and N/2 with protocol `tls` on port {tls}, the same values in both, alternately an exact name (`{e0}`, `{e2}`, ...) \
             and a wildcard (`{w1}`, `{w3}`, ...), of {lengths} lengths (the first label is padded): Envoy looks a wildcard `Host` up \
             once per distinct length of the wildcard domains, longest first, and an SNI once per label. `extsvc generate --transparent-proxy` \
             makes them the capture listeners' filter chains (IPv4 and IPv6): `server_names` for SNI, one virtual host's domains for `Host`, \
             both to the dynamic forward proxy. The proxy Envoy (uid 5678, `--concurrency 1`, access logs removed as in part 1) runs \
             under callgrind, one N at a time; each request is sent once (it must get through), then each is counted in turn: \
             {warm} to warm up (no wasm and no Lua on this path: connections and the DNS cache), {idle} s idle, then {n} one after another, \
             per request as in part 1. `Host`: `GET /get` with `Host: NAME:{http}` on one kept-alive connection to the world's address, \
             port {http}, which the rules capture. SNI: a connection per request to port {tls}, captured, that sends a TLS ClientHello \
             naming NAME, which Envoy's TLS inspector reads; the world's TCP echo server sends it back; then closed (no handshake: \
             Envoy passes TLS through). NAME: `{exact}`, and under `{w1}` `{wild}`, longer than every wildcard, so that every length \
             is tried.\n",
            http = mpt::HTTP_PORT,
            tls = mpt::TLS_PORT,
            e0 = mpt::value(0),
            e2 = mpt::value(2),
            w1 = mpt::value(1),
            w3 = mpt::value(3),
            lengths = mpt::LENGTHS,
            warm = mpt::WARM_UP,
            idle = IDLE.as_secs(),
            n = kn.mpt_requests,
            exact = mpt::exact_name(),
            wild = mpt::wildcard_name(),
        ),
    ];
    let counts: Vec<usize> = c.counted.keys().copied().collect();
    let (first, last) = (counts.first().copied(), counts.last().copied());
    let header: String = counts.iter().map(|n| format!(" {n} matches |")).collect();
    let ratio_header = match (first, last) {
        (Some(f), Some(t)) if f != t => format!(" {t}/{f} |"),
        _ => String::new(),
    };
    l.push(format!(
        "| instructions per request (callgrind) |{header}{ratio_header}"
    ));
    l.push(format!(
        "|---|{}{}",
        "---:|".repeat(counts.len()),
        if ratio_header.is_empty() { "" } else { "---:|" }
    ));
    for request in Request::ALL {
        let cells: String = counts
            .iter()
            .map(|n| {
                c.counted
                    .get(n)
                    .and_then(|r| r.get(&request))
                    .map_or(" ? |".to_string(), |x| format!(" {:.0} |", x.per_request()))
            })
            .collect();
        let ratio = if ratio_header.is_empty() {
            String::new()
        } else {
            format!(" {:.3} |", c.ratio(request))
        };
        l.push(format!("| {} |{cells}{ratio}", request.title()));
    }
    let bytes: String = counts
        .iter()
        .map(|n| format!(" {} |", c.config_bytes.get(n).copied().unwrap_or(0)))
        .collect();
    l.push(format!(
        "| configuration bytes |{bytes}{}\n",
        if ratio_header.is_empty() { "" } else { " |" }
    ));
    l.push(format!(
        "Command: `{}`. Configurations, logs and callgrind dumps: `{dir}/`.\n",
        c.gen_cmd.join(" "),
    ));
    l
}

/// Part 6's section: each update of the fleet test, the time to the last Envoy serving it.
fn fleet_section(f: &super::fleet::Convergence) -> Vec<String> {
    let mut l = vec![
        "\n## Part 6: a fleet on ConfigMap volumes\n".to_string(),
        format!(
            "`{}`: three egress replicas and two sidecars, each its own Envoy in a network \
             namespace, reading volumes the test updates with the kubelet's atomic-writer steps, \
             under steady load (the test asserts no failed request and no rejected update). The \
             time from the `..data` swap to the last Envoy serving the change (what the \
             kubelet's sync delay adds in a cluster, up to a minute, is not in it):\n",
            f.command
        ),
        "| update | Envoys | to the last Envoy serving it (ms) |".to_string(),
        "|---|---:|---:|".to_string(),
    ];
    l.extend(
        f.steps
            .iter()
            .map(|s| format!("| {} | {} | {} |", s.name, s.envoys, s.millis)),
    );
    l
}

/// Part 5's report alone (`BENCH_ONLY=mesh-passthrough`): the machine, its target and its
/// section.
pub fn write_mesh_passthrough_only(
    b: &Bench,
    m: &Machine,
    c: &Cost,
    elapsed: Duration,
    out: &Path,
) -> Result<(), String> {
    let mut l = vec![
        "# Benchmarks: part 5 alone\n".to_string(),
        "Written by `BENCH_ONLY=mesh-passthrough` (`bench/src/bin/bench.rs`): part 5 of `make bench` alone.\n"
            .to_string(),
    ];
    l.extend(machine_lines(m, elapsed));
    l.push("| target | result | |\n|---|---|---|".into());
    l.push(mpt_target(c) + "\n");
    l.extend(mesh_passthrough_section(c, &m.knobs, &b.rel(&c.dir)));
    fs::write(out, l.join("\n") + "\n").map_err(|e| format!("writing {}: {e}", out.display()))
}

/// The targets' rows that instruction counts answer, for one path (`title`).
fn instruction_targets(c: &BTreeMap<String, Counted>, title: &str) -> Vec<String> {
    let (ab, ac) = (
        instruction_ratio(c, "A", "B"),
        instruction_ratio(c, "A", "C"),
    );
    let mut rows = vec![
        format!(
            "| A/B proxy instructions per request <= {CPU_RATIO_TARGET} ({title}) | {ab:.3} | {} |",
            ok(ab <= CPU_RATIO_TARGET)
        ),
        format!(
            "| A cheaper than C, instructions per request ({title}) | A/C {ac:.3} | {} |",
            ok(ac < 1.0)
        ),
    ];
    rows.extend(limit_ratios(c).into_iter().map(|(what, ratio)| {
        format!(
            "| {what}, instructions per request <= {MINIMAL_RATIO_TARGET} ({title}) | {ratio:.3} | {} |",
            ok(ratio <= MINIMAL_RATIO_TARGET)
        )
    }));
    rows
}

/// Part 1's instruction counts alone (`BENCH_ONLY=instructions`): their targets and tables,
/// after the machine's, in `out`.
pub fn write_instructions_only(
    m: &Machine,
    counted: &BTreeMap<String, BTreeMap<String, Counted>>,
    elapsed: Duration,
    out: &Path,
) -> Result<(), String> {
    let mut l = vec![
        "# Benchmarks: part 1's instruction counts alone\n".to_string(),
        "Written by `BENCH_ONLY=instructions` (`bench/src/bin/bench.rs`): A, B and C and the \
         minimal modules R and W under callgrind, as part 1 of `make bench` counts them (its \
         CPU rounds are not in this report).\n"
            .to_string(),
    ];
    l.extend(machine_lines(m, elapsed));
    l.push("| target | result | |\n|---|---|---|".into());
    for (label, c) in counted {
        l.extend(instruction_targets(c, label));
    }
    for (label, c) in counted {
        l.push(format!("\n### {label}\n"));
        l.push(instructions_table(c));
        l.extend(
            limit_ratios(c)
                .into_iter()
                .map(|(what, ratio)| format!("- {what}: x{ratio:.3}")),
        );
    }
    fs::write(out, l.join("\n") + "\n").map_err(|e| format!("writing {}: {e}", out.display()))
}

/// Writes the report to `out`.
pub fn write(b: &Bench, r: &Results, out: &Path) -> Result<(), String> {
    let m = &r.machine;
    let kn = &m.knobs;
    let names: BTreeMap<&str, &str> = [
        ("A", "A: generated config, wasm filter"),
        ("B", "B: native routes + host_rewrite_literal"),
        ("C", "C: Lua filter"),
    ]
    .into_iter()
    .collect();
    let mut l: Vec<String> = Vec::new();
    let mut w = |s: String| l.push(s);
    w("# Benchmarks\n".into());
    w(
        "Written by `make bench` (`bench/src/bin/bench.rs`); regenerate with `make bench`. \
       Hand-written notes live in `bench/NOTES.md` and are appended below.\n"
            .into(),
    );
    machine_lines(m, r.elapsed).into_iter().for_each(&mut w);
    w("## Targets\n".into());
    // label -> [fwd 1, fwd N, deny 1, deny N, configure fuel N, configure wall N]
    let summary: Vec<(String, Vec<String>)> = r
        .cost_out
        .lines()
        .filter(|l| l.starts_with("SUMMARY"))
        .map(|l| {
            let parts: Vec<String> = l.split('\t').map(str::to_string).collect();
            (
                parts.get(1).cloned().unwrap_or_default(),
                parts.get(2..).map(<[String]>::to_vec).unwrap_or_default(),
            )
        })
        .collect();
    w("| target | result | |".into());
    w("|---|---|---|".into());
    let paths = [
        ("plain", "plain", Some(&r.plain)),
        ("TLS", "tls", Some(&r.tls)),
    ]
    .into_iter()
    .chain([(
        "transparent proxy, plain",
        "transparent",
        r.transparent.as_ref(),
    )]);
    for (title, label, t) in paths.filter_map(|(title, label, t)| Some((title, label, t?))) {
        if let Some(c) = r.instructions.get(label) {
            instruction_targets(c, title).into_iter().for_each(&mut w);
        }
        let (ab, ac) = (Ratios::new(t, "A", "B"), Ratios::new(t, "A", "C"));
        w(format!(
            "| A/B proxy CPU per request <= {CPU_RATIO_TARGET} ({title}) | {:.3} | {} |",
            ab.get("cpu_us"),
            ok(ab.get("cpu_us") <= CPU_RATIO_TARGET)
        ));
        w(format!(
            "| A/B requests/s >= {RPS_RATIO_TARGET} ({title}) | {:.3} | {} |",
            ab.get("rps"),
            ok(ab.get("rps") >= RPS_RATIO_TARGET)
        ));
        if ab.p99_added_1c.is_some() {
            w(format!(
                "| p99 added by the filter <= 50 µs, 1 connection ({title}) | {} | {} |",
                ab.added(),
                ok(ab.p99_added_1c.is_some_and(|a| a <= 50.0))
            ));
        }
        w(format!(
            "| A cheaper than C, CPU per request ({title}) | A/C {:.3} | {} |",
            ac.get("cpu_us"),
            ok(ac.get("cpu_us") < 1.0)
        ));
    }
    let int = |v: &[String], i: usize| v.get(i).and_then(|s| s.parse::<f64>().ok()).unwrap_or(0.0);
    if let Some((_, rel)) = summary.first() {
        let fwd = int(rel, 1) / int(rel, 0).max(1.0);
        let deny = int(rel, 3) / int(rel, 2).max(1.0);
        w(format!(
            "| Per-request fuel 1 -> 10,000 services <= +10% | forward x{fwd:.3}, deny x{deny:.3} | {} |",
            ok(fwd <= 1.10 && deny <= 1.10)
        ));
        let wall = rel.get(5).cloned().unwrap_or_default();
        let wall_ms = wall
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(f64::INFINITY);
        w(format!(
            "| Configure 10,000 services <= 100 ms in the wasm engine | {wall} in wasmtime (Cranelift, no opt), {:.0} M fuel | {} |",
            int(rel, 4) / 1e6,
            ok(wall_ms <= 100.0)
        ));
    }
    let size = fs::metadata(&b.wasm).map_or(0, |m| m.len());
    w(format!(
        "| `.wasm` <= 300 KiB | {:.1} KiB | {} |",
        size as f64 / 1024.0,
        ok(size <= 300 * 1024)
    ));
    if let Some(big) = r.scale.iter().find(|row| row.n == 10_000) {
        w(format!(
            "| Generate 10,000 services <= 1 s | {:.0} ms | {} |",
            big.gen_wall * 1000.0,
            ok(big.gen_wall <= 1.0)
        ));
        let after_native = big.live[0].0 - big.live[1].0;
        w(format!(
            "| Envoy LIVE with the filter at 10,000 services <= {LIVE_AFTER_NATIVE_TARGET_S} s after native | +{after_native:.2} s | {} |",
            ok(after_native <= LIVE_AFTER_NATIVE_TARGET_S)
        ));
    }
    if let Some(c) = &r.mesh_passthrough {
        w(mpt_target(c));
    }
    w(String::new());
    w("## 1. Throughput and latency through Envoy\n".into());
    w(format!(
        "Setup: the proxy Envoy runs with `--concurrency 1`, pinned to CPU {PROXY_CPU} (`sched_setaffinity` before it starts); \
         wrk (`-t1`, `taskset -c {LOAD_CPU}`) and the upstream Envoy (`direct_response` 200, `--concurrency 1`) are pinned to CPU {LOAD_CPU}. \
         {} ExternalServices, Mesh passthrough off; every request is `GET /get` with `Host: {TARGET_HOST}` \
         (forwarded, rewritten to `svc-00042.bench.test:PORT`). \
         The three proxies run side by side; each round runs A, B, C in a rotated order (ABC, BCA, CAB, ...), \
         {} rounds, {} s at {} connections, then {} s at 1 connection \
         (latency at equal, light load). A 2 s warm-up precedes the rounds. \
         Cells: median (min–max over rounds). Proxy CPU per request = (utime+stime of the Envoy process from \
         `/proc/<pid>/stat`, all threads, across the wrk run) / requests served.\n",
        kn.services, kn.rounds, kn.seconds, kn.connections, kn.lat_seconds
    ));
    if !r.instructions.is_empty() {
        w(format!(
            "Instructions per request: after its rounds, each variant's proxy runs again under callgrind \
             (`{} ENVOY ...`; side by side where the ports allow, since they only count), serves {WARM_UP} \
             requests to warm up (V8 and LuaJIT compile hot code after a budget of executed code or calls), \
             then is counted twice between `callgrind_control --zero` and `--dump`: {} s without requests, \
             and {COUNTED} requests one after another on one connection. Per request = (the requests' \
             instructions − the idle rate × their wall time) / {COUNTED}: an idle Envoy under callgrind \
             still executes ~2 M instructions a second (DNS refreshes of the STRICT_DNS clusters, stats \
             flushes). These are user-space instructions of all the proxy's threads (Envoy, V8, the filter, \
             LuaJIT); the kernel's work (the same sockets in every variant) is left out, so when A executes \
             more, A/B here is above what it is in CPU per request. They do not move with the machine's load \
             as CPU time does (`src/bench/instructions.rs`).\n",
            callgrind(Path::new("DIR/KIND.callgrind")).join(" "),
            IDLE.as_secs()
        ));
    }
    w(format!(
        "- A: `extsvc generate` output{}.",
        if kn.access_log {
            ""
        } else {
            " with its stdout access log removed (from all three variants: it would add the same cost to each \
             and hide the filter's share; `BENCH_ACCESS_LOG=1` keeps it)"
        }
    ));
    w("- B: the same config without the wasm filter; one virtual host per service (`svc.mesh`, `svc.mesh:80`, \
       the real `host:port`) with `host_rewrite_literal`, then the generated 403 catch-all."
        .into());
    w(
        "- C: the same config with the wasm filter replaced by a Lua filter (a table lookup, \
       `headers:replace(':authority', ...)`, `clearRouteCache()`, or `respond(403)`).\n"
            .into(),
    );
    if r.instructions.contains_key("plain") || r.instructions.contains_key("tls") {
        w(format!(
            "Counted only, beside them: R (`{}`: {}) and W (`{}`: {}) in place of A's module, each              exporting only what Envoy needs (no `proxy_on_delete`, no state, no decision): the least              any proxy-wasm filter can cost for this job. They decide nothing, so their requests name              the service's real authority (`{A_REAL}`: A counted again with the same requests); W's              write makes Envoy pick the route again, as the filter's rewrite of `{TARGET_HOST}` does.\n",
            minimal::READ.wat,
            minimal::READ.does,
            minimal::REWRITE.wat,
            minimal::REWRITE.does,
        ));
    }
    w(format!(
        "Commands: `{}`; `{}`; `{}`. Configs and logs: `{}/`, `{}/`.\n",
        r.plain.gen_cmd.join(" "),
        r.plain.wrk_cmd.join(" "),
        r.plain.lat_cmd.join(" "),
        b.rel(&r.plain.dir),
        b.rel(&r.tls.dir)
    ));
    for (title, label, t) in [
        ("Plain HTTP upstream", "plain", &r.plain),
        (
            "TLS origination (upstream TLS 1.3, CA and SAN verified)",
            "tls",
            &r.tls,
        ),
    ] {
        w(format!("### {title}\n"));
        w(throughput_table(t, &["A", "B", "C"], &names) + "\n");
        let (ab, ac, cb) = (
            Ratios::new(t, "A", "B"),
            Ratios::new(t, "A", "C"),
            Ratios::new(t, "C", "B"),
        );
        w(format!(
            "| ratio | CPU per request | requests/s | p99 ({} conns) | p99 added at 1 connection | target |",
            kn.connections
        ));
        w("|---|---:|---:|---:|---:|---|".into());
        w(format!(
            "| A/B | {} | {} | {} | {} | CPU ≤ {CPU_RATIO_TARGET}: {}; rps ≥ {RPS_RATIO_TARGET}: {}; p99 added ≤ 50 µs: {} |",
            ab.fmt("cpu_us"),
            ab.fmt("rps"),
            ab.fmt("p99"),
            ab.added(),
            bold_ok(ab.get("cpu_us") <= CPU_RATIO_TARGET),
            bold_ok(ab.get("rps") >= RPS_RATIO_TARGET),
            bold_ok(ab.p99_added_1c.is_some_and(|a| a <= 50.0))
        ));
        w(format!(
            "| A/C | {} | {} | {} | {} | A cheaper than C: {} |",
            ac.fmt("cpu_us"),
            ac.fmt("rps"),
            ac.fmt("p99"),
            ac.added(),
            bold_ok(ac.get("cpu_us") < 1.0)
        ));
        w(format!(
            "| C/B | {} | {} | {} | {} | (Lua's cost, for scale) |\n",
            cb.fmt("cpu_us"),
            cb.fmt("rps"),
            cb.fmt("p99"),
            cb.added()
        ));
        if let Some(c) = r.instructions.get(label) {
            w(instructions_table(c));
            for (what, ratio) in limit_ratios(c) {
                w(format!("- {what}: x{ratio:.3}"));
            }
            w(String::new());
        }
        let empty = Vec::new();
        let cpu = |k: &str| med(&values(t.results.get(k).unwrap_or(&empty), "cpu_us"));
        let (cpu_a, cpu_b) = (cpu("A"), cpu("B"));
        w(format!(
            "Filter's share of the proxy's CPU per request: {:+.2} µs of {cpu_a:.2} µs ({:+.1}%). \
             Ratios: of medians, with the range of the per-round ratios.\n",
            cpu_a - cpu_b,
            (cpu_a - cpu_b) / cpu_a * 100.0
        ));
    }
    w("## 2. Per-request cost inside the filter (wasmtime host, fuel)\n".into());
    w(format!(
        "Command: `{}` (source: `host-tests/benches/filter_cost.rs`). \
         Services are named `svc-NNNNN` (fixed width) so the measured request's strings have the same length at every \
         count; the forwarded request is for the last service, the denied one for an undeclared host (passthrough off). \
         Seven request headers, log level info (Envoy's default), 20 warm-up requests before the measured one. \
         Fuel ≈ wasm instructions: it does not depend on machine load. Wall-clock columns do, and the host compiles \
         with Cranelift `OptLevel::None` (`host-tests/src/plugin.rs`), so they are pessimistic next to V8's optimising tier: \
         Envoy's own start-up times are in part 3.\n",
        r.cost_cmd.join(" ")
    ));
    let cost: Vec<&str> = r
        .cost_out
        .lines()
        .filter(|l| !l.starts_with("SUMMARY"))
        .collect();
    w(cost.join("\n") + "\n");
    if !r.prof_built.is_empty() {
        w("## Release profile study (the module Envoy loads)\n".into());
        w("Every build keeps `lto = true`, `codegen-units = 1`, `panic = \"abort\"`, `strip = true` from \
           `[profile.release]` unless the name says otherwise; built with \
           `cargo build --target wasm32-wasip1 -p external-service-filter --profile wasm-<name> \
           --config 'profile.wasm-<name>.inherits=\"release\"' --config 'profile.wasm-<name>.opt-level=...'`; \
           `+wasm-opt` rows are that build run through binaryen's `wasm-opt`.\n"
            .into());
        let counted = r.instructions.get("profiles");
        w(format!(
            "| build | .wasm bytes | KiB | forward fuel (1 / 10,000 services) | deny fuel (1 / 10,000) | configure 10,000: fuel | configure 10,000: wall | A requests/s | A CPU µs/request |{}",
            if counted.is_some() { " A instructions per request |" } else { "" }
        ));
        w(format!(
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|{}",
            if counted.is_some() { "---:|" } else { "" }
        ));
        for (n, p, _) in &r.prof_built {
            let unknown = vec!["?".to_string(); 7];
            let s = summary
                .iter()
                .find(|(l, _)| l == n)
                .map_or(&unknown, |(_, s)| s);
            let field = |i: usize| s.get(i).map_or("?", String::as_str);
            let empty = Vec::new();
            let tr = r
                .prof_t
                .as_ref()
                .and_then(|t| t.results.get(&format!("A-{n}")))
                .unwrap_or(&empty);
            let size = fs::metadata(p).map_or(0, |m| m.len());
            let instructions = counted.map_or(String::new(), |c| {
                c.get(&format!("A-{n}"))
                    .map_or(" ? |".to_string(), |c| format!(" {:.0} |", c.per_request()))
            });
            w(format!(
                "| {n} | {size} | {:.1} | {} / {} | {} / {} | {} | {} | {} | {} |{instructions}",
                size as f64 / 1024.0,
                field(0),
                field(1),
                field(2),
                field(3),
                field(4),
                field(5),
                fmt_range(&values(tr, "rps"), 0),
                fmt_range(&values(tr, "cpu_us"), 2)
            ));
        }
        if r.prof_t.is_some() {
            w(format!(
                "\nThroughput rows: variant A (plain HTTP), {} rounds of {} s, \
                 one proxy at a time, rotated order; median (min–max).\n",
                (kn.rounds / 2).max(2),
                (kn.seconds / 2).max(3)
            ));
        }
    }
    w("## 3. Generator and Envoy at scale\n".into());
    w(format!(
        "`extsvc generate` under `/usr/bin/time -f '%e %M %U %S'` (median wall of 3 runs, max peak RSS), then Envoy started on the \
         generated config (`--concurrency 1`, CPU {PROXY_CPU}): time from spawn to `/ready` = `LIVE` (polled every 20 ms), and VmRSS \
         0.5 s after LIVE (median of 3 starts, 2 at 10,000). B is the native variant of part 1 at the same size, for \
         comparison. Services have loopback IP addresses (`127.1.x.y:PORT`, STATIC clusters): with host names every \
         STRICT_DNS cluster waits for its first DNS answer before Envoy is LIVE, which measures the resolver, not the \
         configuration (a trial with the bench's DNS server took ~6 s to LIVE at 1,000 services for A and B alike).\n"
    ));
    w("| services | config bytes | generate wall | generate CPU | generate peak RSS | A (wasm) to LIVE | A RSS | B (native) to LIVE | B RSS |".into());
    w("|---:|---:|---:|---:|---:|---:|---:|---:|---:|".into());
    for row in &r.scale {
        let [a, bb] = row.live;
        w(format!(
            "| {} | {} | {:.0} ms ({:.0}–{:.0}) | {:.0} ms | {:.1} MiB | {:.2} s ({:.2}–{:.2}) | {:.0} MiB | {:.2} s ({:.2}–{:.2}) | {:.0} MiB |",
            row.n,
            row.size,
            row.gen_wall * 1000.0,
            row.gen_wall_range.0 * 1000.0,
            row.gen_wall_range.1 * 1000.0,
            row.gen_cpu * 1000.0,
            row.gen_rss_kib as f64 / 1024.0,
            a.0,
            a.1,
            a.2,
            row.rss_kib[0] / 1024.0,
            bb.0,
            bb.1,
            bb.2,
            row.rss_kib[1] / 1024.0
        ));
    }
    if let Some(last) = r.scale.last() {
        w(format!("\nCommand: `{}`.\n", last.gen_cmd.join(" ")));
    }
    if let Some(t) = &r.transparent {
        w("## 4. Through the transparent proxy (VIP listeners)\n".into());
        w(format!(
            "Setup: two network namespaces joined by a veth pair and to nothing else. In the app's, \
             `extsvc transparent-proxy install --envoy-uid 5678` and the proxy Envoy (uid 5678, `--concurrency 1`, CPU {PROXY_CPU}); \
             wrk (`ip netns exec`, CPU {LOAD_CPU}) connects to the VIP the builtin DNS gives `{TARGET_HOST}`, port 80, \
             with that `Host`: the rules send it to the capture listener, which hands it to that VIP:port's listener \
             (bound to the service), which forwards to `svc-00042.bench.test:8080`. The upstream Envoy \
             (`direct_response` 200, CPU {LOAD_CPU}) and its DNS are in the other namespace. {} ExternalServices, \
             passthrough off. One capture port per namespace, so the variants take turns: each round starts A, B, C \
             one at a time in a rotated order, checks one request, warms up 2 s, then runs {} s at {} connections; \
             {} rounds. Access logs removed as in part 1.\n",
            kn.services, kn.tproxy_seconds, kn.connections, kn.tproxy_rounds
        ));
        w("- A: `extsvc generate --transparent-proxy` output (the wasm filter on every VIP listener, bound to its service).".into());
        w("- B: the same without the wasm filter; each VIP listener's route has `host_rewrite_literal` with its service's authority.".into());
        w("- C: the same with the wasm filter replaced by a Lua filter that only replaces `:authority` with its service's authority.\n".into());
        w(format!(
            "Commands: `{}`; `{}`. Configs and logs: `{}/`.\n",
            t.gen_cmd.join(" "),
            t.wrk_cmd.join(" "),
            b.rel(&t.dir)
        ));
        w(throughput_table(t, &["A", "B", "C"], &names) + "\n");
        w("| ratio | CPU per request | requests/s | p99 |".into());
        w("|---|---:|---:|---:|".into());
        for (x, y) in [("A", "B"), ("A", "C"), ("C", "B")] {
            let ratios = Ratios::new(t, x, y);
            w(format!(
                "| {x}/{y} | {} | {} | {} |",
                ratios.fmt("cpu_us"),
                ratios.fmt("rps"),
                ratios.fmt("p99")
            ));
        }
        w("\nRatios: of medians, with the range of the per-round ratios.\n".into());
        if let Some(c) = r.instructions.get("transparent") {
            w(instructions_table(c));
        }
    }
    if let Some(c) = &r.mesh_passthrough {
        mesh_passthrough_section(c, kn, &b.rel(&c.dir))
            .into_iter()
            .for_each(&mut w);
    }
    if let Some(f) = &r.fleet {
        fleet_section(f).into_iter().for_each(&mut w);
    }
    if let Ok(notes) = fs::read_to_string(b.root.join("bench/NOTES.md")) {
        w(notes);
    }
    // `make soak` owns the "## Soak" section of the same file: keep it.
    if let Ok(old) = fs::read_to_string(out) {
        if let Some(soak) = runner::section(&old, "## Soak") {
            w(soak.trim_end_matches('\n').to_string() + "\n");
        }
    }
    fs::write(out, l.join("\n") + "\n").map_err(|e| format!("writing {}: {e}", out.display()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn counted(per_request: u64) -> Counted {
        Counted {
            requests: 10,
            instructions: per_request * 10,
            seconds: 1.0,
            idle_per_second: 0.0,
        }
    }

    #[test]
    fn the_filter_is_compared_with_each_minimal_module_on_the_request_both_serve() {
        let c: BTreeMap<String, Counted> = [
            ("A", 185_000),
            (A_REAL, 170_000),
            ("B", 150_000),
            ("R", 160_000),
            ("W", 175_000),
        ]
        .map(|(k, n)| (k.to_string(), counted(n)))
        .into();
        let ratios = limit_ratios(&c);
        assert_eq!(ratios.len(), 2, "{ratios:?}");
        assert!(
            ratios[0].0.starts_with("A's `.mesh` request over W"),
            "{ratios:?}"
        );
        assert_eq!(ratios[0].1, 185_000.0 / 175_000.0);
        assert!(ratios[1]
            .0
            .starts_with("A's request to the real authority over R"));
        assert_eq!(ratios[1].1, 170_000.0 / 160_000.0);
        // Part 4 counts no minimal module: no ratio, rather than NaN.
        let part4: BTreeMap<String, Counted> = [("A", 1), ("B", 1)]
            .map(|(k, n)| (k.to_string(), counted(n)))
            .into();
        assert!(limit_ratios(&part4).is_empty());
    }

    /// Part 5 at two counts: `Host` exact flat, `Host` wildcard +20%, SNI flat.
    fn cost(wildcard_at_most: u64) -> Cost {
        let at = |wildcard: u64| {
            Request::ALL
                .into_iter()
                .map(|r| {
                    (
                        r,
                        counted(if r == Request::HostWildcard {
                            wildcard
                        } else {
                            1000
                        }),
                    )
                })
                .collect()
        };
        Cost {
            counted: [(10, at(1000)), (10_000, at(wildcard_at_most))].into(),
            config_bytes: [(10, 100), (10_000, 20_000)].into(),
            ..Cost::default()
        }
    }

    #[test]
    fn part5_compares_the_most_matches_with_the_fewest_and_names_the_worst() {
        let c = cost(1200);
        assert_eq!(c.ratio(Request::HostExact), 1.0);
        assert!((c.ratio(Request::HostWildcard) - 1.2).abs() < 1e-9);
        assert!(
            mpt_target(&c).ends_with("| worst x1.200 | **missed** |"),
            "{}",
            mpt_target(&c)
        );
        assert!(mpt_target(&cost(1050)).ends_with("| worst x1.050 | met |"));
    }

    #[test]
    fn part5_tabulates_each_request_at_each_count_and_the_ratio() {
        let knobs = Knobs {
            rounds: 1,
            seconds: 1,
            lat_seconds: 1,
            connections: 1,
            services: 43,
            scale: Vec::new(),
            profiles: false,
            port_base: None,
            access_log: false,
            tproxy_rounds: 0,
            tproxy_seconds: 1,
            callgrind: Vec::new(),
            mpt_matches: vec![10, 10_000],
            mpt_requests: 10,
            fleet_rounds: 0,
        };
        let section = mesh_passthrough_section(&cost(1200), &knobs, "target/bench/mpt");
        let table: Vec<&str> = section
            .iter()
            .flat_map(|s| s.lines())
            .filter(|l| l.starts_with('|'))
            .collect();
        assert_eq!(
            table,
            [
                "| instructions per request (callgrind) | 10 matches | 10000 matches | 10000/10 |",
                "|---|---:|---:|---:|",
                &format!("| {} | 1000 | 1000 | 1.000 |", Request::HostExact.title()),
                &format!(
                    "| {} | 1000 | 1200 | 1.200 |",
                    Request::HostWildcard.title()
                ),
                &format!("| {} | 1000 | 1000 | 1.000 |", Request::SniExact.title()),
                &format!("| {} | 1000 | 1000 | 1.000 |", Request::SniWildcard.title()),
                "| configuration bytes | 100 | 20000 | |",
            ]
        );
        assert!(section.last().unwrap().contains("`target/bench/mpt/`"));
    }
}
