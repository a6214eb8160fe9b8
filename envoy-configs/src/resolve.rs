//! DataSources made concrete for native tools, once: bytes from inline data and Secrets, and
//! files by their path beside the resource file that names them ([`resolve`]); then checks
//! that files can be read, certificates and keys parse and belong together ([`check`]). The
//! builders take the [`Resolved`] value. Never part of the module.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use external_service_model::data_source::{decode_base64, find_secret, single_source};
use external_service_model::report::Violation;
use external_service_model::resource::{DataSource, Kind, Resource, Source, Spec};

/// What Envoy is given for a DataSource: the bytes, or the path of a file it reads itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Material {
    Inline(Vec<u8>),
    /// Absolute: a relative path is taken from the folder of the file that names it.
    File(PathBuf),
}

/// The material of one resource's TLS DataSources; a field is `None` when the resource does
/// not set it (or validation reports why it cannot be had).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TlsMaterial {
    pub ca_cert: Option<Material>,
    pub client_cert: Option<Material>,
    pub client_key: Option<Material>,
}

/// Every ExternalService's and MeshExternalService's TLS material, by kind, mesh and
/// resource name (unique per kind and mesh: the model's validation refuses a second one).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Resolved {
    tls: HashMap<(Kind, String, String), TlsMaterial>,
}

impl Resolved {
    /// The TLS material of the resource of `kind` named `resource` in `mesh`.
    pub fn tls(&self, kind: Kind, mesh: &str, resource: &str) -> Option<&TlsMaterial> {
        self.tls
            .get(&(kind, mesh.to_string(), resource.to_string()))
    }
}

/// A resource's TLS DataSources (CA, client certificate, client key) and where they are
/// written, for the two kinds that have them.
struct TlsSources<'r> {
    at: &'static str,
    ca_cert: &'r Option<DataSource>,
    client_cert: &'r Option<DataSource>,
    client_key: &'r Option<DataSource>,
}

fn tls_sources(resource: &Resource) -> Option<TlsSources<'_>> {
    match &resource.spec {
        Spec::ExternalService(es) => {
            let tls = es.networking.as_ref()?.tls.as_ref()?;
            Some(TlsSources {
                at: "networking.tls",
                ca_cert: &tls.ca_cert,
                client_cert: &tls.client_cert,
                client_key: &tls.client_key,
            })
        }
        Spec::MeshExternalService(mes) => {
            let verification = mes.tls.as_ref()?.verification.as_ref()?;
            Some(TlsSources {
                at: "spec.tls.verification",
                ca_cert: &verification.ca_cert,
                client_cert: &verification.client_cert,
                client_key: &verification.client_key,
            })
        }
        _ => None,
    }
}

/// Resolves every TLS DataSource of every ExternalService and MeshExternalService. What
/// validation reports (not exactly one source, an empty one, bad base64, an unknown Secret)
/// is left out.
pub fn resolve(resources: &[Resource]) -> Resolved {
    let mut resolved = Resolved::default();
    for r in resources {
        let Some(sources) = tls_sources(r) else {
            continue;
        };
        let material = |ds: &Option<DataSource>| material(ds.as_ref()?, r, resources);
        let found = TlsMaterial {
            ca_cert: material(sources.ca_cert),
            client_cert: material(sources.client_cert),
            client_key: material(sources.client_key),
        };
        resolved
            .tls
            .insert((r.kind(), r.mesh.clone(), r.name.clone()), found);
    }
    resolved
}

/// The material of a DataSource of `resource`, if validation finds nothing wrong with it.
fn material(ds: &DataSource, resource: &Resource, resources: &[Resource]) -> Option<Material> {
    match single_source(ds)? {
        Source::Inline("") | Source::InlineString("") | Source::Secret("") | Source::File("") => {
            None
        }
        Source::Inline(b64) => decode_base64(b64).ok().map(Material::Inline),
        Source::InlineString(text) => Some(Material::Inline(text.as_bytes().to_vec())),
        Source::Secret(name) => find_secret(resources, &resource.mesh, name)
            .and_then(|data| decode_base64(data).ok())
            .map(Material::Inline),
        Source::File(path) => Some(Material::File(beside(&resource.origin.file, path))),
    }
}

/// `path` taken from the folder of `file` (as Compose does), made absolute: Envoy reads files
/// relative to its own working directory. Standard input's resources are taken from ours.
fn beside(file: &str, path: &str) -> PathBuf {
    let folder = Path::new(file).parent().unwrap_or(Path::new(""));
    let path = folder.join(path);
    std::path::absolute(&path).unwrap_or(path)
}

