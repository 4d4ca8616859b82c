//! Every rule about who may do what with which token, for how long, as pure functions.
//!
//! The permission table ([`org_role_grants`], [`workspace_role_grants`]) is the single
//! source of truth; the server (API and console alike) asks these functions and never
//! re-derives a rule on its own.

use latchkey_proto::{OrgRole, Reason, Scope, TokenCreators, TokenState, TokenType, WorkspaceRole};
use time::{Duration, OffsetDateTime};

use crate::model::{InstanceSettings, StateContext, StoredState, TokenSettings};
use crate::scopes::ScopeSet;

/// Named permissions. Roles map to sets of them; scopes narrow what a token may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Permission {
    /// Read a workspace's projects.
    ReadProjects,
    /// Create and delete projects.
    WriteProjects,
    /// Read a workspace's members.
    ReadMembers,
    /// Add, change and remove workspace members.
    ManageMembers,
    /// See token metadata (subject to visibility rules).
    ReadApiToken,
    /// Create one's own personal and legacy tokens (subject to `token_creators`).
    CreatePersonalToken,
    /// Revoke, restore, rotate and delete one's own tokens.
    ManageOwnTokens,
    /// Create workspace tokens (`client`, `frontend`, `admin`) and personal tokens for others.
    CreateApiToken,
    /// Revoke, restore, rotate and delete anyone's tokens.
    ManageAnyToken,
    /// Create, change and deactivate users.
    ManageUsers,
    /// Create workspaces.
    ManageWorkspaces,
    /// Read and change the org's token settings.
    ManageTokenSettings,
    /// Change instance-wide settings.
    ManageInstance,
    /// Read every audit event.
    ReadAudit,
    /// Call token introspection.
    Introspect,
}

/// Org-level permissions of an org role. Org admins also act as admins of every workspace.
pub fn org_role_grants(role: OrgRole, permission: Permission) -> bool {
    use Permission::*;
    match role {
        OrgRole::Owner => true,
        OrgRole::Admin => !matches!(permission, ManageInstance),
        OrgRole::Member => false,
    }
}

/// Workspace-level permissions of a workspace role.
pub fn workspace_role_grants(role: WorkspaceRole, permission: Permission) -> bool {
    use Permission::*;
    match role {
        WorkspaceRole::Admin => matches!(
            permission,
            ReadProjects
                | WriteProjects
                | ReadMembers
                | ManageMembers
                | ReadApiToken
                | CreatePersonalToken
                | ManageOwnTokens
        ),
        WorkspaceRole::Member => matches!(
            permission,
            ReadProjects
                | WriteProjects
                | ReadMembers
                | ReadApiToken
                | CreatePersonalToken
                | ManageOwnTokens
        ),
        WorkspaceRole::Viewer => matches!(permission, ReadProjects),
    }
}

/// The scope a token needs to exercise a permission.
pub fn scope_for(permission: Permission) -> Scope {
    use Permission::*;
    match permission {
        ReadProjects => Scope::ProjectsRead,
        WriteProjects => Scope::ProjectsWrite,
        ReadMembers => Scope::MembersRead,
        ReadApiToken => Scope::TokensRead,
        CreatePersonalToken | ManageOwnTokens | CreateApiToken | ManageAnyToken => {
            Scope::TokensWrite
        }
        Introspect => Scope::Introspect,
        ManageMembers | ManageUsers | ManageWorkspaces | ManageTokenSettings | ManageInstance
        | ReadAudit => Scope::Admin,
    }
}

/// Whether a user with these roles holds `permission` (in a workspace where they have
/// `workspace_role`, or org-wide when `None`).
pub fn user_may(
    org_role: OrgRole,
    workspace_role: Option<WorkspaceRole>,
    permission: Permission,
) -> bool {
    org_role_grants(org_role, permission)
        || workspace_role.is_some_and(|r| workspace_role_grants(r, permission))
}

/// What a user may do in a workspace, expressed as scopes: the ceiling for their tokens.
pub fn user_scopes(org_role: OrgRole, workspace_role: Option<WorkspaceRole>) -> ScopeSet {
    if org_role.is_org_admin() {
        return ScopeSet::all();
    }
    let Some(role) = workspace_role else {
        return ScopeSet::EMPTY;
    };
    [
        Permission::ReadProjects,
        Permission::WriteProjects,
        Permission::ReadMembers,
        Permission::ReadApiToken,
        Permission::ManageOwnTokens,
    ]
    .into_iter()
    .filter(|p| workspace_role_grants(role, *p))
    .map(scope_for)
    .collect()
}

/// Scopes a workspace token gets when the request names none.
pub fn default_workspace_token_scopes(token_type: TokenType) -> ScopeSet {
    match token_type {
        TokenType::Admin => [
            Scope::ProjectsRead,
            Scope::ProjectsWrite,
            Scope::TokensRead,
            Scope::TokensWrite,
            Scope::MembersRead,
            Scope::Introspect,
        ]
        .into_iter()
        .collect(),
        _ => ScopeSet::EMPTY.with(Scope::ProjectsRead),
    }
}

