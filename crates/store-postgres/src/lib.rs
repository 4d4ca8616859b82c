//! Latchkey's store for several nodes: one PostgreSQL database shared by every node behind
//! a load balancer (docs/scale-out.md).
//!
//! It keeps the SQLite backend's rules, translated to a shared server:
//!
//! * **Writers are serialised** like SQLite's single writer: every write transaction
//!   first locks the change counter's row (`SELECT … FOR UPDATE`), so limit checks and the
//!   inserts they guard cannot interleave with another node's, and change versions follow
//!   commit order. Under `READ COMMITTED` each statement after the lock sees everything
//!   committed before it was granted. Bookkeeping that touches one row (audit appends,
//!   session writes) skips the lock.
//! * **Bootstrap-once** rides on the unique `bootstrap` row; no advisory locks (the
//!   migrator's own lock aside).
//! * **Notices**: a write transaction that changed the counter ends with
//!   `pg_notify('latchkey_changes', <version>)`, delivered at commit; a listener task
//!   ([`Store::change_notices`]) turns notices into wake-ups for the node's change-feed
//!   reader. Engines without `LISTEN/NOTIFY` (probed at connect) run on catch-up polling
//!   alone.
//! * **Outages**: a pool with a short acquire timeout, and errors mapped so that a
//!   database that is away answers `Unavailable` (503) instead of hanging or 500, and
//!   the pool reconnects by itself when the database is back.
//!
//! The schema lives in `migrations/` (embedded in the binary), in lock-step with the
//! SQLite backend's; [`Store::migrate`] applies it. [`PostgresStore::connect`] does not
//! migrate by itself.

#![warn(missing_docs)]

mod error;
mod notices;
mod ops;
mod rows;
#[cfg(feature = "testing")]
pub mod testing;

use std::str::FromStr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use latchkey_core::policy::Limits;
use latchkey_core::{
    InstanceSettings, MembershipRecord, NewAuditEvent, OrgRecord, ProjectRecord, SecretHash,
    SecretRecord, SessionRecord, TokenRecord, TokenSettings, UserRecord, WorkspaceRecord,
};
use latchkey_proto::{AuditEvent, TokenType, WorkspaceRole};
use latchkey_store::{
    AuditFilter, BootstrapPlan, Change, IdempotencyRecord, LastUsed, PageRequest, Paged, Purged,
    Retention, SigningKeyRecord, Store, StoreError, StoreResult, TokenFilter, UserPatch,
};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::{ConnectOptions as _, Connection as _, Postgres, QueryBuilder, Transaction};
use time::OffsetDateTime;
use tokio::sync::watch;

use crate::error::db;

/// The embedded migrations (`crates/store-postgres/migrations`).
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// How long a call waits for a pooled connection (or for a new one while the database is
/// away) before answering `Unavailable`: short, so requests fail cleanly during an outage.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);
/// The most items one page may hold, whatever the caller asks.
const MAX_PAGE: u32 = 10_000;
/// The pool size when the caller asks for zero.
const MIN_POOL: u32 = 1;

/// A [`Store`] on a PostgreSQL database, shared with the other nodes.
///
/// Cloning is cheap and shares the pool and the notice listener.
#[derive(Clone)]
pub struct PostgresStore {
    pool: PgPool,
    options: PgConnectOptions,
    /// Whether writes send `NOTIFY` and a listener may be started.
    notify: bool,
    notices: Arc<OnceLock<notices::Notices>>,
}

