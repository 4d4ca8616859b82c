//! Service accounts (DESIGN.md §8): what the console needs beyond the user routes — one
//! user as an org admin sees them, and the tokens a user owns.

use latchkey_core::policy::Permission;
use latchkey_proto::{Page, Token, User};
use latchkey_store::{PageRequest, StoreError, TokenFilter};

use crate::auth::Principal;
use crate::error::ApiError;
use crate::state::AppState;

impl AppState {
    /// The tokens user `user_id` owns, in every workspace (org admins only: they may see
    /// and manage everyone's tokens). Unknown users are 404.
    pub async fn list_tokens_owned_by(
        &self,
        p: &Principal,
        user_id: &str,
        page: &PageRequest,
    ) -> Result<Page<Token>, ApiError> {
        let now = self.clock.now();
        let user = self.managed_user(p, user_id).await?;
        let filter = TokenFilter {
            owner_id: Some(user.id),
            visibility: Some(p.visibility()),
            ..TokenFilter::default()
        };
        let paged = self.store.list_tokens(&user.org_id, &filter, page).await?;
        self.token_views(paged, now).await
    }

    /// One user as an org admin sees them (the console's service account page).
    pub async fn user_for_admin(&self, p: &Principal, user_id: &str) -> Result<User, ApiError> {
        Ok(self.managed_user(p, user_id).await?.to_proto())
    }

    async fn managed_user(
        &self,
        p: &Principal,
        user_id: &str,
    ) -> Result<latchkey_core::UserRecord, ApiError> {
        p.require_user()?;
        if !p.is_org_admin() {
            return Err(ApiError::forbidden(
                "only org admins see other users' tokens",
            ));
        }
        p.authorize(Permission::ManageUsers, None)?;
        if !latchkey_core::is_id(user_id) {
            return Err(ApiError::NotFound("user"));
        }
        match self.store.get_user(user_id).await {
            Ok(user) => Ok(user),
            Err(StoreError::NotFound(_)) => Err(ApiError::NotFound("user")),
            Err(e) => Err(e.into()),
        }
    }
}
