//! Configuration: one serde struct, layered defaults → TOML file → `LATCHKEY_*` environment
//! → command-line flags (the last layer is applied by the binary).

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use latchkey_proto::{Scope, TokenType};
use serde::Deserialize;

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
#[derive(Debug, Clone, Deserialize)]
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
    /// The URL people and clients use to reach this server; decides cookie `Secure`, the
    /// origin CSRF checks compare against, and the JWT issuer. Empty: `http://<listen>`.
    pub public_url: String,
    /// Extra header names that carry an API token (added to `Authorization` and
    /// `X-API-Key`, never replacing them).
    pub api_key_headers: Vec<String>,
    /// Largest request body accepted.
    pub max_body_bytes: usize,
    /// Proxies whose `X-Forwarded-For` is believed (CIDRs or plain IPs).
    #[serde(deserialize_with = "cidrs")]
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
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Console session lifetimes.
#[derive(Debug, Clone, Deserialize)]
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
#[derive(Debug, Clone, Deserialize)]
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
    /// Window length.
    pub window_secs: u64,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        ThrottleConfig {
            sign_in_attempts: 10,
            sign_in_failures_per_account: 20,
            failed_token_checks: 100,
            window_secs: 60,
        }
    }
}

/// Verifier cache and background task timing.
#[derive(Debug, Clone, Deserialize)]
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
        }
    }
}

/// Argon2id parameters (OWASP's recommended minimum by default; tests lower them).
#[derive(Debug, Clone, Deserialize)]
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
#[derive(Debug, Clone, Deserialize)]
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
#[derive(Debug, Clone, Default, Deserialize)]
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
#[derive(Debug, Clone, Deserialize)]
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
        }
    }
}

/// Webhook deliveries (`[webhooks]`).
#[derive(Debug, Clone, Deserialize)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
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
#[derive(Clone, Deserialize)]
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
    /// Password (or `password_file`, or `LATCHKEY_SMTP_PASSWORD`).
    #[serde(default)]
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
    /// Defaults, then the TOML file if given.
    pub fn from_file(path: Option<&Path>) -> Result<Config, ConfigError> {
        let Some(path) = path else {
            return Ok(Config::default());
        };
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })
    }

    /// Applies the `LATCHKEY_*` variables that have no command-line flag.
    pub fn apply_env(&mut self, var: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        if let Some(v) = var("LATCHKEY_PUBLIC_URL") {
            self.public_url = v;
        }
        if let Some(v) = var("LATCHKEY_API_KEY_HEADERS") {
            self.api_key_headers = v
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect();
        }
        if let Some(v) = var("LATCHKEY_DATABASE_POOL_SIZE") {
            self.database_pool_size = v.parse().map_err(|_| ConfigError::Invalid {
                name: "LATCHKEY_DATABASE_POOL_SIZE".into(),
                message: "must be a number of connections".into(),
            })?;
        }
        if let Some(v) = var("LATCHKEY_MAX_BODY_BYTES") {
            self.max_body_bytes = v.parse().map_err(|_| ConfigError::Invalid {
                name: "LATCHKEY_MAX_BODY_BYTES".into(),
                message: "must be a number of bytes".into(),
            })?;
        }
        if let Some(v) = var("LATCHKEY_TRUSTED_PROXIES") {
            self.trusted_proxies = v
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(parse_cidr)
                .collect::<Result<_, _>>()?;
        }
        if let Some(v) = var("LATCHKEY_LOG_FORMAT") {
            self.log_format = match v.as_str() {
                "text" => LogFormat::Text,
                "json" => LogFormat::Json,
                _ => {
                    return Err(ConfigError::Invalid {
                        name: "LATCHKEY_LOG_FORMAT".into(),
                        message: "must be text or json".into(),
                    });
                }
            };
        }
        Ok(())
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

    #[test]
    fn sample_config_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../latchkey.sample.toml");
        let config = Config::from_file(Some(&path)).unwrap();
        config.validate().unwrap();
    }

    #[test]
    fn env_layer_overrides_and_rejects_garbage() {
        let mut c = Config::default();
        c.apply_env(|k| match k {
            "LATCHKEY_API_KEY_HEADERS" => Some("x-api-key, rime-api-key".into()),
            "LATCHKEY_TRUSTED_PROXIES" => Some("10.0.0.0/8,127.0.0.1".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(c.api_key_headers, vec!["x-api-key", "rime-api-key"]);
        assert!(c.is_trusted_proxy("10.1.2.3".parse().unwrap()));
        assert!(c.is_trusted_proxy("127.0.0.1".parse().unwrap()));
        assert!(!c.is_trusted_proxy("127.0.0.2".parse().unwrap()));
        let mut c = Config::default();
        assert!(
            c.apply_env(|k| (k == "LATCHKEY_TRUSTED_PROXIES").then(|| "nope".into()))
                .is_err()
        );
    }

    #[test]
    fn database_pool_size_comes_from_file_or_env() {
        let c: Config = toml::from_str("database_pool_size = 4").unwrap();
        assert_eq!(c.database_pool_size, 4);
        assert_eq!(Config::default().database_pool_size, 10);
        let mut c = Config::default();
        c.apply_env(|k| (k == "LATCHKEY_DATABASE_POOL_SIZE").then(|| "25".into()))
            .unwrap();
        assert_eq!(c.database_pool_size, 25);
        c.database_pool_size = 0;
        assert!(c.validate().is_err());
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

    #[test]
    fn unknown_keys_are_refused() {
        assert!(toml::from_str::<Config>("lisen = \"x\"").is_err());
    }
}
