//! Client-side commands, over the Rust SDK: `login`, `logout`, `whoami`, `workspace`,
//! `token`, `project`, `verify`.
//!
//! Where the server and token come from, first match wins: `--url` / `--token` (`-` reads
//! the token from stdin), then `LATCHKEY_URL` / `LATCHKEY_API_KEY`, then the profile
//! `latchkey login` saved (`--profile` / `LATCHKEY_PROFILE`, else the default one). A saved
//! token is only ever sent to its saved URL.

use std::future::Future;

use clap::{Args, Subcommand};
use latchkey_client::proto::{
    CreateTokenRequest, Page, Project, RotateTokenRequest, Scope, Token, TokenState, TokenType,
    VerifyRequest, Workspace,
};
use latchkey_client::reqwest::Method;
use latchkey_client::{Client, PageQuery};
use serde::de::DeserializeOwned;
use serde_json::json;
use time::OffsetDateTime;

use crate::error::{CliError, CliResult, EXIT_FAILED, EXIT_OK};
use crate::input;
use crate::inventory::{self, BulkRevoke, InventoryFilters, ListFormat};
use crate::output::{self, OutputArgs, out, outln, print_json};
use crate::policy::{PolicyArgs, PolicyField};
use crate::profile::{self, Profile, Profiles};

/// The most pages `token list` follows while filtering (200 items each).
const MAX_PAGES: usize = 100;
/// Items per page when listing everything.
pub(crate) const PAGE_SIZE: u32 = 200;

