//! Recoverable secrets (DESIGN.md §8): the sealed copy a token of a type in the org's
//! `recoverable_types` keeps, and `POST /api/v1/tokens/{id}/reveal`.
//!
//! The copy is sealed with ChaCha20-Poly1305 under a key derived by HKDF from the hash
//! key for this purpose alone ([`crate::crypto`]), bound to the token's id: a sealed value
//! moved to another token's row does not open. The store never sees the secret in clear.
//!
//! Who may reveal: whoever may see the token (the visibility rule lists and reads by id
//! follow: 404 for anyone else), except that a personal or legacy token's secret goes to
//! its owner only (403 for an org admin who sees it: revealing it would let them act as
//! the owner); a token caller needs `tokens:write`, as for a rotation, which also hands out
//! a secret. Only a token that works now (state `active`) is revealed: a revoked one keeps
//! its copy for a restore, but shows nothing until then.

use latchkey_core::TokenSettings;
use latchkey_core::model::TokenRecord;
use latchkey_proto::{RevealedToken, Scope, TokenState, TokenType};

use crate::auth::Principal;
use crate::crypto;
use crate::error::ApiError;
use crate::state::AppState;

/// The purpose the sealing key is derived for (never reuse it for anything else).
const RECOVERABLE_PURPOSE: &str = "recoverable token secret v1";

/// Why a secret cannot be revealed, for a 409 `not_recoverable`.
fn not_recoverable(message: impl Into<String>) -> ApiError {
    ApiError::NotRecoverable(message.into())
}

impl AppState {
    /// The secret of a new token (or a new secret of a rotated one) sealed for a later
    /// reveal, when `settings` keep `token_type` recoverable; `None` otherwise.
    pub(crate) fn seal_if_recoverable(
        &self,
        settings: &TokenSettings,
        token_type: TokenType,
        token_id: &str,
        secret: &str,
    ) -> Option<Vec<u8>> {
        settings.is_recoverable(token_type).then(|| {
            crypto::seal(
                &self.hash_key,
                RECOVERABLE_PURPOSE,
                token_id.as_bytes(),
                secret.as_bytes(),
            )
        })
    }

    /// `POST /api/v1/tokens/{id}/reveal`: a recoverable token's current secret, audited
    /// (`token.revealed`, which is also a lifecycle event) and throttled per caller.
    pub async fn reveal_token(&self, p: &Principal, id: &str) -> Result<RevealedToken, ApiError> {
        let now = self.clock.now();
        // Per caller (the user, or a workspace token), every attempt: probing for which
        // ids are recoverable costs the same as revealing.
        let key = reveal_throttle_key(p);
        if let Some(retry_after) = self
            .reveal_throttle
            .blocked(key.clone(), now.unix_timestamp())
        {
            return Err(ApiError::RateLimited { retry_after });
        }
        self.reveal_throttle.record(key, now.unix_timestamp());

        let token = self.visible_token(p, id).await?;
        if !p.has_scope(Scope::TokensWrite, token.workspace_id.as_deref()) {
            return Err(ApiError::forbidden(
                "this token lacks the tokens:write scope (revealing a secret needs it)",
            ));
        }
        may_reveal(p, &token)?;
        if !token.recoverable {
            return Err(not_recoverable(
                "this token's secret is not recoverable: its type was not in the org's \
                 recoverable_types when it was created or last rotated (or was taken off \
                 since); rotate it to get a new secret",
            ));
        }
        let view = self.token_view(token.clone(), now).await?;
        if view.state != TokenState::Active {
            return Err(not_recoverable(format!(
                "the token is {}; only a working token's secret is revealed",
                view.state.as_str()
            )));
        }
        let event = Self::token_event(p, "token.revealed", &token);
        let Some(sealed) = self.store.reveal_token(now, &token.id, event).await? else {
            // Revoked, expired or erased since it was read.
            return Err(not_recoverable(
                "the token's secret is no longer recoverable",
            ));
        };
        let secret = crypto::open(
            &self.hash_key,
            RECOVERABLE_PURPOSE,
            token.id.as_bytes(),
            &sealed,
        )
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(|| ApiError::Internal("a sealed token secret cannot be opened".into()))?;
        tracing::info!(token_id = %token.id, "token secret revealed");
        Ok(RevealedToken { token: secret })
    }
}

/// The one caller a reveal counts against: the acting user (whichever session or token
/// they use), else the workspace token.
fn reveal_throttle_key(p: &Principal) -> String {
    match (p.user_id(), p.token()) {
        (Some(user), _) => format!("user:{user}"),
        (None, Some(grant)) => format!("token:{}", grant.token.id),
        (None, None) => String::new(),
    }
}

/// A personal or legacy token's secret goes to its owner only.
fn may_reveal(p: &Principal, token: &TokenRecord) -> Result<(), ApiError> {
    if !owner_rule_allows(p, token.token_type, token.owner_id.as_deref()) {
        return Err(ApiError::forbidden(
            "only its owner may reveal a personal or legacy token's secret",
        ));
    }
    Ok(())
}

/// The owner part of who may reveal: anyone (who sees it) for a workspace token, only its
/// owner for a personal or legacy one.
fn owner_rule_allows(p: &Principal, token_type: TokenType, owner_id: Option<&str>) -> bool {
    !token_type.is_user_owned() || owner_id == p.user_id()
}

impl AppState {
    /// Whether the console offers **Reveal** on `token` (as a list showed it to `p`, so
    /// visible): recoverable, working now, and `p` passes the owner rule of
    /// [`AppState::reveal_token`]; the reveal itself checks everything again.
    pub fn may_reveal_token(&self, p: &Principal, token: &latchkey_proto::Token) -> bool {
        token.recoverable
            && token.state == TokenState::Active
            && p.user_id().is_some()
            && owner_rule_allows(p, token.token_type, token.owner_id.as_deref())
    }
}
