//! Part 1: requests/s, latency and proxy CPU per request of each variant, in rotated rounds.

use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;

use super::config::{self, Variant};
use super::instructions::{self, Counted};
use super::load::{in_sequence, measured, request, wrk, Target};
use super::{log_sample, name, rotated, Bench, Throughput, PROXY_CPU, TARGET_HOST};
use extsvc_testkit::runner::Proc;

/// One part-1 style measurement.
pub struct Plan<'a> {
    /// Names the work directory (`target/bench/<label>/`).
    pub label: &'a str,
    /// TLS origination to the upstream, else plain HTTP.
    pub tls: bool,
    /// `A`, `B`, `C`, or `A-<name>` with its own module.
    pub kinds: &'a [(&'a str, Option<PathBuf>)],
    pub rounds: usize,
    pub seconds: u64,
    /// Also a run at 1 connection per round.
    pub latency: bool,
    /// The `Host` of every measured request.
    pub host: &'a str,
    /// Check a forwarded and a denied request on each proxy first.
    pub smoke: bool,
}

/// Runs the plan's variants `rounds` times for `seconds` at the configured connections, then
/// (with `latency`) at 1 connection. Variants whose letters differ run side by side; several
/// `A-*` run one at a time on A's port.
pub fn run(b: &Bench, plan: &Plan) -> Result<Throughput, String> {
    let Plan {
        label,
        tls,
        kinds,
        rounds,
        seconds,
        latency,
        host,
        smoke,
    } = *plan;
    let k = &b.knobs;
    let d = b.work.join(label);
    fs::create_dir_all(&d).map_err(|e| format!("{}: {e}", d.display()))?;
    let res = d.join("resources.yaml");
    fs::write(&res, config::resources(b, k.services, tls, false))
        .map_err(|e| format!("{}: {e}", res.display()))?;
    let generated = d.join("A.generated.yaml");
    let gen = config::generate(b, &res, &generated)?;
    let cfg_a = config::read_yaml(&generated)?;
    let authority = |i: usize| config::address(b, i, tls, false);
    let mut paths = BTreeMap::new();
    for (kind, wasm) in kinds {
        let v = Variant {
            kind: kind.chars().next().unwrap_or('A'),
            services: k.services,
            authority: &authority,
            wasm: wasm.as_deref(),
            listen: b.port(kind),
            access_log: k.access_log,
        };
        let path = d.join(format!("{kind}.yaml"));
        config::write_yaml(&path, &config::variant(&cfg_a, &v)?)?;
        paths.insert(kind.to_string(), path);
    }
    let letters: std::collections::BTreeSet<char> =
        kinds.iter().filter_map(|(k, _)| k.chars().next()).collect();
    let side_by_side = letters.len() == kinds.len();
    let up = |kind: &str| -> Result<Proc, String> {
        let listen = b.port(kind);
        let path = &paths[kind];
        let p = Proc::start(&d, kind, path, &b.envoy_options(), Some(PROXY_CPU))?;
        let checks = [
            (TARGET_HOST.to_string(), 200),
            (format!("{}.mesh", name(7)), 200),
            ("not-declared.example.com".to_string(), 403),
        ];
        for (h, want) in checks.into_iter().filter(|_| smoke) {
            let got = request(listen, &h)?;
            if got != want {
                return Err(format!(
                    "{label} {kind}: {h} answered {got}, expected {want}; see {}",
                    p.stderr_path.display()
                ));
            }
        }
        // Warm-up: connections to the upstream, V8 tiers up.
        wrk(&Target::local(listen), 2, k.connections, host)?;
        Ok(p)
    };
    let mut procs: BTreeMap<String, Proc> = BTreeMap::new();
    if side_by_side {
        for (kind, _) in kinds {
            procs.insert(kind.to_string(), up(kind)?);
        }
    }
    let mut t = Throughput {
        gen_cmd: gen.cmd,
        dir: d.clone(),
        ..Throughput::default()
    };
    for r in 0..rounds {
        for (kind, _) in rotated(kinds, r) {
            let kind = *kind;
            if !side_by_side {
                procs.insert(kind.to_string(), up(kind)?);
            }
            let p = procs.get(kind).ok_or("a variant did not start")?;
            let listen = Target::local(b.port(kind));
            let (s, cmd) = measured(p.pid(), &listen, seconds, k.connections, host)?;
            t.wrk_cmd = cmd;
            log_sample(label, r, rounds, kind, &s);
            t.results.entry(kind.to_string()).or_default().push(s);
            if latency {
                let (s, cmd) = measured(p.pid(), &listen, k.lat_seconds, 1, host)?;
                t.lat_cmd = cmd;
                t.latency.entry(kind.to_string()).or_default().push(s);
            }
            if !side_by_side {
                procs.remove(kind);
            }
        }
    }
    Ok(t)
}

