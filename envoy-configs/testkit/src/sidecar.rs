//! The system under test: the real `extsvc` CLI, and the Envoy it configures (the "sidecar").
//!
//! [`Sidecar::start`] writes the resources to `<dir>/resources.yaml`, runs `extsvc generate`
//! on them (listener on a free loopback port, the admin on its default Unix socket beside the
//! configuration, the stats listener on port 0, the real filter module, DNS
//! from the upstream's server) and starts Envoy on the generated `<dir>/envoy.yaml`. The
//! resource builders ([`mesh`], [`https_service`], [`http_service`], [`dataplane`], [`docs`], ...) write the
//! YAML the tests feed it; [`assert_forwarded_line`] and friends check its access log lines.

use std::ffi::OsString;
use std::fs;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use external_service_model::contract::forwarded_stat;
use serde_json::Value;

use crate::{free_port, wasm_module, Ca, Curl, Envoy, EnvoyOptions, Response, UpstreamBuilder};

/// Bound for anything that should happen at once (a counter, a log line).
pub const WAIT: Duration = Duration::from_secs(5);

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

// ---------------------------------------------------------------------------------------------
// The CLI
// ---------------------------------------------------------------------------------------------

/// What `extsvc` did.
#[derive(Debug)]
pub struct Cli {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// The `extsvc` to test: `$EXTSVC`, else the one beside the running executable (cargo builds
/// a package's binaries into the directory above its test executables' `deps/`).
pub fn extsvc_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("EXTSVC").filter(|p| !p.is_empty()) {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("the running executable");
    let mut dir = exe.parent().expect("its directory").to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let p = dir.join("extsvc");
    assert!(
        p.is_file(),
        "{} is missing: run `cargo build -p extsvc` (or `make build`), or set EXTSVC",
        p.display()
    );
    p
}

/// Runs `extsvc ARGS...` in `dir`, bounded by 30 s (output to files: no pipe can fill up).
pub fn extsvc(dir: &Path, args: &[OsString]) -> Cli {
    let out_path = dir.join("extsvc.stdout");
    let err_path = dir.join("extsvc.stderr");
    let mut child = Command::new(extsvc_binary())
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(fs::File::create(&out_path).unwrap())
        .stderr(fs::File::create(&err_path).unwrap())
        .spawn()
        .expect("run extsvc");
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("extsvc {args:?} took over 30 s");
        }
        thread::sleep(Duration::from_millis(10));
    };
    Cli {
        code: status.code(),
        stdout: fs::read_to_string(&out_path).unwrap_or_default(),
        stderr: fs::read_to_string(&err_path).unwrap_or_default(),
    }
}

/// Writes `resources` to `<dir>/resources.yaml` and runs
/// `extsvc generate <dir>/resources.yaml -o <dir>/envoy.yaml --listen 127.0.0.1:<listen>
/// --stats-listen 127.0.0.1:0 --wasm <module> [--dns-resolver <dns>] EXTRA...` (the admin:
/// `<dir>/envoy.admin.sock`, the default).
pub fn generate(
    dir: &Path,
    resources: &str,
    listen: u16,
    dns: Option<SocketAddr>,
    extra: &[OsString],
) -> Cli {
    let input = dir.join("resources.yaml");
    fs::write(&input, resources).unwrap();
    let mut args: Vec<OsString> = vec![
        "generate".into(),
        input.into(),
        "-o".into(),
        dir.join("envoy.yaml").into(),
        "--listen".into(),
        format!("127.0.0.1:{listen}").into(),
        "--stats-listen".into(),
        "127.0.0.1:0".into(),
        "--wasm".into(),
        wasm_module().into(),
    ];
    if let Some(dns) = dns {
        args.push("--dns-resolver".into());
        args.push(dns.to_string().into());
    }
    args.extend(extra.iter().cloned());
    extsvc(dir, &args)
}

// ---------------------------------------------------------------------------------------------
// The Envoy under test
// ---------------------------------------------------------------------------------------------

