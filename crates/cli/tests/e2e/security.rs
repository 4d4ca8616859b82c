//! Regression tests for the holes of issue 21 (each one fails on the code before its fix):
//! role takeover, token reach, rotated secrets, throttles, what anonymous callers learn,
//! CSRF, JWT forgeries. Forward-auth header trust and the proxy recipes live in `proxies`.

use std::sync::atomic::Ordering;

use latchkey_client::proto::{
    CreateTokenRequest, OrgRole, RotateTokenRequest, Scope, TokenState, TokenType,
    UpdateUserRequest,
};
use latchkey_client::{AuditQuery, PageQuery};

use crate::harness::{ADMIN_PASSWORD, TestServer};

fn patch(f: impl FnOnce(&mut UpdateUserRequest)) -> UpdateUserRequest {
    let mut req = UpdateUserRequest::default();
    f(&mut req);
    req
}

/// 21.1: an org admin cannot take over the owner — not by password, email or profile, not
/// by minting or rotating the owner's tokens; admins reset only those below them.
#[tokio::test]
async fn an_org_admin_cannot_take_over_the_owner() {
    let server = TestServer::start().await;
    let owner = server.signed_in("admin", ADMIN_PASSWORD).await;
    let owner_id = owner.me().await.unwrap().user.id;
    let ws = server.workspace1().await;
    let (admin_id, org_admin) = server.user("oadm", OrgRole::Admin).await;
    let (peer_id, _peer) = server.user("peer", OrgRole::Admin).await;
    let (member_id, _member) = server.user("mem", OrgRole::Member).await;

    for req in [
        patch(|r| r.password = Some("attacker chosen password".into())),
        patch(|r| r.email = Some(Some("attacker@example.com".into()))),
        patch(|r| r.display_name = Some(Some("pwned".into()))),
    ] {
        let err = org_admin.update_user(&owner_id, &req).await.unwrap_err();
        assert_eq!(err.status(), Some(403), "{req:?}");
    }
    // The owner's password still works and nothing changed.
    server.signed_in("admin", ADMIN_PASSWORD).await;
    let me = owner.me().await.unwrap();
    assert_eq!(me.user.email, None);
    assert_ne!(me.user.display_name.as_deref(), Some("pwned"));

    // No personal token minted for the owner.
    let mut req = CreateTokenRequest::new("as-owner", TokenType::Personal);
    req.owner_id = Some(owner_id.clone());
    let err = org_admin.tokens().create(&ws, &req).await.unwrap_err();
    assert_eq!(err.status(), Some(403));
    // No rotation of the owner's token (the new secret would go to the admin).
    let owner_tokens = owner.my_tokens(&PageQuery::default()).await.unwrap();
    let owner_token = &owner_tokens.items[0];
    let err = org_admin
        .tokens()
        .rotate(&owner_token.id, &RotateTokenRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(403));
    // Revoking it stays allowed (DESIGN §7: admins revoke anyone's tokens).
    org_admin.tokens().revoke(&owner_token.id).await.unwrap();

    // Admins reset passwords of members, not of their peers.
    org_admin
        .update_user(
            &member_id,
            &patch(|r| r.password = Some("reset by an admin".into())),
        )
        .await
        .unwrap();
    server.signed_in("mem", "reset by an admin").await;
    let err = org_admin
        .update_user(
            &peer_id,
            &patch(|r| r.password = Some("peer takeover".into())),
        )
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(403));
    // Personal tokens for a member are fine (DESIGN §7); for the peer admin too (same rank).
    owner
        .put_member(
            &ws,
            &member_id,
            latchkey_client::proto::WorkspaceRole::Member,
        )
        .await
        .unwrap();
    let mut req = CreateTokenRequest::new("for-mem", TokenType::Personal);
    req.owner_id = Some(member_id.clone());
    org_admin.tokens().create(&ws, &req).await.unwrap();

    // One's own password: through a session, with the current one.
    let err = org_admin
        .update_user(
            &admin_id,
            &patch(|r| r.password = Some("new one please".into())),
        )
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(422));
    assert_eq!(err.field(), Some("current_password"));
    let err = org_admin
        .update_user(
            &admin_id,
            &patch(|r| {
                r.password = Some("new one please".into());
                r.current_password = Some("not my password".into());
            }),
        )
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(422));
    org_admin
        .update_user(
            &admin_id,
            &patch(|r| {
                r.password = Some("new one please".into());
                r.current_password = Some("password-of-oadm".into());
            }),
        )
        .await
        .unwrap();
    server.signed_in("oadm", "new one please").await;
    // The owner still resets an admin's password.
    owner
        .update_user(
            &peer_id,
            &patch(|r| r.password = Some("owner reset it".into())),
        )
        .await
        .unwrap();
    server.signed_in("peer", "owner reset it").await;
}

