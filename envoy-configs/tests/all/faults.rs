//! Upstream faults through real Envoy on the generated configuration: each gives the app a
//! clear error, puts the cause in the access log, and never falls back to an unverified or
//! other connection. Reloading Envoy (hot restart) takes a changed configuration up with no
//! request refused, and an invalid configuration keeps the old one serving.
//!
//! The misbehaving upstreams are tiny TCP servers in this file (down, slow, resetting) or
//! TLS listeners of the upstream Envoy with bad certificates.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use extsvc_testkit as support;

use external_service_model::contract::UPSTREAM_FAILURE_HEADER;

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, TcpListener};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{
    assert_tls_failure_line, ca_file, docs, generate, hot_restart_base_id, http_service,
    https_service, mesh, test_dir, with_dns, Ca, Curl, Envoy, EnvoyOptions, Sidecar,
    UpstreamBuilder, Validity,
};

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// How a fake upstream treats each connection.
#[derive(Clone, Copy)]
enum Behaviour {
    /// Reads the request, then says nothing for this long and closes.
    Silent(Duration),
    /// Sends a status line and half a header, then closes.
    PartialHeaders,
    /// Sends full headers promising 1000 bytes, 10 of them, then closes.
    PartialBody,
}

/// A loopback TCP server misbehaving as told, until dropped (bounded: 60 s at most).
struct Fake {
    port: u16,
    stop: Arc<AtomicBool>,
    accepted: Arc<std::sync::atomic::AtomicU32>,
}

