//! A fleet fed by Kubernetes ConfigMaps, on this machine: the egress gateway's three replicas
//! and two sidecars of Dataplane `web`, each its own Envoy in a network namespace of its own
//! (a pod), the replicas of each reading one directory laid out exactly as the kubelet lays
//! out the projected volume of `extsvc generate --format kubernetes`. The test does the
//! kubelet's part: it projects the manifests' ConfigMaps and Secrets into files and updates
//! the volumes with the kubelet's atomic-writer steps (testkit `kubelet`).
//!
//! The pods and a `world` namespace (one upstream Envoy, a listener per service address) meet
//! on a bridge in `world`. Each pod has its own `run/` emptyDir, for the admin's socket: a
//! directory of its own mounted over the one the bootstrap names, in a mount namespace of
//! its Envoy's own. Each pod's versions are read from its stats listener, as Prometheus
//! scrapes them.
//!
//! Through an add, a move and a removal under steady load to every Envoy: each Envoy reaches
//! the new version, a request to an unchanged service never fails, no update is rejected, and
//! the time from the swap to the last Envoy serving the change is printed (`make bench`
//! records it too).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use extsvc_testkit as support;

use std::ffi::OsString;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::envoy::http_get;
use support::netns::Netns;
use support::{
    manifest_objects, mount_pod, test_dir, volume_payload, wasm_module, CertKey, Envoy,
    EnvoyOptions, KubeletVolume, Pki, Upstream, UpstreamBuilder,
};

const WORLD_IP: Ipv4Addr = Ipv4Addr::new(10, 79, 0, 1);
/// Where the pods mount the volumes (`--mount-root`): one tree, as one node's kubelet has.
const EGRESS_REPLICAS: usize = 3;
const SIDECARS: usize = 2;
/// The services' upstream listeners in `world`: a service moves from `beta` to `beta-moved`.
const LISTENERS: [(&str, u16); 4] = [
    ("alpha", 8001),
    ("beta", 8002),
    ("beta-moved", 8003),
    ("gamma", 8004),
];
/// web's outbound port per service.
const OUTBOUNDS: [(&str, u16); 3] = [("alpha", 20001), ("beta", 20002), ("gamma", 20003)];
const CONVERGE: Duration = Duration::from_secs(30);

/// The resources of one version: the services (name, upstream listener); `gamma` is served
/// over TLS, verified with `ca` (its CA, an SDS file of the volume while it is there).
fn resources(services: &[(&str, &str)], ca: &str) -> String {
    let mut docs = vec![
        "type: Mesh\nname: default\nnetworking:\n  outbound:\n    passthrough: false\n".to_string(),
    ];
    for (service, listener) in services {
        let port = LISTENERS.iter().find(|(l, _)| l == listener).unwrap().1;
        let mut doc = format!(
            "type: ExternalService\nmesh: default\nname: {service}\ntags:\n  kuma.io/service: {service}\n  kuma.io/protocol: http\nnetworking:\n  address: {WORLD_IP}:{port}\n"
        );
        if *service == "gamma" {
            let ca = serde_json::to_string(ca).unwrap();
            doc.push_str(&format!(
                "  tls:\n    enabled: true\n    serverName: gamma.test\n    caCert: {{inlineString: {ca}}}\n"
            ));
        }
        docs.push(doc);
    }
    let outbounds: String = services
        .iter()
        .map(|(service, _)| {
            let port = OUTBOUNDS.iter().find(|(s, _)| s == service).unwrap().1;
            format!("    - port: {port}\n      tags:\n        kuma.io/service: {service}\n")
        })
        .collect();
    docs.push(format!(
        "type: Dataplane\nmesh: default\nname: web\nnetworking:\n  address: 10.79.0.50\n  inbound:\n    - port: 8080\n      tags:\n        kuma.io/service: web\n  outbound:\n{outbounds}"
    ));
    docs.join("---\n")
}

