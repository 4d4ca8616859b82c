//! What every case builds on (fixed instants, records, a bootstrapped world, assertions)
//! and the cases about the store as it starts: fresh, bootstrap, hash key, settings, unknown ids.

use std::collections::BTreeSet;
use std::sync::Arc;

use latchkey_core::policy::Limits;
use latchkey_core::{
    HashKey, InstanceSettings, NewAuditEvent, OrgRecord, ProjectRecord, SecretHash, SecretRecord,
    SessionRecord, StoredState, TokenRecord, TokenSettings, UserRecord, WorkspaceRecord, new_id,
};
use latchkey_proto::{OrgRole, Scope, TokenCreators, TokenType, WorkspaceRole};
use serde_json::json;
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

use crate::{
    AuditFilter, BootstrapPlan, ChangeKind, PageRequest, SigningKeyRecord, Store, StoreError,
    TokenFilter, UserPatch,
};

/// The instant every case starts at (whole seconds, as stored).
pub fn t0() -> OffsetDateTime {
    datetime!(2030-01-01 00:00:00 UTC)
}

/// `t0() + secs`.
pub fn at(secs: i64) -> OffsetDateTime {
    t0() + Duration::seconds(secs)
}

/// An audit event with just an action.
pub fn event(action: &str) -> NewAuditEvent {
    NewAuditEvent {
        action: action.to_owned(),
        details: json!({}),
        ..NewAuditEvent::default()
    }
}

/// An audit event about a token (target `token`).
pub fn token_event(action: &str, token_id: &str) -> NewAuditEvent {
    NewAuditEvent {
        target_type: Some("token".to_owned()),
        target_id: Some(token_id.to_owned()),
        ..event(action)
    }
}

/// The keyed hash of `secret` under a fixed test key.
pub fn hash_of(secret: &str) -> SecretHash {
    HashKey::from_bytes(&[42; 32]).hash(secret)
}

/// A fresh secret and its record for `token_id`.
pub fn secret_for(token_id: &str) -> SecretRecord {
    SecretRecord {
        token_id: token_id.to_owned(),
        hash: hash_of(&new_id()),
        key_id: "test-key".to_owned(),
        not_after: None,
        hint: None,
        sealed: None,
    }
}

/// No limits.
pub fn unlimited() -> Limits {
    Limits::default()
}

/// A user record (active, created at `t0`).
pub fn user_record(org_id: &str, username: &str, role: OrgRole) -> UserRecord {
    UserRecord {
        id: new_id(),
        org_id: org_id.to_owned(),
        username: username.to_owned(),
        display_name: None,
        email: None,
        role,
        kind: latchkey_proto::UserKind::Human,
        active: true,
        password_hash: Some("$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaA".to_owned()),
        created_at: t0(),
    }
}

/// A workspace record.
pub fn workspace_record(org_id: &str, name: &str) -> WorkspaceRecord {
    WorkspaceRecord {
        id: new_id(),
        org_id: org_id.to_owned(),
        name: name.to_owned(),
        created_at: t0(),
    }
}

/// A project record.
pub fn project_record(workspace_id: &str, name: &str) -> ProjectRecord {
    ProjectRecord {
        id: new_id(),
        workspace_id: workspace_id.to_owned(),
        name: name.to_owned(),
        description: Some(format!("{name} description")),
        created_by: None,
        created_at: t0(),
    }
}

/// A token record of `token_type` with its secret, with the joined names filled in as the
/// store returns them. Legacy tokens get no workspace; personal ones expire in 30 days.
pub fn token_record(
    org_id: &str,
    token_type: TokenType,
    workspace: Option<&WorkspaceRecord>,
    owner: Option<&UserRecord>,
) -> (TokenRecord, SecretRecord) {
    let id = new_id();
    let workspace = workspace.filter(|_| token_type != TokenType::Legacy);
    let token = TokenRecord {
        id: id.clone(),
        org_id: org_id.to_owned(),
        name: format!("{} token", token_type.as_str()),
        token_type,
        hint: format!("lk{}_…{}", &token_type.as_str()[..1], &id[id.len() - 4..]),
        workspace_id: workspace.map(|w| w.id.clone()),
        workspace_name: workspace.map(|w| w.name.clone()),
        owner_id: owner.map(|u| u.id.clone()),
        owner_username: owner.map(|u| u.username.clone()),
        created_by: owner.map(|u| u.id.clone()),
        scopes: vec![Scope::ProjectsRead, Scope::TokensRead],
        projects: Vec::new(),
        environment: None,
        created_at: t0(),
        expires_at: (token_type == TokenType::Personal).then(|| t0() + Duration::days(30)),
        last_used_at: None,
        last_used_ip: None,
        state: StoredState::Active,
        leaked: false,
        policy: Default::default(),
        uses: None,
        recoverable: false,
    };
    let secret = secret_for(&id);
    (token, secret)
}

