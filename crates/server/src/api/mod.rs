//! HTTP handlers: thin adapters from requests to the service layer, described for OpenAPI.

pub mod examples;
pub mod interop;
pub mod projects;
pub mod session;
pub mod settings;
pub mod spec;
pub mod system;
pub mod tokens;
pub mod users;
pub mod webhooks;
pub mod workspaces;

use axum::Router;
use axum::routing::{get, post, put};
use utoipa::OpenApi;

use crate::state::AppState;

/// Every API route.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/session",
            post(session::sign_in).delete(session::sign_out),
        )
        .route("/api/v1/me", get(users::me))
        .route("/api/v1/me/tokens", get(tokens::list_mine))
        .route(
            "/api/v1/instance/settings",
            get(settings::get_instance).patch(settings::patch_instance),
        )
        .route(
            "/api/v1/orgs/{org}/token-settings",
            get(settings::get_token_settings).patch(settings::patch_token_settings),
        )
        .route("/api/v1/users", get(users::list).post(users::create))
        .route("/api/v1/users/{id}", get(users::get).patch(users::update))
        .route(
            "/api/v1/workspaces",
            get(workspaces::list).post(workspaces::create),
        )
        .route("/api/v1/workspaces/{ws}", get(workspaces::get))
        .route(
            "/api/v1/workspaces/{ws}/members",
            get(workspaces::list_members),
        )
        .route(
            "/api/v1/workspaces/{ws}/members/{user}",
            put(workspaces::put_member).delete(workspaces::remove_member),
        )
        .route(
            "/api/v1/workspaces/{ws}/tokens",
            get(tokens::list_in_workspace).post(tokens::create),
        )
        .route(
            "/api/v1/workspaces/{ws}/projects",
            get(projects::list).post(projects::create),
        )
        .route(
            "/api/v1/workspaces/{ws}/projects/{id}",
            axum::routing::delete(projects::delete),
        )
        .route(
            "/projects",
            get(projects::list_for_token).post(projects::create_for_token),
        )
        .route("/api/v1/tokens", get(tokens::inventory))
        .route("/api/v1/tokens/bulk-revoke", post(tokens::bulk_revoke))
        .route("/api/v1/tokens/verify", post(tokens::verify))
        .route(
            "/api/v1/tokens/{id}",
            get(tokens::get)
                .patch(tokens::update)
                .delete(tokens::delete),
        )
        .route("/api/v1/tokens/{id}/revoke", post(tokens::revoke))
        .route("/api/v1/tokens/{id}/restore", post(tokens::restore))
        .route("/api/v1/tokens/{id}/approve", post(tokens::approve))
        .route("/api/v1/tokens/{id}/deny", post(tokens::deny))
        .route("/api/v1/tokens/{id}/rotate", post(tokens::rotate))
        .route("/api/v1/tokens/{id}/reveal", post(tokens::reveal))
        .route("/api/v1/tokens/{id}/usage", get(tokens::usage))
        .route("/api/v1/audit-events", get(users::audit_events))
        .route(
            "/api/v1/webhooks",
            get(webhooks::list).post(webhooks::create),
        )
        .route(
            "/api/v1/webhooks/{id}",
            get(webhooks::get)
                .patch(webhooks::update)
                .delete(webhooks::delete),
        )
        .route("/api/v1/webhooks/{id}/test", post(webhooks::test))
        .route(
            "/api/v1/webhooks/{id}/deliveries",
            get(webhooks::deliveries),
        )
        .route(
            "/api/v1/webhooks/{id}/deliveries/{delivery}/redeliver",
            post(webhooks::redeliver),
        )
        .route("/api/v1/token/refresh", post(interop::refresh))
        .route("/api/v1/token/refresh/", post(interop::refresh))
        .route("/api/token/refresh", post(interop::refresh))
        .route("/api/token/refresh/", post(interop::refresh))
        .route("/.well-known/jwks.json", get(interop::jwks))
        .route(
            "/.well-known/oauth-authorization-server",
            get(interop::oauth_metadata),
        )
        .route("/oauth/introspect", post(interop::introspect))
        .route("/oauth/revoke", post(interop::oauth_revoke))
        .route("/api/v1/credentials/revoke", post(interop::report_leaked))
        .route("/auth/verify", forward_auth_methods())
        // Envoy ext_authz with `path_prefix: /auth/verify` appends the original path (and
        // keeps the original method).
        .route("/auth/verify/{*original}", forward_auth_methods())
        .route("/api/v1/openapi.json", get(system::openapi))
        .route("/healthz", get(system::healthz))
        .route("/readyz", get(system::readyz))
    // `/metrics` is added by `app::app` or `app::metrics_app`, per `[metrics] listen`.
}

/// The methods forward-auth answers: those a proxied request may carry (Envoy keeps the
/// original method; nginx, Caddy and Traefik send `GET`). `TRACE`, `CONNECT` and extension
/// methods get 405, which a proxy passes on as a refusal.
fn forward_auth_methods() -> axum::routing::MethodRouter<AppState> {
    get(interop::forward_auth)
        .post(interop::forward_auth)
        .put(interop::forward_auth)
        .patch(interop::forward_auth)
        .delete(interop::forward_auth)
        .options(interop::forward_auth)
}

/// The OpenAPI description, generated from the handlers and the proto types.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Latchkey",
        description = "Self-hosted API access tokens: create, govern, revoke and verify.",
        license(name = "Apache-2.0")
    ),
    paths(
        session::sign_in,
        session::sign_out,
        users::me,
        tokens::list_mine,
        settings::get_instance,
        settings::patch_instance,
        settings::get_token_settings,
        settings::patch_token_settings,
        users::list,
        users::create,
        users::get,
        users::update,
        workspaces::list,
        workspaces::create,
        workspaces::get,
        workspaces::list_members,
        workspaces::put_member,
        workspaces::remove_member,
        tokens::list_in_workspace,
        tokens::create,
        tokens::inventory,
        tokens::bulk_revoke,
        tokens::get,
        tokens::update,
        tokens::delete,
        tokens::revoke,
        tokens::restore,
        tokens::approve,
        tokens::deny,
        tokens::rotate,
        tokens::reveal,
        tokens::usage,
        tokens::verify,
        projects::list,
        projects::create,
        projects::delete,
        projects::list_for_token,
        projects::create_for_token,
        users::audit_events,
        webhooks::create,
        webhooks::list,
        webhooks::get,
        webhooks::update,
        webhooks::delete,
        webhooks::test,
        webhooks::deliveries,
        webhooks::redeliver,
        interop::refresh,
        interop::jwks,
        interop::oauth_metadata,
        interop::introspect,
        interop::oauth_revoke,
        interop::report_leaked,
        interop::forward_auth,
        system::healthz,
        system::readyz,
    ),
    modifiers(&SecuritySchemes),
    security(("bearer" = []), ("api_key" = []), ("session" = []))
)]
pub struct ApiDoc;

struct SecuritySchemes;

impl utoipa::Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{
            ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme,
        };
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        components.add_security_scheme(
            "client_secret_basic",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Basic).build()),
        );
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-API-Key"))),
        );
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new(
                crate::auth::SESSION_COOKIE,
            ))),
        );
    }
}

/// The OpenAPI document as pretty JSON (what `docs/openapi.json` holds and
/// `/api/v1/openapi.json` serves): [`ApiDoc`] completed by [`spec`].
pub fn openapi_json() -> String {
    spec::pretty().to_owned()
}
