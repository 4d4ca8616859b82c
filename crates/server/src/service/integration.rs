//! Integration paths for other services: the JWT exchange, RFC 7662 introspection, RFC 7009
//! revocation, leak reports and forward-auth route policies.

use latchkey_core::policy::Permission;
use latchkey_core::token;
use latchkey_core::{NewAuditEvent, ScopeSet};
use latchkey_proto::{Reason, RefreshResponse, Scope, TokenType};
use serde_json::{Value, json};

use crate::auth::{Principal, reason_message};
use crate::error::ApiError;
use crate::extract::ClientIp;
use crate::jwt::{AccessClaims, looks_like_jwt};
use crate::state::AppState;
use crate::verifier::VerifyError;

/// Most secrets one leak report may carry.
pub const MAX_LEAK_REPORT: usize = 100;

impl AppState {
    fn throttled(&self, ip: ClientIp, now: i64) -> Result<(), ApiError> {
        match self.token_failure_throttle.blocked(ip.0, now) {
            Some(retry_after) => Err(ApiError::RateLimited { retry_after }),
            None => Ok(()),
        }
    }

    fn record_failure(&self, ip: ClientIp, reason: Reason, now: i64) {
        self.metrics.observe_verify(Err(reason));
        self.token_failure_throttle.record(ip.0, now);
    }

    /// `POST /api/v1/token/refresh`: a personal token (or an access JWT) → a new access JWT.
    pub async fn refresh(&self, refresh: &str, ip: ClientIp) -> Result<RefreshResponse, ApiError> {
        let now = self.clock.now();
        self.throttled(ip, now.unix_timestamp())?;
        let checked = match self.check_credential(refresh, now).await {
            Ok(c) => c,
            Err(VerifyError::Invalid(reason)) => {
                self.record_failure(ip, reason, now.unix_timestamp());
                return Err(ApiError::InvalidToken(reason_message(reason).into()));
            }
            Err(VerifyError::Unavailable) => {
                return Err(ApiError::Unavailable(
                    "token checks are unavailable; retry shortly".into(),
                ));
            }
        };
        let grant = &checked.verified.grant;
        if grant.token.token_type != TokenType::Personal {
            return Err(ApiError::TokenTypeNotAllowed(format!(
                "only personal tokens can be exchanged for access JWTs; this is a {} token",
                grant.token.token_type.as_str()
            )));
        }
        let owner = checked
            .verified
            .owner
            .clone()
            .ok_or_else(|| ApiError::Internal("personal token without owner".into()))?;
        let workspace = grant
            .token
            .workspace_id
            .as_deref()
            .unwrap_or_default()
            .to_owned();
        let rights =
            latchkey_core::policy::user_scopes(owner.role, owner.workspace_role(Some(&workspace)));
        let scopes: ScopeSet = checked.scopes.intersect(rights);
        let ttl = i64::try_from(self.config.jwt.ttl_secs).unwrap_or(300);
        // `now` is whole seconds, up to one second behind real time: one extra second makes
        // the JWT live at least `expires_in` seconds from the moment the client receives it.
        let mut exp = now.unix_timestamp() + ttl + 1;
        if let Some(token_exp) = checked.expires_at() {
            exp = exp.min(token_exp);
        }
        let claims = AccessClaims {
            iss: self.public_url.clone(),
            aud: "latchkey".into(),
            sub: owner.id.clone(),
            ws: workspace,
            scp: scopes
                .to_vec()
                .iter()
                .map(|s| s.as_str().to_owned())
                .collect(),
            jti: latchkey_core::new_id(),
            pat: grant.token.id.to_string(),
            iat: now.unix_timestamp(),
            exp,
        };
        let access = self.jwt.issue(&claims, now).await?;
        self.metrics.observe_verify(Ok(()));
        self.last_used
            .record(grant.token_id(), now.unix_timestamp(), ip.0);
        Ok(RefreshResponse {
            access,
            expires_in: u64::try_from(exp - now.unix_timestamp() - 1).unwrap_or(0),
        })
    }

    /// Who may introspect: a token with `introspect` (or an admin token), or an org admin.
    fn require_introspector(&self, p: Option<&Principal>) -> Result<(), ApiError> {
        let p = p.ok_or_else(ApiError::unauthenticated)?;
        if let Some(grant) = p.token()
            && grant.token.token_type == TokenType::Admin
        {
            return Ok(());
        }
        if p.token_scopes()
            .is_some_and(|s| s.contains(Scope::Introspect))
        {
            return Ok(());
        }
        p.authorize(Permission::Introspect, None)
    }

