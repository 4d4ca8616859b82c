//! Mapping of sqlx errors into [`StoreError`]: no driver type crosses the store's API.

use latchkey_store::StoreError;
use sqlx::error::ErrorKind;

/// SQLite primary result codes that mean "try again later" rather than "bug".
const SQLITE_BUSY: i64 = 5;
const SQLITE_LOCKED: i64 = 6;
const SQLITE_NOMEM: i64 = 7;
const SQLITE_READONLY: i64 = 8;
const SQLITE_IOERR: i64 = 10;
const SQLITE_FULL: i64 = 13;
const SQLITE_CANTOPEN: i64 = 14;

/// Maps a driver error: unique violations become `Conflict` (with a message a client can
/// read), connectivity, locking and I/O problems become `Unavailable`, the rest `Internal`.
pub(crate) fn db(err: sqlx::Error) -> StoreError {
    match err {
        sqlx::Error::Database(db) => {
            match db.kind() {
                ErrorKind::UniqueViolation => {
                    return StoreError::Conflict(conflict_message(db.message()));
                }
                ErrorKind::ForeignKeyViolation => {
                    return StoreError::Conflict(
                        "an object this refers to does not exist".to_owned(),
                    );
                }
                _ => {}
            }
            let primary = db
                .code()
                .and_then(|code| code.parse::<i64>().ok())
                .map(|code| code & 0xff);
            match primary {
                Some(
                    SQLITE_BUSY | SQLITE_LOCKED | SQLITE_NOMEM | SQLITE_READONLY | SQLITE_IOERR
                    | SQLITE_FULL | SQLITE_CANTOPEN,
                ) => StoreError::Unavailable(db.message().to_owned()),
                _ => StoreError::Internal(db.message().to_owned()),
            }
        }
        sqlx::Error::PoolTimedOut => {
            StoreError::Unavailable("timed out waiting for a database connection".to_owned())
        }
        sqlx::Error::PoolClosed => StoreError::Unavailable("the store is closed".to_owned()),
        sqlx::Error::Io(e) => StoreError::Unavailable(e.to_string()),
        sqlx::Error::WorkerCrashed => {
            StoreError::Unavailable("the database worker thread stopped".to_owned())
        }
        other => StoreError::Internal(other.to_string()),
    }
}

/// Maps a migration error.
pub(crate) fn migrate(err: sqlx::migrate::MigrateError) -> StoreError {
    match err {
        sqlx::migrate::MigrateError::Execute(e) => db(e),
        other => StoreError::Internal(format!("migration failed: {other}")),
    }
}

/// A human message for a unique violation, from SQLite's
/// `UNIQUE constraint failed: table.column, ...` text.
fn conflict_message(message: &str) -> String {
    let columns = message
        .split_once(':')
        .map_or(message, |(_, cols)| cols)
        .trim();
    let text = if columns.contains("users.username_key") {
        "a user with this username already exists"
    } else if columns.contains("workspaces.name") {
        "a workspace with this name already exists"
    } else if columns.contains("tokens.owner_id") {
        "this user already has a legacy token"
    } else if columns.contains("idempotency.key") {
        "this idempotency key was already used"
    } else if columns.contains("token_secrets.hash") || columns.contains("sessions.hash") {
        "this secret is already in use"
    } else if columns.contains("signing_keys.id") {
        "a signing key with this id already exists"
    } else if columns.ends_with(".id") {
        "an object with this id already exists"
    } else {
        "this object already exists"
    };
    text.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conflict_messages_name_the_rule() {
        assert_eq!(
            conflict_message("UNIQUE constraint failed: workspaces.org_id, workspaces.name"),
            "a workspace with this name already exists"
        );
        assert_eq!(
            conflict_message("UNIQUE constraint failed: users.username_key"),
            "a user with this username already exists"
        );
        assert_eq!(
            conflict_message("UNIQUE constraint failed: tokens.owner_id"),
            "this user already has a legacy token"
        );
        assert_eq!(
            conflict_message("UNIQUE constraint failed: projects.id"),
            "an object with this id already exists"
        );
    }
}
