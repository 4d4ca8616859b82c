//! Prometheus metrics, rendered in the text exposition format at `/metrics`.
//!
//! Recording is on the hot path of every request, so it allocates nothing once a route has
//! been seen: per-route series live in a map keyed by the matched route (looked up by
//! `&str`), status counters are atomics, verify outcomes are a fixed array, and a
//! histogram observation is one bucket increment (buckets are summed when rendered).

use std::fmt::Write as _;
use std::hash::BuildHasherDefault;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::http::Method;
use dashmap::DashMap;
use latchkey_proto::{Reason, TokenState, TokenType};

use crate::fasthash::FxHasher;

/// Upper bounds of the latency histograms, in seconds.
pub const BUCKETS_SECS: [f64; 14] = [
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0,
];

/// Bucket bounds in nanoseconds, for comparing without floating point.
const BUCKETS_NANOS: [u64; BUCKETS_SECS.len()] = [
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_000_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    1_000_000_000,
    5_000_000_000,
];

/// A latency histogram: one counter per bucket (not cumulative; summed when rendered).
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; BUCKETS_SECS.len() + 1],
    sum_nanos: AtomicU64,
}

impl Histogram {
    /// Records one observation.
    #[inline]
    pub fn observe(&self, elapsed: Duration) {
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        let slot = BUCKETS_NANOS
            .iter()
            .position(|bound| nanos <= *bound)
            .unwrap_or(BUCKETS_SECS.len());
        self.buckets[slot].fetch_add(1, Ordering::Relaxed);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).sum()
    }

    /// Writes the `_bucket`, `_sum` and `_count` lines; `labels` is `key="value",…` or empty.
    pub fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0u64;
        for (i, bound) in BUCKETS_SECS.iter().enumerate() {
            cumulative += self.buckets[i].load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {cumulative}"
            );
        }
        cumulative += self.buckets[BUCKETS_SECS.len()].load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {cumulative}"
        );
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(
            out,
            "{name}_sum{braces} {}",
            self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9
        );
        let _ = writeln!(out, "{name}_count{braces} {cumulative}");
    }
}

/// The methods counted separately; anything else is `other`.
const METHODS: [&str; 8] = [
    "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "other",
];

fn method_index(method: &Method) -> usize {
    match *method {
        Method::GET => 0,
        Method::POST => 1,
        Method::PUT => 2,
        Method::PATCH => 3,
        Method::DELETE => 4,
        Method::HEAD => 5,
        Method::OPTIONS => 6,
        _ => 7,
    }
}

/// The series of one matched route.
#[derive(Debug, Default)]
struct RouteStats {
    /// (method index, status) → count.
    requests: DashMap<(u8, u16), AtomicU64, BuildHasherDefault<FxHasher>>,
    latency: Histogram,
}

/// Verify outcomes, in the order of [`outcome_index`].
const OUTCOMES: [&str; 12] = [
    "valid",
    "bad_format",
    "not_found",
    "revoked",
    "expired",
    "suspended",
    "type_disabled",
    "ip_not_allowed",
    "usage_exceeded",
    "rate_limited",
    "lifetime_policy",
    "pending",
];

fn outcome_index(outcome: Result<(), Reason>) -> usize {
    match outcome {
        Ok(()) => 0,
        Err(Reason::BadFormat) => 1,
        Err(Reason::NotFound) => 2,
        Err(Reason::Revoked) => 3,
        Err(Reason::Expired) => 4,
        Err(Reason::Suspended) => 5,
        Err(Reason::TypeDisabled) => 6,
        Err(Reason::IpNotAllowed) => 7,
        Err(Reason::UsageExceeded) => 8,
        Err(Reason::RateLimited) => 9,
        Err(Reason::LifetimePolicy) => 10,
        Err(Reason::Pending) => 11,
    }
}

/// Store calls timed by the hooks (label `op`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreOp {
    /// The verifier's cache miss: a secret's token.
    FindSecret,
    /// The verifier reading a token by id (an access JWT's `pat`).
    GetToken,
    /// The verifier reading a user and their memberships.
    LoadUser,
    /// One read of the change feed.
    ChangesSince,
    /// One flush of last-used times and usage counts ([`crate::usage`]).
    RecordLastUsed,
    /// Secret hashes for the verifier's known set (its load, or the tokens the feed
    /// names).
    SecretHashes,
}

