//! Configuration: one serde struct, layered defaults → TOML file → `LATCHKEY_*` environment
//! → command-line flags (the last layer is applied by the binary).
//!
//! Every key can come from the environment: `LATCHKEY_` + the key in capitals, sections
//! joined by `__` (`LATCHKEY_THROTTLE__WINDOW_SECS=30` is `[throttle] window_secs = 30`).
//! A value is read as the key's type: numbers and booleans as such, lists as
//! comma-separated items (`LATCHKEY_TRUSTED_PROXIES=10.0.0.0/8,127.0.0.1`) or a TOML array
//! (`LATCHKEY_FORWARD_AUTH__ROUTES='[{path = "/admin/", types = ["admin"]}]'`). Both layers
//! are merged into one TOML tree and deserialized once, so a bad value from either is
//! reported with where it came from (the file, or the variable's name).

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use latchkey_proto::{Scope, TokenType};
use serde::{Deserialize, Serialize};

/// Why the configuration cannot be used. Each message says what to fix.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// Path.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this struct.
    #[error("invalid config file {path}: {message}")]
    Parse {
        /// Path.
        path: PathBuf,
        /// Parser message.
        message: String,
    },
    /// A value (from a file or the environment) is invalid.
    #[error("invalid setting {name}: {message}")]
    Invalid {
        /// Setting name.
        name: String,
        /// What is wrong.
        message: String,
    },
}

/// The whole configuration. See `latchkey.sample.toml` for every key with comments.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Data directory (SQLite file, hash key file).
    pub data_dir: PathBuf,
    /// Database URL; empty means the SQLite file in the data directory.
    pub database_url: String,
    /// Most connections one node opens to PostgreSQL (not used by SQLite).
    pub database_pool_size: u32,
    /// PostgreSQL only: how long a request waits for a database connection before it is
    /// answered 503 `unavailable` (while the database is away, every such request).
    pub database_acquire_timeout_ms: u64,
    /// PostgreSQL only: `database_url` leads to a pooler in transaction mode (PgBouncer
    /// `pool_mode = transaction`): no named prepared statements, every read in a
    /// transaction of its own.
    pub database_transaction_pooling: bool,
    /// PostgreSQL only: a direct (session) URL for what a transaction pooler cannot carry,
    /// `LISTEN` for other nodes' changes and the migrations. Empty: `database_url`.
    pub listen_database_url: String,
    /// The URL people and clients use to reach this server; decides cookie `Secure`, the
    /// origin CSRF checks compare against, and the JWT issuer. Empty: `http://<listen>`
    /// (and the JWT issuer on PostgreSQL `urn:latchkey:<hash key id>`, shared by every node).
    pub public_url: String,
    /// Extra header names that carry an API token (added to `Authorization` and
    /// `X-API-Key`, never replacing them).
    pub api_key_headers: Vec<String>,
    /// Largest request body accepted.
    pub max_body_bytes: usize,
    /// Proxies whose `X-Forwarded-For` is believed (CIDRs or plain IPs).
    #[serde(deserialize_with = "cidrs", serialize_with = "cidr_texts")]
    pub trusted_proxies: Vec<IpNet>,
    /// `text` or `json` logs.
    pub log_format: LogFormat,
    /// Console sessions.
    pub sessions: SessionConfig,
    /// Throttles.
    pub throttle: ThrottleConfig,
    /// The verifier (hot path) and background tasks.
    pub verifier: VerifierConfig,
    /// Argon2id cost for passwords.
    pub passwords: PasswordConfig,
    /// Access JWTs.
    pub jwt: JwtConfig,
    /// Forward-auth route policies.
    pub forward_auth: ForwardAuthConfig,
    /// Webhook deliveries.
    pub webhooks: WebhooksConfig,
    /// Email notices to token owners (`None`: no email).
    pub smtp: Option<SmtpConfig>,
    /// Who may read `/metrics`, and where it is served.
    pub metrics: MetricsConfig,
}

/// `/metrics` (`[metrics]`). By default it is public on the main address, as Prometheus
/// expects; either key (or both) narrows it.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// A scope the caller's token must hold (e.g. `metrics:read`); without it (`None`,
    /// the default) `/metrics` needs no credential. A request without a credential then
    /// gets 401, a token without the scope 403.
    pub require_scope: Option<Scope>,
    /// Serve `/metrics` on this address only (then the main address answers 404 there);
    /// `None`: on the main address.
    pub listen: Option<SocketAddr>,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Console session lifetimes.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct SessionConfig {
    /// Idle timeout (default 12 h).
    pub idle_timeout_secs: u64,
    /// Absolute lifetime (default 7 d).
    pub max_lifetime_secs: u64,
}

impl SessionConfig {
    /// The idle timeout as a duration.
    pub fn idle_timeout(&self) -> time::Duration {
        time::Duration::seconds(i64::try_from(self.idle_timeout_secs).unwrap_or(i64::MAX / 2))
    }
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            idle_timeout_secs: 12 * 3600,
            max_lifetime_secs: 7 * 86400,
        }
    }
}

