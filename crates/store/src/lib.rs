//! The storage contract: the [`Store`] trait every backend implements, its error type, and
//! (behind the `conformance` feature) the suite every backend must pass.
//!
//! Methods are atomic domain operations, not CRUD: each one that changes something takes
//! the audit event describing the change and writes it in the same transaction, and bumps
//! the change counter so other nodes (and this node's poller) see the change. Limits are
//! checked inside the same transaction as the insert, so concurrent creates cannot
//! overshoot them.
//!
//! The change feed records what caches on other nodes must drop, one [`Change`] per
//! object changed (each with its own, increasing version): token writes (create, revoke,
//! restore, rotate, delete, expire, and tokens deleted or narrowed by `delete_project`) →
//! [`ChangeKind::Token`]; `create_user`, `update_user`, `put_member`, `remove_member` and
//! `create_workspace` with a creator → [`ChangeKind::User`]; `update_token_settings` →
//! [`ChangeKind::Org`]; `update_instance_settings` → [`ChangeKind::Instance`];
//! `add_signing_key` → [`ChangeKind::SigningKeys`]; `bootstrap` → one of each for what it
//! creates. Bookkeeping writes (audit events, sessions, last-used flushes, purges,
//! projects, workspaces without members, the hash key) record none. A refused write
//! records nothing at all: no change, no audit event.

#![warn(missing_docs)]

#[cfg(feature = "conformance")]
pub mod conformance;
pub mod events;
#[cfg(feature = "sql")]
pub mod sql;

use async_trait::async_trait;
use latchkey_core::policy::{Limits, Visibility};
use latchkey_core::{
    InstanceSettings, MembershipRecord, NewAuditEvent, OrgRecord, ProjectRecord, SecretHash,
    SecretRecord, SessionRecord, TokenRecord, TokenSettings, UserRecord, WorkspaceRecord,
};
use latchkey_proto::{AuditEvent, OrgRole, TokenType, UserKind, WorkspaceRole};
use time::OffsetDateTime;

pub use events::{
    AttemptResult, Channel, ClaimedDelivery, DeliveryRecord, ExpiryNotice, WebhookPatch,
    WebhookRecord,
};

/// Everything a store can report. Backends map their driver errors into these; no driver
/// type crosses this boundary.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The object does not exist (the payload names what: `token`, `user`, ...).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// A uniqueness rule or a state rule was hit (the payload explains, for the client).
    #[error("{0}")]
    Conflict(String),
    /// A limit would be exceeded; nothing was changed.
    #[error("limit {limit} ({value}) reached")]
    LimitExceeded {
        /// `max_active_tokens` or `max_tokens_per_user`.
        limit: &'static str,
        /// The limit's value.
        value: u32,
    },
    /// The change would leave the org without an active owner.
    #[error("the last active owner cannot be demoted or deactivated")]
    LastOwner,
    /// The store was initialised with another hash key.
    #[error("this store was created with another hash key (key id {stored}); refusing to start")]
    HashKeyMismatch {
        /// The key id recorded in the store.
        stored: String,
    },
    /// The database cannot be reached right now; retrying later may work.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// Anything else (a bug or corrupt data); details go to the log, not to clients.
    #[error("store error: {0}")]
    Internal(String),
}

/// Result of a store operation.
pub type StoreResult<T> = Result<T, StoreError>;

/// A page request: newest first, `limit` items after `cursor` (an id from a previous page).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    /// 1..=200.
    pub limit: u32,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

impl Default for PageRequest {
    fn default() -> Self {
        PageRequest {
            limit: 50,
            cursor: None,
        }
    }
}

impl PageRequest {
    /// Every item up to `limit` (for internal callers that want "all", bounded).
    pub fn first(limit: u32) -> Self {
        PageRequest {
            limit,
            cursor: None,
        }
    }
}

/// A page of results; `next_cursor` is `Some` when more items follow.
#[derive(Debug, Clone, PartialEq)]
pub struct Paged<T> {
    /// Items, newest first.
    pub items: Vec<T>,
    /// Cursor for the next page.
    pub next_cursor: Option<String>,
}

/// Which tokens to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenFilter {
    /// Only tokens acting in this workspace.
    pub workspace_id: Option<String>,
    /// Only tokens owned by this user.
    pub owner_id: Option<String>,
    /// Only tokens this caller may see ([`Visibility`], the rule reads by id use too);
    /// `None` lists without a visibility rule, for internal callers (sweeps, operator
    /// commands), never for a request.
    pub visibility: Option<Visibility>,
    /// Only this type.
    pub token_type: Option<TokenType>,
    /// Only tokens in this state as lists show it ([`StateFilter`]).
    pub state: Option<StateFilter>,
    /// Only tokens whose name contains this text, ASCII letters compared without case
    /// (the same on every backend; other characters compare exactly).
    pub name_contains: Option<String>,
    /// Only tokens created before this instant.
    pub created_before: Option<OffsetDateTime>,
    /// Only tokens that expire before this instant (never-expiring ones do not).
    pub expires_before: Option<OffsetDateTime>,
    /// Only tokens last used before this instant (never-used ones are not).
    pub last_used_before: Option<OffsetDateTime>,
    /// `Some(true)`: only tokens never used; `Some(false)`: only tokens used at least once.
    pub never_used: Option<bool>,
}