/// Which server, which token, which output: every client command takes these.
#[derive(Args, Clone)]
pub struct Remote {
    /// Latchkey server URL (no scheme means https://) [default: the URL saved by `latchkey login`].
    #[arg(long, env = "LATCHKEY_URL", value_name = "URL")]
    pub url: Option<String>,
    /// API token, or `-` to read it from stdin (keeps it out of shell history)
    /// [default: the token saved by `latchkey login`].
    #[arg(
        long,
        env = "LATCHKEY_API_KEY",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub token: Option<String>,
    /// Saved server to use (see `latchkey profile list`) [default: the default profile].
    #[arg(long, env = "LATCHKEY_PROFILE", value_name = "NAME")]
    pub profile: Option<String>,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// Now, for relative times in tables and expiry warnings.
// The CLI is an edge of the system: it owns the wall clock (clippy.toml bans it elsewhere).
#[allow(clippy::disallowed_methods)]
pub(crate) fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

fn non_empty(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

/// The base URL as the SDK normalizes it, for comparing URLs.
fn normalized(url: &str) -> Option<String> {
    Client::new(url).ok().map(|c| c.base_url().to_string())
}

impl Remote {
    pub(crate) fn json(&self) -> bool {
        self.output.json()
    }

    /// A client for the chosen server. `token_required`: fail (exit 2) without a token.
    /// `stdin_free`: whether `--token -` may read stdin (not when stdin carries something
    /// else).
    pub(crate) fn client(
        &self,
        token_required: bool,
        stdin_free: bool,
    ) -> Result<Client, CliError> {
        let flag_url = non_empty(&self.url);
        let flag_token = non_empty(&self.token);
        // The saved file is read only when it may supply something (a call that needs no
        // token and has a URL does not look at it).
        let needs_saved = flag_url.is_none() || (flag_token.is_none() && token_required);
        let wanted = non_empty(&self.profile);
        let saved: Option<Profile> = if needs_saved || wanted.is_some() {
            let profiles = profile::load()?;
            match (wanted, profiles.get(wanted)) {
                (_, Some(found)) => Some(found.clone()),
                (Some(name), None) => {
                    return Err(CliError::usage(format!(
                        "no saved profile {:?}: run `latchkey login --profile {}` (see \
                         `latchkey profile list`)",
                        output::clean(name),
                        output::clean(name)
                    )));
                }
                (None, None) => None,
            }
        } else {
            None
        };
        let url = match (flag_url, &saved) {
            (Some(url), _) => url.to_owned(),
            (None, Some(saved)) => saved.url.clone(),
            (None, None) => {
                return Err(CliError::usage(
                    "no server URL: pass --url, set LATCHKEY_URL, or run `latchkey login`",
                ));
            }
        };
        // A token expiring within 7 days is said on stderr (once), so a CI log shows it
        // before the 401s start.
        let mut client = Client::new(&url)?.on_token_expiring(|at| {
            let days = (at - now()).whole_days().max(0);
            eprintln!(
                "warning: the API token in use expires {} (in {days} days); rotate it \
                 (`latchkey token rotate <id>`)",
                output::rfc3339(at)
            );
        });
        let token = match flag_token {
            Some("-") if !stdin_free => {
                return Err(CliError::usage(
                    "stdin is already used for the token to verify; pass --token another way",
                ));
            }
            Some("-") => Some(input::token_from_stdin("API token: ")?),
            Some(token) => Some(token.to_owned()),
            // The saved token goes only to the server it was saved for.
            None => saved
                .filter(|s| normalized(&s.url).as_deref() == Some(client.base_url().as_str()))
                .map(|s| s.token),
        };
        if token.is_none() && token_required {
            return Err(CliError::usage(
                "no API token: pass --token (or --token - to read it from stdin), set \
                 LATCHKEY_API_KEY, or run `latchkey login`",
            ));
        }
        client.set_token(token);
        Ok(client)
    }
}

// ---- paging and lookups --------------------------------------------------------------

/// Every item of a paged list (the SDK's walk over every page).
async fn all_pages<T, F, Fut>(fetch: F) -> Result<Vec<T>, CliError>
where
    F: FnMut(PageQuery) -> Fut,
    Fut: Future<Output = Result<Page<T>, latchkey_client::Error>>,
{
    Ok(latchkey_client::collect_all(fetch).await?)
}

/// The whole list, shaped as the API's page object (`next_cursor` null).
fn as_page<T>(items: Vec<T>) -> Page<T> {
    Page {
        items,
        next_cursor: None,
    }
}

/// A GET the SDK has no method for, decoded like the SDK's own calls.
async fn get_raw<T: DeserializeOwned>(
    client: &Client,
    path: &str,
    page: &PageQuery,
) -> Result<T, latchkey_client::Error> {
    let response = client.request(Method::GET, path).query(page).send().await?;
    let status = response.status().as_u16();
    let body = response.bytes().await?;
    if !(200..300).contains(&status) {
        return Err(latchkey_client::Error::from_response(status, &body));
    }
    serde_json::from_slice(&body).map_err(|e| latchkey_client::Error::Decode {
        status,
        message: latchkey_client::redact_secrets(&e.to_string()).into_owned(),
    })
}

/// A workspace id from an id or a name.
async fn workspace_id(client: &Client, workspace: &str) -> Result<String, CliError> {
    if latchkey_core::is_id(workspace) {
        return Ok(workspace.to_owned());
    }
    let all = all_pages(|q| async move { client.list_workspaces_page(&q).await }).await?;
    all.into_iter()
        .find(|w| w.name == workspace)
        .map(|w| w.id)
        .ok_or_else(|| {
            CliError::failed(format!(
                "no workspace named {:?} that this token can see (see `latchkey workspace list`)",
                output::clean(workspace)
            ))
        })
}

/// Project ids from ids or names (names are looked up in the workspace).
async fn project_ids(
    client: &Client,
    workspace_id: &str,
    projects: &[String],
) -> Result<Vec<String>, CliError> {
    if projects.iter().all(|p| latchkey_core::is_id(p)) {
        return Ok(projects.to_vec());
    }
    let known: Vec<Project> =
        all_pages(|q| async move { client.list_projects_page(workspace_id, &q).await }).await?;
    projects
        .iter()
        .map(|p| {
            if latchkey_core::is_id(p) {
                return Ok(p.clone());
            }
            let mut named = known.iter().filter(|k| &k.name == p);
            match (named.next(), named.next()) {
                (Some(one), None) => Ok(one.id.clone()),
                (None, _) => Err(CliError::failed(format!(
                    "no project named {:?} in the workspace",
                    output::clean(p)
                ))),
                (Some(_), Some(_)) => Err(CliError::usage(format!(
                    "several projects are named {:?}; pass the project's id (see `latchkey \
                     project list`)",
                    output::clean(p)
                ))),
            }
        })
        .collect()
}

// ---- login, logout, whoami -------------------------------------------------------------

/// `latchkey login`.
#[derive(Args)]
pub struct LoginArgs {
    /// Latchkey server URL (no scheme means https://); asked when not given.
    #[arg(long, env = "LATCHKEY_URL", value_name = "URL")]
    pub url: Option<String>,
    /// API token, or `-` to read it from stdin; asked (hidden) when not given.
    #[arg(
        long,
        env = "LATCHKEY_API_KEY",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub token: Option<String>,
    /// Save under this name, to keep several servers [default: the default profile, or
    /// `default`]. The first profile saved becomes the default.
    #[arg(long, env = "LATCHKEY_PROFILE", value_name = "NAME")]
    pub profile: Option<String>,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// `latchkey login`: checks the URL and token with `GET /api/v1/me` (for a workspace token,
/// which has no user, with a verify of the token itself) and saves them.
pub async fn login(args: LoginArgs) -> CliResult {
    let url = match non_empty(&args.url) {
        Some(url) => url.to_owned(),
        None if input::stdin_is_terminal() => input::line("Latchkey URL: ")?,
        None => {
            return Err(CliError::usage(
                "no server URL: pass --url or set LATCHKEY_URL",
            ));
        }
    };
    if url.is_empty() {
        return Err(CliError::usage("no server URL given"));
    }
    let token = match non_empty(&args.token) {
        Some("-") => input::token_from_stdin("API token: ")?,
        Some(token) => token.to_owned(),
        None if input::stdin_is_terminal() => input::hidden("API token (input hidden): ")?,
        None => input::token_from_stdin("API token: ")?,
    };
    let token = token.trim().to_owned();
    if token.is_empty() {
        return Err(CliError::usage("no API token given"));
    }
    let client = Client::with_token(&url, token.clone())?;
    let base = client.base_url().as_str().trim_end_matches('/').to_owned();
    let (who, identity) = match client.me().await {
        Ok(me) => (
            format!(
                "{} ({}) in {}",
                output::clean(&me.user.username),
                me.user.role.as_str(),
                output::clean(&me.org.name)
            ),
            json!({ "me": me }),
        ),
        Err(e) if e.is_forbidden() => {
            // Workspace tokens (client, frontend, admin) have no user to show.
            let answer = client.verify(&token).await?;
            match answer.token.filter(|_| answer.valid) {
                Some(meta) => (
                    format!(
                        "{} token {:?} of workspace {}",
                        meta.token_type.as_str(),
                        output::clean(&meta.name),
                        output::clean(meta.workspace_name.as_deref().unwrap_or("-"))
                    ),
                    json!({ "token": meta }),
                ),
                None => return Err(e.into()),
            }
        }
        Err(e) => return Err(e.into()),
    };
    let mut profiles = profile::load()?;
    let name = profiles.name(non_empty(&args.profile)).to_owned();
    profile::check_name(&name)?;
    profiles.profiles.insert(
        name.clone(),
        Profile {
            url: base.clone(),
            token,
        },
    );
    if profiles.default.is_none() {
        profiles.default = Some(name.clone());
    }
    let path = profile::save(&profiles)?;
    if args.output.json() {
        let mut doc = json!({
            "url": base,
            "profile": name,
            "config_file": path.display().to_string(),
        });
        if let (Some(doc), Some(identity)) = (doc.as_object_mut(), identity.as_object()) {
            doc.extend(identity.clone());
        }
        print_json(&doc)?;
    } else {
        outln!("Logged in to {base} as {who}.");
        outln!(
            "Saved the URL and token as profile {name:?} in {} (mode 0600).",
            path.display()
        );
    }
    Ok(EXIT_OK)
}

/// `latchkey logout`.
#[derive(Args)]
pub struct LogoutArgs {
    /// The profile to forget [default: the default profile].
    #[arg(long, env = "LATCHKEY_PROFILE", value_name = "NAME")]
    pub profile: Option<String>,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// `latchkey logout`: forgets one saved profile, and removes the file with the last one
/// (the token itself stays valid; `latchkey token revoke` stops it).
pub fn logout(args: LogoutArgs) -> CliResult {
    let mut profiles = profile::load()?;
    let name = profiles.name(non_empty(&args.profile)).to_owned();
    let removed = profiles.profiles.remove(&name).is_some();
    if profiles.default.as_deref() == Some(name.as_str()) {
        profiles.default = profiles.profiles.keys().next().cloned();
    }
    let path = if profiles.profiles.is_empty() {
        profile::remove_file()?.1
    } else {
        profile::save(&profiles)?
    };
    if args.output.json() {
        print_json(&json!({
            "logged_out": removed,
            "profile": name,
            "default": profiles.default,
            "config_file": path.display().to_string(),
        }))?;
    } else if removed {
        outln!("Logged out: forgot profile {name:?} ({}).", path.display());
        if let Some(default) = &profiles.default {
            outln!("The default profile is now {default:?}.");
        }
    } else {
        outln!("Not logged in as profile {name:?} (see `latchkey profile list`).");
    }
    Ok(EXIT_OK)
}

// ---- profiles ------------------------------------------------------------------------

/// `latchkey profile …`.
#[derive(Subcommand)]
pub enum ProfileCmd {
    /// List the saved servers.
    #[command(
        after_help = "Examples:\n  latchkey profile list\n  latchkey profile list --output json"
    )]
    List(OutputArgs),
    /// Make a saved server the default.
    #[command(after_help = "Example:\n  latchkey profile use staging")]
    Use {
        /// The profile's name.
        name: String,
        #[command(flatten)]
        output: OutputArgs,
    },
}

/// Runs a `profile` command.
pub fn profiles(cmd: ProfileCmd) -> CliResult {
    match cmd {
        ProfileCmd::List(output) => {
            let profiles = profile::load()?;
            let default = profiles.name(None).to_owned();
            if output.json() {
                let items: Vec<_> = profiles
                    .profiles
                    .iter()
                    .map(|(name, p)| {
                        json!({
                            "name": name,
                            "url": p.url,
                            "token_hint": output::hint_of(&p.token),
                            "default": *name == default,
                        })
                    })
                    .collect();
                print_json(&json!({ "items": items, "default": profiles.default }))?;
            } else {
                profile_table(&profiles, &default).print_or(
                    "No saved profiles: run `latchkey login` (with --profile NAME to keep several).",
                );
            }
            Ok(EXIT_OK)
        }
        ProfileCmd::Use { name, output } => {
            let mut profiles = profile::load()?;
            if !profiles.profiles.contains_key(&name) {
                return Err(CliError::usage(format!(
                    "no saved profile {:?} (see `latchkey profile list`)",
                    output::clean(&name)
                )));
            }
            profiles.default = Some(name.clone());
            let path = profile::save(&profiles)?;
            if output.json() {
                print_json(&json!({ "default": name, "config_file": path.display().to_string() }))?;
            } else {
                outln!("The default profile is now {name:?}.");
            }
            Ok(EXIT_OK)
        }
    }
}

fn profile_table(profiles: &Profiles, default: &str) -> output::Table {
    let mut table = output::Table::new(&["", "NAME", "URL", "TOKEN"]);
    for (name, p) in &profiles.profiles {
        table.row(vec![
            if name == default { "*" } else { "" }.to_owned(),
            name.clone(),
            output::truncate(&p.url, 70),
            output::hint_of(&p.token),
        ]);
    }
    table
}

/// `latchkey whoami`.
pub async fn whoami(remote: Remote) -> CliResult {
    let client = remote.client(true, true)?;
    let me = client.me().await?;
    if remote.json() {
        print_json(&me)?;
    } else {
        out!("{}", output::me_details(&me));
    }
    Ok(EXIT_OK)
}

// ---- workspaces ----------------------------------------------------------------------

/// `latchkey workspace …`.
#[derive(Subcommand)]
pub enum WorkspaceCmd {
    /// List the workspaces this token can see.
    #[command(
        after_help = "Example:\n  latchkey workspace list\n  latchkey workspace list --output json | jq -r '.items[].name'"
    )]
    List(Remote),
}

