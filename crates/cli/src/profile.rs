//! The file `latchkey login` writes: the server URL and the API token, mode 0600.
//!
//! Location: `$LATCHKEY_CONFIG_DIR/config.toml` when that variable is set, else
//! `$XDG_CONFIG_HOME/latchkey/config.toml`, else `~/.config/latchkey/config.toml`.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::CliError;

/// The file name inside the config directory.
const FILE_NAME: &str = "config.toml";

/// What `login` keeps.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// The server's base URL, as given to `login`.
    pub url: String,
    /// The API token.
    pub token: String,
}

impl std::fmt::Debug for Profile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Profile")
            .field("url", &self.url)
            .field("token", &"<redacted>")
            .finish()
    }
}

fn non_empty_env(name: &str) -> Option<PathBuf> {
    std::env::var_os(name)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// The config directory, or `None` when no home directory is known.
pub fn config_dir() -> Option<PathBuf> {
    if let Some(dir) = non_empty_env("LATCHKEY_CONFIG_DIR") {
        return Some(dir);
    }
    if let Some(xdg) = non_empty_env("XDG_CONFIG_HOME").filter(|p| p.is_absolute()) {
        return Some(xdg.join("latchkey"));
    }
    non_empty_env("HOME").map(|home| home.join(".config").join("latchkey"))
}

/// The config file's path.
pub fn config_path() -> Result<PathBuf, CliError> {
    config_dir().map(|d| d.join(FILE_NAME)).ok_or_else(|| {
        CliError::usage("no config directory: set LATCHKEY_CONFIG_DIR, XDG_CONFIG_HOME or HOME")
    })
}

/// Reads the profile; `None` when there is no file (or no config directory at all).
pub fn load() -> Result<Option<Profile>, CliError> {
    let Some(path) = config_dir().map(|d| d.join(FILE_NAME)) else {
        return Ok(None);
    };
    load_from(&path)
}

fn load_from(path: &Path) -> Result<Option<Profile>, CliError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(CliError::usage(format!(
                "cannot read {}: {e}",
                path.display()
            )));
        }
    };
    warn_if_shared(path);
    toml::from_str(&text).map(Some).map_err(|e| {
        CliError::usage(format!(
            "invalid config file {}: {}; run `latchkey login` again",
            path.display(),
            e.message()
        ))
    })
}

/// Warns (once per run, on stderr) when others may read the token.
fn warn_if_shared(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path)
            && meta.permissions().mode() & 0o077 != 0
        {
            eprintln!(
                "warning: {} can be read by other users; run `chmod 600 {}`",
                path.display(),
                path.display()
            );
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

/// Writes the profile atomically (a 0600 temporary file renamed over the old one) in a
/// 0700 directory; returns the path.
pub fn save(profile: &Profile) -> Result<PathBuf, CliError> {
    let path = config_path()?;
    save_to(&path, profile)?;
    Ok(path)
}

fn save_to(path: &Path, profile: &Profile) -> Result<(), CliError> {
    let io = |what: &str, p: &Path, e: std::io::Error| {
        CliError::failed(format!("cannot {what} {}: {e}", p.display()))
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder
        .create(dir)
        .map_err(|e| io("create the directory", dir, e))?;

    let body = toml::to_string(profile)
        .map_err(|e| CliError::failed(format!("cannot encode the config file: {e}")))?;
    let text = format!(
        "# Written by `latchkey login`; `latchkey logout` removes it.\n\
         # It holds an API token: keep it private (mode 0600).\n{body}"
    );
    let tmp = dir.join(format!(".{FILE_NAME}.{}.tmp", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let written = options.open(&tmp).and_then(|mut file| {
        file.write_all(text.as_bytes())?;
        file.sync_all()
    });
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(io("write", &tmp, e));
    }
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        io("write", path, e)
    })
}

/// Removes the file; whether there was one.
pub fn remove() -> Result<(bool, PathBuf), CliError> {
    let path = config_path()?;
    match std::fs::remove_file(&path) {
        Ok(()) => Ok((true, path)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok((false, path)),
        Err(e) => Err(CliError::failed(format!(
            "cannot remove {}: {e}",
            path.display()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_with_private_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested").join(FILE_NAME);
        let profile = Profile {
            url: "http://127.0.0.1:8080".into(),
            token: "lkp_x".into(),
        };
        save_to(&path, &profile).unwrap();
        assert_eq!(load_from(&path).unwrap(), Some(profile.clone()));
        // Saving again replaces the file.
        let other = Profile {
            token: "lkp_y".into(),
            ..profile
        };
        save_to(&path, &other).unwrap();
        assert_eq!(load_from(&path).unwrap(), Some(other.clone()));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(!format!("{other:?}").contains("lkp_y"));
        assert_eq!(load_from(&dir.path().join("missing.toml")).unwrap(), None);
    }

    #[test]
    fn malformed_files_are_usage_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        std::fs::write(&path, "url = 3\n").unwrap();
        let err = load_from(&path).unwrap_err();
        assert_eq!(err.exit_code(), crate::error::EXIT_USAGE);
    }
}
