//! MeshRetry in real Envoy: an http upstream retried to success, a tcp service connected to
//! as many times as the policy says.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use extsvc_testkit as support;

use std::time::Duration;

use support::{dedent, http_service, test_dir, Reply, Scripted};

use super::{sidecar, tcp_sidecar};

#[test]
fn a_failing_then_healthy_upstream_is_retried_to_success() {
    let dir = test_dir();
    let flaky = Scripted::start(vec![
        Reply::status(503),
        Reply::status(503),
        Reply::status(200),
    ]);
    let failing = Scripted::start(vec![Reply::status(503), Reply::status(200)]);
    let retry = dedent(
        "
        type: MeshRetry
        name: flaky-retries
        mesh: default
        spec:
          targetRef: {kind: Mesh}
          to:
          - targetRef: {kind: MeshService, name: flaky}
            default:
              http:
                numRetries: 3
                backOff: {baseInterval: 10ms, maxInterval: 50ms}
                retryOn: [5xx]
        ",
    );
    let s = sidecar(
        dir.path(),
        &[
            http_service("flaky", &flaky.addr().to_string()),
            http_service("unretried", &failing.addr().to_string()),
            retry,
        ],
    );
    let r = s.with_host("flaky.mesh", "/").run();
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("x-request-number"), Some("3"), "{r:?}");
    // Two retries reached the upstream, and Envoy counted them.
    assert_eq!(flaky.requests(), 3);
    assert_eq!(
        s.envoy
            .counter("cluster.external_service_flaky.upstream_rq_retry"),
        2
    );
    // No MeshRetry names the other service: its 503 is the answer, asked once.
    let r = s.with_host("unretried.mesh", "/").run();
    assert_eq!(r.status, 503, "{r:?}");
    assert_eq!(failing.requests(), 1);
}

#[test]
fn a_tcp_service_is_connected_to_as_many_times_as_its_mesh_retry_says() {
    let dir = test_dir();
    // Nothing listens there: every attempt fails.
    let closed = format!("127.0.0.1:{}", support::free_port());
    let retry = dedent(
        "
        type: MeshRetry
        name: tcp-attempts
        mesh: default
        spec:
          to:
          - targetRef: {kind: MeshService, name: raw}
            default: {tcp: {maxConnectAttempt: 3}}
        ",
    );
    let s = tcp_sidecar(dir.path(), &closed, &[retry]);
    let mut app = std::net::TcpStream::connect(("127.0.0.1", s.outbound[0])).unwrap();
    app.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut buf = [0u8; 16];
    // Envoy closes the app's connection once the attempts are spent.
    let _ = std::io::Read::read(&mut app, &mut buf);
    let failures = "cluster.external_service_raw.upstream_cx_connect_fail";
    support::eventually(
        "three attempts",
        Duration::from_secs(10),
        Duration::from_millis(100),
        || match s.envoy.counter(failures) {
            3 => Ok(()),
            n => Err(format!("{n} attempts")),
        },
    );
}
