//! This node's side of the verify-time budgets (rate limits and usage credits, DESIGN.md
//! §8): one [`LocalBudget`] per token and budget kind, spent from memory; blocks of uses
//! leased from the store when memory has none, reported and renewed by [`Budgets::settle`]
//! every few seconds, and given back on a graceful shutdown. A use is never a database
//! write: only a lease (about once a second of a token's traffic on this node) and a
//! settle are. See `latchkey_core::token_policy` for the accounting, and why a `kill -9`
//! can never make the cluster admit more than granted.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

use dashmap::DashMap;
use latchkey_core::token_policy::{
    BudgetKind, BudgetRule, LeaseReport, LocalBudget, Periods, Take,
};
use latchkey_store::{Store, StoreError};

use crate::fasthash::FxBuild;

/// A budget unused this long is given back to the store at the next settle.
pub const IDLE_SECS: i64 = 10;

/// One budget of one token on this node.
#[derive(Debug)]
struct NodeBudget {
    local: LocalBudget,
    /// The rule it was made for: a use under another (the token's limit or refill
    /// changed) replaces it. The rule, not the policy: a token reloaded into the cache
    /// unchanged (its change-feed event after a first use by a miss, a PATCH of its
    /// metadata or of `remaining_uses`) keeps its block, which the store still counts as
    /// this node's.
    rule: BudgetRule,
    /// Held while leasing, so concurrent uses that find memory empty lease once; and while
    /// a replaced budget's block is given back, so no lease lands in it afterwards.
    leasing: Arc<tokio::sync::Mutex<()>>,
    /// Unix seconds of the last use (for dropping idle entries).
    touched: AtomicI64,
    /// Replaced in the map: a use that still holds it takes the current one instead of
    /// leasing into it (a block leased there would be stranded until its lease expired).
    retired: AtomicBool,
}

/// One budget named by its token and kind.
type Named = (Arc<str>, BudgetKind, Arc<NodeBudget>);

/// Why a use was refused by a budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Nothing left for this period (`retry_after` seconds until the next one, if any).
    Exhausted {
        /// Seconds until the budget's next period (`None`: never, for credits without
        /// refill).
        retry_after: Option<u64>,
        /// What the cluster's pool had left at the last grant (≈ 0).
        remaining: u64,
    },
    /// The store could not be asked for a lease.
    Unavailable,
}

/// A use that was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Taken {
    /// The period it was taken in (to give it back).
    pub period: i64,
    /// About how many are left in the cluster (this node's block plus the store's pool
    /// at the last grant).
    pub remaining: u64,
}

/// The budgets of this node.
#[derive(Debug)]
pub struct Budgets {
    node_id: String,
    map: DashMap<(Arc<str>, BudgetKind), Arc<NodeBudget>, FxBuild>,
    /// Budgets replaced (the token changed) whose blocks are still to be given back.
    retired: std::sync::Mutex<Vec<Named>>,
}

