//! Webhook endpoints (org admins only): create (the secret shown once), list, read,
//! change, delete, send a test message, list deliveries, redeliver.

use latchkey_core::policy::Permission;
use latchkey_proto::{
    CreateWebhookRequest, CreatedWebhook, EventType, Page, UpdateWebhookRequest, Webhook,
    WebhookDelivery,
};
use latchkey_store::{DeliveryRecord, PageRequest, WebhookPatch, WebhookRecord};
use serde_json::json;

use crate::auth::Principal;
use crate::error::ApiError;
use crate::events::{SECRET_PURPOSE, address};
use crate::service::{check_name, page_of};
use crate::state::AppState;

/// The wire form of an endpoint (never its secret).
pub fn webhook_view(record: WebhookRecord) -> Webhook {
    Webhook {
        id: record.id,
        url: record.url,
        events: record.events,
        description: record.description,
        enabled: record.enabled,
        created_at: record.created_at,
        updated_at: record.updated_at,
    }
}

/// The wire form of a delivery to an endpoint.
pub fn delivery_view(record: DeliveryRecord) -> WebhookDelivery {
    WebhookDelivery {
        id: record.id,
        webhook_id: record.webhook_id.unwrap_or_default(),
        event_id: record.event_id,
        event_type: record.event_type,
        state: record.state,
        attempts: record.attempts,
        last_status: record.last_status,
        last_error: record.last_error,
        last_attempt_at: record.last_attempt_at,
        next_attempt_at: record.next_attempt_at,
        created_at: record.created_at,
        attempt_log: record.attempt_log,
    }
}

/// Checks a webhook's event types: at least one; sorted, without repeats.
pub fn check_events(events: &[EventType]) -> Result<Vec<EventType>, ApiError> {
    if events.is_empty() {
        return Err(ApiError::field(
            "events",
            "events must name at least one event type",
        ));
    }
    let mut events = events.to_vec();
    events.sort();
    events.dedup();
    Ok(events)
}

/// Checks a webhook's optional description (blank is none; else as [`check_name`]).
pub fn check_description(description: Option<&str>) -> Result<Option<String>, ApiError> {
    description
        .filter(|d| !d.trim().is_empty())
        .map(|d| check_name("description", d, 200))
        .transpose()
}

impl AppState {
    fn require_webhook_admin(p: &Principal) -> Result<(), ApiError> {
        p.authorize(Permission::ManageTokenSettings, None)
    }

    /// Checks a URL's form and, unless private addresses are allowed, where it leads.
    async fn check_webhook_url(&self, url: &str) -> Result<String, ApiError> {
        let parsed = address::parse_url(url).map_err(|e| ApiError::field("url", e.0))?;
        address::check_destination(&parsed, self.config.webhooks.allow_private_addresses)
            .await
            .map_err(|e| ApiError::field("url", e.0))?;
        Ok(parsed.to_string())
    }

    /// An endpoint by id (404 for malformed ids too).
    async fn webhook_record(&self, id: &str) -> Result<WebhookRecord, ApiError> {
        if !latchkey_core::is_id(id) {
            return Err(ApiError::NotFound("webhook"));
        }
        Ok(self.store.get_webhook(id).await?)
    }

    fn webhook_event(
        p: &Principal,
        action: &str,
        hook: &WebhookRecord,
    ) -> latchkey_core::NewAuditEvent {
        let mut event = p.event(action);
        event.target_type = Some("webhook".into());
        event.target_id = Some(hook.id.clone());
        event.details = json!({
            "url": hook.url,
            "events": hook.events.iter().map(|e| e.as_str()).collect::<Vec<_>>(),
        });
        event
    }

    /// `POST /api/v1/webhooks`.
    pub async fn create_webhook(
        &self,
        p: &Principal,
        req: CreateWebhookRequest,
    ) -> Result<CreatedWebhook, ApiError> {
        Self::require_webhook_admin(p)?;
        let url = self.check_webhook_url(&req.url).await?;
        let events = check_events(&req.events)?;
        let description = check_description(req.description.as_deref())?;
        let now = self.clock.now();
        let org = self.org().await?;
        let id = latchkey_core::new_id();
        let (secret, key) = latchkey_core::events::generate_secret();
        let sealed = crate::crypto::seal(&self.hash_key, SECRET_PURPOSE, id.as_bytes(), &key);
        let record = WebhookRecord {
            id,
            org_id: org.id,
            url,
            description,
            events,
            secret: sealed,
            enabled: req.enabled.unwrap_or(true),
            created_at: now,
            updated_at: now,
        };
        let event = Self::webhook_event(p, "webhook.created", &record);
        let stored = self.store.create_webhook(now, record, event).await?;
        Ok(CreatedWebhook {
            webhook: webhook_view(stored),
            secret,
        })
    }

