//! The conformance suite every [`Store`] backend must pass.
//!
//! Each case is a public `async fn(Arc<dyn Store>)` that gets a fresh, migrated, empty
//! store and panics (through `assert!`) when the backend misbehaves. Run them:
//!
//! * one `#[tokio::test]` per case with [`store_conformance_tests!`](crate::store_conformance_tests)
//!   (readable failures, `cargo test <case>` filters), or
//! * all at once with [`run_all`], which reports every failed case by name.
//!
//! The cases use only the [`Store`] trait, fixed whole-second instants (see [`t0`]) and ids
//! from [`latchkey_core::new_id`], so a PostgreSQL backend runs them unchanged. They need a
//! multi-threaded Tokio runtime for the concurrency cases.

// A failed expectation here *is* the failure report: this module is test code.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use latchkey_core::policy::{Limits, Visibility};
use latchkey_core::{
    HashKey, InstanceSettings, NewAuditEvent, OrgRecord, ProjectRecord, SecretHash, SecretRecord,
    SessionRecord, StoredState, TokenRecord, TokenSettings, UserRecord, WorkspaceRecord, new_id,
};
use latchkey_proto::{OrgRole, Scope, TokenCreators, TokenType, WorkspaceRole};
use serde_json::json;
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

use crate::{
    AuditFilter, BootstrapPlan, ChangeKind, IdempotencyRecord, LastUsed, PageRequest, Purged,
    Retention, SigningKeyRecord, Store, StoreError, TokenFilter, UserPatch,
};

mod events;
pub use events::*;

// --- running -------------------------------------------------------------------------------

/// One case: takes a fresh, migrated, empty store.
pub type Case = fn(Arc<dyn Store>) -> Pin<Box<dyn Future<Output = ()> + Send>>;

macro_rules! cases {
    ($($name:ident),* $(,)?) => {
        /// Every case with its name, in a stable order.
        pub const CASES: &[(&str, Case)] = &[
            $((stringify!($name), |store| Box::pin($name(store)))),*
        ];
    };
}

cases!(
    fresh_store_is_empty,
    bootstrap_once,
    bootstrap_concurrent,
    hash_key_recorded_and_checked,
    settings_roundtrip,
    users_crud,
    last_owner_protected,
    sessions_lifecycle,
    sessions_end_on_deactivation_and_password_change,
    workspaces_crud,
    memberships,
    projects_crud,
    delete_project_cascade,
    tokens_create_get_list,
    token_pagination,
    limit_max_active_tokens,
    limit_max_tokens_per_user,
    concurrent_creates_respect_limits,
    one_legacy_token_per_user,
    find_secret_by_hash,
    revoke_and_restore,
    rotate_with_grace,
    rotate_without_grace,
    idempotency_records,
    delete_token_removes_secrets,
    last_used_merges_by_latest,
    expire_tokens_sweep,
    audit_filters,
    change_feed,
    signing_keys,
    unknown_ids_are_not_found,
    purge_retired_rows,
    webhooks_crud,
    outbox_written_with_change,
    delivery_claims_and_attempts,
    expiry_notices_once_each,
    count_expiring_windows,
);

/// Runs every case, each on a store from `make` (fresh, migrated, empty), and panics
/// listing every case that failed. Needs a multi-threaded Tokio runtime.
pub async fn run_all<F, Fut>(make: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn Store>>,
{
    let mut failures = Vec::new();
    for (name, case) in CASES {
        let store = make().await;
        if let Err(err) = tokio::spawn(case(store)).await {
            let message = if err.is_panic() {
                let payload = err.into_panic();
                payload
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                    .unwrap_or_else(|| "panicked".to_owned())
            } else {
                err.to_string()
            };
            failures.push(format!("{name}: {message}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} conformance cases failed:\n{}",
        failures.len(),
        CASES.len(),
        failures.join("\n")
    );
}

/// Two stores on one database (two processes on one SQLite file, two nodes on one
/// PostgreSQL database): creates through both at once cannot overshoot a limit, and both
/// read one gapless change feed. `b` must be migrated and empty; `a` shares its database.
pub async fn two_stores_share_limits_and_changes(a: Arc<dyn Store>, b: Arc<dyn Store>) {
    let plan = bootstrap_plan("shared");
    assert!(b.bootstrap(t0(), plan.clone()).await.unwrap());
    let limits = Limits {
        max_active_tokens: Some(8),
        max_tokens_per_user: None,
    };
    let tasks: Vec<_> = (0..24)
        .map(|i| {
            let store = if i % 2 == 0 { a.clone() } else { b.clone() };
            let limits = limits.clone();
            let (token, secret) =
                token_record(&plan.org.id, TokenType::Client, Some(&plan.workspace), None);
            tokio::spawn(async move {
                store
                    .create_token(t0(), token, secret, &limits, event("token.created"))
                    .await
            })
        })
        .collect();
    let mut created = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => created += 1,
            Err(StoreError::LimitExceeded { .. }) => {}
            Err(other) => panic!("unexpected error: {other:?}"),
        }
    }
    assert_eq!(created, 7, "the bootstrap token holds the eighth slot");
    assert_eq!(a.count_active_tokens().await.unwrap(), 8);
    let version = a.current_version().await.unwrap();
    assert_eq!(version, b.current_version().await.unwrap());
    let feed = a.changes_since(0, 1000).await.unwrap();
    assert_eq!(feed.last().unwrap().version, version);
    for pair in feed.windows(2) {
        assert_eq!(pair[0].version + 1, pair[1].version, "no gaps: {feed:?}");
    }
}

/// What a store factory hands a case: the store alone, or the store with a guard (a
/// temporary directory, a scratch database) that is dropped once the case is over, or
/// `None` when the backend cannot be had here (the factory prints why; the case is
/// skipped).
pub trait CaseStore: Send + 'static {
    /// The store and the guard to drop after the case; `None` skips the case.
    fn into_parts(self) -> Option<(Arc<dyn Store>, Box<dyn std::any::Any + Send>)>;
}

impl CaseStore for Arc<dyn Store> {
    fn into_parts(self) -> Option<(Arc<dyn Store>, Box<dyn std::any::Any + Send>)> {
        Some((self, Box::new(())))
    }
}

impl<G: Send + 'static> CaseStore for (Arc<dyn Store>, G) {
    fn into_parts(self) -> Option<(Arc<dyn Store>, Box<dyn std::any::Any + Send>)> {
        Some((self.0, Box::new(self.1)))
    }
}

impl<T: CaseStore> CaseStore for Option<T> {
    fn into_parts(self) -> Option<(Arc<dyn Store>, Box<dyn std::any::Any + Send>)> {
        self.and_then(CaseStore::into_parts)
    }
}

/// Generates one `#[tokio::test]` per conformance case, each on a store from `$make`: a
/// path to an `async fn` giving a fresh, migrated, empty store as a [`CaseStore`]
/// (`Arc<dyn Store>`, or `(Arc<dyn Store>, guard)` to clean up after the case, or an
/// `Option` of either, `None` skipping the case). The
/// calling crate needs `tokio` (with `macros` and `rt-multi-thread`) as a dependency.
///
/// ```ignore
/// async fn fresh() -> (Arc<dyn Store>, tempfile::TempDir) { /* ... */ }
/// latchkey_store::store_conformance_tests!(fresh);
/// ```
#[macro_export]
macro_rules! store_conformance_tests {
    ($make:path) => {
        $crate::__store_conformance_tests!(
            $make;
            fresh_store_is_empty,
            bootstrap_once,
            bootstrap_concurrent,
            hash_key_recorded_and_checked,
            settings_roundtrip,
            users_crud,
            last_owner_protected,
            sessions_lifecycle,
            sessions_end_on_deactivation_and_password_change,
            workspaces_crud,
            memberships,
            projects_crud,
            delete_project_cascade,
            tokens_create_get_list,
            token_pagination,
            limit_max_active_tokens,
            limit_max_tokens_per_user,
            concurrent_creates_respect_limits,
            one_legacy_token_per_user,
            find_secret_by_hash,
            revoke_and_restore,
            rotate_with_grace,
            rotate_without_grace,
            idempotency_records,
            delete_token_removes_secrets,
            last_used_merges_by_latest,
            expire_tokens_sweep,
            audit_filters,
            change_feed,
            signing_keys,
            unknown_ids_are_not_found,
            purge_retired_rows,
            webhooks_crud,
            outbox_written_with_change,
            delivery_claims_and_attempts,
            expiry_notices_once_each,
            count_expiring_windows,
        );
    };
}

