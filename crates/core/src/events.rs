//! Lifecycle events as pure rules: which audit actions become events, who gets an email,
//! when an expiry notice is due, the retry schedule, and Standard Webhooks signatures.
//! Nothing here reads the clock: every rule takes `now`.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, Mac};
use latchkey_proto::EventType;
use sha2::Sha256;
use time::{Duration, OffsetDateTime};

/// Days before expiry at which `token.expiring` fires, largest first.
pub const EXPIRY_NOTICE_DAYS: [u32; 3] = [30, 7, 1];

/// How long a delivery is retried before it is marked failed.
pub const DELIVERY_WINDOW: Duration = Duration::hours(24);

/// The prefix of a webhook signing secret.
pub const SECRET_PREFIX: &str = "whsec_";

/// Most attempts kept in a delivery's log.
pub const ATTEMPT_LOG_LEN: usize = 20;

/// The lifecycle event an audit action is, if it is one.
pub fn event_type_of(action: &str) -> Option<EventType> {
    EventType::parse(action)
}

/// Whether an event is one that its token's owner is told about by email (when the owner
/// has an address and the server has `[smtp]`): expiring, expired, leaked, and revoked by
/// someone else (an admin).
pub fn emails_owner(event: EventType, actor_id: Option<&str>, owner_id: Option<&str>) -> bool {
    match event {
        EventType::TokenExpiring | EventType::TokenExpired | EventType::TokenLeaked => true,
        EventType::TokenRevoked => actor_id != owner_id,
        _ => false,
    }
}

/// The expiry notice due for a token now, if any: the smallest threshold of
/// [`EXPIRY_NOTICE_DAYS`] whose moment (`expires_at` minus that many days) has passed, as
/// long as the token already existed at that moment (a token made with 20 days to live
/// gets the 7- and 1-day notices, not the 30-day one) and has not expired yet. The caller
/// records which thresholds were sent, so each fires once; a sweep that runs late sends only
/// the smallest due one.
pub fn expiry_notice_due(
    created_at: OffsetDateTime,
    expires_at: OffsetDateTime,
    now: OffsetDateTime,
) -> Option<u32> {
    if now >= expires_at {
        return None;
    }
    EXPIRY_NOTICE_DAYS.iter().rev().copied().find(|days| {
        let moment = expires_at - Duration::days(i64::from(*days));
        now >= moment && created_at <= moment
    })
}

/// Whole days left until `expires_at`, rounded up (29 days and 1 hour → 30).
pub fn days_left(expires_at: OffsetDateTime, now: OffsetDateTime) -> i64 {
    let secs = (expires_at - now).whole_seconds().max(0);
    (secs + 86_399) / 86_400
}

/// The pause after the `attempts`-th failed attempt (1-based): 5 s, 30 s, 2 min, 10 min,
/// 30 min, 1 h, 2 h, then every 4 h, as Standard Webhooks' senders back off.
pub fn retry_delay(attempts: u32) -> Duration {
    match attempts {
        0 | 1 => Duration::seconds(5),
        2 => Duration::seconds(30),
        3 => Duration::minutes(2),
        4 => Duration::minutes(10),
        5 => Duration::minutes(30),
        6 => Duration::hours(1),
        7 => Duration::hours(2),
        _ => Duration::hours(4),
    }
}

/// When to try again after a failed attempt (the `attempts`-th) at `now`, or `None` when
/// the delivery's window has closed and it is to be marked failed. The last retry falls
/// on `give_up_at` itself.
pub fn next_attempt(
    now: OffsetDateTime,
    attempts: u32,
    give_up_at: OffsetDateTime,
) -> Option<OffsetDateTime> {
    if now >= give_up_at {
        return None;
    }
    Some((now + retry_delay(attempts)).min(give_up_at))
}

/// Why a signing secret cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a webhook secret is `whsec_` followed by base64 of 24 to 64 bytes")]
pub struct BadSecret;

