//! Shared application state, the clock, throttles and the last-used buffer.

use std::net::IpAddr;
use std::ops::Deref;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use axum::http::HeaderName;
use dashmap::DashMap;
use latchkey_core::HashKey;
use latchkey_store::Store;

pub use crate::usage::LastUsedBuffer;
use time::OffsetDateTime;

use crate::config::Config;
use crate::fasthash::FxBuild;
use crate::metrics::Metrics;
use crate::verifier::Verifier;

/// The time source. Time is an input: logic takes `now`, and only this reads the system
/// clock. Tests move it forward instead of waiting.
///
/// Two readings, moved separately: the wall clock ([`Clock::now`], moved by
/// [`Clock::advance`]) decides expiry and everything stored; the monotonic one
/// ([`Clock::elapsed_ms`], moved by [`Clock::advance_elapsed`]) measures how long ago
/// something happened on this node (the verifier's staleness), so a test that jumps a
/// day ahead to expire a token does not also make the node stale.
#[derive(Debug, Clone)]
pub struct Clock {
    offset_secs: Arc<AtomicI64>,
    elapsed_offset_ms: Arc<AtomicU64>,
    origin: std::time::Instant,
}

impl Default for Clock {
    fn default() -> Self {
        Clock {
            offset_secs: Arc::default(),
            elapsed_offset_ms: Arc::default(),
            origin: std::time::Instant::now(),
        }
    }
}

impl Clock {
    /// Milliseconds of monotonic time since this clock was made, plus any test offset.
    #[inline]
    pub fn elapsed_ms(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_millis())
            .unwrap_or(u64::MAX)
            .saturating_add(self.elapsed_offset_ms.load(Ordering::Relaxed))
    }

    /// Moves the monotonic time forward (tests only, like [`Clock::advance`]).
    pub fn advance_elapsed(&self, by: std::time::Duration) {
        let ms = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
        self.elapsed_offset_ms.fetch_add(ms, Ordering::Relaxed);
    }

    /// Now, in whole seconds, plus any test offset.
    #[inline]
    pub fn now(&self) -> OffsetDateTime {
        latchkey_core::from_unix(self.now_secs())
    }

    /// Now as unix seconds, plus any test offset (cheaper than [`Clock::now`]: no calendar
    /// arithmetic).
    #[inline]
    pub fn now_secs(&self) -> i64 {
        // The one place the server reads the wall clock (clippy.toml bans it elsewhere):
        // everything else takes time from here, so tests can move it.
        #[allow(clippy::disallowed_methods)]
        let secs = match std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
        };
        secs.saturating_add(self.offset_secs.load(Ordering::Relaxed))
    }

    /// Moves time forward (tests only; there is no way to reach this over HTTP).
    pub fn advance(&self, secs: i64) {
        self.offset_secs.fetch_add(secs, Ordering::Relaxed);
    }
}

/// A fixed-window counter per key (per node): by default per client IP, where requests
/// whose client IP is unknown share one key (`None`).
#[derive(Debug)]
pub struct Throttle<K: Eq + std::hash::Hash = Option<IpAddr>> {
    limit: u32,
    window_secs: i64,
    counts: DashMap<K, (i64, u32), FxBuild>,
    records: AtomicU64,
}

impl<K: Eq + std::hash::Hash + Clone> Throttle<K> {
    /// At most `limit` events per key per window.
    pub fn new(limit: u32, window_secs: u64) -> Throttle<K> {
        Throttle {
            limit,
            window_secs: i64::try_from(window_secs.max(1)).unwrap_or(60),
            counts: DashMap::default(),
            records: AtomicU64::new(0),
        }
    }

    /// Seconds to wait if `key` is over its limit now, else `None`.
    #[inline]
    pub fn blocked(&self, key: K, now: i64) -> Option<u64> {
        let entry = self.counts.get(&key)?;
        let (start, count) = *entry;
        let end = start + self.window_secs;
        (now < end && count >= self.limit).then(|| u64::try_from(end - now).unwrap_or(1).max(1))
    }