/// 21.7: a token minted for projects cannot edit its owner's account.
#[tokio::test]
async fn account_edits_need_a_session_or_the_admin_scope() {
    let server = TestServer::start().await;
    let ws = server.workspace1().await;
    let (uid, member) = server.user("mona", OrgRole::Member).await;
    let admin = server.signed_in("admin", ADMIN_PASSWORD).await;
    admin
        .put_member(&ws, &uid, latchkey_client::proto::WorkspaceRole::Member)
        .await
        .unwrap();
    let mut req = CreateTokenRequest::new("reader", TokenType::Personal);
    req.scopes = Some(vec![Scope::ProjectsRead]);
    let reader = member.tokens().create(&ws, &req).await.unwrap();
    let as_token = server.with_token(&reader.token);
    for req in [
        patch(|r| r.email = Some(Some("evil@example.com".into()))),
        patch(|r| r.display_name = Some(Some("Evil".into()))),
        patch(|r| {
            r.password = Some("token set this".into());
            r.current_password = Some("password-of-mona".into());
        }),
    ] {
        let err = as_token.update_user(&uid, &req).await.unwrap_err();
        assert_eq!(err.status(), Some(403), "{req:?}");
    }
    assert_eq!(member.me().await.unwrap().user.email, None);
    // The session may.
    let user = member
        .update_user(&uid, &patch(|r| r.display_name = Some(Some("Mona".into()))))
        .await
        .unwrap();
    assert_eq!(user.display_name.as_deref(), Some("Mona"));
    // An org admin's token with the admin scope may edit its owner's profile.
    let pat = server.admin_token.clone().unwrap();
    let owner_id = admin.me().await.unwrap().user.id;
    server
        .with_token(&pat)
        .update_user(
            &owner_id,
            &patch(|r| r.display_name = Some(Some("Boss".into()))),
        )
        .await
        .unwrap();
}

fn audit(action: &str) -> AuditQuery {
    AuditQuery {
        action: Some(action.into()),
        ..AuditQuery::default()
    }
}

/// 21.3: a token cannot create a token that outlives it or reaches beyond its workspace.
#[tokio::test]
async fn a_token_cannot_mint_a_legacy_token_beyond_itself() {
    let server = TestServer::start().await;
    let ws = server.workspace1().await;
    let console = server.signed_in("admin", ADMIN_PASSWORD).await;
    // A 1-day personal token bound to Workspace 1.
    let mut req = CreateTokenRequest::new("one day", TokenType::Personal);
    req.expires_in_days = Some(1);
    let short = console.tokens().create(&ws, &req).await.unwrap();
    let as_short = server.with_token(&short.token);
    let err = as_short
        .tokens()
        .create(&ws, &CreateTokenRequest::new("forever", TokenType::Legacy))
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(403));
    // What it creates lives no longer than it does.
    let mut req = CreateTokenRequest::new("longer", TokenType::Personal);
    req.expires_in_days = Some(30);
    let err = as_short.tokens().create(&ws, &req).await.unwrap_err();
    assert_eq!(err.status(), Some(422));
    let child = as_short
        .tokens()
        .create(&ws, &CreateTokenRequest::new("child", TokenType::Personal))
        .await
        .unwrap();
    assert!(child.meta.expires_at <= short.meta.expires_at);
    // A session (or a legacy token) may create the user's legacy token.
    let legacy = console
        .tokens()
        .create(&ws, &CreateTokenRequest::new("legacy", TokenType::Legacy))
        .await
        .unwrap();
    assert!(legacy.meta.expires_at.is_none());
}

