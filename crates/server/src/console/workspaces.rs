//! Workspace pages: the landing list (and New workspace), one workspace with its projects,
//! its settings, and its members (add; change a role and remove, one route each).

use askama::Template;
use axum::extract::{Path, State};
use axum::response::Response;
use latchkey_proto::{CreateProjectRequest, WorkspaceRole};

use super::extract::{Form, FormData, SignedIn, Visit};
use super::page_request;
use super::render::{Choice, Chrome, Flash, View, When, role_choices, when};
use super::session::encode;
use crate::error::ApiError;
use crate::state::AppState;

const ROLES: [WorkspaceRole; 3] = [
    WorkspaceRole::Admin,
    WorkspaceRole::Member,
    WorkspaceRole::Viewer,
];

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

/// Renders Workspaces with `view` (`?new=1` opens the New workspace form).
async fn render_workspaces(state: &AppState, s: &SignedIn, view: View) -> Response {
    let page = async {
        let mut workspaces: Vec<(String, String)> = super::workspaces_of(state, s)
            .await?
            .into_iter()
            .map(|w| (w.id, w.name))
            .collect();
        workspaces.sort_by_key(|w| w.1.to_lowercase());
        let can_create = state.may_create_workspaces(&s.p);
        let asked = view.sticky.is_some() || view.query().get("new").is_some_and(|v| v == "1");
        Ok(WorkspacesPage {
            c: s.chrome("Workspaces", "workspaces", &view),
            workspaces,
            can_create,
            show_form: asked && can_create,
            name: view.field("name").to_owned(),
        })
    }
    .await;
    view.respond(s, "workspaces", page)
}

/// `GET /workspaces` (`?new=1` opens the New workspace form).
pub async fn list(v: Visit) -> Response {
    render_workspaces(&v.state, &v.s, v.view).await
}

/// `POST /workspaces`: create (org admins), then open it.
pub async fn create(State(state): State<AppState>, Form { s, data }: Form) -> Response {
    let name = data.get("name").unwrap_or("");
    match state.create_workspace(&s.p, name).await {
        Ok(ws) => s.done(
            &format!("/workspaces/{}", ws.id),
            Flash::new("workspace").subject(ws.name),
        ),
        Err(e) => render_workspaces(&state, &s, View::failed(&state, &e, data)).await,
    }
}

/// Renders workspace `ws_ref` with `view`.
async fn render_workspace(state: &AppState, s: &SignedIn, ws_ref: &str, view: View) -> Response {
    let now = state.clock.now();
    let page = async {
        let ws = state.get_workspace(&s.p, ws_ref).await?;
        let projects = match state
            .list_projects(&s.p, &ws.id, &page_request(200, None))
            .await
        {
            Ok(p) => p.items,
            Err(ApiError::Forbidden(_)) => Vec::new(),
            Err(e) => return Err(e),
        };
        let role = if s.user.role.is_org_admin() {
            format!("organization {}", s.user.role.as_str())
        } else {
            s.user
                .workspace_role(Some(&ws.id))
                .map(|r| r.as_str().to_owned())
                .unwrap_or_default()
        };
        Ok(WorkspacePage {
            c: s.chrome(ws.name.clone(), "workspaces", &view),
            can_write: state.may_write_projects(&s.p, &ws.id),
            ws_id: ws.id,
            ws_name: ws.name,
            role,
            projects: projects
                .into_iter()
                .map(|p| (p.id, p.name, p.description, when(p.created_at, now)))
                .collect(),
            project_name: view.field("name").to_owned(),
            project_description: view.field("description").to_owned(),
        })
    }
    .await;
    view.respond(s, "workspaces", page)
}

/// `GET /workspaces/{ws}`.
pub async fn show(Path(ws): Path<String>, v: Visit) -> Response {
    render_workspace(&v.state, &v.s, &ws, v.view).await
}

/// `POST /workspaces/{ws}/projects`.
pub async fn create_project(
    State(state): State<AppState>,
    Path(ws): Path<String>,
    Form { s, data }: Form,
) -> Response {
    let req = CreateProjectRequest {
        name: data.get("name").unwrap_or("").to_owned(),
        description: data.text("description"),
    };
    match state.create_project(&s.p, &ws, req).await {
        Ok(project) => s.done(
            &format!("/workspaces/{ws}"),
            Flash::new("project").subject(project.name),
        ),
        Err(e) => render_workspace(&state, &s, &ws, View::failed(&state, &e, data)).await,
    }
}