/// A filter on the state a token shows in lists (`latchkey_core::policy::visible_state`),
/// derived from the stored state: `expired` when stored so or past `expires_at` at `now`;
/// else `revoked` or `denied` when stored so; else `type_disabled` when its type is one of
/// `disabled_types`; else `suspended` when it has an owner who is deactivated or gone;
/// else `pending` or `active` as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateFilter {
    /// The state to keep.
    pub state: latchkey_proto::TokenState,
    /// The instant the derived states are taken at.
    pub now: OffsetDateTime,
    /// The types the org's token settings disable.
    pub disabled_types: Vec<TokenType>,
}

/// What [`Store::revoke_tokens`] did with one id.
#[derive(Debug, Clone, PartialEq)]
pub enum BulkRevoked {
    /// Revoked now: the token as it is after.
    Revoked(Box<TokenRecord>),
    /// Left as it was, and why.
    Skipped {
        /// The id asked for.
        id: String,
        /// Why it was not revoked.
        why: RevokeSkipped,
    },
}

/// Why [`Store::revoke_tokens`] left a token as it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevokeSkipped {
    /// No such token (any more).
    NotFound,
    /// It was revoked already.
    AlreadyRevoked,
    /// It is expired (stored so, or past its expiry): expired is final.
    Expired,
}

/// Which audit events to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// Only events about this workspace.
    pub workspace_id: Option<String>,
    /// Only events by this actor.
    pub actor_id: Option<String>,
    /// Only events about this token (as target or as the actor's credential).
    pub token_id: Option<String>,
    /// Only this action.
    pub action: Option<String>,
    /// Only events at or after this instant.
    pub since: Option<OffsetDateTime>,
    /// Only events before this instant.
    pub until: Option<OffsetDateTime>,
    /// For non-admins: only events where this user is the actor or the subject.
    pub involving_user: Option<String>,
}

/// A change to the partial update of a user.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserPatch {
    /// Activate or deactivate (deactivation also ends all the user's sessions).
    pub active: Option<bool>,
    /// New org role.
    pub role: Option<OrgRole>,
    /// New display name (`Some(None)` clears).
    pub display_name: Option<Option<String>>,
    /// New email (`Some(None)` clears).
    pub email: Option<Option<String>>,
    /// New Argon2id PHC string (also ends all the user's sessions).
    pub password_hash: Option<String>,
}

/// A change of a token's verify-time policy (`PATCH /api/v1/tokens/{id}`): each field
/// `None` keeps it, `Some(None)` clears it. Checked by the caller (core's validators and
/// narrowing rules); the store applies it in one transaction with its audit event and a
/// [`ChangeKind::Token`] change, and keeps the budgets in step: a new `rate_limit` starts
/// a fresh rate budget; `remaining_uses: Some(Some(n))` means `n` uses from now on,
/// counting what nodes hold leased (`token_policy::set_remaining`); `Some(None)` drops the
/// credits and their refill. A `refill` without credits (before or after the patch) is a
/// `Conflict`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TokenPolicyPatch {
    /// Metadata.
    pub metadata: Option<Option<latchkey_core::token_policy::Metadata>>,
    /// Allowed networks.
    pub allowed_ips: Option<Option<Vec<ipnet::IpNet>>>,
    /// Rate limit.
    pub rate_limit: Option<Option<latchkey_core::token_policy::RateLimit>>,
    /// Usage credits from now on.
    pub remaining_uses: Option<Option<i64>>,
    /// Refill of the credits.
    pub refill: Option<Option<latchkey_core::token_policy::Refill>>,
}

/// What changed, as read from the change feed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChangeKind {
    /// A token was created, changed or deleted (`id` is the token id).
    Token,
    /// A user's state, role or memberships changed (`id` is the user id).
    User,
    /// An org's token settings changed (`id` is the org id).
    Org,
    /// Instance settings changed (`id` is empty).
    Instance,
    /// JWT signing keys changed.
    SigningKeys,
}

