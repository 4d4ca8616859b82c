use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The five kinds of API token (DESIGN.md §1).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum TokenType {
    /// Owned by a user, scoped to one workspace, always expires.
    Personal,
    /// One per user, user-wide, never expires.
    Legacy,
    /// Owned by a workspace, for backend services.
    Client,
    /// Owned by a workspace, for browser code.
    Frontend,
    /// Owned by a workspace, with every workspace right; visible to org admins only.
    Admin,
}

impl TokenType {
    /// Every type, in the order the console lists them.
    pub const ALL: [TokenType; 5] = [
        TokenType::Personal,
        TokenType::Legacy,
        TokenType::Client,
        TokenType::Frontend,
        TokenType::Admin,
    ];

    /// The wire name (`personal`, `legacy`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            TokenType::Personal => "personal",
            TokenType::Legacy => "legacy",
            TokenType::Client => "client",
            TokenType::Frontend => "frontend",
            TokenType::Admin => "admin",
        }
    }

    /// Parses a wire name.
    pub fn parse(name: &str) -> Option<TokenType> {
        TokenType::ALL.into_iter().find(|t| t.as_str() == name)
    }

    /// Whether a user owns tokens of this type (as opposed to a workspace).
    pub fn is_user_owned(self) -> bool {
        matches!(self, TokenType::Personal | TokenType::Legacy)
    }

    /// A bit for this type in a set of types.
    pub fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// What a token is in, as shown in lists and checks. `active`, `revoked`, `expired`,
/// `pending` and `denied` are stored; `suspended` (owner deactivated) and `type_disabled`
/// are derived when read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TokenState {
    /// Works.
    Active,
    /// Turned off by its owner or an admin; can be restored before it expires.
    Revoked,
    /// Past its expiry; final.
    Expired,
    /// Its owner is deactivated; comes back when the owner is reactivated.
    Suspended,
    /// Its type is disabled in the org's token settings.
    TypeDisabled,
    /// Created under `approval_required_types`: waits for another org admin to approve
    /// (→ `active`) or deny (→ `denied`) it; authenticates nowhere meanwhile.
    Pending,
    /// Refused by an org admin while pending; final.
    Denied,
}

impl TokenState {
    /// Every state, in the order lists and filters show them.
    pub const ALL: [TokenState; 7] = [
        TokenState::Active,
        TokenState::Revoked,
        TokenState::Expired,
        TokenState::Suspended,
        TokenState::TypeDisabled,
        TokenState::Pending,
        TokenState::Denied,
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenState::Active => "active",
            TokenState::Revoked => "revoked",
            TokenState::Expired => "expired",
            TokenState::Suspended => "suspended",
            TokenState::TypeDisabled => "type_disabled",
            TokenState::Pending => "pending",
            TokenState::Denied => "denied",
        }
    }

    /// Parses a wire name.
    pub fn parse(name: &str) -> Option<TokenState> {
        TokenState::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

/// Why a token check failed (verify, audit, logs), in precedence order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// Not a Latchkey token: wrong prefix, length, alphabet or checksum.
    BadFormat,
    /// Well-formed but unknown (never issued, deleted, or rotated out).
    NotFound,
    /// Past its expiry.
    Expired,
    /// Revoked (also a rotated-out secret after its grace period).
    Revoked,
    /// Its type is disabled in the org's token settings.
    TypeDisabled,
    /// Its owner is deactivated.
    Suspended,
    /// Older than the org's `max_token_lifetime_days` (counted from its creation).
    LifetimePolicy,
    /// Waiting for an org admin's approval (`approval_required_types`).
    Pending,
    /// Used from an address outside its `allowed_ips`.
    IpNotAllowed,
    /// No uses left (`remaining_uses` is 0) until the next refill, if any.
    UsageExceeded,
    /// Over its `rate_limit` in the current window.
    RateLimited,
}

impl Reason {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::BadFormat => "bad_format",
            Reason::NotFound => "not_found",
            Reason::Expired => "expired",
            Reason::Revoked => "revoked",
            Reason::TypeDisabled => "type_disabled",
            Reason::Suspended => "suspended",
            Reason::LifetimePolicy => "lifetime_policy",
            Reason::Pending => "pending",
            Reason::IpNotAllowed => "ip_not_allowed",
            Reason::UsageExceeded => "usage_exceeded",
            Reason::RateLimited => "rate_limited",
        }
    }
}

