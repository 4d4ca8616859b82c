//! Recoverable secrets (issue 14, DESIGN.md §8): the `recoverable_types` setting, reveal
//! with its permissions, audit and lifecycle events, throttle and bad input; erasure when
//! a type is taken off (and on leak, expiry, delete); and that no secret is ever in clear
//! in the SQLite file (with its WAL) or in a `pg_dump` of the PostgreSQL database.

use latchkey_client::proto::{
    CreateTokenRequest, EventType, OrgRole, RotateTokenRequest, Scope, TokenType,
    UpdateTokenSettingsRequest, WorkspaceRole,
};
use latchkey_client::{AuditQuery, Client, PageQuery};

use crate::harness::{ADMIN_PASSWORD, TestServer, eventually};
use crate::webhooks::{Receiver, events_server, hook_request};

/// Sets the org's `recoverable_types` as `admin` (an org admin).
async fn set_recoverable(admin: &Client, types: &[TokenType]) {
    let org = admin.me().await.unwrap().org.id;
    let settings = admin
        .update_token_settings(
            &org,
            &UpdateTokenSettingsRequest {
                recoverable_types: Some(types.to_vec()),
                ..UpdateTokenSettingsRequest::default()
            },
        )
        .await
        .unwrap();
    let mut want: Vec<&str> = types.iter().map(|t| t.as_str()).collect();
    let mut got: Vec<&str> = settings
        .recoverable_types
        .iter()
        .map(|t| t.as_str())
        .collect();
    want.sort_unstable();
    got.sort_unstable();
    assert_eq!(got, want);
}

/// A fresh server with `types` recoverable: (server, the owner's session, Workspace 1).
async fn recoverable_server(types: &[TokenType]) -> (TestServer, Client, String) {
    let server = TestServer::start().await;
    let owner = server.signed_in("admin", ADMIN_PASSWORD).await;
    let ws = server.workspace1().await;
    set_recoverable(&owner, types).await;
    (server, owner, ws)
}

/// Whether `client` reads token `id` as recoverable.
async fn is_recoverable(client: &Client, id: &str) -> bool {
    client.tokens().get(id).await.unwrap().recoverable
}

/// The error code of a failed call.
fn code<T: std::fmt::Debug>(result: Result<T, latchkey_client::Error>) -> (u16, String) {
    let e = result.expect_err("expected an error");
    (
        e.status().unwrap_or(0),
        e.code().unwrap_or_default().to_owned(),
    )
}

/// `POST /api/v1/tokens/{id}/reveal` by raw HTTP with the bootstrap token.
async fn raw_reveal(server: &TestServer, id: &str) -> reqwest::Response {
    server
        .http()
        .post(format!("{}/api/v1/tokens/{id}/reveal", server.url))
        .bearer_auth(server.admin_token.as_deref().unwrap())
        .send()
        .await
        .unwrap()
}

async fn reveals_of(admin: &Client, token_id: &str) -> usize {
    admin
        .audit_events(&AuditQuery {
            token: Some(token_id.to_owned()),
            action: Some("token.revealed".to_owned()),
            ..AuditQuery::default()
        })
        .await
        .unwrap()
        .items
        .len()
}