/// The label of A's count with requests to the service's real authority (no rewrite).
pub const A_REAL: &str = "A, real authority";

/// The instructions per request of each variant `t` measured (its configurations, on the same
/// ports), to `host`, after `t`'s own runs. Variants that share a port (`A-*`) take turns;
/// the others run side by side.
pub fn count(b: &Bench, t: &Throughput, host: &str) -> Result<BTreeMap<String, Counted>, String> {
    count_with_limits(b, t, host, None)
}

/// The minimal modules counted beside part 1's variants, and where their requests go.
pub struct Limits<'a> {
    /// The service's real authority: its route is the one a `.mesh` name is rewritten to, and
    /// the only one a module that decides nothing can serve.
    pub real: &'a str,
    /// (kind, module), e.g. `R` and `W` of [`crate::minimal`].
    pub modules: &'a [(&'a str, PathBuf)],
}

/// [`count`], and with `limits` also A again and each minimal module (A's configuration with
/// that module, on a port of its own) to the real authority: the filter against the least a
/// proxy-wasm module can cost, on the request each serves.
pub fn count_with_limits(
    b: &Bench,
    t: &Throughput,
    host: &str,
    limits: Option<&Limits>,
) -> Result<BTreeMap<String, Counted>, String> {
    let mut variants: Vec<(&str, PathBuf)> = t
        .results
        .keys()
        .map(|kind| (kind.as_str(), t.dir.join(format!("{kind}.yaml"))))
        .collect();
    if let Some(limits) = limits {
        let cfg_a = config::read_yaml(&t.dir.join("A.generated.yaml"))?;
        let authority = |_: usize| limits.real.to_string();
        for (kind, module) in limits.modules {
            let v = Variant {
                kind: kind.chars().next().unwrap_or('A'),
                services: b.knobs.services,
                authority: &authority,
                wasm: Some(module),
                listen: b.port(kind),
                access_log: b.knobs.access_log,
            };
            let path = t.dir.join(format!("{kind}.yaml"));
            config::write_yaml(&path, &config::variant(&cfg_a, &v)?)?;
            variants.push((kind, path));
        }
    }
    let mut batches: Vec<Vec<(&str, PathBuf)>> = Vec::new();
    for variant in variants {
        match batches
            .iter_mut()
            .find(|batch| batch.iter().all(|(k, _)| b.port(k) != b.port(variant.0)))
        {
            Some(batch) => batch.push(variant),
            None => batches.push(vec![variant]),
        }
    }
    let send =
        |kind: &str, to: &str, n: usize| in_sequence(Target::local(b.port(kind)).addr, to, n);
    let mut counted = BTreeMap::new();
    for batch in &batches {
        let mut counts = instructions::each(batch, host);
        if let Some(limits) = limits {
            for c in counts
                .iter_mut()
                .filter(|c| limits.modules.iter().any(|(k, _)| *k == c.kind))
            {
                c.host = limits.real;
            }
            if batch.iter().any(|(k, _)| *k == "A") {
                counts.push(instructions::Count {
                    label: A_REAL,
                    kind: "A",
                    host: limits.real,
                });
            }
        }
        counted.extend(instructions::count(
            &t.dir,
            batch,
            &b.envoy_options(),
            &counts,
            &send,
        )?);
    }
    Ok(counted)
}
