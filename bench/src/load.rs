//! wrk on [`LOAD_CPU`], and the proxy's CPU time (`/proc/<pid>/stat`) across it.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::process::Command;
use std::time::Duration;

use super::{Sample, LOAD_CPU};
use extsvc_testkit::runner;

/// Where the load comes from and goes to.
#[derive(Clone, Copy, Debug)]
pub struct Target<'a> {
    /// wrk runs in this network namespace (`ip netns exec`), else in the machine's.
    pub netns: Option<&'a str>,
    pub addr: SocketAddr,
}

impl Target<'_> {
    /// A proxy listening on 127.0.0.1:`port`, in the machine's namespace.
    pub fn local(port: u16) -> Target<'static> {
        Target {
            netns: None,
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
        }
    }
}

/// `[ip netns exec NS] taskset -c LOAD_CPU wrk -t1 -cN -dSs --latency -H "Host: host"
/// http://ADDR/get`. Any non-2xx/3xx answer or socket error fails the run. `cpu_us` is left 0.
pub fn wrk(
    to: &Target,
    seconds: u64,
    connections: usize,
    host: &str,
) -> Result<(Sample, Vec<String>), String> {
    let netns = to.netns.map(|ns| ["ip", "netns", "exec", ns]);
    let cmd: Vec<String> = netns
        .iter()
        .flatten()
        .map(|a| a.to_string())
        .chain([
            "taskset".into(),
            "-c".into(),
            LOAD_CPU.to_string(),
            "wrk".into(),
            "-t1".into(),
            format!("-c{connections}"),
            format!("-d{seconds}s"),
            "--latency".into(),
            "-H".into(),
            format!("Host: {host}"),
            format!("http://{}/get", to.addr),
        ])
        .collect();
    let o = runner::run(
        Command::new(&cmd[0]).args(&cmd[1..]),
        Duration::from_secs(seconds + 60),
    )?;
    if !o.status.success() {
        return Err(format!(
            "{} failed: {}{}",
            cmd.join(" "),
            o.stdout,
            o.stderr
        ));
    }
    let out = o.stdout;
    if out.contains("Non-2xx or 3xx responses:") || out.contains("Socket errors:") {
        return Err(format!("wrk saw failures on {}:\n{out}", to.addr));
    }
    let mut p50 = None;
    let mut p99 = None;
    let mut requests = None;
    for line in out.lines() {
        let t: Vec<&str> = line.split_whitespace().collect();
        match t.as_slice() {
            [pct @ ("50%" | "99%"), value] => {
                let v = micros(value);
                if *pct == "50%" {
                    p50 = v;
                } else {
                    p99 = v;
                }
            }
            [n, "requests", "in", ..] => requests = n.parse::<u64>().ok(),
            _ => {}
        }
    }
    match (requests, p50, p99) {
        (Some(requests), Some(p50), Some(p99)) => Ok((
            Sample {
                requests,
                rps: requests as f64 / seconds as f64,
                p50,
                p99,
                cpu_us: 0.0,
            },
            cmd,
        )),
        _ => Err(format!("cannot read wrk's output:\n{out}")),
    }
}

/// `960.00us`, `1.72ms`, `1.2s`, `1m` -> µs.
fn micros(v: &str) -> Option<f64> {
    let (num, unit) = v.split_at(v.find(|c: char| c.is_ascii_alphabetic())?);
    let scale = match unit {
        "us" => 1.0,
        "ms" => 1e3,
        "s" => 1e6,
        "m" => 60e6,
        _ => return None,
    };
    Some(num.parse::<f64>().ok()? * scale)
}

/// [`wrk`] with the proxy's CPU time per request.
pub fn measured(
    pid: u32,
    to: &Target,
    seconds: u64,
    connections: usize,
    host: &str,
) -> Result<(Sample, Vec<String>), String> {
    let before = runner::cpu_ticks(pid)?;
    let (mut s, cmd) = wrk(to, seconds, connections, host)?;
    let ticks = runner::cpu_ticks(pid)?.saturating_sub(before);
    s.cpu_us = ticks as f64 / runner::ticks_per_second() * 1e6 / s.requests.max(1) as f64;
    Ok((s, cmd))
}

/// One `GET /get` with `Host: host` on a fresh connection to 127.0.0.1:`port`: the status.
pub fn request(port: u16, host: &str) -> Result<u16, String> {
    request_at(SocketAddr::from((Ipv4Addr::LOCALHOST, port)), host)
}

/// [`request`] to any address (from the calling thread's network namespace).
pub fn request_at(addr: SocketAddr, host: &str) -> Result<u16, String> {
    let t = Duration::from_secs(5);
    let err = |e: std::io::Error| format!("GET http://{addr}/get (Host: {host}): {e}");
    let mut s = TcpStream::connect_timeout(&addr, t).map_err(err)?;
    s.set_read_timeout(Some(t)).map_err(err)?;
    write!(
        s,
        "GET /get HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .map_err(err)?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).map_err(err)?;
    String::from_utf8_lossy(&raw)
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("GET http://{addr}/get (Host: {host}): no status line"))
}