/// Runs a `workspace` command.
pub async fn workspace(cmd: WorkspaceCmd) -> CliResult {
    match cmd {
        WorkspaceCmd::List(remote) => {
            let client = remote.client(true, true)?;
            let items: Vec<Workspace> = all_pages(|q| {
                let client = &client;
                async move { client.list_workspaces_page(&q).await }
            })
            .await?;
            if remote.json() {
                print_json(&as_page(items))?;
            } else {
                output::workspace_table(&items, now()).print_or("No workspaces.");
            }
            Ok(EXIT_OK)
        }
    }
}

// ---- tokens --------------------------------------------------------------------------

fn parse_type(name: &str) -> Result<TokenType, String> {
    TokenType::parse(name).ok_or_else(|| {
        let all: Vec<_> = TokenType::ALL.iter().map(|t| t.as_str()).collect();
        format!("unknown token type; one of: {}", all.join(", "))
    })
}

fn parse_scope(name: &str) -> Result<Scope, String> {
    Scope::parse(name).ok_or_else(|| {
        let all: Vec<_> = Scope::ALL.iter().map(|s| s.as_str()).collect();
        format!("unknown scope; one of: {}", all.join(", "))
    })
}

/// `latchkey token create`.
#[derive(Args)]
pub struct CreateToken {
    /// The workspace, by name or id.
    #[arg(long, short = 'w', value_name = "WORKSPACE")]
    pub workspace: String,
    /// The token's name (free text, up to 200 characters).
    #[arg(long, short = 'n')]
    pub name: String,
    /// Token type: personal, legacy, client, frontend or admin.
    #[arg(long = "type", short = 't', default_value = "personal", value_parser = parse_type)]
    pub token_type: TokenType,
    /// Lifetime in whole days (at most what the policy allows).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(i64).range(1..))]
    pub expires_in_days: Option<i64>,
    /// A scope (repeat for more): projects:read, projects:write, tokens:read, tokens:write,
    /// members:read, introspect, admin, metrics:read.
    #[arg(long = "scope", short = 's', value_name = "SCOPE", value_parser = parse_scope)]
    pub scopes: Vec<Scope>,
    /// A project to bind a client or frontend token to, by id or name (repeat for more).
    #[arg(long = "project", short = 'p', value_name = "PROJECT")]
    pub projects: Vec<String>,
    /// An environment name to bind a client or frontend token to.
    #[arg(long, short = 'e')]
    pub environment: Option<String>,
    /// For a personal token: its owner, by username or id (org admins create tokens for
    /// others, e.g. for a service account) [default: you].
    #[arg(long, value_name = "USER")]
    pub owner: Option<String>,
    #[command(flatten)]
    pub policy: PolicyArgs,
    #[command(flatten)]
    pub remote: Remote,
}