/// One tier: the manifests' name, its pods' Envoys and the volumes they read.
struct Tier {
    name: &'static str,
    flags: Vec<&'static str>,
    root: PathBuf,
    xds: KubeletVolume,
}

impl Tier {
    fn new(d: &Path, name: &'static str, flags: Vec<&'static str>) -> Tier {
        let root = d.join(name);
        fs::create_dir_all(&root).unwrap();
        Tier {
            name,
            flags,
            xds: KubeletVolume::config_map(&root.join("xds")).unwrap(),
            root,
        }
    }

    /// `extsvc generate --format kubernetes` of `resources`: the manifests' objects.
    fn generate(&self, d: &Path, resources: &str) -> Vec<Value> {
        let input = d.join("resources.yaml");
        fs::write(&input, resources).unwrap();
        let out = d.join(format!("{}.manifests.yaml", self.name));
        let mut args: Vec<OsString> = ["generate", "--format", "kubernetes", "--name", self.name]
            .iter()
            .map(OsString::from)
            .collect();
        args.extend(self.flags.iter().map(OsString::from));
        args.extend([
            "--mount-root".into(),
            self.root.clone().into_os_string(),
            "--wasm".into(),
            wasm_module().into_os_string(),
            "-o".into(),
            out.clone().into_os_string(),
            input.into_os_string(),
        ]);
        let cli = support::extsvc(d, &args);
        assert_eq!(cli.code, Some(0), "{cli:?}");
        manifest_objects(&fs::read_to_string(out).unwrap())
    }

    /// The kubelet's first mount of every volume.
    fn mount(&self, objects: &[Value]) {
        mount_pod(objects, &self.root).unwrap();
    }

    /// The kubelet's update of the xDS volume: one swap.
    fn update(&self, objects: &[Value]) {
        self.xds
            .write(&volume_payload(objects, "extsvc-xds"))
            .unwrap();
    }
}

/// The version the manifests carry.
fn config_version(objects: &[Value]) -> String {
    objects
        .iter()
        .find_map(|o| o.pointer("/metadata/annotations/extsvc-config-version"))
        .unwrap()
        .as_str()
        .unwrap()
        .to_string()
}

/// One pod: its namespace, on the bridge, and its Envoy.
struct Pod {
    name: String,
    ns: Netns,
    envoy: Envoy,
}

/// A request to a service as this tier's apps make it: (status, body).
type Ask = fn(&str) -> Result<(u16, String), String>;
/// What a pod must serve once it has taken an update.
type Serves<'a> = &'a (dyn Fn(Ask) -> Result<(), String> + Sync);

fn http(addr: SocketAddr, host: &str) -> Result<(u16, String), String> {
    let err = |e: std::io::Error| e.to_string();
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).map_err(err)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(err)?;
    write!(
        s,
        "GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .map_err(err)?;
    // Read the answer by its Content-Length, not to the close: after a local reply Envoy
    // waits up to its delayed_close_timeout (1 s) for the client to close first.
    let mut reader = BufReader::new(s);
    let mut status_line = String::new();
    reader.read_line(&mut status_line).map_err(err)?;
    let status = (status_line.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or(format!("no status: {status_line:?}"))?;
    let mut length = 0;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).map_err(err)?;
        match line.trim_end().split_once(':') {
            Some((name, value)) if name.eq_ignore_ascii_case("content-length") => {
                length = value
                    .trim()
                    .parse()
                    .map_err(|_| format!("length {value:?}"))?;
            }
            None if line.trim_end().is_empty() => break,
            _ => {}
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).map_err(err)?;
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

/// Through the egress gateway's HTTP proxy listener, by `<service>.mesh`.
fn through_egress(service: &str) -> Result<(u16, String), String> {
    http(
        SocketAddr::from(([127, 0, 0, 1], 15001)),
        &format!("{service}.mesh"),
    )
}

/// Through web's outbound of the service.
fn through_sidecar(service: &str) -> Result<(u16, String), String> {
    let port = OUTBOUNDS.iter().find(|(s, _)| *s == service).unwrap().1;
    http(SocketAddr::from(([127, 0, 0, 1], port)), service)
}

/// Steady load on one pod: the unchanged services, round and round; what failed, with when.
struct Load {
    stop: Arc<AtomicBool>,
    served: Arc<Mutex<u64>>,
    failures: Arc<Mutex<Vec<String>>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Load {
    fn start(pod: &Pod, ask: Ask, services: &'static [&'static str]) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let served = Arc::new(Mutex::new(0));
        let failures = Arc::new(Mutex::new(Vec::new()));
        let (s, n, f, name) = (
            stop.clone(),
            served.clone(),
            failures.clone(),
            pod.name.clone(),
        );
        let started = Instant::now();
        let thread = pod.ns.spawn(move || {
            while !s.load(Ordering::Relaxed) {
                for service in services {
                    match ask(service) {
                        Ok((200, body)) if body.contains(&format!("hello from {service}")) => {
                            *n.lock().unwrap() += 1
                        }
                        other => f.lock().unwrap().push(format!(
                            "{name} {service} at {:?}: {other:?}",
                            started.elapsed()
                        )),
                    }
                }
            }
        });
        Load {
            stop,
            served,
            failures,
            thread: Some(thread),
        }
    }

    fn served(&self) -> u64 {
        *self.served.lock().unwrap()
    }

    fn finish(mut self) -> (u64, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().unwrap().join().unwrap();
        (self.served(), self.failures.lock().unwrap().clone())
    }
}

