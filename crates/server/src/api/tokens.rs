//! Token routes.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use latchkey_proto::{
    BulkRevokeRequest, BulkRevokeResponse, CreateTokenRequest, CreatedToken, ErrorBody, Page,
    RevealedToken, RotateTokenRequest, Token, TokenState, TokenType, TokenUsage,
    UpdateTokenRequest, VerifyRequest, VerifyResponse,
};
use serde::Deserialize;

use crate::auth::{MaybePrincipal, Principal};
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiQuery, ClientIp, OptionalJson, PageParams};
use crate::service::{InventoryFormat, InventoryQuery};
use crate::state::AppState;

/// An action body that must be empty or `{}`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmptyBody {}

/// A response holding a secret must never be cached.
fn no_store(status: StatusCode, body: impl serde::Serialize) -> Response {
    let mut response = (status, Json(body)).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Create a token in a workspace. The answer is the only one that ever holds the secret.
#[utoipa::path(post, path = "/api/v1/workspaces/{ws}/tokens", tag = "tokens",
    params(("ws" = String, Path, description = "Workspace id or name")),
    request_body = CreateTokenRequest,
    responses((status = 201, body = CreatedToken), (status = 403, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    p: Principal,
    Path(ws): Path<String>,
    ApiJson(req): ApiJson<CreateTokenRequest>,
) -> Result<Response, ApiError> {
    let created = state.create_token(&p, &ws, req).await?;
    Ok(no_store(StatusCode::CREATED, created))
}

/// Tokens of a workspace that the caller may see.
#[utoipa::path(get, path = "/api/v1/workspaces/{ws}/tokens", tag = "tokens",
    params(("ws" = String, Path), ("limit" = Option<u32>, Query), ("cursor" = Option<String>, Query)),
    responses((status = 200, body = Page<Token>), (status = 403, body = ErrorBody)))]
pub async fn list_in_workspace(
    State(state): State<AppState>,
    p: Principal,
    Path(ws): Path<String>,
    ApiQuery(page): ApiQuery<PageParams>,
) -> Result<Json<Page<Token>>, ApiError> {
    Ok(Json(
        state
            .list_workspace_tokens(&p, &ws, &page.to_page()?)
            .await?,
    ))
}

/// The caller's own tokens in every workspace.
#[utoipa::path(get, path = "/api/v1/me/tokens", tag = "tokens",
    params(("limit" = Option<u32>, Query), ("cursor" = Option<String>, Query)),
    responses((status = 200, body = Page<Token>), (status = 401, body = ErrorBody)))]
pub async fn list_mine(
    State(state): State<AppState>,
    p: Principal,
    ApiQuery(page): ApiQuery<PageParams>,
) -> Result<Json<Page<Token>>, ApiError> {
    Ok(Json(state.list_my_tokens(&p, &page.to_page()?).await?))
}

