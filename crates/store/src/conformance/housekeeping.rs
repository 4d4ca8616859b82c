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
            usage_days_before: t0().date(),
        })
        .await
        .unwrap();
    assert_eq!(
        purged,
        Purged {
            sessions: 2,
            idempotency: 1,
            changes: u64::try_from(feed.len() - 2).unwrap(),
            usage_days: 0,
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
            usage_days_before: t0().date(),
        })
        .await
        .unwrap();
    assert_eq!(again.sessions + again.idempotency, 0);
    assert_eq!(again.changes, 1);
    assert_eq!(store.changes_since(0, 10).await.unwrap().len(), 1);
}

/// The idle sweep revokes the org's active tokens unused for the period (never used:
/// since creation; restored: since the restore), each once, with one `token.revoked`
/// event (no actor, reason `idle`) and one change; expired and revoked tokens are left
/// alone, and of two sweepers at once only one revokes (and audits) a token.
pub async fn idle_sweep_revokes_once(store: Arc<dyn Store>) {
    const DAY: i64 = 86_400;
    let store = &*store;
    let world = bootstrapped(store).await;
    let ws = &world.workspace;
    let org = world.org.id.as_str();
    let create = |expires: Option<i64>| {
        let (mut token, secret) = token_record(org, TokenType::Client, Some(ws), None);
        token.expires_at = expires.map(at);
        async move {
            store
                .create_token(t0(), token, secret, &unlimited(), event("token.created"))
                .await
                .unwrap()
        }
    };
    let never = create(None).await;
    let used = create(None).await;
    let expired = create(Some(5 * DAY)).await;
    let revoked = create(None).await;
    store
        .revoke_token(at(1), &revoked.id, false, event("token.revoked"))
        .await
        .unwrap();
    store
        .record_last_used(&[crate::LastUsed {
            token_id: used.id.clone(),
            at: at(20 * DAY),
            ip: None,
        }])
        .await
        .unwrap();
    let idle_events = |id: String| async move {
        audit_of_token(store, &id)
            .await
            .into_iter()
            .filter(|e| e.action == "token.revoked" && e.details["reason"] == "idle")
            .collect::<Vec<_>>()
    };

    let early = store
        .revoke_idle_tokens(at(30 * DAY - 1), org, 30, 100)
        .await
        .unwrap();
    assert!(!early.contains(&never.id), "{early:?}");
    let v = store.current_version().await.unwrap();
    let swept = store
        .revoke_idle_tokens(at(30 * DAY), org, 30, 100)
        .await
        .unwrap();
    assert!(swept.contains(&never.id), "{swept:?}");
    for other in [&used.id, &expired.id, &revoked.id] {
        assert!(!swept.contains(other), "{other} swept");
    }
    let changes = store.changes_since(v, 100).await.unwrap();
    assert_eq!(
        changes
            .iter()
            .filter(|c| c.kind == ChangeKind::Token && c.id == never.id)
            .count(),
        1
    );
    assert_eq!(
        store.get_token(&never.id).await.unwrap().state,
        StoredState::Revoked
    );
    let events = idle_events(never.id.clone()).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].actor_id, None);
    assert_eq!(events[0].workspace_id.as_deref(), Some(ws.id.as_str()));
    assert_eq!(events[0].details["idle_revoke_days"], 30);
    assert_eq!(events[0].created_at, at(30 * DAY));
    assert_eq!(
        store.get_token(&expired.id).await.unwrap().state,
        StoredState::Active,
        "the expiry sweep's, not this one's"
    );

    // Two sweepers at once (two nodes): `used` (idle since day 20) is revoked once.
    let (a, b) = tokio::join!(
        store.revoke_idle_tokens(at(50 * DAY), org, 30, 100),
        store.revoke_idle_tokens(at(50 * DAY), org, 30, 100),
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(
        a.iter().chain(&b).filter(|id| **id == used.id).count(),
        1,
        "{a:?} {b:?}"
    );
    assert_eq!(idle_events(used.id.clone()).await.len(), 1);
    assert!(!a.contains(&never.id) && !b.contains(&never.id));

    // A restored token is idle again only a full period after its restore.
    store
        .restore_token(
            at(60 * DAY),
            &never.id,
            &unlimited(),
            event("token.restored"),
        )
        .await
        .unwrap();
    let after_restore = store
        .revoke_idle_tokens(at(61 * DAY), org, 30, 100)
        .await
        .unwrap();
    assert!(!after_restore.contains(&never.id), "{after_restore:?}");
    let again = store
        .revoke_idle_tokens(at(90 * DAY), org, 30, 100)
        .await
        .unwrap();
    assert!(again.contains(&never.id), "{again:?}");
    assert_eq!(idle_events(never.id.clone()).await.len(), 2);

    // At most `limit` per call; the rest on the next.
    for _ in 0..3 {
        create(None).await;
    }
    let first = store
        .revoke_idle_tokens(at(200 * DAY), org, 30, 2)
        .await
        .unwrap();
    assert_eq!(first.len(), 2);
    let rest = store
        .revoke_idle_tokens(at(200 * DAY), org, 30, 100)
        .await
        .unwrap();
    assert!(!rest.is_empty() && rest.iter().all(|id| !first.contains(id)));
    assert!(
        store
            .revoke_idle_tokens(at(200 * DAY), org, 30, 100)
            .await
            .unwrap()
            .is_empty()
    );
}
