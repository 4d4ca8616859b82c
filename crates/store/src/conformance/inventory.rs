//! Conformance cases for the token inventory: every filter of [`TokenFilter`] alone, in
//! combination and over pages; the state filter against the rule lists show; bulk revoke
//! in one transaction with an audit event, a change and a lifecycle event per token.

use std::collections::BTreeSet;
use std::sync::Arc;

use latchkey_core::policy::{Visibility, visible_state};
use latchkey_core::{StateContext, StoredState, TokenRecord, new_id};
use latchkey_proto::{EventType, OrgRole, TokenState, TokenType, WorkspaceRole};
use time::OffsetDateTime;

use super::events::{add_webhook, deliveries_of};
use super::fixtures::*;
use crate::{
    BulkRevoked, ChangeKind, LastUsed, PageRequest, RevokeSkipped, StateFilter, Store, TokenFilter,
    UserPatch,
};

/// Creates a token of `token_type` named `name`, created at `created_at`, expiring at
/// `expires_at`.
async fn named_token(
    store: &dyn Store,
    world: &World,
    token_type: TokenType,
    owner: Option<&latchkey_core::UserRecord>,
    name: &str,
    created_at: OffsetDateTime,
    expires_at: Option<OffsetDateTime>,
) -> TokenRecord {
    let (mut token, secret) =
        token_record(&world.org.id, token_type, Some(&world.workspace), owner);
    token.name = name.to_owned();
    token.created_at = created_at;
    token.expires_at = expires_at;
    store
        .create_token(
            created_at,
            token,
            secret,
            &unlimited(),
            event("token.created"),
        )
        .await
        .unwrap()
}

