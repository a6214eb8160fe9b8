//! Listeners and clusters as files Envoy watches (`--xds-dir`): the bootstrap names
//! `DIR/lds.yaml` and `DIR/cds.yaml` in its `dynamic_resources`, and Envoy reads both again
//! whenever a file is renamed into DIR, so writing them anew updates a running Envoy.
//!
//! Envoy reads the two files in no fixed order after a rename. So the routes do not have
//! Envoy check their clusters (a route naming a cluster not read yet would get the whole
//! listener refused, and not retried), and the writer ([`crate::xds_dir`]) puts in
//! place the union of the old and new clusters first, then the listeners, then the new
//! clusters: a cluster that a route may still name is removed only after the route is gone.
//!
//! Clusters name their TLS material as SDS secrets, one file each in `DIR/sds/`
//! ([`super::sds`]): the writer puts those in place before the clusters that name them,
//! and removes the ones no cluster names after the clusters.
//!
//! `lds.yaml` and `cds.yaml` carry one version, a digest of the listeners and clusters
//! ([`Files::version`]), which Envoy shows on its admin page: the configuration an Envoy
//! runs. A change of TLS material alone changes its SDS file only.
//!
//! The same directory works as a mounted Kubernetes ConfigMap (`--format kubernetes`), where
//! the kubelet swaps a `..data` symlink in DIR: every file is then read again on any swap,
//! the SDS files too, since they watch DIR itself there ([`super::sds::Sds::new`]).

use std::path::Path;

use serde_json::Value;

pub use super::sds::SDS_DIR;
use super::sds::{watched, ServedSecret};
use super::Error;
use crate::envoy::{Cluster, DiscoveryResponse, DynamicResources, Listener, Node, XdsResource};

/// The clusters' file in the xDS directory.
pub const CDS_FILE: &str = "cds.yaml";
/// The listeners' file in the xDS directory.
pub const LDS_FILE: &str = "lds.yaml";

/// The bootstrap's `dynamic_resources`: LDS and CDS from the files in `dir` (absolute).
pub fn dynamic_resources(dir: &Path) -> DynamicResources {
    DynamicResources {
        lds_config: watched(&dir.join(LDS_FILE), dir),
        cds_config: watched(&dir.join(CDS_FILE), dir),
    }
}

/// Envoy takes xDS only from a node with an id and a cluster: this Envoy, serving `mesh`.
pub fn node(mesh: &str) -> Node {
    Node {
        id: "extsvc".to_string(),
        cluster: mesh.to_string(),
    }
}

/// The files' contents, as DiscoveryResponses.
#[derive(Debug, Clone, PartialEq)]
pub struct Files {
    pub lds: Value,
    pub cds: Value,
    /// One file per secret in [`SDS_DIR`], by file name.
    pub sds: Vec<(String, Value)>,
}

impl Files {
    pub fn new(
        listeners: &[Listener],
        clusters: &[Cluster],
        secrets: &[ServedSecret],
    ) -> Result<Files, Error> {
        let values = |resources: Vec<XdsResource<'_>>| {
            resources
                .iter()
                .map(serde_json::to_value)
                .collect::<Result<Vec<Value>, _>>()
                .map_err(|e| Error::Serialize(e.to_string()))
        };
        let listeners = values(listeners.iter().map(XdsResource::Listener).collect())?;
        let clusters = values(clusters.iter().map(XdsResource::Cluster).collect())?;
        let sds = secrets
            .iter()
            .map(|s| {
                let secret = values(vec![XdsResource::Secret(&s.secret)])?;
                let version = digest(&secret)?;
                Ok((s.file.clone(), response(secret, version)?))
            })
            .collect::<Result<Vec<_>, Error>>()?;
        let version = digest(&(&listeners, &clusters))?;
        Ok(Files {
            lds: response(listeners, version.clone())?,
            cds: response(clusters, version)?,
            sds,
        })
    }

    /// The configuration's version: a digest of the listeners and clusters, which Envoy shows
    /// as `listener_manager.lds.version_text` and `cluster_manager.cds.version_text`. The same
    /// configuration gives the same version on any machine.
    pub fn version(&self) -> &str {
        self.lds["version_info"].as_str().unwrap_or_default()
    }
}

/// The clusters of `cds` and, after them, those of the file text `old` that `cds` lacks:
/// what CDS holds while the listeners change. `None` when `old` is not a DiscoveryResponse.
pub fn cluster_union(cds: &Value, old: &str) -> Option<Value> {
    let old: Value = serde_yaml_ng::from_str(old).ok()?;
    let mut resources = cds.get("resources")?.as_array()?.clone();
    let name = |r: &Value| r.get("name").cloned();
    let kept: Vec<Value> = old
        .get("resources")?
        .as_array()?
        .iter()
        .filter(|o| !resources.iter().any(|r| name(r) == name(o)))
        .cloned()
        .collect();
    if kept.is_empty() {
        return Some(cds.clone());
    }
    resources.extend(kept);
    let version = digest(&resources).ok()?;
    response(resources, version).ok()
}