/// What a token may do, narrowing its owner's rights.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
pub enum Scope {
    /// Read projects.
    #[serde(rename = "projects:read")]
    ProjectsRead,
    /// Create and delete projects.
    #[serde(rename = "projects:write")]
    ProjectsWrite,
    /// Read token metadata.
    #[serde(rename = "tokens:read")]
    TokensRead,
    /// Create, revoke, restore, rotate and delete tokens.
    #[serde(rename = "tokens:write")]
    TokensWrite,
    /// Read workspace members.
    #[serde(rename = "members:read")]
    MembersRead,
    /// Call RFC 7662 introspection.
    #[serde(rename = "introspect")]
    Introspect,
    /// Org administration (users, settings, audit), for an org-admin owner.
    #[serde(rename = "admin")]
    Admin,
    /// Read `/metrics` when `[metrics] require_scope` asks for it (org-admin owners only;
    /// no workspace right comes with it).
    #[serde(rename = "metrics:read")]
    MetricsRead,
}

impl Scope {
    /// Every scope.
    pub const ALL: [Scope; 8] = [
        Scope::ProjectsRead,
        Scope::ProjectsWrite,
        Scope::TokensRead,
        Scope::TokensWrite,
        Scope::MembersRead,
        Scope::Introspect,
        Scope::Admin,
        Scope::MetricsRead,
    ];

    /// The wire name (`projects:read`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::ProjectsRead => "projects:read",
            Scope::ProjectsWrite => "projects:write",
            Scope::TokensRead => "tokens:read",
            Scope::TokensWrite => "tokens:write",
            Scope::MembersRead => "members:read",
            Scope::Introspect => "introspect",
            Scope::Admin => "admin",
            Scope::MetricsRead => "metrics:read",
        }
    }

    /// Parses a wire name.
    pub fn parse(name: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

/// A user's role in the organization.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum OrgRole {
    /// Full control, including instance settings and granting `owner`.
    Owner,
    /// Manages users, workspaces, settings and every token.
    Admin,
    /// Works in the workspaces they belong to.
    Member,
}

impl OrgRole {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            OrgRole::Owner => "owner",
            OrgRole::Admin => "admin",
            OrgRole::Member => "member",
        }
    }

    /// Parses a wire name.
    pub fn parse(name: &str) -> Option<OrgRole> {
        [OrgRole::Owner, OrgRole::Admin, OrgRole::Member]
            .into_iter()
            .find(|r| r.as_str() == name)
    }

    /// Owners and admins administer the org.
    pub fn is_org_admin(self) -> bool {
        matches!(self, OrgRole::Owner | OrgRole::Admin)
    }
}

/// What kind of account a user is (DESIGN.md §8 "Service accounts").
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum UserKind {
    /// A person: signs in with a password.
    #[default]
    Human,
    /// A machine identity: never signs in; owns personal tokens that org admins create for
    /// it, which outlive every human.
    Service,
}

impl UserKind {
    /// Every kind.
    pub const ALL: [UserKind; 2] = [UserKind::Human, UserKind::Service];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            UserKind::Human => "human",
            UserKind::Service => "service",
        }
    }

    /// Parses a wire name.
    pub fn parse(name: &str) -> Option<UserKind> {
        UserKind::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

/// A user's role in one workspace.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum WorkspaceRole {
    /// Manages the workspace's members and tokens.
    Admin,
    /// Works in the workspace and holds tokens there.
    Member,
    /// Reads projects only.
    Viewer,
}

impl WorkspaceRole {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            WorkspaceRole::Admin => "admin",
            WorkspaceRole::Member => "member",
            WorkspaceRole::Viewer => "viewer",
        }
    }

    /// Parses a wire name.
    pub fn parse(name: &str) -> Option<WorkspaceRole> {
        [
            WorkspaceRole::Admin,
            WorkspaceRole::Member,
            WorkspaceRole::Viewer,
        ]
        .into_iter()
        .find(|r| r.as_str() == name)
    }
}

/// Who may create personal tokens for themselves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TokenCreators {
    /// Every member (the default).
    Members,
    /// Only org admins.
    Admins,
}

impl TokenCreators {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenCreators::Members => "members",
            TokenCreators::Admins => "admins",
        }
    }

    /// Parses a wire name.
    pub fn parse(name: &str) -> Option<TokenCreators> {
        [TokenCreators::Members, TokenCreators::Admins]
            .into_iter()
            .find(|r| r.as_str() == name)
    }
}

/// How often a token's `remaining_uses` is refilled (set back to the refill amount), at
/// 00:00 UTC: every day, or on the first day of every month.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RefillInterval {
    /// Every day at 00:00 UTC.
    Daily,
    /// On the first day of every month at 00:00 UTC.
    Monthly,
}

impl RefillInterval {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            RefillInterval::Daily => "daily",
            RefillInterval::Monthly => "monthly",
        }
    }

    /// Parses a wire name.
    pub fn parse(name: &str) -> Option<RefillInterval> {
        match name {
            "daily" => Some(RefillInterval::Daily),
            "monthly" => Some(RefillInterval::Monthly),
            _ => None,
        }
    }
}
