//! Bad input: invalid resources that `generate` refuses, and a plugin configuration Envoy
//! refuses.

use std::fs;
use std::time::{Duration, Instant};

use extsvc_testkit::{
    ca_file, dedent, docs, free_port, generate, http_service, https_service, mesh, test_dir,
    validate_config, Envoy, EnvoyOptions,
};
use serde_json::Value;

use super::{httpbin, write};

/// Invalid resources: `extsvc generate` exits 1 with the report `validate` gives (every
/// violation of the invalid resource with the line and column of its field, the valid ones
/// named as such) and writes nothing.
#[test]
fn generate_refuses_invalid_resources_and_writes_nothing() {
    let dir = test_dir();
    let d = dir.path();
    let resources = docs(&[
        mesh(false),
        dedent(
            "
            type: ExternalService
            mesh: default
            name: broken
            tags:
              kuma.io/protocol: websocket
            networking:
              address: http://httpbin.test:8080
            ",
        ),
        http_service("fine", "fine.test:80"),
    ]);
    let cli = generate(d, &resources, free_port(), None, &[]);
    assert_eq!(cli.code, Some(1), "{cli:?}");
    let file = d.join("resources.yaml");
    let file = file.display();
    assert_eq!(
        cli.stderr,
        format!(
            "{file}: Mesh \"default\" (mesh \"default\"): valid
{file}: ExternalService \"broken\" (mesh \"default\"): 6 violations
  networking.address: unable to parse address (line 14, column 3)
  networking.address: address has to be a valid IP address or a domain name (line 14, column 3)
  networking.address: unable to parse port in address (line 14, column 3)
  networking.address: port must be in the range [1, 65535] (line 14, column 3)
  tags[\"kuma.io/protocol\"]: tag \"kuma.io/protocol\" has an invalid value \"websocket\". \
Allowed values: grpc, http, http2, kafka, tcp (line 12, column 3)
  tags: mandatory tag \"kuma.io/service\" is missing (line 11, column 1)
{file}: ExternalService \"fine\" (mesh \"default\"): valid
extsvc: invalid resources: no configuration written
"
        ),
        "{cli:?}"
    );
    assert_eq!(cli.stdout, "", "{cli:?}");
    // Neither the output nor a temporary file beside it.
    let written: Vec<_> = fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("envoy.yaml"))
        .collect();
    assert_eq!(written, Vec::<String>::new());
}

/// A generated configuration whose plugin configuration is corrupted (one resource made
/// invalid behind the generator's back): `envoy --mode validate` refuses it, and Envoy refuses
/// to start with its log naming the violation. The generator's own stanza, FAIL_RELOAD: a
/// failing `on_configure` stops Envoy whatever the failure policy (ENVOY_FACTS.md, e).
#[test]
fn envoy_refuses_a_generated_config_with_an_invalid_plugin_configuration() {
    let (dir, p, up, real) = httpbin();
    let d = dir.path();
    let resources = docs(&[
        mesh(false),
        https_service("httpbin", "http", &real, &[ca_file(&p.ca)]),
    ]);
    let cli = generate(d, &resources, free_port(), up.dns_addr(), &[]);
    assert_eq!(cli.code, Some(0), "{cli:?}");
    let text = fs::read_to_string(d.join("envoy.yaml")).unwrap();
    let mut config: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).unwrap();

    let wasm = &mut config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
        ["typed_config"]["http_filters"][0]["typed_config"]["config"];
    assert_eq!(wasm["failure_policy"].as_str(), Some("FAIL_RELOAD"));
    let value = &mut wasm["configuration"]["value"];
    let mut plugin: Value = serde_json::from_str(value.as_str().unwrap()).unwrap();
    let service = plugin["resources"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|r| r["type"] == "ExternalService")
        .unwrap();
    service["tags"]["kuma.io/protocol"] = Value::from("websocket");
    *value = serde_yaml_ng::Value::from(plugin.to_string());

    let corrupted = serde_yaml_ng::to_string(&config).unwrap();
    let violation = "ExternalService \"httpbin\" (mesh \"default\"): tags[\"kuma.io/protocol\"]: \
                     tag \"kuma.io/protocol\" has an invalid value \"websocket\"";
    let validation = validate_config(&write(d, "corrupted-validate.yaml", &corrupted));
    assert!(!validation.ok, "{}", validation.output);
    for part in [violation, "Unable to create Wasm plugin external_service"] {
        assert!(validation.output.contains(part), "{}", validation.output);
    }
    let started = Instant::now();
    let error = match Envoy::try_start(d, "corrupted", &corrupted, &EnvoyOptions::default()) {
        Ok(_) => panic!("Envoy started with an invalid plugin configuration"),
        Err(e) => e,
    };
    assert!(error.contains(violation), "{error}");
    assert!(
        error.contains("Unable to create Wasm plugin external_service"),
        "{error}"
    );
    assert!(started.elapsed() < Duration::from_secs(15));
}
