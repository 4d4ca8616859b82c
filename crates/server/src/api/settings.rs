//! Instance and org token settings routes.

use axum::Json;
use axum::extract::{Path, State};
use latchkey_proto::{
    ErrorBody, InstanceSettings, TokenSettings, UpdateInstanceSettingsRequest,
    UpdateTokenSettingsRequest,
};

use crate::auth::Principal;
use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::state::AppState;

/// Instance limits and defaults.
#[utoipa::path(get, path = "/api/v1/instance/settings", tag = "settings",
    responses((status = 200, body = InstanceSettings), (status = 403, body = ErrorBody)))]
pub async fn get_instance(
    State(state): State<AppState>,
    p: Principal,
) -> Result<Json<InstanceSettings>, ApiError> {
    Ok(Json(state.instance_settings(&p).await?))
}

/// Change instance limits and defaults (the instance owner).
#[utoipa::path(patch, path = "/api/v1/instance/settings", tag = "settings",
    request_body = UpdateInstanceSettingsRequest,
    responses((status = 200, body = InstanceSettings), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn patch_instance(
    State(state): State<AppState>,
    p: Principal,
    ApiJson(req): ApiJson<UpdateInstanceSettingsRequest>,
) -> Result<Json<InstanceSettings>, ApiError> {
    Ok(Json(state.update_instance_settings(&p, req).await?))
}

/// An org's token settings.
#[utoipa::path(get, path = "/api/v1/orgs/{org}/token-settings", tag = "settings", params(("org" = String, Path)),
    responses((status = 200, body = TokenSettings), (status = 403, body = ErrorBody)))]
pub async fn get_token_settings(
    State(state): State<AppState>,
    p: Principal,
    Path(org): Path<String>,
) -> Result<Json<TokenSettings>, ApiError> {
    Ok(Json(state.token_settings(&p, &org).await?))
}

/// Change an org's token settings; takes effect on the next request.
#[utoipa::path(patch, path = "/api/v1/orgs/{org}/token-settings", tag = "settings", params(("org" = String, Path)),
    request_body = UpdateTokenSettingsRequest,
    responses((status = 200, body = TokenSettings), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn patch_token_settings(
    State(state): State<AppState>,
    p: Principal,
    Path(org): Path<String>,
    ApiJson(req): ApiJson<UpdateTokenSettingsRequest>,
) -> Result<Json<TokenSettings>, ApiError> {
    Ok(Json(state.update_token_settings(&p, &org, req).await?))
}
