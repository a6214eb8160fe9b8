//! The two forms a resource is written in: Universal (`type:`, `name:`, `mesh:`) and
//! Kubernetes (`apiVersion:`, `kind:`, `metadata.name`, `spec:`). Each document arrives as a
//! generic JSON value (the CLI turns YAML into the same values) and is recognised as one form.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::reader::{typed, typed_at_first_try};
use super::spec::{Kind, Origin, Resource, Spec, DEFAULT_MESH};
use crate::violation::Violation;

const KUMA_API_VERSION: &str = "kuma.io/v1alpha1";
const KUMA_MESH_LABEL: &str = "kuma.io/mesh";

/// What a document that could not be read as a resource still tells about itself.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejected {
    pub origin: Origin,
    pub kind: String,
    pub name: String,
    pub mesh: String,
    pub violations: Vec<Violation>,
}

/// Reads one document (a JSON value) as a resource.
pub fn from_value(value: Value, origin: Origin) -> Result<Resource, Box<Rejected>> {
    let mut doc = match value {
        Value::Object(map) => map,
        other => {
            return Err(reject(
                origin,
                "",
                "",
                "",
                vec![Violation::new(
                    "",
                    format!(
                        "expected a resource (a mapping), found {}",
                        json_type_name(&other)
                    ),
                )],
            ))
        }
    };
    if doc.contains_key("apiVersion") || doc.contains_key("metadata") {
        from_kubernetes(&mut doc, origin)
    } else {
        from_universal(&mut doc, origin)
    }
}

fn from_universal(doc: &mut Map<String, Value>, origin: Origin) -> Result<Resource, Box<Rejected>> {
    let mut violations = Vec::new();
    let type_name = take_string(doc, "type", "type", &mut violations);
    let name = take_string(doc, "name", "name", &mut violations);
    let mesh_field = take_string(doc, "mesh", "mesh", &mut violations);
    let labels = take_labels(doc.remove("labels"), "labels", &mut violations);
    // Kuma's server-side metadata; harmless in a file someone exported.
    for key in ["creationTime", "modificationTime"] {
        doc.remove(key);
    }
    let kind = match type_name.as_deref() {
        None => {
            violations.push(Violation::new(
                "type",
                "missing: every resource needs `type` (ExternalService, Mesh, Secret, Dataplane or a Mesh* policy), or `apiVersion` and `kind`",
            ));
            None
        }
        Some(t) => kind_or_violation(t, "type", &mut violations),
    };
    let name = name.unwrap_or_default();
    if name.is_empty() {
        violations.push(Violation::new("name", "cannot be empty"));
    }
    let mesh = match kind {
        Some(Kind::Mesh) => {
            if mesh_field.is_some() {
                violations.push(Violation::new("mesh", "a Mesh does not belong to a mesh"));
            }
            name.clone()
        }
        Some(Kind::ZoneEgress) => {
            if mesh_field.is_some() {
                violations.push(Violation::new(
                    "mesh",
                    "a ZoneEgress does not belong to a mesh: it serves every mesh",
                ));
            }
            String::new()
        }
        _ => mesh_field.unwrap_or_else(|| DEFAULT_MESH.to_string()),
    };
    let body = Value::Object(std::mem::take(doc));
    finish(
        kind,
        type_name.unwrap_or_default(),
        Identity { name, mesh, labels },
        body,
        "",
        origin,
        violations,
    )
}

fn from_kubernetes(
    doc: &mut Map<String, Value>,
    origin: Origin,
) -> Result<Resource, Box<Rejected>> {
    let mut violations = Vec::new();
    let api_version = take_string(doc, "apiVersion", "apiVersion", &mut violations);
    let kind_name = take_string(doc, "kind", "kind", &mut violations);
    let mesh_field = take_string(doc, "mesh", "mesh", &mut violations);
    let metadata = doc.remove("metadata");
    let (name, labels) = read_metadata(metadata, &mut violations);
    let labels_mesh = labels.get(KUMA_MESH_LABEL).cloned();
    let kind = match kind_name.as_deref() {
        None => {
            violations.push(Violation::new("kind", "missing"));
            None
        }
        Some(k) => kind_or_violation(k, "kind", &mut violations),
    };
    let expected_api = if kind == Some(Kind::Secret) {
        "v1"
    } else {
        KUMA_API_VERSION
    };
    if api_version.as_deref() != Some(expected_api) {
        violations.push(Violation::new(
            "apiVersion",
            format!(
                "must be {expected_api:?} for kind {}",
                kind_name.as_deref().unwrap_or("?")
            ),
        ));
    }
    let mesh = match kind {
        Some(Kind::Mesh) => name.clone(),
        Some(Kind::ZoneEgress) => String::new(),
        _ => mesh_field
            .or(labels_mesh)
            .unwrap_or_else(|| DEFAULT_MESH.to_string()),
    };
    let (body, prefix) = if kind == Some(Kind::Secret) {
        (kubernetes_secret_body(doc, &mut violations), "")
    } else {
        let spec = present(doc.remove("spec")).unwrap_or(Value::Object(Map::new()));
        for key in doc.keys() {
            violations.push(Violation::new(
                key.as_str(),
                format!("unknown field `{key}`, expected one of `apiVersion`, `kind`, `mesh`, `metadata`, `spec`"),
            ));
        }
        (spec, "spec.")
    };
    finish(
        kind,
        kind_name.unwrap_or_default(),
        Identity { name, mesh, labels },
        body,
        prefix,
        origin,
        violations,
    )
}

