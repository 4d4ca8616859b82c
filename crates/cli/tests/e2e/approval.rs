//! Approval (DESIGN.md §8, issue 14): `approval_required_types`, pending tokens that fail
//! everywhere with reason `pending`, and `POST /api/v1/tokens/{id}/approve` · `/deny` —
//! through the SDK and raw HTTP, each refusal checked to change nothing.

use latchkey_client::proto::{
    CreateTokenRequest, OrgRole, Reason, TokenState, TokenType, UpdateTokenSettingsRequest,
    WorkspaceRole,
};
use latchkey_client::{AuditQuery, Client, TokenQuery};
use serde_json::json;

use crate::harness::TestServer;

/// Sets `approval_required_types` as `client`.
async fn require_approval(
    client: &Client,
    types: &[TokenType],
) -> Result<Vec<TokenType>, latchkey_client::Error> {
    let org = client.me().await?.org.id;
    let settings = client
        .update_token_settings(
            &org,
            &UpdateTokenSettingsRequest {
                approval_required_types: Some(types.to_vec()),
                ..UpdateTokenSettingsRequest::default()
            },
        )
        .await?;
    Ok(settings.approval_required_types)
}

/// `POST /api/v1/tokens/{id}/{verb}` with a raw body (JSON when given), as `token`;
/// returns (status, body).
async fn post_action(
    server: &TestServer,
    token: Option<&str>,
    id: &str,
    verb: &str,
    body: Option<&str>,
) -> (u16, serde_json::Value) {
    let mut req = server
        .http()
        .post(format!("{}/api/v1/tokens/{id}/{verb}", server.url));
    if let Some(body) = body {
        req = req
            .header("content-type", "application/json")
            .body(body.to_owned());
    }
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    let response = req.send().await.unwrap();
    let status = response.status().as_u16();
    let body = response.json().await.unwrap_or(serde_json::Value::Null);
    (status, body)
}

/// `GET /auth/verify` (forward-auth) with `token`: (status, `X-Latchkey-Reason`).
async fn forward_auth(server: &TestServer, token: &str) -> (u16, Option<String>) {
    let response = server
        .http()
        .get(format!("{}/auth/verify", server.url))
        .header("x-original-uri", "/anything")
        .header("x-original-method", "GET")
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let reason = response
        .headers()
        .get("x-latchkey-reason")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    (response.status().as_u16(), reason)
}

/// The state of token `id` as `client` reads it.
async fn state_of(client: &Client, id: &str) -> TokenState {
    client.tokens().get(id).await.unwrap().state
}

fn status(e: latchkey_client::Error) -> Option<u16> {
    e.status()
}