/// Implementation detail of [`store_conformance_tests!`](crate::store_conformance_tests).
#[doc(hidden)]
#[macro_export]
macro_rules! __store_conformance_tests {
    ($make:path; $($case:ident),* $(,)?) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let Some((store, guard)) =
                    $crate::conformance::CaseStore::into_parts($make().await)
                else {
                    return;
                };
                $crate::conformance::$case(store).await;
                drop(guard);
            }
        )*

        #[test]
        fn conformance_generates_every_case() {
            let generated: &[&str] = &[$(stringify!($case)),*];
            let listed: ::std::vec::Vec<&str> =
                $crate::conformance::CASES.iter().map(|(name, _)| *name).collect();
            assert_eq!(generated, listed.as_slice());
        }
    };
}

// --- helpers -------------------------------------------------------------------------------

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

pub(crate) fn is_not_found<T: std::fmt::Debug>(result: Result<T, StoreError>) -> bool {
    matches!(result, Err(StoreError::NotFound(_)))
}

fn is_conflict<T: std::fmt::Debug>(result: &Result<T, StoreError>) -> bool {
    matches!(result, Err(StoreError::Conflict(_)))
}

// --- lifecycle -----------------------------------------------------------------------------

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

// --- settings ------------------------------------------------------------------------------

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

// --- users ---------------------------------------------------------------------------------

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
            .list_users(&world.org.id, &PageRequest { limit: 2, cursor })
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
            .list_users(&new_id(), &PageRequest::default())
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

// --- sessions ------------------------------------------------------------------------------

