//! `extsvc validate` as a user runs it: exit codes, text and JSON reports, syntax errors with
//! line and column, and the checks that read files and PEM data.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use extsvc_testkit as support;

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use serde_json::Value;
use support::{test_dir, Cli, Pki};

/// `extsvc ARGS...` with the kit's runner, in a dir of its own.
fn extsvc(args: &[&str]) -> Cli {
    let dir = test_dir();
    let args: Vec<OsString> = args.iter().map(OsString::from).collect();
    support::extsvc(dir.path(), &args)
}

fn fixture(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/validate")
        .join(name)
        .display()
        .to_string()
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// `(name, [(field, message)])` per resource of a JSON report.
fn json_report(stdout: &str) -> Vec<(String, Vec<(String, String)>)> {
    let report: Value = serde_json::from_str(stdout).unwrap();
    report["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let violations = r["violations"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| {
                    (
                        v["field"].as_str().unwrap().to_string(),
                        v["message"].as_str().unwrap().to_string(),
                    )
                })
                .collect();
            (r["name"].as_str().unwrap().to_string(), violations)
        })
        .collect()
}

#[test]
fn kuma_invalid_examples_give_kumas_exact_violations() {
    let run = extsvc(&[
        "validate",
        "--format",
        "json",
        &fixture("kuma-invalid.yaml"),
    ]);
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    let address = "networking.address";
    let all_four = vec![
        (address, "unable to parse address"),
        (
            address,
            "address has to be a valid IP address or a domain name",
        ),
        (address, "unable to parse port in address"),
        (address, "port must be in the range [1, 65535]"),
    ];
    let protocol = "tags[\"kuma.io/protocol\"]";
    let want: Vec<(&str, Vec<(&str, &str)>)> = vec![
        ("no-networking", vec![("networking", "should have networking")]),
        ("empty-address", vec![(address, "address can't be empty")]),
        ("invalid-format", vec![(address, "address has to be a valid IP address or a domain name")]),
        ("scheme", all_four.clone()),
        ("ipv6-without-brackets", all_four),
        ("port-out-of-range", vec![(address, "port must be in the range [1, 65535]")]),
        ("empty-sni", vec![("networking.tls.serverName", "cannot be empty")]),
        ("no-service-tag", vec![("tags", "mandatory tag \"kuma.io/service\" is missing")]),
        ("empty-tag-value", vec![("tags[\"version\"]", "tag value must be non-empty")]),
        (
            "empty-protocol",
            vec![
                (protocol, "tag \"kuma.io/protocol\" has an invalid value \"\". Allowed values: grpc, http, http2, kafka, tcp"),
                (protocol, "tag value must be non-empty"),
            ],
        ),
        (
            "unsupported-protocol",
            vec![(
                protocol,
                "tag \"kuma.io/protocol\" has an invalid value \"not-yet-supported-protocol\". Allowed values: grpc, http, http2, kafka, tcp",
            )],
        ),
        (
            "bad-tag-name",
            vec![("tags[\"inv@lidT/gN%me\"]", "tag name must consist of alphanumeric characters, dots, dashes, slashes and underscores")],
        ),
        (
            "bad-tag-value",
            vec![("tags[\"invalidTagValue\"]", "tag value must consist of alphanumeric characters, dots, dashes and underscores")],
        ),
        (
            "empty-data-sources",
            vec![
                ("networking.tls.caCert", "data source cannot be empty"),
                ("networking.tls.clientCert", "data source cannot be empty"),
                ("networking.tls.clientKey", "data source cannot be empty"),
            ],
        ),
        ("service-is-address", vec![("tags[\"kuma.io/service\"]", "cannot be the same as networking.address")]),
    ];
    let want: Vec<(String, Vec<(String, String)>)> = want
        .into_iter()
        .map(|(n, v)| {
            (
                n.to_string(),
                v.into_iter()
                    .map(|(f, m)| (f.to_string(), m.to_string()))
                    .collect(),
            )
        })
        .collect();
    assert_eq!(json_report(&run.stdout), want);
}

