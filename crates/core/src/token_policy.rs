//! Verify-time policy per token (DESIGN.md §8): metadata, IP allowlists, rate limits and
//! usage credits, as pure functions and plain atomics that take `now`.
//!
//! # Budgets and leases
//!
//! A rate limit and a usage credit are both a *budget*: a pool of uses per period (a rate
//! window; a refill interval; or one period forever) kept in the store. A use must not be a
//! database write, so nodes never spend the store's pool one use at a time: each node
//! *leases* a block of uses in one store transaction ([`lease`]) and spends it from memory
//! ([`LocalBudget`]). What a node holds is its own; what it has not leased it cannot spend,
//! so the uses admitted over every node are at most what the pool granted, whatever happens
//! to a node (a `kill -9` only loses the unspent rest of its blocks).
//!
//! Blocks are sized adaptively: a node asks for about a second of its own traffic
//! ([`LocalBudget::next_want`]), and the store never hands out more than a sixteenth of
//! what is left ([`grant_size`]), so when a pool runs dry the blocks still held elsewhere
//! are small, and the last uses of a period are granted one by one.
//!
//! Usage leases also expire ([`LEASE_TTL_SECS`]): a node reports what it spent and renews
//! what it holds ([`settle`]) every few seconds, returns what it no longer needs, and gives
//! back everything on a graceful shutdown. Expiry is what lets a `PATCH` of
//! `remaining_uses` mean "N from now on, counting what nodes hold" ([`set_remaining`])
//! without ever counting a dead node's block forever.

use std::net::IpAddr;
use std::sync::atomic::{AtomicI64, AtomicU32, AtomicU64, Ordering};

use ipnet::IpNet;
use latchkey_proto::{Reason, RefillInterval};
use time::{Date, Month, OffsetDateTime, Time};

/// Largest serialised `metadata` object, in bytes.
pub const MAX_METADATA_BYTES: usize = 4096;
/// Most entries in `allowed_ips`.
pub const MAX_ALLOWED_IPS: usize = 100;
/// Longest rate-limit window (one day).
pub const MAX_WINDOW_SECS: u64 = 86_400;
/// Highest `rate_limit.limit`.
pub const MAX_RATE_LIMIT: u64 = 1_000_000_000;
/// Highest `remaining_uses` and `refill.amount`.
pub const MAX_USES: u64 = 1_000_000_000_000;
/// How long a leased block of uses stays the holder's without a renewal.
pub const LEASE_TTL_SECS: i64 = 60;
/// Clock difference between nodes that the lease accounting tolerates: the store counts a
/// lease as held this long past its expiry.
pub const CLOCK_SKEW_SECS: i64 = 30;
/// Largest block one lease hands out.
pub const MAX_LEASE: i64 = 1 << 20;

/// A field of a token policy that is not acceptable, named for the 422.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct FieldError {
    /// The field (`metadata`, `allowed_ips`, `rate_limit.window_secs`, ...).
    pub field: String,
    /// Why.
    pub message: String,
}

fn field_error(field: &str, message: impl Into<String>) -> FieldError {
    FieldError {
        field: field.to_owned(),
        message: message.into(),
    }
}

/// A token's metadata: a JSON object and its compact serialisation (what is stored, and
/// what forward-auth encodes).
#[derive(Debug, Clone, PartialEq)]
pub struct Metadata {
    /// The object.
    pub object: serde_json::Map<String, serde_json::Value>,
    /// Compact JSON of `object`, at most [`MAX_METADATA_BYTES`].
    pub compact: String,
}

impl Metadata {
    /// Reads stored compact JSON (`None` if it is not an object).
    pub fn from_stored(compact: &str) -> Option<Metadata> {
        match serde_json::from_str::<serde_json::Value>(compact) {
            Ok(serde_json::Value::Object(object)) => Some(Metadata {
                object,
                compact: compact.to_owned(),
            }),
            _ => None,
        }
    }
}

/// A rate limit: at most `limit` uses per window of `window_secs`, windows aligned to the
/// Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Uses per window (1..=[`MAX_RATE_LIMIT`]).
    pub limit: u32,
    /// Window length (1..=[`MAX_WINDOW_SECS`]).
    pub window_secs: u32,
}

