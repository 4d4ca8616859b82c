//! Routes for other services: JWT exchange, JWKS, introspection, revocation, leak reports,
//! forward-auth.

use axum::Json;
use axum::extract::State;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use latchkey_proto::{ErrorBody, RefreshRequest, RefreshResponse, TokenType};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::{AuthOutcome, Credential, MaybePrincipal, Principal};
use crate::error::ApiError;
use crate::extract::{ApiForm, ApiJson, ClientIp};
use crate::state::AppState;

/// Exchange a personal token for a short-lived access JWT.
#[utoipa::path(post, path = "/api/v1/token/refresh", tag = "integration", security(()),
    request_body = RefreshRequest,
    responses((status = 200, body = RefreshResponse), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody, description = "token_type_not_allowed")))]
pub async fn refresh(
    State(state): State<AppState>,
    ip: ClientIp,
    ApiJson(req): ApiJson<RefreshRequest>,
) -> Result<Response, ApiError> {
    let answer = state.refresh(&req.refresh, ip).await?;
    let mut response = Json(answer).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// Public keys for the access JWTs.
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "integration", security(()),
    responses((status = 200, description = "JWK Set (OKP / Ed25519)")))]
pub async fn jwks(State(state): State<AppState>) -> Response {
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        state.jwt.jwks(),
    )
        .into_response()
}

/// RFC 7662 introspection request (form-encoded).
#[derive(Debug, Deserialize, ToSchema)]
pub struct IntrospectForm {
    /// The token to check.
    pub token: String,
    /// Ignored: Latchkey tells token kinds apart by their shape.
    #[serde(default)]
    pub token_type_hint: Option<String>,
}

/// RFC 7662 token introspection; the caller authenticates.
#[utoipa::path(post, path = "/oauth/introspect", tag = "integration",
    request_body(content = IntrospectForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "RFC 7662 answer"), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody)))]
pub async fn introspect(
    State(state): State<AppState>,
    MaybePrincipal(p): MaybePrincipal,
    ApiForm(form): ApiForm<IntrospectForm>,
) -> Result<Response, ApiError> {
    let answer = state.introspect(p.as_ref(), &form.token).await?;
    let mut response = Json(answer).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// RFC 7009 revocation request (form-encoded).
#[derive(Debug, Deserialize, ToSchema)]
pub struct RevokeForm {
    /// The token to revoke.
    pub token: String,
    /// Ignored.
    #[serde(default)]
    pub token_type_hint: Option<String>,
}

/// RFC 7009 token revocation; 200 also for unknown tokens.
#[utoipa::path(post, path = "/oauth/revoke", tag = "integration",
    request_body(content = RevokeForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn oauth_revoke(
    State(state): State<AppState>,
    p: Principal,
    ApiForm(form): ApiForm<RevokeForm>,
) -> Result<Json<serde_json::Value>, ApiError> {
    state.oauth_revoke(&p, &form.token).await?;
    Ok(Json(serde_json::json!({})))
}

/// A leak report.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LeakReport {
    /// Secrets found somewhere they should not be (at most 100).
    pub tokens: Vec<String>,
}

/// Report leaked secrets: each one that exists is revoked and cannot be restored. The
/// answer is the same whatever the secrets were.
#[utoipa::path(post, path = "/api/v1/credentials/revoke", tag = "integration", security(()),
    request_body = LeakReport, responses((status = 202), (status = 422, body = ErrorBody)))]
pub async fn report_leaked(
    State(state): State<AppState>,
    ip: ClientIp,
    ApiJson(report): ApiJson<LeakReport>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    state.report_leaked(&report.tokens, ip).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(serde_json::json!({"status": "accepted", "received": report.tokens.len()})),
    ))
}

fn header_str<'a>(headers: &'a HeaderMap, names: &[&str]) -> Option<&'a str> {
    names
        .iter()
        .find_map(|n| headers.get(*n).and_then(|v| v.to_str().ok()))
}

fn deny(status: StatusCode, reason: &str) -> Response {
    let mut response = status.into_response();
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(reason) {
        headers.insert(HeaderName::from_static("x-latchkey-reason"), v);
    }
    let challenge = if status == StatusCode::UNAUTHORIZED {
        format!(r#"Bearer realm="latchkey", error="invalid_token", error_description="{reason}""#)
    } else {
        format!(r#"Bearer realm="latchkey", error="insufficient_scope", error_description="{reason}""#)
    };
    if let Ok(v) = HeaderValue::from_str(&challenge) {
        headers.insert(header::WWW_AUTHENTICATE, v);
    }
    response
}

/// Forward-auth for nginx `auth_request`, Traefik ForwardAuth and Envoy ext_authz: 200 with
/// `X-Latchkey-*` identity headers, 401, or 403 (a route policy refused a valid token).
/// Nothing else, because proxies turn other statuses into 500s.
#[utoipa::path(get, path = "/auth/verify", tag = "integration",
    responses((status = 200, description = "Allowed; identity in X-Latchkey-* headers"),
              (status = 401, description = "No or bad token"), (status = 403, description = "Refused by a route policy")))]
pub async fn forward_auth(State(state): State<AppState>, parts: Parts) -> Response {
    let principal = match parts.extensions.get::<AuthOutcome>() {
        Some(AuthOutcome(Some(Ok(p)))) => p.clone(),
        Some(AuthOutcome(Some(Err(e)))) => {
            let reason = match e {
                ApiError::Unauthenticated {
                    reason: Some(r), ..
                } => r.as_str(),
                ApiError::RateLimited { .. } => "rate_limited",
                ApiError::Unavailable(_) => "unavailable",
                _ => "unauthenticated",
            };
            return deny(StatusCode::UNAUTHORIZED, reason);
        }
        _ => return deny(StatusCode::UNAUTHORIZED, "missing_token"),
    };
    let Credential::Token { grant, .. } = &principal.credential else {
        return deny(StatusCode::UNAUTHORIZED, "missing_token");
    };
    let token = &grant.token;
    let path = header_str(&parts.headers, &["x-original-uri", "x-forwarded-uri"]).unwrap_or("/");
    let method = header_str(&parts.headers, &["x-original-method", "x-forwarded-method"])
        .unwrap_or(parts.method.as_str());
    let scopes = principal.effective_scopes(token.workspace_id.as_deref());
    if let Some(rule) = state.forward_auth_rule(method, path) {
        if let Some(types) = &rule.types
            && !types.contains(&token.token_type)
        {
            return deny(StatusCode::FORBIDDEN, "token_type_not_allowed");
        }
        if let Some(required) = &rule.scopes
            && !required.iter().all(|s| scopes.contains(*s))
        {
            return deny(StatusCode::FORBIDDEN, "insufficient_scope");
        }
    }
    let mut response = StatusCode::OK.into_response();
    let headers = response.headers_mut();
    let mut put = |name: &'static str, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            headers.insert(HeaderName::from_static(name), v);
        }
    };
    put("x-latchkey-token-id", &token.id);
    put("x-latchkey-token-type", token.token_type.as_str());
    put("x-latchkey-scopes", &scopes.to_space_separated());
    if let Some(ws) = &token.workspace_id {
        put("x-latchkey-workspace", ws);
    }
    if let Some(env) = &token.environment {
        put("x-latchkey-environment", env);
    }
    if !token.projects.is_empty() {
        put("x-latchkey-projects", &token.projects.join(","));
    }
    if token.token_type.is_user_owned() || token.token_type == TokenType::Personal {
        if let Some(user) = &principal.user {
            put("x-latchkey-user", &user.username);
            put("x-latchkey-user-id", &user.id);
        }
    }
    response
}
