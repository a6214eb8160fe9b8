//! TLS origination: an `UpstreamTlsContext` that verifies the server (the given CA, else the
//! system store) and its name, unless the user spells out otherwise.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use crate::envoy::{
    CertificateValidationContext, CommonTlsContext, DataSource, Extension, SanType, StringMatcher,
    SubjectAltNameMatcher, TlsCertificate, TlsParameters, TlsVersion, TransportSocket,
    TransportSocketConfig, UpstreamTlsContext,
};
use crate::resolve::{self, Material};
use external_service_model::address::Host;
use external_service_model::catalog::Service;
use external_service_model::resource::{self, Tls};

use super::secrets::{Field, Secrets};
use super::{cluster, protocol, Context, Error};

/// The transport socket for the endpoints on `host`.
pub fn upstream(
    ctx: &Context<'_>,
    secrets: &mut Secrets,
    service: &Service,
    tls: &Tls,
    host: &Host,
) -> Result<TransportSocket, Error> {
    let sni = sni(tls, host);
    let mut source = |field, ds| data_source(ctx, secrets, service, field, ds);
    // Validation refuses a certificate without its key, and the reverse.
    let tls_certificates = match (&tls.client_cert, &tls.client_key) {
        (Some(cert), Some(key)) => vec![TlsCertificate {
            certificate_chain: source(Field::ClientCert, cert)?,
            private_key: source(Field::ClientKey, key)?,
        }],
        _ => Vec::new(),
    };
    let trusted_ca = match &tls.ca_cert {
        Some(ca) => source(Field::CaCert, ca)?,
        None => DataSource::Filename(absolute(&ctx.options.system_ca)),
    };
    let match_typed_subject_alt_names = if tls.skip_hostname_verification {
        Vec::new()
    } else {
        let expected = sni.clone().unwrap_or_else(|| bare(host));
        let san_type = if expected.parse::<IpAddr>().is_ok() {
            SanType::IpAddress
        } else {
            SanType::Dns
        };
        vec![SubjectAltNameMatcher {
            san_type,
            matcher: StringMatcher::Exact(expected),
        }]
    };
    Ok(Extension {
        name: "envoy.transport_sockets.tls",
        typed_config: TransportSocketConfig::UpstreamTls(UpstreamTlsContext {
            sni,
            allow_renegotiation: tls.allow_renegotiation,
            common_tls_context: CommonTlsContext {
                // Envoy's upstream default stops at TLS 1.2.
                tls_params: TlsParameters {
                    tls_minimum_protocol_version: TlsVersion::Tls12,
                    tls_maximum_protocol_version: TlsVersion::Tls13,
                },
                alpn_protocols: protocol::alpn(service.protocol).into_iter().collect(),
                tls_certificates,
                validation_context: CertificateValidationContext {
                    trusted_ca,
                    match_typed_subject_alt_names,
                },
            },
        }),
    })
}

/// `serverName`, else the host when it is a name: no SNI for an IP.
fn sni(tls: &Tls, host: &Host) -> Option<String> {
    match (&tls.server_name, host) {
        (Some(name), _) => Some(name.clone()),
        (None, Host::Name(name)) => Some(name.clone()),
        (None, Host::Ip(_)) => None,
    }
}

fn bare(host: &Host) -> String {
    match host {
        Host::Name(n) => n.clone(),
        Host::Ip(ip) => ip.to_string(),
    }
}

/// A file by its absolute path; inline material where [`Secrets`] puts it.
fn data_source(
    ctx: &Context<'_>,
    secrets: &mut Secrets,
    service: &Service,
    field: Field,
    ds: &resource::DataSource,
) -> Result<DataSource, Error> {
    // Validation checked that the material can be had; should it not, the configuration is
    // refused rather than written without it.
    let material =
        resolve::material(ds, ctx.mesh(), ctx.resources).map_err(|message| Error::DataSource {
            service: service.name.clone(),
            resource: service
                .endpoints
                .first()
                .map(|e| e.resource.clone())
                .unwrap_or_default(),
            field: field.name(),
            message,
        })?;
    Ok(match material {
        Material::Inline(bytes) => secrets.data_source(&cluster::name(&service.name), field, bytes),
        Material::File(path) => DataSource::Filename(absolute(&path)),
    })
}

/// Envoy reads files relative to its own working directory; `validate` read them relative to
/// ours.
fn absolute(path: &Path) -> String {
    std::path::absolute(path)
        .unwrap_or_else(|_| PathBuf::from(path))
        .display()
        .to_string()
}
