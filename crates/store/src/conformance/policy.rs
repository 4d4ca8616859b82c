//! Verify-time policy: the policy columns, `update_token_policy`, and the budgets nodes
//! lease uses from (`lease_budget`, `settle_leases`), alone and concurrently.

use std::sync::Arc;

use latchkey_core::token_policy::{
    BudgetKind, LeaseReport, RateLimit, Refill, TokenPolicy, UsesPolicy, UsesState,
    parse_allowed_ips, validate_metadata,
};
use latchkey_core::{TokenRecord, new_id};
use latchkey_proto::{RefillInterval, TokenType};
use serde_json::json;

use super::*;
use crate::{AuditFilter, ChangeKind, PageRequest, Store, StoreError, TokenPolicyPatch};

/// A client token with every policy field, `uses` credits to start with.
fn policy_token(world: &World, uses: i64) -> (TokenRecord, latchkey_core::SecretRecord) {
    let (mut token, secret) = token_record(
        &world.org.id,
        TokenType::Client,
        Some(&world.workspace),
        None,
    );
    token.policy = TokenPolicy {
        metadata: Some(validate_metadata(json!({"plan": "pro", "n": 1})).unwrap()),
        allowed_ips: Some(
            parse_allowed_ips(&["10.0.0.0/8".into(), "2001:db8::/32".into()]).unwrap(),
        ),
        rate_limit: Some(RateLimit {
            limit: 100,
            window_secs: 60,
        }),
        uses: Some(UsesPolicy {
            refill: Some(Refill {
                amount: 500,
                interval: RefillInterval::Daily,
            }),
        }),
    };
    token.uses = Some(UsesState {
        pool: uses,
        period: 0,
        held: 0,
    });
    (token, secret)
}

async fn create(store: &dyn Store, token: &TokenRecord, secret: latchkey_core::SecretRecord) {
    store
        .create_token(
            t0(),
            token.clone(),
            secret,
            &unlimited(),
            event("token.created"),
        )
        .await
        .unwrap();
}

fn now() -> i64 {
    t0().unix_timestamp()
}

