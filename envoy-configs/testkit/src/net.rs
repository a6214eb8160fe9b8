//! Loopback ports, temp dirs, bounded polling and a TCP echo round trip.

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

/// Ports are taken from a per-process window of a high range, so that two test
/// processes running at once rarely look at the same ports, and a port is only
/// handed out when both TCP and UDP binds on 127.0.0.1 succeed. A port is never
/// handed out twice by one process.
///
/// Prefer port 0 in configurations where the test can ask Envoy for the bound
/// port afterwards ([`crate::Envoy::listener_port`]); use this for
/// ports that must be known before Envoy starts.
pub fn free_port() -> u16 {
    const LOW: u32 = 20_000;
    const SPAN: u32 = 30_000; // 20000..50000, below the usual ephemeral range
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    static GIVEN: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
    let _ = NEXT.compare_exchange(
        u32::MAX,
        (std::process::id().wrapping_mul(7919)) % SPAN,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    for _ in 0..2_000 {
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let port = u16::try_from(LOW + n % SPAN).expect("port fits");
        let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
        let given = given.get_or_insert_with(HashSet::new);
        if given.contains(&port) {
            continue;
        }
        let tcp = TcpListener::bind((Ipv4Addr::LOCALHOST, port));
        let udp = UdpSocket::bind((Ipv4Addr::LOCALHOST, port));
        if tcp.is_ok() && udp.is_ok() {
            given.insert(port);
            return port;
        }
    }
    panic!("no free loopback port found in 2000 tries");
}

/// A fresh temp dir for one test. With `EXTSVC_KEEP_TEST_DIRS=1` the dir is kept
/// after the test (its path is printed) to look at Envoy's logs and configs.
pub fn test_dir() -> tempfile::TempDir {
    let keep = std::env::var_os("EXTSVC_KEEP_TEST_DIRS").is_some_and(|v| v == "1");
    let dir = tempfile::Builder::new()
        .prefix("extsvc-e2e-")
        .disable_cleanup(keep)
        .tempdir()
        .expect("create temp dir");
    if keep {
        eprintln!("keeping test dir {}", dir.path().display());
    }
    dir
}

/// Calls `f` every `interval` until it returns `Ok`, for at most `timeout`.
/// Panics with the last error when time runs out.
pub fn eventually<T>(
    what: &str,
    timeout: Duration,
    interval: Duration,
    mut f: impl FnMut() -> Result<T, String>,
) -> T {
    let start = Instant::now();
    loop {
        match f() {
            Ok(v) => return v,
            Err(e) => {
                if start.elapsed() >= timeout {
                    panic!("{what}: still failing after {timeout:?}: {e}");
                }
            }
        }
        thread::sleep(interval);
    }
}

/// Sends `msg` over TCP to `addr` and reads as many bytes back (bounded by 5 s).
pub fn tcp_echo(addr: SocketAddr, msg: &str) -> String {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(3))
        .unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("read timeout");
    s.write_all(msg.as_bytes()).expect("write");
    let mut out = vec![0u8; msg.len()];
    if let Err(e) = s.read_exact(&mut out) {
        panic!("tcp echo from {addr}: {e}");
    }
    String::from_utf8_lossy(&out).to_string()
}
