//! The one SQL implementation of [`Store`] that both backends share (feature `sql`).
//!
//! A backend (`latchkey-store-sqlite`, `latchkey-store-postgres`) implements
//! [`SqlBackend`] — how it connects, reads, opens and commits a write transaction, maps
//! its driver's errors, migrates, and the two statements that differ between the engines —
//! and gets [`Store`] from the blanket `impl<B: SqlBackend> Store for B` here. Every other
//! statement, every row decoder and every operation's logic is written once, in this
//! module, generic over the sqlx database ([`SqlDb`] bundles what the generic code needs
//! from it). The SQL is the same text on both engines: `$n` placeholders (SQLite accepts
//! them), integers for instants, and booleans bound as `bool` (sqlx writes SQLite's
//! INTEGER 0/1 and PostgreSQL's BOOLEAN alike).
//!
//! Why here and not in a crate of its own: the blanket impl of a trait may only live in the
//! trait's crate, and it is what lets each backend keep its own public type
//! (`SqliteStore`, `PostgresStore`) with its own constructors while writing none of the
//! fifty `Store` methods. See docs/architecture.md.

mod driver;
mod events;
pub mod migrations;
mod ops;
mod rows;

use std::future::Future;

use async_trait::async_trait;
use latchkey_core::StoredState;
use latchkey_core::policy::{Limits, Visibility};
use latchkey_core::{
    InstanceSettings, MembershipRecord, NewAuditEvent, OrgRecord, ProjectRecord, SecretHash,
    SecretRecord, SessionRecord, TokenRecord, TokenSettings, UserRecord, WorkspaceRecord,
};
use latchkey_proto::{AuditEvent, TokenState, TokenType, UserKind, WorkspaceRole};
use sqlx::Database;
use sqlx::pool::PoolConnection;
use time::OffsetDateTime;

pub use driver::{
    Arg, Bind, BoxFuture, Column, Conn, Fetch, Param, Query, RawConn, RowOf, Run, SqlDb, SqlRow,
    Statement,
};

use crate::{
    AttemptResult, Channel, ClaimedDelivery, DeliveryRecord, ExpiryNotice, WebhookPatch,
    WebhookRecord,
};
use crate::{
    AuditFilter, BootstrapPlan, BulkRevoked, Change, ChangeKind, IdempotencyRecord, LastUsed,
    PageRequest, Paged, Purged, Retention, SigningKeyRecord, StateFilter, Store, StoreError,
    StoreResult, TokenFilter, TokenPolicyPatch, TokenUsage, UsageBatch, UserPatch,
};
use latchkey_core::token_policy::{BudgetKind, LeaseGrant, LeaseReport};

/// The most items one page may hold, whatever the caller asks.
const MAX_PAGE: u32 = 10_000;

/// What a write transaction is for; backends that serialise writers differently for
/// bookkeeping can tell them apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteKind {
    /// A write that checks limits or state and records changes: it must be serialised with
    /// every other such write (PostgreSQL: it first locks the change counter's row).
    Serialized,
    /// Bookkeeping that records no change and touches rows no serialised writer waits on
    /// in another order (an audit append, one session row): PostgreSQL skips the lock.
    Bookkeeping,
}

/// One store operation as the backend runs it: a closure over the write transaction's
/// connection. It may be run inside a savepoint of a larger transaction (SQLite's group
/// commit); it must not commit or roll back itself.
pub type WriteOp<B, T> =
    Box<dyn for<'c> FnOnce(&'c mut RawConn<B>) -> BoxFuture<'c, StoreResult<T>> + Send>;

/// Wraps a closure as a [`WriteOp`] (the closure's signature is inferred from here).
pub fn write_op<B, T, F>(op: F) -> WriteOp<B, T>
where
    B: SqlBackend,
    F: for<'c> FnOnce(&'c mut RawConn<B>) -> BoxFuture<'c, StoreResult<T>> + Send + 'static,
{
    Box::new(op)
}

/// What a SQL backend provides; everything else of [`Store`] comes from this module.
///
/// The statements that differ between the engines are the provided methods a backend may
/// override ([`SqlBackend::bump`]) or must write ([`SqlBackend::record_last_used`]).
pub trait SqlBackend: Send + Sync + Sized + 'static {
    /// The sqlx database.
    type Db: SqlDb;

    /// Maps a driver error: unique violations to `Conflict` with a readable message,
    /// "try again later" conditions to `Unavailable`, the rest to `Internal`.
    fn error(err: sqlx::Error) -> StoreError;

    /// How many rows a statement changed.
    fn rows_affected(result: &<Self::Db as Database>::QueryResult) -> u64;

    /// Applies the backend's migrations.
    fn run_migrations(&self) -> impl Future<Output = StoreResult<()>> + Send;

    /// A connection for reads (never one that holds a write transaction).
    fn read(&self) -> impl Future<Output = StoreResult<PoolConnection<Self::Db>>> + Send;

    /// Runs `op` inside one write transaction and answers only once the transaction that
    /// holds it has committed (or, when `op` or the commit failed, rolled back: nothing
    /// of `op` remains).
    fn write<T: Send + 'static>(
        &self,
        kind: WriteKind,
        op: WriteOp<Self, T>,
    ) -> impl Future<Output = StoreResult<T>> + Send;

    /// Bumps the change counter and records one change under the new version. The
    /// portable form is two statements; PostgreSQL does it in one round trip.
    fn bump(
        conn: &mut Conn<'_, Self>,
        kind: ChangeKind,
        id: &str,
    ) -> impl Future<Output = StoreResult<i64>> + Send {
        async move {
            let version: i64 = sqlx::query(
                "UPDATE change_counter SET version = version + 1 WHERE id = 1 \
                 RETURNING version",
            )
            .scalar(conn)
            .await?;
            sqlx::query("INSERT INTO changes (version, kind, entity_id) VALUES ($1, $2, $3)")
                .arg(version)
                .arg(kind.as_str())
                .arg(id)
                .run(conn)
                .await?;
            Ok(version)
        }
    }

    /// Writes `last_used_at` / `last_used_ip` (an unknown ip keeps the stored one) from
    /// `(token id, unix seconds, ip)` rows
    /// (one per token, see [`crate::latest_use_per_token`]) where the stored time is older
    /// or missing; unknown ids are ignored. In as few statements as the engine allows:
    /// a flush can hold tens of thousands of tokens.
    fn record_last_used(
        conn: &mut Conn<'_, Self>,
        latest: &[(&str, i64, Option<&str>)],
    ) -> impl Future<Output = StoreResult<()>> + Send;

    /// SQL folding the ASCII letters of the text expression `expr` to lower case and
    /// leaving every other character as it is, so that a name search matches the same on
    /// every engine. SQLite's `LOWER` does exactly that; PostgreSQL's follows the
    /// database's locale, so it overrides this.
    fn ascii_lower(expr: &str) -> String {
        format!("LOWER({expr})")
    }

    /// Pushed change notices, when the backend has them (see [`Store::change_notices`]).
    fn notice_receiver(&self) -> Option<tokio::sync::watch::Receiver<i64>> {
        None
    }

    /// Whether the database is reached through a pooler that hands out a server connection
    /// per transaction (PgBouncer `pool_mode = transaction`): then no statement is prepared
    /// by name (the next transaction may run on another server connection) and every read
    /// runs in a transaction of its own (an unnamed statement is parsed and executed in two
    /// round trips, which must reach the same server connection).
    fn transaction_pooling(&self) -> bool {
        false
    }
}

