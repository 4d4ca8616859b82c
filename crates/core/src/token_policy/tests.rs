use std::collections::HashMap;

use proptest::prelude::*;

use super::*;

#[test]
fn metadata_must_be_a_small_object() {
    let ok = validate_metadata(serde_json::json!({"plan": "pro", "n": 1})).unwrap();
    assert_eq!(ok.compact, r#"{"n":1,"plan":"pro"}"#);
    for bad in [
        serde_json::json!([1]),
        serde_json::json!("x"),
        serde_json::json!(null),
    ] {
        assert_eq!(validate_metadata(bad).unwrap_err().field, "metadata");
    }
    let big = serde_json::json!({"k": "x".repeat(MAX_METADATA_BYTES)});
    assert_eq!(validate_metadata(big).unwrap_err().field, "metadata");
    // Exactly at the limit is fine: {"k":"…"} is 8 bytes of framing.
    let edge = serde_json::json!({"k": "x".repeat(MAX_METADATA_BYTES - 8)});
    assert_eq!(
        validate_metadata(edge).unwrap().compact.len(),
        MAX_METADATA_BYTES
    );
    assert!(Metadata::from_stored(r#"{"a":1}"#).is_some());
    assert!(Metadata::from_stored("[1]").is_none());
}

#[test]
fn allowed_ips_parse_v4_v6_and_single_addresses() {
    let nets = parse_allowed_ips(&[
        "203.0.113.7/24".into(),
        "2001:db8::/32".into(),
        "198.51.100.1".into(),
        "::1".into(),
        "203.0.113.0/24".into(),
    ])
    .unwrap();
    let shown: Vec<String> = nets.iter().map(ToString::to_string).collect();
    assert_eq!(
        shown,
        [
            "203.0.113.0/24",
            "2001:db8::/32",
            "198.51.100.1/32",
            "::1/128"
        ]
    );
    for bad in ["10.0.0.0/33", "nope", "1.2.3", "::/129", "", "10.0.0.0/8/8"] {
        let e = parse_allowed_ips(&[bad.to_owned()]).unwrap_err();
        assert_eq!(e.field, "allowed_ips", "{bad}");
    }
    assert!(parse_allowed_ips(&[]).is_err());
    assert!(parse_allowed_ips(&vec!["10.0.0.1".to_owned(); MAX_ALLOWED_IPS + 1]).is_err());
}

#[test]
fn ip_checks_cover_both_families_and_mapped_addresses() {
    let nets = parse_allowed_ips(&["203.0.113.0/24".into(), "2001:db8::/32".into()]).unwrap();
    let allowed = Some(nets.as_slice());
    let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
    assert!(ip_allowed(allowed, ip("203.0.113.200")));
    assert!(ip_allowed(allowed, ip("::ffff:203.0.113.9")));
    assert!(ip_allowed(allowed, ip("2001:db8:1::5")));
    assert!(!ip_allowed(allowed, ip("203.0.114.1")));
    assert!(!ip_allowed(allowed, ip("2001:db9::1")));
    assert!(!ip_allowed(allowed, None));
    assert!(ip_allowed(None, None));
}

#[test]
fn limits_and_credits_are_bounded() {
    assert!(validate_rate_limit(1, 1).is_ok());
    assert!(validate_rate_limit(MAX_RATE_LIMIT, MAX_WINDOW_SECS).is_ok());
    assert_eq!(
        validate_rate_limit(0, 60).unwrap_err().field,
        "rate_limit.limit"
    );
    assert_eq!(
        validate_rate_limit(10, 86_401).unwrap_err().field,
        "rate_limit.window_secs"
    );
    assert_eq!(
        validate_rate_limit(10, 0).unwrap_err().field,
        "rate_limit.window_secs"
    );
    assert_eq!(
        validate_remaining_uses(-1).unwrap_err().field,
        "remaining_uses"
    );
    assert_eq!(validate_remaining_uses(0), Ok(0));
    assert_eq!(
        validate_refill(0, RefillInterval::Daily).unwrap_err().field,
        "refill.amount"
    );
}

#[test]
fn reason_precedence_among_policies() {
    assert_eq!(
        policy_reason(false, false, false),
        Err(Reason::IpNotAllowed)
    );
    assert_eq!(
        policy_reason(true, false, false),
        Err(Reason::UsageExceeded)
    );
    assert_eq!(policy_reason(true, true, false), Err(Reason::RateLimited));
    assert_eq!(policy_reason(true, true, true), Ok(()));
}

#[test]
fn periods_and_their_ends() {
    let t = |s: &str| {
        OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
            .unwrap()
            .unix_timestamp()
    };
    let daily = Periods::Refill(RefillInterval::Daily);
    let now = t("2027-03-31T23:59:59Z");
    assert_eq!(daily.end(daily.index(now)), t("2027-04-01T00:00:00Z"));
    let monthly = Periods::Refill(RefillInterval::Monthly);
    assert_eq!(monthly.end(monthly.index(now)), t("2027-04-01T00:00:00Z"));
    let dec = t("2027-12-15T10:00:00Z");
    assert_eq!(monthly.end(monthly.index(dec)), t("2028-01-01T00:00:00Z"));
    assert_eq!(
        monthly.index(t("2028-01-01T00:00:00Z")),
        monthly.index(dec) + 1
    );
    let w = Periods::Window(60);
    assert_eq!(w.index(119), 1);
    assert_eq!(w.end(1), 120);
    assert_eq!(Periods::Never.index(now), 0);
    assert_eq!(Periods::Never.end(0), i64::MAX);
}

#[test]
fn grants_shrink_as_the_pool_empties() {
    assert_eq!(grant_size(0, 100), 0);
    assert_eq!(grant_size(10, 100), 1);
    assert_eq!(grant_size(1600, 1000), 100);
    assert_eq!(grant_size(1_000_000, 50), 50);
    assert_eq!(grant_size(5, 0), 1);
}

#[test]
fn refill_sets_the_pool_back_and_voids_old_leases() {
    let rule = BudgetRule::uses(UsesPolicy {
        refill: Some(Refill {
            amount: 100,
            interval: RefillInterval::Daily,
        }),
    });
    let day = 86_400;
    let row = BudgetRow { period: 1, pool: 0 };
    let old = LeaseRow {
        period: 1,
        held: 7,
        expires_at: day + 30,
    };
    let out = lease(Some(row), Some(old), rule, 2 * day + 5, 16);
    assert!(out.rolled);
    assert_eq!(out.grant.period, 2);
    assert_eq!(out.grant.granted, 6); // 100 / 16
    assert_eq!(out.row.pool, 94);
    assert_eq!(out.lease.unwrap().held, 6);
    // Shown remaining: refill due, nobody asked yet.
    let state = UsesState {
        pool: 0,
        period: 1,
        held: 3,
    };
    assert_eq!(state.remaining(rule_refill(&rule), 2 * day), 100);
    assert_eq!(state.remaining(rule_refill(&rule), day + 1), 3);
}

fn rule_refill(rule: &BudgetRule) -> Option<Refill> {
    match (rule.periods, rule.fill) {
        (Periods::Refill(interval), Some(amount)) => Some(Refill { amount, interval }),
        _ => None,
    }
}

#[test]
fn a_caller_behind_the_stored_period_gets_nothing() {
    let rule = BudgetRule::rate(RateLimit {
        limit: 10,
        window_secs: 10,
    });
    let row = BudgetRow {
        period: 5,
        pool: 10,
    };
    let out = lease(Some(row), None, rule, 45, 4);
    assert_eq!(out.grant.granted, 0);
    assert_eq!(out.row, row);
}

#[test]
fn settle_credits_returns_of_live_leases_only() {
    let rule = BudgetRule::uses(UsesPolicy::default());
    let row = BudgetRow {
        period: 0,
        pool: 50,
    };
    let held = LeaseRow {
        period: 0,
        held: 10,
        expires_at: 100,
    };
    let report = |consumed, returned| LeaseReport {
        token_id: "t".into(),
        kind: BudgetKind::Uses,
        period: 0,
        consumed,
        returned,
    };
    let out = settle(row, Some(held), &report(3, 0), rule, 90);
    assert_eq!(out.row.pool, 50);
    assert_eq!(out.lease.unwrap().held, 7);
    assert_eq!(out.valid_until, Some(90 + LEASE_TTL_SECS));
    let out = settle(row, Some(held), &report(3, 100), rule, 90);
    assert_eq!(out.row.pool, 57);
    assert_eq!(out.lease, None);
    // Past the expiry plus the skew allowance the block counts as spent.
    let out = settle(row, Some(held), &report(0, 10), rule, 100 + CLOCK_SKEW_SECS);
    assert_eq!(out.row.pool, 50);
    assert_eq!(out.valid_until, None);
    // Past the node's own expiry: still counted, but the node may not spend it any more.
    let out = settle(row, Some(held), &report(0, 0), rule, 101);
    assert_eq!(out.valid_until, None);
    assert_eq!(out.lease.unwrap().held, 10);
}

#[test]
fn set_remaining_counts_live_leases() {
    let rule = BudgetRule::uses(UsesPolicy::default());
    let leases = [
        LeaseRow {
            period: 0,
            held: 5,
            expires_at: 100,
        },
        LeaseRow {
            period: 0,
            held: 9,
            expires_at: 10, // long dead
        },
    ];
    let row = set_remaining(
        Some(BudgetRow { period: 0, pool: 3 }),
        &leases,
        rule,
        100,
        90,
    );
    assert_eq!(row.pool, 95);
    // Less than a node holds: the pool owes it, and the node's return settles the debt.
    let row = set_remaining(Some(BudgetRow { period: 0, pool: 3 }), &leases, rule, 2, 90);
    assert_eq!(row.pool, -3);
    assert_eq!(grant_size(row.pool, 10), 0);
    let report = LeaseReport {
        token_id: "t".into(),
        kind: BudgetKind::Uses,
        period: 0,
        consumed: 1,
        returned: 4,
    };
    let out = settle(row, Some(leases[0]), &report, rule, 91);
    assert_eq!(out.row.pool, 1, "2 granted, 1 spent since");
    assert_eq!(out.lease, None);
}

#[test]
fn local_budget_takes_adds_and_exhausts() {
    let b = LocalBudget::default();
    assert_eq!(b.try_take(7, 100), Take::NeedLease);
    let grant = |granted, period| LeaseGrant {
        granted,
        period,
        pool_left: 0,
        valid_until: 200,
    };
    b.add(&grant(2, 7), 100, 101);
    assert_eq!(b.try_take(7, 100), Take::Taken { left: 1 });
    assert_eq!(b.try_take(8, 100), Take::NeedLease);
    assert_eq!(b.try_take(7, 100), Take::Taken { left: 0 });
    assert_eq!(b.try_take(7, 100), Take::NeedLease);
    b.add(&grant(0, 7), 100, 101);
    assert_eq!(b.try_take(7, 100), Take::Exhausted);
    assert!(b.is_exhausted(7, 100));
    assert_eq!(b.try_take(7, 101), Take::NeedLease);
    b.add(&grant(3, 7), 101, 102);
    b.untake(7);
    assert_eq!(b.left(7), 4);
    // Past its validity the block is not spent.
    assert_eq!(b.try_take(7, 200), Take::NeedLease);
    assert_eq!(b.report(true, 0), Some((7, 2 - 1, 4)));
    assert_eq!(b.left(7), 0);
}

#[test]
fn narrowing_rules() {
    let nets = |list: &[&str]| {
        parse_allowed_ips(&list.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>()).unwrap()
    };
    assert!(ips_within(&nets(&["10.1.0.0/16"]), &nets(&["10.0.0.0/8"])));
    assert!(!ips_within(&nets(&["10.0.0.0/8"]), &nets(&["10.1.0.0/16"])));
    let r = |limit, window_secs| Some(RateLimit { limit, window_secs });
    assert!(rate_within(r(5, 60), r(10, 60)));
    assert!(rate_within(r(10, 120), r(10, 60)));
    assert!(!rate_within(r(5, 30), r(10, 60)));
    assert!(!rate_within(None, r(10, 60)));
    assert!(rate_within(r(10, 60), None));
    let daily = Some(Refill {
        amount: 10,
        interval: RefillInterval::Daily,
    });
    let monthly = Some(Refill {
        amount: 10,
        interval: RefillInterval::Monthly,
    });
    assert!(refill_within(monthly, daily));
    assert!(!refill_within(daily, monthly));
    assert!(refill_within(None, daily));
    assert!(!refill_within(daily, None));
}

// --- the cluster, simulated -------------------------------------------------------------

/// The store's side of one budget, as a backend keeps it (rows), driven through the pure
/// functions exactly as the SQL store drives them.
struct SimStore {
    rule: BudgetRule,
    row: Option<BudgetRow>,
    leases: HashMap<u32, LeaseRow>,
}

impl SimStore {
    fn lease(&mut self, node: u32, now: i64, want: i64) -> LeaseGrant {
        let out = lease(
            self.row,
            self.leases.get(&node).copied(),
            self.rule,
            now,
            want,
        );
        self.row = Some(out.row);
        if out.rolled {
            let period = out.row.period;
            self.leases.retain(|_, l| l.period == period);
        }
        match out.lease {
            Some(l) => self.leases.insert(node, l),
            None => self.leases.remove(&node),
        };
        out.grant
    }

    fn settle(
        &mut self,
        node: u32,
        period: i64,
        consumed: i64,
        returned: i64,
        now: i64,
    ) -> Option<i64> {
        let row = self.row?;
        let report = LeaseReport {
            token_id: "t".into(),
            kind: self.rule.kind,
            period,
            consumed,
            returned,
        };
        let out = settle(
            row,
            self.leases.get(&node).copied(),
            &report,
            self.rule,
            now,
        );
        self.row = Some(out.row);
        match out.lease {
            Some(l) => self.leases.insert(node, l),
            None => self.leases.remove(&node),
        };
        out.valid_until
    }
}

/// A node: its block in memory, as the server keeps it.
struct SimNode {
    id: u32,
    budget: LocalBudget,
}

impl SimNode {
    /// One use at `now`, leasing when memory has nothing.
    fn use_once(&self, store: &mut SimStore, now: i64) -> bool {
        let period = store.rule.periods.index(now);
        match self.budget.try_take(period, now) {
            Take::Taken { .. } => true,
            Take::Exhausted => false,
            Take::NeedLease => {
                let want = self.budget.next_want(now);
                self.budget.asked(want, now);
                let grant = store.lease(self.id, now, want);
                self.budget.add(&grant, now, now + 1);
                matches!(self.budget.try_take(period, now), Take::Taken { .. })
            }
        }
    }

    fn settle(&self, store: &mut SimStore, now: i64, give_back: bool) {
        if let Some((period, consumed, returned)) = self.budget.report(give_back, now - 10) {
            let until = store.settle(self.id, period, consumed, returned, now);
            self.budget.renewed(until);
        }
    }
}

#[derive(Debug, Clone)]
enum Op {
    Use(u8),
    Burst(u8, u16),
    Settle(u8),
    Shutdown(u8),
    Crash(u8),
    Advance(u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => any::<u8>().prop_map(Op::Use),
        4 => (any::<u8>(), 1..400u16).prop_map(|(n, k)| Op::Burst(n, k)),
        2 => any::<u8>().prop_map(Op::Settle),
        1 => any::<u8>().prop_map(Op::Shutdown),
        1 => any::<u8>().prop_map(Op::Crash),
        2 => (0..40u8).prop_map(Op::Advance),
    ]
}

fn cluster(nodes: u32) -> Vec<SimNode> {
    (0..nodes)
        .map(|id| SimNode {
            id,
            budget: LocalBudget::default(),
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Usage credits are never over-spent: 3 nodes, any interleaving of uses, reports,
    /// graceful shutdowns, `kill -9`s and time — total admitted ≤ granted, always.
    #[test]
    fn uses_are_never_over_spent(granted in 0i64..5_000, ops in proptest::collection::vec(op(), 1..300)) {
        let rule = BudgetRule::uses(UsesPolicy::default());
        let mut store = SimStore { rule, row: Some(BudgetRow { period: 0, pool: granted }), leases: HashMap::new() };
        let mut nodes = cluster(3);
        let mut next_id = 3;
        let mut now = 1_000;
        let mut admitted = 0i64;
        for op in ops {
            match op {
                Op::Use(n) => admitted += i64::from(nodes[usize::from(n) % 3].use_once(&mut store, now)),
                Op::Burst(n, k) => {
                    for _ in 0..k {
                        admitted += i64::from(nodes[usize::from(n) % 3].use_once(&mut store, now));
                    }
                }
                Op::Settle(n) => nodes[usize::from(n) % 3].settle(&mut store, now, false),
                Op::Shutdown(n) => {
                    let i = usize::from(n) % 3;
                    nodes[i].settle(&mut store, now, true);
                    nodes[i] = SimNode { id: next_id, budget: LocalBudget::default() };
                    next_id += 1;
                }
                Op::Crash(n) => {
                    // kill -9: the block in memory is gone, the lease row stays.
                    nodes[usize::from(n) % 3] = SimNode { id: next_id, budget: LocalBudget::default() };
                    next_id += 1;
                }
                Op::Advance(secs) => now += i64::from(secs),
            }
            prop_assert!(admitted <= granted, "admitted {admitted} > granted {granted}");
            let row = store.row.unwrap();
            prop_assert!(row.pool >= 0);
        }
    }

    /// With refills, each period admits at most its fill.
    #[test]
    fn refills_are_never_over_spent(ops in proptest::collection::vec(op(), 1..300)) {
        let rule = BudgetRule::uses(UsesPolicy { refill: Some(Refill { amount: 300, interval: RefillInterval::Daily }) });
        let start = 86_400 * 10 + 86_000;
        let mut store = SimStore { rule, row: Some(BudgetRow { period: rule.periods.index(start), pool: 300 }), leases: HashMap::new() };
        let mut nodes = cluster(3);
        let mut now = start;
        let mut per_period: HashMap<i64, i64> = HashMap::new();
        for op in ops {
            let mut use_on = |node: &SimNode, store: &mut SimStore, now: i64| {
                if node.use_once(store, now) {
                    *per_period.entry(rule.periods.index(now)).or_default() += 1;
                }
            };
            match op {
                Op::Use(n) => use_on(&nodes[usize::from(n) % 3], &mut store, now),
                Op::Burst(n, k) => {
                    for _ in 0..k {
                        use_on(&nodes[usize::from(n) % 3], &mut store, now);
                    }
                }
                Op::Settle(n) | Op::Shutdown(n) => nodes[usize::from(n) % 3].settle(&mut store, now, matches!(op, Op::Shutdown(_))),
                Op::Crash(n) => nodes[usize::from(n) % 3] = SimNode { id: 100 + u32::from(n), budget: LocalBudget::default() },
                Op::Advance(secs) => now += i64::from(secs) * 60,
            }
        }
        for (period, count) in per_period {
            prop_assert!(count <= 300, "period {period}: {count}");
        }
    }

    /// A rate limit holds for the cluster per window; one node saturated admits exactly the
    /// limit, several nodes close to it.
    #[test]
    fn rate_limits_hold_per_window(limit in 1u32..2_000, window in 1u32..120, nodes_n in 1u32..4) {
        let rule = BudgetRule::rate(RateLimit { limit, window_secs: window });
        let mut store = SimStore { rule, row: None, leases: HashMap::new() };
        let nodes = cluster(nodes_n);
        let mut per_window: HashMap<i64, i64> = HashMap::new();
        let start = i64::from(window) * 1000;
        // Three whole windows, each second saturated with more attempts than the limit.
        let attempts_per_sec = (i64::from(limit) * 3 / i64::from(window)).max(3) as usize;
        for now in start..start + 3 * i64::from(window) {
            for k in 0..attempts_per_sec {
                let node = &nodes[k % nodes.len()];
                if node.use_once(&mut store, now) {
                    *per_window.entry(rule.periods.index(now)).or_default() += 1;
                }
            }
        }
        for (w, count) in &per_window {
            prop_assert!(*count <= i64::from(limit), "window {w}: {count} > {limit}");
            if nodes_n == 1 {
                prop_assert_eq!(*count, i64::from(limit));
            } else {
                prop_assert!(*count * 10 >= i64::from(limit) * 9, "window {w}: {count} < 0.9 × {limit}");
            }
        }
    }
}

/// Without crashes, uses spread over 3 nodes until every node refuses admit everything
/// granted, and the first refusal comes after ≥ 99 % of it.
#[test]
fn no_crash_admits_all_and_refuses_late() {
    for granted in [100i64, 1_000, 10_000, 100_000] {
        let rule = BudgetRule::uses(UsesPolicy::default());
        let mut store = SimStore {
            rule,
            row: Some(BudgetRow {
                period: 0,
                pool: granted,
            }),
            leases: HashMap::new(),
        };
        let nodes = cluster(3);
        let mut admitted = 0i64;
        let mut first_refusal = None;
        let mut now = 1_000;
        let mut round = 0u64;
        loop {
            let mut any = false;
            for node in &nodes {
                if node.use_once(&mut store, now) {
                    admitted += 1;
                    any = true;
                } else if first_refusal.is_none() {
                    first_refusal = Some(admitted);
                }
            }
            if !any {
                break;
            }
            round += 1;
            assert!(
                round < 1_000_000,
                "granted {granted}: still admitting after {admitted}"
            );
            if round.is_multiple_of(500) {
                now += 1;
                for node in &nodes {
                    node.settle(&mut store, now, false);
                }
            }
        }
        assert_eq!(admitted, granted, "granted {granted}");
        let first = first_refusal.unwrap_or(admitted);
        if granted >= 10_000 {
            assert!(
                first * 100 >= granted * 99,
                "granted {granted}: first refusal after {first}"
            );
        }
    }
}
