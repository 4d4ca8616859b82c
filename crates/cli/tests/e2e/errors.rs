//! Bad input gets a clear JSON error with the right status, and changes nothing.

use latchkey_client::PageQuery;

use crate::harness::TestServer;

async fn call(
    server: &TestServer,
    method: reqwest::Method,
    path: &str,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> (u16, serde_json::Value) {
    let mut req = server
        .http()
        .request(method, format!("{}{path}", server.url))
        .bearer_auth(server.admin_token.as_deref().unwrap());
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    let resp = req.body(body).send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    let json =
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {status} {text:?}"));
    (status, json)
}

/// Content type, body, expected status, code and field.
type Case<'a> = (Option<&'a str>, Vec<u8>, u16, &'a str, Option<&'a str>);

#[tokio::test]
async fn bad_bodies_are_refused_with_the_right_status_and_nothing_changes() {
    let server = TestServer::start_with(|c| c.max_body_bytes = 4096).await;
    let ws = server.workspace1().await;
    let path = format!("/api/v1/workspaces/{ws}/tokens");
    let json = Some("application/json");
    let cases: Vec<Case<'_>> = vec![
        (json, b"{".to_vec(), 400, "malformed_json", None),
        (
            json,
            b"{\"name\": \"x\",}".to_vec(),
            400,
            "malformed_json",
            None,
        ),
        (json, b"{} trailing".to_vec(), 400, "malformed_json", None),
        (
            Some("text/plain"),
            b"{\"name\":\"x\"}".to_vec(),
            415,
            "unsupported_media_type",
            None,
        ),
        (
            None,
            b"{\"name\":\"x\"}".to_vec(),
            415,
            "unsupported_media_type",
            None,
        ),
        (
            json,
            format!("{{\"name\":\"{}\"}}", "x".repeat(5000)).into_bytes(),
            413,
            "payload_too_large",
            None,
        ),
        (json, b"{}".to_vec(), 422, "invalid_field", Some("name")),
        (json, b"[]".to_vec(), 422, "invalid_field", None),
        (
            json,
            b"{\"name\":\"x\",\"type\":\"superuser\"}".to_vec(),
            422,
            "invalid_field",
            Some("type"),
        ),
        (
            json,
            b"{\"name\":\"x\",\"surprise\":1}".to_vec(),
            422,
            "invalid_field",
            Some("surprise"),
        ),
        (
            json,
            b"{\"name\":\"x\",\"scopes\":[\"root\"]}".to_vec(),
            422,
            "invalid_field",
            None,
        ),
        (
            json,
            b"{\"name\":\"x\",\"scopes\":[]}".to_vec(),
            422,
            "invalid_field",
            Some("scopes"),
        ),
        (
            json,
            b"{\"name\":\"   \"}".to_vec(),
            422,
            "invalid_field",
            Some("name"),
        ),
        (
            json,
            format!("{{\"name\":\"{}\"}}", "n".repeat(201)).into_bytes(),
            422,
            "invalid_field",
            Some("name"),
        ),
        (
            json,
            b"{\"name\":\"x\",\"expires_in_days\":0}".to_vec(),
            422,
            "invalid_field",
            Some("expires_in_days"),
        ),
        (
            json,
            b"{\"name\":\"x\",\"expires_in_days\":1.5}".to_vec(),
            422,
            "invalid_field",
            Some("expires_in_days"),
        ),
        (
            json,
            b"{\"name\":\"x\",\"expires_at\":\"yesterday\"}".to_vec(),
            422,
            "invalid_field",
            Some("expires_at"),
        ),
        (
            json,
            b"{\"name\":\"x\",\"expires_at\":\"2000-01-01T00:00:00Z\"}".to_vec(),
            422,
            "invalid_field",
            Some("expires_at"),
        ),
        (
            json,
            b"{\"name\":\"x\",\"expires_in_days\":300}".to_vec(),
            422,
            "lifetime_exceeds_policy",
            None,
        ),
        (
            json,
            b"{\"name\":\"x\",\"type\":\"client\",\"projects\":[\"nope\"]}".to_vec(),
            422,
            "invalid_field",
            Some("projects"),
        ),
        (
            json,
            b"{\"name\":\"x\",\"type\":\"client\",\"environment\":\"has space\"}".to_vec(),
            422,
            "invalid_field",
            Some("environment"),
        ),
        (
            json,
            b"{\"name\":\"x\",\"type\":\"personal\",\"environment\":\"prod\"}".to_vec(),
            422,
            "invalid_field",
            Some("environment"),
        ),
        (
            json,
            b"{\"name\":\"x\",\"type\":\"client\",\"owner_id\":\"x\"}".to_vec(),
            422,
            "invalid_field",
            Some("owner_id"),
        ),
    ];
    for (ct, body, status, code, field) in cases {
        let shown = String::from_utf8_lossy(&body)
            .chars()
            .take(60)
            .collect::<String>();
        let (got, json) = call(&server, reqwest::Method::POST, &path, ct, body).await;
        assert_eq!(got, status, "{shown}: {json}");
        assert_eq!(json["error"]["code"], code, "{shown}: {json}");
        assert!(
            json["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
        if let Some(f) = field {
            assert_eq!(json["error"]["field"], f, "{shown}: {json}");
        }
    }
    // Nothing was created by any of them.
    let tokens = server
        .admin()
        .tokens()
        .list(Some(&ws), &PageQuery::default())
        .await
        .unwrap();
    assert_eq!(tokens.items.len(), 1, "only the bootstrap token");
}

#[tokio::test]
async fn unknown_ids_routes_and_bad_queries() {
    let server = TestServer::start().await;
    let ws = server.workspace1().await;
    let missing = "0190a7e4-0000-7000-8000-000000000000";
    for path in [
        format!("/api/v1/tokens/{missing}"),
        "/api/v1/tokens/not-an-id".to_owned(),
        format!("/api/v1/workspaces/{missing}"),
        "/api/v1/workspaces/No such workspace".to_owned(),
        format!("/api/v1/users/{missing}"),
        "/api/v1/nothing-here".to_owned(),
    ] {
        let (status, json) = call(&server, reqwest::Method::GET, &path, None, vec![]).await;
        assert_eq!(status, 404, "{path}");
        assert_eq!(json["error"]["code"], "not_found");
    }
    for action in ["revoke", "restore", "rotate", "approve", "deny"] {
        let (status, _) = call(
            &server,
            reqwest::Method::POST,
            &format!("/api/v1/tokens/{missing}/{action}"),
            None,
            vec![],
        )
        .await;
        assert_eq!(status, 404, "{action}");
    }
    for q in ["limit=0", "limit=201", "limit=abc", "cursor=garbage"] {
        let (status, json) = call(
            &server,
            reqwest::Method::GET,
            &format!("/api/v1/workspaces/{ws}/tokens?{q}"),
            None,
            vec![],
        )
        .await;
        assert_eq!(status, 422, "{q}");
        assert_eq!(json["error"]["code"], "invalid_field");
    }
    // Workspaces are addressable by name too.
    let (status, json) = call(
        &server,
        reqwest::Method::GET,
        "/api/v1/workspaces/Workspace%201",
        None,
        vec![],
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(json["id"], ws.as_str());
}

#[tokio::test]
async fn action_endpoints_take_an_empty_body_without_content_type() {
    let server = TestServer::start().await;
    let ws = server.workspace1().await;
    let created = server
        .token(
            &server.admin(),
            &ws,
            "t",
            latchkey_client::proto::TokenType::Client,
        )
        .await;
    let id = &created.meta.id;
    let (s, j) = call(
        &server,
        reqwest::Method::POST,
        &format!("/api/v1/tokens/{id}/revoke"),
        None,
        vec![],
    )
    .await;
    assert_eq!(s, 200, "{j}");
    assert_eq!(j["state"], "revoked");
    let (s, _) = call(
        &server,
        reqwest::Method::POST,
        &format!("/api/v1/tokens/{id}/restore"),
        Some("application/json"),
        b"{}".to_vec(),
    )
    .await;
    assert_eq!(s, 200);
    let (s, j) = call(
        &server,
        reqwest::Method::POST,
        &format!("/api/v1/tokens/{id}/rotate"),
        None,
        vec![],
    )
    .await;
    assert_eq!(s, 200);
    assert!(j["token"].as_str().unwrap().starts_with("lkc_"));
    let (s, j) = call(
        &server,
        reqwest::Method::POST,
        &format!("/api/v1/tokens/{id}/rotate"),
        Some("application/json"),
        b"{\"grace_seconds\":-1}".to_vec(),
    )
    .await;
    assert_eq!(s, 422, "{j}");
    assert_eq!(j["error"]["field"], "grace_seconds");
    let (s, _) = call(
        &server,
        reqwest::Method::POST,
        &format!("/api/v1/tokens/{id}/revoke"),
        Some("application/json"),
        b"{\"x\":1}".to_vec(),
    )
    .await;
    assert_eq!(s, 422);
}

#[tokio::test]
async fn verify_answers_200_for_every_well_formed_request() {
    let server = TestServer::start().await;
    let http = server.http();
    let url = format!("{}/api/v1/tokens/verify", server.url);
    for (token, reason) in [
        ("garbage", "bad_format"),
        ("lkp_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA3Ae0o2", "not_found"),
    ] {
        let resp = http
            .post(&url)
            .json(&serde_json::json!({"token": token}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(body, serde_json::json!({"valid": false, "reason": reason}));
    }
    let resp = http
        .post(&url)
        .json(&serde_json::json!({"token": server.admin_token}))
        .send()
        .await
        .unwrap();
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["valid"], true);
    // Anonymous: nothing about people (issue 21.10; security::anonymous_verify_...).
    assert_eq!(body["token"]["owner_username"], serde_json::Value::Null);
    assert_eq!(body["token"]["workspace_name"], "Workspace 1");
    assert!(body.get("reason").is_none());
    let resp = http
        .post(&url)
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 422);
    let resp = http.post(&url).body("token=x").send().await.unwrap();
    assert_eq!(resp.status(), 415);
}

#[tokio::test]
async fn failed_token_checks_are_throttled_per_ip() {
    let server = TestServer::start_with(|c| c.throttle.failed_token_checks = 5).await;
    let http = server.http();
    let url = format!("{}/api/v1/tokens/verify", server.url);
    for _ in 0..5 {
        let resp = http
            .post(&url)
            .json(&serde_json::json!({"token": "nope"}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
    }
    let resp = http
        .post(&url)
        .json(&serde_json::json!({"token": "nope"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 429);
    assert!(resp.headers().get("retry-after").is_some());
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limited");
    // Failures from that IP are throttled on every route, but its valid tokens still work
    // (issue 21.11: throttle the failures, not the valid tokens of the same address).
    let resp = http
        .get(format!("{}/api/v1/me", server.url))
        .bearer_auth("lkp_00000000000000000000000000000000000000")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 429);
    let resp = http
        .get(format!("{}/api/v1/me", server.url))
        .bearer_auth(server.admin_token.as_deref().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        server
            .anonymous()
            .verify(server.admin_token.as_deref().unwrap())
            .await
            .unwrap()
            .valid
    );
}

#[tokio::test]
async fn sign_in_is_throttled() {
    let server = TestServer::start_with(|c| c.throttle.sign_in_attempts = 3).await;
    for _ in 0..3 {
        let err = server
            .anonymous()
            .sign_in("admin", "wrong-password")
            .await
            .unwrap_err();
        assert_eq!(err.status(), Some(401));
    }
    let err = server
        .anonymous()
        .sign_in("admin", crate::harness::ADMIN_PASSWORD)
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(429));
}

/// An unknown address answers a browser with a readable page and anything else (and
/// every machine-facing prefix, whatever it accepts) with the JSON error.
#[tokio::test]
async fn unknown_routes_answer_browsers_with_a_page_and_clients_with_json() {
    let server = TestServer::start().await;
    let browser_accept = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
    let get = |path: &str, accept: Option<&str>| {
        let mut req = server.http().get(format!("{}{path}", server.url));
        if let Some(accept) = accept {
            req = req.header("accept", accept);
        }
        async move {
            let resp = req.send().await.unwrap();
            let status = resp.status().as_u16();
            let content_type = resp
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            (status, content_type, resp.text().await.unwrap())
        }
    };

    let (status, content_type, body) = get("/no/such/page", Some(browser_accept)).await;
    assert_eq!(status, 404);
    assert!(content_type.starts_with("text/html"), "{content_type}");
    assert!(
        body.contains("Not found") && body.contains("Back to Workspaces"),
        "{body}"
    );

    for (path, accept) in [
        ("/no/such/page", None),
        ("/no/such/page", Some("application/json")),
        ("/api/v1/nothing-here", Some(browser_accept)),
        ("/auth/nothing-here", Some(browser_accept)),
    ] {
        let (status, content_type, body) = get(path, accept).await;
        assert_eq!(status, 404, "{path} {accept:?}");
        assert!(
            content_type.starts_with("application/json"),
            "{path}: {content_type}"
        );
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(json["error"]["code"], "not_found", "{path}");
    }
}

/// A fresh server, Workspace 1's id and the id of an active client token in it.
async fn server_with_a_token() -> (TestServer, String, String) {
    let server = TestServer::start().await;
    let ws = server.workspace1().await;
    let victim = server
        .token(
            &server.admin(),
            &ws,
            "victim",
            latchkey_client::proto::TokenType::Client,
        )
        .await;
    (server, ws, victim.meta.id)
}

/// `method path` with the bootstrap token.
async fn as_admin(server: &TestServer, method: reqwest::Method, path: &str) -> reqwest::Response {
    server
        .http()
        .request(method, format!("{}{path}", server.url))
        .bearer_auth(server.admin_token.as_deref().unwrap())
        .send()
        .await
        .unwrap()
}

/// The methods in an `Allow` header, upper case, as a sorted list.
fn allowed(resp: &reqwest::Response) -> Vec<String> {
    let mut methods: Vec<String> = resp
        .headers()
        .get_all("allow")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|m| m.trim().to_ascii_uppercase())
        .filter(|m| !m.is_empty())
        .collect();
    methods.sort();
    methods
}

#[tokio::test]
async fn a_wrong_method_answers_405_with_allow_and_changes_nothing() {
    let (server, ws, id) = server_with_a_token().await;
    let admin = server.admin();
    let id = &id;
    let trace = reqwest::Method::TRACE;
    let query = reqwest::Method::from_bytes(b"QUERY").unwrap();
    let cases: Vec<(reqwest::Method, String, &[&str])> = vec![
        (trace.clone(), "/readyz".into(), &["GET", "HEAD"]),
        (trace.clone(), "/api/v1/me".into(), &["GET", "HEAD"]),
        (
            trace.clone(),
            "/auth/verify".into(),
            &["DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT"],
        ),
        (
            trace.clone(),
            "/auth/verify/api/x".into(),
            &["DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT"],
        ),
        (
            reqwest::Method::PUT,
            format!("/api/v1/tokens/{id}"),
            &["DELETE", "GET", "HEAD", "PATCH"],
        ),
        (
            reqwest::Method::DELETE,
            format!("/api/v1/tokens/{id}/revoke"),
            &["POST"],
        ),
        (reqwest::Method::GET, "/oauth/introspect".into(), &["POST"]),
        (
            reqwest::Method::PATCH,
            "/api/v1/session".into(),
            &["DELETE", "POST"],
        ),
        (
            query,
            format!("/api/v1/workspaces/{ws}/tokens"),
            &["GET", "HEAD", "POST"],
        ),
    ];
    for (method, path, expected) in cases {
        let resp = as_admin(&server, method.clone(), &path).await;
        assert_eq!(resp.status().as_u16(), 405, "{method} {path}");
        assert_eq!(allowed(&resp), expected, "{method} {path}: Allow");
        assert!(
            resp.headers()
                .get("content-type")
                .is_some_and(|v| v.as_bytes().starts_with(b"application/json")),
            "{method} {path}: JSON"
        );
        let json: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(
            json["error"]["code"], "method_not_allowed",
            "{method} {path}"
        );
    }
    // `DELETE …/revoke` revoked nothing.
    let token = admin.tokens().get(id).await.unwrap();
    assert_eq!(token.state, latchkey_client::proto::TokenState::Active);
}

#[tokio::test]
async fn unknown_query_parameters_are_refused_naming_them() {
    let (server, ws, id) = server_with_a_token().await;
    let admin = server.admin();
    let cases: Vec<(reqwest::Method, String, &str)> = vec![
        // The reported one: a filter the list does not have must not answer unfiltered.
        (
            reqwest::Method::GET,
            format!("/api/v1/workspaces/{ws}/tokens?state=revoked"),
            "state",
        ),
        (
            reqwest::Method::GET,
            format!("/api/v1/workspaces/{ws}/tokens?limit=10&Limit=5"),
            "Limit",
        ),
        (
            reqwest::Method::GET,
            "/api/v1/me?verbose=1".into(),
            "verbose",
        ),
        (
            reqwest::Method::GET,
            "/api/v1/audit-events?action=token.created&actions=x".into(),
            "actions",
        ),
        (
            reqwest::Method::HEAD,
            "/api/v1/users?role=owner".into(),
            "role",
        ),
        (
            reqwest::Method::POST,
            format!("/api/v1/tokens/{id}/revoke?dry_run=true"),
            "dry_run",
        ),
        (
            reqwest::Method::DELETE,
            format!("/api/v1/tokens/{id}?soft=1"),
            "soft",
        ),
    ];
    for (method, path, field) in cases {
        let resp = as_admin(&server, method.clone(), &path).await;
        assert_eq!(resp.status().as_u16(), 422, "{method} {path}");
        if method == reqwest::Method::HEAD {
            continue;
        }
        let json: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(json["error"]["code"], "invalid_field", "{method} {path}");
        assert_eq!(json["error"]["field"], field, "{method} {path}");
        let message = json["error"]["message"].as_str().unwrap();
        assert!(message.contains(field), "{method} {path}: {message}");
    }
    // Nothing changed: the token is still there and active.
    let token = admin.tokens().get(&id).await.unwrap();
    assert_eq!(token.state, latchkey_client::proto::TokenState::Active);
    // Declared parameters still work, and forward-auth takes any query (Caddy and Envoy
    // pass the original request's along).
    for path in [
        format!("/api/v1/workspaces/{ws}/tokens?limit=1"),
        "/api/v1/audit-events?action=token.created&limit=5".to_owned(),
        "/auth/verify?page=2&q=x".to_owned(),
        "/auth/verify/api/items?page=2".to_owned(),
    ] {
        let resp = as_admin(&server, reqwest::Method::GET, &path).await;
        assert_eq!(resp.status().as_u16(), 200, "{path}");
    }
}