fn session_record(user_id: &str, created: OffsetDateTime) -> SessionRecord {
    SessionRecord {
        id: new_id(),
        user_id: user_id.to_owned(),
        created_at: created,
        last_seen_at: created,
        expires_at: created + Duration::days(7),
    }
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

// --- workspaces and members ----------------------------------------------------------------

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

// --- projects ------------------------------------------------------------------------------

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

// --- tokens --------------------------------------------------------------------------------

/// Tokens: create, get with joined names, list with every filter and the visibility rule.
pub async fn tokens_create_get_list(store: Arc<dyn Store>) {
    let store = &*store;
    let world = bootstrapped(store).await;
    let ws = &world.workspace;
    let ws2 = add_workspace(store, &world, "Second").await;
    let admin = &world.admin;
    let bob = add_user(store, &world, "bob", OrgRole::Member).await;

    let (mut full, full_secret) =
        token_record(&world.org.id, TokenType::Client, Some(ws), Some(admin));
    full.owner_id = None;
    full.owner_username = None;
    full.projects = vec![new_id(), new_id()];
    full.environment = Some("production".to_owned());
    full.scopes = Scope::ALL.to_vec();
    full.expires_at = Some(at(86_400));
    full.name = "ci <deploy> & 'quotes' \"double\" ünïcødé".to_owned();
    let stored = store
        .create_token(
            t0(),
            full.clone(),
            full_secret,
            &unlimited(),
            event("token.created"),
        )
        .await
        .unwrap();
    assert_eq!(stored, full);
    assert_eq!(store.get_token(&full.id).await.unwrap(), full);

    let admin_personal = add_token(store, &world, TokenType::Personal, Some(ws), Some(admin)).await;
    let bob_personal = add_token(store, &world, TokenType::Personal, Some(ws), Some(&bob)).await;
    let bob_legacy = add_token(store, &world, TokenType::Legacy, None, Some(&bob)).await;
    let frontend = add_token(store, &world, TokenType::Frontend, Some(ws), None).await;
    let admin_type = add_token(store, &world, TokenType::Admin, Some(ws), None).await;
    let bob_personal2 = add_token(store, &world, TokenType::Personal, Some(&ws2), Some(&bob)).await;
    let client2 = add_token(store, &world, TokenType::Client, Some(&ws2), None).await;

    assert_eq!(
        bob_personal.workspace_name.as_deref(),
        Some(ws.name.as_str())
    );
    assert_eq!(bob_personal.owner_username.as_deref(), Some("bob"));
    assert_eq!(bob_legacy.workspace_id, None);
    assert_eq!(bob_legacy.workspace_name, None);
    assert_eq!(bob_legacy.owner_username.as_deref(), Some("bob"));
    assert_eq!(frontend.owner_id, None);
    assert_eq!(frontend.owner_username, None);

    let ids = |tokens: Vec<TokenRecord>| -> BTreeSet<String> {
        tokens.into_iter().map(|t| t.id).collect()
    };
    let set = |tokens: &[&TokenRecord]| -> BTreeSet<String> {
        tokens.iter().map(|t| t.id.clone()).collect()
    };

    let everything = tokens_where(store, &world, TokenFilter::default()).await;
    assert_eq!(everything.len(), 9);
    assert!(everything.contains(&full));
    assert!(everything.contains(&bob_legacy));

    assert_eq!(
        ids(tokens_where(
            store,
            &world,
            TokenFilter {
                workspace_id: Some(ws.id.clone()),
                ..TokenFilter::default()
            }
        )
        .await),
        set(&[
            &world.token,
            &full,
            &admin_personal,
            &bob_personal,
            &frontend,
            &admin_type
        ])
    );
    assert_eq!(
        ids(tokens_where(
            store,
            &world,
            TokenFilter {
                owner_id: Some(bob.id.clone()),
                ..TokenFilter::default()
            }
        )
        .await),
        set(&[&bob_personal, &bob_legacy, &bob_personal2])
    );
    assert_eq!(
        ids(tokens_where(
            store,
            &world,
            TokenFilter {
                token_type: Some(TokenType::Client),
                ..TokenFilter::default()
            }
        )
        .await),
        set(&[&full, &client2])
    );
    assert_eq!(
        ids(tokens_where(
            store,
            &world,
            TokenFilter {
                token_type: Some(TokenType::Personal),
                workspace_id: Some(ws2.id.clone()),
                ..TokenFilter::default()
            }
        )
        .await),
        set(&[&bob_personal2])
    );

    // Visibility: the filter lists exactly what `Visibility::allows` lets a read by id see,
    // for every kind of caller, alone and within one workspace.
    let in_ws = |v: Visibility| v.within(Some(ws.id.as_str()));
    let callers = [
        (
            "org admin",
            Visibility::for_user(&admin.id, OrgRole::Admin, []),
        ),
        (
            "member of ws, viewer of ws2",
            Visibility::for_user(
                &bob.id,
                OrgRole::Member,
                [
                    (ws.id.as_str(), WorkspaceRole::Member),
                    (ws2.id.as_str(), WorkspaceRole::Viewer),
                ],
            ),
        ),
        (
            "admin of both",
            Visibility::for_user(
                &bob.id,
                OrgRole::Member,
                [
                    (ws.id.as_str(), WorkspaceRole::Admin),
                    (ws2.id.as_str(), WorkspaceRole::Admin),
                ],
            ),
        ),
        (
            "a token of a member of ws, viewer of ws2",
            Visibility::for_user(
                &bob.id,
                OrgRole::Member,
                [
                    (ws.id.as_str(), WorkspaceRole::Member),
                    (ws2.id.as_str(), WorkspaceRole::Viewer),
                ],
            )
            .through_token(),
        ),
        (
            "a token of a user without memberships",
            Visibility::for_user(&bob.id, OrgRole::Member, []).through_token(),
        ),
        (
            "no memberships",
            Visibility::for_user(&bob.id, OrgRole::Member, []),
        ),
        (
            "a stranger",
            Visibility::for_user(&new_id(), OrgRole::Member, []),
        ),
        (
            "client token",
            Visibility::for_workspace_token(&ws.id, TokenType::Client),
        ),
        (
            "admin token",
            Visibility::for_workspace_token(&ws.id, TokenType::Admin),
        ),
        ("nothing", Visibility::nothing()),
        ("everything", Visibility::everything()),
    ];
    for (who, visibility) in callers {
        for (confined, visibility) in [(false, visibility.clone()), (true, in_ws(visibility))] {
            for workspace_id in [None, Some(ws.id.clone()), Some(ws2.id.clone())] {
                let filter = TokenFilter {
                    workspace_id: workspace_id.clone(),
                    visibility: Some(visibility.clone()),
                    ..TokenFilter::default()
                };
                let expected: BTreeSet<String> = everything
                    .iter()
                    .filter(|t| workspace_id.is_none() || t.workspace_id == workspace_id)
                    .filter(|t| {
                        visibility.allows(
                            t.token_type,
                            t.workspace_id.as_deref(),
                            t.owner_id.as_deref(),
                        )
                    })
                    .map(|t| t.id.clone())
                    .collect();
                assert_eq!(
                    ids(tokens_where(store, &world, filter).await),
                    expected,
                    "{who} (confined: {confined}) in {workspace_id:?}"
                );
            }
        }
    }
    // The rule itself, spelled out once for a member of `ws` (viewer of `ws2`).
    let bob_sees = Visibility::for_user(
        &bob.id,
        OrgRole::Member,
        [
            (ws.id.as_str(), WorkspaceRole::Member),
            (ws2.id.as_str(), WorkspaceRole::Viewer),
        ],
    );
    assert_eq!(
        ids(tokens_where(
            store,
            &world,
            TokenFilter {
                visibility: Some(bob_sees.clone()),
                ..TokenFilter::default()
            }
        )
        .await),
        set(&[&bob_personal, &bob_legacy, &bob_personal2, &full, &frontend])
    );
    assert_eq!(
        ids(tokens_where(
            store,
            &world,
            TokenFilter {
                visibility: Some(bob_sees.within(Some(&ws2.id))),
                ..TokenFilter::default()
            }
        )
        .await),
        set(&[&bob_personal2])
    );
    assert!(
        store
            .list_tokens(&new_id(), &TokenFilter::default(), &PageRequest::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
}

/// Token lists page newest first, with `next_cursor` only when more follow.
pub async fn token_pagination(store: Arc<dyn Store>) {
    let store = &*store;
    let world = bootstrapped(store).await;
    let ws = add_workspace(store, &world, "Paged").await;
    let mut expected = Vec::new();
    for _ in 0..7 {
        expected.push(
            add_token(store, &world, TokenType::Client, Some(&ws), None)
                .await
                .id,
        );
    }
    expected.sort();
    expected.reverse();
    let filter = TokenFilter {
        workspace_id: Some(ws.id.clone()),
        ..TokenFilter::default()
    };
    let mut seen = Vec::new();
    let mut sizes = Vec::new();
    let mut cursor = None;
    loop {
        let page = store
            .list_tokens(&world.org.id, &filter, &PageRequest { limit: 3, cursor })
            .await
            .unwrap();
        sizes.push(page.items.len());
        seen.extend(page.items.iter().map(|t| t.id.clone()));
        match page.next_cursor {
            Some(next) => {
                assert_eq!(Some(&next), seen.last());
                cursor = Some(next);
            }
            None => break,
        }
    }
    assert_eq!(sizes, vec![3, 3, 1]);
    assert_eq!(seen, expected);

    let exact = store
        .list_tokens(&world.org.id, &filter, &PageRequest::first(7))
        .await
        .unwrap();
    assert_eq!(exact.items.len(), 7);
    assert_eq!(exact.next_cursor, None);
    let short = store
        .list_tokens(&world.org.id, &filter, &PageRequest::first(6))
        .await
        .unwrap();
    assert_eq!(short.next_cursor.as_deref(), Some(expected[5].as_str()));
}

/// `max_active_tokens`: over the limit nothing changes; revoked and expired tokens do not
/// count.
pub async fn limit_max_active_tokens(store: Arc<dyn Store>) {
    let store = &*store;
    let world = bootstrapped(store).await;
    let ws = &world.workspace;
    let limits = Limits {
        max_active_tokens: Some(3),
        max_tokens_per_user: None,
    };
    let create = |token_type| {
        let (token, secret) = token_record(&world.org.id, token_type, Some(ws), None);
        let limits = limits.clone();
        async move {
            store
                .create_token(
                    at(1),
                    token.clone(),
                    secret.clone(),
                    &limits,
                    event("token.created"),
                )
                .await
                .map(|_| (token, secret))
        }
    };
    // The bootstrap token is one of the three.
    let (first, _) = create(TokenType::Client).await.unwrap();
    create(TokenType::Frontend).await.unwrap();

    let v = store.current_version().await.unwrap();
    let events = audit_where(store, AuditFilter::default()).await.len();
    let (token, secret) = token_record(&world.org.id, TokenType::Client, Some(ws), None);
    assert_eq!(
        store
            .create_token(
                at(1),
                token.clone(),
                secret.clone(),
                &limits,
                event("token.created")
            )
            .await,
        Err(StoreError::LimitExceeded {
            limit: "max_active_tokens",
            value: 3
        })
    );
    assert!(is_not_found(store.get_token(&token.id).await));
    assert!(store.find_secret(&secret.hash).await.unwrap().is_none());
    expect_no_change(store, v).await;
    assert_eq!(
        audit_where(store, AuditFilter::default()).await.len(),
        events
    );
    assert_eq!(store.count_active_tokens().await.unwrap(), 3);

    // A revoked token frees its slot.
    store
        .revoke_token(at(2), &first.id, false, event("token.revoked"))
        .await
        .unwrap();
    create(TokenType::Client).await.unwrap();
    assert!(matches!(
        create(TokenType::Client).await,
        Err(StoreError::LimitExceeded { .. })
    ));

    // So does one past its expiry, even before the sweep marks it.
    let (mut short, short_secret) = token_record(&world.org.id, TokenType::Client, Some(ws), None);
    short.expires_at = Some(at(100));
    let fresh = Limits {
        max_active_tokens: Some(4),
        ..Limits::default()
    };
    store
        .create_token(at(2), short, short_secret, &fresh, event("token.created"))
        .await
        .unwrap();
    let (later, later_secret) = token_record(&world.org.id, TokenType::Client, Some(ws), None);
    assert!(matches!(
        store
            .create_token(
                at(99),
                later.clone(),
                later_secret.clone(),
                &fresh,
                event("token.created")
            )
            .await,
        Err(StoreError::LimitExceeded { .. })
    ));
    store
        .create_token(at(100), later, later_secret, &fresh, event("token.created"))
        .await
        .unwrap();
}

/// `max_tokens_per_user`: counts the user's own active personal and legacy tokens only.
pub async fn limit_max_tokens_per_user(store: Arc<dyn Store>) {
    let store = &*store;
    let world = bootstrapped(store).await;
    let ws = &world.workspace;
    let bob = add_user(store, &world, "bob", OrgRole::Member).await;
    let carol = add_user(store, &world, "carol", OrgRole::Member).await;
    let per_user = |user: &UserRecord| Limits {
        max_active_tokens: None,
        max_tokens_per_user: Some((user.id.clone(), 2)),
    };
    let create = |token_type, user: &UserRecord| {
        let (token, secret) = token_record(&world.org.id, token_type, Some(ws), Some(user));
        let limits = per_user(user);
        async move {
            store
                .create_token(at(1), token, secret, &limits, event("token.created"))
                .await
        }
    };
    // Workspace tokens do not count against anybody.
    add_token(store, &world, TokenType::Client, Some(ws), None).await;
    let first = create(TokenType::Personal, &bob).await.unwrap();
    create(TokenType::Legacy, &bob).await.unwrap();
    let v = store.current_version().await.unwrap();
    assert_eq!(
        create(TokenType::Personal, &bob).await,
        Err(StoreError::LimitExceeded {
            limit: "max_tokens_per_user",
            value: 2
        })
    );
    expect_no_change(store, v).await;
    assert_eq!(
        tokens_where(
            store,
            &world,
            TokenFilter {
                owner_id: Some(bob.id.clone()),
                ..TokenFilter::default()
            }
        )
        .await
        .len(),
        2
    );
    // Another user has their own allowance.
    create(TokenType::Personal, &carol).await.unwrap();
    create(TokenType::Personal, &carol).await.unwrap();
    // Revoking frees a slot.
    store
        .revoke_token(at(2), &first.id, false, event("token.revoked"))
        .await
        .unwrap();
    create(TokenType::Personal, &bob).await.unwrap();
    assert!(matches!(
        create(TokenType::Personal, &bob).await,
        Err(StoreError::LimitExceeded { .. })
    ));
}

/// Concurrent creates at a limit cannot overshoot it.
pub async fn concurrent_creates_respect_limits(store: Arc<dyn Store>) {
    let world = bootstrapped(&*store).await;
    // Instance limit: one slot is the bootstrap token, five are free; twenty try.
    let limits = Limits {
        max_active_tokens: Some(6),
        max_tokens_per_user: None,
    };
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let store = store.clone();
            let limits = limits.clone();
            let (token, secret) = token_record(
                &world.org.id,
                TokenType::Client,
                Some(&world.workspace),
                None,
            );
            tokio::spawn(async move {
                store
                    .create_token(at(1), token, secret, &limits, event("token.created"))
                    .await
            })
        })
        .collect();
    let mut created = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => created += 1,
            Err(StoreError::LimitExceeded { limit, value }) => {
                assert_eq!((limit, value), ("max_active_tokens", 6));
            }
            Err(other) => panic!("unexpected error: {other:?}"),
        }
    }
    assert_eq!(created, 5);
    assert_eq!(store.count_active_tokens().await.unwrap(), 6);

    // Per-user limit.
    let bob = add_user(&*store, &world, "bob", OrgRole::Member).await;
    let limits = Limits {
        max_active_tokens: None,
        max_tokens_per_user: Some((bob.id.clone(), 3)),
    };
    let tasks: Vec<_> = (0..12)
        .map(|_| {
            let store = store.clone();
            let limits = limits.clone();
            let (token, secret) = token_record(
                &world.org.id,
                TokenType::Personal,
                Some(&world.workspace),
                Some(&bob),
            );
            tokio::spawn(async move {
                store
                    .create_token(at(1), token, secret, &limits, event("token.created"))
                    .await
            })
        })
        .collect();
    let mut created = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => created += 1,
            Err(StoreError::LimitExceeded { limit, .. }) => {
                assert_eq!(limit, "max_tokens_per_user");
            }
            Err(other) => panic!("unexpected error: {other:?}"),
        }
    }
    assert_eq!(created, 3);
    assert_eq!(store.count_active_tokens().await.unwrap(), 9);
}

