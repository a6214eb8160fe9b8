//! The egress tests' network, the four hosts of `extsvc_testkit::egress_net` (`web`, `batch`,
//! `egress`, `world`), proven first with no Envoy of ours: the app hosts reach the egress and
//! nothing beyond it, the egress reaches the world by name, the egress forwarding nothing is
//! what closes the world (open it and the same connection goes through), and no namespace is
//! left after a drop, a panic or a killed run. Then the egress scenario on it: `web` and
//! `batch` each an app behind its Dataplane's sidecar (`generate --dataplane`, the transparent
//! proxy installed with uncaptured traffic blocked), `egress` the ZoneEgress's Envoy
//! (`generate --zone-egress`), `world` HTTPS for `httpbin.test`; `web` may reach `httpbin`,
//! `batch` may not. And a sidecar of today, with no egress, dialling the world itself.
//!
//! These tests make network namespaces, which needs root (CI runs as root); without it they
//! fail and say so.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::ffi::OsString;
use std::fs;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use extsvc_testkit::egress_net::{
    give_to_envoy, EgressNet, Host, BATCH_IP, EGRESS_IP, EGRESS_IPS, WEB_IP, WORLD_HTTPS_PORT,
    WORLD_IP,
};
use extsvc_testkit::{
    assert_503_without_upstream, assert_not_permitted, ca_file, dedent, docs, eventually, generate,
    https_service, mesh, mesh_through_egress, test_dir, zone_egress, Ca, Envoy, EnvoyOptions,
    TlsClient, WAIT,
};

use crate::zone_egress::identity_of;

/// The world's HTTPS server.
const WORLD_HTTPS: SocketAddr = SocketAddr::new(IpAddr::V4(WORLD_IP), WORLD_HTTPS_PORT);

fn network(dir: &Path) -> EgressNet {
    network_with_id(dir, None)
}

fn network_with_id(dir: &Path, id: Option<&str>) -> EgressNet {
    EgressNet::create(dir, id, &["httpbin.test"]).unwrap_or_else(|e| {
        panic!("the egress tests make network namespaces, which needs root (CI runs as root): {e}")
    })
}

fn namespaces(net: &EgressNet) -> Vec<String> {
    Host::ALL.map(|h| net.host(h).name.clone()).to_vec()
}

/// Which of `names` `ip netns list` shows, and which have a `/etc/netns/` dir.
fn still_there(names: &[String]) -> Vec<String> {
    let out = Command::new("ip").args(["netns", "list"]).output().unwrap();
    let listed = String::from_utf8_lossy(&out.stdout).into_owned();
    let listed: Vec<&str> = listed
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    names
        .iter()
        .filter(|n| listed.contains(&n.as_str()) || Path::new("/etc/netns").join(n).exists())
        .cloned()
        .collect()
}

/// What a killed run leaves: the world's servers are gone with the process, the namespaces
/// stay.
fn kill_leaving_namespaces(net: EgressNet) {
    let EgressNet {
        world_servers,
        web,
        batch,
        egress,
        world,
        world_pki: _,
    } = net;
    drop(world_servers);
    for ns in [web, batch, egress, world] {
        std::mem::forget(ns);
    }
}

#[test]
fn app_hosts_reach_the_egress_and_nothing_beyond_it() {
    let dir = test_dir();
    let net = network(dir.path());
    let egress = net
        .egress
        .run(|| TcpListener::bind((EGRESS_IP, 0)))
        .unwrap();
    let egress_at = egress.local_addr().unwrap();
    let batch = net.batch.run(|| TcpListener::bind((BATCH_IP, 0))).unwrap();
    let batch_at = batch.local_addr().unwrap();

    for (app, ip) in [(Host::Web, WEB_IP), (Host::Batch, BATCH_IP)] {
        net.connect(app, egress_at)
            .unwrap_or_else(|e| panic!("{app:?} to the egress at {egress_at}: {e}"));
        let (_, peer) = egress.accept().unwrap();
        assert_eq!(
            peer.ip(),
            IpAddr::V4(ip),
            "{app:?} came from its own address"
        );
        let refused = net.connect(app, WORLD_HTTPS);
        assert!(refused.is_err(), "{app:?} reached the world: {refused:?}");
    }
    let refused = net.connect(Host::Web, batch_at);
    assert!(refused.is_err(), "web reached batch: {refused:?}");
    assert_eq!(
        net.world_tcp_attempts(),
        0,
        "the world saw a connection attempt"
    );
}

