//! Projects: the example resource that tokens protect.

use latchkey_core::ProjectRecord;
use latchkey_core::policy::Permission;
use latchkey_proto::{CreateProjectRequest, Page, Project, TokenType};
use latchkey_store::{PageRequest, StoreError};
use serde_json::json;

use crate::auth::Principal;
use crate::error::ApiError;
use crate::service::{check_name, page_of};
use crate::state::AppState;

impl Principal {
    /// Projects the caller's token is bound to (`None`: not bound, all of the workspace's).
    fn project_binding(&self) -> Option<&[String]> {
        self.token()
            .map(|g| &*g.token.projects)
            .filter(|p| !p.is_empty())
    }

    /// The workspace a token acts in, for routes that take it from the token.
    pub fn token_workspace(&self) -> Result<String, ApiError> {
        match self.token() {
            Some(g) if g.token.token_type == TokenType::Legacy => Err(ApiError::WorkspaceRequired(
                "legacy tokens are user-wide; use /api/v1/workspaces/{ws}/projects".into(),
            )),
            Some(g) => g
                .token
                .workspace_id
                .as_deref()
                .map(str::to_owned)
                .ok_or_else(|| {
                    ApiError::WorkspaceRequired("this token is not bound to a workspace".into())
                }),
            None => Err(ApiError::WorkspaceRequired(
                "signed-in requests must name the workspace: use /api/v1/workspaces/{ws}/projects"
                    .into(),
            )),
        }
    }
}

impl AppState {
    /// Projects of a workspace (only the bound ones for a project-bound token).
    pub async fn list_projects(
        &self,
        p: &Principal,
        reference: &str,
        page: &PageRequest,
    ) -> Result<Page<Project>, ApiError> {
        let ws = self.resolve_workspace(p, reference).await?;
        p.authorize(Permission::ReadProjects, Some(&ws.id))?;
        let mut paged = self.store.list_projects(&ws.id, page).await?;
        if let Some(bound) = p.project_binding() {
            paged.items.retain(|proj| bound.contains(&proj.id));
        }
        Ok(page_of(paged, |proj| proj.to_proto()))
    }

    /// Creates a project in a workspace.
    pub async fn create_project(
        &self,
        p: &Principal,
        reference: &str,
        req: CreateProjectRequest,
    ) -> Result<Project, ApiError> {
        let ws = self.resolve_workspace(p, reference).await?;
        p.authorize(Permission::WriteProjects, Some(&ws.id))?;
        if p.project_binding().is_some() {
            return Err(ApiError::forbidden(
                "a token bound to projects cannot create other projects",
            ));
        }
        let name = check_name("name", &req.name, 200)?;
        let description = match &req.description {
            Some(d) if d.chars().count() > 2000 => {
                return Err(ApiError::field(
                    "description",
                    "description must be at most 2000 characters",
                ));
            }
            other => other.clone(),
        };
        let now = self.clock.now();
        let project = ProjectRecord {
            id: latchkey_core::new_id(),
            workspace_id: ws.id.clone(),
            name,
            description,
            created_by: p.user_id().map(str::to_owned),
            created_at: now,
        };
        let mut event = p.event("project.created");
        event.target_type = Some("project".into());
        event.target_id = Some(project.id.clone());
        event.workspace_id = Some(ws.id.clone());
        event.details = json!({"name": project.name});
        Ok(self
            .store
            .create_project(now, project, event)
            .await?
            .to_proto())
    }

    /// Deletes a project, and the tokens bound only to it.
    pub async fn delete_project(
        &self,
        p: &Principal,
        reference: &str,
        id: &str,
    ) -> Result<(), ApiError> {
        let ws = self.resolve_workspace(p, reference).await?;
        p.authorize(Permission::WriteProjects, Some(&ws.id))?;
        if !latchkey_core::is_id(id) {
            return Err(ApiError::NotFound("project"));
        }
        let project = match self.store.get_project(id).await {
            Ok(proj) if proj.workspace_id == ws.id => proj,
            Ok(_) | Err(StoreError::NotFound(_)) => return Err(ApiError::NotFound("project")),
            Err(e) => return Err(e.into()),
        };
        if let Some(bound) = p.project_binding()
            && !bound.contains(&project.id)
        {
            return Err(ApiError::NotFound("project"));
        }
        let now = self.clock.now();
        let mut event = p.event("project.deleted");
        event.target_type = Some("project".into());
        event.target_id = Some(project.id.clone());
        event.workspace_id = Some(ws.id.clone());
        event.details = json!({"name": project.name});
        let deleted_tokens = self.store.delete_project(now, &project.id, event).await?;
        for token_id in &deleted_tokens {
            self.verifier.invalidate_token(token_id);
        }
        Ok(())
    }
}
