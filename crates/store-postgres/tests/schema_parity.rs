//! Schema parity: the SQLite and PostgreSQL migrations stay in lock-step — the same
//! per-backend migration files (numbers and names; the shared templates of
//! `crates/store/migrations` are one text for both), and after migrating, the same tables with the same
//! columns in the same order, the same nullability, and the same named indexes. Types may
//! differ by engine (INTEGER/BIGINT, BLOB/BYTEA, INTEGER 0/1/BOOLEAN).

// Test code: a failed step is the failure report.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::Path;

use latchkey_store::Store;
use latchkey_store_postgres::PostgresStore;
use latchkey_store_postgres::testing::TestDatabase;
use latchkey_store_sqlite::SqliteStore;
use sqlx::Row;

/// Table → columns as (name, nullable), in declaration order.
type Columns = BTreeMap<String, Vec<(String, bool)>>;

fn migration_files(crate_dir: &str) -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(crate_dir)
        .join("migrations");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".sql"))
        .collect();
    names.sort();
    names
}

#[test]
fn migration_files_have_the_same_numbers_and_names() {
    let sqlite = migration_files("store-sqlite");
    let postgres = migration_files("store-postgres");
    assert_eq!(sqlite, postgres);
}

async fn sqlite_schema() -> (Columns, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("parity.db");
    let store = SqliteStore::open(&path).await.unwrap();
    store.migrate().await.unwrap();
    store.close().await;
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' \
         AND name NOT LIKE 'sqlite_%' AND name <> '_sqlx_migrations' ORDER BY name",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let mut columns = Columns::new();
    for table in tables {
        let rows =
            sqlx::query("SELECT name, \"notnull\", pk FROM pragma_table_info(?) ORDER BY cid")
                .bind(&table)
                .fetch_all(&pool)
                .await
                .unwrap();
        let cols = rows
            .iter()
            .map(|r| {
                let not_null: i64 = r.get("notnull");
                let pk: i64 = r.get("pk");
                // A primary key is never NULL (SQLite's TEXT keys only in theory).
                (r.get::<String, _>("name"), not_null == 0 && pk == 0)
            })
            .collect();
        columns.insert(table, cols);
    }
    let indexes: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'index' \
         AND name NOT LIKE 'sqlite_autoindex_%' ORDER BY name",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    pool.close().await;
    (columns, indexes)
}

async fn postgres_schema(url: &str) -> (Columns, Vec<String>) {
    let store = PostgresStore::connect(url, 2).await.unwrap();
    store.migrate().await.unwrap();
    store.close().await;
    let pool = sqlx::PgPool::connect(url).await.unwrap();
    let rows = sqlx::query(
        "SELECT table_name::text AS t, column_name::text AS c, is_nullable::text AS n \
         FROM information_schema.columns WHERE table_schema = current_schema() \
         AND table_name <> '_sqlx_migrations' ORDER BY table_name, ordinal_position",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let mut columns = Columns::new();
    for r in rows {
        columns
            .entry(r.get("t"))
            .or_default()
            .push((r.get("c"), r.get::<String, _>("n") == "YES"));
    }
    // Indexes created by name; those behind PRIMARY KEY and UNIQUE constraints are named
    // by each engine its own way and left out on both sides.
    let indexes: Vec<String> = sqlx::query_scalar(
        "SELECT indexname::text FROM pg_indexes WHERE schemaname = current_schema() \
         AND tablename <> '_sqlx_migrations' \
         AND indexname NOT IN (SELECT conname FROM pg_constraint) ORDER BY indexname",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    pool.close().await;
    (columns, indexes)
}

#[tokio::test]
async fn migrated_schemas_have_the_same_tables_columns_and_indexes() {
    let Some(db) = TestDatabase::create().await else {
        return;
    };
    let (sqlite_columns, sqlite_indexes) = sqlite_schema().await;
    let (pg_columns, pg_indexes) = postgres_schema(&db.url).await;
    assert!(sqlite_columns.contains_key("tokens"));
    assert_eq!(
        sqlite_columns.keys().collect::<Vec<_>>(),
        pg_columns.keys().collect::<Vec<_>>(),
        "tables differ"
    );
    for (table, columns) in &sqlite_columns {
        assert_eq!(
            Some(columns),
            pg_columns.get(table),
            "columns of {table} differ"
        );
    }
    assert_eq!(sqlite_indexes, pg_indexes, "named indexes differ");
    db.drop_now().await;
}
