//! `extsvc generate --format kubernetes`: the configuration as Kubernetes manifests, for a
//! fleet of Envoys that the kubelet feeds from ConfigMaps, with no control plane.
//!
//! Each Envoy of the fleet mounts, under [`Layout`]'s root:
//!
//! - `xds/`: one projected volume of the xDS ConfigMaps (`lds.yaml`, `cds.yaml`, `vips.json`,
//!   the public SDS files) and of the Secret of the SDS files holding keys. The kubelet updates
//!   a projected volume by one swap of its `..data` link, which every file of the generated
//!   configuration watches ([`crate::generate::Options::in_pod`]): each Envoy takes a
//!   change whole, routes not checking their clusters (`crate::generate::xds`) so that the
//!   order Envoy reads the files in does not matter;
//! - `module/`: the filter module, as `binaryData`;
//! - `bootstrap/`: the bootstrap, and the transparent proxy's rules for the init containers;
//! - `run/`: an `emptyDir` of the Envoy container's own, for the admin's Unix socket.
//!
//! The egress gateway, or a ZoneEgress, is a Deployment and a Service ([`pod`]); a
//! Dataplane's sidecar is a PodTemplate whose containers, init containers and volumes a user
//! merges into their own workload. The same inputs give the same bytes: nothing of the machine, the clock or the
//! working directory goes in, and what an earlier run issued or allotted (the VIPs, the
//! certificate) is kept from its manifests ([`previous`]).

mod pack;
mod pod;
mod previous;

use std::path::{Path, PathBuf};

use base64::Engine;
use serde_json::{json, Map, Value};

use crate::generate::{sds, xds};
use crate::pipeline::Built;
use crate::transparent_proxy::rules::Capture;
use crate::xds_dir;
use pack::File;
pub use pack::CONFIG_MAP_LIMIT;
pub use pod::SIDECAR_UID;
pub use previous::previous;

/// The Envoy the manifests run: the official image of the version the project is tested
/// with (the Makefile's `ENVOY_VERSION`).
pub const ENVOY_VERSION: &str = "1.40.0";
/// Where the volumes are mounted in the Envoy container, unless `--mount-root` says.
pub const DEFAULT_MOUNT_ROOT: &str = "/etc/extsvc";
/// An image with `iptables-restore` and nothing else (the base of Kubernetes' kube-proxy),
/// for the init containers that install the transparent proxy.
pub const DEFAULT_INIT_IMAGE: &str = "registry.k8s.io/build-image/distroless-iptables:v0.8.7";
/// The module's file name in its ConfigMap, whatever it is called where it was built.
pub const MODULE_FILE: &str = "external_service_filter.wasm";
/// The bootstrap's file name in its ConfigMap.
pub const BOOTSTRAP_FILE: &str = "envoy.yaml";
/// The file that keeps `sds/` in every version of the xDS volume, and what it says.
const SDS_KEEP: &str = "README";
const SDS_KEEP_TEXT: &str = "The SDS files of extsvc's configuration. This file keeps the \
    directory in every version of the volume, so that the kubelet's link to it is there before \
    a version adds the first SDS file.\n";
/// The annotation of the xDS ConfigMaps that carries the configuration's version.
pub const VERSION_ANNOTATION: &str = "extsvc-config-version";

/// The official Envoy image of [`ENVOY_VERSION`].
pub fn default_envoy_image() -> String {
    format!("envoyproxy/envoy:v{ENVOY_VERSION}")
}

/// Where each volume is mounted in the Envoy container: what the configuration names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    pub root: PathBuf,
}

impl Layout {
    pub fn xds_dir(&self) -> PathBuf {
        self.root.join("xds")
    }

    pub fn module_dir(&self) -> PathBuf {
        self.root.join("module")
    }

    pub fn module(&self) -> PathBuf {
        self.module_dir().join(MODULE_FILE)
    }

    pub fn bootstrap_dir(&self) -> PathBuf {
        self.root.join("bootstrap")
    }

    pub fn bootstrap(&self) -> PathBuf {
        self.bootstrap_dir().join(BOOTSTRAP_FILE)
    }

    /// The Envoy container's own `emptyDir`.
    pub fn run_dir(&self) -> PathBuf {
        self.root.join("run")
    }

    pub fn admin_socket(&self) -> PathBuf {
        self.run_dir().join("admin.sock")
    }
}

