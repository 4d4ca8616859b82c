//! One check for every credential a caller can present: a Latchkey token secret or an
//! access JWT standing for a personal token. The API middleware, verify, introspection,
//! refresh and forward-auth all go through it, so they can never disagree.

use std::sync::Arc;

use axum::http::HeaderValue;
use latchkey_core::ScopeSet;
use latchkey_proto::{Reason, Scope, TokenType};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::budgets::{Refused, Taken};
use crate::error::{PolicyRefusal, RateHeaders};
use crate::jwt::{AccessClaims, JwtError, looks_like_jwt};
use crate::state::AppState;
use crate::verifier::{Cached, Grant, GrantPolicy, Verified, VerifyError};

/// Why a valid credential's use was not admitted by its token's policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    /// Refused by the policy.
    Policy(PolicyRefusal),
    /// A budget could not be leased (the store is away).
    Unavailable,
}

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
    /// Admits one use of a token that checked out from `ip` at `now` (unix seconds): its
    /// `allowed_ips`, then its usage credits, then its rate limit (DESIGN.md's precedence);
    /// every admitted use takes one of each budget; a refusal is counted in the verify
    /// metrics here. A token without a policy pays one branch.
    #[inline]
    pub async fn admit(
        &self,
        grant: &Grant,
        ip: Option<std::net::IpAddr>,
        now: i64,
    ) -> Result<(), Denied> {
        match &grant.policy {
            None => Ok(()),
            Some(policy) => {
                let admitted = self.admit_policy(grant, policy, ip, now).await;
                if let Err(Denied::Policy(refusal)) = &admitted {
                    self.metrics.observe_verify(Err(refusal.reason));
                }
                admitted
            }
        }
    }

    async fn admit_policy(
        &self,
        grant: &Grant,
        policy: &Arc<GrantPolicy>,
        ip: Option<std::net::IpAddr>,
        now: i64,
    ) -> Result<(), Denied> {
        if !latchkey_core::token_policy::ip_allowed(policy.allowed_ips.as_deref(), ip) {
            return Err(Denied::Policy(PolicyRefusal {
                reason: Reason::IpNotAllowed,
                retry_after: None,
                rate: None,
            }));
        }
        let id = grant.token_id();
        let store = self.store.as_ref();
        let mut uses_taken: Option<Taken> = None;
        if let Some(rule) = policy.uses {
            match self.budgets.take(store, id, rule, now).await {
                Ok(taken) => uses_taken = Some(taken),
                Err(Refused::Exhausted { retry_after, .. }) => {
                    return Err(Denied::Policy(PolicyRefusal {
                        reason: Reason::UsageExceeded,
                        retry_after,
                        rate: None,
                    }));
                }
                Err(Refused::Unavailable) => return Err(Denied::Unavailable),
            }
        }
        if let Some((rule, limit)) = policy.rate {
            let refused = match self.budgets.take(store, id, rule, now).await {
                Ok(_) => None,
                Err(Refused::Exhausted {
                    retry_after,
                    remaining,
                }) => {
                    let reset = retry_after.unwrap_or(1);
                    Some(Denied::Policy(PolicyRefusal {
                        reason: Reason::RateLimited,
                        retry_after: Some(reset),
                        rate: Some(RateHeaders {
                            limit,
                            remaining,
                            reset,
                        }),
                    }))
                }
                Err(Refused::Unavailable) => Some(Denied::Unavailable),
            };
            if let Some(denied) = refused {
                if let (Some(taken), Some(rule)) = (uses_taken, policy.uses) {
                    self.budgets.untake(id, rule.kind, taken);
                }
                return Err(denied);
            }
        }
        Ok(())
    }

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
