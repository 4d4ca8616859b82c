//! The web console: server-rendered pages over the same service layer as the API.
//!
//! Pages are askama templates compiled into the binary (`crates/server/templates`, always
//! auto-escaping), with plain HTML forms; one small script (`assets/app.js`) adds the
//! show-once dialog's copy button, the in-page confirmations and focus handling. Every
//! handler resolves the session ([`session::require_session`]), checks the CSRF token on
//! posts ([`session::require_post`]), calls an `AppState` service method and renders the
//! outcome; a service error becomes a readable banner ([`render::error_text`]), never JSON.
//!
//! Every console response carries a Content-Security-Policy that allows only this origin's
//! script and style, no inline script, no framing.

pub mod assets;
pub mod org;
pub mod pages;
pub mod render;
pub mod session;
pub mod tokens;
pub mod workspaces;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};

use crate::state::AppState;

/// The console's Content-Security-Policy.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
    style-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; \
    form-action 'self'; frame-ancestors 'none'";

/// Console routes (pages, forms, assets).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(session::root))
        .route("/login", get(session::login_form).post(session::login))
        .route("/logout", post(session::logout))
        .route(
            "/workspaces",
            get(workspaces::list).post(workspaces::create),
        )
        .route("/workspaces/{ws}", get(workspaces::show))
        .route(
            "/workspaces/{ws}/projects",
            post(workspaces::create_project),
        )
        .route("/workspaces/{ws}/settings", get(workspaces::settings))
        .route(
            "/workspaces/{ws}/settings/members",
            get(workspaces::members).post(workspaces::add_member),
        )
        .route(
            "/workspaces/{ws}/settings/members/{user}/{action}",
            post(workspaces::member_action),
        )
        .route(
            "/workspaces/{ws}/settings/tokens",
            get(tokens::workspace_tokens).post(tokens::create_in_workspace),
        )
        .route(
            "/workspaces/{ws}/settings/tokens/{id}/{action}",
            post(tokens::workspace_token_action),
        )
        .route("/account", get(tokens::account))
        .route("/account/tokens", post(tokens::create_personal))
        .route("/account/legacy", post(tokens::create_legacy))
        .route(
            "/account/tokens/{id}/{action}",
            post(tokens::account_token_action),
        )
        .route(
            "/api-access",
            get(tokens::api_access).post(tokens::create_api_token),
        )
        .route(
            "/api-access/tokens/{id}/{action}",
            post(tokens::api_access_token_action),
        )
        .route("/organization", get(org::index))
        .route(
            "/organization/users",
            get(org::users).post(org::create_user),
        )
        .route("/organization/users/{id}/{action}", post(org::user_action))
        .route(
            "/organization/token-settings",
            get(org::token_settings).post(org::save_token_settings),
        )
        .route(
            "/organization/instance",
            get(org::instance).post(org::save_instance),
        )
        .route("/organization/audit", get(org::audit))
        .route("/assets/app.css", get(assets::css))
        .route("/assets/app.js", get(assets::js))
        .layer(middleware::from_fn(security_headers))
}

/// Headers on every console response: the CSP, no framing, no sniffing.
async fn security_headers(req: Request, next: Next) -> Response {
    let mut response = next.run(req).await;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}
