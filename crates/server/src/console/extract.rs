//! Who is at the console and what they sent, as axum extractors, so a handler states its
//! needs in its signature instead of repeating a preamble:
//!
//! - [`SignedIn`]: a live console session, or the request is answered with a redirect to
//!   the sign-in page carrying `next=` (the page asked for), which brings the person back;
//! - [`OrgAdmin`]: the same, and an org admin (or owner), or the 403 page;
//! - [`Visit`]: a page visit: the state, who asks (`Visit` is `Visit<SignedIn>`;
//!   `Visit<OrgAdmin>` for org pages) and the [`View`] of the page asked for, which is
//!   all a page handler hands to its `render`;
//! - [`Form`]: a form post whose CSRF proof is checked (by [`super::session::check_csrf`])
//!   and whose sender passes a [`Gate`] (`Form` is `Form<SignedIn>`; `Form<OrgAdmin>` for
//!   org pages). Its [`Form::back`] is the place the form was on (the hidden `back` field:
//!   path and query of the page), where a successful post returns to.

use std::convert::Infallible;
use std::ops::Deref;
use std::sync::Arc;

use axum::extract::{FromRequest, FromRequestParts, OriginalUri, Request};
use axum::http::Method;
use axum::http::request::Parts;
use axum::response::Response;
use latchkey_proto::OrgRole;

use super::pages::{message_page, org_admins_only};
use super::render::{Chrome, Flash, NavUser, View, see_other};
use super::session::{
    SignInReason, check_csrf, csrf_token, login_redirect, safe_next, with_cleared_cookie,
};
use crate::auth::{AuthOutcome, Credential, Principal};
use crate::error::ApiError;
use crate::state::AppState;
use crate::verifier::UserView;

/// Name of the hidden field that says which page (path and query) a form was sent from.
pub const BACK_FIELD: &str = "back";

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

/// The page for a request the authentication step refused: a cross-site unsafe request
/// (403), or the database away while the session was looked up (503).
pub fn refused_page(e: &ApiError) -> Response {
    let heading = match e {
        ApiError::Unavailable(_) => "Unavailable",
        _ => "Request refused",
    };
    message_page(
        e.status_and_code().0,
        heading,
        &super::render::error_text(e),
    )
}

/// A signed-in console user.
pub struct SignedIn {
    /// The principal, for service calls.
    pub p: Principal,
    /// The user.
    pub user: Arc<UserView>,
    /// This session's CSRF token.
    pub csrf: String,
}

impl SignedIn {
    /// The session behind `auth`, or the answer that sends the browser to sign in and back
    /// to `here` afterwards, saying why (for a `posted` form: that it was not sent).
    // The error is the page to answer with, returned as is: boxing it buys nothing.
    #[allow(clippy::result_large_err)]
    fn resolve(
        state: &AppState,
        auth: Auth,
        here: &str,
        posted: bool,
    ) -> Result<SignedIn, Response> {
        let (ended, anonymous) = if posted {
            (SignInReason::FormNotSent, SignInReason::FormNotSent)
        } else {
            (SignInReason::SessionEnded, SignInReason::NotSignedIn)
        };
        match auth {
            Auth::Session(p) => {
                let Credential::Session { session_id } = &p.credential else {
                    return Err(login_redirect(here, anonymous));
                };
                let csrf = csrf_token(state, session_id);
                let Some(user) = p.user.clone() else {
                    return Err(login_redirect(here, anonymous));
                };
                Ok(SignedIn { p, user, csrf })
            }
            Auth::Expired => Err(with_cleared_cookie(state, login_redirect(here, ended))),
            Auth::Anonymous => Err(login_redirect(here, anonymous)),
            Auth::Refused(e) => Err(refused_page(&e)),
        }
    }

    /// Org admin (or owner).
    pub fn is_org_admin(&self) -> bool {
        self.p.is_org_admin()
    }

    /// Org owner (the instance owner).
    pub fn is_owner(&self) -> bool {
        self.user.role == OrgRole::Owner
    }

    /// The page chrome for this user: title, navigation, and what `view` adds (banner,
    /// show-once dialog, the place forms return to).
    pub fn chrome(&self, title: impl Into<String>, section: &'static str, view: &View) -> Chrome {
        Chrome {
            title: title.into(),
            user: Some(NavUser {
                username: self.user.username.clone(),
                org_admin: self.is_org_admin(),
                owner: self.is_owner(),
            }),
            csrf: self.csrf.clone(),
            here: view.here.clone(),
            section,
            notice: view.notice.clone(),
            secret: view.secret.clone(),
            asset_version: super::assets::version(),
        }
    }

