//! How a command fails: one line on stderr and an exit code.
//!
//! | exit | meaning |
//! |---|---|
//! | 0 | success (`verify`: the token is valid) |
//! | 1 | the server (or the store) refused: an API error, a missing user, a file in the way (`verify`: the token is invalid) |
//! | 2 | usage: bad flags, no URL or token, an unreadable config file, or the server could not be reached |

use std::error::Error as _;
use std::fmt;
use std::process::ExitCode;

use crate::output::one_line;

/// Exit code for success.
pub const EXIT_OK: u8 = 0;
/// Exit code for a refusal (API error, `verify` of an invalid token).
pub const EXIT_FAILED: u8 = 1;
/// Exit code for usage and connection errors (clap uses 2 for its own usage errors).
pub const EXIT_USAGE: u8 = 2;

/// A failed command.
#[derive(Debug)]
pub enum CliError {
    /// The user asked for something that cannot work as asked (exit 2).
    Usage(String),
    /// The server could not be reached or spoke something else (exit 2).
    Connection(String),
    /// The server answered with an error (exit 1).
    Api {
        /// HTTP status.
        status: u16,
        /// Stable error code.
        code: String,
        /// The server's message, with the field or limit it names.
        message: String,
    },
    /// Anything else that went wrong doing the work (exit 1).
    Failed(String),
    /// A command whose exit 1 has its own meaning (`verify`: invalid) got no usable answer
    /// (exit 2).
    NoAnswer(Box<CliError>),
}

impl CliError {
    /// A usage error.
    pub fn usage(message: impl Into<String>) -> CliError {
        CliError::Usage(message.into())
    }

    /// A failure.
    pub fn failed(message: impl Into<String>) -> CliError {
        CliError::Failed(message.into())
    }

    /// The process exit code.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Usage(_) | CliError::Connection(_) | CliError::NoAnswer(_) => EXIT_USAGE,
            CliError::Api { .. } | CliError::Failed(_) => EXIT_FAILED,
        }
    }

    /// Prints `error: …` to stderr and gives the exit code.
    pub fn report(&self) -> ExitCode {
        eprintln!("error: {}", one_line(&self.to_string()));
        ExitCode::from(self.exit_code())
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CliError::Usage(m) | CliError::Connection(m) | CliError::Failed(m) => f.write_str(m),
            CliError::Api {
                status,
                code,
                message,
            } => write!(f, "{message} ({code}, HTTP {status})"),
            CliError::NoAnswer(inner) => inner.fmt(f),
        }
    }
}

impl From<latchkey_client::Error> for CliError {
    fn from(err: latchkey_client::Error) -> CliError {
        use latchkey_client::Error as E;
        match &err {
            E::Api {
                status,
                code,
                message,
                field,
                limit,
                ..
            } => {
                let mut text = if message.is_empty() {
                    code.replace('_', " ")
                } else {
                    message.clone()
                };
                if let Some(field) = field
                    && !text.contains(field.as_str())
                {
                    text.push_str(&format!(" (field: {field})"));
                }
                if let Some(limit) = limit
                    && !text.contains(limit.as_str())
                {
                    text.push_str(&format!(" (limit: {limit})"));
                }
                CliError::Api {
                    status: *status,
                    code: code.clone(),
                    message: text,
                }
            }
            E::Transport(e) => CliError::Connection(describe_transport(e)),
            E::Decode { status, message } => CliError::Connection(format!(
                "unexpected answer from the server (HTTP {status}); is the URL a Latchkey server? {message}"
            )),
            E::InvalidUrl(m) => CliError::Usage(format!("invalid URL: {m}")),
            E::MissingEnv(name) => CliError::Usage(format!("{name} is not set")),
            _ => CliError::Connection(err.to_string()),
        }
    }
}

impl From<anyhow::Error> for CliError {
    fn from(err: anyhow::Error) -> CliError {
        CliError::Failed(format!("{err:#}"))
    }
}

/// A transport error in one line: what failed and the root cause (never a secret: the
/// request URL holds no token, and headers are not part of reqwest's messages).
fn describe_transport(e: &latchkey_client::reqwest::Error) -> String {
    let target = e
        .url()
        .map(|u| format!("{}://{}", u.scheme(), u.authority()))
        .unwrap_or_else(|| "the server".to_owned());
    if e.is_timeout() {
        return format!("no answer from {target} in time (timed out)");
    }
    // The innermost causes say what happened ("Connection refused", "dns error", ...).
    let mut causes: Vec<String> = Vec::new();
    let mut source = e.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !causes.iter().any(|c| c.contains(&text)) {
            causes.push(text);
        }
        source = cause.source();
    }
    let cause = causes
        .last()
        .cloned()
        .unwrap_or_else(|| latchkey_client::redact_secrets(&e.to_string()).into_owned());
    if e.is_connect() {
        format!("cannot connect to {target}: {cause}")
    } else {
        format!("request to {target} failed: {cause}")
    }
}

/// The result of a command: the exit code to end with.
pub type CliResult = Result<u8, CliError>;
