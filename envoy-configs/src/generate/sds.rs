//! The SDS secrets of `--xds-dir`: a cluster names its client certificate and its CA as SDS
//! secrets, each in a file of `DIR/sds/` that Envoy watches ([`watched`]); Envoy loads the
//! material again when a file is renamed there, or, in a Kubernetes volume, when the kubelet
//! swaps `DIR/..data`.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use crate::envoy::{
    ConfigSource, PathConfigSource, SdsSecretConfig, Secret, SecretMaterial, WatchedDirectory,
};

/// The directory of the secrets' files, in the xDS directory.
pub const SDS_DIR: &str = "sds";

/// The file `path`, read again whenever a file is renamed into `dir`.
pub fn watched(path: &Path, dir: &Path) -> ConfigSource {
    ConfigSource {
        path_config_source: PathConfigSource {
            path: path.display().to_string(),
            watched_directory: WatchedDirectory {
                path: dir.display().to_string(),
            },
        },
    }
}

/// A secret that SDS serves, and its file's name in the SDS directory.
#[derive(Debug, Clone, PartialEq)]
pub struct ServedSecret {
    pub file: String,
    pub secret: Secret,
}

/// The secrets of `--xds-dir`: the directory of their files, and those named so far.
#[derive(Debug)]
pub struct Sds {
    dir: PathBuf,
    /// Where a move has Envoy read a secret's file again.
    watched: PathBuf,
    served: Vec<ServedSecret>,
    /// The index in `served` of each secret name, and the files taken: a lookup per cluster
    /// must not scan every secret named before it.
    by_name: HashMap<String, usize>,
    files: HashSet<String>,
}

impl Sds {
    /// No secret yet, with their files in `xds_dir/sds/`. `kubelet_volume`: `xds_dir` is a
    /// Kubernetes volume, whose files change only by the swap of `xds_dir/..data`; a watch on
    /// `sds/`, reached through the link the swap replaces, would never see it.
    pub fn new(xds_dir: &Path, kubelet_volume: bool) -> Sds {
        let dir = xds_dir.join(SDS_DIR);
        Sds {
            watched: if kubelet_volume {
                xds_dir.to_path_buf()
            } else {
                dir.clone()
            },
            dir,
            served: Vec::new(),
            by_name: HashMap::new(),
            files: HashSet::new(),
        }
    }

    /// The secrets named so far, in the order they were named.
    pub fn served(&self) -> &[ServedSecret] {
        &self.served
    }

    /// The SDS reference to a cluster's client certificate or CA, the secret
    /// `<cluster>.client-certificate` or `<cluster>.ca` in a file of its own. A name asked
    /// again (a cluster with a socket per host) is the same secret.
    pub fn secret(&mut self, cluster: &str, material: SecretMaterial) -> SdsSecretConfig {
        let kind = match material {
            SecretMaterial::TlsCertificate(_) => "client-certificate",
            SecretMaterial::ValidationContext(_) => "ca",
        };
        self.named(&format!("{cluster}.{kind}"), material)
    }

    /// The SDS reference to the secret `name`, in a file of its own named after it (`-2`,
    /// `-3`... when a name made file-name-safe is taken). A name asked again is the same
    /// secret.
    pub fn named(&mut self, name: &str, material: SecretMaterial) -> SdsSecretConfig {
        let name = name.to_string();
        let file = match self.by_name.get(&name) {
            Some(&index) => self.served[index].file.clone(),
            None => {
                let stem = file_name_safe(&name);
                let file = (1..)
                    .map(|n| match n {
                        1 => first_file(&name),
                        n => format!("{stem}-{n}.yaml"),
                    })
                    .find(|file| !self.files.contains(file))
                    .unwrap_or_default();
                self.by_name.insert(name.clone(), self.served.len());
                self.files.insert(file.clone());
                self.served.push(ServedSecret {
                    file: file.clone(),
                    secret: Secret {
                        name: name.clone(),
                        material,
                    },
                });
                file
            }
        };
        SdsSecretConfig {
            name,
            sds_config: watched(&self.dir.join(file), &self.watched),
        }
    }
}

/// The file of the secret `name`, unless another secret took it first.
pub fn first_file(name: &str) -> String {
    format!("{}.yaml", file_name_safe(name))
}

/// A file-name-safe cluster name (service names are tags: keep them readable).
pub fn file_name_safe(name: &str) -> String {
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