/// A first-start plan with fresh ids (admin username `admin-<suffix>`).
pub fn bootstrap_plan(suffix: &str) -> BootstrapPlan {
    let org = OrgRecord {
        id: new_id(),
        name: format!("Org {suffix}"),
        token_settings: TokenSettings::default(),
    };
    let workspace = workspace_record(&org.id, "Workspace 1");
    let admin = user_record(&org.id, &format!("admin-{suffix}"), OrgRole::Owner);
    let (mut token, secret) =
        token_record(&org.id, TokenType::Personal, Some(&workspace), Some(&admin));
    token.expires_at = Some(t0() + Duration::days(270));
    BootstrapPlan {
        org,
        workspace,
        admin,
        admin_workspace_role: WorkspaceRole::Admin,
        token,
        secret,
        instance: InstanceSettings::default(),
        event: NewAuditEvent {
            action: "instance.bootstrapped".to_owned(),
            target_type: Some("org".to_owned()),
            details: json!({ "suffix": suffix }),
            ..NewAuditEvent::default()
        },
    }
}

/// What a bootstrapped store holds.
#[derive(Debug, Clone)]
pub struct World {
    /// The org.
    pub org: OrgRecord,
    /// "Workspace 1".
    pub workspace: WorkspaceRecord,
    /// The owner.
    pub admin: UserRecord,
    /// The bootstrap token.
    pub token: TokenRecord,
    /// Its secret.
    pub secret: SecretRecord,
}

/// Bootstraps `store` and returns what it created.
pub async fn bootstrapped(store: &dyn Store) -> World {
    let plan = bootstrap_plan("main");
    assert!(store.bootstrap(t0(), plan.clone()).await.unwrap());
    World {
        org: plan.org,
        workspace: plan.workspace,
        admin: plan.admin,
        token: plan.token,
        secret: plan.secret,
    }
}

/// Creates a user in `world`'s org.
pub async fn add_user(
    store: &dyn Store,
    world: &World,
    username: &str,
    role: OrgRole,
) -> UserRecord {
    let user = user_record(&world.org.id, username, role);
    store
        .create_user(t0(), user, event("user.created"))
        .await
        .unwrap()
}

/// Creates a workspace in `world`'s org.
pub async fn add_workspace(store: &dyn Store, world: &World, name: &str) -> WorkspaceRecord {
    let ws = workspace_record(&world.org.id, name);
    store
        .create_workspace(t0(), ws, None, event("workspace.created"))
        .await
        .unwrap()
}

/// Creates a token without limits.
pub async fn add_token(
    store: &dyn Store,
    world: &World,
    token_type: TokenType,
    workspace: Option<&WorkspaceRecord>,
    owner: Option<&UserRecord>,
) -> TokenRecord {
    let (token, secret) = token_record(&world.org.id, token_type, workspace, owner);
    store
        .create_token(t0(), token, secret, &unlimited(), event("token.created"))
        .await
        .unwrap()
}

/// Every token matching `filter` (one page of up to 1000).
pub async fn tokens_where(
    store: &dyn Store,
    world: &World,
    filter: TokenFilter,
) -> Vec<TokenRecord> {
    let page = store
        .list_tokens(&world.org.id, &filter, &PageRequest::first(1000))
        .await
        .unwrap();
    assert!(page.next_cursor.is_none());
    assert_newest_first(page.items.iter().map(|t| t.id.as_str()));
    page.items
}

/// Ids of `items`, as a set.
pub fn id_set<'a>(items: impl IntoIterator<Item = &'a str>) -> BTreeSet<String> {
    items.into_iter().map(str::to_owned).collect()
}

