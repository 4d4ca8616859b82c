//! Governance rules, each tested for the allowed and the refused case; refused requests
//! change nothing.

use latchkey_client::proto::{
    CreateTokenRequest, OrgRole, Reason, RotateTokenRequest, Scope, SkipReason, TokenCreators,
    TokenState, TokenType, UpdateInstanceSettingsRequest, UpdateTokenSettingsRequest,
    UpdateUserRequest, WorkspaceRole,
};
use latchkey_client::{AuditQuery, Client, PageQuery, TokenQuery};

use crate::harness::{ADMIN_PASSWORD, TestServer, eventually};

/// Who is acting in the matrix.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Actor {
    OrgOwner,
    OrgAdmin,
    WsAdmin,
    WsMember,
    WsViewer,
    Outsider,
}

/// The rules of DESIGN.md §1, written out independently of `latchkey_core::policy`.
fn may_create(actor: Actor, t: TokenType) -> bool {
    match actor {
        Actor::OrgOwner | Actor::OrgAdmin => true,
        Actor::WsAdmin | Actor::WsMember => t.is_user_owned(),
        Actor::WsViewer | Actor::Outsider => false,
    }
}

fn may_see(actor: Actor, t: TokenType, own: bool) -> bool {
    match actor {
        Actor::OrgOwner | Actor::OrgAdmin => true,
        Actor::WsAdmin | Actor::WsMember => match t {
            TokenType::Personal | TokenType::Legacy => own,
            TokenType::Client | TokenType::Frontend => true,
            TokenType::Admin => false,
        },
        Actor::WsViewer | Actor::Outsider => own && t.is_user_owned(),
    }
}

fn may_manage(actor: Actor, t: TokenType, own: bool) -> bool {
    match actor {
        Actor::OrgOwner | Actor::OrgAdmin => true,
        _ => own && t.is_user_owned(),
    }
}

struct Matrix {
    server: TestServer,
    ws: String,
    owner: Client,
    clients: Vec<(Actor, Client, String)>,
}

async fn matrix() -> Matrix {
    let server = TestServer::start().await;
    let owner = server.signed_in("admin", ADMIN_PASSWORD).await;
    let ws = server.workspace1().await;
    let me = owner.me().await.unwrap();
    let mut clients = vec![(Actor::OrgOwner, owner.clone(), me.user.id.clone())];
    for (actor, name, org_role, ws_role) in [
        (Actor::OrgAdmin, "orgadmin", OrgRole::Admin, None),
        (
            Actor::WsAdmin,
            "wsadmin",
            OrgRole::Member,
            Some(WorkspaceRole::Admin),
        ),
        (
            Actor::WsMember,
            "wsmember",
            OrgRole::Member,
            Some(WorkspaceRole::Member),
        ),
        (
            Actor::WsViewer,
            "wsviewer",
            OrgRole::Member,
            Some(WorkspaceRole::Viewer),
        ),
        (Actor::Outsider, "outsider", OrgRole::Member, None),
    ] {
        let (id, client) = server.user(name, org_role).await;
        if let Some(role) = ws_role {
            owner.put_member(&ws, &id, role).await.unwrap();
        }
        clients.push((actor, client, id));
    }
    Matrix {
        server,
        ws,
        owner,
        clients,
    }
}

/// As the org owner, sets the token settings in `settings`; then one token of every type
/// each actor may create, with its secret: (creator, creator's user id, token).
async fn one_token_per_creatable_type(
    m: &Matrix,
    settings: UpdateTokenSettingsRequest,
) -> Vec<(Actor, String, latchkey_client::proto::CreatedToken)> {
    let org = m.owner.me().await.unwrap().org.id;
    m.owner
        .update_token_settings(&org, &settings)
        .await
        .unwrap();
    let mut tokens = Vec::new();
    for (actor, client, actor_id) in &m.clients {
        for t in TokenType::ALL {
            if !may_create(*actor, t) {
                continue;
            }
            let created = client
                .tokens()
                .create(
                    &m.ws,
                    &CreateTokenRequest::new(format!("{actor:?}-{t:?}"), t),
                )
                .await
                .unwrap();
            tokens.push((*actor, actor_id.clone(), created));
        }
    }
    tokens
}