/// Every id `filter` lists, walking pages of `limit`; checks the pages are newest first,
/// full but the last, and never repeat an id.
async fn walk(store: &dyn Store, world: &World, filter: &TokenFilter, limit: u32) -> Vec<String> {
    let mut ids = Vec::new();
    let mut cursor = None;
    loop {
        let page = store
            .list_tokens(&world.org.id, filter, &PageRequest { limit, cursor })
            .await
            .unwrap();
        let more = page.next_cursor.is_some();
        if more {
            assert_eq!(
                page.items.len(),
                limit as usize,
                "a page before the last is full"
            );
        }
        ids.extend(page.items.into_iter().map(|t| t.id));
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_newest_first(ids.iter().map(String::as_str));
    ids
}

/// The inventory filters: name contains (ASCII letters without case, `%` and `_` taken
/// literally), created / expires / last used before, never used, with type, owner,
/// workspace and visibility; each alone and combined, over pages of every size, list
/// exactly what the same rule in Rust keeps.
pub async fn inventory_filters(store: Arc<dyn Store>) {
    let store = &*store;
    let world = bootstrapped(store).await;
    let bob = add_user(store, &world, "bob", OrgRole::Member).await;
    let names = [
        "Deploy CI",
        "deploy-prod",
        "DEPLOYER",
        "ci 100%",
        "ci_100",
        "ci 1000",
        "Grafana",
        "ünïcødé Deploy",
        "ÜNÏCØDÉ",
        "backup",
    ];
    let mut made = vec![world.token.clone()];
    for (i, name) in names.iter().enumerate() {
        let i = i as i64;
        let (token_type, owner) = match i % 3 {
            0 => (TokenType::Personal, Some(&bob)),
            1 => (TokenType::Client, None),
            _ => (TokenType::Personal, Some(&world.admin)),
        };
        let expires_at = (i % 2 == 0).then(|| at(1_000 + i * 100));
        made.push(
            named_token(
                store,
                &world,
                token_type,
                owner,
                name,
                at(i * 10),
                expires_at,
            )
            .await,
        );
    }
    // Uses: half of them, at increasing times.
    let uses: Vec<LastUsed> = made
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 2 == 1)
        .map(|(i, t)| LastUsed {
            token_id: t.id.clone(),
            at: at(500 + i as i64 * 10),
            ip: Some("192.0.2.1".to_owned()),
        })
        .collect();
    store.record_last_used(&uses).await.unwrap();
    let all = tokens_where(store, &world, TokenFilter::default()).await;
    assert_eq!(all.len(), made.len());
    assert_eq!(
        all.iter().filter(|t| t.last_used_at.is_some()).count(),
        uses.len()
    );

    let contains = |t: &TokenRecord, text: &str| {
        t.name
            .to_ascii_lowercase()
            .contains(&text.to_ascii_lowercase())
    };
    let bob_sees = Visibility::for_user(
        &bob.id,
        OrgRole::Member,
        [(world.workspace.id.as_str(), WorkspaceRole::Member)],
    );
    type Check = Box<dyn Fn(&TokenRecord) -> bool>;
    let cases: Vec<(&str, TokenFilter, Check)> = vec![
        (
            "name contains deploy",
            TokenFilter {
                name_contains: Some("deploy".into()),
                ..TokenFilter::default()
            },
            Box::new(move |t| contains(t, "deploy")),
        ),
        (
            "name contains DePlOy (ASCII letters without case)",
            TokenFilter {
                name_contains: Some("DePlOy".into()),
                ..TokenFilter::default()
            },
            Box::new(move |t| contains(t, "deploy")),
        ),
        (
            "% is literal",
            TokenFilter {
                name_contains: Some("100%".into()),
                ..TokenFilter::default()
            },
            Box::new(move |t| t.name.contains("100%")),
        ),
        (
            "_ is literal",
            TokenFilter {
                name_contains: Some("ci_".into()),
                ..TokenFilter::default()
            },
            Box::new(move |t| t.name.contains("ci_")),
        ),
        (
            "non-ASCII compares exactly",
            TokenFilter {
                name_contains: Some("ünïcødé".into()),
                ..TokenFilter::default()
            },
            Box::new(move |t| t.name.contains("ünïcødé")),
        ),
        (
            "created before",
            TokenFilter {
                created_before: Some(at(40)),
                ..TokenFilter::default()
            },
            Box::new(|t| t.created_at < at(40)),
        ),
        (
            "expires before",
            TokenFilter {
                expires_before: Some(at(1_500)),
                ..TokenFilter::default()
            },
            Box::new(|t| t.expires_at.is_some_and(|e| e < at(1_500))),
        ),
        (
            "last used before",
            TokenFilter {
                last_used_before: Some(at(560)),
                ..TokenFilter::default()
            },
            Box::new(|t| t.last_used_at.is_some_and(|u| u < at(560))),
        ),
        (
            "never used",
            TokenFilter {
                never_used: Some(true),
                ..TokenFilter::default()
            },
            Box::new(|t| t.last_used_at.is_none()),
        ),
        (
            "used",
            TokenFilter {
                never_used: Some(false),
                ..TokenFilter::default()
            },
            Box::new(|t| t.last_used_at.is_some()),
        ),
        (
            "everything combined",
            TokenFilter {
                token_type: Some(TokenType::Personal),
                owner_id: Some(bob.id.clone()),
                workspace_id: Some(world.workspace.id.clone()),
                name_contains: Some("ci".into()),
                created_before: Some(at(80)),
                expires_before: Some(at(2_000)),
                never_used: Some(true),
                visibility: Some(bob_sees.clone()),
                ..TokenFilter::default()
            },
            {
                let bob_id = bob.id.clone();
                Box::new(move |t| {
                    t.token_type == TokenType::Personal
                        && t.owner_id.as_deref() == Some(bob_id.as_str())
                        && contains(t, "ci")
                        && t.created_at < at(80)
                        && t.expires_at.is_some_and(|e| e < at(2_000))
                        && t.last_used_at.is_none()
                })
            },
        ),
        (
            "a member's view, used, created before",
            TokenFilter {
                visibility: Some(bob_sees.clone()),
                created_before: Some(at(90)),
                never_used: Some(false),
                ..TokenFilter::default()
            },
            {
                let bob_sees = bob_sees.clone();
                Box::new(move |t| {
                    bob_sees.allows(
                        t.token_type,
                        t.workspace_id.as_deref(),
                        t.owner_id.as_deref(),
                    ) && t.created_at < at(90)
                        && t.last_used_at.is_some()
                })
            },
        ),
        (
            "nothing matches",
            TokenFilter {
                name_contains: Some("no such name".into()),
                ..TokenFilter::default()
            },
            Box::new(|_| false),
        ),
    ];
    for (what, filter, keep) in &cases {
        let expected: BTreeSet<String> = all
            .iter()
            .filter(|t| keep(t))
            .map(|t| t.id.clone())
            .collect();
        for limit in [1, 2, 3, 1000] {
            let listed = walk(store, &world, filter, limit).await;
            let set: BTreeSet<String> = listed.iter().cloned().collect();
            assert_eq!(set.len(), listed.len(), "{what}: no id twice");
            assert_eq!(set, expected, "{what} (pages of {limit})");
        }
    }
    // The cases are not vacuous: each of the first ones keeps some and drops some.
    for (what, filter, _) in cases.iter().take(10) {
        let n = tokens_where(store, &world, filter.clone()).await.len();
        assert!(n > 0 && n < all.len(), "{what}: {n} of {}", all.len());
    }
}

