//! The token lifecycle over HTTP: create (show once), list, get, use, revoke, restore,
//! rotate, delete, verify.

use latchkey_client::PageQuery;
use latchkey_client::proto::{
    CreateTokenRequest, Reason, RotateTokenRequest, TokenState, TokenType,
};

use crate::harness::{ADMIN_PASSWORD, TestServer};

#[tokio::test]
async fn bootstrap_creates_admin_workspace_and_a_working_token() {
    let server = TestServer::start().await;
    let admin = server.admin();
    let me = admin.me().await.unwrap();
    assert_eq!(me.user.username, "admin");
    assert!(me.user.active);
    assert_eq!(me.memberships.len(), 1);
    assert_eq!(me.memberships[0].workspace_name, "Workspace 1");
    assert!(!me.org.id.is_empty());
    // The bootstrap token is a personal token of the admin in Workspace 1, 270 days.
    let tokens = admin.my_tokens(&PageQuery::default()).await.unwrap();
    assert_eq!(tokens.items.len(), 1);
    let t = &tokens.items[0];
    assert_eq!(t.token_type, TokenType::Personal);
    assert_eq!(t.workspace_name.as_deref(), Some("Workspace 1"));
    let days = (t.expires_at.unwrap() - t.created_at).whole_days();
    assert_eq!(days, 270);
    // The preset password signs in.
    server
        .signed_in("admin", crate::harness::ADMIN_PASSWORD)
        .await;
    // A restart does not bootstrap again.
    let (dir, keep) = server.stop().await;
    let again = TestServer::start_in(&dir, |_| {}, Default::default()).await;
    assert!(again.admin_token.is_none());
    drop(keep);
}

#[tokio::test]
async fn every_type_is_created_shown_once_and_listed_without_secret() {
    let server = TestServer::start().await;
    let admin = server.admin();
    let ws = server.workspace1().await;
    // A token bound to a workspace cannot mint a user-wide legacy token: that one comes
    // from a console session.
    let console = server
        .signed_in("admin", crate::harness::ADMIN_PASSWORD)
        .await;
    let mut secrets = Vec::new();
    for t in TokenType::ALL {
        let creator = if t == TokenType::Legacy {
            &console
        } else {
            &admin
        };
        let created = server.token(creator, &ws, &format!("{t:?} token"), t).await;
        let prefix = match t {
            TokenType::Personal => "lkp_",
            TokenType::Legacy => "lkl_",
            TokenType::Client => "lkc_",
            TokenType::Frontend => "lkf_",
            TokenType::Admin => "lka_",
        };
        assert!(created.token.starts_with(prefix), "{t:?}");
        assert_eq!(created.token.len(), 42);
        assert_eq!(created.meta.state, TokenState::Active);
        assert!(created.meta.hint.ends_with(&created.token[38..]));
        // Reading it back never shows the secret.
        let raw = server
            .http()
            .get(format!("{}/api/v1/tokens/{}", server.url, created.meta.id))
            .bearer_auth(server.admin_token.as_deref().unwrap())
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(!raw.contains(&created.token));
        assert!(!raw.contains("\"token\""), "{raw}");
        // It works.
        server
            .with_token(&created.token)
            .list_projects(&ws)
            .await
            .unwrap();
        secrets.push(created.token.clone());
        let verified = admin.verify(&created.token).await.unwrap();
        assert!(verified.valid, "{t:?}");
        assert_eq!(verified.token.unwrap().id, created.meta.id);
    }
    let raw = server
        .http()
        .get(format!("{}/api/v1/workspaces/{ws}/tokens", server.url))
        .bearer_auth(server.admin_token.as_deref().unwrap())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for secret in &secrets {
        assert!(!raw.contains(secret.as_str()));
    }
    let listed = admin
        .tokens()
        .list(Some(&ws), &PageQuery::default())
        .await
        .unwrap();
    // Legacy tokens are user-wide, so the workspace list holds the four others + bootstrap.
    assert_eq!(listed.items.len(), 5);
    // They show in the owner's own list: through a session, not through the workspace-bound
    // bootstrap token, which reaches no legacy token (by id or in a list).
    let session = server.signed_in("admin", ADMIN_PASSWORD).await;
    let mine = session.my_tokens(&PageQuery::default()).await.unwrap();
    assert!(mine.items.iter().any(|t| t.token_type == TokenType::Legacy));
    let through_token = admin.my_tokens(&PageQuery::default()).await.unwrap();
    assert!(
        through_token
            .items
            .iter()
            .all(|t| t.token_type != TokenType::Legacy)
    );
}

