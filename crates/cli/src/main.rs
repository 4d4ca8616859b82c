//! The `latchkey` binary.
//!
//! * server side ([`serve`]): `serve`, `migrate`, `openapi`;
//! * client side over the Rust SDK ([`remote`]): `login`, `logout`, `whoami`, `workspace`,
//!   `token`, `project`, `verify`;
//! * operator commands on the store ([`operator`]): `backup`, `admin reset-password`;
//! * `completions` for bash, zsh and fish.
//!
//! Exit codes: 0 success, 1 refused (an API error; `verify`: invalid), 2 usage or
//! connection error (see [`error`]).

mod error;
mod input;
mod inventory;
mod operator;
mod output;
mod policy;
mod profile;
mod remote;
mod serve;
mod users;
mod webhooks;

use std::process::ExitCode;

use clap::{CommandFactory as _, Parser, Subcommand, ValueEnum};

use crate::error::{CliError, CliResult, EXIT_OK};
use crate::operator::{AdminCmd, BackupArgs};
use crate::remote::{
    LoginArgs, LogoutArgs, ProfileCmd, ProjectCmd, Remote, TokenCmd, VerifyArgs, WorkspaceCmd,
};
use crate::serve::StoreArgs;

const MAIN_HELP: &str = "\
Examples (getting started):
  latchkey serve --data-dir ./latchkey-data          # prints the admin password and a token once
  latchkey login --url http://127.0.0.1:8080 --token -   # paste the token
  latchkey whoami
  latchkey token create --workspace \"Workspace 1\" --name ci --expires-in-days 30

Client commands read the server from --url / LATCHKEY_URL and the token from --token /
LATCHKEY_API_KEY, else from the file `latchkey login` wrote. Exit codes: 0 success,
1 refused by the server (verify: invalid token), 2 usage or connection error.";

#[derive(Parser)]
#[command(
    name = "latchkey",
    version,
    about = "Self-hosted API access tokens",
    long_about = None,
    after_help = MAIN_HELP
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (API, verifier, background tasks).
    ///
    /// Example: latchkey serve --listen 0.0.0.0:8080 --data-dir /var/lib/latchkey
    Serve(StoreArgs),
    /// Apply database migrations and exit.
    ///
    /// Example: latchkey migrate --data-dir /var/lib/latchkey
    Migrate(StoreArgs),
    /// Print the OpenAPI description of the HTTP API.
    #[command(after_help = "Example:\n  latchkey openapi > openapi.json")]
    Openapi,

    /// Check a server URL and API token and save them (mode 0600) for later commands.
    #[command(after_help = "\
Examples:
  latchkey login                                       # asks for the URL and the token
  latchkey login --url https://latchkey.example.com --token -   # token from stdin
  echo \"$TOKEN\" | latchkey login --url http://127.0.0.1:8080
  latchkey login --profile staging --url https://keys.staging.example.com   # a second server

The file is $LATCHKEY_CONFIG_DIR/config.toml, else $XDG_CONFIG_HOME/latchkey/config.toml,
else ~/.config/latchkey/config.toml.")]
    Login(LoginArgs),
    /// Forget a saved profile (the token itself keeps working until revoked).
    #[command(after_help = "Examples:\n  latchkey logout\n  latchkey logout --profile staging")]
    Logout(LogoutArgs),
    /// Saved servers (profiles): list them, choose the default.
    #[command(
        subcommand,
        after_help = "Examples:\n  latchkey login --profile staging --url https://keys.staging.example.com\n  latchkey profile list\n  latchkey profile use staging\n  latchkey token list --profile prod"
    )]
    Profile(ProfileCmd),
    /// Show who the token belongs to: user, organization, workspace memberships.
    #[command(after_help = "Examples:\n  latchkey whoami\n  latchkey whoami --output json")]
    Whoami(Remote),
    /// Workspaces.
    #[command(subcommand, after_help = "Example:\n  latchkey workspace list")]
    Workspace(WorkspaceCmd),
    /// API tokens: create, list, get, usage, update, revoke, restore, rotate, reveal, delete.
    #[command(
        subcommand,
        after_help = "Examples:\n  latchkey token create --workspace \"Workspace 1\" --name ci\n  latchkey token list\n  latchkey token revoke <id>"
    )]
    Token(TokenCmd),
    /// Projects (the example resource tokens protect).
    #[command(
        subcommand,
        after_help = "Examples:\n  latchkey project create --name \"Fraud Demo\"\n  latchkey project list"
    )]
    Project(ProjectCmd),
    /// Users and service accounts (org admins): create, list, deactivate, reactivate.
    #[command(
        subcommand,
        after_help = "Examples:\n  latchkey user create ci-bot --service\n  latchkey user list --kind service"
    )]
    User(users::UserCmd),
    /// Webhook endpoints for lifecycle events (org admins): create, list, test, deliveries.
    #[command(
        subcommand,
        after_help = "Examples:\n  latchkey webhook create https://hooks.example.com/latchkey --event token.expiring\n  latchkey webhook deliveries <id>"
    )]
    Webhook(webhooks::WebhookCmd),
    /// Check a token: exit 0 valid, 1 invalid, 2 usage or connection error.
    #[command(after_help = "\
