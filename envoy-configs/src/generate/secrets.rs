//! Where TLS material given inline (or by a Secret) goes: into the configuration, or, with
//! `--secrets-dir` ([`Options::secrets_dir`](super::Options::secrets_dir)), into files of its
//! own that the configuration names by path. The generator returns those files; the CLI writes
//! them (directory 0700, files 0600) before the configuration.
//!
//! With `--xds-dir`, a cluster names its client certificate and its CA as SDS secrets, each in
//! a file of `DIR/sds/` ([`super::sds`]): Envoy watches the directory of every file
//! a secret names, and loads the material again when a file is renamed there.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::envoy::DataSource;

use super::sds::{self, Sds};

/// One file to write. `Debug` leaves the bytes out: they may be a private key.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretFile {
    pub path: PathBuf,
    pub bytes: Vec<u8>,
}

impl fmt::Debug for SecretFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretFile")
            .field("path", &self.path)
            .field("bytes", &format_args!("<{} bytes>", self.bytes.len()))
            .finish()
    }
}

/// The TLS DataSource fields of an ExternalService.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    CaCert,
    ClientCert,
    ClientKey,
}

impl Field {
    /// As the resource names it (`networking.tls.<name>`).
    pub fn name(self) -> &'static str {
        match self {
            Field::CaCert => "caCert",
            Field::ClientCert => "clientCert",
            Field::ClientKey => "clientKey",
        }
    }

    fn file_stem(self) -> &'static str {
        match self {
            Field::CaCert => "ca-cert",
            Field::ClientCert => "client-cert",
            Field::ClientKey => "client-key",
        }
    }
}

/// Places the material of every TLS DataSource of one bootstrap.
#[derive(Debug, Default)]
pub struct Secrets {
    dir: Option<PathBuf>,
    files: Vec<SecretFile>,
    inline_private_keys: bool,
    sds: Option<Sds>,
}

impl Secrets {
    /// Material stays inline without a directory; with the SDS of an xDS directory, clusters
    /// name their TLS material as SDS secrets.
    pub fn new(dir: Option<&Path>, sds: Option<Sds>) -> Secrets {
        Secrets {
            dir: dir.map(Path::to_path_buf),
            sds,
            ..Secrets::default()
        }
    }

    /// The SDS secrets, with an xDS directory.
    pub fn sds(&mut self) -> Option<&mut Sds> {
        self.sds.as_mut()
    }

    /// The secrets SDS serves, in the order they were named.
    pub fn served(&self) -> &[sds::ServedSecret] {
        self.sds.as_ref().map_or(&[], Sds::served)
    }

    /// The DataSource for `bytes` of a cluster's `field`: inline (as text when it is text), or
    /// the file `<dir>/<cluster>.<field>.pem` (`-2`, `-3`... when that name holds other bytes).
    /// The same bytes under one name are one file.
    pub fn data_source(&mut self, cluster: &str, field: Field, bytes: Vec<u8>) -> DataSource {
        let Some(dir) = &self.dir else {
            self.inline_private_keys |= field == Field::ClientKey;
            return match String::from_utf8(bytes) {
                Ok(text) => DataSource::InlineString(text),
                Err(e) => DataSource::InlineBytes(e.into_bytes()),
            };
        };
        let stem = format!("{}.{}", sds::file_name_safe(cluster), field.file_stem());
        let mut n = 1;
        loop {
            let path = match n {
                1 => dir.join(format!("{stem}.pem")),
                n => dir.join(format!("{stem}-{n}.pem")),
            };
            let filename = DataSource::Filename(path.display().to_string());
            match self.files.iter().find(|f| f.path == path) {
                Some(taken) if taken.bytes == bytes => return filename,
                Some(_) => n += 1,
                None => {
                    self.files.push(SecretFile { path, bytes });
                    return filename;
                }
            }
        }
    }

    /// Whether a private key is written inline (the configuration must then be private).
    pub fn inline_private_keys(&self) -> bool {
        self.inline_private_keys
    }

