//! Files written whole: a reader (Envoy watching a directory, above all) never sees half a
//! file, and a file holding private keys is private from its first byte.

use std::fmt;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// A file or directory that could not be written.
#[derive(Debug)]
pub struct WriteError {
    pub path: PathBuf,
    pub error: std::io::Error,
}

impl WriteError {
    pub fn new(path: &Path) -> impl FnOnce(std::io::Error) -> WriteError + '_ {
        move |error| WriteError {
            path: path.to_path_buf(),
            error,
        }
    }
}

impl fmt::Display for WriteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot write {}: {}", self.path.display(), self.error)
    }
}

impl std::error::Error for WriteError {}

/// Creates `dir` and its parents, when missing, with `mode`.
pub fn create_dir(dir: &Path, mode: u32) -> Result<(), WriteError> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(dir)
        .map_err(WriteError::new(dir))
}

/// [`write_file`], unless `path` already holds `text` (a watcher of its directory is not
/// woken for nothing): whether it wrote.
pub fn write_changed(path: &Path, text: &[u8], private: bool) -> Result<bool, WriteError> {
    if fs::read(path).is_ok_and(|old| old == text) {
        return Ok(false);
    }
    write_file(path, text, private).map(|()| true)
}

/// Writes a sibling temporary file (mode 0600 when `private`, else 0644), then renames it.
pub fn write_file(path: &Path, text: &[u8], private: bool) -> Result<(), WriteError> {
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{file_name}.{}.tmp", std::process::id()));
    let mode = if private { 0o600 } else { 0o644 };
    let written = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .and_then(|mut f| f.write_all(text).and_then(|()| f.sync_all()))
        .and_then(|()| fs::rename(&tmp, path));
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written.map_err(WriteError::new(path))
}
