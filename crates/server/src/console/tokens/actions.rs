//! The row actions, one route and one handler each — `…/{id}/revoke`, `/restore`,
//! `/rotate`, `/delete` — under each token page's prefix (see [`super::TokenPlace`]).
//! A success returns to the page's place (search, filters, sort, page) with a banner that
//! names the token and the row as scroll anchor; a rotation answers with the show-once
//! dialog at that place; a refusal shows the page there with the message.

use std::collections::HashMap;

use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use latchkey_proto::RotateTokenRequest;
use time::{Duration, OffsetDateTime};

use super::TokenPlace;
use crate::console::extract::{Form, FormData, SignedIn};
use crate::console::render::{Flash, Part, View, when};
use crate::error::ApiError;
use crate::state::AppState;

/// The token a row action is about, and the page it was sent from (by the route's prefix).
pub struct TokenTarget {
    /// The page.
    pub place: TokenPlace,
    /// The token's id.
    pub id: String,
}

impl FromRequestParts<AppState> for TokenTarget {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let Path(params) = Path::<HashMap<String, String>>::from_request_parts(parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let place = match (params.get("ws"), params.get("sa")) {
            (Some(ws), _) => TokenPlace::Workspace(ws.clone()),
            (None, Some(sa)) => TokenPlace::ServiceAccount(sa.clone()),
            (None, None) if parts.uri.path().starts_with("/account/") => TokenPlace::Account,
            (None, None) => TokenPlace::ApiAccess,
        };
        Ok(TokenTarget {
            place,
            id: params.get("id").cloned().unwrap_or_default(),
        })
    }
}

impl TokenTarget {
    /// Back to the form's place with `flash`, or the page there with the refusal.
    async fn finish(
        self,
        state: &AppState,
        s: &SignedIn,
        data: FormData,
        result: Result<Flash, ApiError>,
    ) -> Response {
        let back = data.back_or(&self.place.url());
        match result {
            Ok(flash) => s.done(&back, flash),
            Err(e) => {
                let view = View::refused(state, &e, back);
                self.place.failed(state, s, e, view).await
            }
        }
    }
}

fn row_anchor(id: &str) -> String {
    format!("token-{id}")
}

/// `POST …/{id}/revoke`.
pub async fn revoke(
    State(state): State<AppState>,
    target: TokenTarget,
    Form { s, data }: Form,
) -> Response {
    let result = state.revoke_token(&s.p, &target.id).await.map(|t| {
        Flash::new("revoked")
            .subject(t.name)
            .anchor(row_anchor(&t.id))
    });
    target.finish(&state, &s, data, result).await
}

/// `POST …/{id}/restore`.
pub async fn restore(
    State(state): State<AppState>,
    target: TokenTarget,
    Form { s, data }: Form,
) -> Response {
    let result = state.restore_token(&s.p, &target.id).await.map(|t| {
        Flash::new("restored")
            .subject(t.name)
            .anchor(row_anchor(&t.id))
    });
    target.finish(&state, &s, data, result).await
}

/// `POST …/{id}/delete`.
pub async fn delete(
    State(state): State<AppState>,
    target: TokenTarget,
    Form { s, data }: Form,
) -> Response {
    let result = async {
        let token = state.get_token(&s.p, &target.id).await?;
        state.delete_token(&s.p, &token.id).await?;
        Ok(Flash::new("deleted").subject(token.name).anchor("tokens"))
    }
    .await;
    target.finish(&state, &s, data, result).await
}

/// `POST …/{id}/rotate` (`grace_seconds`: how long the old secret keeps working).
pub async fn rotate(
    State(state): State<AppState>,
    target: TokenTarget,
    Form { s, data }: Form,
) -> Response {
    let now = state.clock.now();
    let result = match data.text("grace_seconds").map(|g| g.parse::<u64>()) {
        None => Ok(0),
        Some(Ok(g)) => Ok(g),
        Some(Err(_)) => Err(ApiError::field(
            "grace_seconds",
            "the grace period must be a whole number of seconds",
        )),
    };
    let result = match result {
        Ok(grace) => {
            let req = RotateTokenRequest {
                grace_seconds: (grace > 0).then_some(grace),
                ..RotateTokenRequest::default()
            };
            state
                .rotate_token(&s.p, &target.id, req, None)
                .await
                .map(|created| (created, grace_note(grace, now)))
        }
        Err(e) => Err(e),
    };
    target
        .place
        .answer(&state, &s, data, false, "Token rotated", result)
        .await
}

/// "The old secret stops working in 1 hour." (with the exact time), for a grace period.
fn grace_note(grace: u64, now: OffsetDateTime) -> Vec<Part> {
    let until = i64::try_from(grace)
        .ok()
        .filter(|g| *g > 0)
        .and_then(|g| now.checked_add(Duration::seconds(g)));
    let Some(until) = until else {
        return Vec::new();
    };
    vec![
        Part::Text("The old secret stops working ".into()),
        Part::Time(when(until, now)),
        Part::Text(".".into()),
    ]
}
