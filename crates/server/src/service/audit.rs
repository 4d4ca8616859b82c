//! The audit log: org admins read everything; members read what concerns them.

use latchkey_proto::{AuditEvent, Page};
use latchkey_store::AuditFilter;
use serde::Deserialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::auth::Principal;
use crate::error::ApiError;
use crate::extract::PageParams;
use crate::state::AppState;

/// Query of `GET /api/v1/audit-events`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// Workspace id.
    pub workspace: Option<String>,
    /// Actor user id.
    pub actor: Option<String>,
    /// Token id.
    pub token: Option<String>,
    /// Action name.
    pub action: Option<String>,
    /// RFC 3339 lower bound (inclusive).
    pub since: Option<String>,
    /// RFC 3339 upper bound (exclusive).
    pub until: Option<String>,
    /// Page size.
    pub limit: Option<String>,
    /// Cursor.
    pub cursor: Option<String>,
}

fn instant(field: &str, value: &Option<String>) -> Result<Option<OffsetDateTime>, ApiError> {
    value
        .as_deref()
        .map(|v| {
            OffsetDateTime::parse(v, &Rfc3339)
                .map_err(|_| ApiError::field(field, format!("{field} must be an RFC 3339 time")))
        })
        .transpose()
}

impl AppState {
    /// Lists audit events.
    pub async fn list_audit(
        &self,
        p: &Principal,
        q: AuditQuery,
    ) -> Result<Page<AuditEvent>, ApiError> {
        let user = p.require_user()?;
        let page = PageParams {
            limit: q.limit.clone(),
            cursor: q.cursor.clone(),
        }
        .to_page()?;
        let involving_user = if p.is_org_admin() {
            None
        } else {
            Some(user.id.clone())
        };
        let filter = AuditFilter {
            workspace_id: q.workspace,
            actor_id: q.actor,
            token_id: q.token,
            action: q.action,
            since: instant("since", &q.since)?,
            until: instant("until", &q.until)?,
            involving_user,
        };
        let paged = self.store.list_audit(&filter, &page).await?;
        Ok(Page {
            items: paged.items,
            next_cursor: paged.next_cursor,
        })
    }
}