/// The network: `world` with the bridge and the upstream, and a pod per Envoy.
struct Fleet {
    // Dropped first: the Envoys, then the upstream, then the namespaces.
    pods: Vec<Pod>,
    _upstream: Upstream,
    world: Netns,
}

fn namespace(id: &str, role: &str) -> String {
    format!("extsvc-fl-{role}-{id}")
}

fn world(id: &str, d: &Path, gamma: &CertKey) -> (Netns, Upstream) {
    let world = Netns::create(&namespace(id, "world"))
        .unwrap_or_else(|e| panic!("the fleet's network needs root: {e}"));
    world.ip(&["link", "add", "br0", "type", "bridge"]).unwrap();
    world
        .ip(&["addr", "add", &format!("{WORLD_IP}/24"), "dev", "br0"])
        .unwrap();
    world.ip(&["link", "set", "br0", "up"]).unwrap();
    let mut builder = UpstreamBuilder::new();
    for (listener, port) in LISTENERS {
        builder = match listener {
            "gamma" => builder.tls(listener, gamma),
            _ => builder.plain(listener),
        }
        .at(SocketAddr::from((WORLD_IP, port)));
    }
    let upstream = world.run(|| builder.start_named(d, "world"));
    (world, upstream)
}

/// A pod on the bridge at `10.79.0.<host>`, its Envoy on the tier's bootstrap.
fn pod(id: &str, d: &Path, world: &Netns, tier: &Tier, index: usize, host: u8) -> Pod {
    let name = format!("{}-{index}", tier.name);
    let ns = Netns::create(&namespace(id, &format!("p{host}"))).unwrap();
    let (inside, outside) = ("eth0", format!("v{host}"));
    ns.ip(&[
        "link",
        "add",
        inside,
        "type",
        "veth",
        "peer",
        "name",
        &outside,
        "netns",
        &world.name,
    ])
    .unwrap();
    ns.ip(&["addr", "add", &format!("10.79.0.{host}/24"), "dev", inside])
        .unwrap();
    ns.ip(&["link", "set", inside, "up"]).unwrap();
    world
        .ip(&["link", "set", &outside, "master", "br0", "up"])
        .unwrap();
    // The pod's own `run/` emptyDir: a directory of its own mounted over the one the
    // bootstrap names, in a mount namespace of Envoy's own.
    let (run, pod_run) = (tier.root.join("run"), d.join(format!("{name}.run")));
    fs::create_dir_all(&run).unwrap();
    fs::create_dir_all(&pod_run).unwrap();
    let mount_run = "mount --bind \"$0\" \"$1\" && shift && exec \"$@\"";
    let options = EnvoyOptions {
        under: [
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            mount_run,
        ]
        .iter()
        .map(|a| a.to_string())
        .chain([pod_run.display().to_string(), run.display().to_string()])
        .collect(),
        admin_seen_at: Some(pod_run.join("admin.sock")),
        ..EnvoyOptions::default()
    };
    let bootstrap = tier.root.join("bootstrap/envoy.yaml");
    let envoy = ns
        .run(|| Envoy::try_start_file(d, &name, &bootstrap, &options))
        .unwrap_or_else(|e| panic!("{e}"));
    Pod { name, ns, envoy }
}

