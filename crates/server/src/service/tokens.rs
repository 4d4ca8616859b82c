//! Token lifecycle: create, list, get, revoke, restore, rotate, delete, verify.

use latchkey_core::model::{SecretRecord, StoredState, TokenRecord};
use latchkey_core::policy::{
    self, CreateContext, CreateDenied, LifetimeError, LifetimeRequest, RestoreDenied, TokenAction,
    Visibility,
};
use latchkey_core::token::{self, SecretKind};
use latchkey_core::{NewAuditEvent, ScopeSet};
use latchkey_proto::{
    CreateTokenRequest, CreatedToken, OrgRole, Page, RotateTokenRequest, Scope, Token, TokenType,
    VerifyResponse,
};
use latchkey_store::{IdempotencyRecord, PageRequest, StoreError, TokenFilter};
use serde_json::json;
use time::OffsetDateTime;

use crate::auth::Principal;
use crate::crypto;
use crate::error::{ApiError, PolicyRefusal};
use crate::extract::ClientIp;
use crate::service::check_name;
use crate::service::credentials::Denied;
use crate::state::AppState;
use crate::verifier::VerifyError;

const IDEMPOTENCY_PURPOSE: &str = "idempotent rotate v1";

/// How long a rotated-out secret keeps answering `revoked` before it is forgotten.
const ROTATED_SECRET_RETENTION: time::Duration = time::Duration::days(30);
/// How long an idempotent rotate answer can be replayed.
const IDEMPOTENCY_RETENTION: time::Duration = time::Duration::hours(24);

/// Longest rotation grace period accepted (7 days).
pub const MAX_GRACE_SECONDS: u64 = 7 * 86_400;

fn lifetime_error(e: LifetimeError) -> ApiError {
    match e {
        LifetimeError::InvalidField { field, message } => ApiError::field(field, message),
        LifetimeError::ExceedsPolicy { field, message } => {
            ApiError::LifetimeExceedsPolicy { field, message }
        }
    }
}

/// Checks a token's optional environment binding: 1–64 characters of letters, digits,
/// `-`, `_` or `.`.
pub fn check_environment(env: &Option<String>) -> Result<Option<String>, ApiError> {
    match env {
        None => Ok(None),
        Some(e) => {
            let ok = (1..=64).contains(&e.len())
                && e.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
            if ok {
                Ok(Some(e.clone()))
            } else {
                Err(ApiError::field(
                    "environment",
                    "environment must be 1-64 characters of letters, digits, '-', '_' or '.'",
                ))
            }
        }
    }
}

impl Principal {
    /// Whether a token-authenticated caller holds `scope` (narrowed by its owner's rights in
    /// `workspace_id`, or as granted for user-wide routes); session callers always do.
    pub fn has_scope(&self, scope: Scope, workspace_id: Option<&str>) -> bool {
        match self.token_scopes() {
            None => true,
            Some(scopes) => match workspace_id {
                Some(_) => self.effective_scopes(workspace_id).contains(scope),
                None => scopes.contains(scope),
            },
        }
    }

