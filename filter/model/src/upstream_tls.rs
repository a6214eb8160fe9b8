//! How Envoy originates TLS to a service, the same for both kinds once read: an
//! ExternalService's `networking.tls` and a MeshExternalService's `tls` each map onto
//! [`UpstreamTls`] as Kuma builds them (`pkg/xds/topology/outbound.go`,
//! `pkg/xds/envoy/tls/tls.go`), and the generator turns that into Envoy's upstream TLS context.
//! The material itself (CA, certificate, key) stays with the resource that names it.

use crate::address::is_dns_name;
use crate::mesh_external_service::spec as mes;
use crate::resource::Tls;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamTls {
    pub sni: Sni,
    /// Check the server certificate's name: against the SNI, else the endpoint's host.
    pub verify_name: bool,
    /// Names the server certificate may have besides (MES `subjectAltNames`).
    pub subject_alt_names: Vec<SanMatch>,
    /// Verify the chain, with the CA given, else the system trust store. Off (MES `SkipCA`,
    /// `SkipAll`), nothing of the server certificate is checked.
    pub verify_chain: bool,
    /// Present the client certificate when the resource gives one (off for MES `SkipAll`).
    pub client_certificate: bool,
    pub min_version: TlsVersion,
    pub max_version: TlsVersion,
    pub allow_renegotiation: bool,
}

