//! Token pages, one module each: a workspace's API Access Tokens ([`workspace`]), Account &
//! Settings with personal and legacy tokens ([`account`]), the org-wide API access page
//! ([`api_access`]); a token's own page ([`detail`]); the row actions, one route each
//! ([`actions`]); and what they share here: the table with its search, filters, sort and
//! pages ([`list`]), the create form with its expiry presets and its Advanced part (the
//! verify-time policy, [`policy`], also edited on the token's page), and the show-once
//! dialog after a create or rotate. Every rule
//! (who sees, creates or manages which token; lifetimes; limits) is the service's.

pub mod account;
pub mod actions;
pub mod api_access;
pub mod detail;
pub mod list;
pub mod policy;
pub mod workspace;

use axum::response::Response;
use latchkey_core::ScopeSet;
use latchkey_proto::{CreateTokenRequest, CreatedToken, Scope, Token, TokenState, TokenType};
use latchkey_store::PageRequest;
use time::OffsetDateTime;

use self::list::{ListQuery, expires_soon};
use super::extract::{FormData, SignedIn};
use super::render::{
    Choice, ChoiceGroup, Notice, Part, SecretDialog, SecretKind, View, When, when, when_opt,
};
use super::session::{SignInReason, login_redirect};
use crate::error::ApiError;
use crate::service::CreatableTypes;
use crate::state::AppState;

/// Which page a token form or action belongs to; each has its own route prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenPlace {
    /// A workspace's API Access Tokens (the workspace's id or name, as in the address).
    Workspace(String),
    /// Account & Settings.
    Account,
    /// The org-wide API access page.
    ApiAccess,
    /// A service account's page under Organization (the account's user id).
    ServiceAccount(String),
}

impl TokenPlace {
    /// The page's address.
    pub fn url(&self) -> String {
        match self {
            TokenPlace::Workspace(ws) => format!("/workspaces/{ws}/settings/tokens"),
            TokenPlace::Account => "/account".into(),
            TokenPlace::ApiAccess => "/api-access".into(),
            TokenPlace::ServiceAccount(id) => format!("/organization/service-accounts/{id}"),
        }
    }

    /// Where the rows' actions post: `{action_base}/{id}/{verb}`.
    pub fn action_base(&self) -> String {
        match self {
            TokenPlace::Workspace(ws) => format!("/workspaces/{ws}/settings/tokens"),
            TokenPlace::Account => "/account/tokens".into(),
            TokenPlace::ApiAccess => "/api-access/tokens".into(),
            TokenPlace::ServiceAccount(id) => {
                format!("/organization/service-accounts/{id}/tokens")
            }
        }
    }

    /// Renders the page with `view`.
    pub async fn render(&self, state: &AppState, s: &SignedIn, view: View) -> Response {
        match self {
            TokenPlace::Workspace(ws) => workspace::render(state, s, ws, view).await,
            TokenPlace::Account => account::render(state, s, view).await,
            TokenPlace::ApiAccess => api_access::render(state, s, view).await,
            TokenPlace::ServiceAccount(id) => {
                crate::console::accounts::render_account(state, s, id, view).await
            }
        }
    }

    /// After a form on this page failed with `e`: the page again with the message (or, if
    /// the session ended meanwhile, the sign-in page that comes back here).
    pub async fn failed(
        &self,
        state: &AppState,
        s: &SignedIn,
        e: ApiError,
        view: View,
    ) -> Response {
        if let ApiError::Unauthenticated { .. } = e {
            return login_redirect(&view.here, SignInReason::FormNotSent);
        }
        self.render(state, s, view).await
    }

    /// The answer to a create or rotate sent as `data`: this page (at the form's place)
    /// with the secret in the show-once dialog, headed `heading` and noting what the
    /// result adds; or with the error, and the form filled in again when `refill`.
    pub async fn answer(
        &self,
        state: &AppState,
        s: &SignedIn,
        data: FormData,
        refill: bool,
        heading: &str,
        result: Result<(CreatedToken, Vec<Part>), ApiError>,
    ) -> Response {
        let back = data.back_or(&self.url());
        match result {
            Ok((created, note)) => {
                let now = state.clock.now();
                let notice = Notice::ok(format!("{heading}: {}.", created.meta.name));
                let dialog = SecretDialog {
                    heading: heading.to_owned(),
                    name: created.meta.name.clone(),
                    kind: SecretKind::Token,
                    expires: when_opt(created.meta.expires_at, now),
                    note,
                    secret: created.token,
                };
                self.render(state, s, View::shown(back, dialog, notice))
                    .await
            }
            Err(e) => {
                let view = if refill {
                    View::failed(state, &e, data)
                } else {
                    View::refused(state, &e, back)
                };
                self.failed(state, s, e, view).await
            }
        }
    }
}

