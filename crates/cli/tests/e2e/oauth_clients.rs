//! OAuth client authentication at `/oauth/introspect` and `/oauth/revoke`
//! (`client_secret_basic`, `client_secret_post`: client id = the token's id, secret = the
//! token; RFC 6749 §2.3.1) and the RFC 8414 metadata at
//! `/.well-known/oauth-authorization-server`. authlib drives the same routes from Python
//! (`sdks/python/tests/test_oauth_clients.py`).

use base64::Engine as _;
use latchkey_client::proto::{CreateTokenRequest, CreatedToken, Scope, TokenState, TokenType};

use crate::harness::TestServer;

/// Status, `WWW-Authenticate` and JSON body of a form POST with optional extra headers.
async fn post(
    server: &TestServer,
    path: &str,
    headers: &[(&str, String)],
    form: &[(&str, &str)],
) -> (u16, Option<String>, serde_json::Value) {
    let mut req = server
        .http()
        .post(format!("{}{path}", server.url))
        .form(form);
    for (name, value) in headers {
        req = req.header(*name, value);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let challenge = resp
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned());
    let body = resp.json().await.unwrap_or(serde_json::Value::Null);
    (status, challenge, body)
}

fn basic(id: &str, secret: &str) -> (&'static str, String) {
    let pair = format!("{id}:{secret}");
    (
        "authorization",
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(pair)
        ),
    )
}

/// The RFC 6749 §5.2 answer to a failed client authentication.
#[track_caller]
fn assert_invalid_client(answer: &(u16, Option<String>, serde_json::Value), why: &str) {
    let (status, challenge, body) = answer;
    assert_eq!(*status, 401, "{why}: {body}");
    assert_eq!(body["error"], "invalid_client", "{why}: {body}");
    assert!(body["error_description"].is_string(), "{why}: {body}");
    assert!(
        challenge
            .as_deref()
            .is_some_and(|c| c.starts_with("Basic realm=\"latchkey\"")),
        "{why}: {challenge:?}"
    );
}

