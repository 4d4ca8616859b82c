//! Lifecycle events in SQL: the outbox written beside every audit event that is a
//! lifecycle event ([`outbox`], called by `ops::audit` inside the change's transaction),
//! webhook endpoints, delivery claims by lease, attempts, expiry notices.
//!
//! Claims are portable: a plain `SELECT` finds due rows, then one conditional `UPDATE` per
//! row takes the lease only if nobody holds a live one (`lease_until <= now`), so two
//! nodes never both win a row — no `FOR UPDATE SKIP LOCKED`, which distributed
//! PostgreSQL-compatible engines do not all offer.

use latchkey_core::events::{
    ATTEMPT_LOG_LEN, DELIVERY_WINDOW, emails_owner, event_type_of, expiry_notice_due,
};
use latchkey_core::model::StateContext;
use latchkey_core::{NewAuditEvent, StoredState, from_unix, new_id};
use latchkey_proto::{DeliveryAttempt, DeliveryState, EventType, TEST_EVENT_TYPE};
use serde_json::{Map, Value, json};
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};

use super::driver::{Arg, Conn, Fetch, SqlRow};
use super::{SqlBackend, ops, rows};
use crate::{
    AttemptResult, Channel, ClaimedDelivery, DeliveryRecord, ExpiryNotice, StoreError, StoreResult,
    WebhookPatch, WebhookRecord,
};

/// Columns of a webhook row.
pub(crate) const WEBHOOK_SELECT: &str = "SELECT id, org_id, url, description, events, secret, \
     enabled, created_at, updated_at FROM webhooks";

/// Columns of a delivery row.
pub(crate) const DELIVERY_SELECT: &str = "SELECT id, channel, webhook_id, recipient, event_id, \
     event_type, state, attempts, last_status, last_error, last_attempt_at, next_attempt_at, \
     attempt_log, created_at, give_up_at FROM deliveries";

/// At most this many tokens get an expiry notice per sweep call (the sweep calls again).
const NOTICE_BATCH: i64 = 500;

fn secs(t: OffsetDateTime) -> i64 {
    t.unix_timestamp()
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

fn json_text<T: serde::Serialize + ?Sized>(value: &T) -> StoreResult<String> {
    serde_json::to_string(value).map_err(|e| StoreError::Internal(format!("JSON encoding: {e}")))
}

// --- rows ---------------------------------------------------------------------------

/// A webhook endpoint.
pub(crate) fn webhook(row: &impl SqlRow) -> StoreResult<WebhookRecord> {
    let events: String = rows::get(row, "events")?;
    Ok(WebhookRecord {
        id: rows::get(row, "id")?,
        org_id: rows::get(row, "org_id")?,
        url: rows::get(row, "url")?,
        description: rows::get(row, "description")?,
        events: serde_json::from_str(&events).map_err(|_| rows::corrupt("events", &events))?,
        secret: rows::get(row, "secret")?,
        enabled: rows::get(row, "enabled")?,
        created_at: from_unix(rows::get(row, "created_at")?),
        updated_at: from_unix(rows::get(row, "updated_at")?),
    })
}

/// A delivery.
pub(crate) fn delivery(row: &impl SqlRow) -> StoreResult<DeliveryRecord> {
    let channel: String = rows::get(row, "channel")?;
    let state: String = rows::get(row, "state")?;
    let log: String = rows::get(row, "attempt_log")?;
    let attempts: i64 = rows::get(row, "attempts")?;
    let status: Option<i64> = rows::get(row, "last_status")?;
    Ok(DeliveryRecord {
        id: rows::get(row, "id")?,
        channel: Channel::parse(&channel).ok_or_else(|| rows::corrupt("channel", &channel))?,
        webhook_id: rows::get(row, "webhook_id")?,
        recipient: rows::get(row, "recipient")?,
        event_id: rows::get(row, "event_id")?,
        event_type: rows::get(row, "event_type")?,
        state: DeliveryState::parse(&state)
            .ok_or_else(|| rows::corrupt("delivery state", &state))?,
        attempts: u32::try_from(attempts).map_err(|_| rows::corrupt("attempts", attempts))?,
        last_status: status.and_then(|s| u16::try_from(s).ok()),
        last_error: rows::get(row, "last_error")?,
        last_attempt_at: rows::get::<Option<i64>>(row, "last_attempt_at")?.map(from_unix),
        next_attempt_at: rows::get::<Option<i64>>(row, "next_attempt_at")?.map(from_unix),
        attempt_log: serde_json::from_str(&log).map_err(|_| rows::corrupt("attempt log", &log))?,
        created_at: from_unix(rows::get(row, "created_at")?),
        give_up_at: from_unix(rows::get(row, "give_up_at")?),
    })
}

// --- the outbox ---------------------------------------------------------------------

/// What to queue a delivery for.
struct Recipient<'a> {
    channel: Channel,
    webhook_id: Option<&'a str>,
    address: Option<&'a str>,
}

