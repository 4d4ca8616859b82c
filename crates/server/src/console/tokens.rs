//! Token pages: a workspace's API Access Tokens, Account & Settings (personal and legacy
//! tokens) and the org-wide API access page; creating through the show-once dialog and the
//! row actions (revoke, restore, rotate, delete). Every decision is the service's.

use askama::Template;
use axum::extract::{OriginalUri, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use latchkey_core::policy;
use latchkey_proto::{
    CreateTokenRequest, CreatedToken, Page, RotateTokenRequest, Scope, Token, TokenState, TokenType,
};
use latchkey_store::PageRequest;
use time::OffsetDateTime;

use super::pages::{done_notice, error_page};
use super::render::{
    Choice, ChoiceGroup, Chrome, Notice, When, error_status, error_text, html, see_other, when,
    when_opt,
};
use super::session::{Auth, FormData, Session, query_pairs, require_post, require_session};
use crate::error::ApiError;
use crate::state::AppState;

const PAGE_SIZE: u32 = 100;

/// Every scope, in the order the form lists them.
const ALL_SCOPES: [Scope; 7] = [
    Scope::ProjectsRead,
    Scope::ProjectsWrite,
    Scope::TokensRead,
    Scope::TokensWrite,
    Scope::MembersRead,
    Scope::Introspect,
    Scope::Admin,
];

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
    /// Last used.
    pub last_used: Option<When>,
    /// State name.
    pub state: &'static str,
    /// State as a person reads it.
    pub state_label: &'static str,
    /// Whether this user may revoke, restore, rotate or delete it (policy).
    pub can_manage: bool,
    /// Revoked: offer Restore instead of Revoke.
    pub revoked: bool,
    /// Expired: only Delete.
    pub expired: bool,
}

fn state_label(state: TokenState) -> &'static str {
    match state {
        TokenState::Active => "Active",
        TokenState::Revoked => "Revoked",
        TokenState::Expired => "Expired",
        TokenState::Suspended => "Suspended (owner deactivated)",
        TokenState::TypeDisabled => "Type disabled",
    }
}

fn token_row(s: &Session, t: &Token, now: OffsetDateTime) -> TokenRow {
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
        last_used: when_opt(t.last_used_at, now),
        state: t.state.as_str(),
        state_label: state_label(t.state),
        can_manage: policy::can_manage_token(
            &s.user.id,
            s.user.role,
            t.token_type,
            t.owner_id.as_deref(),
        ),
        revoked: t.state == TokenState::Revoked,
        expired: t.state == TokenState::Expired,
    }
}

/// A table of tokens with its row actions.
#[derive(Debug, Clone)]
pub struct TokenTable {
    /// Caption (the table's accessible name).
    pub caption: String,
    /// Rows.
    pub rows: Vec<TokenRow>,
    /// Where row actions post: `{action_base}/{id}/{verb}`.
    pub action_base: String,
    /// Show the Type column.
    pub show_type: bool,
    /// Show the Owner column.
    pub show_owner: bool,
    /// Show the Workspace column.
    pub show_workspace: bool,
    /// The next page, if any.
    pub next_url: Option<String>,
    /// Shown when there are no rows.
    pub empty_text: String,
}

/// The show-once dialog.
#[derive(Clone)]
pub struct Shown {
    /// The secret.
    pub secret: String,
    /// The dialog's heading.
    pub heading: String,
    /// The token's name.
    pub name: String,
    /// The page to return to (for Done without script).
    pub done_url: String,
    /// A note (rotation grace period).
    pub note: Option<String>,
}

impl std::fmt::Debug for Shown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shown")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// The create form, with what the user typed kept after a failure.
#[derive(Debug, Clone, Default)]
pub struct CreateForm {
    /// Where it posts.
    pub action: String,
    /// Token Name.
    pub name: String,
    /// Type options (empty: no Type select, a fixed `fixed_type`).
    pub types: Vec<Choice>,
    /// The type when there is no select.
    pub fixed_type: &'static str,
    /// Workspace options (empty: no Workspace select).
    pub workspaces: Vec<Choice>,
    /// Expires in (days).
    pub expires: String,
    /// What an empty Expires in (days) means.
    pub expires_hint: String,
    /// Scope checkboxes (empty: none offered).
    pub scopes: Vec<Choice>,
    /// Project options, by workspace (shown with Environment when `binding`).
    pub projects: Vec<ChoiceGroup>,
    /// Offer Projects and Environment.
    pub binding: bool,
    /// Environment.
    pub environment: String,
}