#[test]
fn kuma_valid_examples_pass_with_one_line_each() {
    let run = extsvc(&["validate", &fixture("kuma-valid.yaml")]);
    assert_eq!(run.code, Some(0), "{}{}", run.stdout, run.stderr);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{}", run.stdout);
    assert!(
        lines
            .iter()
            .all(|l| l.ends_with(": valid") && l.contains("ExternalService")),
        "{}",
        run.stdout
    );
    assert!(
        lines[3].contains("\"es-ipv6\" (mesh \"default\")"),
        "{}",
        lines[3]
    );
}

#[test]
fn text_report_names_file_kind_name_mesh_then_each_violation() {
    let tmp = test_dir();
    let dir = tmp.path();
    let file = write(
        dir,
        "bad.yaml",
        "type: ExternalService\nname: httpbin\nmesh: demo\ntags:\n  kuma.io/service: httpbin\nnetworking:\n  adress: httpbin.org:443\n",
    );
    let run = extsvc(&["validate", &file]);
    assert_eq!(run.code, Some(1));
    let mut lines = run.stdout.lines();
    assert_eq!(
        lines.next().unwrap(),
        format!("{file}: ExternalService \"httpbin\" (mesh \"demo\"): 1 violation")
    );
    let violation = lines.next().unwrap();
    assert!(
        violation.starts_with("  networking.adress: unknown field `adress`"),
        "{violation}"
    );
}

#[test]
fn kubernetes_form_multi_document_yaml_and_json_arrays() {
    let tmp = test_dir();
    let dir = tmp.path();
    let yaml = write(
        dir,
        "k8s.yaml",
        "apiVersion: kuma.io/v1alpha1\nkind: ExternalService\nmesh: default\nmetadata:\n  namespace: default\n  name: httpbin\nspec:\n  tags:\n    kuma.io/service: httpbin\n    kuma.io/protocol: http\n  networking:\n    address: httpbin.org:443\n    tls:\n      enabled: true\n---\napiVersion: kuma.io/v1alpha1\nkind: Mesh\nmetadata:\n  name: default\nspec:\n  networking:\n    outbound:\n      passthrough: false\n---\n",
    );
    let json = write(
        dir,
        "more.json",
        r#"[{"type": "ExternalService", "name": "a", "tags": {"kuma.io/service": "a"}, "networking": {"address": "a.example:80"}},
            {"type": "ExternalService", "name": "b", "tags": {"kuma.io/service": "b"}, "networking": {"address": "[::1]:8080"}}]"#,
    );
    let run = extsvc(&["validate", "--format", "json", &yaml, &json]);
    assert_eq!(run.code, Some(0), "{}", run.stdout);
    let report: Value = serde_json::from_str(&run.stdout).unwrap();
    let ids: Vec<(String, String, String)> = report["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["file"].as_str().unwrap().into(),
                r["kind"].as_str().unwrap().into(),
                r["name"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        ids,
        [
            (yaml.clone(), "ExternalService".into(), "httpbin".into()),
            (yaml, "Mesh".into(), "default".into()),
            (json.clone(), "ExternalService".into(), "a".into()),
            (json, "ExternalService".into(), "b".into()),
        ]
    );
    assert_eq!(report["errors"], serde_json::json!([]));
}

#[test]
fn syntax_errors_name_file_line_and_column() {
    let tmp = test_dir();
    let dir = tmp.path();
    let yaml = write(
        dir,
        "broken.yaml",
        "type: ExternalService\nname: x\ntags: [unclosed\n",
    );
    let run = extsvc(&["validate", &yaml]);
    assert_eq!(run.code, Some(1));
    assert!(
        run.stdout.starts_with(&format!("{yaml}:4:1: "))
            || run.stdout.starts_with(&format!("{yaml}:3:")),
        "{}",
        run.stdout
    );

    let json = write(
        dir,
        "broken.json",
        "{\n  \"type\": \"ExternalService\",\n  \"name\": \n}\n",
    );
    let run = extsvc(&["validate", "--format", "json", &json]);
    assert_eq!(run.code, Some(1));
    let report: Value = serde_json::from_str(&run.stdout).unwrap();
    let error = &report["errors"][0];
    assert_eq!(
        (
            error["file"].as_str().unwrap(),
            error["line"].as_u64().unwrap(),
            error["column"].as_u64().unwrap()
        ),
        (json.as_str(), 4, 1)
    );
}