    pub(super) fn require_token_scope(
        &self,
        scope: Scope,
        workspace_id: Option<&str>,
    ) -> Result<(), ApiError> {
        if self.has_scope(scope, workspace_id) {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "this token lacks the {} scope",
                scope.as_str()
            )))
        }
    }

    /// Which tokens this caller may see: the one rule of `policy::Visibility`, confined to
    /// the presenting token's workspace when it has one. Lists hand it to the store as
    /// their filter, reads by id ask it ([`Principal::can_see`]), so the two agree.
    pub fn visibility(&self) -> Visibility {
        let grant = self.token();
        let acts_in = grant.and_then(|g| g.token.workspace_id.as_deref());
        let seen = match (&self.user, grant) {
            (Some(user), grant) => {
                let seen = Visibility::for_user(
                    &user.id,
                    user.role,
                    user.memberships
                        .iter()
                        .map(|(ws, role)| (ws.as_str(), *role)),
                );
                // A user's token reads no more than the user's role grants in each workspace.
                if grant.is_some() {
                    seen.through_token()
                } else {
                    seen
                }
            }
            (None, Some(grant)) => match acts_in {
                Some(ws) => Visibility::for_workspace_token(ws, grant.token.token_type),
                None => Visibility::nothing(),
            },
            (None, None) => Visibility::nothing(),
        };
        seen.within(acts_in)
    }

    /// Whether this caller may see `token`, in lists and by id.
    pub fn can_see(&self, token: &TokenRecord) -> bool {
        self.visibility().allows(
            token.token_type,
            token.workspace_id.as_deref(),
            token.owner_id.as_deref(),
        )
    }

    /// Whether this caller may revoke, restore, rotate or delete `token`.
    pub fn can_manage(&self, token: &TokenRecord) -> bool {
        match self.user_may_manage(token.token_type, token.owner_id.as_deref()) {
            Some(may) => may,
            None => {
                self.token().map(|g| g.token.token_type) == Some(TokenType::Admin)
                    && !token.token_type.is_user_owned()
                    && self.can_see(token)
            }
        }
    }

    /// [`Principal::can_manage`] for a caller who is a user (a session, or a token acting
    /// as its owner): whether they may manage a token of this type and owner. `None` when
    /// the caller is a workspace token, whose rule needs the whole record.
    pub(crate) fn user_may_manage(
        &self,
        token_type: TokenType,
        owner_id: Option<&str>,
    ) -> Option<bool> {
        self.user
            .as_ref()
            .map(|user| policy::can_manage_token(&user.id, user.role, token_type, owner_id))
    }
}

