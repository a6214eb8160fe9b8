//! `extsvc generate --secrets-dir DIR`: TLS material given inline (or by a Secret) moves out of
//! the configuration into files of its own, which the configuration names by path.
//!
//! Pure: [`externalize`] rewrites the bootstrap and returns the files to write; the CLI writes
//! them (directory 0700, files 0600) before the configuration.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde_json::{json, Value};

/// The TLS DataSource fields of an `UpstreamTlsContext` that may hold inline material.
const FIELDS: [(&str, &str); 3] = [
    ("trusted_ca", "ca-cert"),
    ("certificate_chain", "client-cert"),
    ("private_key", "client-key"),
];

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

/// Replaces every inline DataSource in the clusters' TLS contexts with a `filename` in `dir`
/// (`<cluster>.<field>.pem`; `-2`, `-3`... when one cluster holds different material for the
/// same field). The same material in one cluster is one file. Returns the files to write, in
/// order.
pub fn externalize(config: &mut Value, dir: &Path) -> Vec<SecretFile> {
    let mut files: Vec<SecretFile> = Vec::new();
    let Some(clusters) = config
        .pointer_mut("/static_resources/clusters")
        .and_then(Value::as_array_mut)
    else {
        return files;
    };
    for cluster in clusters {
        let name = safe(cluster["name"].as_str().unwrap_or("cluster"));
        let mut named: BTreeMap<String, Vec<Vec<u8>>> = BTreeMap::new();
        walk(cluster, &mut |field, source| {
            let Some(bytes) = inline_bytes(source) else {
                return;
            };
            let variants = named.entry(field.to_string()).or_default();
            let index = match variants.iter().position(|b| *b == bytes) {
                Some(i) => i,
                None => {
                    variants.push(bytes.clone());
                    variants.len() - 1
                }
            };
            let suffix = if index == 0 {
                String::new()
            } else {
                format!("-{}", index + 1)
            };
            let path = dir.join(format!("{name}.{field}{suffix}.pem"));
            *source = json!({"filename": path.display().to_string()});
            if !files.iter().any(|f| f.path == path) {
                files.push(SecretFile { path, bytes });
            }
        });
    }
    files
}

/// Calls `f(file_stem_field, data_source)` for each TLS DataSource field under `v`.
fn walk(v: &mut Value, f: &mut dyn FnMut(&str, &mut Value)) {
    match v {
        Value::Object(fields) => {
            for (key, value) in fields.iter_mut() {
                match FIELDS.iter().find(|(k, _)| k == key) {
                    Some((_, stem)) if value.is_object() => f(stem, value),
                    _ => walk(value, f),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|i| walk(i, f)),
        _ => {}
    }
}

fn inline_bytes(source: &Value) -> Option<Vec<u8>> {
    if let Some(text) = source.get("inline_string").and_then(Value::as_str) {
        return Some(text.as_bytes().to_vec());
    }
    let b64 = source.get("inline_bytes").and_then(Value::as_str)?;
    base64::engine::general_purpose::STANDARD.decode(b64).ok()
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

#[cfg(test)]
mod tests {
    use super::*;

    fn tls(ca: Value, key: Option<Value>) -> Value {
        let mut common = json!({"validation_context": {"trusted_ca": ca}});
        if let Some(key) = key {
            common["tls_certificates"] = json!([{
                "certificate_chain": {"inline_string": "CERT"},
                "private_key": key,
            }]);
        }
        json!({"name": "envoy.transport_sockets.tls", "typed_config": {"common_tls_context": common}})
    }

    #[test]
    fn inline_material_becomes_files_and_file_sources_stay() {
        let mut config = json!({"static_resources": {"clusters": [
            {"name": "external_service_a", "transport_socket":
                tls(json!({"inline_string": "CA-A"}), Some(json!({"inline_bytes": "S0VZ"})))},
            {"name": "external_service_b", "transport_socket":
                tls(json!({"filename": "/etc/ca.pem"}), None)},
            {"name": "external_service_c/x", "transport_socket_matches": [
                {"transport_socket": tls(json!({"inline_string": "CA-1"}), None)},
                {"transport_socket": tls(json!({"inline_string": "CA-1"}), None)},
                {"transport_socket": tls(json!({"inline_string": "CA-2"}), None)},
            ]},
        ]}});
        let files = externalize(&mut config, Path::new("/s"));
        let got: Vec<(String, Vec<u8>)> = files
            .iter()
            .map(|f| (f.path.display().to_string(), f.bytes.clone()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("/s/external_service_a.ca-cert.pem".into(), b"CA-A".to_vec()),
                (
                    "/s/external_service_a.client-cert.pem".into(),
                    b"CERT".to_vec()
                ),
                (
                    "/s/external_service_a.client-key.pem".into(),
                    b"KEY".to_vec()
                ),
                (
                    "/s/external_service_c_x.ca-cert.pem".into(),
                    b"CA-1".to_vec()
                ),
                (
                    "/s/external_service_c_x.ca-cert-2.pem".into(),
                    b"CA-2".to_vec()
                ),
            ]
        );
        let text = config.to_string();
        assert!(!text.contains("inline_"), "{text}");
        assert!(text.contains("\"/etc/ca.pem\""), "{text}");
        assert_eq!(
            config["static_resources"]["clusters"][0]["transport_socket"]["typed_config"]
                ["common_tls_context"]["tls_certificates"][0]["private_key"],
            json!({"filename": "/s/external_service_a.client-key.pem"})
        );
        // Debug never shows the bytes.
        assert!(!format!("{files:?}").contains("KEY"));
    }

    #[test]
    fn nothing_inline_nothing_written() {
        let mut config = json!({"static_resources": {"clusters": [
            {"name": "passthrough"},
        ]}});
        let before = config.clone();
        assert!(externalize(&mut config, Path::new("/s")).is_empty());
        assert_eq!(config, before);
    }
}