/// Per-node throttles, per client IP, over a sliding minute.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ThrottleConfig {
    /// Failed sign-ins per IP per window (a success never clears failures).
    pub sign_in_attempts: u32,
    /// Failed sign-ins per account per window, from any address; past it that account's
    /// sign-ins answer 429 until the window ends, except from addresses it signed in from
    /// lately.
    pub sign_in_failures_per_account: u32,
    /// Failed token checks per IP per window; beyond it token checks answer 429.
    pub failed_token_checks: u32,
    /// Secret reveals (`POST /api/v1/tokens/{id}/reveal`) per caller per window, every
    /// attempt counted; beyond it reveals answer 429.
    pub reveals: u32,
    /// Window length.
    pub window_secs: u64,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        ThrottleConfig {
            sign_in_attempts: 10,
            sign_in_failures_per_account: 20,
            failed_token_checks: 100,
            reveals: 10,
            window_secs: 60,
        }
    }
}

/// Verifier cache and background task timing.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct VerifierConfig {
    /// Most unknown-token hashes remembered (then the negative cache starts over).
    pub negative_cache_size: usize,
    /// How often the change feed is read.
    pub poll_interval_ms: u64,
    /// After this long without hearing from the store, cached answers are not trusted.
    pub max_staleness_secs: u64,
    /// How often buffered last-used times are written.
    pub last_used_flush_secs: u64,
    /// How often expired tokens are marked and retired rows (rotated-out secrets, old
    /// sessions, old change-feed rows) purged.
    pub expiry_sweep_secs: u64,
    /// Change-feed rows kept by the sweep. A node away for more changes than this drops
    /// its whole cache when it catches up (correct, only slower for a moment).
    pub change_feed_keep: u64,
    /// How often this node reports the uses it spent from leased blocks (rate limits and
    /// usage credits), renews what it holds and gives back idle blocks.
    pub budget_settle_ms: u64,
    /// Most stored secrets whose hashes the verifier keeps in memory (about 16 bytes
    /// each), so a flood of made-up tokens never reaches the store. With more, unknown
    /// tokens are looked up one by one (and remembered in the negative cache).
    pub known_hashes_max: usize,
}

impl Default for VerifierConfig {
    fn default() -> Self {
        VerifierConfig {
            negative_cache_size: 100_000,
            poll_interval_ms: 1000,
            max_staleness_secs: 30,
            last_used_flush_secs: 5,
            expiry_sweep_secs: 60,
            change_feed_keep: 100_000,
            budget_settle_ms: 5000,
            known_hashes_max: 20_000_000,
        }
    }
}

/// Argon2id parameters (OWASP's recommended minimum by default; tests lower them).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct PasswordConfig {
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Passes.
    pub iterations: u32,
    /// Lanes.
    pub parallelism: u32,
}

impl Default for PasswordConfig {
    fn default() -> Self {
        PasswordConfig {
            memory_kib: 19 * 1024,
            iterations: 2,
            parallelism: 1,
        }
    }
}

/// Access JWT settings.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct JwtConfig {
    /// Lifetime of an access JWT (default 300 s, at most 900 s).
    pub ttl_secs: u64,
    /// Signing key rotation period (default 30 days).
    pub key_rotation_days: u64,
}

impl Default for JwtConfig {
    fn default() -> Self {
        JwtConfig {
            ttl_secs: 300,
            key_rotation_days: 30,
        }
    }
}

/// Forward-auth policies.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ForwardAuthConfig {
    /// Rules, first match applies.
    pub routes: Vec<ForwardAuthRoute>,
    /// The proxy that calls `/auth/verify` (`nginx`, `traefik`, `caddy`, `envoy`,
    /// `custom`): decides which headers carry the original URI and method. Only its
    /// headers are believed, and only from `trusted_proxies`.
    pub proxy: crate::forward_auth::ProxyKind,
    /// Overrides the preset's original-URI header (required with `proxy = "custom"`).
    pub uri_header: Option<String>,
    /// Overrides the preset's original-method header (required with `proxy = "custom"`).
    pub method_header: Option<String>,
    /// Whether rule paths match case-sensitively (default `false`: `/API/admin` is judged
    /// as `/api/admin`, so no upstream's case folding can dodge a rule).
    pub case_sensitive_paths: bool,
}

