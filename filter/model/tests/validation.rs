//! Reading and validating resources: both forms, unknown fields, Kuma's rules with Kuma's
//! messages, and this project's stricter checks. That nothing panics on any input is a fuzz
//! check (filter/conformance/src/checks.rs), run as a property test in filter/conformance.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use external_service_model::config::{check, Checked};
use external_service_model::Origin;
use serde_json::{json, Value};

fn check_all(docs: Vec<Value>) -> Checked {
    check(Origin::in_file("test.json", docs), None)
}

/// `(field, message)` pairs of each document.
fn violations(docs: Vec<Value>) -> Vec<Vec<(String, String)>> {
    support::violations_of_each(docs)
}

fn one(doc: Value) -> Vec<(String, String)> {
    violations(vec![doc]).remove(0)
}

use support::pairs;

fn es(address: Value, tags: Value) -> Value {
    json!({ "type": "ExternalService", "name": "es-1", "mesh": "default",
            "networking": { "address": address }, "tags": tags })
}

fn backend() -> Value {
    json!({ "kuma.io/service": "backend", "version": "1" })
}

#[test]
fn kuma_valid_examples() {
    for address in [
        "192.168.0.1:8080",
        "example.com:8080",
        "[fd00:a123::1]:8080",
    ] {
        assert_eq!(one(es(json!(address), backend())), vec![], "{address}");
    }
    let tags =
        json!({ "kuma.io/service": "backend", "kuma.io/valid": "abc.0123-789.under_score:90" });
    assert_eq!(one(es(json!("192.168.0.1:8080"), tags)), vec![]);
}

#[test]
fn kuma_address_rules() {
    let all_four = pairs(&[
        ("networking.address", "unable to parse address"),
        (
            "networking.address",
            "address has to be a valid IP address or a domain name",
        ),
        ("networking.address", "unable to parse port in address"),
        ("networking.address", "port must be in the range [1, 65535]"),
    ]);
    let cases = [
        (
            json!(null),
            pairs(&[("networking.address", "address can't be empty")]),
        ),
        (
            json!(""),
            pairs(&[("networking.address", "address can't be empty")]),
        ),
        (
            json!("..>_<..:8080"),
            pairs(&[(
                "networking.address",
                "address has to be a valid IP address or a domain name",
            )]),
        ),
        (json!("http://example.com:8080"), all_four.clone()),
        (json!("fd00:1234::1:8080"), all_four),
        (
            json!("192.168.0.1:65536"),
            pairs(&[("networking.address", "port must be in the range [1, 65535]")]),
        ),
    ];
    for (address, want) in cases {
        assert_eq!(one(es(address.clone(), backend())), want, "{address}");
    }
    let no_networking = json!({ "type": "ExternalService", "name": "x", "tags": backend() });
    assert_eq!(
        one(no_networking),
        pairs(&[("networking", "should have networking")])
    );
}

