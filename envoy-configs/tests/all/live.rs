//! Live updates through the xDS files of `extsvc generate --xds-dir` and `extsvc watch`: one
//! Envoy, never restarted, takes up an added, a moved and a removed service, keeps its
//! configuration when a change is invalid, and loads a rotated CA file and client certificate
//! pair, while a steady stream of requests to an unchanged service is never refused; a
//! removed service's request in flight finishes. A MeshExternalService is added, its inline CA
//! rotated and it is removed the same way. `watch` prints one line per update and stops
//! on SIGINT or SIGTERM with exit 0.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use extsvc_testkit as support;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::Duration;

use support::runner::Tracked;
use support::{
    assert_ok_from, docs, eventually, generate, http_service, https_service, mesh, test_dir, Ca,
    CertKey, Curl, Envoy, Sidecar, Upstream, UpstreamBuilder,
};

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
/// How long an update may take to be served.
const UPDATE: Duration = Duration::from_secs(5);
const LDS: &str = "listener_manager.lds";
const CDS: &str = "cluster_manager.cds";

/// `--xds-dir <dir>/xds`.
fn xds_args(dir: &Path) -> Vec<OsString> {
    vec!["--xds-dir".into(), xds_dir(dir).into()]
}

fn xds_dir(dir: &Path) -> PathBuf {
    dir.join("xds")
}

/// Every file of the xDS directory, by name, with its bytes.
fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fs::read_dir(xds_dir(dir))
        .unwrap()
        .map(|e| e.unwrap())
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                fs::read(e.path()).unwrap(),
            )
        })
        .collect()
}

/// Requests to one service, back to back on a thread, until stopped: every status.
pub(crate) struct Stream {
    stop: Arc<AtomicBool>,
    statuses: Arc<Mutex<Vec<u16>>>,
    thread: thread::JoinHandle<()>,
}

impl Stream {
    fn start(proxy: String, host: &'static str) -> Stream {
        Stream::of(move || Curl::get(format!("{proxy}/get")).host(host))
    }

    /// `request()`, sent again and again.
    pub(crate) fn of(request: impl Fn() -> Curl + Send + 'static) -> Stream {
        let stop = Arc::new(AtomicBool::new(false));
        let statuses = Arc::new(Mutex::new(Vec::new()));
        let thread = {
            let (stop, statuses) = (Arc::clone(&stop), Arc::clone(&statuses));
            thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let status = request().run().status;
                    statuses.lock().unwrap().push(status);
                }
            })
        };
        Stream {
            stop,
            statuses,
            thread,
        }
    }

    /// Waits until `n` more requests were answered, so that the stream runs across what
    /// came before.
    pub(crate) fn wait_for_more(&self, n: usize) {
        let count = || self.statuses.lock().unwrap().len();
        let target = count() + n;
        eventually(
            "the stream goes on",
            UPDATE,
            Duration::from_millis(10),
            || {
                if count() >= target {
                    Ok(())
                } else {
                    Err(format!("{} requests", count()))
                }
            },
        );
    }

    /// Stops it and checks that every request was served.
    pub(crate) fn assert_all_served(self) {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap();
        let statuses = self.statuses.lock().unwrap();
        assert!(statuses.iter().all(|&s| s == 200), "{statuses:?}");
    }
}

/// The xDS counters: no update ever rejected, and each file read again since `since`.
pub(crate) fn assert_updates_took(envoy: &Envoy, since: (u64, u64)) -> (u64, u64) {
    let lds = envoy.wait_for_stat(&format!("{LDS}.update_success"), UPDATE, |n| n > since.0);
    let cds = envoy.wait_for_stat(&format!("{CDS}.update_success"), UPDATE, |n| n > since.1);
    assert_eq!(envoy.counter(&format!("{LDS}.update_rejected")), 0);
    assert_eq!(envoy.counter(&format!("{CDS}.update_rejected")), 0);
    (lds, cds)
}

pub(crate) fn successes(envoy: &Envoy) -> (u64, u64) {
    (
        envoy.counter(&format!("{LDS}.update_success")),
        envoy.counter(&format!("{CDS}.update_success")),
    )
}

