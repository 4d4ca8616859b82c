//! The records Latchkey keeps, as the store hands them over. Conversions to the wire types
//! live here too, so there is exactly one mapping from a record to what clients see.

use latchkey_proto as proto;
use latchkey_proto::{OrgRole, Scope, TokenCreators, TokenType, UserKind, WorkspaceRole};
use time::OffsetDateTime;

use crate::SecretHash;

/// A token's stored state; `suspended` and `type_disabled` are derived from other records.
/// `pending` and `denied` come from approval (DESIGN.md §8): a pending token holds its
/// limit slot like an active one but authenticates nowhere; denied is final.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StoredState {
    /// Works (subject to expiry and the derived states).
    Active,
    /// Turned off; may be restored before expiry unless leaked.
    Revoked,
    /// Past its expiry, marked by the sweep; final.
    Expired,
    /// Waits for an org admin's approval (→ `Active`) or denial (→ `Denied`).
    Pending,
    /// Refused while pending; final (answers checks as `revoked`).
    Denied,
}

impl StoredState {
    /// Column value.
    pub fn as_str(self) -> &'static str {
        match self {
            StoredState::Active => "active",
            StoredState::Revoked => "revoked",
            StoredState::Expired => "expired",
            StoredState::Pending => "pending",
            StoredState::Denied => "denied",
        }
    }

    /// Parses a column value.
    pub fn parse(text: &str) -> Option<StoredState> {
        match text {
            "active" => Some(StoredState::Active),
            "revoked" => Some(StoredState::Revoked),
            "expired" => Some(StoredState::Expired),
            "pending" => Some(StoredState::Pending),
            "denied" => Some(StoredState::Denied),
            _ => None,
        }
    }
}

/// The organization and its token settings.
#[derive(Debug, Clone, PartialEq)]
pub struct OrgRecord {
    /// Id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Token settings.
    pub token_settings: TokenSettings,
}

/// An org's token settings (DESIGN.md §3 defaults).
#[derive(Debug, Clone, PartialEq)]
pub struct TokenSettings {
    /// Bit set of enabled [`TokenType`]s (see [`TokenType::bit`]).
    pub enabled_types: u8,
    /// Personal-token lifetime in days (`None`: the instance default).
    pub personal_token_ttl_days: Option<u32>,
    /// Per-user cap on active personal and legacy tokens (`None`: unlimited).
    pub max_tokens_per_user: Option<u32>,
    /// Who may create their own personal tokens.
    pub token_creators: TokenCreators,
    /// Bit set of the [`TokenType`]s whose secrets are kept recoverable (sealed) when
    /// created or rotated; 0 (none) by default.
    pub recoverable_types: u8,
    /// Active tokens not used (never used: not created) for this many days are revoked
    /// by the sweep (`None`: never).
    pub idle_revoke_days: Option<u32>,
    /// The longest any token may live, in days (`None`: no cap): caps expiries at
    /// creation, and a token older than this fails its checks (retroactively).
    pub max_token_lifetime_days: Option<u32>,
    /// Bit set of the [`TokenType`]s whose new tokens start `pending` unless an org owner
    /// creates them; 0 (none) by default.
    pub approval_required_types: u8,
}

impl Default for TokenSettings {
    fn default() -> Self {
        TokenSettings {
            enabled_types: TokenType::ALL.iter().fold(0, |acc, t| acc | t.bit()),
            personal_token_ttl_days: None,
            max_tokens_per_user: Some(10),
            token_creators: TokenCreators::Members,
            recoverable_types: 0,
            idle_revoke_days: None,
            max_token_lifetime_days: None,
            approval_required_types: 0,
        }
    }
}

impl TokenSettings {
    /// Whether tokens of `token_type` work.
    pub fn is_enabled(&self, token_type: TokenType) -> bool {
        self.enabled_types & token_type.bit() != 0
    }

    /// Whether tokens of `token_type` created or rotated now keep their secret sealed.
    pub fn is_recoverable(&self, token_type: TokenType) -> bool {
        self.recoverable_types & token_type.bit() != 0
    }