/// Runs `$op` (an expression using `$conn: &mut Conn<$backend>` and the owned values it
/// moves in) as one write operation of kind `$kind`.
macro_rules! in_write {
    ($self:ident: $backend:ty, $kind:ident, |$conn:ident| $op:expr) => {{
        let prepared = !$self.transaction_pooling();
        $self
            .write(
                WriteKind::$kind,
                write_op::<$backend, _, _>(move |raw| {
                    Box::pin(async move {
                        let $conn = &mut Conn::<$backend>::with_statements(raw, prepared);
                        $op.await
                    })
                }),
            )
            .await
    }};
}

/// Runs `$body` with `$conn: &mut Conn<$backend>` on a read connection (in a transaction
/// of its own behind a transaction pooler, see [`SqlBackend::transaction_pooling`]).
macro_rules! on_read {
    ($self:ident: $backend:ty, |$conn:ident| $body:expr) => {{
        let mut pooled = $self.read().await?;
        if $self.transaction_pooling() {
            let mut tx = sqlx::Connection::begin(&mut *pooled)
                .await
                .map_err(<$backend as SqlBackend>::error)?;
            let value = {
                let $conn = &mut Conn::<$backend>::with_statements(&mut *tx, false);
                $body
            };
            tx.commit().await.map_err(<$backend as SqlBackend>::error)?;
            value
        } else {
            let $conn = &mut Conn::<$backend>::new(&mut pooled);
            $body
        }
    }};
}

/// Ends a write transaction: commits when `result` is `Ok`, else rolls back (explicitly,
/// not only on drop, so the connection is clean for the next write).
pub async fn commit_or_rollback<B: SqlBackend, T>(
    tx: sqlx::Transaction<'static, B::Db>,
    result: StoreResult<T>,
) -> StoreResult<T> {
    match result {
        Ok(value) => {
            tx.commit().await.map_err(B::error)?;
            Ok(value)
        }
        Err(err) => {
            if let Err(rollback) = tx.rollback().await {
                tracing::warn!(error = %rollback, "rollback failed");
            }
            Err(err)
        }
    }
}

/// Bulk import: inserts `tokens` with their secrets in one transaction, without limit
/// checks, writing one audit event (`event`) and one change for the whole batch. For
/// migrations from another system and for loading benchmark data; [`Store::create_token`]
/// is the way to create a token under the rules.
pub async fn import_tokens<B: SqlBackend>(
    backend: &B,
    now: OffsetDateTime,
    tokens: Vec<(TokenRecord, SecretRecord)>,
    event: NewAuditEvent,
) -> StoreResult<()> {
    in_write!(backend: B, Serialized, |conn| ops::import_tokens(
        conn, now, &tokens, &event
    ))
}

/// [`Visibility`] as SQL over `tokens t`, the one place the rule becomes a condition (its
/// Rust form, [`Visibility::allows`], decides reads by id; the conformance suite checks
/// that both agree).
fn push_visibility(statement: &mut Statement, visibility: &Visibility) {
    if let Some(workspace_id) = visibility.confinement() {
        statement.push(" AND t.workspace_id = ").param(workspace_id);
    }
    if visibility.sees_everything() {
        return;
    }
    let (workspaces, types) = (visibility.workspaces(), visibility.workspace_types());
    let in_workspaces = |statement: &mut Statement| {
        statement.push("t.workspace_id IN (");
        for (i, workspace_id) in workspaces.iter().enumerate() {
            statement
                .push(if i == 0 { "" } else { ", " })
                .param(workspace_id.as_str());
        }
        statement.push(")");
    };
    statement.push(" AND (1 = 0");
    if let Some(owner) = visibility.owner() {
        statement
            .push(" OR (t.owner_id = ")
            .param(owner)
            .push(" AND t.token_type IN (")
            .param(TokenType::Personal.as_str())
            .push(", ")
            .param(TokenType::Legacy.as_str())
            .push(")");
        if visibility.owned_only_in_workspaces() {
            statement.push(" AND (t.workspace_id IS NULL");
            if !workspaces.is_empty() {
                statement.push(" OR ");
                in_workspaces(statement);
            }
            statement.push(")");
        }
        statement.push(")");
    }
    if !workspaces.is_empty() && !types.is_empty() {
        statement.push(" OR (");
        in_workspaces(statement);
        statement.push(" AND t.token_type IN (");
        for (i, token_type) in types.iter().enumerate() {
            statement
                .push(if i == 0 { "" } else { ", " })
                .param(token_type.as_str());
        }
        statement.push("))");
    }
    statement.push(")");
}

