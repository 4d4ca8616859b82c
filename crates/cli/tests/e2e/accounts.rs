//! Service accounts and approval (DESIGN.md §8, issue 14): through the API, the SDK and
//! the CLI, with every refusal checked to change nothing.

use latchkey_client::proto::{
    CreateTokenRequest, CreateUserRequest, OrgRole, Reason, TokenState, TokenType,
    UpdateTokenSettingsRequest, UpdateUserRequest, UserKind, WorkspaceRole,
};
use latchkey_client::{Client, PageQuery};
use serde_json::json;

use crate::harness::{ADMIN_PASSWORD, TestServer};

/// A personal token for `owner_id` in `ws`, created by `client`.
fn for_owner(name: &str, owner_id: &str) -> CreateTokenRequest {
    let mut req = CreateTokenRequest::new(name, TokenType::Personal);
    req.owner_id = Some(owner_id.to_owned());
    req
}

/// Activates or deactivates user `id` as `client` (which must be allowed to).
async fn set_active(client: &Client, id: &str, active: bool) {
    let req = UpdateUserRequest {
        active: Some(active),
        ..Default::default()
    };
    client.update_user(id, &req).await.unwrap();
}

async fn status_of(result: Result<impl Sized, latchkey_client::Error>) -> Option<u16> {
    result.err().and_then(|e| e.status())
}

/// POST /api/v1/users with a raw body, as `token`; returns (status, body).
async fn post_user(
    server: &TestServer,
    token: Option<&str>,
    body: &str,
) -> (u16, serde_json::Value) {
    let mut req = server
        .http()
        .post(format!("{}/api/v1/users", server.url))
        .header("content-type", "application/json")
        .body(body.to_owned());
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    let response = req.send().await.unwrap();
    let status = response.status().as_u16();
    let body = response.json().await.unwrap_or(serde_json::Value::Null);
    (status, body)
}

#[tokio::test]
async fn a_service_account_never_signs_in_and_owns_tokens_that_outlive_every_human() {
    let server = TestServer::start().await;
    let owner = server.signed_in("admin", ADMIN_PASSWORD).await;
    let ws = server.workspace1().await;
    // An org admin ("ops") runs it all; a second owner remains to switch the others off.
    let (ops_id, ops) = server.user("ops", OrgRole::Admin).await;
    let (owner2_id, owner2) = server.user("owner2", OrgRole::Owner).await;
    let bot = ops
        .create_service_account("ci-bot", Some("CI pipeline"))
        .await
        .unwrap();
    assert_eq!(bot.kind, UserKind::Service);
    assert_eq!(bot.role, OrgRole::Member);
    assert_eq!(bot.display_name.as_deref(), Some("CI pipeline"));
    assert!(bot.active);

    // It never signs in: the same 401 as a wrong password, whatever is typed.
    let wrong = server
        .anonymous()
        .sign_in("admin", "not the password")
        .await
        .unwrap_err();
    for password in ["", "anything at all", ADMIN_PASSWORD] {
        let refused = server
            .anonymous()
            .sign_in("ci-bot", password)
            .await
            .unwrap_err();
        assert_eq!(refused.status(), Some(401));
        assert_eq!(refused.code(), wrong.code());
        assert_eq!(refused.message(), wrong.message());
    }

    // Listed by kind.
    let services = ops
        .list_users_of_kind(UserKind::Service, &PageQuery::default())
        .await
        .unwrap();
    assert_eq!(
        services
            .items
            .iter()
            .map(|u| u.id.as_str())
            .collect::<Vec<_>>(),
        [bot.id.as_str()]
    );
    let humans = ops
        .list_users_of_kind(UserKind::Human, &PageQuery::default())
        .await
        .unwrap();
    assert!(humans.items.iter().all(|u| u.kind == UserKind::Human));
    assert_eq!(humans.items.len(), 3);

    // A member of the workspace like anyone; its tokens are made by org admins.
    ops.put_member(&ws, &bot.id, WorkspaceRole::Member)
        .await
        .unwrap();
    let made = ops
        .tokens()
        .create(&ws, &for_owner("deploy", &bot.id))
        .await
        .unwrap();
    assert_eq!(made.meta.owner_id.as_deref(), Some(bot.id.as_str()));
    assert_eq!(made.meta.owner_username.as_deref(), Some("ci-bot"));
    assert_eq!(made.meta.created_by.as_deref(), Some(ops_id.as_str()));
    let as_bot = server.with_token(&made.token);
    let me = as_bot.me().await.unwrap();
    assert_eq!(me.user.kind, UserKind::Service);
    assert_eq!(me.memberships.len(), 1);

    // Every human but one owner deactivated (the creator of the token included): the
    // service account's token keeps working.
    set_active(&owner2, &ops_id, false).await;
    let admin_id = owner.me().await.unwrap().user.id;
    set_active(&owner2, &admin_id, false).await;
    assert_eq!(as_bot.me().await.unwrap().user.id, bot.id);
    let checked = server.anonymous().verify(&made.token).await.unwrap();
    assert!(checked.valid, "{checked:?}");

    // Deactivating the service account stops its tokens at once; reactivating brings
    // them back.
    set_active(&owner2, &bot.id, false).await;
    assert_eq!(as_bot.me().await.unwrap_err().status(), Some(401));
    let checked = server.anonymous().verify(&made.token).await.unwrap();
    assert_eq!(checked.reason, Some(Reason::Suspended));
    let listed = owner2.tokens().get(&made.meta.id).await.unwrap();
    assert_eq!(listed.state, TokenState::Suspended);
    set_active(&owner2, &bot.id, true).await;
    assert!(as_bot.me().await.is_ok());
    let _ = owner2_id;
}

