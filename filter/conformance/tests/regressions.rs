//! Replays fuzz inputs through the fuzz targets' own code (filter/fuzz/checks.rs): every crash
//! input saved under tests/regressions/<target>/, and the seed corpora under filter/fuzz/corpus/.
//! `documents/` holds JSON arrays: the documents a YAML input read to, for `resources_yaml`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use external_service_conformance::checks;

use std::path::{Path, PathBuf};

fn inputs(dir: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries.map(|e| e.unwrap().path()).collect();
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let bytes = std::fs::read(&path).unwrap();
            (path, bytes)
        })
        .collect()
}

/// Runs each input, naming the file of every one that panics.
fn replay(dirs: &[&str], run: fn(&[u8])) -> usize {
    let mut failed = Vec::new();
    let mut count = 0;
    for dir in dirs {
        for (path, bytes) in inputs(dir) {
            count += 1;
            if std::panic::catch_unwind(|| run(&bytes)).is_err() {
                failed.push(path.display().to_string());
            }
        }
    }
    assert!(failed.is_empty(), "inputs that fail: {failed:#?}");
    count
}

#[test]
fn resources_json() {
    let n = replay(
        &[
            "tests/regressions/resources_json",
            "../fuzz/corpus/resources_json",
        ],
        checks::resources_json,
    );
    assert!(n > 0, "no inputs found");
}

#[test]
fn resources_yaml_documents() {
    replay(&["tests/regressions/documents"], |bytes| {
        let values: Vec<serde_json::Value> = serde_json::from_slice(bytes).unwrap();
        checks::documents(values);
    });
}

#[test]
fn authority() {
    let n = replay(
        &["tests/regressions/authority", "../fuzz/corpus/authority"],
        checks::authority,
    );
    assert!(n > 0, "no inputs found");
}
