//! The CLI as a new user meets it: empty input, every typo at once, `-o` and `--format`,
//! standard input, directories and `-f`, the module path, and the warnings `generate` gives.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::ffi::OsString;
use std::fs;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use extsvc_testkit::{extsvc, extsvc_binary, test_dir, wasm_module, Cli};

const MESH_OFF: &str =
    "type: Mesh\nname: default\nnetworking:\n  outbound:\n    passthrough: false\n";
const HTTPBIN: &str = "type: ExternalService\nname: httpbin\nmesh: default\ntags:\n  kuma.io/service: httpbin\n  kuma.io/protocol: http\nnetworking:\n  address: httpbin.org:80\n";

fn run(dir: &Path, args: &[&str]) -> Cli {
    let args: Vec<OsString> = args.iter().map(OsString::from).collect();
    extsvc(dir, &args)
}

fn generate(dir: &Path, args: &[&str]) -> Cli {
    let wasm = wasm_module();
    let mut all = vec!["generate", "--wasm", wasm.to_str().unwrap()];
    all.extend_from_slice(args);
    run(dir, &all)
}

#[test]
fn empty_input_is_an_error_that_says_no_resources() {
    let d = test_dir();
    fs::write(d.path().join("empty.yaml"), "").unwrap();
    fs::write(d.path().join("comments.yaml"), "# nothing yet\n---\n").unwrap();
    let validated = run(d.path(), &["validate", "empty.yaml", "comments.yaml"]);
    assert_eq!(validated.code, Some(1), "{validated:?}");
    assert_eq!(
        validated.stdout,
        "empty.yaml:1:1: no resources: expected ExternalService, Mesh, Secret, Dataplane or Mesh* policy documents\n\
         comments.yaml:1:1: no resources: expected ExternalService, Mesh, Secret, Dataplane or Mesh* policy documents\n"
    );
    let generated = generate(d.path(), &["empty.yaml", "-o", "envoy.yaml"]);
    assert_eq!(generated.code, Some(1), "{generated:?}");
    assert!(
        generated.stderr.contains("empty.yaml:1:1: no resources"),
        "{generated:?}"
    );
    assert!(!d.path().join("envoy.yaml").exists());
}

#[test]
fn generate_says_when_no_mesh_leaves_passthrough_on() {
    let d = test_dir();
    fs::write(d.path().join("services.yaml"), HTTPBIN).unwrap();
    let open = generate(d.path(), &["services.yaml", "-o", "envoy.yaml"]);
    assert_eq!(open.code, Some(0), "{open:?}");
    assert_eq!(
        open.stderr,
        "extsvc: warning: no Mesh resource \"default\", so passthrough is on and requests to \
         undeclared hosts go out as they are; add `type: Mesh`, `name: default` with \
         `networking.outbound.passthrough: false` to refuse them\n"
    );
    fs::write(d.path().join("mesh.yaml"), MESH_OFF).unwrap();
    let closed = generate(
        d.path(),
        &["mesh.yaml", "services.yaml", "-o", "envoy.yaml"],
    );
    assert_eq!((closed.code, closed.stderr.as_str()), (Some(0), ""));
}

#[test]
fn generate_warns_of_a_tcp_service_no_listener_reaches() {
    let d = test_dir();
    let redis = "type: ExternalService\nname: redis\nmesh: default\ntags:\n  kuma.io/service: redis\nnetworking:\n  address: redis.example.com:6379\n";
    fs::write(d.path().join("r.yaml"), format!("{MESH_OFF}---\n{redis}")).unwrap();
    let warned = generate(d.path(), &["r.yaml", "-o", "envoy.yaml"]);
    assert_eq!(warned.code, Some(0), "{warned:?}");
    assert_eq!(
        warned.stderr,
        "extsvc: warning: service \"redis\" is tcp and no Dataplane outbound names it, so no \
         listener reaches it: add a Dataplane outbound with kuma.io/service \"redis\", or tag it \
         kuma.io/protocol: http\n"
    );
    let dataplane = "type: Dataplane\nname: app\nmesh: default\nnetworking:\n  address: 127.0.0.1\n  inbound:\n  - port: 8080\n    tags:\n      kuma.io/service: app\n  outbound:\n  - port: 16379\n    tags:\n      kuma.io/service: redis\n";
    fs::write(d.path().join("dp.yaml"), dataplane).unwrap();
    let reached = generate(d.path(), &["r.yaml", "dp.yaml", "-o", "envoy.yaml"]);
    assert_eq!(
        (reached.code, reached.stderr.as_str()),
        (Some(0), ""),
        "{reached:?}"
    );
}

