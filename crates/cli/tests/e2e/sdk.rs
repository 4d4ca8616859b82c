//! The Rust SDK's own behaviour against a real server (issue 22 "where it applies"): a
//! list walked to its end. (`Client::from_env` refusing a missing token is a unit test in
//! `crates/client`.)

use latchkey_client::proto::TokenType;
use latchkey_client::{PageQuery, collect_all};

use crate::harness::TestServer;

#[tokio::test]
async fn list_all_walks_every_page() {
    let server = TestServer::start().await;
    let admin = server.admin();
    let ws = server.workspace1().await;
    let mut made = Vec::new();
    for i in 0..5 {
        made.push(
            server
                .token(&admin, &ws, &format!("paged-{i}"), TokenType::Client)
                .await
                .meta
                .id,
        );
    }
    let every = admin.tokens().list_all(Some(&ws)).await.unwrap();
    let ids: Vec<&str> = every.iter().map(|t| t.id.as_str()).collect();
    for id in &made {
        assert!(ids.contains(&id.as_str()), "{id} missing from {ids:?}");
    }
    // The same walk two at a time, by hand: the same tokens, in the same order.
    let mut by_hand = Vec::new();
    let mut query = PageQuery::limit(2);
    loop {
        let page = admin.tokens().list(Some(&ws), &query).await.unwrap();
        let next = query.next(&page);
        by_hand.extend(page.items.into_iter().map(|t| t.id));
        match next {
            Some(next) => query = next,
            None => break,
        }
    }
    assert!(by_hand.len() > 2);
    assert_eq!(ids, by_hand.iter().map(String::as_str).collect::<Vec<_>>());
    let users = collect_all(|page| {
        let admin = &admin;
        async move { admin.list_users(&page).await }
    })
    .await
    .unwrap();
    assert!(users.iter().any(|u| u.username == "admin"));
    server.stop().await;
}

