//! The store conformance suite over fresh temp-file SQLite databases: one test per case.

use std::sync::Arc;

use latchkey_store::Store;
use latchkey_store_sqlite::SqliteStore;

/// A fresh, migrated, empty store in its own temporary directory (kept for the life of the
/// process: the directory handle is leaked so the file outlives this function).
async fn fresh() -> Arc<dyn Store> {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(&dir.path().join("latchkey.db"))
        .await
        .expect("open");
    store.migrate().await.expect("migrate");
    std::mem::forget(dir);
    Arc::new(store)
}

latchkey_store::store_conformance_tests!(fresh);
