//! The MES `spec` as Kuma 2.9 to 2.14 write it (`meshexternalservice.go`). Enumerations are
//! kept as the strings written: Kuma's validator, not the reader, says which values it takes,
//! and in its own words.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::resource::DataSource;

#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct MeshExternalServiceSpec {
    /// Required by Kuma's CRD; a missing `match` reads as Kuma's zero value, so that Kuma's
    /// validator names what is wrong with it (`port`, `protocol`).
    #[serde(rename = "match")]
    pub matcher: Match,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extension: Option<Extension>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoints: Option<Vec<Endpoint>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<Tls>,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Match {
    /// Only `HostnameGenerator`; unset (or empty, 2.10+) is the same.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Kuma reads an int32: a value out of 1-65535 is its validator's to refuse.
    pub port: i64,
    /// `tcp`, `grpc`, `http` or `http2`; the Kubernetes CRD defaults it to `tcp`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
}

/// An extension: Kuma leaves a resource that has one to the extension named by `type`
/// (HostnameGenerator has the same).
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Extension {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config: Option<Value>,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Endpoint {
    /// An IP address or a DNS name.
    pub address: String,
    pub port: i64,
    /// Kuma 2.14: the Envoy priority level, 0 (the default, tried first) to 128.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub priority: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct Tls {
    /// Unlike ExternalService's `tls`, off unless set.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub enabled: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<Version>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub allow_renegotiation: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verification: Option<Verification>,
}

/// `TLSAuto`, `TLS10`, `TLS11`, `TLS12` or `TLS13` each; unset is `TLSAuto`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Version {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct Verification {
    /// `SkipSAN`, `SkipCA`, `SkipAll` or `Secured`; unset (or empty, 2.10+) is `Secured`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject_alt_names: Option<Vec<SanMatch>>,
    /// Kuma's DataSource for MES: `secret`, `inline` or `inlineString` (no `file`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_cert: Option<DataSource>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_cert: Option<DataSource>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_key: Option<DataSource>,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct SanMatch {
    /// `Exact` or `Prefix`; the Kubernetes CRD defaults it to `Exact`, Universal does not.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    pub value: String,
}

impl MeshExternalServiceSpec {
    /// What Kuma's CRD schema fills in on Kubernetes before Kuma's validator sees the spec
    /// (`kuma.io_meshexternalservices.yaml`, 2.9 to 2.14): fields left out, never ones written.
    /// Universal has no such defaulting, so there the validator refuses a missing `protocol`
    /// or SAN `type`.
    pub fn with_kubernetes_defaults(mut self) -> Self {
        let matcher = &mut self.matcher;
        matcher
            .kind
            .get_or_insert_with(|| "HostnameGenerator".into());
        matcher.protocol.get_or_insert_with(|| "tcp".into());
        let verification = self.tls.as_mut().and_then(|t| t.verification.as_mut());
        if let Some(verification) = verification {
            verification.mode.get_or_insert_with(|| "Secured".into());
            for san in verification.subject_alt_names.iter_mut().flatten() {
                san.kind.get_or_insert_with(|| "Exact".into());
            }
        }
        self
    }
}