/// The policy is stored, read back by id, in lists and with the secret; a patch changes
/// what it names (one change, one audit event), and clearing credits drops the budget.
pub async fn token_policy_roundtrip_and_patch(store: Arc<dyn Store>) {
    let store = &*store;
    let world = bootstrapped(store).await;
    let (token, secret) = policy_token(&world, 42);
    create(store, &token, secret.clone()).await;
    let read = store.get_token(&token.id).await.unwrap();
    assert_eq!(read.policy, token.policy);
    let day = t0().unix_timestamp().div_euclid(86_400);
    assert_eq!(
        read.uses,
        Some(UsesState {
            pool: 42,
            period: day,
            held: 0
        })
    );
    assert_eq!(read.remaining_uses(now(), 0), Some(42));
    let (found, _) = store.find_secret(&secret.hash).await.unwrap().unwrap();
    assert_eq!(found.policy, token.policy);
    // Without a policy: nothing.
    let plain = store.get_token(&world.token.id).await.unwrap();
    assert_eq!(plain.policy, TokenPolicy::default());
    assert_eq!(plain.uses, None);
    assert_eq!(plain.remaining_uses(now(), 0), None);

    let v = store.current_version().await.unwrap();
    let patch = TokenPolicyPatch {
        metadata: Some(None),
        rate_limit: Some(Some(RateLimit {
            limit: 5,
            window_secs: 1,
        })),
        remaining_uses: Some(Some(7)),
        ..TokenPolicyPatch::default()
    };
    let updated = store
        .update_token_policy(
            at(5),
            &token.id,
            patch,
            token_event("token.updated", &token.id),
        )
        .await
        .unwrap();
    expect_one_change(store, v, ChangeKind::Token, &token.id).await;
    assert_eq!(updated.policy.metadata, None);
    assert_eq!(updated.policy.allowed_ips, token.policy.allowed_ips);
    assert_eq!(
        updated.policy.rate_limit,
        Some(RateLimit {
            limit: 5,
            window_secs: 1
        })
    );
    assert_eq!(updated.policy.uses, token.policy.uses, "refill kept");
    assert_eq!(updated.remaining_uses(now() + 5, 0), Some(7));
    let events = store
        .list_audit(
            &AuditFilter {
                token_id: Some(token.id.clone()),
                action: Some("token.updated".into()),
                ..AuditFilter::default()
            },
            &PageRequest::default(),
        )
        .await
        .unwrap();
    assert_eq!(events.items.len(), 1);

    // Credits off: the budget goes; leasing it answers `None`.
    let cleared = store
        .update_token_policy(
            at(6),
            &token.id,
            TokenPolicyPatch {
                remaining_uses: Some(None),
                allowed_ips: Some(None),
                ..TokenPolicyPatch::default()
            },
            token_event("token.updated", &token.id),
        )
        .await
        .unwrap();
    assert_eq!(cleared.policy.uses, None);
    assert_eq!(cleared.policy.allowed_ips, None);
    assert_eq!(cleared.uses, None);
    assert_eq!(
        store
            .lease_budget(now() + 6, &token.id, BudgetKind::Uses, "n1", 10)
            .await
            .unwrap(),
        None
    );
    // Credits on again, from a refill's amount given as remaining_uses.
    let again = store
        .update_token_policy(
            at(7),
            &token.id,
            TokenPolicyPatch {
                remaining_uses: Some(Some(3)),
                refill: Some(Some(Refill {
                    amount: 3,
                    interval: RefillInterval::Monthly,
                })),
                ..TokenPolicyPatch::default()
            },
            token_event("token.updated", &token.id),
        )
        .await
        .unwrap();
    assert_eq!(again.remaining_uses(now() + 7, 0), Some(3));
    // A refill without credits is refused, nothing changed.
    let v = store.current_version().await.unwrap();
    let refused = store
        .update_token_policy(
            at(8),
            &world.token.id,
            TokenPolicyPatch {
                refill: Some(Some(Refill {
                    amount: 3,
                    interval: RefillInterval::Daily,
                })),
                ..TokenPolicyPatch::default()
            },
            token_event("token.updated", &world.token.id),
        )
        .await;
    assert!(
        matches!(refused, Err(StoreError::Conflict(_))),
        "{refused:?}"
    );
    assert_eq!(store.current_version().await.unwrap(), v);
    assert!(is_not_found(
        store
            .update_token_policy(
                at(8),
                &new_id(),
                TokenPolicyPatch::default(),
                event("token.updated")
            )
            .await
    ));
}