#[test]
fn unusable_invocations_exit_2() {
    let run = extsvc(&["validate", "--no-such-flag", &fixture("kuma-valid.yaml")]);
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    let run = extsvc(&["validate", "/no/such/file.yaml"]);
    assert_eq!(run.code, Some(2));
    assert!(
        run.stderr.contains("cannot read /no/such/file.yaml"),
        "{}",
        run.stderr
    );
    let run = extsvc(&["validate"]);
    assert_eq!(run.code, Some(2));
}

#[test]
fn help_explains_both_formats_and_exit_codes() {
    let run = extsvc(&["validate", "--help"]);
    assert_eq!(run.code, Some(0));
    for needle in [
        "-o, --output",
        "--format",
        "-f, --filename",
        "text",
        "json",
        "\"violations\"",
        "Exit status: 0",
        "2 when the command",
    ] {
        assert!(
            run.stdout.contains(needle),
            "missing {needle:?} in\n{}",
            run.stdout
        );
    }
}

fn service_with_tls(tls: &str) -> String {
    format!(
        "type: ExternalService\nname: secure\ntags:\n  kuma.io/service: secure\nnetworking:\n  address: secure.example:443\n  tls:\n{tls}"
    )
}

fn indent(pem: &str, by: usize) -> String {
    pem.lines()
        .map(|l| format!("{}{l}\n", " ".repeat(by)))
        .collect()
}

/// `(field, message)` of the only resource in `file`.
fn violations_of(file: &str) -> Vec<(String, String)> {
    let run = extsvc(&["validate", "--format", "json", file]);
    json_report(&run.stdout).remove(0).1
}

#[test]
fn files_secrets_and_pem_are_checked() {
    let tmp = test_dir();
    let dir = tmp.path();
    let Pki { ca, client, .. } = Pki::new(dir);
    let other = ca.client_cert(dir, "other", "other");
    let path = |p: &PathBuf| p.display().to_string();

    // A matching certificate and key from files, the CA inline: valid.
    let good = write(
        dir,
        "good.yaml",
        &service_with_tls(&format!(
            "    caCert:\n      inlineString: |\n{}    clientCert:\n      file: {}\n    clientKey:\n      file: {}\n",
            indent(ca.ca_pem(), 8),
            path(&client.cert_path),
            path(&client.key_path)
        )),
    );
    assert_eq!(violations_of(&good), vec![]);

    // The same through a Secret (base64, as Kuma stores it).
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(client.key_pem.as_bytes());
    let secret = write(
        dir,
        "secret.yaml",
        &format!(
            "{}---\ntype: Secret\nname: client-key\nmesh: default\ndata: {b64}\n",
            service_with_tls(&format!(
                "    clientCert:\n      file: {}\n    clientKey:\n      secret: client-key\n",
                path(&client.cert_path)
            ))
        ),
    );
    let run = extsvc(&["validate", &secret]);
    assert_eq!(run.code, Some(0), "{}", run.stdout);

    // A key that is not the certificate's.
    let mismatch = write(
        dir,
        "mismatch.yaml",
        &service_with_tls(&format!(
            "    clientCert:\n      file: {}\n    clientKey:\n      file: {}\n",
            path(&client.cert_path),
            path(&other.key_path)
        )),
    );
    assert_eq!(
        violations_of(&mismatch),
        vec![(
            "networking.tls.clientKey".to_string(),
            "does not match the public key of clientCert".to_string()
        )]
    );

    // A missing file, text that is not a certificate, a certificate where the key belongs.
    let broken = write(
        dir,
        "broken.yaml",
        &service_with_tls(&format!(
            "    caCert:\n      file: {}\n    clientCert:\n      inlineString: not a certificate\n    clientKey:\n      file: {}\n",
            dir.join("missing.pem").display(),
            path(&client.cert_path)
        )),
    );
    let found = violations_of(&broken);
    let fields: Vec<&str> = found.iter().map(|(f, _)| f.as_str()).collect();
    assert_eq!(
        fields,
        [
            "networking.tls.caCert",
            "networking.tls.clientCert",
            "networking.tls.clientKey"
        ],
        "{found:?}"
    );
    assert!(
        found[0].1.starts_with("cannot read file") && found[0].1.contains("missing.pem"),
        "{}",
        found[0].1
    );
    assert_eq!(
        found[1].1,
        "holds no PEM certificate (-----BEGIN CERTIFICATE-----)"
    );
    assert!(
        found[2].1.starts_with("holds no PEM private key"),
        "{}",
        found[2].1
    );
    // Never any key material in what is printed.
    let run = extsvc(&["validate", &mismatch, &broken]);
    assert!(!run.stdout.contains("PRIVATE KEY") && !run.stdout.contains(&other.key_pem[40..80]));
}