#[tokio::test]
async fn recoverable_types_keep_secrets_that_can_be_revealed_again() {
    let server = TestServer::start().await;
    let owner = server.signed_in("admin", ADMIN_PASSWORD).await;
    let ws = server.workspace1().await;
    let org = owner.me().await.unwrap().org.id;
    // Off by default: nothing is recoverable.
    assert!(
        owner
            .token_settings(&org)
            .await
            .unwrap()
            .recoverable_types
            .is_empty()
    );
    let before = server.token(&owner, &ws, "before", TokenType::Client).await;
    assert!(!before.meta.recoverable);
    set_recoverable(&owner, &[TokenType::Client, TokenType::Legacy]).await;
    // Turning it on does not make earlier tokens recoverable.
    assert_eq!(
        code(owner.tokens().reveal(&before.meta.id).await),
        (409, "not_recoverable".into())
    );

    let client = server.token(&owner, &ws, "ci", TokenType::Client).await;
    assert!(client.meta.recoverable);
    assert!(is_recoverable(&owner, &client.meta.id).await);
    let listed = owner
        .tokens()
        .list(Some(&ws), &PageQuery::limit(200))
        .await
        .unwrap();
    assert!(
        listed
            .items
            .iter()
            .any(|t| t.id == client.meta.id && t.recoverable)
    );
    let revealed = owner.tokens().reveal(&client.meta.id).await.unwrap();
    assert_eq!(revealed.token, client.token);
    // The revealed secret is the working one.
    assert!(owner.verify(&revealed.token).await.unwrap().valid);
    assert_eq!(reveals_of(&owner, &client.meta.id).await, 1);

    // A type not on the list: not recoverable.
    let personal = server
        .token(&owner, &ws, "personal", TokenType::Personal)
        .await;
    assert!(!personal.meta.recoverable);
    assert_eq!(
        code(owner.tokens().reveal(&personal.meta.id).await),
        (409, "not_recoverable".into())
    );

    // The legacy token of Account & Settings: its owner reveals it.
    let legacy = server.token(&owner, &ws, "legacy", TokenType::Legacy).await;
    assert!(legacy.meta.recoverable);
    assert_eq!(
        owner.tokens().reveal(&legacy.meta.id).await.unwrap().token,
        legacy.token
    );

    // A rotation keeps the new secret; the old one is never revealed again.
    let rotated = owner
        .tokens()
        .rotate(
            &client.meta.id,
            &RotateTokenRequest {
                grace_seconds: Some(3600),
                ..RotateTokenRequest::default()
            },
        )
        .await
        .unwrap();
    assert!(rotated.meta.recoverable);
    assert_eq!(
        owner.tokens().reveal(&client.meta.id).await.unwrap().token,
        rotated.token
    );

    // The raw answer: 200, `{"token": …}` only, never cached.
    let response = raw_reveal(&server, &client.meta.id).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["cache-control"].to_str().unwrap(),
        "no-store"
    );
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body, serde_json::json!({"token": rotated.token}));

    // Revoked: kept, but not revealed until restored.
    owner.tokens().revoke(&client.meta.id).await.unwrap();
    let (status, code_) = code(owner.tokens().reveal(&client.meta.id).await);
    assert_eq!((status, code_.as_str()), (409, "not_recoverable"));
    owner.tokens().restore(&client.meta.id).await.unwrap();
    assert_eq!(
        owner.tokens().reveal(&client.meta.id).await.unwrap().token,
        rotated.token
    );
    // Rotated while the type is off: the new secret is not kept.
    set_recoverable(&owner, &[TokenType::Legacy]).await;
    let plain = owner
        .tokens()
        .rotate(&client.meta.id, &RotateTokenRequest::default())
        .await
        .unwrap();
    assert!(!plain.meta.recoverable);
    // A leak report erases the copy.
    owner
        .report_leaked(std::slice::from_ref(&legacy.token))
        .await
        .unwrap();
    assert!(!is_recoverable(&owner, &legacy.meta.id).await);
    assert_eq!(
        code(owner.tokens().reveal(&legacy.meta.id).await),
        (409, "not_recoverable".into())
    );
}