/// Why a create request is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CreateDenied {
    /// The type is disabled in the org's settings.
    #[error("{0} tokens are disabled in this organization")]
    TypeDisabled(&'static str),
    /// The caller's role does not allow it.
    #[error("{0}")]
    NotAllowed(&'static str),
    /// Asked for scopes beyond the ceiling.
    #[error("requested scopes exceed what the owner may do")]
    ScopesExceed,
    /// Project or environment binding on a type that has none.
    #[error("only client and frontend tokens can be bound to projects or an environment")]
    BindingNotAllowed,
}

/// Who is asking to create a token, and for whom.
#[derive(Debug, Clone, Copy)]
pub struct CreateContext {
    /// Caller's org role.
    pub actor_org_role: OrgRole,
    /// Caller's role in the target workspace.
    pub actor_workspace_role: Option<WorkspaceRole>,
    /// Whether the token is for the caller (personal/legacy).
    pub for_self: bool,
    /// The intended owner's org role and workspace role (personal/legacy).
    pub owner_roles: Option<(OrgRole, Option<WorkspaceRole>)>,
}

/// Checks whether a token of `token_type` may be created, and returns its scopes.
pub fn check_create(
    token_type: TokenType,
    settings: &TokenSettings,
    ctx: CreateContext,
    requested_scopes: Option<ScopeSet>,
    has_binding: bool,
) -> Result<ScopeSet, CreateDenied> {
    if !settings.is_enabled(token_type) {
        return Err(CreateDenied::TypeDisabled(token_type.as_str()));
    }
    let actor_is_admin = ctx.actor_org_role.is_org_admin();
    if has_binding && !matches!(token_type, TokenType::Client | TokenType::Frontend) {
        return Err(CreateDenied::BindingNotAllowed);
    }
    let ceiling = if token_type.is_user_owned() {
        if !ctx.for_self && !user_may(ctx.actor_org_role, None, Permission::CreateApiToken) {
            return Err(CreateDenied::NotAllowed(
                "only org admins create tokens for other users",
            ));
        }
        if token_type == TokenType::Legacy && !ctx.for_self {
            return Err(CreateDenied::NotAllowed(
                "a legacy token can only be created by its owner",
            ));
        }
        if ctx.for_self {
            if !user_may(
                ctx.actor_org_role,
                ctx.actor_workspace_role,
                Permission::CreatePersonalToken,
            ) {
                return Err(CreateDenied::NotAllowed(
                    "your role in this workspace does not allow creating tokens",
                ));
            }
            if settings.token_creators == TokenCreators::Admins && !actor_is_admin {
                return Err(CreateDenied::NotAllowed(
                    "only org admins may create tokens in this organization",
                ));
            }
        }
        let (owner_org, owner_ws) = ctx
            .owner_roles
            .unwrap_or((ctx.actor_org_role, ctx.actor_workspace_role));
        let ceiling = user_scopes(owner_org, owner_ws);
        if token_type == TokenType::Personal && ceiling.is_empty() {
            return Err(CreateDenied::NotAllowed(
                "the owner has no access to this workspace",
            ));
        }
        ceiling
    } else {
        if !user_may(ctx.actor_org_role, None, Permission::CreateApiToken) {
            return Err(CreateDenied::NotAllowed(
                "only org admins create workspace tokens",
            ));
        }
        ScopeSet::all()
    };
    let scopes = match requested_scopes {
        Some(s) => s,
        None if token_type.is_user_owned() => ceiling,
        None => default_workspace_token_scopes(token_type),
    };
    if !ceiling.is_superset(scopes) {
        return Err(CreateDenied::ScopesExceed);
    }
    Ok(scopes)
}

/// Which tokens a caller may see — the one visibility rule of DESIGN.md §1 ("who may see
/// it in lists"), for lists and reads by id alike.
///
/// Build it with [`Visibility::for_user`] (a session, or a user-owned token's owner) or
/// [`Visibility::for_workspace_token`], confine it with [`Visibility::within`] when the
/// caller is a token that acts in one workspace, then ask [`Visibility::allows`] for one
/// token; the store takes the same value as its list filter and turns it into one SQL
/// condition, so what a caller lists is exactly what it may read by id.
///
/// A token is visible when any of these holds — and, for a confined caller, it acts in the
/// caller's workspace (a workspace-bound token reaches no other workspace and no user-wide
/// legacy token):
/// * the caller sees everything (org admins);
/// * it is a personal or legacy token the caller's user owns (when the caller is one of
///   the user's tokens, [`Visibility::through_token`]: only where the user may read tokens,
///   or in no workspace — a token never reads more than its owner's role grants there);
/// * it is a workspace token of one of [`Visibility::workspace_types`] in one of
///   [`Visibility::workspaces`]: `client` and `frontend` tokens of the workspaces where the
///   user is a workspace admin or member (not a viewer); for a workspace token as caller,
///   those of its own workspace, and `admin` tokens too when the caller is an `admin`
///   token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Visibility {
    everything: bool,
    owner: Option<String>,
    owned_only_in_workspaces: bool,
    workspaces: Vec<String>,
    workspace_types: Vec<TokenType>,
    within: Option<String>,
}

impl Visibility {
    /// No token at all.
    pub fn nothing() -> Visibility {
        Visibility {
            everything: false,
            owner: None,
            owned_only_in_workspaces: false,
            workspaces: Vec::new(),
            workspace_types: Vec::new(),
            within: None,
        }
    }

    /// Every token of the org.
    pub fn everything() -> Visibility {
        Visibility {
            everything: true,
            ..Visibility::nothing()
        }
    }

    /// What a user sees: everything as an org admin; else their own personal and legacy
    /// tokens, and the `client` and `frontend` tokens of the workspaces where
    /// `memberships` gives them [`Permission::ReadApiToken`] (workspace admins and members,
    /// not viewers).
    pub fn for_user<'a>(
        user_id: &str,
        org_role: OrgRole,
        memberships: impl IntoIterator<Item = (&'a str, WorkspaceRole)>,
    ) -> Visibility {
        if org_role.is_org_admin() {
            return Visibility::everything();
        }
        let mut workspaces: Vec<String> = memberships
            .into_iter()
            .filter(|(_, role)| workspace_role_grants(*role, Permission::ReadApiToken))
            .map(|(ws, _)| ws.to_owned())
            .collect();
        workspaces.sort();
        workspaces.dedup();
        Visibility {
            owner: Some(user_id.to_owned()),
            workspaces,
            workspace_types: vec![TokenType::Client, TokenType::Frontend],
            ..Visibility::nothing()
        }
    }