impl ChangeKind {
    /// Column value.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Token => "token",
            ChangeKind::User => "user",
            ChangeKind::Org => "org",
            ChangeKind::Instance => "instance",
            ChangeKind::SigningKeys => "signing_keys",
        }
    }

    /// Parses a column value.
    pub fn parse(text: &str) -> Option<ChangeKind> {
        Some(match text {
            "token" => ChangeKind::Token,
            "user" => ChangeKind::User,
            "org" => ChangeKind::Org,
            "instance" => ChangeKind::Instance,
            "signing_keys" => ChangeKind::SigningKeys,
            _ => return None,
        })
    }
}

/// One entry of the change feed. Versions increase in commit order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The change counter's value after this change's transaction.
    pub version: i64,
    /// What changed.
    pub kind: ChangeKind,
    /// Which object.
    pub id: String,
}

/// One last-used observation, merged by the latest time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastUsed {
    /// Token.
    pub token_id: String,
    /// When.
    pub at: OffsetDateTime,
    /// From where.
    pub ip: Option<String>,
}

/// The latest observation per token in `batch` (on a tie, the first seen), as
/// `(token id, unix seconds, ip)` ordered by token id: what a backend's
/// [`Store::record_last_used`] writes, in one statement.
pub fn latest_use_per_token(batch: &[LastUsed]) -> Vec<(&str, i64, Option<&str>)> {
    let mut latest: std::collections::BTreeMap<&str, (i64, Option<&str>)> =
        std::collections::BTreeMap::new();
    for used in batch {
        let at = used.at.unix_timestamp();
        let entry = latest
            .entry(used.token_id.as_str())
            .or_insert((at, used.ip.as_deref()));
        if at > entry.0 {
            *entry = (at, used.ip.as_deref());
        }
    }
    latest
        .into_iter()
        .map(|(id, (at, ip))| (id, at, ip))
        .collect()
}

/// Uses of one token on one UTC day, counted in memory and added to the stored count by
/// a flush ([`Store::record_usage`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageCount {
    /// Token.
    pub token_id: String,
    /// The UTC day.
    pub day: time::Date,
    /// Uses on that day not yet stored.
    pub count: u64,
}

/// A token seen used from an address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpSeen {
    /// Token.
    pub token_id: String,
    /// The address, as text.
    pub ip: String,
    /// When (the latest use from it).
    pub at: OffsetDateTime,
}

/// One flush of a node's usage buffer, written in one transaction by
/// [`Store::record_usage`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UsageBatch {
    /// Last-used observations (as [`Store::record_last_used`] merges them).
    pub last_used: Vec<LastUsed>,
    /// Uses to add per token and day.
    pub days: Vec<UsageCount>,
    /// Addresses seen.
    pub ips: Vec<IpSeen>,
}

impl UsageBatch {
    /// Whether there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.last_used.is_empty() && self.days.is_empty() && self.ips.is_empty()
    }
}

/// How many addresses [`Store::record_usage`] keeps per token (the newest).
pub const USAGE_IPS_KEPT: usize = 5;

/// What is stored of a token's usage ([`Store::token_usage`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenUsage {
    /// The addresses it was used from lately, newest first (at most [`USAGE_IPS_KEPT`]).
    pub last_ips: Vec<(String, OffsetDateTime)>,
    /// Uses per UTC day, oldest first; days without uses are left out.
    pub daily: Vec<(time::Date, u64)>,
}

/// What the housekeeping sweep removes: rows that no request can use any more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Sessions whose absolute expiry is at or before this instant are deleted.
    pub sessions_expired_at: OffsetDateTime,
    /// Sessions last seen at or before this instant (idle past the timeout) are deleted.
    pub sessions_idle_since: OffsetDateTime,
    /// Idempotent answers created before this instant are deleted.
    pub idempotency_before: OffsetDateTime,
    /// How many of the newest change-feed rows to keep (at least one is always kept).
    pub keep_changes: u64,
    /// Daily usage counts of days before this one are deleted.
    pub usage_days_before: time::Date,
}

/// What [`Store::purge_retired`] deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Purged {
    /// Expired or idle sessions.
    pub sessions: u64,
    /// Old idempotent answers.
    pub idempotency: u64,
    /// Change-feed rows older than the kept window.
    pub changes: u64,
    /// Daily usage counts older than kept.
    pub usage_days: u64,
}

/// Everything the first start creates, in one transaction guarded by a unique row so that
/// concurrent first starts bootstrap exactly once.
#[derive(Debug, Clone)]
pub struct BootstrapPlan {
    /// The organization.
    pub org: OrgRecord,
    /// "Workspace 1".
    pub workspace: WorkspaceRecord,
    /// The administrator (org role `owner`).
    pub admin: UserRecord,
    /// The administrator's role in the workspace (`admin`).
    pub admin_workspace_role: WorkspaceRole,
    /// The initial personal token.
    pub token: TokenRecord,
    /// Its secret's hash.
    pub secret: SecretRecord,
    /// Instance settings to start with.
    pub instance: InstanceSettings,
    /// The audit event.
    pub event: NewAuditEvent,
}