/// A refill of usage credits: `remaining_uses` is set back to `amount` at each boundary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refill {
    /// Uses after each refill (1..=[`MAX_USES`]).
    pub amount: i64,
    /// Daily or monthly.
    pub interval: RefillInterval,
}

/// A token's verify-time policy as stored. `Default` is "none of it": such a token pays
/// nothing for any of this on the hot path.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TokenPolicy {
    /// Metadata returned by every check.
    pub metadata: Option<Metadata>,
    /// Networks the token may be used from (`None`: anywhere).
    pub allowed_ips: Option<Vec<IpNet>>,
    /// Rate limit.
    pub rate_limit: Option<RateLimit>,
    /// Usage credits: `Some` when uses are counted (the count itself is a budget in the
    /// store, see [`UsesState`]), with their refill if any.
    pub uses: Option<UsesPolicy>,
}

impl TokenPolicy {
    /// Whether the token has anything to check or count at use (metadata alone is not).
    pub fn enforces_anything(&self) -> bool {
        self.allowed_ips.is_some() || self.rate_limit.is_some() || self.uses.is_some()
    }

    /// Whether the policy is empty.
    pub fn is_empty(&self) -> bool {
        self.metadata.is_none() && !self.enforces_anything()
    }
}

/// Usage credits of a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UsesPolicy {
    /// Refill, if any.
    pub refill: Option<Refill>,
}

/// Where a token's usage credits stand in the store: the unleased pool, its period, and
/// what nodes hold leased. On create, `pool` is the initial `remaining_uses`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UsesState {
    /// Uses not leased to any node.
    pub pool: i64,
    /// The refill period the pool belongs to (0 without refill).
    pub period: i64,
    /// Uses leased to nodes and not reported spent.
    pub held: i64,
}

impl UsesState {
    /// The `remaining_uses` to show at `now`: the pool plus what nodes hold, or the refill
    /// amount when a refill is due and no node has asked since.
    pub fn remaining(&self, refill: Option<Refill>, now: i64) -> i64 {
        match refill {
            Some(r) if Periods::Refill(r.interval).index(now) > self.period => r.amount,
            _ => (self.pool + self.held).max(0),
        }
    }
}

// --- validation ---------------------------------------------------------------------

/// Checks `metadata`: a JSON object of at most [`MAX_METADATA_BYTES`] serialised.
pub fn validate_metadata(value: serde_json::Value) -> Result<Metadata, FieldError> {
    let serde_json::Value::Object(object) = value else {
        return Err(field_error("metadata", "metadata must be a JSON object"));
    };
    let compact = serde_json::to_string(&object)
        .map_err(|e| field_error("metadata", format!("metadata cannot be serialised: {e}")))?;
    if compact.len() > MAX_METADATA_BYTES {
        return Err(field_error(
            "metadata",
            format!(
                "metadata must be at most {MAX_METADATA_BYTES} bytes as compact JSON; this is {}",
                compact.len()
            ),
        ));
    }
    Ok(Metadata { object, compact })
}

/// Parses `allowed_ips`: IPv4 or IPv6 CIDRs, or single addresses (as /32 or /128); host
/// bits are cleared (`10.1.2.3/8` is `10.0.0.0/8`); duplicates dropped.
pub fn parse_allowed_ips(list: &[String]) -> Result<Vec<IpNet>, FieldError> {
    if list.is_empty() {
        return Err(field_error(
            "allowed_ips",
            "give at least one CIDR, or null to allow every address",
        ));
    }
    if list.len() > MAX_ALLOWED_IPS {
        return Err(field_error(
            "allowed_ips",
            format!("at most {MAX_ALLOWED_IPS} entries"),
        ));
    }
    let mut nets = Vec::with_capacity(list.len());
    for (i, text) in list.iter().enumerate() {
        let text = text.trim();
        let net = match text.parse::<IpNet>() {
            Ok(net) => net.trunc(),
            Err(_) => match text.parse::<IpAddr>() {
                Ok(ip) => IpNet::from(canonical_ip(ip)),
                Err(_) => {
                    return Err(field_error(
                        "allowed_ips",
                        format!(
                            "allowed_ips[{i}] ({text:?}) is not an IPv4 or IPv6 CIDR such as \
                             203.0.113.0/24 or 2001:db8::/32"
                        ),
                    ));
                }
            },
        };
        if !nets.contains(&net) {
            nets.push(net);
        }
    }
    Ok(nets)
}

