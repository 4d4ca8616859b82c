//! Interop with other services (routes): JWT exchange, JWKS, introspection, revocation, leak reports,
//! forward-auth.

use std::sync::OnceLock;

use axum::Json;
use std::net::SocketAddr;

use axum::extract::State;
use axum::extract::{ConnectInfo, Request};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use latchkey_core::ScopeSet;
use latchkey_proto::{ErrorBody, RefreshRequest, RefreshResponse, Scope};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::{AuthOutcome, Credential, MaybePrincipal, Principal};
use crate::error::ApiError;
use crate::extract::{ApiForm, ApiJson, ClientIp};
use crate::forward_auth::{self, TargetRefused};
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

/// RFC 8414 authorization server metadata: where introspection, revocation and the JWT
/// keys are, and how OAuth clients authenticate there. Latchkey issues tokens through its
/// API, not an OAuth token endpoint, so there is none (and no grant or response types).
#[utoipa::path(get, path = "/.well-known/oauth-authorization-server", tag = "integration",
    security(()), responses((status = 200, description = "RFC 8414 metadata (JSON)")))]
pub async fn oauth_metadata(State(state): State<AppState>) -> Response {
    let base = &state.public_url;
    let methods = ["client_secret_basic", "client_secret_post"];
    let scopes: Vec<&str> = Scope::ALL.iter().map(|s| s.as_str()).collect();
    let body = serde_json::json!({
        // What the access JWTs carry as `iss` (RFC 9068 wants them equal): the public
        // URL, or on PostgreSQL without one the nodes' shared `urn:latchkey:…`.
        "issuer": state.jwt.issuer(),
        "jwks_uri": format!("{base}/.well-known/jwks.json"),
        "introspection_endpoint": format!("{base}/oauth/introspect"),
        "introspection_endpoint_auth_methods_supported": methods,
        "revocation_endpoint": format!("{base}/oauth/revoke"),
        "revocation_endpoint_auth_methods_supported": methods,
        "token_endpoint_auth_methods_supported": methods,
        "scopes_supported": scopes,
        "response_types_supported": [],
        "grant_types_supported": [],
        "service_documentation": format!("{base}/api/v1/openapi.json"),
    });
    (
        [(
            header::CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=300"),
        )],
        Json(body),
    )
        .into_response()
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
        state.jwt.jwks(state.clock.now()),
    )
        .into_response()
}

/// Why an OAuth client's own authentication (RFC 6749 §2.3.1) failed: answered as RFC 6749
/// §5.2 says, `{"error": …, "error_description": …}`, with `WWW-Authenticate: Basic` on a
/// 401 (the scheme a client can retry with).
#[derive(Debug)]
pub struct OAuthClientError {
    status: StatusCode,
    error: &'static str,
    description: &'static str,
}

impl OAuthClientError {
    fn invalid_client(description: &'static str) -> OAuthClientError {
        OAuthClientError {
            status: StatusCode::UNAUTHORIZED,
            error: "invalid_client",
            description,
        }
    }
}

impl IntoResponse for OAuthClientError {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            Json(serde_json::json!({
                "error": self.error,
                "error_description": self.description,
            })),
        )
            .into_response();
        let headers = response.headers_mut();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(r#"Basic realm="latchkey", charset="UTF-8""#),
            );
        }
        response
    }
}

/// A refused OAuth request: the client's authentication, or the usual API error.
#[derive(Debug)]
pub enum OAuthRejection {
    /// The client's credentials (RFC 6749 §5.2 answer).
    Client(OAuthClientError),
    /// Anything else (the house JSON error).
    Api(ApiError),
}

impl From<ApiError> for OAuthRejection {
    fn from(e: ApiError) -> Self {
        OAuthRejection::Api(e)
    }
}

impl From<OAuthClientError> for OAuthRejection {
    fn from(e: OAuthClientError) -> Self {
        OAuthRejection::Client(e)
    }
}

impl IntoResponse for OAuthRejection {
    fn into_response(self) -> Response {
        match self {
            OAuthRejection::Client(e) => e.into_response(),
            OAuthRejection::Api(e) => e.into_response(),
        }
    }
}

