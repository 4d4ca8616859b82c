//! Lifecycle events on the server: the delivery worker (webhooks and email), the expiry
//! notice sweep, and their metrics.
//!
//! The events themselves are written by the store, in the transaction of each change (see
//! `latchkey_store::events`). Every node runs [`run`]: it claims due deliveries with a
//! lease, makes each attempt (a Standard Webhooks signed POST, or an email), and records
//! the outcome; a failed attempt is retried with backoff for 24 h, then marked failed.
//! A node that dies holding claims leaves them to the others once the lease runs out, so a
//! delivery may be repeated — always with the same `webhook-id` — but never lost.

pub mod address;
pub mod email;

use std::collections::HashSet;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use latchkey_core::events::{next_attempt, sign};
use latchkey_proto::DeliveryAttempt;
use latchkey_store::{AttemptResult, Channel, ClaimedDelivery};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::state::AppState;

/// The AEAD purpose webhook signing keys are sealed under.
pub const SECRET_PURPOSE: &str = "webhook-secret";

/// How long shutdown waits for attempts in flight before leaving them to their leases.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// `latchkey_tokens_expiring` windows: label and seconds.
pub const EXPIRING_WINDOWS: [(&str, i64); 3] =
    [("1d", 86_400), ("7d", 7 * 86_400), ("30d", 30 * 86_400)];

/// Delivery outcomes and the expiring-token gauge, rendered into `/metrics`.
#[derive(Debug, Default)]
pub struct EventMetrics {
    /// Attempts that were accepted.
    pub delivered: AtomicU64,
    /// Attempts that failed and will be retried.
    pub retried: AtomicU64,
    /// Deliveries given up after 24 h (or refused for good).
    pub failed: AtomicU64,
    /// Emails accepted by the SMTP server.
    pub emails_sent: AtomicU64,
    /// Active tokens expiring within each of [`EXPIRING_WINDOWS`] (as of the last sweep).
    pub expiring: [AtomicU64; 3],
}

impl EventMetrics {
    /// Appends the series in the Prometheus text format.
    pub fn render(&self, out: &mut String) {
        out.push_str(
            "# HELP latchkey_webhook_deliveries_total Webhook delivery attempts by outcome.\n\
             # TYPE latchkey_webhook_deliveries_total counter\n",
        );
        for (label, value) in [
            ("delivered", &self.delivered),
            ("retried", &self.retried),
            ("failed", &self.failed),
        ] {
            let _ = writeln!(
                out,
                "latchkey_webhook_deliveries_total{{outcome=\"{label}\"}} {}",
                value.load(Ordering::Relaxed)
            );
        }
        out.push_str(
            "# HELP latchkey_tokens_expiring Active tokens expiring within the window.\n\
             # TYPE latchkey_tokens_expiring gauge\n",
        );
        for (i, (label, _)) in EXPIRING_WINDOWS.iter().enumerate() {
            let _ = writeln!(
                out,
                "latchkey_tokens_expiring{{within=\"{label}\"}} {}",
                self.expiring[i].load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(
            out,
            "# HELP latchkey_email_notices_sent_total Owner notices accepted by the SMTP server.\n\
             # TYPE latchkey_email_notices_sent_total counter\nlatchkey_email_notices_sent_total {}",
            self.emails_sent.load(Ordering::Relaxed)
        );
    }
}

/// What the worker needs besides the state.
struct Worker {
    state: AppState,
    node: String,
    client: reqwest::Client,
    mailer: Option<Arc<email::Mailer>>,
    /// Deliveries this node is attempting now. A lease can run out during an attempt (a
    /// slow endpoint, or a clock moved on), and this node's next claim would then take the
    /// same delivery again: it is skipped here, so a node never repeats its own attempt
    /// (the running one records the outcome; the claim only renewed its lease).
    attempting: Mutex<HashSet<String>>,
}

/// Takes a delivery off [`Worker::attempting`] when its attempt ends, however it ends.
struct Attempting<'a> {
    worker: &'a Worker,
    id: String,
}

impl Drop for Attempting<'_> {
    fn drop(&mut self) {
        if let Ok(mut ids) = self.worker.attempting.lock() {
            ids.remove(&self.id);
        }
    }
}

