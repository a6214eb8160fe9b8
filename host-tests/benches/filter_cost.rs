//! Deterministic cost of the filter module, measured in the wasmtime host with fuel metering.
//!
//! `cargo bench -p host-tests --bench filter_cost -- [LABEL=PATH.wasm]...` (default: the module
//! `make build` makes). Prints Markdown: per-request fuel for a forwarded and a denied request,
//! configure fuel and wall time, and linear memory at 1, 100, 1,000 and 10,000 services; then
//! the same requests against 1 to 10,000 MeshPassthrough matches (exact names and wildcards).
//! Fuel is roughly one unit per wasm instruction: it does not move with machine load.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use host_tests::{Action, LogLevel, Module, Plugin, PluginOptions};
use serde_json::json;

const COUNTS: [usize; 4] = [1, 100, 1_000, 10_000];
/// Plugin starts timed per count; the median is reported.
const STARTS: usize = 5;
/// Requests before the measured one, so one-time work (first allocations) is not counted.
const WARM_UP: usize = 20;
/// Requests timed for the wall-clock column (informative only; fuel is the figure to compare).
const TIMED: usize = 2_000;

/// What Envoy hands the filter for `curl -x http://127.0.0.1:15001 http://<authority>/get`.
fn headers(authority: &str) -> [(&str, &str); 7] {
    [
        (":authority", authority),
        (":path", "/get"),
        (":method", "GET"),
        (":scheme", "http"),
        ("user-agent", "wrk"),
        ("accept", "*/*"),
        ("x-request-id", "5f2b1d7e-8f2a-4c7e-9a59-2d8c1b0e6f3a"),
    ]
}

/// `n` plain-HTTP services on distinct hosts (fixed-width names: equal string lengths at every n), passthrough off (so an unknown host is denied).
fn configuration(n: usize) -> String {
    let mut resources: Vec<serde_json::Value> = (0..n)
        .map(|i| {
            json!({ "type": "ExternalService", "mesh": "default", "name": format!("es-{i}"),
                    "tags": { "kuma.io/service": format!("svc-{i:05}"), "kuma.io/protocol": "http" },
                    "networking": { "address": format!("svc-{i:05}.bench.test:18080") } })
        })
        .collect();
    resources.push(json!({ "type": "Mesh", "name": "default",
                           "networking": { "outbound": { "passthrough": false } } }));
    json!({ "resources": resources, "mesh": "default" }).to_string()
}

/// Passthrough off, no service, and one MeshPassthrough with `n` http matches on port 80: every
/// even one an exact name, every odd one a wildcard (`*.wNNNNN.bench.test`).
fn passthrough_configuration(n: usize) -> String {
    let matches: Vec<serde_json::Value> = (0..n)
        .map(|i| {
            let value = if i.is_multiple_of(2) {
                format!("host-{i:05}.exact.bench.test")
            } else {
                format!("*.w{i:05}.bench.test")
            };
            json!({ "type": "Domain", "value": value, "port": 80, "protocol": "http" })
        })
        .collect();
    let resources = vec![
        json!({ "type": "Mesh", "name": "default",
                "networking": { "outbound": { "passthrough": false } } }),
        json!({ "type": "MeshPassthrough", "name": "bench", "mesh": "default",
                "spec": { "targetRef": { "kind": "Mesh" },
                          "default": { "passthroughMode": "Matched", "appendMatch": matches } } }),
    ];
    json!({ "resources": resources, "mesh": "default" }).to_string()
}

/// on_request_headers fuel for a host the last wildcard allows (two labels below it) and for
/// one no match allows, with `n` matches; and the configure fuel.
fn measure_passthrough(module: &Module, n: usize) -> Result<(u64, u64, u64)> {
    let mut plugin = start(module, &passthrough_configuration(n))?;
    let configure_fuel = plugin.last_call_fuel();
    let last_wildcard = if n.is_multiple_of(2) { n - 1 } else { n - 2 };
    let allowed = if n == 1 {
        "host-00000.exact.bench.test".to_string()
    } else {
        format!("a.b.w{last_wildcard:05}.bench.test")
    };
    let refused = "nothing.example.com";
    for _ in 0..WARM_UP {
        one_request(&mut plugin, &allowed, true)?;
        one_request(&mut plugin, refused, false)?;
    }
    let (allowed_fuel, _) = one_request(&mut plugin, &allowed, true)?;
    let (refused_fuel, _) = one_request(&mut plugin, refused, false)?;
    Ok((allowed_fuel, refused_fuel, configure_fuel))
}

