//! The soak (`make soak`, `src/bin/soak.rs`): fixed-rate load through the generated
//! configuration with TLS origination, checking that nothing leaks and memory stays flat.
//!
//! An upstream Envoy on loopback serves TLS for `httpbin.test` (the declared service), plain
//! HTTP for `plain.test` (undeclared: it must never see a request) and DNS for both. The Envoy
//! under test runs what `extsvc generate` makes of one ExternalService (TLS, caCert) with
//! passthrough off. The load mixes declared requests (`Host: httpbin.mesh`, want 2xx) and
//! undeclared ones (`Host: plain.test:<port>`, want 403) at a fixed rate on keep-alive
//! connections, and every 10 s samples Envoy's resident memory (/proc) and the filter's gauge
//! `wasmcustom.external_service.vm_memory_bytes`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use extsvc_testkit::runner::{self, Proc, Tracked};
use extsvc_testkit::{Ca, EnvoyOptions, Sidecar, UpstreamBuilder};

const SAMPLE_PERIOD: Duration = Duration::from_secs(10);
const GAUGE: &str = "wasmcustom.external_service.vm_memory_bytes";
const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// What one soak run does.
#[derive(Clone, Debug)]
pub struct Options {
    pub seconds: f64,
    /// Requests per second.
    pub rate: f64,
    /// Every Nth request asks for the undeclared host.
    pub undeclared_every: usize,
    /// Keep-alive connections.
    pub workers: usize,
    /// Seconds before memory is judged.
    pub warmup: f64,
    /// The file whose `## Soak` section is written (BENCHMARKS.md).
    pub out: PathBuf,
    /// The file written whole (soak/RESULTS.md).
    pub results: PathBuf,
    /// Keep the work directory.
    pub keep: bool,
}

/// Outcome counts: `"200"`, `"403"`, `"error:TimedOut"`, ...
type Outcomes = BTreeMap<String, u64>;

#[derive(Default)]
struct Tally {
    declared: Outcomes,
    undeclared: Outcomes,
    latencies: Vec<f64>,
    late: u64,
}

/// Fixed-rate requests: slot i is due at start + i / rate; workers take slots in turn, each on
/// its own keep-alive connection. Every `undeclared_every`-th slot asks for the undeclared host.
struct Load {
    addr: SocketAddr,
    rate: f64,
    total_slots: usize,
    undeclared_host: String,
    undeclared_every: usize,
    next_slot: AtomicUsize,
    start: Instant,
    tally: Mutex<Tally>,
}

impl Load {
    fn take(&self) -> Option<usize> {
        if runner::stopping() {
            return None;
        }
        let i = self.next_slot.fetch_add(1, Ordering::SeqCst);
        (i < self.total_slots).then_some(i)
    }

    fn worker(&self) {
        let mut conn: Option<Conn> = None;
        while let Some(i) = self.take() {
            let due = self.start + Duration::from_secs_f64(i as f64 / self.rate);
            let now = Instant::now();
            let mut late = false;
            if due > now {
                thread::sleep(due - now);
            } else if now - due > Duration::from_millis(100) {
                late = true;
            }
            let declared = i % self.undeclared_every != 0;
            let host = if declared {
                "httpbin.mesh"
            } else {
                self.undeclared_host.as_str()
            };
            let t0 = Instant::now();
            let outcome = match self.request(&mut conn, host, i) {
                Ok(status) => status.to_string(),
                Err(kind) => {
                    conn = None;
                    format!("error:{kind:?}")
                }
            };
            let took = t0.elapsed().as_secs_f64();
            let mut t = self.tally.lock().unwrap_or_else(|e| e.into_inner());
            let table = if declared {
                &mut t.declared
            } else {
                &mut t.undeclared
            };
            *table.entry(outcome).or_default() += 1;
            t.latencies.push(took);
            t.late += u64::from(late);
        }
    }

    fn request(
        &self,
        conn: &mut Option<Conn>,
        host: &str,
        i: usize,
    ) -> Result<u16, std::io::ErrorKind> {
        if conn.is_none() {
            *conn = Some(Conn::open(self.addr).map_err(|e| e.kind())?);
        }
        let Some(c) = conn.as_mut() else {
            return Err(std::io::ErrorKind::NotConnected);
        };
        let (status, close) = c.get(&format!("/soak/{i}"), host).map_err(|e| e.kind())?;
        if close {
            *conn = None;
        }
        Ok(status)
    }