#[test]
fn every_wrong_type_of_a_document_is_reported_with_line_and_column() {
    let tmp = test_dir();
    let file = write(
        tmp.path(),
        "types.yaml",
        "type: ExternalService\nname: httpbin\ntags:\n  kuma.io/service: httpbin\nnetworking:\n  address: 443\n  tls:\n    enabled: \"yes\"\n",
    );
    let run = extsvc(&["validate", &file]);
    assert_eq!(run.code, Some(1), "{}", run.stdout);
    assert_eq!(
        run.stdout,
        format!(
            "{file}: ExternalService \"httpbin\" (mesh \"default\"): 2 violations\n  \
             networking.address: invalid type: integer `443`, expected a string (line 6, column 3)\n  \
             networking.tls.enabled: invalid type: string \"yes\", expected a boolean (line 8, column 5)\n"
        )
    );
}

#[test]
fn a_service_named_after_its_host_gets_kumas_words_and_a_hint() {
    let tmp = test_dir();
    let file = write(
        tmp.path(),
        "named.yaml",
        "type: ExternalService\nname: httpbin\ntags:\n  kuma.io/service: httpbin.org\nnetworking:\n  address: httpbin.org:443\n",
    );
    let run = extsvc(&["validate", &file]);
    assert_eq!(run.code, Some(1), "{}", run.stdout);
    assert_eq!(
        run.stdout,
        format!(
            "{file}: ExternalService \"httpbin\" (mesh \"default\"): 1 violation\n  \
             tags[\"kuma.io/service\"]: cannot be the same as networking.address (line 4, column 3)\n    \
             hint: name the service another way, such as kuma.io/service: httpbin_org or httpbin\n"
        )
    );
}

#[test]
fn bad_base64_is_one_message_for_one_problem() {
    let tmp = test_dir();
    let dir = tmp.path();
    let inline = write(
        dir,
        "inline.yaml",
        &service_with_tls("    caCert:\n      inline: \"%%%\"\n"),
    );
    let found = violations_of(&inline);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].0, "networking.tls.caCert.inline");
    assert!(found[0].1.starts_with("is not valid base64"), "{found:?}");

    // Through a Secret: said once, of the Secret that holds it.
    let secret = write(
        dir,
        "secret.yaml",
        &format!(
            "{}---\ntype: Secret\nname: ca\nmesh: default\ndata: \"%%%\"\n",
            service_with_tls("    caCert:\n      secret: ca\n")
        ),
    );
    let run = extsvc(&["validate", "--format", "json", &secret]);
    let report = json_report(&run.stdout);
    assert_eq!(report[0].1, vec![], "{report:?}");
    assert_eq!(report[1].1.len(), 1, "{report:?}");
    assert_eq!(report[1].1[0].0, "data");
}

#[test]
fn x509_v1_certificates_are_taken_and_broken_ones_refused() {
    let tmp = test_dir();
    let dir = tmp.path();
    let Pki { ca, .. } = Pki::new(dir);
    let v1 = crate::client_certs::v1_client_cert(dir, &ca, "v1-client");
    let path = |p: &PathBuf| p.display().to_string();
    let good = write(
        dir,
        "v1.yaml",
        &service_with_tls(&format!(
            "    caCert:\n      file: {}\n    clientCert:\n      file: {}\n    clientKey:\n      file: {}\n",
            path(&ca.cert.cert_path),
            path(&v1.cert_path),
            path(&v1.key_path)
        )),
    );
    assert_eq!(violations_of(&good), vec![]);

    // What Envoy refuses too: a PEM block that holds no certificate.
    let broken = write(
        dir,
        "broken-der.yaml",
        &service_with_tls(
            "    caCert:\n      inlineString: |\n        -----BEGIN CERTIFICATE-----\n        AAAA\n        -----END CERTIFICATE-----\n",
        ),
    );
    let found = violations_of(&broken);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].0, "networking.tls.caCert");
    assert!(
        found[0]
            .1
            .starts_with("certificate 1 does not parse as X.509: "),
        "{found:?}"
    );
}

