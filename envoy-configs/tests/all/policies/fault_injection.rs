//! MeshFaultInjection in real Envoy: an abort and a delay on the share they name, and a
//! response slowed to the policy's bandwidth.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use extsvc_testkit as support;

use std::time::{Duration, Instant};

use support::{dedent, http_service, test_dir, Reply, Scripted};

use super::{sidecar, Recording};

#[test]
fn a_fault_abort_and_a_fault_delay_act_on_the_share_they_name() {
    let dir = test_dir();
    let aborted = Scripted::start(vec![Reply::status(200)]);
    let delayed = Scripted::start(vec![Reply::status(200)]);
    let fault = |service: &str, fault: &str| {
        dedent(&format!(
            "
            type: MeshFaultInjection
            name: {service}-faults
            mesh: default
            spec:
              targetRef: {{kind: MeshService, name: {service}}}
              from:
              - targetRef: {{kind: Mesh}}
                default: {{http: [{fault}]}}
            "
        ))
    };
    let s = sidecar(
        dir.path(),
        &[
            http_service("aborted", &aborted.addr().to_string()),
            http_service("delayed", &delayed.addr().to_string()),
            fault("aborted", "{abort: {httpStatus: 418, percentage: 50}}"),
            fault("delayed", "{delay: {value: 400ms, percentage: 100}}"),
        ],
    );
    let tries = 60;
    let teapots = (0..tries)
        .filter(|_| s.with_host("aborted.mesh", "/").run().status == 418)
        .count();
    // Half of 60; outside 12..=48 is over four standard deviations away.
    assert!((12..=48).contains(&teapots), "{teapots} of {tries} aborted");
    assert_eq!(aborted.requests(), tries - teapots);
    for _ in 0..3 {
        let started = Instant::now();
        let r = s.with_host("delayed.mesh", "/").run();
        assert_eq!(r.status, 200, "{r:?}");
        assert!(
            started.elapsed() >= Duration::from_millis(400),
            "{:?}",
            started.elapsed()
        );
    }
    assert_eq!(
        s.envoy.counter("http.outbound_http.fault.delays_injected"),
        3
    );
}

#[test]
fn a_response_is_slowed_to_the_mesh_fault_injections_bandwidth() {
    let dir = test_dir();
    let size = 64 * 1024;
    let throttled = Recording::start(size);
    let free = Recording::start(size);
    let fault = dedent(
        "
        type: MeshFaultInjection
        name: slow-lane
        mesh: default
        spec:
          targetRef: {kind: MeshService, name: throttled}
          from:
          - targetRef: {kind: Mesh}
            default: {http: [{responseBandwidth: {limit: 16kbps, percentage: 100}}]}
        ",
    );
    let s = sidecar(
        dir.path(),
        &[
            http_service("throttled", &throttled.addr.to_string()),
            http_service("free", &free.addr.to_string()),
            fault,
        ],
    );
    let started = Instant::now();
    let r = s.with_host("throttled.mesh", "/").run();
    let took = started.elapsed();
    assert_eq!((r.status, r.body.len()), (200, size), "{:?}", r.status);
    // 64 KiB at 16 KiB/s, the first second's worth at once: about 3 s.
    assert!(took >= Duration::from_secs(2), "{took:?}");
    let injected = "http.outbound_http.fault.response_rl_injected";
    assert_eq!(s.envoy.counter(injected), 1);
    // The other service's route has no limit.
    let r = s.with_host("free.mesh", "/").run();
    assert_eq!((r.status, r.body.len()), (200, size), "{:?}", r.status);
    assert_eq!(s.envoy.counter(injected), 1);
}