/// Asserts ids are strictly decreasing (newest first).
pub fn assert_newest_first<'a>(ids: impl IntoIterator<Item = &'a str>) {
    let ids: Vec<&str> = ids.into_iter().collect();
    for pair in ids.windows(2) {
        assert!(pair[0] > pair[1], "not newest first: {ids:?}");
    }
}

/// Every audit event matching `filter` (one page of up to 1000).
pub async fn audit_where(
    store: &dyn Store,
    filter: AuditFilter,
) -> Vec<latchkey_proto::AuditEvent> {
    let page = store
        .list_audit(&filter, &PageRequest::first(1000))
        .await
        .unwrap();
    assert!(page.next_cursor.is_none());
    assert_newest_first(page.items.iter().map(|e| e.id.as_str()));
    page.items
}

/// Audit events about one token.
pub async fn audit_of_token(store: &dyn Store, token_id: &str) -> Vec<latchkey_proto::AuditEvent> {
    audit_where(
        store,
        AuditFilter {
            token_id: Some(token_id.to_owned()),
            ..AuditFilter::default()
        },
    )
    .await
}

/// Asserts that exactly one change was recorded after `before`, of `kind` about `id`, and
/// that the counter stands at its version; returns that version.
pub async fn expect_one_change(store: &dyn Store, before: i64, kind: ChangeKind, id: &str) -> i64 {
    let changes = store.changes_since(before, 100).await.unwrap();
    assert_eq!(
        changes.len(),
        1,
        "expected one {kind:?} change, got {changes:?}"
    );
    assert_eq!(changes[0].kind, kind, "{changes:?}");
    assert_eq!(changes[0].id, id, "{changes:?}");
    assert!(changes[0].version > before);
    assert_eq!(store.current_version().await.unwrap(), changes[0].version);
    changes[0].version
}

/// Asserts no change was recorded after `before`.
pub async fn expect_no_change(store: &dyn Store, before: i64) {
    assert_eq!(store.current_version().await.unwrap(), before);
    assert!(store.changes_since(before, 100).await.unwrap().is_empty());
}

/// A session of `user_id` made at `created` (it ends a week later).
pub fn session_record(user_id: &str, created: OffsetDateTime) -> SessionRecord {
    SessionRecord {
        id: new_id(),
        user_id: user_id.to_owned(),
        created_at: created,
        last_seen_at: created,
        expires_at: created + Duration::days(7),
    }
}

/// A signing key `id` made at `created`.
pub fn signing_key_record(id: &str, created: OffsetDateTime) -> SigningKeyRecord {
    SigningKeyRecord {
        id: id.to_owned(),
        algorithm: "EdDSA".to_owned(),
        public_key: vec![1; 32],
        private_key: vec![2; 48],
        created_at: created,
        retire_at: created + Duration::days(30),
        expires_at: created + Duration::days(40),
    }
}

pub(crate) fn is_not_found<T: std::fmt::Debug>(result: Result<T, StoreError>) -> bool {
    matches!(result, Err(StoreError::NotFound(_)))
}

pub(crate) fn is_conflict<T: std::fmt::Debug>(result: &Result<T, StoreError>) -> bool {
    matches!(result, Err(StoreError::Conflict(_)))
}

/// A migrated store is empty; migrating again is harmless.
pub async fn fresh_store_is_empty(store: Arc<dyn Store>) {
    let store = &*store;
    store.migrate().await.unwrap();
    store.ping().await.unwrap();
    assert_eq!(store.current_version().await.unwrap(), 0);
    assert!(store.changes_since(0, 100).await.unwrap().is_empty());
    assert!(is_not_found(store.get_org().await));
    assert!(is_not_found(store.get_instance_settings().await));
    assert_eq!(store.count_active_tokens().await.unwrap(), 0);
    assert!(store.list_signing_keys(t0()).await.unwrap().is_empty());
    assert!(audit_where(store, AuditFilter::default()).await.is_empty());
    assert!(
        store
            .find_secret(&hash_of("nothing"))
            .await
            .unwrap()
            .is_none()
    );
}