#[test]
fn what_generate_cannot_build_validate_names_first_in_the_same_words() {
    // Kuma takes one service on an IP address and a host name; one Envoy cluster cannot.
    let file = fixture("kuma-valid.yaml");
    let validated = extsvc(&["validate", &file]);
    assert_eq!(validated.code, Some(0), "{validated:?}");
    let heading = format!("{file}: ExternalService \"es-domain\" (mesh \"default\")");
    let words = "networking.address: ExternalService \"es-ipv4\" has the same kuma.io/service \
                 \"backend\" with an IP address: one Envoy cluster cannot mix IP addresses and \
                 host names (line 24, column 3)";
    assert!(
        validated.stderr.contains(&format!(
            "extsvc: warning: generate refuses {heading}: {words}\n"
        )),
        "{validated:?}"
    );
    let wasm = support::wasm_module();
    let generated = extsvc(&["generate", "--wasm", wasm.to_str().unwrap(), &file]);
    assert_eq!(generated.code, Some(1), "{generated:?}");
    assert!(
        generated
            .stderr
            .contains(&format!("{heading}: 1 violation\n  {words}\n")),
        "{generated:?}"
    );
}

/// Both ways in serve MeshPassthrough: `validate` takes it without a word, plain `generate`
/// puts it in the filter's configuration, `generate --transparent-proxy` in the capture
/// listener's filter chains.
#[test]
fn a_mesh_passthrough_is_served_by_the_proxy_port_and_the_transparent_proxy() {
    let d = test_dir();
    let file = write(
        d.path(),
        "mpt.yaml",
        "type: MeshPassthrough\nname: allow-google\nmesh: default\nspec:\n  targetRef: {kind: Mesh}\n  default:\n    passthroughMode: Matched\n    appendMatch:\n    - {type: Domain, value: '*.googleapis.com', port: 443, protocol: tls}\n",
    );
    let validated = extsvc(&["validate", &file]);
    assert_eq!(validated.code, Some(0), "Kuma takes it: {validated:?}");
    assert!(!validated.stderr.contains("warning"), "{validated:?}");
    let out = d.path().join("envoy.yaml");
    let wasm = support::wasm_module();
    let generate = |extra: &[&str]| {
        let mut args = vec!["generate", "--wasm", wasm.to_str().unwrap(), &file];
        args.extend(extra);
        args.extend(["-o", out.to_str().unwrap()]);
        extsvc(&args)
    };
    let transparent = generate(&["--transparent-proxy"]);
    assert_eq!(transparent.code, Some(0), "{transparent:?}");
    let written = std::fs::read_to_string(&out).unwrap();
    assert!(
        written.contains("server_names:\n") && written.contains("- '*.googleapis.com'"),
        "the capture listener lacks the SNI match: {written}"
    );
    let served = generate(&[]);
    assert_eq!(served.code, Some(0), "{served:?}");
    let written = std::fs::read_to_string(&out).unwrap();
    assert!(
        written.contains("MeshPassthrough") && written.contains("*.googleapis.com"),
        "the filter's configuration lacks the MeshPassthrough: {written}"
    );
}

