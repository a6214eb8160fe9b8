//! Issuing an Envoy's certificate from the mesh CA, as Kuma's `NewWorkloadCert` makes one
//! (`pkg/core/ca/issuer`): no subject, the identity in URI SANs only, client and server use,
//! valid from 10 s before now (clock skew) for the backend's lifetime. The key is ECDSA P-256
//! (Kuma's is RSA 2048: the same trust, a smaller and faster key). A certificate issued
//! earlier is kept while it says the same and is not due for renewal, so that running
//! `generate` again does not change a file Envoy watches for nothing.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rcgen::{
    CertificateParams, DistinguishedName, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
    SanType, PKCS_ECDSA_P256_SHA256,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

use super::ca::MeshCa;
use crate::resolve;

/// How far back a certificate's validity starts, for peers whose clock is behind (Kuma's
/// `DefaultAllowedClockSkew`).
pub const CLOCK_SKEW: Duration = Duration::from_secs(10);

/// The shortest lifetime issued: a shorter one would be renewed before Envoy loads it.
pub const SHORTEST_LIFETIME: Duration = Duration::from_secs(1);

/// A certificate of the mesh CA and its key: an Envoy's identity, with what checks a peer's.
#[derive(Clone, PartialEq, Eq)]
pub struct Issued {
    pub certificate_pem: String,
    /// PKCS#8 PEM. Written only into the identity's SDS file, which is private.
    pub key_pem: String,
    /// The mesh CA's certificates: what a peer's certificate must chain to.
    pub trust_pem: String,
    /// The URI SANs, in the order written.
    pub uris: Vec<String>,
    pub not_after: SystemTime,
    /// When to issue the next one: at 4/5 of the lifetime, as Kuma renews.
    pub renew_at: SystemTime,
}

/// Leaves the key out.
impl std::fmt::Debug for Issued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issued")
            .field("uris", &self.uris)
            .field("not_after", &self.not_after)
            .field("renew_at", &self.renew_at)
            .finish_non_exhaustive()
    }
}

/// A certificate and key written by an earlier run (the identity's SDS file).
#[derive(Clone, PartialEq, Eq)]
pub struct Kept {
    pub certificate_pem: String,
    pub key_pem: String,
}

impl std::fmt::Debug for Kept {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kept").finish_non_exhaustive()
    }
}

/// The certificate for `uris`, living `lifetime`: the kept one while it serves (same CA,
/// SANs and lifetime, its key its own, not yet due for renewal), else a new one.
pub fn provide(
    ca: &MeshCa,
    uris: &[String],
    lifetime: Duration,
    kept: Option<&Kept>,
    now: SystemTime,
) -> Result<Issued, String> {
    if let Some(issued) = kept.and_then(|k| reusable(ca, uris, lifetime, k, now)) {
        return Ok(issued);
    }
    issue(ca, uris, lifetime, now)
}

/// A new certificate from `ca` for `uris`, valid from `now` less [`CLOCK_SKEW`] to `now`
/// plus `lifetime`.
pub fn issue(
    ca: &MeshCa,
    uris: &[String],
    lifetime: Duration,
    now: SystemTime,
) -> Result<Issued, String> {
    if lifetime < SHORTEST_LIFETIME {
        return Err(format!(
            "a certificate that lives {lifetime:?} expires before Envoy can use it: give \
             dpCert.rotation.expiration of at least 1s"
        ));
    }
    let mut params = CertificateParams::default();
    // Kuma leaves the subject empty: the identity is in the SANs (so they are critical).
    params.distinguished_name = DistinguishedName::new();
    params.subject_alt_names = uris
        .iter()
        .map(|uri| {
            rcgen::string::Ia5String::try_from(uri.as_str())
                .map(SanType::URI)
                .map_err(|e| format!("the URI SAN {uri:?} cannot be written: {e}"))
        })
        .collect::<Result<_, _>>()?;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![
        KeyUsagePurpose::KeyEncipherment,
        KeyUsagePurpose::KeyAgreement,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.use_authority_key_identifier_extension = true;
    params.not_before = (now - CLOCK_SKEW).into();
    params.not_after = (now + lifetime).into();
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)
        .map_err(|e| format!("cannot make a key: {e}"))?;
    let certificate = params
        .signed_by(&key, &ca.issuer)
        .map_err(|e| format!("cannot sign the certificate: {e}"))?;
    Ok(Issued {
        certificate_pem: certificate.pem(),
        key_pem: key.serialize_pem(),
        trust_pem: ca.trust_pem.clone(),
        uris: uris.to_vec(),
        not_after: now + lifetime,
        renew_at: now + lifetime * 4 / 5,
    })
}

/// The kept certificate as [`Issued`], when it still serves at `now`.
fn reusable(
    ca: &MeshCa,
    uris: &[String],
    lifetime: Duration,
    kept: &Kept,
    now: SystemTime,
) -> Option<Issued> {
    let der = CertificateDer::from_pem_slice(kept.certificate_pem.as_bytes()).ok()?;
    let key = PrivateKeyDer::from_pem_slice(kept.key_pem.as_bytes()).ok()?;
    let (_, cert) = X509Certificate::from_der(&der).ok()?;
    let (_, ca_cert) = X509Certificate::from_der(&ca.certificate).ok()?;
    cert.verify_signature(Some(ca_cert.public_key())).ok()?;
    if uri_sans(&cert) != uris || !resolve::key_matches(&der, &key).ok()? {
        return None;
    }
    let at = |seconds: i64| Some(UNIX_EPOCH + Duration::from_secs(u64::try_from(seconds).ok()?));
    let validity = cert.validity();
    let not_before = at(validity.not_before.timestamp())?;
    let not_after = at(validity.not_after.timestamp())?;
    let issued_at = not_before + CLOCK_SKEW;
    let kept_lifetime = not_after.duration_since(issued_at).ok()?;
    // Certificates keep whole seconds.
    if kept_lifetime.abs_diff(lifetime) > Duration::from_secs(1) {
        return None;
    }
    let renew_at = issued_at + kept_lifetime * 4 / 5;
    (now < renew_at).then(|| Issued {
        certificate_pem: kept.certificate_pem.clone(),
        key_pem: kept.key_pem.clone(),
        trust_pem: ca.trust_pem.clone(),
        uris: uris.to_vec(),
        not_after,
        renew_at,
    })
}

/// A certificate's URI SANs, in order.
pub fn uri_sans(cert: &X509Certificate<'_>) -> Vec<String> {
    let Ok(Some(sans)) = cert.subject_alternative_name() else {
        return Vec::new();
    };
    sans.value
        .general_names
        .iter()
        .filter_map(|name| match name {
            GeneralName::URI(uri) => Some(uri.to_string()),
            _ => None,
        })
        .collect()
}
