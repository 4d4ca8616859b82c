//! Usage counted in memory and flushed in batches (DESIGN.md §3 "Last used", §8 "Usage
//! details"): never one write per request.
//!
//! Each grant carries a [`UsageCell`]: its uses of the current UTC day (one atomic add per
//! use), the last second it was handed to the buffer and the last address it was used
//! from. Only three things reach the shared [`LastUsedBuffer`]: the first use of a second
//! (last-used time), a use from another address than the grant's previous one, and the
//! first use since the last flush (so the flush knows the grant holds uses to collect).
//! A token used at a steady rate from one address costs a cheap atomic add and two loads
//! per use; the map sees it once a second.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use dashmap::DashMap;
use latchkey_store::{IpSeen, LastUsed, Store, StoreError, USAGE_IPS_KEPT, UsageBatch, UsageCount};

use crate::fasthash::FxBuild;
use crate::verifier::Grant;

/// How many UTC days of counts are shown and kept: today and the 89 before it.
pub const USAGE_DAYS: i64 = 90;

/// The first day of the [`USAGE_DAYS`] ending with the day of `now`.
pub fn first_usage_day(now: time::OffsetDateTime) -> time::Date {
    now.date() - time::Duration::days(USAGE_DAYS - 1)
}

/// Bits of [`UsageCell::uses`] holding the count; the day number is above them.
const COUNT_BITS: u32 = 40;
const COUNT_MASK: u64 = (1 << COUNT_BITS) - 1;

/// The UTC day (days since 1970-01-01) of unix second `now`.
#[inline]
fn day_number(now: i64) -> u64 {
    u64::try_from(now.div_euclid(86_400)).unwrap_or(0)
}

fn date_of(day: u64) -> Option<time::Date> {
    let day = i64::try_from(day).ok()?;
    time::OffsetDateTime::from_unix_timestamp(day.checked_mul(86_400)?)
        .ok()
        .map(|t| t.date())
}

/// An address as one 128-bit value (IPv4 as IPv4-mapped IPv6); 0 (`::`) is "none yet".
#[inline]
fn ip_bits(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().to_bits(),
        IpAddr::V6(v6) => v6.to_bits(),
    }
}

/// One grant's usage not yet handed to the buffer (see the module doc).
#[derive(Debug)]
pub struct UsageCell {
    /// The last second a use of this grant was handed to the buffer.
    last_second: AtomicI64,
    /// `day << COUNT_BITS | uses on that day not yet collected by a flush`.
    uses: AtomicU64,
    /// The last address it was used from ([`ip_bits`], high and low halves). Written only
    /// when the address changes; a torn read at worst reports a change that was not one.
    ip_high: AtomicU64,
    ip_low: AtomicU64,
}

impl Default for UsageCell {
    fn default() -> Self {
        UsageCell {
            last_second: AtomicI64::new(i64::MIN),
            uses: AtomicU64::new(0),
            ip_high: AtomicU64::new(0),
            ip_low: AtomicU64::new(0),
        }
    }
}

/// What counting one use found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Counted {
    /// The grant held no uncollected uses: the buffer must learn that it does now.
    first: bool,
    /// Uses of an earlier day, taken out of the cell by this use (the day rolled over).
    rolled: Option<(u64, u64)>,
}

impl UsageCell {
    /// Counts one use on `day`. A compare-and-swap, not an add, so that the day and its
    /// count change together when the day rolls over (a use racing a later day's counts
    /// it there).
    #[inline]
    fn count(&self, day: u64) -> Counted {
        let mut current = self.uses.load(Ordering::Relaxed);
        loop {
            let (held_day, held) = (current >> COUNT_BITS, current & COUNT_MASK);
            let (next, counted) = if held_day >= day {
                (
                    current.saturating_add(1),
                    Counted {
                        first: held == 0,
                        rolled: None,
                    },
                )
            } else {
                (
                    day << COUNT_BITS | 1,
                    Counted {
                        first: true,
                        rolled: (held > 0).then_some((held_day, held)),
                    },
                )
            };
            match self.uses.compare_exchange_weak(
                current,
                next,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return counted,
                Err(actual) => current = actual,
            }
        }
    }