/// What the manifests are beyond the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fleet {
    /// The objects' name, and their prefix.
    pub name: String,
    pub namespace: Option<String>,
    /// The egress gateway's replicas.
    pub replicas: u32,
    pub envoy_image: String,
    pub init_image: String,
    pub layout: Layout,
}

/// The manifests' text, and what the caller must know of them.
#[derive(Debug)]
pub struct Manifests {
    pub text: String,
    /// The configuration's version ([`xds::Files::version`]).
    pub version: String,
    /// Whether a Secret holds keys: the file they go to must be private.
    pub holds_keys: bool,
}

/// The manifests of the `built` configuration (made with [`Layout`]'s paths and `in_pod`),
/// the module's bytes, and for a sidecar with the transparent proxy, the
/// `capture` its init containers install.
pub fn manifests(
    built: &Built,
    module: &[u8],
    fleet: &Fleet,
    capture: Option<&Capture>,
) -> Result<Manifests, String> {
    let bootstrap = &built.bootstrap;
    let files = bootstrap
        .xds
        .as_ref()
        .ok_or("the configuration has no xDS files: Kubernetes volumes hold nothing else")?;
    let (public, private) = xds_payload(files, bootstrap.vips.as_ref())?;
    let mut bootstrap_files = vec![File::text(
        BOOTSTRAP_FILE,
        bootstrap.to_yaml().map_err(|e| e.to_string())?,
    )];
    if let Some(capture) = capture {
        bootstrap_files.extend(pod::capture_files(capture));
    }
    refuse_keys(bootstrap_files.iter().chain(&public))?;
    let xds_maps = pack::pack(&format!("{}-xds", fleet.name), public)?;
    let key_secrets = pack::pack(&format!("{}-keys", fleet.name), private)?;
    let bootstrap_map = single(pack::pack(
        &format!("{}-bootstrap", fleet.name),
        bootstrap_files,
    )?)?;
    let module_map = single(pack::pack(
        &format!("{}-module", fleet.name),
        vec![File::binary(MODULE_FILE, module.to_vec())],
    )?)?;

    let version = files.version().to_string();
    let meta = Meta {
        fleet,
        version: &version,
    };
    let mut objects: Vec<Value> = key_secrets.iter().map(|s| meta.secret(s)).collect();
    objects.push(meta.config_map(&module_map, false));
    objects.push(meta.config_map(&bootstrap_map, false));
    objects.extend(xds_maps.iter().map(|m| meta.config_map(m, true)));
    let volumes = pod::Volumes {
        xds_maps: &xds_maps,
        key_secrets: &key_secrets,
        module: &module_map.name,
        bootstrap: &bootstrap_map.name,
    };
    objects.extend(pod::workload(built, &meta, &volumes, capture)?);
    let mut text = format!(
        "# Generated by `extsvc generate --format kubernetes`: configuration version {version}\n"
    );
    for object in &objects {
        text.push_str("---\n");
        text.push_str(&serde_yaml_ng::to_string(object).map_err(|e| e.to_string())?);
    }
    Ok(Manifests {
        text,
        version,
        holds_keys: !key_secrets.is_empty(),
    })
}

/// The files of the `xds/` volume: those for ConfigMaps, and those holding keys, for Secrets.
fn xds_payload(
    files: &xds::Files,
    vips: Option<&crate::generate::transparent::Vips>,
) -> Result<(Vec<File>, Vec<File>), String> {
    let yaml = |value: &Value| xds::to_yaml(value).map_err(|e| e.to_string());
    let mut public = vec![
        File::text(xds::LDS_FILE, yaml(&files.lds)?),
        File::text(xds::CDS_FILE, yaml(&files.cds)?),
    ];
    if let Some(vips) = vips {
        let text = xds_dir::vips_text(vips).map_err(|e| e.to_string())?;
        public.push(File::text(crate::generate::transparent::VIPS_FILE, text));
    }
    // Always there, so that the kubelet's link `sds -> ..data/sds` is too: the kubelet makes
    // the link of a name new to the volume only after the swap, which Envoy has taken up by
    // then, and a cluster naming an SDS file not there yet would be refused.
    public.push(File::in_dir(
        sds::SDS_DIR,
        SDS_KEEP,
        SDS_KEEP_TEXT.to_string(),
    ));
    let mut private = Vec::new();
    for (file, response) in &files.sds {
        let sds_file = File::in_dir(sds::SDS_DIR, file, yaml(response)?);
        if xds::holds_private_key(response) {
            private.push(sds_file);
        } else {
            public.push(sds_file);
        }
    }
    Ok((public, private))
}

