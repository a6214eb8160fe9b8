//! TLS: upstream (origination), downstream (the egress's listener), and SDS secrets.

use serde::Serialize;

use super::config_source::SdsSecretConfig;
use super::core::{DataSource, Extension, StringMatcher};

pub type TransportSocket = Extension<TransportSocketConfig>;

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "@type")]
pub enum TransportSocketConfig {
    #[serde(
        rename = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext"
    )]
    UpstreamTls(UpstreamTlsContext),
    #[serde(
        rename = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext"
    )]
    DownstreamTls(DownstreamTlsContext),
}

/// A listener's TLS: its certificate, and what a client's must be.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DownstreamTlsContext {
    /// A client without a certificate is refused at the handshake.
    pub require_client_certificate: bool,
    pub common_tls_context: CommonTlsContext,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UpstreamTlsContext {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sni: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub allow_renegotiation: bool,
    pub common_tls_context: CommonTlsContext,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CommonTlsContext {
    pub tls_params: TlsParameters,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub alpn_protocols: Vec<&'static str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tls_certificates: Vec<TlsCertificate>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tls_certificate_sds_secret_configs: Vec<SdsSecretConfig>,
    /// `None`: the server certificate is not checked at all (MES `SkipCA`, `SkipAll`).
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub validation: Option<Validation>,
}

/// How the server is verified: all in the cluster, or the CA from SDS (so that it rotates)
/// with the name checks in the cluster.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Validation {
    ValidationContext(CertificateValidationContext),
    CombinedValidationContext(CombinedValidationContext),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CombinedValidationContext {
    pub default_validation_context: CertificateValidationContext,
    pub validation_context_sds_secret_config: SdsSecretConfig,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TlsParameters {
    pub tls_minimum_protocol_version: TlsVersion,
    pub tls_maximum_protocol_version: TlsVersion,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum TlsVersion {
    #[serde(rename = "TLSv1_0")]
    Tls10,
    #[serde(rename = "TLSv1_1")]
    Tls11,
    #[serde(rename = "TLSv1_2")]
    Tls12,
    #[serde(rename = "TLSv1_3")]
    Tls13,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TlsCertificate {
    pub certificate_chain: DataSource,
    pub private_key: DataSource,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CertificateValidationContext {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trusted_ca: Option<DataSource>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub match_typed_subject_alt_names: Vec<SubjectAltNameMatcher>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SubjectAltNameMatcher {
    pub san_type: SanType,
    pub matcher: StringMatcher,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SanType {
    Dns,
    IpAddress,
    /// A SPIFFE ID or Kuma's `kuma://` tag.
    Uri,
}

/// `extensions.transport_sockets.tls.v3.Secret`: TLS material served by SDS.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Secret {
    pub name: String,
    #[serde(flatten)]
    pub material: SecretMaterial,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SecretMaterial {
    TlsCertificate(TlsCertificate),
    ValidationContext(CertificateValidationContext),
}