/// `application/x-www-form-urlencoded` decoding of one Basic credential half (RFC 6749
/// §2.3.1 encodes the client id and secret so before joining them with `:`).
fn form_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = text.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// The OAuth client of an introspection or revocation request, when it authenticated as
/// one: `client_secret_basic` (`Authorization: Basic`) or `client_secret_post` (form
/// `client_id` and `client_secret`), the client id being the token's id and the secret
/// the token. `Ok(None)`: the request uses neither (a bearer token, a session, or
/// nothing). More than one method is refused (RFC 6749 §2.3), and every failure is the
/// same 401 `invalid_client`, whichever half was wrong.
async fn oauth_client(
    state: &AppState,
    headers: &axum::http::HeaderMap,
    ip: ClientIp,
    form_id: Option<&str>,
    form_secret: Option<&str>,
) -> Result<Option<Principal>, OAuthRejection> {
    use base64::Engine as _;
    let authorization = headers
        .get(header::AUTHORIZATION)
        .map(|v| v.to_str().unwrap_or(""));
    let basic = authorization.and_then(|v| {
        let (scheme, rest) = v.trim().split_once(' ')?;
        scheme.eq_ignore_ascii_case("basic").then(|| rest.trim())
    });
    let posted = form_id.is_some() || form_secret.is_some();
    let bearer = crate::auth::presented_secret(headers, &state.api_key_headers).is_some();
    if usize::from(basic.is_some()) + usize::from(posted) + usize::from(bearer) > 1 {
        return Err(OAuthClientError {
            status: StatusCode::BAD_REQUEST,
            error: "invalid_request",
            description: "use one way of authenticating: Basic, form client_id and \
                          client_secret, or a bearer token",
        }
        .into());
    }
    let (id, secret) = match (basic, form_id, form_secret) {
        (Some(encoded), _, _) => {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .ok()
                .and_then(|raw| String::from_utf8(raw).ok());
            let pair = decoded.as_deref().and_then(|text| {
                let (id, secret) = text.split_once(':')?;
                Some((form_decode(id)?, form_decode(secret)?))
            });
            pair.ok_or(OAuthClientError::invalid_client(
                "malformed Basic credentials: base64 of client_id:client_secret",
            ))?
        }
        (None, Some(id), Some(secret)) => (id.to_owned(), secret.to_owned()),
        (None, None, None) => return Ok(None),
        (None, _, _) => {
            return Err(OAuthClientError::invalid_client(
                "client_secret_post needs both client_id and client_secret",
            )
            .into());
        }
    };
    let bad = || OAuthClientError::invalid_client("client authentication failed");
    if id.is_empty() || secret.is_empty() {
        return Err(bad().into());
    }
    let principal = match state.authenticate_token(&secret, ip).await {
        Ok(p) => p,
        Err(ApiError::Unauthenticated { .. }) => return Err(bad().into()),
        Err(other) => return Err(other.into()),
    };
    // Sessions and access JWTs are not OAuth clients: the secret must be the token itself.
    let is_client = matches!(
        &principal.credential,
        Credential::Token { grant, jwt: false, .. } if &*grant.token.id == id.as_str()
    );
    if !is_client {
        return Err(bad().into());
    }
    Ok(Some(principal))
}

/// An RFC 7662 introspection or RFC 7009 revocation request (form-encoded): the same
/// fields for both.
#[derive(Debug, Deserialize, ToSchema)]
pub struct OAuthTokenForm {
    /// The token to check or revoke.
    pub token: String,
    /// Ignored: Latchkey tells token kinds apart by their shape.
    #[serde(default)]
    pub token_type_hint: Option<String>,
    /// `client_secret_post`: the calling token's id (with `client_secret`).
    #[serde(default)]
    pub client_id: Option<String>,
    /// `client_secret_post`: the calling token itself.
    #[serde(default)]
    pub client_secret: Option<String>,
    /// Introspection: the address the token is being used from, checked against its
    /// `allowed_ips` (omitted: a token with `allowed_ips` is inactive).
    #[serde(default)]
    pub ip: Option<String>,
}

impl OAuthTokenForm {
    /// The caller: the OAuth client the request authenticates as, else `principal` (the
    /// request's bearer token or session).
    async fn caller(
        &self,
        state: &AppState,
        headers: &axum::http::HeaderMap,
        ip: ClientIp,
        principal: Option<Principal>,
    ) -> Result<Option<Principal>, OAuthRejection> {
        let client = oauth_client(
            state,
            headers,
            ip,
            self.client_id.as_deref(),
            self.client_secret.as_deref(),
        )
        .await?;
        Ok(client.or(principal))
    }
}