    fn sent(&self) -> u64 {
        let t = self.tally.lock().unwrap_or_else(|e| e.into_inner());
        t.declared.values().sum::<u64>() + t.undeclared.values().sum::<u64>()
    }
}

/// One HTTP/1.1 keep-alive connection (bodies by Content-Length or chunked).
struct Conn {
    reader: BufReader<TcpStream>,
}

impl Conn {
    fn open(addr: SocketAddr) -> std::io::Result<Conn> {
        let s = TcpStream::connect_timeout(&addr, Duration::from_secs(10))?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        s.set_write_timeout(Some(Duration::from_secs(10)))?;
        s.set_nodelay(true)?;
        Ok(Conn {
            reader: BufReader::new(s),
        })
    }

    /// GET `path` with `Host: host`: the status, and whether the server closes the connection.
    fn get(&mut self, path: &str, host: &str) -> std::io::Result<(u16, bool)> {
        use std::io::{Error, ErrorKind};
        let bad = |what: &str| Error::new(ErrorKind::InvalidData, what.to_string());
        write!(
            self.reader.get_mut(),
            "GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept-Encoding: identity\r\n\r\n"
        )?;
        let mut line = String::new();
        if self.reader.read_line(&mut line)? == 0 {
            return Err(Error::new(ErrorKind::UnexpectedEof, "closed"));
        }
        let status = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse::<u16>().ok())
            .ok_or_else(|| bad("status line"))?;
        let (mut length, mut chunked, mut close) = (0usize, false, false);
        loop {
            line.clear();
            if self.reader.read_line(&mut line)? == 0 {
                return Err(Error::new(ErrorKind::UnexpectedEof, "closed in headers"));
            }
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            let Some((k, v)) = l.split_once(':') else {
                continue;
            };
            let (k, v) = (k.trim().to_ascii_lowercase(), v.trim().to_ascii_lowercase());
            match k.as_str() {
                "content-length" => length = v.parse().map_err(|_| bad("content-length"))?,
                "transfer-encoding" => chunked = v.contains("chunked"),
                "connection" => close = v == "close",
                _ => {}
            }
        }
        if chunked {
            loop {
                line.clear();
                self.reader.read_line(&mut line)?;
                let size = line.trim().split(';').next().unwrap_or("");
                let n = usize::from_str_radix(size, 16).map_err(|_| bad("chunk size"))?;
                self.skip(n + 2)?;
                if n == 0 {
                    break;
                }
            }
        } else {
            self.skip(length)?;
        }
        Ok((status, close))
    }

    fn skip(&mut self, n: usize) -> std::io::Result<()> {
        let copied = std::io::copy(&mut (&mut self.reader).take(n as u64), &mut std::io::sink())?;
        if copied as usize == n {
            Ok(())
        } else {
            Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "short body",
            ))
        }
    }
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((p / 100.0 * sorted.len() as f64) as usize).min(sorted.len() - 1);
    sorted[i]
}

fn mib(b: f64) -> String {
    format!("{:.1} MiB", b / 1_048_576.0)
}

/// Python's dict notation, as the report has always shown outcomes: `{'200': 108000}`.
fn outcomes(o: &Outcomes) -> String {
    let items: Vec<String> = o.iter().map(|(k, n)| format!("'{k}': {n}")).collect();
    format!("{{{}}}", items.join(", "))
}