#[test]
fn kuma_tag_rules() {
    let address = json!("192.168.0.1:8080");
    let cases = [
        (json!({ "version": "1" }), pairs(&[("tags", "mandatory tag \"kuma.io/service\" is missing")])),
        (
            json!({ "kuma.io/service": "backend", "version": null }),
            pairs(&[("tags[\"version\"]", "tag value must be non-empty")]),
        ),
        (
            json!({ "kuma.io/service": "backend", "kuma.io/protocol": null }),
            pairs(&[
                (
                    "tags[\"kuma.io/protocol\"]",
                    "tag \"kuma.io/protocol\" has an invalid value \"\". Allowed values: grpc, http, http2, kafka, tcp",
                ),
                ("tags[\"kuma.io/protocol\"]", "tag value must be non-empty"),
            ]),
        ),
        (
            json!({ "kuma.io/service": "backend", "kuma.io/protocol": "not-yet-supported-protocol" }),
            pairs(&[(
                "tags[\"kuma.io/protocol\"]",
                "tag \"kuma.io/protocol\" has an invalid value \"not-yet-supported-protocol\". Allowed values: grpc, http, http2, kafka, tcp",
            )]),
        ),
        (
            json!({ "kuma.io/service": "backend", "version": "v1", "inv@lidT/gN%me": "value" }),
            pairs(&[(
                "tags[\"inv@lidT/gN%me\"]",
                "tag name must consist of alphanumeric characters, dots, dashes, slashes and underscores",
            )]),
        ),
        (
            json!({ "kuma.io/service": "backend", "version": "v1", "invalidTagValue": "inv@lid+t@g" }),
            pairs(&[(
                "tags[\"invalidTagValue\"]",
                "tag value must consist of alphanumeric characters, dots, dashes and underscores",
            )]),
        ),
    ];
    for (tags, want) in cases {
        assert_eq!(one(es(address.clone(), tags.clone())), want, "{tags}");
    }
    let same = es(
        json!("example.com:443"),
        json!({ "kuma.io/service": "example.com" }),
    );
    assert_eq!(
        one(same.clone()),
        pairs(&[(
            "tags[\"kuma.io/service\"]",
            "cannot be the same as networking.address"
        )])
    );
    // Kuma's words, then a line naming forms that work.
    let found = check_all(vec![same]).reports.remove(0).violations.remove(0);
    assert_eq!(
        found.hint.as_deref(),
        Some("name the service another way, such as kuma.io/service: example_com or example")
    );
    assert_eq!(
        found.to_string(),
        "tags[\"kuma.io/service\"]: cannot be the same as networking.address\n    \
         hint: name the service another way, such as kuma.io/service: example_com or example"
    );
}

fn with_tls(tls: Value) -> Value {
    let mut doc = es(json!("192.168.0.1:8080"), backend());
    doc["networking"]["tls"] = tls;
    doc
}

#[test]
fn kuma_tls_rules() {
    assert_eq!(
        one(with_tls(json!({ "serverName": "" }))),
        pairs(&[("networking.tls.serverName", "cannot be empty")])
    );
    assert_eq!(
        one(with_tls(
            json!({ "enabled": true, "caCert": { "inline": "" },
            "clientCert": { "inlineString": "" }, "clientKey": { "secret": "" } })
        )),
        pairs(&[
            ("networking.tls.caCert", "data source cannot be empty"),
            ("networking.tls.clientCert", "data source cannot be empty"),
            ("networking.tls.clientKey", "data source cannot be empty"),
        ])
    );
}

#[test]
fn stricter_than_kuma() {
    // A client certificate without its key, or the reverse.
    assert_eq!(
        one(with_tls(json!({ "clientCert": { "file": "/c.pem" } }))),
        pairs(&[(
            "networking.tls.clientKey",
            "clientCert is set without clientKey: mTLS needs both"
        )])
    );
    assert_eq!(
        one(with_tls(json!({ "clientKey": { "file": "/k.pem" } }))),
        pairs(&[(
            "networking.tls.clientCert",
            "clientKey is set without clientCert: mTLS needs both"
        )])
    );
    // Two ways to give the same bytes.
    assert_eq!(
        one(with_tls(
            json!({ "caCert": { "file": "/a", "inlineString": "b" } })
        )),
        pairs(&[(
            "networking.tls.caCert",
            "data source must set exactly one of inline, inlineString, secret, file"
        )])
    );
    let bad_base64 = one(with_tls(json!({ "caCert": { "inline": "%%%" } })));
    assert_eq!(bad_base64.len(), 1);
    assert_eq!(bad_base64[0].0, "networking.tls.caCert.inline");
}

#[test]
fn secrets_are_looked_up_in_the_same_mesh() {
    let user = |mesh: &str| {
        let mut doc = with_tls(json!({ "caCert": { "secret": "ca" } }));
        doc["mesh"] = json!(mesh);
        doc
    };
    let secret = json!({ "type": "Secret", "name": "ca", "mesh": "other", "data": "Y2E=" });
    let found = violations(vec![user("default"), secret.clone(), user("other")]);
    assert_eq!(
        found[0],
        pairs(&[(
            "networking.tls.caCert",
            "secret \"ca\" not found in mesh \"default\""
        )])
    );
    assert_eq!(found[1], vec![]);
    assert_eq!(found[2], vec![]);
}