    /// Takes the uncollected uses out: `(day, count)`.
    fn collect(&self) -> (u64, u64) {
        let taken = self.uses.fetch_and(!COUNT_MASK, Ordering::Relaxed);
        (taken >> COUNT_BITS, taken & COUNT_MASK)
    }

    /// Whether this is the first use of second `now` (later ones in the same second would
    /// not change the stored last-used time).
    #[inline]
    fn new_second(&self, now: i64) -> bool {
        self.last_second.load(Ordering::Relaxed) < now
            && self.last_second.fetch_max(now, Ordering::Relaxed) < now
    }

    /// Whether `ip` differs from the address of the previous use (and remembers it).
    #[inline]
    fn address_changed(&self, ip: Option<IpAddr>) -> bool {
        let Some(ip) = ip else { return false };
        let bits = ip_bits(ip);
        // Halves of the 128-bit value: the casts keep exactly the bits meant.
        #[allow(clippy::cast_possible_truncation)]
        let (high, low) = ((bits >> 64) as u64, bits as u64);
        if self.ip_high.load(Ordering::Relaxed) == high
            && self.ip_low.load(Ordering::Relaxed) == low
        {
            return false;
        }
        self.ip_low.store(low, Ordering::Relaxed);
        self.ip_high.store(high, Ordering::Relaxed);
        true
    }
}

/// What the buffer holds for one token until the next flush.
#[derive(Debug, Default)]
struct Pending {
    /// The latest use (unix seconds) and its address, if known.
    at: i64,
    ip: Option<IpAddr>,
    /// Addresses seen since the last flush, latest time each, at most the
    /// [`USAGE_IPS_KEPT`] newest (older ones could never be shown).
    ips: Vec<(IpAddr, i64)>,
    /// Uses already taken out of grants (a day rolled over, a failed flush), per day.
    days: Vec<(u64, u64)>,
    /// Grants whose cells hold uses to collect at the flush.
    grants: Vec<Arc<Grant>>,
}

impl Pending {
    fn seen(&mut self, now: i64, ip: Option<IpAddr>) {
        if now >= self.at {
            self.at = now;
            self.ip = ip.or(self.ip);
        }
        let Some(ip) = ip else { return };
        match self.ips.iter_mut().find(|(seen, _)| *seen == ip) {
            Some((_, at)) => *at = (*at).max(now),
            None => {
                self.ips.push((ip, now));
                if self.ips.len() > USAGE_IPS_KEPT {
                    self.ips.sort_by_key(|(_, at)| std::cmp::Reverse(*at));
                    self.ips.truncate(USAGE_IPS_KEPT);
                }
            }
        }
    }

    fn add_day(&mut self, day: u64, count: u64) {
        match self.days.iter_mut().find(|(d, _)| *d == day) {
            Some((_, n)) => *n = n.saturating_add(count),
            None => self.days.push((day, count)),
        }
    }
}

/// Last-used times, daily use counts and recent addresses kept in memory and flushed in
/// batches, never one write per request (see the module doc).
#[derive(Debug, Default)]
pub struct LastUsedBuffer {
    pending: DashMap<Arc<str>, Pending, FxBuild>,
    /// Unix seconds of the oldest entry waiting to be written (0: none known).
    oldest_pending: std::sync::atomic::AtomicI64,
}

impl LastUsedBuffer {
    /// Notes one admitted use of `grant` at `now` (unix seconds) from `ip` (`None`:
    /// unknown). The hot path: see the module doc for what it costs.
    #[inline]
    pub fn note(&self, grant: &Arc<Grant>, now: i64, ip: Option<IpAddr>) {
        let cell = grant.usage();
        let counted = cell.count(day_number(now));
        let moved = cell.address_changed(ip);
        if cell.new_second(now) || moved || counted.first {
            self.record(grant, now, ip, counted);
        }
    }