#[test]
fn every_unknown_field_of_every_document_in_one_run() {
    let d = test_dir();
    let typos = format!(
        "{}---\n{}",
        HTTPBIN.replace("  address:", "  adress:"),
        HTTPBIN
            .replace("name: httpbin\n", "name: other\nmeshh: x\n")
            .replace("networking:\n", "networking:\n  tsl: {}\n")
    );
    fs::write(d.path().join("typos.yaml"), typos).unwrap();
    let found = run(d.path(), &["validate", "typos.yaml"]);
    assert_eq!(found.code, Some(1), "{found:?}");
    let unknown: Vec<&str> = found
        .stdout
        .lines()
        .filter(|l| l.contains("unknown field"))
        .map(|l| l.split(':').next().unwrap().trim())
        .collect();
    assert_eq!(
        unknown,
        ["networking.adress", "networking.tsl", "meshh"],
        "{}",
        found.stdout
    );
}

#[test]
fn output_is_a_file_and_format_is_a_format_everywhere() {
    let d = test_dir();
    fs::write(d.path().join("s.yaml"), format!("{MESH_OFF}---\n{HTTPBIN}")).unwrap();

    let refused = generate(d.path(), &["s.yaml", "-o", "json"]);
    assert_eq!(refused.code, Some(2), "{refused:?}");
    assert_eq!(
        refused.stderr,
        "extsvc: -o takes a file name, not a format: use --format json, or -o envoy.json\n"
    );
    assert!(!d.path().join("json").exists());

    let json = generate(d.path(), &["s.yaml", "-o", "envoy.json"]);
    assert_eq!(json.code, Some(0), "{json:?}");
    let config: serde_json::Value =
        serde_json::from_slice(&fs::read(d.path().join("envoy.json")).unwrap()).unwrap();
    assert!(config["static_resources"]["clusters"].is_array());
    let stdout_json = generate(d.path(), &["s.yaml", "--format", "json"]);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&stdout_json.stdout).unwrap(),
        config
    );

    let report = run(
        d.path(),
        &[
            "validate",
            "s.yaml",
            "--format",
            "json",
            "-o",
            "report.json",
        ],
    );
    assert_eq!(
        (report.code, report.stdout.as_str()),
        (Some(0), ""),
        "{report:?}"
    );
    let written: serde_json::Value =
        serde_json::from_slice(&fs::read(d.path().join("report.json")).unwrap()).unwrap();
    assert_eq!(written["resources"].as_array().unwrap().len(), 2);

    let old = run(d.path(), &["validate", "s.yaml", "-o", "json"]);
    assert_eq!(old.code, Some(0), "{old:?}");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&old.stdout).unwrap(),
        written
    );
    assert_eq!(
        old.stderr,
        "extsvc: `-o json` is deprecated: use --format json (-o names a file)\n"
    );
    // `yaml` was never a format of validate's: a file of that name.
    let named_yaml = run(d.path(), &["validate", "s.yaml", "-o", "yaml"]);
    assert_eq!((named_yaml.code, named_yaml.stderr.as_str()), (Some(0), ""));
    assert!(fs::read_to_string(d.path().join("yaml"))
        .unwrap()
        .contains(": valid\n"));
}