impl ForwardAuthConfig {
    /// Where the original request's URI and method are read from.
    pub fn target_source(&self) -> Result<crate::forward_auth::TargetSource, ConfigError> {
        use crate::forward_auth::ProxyKind;
        let preset = self.proxy.headers();
        let name = |key: &str, configured: &Option<String>, preset: Option<&str>| {
            let Some(text) = configured.as_deref().or(preset) else {
                return if self.proxy == ProxyKind::Custom {
                    Err(ConfigError::Invalid {
                        name: format!("forward_auth.{key}"),
                        message: "proxy = \"custom\" needs uri_header and method_header".into(),
                    })
                } else {
                    Ok(None)
                };
            };
            http::HeaderName::from_bytes(text.to_ascii_lowercase().as_bytes())
                .map(Some)
                .map_err(|_| ConfigError::Invalid {
                    name: format!("forward_auth.{key}"),
                    message: format!("{text:?} is not a valid header name"),
                })
        };
        Ok(crate::forward_auth::TargetSource {
            proxy: self.proxy,
            uri_header: name("uri_header", &self.uri_header, preset.map(|p| p.0))?,
            method_header: name("method_header", &self.method_header, preset.map(|p| p.1))?,
        })
    }
}

/// One forward-auth rule.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ForwardAuthRoute {
    /// Path prefix (matched at a segment boundary).
    pub path: String,
    /// Methods it applies to (all when absent).
    #[serde(default)]
    pub methods: Option<Vec<String>>,
    /// Token types allowed (all when absent).
    #[serde(default)]
    pub types: Option<Vec<TokenType>>,
    /// Scopes all required.
    #[serde(default)]
    pub scopes: Option<Vec<Scope>>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("./latchkey-data"),
            database_url: String::new(),
            database_pool_size: 10,
            database_acquire_timeout_ms: 3000,
            database_transaction_pooling: false,
            listen_database_url: String::new(),
            public_url: String::new(),
            api_key_headers: Vec::new(),
            max_body_bytes: 1024 * 1024,
            trusted_proxies: Vec::new(),
            log_format: LogFormat::Text,
            sessions: SessionConfig::default(),
            throttle: ThrottleConfig::default(),
            verifier: VerifierConfig::default(),
            passwords: PasswordConfig::default(),
            jwt: JwtConfig::default(),
            forward_auth: ForwardAuthConfig::default(),
            webhooks: WebhooksConfig::default(),
            smtp: None,
            metrics: MetricsConfig::default(),
        }
    }
}

/// Webhook deliveries (`[webhooks]`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhooksConfig {
    /// Allow endpoints on loopback, private, link-local and metadata addresses (default
    /// `false`: refused with 422 when configured and again at every delivery).
    pub allow_private_addresses: bool,
    /// Per-attempt timeout (connect + answer), default 10 s.
    pub timeout_secs: u64,
    /// How often due deliveries are looked for, default 1000 ms.
    pub poll_interval_ms: u64,
    /// How long a claimed delivery is reserved for this node (default 60 s); a node that
    /// dies leaves its claims to the others after this long.
    pub lease_secs: u64,
    /// Deliveries made at once per node (default 8).
    pub concurrency: usize,
}

impl Default for WebhooksConfig {
    fn default() -> Self {
        WebhooksConfig {
            allow_private_addresses: false,
            timeout_secs: 10,
            poll_interval_ms: 1000,
            lease_secs: 60,
            concurrency: 8,
        }
    }
}

/// How the SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum SmtpSecurity {
    /// STARTTLS, required (port 587).
    #[default]
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
    /// Plain text: only for a relay on the same machine or network.
    None,
}

/// Email notices (`[smtp]`): owners with an email address hear about their tokens
/// expiring (30, 7, 1 days), expired, leaked, or revoked by an admin.
#[derive(Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpConfig {
    /// Server host name.
    pub host: String,
    /// Port (default: 587 for STARTTLS, 465 for TLS, 25 for none).
    #[serde(default)]
    pub port: Option<u16>,
    /// Connection security.
    #[serde(default)]
    pub security: SmtpSecurity,
    /// User name, if the server wants one.
    #[serde(default)]
    pub username: Option<String>,
    /// Password (or `password_file`, or `LATCHKEY_SMTP__PASSWORD`); never serialized.
    #[serde(default, skip_serializing)]
    pub password: Option<String>,
    /// A file holding the password (a trailing newline is ignored).
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// The sender, e.g. `Latchkey <latchkey@example.com>`.
    pub from: String,
    /// Per-message timeout, default 30 s.
    #[serde(default = "default_smtp_timeout")]
    pub timeout_secs: u64,
}

fn default_smtp_timeout() -> u64 {
    30
}

impl std::fmt::Debug for SmtpConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("security", &self.security)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("password_file", &self.password_file)
            .field("from", &self.from)
            .field("timeout_secs", &self.timeout_secs)
            .finish()
    }
}

impl Config {
    /// Defaults, then the TOML file if given (no environment).
    pub fn from_file(path: Option<&Path>) -> Result<Config, ConfigError> {
        Config::load(path, std::iter::empty()).map(|loaded| loaded.config)
    }

