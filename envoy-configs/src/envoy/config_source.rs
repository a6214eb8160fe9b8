//! Where Envoy reads a resource from: files it watches (the xDS directory, SDS secrets).

use serde::Serialize;

/// `config.core.v3.ConfigSource`, from a file only.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConfigSource {
    pub path_config_source: PathConfigSource,
}

/// A file Envoy reads again whenever a file is moved into `watched_directory`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PathConfigSource {
    pub path: String,
    pub watched_directory: WatchedDirectory,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WatchedDirectory {
    pub path: String,
}

/// `SdsSecretConfig`: a secret by name, from the file its `sds_config` names.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SdsSecretConfig {
    pub name: String,
    pub sds_config: ConfigSource,
}
