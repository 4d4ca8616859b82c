//! Interop with other services: the JWT exchange, RFC 7662 introspection, RFC 7009
//! revocation, leak reports and forward-auth route policies.

use latchkey_core::policy::Permission;
use latchkey_core::{NewAuditEvent, ScopeSet};
use latchkey_proto::{Reason, RefreshResponse, Scope, TokenType};
use serde_json::{Value, json};

use crate::auth::{Principal, reason_message};
use crate::error::ApiError;
use crate::extract::ClientIp;
use crate::jwt::{AccessClaims, looks_like_jwt};
use crate::service::credentials::Denied;
use crate::state::AppState;
use crate::verifier::VerifyError;

/// Most secrets one leak report may carry.
pub const MAX_LEAK_REPORT: usize = 100;

impl AppState {
    /// Counts a failed check against `ip`: 429 once the address is over its limit (valid
    /// credentials are never held back by the failures of others from the same address).
    fn record_failure(&self, ip: ClientIp, reason: Reason, now: i64) -> Result<(), ApiError> {
        self.metrics.observe_verify(Err(reason));
        let blocked = self.token_failure_throttle.blocked(ip.0, now);
        self.token_failure_throttle.record(ip.0, now);
        match blocked {
            Some(retry_after) => Err(ApiError::RateLimited { retry_after }),
            None => Ok(()),
        }
    }

    /// `POST /api/v1/token/refresh`: a personal token → a new access JWT. An access JWT
    /// does not refresh into another (a stolen one would otherwise live for ever): 403
    /// `token_type_not_allowed`.
    pub async fn refresh(&self, refresh: &str, ip: ClientIp) -> Result<RefreshResponse, ApiError> {
        let now = self.clock.now();
        let checked = match self.check_credential(refresh, now).await {
            Ok(c) => c,
            Err(VerifyError::Invalid(reason)) => {
                self.record_failure(ip, reason, now.unix_timestamp())?;
                return Err(ApiError::InvalidToken(reason_message(reason).into()));
            }
            Err(VerifyError::Unavailable) => {
                return Err(ApiError::Unavailable(
                    "token checks are unavailable; retry shortly".into(),
                ));
            }
        };
        let grant = &checked.verified.grant;
        match self.admit(grant, ip.0, now.unix_timestamp()).await {
            Ok(()) => {}
            Err(Denied::Policy(refusal)) => {
                return Err(ApiError::TokenPolicy(refusal));
            }
            Err(Denied::Unavailable) => {
                return Err(ApiError::Unavailable(
                    "token checks are unavailable; retry shortly".into(),
                ));
            }
        }
        if checked.jwt.is_some() {
            return Err(ApiError::TokenTypeNotAllowed(
                "an access JWT cannot be refreshed; refresh with the personal token".into(),
            ));
        }
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
            iss: self.jwt.issuer().to_owned(),
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
        self.last_used.note(grant, now.unix_timestamp(), ip.0);
        Ok(RefreshResponse {
            access,
            expires_in: u64::try_from(exp - now.unix_timestamp() - 1).unwrap_or(0),
        })
    }