/// Checks a rate limit from the wire.
pub fn validate_rate_limit(limit: u64, window_secs: u64) -> Result<RateLimit, FieldError> {
    if !(1..=MAX_RATE_LIMIT).contains(&limit) {
        return Err(field_error(
            "rate_limit.limit",
            format!("rate_limit.limit must be a whole number from 1 to {MAX_RATE_LIMIT}"),
        ));
    }
    if !(1..=MAX_WINDOW_SECS).contains(&window_secs) {
        return Err(field_error(
            "rate_limit.window_secs",
            format!("rate_limit.window_secs must be from 1 to {MAX_WINDOW_SECS} seconds (one day)"),
        ));
    }
    Ok(RateLimit {
        limit: u32::try_from(limit).unwrap_or(u32::MAX),
        window_secs: u32::try_from(window_secs).unwrap_or(u32::MAX),
    })
}

/// Checks `remaining_uses` from the wire.
pub fn validate_remaining_uses(n: i64) -> Result<i64, FieldError> {
    if n < 0 {
        return Err(field_error(
            "remaining_uses",
            "remaining_uses must be 0 or more (null: unlimited)",
        ));
    }
    if n as u64 > MAX_USES {
        return Err(field_error(
            "remaining_uses",
            format!("remaining_uses must be at most {MAX_USES}"),
        ));
    }
    Ok(n)
}

/// Checks a refill from the wire.
pub fn validate_refill(amount: u64, interval: RefillInterval) -> Result<Refill, FieldError> {
    if !(1..=MAX_USES).contains(&amount) {
        return Err(field_error(
            "refill.amount",
            format!("refill.amount must be a whole number from 1 to {MAX_USES}"),
        ));
    }
    Ok(Refill {
        amount: amount as i64,
        interval,
    })
}

// --- checks at use ------------------------------------------------------------------

/// An IPv4-mapped IPv6 address (`::ffff:192.0.2.1`) as the IPv4 address it is.
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Whether a use from `ip` is allowed by `allowed` (`None`: anywhere). An unknown address
/// is allowed only when there is no list.
pub fn ip_allowed(allowed: Option<&[IpNet]>, ip: Option<IpAddr>) -> bool {
    match (allowed, ip) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(nets), Some(ip)) => {
            let ip = canonical_ip(ip);
            nets.iter().any(|net| net.contains(&ip))
        }
    }
}

/// The first of the policy reasons that applies, in DESIGN.md's precedence
/// (`ip_not_allowed` > `usage_exceeded` > `rate_limited`), from what the checks found.
pub fn policy_reason(ip_ok: bool, uses_left: bool, rate_ok: bool) -> Result<(), Reason> {
    if !ip_ok {
        return Err(Reason::IpNotAllowed);
    }
    if !uses_left {
        return Err(Reason::UsageExceeded);
    }
    if !rate_ok {
        return Err(Reason::RateLimited);
    }
    Ok(())
}

// --- periods ------------------------------------------------------------------------

/// How a budget's time is cut into periods.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Periods {
    /// One period forever (usage credits without refill).
    Never,
    /// Fixed windows of this many seconds, aligned to the Unix epoch (rate limits).
    Window(u32),
    /// Refill intervals (days or months, UTC).
    Refill(RefillInterval),
}

fn month_index(year: i32, month: Month) -> i64 {
    i64::from(year) * 12 + i64::from(u8::from(month)) - 1
}

impl Periods {
    /// The period `now` (unix seconds) falls in.
    #[inline]
    pub fn index(self, now: i64) -> i64 {
        match self {
            Periods::Never => 0,
            Periods::Window(w) => now.div_euclid(i64::from(w.max(1))),
            Periods::Refill(RefillInterval::Daily) => now.div_euclid(86_400),
            Periods::Refill(RefillInterval::Monthly) => {
                let at = crate::from_unix(now);
                month_index(at.year(), at.month())
            }
        }
    }

