use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

use crate::{OrgRole, RateLimit, Refill, Scope, TokenCreators, TokenType, UserKind, WorkspaceRole};

/// `POST /api/v1/session`.
#[derive(Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignInRequest {
    /// Username.
    pub username: String,
    /// Password.
    pub password: String,
}

impl std::fmt::Debug for SignInRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignInRequest")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// `POST /api/v1/users`: a person (`kind` `human`, the default, with a password) or a
/// service account (`kind` `service`, without one).
#[derive(Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUserRequest {
    /// Unique sign-in name (1–64 characters: letters, digits, `.`, `_`, `-`, `@`).
    pub username: String,
    /// At least 8 characters; required for `human`, refused for `service`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// `human` (default) or `service`.
    #[serde(default)]
    pub kind: UserKind,
    /// Org role; default `member`.
    #[serde(default = "default_org_role")]
    pub role: OrgRole,
    /// Name to show.
    #[serde(default)]
    pub display_name: Option<String>,
    /// Contact address.
    #[serde(default)]
    pub email: Option<String>,
}

fn default_org_role() -> OrgRole {
    OrgRole::Member
}

impl CreateUserRequest {
    /// A person with `password` and org role `role`.
    pub fn human(username: impl Into<String>, password: impl Into<String>, role: OrgRole) -> Self {
        CreateUserRequest {
            username: username.into(),
            password: Some(password.into()),
            kind: UserKind::Human,
            role,
            display_name: None,
            email: None,
        }
    }

    /// A service account (org role `member`, no password).
    pub fn service(username: impl Into<String>) -> Self {
        CreateUserRequest {
            username: username.into(),
            password: None,
            kind: UserKind::Service,
            role: OrgRole::Member,
            display_name: None,
            email: None,
        }
    }
}

impl std::fmt::Debug for CreateUserRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreateUserRequest")
            .field("username", &self.username)
            .field("kind", &self.kind)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

/// `PATCH /api/v1/users/{id}`: every field optional.
#[derive(Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateUserRequest {
    /// `false` deactivates (sessions end, tokens stop working); `true` reactivates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active: Option<bool>,
    /// New org role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<OrgRole>,
    /// New display name (`null` clears it).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::double_option"
    )]
    #[schema(value_type = Option<String>)]
    pub display_name: Option<Option<String>>,
    /// New email (`null` clears it).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::double_option"
    )]
    #[schema(value_type = Option<String>)]
    pub email: Option<Option<String>>,
    /// New password (at least 8 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// The current password: required when users change their own password (through a
    /// console session; tokens cannot change passwords).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_password: Option<String>,
}

impl std::fmt::Debug for UpdateUserRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpdateUserRequest")
            .field("active", &self.active)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

/// `POST /api/v1/workspaces`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWorkspaceRequest {
    /// Unique in the org, 1–200 characters.
    pub name: String,
}

/// `PUT /api/v1/workspaces/{ws}/members/{user}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutMemberRequest {
    /// Role in the workspace.
    pub role: WorkspaceRole,
}

/// `POST /api/v1/workspaces/{ws}/tokens`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTokenRequest {
    /// Free text, 1–200 characters.
    pub name: String,
    /// Default `personal`.
    #[serde(rename = "type", default = "default_token_type")]
    pub token_type: TokenType,
    /// Default: everything the owner may do (personal), `projects:read` (client,
    /// frontend), every workspace right (admin).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Vec<Scope>>,
    /// Project ids to bind a client or frontend token to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub projects: Option<Vec<String>>,
    /// Environment name to bind a client or frontend token to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    /// Lifetime in whole days (≥ 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in_days: Option<i64>,
    /// Expiry instant (RFC 3339, in the future).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    pub expires_at: Option<OffsetDateTime>,
    /// For personal tokens: the owner (org admins may create for others).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_id: Option<String>,
    /// A JSON object (at most 4 KiB as compact JSON) returned by every check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<serde_json::Value>,
    /// IPv4/IPv6 CIDRs (or single addresses) the token may be used from, 1-100 entries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_ips: Option<Vec<String>>,
    /// At most `limit` uses per window of `window_secs` (≤ 86,400) seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimit>,
    /// Uses granted (0 or more; omitted: unlimited).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remaining_uses: Option<i64>,
    /// Refill of `remaining_uses` (needs `remaining_uses`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refill: Option<Refill>,
}

fn default_token_type() -> TokenType {
    TokenType::Personal
}