/// The inventory filters of [`TokenFilter`] (state, name, instants, use) as SQL over
/// `tokens t` joined with its owner `u` ([`rows::TOKEN_SELECT`]).
fn push_inventory_filters<B: SqlBackend>(statement: &mut Statement, filter: &TokenFilter) {
    if let Some(state) = &filter.state {
        push_state(statement, state);
    }
    if let Some(text) = &filter.name_contains {
        let mut pattern = String::with_capacity(text.len() + 2);
        pattern.push('%');
        for c in text.chars() {
            if matches!(c, '\\' | '%' | '_') {
                pattern.push('\\');
            }
            pattern.push(c.to_ascii_lowercase());
        }
        pattern.push('%');
        statement
            .push(&format!(" AND {} LIKE ", B::ascii_lower("t.name")))
            .param(pattern)
            .push(" ESCAPE '\\'");
    }
    for (column, before) in [
        ("t.created_at", filter.created_before),
        ("t.expires_at", filter.expires_before),
        ("t.last_used_at", filter.last_used_before),
    ] {
        if let Some(before) = before {
            statement
                .push(&format!(" AND {column} < "))
                .param(before.unix_timestamp());
        }
    }
    match filter.never_used {
        Some(true) => {
            statement.push(" AND t.last_used_at IS NULL");
        }
        Some(false) => {
            statement.push(" AND t.last_used_at IS NOT NULL");
        }
        None => {}
    }
}

/// [`StateFilter`] as SQL: the derivation of `latchkey_core::policy::visible_state`
/// (expired, then revoked or denied, then type disabled, then suspended, then pending),
/// written once here; the
/// conformance suite checks that both agree token by token.
fn push_state(statement: &mut Statement, filter: &StateFilter) {
    let now = filter.now.unix_timestamp();
    let expired = |statement: &mut Statement| {
        statement
            .push("(t.state = ")
            .param(StoredState::Expired.as_str())
            .push(" OR (t.expires_at IS NOT NULL AND t.expires_at <= ")
            .param(now)
            .push("))");
    };
    // Stored `active` or `pending` and not past its expiry: what the derived states
    // start from.
    let live = |statement: &mut Statement| {
        statement
            .push(" AND t.state IN (")
            .param(StoredState::Active.as_str())
            .push(", ")
            .param(StoredState::Pending.as_str())
            .push(") AND (t.expires_at IS NULL OR t.expires_at > ")
            .param(now)
            .push(")");
    };
    let owner_active = |statement: &mut Statement| {
        statement
            .push(" AND (t.owner_id IS NULL OR (u.id IS NOT NULL AND u.active = ")
            .param(true)
            .push("))");
    };
    let type_disabled = |statement: &mut Statement, disabled: bool| {
        if filter.disabled_types.is_empty() {
            statement.push(if disabled { " AND 1 = 0" } else { "" });
            return;
        }
        statement.push(if disabled {
            " AND t.token_type IN ("
        } else {
            " AND t.token_type NOT IN ("
        });
        for (i, token_type) in filter.disabled_types.iter().enumerate() {
            statement
                .push(if i == 0 { "" } else { ", " })
                .param(token_type.as_str());
        }
        statement.push(")");
    };
    match filter.state {
        TokenState::Expired => {
            statement.push(" AND ");
            expired(statement);
        }
        TokenState::Revoked | TokenState::Denied => {
            let stored = if filter.state == TokenState::Revoked {
                StoredState::Revoked
            } else {
                StoredState::Denied
            };
            statement.push(" AND NOT ");
            expired(statement);
            statement.push(" AND t.state = ").param(stored.as_str());
        }
        TokenState::TypeDisabled => {
            live(statement);
            type_disabled(statement, true);
        }
        TokenState::Suspended => {
            live(statement);
            type_disabled(statement, false);
            statement
                .push(" AND t.owner_id IS NOT NULL AND (u.id IS NULL OR u.active = ")
                .param(false)
                .push(")");
        }
        TokenState::Active | TokenState::Pending => {
            let stored = if filter.state == TokenState::Active {
                StoredState::Active
            } else {
                StoredState::Pending
            };
            live(statement);
            type_disabled(statement, false);
            owner_active(statement);
            statement.push(" AND t.state = ").param(stored.as_str());
        }
    }
}

/// One page of `statement` (which must already have a `WHERE` clause) by `id_column`,
/// newest first; the cursor is the last item's id.
async fn page<B: SqlBackend, T>(
    backend: &B,
    mut statement: Statement,
    id_column: &str,
    page: &PageRequest,
    decode: fn(&RowOf<B>) -> StoreResult<T>,
    id_of: fn(&T) -> &str,
) -> StoreResult<Paged<T>> {
    if let Some(cursor) = &page.cursor {
        statement
            .push(&format!(" AND {id_column} < "))
            .param(cursor.as_str());
    }
    let limit = page.limit.clamp(1, MAX_PAGE);
    statement
        .push(&format!(" ORDER BY {id_column} DESC LIMIT "))
        .param(i64::from(limit) + 1);
    let found = on_read!(backend: B, |conn| statement.query().all(conn).await?);
    let mut items = rows::all(&found, decode)?;
    let limit = limit as usize;
    let next_cursor = if items.len() > limit {
        items.truncate(limit);
        items.last().map(|item| id_of(item).to_owned())
    } else {
        None
    };
    Ok(Paged { items, next_cursor })
}

#[async_trait]
impl<B: SqlBackend> Store for B {
    async fn migrate(&self) -> StoreResult<()> {
        SqlBackend::run_migrations(self).await
    }

    async fn ensure_hash_key(&self, key_id: &str) -> StoreResult<()> {
        let key_id = key_id.to_owned();
        in_write!(self: Self, Serialized, |conn| ops::ensure_hash_key(conn, &key_id))
    }

    async fn ping(&self) -> StoreResult<()> {
        on_read!(self: Self, |conn| sqlx::query("SELECT 1").run(conn).await?);
        Ok(())
    }

    async fn bootstrap(&self, now: OffsetDateTime, plan: BootstrapPlan) -> StoreResult<bool> {
        in_write!(self: Self, Serialized, |conn| ops::bootstrap(conn, now, &plan))
    }

    // --- settings ----------------------------------------------------------------------

    async fn get_org(&self) -> StoreResult<OrgRecord> {
        let sql = format!("{} ORDER BY created_at, id LIMIT 1", rows::ORG_SELECT);
        let row = on_read!(self: Self, |conn| sqlx::query(&sql).optional(conn).await?)
            .ok_or(StoreError::NotFound("org"))?;
        rows::org(&row)
    }

