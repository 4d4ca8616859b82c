//! Project routes, including `/projects` which takes the workspace from the token.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use latchkey_proto::{CreateProjectRequest, ErrorBody, Page, Project};

use crate::auth::Principal;
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiQuery, PageParams};
use crate::state::AppState;

/// Projects of a workspace.
#[utoipa::path(get, path = "/api/v1/workspaces/{ws}/projects", tag = "projects",
    params(("ws" = String, Path), ("limit" = Option<u32>, Query), ("cursor" = Option<String>, Query)),
    responses((status = 200, body = Page<Project>)))]
pub async fn list(
    State(state): State<AppState>,
    p: Principal,
    Path(ws): Path<String>,
    ApiQuery(page): ApiQuery<PageParams>,
) -> Result<Json<Page<Project>>, ApiError> {
    Ok(Json(state.list_projects(&p, &ws, &page.to_page()?).await?))
}

/// Create a project in a workspace.
#[utoipa::path(post, path = "/api/v1/workspaces/{ws}/projects", tag = "projects", params(("ws" = String, Path)),
    request_body = CreateProjectRequest,
    responses((status = 201, body = Project), (status = 403, body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    p: Principal,
    Path(ws): Path<String>,
    ApiJson(req): ApiJson<CreateProjectRequest>,
) -> Result<(StatusCode, Json<Project>), ApiError> {
    Ok((
        StatusCode::CREATED,
        Json(state.create_project(&p, &ws, req).await?),
    ))
}

/// Delete a project (and the tokens bound only to it).
#[utoipa::path(delete, path = "/api/v1/workspaces/{ws}/projects/{id}", tag = "projects",
    params(("ws" = String, Path), ("id" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn delete(
    State(state): State<AppState>,
    p: Principal,
    Path((ws, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    state.delete_project(&p, &ws, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Projects of the token's workspace.
#[utoipa::path(get, path = "/projects", tag = "projects",
    params(("limit" = Option<u32>, Query), ("cursor" = Option<String>, Query)),
    responses((status = 200, body = Page<Project>), (status = 422, body = ErrorBody)))]
pub async fn list_for_token(
    State(state): State<AppState>,
    p: Principal,
    ApiQuery(page): ApiQuery<PageParams>,
) -> Result<Json<Page<Project>>, ApiError> {
    let ws = p.token_workspace()?;
    Ok(Json(state.list_projects(&p, &ws, &page.to_page()?).await?))
}

/// Create a project in the token's workspace (the RI Platform sample's call).
#[utoipa::path(post, path = "/projects", tag = "projects", request_body = CreateProjectRequest,
    responses((status = 201, body = Project), (status = 422, body = ErrorBody)))]
pub async fn create_for_token(
    State(state): State<AppState>,
    p: Principal,
    ApiJson(req): ApiJson<CreateProjectRequest>,
) -> Result<(StatusCode, Json<Project>), ApiError> {
    let ws = p.token_workspace()?;
    Ok((
        StatusCode::CREATED,
        Json(state.create_project(&p, &ws, req).await?),
    ))
}