    /// The maximum token lifetime in seconds, 0 when there is none (the form the
    /// verifier keeps in an atomic, so the hot path reads one word).
    pub fn max_token_lifetime_secs(&self) -> i64 {
        self.max_token_lifetime_days
            .map_or(0, |days| i64::from(days) * 86_400)
    }

    /// Whether new tokens of `token_type` wait for approval (unless an owner creates them).
    pub fn requires_approval(&self, token_type: TokenType) -> bool {
        self.approval_required_types & token_type.bit() != 0
    }

    /// The wire form.
    pub fn to_proto(&self) -> proto::TokenSettings {
        proto::TokenSettings {
            enabled_types: TokenType::ALL
                .into_iter()
                .filter(|t| self.is_enabled(*t))
                .collect(),
            personal_token_ttl_days: self.personal_token_ttl_days,
            max_tokens_per_user: self.max_tokens_per_user,
            token_creators: self.token_creators,
            recoverable_types: TokenType::ALL
                .into_iter()
                .filter(|t| self.is_recoverable(*t))
                .collect(),
            idle_revoke_days: self.idle_revoke_days,
            max_token_lifetime_days: self.max_token_lifetime_days,
            approval_required_types: TokenType::ALL
                .into_iter()
                .filter(|t| self.requires_approval(*t))
                .collect(),
        }
    }
}

/// Instance-wide settings (DESIGN.md §3 defaults).
#[derive(Debug, Clone, PartialEq)]
pub struct InstanceSettings {
    /// Most active tokens in the instance (`None`: unlimited).
    pub max_active_tokens: Option<u32>,
    /// Default personal-token lifetime in days.
    pub default_token_lifetime_days: u32,
}

impl Default for InstanceSettings {
    fn default() -> Self {
        InstanceSettings {
            max_active_tokens: Some(200),
            default_token_lifetime_days: 270,
        }
    }
}

impl InstanceSettings {
    /// The wire form.
    pub fn to_proto(&self) -> proto::InstanceSettings {
        proto::InstanceSettings {
            max_active_tokens: self.max_active_tokens,
            default_token_lifetime_days: self.default_token_lifetime_days,
        }
    }
}

/// A user.
#[derive(Debug, Clone, PartialEq)]
pub struct UserRecord {
    /// Id.
    pub id: String,
    /// Organization.
    pub org_id: String,
    /// Unique sign-in name.
    pub username: String,
    /// Name to show.
    pub display_name: Option<String>,
    /// Contact address.
    pub email: Option<String>,
    /// Org role.
    pub role: OrgRole,
    /// A person, or a service account (which never signs in).
    pub kind: UserKind,
    /// `false` once deactivated.
    pub active: bool,
    /// Argon2id PHC string; `None` for accounts that cannot sign in.
    pub password_hash: Option<String>,
    /// Creation time.
    pub created_at: OffsetDateTime,
}

impl UserRecord {
    /// The wire form (never includes the password hash).
    pub fn to_proto(&self) -> proto::User {
        proto::User {
            id: self.id.clone(),
            username: self.username.clone(),
            display_name: self.display_name.clone(),
            email: self.email.clone(),
            role: self.role,
            kind: self.kind,
            active: self.active,
            created_at: self.created_at,
        }
    }
}

/// A workspace.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkspaceRecord {
    /// Id.
    pub id: String,
    /// Organization.
    pub org_id: String,
    /// Unique in the org.
    pub name: String,
    /// Creation time.
    pub created_at: OffsetDateTime,
}

impl WorkspaceRecord {
    /// The wire form.
    pub fn to_proto(&self) -> proto::Workspace {
        proto::Workspace {
            id: self.id.clone(),
            name: self.name.clone(),
            org_id: self.org_id.clone(),
            created_at: self.created_at,
        }
    }
}

/// A user's role in a workspace.
#[derive(Debug, Clone, PartialEq)]
pub struct MembershipRecord {
    /// Workspace.
    pub workspace_id: String,
    /// Workspace name.
    pub workspace_name: String,
    /// User.
    pub user_id: String,
    /// User's username.
    pub username: String,
    /// Role.
    pub role: WorkspaceRole,
    /// Since when.
    pub created_at: OffsetDateTime,
}

