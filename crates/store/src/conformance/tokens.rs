//! Conformance cases for tokens: create, read, list, pages, secrets by hash, revoke and
//! restore, rotation, idempotency, delete, last use; and the JWT signing keys.

use std::collections::BTreeSet;
use std::sync::Arc;

use latchkey_core::policy::{Limits, Visibility};
use latchkey_core::{InstanceSettings, StoredState, TokenRecord, new_id};
use latchkey_proto::{OrgRole, Scope, TokenType, WorkspaceRole};
use time::Duration;

use super::fixtures::*;
use crate::{
    AuditFilter, ChangeKind, IdempotencyRecord, LastUsed, PageRequest, Store, StoreError,
    TokenFilter,
};

/// Tokens: create, get with joined names, list with every filter and the visibility rule.
pub async fn tokens_create_get_list(store: Arc<dyn Store>) {
    let store = &*store;
    let world = bootstrapped(store).await;
    let ws = &world.workspace;
    let ws2 = add_workspace(store, &world, "Second").await;
    let admin = &world.admin;
    let bob = add_user(store, &world, "bob", OrgRole::Member).await;

    let (mut full, full_secret) =
        token_record(&world.org.id, TokenType::Client, Some(ws), Some(admin));
    full.owner_id = None;
    full.owner_username = None;
    full.projects = vec![new_id(), new_id()];
    full.environment = Some("production".to_owned());
    full.scopes = Scope::ALL.to_vec();
    full.expires_at = Some(at(86_400));
    full.name = "ci <deploy> & 'quotes' \"double\" ünïcødé".to_owned();
    let stored = store
        .create_token(
            t0(),
            full.clone(),
            full_secret,
            &unlimited(),
            event("token.created"),
        )
        .await
        .unwrap();
    assert_eq!(stored, full);
    assert_eq!(store.get_token(&full.id).await.unwrap(), full);

    let admin_personal = add_token(store, &world, TokenType::Personal, Some(ws), Some(admin)).await;
    let bob_personal = add_token(store, &world, TokenType::Personal, Some(ws), Some(&bob)).await;
    let bob_legacy = add_token(store, &world, TokenType::Legacy, None, Some(&bob)).await;
    let frontend = add_token(store, &world, TokenType::Frontend, Some(ws), None).await;
    let admin_type = add_token(store, &world, TokenType::Admin, Some(ws), None).await;
    let bob_personal2 = add_token(store, &world, TokenType::Personal, Some(&ws2), Some(&bob)).await;
    let client2 = add_token(store, &world, TokenType::Client, Some(&ws2), None).await;

    assert_eq!(
        bob_personal.workspace_name.as_deref(),
        Some(ws.name.as_str())
    );
    assert_eq!(bob_personal.owner_username.as_deref(), Some("bob"));
    assert_eq!(bob_legacy.workspace_id, None);
    assert_eq!(bob_legacy.workspace_name, None);
    assert_eq!(bob_legacy.owner_username.as_deref(), Some("bob"));
    assert_eq!(frontend.owner_id, None);
    assert_eq!(frontend.owner_username, None);

    let ids = |tokens: Vec<TokenRecord>| -> BTreeSet<String> {
        tokens.into_iter().map(|t| t.id).collect()
    };
    let set = |tokens: &[&TokenRecord]| -> BTreeSet<String> {
        tokens.iter().map(|t| t.id.clone()).collect()
    };

    let everything = tokens_where(store, &world, TokenFilter::default()).await;
    assert_eq!(everything.len(), 9);
    assert!(everything.contains(&full));
    assert!(everything.contains(&bob_legacy));

    assert_eq!(
        ids(tokens_where(
            store,
            &world,
            TokenFilter {
                workspace_id: Some(ws.id.clone()),
                ..TokenFilter::default()
            }
        )
        .await),
        set(&[
            &world.token,
            &full,
            &admin_personal,
            &bob_personal,
            &frontend,
            &admin_type
        ])
    );
    assert_eq!(
        ids(tokens_where(
            store,
            &world,
            TokenFilter {
                owner_id: Some(bob.id.clone()),
                ..TokenFilter::default()
            }
        )
        .await),
        set(&[&bob_personal, &bob_legacy, &bob_personal2])
    );
    assert_eq!(
        ids(tokens_where(
            store,
            &world,
            TokenFilter {
                token_type: Some(TokenType::Client),
                ..TokenFilter::default()
            }
        )
        .await),
        set(&[&full, &client2])
    );
    assert_eq!(
        ids(tokens_where(
            store,
            &world,
            TokenFilter {
                token_type: Some(TokenType::Personal),
                workspace_id: Some(ws2.id.clone()),
                ..TokenFilter::default()
            }
        )
        .await),
        set(&[&bob_personal2])
    );

    // Visibility: the filter lists exactly what `Visibility::allows` lets a read by id see,
    // for every kind of caller, alone and within one workspace.
    let in_ws = |v: Visibility| v.within(Some(ws.id.as_str()));
    let callers = [
        (
            "org admin",
            Visibility::for_user(&admin.id, OrgRole::Admin, []),
        ),
        (
            "member of ws, viewer of ws2",
            Visibility::for_user(
                &bob.id,
                OrgRole::Member,
                [
                    (ws.id.as_str(), WorkspaceRole::Member),
                    (ws2.id.as_str(), WorkspaceRole::Viewer),
                ],
            ),
        ),
        (
            "admin of both",
            Visibility::for_user(
                &bob.id,
                OrgRole::Member,
                [
                    (ws.id.as_str(), WorkspaceRole::Admin),
                    (ws2.id.as_str(), WorkspaceRole::Admin),
                ],
            ),
        ),
        (
            "a token of a member of ws, viewer of ws2",
            Visibility::for_user(
                &bob.id,
                OrgRole::Member,
                [
                    (ws.id.as_str(), WorkspaceRole::Member),
                    (ws2.id.as_str(), WorkspaceRole::Viewer),
                ],
            )
            .through_token(),
        ),
        (
            "a token of a user without memberships",
            Visibility::for_user(&bob.id, OrgRole::Member, []).through_token(),
        ),
        (
            "no memberships",
            Visibility::for_user(&bob.id, OrgRole::Member, []),
        ),
        (
            "a stranger",
            Visibility::for_user(&new_id(), OrgRole::Member, []),
        ),
        (
            "client token",
            Visibility::for_workspace_token(&ws.id, TokenType::Client),
        ),
        (
            "admin token",
            Visibility::for_workspace_token(&ws.id, TokenType::Admin),
        ),
        ("nothing", Visibility::nothing()),
        ("everything", Visibility::everything()),
    ];
    for (who, visibility) in callers {
        for (confined, visibility) in [(false, visibility.clone()), (true, in_ws(visibility))] {
            for workspace_id in [None, Some(ws.id.clone()), Some(ws2.id.clone())] {
                let filter = TokenFilter {
                    workspace_id: workspace_id.clone(),
                    visibility: Some(visibility.clone()),
                    ..TokenFilter::default()
                };
                let expected: BTreeSet<String> = everything
                    .iter()
                    .filter(|t| workspace_id.is_none() || t.workspace_id == workspace_id)
                    .filter(|t| {
                        visibility.allows(
                            t.token_type,
                            t.workspace_id.as_deref(),
                            t.owner_id.as_deref(),
                        )
                    })
                    .map(|t| t.id.clone())
                    .collect();
                assert_eq!(
                    ids(tokens_where(store, &world, filter).await),
                    expected,
                    "{who} (confined: {confined}) in {workspace_id:?}"
                );
            }
        }
    }
    // The rule itself, spelled out once for a member of `ws` (viewer of `ws2`).
    let bob_sees = Visibility::for_user(
        &bob.id,
        OrgRole::Member,
        [
            (ws.id.as_str(), WorkspaceRole::Member),
            (ws2.id.as_str(), WorkspaceRole::Viewer),
        ],
    );
    assert_eq!(
        ids(tokens_where(
            store,
            &world,
            TokenFilter {
                visibility: Some(bob_sees.clone()),
                ..TokenFilter::default()
            }
        )
        .await),
        set(&[&bob_personal, &bob_legacy, &bob_personal2, &full, &frontend])
    );
    assert_eq!(
        ids(tokens_where(
            store,
            &world,
            TokenFilter {
                visibility: Some(bob_sees.within(Some(&ws2.id))),
                ..TokenFilter::default()
            }
        )
        .await),
        set(&[&bob_personal2])
    );
    assert!(
        store
            .list_tokens(&new_id(), &TokenFilter::default(), &PageRequest::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
}

/// Token lists page newest first, with `next_cursor` only when more follow.
pub async fn token_pagination(store: Arc<dyn Store>) {
    let store = &*store;
    let world = bootstrapped(store).await;
    let ws = add_workspace(store, &world, "Paged").await;
    let mut expected = Vec::new();
    for _ in 0..7 {
        expected.push(
            add_token(store, &world, TokenType::Client, Some(&ws), None)
                .await
                .id,
        );
    }
    expected.sort();
    expected.reverse();
    let filter = TokenFilter {
        workspace_id: Some(ws.id.clone()),
        ..TokenFilter::default()
    };
    let mut seen = Vec::new();
    let mut sizes = Vec::new();
    let mut cursor = None;
    loop {
        let page = store
            .list_tokens(&world.org.id, &filter, &PageRequest { limit: 3, cursor })
            .await
            .unwrap();
        sizes.push(page.items.len());
        seen.extend(page.items.iter().map(|t| t.id.clone()));
        match page.next_cursor {
            Some(next) => {
                assert_eq!(Some(&next), seen.last());
                cursor = Some(next);
            }
            None => break,
        }
    }
    assert_eq!(sizes, vec![3, 3, 1]);
    assert_eq!(seen, expected);

    let exact = store
        .list_tokens(&world.org.id, &filter, &PageRequest::first(7))
        .await
        .unwrap();
    assert_eq!(exact.items.len(), 7);
    assert_eq!(exact.next_cursor, None);
    let short = store
        .list_tokens(&world.org.id, &filter, &PageRequest::first(6))
        .await
        .unwrap();
    assert_eq!(short.next_cursor.as_deref(), Some(expected[5].as_str()));
}

/// The verifier's cache miss: a secret's hash leads to its token.
pub async fn find_secret_by_hash(store: Arc<dyn Store>) {
    let store = &*store;
    let world = bootstrapped(store).await;
    let (token, secret) = token_record(
        &world.org.id,
        TokenType::Personal,
        Some(&world.workspace),
        Some(&world.admin),
    );
    store
        .create_token(
            t0(),
            token.clone(),
            secret.clone(),
            &unlimited(),
            event("token.created"),
        )
        .await
        .unwrap();
    let (found_token, found_secret) = store.find_secret(&secret.hash).await.unwrap().unwrap();
    assert_eq!(found_token, token);
    assert_eq!(found_secret, secret);
    assert_eq!(found_secret.token_id, token.id);
    assert!(
        store
            .find_secret(&hash_of("unknown"))
            .await
            .unwrap()
            .is_none()
    );
}

/// Every secret hash pages out in ascending byte order (the verifier's known set), and a
/// token's hashes come back by its id.
pub async fn secret_hashes_paged_and_by_token(store: Arc<dyn Store>) {
    let store = &*store;
    let world = bootstrapped(store).await;
    // What bootstrapping made (its admin token) is listed with the rest.
    let before = store.secret_hashes(None, 100).await.unwrap();
    let mut made = Vec::new();
    for _ in 0..5 {
        let (token, secret) = token_record(
            &world.org.id,
            TokenType::Client,
            Some(&world.workspace),
            None,
        );
        store
            .create_token(
                t0(),
                token.clone(),
                secret.clone(),
                &unlimited(),
                event("token.created"),
            )
            .await
            .unwrap();
        made.push((token.id, secret.hash));
    }
    let mut paged = Vec::new();
    let mut after = None;
    loop {
        let page = store.secret_hashes(after.as_ref(), 2).await.unwrap();
        assert!(page.len() <= 2);
        let Some(last) = page.last().copied() else {
            break;
        };
        paged.extend(page);
        after = Some(last);
    }
    let mut expected: Vec<_> = made.iter().map(|(_, hash)| *hash).chain(before).collect();
    expected.sort();
    assert_eq!(paged, expected, "every hash once, in ascending byte order");

    let wanted = vec![made[1].0.clone(), made[3].0.clone(), new_id()];
    let mut of = store.secret_hashes_of(&wanted).await.unwrap();
    of.sort();
    let mut expected = vec![made[1].1, made[3].1];
    expected.sort();
    assert_eq!(of, expected);
    assert!(store.secret_hashes_of(&[]).await.unwrap().is_empty());
}

/// Revoke is idempotent; restore re-approves revoked tokens only, never leaked or expired
/// ones, and re-checks the limits.
pub async fn revoke_and_restore(store: Arc<dyn Store>) {
    let store = &*store;
    let world = bootstrapped(store).await;
    let ws = &world.workspace;
    let token = add_token(store, &world, TokenType::Client, Some(ws), None).await;

    let v = store.current_version().await.unwrap();
    let revoked = store
        .revoke_token(
            at(1),
            &token.id,
            false,
            token_event("token.revoked", &token.id),
        )
        .await
        .unwrap();
    let v = expect_one_change(store, v, ChangeKind::Token, &token.id).await;
    assert_eq!(revoked.state, StoredState::Revoked);
    assert!(!revoked.leaked);
    assert_eq!(revoked.name, token.name);
    let again = store
        .revoke_token(
            at(2),
            &token.id,
            false,
            token_event("token.revoked", &token.id),
        )
        .await
        .unwrap();
    assert_eq!(again, revoked);
    let v = expect_one_change(store, v, ChangeKind::Token, &token.id).await;

    let restored = store
        .restore_token(
            at(3),
            &token.id,
            &unlimited(),
            token_event("token.restored", &token.id),
        )
        .await
        .unwrap();
    expect_one_change(store, v, ChangeKind::Token, &token.id).await;
    assert_eq!(restored.state, StoredState::Active);
    assert_eq!(store.get_token(&token.id).await.unwrap(), restored);
    assert!(is_conflict(
        &store
            .restore_token(
                at(4),
                &token.id,
                &unlimited(),
                token_event("token.restored", &token.id)
            )
            .await
    ));
    let actions: Vec<String> = audit_of_token(store, &token.id)
        .await
        .into_iter()
        .map(|e| e.action)
        .collect();
    assert_eq!(
        actions.iter().filter(|a| *a == "token.revoked").count(),
        2,
        "{actions:?}"
    );
    assert_eq!(
        actions.iter().filter(|a| *a == "token.restored").count(),
        1,
        "{actions:?}"
    );

    // A leak report makes it unrestorable (also when reported on a revoked token).
    let leaked = store
        .revoke_token(at(5), &token.id, true, event("token.leaked"))
        .await
        .unwrap();
    assert_eq!(leaked.state, StoredState::Revoked);
    assert!(leaked.leaked);
    assert!(is_conflict(
        &store
            .restore_token(at(6), &token.id, &unlimited(), event("token.restored"))
            .await
    ));
    let plain = store
        .revoke_token(
            at(7),
            &token.id,
            false,
            token_event("token.revoked", &token.id),
        )
        .await
        .unwrap();
    assert!(plain.leaked, "a later plain revoke keeps the leak mark");
    assert_eq!(
        store.get_token(&token.id).await.unwrap().state,
        StoredState::Revoked
    );

    // Past its expiry it cannot come back.
    let (mut short, secret) = token_record(&world.org.id, TokenType::Client, Some(ws), None);
    short.expires_at = Some(at(100));
    store
        .create_token(
            at(1),
            short.clone(),
            secret,
            &unlimited(),
            event("token.created"),
        )
        .await
        .unwrap();
    store
        .revoke_token(at(50), &short.id, false, event("token.revoked"))
        .await
        .unwrap();
    assert!(is_conflict(
        &store
            .restore_token(at(100), &short.id, &unlimited(), event("token.restored"))
            .await
    ));
    assert_eq!(
        store.get_token(&short.id).await.unwrap().state,
        StoredState::Revoked
    );

    // `expired` is final also before the sweep marks it: a leak report on a token past its
    // expiry records the leak but leaves its state (it does not become `revoked`).
    let (mut past, secret) = token_record(&world.org.id, TokenType::Client, Some(ws), None);
    past.expires_at = Some(at(100));
    store
        .create_token(
            at(1),
            past.clone(),
            secret,
            &unlimited(),
            event("token.created"),
        )
        .await
        .unwrap();
    let reported = store
        .revoke_token(at(100), &past.id, true, event("token.leaked"))
        .await
        .unwrap();
    assert_eq!(reported.state, StoredState::Active, "stays as stored");
    assert!(reported.leaked);
    assert!(is_conflict(
        &store
            .restore_token(at(101), &past.id, &unlimited(), event("token.restored"))
            .await
    ));

    // Restoring counts like creating.
    let spare = add_token(store, &world, TokenType::Client, Some(ws), None).await;
    store
        .revoke_token(at(8), &spare.id, false, event("token.revoked"))
        .await
        .unwrap();
    let active = u32::try_from(store.count_active_tokens().await.unwrap()).unwrap();
    let full = Limits {
        max_active_tokens: Some(active),
        max_tokens_per_user: None,
    };
    assert_eq!(
        store
            .restore_token(at(9), &spare.id, &full, event("token.restored"))
            .await,
        Err(StoreError::LimitExceeded {
            limit: "max_active_tokens",
            value: active
        })
    );
    assert_eq!(
        store.get_token(&spare.id).await.unwrap().state,
        StoredState::Revoked
    );
    let roomy = Limits {
        max_active_tokens: Some(active + 1),
        max_tokens_per_user: None,
    };
    store
        .restore_token(at(9), &spare.id, &roomy, event("token.restored"))
        .await
        .unwrap();
}

/// Rotation with a grace period keeps the old secret until `not_after`; expiry is kept,
/// replaced or cleared as asked.
pub async fn rotate_with_grace(store: Arc<dyn Store>) {
    let store = &*store;
    let world = bootstrapped(store).await;
    let (token, old) = token_record(
        &world.org.id,
        TokenType::Client,
        Some(&world.workspace),
        None,
    );
    let mut token = token;
    token.expires_at = Some(at(86_400));
    store
        .create_token(
            t0(),
            token.clone(),
            old.clone(),
            &unlimited(),
            event("token.created"),
        )
        .await
        .unwrap();

    let new = secret_for(&token.id);
    let v = store.current_version().await.unwrap();
    let rotated = store
        .rotate_token(
            at(10),
            &token.id,
            new.clone(),
            Some(at(310)),
            None,
            None,
            event("token.rotated"),
        )
        .await
        .unwrap();
    expect_one_change(store, v, ChangeKind::Token, &token.id).await;
    assert_eq!(rotated, token, "metadata is unchanged by a plain rotation");
    let (_, old_found) = store.find_secret(&old.hash).await.unwrap().unwrap();
    assert_eq!(old_found.not_after, Some(at(310)));
    let (found_token, new_found) = store.find_secret(&new.hash).await.unwrap().unwrap();
    assert_eq!(new_found, new);
    assert_eq!(found_token.id, token.id);

    assert_eq!(store.purge_rotated_secrets(at(309)).await.unwrap(), 0);
    assert_eq!(store.purge_rotated_secrets(at(310)).await.unwrap(), 1);
    assert!(store.find_secret(&old.hash).await.unwrap().is_none());
    assert!(store.find_secret(&new.hash).await.unwrap().is_some());

    let newer = secret_for(&token.id);
    let extended = store
        .rotate_token(
            at(20),
            &token.id,
            newer.clone(),
            Some(at(60)),
            Some(Some(at(2 * 86_400))),
            None,
            event("token.rotated"),
        )
        .await
        .unwrap();
    assert_eq!(extended.expires_at, Some(at(2 * 86_400)));
    let cleared = store
        .rotate_token(
            at(30),
            &token.id,
            secret_for(&token.id),
            Some(at(80)),
            Some(None),
            None,
            event("token.rotated"),
        )
        .await
        .unwrap();
    assert_eq!(cleared.expires_at, None);
    // A later rotation never extends an earlier secret's grace.
    let (_, new_found) = store.find_secret(&new.hash).await.unwrap().unwrap();
    assert_eq!(new_found.not_after, Some(at(60)));
    // The new secret's hint replaces the token's.
    let mut hinted = secret_for(&token.id);
    hinted.hint = Some("lkc_…HINT".into());
    let with_hint = store
        .rotate_token(
            at(40),
            &token.id,
            hinted,
            Some(at(90)),
            None,
            None,
            event("token.rotated"),
        )
        .await
        .unwrap();
    assert_eq!(
        with_hint.hint, "lkc_…HINT",
        "a rotation stores the new hint"
    );
    assert_eq!(store.get_token(&token.id).await.unwrap().hint, "lkc_…HINT");
    let (_, newer_found) = store.find_secret(&newer.hash).await.unwrap().unwrap();
    assert_eq!(newer_found.not_after, Some(at(80)));
    assert_eq!(
        audit_where(
            store,
            AuditFilter {
                action: Some("token.rotated".to_owned()),
                ..AuditFilter::default()
            }
        )
        .await
        .len(),
        4
    );
}

/// Rotation without grace kills the old secret at once; a leak-revoked token comes back
/// (within the stored limits); a plainly revoked one stays revoked; expired ones refuse.
pub async fn rotate_without_grace(store: Arc<dyn Store>) {
    let store = &*store;
    let world = bootstrapped(store).await;
    let ws = &world.workspace;
    let (token, old) = token_record(&world.org.id, TokenType::Client, Some(ws), None);
    store
        .create_token(
            t0(),
            token.clone(),
            old.clone(),
            &unlimited(),
            event("token.created"),
        )
        .await
        .unwrap();
    let new = secret_for(&token.id);
    store
        .rotate_token(
            at(1),
            &token.id,
            new.clone(),
            None,
            None,
            None,
            event("token.rotated"),
        )
        .await
        .unwrap();
    assert!(store.find_secret(&old.hash).await.unwrap().is_none());
    assert!(store.find_secret(&new.hash).await.unwrap().is_some());

    // Leaked → rotate → active and no longer leaked.
    store
        .revoke_token(at(2), &token.id, true, event("token.leaked"))
        .await
        .unwrap();
    let back = store
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
    assert_eq!(back.state, StoredState::Active);
    assert!(!back.leaked);

    // Plainly revoked stays revoked.
    store
        .revoke_token(at(4), &token.id, false, event("token.revoked"))
        .await
        .unwrap();
    let still = store
        .rotate_token(
            at(5),
            &token.id,
            secret_for(&token.id),
            None,
            None,
            None,
            event("token.rotated"),
        )
        .await
        .unwrap();
    assert_eq!(still.state, StoredState::Revoked);

    // A leaked token's comeback needs a slot under the stored instance limit.
    let leaky = add_token(store, &world, TokenType::Client, Some(ws), None).await;
    store
        .revoke_token(at(6), &leaky.id, true, event("token.leaked"))
        .await
        .unwrap();
    let active = u32::try_from(store.count_active_tokens().await.unwrap()).unwrap();
    store
        .update_instance_settings(
            at(6),
            InstanceSettings {
                max_active_tokens: Some(active),
                default_token_lifetime_days: 270,
            },
            event("instance.settings"),
        )
        .await
        .unwrap();
    let refused_secret = secret_for(&leaky.id);
    assert!(matches!(
        store
            .rotate_token(
                at(7),
                &leaky.id,
                refused_secret.clone(),
                None,
                None,
                None,
                event("token.rotated")
            )
            .await,
        Err(StoreError::LimitExceeded { .. })
    ));
    assert!(
        store
            .find_secret(&refused_secret.hash)
            .await
            .unwrap()
            .is_none()
    );
    let unchanged = store.get_token(&leaky.id).await.unwrap();
    assert!(unchanged.leaked);
    assert_eq!(unchanged.state, StoredState::Revoked);

    // Expired is final.
    let (mut short, secret) = token_record(&world.org.id, TokenType::Client, Some(ws), None);
    short.expires_at = Some(at(100));
    store
        .create_token(
            at(1),
            short.clone(),
            secret,
            &unlimited(),
            event("token.created"),
        )
        .await
        .unwrap();
    assert!(is_conflict(
        &store
            .rotate_token(
                at(100),
                &short.id,
                secret_for(&short.id),
                None,
                Some(Some(at(10_000))),
                None,
                event("token.rotated")
            )
            .await
    ));
    assert_eq!(
        store.expire_tokens(at(100)).await.unwrap(),
        vec![short.id.clone()]
    );
    assert!(is_conflict(
        &store
            .rotate_token(
                at(50),
                &short.id,
                secret_for(&short.id),
                None,
                None,
                None,
                event("token.rotated")
            )
            .await
    ));
}

/// An idempotent rotate stores its answer in the same transaction; reuse of a live key is
/// a conflict that rolls the rotation back.
pub async fn idempotency_records(store: Arc<dyn Store>) {
    let store = &*store;
    let world = bootstrapped(store).await;
    let token = add_token(
        store,
        &world,
        TokenType::Client,
        Some(&world.workspace),
        None,
    )
    .await;
    let record = IdempotencyRecord {
        key: "caller:rotate:abc".to_owned(),
        request_hash: vec![1, 2, 3],
        response: vec![9, 8, 7, 0, 255],
        created_at: at(10),
    };
    assert_eq!(
        store.get_idempotency(&record.key, t0()).await.unwrap(),
        None
    );
    store
        .rotate_token(
            at(10),
            &token.id,
            secret_for(&token.id),
            None,
            None,
            Some(record.clone()),
            event("token.rotated"),
        )
        .await
        .unwrap();
    assert_eq!(
        store
            .get_idempotency(&record.key, at(10) - Duration::hours(24))
            .await
            .unwrap(),
        Some(record.clone())
    );
    assert_eq!(
        store.get_idempotency(&record.key, at(10)).await.unwrap(),
        Some(record.clone())
    );
    assert_eq!(
        store.get_idempotency(&record.key, at(11)).await.unwrap(),
        None
    );
    assert_eq!(store.get_idempotency("other", t0()).await.unwrap(), None);

    let replay_secret = secret_for(&token.id);
    let v = store.current_version().await.unwrap();
    let replay = store
        .rotate_token(
            at(20),
            &token.id,
            replay_secret.clone(),
            None,
            None,
            Some(IdempotencyRecord {
                created_at: at(20),
                ..record.clone()
            }),
            event("token.rotated"),
        )
        .await;
    assert!(is_conflict(&replay), "{replay:?}");
    assert!(
        store
            .find_secret(&replay_secret.hash)
            .await
            .unwrap()
            .is_none()
    );
    expect_no_change(store, v).await;
    assert_eq!(
        store.get_idempotency(&record.key, t0()).await.unwrap(),
        Some(record)
    );
}

/// Deleting a token removes it and every secret of it.
pub async fn delete_token_removes_secrets(store: Arc<dyn Store>) {
    let store = &*store;
    let world = bootstrapped(store).await;
    let (token, old) = token_record(
        &world.org.id,
        TokenType::Client,
        Some(&world.workspace),
        None,
    );
    store
        .create_token(
            t0(),
            token.clone(),
            old.clone(),
            &unlimited(),
            event("token.created"),
        )
        .await
        .unwrap();
    let new = secret_for(&token.id);
    store
        .rotate_token(
            at(1),
            &token.id,
            new.clone(),
            Some(at(1000)),
            None,
            None,
            event("token.rotated"),
        )
        .await
        .unwrap();
    let v = store.current_version().await.unwrap();
    store
        .delete_token(at(2), &token.id, token_event("token.deleted", &token.id))
        .await
        .unwrap();
    expect_one_change(store, v, ChangeKind::Token, &token.id).await;
    assert!(is_not_found(store.get_token(&token.id).await));
    assert!(store.find_secret(&old.hash).await.unwrap().is_none());
    assert!(store.find_secret(&new.hash).await.unwrap().is_none());
    assert!(is_not_found(
        store
            .delete_token(at(3), &token.id, event("token.deleted"))
            .await
    ));
    let events = audit_of_token(store, &token.id).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].action, "token.deleted");
    assert_eq!(events[0].created_at, at(2));
    // Nothing is left to purge for it.
    assert_eq!(store.purge_rotated_secrets(at(5000)).await.unwrap(), 0);
}