/// `host` answers `status` within [`UPDATE`]; the last response.
fn eventually_status(proxy: &str, host: &str, status: u16) -> support::Response {
    eventually(
        &format!("{host} answers {status}"),
        UPDATE,
        Duration::from_millis(50),
        || {
            // Envoy may be LIVE a moment before its listener from LDS accepts connections.
            let r = Curl::get(format!("{proxy}/get"))
                .host(host)
                .send()
                .map_err(|e| e.to_string())?;
            if r.status == status {
                Ok(r)
            } else {
                Err(format!("{r:?}"))
            }
        },
    )
}

/// `host` is served by the upstream listener named `upstream` within [`UPDATE`].
fn eventually_served_by(proxy: &str, host: &str, upstream: &str) {
    eventually(
        &format!("{host} goes to {upstream}"),
        UPDATE,
        Duration::from_millis(50),
        || {
            let r = Curl::get(format!("{proxy}/get")).host(host).run();
            match (r.status, r.header("x-upstream-name")) {
                (200, Some(name)) if name == upstream => Ok(()),
                _ => Err(format!("{r:?}")),
            }
        },
    );
}

/// The upstream of the unchanged service, and that service.
fn steady_upstream(d: &Path) -> (Upstream, String) {
    let up = UpstreamBuilder::new()
        .plain("steady")
        .dns("steady.test", &[LOCALHOST])
        .start(d);
    let steady = http_service("steady", &format!("steady.test:{}", up.port("steady")));
    (up, steady)
}

/// Envoy on the xDS files of passthrough off and `services`, serving `steady.mesh`.
fn start(d: &Path, up: &Upstream, services: &[String]) -> Sidecar {
    let resources: Vec<String> = std::iter::once(mesh(false))
        .chain(services.iter().cloned())
        .collect();
    let s = Sidecar::start(d, up.dns_addr(), &docs(&resources), &xds_args(d));
    assert!(s.envoy.pid().is_some());
    eventually_status(&s.proxy(), "steady.mesh", 200);
    s
}

/// The upstreams of the unchanged service (`steady`) and of one that moves (`first`, then
/// `second`), with `steady.test` and `mover.test` in its DNS.
fn movers_upstream(d: &Path) -> Upstream {
    UpstreamBuilder::new()
        .plain("steady")
        .plain("first")
        .plain("second")
        .dns("steady.test", &[LOCALHOST])
        .dns("mover.test", &[LOCALHOST])
        .start(d)
}

#[test]
fn a_running_envoy_takes_up_added_moved_and_removed_services_with_no_request_lost() {
    let dir = test_dir();
    let d = dir.path();
    let up = movers_upstream(d);
    let steady = http_service("steady", &format!("steady.test:{}", up.port("steady")));
    let mover =
        |upstream: &str| http_service("mover", &format!("mover.test:{}", up.port(upstream)));
    let s = start(d, &up, std::slice::from_ref(&steady));
    let (proxy, pid) = (s.proxy(), s.envoy.pid());
    assert_eq!(eventually_status(&proxy, "mover.mesh", 403).status, 403);
    let update = |resources: &[String]| {
        let cli = generate(d, &docs(resources), s.listen, up.dns_addr(), &xds_args(d));
        assert_eq!(cli.code, Some(0), "{cli:?}");
    };
    let stream = Stream::start(proxy.clone(), "steady.mesh");
    let mut seen = successes(&s.envoy);

    // Added: served.
    update(&[mesh(false), steady.clone(), mover("first")]);
    assert_ok_from(&eventually_status(&proxy, "mover.mesh", 200), "first");
    seen = assert_updates_took(&s.envoy, seen);
    stream.wait_for_more(5);

    // Moved to another upstream: requests follow.
    update(&[mesh(false), steady.clone(), mover("second")]);
    eventually_served_by(&proxy, "mover.mesh", "second");
    seen = assert_updates_took(&s.envoy, seen);
    stream.wait_for_more(5);

    // Removed, with passthrough off: refused.
    update(&[mesh(false), steady.clone()]);
    eventually_status(&proxy, "mover.mesh", 403);
    assert_updates_took(&s.envoy, seen);
    stream.wait_for_more(5);
    let files = snapshot(d);
    assert_eq!(
        files.keys().collect::<Vec<_>>(),
        ["cds.yaml", "lds.yaml"],
        "nothing else is left in the directory"
    );
    assert!(!String::from_utf8_lossy(&files["cds.yaml"]).contains("mover"));

    stream.assert_all_served();
    assert_eq!(s.envoy.pid(), pid, "Envoy was restarted");
}

