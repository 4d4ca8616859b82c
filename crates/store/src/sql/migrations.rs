//! The migrations both backends share, written once as templates (`crates/store/migrations`)
//! and rendered per engine, plus each backend's own migration files, in one sqlx
//! [`Migrator`] built at run time.
//!
//! A template is the migration's SQL with the few spellings that differ between the engines
//! left as placeholders:
//!
//! | placeholder | SQLite | PostgreSQL |
//! |---|---|---|
//! | `{INT}` (a 64-bit integer column) | `INTEGER` | `BIGINT` |
//! | `{BOOL}` (a flag) | `INTEGER` | `BOOLEAN` |
//! | `{BLOB}` (bytes) | `BLOB` | `BYTEA` |
//! | `{FALSE}` (a flag's default) | `0` | `FALSE` |
//!
//! and a line starting with `{sqlite}` or `{postgres}` belongs to that engine only (the
//! marker is removed; the other engine drops the line). Nothing else changes: a rendered
//! migration is byte for byte what the backend's `migrations/` file with that number held
//! before the templates, so sqlx's recorded checksum (SHA-384 of the text) of every
//! database migrated before still matches (the tests below pin each checksum).
//!
//! A backend keeps a `migrations/` directory of its own for migrations written per engine
//! (embedded with `sqlx::migrate!`, same numbers and names in both backends, checked by
//! `schema_parity`); [`migrator`] merges them with the rendered templates in version order
//! and refuses a version that is both.

use std::borrow::Cow;

use sqlx::error::BoxDynError;
use sqlx::migrate::{MigrateError, Migration, MigrationSource, MigrationType, Migrator};

use super::BoxFuture;

/// The engine a template is rendered for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// SQLite (`latchkey-store-sqlite`).
    Sqlite,
    /// PostgreSQL (`latchkey-store-postgres`).
    Postgres,
}

impl Dialect {
    /// The line marker for this engine's own lines.
    fn marker(self) -> &'static str {
        match self {
            Dialect::Sqlite => "{sqlite}",
            Dialect::Postgres => "{postgres}",
        }
    }

    /// The other engine.
    fn other(self) -> Dialect {
        match self {
            Dialect::Sqlite => Dialect::Postgres,
            Dialect::Postgres => Dialect::Sqlite,
        }
    }

    /// Placeholder → this engine's spelling.
    fn spellings(self) -> [(&'static str, &'static str); 4] {
        match self {
            Dialect::Sqlite => [
                ("{INT}", "INTEGER"),
                ("{BOOL}", "INTEGER"),
                ("{BLOB}", "BLOB"),
                ("{FALSE}", "0"),
            ],
            Dialect::Postgres => [
                ("{INT}", "BIGINT"),
                ("{BOOL}", "BOOLEAN"),
                ("{BLOB}", "BYTEA"),
                ("{FALSE}", "FALSE"),
            ],
        }
    }
}

/// One shared migration: its number, its name (as sqlx derives it from the file name:
/// `0001_initial.sql` → `initial`) and its template.
#[derive(Debug, Clone, Copy)]
pub struct SharedMigration {
    /// The version (the file name's number).
    pub version: i64,
    /// The description (the file name's rest, `_` as spaces, without `.sql`).
    pub description: &'static str,
    /// The template text.
    pub template: &'static str,
}

/// Every shared migration, in version order (a test checks that every file of
/// `crates/store/migrations` is listed here under its own number and name).
pub const SHARED: &[SharedMigration] = &[
    SharedMigration {
        version: 1,
        description: "initial",
        template: include_str!("../../migrations/0001_initial.sql"),
    },
    SharedMigration {
        version: 5,
        description: "lifecycle events",
        template: include_str!("../../migrations/0005_lifecycle_events.sql"),
    },
];

/// Renders `template` for `dialect` (see the module doc for the syntax).
pub fn render(template: &str, dialect: Dialect) -> String {
    let mut out = String::with_capacity(template.len());
    for line in template.split_inclusive('\n') {
        let line = if let Some(own) = line.strip_prefix(dialect.marker()) {
            own
        } else if line.starts_with(dialect.other().marker()) {
            continue;
        } else {
            line
        };
        let mut line = Cow::Borrowed(line);
        for (placeholder, spelling) in dialect.spellings() {
            if line.contains(placeholder) {
                line = Cow::Owned(line.replace(placeholder, spelling));
            }
        }
        out.push_str(&line);
    }
    out
}

/// The shared migrations rendered for `dialect`, as sqlx migrations.
pub fn shared(dialect: Dialect) -> Vec<Migration> {
    SHARED
        .iter()
        .map(|m| {
            let sql = render(m.template, dialect);
            // As sqlx's directory source decides it.
            let no_tx = sql.starts_with("-- no-transaction");
            Migration::new(
                m.version,
                Cow::Borrowed(m.description),
                MigrationType::Simple,
                Cow::Owned(sql),
                no_tx,
            )
        })
        .collect()
}

/// The migrations of one backend: the shared ones and the backend's own, in version order.
#[derive(Debug)]
struct Merged(Vec<Migration>);

impl MigrationSource<'static> for Merged {
    fn resolve(self) -> BoxFuture<'static, Result<Vec<Migration>, BoxDynError>> {
        Box::pin(async move { Ok(self.0) })
    }
}