/// Migrating a store that is in use again changes nothing: every row and the change
/// counter stay as they were, and the store still answers.
pub async fn migrate_again_keeps_everything(store: Arc<dyn Store>) {
    let store = &*store;
    let world = bootstrapped(store).await;
    let token = add_token(
        store,
        &world,
        TokenType::Client,
        Some(&world.workspace),
        None,
    )
    .await;
    let version = store.current_version().await.unwrap();
    store.migrate().await.unwrap();
    store.migrate().await.unwrap();
    store.ping().await.unwrap();
    assert_eq!(store.get_token(&token.id).await.unwrap(), token);
    assert_eq!(store.get_user(&world.admin.id).await.unwrap(), world.admin);
    assert_eq!(store.current_version().await.unwrap(), version);
    assert_eq!(store.count_active_tokens().await.unwrap(), 2);
}

/// The first start happens once and creates everything in its plan.
pub async fn bootstrap_once(store: Arc<dyn Store>) {
    let store = &*store;
    let plan = bootstrap_plan("first");
    assert!(store.bootstrap(t0(), plan.clone()).await.unwrap());
    let again = bootstrap_plan("second");
    assert!(!store.bootstrap(at(1), again.clone()).await.unwrap());

    assert_eq!(store.get_org().await.unwrap(), plan.org);
    assert_eq!(store.get_instance_settings().await.unwrap(), plan.instance);
    assert_eq!(store.get_user(&plan.admin.id).await.unwrap(), plan.admin);
    assert!(is_not_found(store.get_user(&again.admin.id).await));
    assert_eq!(
        store.get_workspace(&plan.workspace.id).await.unwrap(),
        plan.workspace
    );
    let membership = store
        .get_membership(&plan.workspace.id, &plan.admin.id)
        .await
        .unwrap()
        .expect("the admin is a member of Workspace 1");
    assert_eq!(membership.role, WorkspaceRole::Admin);
    assert_eq!(membership.workspace_name, "Workspace 1");
    assert_eq!(membership.username, plan.admin.username);
    assert_eq!(store.get_token(&plan.token.id).await.unwrap(), plan.token);
    assert_eq!(
        store.find_secret(&plan.secret.hash).await.unwrap(),
        Some((plan.token.clone(), plan.secret.clone()))
    );
    assert_eq!(store.count_active_tokens().await.unwrap(), 1);
    let events = audit_where(store, AuditFilter::default()).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].action, "instance.bootstrapped");
    assert_eq!(events[0].details, json!({ "suffix": "first" }));
    assert_eq!(events[0].created_at, t0());
    let changes = store.changes_since(0, 100).await.unwrap();
    assert!(!changes.is_empty());
    assert_eq!(
        store.current_version().await.unwrap(),
        changes.last().unwrap().version
    );
}

/// Concurrent first starts on one store: exactly one does it.
pub async fn bootstrap_concurrent(store: Arc<dyn Store>) {
    let plans: Vec<BootstrapPlan> = (0..4).map(|i| bootstrap_plan(&format!("c{i}"))).collect();
    let tasks: Vec<_> = plans
        .iter()
        .cloned()
        .map(|plan| {
            let store = store.clone();
            tokio::spawn(async move { store.bootstrap(t0(), plan).await })
        })
        .collect();
    let mut winners = Vec::new();
    for (i, task) in tasks.into_iter().enumerate() {
        if task.await.unwrap().unwrap() {
            winners.push(i);
        }
    }
    assert_eq!(winners.len(), 1, "exactly one bootstrap wins: {winners:?}");
    let winner = &plans[winners[0]];
    assert_eq!(store.get_org().await.unwrap(), winner.org);
    for (i, plan) in plans.iter().enumerate() {
        let found = store
            .find_user_by_username(&plan.admin.username)
            .await
            .unwrap();
        assert_eq!(found.is_some(), i == winners[0]);
    }
    assert_eq!(store.count_active_tokens().await.unwrap(), 1);
}

/// The hash key id is recorded once and any other is refused.
pub async fn hash_key_recorded_and_checked(store: Arc<dyn Store>) {
    store.ensure_hash_key("key-one").await.unwrap();
    store.ensure_hash_key("key-one").await.unwrap();
    assert_eq!(
        store.ensure_hash_key("key-two").await,
        Err(StoreError::HashKeyMismatch {
            stored: "key-one".to_owned()
        })
    );
    store.ensure_hash_key("key-one").await.unwrap();
}