    #[cold]
    fn record(&self, grant: &Arc<Grant>, now: i64, ip: Option<IpAddr>, counted: Counted) {
        let mut entry = self
            .pending
            .entry(Arc::clone(grant.token_id()))
            .or_insert_with(|| {
                let _ = self.oldest_pending.compare_exchange(
                    0,
                    now,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                );
                Pending::default()
            });
        entry.seen(now, ip);
        if let Some((day, count)) = counted.rolled {
            entry.add_day(day, count);
        }
        if counted.first && !entry.grants.iter().any(|g| Arc::ptr_eq(g, grant)) {
            entry.grants.push(Arc::clone(grant));
        }
    }

    /// The pending last-used time for a token, if any.
    pub fn pending(&self, token_id: &str) -> Option<i64> {
        self.pending.get(token_id).map(|e| e.at)
    }

    /// Unix seconds of the oldest entry not yet written, if any.
    pub fn oldest_pending(&self) -> Option<i64> {
        match self.oldest_pending.load(Ordering::Relaxed) {
            0 => None,
            t => Some(t),
        }
    }

    /// Takes everything pending out as one batch.
    fn take(&self) -> UsageBatch {
        self.oldest_pending.store(0, Ordering::Relaxed);
        let keys: Vec<Arc<str>> = self.pending.iter().map(|e| Arc::clone(e.key())).collect();
        let mut batch = UsageBatch::default();
        for key in keys {
            // Removed before its grants are collected: a use after this either is
            // collected below or finds its grant empty and registers it again.
            let Some((id, mut pending)) = self.pending.remove(&key) else {
                continue;
            };
            for grant in std::mem::take(&mut pending.grants) {
                let (day, count) = grant.usage().collect();
                if count > 0 {
                    pending.add_day(day, count);
                }
            }
            let token_id = id.to_string();
            // (Zero: an entry put back with day counts only.)
            if pending.at != 0 {
                batch.last_used.push(LastUsed {
                    token_id: token_id.clone(),
                    at: latchkey_core::from_unix(pending.at),
                    ip: pending.ip.map(|ip| ip.to_string()),
                });
            }
            for (day, count) in pending.days {
                if let Some(day) = date_of(day) {
                    batch.days.push(UsageCount {
                        token_id: token_id.clone(),
                        day,
                        count,
                    });
                }
            }
            for (ip, at) in pending.ips {
                batch.ips.push(IpSeen {
                    token_id: token_id.clone(),
                    ip: ip.to_string(),
                    at: latchkey_core::from_unix(at),
                });
            }
        }
        batch
    }