#[test]
fn the_egress_reaches_the_world_by_name() {
    let dir = test_dir();
    let net = network(dir.path());
    let r = net
        .curl(Host::Egress, "https://httpbin.test/get")
        .cacert(net.world_pki.ca.ca_path())
        .run();
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("x-seen-sni"), Some("httpbin.test"), "{r:?}");
    assert_eq!(net.world_requests(), 1);
}

/// What closes the world is the egress forwarding nothing: with forwarding on, the connection
/// the test above sees refused goes through, so that test fails on an open network.
#[test]
fn an_egress_that_forwards_would_open_the_world() {
    let dir = test_dir();
    let net = network(dir.path());
    net.set_egress_forwarding(true).unwrap();
    for app in [Host::Web, Host::Batch] {
        net.connect(app, WORLD_HTTPS)
            .unwrap_or_else(|e| panic!("{app:?} to the world through a forwarding egress: {e}"));
    }
    eventually(
        "the world counts both connection attempts",
        Duration::from_secs(5),
        Duration::from_millis(50),
        || match net.world_tcp_attempts() {
            2 => Ok(()),
            n => Err(format!("{n} attempts")),
        },
    );
}

#[test]
fn no_namespace_is_left_after_a_drop_a_panic_or_a_killed_run() {
    let dir = test_dir();
    let net = network(dir.path());
    let names = namespaces(&net);
    assert_eq!(still_there(&names), names, "made and listed");
    drop(net);
    assert_eq!(still_there(&names), Vec::<String>::new(), "after a drop");

    let mut names = Vec::new();
    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let net = network(dir.path());
        names = namespaces(&net);
        panic!("a test fails with the network up");
    }));
    assert!(panicked.is_err());
    assert_eq!(still_there(&names), Vec::<String>::new(), "after a panic");

    let id = format!("killed{}", std::process::id() % 100_000);
    let names = Host::ALL.map(|h| h.namespace(&id)).to_vec();
    kill_leaving_namespaces(network_with_id(dir.path(), Some(&id)));
    assert_eq!(
        still_there(&names),
        names,
        "a killed run leaves its namespaces"
    );
    // Its id again: what the killed run left is removed first.
    kill_leaving_namespaces(network_with_id(dir.path(), Some(&id)));
    EgressNet::remove_leftovers(&id);
    assert_eq!(
        still_there(&names),
        Vec::<String>::new(),
        "after remove_leftovers"
    );
}

/// A sidecar of today (`generate --transparent-proxy`, no egress), whose ExternalService dials
/// the world's address itself: the capture lets Envoy's own uid out, and the network still
/// stops it. The app gets 503 and the world sees no connection.
#[test]
fn a_sidecar_that_dials_the_world_itself_gets_nothing_out() {
    let dir = test_dir();
    let net = network(dir.path());
    let web = dir.path().join("web");
    fs::create_dir(&web).unwrap();
    let resources = docs(&[
        mesh(false),
        https_service(
            "httpbin",
            "http",
            &WORLD_HTTPS.to_string(),
            &[
                ca_file(&net.world_pki.ca),
                "serverName: httpbin.test".to_string(),
            ],
        ),
    ]);
    let generated = generate(
        &web,
        &resources,
        15001,
        None,
        &["--transparent-proxy".into()],
    );
    assert_eq!(generated.code, Some(0), "{}", generated.stderr);
    give_to_envoy(&web).unwrap();
    net.install_transparent_proxy(Host::Web, &["--redirect-dns"])
        .unwrap_or_else(|e| panic!("{e}"));
    let _sidecar = net
        .start_envoy(
            Host::Web,
            &web,
            "sidecar",
            &web.join("envoy.yaml"),
            &EnvoyOptions::default(),
        )
        .unwrap_or_else(|e| panic!("{e}"));

    assert_503_without_upstream(&net.curl(Host::Web, "http://httpbin.mesh/get").run());
    assert_eq!(
        net.world_tcp_attempts(),
        0,
        "the world saw a connection attempt"
    );
}