    /// Defaults → the TOML file (if given) → the `LATCHKEY_*` variables among `env`.
    /// Variables that name no setting are returned, not refused: other tools share the
    /// prefix (see [`NOT_SETTINGS`]); a misspelt key inside a known section is refused.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Loaded, ConfigError> {
        match file {
            None => Config::load_text(None, env),
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_owned(),
                    source,
                })?;
                Config::load_text(Some((path, &text)), env)
            }
        }
    }

    /// [`Config::load`] with the file's text already read (`file` is its path, for messages,
    /// and its text): the whole of loading but the disk read, public so it can be fuzzed.
    pub fn load_text(
        file: Option<(&Path, &str)>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Loaded, ConfigError> {
        let mut tree = match file {
            None => toml::Table::new(),
            Some((path, text)) => {
                toml::from_str::<toml::Table>(text).map_err(|e| ConfigError::Parse {
                    path: path.to_owned(),
                    message: e.to_string(),
                })?
            }
        };
        let file = file.map(|(path, _)| path);
        let defaults = Config::default_tree();
        let mut from_env: Vec<(String, String)> = Vec::new();
        let mut ignored = Vec::new();
        let mut env: Vec<(String, String)> = env
            .into_iter()
            .filter(|(name, _)| name.starts_with(ENV_PREFIX))
            .collect();
        env.sort();
        for (name, text) in env {
            let key = name[ENV_PREFIX.len()..].to_ascii_lowercase();
            let path: Vec<&str> = key.split("__").collect();
            if !defaults.contains_key(path[0]) {
                if !is_other_variable(&name) {
                    ignored.push(name);
                }
                continue;
            }
            let invalid = |message: String| ConfigError::Invalid {
                name: name.clone(),
                message,
            };
            if path.iter().any(|segment| segment.is_empty()) {
                return Err(invalid("empty section or key name".into()));
            }
            let value = env_value(lookup(&defaults, &path), &text).map_err(invalid)?;
            insert(&mut tree, &path, value).map_err(invalid)?;
            from_env.push((path.join("."), name));
        }
        let config = serde_path_to_error::deserialize::<_, Config>(toml::Value::Table(tree))
            .map_err(|e| {
                let at = e.path().to_string();
                let message = e.inner().to_string();
                let by_env = from_env.iter().find(|(key, _)| {
                    at == *key
                        || at.starts_with(&format!("{key}."))
                        || at.starts_with(&format!("{key}["))
                });
                match (by_env, file) {
                    (Some((_, name)), _) => ConfigError::Invalid {
                        name: name.clone(),
                        message,
                    },
                    (None, Some(path)) => ConfigError::Parse {
                        path: path.to_owned(),
                        message: if at.is_empty() || at == "." {
                            message
                        } else {
                            format!("{at}: {message}")
                        },
                    },
                    (None, None) => ConfigError::Invalid { name: at, message },
                }
            })?;
        Ok(Loaded { config, ignored })
    }

    /// The defaults as a TOML tree (what the environment layer learns types from, and
    /// what the sample file must say).
    pub fn default_tree() -> toml::Table {
        match toml::Table::try_from(Config::default()) {
            Ok(table) => table,
            // Every field serializes to TOML; a test holds it.
            Err(_) => toml::Table::new(),
        }
    }

    /// Checks cross-field rules; call after every layer is applied.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for name in &self.api_key_headers {
            if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                return Err(ConfigError::Invalid {
                    name: "api_key_headers".into(),
                    message: format!("{name:?} is not a valid header name"),
                });
            }
        }
        let scheme_ok =
            self.public_url.starts_with("http://") || self.public_url.starts_with("https://");
        if !self.public_url.is_empty() && !scheme_ok {
            return Err(ConfigError::Invalid {
                name: "public_url".into(),
                message: "must start with http:// or https://".into(),
            });
        }
        if self.jwt.ttl_secs == 0 || self.jwt.ttl_secs > 900 {
            return Err(ConfigError::Invalid {
                name: "jwt.ttl_secs".into(),
                message: "must be between 1 and 900 seconds".into(),
            });
        }
        if self.database_pool_size == 0 {
            return Err(ConfigError::Invalid {
                name: "database_pool_size".into(),
                message: "must be at least 1".into(),
            });
        }
        if !(100..=60_000).contains(&self.database_acquire_timeout_ms) {
            return Err(ConfigError::Invalid {
                name: "database_acquire_timeout_ms".into(),
                message: "must be between 100 and 60000 milliseconds".into(),
            });
        }
        self.forward_auth.target_source()?;
        if self.webhooks.timeout_secs == 0 || self.webhooks.lease_secs <= self.webhooks.timeout_secs
        {
            return Err(ConfigError::Invalid {
                name: "webhooks.lease_secs".into(),
                message: "timeout_secs must be at least 1 and lease_secs longer than it".into(),
            });
        }
        if let Some(smtp) = &self.smtp {
            if smtp.host.trim().is_empty() {
                return Err(ConfigError::Invalid {
                    name: "smtp.host".into(),
                    message: "must not be empty".into(),
                });
            }
            if smtp.from.parse::<lettre::message::Mailbox>().is_err() {
                return Err(ConfigError::Invalid {
                    name: "smtp.from".into(),
                    message: format!("{:?} is not an email address", smtp.from),
                });
            }
        }
        if !self.forward_auth.routes.is_empty() && self.trusted_proxies.is_empty() {
            return Err(ConfigError::Invalid {
                name: "forward_auth.routes".into(),
                message: "route policies need trusted_proxies: the original URI is believed \
                          only from the proxy's address"
                    .into(),
            });
        }
        // A rule path that normalises to nothing would never match any request: the rule
        // would protect nothing while looking as if it did (found by the fuzz target).
        let case_sensitive = self.forward_auth.case_sensitive_paths;
        for (i, rule) in self.forward_auth.routes.iter().enumerate() {
            if crate::forward_auth::normalize_path(&rule.path, case_sensitive).is_none() {
                return Err(ConfigError::Invalid {
                    name: format!("forward_auth.routes[{i}].path"),
                    message: format!(
                        "{:?} is not a path that requests can have: it must start with / \
                         and hold no backslash, control character, bad or double \
                         percent-encoding, or segment ending in . or a space",
                        rule.path
                    ),
                });
            }
        }
        if self
            .metrics
            .listen
            .is_some_and(|m| m == self.listen && m.port() != 0)
        {
            return Err(ConfigError::Invalid {
                name: "metrics.listen".into(),
                message: "must differ from listen (leave it out to serve /metrics there)".into(),
            });
        }
        if self.throttle.window_secs == 0 {
            return Err(ConfigError::Invalid {
                name: "throttle.window_secs".into(),
                message: "must be at least 1".into(),
            });
        }
        Ok(())
    }

    /// The effective public URL, without a trailing slash.
    pub fn public_url(&self) -> String {
        if self.public_url.is_empty() {
            format!("http://{}", self.listen)
        } else {
            self.public_url.trim_end_matches('/').to_owned()
        }
    }

    /// Whether cookies must be `Secure` (the public URL is https).
    pub fn behind_tls(&self) -> bool {
        self.public_url.starts_with("https://")
    }

    /// The database URL, defaulting to the SQLite file in the data dir.
    pub fn database_url(&self) -> String {
        if self.database_url.is_empty() {
            format!("sqlite://{}", self.data_dir.join("latchkey.db").display())
        } else {
            self.database_url.clone()
        }
    }

    /// Whether `ip` is a trusted proxy.
    pub fn is_trusted_proxy(&self, ip: IpAddr) -> bool {
        self.trusted_proxies.iter().any(|net| net.contains(&ip))
    }
}