/// `latchkey token update`.
#[derive(Args)]
pub struct UpdateToken {
    #[command(flatten)]
    pub which: TokenRef,
    #[command(flatten)]
    pub policy: PolicyArgs,
    /// Remove a setting (repeat for more): metadata, allowed_ips (usable from anywhere),
    /// rate_limit, remaining_uses (unlimited), refill.
    #[arg(long = "clear", value_name = "FIELD", value_enum)]
    pub clear: Vec<PolicyField>,
    #[command(flatten)]
    pub remote: Remote,
}

fn parse_state(name: &str) -> Result<TokenState, String> {
    TokenState::parse(name).ok_or_else(|| {
        let all: Vec<_> = TokenState::ALL.iter().map(|s| s.as_str()).collect();
        format!("unknown token state; one of: {}", all.join(", "))
    })
}

/// `latchkey token list`.
#[derive(Args)]
pub struct ListTokens {
    /// Tokens of this workspace (name or id) that you may see; without it: your own tokens
    /// (with --all or an inventory filter: every token you may see).
    #[arg(long, short = 'w', value_name = "WORKSPACE")]
    pub workspace: Option<String>,
    /// Only tokens in this state: active, revoked, expired, suspended, type_disabled.
    #[arg(long, value_parser = parse_state)]
    pub state: Option<TokenState>,
    /// Only tokens of this type: personal, legacy, client, frontend, admin.
    #[arg(long = "type", short = 't', value_parser = parse_type)]
    pub token_type: Option<TokenType>,
    #[command(flatten)]
    pub filters: InventoryFilters,
    /// Every token you may see, across workspaces (the org-wide inventory), every page.
    #[arg(long)]
    pub all: bool,
    /// `csv`: every matching token as the server's CSV export (implies the inventory).
    #[arg(long, value_enum, conflicts_with_all = ["limit", "wide", "output"])]
    pub format: Option<ListFormat>,
    /// Show at most N tokens (newest first) [default: all].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub limit: Option<u32>,
    /// Full ids, exact times, scopes, no shortening (wider than 120 columns).
    #[arg(long)]
    pub wide: bool,
    #[command(flatten)]
    pub remote: Remote,
}

/// Which token a command is about.
#[derive(Args)]
pub struct TokenRef {
    /// The token: its id, the short id tables show, or its name (looked up in --workspace,
    /// else among your own tokens).
    #[arg(value_name = "TOKEN")]
    pub target: String,
    /// The workspace (name or id) to look a name or short id up in.
    #[arg(long, short = 'w', value_name = "WORKSPACE")]
    pub workspace: Option<String>,
}

