//! What is specific to the SQLite backend: files, URLs, reopening, backups, and two
//! stores (two processes' worth of connections) sharing one file.

use std::sync::Arc;

use latchkey_store::conformance::{bootstrap_plan, t0, two_stores_share_limits_and_changes};
use latchkey_store::{Store, StoreError};
use latchkey_store_sqlite::SqliteStore;

#[tokio::test]
async fn reopening_keeps_data_and_the_hash_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested-is-not-created-here.db");
    let plan = bootstrap_plan("reopen");
    {
        let store = SqliteStore::open(&path).await.unwrap();
        store.migrate().await.unwrap();
        store.ensure_hash_key("key-a").await.unwrap();
        assert!(store.bootstrap(t0(), plan.clone()).await.unwrap());
        store.close().await;
        assert!(matches!(
            store.ping().await,
            Err(StoreError::Unavailable(_))
        ));
    }
    let store = SqliteStore::open(&path).await.unwrap();
    store.migrate().await.unwrap();
    assert_eq!(store.get_org().await.unwrap(), plan.org);
    assert_eq!(store.get_token(&plan.token.id).await.unwrap(), plan.token);
    assert_eq!(
        store.ensure_hash_key("key-b").await,
        Err(StoreError::HashKeyMismatch {
            stored: "key-a".to_owned()
        })
    );
    assert!(
        !store
            .bootstrap(t0(), bootstrap_plan("again"))
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn open_url_accepts_files_and_memory() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("url.db");
    let store = SqliteStore::open_url(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    store.migrate().await.unwrap();
    assert!(path.exists());
    store.ping().await.unwrap();

    let memory = SqliteStore::open_url("sqlite::memory:").await.unwrap();
    memory.migrate().await.unwrap();
    assert!(memory.bootstrap(t0(), bootstrap_plan("mem")).await.unwrap());
    assert_eq!(memory.count_active_tokens().await.unwrap(), 1);

    assert!(
        SqliteStore::open_url("postgres://localhost/x")
            .await
            .is_err()
    );
}

#[tokio::test]
async fn backup_is_a_usable_copy() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("live.db"))
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let plan = bootstrap_plan("backup");
    store.bootstrap(t0(), plan.clone()).await.unwrap();
    let copy_path = dir.path().join("copy.db");
    store.backup(&copy_path).await.unwrap();
    // The target must not exist: a second backup to it fails instead of overwriting.
    assert!(store.backup(&copy_path).await.is_err());

    let copy = SqliteStore::open(&copy_path).await.unwrap();
    copy.migrate().await.unwrap();
    assert_eq!(copy.get_org().await.unwrap(), plan.org);
    assert_eq!(
        copy.find_secret(&plan.secret.hash).await.unwrap(),
        Some((plan.token.clone(), plan.secret.clone()))
    );
    assert_eq!(
        copy.current_version().await.unwrap(),
        store.current_version().await.unwrap()
    );
}

/// An operator command and the server are two processes on one file: their writes
/// serialise on the file lock (`BEGIN IMMEDIATE` + busy timeout), limits hold across
/// them, and each sees the other's changes in the feed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_stores_on_one_file_share_limits_and_changes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared.db");
    let a: Arc<dyn Store> = Arc::new(SqliteStore::open(&path).await.unwrap());
    a.migrate().await.unwrap();
    let b: Arc<dyn Store> = Arc::new(SqliteStore::open(&path).await.unwrap());
    two_stores_share_limits_and_changes(a, b).await;
}
