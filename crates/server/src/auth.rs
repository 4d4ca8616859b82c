//! Who is calling: credentials from headers or the session cookie, resolved once per
//! request by a middleware into a [`Principal`], and the permission checks on it.

use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::Response;
use latchkey_core::policy::{Permission, scope_for, user_may};
use latchkey_core::{NewAuditEvent, ScopeSet};
use latchkey_proto::{OrgRole, Reason, Scope, TokenType, WorkspaceRole};

use crate::error::ApiError;
use crate::extract::{ClientIp, client_ip};
use crate::service::credentials::Denied;
use crate::state::AppState;
use crate::verifier::{Grant, UserView, VerifyError};

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "latchkey_session";
/// Response header carrying a token's expiry.
pub const TOKEN_EXPIRATION_HEADER: &str = "latchkey-token-expiration";

/// How the caller authenticated.
#[derive(Debug, Clone)]
pub enum Credential {
    /// The console session cookie.
    Session {
        /// Session id.
        session_id: String,
    },
    /// An API token, or an access JWT standing for one.
    Token {
        /// The token's grant (for a JWT: its personal token's).
        grant: Arc<Grant>,
        /// Scopes this credential carries (a JWT's `scp`, narrowed by the token's).
        scopes: ScopeSet,
        /// `Latchkey-Token-Expiration` value (for a JWT: its `exp`).
        expiration: Option<HeaderValue>,
        /// Whether the credential was an access JWT.
        jwt: bool,
    },
}

/// The authenticated caller.
#[derive(Debug, Clone)]
pub struct Principal {
    /// The acting user: the session's user, or a user-owned token's owner; `None` for
    /// workspace tokens.
    pub user: Option<Arc<UserView>>,
    /// How they authenticated.
    pub credential: Credential,
    /// Client IP.
    pub ip: ClientIp,
}

impl Principal {
    /// The acting user's id.
    pub fn user_id(&self) -> Option<&str> {
        self.user.as_ref().map(|u| u.id.as_str())
    }

    /// The token used, if any.
    pub fn token(&self) -> Option<&Arc<Grant>> {
        match &self.credential {
            Credential::Token { grant, .. } => Some(grant),
            Credential::Session { .. } => None,
        }
    }

    /// The scopes the presented token carries (`None` for sessions).
    pub fn token_scopes(&self) -> Option<ScopeSet> {
        match &self.credential {
            Credential::Token { scopes, .. } => Some(*scopes),
            Credential::Session { .. } => None,
        }
    }

    /// The acting user, or 403 for workspace tokens on user-only routes.
    pub fn require_user(&self) -> Result<&Arc<UserView>, ApiError> {
        self.user.as_ref().ok_or_else(|| {
            ApiError::forbidden("workspace tokens cannot do this; use a user's token")
        })
    }

    /// The acting user's role in a workspace.
    pub fn workspace_role(&self, workspace_id: &str) -> Option<WorkspaceRole> {
        self.user
            .as_ref()
            .and_then(|u| u.workspace_role(Some(workspace_id)))
    }

    /// Whether the caller acts as an org admin (and, with a token, holds the `admin` scope).
    pub fn is_org_admin(&self) -> bool {
        let role_ok = self.user.as_ref().is_some_and(|u| u.role.is_org_admin());
        role_ok && self.token_scopes().is_none_or(|s| s.contains(Scope::Admin))
    }

    /// Whether the caller acts as an org owner (and, with a token, holds the `admin` scope).
    pub fn is_org_owner(&self) -> bool {
        self.is_org_admin() && self.user.as_ref().is_some_and(|u| u.role == OrgRole::Owner)
    }

    /// Whether the caller may see workspace `workspace_id` at all.
    pub fn can_enter_workspace(&self, workspace_id: &str) -> bool {
        if let Some(grant) = self.token()
            && let Some(ws) = grant.token.workspace_id.as_deref()
            && ws != workspace_id
        {
            return false;
        }
        match &self.user {
            Some(user) => user.role.is_org_admin() || user.memberships.contains_key(workspace_id),
            None => self
                .token()
                .and_then(|g| g.token.workspace_id.as_deref())
                .is_some_and(|ws| ws == workspace_id),
        }
    }