    /// Whether `p` may introspect (and so see a verified token whole).
    pub fn may_introspect(&self, p: &Principal) -> bool {
        self.require_introspector(Some(p)).is_ok()
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
    /// `used_from` is the address the token is used from (the `ip` form field), checked
    /// against its `allowed_ips`; each active answer is a use of the token.
    pub async fn introspect(
        &self,
        p: Option<&Principal>,
        token: &str,
        used_from: Option<std::net::IpAddr>,
    ) -> Result<Value, ApiError> {
        self.require_introspector(p)?;
        let now = self.clock.now();
        let unavailable =
            || ApiError::Unavailable("token checks are unavailable; retry shortly".into());
        let checked = match self.check_credential(token, now).await {
            Ok(c) => c,
            Err(VerifyError::Invalid(_)) => return Ok(json!({"active": false})),
            Err(VerifyError::Unavailable) => return Err(unavailable()),
        };
        match self
            .admit(&checked.verified.grant, used_from, now.unix_timestamp())
            .await
        {
            Ok(()) => {}
            Err(Denied::Policy(_)) => {
                return Ok(json!({"active": false}));
            }
            Err(Denied::Unavailable) => return Err(unavailable()),
        }
        self.last_used
            .note(&checked.verified.grant, now.unix_timestamp(), used_from);
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
        if let Some(metadata) = checked
            .verified
            .grant
            .policy
            .as_ref()
            .and_then(|p| p.metadata.as_ref())
        {
            answer["metadata"] = json!(metadata);
        }
        Ok(answer)
    }

    /// Finds the token a secret (or an access JWT) belongs to, whatever its state, and
    /// whether that secret was rotated out. Unknown secrets are answered from memory (the
    /// verifier's negative cache) after their first look-up.
    async fn token_of_secret(
        &self,
        secret: &str,
    ) -> Result<Option<(latchkey_core::TokenRecord, bool)>, ApiError> {
        let now = self.clock.now();
        let token_id = if looks_like_jwt(secret) {
            match self.jwt.verify(secret, now).await {
                Ok(claims) => (claims.pat.clone(), false),
                Err(_) => return Ok(None),
            }
        } else {
            match self.verifier.find(secret).await {
                Ok(Some(grant)) => (grant.token.id.to_string(), grant.secret_not_after.is_some()),
                Ok(None) => return Ok(None),
                Err(_) => {
                    return Err(ApiError::Unavailable(
                        "token checks are unavailable; retry shortly".into(),
                    ));
                }
            }
        };
        match self.store.get_token(&token_id.0).await {
            Ok(t) => Ok(Some((t, token_id.1))),
            Err(latchkey_store::StoreError::NotFound(_)) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// RFC 7009 revocation: revokes a token the caller may manage (a token may revoke
    /// itself). The answer is the same 200 for unknown tokens, tokens the caller may not
    /// revoke, and secrets already rotated out (which revoke nothing: the live secret of
    /// their token is someone else's), so it tells nobody which secrets exist.
    pub async fn oauth_revoke(&self, p: &Principal, secret: &str) -> Result<(), ApiError> {
        let Some((token, retired)) = self.token_of_secret(secret).await? else {
            return Ok(());
        };
        let is_self = p.token().is_some_and(|g| *g.token.id == *token.id);
        let may_manage = p.can_see(&token) && p.can_manage(&token);
        if retired || (!is_self && !may_manage) {
            tracing::info!(token_id = %token.id, retired, "oauth revoke refused quietly");
            return Ok(());
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
    /// secrets existed. A leaked token cannot be restored, only rotated. A secret already
    /// rotated out is only recorded (`token.leaked` with `"secret": "retired"`): it must
    /// not become a kill switch for the token's new secret. Throttled per address like
    /// failed token checks (each unknown secret counts).
    pub async fn report_leaked(&self, secrets: &[String], ip: ClientIp) -> Result<(), ApiError> {
        if secrets.len() > MAX_LEAK_REPORT {
            return Err(ApiError::field(
                "tokens",
                format!("at most {MAX_LEAK_REPORT} tokens per report"),
            ));
        }
        let now = self.clock.now();
        if let Some(retry_after) = self
            .token_failure_throttle
            .blocked(ip.0, now.unix_timestamp())
        {
            return Err(ApiError::RateLimited { retry_after });
        }
        for secret in secrets {
            if looks_like_jwt(secret) {
                // Access JWTs die within minutes on their own; the personal token behind one
                // is not revoked on the strength of a JWT alone.
                continue;
            }
            let Some((token, retired)) = self.token_of_secret(secret).await? else {
                self.token_failure_throttle
                    .record(ip.0, now.unix_timestamp());
                continue;
            };
            if token.leaked && !retired {
                continue;
            }
            let event = NewAuditEvent {
                action: "token.leaked".into(),
                target_type: Some("token".into()),
                target_id: Some(token.id.clone()),
                workspace_id: token.workspace_id.clone(),
                subject_user_id: token.owner_id.clone(),
                ip: ip.to_text(),
                details: json!({
                    "type": token.token_type.as_str(),
                    "name": token.name,
                    "hint": token.hint,
                    "secret": if retired { "retired" } else { "current" },
                }),
                ..NewAuditEvent::default()
            };
            if retired {
                self.store.append_audit(now, event).await?;
                tracing::warn!(token_id = %token.id, "a rotated-out secret was reported leaked");
                continue;
            }
            self.store.revoke_token(now, &token.id, true, event).await?;
            self.verifier.invalidate_token(&token.id);
            tracing::warn!(token_id = %token.id, "token revoked by a leak report");
        }
        Ok(())
    }
}