#[test]
fn an_invalid_change_is_refused_and_leaves_the_running_configuration_as_it_was() {
    let dir = test_dir();
    let d = dir.path();
    let (up, steady) = steady_upstream(d);
    let s = start(d, &up, std::slice::from_ref(&steady));
    let (proxy, pid) = (s.proxy(), s.envoy.pid());
    let before = snapshot(d);
    let seen = successes(&s.envoy);
    let stream = Stream::start(proxy.clone(), "steady.mesh");
    stream.wait_for_more(5);

    let broken = http_service("broken", "no-port.test");
    let cli = generate(
        d,
        &docs(&[mesh(false), steady, broken]),
        s.listen,
        up.dns_addr(),
        &xds_args(d),
    );
    assert_eq!(cli.code, Some(1), "{cli:?}");
    assert!(cli.stderr.contains("broken"), "{cli:?}");
    assert!(cli.stderr.contains("networking.address"), "{cli:?}");
    assert_eq!(snapshot(d), before, "the xDS directory changed");

    // Envoy was not told anything, and keeps serving with its rules.
    stream.wait_for_more(10);
    assert_eq!(successes(&s.envoy), seen);
    assert_eq!(
        Curl::get(format!("{proxy}/get"))
            .host("broken.mesh")
            .run()
            .status,
        403
    );
    stream.assert_all_served();
    assert_eq!(s.envoy.counter(&format!("{LDS}.update_rejected")), 0);
    assert_eq!(s.envoy.counter(&format!("{CDS}.update_rejected")), 0);
    assert_eq!(s.envoy.pid(), pid);
}

/// A loopback HTTP server that answers its first request 200 after `delay`, and says when the
/// request has arrived.
fn slow_server(delay: Duration) -> (u16, Arc<AtomicBool>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let arrived = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&arrived);
    thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
            match conn.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
        flag.store(true, Ordering::SeqCst);
        thread::sleep(delay);
        let _ =
            conn.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok");
    });
    (port, arrived)
}

#[test]
fn a_removed_service_finishes_its_requests_in_flight() {
    let dir = test_dir();
    let d = dir.path();
    let (up, steady) = steady_upstream(d);
    let (port, arrived) = slow_server(Duration::from_millis(1500));
    let slow = http_service("slow", &format!("127.0.0.1:{port}"));
    let s = start(d, &up, &[steady.clone(), slow]);
    let proxy = s.proxy();
    let in_flight = {
        let proxy = proxy.clone();
        thread::spawn(move || Curl::get(format!("{proxy}/get")).host("slow.mesh").run())
    };
    eventually(
        "the slow request reaches its upstream",
        UPDATE,
        Duration::from_millis(10),
        || {
            arrived
                .load(Ordering::SeqCst)
                .then_some(())
                .ok_or_else(String::new)
        },
    );

    let cli = generate(
        d,
        &docs(&[mesh(false), steady]),
        s.listen,
        up.dns_addr(),
        &xds_args(d),
    );
    assert_eq!(cli.code, Some(0), "{cli:?}");
    eventually_status(&proxy, "slow.mesh", 403);
    s.envoy
        .wait_for_stat(&format!("{CDS}.update_success"), UPDATE, |n| n >= 2);
    let r = in_flight.join().unwrap();
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(s.envoy.counter(&format!("{CDS}.update_rejected")), 0);
}

/// Writes `bytes` beside `path` and renames it into place, as a rotation does.
fn rename_into(path: &Path, bytes: &[u8]) {
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, bytes).unwrap();
    fs::rename(&tmp, path).unwrap();
}

/// A client certificate laid out as Kubernetes mounts a Secret: `cert.pem` and `key.pem` are
/// links into `..data`, a link to the current generation's directory, which a rotation swaps
/// by one rename so that the certificate and its key change together.
struct MountedPair {
    dir: PathBuf,
    generation: u32,
}

impl MountedPair {
    fn new(dir: PathBuf, pair: &CertKey) -> MountedPair {
        fs::create_dir_all(&dir).unwrap();
        let mut mounted = MountedPair { dir, generation: 0 };
        mounted.rotate(pair);
        for file in ["cert.pem", "key.pem"] {
            std::os::unix::fs::symlink(format!("..data/{file}"), mounted.dir.join(file)).unwrap();
        }
        mounted
    }