// ---------------------------------------------------------------------------------------------
// The egress scenario
// ---------------------------------------------------------------------------------------------

/// The ZoneEgress's port (Kuma's default).
const EGRESS_PORT: u16 = 10002;
/// Kuma's SNI for the ExternalService `httpbin` of the mesh `default`.
const HTTPBIN_SNI: &str = "httpbin{mesh=default}";

/// The network, the mesh's CA and the resources: the Mesh (mTLS by the provided CA, external
/// traffic through the ZoneEgress, passthrough off), the ZoneEgresses on [`EGRESS_IPS`], the
/// ExternalService `httpbin` (the world's `httpbin.test:443`), the Dataplanes `web` and `batch`
/// on their hosts' addresses, and one MeshTrafficPermission.
struct Scenario {
    // Dropped in this order: the Envoys, then the network, then the files.
    egresses: Vec<Envoy>,
    sidecars: Vec<Envoy>,
    net: EgressNet,
    mesh_ca: Ca,
    resources: String,
    dir: tempfile::TempDir,
}

impl Scenario {
    /// With `egresses` ZoneEgresses (one or two).
    fn new(permission: &str, egresses: usize) -> Scenario {
        let dir = test_dir();
        let net = network(dir.path());
        let mesh_ca = Ca::new(dir.path(), "mesh-ca");
        let mesh = mesh_through_egress(&mesh_ca, None);
        let dataplane = |name: &str, ip: Ipv4Addr| {
            format!(
                "type: Dataplane\nmesh: default\nname: {name}\nnetworking:\n  address: {ip}\n  \
                 inbound: [{{port: 8080, tags: {{kuma.io/service: {name}}}}}]\n"
            )
        };
        let zone_egresses = EGRESS_IPS[..egresses]
            .iter()
            .enumerate()
            .map(|(i, ip)| zone_egress(i + 1, ip, EGRESS_PORT));
        let mut parts = vec![mesh];
        parts.extend(zone_egresses);
        parts.extend([
            https_service(
                "httpbin",
                "http",
                &format!("httpbin.test:{WORLD_HTTPS_PORT}"),
                &[ca_file(&net.world_pki.ca)],
            ),
            dataplane("web", WEB_IP),
            dataplane("batch", BATCH_IP),
            dedent(permission),
        ]);
        Scenario {
            resources: docs(&parts),
            egresses: Vec::new(),
            sidecars: Vec::new(),
            net,
            mesh_ca,
            dir,
        }
    }

    /// `extsvc generate` of `role` into `<dir>/<name>/` (bootstrap, and `xds/` with the
    /// certificates), handed to Envoy's uid.
    fn generate(&self, name: &str, role: &[&str], dns: Option<SocketAddr>) -> PathBuf {
        let d = self.dir.path().join(name);
        fs::create_dir_all(&d).unwrap();
        let mut extra: Vec<OsString> = role.iter().map(OsString::from).collect();
        extra.extend(["--xds-dir".into(), d.join("xds").into()]);
        let generated = generate(&d, &self.resources, 15001, dns, &extra);
        assert_eq!(generated.code, Some(0), "{name}: {}", generated.stderr);
        give_to_envoy(&d).unwrap();
        d
    }

    /// The ZoneEgresses' Envoys on `egress`, resolving names with the world's DNS.
    fn start_egresses(&mut self, count: usize) {
        let dns = SocketAddr::from((WORLD_IP, 53));
        for n in 1..=count {
            let name = format!("egress-{n}");
            let d = self.generate(&name, &["--zone-egress", &name], Some(dns));
            let envoy = self.start_envoy(Host::Egress, &d, &name);
            self.egresses.push(envoy);
        }
    }