/// Never shows the connection options: they hold the password.
impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("host", &self.options.get_host())
            .field("database", &self.options.get_database())
            .field("notify", &self.notify)
            .finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// Connects to `url` (`postgres://user:pass@host:port/db?sslmode=…`, the libpq URL
    /// syntax) with a pool of at most `pool_size` connections, and checks that the
    /// database answers. Call [`Store::migrate`] before use. The notice listener, when
    /// started, has one connection of its own besides the pool.
    pub async fn connect(url: &str, pool_size: u32) -> StoreResult<PostgresStore> {
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| StoreError::Internal(format!("invalid PostgreSQL URL: {e}")))?
            .application_name("latchkey");
        // One connection first, so a start against a database that is away or refuses us
        // says why (the pool would only report a timeout).
        let mut first = options.connect().await.map_err(db)?;
        let notify = notices::supported(&mut first).await?;
        if let Err(e) = first.close().await {
            tracing::debug!(error = %e, "closing the first connection failed");
        }
        if !notify {
            tracing::warn!(
                "this database has no LISTEN/NOTIFY: other nodes' changes are seen by \
                 catch-up polling alone (verifier.poll_interval_ms)"
            );
        }
        let pool = PgPoolOptions::new()
            .max_connections(pool_size.max(MIN_POOL))
            .min_connections(0)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_lazy_with(options.clone());
        Ok(PostgresStore {
            pool,
            options,
            notify,
            notices: Arc::new(OnceLock::new()),
        })
    }

    /// Turns notices off (`false`): writes send none and [`Store::change_notices`] gives
    /// none, so this node sees other nodes' changes by catch-up polling alone, as on an
    /// engine without `LISTEN/NOTIFY`. For tests and for comparing the two.
    #[must_use]
    pub fn with_notices(mut self, enabled: bool) -> PostgresStore {
        self.notify = self.notify && enabled;
        self
    }

    /// Closes every connection (and stops the notice listener); later calls answer
    /// `Unavailable`.
    pub async fn close(&self) {
        if let Some(notices) = self.notices.get() {
            notices.stop();
        }
        self.pool.close().await;
    }

    /// Starts a write transaction: locks the change counter's row, which serialises
    /// writers across every node, and returns the version it stood at.
    async fn begin_write(&self) -> StoreResult<(Transaction<'static, Postgres>, i64)> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        let version: i64 =
            sqlx::query_scalar("SELECT version FROM change_counter WHERE id = 1 FOR UPDATE")
                .fetch_one(&mut *tx)
                .await
                .map_err(db)?;
        Ok((tx, version))
    }

    /// Before a write transaction commits: if it moved the counter past `before`, tells the
    /// other nodes (one notice with the final version, delivered at commit).
    async fn announce(&self, conn: &mut ops::Conn, before: i64) -> StoreResult<()> {
        if self.notify {
            sqlx::query(
                "SELECT pg_notify($1, version::text) FROM change_counter \
                 WHERE id = 1 AND version > $2",
            )
            .bind(notices::CHANNEL)
            .bind(before)
            .execute(&mut *conn)
            .await
            .map_err(db)?;
        }
        Ok(())
    }

    /// Pages through `query` (which must already have a `WHERE` clause) by `id_column`,
    /// newest first.
    async fn page<T>(
        &self,
        mut query: QueryBuilder<'static, Postgres>,
        id_column: &str,
        page: &PageRequest,
        decode: fn(&PgRow) -> StoreResult<T>,
        id_of: fn(&T) -> &str,
    ) -> StoreResult<Paged<T>> {
        if let Some(cursor) = &page.cursor {
            query
                .push(format_args!(" AND {id_column} < "))
                .push_bind(cursor.clone());
        }
        let limit = page.limit.clamp(1, MAX_PAGE);
        query
            .push(format_args!(" ORDER BY {id_column} DESC LIMIT "))
            .push_bind(i64::from(limit) + 1);
        let found = query.build().fetch_all(&self.pool).await.map_err(db)?;
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
}

