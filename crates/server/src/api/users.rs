//! User routes, `/me` and the audit log.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use latchkey_proto::{
    AuditEvent, CreateUserRequest, ErrorBody, Me, Page, UpdateUserRequest, User, UserKind,
};

use crate::auth::Principal;
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiQuery, PageParams};
use crate::service::AuditQuery;
use crate::state::AppState;

/// Who am I: the user, the org and the memberships.
#[utoipa::path(get, path = "/api/v1/me", tag = "users",
    responses((status = 200, body = Me), (status = 401, body = ErrorBody)))]
pub async fn me(State(state): State<AppState>, p: Principal) -> Result<Json<Me>, ApiError> {
    Ok(Json(state.me(&p).await?))
}

/// `GET /api/v1/users` query: `kind` and the page.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct UsersQuery {
    /// `human` or `service`.
    pub kind: Option<String>,
    /// Page size.
    pub limit: Option<String>,
    /// Cursor from the previous page.
    pub cursor: Option<String>,
}

/// Users of the org (org admins); `?kind=service` lists the service accounts.
#[utoipa::path(get, path = "/api/v1/users", tag = "users",
    params(("kind" = Option<UserKind>, Query, description = "Only users of this kind: `human` or `service`"),
           ("limit" = Option<u32>, Query), ("cursor" = Option<String>, Query)),
    responses((status = 200, body = Page<User>), (status = 403, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    p: Principal,
    ApiQuery(q): ApiQuery<UsersQuery>,
) -> Result<Json<Page<User>>, ApiError> {
    let kind = match q.kind.as_deref() {
        None => None,
        Some(text) => Some(
            UserKind::parse(text)
                .ok_or_else(|| ApiError::field("kind", "kind must be human or service"))?,
        ),
    };
    let page = PageParams {
        limit: q.limit,
        cursor: q.cursor,
    }
    .to_page()?;
    Ok(Json(state.list_users(&p, kind, &page).await?))
}

/// Create a user (org admins): a person with a password, or a service account
/// (`"kind": "service"`, no password) that never signs in and owns personal tokens org
/// admins create for it.
#[utoipa::path(post, path = "/api/v1/users", tag = "users", request_body = CreateUserRequest,
    responses((status = 201, body = User), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    p: Principal,
    ApiJson(req): ApiJson<CreateUserRequest>,
) -> Result<(StatusCode, Json<User>), ApiError> {
    Ok((StatusCode::CREATED, Json(state.create_user(&p, req).await?)))
}

/// One user (org admins, or oneself).
#[utoipa::path(get, path = "/api/v1/users/{id}", tag = "users", params(("id" = String, Path)),
    responses((status = 200, body = User), (status = 404, body = ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<Json<User>, ApiError> {
    Ok(Json(state.get_user(&p, &id).await?))
}

/// Change a user; `{"active": false}` deactivates (sessions end, tokens stop at once).
#[utoipa::path(patch, path = "/api/v1/users/{id}", tag = "users", params(("id" = String, Path)),
    request_body = UpdateUserRequest,
    responses((status = 200, body = User), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn update(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<UpdateUserRequest>,
) -> Result<Json<User>, ApiError> {
    Ok(Json(state.update_user(&p, &id, req).await?))
}

/// The audit log, filtered by workspace, actor, token, action and time.
#[utoipa::path(get, path = "/api/v1/audit-events", tag = "audit",
    params(("workspace" = Option<String>, Query), ("actor" = Option<String>, Query),
           ("token" = Option<String>, Query), ("action" = Option<String>, Query),
           ("since" = Option<String>, Query), ("until" = Option<String>, Query),
           ("limit" = Option<u32>, Query), ("cursor" = Option<String>, Query)),
    responses((status = 200, body = Page<AuditEvent>), (status = 401, body = ErrorBody)))]
pub async fn audit_events(
    State(state): State<AppState>,
    p: Principal,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> Result<Json<Page<AuditEvent>>, ApiError> {
    Ok(Json(state.list_audit(&p, q).await?))
}
