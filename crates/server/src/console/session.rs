//! Sessions at the console: the CSRF token derived from a session and its check, where a
//! browser goes to sign in (and comes back), and the sign-in and sign-out pages.

use std::collections::HashMap;

use askama::Template;
use axum::extract::{OriginalUri, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::extract::{Auth, Form, FormData, SignedIn, refused_page};
pub use super::pages::message_page;
use super::render::{Chrome, Notice, html, see_other};
use crate::api::session::session_cookie_header;
use crate::error::ApiError;
use crate::extract::ClientIp;
use crate::state::AppState;

/// Name of the CSRF form field.
pub const CSRF_FIELD: &str = "csrf_token";
/// Name of the CSRF header (for scripts).
pub const CSRF_HEADER: &str = "x-csrf-token";

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

/// Why the browser is sent to sign in; the sign-in page says so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignInReason {
    /// Nobody signed in asked for a page (no message).
    NotSignedIn,
    /// The session ended (expired, signed out elsewhere, user deactivated).
    SessionEnded,
    /// A form was sent without a live session: nothing it asked for was done.
    FormNotSent,
}

impl SignInReason {
    /// The `expired` query value that carries the reason to the sign-in page.
    fn query(self) -> Option<&'static str> {
        match self {
            SignInReason::NotSignedIn => None,
            SignInReason::SessionEnded => Some("1"),
            SignInReason::FormNotSent => Some("form"),
        }
    }

    /// The sign-in page's message for an `expired` query value.
    fn notice(expired: Option<&str>) -> Option<Notice> {
        match expired {
            Some("1") => Some(Notice::error("Your session has ended. Sign in again.")),
            Some("form") => Some(Notice::error(
                "Your session ended before the form was sent, so nothing was changed. Sign in \
                 again to go back to the page.",
            )),
            _ => None,
        }
    }
}

/// The redirect to the sign-in page, which brings the browser back to `next` afterwards and
/// says why it came.
pub(super) fn login_redirect(next: &str, why: SignInReason) -> Response {
    let mut location = format!("/login?next={}", encode(&safe_next(Some(next))));
    if let Some(expired) = why.query() {
        location.push_str("&expired=");
        location.push_str(expired);
    }
    see_other(&location)
}

/// `response` with the session cookie cleared.
pub(super) fn with_cleared_cookie(state: &AppState, mut response: Response) -> Response {
    if let Some(cookie) = session_cookie_header(state, "", 0) {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    response
}

/// Checks a form's CSRF proof (the `csrf_token` field or the `X-CSRF-Token` header)
/// against the session's, in constant time; the answer on failure is the refusal page.
// The error is the page to answer with, returned as is: boxing it buys nothing.
#[allow(clippy::result_large_err)]
pub fn check_csrf(s: &SignedIn, headers: &HeaderMap, form: &FormData) -> Result<(), Response> {
    let presented = form
        .get(CSRF_FIELD)
        .or_else(|| headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok()))
        .unwrap_or("");
    if s.csrf.is_empty()
        || !latchkey_core::hash::constant_time_eq(presented.as_bytes(), s.csrf.as_bytes())
    {
        tracing::info!("console form refused: missing or wrong CSRF token");
        return Err(message_page(
            StatusCode::FORBIDDEN,
            "Request refused",
            "This form did not come from this Latchkey page, or it has expired. Go back, \
             reload the page and try again.",
        ));
    }
    Ok(())
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
        // E.g. the database is away: say so (503) rather than send a signed-in browser to
        // the sign-in page.
        Auth::Refused(e) => refused_page(&e),
        _ => see_other("/login"),
    }
}

/// `GET /login`.
pub async fn login_form(auth: Auth, OriginalUri(uri): OriginalUri) -> Response {
    let query = query_pairs(&uri);
    let next = safe_next(query.get("next").map(String::as_str));
    match auth {
        Auth::Session(_) => see_other(&next),
        Auth::Expired => {
            let notice = SignInReason::notice(query.get("expired").map(String::as_str))
                .or_else(|| SignInReason::notice(Some("1")));
            login_page(StatusCode::OK, "", &next, notice)
        }
        _ => {
            let notice =
                SignInReason::notice(query.get("expired").map(String::as_str)).or_else(|| {
                    match query.get("signed_out").map(String::as_str) {
                        Some("1") => Some(Notice::ok("You have signed out.")),
                        _ => None,
                    }
                });
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
pub async fn logout(State(state): State<AppState>, Form { s, .. }: Form) -> Response {
    if let Err(e) = state.sign_out(&s.p).await {
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
