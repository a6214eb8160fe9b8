//! The Mesh's CA: Kuma's checks of a `provided` backend, in its words (`ValidateBackend` and
//! `validateCaCert` of `pkg/plugins/ca/provided`, 2.9 to 2.14, at `mtls.backends[i].conf`),
//! and the CA loaded to issue from.

use rcgen::{Issuer, KeyPair};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use x509_parser::prelude::{FromDer, X509Certificate};

use external_service_model::report::Violation;
use external_service_model::resource::{CaBackend, DataSource, MeshSpec, Source};

use crate::resolve::{self, CaMaterial, Material, ProvidedConf, Resolved, PROVIDED};

/// Kuma's violations of one `provided` backend (the `i`th of `mtls.backends`) of Mesh
/// `mesh`, unless the Mesh asks Kuma to skip them (`mtls.skipValidation`).
pub fn check_provided(
    mesh: &str,
    spec: &MeshSpec,
    i: usize,
    backend: &CaBackend,
    resolved: &Resolved,
) -> Vec<Violation> {
    let skip = spec.mtls.as_ref().and_then(|m| m.skip_validation) == Some(true);
    if backend.kind != PROVIDED || skip {
        return Vec::new();
    }
    let at = format!("mtls.backends[{i}].conf");
    let conf = match resolve::provided_conf(backend) {
        Ok(conf) => conf,
        Err(e) => {
            return vec![Violation::new(
                at,
                format!("could not convert backend config: {e}"),
            )]
        }
    };
    let mut out = Vec::new();
    for (field, ds) in [("cert", &conf.cert), ("key", &conf.key)] {
        match ds {
            None => out.push(Violation::new(format!("{at}.{field}"), "has to be defined")),
            Some(ds) => out.extend(data_source(&format!("{at}.{field}"), ds)),
        }
    }
    if !out.is_empty() {
        return out;
    }
    let no_material = CaMaterial::default();
    let material = resolved
        .mesh_ca(mesh, &backend.name)
        .unwrap_or(&no_material);
    match read_pair(&conf, material) {
        Ok(pair) => out.extend(ca_violations(&at, &pair)),
        Err((field, e)) => out.push(Violation::new(format!("{at}.{field}"), e)),
    }
    out
}

/// Kuma's `datasource.Validate`: one way chosen, and not empty; what the model checks of
/// other DataSources besides (base64, the Secret found).
fn data_source(at: &str, ds: &DataSource) -> Vec<Violation> {
    let one = |field: &str, message: &str| vec![Violation::new(format!("{at}.{field}"), message)];
    match ds.sources().as_slice() {
        [] => vec![Violation::new(
            at,
            "data source has to be chosen. Available sources: secret, file, inline",
        )],
        [Source::Secret("")] => one("secret", "cannot be empty"),
        [Source::File("")] => one("file", "cannot be empty"),
        [Source::Inline("")] => one("inline", "cannot be empty"),
        [Source::InlineString("")] => one("inlineString", "cannot be empty"),
        [Source::Inline(b64)] => match external_service_model::data_source::decode_base64(b64) {
            Ok(_) => Vec::new(),
            Err(e) => one("inline", &format!("is not valid base64: {e}")),
        },
        [_] => Vec::new(),
        _ => vec![Violation::new(
            at,
            "could not convert backend config: a data source is one of secret, file, inline, \
             inlineString",
        )],
    }
}

/// The PEM texts of the CA's certificate and key.
struct PemPair {
    cert: Vec<u8>,
    key: Vec<u8>,
}

/// A field of the conf (`cert` or `key`) that cannot be read, and why.
type Unreadable = (&'static str, String);

/// The PEM of the certificate and key, or the field that cannot be had and why.
fn read_pair(conf: &ProvidedConf, material: &CaMaterial) -> Result<PemPair, Unreadable> {
    let read = |field: &'static str, ds: &Option<DataSource>, m: &Option<Material>| {
        match m {
            Some(m) => resolve::bytes(m).map_err(|e| (field, e)),
            // Resolution leaves out only a Secret that is not there.
            None => Err((field, missing_secret(ds))),
        }
    };
    Ok(PemPair {
        cert: read("cert", &conf.cert, &material.cert)?,
        key: read("key", &conf.key, &material.key)?,
    })
}

fn missing_secret(ds: &Option<DataSource>) -> String {
    match ds.as_ref().and_then(|ds| ds.secret.as_deref()) {
        Some(name) => format!("could not load data: Secret {name:?} not found in the mesh"),
        None => "could not load data".to_string(),
    }
}

