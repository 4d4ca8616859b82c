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

// --- enforcement on every use -------------------------------------------------------

pub fn header<'a>(headers: &'a reqwest::header::HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The `RateLimit-*` and `Retry-After` headers of a refusal over a limit of `limit`.
fn assert_rate_headers(headers: &reqwest::header::HeaderMap, limit: u32) {
    assert_eq!(
        header(headers, "ratelimit-limit"),
        Some(&*limit.to_string())
    );
    assert_eq!(header(headers, "ratelimit-remaining"), Some("0"));
    let reset: u64 = header(headers, "ratelimit-reset").unwrap().parse().unwrap();
    let retry: u64 = header(headers, "retry-after").unwrap().parse().unwrap();
    assert!((1..=86_400).contains(&reset), "{reset}");
    assert_eq!(reset, retry);
}

/// A day-long window, so a test never straddles two (unless it runs across midnight UTC:
/// then the count restarts, which the tests below allow for by retrying once).
const DAY: u64 = 86_400;

pub async fn forward_auth(server: &TestServer, secret: &str) -> (u16, reqwest::header::HeaderMap) {
    let resp = server
        .http()
        .get(format!("{}/auth/verify", server.url))
        .bearer_auth(secret)
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.headers().clone())
}

pub async fn verify(
    server: &TestServer,
    secret: &str,
    ip: Option<&str>,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let mut body = json!({"token": secret});
    if let Some(ip) = ip {
        body["ip"] = json!(ip);
    }
    let resp = server
        .http()
        .post(format!("{}/api/v1/tokens/verify", server.url))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    (status, headers, resp.json().await.unwrap())
}

pub async fn introspect(server: &TestServer, secret: &str, ip: Option<&str>) -> Value {
    let mut form = vec![("token", secret.to_owned())];
    if let Some(ip) = ip {
        form.push(("ip", ip.to_owned()));
    }
    let resp = server
        .http()
        .post(format!("{}/oauth/introspect", server.url))
        .bearer_auth(admin(server))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    resp.json().await.unwrap()
}

#[tokio::test]
async fn a_rate_limit_admits_exactly_the_limit_on_one_node_on_every_surface() {
    let server = TestServer::start().await;
    // REST API: 429 rate_limited with the headers.
    let (_, api, _) = create(
        &server,
        admin(&server),
        "personal",
        json!({"rate_limit": {"limit": 5, "window_secs": DAY}}),
    )
    .await;
    let mut admitted = 0;
    let mut last = None;
    for _ in 0..9 {
        let (status, headers, body) = call(&server, &api, Method::GET, "/api/v1/me", None).await;
        match status {
            200 => admitted += 1,
            429 => {
                assert_eq!(body["error"]["code"], json!("rate_limited"), "{body}");
                last = Some(headers);
            }
            other => panic!("{other} {body}"),
        }
    }
    assert_eq!(admitted, 5);
    assert_rate_headers(&last.unwrap(), 5);

    // POST /api/v1/tokens/verify: valid:false reason rate_limited, with the headers.
    let (_, secret, _) = create(
        &server,
        admin(&server),
        "client",
        json!({"rate_limit": {"limit": 3, "window_secs": DAY}, "metadata": {"plan": "pro"}}),
    )
    .await;
    for i in 0..3 {
        let (status, headers, body) = verify(&server, &secret, None).await;
        assert_eq!(status, 200);
        assert_eq!(body["valid"], json!(true), "use {i}: {body}");
        assert_eq!(body["token"]["metadata"], json!({"plan": "pro"}));
        assert!(headers.get("ratelimit-limit").is_none());
    }
    let (status, headers, body) = verify(&server, &secret, None).await;
    assert_eq!(status, 200);
    assert_eq!(body, json!({"valid": false, "reason": "rate_limited"}));
    assert_rate_headers(&headers, 3);

    // Forward-auth: 403 with X-Latchkey-Reason, and the metadata header while admitted.
    let (_, fa, _) = create(
        &server,
        admin(&server),
        "client",
        json!({"rate_limit": {"limit": 4, "window_secs": DAY}, "metadata": {"plan": "pro", "n": 1}}),
    )
    .await;
    for _ in 0..4 {
        let (status, headers) = forward_auth(&server, &fa).await;
        assert_eq!(status, 200);
        use base64::Engine as _;
        let decoded = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(header(&headers, "x-latchkey-metadata").unwrap())
            .unwrap();
        assert_eq!(
            serde_json::from_slice::<Value>(&decoded).unwrap(),
            json!({"plan": "pro", "n": 1})
        );
    }
    let (status, headers) = forward_auth(&server, &fa).await;
    assert_eq!(status, 403);
    assert_eq!(header(&headers, "x-latchkey-reason"), Some("rate_limited"));
    assert_rate_headers(&headers, 4);

    // Introspection counts too, and answers inactive over the limit.
    let (_, intro, _) = create(
        &server,
        admin(&server),
        "client",
        json!({"rate_limit": {"limit": 2, "window_secs": DAY}, "metadata": {"k": "v"}}),
    )
    .await;
    for _ in 0..2 {
        let answer = introspect(&server, &intro, None).await;
        assert_eq!(answer["active"], json!(true), "{answer}");
        assert_eq!(answer["metadata"], json!({"k": "v"}));
    }
    assert_eq!(
        introspect(&server, &intro, None).await,
        json!({"active": false})
    );

    // Every surface counts against one limit.
    let (_, mixed, _) = create(
        &server,
        admin(&server),
        "personal",
        json!({"rate_limit": {"limit": 4, "window_secs": DAY}}),
    )
    .await;
    assert_eq!(
        call(&server, &mixed, Method::GET, "/api/v1/me", None)
            .await
            .0,
        200
    );
    assert_eq!(verify(&server, &mixed, None).await.2["valid"], json!(true));
    assert_eq!(forward_auth(&server, &mixed).await.0, 200);
    assert_eq!(
        introspect(&server, &mixed, None).await["active"],
        json!(true)
    );
    assert_eq!(
        call(&server, &mixed, Method::GET, "/api/v1/me", None)
            .await
            .0,
        429
    );
    assert_eq!(forward_auth(&server, &mixed).await.0, 403);

    // A new window admits again (time is an input).
    server.state.clock.advance(86_400);
    assert_eq!(
        call(&server, &api, Method::GET, "/api/v1/me", None).await.0,
        200
    );
}