#[test]
fn two_services_on_one_address() {
    let a = es(
        json!("api.example.com:443"),
        json!({ "kuma.io/service": "a" }),
    );
    let mut b = es(
        json!("API.example.com.:443"),
        json!({ "kuma.io/service": "b" }),
    );
    b["name"] = json!("es-2");
    let found = violations(vec![a.clone(), b.clone()]);
    let also = |es: &str, service: &str| {
        let message = format!(
            "api.example.com:443 is also the address of ExternalService {es:?} (kuma.io/service {service:?}): its real name would be ambiguous; give both the same kuma.io/service or set disableHostDNSEntry on one"
        );
        vec![("networking.address".to_string(), message)]
    };
    assert_eq!(found, vec![also("es-2", "b"), also("es-1", "a")]);
    // Giving up the real name on one of them settles it; other meshes never mix.
    let mut hidden = b.clone();
    hidden["networking"]["disableHostDNSEntry"] = json!(true);
    assert_eq!(violations(vec![a.clone(), hidden]), vec![vec![], vec![]]);
    let mut elsewhere = b;
    elsewhere["mesh"] = json!("other");
    assert_eq!(violations(vec![a, elsewhere]), vec![vec![], vec![]]);
}

#[test]
fn both_forms_read_the_same() {
    let universal = json!({
        "type": "ExternalService", "mesh": "default", "name": "httpbin",
        "tags": { "kuma.io/service": "httpbin", "kuma.io/protocol": "http" },
        "networking": { "address": "httpbin.org:443", "tls": { "enabled": true } }
    });
    let kubernetes = json!({
        "apiVersion": "kuma.io/v1alpha1", "kind": "ExternalService", "mesh": "default",
        "metadata": { "namespace": "default", "name": "httpbin" },
        "spec": {
            "tags": { "kuma.io/service": "httpbin", "kuma.io/protocol": "http" },
            "networking": { "address": "httpbin.org:443", "tls": { "enabled": true } }
        }
    });
    let a = check_all(vec![universal]);
    let b = check_all(vec![kubernetes]);
    assert!(a.is_valid() && b.is_valid());
    assert_eq!(a.resources[0].spec, b.resources[0].spec);
    assert_eq!(
        (a.resources[0].name.as_str(), a.resources[0].mesh.as_str()),
        ("httpbin", "default")
    );
    assert_eq!(
        (b.resources[0].name.as_str(), b.resources[0].mesh.as_str()),
        ("httpbin", "default")
    );
    // And the Universal form written back reads the same again.
    let again = check_all(vec![a.resources[0].to_universal()]);
    assert_eq!(again.resources[0], a.resources[0].clone());
}

#[test]
fn kubernetes_mesh_and_secret() {
    let checked = check_all(vec![
        json!({ "apiVersion": "kuma.io/v1alpha1", "kind": "Mesh", "metadata": { "name": "demo" },
                "spec": { "networking": { "outbound": { "passthrough": false } } } }),
        json!({ "apiVersion": "v1", "kind": "Secret", "type": "system.kuma.io/secret",
                "metadata": { "name": "ca", "namespace": "kuma-system", "labels": { "kuma.io/mesh": "demo" } },
                "data": { "value": "Y2E=" } }),
    ]);
    assert!(checked.is_valid(), "{:?}", checked.reports);
    assert_eq!(checked.resources[0].mesh, "demo");
    assert_eq!(checked.resources[1].mesh, "demo");
}

#[test]
fn mesh_defaults_to_default() {
    let checked = check_all(vec![json!({ "type": "ExternalService", "name": "x",
        "tags": { "kuma.io/service": "x" }, "networking": { "address": "x.example:1" } })]);
    assert_eq!(checked.resources[0].mesh, "default");
}