#[tokio::test]
async fn the_whole_matrix_every_token_route_every_role_every_type() {
    let m = matrix().await;
    // Create: every actor × every type.
    for (actor, client, _) in &m.clients {
        for t in TokenType::ALL {
            let result = client
                .tokens()
                .create(
                    &m.ws,
                    &CreateTokenRequest::new(format!("{actor:?}-{t:?}"), t),
                )
                .await;
            let expected = may_create(*actor, t);
            match (&result, expected) {
                (Ok(created), true) => {
                    // Owners of user tokens are the creator; workspace tokens have none.
                    assert_eq!(created.meta.owner_id.is_some(), t.is_user_owned());
                }
                (Err(e), false) => {
                    let status = e.status().unwrap();
                    // Outsiders do not see the workspace at all.
                    let want = if *actor == Actor::Outsider { 404 } else { 403 };
                    assert_eq!(status, want, "{actor:?} creating {t:?}: {e}");
                }
                _ => {
                    panic!("{actor:?} creating {t:?}: expected allowed={expected}, got {result:?}")
                }
            }
        }
    }
    // One token of every type per creator who may create it; everyone tries every route on each.
    let all = m.owner.my_tokens(&PageQuery::limit(200)).await.unwrap();
    let mut tokens = Vec::new();
    for (creator, client, creator_id) in &m.clients {
        let mine = client.my_tokens(&PageQuery::limit(200)).await;
        if let Ok(mine) = mine {
            for t in mine.items {
                tokens.push((*creator, creator_id.clone(), t));
            }
        }
    }
    let ws_tokens = m
        .owner
        .tokens()
        .list(Some(&m.ws), &PageQuery::limit(200))
        .await
        .unwrap();
    for t in ws_tokens
        .items
        .into_iter()
        .filter(|t| !t.token_type.is_user_owned())
    {
        tokens.push((Actor::OrgOwner, String::new(), t));
    }
    assert!(all.items.len() >= 2);
    for (actor, client, actor_id) in &m.clients {
        let listed = client
            .tokens()
            .list(Some(&m.ws), &PageQuery::limit(200))
            .await;
        // The inventory (`GET /api/v1/tokens`) lists what the actor may read by id.
        let inventory: Vec<String> = client
            .tokens()
            .inventory_all(&TokenQuery::default())
            .await
            .unwrap()
            .into_iter()
            .map(|t| t.id)
            .collect();
        for (creator, owner_id, token) in &tokens {
            let own = token.owner_id.as_deref() == Some(actor_id.as_str()) && !owner_id.is_empty();
            let visible = may_see(*actor, token.token_type, own);
            let got = client.tokens().get(&token.id).await;
            assert_eq!(
                got.is_ok(),
                visible,
                "{actor:?} get {:?} own={own}",
                token.token_type
            );
            if let Ok(list) = &listed
                && token.workspace_id.as_deref() == Some(m.ws.as_str())
            {
                let in_list = list.items.iter().any(|t| t.id == token.id);
                // Outsiders cannot list the workspace at all; everyone else lists exactly
                // what they may read by id (a viewer: their own tokens).
                let list_visible = visible && *actor != Actor::Outsider;
                assert_eq!(
                    in_list, list_visible,
                    "{actor:?} list {:?} own={own}",
                    token.token_type
                );
            }
            assert_eq!(
                inventory.contains(&token.id),
                visible,
                "{actor:?} inventory {:?} own={own}",
                token.token_type
            );
            if !visible {
                // Bulk revoke skips what the actor does not see, as not found.
                let bulk = client
                    .tokens()
                    .bulk_revoke(std::slice::from_ref(&token.id))
                    .await
                    .unwrap();
                assert!(
                    bulk.revoked.is_empty(),
                    "{actor:?} bulk {:?}",
                    token.token_type
                );
                assert_eq!(bulk.skipped[0].reason, SkipReason::NotFound);
                // Invisible tokens answer 404 to every action, and nothing changes.
                for e in [
                    client.tokens().revoke(&token.id).await.err(),
                    client.tokens().restore(&token.id).await.err(),
                    client
                        .tokens()
                        .rotate(&token.id, &RotateTokenRequest::default())
                        .await
                        .err(),
                    client.tokens().delete(&token.id).await.err(),
                ] {
                    assert_eq!(
                        e.and_then(|e| e.status()),
                        Some(404),
                        "{actor:?} on {:?}",
                        token.token_type
                    );
                }
                continue;
            }
            let manage = may_manage(*actor, token.token_type, own);
            let revoke = client.tokens().revoke(&token.id).await;
            assert_eq!(
                revoke.is_ok(),
                manage,
                "{actor:?} revoke {:?} own={own}",
                token.token_type
            );
            if let Err(e) = &revoke {
                assert_eq!(e.status(), Some(403));
                assert_eq!(
                    m.owner.tokens().get(&token.id).await.unwrap().state,
                    TokenState::Active,
                    "a refused revoke changes nothing"
                );
            } else {
                assert_eq!(client.tokens().restore(&token.id).await.is_ok(), manage);
            }
            // Bulk revoke: revoked when the actor may manage it, else skipped as forbidden.
            let bulk = client
                .tokens()
                .bulk_revoke(std::slice::from_ref(&token.id))
                .await
                .unwrap();
            if manage {
                assert_eq!(
                    bulk.revoked,
                    std::slice::from_ref(&token.id),
                    "{actor:?} bulk"
                );
                client.tokens().restore(&token.id).await.unwrap();
            } else {
                assert!(bulk.revoked.is_empty());
                assert_eq!(
                    bulk.skipped[0].reason,
                    SkipReason::Forbidden,
                    "{actor:?} bulk {:?} own={own}",
                    token.token_type
                );
                assert_eq!(
                    m.owner.tokens().get(&token.id).await.unwrap().state,
                    TokenState::Active,
                    "a refused bulk revoke changes nothing"
                );
            }
            let rotate = client
                .tokens()
                .rotate(&token.id, &RotateTokenRequest::default())
                .await;
            // A new secret for an owner's token never goes to an admin (issue 21.1).
            let owner_outranks = *creator == Actor::OrgOwner
                && *actor == Actor::OrgAdmin
                && token.token_type.is_user_owned();
            assert_eq!(
                rotate.is_ok(),
                manage && !owner_outranks,
                "{actor:?} rotate {:?}",
                token.token_type
            );
        }
        // Listing: outsiders do not see the workspace.
        match actor {
            Actor::Outsider => assert_eq!(listed.unwrap_err().status(), Some(404)),
            _ => assert!(listed.is_ok()),
        }
    }
    // Delete last, by the org admin, for every token.
    let org_admin = &m.clients[1].1;
    for (_, _, token) in &tokens {
        org_admin.tokens().delete(&token.id).await.unwrap();
    }
    drop(m.server);
}

