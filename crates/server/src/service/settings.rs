//! Instance settings and an org's token settings.

use latchkey_core::policy::Permission;
use latchkey_core::{InstanceSettings as InstanceRecord, TokenSettings as SettingsRecord};
use latchkey_proto::{
    InstanceSettings, TokenSettings, UpdateInstanceSettingsRequest, UpdateTokenSettingsRequest,
};
use serde_json::json;

use crate::auth::Principal;
use crate::error::ApiError;
use crate::state::AppState;

/// The longest lifetime setting, in days (100 years).
pub(crate) const MAX_DAYS: u32 = 36_500;

/// Checks a lifetime setting in days: 1 to 36 500.
pub fn check_days(field: &str, days: u32) -> Result<u32, ApiError> {
    if (1..=MAX_DAYS).contains(&days) {
        Ok(days)
    } else {
        Err(ApiError::field(
            field,
            format!("{field} must be from 1 to {MAX_DAYS} days"),
        ))
    }
}

/// The longest lifetime policy setting, in days (10 years).
pub(crate) const MAX_POLICY_DAYS: u32 = 3_650;

/// Checks a lifetime policy setting (`idle_revoke_days`, `max_token_lifetime_days`):
/// 1 to 3 650 days, or `None` for off.
pub fn check_policy_days(field: &str, days: Option<u32>) -> Result<Option<u32>, ApiError> {
    match days {
        Some(d) if !(1..=MAX_POLICY_DAYS).contains(&d) => Err(ApiError::field(
            field,
            format!("{field} must be from 1 to {MAX_POLICY_DAYS} days, or null for off"),
        )),
        other => Ok(other),
    }
}

/// Checks a cap setting: at least 1, or `None` for unlimited.
pub fn check_count(field: &str, value: Option<u32>) -> Result<Option<u32>, ApiError> {
    match value {
        Some(0) => Err(ApiError::field(
            field,
            format!("{field} must be at least 1, or null for unlimited"),
        )),
        other => Ok(other),
    }
}

impl AppState {
    /// `GET /api/v1/instance/settings` (org admins read; owners change).
    pub async fn instance_settings(&self, p: &Principal) -> Result<InstanceSettings, ApiError> {
        p.authorize(Permission::ManageTokenSettings, None)?;
        Ok(self.store.get_instance_settings().await?.to_proto())
    }

    /// `PATCH /api/v1/instance/settings` (the instance owner).
    pub async fn update_instance_settings(
        &self,
        p: &Principal,
        req: UpdateInstanceSettingsRequest,
    ) -> Result<InstanceSettings, ApiError> {
        p.authorize(Permission::ManageInstance, None)?;
        let current = self.store.get_instance_settings().await?;
        let next = InstanceRecord {
            max_active_tokens: match req.max_active_tokens {
                Some(v) => check_count("max_active_tokens", v)?,
                None => current.max_active_tokens,
            },
            default_token_lifetime_days: match req.default_token_lifetime_days {
                Some(d) => check_days("default_token_lifetime_days", d)?,
                None => current.default_token_lifetime_days,
            },
        };
        let mut event = p.event("instance.settings_changed");
        event.target_type = Some("instance".into());
        event.details = json!({
            "max_active_tokens": next.max_active_tokens,
            "default_token_lifetime_days": next.default_token_lifetime_days,
        });
        let now = self.clock.now();
        Ok(self
            .store
            .update_instance_settings(now, next, event)
            .await?
            .to_proto())
    }

    async fn settings_org(
        &self,
        p: &Principal,
        org_id: &str,
    ) -> Result<latchkey_core::OrgRecord, ApiError> {
        p.authorize(Permission::ManageTokenSettings, None)?;
        let org = self.org().await?;
        if org.id != org_id {
            return Err(ApiError::NotFound("organization"));
        }
        Ok(org)
    }

    /// `GET /api/v1/orgs/{org}/token-settings` (org admins).
    pub async fn token_settings(
        &self,
        p: &Principal,
        org_id: &str,
    ) -> Result<TokenSettings, ApiError> {
        Ok(self
            .settings_org(p, org_id)
            .await?
            .token_settings
            .to_proto())
    }

    /// `PATCH /api/v1/orgs/{org}/token-settings`: takes effect on the next request.
    pub async fn update_token_settings(
        &self,
        p: &Principal,
        org_id: &str,
        req: UpdateTokenSettingsRequest,
    ) -> Result<TokenSettings, ApiError> {
        let org = self.settings_org(p, org_id).await?;
        let current = org.token_settings;
        let next = SettingsRecord {
            enabled_types: match &req.enabled_types {
                Some(types) => types.iter().fold(0, |acc, t| acc | t.bit()),
                None => current.enabled_types,
            },
            personal_token_ttl_days: match req.personal_token_ttl_days {
                Some(Some(d)) => Some(check_days("personal_token_ttl_days", d)?),
                Some(None) => None,
                None => current.personal_token_ttl_days,
            },
            max_tokens_per_user: match req.max_tokens_per_user {
                Some(v) => check_count("max_tokens_per_user", v)?,
                None => current.max_tokens_per_user,
            },
            token_creators: req.token_creators.unwrap_or(current.token_creators),
            recoverable_types: match &req.recoverable_types {
                Some(types) => types.iter().fold(0, |acc, t| acc | t.bit()),
                None => current.recoverable_types,
            },
            idle_revoke_days: match req.idle_revoke_days {
                Some(v) => check_policy_days("idle_revoke_days", v)?,
                None => current.idle_revoke_days,
            },
            max_token_lifetime_days: match req.max_token_lifetime_days {
                Some(v) => check_policy_days("max_token_lifetime_days", v)?,
                None => current.max_token_lifetime_days,
            },
            approval_required_types: match &req.approval_required_types {
                Some(types) => types.iter().fold(0, |acc, t| acc | t.bit()),
                None => current.approval_required_types,
            },
        };
        // Approval guards org admins' tokens from org admins: only an owner moves it.
        if next.approval_required_types != current.approval_required_types && !p.is_org_owner() {
            return Err(ApiError::forbidden(
                "only org owners may change approval_required_types",
            ));
        }
        let mut event = p.event("org.token_settings_changed");
        event.target_type = Some("org".into());
        event.target_id = Some(org.id.clone());
        event.details = json!({
            "before": current.to_proto(),
            "after": next.to_proto(),
        });
        let now = self.clock.now();
        let updated = self
            .store
            .update_token_settings(now, &org.id, next, event)
            .await?;
        self.verifier.refresh_org().await?;
        Ok(updated.token_settings.to_proto())
    }
}
