//! Health, readiness, metrics and the OpenAPI document.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use latchkey_proto::Health;

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

/// Prometheus metrics.
pub async fn metrics(State(state): State<AppState>) -> Response {
    let hits = state
        .verifier
        .stats
        .hits
        .load(std::sync::atomic::Ordering::Relaxed) as f64;
    let misses = state
        .verifier
        .stats
        .misses
        .load(std::sync::atomic::Ordering::Relaxed) as f64;
    let negative = state
        .verifier
        .stats
        .negative_hits
        .load(std::sync::atomic::Ordering::Relaxed) as f64;
    let body = state.metrics.render(&[
        (
            "latchkey_verifier_cache_hits",
            "Token checks answered from memory.",
            hits,
        ),
        (
            "latchkey_verifier_cache_misses",
            "Token checks that read the store.",
            misses,
        ),
        (
            "latchkey_verifier_negative_hits",
            "Unknown tokens answered from memory.",
            negative,
        ),
        (
            "latchkey_verifier_cached_grants",
            "Grants held in memory.",
            state.verifier.cached_grants() as f64,
        ),
        (
            "latchkey_change_feed_version",
            "Change feed version applied on this node.",
            state.verifier.version() as f64,
        ),
    ]);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}

/// The OpenAPI document.
pub async fn openapi() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        crate::api::openapi_json(),
    )
        .into_response()
}