/// At most one legacy token per user, whatever its state, until it is deleted.
pub async fn one_legacy_token_per_user(store: Arc<dyn Store>) {
    let store = &*store;
    let world = bootstrapped(store).await;
    let bob = add_user(store, &world, "bob", OrgRole::Member).await;
    let carol = add_user(store, &world, "carol", OrgRole::Member).await;
    let first = add_token(store, &world, TokenType::Legacy, None, Some(&bob)).await;
    let second = || {
        let (token, secret) = token_record(&world.org.id, TokenType::Legacy, None, Some(&bob));
        async move {
            store
                .create_token(at(1), token, secret, &unlimited(), event("token.created"))
                .await
        }
    };
    match second().await {
        Err(StoreError::Conflict(message)) => assert!(message.contains("legacy"), "{message}"),
        other => panic!("expected a conflict, got {other:?}"),
    }
    store
        .revoke_token(at(2), &first.id, false, event("token.revoked"))
        .await
        .unwrap();
    assert!(is_conflict(&second().await));
    add_token(store, &world, TokenType::Legacy, None, Some(&carol)).await;
    store
        .delete_token(at(3), &first.id, event("token.deleted"))
        .await
        .unwrap();
    second().await.unwrap();
    // Personal tokens are not affected.
    add_token(
        store,
        &world,
        TokenType::Personal,
        Some(&world.workspace),
        Some(&bob),
    )
    .await;
}

/// The verifier's cache miss: a secret's hash leads to its token.
pub async fn find_secret_by_hash(store: Arc<dyn Store>) {
    let store = &*store;
    let world = bootstrapped(store).await;
    let (token, secret) = token_record(
        &world.org.id,
        TokenType::Personal,
        Some(&world.workspace),
        Some(&world.admin),
    );
    store
        .create_token(
            t0(),
            token.clone(),
            secret.clone(),
            &unlimited(),
            event("token.created"),
        )
        .await
        .unwrap();
    let (found_token, found_secret) = store.find_secret(&secret.hash).await.unwrap().unwrap();
    assert_eq!(found_token, token);
    assert_eq!(found_secret, secret);
    assert_eq!(found_secret.token_id, token.id);
    assert!(
        store
            .find_secret(&hash_of("unknown"))
            .await
            .unwrap()
            .is_none()
    );
}

/// Revoke is idempotent; restore re-approves revoked tokens only, never leaked or expired
/// ones, and re-checks the limits.
pub async fn revoke_and_restore(store: Arc<dyn Store>) {
    let store = &*store;
    let world = bootstrapped(store).await;
    let ws = &world.workspace;
    let token = add_token(store, &world, TokenType::Client, Some(ws), None).await;

    let v = store.current_version().await.unwrap();
    let revoked = store
        .revoke_token(
            at(1),
            &token.id,
            false,
            token_event("token.revoked", &token.id),
        )
        .await
        .unwrap();
    let v = expect_one_change(store, v, ChangeKind::Token, &token.id).await;
    assert_eq!(revoked.state, StoredState::Revoked);
    assert!(!revoked.leaked);
    assert_eq!(revoked.name, token.name);
    let again = store
        .revoke_token(
            at(2),
            &token.id,
            false,
            token_event("token.revoked", &token.id),
        )
        .await
        .unwrap();
    assert_eq!(again, revoked);
    let v = expect_one_change(store, v, ChangeKind::Token, &token.id).await;

    let restored = store
        .restore_token(
            at(3),
            &token.id,
            &unlimited(),
            token_event("token.restored", &token.id),
        )
        .await
        .unwrap();
    expect_one_change(store, v, ChangeKind::Token, &token.id).await;
    assert_eq!(restored.state, StoredState::Active);
    assert_eq!(store.get_token(&token.id).await.unwrap(), restored);
    assert!(is_conflict(
        &store
            .restore_token(
                at(4),
                &token.id,
                &unlimited(),
                token_event("token.restored", &token.id)
            )
            .await
    ));
    let actions: Vec<String> = audit_of_token(store, &token.id)
        .await
        .into_iter()
        .map(|e| e.action)
        .collect();
    assert_eq!(
        actions.iter().filter(|a| *a == "token.revoked").count(),
        2,
        "{actions:?}"
    );
    assert_eq!(
        actions.iter().filter(|a| *a == "token.restored").count(),
        1,
        "{actions:?}"
    );

    // A leak report makes it unrestorable (also when reported on a revoked token).
    let leaked = store
        .revoke_token(at(5), &token.id, true, event("token.leaked"))
        .await
        .unwrap();
    assert_eq!(leaked.state, StoredState::Revoked);
    assert!(leaked.leaked);
    assert!(is_conflict(
        &store
            .restore_token(at(6), &token.id, &unlimited(), event("token.restored"))
            .await
    ));
    let plain = store
        .revoke_token(
            at(7),
            &token.id,
            false,
            token_event("token.revoked", &token.id),
        )
        .await
        .unwrap();
    assert!(plain.leaked, "a later plain revoke keeps the leak mark");
    assert_eq!(
        store.get_token(&token.id).await.unwrap().state,
        StoredState::Revoked
    );

    // Past its expiry it cannot come back.
    let (mut short, secret) = token_record(&world.org.id, TokenType::Client, Some(ws), None);
    short.expires_at = Some(at(100));
    store
        .create_token(
            at(1),
            short.clone(),
            secret,
            &unlimited(),
            event("token.created"),
        )
        .await
        .unwrap();
    store
        .revoke_token(at(50), &short.id, false, event("token.revoked"))
        .await
        .unwrap();
    assert!(is_conflict(
        &store
            .restore_token(at(100), &short.id, &unlimited(), event("token.restored"))
            .await
    ));
    assert_eq!(
        store.get_token(&short.id).await.unwrap().state,
        StoredState::Revoked
    );

    // Restoring counts like creating.
    let spare = add_token(store, &world, TokenType::Client, Some(ws), None).await;
    store
        .revoke_token(at(8), &spare.id, false, event("token.revoked"))
        .await
        .unwrap();
    let active = u32::try_from(store.count_active_tokens().await.unwrap()).unwrap();
    let full = Limits {
        max_active_tokens: Some(active),
        max_tokens_per_user: None,
    };
    assert_eq!(
        store
            .restore_token(at(9), &spare.id, &full, event("token.restored"))
            .await,
        Err(StoreError::LimitExceeded {
            limit: "max_active_tokens",
            value: active
        })
    );
    assert_eq!(
        store.get_token(&spare.id).await.unwrap().state,
        StoredState::Revoked
    );
    let roomy = Limits {
        max_active_tokens: Some(active + 1),
        max_tokens_per_user: None,
    };
    store
        .restore_token(at(9), &spare.id, &roomy, event("token.restored"))
        .await
        .unwrap();
}

