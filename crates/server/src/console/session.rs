//! Who is at the console: the session resolved by the auth middleware, the CSRF token
//! derived from it, form bodies, and the sign-in and sign-out pages.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;

use askama::Template;
use axum::extract::{FromRequest, FromRequestParts, OriginalUri, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use latchkey_proto::OrgRole;
use sha2::Sha256;

use super::render::{Chrome, NavUser, Notice, html, see_other};
use crate::api::session::session_cookie_header;
use crate::auth::{AuthOutcome, Credential, Principal};
use crate::error::ApiError;
use crate::extract::ClientIp;
use crate::state::AppState;
use crate::verifier::UserView;

/// Name of the CSRF form field.
pub const CSRF_FIELD: &str = "csrf_token";
/// Name of the CSRF header (for scripts).
pub const CSRF_HEADER: &str = "x-csrf-token";

/// How the request authenticated, as the console sees it. Only session cookies count: a
/// request carrying an API token is treated as not signed in.
pub enum Auth {
    /// A live console session.
    Session(Principal),
    /// A session cookie that no longer works (expired, signed out, user deactivated).
    Expired,
    /// No session.
    Anonymous,
    /// Refused by the middleware (a cross-site unsafe request).
    Refused(ApiError),
}

impl FromRequestParts<AppState> for Auth {
    type Rejection = Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(match parts.extensions.get::<AuthOutcome>() {
            Some(AuthOutcome(Some(Ok(p)))) => match p.credential {
                Credential::Session { .. } => Auth::Session(p.clone()),
                Credential::Token { .. } => Auth::Anonymous,
            },
            Some(AuthOutcome(Some(Err(ApiError::Unauthenticated { .. })))) => {
                if crate::auth::session_cookie(&parts.headers).is_some() {
                    Auth::Expired
                } else {
                    Auth::Anonymous
                }
            }
            Some(AuthOutcome(Some(Err(e)))) => Auth::Refused(e.clone()),
            _ => Auth::Anonymous,
        })
    }
}

/// A signed-in console user.
pub struct Session {
    /// The principal, for service calls.
    pub p: Principal,
    /// The user.
    pub user: Arc<UserView>,
    /// This session's CSRF token.
    pub csrf: String,
}

impl Session {
    /// The page chrome for this user.
    pub fn chrome(&self, title: impl Into<String>, section: &'static str) -> Chrome {
        Chrome {
            title: title.into(),
            user: Some(NavUser {
                username: self.user.username.clone(),
                org_admin: self.p.is_org_admin(),
                owner: self.user.role == OrgRole::Owner,
            }),
            csrf: self.csrf.clone(),
            section,
            notice: None,
            asset_version: super::assets::version(),
        }
    }
}

/// The CSRF token of a session: HMAC-SHA256 over the session id under a key derived from
/// the hash key for this purpose alone. Not stored; recomputed and compared in constant time.
pub fn csrf_token(state: &AppState, session_id: &str) -> String {
    let key = state.hash_key.derive("console csrf v1");
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&key) else {
        return String::new();
    };
    mac.update(session_id.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// A form body (`application/x-www-form-urlencoded`), keeping repeated fields.
#[derive(Debug, Default, Clone)]
pub struct FormData(pub Vec<(String, String)>);

impl FormData {
    /// The first value of a field.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The first value, trimmed; empty counts as absent.
    pub fn text(&self, name: &str) -> Option<String> {
        self.get(name)
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    }

    /// Every value of a repeated field.
    pub fn all(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .collect()
    }
}

impl FromRequest<AppState> for FormData {
    type Rejection = Response;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        match axum::Form::<Vec<(String, String)>>::from_request(req, state).await {
            Ok(axum::Form(pairs)) => Ok(FormData(pairs)),
            Err(e) => Err(message_page(
                e.status(),
                "The form could not be read",
                "Reload the page and try again.",
            )),
        }
    }
}

/// The query string as pairs (for filters and `next`).
pub fn query_pairs(uri: &axum::http::Uri) -> HashMap<String, String> {
    axum::extract::Query::<Vec<(String, String)>>::try_from_uri(uri)
        .map(|q| q.0.into_iter().collect())
        .unwrap_or_default()
}

