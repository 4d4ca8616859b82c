//! Organization pages (org admins only; others get 403): Users, Access Token Settings,
//! Instance Settings and the Audit Log.

use std::collections::HashMap;

use askama::Template;
use axum::extract::{OriginalUri, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use latchkey_proto::{
    CreateUserRequest, OrgRole, TokenCreators, TokenType, UpdateInstanceSettingsRequest,
    UpdateTokenSettingsRequest, UpdateUserRequest,
};
use latchkey_store::PageRequest;

use super::pages::{done_notice, error_page, org_admins_only};
use super::render::{
    Choice, Chrome, Notice, When, error_status, error_text, html, see_other, when,
};
use super::session::{Auth, FormData, Session, encode, query_pairs, require_post, require_session};
use crate::error::ApiError;
use crate::service::{ALL_TOKEN_TYPES, AuditQuery};
use crate::state::AppState;

const ROLES: [OrgRole; 3] = [OrgRole::Owner, OrgRole::Admin, OrgRole::Member];

fn page(limit: u32, cursor: Option<&String>) -> PageRequest {
    PageRequest {
        limit,
        cursor: cursor.filter(|c| latchkey_core::is_id(c)).cloned(),
    }
}

// The error is the page to answer with, returned as is: boxing it buys nothing.
#[allow(clippy::result_large_err)]
fn admin_session(state: &AppState, auth: Auth, here: &str) -> Result<Session, Response> {
    let s = require_session(state, auth, here)?;
    if s.p.is_org_admin() {
        Ok(s)
    } else {
        Err(org_admins_only(&s, "organization"))
    }
}

// The error is the page to answer with, returned as is: boxing it buys nothing.
#[allow(clippy::result_large_err)]
fn admin_post(
    state: &AppState,
    auth: Auth,
    headers: &HeaderMap,
    form: &FormData,
    back: &str,
) -> Result<Session, Response> {
    let s = require_post(state, auth, headers, form, back)?;
    if s.p.is_org_admin() {
        Ok(s)
    } else {
        Err(org_admins_only(&s, "organization"))
    }
}

/// `GET /organization`.
pub async fn index(
    State(state): State<AppState>,
    auth: Auth,
    OriginalUri(uri): OriginalUri,
) -> Response {
    match admin_session(&state, auth, &uri.to_string()) {
        Ok(_) => see_other("/organization/users"),
        Err(r) => r,
    }
}

/// A user as a row.
pub struct UserRow {
    id: String,
    username: String,
    display_name: String,
    email: String,
    role: &'static str,
    active: bool,
    created: When,
    roles: Vec<Choice>,
    is_self: bool,
}

/// `/organization/users`.
#[derive(Template)]
#[template(path = "users.html")]
pub struct UsersPage {
    c: Chrome,
    tab: &'static str,
    owner: bool,
    users: Vec<UserRow>,
    create_roles: Vec<Choice>,
    username: String,
    display_name: String,
    email: String,
    next_url: Option<String>,
}

async fn render_users(
    state: &AppState,
    s: &Session,
    status: StatusCode,
    notice: Option<Notice>,
    sticky: Option<&FormData>,
    cursor: Option<&String>,
) -> Response {
    let now = state.clock.now();
    let users = match state.list_users(&s.p, &page(100, cursor)).await {
        Ok(u) => u,
        Err(e) => return error_page(s, "organization", &e),
    };
    let mut c = s.chrome("Users", "organization");
    c.notice = notice;
    let owner = s.user.role == OrgRole::Owner;
    let empty = FormData::default();
    let f = sticky.unwrap_or(&empty);
    let chosen = f
        .get("role")
        .and_then(OrgRole::parse)
        .unwrap_or(OrgRole::Member);
    let next_url = users
        .next_cursor
        .as_ref()
        .map(|cur| format!("/organization/users?cursor={}", encode(cur)));
    html(
        status,
        &UsersPage {
            c,
            tab: "users",
            owner,
            users: users
                .items
                .into_iter()
                .map(|u| UserRow {
                    is_self: u.id == s.user.id,
                    roles: ROLES
                        .iter()
                        .filter(|r| owner || **r != OrgRole::Owner || u.role == OrgRole::Owner)
                        .map(|r| Choice::new(r.as_str(), r.as_str(), *r == u.role))
                        .collect(),
                    id: u.id,
                    username: u.username,
                    display_name: u.display_name.unwrap_or_default(),
                    email: u.email.unwrap_or_default(),
                    role: u.role.as_str(),
                    active: u.active,
                    created: when(u.created_at, now),
                })
                .collect(),
            create_roles: ROLES
                .iter()
                .filter(|r| owner || **r != OrgRole::Owner)
                .map(|r| Choice::new(r.as_str(), r.as_str(), *r == chosen))
                .collect(),
            username: f.get("username").unwrap_or("").to_owned(),
            display_name: f.get("display_name").unwrap_or("").to_owned(),
            email: f.get("email").unwrap_or("").to_owned(),
            next_url,
        },
    )
}

/// `GET /organization/users`.
pub async fn users(
    State(state): State<AppState>,
    auth: Auth,
    OriginalUri(uri): OriginalUri,
) -> Response {
    let s = match admin_session(&state, auth, &uri.to_string()) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let cursor = query_pairs(&uri).get("cursor").cloned();
    render_users(
        &state,
        &s,
        StatusCode::OK,
        done_notice(&uri),
        None,
        cursor.as_ref(),
    )
    .await
}

/// `POST /organization/users`: create a user.
pub async fn create_user(
    State(state): State<AppState>,
    auth: Auth,
    headers: HeaderMap,
    form: FormData,
) -> Response {
    let s = match admin_post(&state, auth, &headers, &form, "/organization/users") {
        Ok(s) => s,
        Err(r) => return r,
    };
    let result = match form.get("role").and_then(OrgRole::parse) {
        Some(role) => {
            let req = CreateUserRequest {
                username: form.get("username").unwrap_or("").trim().to_owned(),
                password: form.get("password").unwrap_or("").to_owned(),
                role,
                display_name: form.text("display_name"),
                email: form.text("email"),
            };
            state.create_user(&s.p, req).await
        }
        None => Err(ApiError::field("role", "choose a role")),
    };
    match result {
        Ok(_) => see_other("/organization/users?done=user-created"),
        Err(e) => {
            render_users(
                &state,
                &s,
                error_status(&e),
                Some(Notice::error(error_text(&e))),
                Some(&form),
                None,
            )
            .await
        }
    }
}

/// `POST /organization/users/{id}/{action}` (`role`, `deactivate`, `reactivate`).
pub async fn user_action(
    State(state): State<AppState>,
    auth: Auth,
    headers: HeaderMap,
    Path((id, action)): Path<(String, String)>,
    form: FormData,
) -> Response {
    let s = match admin_post(&state, auth, &headers, &form, "/organization/users") {
        Ok(s) => s,
        Err(r) => return r,
    };
    let (req, code) = match action.as_str() {
        "role" => match form.get("role").and_then(OrgRole::parse) {
            Some(role) => (
                Ok(UpdateUserRequest {
                    role: Some(role),
                    ..UpdateUserRequest::default()
                }),
                "user-role",
            ),
            None => (Err(ApiError::field("role", "choose a role")), ""),
        },
        "deactivate" => (
            Ok(UpdateUserRequest {
                active: Some(false),
                ..UpdateUserRequest::default()
            }),
            "deactivated",
        ),
        "reactivate" => (
            Ok(UpdateUserRequest {
                active: Some(true),
                ..UpdateUserRequest::default()
            }),
            "reactivated",
        ),
        _ => (Err(ApiError::NotFound("action")), ""),
    };
    let result = match req {
        Ok(req) => state.update_user(&s.p, &id, req).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(_) => see_other(&format!("/organization/users?done={code}")),
        Err(e) => {
            render_users(
                &state,
                &s,
                error_status(&e),
                Some(Notice::error(error_text(&e))),
                None,
                None,
            )
            .await
        }
    }
}

/// `/organization/token-settings`.
#[derive(Template)]
#[template(path = "token_settings.html")]
pub struct TokenSettingsPage {
    c: Chrome,
    tab: &'static str,
    owner: bool,
    types: Vec<Choice>,
    ttl: String,
    max_per_user: String,
    creators: Vec<Choice>,
    instance_default_days: u32,
}

fn type_setting_label(t: TokenType) -> &'static str {
    match t {
        TokenType::Personal => "Personal access tokens",
        TokenType::Legacy => "Legacy tokens",
        TokenType::Client => "Client tokens",
        TokenType::Frontend => "Frontend tokens",
        TokenType::Admin => "Admin tokens",
    }
}