#[tokio::test]
async fn revoke_fails_at_once_restore_brings_back_delete_is_final() {
    let server = TestServer::start().await;
    let admin = server.admin();
    let ws = server.workspace1().await;
    let created = server.token(&admin, &ws, "ci", TokenType::Personal).await;
    let user = server.with_token(&created.token);
    user.me().await.unwrap();

    let revoked = admin.tokens().revoke(&created.meta.id).await.unwrap();
    assert_eq!(revoked.state, TokenState::Revoked);
    let err = user.me().await.unwrap_err();
    assert_eq!(err.status(), Some(401));
    assert_eq!(
        admin.verify(&created.token).await.unwrap().reason,
        Some(Reason::Revoked)
    );

    let restored = admin.tokens().restore(&created.meta.id).await.unwrap();
    assert_eq!(restored.state, TokenState::Active);
    user.me().await.unwrap();

    admin.tokens().delete(&created.meta.id).await.unwrap();
    assert_eq!(user.me().await.unwrap_err().status(), Some(401));
    assert_eq!(
        admin.verify(&created.token).await.unwrap().reason,
        Some(Reason::NotFound)
    );
    assert_eq!(
        admin
            .tokens()
            .get(&created.meta.id)
            .await
            .unwrap_err()
            .status(),
        Some(404)
    );
    // Deleting again: 404.
    assert_eq!(
        admin
            .tokens()
            .delete(&created.meta.id)
            .await
            .unwrap_err()
            .status(),
        Some(404)
    );
}

