//! Conformance cases for what the store tells others: the audit log and the change feed.

use std::collections::BTreeSet;
use std::sync::Arc;

use latchkey_core::policy::Limits;
use latchkey_core::{InstanceSettings, NewAuditEvent, TokenSettings, new_id};
use latchkey_proto::{OrgRole, TokenType, WorkspaceRole};
use serde_json::json;

use super::fixtures::*;
use crate::{AuditFilter, ChangeKind, PageRequest, Store, UserPatch};

/// Every audit filter, time bounds (since inclusive, until exclusive) and pages.
pub async fn audit_filters(store: Arc<dyn Store>) {
    let store = &*store;
    let admin = new_id();
    let bob = new_id();
    let carol = new_id();
    let ws1 = new_id();
    let ws2 = new_id();
    let token = new_id();
    let full = NewAuditEvent {
        action: "a.one".to_owned(),
        actor_id: Some(carol.clone()),
        actor_token_id: None,
        target_type: Some("user".to_owned()),
        target_id: Some(bob.clone()),
        workspace_id: None,
        subject_user_id: Some(bob.clone()),
        ip: Some("192.0.2.7".to_owned()),
        details: json!({ "k": [1, 2], "nested": { "x": null } }),
    };
    let events = [
        (
            0,
            NewAuditEvent {
                actor_id: Some(admin.clone()),
                workspace_id: Some(ws1.clone()),
                ..event("a.one")
            },
        ),
        (
            10,
            NewAuditEvent {
                actor_id: Some(bob.clone()),
                target_type: Some("token".to_owned()),
                target_id: Some(token.clone()),
                subject_user_id: Some(admin.clone()),
                workspace_id: Some(ws2.clone()),
                ..event("a.two")
            },
        ),
        (
            20,
            NewAuditEvent {
                actor_id: Some(admin.clone()),
                actor_token_id: Some(token.clone()),
                ..event("a.three")
            },
        ),
        (30, full.clone()),
        (
            40,
            NewAuditEvent {
                // Same id as the token, but not a token target: no match on `token_id`.
                target_type: Some("project".to_owned()),
                target_id: Some(token.clone()),
                ..event("a.four")
            },
        ),
    ];
    let v = store.current_version().await.unwrap();
    for (secs, e) in &events {
        store.append_audit(at(*secs), e.clone()).await.unwrap();
    }
    expect_no_change(store, v).await;

    let actions = |list: Vec<latchkey_proto::AuditEvent>| -> BTreeSet<String> {
        list.into_iter().map(|e| e.action).collect()
    };
    let names =
        |names: &[&str]| -> BTreeSet<String> { names.iter().map(|n| (*n).to_owned()).collect() };
    let all = audit_where(store, AuditFilter::default()).await;
    assert_eq!(all.len(), 5);
    let stored_full = all.iter().find(|e| e.created_at == at(30)).unwrap();
    assert_eq!(stored_full.action, full.action);
    assert_eq!(stored_full.actor_id, full.actor_id);
    assert_eq!(stored_full.actor_token_id, None);
    assert_eq!(stored_full.target_type, full.target_type);
    assert_eq!(stored_full.target_id, full.target_id);
    assert_eq!(stored_full.workspace_id, None);
    assert_eq!(stored_full.subject_user_id, full.subject_user_id);
    assert_eq!(stored_full.ip, full.ip);
    assert_eq!(stored_full.details, full.details);

    let f = |filter: AuditFilter| async move { actions(audit_where(store, filter).await) };
    assert_eq!(
        f(AuditFilter {
            workspace_id: Some(ws1.clone()),
            ..AuditFilter::default()
        })
        .await,
        names(&["a.one"])
    );
    assert_eq!(
        f(AuditFilter {
            actor_id: Some(admin.clone()),
            ..AuditFilter::default()
        })
        .await,
        names(&["a.one", "a.three"])
    );
    assert_eq!(
        f(AuditFilter {
            token_id: Some(token.clone()),
            ..AuditFilter::default()
        })
        .await,
        names(&["a.two", "a.three"])
    );
    assert_eq!(
        audit_where(
            store,
            AuditFilter {
                action: Some("a.one".to_owned()),
                ..AuditFilter::default()
            }
        )
        .await
        .len(),
        2
    );
    assert_eq!(
        f(AuditFilter {
            since: Some(at(10)),
            ..AuditFilter::default()
        })
        .await,
        names(&["a.two", "a.three", "a.one", "a.four"])
    );
    assert_eq!(
        f(AuditFilter {
            until: Some(at(20)),
            ..AuditFilter::default()
        })
        .await,
        names(&["a.one", "a.two"])
    );
    assert_eq!(
        f(AuditFilter {
            since: Some(at(10)),
            until: Some(at(30)),
            ..AuditFilter::default()
        })
        .await,
        names(&["a.two", "a.three"])
    );
    let involving_bob = audit_where(
        store,
        AuditFilter {
            involving_user: Some(bob.clone()),
            ..AuditFilter::default()
        },
    )
    .await;
    assert_eq!(
        involving_bob
            .iter()
            .map(|e| e.created_at)
            .collect::<BTreeSet<_>>(),
        BTreeSet::from([at(10), at(30)])
    );
    assert_eq!(
        audit_where(
            store,
            AuditFilter {
                involving_user: Some(admin.clone()),
                ..AuditFilter::default()
            }
        )
        .await
        .len(),
        3
    );
    assert_eq!(
        audit_where(
            store,
            AuditFilter {
                actor_id: Some(admin.clone()),
                action: Some("a.one".to_owned()),
                ..AuditFilter::default()
            }
        )
        .await
        .len(),
        1
    );
    assert!(
        audit_where(
            store,
            AuditFilter {
                actor_id: Some(carol.clone()),
                workspace_id: Some(ws1.clone()),
                ..AuditFilter::default()
            }
        )
        .await
        .is_empty()
    );

    // Pages of two: 2 + 2 + 1, newest first, covering everything once.
    let mut seen = Vec::new();
    let mut cursor = None;
    let mut sizes = Vec::new();
    loop {
        let page = store
            .list_audit(&AuditFilter::default(), &PageRequest { limit: 2, cursor })
            .await
            .unwrap();
        sizes.push(page.items.len());
        seen.extend(page.items.iter().map(|e| e.id.clone()));
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(sizes, vec![2, 2, 1]);
    assert_eq!(seen, all.iter().map(|e| e.id.clone()).collect::<Vec<_>>());
}

/// The change feed: one change per write, versions increasing in commit order, refused
/// writes leave no trace, and paging with `limit` loses nothing.
pub async fn change_feed(store: Arc<dyn Store>) {
    let store = &*store;
    assert_eq!(store.current_version().await.unwrap(), 0);
    let world = bootstrapped(store).await;
    let boot = store.changes_since(0, 1000).await.unwrap();
    assert!(
        boot.iter()
            .any(|c| c.kind == ChangeKind::Token && c.id == world.token.id)
    );
    let mut v = store.current_version().await.unwrap();
    assert!(v > 0);

    let bob = add_user(store, &world, "bob", OrgRole::Member).await;
    v = expect_one_change(store, v, ChangeKind::User, &bob.id).await;
    store
        .update_user(
            at(1),
            &bob.id,
            UserPatch {
                role: Some(OrgRole::Admin),
                ..UserPatch::default()
            },
            event("user.updated"),
        )
        .await
        .unwrap();
    v = expect_one_change(store, v, ChangeKind::User, &bob.id).await;
    store
        .put_member(
            at(2),
            &world.workspace.id,
            &bob.id,
            WorkspaceRole::Member,
            event("member.put"),
        )
        .await
        .unwrap();
    v = expect_one_change(store, v, ChangeKind::User, &bob.id).await;
    store
        .update_token_settings(
            at(3),
            &world.org.id,
            TokenSettings::default(),
            event("org.settings"),
        )
        .await
        .unwrap();
    v = expect_one_change(store, v, ChangeKind::Org, &world.org.id).await;
    store
        .update_instance_settings(
            at(4),
            InstanceSettings::default(),
            event("instance.settings"),
        )
        .await
        .unwrap();
    v = expect_one_change(store, v, ChangeKind::Instance, "").await;
    let token = add_token(
        store,
        &world,
        TokenType::Client,
        Some(&world.workspace),
        None,
    )
    .await;
    v = expect_one_change(store, v, ChangeKind::Token, &token.id).await;
    store
        .revoke_token(at(5), &token.id, false, event("token.revoked"))
        .await
        .unwrap();
    v = expect_one_change(store, v, ChangeKind::Token, &token.id).await;
    store
        .restore_token(at(6), &token.id, &unlimited(), event("token.restored"))
        .await
        .unwrap();
    v = expect_one_change(store, v, ChangeKind::Token, &token.id).await;
    store
        .rotate_token(
            at(7),
            &token.id,
            secret_for(&token.id),
            None,
            None,
            None,
            event("token.rotated"),
        )
        .await
        .unwrap();
    v = expect_one_change(store, v, ChangeKind::Token, &token.id).await;

    // Refused writes leave no trace.
    let (over, over_secret) = token_record(
        &world.org.id,
        TokenType::Client,
        Some(&world.workspace),
        None,
    );
    assert!(
        store
            .create_token(
                at(8),
                over,
                over_secret,
                &Limits {
                    max_active_tokens: Some(1),
                    max_tokens_per_user: None
                },
                event("token.created")
            )
            .await
            .is_err()
    );
    assert!(
        store
            .create_user(
                at(8),
                user_record(&world.org.id, "BOB", OrgRole::Member),
                event("user.created")
            )
            .await
            .is_err()
    );
    expect_no_change(store, v).await;

    store
        .remove_member(at(9), &world.workspace.id, &bob.id, event("member.removed"))
        .await
        .unwrap();
    v = expect_one_change(store, v, ChangeKind::User, &bob.id).await;
    store
        .delete_token(at(10), &token.id, event("token.deleted"))
        .await
        .unwrap();
    v = expect_one_change(store, v, ChangeKind::Token, &token.id).await;
    let key = signing_key_record("kid-1", t0());
    assert!(store.add_signing_key(key, at(-1)).await.unwrap());
    v = expect_one_change(store, v, ChangeKind::SigningKeys, "").await;

    // Reading in small pages loses nothing and keeps the order.
    let all = store.changes_since(0, 1000).await.unwrap();
    assert_eq!(all.last().unwrap().version, v);
    for pair in all.windows(2) {
        assert!(pair[0].version < pair[1].version, "{all:?}");
    }
    let mut paged = Vec::new();
    let mut after = 0;
    loop {
        let chunk = store.changes_since(after, 3).await.unwrap();
        if chunk.is_empty() {
            break;
        }
        assert!(chunk.len() <= 3);
        after = chunk.last().unwrap().version;
        paged.extend(chunk);
    }
    assert_eq!(paged, all);
    assert!(store.changes_since(v, 10).await.unwrap().is_empty());
}

/// A backend that offers change notices ([`Store::change_notices`]) announces every
/// committed write: the receiver reaches the version of a write soon after it returns. One
/// that offers none (the server then polls) still shows the write in the feed at once.
pub async fn change_notices_follow_writes(store: Arc<dyn Store>) {
    let store = &*store;
    let world = bootstrapped(store).await;
    let notices = store.change_notices();
    let token = add_token(
        store,
        &world,
        TokenType::Client,
        Some(&world.workspace),
        None,
    )
    .await;
    let version = store.current_version().await.unwrap();
    let feed = store.changes_since(version - 1, 10).await.unwrap();
    assert_eq!(feed.len(), 1, "{feed:?}");
    assert_eq!(
        (feed[0].kind, feed[0].id.as_str()),
        (ChangeKind::Token, token.id.as_str())
    );
    let Some(mut notices) = notices else {
        return;
    };
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while *notices.borrow_and_update() < version {
        let changed = tokio::time::timeout_at(deadline, notices.changed()).await;
        assert!(
            matches!(changed, Ok(Ok(()))),
            "no notice of version {version} within 10 s (last {})",
            *notices.borrow()
        );
    }
}
