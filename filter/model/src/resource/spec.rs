//! The resources as users write them: serde types that mirror Kuma's YAML/JSON exactly, read
//! with `deny_unknown_fields` so that a misspelled field is an error that names it.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

use crate::hostname_generator::HostnameGeneratorSpec;
use crate::mesh_external_service::MeshExternalServiceSpec;
use crate::mesh_passthrough::MeshPassthroughSpec;
use crate::traffic_permission::{MeshTrafficPermissionSpec, TrafficPermissionSpec};

pub const DEFAULT_MESH: &str = "default";
pub const SERVICE_TAG: &str = "kuma.io/service";
pub const PROTOCOL_TAG: &str = "kuma.io/protocol";

/// The traffic-policy kinds, one line each: `Kind` and its name, and the folder of `extsvc`'s
/// policy slice that applies it (`envoy-configs/src/policy/<folder>/`), in the order their
/// Envoy hooks run. The model reads them (keeping the spec as written, for `extsvc`); `extsvc`
/// builds its registry from this same list (`with_policy_kinds!(registry)`), so adding a kind
/// is its folder and its line here.
#[macro_export]
macro_rules! with_policy_kinds {
    ($then:ident) => {
        $then! {
            MeshTimeout => mesh_timeout,
            MeshRetry => mesh_retry,
            MeshCircuitBreaker => mesh_circuit_breaker,
            MeshHealthCheck => mesh_health_check,
            MeshFaultInjection => mesh_fault_injection,
            MeshRateLimit => mesh_rate_limit,
        }
    };
}

/// `Kind`, with a variant per policy kind of [`with_policy_kinds`].
macro_rules! kinds {
    ($($policy:ident => $folder:ident),* $(,)?) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        pub enum Kind {
            ExternalService,
            Mesh,
            Secret,
            Dataplane,
            MeshExternalService,
            HostnameGenerator,
            /// A policy, but read by the filter too: not one of `with_policy_kinds!`.
            MeshPassthrough,
            /// A shared egress proxy; it belongs to no mesh (it serves them all).
            ZoneEgress,
            /// Who may reach what: decided by the model (`traffic_permission`), not one of
            /// `with_policy_kinds!`.
            MeshTrafficPermission,
            TrafficPermission,
            // Traffic policies: read by `extsvc`, which makes Envoy's own configuration of
            // them; the model only recognises them and keeps their spec as written.
            $($policy,)*
        }

        impl Kind {
            /// Every kind, the policies in their hooks' order.
            pub const ALL: &[Kind] = &[
                Kind::ExternalService,
                Kind::Mesh,
                Kind::Secret,
                Kind::Dataplane,
                Kind::MeshExternalService,
                Kind::HostnameGenerator,
                Kind::MeshPassthrough,
                Kind::ZoneEgress,
                Kind::MeshTrafficPermission,
                Kind::TrafficPermission,
                $(Kind::$policy,)*
            ];
            pub const POLICIES: &[Kind] = &[$(Kind::$policy),*];

            pub fn as_str(self) -> &'static str {
                match self {
                    Kind::ExternalService => "ExternalService",
                    Kind::Mesh => "Mesh",
                    Kind::Secret => "Secret",
                    Kind::Dataplane => "Dataplane",
                    Kind::MeshExternalService => "MeshExternalService",
                    Kind::HostnameGenerator => "HostnameGenerator",
                    Kind::MeshPassthrough => "MeshPassthrough",
                    Kind::ZoneEgress => "ZoneEgress",
                    Kind::MeshTrafficPermission => "MeshTrafficPermission",
                    Kind::TrafficPermission => "TrafficPermission",
                    $(Kind::$policy => stringify!($policy),)*
                }
            }
        }
    };
}

with_policy_kinds!(kinds);