/// A token as a table row.
#[derive(Debug, Clone)]
pub struct TokenRow {
    /// Id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Type name.
    pub token_type: &'static str,
    /// Owner's username, or "—" for workspace tokens.
    pub owner: String,
    /// Workspace name ("All workspaces" for legacy tokens).
    pub workspace: String,
    /// `lkp_…a1B2`.
    pub hint: String,
    /// Scope names.
    pub scopes: Vec<&'static str>,
    /// Created.
    pub created: When,
    /// Expires.
    pub expires: Option<When>,
    /// Active and expiring within 7 days.
    pub expires_soon: bool,
    /// Last used.
    pub last_used: Option<When>,
    /// State name.
    pub state: &'static str,
    /// State as a person reads it.
    pub state_label: &'static str,
    /// Whether this user may revoke, restore, rotate or delete it (the service says).
    pub can_manage: bool,
    /// Offer **Reveal**: its secret is kept and this user may see it again.
    pub can_reveal: bool,
    /// Revoked: offer Restore instead of Revoke.
    pub revoked: bool,
    /// Expired: only Delete.
    pub expired: bool,
    /// Pending approval, and this user may decide it (an org admin who did not create
    /// it): offer **Approve** and **Deny**.
    pub can_decide: bool,
}

fn state_label(state: TokenState) -> &'static str {
    match state {
        TokenState::Active => "Active",
        TokenState::Revoked => "Revoked",
        TokenState::Expired => "Expired",
        TokenState::Suspended => "Suspended (owner deactivated)",
        TokenState::TypeDisabled => "Type disabled",
        TokenState::Pending => "Pending approval",
        TokenState::Denied => "Denied",
    }
}

/// `t` as a row for `s`.
pub fn token_row(state: &AppState, s: &SignedIn, t: &Token, now: OffsetDateTime) -> TokenRow {
    TokenRow {
        id: t.id.clone(),
        name: t.name.clone(),
        token_type: t.token_type.as_str(),
        owner: t.owner_username.clone().unwrap_or_else(|| "—".into()),
        workspace: match (&t.workspace_name, t.token_type) {
            (Some(name), _) => name.clone(),
            (None, TokenType::Legacy) => "All workspaces".into(),
            (None, _) => "—".into(),
        },
        hint: t.hint.clone(),
        scopes: t.scopes.iter().map(|s| s.as_str()).collect(),
        created: when(t.created_at, now),
        expires: when_opt(t.expires_at, now),
        expires_soon: expires_soon(t, now),
        last_used: when_opt(t.last_used_at, now),
        state: t.state.as_str(),
        state_label: state_label(t.state),
        can_manage: state.may_manage_token(&s.p, t),
        can_reveal: state.may_reveal_token(&s.p, t),
        revoked: t.state == TokenState::Revoked,
        expired: t.state == TokenState::Expired,
        can_decide: t.state == TokenState::Pending
            && s.is_org_admin()
            && t.created_by.as_deref() != s.p.user_id(),
    }
}

/// The search, filter and sort form above a table.
#[derive(Debug, Clone)]
pub struct FilterBar {
    /// Search text.
    pub q: String,
    /// Type options (empty: no type filter).
    pub types: Vec<Choice>,
    /// State options.
    pub states: Vec<Choice>,
    /// Sort options.
    pub sorts: Vec<Choice>,
    /// Anything narrows the list.
    pub filtered: bool,
    /// The list without filters (same sort).
    pub clear_url: String,
    /// The inventory's filters and its CSV export (API access and a workspace's API
    /// Access Tokens), or `None`.
    pub inventory: Option<InventoryBar>,
}

