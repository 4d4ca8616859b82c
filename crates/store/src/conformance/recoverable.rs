//! Conformance cases for recoverable secrets: the sealed copy a token keeps, what reads
//! say about it, the reveal with its audit event, and every way it is erased (a setting
//! turned off, a rotation without one, a leak report, expiry, delete).

use std::sync::Arc;

use latchkey_core::{SecretRecord, TokenSettings};
use latchkey_proto::{OrgRole, TokenType};

use super::fixtures::*;
use crate::{AuditFilter, ChangeKind, Store, StoreError, TokenFilter};

/// A token of `token_type` created with `sealed` as its sealed secret.
async fn sealed_token(
    store: &dyn Store,
    world: &World,
    token_type: TokenType,
    sealed: &[u8],
) -> (latchkey_core::TokenRecord, SecretRecord) {
    let owner = token_type.is_user_owned().then_some(&world.admin);
    let (token, mut secret) =
        token_record(&world.org.id, token_type, Some(&world.workspace), owner);
    secret.sealed = Some(sealed.to_vec());
    let stored = store
        .create_token(
            t0(),
            token,
            secret.clone(),
            &unlimited(),
            event("token.created"),
        )
        .await
        .unwrap();
    (stored, secret)
}

/// How many `token.revealed` events the store holds about `token_id`.
async fn reveals_of(store: &dyn Store, token_id: &str) -> usize {
    audit_where(
        store,
        AuditFilter {
            token_id: Some(token_id.to_owned()),
            action: Some("token.revealed".to_owned()),
            ..AuditFilter::default()
        },
    )
    .await
    .len()
}

/// A token created with a sealed secret reads back `recoverable` everywhere (get, list,
/// by hash) and reveals exactly those bytes, writing its event and no change; one without
/// reveals nothing and writes nothing; an unknown id is `NotFound`. A rotation replaces the
/// sealed copy (or erases it), a plain revoke hides it until a restore, and a leak report,
/// expiry and delete erase it.
pub async fn recoverable_sealed_secret_lifecycle(store: Arc<dyn Store>) {
    let store = &*store;
    let world = bootstrapped(store).await;
    let (token, secret) = sealed_token(store, &world, TokenType::Client, b"sealed one").await;
    assert!(token.recoverable);
    assert!(store.get_token(&token.id).await.unwrap().recoverable);
    let listed = tokens_where(store, &world, TokenFilter::default()).await;
    assert!(listed.iter().any(|t| t.id == token.id && t.recoverable));
    assert!(
        listed
            .iter()
            .filter(|t| t.id != token.id)
            .all(|t| !t.recoverable),
        "tokens created without a sealed secret are not recoverable"
    );
    let (found, found_secret) = store.find_secret(&secret.hash).await.unwrap().unwrap();
    assert!(found.recoverable);
    assert_eq!(
        found_secret.sealed, None,
        "read back without the sealed copy"
    );

    let v = store.current_version().await.unwrap();
    let revealed = store
        .reveal_token(at(1), &token.id, token_event("token.revealed", &token.id))
        .await
        .unwrap();
    assert_eq!(revealed.as_deref(), Some(&b"sealed one"[..]));
    assert_eq!(reveals_of(store, &token.id).await, 1);
    expect_no_change(store, v).await;

    // Not recoverable: nothing to reveal, nothing written.
    let plain = add_token(
        store,
        &world,
        TokenType::Client,
        Some(&world.workspace),
        None,
    )
    .await;
    assert!(!plain.recoverable);
    assert_eq!(
        store
            .reveal_token(at(1), &plain.id, token_event("token.revealed", &plain.id))
            .await
            .unwrap(),
        None
    );
    assert_eq!(reveals_of(store, &plain.id).await, 0);
    assert_eq!(
        store
            .reveal_token(at(1), &latchkey_core::new_id(), event("token.revealed"))
            .await,
        Err(StoreError::NotFound("token"))
    );

    // A rotation keeps the new secret's sealed copy, or none.
    let mut next = secret_for(&token.id);
    next.sealed = Some(b"sealed two".to_vec());
    let rotated = store
        .rotate_token(
            at(2),
            &token.id,
            next,
            None,
            None,
            None,
            event("token.rotated"),
        )
        .await
        .unwrap();
    assert!(rotated.recoverable);
    assert_eq!(
        store
            .reveal_token(at(2), &token.id, token_event("token.revealed", &token.id))
            .await
            .unwrap()
            .as_deref(),
        Some(&b"sealed two"[..])
    );
    let rotated = store
        .rotate_token(
            at(3),
            &token.id,
            secret_for(&token.id),
            None,
            None,
            None,
            event("token.rotated"),
        )
        .await
        .unwrap();
    assert!(
        !rotated.recoverable,
        "a rotation without a sealed copy erases the old one"
    );
    assert_eq!(
        store
            .reveal_token(at(3), &token.id, token_event("token.revealed", &token.id))
            .await
            .unwrap(),
        None
    );
    assert_eq!(reveals_of(store, &token.id).await, 2);

    // A plain revoke keeps the sealed copy but reveals nothing until a restore.
    let (kept, _) = sealed_token(store, &world, TokenType::Personal, b"kept").await;
    let revoked = store
        .revoke_token(at(4), &kept.id, false, event("token.revoked"))
        .await
        .unwrap();
    assert!(revoked.recoverable);
    assert_eq!(
        store
            .reveal_token(at(4), &kept.id, token_event("token.revealed", &kept.id))
            .await
            .unwrap(),
        None
    );
    assert_eq!(reveals_of(store, &kept.id).await, 0);
    store
        .restore_token(at(5), &kept.id, &unlimited(), event("token.restored"))
        .await
        .unwrap();
    assert_eq!(
        store
            .reveal_token(at(5), &kept.id, token_event("token.revealed", &kept.id))
            .await
            .unwrap()
            .as_deref(),
        Some(&b"kept"[..])
    );
    // Past its expiry (before the sweep marks it): nothing to reveal.
    let expiry = kept.expires_at.unwrap();
    assert_eq!(
        store
            .reveal_token(expiry, &kept.id, token_event("token.revealed", &kept.id))
            .await
            .unwrap(),
        None
    );
    // The sweep erases what expired.
    let expired = store.expire_tokens(expiry).await.unwrap();
    assert!(expired.contains(&kept.id));
    assert!(!store.get_token(&kept.id).await.unwrap().recoverable);

    // A leak report erases at once, and a rotation brings it back only with a new copy.
    let (leaked, _) = sealed_token(store, &world, TokenType::Frontend, b"leaked").await;
    let reported = store
        .revoke_token(at(6), &leaked.id, true, event("token.revoked"))
        .await
        .unwrap();
    assert!(!reported.recoverable);

    // Delete takes the sealed copy with the row.
    let (gone, _) = sealed_token(store, &world, TokenType::Admin, b"gone").await;
    store
        .delete_token(at(7), &gone.id, event("token.deleted"))
        .await
        .unwrap();
    assert_eq!(
        store
            .reveal_token(at(7), &gone.id, event("token.revealed"))
            .await,
        Err(StoreError::NotFound("token"))
    );
}

