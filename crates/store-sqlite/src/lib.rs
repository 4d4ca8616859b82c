//! Latchkey's embedded store: one SQLite file in the data directory.
//!
//! Layout of the connections (DESIGN.md §7, "Storage and the hot path"):
//!
//! * the database runs in WAL mode with `synchronous=FULL` (an acknowledged write is
//!   durable), foreign keys on and a busy timeout, so another process (an operator command)
//!   can share the file;
//! * **one writer connection** (a pool of exactly one) and **one writer task** using it:
//!   every write is a closure sent to the task, which runs the writes that arrived together
//!   in one `BEGIN IMMEDIATE` transaction, each in a savepoint of its own, and commits them
//!   with one `COMMIT` (group commit: one WAL sync for the batch); each caller is answered
//!   after the commit holding its write. `BEGIN IMMEDIATE` takes the file's write lock first,
//!   so limit checks and the inserts they guard cannot interleave with another process;
//! * a small pool of **read connections** (`query_only`) that never wait for the writer.
//!
//! The store's operations are the SQL shared with the PostgreSQL backend
//! ([`latchkey_store::sql`]): this crate provides what is SQLite's own — connecting, the
//! pragmas and pools above, the write transaction ([`SqlBackend::write`]), error mapping,
//! the migrations, and the one statement SQLite writes its own way (the last-used merge,
//! over `json_each`). Every write checks, changes, writes its audit event and bumps the
//! change counter in one transaction; any error rolls the whole transaction back.
//!
//! The schema is the migrations shared with the PostgreSQL backend (templates in
//! `crates/store/migrations`, rendered for SQLite: [`latchkey_store::sql::migrations`]) and
//! this crate's own files in `migrations/`, all embedded in the binary;
//! [`latchkey_store::Store::migrate`] applies them. [`SqliteStore::open`] does not migrate
//! by itself.

#![warn(missing_docs)]

mod error;
mod writer;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use latchkey_core::{NewAuditEvent, SecretRecord, TokenRecord};
use latchkey_store::sql::migrations::{self, Dialect};
use latchkey_store::sql::{Arg, Conn, Fetch, SqlBackend, WriteKind, WriteOp, commit_or_rollback};
use latchkey_store::{StoreError, StoreResult};
use sqlx::Sqlite;
use sqlx::pool::PoolConnection;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteQueryResult,
    SqliteSynchronous,
};
use time::OffsetDateTime;

use crate::error::db;
use crate::writer::Writer;
pub use crate::writer::WriterStats;

/// This backend's own migration files (`crates/store-sqlite/migrations`, embedded); the
/// shared ones are templates rendered by [`migrations::migrator`].
static OWN_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// How long a statement waits for a lock held by another connection or process.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a call waits for a pooled connection before answering `Unavailable`.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(30);
/// Read connections.
const READ_CONNECTIONS: u32 = 4;
/// Last-used rows per `UPDATE` statement.
const LAST_USED_CHUNK: usize = 5_000;

/// A [`latchkey_store::Store`] on one SQLite file: a single writer connection and a small
/// read pool.
///
/// Cloning is cheap and shares the connections.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    writer: SqlitePool,
    reader: SqlitePool,
    /// The task that runs every write on `writer`, committing them in batches.
    batches: Writer,
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
        let batches = Writer::start(writer.clone());
        Ok(SqliteStore {
            writer,
            reader,
            batches,
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

    /// What the writer task has done so far: writes queued, batches (transactions) and
    /// writes committed in them. For tests and benchmarks of the group commit.
    pub fn writer_stats(&self) -> WriterStats {
        self.batches.stats()
    }

    /// Bulk import: inserts `tokens` with their secrets in one transaction, without limit
    /// checks, writing one audit event (`event`) and one change for the whole batch. For
    /// migrations from another system and for loading benchmark data; the API's
    /// [`latchkey_store::Store::create_token`] is the way to create a token under the rules.
    pub async fn import_tokens(
        &self,
        now: OffsetDateTime,
        tokens: &[(TokenRecord, SecretRecord)],
        event: NewAuditEvent,
    ) -> StoreResult<()> {
        latchkey_store::sql::import_tokens(self, now, tokens.to_vec(), event).await
    }
}

impl SqlBackend for SqliteStore {
    type Db = Sqlite;

    fn error(err: sqlx::Error) -> StoreError {
        db(err)
    }

    fn rows_affected(result: &SqliteQueryResult) -> u64 {
        result.rows_affected()
    }

    async fn run_migrations(&self) -> StoreResult<()> {
        migrations::migrator(Dialect::Sqlite, &OWN_MIGRATIONS)
            .await
            .map_err(error::migrate)?
            .run(&self.writer)
            .await
            .map_err(error::migrate)
    }

    async fn read(&self) -> StoreResult<PoolConnection<Sqlite>> {
        self.reader.acquire().await.map_err(db)
    }

    /// Every write, bookkeeping included, goes to the writer task, which runs it in a
    /// savepoint of a `BEGIN IMMEDIATE` transaction on the one writer connection and
    /// answers once the batch holding it has committed (group commit, see `writer.rs`).
    /// Without the task (its runtime ended), the write runs in a transaction of its own.
    async fn write<T: Send + 'static>(
        &self,
        _kind: WriteKind,
        op: WriteOp<Self, T>,
    ) -> StoreResult<T> {
        match self.batches.write(op).await {
            Ok(answer) => answer,
            Err(op) => {
                let mut tx = self
                    .writer
                    .begin_with("BEGIN IMMEDIATE")
                    .await
                    .map_err(db)?;
                let result = op(&mut tx).await;
                commit_or_rollback::<SqliteStore, T>(tx, result).await
            }
        }
    }

    /// One `UPDATE ... FROM json_each(?)` per chunk rather than one statement per token:
    /// every statement is a round trip to the connection's thread, and under traffic spread
    /// over many tokens a flush holds tens of thousands of them. (SQLite has no arrays to
    /// bind, hence JSON; PostgreSQL binds arrays.)
    async fn record_last_used(
        conn: &mut Conn<'_, Self>,
        latest: &[(&str, i64, Option<&str>)],
    ) -> StoreResult<()> {
        for chunk in latest.chunks(LAST_USED_CHUNK) {
            let json = serde_json::to_string(chunk)
                .map_err(|e| StoreError::Internal(format!("encoding last-used batch: {e}")))?;
            sqlx::query(
                "UPDATE tokens SET last_used_at = u.at, last_used_ip = COALESCE(u.ip, tokens.last_used_ip) \
                 FROM (SELECT json_extract(value, '$[0]') AS id, \
                              json_extract(value, '$[1]') AS at, \
                              json_extract(value, '$[2]') AS ip \
                       FROM json_each($1)) AS u \
                 WHERE tokens.id = u.id \
                 AND (tokens.last_used_at IS NULL OR tokens.last_used_at < u.at)",
            )
            .arg(json)
            .run(conn)
            .await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use latchkey_store::Store;

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
        let op = latchkey_store::sql::write_op::<SqliteStore, (), _>(|raw| {
            Box::pin(async move {
                let conn = &mut Conn::<SqliteStore>::new(raw);
                SqliteStore::bump(conn, latchkey_store::ChangeKind::Instance, "").await?;
                sqlx::query("INSERT INTO nonexistent VALUES (1)")
                    .run(conn)
                    .await?;
                Ok(())
            })
        });
        assert!(store.write(WriteKind::Serialized, op).await.is_err());
        assert_eq!(store.current_version().await.unwrap(), 0);
        // The writer is usable again afterwards.
        store.ensure_hash_key("k").await.unwrap();
    }
}
