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
//!   ([`Store::change_notices`](latchkey_store::Store::change_notices)) turns notices into wake-ups for the node's change-feed
//!   reader. Engines without `LISTEN/NOTIFY` (probed at connect) run on catch-up polling
//!   alone.
//! * **Outages**: a pool with a short acquire timeout, and errors mapped so that a
//!   database that is away answers `Unavailable` (503) instead of hanging or 500, and
//!   the pool reconnects by itself when the database is back.
//!
//! The store's operations are the SQL shared with the SQLite backend
//! ([`latchkey_store::sql`]); this crate provides what is PostgreSQL's own: connecting and
//! the pool, the write transaction with its counter lock and notice
//! ([`SqlBackend::write`]), error mapping, the notices listener, the migrations, and the
//! two statements PostgreSQL writes its own way (the change-counter bump in one round
//! trip, the last-used merge over `unnest` of bound arrays).
//!
//! The schema is the migrations shared with the SQLite backend (templates in
//! `crates/store/migrations`, rendered for PostgreSQL: [`latchkey_store::sql::migrations`])
//! and this crate's own files in `migrations/`, in lock-step with the SQLite backend's, all
//! embedded in the binary; [`Store::migrate`](latchkey_store::Store::migrate) applies them.
//! [`PostgresStore::connect`] does not migrate by itself.

#![warn(missing_docs)]

mod error;
mod notices;
#[cfg(feature = "testing")]
pub mod testing;

use std::str::FromStr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use latchkey_store::sql::migrations::{self, Dialect};
use latchkey_store::sql::{Arg, Conn, Fetch, SqlBackend, WriteKind, WriteOp, commit_or_rollback};
use latchkey_store::{ChangeKind, StoreError, StoreResult};
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgQueryResult};
use sqlx::{ConnectOptions as _, Connection as _, Postgres, Transaction};
use tokio::sync::watch;

use crate::error::db;

/// This backend's own migration files (`crates/store-postgres/migrations`, embedded); the
/// shared ones are templates rendered by [`migrations::migrator`].
static OWN_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The pool size when the caller asks for zero.
const MIN_POOL: u32 = 1;

/// How a node connects to PostgreSQL ([`PostgresStore::connect_with`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostgresOptions {
    /// Most connections in the pool for queries (the notice listener has one more).
    pub pool_size: u32,
    /// How long a call waits for a pooled connection (or for a new one while the database
    /// is away) before answering `Unavailable`: short, so requests fail cleanly and
    /// promptly during an outage instead of piling up.
    pub acquire_timeout: Duration,
    /// A direct (session) connection URL for what a transaction pooler cannot carry:
    /// `LISTEN` for change notices, and the migrations (their advisory lock). `None`: the
    /// main URL.
    pub listen_url: Option<String>,
    /// The main URL leads to a pooler in transaction mode (PgBouncer `pool_mode =
    /// transaction`): no named prepared statements, every read in a transaction.
    pub transaction_pooling: bool,
}

impl Default for PostgresOptions {
    /// 10 connections, 3 s to get one, no pooler.
    fn default() -> Self {
        PostgresOptions {
            pool_size: 10,
            acquire_timeout: Duration::from_secs(3),
            listen_url: None,
            transaction_pooling: false,
        }
    }
}

/// A [`Store`](latchkey_store::Store) on a PostgreSQL database, shared with the other nodes.
///
/// Cloning is cheap and shares the pool and the notice listener.
#[derive(Clone)]
pub struct PostgresStore {
    pool: PgPool,
    options: PgConnectOptions,
    /// For `LISTEN` and migrations: the listen URL's, else `options`.
    direct: PgConnectOptions,
    transaction_pooling: bool,
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
    /// database answers. Call [`Store::migrate`](latchkey_store::Store::migrate) before use. The notice listener, when
    /// started, has one connection of its own besides the pool.
    pub async fn connect(url: &str, pool_size: u32) -> StoreResult<PostgresStore> {
        let options = PostgresOptions {
            pool_size,
            ..PostgresOptions::default()
        };
        PostgresStore::connect_with(url, &options).await
    }

    /// [`PostgresStore::connect`] with every option.
    pub async fn connect_with(url: &str, settings: &PostgresOptions) -> StoreResult<PostgresStore> {
        let parse = |url: &str| {
            PgConnectOptions::from_str(url)
                .map(|o| o.application_name("latchkey"))
                .map_err(|e| StoreError::Internal(format!("invalid PostgreSQL URL: {e}")))
        };
        let mut options = parse(url)?;
        if settings.transaction_pooling {
            options = options.statement_cache_capacity(0);
        }
        let direct = match &settings.listen_url {
            Some(listen) => parse(listen)?,
            None => options.clone(),
        };
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
            .max_connections(settings.pool_size.max(MIN_POOL))
            .min_connections(0)
            .acquire_timeout(settings.acquire_timeout)
            .connect_lazy_with(options.clone());
        Ok(PostgresStore {
            pool,
            options,
            direct,
            transaction_pooling: settings.transaction_pooling,
            notify,
            notices: Arc::new(OnceLock::new()),
        })
    }