/// The state filter lists exactly the tokens whose state, as lists show it
/// (`visible_state`), is the one asked for: for tokens active, revoked, expired (marked
/// and not yet marked), of a disabled type, of a deactivated owner, pending and denied.
pub async fn inventory_state_filter_matches_visible_state(store: Arc<dyn Store>) {
    let store = &*store;
    let world = bootstrapped(store).await;
    let carol = add_user(store, &world, "carol", OrgRole::Member).await;
    let ws = Some(&world.workspace);
    let mut tokens = Vec::new();
    for owner in [None, Some(&world.admin), Some(&carol)] {
        for token_type in [TokenType::Client, TokenType::Frontend, TokenType::Personal] {
            if token_type.is_user_owned() != owner.is_some() {
                continue;
            }
            for expiry in [None, Some(at(100)), Some(at(10_000))] {
                let (mut token, secret) = token_record(&world.org.id, token_type, ws, owner);
                token.expires_at = expiry;
                // Every third waits for approval (and a revoke below makes one denied).
                if tokens.len() % 3 == 2 {
                    token.state = StoredState::Pending;
                }
                let made = store
                    .create_token(t0(), token, secret, &unlimited(), event("token.created"))
                    .await
                    .unwrap();
                tokens.push(made);
            }
        }
    }
    // Revoke some, mark some expired, deactivate carol.
    for t in tokens.iter().step_by(4) {
        store
            .revoke_token(at(1), &t.id, false, token_event("token.revoked", &t.id))
            .await
            .unwrap();
    }
    store.expire_tokens(at(200)).await.unwrap();
    store
        .update_user(
            at(2),
            &carol.id,
            UserPatch {
                active: Some(false),
                ..UserPatch::default()
            },
            event("user.deactivated"),
        )
        .await
        .unwrap();
    let all = tokens_where(store, &world, TokenFilter::default()).await;
    let active_users: BTreeSet<String> = [world.admin.id.clone()].into();
    let disabled_types = vec![TokenType::Frontend];
    let mut seen_states = BTreeSet::new();
    // `now` before and after the marked expiry, and past the far one (unmarked).
    for now in [at(150), at(300), at(20_000)] {
        for state in TokenState::ALL {
            let filter = TokenFilter {
                state: Some(StateFilter {
                    state,
                    now,
                    disabled_types: disabled_types.clone(),
                }),
                ..TokenFilter::default()
            };
            let expected: BTreeSet<String> = all
                .iter()
                .filter(|t| {
                    let ctx = StateContext {
                        owner_active: t.owner_id.as_ref().is_none_or(|o| active_users.contains(o)),
                        type_enabled: !disabled_types.contains(&t.token_type),
                    };
                    visible_state(t.state, t.expires_at, now, ctx) == state
                })
                .map(|t| t.id.clone())
                .collect();
            if !expected.is_empty() {
                seen_states.insert(state.as_str());
            }
            assert_eq!(
                id_set(
                    walk(store, &world, &filter, 2)
                        .await
                        .iter()
                        .map(String::as_str)
                ),
                expected,
                "state {state:?} at {now}"
            );
        }
    }
    assert_eq!(
        seen_states.len(),
        TokenState::ALL.len(),
        "every state occurs"
    );
    // Without disabled types nothing is `type_disabled`.
    let none_disabled = TokenFilter {
        state: Some(StateFilter {
            state: TokenState::TypeDisabled,
            now: at(150),
            disabled_types: Vec::new(),
        }),
        ..TokenFilter::default()
    };
    assert!(tokens_where(store, &world, none_disabled).await.is_empty());
}

