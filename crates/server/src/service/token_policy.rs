//! A token's verify-time policy (DESIGN.md §8) on create and `PATCH /api/v1/tokens/{id}`:
//! the wire fields checked by `latchkey_core::token_policy` (422 naming the field, nothing
//! changed), and the rule that a token never widens its own policy.

use latchkey_core::token_policy::{
    self, FieldError, Metadata, RateLimit, Refill, TokenPolicy, UsesPolicy, UsesState,
};
use latchkey_proto::{CreateTokenRequest, Token, UpdateTokenRequest};
use latchkey_store::TokenPolicyPatch;
use serde_json::json;

use crate::auth::Principal;
use crate::error::ApiError;
use crate::state::AppState;

fn field(e: FieldError) -> ApiError {
    ApiError::field(e.field, e.message)
}

fn metadata(value: serde_json::Value) -> Result<Metadata, ApiError> {
    token_policy::validate_metadata(value).map_err(field)
}

fn allowed_ips(list: &[String]) -> Result<Vec<ipnet::IpNet>, ApiError> {
    token_policy::parse_allowed_ips(list).map_err(field)
}

fn rate_limit(r: latchkey_proto::RateLimit) -> Result<RateLimit, ApiError> {
    token_policy::validate_rate_limit(r.limit, r.window_secs).map_err(field)
}

fn remaining_uses(n: i64) -> Result<i64, ApiError> {
    token_policy::validate_remaining_uses(n).map_err(field)
}

fn refill(r: latchkey_proto::Refill) -> Result<Refill, ApiError> {
    token_policy::validate_refill(r.amount, r.interval).map_err(field)
}

/// The policy of a token being created, and its initial usage credits.
pub(crate) fn create_policy(
    req: &CreateTokenRequest,
) -> Result<(TokenPolicy, Option<UsesState>), ApiError> {
    let metadata = req.metadata.clone().map(metadata).transpose()?;
    let allowed_ips = req.allowed_ips.as_deref().map(allowed_ips).transpose()?;
    let rate_limit = req.rate_limit.map(rate_limit).transpose()?;
    let refill = req.refill.map(refill).transpose()?;
    // A refill alone starts full.
    let uses = match req.remaining_uses {
        Some(n) => Some(remaining_uses(n)?),
        None => refill.map(|r| r.amount),
    };
    let policy = TokenPolicy {
        metadata,
        allowed_ips,
        rate_limit,
        uses: uses.map(|_| UsesPolicy { refill }),
    };
    let state = uses.map(|pool| UsesState {
        pool,
        period: 0,
        held: 0,
    });
    Ok((policy, state))
}

/// The store's patch for a `PATCH` body, checked field by field.
fn patch_of(req: UpdateTokenRequest) -> Result<(TokenPolicyPatch, Vec<&'static str>), ApiError> {
    let mut changed = Vec::new();
    let mut patch = TokenPolicyPatch::default();
    if let Some(value) = req.metadata {
        changed.push("metadata");
        patch.metadata = Some(value.map(metadata).transpose()?);
    }
    if let Some(list) = req.allowed_ips {
        changed.push("allowed_ips");
        patch.allowed_ips = Some(list.as_deref().map(allowed_ips).transpose()?);
    }
    if let Some(rate) = req.rate_limit {
        changed.push("rate_limit");
        patch.rate_limit = Some(rate.map(rate_limit).transpose()?);
    }
    if let Some(n) = req.remaining_uses {
        changed.push("remaining_uses");
        patch.remaining_uses = Some(n.map(remaining_uses).transpose()?);
    }
    if let Some(r) = req.refill {
        changed.push("refill");
        patch.refill = Some(r.map(refill).transpose()?);
    }
    Ok((patch, changed))
}

/// A token changing its own policy may only narrow it: fewer networks, a lower rate, fewer
/// uses, a smaller refill; its metadata is not its own to change.
fn check_narrowing(
    old: &TokenPolicy,
    remaining: Option<u64>,
    patch: &TokenPolicyPatch,
) -> Result<(), ApiError> {
    let widens = |what: &str| {
        ApiError::forbidden(format!(
            "a token cannot widen its own policy ({what}); sign in or use another credential"
        ))
    };
    if patch.metadata.is_some() {
        return Err(widens("metadata"));
    }
    if let Some(new) = &patch.allowed_ips {
        let ok = match (new, &old.allowed_ips) {
            (_, None) => true,
            (None, Some(_)) => false,
            (Some(new), Some(old)) => token_policy::ips_within(new, old),
        };
        if !ok {
            return Err(widens("allowed_ips"));
        }
    }
    if let Some(new) = patch.rate_limit
        && !token_policy::rate_within(new, old.rate_limit)
    {
        return Err(widens("rate_limit"));
    }
    if let Some(new) = patch.remaining_uses {
        let ok = match (new, remaining) {
            (_, None) => true,
            (None, Some(_)) => false,
            (Some(n), Some(left)) => u64::try_from(n).is_ok_and(|n| n <= left),
        };
        if !ok {
            return Err(widens("remaining_uses"));
        }
    }
    let old_refill = old.uses.and_then(|u| u.refill);
    let new_refill = match patch.refill {
        Some(r) => r,
        // Credits given to a token that had none come without the old refill.
        None => old_refill,
    };
    if (patch.refill.is_some() || patch.remaining_uses.is_some())
        && old.uses.is_some()
        && !token_policy::refill_within(new_refill, old_refill)
    {
        return Err(widens("refill"));
    }
    Ok(())
}

impl AppState {
    /// A token's `remaining_uses` as this node sees it at `now` (`None`: unlimited).
    pub(crate) fn remaining_uses_now(
        &self,
        token: &latchkey_core::TokenRecord,
        now: time::OffsetDateTime,
    ) -> Option<u64> {
        token.remaining_uses(
            now.unix_timestamp(),
            self.budgets.unreported_uses(&token.id),
        )
    }

    /// `PATCH /api/v1/tokens/{id}`: changes a token's verify-time policy (those who may
    /// manage it; a token may only narrow its own). Every node's cache sees the change
    /// through the change feed; this node's at once.
    pub async fn update_token(
        &self,
        p: &Principal,
        id: &str,
        req: UpdateTokenRequest,
    ) -> Result<Token, ApiError> {
        let now = self.clock.now();
        let token = self.manageable_token(p, id).await?;
        let (mut patch, changed) = patch_of(req)?;
        if changed.is_empty() {
            return self.token_view(token, now).await;
        }
        if let Some(Some(r)) = patch.refill
            && patch.remaining_uses.is_none()
            && token.policy.uses.is_none()
        {
            // Credits given by a refill alone start full.
            patch.remaining_uses = Some(Some(r.amount));
        }
        if matches!(patch.refill, Some(Some(_))) && patch.remaining_uses == Some(None) {
            return Err(ApiError::field(
                "refill",
                "a refill needs remaining_uses; remaining_uses: null removes both",
            ));
        }
        if p.token().is_some_and(|g| *g.token.id == *token.id) {
            let remaining = self.remaining_uses_now(&token, now);
            check_narrowing(&token.policy, remaining, &patch)?;
        }
        if patch.remaining_uses.is_some() {
            // What this node spent is reported first: the new count is "from now on".
            self.budgets
                .settle_token(self.store.as_ref(), &token.id, now.unix_timestamp())
                .await;
        }
        let mut event = Self::token_event(p, "token.updated", &token);
        event.details["changed"] = json!(changed);
        let updated = self
            .store
            .update_token_policy(now, &token.id, patch, event)
            .await?;
        self.verifier.invalidate_token(&token.id);
        self.token_view(updated, now).await
    }
}
