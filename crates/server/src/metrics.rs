//! Prometheus metrics, rendered in the text exposition format at `/metrics`.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use dashmap::DashMap;
use latchkey_proto::Reason;

const BUCKETS_SECS: [f64; 10] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25, 1.0,
];

#[derive(Debug, Default)]
struct Histogram {
    buckets: [AtomicU64; BUCKETS_SECS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

/// Counters and histograms.
#[derive(Debug, Default)]
pub struct Metrics {
    requests: DashMap<(String, String, u16), AtomicU64>,
    latency: DashMap<String, Histogram>,
    verify_outcomes: DashMap<&'static str, AtomicU64>,
    /// Last-used entries written.
    pub last_used_flushed: AtomicU64,
    /// Tokens marked expired by the sweep.
    pub tokens_expired: AtomicU64,
}

impl Metrics {
    /// Records one request.
    pub fn observe_request(&self, route: &str, method: &str, status: u16, secs: f64) {
        let key = (route.to_owned(), method.to_owned(), status);
        self.requests
            .entry(key)
            .or_default()
            .fetch_add(1, Ordering::Relaxed);
        let hist = self.latency.entry(route.to_owned()).or_default();
        for (i, bound) in BUCKETS_SECS.iter().enumerate() {
            if secs <= *bound {
                hist.buckets[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        hist.count.fetch_add(1, Ordering::Relaxed);
        hist.sum_micros
            .fetch_add((secs * 1e6) as u64, Ordering::Relaxed);
    }

    /// Records a token check's outcome (`valid` or a reason).
    pub fn observe_verify(&self, outcome: Result<(), Reason>) {
        let label = match outcome {
            Ok(()) => "valid",
            Err(r) => r.as_str(),
        };
        self.verify_outcomes
            .entry(label)
            .or_default()
            .fetch_add(1, Ordering::Relaxed);
    }

    /// Renders everything plus the given gauges.
    pub fn render(&self, gauges: &[(&str, &str, f64)]) -> String {
        let mut out = String::new();
        out.push_str(
            "# HELP latchkey_http_requests_total HTTP requests by route, method and status.\n",
        );
        out.push_str("# TYPE latchkey_http_requests_total counter\n");
        for entry in self.requests.iter() {
            let (route, method, status) = entry.key();
            let _ = writeln!(
                out,
                "latchkey_http_requests_total{{route=\"{route}\",method=\"{method}\",status=\"{status}\"}} {}",
                entry.value().load(Ordering::Relaxed)
            );
        }
        out.push_str("# HELP latchkey_http_request_duration_seconds Request latency by route.\n");
        out.push_str("# TYPE latchkey_http_request_duration_seconds histogram\n");
        for entry in self.latency.iter() {
            let route = entry.key();
            let h = entry.value();
            for (i, bound) in BUCKETS_SECS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "latchkey_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"{bound}\"}} {}",
                    h.buckets[i].load(Ordering::Relaxed)
                );
            }
            let count = h.count.load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "latchkey_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {count}"
            );
            let _ = writeln!(
                out,
                "latchkey_http_request_duration_seconds_sum{{route=\"{route}\"}} {}",
                h.sum_micros.load(Ordering::Relaxed) as f64 / 1e6
            );
            let _ = writeln!(
                out,
                "latchkey_http_request_duration_seconds_count{{route=\"{route}\"}} {count}"
            );
        }
        out.push_str("# HELP latchkey_token_checks_total Token checks by outcome.\n");
        out.push_str("# TYPE latchkey_token_checks_total counter\n");
        for entry in self.verify_outcomes.iter() {
            let _ = writeln!(
                out,
                "latchkey_token_checks_total{{outcome=\"{}\"}} {}",
                entry.key(),
                entry.value().load(Ordering::Relaxed)
            );
        }
        for (name, help, value) in gauges {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
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
        out
    }
}