#[tokio::test]
async fn rotate_replaces_the_secret_with_an_optional_grace_period() {
    let server = TestServer::start().await;
    let admin = server.admin();
    let ws = server.workspace1().await;
    let created = server.token(&admin, &ws, "svc", TokenType::Client).await;

    let rotated = admin
        .tokens()
        .rotate(&created.meta.id, &RotateTokenRequest::default())
        .await
        .unwrap();
    assert_eq!(rotated.meta.id, created.meta.id);
    assert_ne!(rotated.token, created.token);
    assert_eq!(
        admin.verify(&created.token).await.unwrap().reason,
        Some(Reason::Revoked),
        "a rotated-out secret answers revoked"
    );
    assert!(admin.verify(&rotated.token).await.unwrap().valid);

    let graced = admin
        .tokens()
        .rotate(
            &created.meta.id,
            &RotateTokenRequest {
                grace_seconds: Some(60),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(
        admin.verify(&rotated.token).await.unwrap().valid,
        "old secret works in grace"
    );
    assert!(admin.verify(&graced.token).await.unwrap().valid);
    server.state.clock.advance(61);
    assert_eq!(
        admin.verify(&rotated.token).await.unwrap().reason,
        Some(Reason::Revoked)
    );
    assert!(admin.verify(&graced.token).await.unwrap().valid);
}

#[tokio::test]
async fn expiry_is_enforced_on_every_check_and_is_final() {
    let server = TestServer::start().await;
    let admin = server.admin();
    let ws = server.workspace1().await;
    let mut req = CreateTokenRequest::new("short", TokenType::Personal);
    req.expires_in_days = Some(1);
    let created = admin.tokens().create(&ws, &req).await.unwrap();
    let exp = created.meta.expires_at.unwrap();
    assert_eq!((exp - created.meta.created_at).whole_seconds(), 86_400);
    admin.tokens().revoke(&created.meta.id).await.unwrap();
    server.state.clock.advance(86_400);
    assert_eq!(
        admin.verify(&created.token).await.unwrap().reason,
        Some(Reason::Expired)
    );
    let err = admin.tokens().restore(&created.meta.id).await.unwrap_err();
    assert_eq!(err.status(), Some(409));
    let t = admin.tokens().get(&created.meta.id).await.unwrap();
    assert_eq!(t.state, TokenState::Expired);
}

/// `expired` is final (docs/decisions.md): on an expired token — never revoked, revoked
/// first, or already marked by the sweep — revoke, restore and rotate answer 409 and change
/// nothing (state, secret, audit log); delete still removes it.
#[tokio::test]
async fn every_action_on_an_expired_token_is_refused_except_delete() {
    let server = TestServer::start().await;
    let admin = server.admin();
    let ws = server.workspace1().await;
    let mut req = CreateTokenRequest::new("never revoked", TokenType::Personal);
    req.expires_in_days = Some(1);
    let plain = admin.tokens().create(&ws, &req).await.unwrap();
    req.name = "revoked first".into();
    let revoked = admin.tokens().create(&ws, &req).await.unwrap();
    admin.tokens().revoke(&revoked.meta.id).await.unwrap();
    let mut client = CreateTokenRequest::new("swept", TokenType::Client);
    client.expires_in_days = Some(1);
    let swept = admin.tokens().create(&ws, &client).await.unwrap();
    server.state.clock.advance(86_400);
    // Only `swept` is marked by the sweep before the actions; the others are past their
    // expiry with their stored state unchanged (the sweep has not run for them yet).
    let audit_before = |server: &TestServer| {
        let store = server.state.store.clone();
        async move {
            store
                .list_audit(
                    &Default::default(),
                    &latchkey_store::PageRequest::first(200),
                )
                .await
                .unwrap()
                .items
                .len()
        }
    };
    for (name, token) in [("never revoked", &plain), ("revoked first", &revoked)] {
        let events = audit_before(&server).await;
        for (action, result) in [
            (
                "revoke",
                admin.tokens().revoke(&token.meta.id).await.map(|_| ()),
            ),
            (
                "restore",
                admin.tokens().restore(&token.meta.id).await.map(|_| ()),
            ),
            (
                "rotate",
                admin
                    .tokens()
                    .rotate(&token.meta.id, &RotateTokenRequest::default())
                    .await
                    .map(|_| ()),
            ),
        ] {
            let err = result.expect_err(action);
            assert_eq!(err.status(), Some(409), "{action} on {name}: {err:?}");
            assert_eq!(err.code(), Some("conflict"), "{action} on {name}");
            assert!(err.to_string().contains("expired"), "{action}: {err}");
        }
        assert_eq!(audit_before(&server).await, events, "nothing was audited");
        let now = admin.tokens().get(&token.meta.id).await.unwrap();
        assert_eq!(now.state, TokenState::Expired, "{name}");
        assert_eq!(
            admin.verify(&token.token).await.unwrap().reason,
            Some(Reason::Expired),
            "{name}: the old secret still fails as expired (no rotation happened)"
        );
    }
    server.state.sweep_expired().await.unwrap();
    for id in [&swept.meta.id, &plain.meta.id] {
        let err = admin.tokens().restore(id).await.unwrap_err();
        assert_eq!(err.status(), Some(409));
        let err = admin.tokens().revoke(id).await.unwrap_err();
        assert_eq!(err.status(), Some(409));
    }
    // Delete is the one action left, for every kind of expired token.
    for id in [&plain.meta.id, &revoked.meta.id, &swept.meta.id] {
        admin.tokens().delete(id).await.unwrap();
        assert_eq!(
            admin.tokens().get(id).await.unwrap_err().status(),
            Some(404)
        );
    }
}

#[tokio::test]
async fn projects_by_token_header_as_the_seed_sample_does() {
    let server = TestServer::start().await;
    let admin = server.admin();
    let ws = server.workspace1().await;
    let created = server.token(&admin, &ws, "rime", TokenType::Personal).await;
    // requests.post(URL + "/projects", json=body, headers={"rime-api-key": KEY})
    let resp = server
        .http()
        .post(format!("{}/projects", server.url))
        .header("rime-api-key", &created.token)
        .json(
            &serde_json::json!({"name": "Fraud Demo", "description": "This is an Onboarding Demo"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let project: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(project["workspace_id"], ws.as_str());
    assert_eq!(project["name"], "Fraud Demo");
    let listed = admin.list_projects(&ws).await.unwrap();
    assert_eq!(listed.items.len(), 1);
    // A legacy token is user-wide: /projects needs a workspace.
    let console = server
        .signed_in("admin", crate::harness::ADMIN_PASSWORD)
        .await;
    let legacy = server
        .token(&console, &ws, "legacy", TokenType::Legacy)
        .await;
    let err = server
        .with_token(&legacy.token)
        .create_project("x", None)
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(422));
    assert_eq!(err.code(), Some("workspace_required"));
}

#[tokio::test]
async fn last_used_is_recorded_in_memory_and_flushed_on_shutdown() {
    let server = TestServer::start_with(|c| c.verifier.last_used_flush_secs = 3600).await;
    let admin = server.admin();
    let ws = server.workspace1().await;
    let created = server.token(&admin, &ws, "used", TokenType::Personal).await;
    assert!(created.meta.last_used_at.is_none());
    server.with_token(&created.token).me().await.unwrap();
    let seen = admin.tokens().get(&created.meta.id).await.unwrap();
    assert!(
        seen.last_used_at.is_some(),
        "pending use is visible before the flush"
    );
    let (dir, keep) = server.stop().await;
    let again = TestServer::start_in(&dir, |_| {}, Default::default()).await;
    let ws_admin = again
        .signed_in("admin", crate::harness::ADMIN_PASSWORD)
        .await;
    let t = ws_admin.tokens().get(&created.meta.id).await.unwrap();
    assert!(t.last_used_at.is_some(), "flushed at shutdown");
    assert_eq!(t.last_used_ip.as_deref(), Some("127.0.0.1"));
    drop(keep);
}

/// Housekeeping trims the change feed. A node whose feed position fell behind the kept
/// window cannot know what changed meanwhile, so on catch-up it drops its whole cache: a
/// token revoked by another node (here: straight in the store) is refused, not served
/// from memory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_behind_a_purged_change_feed_drops_its_cache() {
    let server = TestServer::start_with(|c| {
        // No catch-up read during the test: only the explicit sync below.
        c.verifier.poll_interval_ms = 3_600_000;
        c.verifier.change_feed_keep = 1;
    })
    .await;
    let admin = server.admin();
    let ws = server.workspace1().await;
    let cached = server
        .token(&admin, &ws, "cached", TokenType::Personal)
        .await;
    let user = server.with_token(&cached.token);
    user.me()
        .await
        .expect("the token works and its grant is cached");

    // "Another node" revokes it, then makes one more change; housekeeping keeps only that.
    let store = &server.state.store;
    let now = server.state.clock.now();
    store
        .revoke_token(now, &cached.meta.id, false, Default::default())
        .await
        .expect("revoke in the store");
    server
        .token(&admin, &ws, "a later change", TokenType::Client)
        .await;
    server
        .state
        .sweep_expired()
        .await
        .expect("housekeeping sweep");
    assert_eq!(
        store.changes_since(0, 100).await.expect("feed").len(),
        1,
        "the sweep keeps change_feed_keep rows"
    );

    let summary = server.state.verifier.sync().await.expect("catch-up read");
    if !server.on_postgres() {
        // (On PostgreSQL the revocation's NOTIFY may have been applied already.)
        assert!(summary.cache_dropped, "{summary:?}");
    }
    let err = user.me().await.expect_err("a revoked token is refused");
    assert_eq!(err.status(), Some(401));
    // Everything else still works, now read afresh from the store.
    admin.me().await.expect("the admin's token still works");
}