    /// When period `index` ends (unix seconds; `i64::MAX` for [`Periods::Never`]).
    pub fn end(self, index: i64) -> i64 {
        match self {
            Periods::Never => i64::MAX,
            Periods::Window(w) => (index + 1).saturating_mul(i64::from(w.max(1))),
            Periods::Refill(RefillInterval::Daily) => (index + 1).saturating_mul(86_400),
            Periods::Refill(RefillInterval::Monthly) => {
                let next = index + 1;
                let year = i32::try_from(next.div_euclid(12)).unwrap_or(9999);
                let month = u8::try_from(next.rem_euclid(12) + 1).unwrap_or(1);
                match (Month::try_from(month), year) {
                    (Ok(m), y) => Date::from_calendar_date(y, m, 1)
                        .map(|d| OffsetDateTime::new_utc(d, Time::MIDNIGHT).unix_timestamp())
                        .unwrap_or(i64::MAX),
                    (Err(_), _) => i64::MAX,
                }
            }
        }
    }
}

/// Which of a token's two budgets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BudgetKind {
    /// Usage credits (`remaining_uses`).
    Uses,
    /// Rate limit.
    Rate,
}

impl BudgetKind {
    /// Column value.
    pub fn as_str(self) -> &'static str {
        match self {
            BudgetKind::Uses => "uses",
            BudgetKind::Rate => "rate",
        }
    }

    /// Parses a column value.
    pub fn parse(text: &str) -> Option<BudgetKind> {
        match text {
            "uses" => Some(BudgetKind::Uses),
            "rate" => Some(BudgetKind::Rate),
            _ => None,
        }
    }
}

/// How one budget of a token fills: its periods, and the pool at the start of each new
/// one (`None`: never refilled).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BudgetRule {
    /// Which budget.
    pub kind: BudgetKind,
    /// Periods.
    pub periods: Periods,
    /// Pool at the start of a period.
    pub fill: Option<i64>,
}

impl BudgetRule {
    /// The rule of a rate limit.
    pub fn rate(limit: RateLimit) -> BudgetRule {
        BudgetRule {
            kind: BudgetKind::Rate,
            periods: Periods::Window(limit.window_secs),
            fill: Some(i64::from(limit.limit)),
        }
    }

    /// The rule of usage credits.
    pub fn uses(policy: UsesPolicy) -> BudgetRule {
        match policy.refill {
            Some(r) => BudgetRule {
                kind: BudgetKind::Uses,
                periods: Periods::Refill(r.interval),
                fill: Some(r.amount),
            },
            None => BudgetRule {
                kind: BudgetKind::Uses,
                periods: Periods::Never,
                fill: None,
            },
        }
    }

    /// The rule of `kind` for a token's policy, if it has that budget.
    pub fn of(policy: &TokenPolicy, kind: BudgetKind) -> Option<BudgetRule> {
        match kind {
            BudgetKind::Rate => policy.rate_limit.map(BudgetRule::rate),
            BudgetKind::Uses => policy.uses.map(BudgetRule::uses),
        }
    }
}

// --- store side: the pool and its leases --------------------------------------------

/// A budget's pool as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BudgetRow {
    /// The period the pool belongs to.
    pub period: i64,
    /// Uses not leased to any node.
    pub pool: i64,
}

/// What one node holds of one budget, as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseRow {
    /// The period it was leased in.
    pub period: i64,
    /// Leased and not reported spent or returned.
    pub held: i64,
    /// Unix seconds after which the node may not spend it (the store counts it a further
    /// [`CLOCK_SKEW_SECS`]).
    pub expires_at: i64,
}

impl LeaseRow {
    /// Whether the store still counts this lease as held at `now`.
    pub fn is_live(&self, now: i64) -> bool {
        now < self.expires_at.saturating_add(CLOCK_SKEW_SECS)
    }
}

/// The store's answer to a lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseGrant {
    /// Uses granted (0: the pool is empty for this period, or the caller's clock is behind
    /// the stored period).
    pub granted: i64,
    /// The period they belong to.
    pub period: i64,
    /// What the pool still has after this grant (for `RateLimit-Remaining`).
    pub pool_left: i64,
    /// Until when the node may spend what it holds (unix seconds).
    pub valid_until: i64,
}

