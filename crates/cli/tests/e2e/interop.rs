//! Interop with other services: JWT exchange and JWKS (checked by an independent library), verify,
//! RFC 7662 introspection, RFC 7009 revocation, leak reports, forward-auth in-process (the proxy recipes run in `proxies`).

use std::path::PathBuf;
use std::process::Command;

use base64::Engine as _;
use latchkey_client::proto::{
    CreateTokenRequest, OrgRole, Reason, RotateTokenRequest, Scope, TokenState, TokenType,
    WorkspaceRole,
};

use crate::harness::{ADMIN_PASSWORD, TestServer};

fn decode_part(jwt: &str, i: usize) -> serde_json::Value {
    let part = jwt.split('.').nth(i).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

async fn post_form(
    server: &TestServer,
    path: &str,
    bearer: Option<&str>,
    form: &[(&str, &str)],
) -> (u16, serde_json::Value) {
    let mut req = server
        .http()
        .post(format!("{}{path}", server.url))
        .form(form);
    if let Some(b) = bearer {
        req = req.bearer_auth(b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(serde_json::Value::Null))
}

#[tokio::test]
async fn personal_token_exchanges_for_a_jwt_that_dies_with_its_token() {
    let server = TestServer::start().await;
    let admin = server.admin();
    let ws = server.workspace1().await;
    let pat = server
        .token(&admin, &ws, "exchange", TokenType::Personal)
        .await;
    let anon = server.anonymous();
    let answer = anon.refresh(&pat.token).await.unwrap();
    assert_eq!(answer.expires_in, 300);
    let header = decode_part(&answer.access, 0);
    assert_eq!(header["alg"], "EdDSA");
    assert_eq!(header["typ"], "at+jwt");
    let claims = decode_part(&answer.access, 1);
    assert_eq!(claims["pat"], pat.meta.id.as_str());
    assert_eq!(claims["ws"], ws.as_str());
    assert_eq!(claims["sub"], pat.meta.owner_id.as_deref().unwrap());
    assert_eq!(claims["aud"], "latchkey");
    // No public_url: a single node is its own address; nodes on PostgreSQL share a name
    // derived from the hash key, so a JWT from one verifies on the others.
    let iss = claims["iss"].as_str().unwrap();
    if server.on_postgres() {
        assert!(iss.starts_with("urn:latchkey:"), "{iss}");
    } else {
        assert!(iss.starts_with("http://"), "{iss}");
    }
    assert!(
        claims["scp"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s == "projects:read")
    );
    assert!(claims["jti"].as_str().is_some());
    // One extra second covers the sub-second part of `iat`, so the JWT lives at least
    // `expires_in` seconds.
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        301
    );
    // JWKS publishes the key.
    let jwks: serde_json::Value = server
        .http()
        .get(format!("{}/.well-known/jwks.json", server.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let keys = jwks["keys"].as_array().unwrap();
    assert!(
        keys.iter()
            .any(|k| k["kid"] == header["kid"] && k["kty"] == "OKP" && k["crv"] == "Ed25519")
    );

    // The JWT authenticates at Latchkey; the expiry header is the JWT's exp.
    let resp = server
        .http()
        .get(format!("{}/api/v1/me", server.url))
        .bearer_auth(&answer.access)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let exp_header = resp.headers()["latchkey-token-expiration"]
        .to_str()
        .unwrap()
        .to_owned();
    let exp =
        time::OffsetDateTime::parse(&exp_header, &time::format_description::well_known::Rfc3339)
            .unwrap();
    assert_eq!(exp.unix_timestamp(), claims["exp"].as_i64().unwrap());
    assert!(admin.verify(&answer.access).await.unwrap().valid);
    // Aliases.
    for path in [
        "/api/token/refresh",
        "/api/token/refresh/",
        "/api/v1/token/refresh/",
    ] {
        let resp = server
            .http()
            .post(format!("{}{path}", server.url))
            .json(&serde_json::json!({"refresh": pat.token}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{path}");
    }
    // A JWT does not refresh into another (issue 21.12): only the personal token does.
    let err = anon.refresh(&answer.access).await.unwrap_err();
    assert_eq!(err.status(), Some(403));
    assert_eq!(err.code(), Some("token_type_not_allowed"));

    // Revoking the personal token kills its JWT at Latchkey on the next request.
    admin.tokens().revoke(&pat.meta.id).await.unwrap();
    let resp = server
        .http()
        .get(format!("{}/api/v1/me", server.url))
        .bearer_auth(&answer.access)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert!(!admin.verify(&answer.access).await.unwrap().valid);
    let err = anon.refresh(&pat.token).await.unwrap_err();
    assert_eq!(err.status(), Some(401));
    assert_eq!(err.code(), Some("invalid_token"));
}

#[tokio::test]
async fn only_personal_tokens_refresh_and_expired_jwts_fail() {
    let server = TestServer::start_with(|c| c.jwt.ttl_secs = 60).await;
    let admin = server.admin();
    let ws = server.workspace1().await;
    let client = server.token(&admin, &ws, "c", TokenType::Client).await;
    let err = server.anonymous().refresh(&client.token).await.unwrap_err();
    assert_eq!(err.status(), Some(403));
    assert_eq!(err.code(), Some("token_type_not_allowed"));
    for bad in [
        "garbage",
        "lkp_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA3Ae0o2",
        "eyJhbGciOiJFZERTQSJ9.e30.AAAA",
    ] {
        let err = server.anonymous().refresh(bad).await.unwrap_err();
        assert_eq!(err.status(), Some(401), "{bad}");
        assert_eq!(err.code(), Some("invalid_token"));
    }
    let access = server
        .anonymous()
        .refresh(server.admin_token.as_deref().unwrap())
        .await
        .unwrap();
    assert_eq!(access.expires_in, 60);
    server.state.clock.advance(61);
    let v = admin.verify(&access.access).await.unwrap();
    assert_eq!(v.reason, Some(Reason::Expired));
}

fn test_python() -> Option<PathBuf> {
    let candidates = [
        std::env::var("LATCHKEY_TEST_PYTHON")
            .ok()
            .map(PathBuf::from),
        Some(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python")),
    ];
    candidates.into_iter().flatten().find(|p| {
        p.exists()
            && Command::new(p)
                .args(["-c", "import jwt, cryptography"])
                .output()
                .is_ok_and(|o| o.status.success())
    })
}

#[tokio::test]
async fn an_independent_library_verifies_the_jwt_against_the_jwks() {
    let Some(python) = test_python() else {
        let why = "SKIP: no Python with PyJWT[crypto] (run scripts/test.sh, which creates .venv)";
        assert!(
            std::env::var("LATCHKEY_TEST_REQUIRE_ALL").as_deref() != Ok("1"),
            "{why}"
        );
        eprintln!("{why}");
        return;
    };
    let server = TestServer::start().await;
    let access = server
        .anonymous()
        .refresh(server.admin_token.as_deref().unwrap())
        .await
        .unwrap();
    let script = r#"
import json, sys, urllib.request, jwt
url, token = sys.argv[1], sys.argv[2]
jwks = json.load(urllib.request.urlopen(url + "/.well-known/jwks.json"))
kid = jwt.get_unverified_header(token)["kid"]
key = next(k for k in jwks["keys"] if k["kid"] == kid)
public = jwt.algorithms.OKPAlgorithm.from_jwk(json.dumps(key))
claims = jwt.decode(token, public, algorithms=["EdDSA"], audience="latchkey", issuer=sys.argv[3])
print(json.dumps(claims))
try:
    jwt.decode(token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB"), public, algorithms=["EdDSA"], audience="latchkey")
    print("TAMPERED-ACCEPTED")
except jwt.InvalidSignatureError:
    print("TAMPERED-REJECTED")
"#;
    let iss = decode_part(&access.access, 1)["iss"]
        .as_str()
        .unwrap()
        .to_owned();
    let url = server.url.clone();
    let token = access.access.clone();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(python)
            .args(["-c", script, &url, &token, &iss])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let claims: serde_json::Value = serde_json::from_str(stdout.lines().next().unwrap()).unwrap();
    assert_eq!(claims["aud"], "latchkey");
    assert!(stdout.contains("TAMPERED-REJECTED"));
}

#[tokio::test]
async fn introspection_as_rfc_7662_writes_it() {
    let server = TestServer::start().await;
    let admin = server.admin();
    let ws = server.workspace1().await;
    let admin_tok = server.token(&admin, &ws, "gateway", TokenType::Admin).await;
    let mut req = CreateTokenRequest::new("introspector", TokenType::Client);
    req.scopes = Some(vec![Scope::Introspect]);
    let introspector = admin.tokens().create(&ws, &req).await.unwrap();
    let plain_client = server.token(&admin, &ws, "plain", TokenType::Client).await;
    let target = server
        .token(&admin, &ws, "target", TokenType::Personal)
        .await;

    // Unauthenticated caller → 401; a token without the scope → 403.
    let (s, _) = post_form(
        &server,
        "/oauth/introspect",
        None,
        &[("token", &target.token)],
    )
    .await;
    assert_eq!(s, 401);
    let (s, _) = post_form(
        &server,
        "/oauth/introspect",
        Some(&plain_client.token),
        &[("token", &target.token)],
    )
    .await;
    assert_eq!(s, 403);

    for caller in [&admin_tok.token, &introspector.token] {
        let (s, body) = post_form(
            &server,
            "/oauth/introspect",
            Some(caller),
            &[
                ("token", &target.token),
                ("token_type_hint", "access_token"),
            ],
        )
        .await;
        assert_eq!(s, 200);
        assert_eq!(body["active"], true);
        assert_eq!(body["client_id"], target.meta.id.as_str());
        assert_eq!(body["username"], "admin");
        assert_eq!(body["sub"], target.meta.owner_id.as_deref().unwrap());
        assert_eq!(body["token_type"], "Bearer");
        assert_eq!(body["workspace_id"], ws.as_str());
        assert_eq!(body["latchkey_type"], "personal");
        assert_eq!(
            body["iat"].as_i64().unwrap(),
            target.meta.created_at.unix_timestamp()
        );
        assert_eq!(
            body["exp"].as_i64().unwrap(),
            target.meta.expires_at.unwrap().unix_timestamp()
        );
        assert!(
            body["scope"]
                .as_str()
                .unwrap()
                .split(' ')
                .any(|s| s == "projects:read")
        );
    }
    // A workspace token's sub is its workspace.
    let (_, body) = post_form(
        &server,
        "/oauth/introspect",
        Some(&admin_tok.token),
        &[("token", &plain_client.token)],
    )
    .await;
    assert_eq!(body["sub"], ws.as_str());
    assert!(body.get("username").is_none());
    // Unknown, malformed, revoked → exactly {"active": false}.
    admin.tokens().revoke(&target.meta.id).await.unwrap();
    for t in [
        target.token.as_str(),
        "nonsense",
        "lkp_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA3Ae0o2",
    ] {
        let (s, body) = post_form(
            &server,
            "/oauth/introspect",
            Some(&admin_tok.token),
            &[("token", t)],
        )
        .await;
        assert_eq!(s, 200);
        assert_eq!(body, serde_json::json!({"active": false}));
    }
    // An org admin's session may introspect; JSON bodies are refused.
    let session = server.signed_in("admin", ADMIN_PASSWORD).await;
    let resp = session
        .request(reqwest::Method::POST, "/oauth/introspect")
        .form(&[("token", admin_tok.token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let resp = server
        .http()
        .post(format!("{}/oauth/introspect", server.url))
        .bearer_auth(&admin_tok.token)
        .json(&serde_json::json!({"token": admin_tok.token}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 415);
    // Missing token field → 422.
    let (s, body) = post_form(
        &server,
        "/oauth/introspect",
        Some(&admin_tok.token),
        &[("nope", "x")],
    )
    .await;
    assert_eq!(s, 422, "{body}");
}

#[tokio::test]
async fn oauth_revoke_as_rfc_7009_writes_it() {
    let server = TestServer::start().await;
    let admin = server.admin();
    let ws = server.workspace1().await;
    let (uid, member) = server.user("rita", OrgRole::Member).await;
    admin
        .put_member(&ws, &uid, WorkspaceRole::Member)
        .await
        .unwrap();
    let own = server
        .token(&member, &ws, "rita-1", TokenType::Personal)
        .await;
    let admins = server
        .token(&admin, &ws, "not-rita", TokenType::Personal)
        .await;

    let (s, _) = post_form(&server, "/oauth/revoke", None, &[("token", &own.token)]).await;
    assert_eq!(s, 401);
    // Unknown tokens: 200 as the RFC says.
    let (s, _) = post_form(
        &server,
        "/oauth/revoke",
        Some(&own.token),
        &[("token", "lkp_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA3Ae0o2")],
    )
    .await;
    assert_eq!(s, 200);
    // Someone else's token: the same 200 as for an unknown one (issue 21.12: the answer
    // must not tell which secrets exist), and it keeps working.
    let (s, body) = post_form(
        &server,
        "/oauth/revoke",
        Some(&own.token),
        &[("token", &admins.token)],
    )
    .await;
    let (unknown_s, unknown_body) = post_form(
        &server,
        "/oauth/revoke",
        Some(&own.token),
        &[("token", "lkc_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA3Ae0o2")],
    )
    .await;
    assert_eq!((s, &body), (unknown_s, &unknown_body));
    assert_eq!(s, 200);
    assert!(admin.verify(&admins.token).await.unwrap().valid);
    // A token may revoke itself.
    let (s, _) = post_form(
        &server,
        "/oauth/revoke",
        Some(&own.token),
        &[("token", &own.token)],
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(
        admin.verify(&own.token).await.unwrap().reason,
        Some(Reason::Revoked)
    );
    // The admin revokes anyone's.
    let (s, _) = post_form(
        &server,
        "/oauth/revoke",
        server.admin_token.as_deref(),
        &[("token", &admins.token)],
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(
        admin.verify(&admins.token).await.unwrap().reason,
        Some(Reason::Revoked)
    );
    drop(member);
}

#[tokio::test]
async fn leak_reports_revoke_for_good_and_tell_the_owner() {
    let server = TestServer::start().await;
    let admin = server.admin();
    let ws = server.workspace1().await;
    let (uid, member) = server.user("lea", OrgRole::Member).await;
    admin
        .put_member(&ws, &uid, WorkspaceRole::Member)
        .await
        .unwrap();
    let leaked = server
        .token(&member, &ws, "pushed-to-github", TokenType::Personal)
        .await;
    let anon = server.anonymous();
    let http = server.http();
    let report = |tokens: serde_json::Value| {
        http.post(format!("{}/api/v1/credentials/revoke", server.url))
            .json(&serde_json::json!({"tokens": tokens}))
            .send()
    };
    let a = report(serde_json::json!([leaked.token, "garbage"]))
        .await
        .unwrap();
    assert_eq!(a.status(), 202);
    let a_body = a.text().await.unwrap();
    let b = report(serde_json::json!([
        "lkp_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA3Ae0o2",
        "garbage"
    ]))
    .await
    .unwrap();
    assert_eq!(b.status(), 202);
    assert_eq!(
        a_body,
        b.text().await.unwrap(),
        "the answer never tells which secrets existed"
    );
    assert_eq!(
        anon.verify(&leaked.token).await.unwrap().reason,
        Some(Reason::Revoked)
    );
    // Cannot be restored; rotate it instead.
    let err = member.tokens().restore(&leaked.meta.id).await.unwrap_err();
    assert_eq!(err.status(), Some(409));
    assert_eq!(err.code(), Some("leaked"));
    let events = member
        .audit_events(&latchkey_client::AuditQuery {
            action: Some("token.leaked".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(events.items.len(), 1, "the owner sees the leak");
    assert_eq!(
        events.items[0].target_id.as_deref(),
        Some(leaked.meta.id.as_str())
    );
    let rotated = member
        .tokens()
        .rotate(&leaked.meta.id, &RotateTokenRequest::default())
        .await
        .unwrap();
    assert_eq!(rotated.meta.state, TokenState::Active);
    assert!(anon.verify(&rotated.token).await.unwrap().valid);
    assert!(!anon.verify(&leaked.token).await.unwrap().valid);
    // Bad bodies.
    let resp = report(serde_json::json!("not a list")).await.unwrap();
    assert_eq!(resp.status(), 422);
    let many: Vec<String> = (0..101).map(|_| "x".to_string()).collect();
    let resp = report(serde_json::json!(many)).await.unwrap();
    assert_eq!(resp.status(), 422);
}

async fn forward(
    server: &TestServer,
    token: Option<&str>,
    uri: &str,
    method: &str,
) -> reqwest::Response {
    let mut req = server
        .http()
        .get(format!("{}/auth/verify", server.url))
        .header("x-original-uri", uri)
        .header("x-original-method", method);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.unwrap()
}

fn policy_config(c: &mut latchkey_server::Config) {
    c.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    c.forward_auth = toml::from_str(
        r#"
        [[routes]]
        path = "/api/admin/"
        types = ["admin"]
        [[routes]]
        path = "/api/client"
        methods = ["POST"]
        types = ["client"]
        scopes = ["projects:write"]
        "#,
    )
    .unwrap();
}

#[tokio::test]
async fn forward_auth_answers_200_401_or_403_with_identity_headers() {
    let server = TestServer::start_with(policy_config).await;
    let admin = server.admin();
    let ws = server.workspace1().await;
    let client = server.token(&admin, &ws, "svc", TokenType::Client).await;
    let admin_tok = server.token(&admin, &ws, "ops", TokenType::Admin).await;
    let pat = server.admin_token.clone().unwrap();

    let resp = forward(&server, None, "/anything", "GET").await;
    assert_eq!(resp.status(), 401);
    assert!(resp.headers().get("www-authenticate").is_some());
    let resp = forward(&server, Some("garbage"), "/anything", "GET").await;
    assert_eq!(resp.status(), 401);
    assert_eq!(resp.headers()["x-latchkey-reason"], "bad_format");

    let resp = forward(&server, Some(&pat), "/anything", "GET").await;
    assert_eq!(resp.status(), 200);
    let h = resp.headers();
    assert_eq!(h["x-latchkey-user"], "admin");
    assert!(h.get("x-latchkey-user-id").is_some());
    assert_eq!(h["x-latchkey-workspace"], ws.as_str());
    assert_eq!(h["x-latchkey-token-type"], "personal");
    assert!(
        h["x-latchkey-scopes"]
            .to_str()
            .unwrap()
            .contains("projects:read")
    );

    // Workspace tokens send no user headers.
    let resp = forward(&server, Some(&client.token), "/anything", "GET").await;
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().get("x-latchkey-user").is_none());
    assert_eq!(
        resp.headers()["x-latchkey-token-id"],
        client.meta.id.as_str()
    );

    // Route policies: first match, types, methods, scopes, segment boundaries, dot segments.
    assert_eq!(
        forward(&server, Some(&client.token), "/api/admin/users", "GET")
            .await
            .status(),
        403
    );
    assert_eq!(
        forward(&server, Some(&admin_tok.token), "/api/admin/users", "GET")
            .await
            .status(),
        200
    );
    assert_eq!(
        forward(&server, Some(&client.token), "/api/administrator", "GET")
            .await
            .status(),
        200
    );
    assert_eq!(
        forward(&server, Some(&client.token), "/api/x/../admin/users", "GET")
            .await
            .status(),
        403
    );
    assert_eq!(
        forward(&server, Some(&client.token), "/api/%61dmin/users", "GET")
            .await
            .status(),
        403
    );
    // POST /api/client needs a client token with projects:write: the default client token has
    // only projects:read.
    assert_eq!(
        forward(&server, Some(&client.token), "/api/client/x", "POST")
            .await
            .status(),
        403
    );
    assert_eq!(
        forward(&server, Some(&client.token), "/api/client/x", "GET")
            .await
            .status(),
        200
    );
    let mut req = CreateTokenRequest::new("writer", TokenType::Client);
    req.scopes = Some(vec![Scope::ProjectsWrite]);
    let writer = admin.tokens().create(&ws, &req).await.unwrap();
    assert_eq!(
        forward(&server, Some(&writer.token), "/api/client/x", "POST")
            .await
            .status(),
        200
    );

    // Revoked → 401 at once.
    admin.tokens().revoke(&client.meta.id).await.unwrap();
    let resp = forward(&server, Some(&client.token), "/anything", "GET").await;
    assert_eq!(resp.status(), 401);
    assert_eq!(resp.headers()["x-latchkey-reason"], "revoked");
}

#[tokio::test]
async fn signing_keys_rotate_and_old_keys_stay_published_until_their_jwts_expire() {
    let server = TestServer::start_with(|c| c.jwt.key_rotation_days = 30).await;
    let anon = server.anonymous();
    let pat = server.admin_token.clone().unwrap();
    let first = anon.refresh(&pat).await.unwrap();
    let kid1 = decode_part(&first.access, 0)["kid"]
        .as_str()
        .unwrap()
        .to_owned();
    server.state.clock.advance(30 * 86_400 + 1);
    let second = anon.refresh(&pat).await.unwrap();
    let kid2 = decode_part(&second.access, 0)["kid"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(kid1, kid2, "a retired key no longer signs");
    let kids = |jwks: serde_json::Value| -> Vec<String> {
        jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap().to_owned())
            .collect()
    };
    let jwks: serde_json::Value = server
        .http()
        .get(format!("{}/.well-known/jwks.json", server.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let published = kids(jwks);
    assert!(
        published.contains(&kid1) && published.contains(&kid2),
        "{published:?}"
    );
    // Once every JWT the old key signed has expired, it leaves the JWKS.
    server.state.clock.advance(1000);
    server.anonymous().refresh(&pat).await.unwrap();
    server
        .state
        .jwt
        .reload(server.state.clock.now())
        .await
        .unwrap();
    let jwks: serde_json::Value = server
        .http()
        .get(format!("{}/.well-known/jwks.json", server.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let published = kids(jwks);
    assert!(
        !published.contains(&kid1) && published.contains(&kid2),
        "{published:?}"
    );
    let third = anon.refresh(&pat).await.unwrap();
    assert_eq!(decode_part(&third.access, 0)["kid"], kid2.as_str());
    assert!(server.admin().verify(&third.access).await.unwrap().valid);
}
