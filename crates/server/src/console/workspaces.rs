//! Workspace pages: the landing list (and New workspace), one workspace with its projects,
//! its settings, and its members.

use askama::Template;
use axum::extract::{OriginalUri, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use latchkey_core::policy::Permission;
use latchkey_proto::{CreateProjectRequest, WorkspaceRole};
use latchkey_store::PageRequest;

use super::pages::{done_notice, error_page};
use super::render::{
    Choice, Chrome, Notice, When, error_status, error_text, html, see_other, when,
};
use super::session::{Auth, FormData, Session, encode, query_pairs, require_post, require_session};
use crate::error::ApiError;
use crate::state::AppState;

const ROLES: [WorkspaceRole; 3] = [
    WorkspaceRole::Admin,
    WorkspaceRole::Member,
    WorkspaceRole::Viewer,
];

fn all(limit: u32, cursor: Option<&String>) -> PageRequest {
    PageRequest {
        limit,
        cursor: cursor.filter(|c| latchkey_core::is_id(c)).cloned(),
    }
}

/// `/workspaces`.
#[derive(Template)]
#[template(path = "workspaces.html")]
pub struct WorkspacesPage {
    c: Chrome,
    workspaces: Vec<(String, String)>,
    can_create: bool,
    show_form: bool,
    name: String,
}

/// `/workspaces/{ws}`.
#[derive(Template)]
#[template(path = "workspace.html")]
pub struct WorkspacePage {
    c: Chrome,
    ws_id: String,
    ws_name: String,
    role: String,
    projects: Vec<(String, String, Option<String>, When)>,
    can_write: bool,
    project_name: String,
    project_description: String,
}

/// `/workspaces/{ws}/settings`.
#[derive(Template)]
#[template(path = "settings.html")]
pub struct SettingsPage {
    c: Chrome,
    ws_id: String,
    ws_name: String,
}

/// A member as a row.
pub struct MemberRow {
    user_id: String,
    username: String,
    role: &'static str,
    added: When,
    roles: Vec<Choice>,
    is_self: bool,
}

/// `/workspaces/{ws}/settings/members`.
#[derive(Template)]
#[template(path = "members.html")]
pub struct MembersPage {
    c: Chrome,
    ws_id: String,
    ws_name: String,
    members: Vec<MemberRow>,
    can_manage: bool,
    add_username: String,
    add_roles: Vec<Choice>,
    next_url: Option<String>,
}

async fn render_workspaces(
    state: &AppState,
    s: &Session,
    status: StatusCode,
    notice: Option<Notice>,
    show_form: bool,
    name: &str,
) -> Response {
    let mut c = s.chrome("Workspaces", "workspaces");
    c.notice = notice;
    match state.list_workspaces(&s.p, &all(200, None)).await {
        Ok(list) => {
            let mut workspaces: Vec<(String, String)> =
                list.items.into_iter().map(|w| (w.id, w.name)).collect();
            workspaces.sort_by_key(|w| w.1.to_lowercase());
            let can_create = s.p.authorize(Permission::ManageWorkspaces, None).is_ok();
            html(
                status,
                &WorkspacesPage {
                    c,
                    workspaces,
                    can_create,
                    show_form: show_form && can_create,
                    name: name.to_owned(),
                },
            )
        }
        Err(e) => error_page(s, "workspaces", &e),
    }
}

/// `GET /workspaces` (`?new=1` opens the New workspace form).
pub async fn list(
    State(state): State<AppState>,
    auth: Auth,
    OriginalUri(uri): OriginalUri,
) -> Response {
    let s = match require_session(&state, auth, &uri.to_string()) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let show_form = query_pairs(&uri).get("new").is_some_and(|v| v == "1");
    render_workspaces(&state, &s, StatusCode::OK, done_notice(&uri), show_form, "").await
}

/// `POST /workspaces`: create (org admins), then open it.
pub async fn create(
    State(state): State<AppState>,
    auth: Auth,
    headers: HeaderMap,
    form: FormData,
) -> Response {
    let s = match require_post(&state, auth, &headers, &form, "/workspaces?new=1") {
        Ok(s) => s,
        Err(r) => return r,
    };
    let name = form.get("name").unwrap_or("");
    match state.create_workspace(&s.p, name).await {
        Ok(ws) => see_other(&format!("/workspaces/{}?done=workspace", ws.id)),
        Err(e) => {
            render_workspaces(
                &state,
                &s,
                error_status(&e),
                Some(Notice::error(error_text(&e))),
                true,
                name,
            )
            .await
        }
    }
}

async fn render_workspace(
    state: &AppState,
    s: &Session,
    ws_ref: &str,
    status: StatusCode,
    notice: Option<Notice>,
    sticky: Option<&FormData>,
) -> Response {
    let now = state.clock.now();
    let result = async {
        let ws = state.get_workspace(&s.p, ws_ref).await?;
        let projects = match state.list_projects(&s.p, &ws.id, &all(200, None)).await {
            Ok(p) => p.items,
            Err(ApiError::Forbidden(_)) => Vec::new(),
            Err(e) => return Err(e),
        };
        Ok((ws, projects))
    }
    .await;
    let (ws, projects) = match result {
        Ok(v) => v,
        Err(e) => return error_page(s, "workspaces", &e),
    };
    let mut c = s.chrome(ws.name.clone(), "workspaces");
    c.notice = notice;
    let role = if s.user.role.is_org_admin() {
        format!("organization {}", s.user.role.as_str())
    } else {
        s.user
            .workspace_role(Some(&ws.id))
            .map(|r| r.as_str().to_owned())
            .unwrap_or_default()
    };
    let empty = FormData::default();
    let f = sticky.unwrap_or(&empty);
    html(
        status,
        &WorkspacePage {
            c,
            can_write: s
                .p
                .authorize(Permission::WriteProjects, Some(&ws.id))
                .is_ok(),
            ws_id: ws.id,
            ws_name: ws.name,
            role,
            projects: projects
                .into_iter()
                .map(|p| (p.id, p.name, p.description, when(p.created_at, now)))
                .collect(),
            project_name: f.get("name").unwrap_or("").to_owned(),
            project_description: f.get("description").unwrap_or("").to_owned(),
        },
    )
}

/// `GET /workspaces/{ws}`.
pub async fn show(
    State(state): State<AppState>,
    auth: Auth,
    OriginalUri(uri): OriginalUri,
    Path(ws): Path<String>,
) -> Response {
    let s = match require_session(&state, auth, &uri.to_string()) {
        Ok(s) => s,
        Err(r) => return r,
    };
    render_workspace(&state, &s, &ws, StatusCode::OK, done_notice(&uri), None).await
}

/// `POST /workspaces/{ws}/projects`.
pub async fn create_project(
    State(state): State<AppState>,
    auth: Auth,
    headers: HeaderMap,
    Path(ws): Path<String>,
    form: FormData,
) -> Response {
    let back = format!("/workspaces/{ws}");
    let s = match require_post(&state, auth, &headers, &form, &back) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let req = CreateProjectRequest {
        name: form.get("name").unwrap_or("").to_owned(),
        description: form.text("description"),
    };
    match state.create_project(&s.p, &ws, req).await {
        Ok(_) => see_other(&format!("{back}?done=project")),
        Err(e) => {
            render_workspace(
                &state,
                &s,
                &ws,
                error_status(&e),
                Some(Notice::error(error_text(&e))),
                Some(&form),
            )
            .await
        }
    }
}

/// `GET /workspaces/{ws}/settings`.
pub async fn settings(
    State(state): State<AppState>,
    auth: Auth,
    OriginalUri(uri): OriginalUri,
    Path(ws): Path<String>,
) -> Response {
    let s = match require_session(&state, auth, &uri.to_string()) {
        Ok(s) => s,
        Err(r) => return r,
    };
    match state.get_workspace(&s.p, &ws).await {
        Ok(ws) => html(
            StatusCode::OK,
            &SettingsPage {
                c: s.chrome(format!("Settings · {}", ws.name), "workspaces"),
                ws_id: ws.id,
                ws_name: ws.name,
            },
        ),
        Err(e) => error_page(&s, "workspaces", &e),
    }
}

async fn render_members(
    state: &AppState,
    s: &Session,
    ws_ref: &str,
    status: StatusCode,
    notice: Option<Notice>,
    sticky: Option<&FormData>,
    cursor: Option<&String>,
) -> Response {
    let now = state.clock.now();
    let result = async {
        let ws = state.get_workspace(&s.p, ws_ref).await?;
        let members = state.list_members(&s.p, &ws.id, &all(100, cursor)).await?;
        Ok((ws, members))
    }
    .await;
    let (ws, members) = match result {
        Ok(v) => v,
        Err(e) => return error_page(s, "workspaces", &e),
    };
    let mut c = s.chrome(format!("Members · {}", ws.name), "workspaces");
    c.notice = notice;
    let empty = FormData::default();
    let f = sticky.unwrap_or(&empty);
    let chosen = f
        .get("role")
        .and_then(WorkspaceRole::parse)
        .unwrap_or(WorkspaceRole::Member);
    let next_url = members.next_cursor.as_ref().map(|cur| {
        format!(
            "/workspaces/{}/settings/members?cursor={}",
            ws.id,
            encode(cur)
        )
    });
    html(
        status,
        &MembersPage {
            c,
            can_manage: s
                .p
                .authorize(Permission::ManageMembers, Some(&ws.id))
                .is_ok(),
            members: members
                .items
                .into_iter()
                .map(|m| MemberRow {
                    is_self: m.user_id == s.user.id,
                    roles: ROLES
                        .iter()
                        .map(|r| Choice::new(r.as_str(), r.as_str(), *r == m.role))
                        .collect(),
                    user_id: m.user_id,
                    username: m.username,
                    role: m.role.as_str(),
                    added: when(m.created_at, now),
                })
                .collect(),
            ws_id: ws.id,
            ws_name: ws.name,
            add_username: f.get("username").unwrap_or("").to_owned(),
            add_roles: ROLES
                .iter()
                .map(|r| Choice::new(r.as_str(), r.as_str(), *r == chosen))
                .collect(),
            next_url,
        },
    )
}

/// `GET /workspaces/{ws}/settings/members`.
pub async fn members(
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
    render_members(
        &state,
        &s,
        &ws,
        StatusCode::OK,
        done_notice(&uri),
        None,
        cursor.as_ref(),
    )
    .await
}

fn parse_role(form: &FormData) -> Result<WorkspaceRole, ApiError> {
    form.get("role")
        .and_then(WorkspaceRole::parse)
        .ok_or_else(|| ApiError::field("role", "choose a role: admin, member or viewer"))
}

/// `POST /workspaces/{ws}/settings/members`: add a member by username.
pub async fn add_member(
    State(state): State<AppState>,
    auth: Auth,
    headers: HeaderMap,
    Path(ws): Path<String>,
    form: FormData,
) -> Response {
    let back = format!("/workspaces/{ws}/settings/members");
    let s = match require_post(&state, auth, &headers, &form, &back) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let result = async {
        let role = parse_role(&form)?;
        let username = form
            .text("username")
            .ok_or_else(|| ApiError::field("username", "enter the username to add"))?;
        let user_id = state.find_user_for_membership(&s.p, &ws, &username).await?;
        state.put_member(&s.p, &ws, &user_id, role).await
    }
    .await;
    match result {
        Ok(_) => see_other(&format!("{back}?done=member-added")),
        Err(e) => {
            render_members(
                &state,
                &s,
                &ws,
                error_status(&e),
                Some(Notice::error(error_text(&e))),
                Some(&form),
                None,
            )
            .await
        }
    }
}

/// `POST /workspaces/{ws}/settings/members/{user}/{action}` (`role`, `remove`).
pub async fn member_action(
    State(state): State<AppState>,
    auth: Auth,
    headers: HeaderMap,
    Path((ws, user, action)): Path<(String, String, String)>,
    form: FormData,
) -> Response {
    let back = format!("/workspaces/{ws}/settings/members");
    let s = match require_post(&state, auth, &headers, &form, &back) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let result = match action.as_str() {
        "role" => match parse_role(&form) {
            Ok(role) => state
                .put_member(&s.p, &ws, &user, role)
                .await
                .map(|_| "member-role"),
            Err(e) => Err(e),
        },
        "remove" => state
            .remove_member(&s.p, &ws, &user)
            .await
            .map(|_| "member-removed"),
        _ => Err(ApiError::NotFound("action")),
    };
    match result {
        Ok(code) => see_other(&format!("{back}?done={code}")),
        Err(e) => {
            render_members(
                &state,
                &s,
                &ws,
                error_status(&e),
                Some(Notice::error(error_text(&e))),
                None,
                None,
            )
            .await
        }
    }
}