/// The verify-time policy (DESIGN.md §8) through the SDK: every field on create, read
/// back, `update` (set, keep, clear), bad input as a typed 422 naming the field, and who may
/// not change it.
#[tokio::test]
async fn sdk_token_policy_fields_and_update() {
    use latchkey_client::proto::{
        CreateTokenRequest, RateLimit, Refill, RefillInterval, UpdateTokenRequest,
    };

    let server = TestServer::start().await;
    let admin = server.admin();
    let ws = server.workspace1().await;
    let metadata = serde_json::json!({"plan": "pro", "seats": 5});

    let mut request = CreateTokenRequest::new("sdk-partner", TokenType::Client);
    request.metadata = Some(metadata.clone());
    request.allowed_ips = Some(vec!["203.0.113.0/24".into(), "2001:db8::/32".into()]);
    request.rate_limit = Some(RateLimit {
        limit: 1000,
        window_secs: 60,
    });
    request.remaining_uses = Some(100);
    request.refill = Some(Refill {
        amount: 100,
        interval: RefillInterval::Daily,
    });
    let created = admin.tokens().create(&ws, &request).await.unwrap();
    let meta = &created.meta;
    assert_eq!(
        meta.metadata.clone().map(serde_json::Value::Object),
        Some(metadata.clone())
    );
    assert_eq!(
        meta.allowed_ips.as_deref(),
        Some(&["203.0.113.0/24".to_owned(), "2001:db8::/32".to_owned()][..])
    );
    assert_eq!(meta.rate_limit, request.rate_limit);
    assert_eq!(meta.remaining_uses, Some(100));
    assert_eq!(meta.refill, request.refill);
    assert_eq!(&admin.tokens().get(&meta.id).await.unwrap(), meta);

    // Update: set some, keep the rest, clear some.
    let changed = admin
        .tokens()
        .update(
            &meta.id,
            &UpdateTokenRequest {
                allowed_ips: Some(None),
                rate_limit: Some(Some(RateLimit {
                    limit: 2,
                    window_secs: 86_400,
                })),
                refill: Some(None),
                ..UpdateTokenRequest::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(changed.allowed_ips, None);
    assert_eq!(changed.refill, None);
    assert_eq!(changed.metadata, meta.metadata);
    assert_eq!(changed.remaining_uses, Some(100));
    assert_eq!(changed.rate_limit.map(|r| r.limit), Some(2));

    // Bad input: 422 naming the field, nothing changed.
    let bad = admin
        .tokens()
        .update(
            &meta.id,
            &UpdateTokenRequest {
                metadata: Some(Some(serde_json::json!("not an object"))),
                remaining_uses: Some(Some(1)),
                ..UpdateTokenRequest::default()
            },
        )
        .await
        .unwrap_err();
    assert!(bad.is_invalid_field(), "{bad}");
    assert_eq!(bad.field(), Some("metadata"));
    assert_eq!(admin.tokens().get(&meta.id).await.unwrap(), changed);

    // Someone who may not manage the token cannot change it.
    let (_, member) = server
        .user("policy-member", latchkey_client::proto::OrgRole::Member)
        .await;
    let denied = member
        .tokens()
        .update(&meta.id, &UpdateTokenRequest::default())
        .await
        .unwrap_err();
    assert!(denied.is_forbidden() || denied.is_not_found(), "{denied}");
    server.stop().await;
}

/// The policy at use through the SDK: metadata from verify and introspection, `ip` on both,
/// and a rate-limited token's 429 with `Retry-After` and `RateLimit-*` as typed values
/// (`Error::retry_after`, `Error::rate_limit`, `VerifyAnswer::rate_limit`).
#[tokio::test]
async fn sdk_token_policy_at_use_metadata_ip_and_rate_limit_errors() {
    use latchkey_client::proto::{CreateTokenRequest, RateLimit, Reason, VerifyRequest};

    let server = TestServer::start().await;
    let admin = server.admin();
    let anonymous = server.anonymous();
    let ws = server.workspace1().await;
    let metadata = serde_json::json!({"plan": "pro", "seats": 5});
    let mut request = CreateTokenRequest::new("sdk-at-use", TokenType::Client);
    request.metadata = Some(metadata.clone());
    request.allowed_ips = Some(vec!["203.0.113.0/24".into(), "2001:db8::/32".into()]);
    let created = admin.tokens().create(&ws, &request).await.unwrap();

    // Verify from an allowed address: valid, with the metadata; from elsewhere: the reason.
    let from = |token: &str, ip: Option<&str>| VerifyRequest {
        token: token.to_owned(),
        ip: ip.map(str::to_owned),
    };
    let ok = anonymous
        .verify_with(&from(&created.token, Some("203.0.113.9")))
        .await
        .unwrap();
    assert!(ok.response.valid, "{ok:?}");
    assert_eq!(ok.rate_limit, None);
    let seen = ok.response.token.unwrap();
    assert_eq!(
        seen.metadata.map(serde_json::Value::Object),
        Some(metadata.clone())
    );
    let elsewhere = anonymous
        .verify_with(&from(&created.token, Some("198.51.100.1")))
        .await
        .unwrap();
    assert_eq!(elsewhere.response.reason, Some(Reason::IpNotAllowed));
    assert_eq!(
        anonymous.verify(&created.token).await.unwrap().reason,
        Some(Reason::IpNotAllowed)
    );
    let introspected = admin
        .introspect_from(&created.token, "2001:db8::7")
        .await
        .unwrap();
    assert_eq!(introspected["active"], true, "{introspected}");
    assert_eq!(introspected["metadata"], metadata);
    let outside = admin
        .introspect_from(&created.token, "198.51.100.1")
        .await
        .unwrap();
    assert_eq!(outside["active"], false, "{outside}");

    // Over the rate limit (2 a day): the API answers 429 with the headers.
    let mut request = CreateTokenRequest::new("sdk-limited", TokenType::Client);
    request.rate_limit = Some(RateLimit {
        limit: 2,
        window_secs: 86_400,
    });
    let limited = admin.tokens().create(&ws, &request).await.unwrap();
    let api = server.with_token(&limited.token);
    api.list_projects(&ws).await.unwrap();
    api.list_projects(&ws).await.unwrap();
    let over = api.list_projects(&ws).await.unwrap_err();
    assert!(over.is_rate_limited(), "{over}");
    assert_eq!(over.code(), Some("rate_limited"));
    let retry = over.retry_after().expect("Retry-After");
    assert!(
        retry.as_secs() >= 1 && retry.as_secs() <= 86_400,
        "{retry:?}"
    );
    let rl = over.rate_limit().copied().expect("RateLimit-* headers");
    assert_eq!((rl.limit, rl.remaining), (Some(2), Some(0)));
    assert!(rl.reset.is_some_and(|r| r <= 86_400), "{rl:?}");
    let refused = anonymous
        .verify_with(&from(&limited.token, None))
        .await
        .unwrap();
    assert_eq!(refused.response.reason, Some(Reason::RateLimited));
    assert!(
        refused
            .rate_limit
            .is_some_and(|r| r.retry_after.is_some() && r.remaining == Some(0)),
        "{refused:?}"
    );
    server.stop().await;
}