/// Runs the delivery worker and the expiry-notice sweep until `stop` turns true, then
/// gives attempts in flight a few seconds to finish. Nothing is lost by stopping: what is
/// not delivered stays in the store.
pub async fn run(state: AppState, mut stop: watch::Receiver<bool>) {
    let config = state.config.webhooks.clone();
    let client = match address::delivery_client(
        Duration::from_secs(config.timeout_secs),
        config.allow_private_addresses,
    ) {
        Ok(client) => client,
        Err(e) => {
            tracing::error!(error = %e, "cannot build the webhook HTTP client; no deliveries on this node");
            return;
        }
    };
    let mailer = match &state.config.smtp {
        Some(smtp) => match email::Mailer::new(smtp, &state.public_url) {
            Ok(mailer) => Some(Arc::new(mailer)),
            Err(e) => {
                tracing::error!(error = %e, "cannot set up email; no notices by email");
                None
            }
        },
        None => None,
    };
    let worker = Arc::new(Worker {
        node: latchkey_core::new_id(),
        state,
        client,
        mailer,
        attempting: Mutex::default(),
    });
    let poll = Duration::from_millis(config.poll_interval_ms.max(10));
    let sweep_every = Duration::from_secs(worker.state.config.verifier.expiry_sweep_secs.max(1));
    let mut poll_tick = tokio::time::interval(poll);
    poll_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut sweep_tick = tokio::time::interval(sweep_every);
    sweep_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut in_flight: JoinSet<()> = JoinSet::new();
    let limit = config.concurrency.max(1);
    loop {
        tokio::select! {
            _ = poll_tick.tick() => {
                while in_flight.try_join_next().is_some() {}
                let room = limit.saturating_sub(in_flight.len());
                if room > 0 {
                    worker.claim_and_spawn(&mut in_flight, room).await;
                }
            }
            _ = sweep_tick.tick() => worker.sweep().await,
            _ = stop.changed() => break,
        }
    }
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while in_flight.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::info!(
            left = in_flight.len(),
            "deliveries still in flight at shutdown; their leases hand them to the next node"
        );
        in_flight.abort_all();
    }
}

impl Worker {
    async fn claim_and_spawn(self: &Arc<Self>, in_flight: &mut JoinSet<()>, room: usize) {
        let lease = time::Duration::seconds(
            i64::try_from(self.state.config.webhooks.lease_secs).unwrap_or(60),
        );
        let mut channels = vec![Channel::Webhook];
        if self.mailer.is_some() {
            channels.push(Channel::Email);
        }
        for channel in channels {
            let now = self.state.clock.now();
            let room = u32::try_from(room.saturating_sub(in_flight.len())).unwrap_or(0);
            if room == 0 {
                return;
            }
            let claimed = match self
                .state
                .store
                .claim_deliveries(now, channel, &self.node, now + lease, room)
                .await
            {
                Ok(claimed) => claimed,
                Err(e) => {
                    tracing::warn!(error = %e, "claiming deliveries failed; will retry");
                    return;
                }
            };
            for delivery in claimed {
                let fresh = self
                    .attempting
                    .lock()
                    .is_ok_and(|mut ids| ids.insert(delivery.delivery.id.clone()));
                if !fresh {
                    continue;
                }
                let worker = Arc::clone(self);
                in_flight.spawn(async move { worker.attempt(delivery).await });
            }
        }
    }

