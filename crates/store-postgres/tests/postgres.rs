//! What is specific to the PostgreSQL backend: several stores (several nodes' pools) on one
//! database, notices between them, and a database restart under a live store.

// Test code: a failed step is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use latchkey_core::policy::Limits;
use latchkey_proto::TokenType;
use latchkey_store::conformance::{
    at, bootstrap_plan, event, t0, token_record, two_stores_share_limits_and_changes, unlimited,
};
use latchkey_store::{LastUsed, Store, StoreError};
use latchkey_store_postgres::PostgresStore;
use latchkey_store_postgres::testing::{Cluster, TestDatabase, skip};
use tokio::sync::watch;

async fn node(url: &str) -> Arc<dyn Store> {
    Arc::new(PostgresStore::connect(url, 4).await.expect("connect"))
}

/// Waits until `rx` sees a version of at least `version`, or panics after `within`.
async fn notice_of(rx: &mut watch::Receiver<i64>, version: i64, within: Duration) {
    let waited = tokio::time::timeout(within, rx.wait_for(|seen| *seen >= version))
        .await
        .map(|r| r.is_ok());
    assert!(
        matches!(waited, Ok(true)),
        "no notice of version {version} within {within:?} (saw {})",
        *rx.borrow()
    );
}

/// Nodes starting together on an empty database: every one migrates (once, under the
/// migrator's lock), records the same hash key and tries the first start; exactly one
/// bootstraps and none fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_first_start_bootstraps_once() {
    let Some(db) = TestDatabase::create().await else {
        return;
    };
    let tasks: Vec<_> = (0..4)
        .map(|i| {
            let url = db.url.clone();
            tokio::spawn(async move {
                let store = node(&url).await;
                store.migrate().await?;
                store.ensure_hash_key("shared-key").await?;
                store
                    .bootstrap(t0(), bootstrap_plan(&format!("n{i}")))
                    .await
            })
        })
        .collect();
    let mut winners = 0;
    for task in tasks {
        if task.await.unwrap().expect("start") {
            winners += 1;
        }
    }
    assert_eq!(winners, 1);
    let store = node(&db.url).await;
    assert_eq!(store.count_active_tokens().await.unwrap(), 1);
    assert_eq!(
        store.ensure_hash_key("another-key").await,
        Err(StoreError::HashKeyMismatch {
            stored: "shared-key".to_owned()
        })
    );
    db.drop_now().await;
}

/// Creates from two nodes at once cannot overshoot a limit, and both nodes read one feed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_share_limits_and_changes() {
    let Some(db) = TestDatabase::create().await else {
        return;
    };
    let a = node(&db.url).await;
    a.migrate().await.unwrap();
    let b = node(&db.url).await;
    two_stores_share_limits_and_changes(a, b).await;
    db.drop_now().await;
}

/// A change committed through one node is announced to the others at once, with its
/// version; a refused write announces nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notices_reach_other_nodes() {
    let Some(db) = TestDatabase::create().await else {
        return;
    };
    let a = node(&db.url).await;
    a.migrate().await.unwrap();
    let plan = bootstrap_plan("notices");
    a.bootstrap(t0(), plan.clone()).await.unwrap();
    let b = node(&db.url).await;
    let mut rx = b.change_notices().expect("PostgreSQL has notices");
    // The listener's first connection wakes the reader once.
    tokio::time::timeout(Duration::from_secs(10), rx.changed())
        .await
        .expect("listening")
        .unwrap();

    let started = Instant::now();
    let revoked = a
        .revoke_token(at(1), &plan.token.id, false, event("token.revoked"))
        .await
        .unwrap();
    let version = a.current_version().await.unwrap();
    notice_of(&mut rx, version, Duration::from_secs(1)).await;
    eprintln!("notice after {:?}", started.elapsed());
    assert_eq!(revoked.id, plan.token.id);

    // A refused write sends nothing.
    rx.mark_unchanged();
    let (token, secret) =
        token_record(&plan.org.id, TokenType::Client, Some(&plan.workspace), None);
    let refused = a
        .create_token(
            at(2),
            token,
            secret,
            &Limits {
                max_active_tokens: Some(0),
                max_tokens_per_user: None,
            },
            event("token.created"),
        )
        .await;
    assert!(matches!(refused, Err(StoreError::LimitExceeded { .. })));
    // Bookkeeping sends nothing either.
    a.record_last_used(&[LastUsed {
        token_id: plan.token.id.clone(),
        at: at(3),
        ip: None,
    }])
    .await
    .unwrap();
    assert!(
        tokio::time::timeout(Duration::from_millis(300), rx.changed())
            .await
            .is_err(),
        "no notice for refused writes and bookkeeping"
    );

    // A store with notices turned off neither sends nor listens.
    let quiet = PostgresStore::connect(&db.url, 2)
        .await
        .unwrap()
        .with_notices(false);
    assert!(quiet.change_notices().is_none());
    quiet
        .update_instance_settings(at(4), plan.instance.clone(), event("instance.updated"))
        .await
        .unwrap();
    assert!(
        tokio::time::timeout(Duration::from_millis(300), rx.changed())
            .await
            .is_err(),
        "a quiet node sends no notice"
    );
    drop(rx);
    db.drop_now().await;
}