#[test]
fn every_unknown_field_is_named_in_one_run() {
    let mut doc = es(json!("a.example:443"), backend());
    doc["tag"] = json!({});
    doc["networking"]["adress"] = json!("b.example:443");
    doc["networking"]["tls"] = json!({ "enabeld": true, "serverName": 7 });
    // In the order serde meets the fields, which is the map's order: compared sorted.
    let mut found = one(doc);
    found.sort();
    assert_eq!(
        found,
        pairs(&[
            ("networking.adress", "unknown field `adress`, expected one of `address`, `disableHostDNSEntry`, `tls`"),
            ("networking.tls.enabeld", "unknown field `enabeld`, expected one of `enabled`, `caCert`, `clientCert`, `clientKey`, `serverName`, `allowRenegotiation`, `skipHostnameVerification`"),
            ("networking.tls.serverName", "invalid type: integer `7`, expected a string"),
            ("tag", "unknown field `tag`, expected `tags` or `networking`"),
        ])
    );
}

#[test]
fn every_wrong_type_is_named_in_one_run() {
    let mut doc = es(json!(443), backend());
    doc["networking"]["tls"] = json!({ "enabled": "yes" });
    let mut found = one(doc);
    found.sort();
    assert_eq!(
        found,
        pairs(&[
            (
                "networking.address",
                "invalid type: integer `443`, expected a string"
            ),
            (
                "networking.tls.enabled",
                "invalid type: string \"yes\", expected a boolean"
            ),
        ])
    );
}

#[test]
fn unknown_fields_are_named() {
    let mut doc = es(json!("a.example:443"), backend());
    doc["networking"]["adress"] = json!("b.example:443");
    assert_eq!(
        one(doc),
        pairs(&[(
            "networking.adress",
            "unknown field `adress`, expected one of `address`, `disableHostDNSEntry`, `tls`"
        )])
    );

    let mut top = es(json!("a.example:443"), backend());
    top["tag"] = json!({});
    assert_eq!(one(top)[0].0, "tag");

    let kube = json!({ "apiVersion": "kuma.io/v1alpha1", "kind": "ExternalService", "metadata": { "name": "x" },
        "spec": { "networking": { "address": "a.example:1", "tls": { "enabeld": true } }, "tags": backend() } });
    assert_eq!(one(kube)[0].0, "spec.networking.tls.enabeld");

    let kind = json!({ "type": "TrafficRoute", "name": "x" });
    assert_eq!(one(kind), pairs(&[(
            "type",
            "unsupported resource \"TrafficRoute\": extsvc reads ExternalService, Mesh, Secret, Dataplane, MeshExternalService, HostnameGenerator, MeshPassthrough, ZoneEgress, MeshTrafficPermission, TrafficPermission, MeshTimeout, MeshRetry, MeshCircuitBreaker, MeshHealthCheck, MeshFaultInjection and MeshRateLimit"
        )]));
}

#[test]
fn reports_keep_document_order_and_identity() {
    let checked = check_all(vec![
        es(json!("a.example:1"), backend()),
        json!({ "type": "Nope" }),
        json!({ "type": "Mesh", "name": "default" }),
    ]);
    let ids: Vec<_> = checked
        .reports
        .iter()
        .map(|r| {
            (
                r.kind.as_str(),
                r.name.as_str(),
                r.mesh.as_str(),
                r.violations.is_empty(),
            )
        })
        .collect();
    assert_eq!(
        ids,
        [
            ("ExternalService", "es-1", "default", true),
            ("Nope", "", "default", false),
            ("Mesh", "default", "default", true)
        ]
    );
}

/// The messages of a `tags` map that does not read, and the values it tolerates: the spec is
/// read in one path-tracking pass and the tags straight into their map, messages unchanged.
#[test]
fn tags_that_do_not_read() {
    let cases = [
        (
            json!(5),
            "tags",
            "invalid type: integer `5`, expected a map",
        ),
        (
            json!(["a"]),
            "tags",
            "invalid type: sequence, expected a map",
        ),
        (
            json!({ "kuma.io/service": "backend", "version": 5 }),
            "tags.version",
            "invalid type: integer `5`, expected a string",
        ),
        (
            json!({ "kuma.io/service": ["backend"] }),
            "tags.kuma.io/service",
            "invalid type: sequence, expected a string",
        ),
    ];
    for (tags, field, message) in cases {
        assert_eq!(
            one(es(json!("example.com:443"), tags.clone())),
            pairs(&[(field, message)]),
            "{tags}"
        );
    }
    // No tags at all, or `tags:` with nothing: only the missing service tag.
    for tags in [json!(null), json!({})] {
        assert_eq!(
            one(es(json!("example.com:443"), tags)),
            pairs(&[("tags", "mandatory tag \"kuma.io/service\" is missing")])
        );
    }
    // A tag type error and an unknown field are both reported, in one run.
    let mut doc = es(json!("example.com:443"), json!({ "kuma.io/service": 1 }));
    doc["colour"] = json!("red");
    let got = one(doc);
    assert_eq!(
        got,
        pairs(&[
            (
                "colour",
                "unknown field `colour`, expected `tags` or `networking`"
            ),
            (
                "tags.kuma.io/service",
                "invalid type: integer `1`, expected a string"
            ),
        ])
    );
}