    /// RFC 7662 introspection: active answers carry the token's facts; everything else is
    /// exactly `{"active": false}`.
    pub async fn introspect(&self, p: Option<&Principal>, token: &str) -> Result<Value, ApiError> {
        self.require_introspector(p)?;
        let now = self.clock.now();
        let checked = match self.check_credential(token, now).await {
            Ok(c) => c,
            Err(VerifyError::Invalid(_)) => return Ok(json!({"active": false})),
            Err(VerifyError::Unavailable) => {
                return Err(ApiError::Unavailable(
                    "token checks are unavailable; retry shortly".into(),
                ));
            }
        };
        let t = &checked.verified.grant.token;
        let mut answer = json!({
            "active": true,
            "scope": checked.scopes.to_space_separated(),
            "client_id": &*t.id,
            "sub": t.owner_id.as_deref().or(t.workspace_id.as_deref()),
            "token_type": "Bearer",
            "iat": checked.jwt.as_ref().map(|c| c.iat).unwrap_or(t.created_at.unix_timestamp()),
            "workspace_id": t.workspace_id.as_deref(),
            "latchkey_type": t.token_type.as_str(),
        });
        if let Some(owner) = &checked.verified.owner {
            answer["username"] = json!(owner.username);
        }
        if let Some(exp) = checked.expires_at() {
            answer["exp"] = json!(exp);
        }
        if let Some(env) = &t.environment {
            answer["environment"] = json!(env);
        }
        if !t.projects.is_empty() {
            answer["projects"] = json!(t.projects);
        }
        Ok(answer)
    }

    /// Finds the token a secret (or an access JWT) belongs to, whatever its state.
    async fn token_of_secret(
        &self,
        secret: &str,
    ) -> Result<Option<latchkey_core::TokenRecord>, ApiError> {
        let now = self.clock.now();
        if looks_like_jwt(secret) {
            return match self.jwt.verify(secret, now).await {
                Ok(claims) => match self.store.get_token(&claims.pat).await {
                    Ok(t) => Ok(Some(t)),
                    Err(latchkey_store::StoreError::NotFound(_)) => Ok(None),
                    Err(e) => Err(e.into()),
                },
                Err(_) => Ok(None),
            };
        }
        if !matches!(token::parse(secret), Ok(token::SecretKind::Token(_))) {
            return Ok(None);
        }
        let hash = self.hash_key.hash(secret);
        Ok(self.store.find_secret(&hash).await?.map(|(t, _)| t))
    }

    /// RFC 7009 revocation: revokes a token the caller may manage (a token may revoke
    /// itself); unknown tokens get 200 as the RFC says.
    pub async fn oauth_revoke(&self, p: &Principal, secret: &str) -> Result<(), ApiError> {
        let Some(token) = self.token_of_secret(secret).await? else {
            return Ok(());
        };
        let is_self = p.token().is_some_and(|g| *g.token.id == *token.id);
        let may_manage = p.can_see(&token) && p.can_manage(&token);
        if !is_self && !may_manage {
            return Err(ApiError::forbidden("you may not revoke this token"));
        }
        let now = self.clock.now();
        let mut event = p.event("token.revoked");
        event.target_type = Some("token".into());
        event.target_id = Some(token.id.clone());
        event.workspace_id = token.workspace_id.clone();
        event.subject_user_id = token.owner_id.clone();
        event.details =
            json!({"type": token.token_type.as_str(), "name": token.name, "via": "oauth_revoke"});
        self.store
            .revoke_token(now, &token.id, false, event)
            .await?;
        self.verifier.invalidate_token(&token.id);
        Ok(())
    }

    /// Leak report: anyone holding a secret may revoke it; the answer never says which
    /// secrets existed. A leaked token cannot be restored, only rotated.
    pub async fn report_leaked(&self, secrets: &[String], ip: ClientIp) -> Result<(), ApiError> {
        if secrets.len() > MAX_LEAK_REPORT {
            return Err(ApiError::field(
                "tokens",
                format!("at most {MAX_LEAK_REPORT} tokens per report"),
            ));
        }
        let now = self.clock.now();
        for secret in secrets {
            if looks_like_jwt(secret) {
                // Access JWTs die within minutes on their own; the personal token behind one
                // is not revoked on the strength of a JWT alone.
                continue;
            }
            let Some(token) = self.token_of_secret(secret).await? else {
                continue;
            };
            if token.leaked {
                continue;
            }
            let event = NewAuditEvent {
                action: "token.leaked".into(),
                target_type: Some("token".into()),
                target_id: Some(token.id.clone()),
                workspace_id: token.workspace_id.clone(),
                subject_user_id: token.owner_id.clone(),
                ip: ip.to_text(),
                details: json!({"type": token.token_type.as_str(), "name": token.name, "hint": token.hint}),
                ..NewAuditEvent::default()
            };
            self.store.revoke_token(now, &token.id, true, event).await?;
            self.verifier.invalidate_token(&token.id);
            tracing::warn!(token_id = %token.id, "token revoked by a leak report");
        }
        Ok(())
    }
}