#[tokio::test]
async fn reveal_bad_input_and_every_refusal() {
    let (server, owner, ws) = recoverable_server(&TokenType::ALL).await;
    let client = server.token(&owner, &ws, "ci", TokenType::Client).await;
    let admin_token = server.admin_token.clone().unwrap();
    let id = client.meta.id.as_str();
    let unknown = "0197f0c4-1b2c-7d3e-8f40-123456789abc";
    // (method, id, query, body, with a credential) → status.
    for (method, id, query, body, authed, want) in [
        ("POST", id, "", None, false, 401),
        ("POST", "not-an-id", "", None, true, 404),
        ("POST", unknown, "", None, true, 404),
        // A body must be empty or `{}`.
        ("POST", id, "", Some("{\"why\": 1}"), true, 422),
        ("POST", id, "", Some("{nope"), true, 400),
        ("GET", id, "", None, true, 405),
        ("POST", id, "?x=1", None, true, 422),
    ] {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut request = server.http().request(
            method.clone(),
            format!("{}/api/v1/tokens/{id}/reveal{query}", server.url),
        );
        if authed {
            request = request.bearer_auth(&admin_token);
        }
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body);
        }
        let status = request.send().await.unwrap().status();
        assert_eq!(status, want, "{method} {id}{query} {body:?}");
    }
    // None of that was a reveal.
    assert_eq!(reveals_of(&owner, &client.meta.id).await, 0);

    // Other members, viewers, token callers.
    let (member_id, member) = server.user("member", OrgRole::Member).await;
    let (viewer_id, viewer) = server.user("viewer", OrgRole::Member).await;
    let (_, other) = server.user("other", OrgRole::Member).await;
    let (_, org_admin) = server.user("orgadmin", OrgRole::Admin).await;
    owner
        .put_member(&ws, &member_id, WorkspaceRole::Member)
        .await
        .unwrap();
    owner
        .put_member(&ws, &viewer_id, WorkspaceRole::Viewer)
        .await
        .unwrap();
    let mut req = CreateTokenRequest::new("member's", TokenType::Personal);
    req.owner_id = Some(member_id.clone());
    let members = owner.tokens().create(&ws, &req).await.unwrap();
    let admin_type = server.token(&owner, &ws, "admin", TokenType::Admin).await;
    // A workspace member sees client tokens: reveals them.
    assert_eq!(
        member.tokens().reveal(&client.meta.id).await.unwrap().token,
        client.token
    );
    // … and their own personal token; nobody else's.
    assert_eq!(
        member
            .tokens()
            .reveal(&members.meta.id)
            .await
            .unwrap()
            .token,
        members.token
    );
    assert_eq!(
        code(member.tokens().reveal(&admin_type.meta.id).await).0,
        404
    );
    // A viewer sees no workspace tokens; an outsider neither; other users' personal
    // tokens are invisible.
    assert_eq!(code(viewer.tokens().reveal(&client.meta.id).await).0, 404);
    assert_eq!(code(other.tokens().reveal(&client.meta.id).await).0, 404);
    assert_eq!(code(other.tokens().reveal(&members.meta.id).await).0, 404);
    // An org admin sees the member's personal token but may not take its secret.
    let (status, code_) = code(org_admin.tokens().reveal(&members.meta.id).await);
    assert_eq!((status, code_.as_str()), (403, "forbidden"));
    assert_eq!(
        org_admin
            .tokens()
            .reveal(&admin_type.meta.id)
            .await
            .unwrap()
            .token,
        admin_type.token
    );
    // Token callers: `tokens:write` is needed (a read-only token reveals nothing).
    let mut read_only = CreateTokenRequest::new("read only", TokenType::Personal);
    read_only.scopes = Some(vec![Scope::TokensRead, Scope::ProjectsRead]);
    let read_only = member.tokens().create(&ws, &read_only).await.unwrap();
    let read_only = server.with_token(&read_only.token);
    assert!(read_only.tokens().get(&client.meta.id).await.is_ok());
    assert_eq!(
        code(read_only.tokens().reveal(&client.meta.id).await),
        (403, "forbidden".into())
    );
    let mut writer = CreateTokenRequest::new("writer", TokenType::Personal);
    writer.scopes = Some(vec![Scope::TokensRead, Scope::TokensWrite]);
    let writer = member.tokens().create(&ws, &writer).await.unwrap();
    assert_eq!(
        server
            .with_token(&writer.token)
            .tokens()
            .reveal(&client.meta.id)
            .await
            .unwrap()
            .token,
        client.token
    );
    // A client token (projects:read) sees its workspace's client tokens but lacks
    // tokens:write; an admin token (tokens:write) reveals its workspace's tokens.
    assert_eq!(
        code(
            server
                .with_token(&client.token)
                .tokens()
                .reveal(&client.meta.id)
                .await
        ),
        (403, "forbidden".into())
    );
    assert_eq!(
        server
            .with_token(&admin_type.token)
            .tokens()
            .reveal(&client.meta.id)
            .await
            .unwrap()
            .token,
        client.token
    );
    // Every refusal wrote nothing; every reveal one event (member ×1, writer ×1, admin
    // token ×1 on the client token).
    assert_eq!(reveals_of(&owner, &client.meta.id).await, 3);
    assert_eq!(reveals_of(&owner, &members.meta.id).await, 1);
}

