//! The store conformance suite over fresh SQLite databases: one test per case, on a temp
//! file (the way the server runs it); and a check that the suite's one list holds every
//! case written and that every [`Store`] operation is exercised by some case.

// Test set-up: a failure to create the store is the test's failure.
#![allow(clippy::expect_used)]

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use latchkey_store::Store;
use latchkey_store_sqlite::SqliteStore;
use tempfile::TempDir;

/// A fresh, migrated, empty store in its own temporary directory, removed after the case.
async fn fresh() -> (Arc<dyn Store>, TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(&dir.path().join("latchkey.db"))
        .await
        .expect("open");
    store.migrate().await.expect("migrate");
    (Arc::new(store), dir)
}

latchkey_store::store_conformance_tests!(fresh);

/// The suite's sources: `(area, text)` for each file of `crates/store/src/conformance/`.
fn suite_sources() -> Vec<(String, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../store/src/conformance");
    let mut files: Vec<(String, String)> = std::fs::read_dir(&dir)
        .expect("conformance dir")
        .map(|entry| {
            let path = entry.expect("dir entry").path();
            let area = path
                .file_stem()
                .expect("stem")
                .to_string_lossy()
                .into_owned();
            (
                area,
                std::fs::read_to_string(&path).expect("read case file"),
            )
        })
        .collect();
    files.sort();
    files
}

/// Every `pub async fn <case>(store: Arc<dyn Store>)` written in an area file is in the
/// list (so it runs on every backend), and the list names nothing twice.
#[test]
fn every_written_case_is_listed_once() {
    let listed: Vec<&str> = latchkey_store::conformance::CASE_NAMES.to_vec();
    let unique: BTreeSet<&str> = listed.iter().copied().collect();
    assert_eq!(
        unique.len(),
        listed.len(),
        "a case is listed twice: {listed:?}"
    );
    let mut written = BTreeSet::new();
    for (area, text) in suite_sources() {
        for line in text.lines() {
            let Some(rest) = line.strip_prefix("pub async fn ") else {
                continue;
            };
            if let Some((name, args)) = rest.split_once('(')
                && args.starts_with("store: Arc<dyn Store>)")
            {
                written.insert(format!("{area}::{name}"));
            }
        }
    }
    let listed: BTreeSet<String> = unique.into_iter().map(str::to_owned).collect();
    assert_eq!(
        written, listed,
        "written cases vs the list in conformance.rs"
    );
}

/// Every method of the `Store` trait is called by some conformance case.
#[test]
fn every_store_operation_has_a_case() {
    let lib =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../store/src/lib.rs"))
            .expect("read store lib.rs");
    let start = lib.find("pub trait Store:").expect("the Store trait");
    let body = &lib[start..];
    let body = &body[..body.find("\n}\n").expect("end of the trait")];
    let operations: Vec<&str> = body
        .lines()
        .filter_map(|line| {
            let line = line.trim_start();
            let rest = line
                .strip_prefix("async fn ")
                .or_else(|| line.strip_prefix("fn "))?;
            rest.split(['(', '<']).next()
        })
        .collect();
    assert!(
        operations.len() > 50,
        "parsed too few operations: {operations:?}"
    );
    let suite: String = suite_sources().into_iter().map(|(_, text)| text).collect();
    let missing: Vec<&&str> = operations
        .iter()
        .filter(|op| !suite.contains(&format!(".{op}(")))
        .collect();
    assert!(
        missing.is_empty(),
        "Store operations no case calls: {missing:?}"
    );
}
