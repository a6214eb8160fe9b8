//! A curl wrapper for tests: one request, bounded in time, returning status, headers, body.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// One curl request, built up with the methods below, then [`Curl::send`] or [`Curl::run`].
#[derive(Clone, Debug)]
pub struct Curl {
    url: String,
    method: Option<String>,
    proxy: Option<String>,
    proxy_headers: Vec<String>,
    headers: Vec<String>,
    http2_prior_knowledge: bool,
    http1_1: bool,
    timeout: Duration,
    connect_timeout: Duration,
    cacert: Option<PathBuf>,
    client_cert: Option<(PathBuf, PathBuf)>,
    resolve: Vec<String>,
    connect_to: Vec<String>,
    insecure: bool,
    data: Option<String>,
    netns: Option<String>,
}

/// What came back.
#[derive(Clone, Debug)]
pub struct Response {
    pub status: u16,
    /// e.g. "1.1" or "2" (curl's `%{http_version}`).
    pub http_version: String,
    /// Headers of the final response, names lower-cased, in order.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    /// The first header of that name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A failed transfer: curl's exit code (28 = timeout, 7 = connection refused,
/// 35 = TLS handshake, 56 = receive failure, 60 = bad peer certificate) and its message.
#[derive(Clone, Debug)]
pub struct CurlError {
    pub exit_code: Option<i32>,
    pub stderr: String,
}

impl std::fmt::Display for CurlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "curl exit {:?}: {}", self.exit_code, self.stderr.trim())
    }
}

impl Curl {
    /// A GET of `url`; 10 s overall timeout, 3 s connect timeout, no proxy from the environment.
    pub fn get(url: impl Into<String>) -> Curl {
        Curl {
            url: url.into(),
            method: None,
            proxy: None,
            proxy_headers: Vec::new(),
            headers: Vec::new(),
            http2_prior_knowledge: false,
            http1_1: false,
            timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(3),
            cacert: None,
            client_cert: None,
            resolve: Vec::new(),
            connect_to: Vec::new(),
            insecure: false,
            data: None,
            netns: None,
        }
    }

    /// `-x <proxy>`: send the request in absolute form to this HTTP proxy,
    /// e.g. `http://127.0.0.1:15001`.
    pub fn proxy(mut self, proxy: impl Into<String>) -> Self {
        self.proxy = Some(proxy.into());
        self
    }

    /// `--proxy-header "<name>: <value>"`: a header of the CONNECT request to the proxy (an
    /// https URL), not of the request inside the tunnel; `Host` replaces curl's own.
    pub fn proxy_header(mut self, name: &str, value: &str) -> Self {
        self.proxy_headers.push(format!("{name}: {value}"));
        self
    }

    /// `-H "Host: <host>"`.
    pub fn host(self, host: &str) -> Self {
        self.header("Host", host)
    }

