//! Conformance cases for people and places: users, the last owner, sessions, workspaces,
//! memberships, projects.

use std::collections::BTreeSet;
use std::sync::Arc;

use latchkey_core::new_id;
use latchkey_proto::{OrgRole, TokenType, WorkspaceRole};

use super::fixtures::*;
use crate::{AuditFilter, ChangeKind, PageRequest, Store, StoreError, UserPatch};

/// Users: create, read, find case-insensitively, conflicts, pages, patches.
pub async fn users_crud(store: Arc<dyn Store>) {
    let store = &*store;
    let world = bootstrapped(store).await;
    let alice = add_user(store, &world, "Alice", OrgRole::Member).await;
    assert_eq!(alice.username, "Alice");
    assert_eq!(store.get_user(&alice.id).await.unwrap(), alice);
    assert_eq!(
        store.find_user_by_username("alice").await.unwrap(),
        Some(alice.clone())
    );
    assert_eq!(
        store.find_user_by_username("ALICE").await.unwrap(),
        Some(alice.clone())
    );
    assert_eq!(store.find_user_by_username("bob").await.unwrap(), None);

    let taken = store
        .create_user(
            t0(),
            user_record(&world.org.id, "aLiCe", OrgRole::Member),
            event("user.created"),
        )
        .await;
    assert!(is_conflict(&taken), "{taken:?}");

    let mut ids = vec![world.admin.id.clone(), alice.id.clone()];
    for name in ["bob", "carol", "dave"] {
        ids.push(add_user(store, &world, name, OrgRole::Member).await.id);
    }
    ids.sort();
    ids.reverse();
    // Pages of two: 2 + 2 + 1, newest first, no overlap.
    let mut seen = Vec::new();
    let mut cursor = None;
    let mut pages = 0;
    loop {
        let page = store
            .list_users(&world.org.id, None, &PageRequest { limit: 2, cursor })
            .await
            .unwrap();
        pages += 1;
        seen.extend(page.items.iter().map(|u| u.id.clone()));
        match page.next_cursor {
            Some(next) => {
                assert_eq!(Some(&next), seen.last());
                cursor = Some(next);
            }
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, ids);
    assert!(
        store
            .list_users(&new_id(), None, &PageRequest::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );

    let patched = store
        .update_user(
            at(10),
            &alice.id,
            UserPatch {
                display_name: Some(Some("Alice A.".to_owned())),
                email: Some(Some("alice@example.com".to_owned())),
                role: Some(OrgRole::Admin),
                ..UserPatch::default()
            },
            event("user.updated"),
        )
        .await
        .unwrap();
    assert_eq!(patched.display_name.as_deref(), Some("Alice A."));
    assert_eq!(patched.email.as_deref(), Some("alice@example.com"));
    assert_eq!(patched.role, OrgRole::Admin);
    assert_eq!(patched.username, alice.username);
    assert_eq!(patched.created_at, alice.created_at);
    assert_eq!(store.get_user(&alice.id).await.unwrap(), patched);

    // `None` leaves a field alone, `Some(None)` clears it.
    let patched = store
        .update_user(
            at(11),
            &alice.id,
            UserPatch {
                email: Some(None),
                ..UserPatch::default()
            },
            event("user.updated"),
        )
        .await
        .unwrap();
    assert_eq!(patched.display_name.as_deref(), Some("Alice A."));
    assert_eq!(patched.email, None);

    let rehashed = store
        .update_user(
            at(12),
            &alice.id,
            UserPatch {
                password_hash: Some("$argon2id$new".to_owned()),
                active: Some(false),
                ..UserPatch::default()
            },
            event("user.updated"),
        )
        .await
        .unwrap();
    assert_eq!(rehashed.password_hash.as_deref(), Some("$argon2id$new"));
    assert!(!rehashed.active);

    let events = audit_where(
        store,
        AuditFilter {
            action: Some("user.updated".to_owned()),
            ..AuditFilter::default()
        },
    )
    .await;
    assert_eq!(events.len(), 3);
}

/// The org always keeps an active owner; refusals change nothing.
pub async fn last_owner_protected(store: Arc<dyn Store>) {
    let store = &*store;
    let world = bootstrapped(store).await;
    let admin = &world.admin;
    let demote = UserPatch {
        role: Some(OrgRole::Admin),
        ..UserPatch::default()
    };
    let deactivate = UserPatch {
        active: Some(false),
        ..UserPatch::default()
    };
    let reactivate = UserPatch {
        active: Some(true),
        ..UserPatch::default()
    };
    let v = store.current_version().await.unwrap();
    let events = audit_where(store, AuditFilter::default()).await.len();
    assert_eq!(
        store
            .update_user(at(1), &admin.id, demote.clone(), event("user.updated"))
            .await,
        Err(StoreError::LastOwner)
    );
    assert_eq!(
        store
            .update_user(at(1), &admin.id, deactivate.clone(), event("user.updated"))
            .await,
        Err(StoreError::LastOwner)
    );
    assert_eq!(store.get_user(&admin.id).await.unwrap(), *admin);
    expect_no_change(store, v).await;
    assert_eq!(
        audit_where(store, AuditFilter::default()).await.len(),
        events
    );

    // An inactive owner does not count.
    let dormant = add_user(store, &world, "dormant", OrgRole::Owner).await;
    store
        .update_user(
            at(2),
            &dormant.id,
            deactivate.clone(),
            event("user.updated"),
        )
        .await
        .unwrap();
    assert_eq!(
        store
            .update_user(at(3), &admin.id, demote.clone(), event("user.updated"))
            .await,
        Err(StoreError::LastOwner)
    );

    // With a second active owner, either may go, but not both.
    let bob = add_user(store, &world, "bob", OrgRole::Owner).await;
    let updated = store
        .update_user(at(4), &admin.id, deactivate.clone(), event("user.updated"))
        .await
        .unwrap();
    assert!(!updated.active);
    assert_eq!(
        store
            .update_user(at(5), &bob.id, demote.clone(), event("user.updated"))
            .await,
        Err(StoreError::LastOwner)
    );
    store
        .update_user(at(6), &admin.id, reactivate, event("user.updated"))
        .await
        .unwrap();
    let bob = store
        .update_user(at(7), &bob.id, demote, event("user.updated"))
        .await
        .unwrap();
    assert_eq!(bob.role, OrgRole::Admin);
    // Changes that do not touch ownership are never refused.
    store
        .update_user(
            at(8),
            &admin.id,
            UserPatch {
                display_name: Some(Some("Root".to_owned())),
                ..UserPatch::default()
            },
            event("user.updated"),
        )
        .await
        .unwrap();
}

/// Sessions: create, find by hash, touch, delete (idempotent).
pub async fn sessions_lifecycle(store: Arc<dyn Store>) {
    let store = &*store;
    let world = bootstrapped(store).await;
    let session = session_record(&world.admin.id, t0());
    let hash = hash_of("session secret");
    store
        .create_session(t0(), session.clone(), hash, event("session.created"))
        .await
        .unwrap();
    assert_eq!(
        store.find_session(&hash).await.unwrap(),
        Some(session.clone())
    );
    assert_eq!(store.find_session(&hash_of("other")).await.unwrap(), None);

    store.touch_session(&session.id, at(60)).await.unwrap();
    let touched = store.find_session(&hash).await.unwrap().unwrap();
    assert_eq!(touched.last_seen_at, at(60));
    assert_eq!(touched.created_at, session.created_at);
    assert_eq!(touched.expires_at, session.expires_at);
    store.touch_session(&new_id(), at(60)).await.unwrap();

    store
        .delete_session(at(70), &session.id, Some(event("session.deleted")))
        .await
        .unwrap();
    assert_eq!(store.find_session(&hash).await.unwrap(), None);
    store
        .delete_session(at(71), &session.id, None)
        .await
        .unwrap();
    let events = audit_where(
        store,
        AuditFilter {
            action: Some("session.deleted".to_owned()),
            ..AuditFilter::default()
        },
    )
    .await;
    assert_eq!(events.len(), 1);
    assert_eq!(
        audit_where(
            store,
            AuditFilter {
                action: Some("session.created".to_owned()),
                ..AuditFilter::default()
            },
        )
        .await
        .len(),
        1
    );
}

/// Deactivating a user or changing their password ends their sessions, nobody else's.
pub async fn sessions_end_on_deactivation_and_password_change(store: Arc<dyn Store>) {
    let store = &*store;
    let world = bootstrapped(store).await;
    let bob = add_user(store, &world, "bob", OrgRole::Member).await;
    let admin_hash = hash_of("admin session");
    store
        .create_session(
            t0(),
            session_record(&world.admin.id, t0()),
            admin_hash,
            event("session.created"),
        )
        .await
        .unwrap();
    let bob_hashes = [hash_of("bob 1"), hash_of("bob 2")];
    for hash in bob_hashes {
        store
            .create_session(
                t0(),
                session_record(&bob.id, t0()),
                hash,
                event("session.created"),
            )
            .await
            .unwrap();
    }

    store
        .update_user(
            at(1),
            &bob.id,
            UserPatch {
                display_name: Some(Some("Bob".to_owned())),
                ..UserPatch::default()
            },
            event("user.updated"),
        )
        .await
        .unwrap();
    for hash in &bob_hashes {
        assert!(store.find_session(hash).await.unwrap().is_some());
    }

    store
        .update_user(
            at(2),
            &bob.id,
            UserPatch {
                password_hash: Some("$argon2id$changed".to_owned()),
                ..UserPatch::default()
            },
            event("user.password_changed"),
        )
        .await
        .unwrap();
    for hash in &bob_hashes {
        assert!(store.find_session(hash).await.unwrap().is_none());
    }
    assert!(store.find_session(&admin_hash).await.unwrap().is_some());

    let again = hash_of("bob 3");
    store
        .create_session(
            at(3),
            session_record(&bob.id, at(3)),
            again,
            event("session.created"),
        )
        .await
        .unwrap();
    store
        .update_user(
            at(4),
            &bob.id,
            UserPatch {
                active: Some(false),
                ..UserPatch::default()
            },
            event("user.deactivated"),
        )
        .await
        .unwrap();
    assert!(store.find_session(&again).await.unwrap().is_none());
    assert!(store.find_session(&admin_hash).await.unwrap().is_some());
    store
        .update_user(
            at(5),
            &bob.id,
            UserPatch {
                active: Some(true),
                ..UserPatch::default()
            },
            event("user.reactivated"),
        )
        .await
        .unwrap();
    assert!(store.find_session(&again).await.unwrap().is_none());
}

/// Workspaces: create (with creator), name conflicts, find by name, pages.
pub async fn workspaces_crud(store: Arc<dyn Store>) {
    let store = &*store;
    let world = bootstrapped(store).await;
    let ws = workspace_record(&world.org.id, "Alpha");
    let v = store.current_version().await.unwrap();
    let created = store
        .create_workspace(
            t0(),
            ws.clone(),
            Some((world.admin.id.clone(), WorkspaceRole::Admin)),
            event("workspace.created"),
        )
        .await
        .unwrap();
    assert_eq!(created, ws);
    expect_one_change(store, v, ChangeKind::User, &world.admin.id).await;
    assert_eq!(store.get_workspace(&ws.id).await.unwrap(), ws);
    let member = store
        .get_membership(&ws.id, &world.admin.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(member.role, WorkspaceRole::Admin);
    assert_eq!(member.workspace_name, "Alpha");

    let dup = store
        .create_workspace(
            t0(),
            workspace_record(&world.org.id, "Alpha"),
            None,
            event("workspace.created"),
        )
        .await;
    match &dup {
        Err(StoreError::Conflict(message)) => assert!(message.contains("name"), "{message}"),
        other => panic!("expected a conflict, got {other:?}"),
    }

    assert_eq!(
        store
            .find_workspace_by_name(&world.org.id, "Alpha")
            .await
            .unwrap(),
        Some(ws.clone())
    );
    assert_eq!(
        store
            .find_workspace_by_name(&world.org.id, "Nope")
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .find_workspace_by_name(&new_id(), "Alpha")
            .await
            .unwrap(),
        None
    );

    // An unknown creator is refused and nothing is created.
    let ghost = workspace_record(&world.org.id, "Ghost");
    assert!(is_not_found(
        store
            .create_workspace(
                t0(),
                ghost,
                Some((new_id(), WorkspaceRole::Admin)),
                event("workspace.created"),
            )
            .await
    ));
    assert_eq!(
        store
            .find_workspace_by_name(&world.org.id, "Ghost")
            .await
            .unwrap(),
        None
    );

    let beta = add_workspace(store, &world, "Beta").await;
    let gamma = add_workspace(store, &world, "Gamma").await;
    let mut expected = vec![
        world.workspace.id.clone(),
        ws.id.clone(),
        beta.id.clone(),
        gamma.id.clone(),
    ];
    expected.sort();
    expected.reverse();
    let first = store
        .list_workspaces(&world.org.id, &PageRequest::first(3))
        .await
        .unwrap();
    assert_eq!(first.items.len(), 3);
    assert_eq!(first.next_cursor.as_ref(), Some(&first.items[2].id));
    let second = store
        .list_workspaces(
            &world.org.id,
            &PageRequest {
                limit: 3,
                cursor: first.next_cursor.clone(),
            },
        )
        .await
        .unwrap();
    assert_eq!(second.items.len(), 1);
    assert_eq!(second.next_cursor, None);
    let all: Vec<String> = first
        .items
        .iter()
        .chain(&second.items)
        .map(|w| w.id.clone())
        .collect();
    assert_eq!(all, expected);
}

/// Memberships: add, change role (keeping `created_at`), list, remove.
pub async fn memberships(store: Arc<dyn Store>) {
    let store = &*store;
    let world = bootstrapped(store).await;
    let ws = add_workspace(store, &world, "Team").await;
    let other = add_workspace(store, &world, "Other").await;
    let bob = add_user(store, &world, "bob", OrgRole::Member).await;
    let carol = add_user(store, &world, "carol", OrgRole::Member).await;
    let dave = add_user(store, &world, "dave", OrgRole::Member).await;

    let v = store.current_version().await.unwrap();
    let m = store
        .put_member(
            t0(),
            &ws.id,
            &bob.id,
            WorkspaceRole::Member,
            event("member.put"),
        )
        .await
        .unwrap();
    let v = expect_one_change(store, v, ChangeKind::User, &bob.id).await;
    assert_eq!(m.workspace_id, ws.id);
    assert_eq!(m.workspace_name, "Team");
    assert_eq!(m.user_id, bob.id);
    assert_eq!(m.username, "bob");
    assert_eq!(m.role, WorkspaceRole::Member);
    assert_eq!(m.created_at, t0());
    assert_eq!(
        store.get_membership(&ws.id, &bob.id).await.unwrap(),
        Some(m)
    );

    let changed = store
        .put_member(
            at(60),
            &ws.id,
            &bob.id,
            WorkspaceRole::Viewer,
            event("member.put"),
        )
        .await
        .unwrap();
    expect_one_change(store, v, ChangeKind::User, &bob.id).await;
    assert_eq!(changed.role, WorkspaceRole::Viewer);
    assert_eq!(
        changed.created_at,
        t0(),
        "a role change keeps the membership's age"
    );

    for user in [&carol, &dave] {
        store
            .put_member(
                at(1),
                &ws.id,
                &user.id,
                WorkspaceRole::Admin,
                event("member.put"),
            )
            .await
            .unwrap();
    }
    store
        .put_member(
            at(2),
            &other.id,
            &bob.id,
            WorkspaceRole::Admin,
            event("member.put"),
        )
        .await
        .unwrap();
    let v = store.current_version().await.unwrap();

    // Pages of two over three members.
    let first = store
        .list_members(&ws.id, &PageRequest::first(2))
        .await
        .unwrap();
    assert_eq!(first.items.len(), 2);
    assert!(first.next_cursor.is_some());
    let second = store
        .list_members(
            &ws.id,
            &PageRequest {
                limit: 2,
                cursor: first.next_cursor.clone(),
            },
        )
        .await
        .unwrap();
    assert_eq!(second.items.len(), 1);
    assert_eq!(second.next_cursor, None);
    let listed = id_set(
        first
            .items
            .iter()
            .chain(&second.items)
            .map(|m| m.user_id.as_str()),
    );
    assert_eq!(
        listed,
        id_set([bob.id.as_str(), carol.id.as_str(), dave.id.as_str()])
    );

    let of_bob = store.memberships_of(&bob.id).await.unwrap();
    assert_eq!(
        of_bob
            .iter()
            .map(|m| (m.workspace_name.as_str(), m.role))
            .collect::<BTreeSet<_>>(),
        BTreeSet::from([
            ("Team", WorkspaceRole::Viewer),
            ("Other", WorkspaceRole::Admin)
        ])
    );

    store
        .remove_member(at(3), &ws.id, &bob.id, event("member.removed"))
        .await
        .unwrap();
    let v = expect_one_change(store, v, ChangeKind::User, &bob.id).await;
    assert_eq!(store.get_membership(&ws.id, &bob.id).await.unwrap(), None);
    assert!(is_not_found(
        store
            .remove_member(at(4), &ws.id, &bob.id, event("member.removed"))
            .await
    ));
    expect_no_change(store, v).await;
    assert_eq!(store.memberships_of(&bob.id).await.unwrap().len(), 1);

    assert!(is_not_found(
        store
            .put_member(
                at(5),
                &ws.id,
                &new_id(),
                WorkspaceRole::Member,
                event("member.put")
            )
            .await
    ));
    assert!(is_not_found(
        store
            .put_member(
                at(5),
                &new_id(),
                &bob.id,
                WorkspaceRole::Member,
                event("member.put")
            )
            .await
    ));
    assert_eq!(
        audit_where(
            store,
            AuditFilter {
                action: Some("member.removed".to_owned()),
                ..AuditFilter::default()
            }
        )
        .await
        .len(),
        1
    );
}

/// Projects: create, read, pages, unknown workspace.
pub async fn projects_crud(store: Arc<dyn Store>) {
    let store = &*store;
    let world = bootstrapped(store).await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let project = project_record(&world.workspace.id, &format!("P{i}"));
        let created = store
            .create_project(t0(), project.clone(), event("project.created"))
            .await
            .unwrap();
        assert_eq!(created, project);
        assert_eq!(store.get_project(&project.id).await.unwrap(), project);
        ids.push(project.id);
    }
    ids.sort();
    ids.reverse();
    let first = store
        .list_projects(&world.workspace.id, &PageRequest::first(3))
        .await
        .unwrap();
    let second = store
        .list_projects(
            &world.workspace.id,
            &PageRequest {
                limit: 3,
                cursor: first.next_cursor.clone(),
            },
        )
        .await
        .unwrap();
    assert_eq!(second.next_cursor, None);
    let listed: Vec<String> = first
        .items
        .iter()
        .chain(&second.items)
        .map(|p| p.id.clone())
        .collect();
    assert_eq!(listed, ids);
    assert!(
        store
            .list_projects(&new_id(), &PageRequest::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert!(is_not_found(
        store
            .create_project(
                t0(),
                project_record(&new_id(), "orphan"),
                event("project.created")
            )
            .await
    ));
}

/// Deleting a project deletes the tokens bound only to it and narrows the others, never
/// widening a token to "all projects".
pub async fn delete_project_cascade(store: Arc<dyn Store>) {
    let store = &*store;
    let world = bootstrapped(store).await;
    let ws = &world.workspace;
    let a = store
        .create_project(t0(), project_record(&ws.id, "A"), event("project.created"))
        .await
        .unwrap();
    let b = store
        .create_project(t0(), project_record(&ws.id, "B"), event("project.created"))
        .await
        .unwrap();
    let bound = |projects: Vec<String>| {
        let (mut token, secret) = token_record(&world.org.id, TokenType::Client, Some(ws), None);
        token.projects = projects;
        (token, secret)
    };
    let mut created = Vec::new();
    for projects in [
        vec![a.id.clone()],
        vec![a.id.clone(), b.id.clone()],
        vec![],
        vec![b.id.clone()],
    ] {
        let (token, secret) = bound(projects);
        let stored = store
            .create_token(
                t0(),
                token.clone(),
                secret.clone(),
                &unlimited(),
                event("token.created"),
            )
            .await
            .unwrap();
        assert_eq!(stored, token);
        created.push((stored, secret));
    }
    let [(only_a, only_a_secret), (a_and_b, _), (all, _), (only_b, _)] =
        <[_; 4]>::try_from(created).unwrap();

    let v = store.current_version().await.unwrap();
    let deleted = store
        .delete_project(at(10), &a.id, event("project.deleted"))
        .await
        .unwrap();
    assert_eq!(deleted, vec![only_a.id.clone()]);
    assert!(is_not_found(store.get_project(&a.id).await));
    assert!(is_not_found(store.get_token(&only_a.id).await));
    assert!(
        store
            .find_secret(&only_a_secret.hash)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        store.get_token(&a_and_b.id).await.unwrap().projects,
        vec![b.id.clone()]
    );
    assert_eq!(store.get_token(&all.id).await.unwrap(), all);
    assert_eq!(store.get_token(&only_b.id).await.unwrap(), only_b);
    assert_eq!(store.get_project(&b.id).await.unwrap(), b);

    let changes = store.changes_since(v, 100).await.unwrap();
    let changed: std::collections::HashSet<(ChangeKind, String)> =
        changes.iter().map(|c| (c.kind, c.id.clone())).collect();
    assert!(changed.contains(&(ChangeKind::Token, only_a.id.clone())));
    assert!(changed.contains(&(ChangeKind::Token, a_and_b.id.clone())));
    assert!(!changed.contains(&(ChangeKind::Token, all.id.clone())));
    let about_only_a = audit_of_token(store, &only_a.id).await;
    assert!(
        about_only_a.iter().any(|e| e.action == "token.deleted"),
        "{about_only_a:?}"
    );
    assert_eq!(
        audit_where(
            store,
            AuditFilter {
                action: Some("project.deleted".to_owned()),
                ..AuditFilter::default()
            }
        )
        .await
        .len(),
        1
    );
    assert!(is_not_found(
        store
            .delete_project(at(11), &a.id, event("project.deleted"))
            .await
    ));
}
