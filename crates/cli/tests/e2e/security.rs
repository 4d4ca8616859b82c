//! Regression tests for the holes of issue 21 (each one fails on the code before its fix):
//! role takeover, token reach, rotated secrets, throttles, what anonymous callers learn,
//! CSRF, JWT forgeries. Forward-auth header trust and the proxy recipes live in `proxies`.

use latchkey_client::PageQuery;
use latchkey_client::proto::{
    CreateTokenRequest, OrgRole, RotateTokenRequest, Scope, TokenType, UpdateUserRequest,
};

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
