//! Operator commands: they work on the store directly (no server, no token), with the same
//! `--data-dir` / `--database-url` / `--config` (and environment variables) as `serve`. They
//! are safe while the server runs: the SQLite store is in WAL mode with a busy timeout, and
//! a running server sees their writes through the change feed.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use latchkey_core::NewAuditEvent;
use latchkey_server::Config;
use latchkey_store::{StoreError, UserPatch};
use latchkey_store_sqlite::SqliteStore;
use serde_json::json;

use crate::error::{CliError, CliResult, EXIT_OK};
use crate::input;
use crate::output::{self, OutputArgs, outln, print_json};
use crate::serve::{StoreLocation, env, hash_key_source};

/// The suffix of the hash key copy written next to a backup.
pub const KEY_SUFFIX: &str = ".hash.key";

/// The variable a new password is taken from.
const ENV_NEW_PASSWORD: &str = "LATCHKEY_NEW_PASSWORD";

/// `latchkey backup`.
#[derive(Args)]
pub struct BackupArgs {
    /// Where to write the copy of the database (must not exist). The hash key is copied
    /// next to it as FILE.hash.key.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    #[command(flatten)]
    pub location: StoreLocation,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// `latchkey admin …`.
#[derive(Subcommand)]
pub enum AdminCmd {
    /// Set a user's password (and end their sessions), working on the store directly.
    ///
    /// The new password comes from LATCHKEY_NEW_PASSWORD, else from stdin when stdin is
    /// not a terminal, else it is asked twice on the terminal; with --generate a random
    /// one is made and printed once. At least 8 characters.
    #[command(after_help = "\
Examples:
  latchkey admin reset-password admin --data-dir /var/lib/latchkey
  latchkey admin reset-password alice --generate
  printf '%s' \"$NEW_PASSWORD\" | latchkey admin reset-password alice
  LATCHKEY_NEW_PASSWORD='correct horse battery staple' latchkey admin reset-password alice")]
    ResetPassword(ResetPasswordArgs),
}

/// `latchkey admin reset-password`.
#[derive(Args)]
pub struct ResetPasswordArgs {
    /// The user: username or id.
    #[arg(value_name = "USER")]
    pub user: String,
    /// Make a random password (24 letters and digits) and print it once.
    #[arg(long)]
    pub generate: bool,
    #[command(flatten)]
    pub location: StoreLocation,
    #[command(flatten)]
    pub output: OutputArgs,
}

fn store_failed(e: StoreError) -> CliError {
    CliError::failed(format!("store: {e}"))
}

/// The SQLite file a configuration points at, or why there is none to work on.
fn sqlite_path(config: &Config) -> Result<PathBuf, CliError> {
    let url = config.database_url();
    let path = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .map(PathBuf::from)
        .ok_or_else(|| {
            CliError::usage(format!(
                "{} is not a SQLite database; back up PostgreSQL with its own tools (pg_dump)",
                crate::serve::redact_url(&url)
            ))
        })?;
    if !path.is_file() {
        return Err(CliError::failed(format!(
            "no database at {} (wrong --data-dir, or the server never started there)",
            path.display()
        )));
    }
    Ok(path)
}

fn load(location: &StoreLocation) -> Result<Config, CliError> {
    location
        .load()
        .map_err(|e| CliError::usage(format!("{e:#}")))
}

/// Creates `path` empty with mode 0600, failing when anything is there already.
fn create_private(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)
}

fn refuse_existing(path: &Path) -> Result<(), CliError> {
    if path.symlink_metadata().is_ok() {
        return Err(CliError::failed(format!(
            "{} already exists; refusing to overwrite it",
            path.display()
        )));
    }
    Ok(())
}

/// `latchkey backup FILE`: a consistent copy of the SQLite store (`VACUUM INTO`, safe while
/// the server runs), mode 0600, and the hash key next to it as `FILE.hash.key` (0600).
pub async fn backup(args: BackupArgs) -> CliResult {
    let config = load(&args.location)?;
    let db = sqlite_path(&config)?;
    let dest = args.file;
    let mut key_dest = dest.clone().into_os_string();
    key_dest.push(KEY_SUFFIX);
    let key_dest = PathBuf::from(key_dest);
    refuse_existing(&dest)?;

    // Where the running server takes its key from (the same order as `serve`).
    let source = hash_key_source();
    let key_file: Result<PathBuf, String> = match (&source.hex, &source.file) {
        (Some(_), _) => Err("it comes from the LATCHKEY_HASH_KEY variable".to_owned()),
        (None, Some(file)) if file.is_file() => Ok(file.clone()),
        (None, Some(file)) => Err(format!(
            "LATCHKEY_HASH_KEY_FILE names {}, which is not a file",
            file.display()
        )),
        (None, None) => {
            let file = config.data_dir.join("hash.key");
            if file.is_file() {
                Ok(file)
            } else {
                Err(format!("there is no {}", file.display()))
            }
        }
    };
    if key_file.is_ok() {
        refuse_existing(&key_dest)?;
    }

    // Creating the file first makes "does not exist" atomic and the mode 0600 from the
    // start; SQLite's VACUUM INTO accepts an empty file.
    create_private(&dest)
        .map_err(|e| CliError::failed(format!("cannot create {}: {e}", dest.display())))?;
    let copied = async {
        let store = SqliteStore::open(&db).await.map_err(store_failed)?;
        let result = store.backup(&dest).await.map_err(store_failed);
        store.close().await;
        result
    }
    .await;
    if let Err(e) = copied {
        let _ = std::fs::remove_file(&dest);
        return Err(e);
    }
    let bytes = std::fs::metadata(&dest).map(|m| m.len()).unwrap_or(0);

    let key_copy = match &key_file {
        Ok(src) => {
            let copy = std::fs::read(src).and_then(|key| {
                let mut file = create_private(&key_dest)?;
                file.write_all(&key)?;
                file.sync_all()
            });
            if let Err(e) = copy {
                return Err(CliError::failed(format!(
                    "the database was copied to {}, but the hash key could not be copied to {}: {e}; \
                     copy {} by hand",
                    dest.display(),
                    key_dest.display(),
                    src.display()
                )));
            }
            Some(key_dest)
        }
        Err(_) => None,
    };

    if args.output.json() {
        print_json(&json!({
            "backup": dest.display().to_string(),
            "database": db.display().to_string(),
            "bytes": bytes,
            "hash_key": key_copy.as_ref().map(|p| p.display().to_string()),
        }))?;
    } else {
        outln!(
            "Backup written: {} ({bytes} bytes, a consistent copy of {})",
            dest.display(),
            db.display()
        );
        match (&key_copy, &key_file) {
            (Some(key), _) => outln!("Hash key copied: {} (mode 0600)", key.display()),
            (None, Err(why)) => outln!(
                "Hash key NOT copied ({why}): keep the key with the backup, no token can be \
                 checked without it"
            ),
            (None, Ok(_)) => {}
        }
        outln!(
            "To restore: copy the backup to DIR/latchkey.db and the key to DIR/hash.key, \
             then run `latchkey serve --data-dir DIR`."
        );
    }
    if let Some(key) = &key_copy {
        eprintln!(
            "note: {} is a secret (with it, the database can confirm guessed tokens); \
             keep it apart from the backup if you can",
            key.display()
        );
    }
    Ok(EXIT_OK)
}