/// A Kubernetes Secret of type `system.kuma.io/secret` keeps its bytes in `data.value`.
fn kubernetes_secret_body(doc: &mut Map<String, Value>, violations: &mut Vec<Violation>) -> Value {
    match doc.remove("type") {
        Some(Value::String(t)) if t == "system.kuma.io/secret" => {}
        _ => violations.push(Violation::new(
            "type",
            "must be \"system.kuma.io/secret\" for a Kuma secret",
        )),
    }
    let data = match doc.remove("data") {
        Some(Value::Object(mut data)) => {
            let value = data.remove("value");
            for key in data.keys() {
                violations.push(Violation::new(
                    format!("data.{key}"),
                    "unknown key, a Kuma secret keeps its bytes in `data.value`",
                ));
            }
            value.unwrap_or(Value::Null)
        }
        _ => Value::Null,
    };
    for key in doc.keys() {
        violations.push(Violation::new(
            key.as_str(),
            format!("unknown field `{key}`, expected one of `apiVersion`, `kind`, `metadata`, `type`, `data`"),
        ));
    }
    let mut body = Map::new();
    body.insert("data".into(), data);
    Value::Object(body)
}

fn read_metadata(
    metadata: Option<Value>,
    violations: &mut Vec<Violation>,
) -> (String, BTreeMap<String, String>) {
    let Some(Value::Object(mut meta)) = metadata else {
        violations.push(Violation::new("metadata.name", "cannot be empty"));
        return (String::new(), BTreeMap::new());
    };
    let name = match meta.get("name") {
        Some(Value::String(n)) if !n.is_empty() => n.clone(),
        _ => {
            violations.push(Violation::new("metadata.name", "cannot be empty"));
            String::new()
        }
    };
    let labels = take_labels(meta.remove("labels"), "metadata.labels", violations);
    (name, labels)
}

/// `labels`: a map of strings (HostnameGenerator selectors and templates read them).
fn take_labels(
    labels: Option<Value>,
    field: &str,
    violations: &mut Vec<Violation>,
) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    match labels {
        None | Some(Value::Null) => {}
        Some(Value::Object(map)) => {
            for (key, value) in map {
                match value {
                    Value::String(v) => {
                        out.insert(key, v);
                    }
                    other => violations.push(Violation::new(
                        format!("{field}.{key}"),
                        format!("expected a string, found {}", json_type_name(&other)),
                    )),
                }
            }
        }
        Some(other) => violations.push(Violation::new(
            field,
            format!(
                "expected a map of strings, found {}",
                json_type_name(&other)
            ),
        )),
    }
    out
}

/// What names a resource: its name, its mesh and its labels.
struct Identity {
    name: String,
    mesh: String,
    labels: BTreeMap<String, String>,
}

