//! DataSources made concrete for native tools, once: bytes from inline data and Secrets, and
//! files by their path beside the resource file that names them ([`resolve`]); then checks
//! that files can be read, certificates and keys parse and belong together ([`check`]). The
//! builders take the [`Resolved`] value. Never part of the module. The Mesh's own CA is
//! resolved here too; `crate::identity` checks it and issues from it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde::Deserialize;

use external_service_model::data_source::{decode_base64, find_secret, single_source};
use external_service_model::report::Violation;
use external_service_model::resource::{CaBackend, DataSource, Kind, Resource, Source, Spec};

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

/// The material of a Mesh CA backend of type `provided`; a field is `None` when the backend
/// does not set it (or the check reports why it cannot be had).
#[derive(Clone, PartialEq, Eq, Default)]
pub struct CaMaterial {
    pub cert: Option<Material>,
    pub key: Option<Material>,
}

/// Leaves the bytes out: the key is the mesh's CA key.
impl std::fmt::Debug for CaMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shown = |m: &Option<Material>| match m {
            Some(Material::File(path)) => format!("file {}", path.display()),
            Some(Material::Inline(bytes)) => format!("<{} bytes>", bytes.len()),
            None => "none".to_string(),
        };
        f.debug_struct("CaMaterial")
            .field("cert", &shown(&self.cert))
            .field("key", &shown(&self.key))
            .finish()
    }
}

/// The `conf` of a CA backend of type `provided`, as Kuma reads it
/// (`ProvidedCertificateAuthorityConfig`): the CA's certificate and key as DataSources.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProvidedConf {
    pub cert: Option<DataSource>,
    pub key: Option<DataSource>,
}

/// Kuma's CA backend type whose certificate and key the user provides.
pub const PROVIDED: &str = "provided";

/// A `provided` backend's `conf`, or why it cannot be read (serde's words).
pub fn provided_conf(backend: &CaBackend) -> Result<ProvidedConf, String> {
    let conf = backend.conf.clone().unwrap_or_default();
    serde_json::from_value(conf).map_err(|e| e.to_string())
}

/// Every ExternalService's and MeshExternalService's TLS material, by kind, mesh and
/// resource name (unique per kind and mesh: the model's validation refuses a second one), and
/// every Mesh's `provided` CA, by mesh and backend name.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Resolved {
    tls: HashMap<(Kind, String, String), TlsMaterial>,
    mesh_ca: HashMap<(String, String), CaMaterial>,
}

impl Resolved {
    /// The TLS material of the resource of `kind` named `resource` in `mesh`.
    pub fn tls(&self, kind: Kind, mesh: &str, resource: &str) -> Option<&TlsMaterial> {
        self.tls
            .get(&(kind, mesh.to_string(), resource.to_string()))
    }

    /// The material of the `provided` CA backend named `backend` of Mesh `mesh`.
    pub fn mesh_ca(&self, mesh: &str, backend: &str) -> Option<&CaMaterial> {
        self.mesh_ca.get(&(mesh.to_string(), backend.to_string()))
    }

    /// The TLS material with every `file:` read into the configuration: for an Envoy that
    /// runs elsewhere (a pod), where this machine's files are not. The mesh CA's material is
    /// the generator's own and stays as it is. The error names the file.
    pub fn inlined(mut self) -> Result<Resolved, String> {
        for material in self.tls.values_mut() {
            let fields = [
                &mut material.ca_cert,
                &mut material.client_cert,
                &mut material.client_key,
            ];
            for field in fields {
                if let Some(Material::File(path)) = field {
                    let bytes = std::fs::read(&*path)
                        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                    *field = Some(Material::Inline(bytes));
                }
            }
        }
        Ok(self)
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

/// Resolves every TLS DataSource of every ExternalService and MeshExternalService, and the
/// certificate and key of every Mesh's `provided` CA. What validation reports (not exactly
/// one source, an empty one, bad base64, an unknown Secret) is left out.
pub fn resolve(resources: &[Resource]) -> Resolved {
    let mut resolved = Resolved::default();
    for r in resources {
        if let Spec::Mesh(mesh) = &r.spec {
            let provided = mesh.mtls.iter().flat_map(|m| &m.backends);
            for backend in provided.filter(|b| b.kind == PROVIDED) {
                let Ok(conf) = provided_conf(backend) else {
                    continue;
                };
                let material = |ds: &Option<DataSource>| material(ds.as_ref()?, r, resources);
                let found = CaMaterial {
                    cert: material(&conf.cert),
                    key: material(&conf.key),
                };
                resolved
                    .mesh_ca
                    .insert((r.name.clone(), backend.name.clone()), found);
            }
        }
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
pub fn bytes(material: &Material) -> Result<Vec<u8>, String> {
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
    let matches = match chain.first() {
        Some(first) => key_matches(first, key)?,
        None => false,
    };
    if matches {
        Ok(())
    } else {
        Err("does not match the public key of clientCert".to_string())
    }
}

/// Whether `key` is the private half of `certificate`'s public key; `Err` when the key is
/// not one rustls can use.
pub fn key_matches(
    certificate: &CertificateDer<'_>,
    key: &PrivateKeyDer<'_>,
) -> Result<bool, String> {
    let signing_key = rustls::crypto::ring::sign::any_supported_type(key)
        .map_err(|e| format!("is not a usable private key: {e}"))?;
    let parsed = x509_parser::parse_x509_certificate(certificate).ok();
    Ok(match (signing_key.public_key(), parsed) {
        (Some(public), Some((_, parsed))) => {
            public.as_ref() == parsed.tbs_certificate.subject_pki.raw
        }
        _ => false,
    })
}
