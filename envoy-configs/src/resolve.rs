//! DataSources made concrete for native tools: bytes from inline data, secrets and files, and
//! checks that certificates and keys parse and belong together. Never part of the module.

use std::path::PathBuf;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;

use external_service_model::report::Violation;
use external_service_model::resource::{DataSource, Resource, Source, Spec};
use external_service_model::validate::{decode_base64, find_secret, single_source};

/// What Envoy is given for a DataSource: the bytes, or the path of a file it reads itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Material {
    Inline(Vec<u8>),
    File(PathBuf),
}

/// The material of a valid DataSource of a resource in `mesh`.
pub fn material(ds: &DataSource, mesh: &str, resources: &[Resource]) -> Result<Material, String> {
    match single_source(ds) {
        Some(Source::Inline(b64)) => decode_base64(b64)
            .map(Material::Inline)
            .map_err(|e| format!("inline is not valid base64: {e}")),
        Some(Source::InlineString(text)) => Ok(Material::Inline(text.as_bytes().to_vec())),
        Some(Source::Secret(name)) => {
            let data = find_secret(resources, mesh, name)
                .ok_or_else(|| format!("secret {name:?} not found in mesh {mesh:?}"))?;
            decode_base64(data)
                .map(Material::Inline)
                .map_err(|e| format!("secret {name:?} is not valid base64: {e}"))
        }
        Some(Source::File(path)) => Ok(Material::File(PathBuf::from(path))),
        None => {
            Err("data source must set exactly one of inline, inlineString, secret, file".into())
        }
    }
}

/// The bytes behind a DataSource, reading files now.
fn bytes(ds: &DataSource, mesh: &str, resources: &[Resource]) -> Result<Vec<u8>, String> {
    match material(ds, mesh, resources)? {
        Material::Inline(bytes) => Ok(bytes),
        Material::File(path) => {
            std::fs::read(&path).map_err(|e| format!("cannot read file {:?}: {e}", path.display()))
        }
    }
}

/// For every ExternalService: its DataSources can be read, hold PEM of the right kind, and a
/// client key matches its certificate. Aligned with `resources`, like `validate::validate`.
/// Problems validation already reports (empty sources, unknown secrets) are left to it.
pub fn check(resources: &[Resource]) -> Vec<Vec<Violation>> {
    resources
        .iter()
        .map(|r| match &r.spec {
            Spec::ExternalService(es) => es
                .networking
                .as_ref()
                .and_then(|n| n.tls.as_ref())
                .map(|tls| check_tls(tls, &r.mesh, resources))
                .unwrap_or_default(),
            _ => Vec::new(),
        })
        .collect()
}

fn check_tls(
    tls: &external_service_model::resource::Tls,
    mesh: &str,
    resources: &[Resource],
) -> Vec<Violation> {
    let mut out = Vec::new();
    let mut read = |field: &str, ds: &Option<DataSource>| {
        let bytes = readable(ds.as_ref()?, mesh, resources)?;
        bytes
            .map_err(|e| out.push(Violation::new(format!("networking.tls.{field}"), e)))
            .ok()
    };
    let ca = read("caCert", &tls.ca_cert);
    let cert = read("clientCert", &tls.client_cert);
    let key = read("clientKey", &tls.client_key);
    if let Some(pem) = ca {
        certificates("caCert", &pem, &mut out);
    }
    let chain = cert.and_then(|pem| certificates("clientCert", &pem, &mut out));
    let key = key.and_then(|pem| private_key(&pem, &mut out));
    if let (Some(chain), Some(key)) = (chain, key) {
        if let Err(e) = keys_match(chain, key) {
            out.push(Violation::new("networking.tls.clientKey", e));
        }
    }
    out
}

/// The bytes of a DataSource, or `None` when validation already reports what is wrong with it
/// (not exactly one source, an empty one, an unknown secret).
fn readable(
    ds: &DataSource,
    mesh: &str,
    resources: &[Resource],
) -> Option<Result<Vec<u8>, String>> {
    match single_source(ds)? {
        Source::Inline("") | Source::InlineString("") | Source::Secret("") | Source::File("") => {
            None
        }
        Source::Secret(name) if find_secret(resources, mesh, name).is_none() => None,
        _ => Some(bytes(ds, mesh, resources)),
    }
}

/// Every certificate in a PEM text; at least one, each a well-formed X.509 certificate.
fn certificates(
    field: &str,
    pem: &[u8],
    out: &mut Vec<Violation>,
) -> Option<Vec<CertificateDer<'static>>> {
    let at = format!("networking.tls.{field}");
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
        if let Err(e) = webpki::EndEntityCert::try_from(der) {
            out.push(Violation::new(
                &at,
                format!("certificate {} does not parse as X.509: {e}", i + 1),
            ));
            return None;
        }
    }
    Some(certs)
}

fn private_key(pem: &[u8], out: &mut Vec<Violation>) -> Option<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_slice(pem)
        .map_err(|_| {
            out.push(Violation::new(
                "networking.tls.clientKey",
                "holds no PEM private key (PKCS#8, PKCS#1 RSA or SEC1 EC)",
            ))
        })
        .ok()
}

/// The key must be the private half of the first certificate's public key.
fn keys_match(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<(), String> {
    let signing_key = rustls::crypto::ring::sign::any_supported_type(&key)
        .map_err(|e| format!("is not a usable private key: {e}"))?;
    CertifiedKey::new(chain, Arc::clone(&signing_key))
        .keys_match()
        .map_err(|_| "does not match the public key of clientCert".to_string())
}