/// A MeshPassthrough that selects Dataplanes does not apply to the proxy port, which is
/// none: `validate` and `generate` say so.
#[test]
fn a_mesh_passthrough_for_dataplanes_is_warned_about() {
    let d = test_dir();
    let file = write(
        d.path(),
        "mpt.yaml",
        "type: MeshPassthrough\nname: subset\nmesh: default\nspec:\n  targetRef: {kind: MeshSubset, tags: {app: web}}\n  default:\n    passthroughMode: All\n",
    );
    let warning = "MeshPassthrough \"subset\" targets MeshSubset, which selects Dataplanes: this Envoy is none (its proxy port nor its transparent proxy) and applies only MeshPassthroughs that target the whole Mesh, so it ignores this one";
    let validated = extsvc(&["validate", &file]);
    assert_eq!(validated.code, Some(0), "{validated:?}");
    assert!(
        validated.stderr.contains(warning) || validated.stdout.contains(warning),
        "{validated:?}"
    );
    let wasm = support::wasm_module();
    let out = d.path().join("envoy.yaml");
    let generated = extsvc(&[
        "generate",
        "--wasm",
        wasm.to_str().unwrap(),
        &file,
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(generated.code, Some(0), "{generated:?}");
    assert!(generated.stderr.contains(warning), "{generated:?}");
}

const PERMISSIONS_WORLD: &str = "type: Mesh\nname: default\nmtls:\n  enabledBackend: ca-1\n  backends:\n  - {name: ca-1, type: builtin}\n---\ntype: ExternalService\nname: httpbin\nmesh: default\ntags: {kuma.io/service: httpbin, kuma.io/protocol: http}\nnetworking: {address: httpbin.org:443}\n---\ntype: Dataplane\nname: web-01\nmesh: default\nnetworking:\n  address: 10.0.0.1\n  inbound:\n  - {port: 8080, tags: {kuma.io/service: web, version: v1}}\n---\ntype: Dataplane\nname: batch-01\nmesh: default\nnetworking:\n  address: 10.0.0.2\n  inbound:\n  - {port: 8080, tags: {kuma.io/service: batch}}\n---\ntype: MeshTrafficPermission\nname: allow-web\nmesh: default\nspec:\n  targetRef: {kind: MeshService, name: httpbin}\n  from:\n  - targetRef: {kind: MeshSubset, tags: {kuma.io/service: web}}\n    default: {action: Allow}\n";

/// `--format json` shows, per service, each Dataplane's verdict with the policy that
/// decides, and the grants the egress enforces, first match first.
#[test]
fn permissions_show_who_may_reach_each_service_and_which_policy_decides() {
    let d = test_dir();
    let file = write(d.path(), "world.yaml", PERMISSIONS_WORLD);
    let run = extsvc(&["validate", "--format", "json", &file]);
    assert_eq!(run.code, Some(0), "{run:?}");
    let report: Value = serde_json::from_str(&run.stdout).unwrap();
    let allow_web = serde_json::json!({"kind": "MeshTrafficPermission", "name": "allow-web"});
    assert_eq!(
        report["permissions"],
        serde_json::json!([{
            "mesh": "default",
            "enforced": true,
            "services": [{
                "kind": "ExternalService",
                "name": "httpbin",
                "sources": [
                    {"dataplane": "web-01", "service": "web", "action": "Allow", "decided_by": allow_web},
                    {"dataplane": "batch-01", "service": "batch", "action": "Deny", "decided_by": null},
                ],
                "grants": [
                    {"who": {"Tags": {"kuma.io/service": "web"}}, "action": "Allow", "decided_by": allow_web},
                    {"who": "AnyMeshIdentity", "action": "Deny", "decided_by": null},
                ],
            }],
        }])
    );
    assert_eq!(report["warnings"], serde_json::json!([]));
}

/// Text: one line per service, after the resources.
#[test]
fn permissions_are_one_line_per_service_in_text() {
    let d = test_dir();
    let file = write(d.path(), "world.yaml", PERMISSIONS_WORLD);
    let run = extsvc(&["validate", &file]);
    assert_eq!(run.code, Some(0), "{run:?}");
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(
        lines.last().copied(),
        Some("permissions: ExternalService \"httpbin\" (mesh \"default\"): sources: web-01 (web) Allow by MeshTrafficPermission \"allow-web\"; batch-01 (batch) Deny, no rule allows it"),
        "{}",
        run.stdout
    );
    assert_eq!(lines.len(), 6, "{}", run.stdout);
}

/// Permissions in a mesh without mTLS are not enforced, as in Kuma: every source is let
/// through, by the Mesh, and a warning says why.
#[test]
fn permissions_without_mtls_are_not_enforced_and_a_warning_says_so() {
    let d = test_dir();
    let without = PERMISSIONS_WORLD.replace(
        "mtls:\n  enabledBackend: ca-1\n  backends:\n  - {name: ca-1, type: builtin}\n",
        "",
    );
    let file = write(d.path(), "world.yaml", &without);
    let run = extsvc(&["validate", "--format", "json", &file]);
    assert_eq!(run.code, Some(0), "{run:?}");
    let report: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(report["permissions"][0]["enforced"], false);
    let mesh = serde_json::json!({"kind": "Mesh", "name": "default"});
    for source in report["permissions"][0]["services"][0]["sources"]
        .as_array()
        .unwrap()
    {
        assert_eq!(
            (&source["action"], &source["decided_by"]),
            (&"Allow".into(), &mesh)
        );
    }
    assert_eq!(
        report["warnings"],
        serde_json::json!(["mesh \"default\" has no mTLS (its Mesh sets no mtls.enabledBackend), so MeshTrafficPermission \"allow-web\" is not enforced and every source may reach every service: Mutual TLS has to be enabled to make MeshTrafficPermission work"])
    );
}

/// With no Dataplane in the files, the text line of a service is its grants, first match
/// first: tags, a SPIFFE prefix, everyone; a Dataplane without `kuma.io/service` is named as
/// such.
#[test]
fn permissions_without_dataplanes_show_the_grants_in_text() {
    use external_service_model::traffic_permission::sni;
    let d = test_dir();
    let aurora_sni = sni::mesh_external_service("aurora", "default", 5432);
    let mes = |name: &str| {
        format!("type: MeshExternalService\nname: {name}\nmesh: default\nspec:\n  match: {{type: HostnameGenerator, port: 5432, protocol: tcp}}\n  endpoints:\n  - {{address: {name}.example, port: 5432}}\n")
    };
    let rules = format!("type: MeshTrafficPermission\nname: rules\nmesh: default\nspec:\n  rules:\n  - default:\n      allow:\n      - spiffeID: {{type: Prefix, value: 'spiffe://default/web'}}\n        sni: {{type: Exact, value: {aurora_sni}}}\n");
    let world = [
        PERMISSIONS_WORLD
            .split("---\ntype: Dataplane")
            .next()
            .unwrap(),
        "---\n",
        PERMISSIONS_WORLD.split("---\n").last().unwrap(),
        "---\n",
        &mes("aurora"),
        "---\n",
        &mes("plain"),
        "---\n",
        &rules,
    ]
    .concat();
    let file = write(d.path(), "world.yaml", &world);
    let run = extsvc(&["validate", &file]);
    assert_eq!(run.code, Some(0), "{run:?}");
    let lines: Vec<&str> = run
        .stdout
        .lines()
        .filter(|l| l.starts_with("permissions:"))
        .collect();
    assert_eq!(
        lines,
        [
            "permissions: ExternalService \"httpbin\" (mesh \"default\"): no Dataplane in the files; the egress grants: kuma.io/service=web Allow by MeshTrafficPermission \"allow-web\"; everyone Deny, no rule allows it",
            "permissions: MeshExternalService \"aurora\" (mesh \"default\"): no Dataplane in the files; the egress grants: spiffe://default/web* Allow by MeshTrafficPermission \"rules\"; everyone Deny, no rule allows it",
            "permissions: MeshExternalService \"plain\" (mesh \"default\"): no Dataplane in the files; the egress grants: everyone Allow, Kuma's default",
        ],
        "{}",
        run.stdout
    );
    let probe = "---\ntype: Dataplane\nname: probe\nmesh: default\nnetworking:\n  address: 10.0.0.3\n  inbound:\n  - {port: 8080, tags: {app: probe}}\n";
    let file = write(d.path(), "world.yaml", &format!("{world}{probe}"));
    let run = extsvc(&["validate", &file]);
    assert!(
        run.stdout.contains("permissions: MeshExternalService \"plain\" (mesh \"default\"): sources: probe (no kuma.io/service) Allow, Kuma's default\n"),
        "{}",
        run.stdout
    );
}