/// Kuma's `validateCaCert`: a key pair as Go's `tls.X509KeyPair` takes it (at `cert`), then
/// each certificate a CA that may sign and may not agree keys (at `cert[n]`).
fn ca_violations(at: &str, pair: &PemPair) -> Vec<Violation> {
    let chain = match key_pair(pair) {
        Ok(chain) => chain,
        Err(e) => {
            return vec![Violation::new(
                format!("{at}.cert"),
                format!("not a valid TLS key pair: {e}"),
            )]
        }
    };
    let mut out = Vec::new();
    for (n, der) in chain.iter().enumerate() {
        let field = format!("{at}.cert[{n}]");
        let cert = match X509Certificate::from_der(der) {
            Ok((_, cert)) => cert,
            Err(e) => {
                out.push(Violation::new(
                    field,
                    format!("not a valid x509 certificate: {e}"),
                ));
                return out;
            }
        };
        let usage = cert.key_usage().ok().flatten().map(|u| u.value);
        if !cert.is_ca() {
            out.push(Violation::new(
                &field,
                "basic constraint 'CA' must be set to 'true' (see X509-SVID: 4.1. Basic Constraints)",
            ));
        }
        if !usage.is_some_and(|u| u.key_cert_sign()) {
            out.push(Violation::new(
                &field,
                "key usage extension 'keyCertSign' must be set (see X509-SVID: 4.3. Key Usage)",
            ));
        }
        if usage.is_some_and(|u| u.key_agreement()) {
            out.push(Violation::new(
                &field,
                "key usage extension 'keyAgreement' must NOT be set (see X509-SVID: Appendix A. X.509 Field Reference)",
            ));
        }
    }
    out
}

/// Go's `tls.X509KeyPair`, in its words: the certificates of the PEM, the key of the PEM,
/// and the key the first certificate's.
fn key_pair(pair: &PemPair) -> Result<Vec<CertificateDer<'static>>, String> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pair.cert)
        .filter_map(Result::ok)
        .collect();
    let Some(first) = chain.first() else {
        return Err("tls: failed to find any PEM data in certificate input".to_string());
    };
    let key = PrivateKeyDer::from_pem_slice(&pair.key)
        .map_err(|_| "tls: failed to find any PEM data in key input".to_string())?;
    X509Certificate::from_der(first).map_err(|e| format!("x509: {e}"))?;
    match resolve::key_matches(first, &key) {
        Ok(true) => Ok(chain),
        Ok(false) => Err("tls: private key does not match public key".to_string()),
        Err(_) => Err("tls: failed to parse private key".to_string()),
    }
}

/// The CA of a mesh, loaded to issue certificates: what the checks above let through.
pub struct MeshCa {
    /// Every certificate of the CA's PEM: what verifies a certificate it issued.
    pub trust_pem: String,
    pub(super) issuer: Issuer<'static, KeyPair>,
    pub(super) certificate: CertificateDer<'static>,
}

/// Leaves the key out.
impl std::fmt::Debug for MeshCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MeshCa").finish_non_exhaustive()
    }
}

impl MeshCa {
    /// The CA of `backend` (of type `provided`) of Mesh `mesh`, or what stops it from issuing:
    /// the checks report bad material; this adds what `rcgen` cannot sign with.
    pub fn load(mesh: &str, backend: &CaBackend, resolved: &Resolved) -> Result<MeshCa, String> {
        let conf = resolve::provided_conf(backend).map_err(|e| format!("its conf: {e}"))?;
        let no_material = CaMaterial::default();
        let material = resolved
            .mesh_ca(mesh, &backend.name)
            .unwrap_or(&no_material);
        let pair = read_pair(&conf, material).map_err(|(field, e)| format!("conf.{field}: {e}"))?;
        let chain = key_pair(&pair).map_err(|e| format!("conf.cert: {e}"))?;
        let certificate = chain.first().cloned().ok_or("conf.cert: no certificate")?;
        let key_text = String::from_utf8_lossy(&pair.key);
        let key = KeyPair::from_pem(&key_text).map_err(|_| {
            "conf.key: only a PKCS#8 key (-----BEGIN PRIVATE KEY-----) can sign here; convert \
             it with `openssl pkcs8 -topk8 -nocrypt -in KEY -out KEY.pk8`"
                .to_string()
        })?;
        let issuer = Issuer::from_ca_cert_der(&certificate, key)
            .map_err(|e| format!("conf.cert: cannot issue from it: {e}"))?;
        let trust_pem = chain
            .iter()
            .map(|der| pem_of(der))
            .collect::<Vec<_>>()
            .concat();
        Ok(MeshCa {
            trust_pem,
            issuer,
            certificate,
        })
    }
}

/// A certificate as PEM.
pub fn pem_of(der: &CertificateDer<'_>) -> String {
    use base64::Engine as _;
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap_or_default())
        .collect();
    format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
        lines.join("\n")
    )
}
