//! A ConfigMap or Secret volume as kubelet lays it out and updates it, without Kubernetes: the
//! steps and order of kubelet's atomic writer (`pkg/volume/util/atomic_writer.go`), so that a
//! test sees what a pod's Envoy sees when the ConfigMap changes.
//!
//! The layout under the volume's root:
//!
//! ```text
//! ..2026_12_07_01_02_03.Ab12Cd/   the payload's files (mode: the volume's defaultMode)
//! ..data -> ..2026_12_07_01_02_03.Ab12Cd
//! lds.yaml -> ..data/lds.yaml     one symlink per top-level name of the payload
//! sds -> ..data/sds               (an item `sds/x.yaml` is reached through `sds`)
//! ```
//!
//! An update writes a new timestamped directory, points `..data_tmp` at it, renames
//! `..data_tmp` over `..data` (the one atomic step, which `watched_directory` on the root
//! sees as a move), adds the symlinks of new top-level names, removes those of names no longer
//! in the payload, and removes the old directory.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};

/// The symlink to the current timestamped directory.
pub const DATA_DIR: &str = "..data";
/// The symlink made beside `..data`, then renamed over it.
const NEW_DATA_DIR: &str = "..data_tmp";
/// Kubernetes' `defaultMode` of ConfigMap and Secret volumes.
pub const DEFAULT_MODE: u32 = 0o644;
/// The timestamped directory's mode, whatever the umask (group and others may traverse it).
const TIMESTAMPED_DIR_MODE: u32 = 0o755;

/// A volume's root directory, written as kubelet writes a ConfigMap or Secret into it.
#[derive(Debug, Clone)]
pub struct KubeletVolume {
    root: PathBuf,
    default_mode: u32,
}

impl KubeletVolume {
    /// A ConfigMap volume at `root` (created if missing), files `0644`.
    pub fn config_map(root: &Path) -> io::Result<KubeletVolume> {
        KubeletVolume::with_default_mode(root, DEFAULT_MODE)
    }

    /// A volume whose files get `default_mode` (a Secret's `defaultMode: 0400`, say).
    pub fn with_default_mode(root: &Path, default_mode: u32) -> io::Result<KubeletVolume> {
        fs::create_dir_all(root)?;
        Ok(KubeletVolume {
            root: root.to_path_buf(),
            default_mode,
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The user-visible path of a payload item (`root/lds.yaml`, `root/sds/x.yaml`).
    pub fn path(&self, item: &str) -> PathBuf {
        self.root.join(item)
    }

    /// The timestamped directory `..data` points at now, if any.
    pub fn data_dir(&self) -> io::Result<Option<PathBuf>> {
        Ok(self.current_timestamped_dir()?.map(|d| self.root.join(d)))
    }

    /// Projects `payload` (relative path -> bytes) into the volume, the first time and on
    /// every update alike, in kubelet's order. Nothing is written when the payload is what
    /// the volume already holds, as kubelet does. Errors name the volume's root.
    pub fn write(&self, payload: &BTreeMap<String, Vec<u8>>) -> io::Result<()> {
        self.project(payload).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("kubelet volume {}: {e}", self.root.display()),
            )
        })
    }

    /// kubelet's steps, numbered as in `atomic_writer.go` ((7), the fsGroup ownership, is
    /// not done here).
    fn project(&self, payload: &BTreeMap<String, Vec<u8>>) -> io::Result<()> {
        // (1) the payload's paths
        for item in payload.keys() {
            check_item_path(item)?;
        }
        // (2) the current timestamped directory
        let old = self.current_timestamped_dir()?;
        // (3) and (4) what the update removes, and whether anything changed
        let (to_remove, changed) = match &old {
            Some(old) => {
                let old = self.root.join(old);
                (removed_paths(&old, payload)?, differs(&old, payload)?)
            }
            None => (BTreeSet::new(), true),
        };
        let replaced = changed || !to_remove.is_empty();
        if replaced {
            // (5) and (6) the new timestamped directory with the payload
            let new = self.new_timestamped_dir()?;
            self.write_payload(&new, payload)?;
            let new_name = new
                .file_name()
                .ok_or_else(|| io::Error::other(format!("{} has no name", new.display())))?;
            // (8) and (9) the swap
            let tmp = self.root.join(NEW_DATA_DIR);
            symlink(new_name, &tmp)?;
            fs::rename(&tmp, self.root.join(DATA_DIR))?;
        }
        // (10) the new top-level names, (11) the gone ones
        self.link_top_level_names(payload)?;
        for name in to_remove.iter().filter(|p| !p.contains('/')) {
            fs::remove_file(self.root.join(name))?;
        }
        // (12) the previous timestamped directory
        match old {
            Some(old) if replaced => fs::remove_dir_all(self.root.join(old)),
            _ => Ok(()),
        }
    }

