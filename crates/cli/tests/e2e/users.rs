//! Users, workspaces, memberships, and the role checks the foundation enforces.

use latchkey_client::PageQuery;
use latchkey_client::proto::{
    CreateTokenRequest, CreateUserRequest, OrgRole, TokenType, UpdateTokenSettingsRequest,
    WorkspaceRole,
};

use crate::harness::TestServer;

#[tokio::test]
async fn admins_manage_users_and_workspaces_members_cannot() {
    let server = TestServer::start().await;
    // A personal token acts only in its own workspace, so work across workspaces signed in.
    let admin = server
        .signed_in("admin", crate::harness::ADMIN_PASSWORD)
        .await;
    let (uid, member) = server.user("mia", OrgRole::Member).await;
    // Username conflict, case-insensitive.
    let err = admin
        .create_user(&CreateUserRequest {
            username: "MIA".into(),
            password: Some("long enough password".into()),
            kind: latchkey_client::proto::UserKind::Human,
            role: OrgRole::Member,
            display_name: None,
            email: None,
        })
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(409));
    // Bad fields.
    for (username, password, field) in [
        ("", "long enough", "username"),
        ("has space", "long enough", "username"),
        ("ok", "short", "password"),
    ] {
        let err = admin
            .create_user(&CreateUserRequest {
                username: username.into(),
                password: Some(password.into()),
                kind: latchkey_client::proto::UserKind::Human,
                role: OrgRole::Member,
                display_name: None,
                email: None,
            })
            .await
            .unwrap_err();
        assert_eq!(err.status(), Some(422));
        assert_eq!(err.field(), Some(field));
    }
    // Members cannot manage users or workspaces.
    assert_eq!(
        member
            .list_users(&PageQuery::default())
            .await
            .unwrap_err()
            .status(),
        Some(403)
    );
    assert_eq!(
        member.create_workspace("Mine").await.unwrap_err().status(),
        Some(403)
    );
    let err = member
        .create_user(&CreateUserRequest {
            username: "eve".into(),
            password: Some("long enough password".into()),
            kind: latchkey_client::proto::UserKind::Human,
            role: OrgRole::Owner,
            display_name: None,
            email: None,
        })
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(403));
    // Member sees no workspace until added.
    assert!(member.list_workspaces().await.unwrap().items.is_empty());
    let ws = admin.create_workspace("Team A").await.unwrap();
    assert_eq!(
        admin.create_workspace("Team A").await.unwrap_err().status(),
        Some(409)
    );
    assert_eq!(
        member.get_workspace(&ws.id).await.unwrap_err().status(),
        Some(404)
    );
    let m = admin
        .put_member(&ws.id, &uid, WorkspaceRole::Viewer)
        .await
        .unwrap();
    assert_eq!(m.role, WorkspaceRole::Viewer);
    let names: Vec<_> = member
        .list_workspaces()
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|w| w.name)
        .collect();
    assert_eq!(names, vec!["Team A"]);
    // A viewer cannot create tokens; a member can.
    let err = member
        .tokens()
        .create(&ws.id, &CreateTokenRequest::new("v", TokenType::Personal))
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(403));
    admin
        .put_member(&ws.id, &uid, WorkspaceRole::Member)
        .await
        .unwrap();
    let t = server
        .token(&member, &ws.id, "mine", TokenType::Personal)
        .await;
    assert_eq!(t.meta.owner_id.as_deref(), Some(uid.as_str()));
    // Members cannot create workspace tokens.
    let err = member
        .tokens()
        .create(&ws.id, &CreateTokenRequest::new("c", TokenType::Client))
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(403));
    // Membership removal: the member's token loses the workspace at once.
    admin.remove_member(&ws.id, &uid).await.unwrap();
    let err = server
        .with_token(&t.token)
        .list_projects(&ws.id)
        .await
        .unwrap_err();
    assert_eq!(
        err.status(),
        Some(404),
        "the workspace is no longer visible to the token"
    );
    assert_eq!(
        admin
            .remove_member(&ws.id, &uid)
            .await
            .unwrap_err()
            .status(),
        Some(404)
    );
}

