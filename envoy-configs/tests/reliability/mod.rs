//! Shared by the hostile-request, upstream-fault and secrets tests (`mod reliability;`): run
//! the real `extsvc generate`, start Envoy on its output, talk to it with curl or raw bytes,
//! read its access log and counters. Loopback only; everything bounded in time.

#![allow(dead_code)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::ffi::OsString;
use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{free_port, wasm_module, Envoy, EnvoyOptions};

/// Bound for anything that should happen at once (a counter, a log line).
pub const WAIT: Duration = Duration::from_secs(5);

/// What `extsvc` did.
#[derive(Debug)]
pub struct Cli {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `extsvc ARGS...` in `dir`, bounded by 30 s (output to files: no pipe can fill up).
pub fn extsvc(dir: &Path, args: &[OsString]) -> Cli {
    let out_path = dir.join("extsvc.stdout");
    let err_path = dir.join("extsvc.stderr");
    let mut child = Command::new(env!("CARGO_BIN_EXE_extsvc"))
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(fs::File::create(&out_path).unwrap())
        .stderr(fs::File::create(&err_path).unwrap())
        .spawn()
        .expect("run extsvc");
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("extsvc {args:?} took over 30 s");
        }
        thread::sleep(Duration::from_millis(10));
    };
    Cli {
        code: status.code(),
        stdout: fs::read_to_string(&out_path).unwrap_or_default(),
        stderr: fs::read_to_string(&err_path).unwrap_or_default(),
    }
}

/// `extsvc generate <dir>/resources.yaml -o <dir>/envoy.yaml --listen 127.0.0.1:<listen>
/// --admin 127.0.0.1:0 --wasm <module> [--dns-resolver <dns>] EXTRA...`.
pub fn generate(
    dir: &Path,
    resources: &str,
    listen: u16,
    dns: Option<SocketAddr>,
    extra: &[OsString],
) -> Cli {
    let input = dir.join("resources.yaml");
    fs::write(&input, resources).unwrap();
    let mut args: Vec<OsString> = vec![
        "generate".into(),
        input.into(),
        "-o".into(),
        dir.join("envoy.yaml").into(),
        "--listen".into(),
        format!("127.0.0.1:{listen}").into(),
        "--admin".into(),
        "127.0.0.1:0".into(),
        "--wasm".into(),
        wasm_module().into(),
    ];
    if let Some(dns) = dns {
        args.push("--dns-resolver".into());
        args.push(dns.to_string().into());
    }
    args.extend(extra.iter().cloned());
    extsvc(dir, &args)
}

/// The generated Envoy, running.
pub struct Sidecar {
    pub envoy: Envoy,
    /// Port of `outbound_http`.
    pub listen: u16,
}

impl Sidecar {
    /// Generates from `resources` and starts Envoy on the result (fresh ports when one was
    /// taken in the meantime).
    pub fn start(dir: &Path, dns: Option<SocketAddr>, resources: &str, extra: &[OsString]) -> Self {
        Self::start_with(dir, dns, resources, extra, &EnvoyOptions::default())
    }

    pub fn start_with(
        dir: &Path,
        dns: Option<SocketAddr>,
        resources: &str,
        extra: &[OsString],
        opts: &EnvoyOptions,
    ) -> Self {
        let mut last = String::new();
        for _ in 0..3 {
            let listen = free_port();
            let cli = generate(dir, resources, listen, dns, extra);
            assert_eq!(cli.code, Some(0), "extsvc generate failed: {cli:?}");
            let config = dir.join("envoy.yaml");
            match Envoy::try_start_file(dir, "sidecar", &config, opts) {
                Ok(envoy) => return Sidecar { envoy, listen },
                Err(e) if e.contains("Address already in use") || e.contains("cannot bind") => {
                    last = e;
                }
                Err(e) => panic!("the generated configuration did not start: {e}"),
            }
        }
        panic!("ports kept colliding: {last}");
    }

    pub fn proxy(&self) -> String {
        format!("http://127.0.0.1:{}", self.listen)
    }

    /// Waits for `count` access log lines (JSON on stdout) and returns them all, parsed.
    pub fn access_log(&self, count: usize) -> Vec<Value> {
        access_log(&self.envoy, count)
    }

