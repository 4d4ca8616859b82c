//! Verify-time policy per token (DESIGN.md §8, issue 15): metadata, allowed IPs, rate
//! limits and usage credits on create and `PATCH /api/v1/tokens/{id}`; bad input and
//! permissions.

use latchkey_client::proto::{OrgRole, TokenType};
use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::TestServer;

/// A raw JSON call with a bearer token: (status, headers, body).
pub async fn call(
    server: &TestServer,
    token: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let mut req = server
        .http()
        .request(method, format!("{}{path}", server.url))
        .bearer_auth(token);
    if let Some(body) = body {
        req = req.json(&body);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let text = resp.text().await.unwrap();
    let json = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {status} {text:?}"))
    };
    (status, headers, json)
}

fn admin(server: &TestServer) -> &str {
    server.admin_token.as_deref().unwrap()
}

/// Creates a token in Workspace 1 with `extra` fields: (id, secret, body).
pub async fn create(
    server: &TestServer,
    token: &str,
    token_type: &str,
    extra: Value,
) -> (String, String, Value) {
    let ws = server.workspace1().await;
    let mut body = json!({"name": "policy", "type": token_type});
    if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
        body.extend(extra.clone());
    }
    let (status, _, created) = call(
        server,
        token,
        Method::POST,
        &format!("/api/v1/workspaces/{ws}/tokens"),
        Some(body),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    (
        created["id"].as_str().unwrap().to_owned(),
        created["token"].as_str().unwrap().to_owned(),
        created,
    )
}

#[tokio::test]
async fn policy_on_create_is_shown_and_patch_changes_it() {
    let server = TestServer::start().await;
    let (id, _, created) = create(
        &server,
        admin(&server),
        "client",
        json!({
            "metadata": {"plan": "pro", "tier": 2},
            "allowed_ips": ["203.0.113.9/24", "2001:db8::/32", "198.51.100.7"],
            "rate_limit": {"limit": 10, "window_secs": 60},
            "remaining_uses": 100,
            "refill": {"amount": 100, "interval": "daily"},
        }),
    )
    .await;
    assert_eq!(created["metadata"], json!({"plan": "pro", "tier": 2}));
    assert_eq!(
        created["allowed_ips"],
        json!(["203.0.113.0/24", "2001:db8::/32", "198.51.100.7/32"])
    );
    assert_eq!(
        created["rate_limit"],
        json!({"limit": 10, "window_secs": 60})
    );
    assert_eq!(created["remaining_uses"], json!(100));
    assert_eq!(
        created["refill"],
        json!({"amount": 100, "interval": "daily"})
    );

    // A token without any of it shows nulls.
    let (_, _, plain) = create(&server, admin(&server), "client", json!({})).await;
    for field in [
        "metadata",
        "allowed_ips",
        "rate_limit",
        "remaining_uses",
        "refill",
    ] {
        assert_eq!(plain[field], Value::Null, "{field}");
    }

    let path = format!("/api/v1/tokens/{id}");
    let (status, _, patched) = call(
        &server,
        admin(&server),
        Method::PATCH,
        &path,
        Some(json!({"metadata": null, "rate_limit": {"limit": 5, "window_secs": 1}, "remaining_uses": 7})),
    )
    .await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["metadata"], Value::Null);
    assert_eq!(patched["rate_limit"], json!({"limit": 5, "window_secs": 1}));
    assert_eq!(patched["remaining_uses"], json!(7));
    assert_eq!(
        patched["refill"],
        json!({"amount": 100, "interval": "daily"})
    );
    assert_eq!(patched["allowed_ips"], created["allowed_ips"]);
    let (_, _, read) = call(&server, admin(&server), Method::GET, &path, None).await;
    assert_eq!(read, patched);

    // Audited, naming the fields.
    let (_, _, events) = call(
        &server,
        admin(&server),
        Method::GET,
        &format!("/api/v1/audit-events?action=token.updated&token={id}"),
        None,
    )
    .await;
    let items = events["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{events}");
    assert_eq!(
        items[0]["details"]["changed"],
        json!(["metadata", "rate_limit", "remaining_uses"])
    );

    // Credits off drops the refill too; a refill alone starts full.
    let (status, _, off) = call(
        &server,
        admin(&server),
        Method::PATCH,
        &path,
        Some(json!({"remaining_uses": null, "allowed_ips": null})),
    )
    .await;
    assert_eq!(status, 200, "{off}");
    assert_eq!(off["remaining_uses"], Value::Null);
    assert_eq!(off["refill"], Value::Null);
    assert_eq!(off["allowed_ips"], Value::Null);
    let (status, _, on) = call(
        &server,
        admin(&server),
        Method::PATCH,
        &path,
        Some(json!({"refill": {"amount": 3, "interval": "monthly"}})),
    )
    .await;
    assert_eq!(status, 200, "{on}");
    assert_eq!(on["remaining_uses"], json!(3));
    // An empty patch changes nothing.
    let (status, _, same) = call(
        &server,
        admin(&server),
        Method::PATCH,
        &path,
        Some(json!({})),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(same, on);
}