/// Rotation with a grace period keeps the old secret until `not_after`; expiry is kept,
/// replaced or cleared as asked.
pub async fn rotate_with_grace(store: Arc<dyn Store>) {
    let store = &*store;
    let world = bootstrapped(store).await;
    let (token, old) = token_record(
        &world.org.id,
        TokenType::Client,
        Some(&world.workspace),
        None,
    );
    let mut token = token;
    token.expires_at = Some(at(86_400));
    store
        .create_token(
            t0(),
            token.clone(),
            old.clone(),
            &unlimited(),
            event("token.created"),
        )
        .await
        .unwrap();

    let new = secret_for(&token.id);
    let v = store.current_version().await.unwrap();
    let rotated = store
        .rotate_token(
            at(10),
            &token.id,
            new.clone(),
            Some(at(310)),
            None,
            None,
            event("token.rotated"),
        )
        .await
        .unwrap();
    expect_one_change(store, v, ChangeKind::Token, &token.id).await;
    assert_eq!(rotated, token, "metadata is unchanged by a plain rotation");
    let (_, old_found) = store.find_secret(&old.hash).await.unwrap().unwrap();
    assert_eq!(old_found.not_after, Some(at(310)));
    let (found_token, new_found) = store.find_secret(&new.hash).await.unwrap().unwrap();
    assert_eq!(new_found, new);
    assert_eq!(found_token.id, token.id);

    assert_eq!(store.purge_rotated_secrets(at(309)).await.unwrap(), 0);
    assert_eq!(store.purge_rotated_secrets(at(310)).await.unwrap(), 1);
    assert!(store.find_secret(&old.hash).await.unwrap().is_none());
    assert!(store.find_secret(&new.hash).await.unwrap().is_some());

    let newer = secret_for(&token.id);
    let extended = store
        .rotate_token(
            at(20),
            &token.id,
            newer.clone(),
            Some(at(60)),
            Some(Some(at(2 * 86_400))),
            None,
            event("token.rotated"),
        )
        .await
        .unwrap();
    assert_eq!(extended.expires_at, Some(at(2 * 86_400)));
    let cleared = store
        .rotate_token(
            at(30),
            &token.id,
            secret_for(&token.id),
            Some(at(80)),
            Some(None),
            None,
            event("token.rotated"),
        )
        .await
        .unwrap();
    assert_eq!(cleared.expires_at, None);
    // A later rotation never extends an earlier secret's grace.
    let (_, new_found) = store.find_secret(&new.hash).await.unwrap().unwrap();
    assert_eq!(new_found.not_after, Some(at(60)));
    // The new secret's hint replaces the token's.
    let mut hinted = secret_for(&token.id);
    hinted.hint = Some("lkc_…HINT".into());
    let with_hint = store
        .rotate_token(
            at(40),
            &token.id,
            hinted,
            Some(at(90)),
            None,
            None,
            event("token.rotated"),
        )
        .await
        .unwrap();
    assert_eq!(
        with_hint.hint, "lkc_…HINT",
        "a rotation stores the new hint"
    );
    assert_eq!(store.get_token(&token.id).await.unwrap().hint, "lkc_…HINT");
    let (_, newer_found) = store.find_secret(&newer.hash).await.unwrap().unwrap();
    assert_eq!(newer_found.not_after, Some(at(80)));
    assert_eq!(
        audit_where(
            store,
            AuditFilter {
                action: Some("token.rotated".to_owned()),
                ..AuditFilter::default()
            }
        )
        .await
        .len(),
        4
    );
}

/// Rotation without grace kills the old secret at once; a leak-revoked token comes back
/// (within the stored limits); a plainly revoked one stays revoked; expired ones refuse.
pub async fn rotate_without_grace(store: Arc<dyn Store>) {
    let store = &*store;
    let world = bootstrapped(store).await;
    let ws = &world.workspace;
    let (token, old) = token_record(&world.org.id, TokenType::Client, Some(ws), None);
    store
        .create_token(
            t0(),
            token.clone(),
            old.clone(),
            &unlimited(),
            event("token.created"),
        )
        .await
        .unwrap();
    let new = secret_for(&token.id);
    store
        .rotate_token(
            at(1),
            &token.id,
            new.clone(),
            None,
            None,
            None,
            event("token.rotated"),
        )
        .await
        .unwrap();
    assert!(store.find_secret(&old.hash).await.unwrap().is_none());
    assert!(store.find_secret(&new.hash).await.unwrap().is_some());

    // Leaked → rotate → active and no longer leaked.
    store
        .revoke_token(at(2), &token.id, true, event("token.leaked"))
        .await
        .unwrap();
    let back = store
        .rotate_token(
            at(3),
            &token.id,
            secret_for(&token.id),
            None,
            None,
            None,
            event("token.rotated"),
        )
        .await
        .unwrap();
    assert_eq!(back.state, StoredState::Active);
    assert!(!back.leaked);

    // Plainly revoked stays revoked.
    store
        .revoke_token(at(4), &token.id, false, event("token.revoked"))
        .await
        .unwrap();
    let still = store
        .rotate_token(
            at(5),
            &token.id,
            secret_for(&token.id),
            None,
            None,
            None,
            event("token.rotated"),
        )
        .await
        .unwrap();
    assert_eq!(still.state, StoredState::Revoked);

    // A leaked token's comeback needs a slot under the stored instance limit.
    let leaky = add_token(store, &world, TokenType::Client, Some(ws), None).await;
    store
        .revoke_token(at(6), &leaky.id, true, event("token.leaked"))
        .await
        .unwrap();
    let active = u32::try_from(store.count_active_tokens().await.unwrap()).unwrap();
    store
        .update_instance_settings(
            at(6),
            InstanceSettings {
                max_active_tokens: Some(active),
                default_token_lifetime_days: 270,
            },
            event("instance.settings"),
        )
        .await
        .unwrap();
    let refused_secret = secret_for(&leaky.id);
    assert!(matches!(
        store
            .rotate_token(
                at(7),
                &leaky.id,
                refused_secret.clone(),
                None,
                None,
                None,
                event("token.rotated")
            )
            .await,
        Err(StoreError::LimitExceeded { .. })
    ));
    assert!(
        store
            .find_secret(&refused_secret.hash)
            .await
            .unwrap()
            .is_none()
    );
    let unchanged = store.get_token(&leaky.id).await.unwrap();
    assert!(unchanged.leaked);
    assert_eq!(unchanged.state, StoredState::Revoked);

    // Expired is final.
    let (mut short, secret) = token_record(&world.org.id, TokenType::Client, Some(ws), None);
    short.expires_at = Some(at(100));
    store
        .create_token(
            at(1),
            short.clone(),
            secret,
            &unlimited(),
            event("token.created"),
        )
        .await
        .unwrap();
    assert!(is_conflict(
        &store
            .rotate_token(
                at(100),
                &short.id,
                secret_for(&short.id),
                None,
                Some(Some(at(10_000))),
                None,
                event("token.rotated")
            )
            .await
    ));
    assert_eq!(
        store.expire_tokens(at(100)).await.unwrap(),
        vec![short.id.clone()]
    );
    assert!(is_conflict(
        &store
            .rotate_token(
                at(50),
                &short.id,
                secret_for(&short.id),
                None,
                None,
                None,
                event("token.rotated")
            )
            .await
    ));
}

