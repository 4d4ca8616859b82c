//! What is specific to the SQLite backend: files, URLs, reopening, backups, and two
//! stores (two processes' worth of connections) sharing one file.

use std::sync::Arc;

use latchkey_core::policy::Limits;
use latchkey_proto::{OrgRole, TokenType};
use latchkey_store::conformance::{
    add_user, bootstrap_plan, bootstrapped, event, t0, token_record,
    two_stores_share_limits_and_changes, unlimited,
};
use latchkey_store::sql::{SqlBackend, WriteKind, write_op};
use latchkey_store::{Store, StoreError, UserPatch};
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

/// Group commit: writes that queue while a batch runs are committed together, in one
/// transaction; a write refused inside that batch (a limit, a second legacy token) is
/// rolled back alone, its neighbours commit; and what was acknowledged is in the file when
/// it is opened again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_writes_share_one_commit_and_fail_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("batch.db");
    let store = Arc::new(SqliteStore::open(&path).await.unwrap());
    store.migrate().await.unwrap();
    let world = bootstrapped(store.as_ref()).await;
    let member = add_user(store.as_ref(), &world, "member", OrgRole::Member).await;
    let other = add_user(store.as_ref(), &world, "other", OrgRole::Member).await;

    // A first write that waits inside its batch until the others are queued behind it.
    let (open, gate) = tokio::sync::oneshot::channel::<()>();
    let before = store.writer_stats();
    let held = {
        let store = store.clone();
        tokio::spawn(async move {
            let op = write_op::<SqliteStore, (), _>(|_raw| {
                Box::pin(async move {
                    let _ = gate.await;
                    Ok(())
                })
            });
            store.write(WriteKind::Serialized, op).await
        })
    };
    wait_for(|| store.writer_stats().writes == before.writes + 1).await;

    // 15 personal tokens under a cap of 10, two legacy tokens for one user, 3 client tokens.
    let capped = Limits {
        max_active_tokens: None,
        max_tokens_per_user: Some((member.id.clone(), 10)),
    };
    let mut writes = Vec::new();
    for (token_type, owner, limits) in
        std::iter::repeat_n((TokenType::Personal, Some(&member), capped.clone()), 15)
            .chain(std::iter::repeat_n(
                (TokenType::Legacy, Some(&other), unlimited()),
                2,
            ))
            .chain(std::iter::repeat_n(
                (TokenType::Client, None, unlimited()),
                3,
            ))
    {
        let (token, secret) =
            token_record(&world.org.id, token_type, Some(&world.workspace), owner);
        let store = store.clone();
        writes.push(tokio::spawn(async move {
            let id = token.id.clone();
            let answer = store
                .create_token(t0(), token, secret, &limits, event("token.created"))
                .await;
            (id, token_type, answer)
        }));
    }
    // A write that fails after it changed a row: demoting the last owner updates the user,
    // then finds no owner left. Its savepoint must take the update back.
    let demote = {
        let store = store.clone();
        let admin = world.admin.id.clone();
        tokio::spawn(async move {
            let patch = UserPatch {
                role: Some(OrgRole::Member),
                ..UserPatch::default()
            };
            store
                .update_user(t0(), &admin, patch, event("user.updated"))
                .await
        })
    };
    wait_for(|| store.writer_stats().queued == before.queued + 22).await;
    open.send(()).unwrap();
    held.await.unwrap().unwrap();

    let mut created = Vec::new();
    let (mut over_cap, mut second_legacy) = (0, 0);
    for write in writes {
        match write.await.unwrap() {
            (id, _, Ok(_)) => created.push(id),
            (_, TokenType::Personal, Err(StoreError::LimitExceeded { limit, value: 10 })) => {
                assert_eq!(limit, "max_tokens_per_user");
                over_cap += 1;
            }
            (_, TokenType::Legacy, Err(StoreError::Conflict(_))) => second_legacy += 1,
            (_, _, Err(other)) => panic!("unexpected error: {other:?}"),
        }
    }
    assert_eq!((created.len(), over_cap, second_legacy), (14, 5, 1));
    assert_eq!(demote.await.unwrap(), Err(StoreError::LastOwner));
    let after = store.writer_stats();
    assert_eq!(
        after.batches,
        before.batches + 2,
        "the held batch, then all 21 in one"
    );
    assert_eq!(after.writes, before.writes + 22);

    // Every acknowledged token is in the file; the refused ones left nothing behind.
    store.close().await;
    let reopened = SqliteStore::open(&path).await.unwrap();
    for id in &created {
        reopened.get_token(id).await.unwrap();
    }
    assert_eq!(reopened.count_active_tokens().await.unwrap(), 1 + 14);
    assert_eq!(
        reopened.get_user(&world.admin.id).await.unwrap().role,
        OrgRole::Owner
    );
    let feed = reopened.changes_since(0, 1000).await.unwrap();
    for pair in feed.windows(2) {
        assert_eq!(pair[0].version + 1, pair[1].version, "no gaps: {feed:?}");
    }
}

/// Polls `condition` until it holds (or fails the test after a generous deadline).
async fn wait_for(condition: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !condition() {
        assert!(
            std::time::Instant::now() < deadline,
            "condition not met in 30 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
}