/// Percent-encodes a query value.
pub fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Accepts `next` only as a same-site relative path (`/…`, not `//…`, no backslash, no
/// control characters); anything else means the landing page.
pub fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && !n.contains('\\')
                && !n.chars().any(|c| c.is_control() || c.is_whitespace())
                && n.len() <= 2000 =>
        {
            n.to_owned()
        }
        _ => "/workspaces".to_owned(),
    }
}

fn login_redirect(next: &str, expired: bool) -> Response {
    let mut location = format!("/login?next={}", encode(&safe_next(Some(next))));
    if expired {
        location.push_str("&expired=1");
    }
    see_other(&location)
}

fn with_cleared_cookie(state: &AppState, mut response: Response) -> Response {
    if let Some(cookie) = session_cookie_header(state, "", 0) {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    response
}

/// A bare message page (no navigation), for failures before a session is known.
pub fn message_page(status: StatusCode, heading: &str, message: &str) -> Response {
    let page = super::pages::MessagePage {
        c: Chrome {
            title: heading.to_owned(),
            asset_version: super::assets::version(),
            ..Chrome::default()
        },
        heading: heading.to_owned(),
        message: message.to_owned(),
    };
    html(status, &page)
}

/// The session for a page view, or the response that sends the browser to sign in (and
/// back to `here` afterwards).
// The error is the page to answer with, returned as is: boxing it buys nothing.
#[allow(clippy::result_large_err)]
pub fn require_session(state: &AppState, auth: Auth, here: &str) -> Result<Session, Response> {
    match auth {
        Auth::Session(p) => {
            let Credential::Session { session_id } = &p.credential else {
                return Err(login_redirect(here, false));
            };
            let csrf = csrf_token(state, session_id);
            let Some(user) = p.user.clone() else {
                return Err(login_redirect(here, false));
            };
            Ok(Session { p, user, csrf })
        }
        Auth::Expired => Err(with_cleared_cookie(state, login_redirect(here, true))),
        Auth::Anonymous => Err(login_redirect(here, false)),
        Auth::Refused(e) => Err(message_page(
            e.status_and_code().0,
            "Request refused",
            &super::render::error_text(&e),
        )),
    }
}

/// The session for a form post, with its CSRF proof checked (the `csrf_token` field or the
/// `X-CSRF-Token` header). `back` is the page to return to after signing in again.
// The error is the page to answer with, returned as is: boxing it buys nothing.
#[allow(clippy::result_large_err)]
pub fn require_post(
    state: &AppState,
    auth: Auth,
    headers: &HeaderMap,
    form: &FormData,
    back: &str,
) -> Result<Session, Response> {
    let session = require_session(state, auth, back)?;
    let presented = form
        .get(CSRF_FIELD)
        .or_else(|| headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok()))
        .unwrap_or("");
    if session.csrf.is_empty()
        || !latchkey_core::hash::constant_time_eq(presented.as_bytes(), session.csrf.as_bytes())
    {
        tracing::info!("console form refused: missing or wrong CSRF token");
        return Err(message_page(
            StatusCode::FORBIDDEN,
            "Request refused",
            "This form did not come from this Latchkey page, or it has expired. Go back, \
             reload the page and try again.",
        ));
    }
    Ok(session)
}

/// The sign-in page.
#[derive(Template)]
#[template(path = "login.html")]
pub struct LoginPage {
    /// Layout.
    pub c: Chrome,
    /// Username, kept after a failure.
    pub username: String,
    /// Where to go after signing in.
    pub next: String,
}

fn login_page(status: StatusCode, username: &str, next: &str, notice: Option<Notice>) -> Response {
    let page = LoginPage {
        c: Chrome {
            title: "Sign in".into(),
            notice,
            asset_version: super::assets::version(),
            ..Chrome::default()
        },
        username: username.to_owned(),
        next: next.to_owned(),
    };
    html(status, &page)
}