    fn current_timestamped_dir(&self) -> io::Result<Option<PathBuf>> {
        match fs::read_link(self.root.join(DATA_DIR)) {
            Ok(target) => Ok(Some(target)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `..YYYY_MM_DD_HH_MM_SS.<random>` (UTC), mode 0755 whatever the umask.
    fn new_timestamped_dir(&self) -> io::Result<PathBuf> {
        let now = time::OffsetDateTime::now_utc();
        let prefix = format!(
            "..{:04}_{:02}_{:02}_{:02}_{:02}_{:02}.",
            now.year(),
            u8::from(now.month()),
            now.day(),
            now.hour(),
            now.minute(),
            now.second()
        );
        let dir = tempfile::Builder::new()
            .prefix(&prefix)
            .tempdir_in(&self.root)?
            .keep();
        fs::set_permissions(&dir, fs::Permissions::from_mode(TIMESTAMPED_DIR_MODE))?;
        Ok(dir)
    }

    fn write_payload(&self, dir: &Path, payload: &BTreeMap<String, Vec<u8>>) -> io::Result<()> {
        for (item, bytes) in payload {
            let file = dir.join(item);
            if let Some(parent) = file.parent() {
                fs::create_dir_all(parent)?;
            }
            fs::write(&file, bytes)?;
            // The mode as given, not as the umask leaves it.
            fs::set_permissions(&file, fs::Permissions::from_mode(self.default_mode))?;
        }
        Ok(())
    }

    /// `name -> ..data/name` for each top-level name of the payload that has no link yet.
    fn link_top_level_names(&self, payload: &BTreeMap<String, Vec<u8>>) -> io::Result<()> {
        for name in payload.keys().map(|item| top_level_name(item)) {
            let link = self.root.join(name);
            if fs::symlink_metadata(&link).is_err() {
                symlink(Path::new(DATA_DIR).join(name), &link)?;
            }
        }
        Ok(())
    }
}

/// The first element of an item's path: the name its user-visible symlink has.
fn top_level_name(item: &str) -> &str {
    item.split_once('/').map_or(item, |(first, _)| first)
}

/// kubelet's rules for an item's path: relative, no `..` element, not starting with `..`
/// (those names are the writer's own); also no empty or `.` element, so that a path is its
/// own clean form.
fn check_item_path(item: &str) -> io::Result<()> {
    let invalid = |why: &str| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("invalid path {item:?}: {why}"),
        )
    };
    if item.is_empty() {
        return Err(invalid("must not be empty"));
    }
    if item.starts_with('/') {
        return Err(invalid("must be relative"));
    }
    if item.starts_with("..") {
        return Err(invalid("must not start with '..'"));
    }
    if item
        .split('/')
        .any(|e| e.is_empty() || e == "." || e == "..")
    {
        return Err(invalid("must not contain an empty, '.' or '..' element"));
    }
    Ok(())
}

/// The paths under the old timestamped directory (files and directories, relative) that
/// the payload no longer has, neither as an item nor as a directory of one.
fn removed_paths(old: &Path, payload: &BTreeMap<String, Vec<u8>>) -> io::Result<BTreeSet<String>> {
    let mut kept = BTreeSet::new();
    for item in payload.keys() {
        let mut path = item.as_str();
        kept.insert(path.to_string());
        while let Some((parent, _)) = path.rsplit_once('/') {
            kept.insert(parent.to_string());
            path = parent;
        }
    }
    let mut present = BTreeSet::new();
    walk(old, "", &mut present)?;
    Ok(present.difference(&kept).cloned().collect())
}

fn walk(dir: &Path, prefix: &str, found: &mut BTreeSet<String>) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = format!("{prefix}{}", entry.file_name().to_string_lossy());
        if entry.file_type()?.is_dir() {
            walk(&entry.path(), &format!("{name}/"), found)?;
        }
        found.insert(name);
    }
    Ok(())
}

/// Whether some item is missing from the old timestamped directory or holds other bytes.
fn differs(old: &Path, payload: &BTreeMap<String, Vec<u8>>) -> io::Result<bool> {
    for (item, bytes) in payload {
        match fs::read(old.join(item)) {
            Ok(on_disk) if on_disk == *bytes => {}
            Ok(_) => return Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(true),
            Err(e) => return Err(e),
        }
    }
    Ok(false)
}

/// The objects of a multi-document YAML of manifests (`extsvc generate --format kubernetes`).
pub fn manifest_objects(text: &str) -> Vec<serde_json::Value> {
    use serde::Deserialize;
    serde_yaml_ng::Deserializer::from_str(text)
        .map(|d| serde_json::Value::deserialize(d).expect("a manifest"))
        .collect()
}