/// Bulk revoke: active tokens become revoked, each with its audit event, its change and its
/// lifecycle event; unknown, already revoked and expired ones are skipped with why and
/// leave no trace; the answer follows the order asked.
pub async fn bulk_revoke_skips_with_reasons(store: Arc<dyn Store>) {
    let store = &*store;
    let world = bootstrapped(store).await;
    let hook = add_webhook(store, &world, &[EventType::TokenRevoked]).await;
    let mut active = Vec::new();
    for _ in 0..5 {
        active.push(
            add_token(
                store,
                &world,
                TokenType::Client,
                Some(&world.workspace),
                None,
            )
            .await,
        );
    }
    let revoked = add_token(
        store,
        &world,
        TokenType::Client,
        Some(&world.workspace),
        None,
    )
    .await;
    store
        .revoke_token(
            at(1),
            &revoked.id,
            false,
            token_event("token.revoked", &revoked.id),
        )
        .await
        .unwrap();
    let (mut past, secret) = token_record(
        &world.org.id,
        TokenType::Client,
        Some(&world.workspace),
        None,
    );
    past.expires_at = Some(at(5));
    let past = store
        .create_token(t0(), past, secret, &unlimited(), event("token.created"))
        .await
        .unwrap();
    let unknown = new_id();
    let before = store.current_version().await.unwrap();
    let deliveries_before = deliveries_of(store, &hook.id).await.len();

    let mut ids: Vec<String> = active.iter().map(|t| t.id.clone()).collect();
    ids.insert(2, revoked.id.clone());
    ids.insert(4, unknown.clone());
    ids.push(past.id.clone());
    let requests = ids
        .iter()
        .map(|id| (id.clone(), token_event("token.revoked", id)))
        .collect();
    let outcomes = store.revoke_tokens(at(10), requests).await.unwrap();
    assert_eq!(outcomes.len(), ids.len());
    for (id, outcome) in ids.iter().zip(&outcomes) {
        match outcome {
            BulkRevoked::Revoked(t) => {
                assert_eq!(&t.id, id);
                assert_eq!(t.state, StoredState::Revoked);
                assert!(active.iter().any(|a| &a.id == id));
            }
            BulkRevoked::Skipped { id: skipped, why } => {
                assert_eq!(skipped, id);
                let want = if id == &revoked.id {
                    RevokeSkipped::AlreadyRevoked
                } else if id == &unknown {
                    RevokeSkipped::NotFound
                } else {
                    assert_eq!(id, &past.id);
                    RevokeSkipped::Expired
                };
                assert_eq!(*why, want, "{id}");
            }
        }
    }
    for t in &active {
        assert_eq!(
            store.get_token(&t.id).await.unwrap().state,
            StoredState::Revoked
        );
        let events = audit_of_token(store, &t.id).await;
        assert_eq!(
            events
                .iter()
                .filter(|e| e.action == "token.revoked")
                .count(),
            1,
            "one audit event per revoked token"
        );
    }
    // Skipped ones are untouched and unaudited.
    assert_eq!(
        audit_of_token(store, &revoked.id)
            .await
            .iter()
            .filter(|e| e.action == "token.revoked")
            .count(),
        1
    );
    assert!(
        audit_of_token(store, &past.id)
            .await
            .iter()
            .all(|e| e.action != "token.revoked")
    );
    assert_eq!(
        store.get_token(&past.id).await.unwrap().state,
        StoredState::Active
    );
    let changes = store.changes_since(before, 100).await.unwrap();
    let changed: Vec<&str> = changes
        .iter()
        .filter(|c| c.kind == ChangeKind::Token)
        .map(|c| c.id.as_str())
        .collect();
    assert_eq!(changes.len(), active.len(), "one change per revoked token");
    assert_eq!(
        id_set(changed.iter().copied()),
        id_set(active.iter().map(|t| t.id.as_str()))
    );
    assert_eq!(
        deliveries_of(store, &hook.id).await.len() - deliveries_before,
        active.len(),
        "one lifecycle event per revoked token"
    );
    // Again: everything is skipped now, and nothing is written.
    let version = store.current_version().await.unwrap();
    let again = store
        .revoke_tokens(
            at(11),
            active
                .iter()
                .map(|t| (t.id.clone(), token_event("token.revoked", &t.id)))
                .collect(),
        )
        .await
        .unwrap();
    assert!(again.iter().all(|o| matches!(
        o,
        BulkRevoked::Skipped {
            why: RevokeSkipped::AlreadyRevoked,
            ..
        }
    )));
    expect_no_change(store, version).await;
    assert!(
        store
            .revoke_tokens(at(12), Vec::new())
            .await
            .unwrap()
            .is_empty()
    );
}
