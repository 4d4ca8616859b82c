//! Mapping of sqlx errors into [`StoreError`]: no driver type crosses the store's API.
//!
//! What matters most here is telling "the database is away, retry later" (`Unavailable`,
//! which the server answers with 503) from "a bug" (`Internal`, 500): a node must survive
//! a PostgreSQL restart or fail-over without being restarted itself.

use latchkey_store::StoreError;
use sqlx::error::ErrorKind;

/// Maps a driver error: unique violations become `Conflict` (with a message a client can
/// read), connectivity and "try again" conditions become `Unavailable`, the rest `Internal`.
pub(crate) fn db(err: sqlx::Error) -> StoreError {
    match err {
        sqlx::Error::Database(db) => {
            match db.kind() {
                ErrorKind::UniqueViolation => {
                    return StoreError::Conflict(conflict_message(db.constraint()));
                }
                ErrorKind::ForeignKeyViolation => {
                    return StoreError::Conflict(
                        "an object this refers to does not exist".to_owned(),
                    );
                }
                _ => {}
            }
            let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
            if is_transient(&code) {
                StoreError::Unavailable(format!("{} ({code})", db.message()))
            } else {
                StoreError::Internal(format!("{} ({code})", db.message()))
            }
        }
        sqlx::Error::PoolTimedOut => {
            StoreError::Unavailable("timed out waiting for a database connection".to_owned())
        }
        sqlx::Error::PoolClosed => StoreError::Unavailable("the store is closed".to_owned()),
        sqlx::Error::Io(e) => StoreError::Unavailable(e.to_string()),
        sqlx::Error::Tls(e) => StoreError::Unavailable(format!("TLS: {e}")),
        sqlx::Error::WorkerCrashed => {
            StoreError::Unavailable("the database connection's worker stopped".to_owned())
        }
        other => StoreError::Internal(other.to_string()),
    }
}

/// SQLSTATEs after which the same request may well succeed later: connection exceptions
/// (class 08), insufficient resources (53: too many connections, disk full), operator
/// intervention (57P01 admin shutdown, 57P02 crash shutdown, 57P03 cannot connect now —
/// a restart), serialization failures and deadlocks (40001, 40P01), and a read-only
/// transaction (25006: a standby that has not been promoted yet after a fail-over).
fn is_transient(code: &str) -> bool {
    code.starts_with("08")
        || code.starts_with("53")
        || matches!(
            code,
            "57P01" | "57P02" | "57P03" | "40001" | "40P01" | "25006"
        )
}

/// Maps a migration error.
pub(crate) fn migrate(err: sqlx::migrate::MigrateError) -> StoreError {
    match err {
        sqlx::migrate::MigrateError::Execute(e) => db(e),
        other => StoreError::Internal(format!("migration failed: {other}")),
    }
}

/// A human message for a unique violation, from the violated constraint's name
/// (PostgreSQL's default names: `<table>_pkey`, `<table>_<columns>_key`, or the index).
fn conflict_message(constraint: Option<&str>) -> String {
    let name = constraint.unwrap_or("");
    let text = match name {
        "users_username_key_key" => "a user with this username already exists",
        "workspaces_org_id_name_key" => "a workspace with this name already exists",
        "tokens_one_legacy_per_owner" => "this user already has a legacy token",
        "idempotency_pkey" => "this idempotency key was already used",
        "token_secrets_pkey" | "sessions_hash_key" => "this secret is already in use",
        "signing_keys_pkey" => "a signing key with this id already exists",
        other if other.ends_with("_pkey") => "an object with this id already exists",
        _ => "this object already exists",
    };
    text.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conflict_messages_name_the_rule() {
        assert_eq!(
            conflict_message(Some("workspaces_org_id_name_key")),
            "a workspace with this name already exists"
        );
        assert_eq!(
            conflict_message(Some("users_username_key_key")),
            "a user with this username already exists"
        );
        assert_eq!(
            conflict_message(Some("tokens_one_legacy_per_owner")),
            "this user already has a legacy token"
        );
        assert_eq!(
            conflict_message(Some("projects_pkey")),
            "an object with this id already exists"
        );
        assert_eq!(conflict_message(None), "this object already exists");
    }

    #[test]
    fn restarts_and_connection_losses_are_transient() {
        for code in [
            "08006", "08001", "57P01", "57P03", "53300", "40001", "40P01",
        ] {
            assert!(is_transient(code), "{code}");
        }
        for code in ["23505", "42P01", "22P02", ""] {
            assert!(!is_transient(code), "{code}");
        }
        assert!(matches!(
            db(sqlx::Error::PoolTimedOut),
            StoreError::Unavailable(_)
        ));
        assert!(matches!(
            db(sqlx::Error::Io(std::io::Error::from(
                std::io::ErrorKind::ConnectionRefused
            ))),
            StoreError::Unavailable(_)
        ));
    }
}
