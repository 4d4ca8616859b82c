//! The Latchkey server: the HTTP API, the verifier (hot path), sessions, and the background
//! tasks (change-feed sync, last-used flush, expiry sweep).
//!
//! A request flows: [`app::app`]'s middleware resolves the caller once
//! ([`auth::authenticate`] → the [`verifier`] for tokens, the store for sessions) → a thin
//! handler in [`api`] parses input with the extractors of [`extract`] → a method of the
//! service layer ([`service`]) asks `latchkey_core::policy`, performs one atomic store
//! operation with its audit event, and invalidates the verifier → [`error::ApiError`] is the
//! only way failures become responses.
//!
//! Embedding: [`prepare`] opens and migrates the store, checks the hash key, bootstraps the
//! first start and returns the [`state::AppState`]; [`app::serve`] runs it on a listener
//! until a shutdown future resolves.

pub mod api;
pub mod app;
pub mod auth;
pub mod bootstrap;
pub mod budgets;
pub mod config;
pub mod console;
pub mod crypto;
pub mod error;
pub mod events;
pub mod extract;
pub mod fasthash;
pub mod forward_auth;
pub mod jwt;
pub mod metrics;
pub mod password;
pub mod procstat;
pub mod service;
pub mod state;
pub mod usage;
pub mod verifier;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::http::HeaderName;
use latchkey_core::HashKey;
use latchkey_store::{Store, StoreError};
use latchkey_store_postgres::{PostgresOptions, PostgresStore};
use latchkey_store_sqlite::SqliteStore;

pub use app::{app, serve};
pub use bootstrap::{BootstrapOptions, Bootstrapped};
pub use config::Config;
pub use state::{AppState, Clock};

/// Why the server cannot start. Each message says what to fix.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Bad configuration.
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    /// The store failed.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// A file could not be read or written.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// Cause.
        source: std::io::Error,
    },
    /// An invalid value.
    #[error("{0}")]
    Invalid(String),
}

/// Where the hash key comes from, besides the data directory's key file.
#[derive(Clone, Default)]
pub struct HashKeySource {
    /// `LATCHKEY_HASH_KEY`: 64 hex characters.
    pub hex: Option<String>,
    /// `LATCHKEY_HASH_KEY_FILE`: a file holding the same text.
    pub file: Option<PathBuf>,
}

impl std::fmt::Debug for HashKeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HashKeySource")
            .field("hex", &self.hex.as_ref().map(|_| "<redacted>"))
            .field("file", &self.file)
            .finish()
    }
}

/// Everything besides [`Config`] that a start needs.
#[derive(Debug, Clone, Default)]
pub struct StartOptions {
    /// First-start presets.
    pub bootstrap: BootstrapOptions,
    /// Hash key source.
    pub hash_key: HashKeySource,
    /// The clock (tests move it).
    pub clock: Clock,
}

/// A store opened from the configured URL: `sqlite://…` (the default, in the data dir), or
/// `postgres://…` / `postgresql://…` for several nodes on one database (a pool of
/// `database_pool_size` connections; see docs/scale-out.md).
pub async fn open_store(config: &Config) -> Result<Arc<dyn Store>, StartError> {
    let url = config.database_url();
    if let Some(path) = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
    {
        let path = Path::new(path);
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            create_private_dir(dir)?;
        }
        create_private_file(path)?;
        let store = SqliteStore::open(path).await?;
        return Ok(Arc::new(store));
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let options = PostgresOptions {
            pool_size: config.database_pool_size,
            acquire_timeout: std::time::Duration::from_millis(config.database_acquire_timeout_ms),
            listen_url: Some(config.listen_database_url.clone()).filter(|u| !u.is_empty()),
            transaction_pooling: config.database_transaction_pooling,
        };
        let store = PostgresStore::connect_with(&url, &options).await?;
        return Ok(Arc::new(store));
    }
    Err(StartError::Invalid(format!(
        "unsupported database URL scheme in {:?}; use sqlite://PATH or postgres://…",
        url.split("://").next().unwrap_or("")
    )))
}

