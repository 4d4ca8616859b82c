//! Records of lifecycle events: webhook endpoints, deliveries and their claims.
//!
//! The outbox is written by the store itself: every audit event whose action is a
//! lifecycle event type ([`latchkey_core::events::event_type_of`]) also writes the event
//! (with a snapshot of its token or user) and one delivery per subscribed, enabled
//! endpoint — and, for the events owners are told about, one email delivery to the
//! owner's address — in the same transaction as the change. Nodes then claim due
//! deliveries with a lease ([`crate::Store::claim_deliveries`]) and record each attempt.

use latchkey_proto::{DeliveryAttempt, DeliveryState, EventType};
use time::OffsetDateTime;

/// A webhook endpoint as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookRecord {
    /// Id.
    pub id: String,
    /// Organization.
    pub org_id: String,
    /// Where to POST.
    pub url: String,
    /// Free text.
    pub description: Option<String>,
    /// Subscribed event types.
    pub events: Vec<EventType>,
    /// The signing key, encrypted by the caller (the store never sees it in clear).
    pub secret: Vec<u8>,
    /// Whether new events are delivered to it.
    pub enabled: bool,
    /// Creation time.
    pub created_at: OffsetDateTime,
    /// Last change.
    pub updated_at: OffsetDateTime,
}

/// A partial update of a webhook endpoint.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WebhookPatch {
    /// New URL.
    pub url: Option<String>,
    /// New event types.
    pub events: Option<Vec<EventType>>,
    /// New description (`Some(None)` clears).
    pub description: Option<Option<String>>,
    /// Pause or resume.
    pub enabled: Option<bool>,
}

/// Where a delivery goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Channel {
    /// A webhook endpoint.
    Webhook,
    /// An email to a token's owner.
    Email,
}

impl Channel {
    /// Column value.
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Webhook => "webhook",
            Channel::Email => "email",
        }
    }

    /// Parses a column value.
    pub fn parse(text: &str) -> Option<Channel> {
        match text {
            "webhook" => Some(Channel::Webhook),
            "email" => Some(Channel::Email),
            _ => None,
        }
    }
}

/// One message to one recipient, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryRecord {
    /// Id.
    pub id: String,
    /// Webhook or email.
    pub channel: Channel,
    /// The endpoint (webhook deliveries).
    pub webhook_id: Option<String>,
    /// The address (email deliveries).
    pub recipient: Option<String>,
    /// The event (its id is the `webhook-id`).
    pub event_id: String,
    /// The event's type (`token.created`, ..., `webhook.test`).
    pub event_type: String,
    /// Where it stands.
    pub state: DeliveryState,
    /// Attempts made.
    pub attempts: u32,
    /// Last HTTP status.
    pub last_status: Option<u16>,
    /// Last error.
    pub last_error: Option<String>,
    /// Last attempt.
    pub last_attempt_at: Option<OffsetDateTime>,
    /// Next attempt (pending only).
    pub next_attempt_at: Option<OffsetDateTime>,
    /// The latest attempts, oldest first.
    pub attempt_log: Vec<DeliveryAttempt>,
    /// Queued at.
    pub created_at: OffsetDateTime,
    /// Retries stop after this instant.
    pub give_up_at: OffsetDateTime,
}

/// A delivery a node claimed, with what it needs to make the attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimedDelivery {
    /// The delivery.
    pub delivery: DeliveryRecord,
    /// The whole JSON message.
    pub body: String,
    /// When the event happened.
    pub event_created_at: OffsetDateTime,
    /// The endpoint's URL (webhook deliveries whose endpoint still exists).
    pub url: Option<String>,
    /// The endpoint's encrypted signing key.
    pub secret: Option<Vec<u8>>,
}

/// What became of an attempt.
#[derive(Debug, Clone, PartialEq)]
pub enum AttemptResult {
    /// Delivered: done.
    Delivered,
    /// Failed; try again at this instant.
    RetryAt(OffsetDateTime),
    /// Failed, and the delivery's window has closed: mark it failed.
    GiveUp,
}

/// A lifecycle event one store call wrote (the sweep reports what it sent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpiryNotice {
    /// The token.
    pub token_id: String,
    /// The threshold (30, 7 or 1).
    pub days_before: u32,
    /// Whole days left, rounded up.
    pub days_left: i64,
}