/// Last-used flushes from several nodes merge by the latest time and never regress.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn last_used_from_many_nodes_merges_by_max() {
    let Some(db) = TestDatabase::create().await else {
        return;
    };
    let a = node(&db.url).await;
    a.migrate().await.unwrap();
    let b = node(&db.url).await;
    let plan = bootstrap_plan("last-used");
    a.bootstrap(t0(), plan.clone()).await.unwrap();
    let (token, secret) =
        token_record(&plan.org.id, TokenType::Client, Some(&plan.workspace), None);
    let token = a
        .create_token(t0(), token, secret, &unlimited(), event("token.created"))
        .await
        .unwrap();
    let used = |secs: i64, ip: &str| LastUsed {
        token_id: token.id.clone(),
        at: at(secs),
        ip: Some(ip.to_owned()),
    };
    // Interleaved flushes from both nodes, each batch with several observations.
    let mut tasks = Vec::new();
    for round in 0..10i64 {
        let store = if round % 2 == 0 { a.clone() } else { b.clone() };
        let batch = vec![
            used(round * 10 + 3, &format!("10.0.{round}.3")),
            used(round * 10 + 1, &format!("10.0.{round}.1")),
        ];
        tasks.push(tokio::spawn(
            async move { store.record_last_used(&batch).await },
        ));
    }
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let seen = b.get_token(&token.id).await.unwrap();
    assert_eq!(seen.last_used_at, Some(at(93)));
    assert_eq!(seen.last_used_ip.as_deref(), Some("10.0.9.3"));
    // A late flush of an older observation does not move it back.
    a.record_last_used(&[used(50, "10.9.9.9")]).await.unwrap();
    let seen = a.get_token(&token.id).await.unwrap();
    assert_eq!(seen.last_used_at, Some(at(93)));
    assert_eq!(seen.last_used_ip.as_deref(), Some("10.0.9.3"));
    db.drop_now().await;
}

/// A live store across a database restart: calls fail with `Unavailable` (quickly, not
/// hanging) while the database is away and succeed again once it is back, without a new
/// store; the notice listener reconnects by itself and wakes the reader to catch up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn survives_a_database_restart() {
    let cluster = match Cluster::start() {
        Ok(cluster) => cluster,
        Err(why) => {
            let _: Option<()> = skip(&format!("no throwaway PostgreSQL cluster: {why}"));
            return;
        }
    };
    let db = TestDatabase::create_on(&cluster.admin_url()).await.unwrap();
    let a = node(&db.url).await;
    a.migrate().await.unwrap();
    let plan = bootstrap_plan("restart");
    a.bootstrap(t0(), plan.clone()).await.unwrap();
    let b = node(&db.url).await;
    let mut rx = b.change_notices().unwrap();
    tokio::time::timeout(Duration::from_secs(10), rx.changed())
        .await
        .unwrap()
        .unwrap();

    cluster.stop().unwrap();
    let started = Instant::now();
    assert!(matches!(a.ping().await, Err(StoreError::Unavailable(_))));
    assert!(matches!(
        a.revoke_token(at(1), &plan.token.id, false, event("token.revoked"))
            .await,
        Err(StoreError::Unavailable(_))
    ));
    assert!(matches!(
        b.changes_since(0, 10).await,
        Err(StoreError::Unavailable(_))
    ));
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "calls fail promptly while the database is away: {:?}",
        started.elapsed()
    );

    // Nothing wakes the reader while the database is away; forget earlier wake-ups now,
    // before it is back, so the one the reconnection sends cannot be missed (PostgreSQL
    // accepts connections a moment before `pg_ctl -w` returns).
    rx.mark_unchanged();
    cluster.start_server().unwrap();
    // Back: the same stores work again.
    let deadline = Instant::now() + Duration::from_secs(30);
    while a.ping().await.is_err() {
        assert!(
            Instant::now() < deadline,
            "store usable again after restart"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The listener reconnected by itself and woke the reader to re-read the feed.
    tokio::time::timeout(Duration::from_secs(15), rx.changed())
        .await
        .expect("a wake-up after the listener reconnects")
        .unwrap();
    // And notices flow again.
    a.revoke_token(at(2), &plan.token.id, false, event("token.revoked"))
        .await
        .unwrap();
    let version = a.current_version().await.unwrap();
    notice_of(&mut rx, version, Duration::from_secs(2)).await;
    drop(rx);
    drop(b);
    drop(a);
    db.drop_now().await;
}
