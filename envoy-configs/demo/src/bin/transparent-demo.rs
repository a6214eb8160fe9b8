//! `make run-transparent` (root): the transparent proxy in a demo network namespace. The app
//! namespace `extsvc-app-demo` has Envoy (as uid 5678) and the capture rules; its default
//! route goes to `extsvc-world-demo`, which stands for the Internet (an HTTPS httpbin.test,
//! an undeclared example.test, and their DNS). Nothing is joined to the machine's network.
//! Ctrl-C, or the next run, removes both namespaces. Files go to `.run/transparent/`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::thread;
use std::time::Duration;

use extsvc_testkit::netns::WORLD_IP;
use extsvc_testkit::transparent::{world_addr, World, ENVOY_UID};
use extsvc_testkit::{
    ca_file, docs, generate, https_service, mesh, runner, Ca, EnvoyOptions, UpstreamBuilder,
};

const ID: &str = "demo";

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
    // Plain paths in what it prints, the admin socket's included.
    let root = fs::canonicalize(&root).map_err(|e| format!("{}: {e}", root.display()))?;
    let dir = root.join(".run/transparent");
    fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;

    let ca = Ca::new(&dir, "ca");
    let cert = ca.server_cert(&dir, "httpbin", &["httpbin.test"], &[]);
    let servers = UpstreamBuilder::new()
        .tls("httpbin", &cert)
        .at(world_addr(443))
        .plain("example")
        .at(world_addr(80))
        .dns("httpbin.test", &[WORLD_IP.into()])
        .dns("example.test", &[WORLD_IP.into()])
        .dns_at(world_addr(53));
    let w =
        World::create(&dir, Some(ID), servers).map_err(|e| format!("{e}: run the demo as root"))?;

    let resources = docs(&[
        mesh(false),
        https_service("httpbin", "http", "httpbin.test:443", &[ca_file(&ca)]),
    ]);
    let extra = ["--transparent-proxy".into()];
    let generated = generate(&dir, &resources, 15001, Some(world_addr(53)), &extra);
    if generated.code != Some(0) {
        return Err(format!("extsvc generate: {}", generated.stderr));
    }
    let config = dir.join("envoy.yaml");
    w.install(&["--redirect-dns", "--block-uncaptured"])?;

    let options = EnvoyOptions {
        log_level: "warning".to_string(),
        ..EnvoyOptions::default()
    };
    let envoy = w.start_envoy(&dir, "sidecar", &config, &options)?;
    let ns = &w.topology.app.name;
    let stats = envoy.listener_port("stats");
    let admin = dir.join("envoy.admin.sock");
    let admin = admin.display();
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
  ip netns exec {ns} curl -s 127.0.0.1:{stats}/stats/prometheus | grep denied   # read-only stats
  curl -s --unix-socket {admin} http://localhost/stats | grep denied   # the admin (uid {ENVOY_UID} and root only)
Envoy's access log follows (refusals carry the original destination). Ctrl-C cleans up.
"
    );
    follow(&envoy.stdout_path);
    println!("\nstopping: removing {ns} and extsvc-world-{ID}");
    drop(envoy);
    drop(w);
    Ok(())
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