/// The migrator for `dialect`: the shared migrations rendered for it and the backend's own
/// (`own`, usually `sqlx::migrate!("./migrations")`), in version order. A version both in
/// the templates and in `own` is refused (`MigrateError::Source`).
pub async fn migrator(dialect: Dialect, own: &Migrator) -> Result<Migrator, MigrateError> {
    let mut all = shared(dialect);
    for m in own.iter() {
        if all.iter().any(|s| s.version == m.version) {
            return Err(MigrateError::Source(
                format!(
                    "migration {} is both a shared template and a file of the backend",
                    m.version
                )
                .into(),
            ));
        }
        all.push(m.clone());
    }
    all.sort_by_key(|m| m.version);
    Migrator::new(Merged(all)).await
}

#[cfg(test)]
mod tests {
    // Test code: a failed step is the failure report.
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// SHA-384 of each migration file as the backends shipped it before the templates
    /// (`sha384sum crates/store-*/migrations/*.sql` at 95f0b48): what sqlx recorded in
    /// `_sqlx_migrations.checksum` of every database migrated since. A rendered template
    /// must keep it, or such a database refuses to start (`VersionMismatch`).
    const RECORDED: &[(Dialect, i64, &str)] = &[
        (
            Dialect::Sqlite,
            1,
            "8241943c4d31161be77d3013d8ccdcac06e1ee964461397580a39f12898c95fd0ca45ab754b704c68a94d6f052c05803",
        ),
        (
            Dialect::Sqlite,
            5,
            "542295504b73c0ae25429aee53f2a8fb7c0754b1e9b61eb1a7ba83f9069356d99c2bbf9a63d7380a8ef02f87c7f091e8",
        ),
        (
            Dialect::Postgres,
            1,
            "9a3c38ed625e9a4aa1d10d057583a2293b510e453d1d94afcd2198e05ce35d769b7b1906e3ade2593d7941a7c636de54",
        ),
        (
            Dialect::Postgres,
            5,
            "9c652dee9d64632fb0cf0778fedb7947900f2b06c0646a5f4186137f29cef77b11b9ed70a0543a1ba1b0375cdf36b2de",
        ),
    ];

    #[test]
    fn rendered_templates_keep_the_recorded_checksums() {
        for (dialect, version, recorded) in RECORDED {
            let m = shared(*dialect)
                .into_iter()
                .find(|m| m.version == *version)
                .expect("a shared migration with that version");
            assert_eq!(
                hex(&m.checksum),
                *recorded,
                "{dialect:?} migration {version}"
            );
        }
        // Every shared migration has a pinned checksum on both engines.
        assert_eq!(RECORDED.len(), SHARED.len() * 2);
    }

    #[test]
    fn rendering_leaves_no_marker_or_placeholder() {
        for dialect in [Dialect::Sqlite, Dialect::Postgres] {
            for m in SHARED {
                let sql = render(m.template, dialect);
                for token in [
                    "{sqlite}",
                    "{postgres}",
                    "{INT}",
                    "{BOOL}",
                    "{BLOB}",
                    "{FALSE}",
                ] {
                    assert!(!sql.contains(token), "{token} left in {}", m.version);
                }
                assert!(sql.contains("CREATE TABLE"));
            }
        }
    }

    #[test]
    fn render_spells_each_engine_and_keeps_only_its_lines() {
        let template = "{sqlite}-- s\n{postgres}-- p\nx {INT} {BOOL} {BLOB} DEFAULT {FALSE},\n";
        assert_eq!(
            render(template, Dialect::Sqlite),
            "-- s\nx INTEGER INTEGER BLOB DEFAULT 0,\n"
        );
        assert_eq!(
            render(template, Dialect::Postgres),
            "-- p\nx BIGINT BOOLEAN BYTEA DEFAULT FALSE,\n"
        );
    }

    #[test]
    fn every_template_file_is_listed_under_its_number_and_name() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
        let mut files: Vec<(i64, String, String)> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter_map(|name| {
                let (version, rest) = name.split_once('_')?;
                let description = rest.strip_suffix(".sql")?.replace('_', " ");
                let text = std::fs::read_to_string(dir.join(&name)).unwrap();
                Some((version.parse().unwrap(), description, text))
            })
            .collect();
        files.sort();
        let listed: Vec<(i64, String, String)> = SHARED
            .iter()
            .map(|m| (m.version, m.description.to_owned(), m.template.to_owned()))
            .collect();
        assert_eq!(files, listed);
    }

    #[tokio::test]
    async fn the_migrator_merges_in_version_order_and_refuses_a_version_twice() {
        let own = Migrator::new(Merged(vec![Migration::new(
            3,
            Cow::Borrowed("own"),
            MigrationType::Simple,
            Cow::Borrowed("SELECT 1;"),
            false,
        )]))
        .await
        .unwrap();
        let merged = migrator(Dialect::Sqlite, &own).await.unwrap();
        let versions: Vec<i64> = merged.iter().map(|m| m.version).collect();
        assert_eq!(versions, [1, 3, 5]);

        let clash = Migrator::new(Merged(vec![Migration::new(
            5,
            Cow::Borrowed("lifecycle events"),
            MigrationType::Simple,
            Cow::Borrowed("SELECT 1;"),
            false,
        )]))
        .await
        .unwrap();
        let err = migrator(Dialect::Postgres, &clash).await.unwrap_err();
        assert!(matches!(err, MigrateError::Source(_)), "{err}");
    }
}
