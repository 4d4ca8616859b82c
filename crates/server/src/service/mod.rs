//! The service layer: every rule applied to a request, shared by the API and the console.
//! Handlers parse input and call these methods; nothing else decides who may do what.
//!
//! Each operation reads the clock once, asks `latchkey_core::policy`, performs one atomic
//! store operation (with its audit event), then invalidates the verifier's cache for what
//! changed so the next request on this node sees it at once.

mod accounts;
mod audit;
mod console_support;
pub(crate) mod credentials;
pub mod interop;
mod inventory;
mod projects;
mod recoverable;
mod sessions;
pub(crate) mod settings;
mod token_policy;
mod tokens;
mod usage;
mod users;
pub mod webhooks;
mod workspaces;

pub use audit::AuditQuery;
pub use console_support::{ALL_TOKEN_TYPES, CreatableTypes};
pub use credentials::Checked;
pub use inventory::{CSV_COLUMNS, InventoryFilter, InventoryFormat, InventoryQuery};
pub use sessions::SignedIn;
// The stateless checks of request bodies, public so the fuzz targets run them as the
// service does.
pub use settings::{check_count, check_days, check_policy_days};
pub use tokens::{MAX_GRACE_SECONDS, check_environment};
pub use users::{check_display_name, check_email, check_username};

use latchkey_core::WorkspaceRecord;
use latchkey_core::model::{StateContext, TokenRecord};
use latchkey_proto as proto;
use latchkey_store::Paged;
use time::OffsetDateTime;

use crate::auth::Principal;
use crate::error::ApiError;
use crate::state::AppState;

/// Checks a free-text name: 1–200 characters, not blank, no control characters.
pub fn check_name(field: &str, value: &str, max: usize) -> Result<String, ApiError> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Err(ApiError::field(field, format!("{field} must not be empty")));
    }
    if trimmed.chars().count() > max {
        return Err(ApiError::field(
            field,
            format!("{field} must be at most {max} characters"),
        ));
    }
    if trimmed.chars().any(char::is_control) {
        return Err(ApiError::field(
            field,
            format!("{field} must not contain control characters"),
        ));
    }
    Ok(trimmed.to_owned())
}

/// Maps a page of records to a page of wire objects.
pub fn page_of<R, T>(paged: Paged<R>, f: impl FnMut(R) -> T) -> proto::Page<T> {
    proto::Page {
        items: paged.items.into_iter().map(f).collect(),
        next_cursor: paged.next_cursor,
    }
}

impl AppState {
    /// Finds a workspace by id or exact name that the caller may enter; otherwise 404, so
    /// that workspaces one cannot see do not reveal that they exist.
    pub async fn resolve_workspace(
        &self,
        principal: &Principal,
        reference: &str,
    ) -> Result<WorkspaceRecord, ApiError> {
        let found = if latchkey_core::is_id(reference) {
            match self.store.get_workspace(reference).await {
                Ok(ws) => Some(ws),
                Err(latchkey_store::StoreError::NotFound(_)) => None,
                Err(e) => return Err(e.into()),
            }
        } else {
            let org = self.org().await?;
            self.store
                .find_workspace_by_name(&org.id, reference)
                .await?
        };
        match found {
            Some(ws) if principal.can_enter_workspace(&ws.id) => Ok(ws),
            _ => Err(ApiError::NotFound("workspace")),
        }
    }

    /// The organization.
    pub async fn org(&self) -> Result<latchkey_core::OrgRecord, ApiError> {
        Ok(self.store.get_org().await?)
    }

    /// A token's wire form with its derived state and the freshest last-used time.
    pub async fn token_view(
        &self,
        record: TokenRecord,
        now: OffsetDateTime,
    ) -> Result<proto::Token, ApiError> {
        let owner_active = match &record.owner_id {
            Some(id) => match self.verifier.user(id).await {
                Ok(user) => user.active,
                Err(latchkey_store::StoreError::NotFound(_)) => false,
                Err(e) => return Err(e.into()),
            },
            None => true,
        };
        let ctx = StateContext {
            owner_active,
            type_enabled: self.verifier.type_enabled(record.token_type),
        };
        let pending = self.last_used.pending(&record.id);
        let mut view = record.to_proto(now, ctx);
        if record.policy.uses.is_some() {
            view.remaining_uses = self.remaining_uses_now(&record, now);
        }
        if let Some(at) = pending {
            let at = latchkey_core::from_unix(at);
            if view.last_used_at.is_none_or(|t| t < at) {
                view.last_used_at = Some(at);
            }
        }
        Ok(view)
    }

    /// Wire forms of several tokens.
    pub async fn token_views(
        &self,
        paged: Paged<TokenRecord>,
        now: OffsetDateTime,
    ) -> Result<proto::Page<proto::Token>, ApiError> {
        let mut items = Vec::with_capacity(paged.items.len());
        for record in paged.items {
            items.push(self.token_view(record, now).await?);
        }
        Ok(proto::Page {
            items,
            next_cursor: paged.next_cursor,
        })
    }
}