    /// Puts a batch that could not be written back, for the next flush.
    fn restore(&self, batch: UsageBatch) {
        let mut oldest = i64::MAX;
        for used in batch.last_used {
            let at = used.at.unix_timestamp();
            oldest = oldest.min(at);
            let ip = used.ip.and_then(|s| s.parse().ok());
            self.pending
                .entry(Arc::from(used.token_id.as_str()))
                .or_default()
                .seen(at, ip);
        }
        for seen in batch.ips {
            if let Ok(ip) = seen.ip.parse() {
                self.pending
                    .entry(Arc::from(seen.token_id.as_str()))
                    .or_default()
                    .seen(seen.at.unix_timestamp(), Some(ip));
            }
        }
        for used in batch.days {
            let day =
                used.day.to_julian_day() - time::OffsetDateTime::UNIX_EPOCH.date().to_julian_day();
            self.pending
                .entry(Arc::from(used.token_id.as_str()))
                .or_default()
                .add_day(u64::try_from(day).unwrap_or(0), used.count);
        }
        if oldest != i64::MAX {
            let _ = self.oldest_pending.compare_exchange(
                0,
                oldest,
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
        }
    }

    /// Writes everything pending in one store call ([`Store::record_usage`], one
    /// transaction); on failure keeps it for the next flush. Answers how many tokens the
    /// batch held, `None` when nothing was pending (and the store was not called).
    pub async fn flush(&self, store: &dyn Store) -> Result<Option<usize>, StoreError> {
        let batch = self.take();
        if batch.is_empty() {
            return Ok(None);
        }
        match store.record_usage(&batch).await {
            Ok(()) => Ok(Some(batch.last_used.len())),
            Err(e) => {
                self.restore(batch);
                Err(e)
            }
        }
    }
}

impl crate::state::AppState {
    /// Flushes this node's usage buffer (one store call, none when nothing is pending),
    /// timed into the metrics as the `record_last_used` store operation, so that
    /// `latchkey_store_latency_seconds_count{op="record_last_used"}` counts the writes:
    /// the background task every `last_used_flush_secs`, the shutdown, and reads that must
    /// see this node's uses. Answers how many tokens were written.
    pub async fn flush_usage(&self) -> Result<usize, StoreError> {
        let oldest = self.last_used.oldest_pending();
        let started = std::time::Instant::now();
        let flushed = self.last_used.flush(self.store.as_ref()).await;
        let n = match flushed {
            Ok(None) => return Ok(0),
            Ok(Some(n)) => n,
            Err(e) => {
                self.metrics.observe_store(
                    crate::metrics::StoreOp::RecordLastUsed,
                    started.elapsed(),
                    false,
                );
                return Err(e);
            }
        };
        self.metrics.observe_store(
            crate::metrics::StoreOp::RecordLastUsed,
            started.elapsed(),
            true,
        );
        self.metrics
            .last_used_flushed
            .fetch_add(n as u64, Ordering::Relaxed);
        if let Some(oldest) = oldest.filter(|_| n > 0) {
            let lag = self.clock.now_secs().saturating_sub(oldest);
            self.metrics
                .observe_flush_lag(std::time::Duration::from_secs(
                    u64::try_from(lag).unwrap_or(0),
                ));
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    // Test code: a failed step is the failure report.
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn a_cell_counts_per_day_and_hands_over_a_past_day() {
        let cell = UsageCell::default();
        assert_eq!(
            cell.count(10),
            Counted {
                first: true,
                rolled: None
            }
        );
        for _ in 0..4 {
            assert!(!cell.count(10).first);
        }
        // A use of an earlier day (another thread's clock reading) counts on the later one.
        assert!(!cell.count(9).first);
        assert_eq!(
            cell.count(11),
            Counted {
                first: true,
                rolled: Some((10, 6))
            }
        );
        assert_eq!(cell.collect(), (11, 1));
        assert_eq!(cell.collect(), (11, 0));
        assert!(cell.count(11).first, "empty again after a collection");
    }

    #[test]
    fn a_cell_reports_address_changes_only() {
        let cell = UsageCell::default();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "2001:db8::1".parse().unwrap();
        assert!(!cell.address_changed(None));
        assert!(cell.address_changed(Some(a)));
        assert!(!cell.address_changed(Some(a)));
        assert!(!cell.address_changed(None));
        assert!(cell.address_changed(Some(b)));
        assert!(cell.address_changed(Some(a)));
        assert!(cell.new_second(5));
        assert!(!cell.new_second(5));
        assert!(!cell.new_second(4));
        assert!(cell.new_second(6));
    }

    #[test]
    fn pending_keeps_the_newest_addresses_and_the_last_known_one() {
        let mut p = Pending::default();
        for i in 0..8_u8 {
            p.seen(i64::from(i), Some(IpAddr::from([10, 0, 0, i])));
        }
        p.seen(9, None);
        assert_eq!(p.at, 9);
        assert_eq!(
            p.ip,
            Some(IpAddr::from([10, 0, 0, 7])),
            "an unknown address keeps the last"
        );
        let mut kept: Vec<i64> = p.ips.iter().map(|(_, at)| *at).collect();
        kept.sort_unstable();
        assert_eq!(kept, vec![3, 4, 5, 6, 7]);
    }
}