Examples:
  latchkey verify lkp_3Vq...                 # from a script: if latchkey verify \"$T\"; then ...
  printf '%s' \"$T\" | latchkey verify -       # keeps the token out of the process list
  latchkey verify - --output json < token.txt

Needs only --url (verification takes no credentials).")]
    Verify(VerifyArgs),

    /// Write a consistent copy of the SQLite store (and its hash key), even while serving.
    #[command(after_help = "\
Examples:
  latchkey backup /backups/latchkey-$(date +%F).db --data-dir /var/lib/latchkey

Writes FILE (mode 0600) with SQLite's VACUUM INTO and copies the hash key to FILE.hash.key
(mode 0600); refuses to overwrite either. To restore, put them in an empty data directory as
latchkey.db and hash.key, then start `latchkey serve --data-dir DIR`.")]
    Backup(BackupArgs),
    /// Operator commands on the store: reset-password.
    #[command(
        subcommand,
        after_help = "Example:\n  latchkey admin reset-password admin --generate --data-dir /var/lib/latchkey"
    )]
    Admin(AdminCmd),

    /// Print a shell completion script.
    #[command(after_help = "\
Examples:
  latchkey completions bash > /etc/bash_completion.d/latchkey
  latchkey completions zsh > \"${fpath[1]}/_latchkey\"
  latchkey completions fish > ~/.config/fish/completions/latchkey.fish")]
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: Shell,
    },
}

/// Shells `completions` writes scripts for.
#[derive(Clone, Copy, ValueEnum)]
enum Shell {
    Bash,
    Zsh,
    Fish,
}

fn completions(shell: Shell) -> CliResult {
    let shell = match shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
    };
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "latchkey", &mut script);
    output::emit(&String::from_utf8_lossy(&script));
    Ok(EXIT_OK)
}

/// The server-side commands keep their own error handling: `error: …`, exit 1.
fn server_side(result: anyhow::Result<()>) -> CliResult {
    result.map(|()| EXIT_OK).map_err(CliError::from)
}

async fn run(command: Command) -> CliResult {
    match command {
        Command::Serve(args) => server_side(serve::serve(args).await),
        Command::Migrate(args) => server_side(serve::migrate(args).await),
        Command::Openapi => server_side(serve::openapi()),
        Command::Login(args) => remote::login(args).await,
        Command::Logout(args) => remote::logout(args),
        Command::Profile(cmd) => remote::profiles(cmd),
        Command::Whoami(args) => remote::whoami(args).await,
        Command::Workspace(cmd) => remote::workspace(cmd).await,
        Command::Token(cmd) => remote::token(cmd).await,
        Command::Project(cmd) => remote::project(cmd).await,
        Command::User(cmd) => users::user(cmd).await,
        Command::Webhook(cmd) => webhooks::webhook(cmd).await,
        Command::Verify(args) => remote::verify(args).await,
        Command::Backup(args) => operator::backup(args).await,
        Command::Admin(cmd) => operator::admin(cmd).await,
        Command::Completions { shell } => completions(shell),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut builder = match cli.command {
        Command::Serve(_) | Command::Migrate(_) => tokio::runtime::Builder::new_multi_thread(),
        _ => tokio::runtime::Builder::new_current_thread(),
    };
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(run(cli.command)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => e.report(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn every_command_has_an_example() {
        fn walk(cmd: &clap::Command, path: &str) {
            let path = format!("{path} {}", cmd.get_name());
            let help = format!(
                "{}{}",
                cmd.get_after_help()
                    .map(|h| h.to_string())
                    .unwrap_or_default(),
                cmd.get_long_about()
                    .map(|h| h.to_string())
                    .unwrap_or_default()
            );
            assert!(
                help.contains("latchkey ") && help.contains("xample"),
                "{path} has no example in its help"
            );
            for sub in cmd.get_subcommands() {
                walk(sub, &path);
            }
        }
        let cli = Cli::command();
        for sub in cli.get_subcommands() {
            walk(sub, "");
        }
    }
}