/// The files the kubelet puts in the pod volume named `volume` of the workload among
/// `objects` (a Deployment's or a PodTemplate's pod spec): each source's `items` (key ->
/// path), or every key of a ConfigMap without items; `binaryData` and a Secret's `data`
/// base64-decoded. Panics, naming what is missing, when the manifests do not hold it.
pub fn volume_payload(objects: &[serde_json::Value], volume: &str) -> BTreeMap<String, Vec<u8>> {
    use base64::Engine;
    use serde_json::Value;
    let spec = (objects.iter())
        .find_map(|o| {
            o.pointer("/spec/template/spec")
                .or(o.pointer("/template/spec"))
        })
        .expect("a workload with a pod spec");
    let volume = (spec["volumes"].as_array().into_iter().flatten())
        .find(|v| v["name"] == volume)
        .unwrap_or_else(|| panic!("no volume {volume}"));
    let sources: Vec<(&str, &Value)> = match volume.get("projected") {
        Some(projected) => (projected["sources"].as_array().into_iter().flatten())
            .map(|s| match s.get("configMap") {
                Some(map) => ("ConfigMap", map),
                None => ("Secret", &s["secret"]),
            })
            .collect(),
        None => vec![("ConfigMap", &volume["configMap"])],
    };
    let decode = |b: &Value| {
        base64::engine::general_purpose::STANDARD
            .decode(b.as_str().unwrap_or_default())
            .expect("base64")
    };
    let mut files = BTreeMap::new();
    for (kind, source) in sources {
        let object = (objects.iter())
            .find(|o| o["kind"] == kind && o["metadata"]["name"] == source["name"])
            .unwrap_or_else(|| panic!("no {kind} {}", source["name"]));
        let mut data: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        for (field, encoded) in [("data", kind == "Secret"), ("binaryData", true)] {
            let values = object.get(field).and_then(Value::as_object);
            for (key, value) in values.into_iter().flatten() {
                let bytes = match encoded {
                    true => decode(value),
                    false => value.as_str().unwrap_or_default().as_bytes().to_vec(),
                };
                data.insert(key.clone(), bytes);
            }
        }
        match source.get("items").and_then(Value::as_array) {
            Some(items) => {
                for item in items {
                    let key = item["key"].as_str().unwrap_or_default();
                    let path = item["path"].as_str().unwrap_or_default().to_string();
                    files.insert(path, data.get(key).cloned().expect("the item's key"));
                }
            }
            None => files.extend(data),
        }
    }
    files
}

