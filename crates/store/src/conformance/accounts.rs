//! Conformance cases for service accounts and token approval (DESIGN.md §8).

use std::sync::Arc;

use latchkey_proto::{OrgRole, TokenType, UserKind};

use super::fixtures::*;
use crate::{ChangeKind, PageRequest, Store, TokenFilter, UserPatch};

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