/// A command on one token.
#[derive(Args)]
pub struct TokenId {
    #[command(flatten)]
    pub which: TokenRef,
    #[command(flatten)]
    pub remote: Remote,
}

/// `latchkey token delete`.
#[derive(Args)]
pub struct DeleteToken {
    #[command(flatten)]
    pub which: TokenRef,
    /// Delete without asking (needed when stdin is not a terminal).
    #[arg(long, short = 'y')]
    pub yes: bool,
    #[command(flatten)]
    pub remote: Remote,
}

/// `latchkey token rotate`.
#[derive(Args)]
pub struct RotateToken {
    #[command(flatten)]
    pub which: TokenRef,
    /// Seconds the old secret keeps working (default 0: it stops at once).
    #[arg(long, value_name = "N")]
    pub grace_seconds: Option<u64>,
    #[command(flatten)]
    pub remote: Remote,
}

/// `latchkey token …`.
#[derive(Subcommand)]
pub enum TokenCmd {
    /// Create a token; its secret is printed once.
    #[command(after_help = "\
Examples:
  latchkey token create --workspace \"Workspace 1\" --name ci --expires-in-days 30
  latchkey token create -w \"Workspace 1\" -n backend --type client \\
      --scope projects:read --project \"Fraud Demo\" --environment production
  latchkey token create -w \"Workspace 1\" -n ci --output json | jq -r .token
  latchkey token create -w \"Workspace 1\" -n deploy --owner ci-bot   # for a service account
  latchkey token create -w \"Workspace 1\" -n partner --type client \\
      --metadata '{\"plan\":\"pro\"}' --allowed-ip 203.0.113.0/24 --allowed-ip 2001:db8::/32 \\
      --rate-limit 100/60s --remaining-uses 10000 --refill 10000/monthly

In table output the secret is on the line starting with \"Token:\".")]
    Create(CreateToken),
    /// List tokens: yours, or those of a workspace that you may see.
    #[command(after_help = "\
Examples:
  latchkey token list
  latchkey token list --workspace \"Workspace 1\" --state active --type client --limit 20
  latchkey token list --workspace \"Workspace 1\" --output json
  latchkey token list --all --owner alice --never-used --created-before 2027-01-01
  latchkey token list --type client --name ci --expires-before 2027-03-01T00:00:00Z
  latchkey token list --all --format csv > tokens.csv

The table fits 120 columns (short ids, relative times); --wide shows everything. With
--all, --owner, --name, a --...-before or --never-used (or --format csv) the list is the
org-wide inventory (GET /api/v1/tokens: every token you may see) and the server applies
every filter; otherwise it is your tokens or --workspace's, and the CLI applies --state
and --type to what the server lists.")]
    List(ListTokens),
    /// Revoke many tokens in one go (up to 1000 per transaction); prints each id as revoked
    /// or skipped, with why.
    #[command(after_help = "\
Examples:
  latchkey token bulk-revoke 0197f0c4-1b2c-7d3e-8f40-123456789abc 0197f0c4-1b2c-7d3e-8f40-23456789abcd
  latchkey token list --all --never-used --created-before 2027-01-01 --format csv > stale.csv
  latchkey token bulk-revoke --from-file stale.csv
  latchkey token list --all --owner alice -o json | jq -r '.items[].id' \\
      | latchkey token bulk-revoke --from-file -

Skipped ids say why: not_found (unknown, or not visible to you), forbidden (visible but not
yours to manage), already_revoked, expired, duplicate. Skips are not errors (exit 0).")]
    BulkRevoke(BulkRevoke),
    /// Show one token's metadata (never its secret), with its verify-time policy.
    #[command(
        visible_alias = "show",
        after_help = "\
Examples:
  latchkey token get 0197f0c4-1b2c-7d3e-8f40-123456789abc
  latchkey token get 456789ab                     # the short id from `token list`
  latchkey token get ci-pipeline --workspace \"Workspace 1\""
    )]
    Get(TokenId),
    /// Change a token's verify-time policy: metadata, allowed IPs, rate limit, remaining
    /// uses and refill. Only what is given changes.
    #[command(after_help = "\
Examples:
  latchkey token update 0197f0c4-1b2c-7d3e-8f40-123456789abc --rate-limit 1000/1h
  latchkey token update partner -w \"Workspace 1\" --remaining-uses 500 --refill 500/daily
  latchkey token update partner -w \"Workspace 1\" --clear allowed_ips --clear rate_limit
  latchkey token update partner -w \"Workspace 1\" --metadata @metadata.json

--remaining-uses counts from now on. --clear remaining_uses makes uses unlimited (and drops
the refill). A token updating itself may only narrow its own policy.")]
    Update(UpdateToken),
    /// Revoke a token: it stops working at once (it can be restored before it expires).
    #[command(
        after_help = "Example:\n  latchkey token revoke 0197f0c4-1b2c-7d3e-8f40-123456789abc"
    )]
    Revoke(TokenId),
    /// Restore (re-approve) a revoked token.
    #[command(
        after_help = "Example:\n  latchkey token restore 0197f0c4-1b2c-7d3e-8f40-123456789abc"
    )]
    Restore(TokenId),
    /// Approve a token pending approval: it works from now on (an org admin who did not
    /// create it).
    #[command(after_help = "\
Example:
  latchkey token approve 0197f0c4-1b2c-7d3e-8f40-123456789abc