/// `GET /` — the landing page when signed in, else the sign-in page.
pub async fn root(auth: Auth) -> Response {
    match auth {
        Auth::Session(_) => see_other("/workspaces"),
        _ => see_other("/login"),
    }
}

/// `GET /login`.
pub async fn login_form(auth: Auth, OriginalUri(uri): OriginalUri) -> Response {
    let query = query_pairs(&uri);
    let next = safe_next(query.get("next").map(String::as_str));
    match auth {
        Auth::Session(_) => see_other(&next),
        Auth::Expired => login_page(
            StatusCode::OK,
            "",
            &next,
            Some(Notice::error("Your session has ended. Sign in again.")),
        ),
        _ => {
            let notice = match query.get("expired").map(String::as_str) {
                Some("1") => Some(Notice::error("Your session has ended. Sign in again.")),
                _ => match query.get("signed_out").map(String::as_str) {
                    Some("1") => Some(Notice::ok("You have signed out.")),
                    _ => None,
                },
            };
            login_page(StatusCode::OK, "", &next, notice)
        }
    }
}

/// `POST /login`: the same message for every bad username or password; throttled per IP
/// by the service; refused from other sites.
pub async fn login(
    State(state): State<AppState>,
    ip: ClientIp,
    headers: HeaderMap,
    form: FormData,
) -> Response {
    let next = safe_next(form.get("next"));
    let username = form.get("username").unwrap_or("").trim().to_owned();
    if !state.same_origin(&headers) {
        return login_page(
            StatusCode::FORBIDDEN,
            &username,
            &next,
            Some(Notice::error(
                "Sign-in refused: the form was not sent from this Latchkey site.",
            )),
        );
    }
    let password = form.get("password").unwrap_or("");
    match state.sign_in(&username, password, ip).await {
        Ok(signed_in) => {
            let mut response = see_other(&next);
            if let Some(cookie) =
                session_cookie_header(&state, &signed_in.secret, signed_in.max_age_secs)
            {
                response.headers_mut().insert(header::SET_COOKIE, cookie);
            }
            response
                .headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        }
        Err(ApiError::Unauthenticated { .. }) => login_page(
            StatusCode::UNAUTHORIZED,
            &username,
            &next,
            Some(Notice::error("Invalid username or password.")),
        ),
        Err(ApiError::RateLimited { retry_after }) => {
            let mut response = login_page(
                StatusCode::TOO_MANY_REQUESTS,
                &username,
                &next,
                Some(Notice::error(format!(
                    "Too many sign-in attempts. Try again in {retry_after} seconds."
                ))),
            );
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
            response
        }
        Err(e) => login_page(
            e.status_and_code().0,
            &username,
            &next,
            Some(Notice::error(super::render::error_text(&e))),
        ),
    }
}

/// `POST /logout`: ends the session for good and clears the cookie.
pub async fn logout(
    State(state): State<AppState>,
    auth: Auth,
    headers: HeaderMap,
    form: FormData,
) -> Response {
    let session = match require_post(&state, auth, &headers, &form, "/workspaces") {
        Ok(s) => s,
        Err(response) => return response,
    };
    if let Err(e) = state.sign_out(&session.p).await {
        tracing::warn!(error = %e, "console sign-out failed");
        return message_page(
            e.status_and_code().0,
            "Sign-out failed",
            &super::render::error_text(&e),
        );
    }
    with_cleared_cookie(&state, see_other("/login?signed_out=1")).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_accepts_only_same_site_paths() {
        assert_eq!(safe_next(Some("/account")), "/account");
        assert_eq!(
            safe_next(Some("/workspaces/x/settings?a=1")),
            "/workspaces/x/settings?a=1"
        );
        for bad in [
            "https://evil.example/",
            "//evil.example/",
            "/\\evil.example",
            "javascript:alert(1)",
            "evil",
            "/a\nb",
            "",
        ] {
            assert_eq!(safe_next(Some(bad)), "/workspaces", "{bad:?}");
        }
        assert_eq!(safe_next(None), "/workspaces");
    }

    #[test]
    fn encode_escapes_query_syntax() {
        assert_eq!(encode("/a?b=c&d"), "/a%3Fb%3Dc%26d");
    }
}