    /// Records one event for `key`.
    pub fn record(&self, key: K, now: i64) {
        // `len` visits every shard: look only now and then.
        if self
            .records
            .fetch_add(1, Ordering::Relaxed)
            .is_multiple_of(1024)
            && self.counts.len() > 100_000
        {
            let cutoff = now - self.window_secs;
            self.counts.retain(|_, (start, _)| *start > cutoff);
        }
        let mut entry = self.counts.entry(key).or_insert((now, 0));
        if now >= entry.0 + self.window_secs {
            *entry = (now, 0);
        }
        entry.1 = entry.1.saturating_add(1);
    }

    /// Forgets a key.
    pub fn reset(&self, key: K) {
        self.counts.remove(&key);
    }

    /// Takes back one event recorded for `key` in the current window (an attempt counted
    /// before it was known to succeed), never more than were recorded.
    pub fn forgive(&self, key: K) {
        if let Some(mut entry) = self.counts.get_mut(&key) {
            entry.1 = entry.1.saturating_sub(1);
        }
    }
}

/// Everything a request handler needs. Cheap to clone.
#[derive(Clone)]
pub struct AppState(Arc<AppStateInner>);

/// The contents of [`AppState`].
pub struct AppStateInner {
    /// Configuration.
    pub config: Config,
    /// The store.
    pub store: Arc<dyn Store>,
    /// The verifier.
    pub verifier: Verifier,
    /// Access JWT signing keys.
    pub jwt: crate::jwt::JwtKeys,
    /// The hash key (also inside the verifier).
    pub hash_key: HashKey,
    /// The clock.
    pub clock: Clock,
    /// Failed sign-ins per IP.
    pub sign_in_throttle: Throttle,
    /// Failed sign-ins per account (keyed hash of the lower-cased username), from anywhere.
    pub sign_in_account_throttle: Throttle<latchkey_core::SecretHash>,
    /// Addresses each account signed in from lately (account key, IP) → unix seconds:
    /// they pass the per-account throttle, so nobody locks a user out from their own
    /// address by failing as them elsewhere.
    pub known_sign_ins: DashMap<(latchkey_core::SecretHash, Option<IpAddr>), i64, FxBuild>,
    /// Failed token checks per IP.
    pub token_failure_throttle: Throttle,
    /// Secret reveals per caller (`user:<id>` or `token:<id>`), every attempt counted.
    pub reveal_throttle: Throttle<String>,
    /// Last-used buffer.
    pub last_used: LastUsedBuffer,
    /// This node's leased blocks of rate limits and usage credits.
    pub budgets: crate::budgets::Budgets,
    /// Metrics (shared with the verifier, which times its store reads into them).
    pub metrics: Arc<Metrics>,
    /// Header names that carry tokens besides `Authorization` and `X-API-Key`.
    pub api_key_headers: Vec<HeaderName>,
    /// Public URL without trailing slash.
    pub public_url: String,
    /// An Argon2 hash to verify against when the user is unknown, so timing does not tell
    /// (made on first use: see [`AppState::dummy_password_hash`]).
    pub dummy_password_hash: tokio::sync::OnceCell<String>,
}

impl Deref for AppState {
    type Target = AppStateInner;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl AppState {
    /// The dummy password hash, made on first use with the configured Argon2 cost.
    pub async fn dummy_password_hash(&self) -> Result<String, crate::error::ApiError> {
        self.dummy_password_hash
            .get_or_try_init(|| {
                crate::password::hash_password(
                    &self.config.passwords,
                    crate::password::generate_password(),
                )
            })
            .await
            .cloned()
    }

    /// Wraps the parts.
    pub fn new(inner: AppStateInner) -> AppState {
        AppState(Arc::new(inner))
    }
}
