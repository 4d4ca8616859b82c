//! Change notices: PostgreSQL `LISTEN/NOTIFY` turned into wake-ups for the node's
//! change-feed reader.
//!
//! A write transaction that moved the change counter ends with
//! `pg_notify('latchkey_changes', '<version>')`, which PostgreSQL delivers at commit to
//! every listening session. One task per store listens on a connection of its own and
//! publishes the highest version heard on a `watch` channel. Notices are hints, never the
//! truth: the reader always reads the feed from the version it has applied. So a notice
//! lost while the listener was disconnected only delays (the reader also polls), and
//! whenever the listener (re)connects it publishes a wake-up, so the node re-reads the
//! feed at once instead of waiting for the next poll.

use std::time::Duration;

use latchkey_store::StoreResult;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgListener, PgPool, PgPoolOptions};
use tokio::sync::watch;

use crate::error::db;

/// The channel every node listens on.
pub(crate) const CHANNEL: &str = "latchkey_changes";

/// First wait before reconnecting the listener, doubled after each failure…
const MIN_BACKOFF: Duration = Duration::from_millis(100);
/// …up to this (short: until the listener is back, changes arrive by polling only).
const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// How long one connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Whether this database has `LISTEN/NOTIFY` (PostgreSQL does; CockroachDB and YugabyteDB
/// do not). A failed probe for any reason other than connectivity means "no".
pub(crate) async fn supported(conn: &mut PgConnection) -> StoreResult<bool> {
    match sqlx::query("SELECT pg_notify('latchkey_probe', '')")
        .execute(conn)
        .await
    {
        Ok(_) => Ok(true),
        Err(sqlx::Error::Database(e)) => {
            tracing::debug!(error = %e, "pg_notify is not available");
            Ok(false)
        }
        Err(other) => Err(db(other)),
    }
}

/// The running listener of one store (shared by its clones); stops when dropped.
#[derive(Debug)]
pub(crate) struct Notices {
    receiver: watch::Receiver<i64>,
    task: tokio::task::AbortHandle,
}

impl Notices {
    /// Starts listening on `runtime`, on a connection of its own (outside the pool, so a
    /// pool of one still serves queries).
    pub(crate) fn start(runtime: &tokio::runtime::Handle, options: PgConnectOptions) -> Notices {
        let (sender, receiver) = watch::channel(0);
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .min_connections(0)
            .acquire_timeout(CONNECT_TIMEOUT)
            .connect_lazy_with(options);
        let task = runtime.spawn(listen(pool, sender)).abort_handle();
        Notices { receiver, task }
    }

    /// A receiver for one reader.
    pub(crate) fn subscribe(&self) -> watch::Receiver<i64> {
        self.receiver.clone()
    }

    /// Stops the listener task (and so closes its connection).
    pub(crate) fn stop(&self) {
        self.task.abort();
    }
}

impl Drop for Notices {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Publishes a notice's version (the highest wins; anything else still wakes readers).
fn publish(sender: &watch::Sender<i64>, payload: &str) {
    match payload.parse::<i64>() {
        Ok(version) => sender.send_modify(|seen| *seen = (*seen).max(version)),
        Err(_) => sender.send_modify(|_| {}),
    }
}

/// Listens until every receiver is gone, reconnecting with backoff.
async fn listen(pool: PgPool, sender: watch::Sender<i64>) {
    let mut backoff = MIN_BACKOFF;
    let mut failures = 0u32;
    loop {
        match subscribe(&pool).await {
            Ok(mut listener) => {
                if failures > 0 {
                    tracing::info!("change notices: listening again; re-reading the change feed");
                }
                failures = 0;
                backoff = MIN_BACKOFF;
                // Whatever was announced while we were not listening is gone: wake the
                // reader so it catches up from the feed now.
                sender.send_modify(|_| {});
                loop {
                    tokio::select! {
                        () = sender.closed() => return,
                        received = listener.try_recv() => match received {
                            Ok(Some(notice)) => publish(&sender, notice.payload()),
                            // The connection dropped. sqlx would reconnect inside the next
                            // `try_recv`, but then nothing would wake the reader once it is
                            // back: subscribe afresh instead, which wakes it after connecting.
                            Ok(None) => {
                                tracing::warn!("change notices: connection lost; the change feed is still polled");
                                failures += 1;
                                break;
                            }
                            Err(e) => {
                                tracing::warn!(error = %e, "change notices: connection lost; the change feed is still polled");
                                failures += 1;
                                break;
                            }
                        }
                    }
                }
            }
            Err(e) => {
                if failures == 0 {
                    tracing::warn!(error = %e, "change notices: cannot listen; the change feed is still polled");
                } else {
                    tracing::debug!(error = %e, failures, "change notices: still cannot listen");
                }
                failures += 1;
            }
        }
        if pool.is_closed() {
            return;
        }
        tokio::select! {
            () = sender.closed() => return,
            () = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

async fn subscribe(pool: &PgPool) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(CHANNEL).await?;
    Ok(listener)
}