/// The prefix of every setting's environment variable.
pub const ENV_PREFIX: &str = "LATCHKEY_";

/// `LATCHKEY_*` variables that are not settings: read elsewhere (the binary, the CLI,
/// the SDKs, the tests), so never reported as ignored.
pub const NOT_SETTINGS: &[&str] = &[
    "LATCHKEY_HASH_KEY",
    "LATCHKEY_HASH_KEY_FILE",
    "LATCHKEY_ADMIN_USERNAME",
    "LATCHKEY_ADMIN_PASSWORD",
    "LATCHKEY_ADMIN_TOKEN",
    "LATCHKEY_NEW_PASSWORD",
    "LATCHKEY_CONFIG",
    "LATCHKEY_CONFIG_DIR",
    "LATCHKEY_PROFILE",
    "LATCHKEY_URL",
    "LATCHKEY_API_KEY",
    "LATCHKEY_TOKEN",
    "LATCHKEY_BIN",
    "LATCHKEY_CHROMIUM",
    "LATCHKEY_CHROMEDRIVER",
    "LATCHKEY_UPDATE_DOCS_SCREENSHOTS",
];

fn is_other_variable(name: &str) -> bool {
    NOT_SETTINGS.contains(&name) || name.starts_with("LATCHKEY_TEST_")
}

/// A configuration and what its environment layer did not use.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The configuration (flags not applied yet; not validated).
    pub config: Config,
    /// `LATCHKEY_*` variables that name no setting and are not known to other tools
    /// (a typo, most likely): worth a warning at start.
    pub ignored: Vec<String>,
}

/// The default value at `path`, if the defaults have one (optional keys have none).
fn lookup<'a>(defaults: &'a toml::Table, path: &[&str]) -> Option<&'a toml::Value> {
    let (first, rest) = path.split_first()?;
    let value = defaults.get(*first)?;
    if rest.is_empty() {
        return Some(value);
    }
    lookup(value.as_table()?, rest)
}

