//! The web console: server-rendered pages over the same service layer as the API.
//!
//! Pages are askama templates compiled into the binary (`crates/server/templates`, always
//! auto-escaping), with plain HTML forms; one small script (`assets/app.js`) adds the
//! show-once dialog's copy button, the in-page confirmations, the expiry presets and focus
//! handling. A page is three things (docs/console.md, "Adding a page", walks through one):
//!
//! - a handler whose extractors say who may come ([`extract::SignedIn`],
//!   [`extract::OrgAdmin`]) and, for a post, check the CSRF proof
//!   ([`extract::Form`]); one route and one handler per action;
//! - a `render(state, s, view)` that asks `AppState` service methods for the data and
//!   fills the page's template struct, whose `c: Chrome` comes from
//!   [`extract::SignedIn::chrome`] with the [`render::View`] (status, banner, show-once
//!   dialog, a failed form's values, the page's place);
//! - after a successful post, [`extract::SignedIn::done`]: a redirect back to the form's
//!   place with a [`render::Flash`] banner; after a failed one, the page rendered again
//!   with [`render::View::failed`]. A service error becomes a readable banner, never JSON.
//!
//! Every console response carries a Content-Security-Policy that allows only this origin's
//! script and style, no inline script, no framing.

pub mod accounts;
pub mod assets;
pub mod extract;
pub mod org;
pub mod pages;
pub mod render;
pub mod session;
pub mod tokens;
pub mod webhooks;
pub mod workspaces;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};

use crate::state::AppState;

/// A service list request: `limit` items after `cursor` (ignored unless it is an id).
pub fn page_request(limit: u32, cursor: Option<&String>) -> latchkey_store::PageRequest {
    latchkey_store::PageRequest {
        limit,
        cursor: cursor.filter(|c| latchkey_core::is_id(c)).cloned(),
    }
}

/// Every workspace the caller may enter (the first 200, the service's cap on a page).
pub async fn workspaces_of(
    state: &AppState,
    s: &extract::SignedIn,
) -> Result<Vec<latchkey_proto::Workspace>, crate::error::ApiError> {
    Ok(state
        .list_workspaces(&s.p, &page_request(200, None))
        .await?
        .items)
}

/// The console's Content-Security-Policy.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
    style-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; \
    form-action 'self'; frame-ancestors 'none'";

/// Console routes (pages, forms, assets).
pub fn routes() -> Router<AppState> {
    use tokens::{account, actions, api_access, detail, policy, workspace};
    let router = Router::new()
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
            "/workspaces/{ws}/settings/members/{user}/role",
            post(workspaces::change_member_role),
        )
        .route(
            "/workspaces/{ws}/settings/members/{user}/remove",
            post(workspaces::remove_member),
        )
        .route(
            "/workspaces/{ws}/settings/tokens",
            get(workspace::page).post(workspace::create),
        )
        .route("/account", get(account::page))
        .route("/account/tokens", post(account::create_personal))
        .route("/account/legacy", post(account::create_legacy))
        .route(
            "/api-access",
            get(api_access::page).post(api_access::create),
        )
        .route("/organization", get(org::index))
        .route(
            "/organization/users",
            get(org::users).post(org::create_user),
        )
        .route("/organization/users/{id}/role", post(org::change_user_role))
        .route(
            "/organization/users/{id}/deactivate",
            post(org::set_active::<false>),
        )
        .route(
            "/organization/users/{id}/reactivate",
            post(org::set_active::<true>),
        )
        .route(
            "/organization/service-accounts",
            get(accounts::list).post(accounts::create),
        )
        .route(
            "/organization/service-accounts/{sa}",
            get(accounts::page).post(accounts::create_token),
        )
        .route(
            "/organization/service-accounts/{sa}/deactivate",
            post(accounts::deactivate),
        )
        .route(
            "/organization/service-accounts/{sa}/reactivate",
            post(accounts::reactivate),
        )
        .route(
            "/organization/token-settings",
            get(org::token_settings).post(org::save_token_settings),
        )
        .route(
            "/organization/instance",
            get(org::instance).post(org::save_instance),
        )
        .route("/organization/audit", get(org::audit))
        .route(
            "/organization/webhooks",
            get(webhooks::list).post(webhooks::create),
        )
        .route("/organization/webhooks/{id}", get(webhooks::show))
        .route("/organization/webhooks/{id}/edit", post(webhooks::edit))
        .route(
            "/organization/webhooks/{id}/test",
            post(webhooks::send_test),
        )
        .route(
            "/organization/webhooks/{id}/pause",
            post(webhooks::set_enabled::<false>),
        )
        .route(
            "/organization/webhooks/{id}/resume",
            post(webhooks::set_enabled::<true>),
        )
        .route("/organization/webhooks/{id}/delete", post(webhooks::delete))
        .route(
            "/organization/webhooks/{id}/deliveries/{delivery}/redeliver",
            post(webhooks::redeliver),
        )
        .route("/assets/app.css", get(assets::css))
        .route("/assets/app.js", get(assets::js));
    // A token's own page and the row actions of every token page, one route each, under
    // the page's prefix.
    let router = [
        "/workspaces/{ws}/settings/tokens",
        "/account/tokens",
        "/api-access/tokens",
        "/organization/service-accounts/{sa}/tokens",
    ]
    .into_iter()
    .fold(router, |router, base| {
        router
            .route(&format!("{base}/{{id}}"), get(detail::page))
            .route(&format!("{base}/{{id}}/revoke"), post(actions::revoke))
            .route(&format!("{base}/{{id}}/restore"), post(actions::restore))
            .route(&format!("{base}/{{id}}/approve"), post(actions::approve))
            .route(&format!("{base}/{{id}}/deny"), post(actions::deny))
            .route(&format!("{base}/{{id}}/rotate"), post(actions::rotate))
            .route(&format!("{base}/{{id}}/delete"), post(actions::delete))
            .route(&format!("{base}/{{id}}/policy"), post(policy::save))
            .route(&format!("{base}/{{id}}/reveal"), post(actions::reveal))
            .route(&format!("{base}/bulk-revoke"), post(actions::bulk_revoke))
    });
    router.layer(middleware::from_fn(security_headers))
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
