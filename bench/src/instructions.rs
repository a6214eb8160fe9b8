//! Instructions per request: each variant's proxy Envoy runs under callgrind, which counts the
//! instructions it executes in user space (Envoy, V8's code and the filter's, LuaJIT's), all
//! threads together. CPU time on this shared machine moves by tens of percent between rounds
//! of the same variant (whatever else runs, softirq work landing on whichever process is on
//! the CPU); an instruction count moves by a fraction of a percent, so a ratio of a few percent
//! can be read from it. What it leaves out is the kernel (the same sockets in every variant)
//! and the cost of each instruction (cache misses, branch mispredictions).
//!
//! The variants only count, so they start side by side on both CPUs. Each is warmed up (V8
//! tiers the filter up after a budget of executed code, LuaJIT compiles hot code after a number
//! of calls, and connections to the upstream open). Then, twice, its counters are zeroed and
//! dumped: across [`IDLE`] without requests, and across [`COUNTED`] requests one after another
//! on one connection. An Envoy with nothing to serve still executes ~1.7 M instructions a
//! second under callgrind (timers: DNS refreshes of the STRICT_DNS clusters, stats flushes),
//! and the requests take a wall time that depends on the machine: the idle rate times that
//! time is taken off.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use super::log;
use extsvc_testkit::runner::{self, Proc};
use extsvc_testkit::EnvoyOptions;

/// Requests before the counters are zeroed.
pub const WARM_UP: usize = 3_000;
/// Requests counted.
pub const COUNTED: usize = 5_000;
/// The window that measures what the proxy executes without requests.
pub const IDLE: Duration = Duration::from_secs(10);
/// Envoy under callgrind runs some 50 times slower, and V8 compiles the module under it too.
const READY_TIMEOUT: Duration = Duration::from_secs(900);

/// What one variant's proxy executed while it served [`COUNTED`] requests, and without any.
#[derive(Clone, Copy, Debug)]
pub struct Counted {
    pub requests: usize,
    pub instructions: u64,
    /// How long the requests took.
    pub seconds: f64,
    /// Instructions per second without requests.
    pub idle_per_second: f64,
}

impl Counted {
    /// The requests' instructions, less what the same time costs idle, per request.
    pub fn per_request(&self) -> f64 {
        (self.instructions as f64 - self.idle_per_second * self.seconds)
            / self.requests.max(1) as f64
    }
}

/// The command a proxy runs under: callgrind, counting nothing but instructions, re-reading
/// code that JIT compilers write (V8, LuaJIT), dumps to `out` (`out.1`, `out.2`, ... on
/// request).
pub fn callgrind(out: &Path) -> Vec<String> {
    vec![
        "valgrind".to_string(),
        "--tool=callgrind".to_string(),
        "--smc-check=all-non-file".to_string(),
        format!("--callgrind-out-file={}", out.display()),
    ]
}

/// One count of a run: `label` names it in the results; the proxy of variant `kind` serves
/// requests to `host`.
pub struct Count<'a> {
    pub label: &'a str,
    pub kind: &'a str,
    pub host: &'a str,
}

/// Starts every `(kind, config)` under callgrind at once, then makes each count in turn (a
/// variant may be counted more than once, to different hosts). `send(kind, host, n)` makes `n`
/// requests to that variant's proxy, each answered 200, one after another.
pub fn count(
    dir: &Path,
    variants: &[(&str, PathBuf)],
    options: &EnvoyOptions,
    counts: &[Count],
    send: &(dyn Fn(&str, &str, usize) -> Result<(), String> + Sync),
) -> Result<BTreeMap<String, Counted>, String> {
    let proxies = start(dir, variants, options)?;
    let mut counted = BTreeMap::new();
    for c in counts {
        runner::check()?;
        let p = proxies
            .iter()
            .find(|p| p.kind == c.kind)
            .ok_or_else(|| format!("{}: no variant {} was started", c.label, c.kind))?;
        let n = p.count(c.label, WARM_UP, COUNTED, &|n| send(c.kind, c.host, n))?;
        counted.insert(c.label.to_string(), n);
    }
    Ok(counted)
}

/// A count of each variant to `host`, labelled by its kind.
pub fn each<'a>(variants: &'a [(&'a str, PathBuf)], host: &'a str) -> Vec<Count<'a>> {
    variants
        .iter()
        .map(|(kind, _)| Count {
            label: kind,
            kind,
            host,
        })
        .collect()
}

/// A proxy running under callgrind, ready to be counted.
pub struct UnderCallgrind {
    pub kind: String,
    proc: Proc,
    /// Callgrind's output file, beside which it writes its dumps.
    out: PathBuf,
    /// The proxy's uid, which `callgrind_control` must take.
    uid: Option<u32>,
}

