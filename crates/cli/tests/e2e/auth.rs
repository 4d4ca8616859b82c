//! Authentication: every header form, sessions, sign-out, CSRF, WWW-Authenticate.

use latchkey_client::TokenHeader;
use latchkey_client::proto::TokenType;

use crate::harness::{ADMIN_PASSWORD, TestServer};

#[tokio::test]
async fn every_header_form_authenticates_and_reports_expiry() {
    let server = TestServer::start().await;
    let token = server.admin_token.clone().unwrap();
    let http = server.http();
    let me = format!("{}/api/v1/me", server.url);
    for (name, value) in [
        ("authorization", format!("Bearer {token}")),
        ("authorization", format!("bearer {token}")),
        ("authorization", format!("Token {token}")),
        ("x-api-key", token.clone()),
        ("rime-api-key", token.clone()),
    ] {
        let resp = http.get(&me).header(name, value).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{name}");
        let exp = resp
            .headers()
            .get("latchkey-token-expiration")
            .expect("expiration header")
            .to_str()
            .unwrap()
            .to_owned();
        assert!(exp.ends_with('Z') && exp.len() == 20, "{exp}");
    }
    // A header that is not configured carries nothing.
    let resp = http
        .get(&me)
        .header("other-api-key", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let challenge = resp
        .headers()
        .get("www-authenticate")
        .unwrap()
        .to_str()
        .unwrap();
    assert!(challenge.starts_with("Bearer"), "{challenge}");
    // The SDK's header forms.
    for form in [
        TokenHeader::Bearer,
        TokenHeader::Token,
        TokenHeader::XApiKey,
        TokenHeader::Custom("rime-api-key".into()),
    ] {
        server.admin().with_token_header(form).me().await.unwrap();
    }
}

#[tokio::test]
async fn bad_tokens_get_401_with_invalid_token_challenge() {
    let server = TestServer::start().await;
    let http = server.http();
    let mut mistyped = server.admin_token.clone().unwrap().into_bytes();
    mistyped[10] = if mistyped[10] == b'a' { b'b' } else { b'a' };
    let mistyped = String::from_utf8(mistyped).unwrap();
    for bad in ["nonsense", "lkp_short", mistyped.as_str()] {
        let resp = http
            .get(format!("{}/api/v1/me", server.url))
            .bearer_auth(bad)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 401);
        let challenge = resp
            .headers()
            .get("www-authenticate")
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned();
        assert!(challenge.contains("invalid_token"), "{challenge}");
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["code"], "unauthenticated");
    }
    // No credential at all.
    let resp = http
        .get(format!("{}/api/v1/me", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(
        resp.headers().get("www-authenticate").unwrap(),
        "Bearer realm=\"latchkey\""
    );
}

#[tokio::test]
async fn sign_in_sets_a_safe_cookie_and_sign_out_ends_the_session_for_good() {
    let server = TestServer::start().await;
    let http = server.http();
    let resp = http
        .post(format!("{}/api/v1/session", server.url))
        .json(&serde_json::json!({"username": "admin", "password": ADMIN_PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let cookie = resp
        .headers()
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Lax"), "{cookie}");
    assert!(
        !cookie.contains("Secure"),
        "plain http is not behind TLS: {cookie}"
    );
    let user: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(user["username"], "admin");
    let pair = cookie.split(';').next().unwrap().to_owned();

    let me = http
        .get(format!("{}/api/v1/me", server.url))
        .header("cookie", &pair)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);

    // A cookie write naming no origin at all is refused (issue 21.12); with ours it works.
    let out = http
        .delete(format!("{}/api/v1/session", server.url))
        .header("cookie", &pair)
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 403);
    let out = http
        .delete(format!("{}/api/v1/session", server.url))
        .header("cookie", &pair)
        .header("origin", &server.url)
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 204);
    let me = http
        .get(format!("{}/api/v1/me", server.url))
        .header("cookie", &pair)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 401, "the old cookie is dead server-side");
}