Tokens of the types in the org's approval_required_types start pending unless an org
owner creates them; list them with: latchkey token list --all --state pending")]
    Approve(TokenId),
    /// Deny a token pending approval: it never works (denied is final).
    #[command(after_help = "Example:\n  latchkey token deny 0197f0c4-1b2c-7d3e-8f40-123456789abc")]
    Deny(TokenId),
    /// Give a token a new secret under the same id; the new secret is printed once.
    #[command(after_help = "\
Examples:
  latchkey token rotate 0197f0c4-1b2c-7d3e-8f40-123456789abc
  latchkey token rotate 0197f0c4-1b2c-7d3e-8f40-123456789abc --grace-seconds 3600")]
    Rotate(RotateToken),
    /// Show a recoverable token's secret again (audited; throttled per caller).
    #[command(after_help = "\
Examples:
  latchkey token reveal 0197f0c4-1b2c-7d3e-8f40-123456789abc
  latchkey token reveal 456789ab --output json | jq -r .token

Only tokens whose type is in the org's recoverable_types (when created or last rotated)
can be revealed, and only while they work; a personal or legacy token by its owner only.")]
    Reveal(TokenId),
    /// Show how a token has been used: last use, last 5 client addresses, uses per day.
    #[command(after_help = "\
Examples:
  latchkey token usage 0197f0c4-1b2c-7d3e-8f40-123456789abc
  latchkey token usage ci-pipeline --workspace \"Workspace 1\" --output json | jq '.daily[-7:]'

Counted in memory by the servers and written with their last-used flush
(last_used_flush_secs, 5 s by default), so the newest uses on other nodes show up that
late. Table output lists the days with uses; JSON has all 90 days, oldest first.")]
    Usage(TokenId),
    /// Delete a token for good (asks first; --yes does not).
    #[command(after_help = "\
Examples:
  latchkey token delete ci-pipeline --workspace \"Workspace 1\"   # asks: Delete token ...? [y/N]
  latchkey token delete 0197f0c4-1b2c-7d3e-8f40-123456789abc --yes

Without a terminal to ask on, --yes is required.")]
    Delete(DeleteToken),
}

/// Runs a `token` command.
pub async fn token(cmd: TokenCmd) -> CliResult {
    match cmd {
        TokenCmd::Create(args) => create_token(args).await,
        TokenCmd::List(args) => list_tokens(args).await,
        TokenCmd::BulkRevoke(args) => inventory::bulk_revoke(args).await,
        TokenCmd::Get(args) => {
            let client = args.remote.client(true, true)?;
            let id = token_id(&client, &args.which).await?;
            let token = client.tokens().get(&id).await?;
            print_token(&token, args.remote.json())
        }
        TokenCmd::Update(args) => {
            let request = args
                .policy
                .update_request(&args.clear)
                .map_err(CliError::usage)?;
            let client = args.remote.client(true, true)?;
            let id = token_id(&client, &args.which).await?;
            let token = client.tokens().update(&id, &request).await?;
            print_token(&token, args.remote.json())
        }
        TokenCmd::Revoke(args) => {
            let client = args.remote.client(true, true)?;
            let id = token_id(&client, &args.which).await?;
            let token = client.tokens().revoke(&id).await?;
            print_token(&token, args.remote.json())
        }
        TokenCmd::Restore(args) => {
            let client = args.remote.client(true, true)?;
            let id = token_id(&client, &args.which).await?;
            let token = client.tokens().restore(&id).await?;
            print_token(&token, args.remote.json())
        }
        TokenCmd::Approve(args) => decide_token(args, true).await,
        TokenCmd::Deny(args) => decide_token(args, false).await,
        TokenCmd::Rotate(args) => {
            let client = args.remote.client(true, true)?;
            let id = token_id(&client, &args.which).await?;
            let request = RotateTokenRequest {
                grace_seconds: args.grace_seconds,
                ..RotateTokenRequest::default()
            };
            let rotated = client.tokens().rotate(&id, &request).await?;
            output::print_created(&rotated, args.remote.json(), "Rotated")?;
            Ok(EXIT_OK)
        }
        TokenCmd::Reveal(args) => {
            let client = args.remote.client(true, true)?;
            let id = token_id(&client, &args.which).await?;
            let revealed = client.tokens().reveal(&id).await?;
            output::print_revealed(&revealed, args.remote.json())?;
            Ok(EXIT_OK)
        }
        TokenCmd::Usage(args) => {
            let client = args.remote.client(true, true)?;
            let id = token_id(&client, &args.which).await?;
            let usage = client.tokens().usage(&id).await?;
            output::print_usage(&usage, now(), args.remote.json())?;
            Ok(EXIT_OK)
        }
        TokenCmd::Delete(args) => delete_token(args).await,
    }
}

/// `token approve` (`approve`) or `token deny`: the decided token.
async fn decide_token(args: TokenId, approve: bool) -> CliResult {
    let client = args.remote.client(true, true)?;
    let id = token_id(&client, &args.which).await?;
    let tokens = client.tokens();
    let token = if approve {
        tokens.approve(&id).await?
    } else {
        tokens.deny(&id).await?
    };
    print_token(&token, args.remote.json())
}