/// The generated Envoy, running.
pub struct Sidecar {
    pub envoy: Envoy,
    /// Port of `outbound_http`.
    pub listen: u16,
    /// Ports handed to the resources for Dataplane outbounds, in order
    /// ([`Sidecar::start_with_outbounds`]; empty otherwise).
    pub outbound: Vec<u16>,
}

impl Sidecar {
    /// Generates from `resources` and starts Envoy on the result (fresh ports when one was
    /// taken in the meantime).
    pub fn start(dir: &Path, dns: Option<SocketAddr>, resources: &str, extra: &[OsString]) -> Self {
        Self::start_with(dir, dns, resources, extra, &EnvoyOptions::default())
    }

    /// [`Sidecar::start`] with Envoy started with `opts`.
    pub fn start_with(
        dir: &Path,
        dns: Option<SocketAddr>,
        resources: &str,
        extra: &[OsString],
        opts: &EnvoyOptions,
    ) -> Self {
        Self::launch(dir, dns, 0, extra, opts, |_| resources.to_string())
    }

    /// Generates from `resources(outbound_ports)`, `outbounds` free ports for the Dataplane
    /// outbounds, and starts Envoy on the result. Fresh ports (and a fresh generation) when a
    /// port was taken in the meantime.
    pub fn start_with_outbounds(
        dir: &Path,
        dns: Option<SocketAddr>,
        outbounds: usize,
        extra: &[OsString],
        resources: impl Fn(&[u16]) -> String,
    ) -> Self {
        Self::launch(
            dir,
            dns,
            outbounds,
            extra,
            &EnvoyOptions::default(),
            resources,
        )
    }

    fn launch(
        dir: &Path,
        dns: Option<SocketAddr>,
        outbounds: usize,
        extra: &[OsString],
        opts: &EnvoyOptions,
        resources: impl Fn(&[u16]) -> String,
    ) -> Self {
        let mut last = String::new();
        for _ in 0..3 {
            let listen = free_port();
            let outbound: Vec<u16> = (0..outbounds).map(|_| free_port()).collect();
            let cli = generate(dir, &resources(&outbound), listen, dns, extra);
            assert_eq!(cli.code, Some(0), "extsvc generate failed: {cli:?}");
            let config = dir.join("envoy.yaml");
            match Envoy::try_start_file(dir, "sidecar", &config, opts) {
                Ok(envoy) => {
                    return Sidecar {
                        envoy,
                        listen,
                        outbound,
                    }
                }
                Err(e) if e.contains("Address already in use") || e.contains("cannot bind") => {
                    last = e;
                }
                Err(e) => panic!("the generated configuration did not start: {e}"),
            }
        }
        panic!("ports kept colliding: {last}");
    }

    /// `http://127.0.0.1:<listen>`.
    pub fn proxy(&self) -> String {
        format!("http://127.0.0.1:{}", self.listen)
    }

    /// `curl -x http://127.0.0.1:<listen> <url>`: the app uses Envoy as its HTTP proxy.
    pub fn via_proxy(&self, url: &str) -> Curl {
        Curl::get(url).proxy(self.proxy())
    }

    /// `curl http://127.0.0.1:<listen><path> -H "Host: <host>"`.
    pub fn with_host(&self, host: &str, path: &str) -> Curl {
        Curl::get(format!("{}{path}", self.proxy())).host(host)
    }

    /// Waits for `count` access log lines (JSON on stdout) and returns them all, parsed.
    pub fn access_log(&self, count: usize) -> Vec<Value> {
        self.envoy
            .wait_for_stdout_lines("\"listener\":", count, WAIT)
            .iter()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    }

    /// Waits until the counter equals `value` (0: checked at once; a filter counter appears
    /// with its first use).
    pub fn expect_counter(&self, name: &str, value: u64) {
        if value == 0 {
            assert_eq!(self.envoy.counter(name), 0, "{name}");
            return;
        }
        let start = Instant::now();
        loop {
            let seen = self.envoy.counter(name);
            if seen == value {
                return;
            }
            assert!(
                start.elapsed() < WAIT,
                "{name} = {seen}, expected {value}\n{}",
                self.envoy.log_tail(20)
            );
            thread::sleep(Duration::from_millis(25));
        }
    }

