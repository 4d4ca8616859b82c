//! The row actions, one route and one handler each — `…/{id}/revoke`, `/restore`,
//! `/rotate`, `/delete`, `/reveal` — under each token page's prefix (see
//! [`super::TokenPlace`]), and `…/bulk-revoke` for the rows ticked on the inventory pages.
//! A success returns to the page's place (search, filters, sort, page) with a banner that
//! names the token and the row as scroll anchor; a rotation answers with the show-once
//! dialog at that place; a refusal shows the page there with the message.

use std::collections::HashMap;

use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use latchkey_proto::{BulkRevokeRequest, RotateTokenRequest, SkipReason};
use time::{Duration, OffsetDateTime};

use super::TokenPlace;
use crate::console::extract::{Form, FormData, SignedIn};
use crate::console::render::{Flash, Notice, Part, SecretDialog, SecretKind, View, when, when_opt};
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

/// `POST …/{id}/approve` (`approve`) or `…/deny`: a pending token decided by an org admin
/// who did not create it (the service refuses anyone else).
async fn decide(
    state: AppState,
    target: TokenTarget,
    Form { s, data }: Form,
    approve: bool,
) -> Response {
    let result = state
        .decide_token(&s.p, &target.id, approve)
        .await
        .map(|t| {
            Flash::new(if approve { "approved" } else { "denied" })
                .subject(t.name)
                .anchor(row_anchor(&t.id))
        });
    target.finish(&state, &s, data, result).await
}

/// `POST …/{id}/approve`.
pub async fn approve(State(state): State<AppState>, target: TokenTarget, form: Form) -> Response {
    decide(state, target, form, true).await
}

/// `POST …/{id}/deny`.
pub async fn deny(State(state): State<AppState>, target: TokenTarget, form: Form) -> Response {
    decide(state, target, form, false).await
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

/// Most names a bulk revoke's banner spells out per list (the rest are counted).
const NAMED_IN_BANNER: usize = 20;

/// `POST …/bulk-revoke` (the ticked rows' `ids`): revokes them in one transaction as
/// `POST /api/v1/tokens/bulk-revoke` does and returns to the form's place with a banner
/// naming what was revoked and what was skipped, with why.
pub async fn bulk_revoke(
    State(state): State<AppState>,
    target: TokenTarget,
    Form { s, data }: Form,
) -> Response {
    let back = data.back_or(&target.place.url());
    let ids = data.all("ids");
    let result = if ids.is_empty() {
        Err(ApiError::field("ids", "select the tokens to revoke first"))
    } else {
        state.bulk_revoke(&s.p, BulkRevokeRequest { ids }).await
    };
    let answer = match result {
        Ok(answer) => answer,
        Err(e) => {
            let view = View::refused(&state, &e, back);
            return target.place.failed(&state, &s, e, view).await;
        }
    };
    // Names read after the revoke: each id the caller may see is named, others by id.
    let named = |id: &str| {
        let state = &state;
        let s = &s;
        let id = id.to_owned();
        async move {
            match state.get_token(&s.p, &id).await {
                Ok(t) => format!("“{}”", t.name),
                Err(_) => id,
            }
        }
    };
    let mut text = String::new();
    if !answer.revoked.is_empty() {
        let mut names = Vec::new();
        for id in answer.revoked.iter().take(NAMED_IN_BANNER) {
            names.push(named(id).await);
        }
        text.push_str(&format!(
            "Revoked {}: {}{}.",
            count(answer.revoked.len()),
            names.join(", "),
            more(answer.revoked.len())
        ));
    }
    if !answer.skipped.is_empty() {
        let mut names = Vec::new();
        for skipped in answer.skipped.iter().take(NAMED_IN_BANNER) {
            names.push(format!(
                "{} ({})",
                named(&skipped.id).await,
                skip_text(skipped.reason)
            ));
        }
        if !text.is_empty() {
            text.push(' ');
        }
        text.push_str(&format!(
            "Skipped {}: {}{}.",
            count(answer.skipped.len()),
            names.join(", "),
            more(answer.skipped.len())
        ));
    }
    s.done(
        &back,
        Flash::new("bulk-revoked").subject(text).anchor("tokens"),
    )
}

fn count(n: usize) -> String {
    if n == 1 {
        "1 token".to_owned()
    } else {
        format!("{n} tokens")
    }
}

fn more(n: usize) -> String {
    if n > NAMED_IN_BANNER {
        format!(" and {} more", n - NAMED_IN_BANNER)
    } else {
        String::new()
    }
}

/// Why a token was left alone, as a person reads it.
fn skip_text(reason: SkipReason) -> &'static str {
    match reason {
        SkipReason::NotFound => "not found",
        SkipReason::Forbidden => "you may not revoke it",
        SkipReason::AlreadyRevoked => "already revoked",
        SkipReason::Expired => "expired",
        SkipReason::Duplicate => "selected twice",
    }
}

/// `POST …/{id}/reveal`: a recoverable token's secret again, in the secret dialog at the
/// form's place (with **Copy to Clipboard**); who may, the audit event and the throttle
/// are the service's (`POST /api/v1/tokens/{id}/reveal`).
pub async fn reveal(
    State(state): State<AppState>,
    target: TokenTarget,
    Form { s, data }: Form,
) -> Response {
    let now = state.clock.now();
    let back = data.back_or(&target.place.url());
    let result = async {
        let token = state.get_token(&s.p, &target.id).await?;
        let revealed = state.reveal_token(&s.p, &token.id).await?;
        Ok::<_, ApiError>((token, revealed))
    }
    .await;
    match result {
        Ok((token, revealed)) => {
            let notice = Notice::ok(format!("Token revealed: {}.", token.name));
            let dialog = SecretDialog {
                heading: "Token revealed".into(),
                name: token.name,
                kind: SecretKind::RevealedToken,
                expires: when_opt(token.expires_at, now),
                note: Vec::new(),
                secret: revealed.token,
            };
            target
                .place
                .render(&state, &s, View::shown(back, dialog, notice))
                .await
        }
        Err(e) => {
            let view = View::refused(&state, &e, back);
            target.place.failed(&state, &s, e, view).await
        }
    }
}
