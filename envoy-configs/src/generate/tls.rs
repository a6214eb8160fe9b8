//! TLS origination: an `UpstreamTlsContext` that verifies the server (the given CA, else the
//! system store) and its name, unless the user spells out otherwise; the same for both kinds,
//! from the model's [`UpstreamTls`].

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use crate::envoy::{
    CertificateValidationContext, CombinedValidationContext, CommonTlsContext, DataSource,
    Extension, SanType, SecretMaterial, StringMatcher, SubjectAltNameMatcher, TlsCertificate,
    TlsParameters, TlsVersion, TransportSocket, TransportSocketConfig, UpstreamTlsContext,
    Validation,
};
use crate::resolve::{Material, TlsMaterial};
use external_service_model::address::Host;
use external_service_model::catalog::Service;
use external_service_model::upstream_tls::{self, Sni, UpstreamTls};

use super::secrets::{Field, Secrets};
use super::{names, protocol, Context};

/// The transport socket for the endpoints on `host`.
pub fn upstream(
    ctx: &Context<'_>,
    secrets: &mut Secrets,
    service: &Service,
    tls: &UpstreamTls,
    host: &Host,
) -> TransportSocket {
    let sni = sni(tls, host);
    // The endpoints of a service share their TLS settings (`cluster_rules`): the first's
    // material is every endpoint's.
    let no_material = TlsMaterial::default();
    let material = service
        .endpoints
        .first()
        .and_then(|e| ctx.resolved.tls(service.kind, ctx.mesh(), &e.resource))
        .unwrap_or(&no_material);
    let mut source = |field, material| data_source(secrets, service, field, material);
    // Validation refuses a certificate without its key, and the reverse.
    let certificate = match (&material.client_cert, &material.client_key) {
        (Some(cert), Some(key)) if tls.client_certificate => Some(TlsCertificate {
            certificate_chain: source(Field::ClientCert, cert),
            private_key: source(Field::ClientKey, key),
        }),
        _ => None,
    };
    let trusted_ca = match &material.ca_cert {
        Some(ca) => source(Field::CaCert, ca),
        None => DataSource::Filename(absolute(&ctx.options.system_ca)),
    };
    // Any one matching is enough (Envoy's rule, and Kuma's list: the SNI or host, then the
    // names the resource lists).
    let mut match_typed_subject_alt_names = Vec::new();
    if tls.verify_name {
        let expected = sni.clone().unwrap_or_else(|| bare(host));
        match_typed_subject_alt_names.push(san_matcher(StringMatcher::Exact(expected)));
    }
    // A listed name is checked against both kinds of SAN, as Kuma does: a `Prefix` `10.0.`
    // matches the IP SAN 10.0.0.5 though it is no address itself.
    for san_type in [SanType::Dns, SanType::IpAddress] {
        for san in &tls.subject_alt_names {
            let matcher = if san.prefix {
                StringMatcher::Prefix(san.value.clone())
            } else {
                StringMatcher::Exact(san.value.clone())
            };
            match_typed_subject_alt_names.push(SubjectAltNameMatcher { san_type, matcher });
        }
    }
    let trusted_ca = tls.verify_chain.then_some(trusted_ca);
    let (tls_certificates, tls_certificate_sds_secret_configs, validation) = match secrets.sds() {
        // From SDS, the material is loaded again when its files change; the name checks,
        // which depend on the host, stay in the cluster.
        Some(sds) => {
            let cluster = names::cluster(service);
            let certificates = certificate
                .map(|c| sds.secret(&cluster, SecretMaterial::TlsCertificate(c)))
                .into_iter()
                .collect();
            let validation = trusted_ca.map(|trusted_ca| {
                let ca = CertificateValidationContext {
                    trusted_ca: Some(trusted_ca),
                    match_typed_subject_alt_names: Vec::new(),
                };
                Validation::CombinedValidationContext(CombinedValidationContext {
                    default_validation_context: CertificateValidationContext {
                        trusted_ca: None,
                        match_typed_subject_alt_names,
                    },
                    validation_context_sds_secret_config: sds
                        .secret(&cluster, SecretMaterial::ValidationContext(ca)),
                })
            });
            (Vec::new(), certificates, validation)
        }
        None => (
            certificate.into_iter().collect(),
            Vec::new(),
            trusted_ca.map(|trusted_ca| {
                Validation::ValidationContext(CertificateValidationContext {
                    trusted_ca: Some(trusted_ca),
                    match_typed_subject_alt_names,
                })
            }),
        ),
    };
    Extension {
        name: "envoy.transport_sockets.tls",
        typed_config: TransportSocketConfig::UpstreamTls(UpstreamTlsContext {
            sni,
            allow_renegotiation: tls.allow_renegotiation,
            common_tls_context: CommonTlsContext {
                tls_params: TlsParameters {
                    tls_minimum_protocol_version: version(tls.min_version),
                    tls_maximum_protocol_version: version(tls.max_version),
                },
                alpn_protocols: protocol::alpn(service.protocol).into_iter().collect(),
                tls_certificates,
                tls_certificate_sds_secret_configs,
                validation,
            },
        }),
    }
}