async fn insert_delivery<B: SqlBackend>(
    conn: &mut Conn<'_, B>,
    now: OffsetDateTime,
    recipient: Recipient<'_>,
    event_id: &str,
    event_type: &str,
) -> StoreResult<String> {
    let id = new_id();
    sqlx::query(
        "INSERT INTO deliveries (id, channel, webhook_id, recipient, event_id, event_type, \
         state, attempts, next_attempt_at, attempt_log, created_at, give_up_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, 0, $8, '[]', $9, $10)",
    )
    .arg(id.as_str())
    .arg(recipient.channel.as_str())
    .arg(recipient.webhook_id)
    .arg(recipient.address)
    .arg(event_id)
    .arg(event_type)
    .arg(DeliveryState::Pending.as_str())
    .arg(secs(now))
    .arg(secs(now))
    .arg(secs(now + DELIVERY_WINDOW))
    .run(conn)
    .await?;
    Ok(id)
}

async fn insert_event<B: SqlBackend>(
    conn: &mut Conn<'_, B>,
    now: OffsetDateTime,
    event_type: &str,
    data: Value,
) -> StoreResult<String> {
    let id = new_id();
    let body = json!({"type": event_type, "timestamp": rfc3339(now), "data": data});
    sqlx::query(
        "INSERT INTO lifecycle_events (id, event_type, body, created_at) VALUES ($1, $2, $3, $4)",
    )
    .arg(id.as_str())
    .arg(event_type)
    .arg(json_text(&body)?)
    .arg(secs(now))
    .run(conn)
    .await?;
    Ok(id)
}

/// The token's wire form as the event shows it (state derived as a read would).
async fn token_snapshot<B: SqlBackend>(
    conn: &mut Conn<'_, B>,
    now: OffsetDateTime,
    id: &str,
) -> StoreResult<Option<(Value, Option<String>)>> {
    let token = match ops::load_token(conn, id).await {
        Ok(token) => token,
        Err(StoreError::NotFound(_)) => return Ok(None),
        Err(e) => return Err(e),
    };
    let owner = match &token.owner_id {
        Some(owner) => match ops::load_user(conn, owner).await {
            Ok(user) => Some(user),
            Err(StoreError::NotFound(_)) => None,
            Err(e) => return Err(e),
        },
        None => None,
    };
    let enabled: Option<i64> = sqlx::query("SELECT enabled_types FROM orgs WHERE id = $1")
        .arg(token.org_id.as_str())
        .optional_scalar(conn)
        .await?;
    let ctx = StateContext {
        owner_active: owner.as_ref().is_none_or(|u| u.active),
        type_enabled: enabled.is_none_or(|bits| bits & i64::from(token.token_type.bit()) != 0),
    };
    let email = owner.and_then(|u| u.email);
    let view = serde_json::to_value(token.to_proto(now, ctx))
        .map_err(|e| StoreError::Internal(format!("JSON encoding: {e}")))?;
    Ok(Some((view, email)))
}