/// RFC 7662 token introspection; the caller authenticates: a bearer token with the
/// `introspect` scope (or an admin token), an org admin's session, or as an OAuth client
/// (`client_secret_basic` or `client_secret_post`: client id = the token's id, secret = the
/// token). Failed client authentication answers 401 `{"error": "invalid_client"}` with
/// `WWW-Authenticate: Basic` (RFC 6749 §5.2).
#[utoipa::path(post, path = "/oauth/introspect", tag = "integration",
    security(("bearer" = []), ("client_secret_basic" = [])),
    request_body(content = OAuthTokenForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "RFC 7662 answer"),
              (status = 400, description = "invalid_request: more than one way of authenticating"),
              (status = 401, description = "No or bad credentials (ErrorBody for bearer tokens; RFC 6749 invalid_client for client authentication)"),
              (status = 403, body = ErrorBody)))]
pub async fn introspect(
    State(state): State<AppState>,
    ip: ClientIp,
    MaybePrincipal(p): MaybePrincipal,
    headers: axum::http::HeaderMap,
    ApiForm(form): ApiForm<OAuthTokenForm>,
) -> Result<Response, OAuthRejection> {
    let p = form.caller(&state, &headers, ip, p).await?;
    let used_from = crate::extract::used_from(form.ip.as_deref())?;
    let answer = state.introspect(p.as_ref(), &form.token, used_from).await?;
    let mut response = Json(answer).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// RFC 7009 token revocation; 200 also for unknown tokens. The caller authenticates as
/// for introspection (a bearer token, a session, or as an OAuth client).
#[utoipa::path(post, path = "/oauth/revoke", tag = "integration",
    security(("bearer" = []), ("client_secret_basic" = [])),
    request_body(content = OAuthTokenForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200),
              (status = 400, description = "invalid_request: more than one way of authenticating"),
              (status = 401, description = "No or bad credentials (ErrorBody for bearer tokens; RFC 6749 invalid_client for client authentication)"),
              (status = 403, body = ErrorBody)))]
pub async fn oauth_revoke(
    State(state): State<AppState>,
    ip: ClientIp,
    MaybePrincipal(p): MaybePrincipal,
    headers: axum::http::HeaderMap,
    ApiForm(form): ApiForm<OAuthTokenForm>,
) -> Result<Json<serde_json::Value>, OAuthRejection> {
    let p = form
        .caller(&state, &headers, ip, p)
        .await?
        .ok_or_else(ApiError::unauthenticated)?;
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

/// A 403 for a request forward-auth cannot judge: the reason header, no challenge (the
/// token is fine; the proxy's description of the request is not).
fn deny_plain(status: StatusCode, refused: TargetRefused) -> Response {
    let mut response = status.into_response();
    response.headers_mut().insert(
        HeaderName::from_static("x-latchkey-reason"),
        HeaderValue::from_static(refused.as_str()),
    );
    response
}

/// The `WWW-Authenticate` challenge for a refusal, from a table for the fixed reasons.
fn challenge(status: StatusCode, reason: &str) -> Option<HeaderValue> {
    let fixed: Option<&'static str> = match (status == StatusCode::UNAUTHORIZED, reason) {
        (true, "missing_token") => Some(
            r#"Bearer realm="latchkey", error="invalid_token", error_description="missing_token""#,
        ),
        (true, "bad_format") => Some(
            r#"Bearer realm="latchkey", error="invalid_token", error_description="bad_format""#,
        ),
        (true, "not_found") => {
            Some(r#"Bearer realm="latchkey", error="invalid_token", error_description="not_found""#)
        }
        (true, "rate_limited") => Some(
            r#"Bearer realm="latchkey", error="invalid_token", error_description="rate_limited""#,
        ),
        _ => None,
    };
    if let Some(text) = fixed {
        return Some(HeaderValue::from_static(text));
    }
    let text = if status == StatusCode::UNAUTHORIZED {
        format!(r#"Bearer realm="latchkey", error="invalid_token", error_description="{reason}""#)
    } else {
        format!(
            r#"Bearer realm="latchkey", error="insufficient_scope", error_description="{reason}""#
        )
    };
    HeaderValue::from_str(&text).ok()
}

fn deny(status: StatusCode, reason: &'static str) -> Response {
    let mut response = status.into_response();
    let headers = response.headers_mut();
    headers.insert(
        HeaderName::from_static("x-latchkey-reason"),
        HeaderValue::from_static(reason),
    );
    if let Some(v) = challenge(status, reason) {
        headers.insert(header::WWW_AUTHENTICATE, v);
    }
    response
}

/// `X-Latchkey-Scopes` for every scope set, built once (a set is a `u8` bit mask).
fn scopes_header(scopes: ScopeSet) -> HeaderValue {
    static TABLE: OnceLock<Vec<HeaderValue>> = OnceLock::new();
    let table = TABLE.get_or_init(|| {
        (0..=u8::MAX)
            .map(|bits| {
                let set: ScopeSet = Scope::ALL
                    .into_iter()
                    .filter(|s| bits & ScopeSet::EMPTY.with(*s).bits() != 0)
                    .collect();
                HeaderValue::from_str(&set.to_space_separated())
                    .unwrap_or(HeaderValue::from_static(""))
            })
            .collect()
    });
    table
        .get(usize::from(scopes.bits()))
        .cloned()
        .unwrap_or_else(|| HeaderValue::from_static(""))
}

/// Forward-auth for nginx `auth_request`, Traefik ForwardAuth and Envoy ext_authz: 200 with
/// `X-Latchkey-*` identity headers, 401, or 403 (a route policy refused a valid token).
/// Nothing else, because proxies turn other statuses into 500s.
#[utoipa::path(get, path = "/auth/verify", tag = "integration",
    responses((status = 200, description = "Allowed; identity in X-Latchkey-* headers"),
              (status = 401, description = "No or bad token (X-Latchkey-Reason says why)"),
              (status = 403, description = "Refused by a route policy, or (with route policies) the original request cannot be judged: X-Latchkey-Reason untrusted_proxy, missing_uri, ambiguous_uri, bad_uri, missing_method, ambiguous_method, bad_method")))]
