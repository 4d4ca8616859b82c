//! Usage details (DESIGN.md §8): `GET /api/v1/tokens/{id}/usage` — the last 5 distinct
//! client addresses and 90 days of daily counts, counted in memory and written with the
//! last-used flush, never once per request. The store writes are read from `/metrics`
//! (`latchkey_store_operation_duration_seconds_count{op="record_last_used"}`: one per
//! flush that had anything to write).

use latchkey_client::proto::{OrgRole, Scope, TokenType, TokenUsage};
use serde_json::Value;

use crate::harness::TestServer;

/// The flush writes counted by `/metrics` so far.
async fn usage_writes(server: &TestServer) -> u64 {
    let body = server.metrics_text().await;
    let series = "latchkey_store_operation_duration_seconds_count{op=\"record_last_used\"} ";
    body.lines()
        .find_map(|l| l.strip_prefix(series))
        .unwrap_or_else(|| panic!("/metrics has no {series}\n{body}"))
        .trim()
        .parse()
        .expect("a count")
}

/// One API call with `token`, through a (trusted or not) proxy that says the client is
/// `from`.
async fn call_from(server: &TestServer, token: &str, from: &str) {
    let status = server
        .http()
        .get(format!("{}/api/v1/me", server.url))
        .bearer_auth(token)
        .header("X-Forwarded-For", from)
        .send()
        .await
        .expect("GET /api/v1/me")
        .status();
    assert_eq!(status, 200);
}

/// The shape every answer has: 90 days, oldest first, ending today (the server's today).
fn check_days(server: &TestServer, usage: &TokenUsage) {
    let today = server.state.clock.now().date();
    assert_eq!(usage.daily.len(), 90);
    assert_eq!(
        usage.daily.last().map(|d| d.date.clone()),
        Some(today.to_string())
    );
    let first = today - time::Duration::days(89);
    assert_eq!(usage.daily[0].date, first.to_string());
    assert!(usage.daily.windows(2).all(|w| w[0].date < w[1].date));
}

fn ips(usage: &TokenUsage) -> Vec<&str> {
    usage.last_ips.iter().map(|u| u.ip.as_str()).collect()
}

fn trusting_localhost(c: &mut latchkey_server::Config) {
    let proxies: latchkey_server::Config =
        toml::from_str("trusted_proxies = [\"127.0.0.1\"]").expect("config");
    c.trusted_proxies = proxies.trusted_proxies;
    // No background flush during the test: only the ones the test causes.
    c.verifier.last_used_flush_secs = 3600;
}

/// Many uses from 7 addresses behind a trusted proxy cost no store write; reading the
/// usage flushes this node's buffer in exactly one write, whatever the request count, and
/// shows every use, the newest 5 distinct addresses and 90 days ending today.
#[tokio::test]
async fn uses_are_counted_in_memory_and_written_once_per_flush() {
    let server = TestServer::start_with(trusting_localhost).await;
    let admin = server.admin();
    let ws = server.workspace1().await;
    let used = server.token(&admin, &ws, "used", TokenType::Personal).await;
    let id = used.meta.id.clone();

    let fresh = admin.tokens().usage(&id).await.unwrap();
    check_days(&server, &fresh);
    assert!(fresh.last_used_at.is_none());
    assert!(fresh.last_ips.is_empty());
    assert!(fresh.daily.iter().all(|d| d.count == 0));

    let before = usage_writes(&server).await;
    let addresses = [
        "198.51.100.1",
        "198.51.100.2",
        "2001:db8::7",
        "198.51.100.3",
        "198.51.100.4",
        "198.51.100.5",
        "198.51.100.6",
    ];
    for round in 0..6 {
        for ip in addresses {
            // The last round a second apart each, so "newest" is well defined (times are
            // whole seconds).
            if round == 5 {
                server.state.clock.advance(1);
            }
            // A client-supplied hop in front of the proxy's is not believed over it.
            call_from(&server, &used.token, &format!("10.9.9.{round}, {ip}")).await;
        }
    }
    server.state.clock.advance(1);
    // A verify that names its client's address counts too (and adds the address).
    let verified = server
        .anonymous()
        .verify_with(&latchkey_client::proto::VerifyRequest {
            token: used.token.clone(),
            ip: Some("192.0.2.200".into()),
        })
        .await
        .unwrap();
    assert!(verified.response.valid);
    assert_eq!(
        usage_writes(&server).await,
        before,
        "43 uses, no store write before a flush"
    );

    let usage = admin.tokens().usage(&id).await.unwrap();
    assert_eq!(
        usage_writes(&server).await,
        before + 1,
        "one write per flush"
    );
    check_days(&server, &usage);
    // (Both days, should the advanced clock have crossed midnight.)
    assert_eq!(usage.daily.iter().map(|d| d.count).sum::<u64>(), 43);
    assert_eq!(
        ips(&usage),
        [
            "192.0.2.200",
            "198.51.100.6",
            "198.51.100.5",
            "198.51.100.4",
            "198.51.100.3"
        ],
        "the newest 5 distinct, newest first"
    );
    assert!(usage.last_used_at.is_some());
    assert!(
        usage
            .last_ips
            .windows(2)
            .all(|w| w[0].last_seen_at >= w[1].last_seen_at)
    );

    // More uses: still no write until the next flush, which adds to the day.
    server.state.clock.advance(1);
    for _ in 0..25 {
        call_from(&server, &used.token, "203.0.113.9").await;
    }
    assert_eq!(usage_writes(&server).await, before + 1);
    let usage = admin.tokens().usage(&id).await.unwrap();
    assert_eq!(usage_writes(&server).await, before + 2);
    assert_eq!(usage.daily.iter().map(|d| d.count).sum::<u64>(), 68);
    assert_eq!(ips(&usage)[0], "203.0.113.9");
    assert_eq!(usage.last_ips.len(), 5);

    // A read by a token is itself a use of that token: its flush writes that one use
    // (one write again), and this token's counts stay as they were.
    let again = admin.tokens().usage(&id).await.unwrap();
    assert_eq!(again.daily, usage.daily);
    assert_eq!(usage_writes(&server).await, before + 3);
}