/// The SNI the upstream is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sni {
    Name(String),
    /// Each endpoint's host when it is a DNS name (an ExternalService without `serverName`).
    EachHost,
    None,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SanMatch {
    /// `Prefix`; else `Exact`.
    pub prefix: bool,
    pub value: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsVersion {
    Tls10,
    Tls11,
    Tls12,
    Tls13,
}

/// Envoy's upstream default minimum; the maximum is raised to TLS 1.3, which Envoy's
/// upstream default (1.2) leaves out.
const DEFAULT_MIN: TlsVersion = TlsVersion::Tls12;
const DEFAULT_MAX: TlsVersion = TlsVersion::Tls13;

impl UpstreamTls {
    /// An ExternalService's TLS, when enabled: SNI `serverName` else each host's name, the
    /// name checked unless `skipHostnameVerification`, the chain always.
    pub fn of_external_service(tls: &Tls) -> Option<UpstreamTls> {
        tls.is_enabled().then(|| UpstreamTls {
            sni: match &tls.server_name {
                Some(name) => Sni::Name(name.clone()),
                None => Sni::EachHost,
            },
            verify_name: !tls.skip_hostname_verification,
            subject_alt_names: Vec::new(),
            verify_chain: true,
            client_certificate: true,
            min_version: DEFAULT_MIN,
            max_version: DEFAULT_MAX,
            allow_renegotiation: tls.allow_renegotiation,
        })
    }

    /// A MeshExternalService's TLS, when enabled. The SNI is `serverName`, else the first
    /// endpoint's address when it is a DNS name. `SkipSAN` drops the name checks, `SkipCA`
    /// every check of the server, `SkipAll` that and the client certificate.
    pub fn of_mesh_external_service(
        tls: &mes::Tls,
        endpoints: &[mes::Endpoint],
    ) -> Option<UpstreamTls> {
        if !tls.enabled {
            return None;
        }
        let verification = tls.verification.clone().unwrap_or_default();
        let mode = verification.mode.as_deref().unwrap_or("Secured");
        let (skip_names, skip_chain, skip_client) = match mode {
            "SkipSAN" => (true, false, false),
            "SkipCA" => (false, true, false),
            "SkipAll" => (true, true, true),
            _ => (false, false, false),
        };
        let server_name = verification.server_name.clone().or_else(|| {
            endpoints
                .first()
                .map(|e| e.address.clone())
                .filter(|a| is_dns_name(a))
        });
        let version = tls.version.clone().unwrap_or_default();
        let min = version.min.as_deref().and_then(version_of);
        let max = version.max.as_deref().and_then(version_of);
        Some(UpstreamTls {
            sni: match server_name {
                Some(name) if !skip_names => Sni::Name(name),
                // SkipSAN and SkipAll clear the server name as well (Kuma's outbound.go).
                _ => Sni::None,
            },
            verify_name: !skip_names && !skip_chain,
            subject_alt_names: if skip_names || skip_chain {
                Vec::new()
            } else {
                verification
                    .subject_alt_names
                    .iter()
                    .flatten()
                    .map(|san| SanMatch {
                        prefix: san.kind.as_deref() == Some("Prefix"),
                        value: san.value.clone(),
                    })
                    .collect()
            },
            verify_chain: !skip_chain,
            client_certificate: !skip_client,
            min_version: min.unwrap_or(DEFAULT_MIN),
            // A minimum above the default maximum raises it: TLS 1.3 alone is then usable.
            max_version: max.unwrap_or(DEFAULT_MAX.max(min.unwrap_or(DEFAULT_MIN))),
            allow_renegotiation: tls.allow_renegotiation,
        })
    }
}

/// Kuma's version names; `TLSAuto` (or unset) is Envoy's default.
fn version_of(name: &str) -> Option<TlsVersion> {
    match name {
        "TLS10" => Some(TlsVersion::Tls10),
        "TLS11" => Some(TlsVersion::Tls11),
        "TLS12" => Some(TlsVersion::Tls12),
        "TLS13" => Some(TlsVersion::Tls13),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn mes_tls(yaml: &str) -> Option<UpstreamTls> {
        let spec: mes::MeshExternalServiceSpec = serde_yaml_ng::from_str(yaml).unwrap();
        UpstreamTls::of_mesh_external_service(
            spec.tls.as_ref().unwrap(),
            spec.endpoints.as_deref().unwrap_or_default(),
        )
    }

    const ENDPOINTS: &str = "match: {port: 443, protocol: http}\nendpoints:\n- {address: api.test, port: 443}\n- {address: 10.0.0.1, port: 443}\n";

    #[test]
    fn mesh_external_service_modes_are_kumas() {
        let secured = mes_tls(&format!("{ENDPOINTS}tls: {{enabled: true}}")).unwrap();
        assert_eq!(secured.sni, Sni::Name("api.test".into()));
        assert!(secured.verify_name && secured.verify_chain && secured.client_certificate);
        assert_eq!(
            (secured.min_version, secured.max_version),
            (TlsVersion::Tls12, TlsVersion::Tls13)
        );

        let skip_san = mes_tls(&format!(
            "{ENDPOINTS}tls: {{enabled: true, verification: {{mode: SkipSAN, serverName: x.test, subjectAltNames: [{{type: Exact, value: a}}]}}}}"
        ))
        .unwrap();
        assert_eq!(skip_san.sni, Sni::None);
        assert!(!skip_san.verify_name && skip_san.subject_alt_names.is_empty());
        assert!(skip_san.verify_chain && skip_san.client_certificate);

        let skip_ca = mes_tls(&format!(
            "{ENDPOINTS}tls: {{enabled: true, verification: {{mode: SkipCA}}}}"
        ))
        .unwrap();
        assert_eq!(skip_ca.sni, Sni::Name("api.test".into()));
        assert!(!skip_ca.verify_chain && !skip_ca.verify_name && skip_ca.client_certificate);

        let skip_all = mes_tls(&format!(
            "{ENDPOINTS}tls: {{enabled: true, verification: {{mode: SkipAll}}}}"
        ))
        .unwrap();
        assert!(!skip_all.verify_chain && !skip_all.verify_name && !skip_all.client_certificate);
        assert_eq!(skip_all.sni, Sni::None);

        assert_eq!(
            mes_tls(&format!("{ENDPOINTS}tls: {{enabled: false}}")),
            None
        );
    }

    #[test]
    fn sni_is_the_server_name_else_a_first_endpoint_that_is_a_name() {
        let named = mes_tls(&format!(
            "{ENDPOINTS}tls: {{enabled: true, verification: {{serverName: other.test, subjectAltNames: [{{type: Prefix, value: api.}}]}}}}"
        ))
        .unwrap();
        assert_eq!(named.sni, Sni::Name("other.test".into()));
        assert_eq!(
            named.subject_alt_names,
            vec![SanMatch {
                prefix: true,
                value: "api.".into()
            }]
        );
        let ip_first = mes_tls(
            "match: {port: 443, protocol: tcp}\nendpoints:\n- {address: 10.0.0.1, port: 443}\n- {address: api.test, port: 443}\ntls: {enabled: true}",
        )
        .unwrap();
        assert_eq!(ip_first.sni, Sni::None);
    }

    #[test]
    fn a_minimum_above_the_default_maximum_raises_it() {
        let only_13 = mes_tls(&format!(
            "{ENDPOINTS}tls: {{enabled: true, version: {{min: TLS13}}}}"
        ))
        .unwrap();
        assert_eq!(
            (only_13.min_version, only_13.max_version),
            (TlsVersion::Tls13, TlsVersion::Tls13)
        );
        let old = mes_tls(&format!(
            "{ENDPOINTS}tls: {{enabled: true, version: {{min: TLS10, max: TLS11}}}}"
        ))
        .unwrap();
        assert_eq!(
            (old.min_version, old.max_version),
            (TlsVersion::Tls10, TlsVersion::Tls11)
        );
    }
}