/// Whether a DiscoveryResponse holds a private key itself (the identity's secret): its file
/// must then be private.
pub fn holds_private_key(response: &Value) -> bool {
    let resources = response.get("resources").and_then(Value::as_array);
    resources.into_iter().flatten().any(|r| {
        let key = r.pointer("/tls_certificate/private_key");
        key.is_some_and(|k| k.get("inline_string").is_some() || k.get("inline_bytes").is_some())
    })
}

/// A file's text: YAML, as the bootstrap.
pub fn to_yaml(response: &Value) -> Result<String, Error> {
    serde_yaml_ng::to_string(response).map_err(|e| Error::Serialize(e.to_string()))
}

/// A DiscoveryResponse of `resources` at `version`.
fn response(resources: Vec<Value>, version: String) -> Result<Value, Error> {
    serde_json::to_value(DiscoveryResponse {
        version_info: version,
        resources,
    })
    .map_err(|e| Error::Serialize(e.to_string()))
}

/// A digest of `value`'s JSON, 16 hex digits.
fn digest(value: &impl serde::Serialize) -> Result<String, Error> {
    let text = serde_json::to_string(value).map_err(|e| Error::Serialize(e.to_string()))?;
    // FNV-1a: stable across builds and machines, unlike std's hasher.
    let digest = text.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    Ok(format!("{digest:016x}"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use serde_json::json;

    fn cluster(name: &str) -> Cluster {
        Cluster {
            name: name.to_string(),
            ..Cluster::default()
        }
    }

    fn names(response: &Value) -> Vec<&str> {
        response["resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap())
            .collect()
    }

    #[test]
    fn each_file_is_a_discovery_response_of_typed_resources() {
        let files = Files::new(&[], &[cluster("a")], &[]).unwrap();
        assert_eq!(
            files.cds["resources"],
            json!([{
                "@type": "type.googleapis.com/envoy.config.cluster.v3.Cluster",
                "name": "a",
                "connect_timeout": "0s",
            }])
        );
        assert_eq!(files.lds["resources"], json!([]));
        let version = files.cds["version_info"].as_str().unwrap();
        assert_eq!(version.len(), 16);
        let other = Files::new(&[], &[cluster("b")], &[]).unwrap();
        assert_ne!(other.cds["version_info"], files.cds["version_info"]);
    }

    #[test]
    fn the_union_keeps_the_new_clusters_and_adds_the_old_ones_missing() {
        let new = Files::new(&[], &[cluster("b"), cluster("c")], &[]).unwrap();
        let old = Files::new(&[], &[cluster("a"), cluster("b")], &[]).unwrap();
        let union = cluster_union(&new.cds, &to_yaml(&old.cds).unwrap()).unwrap();
        assert_eq!(names(&union), ["b", "c", "a"]);
        let same = cluster_union(&new.cds, &to_yaml(&new.cds).unwrap()).unwrap();
        assert_eq!(same, new.cds);
        assert_eq!(cluster_union(&new.cds, "not: [a response"), None);
    }

    #[test]
    fn a_secret_with_its_key_inline_is_private_one_naming_files_is_not() {
        let secret = |key: Value| {
            json!({"resources": [{"name": "s", "tls_certificate": {
                "certificate_chain": {"inline_string": "CERT"}, "private_key": key}}]})
        };
        assert!(holds_private_key(&secret(json!({"inline_string": "KEY"}))));
        assert!(holds_private_key(&secret(json!({"inline_bytes": "S0VZ"}))));
        assert!(!holds_private_key(&secret(json!({"filename": "/k.pem"}))));
        let ca = json!({"resources": [{"name": "ca", "validation_context": {
            "trusted_ca": {"inline_string": "CA"}}}]});
        assert!(!holds_private_key(&ca));
    }

    #[test]
    fn the_bootstrap_names_both_files_and_watches_their_directory() {
        let d = serde_json::to_value(dynamic_resources(Path::new("/x/xds"))).unwrap();
        assert_eq!(
            d,
            json!({
                "lds_config": {"path_config_source": {
                    "path": "/x/xds/lds.yaml", "watched_directory": {"path": "/x/xds"}}},
                "cds_config": {"path_config_source": {
                    "path": "/x/xds/cds.yaml", "watched_directory": {"path": "/x/xds"}}},
            })
        );
    }
}