/// `GET /workspaces/{ws}/settings`.
pub async fn settings(Path(ws): Path<String>, Visit { state, s, view }: Visit) -> Response {
    let page = state.get_workspace(&s.p, &ws).await.map(|ws| SettingsPage {
        c: s.chrome(format!("Settings · {}", ws.name), "workspaces", &view),
        ws_id: ws.id,
        ws_name: ws.name,
    });
    view.respond(&s, "workspaces", page)
}

/// Renders the members of `ws_ref` with `view` (`?cursor=` pages).
async fn render_members(state: &AppState, s: &SignedIn, ws_ref: &str, view: View) -> Response {
    let now = state.clock.now();
    let page = async {
        let ws = state.get_workspace(&s.p, ws_ref).await?;
        let cursor = view.query().get("cursor").cloned();
        let members = state
            .list_members(&s.p, &ws.id, &page_request(100, cursor.as_ref()))
            .await?;
        let chosen = WorkspaceRole::parse(view.field("role")).unwrap_or(WorkspaceRole::Member);
        let next_url = members.next_cursor.as_ref().map(|cur| {
            format!(
                "/workspaces/{}/settings/members?cursor={}",
                ws.id,
                encode(cur)
            )
        });
        Ok(MembersPage {
            c: s.chrome(format!("Members · {}", ws.name), "workspaces", &view),
            can_manage: state.may_manage_members(&s.p, &ws.id),
            members: members
                .items
                .into_iter()
                .map(|m| MemberRow {
                    is_self: m.user_id == s.user.id,
                    roles: role_choices(ROLES, WorkspaceRole::as_str, m.role),
                    user_id: m.user_id,
                    username: m.username,
                    role: m.role.as_str(),
                    added: when(m.created_at, now),
                })
                .collect(),
            ws_id: ws.id,
            ws_name: ws.name,
            add_username: view.field("username").to_owned(),
            add_roles: role_choices(ROLES, WorkspaceRole::as_str, chosen),
            next_url,
        })
    }
    .await;
    view.respond(s, "workspaces", page)
}

/// `GET /workspaces/{ws}/settings/members`.
pub async fn members(Path(ws): Path<String>, v: Visit) -> Response {
    render_members(&v.state, &v.s, &ws, v.view).await
}

fn parse_role(form: &FormData) -> Result<WorkspaceRole, ApiError> {
    form.get("role")
        .and_then(WorkspaceRole::parse)
        .ok_or_else(|| ApiError::field("role", "choose a role: admin, member or viewer"))
}

/// Back to the members page with `flash`, or the page with the refusal (`refill`: the
/// form filled in again).
async fn members_answer(
    state: &AppState,
    s: &SignedIn,
    ws: &str,
    (data, refill): (FormData, bool),
    result: Result<Flash, ApiError>,
) -> Response {
    let back = data.back_or(&format!("/workspaces/{ws}/settings/members"));
    match result {
        Ok(flash) => s.done(&back, flash),
        Err(e) if refill => render_members(state, s, ws, View::failed(state, &e, data)).await,
        Err(e) => render_members(state, s, ws, View::refused(state, &e, back)).await,
    }
}

/// `POST /workspaces/{ws}/settings/members`: add a member by username.
pub async fn add_member(
    State(state): State<AppState>,
    Path(ws): Path<String>,
    Form { s, data }: Form,
) -> Response {
    let result = async {
        let role = parse_role(&data)?;
        let username = data
            .text("username")
            .ok_or_else(|| ApiError::field("username", "enter the username to add"))?;
        let user_id = state.find_user_for_membership(&s.p, &ws, &username).await?;
        let member = state.put_member(&s.p, &ws, &user_id, role).await?;
        Ok(Flash::new("member-added").subject(member.username))
    }
    .await;
    members_answer(&state, &s, &ws, (data, true), result).await
}

/// `POST /workspaces/{ws}/settings/members/{user}/role`.
pub async fn change_member_role(
    State(state): State<AppState>,
    Path((ws, user)): Path<(String, String)>,
    Form { s, data }: Form,
) -> Response {
    let result = async {
        let role = parse_role(&data)?;
        let member = state.put_member(&s.p, &ws, &user, role).await?;
        Ok(Flash::new("member-role").subject(member.username))
    }
    .await;
    members_answer(&state, &s, &ws, (data, false), result).await
}

/// `POST /workspaces/{ws}/settings/members/{user}/remove`.
pub async fn remove_member(
    State(state): State<AppState>,
    Path((ws, user)): Path<(String, String)>,
    Form { s, data }: Form,
) -> Response {
    let result = state
        .remove_member(&s.p, &ws, &user)
        .await
        .map(|_| Flash::new("member-removed"));
    members_answer(&state, &s, &ws, (data, false), result).await
}