#[tokio::test]
async fn members_see_their_own_and_workspace_tokens_but_never_admin_tokens() {
    let server = TestServer::start().await;
    let admin = server.admin();
    let ws = server.workspace1().await;
    let (uid, member) = server.user("max", OrgRole::Member).await;
    admin
        .put_member(&ws, &uid, WorkspaceRole::Member)
        .await
        .unwrap();
    let own = server.token(&member, &ws, "own", TokenType::Personal).await;
    let client = server.token(&admin, &ws, "client", TokenType::Client).await;
    let admin_tok = server.token(&admin, &ws, "admin", TokenType::Admin).await;
    let listed = member
        .tokens()
        .list(Some(&ws), &PageQuery::default())
        .await
        .unwrap();
    let ids: Vec<_> = listed.items.iter().map(|t| t.id.as_str()).collect();
    assert!(ids.contains(&own.meta.id.as_str()));
    assert!(ids.contains(&client.meta.id.as_str()));
    assert!(!ids.contains(&admin_tok.meta.id.as_str()));
    assert_eq!(ids.len(), 2, "not the admin's personal token either");
    assert_eq!(
        member
            .tokens()
            .get(&admin_tok.meta.id)
            .await
            .unwrap_err()
            .status(),
        Some(404)
    );
    // A member may not revoke a workspace token, nor the admin's personal token.
    assert_eq!(
        member
            .tokens()
            .revoke(&client.meta.id)
            .await
            .unwrap_err()
            .status(),
        Some(403)
    );
    // Org admins revoke anyone's.
    admin.tokens().revoke(&own.meta.id).await.unwrap();
    let events = admin
        .audit_events(&latchkey_client::AuditQuery {
            token: Some(own.meta.id.clone()),
            ..Default::default()
        })
        .await
        .unwrap();
    let actions: Vec<_> = events.items.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, vec!["token.revoked", "token.created"]);
    assert_eq!(
        events.items[0].subject_user_id.as_deref(),
        Some(uid.as_str())
    );
}

#[tokio::test]
async fn per_user_limit_answers_409_naming_the_limit_and_creates_nothing() {
    let server = TestServer::start().await;
    let admin = server.admin();
    let ws = server.workspace1().await;
    let org = admin.me().await.unwrap().org.id;
    admin
        .update_token_settings(
            &org,
            &UpdateTokenSettingsRequest {
                max_tokens_per_user: Some(Some(3)),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    // The admin already has the bootstrap token.
    server.token(&admin, &ws, "2", TokenType::Personal).await;
    server.token(&admin, &ws, "3", TokenType::Personal).await;
    let err = admin
        .tokens()
        .create(&ws, &CreateTokenRequest::new("4", TokenType::Personal))
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(409));
    assert_eq!(err.code(), Some("limit_exceeded"));
    assert_eq!(err.limit(), Some("max_tokens_per_user"));
    assert_eq!(
        admin
            .my_tokens(&PageQuery::default())
            .await
            .unwrap()
            .items
            .len(),
        3
    );
    // Workspace tokens are not a user's.
    server.token(&admin, &ws, "c", TokenType::Client).await;
}

#[tokio::test]
async fn disabling_a_type_turns_its_tokens_off_and_back_on() {
    let server = TestServer::start().await;
    let admin = server.admin();
    let ws = server.workspace1().await;
    let org = admin.me().await.unwrap().org.id;
    let client = server.token(&admin, &ws, "c", TokenType::Client).await;
    let as_client = server.with_token(&client.token);
    as_client.list_projects(&ws).await.unwrap();
    admin
        .update_token_settings(
            &org,
            &UpdateTokenSettingsRequest {
                enabled_types: Some(vec![TokenType::Personal, TokenType::Legacy]),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        as_client.list_projects(&ws).await.unwrap_err().status(),
        Some(401)
    );
    assert_eq!(
        admin.verify(&client.token).await.unwrap().reason,
        Some(latchkey_client::proto::Reason::TypeDisabled)
    );
    admin
        .update_token_settings(
            &org,
            &UpdateTokenSettingsRequest {
                enabled_types: Some(TokenType::ALL.to_vec()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    as_client.list_projects(&ws).await.unwrap();
}