pub async fn forward_auth(State(state): State<AppState>, req: Request) -> Response {
    // The request by value: its parts are moved out, not cloned as the `Parts` extractor does.
    let (parts, _body) = req.into_parts();
    let principal = match parts.extensions.get::<AuthOutcome>() {
        Some(AuthOutcome(Some(Ok(p)))) => p,
        Some(AuthOutcome(Some(Err(e)))) => {
            let reason = match e {
                // A valid token its own policy refuses: 403 (nginx turns other codes
                // into 500), with the reason and the rate headers.
                ApiError::TokenPolicy(refusal) => {
                    let mut response = deny(StatusCode::FORBIDDEN, refusal.reason.as_str());
                    refusal.put_headers(response.headers_mut());
                    return response;
                }
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
    let scopes = principal.effective_scopes(token.workspace_id.as_deref());
    let fa = &state.config.forward_auth;
    if !fa.routes.is_empty() {
        // Only a trusted proxy's word about the original request counts, and only in the
        // headers of its kind; anything missing, repeated or odd is refused.
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        if !peer.is_some_and(|ip| state.config.is_trusted_proxy(ip)) {
            return deny_plain(StatusCode::FORBIDDEN, TargetRefused::UntrustedProxy);
        }
        let target = fa
            .target_source()
            .map_err(|_| TargetRefused::MissingUri)
            .and_then(|source| {
                let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
                forward_auth::target(
                    &source,
                    &parts.headers,
                    path,
                    parts.method.as_str(),
                    fa.case_sensitive_paths,
                )
            });
        let target = match target {
            Ok(target) => target,
            Err(refused) => return deny_plain(StatusCode::FORBIDDEN, refused),
        };
        if let Some(rule) =
            forward_auth::matching_rule(&fa.routes, &target, fa.case_sensitive_paths)
        {
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
    }
    let mut response = StatusCode::OK.into_response();
    let headers = response.headers_mut();
    let cached = grant.forward_headers();
    let mut put = |name: &'static str, value: &Option<HeaderValue>| {
        if let Some(v) = value {
            headers.insert(HeaderName::from_static(name), v.clone());
        }
    };
    put("x-latchkey-token-id", &cached.token_id);
    put(
        "x-latchkey-token-type",
        &Some(HeaderValue::from_static(token.token_type.as_str())),
    );
    put("x-latchkey-scopes", &Some(scopes_header(scopes)));
    put("x-latchkey-workspace", &cached.workspace);
    put("x-latchkey-environment", &cached.environment);
    put("x-latchkey-projects", &cached.projects);
    if let Some(policy) = &grant.policy {
        put("x-latchkey-metadata", &policy.metadata_header);
    }
    if token.token_type.is_user_owned()
        && let Some(user) = &principal.user
    {
        put("x-latchkey-user", &user.forward_headers.0);
        put("x-latchkey-user-id", &user.forward_headers.1);
    }
    response
}
