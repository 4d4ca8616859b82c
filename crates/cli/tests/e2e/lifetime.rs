//! Lifetime policies (DESIGN.md §8, issue 14): `idle_revoke_days` (the sweep revokes
//! unused tokens, restorable) and `max_token_lifetime_days` (caps expiries at creation and
//! fails older tokens at use, retroactively), on every surface; bad input and permissions.

use latchkey_client::proto::{OrgRole, Reason, TokenType, UpdateTokenSettingsRequest};
use latchkey_client::{AuditQuery, Client};
use std::sync::atomic::Ordering;

use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::{ADMIN_PASSWORD, TestServer, eventually};
use crate::policy::{call, create, forward_auth, header, verify};

const DAY: i64 = 86_400;

/// The admin signed in with a password: sessions are not tokens, so no lifetime policy
/// ends this one (the bootstrap token is as old as the server).
async fn admin_session(server: &TestServer) -> Client {
    server.signed_in("admin", ADMIN_PASSWORD).await
}

async fn org_id(client: &Client) -> String {
    client.me().await.unwrap().org.id
}

async fn set(client: &Client, idle: Option<Option<u32>>, max: Option<Option<u32>>) {
    let org = org_id(client).await;
    let settings = client
        .update_token_settings(
            &org,
            &UpdateTokenSettingsRequest {
                idle_revoke_days: idle,
                max_token_lifetime_days: max,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    if let Some(idle) = idle {
        assert_eq!(settings.idle_revoke_days, idle);
    }
    if let Some(max) = max {
        assert_eq!(settings.max_token_lifetime_days, max);
    }
}

/// Waits until this node has applied every change in the store's feed (a token's own
/// creation reaches the node's feed reader after the create answered, and drops the grant
/// a check cached meanwhile): from then on its cached grants stay put.
async fn settled(server: &TestServer) {
    let latest = server.state.store.current_version().await.unwrap();
    eventually("the node has applied the change feed", || async {
        server.state.verifier.version() >= latest
    })
    .await;
}

async fn reason(server: &TestServer, secret: &str) -> Value {
    let (status, _, answer) = verify(server, secret, None).await;
    assert_eq!(status, 200, "{answer}");
    answer["reason"].clone()
}

#[tokio::test]
async fn lifetime_settings_are_off_by_default_and_patch_keeps_the_others() {
    let server = TestServer::start().await;
    let admin = admin_session(&server).await;
    let org = org_id(&admin).await;
    let before = admin.token_settings(&org).await.unwrap();
    assert_eq!(before.idle_revoke_days, None);
    assert_eq!(before.max_token_lifetime_days, None);
    let (status, _, raw) = call(
        &server,
        server.admin_token.as_deref().unwrap(),
        Method::GET,
        &format!("/api/v1/orgs/{org}/token-settings"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(raw["idle_revoke_days"], Value::Null);
    assert_eq!(raw["max_token_lifetime_days"], Value::Null);

    set(&admin, Some(Some(90)), None).await;
    set(&admin, None, Some(Some(365))).await;
    let after = admin.token_settings(&org).await.unwrap();
    assert_eq!(after.idle_revoke_days, Some(90));
    assert_eq!(after.max_token_lifetime_days, Some(365));
    assert_eq!(after.enabled_types, before.enabled_types);
    assert_eq!(after.max_tokens_per_user, before.max_tokens_per_user);
    set(&admin, Some(None), Some(None)).await;
    let off = admin.token_settings(&org).await.unwrap();
    assert_eq!(off, before);
}

#[tokio::test]
async fn bad_lifetime_settings_are_422_naming_the_field_and_change_nothing() {
    let server = TestServer::start().await;
    let token = server.admin_token.clone().unwrap();
    let org = org_id(&server.admin()).await;
    let path = format!("/api/v1/orgs/{org}/token-settings");
    let before = call(&server, &token, Method::GET, &path, None).await.2;
    for field in ["idle_revoke_days", "max_token_lifetime_days"] {
        for bad in [
            json!(0),
            json!(-1),
            json!(3651),
            json!(1.5),
            json!("30"),
            json!(1u64 << 40),
        ] {
            let (status, _, err) = call(
                &server,
                &token,
                Method::PATCH,
                &path,
                Some(json!({ field: bad })),
            )
            .await;
            assert_eq!(status, 422, "{field}={bad}: {err}");
            assert_eq!(err["error"]["code"], json!("invalid_field"), "{err}");
            assert_eq!(err["error"]["field"], json!(field), "{err}");
        }
        // The edges are fine.
        for good in [json!(1), json!(3650), Value::Null] {
            let (status, _, body) = call(
                &server,
                &token,
                Method::PATCH,
                &path,
                Some(json!({ field: good })),
            )
            .await;
            assert_eq!(status, 200, "{field}={good}: {body}");
            assert_eq!(body[field], good);
        }
    }
    assert_eq!(
        call(&server, &token, Method::GET, &path, None).await.2,
        before
    );
}

#[tokio::test]
async fn only_org_admins_read_or_change_lifetime_settings() {
    let server = TestServer::start().await;
    let org = org_id(&server.admin()).await;
    let (_, member) = server.user("mia", OrgRole::Member).await;
    let (_, org_admin) = server.user("ada", OrgRole::Admin).await;
    let patch = UpdateTokenSettingsRequest {
        idle_revoke_days: Some(Some(30)),
        max_token_lifetime_days: Some(Some(60)),
        ..Default::default()
    };
    let err = member
        .update_token_settings(&org, &patch)
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(403));
    assert_eq!(
        member.token_settings(&org).await.unwrap_err().status(),
        Some(403)
    );
    let unchanged = server.admin().token_settings(&org).await.unwrap();
    assert_eq!(unchanged.idle_revoke_days, None);
    assert_eq!(unchanged.max_token_lifetime_days, None);
    let changed = org_admin.update_token_settings(&org, &patch).await.unwrap();
    assert_eq!(changed.idle_revoke_days, Some(30));
    assert_eq!(changed.max_token_lifetime_days, Some(60));
    // Audited like every settings change.
    let events = server
        .admin()
        .audit_events(&AuditQuery {
            action: Some("org.token_settings_changed".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(events.items.len(), 1);
    assert_eq!(
        events.items[0].details["after"]["max_token_lifetime_days"],
        60
    );
}

#[tokio::test]
async fn the_idle_sweep_revokes_unused_tokens_once_and_they_can_be_restored() {
    let server = TestServer::start().await;
    let admin = admin_session(&server).await;
    let ws = server.workspace1().await;
    let idle = server.token(&admin, &ws, "idle", TokenType::Client).await;
    let busy = server.token(&admin, &ws, "busy", TokenType::Personal).await;
    set(&admin, Some(Some(30)), None).await;
    // Cached as valid on this node before the sweep.
    assert_eq!(reason(&server, &idle.token).await, Value::Null);

    server.state.clock.advance(20 * DAY);
    // A use on this node, not flushed yet: the sweep still counts it.
    server.with_token(&busy.token).me().await.unwrap();
    server.state.clock.advance(15 * DAY);
    assert!(server.state.sweep_idle().await.unwrap() >= 1);
    // (Sessions end after 12 idle hours: sign in again after moving the clock.)
    let admin = admin_session(&server).await;
    assert_eq!(reason(&server, &idle.token).await, json!("revoked"));
    assert_eq!(reason(&server, &busy.token).await, Value::Null);
    let shown = admin.tokens().get(&idle.meta.id).await.unwrap();
    assert_eq!(shown.state.as_str(), "revoked");

    // One event, system actor, reason idle; a second sweep does nothing more.
    assert_eq!(server.state.sweep_idle().await.unwrap(), 0);
    let events = admin
        .audit_events(&AuditQuery {
            token: Some(idle.meta.id.clone()),
            action: Some("token.revoked".into()),
            ..Default::default()
        })
        .await
        .unwrap()
        .items;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].actor_id, None);
    assert_eq!(events[0].details["reason"], json!("idle"));
    assert_eq!(events[0].details["idle_revoke_days"], json!(30));

    // Restorable like any revoke, and not revoked again by the next sweep.
    admin.tokens().restore(&idle.meta.id).await.unwrap();
    assert_eq!(reason(&server, &idle.token).await, Value::Null);
    server.state.clock.advance(DAY);
    server.state.sweep_idle().await.unwrap();
    assert_eq!(reason(&server, &idle.token).await, Value::Null);
    // Idle a full period after the restore: revoked again.
    server.state.clock.advance(30 * DAY);
    server.state.sweep_idle().await.unwrap();
    assert_eq!(reason(&server, &idle.token).await, json!("revoked"));

    // Off: nothing is swept.
    let admin = admin_session(&server).await;
    set(&admin, Some(None), None).await;
    let late = server.token(&admin, &ws, "late", TokenType::Client).await;
    server.state.clock.advance(400 * DAY);
    assert_eq!(server.state.sweep_idle().await.unwrap(), 0);
    assert_eq!(reason(&server, &late.token).await, Value::Null);
}

#[tokio::test]
async fn the_periodic_sweep_revokes_idle_tokens_by_itself() {
    let server = TestServer::start_with(|c| c.verifier.expiry_sweep_secs = 1).await;
    let admin = admin_session(&server).await;
    let ws = server.workspace1().await;
    let idle = server.token(&admin, &ws, "idle", TokenType::Frontend).await;
    set(&admin, Some(Some(7)), None).await;
    server.state.clock.advance(7 * DAY);
    // Watched through the token object: a check of the token would be a use of it.
    let admin = admin_session(&server).await;
    eventually("the background sweep revokes the idle token", || async {
        admin
            .tokens()
            .get(&idle.meta.id)
            .await
            .unwrap()
            .state
            .as_str()
            == "revoked"
    })
    .await;
    assert_eq!(reason(&server, &idle.token).await, json!("revoked"));
}

#[tokio::test]
async fn max_lifetime_caps_expiries_at_creation() {
    let server = TestServer::start().await;
    let admin = admin_session(&server).await;
    let token = server.admin_token.clone().unwrap();
    set(&admin, None, Some(Some(30))).await;
    let ws = server.workspace1().await;
    let path = format!("/api/v1/workspaces/{ws}/tokens");
    let in_31_days = (server.state.clock.now() + time::Duration::days(31))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    for token_type in ["client", "personal", "admin", "frontend"] {
        for (field, value) in [
            ("expires_in_days", json!(31)),
            ("expires_at", json!(in_31_days)),
        ] {
            let body = json!({"name": "long", "type": token_type, field: value});
            let (status, _, err) = call(&server, &token, Method::POST, &path, Some(body)).await;
            assert_eq!(status, 422, "{token_type} {field}: {err}");
            assert_eq!(err["error"]["code"], json!("lifetime_exceeds_policy"));
            assert_eq!(err["error"]["field"], json!(field));
        }
        let (_, _, ok) = create(&server, &token, token_type, json!({"expires_in_days": 30})).await;
        assert!(ok["expires_at"].is_string(), "{ok}");
    }
    // Without an expiry a workspace token would never expire: refused, not clamped.
    for token_type in ["client", "admin", "frontend"] {
        let body = json!({"name": "forever", "type": token_type});
        let (status, _, err) = call(&server, &token, Method::POST, &path, Some(body)).await;
        assert_eq!(status, 422, "{token_type}: {err}");
        assert_eq!(err["error"]["code"], json!("lifetime_exceeds_policy"));
        assert_eq!(err["error"]["field"], json!("expires_in_days"));
    }
    // A personal token's default lifetime (270 days here) is shortened by the cap.
    let (_, _, capped) = create(&server, &token, "personal", json!({})).await;
    let expires = time::OffsetDateTime::parse(
        capped["expires_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let created = time::OffsetDateTime::parse(
        capped["created_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    assert_eq!(expires - created, time::Duration::days(30));
    // A legacy token never expires; the cap ends it at use instead (see the next test).
    let legacy = server.token(&admin, &ws, "legacy", TokenType::Legacy).await;
    assert_eq!(legacy.meta.expires_at, None);

    // A rotation's new expiry is held to the cap too (counted from the creation).
    let id = capped["id"].as_str().unwrap();
    let (status, _, err) = call(
        &server,
        &token,
        Method::POST,
        &format!("/api/v1/tokens/{id}/rotate"),
        Some(json!({"expires_in_days": 31})),
    )
    .await;
    assert_eq!(status, 422, "{err}");
    assert_eq!(err["error"]["code"], json!("lifetime_exceeds_policy"));
    assert_eq!(err["error"]["field"], json!("expires_in_days"));
}

#[tokio::test]
async fn lowering_max_lifetime_fails_older_tokens_on_every_surface() {
    let server = TestServer::start().await;
    let admin = admin_session(&server).await;
    let ws = server.workspace1().await;
    let personal = server.token(&admin, &ws, "p", TokenType::Personal).await;
    let legacy = server.token(&admin, &ws, "l", TokenType::Legacy).await;
    let client = server.token(&admin, &ws, "c", TokenType::Client).await;
    let revoked = server.token(&admin, &ws, "r", TokenType::Client).await;
    admin.tokens().revoke(&revoked.meta.id).await.unwrap();
    // Cached as valid on this node.
    settled(&server).await;
    for t in [&personal, &legacy, &client] {
        assert_eq!(reason(&server, &t.token).await, Value::Null);
    }
    server.state.clock.advance(10 * DAY);
    let admin = admin_session(&server).await;
    set(&admin, None, Some(Some(5))).await;
    // The cached grants decide: no check below reads a token from the store.
    let misses = || server.state.verifier.stats.misses.load(Ordering::Relaxed);
    let misses_before = misses();

    for t in [&personal, &legacy, &client] {
        // verify
        let (_, _, answer) = verify(&server, &t.token, None).await;
        assert_eq!(answer["valid"], json!(false), "{answer}");
        assert_eq!(answer["reason"], json!("lifetime_policy"));
        // introspection
        assert_eq!(
            admin.introspect(&t.token).await.unwrap(),
            json!({"active": false})
        );
        // forward-auth
        let (status, headers) = forward_auth(&server, &t.token).await;
        assert_eq!(status, 401);
        assert_eq!(
            header(&headers, "x-latchkey-reason"),
            Some("lifetime_policy")
        );
        // the API
        let (status, headers, err) = call(&server, &t.token, Method::GET, "/api/v1/me", None).await;
        assert_eq!(status, 401, "{err}");
        assert_eq!(err["error"]["code"], json!("unauthenticated"));
        let challenge = header(&headers, "www-authenticate").unwrap();
        assert!(challenge.contains("maximum token lifetime"), "{challenge}");
    }
    assert_eq!(
        misses(),
        misses_before,
        "the cap is checked without a store read"
    );
    // A fresh access JWT cannot be had from a token over the cap either.
    let refresh = server
        .http()
        .post(format!("{}/api/v1/token/refresh", server.url))
        .json(&json!({"refresh": personal.token}))
        .send()
        .await
        .unwrap();
    assert_eq!(refresh.status().as_u16(), 401);
    // Precedence: revoked comes first.
    assert_eq!(reason(&server, &revoked.token).await, json!("revoked"));
    // A token younger than the cap works.
    let young = server
        .token(&admin, &ws, "young", TokenType::Personal)
        .await;
    assert_eq!(reason(&server, &young.token).await, Value::Null);
    server.state.clock.advance(5 * DAY);
    assert_eq!(reason(&server, &young.token).await, json!("expired"));

    // Raising the cap (or turning it off) brings the older tokens back.
    let admin = admin_session(&server).await;
    set(&admin, None, Some(None)).await;
    for t in [&personal, &legacy, &client] {
        assert_eq!(reason(&server, &t.token).await, Value::Null);
    }
    assert_eq!(forward_auth(&server, &legacy.token).await.0, 200);
    let answer = admin.verify(&personal.token).await.unwrap();
    assert!(answer.valid);
    assert_ne!(answer.reason, Some(Reason::LifetimePolicy));
}

/// Two nodes on one PostgreSQL, one clock: a token cached as valid on node B stops there
/// when node A lowers the cap (reason `lifetime_policy`, from B's cache: no store read) and
/// works again when A lifts it; and a token A's idle sweep revokes is refused by B.
#[tokio::test]
async fn another_node_applies_the_cap_and_the_idle_sweep() {
    let a = TestServer::start().await;
    let Some((b, _b_dir)) = crate::harness::second_node(&a).await else {
        return;
    };
    let admin = admin_session(&a).await;
    let ws = a.workspace1().await;
    let token = a.token(&admin, &ws, "on-b", TokenType::Client).await;
    settled(&b).await;
    assert_eq!(reason(&b, &token.token).await, Value::Null);

    a.state.clock.advance(10 * DAY);
    let admin = admin_session(&a).await;
    let misses = b.state.verifier.stats.misses.load(Ordering::Relaxed);
    set(&admin, None, Some(Some(5))).await;
    eventually("node B applies the lowered cap", || async {
        reason(&b, &token.token).await == json!("lifetime_policy")
    })
    .await;
    set(&admin, None, Some(None)).await;
    eventually("node B applies the lifted cap", || async {
        reason(&b, &token.token).await == Value::Null
    })
    .await;
    assert_eq!(
        b.state.verifier.stats.misses.load(Ordering::Relaxed),
        misses,
        "node B decided from its cache"
    );

    set(&admin, Some(Some(30)), None).await;
    a.state.clock.advance(31 * DAY);
    // Node B's own record of its uses reaches the store first (it would on its next flush).
    b.state.flush_usage().await.unwrap();
    assert!(a.state.sweep_idle().await.unwrap() >= 1);
    eventually(
        "node B refuses the token node A revoked as idle",
        || async { reason(&b, &token.token).await == json!("revoked") },
    )
    .await;
}
