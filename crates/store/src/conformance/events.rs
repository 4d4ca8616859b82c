//! Conformance cases for lifecycle events: webhook endpoints, the outbox written with each
//! change, exclusive claims with leases, attempts, expiry notices.

use std::collections::BTreeSet;
use std::sync::Arc;

use latchkey_core::new_id;
use latchkey_core::policy::Limits;
use latchkey_proto::{DeliveryAttempt, DeliveryState, EventType, OrgRole, TokenType};
use time::{Duration, OffsetDateTime};

use super::{
    World, add_user, at, bootstrapped, event, is_not_found, t0, token_event, token_record,
    unlimited,
};
use crate::{
    AttemptResult, Channel, DeliveryRecord, PageRequest, Store, StoreError, UserPatch,
    WebhookPatch, WebhookRecord,
};

/// A webhook endpoint record subscribed to `events`.
pub fn webhook_record(world: &World, events: &[EventType]) -> WebhookRecord {
    WebhookRecord {
        id: new_id(),
        org_id: world.org.id.clone(),
        url: "https://hooks.example.com/latchkey".to_owned(),
        description: Some("CI alerts".to_owned()),
        events: events.to_vec(),
        secret: vec![9; 44],
        enabled: true,
        created_at: t0(),
        updated_at: t0(),
    }
}

pub(crate) async fn add_webhook(
    store: &dyn Store,
    world: &World,
    events: &[EventType],
) -> WebhookRecord {
    store
        .create_webhook(
            t0(),
            webhook_record(world, events),
            event("webhook.created"),
        )
        .await
        .unwrap()
}

pub(crate) async fn deliveries_of(store: &dyn Store, webhook_id: &str) -> Vec<DeliveryRecord> {
    let page = store
        .list_deliveries(webhook_id, &PageRequest::first(1000))
        .await
        .unwrap();
    assert!(page.next_cursor.is_none());
    page.items
}

fn attempt(at: OffsetDateTime, status: Option<u16>) -> DeliveryAttempt {
    DeliveryAttempt {
        at,
        status,
        error: status.filter(|s| *s >= 300).map(|s| format!("HTTP {s}")),
    }
}

/// Claims everything due of `channel` at `now` for `node` (lease 60 s).
async fn claim_all(
    store: &dyn Store,
    channel: Channel,
    node: &str,
    now: OffsetDateTime,
) -> Vec<crate::ClaimedDelivery> {
    store
        .claim_deliveries(now, channel, node, now + Duration::seconds(60), 1000)
        .await
        .unwrap()
}

