//! Traffic policies (MeshTimeout, MeshRetry, MeshCircuitBreaker, MeshHealthCheck,
//! MeshRateLimit, MeshFaultInjection) beside ExternalServices, one module per theme:
//!
//! - `validation`: exact field/message pairs (`tests/policies/*.yaml`) in Kuma's wording.
//! - `effective`: the effective view and warnings of `extsvc validate`, Kuma's merge order,
//!   and the generator (not the filter) holding the policies.
//! - `timeout`, `retry`, `circuit_breaker`, `health_check`, `rate_limit`, `fault_injection`:
//!   each kind in a real Envoy against upstreams that misbehave on purpose.
//! - `mesh_external_service`: policies that target a MeshExternalService.
//!
//! This module holds what they share: the fixtures, the sidecars, a recording upstream.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod circuit_breaker;
mod effective;
mod fault_injection;
mod health_check;
mod mesh_external_service;
mod rate_limit;
mod retry;
mod timeout;
mod validation;

use extsvc_testkit as support;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use support::{dedent, docs, mesh, Sidecar};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/policies")
        .join(name)
}

fn sidecar(dir: &Path, services: &[String]) -> Sidecar {
    let resources: Vec<String> = std::iter::once(mesh(false))
        .chain(services.iter().cloned())
        .collect();
    Sidecar::start(dir, None, &docs(&resources), &[])
}

/// A tcp service behind a Dataplane outbound, with these policies.
fn tcp_sidecar(dir: &Path, address: &str, policies: &[String]) -> Sidecar {
    let service = dedent(&format!(
        "
        type: ExternalService
        mesh: default
        name: raw
        tags: {{kuma.io/service: raw, kuma.io/protocol: tcp}}
        networking: {{address: {address}}}
        "
    ));
    Sidecar::start_with_outbounds(dir, None, 1, &[], |ports| {
        let mut all = vec![
            mesh(false),
            service.clone(),
            support::dataplane(ports[0], "raw"),
        ];
        all.extend(policies.iter().cloned());
        docs(&all)
    })
}

/// An HTTP/1.1 upstream that answers every request 200 with `body_len` bytes, and keeps each
/// request's head (lowercased); stops when dropped.
struct Recording {
    addr: std::net::SocketAddr,
    heads: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
}

impl Recording {
    fn start(body_len: usize) -> Recording {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let heads = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (kept, stopping) = (heads.clone(), stop.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(stream) = stream else { continue };
                let kept = kept.clone();
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(&stream);
                    let mut head = String::new();
                    let mut line = String::new();
                    while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
                        head.push_str(&line.to_ascii_lowercase());
                        line.clear();
                    }
                    kept.lock().unwrap().push(head);
                    let _ = write!(
                        &stream,
                        "HTTP/1.1 200 OK\r\ncontent-length: {body_len}\r\nconnection: close\r\n\r\n{}",
                        "x".repeat(body_len)
                    );
                });
            }
        });
        Recording { addr, heads, stop }
    }

    fn heads(&self) -> Vec<String> {
        self.heads.lock().unwrap().clone()
    }
}

impl Drop for Recording {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop so that it sees `stop`.
        let _ = std::net::TcpStream::connect(self.addr);
    }
}