/// Taking a type off `recoverable_types` erases the sealed secrets of that type in the
/// settings change's transaction (one token change each, besides the org's), and only of
/// that type; the tokens stay otherwise as they were.
pub async fn recoverable_erased_when_type_taken_off(store: Arc<dyn Store>) {
    let store = &*store;
    let world = bootstrapped(store).await;
    let bob = add_user(store, &world, "bob", OrgRole::Member).await;
    let (client, _) = sealed_token(store, &world, TokenType::Client, b"client").await;
    let (legacy, mut legacy_secret) =
        token_record(&world.org.id, TokenType::Legacy, None, Some(&bob));
    legacy_secret.sealed = Some(b"legacy".to_vec());
    let legacy = store
        .create_token(
            t0(),
            legacy,
            legacy_secret,
            &unlimited(),
            event("token.created"),
        )
        .await
        .unwrap();
    assert!(legacy.recoverable);
    let on = TokenSettings {
        recoverable_types: TokenType::Client.bit() | TokenType::Legacy.bit(),
        ..world.org.token_settings.clone()
    };
    store
        .update_token_settings(at(1), &world.org.id, on.clone(), event("org.settings"))
        .await
        .unwrap();
    assert!(store.get_token(&legacy.id).await.unwrap().recoverable);

    // Legacy off: only the legacy token loses its copy.
    let v = store.current_version().await.unwrap();
    let client_only = TokenSettings {
        recoverable_types: TokenType::Client.bit(),
        ..on
    };
    let org = store
        .update_token_settings(at(2), &world.org.id, client_only, event("org.settings"))
        .await
        .unwrap();
    assert_eq!(
        org.token_settings.recoverable_types,
        TokenType::Client.bit()
    );
    let after = store.get_token(&legacy.id).await.unwrap();
    assert!(!after.recoverable);
    assert_eq!(
        after,
        latchkey_core::TokenRecord {
            recoverable: false,
            ..legacy.clone()
        },
        "nothing else of the token changes"
    );
    assert_eq!(
        store
            .reveal_token(at(2), &legacy.id, event("token.revealed"))
            .await
            .unwrap(),
        None
    );
    assert!(store.get_token(&client.id).await.unwrap().recoverable);
    let changes = store.changes_since(v, 100).await.unwrap();
    let kinds: Vec<(ChangeKind, &str)> = changes.iter().map(|c| (c.kind, c.id.as_str())).collect();
    assert_eq!(
        kinds,
        vec![
            (ChangeKind::Token, legacy.id.as_str()),
            (ChangeKind::Org, world.org.id.as_str()),
        ]
    );

    // Everything off.
    store
        .update_token_settings(
            at(3),
            &world.org.id,
            world.org.token_settings.clone(),
            event("org.settings"),
        )
        .await
        .unwrap();
    assert!(
        tokens_where(store, &world, TokenFilter::default())
            .await
            .iter()
            .all(|t| !t.recoverable)
    );
}