    fn rotate(&mut self, pair: &CertKey) {
        self.generation += 1;
        let generation = format!("..gen{}", self.generation);
        fs::create_dir(self.dir.join(&generation)).unwrap();
        fs::write(self.dir.join(&generation).join("cert.pem"), &pair.cert_pem).unwrap();
        fs::write(self.dir.join(&generation).join("key.pem"), &pair.key_pem).unwrap();
        let link = self.dir.join("..data_tmp");
        std::os::unix::fs::symlink(&generation, &link).unwrap();
        fs::rename(&link, self.dir.join("..data")).unwrap();
    }

    fn tls_lines(&self) -> [String; 2] {
        let path = |file: &str| self.dir.join(file).display().to_string();
        [
            format!("clientCert: {{file: \"{}\"}}", path("cert.pem")),
            format!("clientKey: {{file: \"{}\"}}", path("key.pem")),
        ]
    }
}

/// An mTLS upstream listener `secure` at `addr`, with `cert` and requiring clients of
/// `client_ca`, started as `name`.
fn secure_upstream(
    d: &Path,
    name: &str,
    addr: SocketAddr,
    cert: &CertKey,
    client_ca: &Ca,
) -> Upstream {
    UpstreamBuilder::new()
        .mtls("secure", cert, client_ca)
        .at(addr)
        .start_named(d, name)
}

#[test]
fn rotated_ca_and_client_certificate_files_are_taken_up_with_no_restart() {
    let dir = test_dir();
    let d = dir.path();
    let (up, steady) = steady_upstream(d);
    let (old_ca, new_ca) = (Ca::new(d, "old-ca"), Ca::new(d, "new-ca"));
    let (old_clients, new_clients) = (Ca::new(d, "old-clients"), Ca::new(d, "new-clients"));
    let server = |ca: &Ca, stem: &str| ca.server_cert(d, stem, &["secure.test"], &[LOCALHOST]);
    let addr = SocketAddr::from((LOCALHOST, support::free_port()));

    let trust = d.join("trust");
    fs::create_dir(&trust).unwrap();
    let ca_path = trust.join("ca.pem");
    rename_into(&ca_path, old_ca.ca_pem().as_bytes());
    let mut client = MountedPair::new(
        d.join("client"),
        &old_clients.client_cert(d, "app-1", "app-1"),
    );
    let mut tls = vec![format!("caCert: {{file: \"{}\"}}", ca_path.display())];
    tls.extend(client.tls_lines());
    let secure = https_service("secure", "http", &addr.to_string(), &tls);

    let mut upstream = secure_upstream(
        d,
        "secure-1",
        addr,
        &server(&old_ca, "server-1"),
        &old_clients,
    );
    let s = start(d, &up, &[steady, secure]);
    let (proxy, pid) = (s.proxy(), s.envoy.pid());
    let seen = successes(&s.envoy);
    let peer = |expected: &'static str| {
        eventually(
            &format!("secure.mesh answers {expected}"),
            UPDATE,
            Duration::from_millis(50),
            || {
                let r = Curl::get(format!("{proxy}/get")).host("secure.mesh").run();
                match (r.status, r.header("x-seen-peer-subject")) {
                    (200, Some(subject)) if subject == expected => Ok(()),
                    _ => Err(format!("{r:?}")),
                }
            },
        )
    };
    peer("CN=app-1");
    let stream = Stream::start(proxy.clone(), "steady.mesh");

    // The upstream's certificate now comes from another CA: refused until the CA file is.
    upstream.envoy.kill();
    upstream = secure_upstream(
        d,
        "secure-2",
        addr,
        &server(&new_ca, "server-2"),
        &old_clients,
    );
    eventually_status(&proxy, "secure.mesh", 503);
    rename_into(&ca_path, new_ca.ca_pem().as_bytes());
    peer("CN=app-1");
    stream.wait_for_more(5);

    // The upstream now wants clients of another CA: refused until the pair is swapped.
    upstream.envoy.kill();
    let _upstream = secure_upstream(
        d,
        "secure-3",
        addr,
        &server(&new_ca, "server-3"),
        &new_clients,
    );
    eventually_status(&proxy, "secure.mesh", 503);
    client.rotate(&new_clients.client_cert(d, "app-2", "app-2"));
    peer("CN=app-2");
    stream.wait_for_more(5);

    stream.assert_all_served();
    assert_eq!(s.envoy.pid(), pid, "Envoy was restarted");
    assert_eq!(successes(&s.envoy), seen, "LDS and CDS were not needed");
    assert_eq!(s.envoy.counter(&format!("{LDS}.update_rejected")), 0);
    assert_eq!(s.envoy.counter(&format!("{CDS}.update_rejected")), 0);
    assert_no_sds_failures(&s.envoy, 2);

    // A rotated file that is no certificate: refused, the previous CA kept.
    rename_into(&ca_path, b"not a certificate");
    s.envoy.wait_for_stat(
        "sds.external_service_secure.ca.key_rotation_failed",
        UPDATE,
        |n| n == 1,
    );
    peer("CN=app-2");
}

