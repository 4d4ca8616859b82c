//! Conformance cases for service accounts and token approval (DESIGN.md §8).

use std::sync::Arc;

use latchkey_core::StoredState;
use latchkey_core::policy::Limits;
use latchkey_proto::{OrgRole, TokenState, TokenType, UserKind};
use time::Duration;

use super::fixtures::*;
use crate::{ChangeKind, PageRequest, StateFilter, Store, StoreError, TokenFilter, UserPatch};

/// Service accounts: stored with their kind and no password, listed by kind (with pages),
/// own personal tokens like anyone; deactivating every human leaves their tokens alone,
/// and deactivating the account is one user change.
pub async fn service_accounts_by_kind(store: Arc<dyn Store>) {
    let store = &*store;
    let world = bootstrapped(store).await;
    assert_eq!(world.admin.kind, UserKind::Human);
    let human = add_user(store, &world, "human", OrgRole::Admin).await;
    let mut services = Vec::new();
    for name in ["ci-bot", "deploy-bot", "backup-bot"] {
        let mut record = user_record(&world.org.id, name, OrgRole::Member);
        record.kind = UserKind::Service;
        record.password_hash = None;
        let stored = store
            .create_user(t0(), record.clone(), event("user.created"))
            .await
            .unwrap();
        assert_eq!(stored, record);
        assert_eq!(
            store.get_user(&record.id).await.unwrap().kind,
            UserKind::Service
        );
        services.push(stored);
    }
    let found = store
        .find_user_by_username("CI-BOT")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.kind, UserKind::Service);
    assert_eq!(found.password_hash, None);

    // By kind, newest first, in pages of two.
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = store
            .list_users(
                &world.org.id,
                Some(UserKind::Service),
                &PageRequest { limit: 2, cursor },
            )
            .await
            .unwrap();
        seen.extend(page.items.iter().map(|u| u.id.clone()));
        assert!(page.items.iter().all(|u| u.kind == UserKind::Service));
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    let mut want: Vec<String> = services.iter().map(|u| u.id.clone()).collect();
    want.sort();
    want.reverse();
    assert_eq!(seen, want);
    let humans = store
        .list_users(
            &world.org.id,
            Some(UserKind::Human),
            &PageRequest::first(100),
        )
        .await
        .unwrap();
    let human_ids = id_set(humans.items.iter().map(|u| u.id.as_str()));
    assert_eq!(
        human_ids,
        id_set([world.admin.id.as_str(), human.id.as_str()])
    );
    let all = store
        .list_users(&world.org.id, None, &PageRequest::first(100))
        .await
        .unwrap();
    assert_eq!(all.items.len(), 5);

    // Its personal token is like anyone's; deactivating a human changes nothing of it.
    let bot = &services[0];
    let token = add_token(
        store,
        &world,
        TokenType::Personal,
        Some(&world.workspace),
        Some(bot),
    )
    .await;
    assert_eq!(token.owner_id.as_deref(), Some(bot.id.as_str()));
    store
        .update_user(
            at(5),
            &human.id,
            UserPatch {
                active: Some(false),
                ..UserPatch::default()
            },
            event("user.deactivated"),
        )
        .await
        .unwrap();
    assert_eq!(store.get_token(&token.id).await.unwrap(), token);
    assert!(store.get_user(&bot.id).await.unwrap().active);
    let owned = tokens_where(
        store,
        &world,
        TokenFilter {
            owner_id: Some(bot.id.clone()),
            ..TokenFilter::default()
        },
    )
    .await;
    assert_eq!(owned, vec![token.clone()]);

    // Deactivating the service account: one user change (what nodes drop), kind kept.
    let before = store.current_version().await.unwrap();
    let off = store
        .update_user(
            at(6),
            &bot.id,
            UserPatch {
                active: Some(false),
                ..UserPatch::default()
            },
            event("user.deactivated"),
        )
        .await
        .unwrap();
    assert!(!off.active);
    assert_eq!(off.kind, UserKind::Service);
    expect_one_change(store, before, ChangeKind::User, &bot.id).await;
}

