//! Where TLS material given inline (or by a Secret) goes: into the configuration, or, with
//! `--secrets-dir` ([`Options::secrets_dir`](super::Options::secrets_dir)), into files of its
//! own that the configuration names by path. The generator returns those files; the CLI writes
//! them (directory 0700, files 0600) before the configuration.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::envoy::DataSource;

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
}

impl Secrets {
    /// Material stays inline without a directory.
    pub fn new(dir: Option<&Path>) -> Secrets {
        Secrets {
            dir: dir.map(Path::to_path_buf),
            ..Secrets::default()
        }
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
        let stem = format!("{}.{}", safe(cluster), field.file_stem());
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

/// A file-name-safe cluster name (service names are tags: keep them readable).
fn safe(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect::<String>()
        .trim_start_matches('.')
        .to_string()
}