/// Each of the `secrets` SDS secrets was read, and none refused or failed to rotate.
fn assert_no_sds_failures(envoy: &Envoy, secrets: usize) {
    let stats = envoy.stats();
    let counters = |suffix: &str| -> Vec<(&String, &u64)> {
        stats
            .iter()
            .filter(|(name, _)| name.starts_with("sds.") && name.ends_with(suffix))
            .collect()
    };
    assert_eq!(counters(".update_success").len(), secrets, "{stats:?}");
    for suffix in [
        ".update_rejected",
        ".update_failure",
        ".key_rotation_failed",
    ] {
        assert!(counters(suffix).iter().all(|(_, &n)| n == 0), "{stats:?}");
    }
}

/// `extsvc watch` running on a directory of resource files, its lines read as they come.
pub(crate) struct Watch {
    child: Child,
    lines: mpsc::Receiver<String>,
    _tracked: Tracked,
}

impl Watch {
    /// `extsvc watch <services> --xds-dir <d>/xds -o <d>/envoy.yaml ...`, serving on `listen`.
    fn start(d: &Path, services: &Path, listen: u16, dns: Option<SocketAddr>) -> Watch {
        let mut args: Vec<OsString> = vec![services.into()];
        args.extend(xds_args(d));
        args.extend([
            "-o".into(),
            d.join("envoy.yaml").into(),
            "--listen".into(),
            format!("127.0.0.1:{listen}").into(),
            "--stats-listen".into(),
            "127.0.0.1:0".into(),
            "--wasm".into(),
            support::wasm_module().into(),
        ]);
        if let Some(dns) = dns {
            args.extend(["--dns-resolver".into(), dns.to_string().into()]);
        }
        Watch::spawn(d, &args)
    }