/// Tokens listed and filtered. The inventory route (`--all`, an inventory filter, or
/// `--format csv`) filters on the server. Otherwise the server pages the caller's or the
/// workspace's tokens, the CLI filters by state and type (those routes take no such
/// filters) and stops at `--limit`.
async fn list_tokens(args: ListTokens) -> CliResult {
    let remote = &args.remote;
    let client = remote.client(true, true)?;
    let ws = match &args.workspace {
        Some(w) => Some(workspace_id(&client, w).await?),
        None => None,
    };
    if args.all || args.format.is_some() || args.filters.any() {
        let query = args.filters.query(ws, args.state, args.token_type);
        if args.format == Some(ListFormat::Csv) {
            return inventory::print_csv(&client, &query).await;
        }
        let items = inventory::list(&client, query, args.limit.map(|n| n as usize)).await?;
        return print_token_list(items, remote, args.wide);
    }
    let wanted = |t: &Token| {
        args.state.is_none_or(|s| t.state == s)
            && args.token_type.is_none_or(|ty| t.token_type == ty)
    };
    let limit = args.limit.map(|n| n as usize);
    let page_size = match (limit, args.state.is_some() || args.token_type.is_some()) {
        (Some(n), false) => u32::try_from(n).unwrap_or(PAGE_SIZE).min(PAGE_SIZE),
        _ => PAGE_SIZE,
    };
    let mut items: Vec<Token> = Vec::new();
    let mut query = PageQuery::limit(page_size);
    for _ in 0..MAX_PAGES {
        let page = client.tokens().list(ws.as_deref(), &query).await?;
        let next = query.next(&page);
        items.extend(page.items.into_iter().filter(|t| wanted(t)));
        if limit.is_some_and(|n| items.len() >= n) {
            break;
        }
        match next {
            Some(next) => query = next,
            None => break,
        }
    }
    if let Some(n) = limit {
        items.truncate(n);
    }
    print_token_list(items, remote, args.wide)
}

fn print_token_list(items: Vec<Token>, remote: &Remote, wide: bool) -> CliResult {
    if remote.json() {
        print_json(&as_page(items))?;
    } else {
        output::token_table(&items, now(), wide).print_or("No tokens.");
    }
    Ok(EXIT_OK)
}

/// A token's id from an id, a short id (the end of an id, as tables show) or a name, looked
/// up in the workspace given, else among the caller's own tokens.
async fn token_id(client: &Client, which: &TokenRef) -> Result<String, CliError> {
    let wanted = which.target.trim();
    if latchkey_core::is_id(wanted) {
        return Ok(wanted.to_owned());
    }
    if wanted.is_empty() {
        return Err(CliError::usage("no token given"));
    }
    let ws = match &which.workspace {
        Some(w) => Some(workspace_id(client, w).await?),
        None => None,
    };
    let candidates: Vec<Token> = all_pages(|q| {
        let ws = ws.as_deref();
        async move { client.tokens().list(ws, &q).await }
    })
    .await?;
    let by_name: Vec<&Token> = candidates.iter().filter(|t| t.name == wanted).collect();
    let short =
        wanted.len() >= output::SHORT_ID_LEN && wanted.chars().all(|c| c.is_ascii_hexdigit());
    let by_id: Vec<&Token> = if short {
        candidates
            .iter()
            .filter(|t| t.id.ends_with(&wanted.to_ascii_lowercase()))
            .collect()
    } else {
        Vec::new()
    };
    let found = if by_name.is_empty() { by_id } else { by_name };
    let place = match &which.workspace {
        Some(w) => format!("in workspace {:?}", output::clean(w)),
        None => "among your tokens (pass --workspace to look in a workspace)".to_owned(),
    };
    match found.as_slice() {
        [one] => Ok(one.id.clone()),
        [] => Err(CliError::failed(format!(
            "no token named or with the short id {:?} {place}",
            output::clean(wanted)
        ))),
        many => {
            let ids: Vec<&str> = many.iter().map(|t| t.id.as_str()).collect();
            Err(CliError::usage(format!(
                "{} tokens match {:?} {place}: pass one of the ids {}",
                many.len(),
                output::clean(wanted),
                ids.join(", ")
            )))
        }
    }
}

/// `latchkey token delete`: asks on the terminal unless `--yes`.
async fn delete_token(args: DeleteToken) -> CliResult {
    let client = args.remote.client(true, true)?;
    let id = token_id(&client, &args.which).await?;
    if !args.yes {
        if !input::stdin_is_terminal() {
            return Err(CliError::usage(
                "token delete asks before deleting, and stdin is not a terminal: pass --yes",
            ));
        }
        let token = client.tokens().get(&id).await?;
        let answer = input::line(&format!(
            "Delete token {:?} ({}, {} token of {})? It cannot be undone. [y/N] ",
            output::clean(&token.name),
            output::short_id(&token.id),
            token.token_type.as_str(),
            output::clean(
                token
                    .owner_username
                    .as_deref()
                    .or(token.workspace_name.as_deref())
                    .unwrap_or("-")
            ),
        ))?;
        if !matches!(answer.to_ascii_lowercase().as_str(), "y" | "yes") {
            eprintln!("Not deleted.");
            return Ok(EXIT_FAILED);
        }
    }
    client.tokens().delete(&id).await?;
    if args.remote.json() {
        print_json(&json!({ "id": id, "deleted": true }))?;
    } else {
        outln!("Deleted token {}.", output::clean(&id));
    }
    Ok(EXIT_OK)
}

fn print_token(token: &Token, json: bool) -> CliResult {
    if json {
        print_json(token)?;
    } else {
        out!("{}", output::token_details(token));
    }
    Ok(EXIT_OK)
}