impl AppState {
    /// Creates a token in a workspace; the answer is the only place its secret appears.
    pub async fn create_token(
        &self,
        p: &Principal,
        workspace_ref: &str,
        req: CreateTokenRequest,
    ) -> Result<CreatedToken, ApiError> {
        let now = self.clock.now();
        let ws = self.resolve_workspace(p, workspace_ref).await?;
        let name = check_name("name", &req.name, 200)?;
        let (token_policy, uses) = super::token_policy::create_policy(&req)?;
        p.require_token_scope(Scope::TokensWrite, Some(&ws.id))?;
        let token_type = req.token_type;
        let org = self.org().await?;
        let instance = self.store.get_instance_settings().await?;

        let requested_scopes = match &req.scopes {
            Some(list) if list.is_empty() => {
                return Err(ApiError::field(
                    "scopes",
                    "give at least one scope, or omit scopes",
                ));
            }
            Some(list) => Some(list.iter().copied().collect::<ScopeSet>()),
            None => None,
        };
        let projects = req.projects.clone().unwrap_or_default();
        let environment = check_environment(&req.environment)?;
        let has_binding = !projects.is_empty() || environment.is_some();

        // Who owns it, and with which rights.
        let (owner, scopes) = match &p.user {
            Some(actor) => {
                let owner = if token_type.is_user_owned() {
                    match &req.owner_id {
                        Some(id) if id != &actor.id => {
                            let owner = match self.verifier.user(id).await {
                                Ok(u) => u,
                                Err(StoreError::NotFound(_)) => {
                                    return Err(ApiError::field("owner_id", "no such user"));
                                }
                                Err(e) => return Err(e.into()),
                            };
                            if !owner.active {
                                return Err(ApiError::field(
                                    "owner_id",
                                    "that user is deactivated",
                                ));
                            }
                            if policy::outranks(owner.role, actor.role) {
                                return Err(ApiError::forbidden(
                                    "you may not create tokens for a user whose role outranks yours",
                                ));
                            }
                            Some(owner)
                        }
                        _ => Some(actor.clone()),
                    }
                } else {
                    if req.owner_id.is_some() {
                        return Err(ApiError::field(
                            "owner_id",
                            "workspace tokens (client, frontend, admin) have no owner",
                        ));
                    }
                    None
                };
                let for_self = owner.as_ref().is_none_or(|o| o.id == actor.id);
                let ctx = CreateContext {
                    actor_org_role: actor.role,
                    actor_workspace_role: actor.workspace_role(Some(&ws.id)),
                    for_self,
                    owner_roles: owner
                        .as_ref()
                        .map(|o| (o.role, o.workspace_role(Some(&ws.id)))),
                };
                let scopes = policy::check_create(
                    token_type,
                    &org.token_settings,
                    ctx,
                    requested_scopes,
                    has_binding,
                )
                .map_err(|e| match e {
                    CreateDenied::ScopesExceed => ApiError::field("scopes", e.to_string()),
                    CreateDenied::BindingNotAllowed => ApiError::field(
                        if projects.is_empty() {
                            "environment"
                        } else {
                            "projects"
                        },
                        e.to_string(),
                    ),
                    CreateDenied::TypeDisabled(_) | CreateDenied::NotAllowed(_) => {
                        ApiError::forbidden(e.to_string())
                    }
                })?;
                (owner, scopes)
            }
            None => {
                // A workspace admin token creating workspace tokens in its own workspace.
                p.authorize(policy::Permission::CreateApiToken, Some(&ws.id))?;
                if token_type.is_user_owned() || req.owner_id.is_some() {
                    return Err(ApiError::forbidden(
                        "workspace tokens can only create workspace tokens",
                    ));
                }
                if !org.token_settings.is_enabled(token_type) {
                    return Err(ApiError::forbidden(format!(
                        "{} tokens are disabled in this organization",
                        token_type.as_str()
                    )));
                }
                let scopes = requested_scopes
                    .unwrap_or_else(|| policy::default_workspace_token_scopes(token_type));
                (None, scopes)
            }
        };

        // A token that creates a token gives it at most its own scopes and expiry.
        let mut cap = None;
        if let Some(grant) = p.token() {
            if !p.effective_scopes(Some(&ws.id)).is_superset(scopes) {
                return Err(ApiError::field(
                    "scopes",
                    "a token cannot create a token with scopes it does not have",
                ));
            }
            cap = grant.token.expires_at;
            // A legacy token is user-wide and never expires: a token bound to a workspace,
            // or one that expires, would reach beyond itself by minting one.
            if token_type == TokenType::Legacy
                && (grant.token.workspace_id.is_some() || grant.token.expires_at.is_some())
            {
                return Err(ApiError::forbidden(
                    "a token bound to a workspace or with an expiry cannot create a legacy token \
                     (user-wide, never expiring); sign in to the console, or use a legacy token",
                ));
            }
        }

        for project_id in &projects {
            let ok = latchkey_core::is_id(project_id)
                && match self.store.get_project(project_id).await {
                    Ok(project) => project.workspace_id == ws.id,
                    Err(StoreError::NotFound(_)) => false,
                    Err(e) => return Err(e.into()),
                };
            if !ok {
                return Err(ApiError::field(
                    "projects",
                    format!("no project {project_id:?} in this workspace"),
                ));
            }
        }
        let mut projects = projects;
        projects.sort();
        projects.dedup();

        let expires_at = policy::resolve_expiry(
            now,
            token_type,
            LifetimeRequest {
                days: req.expires_in_days,
                at: req.expires_at,
                created_at: None,
            },
            &org.token_settings,
            &instance,
            cap,
        )
        .map_err(lifetime_error)?;

        let secret = token::generate(SecretKind::Token(token_type));
        let hash = self.hash_key.hash(&secret);
        let record = TokenRecord {
            id: latchkey_core::new_id(),
            org_id: org.id.clone(),
            name,
            token_type,
            hint: token::hint(&secret),
            workspace_id: (token_type != TokenType::Legacy).then(|| ws.id.clone()),
            workspace_name: (token_type != TokenType::Legacy).then(|| ws.name.clone()),
            owner_id: owner.as_ref().map(|o| o.id.clone()),
            owner_username: owner.as_ref().map(|o| o.username.clone()),
            created_by: p.user_id().map(str::to_owned),
            scopes: scopes.to_vec(),
            projects,
            environment,
            created_at: now,
            expires_at,
            last_used_at: None,
            last_used_ip: None,
            // Approval (DESIGN.md §8): only an org owner's own say skips it.
            state: if org.token_settings.requires_approval(token_type)
                && p.user.as_ref().is_none_or(|u| u.role != OrgRole::Owner)
            {
                StoredState::Pending
            } else {
                StoredState::Active
            },
            leaked: false,
            policy: token_policy,
            uses,
            recoverable: false,
        };
        let limits = policy::limits_for(
            token_type,
            record.owner_id.as_deref(),
            &org.token_settings,
            &instance,
        );
        let mut event = p.event("token.created");
        event.target_type = Some("token".into());
        event.target_id = Some(record.id.clone());
        event.workspace_id = Some(ws.id.clone());
        event.subject_user_id = record.owner_id.clone();
        event.details = json!({"type": token_type.as_str(), "name": record.name});
        if record.state == StoredState::Pending {
            event.details["pending"] = json!(true);
        }
        let secret_record = SecretRecord {
            token_id: record.id.clone(),
            hash,
            key_id: self.hash_key.id().to_owned(),
            not_after: None,
            hint: None,
            sealed: self.seal_if_recoverable(&org.token_settings, token_type, &record.id, &secret),
        };
        let stored = self
            .store
            .create_token(now, record, secret_record, &limits, event)
            .await?;
        self.verifier.secret_created(&hash);
        tracing::info!(token_id = %stored.id, token_type = token_type.as_str(), "token created");
        Ok(CreatedToken {
            meta: self.token_view(stored, now).await?,
            token: secret,
        })
    }

