//! `transparent-proxy install --from`: the mesh's passthrough decides whether what the capture
//! does not take is blocked. The rules alone decide it, so these tests need no Envoy: the kit's
//! app and world namespaces (root, as CI has; the rules go with the namespaces, also when a
//! test fails), a UDP socket in the world, and `--dry-run` where no rule is applied.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::Path;
use std::process::Output;
use std::time::Duration;

use extsvc_testkit::netns::{Netns, Topology, WORLD_IP};
use extsvc_testkit::sidecar::extsvc_binary;
use extsvc_testkit::transparent::install_args;
use extsvc_testkit::{mesh, test_dir};

const UDP_PORT: u16 = 9999;
/// `install`'s default `--dns-port`.
const DNS_PORT: u16 = 15053;

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

fn extsvc_in(ns: Option<&Netns>, args: &[String]) -> Output {
    let binary = extsvc_binary();
    let mut command = match ns {
        Some(ns) => ns.command(binary.to_str().unwrap()),
        None => std::process::Command::new(binary),
    };
    command.args(args).output().unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `install --redirect-dns` and `flags` in the app's namespace: what it wrote on stderr.
fn install(topology: &Topology, flags: &[&str]) -> String {
    let args = install_args(&[&["--redirect-dns"], flags].concat());
    let out = extsvc_in(Some(&topology.app), &args);
    assert!(out.status.success(), "extsvc {args:?}: {}", stderr(&out));
    stderr(&out)
}

fn uninstall(topology: &Topology) {
    let out = extsvc_in(
        Some(&topology.app),
        &["transparent-proxy".into(), "uninstall".into()],
    );
    assert!(out.status.success(), "{}", stderr(&out));
}

/// Whether a datagram the app sends to `to` reaches `socket` (bound where it is meant to go).
fn datagram_arrives(app: &Netns, to: SocketAddr, socket: &UdpSocket) -> bool {
    let script = format!("echo datagram > /dev/udp/{}/{}", to.ip(), to.port());
    let _ = app.output("bash", &["-c", &script]);
    socket
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let mut buf = [0u8; 64];
    socket.recv(&mut buf).is_ok()
}

#[test]
fn install_from_a_mesh_with_passthrough_off_blocks_udp_unless_allowed_loudly() {
    let dir = test_dir();
    let off = write(dir.path(), "off.yaml", &mesh(false));
    let on = write(dir.path(), "on.yaml", &mesh(true));
    let topology = Topology::create().unwrap_or_else(|e| {
        panic!("this test makes network namespaces, which needs root (CI runs as root): {e}")
    });
    let world_udp = topology
        .world
        .run(|| UdpSocket::bind((WORLD_IP, UDP_PORT)))
        .unwrap();
    // Where --redirect-dns sends DNS: the builtin DNS's port in the app's namespace.
    let builtin_dns = topology
        .app
        .run(|| UdpSocket::bind((Ipv4Addr::LOCALHOST, DNS_PORT)))
        .unwrap();
    let udp = || datagram_arrives(&topology.app, (WORLD_IP, UDP_PORT).into(), &world_udp);
    let dns = || datagram_arrives(&topology.app, (WORLD_IP, 53).into(), &builtin_dns);
    assert!(udp(), "with no rules, UDP reaches the world");

    let said = install(&topology, &["--from", &off]);
    assert!(
        said.contains("extsvc: note: Mesh \"default\" turns passthrough off")
            && said.contains("as --block-uncaptured does"),
        "{said}"
    );
    assert!(!udp(), "UDP got out with the mesh's passthrough off");
    assert!(dns(), "DNS still goes to the builtin DNS");
    uninstall(&topology);

    let said = install(&topology, &["--from", &off, "--allow-uncaptured"]);
    assert!(
        said.contains(
            "extsvc: warning: --allow-uncaptured: Mesh \"default\" turns passthrough off"
        ) && said.contains("UDP other than IPv4 DNS, ICMP, ICMPv6 and other protocols"),
        "{said}"
    );
    assert!(udp(), "--allow-uncaptured keeps UDP open");
    uninstall(&topology);

    // Passthrough on: open, as without --from, and --block-uncaptured still closes it.
    assert_eq!(install(&topology, &["--from", &on]), "");
    assert!(udp(), "UDP was blocked with the mesh's passthrough on");
    uninstall(&topology);
    assert_eq!(
        install(&topology, &["--from", &on, "--block-uncaptured"]),
        ""
    );
    assert!(!udp(), "--block-uncaptured no longer blocks");
    assert!(dns(), "DNS still goes to the builtin DNS");
    uninstall(&topology);
}

/// `--dry-run` shows the rules the resources lead to, and bad input changes nothing; none of
/// this needs root.
#[test]
fn install_from_prints_the_rules_and_refuses_what_generate_refuses() {
    let dir = test_dir();
    let dry_run = |flags: &[&str]| {
        let args = install_args(&[&["--redirect-dns", "--dry-run"], flags].concat());
        extsvc_in(None, &args)
    };
    let reject = "iptables -w -t filter -A EXTSVC_OUTPUT -j REJECT";

    let off = write(dir.path(), "off.yaml", &mesh(false));
    let out = dry_run(&["--from", &off]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains(reject), "{}", stdout(&out));
    let out = dry_run(&["--from", &off, "--allow-uncaptured"]);
    assert!(!stdout(&out).contains(reject), "{}", stdout(&out));
    assert!(stderr(&out).contains("warning: --allow-uncaptured"));

    // A MeshPassthrough that lets only its matches through closes what is not captured, with
    // the Mesh's passthrough on; a directory is read as `generate` reads it.
    let resources = dir.path().join("resources");
    fs::create_dir(&resources).unwrap();
    write(&resources, "mesh.yaml", &mesh(true));
    write(
        &resources,
        "mpt.yaml",
        "type: MeshPassthrough\nname: only-google\nmesh: default\nspec:\n  targetRef: {kind: Mesh}\n  default:\n    passthroughMode: Matched\n    appendMatch:\n    - {type: Domain, value: '*.googleapis.com', port: 443, protocol: tls}\n",
    );
    let out = dry_run(&["--from", resources.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains(reject), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("MeshPassthrough \"only-google\" sets passthroughMode Matched"),
        "{}",
        stderr(&out)
    );

    // Without --from: as before, with a note on what stays open.
    let out = dry_run(&[]);
    assert!(!stdout(&out).contains(reject), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("is left open: with --from FILE..."),
        "{}",
        stderr(&out)
    );

    // Invalid resources: validate's report, exit 1, no rule printed.
    let bad = write(
        dir.path(),
        "bad.yaml",
        "type: Mesh\nname: default\nnetworking:\n  outbound:\n    passthrough: maybe\n",
    );
    let out = dry_run(&["--from", &bad]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(stdout(&out), "");
    assert!(
        stderr(&out).contains("bad.yaml") && stderr(&out).contains("invalid resources in --from"),
        "{}",
        stderr(&out)
    );

    // Several meshes: which one is served must be said, as to `generate`.
    let two = write(
        dir.path(),
        "two.yaml",
        &format!(
            "{}---\n{}",
            mesh(false),
            mesh(true).replace("default", "other")
        ),
    );
    let out = dry_run(&["--from", &two]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--mesh NAME"), "{}", stderr(&out));
    let out = dry_run(&["--from", &two, "--mesh", "other"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(!stdout(&out).contains(reject), "{}", stdout(&out));

    // --allow-uncaptured means nothing without --from, nor beside --block-uncaptured.
    for flags in [
        &["--allow-uncaptured"][..],
        &["--from", &off, "--allow-uncaptured", "--block-uncaptured"],
    ] {
        let out = dry_run(flags);
        assert_eq!(out.status.code(), Some(2), "{flags:?}: {}", stderr(&out));
    }
}