/// One visibility rule (issue 19): for every kind of caller — sessions of each role (org
/// owner, org admin, workspace admin, member, viewer, outsider) and every token type
/// presented (client, frontend and admin tokens of each workspace; personal tokens of
/// owners of every role, the workspace-bound bootstrap token among them; legacy tokens of
/// several owners) — over a fixture with tokens of every type, owner and workspace, a
/// workspace's token list holds exactly the tokens of that workspace it may read by id,
/// and `/me/tokens` exactly its own ones it may read.
#[tokio::test]
async fn every_caller_lists_exactly_what_it_may_read_by_id() {
    use std::collections::BTreeSet;
    let server = TestServer::start().await;
    let owner = server.signed_in("admin", ADMIN_PASSWORD).await;
    let ws1 = server.workspace1().await;
    let ws2 = owner.create_workspace("Second").await.unwrap().id;
    let (_, org_admin) = server.user("orgadmin", OrgRole::Admin).await;
    let (ws_admin_id, ws_admin) = server.user("wsadmin", OrgRole::Member).await;
    let (member_id, member) = server.user("member", OrgRole::Member).await;
    let (viewer_id, viewer) = server.user("viewer", OrgRole::Member).await;
    let (_, outsider) = server.user("outsider", OrgRole::Member).await;
    for (ws, user, role) in [
        (&ws1, &ws_admin_id, WorkspaceRole::Admin),
        (&ws1, &member_id, WorkspaceRole::Member),
        (&ws2, &member_id, WorkspaceRole::Viewer),
        (&ws1, &viewer_id, WorkspaceRole::Viewer),
    ] {
        owner.put_member(ws, user, role).await.unwrap();
    }
    let reading = Some(vec![Scope::TokensRead, Scope::ProjectsRead]);
    let create = |client: &Client, ws: &str, t: TokenType, owner_id: Option<&str>| {
        let mut req = CreateTokenRequest::new(format!("{t:?}"), t);
        if !t.is_user_owned() {
            req.scopes.clone_from(&reading);
        }
        req.owner_id = owner_id.map(str::to_owned);
        let (client, ws) = (client.clone(), ws.to_owned());
        async move { client.tokens().create(&ws, &req).await.unwrap() }
    };
    // Tokens of every type in both workspaces, of several owners.
    let mut callers: Vec<(String, Client)> = [
        ("owner", &owner),
        ("org admin", &org_admin),
        ("workspace admin", &ws_admin),
        ("member", &member),
        ("viewer", &viewer),
        ("outsider", &outsider),
    ]
    .into_iter()
    .map(|(who, client)| (format!("{who} (session)"), client.clone()))
    .collect();
    // Every workspace token type, in each workspace, is a caller too.
    let mut caller_types = BTreeSet::new();
    for ws in [&ws1, &ws2] {
        let which = if ws == &ws1 { "first" } else { "second" };
        for t in [TokenType::Client, TokenType::Frontend, TokenType::Admin] {
            let created = create(&owner, ws, t, None).await;
            callers.push((
                format!("{} token of the {which} workspace", t.as_str()),
                server.with_token(&created.token),
            ));
            caller_types.insert(t.as_str());
        }
        create(&owner, ws, TokenType::Personal, None).await;
        create(&owner, ws, TokenType::Personal, Some(&member_id)).await;
    }
    // Personal tokens as callers, of owners of every role (the bootstrap token is the
    // owner's, bound to the first workspace), and legacy tokens of several owners: the
    // legacy ones act in no workspace.
    create(&owner, &ws1, TokenType::Personal, Some(&viewer_id)).await;
    callers.push(("owner's bootstrap token".to_owned(), server.admin()));
    let mut legacy = Vec::new();
    for (who, client, ws) in [
        ("org admin", &org_admin, &ws1),
        ("workspace admin", &ws_admin, &ws1),
        ("member", &member, &ws1),
        ("member (second workspace)", &member, &ws2),
        ("viewer", &viewer, &ws1),
        ("outsider", &outsider, &ws1),
    ] {
        if let Ok(made) = client
            .tokens()
            .create(ws, &CreateTokenRequest::new("p", TokenType::Personal))
            .await
        {
            callers.push((
                format!("{who}'s personal token"),
                server.with_token(&made.token),
            ));
            caller_types.insert("personal");
        }
    }
    for (who, client) in [
        ("owner", &owner),
        ("org admin", &org_admin),
        ("member", &member),
        ("viewer", &viewer),
    ] {
        let request = CreateTokenRequest::new("l", TokenType::Legacy);
        let Ok(made) = client.tokens().create(&ws1, &request).await else {
            continue;
        };
        callers.push((
            format!("{who}'s legacy token"),
            server.with_token(&made.token),
        ));
        caller_types.insert("legacy");
        legacy.push(made.meta);
    }
    let legacy_count = legacy.len();
    assert!(
        legacy_count >= 3,
        "owner, org admin and member make legacy tokens"
    );
    let every_type: BTreeSet<&str> = [
        TokenType::Personal,
        TokenType::Client,
        TokenType::Frontend,
        TokenType::Admin,
        TokenType::Legacy,
    ]
    .iter()
    .map(|t| t.as_str())
    .collect();
    assert_eq!(caller_types, every_type, "every token type is a caller");
    // Every token of the org: both workspaces as their owner lists them, and the legacy
    // tokens (they act in no workspace).
    let mut all = Vec::new();
    for ws in [&ws1, &ws2] {
        all.extend(
            owner
                .tokens()
                .list(Some(ws), &PageQuery::limit(200))
                .await
                .unwrap()
                .items,
        );
    }
    let workspace_tokens = all.len();
    all.extend(legacy);
    assert!(
        workspace_tokens >= 15,
        "{workspace_tokens} tokens in the workspaces"
    );
    assert_eq!(all.len(), workspace_tokens + legacy_count);

    for (who, caller) in &callers {
        let mut readable = BTreeSet::new();
        for token in &all {
            if caller.tokens().get(&token.id).await.is_ok() {
                readable.insert((token.id.clone(), token.workspace_id.clone()));
            }
        }
        for ws in [&ws1, &ws2] {
            let expected: BTreeSet<String> = readable
                .iter()
                .filter(|(_, w)| w.as_deref() == Some(ws.as_str()))
                .map(|(id, _)| id.clone())
                .collect();
            match caller.tokens().list(Some(ws), &PageQuery::limit(200)).await {
                Ok(page) => {
                    let listed: BTreeSet<String> = page.items.into_iter().map(|t| t.id).collect();
                    assert_eq!(listed, expected, "{who} lists {ws}");
                }
                Err(e) => {
                    assert!(
                        matches!(e.status(), Some(403 | 404)),
                        "{who} lists {ws}: {e}"
                    );
                    assert!(
                        expected.is_empty(),
                        "{who} cannot list {ws} but reads {expected:?}"
                    );
                }
            }
        }
        // The inventory, across workspaces, is exactly what it reads by id.
        match caller.tokens().inventory_all(&TokenQuery::default()).await {
            Ok(listed) => {
                let listed: BTreeSet<String> = listed.into_iter().map(|t| t.id).collect();
                let expected: BTreeSet<String> =
                    readable.iter().map(|(id, _)| id.clone()).collect();
                assert_eq!(listed, expected, "{who}'s inventory");
            }
            Err(e) => {
                assert_eq!(e.status(), Some(403), "{who}'s inventory: {e}");
                assert!(
                    readable.is_empty(),
                    "{who} cannot list but reads {readable:?}"
                );
            }
        }
        if let Ok(mine) = caller.my_tokens(&PageQuery::limit(200)).await {
            let me = caller.me().await.unwrap().user.id;
            let mine: BTreeSet<String> = mine.items.into_iter().map(|t| t.id).collect();
            let expected: BTreeSet<String> = all
                .iter()
                .filter(|t| t.owner_id.as_deref() == Some(me.as_str()))
                .filter(|t| readable.iter().any(|(id, _)| *id == t.id))
                .map(|t| t.id.clone())
                .collect();
            let describe = |ids: &BTreeSet<String>| -> Vec<String> {
                all.iter()
                    .filter(|t| ids.contains(&t.id))
                    .map(|t| format!("{:?} in {:?}", t.token_type, t.workspace_id))
                    .collect()
            };
            assert_eq!(
                mine,
                expected,
                "{who} lists its own tokens: {:?} vs {:?}",
                describe(&mine),
                describe(&expected)
            );
        }
    }

    // And the rule itself, for the callers whose answer the issue names.
    let types_listed = |client: Client, ws: String| async move {
        let page = client
            .tokens()
            .list(Some(&ws), &PageQuery::limit(200))
            .await
            .unwrap();
        let mut types: Vec<TokenType> = page.items.iter().map(|t| t.token_type).collect();
        types.sort_by_key(|t| t.as_str());
        types
    };
    let by_name = |name: &str| callers.iter().find(|(n, _)| *n == name).unwrap().1.clone();
    assert_eq!(
        types_listed(by_name("admin token of the first workspace"), ws1.clone()).await,
        [TokenType::Admin, TokenType::Client, TokenType::Frontend],
        "an admin token lists the admin tokens it may read by id"
    );
    assert_eq!(
        types_listed(by_name("client token of the first workspace"), ws1.clone()).await,
        [TokenType::Client, TokenType::Frontend]
    );
    assert_eq!(
        types_listed(viewer.clone(), ws1.clone()).await,
        [TokenType::Personal],
        "a viewer lists its own token only"
    );
    let mine_via_personal: Vec<TokenType> = by_name("member's personal token")
        .my_tokens(&PageQuery::limit(200))
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|t| t.token_type)
        .collect();
    assert_eq!(
        mine_via_personal,
        [TokenType::Personal, TokenType::Personal],
        "a personal token lists its owner's tokens of its workspace, not those of the \
         second workspace nor the legacy one"
    );
}