/// `n` requests `GET /get` with `Host: host`, one after another on one kept-alive connection
/// to `addr` (from the calling thread's network namespace); every answer must be a 200.
pub fn in_sequence(addr: SocketAddr, host: &str, n: usize) -> Result<(), String> {
    let t = Duration::from_secs(60);
    let err = |e: std::io::Error| format!("GET http://{addr}/get (Host: {host}): {e}");
    let mut s = TcpStream::connect_timeout(&addr, t).map_err(err)?;
    s.set_read_timeout(Some(t)).map_err(err)?;
    s.set_nodelay(true).map_err(err)?;
    let ask = format!("GET /get HTTP/1.1\r\nHost: {host}\r\n\r\n");
    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    for i in 0..n {
        s.write_all(ask.as_bytes()).map_err(err)?;
        loop {
            if let Some(len) = whole_response(&got) {
                let status = String::from_utf8_lossy(&got[..len.min(12)]).into_owned();
                if !status.starts_with("HTTP/1.1 200") {
                    return Err(format!(
                        "GET http://{addr}/get (Host: {host}), request {i} of {n}: {}",
                        String::from_utf8_lossy(&got[..len])
                    ));
                }
                got.drain(..len);
                break;
            }
            let read = s.read(&mut chunk).map_err(err)?;
            if read == 0 {
                return Err(format!(
                    "GET http://{addr}/get (Host: {host}): closed after {i} of {n} requests"
                ));
            }
            got.extend_from_slice(&chunk[..read]);
        }
    }
    Ok(())
}

/// `n` TLS ClientHellos naming `sni`, each on a connection of its own to `addr` (from the
/// calling thread's network namespace) and each echoed back whole before that connection
/// closes: what a proxy that routes by SNI does once per connection, with an echo server
/// behind it. No handshake follows, so no TLS library is needed.
pub fn hellos_in_sequence(addr: SocketAddr, sni: &str, n: usize) -> Result<(), String> {
    let hello = client_hello(sni);
    let t = Duration::from_secs(60);
    for i in 0..n {
        let err = |e: std::io::Error| {
            format!("ClientHello with SNI {sni} to {addr}, connection {i} of {n}: {e}")
        };
        let mut s = TcpStream::connect_timeout(&addr, t).map_err(err)?;
        s.set_read_timeout(Some(t)).map_err(err)?;
        s.set_nodelay(true).map_err(err)?;
        s.write_all(&hello).map_err(err)?;
        let mut echoed = vec![0; hello.len()];
        s.read_exact(&mut echoed).map_err(err)?;
        if echoed != hello {
            return Err(format!(
                "ClientHello with SNI {sni} to {addr}, connection {i} of {n}: another answer came back"
            ));
        }
    }
    Ok(())
}

/// A TLS 1.2 ClientHello record with one cipher suite and one extension, `sni` as its server
/// name: enough for Envoy's TLS inspector to read the SNI.
pub fn client_hello(sni: &str) -> Vec<u8> {
    let name = sni.as_bytes();
    // server_name: a list of one host_name (type 0).
    let names = [&be(name.len() + 3, 2)[..], &[0], &be(name.len(), 2), name].concat();
    let extensions = [&[0, 0][..], &be(names.len(), 2), &names].concat();
    let hello = [
        &[3, 3][..],
        &[0; 32],
        // No session id; TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256; no compression.
        &[0],
        &[0, 2, 0xc0, 0x2f],
        &[1, 0],
        &be(extensions.len(), 2),
        &extensions,
    ]
    .concat();
    let handshake = [&[1][..], &be(hello.len(), 3), &hello].concat();
    [&[0x16, 3, 1][..], &be(handshake.len(), 2), &handshake].concat()
}

/// `n`'s last `width` bytes, big-endian.
fn be(n: usize, width: usize) -> Vec<u8> {
    let bytes = n.to_be_bytes();
    bytes[bytes.len() - width..].to_vec()
}

/// The length of the first response in `buf` once it is all there (its body sized by
/// `content-length`, absent meaning empty).
fn whole_response(buf: &[u8]) -> Option<usize> {
    let head = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let body = String::from_utf8_lossy(&buf[..head])
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    (buf.len() >= head + body).then_some(head + body)
}

#[cfg(test)]
mod tests {
    use super::{client_hello, micros, whole_response};

    /// The record, the handshake and the extension each say their own length, and the server
    /// name is where a TLS parser looks for it.
    #[test]
    fn a_client_hello_carries_its_sni_where_tls_puts_it() {
        let hello = client_hello("a.example.test");
        let len = |at: usize, width: usize| {
            hello[at..at + width]
                .iter()
                .fold(0, |n, &b| n << 8 | usize::from(b))
        };
        assert_eq!(hello[..3], [0x16, 3, 1]);
        assert_eq!(len(3, 2), hello.len() - 5);
        assert_eq!((hello[5], len(6, 3)), (1, hello.len() - 9));
        // Version, random, session id, cipher suites, compression: 2 + 32 + 1 + 4 + 2.
        let extensions = 9 + 41;
        assert_eq!(len(extensions, 2), hello.len() - extensions - 2);
        // server_name (type 0), its length, the list's length, host_name (0), the name's.
        let server_name = extensions + 2;
        assert_eq!(len(server_name, 2), 0);
        assert_eq!(len(server_name + 2, 2), hello.len() - server_name - 4);
        assert_eq!(len(server_name + 4, 2), hello.len() - server_name - 6);
        assert_eq!(len(server_name + 6, 1), 0);
        assert_eq!(len(server_name + 7, 2), "a.example.test".len());
        assert_eq!(&hello[server_name + 9..], b"a.example.test");
    }

    #[test]
    fn wrk_units() {
        let near = |v: &str, want: f64| micros(v).is_some_and(|m| (m - want).abs() < 1e-6);
        assert!(near("960.00us", 960.0));
        assert!(near("1.72ms", 1720.0));
        assert!(near("2s", 2e6));
        assert_eq!(micros("x"), None);
    }

    #[test]
    fn responses_split_by_content_length() {
        let two = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nokHTTP/1.1 200 OK\r\n\r\n";
        assert_eq!(whole_response(two), Some(40));
        assert_eq!(whole_response(&two[..39]), None);
        assert_eq!(whole_response(&two[40..]), Some(19));
        assert_eq!(whole_response(b"HTTP/1.1 200 OK\r\n"), None);
    }
}
