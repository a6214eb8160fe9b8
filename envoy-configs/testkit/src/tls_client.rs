//! A hand-made TLS client, `openssl s_client`: for what no proxy or curl sends, such as an SNI
//! that is no DNS name (Kuma's `httpbin{mesh=default}`), a client certificate of one's choice,
//! and raw bytes after the handshake. Bounded in time; to loopback, or from a network namespace
//! a test made ([`TlsClient::in_netns`]).

use std::fs;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// One connection to make.
#[derive(Clone, Debug)]
pub struct TlsClient {
    at: SocketAddr,
    sni: String,
    certificate: Option<(PathBuf, PathBuf)>,
    trust: Option<PathBuf>,
    /// The network namespace the client runs in, if not this process's.
    netns: Option<String>,
}

/// What came of it.
#[derive(Clone, Debug)]
pub struct TlsExchange {
    /// What the server sent after the handshake.
    pub received: String,
    /// openssl's account: `CONNECTION ESTABLISHED` once its side of the handshake is done (a
    /// TLS 1.3 server refuses a client certificate after that, with an alert read later),
    /// and any error, such as `alert unknown ca`.
    pub log: String,
}

impl TlsClient {
    /// To `at`, presenting `sni`.
    pub fn new(at: SocketAddr, sni: &str) -> TlsClient {
        TlsClient {
            at,
            sni: sni.to_string(),
            certificate: None,
            trust: None,
            netns: None,
        }
    }

    /// Presents this certificate (PEM file) and key.
    pub fn certificate(mut self, cert: &Path, key: &Path) -> TlsClient {
        self.certificate = Some((cert.to_path_buf(), key.to_path_buf()));
        self
    }

    /// Verifies the server by this CA (the connection fails otherwise).
    pub fn trust(mut self, ca: &Path) -> TlsClient {
        self.trust = Some(ca.to_path_buf());
        self
    }

    /// Runs the client in this network namespace (`ip netns exec`).
    pub fn in_netns(mut self, name: &str) -> TlsClient {
        self.netns = Some(name.to_string());
        self
    }

    /// Connects, sends `bytes`, and reads until the server closes (at most 10 s). `dir` holds
    /// the client's output files. Panics, saying so, when `openssl` cannot be run.
    pub fn send(&self, dir: &Path, bytes: &str) -> TlsExchange {
        let out_path = dir.join("tls-client.stdout");
        let log_path = dir.join("tls-client.stderr");
        let mut command = match &self.netns {
            Some(ns) => {
                let mut command = Command::new("ip");
                command.args(["netns", "exec", ns, "openssl"]);
                command
            }
            None => Command::new("openssl"),
        };
        command
            .args(["s_client", "-brief", "-ign_eof"])
            .args(["-connect", &self.at.to_string()])
            .args(["-servername", &self.sni]);
        if let Some((cert, key)) = &self.certificate {
            command.arg("-cert").arg(cert).arg("-key").arg(key);
        }
        if let Some(ca) = &self.trust {
            command.arg("-CAfile").arg(ca).arg("-verify_return_error");
        }
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(fs::File::create(&out_path).expect("client output file"))
            .stderr(fs::File::create(&log_path).expect("client log file"))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run `openssl s_client` (install openssl): {e}"));
        if let Some(mut stdin) = child.stdin.take() {
            // A server that closes first makes this fail; what it sent is still read below.
            let _ = stdin.write_all(bytes.as_bytes());
        }
        let start = Instant::now();
        loop {
            if child.try_wait().expect("wait for openssl").is_some() {
                break;
            }
            if start.elapsed() > Duration::from_secs(10) {
                let _ = child.kill();
                let _ = child.wait();
                panic!("openssl s_client to {} took over 10 s", self.at);
            }
            thread::sleep(Duration::from_millis(10));
        }
        TlsExchange {
            received: fs::read_to_string(&out_path).unwrap_or_default(),
            log: fs::read_to_string(&log_path).unwrap_or_default(),
        }
    }
}