/// The versions of LDS and CDS the pod's Envoy runs, as a Prometheus scrapes them from its
/// stats listener (0.0.0.0:9901 in the pod): the text readouts
/// `envoy_listener_manager_lds_version_text{text_value="..."}` and the CDS one.
fn scraped_versions(pod: &Pod) -> Result<(String, String), String> {
    let stats = SocketAddr::from(([127, 0, 0, 1], 9901));
    let path = "/stats/prometheus?text_readouts";
    let (status, body) = pod
        .ns
        .run(|| http_get(stats, path, Duration::from_secs(2)))?;
    if status != 200 {
        return Err(format!("{path}: {status}"));
    }
    let readout = |name: &str| {
        let prefix = format!("envoy_{name}_version_text{{text_value=\"");
        (body.lines())
            .find_map(|l| l.strip_prefix(&prefix)?.split('"').next())
            .map(str::to_string)
            .ok_or(format!("no {prefix} in {path}"))
    };
    Ok((
        readout("listener_manager_lds")?,
        readout("cluster_manager_cds")?,
    ))
}

/// Waits until every pod runs `version` and serves what `serves` asks of it; how long that
/// took from `since`, the swap.
fn converge(pods: &[(&Pod, Ask)], version: &str, since: Instant, serves: Serves<'_>) -> Duration {
    let mut last = Duration::ZERO;
    for (pod, ask) in pods {
        support::eventually(
            &format!("{} converges to {version}", pod.name),
            CONVERGE,
            Duration::from_millis(10),
            || {
                let running = scraped_versions(pod)?;
                if running != (version.to_string(), version.to_string()) {
                    return Err(format!("runs {running:?}"));
                }
                pod.ns.run(|| serves(*ask))
            },
        );
        last = last.max(since.elapsed());
    }
    last
}

fn answered_by(ask: Ask, service: &str, listener: &str) -> Result<(), String> {
    match ask(service) {
        Ok((200, body)) if body.contains(&format!("hello from {listener}\n")) => Ok(()),
        other => Err(format!("{service}: {other:?}")),
    }
}

fn refused(ask: Ask, service: &str) -> Result<(), String> {
    match ask(service) {
        Ok((200, body)) => Err(format!("{service} still served: {body}")),
        _ => Ok(()),
    }
}