impl Kind {
    pub(crate) fn from_name(name: &str) -> Option<Kind> {
        Kind::ALL.iter().copied().find(|k| k.as_str() == name)
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
    /// Universal `labels`, Kubernetes `metadata.labels`.
    pub labels: BTreeMap<String, String>,
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
            Spec::MeshPassthrough(_) => Kind::MeshPassthrough,
            Spec::ZoneEgress(_) => Kind::ZoneEgress,
            Spec::MeshTrafficPermission(_) => Kind::MeshTrafficPermission,
            Spec::TrafficPermission(_) => Kind::TrafficPermission,
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
            Spec::MeshPassthrough(s) => serde_json::to_value(s).map(spec_only),
            Spec::ZoneEgress(s) => serde_json::to_value(s),
            Spec::MeshTrafficPermission(s) => serde_json::to_value(s).map(spec_only),
            Spec::TrafficPermission(s) => serde_json::to_value(s),
            Spec::Policy { spec, .. } => Ok(serde_json::json!({ "spec": spec })),
        };
        let mut doc = Map::new();
        doc.insert("type".into(), Value::from(self.kind().as_str()));
        doc.insert("name".into(), Value::from(self.name.as_str()));
        if self.kind() != Kind::Mesh {
            doc.insert("mesh".into(), Value::from(self.mesh.as_str()));
        }
        if !self.labels.is_empty() {
            let labels = self
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), Value::from(v.as_str())));
            doc.insert("labels".into(), Value::Object(labels.collect()));
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
    MeshPassthrough(Box<MeshPassthroughSpec>),
    ZoneEgress(ZoneEgressSpec),
    MeshTrafficPermission(Box<MeshTrafficPermissionSpec>),
    /// Kept at the top level in Universal form, under `spec` in Kubernetes form, as the other
    /// kinds older than `targetRef` policies.
    TrafficPermission(TrafficPermissionSpec),
    /// A traffic policy's `spec`, as written (both forms keep it under `spec`).
    Policy {
        kind: Kind,
        spec: Value,
    },
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExternalServiceSpec {
    #[serde(deserialize_with = "tags_with_empty_values")]
    pub tags: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub networking: Option<Networking>,
}

impl ExternalServiceSpec {
    pub fn service(&self) -> Option<&str> {
        self.tags.get(SERVICE_TAG).map(String::as_str)
    }
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct Networking {
    #[serde(deserialize_with = "null_as_empty")]
    pub address: String,
    #[serde(
        rename = "disableHostDNSEntry",
        skip_serializing_if = "std::ops::Not::not"
    )]
    pub disable_host_dns_entry: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<Tls>,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct Tls {
    /// Unset means on: a `tls` section is written to get TLS.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_cert: Option<DataSource>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_cert: Option<DataSource>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_key: Option<DataSource>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_name: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub allow_renegotiation: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub skip_hostname_verification: bool,
}

impl Tls {
    pub fn is_enabled(&self) -> bool {
        self.enabled.unwrap_or(true)
    }
}

/// Kuma's DataSource: exactly one of the four ways to give bytes.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct DataSource {
    /// Base64 bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inline: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inline_string: Option<String>,
    /// Name of a `Secret` in the same mesh.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// A path on the machine that runs Envoy.
    #[serde(skip_serializing_if = "Option::is_none")]
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
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct MeshSpec {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub networking: Option<MeshNetworking>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mtls: Option<MeshMtls>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub routing: Option<MeshRouting>,
    // Other Mesh sections are Kuma's business, accepted so real Mesh files load, not used here.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tracing: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logging: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub constraints: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skip_creating_initial_policies: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
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

    /// The CA backend that `mtls.enabledBackend` names: mTLS is on when there is one (Kuma
    /// enforces traffic permissions only then).
    pub fn enabled_ca(&self) -> Option<&CaBackend> {
        let mtls = self.mtls.as_ref()?;
        let enabled = mtls.enabled_backend.as_deref().filter(|b| !b.is_empty())?;
        mtls.backends.iter().find(|b| b.name == enabled)
    }

    pub fn mtls_enabled(&self) -> bool {
        self.enabled_ca().is_some()
    }

    /// `routing.zoneEgress`: the mesh's external traffic leaves through the ZoneEgress.
    pub fn zone_egress(&self) -> bool {
        self.routing.as_ref().and_then(|r| r.zone_egress) == Some(true)
    }

    /// `routing.defaultForbidMeshExternalServiceAccess`: with no permission, an egress refuses
    /// MeshExternalServices (Kuma 2.9–2.14; by default it lets them through).
    pub fn forbids_mesh_external_services_by_default(&self) -> bool {
        self.routing
            .as_ref()
            .and_then(|r| r.default_forbid_mesh_external_service_access)
            == Some(true)
    }
}

/// `Mesh.mtls`: the mesh's certificate authorities and which one is in use.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct MeshMtls {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled_backend: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub backends: Vec<CaBackend>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skip_validation: Option<bool>,
}

/// One CA backend of `Mesh.mtls.backends`. Kuma's types are `builtin`, `provided`, `vault`,
/// `acmpca` and `certmanager`; with no control plane only `provided` can issue here (its
/// `conf` is `{cert, key}`, two DataSources), which `extsvc` checks where it issues.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct CaBackend {
    #[serde(deserialize_with = "null_as_empty")]
    pub name: String,
    #[serde(rename = "type", deserialize_with = "null_as_empty")]
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dp_cert: Option<DpCert>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conf: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub root_chain: Option<Value>,
}