    /// What a workspace token (`client`, `frontend`, `admin`; no user behind it) sees:
    /// the `client` and `frontend` tokens of its workspace, and `admin` tokens too when it
    /// is an `admin` token. A user-owned type gets nothing here (use
    /// [`Visibility::for_user`] with its owner).
    pub fn for_workspace_token(workspace_id: &str, caller_type: TokenType) -> Visibility {
        let workspace_types = match caller_type {
            TokenType::Client | TokenType::Frontend => vec![TokenType::Client, TokenType::Frontend],
            TokenType::Admin => vec![TokenType::Client, TokenType::Frontend, TokenType::Admin],
            TokenType::Personal | TokenType::Legacy => return Visibility::nothing(),
        };
        Visibility {
            workspaces: vec![workspace_id.to_owned()],
            workspace_types,
            ..Visibility::nothing()
        }
    }

    /// For one of the user's tokens as caller: the user's own tokens count only in the
    /// workspaces of [`Visibility::workspaces`] (where the user may read tokens) or in
    /// none. A session sees the user's own tokens everywhere; a token's rights are narrowed
    /// to what its owner's role grants in each workspace, and a viewer's role grants no
    /// token reading.
    #[must_use]
    pub fn through_token(mut self) -> Visibility {
        if !self.everything {
            self.owned_only_in_workspaces = true;
        }
        self
    }

    /// Confines to tokens acting in `workspace_id`, when it is `Some`: a token that acts in
    /// one workspace (a personal or workspace token) sees nothing of the others and no
    /// user-wide legacy token, whatever its owner may see.
    #[must_use]
    pub fn within(mut self, workspace_id: Option<&str>) -> Visibility {
        if let Some(ws) = workspace_id {
            self.within = Some(ws.to_owned());
        }
        self
    }

    /// Whether a token of `token_type` acting in `workspace_id` and owned by `owner_id` is
    /// visible.
    pub fn allows(
        &self,
        token_type: TokenType,
        workspace_id: Option<&str>,
        owner_id: Option<&str>,
    ) -> bool {
        if let Some(within) = self.within.as_deref()
            && workspace_id != Some(within)
        {
            return false;
        }
        let in_workspaces = |ws: &str| self.workspaces.iter().any(|w| w == ws);
        self.everything
            || (token_type.is_user_owned()
                && owner_id.is_some()
                && self.owner.as_deref() == owner_id
                && (!self.owned_only_in_workspaces || workspace_id.is_none_or(in_workspaces)))
            || (self.workspace_types.contains(&token_type)
                && workspace_id.is_some_and(in_workspaces))
    }

    /// Whether every token of the org is visible (before [`Visibility::confinement`]).
    pub fn sees_everything(&self) -> bool {
        self.everything
    }

    /// The user whose personal and legacy tokens are visible.
    pub fn owner(&self) -> Option<&str> {
        self.owner.as_deref()
    }

    /// Whether the owner's tokens count only in [`Visibility::workspaces`] or in no
    /// workspace ([`Visibility::through_token`]).
    pub fn owned_only_in_workspaces(&self) -> bool {
        self.owned_only_in_workspaces
    }

    /// The workspaces whose tokens of [`Visibility::workspace_types`] are visible (sorted).
    pub fn workspaces(&self) -> &[String] {
        &self.workspaces
    }

    /// The workspace token types visible in [`Visibility::workspaces`].
    pub fn workspace_types(&self) -> &[TokenType] {
        &self.workspace_types
    }

    /// The one workspace a confined caller sees tokens of.
    pub fn confinement(&self) -> Option<&str> {
        self.within.as_deref()
    }
}

/// Whether `actor` may revoke, restore, rotate or delete `token`.
pub fn can_manage_token(
    actor_id: &str,
    actor_org_role: OrgRole,
    token_type: TokenType,
    token_owner_id: Option<&str>,
) -> bool {
    if user_may(actor_org_role, None, Permission::ManageAnyToken) {
        return true;
    }
    token_type.is_user_owned() && token_owner_id == Some(actor_id)
}

/// Whether org role `a` outranks org role `b` (owner > admin > member). Nobody changes,
/// or mints or rotates credentials for, a user whose role outranks their own; passwords and
/// emails of others are reset only from strictly above.
pub fn outranks(a: OrgRole, b: OrgRole) -> bool {
    fn rank(r: OrgRole) -> u8 {
        match r {
            OrgRole::Owner => 2,
            OrgRole::Admin => 1,
            OrgRole::Member => 0,
        }
    }
    rank(a) > rank(b)
}

/// Why a requested lifetime is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LifetimeError {
    /// A field is invalid on its own (named).
    #[error("{message}")]
    InvalidField {
        /// The field.
        field: &'static str,
        /// Why.
        message: String,
    },
    /// Longer than the policy allows (the requested field named).
    #[error("{message}")]
    ExceedsPolicy {
        /// `expires_in_days` or `expires_at`.
        field: &'static str,
        /// Why.
        message: String,
    },
}

/// A requested lifetime: days or an instant, at most one.
#[derive(Debug, Clone, Copy, Default)]
pub struct LifetimeRequest {
    /// `expires_in_days`.
    pub days: Option<i64>,
    /// `expires_at`.
    pub at: Option<OffsetDateTime>,
    /// When the token was created, for a new expiry of an existing token (rotation):
    /// the org's `max_token_lifetime_days` counts from there. `None`: it is created now.
    pub created_at: Option<OffsetDateTime>,
}

