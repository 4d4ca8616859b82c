//! The writer task: every write of a [`crate::SqliteStore`] is one closure (a
//! [`WriteOp`]) sent to one task, which runs it on the one writer connection, and commits
//! writes that arrived together in one transaction (group commit).
//!
//! How a batch goes:
//!
//! 1. the task takes every write queued so far (at most [`MAX_BATCH`]); a lone write is
//!    not delayed, and writes that arrive while a batch commits form the next one;
//! 2. `BEGIN IMMEDIATE` (the file's write lock, so limit checks and the inserts they guard
//!    cannot interleave with another process's writes);
//! 3. each write runs in a savepoint of its own, one after the other, each seeing the
//!    ones before it (limits stay exact). A write that fails is rolled back to its
//!    savepoint — alone, never its neighbours — and answered at once;
//! 4. one `COMMIT`, so one WAL sync (`synchronous=FULL`) makes the whole batch durable;
//!    only then is each write of the batch answered. A failed `COMMIT` (or a savepoint
//!    that cannot be rolled back) rolls the whole batch back and answers every write of
//!    it with the error: an acknowledged write is a durable one, always.
//!
//! The connection stays in the writer pool between batches (the pool holds exactly one),
//! so maintenance (`migrate`, `backup`) serialises with the batches on it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use latchkey_store::sql::{BoxFuture, WriteOp};
use latchkey_store::{StoreError, StoreResult};
use sqlx::sqlite::{SqliteConnection, SqlitePool};
use sqlx::{Sqlite, Transaction};
use tokio::sync::{mpsc, oneshot};

use crate::SqliteStore;
use crate::error::db;

/// Most writes committed by one transaction.
pub(crate) const MAX_BATCH: usize = 128;

/// Counters of the writer, for tests and benchmarks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriterStats {
    /// Writes handed to the writer task.
    pub queued: u64,
    /// Transactions the writer task committed or tried to commit (batches).
    pub batches: u64,
    /// Writes that ran in those batches.
    pub writes: u64,
}

#[derive(Debug, Default)]
struct Counters {
    queued: AtomicU64,
    batches: AtomicU64,
    writes: AtomicU64,
}

/// One queued write with its reply, its type erased so one queue carries every write.
trait Job: Send {
    /// Runs the write on `conn`; `true` when it succeeded (its answer waits for the commit).
    fn run<'c>(&'c mut self, conn: &'c mut SqliteConnection) -> BoxFuture<'c, bool>;
    /// Answers the caller: the write's own error if it failed, else the batch's outcome.
    fn answer(self: Box<Self>, committed: Result<(), StoreError>);
}

struct Pending<T> {
    op: Option<WriteOp<SqliteStore, T>>,
    result: Option<StoreResult<T>>,
    reply: oneshot::Sender<StoreResult<T>>,
}

impl<T: Send + 'static> Job for Pending<T> {
    fn run<'c>(&'c mut self, conn: &'c mut SqliteConnection) -> BoxFuture<'c, bool> {
        Box::pin(async move {
            let result = match self.op.take() {
                Some(op) => op(conn).await,
                None => Err(StoreError::Internal("a write ran twice".to_owned())),
            };
            let ok = result.is_ok();
            self.result = Some(result);
            ok
        })
    }

    fn answer(self: Box<Self>, committed: Result<(), StoreError>) {
        let answer = match self.result {
            Some(Ok(value)) => committed.map(|()| value),
            Some(Err(err)) => Err(err),
            None => Err(committed
                .err()
                .unwrap_or_else(|| StoreError::Internal("a write did not run".to_owned()))),
        };
        // The caller may have given up waiting (its request was cancelled): nothing to do.
        let _ = self.reply.send(answer);
    }
}

/// The sending side, held by every clone of the store.
#[derive(Debug, Clone)]
pub(crate) struct Writer {
    jobs: mpsc::UnboundedSender<Box<dyn Job>>,
    counters: Arc<Counters>,
}