    /// `extsvc watch ARGS...` in `d` (its stderr in `d/watch.stderr`).
    pub(crate) fn spawn(d: &Path, args: &[OsString]) -> Watch {
        let mut child = Command::new(support::extsvc_binary())
            .current_dir(d)
            .arg("watch")
            .args(args)
            .stdout(Stdio::piped())
            .stderr(fs::File::create(d.join("watch.stderr")).unwrap())
            .spawn()
            .unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let (send, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in stdout.lines().map_while(Result::ok) {
                if send.send(line).is_err() {
                    return;
                }
            }
        });
        let _tracked = Tracked::new(child.id());
        Watch {
            child,
            lines,
            _tracked,
        }
    }

    /// The next line, which must come within [`UPDATE`] and start with `extsvc: <word>`.
    pub(crate) fn expect_line(&self, word: &str) -> String {
        self.expect_line_within(word, UPDATE)
    }

    /// The next line, which must come within `wait` and start with `extsvc: <word>`.
    pub(crate) fn expect_line_within(&self, word: &str, wait: Duration) -> String {
        let line = self
            .lines
            .recv_timeout(wait)
            .unwrap_or_else(|e| panic!("no `{word}` line from watch: {e}"));
        assert!(line.starts_with(&format!("extsvc: {word}")), "{line}");
        line
    }

    /// No line comes for a while: the last change was one update.
    fn expect_quiet(&self) {
        if let Ok(line) = self.lines.recv_timeout(Duration::from_secs(1)) {
            panic!("one more line from watch: {line}");
        }
    }

    /// Sends `signal` (`INT`, as Ctrl-C does, or `TERM`) and waits for the exit.
    fn stop(&mut self, signal: &str) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill")
            .args([&format!("-{signal}"), &pid])
            .status()
            .unwrap();
        assert!(sent.success());
        eventually("watch exits", UPDATE, Duration::from_millis(20), || {
            self.child
                .try_wait()
                .unwrap()
                .ok_or_else(|| "still running".to_string())
        })
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn watch_takes_up_an_add_a_move_and_a_removal_refuses_an_invalid_edit_and_stops_on_ctrl_c() {
    let dir = test_dir();
    let d = dir.path();
    let up = movers_upstream(d);
    let services = d.join("services");
    fs::create_dir(&services).unwrap();
    fs::write(services.join("mesh.yaml"), mesh(false)).unwrap();
    let steady = http_service("steady", &format!("steady.test:{}", up.port("steady")));
    fs::write(services.join("steady.yaml"), steady).unwrap();
    let mover =
        |upstream: &str| http_service("mover", &format!("mover.test:{}", up.port(upstream)));
    let mover_file = services.join("mover.yaml");

    let listen = support::free_port();
    let mut watch = Watch::start(d, &services, listen, up.dns_addr());
    assert!(watch
        .expect_line("updated")
        .contains("1 cluster, 1 listener"));
    let envoy = Envoy::try_start_file(d, "sidecar", &d.join("envoy.yaml"), &Default::default())
        .unwrap_or_else(|e| panic!("{e}"));
    let (proxy, pid) = (format!("http://127.0.0.1:{listen}"), envoy.pid());
    eventually_status(&proxy, "steady.mesh", 200);
    let stream = Stream::start(proxy.clone(), "steady.mesh");
    let mut seen = successes(&envoy);

    // Added, saved as an editor may: half a file first, then the whole. One update.
    let whole = mover("first");
    fs::write(&mover_file, &whole[..whole.len() / 2]).unwrap();
    thread::sleep(Duration::from_millis(50));
    fs::write(&mover_file, &whole).unwrap();
    assert!(watch.expect_line("updated").contains("2 clusters"));
    watch.expect_quiet();
    assert_ok_from(&eventually_status(&proxy, "mover.mesh", 200), "first");
    seen = assert_updates_took(&envoy, seen);

    // Moved.
    fs::write(&mover_file, mover("second")).unwrap();
    watch.expect_line("updated");
    // The old cluster answers 200 too until Envoy has taken the update up.
    eventually_served_by(&proxy, "mover.mesh", "second");
    seen = assert_updates_took(&envoy, seen);

    // Saved again as it was: looked at, nothing written.
    let before = (
        snapshot(d),
        fs::metadata(d.join("envoy.yaml"))
            .unwrap()
            .modified()
            .unwrap(),
    );
    fs::write(&mover_file, mover("second")).unwrap();
    watch.expect_line("unchanged");
    let after = (
        snapshot(d),
        fs::metadata(d.join("envoy.yaml"))
            .unwrap()
            .modified()
            .unwrap(),
    );
    assert_eq!(after, before);

    // An invalid edit: refused, one line that names the field, the directory as it was.
    let before = snapshot(d);
    fs::write(&mover_file, http_service("mover", "no-port.test")).unwrap();
    let refused = watch.expect_line("refused");
    assert!(refused.contains("networking.address"), "{refused}");
    assert!(refused.contains("mover.yaml"), "{refused}");
    watch.expect_quiet();
    assert_eq!(snapshot(d), before, "the xDS directory changed");
    assert_eq!(successes(&envoy), seen);
    assert_ok_from(&eventually_status(&proxy, "mover.mesh", 200), "second");

    // Removed: refused by the rules, passthrough being off.
    fs::remove_file(&mover_file).unwrap();
    assert!(watch.expect_line("updated").contains("1 cluster,"));
    eventually_status(&proxy, "mover.mesh", 403);
    assert_updates_took(&envoy, seen);
    stream.wait_for_more(5);

    let status = watch.stop("INT");
    assert_eq!(status.code(), Some(0), "{status:?}");
    watch.expect_line("stopped");
    stream.assert_all_served();
    assert_eq!(envoy.pid(), pid, "Envoy was restarted");
}

#[test]
fn sigterm_stops_watch_as_ctrl_c_does() {
    let dir = test_dir();
    let d = dir.path();
    let services = d.join("services");
    fs::create_dir(&services).unwrap();
    fs::write(services.join("mesh.yaml"), mesh(false)).unwrap();
    let mut watch = Watch::start(d, &services, support::free_port(), None);
    watch.expect_line("updated");
    let status = watch.stop("TERM");
    assert_eq!(status.code(), Some(0), "{status:?}");
    watch.expect_line("stopped");
}