/// Endpoints: create, read, list newest first, patch, delete (with their deliveries);
/// each change is audited.
pub async fn webhooks_crud(store: Arc<dyn Store>) {
    let store = &*store;
    let world = bootstrapped(store).await;
    let first = add_webhook(store, &world, &[EventType::TokenCreated]).await;
    assert_eq!(first.events, vec![EventType::TokenCreated]);
    assert_eq!(first.secret, vec![9; 44]);
    assert!(first.enabled);
    let second = add_webhook(store, &world, &[EventType::TokenRevoked]).await;
    assert_eq!(store.get_webhook(&first.id).await.unwrap(), first);
    let listed = store
        .list_webhooks(&world.org.id, &PageRequest::first(10))
        .await
        .unwrap();
    let ids: Vec<&str> = listed.items.iter().map(|w| w.id.as_str()).collect();
    assert_eq!(ids, vec![second.id.as_str(), first.id.as_str()]);
    let page = store
        .list_webhooks(
            &world.org.id,
            &PageRequest {
                limit: 1,
                cursor: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(page.items.len(), 1);
    assert_eq!(page.next_cursor.as_deref(), Some(second.id.as_str()));

    let patched = store
        .update_webhook(
            at(60),
            &first.id,
            WebhookPatch {
                url: Some("https://other.example.com/".to_owned()),
                events: Some(vec![EventType::TokenExpiring, EventType::TokenExpired]),
                description: Some(None),
                enabled: Some(false),
            },
            event("webhook.updated"),
        )
        .await
        .unwrap();
    assert_eq!(patched.url, "https://other.example.com/");
    assert_eq!(
        patched.events,
        vec![EventType::TokenExpiring, EventType::TokenExpired]
    );
    assert_eq!(patched.description, None);
    assert!(!patched.enabled);
    assert_eq!(patched.updated_at, at(60));
    assert_eq!(patched.secret, first.secret);

    let test = store.queue_test_delivery(at(61), &second.id).await.unwrap();
    assert_eq!(test.event_type, latchkey_proto::TEST_EVENT_TYPE);
    store
        .delete_webhook(at(62), &second.id, event("webhook.deleted"))
        .await
        .unwrap();
    assert!(is_not_found(store.get_webhook(&second.id).await));
    assert!(is_not_found(store.get_delivery(&test.id).await));
    assert!(is_not_found(
        store
            .delete_webhook(at(63), &second.id, event("webhook.deleted"))
            .await
    ));
    assert!(is_not_found(
        store
            .update_webhook(at(63), &second.id, WebhookPatch::default(), event("x"))
            .await
    ));
    for action in ["webhook.created", "webhook.updated", "webhook.deleted"] {
        let found = super::audit_where(
            store,
            crate::AuditFilter {
                action: Some(action.to_owned()),
                ..crate::AuditFilter::default()
            },
        )
        .await;
        assert!(!found.is_empty(), "no {action} audit event");
    }
}

/// Every lifecycle audit event writes its event and one delivery per subscribed, enabled
/// endpoint in the same transaction; a refused change writes none; the message carries a
/// snapshot of the token (also of a deleted one) and never a secret.
pub async fn outbox_written_with_change(store: Arc<dyn Store>) {
    let store = &*store;
    let world = bootstrapped(store).await;
    let all = add_webhook(store, &world, &EventType::ALL).await;
    let created_only = add_webhook(store, &world, &[EventType::TokenCreated]).await;
    let paused = add_webhook(store, &world, &EventType::ALL).await;
    store
        .update_webhook(
            t0(),
            &paused.id,
            WebhookPatch {
                enabled: Some(false),
                ..WebhookPatch::default()
            },
            event("webhook.updated"),
        )
        .await
        .unwrap();
    let owner = add_user(store, &world, "carol", OrgRole::Member).await;
    let (token, secret) = token_record(
        &world.org.id,
        TokenType::Personal,
        Some(&world.workspace),
        Some(&owner),
    );
    let created = store
        .create_token(
            at(1),
            token.clone(),
            secret,
            &unlimited(),
            token_event("token.created", &token.id),
        )
        .await
        .unwrap();
    store
        .revoke_token(
            at(2),
            &created.id,
            false,
            token_event("token.revoked", &created.id),
        )
        .await
        .unwrap();
    store
        .delete_token(
            at(3),
            &created.id,
            token_event("token.deleted", &created.id),
        )
        .await
        .unwrap();
    // A refused create (over the limit) leaves nothing behind.
    let (refused, refused_secret) = token_record(
        &world.org.id,
        TokenType::Client,
        Some(&world.workspace),
        None,
    );
    let limits = Limits {
        max_active_tokens: Some(0),
        ..Limits::default()
    };
    assert!(matches!(
        store
            .create_token(
                at(4),
                refused.clone(),
                refused_secret,
                &limits,
                token_event("token.created", &refused.id),
            )
            .await,
        Err(StoreError::LimitExceeded { .. })
    ));
    // Audit events that are not lifecycle events deliver nothing.
    store
        .append_audit(at(5), event("user.signed_in"))
        .await
        .unwrap();

    let to_all = deliveries_of(store, &all.id).await;
    let types: Vec<&str> = to_all.iter().rev().map(|d| d.event_type.as_str()).collect();
    assert_eq!(
        types,
        vec!["token.created", "token.revoked", "token.deleted"]
    );
    for d in &to_all {
        assert_eq!(d.state, DeliveryState::Pending);
        assert_eq!(d.attempts, 0);
        assert_eq!(d.channel, Channel::Webhook);
        assert!(d.attempt_log.is_empty());
        assert_eq!(d.give_up_at, d.created_at + Duration::hours(24));
    }
    let to_created = deliveries_of(store, &created_only.id).await;
    assert_eq!(to_created.len(), 1);
    assert_eq!(to_created[0].event_type, "token.created");
    // The same event to two endpoints has one id (the `webhook-id`).
    assert_eq!(to_created[0].event_id, to_all[2].event_id);
    assert!(deliveries_of(store, &paused.id).await.is_empty());

    let claimed = claim_all(store, Channel::Webhook, "node-a", at(10)).await;
    assert_eq!(claimed.len(), 4);
    for c in &claimed {
        let body: serde_json::Value = serde_json::from_str(&c.body).unwrap();
        assert_eq!(body["type"], c.delivery.event_type.as_str());
        assert_eq!(body["data"]["token"]["id"], created.id.as_str());
        assert_eq!(body["data"]["token"]["name"], created.name.as_str());
        assert_eq!(body["data"]["token"]["owner_username"], "carol");
        assert!(body["data"]["token"].get("token").is_none(), "{body}");
        assert!(body["timestamp"].as_str().unwrap().ends_with('Z'));
        assert!(c.url.is_some() && c.secret.is_some());
    }
    let revoked = claimed
        .iter()
        .find(|c| c.delivery.event_type == "token.revoked")
        .unwrap();
    let body: serde_json::Value = serde_json::from_str(&revoked.body).unwrap();
    assert_eq!(body["data"]["token"]["state"], "revoked");
    assert_eq!(body["timestamp"], "2030-01-01T00:00:02Z");
}

/// Claims are exclusive across concurrent claimers; a lease keeps others off until it
/// runs out; only the holder records an attempt; retries wait for their time; giving up
/// marks the delivery failed; a redelivery is a new delivery of the same event.
pub async fn delivery_claims_and_attempts(store: Arc<dyn Store>) {
    let world = bootstrapped(&*store).await;
    let hook = add_webhook(&*store, &world, &[EventType::UserDeactivated]).await;
    let user = add_user(&*store, &world, "dave", OrgRole::Member).await;
    for i in 0..20 {
        let mut deactivate = event(if i % 2 == 0 {
            "user.deactivated"
        } else {
            "user.reactivated"
        });
        deactivate.target_type = Some("user".to_owned());
        deactivate.target_id = Some(user.id.clone());
        store
            .update_user(
                at(i),
                &user.id,
                UserPatch {
                    active: Some(i % 2 == 1),
                    ..UserPatch::default()
                },
                deactivate,
            )
            .await
            .unwrap();
    }
    let queued = deliveries_of(&*store, &hook.id).await;
    assert_eq!(queued.len(), 10, "only subscribed types are queued");
    let now = at(100);
    let claimers: Vec<_> = (0..4)
        .map(|n| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let node = format!("node-{n}");
                let won = store
                    .claim_deliveries(now, Channel::Webhook, &node, now + Duration::seconds(30), 3)
                    .await
                    .unwrap();
                won.into_iter()
                    .map(|c| (node.clone(), c))
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut won = Vec::new();
    for claimer in claimers {
        won.extend(claimer.await.unwrap());
    }
    // Whatever is left is claimed by one more call; nothing is claimed twice.
    let rest = claim_all(&*store, Channel::Webhook, "node-9", now).await;
    won.extend(rest.into_iter().map(|c| ("node-9".to_owned(), c)));
    let ids: BTreeSet<&str> = won.iter().map(|(_, c)| c.delivery.id.as_str()).collect();
    assert_eq!(ids.len(), won.len(), "a delivery was claimed twice");
    assert_eq!(won.len(), 10);
    let body: serde_json::Value = serde_json::from_str(&won[0].1.body).unwrap();
    assert_eq!(body["data"]["user"]["username"], "dave");
    assert!(
        claim_all(&*store, Channel::Webhook, "node-8", now)
            .await
            .is_empty()
    );
    assert!(
        claim_all(&*store, Channel::Email, "node-8", at(1000))
            .await
            .is_empty(),
        "user events email nobody"
    );

    // Only the lease holder records; a retry waits for its time.
    let (holder, first) = &won[0];
    let id = first.delivery.id.as_str();
    let failed_at = at(101);
    assert!(
        !store
            .finish_attempt(
                id,
                "node-0-not-holder",
                attempt(failed_at, Some(503)),
                AttemptResult::Delivered
            )
            .await
            .unwrap()
    );
    assert!(
        store
            .finish_attempt(
                id,
                holder,
                attempt(failed_at, Some(503)),
                AttemptResult::RetryAt(at(200)),
            )
            .await
            .unwrap()
    );
    // Delivered ones stay delivered.
    let (other_holder, other) = &won[1];
    let other = &other.delivery.id;
    assert!(
        store
            .finish_attempt(
                other,
                other_holder,
                attempt(at(102), Some(204)),
                AttemptResult::Delivered
            )
            .await
            .unwrap()
    );
    assert_eq!(
        store.get_delivery(other).await.unwrap().state,
        DeliveryState::Delivered
    );

    let after = store.get_delivery(id).await.unwrap();
    assert_eq!(after.state, DeliveryState::Pending);
    assert_eq!(after.attempts, 1);
    assert_eq!(after.last_status, Some(503));
    assert_eq!(after.last_error.as_deref(), Some("HTTP 503"));
    assert_eq!(after.last_attempt_at, Some(failed_at));
    assert_eq!(after.next_attempt_at, Some(at(200)));
    assert_eq!(after.attempt_log.len(), 1);
    let due = |list: &[crate::ClaimedDelivery]| list.iter().any(|c| c.delivery.id == id);
    assert!(!due(&claim_all(
        &*store,
        Channel::Webhook,
        "node-1",
        at(199)
    )
    .await));
    let again = claim_all(&*store, Channel::Webhook, "node-1", at(200)).await;
    assert!(due(&again));
    // A lease that runs out (the holder died) lets another node take the row.
    assert!(!due(&claim_all(
        &*store,
        Channel::Webhook,
        "node-2",
        at(259)
    )
    .await));
    assert!(due(&claim_all(
        &*store,
        Channel::Webhook,
        "node-2",
        at(260)
    )
    .await));
    assert!(
        !store
            .finish_attempt(id, "node-1", attempt(at(261), None), AttemptResult::GiveUp)
            .await
            .unwrap(),
        "the lease moved to node-2"
    );
    assert!(
        store
            .finish_attempt(id, "node-2", attempt(at(261), None), AttemptResult::GiveUp)
            .await
            .unwrap()
    );
    let failed = store.get_delivery(id).await.unwrap();
    assert_eq!(failed.state, DeliveryState::Failed);
    assert_eq!(failed.attempts, 2);
    assert_eq!(failed.next_attempt_at, None);
    assert_eq!(failed.last_status, None);
    assert!(
        claim_all(&*store, Channel::Webhook, "node-3", at(100_000))
            .await
            .iter()
            .all(|c| c.delivery.id != id)
    );

    // Redelivery: a new pending delivery of the same event, due now.
    let again = store.redeliver(at(300), id).await.unwrap();
    assert_ne!(again.id, id);
    assert_eq!(again.event_id, failed.event_id);
    assert_eq!(again.webhook_id, failed.webhook_id);
    assert_eq!(again.state, DeliveryState::Pending);
    assert_eq!(again.attempts, 0);
    assert_eq!(again.give_up_at, at(300) + Duration::hours(24));
    let retaken = claim_all(&*store, Channel::Webhook, "node-4", at(300)).await;
    assert!(retaken.iter().any(|c| c.delivery.id == again.id));
    assert!(is_not_found(store.redeliver(at(300), &new_id()).await));
    assert!(is_not_found(store.get_delivery(&new_id()).await));
    assert!(is_not_found(
        store.queue_test_delivery(at(300), &new_id()).await
    ));

    // Purging removes old deliveries.
    let purged = store.purge_deliveries(at(400)).await.unwrap();
    assert!(purged >= 11, "{purged}");
    assert!(is_not_found(store.get_delivery(&again.id).await));
}

/// Deliveries to one endpoint page newest first: every one exactly once across the pages,
/// and only that endpoint's.
pub async fn deliveries_page_newest_first(store: Arc<dyn Store>) {
    let store = &*store;
    let world = bootstrapped(store).await;
    let hook = add_webhook(store, &world, &[EventType::TokenCreated]).await;
    let other = add_webhook(store, &world, &[EventType::TokenCreated]).await;
    let mut queued = BTreeSet::new();
    for i in 0..5 {
        queued.insert(store.queue_test_delivery(at(i), &hook.id).await.unwrap().id);
    }
    store.queue_test_delivery(at(9), &other.id).await.unwrap();
    let mut seen = Vec::new();
    let mut page = PageRequest::first(2);
    loop {
        let got = store.list_deliveries(&hook.id, &page).await.unwrap();
        assert!(got.items.len() <= 2);
        seen.extend(got.items.into_iter().map(|d| d.id));
        match got.next_cursor {
            Some(cursor) => page.cursor = Some(cursor),
            None => break,
        }
    }
    for pair in seen.windows(2) {
        assert!(pair[0] > pair[1], "not newest first: {seen:?}");
    }
    assert_eq!(seen.iter().cloned().collect::<BTreeSet<_>>(), queued);
    assert_eq!(seen.len(), 5);
    assert!(
        store
            .list_deliveries(&new_id(), &PageRequest::first(10))
            .await
            .unwrap()
            .items
            .is_empty()
    );
}

/// `token.expiring` at 30, 7 and 1 days before expiry, once each and per expiry; owners
/// with an email get an email delivery for it and for expiry, a leak and an admin's revoke.
pub async fn expiry_notices_once_each(store: Arc<dyn Store>) {
    let store = &*store;
    let world = bootstrapped(store).await;
    let hook = add_webhook(store, &world, &[EventType::TokenExpiring]).await;
    let owner = add_user(store, &world, "erin", OrgRole::Member).await;
    let mut owner_patch_event = event("user.updated");
    owner_patch_event.target_type = Some("user".to_owned());
    store
        .update_user(
            t0(),
            &owner.id,
            UserPatch {
                email: Some(Some("erin@example.com".to_owned())),
                ..UserPatch::default()
            },
            owner_patch_event,
        )
        .await
        .unwrap();
    let (mut token, secret) = token_record(
        &world.org.id,
        TokenType::Personal,
        Some(&world.workspace),
        Some(&owner),
    );
    let expires = t0() + Duration::days(90);
    token.expires_at = Some(expires);
    let mut created_event = token_event("token.created", &token.id);
    created_event.subject_user_id = Some(owner.id.clone());
    let token = store
        .create_token(t0(), token, secret, &unlimited(), created_event)
        .await
        .unwrap();
    let before = |days: i64| expires - Duration::days(days);
    let sent_for = |notices: Vec<crate::ExpiryNotice>| -> Vec<u32> {
        notices
            .into_iter()
            .filter(|n| n.token_id == token.id)
            .map(|n| n.days_before)
            .collect()
    };
    assert!(sent_for(store.send_expiry_notices(t0()).await.unwrap()).is_empty());
    assert!(sent_for(store.send_expiry_notices(before(31)).await.unwrap()).is_empty());
    assert_eq!(
        sent_for(store.send_expiry_notices(before(30)).await.unwrap()),
        vec![30]
    );
    assert!(sent_for(store.send_expiry_notices(before(29)).await.unwrap()).is_empty());
    assert!(sent_for(store.send_expiry_notices(before(8)).await.unwrap()).is_empty());
    let seven = store.send_expiry_notices(before(7)).await.unwrap();
    assert_eq!(seven.len(), 1);
    assert_eq!((seven[0].days_before, seven[0].days_left), (7, 7));
    assert!(sent_for(store.send_expiry_notices(before(7)).await.unwrap()).is_empty());
    // A sweep that ran late sends only the smallest due notice.
    assert_eq!(
        sent_for(
            store
                .send_expiry_notices(expires - Duration::hours(3))
                .await
                .unwrap()
        ),
        vec![1]
    );
    assert!(
        sent_for(
            store
                .send_expiry_notices(expires - Duration::hours(2))
                .await
                .unwrap()
        )
        .is_empty()
    );
    assert!(sent_for(store.send_expiry_notices(expires).await.unwrap()).is_empty());

    let hooked = deliveries_of(store, &hook.id).await;
    assert_eq!(hooked.len(), 3);
    assert!(hooked.iter().all(|d| d.event_type == "token.expiring"));
    let claimed = claim_all(store, Channel::Webhook, "n", expires).await;
    let mut days: Vec<i64> = claimed
        .iter()
        .map(|c| {
            let body: serde_json::Value = serde_json::from_str(&c.body).unwrap();
            assert_eq!(body["data"]["token"]["id"], token.id.as_str());
            body["data"]["days_left"].as_i64().unwrap()
        })
        .collect();
    days.sort_unstable();
    assert_eq!(days, vec![1, 7, 30]);
    let audited = super::audit_of_token(store, &token.id).await;
    assert_eq!(
        audited
            .iter()
            .filter(|e| e.action == "token.expiring")
            .count(),
        3
    );

    // The owner is emailed about each notice and the expiry; an admin's revoke of another
    // token is emailed, the owner's own revoke is not.
    assert_eq!(
        store.expire_tokens(expires).await.unwrap(),
        vec![token.id.clone()]
    );
    let (other, other_secret) = token_record(
        &world.org.id,
        TokenType::Personal,
        Some(&world.workspace),
        Some(&owner),
    );
    let other = store
        .create_token(
            t0(),
            other,
            other_secret,
            &unlimited(),
            event("token.created"),
        )
        .await
        .unwrap();
    let mut by_admin = token_event("token.revoked", &other.id);
    by_admin.actor_id = Some(world.admin.id.clone());
    by_admin.subject_user_id = Some(owner.id.clone());
    store
        .revoke_token(at(5), &other.id, false, by_admin)
        .await
        .unwrap();
    let mut by_owner = token_event("token.revoked", &other.id);
    by_owner.actor_id = Some(owner.id.clone());
    by_owner.subject_user_id = Some(owner.id.clone());
    store
        .revoke_token(at(6), &other.id, false, by_owner)
        .await
        .unwrap();
    let mut leak = token_event("token.leaked", &other.id);
    leak.subject_user_id = Some(owner.id.clone());
    store
        .revoke_token(at(7), &other.id, true, leak)
        .await
        .unwrap();
    let emails = claim_all(store, Channel::Email, "n", expires).await;
    let mut kinds: Vec<&str> = emails
        .iter()
        .map(|c| c.delivery.event_type.as_str())
        .collect();
    kinds.sort_unstable();
    assert_eq!(
        kinds,
        vec![
            "token.expired",
            "token.expiring",
            "token.expiring",
            "token.expiring",
            "token.leaked",
            "token.revoked"
        ]
    );
    assert!(
        emails
            .iter()
            .all(|c| c.delivery.recipient.as_deref() == Some("erin@example.com"))
    );
    assert!(
        emails
            .iter()
            .all(|c| c.url.is_none() && c.delivery.webhook_id.is_none())
    );

    // A new expiry (rotation) starts the notices afresh.
    let (fresh, fresh_secret) = token_record(
        &world.org.id,
        TokenType::Personal,
        Some(&world.workspace),
        Some(&owner),
    );
    let mut fresh = fresh;
    fresh.expires_at = Some(expires + Duration::days(30));
    let fresh = store
        .create_token(
            t0(),
            fresh,
            fresh_secret,
            &unlimited(),
            event("token.created"),
        )
        .await
        .unwrap();
    assert_eq!(
        sent_for_token(store.send_expiry_notices(expires).await.unwrap(), &fresh.id),
        vec![30]
    );
    let new_expiry = expires + Duration::days(60);
    store
        .rotate_token(
            expires,
            &fresh.id,
            super::secret_for(&fresh.id),
            None,
            Some(Some(new_expiry)),
            None,
            token_event("token.rotated", &fresh.id),
        )
        .await
        .unwrap();
    let notices = store
        .send_expiry_notices(new_expiry - Duration::days(30))
        .await
        .unwrap();
    assert_eq!(sent_for_token(notices, &fresh.id), vec![30]);
}

fn sent_for_token(notices: Vec<crate::ExpiryNotice>, token_id: &str) -> Vec<u32> {
    notices
        .into_iter()
        .filter(|n| n.token_id == token_id)
        .map(|n| n.days_before)
        .collect()
}

/// Counts of active tokens expiring within each window.
pub async fn count_expiring_windows(store: Arc<dyn Store>) {
    let store = &*store;
    let world = bootstrapped(store).await;
    // The bootstrap token expires at t0 + 270 d.
    for days in [0, 1, 5, 20, 40] {
        let (mut token, secret) = token_record(
            &world.org.id,
            TokenType::Client,
            Some(&world.workspace),
            None,
        );
        token.expires_at = Some(t0() + Duration::days(days) + Duration::hours(1));
        store
            .create_token(t0(), token, secret, &unlimited(), event("token.created"))
            .await
            .unwrap();
    }
    let windows = [86_400, 7 * 86_400, 30 * 86_400];
    assert_eq!(
        store.count_expiring(t0(), &windows).await.unwrap(),
        vec![1, 3, 4]
    );
    assert_eq!(
        store
            .count_expiring(t0() + Duration::hours(2), &windows)
            .await
            .unwrap(),
        vec![1, 2, 3]
    );
}

/// Tokens counted by type and state: an active token past its expiry counts as expired,
/// one of a deactivated owner as suspended, and pairs without tokens are left out.
pub async fn count_tokens_by_type_and_state(store: Arc<dyn Store>) {
    use latchkey_proto::TokenState;
    let store = &*store;
    let world = bootstrapped(store).await;
    let before: u64 = store
        .count_tokens_by_type_and_state(t0())
        .await
        .unwrap()
        .iter()
        .map(|(_, _, n)| n)
        .sum();
    let mut ids = Vec::new();
    for hours in [None, Some(1), Some(3)] {
        let (mut token, secret) = token_record(
            &world.org.id,
            TokenType::Client,
            Some(&world.workspace),
            None,
        );
        token.expires_at = hours.map(|h| t0() + Duration::hours(h));
        ids.push(token.id.clone());
        store
            .create_token(t0(), token, secret, &unlimited(), event("token.created"))
            .await
            .unwrap();
    }
    store
        .revoke_token(at(1), &ids[0], false, token_event("token.revoked", &ids[0]))
        .await
        .unwrap();
    let user = add_user(store, &world, "counted", OrgRole::Member).await;
    let (token, secret) = token_record(
        &world.org.id,
        TokenType::Personal,
        Some(&world.workspace),
        Some(&user),
    );
    store
        .create_token(t0(), token, secret, &unlimited(), event("token.created"))
        .await
        .unwrap();
    let mut deactivate = event("user.deactivated");
    deactivate.target_type = Some("user".to_owned());
    deactivate.target_id = Some(user.id.clone());
    store
        .update_user(
            at(2),
            &user.id,
            UserPatch {
                active: Some(false),
                ..UserPatch::default()
            },
            deactivate,
        )
        .await
        .unwrap();
    let later = t0() + Duration::hours(2);
    let counts = store.count_tokens_by_type_and_state(later).await.unwrap();
    let of = |kind: TokenType, state: TokenState| {
        counts
            .iter()
            .find(|(k, s, _)| *k == kind && *s == state)
            .map(|(_, _, n)| *n)
    };
    assert_eq!(
        of(TokenType::Client, TokenState::Revoked),
        Some(1),
        "{counts:?}"
    );
    assert_eq!(
        of(TokenType::Client, TokenState::Expired),
        Some(1),
        "{counts:?}"
    );
    assert_eq!(
        of(TokenType::Client, TokenState::Active),
        Some(1),
        "{counts:?}"
    );
    assert_eq!(
        of(TokenType::Personal, TokenState::Suspended),
        Some(1),
        "{counts:?}"
    );
    assert_eq!(
        of(TokenType::Frontend, TokenState::Active),
        None,
        "{counts:?}"
    );
    assert!(counts.iter().all(|(_, _, n)| *n > 0), "{counts:?}");
    let total: u64 = counts.iter().map(|(_, _, n)| n).sum();
    assert_eq!(total, before + 4, "every token is counted once: {counts:?}");
}