/// The inventory's part of the filter form: what the service filters (owner, dates, never
/// used, workspace) and the CSV export of the same filters.
#[derive(Debug, Clone)]
pub struct InventoryBar {
    /// Owner (username or user id).
    pub owner: String,
    /// Created before (YYYY-MM-DD).
    pub created_before: String,
    /// Expires before.
    pub expires_before: String,
    /// Last used before.
    pub last_used_before: String,
    /// Only never-used tokens.
    pub never_used: bool,
    /// Workspace options (empty: the page is one workspace's).
    pub workspaces: Vec<Choice>,
    /// **Download CSV**: the export of every token these filters match.
    pub csv_url: String,
}

/// What makes a table an inventory: the one workspace it lists (its id), or every
/// workspace with a Workspace filter offering `workspaces` (id, name).
#[derive(Debug, Clone)]
pub struct InventorySpec {
    /// The page's workspace, if it is one workspace's.
    pub workspace: Option<String>,
    /// The Workspace filter's workspaces (id, name), when `workspace` is `None`.
    pub workspaces: Vec<(String, String)>,
}

/// Every token `s` may see that `query`'s filters match, by the service's inventory
/// (filters applied by the store, so nothing is missed past [`list::MAX_LISTED`] newer
/// tokens); the page's own order and paging follow. A filter the service refuses (a date
/// that is not one, an owner that is no username) comes back as its 422.
pub async fn read_inventory(
    state: &AppState,
    s: &SignedIn,
    query: &ListQuery,
    spec: &InventorySpec,
) -> Result<(Vec<Token>, bool), ApiError> {
    let filter = query
        .inventory(spec.workspace.as_deref(), state.clock.now())
        .filter()?;
    let filter = &filter;
    list::read_all(|page| async move { state.list_inventory(&s.p, filter, &page).await }).await
}

/// [`read_inventory`], with a refused filter shown on the page (its message in `view`'s
/// banner, status 422, no rows) rather than as an error page.
pub async fn inventory_or_notice(
    state: &AppState,
    s: &SignedIn,
    query: &ListQuery,
    spec: &InventorySpec,
    view: &mut View,
) -> Result<(Vec<Token>, bool), ApiError> {
    match read_inventory(state, s, query, spec).await {
        Err(ApiError::InvalidField { field, message }) => {
            // The service names its query parameters; the banner names the form's fields.
            let message = match field.as_str() {
                "created_before" | "expires_before" | "last_used_before" => {
                    "give a date (YYYY-MM-DD) or an RFC 3339 time".to_owned()
                }
                "owner" => "give a username or a user id".to_owned(),
                _ => message,
            };
            let e = ApiError::InvalidField { field, message };
            view.notice = Some(Notice::failure(&e, state.clock.now()));
            view.status = super::render::error_status(&e);
            Ok((Vec::new(), false))
        }
        other => other,
    }
}