    async fn update_token_settings(
        &self,
        now: OffsetDateTime,
        org_id: &str,
        settings: TokenSettings,
        event: NewAuditEvent,
    ) -> StoreResult<OrgRecord> {
        let org_id = org_id.to_owned();
        in_write!(self: Self, Serialized, |conn| ops::update_token_settings(
            conn, now, &org_id, &settings, &event
        ))
    }

    async fn get_instance_settings(&self) -> StoreResult<InstanceSettings> {
        let row = on_read!(self: Self, |conn| sqlx::query(rows::INSTANCE_SELECT)
            .optional(conn)
            .await?)
        .ok_or(StoreError::NotFound("instance settings"))?;
        rows::instance(&row)
    }

    async fn update_instance_settings(
        &self,
        now: OffsetDateTime,
        settings: InstanceSettings,
        event: NewAuditEvent,
    ) -> StoreResult<InstanceSettings> {
        in_write!(self: Self, Serialized, |conn| ops::update_instance_settings(
            conn, now, &settings, &event
        ))
    }

    // --- users -------------------------------------------------------------------------

    async fn create_user(
        &self,
        now: OffsetDateTime,
        user: UserRecord,
        event: NewAuditEvent,
    ) -> StoreResult<UserRecord> {
        in_write!(self: Self, Serialized, |conn| ops::create_user(
            conn, now, &user, &event
        ))
    }

    async fn get_user(&self, id: &str) -> StoreResult<UserRecord> {
        let sql = format!("{} WHERE id = $1", rows::USER_SELECT);
        let row = on_read!(self: Self, |conn| sqlx::query(&sql).arg(id).optional(conn).await?)
            .ok_or(StoreError::NotFound("user"))?;
        rows::user(&row)
    }

    async fn find_user_by_username(&self, username: &str) -> StoreResult<Option<UserRecord>> {
        let sql = format!("{} WHERE username_key = $1", rows::USER_SELECT);
        on_read!(self: Self, |conn| sqlx::query(&sql)
            .arg(ops::username_key(username))
            .optional(conn)
            .await?)
        .as_ref()
        .map(rows::user)
        .transpose()
    }

    async fn list_users(
        &self,
        org_id: &str,
        kind: Option<UserKind>,
        page: &PageRequest,
    ) -> StoreResult<Paged<UserRecord>> {
        let mut statement = Statement::new(rows::USER_SELECT);
        statement.push(" WHERE org_id = ").param(org_id);
        if let Some(kind) = kind {
            statement.push(" AND kind = ").param(kind.as_str());
        }
        self::page(self, statement, "id", page, rows::user, |u| &u.id).await
    }

    async fn update_user(
        &self,
        now: OffsetDateTime,
        id: &str,
        patch: UserPatch,
        event: NewAuditEvent,
    ) -> StoreResult<UserRecord> {
        let id = id.to_owned();
        in_write!(self: Self, Serialized, |conn| ops::update_user(
            conn, now, &id, &patch, &event
        ))
    }

    // --- workspaces and members --------------------------------------------------------

    async fn create_workspace(
        &self,
        now: OffsetDateTime,
        workspace: WorkspaceRecord,
        creator: Option<(String, WorkspaceRole)>,
        event: NewAuditEvent,
    ) -> StoreResult<WorkspaceRecord> {
        in_write!(self: Self, Serialized, |conn| ops::create_workspace(
            conn,
            now,
            &workspace,
            creator.as_ref(),
            &event
        ))
    }

    async fn get_workspace(&self, id: &str) -> StoreResult<WorkspaceRecord> {
        let sql = format!("{} WHERE id = $1", rows::WORKSPACE_SELECT);
        let row = on_read!(self: Self, |conn| sqlx::query(&sql).arg(id).optional(conn).await?)
            .ok_or(StoreError::NotFound("workspace"))?;
        rows::workspace(&row)
    }

    async fn find_workspace_by_name(
        &self,
        org_id: &str,
        name: &str,
    ) -> StoreResult<Option<WorkspaceRecord>> {
        let sql = format!("{} WHERE org_id = $1 AND name = $2", rows::WORKSPACE_SELECT);
        on_read!(self: Self, |conn| sqlx::query(&sql)
            .arg(org_id)
            .arg(name)
            .optional(conn)
            .await?)
        .as_ref()
        .map(rows::workspace)
        .transpose()
    }

    async fn list_workspaces(
        &self,
        org_id: &str,
        page: &PageRequest,
    ) -> StoreResult<Paged<WorkspaceRecord>> {
        let mut statement = Statement::new(rows::WORKSPACE_SELECT);
        statement.push(" WHERE org_id = ").param(org_id);
        self::page(self, statement, "id", page, rows::workspace, |w| &w.id).await
    }

    async fn put_member(
        &self,
        now: OffsetDateTime,
        workspace_id: &str,
        user_id: &str,
        role: WorkspaceRole,
        event: NewAuditEvent,
    ) -> StoreResult<MembershipRecord> {
        let (workspace_id, user_id) = (workspace_id.to_owned(), user_id.to_owned());
        in_write!(self: Self, Serialized, |conn| ops::put_member(
            conn,
            now,
            &workspace_id,
            &user_id,
            role,
            &event
        ))
    }

    async fn remove_member(
        &self,
        now: OffsetDateTime,
        workspace_id: &str,
        user_id: &str,
        event: NewAuditEvent,
    ) -> StoreResult<()> {
        let (workspace_id, user_id) = (workspace_id.to_owned(), user_id.to_owned());
        in_write!(self: Self, Serialized, |conn| ops::remove_member(
            conn,
            now,
            &workspace_id,
            &user_id,
            &event
        ))
    }

    async fn get_membership(
        &self,
        workspace_id: &str,
        user_id: &str,
    ) -> StoreResult<Option<MembershipRecord>> {
        let sql = format!(
            "{} WHERE m.workspace_id = $1 AND m.user_id = $2",
            rows::MEMBERSHIP_SELECT
        );
        on_read!(self: Self, |conn| sqlx::query(&sql)
            .arg(workspace_id)
            .arg(user_id)
            .optional(conn)
            .await?)
        .as_ref()
        .map(rows::membership)
        .transpose()
    }

