//! MeshRateLimit in real Envoy: the status of an http request over the limit, and a tcp
//! connection over it refused.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use extsvc_testkit as support;

use std::io::{Read, Write};
use std::time::Duration;

use support::{dedent, http_service, test_dir, Reply, Scripted};

use super::{sidecar, tcp_sidecar};

#[test]
fn the_rate_limits_third_request_gets_its_configured_status() {
    let dir = test_dir();
    let limited = Scripted::start(vec![Reply::status(200)]);
    let free = Scripted::start(vec![Reply::status(200)]);
    let limit = dedent(
        "
        type: MeshRateLimit
        name: two-a-minute
        mesh: default
        spec:
          targetRef: {kind: MeshService, name: limited}
          from:
          - targetRef: {kind: Mesh}
            default:
              local:
                http:
                  requestRate: {num: 2, interval: 1m}
                  onRateLimit: {status: 503, headers: {set: [{name: x-limited, value: by-policy}]}}
        ",
    );
    let s = sidecar(
        dir.path(),
        &[
            http_service("limited", &limited.addr().to_string()),
            http_service("free", &free.addr().to_string()),
            limit,
        ],
    );
    let statuses: Vec<u16> = (0..3)
        .map(|_| s.with_host("limited.mesh", "/").run().status)
        .collect();
    assert_eq!(statuses, [200, 200, 503]);
    let r = s.with_host("limited.mesh", "/").run();
    assert_eq!(r.header("x-limited"), Some("by-policy"), "{r:?}");
    assert_eq!(limited.requests(), 2);
    // The other service has no limit.
    for _ in 0..4 {
        assert_eq!(s.with_host("free.mesh", "/").run().status, 200);
    }
    assert_eq!(free.requests(), 4);
}

#[test]
fn the_third_tcp_connection_in_the_mesh_rate_limits_interval_is_refused() {
    let dir = test_dir();
    let up = support::UpstreamBuilder::new()
        .tcp("echo")
        .start(dir.path());
    let limit = dedent(
        "
        type: MeshRateLimit
        name: two-connections-a-minute
        mesh: default
        spec:
          targetRef: {kind: MeshService, name: raw}
          from:
          - targetRef: {kind: Mesh}
            default: {local: {tcp: {connectionRate: {num: 2, interval: 1m}}}}
        ",
    );
    let s = tcp_sidecar(dir.path(), &up.addr("echo").to_string(), &[limit]);
    let echoed = || {
        let mut app = std::net::TcpStream::connect(("127.0.0.1", s.outbound[0])).unwrap();
        app.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        // Refused, the write may already fail; the read says what happened.
        let _ = app.write_all(b"ping");
        let mut buf = [0u8; 4];
        match app.read(&mut buf) {
            Ok(4) => Ok(buf),
            Ok(n) => Err(format!("{n} bytes")),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                panic!("neither served nor closed: {e}")
            }
            Err(e) => Err(e.to_string()),
        }
    };
    assert_eq!(echoed(), Ok(*b"ping"));
    assert_eq!(echoed(), Ok(*b"ping"));
    let third = echoed();
    assert!(third.is_err(), "{third:?}");
    let stat = format!(
        "local_rate_limit.outbound_127_0_0_1_{}.rate_limited",
        s.outbound[0]
    );
    assert_eq!(s.envoy.counter(&stat), 1, "{stat}");
}