#[test]
fn a_fleet_on_configmap_volumes_converges_through_add_move_and_remove_with_no_failed_request() {
    let dir = test_dir();
    let d = dir.path();
    let id = format!("{}", std::process::id() % 100_000);
    let egress = Tier::new(d, "egress", vec!["--replicas", "3"]);
    let web = Tier::new(d, "web", vec!["--dataplane", "web"]);
    let pki = Pki::for_names(d, &["gamma.test"]);
    let v1 = resources(&[("alpha", "alpha"), ("beta", "beta")], pki.ca.ca_pem());
    let tiers = [
        (&egress, through_egress as Ask),
        (&web, through_sidecar as Ask),
    ];
    let first: Vec<Vec<Value>> = tiers.iter().map(|(t, _)| t.generate(d, &v1)).collect();
    for ((tier, _), objects) in tiers.iter().zip(&first) {
        tier.mount(objects);
    }
    let (world, upstream) = world(&id, d, &pki.server);
    let mut fleet = Fleet {
        pods: Vec::new(),
        _upstream: upstream,
        world,
    };
    let mut host = 10;
    for (tier, count) in [(&egress, EGRESS_REPLICAS), (&web, SIDECARS)] {
        for index in 0..count {
            fleet
                .pods
                .push(pod(&id, d, &fleet.world, tier, index, host));
            host += 1;
        }
    }
    let ask_of = |p: &Pod| match p.name.starts_with("egress") {
        true => through_egress as Ask,
        false => through_sidecar as Ask,
    };
    let asks: Vec<(&Pod, Ask)> = fleet.pods.iter().map(|p| (p, ask_of(p))).collect();
    let (egress_pods, web_pods) = asks.split_at(EGRESS_REPLICAS);
    let both = |ask: Ask| answered_by(ask, "alpha", "alpha").and(answered_by(ask, "beta", "beta"));
    converge(
        egress_pods,
        &config_version(&first[0]),
        Instant::now(),
        &both,
    );
    converge(web_pods, &config_version(&first[1]), Instant::now(), &both);
    let loads: Vec<Load> = asks
        .iter()
        .map(|(p, ask)| Load::start(p, *ask, &["alpha"]))
        .collect();

    // A step: its name, the services (name, upstream listener) after it, what every pod then
    // serves.
    type Step<'a> = (&'a str, Vec<(&'a str, &'a str)>, Serves<'a>);
    let steps: [Step<'_>; 3] = [
        (
            "add gamma",
            vec![("alpha", "alpha"), ("beta", "beta"), ("gamma", "gamma")],
            &|ask| answered_by(ask, "gamma", "gamma"),
        ),
        (
            "move beta",
            vec![
                ("alpha", "alpha"),
                ("beta", "beta-moved"),
                ("gamma", "gamma"),
            ],
            &|ask| answered_by(ask, "beta", "beta-moved"),
        ),
        (
            "remove gamma",
            vec![("alpha", "alpha"), ("beta", "beta-moved")],
            &|ask| refused(ask, "gamma"),
        ),
    ];
    for (step, services, serves) in steps {
        let text = resources(&services, pki.ca.ca_pem());
        let made: Vec<Vec<Value>> = tiers.iter().map(|(t, _)| t.generate(d, &text)).collect();
        let swap = Instant::now();
        for ((tier, _), objects) in tiers.iter().zip(&made) {
            tier.update(objects);
        }
        let egress_took = converge(egress_pods, &config_version(&made[0]), swap, serves);
        let web_took = converge(web_pods, &config_version(&made[1]), swap, serves);
        let took = egress_took.max(web_took);
        println!(
            "fleet: {step}: the last of {} Envoys served the change {:.0} ms after the swap",
            asks.len(),
            took.as_secs_f64() * 1000.0
        );
    }

    let before: Vec<u64> = loads.iter().map(Load::served).collect();
    thread::sleep(Duration::from_millis(300));
    for (load, before) in loads.iter().zip(&before) {
        assert!(load.served() > *before, "a pod's load stopped");
    }
    for load in loads {
        let (served, failures) = load.finish();
        assert!(served > 0);
        assert_eq!(
            failures,
            Vec::<String>::new(),
            "requests to an unchanged service failed"
        );
    }
    for pod in &fleet.pods {
        for stat in [
            "listener_manager.lds.update_rejected",
            "cluster_manager.cds.update_rejected",
            "listener_manager.lds.update_failure",
            "cluster_manager.cds.update_failure",
        ] {
            assert_eq!(pod.envoy.counter(stat), 0, "{}: {stat}", pod.name);
        }
        for (stat, value) in pod.envoy.stats() {
            let failed = stat.ends_with(".update_rejected") || stat.ends_with(".update_failure");
            assert!(!(failed && value > 0), "{}: {stat} {value}", pod.name);
        }
        let updates = pod.envoy.counter("listener_manager.lds.update_success");
        assert!(updates >= 4, "{}: {updates} LDS updates", pod.name);
    }
}
