//! Workspaces and their members.

use latchkey_core::WorkspaceRecord;
use latchkey_core::policy::Permission;
use latchkey_proto::{Member, Page, Workspace, WorkspaceRole};
use latchkey_store::{PageRequest, Paged, StoreError};
use serde_json::json;

use crate::auth::Principal;
use crate::error::ApiError;
use crate::service::{check_name, page_of};
use crate::state::AppState;

impl AppState {
    /// Workspaces the caller may enter.
    pub async fn list_workspaces(
        &self,
        p: &Principal,
        page: &PageRequest,
    ) -> Result<Page<Workspace>, ApiError> {
        let org = self.org().await?;
        let token_ws = p.token().and_then(|g| g.token.workspace_id.clone());
        let all_visible =
            p.user.as_ref().is_some_and(|u| u.role.is_org_admin()) && token_ws.is_none();
        if all_visible {
            return Ok(page_of(
                self.store.list_workspaces(&org.id, page).await?,
                |w| w.to_proto(),
            ));
        }
        let mut items = Vec::new();
        if let Some(ws) = token_ws {
            items.push(self.store.get_workspace(&ws).await?);
        } else if let Some(user) = &p.user {
            for m in self.store.memberships_of(&user.id).await? {
                items.push(self.store.get_workspace(&m.workspace_id).await?);
            }
            items.sort_by(|a, b| b.id.cmp(&a.id));
        }
        Ok(page_of(
            Paged {
                items,
                next_cursor: None,
            },
            |w| w.to_proto(),
        ))
    }

    /// `POST /api/v1/workspaces` (org admins); the creator becomes its admin.
    pub async fn create_workspace(&self, p: &Principal, name: &str) -> Result<Workspace, ApiError> {
        p.authorize(Permission::ManageWorkspaces, None)?;
        let actor = p.require_user()?;
        let name = check_name("name", name, 200)?;
        let now = self.clock.now();
        let org = self.org().await?;
        let ws = WorkspaceRecord {
            id: latchkey_core::new_id(),
            org_id: org.id,
            name,
            created_at: now,
        };
        let mut event = p.event("workspace.created");
        event.target_type = Some("workspace".into());
        event.target_id = Some(ws.id.clone());
        event.workspace_id = Some(ws.id.clone());
        event.details = json!({"name": ws.name});
        let created = self
            .store
            .create_workspace(
                now,
                ws,
                Some((actor.id.clone(), WorkspaceRole::Admin)),
                event,
            )
            .await?;
        self.verifier.invalidate_user(&actor.id);
        Ok(created.to_proto())
    }

    /// One workspace.
    pub async fn get_workspace(
        &self,
        p: &Principal,
        reference: &str,
    ) -> Result<Workspace, ApiError> {
        Ok(self.resolve_workspace(p, reference).await?.to_proto())
    }

    /// Members of a workspace.
    pub async fn list_members(
        &self,
        p: &Principal,
        reference: &str,
        page: &PageRequest,
    ) -> Result<Page<Member>, ApiError> {
        let ws = self.resolve_workspace(p, reference).await?;
        p.authorize(Permission::ReadMembers, Some(&ws.id))?;
        Ok(page_of(self.store.list_members(&ws.id, page).await?, |m| {
            m.to_member()
        }))
    }

    /// Adds a member or changes their role (workspace admins, org admins).
    pub async fn put_member(
        &self,
        p: &Principal,
        reference: &str,
        user_id: &str,
        role: WorkspaceRole,
    ) -> Result<Member, ApiError> {
        let ws = self.resolve_workspace(p, reference).await?;
        p.authorize(Permission::ManageMembers, Some(&ws.id))?;
        if !latchkey_core::is_id(user_id) {
            return Err(ApiError::NotFound("user"));
        }
        let user = self.store.get_user(user_id).await?;
        let previous = self.store.get_membership(&ws.id, user_id).await?;
        let now = self.clock.now();
        let mut event = p.event(if previous.is_some() {
            "member.role_changed"
        } else {
            "member.added"
        });
        event.target_type = Some("membership".into());
        event.target_id = Some(user.id.clone());
        event.workspace_id = Some(ws.id.clone());
        event.subject_user_id = Some(user.id.clone());
        event.details = json!({
            "username": user.username,
            "role": role.as_str(),
            "from_role": previous.map(|m| m.role.as_str()),
        });
        let member = self
            .store
            .put_member(now, &ws.id, user_id, role, event)
            .await?;
        self.verifier.invalidate_user(user_id);
        Ok(member.to_member())
    }

    /// Removes a member; their tokens in the workspace lose every right at once.
    pub async fn remove_member(
        &self,
        p: &Principal,
        reference: &str,
        user_id: &str,
    ) -> Result<(), ApiError> {
        let ws = self.resolve_workspace(p, reference).await?;
        p.authorize(Permission::ManageMembers, Some(&ws.id))?;
        if !latchkey_core::is_id(user_id) {
            return Err(ApiError::NotFound("member"));
        }
        let now = self.clock.now();
        let mut event = p.event("member.removed");
        event.target_type = Some("membership".into());
        event.target_id = Some(user_id.to_owned());
        event.workspace_id = Some(ws.id.clone());
        event.subject_user_id = Some(user_id.to_owned());
        match self.store.remove_member(now, &ws.id, user_id, event).await {
            Ok(()) => {}
            Err(StoreError::NotFound(_)) => return Err(ApiError::NotFound("member")),
            Err(e) => return Err(e.into()),
        }
        self.verifier.invalidate_user(user_id);
        Ok(())
    }
}