/// An environment variable's text as a TOML value of the type the key's default has.
fn env_value(default: Option<&toml::Value>, text: &str) -> Result<toml::Value, String> {
    use toml::Value;
    let as_toml = |text: &str| -> Result<Value, String> {
        toml::from_str::<toml::Table>(&format!("v = {text}"))
            .ok()
            .and_then(|mut t| t.remove("v"))
            .ok_or_else(|| format!("{text:?} is not a TOML value"))
    };
    match default {
        Some(Value::String(_)) => Ok(Value::String(text.to_owned())),
        Some(Value::Integer(_)) => text
            .trim()
            .parse::<i64>()
            .map(Value::Integer)
            .map_err(|_| format!("{text:?} is not a whole number")),
        Some(Value::Float(_)) => text
            .trim()
            .parse::<f64>()
            .map(Value::Float)
            .map_err(|_| format!("{text:?} is not a number")),
        Some(Value::Boolean(_)) => match text.trim() {
            "true" | "1" | "yes" | "on" => Ok(Value::Boolean(true)),
            "false" | "0" | "no" | "off" => Ok(Value::Boolean(false)),
            _ => Err(format!("{text:?} is not true or false")),
        },
        Some(Value::Array(_)) if text.trim_start().starts_with('[') => as_toml(text.trim()),
        Some(Value::Array(_)) => Ok(Value::Array(
            text.split(',')
                .map(str::trim)
                .filter(|item| !item.is_empty())
                .map(|item| Value::String(item.to_owned()))
                .collect(),
        )),
        Some(Value::Table(_)) => Err(
            "is a section: set its keys, e.g. LATCHKEY_SECTION__KEY, or put it in the file".into(),
        ),
        Some(Value::Datetime(_)) => as_toml(text.trim()),
        // An optional key (no default): a TOML value if the text is one, else a string.
        None => Ok(as_toml(text.trim()).unwrap_or_else(|_| Value::String(text.to_owned()))),
    }
}

/// Sets `value` at `path` in `tree`, making the sections on the way.
fn insert(tree: &mut toml::Table, path: &[&str], value: toml::Value) -> Result<(), String> {
    let Some((last, sections)) = path.split_last() else {
        return Ok(());
    };
    let mut table = tree;
    for section in sections {
        let entry = table
            .entry((*section).to_owned())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        table = entry
            .as_table_mut()
            .ok_or_else(|| format!("{section} is not a section"))?;
    }
    table.insert((*last).to_owned(), value);
    Ok(())
}

/// `trusted_proxies` back to text (for the defaults tree).
fn cidr_texts<S: serde::Serializer>(nets: &[IpNet], serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_seq(nets.iter().map(ToString::to_string))
}

/// `trusted_proxies` from a file: CIDRs or plain IPs, as in the environment variable.
fn cidrs<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Vec<IpNet>, D::Error> {
    let texts = Vec::<String>::deserialize(deserializer)?;
    texts
        .iter()
        .map(|t| parse_cidr(t.trim()).map_err(serde::de::Error::custom))
        .collect()
}