    /// `303 See Other` to `place` with the banner `flash` (signed for this session, so a
    /// link cannot put words on somebody else's page) and its scroll anchor.
    pub fn done(&self, place: &str, flash: Flash) -> Response {
        see_other(&flash.location(place, &self.csrf))
    }
}

impl FromRequestParts<AppState> for SignedIn {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let Ok(auth) = Auth::from_request_parts(parts, state).await;
        // After signing in the browser comes back here; a post cannot be repeated by a
        // redirect, so it lands on the landing page (a `Form` knows its page instead).
        let read = matches!(parts.method, Method::GET | Method::HEAD);
        let here = if read {
            parts
                .extensions
                .get::<OriginalUri>()
                .map_or_else(|| parts.uri.to_string(), |u| u.0.to_string())
        } else {
            safe_next(None)
        };
        SignedIn::resolve(state, auth, &here, !read)
    }
}

/// Who may send a form or open a page, beyond being signed in.
pub trait Gate: Sized {
    /// Lets `s` in as `Self`, or answers with the page that says why not.
    // The error is the page to answer with, returned as is: boxing it buys nothing.
    #[allow(clippy::result_large_err)]
    fn admit(s: SignedIn) -> Result<Self, Response>;
}

impl Gate for SignedIn {
    fn admit(s: SignedIn) -> Result<Self, Response> {
        Ok(s)
    }
}

/// A signed-in org admin (or owner); anyone else gets the 403 page.
pub struct OrgAdmin(pub SignedIn);

impl Deref for OrgAdmin {
    type Target = SignedIn;

    fn deref(&self) -> &SignedIn {
        &self.0
    }
}

impl Gate for OrgAdmin {
    fn admit(s: SignedIn) -> Result<Self, Response> {
        if s.is_org_admin() {
            Ok(OrgAdmin(s))
        } else {
            Err(org_admins_only(&s, "organization"))
        }
    }
}

impl FromRequestParts<AppState> for OrgAdmin {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        OrgAdmin::admit(SignedIn::from_request_parts(parts, state).await?)
    }
}

/// A page visit (`GET`) from a signed-in user that passes the gate `G`: what the page's
/// `render` takes. Without a session the browser is sent to sign in and back.
pub struct Visit<G = SignedIn> {
    /// The application.
    pub state: AppState,
    /// Who asks.
    pub s: G,
    /// The page asked for: its place, and the banner a signed flash in its address carries.
    pub view: View,
}

impl<G: Gate> FromRequestParts<AppState> for Visit<G> {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let s = SignedIn::from_request_parts(parts, state).await?;
        let uri = parts
            .extensions
            .get::<OriginalUri>()
            .map_or_else(|| parts.uri.clone(), |u| u.0.clone());
        let view = View::page(&s, &uri);
        Ok(Visit {
            state: state.clone(),
            s: G::admit(s)?,
            view,
        })
    }
}

/// A form body (`application/x-www-form-urlencoded`), keeping repeated fields.
#[derive(Debug, Default, Clone)]
pub struct FormData(pub Vec<(String, String)>);

impl FormData {
    /// A form of these fields (tests build forms so).
    #[cfg(test)]
    pub fn of(pairs: &[(&str, &str)]) -> FormData {
        FormData(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        )
    }

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

    /// The page the form was sent from (`back`, a same-site path), else `fallback`.
    pub fn back_or(&self, fallback: &str) -> String {
        match self.get(BACK_FIELD) {
            Some(back) if !back.is_empty() => safe_next(Some(back)),
            _ => fallback.to_owned(),
        }
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

/// A form post from a signed-in user that passes the gate `G`, with its CSRF proof checked.
/// Without a session the browser is sent to sign in and then back to the form's page.
pub struct Form<G = SignedIn> {
    /// Who sent it.
    pub s: G,
    /// What it holds.
    pub data: FormData,
}

impl<G> Form<G> {
    /// The page the form was sent from, else `fallback`.
    pub fn back_or(&self, fallback: &str) -> String {
        self.data.back_or(fallback)
    }
}

impl<G: Gate> FromRequest<AppState> for Form<G> {
    type Rejection = Response;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Response> {
        let (mut parts, body) = req.into_parts();
        let Ok(auth) = Auth::from_request_parts(&mut parts, state).await;
        let headers = parts.headers.clone();
        let data = FormData::from_request(Request::from_parts(parts, body), state).await?;
        let s = SignedIn::resolve(state, auth, &data.back_or(&safe_next(None)), true)?;
        check_csrf(&s, &headers, &data)?;
        Ok(Form {
            s: G::admit(s)?,
            data,
        })
    }
}