    /// The token's scopes narrowed by what its owner may do now in `workspace_id`.
    pub fn effective_scopes(&self, workspace_id: Option<&str>) -> ScopeSet {
        let Some(scopes) = self.token_scopes() else {
            return match &self.user {
                Some(u) => {
                    latchkey_core::policy::user_scopes(u.role, u.workspace_role(workspace_id))
                }
                None => ScopeSet::EMPTY,
            };
        };
        match &self.user {
            Some(u) => scopes.intersect(latchkey_core::policy::user_scopes(
                u.role,
                u.workspace_role(workspace_id),
            )),
            None => scopes,
        }
    }

    /// Checks a permission, in a workspace or org-wide (`None`). Deny by default.
    pub fn authorize(
        &self,
        permission: Permission,
        workspace_id: Option<&str>,
    ) -> Result<(), ApiError> {
        if let Some(grant) = self.token() {
            if let (Some(ws), Some(token_ws)) = (workspace_id, grant.token.workspace_id.as_deref())
                && ws != token_ws
            {
                return Err(ApiError::forbidden(
                    "this token belongs to another workspace",
                ));
            }
            let scope = scope_for(permission);
            if !self.token_scopes().is_some_and(|s| s.contains(scope)) {
                return Err(ApiError::forbidden(format!(
                    "this token lacks the {} scope",
                    scope.as_str()
                )));
            }
            if self.user.is_none() {
                return workspace_token_may(grant.token.token_type, permission, workspace_id);
            }
        }
        let user = self
            .user
            .as_ref()
            .ok_or_else(|| ApiError::forbidden("not allowed"))?;
        if user_may(user.role, user.workspace_role(workspace_id), permission) {
            Ok(())
        } else {
            Err(ApiError::forbidden("your role does not allow this"))
        }
    }

    /// Requires a scope for self-service routes (`/me`), which need no role.
    pub fn require_scope(&self, scope: Scope) -> Result<(), ApiError> {
        match self.token_scopes() {
            Some(s) if !s.contains(scope) => Err(ApiError::forbidden(format!(
                "this token lacks the {} scope",
                scope.as_str()
            ))),
            _ => Ok(()),
        }
    }

    /// An audit event with this caller as the actor.
    pub fn event(&self, action: &str) -> NewAuditEvent {
        NewAuditEvent {
            action: action.to_owned(),
            actor_id: self.user_id().map(str::to_owned),
            actor_token_id: self.token().map(|g| g.token.id.to_string()),
            ip: self.ip.to_text(),
            details: serde_json::Value::Object(Default::default()),
            ..NewAuditEvent::default()
        }
    }
}

/// What a workspace token (no user) may do: its scopes, within its workspace; `admin`
/// tokens also manage the workspace's tokens and members.
fn workspace_token_may(
    token_type: TokenType,
    permission: Permission,
    workspace_id: Option<&str>,
) -> Result<(), ApiError> {
    use Permission::*;
    let allowed = match permission {
        ReadProjects | WriteProjects | ReadMembers | ReadApiToken => workspace_id.is_some(),
        Introspect => true,
        CreateApiToken | ManageAnyToken | ManageMembers => {
            token_type == TokenType::Admin && workspace_id.is_some()
        }
        _ => false,
    };
    if allowed {
        Ok(())
    } else {
        Err(ApiError::forbidden("workspace tokens cannot do this"))
    }
}

/// Finds the token a request carries: `Authorization: Bearer|Token`, `X-API-Key`, then the
/// configured extra headers.
pub fn presented_secret<'a>(headers: &'a HeaderMap, extra: &[HeaderName]) -> Option<&'a str> {
    if let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        let value = value.trim();
        if let Some((scheme, rest)) = value.split_once(' ')
            && (scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("token"))
        {
            return Some(rest.trim());
        }
    }
    if let Some(v) = headers.get("x-api-key").and_then(|v| v.to_str().ok()) {
        return Some(v.trim());
    }
    extra
        .iter()
        .find_map(|name| headers.get(name).and_then(|v| v.to_str().ok()))
        .map(str::trim)
}

/// The session cookie's value, if sent.
pub fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (name, value) = pair.trim().split_once('=')?;
            (name == SESSION_COOKIE && !value.is_empty()).then_some(value)
        })
}

