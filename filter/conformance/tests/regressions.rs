//! Replays fuzz inputs through the fuzz targets' own code (filter/conformance/src/checks.rs):
//! the seed corpora under filter/fuzz/corpus/<target>/, every crash input saved under
//! tests/regressions/<target>/, and every request of the scenario table, so that the checks
//! cannot go stale against the table between runs of `make fuzz`. Each directory's count is
//! exact, so a corpus that moves or empties fails here; saving an input means raising its count.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use external_service_conformance::{checks, scenarios};

use std::path::Path;

/// Runs each input of each `(directory, count)` (a missing directory holds none), naming the
/// file of every one that panics.
fn replay(dirs: &[(&str, usize)], run: fn(&[u8])) {
    let mut failed = Vec::new();
    for &(dir, count) in dirs {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
        let mut files: Vec<_> = match std::fs::read_dir(&dir) {
            Ok(entries) => entries.map(|e| e.unwrap().path()).collect(),
            Err(_) => Vec::new(),
        };
        files.sort();
        assert_eq!(files.len(), count, "inputs in {}", dir.display());
        for path in files {
            let bytes = std::fs::read(&path).unwrap();
            if std::panic::catch_unwind(|| run(&bytes)).is_err() {
                failed.push(path.display().to_string());
            }
        }
    }
    assert!(failed.is_empty(), "inputs that fail: {failed:#?}");
}

#[test]
fn resources_json() {
    replay(
        &[
            ("tests/regressions/resources_json", 0),
            ("../fuzz/corpus/resources_json", 7),
        ],
        checks::resources_json,
    );
}

#[test]
fn resources_yaml() {
    replay(
        &[
            ("tests/regressions/resources_yaml", 0),
            ("../fuzz/corpus/resources_yaml", 4),
        ],
        checks::resources_yaml,
    );
}

#[test]
fn authority() {
    replay(
        &[
            ("tests/regressions/authority", 1),
            ("../fuzz/corpus/authority", 53),
        ],
        checks::authority,
    );
}

/// Every request of the scenario table, through the `authority` target's checks: what the
/// table says the filter does, the fuzz oracle must allow.
#[test]
fn scenario_requests() {
    let mut failed = Vec::new();
    for case in scenarios::cases() {
        let (authority, content_type) = (case.authority.as_deref(), case.content_type.as_deref());
        if std::panic::catch_unwind(|| checks::request(authority, content_type)).is_err() {
            failed.push(format!("{authority:?} content-type {content_type:?}"));
        }
    }
    assert!(
        failed.is_empty(),
        "scenario requests that fail: {failed:#?}"
    );
}