/// Last-used observations merge by the latest time; unknown tokens are ignored.
pub async fn last_used_merges_by_latest(store: Arc<dyn Store>) {
    let store = &*store;
    let world = bootstrapped(store).await;
    let a = add_token(
        store,
        &world,
        TokenType::Client,
        Some(&world.workspace),
        None,
    )
    .await;
    let b = add_token(
        store,
        &world,
        TokenType::Client,
        Some(&world.workspace),
        None,
    )
    .await;
    let used = |token: &TokenRecord, secs: i64, ip: &str| LastUsed {
        token_id: token.id.clone(),
        at: at(secs),
        ip: Some(ip.to_owned()),
    };
    let v = store.current_version().await.unwrap();
    store.record_last_used(&[]).await.unwrap();
    store
        .record_last_used(&[
            used(&a, 10, "10.0.0.1"),
            used(&a, 5, "10.0.0.2"),
            LastUsed {
                token_id: new_id(),
                at: at(20),
                ip: None,
            },
        ])
        .await
        .unwrap();
    let got = store.get_token(&a.id).await.unwrap();
    assert_eq!(got.last_used_at, Some(at(10)));
    assert_eq!(got.last_used_ip.as_deref(), Some("10.0.0.1"));
    let untouched = store.get_token(&b.id).await.unwrap();
    assert_eq!(untouched.last_used_at, None);
    assert_eq!(untouched.last_used_ip, None);

    store
        .record_last_used(&[used(&a, 8, "10.0.0.3")])
        .await
        .unwrap();
    let got = store.get_token(&a.id).await.unwrap();
    assert_eq!(got.last_used_at, Some(at(10)));
    assert_eq!(got.last_used_ip.as_deref(), Some("10.0.0.1"));

    store
        .record_last_used(&[used(&a, 30, "10.0.0.4"), used(&b, 1, "10.0.0.5")])
        .await
        .unwrap();
    let got = store.get_token(&a.id).await.unwrap();
    assert_eq!(got.last_used_at, Some(at(30)));
    assert_eq!(got.last_used_ip.as_deref(), Some("10.0.0.4"));
    assert_eq!(
        store.get_token(&b.id).await.unwrap().last_used_at,
        Some(at(1))
    );
    // A use from an unknown address moves the time and keeps the address.
    store
        .record_last_used(&[LastUsed {
            token_id: a.id.clone(),
            at: at(35),
            ip: None,
        }])
        .await
        .unwrap();
    let got = store.get_token(&a.id).await.unwrap();
    assert_eq!(got.last_used_at, Some(at(35)));
    assert_eq!(got.last_used_ip.as_deref(), Some("10.0.0.4"));
    // A flush is bookkeeping, not a change other nodes must react to.
    expect_no_change(store, v).await;
    // A flush for a deleted token does nothing.
    store
        .delete_token(at(40), &b.id, event("token.deleted"))
        .await
        .unwrap();
    store
        .record_last_used(&[used(&b, 50, "10.0.0.6")])
        .await
        .unwrap();
    assert!(is_not_found(store.get_token(&b.id).await));
}