/// The result of authenticating a request, stored in its extensions by the middleware.
#[derive(Debug, Clone)]
pub struct AuthOutcome(pub Option<Result<Principal, ApiError>>);

/// A human message for a failed token check.
pub fn reason_message(reason: Reason) -> &'static str {
    match reason {
        Reason::BadFormat => "the token is malformed",
        Reason::NotFound => "the token is not recognised",
        Reason::Expired => "the token has expired",
        Reason::Revoked => "the token has been revoked",
        Reason::TypeDisabled => "tokens of this type are disabled",
        Reason::Suspended => "the token's owner is deactivated",
        Reason::LifetimePolicy => {
            "the token is older than the organization's maximum token lifetime"
        }
        Reason::Pending => "the token is waiting for an org admin's approval",
        Reason::IpNotAllowed => "the token may not be used from this address",
        Reason::UsageExceeded => "the token has no uses left",
        Reason::RateLimited => "the token is over its rate limit; retry later",
    }
}

impl AppState {
    /// Checks a token for an authenticated request (throttling failures per IP).
    pub async fn authenticate_token(
        &self,
        secret: &str,
        ip: ClientIp,
    ) -> Result<Principal, ApiError> {
        let secs = self.clock.now_secs();
        let now = latchkey_core::from_unix(secs);
        // The throttle holds back failures, not the valid tokens of the same address: a
        // throttled address still gets its valid tokens through, and a failure answers
        // 429 (unknown tokens are answered from memory, so this costs no store reads).
        let checked = match self.check_credential_cached(secret, now) {
            Some(answer) => answer,
            None => self.check_credential(secret, now).await,
        };
        if checked.is_err()
            && let Some(retry_after) = self.token_failure_throttle.blocked(ip.0, secs)
        {
            self.token_failure_throttle.record(ip.0, secs);
            return Err(ApiError::RateLimited { retry_after });
        }
        match checked {
            Ok(checked) => {
                let grant = &checked.verified.grant;
                match self.admit(grant, ip.0, secs).await {
                    Ok(()) => {}
                    Err(Denied::Policy(refusal)) => {
                        tracing::info!(reason = refusal.reason.as_str(), ip = %ip, "token refused by its policy");
                        return Err(ApiError::TokenPolicy(refusal));
                    }
                    Err(Denied::Unavailable) => {
                        return Err(ApiError::Unavailable(
                            "token checks are unavailable right now; retry shortly".into(),
                        ));
                    }
                }
                self.metrics.observe_verify(Ok(()));
                self.last_used.note(grant, secs, ip.0);
                Ok(Principal {
                    user: checked.verified.owner,
                    credential: Credential::Token {
                        scopes: checked.scopes,
                        expiration: checked.expiration,
                        grant: checked.verified.grant,
                        jwt: checked.jwt.is_some(),
                    },
                    ip,
                })
            }
            Err(VerifyError::Invalid(reason)) => {
                self.metrics.observe_verify(Err(reason));
                self.token_failure_throttle.record(ip.0, secs);
                tracing::info!(reason = reason.as_str(), ip = %ip, "token check failed");
                Err(ApiError::Unauthenticated {
                    message: reason_message(reason).to_owned(),
                    presented: true,
                    reason: Some(reason),
                })
            }
            Err(VerifyError::Unavailable) => Err(ApiError::Unavailable(
                "token checks are unavailable right now; retry shortly".into(),
            )),
        }
    }

    /// Resolves a session cookie.
    pub async fn authenticate_session(
        &self,
        secret: &str,
        ip: ClientIp,
    ) -> Result<Principal, ApiError> {
        let expired = || ApiError::Unauthenticated {
            message: "your session has ended; sign in again".into(),
            presented: true,
            reason: None,
        };
        if !matches!(
            latchkey_core::token::parse(secret),
            Ok(latchkey_core::token::SecretKind::Session)
        ) {
            return Err(expired());
        }
        let now = self.clock.now();
        let hash = self.hash_key.hash(secret);
        let session = self.store.find_session(&hash).await?.ok_or_else(expired)?;
        if session.expires_at <= now
            || session.last_seen_at + self.config.sessions.idle_timeout() <= now
        {
            self.store.delete_session(now, &session.id, None).await?;
            return Err(expired());
        }
        if now - session.last_seen_at >= time::Duration::seconds(60) {
            self.store.touch_session(&session.id, now).await?;
        }
        let user = self.verifier.user(&session.user_id).await?;
        if !user.active {
            return Err(expired());
        }
        Ok(Principal {
            user: Some(user),
            credential: Credential::Session {
                session_id: session.id,
            },
            ip,
        })
    }