/// Which page a token form or action belongs to.
#[derive(Debug, Clone)]
pub enum TokenPage {
    /// A workspace's API Access Tokens.
    Workspace(String),
    /// Account & Settings.
    Account,
    /// The org-wide API access page (`show_form`: the New API token form is open).
    ApiAccess {
        /// Form open.
        show_form: bool,
    },
}

impl TokenPage {
    /// The page's URL.
    pub fn url(&self) -> String {
        match self {
            TokenPage::Workspace(ws) => format!("/workspaces/{ws}/settings/tokens"),
            TokenPage::Account => "/account".into(),
            TokenPage::ApiAccess { .. } => "/api-access".into(),
        }
    }

    fn action_base(&self) -> String {
        match self {
            TokenPage::Workspace(ws) => format!("/workspaces/{ws}/settings/tokens"),
            TokenPage::Account => "/account/tokens".into(),
            TokenPage::ApiAccess { .. } => "/api-access/tokens".into(),
        }
    }
}

/// `/workspaces/{ws}/settings/tokens`.
#[derive(Template)]
#[template(path = "tokens.html")]
pub struct WorkspaceTokensPage {
    c: Chrome,
    ws_id: String,
    ws_name: String,
    form: Option<CreateForm>,
    refusal: Option<String>,
    table: Option<TokenTable>,
    shown: Option<Shown>,
}