/// Commits on success; rolls back (explicitly, not only on drop) on failure.
async fn finish<T>(tx: Transaction<'static, Postgres>, result: StoreResult<T>) -> StoreResult<T> {
    match result {
        Ok(value) => {
            tx.commit().await.map_err(db)?;
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

/// Runs `$op(conn, ...)` in a write transaction (holding the counter's lock), announces
/// the change to the other nodes, and commits or rolls back.
macro_rules! in_tx {
    ($self:ident, |$conn:ident| $op:expr) => {{
        let (mut tx, before) = $self.begin_write().await?;
        let result = {
            let $conn: &mut ops::Conn = &mut tx;
            $op.await
        };
        let result = match result {
            Ok(value) => $self.announce(&mut tx, before).await.map(|()| value),
            Err(err) => Err(err),
        };
        finish(tx, result).await
    }};
}

/// Runs `$op(conn, ...)` in a transaction that does not take the counter's lock: for
/// bookkeeping that records no change and touches rows no locked writer waits on in
/// another order (audit appends, one session row).
macro_rules! in_plain_tx {
    ($self:ident, |$conn:ident| $op:expr) => {{
        let mut tx = $self.pool.begin().await.map_err(db)?;
        let result = {
            let $conn: &mut ops::Conn = &mut tx;
            $op.await
        };
        finish(tx, result).await
    }};
}

#[async_trait]
impl Store for PostgresStore {
    /// Applies pending migrations on a connection of its own, under the migrator's
    /// advisory lock, so nodes starting together migrate once; the connection is closed
    /// afterwards, which also releases the lock if a migration failed half-way.
    async fn migrate(&self) -> StoreResult<()> {
        let mut conn = self.options.connect().await.map_err(db)?;
        // "relation _sqlx_migrations already exists, skipping" at every start is noise.
        sqlx::query("SET client_min_messages = warning")
            .execute(&mut conn)
            .await
            .map_err(db)?;
        let result = MIGRATOR.run_direct(&mut conn).await.map_err(error::migrate);
        if let Err(e) = conn.close().await {
            tracing::debug!(error = %e, "closing the migration connection failed");
        }
        result
    }

    async fn ensure_hash_key(&self, key_id: &str) -> StoreResult<()> {
        in_tx!(self, |conn| ops::ensure_hash_key(conn, key_id))
    }

    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(())
    }

    async fn bootstrap(&self, now: OffsetDateTime, plan: BootstrapPlan) -> StoreResult<bool> {
        in_tx!(self, |conn| ops::bootstrap(conn, now, &plan))
    }

    // --- settings ----------------------------------------------------------------------

    async fn get_org(&self) -> StoreResult<OrgRecord> {
        let row = sqlx::query(&format!(
            "{} ORDER BY created_at, id LIMIT 1",
            rows::ORG_SELECT
        ))
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?
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
        in_tx!(self, |conn| ops::update_token_settings(
            conn, now, org_id, &settings, &event
        ))
    }

    async fn get_instance_settings(&self) -> StoreResult<InstanceSettings> {
        let row = sqlx::query(
            "SELECT max_active_tokens, default_token_lifetime_days FROM instance_settings \
             WHERE id = 1",
        )
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?
        .ok_or(StoreError::NotFound("instance settings"))?;
        rows::instance(&row)
    }

    async fn update_instance_settings(
        &self,
        now: OffsetDateTime,
        settings: InstanceSettings,
        event: NewAuditEvent,
    ) -> StoreResult<InstanceSettings> {
        in_tx!(self, |conn| ops::update_instance_settings(
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
        in_tx!(self, |conn| ops::create_user(conn, now, &user, &event))
    }

    async fn get_user(&self, id: &str) -> StoreResult<UserRecord> {
        let row = sqlx::query(&format!("{} WHERE id = $1", rows::USER_SELECT))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?
            .ok_or(StoreError::NotFound("user"))?;
        rows::user(&row)
    }

    async fn find_user_by_username(&self, username: &str) -> StoreResult<Option<UserRecord>> {
        sqlx::query(&format!("{} WHERE username_key = $1", rows::USER_SELECT))
            .bind(ops::username_key(username))
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?
            .as_ref()
            .map(rows::user)
            .transpose()
    }

    async fn list_users(&self, org_id: &str, page: &PageRequest) -> StoreResult<Paged<UserRecord>> {
        let mut query = QueryBuilder::new(rows::USER_SELECT);
        query.push(" WHERE org_id = ").push_bind(org_id.to_owned());
        self.page(query, "id", page, rows::user, |u| &u.id).await
    }

    async fn update_user(
        &self,
        now: OffsetDateTime,
        id: &str,
        patch: UserPatch,
        event: NewAuditEvent,
    ) -> StoreResult<UserRecord> {
        in_tx!(self, |conn| ops::update_user(conn, now, id, &patch, &event))
    }

    // --- workspaces and members --------------------------------------------------------

    async fn create_workspace(
        &self,
        now: OffsetDateTime,
        workspace: WorkspaceRecord,
        creator: Option<(String, WorkspaceRole)>,
        event: NewAuditEvent,
    ) -> StoreResult<WorkspaceRecord> {
        in_tx!(self, |conn| ops::create_workspace(
            conn,
            now,
            &workspace,
            creator.as_ref(),
            &event
        ))
    }

    async fn get_workspace(&self, id: &str) -> StoreResult<WorkspaceRecord> {
        let row = sqlx::query(&format!("{} WHERE id = $1", rows::WORKSPACE_SELECT))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?
            .ok_or(StoreError::NotFound("workspace"))?;
        rows::workspace(&row)
    }

    async fn find_workspace_by_name(
        &self,
        org_id: &str,
        name: &str,
    ) -> StoreResult<Option<WorkspaceRecord>> {
        sqlx::query(&format!(
            "{} WHERE org_id = $1 AND name = $2",
            rows::WORKSPACE_SELECT
        ))
        .bind(org_id)
        .bind(name)
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?
        .as_ref()
        .map(rows::workspace)
        .transpose()
    }

    async fn list_workspaces(
        &self,
        org_id: &str,
        page: &PageRequest,
    ) -> StoreResult<Paged<WorkspaceRecord>> {
        let mut query = QueryBuilder::new(rows::WORKSPACE_SELECT);
        query.push(" WHERE org_id = ").push_bind(org_id.to_owned());
        self.page(query, "id", page, rows::workspace, |w| &w.id)
            .await
    }

    async fn put_member(
        &self,
        now: OffsetDateTime,
        workspace_id: &str,
        user_id: &str,
        role: WorkspaceRole,
        event: NewAuditEvent,
    ) -> StoreResult<MembershipRecord> {
        in_tx!(self, |conn| ops::put_member(
            conn,
            now,
            workspace_id,
            user_id,
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
        in_tx!(self, |conn| ops::remove_member(
            conn,
            now,
            workspace_id,
            user_id,
            &event
        ))
    }

    async fn get_membership(
        &self,
        workspace_id: &str,
        user_id: &str,
    ) -> StoreResult<Option<MembershipRecord>> {
        sqlx::query(&format!(
            "{} WHERE m.workspace_id = $1 AND m.user_id = $2",
            rows::MEMBERSHIP_SELECT
        ))
        .bind(workspace_id)
        .bind(user_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?
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
        let mut query = QueryBuilder::new(rows::MEMBERSHIP_SELECT);
        query
            .push(" WHERE m.workspace_id = ")
            .push_bind(workspace_id.to_owned());
        self.page(query, "m.user_id", page, rows::membership, |m| &m.user_id)
            .await
    }

    async fn memberships_of(&self, user_id: &str) -> StoreResult<Vec<MembershipRecord>> {
        let found = sqlx::query(&format!(
            "{} WHERE m.user_id = $1 ORDER BY m.workspace_id",
            rows::MEMBERSHIP_SELECT
        ))
        .bind(user_id)
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows::all(&found, rows::membership)
    }

    // --- projects ----------------------------------------------------------------------

    async fn create_project(
        &self,
        now: OffsetDateTime,
        project: ProjectRecord,
        event: NewAuditEvent,
    ) -> StoreResult<ProjectRecord> {
        in_tx!(self, |conn| ops::create_project(
            conn, now, &project, &event
        ))
    }

    async fn get_project(&self, id: &str) -> StoreResult<ProjectRecord> {
        let row = sqlx::query(&format!("{} WHERE id = $1", rows::PROJECT_SELECT))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?
            .ok_or(StoreError::NotFound("project"))?;
        rows::project(&row)
    }

    async fn list_projects(
        &self,
        workspace_id: &str,
        page: &PageRequest,
    ) -> StoreResult<Paged<ProjectRecord>> {
        let mut query = QueryBuilder::new(rows::PROJECT_SELECT);
        query
            .push(" WHERE workspace_id = ")
            .push_bind(workspace_id.to_owned());
        self.page(query, "id", page, rows::project, |p| &p.id).await
    }

    async fn delete_project(
        &self,
        now: OffsetDateTime,
        id: &str,
        event: NewAuditEvent,
    ) -> StoreResult<Vec<String>> {
        in_tx!(self, |conn| ops::delete_project(conn, now, id, &event))
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
        in_tx!(self, |conn| ops::create_token(
            conn, now, &token, &secret, limits, &event
        ))
    }

    async fn get_token(&self, id: &str) -> StoreResult<TokenRecord> {
        let row = sqlx::query(&format!("{} WHERE t.id = $1", rows::TOKEN_SELECT))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?
            .ok_or(StoreError::NotFound("token"))?;
        rows::token(&row)
    }

    async fn list_tokens(
        &self,
        org_id: &str,
        filter: &TokenFilter,
        page: &PageRequest,
    ) -> StoreResult<Paged<TokenRecord>> {
        let mut query = QueryBuilder::new(rows::TOKEN_SELECT);
        query
            .push(" WHERE t.org_id = ")
            .push_bind(org_id.to_owned());
        if let Some(workspace_id) = &filter.workspace_id {
            query
                .push(" AND t.workspace_id = ")
                .push_bind(workspace_id.clone());
        }
        if let Some(owner_id) = &filter.owner_id {
            query.push(" AND t.owner_id = ").push_bind(owner_id.clone());
        }
        if let Some(token_type) = filter.token_type {
            query
                .push(" AND t.token_type = ")
                .push_bind(token_type.as_str());
        }
        if let Some(user_id) = &filter.visible_to {
            query
                .push(" AND ((t.owner_id = ")
                .push_bind(user_id.clone())
                .push(" AND t.token_type IN (")
                .push_bind(TokenType::Personal.as_str())
                .push(", ")
                .push_bind(TokenType::Legacy.as_str())
                .push("))");
            if filter.include_workspace_tokens {
                query
                    .push(" OR t.token_type IN (")
                    .push_bind(TokenType::Client.as_str())
                    .push(", ")
                    .push_bind(TokenType::Frontend.as_str())
                    .push(")");
            }
            query.push(")");
        }
        self.page(query, "t.id", page, rows::token, |t| &t.id).await
    }

    async fn find_secret(
        &self,
        hash: &SecretHash,
    ) -> StoreResult<Option<(TokenRecord, SecretRecord)>> {
        let Some(row) = sqlx::query(&format!("{} WHERE s.hash = $1", rows::SECRET_SELECT))
            .bind(&hash[..])
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?
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
        in_tx!(self, |conn| ops::revoke_token(
            conn, now, id, leaked, &event
        ))
    }

    async fn restore_token(
        &self,
        now: OffsetDateTime,
        id: &str,
        limits: &Limits,
        event: NewAuditEvent,
    ) -> StoreResult<TokenRecord> {
        in_tx!(self, |conn| ops::restore_token(
            conn, now, id, limits, &event
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
        let rotation = ops::Rotation {
            id,
            new_secret: &new_secret,
            old_not_after,
            expires_at,
            idempotency: idempotency.as_ref(),
            event: &event,
        };
        in_tx!(self, |conn| ops::rotate_token(conn, now, rotation))
    }

    async fn delete_token(
        &self,
        now: OffsetDateTime,
        id: &str,
        event: NewAuditEvent,
    ) -> StoreResult<()> {
        in_tx!(self, |conn| ops::delete_token(conn, now, id, &event))
    }

    async fn record_last_used(&self, batch: &[LastUsed]) -> StoreResult<()> {
        if batch.is_empty() {
            return Ok(());
        }
        in_tx!(self, |conn| ops::record_last_used(conn, batch))
    }

    async fn expire_tokens(&self, now: OffsetDateTime) -> StoreResult<Vec<String>> {
        in_tx!(self, |conn| ops::expire_tokens(conn, now))
    }

    async fn purge_rotated_secrets(&self, now: OffsetDateTime) -> StoreResult<u64> {
        in_tx!(self, |conn| ops::purge_rotated_secrets(conn, now))
    }

    async fn purge_retired(&self, retention: &Retention) -> StoreResult<Purged> {
        in_tx!(self, |conn| ops::purge_retired(conn, retention))
    }

    async fn count_active_tokens(&self) -> StoreResult<u64> {
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM tokens WHERE state = 'active'")
            .fetch_one(&self.pool)
            .await
            .map_err(db)?;
        Ok(u64::try_from(count).unwrap_or(0))
    }

    async fn get_idempotency(
        &self,
        key: &str,
        not_before: OffsetDateTime,
    ) -> StoreResult<Option<IdempotencyRecord>> {
        sqlx::query(
            "SELECT key, request_hash, response, created_at FROM idempotency \
             WHERE key = $1 AND created_at >= $2",
        )
        .bind(key)
        .bind(not_before.unix_timestamp())
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?
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
        in_plain_tx!(self, |conn| ops::create_session(
            conn, now, &session, &hash, &event
        ))
    }

    async fn find_session(&self, hash: &SecretHash) -> StoreResult<Option<SessionRecord>> {
        sqlx::query(&format!("{} WHERE hash = $1", rows::SESSION_SELECT))
            .bind(&hash[..])
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?
            .as_ref()
            .map(rows::session)
            .transpose()
    }

    async fn touch_session(&self, id: &str, now: OffsetDateTime) -> StoreResult<()> {
        in_plain_tx!(self, |conn| ops::touch_session(conn, id, now))
    }

    async fn delete_session(
        &self,
        now: OffsetDateTime,
        id: &str,
        event: Option<NewAuditEvent>,
    ) -> StoreResult<()> {
        in_plain_tx!(self, |conn| ops::delete_session(
            conn,
            now,
            id,
            event.as_ref()
        ))
    }

    // --- audit -------------------------------------------------------------------------

    async fn append_audit(&self, now: OffsetDateTime, event: NewAuditEvent) -> StoreResult<()> {
        in_plain_tx!(self, |conn| ops::audit(conn, now, &event))
    }

    async fn list_audit(
        &self,
        filter: &AuditFilter,
        page: &PageRequest,
    ) -> StoreResult<Paged<AuditEvent>> {
        let mut query = QueryBuilder::new(rows::AUDIT_SELECT);
        query.push(" WHERE 1 = 1");
        if let Some(workspace_id) = &filter.workspace_id {
            query
                .push(" AND workspace_id = ")
                .push_bind(workspace_id.clone());
        }
        if let Some(actor_id) = &filter.actor_id {
            query.push(" AND actor_id = ").push_bind(actor_id.clone());
        }
        if let Some(token_id) = &filter.token_id {
            query
                .push(" AND ((target_type = 'token' AND target_id = ")
                .push_bind(token_id.clone())
                .push(") OR actor_token_id = ")
                .push_bind(token_id.clone())
                .push(")");
        }
        if let Some(action) = &filter.action {
            query.push(" AND action = ").push_bind(action.clone());
        }
        if let Some(since) = filter.since {
            query
                .push(" AND created_at >= ")
                .push_bind(since.unix_timestamp());
        }
        if let Some(until) = filter.until {
            query
                .push(" AND created_at < ")
                .push_bind(until.unix_timestamp());
        }
        if let Some(user_id) = &filter.involving_user {
            query
                .push(" AND (actor_id = ")
                .push_bind(user_id.clone())
                .push(" OR subject_user_id = ")
                .push_bind(user_id.clone())
                .push(")");
        }
        self.page(query, "id", page, rows::audit_event, |e| &e.id)
            .await
    }

    // --- JWT signing keys --------------------------------------------------------------

    async fn list_signing_keys(&self, now: OffsetDateTime) -> StoreResult<Vec<SigningKeyRecord>> {
        let found = sqlx::query(&format!(
            "{} WHERE expires_at > $1 ORDER BY created_at DESC, id DESC",
            rows::SIGNING_KEY_SELECT
        ))
        .bind(now.unix_timestamp())
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows::all(&found, rows::signing_key)
    }

    async fn add_signing_key(
        &self,
        key: SigningKeyRecord,
        not_before: OffsetDateTime,
    ) -> StoreResult<bool> {
        in_tx!(self, |conn| ops::add_signing_key(conn, &key, not_before))
    }

    // --- change feed -------------------------------------------------------------------

    async fn current_version(&self) -> StoreResult<i64> {
        sqlx::query_scalar("SELECT version FROM change_counter WHERE id = 1")
            .fetch_one(&self.pool)
            .await
            .map_err(db)
    }

    async fn changes_since(&self, after: i64, limit: u32) -> StoreResult<Vec<Change>> {
        let found = sqlx::query(
            "SELECT version, kind, entity_id FROM changes WHERE version > $1 \
             ORDER BY version LIMIT $2",
        )
        .bind(after)
        .bind(i64::from(limit.min(MAX_PAGE)))
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows::all(&found, rows::change)
    }

    fn change_notices(&self) -> Option<watch::Receiver<i64>> {
        if !self.notify {
            return None;
        }
        let runtime = tokio::runtime::Handle::try_current().ok()?;
        let notices = self
            .notices
            .get_or_init(|| notices::Notices::start(&runtime, self.options.clone()));
        Some(notices.subscribe())
    }
}
