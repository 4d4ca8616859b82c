//! Conformance cases for the sweeps: expiry and purging retired rows.

use std::sync::Arc;

use latchkey_core::{SessionRecord, StoredState, UserRecord};
use latchkey_proto::{OrgRole, TokenType};

use super::fixtures::*;
use crate::{AuditFilter, ChangeKind, IdempotencyRecord, Purged, Retention, Store};

/// The expiry sweep marks active tokens past their expiry, once, with one event each.
pub async fn expire_tokens_sweep(store: Arc<dyn Store>) {
    let store = &*store;
    let world = bootstrapped(store).await;
    let ws = &world.workspace;
    let bob = add_user(store, &world, "bob", OrgRole::Member).await;
    let create = |expires: Option<i64>, owner: Option<&UserRecord>| {
        let token_type = if owner.is_some() {
            TokenType::Personal
        } else {
            TokenType::Client
        };
        let (mut token, secret) = token_record(&world.org.id, token_type, Some(ws), owner);
        token.expires_at = expires.map(at);
        async move {
            store
                .create_token(t0(), token, secret, &unlimited(), event("token.created"))
                .await
                .unwrap()
        }
    };
    let p1 = create(Some(100), Some(&bob)).await;
    let p2 = create(Some(200), None).await;
    let forever = create(None, None).await;
    let revoked = create(Some(50), None).await;
    store
        .revoke_token(at(10), &revoked.id, false, event("token.revoked"))
        .await
        .unwrap();

    assert!(store.expire_tokens(at(99)).await.unwrap().is_empty());
    let v = store.current_version().await.unwrap();
    assert_eq!(
        store.expire_tokens(at(150)).await.unwrap(),
        vec![p1.id.clone()]
    );
    expect_one_change(store, v, ChangeKind::Token, &p1.id).await;
    assert_eq!(
        store.get_token(&p1.id).await.unwrap().state,
        StoredState::Expired
    );
    let events = audit_where(
        store,
        AuditFilter {
            action: Some("token.expired".to_owned()),
            ..AuditFilter::default()
        },
    )
    .await;
    assert_eq!(events.len(), 1);
    let e = &events[0];
    assert_eq!(e.actor_id, None);
    assert_eq!(e.target_type.as_deref(), Some("token"));
    assert_eq!(e.target_id.as_deref(), Some(p1.id.as_str()));
    assert_eq!(e.subject_user_id.as_deref(), Some(bob.id.as_str()));
    assert_eq!(e.workspace_id.as_deref(), Some(ws.id.as_str()));
    assert_eq!(e.created_at, at(150));

    assert!(store.expire_tokens(at(150)).await.unwrap().is_empty());
    assert_eq!(
        store.expire_tokens(at(200)).await.unwrap(),
        vec![p2.id.clone()]
    );
    assert_eq!(
        store.get_token(&forever.id).await.unwrap().state,
        StoredState::Active
    );
    assert_eq!(
        store.get_token(&revoked.id).await.unwrap().state,
        StoredState::Revoked
    );
    // Expired tokens are neither restorable nor counted.
    assert!(is_conflict(
        &store
            .restore_token(at(201), &p1.id, &unlimited(), event("token.restored"))
            .await
    ));
    // bootstrap token + forever
    assert_eq!(store.count_active_tokens().await.unwrap(), 2);
}

/// Housekeeping deletes expired and idle sessions, old idempotent answers and all but the
/// newest change-feed rows, and nothing else; versions stay where they were.
pub async fn purge_retired_rows(store: Arc<dyn Store>) {
    let store = &*store;
    let world = bootstrapped(store).await;
    // Three sessions: past its absolute expiry, idle since t0, and fresh.
    let expired = SessionRecord {
        expires_at: at(100),
        ..session_record(&world.admin.id, t0())
    };
    let idle = session_record(&world.admin.id, t0());
    let live = session_record(&world.admin.id, t0());
    for (session, secret) in [
        (&expired, "expired session"),
        (&idle, "idle session"),
        (&live, "live session"),
    ] {
        store
            .create_session(
                t0(),
                session.clone(),
                hash_of(secret),
                event("session.created"),
            )
            .await
            .unwrap();
    }
    store.touch_session(&expired.id, at(90)).await.unwrap();
    store.touch_session(&live.id, at(500)).await.unwrap();

    let token = add_token(
        store,
        &world,
        TokenType::Client,
        Some(&world.workspace),
        None,
    )
    .await;
    let old_answer = IdempotencyRecord {
        key: "caller:rotate:old".to_owned(),
        request_hash: vec![1],
        response: vec![2],
        created_at: at(10),
    };
    store
        .rotate_token(
            at(10),
            &token.id,
            secret_for(&token.id),
            None,
            None,
            Some(old_answer.clone()),
            event("token.rotated"),
        )
        .await
        .unwrap();
    let new_answer = IdempotencyRecord {
        key: "caller:rotate:new".to_owned(),
        created_at: at(400),
        ..old_answer.clone()
    };
    store
        .rotate_token(
            at(400),
            &token.id,
            secret_for(&token.id),
            None,
            None,
            Some(new_answer.clone()),
            event("token.rotated"),
        )
        .await
        .unwrap();

    let version = store.current_version().await.unwrap();
    assert!(version >= 3, "the setup above wrote changes: {version}");
    let feed = store.changes_since(0, 10_000).await.unwrap();
    let purged = store
        .purge_retired(&Retention {
            sessions_expired_at: at(200),
            sessions_idle_since: at(200),
            idempotency_before: at(300),
            keep_changes: 2,
        })
        .await
        .unwrap();
    assert_eq!(
        purged,
        Purged {
            sessions: 2,
            idempotency: 1,
            changes: u64::try_from(feed.len() - 2).unwrap(),
        }
    );
    assert_eq!(
        store
            .find_session(&hash_of("expired session"))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store.find_session(&hash_of("idle session")).await.unwrap(),
        None
    );
    assert!(
        store
            .find_session(&hash_of("live session"))
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(
        store.get_idempotency(&old_answer.key, t0()).await.unwrap(),
        None
    );
    assert_eq!(
        store.get_idempotency(&new_answer.key, t0()).await.unwrap(),
        Some(new_answer)
    );

    // The newest two changes remain, versions unchanged, so a reader behind them sees a gap.
    assert_eq!(store.current_version().await.unwrap(), version);
    let kept: Vec<i64> = store
        .changes_since(0, 10_000)
        .await
        .unwrap()
        .iter()
        .map(|c| c.version)
        .collect();
    assert_eq!(kept, vec![version - 1, version]);
    // The token itself is untouched.
    assert!(store.get_token(&token.id).await.is_ok());

    // Nothing left to purge; at least one change row always stays.
    let again = store
        .purge_retired(&Retention {
            sessions_expired_at: at(200),
            sessions_idle_since: at(200),
            idempotency_before: at(300),
            keep_changes: 0,
        })
        .await
        .unwrap();
    assert_eq!(again.sessions + again.idempotency, 0);
    assert_eq!(again.changes, 1);
    assert_eq!(store.changes_since(0, 10).await.unwrap().len(), 1);
}