    /// `-H "<name>: <value>"`.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push(format!("{name}: {value}"));
        self
    }

    /// `-X <method>`.
    pub fn method(mut self, method: &str) -> Self {
        self.method = Some(method.to_string());
        self
    }

    /// `--data-binary <body>` (makes it a POST unless a method is set).
    pub fn data(mut self, body: &str) -> Self {
        self.data = Some(body.to_string());
        self
    }

    /// `--http2-prior-knowledge` (cleartext HTTP/2).
    pub fn http2_prior_knowledge(mut self) -> Self {
        self.http2_prior_knowledge = true;
        self
    }

    /// `--http1.1` (no ALPN h2 over TLS).
    pub fn http1_1(mut self) -> Self {
        self.http1_1 = true;
        self
    }

    /// `--max-time`.
    pub fn timeout(mut self, t: Duration) -> Self {
        self.timeout = t;
        self
    }

    /// `--connect-timeout`.
    pub fn connect_timeout(mut self, t: Duration) -> Self {
        self.connect_timeout = t;
        self
    }

    /// `--cacert <file>` for https URLs.
    pub fn cacert(mut self, path: &Path) -> Self {
        self.cacert = Some(path.to_path_buf());
        self
    }

    /// `--cert <cert> --key <key>`.
    pub fn client_cert(mut self, cert: &Path, key: &Path) -> Self {
        self.client_cert = Some((cert.to_path_buf(), key.to_path_buf()));
        self
    }

    /// `--resolve host:port:addr` (e.g. `("httpbin.test", 8443, "127.0.0.1")`).
    pub fn resolve(mut self, host: &str, port: u16, addr: &str) -> Self {
        self.resolve.push(format!("{host}:{port}:{addr}"));
        self
    }

    /// `--connect-to host:port:to_host:to_port`: keep the URL (Host, SNI) but connect elsewhere.
    pub fn connect_to(mut self, host: &str, port: u16, to_host: &str, to_port: u16) -> Self {
        self.connect_to
            .push(format!("{host}:{port}:{to_host}:{to_port}"));
        self
    }

    /// `-k`.
    pub fn insecure(mut self) -> Self {
        self.insecure = true;
        self
    }

    /// Runs curl in this network namespace (`ip netns exec`), with its `resolv.conf`.
    pub fn in_netns(mut self, name: &str) -> Self {
        self.netns = Some(name.to_string());
        self
    }

    /// Runs curl; `Err` when no HTTP response came back (connection refused, reset,
    /// TLS failure, timeout).
    pub fn send(&self) -> Result<Response, CurlError> {
        let dir = tempfile::tempdir().expect("temp dir for curl");
        let head_path = dir.path().join("headers");
        let body_path = dir.path().join("body");
        let mut cmd = match &self.netns {
            Some(ns) => {
                let mut cmd = Command::new("ip");
                cmd.args(["netns", "exec", ns, "curl"]);
                cmd
            }
            None => Command::new("curl"),
        };
        // -q first: ignore ~/.curlrc.
        cmd.args(["-q", "-sS", "--globoff", "-D"])
            .arg(&head_path)
            .arg("-o")
            .arg(&body_path)
            .args(["-w", "%{http_code} %{http_version}"])
            .args(["--max-time", &secs(self.timeout)])
            .args(["--connect-timeout", &secs(self.connect_timeout)]);
        for var in [
            "http_proxy",
            "https_proxy",
            "all_proxy",
            "no_proxy",
            "HTTP_PROXY",
            "HTTPS_PROXY",
            "ALL_PROXY",
            "NO_PROXY",
        ] {
            cmd.env_remove(var);
        }
        if let Some(p) = &self.proxy {
            cmd.args(["-x", p]);
        }
        if let Some(m) = &self.method {
            cmd.args(["-X", m]);
        }
        if let Some(d) = &self.data {
            cmd.args(["--data-binary", d]);
        }
        for h in &self.headers {
            cmd.args(["-H", h]);
        }
        for h in &self.proxy_headers {
            cmd.args(["--proxy-header", h]);
        }
        if self.http2_prior_knowledge {
            cmd.arg("--http2-prior-knowledge");
        }
        if self.http1_1 {
            cmd.arg("--http1.1");
        }
        if let Some(ca) = &self.cacert {
            cmd.arg("--cacert").arg(ca);
        }
        if let Some((c, k)) = &self.client_cert {
            cmd.arg("--cert").arg(c).arg("--key").arg(k);
        }
        for r in &self.resolve {
            cmd.args(["--resolve", r]);
        }
        for c in &self.connect_to {
            cmd.args(["--connect-to", c]);
        }
        if self.insecure {
            cmd.arg("-k");
        }
        cmd.arg(&self.url).stdin(Stdio::null());
        let out = cmd
            .output()
            .unwrap_or_else(|e| panic!("cannot run curl ({e}): run `make setup`"));
        if !out.status.success() {
            return Err(CurlError {
                exit_code: out.status.code(),
                stderr: String::from_utf8_lossy(&out.stderr).to_string(),
            });
        }
        let w = String::from_utf8_lossy(&out.stdout).to_string();
        let (code, version) = w.split_once(' ').unwrap_or((w.as_str(), ""));
        let status = code.trim().parse::<u16>().unwrap_or(0);
        let head = fs::read_to_string(&head_path).unwrap_or_default();
        let body = fs::read(&body_path).unwrap_or_default();
        Ok(Response {
            status,
            http_version: version.trim().to_string(),
            headers: last_header_block(&head),
            body: String::from_utf8_lossy(&body).to_string(),
        })
    }

    /// Like [`Curl::send`], panicking with curl's message when no response came back.
    pub fn run(&self) -> Response {
        self.send()
            .unwrap_or_else(|e| panic!("curl {}: {e}", self.url))
    }
}

fn secs(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64())
}

/// Parses the `-D` dump; with proxies or `100 Continue` it holds several blocks: keep the last.
fn last_header_block(dump: &str) -> Vec<(String, String)> {
    let mut blocks: Vec<Vec<(String, String)>> = Vec::new();
    for line in dump.lines() {
        let line = line.trim_end_matches('\r');
        if line.starts_with("HTTP/") {
            blocks.push(Vec::new());
        } else if let Some((k, v)) = line.split_once(':') {
            if let Some(b) = blocks.last_mut() {
                b.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
            }
        }
    }
    blocks.pop().unwrap_or_default()
}
