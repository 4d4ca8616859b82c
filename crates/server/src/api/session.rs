//! `POST /api/v1/session` and `DELETE /api/v1/session`.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use latchkey_proto::{ErrorBody, SignInRequest, User};

use crate::auth::{Principal, SESSION_COOKIE};
use crate::error::ApiError;
use crate::extract::{ApiJson, ClientIp};
use crate::state::AppState;

/// The `Set-Cookie` value for a session (or for clearing it with `max_age` 0).
pub fn session_cookie_header(state: &AppState, value: &str, max_age: u64) -> Option<HeaderValue> {
    let secure = if state.config.behind_tls() {
        "; Secure"
    } else {
        ""
    };
    HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}"
    ))
    .ok()
}

/// Sign in.
#[utoipa::path(post, path = "/api/v1/session", tag = "session", security(()), request_body = SignInRequest,
    responses((status = 200, body = User, description = "Signed in; the session cookie is set"),
              (status = 401, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn sign_in(
    State(state): State<AppState>,
    ip: ClientIp,
    ApiJson(req): ApiJson<SignInRequest>,
) -> Result<Response, ApiError> {
    let signed_in = state.sign_in(&req.username, &req.password, ip).await?;
    let mut response = (StatusCode::OK, Json(signed_in.user)).into_response();
    if let Some(cookie) = session_cookie_header(&state, &signed_in.secret, signed_in.max_age_secs) {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// Sign out: the session ends for good.
#[utoipa::path(delete, path = "/api/v1/session", tag = "session",
    responses((status = 204, description = "Signed out"), (status = 401, body = ErrorBody),
              (status = 400, body = ErrorBody, description = "`bad_request`: the caller is a token, not a console session")))]
pub async fn sign_out(State(state): State<AppState>, p: Principal) -> Result<Response, ApiError> {
    state.sign_out(&p).await?;
    let mut response = StatusCode::NO_CONTENT.into_response();
    if let Some(cookie) = session_cookie_header(&state, "", 0) {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    Ok(response)
}