/// Whether a token created at `created_at` is older than the org's maximum token
/// lifetime (`max_lifetime_secs`, 0: no cap) at `now`. The cap counts from creation and
/// applies to tokens made before it was set or lowered (on purpose, as GitHub's does).
#[inline]
pub fn exceeds_max_lifetime(
    created_at: OffsetDateTime,
    max_lifetime_secs: i64,
    now: OffsetDateTime,
) -> bool {
    max_lifetime_secs != 0
        && created_at
            .unix_timestamp()
            .saturating_add(max_lifetime_secs)
            <= now.unix_timestamp()
}

/// The longest a personal token may live under these settings.
pub fn personal_ttl_days(settings: &TokenSettings, instance: &InstanceSettings) -> u32 {
    settings
        .personal_token_ttl_days
        .unwrap_or(instance.default_token_lifetime_days)
}

/// Decides a new token's expiry: the policy's maximum, narrowed by the request and by the
/// creating token's own expiry (`cap`); never silently clamped.
pub fn resolve_expiry(
    now: OffsetDateTime,
    token_type: TokenType,
    request: LifetimeRequest,
    settings: &TokenSettings,
    instance: &InstanceSettings,
    cap: Option<OffsetDateTime>,
) -> Result<Option<OffsetDateTime>, LifetimeError> {
    let requested = match (request.days, request.at) {
        (Some(_), Some(_)) => {
            return Err(LifetimeError::InvalidField {
                field: "expires_at",
                message: "give expires_in_days or expires_at, not both".into(),
            });
        }
        (Some(days), None) => {
            if !(1..=36_500).contains(&days) {
                return Err(LifetimeError::InvalidField {
                    field: "expires_in_days",
                    message: "expires_in_days must be a whole number of days from 1 to 36500"
                        .into(),
                });
            }
            Some(now + Duration::days(days))
        }
        (None, Some(at)) => {
            if at <= now {
                return Err(LifetimeError::InvalidField {
                    field: "expires_at",
                    message: "expires_at must be in the future".into(),
                });
            }
            Some(crate::whole_seconds(at))
        }
        (None, None) => None,
    };
    if token_type == TokenType::Legacy {
        if requested.is_some() {
            return Err(LifetimeError::InvalidField {
                field: if request.days.is_some() {
                    "expires_in_days"
                } else {
                    "expires_at"
                },
                message: "legacy tokens never expire".into(),
            });
        }
        return Ok(None);
    }
    let policy_max = (token_type == TokenType::Personal)
        .then(|| now + Duration::days(i64::from(personal_ttl_days(settings, instance))));
    // The org's maximum lifetime caps every type (legacy tokens, which cannot carry an
    // expiry, are held to it at use instead). A personal token without a requested expiry
    // gets its default lifetime, which the cap shortens (a default, not a clamp of what
    // was asked); any other token without one would never expire: refused, not clamped.
    let org_max = settings
        .max_token_lifetime_days
        .map(|days| request.created_at.unwrap_or(now) + Duration::days(i64::from(days)));
    if let (None, Some(days)) = (requested, settings.max_token_lifetime_days)
        && !matches!(token_type, TokenType::Personal | TokenType::Legacy)
    {
        return Err(LifetimeError::ExceedsPolicy {
            field: "expires_in_days",
            message: format!(
                "tokens here must expire: the organization's maximum token lifetime is \
                 {days} days"
            ),
        });
    }
    let ceiling = [policy_max, org_max, cap].into_iter().flatten().min();
    match (requested, ceiling) {
        (Some(r), Some(c)) if r > c => Err(LifetimeError::ExceedsPolicy {
            field: if request.days.is_some() {
                "expires_in_days"
            } else {
                "expires_at"
            },
            message: format!(
                "the longest lifetime allowed here ends at {}",
                c.format(&time::format_description::well_known::Rfc3339)
                    .unwrap_or_default()
            ),
        }),
        (Some(r), _) => Ok(Some(r)),
        (None, c) => Ok(c),
    }
}

/// The check of a known secret, in DESIGN.md's reason precedence:
/// `expired` > `revoked` > `type_disabled` > `suspended` > `pending`. A denied token
/// answers `revoked`: the check reasons are a closed list clients switch on (§3), and a
/// denied token is, to its holder, one an admin turned off for good.
pub fn check_token(
    state: StoredState,
    expires_at: Option<OffsetDateTime>,
    secret_not_after: Option<OffsetDateTime>,
    now: OffsetDateTime,
    ctx: StateContext,
) -> Result<(), Reason> {
    if state == StoredState::Expired || expires_at.is_some_and(|e| e <= now) {
        return Err(Reason::Expired);
    }
    if matches!(state, StoredState::Revoked | StoredState::Denied)
        || secret_not_after.is_some_and(|n| n <= now)
    {
        return Err(Reason::Revoked);
    }
    if !ctx.type_enabled {
        return Err(Reason::TypeDisabled);
    }
    if !ctx.owner_active {
        return Err(Reason::Suspended);
    }
    if state == StoredState::Pending {
        return Err(Reason::Pending);
    }
    Ok(())
}

/// The state shown in lists, derived from the stored one.
pub fn visible_state(
    state: StoredState,
    expires_at: Option<OffsetDateTime>,
    now: OffsetDateTime,
    ctx: StateContext,
) -> TokenState {
    match check_token(state, expires_at, None, now, ctx) {
        Ok(()) => TokenState::Active,
        Err(Reason::Expired) => TokenState::Expired,
        Err(Reason::Revoked) if state == StoredState::Denied => TokenState::Denied,
        Err(Reason::Revoked) => TokenState::Revoked,
        Err(Reason::TypeDisabled) => TokenState::TypeDisabled,
        Err(Reason::Pending) => TokenState::Pending,
        Err(_) => TokenState::Suspended,
    }
}

