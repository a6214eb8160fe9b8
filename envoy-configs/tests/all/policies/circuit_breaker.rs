//! MeshCircuitBreaker in real Envoy: requests over its limits get 503 at once.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use extsvc_testkit as support;

use std::time::{Duration, Instant};

use support::{dedent, http_service, test_dir, Reply, Scripted};

use super::sidecar;

#[test]
fn concurrent_requests_over_the_circuit_breakers_limits_get_503_at_once() {
    let dir = test_dir();
    let slow = Scripted::start(vec![Reply::status(200).after(Duration::from_secs(4))]);
    let other = Scripted::start(vec![Reply::status(200).after(Duration::from_millis(500))]);
    let breaker = dedent(
        "
        type: MeshCircuitBreaker
        name: one-at-a-time
        mesh: default
        spec:
          to:
          - targetRef: {kind: MeshService, name: limited}
            default:
              connectionLimits: {maxConnections: 1, maxPendingRequests: 1}
        ",
    );
    let s = sidecar(
        dir.path(),
        &[
            http_service("limited", &slow.addr().to_string()),
            http_service("unlimited", &other.addr().to_string()),
            breaker,
        ],
    );
    let concurrent = |host: &'static str| {
        let requests: Vec<_> = (0..4)
            .map(|_| {
                let curl = s.with_host(host, "/");
                std::thread::spawn(move || {
                    let started = Instant::now();
                    let r = curl.run();
                    (r, started.elapsed())
                })
            })
            .collect();
        requests
            .into_iter()
            .map(|t| t.join().unwrap())
            .collect::<Vec<_>>()
    };
    let answers = concurrent("limited.mesh");
    let refused: Vec<_> = answers.iter().filter(|(r, _)| r.status == 503).collect();
    let served = answers.iter().filter(|(r, _)| r.status == 200).count();
    // At most one request on the one connection and one pending: the others overflow. (The
    // first can still be pending while its connection opens, so the second may overflow too.)
    assert!((2..=3).contains(&refused.len()), "{answers:?}");
    assert_eq!(served + refused.len(), 4, "{answers:?}");
    for (r, took) in &refused {
        assert!(
            *took < Duration::from_secs(3),
            "not at once: {took:?} {r:?}"
        );
        assert_eq!(r.header("x-envoy-overloaded"), Some("true"), "{r:?}");
    }
    assert_eq!(
        s.envoy
            .counter("cluster.external_service_limited.upstream_rq_pending_overflow"),
        refused.len() as u64
    );
    assert_eq!(slow.requests(), served);
    // The service without a MeshCircuitBreaker takes all four at once.
    let answers = concurrent("unlimited.mesh");
    assert!(answers.iter().all(|(r, _)| r.status == 200), "{answers:?}");
    assert_eq!(other.requests(), 4);
}
