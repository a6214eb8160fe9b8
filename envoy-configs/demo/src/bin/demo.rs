//! `make run`: generate the Envoy configuration with `extsvc` and run Envoy on it in the
//! foreground; Ctrl-C stops everything.
//!
//! ```text
//! demo                      the built-in demo: certificates and a local mTLS upstream included,
//!                           reached as an ExternalService and as a MeshExternalService
//! demo my-services.yaml     your own resources
//! ```
//!
//! Files go to `.run/` in the workspace (`.run/envoy.yaml`; the demo's certificates and its
//! upstream's logs in `.run/demo/`). `EXTSVC`, `EXTSVC_ENVOY` and `EXTSVC_WASM` choose the
//! binaries as they do for the tests.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode};
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

use extsvc_testkit::{envoy_binary, extsvc_binary, wasm_module, Pki, Upstream, UpstreamBuilder};

/// The built-in demo's resources; they name the certificates in `.run/demo/`.
const DEMO: &str = "envoy-configs/examples/demo.yaml";
/// Where the demo's upstream listens (the address in `demo.yaml`).
const DEMO_UPSTREAM: &str = "127.0.0.1:18443";

const TRY: &str = "
Try, in another terminal:
  curl -si -x http://127.0.0.1:15001 http://httpbin.mesh/get       # .mesh name, plain HTTP in, mTLS out
  curl -si -H 'Host: httpbin.mesh' http://127.0.0.1:15001/get       # the same with a Host header
  curl -si -x http://127.0.0.1:15001 http://localhost:18443/get     # the real name and port
  curl -si http://127.0.0.1:10000/get                               # the Dataplane outbound listener
  curl -si -x http://127.0.0.1:15001 http://httpbin.extsvc.mesh.local/get  # the same upstream as a MeshExternalService
  curl -si -x http://127.0.0.1:15001 http://example.com/            # undeclared: 403, passthrough is off
  curl -s http://127.0.0.1:9901/stats/prometheus | grep external_service   # read-only stats
  curl -s --unix-socket .run/envoy.admin.sock http://localhost/stats | grep wasmcustom
                                  # the admin: a Unix socket only this user and root can open
Access log lines appear below. Ctrl-C stops everything.
";

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let own = args.next();
    if args.next().is_some() {
        eprintln!("usage: demo [RESOURCES.yaml]");
        return ExitCode::from(2);
    }
    // Resolved before moving to the workspace root, where `.run/` is.
    let own = match own.map(std::path::absolute).transpose() {
        Ok(own) => own,
        Err(e) => return fail(&format!("the resources file: {e}")),
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    if let Err(e) = std::env::set_current_dir(&root) {
        return fail(&format!("cannot enter {}: {e}", root.display()));
    }
    // Ctrl-C reaches Envoy too (one process group); the flag says it was asked for.
    for signal in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        unsafe {
            libc::signal(signal, on_signal as *const () as libc::sighandler_t);
        }
    }
    match run(own) {
        Ok(code) => code,
        Err(e) => fail(&e),
    }
}

fn run(own: Option<PathBuf>) -> Result<ExitCode, String> {
    let out = PathBuf::from(".run");
    let demo = out.join("demo");
    std::fs::create_dir_all(&demo).map_err(|e| format!("cannot create {}: {e}", demo.display()))?;
    // Kept until the end: dropped, the upstream stops.
    let (resources, upstream) = match own {
        Some(own) => (vec![own], None),
        None => {
            let (upstream, mesh_external_service) = demo_upstream(&demo)?;
            (
                vec![PathBuf::from(DEMO), mesh_external_service],
                Some(upstream),
            )
        }
    };

    let config = out.join("envoy.yaml");
    let mut generate: Vec<OsString> = vec!["generate".into()];
    generate.extend(resources.iter().map(OsString::from));
    generate.extend([
        "-o".into(),
        config.clone().into(),
        "--wasm".into(),
        wasm_module().into(),
    ]);
    let status = Command::new(extsvc_binary())
        .args(&generate)
        .status()
        .map_err(|e| format!("cannot run extsvc: {e}"))?;
    if !status.success() {
        return Ok(ExitCode::from(1));
    }
    let names: Vec<String> = resources.iter().map(|r| r.display().to_string()).collect();
    println!(
        "generated {} from {}",
        config.display(),
        names.join(" and ")
    );
    if upstream.is_some() {
        println!("{TRY}");
    }

    let mut envoy = Command::new(envoy_binary())
        .arg("-c")
        .arg(&config)
        .args(["-l", "warning", "--disable-hot-restart"])
        .spawn()
        .map_err(|e| format!("cannot run envoy: {e}"))?;
    let code = wait(&mut envoy);
    let _ = envoy.kill();
    let _ = envoy.wait();
    drop(upstream);
    Ok(code)
}