/// Writes the lifecycle event an audit event is (if it is one), with one delivery per
/// enabled endpoint subscribed to its type and, for the events owners are told about, an
/// email delivery to the owner's address. Runs inside the change's transaction, so the
/// event exists exactly when the change does.
pub(crate) async fn outbox<B: SqlBackend>(
    conn: &mut Conn<'_, B>,
    now: OffsetDateTime,
    event: &NewAuditEvent,
) -> StoreResult<()> {
    let Some(kind) = event_type_of(&event.action) else {
        return Ok(());
    };
    let mut data = Map::new();
    let mut owner_email = None;
    let target = event.target_id.as_deref();
    match (event.target_type.as_deref(), target) {
        (Some("token"), Some(id)) => {
            let snapshot = token_snapshot(conn, now, id).await?;
            let view = match snapshot {
                Some((view, email)) => {
                    owner_email = email;
                    view
                }
                None => json!({"id": id}),
            };
            data.insert("token".into(), view);
        }
        (Some("user"), Some(id)) => {
            let view = match ops::load_user(conn, id).await {
                Ok(user) => serde_json::to_value(user.to_proto())
                    .map_err(|e| StoreError::Internal(format!("JSON encoding: {e}")))?,
                Err(StoreError::NotFound(_)) => json!({"id": id}),
                Err(e) => return Err(e),
            };
            data.insert("user".into(), view);
        }
        _ => {}
    }
    data.insert(
        "actor".into(),
        json!({"user_id": event.actor_id, "token_id": event.actor_token_id, "ip": event.ip}),
    );
    if let Value::Object(details) = &event.details {
        for (key, value) in details {
            data.entry(key.clone()).or_insert_with(|| value.clone());
        }
    }
    let event_id = insert_event(conn, now, kind.as_str(), Value::Object(data)).await?;
    let endpoints = sqlx::query("SELECT id, events FROM webhooks WHERE enabled = $1 ORDER BY id")
        .arg(true)
        .all(conn)
        .await?;
    for row in endpoints {
        let id: String = rows::get(&row, "id")?;
        let events: String = rows::get(&row, "events")?;
        let events: Vec<EventType> =
            serde_json::from_str(&events).map_err(|_| rows::corrupt("events", &events))?;
        if events.contains(&kind) {
            let to = Recipient {
                channel: Channel::Webhook,
                webhook_id: Some(&id),
                address: None,
            };
            insert_delivery(conn, now, to, &event_id, kind.as_str()).await?;
        }
    }
    let notify = emails_owner(
        kind,
        event.actor_id.as_deref(),
        event.subject_user_id.as_deref(),
    );
    if let Some(address) = owner_email.filter(|_| notify) {
        let to = Recipient {
            channel: Channel::Email,
            webhook_id: None,
            address: Some(&address),
        };
        insert_delivery(conn, now, to, &event_id, kind.as_str()).await?;
    }
    Ok(())
}

// --- endpoints ----------------------------------------------------------------------

/// One webhook endpoint, inside the transaction.
pub(crate) async fn load_webhook<B: SqlBackend>(
    conn: &mut Conn<'_, B>,
    id: &str,
) -> StoreResult<WebhookRecord> {
    let row = sqlx::query(&format!("{WEBHOOK_SELECT} WHERE id = $1"))
        .arg(id)
        .optional(conn)
        .await?
        .ok_or(StoreError::NotFound("webhook"))?;
    webhook(&row)
}

/// One delivery, inside the transaction.
pub(crate) async fn load_delivery<B: SqlBackend>(
    conn: &mut Conn<'_, B>,
    id: &str,
) -> StoreResult<DeliveryRecord> {
    let row = sqlx::query(&format!("{DELIVERY_SELECT} WHERE id = $1"))
        .arg(id)
        .optional(conn)
        .await?
        .ok_or(StoreError::NotFound("delivery"))?;
    delivery(&row)
}