/// The name given, else (an ExternalService) the host when it is a name: no SNI for an IP.
fn sni(tls: &UpstreamTls, host: &Host) -> Option<String> {
    match (&tls.sni, host) {
        (Sni::Name(name), _) => Some(name.clone()),
        (Sni::EachHost, Host::Name(name)) => Some(name.clone()),
        (Sni::EachHost, Host::Ip(_)) | (Sni::None, _) => None,
    }
}

/// A name check, of the SAN type the name has: an IP address, else a DNS name.
fn san_matcher(matcher: StringMatcher) -> SubjectAltNameMatcher {
    let value = match &matcher {
        StringMatcher::Exact(v) | StringMatcher::Prefix(v) => v.as_str(),
        StringMatcher::SafeRegex { regex } => regex.as_str(),
    };
    let san_type = if value.parse::<IpAddr>().is_ok() {
        SanType::IpAddress
    } else {
        SanType::Dns
    };
    SubjectAltNameMatcher { san_type, matcher }
}

fn version(version: upstream_tls::TlsVersion) -> TlsVersion {
    match version {
        upstream_tls::TlsVersion::Tls10 => TlsVersion::Tls10,
        upstream_tls::TlsVersion::Tls11 => TlsVersion::Tls11,
        upstream_tls::TlsVersion::Tls12 => TlsVersion::Tls12,
        upstream_tls::TlsVersion::Tls13 => TlsVersion::Tls13,
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
    secrets: &mut Secrets,
    service: &Service,
    field: Field,
    material: &Material,
) -> DataSource {
    match material {
        Material::Inline(bytes) => {
            secrets.data_source(&names::cluster(service), field, bytes.clone())
        }
        Material::File(path) => DataSource::Filename(absolute(path)),
    }
}

/// Envoy reads files relative to its own working directory (the resolved ones are absolute
/// already; the system CA is as the options name it).
fn absolute(path: &Path) -> String {
    std::path::absolute(path)
        .unwrap_or_else(|_| PathBuf::from(path))
        .display()
        .to_string()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use crate::generate::test_support::{assert_cases, part, service, yaml, yaml_eliding, Fixture};

    const PARAMS: &str = "/typed_config/common_tls_context/tls_params";

    /// The socket for the first host of the only service, with material placed by `secrets`.
    fn socket(protocol: &str, networking: &str, secrets: &mut Secrets) -> TransportSocket {
        let f = Fixture::new(&service("s", protocol, networking));
        let s = f.service("s");
        let host = &s.endpoints[0].address.host;
        upstream(&f.ctx(), secrets, s, s.tls.as_ref().unwrap(), host)
    }

    fn inline(protocol: &str, networking: &str) -> String {
        let socket = socket(protocol, networking, &mut Secrets::default());
        yaml_eliding(&socket, &[PARAMS])
    }

    #[test]
    fn upstream_tls() {
        let mtls = "{address: api.test:443, tls: {serverName: other.test, \
                    skipHostnameVerification: true, caCert: {file: /etc/ca.pem}, \
                    clientCert: {inlineString: CERT}, clientKey: {inline: S0VZ}}}";
        let mut secrets = Secrets::new(Some(Path::new("/s")), None);
        let to_files = socket("http2", mtls, &mut secrets);
        let common = "/typed_config/common_tls_context";
        let sources = [
            part(
                &to_files,
                &format!("{common}/tls_certificates/0/certificate_chain"),
            ),
            part(
                &to_files,
                &format!("{common}/tls_certificates/0/private_key"),
            ),
            part(
                &to_files,
                &format!("{common}/validation_context/trusted_ca"),
            ),
        ];
        assert_cases(&[
            (
                "no caCert: the system store, and the host's name as SNI and SAN",
                yaml(&socket(
                    "http",
                    "{address: httpbin.test:443, tls: {enabled: true}}",
                    &mut Secrets::default(),
                )),
                "
name: envoy.transport_sockets.tls
typed_config:
  '@type': type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
  sni: httpbin.test
  common_tls_context:
    tls_params:
      tls_minimum_protocol_version: TLSv1_2
      tls_maximum_protocol_version: TLSv1_3
    alpn_protocols:
    - http/1.1
    validation_context:
      trusted_ca:
        filename: /etc/ssl/certs/ca-certificates.crt
      match_typed_subject_alt_names:
      - san_type: DNS
        matcher:
          exact: httpbin.test
",
            ),
            (
                "an IP over TCP: no SNI, no ALPN, the IP as SAN; renegotiation as asked",
                inline(
                    "tcp",
                    "{address: 10.0.0.1:5432, tls: {caCert: {inlineString: CA}, \
                     allowRenegotiation: true}}",
                ),
                "
name: envoy.transport_sockets.tls
typed_config:
  '@type': type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
  allow_renegotiation: true
  common_tls_context:
    tls_params: <elided>
    validation_context:
      trusted_ca:
        inline_string: CA
      match_typed_subject_alt_names:
      - san_type: IP_ADDRESS
        matcher:
          exact: 10.0.0.1
",
            ),
            (
                "mTLS with serverName, no name check; HTTP/2",
                inline(
                    "http2",
                    &mtls.replace("{file: /etc/ca.pem}", "{inlineString: CA}"),
                ),
                "
name: envoy.transport_sockets.tls
typed_config:
  '@type': type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
  sni: other.test
  common_tls_context:
    tls_params: <elided>
    alpn_protocols:
    - h2
    tls_certificates:
    - certificate_chain:
        inline_string: CERT
      private_key:
        inline_string: KEY
    validation_context:
      trusted_ca:
        inline_string: CA
",
            ),
            (
                "with a secrets directory: inline material in files there, files stay",
                yaml(&sources),
                "
- filename: /s/external_service_s.client-cert.pem
- filename: /s/external_service_s.client-key.pem
- filename: /etc/ca.pem
",
            ),
        ]);
        let files: Vec<_> = secrets.into_files().into_iter().map(|f| f.bytes).collect();
        assert_eq!(files, [b"CERT".to_vec(), b"KEY".to_vec()]);
    }

    #[test]
    fn listed_subject_alt_names_are_checked_as_dns_names_and_as_ip_addresses() {
        let f = Fixture::new(
            "type: MeshExternalService\nmesh: default\nname: api\nspec:\n  \
             match: {port: 443, protocol: tcp}\n  endpoints: [{address: api.test, port: 443}]\n  \
             tls: {enabled: true, verification: {caCert: {inlineString: CA}, \
             subjectAltNames: [{type: Prefix, value: '10.0.'}, {type: Exact, value: api.example}]}}\n",
        );
        let s = f.service("api");
        let socket = upstream(
            &f.ctx(),
            &mut Secrets::default(),
            s,
            s.tls.as_ref().unwrap(),
            &s.endpoints[0].address.host,
        );
        assert_cases(&[(
            "the SNI first, then each listed name as a DNS name, then as an IP address",
            yaml(&part(
                &socket,
                "/typed_config/common_tls_context/validation_context/match_typed_subject_alt_names",
            )),
            "
- san_type: DNS
  matcher:
    exact: api.test
- san_type: DNS
  matcher:
    prefix: 10.0.
- san_type: DNS
  matcher:
    exact: api.example
- san_type: IP_ADDRESS
  matcher:
    prefix: 10.0.
- san_type: IP_ADDRESS
  matcher:
    exact: api.example
",
        )]);
    }

    #[test]
    fn with_an_xds_directory_the_material_comes_from_sds_and_the_name_check_stays() {
        let mut secrets = Secrets::new(
            None,
            Some(crate::generate::sds::Sds::new(Path::new("/x"), false)),
        );
        let networking = "{address: api.test:443, tls: {caCert: {file: /etc/ca.pem}, \
                          clientCert: {file: /etc/c.pem}, clientKey: {file: /etc/k.pem}}}";
        let sds = socket("http", networking, &mut secrets);
        let common = "/typed_config/common_tls_context";
        assert_cases(&[(
            "the cluster names two secrets and checks the name itself",
            yaml(&part(&sds, common)),
            "
tls_params:
  tls_minimum_protocol_version: TLSv1_2
  tls_maximum_protocol_version: TLSv1_3
alpn_protocols:
- http/1.1
tls_certificate_sds_secret_configs:
- name: external_service_s.client-certificate
  sds_config:
    path_config_source:
      path: /x/sds/external_service_s.client-certificate.yaml
      watched_directory:
        path: /x/sds
combined_validation_context:
  default_validation_context:
    match_typed_subject_alt_names:
    - san_type: DNS
      matcher:
        exact: api.test
  validation_context_sds_secret_config:
    name: external_service_s.ca
    sds_config:
      path_config_source:
        path: /x/sds/external_service_s.ca.yaml
        watched_directory:
          path: /x/sds
",
        )]);
        let served: std::collections::BTreeMap<&str, &crate::envoy::Secret> = secrets
            .served()
            .iter()
            .map(|s| (s.file.as_str(), &s.secret))
            .collect();
        assert_cases(&[(
            "each secret in its file: the material as the resource names it",
            yaml(&served),
            "
external_service_s.ca.yaml:
  name: external_service_s.ca
  validation_context:
    trusted_ca:
      filename: /etc/ca.pem
external_service_s.client-certificate.yaml:
  name: external_service_s.client-certificate
  tls_certificate:
    certificate_chain:
      filename: /etc/c.pem
    private_key:
      filename: /etc/k.pem
",
        )]);
    }
}
