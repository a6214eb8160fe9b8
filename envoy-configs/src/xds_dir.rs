//! The files `--xds-dir` and `--secrets-dir` hold, written so that a running Envoy never reads
//! a route to a cluster it has dropped, nor a cluster whose secret is not there yet: see
//! [`write()`]. Every file is written whole ([`crate::atomic`]); a file already holding its text
//! is left alone, so Envoy is not woken for nothing.

use std::collections::HashSet;
use std::fmt;
use std::fs;
use std::path::Path;

use crate::atomic::{create_dir, write_changed, write_file, WriteError};
use crate::generate::transparent::{Vips, VIPS_FILE};
use crate::generate::{self, mesh_tls, sds, secrets::SecretFile, xds};
use crate::identity::Kept;

/// Why the directory could not be read or written.
#[derive(Debug)]
pub enum Error {
    Write(WriteError),
    /// `DIR/vips.json` cannot be read, or does not hold VIPs.
    KeptVips(String),
    Serialize(generate::Error),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Write(e) => e.fmt(f),
            Error::KeptVips(e) => f.write_str(e),
            Error::Serialize(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for Error {}

impl From<WriteError> for Error {
    fn from(e: WriteError) -> Error {
        Error::Write(e)
    }
}

/// The VIPs an earlier run kept in `dir`, when it did.
pub fn kept_vips(dir: &Path) -> Result<Option<Vips>, Error> {
    let path = dir.join(VIPS_FILE);
    let text = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(Error::KeptVips(format!(
                "cannot read {}: {e}",
                path.display()
            )))
        }
    };
    vips_in(&text, &path.display().to_string()).map(Some)
}

/// The VIPs of the text of a [`VIPS_FILE`], read from `from` (named in the error).
pub fn vips_in(text: &str, from: &str) -> Result<Vips, Error> {
    serde_json::from_str(text).map_err(|e| {
        Error::KeptVips(format!(
            "{from}: {e}: it should hold the VIPs an earlier `extsvc generate --transparent-proxy` \
             wrote; restore it, or remove it to give every name a new VIP"
        ))
    })
}

/// The text of a [`VIPS_FILE`].
pub fn vips_text(vips: &Vips) -> Result<String, generate::Error> {
    serde_json::to_string_pretty(vips)
        .map(|text| text + "\n")
        .map_err(|e| generate::Error::Serialize(e.to_string()))
}

/// The certificate and key an earlier run wrote into the identity's SDS file, when it did
/// and the file holds them: `crate::identity` keeps them while they serve.
pub fn kept_identity(dir: &Path) -> Option<Kept> {
    let path = dir.join(xds::SDS_DIR).join(identity_file());
    identity_in(&fs::read_to_string(path).ok()?)
}

/// The identity's SDS file's name in [`xds::SDS_DIR`].
pub fn identity_file() -> String {
    sds::first_file(mesh_tls::IDENTITY)
}

/// The certificate and key in the text of the identity's SDS file, when it holds them.
pub fn identity_in(text: &str) -> Option<Kept> {
    let response: serde_json::Value = serde_yaml_ng::from_str(text).ok()?;
    let certificate = response.pointer("/resources/0/tls_certificate")?;
    let inline = |field: &str| {
        let text = certificate.pointer(&format!("/{field}/inline_string"))?;
        text.as_str().map(str::to_string)
    };
    Some(Kept {
        certificate_pem: inline("certificate_chain")?,
        key_pem: inline("private_key")?,
    })
}

/// Creates `dir` (mode 0700) when missing and writes each file into it with mode 0600.
pub fn write_secrets(dir: &Path, files: &[SecretFile]) -> Result<(), Error> {
    create_dir(dir, 0o700)?;
    for file in files {
        write_file(&file.path, &file.bytes, true)?;
    }
    Ok(())
}

/// Updates the files of `dir` (created when missing): the VIPs first, so that a kept VIP is
/// never lost even if a later write fails; then the secrets, then the union of the old and new
/// clusters, then the listeners, then the new clusters, and last the removal of the secrets'
/// files no cluster names any more. `private`: the files hold private keys. Whether any file
/// changed.
pub fn write(
    dir: &Path,
    files: &xds::Files,
    vips: Option<&Vips>,
    private: bool,
) -> Result<bool, Error> {
    create_dir(dir, 0o755)?;
    let mut changed = false;
    if let Some(vips) = vips {
        let text = vips_text(vips).map_err(Error::Serialize)?;
        changed |= write_changed(&dir.join(VIPS_FILE), text.as_bytes(), false)?;
    }
    let sds_dir = dir.join(xds::SDS_DIR);
    let (cds_path, lds_path) = (dir.join(xds::CDS_FILE), dir.join(xds::LDS_FILE));
    let old_cds = fs::read_to_string(&cds_path).ok();
    let union = old_cds
        .as_deref()
        .and_then(|old| xds::cluster_union(&files.cds, old));
    let update = |path: &Path, response: &serde_json::Value| -> Result<bool, Error> {
        let text = xds::to_yaml(response).map_err(Error::Serialize)?;
        let private = private || xds::holds_private_key(response);
        Ok(write_changed(path, text.as_bytes(), private)?)
    };
    if !files.sds.is_empty() {
        create_dir(&sds_dir, 0o755)?;
    }
    for (file, response) in &files.sds {
        changed |= update(&sds_dir.join(file), response)?;
    }
    if let Some(union) = &union {
        changed |= update(&cds_path, union)?;
    }
    changed |= update(&lds_path, &files.lds)?;
    changed |= update(&cds_path, &files.cds)?;
    changed |= remove_unnamed_secrets(&sds_dir, files)?;
    Ok(changed)
}

/// Removes the files of `DIR/sds/` that hold no secret of `files` (a removed service's).
fn remove_unnamed_secrets(sds_dir: &Path, files: &xds::Files) -> Result<bool, Error> {
    let entries = match fs::read_dir(sds_dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(WriteError::new(sds_dir)(e).into()),
    };
    let named: HashSet<&str> = files.sds.iter().map(|(file, _)| file.as_str()).collect();
    let mut removed = false;
    for entry in entries {
        let entry = entry.map_err(WriteError::new(sds_dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        // Another writer's file in progress starts with a dot.
        if name.starts_with('.') || named.contains(name.as_str()) {
            continue;
        }
        fs::remove_file(entry.path()).map_err(WriteError::new(sds_dir))?;
        removed = true;
    }
    Ok(removed)
}