    /// Members by user id, newest user first (user ids are UUIDv7); the cursor is a user id.
    async fn list_members(
        &self,
        workspace_id: &str,
        page: &PageRequest,
    ) -> StoreResult<Paged<MembershipRecord>> {
        let mut statement = Statement::new(rows::MEMBERSHIP_SELECT);
        statement
            .push(" WHERE m.workspace_id = ")
            .param(workspace_id);
        self::page(self, statement, "m.user_id", page, rows::membership, |m| {
            &m.user_id
        })
        .await
    }

    async fn memberships_of(&self, user_id: &str) -> StoreResult<Vec<MembershipRecord>> {
        let sql = format!(
            "{} WHERE m.user_id = $1 ORDER BY m.workspace_id",
            rows::MEMBERSHIP_SELECT
        );
        let found = on_read!(self: Self, |conn| sqlx::query(&sql).arg(user_id).all(conn).await?);
        rows::all(&found, rows::membership)
    }

    // --- projects ----------------------------------------------------------------------

    async fn create_project(
        &self,
        now: OffsetDateTime,
        project: ProjectRecord,
        event: NewAuditEvent,
    ) -> StoreResult<ProjectRecord> {
        in_write!(self: Self, Serialized, |conn| ops::create_project(
            conn, now, &project, &event
        ))
    }

    async fn get_project(&self, id: &str) -> StoreResult<ProjectRecord> {
        let sql = format!("{} WHERE id = $1", rows::PROJECT_SELECT);
        let row = on_read!(self: Self, |conn| sqlx::query(&sql).arg(id).optional(conn).await?)
            .ok_or(StoreError::NotFound("project"))?;
        rows::project(&row)
    }

    async fn list_projects(
        &self,
        workspace_id: &str,
        page: &PageRequest,
    ) -> StoreResult<Paged<ProjectRecord>> {
        let mut statement = Statement::new(rows::PROJECT_SELECT);
        statement.push(" WHERE workspace_id = ").param(workspace_id);
        self::page(self, statement, "id", page, rows::project, |p| &p.id).await
    }

    async fn delete_project(
        &self,
        now: OffsetDateTime,
        id: &str,
        event: NewAuditEvent,
    ) -> StoreResult<Vec<String>> {
        let id = id.to_owned();
        in_write!(self: Self, Serialized, |conn| ops::delete_project(
            conn, now, &id, &event
        ))
    }

    // --- tokens ------------------------------------------------------------------------

    async fn create_token(
        &self,
        now: OffsetDateTime,
        token: TokenRecord,
        secret: SecretRecord,
        limits: &Limits,
        event: NewAuditEvent,
    ) -> StoreResult<TokenRecord> {
        let limits = limits.clone();
        in_write!(self: Self, Serialized, |conn| ops::create_token(
            conn, now, &token, &secret, &limits, &event
        ))
    }

    async fn get_token(&self, id: &str) -> StoreResult<TokenRecord> {
        let sql = format!("{} WHERE t.id = $1", rows::TOKEN_SELECT);
        let row = on_read!(self: Self, |conn| sqlx::query(&sql).arg(id).optional(conn).await?)
            .ok_or(StoreError::NotFound("token"))?;
        rows::token(&row)
    }

    async fn list_tokens(
        &self,
        org_id: &str,
        filter: &TokenFilter,
        page: &PageRequest,
    ) -> StoreResult<Paged<TokenRecord>> {
        let mut statement = Statement::new(rows::TOKEN_SELECT);
        statement.push(" WHERE t.org_id = ").param(org_id);
        if let Some(workspace_id) = &filter.workspace_id {
            statement
                .push(" AND t.workspace_id = ")
                .param(workspace_id.as_str());
        }
        if let Some(owner_id) = &filter.owner_id {
            statement
                .push(" AND t.owner_id = ")
                .param(owner_id.as_str());
        }
        if let Some(token_type) = filter.token_type {
            statement
                .push(" AND t.token_type = ")
                .param(token_type.as_str());
        }
        if let Some(visibility) = &filter.visibility {
            push_visibility(&mut statement, visibility);
        }
        push_inventory_filters::<B>(&mut statement, filter);
        self::page(self, statement, "t.id", page, rows::token, |t| &t.id).await
    }

    async fn secret_hashes(
        &self,
        after: Option<&SecretHash>,
        limit: u32,
    ) -> StoreResult<Vec<SecretHash>> {
        let limit = i64::from(limit.max(1));
        let found = on_read!(self: Self, |conn| match after {
            Some(after) => sqlx::query(
                "SELECT hash FROM token_secrets WHERE hash > $1 ORDER BY hash LIMIT $2",
            )
            .arg(&after[..])
            .arg(limit)
            .all(conn)
            .await?,
            None => sqlx::query("SELECT hash FROM token_secrets ORDER BY hash LIMIT $1")
                .arg(limit)
                .all(conn)
                .await?,
        });
        rows::all(&found, |row| rows::hash_of(rows::get(row, "hash")?))
    }

    async fn secret_hashes_of(&self, token_ids: &[String]) -> StoreResult<Vec<SecretHash>> {
        let mut hashes = Vec::new();
        // A bounded IN list per statement (PostgreSQL and SQLite both cap parameters).
        for ids in token_ids.chunks(500) {
            let mut statement =
                Statement::new("SELECT hash FROM token_secrets WHERE token_id IN (");
            for (i, id) in ids.iter().enumerate() {
                statement
                    .push(if i == 0 { "" } else { ", " })
                    .param(id.as_str());
            }
            statement.push(")");
            let found = on_read!(self: Self, |conn| statement.query().all(conn).await?);
            hashes.extend(rows::all(&found, |row| {
                rows::hash_of(rows::get(row, "hash")?)
            })?);
        }
        Ok(hashes)
    }

    async fn find_secret(
        &self,
        hash: &SecretHash,
    ) -> StoreResult<Option<(TokenRecord, SecretRecord)>> {
        let sql = format!("{} WHERE s.hash = $1", rows::SECRET_SELECT);
        let Some(row) = on_read!(self: Self, |conn| sqlx::query(&sql)
            .arg(&hash[..])
            .optional(conn)
            .await?)
        else {
            return Ok(None);
        };
        Ok(Some((rows::token(&row)?, rows::secret(&row, "s_")?)))
    }