async fn render_token_settings(
    state: &AppState,
    s: &Session,
    status: StatusCode,
    notice: Option<Notice>,
    sticky: Option<&FormData>,
) -> Response {
    let result = async {
        let org = state.org().await?;
        let settings = state.token_settings(&s.p, &org.id).await?;
        let instance = state.instance_settings(&s.p).await?;
        Ok((settings, instance))
    }
    .await;
    let (settings, instance) = match result {
        Ok(v) => v,
        Err(e) => return error_page(s, "organization", &e),
    };
    let mut c = s.chrome("Access Token Settings", "organization");
    c.notice = notice;
    let (types, ttl, max_per_user, creators) = match sticky {
        Some(f) => (
            ALL_TOKEN_TYPES
                .iter()
                .map(|t| {
                    let on = f.all("enabled_types").iter().any(|v| v == t.as_str());
                    Choice::new(t.as_str(), type_setting_label(*t), on)
                })
                .collect::<Vec<_>>(),
            f.get("personal_token_ttl_days").unwrap_or("").to_owned(),
            f.get("max_tokens_per_user").unwrap_or("").to_owned(),
            f.get("token_creators").and_then(TokenCreators::parse),
        ),
        None => (
            ALL_TOKEN_TYPES
                .iter()
                .map(|t| {
                    Choice::new(
                        t.as_str(),
                        type_setting_label(*t),
                        settings.enabled_types.contains(t),
                    )
                })
                .collect(),
            settings
                .personal_token_ttl_days
                .map(|d| d.to_string())
                .unwrap_or_default(),
            settings
                .max_tokens_per_user
                .map(|d| d.to_string())
                .unwrap_or_default(),
            Some(settings.token_creators),
        ),
    };
    let creators = creators.unwrap_or(settings.token_creators);
    html(
        status,
        &TokenSettingsPage {
            c,
            tab: "token-settings",
            owner: s.user.role == OrgRole::Owner,
            types,
            ttl,
            max_per_user,
            creators: [
                (
                    TokenCreators::Members,
                    "Workspace members and admins (their own tokens)",
                ),
                (TokenCreators::Admins, "Org admins only"),
            ]
            .into_iter()
            .map(|(v, label)| Choice::new(v.as_str(), label, v == creators))
            .collect(),
            instance_default_days: instance.default_token_lifetime_days,
        },
    )
}

