//! Server-side commands: `serve`, `migrate`, `openapi`, and the configuration they (and the
//! operator commands) load.

use std::io::Write as _;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;
use latchkey_server::config::LogFormat;
use latchkey_server::{BootstrapOptions, Config, HashKeySource, StartOptions};

/// Where the server listens and keeps its data; each flag is also an environment variable.
#[derive(Args, Clone)]
pub struct StoreArgs {
    /// Address to listen on.
    #[arg(long, env = "LATCHKEY_LISTEN")]
    pub listen: Option<std::net::SocketAddr>,
    #[command(flatten)]
    pub location: StoreLocation,
}

/// Where the data lives: the flags `serve` takes and the operator commands share.
#[derive(Args, Clone)]
pub struct StoreLocation {
    /// Data directory (SQLite file and hash key).
    #[arg(long, env = "LATCHKEY_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Database URL (default: the SQLite file in the data directory).
    #[arg(long, env = "LATCHKEY_DATABASE_URL")]
    pub database_url: Option<String>,
    /// TOML configuration file (see latchkey.sample.toml).
    #[arg(long, env = "LATCHKEY_CONFIG")]
    pub config: Option<PathBuf>,
}

impl StoreLocation {
    /// Defaults → config file → `LATCHKEY_*` environment → these flags.
    pub fn load(&self) -> anyhow::Result<Config> {
        self.load_with(|_| {})
    }

    fn load_with(&self, last: impl FnOnce(&mut Config)) -> anyhow::Result<Config> {
        let loaded = Config::load(self.config.as_deref(), std::env::vars())?;
        let mut config = loaded.config;
        // Logging starts after the configuration (it sets the format): say it on stderr.
        for name in &loaded.ignored {
            eprintln!(
                "warning: {name} is not a Latchkey setting; ignored (see latchkey.sample.toml)"
            );
        }
        last(&mut config);
        if let Some(dir) = &self.data_dir {
            config.data_dir = dir.clone();
        }
        if let Some(url) = &self.database_url {
            config.database_url = url.clone();
        }
        config.validate()?;
        Ok(config)
    }
}

impl StoreArgs {
    fn load(&self) -> anyhow::Result<Config> {
        let listen = self.listen;
        self.location.load_with(|config| {
            if let Some(listen) = listen {
                config.listen = listen;
            }
        })
    }
}

/// A non-empty environment variable.
pub fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutdown requested; draining requests");
}

/// The hash key sources besides the data directory's key file.
pub fn hash_key_source() -> HashKeySource {
    HashKeySource {
        hex: env("LATCHKEY_HASH_KEY"),
        file: env("LATCHKEY_HASH_KEY_FILE").map(PathBuf::from),
    }
}

fn start_options() -> StartOptions {
    StartOptions {
        bootstrap: BootstrapOptions {
            admin_username: env("LATCHKEY_ADMIN_USERNAME"),
            admin_password: env("LATCHKEY_ADMIN_PASSWORD"),
            admin_token: env("LATCHKEY_ADMIN_TOKEN"),
        },
        hash_key: hash_key_source(),
        clock: latchkey_server::Clock::default(),
    }
}

fn print_bootstrap(b: &latchkey_server::Bootstrapped, url: &str) {
    let mut out = String::new();
    out.push_str("==================== Latchkey first start ====================\n");
    out.push_str(&format!("Console and API:  {url}\n"));
    out.push_str(&format!("Admin username:   {}\n", b.admin_username));
    match &b.generated_password {
        Some(p) => out.push_str(&format!("Admin password:   {p}\n")),
        None => out.push_str("Admin password:   (preset with LATCHKEY_ADMIN_PASSWORD)\n"),
    }
    match &b.generated_token {
        Some(t) => out.push_str(&format!(
            "API token:        {t}\n                  (personal, {}, expires in 270 days)\n",
            b.workspace_name
        )),
        None => out.push_str("API token:        (preset with LATCHKEY_ADMIN_TOKEN)\n"),
    }
    out.push_str("These are shown once and stored only hashed. Keep them now.\n");
    out.push_str("==============================================================\n");
    let mut stdout = std::io::stdout().lock();
    if stdout
        .write_all(out.as_bytes())
        .and_then(|()| stdout.flush())
        .is_err()
    {
        // Nowhere to show them: say so where the operator looks (never the secrets).
        tracing::error!(
            "could not print the first start's credentials to stdout; reset the password with `latchkey admin reset-password`"
        );
    }
}

/// `latchkey serve`.
pub async fn serve(args: StoreArgs) -> anyhow::Result<()> {
    let mut config = args.load()?;
    init_logging(config.log_format);
    // Bind before anything is made: a first start that cannot listen (the port is taken)
    // must fail before it creates the hash key, the administrator and the token, or their
    // one-time printout would be lost with it. Connections that arrive while the store is
    // opened and migrated wait in the listen backlog.
    let listen = config.listen;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let bound = listener.local_addr()?;
    // `--listen …:0` picks a port: defaults derived from the address use the real one.
    config.listen = bound;
    // `[metrics] listen` too: a taken port stops the start before anything is made.
    let metrics = match config.metrics.listen {
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr} (metrics.listen)"))?,
        ),
        None => None,
    };
    let metrics_bound = metrics.as_ref().map(|l| l.local_addr()).transpose()?;
    let url = config.public_url();
    let prepared = latchkey_server::prepare(config, start_options())
        .await
        .context("cannot start")?;
    // Nothing that can fail lies between the bootstrap's commit and this printout.
    if let Some(b) = &prepared.bootstrapped {
        print_bootstrap(b, &url);
    }
    match metrics_bound {
        Some(m) => tracing::info!(address = %bound, metrics = %m, "latchkey listening"),
        None => tracing::info!(address = %bound, "latchkey listening"),
    }
    latchkey_server::app::serve_with_metrics(listener, metrics, prepared.state, shutdown_signal())
        .await?;
    tracing::info!("stopped");
    Ok(())
}

/// `latchkey migrate`.
pub async fn migrate(args: StoreArgs) -> anyhow::Result<()> {
    let config = args.load()?;
    init_logging(config.log_format);
    let store = latchkey_server::open_store(&config).await?;
    store.migrate().await.context("migration failed")?;
    println!(
        "migrations applied to {}",
        redact_url(&config.database_url())
    );
    Ok(())
}

/// `latchkey openapi`.
pub fn openapi() -> anyhow::Result<()> {
    println!("{}", latchkey_server::api::openapi_json());
    Ok(())
}

/// Hides a password in a database URL.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            format!("{}://***{}", &url[..scheme_end], &url[at..])
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_passwords_are_redacted() {
        assert_eq!(
            redact_url("postgres://u:secret@db:5432/lk"),
            "postgres://***@db:5432/lk"
        );
        assert_eq!(redact_url("sqlite:///data/x.db"), "sqlite:///data/x.db");
    }
}
