//! MeshTimeout in real Envoy: the request timeout, the idle timeout of a tcp connection, and
//! the idle timeout and max connection duration of an upstream HTTP connection.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use extsvc_testkit as support;

use std::time::{Duration, Instant};

use support::{dedent, http_service, test_dir, Reply, Scripted};

use super::{sidecar, tcp_sidecar};

fn timeout_for(service: &str, request_timeout: &str) -> String {
    dedent(&format!(
        "
        type: MeshTimeout
        name: {service}-timeout
        mesh: default
        spec:
          targetRef: {{kind: Mesh}}
          to:
          - targetRef: {{kind: MeshService, name: {service}}}
            default: {{http: {{requestTimeout: {request_timeout}}}}}
        "
    ))
}

#[test]
fn a_slow_upstream_gets_504_at_the_mesh_timeout_and_other_services_keep_the_default() {
    let dir = test_dir();
    let slow = Scripted::start(vec![Reply::status(200).after(Duration::from_secs(3))]);
    let also_slow = Scripted::start(vec![Reply::status(200).after(Duration::from_secs(3))]);
    let s = sidecar(
        dir.path(),
        &[
            http_service("slow", &slow.addr().to_string()),
            http_service("untouched", &also_slow.addr().to_string()),
            timeout_for("slow", "300ms"),
        ],
    );
    let started = Instant::now();
    let r = s.with_host("slow.mesh", "/").run();
    assert_eq!(r.status, 504, "{r:?}");
    assert!(
        started.elapsed() < Duration::from_millis(2900),
        "504 should come at the 300ms timeout, not after the upstream's 3s: {:?}",
        started.elapsed()
    );
    // The other service keeps `--route-timeout` (15 s): its slow answer arrives.
    let r = s.with_host("untouched.mesh", "/").run();
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        s.envoy
            .counter("cluster.external_service_slow.upstream_rq_timeout"),
        1
    );
    assert_eq!(
        s.envoy
            .counter("cluster.external_service_untouched.upstream_rq_timeout"),
        0
    );
}

#[test]
fn an_idle_tcp_connection_is_closed_at_the_mesh_timeouts_idle_timeout() {
    let dir = test_dir();
    let up = support::UpstreamBuilder::new()
        .tcp("echo")
        .start(dir.path());
    let timeout = dedent(
        "
        type: MeshTimeout
        name: tcp-idle
        mesh: default
        spec:
          to:
          - targetRef: {kind: Mesh}
            default: {idleTimeout: 500ms}
        ",
    );
    let s = tcp_sidecar(dir.path(), &up.addr("echo").to_string(), &[timeout]);
    let mut app = std::net::TcpStream::connect(("127.0.0.1", s.outbound[0])).unwrap();
    app.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    std::io::Write::write_all(&mut app, b"ping").unwrap();
    let mut buf = [0u8; 4];
    std::io::Read::read_exact(&mut app, &mut buf).unwrap();
    assert_eq!(&buf, b"ping");
    let idle_since = Instant::now();
    let mut rest = [0u8; 1];
    // Closed by Envoy, not by the read timeout.
    assert_eq!(std::io::Read::read(&mut app, &mut rest).unwrap(), 0);
    let idle = idle_since.elapsed();
    assert!(
        idle >= Duration::from_millis(450) && idle < Duration::from_secs(8),
        "{idle:?}"
    );
    let stat = format!("tcp.outbound_127_0_0_1_{}.idle_timeout", s.outbound[0]);
    assert_eq!(s.envoy.counter(&stat), 1, "{stat}");
}

/// Two http services and a MeshTimeout `default` for the first (`closed`) only: Envoy closes
/// its upstream connection, counted by the cluster's `stat`; the other's (`kept`, Envoy's
/// defaults) stays open.
fn only_the_timed_out_services_upstream_connection_is_closed(default: &str, stat: &str) {
    let dir = test_dir();
    let up = support::UpstreamBuilder::new()
        .plain("a")
        .plain("b")
        .start(dir.path());
    let timeout = dedent(&format!(
        "
        type: MeshTimeout
        name: http-connections
        mesh: default
        spec:
          to:
          - targetRef: {{kind: MeshService, name: closed}}
            default: {default}
        "
    ));
    let s = sidecar(
        dir.path(),
        &[
            http_service("closed", &up.addr("a").to_string()),
            http_service("kept", &up.addr("b").to_string()),
            timeout,
        ],
    );
    assert_eq!(s.with_host("closed.mesh", "/").run().status, 200);
    assert_eq!(s.with_host("kept.mesh", "/").run().status, 200);
    let closed = format!("cluster.external_service_closed.{stat}");
    support::eventually(
        &closed,
        Duration::from_secs(10),
        Duration::from_millis(100),
        || match s.envoy.counter(&closed) {
            1 => Ok(()),
            n => Err(format!("{n} closed")),
        },
    );
    assert_eq!(
        s.envoy
            .counter(&format!("cluster.external_service_kept.{stat}")),
        0
    );
    assert_eq!(
        s.envoy
            .counter("cluster.external_service_kept.upstream_cx_active"),
        1
    );
}

#[test]
fn an_idle_upstream_http_connection_is_closed_at_the_mesh_timeouts_idle_timeout() {
    only_the_timed_out_services_upstream_connection_is_closed(
        "{idleTimeout: 300ms}",
        "upstream_cx_idle_timeout",
    );
}

#[test]
fn an_upstream_http_connection_is_closed_at_the_mesh_timeouts_max_connection_duration() {
    only_the_timed_out_services_upstream_connection_is_closed(
        "{http: {maxConnectionDuration: 300ms}}",
        "upstream_cx_max_duration_reached",
    );
}
