//! Health, readiness, metrics and the OpenAPI document.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use latchkey_proto::Health;

use crate::auth::AuthOutcome;
use crate::error::ApiError;
use crate::state::AppState;

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "system", security(()),
    responses((status = 200, body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok".into(),
    })
}

/// Readiness: the store answers and the verifier is fresh.
#[utoipa::path(get, path = "/readyz", tag = "system", security(()),
    responses((status = 200, body = Health), (status = 503, body = Health)))]
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Health>) {
    let status = match state.store.ping().await {
        Err(e) => {
            tracing::warn!(error = %e, "readiness: store ping failed");
            Some("store unavailable")
        }
        Ok(()) if !state.verifier.is_fresh() => Some("verifier stale"),
        Ok(()) => None,
    };
    match status {
        None => (
            StatusCode::OK,
            Json(Health {
                status: "ok".into(),
            }),
        ),
        Some(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(Health { status: why.into() }),
        ),
    }
}

/// Prometheus metrics. Public unless `[metrics] require_scope` names a scope: then the
/// caller needs a token holding it (or an org admin's session, which holds every scope),
/// 401 without a credential, 403 with one that lacks it.
pub async fn metrics(
    State(state): State<AppState>,
    outcome: Option<Extension<AuthOutcome>>,
) -> Response {
    use std::sync::atomic::Ordering::Relaxed;
    if let Some(scope) = state.config.metrics.require_scope {
        let principal = match outcome.and_then(|Extension(AuthOutcome(o))| o) {
            Some(Ok(p)) => p,
            Some(Err(e)) => return e.into_response(),
            None => return ApiError::unauthenticated().into_response(),
        };
        if !principal.effective_scopes(None).contains(scope) {
            return ApiError::forbidden(format!(
                "reading metrics needs a token with the {} scope",
                scope.as_str()
            ))
            .into_response();
        }
    }
    let v = &state.verifier;
    let stats = &v.stats;
    let pending_age = state.last_used.oldest_pending().map_or(0.0, |t| {
        state.clock.now_secs().saturating_sub(t).max(0) as f64
    });
    let body = state.metrics.render(
        &[
            (
                "latchkey_verifier_cached_grants",
                "Grants held in memory (the cache size).",
                v.cached_grants() as f64,
            ),
            (
                "latchkey_verifier_cached_users",
                "User views held in memory.",
                v.cached_users() as f64,
            ),
            (
                "latchkey_verifier_cached_unknown",
                "Unknown-token hashes remembered (the negative cache size).",
                v.cached_unknown() as f64,
            ),
            (
                "latchkey_change_feed_version",
                "Change feed version applied on this node.",
                v.version() as f64,
            ),
            (
                "latchkey_verifier_staleness_seconds",
                "Seconds since this node last heard from the store.",
                v.staleness().as_secs_f64(),
            ),
            (
                "latchkey_last_used_pending_age_seconds",
                "Age of the oldest last-used time not yet written (flush lag now).",
                pending_age,
            ),
        ],
        &[
            (
                "latchkey_verifier_cache_hits_total",
                "Token checks answered from memory.",
                stats.hits.load(Relaxed),
            ),
            (
                "latchkey_verifier_cache_misses_total",
                "Token checks that read the store.",
                stats.misses.load(Relaxed),
            ),
            (
                "latchkey_verifier_negative_hits_total",
                "Unknown tokens answered from memory.",
                stats.negative_hits.load(Relaxed),
            ),
            (
                "latchkey_verifier_known_refusals_total",
                "Unknown tokens refused by the set of known hashes, without a secret lookup.",
                stats.known_refusals.load(Relaxed),
            ),
            (
                "latchkey_verifier_catch_up_reads_total",
                "Change-feed reads made for tokens the set of known hashes lacked.",
                stats.catch_up_reads.load(Relaxed),
            ),
            (
                "latchkey_verifier_coalesced_misses_total",
                "Misses that shared another request's store read of the same token.",
                stats.coalesced.load(Relaxed),
            ),
            (
                "latchkey_verifier_bad_format_total",
                "Tokens rejected by the checksum or shape, without any lookup.",
                stats.bad_format.load(Relaxed),
            ),
        ],
    );
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}

/// The OpenAPI document.
pub async fn openapi() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        crate::api::spec::pretty(),
    )
        .into_response()
}