/// A pending token of `token_type` in "Workspace 1", created by `creator`.
async fn add_pending(
    store: &dyn Store,
    world: &World,
    creator: &latchkey_core::UserRecord,
    limits: &Limits,
) -> Result<latchkey_core::TokenRecord, StoreError> {
    let (mut token, secret) = token_record(
        &world.org.id,
        TokenType::Admin,
        Some(&world.workspace),
        None,
    );
    token.created_by = Some(creator.id.clone());
    token.state = StoredState::Pending;
    store
        .create_token(t0(), token, secret, limits, event("token.created"))
        .await
}

/// The ids of the tokens listed in `state` at `now`.
async fn ids_in_state(
    store: &dyn Store,
    world: &World,
    state: TokenState,
    now: time::OffsetDateTime,
) -> Vec<String> {
    tokens_where(
        store,
        world,
        TokenFilter {
            state: Some(StateFilter {
                state,
                now,
                disabled_types: Vec::new(),
            }),
            ..TokenFilter::default()
        },
    )
    .await
    .into_iter()
    .map(|t| t.id)
    .collect()
}

/// Approval (DESIGN.md §8): a pending token holds its limit slot, lists as `pending`,
/// and is decided once — approve → `active`, deny → `denied` (final) — each decision one
/// audit event and one token change; a second decision, a decision past the expiry, and
/// an unknown id change nothing.
pub async fn approval_pending_then_decided(store: Arc<dyn Store>) {
    let store = &*store;
    let world = bootstrapped(store).await;
    let admin = add_user(store, &world, "approver", OrgRole::Admin).await;
    // The bootstrap token is the one active token: room for exactly one more.
    let two = Limits {
        max_active_tokens: Some(2),
        max_tokens_per_user: None,
    };
    let pending = add_pending(store, &world, &admin, &two).await.unwrap();
    assert_eq!(pending.state, StoredState::Pending);
    assert_eq!(store.get_token(&pending.id).await.unwrap(), pending);
    // It holds its slot: neither another pending token nor an active one fits.
    assert!(matches!(
        add_pending(store, &world, &admin, &two).await,
        Err(StoreError::LimitExceeded {
            limit: "max_active_tokens",
            ..
        })
    ));
    let (active, secret) = token_record(
        &world.org.id,
        TokenType::Client,
        Some(&world.workspace),
        None,
    );
    assert!(matches!(
        store
            .create_token(t0(), active, secret, &two, event("token.created"))
            .await,
        Err(StoreError::LimitExceeded { .. })
    ));
    assert_eq!(
        ids_in_state(store, &world, TokenState::Pending, at(1)).await,
        vec![pending.id.clone()]
    );
    assert!(
        !ids_in_state(store, &world, TokenState::Active, at(1))
            .await
            .contains(&pending.id)
    );

    let before = store.current_version().await.unwrap();
    let approved = store
        .decide_token(
            at(2),
            &pending.id,
            true,
            token_event("token.approved", &pending.id),
        )
        .await
        .unwrap();
    assert_eq!(approved.state, StoredState::Active);
    assert_eq!(store.get_token(&pending.id).await.unwrap(), approved);
    let v = expect_one_change(store, before, ChangeKind::Token, &pending.id).await;
    for approve in [true, false] {
        assert!(is_conflict(
            &store
                .decide_token(at(3), &pending.id, approve, event("token.denied"))
                .await
        ));
    }
    expect_no_change(store, v).await;
    let actions: Vec<String> = audit_of_token(store, &pending.id)
        .await
        .into_iter()
        .map(|e| e.action)
        .collect();
    assert_eq!(actions, vec!["token.approved".to_owned()]);

    // Deny: final, and listed as denied. Its secret finds it as it is (the verifier
    // decides `pending` and `revoked` from the state).
    let limits = unlimited();
    let (mut second, secret) = token_record(
        &world.org.id,
        TokenType::Admin,
        Some(&world.workspace),
        None,
    );
    second.state = StoredState::Pending;
    let hash = secret.hash;
    let second = store
        .create_token(t0(), second, secret, &limits, event("token.created"))
        .await
        .unwrap();
    let found = store.find_secret(&hash).await.unwrap().unwrap().0;
    assert_eq!(found.state, StoredState::Pending);
    let v = store.current_version().await.unwrap();
    let denied = store
        .decide_token(
            at(4),
            &second.id,
            false,
            token_event("token.denied", &second.id),
        )
        .await
        .unwrap();
    assert_eq!(denied.state, StoredState::Denied);
    let found = store.find_secret(&hash).await.unwrap().unwrap().0;
    assert_eq!(found.state, StoredState::Denied);
    let v = expect_one_change(store, v, ChangeKind::Token, &second.id).await;
    assert!(is_conflict(
        &store
            .decide_token(at(5), &second.id, true, event("token.approved"))
            .await
    ));
    expect_no_change(store, v).await;
    assert_eq!(
        ids_in_state(store, &world, TokenState::Denied, at(5)).await,
        vec![second.id.clone()]
    );
    assert!(
        ids_in_state(store, &world, TokenState::Pending, at(5))
            .await
            .is_empty()
    );
    assert_eq!(
        audit_of_token(store, &second.id).await[0].action,
        "token.denied"
    );

    // Past its expiry a pending token is expired: it cannot be decided, the sweep marks it.
    let (mut late, secret) = token_record(
        &world.org.id,
        TokenType::Admin,
        Some(&world.workspace),
        None,
    );
    late.state = StoredState::Pending;
    late.expires_at = Some(t0() + Duration::seconds(10));
    let late = store
        .create_token(t0(), late, secret, &limits, event("token.created"))
        .await
        .unwrap();
    let v = store.current_version().await.unwrap();
    assert!(is_conflict(
        &store
            .decide_token(at(10), &late.id, true, event("token.approved"))
            .await
    ));
    expect_no_change(store, v).await;
    assert_eq!(
        ids_in_state(store, &world, TokenState::Expired, at(10)).await,
        vec![late.id.clone()]
    );
    assert_eq!(
        store.expire_tokens(at(10)).await.unwrap(),
        vec![late.id.clone()]
    );
    assert_eq!(
        store.get_token(&late.id).await.unwrap().state,
        StoredState::Expired
    );

    assert!(matches!(
        store
            .decide_token(
                at(11),
                &latchkey_core::new_id(),
                true,
                event("token.approved")
            )
            .await,
        Err(StoreError::NotFound(_))
    ));
}