/// Leases hand out every credit exactly once over several nodes; what a node reports
/// spent is gone, what it gives back can be leased again; `remaining_uses` counts what
/// nodes hold; a `PATCH` of the credits counts it too; a deleted token has no budget.
pub async fn uses_leases_and_settling(store: Arc<dyn Store>) {
    let store = &*store;
    let world = bootstrapped(store).await;
    let (token, secret) = policy_token(&world, 100);
    create(store, &token, secret).await;
    let v = store.current_version().await.unwrap();
    let mut granted = 0;
    let mut by_node = [0i64; 2];
    for round in 0.. {
        let node = round % 2;
        let grant = store
            .lease_budget(now(), &token.id, BudgetKind::Uses, &format!("n{node}"), 16)
            .await
            .unwrap()
            .unwrap();
        if grant.granted == 0 {
            break;
        }
        assert!(grant.granted <= 16);
        granted += grant.granted;
        by_node[node] += grant.granted;
        assert_eq!(grant.pool_left, 100 - granted);
        assert!(round < 200, "never ran dry");
    }
    assert_eq!(granted, 100);
    assert_eq!(
        store.current_version().await.unwrap(),
        v,
        "leases are no change"
    );
    let read = store.get_token(&token.id).await.unwrap();
    assert_eq!(read.remaining_uses(now(), 0), Some(100), "held counts");

    // n0 spent 10 and gives the rest back; n1 spent everything.
    let period = read.uses.unwrap().period;
    let report = |consumed, returned| LeaseReport {
        token_id: token.id.clone(),
        kind: BudgetKind::Uses,
        period,
        consumed,
        returned,
    };
    let answers = store
        .settle_leases(now() + 1, "n0", vec![report(10, by_node[0] - 10)])
        .await
        .unwrap();
    assert_eq!(answers, vec![None], "nothing kept");
    let answers = store
        .settle_leases(now() + 1, "n1", vec![report(by_node[1], 0)])
        .await
        .unwrap();
    assert_eq!(answers, vec![None]);
    let read = store.get_token(&token.id).await.unwrap();
    assert_eq!(
        read.remaining_uses(now() + 1, 0),
        Some((by_node[0] - 10) as u64)
    );
    let grant = store
        .lease_budget(now() + 2, &token.id, BudgetKind::Uses, "n2", 1_000)
        .await
        .unwrap()
        .unwrap();
    assert!(grant.granted >= 1);

    // PATCH to 2 while n2 holds some: n2's block counts, so at most 2 more uses in all.
    store
        .update_token_policy(
            at(3),
            &token.id,
            TokenPolicyPatch {
                remaining_uses: Some(Some(2)),
                ..TokenPolicyPatch::default()
            },
            token_event("token.updated", &token.id),
        )
        .await
        .unwrap();
    let read = store.get_token(&token.id).await.unwrap();
    assert_eq!(read.remaining_uses(now() + 3, 0), Some(2));
    let more = store
        .lease_budget(now() + 3, &token.id, BudgetKind::Uses, "n0", 10)
        .await
        .unwrap()
        .unwrap();
    assert!(more.granted <= (2 - grant.granted).max(0));

    store
        .delete_token(at(4), &token.id, token_event("token.deleted", &token.id))
        .await
        .unwrap();
    assert_eq!(
        store
            .lease_budget(now() + 4, &token.id, BudgetKind::Uses, "n0", 10)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .settle_leases(now() + 4, "n2", vec![report(1, 0)])
            .await
            .unwrap(),
        vec![None]
    );
}

/// A rate budget starts full in every window and is never granted past its limit.
pub async fn rate_budget_per_window(store: Arc<dyn Store>) {
    let store = &*store;
    let world = bootstrapped(store).await;
    let (token, secret) = policy_token(&world, 0);
    create(store, &token, secret).await;
    let window = |w: i64| w * 60;
    let start = (now() / 60 + 1) * 60;
    for w in 0..2 {
        let mut granted = 0;
        loop {
            let grant = store
                .lease_budget(start + window(w), &token.id, BudgetKind::Rate, "n1", 50)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(
                grant.valid_until,
                start + window(w + 1),
                "good for its window"
            );
            if grant.granted == 0 {
                break;
            }
            granted += grant.granted;
        }
        assert_eq!(granted, 100, "window {w}");
    }
}

/// Concurrent leases from many nodes never hand out more than the pool.
pub async fn concurrent_leases_never_over_grant(store: Arc<dyn Store>) {
    let world = bootstrapped(&*store).await;
    let (token, secret) = policy_token(&world, 300);
    create(&*store, &token, secret).await;
    let mut tasks = Vec::new();
    for node in 0..6 {
        let store = store.clone();
        let id = token.id.clone();
        tasks.push(tokio::spawn(async move {
            let mut got = 0;
            loop {
                let grant = store
                    .lease_budget(now(), &id, BudgetKind::Uses, &format!("n{node}"), 8)
                    .await
                    .unwrap()
                    .unwrap();
                if grant.granted == 0 {
                    return got;
                }
                got += grant.granted;
            }
        }));
    }
    let mut total = 0;
    for task in tasks {
        total += task.await.unwrap();
    }
    assert_eq!(total, 300);
}