const STORE_OPS: [&str; 6] = [
    "find_secret",
    "get_token",
    "load_user",
    "changes_since",
    "record_last_used",
    "secret_hashes",
];

/// Counters and histograms.
#[derive(Debug, Default)]
pub struct Metrics {
    routes: DashMap<Box<str>, RouteStats, BuildHasherDefault<FxHasher>>,
    verify_outcomes: [AtomicU64; OUTCOMES.len()],
    store_latency: [Histogram; STORE_OPS.len()],
    store_errors: [AtomicU64; STORE_OPS.len()],
    /// Age of the oldest buffered last-used time when its batch was written.
    last_used_flush_lag: Histogram,
    /// From a pushed change notice to the change applied on this node.
    notification_lag: Histogram,
    /// Last-used entries written.
    pub last_used_flushed: AtomicU64,
    /// Tokens marked expired by the sweep.
    pub tokens_expired: AtomicU64,
    /// Webhook deliveries, email notices and tokens expiring soon.
    pub events: crate::events::EventMetrics,
    /// Tokens by type and state, as of the last sweep.
    pub tokens: TokenCounts,
}

/// `latchkey_tokens{type,state}`: refreshed by the expiry sweep (one grouped query every
/// `expiry_sweep_secs`), never by a scrape. Every pair is rendered, zeros included, so a
/// series does not vanish when its last token goes.
#[derive(Debug, Default)]
pub struct TokenCounts {
    counts: [[AtomicU64; TokenState::ALL.len()]; TokenType::ALL.len()],
    /// Whether a sweep has counted yet (until then nothing is rendered).
    counted: std::sync::atomic::AtomicBool,
}

impl TokenCounts {
    /// Replaces the counts with a store's answer (pairs it leaves out are zero).
    pub fn set(&self, counted: &[(TokenType, TokenState, u64)]) {
        for (t, row) in TokenType::ALL.iter().zip(&self.counts) {
            for (s, cell) in TokenState::ALL.iter().zip(row) {
                let n = counted
                    .iter()
                    .filter(|(kind, state, _)| kind == t && state == s)
                    .map(|(_, _, n)| *n)
                    .sum();
                cell.store(n, Ordering::Relaxed);
            }
        }
        self.counted.store(true, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String) {
        if !self.counted.load(Ordering::Relaxed) {
            return;
        }
        out.push_str(
            "# HELP latchkey_tokens Tokens by type and state (as of the last expiry sweep).\n\
             # TYPE latchkey_tokens gauge\n",
        );
        for (t, row) in TokenType::ALL.iter().zip(&self.counts) {
            for (s, cell) in TokenState::ALL.iter().zip(row) {
                let _ = writeln!(
                    out,
                    "latchkey_tokens{{type=\"{}\",state=\"{}\"}} {}",
                    t.as_str(),
                    s.as_str(),
                    cell.load(Ordering::Relaxed)
                );
            }
        }
    }
}

/// The commit this binary was built from, when the build said (`LATCHKEY_BUILD_COMMIT`
/// in the environment of `cargo build`, as the release and package builds set it).
pub const BUILD_COMMIT: Option<&str> = option_env!("LATCHKEY_BUILD_COMMIT");

fn render_build_info(out: &mut String) {
    out.push_str(
        "# HELP latchkey_build_info The running build: version and commit (always 1).\n\
         # TYPE latchkey_build_info gauge\n",
    );
    let commit = BUILD_COMMIT.filter(|c| !c.is_empty()).unwrap_or("unknown");
    let _ = writeln!(
        out,
        "latchkey_build_info{{version=\"{}\",commit=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION"),
        commit.replace(['"', '\\', '\n'], "")
    );
}

impl Metrics {
    /// Records one request. `route` is the matched route pattern (or `unmatched`).
    #[inline]
    pub fn observe_request(&self, route: &str, method: &Method, status: u16, elapsed: Duration) {
        let key = (method_index(method) as u8, status);
        if let Some(stats) = self.routes.get(route) {
            stats.latency.observe(elapsed);
            if let Some(counter) = stats.requests.get(&key) {
                counter.fetch_add(1, Ordering::Relaxed);
                return;
            }
            stats
                .requests
                .entry(key)
                .or_default()
                .fetch_add(1, Ordering::Relaxed);
            return;
        }
        // First request on this route: register it (allocates once).
        let stats = self.routes.entry(Box::from(route)).or_default();
        stats.latency.observe(elapsed);
        stats
            .requests
            .entry(key)
            .or_default()
            .fetch_add(1, Ordering::Relaxed);
    }