/// Signing keys: added unless a newer one appeared meanwhile; listed until they expire.
pub async fn signing_keys(store: Arc<dyn Store>) {
    let store = &*store;
    let k1 = signing_key_record("kid-1", t0());
    let v = store.current_version().await.unwrap();
    assert!(store.add_signing_key(k1.clone(), at(-1)).await.unwrap());
    let v = expect_one_change(store, v, ChangeKind::SigningKeys, "").await;
    assert_eq!(
        store.list_signing_keys(t0()).await.unwrap(),
        vec![k1.clone()]
    );

    // Another node added k1 (created at t0) after this one last looked (at t0 - 1 s).
    let k2 = signing_key_record("kid-2", at(10));
    assert!(!store.add_signing_key(k2.clone(), at(-1)).await.unwrap());
    expect_no_change(store, v).await;
    assert!(store.add_signing_key(k2.clone(), t0()).await.unwrap());
    assert_eq!(
        store.list_signing_keys(at(20)).await.unwrap(),
        vec![k2.clone(), k1.clone()]
    );
    // Expired keys leave the list (at `expires_at` exactly).
    assert_eq!(
        store.list_signing_keys(k1.expires_at).await.unwrap(),
        vec![k2.clone()]
    );
    assert!(
        store
            .list_signing_keys(k2.expires_at)
            .await
            .unwrap()
            .is_empty()
    );
}