/// Token settings and instance settings round-trip, with their events and changes.
pub async fn settings_roundtrip(store: Arc<dyn Store>) {
    let store = &*store;
    let world = bootstrapped(store).await;
    assert_eq!(world.org.token_settings, TokenSettings::default());

    let settings = TokenSettings {
        enabled_types: TokenType::Personal.bit() | TokenType::Client.bit(),
        personal_token_ttl_days: Some(30),
        max_tokens_per_user: None,
        token_creators: TokenCreators::Admins,
        recoverable_types: TokenType::Legacy.bit(),
        idle_revoke_days: Some(90),
        max_token_lifetime_days: Some(365),
        approval_required_types: TokenType::Admin.bit() | TokenType::Client.bit(),
    };
    let v = store.current_version().await.unwrap();
    let org = store
        .update_token_settings(
            at(5),
            &world.org.id,
            settings.clone(),
            event("org.settings"),
        )
        .await
        .unwrap();
    assert_eq!(org.token_settings, settings);
    assert_eq!(org.id, world.org.id);
    assert_eq!(store.get_org().await.unwrap(), org);
    let v = expect_one_change(store, v, ChangeKind::Org, &world.org.id).await;

    assert!(is_not_found(
        store
            .update_token_settings(at(5), &new_id(), settings, event("org.settings"))
            .await
    ));
    expect_no_change(store, v).await;

    let instance = InstanceSettings {
        max_active_tokens: None,
        default_token_lifetime_days: 90,
    };
    let stored = store
        .update_instance_settings(at(6), instance.clone(), event("instance.settings"))
        .await
        .unwrap();
    assert_eq!(stored, instance);
    assert_eq!(store.get_instance_settings().await.unwrap(), instance);
    expect_one_change(store, v, ChangeKind::Instance, "").await;

    let events = audit_where(
        store,
        AuditFilter {
            action: Some("org.settings".to_owned()),
            ..AuditFilter::default()
        },
    )
    .await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].created_at, at(5));
    let events = audit_where(
        store,
        AuditFilter {
            action: Some("instance.settings".to_owned()),
            ..AuditFilter::default()
        },
    )
    .await;
    assert_eq!(events.len(), 1);
}

/// Every method addressing one object answers `NotFound` for an unknown id.
pub async fn unknown_ids_are_not_found(store: Arc<dyn Store>) {
    let store = &*store;
    let world = bootstrapped(store).await;
    let id = new_id();
    let v = store.current_version().await.unwrap();
    assert!(is_not_found(store.get_user(&id).await));
    assert!(is_not_found(
        store
            .update_user(at(1), &id, UserPatch::default(), event("user.updated"))
            .await
    ));
    assert!(is_not_found(store.get_workspace(&id).await));
    assert_eq!(
        store.get_membership(&id, &world.admin.id).await.unwrap(),
        None
    );
    assert!(
        store
            .list_members(&id, &PageRequest::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert!(store.memberships_of(&id).await.unwrap().is_empty());
    assert!(is_not_found(
        store
            .remove_member(at(1), &world.workspace.id, &id, event("member.removed"))
            .await
    ));
    assert!(is_not_found(store.get_project(&id).await));
    assert!(is_not_found(
        store
            .delete_project(at(1), &id, event("project.deleted"))
            .await
    ));
    assert!(is_not_found(store.get_token(&id).await));
    assert!(is_not_found(
        store
            .revoke_token(at(1), &id, false, event("token.revoked"))
            .await
    ));
    assert!(is_not_found(
        store
            .restore_token(at(1), &id, &unlimited(), event("token.restored"))
            .await
    ));
    assert!(is_not_found(
        store
            .rotate_token(
                at(1),
                &id,
                secret_for(&id),
                None,
                None,
                None,
                event("token.rotated")
            )
            .await
    ));
    assert!(is_not_found(
        store.delete_token(at(1), &id, event("token.deleted")).await
    ));
    assert!(is_not_found(
        store
            .update_token_settings(at(1), &id, TokenSettings::default(), event("org.settings"))
            .await
    ));
    expect_no_change(store, v).await;
}