    /// `dataplane`'s sidecar on its host, under the transparent proxy with uncaptured traffic
    /// blocked.
    fn start_sidecar(&mut self, host: Host, dataplane: &str) {
        let role = ["--dataplane", dataplane, "--transparent-proxy"];
        let d = self.generate(dataplane, &role, None);
        self.net
            .install_transparent_proxy(host, &["--redirect-dns"])
            .unwrap_or_else(|e| panic!("{e}"));
        let sidecar = self.start_envoy(host, &d, dataplane);
        self.sidecars.push(sidecar);
    }

    fn start_envoy(&self, host: Host, d: &Path, name: &str) -> Envoy {
        self.net
            .start_envoy(
                host,
                d,
                name,
                &d.join("envoy.yaml"),
                &EnvoyOptions::default(),
            )
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// The certificate and key `generate` issued `dataplane`, written out as PEM files, as a
    /// client holding them (a stolen key) would use them.
    fn identity_files(&self, dataplane: &str) -> (PathBuf, PathBuf) {
        let d = self.dir.path().join(dataplane);
        let (cert, key) = identity_of(&d.join("xds"));
        let files = (d.join("identity.pem"), d.join("identity.key"));
        fs::write(&files.0, cert).unwrap();
        fs::write(&files.1, key).unwrap();
        files
    }

    /// Waits until the egress's RBAC has refused `count` connections to `httpbin`.
    fn rbac_denied(&self, count: u64) {
        self.egresses[0].wait_for_stat("egress_external_service_httpbin.rbac.denied", WAIT, |n| {
            n == count
        });
    }

    /// A hand-made TLS client from `host` straight to the egress, with `httpbin`'s SNI.
    fn to_egress_from(&self, host: Host) -> TlsClient {
        TlsClient::new(SocketAddr::from((EGRESS_IP, EGRESS_PORT)), HTTPBIN_SNI)
            .in_netns(&self.net.host(host).name)
            .trust(self.mesh_ca.ca_path())
    }
}

/// `web`, and no other, may reach `httpbin`.
const WEB_MAY_REACH_HTTPBIN: &str = "
    type: MeshTrafficPermission
    mesh: default
    name: httpbin-callers
    spec:
      targetRef: {kind: MeshService, name: httpbin}
      from:
      - targetRef: {kind: MeshSubset, tags: {kuma.io/service: web}}
        default: {action: Allow}
    ";

/// Everyone may reach everything, but `batch`: its Deny overrides the broader Allow before it
/// (in Kuma, of the `from` items that select a caller, the last decides).
const ALL_BUT_BATCH: &str = "
    type: MeshTrafficPermission
    mesh: default
    name: all-but-batch
    spec:
      targetRef: {kind: Mesh}
      from:
      - targetRef: {kind: Mesh}
        default: {action: Allow}
      - targetRef: {kind: MeshSubset, tags: {kuma.io/service: batch}}
        default: {action: Deny}
    ";

/// `web` may reach `httpbin`, and `batch` too, as a shadow denial: allowed, counted and logged
/// as what a Deny would refuse.
const BATCH_SHADOW_DENIED: &str = "
    type: MeshTrafficPermission
    mesh: default
    name: httpbin-callers
    spec:
      targetRef: {kind: MeshService, name: httpbin}
      from:
      - targetRef: {kind: MeshSubset, tags: {kuma.io/service: web}}
        default: {action: Allow}
      - targetRef: {kind: MeshSubset, tags: {kuma.io/service: batch}}
        default: {action: AllowWithShadowDeny}
    ";

/// An HTTP/1.1 request that asks the server to close after answering.
const REQUEST: &str = "GET /get HTTP/1.1\r\nHost: httpbin.test\r\nConnection: close\r\n\r\n";

/// The scenario, through the apps' own eyes: no proxy settings, names from the sidecar's
/// DNS, every connection captured.
#[test]
fn web_reaches_httpbin_through_its_sidecar_and_the_egress_and_batch_is_refused_at_its_sidecar() {
    let mut s = Scenario::new(WEB_MAY_REACH_HTTPBIN, 1);
    s.start_egresses(1);
    s.start_sidecar(Host::Web, "web");
    s.start_sidecar(Host::Batch, "batch");
    let (net, egress) = (&s.net, &s.egresses[0]);

    let r = net.curl(Host::Web, "http://httpbin.mesh/get").run();
    assert_eq!(r.status, 200, "{r:?}\n{}", egress.log_tail(20));
    // The egress, not the sidecar, spoke TLS to the real host, by its name.
    assert_eq!(r.header("x-seen-sni"), Some("httpbin.test"), "{r:?}");
    // It did so for web's certificate.
    egress.wait_for_stdout("\"source_identity\":\"spiffe://default/web,", WAIT);
    assert_eq!(net.world_requests(), 1);
    let attempts = net.world_tcp_attempts();

    assert_not_permitted(&net.curl(Host::Batch, "http://httpbin.mesh/get").run());

    // On its own host, batch's key is no way round its sidecar: the capture takes a
    // connection to the egress to the sidecar, which refuses it, and the egress sees nothing.
    let key = s.identity_files("batch");
    let straight = s
        .to_egress_from(Host::Batch)
        .certificate(&key.0, &key.1)
        .send(s.dir.path(), REQUEST);
    assert!(
        !straight.log.contains("CONNECTION ESTABLISHED"),
        "{straight:?}"
    );
    assert_eq!(straight.received, "", "{straight:?}");
    assert_eq!(
        egress.counter("egress_external_service_httpbin.rbac.denied"),
        0
    );
    assert!(
        !egress.stdout().contains("spiffe://default/batch"),
        "{}",
        egress.stdout()
    );

    assert_eq!(net.world_requests(), 1, "the world saw batch's request");
    assert_eq!(net.world_tcp_attempts(), attempts, "the world saw batch");
}

#[test]
fn the_egress_refuses_batchs_real_certificate_and_another_cas_and_the_world_sees_nothing() {
    let mut s = Scenario::new(WEB_MAY_REACH_HTTPBIN, 1);
    s.start_egresses(1);
    // Generating a sidecar issues its certificate; its Envoy need not run.
    s.generate("web", &["--dataplane", "web"], None);
    s.generate("batch", &["--dataplane", "batch"], None);
    let (web, batch) = (s.identity_files("web"), s.identity_files("batch"));
    let dir = s.dir.path();

    // web's certificate, from web's host: the egress takes it to the world.
    let allowed = s
        .to_egress_from(Host::Web)
        .certificate(&web.0, &web.1)
        .send(dir, REQUEST);
    assert!(allowed.received.starts_with("HTTP/1.1 200"), "{allowed:?}");
    assert_eq!(s.net.world_requests(), 1);
    let attempts = s.net.world_tcp_attempts();

    // batch's real certificate of the mesh, no permission: closed at its first bytes.
    let refused = s
        .to_egress_from(Host::Batch)
        .certificate(&batch.0, &batch.1)
        .send(dir, REQUEST);
    assert!(
        refused.log.contains("CONNECTION ESTABLISHED"),
        "{refused:?}"
    );
    assert_eq!(refused.received, "", "{refused:?}");
    s.rbac_denied(1);

    // A certificate of another CA: refused at the handshake.
    let stranger = &s.net.world_pki.client;
    let other = s
        .to_egress_from(Host::Batch)
        .certificate(&stranger.cert_path, &stranger.key_path)
        .send(dir, REQUEST);
    assert!(other.log.contains("alert unknown ca"), "{other:?}");
    assert_eq!(other.received, "", "{other:?}");

    assert_eq!(s.net.world_requests(), 1, "the world saw a refused request");
    assert_eq!(
        s.net.world_tcp_attempts(),
        attempts,
        "the world saw a refused client"
    );
}

#[test]
fn batchs_deny_overrides_the_broader_allow_at_its_sidecar_and_at_the_egress() {
    let mut s = Scenario::new(ALL_BUT_BATCH, 1);
    s.start_egresses(1);
    s.start_sidecar(Host::Web, "web");
    s.start_sidecar(Host::Batch, "batch");
    let net = &s.net;

    let r = net.curl(Host::Web, "http://httpbin.mesh/get").run();
    assert_eq!(r.status, 200, "{r:?}");
    assert_not_permitted(&net.curl(Host::Batch, "http://httpbin.mesh/get").run());
    // batch's key used straight: on batch's host the capture would take the connection to
    // batch's sidecar, so from the egress's own host (RBAC judges the certificate, not the
    // address).
    let batch = s.identity_files("batch");
    let straight = s
        .to_egress_from(Host::Egress)
        .certificate(&batch.0, &batch.1)
        .send(s.dir.path(), REQUEST);
    assert!(
        straight.log.contains("CONNECTION ESTABLISHED"),
        "{straight:?}"
    );
    assert_eq!(straight.received, "", "{straight:?}");
    s.rbac_denied(1);
    assert_eq!(net.world_requests(), 1, "the world saw batch");
}

#[test]
fn allow_with_shadow_deny_lets_batch_through_and_the_egress_counts_it_as_denied() {
    let mut s = Scenario::new(BATCH_SHADOW_DENIED, 1);
    s.start_egresses(1);
    s.start_sidecar(Host::Batch, "batch");
    let egress = &s.egresses[0];

    let r = s.net.curl(Host::Batch, "http://httpbin.mesh/get").run();
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(s.net.world_requests(), 1);
    egress.wait_for_stat(
        "egress_external_service_httpbin.rbac.shadow_denied",
        WAIT,
        |n| n == 1,
    );
    // The connection's line, with its shadow verdict, is written when the sidecar closes it;
    // the request's names batch.
    egress.wait_for_stdout("\"source_identity\":\"spiffe://default/batch,", WAIT);
    assert_eq!(
        egress.counter("egress_external_service_httpbin.rbac.denied"),
        0
    );
}

/// Two egresses share web's requests. One whose host is gone (its address dropped: no answer,
/// not even a refusal) is noticed by the sidecar's health check within seconds, and no
/// request that starts after that fails.
#[test]
fn a_vanished_egress_is_noticed_within_seconds_and_no_request_after_that_fails() {
    let mut s = Scenario::new(WEB_MAY_REACH_HTTPBIN, 2);
    s.start_egresses(2);
    s.start_sidecar(Host::Web, "web");
    let (web, egresses) = (&s.sidecars[0], &s.egresses);
    let healthy = "cluster.external_service_httpbin.membership_healthy";
    web.wait_for_stat(healthy, WAIT, |n| n == 2);
    let get = || s.net.curl(Host::Web, "http://httpbin.mesh/get").run();
    let served =
        |n: usize| egresses[n].counter("http.egress_external_service_httpbin.downstream_rq_total");
    for _ in 0..4 {
        let r = get();
        assert_eq!(r.status, 200, "{r:?}");
    }
    assert!(
        served(0) > 0 && served(1) > 0,
        "round robin: {} and {}",
        served(0),
        served(1)
    );

    s.net.vanish(EGRESS_IPS[1]).unwrap();
    let gone = Instant::now();
    web.wait_for_stat(healthy, Duration::from_secs(10), |n| n == 1);
    let noticed = gone.elapsed();
    // A check a second, each allowed a second: two seconds at most (measured: 1.2 to 1.4 s),
    // and slack for a machine busy with every other test.
    assert!(
        noticed < Duration::from_secs(5),
        "noticed after {noticed:?}"
    );
    let second = served(1);
    for i in 0..20 {
        let r = get();
        assert_eq!(
            r.status, 200,
            "request {i} after the egress was noticed gone: {r:?}"
        );
    }
    assert_eq!(served(1), second, "a request went to the vanished egress");
    eprintln!("a vanished egress noticed after {noticed:?}");
}