/// Whether a token is expired at `now`: stored as `expired`, or past its expiry and not
/// yet marked by the sweep (the two must behave the same).
pub fn is_expired(
    state: StoredState,
    expires_at: Option<OffsetDateTime>,
    now: OffsetDateTime,
) -> bool {
    state == StoredState::Expired || expires_at.is_some_and(|e| e <= now)
}

/// An action a manager takes on an existing token through the API or the console.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenAction {
    /// `POST /api/v1/tokens/{id}/revoke`.
    Revoke,
    /// `POST /api/v1/tokens/{id}/restore`.
    Restore,
    /// `POST /api/v1/tokens/{id}/rotate`.
    Rotate,
    /// `DELETE /api/v1/tokens/{id}`.
    Delete,
    /// `POST /api/v1/tokens/{id}/approve`.
    Approve,
    /// `POST /api/v1/tokens/{id}/deny`.
    Deny,
}

impl TokenAction {
    /// The verb as a message says it ("revoked").
    pub fn past_tense(self) -> &'static str {
        match self {
            TokenAction::Revoke => "revoked",
            TokenAction::Restore => "restored",
            TokenAction::Rotate => "rotated",
            TokenAction::Delete => "deleted",
            TokenAction::Approve => "approved",
            TokenAction::Deny => "denied",
        }
    }
}

/// Why an action on a token is refused whatever the caller's rights.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ActionDenied {
    /// `expired` is final: the token can only be deleted.
    #[error("the token has expired and cannot be {}; expired is final (delete it, or create a new token)", .0.past_tense())]
    Expired(TokenAction),
    /// `denied` is final: the token can only be deleted (a revoke leaves it denied).
    #[error("the token was denied and cannot be {}; denied is final (delete it, or create a new token)", .0.past_tense())]
    Denied(TokenAction),
    /// Only a pending token is approved or denied.
    #[error("the token is not pending approval, so it cannot be {}", .0.past_tense())]
    NotPending(TokenAction),
}

/// Whether `action` may be taken on a token in this state (docs/decisions.md, "Expired
/// is final"): on an expired token — stored or past its expiry — every action that would
/// change its state or secret is refused (HTTP 409), the same whether or not it was
/// revoked first; deleting stays allowed, so expired tokens can be cleaned up. Actions the
/// second wave adds (approve, deny) follow the same rule.
pub fn check_action(
    action: TokenAction,
    state: StoredState,
    expires_at: Option<OffsetDateTime>,
    now: OffsetDateTime,
) -> Result<(), ActionDenied> {
    match action {
        TokenAction::Delete => Ok(()),
        TokenAction::Revoke
        | TokenAction::Restore
        | TokenAction::Rotate
        | TokenAction::Approve
        | TokenAction::Deny => {
            if is_expired(state, expires_at, now) {
                Err(ActionDenied::Expired(action))
            } else if state == StoredState::Denied && action != TokenAction::Revoke {
                Err(ActionDenied::Denied(action))
            } else if state != StoredState::Pending
                && matches!(action, TokenAction::Approve | TokenAction::Deny)
            {
                Err(ActionDenied::NotPending(action))
            } else {
                Ok(())
            }
        }
    }
}

/// Why a restore is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RestoreDenied {
    /// Expired tokens stay expired.
    #[error("the token has expired; expired tokens cannot be restored")]
    Expired,
    /// Leaked tokens must be rotated.
    #[error("the token was reported leaked; rotate it instead of restoring it")]
    Leaked,
}

/// Whether a revoked token may be re-approved now.
pub fn check_restore(
    state: StoredState,
    expires_at: Option<OffsetDateTime>,
    leaked: bool,
    now: OffsetDateTime,
) -> Result<(), RestoreDenied> {
    if is_expired(state, expires_at, now) {
        return Err(RestoreDenied::Expired);
    }
    if leaked {
        return Err(RestoreDenied::Leaked);
    }
    Ok(())
}

/// The limits a new (or restored) token must fit in.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Limits {
    /// Instance-wide cap on active tokens.
    pub max_active_tokens: Option<u32>,
    /// Per-user cap on active personal and legacy tokens, with the user it applies to.
    pub max_tokens_per_user: Option<(String, u32)>,
}

