//! Conformance cases for limits: active tokens, tokens per user, concurrent creates, one
//! legacy token per user, and two stores on one database sharing both.

use std::sync::Arc;

use latchkey_core::UserRecord;
use latchkey_core::policy::Limits;
use latchkey_proto::{OrgRole, TokenType};

use super::fixtures::*;
use crate::{AuditFilter, Store, StoreError, TokenFilter};

/// Two stores on one database (two processes on one SQLite file, two nodes on one
/// PostgreSQL database): creates through both at once cannot overshoot a limit, and both
/// read one gapless change feed. `b` must be migrated and empty; `a` shares its database.
pub async fn two_stores_share_limits_and_changes(a: Arc<dyn Store>, b: Arc<dyn Store>) {
    let plan = bootstrap_plan("shared");
    assert!(b.bootstrap(t0(), plan.clone()).await.unwrap());
    let limits = Limits {
        max_active_tokens: Some(8),
        max_tokens_per_user: None,
    };
    let tasks: Vec<_> = (0..24)
        .map(|i| {
            let store = if i % 2 == 0 { a.clone() } else { b.clone() };
            let limits = limits.clone();
            let (token, secret) =
                token_record(&plan.org.id, TokenType::Client, Some(&plan.workspace), None);
            tokio::spawn(async move {
                store
                    .create_token(t0(), token, secret, &limits, event("token.created"))
                    .await
            })
        })
        .collect();
    let mut created = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => created += 1,
            Err(StoreError::LimitExceeded { .. }) => {}
            Err(other) => panic!("unexpected error: {other:?}"),
        }
    }
    assert_eq!(created, 7, "the bootstrap token holds the eighth slot");
    assert_eq!(a.count_active_tokens().await.unwrap(), 8);
    let version = a.current_version().await.unwrap();
    assert_eq!(version, b.current_version().await.unwrap());
    let feed = a.changes_since(0, 1000).await.unwrap();
    assert_eq!(feed.last().unwrap().version, version);
    for pair in feed.windows(2) {
        assert_eq!(pair[0].version + 1, pair[1].version, "no gaps: {feed:?}");
    }
}

/// `max_active_tokens`: over the limit nothing changes; revoked and expired tokens do not
/// count.
pub async fn limit_max_active_tokens(store: Arc<dyn Store>) {
    let store = &*store;
    let world = bootstrapped(store).await;
    let ws = &world.workspace;
    let limits = Limits {
        max_active_tokens: Some(3),
        max_tokens_per_user: None,
    };
    let create = |token_type| {
        let (token, secret) = token_record(&world.org.id, token_type, Some(ws), None);
        let limits = limits.clone();
        async move {
            store
                .create_token(
                    at(1),
                    token.clone(),
                    secret.clone(),
                    &limits,
                    event("token.created"),
                )
                .await
                .map(|_| (token, secret))
        }
    };
    // The bootstrap token is one of the three.
    let (first, _) = create(TokenType::Client).await.unwrap();
    create(TokenType::Frontend).await.unwrap();

    let v = store.current_version().await.unwrap();
    let events = audit_where(store, AuditFilter::default()).await.len();
    let (token, secret) = token_record(&world.org.id, TokenType::Client, Some(ws), None);
    assert_eq!(
        store
            .create_token(
                at(1),
                token.clone(),
                secret.clone(),
                &limits,
                event("token.created")
            )
            .await,
        Err(StoreError::LimitExceeded {
            limit: "max_active_tokens",
            value: 3
        })
    );
    assert!(is_not_found(store.get_token(&token.id).await));
    assert!(store.find_secret(&secret.hash).await.unwrap().is_none());
    expect_no_change(store, v).await;
    assert_eq!(
        audit_where(store, AuditFilter::default()).await.len(),
        events
    );
    assert_eq!(store.count_active_tokens().await.unwrap(), 3);

    // A revoked token frees its slot.
    store
        .revoke_token(at(2), &first.id, false, event("token.revoked"))
        .await
        .unwrap();
    create(TokenType::Client).await.unwrap();
    assert!(matches!(
        create(TokenType::Client).await,
        Err(StoreError::LimitExceeded { .. })
    ));

    // So does one past its expiry, even before the sweep marks it.
    let (mut short, short_secret) = token_record(&world.org.id, TokenType::Client, Some(ws), None);
    short.expires_at = Some(at(100));
    let fresh = Limits {
        max_active_tokens: Some(4),
        ..Limits::default()
    };
    store
        .create_token(at(2), short, short_secret, &fresh, event("token.created"))
        .await
        .unwrap();
    let (later, later_secret) = token_record(&world.org.id, TokenType::Client, Some(ws), None);
    assert!(matches!(
        store
            .create_token(
                at(99),
                later.clone(),
                later_secret.clone(),
                &fresh,
                event("token.created")
            )
            .await,
        Err(StoreError::LimitExceeded { .. })
    ));
    store
        .create_token(at(100), later, later_secret, &fresh, event("token.created"))
        .await
        .unwrap();
}

