//! Reading secrets and answers: from a pipe, or asked on the terminal (hidden for secrets).

use std::io::{BufRead as _, IsTerminal as _, Read as _, Write as _};

use crate::error::CliError;

/// Whether stdin is a terminal (a person can be asked).
pub fn stdin_is_terminal() -> bool {
    std::io::stdin().is_terminal()
}

fn read_error(e: std::io::Error) -> CliError {
    CliError::usage(format!("cannot read stdin: {e}"))
}

/// A token from stdin (`--token -`, `verify -`): asked without echo on a terminal, else the
/// first line of the pipe, trimmed.
pub fn token_from_stdin(prompt: &str) -> Result<String, CliError> {
    let token = if stdin_is_terminal() {
        rpassword::prompt_password(prompt).map_err(read_error)?
    } else {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(read_error)?;
        line
    };
    let token = token.trim().to_owned();
    if token.is_empty() {
        return Err(CliError::usage("no token on stdin"));
    }
    Ok(token)
}

/// A secret typed on the terminal without echo.
pub fn hidden(prompt: &str) -> Result<String, CliError> {
    rpassword::prompt_password(prompt).map_err(read_error)
}

/// The whole of stdin (a pipe), less one trailing line break.
pub fn all_of_stdin() -> Result<String, CliError> {
    let mut text = String::new();
    std::io::stdin()
        .read_to_string(&mut text)
        .map_err(read_error)?;
    if text.ends_with('\n') {
        text.pop();
        if text.ends_with('\r') {
            text.pop();
        }
    }
    Ok(text)
}

/// A line typed on the terminal after `prompt` (shown on stderr), trimmed.
pub fn line(prompt: &str) -> Result<String, CliError> {
    eprint!("{prompt}");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(read_error)?;
    Ok(line.trim().to_owned())
}
