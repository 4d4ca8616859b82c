//! Latchkey's embedded store: one SQLite file in the data directory.
//!
//! Layout of the connections (DESIGN.md §7, "Storage and the hot path"):
//!
//! * the database runs in WAL mode with `synchronous=FULL` (an acknowledged write is
//!   durable), foreign keys on and a busy timeout, so another process (an operator command)
//!   can share the file;
//! * **one writer connection** (a pool of exactly one): every write is a transaction that
//!   starts with `BEGIN IMMEDIATE`, so limit checks and the inserts they guard cannot
//!   interleave with another writer, and concurrent writes queue on the pool;
//! * a small pool of **read connections** (`query_only`) that never wait for the writer.
//!
//! Every write method checks, changes, writes its audit event and bumps the change
//! counter in one transaction; any error rolls the whole transaction back.
//!
//! The schema lives in `migrations/` (embedded in the binary); [`latchkey_store::Store::migrate`]
//! applies it. [`SqliteStore::open`] does not migrate by itself.

#![warn(missing_docs)]

mod error;
mod ops;
mod rows;

use std::path::Path;
use std::str::FromStr;
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
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{QueryBuilder, Sqlite, Transaction};
use time::OffsetDateTime;
use tokio::sync::{mpsc, oneshot};

use crate::error::db;

/// The embedded migrations (`crates/store-sqlite/migrations`).
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// How long a statement waits for a lock held by another connection or process.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a call waits for a pooled connection before answering `Unavailable`.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(30);
/// Read connections.
const READ_CONNECTIONS: u32 = 4;
/// The most items one page may hold, whatever the caller asks.
const MAX_PAGE: u32 = 10_000;

/// A [`Store`] on one SQLite file: a single writer connection and a small read pool.
///
/// Cloning is cheap and shares the connections.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    writer: SqlitePool,
    reader: SqlitePool,
    /// Token creations, committed in batches by [`batch_creates`].
    creates: mpsc::UnboundedSender<CreateJob>,
}

/// One `create_token` call waiting for the batch writer.
#[derive(Debug)]
struct CreateJob {
    now: OffsetDateTime,
    token: TokenRecord,
    secret: SecretRecord,
    limits: Limits,
    event: NewAuditEvent,
    reply: oneshot::Sender<StoreResult<TokenRecord>>,
}

/// Most creations committed by one transaction.
const MAX_CREATE_BATCH: usize = 64;

/// Group commit for token creation, the write that comes in floods (DESIGN.md §7:
/// "concurrent writes batched through the writer"). Creations that queue up while a
/// commit is in progress share the next transaction: each runs in its own savepoint (a
/// refused one — a limit, a second legacy token — rolls back alone and is answered at
/// once), then one `COMMIT` (one WAL sync) makes them all durable, and only then is each
/// caller answered. A lone creation is not delayed. Limits stay exact: the batch runs one
/// creation after another on the single writer connection, each seeing the ones before.
async fn batch_creates(writer: SqlitePool, mut jobs: mpsc::UnboundedReceiver<CreateJob>) {
    let mut batch = Vec::with_capacity(MAX_CREATE_BATCH);
    while jobs.recv_many(&mut batch, MAX_CREATE_BATCH).await > 0 {
        run_create_batch(&writer, std::mem::take(&mut batch)).await;
    }
}

async fn run_create_batch(writer: &SqlitePool, jobs: Vec<CreateJob>) {
    let mut tx = match writer.begin_with("BEGIN IMMEDIATE").await {
        Ok(tx) => tx,
        Err(e) => {
            let err = db(e);
            for job in jobs {
                let _ = job.reply.send(Err(err.clone()));
            }
            return;
        }
    };
    let mut created = Vec::with_capacity(jobs.len());
    let mut broken: Option<StoreError> = None;
    for job in jobs {
        if let Some(err) = &broken {
            let _ = job.reply.send(Err(err.clone()));
            continue;
        }
        let conn: &mut ops::Conn = &mut tx;
        if let Err(e) = sqlx::query("SAVEPOINT create_token")
            .execute(&mut *conn)
            .await
        {
            let err = db(e);
            let _ = job.reply.send(Err(err.clone()));
            broken = Some(err);
            continue;
        }
        let result = ops::create_token(
            conn,
            job.now,
            &job.token,
            &job.secret,
            &job.limits,
            &job.event,
        )
        .await;
        let end = match &result {
            Ok(_) => "RELEASE create_token",
            Err(_) => "ROLLBACK TO create_token",
        };
        let mut ended = sqlx::query(end).execute(&mut *conn).await.map(|_| ());
        if result.is_err() && ended.is_ok() {
            ended = sqlx::query("RELEASE create_token")
                .execute(&mut *conn)
                .await
                .map(|_| ());
        }
        if let Err(e) = ended {
            broken = Some(db(e));
        }
        match result {
            Ok(record) => created.push((job.reply, record)),
            Err(err) => {
                let _ = job.reply.send(Err(err));
            }
        }
    }
    let outcome = match broken {
        Some(err) => {
            if let Err(rollback) = tx.rollback().await {
                tracing::warn!(error = %rollback, "rollback failed");
            }
            Err(err)
        }
        None => tx.commit().await.map_err(db),
    };
    for (reply, record) in created {
        let _ = reply.send(outcome.clone().map(|()| record));
    }
}