/// `max_tokens_per_user`: counts the user's own active personal and legacy tokens only.
pub async fn limit_max_tokens_per_user(store: Arc<dyn Store>) {
    let store = &*store;
    let world = bootstrapped(store).await;
    let ws = &world.workspace;
    let bob = add_user(store, &world, "bob", OrgRole::Member).await;
    let carol = add_user(store, &world, "carol", OrgRole::Member).await;
    let per_user = |user: &UserRecord| Limits {
        max_active_tokens: None,
        max_tokens_per_user: Some((user.id.clone(), 2)),
    };
    let create = |token_type, user: &UserRecord| {
        let (token, secret) = token_record(&world.org.id, token_type, Some(ws), Some(user));
        let limits = per_user(user);
        async move {
            store
                .create_token(at(1), token, secret, &limits, event("token.created"))
                .await
        }
    };
    // Workspace tokens do not count against anybody.
    add_token(store, &world, TokenType::Client, Some(ws), None).await;
    let first = create(TokenType::Personal, &bob).await.unwrap();
    create(TokenType::Legacy, &bob).await.unwrap();
    let v = store.current_version().await.unwrap();
    assert_eq!(
        create(TokenType::Personal, &bob).await,
        Err(StoreError::LimitExceeded {
            limit: "max_tokens_per_user",
            value: 2
        })
    );
    expect_no_change(store, v).await;
    assert_eq!(
        tokens_where(
            store,
            &world,
            TokenFilter {
                owner_id: Some(bob.id.clone()),
                ..TokenFilter::default()
            }
        )
        .await
        .len(),
        2
    );
    // Another user has their own allowance.
    create(TokenType::Personal, &carol).await.unwrap();
    create(TokenType::Personal, &carol).await.unwrap();
    // Revoking frees a slot.
    store
        .revoke_token(at(2), &first.id, false, event("token.revoked"))
        .await
        .unwrap();
    create(TokenType::Personal, &bob).await.unwrap();
    assert!(matches!(
        create(TokenType::Personal, &bob).await,
        Err(StoreError::LimitExceeded { .. })
    ));
}

/// Concurrent creates at a limit cannot overshoot it.
pub async fn concurrent_creates_respect_limits(store: Arc<dyn Store>) {
    let world = bootstrapped(&*store).await;
    // Instance limit: one slot is the bootstrap token, five are free; twenty try.
    let limits = Limits {
        max_active_tokens: Some(6),
        max_tokens_per_user: None,
    };
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let store = store.clone();
            let limits = limits.clone();
            let (token, secret) = token_record(
                &world.org.id,
                TokenType::Client,
                Some(&world.workspace),
                None,
            );
            tokio::spawn(async move {
                store
                    .create_token(at(1), token, secret, &limits, event("token.created"))
                    .await
            })
        })
        .collect();
    let mut created = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => created += 1,
            Err(StoreError::LimitExceeded { limit, value }) => {
                assert_eq!((limit, value), ("max_active_tokens", 6));
            }
            Err(other) => panic!("unexpected error: {other:?}"),
        }
    }
    assert_eq!(created, 5);
    assert_eq!(store.count_active_tokens().await.unwrap(), 6);

    // Per-user limit.
    let bob = add_user(&*store, &world, "bob", OrgRole::Member).await;
    let limits = Limits {
        max_active_tokens: None,
        max_tokens_per_user: Some((bob.id.clone(), 3)),
    };
    let tasks: Vec<_> = (0..12)
        .map(|_| {
            let store = store.clone();
            let limits = limits.clone();
            let (token, secret) = token_record(
                &world.org.id,
                TokenType::Personal,
                Some(&world.workspace),
                Some(&bob),
            );
            tokio::spawn(async move {
                store
                    .create_token(at(1), token, secret, &limits, event("token.created"))
                    .await
            })
        })
        .collect();
    let mut created = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => created += 1,
            Err(StoreError::LimitExceeded { limit, .. }) => {
                assert_eq!(limit, "max_tokens_per_user");
            }
            Err(other) => panic!("unexpected error: {other:?}"),
        }
    }
    assert_eq!(created, 3);
    assert_eq!(store.count_active_tokens().await.unwrap(), 9);
}

/// At most one legacy token per user, whatever its state, until it is deleted.
pub async fn one_legacy_token_per_user(store: Arc<dyn Store>) {
    let store = &*store;
    let world = bootstrapped(store).await;
    let bob = add_user(store, &world, "bob", OrgRole::Member).await;
    let carol = add_user(store, &world, "carol", OrgRole::Member).await;
    let first = add_token(store, &world, TokenType::Legacy, None, Some(&bob)).await;
    let second = || {
        let (token, secret) = token_record(&world.org.id, TokenType::Legacy, None, Some(&bob));
        async move {
            store
                .create_token(at(1), token, secret, &unlimited(), event("token.created"))
                .await
        }
    };
    match second().await {
        Err(StoreError::Conflict(message)) => assert!(message.contains("legacy"), "{message}"),
        other => panic!("expected a conflict, got {other:?}"),
    }
    store
        .revoke_token(at(2), &first.id, false, event("token.revoked"))
        .await
        .unwrap();
    assert!(is_conflict(&second().await));
    add_token(store, &world, TokenType::Legacy, None, Some(&carol)).await;
    store
        .delete_token(at(3), &first.id, event("token.deleted"))
        .await
        .unwrap();
    second().await.unwrap();
    // Personal tokens are not affected.
    add_token(
        store,
        &world,
        TokenType::Personal,
        Some(&world.workspace),
        Some(&bob),
    )
    .await;
}
