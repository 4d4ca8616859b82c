//! The web console: server-rendered pages over the same service layer as the API.

use axum::Router;

use crate::state::AppState;

/// Console routes (pages, forms, assets).
pub fn routes() -> Router<AppState> {
    Router::new()
}