impl MembershipRecord {
    /// The wire form as a workspace member.
    pub fn to_member(&self) -> proto::Member {
        proto::Member {
            workspace_id: self.workspace_id.clone(),
            user_id: self.user_id.clone(),
            username: self.username.clone(),
            role: self.role,
            created_at: self.created_at,
        }
    }

    /// The wire form as one of the user's memberships.
    pub fn to_membership_ref(&self) -> proto::MembershipRef {
        proto::MembershipRef {
            workspace_id: self.workspace_id.clone(),
            workspace_name: self.workspace_name.clone(),
            role: self.role,
        }
    }
}

/// A project.
#[derive(Debug, Clone, PartialEq)]
pub struct ProjectRecord {
    /// Id.
    pub id: String,
    /// Workspace.
    pub workspace_id: String,
    /// Name.
    pub name: String,
    /// Description.
    pub description: Option<String>,
    /// Creating user, if a user created it.
    pub created_by: Option<String>,
    /// Creation time.
    pub created_at: OffsetDateTime,
}

impl ProjectRecord {
    /// The wire form.
    pub fn to_proto(&self) -> proto::Project {
        proto::Project {
            id: self.id.clone(),
            workspace_id: self.workspace_id.clone(),
            name: self.name.clone(),
            description: self.description.clone(),
            created_by: self.created_by.clone(),
            created_at: self.created_at,
        }
    }
}

/// A token's metadata as stored (the secret lives only as hashes in its own table).
#[derive(Debug, Clone, PartialEq)]
pub struct TokenRecord {
    /// Id.
    pub id: String,
    /// Organization.
    pub org_id: String,
    /// Name.
    pub name: String,
    /// Type.
    pub token_type: TokenType,
    /// `lkp_…a1B2`.
    pub hint: String,
    /// Workspace it acts in (`None` for legacy tokens).
    pub workspace_id: Option<String>,
    /// That workspace's name (joined on read).
    pub workspace_name: Option<String>,
    /// Owning user (`None` for workspace tokens).
    pub owner_id: Option<String>,
    /// Owner's username (joined on read).
    pub owner_username: Option<String>,
    /// Creating user.
    pub created_by: Option<String>,
    /// Granted scopes.
    pub scopes: Vec<Scope>,
    /// Bound projects (empty: all).
    pub projects: Vec<String>,
    /// Bound environment.
    pub environment: Option<String>,
    /// Creation time.
    pub created_at: OffsetDateTime,
    /// Expiry.
    pub expires_at: Option<OffsetDateTime>,
    /// Last flushed use.
    pub last_used_at: Option<OffsetDateTime>,
    /// IP of the last flushed use.
    pub last_used_ip: Option<String>,
    /// Stored state.
    pub state: StoredState,
    /// Whether it was revoked by a leak report (then it cannot be restored).
    pub leaked: bool,
    /// Verify-time policy (metadata, allowed IPs, rate limit, usage credits).
    pub policy: crate::token_policy::TokenPolicy,
    /// Where its usage credits stand in the store, when it has them (read joined; on
    /// create, `pool` is the initial `remaining_uses`).
    pub uses: Option<crate::token_policy::UsesState>,
    /// Whether its current secret is stored sealed, so it can be revealed again (read
    /// back from the store; what is written comes from [`SecretRecord::sealed`]).
    pub recoverable: bool,
}

/// What the rest of the world needs to derive a token's visible state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateContext {
    /// Whether the owner (if any) is active.
    pub owner_active: bool,
    /// Whether the token's type is enabled.
    pub type_enabled: bool,
}

