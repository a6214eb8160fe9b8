//! The resources as users write them: serde types that mirror Kuma's YAML/JSON exactly.
//!
//! Documents arrive as generic JSON values (the CLI turns YAML into the same values), are
//! recognised as the Universal form (`type:`, `name:`, `mesh:`) or the Kubernetes form
//! (`apiVersion:`, `kind:`, `metadata.name`, `spec:`), and their spec is read with
//! `deny_unknown_fields` so that a misspelled field is an error that names it.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

use crate::hostname_generator::HostnameGeneratorSpec;
use crate::mesh_external_service::MeshExternalServiceSpec;
use crate::report::Violation;

pub const DEFAULT_MESH: &str = "default";
pub const SERVICE_TAG: &str = "kuma.io/service";
pub const PROTOCOL_TAG: &str = "kuma.io/protocol";
const KUMA_API_VERSION: &str = "kuma.io/v1alpha1";
const KUMA_MESH_LABEL: &str = "kuma.io/mesh";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum Kind {
    ExternalService,
    Mesh,
    Secret,
    Dataplane,
    /// Read and validated; not served yet.
    MeshExternalService,
    HostnameGenerator,
    // Traffic policies: read by `extsvc`, which makes Envoy's own configuration of them; the
    // model only recognises them and keeps their spec as written.
    MeshTimeout,
    MeshRetry,
    MeshCircuitBreaker,
    MeshHealthCheck,
    MeshRateLimit,
    MeshFaultInjection,
}

impl Kind {
    pub const POLICIES: [Kind; 6] = [
        Kind::MeshTimeout,
        Kind::MeshRetry,
        Kind::MeshCircuitBreaker,
        Kind::MeshHealthCheck,
        Kind::MeshRateLimit,
        Kind::MeshFaultInjection,
    ];

    fn from_name(name: &str) -> Option<Kind> {
        match name {
            "ExternalService" => Some(Kind::ExternalService),
            "Mesh" => Some(Kind::Mesh),
            "Secret" => Some(Kind::Secret),
            "Dataplane" => Some(Kind::Dataplane),
            "MeshExternalService" => Some(Kind::MeshExternalService),
            "HostnameGenerator" => Some(Kind::HostnameGenerator),
            _ => Kind::POLICIES.into_iter().find(|k| k.as_str() == name),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::ExternalService => "ExternalService",
            Kind::Mesh => "Mesh",
            Kind::Secret => "Secret",
            Kind::Dataplane => "Dataplane",
            Kind::MeshExternalService => "MeshExternalService",
            Kind::HostnameGenerator => "HostnameGenerator",
            Kind::MeshTimeout => "MeshTimeout",
            Kind::MeshRetry => "MeshRetry",
            Kind::MeshCircuitBreaker => "MeshCircuitBreaker",
            Kind::MeshHealthCheck => "MeshHealthCheck",
            Kind::MeshRateLimit => "MeshRateLimit",
            Kind::MeshFaultInjection => "MeshFaultInjection",
        }
    }

