use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

use crate::{
    OrgRole, Reason, RefillInterval, Scope, TokenCreators, TokenState, TokenType, UserKind,
    WorkspaceRole,
};

/// A page of a list: `{"items": [...], "next_cursor": "..." | null}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Page<T> {
    /// This page's items, newest first.
    pub items: Vec<T>,
    /// Pass as `cursor` to get the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// A token's metadata. Never holds its secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Token {
    /// UUIDv7.
    pub id: String,
    /// Free text, up to 200 characters.
    pub name: String,
    /// The token's type.
    #[serde(rename = "type")]
    pub token_type: TokenType,
    /// `lkp_…a1B2`: prefix and the last four characters.
    pub hint: String,
    /// The workspace the token acts in (`null` for legacy tokens, which are user-wide).
    pub workspace_id: Option<String>,
    /// The workspace's name.
    pub workspace_name: Option<String>,
    /// The owning user (`null` for workspace tokens).
    pub owner_id: Option<String>,
    /// The owning user's username.
    pub owner_username: Option<String>,
    /// Who created it.
    pub created_by: Option<String>,
    /// What it may do (always narrowed by its owner's rights at use).
    pub scopes: Vec<Scope>,
    /// Projects it is bound to (empty: all of the workspace's).
    pub projects: Vec<String>,
    /// Environment name it is bound to.
    pub environment: Option<String>,
    /// Creation time.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Expiry (`null`: never).
    #[serde(with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
    /// Last successful use, accurate to the flush interval.
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_used_at: Option<OffsetDateTime>,
    /// Client IP of the last use.
    pub last_used_ip: Option<String>,
    /// State, with `suspended` and `type_disabled` derived at read time.
    pub state: TokenState,
    /// Free-form JSON object (at most 4 KiB as compact JSON) returned by every check of
    /// the token (verify, introspection, forward-auth); `null` when none.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<serde_json::Map<String, serde_json::Value>>,
    /// IPv4/IPv6 CIDRs the token may be used from; `null`: anywhere.
    #[serde(default)]
    pub allowed_ips: Option<Vec<String>>,
    /// At most `limit` uses per window; `null`: no limit.
    #[serde(default)]
    pub rate_limit: Option<RateLimit>,
    /// Uses left (`null`: unlimited); each use takes one, at 0 checks fail with
    /// `usage_exceeded`.
    #[serde(default)]
    pub remaining_uses: Option<u64>,
    /// How `remaining_uses` is refilled; `null`: never.
    #[serde(default)]
    pub refill: Option<Refill>,
    /// Whether its secret is kept (encrypted) so that `POST /api/v1/tokens/{id}/reveal`
    /// can show it again: its type was in the org's `recoverable_types` when it was
    /// created or last rotated, and has stayed there since.
    #[serde(default)]
    pub recoverable: bool,
}

/// A token's rate limit: at most `limit` uses in each window of `window_secs` seconds
/// (windows are aligned to the Unix epoch).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// Uses per window, 1 to 1,000,000,000.
    pub limit: u64,
    /// Window length in seconds, 1 to 86,400 (one day).
    pub window_secs: u64,
}

/// How `remaining_uses` is refilled: set back to `amount` at every `interval` boundary
/// (00:00 UTC; monthly: the first of the month).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Refill {
    /// Uses after each refill, at least 1.
    pub amount: u64,
    /// `daily` or `monthly`.
    pub interval: RefillInterval,
}

/// A token just created or rotated: the metadata plus the secret, shown exactly once.
#[derive(Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CreatedToken {
    /// The token's metadata.
    #[serde(flatten)]
    pub meta: Token,
    /// The secret. Store it now: it is never shown again.
    pub token: String,
}

/// `POST /api/v1/tokens/{id}/reveal`: a recoverable token's current secret.
#[derive(Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RevealedToken {
    /// The secret.
    pub token: String,
}

/// `GET /api/v1/tokens/{id}/usage`: how a token has been used lately, as counted by the
/// nodes and flushed with the last-used batch (accurate to the flush interval).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TokenUsage {
    /// Last successful use (`null`: never used).
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_used_at: Option<OffsetDateTime>,
    /// The last 5 distinct addresses it was used from, newest first (uses whose address
    /// is unknown, such as a verify call without `ip`, add none).
    pub last_ips: Vec<IpUse>,
    /// Uses per UTC day over the last 90 days, oldest first, today last; days without
    /// uses count 0.
    pub daily: Vec<DailyUse>,
}

/// An address a token was used from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct IpUse {
    /// The address.
    pub ip: String,
    /// The latest use from it.
    #[serde(with = "time::serde::rfc3339")]
    pub last_seen_at: OffsetDateTime,
}

/// A token's uses on one UTC day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DailyUse {
    /// The day, `YYYY-MM-DD` (UTC).
    #[schema(format = Date)]
    pub date: String,
    /// Successful uses that day: API calls with the token, forward-auth checks, verify
    /// and introspection answers that found it valid.
    pub count: u64,
}

impl std::fmt::Debug for RevealedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RevealedToken { token: <redacted> }")
    }
}

impl std::fmt::Debug for CreatedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatedToken")
            .field("meta", &self.meta)
            .field("token", &"<redacted>")
            .finish()
    }
}