#[tokio::test]
async fn usage_credits_run_out_refill_and_patch_takes_effect_at_once() {
    let server = TestServer::start().await;
    let (id, secret, _) = create(
        &server,
        admin(&server),
        "personal",
        json!({"remaining_uses": 3, "refill": {"amount": 2, "interval": "daily"}}),
    )
    .await;
    let path = format!("/api/v1/tokens/{id}");
    for left in [2, 1, 0] {
        let (status, _, _) = call(&server, &secret, Method::GET, "/api/v1/me", None).await;
        assert_eq!(status, 200);
        let (_, _, token) = call(&server, admin(&server), Method::GET, &path, None).await;
        assert_eq!(token["remaining_uses"], json!(left), "{token}");
    }
    let (status, headers, body) = call(&server, &secret, Method::GET, "/api/v1/me", None).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], json!("usage_exceeded"));
    let retry: u64 = header(&headers, "retry-after").unwrap().parse().unwrap();
    assert!((1..=86_400).contains(&retry));
    assert_eq!(
        verify(&server, &secret, None).await.2,
        json!({"valid": false, "reason": "usage_exceeded"})
    );
    assert_eq!(forward_auth(&server, &secret).await.0, 403);
    assert_eq!(
        header(&forward_auth(&server, &secret).await.1, "x-latchkey-reason"),
        Some("usage_exceeded")
    );

    // The next day: refilled to the refill's amount.
    server.state.clock.advance(86_400);
    let (_, _, token) = call(&server, admin(&server), Method::GET, &path, None).await;
    assert_eq!(token["remaining_uses"], json!(2), "{token}");
    for _ in 0..2 {
        assert_eq!(
            call(&server, &secret, Method::GET, "/api/v1/me", None)
                .await
                .0,
            200
        );
    }
    assert_eq!(
        call(&server, &secret, Method::GET, "/api/v1/me", None)
            .await
            .0,
        403
    );

    // PATCH: exactly that many from now on, at once.
    let (status, _, patched) = call(
        &server,
        admin(&server),
        Method::PATCH,
        &path,
        Some(json!({"remaining_uses": 4})),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(patched["remaining_uses"], json!(4));
    let mut admitted = 0;
    for _ in 0..7 {
        if verify(&server, &secret, None).await.2["valid"] == json!(true) {
            admitted += 1;
        }
    }
    assert_eq!(admitted, 4);
    // Credits off: unlimited again.
    call(
        &server,
        admin(&server),
        Method::PATCH,
        &path,
        Some(json!({"remaining_uses": null})),
    )
    .await;
    for _ in 0..5 {
        assert_eq!(verify(&server, &secret, None).await.2["valid"], json!(true));
    }
}

