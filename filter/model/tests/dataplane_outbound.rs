//! Dataplane outbounds by backendRef (MADR-052): Kuma 2.9's checks with its words
//! (`pkg/core/resources/apis/mesh/dataplane_validator.go`), and the MeshExternalService an
//! outbound names must be there, as the ExternalService a tag names must be.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use serde_json::{json, Value};

/// `(field, message)` pairs of each document.
fn violations(docs: Vec<Value>) -> Vec<Vec<(String, String)>> {
    support::violations_of_each(docs)
}

use support::pairs;

fn dataplane(outbounds: Value) -> Value {
    json!({ "type": "Dataplane", "name": "dp-1", "mesh": "default",
            "networking": { "address": "127.0.0.1", "outbound": outbounds } })
}

fn mes(name: &str, labels: Value) -> Value {
    json!({ "type": "MeshExternalService", "name": name, "mesh": "default", "labels": labels,
            "spec": { "match": { "port": 443, "protocol": "http" },
                      "endpoints": [{ "address": "api.example.com", "port": 443 }] } })
}

/// The Dataplane's violations beside MeshExternalServices `ext-svc` (labels `team: a`) and
/// `other` (`team: a`, `tier: 1`).
fn outbound_violations(outbounds: Value) -> Vec<(String, String)> {
    let mut all = violations(vec![
        mes("ext-svc", json!({ "team": "a" })),
        mes("other", json!({ "team": "a", "tier": "1" })),
        dataplane(outbounds),
    ]);
    assert!(all[0].is_empty() && all[1].is_empty(), "{all:?}");
    all.remove(2)
}

#[test]
fn an_outbound_by_name_or_by_labels_of_one_mesh_external_service_is_valid() {
    assert_eq!(
        outbound_violations(json!([
            { "port": 54321, "backendRef": { "kind": "MeshExternalService", "name": "ext-svc" } },
            { "port": 54322, "address": "127.0.0.2",
              "backendRef": { "kind": "MeshExternalService", "labels": { "tier": "1" } } },
        ])),
        pairs(&[])
    );
}

/// Kuma's `dataplane with empty backend ref` case, word for word.
#[test]
fn kumas_checks_of_an_empty_backend_ref() {
    assert_eq!(
        outbound_violations(json!([{ "port": 3333, "backendRef": {} }])),
        pairs(&[
            (
                "networking.outbound[0].backendRef.kind",
                "invalid value. Available values are: MeshExternalService,MeshMultiZoneService,MeshService"
            ),
            (
                "networking.outbound[0].backendRef",
                "either 'name' or 'labels' should be specified"
            ),
            (
                "networking.outbound[0].backendRef.port",
                "port must be in the range [1, 65535]"
            ),
        ])
    );
}

#[test]
fn the_port_is_checked_except_for_a_mesh_external_service_and_tags_clash() {
    assert_eq!(
        outbound_violations(json!([
            // Kuma takes a MeshExternalService's port from the resource: 0 is fine.
            { "port": 3333, "backendRef": { "kind": "MeshExternalService", "name": "ext-svc", "port": 0 } },
            { "port": 3334, "tags": { "kuma.io/service": "xyz" },
              "backendRef": { "kind": "MeshService", "name": "xyz", "port": 70000 } },
        ])),
        pairs(&[
            (
                "networking.outbound[1].backendRef.port",
                "port must be in the range [1, 65535]"
            ),
            (
                "networking.outbound[1].backendRef",
                "both backendRef and tags/service cannot be defined"
            ),
            (
                "networking.outbound[1].backendRef.kind",
                "kind \"MeshService\" is not supported: extsvc serves external services only (a \
                 MeshExternalService by backendRef, an ExternalService by kuma.io/service)"
            ),
        ])
    );
}

#[test]
fn an_outbound_must_select_exactly_one_mesh_external_service_of_its_mesh() {
    assert_eq!(
        outbound_violations(json!([
            { "port": 1, "backendRef": { "kind": "MeshExternalService", "name": "missing" } },
            { "port": 2, "backendRef": { "kind": "MeshExternalService", "labels": { "team": "b" } } },
            { "port": 3, "backendRef": { "kind": "MeshExternalService", "labels": { "team": "a" } } },
            // Labels win over the name, as Kuma resolves them first.
            { "port": 4, "backendRef": { "kind": "MeshExternalService", "name": "ext-svc",
                                         "labels": { "team": "b" } } },
        ])),
        pairs(&[
            (
                "networking.outbound[0].backendRef",
                "no MeshExternalService in mesh \"default\" named \"missing\""
            ),
            (
                "networking.outbound[1].backendRef",
                "no MeshExternalService in mesh \"default\" with labels {team: b}"
            ),
            (
                "networking.outbound[2].backendRef.labels",
                "2 MeshExternalServices in mesh \"default\" are with labels {team: a} (ext-svc, \
                 other): Kuma takes the oldest, which files do not tell; select one"
            ),
            (
                "networking.outbound[3].backendRef",
                "no MeshExternalService in mesh \"default\" with labels {team: b}"
            ),
        ])
    );
}

#[test]
fn a_mesh_external_service_of_another_mesh_is_not_found() {
    let mut other_mesh = mes("ext-svc", json!({}));
    other_mesh["mesh"] = json!("other");
    let all = violations(vec![
        other_mesh,
        dataplane(json!([
            { "port": 1, "backendRef": { "kind": "MeshExternalService", "name": "ext-svc" } },
        ])),
    ]);
    assert_eq!(
        all[1],
        pairs(&[(
            "networking.outbound[0].backendRef",
            "no MeshExternalService in mesh \"default\" named \"ext-svc\""
        )])
    );
}

#[test]
fn unknown_backend_ref_fields_are_named() {
    let all = outbound_violations(json!([
        { "port": 1, "backendRef": { "kind": "MeshExternalService", "name": "ext-svc", "nmae": "x" } },
    ]));
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!(
        all[0].0, "networking.outbound[0].backendRef.nmae",
        "{all:?}"
    );
}