/// A user of the organization.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct User {
    /// UUIDv7.
    pub id: String,
    /// Unique sign-in name.
    pub username: String,
    /// Name to show.
    pub display_name: Option<String>,
    /// Contact address.
    pub email: Option<String>,
    /// Role in the organization.
    pub role: OrgRole,
    /// `human`, or `service` (a service account: never signs in).
    #[serde(default)]
    pub kind: UserKind,
    /// `false` once deactivated.
    pub active: bool,
    /// Creation time.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// The organization, as nested in `/api/v1/me`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct OrgRef {
    /// Organization id.
    pub id: String,
    /// Organization name.
    pub name: String,
}

/// One of the caller's workspace memberships, as nested in `/api/v1/me`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MembershipRef {
    /// Workspace id.
    pub workspace_id: String,
    /// Workspace name.
    pub workspace_name: String,
    /// The caller's role there.
    pub role: WorkspaceRole,
}

/// `GET /api/v1/me`: the user, the org and the memberships.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Me {
    /// The user.
    #[serde(flatten)]
    pub user: User,
    /// The organization.
    pub org: OrgRef,
    /// Workspace memberships.
    pub memberships: Vec<MembershipRef>,
}

/// A workspace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Workspace {
    /// UUIDv7.
    pub id: String,
    /// Unique in the org.
    pub name: String,
    /// The organization.
    pub org_id: String,
    /// Creation time.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// A user's membership in a workspace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Member {
    /// The workspace.
    pub workspace_id: String,
    /// The user.
    pub user_id: String,
    /// The user's username.
    pub username: String,
    /// Role in the workspace.
    pub role: WorkspaceRole,
    /// When the membership was created.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// A project: the example resource that tokens protect.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Project {
    /// UUIDv7.
    pub id: String,
    /// The workspace it belongs to.
    pub workspace_id: String,
    /// Name.
    pub name: String,
    /// Description.
    pub description: Option<String>,
    /// Who created it (user id, or `null` for a workspace token).
    pub created_by: Option<String>,
    /// Creation time.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// Instance-wide limits and defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct InstanceSettings {
    /// Most active tokens across the instance (`null`: unlimited).
    pub max_active_tokens: Option<u32>,
    /// Lifetime of personal tokens when the org sets none.
    pub default_token_lifetime_days: u32,
}

/// An organization's token settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TokenSettings {
    /// Token types that work; a disabled type's tokens fail until re-enabled.
    pub enabled_types: Vec<TokenType>,
    /// Lifetime of personal tokens (`null`: the instance default).
    pub personal_token_ttl_days: Option<u32>,
    /// Most active personal and legacy tokens per user (`null`: unlimited).
    pub max_tokens_per_user: Option<u32>,
    /// Who may create their own personal tokens.
    pub token_creators: TokenCreators,
    /// Token types whose secrets are kept encrypted when created or rotated, so that those
    /// who may see a token can reveal it again (default: none). Taking a type off the
    /// list erases the kept secrets of that type at once.
    #[serde(default)]
    pub recoverable_types: Vec<TokenType>,
    /// Active tokens not used (never used: not created) for this many days are revoked
    /// by the server's sweep, audited with reason `idle` and restorable (`null`: off).
    #[serde(default)]
    pub idle_revoke_days: Option<u32>,
    /// The longest any token may live, in days (`null`: off). A longer requested expiry,
    /// or none for a workspace token, is refused (422 `lifetime_exceeds_policy`); a
    /// personal token's default lifetime is shortened to it; legacy tokens (which carry
    /// no expiry) are created as before; and a token older than the cap fails with reason
    /// `lifetime_policy`, also when it was created before the cap was set or lowered.
    #[serde(default)]
    pub max_token_lifetime_days: Option<u32>,
    /// Token types whose new tokens start `pending` until another org admin approves them,
    /// unless an org owner creates them (default: none). Only org owners change it.
    #[serde(default)]
    pub approval_required_types: Vec<TokenType>,
}

/// `POST /api/v1/tokens/verify` answer: `valid` plus the token, or the reason.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct VerifyResponse {
    /// Whether the token works right now.
    pub valid: bool,
    /// The token's metadata when valid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<Token>,
    /// Why not, when invalid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<Reason>,
}

/// An audit event: who did what, when, from where. Never holds a secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AuditEvent {
    /// UUIDv7.
    pub id: String,
    /// What happened (`token.created`, `user.deactivated`, ...).
    pub action: String,
    /// Who did it (user id), `null` for the system or an anonymous caller.
    pub actor_id: Option<String>,
    /// The token the actor used, when they used one.
    pub actor_token_id: Option<String>,
    /// Kind of the object acted on (`token`, `user`, ...).
    pub target_type: Option<String>,
    /// Id of the object acted on.
    pub target_id: Option<String>,
    /// The workspace concerned.
    pub workspace_id: Option<String>,
    /// The user the act concerns (e.g. a token's owner).
    pub subject_user_id: Option<String>,
    /// Client IP.
    pub ip: Option<String>,
    /// Extra facts (never secrets).
    pub details: serde_json::Value,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// `/healthz` and `/readyz`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Health {
    /// `ok`, or what is wrong.
    pub status: String,
}

/// `POST /api/v1/token/refresh` answer: a short-lived access JWT.
#[derive(Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RefreshResponse {
    /// The access JWT (EdDSA-signed, `typ` `at+jwt`); send it as `Authorization: Bearer`.
    pub access: String,
    /// Seconds until the JWT expires (default 300).
    pub expires_in: u64,
}

impl std::fmt::Debug for RefreshResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RefreshResponse")
            .field("access", &"<redacted>")
            .field("expires_in", &self.expires_in)
            .finish()
    }
}