#[tokio::test]
async fn the_per_user_cap_counts_a_service_accounts_tokens() {
    let server = TestServer::start().await;
    let owner = server.signed_in("admin", ADMIN_PASSWORD).await;
    let ws = server.workspace1().await;
    let org = owner.me().await.unwrap().org.id;
    owner
        .update_token_settings(
            &org,
            &UpdateTokenSettingsRequest {
                max_tokens_per_user: Some(Some(2)),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let bot = owner.create_service_account("cap-bot", None).await.unwrap();
    owner
        .put_member(&ws, &bot.id, WorkspaceRole::Member)
        .await
        .unwrap();
    for n in 0..2 {
        owner
            .tokens()
            .create(&ws, &for_owner(&format!("t{n}"), &bot.id))
            .await
            .unwrap();
    }
    let over = owner
        .tokens()
        .create(&ws, &for_owner("t2", &bot.id))
        .await
        .unwrap_err();
    assert_eq!(over.status(), Some(409));
    assert_eq!(over.code(), Some("limit_exceeded"));
    assert_eq!(over.limit(), Some("max_tokens_per_user"));
    let owned = owner
        .list_users_of_kind(UserKind::Service, &PageQuery::default())
        .await
        .unwrap();
    assert_eq!(owned.items.len(), 1);
}

#[tokio::test]
async fn service_account_bad_input_and_permissions_change_nothing() {
    let server = TestServer::start().await;
    let owner = server.signed_in("admin", ADMIN_PASSWORD).await;
    let ws = server.workspace1().await;
    let admin_token = server.admin_token.clone().unwrap();
    let (_, org_admin) = server.user("orgadmin", OrgRole::Admin).await;
    let (member_id, member) = server.user("member", OrgRole::Member).await;
    owner
        .put_member(&ws, &member_id, WorkspaceRole::Admin)
        .await
        .unwrap();
    let bot = owner.create_service_account("bot", None).await.unwrap();

    // 400, 401, 403, 409, 422 on create; none of them creates anyone.
    let cases: [(Option<&str>, &str, u16, Option<&str>); 10] = [
        (Some(&admin_token), "{\"username\": ", 400, None),
        (None, r#"{"username":"x1","kind":"service"}"#, 401, None),
        (
            Some(&admin_token),
            r#"{"username":"bot","kind":"service"}"#,
            409,
            None,
        ),
        (
            Some(&admin_token),
            r#"{"username":"has space","kind":"service"}"#,
            422,
            Some("username"),
        ),
        (
            Some(&admin_token),
            r#"{"username":"x2","kind":"service","password":"long enough password"}"#,
            422,
            Some("password"),
        ),
        (
            Some(&admin_token),
            r#"{"username":"x3"}"#,
            422,
            Some("password"),
        ),
        (
            Some(&admin_token),
            r#"{"username":"x4","kind":"robot"}"#,
            422,
            Some("kind"),
        ),
        (
            Some(&admin_token),
            r#"{"username":"x5","kind":"service","role":"owner"}"#,
            422,
            Some("role"),
        ),
        (
            Some(&admin_token),
            r#"{"username":"x6","kind":"service","display_name":""}"#,
            422,
            Some("display_name"),
        ),
        (
            Some(&admin_token),
            r#"{"username":"x7","kind":"service","shell":"bash"}"#,
            422,
            Some("shell"),
        ),
    ];
    for (token, body, want, field) in cases {
        let (status, answer) = post_user(&server, token, body).await;
        assert_eq!(status, want, "{body}: {answer}");
        if let Some(field) = field {
            assert_eq!(answer["error"]["field"], json!(field), "{body}: {answer}");
        }
    }
    assert_eq!(
        status_of(member.create_service_account("x8", None).await).await,
        Some(403)
    );
    let services = owner
        .list_users_of_kind(UserKind::Service, &PageQuery::default())
        .await
        .unwrap();
    assert_eq!(services.items.len(), 1, "a refused create made nobody");

    // Listing: a bad kind is 422, members are 403, no credentials 401.
    let answer = server
        .http()
        .get(format!("{}/api/v1/users?kind=robot", server.url))
        .bearer_auth(&admin_token)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 422);
    let body: serde_json::Value = answer.json().await.unwrap();
    assert_eq!(body["error"]["field"], "kind");
    assert_eq!(
        status_of(
            member
                .list_users_of_kind(UserKind::Service, &PageQuery::default())
                .await
        )
        .await,
        Some(403)
    );
    assert_eq!(
        status_of(
            server
                .anonymous()
                .list_users_of_kind(UserKind::Service, &PageQuery::default())
                .await
        )
        .await,
        Some(401)
    );

    // A service account gets no password and no owner role; 404 for nobody.
    for (req, field) in [
        (
            UpdateUserRequest {
                password: Some("long enough password".into()),
                ..Default::default()
            },
            "password",
        ),
        (
            UpdateUserRequest {
                role: Some(OrgRole::Owner),
                ..Default::default()
            },
            "role",
        ),
    ] {
        let err = owner.update_user(&bot.id, &req).await.unwrap_err();
        assert_eq!(err.status(), Some(422));
        assert_eq!(err.field(), Some(field));
    }
    assert_eq!(
        status_of(
            owner
                .update_user(
                    "0197f0c4-1b2c-7d3e-8f40-123456789abc",
                    &UpdateUserRequest {
                        active: Some(false),
                        ..Default::default()
                    }
                )
                .await
        )
        .await,
        Some(404)
    );
    // An admin role is fine (its tokens may then administer).
    let promoted = org_admin
        .update_user(
            &bot.id,
            &UpdateUserRequest {
                role: Some(OrgRole::Admin),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(promoted.kind, UserKind::Service);

    // Tokens for it: only org admins, only where it is a member.
    let not_member = owner
        .tokens()
        .create(&ws, &for_owner("nowhere", &bot.id))
        .await;
    // An org admin (even as a service account) may act in every workspace.
    assert!(not_member.is_ok(), "{not_member:?}");
    let demoted = owner
        .update_user(
            &bot.id,
            &UpdateUserRequest {
                role: Some(OrgRole::Member),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(demoted.role, OrgRole::Member);
    let refused = owner
        .tokens()
        .create(&ws, &for_owner("nowhere-2", &bot.id))
        .await
        .unwrap_err();
    assert_eq!(refused.status(), Some(403), "{refused}");
    assert_eq!(
        status_of(
            member
                .tokens()
                .create(&ws, &for_owner("by-member", &bot.id))
                .await
        )
        .await,
        Some(403)
    );
    let unknown = owner
        .tokens()
        .create(
            &ws,
            &for_owner("ghost", "0197f0c4-1b2c-7d3e-8f40-123456789abc"),
        )
        .await
        .unwrap_err();
    assert_eq!(unknown.status(), Some(422));
    assert_eq!(unknown.field(), Some("owner_id"));
    // A deactivated service account gets no new tokens.
    set_active(&owner, &bot.id, false).await;
    owner
        .put_member(&ws, &bot.id, WorkspaceRole::Member)
        .await
        .unwrap();
    let off = owner
        .tokens()
        .create(&ws, &for_owner("while-off", &bot.id))
        .await
        .unwrap_err();
    assert_eq!(off.status(), Some(422));
    assert_eq!(off.field(), Some("owner_id"));
    let tokens = owner
        .list_users_of_kind(UserKind::Service, &PageQuery::default())
        .await
        .unwrap();
    assert_eq!(tokens.items.len(), 1);
}

/// Human creation still requires a password, through the SDK's helper too.
#[tokio::test]
async fn people_still_need_a_password() {
    let server = TestServer::start().await;
    let admin: Client = server.admin();
    let mut req = CreateUserRequest::human("pat", "long enough password", OrgRole::Member);
    let pat = admin.create_user(&req).await.unwrap();
    assert_eq!(pat.kind, UserKind::Human);
    server.signed_in("pat", "long enough password").await;
    req.username = "pat2".into();
    req.password = None;
    let err = admin.create_user(&req).await.unwrap_err();
    assert_eq!(err.status(), Some(422));
    assert_eq!(err.field(), Some("password"));
    let users = admin.list_users(&PageQuery::default()).await.unwrap();
    assert!(users.items.iter().all(|u| u.username != "pat2"));
}