/// The stored answer to a rotate carrying an `Idempotency-Key`, so a retry gets the same
/// secret. `response` is encrypted by the caller; the store never sees the secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyRecord {
    /// `Idempotency-Key` scoped by caller and route.
    pub key: String,
    /// Hash of the request (method, path, body) to detect a reused key.
    pub request_hash: Vec<u8>,
    /// The encrypted response.
    pub response: Vec<u8>,
    /// When stored; records older than 24 h are ignored and purged.
    pub created_at: OffsetDateTime,
}

/// A JWT signing key; `private_key` is encrypted by the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningKeyRecord {
    /// `kid`.
    pub id: String,
    /// Algorithm (`EdDSA`).
    pub algorithm: String,
    /// Public key bytes.
    pub public_key: Vec<u8>,
    /// Encrypted private key.
    pub private_key: Vec<u8>,
    /// When created.
    pub created_at: OffsetDateTime,
    /// No longer used to sign after this instant.
    pub retire_at: OffsetDateTime,
    /// Removed from the JWKS after this instant.
    pub expires_at: OffsetDateTime,
}

/// The storage contract. See the crate docs for the rules every method follows.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    // --- lifecycle -------------------------------------------------------------------

    /// Applies pending migrations.
    async fn migrate(&self) -> StoreResult<()>;
    /// Records `key_id` on first use; afterwards refuses any other key id.
    async fn ensure_hash_key(&self, key_id: &str) -> StoreResult<()>;
    /// Cheap round trip, for `/readyz`.
    async fn ping(&self) -> StoreResult<()>;
    /// Creates everything of the first start unless it was already done; returns whether
    /// this call did it.
    async fn bootstrap(&self, now: OffsetDateTime, plan: BootstrapPlan) -> StoreResult<bool>;

    // --- settings --------------------------------------------------------------------

    /// The instance's one organization.
    async fn get_org(&self) -> StoreResult<OrgRecord>;
    /// Replaces an org's token settings. In the same transaction, every token of the org
    /// whose type is not in the new `recoverable_types` loses its sealed secret (each such
    /// token is a [`ChangeKind::Token`] change too).
    async fn update_token_settings(
        &self,
        now: OffsetDateTime,
        org_id: &str,
        settings: TokenSettings,
        event: NewAuditEvent,
    ) -> StoreResult<OrgRecord>;
    /// Instance settings (`NotFound` before the first start).
    async fn get_instance_settings(&self) -> StoreResult<InstanceSettings>;
    /// Replaces instance settings.
    async fn update_instance_settings(
        &self,
        now: OffsetDateTime,
        settings: InstanceSettings,
        event: NewAuditEvent,
    ) -> StoreResult<InstanceSettings>;

    // --- users -----------------------------------------------------------------------

    /// Creates a user; `Conflict` when the username is taken (case-insensitive).
    async fn create_user(
        &self,
        now: OffsetDateTime,
        user: UserRecord,
        event: NewAuditEvent,
    ) -> StoreResult<UserRecord>;
    /// One user by id.
    async fn get_user(&self, id: &str) -> StoreResult<UserRecord>;
    /// One user by username (case-insensitive).
    async fn find_user_by_username(&self, username: &str) -> StoreResult<Option<UserRecord>>;
    /// Users of an org, newest first; only those of `kind` when it is `Some`.
    async fn list_users(
        &self,
        org_id: &str,
        kind: Option<UserKind>,
        page: &PageRequest,
    ) -> StoreResult<Paged<UserRecord>>;
    /// Applies a patch; refuses (`LastOwner`) to leave the org without an active owner.
    /// Deactivation and password changes delete the user's sessions in the same
    /// transaction.
    async fn update_user(
        &self,
        now: OffsetDateTime,
        id: &str,
        patch: UserPatch,
        event: NewAuditEvent,
    ) -> StoreResult<UserRecord>;

    // --- workspaces and members ------------------------------------------------------

    /// Creates a workspace (`Conflict` on a taken name), optionally with its creator as a
    /// member.
    async fn create_workspace(
        &self,
        now: OffsetDateTime,
        workspace: WorkspaceRecord,
        creator: Option<(String, WorkspaceRole)>,
        event: NewAuditEvent,
    ) -> StoreResult<WorkspaceRecord>;
    /// One workspace.
    async fn get_workspace(&self, id: &str) -> StoreResult<WorkspaceRecord>;
    /// One workspace by exact name.
    async fn find_workspace_by_name(
        &self,
        org_id: &str,
        name: &str,
    ) -> StoreResult<Option<WorkspaceRecord>>;
    /// Workspaces of an org, newest first.
    async fn list_workspaces(
        &self,
        org_id: &str,
        page: &PageRequest,
    ) -> StoreResult<Paged<WorkspaceRecord>>;
    /// Adds a member or changes their role.
    async fn put_member(
        &self,
        now: OffsetDateTime,
        workspace_id: &str,
        user_id: &str,
        role: WorkspaceRole,
        event: NewAuditEvent,
    ) -> StoreResult<MembershipRecord>;
    /// Removes a member (`NotFound` if not a member).
    async fn remove_member(
        &self,
        now: OffsetDateTime,
        workspace_id: &str,
        user_id: &str,
        event: NewAuditEvent,
    ) -> StoreResult<()>;
    /// One membership.
    async fn get_membership(
        &self,
        workspace_id: &str,
        user_id: &str,
    ) -> StoreResult<Option<MembershipRecord>>;
    /// Members of a workspace, newest user first (by user id, which is also the cursor).
    async fn list_members(
        &self,
        workspace_id: &str,
        page: &PageRequest,
    ) -> StoreResult<Paged<MembershipRecord>>;
    /// Every membership of a user (bounded by the number of workspaces).
    async fn memberships_of(&self, user_id: &str) -> StoreResult<Vec<MembershipRecord>>;

    // --- projects --------------------------------------------------------------------

    /// Creates a project.
    async fn create_project(
        &self,
        now: OffsetDateTime,
        project: ProjectRecord,
        event: NewAuditEvent,
    ) -> StoreResult<ProjectRecord>;
    /// One project.
    async fn get_project(&self, id: &str) -> StoreResult<ProjectRecord>;
    /// Projects of a workspace, newest first.
    async fn list_projects(
        &self,
        workspace_id: &str,
        page: &PageRequest,
    ) -> StoreResult<Paged<ProjectRecord>>;
    /// Deletes a project, and the tokens bound only to it (bindings to it are removed
    /// from tokens bound to several projects; a token is never widened to all projects).
    /// Returns the ids of the deleted tokens. Each deleted or narrowed token also gets its
    /// own audit event (`token.deleted` / `token.updated`, actor and IP from `event`).
    async fn delete_project(
        &self,
        now: OffsetDateTime,
        id: &str,
        event: NewAuditEvent,
    ) -> StoreResult<Vec<String>>;

    // --- tokens ----------------------------------------------------------------------

    /// Inserts a token and its secret if `limits` allow (`LimitExceeded` otherwise), and
    /// at most one legacy token per user whatever its state (`Conflict`). A token counts
    /// against the limits while its stored state is `active` or `pending` and `now` is
    /// before its expiry; a `pending` token is checked against them like an active one.
    async fn create_token(
        &self,
        now: OffsetDateTime,
        token: TokenRecord,
        secret: SecretRecord,
        limits: &Limits,
        event: NewAuditEvent,
    ) -> StoreResult<TokenRecord>;
    /// One token.
    async fn get_token(&self, id: &str) -> StoreResult<TokenRecord>;
    /// Tokens matching `filter`, newest first.
    async fn list_tokens(
        &self,
        org_id: &str,
        filter: &TokenFilter,
        page: &PageRequest,
    ) -> StoreResult<Paged<TokenRecord>>;
    /// Up to `limit` secret hashes in ascending byte order, after `after` (`None`: from
    /// the first): the verifier loads its set of known hashes page by page, so a flood of
    /// made-up tokens never reaches the store.
    async fn secret_hashes(
        &self,
        after: Option<&SecretHash>,
        limit: u32,
    ) -> StoreResult<Vec<SecretHash>>;
    /// The secret hashes of these tokens (any order; unknown ids have none): what a
    /// node adds to its known set when the change feed names a token.
    async fn secret_hashes_of(&self, token_ids: &[String]) -> StoreResult<Vec<SecretHash>>;
    /// The token a secret hash belongs to (the verifier's cache miss).
    async fn find_secret(
        &self,
        hash: &SecretHash,
    ) -> StoreResult<Option<(TokenRecord, SecretRecord)>>;
    /// Sets state `revoked` (also from `revoked`: idempotent; an `expired` token stays
    /// `expired`; a `pending` or `denied` one becomes `denied`, so a restore can never
    /// skip its approval). `leaked` marks a leak report, and the mark stays; a leak report (or a
    /// revoke of an expired token) also erases the sealed secret, a plain revoke keeps it
    /// for a restore.
    async fn revoke_token(
        &self,
        now: OffsetDateTime,
        id: &str,
        leaked: bool,
        event: NewAuditEvent,
    ) -> StoreResult<TokenRecord>;
    /// Sets state `active` again if `limits` allow. The caller checks the policy first;
    /// the store re-checks that the token is `revoked` and not expired (`Conflict`).
    async fn restore_token(
        &self,
        now: OffsetDateTime,
        id: &str,
        limits: &Limits,
        event: NewAuditEvent,
    ) -> StoreResult<TokenRecord>;
    /// Decides a pending token (DESIGN.md §8, approval): `approve` sets `active`, else
    /// `denied` (final, its sealed secret erased); with `event` (`token.approved` /
    /// `token.denied`) and a [`ChangeKind::Token`] change in the same transaction, so every
    /// node's verifier drops what it cached. A token that is not pending, or is past its
    /// expiry at `now`, is a `Conflict`; no limit is checked (a pending token already
    /// holds its slot).
    async fn decide_token(
        &self,
        now: OffsetDateTime,
        id: &str,
        approve: bool,
        event: NewAuditEvent,
    ) -> StoreResult<TokenRecord>;
    /// Replaces the token's secret. The old secrets get `not_after = old_not_after` (or are
    /// deleted when `None`); `expires_at` is replaced when `Some`; a rotated token that was
    /// revoked for a leak becomes active again (and not leaked) if the limits stored in the
    /// instance and org settings leave it a slot (`LimitExceeded` otherwise). A later
    /// rotation never extends an old secret's `not_after`. Expired tokens refuse
    /// (`Conflict`). `idempotency` is stored in the same transaction (`Conflict` if its key
    /// is already stored and younger than 24 h). The token's sealed secret becomes
    /// `new_secret.sealed` (`None` erases the old one).
    #[allow(clippy::too_many_arguments)]
    async fn rotate_token(
        &self,
        now: OffsetDateTime,
        id: &str,
        new_secret: SecretRecord,
        old_not_after: Option<OffsetDateTime>,
        expires_at: Option<Option<OffsetDateTime>>,
        idempotency: Option<IdempotencyRecord>,
        event: NewAuditEvent,
    ) -> StoreResult<TokenRecord>;
    /// A recoverable token's sealed secret (see [`SecretRecord::sealed`]), writing `event`
    /// (`token.revealed`) in the same transaction. `None`, with nothing written, when the
    /// token keeps no sealed secret or does not work at `now` (stored state not `active`,
    /// or past its expiry); `NotFound` when there is no such token. Not a change: the token
    /// is as it was.
    async fn reveal_token(
        &self,
        now: OffsetDateTime,
        id: &str,
        event: NewAuditEvent,
    ) -> StoreResult<Option<Vec<u8>>>;
    /// Deletes a token and its secrets.
    async fn delete_token(
        &self,
        now: OffsetDateTime,
        id: &str,
        event: NewAuditEvent,
    ) -> StoreResult<()>;
    /// Changes a token's verify-time policy (see [`TokenPolicyPatch`]).
    async fn update_token_policy(
        &self,
        now: OffsetDateTime,
        id: &str,
        patch: TokenPolicyPatch,
        event: NewAuditEvent,
    ) -> StoreResult<TokenRecord>;
    /// Node `node` leases up to `want` uses of a token's budget at `now` (unix seconds, the
    /// node's clock): one transaction over the budget's row
    /// (`latchkey_core::token_policy::lease`). `None` when the token is gone or has no
    /// such budget any more. Bookkeeping: no change, no audit event.
    async fn lease_budget(
        &self,
        now: i64,
        token_id: &str,
        kind: latchkey_core::token_policy::BudgetKind,
        node: &str,
        want: i64,
    ) -> StoreResult<Option<latchkey_core::token_policy::LeaseGrant>>;
    /// Applies node `node`'s reports at `now` in one transaction
    /// (`latchkey_core::token_policy::settle`); answers, per report in order, until when
    /// the node may spend what it keeps (`None`: nothing; stop spending).
    async fn settle_leases(
        &self,
        now: i64,
        node: &str,
        reports: Vec<latchkey_core::token_policy::LeaseReport>,
    ) -> StoreResult<Vec<Option<i64>>>;
    /// Merges last-used observations (latest time wins, the IP goes with the time, but an
    /// observation without one keeps the stored IP: verify and introspection calls need
    /// not say where the token is used from; unknown tokens are ignored). Not a change: records nothing in the change feed.
    async fn record_last_used(&self, batch: &[LastUsed]) -> StoreResult<()>;
    /// Writes one flush of usage in one transaction: the last-used observations (as
    /// [`Store::record_last_used`]), adds each day's count to the stored one, and moves
    /// each address's last-seen time forward, keeping the [`USAGE_IPS_KEPT`] newest per
    /// token. Unknown tokens are ignored. Not a change: records nothing in the change feed.
    async fn record_usage(&self, batch: &UsageBatch) -> StoreResult<()>;
    /// A token's stored usage: its newest addresses and its counts of the days from
    /// `since` on. An unknown token has none (not an error: usage is not the token).
    async fn token_usage(&self, id: &str, since: time::Date) -> StoreResult<TokenUsage>;
    /// Revokes several tokens in one transaction: each of `requests` (a token id and the
    /// audit event of its revocation) whose token is stored `active` and not expired at
    /// `now` becomes `revoked`, with its audit event (so its lifecycle event) and its own
    /// change; the others stay as they are and are answered as skipped, with why. The
    /// answer has one entry per request, in order. A failure rolls all of it back.
    async fn revoke_tokens(
        &self,
        now: OffsetDateTime,
        requests: Vec<(String, NewAuditEvent)>,
    ) -> StoreResult<Vec<BulkRevoked>>;
    /// Marks every active token with `expires_at <= now` as `expired` (erasing its sealed
    /// secret), writing a `token.expired` event for each; returns their ids.
    async fn expire_tokens(&self, now: OffsetDateTime) -> StoreResult<Vec<String>>;
    /// Revokes up to `limit` tokens of `org_id` that are stored `active`, not expired at
    /// `now`, and were last used (never used: created; restored since: restored)
    /// `idle_days` days before `now` or earlier: each gets its own `token.revoked` audit event (no actor; details
    /// `reason: "idle"`) and its own change, and stays restorable like any revoke.
    /// Returns their ids (fewer than `limit`: none are left). Nodes may sweep at once: a
    /// token is revoked, audited and announced once.
    async fn revoke_idle_tokens(
        &self,
        now: OffsetDateTime,
        org_id: &str,
        idle_days: u32,
        limit: u32,
    ) -> StoreResult<Vec<String>>;
    /// Deletes secrets whose `not_after` has passed; returns how many.
    async fn purge_rotated_secrets(&self, now: OffsetDateTime) -> StoreResult<u64>;
    /// Deletes rows past their use: expired or idle sessions, old idempotent answers, and
    /// all but the newest `keep_changes` change-feed rows. Versions stay contiguous, so a
    /// node whose feed position is older than what is kept sees the gap in
    /// [`Store::changes_since`] and must drop everything it cached.
    async fn purge_retired(&self, retention: &Retention) -> StoreResult<Purged>;
    /// Counts active tokens (for metrics and limits' display).
    async fn count_active_tokens(&self) -> StoreResult<u64>;

    /// A stored idempotent answer younger than `not_before`'s cut-off.
    async fn get_idempotency(
        &self,
        key: &str,
        not_before: OffsetDateTime,
    ) -> StoreResult<Option<IdempotencyRecord>>;

    // --- sessions --------------------------------------------------------------------

    /// Stores a new session under its secret's hash.
    async fn create_session(
        &self,
        now: OffsetDateTime,
        session: SessionRecord,
        hash: SecretHash,
        event: NewAuditEvent,
    ) -> StoreResult<()>;
    /// The session a secret hash belongs to.
    async fn find_session(&self, hash: &SecretHash) -> StoreResult<Option<SessionRecord>>;
    /// Moves the idle clock forward (never back; unknown sessions are ignored).
    async fn touch_session(&self, id: &str, now: OffsetDateTime) -> StoreResult<()>;
    /// Ends a session for good (idempotent).
    async fn delete_session(
        &self,
        now: OffsetDateTime,
        id: &str,
        event: Option<NewAuditEvent>,
    ) -> StoreResult<()>;

    // --- audit -----------------------------------------------------------------------

    /// Writes an event that has no other change attached (e.g. a failed sign-in).
    async fn append_audit(&self, now: OffsetDateTime, event: NewAuditEvent) -> StoreResult<()>;
    /// Events matching `filter`, newest first.
    async fn list_audit(
        &self,
        filter: &AuditFilter,
        page: &PageRequest,
    ) -> StoreResult<Paged<AuditEvent>>;

    // --- JWT signing keys ------------------------------------------------------------

    /// Every signing key not yet past `expires_at`.
    async fn list_signing_keys(&self, now: OffsetDateTime) -> StoreResult<Vec<SigningKeyRecord>>;
    /// Adds a signing key unless another node added one created after `not_before`
    /// meanwhile (then returns `false` and the caller re-reads).
    async fn add_signing_key(
        &self,
        key: SigningKeyRecord,
        not_before: OffsetDateTime,
    ) -> StoreResult<bool>;

    // --- lifecycle events ------------------------------------------------------------
    //
    // The outbox itself needs no method: every audit event whose action is a lifecycle
    // event type writes it, in the same transaction (see [`events`]).

    /// Creates a webhook endpoint (audited with `event`).
    async fn create_webhook(
        &self,
        now: OffsetDateTime,
        webhook: WebhookRecord,
        event: NewAuditEvent,
    ) -> StoreResult<WebhookRecord>;
    /// One endpoint.
    async fn get_webhook(&self, id: &str) -> StoreResult<WebhookRecord>;
    /// Endpoints of an org, newest first.
    async fn list_webhooks(
        &self,
        org_id: &str,
        page: &PageRequest,
    ) -> StoreResult<Paged<WebhookRecord>>;
    /// Applies a patch to an endpoint (audited with `event`).
    async fn update_webhook(
        &self,
        now: OffsetDateTime,
        id: &str,
        patch: WebhookPatch,
        event: NewAuditEvent,
    ) -> StoreResult<WebhookRecord>;
    /// Deletes an endpoint and its deliveries (audited with `event`).
    async fn delete_webhook(
        &self,
        now: OffsetDateTime,
        id: &str,
        event: NewAuditEvent,
    ) -> StoreResult<()>;
    /// Queues a `webhook.test` message to one endpoint.
    async fn queue_test_delivery(
        &self,
        now: OffsetDateTime,
        webhook_id: &str,
    ) -> StoreResult<DeliveryRecord>;
    /// Queues a delivery's message (same event id) to the same recipient again, as a new
    /// pending delivery due now with a fresh 24 h window.
    async fn redeliver(
        &self,
        now: OffsetDateTime,
        delivery_id: &str,
    ) -> StoreResult<DeliveryRecord>;
    /// One delivery.
    async fn get_delivery(&self, id: &str) -> StoreResult<DeliveryRecord>;
    /// Deliveries to one endpoint, newest first.
    async fn list_deliveries(
        &self,
        webhook_id: &str,
        page: &PageRequest,
    ) -> StoreResult<Paged<DeliveryRecord>>;
    /// Claims up to `limit` pending deliveries of `channel` that are due at `now` and not
    /// leased (or whose lease ran out), leasing each to `node` until `lease_until`. A row
    /// is won by one claimer only, on any number of nodes. Reads first, so a call with
    /// nothing due writes nothing.
    async fn claim_deliveries(
        &self,
        now: OffsetDateTime,
        channel: Channel,
        node: &str,
        lease_until: OffsetDateTime,
        limit: u32,
    ) -> StoreResult<Vec<ClaimedDelivery>>;
    /// Records an attempt of a delivery `node` holds the lease of and releases the lease;
    /// `false` (nothing written) when `node` no longer holds it.
    async fn finish_attempt(
        &self,
        id: &str,
        node: &str,
        attempt: latchkey_proto::DeliveryAttempt,
        result: AttemptResult,
    ) -> StoreResult<bool>;
    /// Writes `token.expiring` (an audit event, so also a lifecycle event) for each active
    /// token whose 30-, 7- or 1-day notice is due and not yet sent for its current expiry
    /// (see `latchkey_core::events::expiry_notice_due`); returns what it sent (at most a
    /// few hundred per call: call again while it returns some).
    async fn send_expiry_notices(&self, now: OffsetDateTime) -> StoreResult<Vec<ExpiryNotice>>;
    /// How many tokens there are of each type and state as of `now`: the stored state,
    /// except that an active token past its expiry counts as `expired` (the sweep has not
    /// marked it yet) and one whose owner is deactivated as `suspended`. Pairs without
    /// tokens are left out. One grouped query (for `latchkey_tokens{type,state}`).
    async fn count_tokens_by_type_and_state(
        &self,
        now: OffsetDateTime,
    ) -> StoreResult<Vec<(TokenType, latchkey_proto::TokenState, u64)>>;
    /// How many active tokens expire after `now` and within each of `within` (seconds).
    async fn count_expiring(&self, now: OffsetDateTime, within: &[i64]) -> StoreResult<Vec<u64>>;
    /// Deletes deliveries queued before `before`, events left without deliveries, and
    /// expiry notices of expiries before `before`; returns how many deliveries.
    async fn purge_deliveries(&self, before: OffsetDateTime) -> StoreResult<u64>;

    // --- change feed -----------------------------------------------------------------

    /// The change counter now.
    async fn current_version(&self) -> StoreResult<i64>;
    /// Changes with a version above `after`, oldest first, at most `limit`.
    async fn changes_since(&self, after: i64, limit: u32) -> StoreResult<Vec<Change>>;

    /// Pushed wake-ups for the change-feed reader, when the backend has them (PostgreSQL
    /// `LISTEN/NOTIFY`); `None` (the default) means "poll only".
    ///
    /// The receiver's value is the highest change version announced so far; it is also
    /// marked changed without a new value when the notice channel was re-established
    /// after a loss, because notices sent meanwhile are gone. Either way the reader
    /// responds the same: it reads [`Store::changes_since`] from the version it has
    /// applied. A notice is only a hint to read now: the feed is the truth, and periodic
    /// reading stays on as the catch-up, so a lost notice delays and never loses a change.
    /// Call it from within a Tokio runtime (the backend may start a listener task).
    fn change_notices(&self) -> Option<tokio::sync::watch::Receiver<i64>> {
        None
    }
}
