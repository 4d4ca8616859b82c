//! Lifecycle events and webhook endpoints (DESIGN.md §8 "Lifecycle events").

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

/// A lifecycle event type that webhooks subscribe to.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
pub enum EventType {
    /// A token was created.
    #[serde(rename = "token.created")]
    TokenCreated,
    /// A token was revoked by its owner or an admin.
    #[serde(rename = "token.revoked")]
    TokenRevoked,
    /// A revoked token was re-approved.
    #[serde(rename = "token.restored")]
    TokenRestored,
    /// A token got a new secret.
    #[serde(rename = "token.rotated")]
    TokenRotated,
    /// A token was deleted.
    #[serde(rename = "token.deleted")]
    TokenDeleted,
    /// A token expires in 30, 7 or 1 days (`data.days_left`); once per threshold.
    #[serde(rename = "token.expiring")]
    TokenExpiring,
    /// A token expired.
    #[serde(rename = "token.expired")]
    TokenExpired,
    /// A token was revoked by a leak report.
    #[serde(rename = "token.leaked")]
    TokenLeaked,
    /// A recoverable token's secret was revealed.
    #[serde(rename = "token.revealed")]
    TokenRevealed,
    /// A user was deactivated.
    #[serde(rename = "user.deactivated")]
    UserDeactivated,
    /// A user was reactivated.
    #[serde(rename = "user.reactivated")]
    UserReactivated,
}

impl EventType {
    /// Every type, in the order the docs and the console list them.
    pub const ALL: [EventType; 11] = [
        EventType::TokenCreated,
        EventType::TokenRevoked,
        EventType::TokenRestored,
        EventType::TokenRotated,
        EventType::TokenDeleted,
        EventType::TokenExpiring,
        EventType::TokenExpired,
        EventType::TokenLeaked,
        EventType::TokenRevealed,
        EventType::UserDeactivated,
        EventType::UserReactivated,
    ];

    /// The wire name (`token.created`, ...), which is also the audit event's action.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::TokenCreated => "token.created",
            EventType::TokenRevoked => "token.revoked",
            EventType::TokenRestored => "token.restored",
            EventType::TokenRotated => "token.rotated",
            EventType::TokenDeleted => "token.deleted",
            EventType::TokenExpiring => "token.expiring",
            EventType::TokenExpired => "token.expired",
            EventType::TokenLeaked => "token.leaked",
            EventType::TokenRevealed => "token.revealed",
            EventType::UserDeactivated => "user.deactivated",
            EventType::UserReactivated => "user.reactivated",
        }
    }

    /// Parses a wire name.
    pub fn parse(name: &str) -> Option<EventType> {
        EventType::ALL.into_iter().find(|t| t.as_str() == name)
    }
}

/// The type of the message `POST /api/v1/webhooks/{id}/test` sends (never subscribed to).
pub const TEST_EVENT_TYPE: &str = "webhook.test";

/// A webhook endpoint. Its signing secret is shown only when it is created.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Webhook {
    /// UUIDv7.
    pub id: String,
    /// Where deliveries are POSTed (`http` or `https`).
    pub url: String,
    /// The event types delivered to it.
    pub events: Vec<EventType>,
    /// Free text.
    pub description: Option<String>,
    /// `false`: no new deliveries are made for it (pending ones are kept).
    pub enabled: bool,
    /// Creation time.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Last change.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// The answer to `POST /api/v1/webhooks`: the endpoint plus its signing secret, once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CreatedWebhook {
    /// The endpoint.
    #[serde(flatten)]
    pub webhook: Webhook,
    /// `whsec_` + base64 of 32 random bytes: the Standard Webhooks signing secret. Shown
    /// only here.
    pub secret: String,
}

/// `POST /api/v1/webhooks`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhookRequest {
    /// `http://` or `https://` URL, at most 2000 characters. Loopback, private,
    /// link-local and metadata addresses are refused unless the server allows them.
    pub url: String,
    /// At least one event type.
    pub events: Vec<EventType>,
    /// Free text, at most 200 characters.
    #[serde(default)]
    pub description: Option<String>,
    /// Default `true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
}

/// `PATCH /api/v1/webhooks/{id}`: only the fields present change.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateWebhookRequest {
    /// New URL (checked as on create).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// New event types (at least one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<Vec<EventType>>,
    /// New description (`null` clears it).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::double_option"
    )]
    #[schema(value_type = Option<String>)]
    pub description: Option<Option<String>>,
    /// Pause (`false`) or resume (`true`) deliveries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    /// Not yet delivered; `next_attempt_at` says when it is tried next.
    Pending,
    /// The receiver answered 2xx.
    Delivered,
    /// Every attempt for 24 h failed; `redeliver` tries again.
    Failed,
}

impl DeliveryState {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Delivered => "delivered",
            DeliveryState::Failed => "failed",
        }
    }

    /// Parses a wire name.
    pub fn parse(name: &str) -> Option<DeliveryState> {
        [
            DeliveryState::Pending,
            DeliveryState::Delivered,
            DeliveryState::Failed,
        ]
        .into_iter()
        .find(|s| s.as_str() == name)
    }
}

/// One try at delivering a message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DeliveryAttempt {
    /// When it was made.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// The receiver's HTTP status (`null`: no answer).
    pub status: Option<u16>,
    /// Why it failed (`timeout`, `connection refused`, `HTTP 503`, ...); `null` on success.
    pub error: Option<String>,
}

/// One message to one endpoint, with its attempts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct WebhookDelivery {
    /// UUIDv7.
    pub id: String,
    /// The endpoint.
    pub webhook_id: String,
    /// The message's id: the `webhook-id` header, the same on every attempt and redelivery.
    pub event_id: String,
    /// `token.created`, ..., or `webhook.test`.
    pub event_type: String,
    /// Where it stands.
    pub state: DeliveryState,
    /// How many attempts were made.
    pub attempts: u32,
    /// The last attempt's HTTP status (`null`: none yet, or no answer).
    pub last_status: Option<u16>,
    /// The last attempt's error.
    pub last_error: Option<String>,
    /// When the last attempt was made.
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_attempt_at: Option<OffsetDateTime>,
    /// When it is tried next (`null` once delivered or failed).
    #[serde(with = "time::serde::rfc3339::option")]
    pub next_attempt_at: Option<OffsetDateTime>,
    /// When the message was queued.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// The latest attempts, oldest first (at most 20 are kept).
    pub attempt_log: Vec<DeliveryAttempt>,
}