    async fn revoke_token(
        &self,
        now: OffsetDateTime,
        id: &str,
        leaked: bool,
        event: NewAuditEvent,
    ) -> StoreResult<TokenRecord> {
        let id = id.to_owned();
        in_write!(self: Self, Serialized, |conn| ops::revoke_token(
            conn, now, &id, leaked, &event
        ))
    }

    async fn restore_token(
        &self,
        now: OffsetDateTime,
        id: &str,
        limits: &Limits,
        event: NewAuditEvent,
    ) -> StoreResult<TokenRecord> {
        let (id, limits) = (id.to_owned(), limits.clone());
        in_write!(self: Self, Serialized, |conn| ops::restore_token(
            conn, now, &id, &limits, &event
        ))
    }

    async fn decide_token(
        &self,
        now: OffsetDateTime,
        id: &str,
        approve: bool,
        event: NewAuditEvent,
    ) -> StoreResult<TokenRecord> {
        let id = id.to_owned();
        in_write!(self: Self, Serialized, |conn| ops::decide_token(
            conn, now, &id, approve, &event
        ))
    }

    async fn rotate_token(
        &self,
        now: OffsetDateTime,
        id: &str,
        new_secret: SecretRecord,
        old_not_after: Option<OffsetDateTime>,
        expires_at: Option<Option<OffsetDateTime>>,
        idempotency: Option<IdempotencyRecord>,
        event: NewAuditEvent,
    ) -> StoreResult<TokenRecord> {
        let id = id.to_owned();
        in_write!(self: Self, Serialized, |conn| ops::rotate_token(
            conn,
            now,
            ops::Rotation {
                id: &id,
                new_secret: &new_secret,
                old_not_after,
                expires_at,
                idempotency: idempotency.as_ref(),
                event: &event,
            }
        ))
    }

    async fn reveal_token(
        &self,
        now: OffsetDateTime,
        id: &str,
        event: NewAuditEvent,
    ) -> StoreResult<Option<Vec<u8>>> {
        let id = id.to_owned();
        in_write!(self: Self, Serialized, |conn| ops::reveal_token(
            conn, now, &id, &event
        ))
    }

    async fn delete_token(
        &self,
        now: OffsetDateTime,
        id: &str,
        event: NewAuditEvent,
    ) -> StoreResult<()> {
        let id = id.to_owned();
        in_write!(self: Self, Serialized, |conn| ops::delete_token(
            conn, now, &id, &event
        ))
    }