#[test]
fn watch_without_an_xds_dir_on_standard_input_or_for_kubernetes_cannot_run() {
    let dir = test_dir();
    let d = dir.path();
    let file = d.join("services.yaml");
    fs::write(&file, mesh(false)).unwrap();
    let wasm: OsString = support::wasm_module().into();
    let no_dir = support::extsvc(
        d,
        &[
            "watch".into(),
            file.clone().into(),
            "--wasm".into(),
            wasm.clone(),
        ],
    );
    assert_eq!(no_dir.code, Some(2), "{no_dir:?}");
    assert!(no_dir.stderr.contains("--xds-dir"), "{no_dir:?}");
    let stdin = support::extsvc(
        d,
        &["watch".into(), "-".into(), "--wasm".into(), wasm]
            .into_iter()
            .chain(xds_args(d))
            .collect::<Vec<OsString>>(),
    );
    assert_eq!(stdin.code, Some(2), "{stdin:?}");
    assert!(stdin.stderr.contains("standard input"), "{stdin:?}");
    let kubernetes = support::extsvc(
        d,
        &[
            "watch".into(),
            file.into(),
            "--format".into(),
            "kubernetes".into(),
        ]
        .into_iter()
        .chain(xds_args(d))
        .collect::<Vec<OsString>>(),
    );
    assert_eq!(kubernetes.code, Some(2), "{kubernetes:?}");
    assert!(
        kubernetes
            .stderr
            .contains("run `extsvc generate --format kubernetes -o FILE`"),
        "{kubernetes:?}"
    );
    assert!(!xds_dir(d).exists(), "nothing is written");
}

/// What an inline-CA rotation needs: the CA before and after, the clients' CA and one client
/// of it, and a free loopback address for the upstream.
struct InlineRotation {
    old_ca: Ca,
    new_ca: Ca,
    clients: Ca,
    client: CertKey,
    addr: SocketAddr,
}

impl InlineRotation {
    fn new(d: &Path) -> InlineRotation {
        let clients = Ca::new(d, "clients");
        InlineRotation {
            old_ca: Ca::new(d, "old-ca"),
            new_ca: Ca::new(d, "new-ca"),
            client: clients.client_cert(d, "app", "app"),
            clients,
            addr: SocketAddr::from((LOCALHOST, support::free_port())),
        }
    }
}

#[test]
fn an_inline_ca_changed_in_the_resources_is_taken_up_through_its_secret_file_alone() {
    let dir = test_dir();
    let d = dir.path();
    let (up, steady) = steady_upstream(d);
    let InlineRotation {
        old_ca,
        new_ca,
        clients,
        client,
        addr,
    } = InlineRotation::new(d);
    let secure = |ca: &Ca| {
        let ca = serde_json::to_string(ca.ca_pem()).unwrap();
        let mut tls = vec![format!("caCert: {{inlineString: {ca}}}")];
        tls.push(format!(
            "clientCert: {{file: \"{}\"}}",
            client.cert_path.display()
        ));
        tls.push(format!(
            "clientKey: {{file: \"{}\"}}",
            client.key_path.display()
        ));
        https_service("secure", "http", &addr.to_string(), &tls)
    };
    let server = |ca: &Ca, stem: &str| ca.server_cert(d, stem, &["secure.test"], &[LOCALHOST]);
    let mut upstream = secure_upstream(d, "secure-1", addr, &server(&old_ca, "server-1"), &clients);
    let s = start(d, &up, &[steady.clone(), secure(&old_ca)]);
    let (proxy, pid) = (s.proxy(), s.envoy.pid());
    eventually_status(&proxy, "secure.mesh", 200);
    let stream = Stream::start(proxy.clone(), "steady.mesh");
    let seen = successes(&s.envoy);
    let clusters = fs::read(xds_dir(d).join("cds.yaml")).unwrap();

    upstream.envoy.kill();
    let _upstream = secure_upstream(d, "secure-2", addr, &server(&new_ca, "server-2"), &clients);
    eventually_status(&proxy, "secure.mesh", 503);
    let cli = generate(
        d,
        &docs(&[mesh(false), steady, secure(&new_ca)]),
        s.listen,
        up.dns_addr(),
        &xds_args(d),
    );
    assert_eq!(cli.code, Some(0), "{cli:?}");
    eventually_status(&proxy, "secure.mesh", 200);
    s.envoy.wait_for_stat(
        "sds.external_service_secure.ca.update_success",
        UPDATE,
        |n| n == 2,
    );
    stream.wait_for_more(5);

    assert_eq!(
        fs::read(xds_dir(d).join("cds.yaml")).unwrap(),
        clusters,
        "the cluster changed"
    );
    assert_eq!(successes(&s.envoy), seen, "LDS and CDS were not needed");
    stream.assert_all_served();
    assert_eq!(s.envoy.pid(), pid, "Envoy was restarted");
    assert_no_sds_failures(&s.envoy, 2);
}

