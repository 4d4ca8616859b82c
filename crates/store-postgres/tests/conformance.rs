//! The store conformance suite over PostgreSQL: one test per case, each on a database of
//! its own that is dropped afterwards (see `latchkey_store_postgres::testing` for which
//! server, and when the cases skip).

// Test set-up: a failure to create the store is the test's failure.
#![allow(clippy::expect_used)]

use std::sync::Arc;

use latchkey_store::Store;
use latchkey_store_postgres::PostgresStore;
use latchkey_store_postgres::testing::TestDatabase;

/// A fresh, migrated, empty store on a scratch database, dropped after the case.
async fn fresh() -> Option<(Arc<dyn Store>, TestDatabase)> {
    let db = TestDatabase::create().await?;
    let store = PostgresStore::connect(&db.url, 8).await.expect("connect");
    store.migrate().await.expect("migrate");
    Some((Arc::new(store), db))
}

latchkey_store::store_conformance_tests!(fresh);