/// Every token the caller may see, across workspaces (org admins: the org's; members:
/// their own and the `client` and `frontend` tokens of their workspaces), filtered; all
/// filters are optional and apply together. `format=csv` answers every matching token as
/// `text/csv` (a header row, no secrets; a cell starting with `=`, `+`, `-` or `@` is
/// prefixed with `'`); it does not page, so `limit` and `cursor` are checked but not used.
#[utoipa::path(get, path = "/api/v1/tokens", tag = "tokens",
    params(
        ("type" = Option<TokenType>, Query, description = "Only this type"),
        ("state" = Option<TokenState>, Query, description = "Only this state, as lists show it"),
        ("workspace" = Option<String>, Query, description = "Only tokens acting in this workspace (id or name)"),
        ("owner" = Option<String>, Query, description = "Only tokens of this owner (user id or username)"),
        ("q" = Option<String>, Query, description = "Only tokens whose name contains this (ASCII letters compared without case)"),
        ("created_before" = Option<String>, Query, description = "Only tokens created before this RFC 3339 time or date (YYYY-MM-DD, 00:00 UTC)"),
        ("expires_before" = Option<String>, Query, description = "Only tokens expiring before this time or date (never-expiring tokens are left out)"),
        ("last_used_before" = Option<String>, Query, description = "Only tokens last used before this time or date (never-used tokens are left out)"),
        ("never_used" = Option<bool>, Query, description = "true: only tokens never used; false: only tokens used at least once"),
        ("format" = Option<String>, Query, description = "json (default) or csv"),
        ("limit" = Option<u32>, Query), ("cursor" = Option<String>, Query)),
    responses((status = 200, description = "A page of tokens, or with `format=csv` every matching token",
               content((Page<Token> = "application/json"), (String = "text/csv"))),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
pub async fn inventory(
    State(state): State<AppState>,
    p: Principal,
    ApiQuery(query): ApiQuery<InventoryQuery>,
) -> Result<Response, ApiError> {
    let (filter, format, page) = query.parse()?;
    match format {
        InventoryFormat::Json => {
            Ok(Json(state.list_inventory(&p, &filter, &page).await?).into_response())
        }
        InventoryFormat::Csv => {
            let csv = state.inventory_csv(&p, &filter).await?;
            Ok((
                [
                    (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
                    (
                        header::CONTENT_DISPOSITION,
                        "attachment; filename=\"tokens.csv\"",
                    ),
                    (header::CACHE_CONTROL, "no-store"),
                ],
                csv,
            )
                .into_response())
        }
    }
}

/// Revoke up to 1000 tokens in one transaction, each with its own audit event. Every id
/// is answered: in `revoked`, or in `skipped` with why (`not_found`: unknown or not
/// visible; `forbidden`: visible but not the caller's to manage; `already_revoked`;
/// `expired`; `duplicate`).
#[utoipa::path(post, path = "/api/v1/tokens/bulk-revoke", tag = "tokens",
    request_body = BulkRevokeRequest,
    responses((status = 200, body = BulkRevokeResponse), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn bulk_revoke(
    State(state): State<AppState>,
    p: Principal,
    ApiJson(req): ApiJson<BulkRevokeRequest>,
) -> Result<Json<BulkRevokeResponse>, ApiError> {
    Ok(Json(state.bulk_revoke(&p, req).await?))
}

/// One token's metadata.
#[utoipa::path(get, path = "/api/v1/tokens/{id}", tag = "tokens", params(("id" = String, Path)),
    responses((status = 200, body = Token), (status = 404, body = ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<Json<Token>, ApiError> {
    Ok(Json(state.get_token(&p, &id).await?))
}

/// How a token has been used lately: the last successful use, the last 5 distinct
/// addresses and the uses per UTC day over 90 days. Counted in memory by the nodes and
/// flushed with the last-used batch (this node's pending uses are flushed first). For
/// whoever may see the token (404 otherwise); a token caller needs `tokens:read`.
#[utoipa::path(get, path = "/api/v1/tokens/{id}/usage", tag = "tokens", params(("id" = String, Path)),
    responses((status = 200, body = TokenUsage), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody)))]
pub async fn usage(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<Json<TokenUsage>, ApiError> {
    Ok(Json(state.token_usage(&p, &id).await?))
}

/// Change a token's verify-time policy: `metadata`, `allowed_ips`, `rate_limit`,
/// `remaining_uses` (uses from now on), `refill`. Fields left out stay; `null` clears.
/// A token changing its own policy may only narrow it (403 otherwise).
#[utoipa::path(patch, path = "/api/v1/tokens/{id}", tag = "tokens", params(("id" = String, Path)),
    request_body = UpdateTokenRequest,
    responses((status = 200, body = Token), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn update(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<UpdateTokenRequest>,
) -> Result<Json<Token>, ApiError> {
    Ok(Json(state.update_token(&p, &id, req).await?))
}

/// Delete a token for good.
#[utoipa::path(delete, path = "/api/v1/tokens/{id}", tag = "tokens", params(("id" = String, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.delete_token(&p, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Revoke a token; it stops working at once.
#[utoipa::path(post, path = "/api/v1/tokens/{id}/revoke", tag = "tokens", params(("id" = String, Path)),
    responses((status = 200, body = Token), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn revoke(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    OptionalJson(_): OptionalJson<EmptyBody>,
) -> Result<Json<Token>, ApiError> {
    Ok(Json(state.revoke_token(&p, &id).await?))
}

/// Re-approve a revoked token.
#[utoipa::path(post, path = "/api/v1/tokens/{id}/restore", tag = "tokens", params(("id" = String, Path)),
    responses((status = 200, body = Token), (status = 409, body = ErrorBody)))]
pub async fn restore(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    OptionalJson(_): OptionalJson<EmptyBody>,
) -> Result<Json<Token>, ApiError> {
    Ok(Json(state.restore_token(&p, &id).await?))
}

/// Approve a pending token (→ `active`): an org admin who did not create it. 403 for its
/// creator, members and workspace tokens; 409 when it is not pending (or has expired).
#[utoipa::path(post, path = "/api/v1/tokens/{id}/approve", tag = "tokens", params(("id" = String, Path)),
    responses((status = 200, body = Token), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn approve(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    OptionalJson(_): OptionalJson<EmptyBody>,
) -> Result<Json<Token>, ApiError> {
    Ok(Json(state.decide_token(&p, &id, true).await?))
}

/// Deny a pending token (→ `denied`, final; it answers checks as `revoked`): the same
/// callers and answers as approve.
#[utoipa::path(post, path = "/api/v1/tokens/{id}/deny", tag = "tokens", params(("id" = String, Path)),
    responses((status = 200, body = Token), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn deny(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    OptionalJson(_): OptionalJson<EmptyBody>,
) -> Result<Json<Token>, ApiError> {
    Ok(Json(state.decide_token(&p, &id, false).await?))
}

/// Give a token a new secret; the old one works for `grace_seconds`. A retry with the same
/// `Idempotency-Key` header (within 24 h) answers the same secret.
#[utoipa::path(post, path = "/api/v1/tokens/{id}/rotate", tag = "tokens",
    params(("id" = String, Path),
           ("Idempotency-Key" = Option<String>, Header, description = "A retry with the same key within 24 h answers the same secret; the same key with another body is 422")),
    request_body(content = Option<RotateTokenRequest>),
    responses((status = 200, body = CreatedToken), (status = 409, body = ErrorBody)))]
pub async fn rotate(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    headers: axum::http::HeaderMap,
    OptionalJson(req): OptionalJson<RotateTokenRequest>,
) -> Result<Response, ApiError> {
    let key = match headers.get("idempotency-key") {
        Some(v) => Some(v.to_str().map_err(|_| {
            ApiError::field("Idempotency-Key", "Idempotency-Key must be visible ASCII")
        })?),
        None => None,
    };
    let rotated = state.rotate_token(&p, &id, req, key).await?;
    Ok(no_store(StatusCode::OK, rotated))
}

/// Show a recoverable token's secret again (its type was in the org's `recoverable_types`
/// when it was created or last rotated). For whoever may see the token, except that a
/// personal or legacy token's secret goes to its owner only (403); a token caller needs
/// `tokens:write`. 409 `not_recoverable` when no secret is kept or the token does not work
/// now (revoked, expired, suspended, type disabled). Every reveal is audited
/// (`token.revealed`) and throttled per caller (`throttle.reveals`, then 429).
#[utoipa::path(post, path = "/api/v1/tokens/{id}/reveal", tag = "tokens", params(("id" = String, Path)),
    responses((status = 200, body = RevealedToken), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn reveal(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    OptionalJson(_): OptionalJson<EmptyBody>,
) -> Result<Response, ApiError> {
    let revealed = state.reveal_token(&p, &id).await?;
    Ok(no_store(StatusCode::OK, revealed))
}

/// Check a token. Always 200 for a well-formed request; failures are throttled per IP.
/// Anonymous callers get what a resource server needs: `owner_username`, `created_by`,
/// `last_used_at` and `last_used_ip` are `null` unless the caller authenticates as
/// someone who may see the token (or may introspect).
#[utoipa::path(post, path = "/api/v1/tokens/verify", tag = "tokens", security((), ("bearer" = [])),
    request_body = VerifyRequest,
    responses((status = 200, body = VerifyResponse), (status = 401, body = ErrorBody),
              (status = 429, body = ErrorBody)))]
pub async fn verify(
    State(state): State<AppState>,
    ip: ClientIp,
    MaybePrincipal(caller): MaybePrincipal,
    ApiJson(req): ApiJson<VerifyRequest>,
) -> Result<Response, ApiError> {
    let used_from = crate::extract::used_from(req.ip.as_deref())?;
    let (answer, refusal) = state
        .verify_secret(&req.token, ip, used_from, caller.as_ref())
        .await?;
    let mut response = Json(answer).into_response();
    if let Some(refusal) = refusal {
        refusal.put_headers(response.headers_mut());
    }
    Ok(response)
}