/// Runs an `admin` command.
pub async fn admin(cmd: AdminCmd) -> CliResult {
    match cmd {
        AdminCmd::ResetPassword(args) => reset_password(args).await,
    }
}

/// Where the new password came from.
enum NewPassword {
    Generated(String),
    Given(String),
}

fn new_password(args: &ResetPasswordArgs, username: &str) -> Result<NewPassword, CliError> {
    if args.generate {
        return Ok(NewPassword::Generated(
            latchkey_server::password::generate_password(),
        ));
    }
    if let Some(password) = env(ENV_NEW_PASSWORD) {
        return Ok(NewPassword::Given(password));
    }
    if !input::stdin_is_terminal() {
        return Ok(NewPassword::Given(input::all_of_stdin()?));
    }
    let clean = output::clean(username);
    let first = input::hidden(&format!("New password for {clean}: "))?;
    let second = input::hidden("Repeat it: ")?;
    if first != second {
        return Err(CliError::usage(
            "the passwords do not match; nothing changed",
        ));
    }
    Ok(NewPassword::Given(first))
}

/// `latchkey admin reset-password USER`.
async fn reset_password(args: ResetPasswordArgs) -> CliResult {
    let config = load(&args.location)?;
    if config.database_url.is_empty() || config.database_url.starts_with("sqlite") {
        sqlite_path(&config)?;
    }
    let store = latchkey_server::open_store(&config)
        .await
        .map_err(|e| CliError::failed(format!("{e}")))?;
    let found = if latchkey_core::is_id(&args.user) {
        match store.get_user(&args.user).await {
            Ok(user) => Some(user),
            Err(StoreError::NotFound(_)) => None,
            Err(e) => return Err(store_failed(e)),
        }
    } else {
        store
            .find_user_by_username(&args.user)
            .await
            .map_err(store_failed)?
    };
    let user = found
        .ok_or_else(|| CliError::failed(format!("no user {:?}", output::clean(&args.user))))?;
    if user.kind == latchkey_proto::UserKind::Service {
        return Err(CliError::failed(format!(
            "{} is a service account: it has no password and never signs in; nothing changed",
            output::clean(&user.username)
        )));
    }

    let password = new_password(&args, &user.username)?;
    let (text, generated) = match &password {
        NewPassword::Generated(p) => (p.clone(), true),
        NewPassword::Given(p) => (p.clone(), false),
    };
    latchkey_server::password::check_new_password("password", &text)
        .map_err(|e| CliError::usage(format!("{e}; nothing changed")))?;
    let hash = latchkey_server::password::hash_password(&config.passwords, text.clone())
        .await
        .map_err(|e| CliError::failed(format!("{e}")))?;
    let event = NewAuditEvent {
        action: "user.password_reset".to_owned(),
        actor_id: None,
        actor_token_id: None,
        target_type: Some("user".to_owned()),
        target_id: Some(user.id.clone()),
        workspace_id: None,
        subject_user_id: Some(user.id.clone()),
        ip: None,
        details: json!({ "via": "cli" }),
    };
    let patch = UserPatch {
        password_hash: Some(hash),
        ..UserPatch::default()
    };
    let now = latchkey_server::Clock::default().now();
    let updated = store
        .update_user(now, &user.id, patch, event)
        .await
        .map_err(store_failed)?;

    if args.output.json() {
        let mut doc = json!({ "user": updated.to_proto(), "sessions_ended": true });
        if generated && let Some(doc) = doc.as_object_mut() {
            doc.insert("password".to_owned(), json!(text));
        }
        print_json(&doc)?;
    } else {
        outln!(
            "Password of {} reset; their console sessions were ended.",
            output::clean(&updated.username)
        );
        if generated {
            outln!("New password: {text}");
            eprintln!("Copy the password now: it is shown only this once.");
        }
        if !updated.active {
            eprintln!(
                "note: {} is deactivated and cannot sign in until reactivated",
                output::clean(&updated.username)
            );
        }
    }
    Ok(EXIT_OK)
}
