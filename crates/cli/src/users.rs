//! `latchkey user …`: users and service accounts of the organization (org admins), over
//! the SDK.

use clap::{Args, Subcommand};
use latchkey_client::proto::{CreateUserRequest, OrgRole, Page, UpdateUserRequest, User, UserKind};
use latchkey_client::{Client, collect_all};

use crate::error::{CliError, CliResult, EXIT_OK};
use crate::input;
use crate::output::{self, Table, out, print_json};
use crate::remote::{Remote, now};

fn parse_role(name: &str) -> Result<OrgRole, String> {
    OrgRole::parse(name).ok_or_else(|| "unknown role; one of: owner, admin, member".to_owned())
}

fn parse_kind(name: &str) -> Result<UserKind, String> {
    UserKind::parse(name).ok_or_else(|| "unknown kind; one of: human, service".to_owned())
}

/// `latchkey user create`.
#[derive(Args)]
pub struct CreateUser {
    /// The username (1–64 letters, digits, `.`, `_`, `-`, `@`).
    #[arg(value_name = "USERNAME")]
    pub username: String,
    /// A service account: no password, never signs in; org admins create personal tokens
    /// for it (`latchkey token create --owner USERNAME`).
    #[arg(long)]
    pub service: bool,
    /// Org role: admin or member (owner for people, by owners) [default: member].
    #[arg(long, value_parser = parse_role)]
    pub role: Option<OrgRole>,
    /// A name to show.
    #[arg(long)]
    pub display_name: Option<String>,
    /// A contact address (expiry notices go there).
    #[arg(long)]
    pub email: Option<String>,
    /// A person's password from stdin (asked twice on a terminal); not for --service.
    #[arg(long, conflicts_with = "service")]
    pub password_stdin: bool,
    #[command(flatten)]
    pub remote: Remote,
}

/// `latchkey user list`.
#[derive(Args)]
pub struct ListUsers {
    /// Only users of this kind: human or service.
    #[arg(long, value_parser = parse_kind)]
    pub kind: Option<UserKind>,
    #[command(flatten)]
    pub remote: Remote,
}

/// A command on one user.
#[derive(Args)]
pub struct OneUser {
    /// The user: id or username.
    #[arg(value_name = "USER")]
    pub user: String,
    #[command(flatten)]
    pub remote: Remote,
}

/// `latchkey user …`.
#[derive(Subcommand)]
pub enum UserCmd {
    /// Create a person (with a password) or a service account (`--service`).
    #[command(after_help = "\
Examples:
  latchkey user create ci-bot --service --display-name \"CI pipeline\"
  latchkey token create --workspace \"Workspace 1\" --name deploy --owner ci-bot
  printf '%s' \"$PASSWORD\" | latchkey user create alice --role admin --password-stdin")]
    Create(CreateUser),
    /// List users (`--kind service`: the service accounts).
    #[command(
        after_help = "Examples:\n  latchkey user list\n  latchkey user list --kind service --output json"
    )]
    List(ListUsers),
    /// Deactivate a user: their sessions end and their tokens stop at once, on every node.
    #[command(after_help = "Example:\n  latchkey user deactivate ci-bot")]
    Deactivate(OneUser),
    /// Reactivate a user: tokens that were not revoked or expired work again.
    #[command(after_help = "Example:\n  latchkey user reactivate ci-bot")]
    Reactivate(OneUser),
}

/// Every user (of `kind`), all pages.
async fn all_users(client: &Client, kind: Option<UserKind>) -> Result<Vec<User>, CliError> {
    Ok(collect_all(|q| async move {
        match kind {
            Some(kind) => client.list_users_of_kind(kind, &q).await,
            None => client.list_users(&q).await,
        }
    })
    .await?)
}

/// A user's id from an id or a username (case-insensitive, as sign-in matches it).
pub(crate) async fn user_id(client: &Client, user: &str) -> Result<String, CliError> {
    let wanted = user.trim();
    if latchkey_core::is_id(wanted) {
        return Ok(wanted.to_owned());
    }
    all_users(client, None)
        .await?
        .into_iter()
        .find(|u| u.username.to_lowercase() == wanted.to_lowercase())
        .map(|u| u.id)
        .ok_or_else(|| {
            CliError::failed(format!(
                "no user named {:?} (see `latchkey user list`)",
                output::clean(wanted)
            ))
        })
}

fn user_table(users: &[User]) -> Table {
    let now = now();
    let mut table = Table::new(&["ID", "USERNAME", "KIND", "ROLE", "STATE", "CREATED"]);
    for u in users {
        table.row(vec![
            output::short_id(&u.id),
            output::clean(&u.username),
            u.kind.as_str().to_owned(),
            u.role.as_str().to_owned(),
            if u.active { "active" } else { "deactivated" }.to_owned(),
            output::relative(u.created_at, now),
        ]);
    }
    table
}

fn print_user(user: &User, json: bool) -> CliResult {
    if json {
        print_json(user)?;
    } else {
        out!(
            "{}",
            output::details(&[
                ("Id", user.id.clone()),
                ("Username", user.username.clone()),
                ("Kind", user.kind.as_str().to_owned()),
                ("Role", user.role.as_str().to_owned()),
                (
                    "State",
                    if user.active { "active" } else { "deactivated" }.to_owned()
                ),
                ("Name", user.display_name.clone().unwrap_or_default()),
                ("Email", user.email.clone().unwrap_or_default()),
                ("Created", output::rfc3339(user.created_at)),
            ])
        );
    }
    Ok(EXIT_OK)
}

/// Runs a `user` command.
pub async fn user(cmd: UserCmd) -> CliResult {
    match cmd {
        UserCmd::Create(args) => {
            let client = args.remote.client(true, !args.password_stdin)?;
            let mut request = if args.service {
                CreateUserRequest::service(args.username)
            } else {
                if !args.password_stdin {
                    return Err(CliError::usage(
                        "a person needs a password: pass --password-stdin (or --service for a \
                         service account, which has none)",
                    ));
                }
                let password = input::token_from_stdin("Password: ")?;
                CreateUserRequest::human(args.username, password, OrgRole::Member)
            };
            if let Some(role) = args.role {
                request.role = role;
            }
            request.display_name = args.display_name;
            request.email = args.email;
            let user = client.create_user(&request).await?;
            print_user(&user, args.remote.json())
        }
        UserCmd::List(args) => {
            let client = args.remote.client(true, true)?;
            let users = all_users(&client, args.kind).await?;
            if args.remote.json() {
                print_json(&Page {
                    items: users,
                    next_cursor: None,
                })?;
            } else {
                user_table(&users).print_or("No users.");
            }
            Ok(EXIT_OK)
        }
        UserCmd::Deactivate(args) => set_active(args, false).await,
        UserCmd::Reactivate(args) => set_active(args, true).await,
    }
}

async fn set_active(args: OneUser, active: bool) -> CliResult {
    let client = args.remote.client(true, true)?;
    let id = user_id(&client, &args.user).await?;
    let request = UpdateUserRequest {
        active: Some(active),
        ..UpdateUserRequest::default()
    };
    let user = client.update_user(&id, &request).await?;
    print_user(&user, args.remote.json())
}