/// `GET /organization/token-settings`.
pub async fn token_settings(
    State(state): State<AppState>,
    auth: Auth,
    OriginalUri(uri): OriginalUri,
) -> Response {
    let s = match admin_session(&state, auth, &uri.to_string()) {
        Ok(s) => s,
        Err(r) => return r,
    };
    render_token_settings(&state, &s, StatusCode::OK, done_notice(&uri), None).await
}

fn optional_number(form: &FormData, field: &str, what: &str) -> Result<Option<u32>, ApiError> {
    form.text(field)
        .map(|v| {
            v.parse::<u32>()
                .map_err(|_| ApiError::field(field, format!("{what} must be a whole number")))
        })
        .transpose()
}

/// `POST /organization/token-settings`: Save (applies from the next request).
pub async fn save_token_settings(
    State(state): State<AppState>,
    auth: Auth,
    headers: HeaderMap,
    form: FormData,
) -> Response {
    let s = match admin_post(
        &state,
        auth,
        &headers,
        &form,
        "/organization/token-settings",
    ) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let result = async {
        let enabled_types = form
            .all("enabled_types")
            .iter()
            .map(|v| {
                TokenType::parse(v)
                    .ok_or_else(|| ApiError::field("enabled_types", "unknown token type"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let ttl = optional_number(&form, "personal_token_ttl_days", "the TTL")?;
        let max = optional_number(&form, "max_tokens_per_user", "the maximum")?;
        let creators = form
            .get("token_creators")
            .and_then(TokenCreators::parse)
            .ok_or_else(|| ApiError::field("token_creators", "choose who may create tokens"))?;
        let org = state.org().await?;
        let req = UpdateTokenSettingsRequest {
            enabled_types: Some(enabled_types),
            personal_token_ttl_days: Some(ttl),
            max_tokens_per_user: Some(max),
            token_creators: Some(creators),
        };
        state.update_token_settings(&s.p, &org.id, req).await
    }
    .await;
    match result {
        Ok(_) => see_other("/organization/token-settings?done=saved"),
        Err(e) => {
            render_token_settings(
                &state,
                &s,
                error_status(&e),
                Some(Notice::error(error_text(&e))),
                Some(&form),
            )
            .await
        }
    }
}

/// `/organization/instance`.
#[derive(Template)]
#[template(path = "instance.html")]
pub struct InstancePage {
    c: Chrome,
    tab: &'static str,
    owner: bool,
    max_active: String,
    default_days: String,
}

async fn render_instance(
    state: &AppState,
    s: &Session,
    status: StatusCode,
    notice: Option<Notice>,
    sticky: Option<&FormData>,
) -> Response {
    let settings = match state.instance_settings(&s.p).await {
        Ok(v) => v,
        Err(e) => return error_page(s, "organization", &e),
    };
    let mut c = s.chrome("Instance Settings", "organization");
    c.notice = notice;
    let (max_active, default_days) = match sticky {
        Some(f) => (
            f.get("max_active_tokens").unwrap_or("").to_owned(),
            f.get("default_token_lifetime_days")
                .unwrap_or("")
                .to_owned(),
        ),
        None => (
            settings
                .max_active_tokens
                .map(|v| v.to_string())
                .unwrap_or_default(),
            settings.default_token_lifetime_days.to_string(),
        ),
    };
    html(
        status,
        &InstancePage {
            c,
            tab: "instance",
            owner: s.user.role == OrgRole::Owner,
            max_active,
            default_days,
        },
    )
}

/// `GET /organization/instance`.
pub async fn instance(
    State(state): State<AppState>,
    auth: Auth,
    OriginalUri(uri): OriginalUri,
) -> Response {
    let s = match admin_session(&state, auth, &uri.to_string()) {
        Ok(s) => s,
        Err(r) => return r,
    };
    render_instance(&state, &s, StatusCode::OK, done_notice(&uri), None).await
}

/// `POST /organization/instance` (the instance owner).
pub async fn save_instance(
    State(state): State<AppState>,
    auth: Auth,
    headers: HeaderMap,
    form: FormData,
) -> Response {
    let s = match admin_post(&state, auth, &headers, &form, "/organization/instance") {
        Ok(s) => s,
        Err(r) => return r,
    };
    let result = async {
        let max = optional_number(&form, "max_active_tokens", "the maximum")?;
        let days = optional_number(&form, "default_token_lifetime_days", "the lifetime")?
            .ok_or_else(|| {
                ApiError::field(
                    "default_token_lifetime_days",
                    "default_token_lifetime_days is required",
                )
            })?;
        let req = UpdateInstanceSettingsRequest {
            max_active_tokens: Some(max),
            default_token_lifetime_days: Some(days),
        };
        state.update_instance_settings(&s.p, req).await
    }
    .await;
    match result {
        Ok(_) => see_other("/organization/instance?done=saved"),
        Err(e) => {
            render_instance(
                &state,
                &s,
                error_status(&e),
                Some(Notice::error(error_text(&e))),
                Some(&form),
            )
            .await
        }
    }
}

/// An audit event as a row.
pub struct AuditRow {
    at: When,
    action: String,
    actor: String,
    target: String,
    workspace: String,
    ip: String,
    details: String,
}

/// `/organization/audit`.
#[derive(Template)]
#[template(path = "audit.html")]
pub struct AuditPage {
    c: Chrome,
    tab: &'static str,
    owner: bool,
    workspaces: Vec<Choice>,
    actors: Vec<Choice>,
    token: String,
    action: String,
    since: String,
    until: String,
    rows: Vec<AuditRow>,
    next_url: Option<String>,
    filtered: bool,
}

/// `datetime-local` (UTC) → RFC 3339.
fn local_to_rfc3339(value: &str) -> String {
    let v = value.trim();
    if v.is_empty() || v.ends_with('Z') || v.contains('+') {
        return v.to_owned();
    }
    match v.len() {
        16 => format!("{v}:00Z"),
        _ => format!("{v}Z"),
    }
}

/// `GET /organization/audit?workspace=&actor=&token=&action=&since=&until=&cursor=`.
pub async fn audit(
    State(state): State<AppState>,
    auth: Auth,
    OriginalUri(uri): OriginalUri,
) -> Response {
    let s = match admin_session(&state, auth, &uri.to_string()) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let now = state.clock.now();
    let q = query_pairs(&uri);
    let get = |k: &str| {
        q.get(k)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    let query = AuditQuery {
        workspace: get("workspace"),
        actor: get("actor"),
        token: get("token"),
        action: get("action"),
        since: get("since").map(|v| local_to_rfc3339(&v)),
        until: get("until").map(|v| local_to_rfc3339(&v)),
        limit: Some("50".into()),
        cursor: get("cursor"),
    };
    let filtered = query.workspace.is_some()
        || query.actor.is_some()
        || query.token.is_some()
        || query.action.is_some()
        || query.since.is_some()
        || query.until.is_some();
    let lists = async {
        let ws = state.list_workspaces(&s.p, &page(200, None)).await?;
        let users = state.list_users(&s.p, &page(200, None)).await?;
        Ok::<_, ApiError>((ws.items, users.items))
    }
    .await;
    let (all_ws, users) = match lists {
        Ok(v) => v,
        Err(e) => return error_page(&s, "organization", &e),
    };
    let usernames: HashMap<String, String> = users
        .iter()
        .map(|u| (u.id.clone(), u.username.clone()))
        .collect();
    let ws_names: HashMap<String, String> = all_ws
        .iter()
        .map(|w| (w.id.clone(), w.name.clone()))
        .collect();
    let (status, notice, events) = match state.list_audit(&s.p, query.clone()).await {
        Ok(page) => (StatusCode::OK, None, page),
        Err(e) => (
            error_status(&e),
            Some(Notice::error(error_text(&e))),
            latchkey_proto::Page {
                items: Vec::new(),
                next_cursor: None,
            },
        ),
    };
    let next_url = events.next_cursor.as_ref().map(|cursor| {
        let mut url = format!("/organization/audit?cursor={}", encode(cursor));
        for key in ["workspace", "actor", "token", "action", "since", "until"] {
            if let Some(v) = get(key) {
                url.push_str(&format!("&{key}={}", encode(&v)));
            }
        }
        url
    });
    let rows = events
        .items
        .into_iter()
        .map(|e| {
            let name_in_details = e
                .details
                .get("name")
                .or_else(|| e.details.get("username"))
                .and_then(|v| v.as_str())
                .map(str::to_owned);
            let target = match (&e.target_type, &name_in_details, &e.target_id) {
                (Some(t), Some(n), _) => format!("{t} {n}"),
                (Some(t), None, Some(id)) => format!("{t} {id}"),
                (Some(t), None, None) => t.clone(),
                _ => String::new(),
            };
            AuditRow {
                at: when(e.created_at, now),
                actor: e
                    .actor_id
                    .as_ref()
                    .map(|id| usernames.get(id).cloned().unwrap_or_else(|| id.clone()))
                    .or_else(|| e.actor_token_id.as_ref().map(|t| format!("token {t}")))
                    .unwrap_or_else(|| "—".into()),
                workspace: e
                    .workspace_id
                    .as_ref()
                    .map(|id| ws_names.get(id).cloned().unwrap_or_else(|| id.clone()))
                    .unwrap_or_default(),
                ip: e.ip.unwrap_or_default(),
                details: if e.details.as_object().is_some_and(|o| o.is_empty()) {
                    String::new()
                } else {
                    e.details.to_string()
                },
                action: e.action,
                target,
            }
        })
        .collect();
    let mut c = s.chrome("Audit Log", "organization");
    c.notice = notice;
    let selected_ws = get("workspace").unwrap_or_default();
    let selected_actor = get("actor").unwrap_or_default();
    let mut workspaces = vec![Choice::new("", "All workspaces", selected_ws.is_empty())];
    workspaces.extend(
        all_ws
            .iter()
            .map(|w| Choice::new(w.id.clone(), w.name.clone(), w.id == selected_ws)),
    );
    let mut actors = vec![Choice::new("", "Anyone", selected_actor.is_empty())];
    actors.extend(
        users
            .iter()
            .map(|u| Choice::new(u.id.clone(), u.username.clone(), u.id == selected_actor)),
    );
    html(
        status,
        &AuditPage {
            c,
            tab: "audit",
            owner: s.user.role == OrgRole::Owner,
            workspaces,
            actors,
            token: get("token").unwrap_or_default(),
            action: get("action").unwrap_or_default(),
            since: get("since").unwrap_or_default(),
            until: get("until").unwrap_or_default(),
            rows,
            next_url,
            filtered,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datetime_local_is_read_as_utc() {
        assert_eq!(local_to_rfc3339("2027-01-02T03:04"), "2027-01-02T03:04:00Z");
        assert_eq!(
            local_to_rfc3339("2027-01-02T03:04:05"),
            "2027-01-02T03:04:05Z"
        );
        assert_eq!(
            local_to_rfc3339("2027-01-02T03:04:05Z"),
            "2027-01-02T03:04:05Z"
        );
    }
}