impl std::fmt::Debug for dyn Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Job")
    }
}

impl Writer {
    /// Starts the writer task on the current Tokio runtime.
    pub(crate) fn start(pool: SqlitePool) -> Writer {
        let (jobs, queue) = mpsc::unbounded_channel();
        let counters = Arc::new(Counters::default());
        tokio::spawn(run(pool, queue, counters.clone()));
        Writer { jobs, counters }
    }

    /// Runs `op` in the next batch; answers after the commit that holds it. `Err(op)` when
    /// the task is gone (its runtime ended), so the caller can write without it.
    pub(crate) async fn write<T: Send + 'static>(
        &self,
        op: WriteOp<SqliteStore, T>,
    ) -> Result<StoreResult<T>, WriteOp<SqliteStore, T>> {
        if self.jobs.is_closed() {
            return Err(op);
        }
        let (reply, answer) = oneshot::channel();
        let job = Box::new(Pending {
            op: Some(op),
            result: None,
            reply,
        });
        // If the task stopped since the check, the job (and its reply) is dropped unrun
        // and the answer below says so.
        if self.jobs.send(job).is_ok() {
            self.counters.queued.fetch_add(1, Ordering::Relaxed);
        }
        Ok(answer.await.unwrap_or_else(|_| {
            Err(StoreError::Unavailable(
                "the SQLite writer stopped before answering".to_owned(),
            ))
        }))
    }

    /// The counters so far.
    pub(crate) fn stats(&self) -> WriterStats {
        WriterStats {
            queued: self.counters.queued.load(Ordering::Relaxed),
            batches: self.counters.batches.load(Ordering::Relaxed),
            writes: self.counters.writes.load(Ordering::Relaxed),
        }
    }
}

/// The task: one batch after another until every store clone is gone.
async fn run(
    pool: SqlitePool,
    mut queue: mpsc::UnboundedReceiver<Box<dyn Job>>,
    counters: Arc<Counters>,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while queue.recv_many(&mut batch, MAX_BATCH).await > 0 {
        counters.batches.fetch_add(1, Ordering::Relaxed);
        counters
            .writes
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        commit_batch(&pool, std::mem::take(&mut batch)).await;
    }
}

/// Runs one batch in one transaction (see the module docs).
async fn commit_batch(pool: &SqlitePool, jobs: Vec<Box<dyn Job>>) {
    let mut tx = match pool.begin_with("BEGIN IMMEDIATE").await {
        Ok(tx) => tx,
        Err(e) => {
            let err = db(e);
            for job in jobs {
                job.answer(Err(err.clone()));
            }
            return;
        }
    };
    let mut done = Vec::with_capacity(jobs.len());
    let mut broken: Option<StoreError> = None;
    for mut job in jobs {
        if let Some(err) = &broken {
            job.answer(Err(err.clone()));
            continue;
        }
        if let Err(err) = statement(&mut tx, "SAVEPOINT op").await {
            broken = Some(err.clone());
            job.answer(Err(err));
            continue;
        }
        if job.run(&mut tx).await {
            match statement(&mut tx, "RELEASE op").await {
                Ok(()) => done.push(job),
                Err(err) => {
                    broken = Some(err.clone());
                    job.answer(Err(err));
                }
            }
        } else {
            // Undo this write alone; its own error is its answer, given at once.
            let undone = match statement(&mut tx, "ROLLBACK TO op").await {
                Ok(()) => statement(&mut tx, "RELEASE op").await,
                Err(err) => Err(err),
            };
            if let Err(err) = undone {
                broken = Some(err);
            }
            job.answer(Ok(()));
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
    for job in done {
        job.answer(outcome.clone());
    }
}

async fn statement(tx: &mut Transaction<'static, Sqlite>, sql: &str) -> StoreResult<()> {
    sqlx::query(sql).execute(&mut **tx).await.map_err(db)?;
    Ok(())
}