impl Budgets {
    /// This node's budgets, leased under `node_id` (unique per process start: a restarted
    /// node's old leases simply expire).
    pub fn new(node_id: String) -> Budgets {
        Budgets {
            node_id,
            map: DashMap::default(),
            retired: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// The id this node leases under.
    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    fn entry(&self, token_id: &Arc<str>, rule: BudgetRule) -> Arc<NodeBudget> {
        let key = (Arc::clone(token_id), rule.kind);
        if let Some(found) = self.map.get(&key)
            && found.rule == rule
        {
            return Arc::clone(found.value());
        }
        let fresh = Arc::new(NodeBudget {
            local: LocalBudget::default(),
            rule,
            leasing: Arc::new(tokio::sync::Mutex::new(())),
            touched: AtomicI64::new(i64::MIN),
            retired: AtomicBool::new(false),
        });
        let mut replaced = None;
        let chosen = match self.map.entry(key) {
            dashmap::Entry::Occupied(mut slot) => {
                if slot.get().rule == rule {
                    Arc::clone(slot.get())
                } else {
                    replaced = Some(slot.insert(Arc::clone(&fresh)));
                    fresh
                }
            }
            dashmap::Entry::Vacant(slot) => Arc::clone(slot.insert(fresh).value()),
        };
        if let Some(old) = replaced {
            old.retired.store(true, Ordering::Release);
            if let Ok(mut retired) = self.retired.lock() {
                retired.push((Arc::clone(token_id), rule.kind, old));
            }
        }
        chosen
    }

    /// Takes one use of `rule`'s budget for `token_id` at `now` (unix seconds): from
    /// memory, or after leasing a block from the store.
    pub async fn take(
        &self,
        store: &dyn Store,
        token_id: &Arc<str>,
        rule: BudgetRule,
        now: i64,
    ) -> Result<Taken, Refused> {
        let mut budget = self.entry(token_id, rule);
        if budget.touched.load(Ordering::Relaxed) < now {
            budget.touched.store(now, Ordering::Relaxed);
        }
        let period = rule.periods.index(now);
        let answer = |take: Take, budget: &NodeBudget| match take {
            Take::Taken { left } => Some(Ok(Taken {
                period,
                remaining: u64::from(left)
                    .saturating_add(u64::try_from(budget.local.pool_left()).unwrap_or(0)),
            })),
            Take::Exhausted => Some(Err(exhausted(rule, period, now))),
            Take::NeedLease => None,
        };
        if let Some(done) = answer(budget.local.try_take(period, now), &budget) {
            return done;
        }
        let mut leasing = budget.leasing.lock().await;
        // Replaced while this use waited (bounded: a use under a rule that changed again
        // meanwhile leases where it stands, as the store drops such blocks anyway).
        for _ in 0..2 {
            if !budget.retired.load(Ordering::Acquire) {
                break;
            }
            drop(leasing);
            budget = self.entry(token_id, rule);
            leasing = budget.leasing.lock().await;
        }
        let _leasing = leasing;
        if let Some(done) = answer(budget.local.try_take(period, now), &budget) {
            return done;
        }
        // The token changed here: what this node held under its old policy goes back
        // first, so the pool the new lease draws on has it.
        self.give_back_retired(store, token_id, now).await;
        let want = budget.local.next_want(now);
        budget.local.asked(want, now);
        match store
            .lease_budget(now, token_id, rule.kind, &self.node_id, want)
            .await
        {
            Ok(Some(grant)) => budget.local.add(&grant, now, now + 1),
            // The budget is gone (the policy changed and this node has not heard yet):
            // nothing to count against.
            Ok(None) => {
                return Ok(Taken {
                    period,
                    remaining: 0,
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not lease uses from the store");
                return Err(Refused::Unavailable);
            }
        }
        match budget.local.try_take(period, now) {
            Take::Taken { left } => Ok(Taken {
                period,
                remaining: u64::from(left)
                    .saturating_add(u64::try_from(budget.local.pool_left()).unwrap_or(0)),
            }),
            // Empty, or the store's period is ahead of this node's clock.
            Take::Exhausted | Take::NeedLease => Err(exhausted(rule, period, now)),
        }
    }

    /// Gives back a use taken by [`Budgets::take`] (the request was refused for another
    /// reason).
    pub fn untake(&self, token_id: &Arc<str>, kind: BudgetKind, taken: Taken) {
        if let Some(budget) = self.map.get(&(Arc::clone(token_id), kind)) {
            budget.local.untake(taken.period);
        }
    }

    /// Uses of a token's credits spent here and not yet reported to the store.
    pub fn unreported_uses(&self, token_id: &str) -> i64 {
        let key: (Arc<str>, BudgetKind) = (Arc::from(token_id), BudgetKind::Uses);
        self.map.get(&key).map_or(0, |b| b.local.unreported())
    }

    /// Gives back the replaced budgets of `token_id` before a lease (the caller holds that
    /// budget's leasing lock, so this never waits for another: a replaced budget some use
    /// is still leasing into stays for the next settle, which waits for it).
    async fn give_back_retired(&self, store: &dyn Store, token_id: &str, now: i64) {
        let mut mine = Vec::new();
        let mut guards = Vec::new();
        if let Ok(mut retired) = self.retired.lock() {
            let mut rest = Vec::new();
            for named in retired.drain(..) {
                match (&*named.0 == token_id)
                    .then(|| Arc::clone(&named.2.leasing).try_lock_owned().ok())
                    .flatten()
                {
                    Some(guard) => {
                        guards.push(guard);
                        mine.push(named);
                    }
                    None => rest.push(named),
                }
            }
            *retired = rest;
        }
        if mine.is_empty() {
            return;
        }
        self.report(store, now, mine, true).await;
        drop(guards);
    }

    /// Gives back replaced budgets' blocks, each under its leasing lock (so a use that
    /// was leasing into one when it was replaced is done first, and none leases into it
    /// after: it sees `retired` under that lock).
    async fn report_retired(&self, store: &dyn Store, now: i64, budgets: Vec<Named>) {
        let held: Vec<Arc<NodeBudget>> = budgets.iter().map(|(_, _, b)| Arc::clone(b)).collect();
        let mut guards = Vec::with_capacity(held.len());
        for budget in &held {
            guards.push(budget.leasing.lock().await);
        }
        self.report(store, now, budgets, true).await;
        drop(guards);
    }

    async fn report(&self, store: &dyn Store, now: i64, budgets: Vec<Named>, give_back: bool) {
        let mut reports = Vec::new();
        let mut sent = Vec::new();
        for (token_id, kind, budget) in budgets {
            if let Some((period, consumed, returned)) =
                budget.local.report(give_back, now - IDLE_SECS)
            {
                reports.push(LeaseReport {
                    token_id: token_id.to_string(),
                    kind,
                    period,
                    consumed,
                    returned,
                });
                sent.push((budget, consumed));
            }
        }
        if reports.is_empty() {
            return;
        }
        match store.settle_leases(now, &self.node_id, reports).await {
            Ok(answers) => {
                for ((budget, _), until) in sent.iter().zip(answers) {
                    budget.local.renewed(until);
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not report spent uses; will retry");
                for (budget, consumed) in sent {
                    budget.local.unreport(consumed);
                }
            }
        }
    }

    /// Reports what this node spent of one token's budgets and gives back what it holds
    /// (before a `PATCH` of its credits, so that "n from now on" is exact here).
    pub async fn settle_token(&self, store: &dyn Store, token_id: &str, now: i64) {
        let mine: Vec<_> = self
            .map
            .iter()
            .filter(|e| &*e.key().0 == token_id)
            .map(|e| (Arc::clone(&e.key().0), e.key().1, Arc::clone(e.value())))
            .collect();
        self.report(store, now, mine, true).await;
    }

    /// Reports what this node spent, renews what it keeps and gives back idle blocks (and,
    /// with `shutdown`, everything); drops budgets idle for a minute.
    pub async fn settle(
        &self,
        store: &dyn Store,
        now: i64,
        shutdown: bool,
    ) -> Result<(), StoreError> {
        let retired: Vec<_> = match self.retired.lock() {
            Ok(mut retired) => retired.drain(..).collect(),
            Err(_) => Vec::new(),
        };
        self.report_retired(store, now, retired).await;
        let all: Vec<_> = self
            .map
            .iter()
            .map(|e| (Arc::clone(&e.key().0), e.key().1, Arc::clone(e.value())))
            .collect();
        self.report(store, now, all, shutdown).await;
        self.map.retain(|_, b| {
            b.touched.load(Ordering::Relaxed) >= now - 6 * IDLE_SECS
                || b.local.unreported() != 0
                || b.local.holds()
        });
        Ok(())
    }

    /// Number of budgets held in memory.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether no budget is held.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

fn exhausted(rule: BudgetRule, period: i64, now: i64) -> Refused {
    let retry_after = match rule.periods {
        Periods::Never => None,
        periods => Some(u64::try_from(periods.end(period).saturating_sub(now)).unwrap_or(0)),
    };
    Refused::Exhausted {
        retry_after: retry_after.map(|s| s.max(1)),
        remaining: 0,
    }
}