/// No path turns a pending or denied token active but an approval: a revoke (a creator's
/// withdrawal, a leak report, a bulk revoke) makes it `denied`, and a denied token is
/// never restored or rotated.
pub async fn approval_pending_is_never_restored_active(store: Arc<dyn Store>) {
    let store = &*store;
    let world = bootstrapped(store).await;
    let admin = add_user(store, &world, "creator", OrgRole::Admin).await;
    let limits = unlimited();
    for way in ["revoke", "leak", "bulk"] {
        let token = add_pending(store, &world, &admin, &limits).await.unwrap();
        let revoked = match way {
            "revoke" | "leak" => store
                .revoke_token(
                    at(1),
                    &token.id,
                    way == "leak",
                    token_event("token.revoked", &token.id),
                )
                .await
                .unwrap(),
            _ => {
                let outcomes = store
                    .revoke_tokens(
                        at(1),
                        vec![(token.id.clone(), token_event("token.revoked", &token.id))],
                    )
                    .await
                    .unwrap();
                assert!(
                    matches!(&outcomes[..], [crate::BulkRevoked::Revoked(_)]),
                    "{outcomes:?}"
                );
                store.get_token(&token.id).await.unwrap()
            }
        };
        assert_eq!(revoked.state, StoredState::Denied, "{way}");
        let v = store.current_version().await.unwrap();
        assert!(is_conflict(
            &store
                .restore_token(at(2), &token.id, &limits, event("token.restored"))
                .await
        ));
        assert!(is_conflict(
            &store
                .rotate_token(
                    at(2),
                    &token.id,
                    secret_for(&latchkey_core::new_id()),
                    None,
                    None,
                    None,
                    event("token.rotated"),
                )
                .await
        ));
        expect_no_change(store, v).await;
        // A revoke again leaves it denied.
        let again = store
            .revoke_token(at(3), &token.id, false, event("token.revoked"))
            .await
            .unwrap();
        assert_eq!(again.state, StoredState::Denied);
    }
    // A pending token is not restorable either (it was never revoked).
    let token = add_pending(store, &world, &admin, &limits).await.unwrap();
    assert!(is_conflict(
        &store
            .restore_token(at(4), &token.id, &limits, event("token.restored"))
            .await
    ));
    assert_eq!(
        store.get_token(&token.id).await.unwrap().state,
        StoredState::Pending
    );
}
