//! Part 3: `extsvc generate` and Envoy start-up at 10 .. 10,000 services (A and B).

use std::fs;
use std::thread;
use std::time::Duration;

use super::config::{self, Variant};
use super::load::request;
use super::{log, max, med, min, name, Bench, PROXY_CPU};
use extsvc_testkit::runner::{self, Proc};

/// One row of the scale table.
#[derive(Clone, Debug)]
pub struct Row {
    pub n: usize,
    pub size: u64,
    pub gen_wall: f64,
    pub gen_wall_range: (f64, f64),
    pub gen_cpu: f64,
    pub gen_rss_kib: u64,
    pub gen_cmd: Vec<String>,
    /// Spawn to LIVE, median and range, for A then B.
    pub live: [(f64, f64, f64); 2],
    /// VmRSS 0.5 s after LIVE, median, for A then B.
    pub rss_kib: [f64; 2],
}

/// Services at loopback IPs (STATIC clusters: no DNS wait), for each count in `BENCH_SCALE`.
pub fn run(b: &Bench) -> Result<Vec<Row>, String> {
    let mut rows = Vec::new();
    for &n in &b.knobs.scale {
        let d = b.work.join(format!("scale-{n}"));
        fs::create_dir_all(&d).map_err(|e| format!("{}: {e}", d.display()))?;
        let res = d.join("resources.yaml");
        fs::write(&res, config::resources(b, n, false, true))
            .map_err(|e| format!("{}: {e}", res.display()))?;
        let a_path = d.join("A.yaml");
        let mut gens = Vec::new();
        for _ in 0..3 {
            gens.push(config::generate(b, &res, &a_path)?);
        }
        gens.sort_by(|x, y| x.wall.total_cmp(&y.wall));
        let size = fs::metadata(&a_path)
            .map_err(|e| format!("{}: {e}", a_path.display()))?
            .len();
        let cfg_a = config::read_yaml(&a_path)?;
        let authority = |i: usize| config::address(b, i, false, true);
        let mut live = [(0.0, 0.0, 0.0); 2];
        let mut rss_kib = [0.0; 2];
        for (slot, kind) in ['A', 'B'].into_iter().enumerate() {
            let k = kind.to_string();
            let v = Variant {
                kind,
                services: n,
                authority: &authority,
                wasm: None,
                listen: b.port(&k),
                access_log: b.knobs.access_log,
            };
            let path = d.join(format!("{kind}.run.yaml"));
            config::write_yaml(&path, &config::variant(&cfg_a, &v)?)?;
            let (mut lives, mut rsss) = (Vec::new(), Vec::new());
            for _ in 0..(if n >= 10_000 { 2 } else { 3 }) {
                let p = Proc::start(&d, &k, &path, &b.envoy_options(), Some(PROXY_CPU))?;
                lives.push(p.startup.as_secs_f64());
                thread::sleep(Duration::from_millis(500));
                // Nothing listens on 127.1.x.y: a routed request gets 503 (connect failure), a
                // refused one 403.
                let got = request(b.port(&k), &format!("{}.mesh", name(n - 1)))?;
                rsss.push(runner::rss_bytes(p.pid()) as f64 / 1024.0);
                drop(p);
                if got != 503 {
                    return Err(format!(
                        "scale {n} {kind}: the last service answered {got}, expected 503; see {}",
                        d.join(format!("{kind}.envoy.log")).display()
                    ));
                }
            }
            live[slot] = (med(&lives), min(&lives), max(&lives));
            rss_kib[slot] = med(&rsss);
        }
        let row = Row {
            n,
            size,
            gen_wall: gens[1].wall,
            gen_wall_range: (gens[0].wall, gens[2].wall),
            gen_cpu: gens[1].cpu,
            gen_rss_kib: gens.iter().map(|g| g.rss_kib).max().unwrap_or(0),
            gen_cmd: gens[1].cmd.clone(),
            live,
            rss_kib,
        };
        log(&format!(
            "scale {n}: generate {:.0} ms, A LIVE {:.2} s, B LIVE {:.2} s",
            row.gen_wall * 1000.0,
            row.live[0].0,
            row.live[1].0
        ));
        rows.push(row);
    }
    Ok(rows)
}