/// How big a block the store hands out: what was asked, at most a sixteenth of the pool
/// (at least one while anything is left), at most [`MAX_LEASE`].
pub fn grant_size(pool: i64, want: i64) -> i64 {
    if pool <= 0 {
        return 0;
    }
    want.clamp(1, MAX_LEASE).min((pool / 16).max(1)).min(pool)
}

/// The pool as it stands at `now`: a new period starts refilled (`fill`), or unchanged
/// when the rule never refills. `None` row: a rate budget nobody has leased yet starts
/// full; usage credits without a row have nothing.
pub fn current_row(row: Option<BudgetRow>, rule: BudgetRule, now: i64) -> BudgetRow {
    let period = rule.periods.index(now);
    match (row, rule.fill) {
        (Some(row), Some(fill)) if row.period < period => BudgetRow { period, pool: fill },
        (Some(row), _) => row,
        (None, Some(fill)) if rule.kind == BudgetKind::Rate => BudgetRow { period, pool: fill },
        (None, _) => BudgetRow { period, pool: 0 },
    }
}

/// The outcome of [`lease`]: rows to write and the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseOutcome {
    /// The pool after the lease.
    pub row: BudgetRow,
    /// The caller's lease after it (`None`: delete).
    pub lease: Option<LeaseRow>,
    /// Whether the period rolled over (then every other node's lease row of an older
    /// period is void and may be deleted).
    pub rolled: bool,
    /// The answer.
    pub grant: LeaseGrant,
}

/// A node asks for `want` more uses at `now` (its clock). The caller's existing lease row
/// is kept and grows; a lease of an older period is void.
pub fn lease(
    row: Option<BudgetRow>,
    held: Option<LeaseRow>,
    rule: BudgetRule,
    now: i64,
    want: i64,
) -> LeaseOutcome {
    let caller_period = rule.periods.index(now);
    let current = current_row(row, rule, now);
    let rolled = row.is_some_and(|r| r.period != current.period);
    let valid_until = match rule.kind {
        BudgetKind::Uses => now.saturating_add(LEASE_TTL_SECS),
        // A rate block is only good in its own window.
        BudgetKind::Rate => rule.periods.end(current.period),
    };
    if current.period != caller_period {
        // The stored period is ahead of the caller's clock: nothing for the past.
        return LeaseOutcome {
            row: current,
            lease: held.filter(|l| l.period == current.period),
            rolled,
            grant: LeaseGrant {
                granted: 0,
                period: current.period,
                pool_left: current.pool,
                valid_until,
            },
        };
    }
    let granted = grant_size(current.pool, want);
    let row = BudgetRow {
        period: current.period,
        pool: current.pool - granted,
    };
    let kept = held
        .filter(|l| l.period == current.period && l.is_live(now))
        .map_or(0, |l| l.held);
    let lease = (kept + granted > 0).then_some(LeaseRow {
        period: current.period,
        held: kept + granted,
        expires_at: valid_until,
    });
    LeaseOutcome {
        row,
        lease,
        rolled,
        grant: LeaseGrant {
            granted,
            period: current.period,
            pool_left: row.pool,
            valid_until,
        },
    }
}

/// A node's report about one lease: what it spent since the last report, and what it gives
/// back (it will not spend that any more).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseReport {
    /// Token.
    pub token_id: String,
    /// Budget.
    pub kind: BudgetKind,
    /// The period the node's block belongs to.
    pub period: i64,
    /// Uses spent since the last report.
    pub consumed: i64,
    /// Uses given back.
    pub returned: i64,
}

/// The outcome of [`settle`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SettleOutcome {
    /// The pool after the report.
    pub row: BudgetRow,
    /// The lease after it (`None`: delete).
    pub lease: Option<LeaseRow>,
    /// Until when the node may spend what it still holds (`None`: nothing; stop spending).
    pub valid_until: Option<i64>,
}