#[tokio::test]
async fn metadata_says_where_introspection_is_and_how_clients_authenticate() {
    let server = TestServer::start().await;
    let resp = server
        .http()
        .get(format!(
            "{}/.well-known/oauth-authorization-server",
            server.url
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let meta: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(meta["issuer"], server.state.jwt.issuer(), "the JWTs' iss");
    let base = &server.state.public_url;
    assert_eq!(
        meta["introspection_endpoint"],
        format!("{base}/oauth/introspect")
    );
    assert_eq!(meta["revocation_endpoint"], format!("{base}/oauth/revoke"));
    assert_eq!(meta["jwks_uri"], format!("{base}/.well-known/jwks.json"));
    let methods = serde_json::json!(["client_secret_basic", "client_secret_post"]);
    for key in [
        "introspection_endpoint_auth_methods_supported",
        "revocation_endpoint_auth_methods_supported",
        "token_endpoint_auth_methods_supported",
    ] {
        assert_eq!(meta[key], methods, "{key}");
    }
    assert!(
        meta["scopes_supported"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!("introspect"))
    );
    server.stop().await;
}

/// A server, a client token with the `introspect` scope (the OAuth client) and a client
/// token to introspect.
async fn with_a_resource_server() -> (TestServer, CreatedToken, CreatedToken) {
    let server = TestServer::start().await;
    let admin = server.admin();
    let ws = server.workspace1().await;
    let mut req = CreateTokenRequest::new("resource server", TokenType::Client);
    req.scopes = Some(vec![Scope::Introspect]);
    let client = admin.tokens().create(&ws, &req).await.unwrap();
    let target = server.token(&admin, &ws, "target", TokenType::Client).await;
    (server, client, target)
}

#[tokio::test]
async fn introspection_and_revocation_accept_client_secret_basic_and_post() {
    let (server, client, target) = with_a_resource_server().await;
    let admin = server.admin();
    let id = client.meta.id.clone();

    let by_basic = post(
        &server,
        "/oauth/introspect",
        &[basic(&id, &client.token)],
        &[("token", &target.token)],
    )
    .await;
    assert_eq!(by_basic.0, 200, "{}", by_basic.2);
    assert_eq!(by_basic.2["active"], true);
    assert_eq!(by_basic.2["client_id"], target.meta.id.as_str());
    let by_post = post(
        &server,
        "/oauth/introspect",
        &[],
        &[
            ("token", &target.token),
            ("client_id", &id),
            ("client_secret", &client.token),
        ],
    )
    .await;
    assert_eq!(by_post.0, 200, "{}", by_post.2);
    assert_eq!(by_post.2, by_basic.2);
    // RFC 6749 §2.3.1: the halves are form-encoded before base64 (a `:` or `+` in them).
    let encoded = post(
        &server,
        "/oauth/introspect",
        &[basic(&id.replace('-', "%2D"), &client.token)],
        &[("token", &target.token)],
    )
    .await;
    assert_eq!(encoded.0, 200, "{}", encoded.2);

    // Revocation as the same client: a workspace token with only `introspect` may not
    // revoke another token (200 and nothing changes, as RFC 7009 answers), and it may
    // revoke itself.
    let (s, _, _) = post(
        &server,
        "/oauth/revoke",
        &[basic(&id, &client.token)],
        &[("token", &target.token)],
    )
    .await;
    assert_eq!(s, 200);
    let (s, _, body) = post(
        &server,
        "/oauth/revoke",
        &[],
        &[
            ("token", &client.token),
            ("client_id", &id),
            ("client_secret", &client.token),
        ],
    )
    .await;
    assert_eq!(s, 200, "{body}");
    let after = admin.tokens().get(&id).await.unwrap();
    assert_eq!(after.state, TokenState::Revoked, "it revoked itself");
    // Revoked: its client authentication now fails.
    assert_invalid_client(
        &post(
            &server,
            "/oauth/introspect",
            &[basic(&id, &client.token)],
            &[("token", &target.token)],
        )
        .await,
        "a revoked client",
    );
    server.stop().await;
}

#[tokio::test]
async fn bad_client_credentials_get_rfc_6749_answers_and_change_nothing() {
    let (server, client, target) = with_a_resource_server().await;
    let (admin, ws) = (server.admin(), server.workspace1().await);
    let id = client.meta.id.clone();
    let other = server.token(&admin, &ws, "other", TokenType::Client).await;
    let unknown = "lkp_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA3Ae0o2";
    let b64 = |text: &str| base64::engine::general_purpose::STANDARD.encode(text);
    let token = [("token", target.token.as_str())];

    for (why, header) in [
        ("an unknown secret", basic(&id, unknown)),
        ("another token's id", basic(&other.meta.id, &client.token)),
        ("another token's secret", basic(&id, &other.token)),
        ("an empty id", basic("", &client.token)),
        ("an empty secret", basic(&id, "")),
        ("not base64", ("authorization", "Basic %%%".to_owned())),
        (
            "no colon",
            ("authorization", format!("Basic {}", b64(&client.token))),
        ),
        ("bad percent-encoding", basic("%zz", &client.token)),
        (
            "not UTF-8",
            (
                "authorization",
                format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode([0xff, b':', b'x'])
                ),
            ),
        ),
    ] {
        for path in ["/oauth/introspect", "/oauth/revoke"] {
            assert_invalid_client(
                &post(&server, path, std::slice::from_ref(&header), &token).await,
                why,
            );
        }
    }
    for (why, form) in [
        ("client_id alone", vec![("client_id", id.as_str())]),
        (
            "client_secret alone",
            vec![("client_secret", client.token.as_str())],
        ),
        (
            "a wrong secret",
            vec![("client_id", id.as_str()), ("client_secret", unknown)],
        ),
    ] {
        let mut form = form;
        form.push(("token", &target.token));
        for path in ["/oauth/introspect", "/oauth/revoke"] {
            assert_invalid_client(&post(&server, path, &[], &form).await, why);
        }
    }
    // An access JWT is not a client secret (the client is the token itself).
    let jwt = admin
        .refresh(&admin_token(&server))
        .await
        .expect("refresh")
        .access;
    assert_invalid_client(
        &post(
            &server,
            "/oauth/introspect",
            &[],
            &[
                ("client_id", "x"),
                ("client_secret", &jwt),
                ("token", &target.token),
            ],
        )
        .await,
        "an access JWT",
    );

    // Two ways at once: 400 invalid_request.
    let both = [
        ("token", target.token.as_str()),
        ("client_id", id.as_str()),
        ("client_secret", client.token.as_str()),
    ];
    for headers in [
        vec![basic(&id, &client.token)],
        vec![("x-api-key", client.token.clone())],
    ] {
        let (s, _, body) = post(&server, "/oauth/introspect", &headers, &both).await;
        assert_eq!(s, 400, "{body}");
        assert_eq!(body["error"], "invalid_request", "{body}");
    }

    // A client that authenticates but may not introspect: 403, as with a bearer token.
    let (s, _, body) = post(
        &server,
        "/oauth/introspect",
        &[basic(&other.meta.id, &other.token)],
        &token,
    )
    .await;
    assert_eq!(s, 403, "{body}");
    assert_eq!(body["error"]["code"], "forbidden", "{body}");

    // Nothing changed: every failed revocation left the target active.
    let still = admin.tokens().get(&target.meta.id).await.unwrap();
    assert_eq!(still.state, TokenState::Active);
    server.stop().await;
}

/// The bootstrap admin's personal token (exchangeable for an access JWT).
fn admin_token(server: &TestServer) -> String {
    server.admin_token.clone().expect("bootstrap token")
}