/// A table of tokens with its filters, pages and row actions.
#[derive(Debug, Clone)]
pub struct TokenTable {
    /// Caption (the table's accessible name).
    pub caption: String,
    /// This page's rows.
    pub rows: Vec<TokenRow>,
    /// Where row actions post: `{action_base}/{id}/{verb}`.
    pub action_base: String,
    /// The page's address (filters submit to it).
    pub base: String,
    /// Show the Type column.
    pub show_type: bool,
    /// Show the Owner column.
    pub show_owner: bool,
    /// Show the Workspace column.
    pub show_workspace: bool,
    /// The filters.
    pub filters: FilterBar,
    /// The current query as pairs (kept by buttons that open the page again).
    pub keep: Vec<(&'static str, String)>,
    /// "Showing 1–25 of 60 tokens".
    pub summary: String,
    /// The previous page, if any.
    pub prev_url: Option<String>,
    /// The next page, if any.
    pub next_url: Option<String>,
    /// The sorted column (`name`, `created`, `expires`, `last-used`).
    pub sort_col: &'static str,
    /// `ascending` or `descending`.
    pub sort_dir: &'static str,
    /// Shown when there are no rows.
    pub empty_text: String,
    /// The list stopped at [`list::MAX_LISTED`] tokens.
    pub truncated: bool,
    /// Rows have checkboxes and the table **Revoke selected** (some row may be revoked).
    pub bulk: bool,
}

/// What a page's table shows besides its rows.
pub struct TableSpec {
    /// Caption.
    pub caption: String,
    /// Types the list can hold (more than one: a type filter and a Type column).
    pub types: Vec<TokenType>,
    /// Show the Owner column.
    pub show_owner: bool,
    /// Show the Workspace column.
    pub show_workspace: bool,
    /// Shown when there are no tokens at all.
    pub empty_text: &'static str,
    /// An inventory page: the service's filters, Download CSV and Revoke selected.
    pub inventory: Option<InventorySpec>,
}

/// Builds the table of `tokens` (all the service listed, newest first) as `query` narrows,
/// orders and pages it.
pub fn token_table(
    state: &AppState,
    s: &SignedIn,
    place: &TokenPlace,
    spec: TableSpec,
    (tokens, truncated): (Vec<Token>, bool),
    query: &ListQuery,
) -> TokenTable {
    let now = state.clock.now();
    let base = place.url();
    let paged = query.apply(tokens, now);
    let first = (paged.page - 1) * list::PAGE_SIZE + 1;
    let summary = match paged.total {
        0 => String::new(),
        1 => "1 token".to_owned(),
        n if n <= list::PAGE_SIZE => format!("{n} tokens"),
        n => format!(
            "Showing {first}–{} of {n} tokens",
            first + paged.items.len() - 1
        ),
    };
    let (sort_col, sort_dir) = query.sort.column();
    let show_type = spec.types.len() > 1;
    let rows: Vec<TokenRow> = paged
        .items
        .iter()
        .map(|t| token_row(state, s, t, now))
        .collect();
    let inventory = spec.inventory.as_ref().map(|inv| InventoryBar {
        owner: query.owner.clone(),
        created_before: query.created_before.clone(),
        expires_before: query.expires_before.clone(),
        last_used_before: query.last_used_before.clone(),
        never_used: query.never_used,
        workspaces: if inv.workspace.is_some() {
            Vec::new()
        } else {
            let mut choices = vec![Choice::new("", "Any workspace", query.workspace.is_empty())];
            choices.extend(
                inv.workspaces.iter().map(|(id, name)| {
                    Choice::new(id.clone(), name.clone(), *id == query.workspace)
                }),
            );
            choices
        },
        csv_url: query.csv_url(inv.workspace.as_deref(), now),
    });
    TokenTable {
        caption: spec.caption,
        bulk: inventory.is_some()
            && rows
                .iter()
                .any(|r| r.can_manage && !r.revoked && !r.expired),
        rows,
        action_base: place.action_base(),
        show_type,
        show_owner: spec.show_owner,
        show_workspace: spec.show_workspace,
        filters: FilterBar {
            q: query.q.clone(),
            types: if show_type {
                query.type_choices(&spec.types)
            } else {
                Vec::new()
            },
            states: query.state_choices(),
            sorts: query.sort_choices(),
            filtered: query.filtered(),
            clear_url: ListQuery {
                sort: query.sort,
                ..ListQuery::default()
            }
            .url(&base),
            inventory,
        },
        keep: query.pairs(),
        summary,
        prev_url: (paged.page > 1).then(|| query.url_at(&base, paged.page - 1)),
        next_url: (paged.page < paged.pages).then(|| query.url_at(&base, paged.page + 1)),
        sort_col,
        sort_dir,
        empty_text: if query.filtered() {
            "No tokens match these filters.".to_owned()
        } else {
            spec.empty_text.to_owned()
        },
        truncated,
        base,
    }
}

/// One expiry preset of the create form.
#[derive(Debug, Clone)]
pub struct ExpiryChoice {
    /// `7`, `30`, … (days), `custom` or `none`.
    pub value: String,
    /// What a person reads.
    pub label: String,
    /// Pre-selected.
    pub selected: bool,
    /// Which token kinds may use it: `personal`, `workspace` or both, space-separated
    /// (the script offers only those the chosen Type allows).
    pub kinds: &'static str,
}

/// The expiry presets: 7, 30, 60, 90 days, custom, and no expiry where allowed.
const PRESET_DAYS: [u32; 4] = [7, 30, 60, 90];

/// The create form, with what the user typed kept after a failure.
#[derive(Debug, Clone, Default)]
pub struct CreateForm {
    /// Where it posts.
    pub action: String,
    /// Where Cancel goes (the list).
    pub cancel_url: String,
    /// Token Name.
    pub name: String,
    /// Type options (empty: no Type select, a fixed `fixed_type`).
    pub types: Vec<Choice>,
    /// The type when there is no select.
    pub fixed_type: &'static str,
    /// Workspace options (empty: no Workspace select).
    pub workspaces: Vec<Choice>,
    /// Expiration presets.
    pub expiry: Vec<ExpiryChoice>,
    /// The default preset for personal tokens (the script switches to it).
    pub personal_default: String,
    /// Expires in (days), for a custom lifetime.
    pub expires: String,
    /// What the lifetimes are.
    pub expires_hint: String,
    /// Scope checkboxes (empty: none offered).
    pub scopes: Vec<Choice>,
    /// Project options, by workspace (shown with Environment when `binding`).
    pub projects: Vec<ChoiceGroup>,
    /// Offer Projects and Environment (client or frontend tokens may be created).
    pub binding: bool,
    /// Environment.
    pub environment: String,
    /// Focus Token Name on load (a form just opened, not one refilled after a failure).
    pub autofocus: bool,
    /// The Advanced part: the verify-time policy.
    pub advanced: policy::PolicyFields,
}

impl CreateForm {
    /// The form on `place` for creating one of `allowed` (on Account & Settings: a
    /// personal token, no Type select), personal tokens living at most `max_days`,
    /// refilled from `view`; Cancel returns to the list at `view.here`.
    pub fn new(
        view: &View,
        place: &TokenPlace,
        allowed: &[TokenType],
        max_days: u32,
    ) -> CreateForm {
        let fixed_personal = matches!(place, TokenPlace::Account | TokenPlace::ServiceAccount(_));
        let action = match place {
            TokenPlace::Account => "/account/tokens".to_owned(),
            other => other.url(),
        };
        let types = if fixed_personal {
            Vec::new()
        } else {
            type_choices(allowed, Some(view.field("type")).filter(|t| !t.is_empty()))
        };
        let chosen_type = types
            .iter()
            .find(|c| c.selected)
            .map_or(TokenType::Personal, |c| {
                TokenType::parse(&c.value).unwrap_or(TokenType::Personal)
            });
        let has_personal = fixed_personal || allowed.contains(&TokenType::Personal);
        let has_workspace = !fixed_personal && allowed.iter().any(|t| !t.is_user_owned());
        let personal_default = if max_days >= 30 { 30 } else { max_days }.to_string();
        let sticky_days = view.field("expires_in_days").trim().to_owned();
        let chosen = if !sticky_days.is_empty() {
            "custom".to_owned()
        } else {
            match view.field("expiry") {
                "" if chosen_type == TokenType::Personal => personal_default.clone(),
                "" => "none".to_owned(),
                other => other.to_owned(),
            }
        };
        let mut days: Vec<u32> = PRESET_DAYS
            .iter()
            .copied()
            .filter(|d| has_workspace || *d <= max_days)
            .collect();
        if has_personal && !days.contains(&max_days) {
            days.push(max_days);
            days.sort_unstable();
        }
        let mut expiry: Vec<ExpiryChoice> = days
            .into_iter()
            .map(|d| ExpiryChoice {
                value: d.to_string(),
                label: if has_personal && d == max_days {
                    format!("{d} days (the longest allowed)")
                } else {
                    format!("{d} days")
                },
                selected: chosen == d.to_string(),
                kinds: if d <= max_days {
                    "personal workspace"
                } else {
                    "workspace"
                },
            })
            .collect();
        expiry.push(ExpiryChoice {
            value: "custom".into(),
            label: "Custom…".into(),
            selected: chosen == "custom",
            kinds: "personal workspace",
        });
        if has_workspace {
            expiry.push(ExpiryChoice {
                value: "none".into(),
                label: "No expiration".into(),
                selected: chosen == "none",
                kinds: "workspace",
            });
        }
        let expires_hint = if has_workspace {
            format!(
                "Personal tokens live at most {max_days} days; workspace tokens may never \
                 expire. Custom: a whole number of days in Expires in (days)."
            )
        } else {
            format!(
                "Personal tokens live at most {max_days} days. Custom: a whole number of days \
                 in Expires in (days)."
            )
        };
        CreateForm {
            action,
            cancel_url: view.here.clone(),
            name: view.field("name").to_owned(),
            types,
            fixed_type: if fixed_personal { "personal" } else { "" },
            workspaces: Vec::new(),
            expiry,
            personal_default,
            expires: sticky_days,
            expires_hint,
            scopes: Vec::new(),
            projects: Vec::new(),
            binding: allowed
                .iter()
                .any(|t| matches!(t, TokenType::Client | TokenType::Frontend)),
            environment: view.field("environment").to_owned(),
            autofocus: view.sticky.is_none(),
            advanced: policy::PolicyFields::from_view(view),
        }
    }
}

fn type_choices(allowed: &[TokenType], selected: Option<&str>) -> Vec<Choice> {
    let selected = selected
        .and_then(TokenType::parse)
        .filter(|t| allowed.contains(t))
        .or_else(|| {
            allowed
                .first()
                .copied()
                .filter(|_| !allowed.contains(&TokenType::Personal))
        })
        .unwrap_or(TokenType::Personal);
    allowed
        .iter()
        .map(|t| Choice::new(t.as_str(), type_label(*t), *t == selected))
        .collect()
}

fn type_label(t: TokenType) -> &'static str {
    match t {
        TokenType::Personal => "Personal (yours, in this workspace)",
        TokenType::Legacy => "Legacy (yours, all workspaces)",
        TokenType::Client => "Client (workspace)",
        TokenType::Frontend => "Frontend (workspace)",
        TokenType::Admin => "Admin (workspace)",
    }
}