/// Applies a node's report at `now`: returned uses go back to the pool if the lease is
/// still live and of the pool's period, and what the node keeps is renewed. A report about
/// an expired or older lease credits nothing (the store already counts that block spent).
pub fn settle(
    row: BudgetRow,
    held: Option<LeaseRow>,
    report: &LeaseReport,
    rule: BudgetRule,
    now: i64,
) -> SettleOutcome {
    let row = current_row(Some(row), rule, now);
    let Some(lease) =
        held.filter(|l| l.period == row.period && l.period == report.period && l.is_live(now))
    else {
        return SettleOutcome {
            row,
            lease: None,
            valid_until: None,
        };
    };
    let consumed = report.consumed.clamp(0, lease.held);
    let unspent = lease.held - consumed;
    let credit = report.returned.clamp(0, unspent);
    let keep = unspent - credit;
    let row = BudgetRow {
        period: row.period,
        pool: row.pool + credit,
    };
    let valid_until = match rule.kind {
        BudgetKind::Uses => now.saturating_add(LEASE_TTL_SECS),
        BudgetKind::Rate => rule.periods.end(row.period),
    };
    // A node may only spend a renewed block if its old one had not run out on it.
    let still_valid = now < lease.expires_at;
    let lease = (keep > 0).then_some(LeaseRow {
        period: row.period,
        held: keep,
        expires_at: if still_valid {
            valid_until
        } else {
            lease.expires_at
        },
    });
    SettleOutcome {
        row,
        valid_until: lease.filter(|_| still_valid).map(|l| l.expires_at),
        lease,
    }
}

/// `PATCH remaining_uses: n` at `now`: `n` uses from now on, counting what nodes hold (so
/// the pool is `n` less every live lease of the current period). The pool goes below 0
/// while nodes hold more than `n`: nothing more is granted, and what they give back
/// ([`settle`]) brings it to `n` less what they spent, so the uses after the `PATCH` are
/// never more than `n`.
pub fn set_remaining(
    row: Option<BudgetRow>,
    leases: &[LeaseRow],
    rule: BudgetRule,
    n: i64,
    now: i64,
) -> BudgetRow {
    let current = current_row(row, rule, now);
    let held: i64 = leases
        .iter()
        .filter(|l| l.period == current.period && l.is_live(now))
        .map(|l| l.held)
        .sum();
    BudgetRow {
        period: current.period,
        pool: n - held,
    }
}

// --- node side: the block in memory -------------------------------------------------

/// What [`LocalBudget::try_take`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Take {
    /// One use taken; `left` remain in this node's block.
    Taken {
        /// Left in the block.
        left: u32,
    },
    /// The store said the pool is empty for this period; do not ask again before
    /// `retry_at` (unix seconds).
    Exhausted,
    /// Nothing usable in memory: lease from the store.
    NeedLease,
}

const REMAINING_MASK: u64 = (1 << 31) - 1;
const EXHAUSTED_BIT: u64 = 1 << 31;

fn pack(period: i64, remaining: u64, exhausted: bool) -> u64 {
    ((period as u64 & 0xffff_ffff) << 32)
        | (remaining.min(REMAINING_MASK))
        | if exhausted { EXHAUSTED_BIT } else { 0 }
}

fn period_bits(period: i64) -> u64 {
    period as u64 & 0xffff_ffff
}

/// One node's block of one budget, spent with atomics: the hot path takes a use with one
/// compare-and-swap. Only the low 32 bits of the period are kept (enough to tell the
/// current period from a previous one).
#[derive(Debug)]
pub struct LocalBudget {
    /// Period (high 32 bits) | exhausted flag (bit 31) | remaining (low 31 bits).
    state: AtomicU64,
    /// Unix seconds until which the block may be spent.
    valid_until: AtomicI64,
    /// When an exhausted budget may ask the store again.
    retry_at: AtomicI64,
    /// Uses spent since the last report.
    consumed: AtomicI64,
    /// The period `consumed` counts for.
    consumed_period: AtomicI64,
    /// Unix seconds of the last use (for returning idle blocks).
    last_use: AtomicI64,
    /// The size of the last lease asked for.
    last_want: AtomicU32,
    /// When that lease was asked for.
    last_lease_at: AtomicI64,
    /// What the store's pool had left after the last grant.
    pool_left: AtomicI64,
}