/// A new signing secret: its text (`whsec_…`, shown once) and its key bytes.
pub fn generate_secret() -> (String, Vec<u8>) {
    use rand::RngCore as _;
    let mut bytes = vec![0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    (format!("{SECRET_PREFIX}{}", B64.encode(&bytes)), bytes)
}

/// The key bytes of a `whsec_…` secret.
pub fn parse_secret(text: &str) -> Result<Vec<u8>, BadSecret> {
    let encoded = text.strip_prefix(SECRET_PREFIX).ok_or(BadSecret)?;
    let bytes = B64.decode(encoded).map_err(|_| BadSecret)?;
    if (24..=64).contains(&bytes.len()) {
        Ok(bytes)
    } else {
        Err(BadSecret)
    }
}

/// The `webhook-signature` header value: `v1,` + base64 of HMAC-SHA256 over
/// `"{id}.{timestamp}.{body}"` under the secret's key bytes (Standard Webhooks).
pub fn sign(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    // HMAC accepts keys of any length; this cannot fail.
    let mut mac = match Hmac::<Sha256>::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => return String::new(),
    };
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1,{}", B64.encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use time::macros::datetime;

    const T: OffsetDateTime = datetime!(2027-01-01 00:00 UTC);

    #[test]
    fn notices_fire_at_each_threshold_once_smallest_wins() {
        let created = T;
        let expires = T + Duration::days(90);
        assert_eq!(expiry_notice_due(created, expires, T), None);
        let at = |days_before: i64| expires - Duration::days(days_before);
        assert_eq!(expiry_notice_due(created, expires, at(31)), None);
        assert_eq!(expiry_notice_due(created, expires, at(30)), Some(30));
        assert_eq!(expiry_notice_due(created, expires, at(8)), Some(30));
        assert_eq!(expiry_notice_due(created, expires, at(7)), Some(7));
        assert_eq!(expiry_notice_due(created, expires, at(1)), Some(1));
        assert_eq!(
            expiry_notice_due(created, expires, expires - Duration::seconds(1)),
            Some(1)
        );
        assert_eq!(expiry_notice_due(created, expires, expires), None);
    }

    #[test]
    fn short_lived_tokens_skip_thresholds_before_their_birth() {
        let expires = T + Duration::days(20);
        assert_eq!(expiry_notice_due(T, expires, T), None);
        assert_eq!(
            expiry_notice_due(T, expires, expires - Duration::days(7)),
            Some(7)
        );
    }

    #[test]
    fn days_left_rounds_up() {
        assert_eq!(days_left(T + Duration::days(30), T), 30);
        assert_eq!(
            days_left(T + Duration::days(29) + Duration::hours(1), T),
            30
        );
        assert_eq!(days_left(T, T), 0);
    }

    #[test]
    fn retries_back_off_and_stop_at_the_window() {
        let give_up = T + DELIVERY_WINDOW;
        assert_eq!(next_attempt(T, 1, give_up), Some(T + Duration::seconds(5)));
        assert_eq!(next_attempt(T, 2, give_up), Some(T + Duration::seconds(30)));
        assert!(retry_delay(9) > retry_delay(3));
        let late = give_up - Duration::minutes(1);
        assert_eq!(next_attempt(late, 9, give_up), Some(give_up));
        assert_eq!(next_attempt(give_up, 10, give_up), None);
    }

    #[test]
    fn emails_only_for_owner_facing_events() {
        assert!(emails_owner(EventType::TokenExpiring, None, Some("u")));
        assert!(emails_owner(
            EventType::TokenRevoked,
            Some("admin"),
            Some("u")
        ));
        assert!(!emails_owner(EventType::TokenRevoked, Some("u"), Some("u")));
        assert!(!emails_owner(
            EventType::TokenCreated,
            Some("admin"),
            Some("u")
        ));
    }

    #[test]
    fn signature_matches_the_standard_webhooks_example() {
        // The example of the Standard Webhooks specification.
        let key = parse_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            sign(&key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
        let (text, bytes) = generate_secret();
        assert_eq!(parse_secret(&text).unwrap(), bytes);
        assert!(parse_secret("whsec_!!").is_err());
        assert!(parse_secret("sec_abc").is_err());
    }
}