    /// The requests forwarded to `service`, as Envoy counts them on its cluster
    /// (`contract::forwarded_stat`), reach `value`.
    pub fn forwarded(&self, service: &str, value: u64) {
        self.expect_counter(
            &forwarded_stat(&format!("external_service_{service}")),
            value,
        );
    }

    /// The filter's `denied.<reason>` counter reaches `value`.
    pub fn denied(&self, reason: &str, value: u64) {
        self.expect_counter(
            &format!("wasmcustom.external_service.denied.{reason}"),
            value,
        );
    }
}

// ---------------------------------------------------------------------------------------------
// What the app and the access log see
// ---------------------------------------------------------------------------------------------

/// The access log fields every forwarded request must have.
pub fn assert_forwarded_line(
    line: &Value,
    listener: &str,
    service: &str,
    authority: &str,
    code: u64,
) {
    assert_eq!(line["listener"], listener, "{line}");
    assert_eq!(line["external_service"], service, "{line}");
    assert_eq!(
        line["upstream_cluster"],
        format!("external_service_{service}"),
        "{line}"
    );
    assert_eq!(line["authority"], authority, "{line}");
    assert_eq!(line["response_code"], code, "{line}");
    assert!(line["denied"].is_null(), "{line}");
    if code == 200 {
        assert_eq!(line["response_flags"], "-", "{line}");
        assert!(
            line["upstream_transport_failure_reason"].is_null(),
            "{line}"
        );
    }
}

/// The access log fields of a TLS origination that failed: 503 `UF` with the TLS reason.
pub fn assert_tls_failure_line(line: &Value, service: &str, reason_part: &str) {
    assert_eq!(line["external_service"], service, "{line}");
    assert_eq!(
        line["upstream_cluster"],
        format!("external_service_{service}"),
        "{line}"
    );
    assert_eq!(line["response_code"], 503, "{line}");
    assert_eq!(line["response_flags"], "UF", "{line}");
    let reason = line["upstream_transport_failure_reason"]
        .as_str()
        .unwrap_or_else(|| panic!("no upstream_transport_failure_reason: {line}"));
    assert!(
        reason.contains(reason_part),
        "{reason_part:?} not in {line}"
    );
}

/// A 200 from the upstream listener named `upstream_listener`.
pub fn assert_ok_from(r: &Response, upstream_listener: &str) {
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        r.header("x-upstream-name"),
        Some(upstream_listener),
        "{r:?}"
    );
}

/// A 503 from Envoy that never reached the upstream (no echo headers).
pub fn assert_503_without_upstream(r: &Response) {
    assert_eq!(r.status, 503, "{r:?}");
    assert_eq!(r.header("x-upstream-name"), None, "{r:?}");
    assert!(r.body.starts_with("upstream connect error"), "{}", r.body);
}

// ---------------------------------------------------------------------------------------------
// Resources
// ---------------------------------------------------------------------------------------------

/// Strips the common indentation, so resources can be written indented in the code.
pub fn dedent(text: &str) -> String {
    let indent = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.len() - l.trim_start().len())
        .min()
        .unwrap_or(0);
    let mut out: String = text
        .lines()
        .map(|l| l.get(indent..).unwrap_or("").trim_end())
        .collect::<Vec<_>>()
        .join("\n");
    out = out.trim_start_matches('\n').to_string();
    out.push('\n');
    out
}

/// YAML documents, one after the other.
pub fn docs(parts: &[String]) -> String {
    parts.join("---\n")
}

/// The `default` Mesh, outbound passthrough on or off.
pub fn mesh(passthrough: bool) -> String {
    dedent(&format!(
        "
        type: Mesh
        name: default
        networking:
          outbound:
            passthrough: {passthrough}
        "
    ))
}