    /// Makes one attempt and records it.
    async fn attempt(&self, claimed: ClaimedDelivery) {
        let _attempting = Attempting {
            worker: self,
            id: claimed.delivery.id.clone(),
        };
        let (status, error, permanent) = match claimed.delivery.channel {
            Channel::Webhook => self.post(&claimed).await,
            Channel::Email => self.mail(&claimed).await,
        };
        let now = self.state.clock.now();
        let delivered = error.is_none();
        let attempts = claimed.delivery.attempts + 1;
        let result = if delivered {
            AttemptResult::Delivered
        } else if permanent {
            AttemptResult::GiveUp
        } else {
            match next_attempt(now, attempts, claimed.delivery.give_up_at) {
                Some(at) => AttemptResult::RetryAt(at),
                None => AttemptResult::GiveUp,
            }
        };
        let metrics = &self.state.metrics.events;
        if claimed.delivery.channel == Channel::Webhook {
            match &result {
                AttemptResult::Delivered => metrics.delivered.fetch_add(1, Ordering::Relaxed),
                AttemptResult::RetryAt(_) => metrics.retried.fetch_add(1, Ordering::Relaxed),
                AttemptResult::GiveUp => metrics.failed.fetch_add(1, Ordering::Relaxed),
            };
        } else if delivered {
            metrics.emails_sent.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(why) = &error {
            tracing::info!(
                delivery = %claimed.delivery.id,
                event = %claimed.delivery.event_type,
                attempt = attempts,
                error = %why,
                given_up = matches!(result, AttemptResult::GiveUp),
                "delivery attempt failed"
            );
        }
        let attempt = DeliveryAttempt {
            at: now,
            status,
            error,
        };
        match self
            .state
            .store
            .finish_attempt(&claimed.delivery.id, &self.node, attempt, result)
            .await
        {
            Ok(true) => {}
            Ok(false) => tracing::warn!(
                delivery = %claimed.delivery.id,
                "the lease ran out during the attempt; another node may repeat it"
            ),
            Err(e) => tracing::warn!(error = %e, "recording a delivery attempt failed"),
        }
    }

    /// A signed POST: `(status, error, permanent)`.
    async fn post(&self, claimed: &ClaimedDelivery) -> (Option<u16>, Option<String>, bool) {
        let (Some(url), Some(sealed)) = (&claimed.url, &claimed.secret) else {
            return (None, Some("the endpoint was deleted".into()), true);
        };
        let webhook_id = claimed.delivery.webhook_id.as_deref().unwrap_or_default();
        let Ok(key) = crate::crypto::open(
            &self.state.hash_key,
            SECRET_PURPOSE,
            webhook_id.as_bytes(),
            sealed,
        ) else {
            return (None, Some("the signing key cannot be opened".into()), true);
        };
        let allow_private = self.state.config.webhooks.allow_private_addresses;
        let parsed = match address::parse_url(url) {
            Ok(parsed) => parsed,
            Err(e) => return (None, Some(e.to_string()), true),
        };
        if let Err(e) = address::check_literal(&parsed, allow_private) {
            return (None, Some(e.to_string()), false);
        }
        let timestamp = self.state.clock.now_secs();
        let msg_id = &claimed.delivery.event_id;
        let signature = sign(&key, msg_id, timestamp, claimed.body.as_bytes());
        let sent = self
            .client
            .post(parsed)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("webhook-id", msg_id.as_str())
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(claimed.body.clone())
            .send()
            .await;
        match sent {
            Ok(response) if response.status().is_success() => {
                (Some(response.status().as_u16()), None, false)
            }
            Ok(response) => {
                let status = response.status();
                (
                    Some(status.as_u16()),
                    Some(format!("HTTP {}", status.as_u16())),
                    false,
                )
            }
            Err(e) => (None, Some(describe(&e)), false),
        }
    }

    /// An email notice: `(status, error, permanent)`.
    async fn mail(&self, claimed: &ClaimedDelivery) -> (Option<u16>, Option<String>, bool) {
        let (Some(mailer), Some(to)) = (&self.mailer, &claimed.delivery.recipient) else {
            return (None, Some("email is not configured".into()), false);
        };
        match mailer
            .send(to, &claimed.delivery.event_type, &claimed.body)
            .await
        {
            email::Sent::Accepted => (None, None, false),
            email::Sent::Permanent(why) => (None, Some(why), true),
            email::Sent::Transient(why) => (None, Some(why), false),
        }
    }

    /// The expiry-notice sweep and the expiring gauge; old deliveries are purged.
    async fn sweep(&self) {
        let now = self.state.clock.now();
        loop {
            match self.state.store.send_expiry_notices(now).await {
                Ok(sent) if sent.is_empty() => break,
                Ok(sent) => tracing::info!(notices = sent.len(), "token.expiring notices queued"),
                Err(e) => {
                    tracing::warn!(error = %e, "expiry notice sweep failed; will retry");
                    break;
                }
            }
        }
        let windows: Vec<i64> = EXPIRING_WINDOWS.iter().map(|(_, secs)| *secs).collect();
        match self.state.store.count_expiring(now, &windows).await {
            Ok(counts) => {
                for (gauge, count) in self.state.metrics.events.expiring.iter().zip(counts) {
                    gauge.store(count, Ordering::Relaxed);
                }
            }
            Err(e) => tracing::warn!(error = %e, "counting expiring tokens failed"),
        }
        match self.state.store.count_tokens_by_type_and_state(now).await {
            Ok(counts) => self.state.metrics.tokens.set(&counts),
            Err(e) => tracing::warn!(error = %e, "counting tokens by type and state failed"),
        }
        if let Err(e) = self
            .state
            .store
            .purge_deliveries(now - time::Duration::days(30))
            .await
        {
            tracing::warn!(error = %e, "purging old deliveries failed");
        }
    }
}

/// A transport failure in words a receiver's owner understands.
fn describe(error: &reqwest::Error) -> String {
    use std::error::Error as _;
    if error.is_timeout() {
        return "timeout".into();
    }
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if text.contains("allow_private_addresses") {
            return text;
        }
        if let Some(io) = cause.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::ConnectionRefused
        {
            return "connection refused".into();
        }
        source = cause.source();
    }
    if error.is_connect() {
        "connection failed".into()
    } else {
        "request failed".into()
    }
}