/// An idempotent rotate stores its answer in the same transaction; reuse of a live key is
/// a conflict that rolls the rotation back.
pub async fn idempotency_records(store: Arc<dyn Store>) {
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
    let record = IdempotencyRecord {
        key: "caller:rotate:abc".to_owned(),
        request_hash: vec![1, 2, 3],
        response: vec![9, 8, 7, 0, 255],
        created_at: at(10),
    };
    assert_eq!(
        store.get_idempotency(&record.key, t0()).await.unwrap(),
        None
    );
    store
        .rotate_token(
            at(10),
            &token.id,
            secret_for(&token.id),
            None,
            None,
            Some(record.clone()),
            event("token.rotated"),
        )
        .await
        .unwrap();
    assert_eq!(
        store
            .get_idempotency(&record.key, at(10) - Duration::hours(24))
            .await
            .unwrap(),
        Some(record.clone())
    );
    assert_eq!(
        store.get_idempotency(&record.key, at(10)).await.unwrap(),
        Some(record.clone())
    );
    assert_eq!(
        store.get_idempotency(&record.key, at(11)).await.unwrap(),
        None
    );
    assert_eq!(store.get_idempotency("other", t0()).await.unwrap(), None);

    let replay_secret = secret_for(&token.id);
    let v = store.current_version().await.unwrap();
    let replay = store
        .rotate_token(
            at(20),
            &token.id,
            replay_secret.clone(),
            None,
            None,
            Some(IdempotencyRecord {
                created_at: at(20),
                ..record.clone()
            }),
            event("token.rotated"),
        )
        .await;
    assert!(is_conflict(&replay), "{replay:?}");
    assert!(
        store
            .find_secret(&replay_secret.hash)
            .await
            .unwrap()
            .is_none()
    );
    expect_no_change(store, v).await;
    assert_eq!(
        store.get_idempotency(&record.key, t0()).await.unwrap(),
        Some(record)
    );
}

/// Deleting a token removes it and every secret of it.
pub async fn delete_token_removes_secrets(store: Arc<dyn Store>) {
    let store = &*store;
    let world = bootstrapped(store).await;
    let (token, old) = token_record(
        &world.org.id,
        TokenType::Client,
        Some(&world.workspace),
        None,
    );
    store
        .create_token(
            t0(),
            token.clone(),
            old.clone(),
            &unlimited(),
            event("token.created"),
        )
        .await
        .unwrap();
    let new = secret_for(&token.id);
    store
        .rotate_token(
            at(1),
            &token.id,
            new.clone(),
            Some(at(1000)),
            None,
            None,
            event("token.rotated"),
        )
        .await
        .unwrap();
    let v = store.current_version().await.unwrap();
    store
        .delete_token(at(2), &token.id, token_event("token.deleted", &token.id))
        .await
        .unwrap();
    expect_one_change(store, v, ChangeKind::Token, &token.id).await;
    assert!(is_not_found(store.get_token(&token.id).await));
    assert!(store.find_secret(&old.hash).await.unwrap().is_none());
    assert!(store.find_secret(&new.hash).await.unwrap().is_none());
    assert!(is_not_found(
        store
            .delete_token(at(3), &token.id, event("token.deleted"))
            .await
    ));
    let events = audit_of_token(store, &token.id).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].action, "token.deleted");
    assert_eq!(events[0].created_at, at(2));
    // Nothing is left to purge for it.
    assert_eq!(store.purge_rotated_secrets(at(5000)).await.unwrap(), 0);
}

/// Last-used observations merge by the latest time; unknown tokens are ignored.
pub async fn last_used_merges_by_latest(store: Arc<dyn Store>) {
    let store = &*store;
    let world = bootstrapped(store).await;
    let a = add_token(
        store,
        &world,
        TokenType::Client,
        Some(&world.workspace),
        None,
    )
    .await;
    let b = add_token(
        store,
        &world,
        TokenType::Client,
        Some(&world.workspace),
        None,
    )
    .await;
    let used = |token: &TokenRecord, secs: i64, ip: &str| LastUsed {
        token_id: token.id.clone(),
        at: at(secs),
        ip: Some(ip.to_owned()),
    };
    let v = store.current_version().await.unwrap();
    store.record_last_used(&[]).await.unwrap();
    store
        .record_last_used(&[
            used(&a, 10, "10.0.0.1"),
            used(&a, 5, "10.0.0.2"),
            LastUsed {
                token_id: new_id(),
                at: at(20),
                ip: None,
            },
        ])
        .await
        .unwrap();
    let got = store.get_token(&a.id).await.unwrap();
    assert_eq!(got.last_used_at, Some(at(10)));
    assert_eq!(got.last_used_ip.as_deref(), Some("10.0.0.1"));
    let untouched = store.get_token(&b.id).await.unwrap();
    assert_eq!(untouched.last_used_at, None);
    assert_eq!(untouched.last_used_ip, None);

    store
        .record_last_used(&[used(&a, 8, "10.0.0.3")])
        .await
        .unwrap();
    let got = store.get_token(&a.id).await.unwrap();
    assert_eq!(got.last_used_at, Some(at(10)));
    assert_eq!(got.last_used_ip.as_deref(), Some("10.0.0.1"));

    store
        .record_last_used(&[used(&a, 30, "10.0.0.4"), used(&b, 1, "10.0.0.5")])
        .await
        .unwrap();
    let got = store.get_token(&a.id).await.unwrap();
    assert_eq!(got.last_used_at, Some(at(30)));
    assert_eq!(got.last_used_ip.as_deref(), Some("10.0.0.4"));
    assert_eq!(
        store.get_token(&b.id).await.unwrap().last_used_at,
        Some(at(1))
    );
    // A flush is bookkeeping, not a change other nodes must react to.
    expect_no_change(store, v).await;
    // A flush for a deleted token does nothing.
    store
        .delete_token(at(40), &b.id, event("token.deleted"))
        .await
        .unwrap();
    store
        .record_last_used(&[used(&b, 50, "10.0.0.6")])
        .await
        .unwrap();
    assert!(is_not_found(store.get_token(&b.id).await));
}

/// The expiry sweep marks active tokens past their expiry, once, with one event each.
pub async fn expire_tokens_sweep(store: Arc<dyn Store>) {
    let store = &*store;
    let world = bootstrapped(store).await;
    let ws = &world.workspace;
    let bob = add_user(store, &world, "bob", OrgRole::Member).await;
    let create = |expires: Option<i64>, owner: Option<&UserRecord>| {
        let token_type = if owner.is_some() {
            TokenType::Personal
        } else {
            TokenType::Client
        };
        let (mut token, secret) = token_record(&world.org.id, token_type, Some(ws), owner);
        token.expires_at = expires.map(at);
        async move {
            store
                .create_token(t0(), token, secret, &unlimited(), event("token.created"))
                .await
                .unwrap()
        }
    };
    let p1 = create(Some(100), Some(&bob)).await;
    let p2 = create(Some(200), None).await;
    let forever = create(None, None).await;
    let revoked = create(Some(50), None).await;
    store
        .revoke_token(at(10), &revoked.id, false, event("token.revoked"))
        .await
        .unwrap();

    assert!(store.expire_tokens(at(99)).await.unwrap().is_empty());
    let v = store.current_version().await.unwrap();
    assert_eq!(
        store.expire_tokens(at(150)).await.unwrap(),
        vec![p1.id.clone()]
    );
    expect_one_change(store, v, ChangeKind::Token, &p1.id).await;
    assert_eq!(
        store.get_token(&p1.id).await.unwrap().state,
        StoredState::Expired
    );
    let events = audit_where(
        store,
        AuditFilter {
            action: Some("token.expired".to_owned()),
            ..AuditFilter::default()
        },
    )
    .await;
    assert_eq!(events.len(), 1);
    let e = &events[0];
    assert_eq!(e.actor_id, None);
    assert_eq!(e.target_type.as_deref(), Some("token"));
    assert_eq!(e.target_id.as_deref(), Some(p1.id.as_str()));
    assert_eq!(e.subject_user_id.as_deref(), Some(bob.id.as_str()));
    assert_eq!(e.workspace_id.as_deref(), Some(ws.id.as_str()));
    assert_eq!(e.created_at, at(150));

    assert!(store.expire_tokens(at(150)).await.unwrap().is_empty());
    assert_eq!(
        store.expire_tokens(at(200)).await.unwrap(),
        vec![p2.id.clone()]
    );
    assert_eq!(
        store.get_token(&forever.id).await.unwrap().state,
        StoredState::Active
    );
    assert_eq!(
        store.get_token(&revoked.id).await.unwrap().state,
        StoredState::Revoked
    );
    // Expired tokens are neither restorable nor counted.
    assert!(is_conflict(
        &store
            .restore_token(at(201), &p1.id, &unlimited(), event("token.restored"))
            .await
    ));
    // bootstrap token + forever
    assert_eq!(store.count_active_tokens().await.unwrap(), 2);
}