/// 21.4: a rotated-out secret retires only itself: reporting it (leak report or RFC 7009)
/// leaves the live secret alone and is recorded for the owner.
#[tokio::test]
async fn a_rotated_out_secret_is_no_kill_switch() {
    let server = TestServer::start().await;
    let admin = server.admin();
    let ws = server.workspace1().await;
    let created = server.token(&admin, &ws, "svc", TokenType::Client).await;
    let rotated = admin
        .tokens()
        .rotate(
            &created.meta.id,
            &RotateTokenRequest {
                grace_seconds: Some(3600),
                ..RotateTokenRequest::default()
            },
        )
        .await
        .unwrap();
    let anon = server.anonymous();
    anon.report_leaked(std::slice::from_ref(&created.token))
        .await
        .unwrap();
    admin.oauth_revoke(&created.token).await.unwrap();
    assert!(anon.verify(&rotated.token).await.unwrap().valid);
    let token = admin.tokens().get(&created.meta.id).await.unwrap();
    assert_eq!(token.state, TokenState::Active);
    let events = admin.audit_events(&audit("token.leaked")).await.unwrap();
    assert_eq!(events.items.len(), 1);
    assert_eq!(events.items[0].details["secret"], "retired");
    // The live secret reported: revoked for good, as before.
    anon.report_leaked(std::slice::from_ref(&rotated.token))
        .await
        .unwrap();
    assert!(!anon.verify(&rotated.token).await.unwrap().valid);
    let events = admin.audit_events(&audit("token.leaked")).await.unwrap();
    assert_eq!(events.items.len(), 2);
}