    pub fn is_policy(self) -> bool {
        Kind::POLICIES.contains(&self)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a resource was read from: the file (or `plugin configuration`) and its position there.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Origin {
    pub file: String,
    /// 0-based position of the document in the file.
    pub document: usize,
}

impl Origin {
    /// The documents of one file, each with its origin.
    pub fn in_file(file: &str, documents: Vec<Value>) -> Vec<(Value, Origin)> {
        documents
            .into_iter()
            .enumerate()
            .map(|(document, value)| {
                let origin = Origin {
                    file: file.to_string(),
                    document,
                };
                (value, origin)
            })
            .collect()
    }
}

/// A resource that parsed: its identity and its typed spec.
#[derive(Debug, Clone, PartialEq)]
pub struct Resource {
    pub origin: Origin,
    pub name: String,
    /// The mesh it belongs to; for a `Mesh` this is its own name.
    pub mesh: String,
    pub spec: Spec,
}

impl Resource {
    pub fn kind(&self) -> Kind {
        match self.spec {
            Spec::ExternalService(_) => Kind::ExternalService,
            Spec::Mesh(_) => Kind::Mesh,
            Spec::Secret(_) => Kind::Secret,
            Spec::Dataplane(_) => Kind::Dataplane,
            Spec::MeshExternalService(_) => Kind::MeshExternalService,
            Spec::HostnameGenerator(_) => Kind::HostnameGenerator,
            Spec::Policy { kind, .. } => kind,
        }
    }

    /// The resource in Universal form, as `from_value` reads it back.
    pub fn to_universal(&self) -> Value {
        let spec = match &self.spec {
            Spec::ExternalService(s) => serde_json::to_value(s),
            Spec::Mesh(s) => serde_json::to_value(s),
            Spec::Secret(s) => serde_json::to_value(s),
            Spec::Dataplane(s) => serde_json::to_value(s),
            Spec::MeshExternalService(s) => serde_json::to_value(s).map(spec_only),
            Spec::HostnameGenerator(s) => serde_json::to_value(s).map(spec_only),
            Spec::Policy { spec, .. } => Ok(serde_json::json!({ "spec": spec })),
        };
        let mut doc = Map::new();
        doc.insert("type".into(), Value::from(self.kind().as_str()));
        doc.insert("name".into(), Value::from(self.name.as_str()));
        if self.kind() != Kind::Mesh {
            doc.insert("mesh".into(), Value::from(self.mesh.as_str()));
        }
        // The spec types hold only strings, bools, numbers and maps: serialising cannot fail.
        if let Ok(Value::Object(fields)) = spec {
            doc.extend(fields);
        }
        Value::Object(doc)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Spec {
    ExternalService(ExternalServiceSpec),
    Mesh(MeshSpec),
    Secret(SecretSpec),
    Dataplane(DataplaneSpec),
    MeshExternalService(Box<MeshExternalServiceSpec>),
    HostnameGenerator(HostnameGeneratorSpec),
    /// A traffic policy's `spec`, as written (both forms keep it under `spec`).
    Policy {
        kind: Kind,
        spec: Value,
    },
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ExternalServiceSpec {
    #[serde(default, deserialize_with = "tags_with_empty_values")]
    pub tags: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub networking: Option<Networking>,
}

impl ExternalServiceSpec {
    pub fn service(&self) -> Option<&str> {
        self.tags.get(SERVICE_TAG).map(String::as_str)
    }
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Networking {
    #[serde(default, deserialize_with = "null_as_empty")]
    pub address: String,
    #[serde(
        default,
        rename = "disableHostDNSEntry",
        skip_serializing_if = "std::ops::Not::not"
    )]
    pub disable_host_dns_entry: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<Tls>,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Tls {
    /// Unset means on: a `tls` section is written to get TLS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_cert: Option<DataSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_cert: Option<DataSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_key: Option<DataSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_name: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_renegotiation: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub skip_hostname_verification: bool,
}

impl Tls {
    pub fn is_enabled(&self) -> bool {
        self.enabled.unwrap_or(true)
    }
}

/// Kuma's DataSource: exactly one of the four ways to give bytes.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DataSource {
    /// Base64 bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inline: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inline_string: Option<String>,
    /// Name of a `Secret` in the same mesh.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// A path on the machine that runs Envoy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
}

/// The one way a valid DataSource gives its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source<'a> {
    Inline(&'a str),
    InlineString(&'a str),
    Secret(&'a str),
    File(&'a str),
}

impl DataSource {
    /// Every way that is set, in declaration order.
    pub fn sources(&self) -> Vec<Source<'_>> {
        let mut set = Vec::new();
        if let Some(v) = &self.inline {
            set.push(Source::Inline(v));
        }
        if let Some(v) = &self.inline_string {
            set.push(Source::InlineString(v));
        }
        if let Some(v) = &self.secret {
            set.push(Source::Secret(v));
        }
        if let Some(v) = &self.file {
            set.push(Source::File(v));
        }
        set
    }
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MeshSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub networking: Option<MeshNetworking>,
    // Other Mesh sections are Kuma's business, accepted so real Mesh files load, not used here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtls: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracing: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logging: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routing: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub constraints: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skip_creating_initial_policies: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mesh_services: Option<Value>,
}

impl MeshSpec {
    /// Kuma's default: passthrough is on unless the Mesh turns it off.
    pub fn passthrough(&self) -> bool {
        self.networking
            .as_ref()
            .and_then(|n| n.outbound.as_ref())
            .and_then(|o| o.passthrough)
            .unwrap_or(true)
    }
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MeshNetworking {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outbound: Option<MeshOutbound>,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MeshOutbound {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passthrough: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SecretSpec {
    /// Base64 bytes.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub data: String,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DataplaneSpec {
    #[serde(default)]
    pub networking: DataplaneNetworking,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probes: Option<Value>,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DataplaneNetworking {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advertised_address: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inbound: Vec<Value>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outbound: Vec<Outbound>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transparent_proxying: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin: Option<Value>,
}

/// A Dataplane outbound: exposes a service on `address:port` of the data plane.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Outbound {
    #[serde(default)]
    pub port: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    /// Kuma's older shorthand for `tags: {kuma.io/service: ...}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
}

impl Outbound {
    pub fn service(&self) -> Option<&str> {
        self.tags
            .get(SERVICE_TAG)
            .or(self.service.as_ref())
            .map(String::as_str)
    }
}

/// `version:` with no value is an empty tag value (Kuma reports it), not a type error. Read
/// straight into the map: no second map to convert, sort and build.
fn tags_with_empty_values<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<BTreeMap<String, String>, D::Error> {
    struct Tags;
    impl<'de> Visitor<'de> for Tags {
        type Value = BTreeMap<String, String>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a map")
        }
        fn visit_none<E>(self) -> Result<Self::Value, E> {
            Ok(BTreeMap::new())
        }
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok(BTreeMap::new())
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_map(self)
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut tags = BTreeMap::new();
            while let Some((key, value)) = map.next_entry::<String, Option<String>>()? {
                tags.insert(key, value.unwrap_or_default());
            }
            Ok(tags)
        }
    }
    d.deserialize_option(Tags)
}

fn null_as_empty<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(Option::<String>::deserialize(d)?.unwrap_or_default())
}

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
    // Kuma's server-side metadata; harmless in a file someone exported.
    for key in ["labels", "creationTime", "modificationTime"] {
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
        _ => mesh_field.unwrap_or_else(|| DEFAULT_MESH.to_string()),
    };
    let body = Value::Object(std::mem::take(doc));
    finish(
        kind,
        type_name.unwrap_or_default(),
        name,
        mesh,
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
    let (name, labels_mesh) = read_metadata(metadata, &mut violations);
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
        _ => mesh_field
            .or(labels_mesh)
            .unwrap_or_else(|| DEFAULT_MESH.to_string()),
    };
    let (body, prefix) = if kind == Some(Kind::Secret) {
        (kubernetes_secret_body(doc, &mut violations), "")
    } else {
        let spec = doc.remove("spec").unwrap_or(Value::Object(Map::new()));
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
        name,
        mesh,
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
) -> (String, Option<String>) {
    let Some(Value::Object(meta)) = metadata else {
        violations.push(Violation::new("metadata.name", "cannot be empty"));
        return (String::new(), None);
    };
    let name = match meta.get("name") {
        Some(Value::String(n)) if !n.is_empty() => n.clone(),
        _ => {
            violations.push(Violation::new("metadata.name", "cannot be empty"));
            String::new()
        }
    };
    let labels_mesh = meta
        .get("labels")
        .and_then(|l| l.get(KUMA_MESH_LABEL))
        .and_then(Value::as_str)
        .map(str::to_string);
    (name, labels_mesh)
}

#[allow(clippy::too_many_arguments)]
fn finish(
    kind: Option<Kind>,
    kind_name: String,
    name: String,
    mesh: String,
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
            name,
            mesh,
            spec,
        }),
        _ => Err(reject(origin, &kind_name, &name, &mesh, violations)),
    }
}

/// Reads a spec; a spec that does not read gives every unknown field it has, then the first
/// other error, if any. A policy's Universal body is `{spec: ...}`, its Kubernetes body the
/// spec itself (`prefix` is `spec.`).
fn read_spec(kind: Kind, body: Value, prefix: &str) -> Result<Spec, Vec<Violation>> {
    Ok(match kind {
        Kind::ExternalService => Spec::ExternalService(typed(body)?),
        Kind::Mesh => Spec::Mesh(typed(body)?),
        Kind::Secret => Spec::Secret(typed(body)?),
        Kind::Dataplane => Spec::Dataplane(typed(body)?),
        Kind::MeshExternalService | Kind::HostnameGenerator => {
            crate::mesh_external_service::read_spec(kind, body, prefix)?
        }
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

/// `{"spec": spec}`, as a Universal document holds a spec kept under `spec`.
fn spec_only(spec: Value) -> Value {
    serde_json::json!({ "spec": spec })
}

/// The `spec` of a Universal policy document, which holds nothing else.
pub(crate) fn policy_spec(body: Value) -> Result<Value, Vec<Violation>> {
    let Value::Object(mut fields) = body else {
        return Err(vec![Violation::new("spec", "must be defined")]);
    };
    let spec = fields.remove("spec").unwrap_or(Value::Object(Map::new()));
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

/// One reading, with the field path kept for a report (a plain serde pass first would be a
/// second copy of every spec's deserialiser in the module). serde stops at the first error, so
/// each field at fault is taken out and the rest read again: every unknown field is reported,
/// and the first error of another kind (later ones may only follow from it).
pub fn typed<T: serde::de::DeserializeOwned>(mut body: Value) -> Result<T, Vec<Violation>> {
    let mut found = Vec::new();
    let mut other_reported = false;
    loop {
        let error = match serde_path_to_error::deserialize::<_, T>(&body) {
            Ok(spec) if found.is_empty() => return Ok(spec),
            Ok(_) => return Err(found),
            Err(e) => e,
        };
        let path = error.path().clone();
        let message = error.into_inner().to_string();
        let unknown = message.starts_with("unknown field");
        if unknown || !other_reported {
            let field = match path.to_string() {
                root if root == "." => String::new(),
                field => field,
            };
            found.push(Violation::new(field, message));
            other_reported |= !unknown;
        }
        if !remove_at(&mut body, &path) {
            return Err(found);
        }
    }
}

/// Takes out the value at `path`; false when there is none (so reading again cannot help).
fn remove_at(body: &mut Value, path: &serde_path_to_error::Path) -> bool {
    use serde_path_to_error::Segment;
    let segments: Vec<&Segment> = path.iter().collect();
    let Some((last, parents)) = segments.split_last() else {
        return false;
    };
    let mut at = body;
    for segment in parents {
        let next = match (segment, at) {
            (Segment::Map { key }, Value::Object(map)) => map.get_mut(key.as_str()),
            (Segment::Seq { index }, Value::Array(items)) => items.get_mut(*index),
            _ => None,
        };
        match next {
            Some(next) => at = next,
            None => return false,
        }
    }
    match (last, at) {
        (Segment::Map { key }, Value::Object(map)) => map.remove(key.as_str()).is_some(),
        _ => false,
    }
}

fn kind_or_violation(name: &str, field: &str, violations: &mut Vec<Violation>) -> Option<Kind> {
    let kind = Kind::from_name(name);
    if kind.is_none() {
        violations.push(Violation::new(
            field,
            format!("unsupported resource {name:?}: extsvc reads ExternalService, Mesh, Secret, Dataplane, MeshExternalService, HostnameGenerator, MeshTimeout, MeshRetry, MeshCircuitBreaker, MeshHealthCheck, MeshRateLimit and MeshFaultInjection"),
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