impl CreateTokenRequest {
    /// A request for a token of `token_type` named `name`, every option at its default.
    pub fn new(name: impl Into<String>, token_type: TokenType) -> Self {
        CreateTokenRequest {
            name: name.into(),
            token_type,
            scopes: None,
            projects: None,
            environment: None,
            expires_in_days: None,
            expires_at: None,
            owner_id: None,
            metadata: None,
            allowed_ips: None,
            rate_limit: None,
            remaining_uses: None,
            refill: None,
        }
    }
}

/// `POST /api/v1/tokens/{id}/rotate` (the body is optional).
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateTokenRequest {
    /// Seconds the old secret keeps working (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grace_seconds: Option<u64>,
    /// New lifetime in days (default: keep the expiry).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in_days: Option<i64>,
    /// New expiry instant (default: keep the expiry).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    pub expires_at: Option<OffsetDateTime>,
}

/// `PATCH /api/v1/tokens/{id}`: the token's verify-time policy; every field optional, a
/// field given as `null` clears it. A token changing its own policy may only narrow it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateTokenRequest {
    /// A JSON object (at most 4 KiB as compact JSON); `null` clears it.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::double_option"
    )]
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Option<serde_json::Value>>,
    /// IPv4/IPv6 CIDRs, 1-100 entries; `null`: anywhere.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::double_option"
    )]
    #[schema(value_type = Option<Vec<String>>)]
    pub allowed_ips: Option<Option<Vec<String>>>,
    /// Rate limit; `null`: none.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::double_option"
    )]
    #[schema(value_type = Option<RateLimit>)]
    pub rate_limit: Option<Option<RateLimit>>,
    /// Uses from now on (0 or more); `null`: unlimited (also drops `refill`).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::double_option"
    )]
    #[schema(value_type = Option<i64>)]
    pub remaining_uses: Option<Option<i64>>,
    /// Refill of `remaining_uses`; `null`: never.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::double_option"
    )]
    #[schema(value_type = Option<Refill>)]
    pub refill: Option<Option<Refill>>,
}

/// `POST /api/v1/tokens/verify`.
#[derive(Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyRequest {
    /// The secret to check.
    pub token: String,
    /// The address the token is being used from, checked against its `allowed_ips`
    /// (a resource server passes its client's address). Omitted: a token with
    /// `allowed_ips` fails with `ip_not_allowed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
}

impl std::fmt::Debug for VerifyRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("VerifyRequest { token: <redacted> }")
    }
}

/// `POST /projects` and `POST /api/v1/workspaces/{ws}/projects`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateProjectRequest {
    /// 1–200 characters.
    pub name: String,
    /// Optional description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// `PATCH /api/v1/instance/settings`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateInstanceSettingsRequest {
    /// `null` = unlimited.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::double_option"
    )]
    #[schema(value_type = Option<u32>)]
    pub max_active_tokens: Option<Option<u32>>,
    /// Days, ≥ 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_token_lifetime_days: Option<u32>,
}

/// `PATCH /api/v1/orgs/{org}/token-settings`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateTokenSettingsRequest {
    /// Types that work.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled_types: Option<Vec<TokenType>>,
    /// Days, ≥ 1; `null` = the instance default.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::double_option"
    )]
    #[schema(value_type = Option<u32>)]
    pub personal_token_ttl_days: Option<Option<u32>>,
    /// `null` = unlimited.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::double_option"
    )]
    #[schema(value_type = Option<u32>)]
    pub max_tokens_per_user: Option<Option<u32>>,
    /// Who may create their own personal tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_creators: Option<TokenCreators>,
    /// Types whose secrets are kept recoverable from now on; a type taken off the list
    /// has its kept secrets erased in the same change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recoverable_types: Option<Vec<TokenType>>,
    /// Days, 1 to 3650; `null` = off (no idle revocation).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::double_option"
    )]
    #[schema(value_type = Option<u32>)]
    pub idle_revoke_days: Option<Option<u32>>,
    /// Days, 1 to 3650; `null` = off (no cap). Lowering it is retroactive.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::double_option"
    )]
    #[schema(value_type = Option<u32>)]
    pub max_token_lifetime_days: Option<Option<u32>>,
    /// Types whose new tokens wait for an org admin's approval (org owners only; an org
    /// admin asking for a change gets 403).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval_required_types: Option<Vec<TokenType>>,
}

/// `POST /api/v1/token/refresh`: exchange a personal token for a short-lived access JWT.
#[derive(Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    /// The personal token (or a still-valid access JWT) to exchange.
    pub refresh: String,
}

impl std::fmt::Debug for RefreshRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RefreshRequest { refresh: <redacted> }")
    }
}