    /// Tokens of a workspace that the caller may see.
    pub async fn list_workspace_tokens(
        &self,
        p: &Principal,
        workspace_ref: &str,
        page: &PageRequest,
    ) -> Result<Page<Token>, ApiError> {
        let now = self.clock.now();
        let ws = self.resolve_workspace(p, workspace_ref).await?;
        p.require_token_scope(Scope::TokensRead, Some(&ws.id))?;
        let filter = TokenFilter {
            workspace_id: Some(ws.id.clone()),
            visibility: Some(p.visibility()),
            ..TokenFilter::default()
        };
        let paged = self.store.list_tokens(&ws.org_id, &filter, page).await?;
        self.token_views(paged, now).await
    }

    /// The caller's own tokens, in every workspace (a token caller: those it may see, so
    /// a personal token lists its own workspace's and the user-wide ones).
    pub async fn list_my_tokens(
        &self,
        p: &Principal,
        page: &PageRequest,
    ) -> Result<Page<Token>, ApiError> {
        let now = self.clock.now();
        let user = p.require_user()?;
        p.require_scope(Scope::TokensRead)?;
        let org = self.org().await?;
        let filter = TokenFilter {
            owner_id: Some(user.id.clone()),
            visibility: Some(p.visibility()),
            ..TokenFilter::default()
        };
        let paged = self.store.list_tokens(&org.id, &filter, page).await?;
        self.token_views(paged, now).await
    }

    pub(super) async fn visible_token(
        &self,
        p: &Principal,
        id: &str,
    ) -> Result<TokenRecord, ApiError> {
        if !latchkey_core::is_id(id) {
            return Err(ApiError::NotFound("token"));
        }
        let token = self.store.get_token(id).await?;
        if !p.can_see(&token) {
            return Err(ApiError::NotFound("token"));
        }
        Ok(token)
    }

    pub(crate) async fn manageable_token(
        &self,
        p: &Principal,
        id: &str,
    ) -> Result<TokenRecord, ApiError> {
        let token = self.visible_token(p, id).await?;
        p.require_token_scope(Scope::TokensWrite, token.workspace_id.as_deref())?;
        if !p.can_manage(&token) {
            return Err(ApiError::forbidden("you may not manage this token"));
        }
        Ok(token)
    }