    /// Waits until the counter equals `value` (0: checked at once).
    pub fn expect_counter(&self, name: &str, value: u64) {
        expect_counter(&self.envoy, name, value);
    }
}

/// Waits for `count` access log lines of `envoy` and returns them all, parsed.
pub fn access_log(envoy: &Envoy, count: usize) -> Vec<Value> {
    envoy
        .wait_for_stdout_lines("\"listener\":", count, WAIT)
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

pub fn expect_counter(envoy: &Envoy, name: &str, value: u64) {
    if value == 0 {
        assert_eq!(envoy.counter(name), 0, "{name}");
        return;
    }
    let start = Instant::now();
    loop {
        let seen = envoy.counter(name);
        if seen == value {
            return;
        }
        assert!(
            start.elapsed() < WAIT,
            "{name} = {seen}, expected {value}\n{}",
            envoy.log_tail(20)
        );
        thread::sleep(Duration::from_millis(25));
    }
}

/// Strips the common indentation, so resources can be written indented in the code.
pub fn dedent(text: &str) -> String {
    let indent = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.len() - l.trim_start().len())
        .min()
        .unwrap_or(0);
    let mut out: String = text
        .lines()
        .map(|l| l.get(indent..).unwrap_or("").trim_end())
        .collect::<Vec<_>>()
        .join("\n");
    out = out.trim_start_matches('\n').to_string();
    out.push('\n');
    out
}

pub fn mesh(passthrough: bool) -> String {
    dedent(&format!(
        "
        type: Mesh
        name: default
        networking:
          outbound:
            passthrough: {passthrough}
        "
    ))
}

/// An HTTP ExternalService at `address` with TLS origination; `tls` holds more lines of the
/// `tls:` block, e.g. `caCert: {file: ...}`.
pub fn https_service(name: &str, address: &str, tls: &[String]) -> String {
    let mut y = dedent(&format!(
        "
        type: ExternalService
        mesh: default
        name: {name}
        tags:
          kuma.io/service: {name}
          kuma.io/protocol: http
        networking:
          address: {address}
          tls:
            enabled: true
        "
    ));
    for line in tls {
        y.push_str(&format!("    {line}\n"));
    }
    y
}

/// A plain-HTTP ExternalService at `address`.
pub fn http_service(name: &str, address: &str) -> String {
    dedent(&format!(
        "
        type: ExternalService
        mesh: default
        name: {name}
        tags:
          kuma.io/service: {name}
          kuma.io/protocol: http
        networking:
          address: {address}
        "
    ))
}

pub fn docs(parts: &[String]) -> String {
    parts.join("---\n")
}

/// What came back on a raw connection.
#[derive(Debug, Clone)]
pub struct Raw {
    /// The status of the first response, `None` when nothing parseable came back.
    pub status: Option<u16>,
    /// The response head (status line and headers), lossy.
    pub head: String,
    pub body: String,
}

impl Raw {
    /// The first header of that name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<String> {
        self.head.lines().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    }
}

/// Writes `request` as it is to 127.0.0.1:`port` and reads until Envoy closes the connection,
/// the first response is complete (by Content-Length) or 5 s pass.
pub fn raw_request(port: u16, request: &[u8]) -> Raw {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to Envoy");
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    s.set_write_timeout(Some(WAIT)).unwrap();
    // Envoy may answer and close before it read everything: a failed write is fine.
    let _ = s.write_all(request);
    let start = Instant::now();
    let mut raw = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    while start.elapsed() < WAIT {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => break,
        }
        if complete(&raw) {
            break;
        }
    }
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n");
    let (head, body) = match split {
        Some(i) => (&raw[..i], &raw[i + 4..]),
        None => (&raw[..], &raw[raw.len()..]),
    };
    let head = String::from_utf8_lossy(head).to_string();
    let status = head
        .lines()
        .next()
        .filter(|l| l.starts_with("HTTP/"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok());
    Raw {
        status,
        head,
        body: String::from_utf8_lossy(body).to_string(),
    }
}

fn complete(raw: &[u8]) -> bool {
    let Some(i) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(&raw[..i]).to_ascii_lowercase();
    let len = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok());
    len.is_some_and(|n| raw.len() >= i + 4 + n)
}