/// Without a trusted proxy `X-Forwarded-For` is the client's word: the address recorded
/// is the peer's.
#[tokio::test]
async fn an_untrusted_forwarded_for_is_not_recorded() {
    let server = TestServer::start().await;
    let admin = server.admin();
    let ws = server.workspace1().await;
    let used = server.token(&admin, &ws, "used", TokenType::Personal).await;
    call_from(&server, &used.token, "198.51.100.77").await;
    let usage = admin.tokens().usage(&used.meta.id).await.unwrap();
    assert_eq!(ips(&usage), ["127.0.0.1"]);
    assert_eq!(usage.daily.iter().map(|d| d.count).sum::<u64>(), 1);
}

/// What is buffered survives a graceful stop (the shutdown flushes it).
#[tokio::test]
async fn a_graceful_stop_flushes_buffered_usage() {
    let server = TestServer::start_with(trusting_localhost).await;
    let admin = server.admin();
    let ws = server.workspace1().await;
    let used = server.token(&admin, &ws, "used", TokenType::Personal).await;
    for ip in ["198.51.100.1", "198.51.100.2", "198.51.100.1"] {
        call_from(&server, &used.token, ip).await;
    }
    let (dir, keep) = server.stop().await;
    let again = TestServer::start_in(&dir, trusting_localhost, Default::default()).await;
    let console = again
        .signed_in("admin", crate::harness::ADMIN_PASSWORD)
        .await;
    let before = usage_writes(&again).await;
    let usage = console.tokens().usage(&used.meta.id).await.unwrap();
    assert_eq!(
        usage_writes(&again).await,
        before,
        "nothing was pending: a session read writes nothing"
    );
    assert_eq!(usage.daily.iter().map(|d| d.count).sum::<u64>(), 3);
    assert_eq!(ips(&usage), ["198.51.100.1", "198.51.100.2"]);
    drop(keep);
}

/// Whoever may see the token reads its usage; others get 404 (as for the token), no
/// credentials 401, a token without `tokens:read` 403, a malformed id 404.
#[tokio::test]
async fn usage_is_for_those_who_may_see_the_token() {
    let server = TestServer::start().await;
    let admin = server.admin();
    let ws = server.workspace1().await;
    let (mia, member) = server.user("mia", OrgRole::Member).await;
    admin
        .put_member(&ws, &mia, latchkey_client::proto::WorkspaceRole::Member)
        .await
        .unwrap();
    let mine = server
        .token(&member, &ws, "mine", TokenType::Personal)
        .await;
    let admins = server
        .token(&admin, &ws, "admins", TokenType::Personal)
        .await;

    // The owner and an org admin see it.
    member.tokens().usage(&mine.meta.id).await.unwrap();
    admin.tokens().usage(&mine.meta.id).await.unwrap();
    // The token itself, with tokens:read.
    server
        .with_token(&mine.token)
        .tokens()
        .usage(&mine.meta.id)
        .await
        .unwrap();

    let err = member.tokens().usage(&admins.meta.id).await.unwrap_err();
    assert_eq!(err.status(), Some(404), "{err:?}");
    let err = member
        .tokens()
        .usage("00000000-0000-7000-8000-000000000000")
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(404));
    let err = member.tokens().usage("not an id").await.unwrap_err();
    assert_eq!(err.status(), Some(404));

    let err = server
        .anonymous()
        .tokens()
        .usage(&mine.meta.id)
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(401));

    let mut narrow = latchkey_client::proto::CreateTokenRequest::new("narrow", TokenType::Personal);
    narrow.scopes = Some(vec![Scope::ProjectsRead]);
    let narrow = member.tokens().create(&ws, &narrow).await.unwrap();
    let err = server
        .with_token(&narrow.token)
        .tokens()
        .usage(&mine.meta.id)
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(403), "{err:?}");

    // The body is the documented shape, nothing more.
    let raw: Value = server
        .http()
        .get(format!(
            "{}/api/v1/tokens/{}/usage",
            server.url, mine.meta.id
        ))
        .bearer_auth(&mine.token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut keys: Vec<&str> = raw
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(keys, ["daily", "last_ips", "last_used_at"]);
    assert_eq!(raw["daily"].as_array().map(Vec::len), Some(90));
    assert_eq!(raw["last_ips"][0]["ip"], "127.0.0.1");
    assert!(raw["last_ips"][0]["last_seen_at"].is_string());
}