/// The `default` Mesh with passthrough off, mTLS by `ca` (a `provided` backend; its
/// certificates living `expiration`, else Kuma's default) and external traffic through the
/// ZoneEgress.
pub fn mesh_through_egress(ca: &Ca, expiration: Option<&str>) -> String {
    let dp_cert = expiration.map_or(String::new(), |e| {
        format!("\n            dpCert: {{rotation: {{expiration: {e}}}}}")
    });
    dedent(&format!(
        "
        type: Mesh
        name: default
        networking: {{outbound: {{passthrough: false}}}}
        routing: {{zoneEgress: true}}
        mtls:
          enabledBackend: ca
          backends:
          - name: ca
            type: provided{dp_cert}
            conf:
              cert: {{file: {}}}
              key: {{file: {}}}
        ",
        ca.cert.cert_path.display(),
        ca.cert.key_path.display(),
    ))
}

/// The ZoneEgress `egress-<n>` at `address:port`.
pub fn zone_egress(n: usize, address: impl std::fmt::Display, port: u16) -> String {
    format!(
        "type: ZoneEgress\nname: egress-{n}\nnetworking: {{address: {address}, port: {port}}}\n"
    )
}

/// A 403 from a sidecar whose Dataplane may not reach the service.
pub fn assert_not_permitted(r: &Response) {
    assert_eq!(r.status, 403, "{r:?}");
    assert_eq!(
        r.header("x-external-service-denied"),
        Some("not-permitted"),
        "{r:?}"
    );
}

/// An ExternalService (`kuma.io/protocol: <protocol>`) at `address` with TLS origination;
/// `tls` holds more lines of the `tls:` block (indented by 4), e.g. `caCert: {file: ...}`.
pub fn https_service(name: &str, protocol: &str, address: &str, tls: &[String]) -> String {
    let mut y = external_service(name, protocol, address);
    y.push_str("  tls:\n    enabled: true\n");
    for line in tls {
        y.push_str(&format!("    {line}\n"));
    }
    y
}

/// A plain-HTTP ExternalService at `address`.
pub fn http_service(name: &str, address: &str) -> String {
    external_service(name, "http", address)
}

/// A `kuma.io/protocol: tcp` ExternalService at `address` without TLS origination; `tls`
/// holds the lines of its `tls:` block (indented by 4), e.g. `enabled: false`, if it has one.
pub fn tcp_service(name: &str, address: &str, tls: &[&str]) -> String {
    let mut y = external_service(name, "tcp", address);
    if !tls.is_empty() {
        y.push_str("  tls:\n");
    }
    for line in tls {
        y.push_str(&format!("    {line}\n"));
    }
    y
}

/// What every ExternalService above starts with: its name, tags and address.
fn external_service(name: &str, protocol: &str, address: &str) -> String {
    dedent(&format!(
        "
        type: ExternalService
        mesh: default
        name: {name}
        tags:
          kuma.io/service: {name}
          kuma.io/protocol: {protocol}
        networking:
          address: {address}
        "
    ))
}

/// A Dataplane (the policy document's, with another outbound port) whose one outbound on
/// `127.0.0.1:<port>` goes to `service`.
pub fn dataplane(port: u16, service: &str) -> String {
    dedent(&format!(
        "
        type: Dataplane
        mesh: default
        name: redis-dp
        networking:
          address: 127.0.0.1
          inbound:
          - port: 9000
            tags:
              kuma.io/service: redis
          outbound:
          - port: {port}
            tags:
              kuma.io/service: {service}
        "
    ))
}

/// The `tls:` line trusting `ca` by file.
pub fn ca_file(ca: &Ca) -> String {
    format!("caCert: {{file: \"{}\"}}", ca.ca_path().display())
}

/// DNS for every name (all 127.0.0.1) on the upstream builder.
pub fn with_dns(mut b: UpstreamBuilder, names: &[&str]) -> UpstreamBuilder {
    for n in names {
        b = b.dns(n, &[LOCALHOST]);
    }
    b
}