async fn sign_in_from(server: &TestServer, ip: &str, username: &str, password: &str) -> u16 {
    server
        .http()
        .post(format!("{}/api/v1/session", server.url))
        .header("x-forwarded-for", ip)
        .json(&serde_json::json!({"username": username, "password": password}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// 21.5 and issue 20: a success never clears other failures, per IP; many failures for one
/// account from many addresses slow that account down, but not from its own address.
#[tokio::test]
async fn sign_in_throttles_per_address_and_per_account() {
    let server = TestServer::start_with(|c| {
        c.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
        c.throttle.sign_in_attempts = 5;
        c.throttle.sign_in_failures_per_account = 8;
    })
    .await;
    server.user("other", OrgRole::Member).await;
    // From one address: wrong passwords for admin, a correct sign-in as someone else between
    // each. The successes clear nothing: the fifth failure is the last.
    for i in 0..5 {
        assert_eq!(
            sign_in_from(&server, "10.0.0.1", "admin", "wrong").await,
            401
        );
        if i < 4 {
            assert_eq!(
                sign_in_from(&server, "10.0.0.1", "other", "password-of-other").await,
                200
            );
        }
    }
    assert_eq!(
        sign_in_from(&server, "10.0.0.1", "admin", "wrong").await,
        429
    );
    assert_eq!(
        sign_in_from(&server, "10.0.0.1", "other", "password-of-other").await,
        429
    );
    // The window ends: the address may try again.
    server.state.clock.advance(61);
    assert_eq!(
        sign_in_from(&server, "10.0.0.1", "other", "password-of-other").await,
        200
    );
    // The admin signs in from home once; then an attacker fails as admin from many places.
    assert_eq!(
        sign_in_from(&server, "10.0.9.9", "admin", ADMIN_PASSWORD).await,
        200
    );
    for i in 0..8 {
        let ip = format!("10.1.0.{i}");
        assert_eq!(sign_in_from(&server, &ip, "ADMIN", "guess").await, 401);
    }
    // The account is slowed down everywhere new, even with the right password…
    assert_eq!(
        sign_in_from(&server, "10.2.0.1", "admin", ADMIN_PASSWORD).await,
        429
    );
    // …but not from the admin's own address, and other accounts are untouched.
    assert_eq!(
        sign_in_from(&server, "10.0.9.9", "admin", ADMIN_PASSWORD).await,
        200
    );
    assert_eq!(
        sign_in_from(&server, "10.2.0.1", "other", "password-of-other").await,
        200
    );
    // Not for long: one window.
    server.state.clock.advance(61);
    assert_eq!(
        sign_in_from(&server, "10.2.0.1", "admin", ADMIN_PASSWORD).await,
        200
    );
}

/// 21.8: a workspace-bound token never reaches legacy tokens (they have no workspace).
#[tokio::test]
async fn workspace_bound_tokens_never_reach_legacy_tokens() {
    let server = TestServer::start().await;
    let ws = server.workspace1().await;
    let (_, member) = server.user("lee", OrgRole::Member).await;
    let legacy = member
        .tokens()
        .create(&ws, &CreateTokenRequest::new("mine", TokenType::Legacy))
        .await;
    // Members not in the workspace still own user-wide legacy tokens.
    let legacy = match legacy {
        Ok(t) => t,
        Err(_) => {
            let console = server.signed_in("admin", ADMIN_PASSWORD).await;
            let me = member.me().await.unwrap();
            console
                .put_member(
                    &ws,
                    &me.user.id,
                    latchkey_client::proto::WorkspaceRole::Member,
                )
                .await
                .unwrap();
            member
                .tokens()
                .create(&ws, &CreateTokenRequest::new("mine", TokenType::Legacy))
                .await
                .unwrap()
        }
    };
    // The org admin's personal token is bound to Workspace 1: the legacy token is out of
    // its reach (404, as for anything it may not see), and nothing changes.
    let pat = server.admin();
    assert_eq!(
        pat.tokens()
            .get(&legacy.meta.id)
            .await
            .unwrap_err()
            .status(),
        Some(404)
    );
    for e in [
        pat.tokens().revoke(&legacy.meta.id).await.err(),
        pat.tokens()
            .rotate(&legacy.meta.id, &RotateTokenRequest::default())
            .await
            .err(),
        pat.tokens().delete(&legacy.meta.id).await.err(),
    ] {
        assert_eq!(e.and_then(|e| e.status()), Some(404));
    }
    assert!(
        server
            .anonymous()
            .verify(&legacy.token)
            .await
            .unwrap()
            .valid
    );
    // The admin's session manages it, as DESIGN §7 says.
    let console = server.signed_in("admin", ADMIN_PASSWORD).await;
    console.tokens().revoke(&legacy.meta.id).await.unwrap();
}

/// 21.9: leak reports are throttled like failed checks, and unknown secrets are answered
/// from memory: by the set of known hashes once it is loaded (no store read at all), else
/// from the negative cache after one counted store read.
#[tokio::test]
async fn leak_reports_are_throttled_and_use_the_negative_cache() {
    let server = TestServer::start_with(|c| c.throttle.failed_token_checks = 5).await;
    let anon = server.anonymous();
    let unknown = "lkc_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA3Ae0o2".to_owned();
    // Any token change clears the negative cache: apply the first start's changes (the
    // bootstrap token) before counting, or a lagging poller on a busy machine clears it
    // between the three reports.
    server.state.verifier.sync().await.unwrap();
    let stats = &server.state.verifier.stats;
    let count = || {
        (
            stats.misses.load(Ordering::Relaxed),
            stats.negative_hits.load(Ordering::Relaxed),
            stats.known_refusals.load(Ordering::Relaxed),
        )
    };
    let (misses, negative, known) = count();
    anon.report_leaked(&[unknown.clone(), unknown.clone(), unknown.clone()])
        .await
        .unwrap();
    let (missed, from_negative, from_known) = count();
    let (missed, from_memory) = (
        missed - misses,
        from_negative - negative + from_known - known,
    );
    // At most one store read (a poller already in flight before the sync may clear the
    // negative cache once more), the rest from memory.
    assert_eq!(
        missed + from_memory,
        3,
        "{missed} misses, {from_memory} from memory"
    );
    assert!(
        missed <= 2 && from_memory >= 1,
        "{missed} misses, {from_memory} from memory"
    );
    anon.report_leaked(&[unknown.clone(), unknown.clone()])
        .await
        .unwrap();
    // Five failures: the address is throttled now.
    let err = anon
        .report_leaked(std::slice::from_ref(&unknown))
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(429));
}

/// 21.10: an anonymous verify answer says nothing about people.
#[tokio::test]
async fn anonymous_verify_answers_name_no_people() {
    let server = TestServer::start().await;
    let admin = server.admin();
    let ws = server.workspace1().await;
    let client = server.token(&admin, &ws, "svc", TokenType::Client).await;
    // Used once, so last-used fields exist.
    server.with_token(&client.token).me().await.ok();
    server
        .state
        .last_used
        .flush(server.state.store.as_ref())
        .await
        .unwrap();
    let (_, stranger) = server.user("stranger", OrgRole::Member).await;
    let raw = |caller: Option<String>| {
        let mut req = server
            .http()
            .post(format!("{}/api/v1/tokens/verify", server.url))
            .json(&serde_json::json!({"token": client.token}));
        if let Some(t) = caller {
            req = req.bearer_auth(t);
        }
        async move {
            let body: serde_json::Value = req.send().await.unwrap().json().await.unwrap();
            body
        }
    };
    let stranger_token = stranger
        .tokens()
        .create(&ws, &CreateTokenRequest::new("s", TokenType::Personal))
        .await
        .ok()
        .map(|t| t.token);
    for caller in [None, stranger_token] {
        let body = raw(caller).await;
        assert_eq!(body["valid"], true);
        for field in [
            "owner_username",
            "created_by",
            "last_used_at",
            "last_used_ip",
        ] {
            assert_eq!(body["token"][field], serde_json::Value::Null, "{field}");
        }
        assert_eq!(body["token"]["id"], client.meta.id.as_str());
        assert_eq!(body["token"]["workspace_name"], "Workspace 1");
    }
    // Someone who may see the token sees it whole.
    let body = raw(server.admin_token.clone()).await;
    assert!(body["token"]["created_by"].is_string());
    assert!(body["token"]["last_used_ip"].is_string());
}

/// 21.11: failures from an address are throttled, its valid tokens are not.
#[tokio::test]
async fn bad_tokens_do_not_lock_out_valid_ones_from_the_same_address() {
    let server = TestServer::start_with(|c| {
        c.throttle.failed_token_checks = 10;
        c.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    })
    .await;
    let pat = server.admin_token.clone().unwrap();
    for _ in 0..100 {
        server
            .with_token("lkp_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA3Ae0o2")
            .me()
            .await
            .ok();
    }
    let err = server
        .with_token("lkp_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA3Ae0o2")
        .me()
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(429));
    server.with_token(&pat).me().await.unwrap();
    assert!(server.anonymous().verify(&pat).await.unwrap().valid);
    server.anonymous().refresh(&pat).await.unwrap();
    let resp = server
        .http()
        .get(format!("{}/auth/verify", server.url))
        .bearer_auth(&pat)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

/// Issue 17: once the node knows every stored secret's hash, a flood of well-formed
/// unknown tokens (each distinct, so no negative cache helps) makes no secret lookup, and
/// a token made a moment ago still works.
#[tokio::test]
async fn a_flood_of_distinct_unknown_tokens_makes_no_secret_lookup() {
    let server = TestServer::start_with(|c| c.throttle.failed_token_checks = 100_000).await;
    let verifier = &server.state.verifier;
    crate::harness::eventually("the known set is loaded", || async {
        verifier.knows_every_hash()
    })
    .await;
    let misses = verifier.stats.misses.load(Ordering::Relaxed);
    let known = verifier.stats.known_refusals.load(Ordering::Relaxed);
    let http = server.http();
    let mut statuses = Vec::new();
    for _ in 0..100 {
        let unknown = latchkey_core::token::generate(latchkey_core::token::SecretKind::Token(
            TokenType::Client,
        ));
        let response = http
            .get(format!("{}/auth/verify", server.url))
            .bearer_auth(unknown)
            .send()
            .await
            .unwrap();
        statuses.push(response.status().as_u16());
    }
    assert!(statuses.iter().all(|s| *s == 401), "{statuses:?}");
    assert_eq!(
        verifier.stats.misses.load(Ordering::Relaxed),
        misses,
        "no lookups"
    );
    assert_eq!(
        verifier.stats.known_refusals.load(Ordering::Relaxed) - known,
        100
    );
    let ws = server.workspace1().await;
    let fresh = server
        .token(&server.admin(), &ws, "fresh", TokenType::Client)
        .await;
    assert!(server.anonymous().verify(&fresh.token).await.unwrap().valid);
}

/// 21.12: the HTML 404 page carries the console's CSP.
#[tokio::test]
async fn every_html_page_has_the_csp() {
    let server = TestServer::start().await;
    let resp = server
        .http()
        .get(format!("{}/no/such/page", server.url))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    let csp = resp.headers()["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("default-src 'self'"), "{csp}");
    assert_eq!(resp.headers()["x-frame-options"], "DENY");
}

/// 21.12: what is typed as a username in a failed sign-in is not kept.
#[tokio::test]
async fn failed_sign_ins_do_not_store_what_was_typed() {
    let server = TestServer::start().await;
    let typed = "correct-horse-typed-in-the-wrong-box";
    assert_eq!(sign_in_from(&server, "127.0.0.1", typed, "x").await, 401);
    assert_eq!(sign_in_from(&server, "127.0.0.1", "ADMIN", "x").await, 401);
    let admin = server.admin();
    let events = admin
        .audit_events(&audit("session.sign_in_failed"))
        .await
        .unwrap();
    assert_eq!(events.items.len(), 2);
    let text = serde_json::to_string(&events.items).unwrap();
    assert!(!text.contains(typed), "{text}");
    let known = events.items.iter().find(|e| e.actor_id.is_some()).unwrap();
    assert_eq!(known.details["username"], "admin");
    let unknown = events.items.iter().find(|e| e.actor_id.is_none()).unwrap();
    assert_eq!(
        unknown.details["unknown_username_hash"]
            .as_str()
            .unwrap()
            .len(),
        16
    );
}

async fn cookie_of(server: &TestServer) -> String {
    let resp = server
        .http()
        .post(format!("{}/api/v1/session", server.url))
        .json(&serde_json::json!({"username": "admin", "password": ADMIN_PASSWORD}))
        .send()
        .await
        .unwrap();
    let cookie = resp.headers()["set-cookie"].to_str().unwrap();
    cookie.split(';').next().unwrap().to_owned()
}

/// 21.12: CSRF compares with `public_url` when it is set (not the Host header the client
/// chooses), and a cookie write that names no origin at all is refused.
#[tokio::test]
async fn csrf_checks_the_public_origin_and_needs_one() {
    let server = TestServer::start_with(|c| c.public_url = "http://latchkey.example".into()).await;
    let cookie = cookie_of(&server).await;
    let ws = server.workspace1().await;
    let create = |headers: &[(&str, &str)]| {
        let mut req = server
            .http()
            .post(format!("{}/api/v1/workspaces/{ws}/tokens", server.url))
            .header("cookie", &cookie)
            .json(&serde_json::json!({"name": "csrf", "type": "client"}));
        for (n, v) in headers {
            req = req.header(*n, *v);
        }
        async move { req.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(create(&[]).await, 403);
    // Origin matching the Host the attacker's request was sent with is not enough.
    assert_eq!(
        create(&[("origin", "http://evil.example"), ("host", "evil.example")]).await,
        403
    );
    let own = server.url.clone();
    assert_eq!(create(&[("origin", &own)]).await, 403);
    assert_eq!(
        create(&[
            ("sec-fetch-site", "same-origin"),
            ("origin", "http://evil.example")
        ])
        .await,
        403
    );
    assert_eq!(create(&[("origin", "http://latchkey.example")]).await, 201);
    assert_eq!(create(&[("sec-fetch-site", "same-origin")]).await, 201);
}

/// JWT forgeries signed with the server's own key still fail: wrong or missing `typ`, a
/// lifetime beyond the cap, an `iat` in the future, `alg: none`.
#[tokio::test]
async fn forged_jwts_fail_even_with_the_right_key() {
    use base64::Engine as _;
    use ed25519_dalek::Signer as _;
    let server = TestServer::start().await;
    let pat = server.admin_token.clone().unwrap();
    let access = server.anonymous().refresh(&pat).await.unwrap().access;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let part = |i: usize| -> serde_json::Value {
        serde_json::from_slice(&b64.decode(access.split('.').nth(i).unwrap()).unwrap()).unwrap()
    };
    let (header, claims) = (part(0), part(1));
    // The signing key, as the server keeps it (sealed under the hash key).
    let state = &server.state;
    let now = state.clock.now();
    let record = state
        .store
        .list_signing_keys(now)
        .await
        .unwrap()
        .into_iter()
        .find(|k| k.id == header["kid"])
        .unwrap();
    let secret = latchkey_server::crypto::open(
        &state.hash_key,
        "jwt-signing-key v1",
        record.id.as_bytes(),
        &record.private_key,
    )
    .unwrap();
    let key = ed25519_dalek::SigningKey::from_bytes(&secret.try_into().unwrap());
    let sign = |header: &serde_json::Value, claims: &serde_json::Value| {
        let input = format!(
            "{}.{}",
            b64.encode(header.to_string()),
            b64.encode(claims.to_string())
        );
        let signature = key.sign(input.as_bytes());
        format!("{input}.{}", b64.encode(signature.to_bytes()))
    };
    let server = &server;
    let status = |jwt: String| async move {
        server
            .http()
            .get(format!("{}/api/v1/me", server.url))
            .bearer_auth(jwt)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    };
    // The control: re-signed as issued, it works.
    assert_eq!(status(sign(&header, &claims)).await, 200);
    let iat = claims["iat"].as_i64().unwrap();
    let mut forgeries = Vec::new();
    for typ in [serde_json::Value::Null, "JWT".into(), "at+JWT2".into()] {
        let mut h = header.clone();
        h["typ"] = typ;
        forgeries.push(sign(&h, &claims));
    }
    let mut long = claims.clone();
    long["exp"] = (iat + 30 * 86_400).into();
    forgeries.push(sign(&header, &long));
    let mut future = claims.clone();
    future["iat"] = (iat + 3600).into();
    future["exp"] = (iat + 3700).into();
    forgeries.push(sign(&header, &future));
    let mut none = header.clone();
    none["alg"] = "none".into();
    forgeries.push(format!(
        "{}.{}.",
        b64.encode(none.to_string()),
        b64.encode(claims.to_string())
    ));
    for (i, jwt) in forgeries.into_iter().enumerate() {
        assert_eq!(status(jwt).await, 401, "forgery {i}");
    }
}
