//! The file `latchkey login` writes: saved servers ("profiles"), each a URL and an API
//! token, mode 0600.
//!
//! ```toml
//! default = "prod"
//! [profiles.prod]
//! url = "https://keys.example.com"
//! token = "lkp_..."
//! [profiles.staging]
//! url = "https://keys.staging.example.com"
//! token = "lkp_..."
//! ```
//!
//! Commands use `--profile NAME` (or `LATCHKEY_PROFILE`), else the `default` one. A file of
//! the first version (`url` and `token` at the top) reads as the profile `default`.
//!
//! Location: `$LATCHKEY_CONFIG_DIR/config.toml` when that variable is set, else
//! `$XDG_CONFIG_HOME/latchkey/config.toml`, else `~/.config/latchkey/config.toml`.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::CliError;

/// The file name inside the config directory.
const FILE_NAME: &str = "config.toml";

/// The profile's name when none is given and the file names no default.
pub const DEFAULT_PROFILE: &str = "default";

/// One saved server.
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

/// The whole file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profiles {
    /// The profile commands use without `--profile`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
    /// Saved servers by name.
    #[serde(default)]
    pub profiles: BTreeMap<String, Profile>,
}

impl Profiles {
    /// The name commands use: `wanted`, else the default, else `default`.
    pub fn name<'a>(&'a self, wanted: Option<&'a str>) -> &'a str {
        wanted
            .or(self.default.as_deref())
            .unwrap_or(DEFAULT_PROFILE)
    }

    /// The profile `wanted` (or the default one).
    pub fn get(&self, wanted: Option<&str>) -> Option<&Profile> {
        self.profiles.get(self.name(wanted))
    }
}

/// The first version of the file: one server at the top level.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LegacyFile {
    url: String,
    token: String,
}

/// A profile name people can type: letters, digits, `-`, `_`.
pub fn check_name(name: &str) -> Result<(), CliError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'));
    if ok {
        Ok(())
    } else {
        Err(CliError::usage(format!(
            "invalid profile name {name:?}: use letters, digits, '-' or '_' (at most 64)"
        )))
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

/// Reads the saved profiles; empty when there is no file (or no config directory at all).
pub fn load() -> Result<Profiles, CliError> {
    let Some(path) = config_dir().map(|d| d.join(FILE_NAME)) else {
        return Ok(Profiles::default());
    };
    load_from(&path)
}

fn load_from(path: &Path) -> Result<Profiles, CliError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Profiles::default()),
        Err(e) => {
            return Err(CliError::usage(format!(
                "cannot read {}: {e}",
                path.display()
            )));
        }
    };
    warn_if_shared(path);
    let invalid = |message: &str| {
        CliError::usage(format!(
            "invalid config file {}: {message}; run `latchkey login` again",
            path.display()
        ))
    };
    match toml::from_str::<Profiles>(&text) {
        Ok(profiles) => Ok(profiles),
        Err(e) => match toml::from_str::<LegacyFile>(&text) {
            Ok(old) => Ok(Profiles {
                default: None,
                profiles: BTreeMap::from([(
                    DEFAULT_PROFILE.to_owned(),
                    Profile {
                        url: old.url,
                        token: old.token,
                    },
                )]),
            }),
            Err(_) => Err(invalid(e.message())),
        },
    }
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

/// Writes the profiles atomically (a 0600 temporary file renamed over the old one) in a
/// 0700 directory; returns the path.
pub fn save(profiles: &Profiles) -> Result<PathBuf, CliError> {
    let path = config_path()?;
    save_to(&path, profiles)?;
    Ok(path)
}

fn save_to(path: &Path, profiles: &Profiles) -> Result<(), CliError> {
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

    let body = toml::to_string(profiles)
        .map_err(|e| CliError::failed(format!("cannot encode the config file: {e}")))?;
    let text = format!(
        "# Written by `latchkey login`; `latchkey logout` removes profiles from it.\n\
         # It holds API tokens: keep it private (mode 0600).\n{body}"
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

/// Removes the file (the last profile is gone); whether there was one.
pub fn remove_file() -> Result<(bool, PathBuf), CliError> {
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

    fn two() -> Profiles {
        Profiles {
            default: Some("prod".into()),
            profiles: BTreeMap::from([
                (
                    "prod".into(),
                    Profile {
                        url: "https://keys.example.com".into(),
                        token: "lkp_x".into(),
                    },
                ),
                (
                    "staging".into(),
                    Profile {
                        url: "http://127.0.0.1:8080".into(),
                        token: "lkp_y".into(),
                    },
                ),
            ]),
        }
    }

    #[test]
    fn round_trip_with_private_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested").join(FILE_NAME);
        let profiles = two();
        save_to(&path, &profiles).unwrap();
        assert_eq!(load_from(&path).unwrap(), profiles);
        assert_eq!(profiles.get(None).unwrap().token, "lkp_x");
        assert_eq!(profiles.get(Some("staging")).unwrap().token, "lkp_y");
        assert!(profiles.get(Some("nope")).is_none());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(!format!("{profiles:?}").contains("lkp_y"));
        assert_eq!(
            load_from(&dir.path().join("missing.toml")).unwrap(),
            Profiles::default()
        );
    }

    #[test]
    fn the_first_file_format_reads_as_the_default_profile() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        std::fs::write(&path, "url = \"http://h:1\"\ntoken = \"lkp_z\"\n").unwrap();
        let profiles = load_from(&path).unwrap();
        assert_eq!(profiles.name(None), DEFAULT_PROFILE);
        assert_eq!(profiles.get(None).unwrap().url, "http://h:1");
    }

    #[test]
    fn malformed_files_and_names_are_usage_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        std::fs::write(&path, "url = 3\n").unwrap();
        let err = load_from(&path).unwrap_err();
        assert_eq!(err.exit_code(), crate::error::EXIT_USAGE);
        assert!(check_name("prod-eu_1").is_ok());
        for bad in ["", "a b", "x/y", "a.b", &"p".repeat(65)] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }
}