#[tokio::test]
async fn bad_policy_input_is_422_naming_the_field_and_changes_nothing() {
    let server = TestServer::start().await;
    let ws = server.workspace1().await;
    let (id, _, before) = create(
        &server,
        admin(&server),
        "client",
        json!({"rate_limit": {"limit": 3, "window_secs": 10}, "remaining_uses": 4}),
    )
    .await;
    let big = "x".repeat(4096);
    let cases: Vec<(Value, &str)> = vec![
        (json!({"metadata": [1, 2]}), "metadata"),
        (json!({"metadata": "text"}), "metadata"),
        (json!({"metadata": 5}), "metadata"),
        (json!({"metadata": {"k": big}}), "metadata"),
        (json!({"allowed_ips": ["10.0.0.0/33"]}), "allowed_ips"),
        (json!({"allowed_ips": ["not-an-ip"]}), "allowed_ips"),
        (json!({"allowed_ips": ["2001:db8::/129"]}), "allowed_ips"),
        (json!({"allowed_ips": []}), "allowed_ips"),
        (json!({"allowed_ips": "10.0.0.0/8"}), "allowed_ips"),
        (
            json!({"rate_limit": {"limit": 0, "window_secs": 60}}),
            "rate_limit.limit",
        ),
        (
            json!({"rate_limit": {"limit": -1, "window_secs": 60}}),
            "rate_limit.limit",
        ),
        (
            json!({"rate_limit": {"limit": 5, "window_secs": 0}}),
            "rate_limit.window_secs",
        ),
        (
            json!({"rate_limit": {"limit": 5, "window_secs": 86_401}}),
            "rate_limit.window_secs",
        ),
        (
            json!({"rate_limit": {"limit": 5, "window_secs": -60}}),
            "rate_limit.window_secs",
        ),
        (
            json!({"rate_limit": {"limit": 5}}),
            "rate_limit.window_secs",
        ),
        (json!({"remaining_uses": -1}), "remaining_uses"),
        (json!({"remaining_uses": "many"}), "remaining_uses"),
        (
            json!({"refill": {"amount": 0, "interval": "daily"}}),
            "refill.amount",
        ),
        (
            json!({"refill": {"amount": -5, "interval": "daily"}}),
            "refill.amount",
        ),
        (
            json!({"refill": {"amount": 5, "interval": "hourly"}}),
            "refill.interval",
        ),
    ];
    let count_tokens = || async {
        let (_, _, page) = call(
            &server,
            admin(&server),
            Method::GET,
            &format!("/api/v1/workspaces/{ws}/tokens?limit=200"),
            None,
        )
        .await;
        page["items"].as_array().unwrap().len()
    };
    let tokens_before = count_tokens().await;
    for (extra, field) in &cases {
        let mut body = json!({"name": "bad", "type": "client"});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let (status, _, err) = call(
            &server,
            admin(&server),
            Method::POST,
            &format!("/api/v1/workspaces/{ws}/tokens"),
            Some(body),
        )
        .await;
        assert_eq!(status, 422, "create {extra}: {err}");
        assert_eq!(err["error"]["field"], json!(field), "create {extra}: {err}");
        let (status, _, err) = call(
            &server,
            admin(&server),
            Method::PATCH,
            &format!("/api/v1/tokens/{id}"),
            Some(extra.clone()),
        )
        .await;
        assert_eq!(status, 422, "patch {extra}: {err}");
        assert_eq!(err["error"]["field"], json!(field), "patch {extra}: {err}");
    }
    // A refill with credits removed in the same patch.
    let (status, _, err) = call(
        &server,
        admin(&server),
        Method::PATCH,
        &format!("/api/v1/tokens/{id}"),
        Some(json!({"remaining_uses": null, "refill": {"amount": 2, "interval": "daily"}})),
    )
    .await;
    assert_eq!(status, 422, "{err}");
    assert_eq!(err["error"]["field"], json!("refill"));
    // An unknown field.
    let (status, _, err) = call(
        &server,
        admin(&server),
        Method::PATCH,
        &format!("/api/v1/tokens/{id}"),
        Some(json!({"name": "renamed"})),
    )
    .await;
    assert_eq!(status, 422, "{err}");
    // Nothing changed.
    assert_eq!(count_tokens().await, tokens_before);
    let (_, _, after) = call(
        &server,
        admin(&server),
        Method::GET,
        &format!("/api/v1/tokens/{id}"),
        None,
    )
    .await;
    for field in [
        "metadata",
        "allowed_ips",
        "rate_limit",
        "remaining_uses",
        "refill",
    ] {
        assert_eq!(after[field], before[field], "{field}");
    }
    let (_, _, events) = call(
        &server,
        admin(&server),
        Method::GET,
        &format!("/api/v1/audit-events?action=token.updated&token={id}"),
        None,
    )
    .await;
    assert_eq!(events["items"], json!([]));
    // Unknown and malformed ids.
    for bad in ["not-an-id", "0190d5d8-8a44-7c4e-9f3a-2b1c4d5e6f70"] {
        let (status, _, _) = call(
            &server,
            admin(&server),
            Method::PATCH,
            &format!("/api/v1/tokens/{bad}"),
            Some(json!({"remaining_uses": 1})),
        )
        .await;
        assert_eq!(status, 404);
    }
}