/// The types a workspace's token form offers of those the caller may create there:
/// all but legacy (user-wide, created on Account & Settings).
pub fn workspace_types(creatable: &CreatableTypes) -> Vec<TokenType> {
    creatable
        .allowed
        .iter()
        .copied()
        .filter(|t| *t != TokenType::Legacy)
        .collect()
}

/// Checkboxes for the scopes under `ceiling`.
pub fn scope_choices(ceiling: ScopeSet, chosen: &[String]) -> Vec<Choice> {
    Scope::ALL
        .iter()
        .filter(|s| ceiling.contains(**s))
        .map(|s| {
            Choice::new(
                s.as_str(),
                s.as_str(),
                chosen.iter().any(|c| c == s.as_str()),
            )
        })
        .collect()
}

/// The lifetime the create form asks for: `expires_in_days` when given (custom), else the
/// Expiration preset; `None` leaves it to the service (personal: the longest allowed;
/// workspace tokens: never).
fn requested_days(form: &FormData, token_type: TokenType) -> Result<Option<i64>, ApiError> {
    let days = |text: &str, field: &'static str| {
        text.parse::<i64>()
            .map(Some)
            .map_err(|_| ApiError::field(field, "give a whole number of days, or choose a preset"))
    };
    if let Some(text) = form.text("expires_in_days") {
        return days(&text, "expires_in_days");
    }
    match form.get("expiry").map(str::trim) {
        None | Some("") => Ok(None),
        Some("custom") => Err(ApiError::field(
            "expires_in_days",
            "enter a number of days for a custom lifetime",
        )),
        Some("none") if token_type == TokenType::Personal => Err(ApiError::field(
            "expiry",
            "personal tokens must expire: choose how long this one lives",
        )),
        Some("none") => Ok(None),
        Some(preset) => days(preset, "expiry"),
    }
}