/// Mounts every volume of the workload among `objects` under `root` (volume `extsvc-NAME`
/// at `root/NAME`), as the kubelet does when the pod starts: the Envoy container's view.
pub fn mount_pod(objects: &[serde_json::Value], root: &Path) -> io::Result<()> {
    for volume in ["xds", "module", "bootstrap"] {
        KubeletVolume::config_map(&root.join(volume))?
            .write(&volume_payload(objects, &format!("extsvc-{volume}")))?;
    }
    fs::create_dir_all(root.join("run"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(items: &[(&str, &str)]) -> BTreeMap<String, Vec<u8>> {
        items
            .iter()
            .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
            .collect()
    }

    /// The root's entries, each with its link target (or `dir`), sorted.
    fn layout(root: &Path) -> Vec<(String, String)> {
        let mut entries: Vec<_> = fs::read_dir(root)
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let name = e.file_name().to_string_lossy().into_owned();
                let what = match fs::read_link(e.path()) {
                    Ok(t) => t.display().to_string(),
                    Err(_) => "dir".to_string(),
                };
                (name, what)
            })
            .collect();
        entries.sort();
        entries
    }

    fn timestamped_name(v: &KubeletVolume) -> String {
        let dir = v.data_dir().unwrap().unwrap();
        dir.file_name().unwrap().to_string_lossy().into_owned()
    }

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn a_first_write_lays_out_the_timestamped_dir_data_and_top_level_links() {
        let dir = tempfile::tempdir().unwrap();
        let v = KubeletVolume::config_map(&dir.path().join("xds")).unwrap();
        v.write(&payload(&[
            ("lds.yaml", "l1"),
            ("cds.yaml", "c1"),
            ("sds/a.yaml", "a1"),
        ]))
        .unwrap();

        let ts = timestamped_name(&v);
        assert!(ts.starts_with("..20"), "{ts}");
        // `..YYYY_MM_DD_HH_MM_SS.` then the random part.
        assert_eq!(ts.as_bytes()[21], b'.', "{ts}");
        assert_eq!(ts[2..21].matches('_').count(), 5, "{ts}");
        assert_eq!(
            layout(v.root()),
            vec![
                (ts.clone(), "dir".to_string()),
                ("..data".to_string(), ts.clone()),
                ("cds.yaml".to_string(), "..data/cds.yaml".to_string()),
                ("lds.yaml".to_string(), "..data/lds.yaml".to_string()),
                ("sds".to_string(), "..data/sds".to_string()),
            ]
        );
        assert_eq!(fs::read_to_string(v.path("sds/a.yaml")).unwrap(), "a1");
        assert_eq!(mode(&v.root().join(&ts)), 0o755);
        assert_eq!(mode(&v.path("lds.yaml")), 0o644);
        assert_eq!(mode(&v.path("sds/a.yaml")), 0o644);
    }

    #[test]
    fn an_update_swaps_data_links_new_names_and_removes_gone_ones_and_the_old_dir() {
        let dir = tempfile::tempdir().unwrap();
        let v = KubeletVolume::config_map(dir.path()).unwrap();
        v.write(&payload(&[
            ("lds.yaml", "l1"),
            ("gone.yaml", "g1"),
            ("sds/a.yaml", "a1"),
            ("sds/b.yaml", "b1"),
        ]))
        .unwrap();
        let first = timestamped_name(&v);
        let held_open = fs::read_link(v.root().join("lds.yaml")).unwrap();

        v.write(&payload(&[
            ("lds.yaml", "l2"),
            ("new.yaml", "n2"),
            ("sds/a.yaml", "a2"),
        ]))
        .unwrap();
        let second = timestamped_name(&v);
        assert_ne!(first, second);
        assert_eq!(
            layout(v.root()),
            vec![
                (second.clone(), "dir".to_string()),
                ("..data".to_string(), second.clone()),
                ("lds.yaml".to_string(), "..data/lds.yaml".to_string()),
                ("new.yaml".to_string(), "..data/new.yaml".to_string()),
                ("sds".to_string(), "..data/sds".to_string()),
            ]
        );
        // The user-visible link itself never changed: only `..data` moved.
        assert_eq!(fs::read_link(v.root().join("lds.yaml")).unwrap(), held_open);
        assert_eq!(fs::read_to_string(v.path("lds.yaml")).unwrap(), "l2");
        assert_eq!(fs::read_to_string(v.path("sds/a.yaml")).unwrap(), "a2");
        // An item gone from a subdirectory is gone, as its old directory is.
        assert!(!v.path("sds/b.yaml").exists());
        assert!(!v.root().join(&first).exists());
    }

    #[test]
    fn the_same_payload_again_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let v = KubeletVolume::config_map(dir.path()).unwrap();
        let p = payload(&[("lds.yaml", "l1"), ("sds/a.yaml", "a1")]);
        v.write(&p).unwrap();
        let first = timestamped_name(&v);
        v.write(&p).unwrap();
        assert_eq!(timestamped_name(&v), first);
        assert_eq!(fs::read_to_string(v.path("sds/a.yaml")).unwrap(), "a1");
    }

    #[test]
    fn a_removed_item_alone_is_an_update() {
        let dir = tempfile::tempdir().unwrap();
        let v = KubeletVolume::config_map(dir.path()).unwrap();
        v.write(&payload(&[("lds.yaml", "l1"), ("cds.yaml", "c1")]))
            .unwrap();
        let first = timestamped_name(&v);
        v.write(&payload(&[("lds.yaml", "l1")])).unwrap();
        assert_ne!(timestamped_name(&v), first);
        assert!(fs::symlink_metadata(v.root().join("cds.yaml")).is_err());
    }

    #[test]
    fn a_secret_volume_gets_its_default_mode() {
        let dir = tempfile::tempdir().unwrap();
        let v = KubeletVolume::with_default_mode(dir.path(), 0o400).unwrap();
        v.write(&payload(&[("tls.key", "k"), ("sds/ca.pem", "c")]))
            .unwrap();
        assert_eq!(mode(&v.path("tls.key")), 0o400);
        assert_eq!(mode(&v.path("sds/ca.pem")), 0o400);
    }

    #[test]
    fn paths_kubelet_refuses_are_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let v = KubeletVolume::config_map(dir.path()).unwrap();
        for bad in ["", "/etc/x", "..data", "..x", "a/../b", "a//b", "./a"] {
            let e = v.write(&payload(&[(bad, "x")])).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{bad}");
            assert!(e.to_string().contains(&format!("{bad:?}")), "{bad}: {e}");
            assert!(
                e.to_string().contains(&v.root().display().to_string()),
                "{e}"
            );
        }
        assert!(layout(v.root()).is_empty(), "nothing written");
    }
}