/// For every ExternalService and MeshExternalService: its DataSources can be read, hold PEM
/// of the right kind, and a client key matches its certificate. Aligned with `resources`,
/// like `validate::validate`. Problems validation already reports (empty sources, bad base64,
/// unknown secrets) are left to it.
pub fn check(resources: &[Resource], resolved: &Resolved) -> Vec<Vec<Violation>> {
    resources
        .iter()
        .map(
            |r| match (tls_sources(r), resolved.tls(r.kind(), &r.mesh, &r.name)) {
                (Some(sources), Some(material)) => check_tls(&sources, material),
                _ => Vec::new(),
            },
        )
        .collect()
}

fn check_tls(sources: &TlsSources<'_>, material: &TlsMaterial) -> Vec<Violation> {
    let at = |field: &str| format!("{}.{field}", sources.at);
    let mut out = Vec::new();
    let mut read = |field: &str, ds: &Option<DataSource>, material: &Option<Material>| {
        ds.as_ref()?;
        bytes(material.as_ref()?)
            .map_err(|e| out.push(Violation::new(at(field), e)))
            .ok()
    };
    let ca = read("caCert", sources.ca_cert, &material.ca_cert);
    let cert = read("clientCert", sources.client_cert, &material.client_cert);
    let key = read("clientKey", sources.client_key, &material.client_key);
    if let Some(pem) = ca {
        certificates(&at("caCert"), &pem, &mut out);
    }
    let chain = cert.and_then(|pem| certificates(&at("clientCert"), &pem, &mut out));
    let key = key.and_then(|pem| private_key(&at("clientKey"), &pem, &mut out));
    if let (Some(chain), Some(key)) = (chain, key) {
        if let Err(e) = keys_match(&chain, &key) {
            out.push(Violation::new(at("clientKey"), e));
        }
    }
    out
}

/// The bytes of the material, reading a file now.
fn bytes(material: &Material) -> Result<Vec<u8>, String> {
    match material {
        Material::Inline(bytes) => Ok(bytes.clone()),
        Material::File(path) => {
            std::fs::read(path).map_err(|e| format!("cannot read file {:?}: {e}", path.display()))
        }
    }
}

/// Every certificate in a PEM text; at least one, each a well-formed X.509 certificate of any
/// version (v1 too, as BoringSSL and so Envoy take them).
fn certificates(
    at: &str,
    pem: &[u8],
    out: &mut Vec<Violation>,
) -> Option<Vec<CertificateDer<'static>>> {
    let certs: Result<Vec<_>, _> = CertificateDer::pem_slice_iter(pem).collect();
    let certs = match certs {
        Ok(certs) if !certs.is_empty() => certs,
        Ok(_) => {
            out.push(Violation::new(
                at,
                "holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
            ));
            return None;
        }
        Err(e) => {
            out.push(Violation::new(at, format!("is not valid PEM: {e}")));
            return None;
        }
    };
    for (i, der) in certs.iter().enumerate() {
        if let Err(e) = x509_parser::parse_x509_certificate(der) {
            out.push(Violation::new(
                at,
                format!("certificate {} does not parse as X.509: {e}", i + 1),
            ));
            return None;
        }
    }
    Some(certs)
}

fn private_key(at: &str, pem: &[u8], out: &mut Vec<Violation>) -> Option<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_slice(pem)
        .map_err(|_| {
            out.push(Violation::new(
                at,
                "holds no PEM private key (PKCS#8, PKCS#1 RSA or SEC1 EC)",
            ))
        })
        .ok()
}

/// The key must be the private half of the first certificate's public key.
fn keys_match(
    chain: &[CertificateDer<'static>],
    key: &PrivateKeyDer<'static>,
) -> Result<(), String> {
    let signing_key = rustls::crypto::ring::sign::any_supported_type(key)
        .map_err(|e| format!("is not a usable private key: {e}"))?;
    let certificate = chain
        .first()
        .and_then(|der| x509_parser::parse_x509_certificate(der).ok());
    match (signing_key.public_key(), certificate) {
        (Some(public), Some((_, certificate)))
            if public.as_ref() == certificate.tbs_certificate.subject_pki.raw =>
        {
            Ok(())
        }
        _ => Err("does not match the public key of clientCert".to_string()),
    }
}
