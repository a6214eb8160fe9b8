//! The egress tests' network, the four hosts of `extsvc_testkit::egress_net` (`web`, `batch`,
//! `egress`, `world`), proven first with no Envoy of ours: the app hosts reach the egress and
//! nothing beyond it, the egress reaches the world by name, the egress forwarding nothing is
//! what closes the world (open it and the same connection goes through), and no namespace is
//! left after a drop, a panic or a killed run. Then the hand-made client the egress scenario
//! needs (any SNI, a client certificate), against a stand-in for the egress; and the part of the
//! scenario that needs no egress Envoy: a sidecar that dials the world itself gets nothing out.
//!
//! These tests make network namespaces, which needs root (CI runs as root); without it they
//! fail and say so.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::{IpAddr, SocketAddr, TcpListener};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use extsvc_testkit::egress_net::{
    EgressNet, Host, BATCH_IP, EGRESS_IP, WEB_IP, WORLD_HTTPS_PORT, WORLD_IP,
};
use extsvc_testkit::transparent::open_to_envoy;
use extsvc_testkit::{
    assert_503_without_upstream, ca_file, docs, eventually, generate, https_service, mesh,
    test_dir, Ca, EnvoyOptions, UpstreamBuilder,
};

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

/// The hand-made client the egress tests need (any SNI, a client certificate), against a
/// stand-in for the egress: an mTLS server of the mesh's CA on the egress's address. From an
/// app host, a certificate of that CA gets through with Kuma's SNI; one of another CA, or none,
/// is refused at the handshake.
#[test]
fn a_hand_made_client_reaches_the_egress_address_with_kumas_sni_and_a_certificate() {
    let dir = test_dir();
    let net = network(dir.path());
    let mesh_ca = Ca::new(dir.path(), "mesh-ca");
    let other_ca = Ca::new(dir.path(), "other-ca");
    let egress_cert = mesh_ca.server_cert(dir.path(), "egress", &["egress.test"], &[]);
    let batch = mesh_ca.client_cert(dir.path(), "batch", "batch");
    let stranger = other_ca.client_cert(dir.path(), "stranger", "batch");
    let stand_in = net.egress.run(|| {
        UpstreamBuilder::new()
            .mtls("egress", &egress_cert, &mesh_ca)
            .at(SocketAddr::from((EGRESS_IP, 0)))
            .start_named(dir.path(), "stand-in")
    });
    let at = stand_in.addr("egress");
    let sni = "httpbin{mesh=default}";
    let get = |client| {
        net.tls_get(
            Host::Batch,
            at,
            sni,
            client,
            mesh_ca.ca_path(),
            "httpbin.mesh",
        )
    };

    let r = get(Some(&batch)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status, 200, "{r:?}");
    // Envoy's %REQUESTED_SERVER_NAME% writes an SNI that is no DNS name as `invalid:` and the
    // SNI with `_` for every character a name may not hold: it came whole.
    assert_eq!(
        r.header("x-seen-sni"),
        Some("invalid:httpbin_mesh_default_"),
        "{r:?}"
    );
    assert_eq!(r.header("x-seen-peer-subject"), Some("CN=batch"), "{r:?}");
    for (who, client, alert) in [
        ("another CA's", Some(&stranger), "alert unknown ca"),
        ("no", None, "alert certificate required"),
    ] {
        let refused = get(client).expect_err("refused");
        assert!(refused.contains(alert), "{who} certificate: {refused}");
    }
}

/// A sidecar of today (`generate --transparent-proxy`, no egress), whose ExternalService dials
/// the world's address itself: the capture lets Envoy's own uid out, and the network still
/// stops it. The app gets 503 and the world sees no connection.
#[test]
fn a_sidecar_that_dials_the_world_itself_gets_nothing_out() {
    let dir = test_dir();
    let net = network(dir.path());
    let web = dir.path().join("web");
    std::fs::create_dir(&web).unwrap();
    open_to_envoy(&web).unwrap();
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