/// Traffic policies are recognised in both forms and kept as written; their rules are
/// `extsvc`'s (envoy-configs/src/policy), and the filter's catalog ignores them.
#[test]
fn policy_kinds_are_read_and_handed_through_untouched() {
    use external_service_model::resource::{Kind, Spec};
    let spec = json!({ "to": [{ "targetRef": { "kind": "Mesh" }, "default": { "bogus": 1 } }] });
    let universal = json!({ "type": "MeshTimeout", "name": "t", "mesh": "default", "spec": spec });
    let kubernetes = json!({
        "apiVersion": "kuma.io/v1alpha1", "kind": "MeshRetry",
        "metadata": { "name": "r", "namespace": "kuma-system", "labels": { "kuma.io/mesh": "m2" } },
        "spec": spec,
    });
    let service = es(json!("a.test:80"), backend());
    let checked = check_all(vec![universal.clone(), kubernetes, service]);
    assert!(checked.is_valid(), "{:?}", checked.reports);
    let kinds: Vec<(Kind, &str, &Value)> = checked
        .resources
        .iter()
        .filter_map(|r| match &r.spec {
            Spec::Policy { kind, spec } => Some((*kind, r.mesh.as_str(), spec)),
            _ => None,
        })
        .collect();
    assert_eq!(
        kinds,
        [
            (Kind::MeshTimeout, "default", &spec),
            (Kind::MeshRetry, "m2", &spec)
        ]
    );
    assert_eq!(checked.resources[0].to_universal(), universal);
    let catalog = external_service_model::Catalog::build(&checked.resources, "default");
    assert_eq!(catalog.services.len(), 1);
    // A Universal policy holds nothing beside its spec.
    assert_eq!(
        one(json!({ "type": "MeshRetry", "name": "r", "mesh": "default", "spec": {}, "to": [] })),
        pairs(&[(
            "to",
            "unknown field `to`, expected one of `type`, `name`, `mesh`, `labels`, `spec`"
        )])
    );
}

fn mesh_with(mtls: Value, routing: Value) -> Value {
    json!({ "type": "Mesh", "name": "default", "mtls": mtls, "routing": routing })
}

/// Kuma's Mesh validator cases for `mtls` (its `mesh_validator_test.go`, 2.9 to 2.14).
#[test]
fn kuma_mesh_mtls_rules() {
    let provided = |name: &str| {
        json!({ "name": name, "type": "provided",
        "conf": { "cert": { "file": "/ca.pem" }, "key": { "file": "/ca.key" } } })
    };
    assert_eq!(
        one(mesh_with(
            json!({ "enabledBackend": "ca-1", "backends": [provided("ca-1")] }),
            json!({ "zoneEgress": true })
        )),
        vec![]
    );
    assert_eq!(
        one(mesh_with(
            json!({ "enabledBackend": "backend-1", "backends": [provided("backend-1"), provided("backend-1")] }),
            json!(null)
        )),
        pairs(&[
            ("mtls.backends", "cannot have more than 1 backends"),
            (
                "mtls.backends[1].name",
                "\"backend-1\" name is already used for another backend"
            ),
        ])
    );
    assert_eq!(
        one(mesh_with(
            json!({ "enabledBackend": "backend-2", "backends": [provided("backend-1")] }),
            json!(null)
        )),
        pairs(&[(
            "mtls.enabledBackend",
            "has to be set to one of the backends in the mesh"
        )])
    );
    assert_eq!(
        one(mesh_with(
            json!({ "enabledBackend": "invalid-backend" }),
            json!(null)
        )),
        pairs(&[(
            "mtls.enabledBackend",
            "has to be set to one of the backends in the mesh"
        )])
    );
    // Kuma's `validateZoneEgress`: an egress routes by SNI over mTLS.
    assert_eq!(
        one(mesh_with(json!(null), json!({ "zoneEgress": true }))),
        pairs(&[("mtls", "has to be set when zoneEgress enabled")])
    );
    assert_eq!(
        one(mesh_with(
            json!({ "backends": [provided("ca-1")] }),
            json!({ "zoneEgress": true, "defaultForbidMeshExternalServiceAccess": true })
        )),
        pairs(&[("mtls", "has to be set when zoneEgress enabled")])
    );
}