#[tokio::test]
async fn reveals_are_throttled_per_caller() {
    let server = TestServer::start_with(|c| c.throttle.reveals = 3).await;
    let owner = server.signed_in("admin", ADMIN_PASSWORD).await;
    let ws = server.workspace1().await;
    set_recoverable(&owner, &[TokenType::Client]).await;
    let client = server.token(&owner, &ws, "ci", TokenType::Client).await;
    let (member_id, member) = server.user("member", OrgRole::Member).await;
    owner
        .put_member(&ws, &member_id, WorkspaceRole::Member)
        .await
        .unwrap();
    // The owner's session and the owner's token are one caller.
    owner.tokens().reveal(&client.meta.id).await.unwrap();
    server
        .admin()
        .tokens()
        .reveal(&client.meta.id)
        .await
        .unwrap();
    // A refused attempt counts too.
    assert_eq!(
        code(
            owner
                .tokens()
                .reveal("0197f0c4-1b2c-7d3e-8f40-123456789abc")
                .await
        )
        .0,
        404
    );
    let response = raw_reveal(&server, &client.meta.id).await;
    assert_eq!(response.status(), 429);
    let retry: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limited");
    // Another caller is not held back.
    member.tokens().reveal(&client.meta.id).await.unwrap();
    assert_eq!(reveals_of(&owner, &client.meta.id).await, 3);
    // The next window lets the owner in again.
    server.state.clock.advance(61);
    owner.tokens().reveal(&client.meta.id).await.unwrap();
}