/// Starts every `(kind, config)` under callgrind at once (they only count, so they may run
/// side by side) and waits until each is ready.
pub fn start(
    dir: &Path,
    variants: &[(&str, PathBuf)],
    options: &EnvoyOptions,
) -> Result<Vec<UnderCallgrind>, String> {
    which_valgrind()?;
    let started: Vec<Result<UnderCallgrind, String>> = thread::scope(|s| {
        let handles: Vec<_> = variants
            .iter()
            .map(|(kind, config)| {
                s.spawn(move || {
                    let out = dir.join(format!("{kind}.callgrind"));
                    remove_dumps(&out);
                    let opts = EnvoyOptions {
                        under: callgrind(&out),
                        ready_timeout: READY_TIMEOUT,
                        ..options.clone()
                    };
                    let name = format!("{kind}-callgrind");
                    Proc::start(dir, &name, config, &opts, None).map(|proc| UnderCallgrind {
                        kind: kind.to_string(),
                        proc,
                        out,
                        uid: options.uid,
                    })
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err("a callgrind start panicked".to_string()))
            })
            .collect()
    });
    started.into_iter().collect()
}

impl UnderCallgrind {
    /// Warms the proxy up with `warm_up` requests, then counts it across [`IDLE`] without
    /// requests and across `requests` requests, which `send(n)` makes one after another.
    /// `label` names the count in the log.
    pub fn count(
        &self,
        label: &str,
        warm_up: usize,
        requests: usize,
        send: &dyn Fn(usize) -> Result<(), String>,
    ) -> Result<Counted, String> {
        let (pid, uid, out) = (self.proc.pid(), self.uid, &self.out);
        send(warm_up)?;
        control(pid, uid, "--zero")?;
        let idle_from = Instant::now();
        thread::sleep(IDLE);
        let idle = dump(pid, uid, out)?;
        let idle_per_second = idle as f64 / idle_from.elapsed().as_secs_f64();
        control(pid, uid, "--zero")?;
        let from = Instant::now();
        send(requests)?;
        let seconds = from.elapsed().as_secs_f64();
        let instructions = dump(pid, uid, out)?;
        let c = Counted {
            requests,
            instructions,
            seconds,
            idle_per_second,
        };
        log(&format!(
            "callgrind {label}: {:.0} instructions per request ({instructions} in {seconds:.1} s, {:.2} M a second idle)",
            c.per_request(),
            idle_per_second / 1e6
        ));
        Ok(c)
    }
}

fn which_valgrind() -> Result<(), String> {
    let found = Command::new("valgrind")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if found {
        Ok(())
    } else {
        Err("valgrind is not installed: `make setup` installs it (or BENCH_CALLGRIND=0 skips the instruction counts)".to_string())
    }
}

/// `callgrind_control ACTION PID`, as the proxy's uid: valgrind opens the pipes that
/// callgrind_control's vgdb makes, which another user's cannot.
fn control(pid: u32, uid: Option<u32>, action: &str) -> Result<(), String> {
    let mut cmd = match uid {
        Some(uid) => {
            let mut cmd = Command::new("setpriv");
            cmd.args([
                &format!("--reuid={uid}"),
                &format!("--regid={uid}"),
                "--clear-groups",
                "callgrind_control",
            ]);
            cmd
        }
        None => Command::new("callgrind_control"),
    };
    let o = runner::run(
        cmd.arg(action).arg(pid.to_string()),
        Duration::from_secs(120),
    )?;
    if o.status.success() {
        Ok(())
    } else {
        Err(format!(
            "callgrind_control {action} {pid}: {}{}",
            o.stdout, o.stderr
        ))
    }
}

/// Asks for a dump and reads its total instruction count.
fn dump(pid: u32, uid: Option<u32>, out: &Path) -> Result<u64, String> {
    let before = dumps(out).len();
    control(pid, uid, "--dump")?;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let now = dumps(out);
        if now.len() > before {
            if let Some(total) = now
                .last()
                .and_then(|p| fs::read_to_string(p).ok())
                .and_then(|text| total_of(&text))
            {
                return Ok(total);
            }
        }
        if Instant::now() > deadline {
            return Err(format!(
                "callgrind wrote no readable dump beside {} within 120 s",
                out.display()
            ));
        }
        thread::sleep(Duration::from_millis(100));
    }
}

/// The dumps made on request, `out.1`, `out.2`, ..., in order.
fn dumps(out: &Path) -> Vec<PathBuf> {
    let (Some(dir), Some(name)) = (out.parent(), out.file_name().and_then(|n| n.to_str())) else {
        return Vec::new();
    };
    let mut found: Vec<(u32, PathBuf)> = fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let file = e.file_name().into_string().ok()?;
            let n = file.strip_prefix(name)?.strip_prefix('.')?.parse().ok()?;
            Some((n, e.path()))
        })
        .collect();
    found.sort();
    found.into_iter().map(|(_, p)| p).collect()
}

fn remove_dumps(out: &Path) {
    let _ = fs::remove_file(out);
    for p in dumps(out) {
        let _ = fs::remove_file(p);
    }
}

/// A dump's `totals:` line (`summary:` in older formats): the instructions since the zero.
fn total_of(text: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        l.strip_prefix("totals:")
            .or_else(|| l.strip_prefix("summary:"))?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_idle_rate_is_taken_off() {
        let c = Counted {
            requests: 100,
            instructions: 1_500_000,
            seconds: 2.0,
            idle_per_second: 250_000.0,
        };
        assert_eq!(c.per_request(), 10_000.0);
    }

    #[test]
    fn a_dump_total_is_read() {
        let text =
            "version: 1\ncreator: callgrind-3.19.0\nevents: Ir\n\nfn=main\n1 5\n\ntotals: 123456\n";
        assert_eq!(total_of(text), Some(123456));
        assert_eq!(total_of("summary: 42\n"), Some(42));
        assert_eq!(total_of("events: Ir\n"), None);
    }

    #[test]
    fn dumps_are_found_in_order() {
        let dir = std::env::temp_dir().join(format!("callgrind-dumps-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let out = dir.join("A.callgrind");
        for n in [10, 2, 1] {
            fs::write(dir.join(format!("A.callgrind.{n}")), "").unwrap();
        }
        fs::write(dir.join("B.callgrind.3"), "").unwrap();
        fs::write(&out, "").unwrap();
        let names: Vec<String> = dumps(&out)
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["A.callgrind.1", "A.callgrind.2", "A.callgrind.10"]);
        remove_dumps(&out);
        assert!(dumps(&out).is_empty() && !out.exists());
        fs::remove_dir_all(&dir).unwrap();
    }
}