/// The MeshPassthrough table: per-request fuel must not grow with the number of matches.
fn print_passthrough(label: &str, module: &Module) -> Result<()> {
    println!("
| MeshPassthrough matches | allowed by a wildcard: on_request_headers fuel | not matched: on_request_headers fuel | configure fuel |");
    println!("|---:|---:|---:|---:|");
    let mut rows = Vec::new();
    for n in COUNTS {
        let (allowed, refused, configure) = measure_passthrough(module, n)?;
        println!("| {n} | {allowed} | {refused} | {configure} |");
        rows.push((n, allowed, refused));
    }
    if let (Some(first), Some(last)) = (rows.get(1), rows.last()) {
        let ratio = |a: u64, b: u64| a as f64 / b.max(1) as f64;
        println!(
            "
Flatness {label}, MeshPassthrough ({} -> {} matches): allowed x{:.3}, not matched x{:.3} (target <= 1.10)",
            first.0,
            last.0,
            ratio(last.1, first.1),
            ratio(last.2, first.2)
        );
    }
    Ok(())
}

struct Row {
    services: usize,
    forward_headers: u64,
    forward_stream: u64,
    deny_headers: u64,
    deny_stream: u64,
    forward_ns: f64,
    configure_fuel: u64,
    configure: Duration,
    memory: usize,
}

fn start(module: &Module, config: &str) -> Result<Plugin> {
    // Envoy's default level for the `wasm` log component is info.
    start_at(module, config, LogLevel::Info)
}

fn start_at(module: &Module, config: &str, level: LogLevel) -> Result<Plugin> {
    let options = PluginOptions::with_configuration(config)
        .log_level(level)
        .quiet();
    Plugin::start(module, options).map_err(|e| anyhow::anyhow!("{e}"))
}

/// Fuel of `proxy_on_request_headers` alone, and of the whole stream (create, headers, done, log,
/// delete), for one request to `authority`; checks the filter did what was expected.
fn one_request(plugin: &mut Plugin, authority: &str, forwarded: bool) -> Result<(u64, u64)> {
    let headers = headers(authority);
    let mut on_headers = 0;
    let (_, stream_fuel) = plugin.fuel_consumed_by(|p| {
        let stream = p.new_http_context()?;
        let action = p.call_on_request_headers(stream, &headers, true)?;
        on_headers = p.last_call_fuel();
        let denied = p.sent_local_response(stream).is_some();
        anyhow::ensure!(
            denied != forwarded && (action == Action::Continue) == forwarded,
            "{authority}: expected forwarded={forwarded}, got action {action:?}, local reply {denied}"
        );
        p.complete_http_stream(stream)?;
        Ok(())
    })?;
    plugin.clear_logs();
    Ok((on_headers, stream_fuel))
}

fn measure(module: &Module, n: usize) -> Result<Row> {
    let config = configuration(n);
    let mut starts = Vec::with_capacity(STARTS);
    let mut plugin = None;
    for _ in 0..STARTS {
        let t = Instant::now();
        let p = start(module, &config)?;
        starts.push(t.elapsed());
        plugin = Some(p);
    }
    starts.sort();
    let mut plugin = plugin.context("no plugin started")?;
    let configure_fuel = plugin.last_call_fuel();
    let forward = format!("svc-{:05}.mesh", n - 1);
    let deny = "not-declared.example.com";
    for _ in 0..WARM_UP {
        one_request(&mut plugin, &forward, true)?;
        one_request(&mut plugin, deny, false)?;
    }
    let (forward_headers, forward_stream) = one_request(&mut plugin, &forward, true)?;
    let (deny_headers, deny_stream) = one_request(&mut plugin, deny, false)?;
    let t = Instant::now();
    for _ in 0..TIMED {
        one_request(&mut plugin, &forward, true)?;
    }
    let forward_ns = t.elapsed().as_nanos() as f64 / TIMED as f64;
    Ok(Row {
        services: n,
        forward_headers,
        forward_stream,
        deny_headers,
        deny_stream,
        forward_ns,
        configure_fuel,
        configure: starts[STARTS / 2],
        memory: plugin.memory_size_bytes(),
    })
}

fn modules() -> Vec<(String, PathBuf)> {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    if args.is_empty() {
        return vec![("release".to_owned(), Module::default_path())];
    }
    args.iter()
        .map(|a| match a.split_once('=') {
            Some((label, path)) => (label.to_owned(), PathBuf::from(path)),
            None => (a.clone(), PathBuf::from(a)),
        })
        .collect()
}

fn main() -> Result<()> {
    for (label, path) in modules() {
        let size = std::fs::metadata(&path)
            .with_context(|| format!("{}: build it with `make build`", path.display()))?
            .len();
        let module = Module::load(&path)?;
        println!(
            "\n#### Module `{label}`: {} bytes ({:.1} KiB), {}\n",
            size,
            size as f64 / 1024.0,
            path.display()
        );
        println!("| services | forward: on_request_headers fuel | forward: whole stream fuel | deny: on_request_headers fuel | deny: whole stream fuel | forward wall (host, informative) | configure fuel | start+configure wall (median of {STARTS}) | linear memory |");
        println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        let mut rows = Vec::new();
        for n in COUNTS {
            let r = measure(&module, n)?;
            println!(
                "| {} | {} | {} | {} | {} | {:.1} µs | {} | {:.1} ms | {:.2} MiB |",
                r.services,
                r.forward_headers,
                r.forward_stream,
                r.deny_headers,
                r.deny_stream,
                r.forward_ns / 1000.0,
                r.configure_fuel,
                r.configure.as_secs_f64() * 1000.0,
                r.memory as f64 / (1024.0 * 1024.0)
            );
            rows.push(r);
        }
        print_passthrough(&label, &module)?;
        // What the per-denial info log line costs: the same denied request with Envoy at warn.
        let mut quiet = start_at(&module, &configuration(100), LogLevel::Warn)?;
        let deny = "not-declared.example.com";
        for _ in 0..WARM_UP {
            one_request(&mut quiet, deny, false)?;
        }
        let (deny_warn, _) = one_request(&mut quiet, deny, false)?;
        if let Some(r) = rows.iter().find(|r| r.services == 100) {
            println!(
                "\nDenied request at 100 services: {} fuel with Envoy's log level at info, {} at warn (the info line not formatted): the log line is {:.0}% of a denial.",
                r.deny_headers,
                deny_warn,
                (r.deny_headers.saturating_sub(deny_warn)) as f64 * 100.0 / r.deny_headers.max(1) as f64
            );
        }
        if let (Some(first), Some(last)) = (rows.first(), rows.last()) {
            let ratio = |a: u64, b: u64| a as f64 / b.max(1) as f64;
            println!(
                "\nFlatness {label} ({} -> {} services): forward on_request_headers x{:.3}, deny x{:.3} (target <= 1.10)",
                first.services,
                last.services,
                ratio(last.forward_headers, first.forward_headers),
                ratio(last.deny_headers, first.deny_headers)
            );
            // One tab-separated line for the profile table of `make bench`
            // (bench/src/report.rs).
            println!(
                "SUMMARY\t{label}\t{}\t{}\t{}\t{}\t{}\t{:.1} ms",
                first.forward_headers,
                last.forward_headers,
                first.deny_headers,
                last.deny_headers,
                last.configure_fuel,
                last.configure.as_secs_f64() * 1000.0
            );
        }
    }
    Ok(())
}