#[test]
fn standard_input_directories_and_dash_f() {
    let d = test_dir();
    let services = d.path().join("services");
    fs::create_dir(&services).unwrap();
    fs::write(services.join("b-httpbin.yml"), HTTPBIN).unwrap();
    fs::write(services.join("a-mesh.yaml"), MESH_OFF).unwrap();
    fs::write(services.join("README.md"), "not a resource").unwrap();
    let dir = run(d.path(), &["validate", "services"]);
    assert_eq!(
        dir.stdout,
        format!(
            "{0}/a-mesh.yaml: Mesh \"default\" (mesh \"default\"): valid\n\
             {0}/b-httpbin.yml: ExternalService \"httpbin\" (mesh \"default\"): valid\n",
            "services"
        ),
        "{dir:?}"
    );
    let dash_f = run(
        d.path(),
        &[
            "validate",
            "-f",
            "services/a-mesh.yaml",
            "-f",
            "services/b-httpbin.yml",
        ],
    );
    assert_eq!(dash_f.stdout, dir.stdout);

    let mut child = Command::new(extsvc_binary())
        .args(["validate", "-"])
        .current_dir(d.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(HTTPBIN.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "stdin: ExternalService \"httpbin\" (mesh \"default\"): valid\n"
    );
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn the_module_is_found_from_anywhere_and_checked() {
    let d = test_dir();
    fs::write(d.path().join("s.yaml"), format!("{MESH_OFF}---\n{HTTPBIN}")).unwrap();
    // No --wasm, run from a directory with no target/: the module beside this build is used.
    let found = run(d.path(), &["generate", "s.yaml", "-o", "envoy.yaml"]);
    assert_eq!(found.code, Some(0), "{found:?}");
    let config = fs::read_to_string(d.path().join("envoy.yaml")).unwrap();
    let module = fs::canonicalize(wasm_module()).unwrap();
    assert!(
        config.contains(&format!("filename: {}", module.display())),
        "{config}"
    );

    let missing = run(d.path(), &["generate", "s.yaml", "--wasm", "nowhere.wasm"]);
    assert_eq!(missing.code, Some(2), "{missing:?}");
    assert!(
        missing.stderr.contains("nowhere.wasm") && missing.stderr.contains("`make build`"),
        "{missing:?}"
    );
}

#[test]
fn several_meshes_name_the_flag_that_picks_one() {
    let d = test_dir();
    let other = HTTPBIN.replace("mesh: default", "mesh: other");
    fs::write(d.path().join("s.yaml"), format!("{HTTPBIN}---\n{other}")).unwrap();
    let refused = generate(d.path(), &["s.yaml"]);
    assert_eq!(refused.code, Some(1), "{refused:?}");
    assert_eq!(
        refused.stderr,
        "extsvc: the resources belong to several meshes (default, other): name the one to serve with --mesh NAME\n"
    );
}

/// An ExternalService `name` (its kuma.io/service too) of `host:port` over TLS with its real
/// name given up, as Kuma users reach one host with two sets of client certificates.
fn hidden_on(name: &str, address: &str) -> String {
    format!(
        "type: ExternalService\nname: {name}\nmesh: default\ntags:\n  kuma.io/service: {name}\n  kuma.io/protocol: http\nnetworking:\n  address: {address}\n  disableHostDNSEntry: true\n  tls:\n    enabled: true\n"
    )
}

#[test]
fn validate_and_generate_agree_on_services_that_share_an_address() {
    let d = test_dir();
    // Two services on one address, both with disableHostDNSEntry: routed by their .mesh names.
    let both = [
        MESH_OFF,
        &hidden_on("tenant-a", "httpbin.org:443"),
        &hidden_on("tenant-b", "httpbin.org:443"),
    ]
    .join("---\n");
    fs::write(d.path().join("both.yaml"), both).unwrap();
    let validated = run(d.path(), &["validate", "both.yaml"]);
    assert_eq!(validated.code, Some(0), "{validated:?}");
    let generated = generate(d.path(), &["both.yaml", "-o", "envoy.yaml"]);
    assert_eq!(generated.code, Some(0), "{generated:?}");
    let config = fs::read_to_string(d.path().join("envoy.yaml")).unwrap();
    assert!(config.contains("- tenant-a.mesh") && config.contains("- tenant-b.mesh"));

    // Two services whose .mesh names are one: what generate refuses, validate refuses first,
    // in the same words, with file, resource, field, line and column.
    let clash = [
        MESH_OFF,
        &hidden_on("tenant", "httpbin.org:443"),
        &hidden_on("TENANT", "httpbin.org:443"),
    ]
    .join("---\n");
    fs::write(d.path().join("clash.yaml"), clash).unwrap();
    let words = "  networking.address: services \"tenant\" and \"TENANT\" are both forwarded with \
                 authority \"tenant.mesh\", so no route can tell them apart; give one of them \
                 another port or set disableHostDNSEntry on it (line 26, column 3)\n";
    let heading = "clash.yaml: ExternalService \"TENANT\" (mesh \"default\"): 1 violation\n";
    let validated = run(d.path(), &["validate", "clash.yaml"]);
    assert_eq!(validated.code, Some(1), "{validated:?}");
    assert!(
        validated.stdout.contains(&format!("{heading}{words}")),
        "{validated:?}"
    );
    let generated = generate(d.path(), &["clash.yaml", "-o", "clash-envoy.yaml"]);
    assert_eq!(generated.code, Some(1), "{generated:?}");
    assert!(
        generated.stderr.contains(&format!("{heading}{words}")),
        "{generated:?}"
    );
}

#[test]
fn relative_file_paths_are_taken_from_the_folder_of_the_file_that_names_them() {
    let d = test_dir();
    let pki = extsvc_testkit::Pki::new(d.path());
    let sub = d.path().join("services");
    fs::create_dir(&sub).unwrap();
    fs::copy(pki.ca.ca_path(), sub.join("ca.pem")).unwrap();
    fs::write(
        sub.join("svc.yaml"),
        "type: ExternalService\nname: secure\nmesh: default\ntags:\n  kuma.io/service: secure\n  kuma.io/protocol: http\nnetworking:\n  address: secure.test:443\n  tls:\n    caCert:\n      file: ca.pem\n",
    )
    .unwrap();
    // Run from the test dir, above the file: `ca.pem` is found beside `svc.yaml`.
    let validated = run(d.path(), &["validate", "services/svc.yaml"]);
    assert_eq!(validated.code, Some(0), "{validated:?}");
    let generated = generate(d.path(), &["services/svc.yaml", "-o", "envoy.yaml"]);
    assert_eq!(generated.code, Some(0), "{generated:?}");
    let config = fs::read_to_string(d.path().join("envoy.yaml")).unwrap();
    let ca = sub.join("ca.pem").display().to_string();
    assert!(config.contains(&format!("filename: {ca}")), "{config}");
}