impl SqliteStore {
    /// Opens (creating it if missing) the database file at `path`. Call
    /// [`Store::migrate`] before use.
    pub async fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true);
        SqliteStore::connect(options, false).await
    }

    /// Opens a database from a `sqlite://path` URL (SQLx URL syntax; the file is created
    /// if missing unless the URL sets `mode=`). `sqlite::memory:` gives a private
    /// in-memory database served by the single writer connection alone.
    pub async fn open_url(url: &str) -> Result<SqliteStore, StoreError> {
        let mut options = SqliteConnectOptions::from_str(url)
            .map_err(|e| StoreError::Internal(format!("invalid SQLite URL: {e}")))?;
        if !url.contains("mode=") {
            options = options.create_if_missing(true);
        }
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        SqliteStore::connect(options, in_memory).await
    }

    async fn connect(options: SqliteConnectOptions, in_memory: bool) -> StoreResult<SqliteStore> {
        let base = options.foreign_keys(true).busy_timeout(BUSY_TIMEOUT);
        let writer_options = base
            .clone()
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full);
        // No ping before handing out a connection: a connection to a local file does not go
        // stale, and each ping is one more round trip to the connection's thread.
        let mut writer_pool = SqlitePoolOptions::new()
            .max_connections(1)
            .test_before_acquire(false)
            .acquire_timeout(ACQUIRE_TIMEOUT);
        if in_memory {
            // The database lives only as long as a connection to it.
            writer_pool = writer_pool
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None);
        }
        let writer = writer_pool.connect_with(writer_options).await.map_err(db)?;
        let reader = if in_memory {
            writer.clone()
        } else {
            SqlitePoolOptions::new()
                .max_connections(READ_CONNECTIONS)
                .test_before_acquire(false)
                .acquire_timeout(ACQUIRE_TIMEOUT)
                .connect_with(base.pragma("query_only", "ON"))
                .await
                .map_err(db)?
        };
        let (creates, jobs) = mpsc::unbounded_channel();
        tokio::spawn(batch_creates(writer.clone(), jobs));
        Ok(SqliteStore {
            writer,
            reader,
            creates,
        })
    }

    /// Closes every connection; later calls answer `Unavailable`.
    pub async fn close(&self) {
        self.reader.close().await;
        self.writer.close().await;
    }

    /// Writes a consistent copy of the database to `dest` (which must not exist) while the
    /// store stays in use (`VACUUM INTO`). The hash key is not in the database: back it up
    /// separately.
    pub async fn backup(&self, dest: &Path) -> StoreResult<()> {
        let dest = dest
            .to_str()
            .ok_or_else(|| StoreError::Internal("the backup path is not valid UTF-8".to_owned()))?;
        sqlx::query("VACUUM INTO ?")
            .bind(dest)
            .execute(&self.writer)
            .await
            .map_err(db)?;
        Ok(())
    }

    /// Starts a write transaction on the writer connection.
    async fn begin(&self) -> StoreResult<Transaction<'static, Sqlite>> {
        self.writer.begin_with("BEGIN IMMEDIATE").await.map_err(db)
    }

    /// Pages through `query` (which must already have a `WHERE` clause) by `id_column`,
    /// newest first.
    async fn page<T>(
        &self,
        mut query: QueryBuilder<'static, Sqlite>,
        id_column: &str,
        page: &PageRequest,
        decode: fn(&SqliteRow) -> StoreResult<T>,
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
        let found = query.build().fetch_all(&self.reader).await.map_err(db)?;
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
async fn finish<T>(tx: Transaction<'static, Sqlite>, result: StoreResult<T>) -> StoreResult<T> {
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

/// Runs `$op(conn, ...)` in a write transaction and commits or rolls back.
macro_rules! in_tx {
    ($self:ident, |$conn:ident| $op:expr) => {{
        let mut tx = $self.begin().await?;
        let result = {
            let $conn: &mut ops::Conn = &mut tx;
            $op.await
        };
        finish(tx, result).await
    }};
}

impl SqliteStore {
    /// Bulk import: inserts `tokens` with their secrets in one transaction, without limit
    /// checks, writing one audit event (`event`) and one change for the whole batch. For
    /// migrations from another system and for loading benchmark data; the API's
    /// [`Store::create_token`] is the way to create a token under the rules.
    pub async fn import_tokens(
        &self,
        now: OffsetDateTime,
        tokens: &[(TokenRecord, SecretRecord)],
        event: NewAuditEvent,
    ) -> StoreResult<()> {
        in_tx!(self, |conn| ops::import_tokens(conn, now, tokens, &event))
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn migrate(&self) -> StoreResult<()> {
        MIGRATOR.run(&self.writer).await.map_err(error::migrate)
    }

    async fn ensure_hash_key(&self, key_id: &str) -> StoreResult<()> {
        in_tx!(self, |conn| ops::ensure_hash_key(conn, key_id))
    }

    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1")
            .execute(&self.reader)
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
        .fetch_optional(&self.reader)
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
        .fetch_optional(&self.reader)
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
        let row = sqlx::query(&format!("{} WHERE id = ?", rows::USER_SELECT))
            .bind(id)
            .fetch_optional(&self.reader)
            .await
            .map_err(db)?
            .ok_or(StoreError::NotFound("user"))?;
        rows::user(&row)
    }

    async fn find_user_by_username(&self, username: &str) -> StoreResult<Option<UserRecord>> {
        sqlx::query(&format!("{} WHERE username_key = ?", rows::USER_SELECT))
            .bind(ops::username_key(username))
            .fetch_optional(&self.reader)
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
        let row = sqlx::query(&format!("{} WHERE id = ?", rows::WORKSPACE_SELECT))
            .bind(id)
            .fetch_optional(&self.reader)
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
            "{} WHERE org_id = ? AND name = ?",
            rows::WORKSPACE_SELECT
        ))
        .bind(org_id)
        .bind(name)
        .fetch_optional(&self.reader)
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
            "{} WHERE m.workspace_id = ? AND m.user_id = ?",
            rows::MEMBERSHIP_SELECT
        ))
        .bind(workspace_id)
        .bind(user_id)
        .fetch_optional(&self.reader)
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
            "{} WHERE m.user_id = ? ORDER BY m.workspace_id",
            rows::MEMBERSHIP_SELECT
        ))
        .bind(user_id)
        .fetch_all(&self.reader)
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
        let row = sqlx::query(&format!("{} WHERE id = ?", rows::PROJECT_SELECT))
            .bind(id)
            .fetch_optional(&self.reader)
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
        let (reply, answer) = oneshot::channel();
        let job = CreateJob {
            now,
            token,
            secret,
            limits: limits.clone(),
            event,
            reply,
        };
        match self.creates.send(job) {
            Ok(()) => answer.await.unwrap_or_else(|_| {
                Err(StoreError::Unavailable(
                    "the SQLite batch writer stopped".to_owned(),
                ))
            }),
            // The batch writer is gone (its runtime ended): write directly.
            Err(mpsc::error::SendError(job)) => in_tx!(self, |conn| ops::create_token(
                conn,
                job.now,
                &job.token,
                &job.secret,
                &job.limits,
                &job.event
            )),
        }
    }

    async fn get_token(&self, id: &str) -> StoreResult<TokenRecord> {
        let row = sqlx::query(&format!("{} WHERE t.id = ?", rows::TOKEN_SELECT))
            .bind(id)
            .fetch_optional(&self.reader)
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
        let Some(row) = sqlx::query(&format!("{} WHERE s.hash = ?", rows::SECRET_SELECT))
            .bind(&hash[..])
            .fetch_optional(&self.reader)
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
            .fetch_one(&self.reader)
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
             WHERE key = ? AND created_at >= ?",
        )
        .bind(key)
        .bind(not_before.unix_timestamp())
        .fetch_optional(&self.reader)
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
        in_tx!(self, |conn| ops::create_session(
            conn, now, &session, &hash, &event
        ))
    }

    async fn find_session(&self, hash: &SecretHash) -> StoreResult<Option<SessionRecord>> {
        sqlx::query(&format!("{} WHERE hash = ?", rows::SESSION_SELECT))
            .bind(&hash[..])
            .fetch_optional(&self.reader)
            .await
            .map_err(db)?
            .as_ref()
            .map(rows::session)
            .transpose()
    }

    async fn touch_session(&self, id: &str, now: OffsetDateTime) -> StoreResult<()> {
        in_tx!(self, |conn| ops::touch_session(conn, id, now))
    }

    async fn delete_session(
        &self,
        now: OffsetDateTime,
        id: &str,
        event: Option<NewAuditEvent>,
    ) -> StoreResult<()> {
        in_tx!(self, |conn| ops::delete_session(
            conn,
            now,
            id,
            event.as_ref()
        ))
    }

    // --- audit -------------------------------------------------------------------------

    async fn append_audit(&self, now: OffsetDateTime, event: NewAuditEvent) -> StoreResult<()> {
        in_tx!(self, |conn| ops::audit(conn, now, &event))
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
            "{} WHERE expires_at > ? ORDER BY created_at DESC, id DESC",
            rows::SIGNING_KEY_SELECT
        ))
        .bind(now.unix_timestamp())
        .fetch_all(&self.reader)
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
            .fetch_one(&self.reader)
            .await
            .map_err(db)
    }

    async fn changes_since(&self, after: i64, limit: u32) -> StoreResult<Vec<Change>> {
        let found = sqlx::query(
            "SELECT version, kind, entity_id FROM changes WHERE version > ? \
             ORDER BY version LIMIT ?",
        )
        .bind(after)
        .bind(i64::from(limit.min(MAX_PAGE)))
        .fetch_all(&self.reader)
        .await
        .map_err(db)?;
        rows::all(&found, rows::change)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn pragma(pool: &SqlitePool, name: &str) -> String {
        use sqlx::Row;
        let row = sqlx::query(&format!("PRAGMA {name}"))
            .fetch_one(pool)
            .await
            .unwrap();
        row.try_get::<String, _>(0)
            .or_else(|_| row.try_get::<i64, _>(0).map(|v| v.to_string()))
            .unwrap()
    }

    #[tokio::test]
    async fn connections_are_set_up_as_designed() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("pragmas.db"))
            .await
            .unwrap();
        store.migrate().await.unwrap();
        assert_eq!(pragma(&store.writer, "journal_mode").await, "wal");
        // 2 = FULL: an acknowledged write is durable.
        assert_eq!(pragma(&store.writer, "synchronous").await, "2");
        assert_eq!(pragma(&store.writer, "foreign_keys").await, "1");
        assert_eq!(pragma(&store.writer, "busy_timeout").await, "5000");
        assert_eq!(store.writer.options().get_max_connections(), 1);
        assert_eq!(pragma(&store.reader, "journal_mode").await, "wal");
        assert_eq!(pragma(&store.reader, "foreign_keys").await, "1");
        assert_eq!(pragma(&store.reader, "query_only").await, "1");
        // The read pool cannot write, whatever a bug might try.
        let write = sqlx::query("INSERT INTO meta (key, value) VALUES ('x', 'y')")
            .execute(&store.reader)
            .await
            .map_err(db);
        assert!(write.is_err());
    }

    #[tokio::test]
    async fn failed_writes_roll_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("rollback.db"))
            .await
            .unwrap();
        store.migrate().await.unwrap();
        // The second statement fails after the first succeeded inside the transaction.
        let mut tx = store.begin().await.unwrap();
        let result: StoreResult<()> = async {
            ops::bump(&mut tx, latchkey_store::ChangeKind::Instance, "").await?;
            sqlx::query("INSERT INTO nonexistent VALUES (1)")
                .execute(&mut *tx)
                .await
                .map_err(db)?;
            Ok(())
        }
        .await;
        assert!(finish(tx, result).await.is_err());
        assert_eq!(store.current_version().await.unwrap(), 0);
        // The writer is usable again afterwards.
        store.ensure_hash_key("k").await.unwrap();
    }
}
