//! What the manifests of an earlier run (the `-o FILE` being replaced) leave for this one to
//! keep: the VIPs of `vips.json` in its xDS ConfigMaps, and the certificate in its Secret, so
//! that generating again moves no VIP and issues no new certificate while the old one serves.

use std::fs;
use std::io::ErrorKind;
use std::path::Path;

use base64::Engine;
use serde::Deserialize;
use serde_json::Value;

use super::identity_key;
use crate::generate::transparent::VIPS_FILE;
use crate::pipeline::Previous;
use crate::xds_dir;

/// What the manifests at `path` (when the file exists) for the objects named `name` keep.
pub fn previous(path: &Path, name: &str) -> Result<Previous, String> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Previous::default()),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    let from = path.display();
    let mut previous = Previous::default();
    for document in serde_yaml_ng::Deserializer::from_str(&text) {
        let object = Value::deserialize(document).map_err(|e| {
            format!("{from}: {e}: it should hold the manifests an earlier `extsvc generate --format kubernetes` wrote")
        })?;
        let object_name = object.pointer("/metadata/name").and_then(Value::as_str);
        let ours = object_name
            .and_then(|n| n.strip_prefix(name))
            .is_some_and(|rest| rest.starts_with("-xds") || rest.starts_with("-keys"));
        match object.get("kind").and_then(Value::as_str) {
            Some("ConfigMap") if ours => {
                if let Some(vips) = object.pointer(&format!("/data/{VIPS_FILE}")) {
                    let text = vips.as_str().unwrap_or_default();
                    let at = format!(
                        "{from}: ConfigMap {}: {VIPS_FILE}",
                        object_name.unwrap_or_default()
                    );
                    previous.vips = Some(xds_dir::vips_in(text, &at).map_err(|e| e.to_string())?);
                }
            }
            Some("Secret") if ours => {
                let key = object.pointer(&format!("/data/{}", identity_key()));
                let decoded = key
                    .and_then(Value::as_str)
                    .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok());
                if let Some(text) = decoded.and_then(|d| String::from_utf8(d).ok()) {
                    previous.identity = xds_dir::identity_in(&text);
                }
            }
            _ => {}
        }
    }
    Ok(previous)
}