/// Keys belong in Secrets: a file for a ConfigMap that holds one is a bug, refused rather than
/// published.
fn refuse_keys<'a>(files: impl IntoIterator<Item = &'a File>) -> Result<(), String> {
    match files
        .into_iter()
        .find(|f| String::from_utf8_lossy(&f.bytes).contains("PRIVATE KEY"))
    {
        Some(file) => Err(format!(
            "{} holds a private key, which a ConfigMap must not: nothing written",
            file.path
        )),
        None => Ok(()),
    }
}

/// The one object a small payload packs into.
fn single(mut objects: Vec<pack::Packed>) -> Result<pack::Packed, String> {
    match objects.len() {
        1 => Ok(objects.remove(0)),
        n => Err(format!("{n} objects where one was expected")),
    }
}

/// The metadata every object shares.
pub(super) struct Meta<'a> {
    fleet: &'a Fleet,
    version: &'a str,
}

impl Meta<'_> {
    fn labels(&self) -> Value {
        json!({
            "app.kubernetes.io/name": self.fleet.name,
            "app.kubernetes.io/managed-by": "extsvc",
        })
    }

    fn metadata(&self, name: &str, versioned: bool) -> Value {
        let mut meta = Map::new();
        meta.insert("name".into(), json!(name));
        if let Some(namespace) = &self.fleet.namespace {
            meta.insert("namespace".into(), json!(namespace));
        }
        meta.insert("labels".into(), self.labels());
        if versioned {
            meta.insert(
                "annotations".into(),
                json!({ VERSION_ANNOTATION: self.version }),
            );
        }
        Value::Object(meta)
    }

    fn config_map(&self, packed: &pack::Packed, versioned: bool) -> Value {
        let mut map = Map::new();
        map.insert("apiVersion".into(), json!("v1"));
        map.insert("kind".into(), json!("ConfigMap"));
        map.insert("metadata".into(), self.metadata(&packed.name, versioned));
        let (mut data, mut binary) = (Map::new(), Map::new());
        for file in &packed.files {
            match std::str::from_utf8(&file.bytes) {
                Ok(text) if !file.binary => data.insert(file.key.clone(), json!(text)),
                _ => binary.insert(file.key.clone(), json!(base64(&file.bytes))),
            };
        }
        if !data.is_empty() {
            map.insert("data".into(), Value::Object(data));
        }
        if !binary.is_empty() {
            map.insert("binaryData".into(), Value::Object(binary));
        }
        Value::Object(map)
    }

    fn secret(&self, packed: &pack::Packed) -> Value {
        let data: Map<String, Value> = (packed.files.iter())
            .map(|f| (f.key.clone(), json!(base64(&f.bytes))))
            .collect();
        json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": self.metadata(&packed.name, false),
            "type": "Opaque",
            "data": data,
        })
    }
}

fn base64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The key of the identity's SDS file in its Secret ([`previous`] reads it back).
fn identity_key() -> String {
    File::in_dir(sds::SDS_DIR, &xds_dir::identity_file(), String::new()).key
}

/// `path` as the configuration names it: absolute, `/`-separated.
fn pod_path(path: &Path) -> String {
    path.display().to_string()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_file_for_a_config_map_with_a_private_key_is_refused() {
        let key = File::text("cds.yaml", "-----BEGIN PRIVATE KEY-----\n".to_string());
        let ca = File::in_dir(
            "sds",
            "ca.yaml",
            "-----BEGIN CERTIFICATE-----\n".to_string(),
        );
        assert_eq!(refuse_keys([&ca]), Ok(()));
        assert_eq!(
            refuse_keys([&ca, &key]),
            Err("cds.yaml holds a private key, which a ConfigMap must not: nothing written".into())
        );
    }

    #[test]
    fn every_version_of_the_xds_volume_has_its_sds_directory() {
        let files = xds::Files::new(&[], &[], &[]).unwrap();
        let (public, private) = xds_payload(&files, None).unwrap();
        let paths: Vec<&str> = public.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, ["lds.yaml", "cds.yaml", "sds/README"]);
        assert!(private.is_empty());
    }
}