fn parse_cidr(text: &str) -> Result<IpNet, ConfigError> {
    text.parse::<IpNet>()
        .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| ConfigError::Invalid {
            name: "trusted_proxies".into(),
            message: format!("{text:?} is not a CIDR or an IP address"),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &[(&str, &str)]) -> Vec<(String, String)> {
        vars.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    /// Every leaf key of a tree, as `a.b` paths.
    fn leaves(table: &toml::Table, prefix: &str, out: &mut Vec<(String, toml::Value)>) {
        for (key, value) in table {
            let path = format!("{prefix}{key}");
            match value {
                toml::Value::Table(inner) => leaves(inner, &format!("{path}."), out),
                other => out.push((path, other.clone())),
            }
        }
    }

    /// The sample lists every key with the value the server really uses when it is not
    /// set, so copying it changes nothing.
    #[test]
    fn the_sample_config_lists_every_key_with_its_real_default() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../latchkey.sample.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        let sample: toml::Table = toml::from_str(&text).unwrap();
        let (mut in_sample, mut defaults) = (Vec::new(), Vec::new());
        leaves(&sample, "", &mut in_sample);
        leaves(&Config::default_tree(), "", &mut defaults);
        // Rules are examples in the sample (commented out): there are none by default.
        defaults.retain(|(key, _)| key != "forward_auth.routes");
        in_sample.sort_by(|a, b| a.0.cmp(&b.0));
        defaults.sort_by(|a, b| a.0.cmp(&b.0));
        let keys =
            |v: &[(String, toml::Value)]| v.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>();
        assert_eq!(
            keys(&in_sample),
            keys(&defaults),
            "the sample's keys are the config's keys"
        );
        for ((key, said), (_, real)) in in_sample.iter().zip(&defaults) {
            assert_eq!(
                said, real,
                "latchkey.sample.toml says {key} = {said}, the default is {real}"
            );
        }
        let config = Config::from_file(Some(&path)).unwrap();
        config.validate().unwrap();
        assert_eq!(
            toml::Table::try_from(&config).unwrap(),
            Config::default_tree()
        );
    }

    /// `LATCHKEY_` + the key in capitals, sections joined by `__`, reaches every key: each
    /// set to its default's text gives the defaults back.
    #[test]
    fn every_key_can_be_set_from_the_environment() {
        let mut defaults = Vec::new();
        leaves(&Config::default_tree(), "", &mut defaults);
        let vars: Vec<(String, String)> = defaults
            .iter()
            .map(|(key, value)| {
                let name = format!("LATCHKEY_{}", key.replace('.', "__").to_ascii_uppercase());
                let text = match value {
                    toml::Value::String(s) => s.clone(),
                    toml::Value::Array(items) => items
                        .iter()
                        .map(|i| {
                            i.as_str()
                                .map(str::to_owned)
                                .unwrap_or_else(|| i.to_string())
                        })
                        .collect::<Vec<_>>()
                        .join(","),
                    other => other.to_string(),
                };
                (name, text)
            })
            .collect();
        assert!(vars.len() >= 25, "{vars:?}");
        let loaded = Config::load(None, vars.clone()).unwrap();
        assert!(loaded.ignored.is_empty(), "{:?}", loaded.ignored);
        assert_eq!(
            toml::Table::try_from(&loaded.config).unwrap(),
            Config::default_tree()
        );
    }

    #[test]
    fn the_environment_overrides_the_file_with_typed_values() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("latchkey.toml");
        std::fs::write(
            &file,
            "database_pool_size = 4\npublic_url = \"https://file.example\"\n[throttle]\nwindow_secs = 90\nsign_in_attempts = 7\n",
        )
        .unwrap();
        let loaded = Config::load(
            Some(&file),
            env(&[
                ("LATCHKEY_THROTTLE__WINDOW_SECS", "30"),
                ("LATCHKEY_VERIFIER__MAX_STALENESS_SECS", "12"),
                ("LATCHKEY_FORWARD_AUTH__CASE_SENSITIVE_PATHS", "true"),
                ("LATCHKEY_FORWARD_AUTH__URI_HEADER", "x-my-uri"),
                ("LATCHKEY_API_KEY_HEADERS", "x-api-key, rime-api-key"),
                ("LATCHKEY_TRUSTED_PROXIES", "10.0.0.0/8,127.0.0.1"),
                (
                    "LATCHKEY_FORWARD_AUTH__ROUTES",
                    r#"[{path = "/admin/", types = ["admin"]}]"#,
                ),
                ("LATCHKEY_LOG_FORMAT", "json"),
                ("LATCHKEY_PUBLIC_URL", "https://env.example"),
                // Not settings: other tools' variables, and one typo.
                ("LATCHKEY_HASH_KEY", "00"),
                ("LATCHKEY_TEST_BACKEND", "postgres"),
                ("LATCHKEY_PUBLICURL", "x"),
                ("OTHER_THROTTLE__WINDOW_SECS", "1"),
            ]),
        )
        .unwrap();
        let c = loaded.config;
        assert_eq!(c.database_pool_size, 4, "from the file");
        assert_eq!(c.throttle.sign_in_attempts, 7, "from the file");
        assert_eq!(c.throttle.window_secs, 30, "the environment wins");
        assert_eq!(c.verifier.max_staleness_secs, 12);
        assert!(c.forward_auth.case_sensitive_paths);
        assert_eq!(c.forward_auth.uri_header.as_deref(), Some("x-my-uri"));
        assert_eq!(c.api_key_headers, vec!["x-api-key", "rime-api-key"]);
        assert!(c.is_trusted_proxy("10.1.2.3".parse().unwrap()));
        assert!(c.is_trusted_proxy("127.0.0.1".parse().unwrap()));
        assert!(!c.is_trusted_proxy("127.0.0.2".parse().unwrap()));
        assert_eq!(c.forward_auth.routes.len(), 1);
        assert_eq!(c.forward_auth.routes[0].types, Some(vec![TokenType::Admin]));
        assert_eq!(c.log_format, LogFormat::Json);
        assert_eq!(c.public_url, "https://env.example");
        assert_eq!(loaded.ignored, vec!["LATCHKEY_PUBLICURL"]);
    }

    #[test]
    fn bad_values_are_refused_naming_where_they_came_from() {
        let refused = |vars: &[(&str, &str)]| match Config::load(None, env(vars)) {
            Err(ConfigError::Invalid { name, message }) => format!("{name}: {message}"),
            other => panic!("{vars:?} gave {other:?}"),
        };
        for (name, value) in [
            ("LATCHKEY_THROTTLE__WINDOW_SECS", "soon"),
            ("LATCHKEY_DATABASE_POOL_SIZE", "-1"),
            ("LATCHKEY_LISTEN", "localhost"),
            ("LATCHKEY_LOG_FORMAT", "xml"),
            ("LATCHKEY_TRUSTED_PROXIES", "nope"),
            ("LATCHKEY_FORWARD_AUTH__CASE_SENSITIVE_PATHS", "maybe"),
            ("LATCHKEY_FORWARD_AUTH__PROXY", "haproxy"),
            ("LATCHKEY_THROTTLE__WINDOWSECS", "30"),
            ("LATCHKEY_THROTTLE", "30"),
            ("LATCHKEY_THROTTLE__", "30"),
            ("LATCHKEY_FORWARD_AUTH__ROUTES", "[{pth = \"/x\"}]"),
        ] {
            let message = refused(&[(name, value)]);
            assert!(message.starts_with(name), "{message}");
        }
        // From the file: the file and the key are named.
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("bad.toml");
        std::fs::write(&file, "[throttle]\nwindow_secs = \"soon\"\n").unwrap();
        match Config::load(Some(&file), Vec::new()) {
            Err(ConfigError::Parse { path, message }) => {
                assert_eq!(path, file);
                assert!(message.contains("throttle.window_secs"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        let mut c = Config::load(None, env(&[("LATCHKEY_DATABASE_POOL_SIZE", "25")]))
            .unwrap()
            .config;
        assert_eq!(c.database_pool_size, 25);
        c.database_pool_size = 0;
        assert!(c.validate().is_err());
    }

    #[test]
    fn the_acquire_timeout_is_bounded_and_named_when_wrong() {
        let mut c = Config::default();
        assert_eq!(c.database_acquire_timeout_ms, 3000);
        assert!(c.validate().is_ok());
        for bad in [0, 99, 60_001] {
            c.database_acquire_timeout_ms = bad;
            let err = c.validate().unwrap_err().to_string();
            assert!(err.contains("database_acquire_timeout_ms"), "{err}");
        }
        c.database_acquire_timeout_ms = 100;
        assert!(c.validate().is_ok());
    }

    #[test]
    fn forward_auth_routes_need_trusted_proxies_and_known_headers() {
        let routes = "[[forward_auth.routes]]\npath = \"/a/\"\n";
        let c: Config = toml::from_str(routes).unwrap();
        assert!(c.validate().is_err());
        let c: Config =
            toml::from_str(&format!("trusted_proxies = [\"10.0.0.1\"]\n{routes}")).unwrap();
        c.validate().unwrap();
        let custom = "[forward_auth]\nproxy = \"custom\"\nuri_header = \"x-uri\"\n";
        assert!(
            toml::from_str::<Config>(custom)
                .unwrap()
                .validate()
                .is_err()
        );
        let custom = format!("{custom}method_header = \"x-method\"\n");
        toml::from_str::<Config>(&custom)
            .unwrap()
            .validate()
            .unwrap();
        let bad = "[forward_auth]\nuri_header = \"bad header\"\n";
        assert!(toml::from_str::<Config>(bad).unwrap().validate().is_err());
        assert!(toml::from_str::<Config>("[forward_auth]\nproxy = \"haproxy\"\n").is_err());
    }

    /// The fuzz target found that a rule path forward-auth can never see (`api/admin/`,
    /// no leading slash) was accepted: the rule silently protected nothing.
    #[test]
    fn forward_auth_rule_paths_that_match_nothing_are_refused() {
        for path in [
            "api/admin/",
            "",
            "/api\\admin",
            "/a/%zz",
            "/admin./",
            "/%252e/",
        ] {
            let text = format!(
                "trusted_proxies = [\"10.0.0.1\"]\n[[forward_auth.routes]]\npath = {path:?}\n"
            );
            match toml::from_str::<Config>(&text).unwrap().validate() {
                Err(ConfigError::Invalid { name, .. }) => {
                    assert_eq!(name, "forward_auth.routes[0].path", "{path:?}")
                }
                other => panic!("{path:?}: {other:?}"),
            }
        }
        let ok =
            "trusted_proxies = [\"10.0.0.1\"]\n[[forward_auth.routes]]\npath = \"/API/admin;x/\"\n";
        toml::from_str::<Config>(ok).unwrap().validate().unwrap();
    }

    #[test]
    fn metrics_keys_come_from_the_environment_and_are_checked() {
        let c = Config::load(
            None,
            env(&[
                ("LATCHKEY_METRICS__REQUIRE_SCOPE", "metrics:read"),
                ("LATCHKEY_METRICS__LISTEN", "127.0.0.1:9100"),
            ]),
        )
        .unwrap()
        .config;
        assert_eq!(c.metrics.require_scope, Some(Scope::MetricsRead));
        assert_eq!(c.metrics.listen, Some("127.0.0.1:9100".parse().unwrap()));
        c.validate().unwrap();
        for (name, value) in [
            ("LATCHKEY_METRICS__REQUIRE_SCOPE", "metrics"),
            ("LATCHKEY_METRICS__LISTEN", "localhost"),
            ("LATCHKEY_METRICS__PORT", "9100"),
        ] {
            match Config::load(None, env(&[(name, value)])) {
                Err(ConfigError::Invalid { name: said, .. }) => assert_eq!(said, name),
                other => panic!("{name}={value} gave {other:?}"),
            }
        }
        let same: Config =
            toml::from_str("listen = \"127.0.0.1:8080\"\n[metrics]\nlisten = \"127.0.0.1:8080\"\n")
                .unwrap();
        assert!(
            same.validate().is_err(),
            "metrics.listen = listen is refused"
        );
        assert_eq!(
            Config::default().metrics.require_scope,
            None,
            "public by default"
        );
    }

    #[test]
    fn unknown_keys_are_refused() {
        assert!(toml::from_str::<Config>("lisen = \"x\"").is_err());
    }
}