#[tokio::test]
async fn who_may_patch_and_a_token_never_widens_its_own() {
    let server = TestServer::start().await;
    let ws = server.workspace1().await;
    let (member_id, _) = server.user("pat-member", OrgRole::Member).await;
    let (status, _, _) = call(
        &server,
        admin(&server),
        Method::PUT,
        &format!("/api/v1/workspaces/{ws}/members/{member_id}"),
        Some(json!({"role": "member"})),
    )
    .await;
    assert_eq!(status, 200);
    let viewer = server
        .signed_in("pat-member", "password-of-pat-member")
        .await;
    // The admin's client token: a viewer may not manage it.
    let (id, _, _) = create(
        &server,
        admin(&server),
        "client",
        json!({"remaining_uses": 10}),
    )
    .await;
    let viewer_token = viewer
        .tokens()
        .create(
            &ws,
            &latchkey_client::proto::CreateTokenRequest::new("viewer's", TokenType::Personal),
        )
        .await
        .unwrap();
    let (status, _, err) = call(
        &server,
        &viewer_token.token,
        Method::PATCH,
        &format!("/api/v1/tokens/{id}"),
        Some(json!({"remaining_uses": 1000})),
    )
    .await;
    assert!(matches!(status, 403 | 404), "{status} {err}");

    // A personal token with limits, narrowing and widening itself.
    let (own_id, own_secret, _) = create(
        &server,
        admin(&server),
        "personal",
        json!({
            "scopes": ["tokens:read", "tokens:write"],
            "metadata": {"plan": "free"},
            "allowed_ips": ["127.0.0.0/8"],
            "rate_limit": {"limit": 100, "window_secs": 60},
            "remaining_uses": 50,
            "refill": {"amount": 50, "interval": "daily"},
        }),
    )
    .await;
    let own = format!("/api/v1/tokens/{own_id}");
    let widen: Vec<(Value, &str)> = vec![
        (json!({"metadata": {"plan": "enterprise"}}), "metadata"),
        (json!({"allowed_ips": null}), "allowed_ips"),
        (json!({"allowed_ips": ["0.0.0.0/0"]}), "allowed_ips"),
        (json!({"rate_limit": null}), "rate_limit"),
        (
            json!({"rate_limit": {"limit": 101, "window_secs": 60}}),
            "rate_limit",
        ),
        (
            json!({"rate_limit": {"limit": 100, "window_secs": 30}}),
            "rate_limit",
        ),
        (json!({"remaining_uses": null}), "remaining_uses"),
        (json!({"remaining_uses": 10_000}), "remaining_uses"),
        (
            json!({"refill": {"amount": 51, "interval": "daily"}}),
            "refill",
        ),
    ];
    for (body, what) in widen {
        let (status, _, err) = call(
            &server,
            &own_secret,
            Method::PATCH,
            &own,
            Some(body.clone()),
        )
        .await;
        assert_eq!(status, 403, "{body}: {err}");
        assert!(
            err["error"]["message"].as_str().unwrap().contains(what),
            "{body}: {err}"
        );
    }
    // Narrowing is fine.
    let (status, _, narrowed) = call(
        &server,
        &own_secret,
        Method::PATCH,
        &own,
        Some(json!({
            "allowed_ips": ["127.0.0.1/32"],
            "rate_limit": {"limit": 50, "window_secs": 120},
            "remaining_uses": 20,
            "refill": {"amount": 20, "interval": "monthly"},
        })),
    )
    .await;
    assert_eq!(status, 200, "{narrowed}");
    assert_eq!(narrowed["remaining_uses"], json!(20));
    // Another credential that may manage it (the bootstrap token) may widen it again.
    let (status, _, widened) = call(
        &server,
        admin(&server),
        Method::PATCH,
        &own,
        Some(json!({"allowed_ips": null, "rate_limit": null, "metadata": {"plan": "pro"}})),
    )
    .await;
    assert_eq!(status, 200, "{widened}");
    assert_eq!(widened["allowed_ips"], Value::Null);
}