#[tokio::test]
async fn wrong_password_and_unknown_user_answer_the_same() {
    let server = TestServer::start().await;
    let http = server.http();
    let mut bodies = Vec::new();
    for (u, p) in [("admin", "wrong password"), ("nobody", "whatever password")] {
        let resp = http
            .post(format!("{}/api/v1/session", server.url))
            .json(&serde_json::json!({"username": u, "password": p}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 401);
        assert!(resp.headers().get("set-cookie").is_none());
        bodies.push(resp.text().await.unwrap());
    }
    assert_eq!(bodies[0], bodies[1]);
}

#[tokio::test]
async fn secure_cookie_behind_tls() {
    let server =
        TestServer::start_with(|c| c.public_url = "https://latchkey.example.com".into()).await;
    let resp = server
        .http()
        .post(format!("{}/api/v1/session", server.url))
        .json(&serde_json::json!({"username": "admin", "password": ADMIN_PASSWORD}))
        .send()
        .await
        .unwrap();
    let cookie = resp.headers().get("set-cookie").unwrap().to_str().unwrap();
    assert!(cookie.contains("; Secure"), "{cookie}");
}

#[tokio::test]
async fn cross_site_requests_with_the_cookie_are_refused() {
    let server = TestServer::start().await;
    let http = server.http();
    let resp = http
        .post(format!("{}/api/v1/session", server.url))
        .json(&serde_json::json!({"username": "admin", "password": ADMIN_PASSWORD}))
        .send()
        .await
        .unwrap();
    let pair = resp
        .headers()
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let ws = server.workspace1().await;
    let attempt = |origin: Option<&'static str>, site: Option<&'static str>| {
        let mut req = http
            .post(format!("{}/api/v1/workspaces/{ws}/tokens", server.url))
            .header("cookie", &pair)
            .json(&serde_json::json!({"name": "csrf", "type": "personal"}));
        if let Some(o) = origin {
            req = req.header("origin", o);
        }
        if let Some(s) = site {
            req = req.header("sec-fetch-site", s);
        }
        req.send()
    };
    assert_eq!(
        attempt(Some("https://evil.example"), None)
            .await
            .unwrap()
            .status(),
        403
    );
    assert_eq!(
        attempt(None, Some("cross-site")).await.unwrap().status(),
        403
    );
    assert_eq!(
        attempt(None, Some("same-origin")).await.unwrap().status(),
        201
    );
    let own = Box::leak(server.url.clone().into_boxed_str());
    assert_eq!(attempt(Some(own), None).await.unwrap().status(), 201);
    // Token-authenticated requests are exempt: they carry no ambient credential.
    let resp = http
        .post(format!("{}/api/v1/workspaces/{ws}/tokens", server.url))
        .bearer_auth(server.admin_token.as_deref().unwrap())
        .header("origin", "https://evil.example")
        .json(&serde_json::json!({"name": "tok", "type": "personal"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
}

#[tokio::test]
async fn deactivated_user_is_cut_off_at_once_and_restored_on_reactivation() {
    let server = TestServer::start().await;
    let admin = server.admin();
    let ws = server.workspace1().await;
    let (uid, member) = server
        .user("dana", latchkey_client::proto::OrgRole::Member)
        .await;
    admin
        .put_member(&ws, &uid, latchkey_client::proto::WorkspaceRole::Member)
        .await
        .unwrap();
    let created = server
        .token(&member, &ws, "dana-ci", TokenType::Personal)
        .await;
    let as_token = server.with_token(&created.token);
    as_token.me().await.unwrap();
    admin
        .update_user(
            &uid,
            &latchkey_client::proto::UpdateUserRequest {
                active: Some(false),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(as_token.me().await.unwrap_err().status(), Some(401));
    assert_eq!(
        member.me().await.unwrap_err().status(),
        Some(401),
        "session ended"
    );
    let v = admin.verify(&created.token).await.unwrap();
    assert_eq!(v.reason, Some(latchkey_client::proto::Reason::Suspended));
    let t = admin.tokens().get(&created.meta.id).await.unwrap();
    assert_eq!(t.state, latchkey_client::proto::TokenState::Suspended);
    // A deactivated user signing in gets the same 401 as a wrong password.
    let err = server
        .anonymous()
        .sign_in("dana", "password-of-dana")
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(401));
    admin
        .update_user(
            &uid,
            &latchkey_client::proto::UpdateUserRequest {
                active: Some(true),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    as_token.me().await.unwrap();
}