impl Fake {
    fn start(behaviour: Behaviour) -> Fake {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let accepted = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let (s, a) = (Arc::clone(&stop), Arc::clone(&accepted));
        thread::spawn(move || {
            let start = Instant::now();
            while !s.load(Ordering::SeqCst) && start.elapsed() < Duration::from_secs(60) {
                match listener.accept() {
                    Ok((mut conn, _)) => {
                        a.fetch_add(1, Ordering::SeqCst);
                        let _ = conn.set_nonblocking(false);
                        let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
                        thread::spawn(move || serve(&mut conn, behaviour));
                    }
                    Err(_) => thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        Fake {
            port,
            stop,
            accepted,
        }
    }

    fn connections(&self) -> u32 {
        self.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn serve(conn: &mut std::net::TcpStream, behaviour: Behaviour) {
    let mut buf = [0u8; 4096];
    let mut seen = Vec::new();
    while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
        }
    }
    match behaviour {
        Behaviour::Silent(d) => thread::sleep(d),
        Behaviour::PartialHeaders => {
            let _ = conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Le");
        }
        Behaviour::PartialBody => {
            let _ = conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n0123456789");
        }
    }
    let _ = conn.flush();
    // Dropping the stream closes it.
}

/// The access log line of `service` (the only request to it).
fn line_of(log: &[Value], service: &str) -> Value {
    let lines: Vec<&Value> = log
        .iter()
        .filter(|l| l["external_service"] == service)
        .collect();
    assert_eq!(lines.len(), 1, "{service}: {log:?}");
    lines[0].clone()
}

fn assert_line(line: &Value, code: u64, flags: &str, details_part: &str) {
    assert_eq!(line["response_code"], code, "{line}");
    assert_eq!(line["response_flags"], flags, "{line}");
    let details = line["response_code_details"].as_str().unwrap_or("");
    assert!(
        details.contains(details_part),
        "{details_part:?} not in {line}"
    );
}

/// Plain-HTTP services whose upstream is down, too slow, not resolvable, or breaks off in the
/// middle of the headers or of the body.
#[test]
fn upstream_down_slow_unresolvable_and_resetting() {
    let dir = test_dir();
    let d = dir.path();
    let names = ["down.test", "slow.test", "partial.test", "cut.test"];
    let up = with_dns(UpstreamBuilder::new().plain("unused"), &names).start(d);
    let slow = Fake::start(Behaviour::Silent(Duration::from_secs(4)));
    let partial = Fake::start(Behaviour::PartialHeaders);
    let cut = Fake::start(Behaviour::PartialBody);
    // A port nothing listens on: bound, then closed.
    let down_port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let resources = docs(&[
        mesh(false),
        http_service("down", &format!("down.test:{down_port}")),
        http_service("slow", &format!("slow.test:{}", slow.port)),
        http_service("nowhere", "nowhere.test:8080"),
        http_service("partial", &format!("partial.test:{}", partial.port)),
        http_service("cut", &format!("cut.test:{}", cut.port)),
    ]);
    let s = Sidecar::start(
        d,
        up.dns_addr(),
        &resources,
        &["--route-timeout".into(), "1".into()],
    );
    let get = |svc: &str| Curl::get(format!("http://{svc}.mesh/get")).proxy(s.proxy());

    // Down: 503, connection failure.
    let r = get("down").run();
    assert_eq!(r.status, 503, "{r:?}");
    assert!(r.body.contains("remote connection failure"), "{}", r.body);
    // The app is told why.
    assert_eq!(
        r.header(UPSTREAM_FAILURE_HEADER),
        Some("delayed_connect_error:_Connection_refused"),
        "{r:?}"
    );

    // Too slow: 504 after the route timeout (1 s), not the 4 s the upstream takes.
    let started = Instant::now();
    let r = get("slow").run();
    let took = started.elapsed();
    assert_eq!(r.status, 504, "{r:?}");
    assert_eq!(r.body, "upstream request timeout");
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(3),
        "{took:?}"
    );

    // Not resolvable: the cluster has no host, and the app is told why.
    let r = get("nowhere").run();
    assert_eq!(r.status, 503, "{r:?}");
    assert_eq!(r.body, "no healthy upstream");
    assert_eq!(
        r.header(UPSTREAM_FAILURE_HEADER),
        Some(
            "no endpoint: the service's host did not resolve (DNS), or every endpoint is unhealthy"
        ),
        "{r:?}"
    );

    // Half a header, then close: 502 (a protocol error) before any response started.
    let r = get("partial").run();
    assert_eq!(r.status, 502, "{r:?}");
    assert!(r
        .body
        .contains("upstream connect error or disconnect/reset before headers"));

    // Headers sent, the body cut short: the app's transfer fails (curl 18), it never gets a
    // complete-looking answer.
    let e = get("cut")
        .send()
        .expect_err("a cut body must not look complete");
    assert_eq!(e.exit_code, Some(18), "{e}");

    let log = s.access_log(5);
    assert_line(
        &line_of(&log, "down"),
        503,
        "UF",
        "remote_connection_failure",
    );
    assert_line(&line_of(&log, "slow"), 504, "UT", "response_timeout");
    assert_line(&line_of(&log, "nowhere"), 503, "UH", "no_healthy_upstream");
    assert_line(
        &line_of(&log, "partial"),
        502,
        "UPE",
        "upstream_reset_before_response_started{protocol_error}",
    );
    assert_line(
        &line_of(&log, "cut"),
        200,
        "UPE",
        "upstream_reset_after_response_started",
    );
    for svc in ["down", "slow", "nowhere", "partial", "cut"] {
        s.forwarded(svc, 1);
    }
    // No retries, no other endpoint: exactly one connection each.
    assert_eq!(slow.connections(), 1);
    assert_eq!(partial.connections(), 1);
    assert_eq!(cut.connections(), 1);
}

/// TLS origination to servers whose certificate is expired, not yet valid, or for another
/// name: 503 `UF` with the TLS reason in the access log, every time; the upstream never gets a
/// request (no fallback to plain or unverified TLS).
#[test]
fn bad_server_certificates_fail_closed() {
    let dir = test_dir();
    let d = dir.path();
    let ca = Ca::new(d, "test-ca");
    let expired = ca.server_cert_with_validity(
        d,
        "expired",
        &["expired.test"],
        &[LOCALHOST],
        Validity::Expired,
    );
    let notyet = ca.server_cert_with_validity(
        d,
        "notyet",
        &["notyet.test"],
        &[LOCALHOST],
        Validity::NotYetValid,
    );
    let other = ca.server_cert(d, "other", &["other.test"], &[]);
    let up = with_dns(
        UpstreamBuilder::new()
            .tls("expired", &expired)
            .tls("notyet", &notyet)
            .tls("wrongname", &other),
        &["expired.test", "notyet.test", "wrongname.test"],
    )
    .start(d);
    let svc = |name: &str| {
        https_service(
            name,
            "http",
            &format!("{name}.test:{}", up.port(name)),
            &[ca_file(&ca)],
        )
    };
    let resources = docs(&[mesh(false), svc("expired"), svc("notyet"), svc("wrongname")]);
    let s = Sidecar::start(d, up.dns_addr(), &resources, &[]);

    for name in ["expired", "notyet", "wrongname"] {
        for _ in 0..2 {
            let r = Curl::get(format!("http://{name}.mesh/get"))
                .proxy(s.proxy())
                .run();
            assert_eq!(r.status, 503, "{name}: {r:?}");
            assert_eq!(r.header("x-upstream-name"), None, "{name}: {r:?}");
            // The app is told why, not only the access log.
            let why = r.header(UPSTREAM_FAILURE_HEADER).unwrap_or_default();
            assert!(
                why.starts_with("TLS_error:") && why.contains("CERTIFICATE_VERIFY_FAILED"),
                "{name}: {r:?}"
            );
        }
    }
    let log = s.access_log(6);
    for (name, reason) in [
        ("expired", "certificate_has_expired"),
        ("notyet", "certificate_is_not_yet_valid"),
        (
            "wrongname",
            "SAN_matcher,_certificate_SANs_are_[other.test]",
        ),
    ] {
        let lines: Vec<&Value> = log
            .iter()
            .filter(|l| l["external_service"] == name)
            .collect();
        assert_eq!(lines.len(), 2, "{name}: {log:?}");
        for l in lines {
            assert_tls_failure_line(l, name, "CERTIFICATE_VERIFY_FAILED");
            assert_tls_failure_line(l, name, reason);
        }
        // The server never saw a request: the handshake failed, nothing else was tried.
        assert_eq!(
            up.envoy
                .counter(&format!("http.{name}.downstream_rq_total")),
            0,
            "{name}"
        );
    }
    assert_eq!(
        s.envoy
            .counter("cluster.external_service_expired.ssl.fail_verify_error"),
        2
    );
    assert_eq!(
        s.envoy
            .counter("cluster.external_service_notyet.ssl.fail_verify_error"),
        2
    );
    assert_eq!(
        s.envoy
            .counter("cluster.external_service_wrongname.ssl.fail_verify_san"),
        2
    );
}

/// Hot restart leaves its shared memory behind when Envoy is killed: removed on drop (also
/// when the test fails).
struct ShmCleanup(u32);

impl Drop for ShmCleanup {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(format!("/dev/shm/envoy_shared_memory_{}", self.0 * 10));
    }
}

/// Hot restart, as README's day-2 section tells it: epoch 0 serves one service; epoch 1 (same
/// base id) is generated with a second one. Requests to the first keep succeeding while the new
/// epoch takes the listener over, the second is served, and the old process exits.
#[test]
fn reload_with_a_new_service_refuses_no_request() {
    let dir = test_dir();
    let d = dir.path();
    let up = UpstreamBuilder::new()
        .plain("plain")
        .plain("added")
        .dns("plain.test", &[LOCALHOST])
        .dns("added.test", &[LOCALHOST])
        .start(d);
    let plain = http_service("plain", &format!("plain.test:{}", up.port("plain")));
    let base_id = hot_restart_base_id();
    let _shm = ShmCleanup(base_id);
    let first = EnvoyOptions {
        hot_restart: Some((base_id, 0)),
        ..EnvoyOptions::default()
    };
    let mut s = Sidecar::start_with(
        d,
        up.dns_addr(),
        &docs(&[mesh(false), plain.clone()]),
        &[],
        &first,
    );
    let proxy = s.proxy();
    let get = move |host: &str| Curl::get(format!("{proxy}/get")).host(host).run();
    assert_eq!(get("plain.mesh").status, 200);
    assert_eq!(get("added.mesh").status, 403);

    // A steady stream of requests to the unchanged service, across the restart.
    let stop = Arc::new(AtomicBool::new(false));
    let stream = {
        let (stop, get) = (Arc::clone(&stop), get.clone());
        thread::spawn(move || {
            let mut statuses = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                statuses.push(get("plain.mesh").status);
            }
            statuses
        })
    };
    let added = http_service("added", &format!("added.test:{}", up.port("added")));
    let cli = generate(
        d,
        &docs(&[mesh(false), plain, added]),
        s.listen,
        up.dns_addr(),
        &[],
    );
    assert_eq!(cli.code, Some(0), "{cli:?}");
    // The old epoch drains for 1 s and is told to exit after 3 (Envoy's defaults: 10 and 15 min).
    let next = EnvoyOptions {
        hot_restart: Some((base_id, 1)),
        ready_timeout: Duration::from_secs(15),
        extra_args: ["--drain-time-s", "1", "--parent-shutdown-time-s", "3"]
            .map(String::from)
            .to_vec(),
        ..EnvoyOptions::default()
    };
    let config = std::fs::read_to_string(d.join("envoy.yaml")).unwrap();
    let epoch1 = Envoy::try_start(d, "epoch1", &config, &next).unwrap();
    assert_eq!(get("added.mesh").status, 200);
    // The old epoch drains and exits by itself.
    let deadline = Instant::now() + Duration::from_secs(30);
    while s.envoy.exit_status().is_none() {
        assert!(Instant::now() < deadline, "epoch 0 still runs");
        thread::sleep(Duration::from_millis(100));
    }
    stop.store(true, Ordering::Relaxed);
    let statuses = stream.join().unwrap();
    assert!(statuses.len() > 10, "{statuses:?}");
    assert!(statuses.iter().all(|&s| s == 200), "{statuses:?}");
    drop(epoch1);
}

/// Hot restart: epoch 0 serves a good generated configuration; epoch 1 (same base id) is given
/// an invalid one: it exits with an error, and epoch 0 keeps serving, still with the filter.
#[test]
fn reload_with_an_invalid_configuration_keeps_the_old_one_serving() {
    let dir = test_dir();
    let d = dir.path();
    let up = UpstreamBuilder::new()
        .plain("plain")
        .dns("plain.test", &[LOCALHOST])
        .start(d);
    let resources = docs(&[
        mesh(false),
        http_service("plain", &format!("plain.test:{}", up.port("plain"))),
    ]);
    let base_id = hot_restart_base_id();
    let _shm = ShmCleanup(base_id);
    let opts = EnvoyOptions {
        hot_restart: Some((base_id, 0)),
        ..EnvoyOptions::default()
    };
    let s = Sidecar::start_with(d, up.dns_addr(), &resources, &[], &opts);
    let get = |host: &str| Curl::get(format!("{}/get", s.proxy())).host(host).run();
    assert_eq!(get("plain.mesh").status, 200);

    // The same file with the filter's configuration broken, and a plain YAML error.
    let good = std::fs::read_to_string(d.join("envoy.yaml")).unwrap();
    let broken_plugin = good.replacen("\"resources\":", "\"resourcez\":", 1);
    assert_ne!(
        broken_plugin, good,
        "the plugin configuration was not found"
    );
    for (name, config) in [
        ("epoch1-plugin", broken_plugin),
        ("epoch1-yaml", format!("{good}\n  this: [is not yaml\n")),
    ] {
        let next = EnvoyOptions {
            hot_restart: Some((base_id, 1)),
            ready_timeout: Duration::from_secs(15),
            ..EnvoyOptions::default()
        };
        let err = match Envoy::try_start(d, name, &config, &next) {
            Ok(_) => panic!("{name}: Envoy started on an invalid configuration"),
            Err(e) => e,
        };
        assert!(err.contains("exited with"), "{name}: {err}");
        // The old one still serves, with its rules.
        assert_eq!(get("plain.mesh").status, 200, "{name}");
        assert_eq!(get("evil.example").status, 403, "{name}");
        // Envoy shuts the parent's admin listener down early in a hot restart: when the new
        // epoch fails after that (the plugin case), the old one serves traffic but no admin.
        eprintln!(
            "{name}: old epoch's admin: {:?}",
            s.envoy.admin_get("/ready")
        );
    }
    // Three requests went to the service and two were refused: the filter still ran.
    let log = s.access_log(5);
    let to_plain = log
        .iter()
        .filter(|l| l["external_service"] == "plain")
        .count();
    let refused = log
        .iter()
        .filter(|l| l["denied"] == "undeclared-host")
        .count();
    assert_eq!((to_plain, refused), (3, 2), "{log:?}");
}