#[tokio::test]
async fn allowed_ips_on_every_surface() {
    let server = TestServer::start().await;
    let (_, outside, _) = create(
        &server,
        admin(&server),
        "personal",
        json!({"allowed_ips": ["10.0.0.0/8", "2001:db8::/32"]}),
    )
    .await;
    let (status, _, body) = call(&server, &outside, Method::GET, "/api/v1/me", None).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], json!("ip_not_allowed"));
    let (status, headers) = forward_auth(&server, &outside).await;
    assert_eq!(status, 403);
    assert_eq!(
        header(&headers, "x-latchkey-reason"),
        Some("ip_not_allowed")
    );
    // verify and introspection: the caller says where the token is used from.
    for (ip, valid) in [
        (Some("10.1.2.3"), true),
        (Some("2001:db8:5::1"), true),
        (Some("::ffff:10.9.9.9"), true),
        (Some("192.0.2.1"), false),
        (Some("2001:db9::1"), false),
        (None, false),
    ] {
        let (_, _, answer) = verify(&server, &outside, ip).await;
        assert_eq!(answer["valid"], json!(valid), "{ip:?}: {answer}");
        if !valid {
            assert_eq!(answer["reason"], json!("ip_not_allowed"));
        }
        assert_eq!(
            introspect(&server, &outside, ip).await["active"],
            json!(valid),
            "{ip:?}"
        );
    }
    let (status, _, err) = verify(&server, &outside, Some("10.0.0.0/8")).await;
    assert_eq!(status, 422);
    assert_eq!(err["error"]["field"], json!("ip"));

    // Loopback, IPv4 and IPv6: the test client comes from 127.0.0.1.
    let (_, inside, _) = create(
        &server,
        admin(&server),
        "personal",
        json!({"allowed_ips": ["127.0.0.0/8", "::1"]}),
    )
    .await;
    assert_eq!(
        call(&server, &inside, Method::GET, "/api/v1/me", None)
            .await
            .0,
        200
    );
    assert_eq!(forward_auth(&server, &inside).await.0, 200);
}

#[tokio::test]
async fn the_client_ip_comes_through_trusted_proxies_only() {
    let spoof = |server: &TestServer, secret: String| {
        let req = server
            .http()
            .get(format!("{}/api/v1/me", server.url))
            .bearer_auth(secret)
            .header("x-forwarded-for", "203.0.113.5");
        async move { req.send().await.unwrap().status().as_u16() }
    };
    // No trusted proxies: X-Forwarded-For from the client is ignored.
    let server = TestServer::start().await;
    let (_, secret, _) = create(
        &server,
        admin(&server),
        "personal",
        json!({"allowed_ips": ["203.0.113.0/24"]}),
    )
    .await;
    assert_eq!(spoof(&server, secret.clone()).await, 403);
    let resp = server
        .http()
        .get(format!("{}/auth/verify", server.url))
        .bearer_auth(&secret)
        .header("x-forwarded-for", "203.0.113.5")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 403);
    // Behind a trusted proxy (127.0.0.1 here), its X-Forwarded-For is the client.
    let proxied = TestServer::start_with(|c| {
        c.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    })
    .await;
    let (_, secret, _) = create(
        &proxied,
        admin(&proxied),
        "personal",
        json!({"allowed_ips": ["203.0.113.0/24"]}),
    )
    .await;
    assert_eq!(spoof(&proxied, secret.clone()).await, 200);
    // The client's own entry before the proxy's is not believed past an untrusted hop.
    let resp = proxied
        .http()
        .get(format!("{}/api/v1/me", proxied.url))
        .bearer_auth(&secret)
        .header("x-forwarded-for", "203.0.113.5, 198.51.100.1")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 403);
}