#[tokio::test]
async fn concurrent_creates_never_overshoot_a_limit() {
    let server = TestServer::start().await;
    let admin = server.signed_in("admin", ADMIN_PASSWORD).await;
    let ws = server.workspace1().await;
    admin
        .update_instance_settings(&UpdateInstanceSettingsRequest {
            max_active_tokens: Some(Some(6)),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for i in 0..20 {
        let client = admin.clone();
        let ws = ws.clone();
        tasks.push(tokio::spawn(async move {
            client
                .tokens()
                .create(
                    &ws,
                    &CreateTokenRequest::new(format!("par-{i}"), TokenType::Client),
                )
                .await
        }));
    }
    let mut ok = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => ok += 1,
            Err(e) => {
                assert_eq!(e.status(), Some(409));
                assert_eq!(e.limit(), Some("max_active_tokens"));
            }
        }
    }
    assert_eq!(ok, 5, "6 active tokens allowed, the bootstrap token is one");
    let listed = admin
        .tokens()
        .list(Some(&ws), &PageQuery::limit(200))
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 6);
    // A restore re-checks the limit.
    let victim = listed
        .items
        .iter()
        .find(|t| t.token_type == TokenType::Client)
        .unwrap();
    admin.tokens().revoke(&victim.id).await.unwrap();
    admin
        .tokens()
        .create(
            &ws,
            &CreateTokenRequest::new("takes-the-slot", TokenType::Client),
        )
        .await
        .unwrap();
    let err = admin.tokens().restore(&victim.id).await.unwrap_err();
    assert_eq!(err.status(), Some(409));
    assert_eq!(err.limit(), Some("max_active_tokens"));
}

