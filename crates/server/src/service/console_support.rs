//! Service methods the console needs beyond the API's: the org-wide token list, which token
//! types a user may create in a workspace and with which scopes (asked of
//! `latchkey_core::policy`), whether a listed token may be managed and whether the caller
//! may create workspaces, write projects or manage members, the longest personal
//! token lifetime, and finding a user by name to add as a member. Each applies the same
//! rules as the rest of the layer, so the console never decides a rule itself.

use latchkey_core::ScopeSet;
use latchkey_core::policy::{self, CreateContext, Permission};
use latchkey_proto::{OrgRole, Page, Token, TokenType};
use latchkey_store::{PageRequest, TokenFilter};

use crate::auth::Principal;
use crate::error::ApiError;
use crate::state::AppState;

/// Every token type, in the order the console offers them.
pub const ALL_TOKEN_TYPES: [TokenType; 5] = [
    TokenType::Personal,
    TokenType::Legacy,
    TokenType::Client,
    TokenType::Frontend,
    TokenType::Admin,
];

/// Whether the caller may create a token of each type for themselves (user-owned types)
/// or for the workspace (workspace types).
#[derive(Debug, Clone)]
pub struct CreatableTypes {
    /// Types the caller may create, in [`ALL_TOKEN_TYPES`] order.
    pub allowed: Vec<TokenType>,
    /// Why each other type is refused.
    pub refused: Vec<(TokenType, String)>,
    /// The most a token the caller creates here may do (what they may do here).
    pub scope_ceiling: ScopeSet,
}

impl AppState {
    /// Every token of the organization, across workspaces (org admins only).
    pub async fn list_org_tokens(
        &self,
        p: &Principal,
        page: &PageRequest,
    ) -> Result<Page<Token>, ApiError> {
        let now = self.clock.now();
        p.require_user()?;
        if !p.is_org_admin() {
            return Err(ApiError::forbidden("only org admins see every token"));
        }
        p.authorize(Permission::ManageAnyToken, None)?;
        let org = self.org().await?;
        let filter = TokenFilter {
            visibility: Some(p.visibility()),
            ..TokenFilter::default()
        };
        let paged = self.store.list_tokens(&org.id, &filter, page).await?;
        self.token_views(paged, now).await
    }

    /// Which token types the caller may create for themselves in workspace `workspace_ref`,
    /// under the org's current token settings, as `policy::check_create` decides.
    pub async fn creatable_token_types(
        &self,
        p: &Principal,
        workspace_ref: &str,
    ) -> Result<CreatableTypes, ApiError> {
        let ws = self.resolve_workspace(p, workspace_ref).await?;
        let user = p.require_user()?;
        let org = self.org().await?;
        let ctx = CreateContext {
            actor_org_role: user.role,
            actor_workspace_role: user.workspace_role(Some(&ws.id)),
            for_self: true,
            owner_roles: None,
        };
        let mut out = CreatableTypes {
            allowed: Vec::new(),
            refused: Vec::new(),
            scope_ceiling: policy::user_scopes(user.role, user.workspace_role(Some(&ws.id))),
        };
        for token_type in ALL_TOKEN_TYPES {
            match policy::check_create(token_type, &org.token_settings, ctx, None, false) {
                Ok(_) => out.allowed.push(token_type),
                Err(e) => out.refused.push((token_type, e.to_string())),
            }
        }
        Ok(out)
    }

    /// Whether the caller may revoke, restore, rotate or delete `token` (as a list showed
    /// it): the rule the action endpoints apply ([`Principal::can_manage`]). Callers that
    /// are not users (workspace tokens) are not console callers: `false`.
    pub fn may_manage_token(&self, p: &Principal, token: &Token) -> bool {
        p.user_may_manage(token.token_type, token.owner_id.as_deref())
            .unwrap_or(false)
    }

    /// Whether the caller may create workspaces (the rule `create_workspace` applies), so
    /// the console offers New workspace only to those it would not refuse.
    pub fn may_create_workspaces(&self, p: &Principal) -> bool {
        p.authorize(Permission::ManageWorkspaces, None).is_ok()
    }

    /// Whether the caller may create and delete projects in workspace `workspace_id` (the
    /// rule `create_project` and `delete_project` apply).
    pub fn may_write_projects(&self, p: &Principal, workspace_id: &str) -> bool {
        p.authorize(Permission::WriteProjects, Some(workspace_id))
            .is_ok()
    }

    /// Whether the caller may add, re-role and remove members of workspace `workspace_id`
    /// (the rule `put_member` and `remove_member` apply).
    pub fn may_manage_members(&self, p: &Principal, workspace_id: &str) -> bool {
        p.authorize(Permission::ManageMembers, Some(workspace_id))
            .is_ok()
    }

    /// Whether the caller may give a user org role `role` (only owners make owners: the
    /// rule `create_user` and `update_user` apply).
    pub fn may_grant_org_role(&self, p: &Principal, role: OrgRole) -> bool {
        role != OrgRole::Owner || p.user.as_ref().is_some_and(|u| u.role == OrgRole::Owner)
    }

    /// The longest lifetime a personal token may be given now, in days (the org's personal
    /// token TTL, else the instance default; shorter when the org's maximum token lifetime
    /// is, so the form offers nothing the server would refuse).
    pub async fn personal_token_max_days(&self) -> Result<u32, ApiError> {
        let org = self.org().await?;
        let instance = self.store.get_instance_settings().await?;
        let ttl = policy::personal_ttl_days(&org.token_settings, &instance);
        Ok(org
            .token_settings
            .max_token_lifetime_days
            .map_or(ttl, |cap| ttl.min(cap)))
    }

    /// The first workspace (of those the caller may enter) in which policy lets the caller
    /// create a token of `token_type` for themselves; `None` when there is none.
    pub async fn workspace_for_own_token(
        &self,
        p: &Principal,
        token_type: TokenType,
    ) -> Result<Option<String>, ApiError> {
        let page = PageRequest {
            limit: 200,
            cursor: None,
        };
        for ws in self.list_workspaces(p, &page).await?.items {
            if self
                .creatable_token_types(p, &ws.id)
                .await?
                .allowed
                .contains(&token_type)
            {
                return Ok(Some(ws.id));
            }
        }
        Ok(None)
    }

    /// A user's id by username, for adding a member by name (those who manage the
    /// workspace's members only). Unknown names are 404.
    pub async fn find_user_for_membership(
        &self,
        p: &Principal,
        workspace_ref: &str,
        username: &str,
    ) -> Result<String, ApiError> {
        let ws = self.resolve_workspace(p, workspace_ref).await?;
        p.authorize(Permission::ManageMembers, Some(&ws.id))?;
        match self.store.find_user_by_username(username.trim()).await? {
            Some(user) => Ok(user.id),
            None => Err(ApiError::NotFound("user")),
        }
    }
}
