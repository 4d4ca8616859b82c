//! Users: create, list, read, change (role, deactivation, profile, password), and `/me`.

use latchkey_core::UserRecord;
use latchkey_core::policy::{self, Permission};
use latchkey_proto::{
    CreateUserRequest, Me, OrgRef, OrgRole, Page, Scope, UpdateUserRequest, User, UserKind,
};
use latchkey_store::{PageRequest, UserPatch};
use serde_json::json;

use crate::auth::Principal;
use crate::error::ApiError;
use crate::password::{check_new_password, hash_password, verify_password};
use crate::service::{check_name, page_of};
use crate::state::AppState;

/// Checks a username: 1–64 characters of letters, digits, `.`, `_`, `-` or `@`.
pub fn check_username(username: &str) -> Result<(), ApiError> {
    let ok = (1..=64).contains(&username.len())
        && username
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'@'));
    if ok {
        Ok(())
    } else {
        Err(ApiError::field(
            "username",
            "usernames are 1-64 characters of letters, digits, '.', '_', '-' or '@'",
        ))
    }
}

/// Checks an optional email address (at most 254 bytes, an `@`, no whitespace).
pub fn check_email(email: &Option<String>) -> Result<Option<String>, ApiError> {
    match email {
        None => Ok(None),
        Some(e) if e.len() <= 254 && e.contains('@') && !e.chars().any(char::is_whitespace) => {
            Ok(Some(e.clone()))
        }
        Some(_) => Err(ApiError::field("email", "not an email address")),
    }
}

/// Checks an optional display name as [`check_name`] does (at most 200 characters).
pub fn check_display_name(name: &Option<String>) -> Result<Option<String>, ApiError> {
    name.as_deref()
        .map(|n| check_name("display_name", n, 200))
        .transpose()
}

impl AppState {
    /// `GET /api/v1/me`.
    pub async fn me(&self, p: &Principal) -> Result<Me, ApiError> {
        // Served from the verifier's user view (invalidated by every change to the user or
        // their memberships) and its copy of the org: no store read on this hot route.
        let user = p.require_user()?;
        let org = match self.verifier.org() {
            Some(org) => OrgRef {
                id: org.id.clone(),
                name: org.name.clone(),
            },
            None => {
                let org = self.org().await?;
                OrgRef {
                    id: org.id,
                    name: org.name,
                }
            }
        };
        let token_ws = p.token().and_then(|g| g.token.workspace_id.as_deref());
        Ok(Me {
            user: user.user.clone(),
            org,
            // A workspace-bound token only acts in its workspace; show only that one.
            memberships: user
                .membership_refs
                .iter()
                .filter(|m| token_ws.is_none_or(|ws| m.workspace_id == ws))
                .cloned()
                .collect(),
        })
    }

    /// `GET /api/v1/users` (org admins), only those of `kind` when it is given.
    pub async fn list_users(
        &self,
        p: &Principal,
        kind: Option<UserKind>,
        page: &PageRequest,
    ) -> Result<Page<User>, ApiError> {
        p.authorize(Permission::ManageUsers, None)?;
        let org = self.org().await?;
        Ok(page_of(
            self.store.list_users(&org.id, kind, page).await?,
            |u| u.to_proto(),
        ))
    }

    /// `GET /api/v1/users/{id}` (org admins, or oneself).
    pub async fn get_user(&self, p: &Principal, id: &str) -> Result<User, ApiError> {
        if p.user_id() != Some(id) {
            p.authorize(Permission::ManageUsers, None)?;
        }
        if !latchkey_core::is_id(id) {
            return Err(ApiError::NotFound("user"));
        }
        Ok(self.store.get_user(id).await?.to_proto())
    }

    /// `POST /api/v1/users` (org admins; only owners create owners): a person with a
    /// password, or a service account (`kind` `service`) without one, which never signs in.
    pub async fn create_user(
        &self,
        p: &Principal,
        req: CreateUserRequest,
    ) -> Result<User, ApiError> {
        p.authorize(Permission::ManageUsers, None)?;
        p.require_user()?;
        check_username(&req.username)?;
        let password = match (req.kind, req.password) {
            (UserKind::Human, Some(password)) => {
                check_new_password("password", &password)?;
                Some(password)
            }
            (UserKind::Human, None) => {
                return Err(ApiError::field("password", "give the user a password"));
            }
            (UserKind::Service, Some(_)) => {
                return Err(ApiError::field(
                    "password",
                    "service accounts have no password: they never sign in",
                ));
            }
            (UserKind::Service, None) => None,
        };
        let email = check_email(&req.email)?;
        let display_name = check_display_name(&req.display_name)?;
        if req.kind == UserKind::Service && req.role == OrgRole::Owner {
            return Err(ApiError::field(
                "role",
                "a service account cannot be an owner (admin or member)",
            ));
        }
        if !self.may_grant_org_role(p, req.role) {
            return Err(ApiError::forbidden("only owners may create owners"));
        }
        let now = self.clock.now();
        let org = self.org().await?;
        let password_hash = match password {
            Some(password) => Some(hash_password(&self.config.passwords, password).await?),
            None => None,
        };
        let user = UserRecord {
            id: latchkey_core::new_id(),
            org_id: org.id,
            username: req.username,
            display_name,
            email,
            role: req.role,
            kind: req.kind,
            active: true,
            password_hash,
            created_at: now,
        };
        let mut event = p.event("user.created");
        event.target_type = Some("user".into());
        event.target_id = Some(user.id.clone());
        event.subject_user_id = Some(user.id.clone());
        event.details = json!({
            "username": user.username,
            "role": user.role.as_str(),
            "kind": user.kind.as_str(),
        });
        Ok(self.store.create_user(now, user, event).await?.to_proto())
    }