/// A MeshExternalService `secure` on match.port 80 (so `secure.extsvc.mesh.local` with no
/// port), TLS to `addr` named `secure.test`, trusting `ca` and presenting `client`, each as
/// `inlineString` (MES has no `file` DataSource).
fn mesh_external_service(addr: SocketAddr, ca: &Ca, client: &CertKey) -> String {
    let pem = |text: &str| serde_json::to_string(text).unwrap();
    let read = |path: &Path| pem(&fs::read_to_string(path).unwrap());
    format!(
        "type: MeshExternalService\nname: secure\nmesh: default\nspec:\n  match: {{port: 80, protocol: http}}\n  endpoints: [{{address: \"{}\", port: {}}}]\n  tls:\n    enabled: true\n    verification:\n      serverName: secure.test\n      caCert: {{inlineString: {}}}\n      clientCert: {{inlineString: {}}}\n      clientKey: {{inlineString: {}}}\n",
        addr.ip(),
        addr.port(),
        pem(ca.ca_pem()),
        read(&client.cert_path),
        read(&client.key_path),
    )
}

#[test]
fn a_mesh_external_service_is_added_its_ca_rotated_and_removed_with_no_restart() {
    let dir = test_dir();
    let d = dir.path();
    let (up, steady) = steady_upstream(d);
    let InlineRotation {
        old_ca,
        new_ca,
        clients,
        client,
        addr,
    } = InlineRotation::new(d);
    let server = |ca: &Ca, stem: &str| ca.server_cert(d, stem, &["secure.test"], &[LOCALHOST]);
    let mut upstream = secure_upstream(d, "secure-1", addr, &server(&old_ca, "server-1"), &clients);
    let s = start(d, &up, std::slice::from_ref(&steady));
    let (proxy, pid) = (s.proxy(), s.envoy.pid());
    let stream = Stream::start(proxy.clone(), "steady.mesh");
    let regenerate = |resources: &[String]| {
        let cli = generate(d, &docs(resources), s.listen, up.dns_addr(), &xds_args(d));
        assert_eq!(cli.code, Some(0), "{cli:?}");
    };
    let host = "secure.extsvc.mesh.local";

    // Added: served by its hostname, with its client certificate.
    eventually_status(&proxy, host, 403);
    regenerate(&[
        mesh(false),
        steady.clone(),
        mesh_external_service(addr, &old_ca, &client),
    ]);
    let served = eventually_status(&proxy, host, 200);
    assert_eq!(
        served.header("x-seen-peer-subject"),
        Some("CN=app"),
        "{served:?}"
    );
    let seen = successes(&s.envoy);
    let clusters = fs::read(xds_dir(d).join("cds.yaml")).unwrap();

    // The upstream's certificate now comes from another CA: refused until the resource's CA
    // is, which only its SDS secret carries.
    upstream.envoy.kill();
    upstream = secure_upstream(d, "secure-2", addr, &server(&new_ca, "server-2"), &clients);
    eventually_status(&proxy, host, 503);
    regenerate(&[
        mesh(false),
        steady.clone(),
        mesh_external_service(addr, &new_ca, &client),
    ]);
    eventually_status(&proxy, host, 200);
    s.envoy.wait_for_stat(
        "sds.external_service_mes_secure.ca.update_success",
        UPDATE,
        |n| n == 2,
    );
    assert_eq!(
        fs::read(xds_dir(d).join("cds.yaml")).unwrap(),
        clusters,
        "the cluster changed"
    );
    assert_eq!(successes(&s.envoy), seen, "LDS and CDS were not needed");

    // Removed: refused again, passthrough being off.
    regenerate(&[mesh(false), steady.clone()]);
    let refused = eventually_status(&proxy, host, 403);
    assert_eq!(
        refused.header("x-external-service-denied"),
        Some("undeclared-host"),
        "{refused:?}"
    );
    stream.wait_for_more(5);
    stream.assert_all_served();
    assert_eq!(s.envoy.pid(), pid, "Envoy was restarted");
    drop(upstream);
}