/// The demo's certificates (the kit's Pki: `ca.pem`, `server.pem` for localhost, `client.pem`)
/// and its stand-in for httpbin: HTTPS on localhost:18443 that wants a client certificate from
/// that CA and answers with what it saw (`x-seen-sni`, `x-seen-host`, `x-seen-peer-subject`...).
/// Also the file of the MeshExternalService that reaches it: an MES takes its certificates
/// inline (it has no `file` data source), so the file is written with them.
fn demo_upstream(demo: &Path) -> Result<(Upstream, PathBuf), String> {
    let pki = Pki::for_names(demo, &["localhost"]);
    let address: SocketAddr = DEMO_UPSTREAM
        .parse()
        .map_err(|e| format!("{DEMO_UPSTREAM}: {e}"))?;
    let file = demo.join("mesh-external-service.yaml");
    std::fs::write(&file, mesh_external_service(&pki, address))
        .map_err(|e| format!("cannot write {}: {e}", file.display()))?;
    let upstream = UpstreamBuilder::new()
        .mtls("httpbin", &pki.server, &pki.ca)
        .at(address)
        .start(demo);
    Ok((upstream, file))
}

/// `httpbin` as a MeshExternalService (Kuma 2.9+): `httpbin.extsvc.mesh.local` on port 80,
/// mTLS to `localhost`.
fn mesh_external_service(pki: &Pki, upstream: SocketAddr) -> String {
    let quoted = |pem: &str| serde_json::to_string(pem).unwrap_or_default();
    format!(
        "# Written by `make run`: the demo's upstream as a MeshExternalService.\n\
         type: MeshExternalService\nname: httpbin\nmesh: default\nspec:\n  \
         match: {{type: HostnameGenerator, port: 80, protocol: http}}\n  \
         endpoints: [{{address: localhost, port: {port}}}]\n  \
         tls:\n    enabled: true\n    verification:\n      \
         caCert: {{inlineString: {ca}}}\n      clientCert: {{inlineString: {cert}}}\n      \
         clientKey: {{inlineString: {key}}}\n",
        port = upstream.port(),
        ca = quoted(pki.ca.ca_pem()),
        cert = quoted(&pki.client.cert_pem),
        key = quoted(&pki.client.key_pem),
    )
}

/// Until Ctrl-C (exit 0) or until Envoy stops by itself (its exit code).
fn wait(envoy: &mut Child) -> ExitCode {
    loop {
        if STOP.load(Ordering::SeqCst) {
            println!("\nstopping");
            return ExitCode::SUCCESS;
        }
        match envoy.try_wait() {
            Ok(None) => thread::sleep(Duration::from_millis(100)),
            Ok(Some(_)) if STOP.load(Ordering::SeqCst) => continue,
            Ok(Some(status)) => {
                eprintln!("envoy stopped: {status}");
                return ExitCode::from(u8::try_from(status.code().unwrap_or(1)).unwrap_or(1));
            }
            Err(e) => {
                eprintln!("waiting for envoy: {e}");
                return ExitCode::from(1);
            }
        }
    }
}

fn fail(error: &str) -> ExitCode {
    eprintln!("demo: {error}");
    ExitCode::from(1)
}