#[tokio::test]
async fn taking_a_type_off_erases_its_secrets_at_once_and_the_tokens_keep_working() {
    let (server, owner, ws) = recoverable_server(&[TokenType::Client, TokenType::Legacy]).await;
    let client = server.token(&owner, &ws, "ci", TokenType::Client).await;
    let legacy = server.token(&owner, &ws, "legacy", TokenType::Legacy).await;
    set_recoverable(&owner, &[TokenType::Client]).await;
    let after = owner.tokens().get(&legacy.meta.id).await.unwrap();
    assert!(!after.recoverable);
    assert_eq!(
        code(owner.tokens().reveal(&legacy.meta.id).await),
        (409, "not_recoverable".into())
    );
    // Putting the type back does not bring the erased secret back.
    set_recoverable(&owner, &[TokenType::Client, TokenType::Legacy]).await;
    assert!(!is_recoverable(&owner, &legacy.meta.id).await);
    // The token works; the client token is still recoverable.
    assert!(owner.verify(&legacy.token).await.unwrap().valid);
    assert!(is_recoverable(&owner, &client.meta.id).await);
    assert_eq!(
        owner.tokens().reveal(&client.meta.id).await.unwrap().token,
        client.token
    );
    // Every type off.
    set_recoverable(&owner, &[]).await;
    assert!(!is_recoverable(&owner, &client.meta.id).await);
    assert!(owner.verify(&client.token).await.unwrap().valid);

    // The setting is for org admins only, like every token setting.
    let (_, member) = server.user("member", OrgRole::Member).await;
    let org = owner.me().await.unwrap().org.id;
    let refused = member
        .update_token_settings(
            &org,
            &UpdateTokenSettingsRequest {
                recoverable_types: Some(vec![TokenType::Client]),
                ..UpdateTokenSettingsRequest::default()
            },
        )
        .await;
    assert_eq!(code(refused).0, 403);
    // An unknown type is refused, and nothing changes.
    let r = server
        .http()
        .patch(format!("{}/api/v1/orgs/{org}/token-settings", server.url))
        .bearer_auth(server.admin_token.as_deref().unwrap())
        .json(&serde_json::json!({"recoverable_types": ["secret"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    assert!(
        owner
            .token_settings(&org)
            .await
            .unwrap()
            .recoverable_types
            .is_empty()
    );
}

#[tokio::test]
async fn expired_and_deleted_tokens_reveal_nothing() {
    let (server, owner, ws) = recoverable_server(&[TokenType::Client]).await;
    let mut req = CreateTokenRequest::new("short", TokenType::Client);
    req.expires_in_days = Some(1);
    let short = owner.tokens().create(&ws, &req).await.unwrap();
    let gone = server.token(&owner, &ws, "gone", TokenType::Client).await;
    owner.tokens().delete(&gone.meta.id).await.unwrap();
    assert_eq!(code(owner.tokens().reveal(&gone.meta.id).await).0, 404);
    server.state.clock.advance(2 * 86_400);
    // (The session has expired meanwhile: the bootstrap token lives 270 days.)
    let admin = server.admin();
    assert_eq!(
        code(admin.tokens().reveal(&short.meta.id).await),
        (409, "not_recoverable".into())
    );
    // The sweep marks it expired and erases the copy.
    server.state.sweep_expired().await.unwrap();
    assert!(!is_recoverable(&admin, &short.meta.id).await);
}

#[tokio::test]
async fn a_reveal_is_a_lifecycle_event_without_the_secret() {
    let server = events_server().await;
    let receiver = Receiver::start().await;
    let owner = server.signed_in("admin", ADMIN_PASSWORD).await;
    let ws = server.workspace1().await;
    owner
        .webhooks()
        .create(&hook_request(&receiver.url, &[EventType::TokenRevealed]))
        .await
        .unwrap();
    set_recoverable(&owner, &[TokenType::Client]).await;
    let client = server.token(&owner, &ws, "ci", TokenType::Client).await;
    owner.tokens().reveal(&client.meta.id).await.unwrap();
    eventually("the token.revealed delivery", || async {
        !receiver.of_type("token.revealed").is_empty()
    })
    .await;
    let got = receiver.of_type("token.revealed");
    assert_eq!(got.len(), 1);
    let body = got[0].json();
    assert_eq!(body["data"]["token"]["id"], client.meta.id.as_str());
    assert_eq!(body["data"]["token"]["recoverable"], true);
    assert!(!got[0].body.contains(&client.token), "never the secret");
}

/// Every file under `dir` (the SQLite database, its WAL and shared memory), read raw.
fn files_under(dir: &std::path::Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_owned()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                todo.push(path);
            } else if let Ok(bytes) = std::fs::read(&path) {
                out.push((path, bytes));
            }
        }
    }
    out
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[tokio::test]
async fn no_secret_is_in_clear_in_the_database_or_its_dump() {
    let (server, owner, ws) = recoverable_server(&TokenType::ALL).await;
    let mut secrets = Vec::new();
    let mut ids = Vec::new();
    for t in [TokenType::Client, TokenType::Legacy, TokenType::Personal] {
        let created = server.token(&owner, &ws, t.as_str(), t).await;
        ids.push(created.meta.id.clone());
        assert!(created.meta.recoverable);
        let rotated = owner
            .tokens()
            .rotate(
                &created.meta.id,
                &RotateTokenRequest {
                    grace_seconds: Some(600),
                    ..RotateTokenRequest::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(
            owner.tokens().reveal(&created.meta.id).await.unwrap().token,
            rotated.token
        );
        secrets.push(created.token);
        secrets.push(rotated.token);
    }
    // The part after the prefix, so a match on the prefix alone never counts.
    let bodies: Vec<String> = secrets
        .iter()
        .map(|s| s.split_once('_').map_or(s.as_str(), |(_, b)| b).to_owned())
        .collect();
    if server.on_postgres() {
        let url = server.state.config.database_url();
        let dump = std::process::Command::new("pg_dump")
            .arg("--data-only")
            .arg(&url)
            .output()
            .expect("pg_dump runs");
        assert!(
            dump.status.success(),
            "{}",
            String::from_utf8_lossy(&dump.stderr)
        );
        // The search finds what is there: the tokens' ids.
        for id in &ids {
            assert!(contains(&dump.stdout, id), "the dump holds the tokens");
        }
        for body in &bodies {
            assert!(!contains(&dump.stdout, body), "a secret in the pg_dump");
        }
    } else {
        let files = files_under(&server.dir);
        assert!(
            files
                .iter()
                .any(|(p, _)| p.to_string_lossy().ends_with("-wal")),
            "the WAL is searched too"
        );
        // The search finds what is there: the tokens' ids (in the file or the WAL).
        for id in &ids {
            assert!(files.iter().any(|(_, bytes)| contains(bytes, id)));
        }
        for (path, bytes) in &files {
            for body in &bodies {
                assert!(!contains(bytes, body), "a secret in {}", path.display());
            }
        }
    }
}

/// `latchkey ARGS --url URL --token TOKEN` on a blocking thread (the server keeps serving),
/// with a private config dir: (exit code, stdout, stderr).
async fn cli(server: &TestServer, token: &str, args: &[&str]) -> (i32, String, String) {
    let config_dir = tempfile::tempdir().unwrap();
    let mut all: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    all.extend([
        "--url".to_owned(),
        server.url.clone(),
        "--token".to_owned(),
        token.to_owned(),
    ]);
    let dir = config_dir.path().to_owned();
    tokio::task::spawn_blocking(move || {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_latchkey"))
            .args(&all)
            .env_clear()
            .env("LATCHKEY_CONFIG_DIR", &dir)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        (
            output.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn the_cli_reveals_in_both_output_modes() {
    let (server, owner, ws) = recoverable_server(&[TokenType::Client]).await;
    let client = server.token(&owner, &ws, "ci", TokenType::Client).await;
    let plain = server
        .token(&owner, &ws, "plain", TokenType::Frontend)
        .await;
    let admin = server.admin_token.clone().unwrap();
    let (code_, stdout, stderr) = cli(&server, &admin, &["token", "reveal", &client.meta.id]).await;
    assert_eq!(code_, 0, "{stderr}");
    assert_eq!(stdout.trim(), format!("Token: {}", client.token));
    assert!(stderr.contains("audit"), "{stderr}");
    let (code_, stdout, _) = cli(
        &server,
        &admin,
        &["token", "reveal", &client.meta.id, "--output", "json"],
    )
    .await;
    assert_eq!(code_, 0);
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(json, serde_json::json!({"token": client.token}));
    // `token get` says it is recoverable.
    let (_, stdout, _) = cli(&server, &admin, &["token", "get", &client.meta.id]).await;
    assert!(stdout.contains("Recoverable"), "{stdout}");
    // Not recoverable: exit 1, the API's message, no secret.
    let (code_, stdout, stderr) = cli(&server, &admin, &["token", "reveal", &plain.meta.id]).await;
    assert_eq!(code_, 1, "{stdout}{stderr}");
    assert!(stderr.contains("not recoverable"), "{stderr}");
    assert!(!stdout.contains(&plain.token));
    // No id: a usage error.
    let (code_, _, _) = cli(&server, &admin, &["token", "reveal"]).await;
    assert_eq!(code_, 2);
}