    /// `GET /api/v1/webhooks`.
    pub async fn list_webhooks(
        &self,
        p: &Principal,
        page: &PageRequest,
    ) -> Result<Page<Webhook>, ApiError> {
        Self::require_webhook_admin(p)?;
        let org = self.org().await?;
        Ok(page_of(
            self.store.list_webhooks(&org.id, page).await?,
            webhook_view,
        ))
    }

    /// `GET /api/v1/webhooks/{id}`.
    pub async fn get_webhook(&self, p: &Principal, id: &str) -> Result<Webhook, ApiError> {
        Self::require_webhook_admin(p)?;
        Ok(webhook_view(self.webhook_record(id).await?))
    }

    /// `PATCH /api/v1/webhooks/{id}`.
    pub async fn update_webhook(
        &self,
        p: &Principal,
        id: &str,
        req: UpdateWebhookRequest,
    ) -> Result<Webhook, ApiError> {
        Self::require_webhook_admin(p)?;
        let hook = self.webhook_record(id).await?;
        let url = match &req.url {
            Some(url) => Some(self.check_webhook_url(url).await?),
            None => None,
        };
        let events = req.events.as_deref().map(check_events).transpose()?;
        let description = match &req.description {
            Some(d) => Some(check_description(d.as_deref())?),
            None => None,
        };
        let patch = WebhookPatch {
            url,
            events,
            description,
            enabled: req.enabled,
        };
        let now = self.clock.now();
        let mut event = Self::webhook_event(p, "webhook.updated", &hook);
        event.details["changed"] = json!(req);
        Ok(webhook_view(
            self.store
                .update_webhook(now, &hook.id, patch, event)
                .await?,
        ))
    }

    /// `DELETE /api/v1/webhooks/{id}` (its deliveries go too).
    pub async fn delete_webhook(&self, p: &Principal, id: &str) -> Result<(), ApiError> {
        Self::require_webhook_admin(p)?;
        let hook = self.webhook_record(id).await?;
        let event = Self::webhook_event(p, "webhook.deleted", &hook);
        self.store
            .delete_webhook(self.clock.now(), &hook.id, event)
            .await?;
        Ok(())
    }

    /// `POST /api/v1/webhooks/{id}/test`: queues a `webhook.test` message.
    pub async fn test_webhook(&self, p: &Principal, id: &str) -> Result<WebhookDelivery, ApiError> {
        Self::require_webhook_admin(p)?;
        let hook = self.webhook_record(id).await?;
        Ok(delivery_view(
            self.store
                .queue_test_delivery(self.clock.now(), &hook.id)
                .await?,
        ))
    }

    /// `GET /api/v1/webhooks/{id}/deliveries`.
    pub async fn list_webhook_deliveries(
        &self,
        p: &Principal,
        id: &str,
        page: &PageRequest,
    ) -> Result<Page<WebhookDelivery>, ApiError> {
        Self::require_webhook_admin(p)?;
        let hook = self.webhook_record(id).await?;
        Ok(page_of(
            self.store.list_deliveries(&hook.id, page).await?,
            delivery_view,
        ))
    }

    /// `POST /api/v1/webhooks/{id}/deliveries/{delivery}/redeliver`.
    pub async fn redeliver(
        &self,
        p: &Principal,
        id: &str,
        delivery_id: &str,
    ) -> Result<WebhookDelivery, ApiError> {
        Self::require_webhook_admin(p)?;
        let hook = self.webhook_record(id).await?;
        if !latchkey_core::is_id(delivery_id) {
            return Err(ApiError::NotFound("delivery"));
        }
        let delivery = self.store.get_delivery(delivery_id).await?;
        if delivery.webhook_id.as_deref() != Some(hook.id.as_str()) {
            return Err(ApiError::NotFound("delivery"));
        }
        Ok(delivery_view(
            self.store.redeliver(self.clock.now(), &delivery.id).await?,
        ))
    }
}