async fn create_token(args: CreateToken) -> CliResult {
    let client = args.remote.client(true, true)?;
    let ws = workspace_id(&client, &args.workspace).await?;
    let mut request = CreateTokenRequest::new(args.name, args.token_type);
    if !args.scopes.is_empty() {
        request.scopes = Some(args.scopes);
    }
    if !args.projects.is_empty() {
        request.projects = Some(project_ids(&client, &ws, &args.projects).await?);
    }
    request.environment = args.environment;
    request.expires_in_days = args.expires_in_days;
    if let Some(owner) = &args.owner {
        request.owner_id = Some(crate::users::user_id(&client, owner).await?);
    }
    args.policy.apply_to_create(&mut request);
    let created = client.tokens().create(&ws, &request).await?;
    output::print_created(&created, args.remote.json(), "Created")?;
    Ok(EXIT_OK)
}

// ---- projects ------------------------------------------------------------------------

/// `latchkey project create`.
#[derive(Args)]
pub struct CreateProject {
    /// The project's name.
    #[arg(long, short = 'n')]
    pub name: String,
    /// A description.
    #[arg(long, short = 'd')]
    pub description: Option<String>,
    /// The workspace (name or id) [default: the token's own workspace, via POST /projects].
    #[arg(long, short = 'w', value_name = "WORKSPACE")]
    pub workspace: Option<String>,
    #[command(flatten)]
    pub remote: Remote,
}

/// `latchkey project list`.
#[derive(Args)]
pub struct ListProjects {
    /// The workspace (name or id) [default: the token's own workspace, via GET /projects].
    #[arg(long, short = 'w', value_name = "WORKSPACE")]
    pub workspace: Option<String>,
    #[command(flatten)]
    pub remote: Remote,
}

/// `latchkey project …`.
#[derive(Subcommand)]
pub enum ProjectCmd {
    /// Create a project (in the token's workspace unless --workspace says otherwise).
    #[command(after_help = "\
Examples:
  latchkey project create --name \"Fraud Demo\" --description \"This is an Onboarding Demo\"
  latchkey project create --name \"Fraud Demo\" --workspace \"Workspace 1\" --output json")]
    Create(CreateProject),
    /// List the projects of a workspace (the token's own unless --workspace says otherwise).
    #[command(after_help = "\
Examples:
  latchkey project list
  latchkey project list --workspace \"Workspace 1\" --output json")]
    List(ListProjects),
}

/// Runs a `project` command.
pub async fn project(cmd: ProjectCmd) -> CliResult {
    match cmd {
        ProjectCmd::Create(args) => {
            let client = args.remote.client(true, true)?;
            let description = args.description.as_deref();
            let project = match &args.workspace {
                Some(w) => {
                    let ws = workspace_id(&client, w).await?;
                    client
                        .create_project_in(&ws, &args.name, description)
                        .await?
                }
                None => client.create_project(&args.name, description).await?,
            };
            if args.remote.json() {
                print_json(&project)?;
            } else {
                out!("{}", output::project_details(&project));
            }
            Ok(EXIT_OK)
        }
        ProjectCmd::List(args) => {
            let client = args.remote.client(true, true)?;
            let ws = match &args.workspace {
                Some(w) => Some(workspace_id(&client, w).await?),
                None => None,
            };
            let items: Vec<Project> = all_pages(|q| {
                let (client, ws) = (&client, ws.as_deref());
                async move {
                    match ws {
                        Some(ws) => client.list_projects_page(ws, &q).await,
                        None => get_raw(client, "/projects", &q).await,
                    }
                }
            })
            .await?;
            if args.remote.json() {
                print_json(&as_page(items))?;
            } else {
                output::project_table(&items, now()).print_or("No projects.");
            }
            Ok(EXIT_OK)
        }
    }
}

// ---- verify --------------------------------------------------------------------------

/// `latchkey verify`.
#[derive(Args)]
pub struct VerifyArgs {
    /// The token to check, or `-` to read it from stdin.
    #[arg(value_name = "TOKEN")]
    pub secret: String,
    /// The address the token is being used from, checked against its allowed IPs (a token
    /// with allowed IPs fails with `ip_not_allowed` without it).
    #[arg(long, value_name = "IP")]
    pub ip: Option<String>,
    #[command(flatten)]
    pub remote: Remote,
}

/// `latchkey verify`: exit 0 valid, 1 invalid, 2 when there is no answer (usage, connection,
/// or an error status such as 429).
pub async fn verify(args: VerifyArgs) -> CliResult {
    let from_stdin = args.secret.trim() == "-";
    let result = async {
        let client = args.remote.client(false, !from_stdin)?;
        let secret = if from_stdin {
            input::token_from_stdin("Token to verify: ")?
        } else {
            args.secret.trim().to_owned()
        };
        let request = VerifyRequest {
            token: secret,
            ip: args.ip.clone(),
        };
        Ok::<_, CliError>(client.verify_with(&request).await?)
    }
    .await;
    let answer = result.map_err(|e| match e {
        CliError::Api { .. } => CliError::NoAnswer(Box::new(e)),
        other => other,
    })?;
    if args.remote.json() {
        print_json(&answer.response)?;
    } else {
        out!(
            "{}",
            output::verify_text(&answer.response, answer.rate_limit)
        );
    }
    Ok(if answer.response.valid {
        EXIT_OK
    } else {
        EXIT_FAILED
    })
}