/// Creates an endpoint.
pub(crate) async fn create_webhook<B: SqlBackend>(
    conn: &mut Conn<'_, B>,
    now: OffsetDateTime,
    hook: &WebhookRecord,
    event: &NewAuditEvent,
) -> StoreResult<WebhookRecord> {
    sqlx::query(
        "INSERT INTO webhooks (id, org_id, url, description, events, secret, enabled, \
         created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .arg(&hook.id)
    .arg(&hook.org_id)
    .arg(&hook.url)
    .arg(&hook.description)
    .arg(json_text(&hook.events)?)
    .arg(&hook.secret)
    .arg(hook.enabled)
    .arg(secs(hook.created_at))
    .arg(secs(hook.updated_at))
    .run(conn)
    .await?;
    ops::audit(conn, now, event).await?;
    load_webhook(conn, &hook.id).await
}

/// Applies a patch to an endpoint.
pub(crate) async fn update_webhook<B: SqlBackend>(
    conn: &mut Conn<'_, B>,
    now: OffsetDateTime,
    id: &str,
    patch: &WebhookPatch,
    event: &NewAuditEvent,
) -> StoreResult<WebhookRecord> {
    let mut hook = load_webhook(conn, id).await?;
    if let Some(url) = &patch.url {
        hook.url.clone_from(url);
    }
    if let Some(events) = &patch.events {
        hook.events.clone_from(events);
    }
    if let Some(description) = &patch.description {
        hook.description.clone_from(description);
    }
    if let Some(enabled) = patch.enabled {
        hook.enabled = enabled;
    }
    sqlx::query(
        "UPDATE webhooks SET url = $1, events = $2, description = $3, enabled = $4, \
         updated_at = $5 WHERE id = $6",
    )
    .arg(&hook.url)
    .arg(json_text(&hook.events)?)
    .arg(&hook.description)
    .arg(hook.enabled)
    .arg(secs(now))
    .arg(id)
    .run(conn)
    .await?;
    ops::audit(conn, now, event).await?;
    load_webhook(conn, id).await
}

/// Deletes an endpoint and its deliveries.
pub(crate) async fn delete_webhook<B: SqlBackend>(
    conn: &mut Conn<'_, B>,
    now: OffsetDateTime,
    id: &str,
    event: &NewAuditEvent,
) -> StoreResult<()> {
    let deleted = sqlx::query("DELETE FROM webhooks WHERE id = $1")
        .arg(id)
        .run(conn)
        .await?;
    if deleted == 0 {
        return Err(StoreError::NotFound("webhook"));
    }
    sqlx::query("DELETE FROM deliveries WHERE webhook_id = $1")
        .arg(id)
        .run(conn)
        .await?;
    ops::audit(conn, now, event).await
}

/// Queues a `webhook.test` message to one endpoint.
pub(crate) async fn queue_test_delivery<B: SqlBackend>(
    conn: &mut Conn<'_, B>,
    now: OffsetDateTime,
    webhook_id: &str,
) -> StoreResult<DeliveryRecord> {
    let hook = load_webhook(conn, webhook_id).await?;
    let data = json!({"webhook": {"id": hook.id, "url": hook.url}});
    let event_id = insert_event(conn, now, TEST_EVENT_TYPE, data).await?;
    let to = Recipient {
        channel: Channel::Webhook,
        webhook_id: Some(webhook_id),
        address: None,
    };
    let id = insert_delivery(conn, now, to, &event_id, TEST_EVENT_TYPE).await?;
    load_delivery(conn, &id).await
}

/// Queues the same message (same event, so the same `webhook-id`) to the same recipient
/// again, as a new delivery with a fresh 24 h window.
pub(crate) async fn redeliver<B: SqlBackend>(
    conn: &mut Conn<'_, B>,
    now: OffsetDateTime,
    delivery_id: &str,
) -> StoreResult<DeliveryRecord> {
    let old = load_delivery(conn, delivery_id).await?;
    let to = Recipient {
        channel: old.channel,
        webhook_id: old.webhook_id.as_deref(),
        address: old.recipient.as_deref(),
    };
    let id = insert_delivery(conn, now, to, &old.event_id, &old.event_type).await?;
    load_delivery(conn, &id).await
}

// --- claims and attempts ------------------------------------------------------------

/// Takes the lease of each of `ids` that nobody holds a live lease on, and returns what
/// was won, with what an attempt needs.
pub(crate) async fn claim<B: SqlBackend>(
    conn: &mut Conn<'_, B>,
    now: OffsetDateTime,
    node: &str,
    lease_until: OffsetDateTime,
    ids: &[String],
) -> StoreResult<Vec<ClaimedDelivery>> {
    let mut won = Vec::new();
    for id in ids {
        let taken = sqlx::query(
            "UPDATE deliveries SET lease_owner = $1, lease_until = $2 WHERE id = $3 \
             AND state = $4 AND next_attempt_at <= $5 \
             AND (lease_until IS NULL OR lease_until <= $6)",
        )
        .arg(node)
        .arg(secs(lease_until))
        .arg(id.as_str())
        .arg(DeliveryState::Pending.as_str())
        .arg(secs(now))
        .arg(secs(now))
        .run(conn)
        .await?;
        if taken == 0 {
            continue;
        }
        let row = sqlx::query(
            "SELECT d.id, d.channel, d.webhook_id, d.recipient, d.event_id, d.event_type, \
             d.state, d.attempts, d.last_status, d.last_error, d.last_attempt_at, \
             d.next_attempt_at, d.attempt_log, d.created_at, d.give_up_at, e.body, \
             e.created_at AS event_created_at FROM deliveries d \
             JOIN lifecycle_events e ON e.id = d.event_id WHERE d.id = $1",
        )
        .arg(id.as_str())
        .one(conn)
        .await?;
        let record = delivery(&row)?;
        let endpoint = match record.webhook_id.as_deref() {
            Some(webhook_id) => match load_webhook(conn, webhook_id).await {
                Ok(hook) => Some(hook),
                Err(StoreError::NotFound(_)) => None,
                Err(e) => return Err(e),
            },
            None => None,
        };
        won.push(ClaimedDelivery {
            delivery: record,
            body: rows::get(&row, "body")?,
            event_created_at: from_unix(rows::get(&row, "event_created_at")?),
            url: endpoint.as_ref().map(|hook| hook.url.clone()),
            secret: endpoint.map(|hook| hook.secret),
        });
    }
    Ok(won)
}

/// Records an attempt of a delivery this node holds the lease of; `false` when it does not
/// (the lease ran out and another node took it, or the delivery is gone).
pub(crate) async fn finish_attempt<B: SqlBackend>(
    conn: &mut Conn<'_, B>,
    id: &str,
    node: &str,
    attempt: &DeliveryAttempt,
    result: &AttemptResult,
) -> StoreResult<bool> {
    let log: Option<String> = sqlx::query(
        "SELECT attempt_log FROM deliveries WHERE id = $1 AND lease_owner = $2 AND state = $3",
    )
    .arg(id)
    .arg(node)
    .arg(DeliveryState::Pending.as_str())
    .optional_scalar(conn)
    .await?;
    let Some(log) = log else {
        return Ok(false);
    };
    let mut log: Vec<DeliveryAttempt> =
        serde_json::from_str(&log).map_err(|_| rows::corrupt("attempt log", &log))?;
    log.push(attempt.clone());
    if log.len() > ATTEMPT_LOG_LEN {
        log.drain(..log.len() - ATTEMPT_LOG_LEN);
    }
    let (state, next) = match result {
        AttemptResult::Delivered => (DeliveryState::Delivered, None),
        AttemptResult::RetryAt(at) => (DeliveryState::Pending, Some(secs(*at))),
        AttemptResult::GiveUp => (DeliveryState::Failed, None),
    };
    sqlx::query(
        "UPDATE deliveries SET attempts = attempts + 1, last_status = $1, last_error = $2, \
         last_attempt_at = $3, attempt_log = $4, state = $5, next_attempt_at = $6, \
         lease_owner = NULL, lease_until = NULL WHERE id = $7",
    )
    .arg(attempt.status.map(i64::from))
    .arg(attempt.error.as_deref())
    .arg(secs(attempt.at))
    .arg(json_text(&log)?)
    .arg(state.as_str())
    .arg(next)
    .arg(id)
    .run(conn)
    .await?;
    Ok(true)
}

// --- expiry notices -----------------------------------------------------------------

/// Writes `token.expiring` for every active token whose next notice is due (see
/// [`expiry_notice_due`]) and was not sent yet for its current expiry.
pub(crate) async fn send_expiry_notices<B: SqlBackend>(
    conn: &mut Conn<'_, B>,
    now: OffsetDateTime,
) -> StoreResult<Vec<ExpiryNotice>> {
    let horizon = now + Duration::days(30);
    let found = sqlx::query(
        "SELECT t.id, t.owner_id, t.workspace_id, t.name, t.token_type, t.created_at, \
         t.expires_at, (SELECT MIN(n.days_before) FROM expiry_notices n \
         WHERE n.token_id = t.id AND n.expires_at = t.expires_at) AS sent \
         FROM tokens t WHERE t.state = $1 AND t.expires_at > $2 AND t.expires_at <= $3 \
         ORDER BY t.expires_at, t.id",
    )
    .arg(StoredState::Active.as_str())
    .arg(secs(now))
    .arg(secs(horizon))
    .all(conn)
    .await?;
    let mut sent = Vec::new();
    for row in found {
        if sent.len() as i64 >= NOTICE_BATCH {
            break;
        }
        let created_at = from_unix(rows::get(&row, "created_at")?);
        let expires: i64 = rows::get(&row, "expires_at")?;
        let expires_at = from_unix(expires);
        let Some(days_before) = expiry_notice_due(created_at, expires_at, now) else {
            continue;
        };
        let already: Option<i64> = rows::get(&row, "sent")?;
        if already.is_some_and(|smallest| smallest <= i64::from(days_before)) {
            continue;
        }
        let token_id: String = rows::get(&row, "id")?;
        let inserted = sqlx::query(
            "INSERT INTO expiry_notices (token_id, expires_at, days_before, created_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (token_id, expires_at, days_before) DO NOTHING",
        )
        .arg(token_id.as_str())
        .arg(expires)
        .arg(i64::from(days_before))
        .arg(secs(now))
        .run(conn)
        .await?;
        if inserted == 0 {
            continue;
        }
        let days_left = latchkey_core::events::days_left(expires_at, now);
        let name: String = rows::get(&row, "name")?;
        let token_type: String = rows::get(&row, "token_type")?;
        let event = NewAuditEvent {
            action: EventType::TokenExpiring.as_str().to_owned(),
            target_type: Some("token".to_owned()),
            target_id: Some(token_id.clone()),
            workspace_id: rows::get(&row, "workspace_id")?,
            subject_user_id: rows::get(&row, "owner_id")?,
            details: json!({
                "days_left": days_left,
                "days_before": days_before,
                "expires_at": rfc3339(expires_at),
                "name": name,
                "type": token_type,
            }),
            ..NewAuditEvent::default()
        };
        ops::audit(conn, now, &event).await?;
        sent.push(ExpiryNotice {
            token_id,
            days_before,
            days_left,
        });
    }
    Ok(sent)
}

/// Deletes deliveries queued before `before` and the events no delivery refers to any
/// more, and expiry notices of expiries before `before`.
pub(crate) async fn purge_deliveries<B: SqlBackend>(
    conn: &mut Conn<'_, B>,
    before: OffsetDateTime,
) -> StoreResult<u64> {
    let deliveries = sqlx::query("DELETE FROM deliveries WHERE created_at < $1")
        .arg(secs(before))
        .run(conn)
        .await?;
    sqlx::query(
        "DELETE FROM lifecycle_events WHERE created_at < $1 AND NOT EXISTS \
         (SELECT 1 FROM deliveries d WHERE d.event_id = lifecycle_events.id)",
    )
    .arg(secs(before))
    .run(conn)
    .await?;
    sqlx::query("DELETE FROM expiry_notices WHERE expires_at < $1")
        .arg(secs(before))
        .run(conn)
        .await?;
    Ok(deliveries)
}