/// `dpCert`: how long a Dataplane's certificate lives.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct DpCert {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rotation: Option<DpCertRotation>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_timeout: Option<Value>,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct DpCertRotation {
    /// Kuma's duration (Go's syntax, or whole days as `1d`); Kuma's default is 24h.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expiration: Option<String>,
}

/// `Mesh.routing`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct MeshRouting {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zone_egress: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_forbid_mesh_external_service_access: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub locality_aware_load_balancing: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct MeshNetworking {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outbound: Option<MeshOutbound>,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct MeshOutbound {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub passthrough: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct SecretSpec {
    /// Base64 bytes.
    #[serde(deserialize_with = "null_as_empty")]
    pub data: String,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct DataplaneSpec {
    pub networking: DataplaneNetworking,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub probes: Option<Value>,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct DataplaneNetworking {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub advertised_address: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub inbound: Vec<Value>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub outbound: Vec<Outbound>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gateway: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transparent_proxying: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin: Option<Value>,
}

/// A ZoneEgress: where the mesh's external traffic leaves when `routing.zoneEgress` is on.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ZoneEgressSpec {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    pub networking: ZoneEgressNetworking,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct ZoneEgressNetworking {
    #[serde(deserialize_with = "null_as_empty")]
    pub address: String,
    pub port: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin: Option<Value>,
}

impl DataplaneSpec {
    /// The tags of the Dataplane's inbounds, merged: who it is to a traffic permission. A tag
    /// with several values keeps the first inbound's.
    pub fn inbound_tags(&self) -> BTreeMap<String, String> {
        let mut tags = BTreeMap::new();
        for inbound in &self.networking.inbound {
            if let Some(Value::Object(map)) = inbound.get("tags") {
                for (key, value) in map {
                    if let Value::String(value) = value {
                        tags.entry(key.clone()).or_insert_with(|| value.clone());
                    }
                }
            }
        }
        tags
    }
}

/// A Dataplane outbound: exposes a service on `address:port` of the data plane.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct Outbound {
    pub port: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    /// Kuma's older shorthand for `tags: {kuma.io/service: ...}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// A resource instead of a `kuma.io/service` (MADR-052; Kuma 2.9's Dataplane proto).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backend_ref: Option<BackendRef>,
}

/// What a Dataplane outbound reaches by kind: `MeshExternalService`, `MeshService` or
/// `MeshMultiZoneService`, by `name`, or by `labels` (which win when both are given).
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct BackendRef {
    #[serde(deserialize_with = "null_as_empty")]
    pub kind: String,
    #[serde(
        deserialize_with = "null_as_empty",
        skip_serializing_if = "String::is_empty"
    )]
    pub name: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// The MeshService port; Kuma ignores it for a MeshExternalService (its `match.port`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u32>,
}

impl Outbound {
    pub fn service(&self) -> Option<&str> {
        self.tags
            .get(SERVICE_TAG)
            .or(self.service.as_ref())
            .map(String::as_str)
    }
}

/// The resource of a backendRef among those of its mesh.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selected<'r> {
    /// Its name.
    One(&'r str),
    None,
    /// Labels that several match, by name: Kuma takes the oldest, which files do not tell.
    Several(Vec<&'r str>),
}

impl BackendRef {
    /// The MeshExternalService of `mesh` this names: by `labels` (each must match) when it
    /// has some, as Kuma resolves them first, else by `name`.
    pub fn select_mesh_external_service<'r>(
        &self,
        resources: &'r [Resource],
        mesh: &str,
    ) -> Selected<'r> {
        let mut found: Vec<&str> = resources
            .iter()
            .filter(|r| r.mesh == mesh && matches!(r.spec, Spec::MeshExternalService(_)))
            .filter(|r| {
                if self.labels.is_empty() {
                    r.name == self.name
                } else {
                    self.labels.iter().all(|(k, v)| r.labels.get(k) == Some(v))
                }
            })
            .map(|r| r.name.as_str())
            .collect();
        match found.len() {
            0 => Selected::None,
            1 => Selected::One(found.remove(0)),
            _ => Selected::Several(found),
        }
    }
}

/// `version:` with no value is an empty tag value (Kuma reports it), not a type error. Read
/// straight into the map: no second map to convert, sort and build.
pub(crate) fn tags_with_empty_values<'de, D: Deserializer<'de>>(
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

/// `{"spec": spec}`, as a Universal document holds a spec kept under `spec`.
fn spec_only(spec: Value) -> Value {
    serde_json::json!({ "spec": spec })
}
