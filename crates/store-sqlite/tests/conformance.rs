//! The store conformance suite over fresh SQLite databases: one test per case on a temp
//! file (the way the server runs it), and the whole suite once more through `run_all` on
//! in-memory databases.

// Test set-up: a failure to create the store is the test's failure.
#![allow(clippy::expect_used)]

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_all_in_memory() {
    latchkey_store::conformance::run_all(|| async {
        let store = SqliteStore::open_url("sqlite::memory:")
            .await
            .expect("open");
        store.migrate().await.expect("migrate");
        Arc::new(store) as Arc<dyn Store>
    })
    .await;
}