    /// The files to write, in the order they were named.
    pub fn into_files(self) -> Vec<SecretFile> {
        self.files
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use crate::envoy::{CertificateValidationContext, SecretMaterial};
    use crate::generate::test_support::{assert_cases, yaml};

    /// Places each (cluster, field, bytes) in turn; the DataSources as YAML, then the files.
    fn place(dir: Option<&str>, material: &[(&str, Field, &[u8])]) -> (String, Secrets) {
        let mut secrets = Secrets::new(dir.map(Path::new), None);
        let sources: Vec<DataSource> = material
            .iter()
            .map(|(cluster, field, bytes)| secrets.data_source(cluster, *field, bytes.to_vec()))
            .collect();
        (yaml(&sources), secrets)
    }

    #[test]
    fn material_is_inline_or_in_files() {
        let (a, b, c) = (
            "external_service_a",
            "external_service_b",
            "external_service_c",
        );
        assert_cases(&[
            (
                "inline: text as a string, other bytes as base64",
                place(
                    None,
                    &[(a, Field::CaCert, b"CA"), (a, Field::ClientKey, b"\xff\0")],
                )
                .0,
                "
- inline_string: CA
- inline_bytes: /wA=
",
            ),
            (
                "a directory: one file per cluster and field, the same bytes once",
                place(
                    Some("/s"),
                    &[
                        (a, Field::ClientCert, b"CERT"),
                        (a, Field::ClientKey, b"KEY"),
                        (a, Field::CaCert, b"CA"),
                        (b, Field::CaCert, b"CA"),
                        (a, Field::CaCert, b"CA"),
                    ],
                )
                .0,
                "
- filename: /s/external_service_a.client-cert.pem
- filename: /s/external_service_a.client-key.pem
- filename: /s/external_service_a.ca-cert.pem
- filename: /s/external_service_b.ca-cert.pem
- filename: /s/external_service_a.ca-cert.pem
",
            ),
            (
                "names made safe; other bytes under a taken name get a number",
                place(
                    Some("/s"),
                    &[
                        ("external_service_c:x", Field::CaCert, b"CA-1"),
                        ("external_service_c_x", Field::CaCert, b"CA-2"),
                        ("external_service_c:x", Field::CaCert, b"CA-1"),
                        (c, Field::CaCert, b"CA-3"),
                    ],
                )
                .0,
                "
- filename: /s/external_service_c_x.ca-cert.pem
- filename: /s/external_service_c_x.ca-cert-2.pem
- filename: /s/external_service_c_x.ca-cert.pem
- filename: /s/external_service_c.ca-cert.pem
",
            ),
        ]);
    }

    #[test]
    fn files_hold_the_bytes_and_only_inline_keys_are_flagged() {
        let (_, secrets) = place(None, &[("c", Field::ClientCert, b"CERT")]);
        assert!(!secrets.inline_private_keys());
        let (_, secrets) = place(None, &[("c", Field::ClientKey, b"KEY")]);
        assert!(secrets.inline_private_keys());
        assert!(secrets.into_files().is_empty());

        let (_, secrets) = place(Some("/s"), &[("c", Field::ClientKey, b"KEY")]);
        assert!(!secrets.inline_private_keys());
        let files = secrets.into_files();
        assert_eq!(
            files,
            vec![SecretFile {
                path: "/s/c.client-key.pem".into(),
                bytes: b"KEY".to_vec()
            }]
        );
        // Debug never shows the bytes.
        assert!(!format!("{files:?}").contains("KEY"));
    }

    #[test]
    fn sds_names_one_secret_per_cluster_and_kind_in_a_file_of_its_own() {
        let mut secrets = Secrets::new(None, Some(Sds::new(Path::new("/x"), false)));
        let ca = |path: &str| {
            SecretMaterial::ValidationContext(CertificateValidationContext {
                trusted_ca: Some(DataSource::Filename(path.to_string())),
                match_typed_subject_alt_names: Vec::new(),
            })
        };
        let sds = secrets.sds().unwrap();
        let files: Vec<String> = [
            ("external_service_a:b", "/1"),
            ("external_service_a_b", "/2"),
            ("external_service_a:b", "/1"),
        ]
        .iter()
        .map(|(cluster, path)| {
            sds.secret(cluster, ca(path))
                .sds_config
                .path_config_source
                .path
        })
        .collect();
        assert_eq!(
            files,
            [
                "/x/sds/external_service_a_b.ca.yaml",
                "/x/sds/external_service_a_b.ca-2.yaml",
                "/x/sds/external_service_a_b.ca.yaml",
            ]
        );
        let names: Vec<&str> = secrets
            .served()
            .iter()
            .map(|s| s.secret.name.as_str())
            .collect();
        assert_eq!(
            names,
            ["external_service_a:b.ca", "external_service_a_b.ca"]
        );
        assert!(Secrets::new(None, None).sds().is_none());
    }
}