/// `/account`.
#[derive(Template)]
#[template(path = "account.html")]
pub struct AccountPage {
    c: Chrome,
    username: String,
    role: &'static str,
    memberships: Vec<(String, String, &'static str)>,
    form: Option<CreateForm>,
    refusal: Option<String>,
    table: Option<TokenTable>,
    legacy: Option<TokenRow>,
    legacy_can_create: bool,
    shown: Option<Shown>,
}

/// `/api-access`.
#[derive(Template)]
#[template(path = "api_access.html")]
pub struct ApiAccessPage {
    c: Chrome,
    form: Option<CreateForm>,
    refusal: Option<String>,
    table: Option<TokenTable>,
    shown: Option<Shown>,
}

fn page_request(cursor: Option<&String>) -> PageRequest {
    PageRequest {
        limit: PAGE_SIZE,
        cursor: cursor.filter(|c| latchkey_core::is_id(c)).cloned(),
    }
}

fn next_url(base: &str, page: &Page<Token>) -> Option<String> {
    page.next_cursor
        .as_ref()
        .map(|c| format!("{base}?cursor={}", super::session::encode(c)))
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

fn scope_choices(ceiling: latchkey_core::ScopeSet, chosen: &[String]) -> Vec<Choice> {
    ALL_SCOPES
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

fn expires_hint(state_default_days: u32) -> String {
    format!(
        "Optional. Empty: personal tokens get the longest lifetime allowed \
         ({state_default_days} days); workspace tokens never expire."
    )
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
    if let Some(days) = form.text("expires_in_days") {
        req.expires_in_days = Some(days.parse::<i64>().map_err(|_| {
            ApiError::field(
                "expires_in_days",
                "give a whole number of days, or leave it empty",
            )
        })?);
    }
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
    Ok(req)
}

async fn project_groups(
    state: &AppState,
    s: &Session,
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

async fn default_days(state: &AppState) -> Result<u32, ApiError> {
    let org = state.org().await?;
    let instance = state.store.get_instance_settings().await?;
    Ok(policy::personal_ttl_days(&org.token_settings, &instance))
}

/// Renders a token page. `sticky` refills the create form after a failure.
#[allow(clippy::too_many_arguments)]
pub async fn render(
    state: &AppState,
    s: &Session,
    page: &TokenPage,
    status: StatusCode,
    notice: Option<Notice>,
    shown: Option<Shown>,
    sticky: Option<&FormData>,
    cursor: Option<&String>,
) -> Response {
    let result = match page {
        TokenPage::Workspace(ws) => render_workspace(state, s, ws, notice, shown, sticky, cursor)
            .await
            .map(|page| html(status, &page)),
        TokenPage::Account => render_account(state, s, notice, shown, sticky, cursor)
            .await
            .map(|page| html(status, &page)),
        TokenPage::ApiAccess { show_form } => {
            render_api_access(state, s, *show_form, notice, shown, sticky, cursor)
                .await
                .map(|page| html(status, &page))
        }
    };
    match result {
        Ok(response) => response,
        Err(e) => error_page(
            s,
            match page {
                TokenPage::Workspace(_) => "workspaces",
                TokenPage::Account => "account",
                TokenPage::ApiAccess { .. } => "api-access",
            },
            &e,
        ),
    }
}

async fn render_workspace(
    state: &AppState,
    s: &Session,
    ws_ref: &str,
    notice: Option<Notice>,
    shown: Option<Shown>,
    sticky: Option<&FormData>,
    cursor: Option<&String>,
) -> Result<WorkspaceTokensPage, ApiError> {
    let now = state.clock.now();
    let ws = state.get_workspace(&s.p, ws_ref).await?;
    let page = TokenPage::Workspace(ws.id.clone());
    let mut c = s.chrome(format!("API Access Tokens · {}", ws.name), "workspaces");
    c.notice = notice;
    let (table, list_refusal) = match state
        .list_workspace_tokens(&s.p, &ws.id, &page_request(cursor))
        .await
    {
        Ok(list) => (
            Some(TokenTable {
                caption: format!("Tokens in {}", ws.name),
                rows: list.items.iter().map(|t| token_row(s, t, now)).collect(),
                action_base: page.action_base(),
                show_type: true,
                show_owner: true,
                show_workspace: false,
                next_url: next_url(&page.url(), &list),
                empty_text: "No tokens yet.".into(),
            }),
            None,
        ),
        Err(ApiError::Forbidden(m)) => (None, Some(m)),
        Err(e) => return Err(e),
    };
    let creatable = state.creatable_token_types(&s.p, &ws.id).await?;
    let allowed: Vec<TokenType> = creatable
        .allowed
        .iter()
        .copied()
        .filter(|t| *t != TokenType::Legacy)
        .collect();
    let (form, refusal) = if allowed.is_empty() {
        let why = creatable
            .refused
            .iter()
            .find(|(t, _)| *t == TokenType::Personal)
            .map(|(_, m)| m.clone())
            .unwrap_or_else(|| "you may not create tokens here".into());
        (None, Some(format!("You cannot create tokens here: {why}.")))
    } else {
        let empty = FormData::default();
        let f = sticky.unwrap_or(&empty);
        let chosen_projects = f.all("projects");
        let binding = allowed
            .iter()
            .any(|t| matches!(t, TokenType::Client | TokenType::Frontend));
        let projects = if binding {
            project_groups(
                state,
                s,
                &[(ws.id.clone(), ws.name.clone())],
                &chosen_projects,
            )
            .await?
        } else {
            Vec::new()
        };
        let ceiling = policy::user_scopes(s.user.role, s.user.workspace_role(Some(&ws.id)));
        (
            Some(CreateForm {
                action: page.url(),
                name: f.get("name").unwrap_or("").to_owned(),
                types: type_choices(&allowed, f.get("type")),
                fixed_type: "",
                workspaces: Vec::new(),
                expires: f.get("expires_in_days").unwrap_or("").to_owned(),
                expires_hint: expires_hint(default_days(state).await?),
                scopes: scope_choices(ceiling, &f.all("scopes")),
                projects,
                binding,
                environment: f.get("environment").unwrap_or("").to_owned(),
            }),
            None,
        )
    };
    Ok(WorkspaceTokensPage {
        c,
        ws_id: ws.id,
        ws_name: ws.name,
        form,
        refusal: list_refusal
            .map(|m| format!("You cannot see this workspace's tokens: {m}."))
            .or(refusal),
        table,
        shown,
    })
}

async fn render_account(
    state: &AppState,
    s: &Session,
    notice: Option<Notice>,
    shown: Option<Shown>,
    sticky: Option<&FormData>,
    cursor: Option<&String>,
) -> Result<AccountPage, ApiError> {
    let now = state.clock.now();
    let page = TokenPage::Account;
    let mut c = s.chrome("Account & Settings", "account");
    c.notice = notice;
    let me = state.me(&s.p).await?;
    let list = state.list_my_tokens(&s.p, &page_request(cursor)).await?;
    let legacy = list
        .items
        .iter()
        .find(|t| t.token_type == TokenType::Legacy)
        .map(|t| token_row(s, t, now));
    let personal: Vec<TokenRow> = list
        .items
        .iter()
        .filter(|t| t.token_type == TokenType::Personal)
        .map(|t| token_row(s, t, now))
        .collect();
    let all_ws = state
        .list_workspaces(
            &s.p,
            &PageRequest {
                limit: 200,
                cursor: None,
            },
        )
        .await?
        .items;
    let empty = FormData::default();
    let f = sticky.unwrap_or(&empty);
    let mut workspaces = Vec::new();
    let mut legacy_can_create = false;
    let mut refusal = None;
    for ws in &all_ws {
        let creatable = state.creatable_token_types(&s.p, &ws.id).await?;
        if creatable.allowed.contains(&TokenType::Personal) {
            let selected = f.get("workspace") == Some(ws.id.as_str());
            workspaces.push(Choice::new(ws.id.clone(), ws.name.clone(), selected));
        } else if refusal.is_none() {
            refusal = creatable
                .refused
                .iter()
                .find(|(t, _)| *t == TokenType::Personal)
                .map(|(_, m)| m.clone());
        }
        legacy_can_create |= creatable.allowed.contains(&TokenType::Legacy);
    }
    let form = if workspaces.is_empty() {
        None
    } else {
        Some(CreateForm {
            action: "/account/tokens".into(),
            name: f.get("name").unwrap_or("").to_owned(),
            types: Vec::new(),
            fixed_type: "personal",
            workspaces,
            expires: f.get("expires_in_days").unwrap_or("").to_owned(),
            expires_hint: expires_hint(default_days(state).await?),
            scopes: Vec::new(),
            projects: Vec::new(),
            binding: false,
            environment: String::new(),
        })
    };
    let refusal = form.is_none().then(|| {
        format!(
            "You cannot create personal access tokens: {}.",
            refusal.unwrap_or_else(|| "you are not a member of any workspace".into())
        )
    });
    Ok(AccountPage {
        c,
        username: me.user.username,
        role: me.user.role.as_str(),
        memberships: me
            .memberships
            .into_iter()
            .map(|m| (m.workspace_id, m.workspace_name, m.role.as_str()))
            .collect(),
        form,
        refusal,
        table: Some(TokenTable {
            caption: "My personal access tokens".into(),
            rows: personal,
            action_base: page.action_base(),
            show_type: false,
            show_owner: false,
            show_workspace: true,
            next_url: next_url(&page.url(), &list),
            empty_text: "You have no personal access tokens.".into(),
        }),
        legacy,
        legacy_can_create,
        shown,
    })
}

async fn render_api_access(
    state: &AppState,
    s: &Session,
    show_form: bool,
    notice: Option<Notice>,
    shown: Option<Shown>,
    sticky: Option<&FormData>,
    cursor: Option<&String>,
) -> Result<ApiAccessPage, ApiError> {
    let now = state.clock.now();
    let page = TokenPage::ApiAccess { show_form };
    let mut c = s.chrome("API access", "api-access");
    c.notice = notice;
    let list = state.list_org_tokens(&s.p, &page_request(cursor)).await?;
    let all_ws = state
        .list_workspaces(
            &s.p,
            &PageRequest {
                limit: 200,
                cursor: None,
            },
        )
        .await?
        .items;
    let (form, refusal) = if !show_form {
        (None, None)
    } else if all_ws.is_empty() {
        (None, Some("Create a workspace first.".to_owned()))
    } else {
        let empty = FormData::default();
        let f = sticky.unwrap_or(&empty);
        let chosen_ws = f.get("workspace").unwrap_or(all_ws[0].id.as_str());
        let creatable = state.creatable_token_types(&s.p, chosen_ws).await?;
        let allowed: Vec<TokenType> = creatable
            .allowed
            .iter()
            .copied()
            .filter(|t| *t != TokenType::Legacy)
            .collect();
        if allowed.is_empty() {
            (
                None,
                Some("Every token type that can be created here is disabled in Access Token Settings.".to_owned()),
            )
        } else {
            let pairs: Vec<(String, String)> = all_ws
                .iter()
                .map(|w| (w.id.clone(), w.name.clone()))
                .collect();
            let projects = project_groups(state, s, &pairs, &f.all("projects")).await?;
            (
                Some(CreateForm {
                    action: "/api-access".into(),
                    name: f.get("name").unwrap_or("").to_owned(),
                    types: type_choices(&allowed, f.get("type")),
                    fixed_type: "",
                    workspaces: all_ws
                        .iter()
                        .map(|w| Choice::new(w.id.clone(), w.name.clone(), w.id == chosen_ws))
                        .collect(),
                    expires: f.get("expires_in_days").unwrap_or("").to_owned(),
                    expires_hint: expires_hint(default_days(state).await?),
                    scopes: Vec::new(),
                    projects,
                    binding: allowed
                        .iter()
                        .any(|t| matches!(t, TokenType::Client | TokenType::Frontend)),
                    environment: f.get("environment").unwrap_or("").to_owned(),
                }),
                None,
            )
        }
    };
    Ok(ApiAccessPage {
        c,
        form,
        refusal,
        table: Some(TokenTable {
            caption: "Every token in the organization".into(),
            rows: list.items.iter().map(|t| token_row(s, t, now)).collect(),
            action_base: page.action_base(),
            show_type: true,
            show_owner: true,
            show_workspace: true,
            next_url: next_url(&page.url(), &list),
            empty_text: "No tokens yet.".into(),
        }),
        shown,
    })
}

fn created_dialog(
    created: &CreatedToken,
    heading: &str,
    page: &TokenPage,
    note: Option<String>,
) -> Shown {
    Shown {
        secret: created.token.clone(),
        heading: heading.to_owned(),
        name: created.meta.name.clone(),
        done_url: page.url(),
        note,
    }
}

/// After a create or rotate: the page with the dialog, or with the error.
async fn answer_created(
    state: &AppState,
    s: &Session,
    page: &TokenPage,
    result: Result<CreatedToken, ApiError>,
    heading: &str,
    note: Option<String>,
    sticky: Option<&FormData>,
) -> Response {
    match result {
        Ok(created) => {
            let shown = created_dialog(&created, heading, page, note);
            let notice = Notice::ok(format!("{heading}: {}.", created.meta.name));
            let page = match page {
                TokenPage::ApiAccess { .. } => TokenPage::ApiAccess { show_form: false },
                other => other.clone(),
            };
            render(
                state,
                s,
                &page,
                StatusCode::OK,
                Some(notice),
                Some(shown),
                None,
                None,
            )
            .await
        }
        Err(ApiError::Unauthenticated { .. }) => see_other(&format!(
            "/login?next={}&expired=1",
            super::session::encode(&page.url())
        )),
        Err(e) => {
            let page = match page {
                TokenPage::ApiAccess { .. } => TokenPage::ApiAccess {
                    show_form: sticky.is_some(),
                },
                other => other.clone(),
            };
            render(
                state,
                s,
                &page,
                error_status(&e),
                Some(Notice::error(error_text(&e))),
                None,
                sticky,
                None,
            )
            .await
        }
    }
}

/// `GET /workspaces/{ws}/settings/tokens`.
pub async fn workspace_tokens(
    State(state): State<AppState>,
    auth: Auth,
    OriginalUri(uri): OriginalUri,
    Path(ws): Path<String>,
) -> Response {
    let s = match require_session(&state, auth, &uri.to_string()) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let cursor = query_pairs(&uri).get("cursor").cloned();
    render(
        &state,
        &s,
        &TokenPage::Workspace(ws),
        StatusCode::OK,
        done_notice(&uri),
        None,
        None,
        cursor.as_ref(),
    )
    .await
}

/// `POST /workspaces/{ws}/settings/tokens`: create; the answer shows the secret once.
pub async fn create_in_workspace(
    State(state): State<AppState>,
    auth: Auth,
    headers: HeaderMap,
    Path(ws): Path<String>,
    form: FormData,
) -> Response {
    let page = TokenPage::Workspace(ws.clone());
    let s = match require_post(&state, auth, &headers, &form, &page.url()) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let result = match create_request(&form, None) {
        Ok(req) => state.create_token(&s.p, &ws, req).await,
        Err(e) => Err(e),
    };
    answer_created(
        &state,
        &s,
        &page,
        result,
        "Token created",
        None,
        Some(&form),
    )
    .await
}

/// `GET /account`.
pub async fn account(
    State(state): State<AppState>,
    auth: Auth,
    OriginalUri(uri): OriginalUri,
) -> Response {
    let s = match require_session(&state, auth, &uri.to_string()) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let cursor = query_pairs(&uri).get("cursor").cloned();
    render(
        &state,
        &s,
        &TokenPage::Account,
        StatusCode::OK,
        done_notice(&uri),
        None,
        None,
        cursor.as_ref(),
    )
    .await
}

/// `POST /account/tokens`: a personal access token in the chosen workspace.
pub async fn create_personal(
    State(state): State<AppState>,
    auth: Auth,
    headers: HeaderMap,
    form: FormData,
) -> Response {
    let page = TokenPage::Account;
    let s = match require_post(&state, auth, &headers, &form, &page.url()) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let result = match (
        create_request(&form, Some(TokenType::Personal)),
        form.text("workspace"),
    ) {
        (Ok(req), Some(ws)) => state.create_token(&s.p, &ws, req).await,
        (Ok(_), None) => Err(ApiError::field("workspace", "choose a workspace")),
        (Err(e), _) => Err(e),
    };
    answer_created(
        &state,
        &s,
        &page,
        result,
        "Token created",
        None,
        Some(&form),
    )
    .await
}

/// `POST /account/legacy`: the user's one legacy token.
pub async fn create_legacy(
    State(state): State<AppState>,
    auth: Auth,
    headers: HeaderMap,
    form: FormData,
) -> Response {
    let page = TokenPage::Account;
    let s = match require_post(&state, auth, &headers, &form, &page.url()) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let result = match state.workspace_for_own_token(&s.p, TokenType::Legacy).await {
        Ok(Some(ws)) => {
            state
                .create_token(
                    &s.p,
                    &ws,
                    CreateTokenRequest::new("Legacy token", TokenType::Legacy),
                )
                .await
        }
        Ok(None) => Err(ApiError::forbidden(
            "legacy tokens are disabled, or your role does not allow creating one",
        )),
        Err(e) => Err(e),
    };
    answer_created(
        &state,
        &s,
        &page,
        result,
        "Legacy token created",
        None,
        None,
    )
    .await
}

/// `GET /api-access` (`?new=1` opens the New API token form).
pub async fn api_access(
    State(state): State<AppState>,
    auth: Auth,
    OriginalUri(uri): OriginalUri,
) -> Response {
    let s = match require_session(&state, auth, &uri.to_string()) {
        Ok(s) => s,
        Err(r) => return r,
    };
    if !s.p.is_org_admin() {
        return super::pages::org_admins_only(&s, "api-access");
    }
    let query = query_pairs(&uri);
    let page = TokenPage::ApiAccess {
        show_form: query.get("new").is_some_and(|v| v == "1"),
    };
    render(
        &state,
        &s,
        &page,
        StatusCode::OK,
        done_notice(&uri),
        None,
        None,
        query.get("cursor"),
    )
    .await
}

/// `POST /api-access`: New API token in the chosen workspace.
pub async fn create_api_token(
    State(state): State<AppState>,
    auth: Auth,
    headers: HeaderMap,
    form: FormData,
) -> Response {
    let page = TokenPage::ApiAccess { show_form: true };
    let s = match require_post(&state, auth, &headers, &form, "/api-access?new=1") {
        Ok(s) => s,
        Err(r) => return r,
    };
    if !s.p.is_org_admin() {
        return super::pages::org_admins_only(&s, "api-access");
    }
    let result = match (create_request(&form, None), form.text("workspace")) {
        (Ok(req), Some(ws)) => state.create_token(&s.p, &ws, req).await,
        (Ok(_), None) => Err(ApiError::field("workspace", "choose a workspace")),
        (Err(e), _) => Err(e),
    };
    answer_created(
        &state,
        &s,
        &page,
        result,
        "Token created",
        None,
        Some(&form),
    )
    .await
}

fn grace_note(grace: u64) -> Option<String> {
    (grace > 0).then(|| {
        let hours = grace / 3600;
        if hours >= 24 && hours.is_multiple_of(24) {
            format!("The old secret keeps working for {} day(s).", hours / 24)
        } else if hours >= 1 {
            format!("The old secret keeps working for {hours} hour(s).")
        } else {
            format!("The old secret keeps working for {grace} seconds.")
        }
    })
}

async fn token_action(
    state: AppState,
    auth: Auth,
    headers: HeaderMap,
    page: TokenPage,
    id: String,
    action: String,
    form: FormData,
) -> Response {
    let s = match require_post(&state, auth, &headers, &form, &page.url()) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let done = |code: &str| see_other(&format!("{}?done={code}", page.url()));
    let result = match action.as_str() {
        "revoke" => state.revoke_token(&s.p, &id).await.map(|_| done("revoked")),
        "restore" => state
            .restore_token(&s.p, &id)
            .await
            .map(|_| done("restored")),
        "delete" => state.delete_token(&s.p, &id).await.map(|_| done("deleted")),
        "rotate" => {
            let grace = match form.text("grace_seconds").map(|g| g.parse::<u64>()) {
                None => Ok(0),
                Some(Ok(g)) => Ok(g),
                Some(Err(_)) => Err(ApiError::field(
                    "grace_seconds",
                    "the grace period must be a whole number of seconds",
                )),
            };
            let result = match grace {
                Ok(grace) => {
                    let req = RotateTokenRequest {
                        grace_seconds: (grace > 0).then_some(grace),
                        ..RotateTokenRequest::default()
                    };
                    state
                        .rotate_token(&s.p, &id, req, None)
                        .await
                        .map(|created| (created, grace))
                }
                Err(e) => Err(e),
            };
            return match result {
                Ok((created, grace)) => {
                    answer_created(
                        &state,
                        &s,
                        &page,
                        Ok(created),
                        "Token rotated",
                        grace_note(grace),
                        None,
                    )
                    .await
                }
                Err(e) => {
                    answer_created(&state, &s, &page, Err(e), "Token rotated", None, None).await
                }
            };
        }
        _ => Err(ApiError::NotFound("action")),
    };
    match result {
        Ok(response) => response,
        Err(ApiError::Unauthenticated { .. }) => see_other(&format!(
            "/login?next={}&expired=1",
            super::session::encode(&page.url())
        )),
        Err(e) => {
            render(
                &state,
                &s,
                &page,
                error_status(&e),
                Some(Notice::error(error_text(&e))),
                None,
                None,
                None,
            )
            .await
        }
    }
}

/// `POST /workspaces/{ws}/settings/tokens/{id}/{action}`.
pub async fn workspace_token_action(
    State(state): State<AppState>,
    auth: Auth,
    headers: HeaderMap,
    Path((ws, id, action)): Path<(String, String, String)>,
    form: FormData,
) -> Response {
    token_action(
        state,
        auth,
        headers,
        TokenPage::Workspace(ws),
        id,
        action,
        form,
    )
    .await
}

/// `POST /account/tokens/{id}/{action}`.
pub async fn account_token_action(
    State(state): State<AppState>,
    auth: Auth,
    headers: HeaderMap,
    Path((id, action)): Path<(String, String)>,
    form: FormData,
) -> Response {
    token_action(state, auth, headers, TokenPage::Account, id, action, form).await
}

/// `POST /api-access/tokens/{id}/{action}`.
pub async fn api_access_token_action(
    State(state): State<AppState>,
    auth: Auth,
    headers: HeaderMap,
    Path((id, action)): Path<(String, String)>,
    form: FormData,
) -> Response {
    token_action(
        state,
        auth,
        headers,
        TokenPage::ApiAccess { show_form: false },
        id,
        action,
        form,
    )
    .await
}