    /// A new secret for someone else's token goes to the caller: refused when the token's
    /// owner outranks the caller (an admin must not become the owner by rotating).
    async fn may_mint_for_owner(&self, p: &Principal, token: &TokenRecord) -> Result<(), ApiError> {
        let (Some(owner_id), Some(actor)) = (token.owner_id.as_deref(), p.user.as_ref()) else {
            return Ok(());
        };
        if owner_id == actor.id {
            return Ok(());
        }
        let owner = match self.verifier.user(owner_id).await {
            Ok(owner) => owner,
            Err(StoreError::NotFound(_)) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        if policy::outranks(owner.role, actor.role) {
            return Err(ApiError::forbidden(
                "you may not rotate the token of a user whose role outranks yours",
            ));
        }
        Ok(())
    }

    /// The state rules every action obeys whoever asks ([`policy::check_action`]).
    fn check_action(
        action: TokenAction,
        token: &TokenRecord,
        now: OffsetDateTime,
    ) -> Result<(), ApiError> {
        policy::check_action(action, token.state, token.expires_at, now)
            .map_err(|denied| ApiError::Conflict(denied.to_string()))
    }

    pub(crate) fn token_event(p: &Principal, action: &str, token: &TokenRecord) -> NewAuditEvent {
        let mut event = p.event(action);
        event.target_type = Some("token".into());
        event.target_id = Some(token.id.clone());
        event.workspace_id = token.workspace_id.clone();
        event.subject_user_id = token.owner_id.clone();
        event.details = json!({"type": token.token_type.as_str(), "name": token.name});
        event
    }

    /// One token's metadata.
    pub async fn get_token(&self, p: &Principal, id: &str) -> Result<Token, ApiError> {
        let token = self.visible_token(p, id).await?;
        p.require_token_scope(Scope::TokensRead, token.workspace_id.as_deref())?;
        self.token_view(token, self.clock.now()).await
    }

    /// Revokes a token; it fails everywhere from the next request on.
    pub async fn revoke_token(&self, p: &Principal, id: &str) -> Result<Token, ApiError> {
        let now = self.clock.now();
        let token = self.manageable_token(p, id).await?;
        Self::check_action(TokenAction::Revoke, &token, now)?;
        let event = Self::token_event(p, "token.revoked", &token);
        let updated = self
            .store
            .revoke_token(now, &token.id, false, event)
            .await?;
        self.verifier.invalidate_token(&token.id);
        self.token_view(updated, now).await
    }

    /// Re-approves a revoked token (re-checking limits).
    pub async fn restore_token(&self, p: &Principal, id: &str) -> Result<Token, ApiError> {
        let now = self.clock.now();
        let token = self.manageable_token(p, id).await?;
        // Expired first: an expired token never counts as "already active".
        Self::check_action(TokenAction::Restore, &token, now)?;
        if token.state == StoredState::Active {
            return self.token_view(token, now).await;
        }
        policy::check_restore(token.state, token.expires_at, token.leaked, now).map_err(
            |e| match e {
                RestoreDenied::Leaked => ApiError::Leaked(e.to_string()),
                RestoreDenied::Expired => ApiError::Conflict(e.to_string()),
            },
        )?;
        let org = self.org().await?;
        let instance = self.store.get_instance_settings().await?;
        let limits = policy::limits_for(
            token.token_type,
            token.owner_id.as_deref(),
            &org.token_settings,
            &instance,
        );
        let event = Self::token_event(p, "token.restored", &token);
        let updated = self
            .store
            .restore_token(now, &token.id, &limits, event)
            .await?;
        self.verifier.invalidate_token(&token.id);
        self.token_view(updated, now).await
    }

    /// Approves (`approve`) or denies a pending token: an org admin who did not create it
    /// (the creator, members and workspace tokens get 403); `token.approved` /
    /// `token.denied` is audited and every node drops what it cached of the token.
    pub async fn decide_token(
        &self,
        p: &Principal,
        id: &str,
        approve: bool,
    ) -> Result<Token, ApiError> {
        let now = self.clock.now();
        // Visibility first: a token the caller may not see is 404 for every action.
        let token = self.visible_token(p, id).await?;
        if !p.is_org_admin() {
            return Err(ApiError::forbidden(
                "only org admins may approve or deny tokens",
            ));
        }
        if token.created_by.is_some() && token.created_by.as_deref() == p.user_id() {
            return Err(ApiError::forbidden(
                "another org admin must decide on a token you created",
            ));
        }
        let action = if approve {
            TokenAction::Approve
        } else {
            TokenAction::Deny
        };
        Self::check_action(action, &token, now)?;
        let event = Self::token_event(
            p,
            if approve {
                "token.approved"
            } else {
                "token.denied"
            },
            &token,
        );
        let decided = self
            .store
            .decide_token(now, &token.id, approve, event)
            .await?;
        self.verifier.invalidate_token(&token.id);
        tracing::info!(token_id = %token.id, approved = approve, "token decided");
        self.token_view(decided, now).await
    }

    /// Gives a token a new secret under the same id; the old one works for the grace period.
    pub async fn rotate_token(
        &self,
        p: &Principal,
        id: &str,
        req: RotateTokenRequest,
        idempotency_key: Option<&str>,
    ) -> Result<CreatedToken, ApiError> {
        let now = self.clock.now();
        let token = self.manageable_token(p, id).await?;
        self.may_mint_for_owner(p, &token).await?;
        let idempotency = match idempotency_key {
            Some(key) => {
                let (record_key, request_hash) = self.idempotency_key(p, &token.id, key, &req)?;
                if let Some(replay) = self
                    .replay_rotation(&token.id, &record_key, &request_hash, now)
                    .await?
                {
                    return Ok(replay);
                }
                Some((record_key, request_hash))
            }
            None => None,
        };
        Self::check_action(TokenAction::Rotate, &token, now)?;
        let grace = req.grace_seconds.unwrap_or(0);
        if grace > MAX_GRACE_SECONDS {
            return Err(ApiError::field(
                "grace_seconds",
                format!("grace_seconds must be at most {MAX_GRACE_SECONDS}"),
            ));
        }
        // The settings as they are now decide whether the new secret is kept recoverable.
        let org = self.org().await?;
        let new_expiry = if req.expires_in_days.is_some() || req.expires_at.is_some() {
            let instance = self.store.get_instance_settings().await?;
            let cap = p.token().and_then(|g| g.token.expires_at);
            Some(
                policy::resolve_expiry(
                    now,
                    token.token_type,
                    LifetimeRequest {
                        days: req.expires_in_days,
                        at: req.expires_at,
                        created_at: Some(token.created_at),
                    },
                    &org.token_settings,
                    &instance,
                    cap,
                )
                .map_err(lifetime_error)?,
            )
        } else {
            None
        };
        let secret = token::generate(SecretKind::Token(token.token_type));
        let hash = self.hash_key.hash(&secret);
        let new_secret = SecretRecord {
            token_id: token.id.clone(),
            hash,
            key_id: self.hash_key.id().to_owned(),
            not_after: None,
            hint: Some(token::hint(&secret)),
            sealed: self.seal_if_recoverable(
                &org.token_settings,
                token.token_type,
                &token.id,
                &secret,
            ),
        };
        // The old secret is kept (hashed) past its deadline so that it answers `revoked`
        // rather than `not_found`, until the sweep purges it after `ROTATED_SECRET_RETENTION`.
        let old_not_after = Some(now + time::Duration::seconds(grace as i64));
        let mut event = Self::token_event(p, "token.rotated", &token);
        event.details["grace_seconds"] = json!(grace);
        let record = idempotency
            .as_ref()
            .map(|(key, request_hash)| IdempotencyRecord {
                key: key.clone(),
                request_hash: request_hash.clone(),
                response: crypto::seal(
                    &self.hash_key,
                    IDEMPOTENCY_PURPOSE,
                    key.as_bytes(),
                    secret.as_bytes(),
                ),
                created_at: now,
            });
        let rotated = self
            .store
            .rotate_token(
                now,
                &token.id,
                new_secret,
                old_not_after,
                new_expiry,
                record,
                event,
            )
            .await;
        let updated = match (rotated, &idempotency) {
            (Ok(updated), _) => updated,
            // A concurrent retry with the same key won the race: answer what it stored.
            (Err(StoreError::Conflict(_)), Some((key, request_hash))) => {
                return match self
                    .replay_rotation(&token.id, key, request_hash, now)
                    .await?
                {
                    Some(replay) => Ok(replay),
                    None => Err(ApiError::Conflict(
                        "a concurrent rotation is in progress; retry".into(),
                    )),
                };
            }
            (Err(e), _) => return Err(e.into()),
        };
        self.verifier.invalidate_token(&token.id);
        self.verifier.secret_created(&hash);
        let mut meta = self.token_view(updated, now).await?;
        meta.hint = token::hint(&secret);
        Ok(CreatedToken {
            meta,
            token: secret,
        })
    }

    /// The stored key for an `Idempotency-Key` (scoped by caller and token, keyed-hashed so
    /// the raw header is not kept) and the hash of the request it came with.
    fn idempotency_key(
        &self,
        p: &Principal,
        token_id: &str,
        key: &str,
        req: &RotateTokenRequest,
    ) -> Result<(String, Vec<u8>), ApiError> {
        if key.is_empty() || key.len() > 255 || !key.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ApiError::field(
                "Idempotency-Key",
                "Idempotency-Key must be 1-255 visible ASCII characters",
            ));
        }
        let actor = p
            .user_id()
            .map(str::to_owned)
            .or_else(|| p.token().map(|g| g.token.id.to_string()))
            .unwrap_or_default();
        let scoped = format!("rotate\0{actor}\0{token_id}\0{key}");
        let record_key = hex::encode(self.hash_key.hash(&scoped));
        let body = serde_json::to_vec(req).map_err(|e| ApiError::Internal(e.to_string()))?;
        let request_hash = self.hash_key.hash(&String::from_utf8_lossy(&body)).to_vec();
        Ok((record_key, request_hash))
    }

    async fn replay_rotation(
        &self,
        token_id: &str,
        record_key: &str,
        request_hash: &[u8],
        now: time::OffsetDateTime,
    ) -> Result<Option<CreatedToken>, ApiError> {
        let Some(stored) = self
            .store
            .get_idempotency(record_key, now - IDEMPOTENCY_RETENTION)
            .await?
        else {
            return Ok(None);
        };
        if stored.request_hash != request_hash {
            return Err(ApiError::field(
                "Idempotency-Key",
                "this Idempotency-Key was used with a different request",
            ));
        }
        let secret = crypto::open(
            &self.hash_key,
            IDEMPOTENCY_PURPOSE,
            record_key.as_bytes(),
            &stored.response,
        )
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| ApiError::Internal("stored idempotent answer cannot be opened".into()))?;
        let token = self.store.get_token(token_id).await?;
        let mut meta = self.token_view(token, now).await?;
        meta.hint = token::hint(&secret);
        Ok(Some(CreatedToken {
            meta,
            token: secret,
        }))
    }

    /// Deletes a token for good.
    pub async fn delete_token(&self, p: &Principal, id: &str) -> Result<(), ApiError> {
        let now = self.clock.now();
        let token = self.manageable_token(p, id).await?;
        Self::check_action(TokenAction::Delete, &token, now)?;
        let event = Self::token_event(p, "token.deleted", &token);
        self.store.delete_token(now, &token.id, event).await?;
        self.verifier.invalidate_token(&token.id);
        Ok(())
    }

    /// `POST /api/v1/tokens/verify`: the secret is the credential; failures are throttled
    /// per client IP (valid tokens from a throttled address still check out). Only a
    /// caller who may see the token (or introspect) learns about people: for anyone else
    /// `owner_username`, `created_by`, `last_used_at` and `last_used_ip` are `null`.
    pub async fn verify_secret(
        &self,
        secret: &str,
        ip: ClientIp,
        used_from: Option<std::net::IpAddr>,
        caller: Option<&Principal>,
    ) -> Result<(VerifyResponse, Option<PolicyRefusal>), ApiError> {
        let now = self.clock.now();
        let checked = self.check_credential(secret, now).await;
        // A use of the token: its policy decides (a refusal is an answer, not a failure
        // of the caller's, so it does not count against the caller's address).
        if let Ok(checked) = &checked {
            match self
                .admit(&checked.verified.grant, used_from, now.unix_timestamp())
                .await
            {
                Ok(()) => {}
                Err(Denied::Policy(refusal)) => {
                    let answer = VerifyResponse {
                        valid: false,
                        token: None,
                        reason: Some(refusal.reason),
                    };
                    return Ok((answer, Some(refusal)));
                }
                Err(Denied::Unavailable) => {
                    return Err(ApiError::Unavailable(
                        "token checks are unavailable right now; retry shortly".into(),
                    ));
                }
            }
        }
        if checked.is_err()
            && let Some(retry_after) = self
                .token_failure_throttle
                .blocked(ip.0, now.unix_timestamp())
        {
            self.token_failure_throttle
                .record(ip.0, now.unix_timestamp());
            return Err(ApiError::RateLimited { retry_after });
        }
        match checked {
            Ok(checked) => {
                self.metrics.observe_verify(Ok(()));
                self.last_used
                    .note(&checked.verified.grant, now.unix_timestamp(), used_from);
                // The grant keeps only what checks need; the answer shows the whole token.
                let record = self
                    .store
                    .get_token(&checked.verified.grant.token.id)
                    .await?;
                let full_view =
                    caller.is_some_and(|p| p.can_see(&record) || self.may_introspect(p));
                let mut token = self.token_view(record, now).await?;
                if !full_view {
                    token.owner_username = None;
                    token.created_by = None;
                    token.last_used_at = None;
                    token.last_used_ip = None;
                }
                Ok((
                    VerifyResponse {
                        valid: true,
                        token: Some(token),
                        reason: None,
                    },
                    None,
                ))
            }
            Err(VerifyError::Invalid(reason)) => {
                self.metrics.observe_verify(Err(reason));
                self.token_failure_throttle
                    .record(ip.0, now.unix_timestamp());
                Ok((
                    VerifyResponse {
                        valid: false,
                        token: None,
                        reason: Some(reason),
                    },
                    None,
                ))
            }
            Err(VerifyError::Unavailable) => Err(ApiError::Unavailable(
                "token checks are unavailable right now; retry shortly".into(),
            )),
        }
    }

    /// Marks expired tokens and purges rotated-out secrets (the sweep task).
    pub async fn sweep_expired(&self) -> Result<usize, ApiError> {
        let now = self.clock.now();
        let expired = self.store.expire_tokens(now).await?;
        for id in &expired {
            self.verifier.invalidate_token(id);
        }
        self.store
            .purge_rotated_secrets(now - ROTATED_SECRET_RETENTION)
            .await?;
        let purged = self
            .store
            .purge_retired(&latchkey_store::Retention {
                sessions_expired_at: now,
                sessions_idle_since: now
                    .checked_sub(self.config.sessions.idle_timeout())
                    .unwrap_or(now),
                idempotency_before: now - IDEMPOTENCY_RETENTION,
                keep_changes: self.config.verifier.change_feed_keep,
                usage_days_before: crate::usage::first_usage_day(now),
            })
            .await?;
        if purged != latchkey_store::Purged::default() {
            tracing::debug!(?purged, "housekeeping deleted retired rows");
        }
        self.metrics
            .tokens_expired
            .fetch_add(expired.len() as u64, std::sync::atomic::Ordering::Relaxed);
        Ok(expired.len())
    }

    /// The idle sweep (part of the periodic sweep): revokes the tokens the org's
    /// `idle_revoke_days` says are idle at `clock.now()`, in batches, and drops them from
    /// this node's cache at once (the other nodes hear of each through the change feed).
    /// Returns how many it revoked; 0 when the setting is off.
    pub async fn sweep_idle(&self) -> Result<usize, ApiError> {
        const BATCH: u32 = 500;
        let org = self.org().await?;
        let Some(days) = org.token_settings.idle_revoke_days else {
            return Ok(0);
        };
        // This node's uses not yet written count: a token used here a moment ago is not
        // idle. (Another node's unflushed uses are seconds old against a period of days.)
        self.last_used.flush(self.store.as_ref()).await?;
        let now = self.clock.now();
        let mut revoked = 0;
        loop {
            let ids = self
                .store
                .revoke_idle_tokens(now, &org.id, days, BATCH)
                .await?;
            for id in &ids {
                self.verifier.invalidate_token(id);
            }
            revoked += ids.len();
            if ids.len() < BATCH as usize {
                return Ok(revoked);
            }
        }
    }
}
