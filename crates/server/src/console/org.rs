//! Organization pages (org admins only; others get 403, by the [`OrgAdmin`] extractor):
//! Users (create; change a role, deactivate, reactivate — one route each), Access Token
//! Settings, Instance Settings and the Audit Log.

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use latchkey_proto::{
    CreateUserRequest, OrgRole, TokenCreators, TokenType, UpdateInstanceSettingsRequest,
    UpdateTokenSettingsRequest, UpdateUserRequest,
};

use super::extract::{Form, FormData, OrgAdmin, SignedIn, Visit};
use super::page_request;
use super::render::{
    Choice, Chrome, Flash, Notice, View, When, error_status, html, role_choices, see_other, when,
};
use super::session::encode;
use crate::error::ApiError;
use crate::service::{ALL_TOKEN_TYPES, AuditQuery};
use crate::state::AppState;

const ROLES: [OrgRole; 3] = [OrgRole::Owner, OrgRole::Admin, OrgRole::Member];

/// `GET /organization`.
pub async fn index(_admin: OrgAdmin) -> Response {
    see_other("/organization/users")
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

/// The roles `s` may give a user whose role is `current` (kept, so the select shows it),
/// as the service decides.
fn grantable(state: &AppState, s: &SignedIn, current: Option<OrgRole>) -> Vec<OrgRole> {
    ROLES
        .into_iter()
        .filter(|r| Some(*r) == current || state.may_grant_org_role(&s.p, *r))
        .collect()
}

/// Renders Users with `view` (`?cursor=` pages).
async fn render_users(state: &AppState, s: &SignedIn, view: View) -> Response {
    let now = state.clock.now();
    let page = async {
        let cursor = view.query().get("cursor").cloned();
        let users = state
            .list_users(&s.p, None, &page_request(100, cursor.as_ref()))
            .await?;
        let chosen = OrgRole::parse(view.field("role")).unwrap_or(OrgRole::Member);
        let next_url = users
            .next_cursor
            .as_ref()
            .map(|cur| format!("/organization/users?cursor={}", encode(cur)));
        Ok(UsersPage {
            c: s.chrome("Users", "organization", &view),
            tab: "users",
            owner: s.is_owner(),
            users: users
                .items
                .into_iter()
                .map(|u| UserRow {
                    is_self: u.id == s.user.id,
                    roles: role_choices(grantable(state, s, Some(u.role)), OrgRole::as_str, u.role),
                    id: u.id,
                    username: u.username,
                    display_name: u.display_name.unwrap_or_default(),
                    email: u.email.unwrap_or_default(),
                    role: u.role.as_str(),
                    active: u.active,
                    created: when(u.created_at, now),
                })
                .collect(),
            create_roles: role_choices(grantable(state, s, None), OrgRole::as_str, chosen),
            username: view.field("username").to_owned(),
            display_name: view.field("display_name").to_owned(),
            email: view.field("email").to_owned(),
            next_url,
        })
    }
    .await;
    view.respond(s, "organization", page)
}

/// `GET /organization/users`.
pub async fn users(v: Visit<OrgAdmin>) -> Response {
    render_users(&v.state, &v.s, v.view).await
}

/// Back to Users with `flash`, or Users with the refusal (`refill`: the form filled in
/// again).
async fn users_answer(
    state: &AppState,
    s: &SignedIn,
    (data, refill): (FormData, bool),
    result: Result<Flash, ApiError>,
) -> Response {
    let back = data.back_or("/organization/users");
    match result {
        Ok(flash) => s.done(&back, flash),
        Err(e) if refill => render_users(state, s, View::failed(state, &e, data)).await,
        Err(e) => render_users(state, s, View::refused(state, &e, back)).await,
    }
}

/// `POST /organization/users`: create a user.
pub async fn create_user(
    State(state): State<AppState>,
    Form { s, data }: Form<OrgAdmin>,
) -> Response {
    let result = async {
        let role = OrgRole::parse(data.get("role").unwrap_or(""))
            .ok_or_else(|| ApiError::field("role", "choose a role"))?;
        let req = CreateUserRequest {
            username: data.get("username").unwrap_or("").trim().to_owned(),
            password: Some(data.get("password").unwrap_or("").to_owned()),
            kind: latchkey_proto::UserKind::Human,
            role,
            display_name: data.text("display_name"),
            email: data.text("email"),
        };
        let user = state.create_user(&s.p, req).await?;
        Ok(Flash::new("user-created").subject(user.username))
    }
    .await;
    users_answer(&state, &s, (data, true), result).await
}

/// Applies `req` to user `id` and returns to Users with the banner `code`.
async fn update_user(
    state: AppState,
    form: Form<OrgAdmin>,
    id: String,
    req: Result<UpdateUserRequest, ApiError>,
    code: &'static str,
) -> Response {
    let Form {
        s: OrgAdmin(s),
        data,
    } = form;
    let result = match req {
        Ok(req) => state
            .update_user(&s.p, &id, req)
            .await
            .map(|u| Flash::new(code).subject(u.username)),
        Err(e) => Err(e),
    };
    users_answer(&state, &s, (data, false), result).await
}

/// `POST /organization/users/{id}/role`.
pub async fn change_user_role(
    State(state): State<AppState>,
    Path(id): Path<String>,
    form: Form<OrgAdmin>,
) -> Response {
    let req = OrgRole::parse(form.data.get("role").unwrap_or(""))
        .map(|role| UpdateUserRequest {
            role: Some(role),
            ..UpdateUserRequest::default()
        })
        .ok_or_else(|| ApiError::field("role", "choose a role"));
    update_user(state, form, id, req, "user-role").await
}

/// `POST /organization/users/{id}/deactivate` (`set_active::<false>`) and `…/reactivate`
/// (`set_active::<true>`): one route each, one handler.
pub async fn set_active<const ACTIVE: bool>(
    State(state): State<AppState>,
    Path(id): Path<String>,
    form: Form<OrgAdmin>,
) -> Response {
    let req = UpdateUserRequest {
        active: Some(ACTIVE),
        ..UpdateUserRequest::default()
    };
    let code = if ACTIVE { "reactivated" } else { "deactivated" };
    update_user(state, form, id, Ok(req), code).await
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
    /// The types whose secrets are kept recoverable.
    recoverable: Vec<Choice>,
    /// The types an org admin's token of waits for another admin's approval (shown to
    /// owners only: only they may change it).
    approval: Vec<Choice>,
    /// `idle_revoke_days` as the form shows it (empty: off).
    idle_days: String,
    /// `max_token_lifetime_days` as the form shows it (empty: off).
    max_lifetime: String,
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

/// Renders Access Token Settings with `view` (a failed Save refills the form).
async fn render_token_settings(state: &AppState, s: &SignedIn, view: View) -> Response {
    let page = async {
        let org = state.org().await?;
        let settings = state.token_settings(&s.p, &org.id).await?;
        let instance = state.instance_settings(&s.p).await?;
        let (types, ttl, max_per_user, creators) = match &view.sticky {
            Some(f) => (
                ALL_TOKEN_TYPES
                    .iter()
                    .map(|t| {
                        let on = f.all("enabled_types").iter().any(|v| v == t.as_str());
                        Choice::new(t.as_str(), type_setting_label(*t), on)
                    })
                    .collect::<Vec<_>>(),
                view.field("personal_token_ttl_days").to_owned(),
                view.field("max_tokens_per_user").to_owned(),
                TokenCreators::parse(view.field("token_creators")),
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
        // A failed Save shows what was typed; otherwise the stored days (empty: off).
        let days = |field: &str, stored: Option<u32>| match &view.sticky {
            Some(_) => view.field(field).to_owned(),
            None => stored.map(|d| d.to_string()).unwrap_or_default(),
        };
        let idle_days = days("idle_revoke_days", settings.idle_revoke_days);
        let max_lifetime = days("max_token_lifetime_days", settings.max_token_lifetime_days);
        // A failed Save shows what was ticked; otherwise the stored set.
        let ticked = |field: &str, stored: &[TokenType]| -> Vec<Choice> {
            ALL_TOKEN_TYPES
                .iter()
                .map(|t| {
                    let on = match &view.sticky {
                        Some(f) => f.all(field).iter().any(|v| v == t.as_str()),
                        None => stored.contains(t),
                    };
                    Choice::new(t.as_str(), type_setting_label(*t), on)
                })
                .collect()
        };
        let recoverable = ticked("recoverable_types", &settings.recoverable_types);
        let approval = ticked("approval_required_types", &settings.approval_required_types);
        Ok(TokenSettingsPage {
            recoverable,
            approval,
            idle_days,
            max_lifetime,
            c: s.chrome("Access Token Settings", "organization", &view),
            tab: "token-settings",
            owner: s.is_owner(),
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
        })
    }
    .await;
    view.respond(s, "organization", page)
}

/// `GET /organization/token-settings`.
pub async fn token_settings(v: Visit<OrgAdmin>) -> Response {
    render_token_settings(&v.state, &v.s, v.view).await
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
    Form { s, data }: Form<OrgAdmin>,
) -> Response {
    let result = async {
        let enabled_types = data
            .all("enabled_types")
            .iter()
            .map(|v| {
                TokenType::parse(v)
                    .ok_or_else(|| ApiError::field("enabled_types", "unknown token type"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let ttl = optional_number(&data, "personal_token_ttl_days", "the TTL")?;
        let max = optional_number(&data, "max_tokens_per_user", "the maximum")?;
        let idle = optional_number(&data, "idle_revoke_days", "the idle period")?;
        let lifetime = optional_number(&data, "max_token_lifetime_days", "the maximum lifetime")?;
        let creators = data
            .get("token_creators")
            .and_then(TokenCreators::parse)
            .ok_or_else(|| ApiError::field("token_creators", "choose who may create tokens"))?;
        let types_of = |field: &'static str| {
            data.all(field)
                .iter()
                .map(|v| {
                    TokenType::parse(v).ok_or_else(|| ApiError::field(field, "unknown token type"))
                })
                .collect::<Result<Vec<_>, _>>()
        };
        let recoverable_types = types_of("recoverable_types")?;
        // Only owners see (and may change) it; an admin's Save leaves it as it is.
        let approval_required_types = if s.is_owner() {
            Some(types_of("approval_required_types")?)
        } else {
            None
        };
        let org = state.org().await?;
        let req = UpdateTokenSettingsRequest {
            enabled_types: Some(enabled_types),
            personal_token_ttl_days: Some(ttl),
            max_tokens_per_user: Some(max),
            token_creators: Some(creators),
            recoverable_types: Some(recoverable_types),
            idle_revoke_days: Some(idle),
            max_token_lifetime_days: Some(lifetime),
            approval_required_types,
        };
        state.update_token_settings(&s.p, &org.id, req).await
    }
    .await;
    match result {
        Ok(_) => s.done("/organization/token-settings", Flash::new("saved")),
        Err(e) => render_token_settings(&state, &s, View::failed(&state, &e, data)).await,
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

/// Renders Instance Settings with `view` (a failed Save refills the form).
async fn render_instance(state: &AppState, s: &SignedIn, view: View) -> Response {
    let page = async {
        let settings = state.instance_settings(&s.p).await?;
        let (max_active, default_days) = match view.sticky {
            Some(_) => (
                view.field("max_active_tokens").to_owned(),
                view.field("default_token_lifetime_days").to_owned(),
            ),
            None => (
                settings
                    .max_active_tokens
                    .map(|v| v.to_string())
                    .unwrap_or_default(),
                settings.default_token_lifetime_days.to_string(),
            ),
        };
        Ok(InstancePage {
            c: s.chrome("Instance Settings", "organization", &view),
            tab: "instance",
            owner: s.is_owner(),
            max_active,
            default_days,
        })
    }
    .await;
    view.respond(s, "organization", page)
}

/// `GET /organization/instance`.
pub async fn instance(v: Visit<OrgAdmin>) -> Response {
    render_instance(&v.state, &v.s, v.view).await
}

/// `POST /organization/instance` (the instance owner).
pub async fn save_instance(
    State(state): State<AppState>,
    Form { s, data }: Form<OrgAdmin>,
) -> Response {
    let result = async {
        let max = optional_number(&data, "max_active_tokens", "the maximum")?;
        let days = optional_number(&data, "default_token_lifetime_days", "the lifetime")?
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
        Ok(_) => s.done("/organization/instance", Flash::new("saved")),
        Err(e) => render_instance(&state, &s, View::failed(&state, &e, data)).await,
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
    Visit {
        state,
        s: OrgAdmin(s),
        view,
    }: Visit<OrgAdmin>,
) -> Response {
    let now = state.clock.now();
    let q = view.query();
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
        let ws = super::workspaces_of(&state, &s).await?;
        let users = state
            .list_users(&s.p, None, &page_request(200, None))
            .await?;
        Ok::<_, ApiError>((ws, users.items))
    }
    .await;
    let (all_ws, users) = match lists {
        Ok(v) => v,
        Err(e) => return super::pages::error_page(&s, "organization", &e),
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
            Some(Notice::failure(&e, now)),
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
    let view = View {
        status,
        notice,
        ..view
    };
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
        view.status,
        &AuditPage {
            c: s.chrome("Audit Log", "organization", &view),
            tab: "audit",
            owner: s.is_owner(),
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