#[tokio::test]
async fn an_admin_token_waits_for_another_org_admin_and_pending_fails_everywhere() {
    let server = TestServer::start().await;
    let owner = server.admin();
    let ws = server.workspace1().await;
    let (ops_id, ops) = server.user("ops", OrgRole::Admin).await;
    let (_, ops2) = server.user("ops2", OrgRole::Admin).await;
    let (member_id, member) = server.user("mia", OrgRole::Member).await;
    owner
        .put_member(&ws, &member_id, WorkspaceRole::Admin)
        .await
        .unwrap();

    // Only an owner changes the setting; an org admin's attempt changes nothing.
    let refused = require_approval(&ops, &[TokenType::Admin]).await;
    assert_eq!(refused.map_err(status), Err(Some(403)));
    let org = owner.me().await.unwrap().org.id;
    assert!(
        owner
            .token_settings(&org)
            .await
            .unwrap()
            .approval_required_types
            .is_empty()
    );
    assert_eq!(
        require_approval(&owner, &[TokenType::Admin]).await.unwrap(),
        vec![TokenType::Admin]
    );
    // Sending the value unchanged is no change: an org admin may save the other settings.
    let same = ops
        .update_token_settings(
            &org,
            &UpdateTokenSettingsRequest {
                approval_required_types: Some(vec![TokenType::Admin]),
                max_tokens_per_user: Some(Some(12)),
                ..UpdateTokenSettingsRequest::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(same.max_tokens_per_user, Some(12));

    // An org admin's admin token: pending, its secret shown once as usual.
    let made = ops
        .tokens()
        .create(&ws, &CreateTokenRequest::new("deploy", TokenType::Admin))
        .await
        .unwrap();
    assert_eq!(made.meta.state, TokenState::Pending);
    assert!(made.token.starts_with("lka_"));
    let id = made.meta.id.clone();
    // Other types are not held; an owner's admin token is not either.
    let client_token = server.token(&ops, &ws, "svc", TokenType::Client).await;
    assert_eq!(client_token.meta.state, TokenState::Active);
    let owners = server
        .token(&owner, &ws, "owner-ops", TokenType::Admin)
        .await;
    assert_eq!(owners.meta.state, TokenState::Active);

    // Pending fails everywhere with reason `pending`.
    let holder = server.with_token(&made.token);
    assert_eq!(
        holder.list_projects(&ws).await.map_err(status).err(),
        Some(Some(401))
    );
    let checked = server.anonymous().verify(&made.token).await.unwrap();
    assert!(!checked.valid);
    assert_eq!(checked.reason, Some(Reason::Pending));
    assert_eq!(
        owner.introspect(&made.token).await.unwrap(),
        json!({"active": false})
    );
    assert_eq!(
        forward_auth(&server, &made.token).await,
        (401, Some("pending".to_owned()))
    );

    // Listed as pending for the approvers.
    let pending = ops2
        .tokens()
        .inventory_all(&TokenQuery {
            state: Some(TokenState::Pending),
            ..TokenQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(
        pending.iter().map(|t| t.id.as_str()).collect::<Vec<_>>(),
        vec![id.as_str()]
    );

    // Not its creator (403); not a member, even a workspace admin, who does not even see
    // an admin token (404, as for every action); nothing changed.
    assert_eq!(
        ops.tokens().approve(&id).await.map_err(status).err(),
        Some(Some(403))
    );
    assert_eq!(
        ops.tokens().deny(&id).await.map_err(status).err(),
        Some(Some(403))
    );
    assert_eq!(
        member.tokens().approve(&id).await.map_err(status).err(),
        Some(Some(404))
    );
    // A workspace admin who sees a pending workspace token still may not decide it: 403.
    owner
        .update_token_settings(
            &org,
            &UpdateTokenSettingsRequest {
                approval_required_types: Some(vec![TokenType::Admin, TokenType::Client]),
                ..UpdateTokenSettingsRequest::default()
            },
        )
        .await
        .unwrap();
    let held_client = ops
        .tokens()
        .create(&ws, &CreateTokenRequest::new("held", TokenType::Client))
        .await
        .unwrap();
    assert_eq!(held_client.meta.state, TokenState::Pending);
    assert_eq!(
        member
            .tokens()
            .deny(&held_client.meta.id)
            .await
            .map_err(status)
            .err(),
        Some(Some(403))
    );
    assert_eq!(
        state_of(&owner, &held_client.meta.id).await,
        TokenState::Pending
    );
    assert_eq!(state_of(&owner, &id).await, TokenState::Pending);
    // A restore does not skip the approval.
    assert_eq!(
        ops2.tokens().restore(&id).await.map_err(status).err(),
        Some(Some(409))
    );

    // Another org admin approves: it works at once, everywhere.
    let approved = ops2.tokens().approve(&id).await.unwrap();
    assert_eq!(approved.state, TokenState::Active);
    assert_eq!(approved.created_by.as_deref(), Some(ops_id.as_str()));
    assert!(holder.list_projects(&ws).await.is_ok());
    assert!(server.anonymous().verify(&made.token).await.unwrap().valid);
    assert_eq!(forward_auth(&server, &made.token).await.0, 200);
    // Decided once: 409 for a second decision.
    assert_eq!(
        ops2.tokens().approve(&id).await.map_err(status).err(),
        Some(Some(409))
    );
    assert_eq!(
        ops2.tokens().deny(&id).await.map_err(status).err(),
        Some(Some(409))
    );
    let events = owner
        .audit_events(&AuditQuery {
            token: Some(id.clone()),
            action: Some("token.approved".into()),
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(events.items.len(), 1);

    // Deny is final: the token answers `revoked` and nothing brings it back.
    let second = ops
        .tokens()
        .create(&ws, &CreateTokenRequest::new("second", TokenType::Admin))
        .await
        .unwrap();
    let denied = owner.tokens().deny(&second.meta.id).await.unwrap();
    assert_eq!(denied.state, TokenState::Denied);
    let checked = server.anonymous().verify(&second.token).await.unwrap();
    assert_eq!(checked.reason, Some(Reason::Revoked));
    assert_eq!(
        forward_auth(&server, &second.token).await,
        (401, Some("revoked".to_owned()))
    );
    for result in [
        owner.tokens().approve(&second.meta.id).await,
        owner.tokens().restore(&second.meta.id).await,
    ] {
        assert_eq!(result.map_err(status).err(), Some(Some(409)));
    }
    assert_eq!(
        owner
            .tokens()
            .rotate(&second.meta.id, &Default::default())
            .await
            .map_err(status)
            .err(),
        Some(Some(409))
    );
    assert_eq!(state_of(&owner, &second.meta.id).await, TokenState::Denied);
    let denied_events = owner
        .audit_events(&AuditQuery {
            token: Some(second.meta.id.clone()),
            action: Some("token.denied".into()),
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(denied_events.items.len(), 1);

    // Its creator withdrawing it (a revoke) denies it too: no restore skips approval.
    let third = ops
        .tokens()
        .create(&ws, &CreateTokenRequest::new("third", TokenType::Admin))
        .await
        .unwrap();
    let withdrawn = ops.tokens().revoke(&third.meta.id).await.unwrap();
    assert_eq!(withdrawn.state, TokenState::Denied);
    assert_eq!(
        ops2.tokens()
            .restore(&third.meta.id)
            .await
            .map_err(status)
            .err(),
        Some(Some(409))
    );
}

#[tokio::test]
async fn a_pending_token_holds_its_limit_slot() {
    let server = TestServer::start().await;
    let owner = server.admin();
    let ws = server.workspace1().await;
    let (member_id, member) = server.user("mia", OrgRole::Member).await;
    let (_, ops) = server.user("ops", OrgRole::Admin).await;
    owner
        .put_member(&ws, &member_id, WorkspaceRole::Member)
        .await
        .unwrap();
    let org = owner.me().await.unwrap().org.id;
    owner
        .update_token_settings(
            &org,
            &UpdateTokenSettingsRequest {
                approval_required_types: Some(vec![TokenType::Personal]),
                max_tokens_per_user: Some(Some(1)),
                ..UpdateTokenSettingsRequest::default()
            },
        )
        .await
        .unwrap();
    let first = server
        .token(&member, &ws, "first", TokenType::Personal)
        .await;
    assert_eq!(first.meta.state, TokenState::Pending);
    let over = member
        .tokens()
        .create(&ws, &CreateTokenRequest::new("second", TokenType::Personal))
        .await
        .unwrap_err();
    assert_eq!(over.status(), Some(409));
    assert_eq!(over.limit(), Some("max_tokens_per_user"));
    // The member cannot approve their own; an org admin can, and no limit stands in the
    // way (the slot was held).
    assert_eq!(
        member
            .tokens()
            .approve(&first.meta.id)
            .await
            .map_err(status)
            .err(),
        Some(Some(403))
    );
    let approved = ops.tokens().approve(&first.meta.id).await.unwrap();
    assert_eq!(approved.state, TokenState::Active);
    assert!(server.with_token(&first.token).me().await.is_ok());
}

#[tokio::test]
async fn approve_and_deny_answer_bad_input_and_strangers_with_the_contracts_errors() {
    let server = TestServer::start().await;
    let owner = server.admin();
    let ws = server.workspace1().await;
    let (_, ops) = server.user("ops", OrgRole::Admin).await;
    require_approval(&owner, &[TokenType::Admin]).await.unwrap();
    let made = ops
        .tokens()
        .create(&ws, &CreateTokenRequest::new("deploy", TokenType::Admin))
        .await
        .unwrap();
    let id = made.meta.id.clone();
    let admin_token = server.admin_token.clone().unwrap();
    let workspace_admin = server
        .token(&owner, &ws, "ws-admin", TokenType::Admin)
        .await;

    for verb in ["approve", "deny"] {
        // 401: no credentials, or a bad token.
        assert_eq!(post_action(&server, None, &id, verb, None).await.0, 401);
        assert_eq!(
            post_action(&server, Some("lka_nonsense"), &id, verb, None)
                .await
                .0,
            401
        );
        // 400 / 422: malformed JSON, unknown fields.
        let (code, body) = post_action(&server, Some(&admin_token), &id, verb, Some("{")).await;
        assert_eq!(code, 400, "{body}");
        assert_eq!(body["error"]["code"], "malformed_json");
        let (code, body) = post_action(
            &server,
            Some(&admin_token),
            &id,
            verb,
            Some(r#"{"why": 1}"#),
        )
        .await;
        assert_eq!(code, 422, "{body}");
        // 403: a workspace token (not an org admin), even an admin-type one.
        let (code, body) =
            post_action(&server, Some(&workspace_admin.token), &id, verb, None).await;
        assert_eq!(code, 403, "{body}");
        // 404: unknown ids, well-formed or not.
        for unknown in ["0190a0b0-0000-7000-8000-000000000000", "not-an-id"] {
            let (code, body) = post_action(&server, Some(&admin_token), unknown, verb, None).await;
            assert_eq!(code, 404, "{body}");
        }
        assert_eq!(state_of(&owner, &id).await, TokenState::Pending);
    }
    // An empty JSON object is an empty body.
    let (code, body) = post_action(&server, Some(&admin_token), &id, "approve", Some("{}")).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["state"], "active");
    // 409: not pending.
    let (code, body) = post_action(&server, Some(&admin_token), &id, "deny", None).await;
    assert_eq!(code, 409, "{body}");
    assert_eq!(body["error"]["code"], "conflict");

    // The setting: an unknown type is 422 naming the field, nothing changed.
    let org = owner.me().await.unwrap().org.id;
    let response = server
        .http()
        .patch(format!("{}/api/v1/orgs/{org}/token-settings", server.url))
        .bearer_auth(&admin_token)
        .json(&json!({"approval_required_types": ["secret"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 422);
    assert_eq!(
        owner
            .token_settings(&org)
            .await
            .unwrap()
            .approval_required_types,
        vec![TokenType::Admin]
    );
    // An org admin turning it off: 403 as well.
    assert_eq!(
        require_approval(&ops, &[]).await.map_err(status),
        Err(Some(403))
    );
}

/// Two nodes on one PostgreSQL (the PostgreSQL pass): node B refuses a pending token with
/// reason `pending` (and caches it), then accepts it once node A approves it, through the
/// change feed; a token A denies is refused by B as `revoked`.
#[tokio::test]
async fn another_node_follows_approve_and_deny() {
    let a = TestServer::start().await;
    let Some((b, _b_dir)) = crate::harness::second_node(&a).await else {
        return;
    };
    let owner = a.admin();
    let ws = a.workspace1().await;
    let (_, ops) = a.user("ops", OrgRole::Admin).await;
    require_approval(&owner, &[TokenType::Admin]).await.unwrap();
    let mut made = Vec::new();
    for name in ["approved-on-a", "denied-on-a"] {
        let created = ops
            .tokens()
            .create(&ws, &CreateTokenRequest::new(name, TokenType::Admin))
            .await
            .unwrap();
        assert_eq!(created.meta.state, TokenState::Pending);
        made.push(created);
    }
    let reason_on_b = |secret: String| {
        let b = b.anonymous();
        async move { b.verify(&secret).await.unwrap().reason }
    };
    for created in &made {
        crate::harness::eventually("node B sees the pending token", || {
            let check = reason_on_b(created.token.clone());
            async move { check.await == Some(Reason::Pending) }
        })
        .await;
        // Asked twice: the second answer comes from B's cache.
        assert_eq!(
            reason_on_b(created.token.clone()).await,
            Some(Reason::Pending)
        );
    }
    owner.tokens().approve(&made[0].meta.id).await.unwrap();
    owner.tokens().deny(&made[1].meta.id).await.unwrap();
    crate::harness::eventually("node B accepts the approved token", || {
        let check = reason_on_b(made[0].token.clone());
        async move { check.await.is_none() }
    })
    .await;
    crate::harness::eventually("node B refuses the denied token as revoked", || {
        let check = reason_on_b(made[1].token.clone());
        async move { check.await == Some(Reason::Revoked) }
    })
    .await;
    assert!(
        b.with_token(&made[0].token)
            .list_projects(&ws)
            .await
            .is_ok()
    );
}
