//! Workspace and membership routes.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use latchkey_proto::{
    CreateWorkspaceRequest, ErrorBody, Member, Page, PutMemberRequest, Workspace,
};

use crate::auth::Principal;
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiQuery, PageParams};
use crate::state::AppState;

/// Workspaces the caller may enter.
#[utoipa::path(get, path = "/api/v1/workspaces", tag = "workspaces",
    params(("limit" = Option<u32>, Query), ("cursor" = Option<String>, Query)),
    responses((status = 200, body = Page<Workspace>)))]
pub async fn list(
    State(state): State<AppState>,
    p: Principal,
    ApiQuery(page): ApiQuery<PageParams>,
) -> Result<Json<Page<Workspace>>, ApiError> {
    Ok(Json(state.list_workspaces(&p, &page.to_page()?).await?))
}

/// Create a workspace (org admins).
#[utoipa::path(post, path = "/api/v1/workspaces", tag = "workspaces", request_body = CreateWorkspaceRequest,
    responses((status = 201, body = Workspace), (status = 409, body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    p: Principal,
    ApiJson(req): ApiJson<CreateWorkspaceRequest>,
) -> Result<(StatusCode, Json<Workspace>), ApiError> {
    Ok((
        StatusCode::CREATED,
        Json(state.create_workspace(&p, &req.name).await?),
    ))
}

/// One workspace (by id or name).
#[utoipa::path(get, path = "/api/v1/workspaces/{ws}", tag = "workspaces", params(("ws" = String, Path)),
    responses((status = 200, body = Workspace), (status = 404, body = ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    p: Principal,
    Path(ws): Path<String>,
) -> Result<Json<Workspace>, ApiError> {
    Ok(Json(state.get_workspace(&p, &ws).await?))
}

/// Members of a workspace.
#[utoipa::path(get, path = "/api/v1/workspaces/{ws}/members", tag = "workspaces",
    params(("ws" = String, Path), ("limit" = Option<u32>, Query), ("cursor" = Option<String>, Query)),
    responses((status = 200, body = Page<Member>), (status = 403, body = ErrorBody)))]
pub async fn list_members(
    State(state): State<AppState>,
    p: Principal,
    Path(ws): Path<String>,
    ApiQuery(page): ApiQuery<PageParams>,
) -> Result<Json<Page<Member>>, ApiError> {
    Ok(Json(state.list_members(&p, &ws, &page.to_page()?).await?))
}

/// Add a member or change their role.
#[utoipa::path(put, path = "/api/v1/workspaces/{ws}/members/{user}", tag = "workspaces",
    params(("ws" = String, Path), ("user" = String, Path)), request_body = PutMemberRequest,
    responses((status = 200, body = Member), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn put_member(
    State(state): State<AppState>,
    p: Principal,
    Path((ws, user)): Path<(String, String)>,
    ApiJson(req): ApiJson<PutMemberRequest>,
) -> Result<Json<Member>, ApiError> {
    Ok(Json(state.put_member(&p, &ws, &user, req.role).await?))
}

/// Remove a member.
#[utoipa::path(delete, path = "/api/v1/workspaces/{ws}/members/{user}", tag = "workspaces",
    params(("ws" = String, Path), ("user" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn remove_member(
    State(state): State<AppState>,
    p: Principal,
    Path((ws, user)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    state.remove_member(&p, &ws, &user).await?;
    Ok(StatusCode::NO_CONTENT)
}
