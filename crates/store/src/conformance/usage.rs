//! Conformance cases for usage details: a flush adds day counts, moves addresses'
//! last-seen times forward and keeps the newest few per token, all in one write; the
//! sweep drops old days; deleting a token drops its usage.

use std::sync::Arc;

use latchkey_core::new_id;
use latchkey_proto::TokenType;
use time::Duration;

use super::fixtures::*;
use crate::{
    IpSeen, LastUsed, Retention, Store, TokenUsage, USAGE_IPS_KEPT, UsageBatch, UsageCount,
};

/// Flushes add to the stored counts per day, keep the newest addresses (latest time per
/// address), merge last-used as `record_last_used` does, ignore unknown tokens and record
/// no change.
pub async fn usage_flushes_add_up_and_keep_newest_ips(store: Arc<dyn Store>) {
    let store = &*store;
    let world = bootstrapped(store).await;
    let a = add_token(
        store,
        &world,
        TokenType::Client,
        Some(&world.workspace),
        None,
    )
    .await;
    let b = add_token(
        store,
        &world,
        TokenType::Client,
        Some(&world.workspace),
        None,
    )
    .await;
    let day0 = t0().date();
    let day1 = day0 + Duration::days(1);
    let count = |token: &str, day, count| UsageCount {
        token_id: token.to_owned(),
        day,
        count,
    };
    let seen = |token: &str, ip: &str, secs| IpSeen {
        token_id: token.to_owned(),
        ip: ip.to_owned(),
        at: at(secs),
    };
    let v = store.current_version().await.unwrap();
    store.record_usage(&UsageBatch::default()).await.unwrap();
    store
        .record_usage(&UsageBatch {
            last_used: vec![LastUsed {
                token_id: a.id.clone(),
                at: at(20),
                ip: Some("10.0.0.2".into()),
            }],
            days: vec![
                count(&a.id, day0, 3),
                count(&a.id, day0, 2),
                count(&b.id, day0, 1),
                count(&new_id(), day0, 9),
            ],
            ips: vec![
                seen(&a.id, "10.0.0.1", 10),
                seen(&a.id, "10.0.0.2", 20),
                seen(&a.id, "10.0.0.1", 5),
                seen(&new_id(), "10.0.0.9", 5),
            ],
        })
        .await
        .unwrap();
    let got = store.token_usage(&a.id, day0).await.unwrap();
    assert_eq!(
        got,
        TokenUsage {
            last_ips: vec![("10.0.0.2".into(), at(20)), ("10.0.0.1".into(), at(10))],
            daily: vec![(day0, 5)],
        }
    );
    let token = store.get_token(&a.id).await.unwrap();
    assert_eq!(token.last_used_at, Some(at(20)));
    assert_eq!(token.last_used_ip.as_deref(), Some("10.0.0.2"));

    // A second flush adds to day 0, starts day 1, and an address seen again moves up;
    // of the seven addresses the newest five stay.
    let mut ips: Vec<IpSeen> = (3..=7)
        .map(|i| seen(&a.id, &format!("10.0.0.{i}"), 100 + i))
        .collect();
    ips.push(seen(&a.id, "10.0.0.1", 200));
    store
        .record_usage(&UsageBatch {
            last_used: vec![],
            days: vec![count(&a.id, day0, 1), count(&a.id, day1, 4)],
            ips,
        })
        .await
        .unwrap();
    let got = store.token_usage(&a.id, day0).await.unwrap();
    assert_eq!(got.daily, vec![(day0, 6), (day1, 4)]);
    let newest: Vec<&str> = got.last_ips.iter().map(|(ip, _)| ip.as_str()).collect();
    assert_eq!(
        newest,
        ["10.0.0.1", "10.0.0.7", "10.0.0.6", "10.0.0.5", "10.0.0.4"]
    );
    assert_eq!(got.last_ips.len(), USAGE_IPS_KEPT);
    assert_eq!(got.last_ips[0].1, at(200));
    // An older sighting never moves an address back.
    store
        .record_usage(&UsageBatch {
            ips: vec![seen(&a.id, "10.0.0.1", 1)],
            ..UsageBatch::default()
        })
        .await
        .unwrap();
    assert_eq!(
        store.token_usage(&a.id, day0).await.unwrap().last_ips[0],
        ("10.0.0.1".into(), at(200))
    );
    // `since` leaves out the days before it.
    assert_eq!(
        store.token_usage(&a.id, day1).await.unwrap().daily,
        vec![(day1, 4)]
    );
    // Tokens are apart; unknown ones have nothing.
    let other = store.token_usage(&b.id, day0).await.unwrap();
    assert_eq!(other.daily, vec![(day0, 1)]);
    assert!(other.last_ips.is_empty());
    assert_eq!(
        store.token_usage(&new_id(), day0).await.unwrap(),
        TokenUsage::default()
    );
    // Bookkeeping, not a change other nodes must react to.
    expect_no_change(store, v).await;

    // The sweep drops days before the kept window; deleting a token drops its usage.
    let purged = store
        .purge_retired(&Retention {
            sessions_expired_at: t0(),
            sessions_idle_since: t0(),
            idempotency_before: t0(),
            keep_changes: 1_000_000,
            usage_days_before: day1,
        })
        .await
        .unwrap();
    assert_eq!(purged.usage_days, 2, "day 0 of both tokens");
    assert_eq!(
        store.token_usage(&a.id, day0).await.unwrap().daily,
        vec![(day1, 4)]
    );
    store
        .delete_token(at(300), &a.id, event("token.deleted"))
        .await
        .unwrap();
    assert_eq!(
        store.token_usage(&a.id, day0).await.unwrap(),
        TokenUsage::default()
    );
}

/// A flush of many tokens (more than one statement's worth) is written whole.
pub async fn usage_flush_of_many_tokens(store: Arc<dyn Store>) {
    let store = &*store;
    let world = bootstrapped(store).await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(
            add_token(
                store,
                &world,
                TokenType::Client,
                Some(&world.workspace),
                None,
            )
            .await
            .id,
        );
    }
    let day = t0().date();
    // 1,200 rows for three tokens: more than one chunk, each token in several.
    let mut batch = UsageBatch::default();
    for i in 0..1200_i64 {
        let token_id = ids[usize::try_from(i % 3).unwrap()].clone();
        batch.days.push(UsageCount {
            token_id: token_id.clone(),
            day: day - Duration::days(i / 3 % 100),
            count: 1,
        });
        batch.ips.push(IpSeen {
            token_id,
            ip: format!("10.0.{}.{}", i / 256, i % 256),
            at: at(i),
        });
    }
    store.record_usage(&batch).await.unwrap();
    for (n, id) in ids.iter().enumerate() {
        let got = store
            .token_usage(id, day - Duration::days(99))
            .await
            .unwrap();
        assert_eq!(got.daily.len(), 100);
        assert_eq!(got.daily.iter().map(|(_, c)| c).sum::<u64>(), 400);
        assert_eq!(got.last_ips.len(), USAGE_IPS_KEPT);
        // The newest of this token's: i = 1197 + n, counting down by three.
        let newest = 1197 + i64::try_from(n).unwrap();
        assert_eq!(got.last_ips[0].1, at(newest));
        assert_eq!(got.last_ips[4].1, at(newest - 12));
    }
}