#[test]
fn zone_egress_in_both_forms_belongs_to_no_mesh() {
    let universal = json!({ "type": "ZoneEgress", "name": "egress-1",
        "networking": { "address": "192.168.0.1", "port": 10002 } });
    let kubernetes = json!({ "apiVersion": "kuma.io/v1alpha1", "kind": "ZoneEgress",
        "metadata": { "name": "egress-2" },
        "spec": { "zone": "zone-1", "networking": { "address": "egress.example.test", "port": 10002 } } });
    let checked = check_all(vec![universal, kubernetes]);
    assert!(checked.is_valid(), "{:?}", checked.reports);
    for r in &checked.resources {
        assert_eq!(r.mesh, "", "{r:?}");
    }
    assert_eq!(
        one(
            json!({ "type": "ZoneEgress", "name": "e", "mesh": "default",
            "networking": { "address": "0.0.0.0", "port": 0 } })
        ),
        pairs(&[(
            "mesh",
            "a ZoneEgress does not belong to a mesh: it serves every mesh"
        ),])
    );
    assert_eq!(
        one(json!({ "type": "ZoneEgress", "name": "e",
            "networking": { "address": "0.0.0.0", "port": 0 } })),
        pairs(&[
            ("networking.address", "must not be 0.0.0.0 or ::"),
            ("networking.port", "port must be in the range [1, 65535]"),
        ])
    );
    assert_eq!(
        one(json!({ "type": "ZoneEgress", "name": "e",
            "networking": { "address": "not an address!", "port": 70000 } })),
        pairs(&[
            (
                "networking.address",
                "address has to be valid IP address or domain name"
            ),
            ("networking.port", "port must be in the range [1, 65535]"),
        ])
    );
}

#[test]
fn a_zone_egress_does_not_make_a_second_mesh() {
    let docs = vec![
        json!({ "type": "Mesh", "name": "payments" }),
        json!({ "type": "ZoneEgress", "name": "egress-1", "networking": { "address": "10.0.0.9", "port": 10002 } }),
    ];
    let checked = check_all(docs);
    assert_eq!(
        external_service_model::catalog::select_mesh(&checked.resources, None),
        Ok("payments".to_string())
    );
}

#[test]
fn a_dataplanes_inbound_tags_say_who_it_is() {
    let checked = check_all(vec![
        json!({ "type": "Dataplane", "name": "web-1", "mesh": "default",
        "networking": { "address": "10.0.0.2", "inbound": [
            { "port": 8080, "tags": { "kuma.io/service": "web", "team": "shop" } },
            { "port": 8081, "tags": { "kuma.io/service": "web-admin", "version": "2" } } ] } }),
    ]);
    assert!(checked.is_valid(), "{:?}", checked.reports);
    let external_service_model::resource::Spec::Dataplane(dp) = &checked.resources[0].spec else {
        panic!("not a Dataplane");
    };
    let tags = dp.inbound_tags();
    assert_eq!(tags.get("kuma.io/service").map(String::as_str), Some("web"));
    assert_eq!(tags.get("team").map(String::as_str), Some("shop"));
    assert_eq!(tags.get("version").map(String::as_str), Some("2"));
}
