//! mTLS inside the mesh, between a sidecar and the ZoneEgress, as Kuma sets it up
//! (`pkg/xds/envoy/tls/v3/tls.go`): each presents its certificate of the mesh CA (the SDS
//! secret [`IDENTITY`]) and trusts the mesh CA (the SDS secret [`MESH_CA`]); the sidecar
//! checks that it speaks to the egress (`spiffe://<mesh>/zone-egress`), the egress that the
//! client is of the mesh (`spiffe://<mesh>/` and more), and its RBAC says who may go where.
//! Both secrets are files of `--xds-dir`, so a renewed certificate needs no restart.

use crate::envoy::{
    CertificateValidationContext, CombinedValidationContext, CommonTlsContext, DataSource,
    DownstreamTlsContext, Extension, SanType, SdsSecretConfig, SecretMaterial, StringMatcher,
    SubjectAltNameMatcher, TlsCertificate, TlsParameters, TlsVersion, TransportSocket,
    TransportSocketConfig, UpstreamTlsContext, Validation,
};
use crate::identity::{self, Issued};

use super::sds::Sds;

/// The SDS secret of this Envoy's certificate and key (its file is private).
pub const IDENTITY: &str = "identity";
/// The SDS secret of the mesh CA's certificates.
pub const MESH_CA: &str = "mesh_ca";

/// The two SDS secrets of one Envoy's mesh identity.
#[derive(Debug, Clone, PartialEq)]
pub struct MeshTls {
    mesh: String,
    identity: SdsSecretConfig,
    mesh_ca: SdsSecretConfig,
}

impl MeshTls {
    /// Names the secrets of `issued` in `sds`.
    pub fn new(sds: &mut Sds, mesh: &str, issued: &Issued) -> MeshTls {
        let identity = sds.named(
            IDENTITY,
            SecretMaterial::TlsCertificate(TlsCertificate {
                certificate_chain: DataSource::InlineString(issued.certificate_pem.clone()),
                private_key: DataSource::InlineString(issued.key_pem.clone()),
            }),
        );
        let mesh_ca = sds.named(
            MESH_CA,
            SecretMaterial::ValidationContext(CertificateValidationContext {
                trusted_ca: Some(DataSource::InlineString(issued.trust_pem.clone())),
                match_typed_subject_alt_names: Vec::new(),
            }),
        );
        MeshTls {
            mesh: mesh.to_string(),
            identity,
            mesh_ca,
        }
    }

    /// A sidecar's socket to the egress for one service: the service's `sni`, this
    /// Dataplane's certificate, and the egress's identity checked.
    pub fn to_egress(&self, sni: String) -> TransportSocket {
        let egress = StringMatcher::Exact(identity::zone_egress_id(&self.mesh));
        Extension {
            name: "envoy.transport_sockets.tls",
            typed_config: TransportSocketConfig::UpstreamTls(UpstreamTlsContext {
                sni: Some(sni),
                allow_renegotiation: false,
                common_tls_context: self.common(egress),
            }),
        }
    }

    /// The egress's socket: a client certificate of the mesh CA is required, with an identity
    /// of this mesh (which clients may reach a service is the RBAC's to say).
    pub fn at_egress(&self) -> TransportSocket {
        let of_mesh = StringMatcher::Prefix(format!("spiffe://{}/", self.mesh));
        Extension {
            name: "envoy.transport_sockets.tls",
            typed_config: TransportSocketConfig::DownstreamTls(DownstreamTlsContext {
                require_client_certificate: true,
                common_tls_context: self.common(of_mesh),
            }),
        }
    }

    /// This Envoy's certificate, the mesh CA, and the peer's URI SAN checked.
    fn common(&self, peer: StringMatcher) -> CommonTlsContext {
        CommonTlsContext {
            tls_params: TlsParameters {
                tls_minimum_protocol_version: TlsVersion::Tls12,
                tls_maximum_protocol_version: TlsVersion::Tls13,
            },
            alpn_protocols: Vec::new(),
            tls_certificates: Vec::new(),
            tls_certificate_sds_secret_configs: vec![self.identity.clone()],
            validation: Some(Validation::CombinedValidationContext(
                CombinedValidationContext {
                    default_validation_context: CertificateValidationContext {
                        trusted_ca: None,
                        match_typed_subject_alt_names: vec![SubjectAltNameMatcher {
                            san_type: SanType::Uri,
                            matcher: peer,
                        }],
                    },
                    validation_context_sds_secret_config: self.mesh_ca.clone(),
                },
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use std::path::Path;
    use std::time::UNIX_EPOCH;

    use super::*;
    use crate::generate::test_support::{assert_cases, part, yaml};

    fn issued() -> Issued {
        Issued {
            certificate_pem: "CERT".into(),
            key_pem: "KEY".into(),
            trust_pem: "CA".into(),
            uris: vec!["spiffe://default/web".into()],
            not_after: UNIX_EPOCH,
            renew_at: UNIX_EPOCH,
        }
    }

    #[test]
    fn each_side_presents_its_certificate_and_checks_the_others_identity() {
        let mut sds = Sds::new(Path::new("/x"), false);
        let tls = MeshTls::new(&mut sds, "default", &issued());
        let to = tls.to_egress("httpbin{mesh=default}".into());
        let at = tls.at_egress();
        assert_cases(&[
            (
                "the sidecar: the service's SNI, its certificate, the egress's identity",
                yaml(&to),
                "
name: envoy.transport_sockets.tls
typed_config:
  '@type': type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
  sni: httpbin{mesh=default}
  common_tls_context:
    tls_params:
      tls_minimum_protocol_version: TLSv1_2
      tls_maximum_protocol_version: TLSv1_3
    tls_certificate_sds_secret_configs:
    - name: identity
      sds_config:
        path_config_source:
          path: /x/sds/identity.yaml
          watched_directory:
            path: /x/sds
    combined_validation_context:
      default_validation_context:
        match_typed_subject_alt_names:
        - san_type: URI
          matcher:
            exact: spiffe://default/zone-egress
      validation_context_sds_secret_config:
        name: mesh_ca
        sds_config:
          path_config_source:
            path: /x/sds/mesh_ca.yaml
            watched_directory:
              path: /x/sds
",
            ),
            (
                "the egress: a client certificate required, of the mesh",
                yaml(&[
                    part(&at, "/typed_config/require_client_certificate"),
                    part(
                        &at,
                        "/typed_config/common_tls_context/combined_validation_context/default_validation_context",
                    ),
                ]),
                "
- true
- match_typed_subject_alt_names:
  - san_type: URI
    matcher:
      prefix: spiffe://default/
",
            ),
        ]);
        let served: Vec<String> = sds
            .served()
            .iter()
            .map(|s| format!("{} {}", s.file, yaml(&s.secret).trim().replace('\n', " ")))
            .collect();
        assert_eq!(
            served,
            [
                "identity.yaml name: identity tls_certificate:   certificate_chain:     inline_string: CERT   private_key:     inline_string: KEY",
                "mesh_ca.yaml name: mesh_ca validation_context:   trusted_ca:     inline_string: CA",
            ]
        );
    }
}