    /// Whether a cookie-authenticated, state-changing request comes from our own origin:
    /// `Sec-Fetch-Site` (browsers) or `Origin` must say so. With `public_url` set, the
    /// origin must be exactly it (the Host header is the client's to choose); without, it
    /// must match the Host the request was sent to. A request with neither header is
    /// refused: cookie clients that are not browsers (the SDKs) send `Origin`.
    pub fn same_origin(&self, headers: &HeaderMap) -> bool {
        if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
            if !matches!(site, "same-origin" | "none") {
                return false;
            }
            // A browser that says same-origin and also sends Origin: both must agree.
            if headers.get(header::ORIGIN).is_none() {
                return true;
            }
        }
        let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
            return false;
        };
        if !self.config.public_url.is_empty() {
            return origin.eq_ignore_ascii_case(&self.public_url);
        }
        let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
        host.is_some_and(|h| {
            origin.eq_ignore_ascii_case(&format!("http://{h}"))
                || origin.eq_ignore_ascii_case(&format!("https://{h}"))
        })
    }
}

/// Middleware: authenticates once, stores the outcome for the `Principal` extractor, and
/// adds `Latchkey-Token-Expiration` to responses of token-authenticated requests. (The
/// app runs [`authenticate_request`] inside its one outer middleware instead, to save a
/// layer per request; this stays for routers built by hand.)
pub async fn authenticate(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let expiration = authenticate_request(&state, &mut req).await;
    let mut response = next.run(req).await;
    if let Some(value) = expiration {
        response
            .headers_mut()
            .insert(TOKEN_EXPIRATION_HEADER, value);
    }
    response
}

/// Authenticates a request once and stores the outcome (an [`AuthOutcome`]) in its
/// extensions for the `Principal` extractor; returns the `Latchkey-Token-Expiration` value
/// the response must carry, if any.
pub async fn authenticate_request(state: &AppState, req: &mut Request) -> Option<HeaderValue> {
    let peer = req
        .extensions()
        .get::<ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip());
    let ip = client_ip(state, peer, req.headers());
    let outcome = if let Some(secret) = presented_secret(req.headers(), &state.api_key_headers) {
        Some(state.authenticate_token(secret, ip).await)
    } else if let Some(cookie) = session_cookie(req.headers()) {
        let result = state.authenticate_session(cookie, ip).await;
        let unsafe_method = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
        match result {
            Ok(_) if unsafe_method && !state.same_origin(req.headers()) => Some(Err(
                ApiError::forbidden("cross-site request refused (origin check failed)"),
            )),
            other => Some(other),
        }
    } else {
        None
    };
    let expiration: Option<HeaderValue> = match &outcome {
        Some(Ok(Principal {
            credential: Credential::Token { expiration, .. },
            ..
        })) => expiration.clone(),
        _ => None,
    };
    req.extensions_mut().insert(AuthOutcome(outcome));
    expiration
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        match parts.extensions.get::<AuthOutcome>() {
            Some(AuthOutcome(Some(Ok(p)))) => Ok(p.clone()),
            Some(AuthOutcome(Some(Err(e)))) => Err(e.clone()),
            _ => Err(ApiError::unauthenticated()),
        }
    }
}

/// The principal if the request authenticated, `None` when it carried no credential.
/// A credential that failed still fails the request.
pub struct MaybePrincipal(pub Option<Principal>);

impl FromRequestParts<AppState> for MaybePrincipal {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        match parts.extensions.get::<AuthOutcome>() {
            Some(AuthOutcome(Some(Ok(p)))) => Ok(MaybePrincipal(Some(p.clone()))),
            Some(AuthOutcome(Some(Err(e)))) => Err(e.clone()),
            _ => Ok(MaybePrincipal(None)),
        }
    }
}