impl Default for LocalBudget {
    fn default() -> Self {
        LocalBudget {
            state: AtomicU64::new(pack(-1, 0, false)),
            valid_until: AtomicI64::new(i64::MIN),
            retry_at: AtomicI64::new(i64::MIN),
            consumed: AtomicI64::new(0),
            consumed_period: AtomicI64::new(i64::MIN),
            last_use: AtomicI64::new(i64::MIN),
            last_want: AtomicU32::new(0),
            last_lease_at: AtomicI64::new(i64::MIN),
            pool_left: AtomicI64::new(0),
        }
    }
}

/// How many uses a fresh budget asks for first.
pub const FIRST_WANT: u32 = 16;

impl LocalBudget {
    /// Takes one use in `period` at `now`, from memory only.
    #[inline]
    pub fn try_take(&self, period: i64, now: i64) -> Take {
        let mut current = self.state.load(Ordering::Acquire);
        loop {
            if current >> 32 != period_bits(period) {
                return Take::NeedLease;
            }
            let remaining = current & REMAINING_MASK;
            if remaining == 0 {
                if current & EXHAUSTED_BIT != 0 && now < self.retry_at.load(Ordering::Relaxed) {
                    return Take::Exhausted;
                }
                return Take::NeedLease;
            }
            if now >= self.valid_until.load(Ordering::Acquire) {
                return Take::NeedLease;
            }
            match self.state.compare_exchange_weak(
                current,
                current - 1,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    self.consumed.fetch_add(1, Ordering::Relaxed);
                    if self.last_use.load(Ordering::Relaxed) < now {
                        self.last_use.store(now, Ordering::Relaxed);
                    }
                    return Take::Taken {
                        left: (remaining - 1) as u32,
                    };
                }
                Err(actual) => current = actual,
            }
        }
    }

    /// Gives one use back (a use taken and then refused for another reason).
    pub fn untake(&self, period: i64) {
        let _ = self
            .state
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |s| {
                (s >> 32 == period_bits(period) && s & REMAINING_MASK < REMAINING_MASK)
                    .then_some(s + 1)
            });
        self.consumed.fetch_sub(1, Ordering::Relaxed);
    }

    /// Uses left in memory for `period` (0 if the block is of another period).
    pub fn left(&self, period: i64) -> u32 {
        let s = self.state.load(Ordering::Acquire);
        if s >> 32 == period_bits(period) {
            (s & REMAINING_MASK) as u32
        } else {
            0
        }
    }

    /// Whether the store said this period's pool is empty (and the retry time is not yet).
    pub fn is_exhausted(&self, period: i64, now: i64) -> bool {
        let s = self.state.load(Ordering::Acquire);
        s >> 32 == period_bits(period)
            && s & REMAINING_MASK == 0
            && s & EXHAUSTED_BIT != 0
            && now < self.retry_at.load(Ordering::Relaxed)
    }

    /// Uses spent since the last report (what the store does not know of yet).
    pub fn unreported(&self) -> i64 {
        self.consumed.load(Ordering::Relaxed)
    }

    /// Whether this node holds any uses in memory (of whatever period).
    pub fn holds(&self) -> bool {
        self.state.load(Ordering::Acquire) & REMAINING_MASK != 0
    }

    /// What the store's pool had left at the last grant.
    pub fn pool_left(&self) -> i64 {
        self.pool_left.load(Ordering::Relaxed)
    }

    /// How many uses to ask for next at `now`: about a second of this node's traffic, from
    /// how fast the last block went (doubling while blocks last under a second, halving
    /// when one lasted over ten).
    pub fn next_want(&self, now: i64) -> i64 {
        let last = self.last_want.load(Ordering::Relaxed);
        if last == 0 {
            return i64::from(FIRST_WANT);
        }
        let age = now.saturating_sub(self.last_lease_at.load(Ordering::Relaxed));
        let next = if age <= 1 {
            last.saturating_mul(2)
        } else if age > 10 {
            last / 2
        } else {
            last
        };
        i64::from(next.clamp(1, MAX_LEASE as u32))
    }

    /// Records that `want` was asked for at `now`.
    pub fn asked(&self, want: i64, now: i64) {
        self.last_want
            .store(u32::try_from(want).unwrap_or(u32::MAX), Ordering::Relaxed);
        self.last_lease_at.store(now, Ordering::Relaxed);
    }

    /// Adds a grant received at `now` for its period (a block of another period, or one
    /// past its validity, is dropped: the store no longer counts it as this node's); a zero
    /// grant with nothing left marks the budget exhausted until `retry_at`.
    pub fn add(&self, grant: &LeaseGrant, now: i64, retry_at: i64) {
        self.pool_left.store(grant.pool_left, Ordering::Relaxed);
        if self.consumed_period.swap(grant.period, Ordering::AcqRel) != grant.period {
            self.consumed.store(0, Ordering::Relaxed);
        }
        let granted = u64::try_from(grant.granted).unwrap_or(0);
        let expired = now >= self.valid_until.load(Ordering::Acquire);
        let mut current = self.state.load(Ordering::Acquire);
        loop {
            let same = !expired && current >> 32 == period_bits(grant.period);
            let remaining = if same { current & REMAINING_MASK } else { 0 } + granted;
            let next = pack(grant.period, remaining, remaining == 0);
            match self.state.compare_exchange_weak(
                current,
                next,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => break,
                Err(actual) => current = actual,
            }
        }
        self.valid_until.store(grant.valid_until, Ordering::Release);
        if grant.granted == 0 {
            self.retry_at.store(retry_at, Ordering::Relaxed);
        }
    }

    /// The block may be spent until `valid_until` (a renewal), or not at all (`None`).
    pub fn renewed(&self, valid_until: Option<i64>) {
        match valid_until {
            Some(until) => self.valid_until.store(until, Ordering::Release),
            None => {
                self.valid_until.store(i64::MIN, Ordering::Release);
                let _ = self
                    .state
                    .fetch_update(Ordering::AcqRel, Ordering::Acquire, |s| {
                        Some(s & !(REMAINING_MASK | EXHAUSTED_BIT))
                    });
            }
        }
    }

    /// Forgets that the store said "empty" (after the token changed).
    pub fn clear_exhausted(&self) {
        let _ = self
            .state
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |s| {
                Some(s & !EXHAUSTED_BIT)
            });
    }

    /// The report to send now: uses spent since the last one, and the whole block given
    /// back when `give_back` (shutdown, or idle since `idle_before`).
    pub fn report(&self, give_back: bool, idle_before: i64) -> Option<(i64, i64, i64)> {
        let period = self.consumed_period.load(Ordering::Acquire);
        if period == i64::MIN {
            return None;
        }
        let idle = self.last_use.load(Ordering::Relaxed) < idle_before;
        let returned = if give_back || idle {
            let previous = self
                .state
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |s| {
                    Some(s & !REMAINING_MASK)
                })
                .unwrap_or(0);
            if previous >> 32 == period_bits(period) {
                (previous & REMAINING_MASK) as i64
            } else {
                0
            }
        } else {
            0
        };
        let consumed = self.consumed.swap(0, Ordering::AcqRel);
        (consumed != 0 || returned != 0 || self.left(period) > 0)
            .then_some((period, consumed, returned))
    }

    /// Puts back a count taken by [`LocalBudget::report`] when the report could not be
    /// delivered (the returned part is not put back: it is simply not spent; the store
    /// will count it until the lease expires).
    pub fn unreport(&self, consumed: i64) {
        self.consumed.fetch_add(consumed, Ordering::Relaxed);
    }
}

// --- narrowing: a token never widens its own policy ---------------------------------

/// Whether every network of `new` lies inside one of `old`.
pub fn ips_within(new: &[IpNet], old: &[IpNet]) -> bool {
    new.iter().all(|n| old.iter().any(|o| o.contains(n)))
}

/// Whether rate limit `new` allows no more than `old` (`None`: no limit).
pub fn rate_within(new: Option<RateLimit>, old: Option<RateLimit>) -> bool {
    match (new, old) {
        (_, None) => true,
        (None, Some(_)) => false,
        (Some(n), Some(o)) => n.limit <= o.limit && n.window_secs >= o.window_secs,
    }
}

/// Whether refill `new` gives no more than `old`.
pub fn refill_within(new: Option<Refill>, old: Option<Refill>) -> bool {
    match (new, old) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(n), Some(o)) => {
            n.amount <= o.amount
                && (n.interval == o.interval || n.interval == RefillInterval::Monthly)
        }
    }
}

#[cfg(test)]
mod tests;