    /// Turns notices off (`false`): writes send none and [`Store::change_notices`](latchkey_store::Store::change_notices) gives
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
        let version = sqlx::query("SELECT version FROM change_counter WHERE id = 1 FOR UPDATE")
            .scalar(&mut Conn::<PostgresStore>::with_statements(
                &mut tx,
                !self.transaction_pooling,
            ))
            .await?;
        Ok((tx, version))
    }

    /// Before a write transaction commits: if it moved the counter past `before`, tells the
    /// other nodes (one notice with the final version, delivered at commit).
    async fn announce(
        &self,
        tx: &mut Transaction<'static, Postgres>,
        before: i64,
    ) -> StoreResult<()> {
        if self.notify {
            sqlx::query(
                "SELECT pg_notify($1, version::text) FROM change_counter \
                 WHERE id = 1 AND version > $2",
            )
            .arg(notices::CHANNEL)
            .arg(before)
            .run(&mut Conn::<PostgresStore>::with_statements(
                tx,
                !self.transaction_pooling,
            ))
            .await?;
        }
        Ok(())
    }
}

impl SqlBackend for PostgresStore {
    type Db = Postgres;

    fn error(err: sqlx::Error) -> StoreError {
        db(err)
    }

    fn rows_affected(result: &PgQueryResult) -> u64 {
        result.rows_affected()
    }

    /// Applies pending migrations on a connection of its own, under the migrator's
    /// advisory lock, so nodes starting together migrate once; the connection is closed
    /// afterwards, which also releases the lock if a migration failed half-way.
    async fn run_migrations(&self) -> StoreResult<()> {
        let migrator = migrations::migrator(Dialect::Postgres, &OWN_MIGRATIONS)
            .await
            .map_err(error::migrate)?;
        // On the direct connection: the migrator's advisory lock is per session.
        let mut conn = self.direct.connect().await.map_err(db)?;
        // "relation _sqlx_migrations already exists, skipping" at every start is noise.
        sqlx::query("SET client_min_messages = warning")
            .execute(&mut conn)
            .await
            .map_err(db)?;
        let result = migrator.run_direct(&mut conn).await.map_err(error::migrate);
        if let Err(e) = conn.close().await {
            tracing::debug!(error = %e, "closing the migration connection failed");
        }
        result
    }

    async fn read(&self) -> StoreResult<PoolConnection<Postgres>> {
        self.pool.acquire().await.map_err(db)
    }

    /// A serialised write first locks the change counter's row and, before committing,
    /// announces the new version; bookkeeping runs in a plain transaction.
    async fn write<T: Send + 'static>(
        &self,
        kind: WriteKind,
        op: WriteOp<Self, T>,
    ) -> StoreResult<T> {
        match kind {
            WriteKind::Serialized => {
                let (mut tx, before) = self.begin_write().await?;
                let result = match op(&mut tx).await {
                    Ok(value) => self.announce(&mut tx, before).await.map(|()| value),
                    Err(err) => Err(err),
                };
                commit_or_rollback::<PostgresStore, T>(tx, result).await
            }
            WriteKind::Bookkeeping => {
                let mut tx = self.pool.begin().await.map_err(db)?;
                let result = op(&mut tx).await;
                commit_or_rollback::<PostgresStore, T>(tx, result).await
            }
        }
    }

    /// One round trip: a data-modifying CTE (SQLite has none). The transaction already
    /// holds the counter's row lock (taken when it began), so versions follow commit order.
    async fn bump(conn: &mut Conn<'_, Self>, kind: ChangeKind, id: &str) -> StoreResult<i64> {
        sqlx::query(
            "WITH bumped AS (UPDATE change_counter SET version = version + 1 WHERE id = 1 \
             RETURNING version) \
             INSERT INTO changes (version, kind, entity_id) SELECT version, $1, $2 FROM bumped \
             RETURNING version",
        )
        .arg(kind.as_str())
        .arg(id)
        .scalar(conn)
        .await
    }

    /// `LOWER` follows the database's locale here (Unicode case folding, or none in some
    /// locales); `translate` folds exactly the ASCII letters, as SQLite's `LOWER` does.
    fn ascii_lower(expr: &str) -> String {
        format!("translate({expr}, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz')")
    }

    /// One statement over `unnest` of three bound arrays (SQLite has no arrays).
    async fn record_last_used(
        conn: &mut Conn<'_, Self>,
        latest: &[(&str, i64, Option<&str>)],
    ) -> StoreResult<()> {
        let mut ids = Vec::with_capacity(latest.len());
        let mut ats = Vec::with_capacity(latest.len());
        let mut ips = Vec::with_capacity(latest.len());
        for &(id, at, ip) in latest {
            ids.push(id);
            ats.push(at);
            ips.push(ip);
        }
        let query = sqlx::query(
            "UPDATE tokens AS t SET last_used_at = u.at, last_used_ip = COALESCE(u.ip, t.last_used_ip) \
             FROM unnest($1::text[], $2::bigint[], $3::text[]) AS u (id, at, ip) \
             WHERE t.id = u.id AND (t.last_used_at IS NULL OR t.last_used_at < u.at)",
        )
        .bind(ids)
        .bind(ats)
        .bind(ips)
        .persistent(conn.prepared());
        query.execute(&mut *conn.raw()).await.map_err(db)?;
        Ok(())
    }

    fn notice_receiver(&self) -> Option<watch::Receiver<i64>> {
        if !self.notify {
            return None;
        }
        let runtime = tokio::runtime::Handle::try_current().ok()?;
        let notices = self
            .notices
            .get_or_init(|| notices::Notices::start(&runtime, self.direct.clone()));
        Some(notices.subscribe())
    }

    fn transaction_pooling(&self) -> bool {
        self.transaction_pooling
    }
}