impl TokenRecord {
    /// The wire form, with the derived state.
    pub fn to_proto(&self, now: OffsetDateTime, ctx: StateContext) -> proto::Token {
        proto::Token {
            id: self.id.clone(),
            name: self.name.clone(),
            token_type: self.token_type,
            hint: self.hint.clone(),
            workspace_id: self.workspace_id.clone(),
            workspace_name: self.workspace_name.clone(),
            owner_id: self.owner_id.clone(),
            owner_username: self.owner_username.clone(),
            created_by: self.created_by.clone(),
            scopes: self.scopes.clone(),
            projects: self.projects.clone(),
            environment: self.environment.clone(),
            created_at: self.created_at,
            expires_at: self.expires_at,
            last_used_at: self.last_used_at,
            last_used_ip: self.last_used_ip.clone(),
            state: crate::policy::visible_state(self.state, self.expires_at, now, ctx),
            metadata: self.policy.metadata.as_ref().map(|m| m.object.clone()),
            allowed_ips: self
                .policy
                .allowed_ips
                .as_ref()
                .map(|nets| nets.iter().map(ToString::to_string).collect()),
            rate_limit: self.policy.rate_limit.map(|r| proto::RateLimit {
                limit: u64::from(r.limit),
                window_secs: u64::from(r.window_secs),
            }),
            remaining_uses: self.remaining_uses(now.unix_timestamp(), 0),
            refill: self
                .policy
                .uses
                .and_then(|u| u.refill)
                .map(|r| proto::Refill {
                    amount: r.amount.max(0) as u64,
                    interval: r.interval,
                }),
            recoverable: self.recoverable,
        }
    }

    /// `remaining_uses` at `now` (unix seconds) as the store counts it, less `unreported`
    /// uses this node spent and has not reported yet; `None`: unlimited.
    pub fn remaining_uses(&self, now: i64, unreported: i64) -> Option<u64> {
        let uses = self.policy.uses?;
        let state = self.uses.unwrap_or_default();
        let refilled = uses.refill.is_some_and(|r| {
            crate::token_policy::Periods::Refill(r.interval).index(now) > state.period
        });
        // Uses spent before a refill nobody has leased since are of the old period.
        let unreported = if refilled { 0 } else { unreported };
        let left = state.remaining(uses.refill, now) - unreported;
        Some(left.max(0) as u64)
    }
}

/// A secret's keyed hash, as stored. A rotation with a grace period leaves two rows for one
/// token: the new one without `not_after`, the old one with it.
#[derive(Debug, Clone, PartialEq)]
pub struct SecretRecord {
    /// Token.
    pub token_id: String,
    /// HMAC-SHA256 of the secret.
    pub hash: SecretHash,
    /// Which hash key made it.
    pub key_id: String,
    /// After this instant the secret no longer works (rotated out).
    pub not_after: Option<OffsetDateTime>,
    /// The token's new hint when this secret replaces another (`rotate_token` stores it on
    /// the token); not kept with the secret, so records read back carry `None`.
    pub hint: Option<String>,
    /// The secret sealed for a later reveal (recoverable types only), stored on the token
    /// by `create_token` and `rotate_token` (`None`: not recoverable, and a rotation erases
    /// what the old secret had); records read back carry `None`.
    pub sealed: Option<Vec<u8>>,
}

/// A console session. Its secret is stored only as a keyed hash.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionRecord {
    /// Id.
    pub id: String,
    /// Signed-in user.
    pub user_id: String,
    /// Sign-in time.
    pub created_at: OffsetDateTime,
    /// Last request seen (for the idle timeout).
    pub last_seen_at: OffsetDateTime,
    /// Absolute end.
    pub expires_at: OffsetDateTime,
}

/// An audit event to write in the same transaction as the change it describes.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NewAuditEvent {
    /// What happened (`token.created`, ...).
    pub action: String,
    /// Who did it.
    pub actor_id: Option<String>,
    /// The token they used, if any.
    pub actor_token_id: Option<String>,
    /// Kind of object acted on.
    pub target_type: Option<String>,
    /// Id of object acted on.
    pub target_id: Option<String>,
    /// Workspace concerned.
    pub workspace_id: Option<String>,
    /// User concerned (e.g. a token's owner).
    pub subject_user_id: Option<String>,
    /// Client IP.
    pub ip: Option<String>,
    /// Extra facts, never secrets.
    pub details: serde_json::Value,
}