    /// Records a token check's outcome (`valid` or a reason).
    #[inline]
    pub fn observe_verify(&self, outcome: Result<(), Reason>) {
        self.verify_outcomes[outcome_index(outcome)].fetch_add(1, Ordering::Relaxed);
    }

    /// Records how long a store call took (hook for the verifier and background tasks).
    #[inline]
    pub fn observe_store(&self, op: StoreOp, elapsed: Duration, ok: bool) {
        self.store_latency[op as usize].observe(elapsed);
        if !ok {
            self.store_errors[op as usize].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Records the age of the oldest last-used time a flush wrote.
    pub fn observe_flush_lag(&self, lag: Duration) {
        self.last_used_flush_lag.observe(lag);
    }

    /// Records a change-notice lag: from a pushed change notice (PostgreSQL
    /// `LISTEN/NOTIFY`, see `Store::change_notices`) to the change being applied on this
    /// node. The notices carry the version only, not the commit time, so this is the part
    /// of the cross-node lag this node adds; a backend whose notices carry the commit time
    /// can report the whole delay here. Polling alone (SQLite) records nothing.
    pub fn observe_notification_lag(&self, lag: Duration) {
        self.notification_lag.observe(lag);
    }

    /// Renders everything plus the given gauges and counters.
    pub fn render(&self, gauges: &[(&str, &str, f64)], counters: &[(&str, &str, u64)]) -> String {
        let mut out = String::with_capacity(16 * 1024);
        out.push_str(
            "# HELP latchkey_http_requests_total HTTP requests by route, method and status.\n",
        );
        out.push_str("# TYPE latchkey_http_requests_total counter\n");
        for route in self.routes.iter() {
            for entry in route.value().requests.iter() {
                let (method, status) = *entry.key();
                let _ = writeln!(
                    out,
                    "latchkey_http_requests_total{{route=\"{}\",method=\"{}\",status=\"{status}\"}} {}",
                    route.key(),
                    METHODS[usize::from(method).min(METHODS.len() - 1)],
                    entry.value().load(Ordering::Relaxed)
                );
            }
        }
        out.push_str("# HELP latchkey_http_request_duration_seconds Request latency by route.\n");
        out.push_str("# TYPE latchkey_http_request_duration_seconds histogram\n");
        for route in self.routes.iter() {
            route.value().latency.render(
                &mut out,
                "latchkey_http_request_duration_seconds",
                &format!("route=\"{}\"", route.key()),
            );
        }
        out.push_str("# HELP latchkey_token_checks_total Token checks by outcome.\n");
        out.push_str("# TYPE latchkey_token_checks_total counter\n");
        for (i, label) in OUTCOMES.iter().enumerate() {
            let _ = writeln!(
                out,
                "latchkey_token_checks_total{{outcome=\"{label}\"}} {}",
                self.verify_outcomes[i].load(Ordering::Relaxed)
            );
        }
        out.push_str(
            "# HELP latchkey_store_operation_duration_seconds Store calls on the hot path and in background tasks.\n",
        );
        out.push_str("# TYPE latchkey_store_operation_duration_seconds histogram\n");
        for (i, op) in STORE_OPS.iter().enumerate() {
            self.store_latency[i].render(
                &mut out,
                "latchkey_store_operation_duration_seconds",
                &format!("op=\"{op}\""),
            );
        }
        out.push_str("# HELP latchkey_store_errors_total Store calls that failed.\n");
        out.push_str("# TYPE latchkey_store_errors_total counter\n");
        for (i, op) in STORE_OPS.iter().enumerate() {
            let _ = writeln!(
                out,
                "latchkey_store_errors_total{{op=\"{op}\"}} {}",
                self.store_errors[i].load(Ordering::Relaxed)
            );
        }
        out.push_str(
            "# HELP latchkey_last_used_flush_lag_seconds Age of the oldest buffered last-used time when its batch was written.\n",
        );
        out.push_str("# TYPE latchkey_last_used_flush_lag_seconds histogram\n");
        self.last_used_flush_lag
            .render(&mut out, "latchkey_last_used_flush_lag_seconds", "");
        out.push_str(
            "# HELP latchkey_change_notification_lag_seconds From a pushed change notice (another node committed) to the change applied on this node.\n",
        );
        out.push_str("# TYPE latchkey_change_notification_lag_seconds histogram\n");
        self.notification_lag
            .render(&mut out, "latchkey_change_notification_lag_seconds", "");
        for (name, help, value) in gauges {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
            );
        }
        for (name, help, value) in counters {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP latchkey_last_used_flushed_total Last-used entries written.\n# TYPE latchkey_last_used_flushed_total counter\nlatchkey_last_used_flushed_total {}",
            self.last_used_flushed.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP latchkey_tokens_expired_total Tokens marked expired by the sweep.\n# TYPE latchkey_tokens_expired_total counter\nlatchkey_tokens_expired_total {}",
            self.tokens_expired.load(Ordering::Relaxed)
        );
        self.events.render(&mut out);
        self.tokens.render(&mut out);
        render_build_info(&mut out);
        if let Some(process) = crate::procstat::ProcessStats::read() {
            process.render(&mut out);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_cumulative_buckets_and_counts() {
        let m = Metrics::default();
        m.observe_request("/auth/verify", &Method::GET, 200, Duration::from_micros(40));
        m.observe_request(
            "/auth/verify",
            &Method::GET,
            200,
            Duration::from_micros(300),
        );
        m.observe_request("/auth/verify", &Method::GET, 401, Duration::from_millis(3));
        m.observe_verify(Ok(()));
        m.observe_verify(Err(Reason::NotFound));
        m.observe_store(StoreOp::FindSecret, Duration::from_micros(80), true);
        let text = m.render(&[("g", "a gauge", 1.0)], &[("c_total", "a counter", 2)]);
        assert!(text.contains(
            "latchkey_http_requests_total{route=\"/auth/verify\",method=\"GET\",status=\"200\"} 2"
        ));
        assert!(text.contains(
            "latchkey_http_requests_total{route=\"/auth/verify\",method=\"GET\",status=\"401\"} 1"
        ));
        assert!(text.contains(
            "latchkey_http_request_duration_seconds_bucket{route=\"/auth/verify\",le=\"0.00005\"} 1"
        ));
        assert!(text.contains(
            "latchkey_http_request_duration_seconds_bucket{route=\"/auth/verify\",le=\"0.0005\"} 2"
        ));
        assert!(text.contains(
            "latchkey_http_request_duration_seconds_bucket{route=\"/auth/verify\",le=\"+Inf\"} 3"
        ));
        assert!(
            text.contains("latchkey_http_request_duration_seconds_count{route=\"/auth/verify\"} 3")
        );
        assert!(text.contains("latchkey_token_checks_total{outcome=\"valid\"} 1"));
        assert!(text.contains("latchkey_token_checks_total{outcome=\"not_found\"} 1"));
        assert!(text.contains(
            "latchkey_store_operation_duration_seconds_bucket{op=\"find_secret\",le=\"0.0001\"} 1"
        ));
        assert!(text.contains("latchkey_last_used_flush_lag_seconds_count 0"));
        assert!(text.contains("# TYPE g gauge\ng 1"));
        assert!(text.contains("# TYPE c_total counter\nc_total 2"));
        assert!(
            !text.contains("latchkey_tokens{"),
            "nothing before the first count"
        );
        assert!(text.contains(&format!(
            "latchkey_build_info{{version=\"{}\",commit=",
            env!("CARGO_PKG_VERSION")
        )));
        m.tokens.set(&[
            (TokenType::Client, TokenState::Active, 3),
            (TokenType::Personal, TokenState::Revoked, 1),
        ]);
        let text = m.render(&[], &[]);
        assert!(text.contains("latchkey_tokens{type=\"client\",state=\"active\"} 3"));
        assert!(text.contains("latchkey_tokens{type=\"personal\",state=\"revoked\"} 1"));
        assert!(text.contains("latchkey_tokens{type=\"admin\",state=\"expired\"} 0"));
        assert_eq!(
            text.matches("latchkey_tokens{").count(),
            35,
            "every type × every state"
        );
    }
}
