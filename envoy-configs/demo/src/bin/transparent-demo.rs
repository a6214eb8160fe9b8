//! `make run-transparent` (root): the transparent proxy in a demo network namespace. The app
//! namespace `extsvc-app-demo` has Envoy (as uid 5678) and the capture rules; its default
//! route goes to `extsvc-world-demo`, which stands for the Internet (an HTTPS httpbin.test,
//! an undeclared example.test, and their DNS). Nothing is joined to the machine's network.
//! Ctrl-C, or the next run, removes both namespaces. Files go to `.run/transparent/`.

use std::ffi::OsString;
use std::fs;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::thread;
use std::time::Duration;

use extsvc_testkit::netns::{Topology, WORLD_IP};
use extsvc_testkit::{
    ca_file, docs, extsvc_binary, generate, https_service, mesh, runner, Ca, Envoy, EnvoyOptions,
    UpstreamBuilder,
};

const ID: &str = "demo";
const ENVOY_UID: u32 = 5678;

fn main() -> ExitCode {
    runner::install();
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("transparent-demo: {e}");
            ExitCode::from(1)
        }
    }
}

fn run() -> Result<(), String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let dir = root.join(".run/transparent");
    fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    // Envoy runs as ENVOY_UID: it reads its configuration here and writes its admin address.
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o777)).map_err(|e| e.to_string())?;

    Topology::remove_leftovers(ID);
    let topology = Topology::create_with_id(ID)
        .map_err(|e| format!("{e} (the demo makes network namespaces: run it as root)"))?;
    let world = |port: u16| SocketAddr::from((WORLD_IP, port));

    let ca = Ca::new(&dir, "ca");
    let cert = ca.server_cert(&dir, "httpbin", &["httpbin.test"], &[]);
    let builder = UpstreamBuilder::new()
        .tls("httpbin", &cert)
        .at(world(443))
        .plain("example")
        .at(world(80))
        .dns("httpbin.test", &[WORLD_IP.into()])
        .dns("example.test", &[WORLD_IP.into()])
        .dns_at(world(53));
    let upstream = topology.world.run(|| builder.start_named(&dir, "world"));

    let resources = docs(&[
        mesh(false),
        https_service("httpbin", "http", "httpbin.test:443", &[ca_file(&ca)]),
    ]);
    let extra = ["--transparent-proxy".into()];
    let generated = generate(&dir, &resources, 15001, Some(world(53)), &extra);
    if generated.code != Some(0) {
        return Err(format!("extsvc generate: {}", generated.stderr));
    }
    let config = dir.join("envoy.yaml");
    let install = [
        "transparent-proxy",
        "install",
        "--envoy-uid",
        "5678",
        "--redirect-dns",
        "--block-uncaptured",
    ];
    extsvc(&topology.app.name, &install.map(OsString::from))?;

    let options = EnvoyOptions {
        uid: Some(ENVOY_UID),
        log_level: "warning".to_string(),
        ..EnvoyOptions::default()
    };
    let envoy = topology
        .app
        .run(|| Envoy::try_start_file(&dir, "sidecar", &config, &options))?;
    let ns = &topology.app.name;
    println!(
        "
The app's namespace {ns} has Envoy (uid {ENVOY_UID}) and the capture rules; its traffic
goes to Envoy with no proxy settings. Try, in another terminal (as root):
  ip netns exec {ns} curl -si http://httpbin.mesh/get        # .mesh name: plain HTTP in, TLS out
  ip netns exec {ns} curl -si http://httpbin.test:443/get    # the real name and port
  ip netns exec {ns} getent hosts httpbin.mesh               # its VIP, from the builtin DNS
  ip netns exec {ns} curl -si http://example.test/           # undeclared: refused, passthrough is off
  ip netns exec {ns} curl -si -6 http://[fd77::2]/           # IPv6: rejected
  ip netns exec {ns} iptables -t nat -S EXTSVC_OUTPUT        # the capture rules
Envoy's access log follows (refusals carry the original destination). Ctrl-C cleans up.
"
    );
    follow(&envoy.stdout_path);
    println!("\nstopping: removing {ns} and extsvc-world-{ID}");
    drop(envoy);
    drop(upstream);
    Ok(())
}

/// `extsvc ARGS` inside the app's namespace.
fn extsvc(ns: &str, args: &[OsString]) -> Result<(), String> {
    let status = Command::new("ip")
        .args(["netns", "exec", ns])
        .arg(extsvc_binary())
        .args(args)
        .status()
        .map_err(|e| format!("cannot run extsvc: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("extsvc {:?} failed ({status})", args.first()))
    }
}

/// Prints what is added to `path` until Ctrl-C.
fn follow(path: &PathBuf) {
    let mut shown = 0;
    while !runner::stopping() {
        if let Ok(text) = fs::read_to_string(path) {
            if let Some(new) = text.get(shown..) {
                print!("{new}");
                shown = text.len();
            }
        }
        thread::sleep(Duration::from_millis(200));
    }
}
