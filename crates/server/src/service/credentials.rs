//! One check for every credential a caller can present: a Latchkey token secret or an
//! access JWT standing for a personal token. The API middleware, verify, introspection,
//! refresh and forward-auth all go through it, so they can never disagree.

use std::sync::Arc;

use axum::http::HeaderValue;
use latchkey_core::ScopeSet;
use latchkey_proto::{Reason, Scope, TokenType};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::jwt::{AccessClaims, JwtError, looks_like_jwt};
use crate::state::AppState;
use crate::verifier::{Cached, Verified, VerifyError};

/// A credential that checked out.
#[derive(Debug, Clone)]
pub struct Checked {
    /// The token (for a JWT: its personal token) and its owner.
    pub verified: Verified,
    /// Scopes the credential carries.
    pub scopes: ScopeSet,
    /// When the credential expires, as the `Latchkey-Token-Expiration` value.
    pub expiration: Option<HeaderValue>,
    /// The JWT's claims, when the credential was one.
    pub jwt: Option<Arc<AccessClaims>>,
}

impl Checked {
    /// Expiry as seconds since the epoch.
    pub fn expires_at(&self) -> Option<i64> {
        match &self.jwt {
            Some(claims) => Some(claims.exp),
            None => self
                .verified
                .grant
                .token
                .expires_at
                .map(OffsetDateTime::unix_timestamp),
        }
    }
}

impl AppState {
    /// [`AppState::check_credential`] answered from memory, without awaiting: `None` when
    /// the store must be asked (a cache miss) or the credential is an access JWT.
    #[inline]
    pub fn check_credential_cached(
        &self,
        credential: &str,
        now: OffsetDateTime,
    ) -> Option<Result<Checked, VerifyError>> {
        if looks_like_jwt(credential) {
            return None;
        }
        match self.verifier.check_cached(credential, now) {
            Cached::Answer(answer) => Some(answer.map(|verified| Checked {
                scopes: verified.grant.scopes,
                expiration: verified.grant.expiration_header(),
                verified,
                jwt: None,
            })),
            Cached::Miss(_) => None,
        }
    }

    /// Checks a token secret or an access JWT, without throttling or metrics.
    pub async fn check_credential(
        &self,
        credential: &str,
        now: OffsetDateTime,
    ) -> Result<Checked, VerifyError> {
        if !looks_like_jwt(credential) {
            let verified = self.verifier.verify(credential, now).await?;
            return Ok(Checked {
                scopes: verified.grant.scopes,
                expiration: verified.grant.expiration_header(),
                verified,
                jwt: None,
            });
        }
        let claims = self
            .jwt
            .verify(credential, now)
            .await
            .map_err(|e| match e {
                JwtError::Expired => VerifyError::Invalid(Reason::Expired),
                JwtError::Invalid => VerifyError::Invalid(Reason::NotFound),
            })?;
        let verified = self.verifier.verify_token_id(&claims.pat, now).await?;
        if verified.grant.token.token_type != TokenType::Personal
            || verified.owner.as_ref().map(|o| o.id.as_str()) != Some(claims.sub.as_str())
        {
            return Err(VerifyError::Invalid(Reason::NotFound));
        }
        let claimed: ScopeSet = claims.scp.iter().filter_map(|s| Scope::parse(s)).collect();
        let expiration = latchkey_core::from_unix(claims.exp)
            .format(&Rfc3339)
            .ok()
            .and_then(|s| HeaderValue::from_str(&s).ok());
        Ok(Checked {
            scopes: claimed.intersect(verified.grant.scopes),
            expiration,
            verified,
            jwt: Some(claims),
        })
    }
}