#[tokio::test]
async fn settings_belong_to_admins_and_instance_settings_to_owners() {
    let server = TestServer::start().await;
    let owner = server.signed_in("admin", ADMIN_PASSWORD).await;
    let org = owner.me().await.unwrap().org.id;
    let (_, org_admin) = server.user("oa", OrgRole::Admin).await;
    let (_, member) = server.user("mm", OrgRole::Member).await;

    let defaults = owner.token_settings(&org).await.unwrap();
    assert_eq!(defaults.enabled_types.len(), 5);
    assert_eq!(defaults.token_creators, TokenCreators::Members);
    assert_eq!(defaults.personal_token_ttl_days, None);
    assert_eq!(defaults.max_tokens_per_user, Some(10));
    let inst = owner.instance_settings().await.unwrap();
    assert_eq!(inst.max_active_tokens, Some(200));
    assert_eq!(inst.default_token_lifetime_days, 270);

    assert_eq!(
        member.token_settings(&org).await.unwrap_err().status(),
        Some(403)
    );
    assert_eq!(
        member.instance_settings().await.unwrap_err().status(),
        Some(403)
    );
    org_admin.token_settings(&org).await.unwrap();
    org_admin.instance_settings().await.unwrap();
    let err = org_admin
        .update_instance_settings(&UpdateInstanceSettingsRequest {
            default_token_lifetime_days: Some(30),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(403));
    assert_eq!(
        owner
            .instance_settings()
            .await
            .unwrap()
            .default_token_lifetime_days,
        270
    );
    let err = member
        .update_token_settings(
            &org,
            &UpdateTokenSettingsRequest {
                token_creators: Some(TokenCreators::Admins),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(403));
    assert_eq!(
        owner.token_settings(&org).await.unwrap().token_creators,
        TokenCreators::Members
    );
    // Bad values → 422 with the field; nothing changes.
    for (req, field) in [
        (
            UpdateTokenSettingsRequest {
                personal_token_ttl_days: Some(Some(0)),
                ..Default::default()
            },
            "personal_token_ttl_days",
        ),
        (
            UpdateTokenSettingsRequest {
                max_tokens_per_user: Some(Some(0)),
                ..Default::default()
            },
            "max_tokens_per_user",
        ),
    ] {
        let err = org_admin
            .update_token_settings(&org, &req)
            .await
            .unwrap_err();
        assert_eq!(err.status(), Some(422));
        assert_eq!(err.field(), Some(field));
    }
    let resp = owner
        .request(
            reqwest::Method::PATCH,
            &format!("/api/v1/orgs/{org}/token-settings"),
        )
        .json(&serde_json::json!({"enabled_types": ["personal", "bogus"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 422);
    assert_eq!(owner.token_settings(&org).await.unwrap(), defaults);
    // Unknown org → 404.
    assert_eq!(
        owner
            .token_settings("0190a7e4-0000-7000-8000-000000000000")
            .await
            .unwrap_err()
            .status(),
        Some(404)
    );
    // Audit: settings changes are recorded.
    org_admin
        .update_token_settings(
            &org,
            &UpdateTokenSettingsRequest {
                personal_token_ttl_days: Some(Some(30)),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let events = owner
        .audit_events(&AuditQuery {
            action: Some("org.token_settings_changed".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(events.items.len(), 1);
}

#[tokio::test]
async fn personal_ttl_and_token_creators_apply_to_new_tokens() {
    let server = TestServer::start().await;
    let owner = server.signed_in("admin", ADMIN_PASSWORD).await;
    let org = owner.me().await.unwrap().org.id;
    let ws = server.workspace1().await;
    let (uid, member) = server.user("tina", OrgRole::Member).await;
    owner
        .put_member(&ws, &uid, WorkspaceRole::Member)
        .await
        .unwrap();
    owner
        .update_token_settings(
            &org,
            &UpdateTokenSettingsRequest {
                personal_token_ttl_days: Some(Some(7)),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let t = server
        .token(&member, &ws, "week", TokenType::Personal)
        .await;
    assert_eq!(
        (t.meta.expires_at.unwrap() - t.meta.created_at).whole_days(),
        7
    );
    let mut req = CreateTokenRequest::new("too-long", TokenType::Personal);
    req.expires_in_days = Some(8);
    let err = member.tokens().create(&ws, &req).await.unwrap_err();
    assert_eq!(err.status(), Some(422));
    assert_eq!(err.code(), Some("lifetime_exceeds_policy"));
    req.expires_in_days = Some(3);
    member.tokens().create(&ws, &req).await.unwrap();
    // Only admins may create tokens now.
    owner
        .update_token_settings(
            &org,
            &UpdateTokenSettingsRequest {
                token_creators: Some(TokenCreators::Admins),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let err = member
        .tokens()
        .create(&ws, &CreateTokenRequest::new("no", TokenType::Personal))
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(403));
    // An org admin creates one for the member; the member owns it.
    let mut for_tina = CreateTokenRequest::new("for-tina", TokenType::Personal);
    for_tina.owner_id = Some(uid.clone());
    let made = owner.tokens().create(&ws, &for_tina).await.unwrap();
    assert_eq!(made.meta.owner_id.as_deref(), Some(uid.as_str()));
    assert_eq!(
        made.meta.created_by.as_deref(),
        Some(owner.me().await.unwrap().user.id.as_str())
    );
    // Members cannot create for others.
    owner
        .update_token_settings(
            &org,
            &UpdateTokenSettingsRequest {
                token_creators: Some(TokenCreators::Members),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let mut for_admin = CreateTokenRequest::new("for-admin", TokenType::Personal);
    for_admin.owner_id = Some(owner.me().await.unwrap().user.id);
    assert_eq!(
        member
            .tokens()
            .create(&ws, &for_admin)
            .await
            .unwrap_err()
            .status(),
        Some(403)
    );
}

#[tokio::test]
async fn legacy_tokens_are_one_per_user_and_never_expire() {
    let server = TestServer::start().await;
    // Through a session: a workspace-bound, expiring token cannot mint a legacy token.
    let admin = server.signed_in("admin", ADMIN_PASSWORD).await;
    let ws = server.workspace1().await;
    let legacy = server.token(&admin, &ws, "legacy", TokenType::Legacy).await;
    assert!(legacy.meta.expires_at.is_none());
    assert!(legacy.meta.workspace_id.is_none());
    let err = admin
        .tokens()
        .create(&ws, &CreateTokenRequest::new("again", TokenType::Legacy))
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(409));
    let mut req = CreateTokenRequest::new("expiring", TokenType::Legacy);
    req.expires_in_days = Some(5);
    assert_eq!(
        admin.tokens().create(&ws, &req).await.unwrap_err().status(),
        Some(422)
    );
    // Deleting it frees the slot.
    admin.tokens().delete(&legacy.meta.id).await.unwrap();
    server.token(&admin, &ws, "again", TokenType::Legacy).await;
}

#[tokio::test]
async fn owners_are_protected_and_nobody_deactivates_themselves() {
    let server = TestServer::start().await;
    let owner = server.signed_in("admin", ADMIN_PASSWORD).await;
    let owner_id = owner.me().await.unwrap().user.id;
    let (admin_id, org_admin) = server.user("oadm", OrgRole::Admin).await;
    // Last owner cannot be demoted or deactivated; nobody deactivates themselves.
    let err = owner
        .update_user(
            &owner_id,
            &UpdateUserRequest {
                role: Some(OrgRole::Member),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(409));
    let err = owner
        .update_user(
            &owner_id,
            &UpdateUserRequest {
                active: Some(false),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(409));
    let err = org_admin
        .update_user(
            &admin_id,
            &UpdateUserRequest {
                active: Some(false),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(409));
    // Admins cannot touch owners or grant owner.
    let err = org_admin
        .update_user(
            &owner_id,
            &UpdateUserRequest {
                active: Some(false),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(403));
    let err = org_admin
        .update_user(
            &admin_id,
            &UpdateUserRequest {
                role: Some(OrgRole::Owner),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(403));
    // Owners grant owner; then the first owner may step down.
    owner
        .update_user(
            &admin_id,
            &UpdateUserRequest {
                role: Some(OrgRole::Owner),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    owner
        .update_user(
            &owner_id,
            &UpdateUserRequest {
                role: Some(OrgRole::Admin),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let events = org_admin
        .audit_events(&AuditQuery {
            action: Some("user.role_changed".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(events.items.len(), 2);
}

#[tokio::test]
async fn a_demoted_owner_s_tokens_lose_power_at_once() {
    let server = TestServer::start().await;
    let owner = server.signed_in("admin", ADMIN_PASSWORD).await;
    let ws = server.workspace1().await;
    let (uid, boss) = server.user("boss", OrgRole::Admin).await;
    let token = server
        .token(&boss, &ws, "boss-token", TokenType::Personal)
        .await;
    let as_token = server.with_token(&token.token);
    as_token.list_users(&PageQuery::default()).await.unwrap();
    owner
        .update_user(
            &uid,
            &UpdateUserRequest {
                role: Some(OrgRole::Member),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        as_token
            .list_users(&PageQuery::default())
            .await
            .unwrap_err()
            .status(),
        Some(403)
    );
    // Not a workspace member either: the workspace is gone from its view.
    assert_eq!(
        as_token.list_projects(&ws).await.unwrap_err().status(),
        Some(404)
    );
    owner
        .put_member(&ws, &uid, WorkspaceRole::Viewer)
        .await
        .unwrap();
    as_token.list_projects(&ws).await.unwrap();
    let err = as_token.create_project("nope", None).await.unwrap_err();
    assert_eq!(err.status(), Some(403), "viewers read projects only");
}

#[tokio::test]
async fn tokens_made_by_tokens_are_capped_by_their_maker() {
    let server = TestServer::start().await;
    let admin = server.admin();
    let ws = server.workspace1().await;
    let mut req = CreateTokenRequest::new("narrow", TokenType::Personal);
    req.scopes = Some(vec![Scope::TokensWrite, Scope::ProjectsRead]);
    req.expires_in_days = Some(10);
    let narrow = admin.tokens().create(&ws, &req).await.unwrap();
    let as_narrow = server.with_token(&narrow.token);
    let child = as_narrow
        .tokens()
        .create(&ws, &CreateTokenRequest::new("child", TokenType::Personal))
        .await;
    // Default scopes of a personal token are the owner's rights, which exceed the maker's.
    assert_eq!(child.unwrap_err().field(), Some("scopes"));
    let mut ok = CreateTokenRequest::new("child", TokenType::Personal);
    ok.scopes = Some(vec![Scope::ProjectsRead]);
    let child = as_narrow.tokens().create(&ws, &ok).await.unwrap();
    assert_eq!(
        child.meta.expires_at, narrow.meta.expires_at,
        "expiry capped at the maker's"
    );
    ok.expires_in_days = Some(11);
    let err = as_narrow.tokens().create(&ws, &ok).await.unwrap_err();
    assert_eq!(err.code(), Some("lifetime_exceeds_policy"));
}

#[tokio::test]
async fn idempotent_rotate_returns_the_same_secret() {
    let server = TestServer::start().await;
    let admin = server.admin();
    let ws = server.workspace1().await;
    let t = server.token(&admin, &ws, "idem", TokenType::Client).await;
    let req = RotateTokenRequest {
        grace_seconds: Some(30),
        ..Default::default()
    };
    let a = admin
        .tokens()
        .rotate_with_idempotency_key(&t.meta.id, &req, "key-1")
        .await
        .unwrap();
    let b = admin
        .tokens()
        .rotate_with_idempotency_key(&t.meta.id, &req, "key-1")
        .await
        .unwrap();
    assert_eq!(a.token, b.token);
    assert!(admin.verify(&a.token).await.unwrap().valid);
    assert!(
        admin.verify(&t.token).await.unwrap().valid,
        "grace period of the first rotation only"
    );
    let err = admin
        .tokens()
        .rotate_with_idempotency_key(&t.meta.id, &RotateTokenRequest::default(), "key-1")
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(422));
    let c = admin
        .tokens()
        .rotate_with_idempotency_key(&t.meta.id, &req, "key-2")
        .await
        .unwrap();
    assert_ne!(c.token, a.token);
    // After 24 h the key is forgotten.
    server.state.clock.advance(86_401);
    let d = admin
        .tokens()
        .rotate_with_idempotency_key(&t.meta.id, &req, "key-1")
        .await;
    // The maker (bootstrap token) may have expired by policy? No: it lives 270 days.
    assert_ne!(d.unwrap().token, a.token);
}

#[tokio::test]
async fn project_deletion_deletes_tokens_bound_only_to_it_and_never_widens() {
    let server = TestServer::start().await;
    let admin = server.admin();
    let ws = server.workspace1().await;
    let p1 = admin.create_project_in(&ws, "p1", None).await.unwrap();
    let p2 = admin.create_project_in(&ws, "p2", None).await.unwrap();
    let mut only_p1 = CreateTokenRequest::new("only-p1", TokenType::Client);
    only_p1.projects = Some(vec![p1.id.clone()]);
    only_p1.environment = Some("production".into());
    let only_p1 = admin.tokens().create(&ws, &only_p1).await.unwrap();
    let mut both = CreateTokenRequest::new("both", TokenType::Frontend);
    both.projects = Some(vec![p1.id.clone(), p2.id.clone()]);
    let both = admin.tokens().create(&ws, &both).await.unwrap();
    // A bound token sees only its projects and cannot create others.
    let bound = server.with_token(&only_p1.token);
    let visible: Vec<_> = bound
        .list_projects(&ws)
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|p| p.id)
        .collect();
    assert_eq!(visible, vec![p1.id.clone()]);
    admin
        .request(
            reqwest::Method::DELETE,
            &format!("/api/v1/workspaces/{ws}/projects/{}", p1.id),
        )
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap();
    assert_eq!(
        admin.verify(&only_p1.token).await.unwrap().reason,
        Some(Reason::NotFound)
    );
    let narrowed = admin.tokens().get(&both.meta.id).await.unwrap();
    assert_eq!(narrowed.projects, vec![p2.id.clone()]);
    let seen: Vec<_> = server
        .with_token(&both.token)
        .list_projects(&ws)
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|p| p.id)
        .collect();
    assert_eq!(seen, vec![p2.id]);
}

#[tokio::test]
async fn the_expiry_sweep_marks_tokens_expired_with_an_audit_event() {
    let server = TestServer::start_with(|c| c.verifier.expiry_sweep_secs = 1).await;
    // A token, not a session: the session would idle out when the clock jumps a day.
    let admin = server.admin();
    let ws = server.workspace1().await;
    let mut req = CreateTokenRequest::new("brief", TokenType::Client);
    req.expires_in_days = Some(1);
    let t = admin.tokens().create(&ws, &req).await.unwrap();
    server.state.clock.advance(86_400);
    eventually("the sweep records token.expired", || {
        let admin = admin.clone();
        let id = t.meta.id.clone();
        async move {
            admin
                .audit_events(&AuditQuery {
                    token: Some(id),
                    action: Some("token.expired".into()),
                    ..Default::default()
                })
                .await
                .is_ok_and(|p| p.items.len() == 1)
        }
    })
    .await;
    assert_eq!(
        admin.tokens().get(&t.meta.id).await.unwrap().state,
        TokenState::Expired
    );
}

#[tokio::test]
async fn the_audit_log_records_who_did_what_from_where_and_filters() {
    let server = TestServer::start().await;
    let admin = server.signed_in("admin", ADMIN_PASSWORD).await;
    let admin_id = admin.me().await.unwrap().user.id;
    let ws = server.workspace1().await;
    let _ = server.anonymous().sign_in("admin", "wrong password!").await;
    let (uid, member) = server.user("audrey", OrgRole::Member).await;
    admin
        .put_member(&ws, &uid, WorkspaceRole::Member)
        .await
        .unwrap();
    let t = server.token(&member, &ws, "aud", TokenType::Personal).await;
    admin.tokens().revoke(&t.meta.id).await.unwrap();
    let all = admin
        .audit_events(&AuditQuery {
            limit: Some(200),
            ..Default::default()
        })
        .await
        .unwrap();
    let actions: Vec<_> = all.items.iter().map(|e| e.action.as_str()).collect();
    for expected in [
        "instance.bootstrapped",
        "session.signed_in",
        "session.sign_in_failed",
        "user.created",
        "member.added",
        "token.created",
        "token.revoked",
    ] {
        assert!(
            actions.contains(&expected),
            "{expected} missing from {actions:?}"
        );
    }
    let revoke = all
        .items
        .iter()
        .find(|e| e.action == "token.revoked")
        .unwrap();
    assert_eq!(revoke.actor_id.as_deref(), Some(admin_id.as_str()));
    assert_eq!(revoke.subject_user_id.as_deref(), Some(uid.as_str()));
    assert_eq!(revoke.ip.as_deref(), Some("127.0.0.1"));
    let text = serde_json::to_string(&all.items).unwrap();
    assert!(!text.contains(&t.token), "never a secret in the audit log");
    assert!(!text.contains("wrong password!"));
    // Filters and pagination.
    let by_actor = admin
        .audit_events(&AuditQuery {
            actor: Some(uid.clone()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(
        by_actor
            .items
            .iter()
            .all(|e| e.actor_id.as_deref() == Some(uid.as_str()))
    );
    let page1 = admin
        .audit_events(&AuditQuery {
            limit: Some(2),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(page1.items.len(), 2);
    let page2 = admin
        .audit_events(&AuditQuery {
            limit: Some(2),
            cursor: page1.next_cursor.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(
        page2
            .items
            .iter()
            .all(|e| !page1.items.iter().any(|f| f.id == e.id))
    );
    let future = server.state.clock.now() + time::Duration::days(1);
    let none = admin
        .audit_events(&AuditQuery {
            since: Some(future),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(none.items.is_empty());
    let resp = admin
        .request(reqwest::Method::GET, "/api/v1/audit-events?since=yesterday")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 422);
    // Members read only events about themselves.
    let mine = member
        .audit_events(&AuditQuery {
            limit: Some(200),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(!mine.items.is_empty());
    assert!(
        mine.items
            .iter()
            .all(|e| e.actor_id.as_deref() == Some(uid.as_str())
                || e.subject_user_id.as_deref() == Some(uid.as_str()))
    );
}

/// Webhook routes in the role matrix: org owners and admins manage endpoints; workspace
/// admins, members, viewers and outsiders get 403 on every route; a refused call changes
/// nothing.
#[tokio::test]
async fn webhooks_belong_to_org_admins_in_the_role_matrix() {
    use latchkey_client::proto::{CreateWebhookRequest, EventType, UpdateWebhookRequest};
    let m = matrix().await;
    let request = |n: &str| CreateWebhookRequest {
        url: format!("http://93.184.215.14/{n}"),
        events: vec![EventType::TokenCreated],
        description: None,
        enabled: None,
    };
    let made = m.owner.webhooks().create(&request("owner")).await.unwrap();
    let id = made.webhook.id.clone();
    for (actor, client, _) in &m.clients {
        let admin = matches!(actor, Actor::OrgOwner | Actor::OrgAdmin);
        let hooks = client.webhooks();
        let statuses = [
            hooks
                .create(&request("x"))
                .await
                .err()
                .and_then(|e| e.status()),
            hooks
                .list(&PageQuery::default())
                .await
                .err()
                .and_then(|e| e.status()),
            hooks.get(&id).await.err().and_then(|e| e.status()),
            hooks
                .update(
                    &id,
                    &UpdateWebhookRequest {
                        description: Some(Some(format!("{actor:?}"))),
                        ..Default::default()
                    },
                )
                .await
                .err()
                .and_then(|e| e.status()),
            hooks
                .deliveries(&id, &PageQuery::default())
                .await
                .err()
                .and_then(|e| e.status()),
            hooks.test(&id).await.err().and_then(|e| e.status()),
        ];
        let want = if admin { None } else { Some(403) };
        assert!(
            statuses.iter().all(|s| *s == want),
            "{actor:?}: {statuses:?}, want {want:?}"
        );
    }
    // Members changed nothing; admins' edits are there; delete is for admins too.
    let got = m.owner.webhooks().get(&id).await.unwrap();
    assert_eq!(got.description.as_deref(), Some("OrgAdmin"));
    let (_, member, _) = &m.clients[3];
    assert_eq!(
        member.webhooks().delete(&id).await.unwrap_err().status(),
        Some(403)
    );
    let (_, org_admin, _) = &m.clients[1];
    org_admin.webhooks().delete(&id).await.unwrap();
    assert_eq!(
        m.owner.webhooks().get(&id).await.unwrap_err().status(),
        Some(404)
    );
    let _ = &m.server;
}

/// Service accounts in the role matrix: org owners and admins create them, list them by
/// kind and create their tokens; workspace admins, members, viewers and outsiders get 403
/// on each (404 on a workspace they cannot enter), and a refused call changes nothing.
#[tokio::test]
async fn service_accounts_belong_to_org_admins_in_the_role_matrix() {
    use latchkey_client::proto::UserKind;
    let m = matrix().await;
    let bot = m
        .owner
        .create_service_account("matrix-bot", None)
        .await
        .unwrap();
    m.owner
        .put_member(&m.ws, &bot.id, WorkspaceRole::Member)
        .await
        .unwrap();
    for (actor, client, _) in &m.clients {
        let admin = matches!(actor, Actor::OrgOwner | Actor::OrgAdmin);
        let created = client
            .create_service_account(&format!("bot-{actor:?}").to_lowercase(), None)
            .await;
        let listed = client
            .list_users_of_kind(UserKind::Service, &PageQuery::default())
            .await;
        let mut req = CreateTokenRequest::new(format!("for bot by {actor:?}"), TokenType::Personal);
        req.owner_id = Some(bot.id.clone());
        let token = client.tokens().create(&m.ws, &req).await;
        if admin {
            assert_eq!(created.unwrap().kind, UserKind::Service, "{actor:?}");
            assert!(
                listed
                    .unwrap()
                    .items
                    .iter()
                    .all(|u| u.kind == UserKind::Service)
            );
            assert_eq!(
                token.unwrap().meta.owner_id.as_deref(),
                Some(bot.id.as_str()),
                "{actor:?}"
            );
        } else {
            let token_status = if *actor == Actor::Outsider { 404 } else { 403 };
            assert_eq!(created.unwrap_err().status(), Some(403), "{actor:?} create");
            assert_eq!(listed.unwrap_err().status(), Some(403), "{actor:?} list");
            assert_eq!(
                token.unwrap_err().status(),
                Some(token_status),
                "{actor:?} token"
            );
        }
    }
    // Two accounts made by the two admins, plus the first; two tokens for it.
    let all = m
        .owner
        .list_users_of_kind(UserKind::Service, &PageQuery::default())
        .await
        .unwrap();
    assert_eq!(all.items.len(), 3);
    let a = m
        .owner
        .tokens()
        .list(Some(&m.ws), &PageQuery::limit(200))
        .await
        .unwrap();
    let owned = a
        .items
        .iter()
        .filter(|t| t.owner_id.as_deref() == Some(bot.id.as_str()))
        .count();
    assert_eq!(owned, 2);
    let _ = &m.server;
}

/// `POST /api/v1/tokens/{id}/reveal` in the role matrix, with every type recoverable:
/// whoever may see a token reveals it, except that a personal or legacy token's secret
/// goes to its owner only (403 for the org owner and admins who see it); tokens one may
/// not see answer 404. A refusal reveals nothing and is not audited as a reveal.
#[tokio::test]
async fn reveal_in_the_role_matrix() {
    let m = matrix().await;
    let made = one_token_per_creatable_type(
        &m,
        UpdateTokenSettingsRequest {
            recoverable_types: Some(TokenType::ALL.to_vec()),
            ..UpdateTokenSettingsRequest::default()
        },
    )
    .await;
    // One token of every type each actor may create, with its secret.
    let mut tokens = Vec::new();
    for (_, actor_id, created) in made {
        assert!(created.meta.recoverable);
        let owner = if created.meta.token_type.is_user_owned() {
            actor_id
        } else {
            String::new()
        };
        tokens.push((owner, created));
    }
    let mut reveals = 0;
    for (actor, client, actor_id) in &m.clients {
        for (owner_id, created) in &tokens {
            let t = created.meta.token_type;
            let own = owner_id == actor_id;
            let got = client.tokens().reveal(&created.meta.id).await;
            let want = if !may_see(*actor, t, own) {
                404
            } else if t.is_user_owned() && !own {
                403
            } else {
                200
            };
            match got {
                Ok(revealed) => {
                    assert_eq!(want, 200, "{actor:?} revealed {t:?} own={own}");
                    assert_eq!(revealed.token, created.token);
                    reveals += 1;
                }
                Err(e) => assert_eq!(
                    e.status(),
                    Some(want),
                    "{actor:?} revealing {t:?} own={own}: {e}"
                ),
            }
        }
    }
    let audited = m
        .owner
        .audit_events(&AuditQuery {
            action: Some("token.revealed".into()),
            limit: Some(200),
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(audited.items.len(), reveals);
    drop(m.server);
}

/// `POST /api/v1/tokens/{id}/approve` · `/deny` in the role matrix, with every type needing
/// approval: what anyone but the org owner creates is pending; each pending token is
/// decided (approved or denied, alternately) by the first org admin who is not its
/// creator. Tokens one may not see answer 404; members, viewers and the token's creator
/// 403; a decided or never-pending token 409; a refusal changes nothing and is not audited.
#[tokio::test]
async fn approve_and_deny_in_the_role_matrix() {
    let m = matrix().await;
    let made = one_token_per_creatable_type(
        &m,
        UpdateTokenSettingsRequest {
            approval_required_types: Some(TokenType::ALL.to_vec()),
            ..UpdateTokenSettingsRequest::default()
        },
    )
    .await;
    let mut tokens = Vec::new();
    for (actor, actor_id, created) in made {
        // Owners' tokens skip approval.
        let want = if actor == Actor::OrgOwner {
            TokenState::Active
        } else {
            TokenState::Pending
        };
        let t = created.meta.token_type;
        assert_eq!(created.meta.state, want, "{actor:?} created {t:?}");
        tokens.push((actor, actor_id, created.meta));
    }
    let mut decisions = 0;
    for (i, (creator, creator_id, token)) in tokens.iter().enumerate() {
        let approve = i % 2 == 0;
        let t = token.token_type;
        let mut decided = token.state != TokenState::Pending;
        for (actor, client, actor_id) in &m.clients {
            let own = token.owner_id.as_deref() == Some(actor_id.as_str());
            let result = if approve {
                client.tokens().approve(&token.id).await
            } else {
                client.tokens().deny(&token.id).await
            };
            let org_admin = matches!(actor, Actor::OrgOwner | Actor::OrgAdmin);
            let want = if !may_see(*actor, t, own) {
                Some(404)
            } else if !org_admin || actor_id == creator_id {
                Some(403)
            } else if decided {
                Some(409)
            } else {
                None
            };
            assert_eq!(
                result.as_ref().err().and_then(|e| e.status()),
                want,
                "{actor:?} approve={approve} on {creator:?}'s {t:?}"
            );
            if want.is_none() {
                decided = true;
                decisions += 1;
            }
            let state = m.owner.tokens().get(&token.id).await.unwrap().state;
            let expected = match (token.state, decided, approve) {
                (TokenState::Pending, false, _) => TokenState::Pending,
                (TokenState::Pending, true, true) => TokenState::Active,
                (TokenState::Pending, true, false) => TokenState::Denied,
                (other, _, _) => other,
            };
            assert_eq!(state, expected, "after {actor:?} on {creator:?}'s {t:?}");
        }
        assert!(decided, "{creator:?}'s {t:?} was decided by someone");
    }
    let mut audited = 0;
    for action in ["token.approved", "token.denied"] {
        audited += m
            .owner
            .audit_events(&AuditQuery {
                action: Some(action.into()),
                limit: Some(200),
                ..AuditQuery::default()
            })
            .await
            .unwrap()
            .items
            .len();
    }
    assert_eq!(audited, decisions);
    drop(m.server);
}
