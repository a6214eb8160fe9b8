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
    use super::{micros, whole_response};

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