    /// `PATCH /api/v1/users/{id}`: deactivation cuts off sessions and tokens at once.
    pub async fn update_user(
        &self,
        p: &Principal,
        id: &str,
        req: UpdateUserRequest,
    ) -> Result<User, ApiError> {
        let actor = p.require_user()?.clone();
        let is_self = actor.id == id;
        let admin_fields = req.active.is_some() || req.role.is_some();
        let profile_fields = req.display_name.is_some() || req.email.is_some();
        if is_self && p.token().is_some() && req.password.is_some() {
            return Err(ApiError::forbidden(
                "a token cannot change its owner's password; sign in to the console",
            ));
        }
        if admin_fields || !is_self {
            p.authorize(Permission::ManageUsers, None)?;
        } else if p.token().is_some() {
            // Self-service through a token: the profile only with the `admin` scope (a
            // token minted for projects must not rename its owner or change their email).
            if profile_fields {
                p.require_scope(Scope::Admin).map_err(|_| {
                    ApiError::forbidden(
                        "changing your account with a token needs the admin scope; sign in to the console",
                    )
                })?;
            }
        }
        if !latchkey_core::is_id(id) {
            return Err(ApiError::NotFound("user"));
        }
        let target = self.store.get_user(id).await?;
        if target.kind == UserKind::Service {
            if req.password.is_some() {
                return Err(ApiError::field(
                    "password",
                    "service accounts have no password: they never sign in",
                ));
            }
            if req.role == Some(OrgRole::Owner) {
                return Err(ApiError::field(
                    "role",
                    "a service account cannot be an owner (admin or member)",
                ));
            }
        }
        if is_self && req.active == Some(false) {
            return Err(ApiError::Conflict("you cannot deactivate yourself".into()));
        }
        let touches_owner = target.role == OrgRole::Owner || req.role == Some(OrgRole::Owner);
        if admin_fields && touches_owner && actor.role != OrgRole::Owner {
            return Err(ApiError::forbidden(
                "only owners may change an owner or grant owner",
            ));
        }
        if !is_self {
            // Nobody changes a user who outranks them; credentials (password, email, the
            // way back into an account) only from strictly above.
            if policy::outranks(target.role, actor.role) {
                return Err(ApiError::forbidden(
                    "you may not change a user whose role outranks yours",
                ));
            }
            let credentials = req.password.is_some() || req.email.is_some();
            if credentials && !policy::outranks(actor.role, target.role) {
                return Err(ApiError::forbidden(
                    "only users of a higher role may reset this user's password or email",
                ));
            }
        } else if req.password.is_some() {
            let current = req.current_password.as_deref().ok_or_else(|| {
                ApiError::field(
                    "current_password",
                    "give your current password to set a new one",
                )
            })?;
            let ok = match target.password_hash.clone() {
                Some(hash) => verify_password(hash, current.to_owned()).await,
                None => false,
            };
            if !ok {
                return Err(ApiError::field(
                    "current_password",
                    "the current password is wrong",
                ));
            }
        }
        if let Some(pw) = &req.password {
            check_new_password("password", pw)?;
        }
        let patch = UserPatch {
            active: req.active,
            role: req.role,
            display_name: match &req.display_name {
                Some(v) => Some(check_display_name(v)?),
                None => None,
            },
            email: match &req.email {
                Some(v) => Some(check_email(v)?),
                None => None,
            },
            password_hash: match req.password {
                Some(pw) => Some(hash_password(&self.config.passwords, pw).await?),
                None => None,
            },
        };
        let action = match (req.active, req.role) {
            (Some(false), _) if target.active => "user.deactivated",
            (Some(true), _) if !target.active => "user.reactivated",
            (_, Some(role)) if role != target.role => "user.role_changed",
            _ => "user.updated",
        };
        let mut event = p.event(action);
        event.target_type = Some("user".into());
        event.target_id = Some(target.id.clone());
        event.subject_user_id = Some(target.id.clone());
        event.details = json!({
            "username": target.username,
            "active": req.active,
            "role": req.role.map(|r| r.as_str()),
            "from_role": target.role.as_str(),
            "password_changed": patch.password_hash.is_some(),
        });
        let now = self.clock.now();
        let updated = self.store.update_user(now, id, patch, event).await?;
        self.verifier.invalidate_user(id);
        Ok(updated.to_proto())
    }
}