/// Every audit filter, time bounds (since inclusive, until exclusive) and pages.
pub async fn audit_filters(store: Arc<dyn Store>) {
    let store = &*store;
    let admin = new_id();
    let bob = new_id();
    let carol = new_id();
    let ws1 = new_id();
    let ws2 = new_id();
    let token = new_id();
    let full = NewAuditEvent {
        action: "a.one".to_owned(),
        actor_id: Some(carol.clone()),
        actor_token_id: None,
        target_type: Some("user".to_owned()),
        target_id: Some(bob.clone()),
        workspace_id: None,
        subject_user_id: Some(bob.clone()),
        ip: Some("192.0.2.7".to_owned()),
        details: json!({ "k": [1, 2], "nested": { "x": null } }),
    };
    let events = [
        (
            0,
            NewAuditEvent {
                actor_id: Some(admin.clone()),
                workspace_id: Some(ws1.clone()),
                ..event("a.one")
            },
        ),
        (
            10,
            NewAuditEvent {
                actor_id: Some(bob.clone()),
                target_type: Some("token".to_owned()),
                target_id: Some(token.clone()),
                subject_user_id: Some(admin.clone()),
                workspace_id: Some(ws2.clone()),
                ..event("a.two")
            },
        ),
        (
            20,
            NewAuditEvent {
                actor_id: Some(admin.clone()),
                actor_token_id: Some(token.clone()),
                ..event("a.three")
            },
        ),
        (30, full.clone()),
        (
            40,
            NewAuditEvent {
                // Same id as the token, but not a token target: no match on `token_id`.
                target_type: Some("project".to_owned()),
                target_id: Some(token.clone()),
                ..event("a.four")
            },
        ),
    ];
    let v = store.current_version().await.unwrap();
    for (secs, e) in &events {
        store.append_audit(at(*secs), e.clone()).await.unwrap();
    }
    expect_no_change(store, v).await;

    let actions = |list: Vec<latchkey_proto::AuditEvent>| -> BTreeSet<String> {
        list.into_iter().map(|e| e.action).collect()
    };
    let names =
        |names: &[&str]| -> BTreeSet<String> { names.iter().map(|n| (*n).to_owned()).collect() };
    let all = audit_where(store, AuditFilter::default()).await;
    assert_eq!(all.len(), 5);
    let stored_full = all.iter().find(|e| e.created_at == at(30)).unwrap();
    assert_eq!(stored_full.action, full.action);
    assert_eq!(stored_full.actor_id, full.actor_id);
    assert_eq!(stored_full.actor_token_id, None);
    assert_eq!(stored_full.target_type, full.target_type);
    assert_eq!(stored_full.target_id, full.target_id);
    assert_eq!(stored_full.workspace_id, None);
    assert_eq!(stored_full.subject_user_id, full.subject_user_id);
    assert_eq!(stored_full.ip, full.ip);
    assert_eq!(stored_full.details, full.details);

    let f = |filter: AuditFilter| async move { actions(audit_where(store, filter).await) };
    assert_eq!(
        f(AuditFilter {
            workspace_id: Some(ws1.clone()),
            ..AuditFilter::default()
        })
        .await,
        names(&["a.one"])
    );
    assert_eq!(
        f(AuditFilter {
            actor_id: Some(admin.clone()),
            ..AuditFilter::default()
        })
        .await,
        names(&["a.one", "a.three"])
    );
    assert_eq!(
        f(AuditFilter {
            token_id: Some(token.clone()),
            ..AuditFilter::default()
        })
        .await,
        names(&["a.two", "a.three"])
    );
    assert_eq!(
        audit_where(
            store,
            AuditFilter {
                action: Some("a.one".to_owned()),
                ..AuditFilter::default()
            }
        )
        .await
        .len(),
        2
    );
    assert_eq!(
        f(AuditFilter {
            since: Some(at(10)),
            ..AuditFilter::default()
        })
        .await,
        names(&["a.two", "a.three", "a.one", "a.four"])
    );
    assert_eq!(
        f(AuditFilter {
            until: Some(at(20)),
            ..AuditFilter::default()
        })
        .await,
        names(&["a.one", "a.two"])
    );
    assert_eq!(
        f(AuditFilter {
            since: Some(at(10)),
            until: Some(at(30)),
            ..AuditFilter::default()
        })
        .await,
        names(&["a.two", "a.three"])
    );
    let involving_bob = audit_where(
        store,
        AuditFilter {
            involving_user: Some(bob.clone()),
            ..AuditFilter::default()
        },
    )
    .await;
    assert_eq!(
        involving_bob
            .iter()
            .map(|e| e.created_at)
            .collect::<BTreeSet<_>>(),
        BTreeSet::from([at(10), at(30)])
    );
    assert_eq!(
        audit_where(
            store,
            AuditFilter {
                involving_user: Some(admin.clone()),
                ..AuditFilter::default()
            }
        )
        .await
        .len(),
        3
    );
    assert_eq!(
        audit_where(
            store,
            AuditFilter {
                actor_id: Some(admin.clone()),
                action: Some("a.one".to_owned()),
                ..AuditFilter::default()
            }
        )
        .await
        .len(),
        1
    );
    assert!(
        audit_where(
            store,
            AuditFilter {
                actor_id: Some(carol.clone()),
                workspace_id: Some(ws1.clone()),
                ..AuditFilter::default()
            }
        )
        .await
        .is_empty()
    );

    // Pages of two: 2 + 2 + 1, newest first, covering everything once.
    let mut seen = Vec::new();
    let mut cursor = None;
    let mut sizes = Vec::new();
    loop {
        let page = store
            .list_audit(&AuditFilter::default(), &PageRequest { limit: 2, cursor })
            .await
            .unwrap();
        sizes.push(page.items.len());
        seen.extend(page.items.iter().map(|e| e.id.clone()));
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(sizes, vec![2, 2, 1]);
    assert_eq!(seen, all.iter().map(|e| e.id.clone()).collect::<Vec<_>>());
}

/// The change feed: one change per write, versions increasing in commit order, refused
/// writes leave no trace, and paging with `limit` loses nothing.
pub async fn change_feed(store: Arc<dyn Store>) {
    let store = &*store;
    assert_eq!(store.current_version().await.unwrap(), 0);
    let world = bootstrapped(store).await;
    let boot = store.changes_since(0, 1000).await.unwrap();
    assert!(
        boot.iter()
            .any(|c| c.kind == ChangeKind::Token && c.id == world.token.id)
    );
    let mut v = store.current_version().await.unwrap();
    assert!(v > 0);

    let bob = add_user(store, &world, "bob", OrgRole::Member).await;
    v = expect_one_change(store, v, ChangeKind::User, &bob.id).await;
    store
        .update_user(
            at(1),
            &bob.id,
            UserPatch {
                role: Some(OrgRole::Admin),
                ..UserPatch::default()
            },
            event("user.updated"),
        )
        .await
        .unwrap();
    v = expect_one_change(store, v, ChangeKind::User, &bob.id).await;
    store
        .put_member(
            at(2),
            &world.workspace.id,
            &bob.id,
            WorkspaceRole::Member,
            event("member.put"),
        )
        .await
        .unwrap();
    v = expect_one_change(store, v, ChangeKind::User, &bob.id).await;
    store
        .update_token_settings(
            at(3),
            &world.org.id,
            TokenSettings::default(),
            event("org.settings"),
        )
        .await
        .unwrap();
    v = expect_one_change(store, v, ChangeKind::Org, &world.org.id).await;
    store
        .update_instance_settings(
            at(4),
            InstanceSettings::default(),
            event("instance.settings"),
        )
        .await
        .unwrap();
    v = expect_one_change(store, v, ChangeKind::Instance, "").await;
    let token = add_token(
        store,
        &world,
        TokenType::Client,
        Some(&world.workspace),
        None,
    )
    .await;
    v = expect_one_change(store, v, ChangeKind::Token, &token.id).await;
    store
        .revoke_token(at(5), &token.id, false, event("token.revoked"))
        .await
        .unwrap();
    v = expect_one_change(store, v, ChangeKind::Token, &token.id).await;
    store
        .restore_token(at(6), &token.id, &unlimited(), event("token.restored"))
        .await
        .unwrap();
    v = expect_one_change(store, v, ChangeKind::Token, &token.id).await;
    store
        .rotate_token(
            at(7),
            &token.id,
            secret_for(&token.id),
            None,
            None,
            None,
            event("token.rotated"),
        )
        .await
        .unwrap();
    v = expect_one_change(store, v, ChangeKind::Token, &token.id).await;

    // Refused writes leave no trace.
    let (over, over_secret) = token_record(
        &world.org.id,
        TokenType::Client,
        Some(&world.workspace),
        None,
    );
    assert!(
        store
            .create_token(
                at(8),
                over,
                over_secret,
                &Limits {
                    max_active_tokens: Some(1),
                    max_tokens_per_user: None
                },
                event("token.created")
            )
            .await
            .is_err()
    );
    assert!(
        store
            .create_user(
                at(8),
                user_record(&world.org.id, "BOB", OrgRole::Member),
                event("user.created")
            )
            .await
            .is_err()
    );
    expect_no_change(store, v).await;

    store
        .remove_member(at(9), &world.workspace.id, &bob.id, event("member.removed"))
        .await
        .unwrap();
    v = expect_one_change(store, v, ChangeKind::User, &bob.id).await;
    store
        .delete_token(at(10), &token.id, event("token.deleted"))
        .await
        .unwrap();
    v = expect_one_change(store, v, ChangeKind::Token, &token.id).await;
    let key = signing_key_record("kid-1", t0());
    assert!(store.add_signing_key(key, at(-1)).await.unwrap());
    v = expect_one_change(store, v, ChangeKind::SigningKeys, "").await;

    // Reading in small pages loses nothing and keeps the order.
    let all = store.changes_since(0, 1000).await.unwrap();
    assert_eq!(all.last().unwrap().version, v);
    for pair in all.windows(2) {
        assert!(pair[0].version < pair[1].version, "{all:?}");
    }
    let mut paged = Vec::new();
    let mut after = 0;
    loop {
        let chunk = store.changes_since(after, 3).await.unwrap();
        if chunk.is_empty() {
            break;
        }
        assert!(chunk.len() <= 3);
        after = chunk.last().unwrap().version;
        paged.extend(chunk);
    }
    assert_eq!(paged, all);
    assert!(store.changes_since(v, 10).await.unwrap().is_empty());
}

fn signing_key_record(id: &str, created: OffsetDateTime) -> SigningKeyRecord {
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

/// Signing keys: added unless a newer one appeared meanwhile; listed until they expire.
pub async fn signing_keys(store: Arc<dyn Store>) {
    let store = &*store;
    let k1 = signing_key_record("kid-1", t0());
    let v = store.current_version().await.unwrap();
    assert!(store.add_signing_key(k1.clone(), at(-1)).await.unwrap());
    let v = expect_one_change(store, v, ChangeKind::SigningKeys, "").await;
    assert_eq!(
        store.list_signing_keys(t0()).await.unwrap(),
        vec![k1.clone()]
    );

    // Another node added k1 (created at t0) after this one last looked (at t0 - 1 s).
    let k2 = signing_key_record("kid-2", at(10));
    assert!(!store.add_signing_key(k2.clone(), at(-1)).await.unwrap());
    expect_no_change(store, v).await;
    assert!(store.add_signing_key(k2.clone(), t0()).await.unwrap());
    assert_eq!(
        store.list_signing_keys(at(20)).await.unwrap(),
        vec![k2.clone(), k1.clone()]
    );
    // Expired keys leave the list (at `expires_at` exactly).
    assert_eq!(
        store.list_signing_keys(k1.expires_at).await.unwrap(),
        vec![k2.clone()]
    );
    assert!(
        store
            .list_signing_keys(k2.expires_at)
            .await
            .unwrap()
            .is_empty()
    );
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

/// Housekeeping deletes expired and idle sessions, old idempotent answers and all but the
/// newest change-feed rows, and nothing else; versions stay where they were.
pub async fn purge_retired_rows(store: Arc<dyn Store>) {
    let store = &*store;
    let world = bootstrapped(store).await;
    // Three sessions: past its absolute expiry, idle since t0, and fresh.
    let expired = SessionRecord {
        expires_at: at(100),
        ..session_record(&world.admin.id, t0())
    };
    let idle = session_record(&world.admin.id, t0());
    let live = session_record(&world.admin.id, t0());
    for (session, secret) in [
        (&expired, "expired session"),
        (&idle, "idle session"),
        (&live, "live session"),
    ] {
        store
            .create_session(
                t0(),
                session.clone(),
                hash_of(secret),
                event("session.created"),
            )
            .await
            .unwrap();
    }
    store.touch_session(&expired.id, at(90)).await.unwrap();
    store.touch_session(&live.id, at(500)).await.unwrap();

    let token = add_token(
        store,
        &world,
        TokenType::Client,
        Some(&world.workspace),
        None,
    )
    .await;
    let old_answer = IdempotencyRecord {
        key: "caller:rotate:old".to_owned(),
        request_hash: vec![1],
        response: vec![2],
        created_at: at(10),
    };
    store
        .rotate_token(
            at(10),
            &token.id,
            secret_for(&token.id),
            None,
            None,
            Some(old_answer.clone()),
            event("token.rotated"),
        )
        .await
        .unwrap();
    let new_answer = IdempotencyRecord {
        key: "caller:rotate:new".to_owned(),
        created_at: at(400),
        ..old_answer.clone()
    };
    store
        .rotate_token(
            at(400),
            &token.id,
            secret_for(&token.id),
            None,
            None,
            Some(new_answer.clone()),
            event("token.rotated"),
        )
        .await
        .unwrap();

    let version = store.current_version().await.unwrap();
    assert!(version >= 3, "the setup above wrote changes: {version}");
    let feed = store.changes_since(0, 10_000).await.unwrap();
    let purged = store
        .purge_retired(&Retention {
            sessions_expired_at: at(200),
            sessions_idle_since: at(200),
            idempotency_before: at(300),
            keep_changes: 2,
        })
        .await
        .unwrap();
    assert_eq!(
        purged,
        Purged {
            sessions: 2,
            idempotency: 1,
            changes: u64::try_from(feed.len() - 2).unwrap(),
        }
    );
    assert_eq!(
        store
            .find_session(&hash_of("expired session"))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store.find_session(&hash_of("idle session")).await.unwrap(),
        None
    );
    assert!(
        store
            .find_session(&hash_of("live session"))
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(
        store.get_idempotency(&old_answer.key, t0()).await.unwrap(),
        None
    );
    assert_eq!(
        store.get_idempotency(&new_answer.key, t0()).await.unwrap(),
        Some(new_answer)
    );

    // The newest two changes remain, versions unchanged, so a reader behind them sees a gap.
    assert_eq!(store.current_version().await.unwrap(), version);
    let kept: Vec<i64> = store
        .changes_since(0, 10_000)
        .await
        .unwrap()
        .iter()
        .map(|c| c.version)
        .collect();
    assert_eq!(kept, vec![version - 1, version]);
    // The token itself is untouched.
    assert!(store.get_token(&token.id).await.is_ok());

    // Nothing left to purge; at least one change row always stays.
    let again = store
        .purge_retired(&Retention {
            sessions_expired_at: at(200),
            sessions_idle_since: at(200),
            idempotency_before: at(300),
            keep_changes: 0,
        })
        .await
        .unwrap();
    assert_eq!(again.sessions + again.idempotency, 0);
    assert_eq!(again.changes, 1);
    assert_eq!(store.changes_since(0, 10).await.unwrap().len(), 1);
}
