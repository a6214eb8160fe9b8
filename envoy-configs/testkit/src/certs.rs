//! Certificates made at test time with rcgen, written as PEM files.

use std::fs;
use std::io::Write;
use std::net::IpAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use rcgen::{
    date_time_ymd, BasicConstraints, CertificateParams, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType,
};

/// A certificate and its private key, in memory and on disk (key file mode 0600).
#[derive(Clone, Debug)]
pub struct CertKey {
    pub cert_pem: String,
    pub key_pem: String,
    pub cert_path: PathBuf,
    pub key_path: PathBuf,
}

/// When a leaf certificate is valid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Validity {
    /// From 2000 to 2999.
    Valid,
    /// Ended in 2001.
    Expired,
    /// Starts in 2999.
    NotYetValid,
}

/// What most tests need: a test CA (`ca.pem`), a server certificate (`server.pem`) and a client
/// certificate `CN=client-app` (`client.pem`) signed by it, with their keys, in one dir.
pub struct Pki {
    pub ca: Ca,
    /// For the names given and 127.0.0.1.
    pub server: CertKey,
    pub client: CertKey,
}

impl Pki {
    /// The server certificate is for `httpbin.test` and 127.0.0.1.
    pub fn new(dir: &Path) -> Pki {
        Self::for_names(dir, &["httpbin.test"])
    }

    /// The server certificate is for `names` and 127.0.0.1.
    pub fn for_names(dir: &Path, names: &[&str]) -> Pki {
        let ca = Ca::new(dir, "ca");
        Pki {
            server: ca.server_cert(dir, "server", names, &[IpAddr::from([127, 0, 0, 1])]),
            client: ca.client_cert(dir, "client", "client-app"),
            ca,
        }
    }
}

/// A test certificate authority that signs server and client certificates.
pub struct Ca {
    pub name: String,
    /// The CA certificate (its key is written too, for completeness).
    pub cert: CertKey,
    issuer: Issuer<'static, KeyPair>,
}

impl Ca {
    /// A new self-signed CA with subject `CN=<name>`, written to `<dir>/<name>.pem` and
    /// `<dir>/<name>.key`.
    pub fn new(dir: &Path, name: &str) -> Ca {
        let mut params = CertificateParams::default();
        params.distinguished_name = dn(name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.not_before = date_time_ymd(2000, 1, 1);
        params.not_after = date_time_ymd(2999, 1, 1);
        let key = KeyPair::generate().expect("generate CA key");
        let cert = params.self_signed(&key).expect("self-sign CA");
        let cert = write_pair(dir, name, cert.pem(), key.serialize_pem());
        Ca {
            name: name.to_string(),
            cert,
            issuer: Issuer::new(params, key),
        }
    }

    /// Path of the CA certificate PEM (what goes into `trusted_ca`).
    pub fn ca_path(&self) -> &Path {
        &self.cert.cert_path
    }

    /// The CA certificate PEM.
    pub fn ca_pem(&self) -> &str {
        &self.cert.cert_pem
    }

    /// A valid server certificate for the given DNS names and IPs, subject CN = the first
    /// DNS name (or the first IP). Written to `<dir>/<stem>.pem` / `<dir>/<stem>.key`.
    pub fn server_cert(&self, dir: &Path, stem: &str, dns: &[&str], ips: &[IpAddr]) -> CertKey {
        let cn = dns
            .first()
            .map(|d| d.to_string())
            .or_else(|| ips.first().map(|ip| ip.to_string()))
            .unwrap_or_else(|| stem.to_string());
        self.leaf(dir, stem, &cn, dns, ips, Validity::Valid, true)
    }

    /// A server certificate with the given validity (expired, not yet valid).
    pub fn server_cert_with_validity(
        &self,
        dir: &Path,
        stem: &str,
        dns: &[&str],
        ips: &[IpAddr],
        validity: Validity,
    ) -> CertKey {
        let cn = dns.first().copied().unwrap_or(stem).to_string();
        self.leaf(dir, stem, &cn, dns, ips, validity, true)
    }

    /// A client certificate with subject `CN=<cn>` (no SANs besides a DNS name = cn when
    /// the cn is a valid DNS name). Envoy's `%DOWNSTREAM_PEER_SUBJECT%` shows `CN=<cn>`.
    pub fn client_cert(&self, dir: &Path, stem: &str, cn: &str) -> CertKey {
        self.leaf(dir, stem, cn, &[], &[], Validity::Valid, false)
    }

    #[allow(clippy::too_many_arguments)]
    fn leaf(
        &self,
        dir: &Path,
        stem: &str,
        cn: &str,
        dns: &[&str],
        ips: &[IpAddr],
        validity: Validity,
        server: bool,
    ) -> CertKey {
        let mut params = CertificateParams::default();
        params.distinguished_name = dn(cn);
        params.is_ca = IsCa::ExplicitNoCa;
        params.subject_alt_names = dns
            .iter()
            .map(|d| SanType::DnsName((*d).try_into().expect("valid DNS SAN")))
            .chain(ips.iter().map(|ip| SanType::IpAddress(*ip)))
            .collect();
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![if server {
            ExtendedKeyUsagePurpose::ServerAuth
        } else {
            ExtendedKeyUsagePurpose::ClientAuth
        }];
        params.use_authority_key_identifier_extension = true;
        let (not_before, not_after) = match validity {
            Validity::Valid => (date_time_ymd(2000, 1, 1), date_time_ymd(2999, 1, 1)),
            Validity::Expired => (date_time_ymd(2000, 1, 1), date_time_ymd(2001, 1, 1)),
            Validity::NotYetValid => (date_time_ymd(2999, 1, 1), date_time_ymd(3000, 1, 1)),
        };
        params.not_before = not_before;
        params.not_after = not_after;
        let key = KeyPair::generate().expect("generate leaf key");
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("sign leaf certificate");
        write_pair(dir, stem, cert.pem(), key.serialize_pem())
    }
}

fn dn(cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    dn
}

fn write_pair(dir: &Path, stem: &str, cert_pem: String, key_pem: String) -> CertKey {
    let cert_path = dir.join(format!("{stem}.pem"));
    let key_path = dir.join(format!("{stem}.key"));
    fs::write(&cert_path, &cert_pem).expect("write certificate");
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&key_path)
        .expect("create key file");
    f.write_all(key_pem.as_bytes()).expect("write key");
    CertKey {
        cert_pem,
        key_pem,
        cert_path,
        key_path,
    }
}