    async fn record_last_used(&self, batch: &[LastUsed]) -> StoreResult<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let batch = batch.to_vec();
        in_write!(self: Self, Serialized, |conn| ops::record_last_used(conn, &batch))
    }

    async fn record_usage(&self, batch: &UsageBatch) -> StoreResult<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let batch = batch.clone();
        in_write!(self: Self, Serialized, |conn| ops::record_usage(conn, &batch))
    }

    async fn token_usage(&self, id: &str, since: time::Date) -> StoreResult<TokenUsage> {
        on_read!(self: Self, |conn| ops::token_usage(conn, id, since).await)
    }

    async fn update_token_policy(
        &self,
        now: OffsetDateTime,
        id: &str,
        patch: TokenPolicyPatch,
        event: NewAuditEvent,
    ) -> StoreResult<TokenRecord> {
        let id = id.to_owned();
        in_write!(self: Self, Serialized, |conn| ops::update_token_policy(
            conn, now, &id, &patch, &event
        ))
    }

    async fn lease_budget(
        &self,
        now: i64,
        token_id: &str,
        kind: BudgetKind,
        node: &str,
        want: i64,
    ) -> StoreResult<Option<LeaseGrant>> {
        let (token_id, node) = (token_id.to_owned(), node.to_owned());
        in_write!(self: Self, Bookkeeping, |conn| ops::lease_budget(
            conn, now, &token_id, kind, &node, want
        ))
    }

    async fn settle_leases(
        &self,
        now: i64,
        node: &str,
        reports: Vec<LeaseReport>,
    ) -> StoreResult<Vec<Option<i64>>> {
        if reports.is_empty() {
            return Ok(Vec::new());
        }
        let node = node.to_owned();
        in_write!(self: Self, Bookkeeping, |conn| ops::settle_leases(
            conn, now, &node, &reports
        ))
    }

    async fn revoke_tokens(
        &self,
        now: OffsetDateTime,
        requests: Vec<(String, NewAuditEvent)>,
    ) -> StoreResult<Vec<BulkRevoked>> {
        in_write!(self: Self, Serialized, |conn| ops::revoke_tokens(conn, now, &requests))
    }

    async fn expire_tokens(&self, now: OffsetDateTime) -> StoreResult<Vec<String>> {
        in_write!(self: Self, Serialized, |conn| ops::expire_tokens(conn, now))
    }

    async fn revoke_idle_tokens(
        &self,
        now: OffsetDateTime,
        org_id: &str,
        idle_days: u32,
        limit: u32,
    ) -> StoreResult<Vec<String>> {
        let org_id = org_id.to_owned();
        in_write!(self: Self, Serialized, |conn| ops::revoke_idle_tokens(
            conn, now, &org_id, idle_days, limit
        ))
    }

    async fn purge_rotated_secrets(&self, now: OffsetDateTime) -> StoreResult<u64> {
        in_write!(self: Self, Serialized, |conn| ops::purge_rotated_secrets(conn, now))
    }

    async fn purge_retired(&self, retention: &Retention) -> StoreResult<Purged> {
        let retention = *retention;
        in_write!(self: Self, Serialized, |conn| ops::purge_retired(conn, &retention))
    }

    async fn count_active_tokens(&self) -> StoreResult<u64> {
        let count: i64 = on_read!(self: Self, |conn| sqlx::query(
            "SELECT COUNT(*) FROM tokens WHERE state = 'active'"
        )
        .scalar(conn)
        .await?);
        Ok(u64::try_from(count).unwrap_or(0))
    }

    async fn get_idempotency(
        &self,
        key: &str,
        not_before: OffsetDateTime,
    ) -> StoreResult<Option<IdempotencyRecord>> {
        on_read!(self: Self, |conn| sqlx::query(
            "SELECT key, request_hash, response, created_at FROM idempotency \
             WHERE key = $1 AND created_at >= $2",
        )
        .arg(key)
        .arg(not_before.unix_timestamp())
        .optional(conn)
        .await?)
        .as_ref()
        .map(rows::idempotency)
        .transpose()
    }

    // --- sessions ----------------------------------------------------------------------

    async fn create_session(
        &self,
        now: OffsetDateTime,
        session: SessionRecord,
        hash: SecretHash,
        event: NewAuditEvent,
    ) -> StoreResult<()> {
        in_write!(self: Self, Bookkeeping, |conn| ops::create_session(
            conn, now, &session, &hash, &event
        ))
    }

    async fn find_session(&self, hash: &SecretHash) -> StoreResult<Option<SessionRecord>> {
        let sql = format!("{} WHERE hash = $1", rows::SESSION_SELECT);
        on_read!(self: Self, |conn| sqlx::query(&sql)
            .arg(&hash[..])
            .optional(conn)
            .await?)
        .as_ref()
        .map(rows::session)
        .transpose()
    }

    async fn touch_session(&self, id: &str, now: OffsetDateTime) -> StoreResult<()> {
        let id = id.to_owned();
        in_write!(self: Self, Bookkeeping, |conn| ops::touch_session(conn, &id, now))
    }

    async fn delete_session(
        &self,
        now: OffsetDateTime,
        id: &str,
        event: Option<NewAuditEvent>,
    ) -> StoreResult<()> {
        let id = id.to_owned();
        in_write!(self: Self, Bookkeeping, |conn| ops::delete_session(
            conn,
            now,
            &id,
            event.as_ref()
        ))
    }

    // --- audit -------------------------------------------------------------------------

    async fn append_audit(&self, now: OffsetDateTime, event: NewAuditEvent) -> StoreResult<()> {
        in_write!(self: Self, Bookkeeping, |conn| ops::audit(conn, now, &event))
    }

    async fn list_audit(
        &self,
        filter: &AuditFilter,
        page: &PageRequest,
    ) -> StoreResult<Paged<AuditEvent>> {
        let mut statement = Statement::new(rows::AUDIT_SELECT);
        statement.push(" WHERE 1 = 1");
        if let Some(workspace_id) = &filter.workspace_id {
            statement
                .push(" AND workspace_id = ")
                .param(workspace_id.as_str());
        }
        if let Some(actor_id) = &filter.actor_id {
            statement.push(" AND actor_id = ").param(actor_id.as_str());
        }
        if let Some(token_id) = &filter.token_id {
            statement
                .push(" AND ((target_type = 'token' AND target_id = ")
                .param(token_id.as_str())
                .push(") OR actor_token_id = ")
                .param(token_id.as_str())
                .push(")");
        }
        if let Some(action) = &filter.action {
            statement.push(" AND action = ").param(action.as_str());
        }
        if let Some(since) = filter.since {
            statement
                .push(" AND created_at >= ")
                .param(since.unix_timestamp());
        }
        if let Some(until) = filter.until {
            statement
                .push(" AND created_at < ")
                .param(until.unix_timestamp());
        }
        if let Some(user_id) = &filter.involving_user {
            statement
                .push(" AND (actor_id = ")
                .param(user_id.as_str())
                .push(" OR subject_user_id = ")
                .param(user_id.as_str())
                .push(")");
        }
        self::page(self, statement, "id", page, rows::audit_event, |e| &e.id).await
    }

    // --- JWT signing keys --------------------------------------------------------------

    async fn list_signing_keys(&self, now: OffsetDateTime) -> StoreResult<Vec<SigningKeyRecord>> {
        let sql = format!(
            "{} WHERE expires_at > $1 ORDER BY created_at DESC, id DESC",
            rows::SIGNING_KEY_SELECT
        );
        let found = on_read!(self: Self, |conn| sqlx::query(&sql)
            .arg(now.unix_timestamp())
            .all(conn)
            .await?);
        rows::all(&found, rows::signing_key)
    }

    async fn add_signing_key(
        &self,
        key: SigningKeyRecord,
        not_before: OffsetDateTime,
    ) -> StoreResult<bool> {
        in_write!(self: Self, Serialized, |conn| ops::add_signing_key(
            conn, &key, not_before
        ))
    }

    // --- lifecycle events ----------------------------------------------------------------

    async fn create_webhook(
        &self,
        now: OffsetDateTime,
        webhook: WebhookRecord,
        event: NewAuditEvent,
    ) -> StoreResult<WebhookRecord> {
        in_write!(self: Self, Serialized, |conn| events::create_webhook(
            conn, now, &webhook, &event
        ))
    }

    async fn get_webhook(&self, id: &str) -> StoreResult<WebhookRecord> {
        let sql = format!("{} WHERE id = $1", events::WEBHOOK_SELECT);
        let row = on_read!(self: Self, |conn| sqlx::query(&sql).arg(id).optional(conn).await?)
            .ok_or(StoreError::NotFound("webhook"))?;
        events::webhook(&row)
    }

    async fn list_webhooks(
        &self,
        org_id: &str,
        page: &PageRequest,
    ) -> StoreResult<Paged<WebhookRecord>> {
        let mut statement = Statement::new(events::WEBHOOK_SELECT);
        statement.push(" WHERE org_id = ").param(org_id);
        self::page(self, statement, "id", page, events::webhook, |w| &w.id).await
    }

    async fn update_webhook(
        &self,
        now: OffsetDateTime,
        id: &str,
        patch: WebhookPatch,
        event: NewAuditEvent,
    ) -> StoreResult<WebhookRecord> {
        let id = id.to_owned();
        in_write!(self: Self, Serialized, |conn| events::update_webhook(
            conn, now, &id, &patch, &event
        ))
    }

    async fn delete_webhook(
        &self,
        now: OffsetDateTime,
        id: &str,
        event: NewAuditEvent,
    ) -> StoreResult<()> {
        let id = id.to_owned();
        in_write!(self: Self, Serialized, |conn| events::delete_webhook(
            conn, now, &id, &event
        ))
    }

    async fn queue_test_delivery(
        &self,
        now: OffsetDateTime,
        webhook_id: &str,
    ) -> StoreResult<DeliveryRecord> {
        let id = webhook_id.to_owned();
        in_write!(self: Self, Bookkeeping, |conn| events::queue_test_delivery(
            conn, now, &id
        ))
    }

    async fn redeliver(
        &self,
        now: OffsetDateTime,
        delivery_id: &str,
    ) -> StoreResult<DeliveryRecord> {
        let id = delivery_id.to_owned();
        in_write!(self: Self, Bookkeeping, |conn| events::redeliver(conn, now, &id))
    }

    async fn get_delivery(&self, id: &str) -> StoreResult<DeliveryRecord> {
        let sql = format!("{} WHERE id = $1", events::DELIVERY_SELECT);
        let row = on_read!(self: Self, |conn| sqlx::query(&sql).arg(id).optional(conn).await?)
            .ok_or(StoreError::NotFound("delivery"))?;
        events::delivery(&row)
    }

    async fn list_deliveries(
        &self,
        webhook_id: &str,
        page: &PageRequest,
    ) -> StoreResult<Paged<DeliveryRecord>> {
        let mut statement = Statement::new(events::DELIVERY_SELECT);
        statement.push(" WHERE webhook_id = ").param(webhook_id);
        self::page(self, statement, "id", page, events::delivery, |d| &d.id).await
    }

    async fn claim_deliveries(
        &self,
        now: OffsetDateTime,
        channel: Channel,
        node: &str,
        lease_until: OffsetDateTime,
        limit: u32,
    ) -> StoreResult<Vec<ClaimedDelivery>> {
        let due = on_read!(self: Self, |conn| sqlx::query(
            "SELECT id FROM deliveries WHERE state = $1 AND channel = $2 \
             AND next_attempt_at <= $3 AND (lease_until IS NULL OR lease_until <= $4) \
             ORDER BY next_attempt_at, id LIMIT $5",
        )
        .arg(latchkey_proto::DeliveryState::Pending.as_str())
        .arg(channel.as_str())
        .arg(now.unix_timestamp())
        .arg(now.unix_timestamp())
        .arg(i64::from(limit.clamp(1, MAX_PAGE)))
        .all(conn)
        .await?);
        let ids = due
            .iter()
            .map(|row| rows::get::<String>(row, "id"))
            .collect::<StoreResult<Vec<_>>>()?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let node = node.to_owned();
        in_write!(self: Self, Bookkeeping, |conn| events::claim(
            conn,
            now,
            &node,
            lease_until,
            &ids
        ))
    }

    async fn finish_attempt(
        &self,
        id: &str,
        node: &str,
        attempt: latchkey_proto::DeliveryAttempt,
        result: AttemptResult,
    ) -> StoreResult<bool> {
        let (id, node) = (id.to_owned(), node.to_owned());
        in_write!(self: Self, Bookkeeping, |conn| events::finish_attempt(
            conn, &id, &node, &attempt, &result
        ))
    }

    async fn send_expiry_notices(&self, now: OffsetDateTime) -> StoreResult<Vec<ExpiryNotice>> {
        in_write!(self: Self, Serialized, |conn| events::send_expiry_notices(conn, now))
    }

    async fn count_tokens_by_type_and_state(
        &self,
        now: OffsetDateTime,
    ) -> StoreResult<Vec<(TokenType, latchkey_proto::TokenState, u64)>> {
        let found = on_read!(self: Self, |conn| sqlx::query(
            "SELECT token_type, state, COUNT(*) AS n FROM (SELECT t.token_type, CASE \
             WHEN t.state IN ('active', 'pending') AND t.expires_at IS NOT NULL \
             AND t.expires_at <= $1 THEN 'expired' \
             WHEN t.state IN ('active', 'pending') AND u.active = $2 THEN 'suspended' \
             ELSE t.state END AS state FROM tokens t LEFT JOIN users u ON u.id = t.owner_id) \
             AS counted GROUP BY token_type, state"
        )
        .arg(now.unix_timestamp())
        .arg(false)
        .all(conn)
        .await?);
        rows::all(&found, |row| {
            let kind = rows::get::<String>(row, "token_type")?;
            let state = rows::get::<String>(row, "state")?;
            let count = rows::get::<i64>(row, "n")?;
            Ok((
                TokenType::parse(&kind).ok_or_else(|| rows::corrupt("token type", &kind))?,
                latchkey_proto::TokenState::parse(&state)
                    .ok_or_else(|| rows::corrupt("token state", &state))?,
                u64::try_from(count).unwrap_or(0),
            ))
        })
    }

    async fn count_expiring(&self, now: OffsetDateTime, within: &[i64]) -> StoreResult<Vec<u64>> {
        let mut counts = Vec::with_capacity(within.len());
        for secs in within {
            let count: i64 = on_read!(self: Self, |conn| sqlx::query(
                "SELECT COUNT(*) FROM tokens WHERE state = 'active' AND expires_at > $1 \
                 AND expires_at <= $2"
            )
            .arg(now.unix_timestamp())
            .arg(now.unix_timestamp().saturating_add(*secs))
            .scalar(conn)
            .await?);
            counts.push(u64::try_from(count).unwrap_or(0));
        }
        Ok(counts)
    }

    async fn purge_deliveries(&self, before: OffsetDateTime) -> StoreResult<u64> {
        in_write!(self: Self, Bookkeeping, |conn| events::purge_deliveries(conn, before))
    }

    // --- change feed -------------------------------------------------------------------

    async fn current_version(&self) -> StoreResult<i64> {
        on_read!(self: Self, |conn| sqlx::query(
            "SELECT version FROM change_counter WHERE id = 1"
        )
        .scalar(conn)
        .await)
    }

    async fn changes_since(&self, after: i64, limit: u32) -> StoreResult<Vec<Change>> {
        let found = on_read!(self: Self, |conn| sqlx::query(
            "SELECT version, kind, entity_id FROM changes WHERE version > $1 \
             ORDER BY version LIMIT $2",
        )
        .arg(after)
        .arg(i64::from(limit.min(MAX_PAGE)))
        .all(conn)
        .await?);
        rows::all(&found, rows::change)
    }

    fn change_notices(&self) -> Option<tokio::sync::watch::Receiver<i64>> {
        SqlBackend::notice_receiver(self)
    }
}