fn finish(
    kind: Option<Kind>,
    kind_name: String,
    identity: Identity,
    body: Value,
    prefix: &str,
    origin: Origin,
    mut violations: Vec<Violation>,
) -> Result<Resource, Box<Rejected>> {
    let spec = kind.and_then(|kind| match read_spec(kind, body, prefix) {
        Ok(spec) => Some(spec),
        Err(found) => {
            violations.extend(
                found
                    .into_iter()
                    .map(|v| Violation::new(format!("{prefix}{}", v.field), v.message)),
            );
            None
        }
    });
    match spec {
        Some(spec) if violations.is_empty() => Ok(Resource {
            origin,
            name: identity.name,
            mesh: identity.mesh,
            labels: identity.labels,
            spec,
        }),
        _ => Err(reject(
            origin,
            &kind_name,
            &identity.name,
            &identity.mesh,
            violations,
        )),
    }
}
/// Reads a spec; a spec that does not read gives every field at fault. A policy's Universal body is `{spec: ...}`, its Kubernetes body the
/// spec itself (`prefix` is `spec.`).
fn read_spec(kind: Kind, body: Value, prefix: &str) -> Result<Spec, Vec<Violation>> {
    Ok(match kind {
        Kind::ExternalService => Spec::ExternalService(typed_at_first_try(body)?),
        Kind::Mesh => Spec::Mesh(typed(body)?),
        Kind::Secret => Spec::Secret(typed(body)?),
        Kind::Dataplane => Spec::Dataplane(typed(body)?),
        Kind::ZoneEgress => Spec::ZoneEgress(typed(body)?),
        Kind::MeshExternalService | Kind::HostnameGenerator => {
            crate::mesh_external_service::read_spec(kind, body, prefix)?
        }
        Kind::MeshPassthrough => crate::mesh_passthrough::read_spec(body, prefix)?,
        Kind::MeshTrafficPermission => crate::traffic_permission::read_spec(body, prefix)?,
        Kind::TrafficPermission => Spec::TrafficPermission(typed(body)?),
        policy => Spec::Policy {
            kind: policy,
            spec: if prefix.is_empty() {
                policy_spec(body)?
            } else {
                body
            },
        },
    })
}

/// A spec kept under `spec` in both forms, typed: `prefix` is `spec.` for Kubernetes (whose
/// body is the spec itself, its fields named by the caller); a Universal body's fields are
/// named `spec.…` here, so that both forms name them alike.
pub(crate) fn typed_spec<T: serde::de::DeserializeOwned>(
    body: Value,
    prefix: &str,
) -> Result<T, Vec<Violation>> {
    if !prefix.is_empty() {
        return typed(body);
    }
    typed(policy_spec(body)?).map_err(|found| {
        found
            .into_iter()
            .map(|v| Violation::new(format!("spec.{}", v.field), v.message))
            .collect()
    })
}

/// The `spec` of a Universal policy document, which holds nothing else.
pub(crate) fn policy_spec(body: Value) -> Result<Value, Vec<Violation>> {
    let Value::Object(mut fields) = body else {
        return Err(vec![Violation::new("spec", "must be defined")]);
    };
    let spec = present(fields.remove("spec")).unwrap_or(Value::Object(Map::new()));
    let unknown: Vec<Violation> = fields
        .keys()
        .map(|key| {
            Violation::new(
                key.as_str(),
                format!("unknown field `{key}`, expected one of `type`, `name`, `mesh`, `labels`, `spec`"),
            )
        })
        .collect();
    if unknown.is_empty() {
        Ok(spec)
    } else {
        Err(unknown)
    }
}
/// A field written with no value (`spec:` alone is null in YAML) is no field.
fn present(value: Option<Value>) -> Option<Value> {
    value.filter(|v| !v.is_null())
}

/// `ExternalService, Mesh, ... and MeshRateLimit`: every kind this project reads.
fn kind_names() -> String {
    let names: Vec<&str> = Kind::ALL.iter().map(|k| k.as_str()).collect();
    match names.split_last() {
        Some((last, [])) => last.to_string(),
        Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
        None => String::new(),
    }
}

fn kind_or_violation(name: &str, field: &str, violations: &mut Vec<Violation>) -> Option<Kind> {
    let kind = Kind::from_name(name);
    if kind.is_none() {
        violations.push(Violation::new(
            field,
            format!(
                "unsupported resource {name:?}: extsvc reads {}",
                kind_names()
            ),
        ));
    }
    kind
}

fn take_string(
    doc: &mut Map<String, Value>,
    key: &str,
    field: &str,
    violations: &mut Vec<Violation>,
) -> Option<String> {
    match doc.remove(key) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s),
        Some(other) => {
            violations.push(Violation::new(
                field,
                format!("expected a string, found {}", json_type_name(&other)),
            ));
            None
        }
    }
}

fn reject(
    origin: Origin,
    kind: &str,
    name: &str,
    mesh: &str,
    violations: Vec<Violation>,
) -> Box<Rejected> {
    Box::new(Rejected {
        origin,
        kind: kind.to_string(),
        name: name.to_string(),
        mesh: mesh.to_string(),
        violations,
    })
}

fn json_type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}