/// Creates a directory that only the owner can read (0700), if it does not exist yet. An
/// existing directory keeps the permissions its operator gave it.
fn create_private_dir(dir: &Path) -> Result<(), StartError> {
    let io = |context: String| move |source| StartError::Io { context, source };
    if dir.exists() {
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder
        .create(dir)
        .map_err(io(format!("creating {}", dir.display())))
}

/// Creates the SQLite file with mode 0600 before SQLite opens it: SQLite gives its `-wal`
/// and `-shm` files the database file's permissions, so password and token hashes are never
/// readable by other local users.
fn create_private_file(path: &Path) -> Result<(), StartError> {
    if path.exists() {
        return Ok(());
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options
        .open(path)
        .map(|_| ())
        .map_err(|source| StartError::Io {
            context: format!("creating {}", path.display()),
            source,
        })
}

/// The hash key: `LATCHKEY_HASH_KEY`, else `LATCHKEY_HASH_KEY_FILE`, else `hash.key` in the
/// data dir (generated with mode 0600 on first start). Anything malformed stops the start.
pub fn resolve_hash_key(config: &Config, source: &HashKeySource) -> Result<HashKey, StartError> {
    let invalid = |origin: &str, e: latchkey_core::hash::HashKeyError| {
        StartError::Invalid(format!("{origin}: {e}"))
    };
    if let Some(hex) = &source.hex {
        return HashKey::from_hex(hex).map_err(|e| invalid("LATCHKEY_HASH_KEY", e));
    }
    let (path, origin) = match &source.file {
        Some(p) => (p.clone(), "LATCHKEY_HASH_KEY_FILE"),
        None => (
            config.data_dir.join("hash.key"),
            "the data directory's hash.key",
        ),
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => HashKey::from_hex(&text).map_err(|e| invalid(origin, e)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && source.file.is_none() => {
            create_private_dir(&config.data_dir)?;
            let hex = HashKey::generate_hex();
            write_private_file(&path, &format!("{hex}\n"))?;
            tracing::info!(path = %path.display(), "generated a new hash key; back it up with the database");
            HashKey::from_hex(&hex).map_err(|e| invalid(origin, e))
        }
        Err(source_err) => Err(StartError::Io {
            context: format!("reading {}", path.display()),
            source: source_err,
        }),
    }
}

fn write_private_file(path: &Path, text: &str) -> Result<(), StartError> {
    let io = |source| StartError::Io {
        context: format!("writing {}", path.display()),
        source,
    };
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(io)?;
    file.write_all(text.as_bytes()).map_err(io)?;
    file.sync_all().map_err(io)?;
    Ok(())
}

/// The issuer (`iss`) of access JWTs: the public URL when it is set. Without one, a single
/// node (SQLite) is its own `http://<listen>`; nodes sharing a PostgreSQL database all
/// derive the same name from what they must share anyway, the hash key (its public
/// fingerprint, `urn:latchkey:<key id>`), so a JWT made on one node verifies on the others
/// whatever address each listens on.
fn jwt_issuer(config: &Config, hash_key: &HashKey) -> String {
    let shared_store = config.database_url().starts_with("postgres");
    if config.public_url.is_empty() && shared_store {
        format!("urn:latchkey:{}", hash_key.id())
    } else {
        config.public_url()
    }
}

/// The result of [`prepare`]: state ready to serve, and what the first start made.
pub struct Prepared {
    /// Ready to pass to [`serve`].
    pub state: AppState,
    /// `Some` on the very first start: print it once.
    pub bootstrapped: Option<Bootstrapped>,
}

/// Opens and migrates the store, checks the hash key against it, starts the verifier and
/// runs the first-start bootstrap if needed.
pub async fn prepare(config: Config, options: StartOptions) -> Result<Prepared, StartError> {
    config.validate()?;
    let store = open_store(&config).await?;
    prepare_with_store(config, store, options).await
}

/// [`prepare`] over an already opened store.
pub async fn prepare_with_store(
    config: Config,
    store: Arc<dyn Store>,
    options: StartOptions,
) -> Result<Prepared, StartError> {
    config.validate()?;
    let hash_key = resolve_hash_key(&config, &options.hash_key)?;
    store.migrate().await?;
    store.ensure_hash_key(hash_key.id()).await?;
    let metrics = Arc::new(metrics::Metrics::default());
    let verifier = verifier::Verifier::start(
        hash_key.clone(),
        Arc::clone(&store),
        options.clock.clone(),
        config.verifier.negative_cache_size,
        config.verifier.max_staleness_secs,
    )
    .await?
    .with_metrics(Arc::clone(&metrics));
    let api_key_headers = config
        .api_key_headers
        .iter()
        .filter_map(|h| HeaderName::from_bytes(h.to_ascii_lowercase().as_bytes()).ok())
        .collect();
    let jwt = jwt::JwtKeys::load(
        Arc::clone(&store),
        hash_key.clone(),
        jwt_issuer(&config, &hash_key),
        config.jwt.key_rotation_days,
        options.clock.now(),
    )
    .await?;
    // The dummy hash (for sign-ins of unknown users) is made on first use: an Argon2 run
    // costs its memory (19 MiB by default), and one at start would stay in the allocator.
    password::check_config(&config.passwords).map_err(|e| StartError::Invalid(e.to_string()))?;
    let dummy_password_hash = tokio::sync::OnceCell::new();
    let state = AppState::new(state::AppStateInner {
        sign_in_throttle: state::Throttle::new(
            config.throttle.sign_in_attempts,
            config.throttle.window_secs,
        ),
        sign_in_account_throttle: state::Throttle::new(
            config.throttle.sign_in_failures_per_account,
            config.throttle.window_secs,
        ),
        known_sign_ins: Default::default(),
        token_failure_throttle: state::Throttle::new(
            config.throttle.failed_token_checks,
            config.throttle.window_secs,
        ),
        reveal_throttle: state::Throttle::new(config.throttle.reveals, config.throttle.window_secs),
        public_url: config.public_url(),
        config,
        store,
        verifier,
        jwt,
        hash_key,
        clock: options.clock,
        last_used: state::LastUsedBuffer::default(),
        budgets: budgets::Budgets::new(latchkey_core::new_id()),
        metrics,
        api_key_headers,
        dummy_password_hash,
    });
    let bootstrapped = bootstrap::bootstrap(&state, &options.bootstrap).await?;
    Ok(Prepared {
        state,
        bootstrapped,
    })
}