/// Runs the soak and writes its results; `Ok(true)` when every check passed.
pub fn run(opts: &Options) -> Result<bool, String> {
    if opts.rate <= 0.0 || opts.seconds <= 0.0 || opts.workers == 0 || opts.undeclared_every == 0 {
        return Err("--rate, --seconds, --workers and --undeclared-every must be above 0".into());
    }
    let work = tempfile::Builder::new()
        .prefix("extsvc-soak-")
        .disable_cleanup(opts.keep)
        .tempdir()
        .map_err(|e| format!("work dir: {e}"))?;
    let dir = work.path();
    let ca = Ca::new(dir, "soak-ca");
    let server = ca.server_cert(dir, "server", &["httpbin.test"], &[LOCALHOST]);
    let upstream = UpstreamBuilder::new()
        .tls("tls", &server)
        .plain("plain")
        .dns("httpbin.test", &[LOCALHOST])
        .dns("plain.test", &[LOCALHOST])
        .start(dir);
    let _up_tracked = Tracked::new(upstream.envoy.pid().unwrap_or(0));
    runner::check()?;
    let resources = format!(
        "type: Mesh\nname: default\nnetworking:\n  outbound:\n    passthrough: false\n---\n\
         type: ExternalService\nmesh: default\nname: httpbin\ntags:\n  kuma.io/service: httpbin\n  \
         kuma.io/protocol: http\nnetworking:\n  address: httpbin.test:{}\n  tls:\n    enabled: true\n    \
         caCert: {{file: \"{}\"}}\n",
        upstream.port("tls"),
        ca.ca_path().display()
    );
    let envoy_opts = EnvoyOptions {
        log_level: "warning".to_string(),
        ..EnvoyOptions::default()
    };
    // The access log goes to a file in the work dir (deleted at the end).
    let sidecar = Sidecar::start_with(dir, upstream.dns_addr(), &resources, &[], &envoy_opts);
    let listen = sidecar.listen;
    let envoy = Proc::track(sidecar.envoy);

    let undeclared_host = format!("plain.test:{}", upstream.port("plain"));
    let load = Arc::new(Load {
        addr: SocketAddr::from((Ipv4Addr::LOCALHOST, listen)),
        rate: opts.rate,
        total_slots: (opts.rate * opts.seconds) as usize,
        undeclared_host: undeclared_host.clone(),
        undeclared_every: opts.undeclared_every,
        next_slot: AtomicUsize::new(0),
        start: Instant::now() + Duration::from_millis(200),
        tally: Mutex::new(Tally::default()),
    });
    println!(
        "soak: {} req/s for {} s through 127.0.0.1:{listen} (1 in {} to {undeclared_host}); work dir {}",
        opts.rate,
        opts.seconds,
        opts.undeclared_every,
        dir.display()
    );
    let began = Instant::now();
    let workers: Vec<_> = (0..opts.workers)
        .map(|_| {
            let load = Arc::clone(&load);
            thread::spawn(move || load.worker())
        })
        .collect();
    let mut samples: Vec<(f64, u64, u64)> = Vec::new(); // (t, rss, gauge)
    let sample = |samples: &mut Vec<(f64, u64, u64)>| {
        let gauge = envoy.stat(GAUGE).unwrap_or(0);
        samples.push((
            began.elapsed().as_secs_f64(),
            runner::rss_bytes(envoy.pid()),
            gauge,
        ));
    };
    let mut next_sample = began;
    while workers.iter().any(|w| !w.is_finished()) {
        if Instant::now() >= next_sample {
            sample(&mut samples);
            if let Some((t, rss, g)) = samples.last() {
                println!(
                    "  t={t:6.0}s  requests={:8}  rss={}  vm_memory={}",
                    load.sent(),
                    mib(*rss as f64),
                    mib(*g as f64)
                );
            }
            next_sample += SAMPLE_PERIOD;
        }
        thread::sleep(Duration::from_millis(200));
    }
    for w in workers {
        let _ = w.join();
    }
    runner::check()?;
    let elapsed = began.elapsed().as_secs_f64();
    thread::sleep(Duration::from_millis(500));
    sample(&mut samples);
    let up_stats = upstream.envoy.stats();
    drop(envoy);

    let t = load.tally.lock().unwrap_or_else(|e| e.into_inner());
    let declared_total: u64 = t.declared.values().sum();
    let declared_ok: u64 = t
        .declared
        .iter()
        .filter(|(k, _)| k.starts_with('2'))
        .map(|(_, n)| n)
        .sum();
    let undeclared_total: u64 = t.undeclared.values().sum();
    let undeclared_403 = t.undeclared.get("403").copied().unwrap_or(0);
    let leaks = up_stats
        .get("http.plain.downstream_rq_total")
        .copied()
        .unwrap_or(0);
    let leak_cx = up_stats
        .get("http.plain.downstream_cx_total")
        .copied()
        .unwrap_or(0);
    let mut judged: Vec<(f64, u64, u64)> = samples
        .iter()
        .copied()
        .filter(|s| s.0 >= opts.warmup)
        .collect();
    if judged.is_empty() {
        judged = samples[samples.len().saturating_sub(2)..].to_vec();
    }
    let (rss0, rss1) = (judged[0].1 as f64, judged[judged.len() - 1].1 as f64);
    let rss_max = judged.iter().map(|s| s.1).max().unwrap_or(0) as f64;
    let mut g_values: Vec<u64> = judged.iter().map(|s| s.2).collect();
    g_values.sort_unstable();
    g_values.dedup();
    let rss_flat = rss_max - rss0 <= f64::max(2.0 * 1_048_576.0, 0.05 * rss0);
    let vm_flat = g_values.len() == 1 && g_values[0] > 0;
    let checks = [
        (
            "zero non-2xx for the declared service",
            declared_ok == declared_total && declared_total > 0,
        ),
        (
            "every undeclared request refused with 403",
            undeclared_403 == undeclared_total && undeclared_total > 0,
        ),
        (
            "zero requests or connections reach the undeclared upstream",
            leaks == 0 && leak_cx == 0,
        ),
        (
            "filter VM memory flat (gauge unchanged after warm-up)",
            vm_flat,
        ),
        (
            "Envoy RSS flat (max after warm-up within max(2 MiB, 5%) of the first)",
            rss_flat,
        ),
    ];
    let mut lat = t.latencies.clone();
    lat.sort_by(f64::total_cmp);
    let achieved = if elapsed > 0.0 {
        (declared_total + undeclared_total) as f64 / elapsed
    } else {
        0.0
    };
    let gauges: Vec<String> = g_values.iter().map(u64::to_string).collect();
    let mut s = String::new();
    let _ = writeln!(s, "## Soak\n");
    let _ = writeln!(
        s,
        "Written by `make soak` (`soak/src/bin/soak.rs`); `SOAK_SECONDS` (default 600) and \
         `SOAK_RATE` (default 200 req/s) set the run. Fixed-rate HTTP/1.1 keep-alive load ({} connections) \
         into the generated configuration: `httpbin.mesh` -> TLS origination (caCert, SAN checked) to a \
         loopback upstream Envoy; 1 request in {} asks for an undeclared host that a leak would really reach.\n",
        opts.workers, opts.undeclared_every
    );
    let _ = writeln!(
        s,
        "- Date: {}; commit {}; duration {} s{} at {} req/s (achieved {achieved:.1} req/s, {} requests \
         started >100 ms late); load average at the end {}",
        runner::utc_now(),
        runner::commit(),
        opts.seconds,
        if opts.seconds < 600.0 {
            " (a shortened run; the default is 600 s)"
        } else {
            ""
        },
        opts.rate,
        t.late,
        runner::load_average(false)
    );
    let _ = writeln!(
        s,
        "- Declared (`httpbin.mesh`): {declared_total} requests, {declared_ok} 2xx, outcomes {}",
        outcomes(&t.declared)
    );
    let _ = writeln!(
        s,
        "- Undeclared (`plain.test`): {undeclared_total} requests, {undeclared_403} answered 403, \
         outcomes {}; undeclared upstream saw {leaks} requests, {leak_cx} connections",
        outcomes(&t.undeclared)
    );
    let _ = writeln!(
        s,
        "- Latency (client side, all requests): p50 {:.2} ms, p99 {:.2} ms, max {:.1} ms",
        pct(&lat, 50.0) * 1000.0,
        pct(&lat, 99.0) * 1000.0,
        lat.last().copied().unwrap_or(0.0) * 1000.0
    );
    let _ = writeln!(
        s,
        "- Envoy RSS after {} s warm-up: first {}, last {}, max {} (growth {:+.0} KiB)",
        opts.warmup,
        mib(rss0),
        mib(rss1),
        mib(rss_max),
        (rss1 - rss0) / 1024.0
    );
    let _ = writeln!(
        s,
        "- `{GAUGE}` after warm-up: [{}] bytes\n",
        gauges.join(", ")
    );
    let _ = writeln!(s, "| t (s) | Envoy RSS | filter VM memory |\n|---|---|---|");
    for (t, rss, g) in &samples {
        let _ = writeln!(s, "| {t:.0} | {} | {g} |", mib(*rss as f64));
    }
    let _ = writeln!(s, "\n| check | result |\n|---|---|");
    for (name, ok) in &checks {
        let _ = writeln!(s, "| {name} | {} |", if *ok { "pass" } else { "**FAIL**" });
    }
    println!("{s}");
    let results = format!("# Soak results\n\n{}", s.replacen("## Soak\n", "", 1));
    fs::write(&opts.results, results)
        .map_err(|e| format!("writing {}: {e}", opts.results.display()))?;
    let text = fs::read_to_string(&opts.out).unwrap_or_default();
    fs::write(&opts.out, runner::replace_section(&text, "## Soak", &s))
        .map_err(|e| format!("writing {}: {e}", opts.out.display()))?;
    Ok(checks.iter().all(|(_, ok)| *ok))
}