/// Reads the create form into the API's request.
fn create_request(
    form: &FormData,
    fixed_type: Option<TokenType>,
) -> Result<CreateTokenRequest, ApiError> {
    let token_type = match fixed_type {
        Some(t) => t,
        None => form
            .get("type")
            .and_then(TokenType::parse)
            .ok_or_else(|| ApiError::field("type", "choose a token type"))?,
    };
    let mut req = CreateTokenRequest::new(form.get("name").unwrap_or(""), token_type);
    req.expires_in_days = requested_days(form, token_type)?;
    let scopes = form
        .all("scopes")
        .iter()
        .map(|s| {
            Scope::parse(s).ok_or_else(|| ApiError::field("scopes", format!("unknown scope {s}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if !scopes.is_empty() {
        req.scopes = Some(scopes);
    }
    let projects: Vec<String> = form
        .all("projects")
        .into_iter()
        .filter(|p| !p.is_empty())
        .collect();
    if !projects.is_empty() {
        req.projects = Some(projects);
    }
    req.environment = form.text("environment");
    policy::apply_to_create(form, &mut req)?;
    Ok(req)
}

/// Creates the token the create form `data` describes, in workspace `ws` (else the form's
/// Workspace); a `fixed_type` overrides the form's Type.
pub async fn create_from_form(
    state: &AppState,
    s: &SignedIn,
    data: &FormData,
    fixed_type: Option<TokenType>,
    ws: Option<&str>,
) -> Result<(CreatedToken, Vec<Part>), ApiError> {
    let req = create_request(data, fixed_type)?;
    let ws = match ws {
        Some(ws) => ws.to_owned(),
        None => data
            .text("workspace")
            .ok_or_else(|| ApiError::field("workspace", "choose a workspace"))?,
    };
    let created = state.create_token(&s.p, &ws, req).await?;
    Ok((created, Vec::new()))
}

/// Creates the personal token the create form `data` describes for user `owner_id` (an
/// org admin creating one for a service account), in the form's Workspace.
pub async fn create_owned_from_form(
    state: &AppState,
    s: &SignedIn,
    data: &FormData,
    owner_id: &str,
) -> Result<(CreatedToken, Vec<Part>), ApiError> {
    let mut req = create_request(data, Some(TokenType::Personal))?;
    req.owner_id = Some(owner_id.to_owned());
    let ws = data
        .text("workspace")
        .ok_or_else(|| ApiError::field("workspace", "choose a workspace"))?;
    let created = state.create_token(&s.p, &ws, req).await?;
    Ok((created, Vec::new()))
}

/// The projects of `workspaces` (id, name) the caller may read, as option groups.
pub async fn project_groups(
    state: &AppState,
    s: &SignedIn,
    workspaces: &[(String, String)],
    chosen: &[String],
) -> Result<Vec<ChoiceGroup>, ApiError> {
    let mut groups = Vec::new();
    let page = PageRequest {
        limit: 200,
        cursor: None,
    };
    for (id, name) in workspaces {
        let projects = match state.list_projects(&s.p, id, &page).await {
            Ok(p) => p.items,
            Err(ApiError::Forbidden(_)) => continue,
            Err(e) => return Err(e),
        };
        if projects.is_empty() {
            continue;
        }
        groups.push(ChoiceGroup {
            label: name.clone(),
            choices: projects
                .into_iter()
                .map(|p| {
                    let selected = chosen.contains(&p.id);
                    Choice::new(p.id, p.name, selected)
                })
                .collect(),
        });
    }
    Ok(groups)
}

/// Whether the create form is open: asked for (`?new=1`) or refilled after a failure, and
/// not while a secret is shown.
pub fn form_open(view: &View) -> bool {
    view.secret.is_none()
        && (view.sticky.is_some() || view.query().get("new").is_some_and(|v| v == "1"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(pairs: &[(&str, &str)]) -> FormData {
        FormData::of(pairs)
    }

    #[test]
    fn expiry_presets_custom_days_and_none() {
        let days = |pairs: &[(&str, &str)], t| requested_days(&form(pairs), t);
        assert_eq!(
            days(&[("expiry", "30")], TokenType::Personal).ok(),
            Some(Some(30))
        );
        assert_eq!(
            days(
                &[("expiry", "30"), ("expires_in_days", " 12 ")],
                TokenType::Personal
            )
            .ok(),
            Some(Some(12))
        );
        assert_eq!(days(&[], TokenType::Personal).ok(), Some(None));
        assert_eq!(
            days(&[("expiry", "none")], TokenType::Client).ok(),
            Some(None)
        );
        assert!(days(&[("expiry", "none")], TokenType::Personal).is_err());
        assert!(days(&[("expiry", "custom")], TokenType::Personal).is_err());
        assert!(days(&[("expiry", "soon")], TokenType::Personal).is_err());
        assert!(days(&[("expires_in_days", "1.5")], TokenType::Personal).is_err());
    }

    #[test]
    fn presets_follow_the_personal_lifetime() {
        let view = View::default();
        let personal = CreateForm::new(&view, &TokenPlace::Account, &[], 45);
        let values: Vec<&str> = personal.expiry.iter().map(|e| e.value.as_str()).collect();
        assert_eq!(values, ["7", "30", "45", "custom"]);
        assert_eq!(
            personal
                .expiry
                .iter()
                .find(|e| e.selected)
                .map(|e| e.value.as_str()),
            Some("30")
        );
        let all = [TokenType::Personal, TokenType::Client];
        let mixed = CreateForm::new(&view, &TokenPlace::ApiAccess, &all, 270);
        let values: Vec<&str> = mixed.expiry.iter().map(|e| e.value.as_str()).collect();
        assert_eq!(values, ["7", "30", "60", "90", "270", "custom", "none"]);
        assert_eq!(mixed.expiry.last().map(|e| e.kinds), Some("workspace"));
    }
}