/// The limits that apply to a token of `token_type` owned by `owner_id`.
pub fn limits_for(
    token_type: TokenType,
    owner_id: Option<&str>,
    settings: &TokenSettings,
    instance: &InstanceSettings,
) -> Limits {
    Limits {
        max_active_tokens: instance.max_active_tokens,
        max_tokens_per_user: match (token_type.is_user_owned(), owner_id) {
            (true, Some(owner)) => settings
                .max_tokens_per_user
                .map(|cap| (owner.to_owned(), cap)),
            _ => None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2027-01-01 00:00:00 UTC);
    const OK: StateContext = StateContext {
        owner_active: true,
        type_enabled: true,
    };

    #[test]
    fn personal_defaults_to_instance_ttl_and_refuses_longer() {
        let s = TokenSettings::default();
        let i = InstanceSettings::default();
        let e = resolve_expiry(
            NOW,
            TokenType::Personal,
            LifetimeRequest::default(),
            &s,
            &i,
            None,
        );
        assert_eq!(e, Ok(Some(NOW + Duration::days(270))));
        let e = resolve_expiry(
            NOW,
            TokenType::Personal,
            LifetimeRequest {
                days: Some(271),
                at: None,
                created_at: None,
            },
            &s,
            &i,
            None,
        );
        assert!(matches!(e, Err(LifetimeError::ExceedsPolicy { .. })));
        let e = resolve_expiry(
            NOW,
            TokenType::Personal,
            LifetimeRequest {
                days: Some(30),
                at: None,
                created_at: None,
            },
            &s,
            &i,
            None,
        );
        assert_eq!(e, Ok(Some(NOW + Duration::days(30))));
    }

    #[test]
    fn org_max_lifetime_caps_every_type_and_counts_from_creation() {
        let s = TokenSettings {
            max_token_lifetime_days: Some(30),
            ..TokenSettings::default()
        };
        let i = InstanceSettings::default();
        let ask = |days, created_at| LifetimeRequest {
            days,
            at: None,
            created_at,
        };
        assert_eq!(
            resolve_expiry(NOW, TokenType::Personal, ask(None, None), &s, &i, None),
            Ok(Some(NOW + Duration::days(30))),
            "personal, no expiry asked: its default lifetime, shortened by the cap"
        );
        for t in [TokenType::Client, TokenType::Admin, TokenType::Personal] {
            if t != TokenType::Personal {
                assert!(
                    matches!(
                        resolve_expiry(NOW, t, ask(None, None), &s, &i, None),
                        Err(LifetimeError::ExceedsPolicy {
                            field: "expires_in_days",
                            ..
                        })
                    ),
                    "{t:?}: no expiry asked would never expire"
                );
            }
            assert_eq!(
                resolve_expiry(NOW, t, ask(Some(30), None), &s, &i, None),
                Ok(Some(NOW + Duration::days(30)))
            );
            assert!(matches!(
                resolve_expiry(NOW, t, ask(Some(31), None), &s, &i, None),
                Err(LifetimeError::ExceedsPolicy {
                    field: "expires_in_days",
                    ..
                })
            ));
        }
        assert_eq!(
            resolve_expiry(NOW, TokenType::Legacy, ask(None, None), &s, &i, None),
            Ok(None)
        );
        // A rotation's new expiry counts from the token's creation.
        let born = NOW - Duration::days(20);
        assert!(matches!(
            resolve_expiry(
                NOW,
                TokenType::Client,
                ask(Some(11), Some(born)),
                &s,
                &i,
                None
            ),
            Err(LifetimeError::ExceedsPolicy { .. })
        ));
        assert_eq!(
            resolve_expiry(
                NOW,
                TokenType::Client,
                ask(Some(10), Some(born)),
                &s,
                &i,
                None
            ),
            Ok(Some(NOW + Duration::days(10)))
        );
    }

    #[test]
    fn max_lifetime_counts_from_creation_and_zero_is_off() {
        let cap = 30 * 86_400;
        assert!(!exceeds_max_lifetime(NOW, 0, NOW + Duration::days(10_000)));
        assert!(!exceeds_max_lifetime(
            NOW,
            cap,
            NOW + Duration::days(30) - Duration::seconds(1)
        ));
        assert!(exceeds_max_lifetime(NOW, cap, NOW + Duration::days(30)));
    }

    #[test]
    fn org_ttl_overrides_instance_default() {
        let s = TokenSettings {
            personal_token_ttl_days: Some(7),
            ..TokenSettings::default()
        };
        let i = InstanceSettings::default();
        let e = resolve_expiry(
            NOW,
            TokenType::Personal,
            LifetimeRequest::default(),
            &s,
            &i,
            None,
        );
        assert_eq!(e, Ok(Some(NOW + Duration::days(7))));
    }

    #[test]
    fn workspace_tokens_never_expire_unless_asked_and_legacy_never() {
        let s = TokenSettings::default();
        let i = InstanceSettings::default();
        for t in [TokenType::Client, TokenType::Frontend, TokenType::Admin] {
            assert_eq!(
                resolve_expiry(NOW, t, LifetimeRequest::default(), &s, &i, None),
                Ok(None)
            );
            assert_eq!(
                resolve_expiry(
                    NOW,
                    t,
                    LifetimeRequest {
                        days: Some(5000),
                        at: None,
                        created_at: None,
                    },
                    &s,
                    &i,
                    None
                ),
                Ok(Some(NOW + Duration::days(5000)))
            );
        }
        assert_eq!(
            resolve_expiry(
                NOW,
                TokenType::Legacy,
                LifetimeRequest::default(),
                &s,
                &i,
                None
            ),
            Ok(None)
        );
        assert!(
            resolve_expiry(
                NOW,
                TokenType::Legacy,
                LifetimeRequest {
                    days: Some(1),
                    at: None,
                    created_at: None,
                },
                &s,
                &i,
                None
            )
            .is_err()
        );
    }

    #[test]
    fn bad_lifetimes_name_their_field() {
        let s = TokenSettings::default();
        let i = InstanceSettings::default();
        for (req, field) in [
            (
                LifetimeRequest {
                    days: Some(0),
                    at: None,
                    created_at: None,
                },
                "expires_in_days",
            ),
            (
                LifetimeRequest {
                    days: Some(-3),
                    at: None,
                    created_at: None,
                },
                "expires_in_days",
            ),
            (
                LifetimeRequest {
                    days: None,
                    at: Some(NOW),
                    created_at: None,
                },
                "expires_at",
            ),
            (
                LifetimeRequest {
                    days: Some(1),
                    at: Some(NOW + Duration::days(1)),
                    created_at: None,
                },
                "expires_at",
            ),
        ] {
            match resolve_expiry(NOW, TokenType::Personal, req, &s, &i, None) {
                Err(LifetimeError::InvalidField { field: f, .. }) => assert_eq!(f, field),
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn creating_token_caps_expiry() {
        let s = TokenSettings::default();
        let i = InstanceSettings::default();
        let cap = NOW + Duration::days(3);
        assert_eq!(
            resolve_expiry(
                NOW,
                TokenType::Client,
                LifetimeRequest::default(),
                &s,
                &i,
                Some(cap)
            ),
            Ok(Some(cap))
        );
        assert!(
            resolve_expiry(
                NOW,
                TokenType::Personal,
                LifetimeRequest {
                    days: Some(4),
                    at: None,
                    created_at: None,
                },
                &s,
                &i,
                Some(cap)
            )
            .is_err()
        );
    }

    #[test]
    fn reason_precedence() {
        let past = Some(NOW - Duration::seconds(1));
        let all_bad = StateContext {
            owner_active: false,
            type_enabled: false,
        };
        assert_eq!(
            check_token(StoredState::Revoked, past, past, NOW, all_bad),
            Err(Reason::Expired)
        );
        assert_eq!(
            check_token(StoredState::Revoked, None, None, NOW, all_bad),
            Err(Reason::Revoked)
        );
        assert_eq!(
            check_token(StoredState::Active, None, past, NOW, all_bad),
            Err(Reason::Revoked)
        );
        assert_eq!(
            check_token(StoredState::Active, None, None, NOW, all_bad),
            Err(Reason::TypeDisabled)
        );
        assert_eq!(
            check_token(
                StoredState::Active,
                None,
                None,
                NOW,
                StateContext {
                    owner_active: false,
                    type_enabled: true
                }
            ),
            Err(Reason::Suspended)
        );
        assert_eq!(
            check_token(StoredState::Active, None, None, NOW, OK),
            Ok(())
        );
        // Expiry is exclusive of the instant itself: at `expires_at` the token is dead.
        assert_eq!(
            check_token(StoredState::Active, Some(NOW), None, NOW, OK),
            Err(Reason::Expired)
        );
    }

    #[test]
    fn pending_comes_right_after_suspended_and_denied_answers_revoked() {
        let past = Some(NOW - time::Duration::seconds(1));
        let suspended = StateContext {
            owner_active: false,
            type_enabled: true,
        };
        let disabled = StateContext {
            owner_active: true,
            type_enabled: false,
        };
        let pending = StoredState::Pending;
        assert_eq!(
            check_token(pending, past, None, NOW, OK),
            Err(Reason::Expired)
        );
        assert_eq!(
            check_token(pending, None, past, NOW, OK),
            Err(Reason::Revoked)
        );
        assert_eq!(
            check_token(pending, None, None, NOW, disabled),
            Err(Reason::TypeDisabled)
        );
        assert_eq!(
            check_token(pending, None, None, NOW, suspended),
            Err(Reason::Suspended)
        );
        assert_eq!(
            check_token(pending, None, None, NOW, OK),
            Err(Reason::Pending)
        );
        assert_eq!(visible_state(pending, None, NOW, OK), TokenState::Pending);
        assert_eq!(
            visible_state(pending, None, NOW, suspended),
            TokenState::Suspended
        );
        let denied = StoredState::Denied;
        assert_eq!(
            check_token(denied, None, None, NOW, OK),
            Err(Reason::Revoked)
        );
        assert_eq!(
            check_token(denied, past, None, NOW, OK),
            Err(Reason::Expired)
        );
        assert_eq!(visible_state(denied, None, NOW, OK), TokenState::Denied);
        assert_eq!(
            visible_state(denied, None, NOW, disabled),
            TokenState::Denied
        );
    }

    #[test]
    fn only_pending_tokens_are_decided_and_denied_is_final() {
        for action in [TokenAction::Approve, TokenAction::Deny] {
            assert_eq!(
                check_action(action, StoredState::Pending, None, NOW),
                Ok(())
            );
            for state in [StoredState::Active, StoredState::Revoked] {
                assert_eq!(
                    check_action(action, state, None, NOW),
                    Err(ActionDenied::NotPending(action))
                );
            }
            assert_eq!(
                check_action(action, StoredState::Denied, None, NOW),
                Err(ActionDenied::Denied(action))
            );
            assert_eq!(
                check_action(
                    action,
                    StoredState::Pending,
                    Some(NOW - time::Duration::seconds(1)),
                    NOW
                ),
                Err(ActionDenied::Expired(action))
            );
        }
        // A revoke of a denied token leaves it denied (idempotent, as for revoked ones);
        // nothing else brings it back.
        assert_eq!(
            check_action(TokenAction::Revoke, StoredState::Denied, None, NOW),
            Ok(())
        );
        for action in [TokenAction::Restore, TokenAction::Rotate] {
            assert_eq!(
                check_action(action, StoredState::Denied, None, NOW),
                Err(ActionDenied::Denied(action))
            );
        }
        assert_eq!(
            check_action(TokenAction::Delete, StoredState::Denied, None, NOW),
            Ok(())
        );
    }

    #[test]
    fn visibility_rules() {
        use TokenType::*;
        let admin = Visibility::for_user("u", OrgRole::Admin, []);
        assert!(admin.allows(Admin, Some("w"), None));
        assert!(admin.allows(Personal, Some("w"), Some("v")));
        let member = Visibility::for_user(
            "u",
            OrgRole::Member,
            [
                ("w", WorkspaceRole::Member),
                ("x", WorkspaceRole::Viewer),
                ("y", WorkspaceRole::Admin),
            ],
        );
        assert_eq!(member.workspaces(), ["w", "y"]);
        assert!(member.allows(Client, Some("w"), None));
        assert!(member.allows(Frontend, Some("y"), None));
        assert!(
            !member.allows(Frontend, Some("x"), None),
            "viewers see no workspace tokens"
        );
        assert!(
            !member.allows(Admin, Some("y"), None),
            "admin tokens: org admins only"
        );
        assert!(
            member.allows(Personal, Some("x"), Some("u")),
            "own tokens, any role"
        );
        assert!(member.allows(Legacy, None, Some("u")));
        assert!(!member.allows(Personal, Some("w"), Some("v")));
        assert!(!member.allows(Client, None, None));
        // A personal token acting in `w` sees nothing of `y`, nor the owner's legacy token.
        let confined = member.clone().within(Some("w"));
        assert!(confined.allows(Client, Some("w"), None));
        assert!(!confined.allows(Client, Some("y"), None));
        assert!(!confined.allows(Personal, Some("x"), Some("u")));
        assert!(!confined.allows(Legacy, None, Some("u")));
        assert!(
            !admin
                .clone()
                .within(Some("w"))
                .allows(Admin, Some("v"), None)
        );
        // Through one of the user's tokens: own tokens only where the role reads tokens.
        let token = member.clone().through_token();
        assert!(token.allows(Personal, Some("w"), Some("u")));
        assert!(
            !token.allows(Personal, Some("x"), Some("u")),
            "a viewer there"
        );
        assert!(
            !token.allows(Personal, Some("z"), Some("u")),
            "not a member there"
        );
        assert!(token.allows(Legacy, None, Some("u")));
        assert_eq!(admin.clone().through_token(), admin);
        // Workspace tokens: their workspace's client and frontend tokens; admin tokens
        // only for an admin token; never a user's token.
        let client = Visibility::for_workspace_token("w", Client);
        assert!(client.allows(Frontend, Some("w"), None));
        assert!(!client.allows(Admin, Some("w"), None));
        assert!(!client.allows(Client, Some("v"), None));
        assert!(!client.allows(Personal, Some("w"), Some("u")));
        let admin_token = Visibility::for_workspace_token("w", Admin);
        assert!(admin_token.allows(Admin, Some("w"), None));
        assert!(!admin_token.allows(Admin, Some("v"), None));
        assert_eq!(
            Visibility::for_workspace_token("w", Personal),
            Visibility::nothing()
        );
        assert!(!Visibility::nothing().allows(Legacy, None, None));
    }

    #[test]
    fn create_rules() {
        let s = TokenSettings::default();
        let member = CreateContext {
            actor_org_role: OrgRole::Member,
            actor_workspace_role: Some(WorkspaceRole::Member),
            for_self: true,
            owner_roles: None,
        };
        assert!(check_create(TokenType::Personal, &s, member, None, false).is_ok());
        assert!(check_create(TokenType::Client, &s, member, None, false).is_err());
        let viewer = CreateContext {
            actor_workspace_role: Some(WorkspaceRole::Viewer),
            ..member
        };
        assert!(check_create(TokenType::Personal, &s, viewer, None, false).is_err());
        let admins_only = TokenSettings {
            token_creators: TokenCreators::Admins,
            ..TokenSettings::default()
        };
        assert!(check_create(TokenType::Personal, &admins_only, member, None, false).is_err());
        let scopes = check_create(TokenType::Personal, &s, member, None, false).unwrap();
        assert!(!scopes.contains(Scope::Admin));
        assert_eq!(
            check_create(
                TokenType::Personal,
                &s,
                member,
                Some(ScopeSet::EMPTY.with(Scope::Admin)),
                false
            ),
            Err(CreateDenied::ScopesExceed)
        );
        let admin = CreateContext {
            actor_org_role: OrgRole::Admin,
            actor_workspace_role: None,
            for_self: true,
            owner_roles: None,
        };
        assert_eq!(
            check_create(TokenType::Client, &s, admin, None, false),
            Ok(ScopeSet::EMPTY.with(Scope::ProjectsRead))
        );
        assert_eq!(
            check_create(TokenType::Personal, &s, admin, None, true),
            Err(CreateDenied::BindingNotAllowed)
        );
        let disabled = TokenSettings {
            enabled_types: 0,
            ..TokenSettings::default()
        };
        assert!(matches!(
            check_create(TokenType::Client, &disabled, admin, None, false),
            Err(CreateDenied::TypeDisabled(_))
        ));
    }

    #[test]
    fn restore_rules() {
        assert_eq!(
            check_restore(StoredState::Revoked, None, false, NOW),
            Ok(())
        );
        assert_eq!(
            check_restore(StoredState::Revoked, None, true, NOW),
            Err(RestoreDenied::Leaked)
        );
        assert_eq!(
            check_restore(StoredState::Revoked, Some(NOW), false, NOW),
            Err(RestoreDenied::Expired)
        );
    }

    #[test]
    fn expired_is_final_for_every_action_but_delete() {
        let past = Some(NOW - time::Duration::seconds(1));
        let future = Some(NOW + time::Duration::seconds(1));
        for action in [
            TokenAction::Revoke,
            TokenAction::Restore,
            TokenAction::Rotate,
        ] {
            for state in [StoredState::Active, StoredState::Revoked] {
                assert_eq!(
                    check_action(action, state, past, NOW),
                    Err(ActionDenied::Expired(action)),
                    "{action:?} on a {state:?} token past its expiry"
                );
                assert_eq!(check_action(action, state, future, NOW), Ok(()));
                assert_eq!(check_action(action, state, None, NOW), Ok(()));
            }
            assert_eq!(
                check_action(action, StoredState::Expired, future, NOW),
                Err(ActionDenied::Expired(action))
            );
        }
        for state in [
            StoredState::Active,
            StoredState::Revoked,
            StoredState::Expired,
        ] {
            assert_eq!(check_action(TokenAction::Delete, state, past, NOW), Ok(()));
        }
        // The boundary: an expiry at `now` has passed (as in `check_token`).
        assert!(is_expired(StoredState::Active, Some(NOW), NOW));
        assert!(
            ActionDenied::Expired(TokenAction::Restore)
                .to_string()
                .contains("cannot be restored")
        );
    }
}
