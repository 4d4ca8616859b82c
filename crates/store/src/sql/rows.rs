//! Row decoding: from rows of either database to the records of `latchkey-core`, and the
//! SQL that selects them. The decoders are generic over the row type alone ([`SqlRow`]),
//! so they read the same on SQLite and PostgreSQL: instants are unix seconds in an
//! INTEGER/BIGINT, flags INTEGER 0/1 or BOOLEAN (sqlx decodes both as `bool`), hashes and
//! key material BLOB/BYTEA, JSON text.

use latchkey_core::token_policy::{
    Metadata, RateLimit, Refill, TokenPolicy, UsesPolicy, UsesState, parse_allowed_ips,
};
use latchkey_core::{
    InstanceSettings, MembershipRecord, OrgRecord, ProjectRecord, SecretHash, SecretRecord,
    SessionRecord, StoredState, TokenRecord, TokenSettings, UserRecord, WorkspaceRecord, from_unix,
};
use latchkey_proto::{
    AuditEvent, OrgRole, RefillInterval, Scope, TokenCreators, TokenType, UserKind, WorkspaceRole,
};
use time::OffsetDateTime;

use super::driver::{Column, SqlRow};
use crate::{Change, ChangeKind, IdempotencyRecord, SigningKeyRecord, StoreError, StoreResult};

/// Columns of an org row.
pub(crate) const ORG_SELECT: &str = "SELECT id, name, enabled_types, personal_token_ttl_days, \
     max_tokens_per_user, token_creators, recoverable_types, idle_revoke_days, \
     max_token_lifetime_days, approval_required_types FROM orgs";

/// The instance settings row.
pub(crate) const INSTANCE_SELECT: &str =
    "SELECT max_active_tokens, default_token_lifetime_days FROM instance_settings WHERE id = 1";

/// Columns of a user row.
pub(crate) const USER_SELECT: &str = "SELECT id, org_id, username, display_name, email, role, \
     kind, active, password_hash, created_at FROM users";

/// Columns of a workspace row.
pub(crate) const WORKSPACE_SELECT: &str = "SELECT id, org_id, name, created_at FROM workspaces";

/// A membership with its workspace's name and its user's username.
pub(crate) const MEMBERSHIP_SELECT: &str = "SELECT m.workspace_id, w.name AS workspace_name, \
     m.user_id, u.username, m.role, m.created_at FROM memberships m \
     JOIN workspaces w ON w.id = m.workspace_id JOIN users u ON u.id = m.user_id";

/// Columns of a project row.
pub(crate) const PROJECT_SELECT: &str =
    "SELECT id, workspace_id, name, description, created_by, created_at FROM projects";

/// The columns of a token with its workspace's name and its owner's username, over
/// `tokens t` joined by [`token_joins!`].
macro_rules! token_columns {
    () => {
        "t.id, t.org_id, t.name, t.token_type, t.hint, t.workspace_id, \
         w.name AS workspace_name, t.owner_id, u.username AS owner_username, t.created_by, \
         t.scopes, t.projects, t.environment, t.created_at, t.expires_at, t.last_used_at, \
         t.last_used_ip, t.state, t.leaked, t.metadata, t.allowed_ips, t.rate_limit, \
         t.rate_window_secs, t.uses_limited, t.refill_amount, t.refill_interval, \
         ub.pool AS uses_pool, ub.period AS uses_period, \
         CASE WHEN ub.token_id IS NULL THEN 0 ELSE (SELECT CAST(COALESCE(SUM(ul.held), 0) AS BIGINT) \
         FROM token_leases ul WHERE ul.token_id = t.id AND ul.kind = 'uses' \
         AND ul.period = ub.period) END AS uses_held, \
         t.sealed_secret IS NOT NULL AS recoverable"
    };
}

/// The joins that [`token_columns!`] needs.
macro_rules! token_joins {
    () => {
        " LEFT JOIN workspaces w ON w.id = t.workspace_id \
         LEFT JOIN users u ON u.id = t.owner_id \
         LEFT JOIN token_budgets ub ON ub.token_id = t.id AND ub.kind = 'uses'"
    };
}

/// A token with its workspace's name and its owner's username.
pub(crate) const TOKEN_SELECT: &str = concat!(
    "SELECT ",
    token_columns!(),
    " FROM tokens t",
    token_joins!()
);

/// A secret (columns prefixed `s_`) with its token.
pub(crate) const SECRET_SELECT: &str = concat!(
    "SELECT s.token_id AS s_token_id, s.hash AS s_hash, s.key_id AS s_key_id, \
     s.not_after AS s_not_after, ",
    token_columns!(),
    " FROM token_secrets s JOIN tokens t ON t.id = s.token_id",
    token_joins!()
);

/// Columns of a session row.
pub(crate) const SESSION_SELECT: &str =
    "SELECT id, user_id, created_at, last_seen_at, expires_at FROM sessions";

/// Columns of an audit event row.
pub(crate) const AUDIT_SELECT: &str = "SELECT id, action, actor_id, actor_token_id, \
     target_type, target_id, workspace_id, subject_user_id, ip, details, created_at \
     FROM audit_events";

/// Columns of a signing key row.
pub(crate) const SIGNING_KEY_SELECT: &str = "SELECT id, algorithm, public_key, private_key, \
     created_at, retire_at, expires_at FROM signing_keys";

/// A stored value that does not parse: corrupt data or a newer schema.
pub(crate) fn corrupt(what: &str, value: impl std::fmt::Display) -> StoreError {
    StoreError::Internal(format!("unexpected stored {what}: {value}"))
}

/// One column; a missing column or a type mismatch is a bug (`Internal`).
pub(crate) fn get<T>(row: &impl Column<T>, column: &str) -> StoreResult<T> {
    row.column(column)
        .map_err(|e| StoreError::Internal(format!("reading column {column}: {e}")))
}

fn time_of(row: &impl SqlRow, column: &str) -> StoreResult<OffsetDateTime> {
    Ok(from_unix(get::<i64>(row, column)?))
}

fn opt_time_of(row: &impl SqlRow, column: &str) -> StoreResult<Option<OffsetDateTime>> {
    Ok(get::<Option<i64>>(row, column)?.map(from_unix))
}

fn opt_u32_of(row: &impl SqlRow, column: &str) -> StoreResult<Option<u32>> {
    get::<Option<i64>>(row, column)?
        .map(|v| u32::try_from(v).map_err(|_| corrupt(column, v)))
        .transpose()
}

fn u32_of(row: &impl SqlRow, column: &str) -> StoreResult<u32> {
    let v = get::<i64>(row, column)?;
    u32::try_from(v).map_err(|_| corrupt(column, v))
}

/// A 32-byte hash from a BLOB.
pub(crate) fn hash_of(bytes: Vec<u8>) -> StoreResult<SecretHash> {
    let len = bytes.len();
    SecretHash::try_from(bytes).map_err(|_| corrupt("hash length", len))
}

/// Token settings as stored on an org row.
pub(crate) fn token_settings(row: &impl SqlRow) -> StoreResult<TokenSettings> {
    let enabled = get::<i64>(row, "enabled_types")?;
    let recoverable = get::<i64>(row, "recoverable_types")?;
    let approval = get::<i64>(row, "approval_required_types")?;
    let creators = get::<String>(row, "token_creators")?;
    Ok(TokenSettings {
        enabled_types: u8::try_from(enabled).map_err(|_| corrupt("enabled_types", enabled))?,
        personal_token_ttl_days: opt_u32_of(row, "personal_token_ttl_days")?,
        max_tokens_per_user: opt_u32_of(row, "max_tokens_per_user")?,
        token_creators: TokenCreators::parse(&creators)
            .ok_or_else(|| corrupt("token_creators", &creators))?,
        recoverable_types: u8::try_from(recoverable)
            .map_err(|_| corrupt("recoverable_types", recoverable))?,
        idle_revoke_days: opt_u32_of(row, "idle_revoke_days")?,
        max_token_lifetime_days: opt_u32_of(row, "max_token_lifetime_days")?,
        approval_required_types: u8::try_from(approval)
            .map_err(|_| corrupt("approval_required_types", approval))?,
    })
}

/// An org.
pub(crate) fn org(row: &impl SqlRow) -> StoreResult<OrgRecord> {
    Ok(OrgRecord {
        id: get(row, "id")?,
        name: get(row, "name")?,
        token_settings: token_settings(row)?,
    })
}

/// Instance settings.
pub(crate) fn instance(row: &impl SqlRow) -> StoreResult<InstanceSettings> {
    Ok(InstanceSettings {
        max_active_tokens: opt_u32_of(row, "max_active_tokens")?,
        default_token_lifetime_days: u32_of(row, "default_token_lifetime_days")?,
    })
}

/// A user.
pub(crate) fn user(row: &impl SqlRow) -> StoreResult<UserRecord> {
    let role = get::<String>(row, "role")?;
    let kind = get::<String>(row, "kind")?;
    Ok(UserRecord {
        id: get(row, "id")?,
        org_id: get(row, "org_id")?,
        username: get(row, "username")?,
        display_name: get(row, "display_name")?,
        email: get(row, "email")?,
        role: OrgRole::parse(&role).ok_or_else(|| corrupt("org role", &role))?,
        kind: UserKind::parse(&kind).ok_or_else(|| corrupt("user kind", &kind))?,
        active: get(row, "active")?,
        password_hash: get(row, "password_hash")?,
        created_at: time_of(row, "created_at")?,
    })
}

/// A workspace.
pub(crate) fn workspace(row: &impl SqlRow) -> StoreResult<WorkspaceRecord> {
    Ok(WorkspaceRecord {
        id: get(row, "id")?,
        org_id: get(row, "org_id")?,
        name: get(row, "name")?,
        created_at: time_of(row, "created_at")?,
    })
}

/// A membership (from [`MEMBERSHIP_SELECT`]).
pub(crate) fn membership(row: &impl SqlRow) -> StoreResult<MembershipRecord> {
    let role = get::<String>(row, "role")?;
    Ok(MembershipRecord {
        workspace_id: get(row, "workspace_id")?,
        workspace_name: get(row, "workspace_name")?,
        user_id: get(row, "user_id")?,
        username: get(row, "username")?,
        role: WorkspaceRole::parse(&role).ok_or_else(|| corrupt("workspace role", &role))?,
        created_at: time_of(row, "created_at")?,
    })
}

/// A project.
pub(crate) fn project(row: &impl SqlRow) -> StoreResult<ProjectRecord> {
    Ok(ProjectRecord {
        id: get(row, "id")?,
        workspace_id: get(row, "workspace_id")?,
        name: get(row, "name")?,
        description: get(row, "description")?,
        created_by: get(row, "created_by")?,
        created_at: time_of(row, "created_at")?,
    })
}

/// A JSON array of project ids.
pub(crate) fn project_list(text: &str) -> StoreResult<Vec<String>> {
    serde_json::from_str(text).map_err(|_| corrupt("project list", text))
}

/// A token (from [`TOKEN_SELECT`]).
pub(crate) fn token(row: &impl SqlRow) -> StoreResult<TokenRecord> {
    let token_type = get::<String>(row, "token_type")?;
    let state = get::<String>(row, "state")?;
    let scopes = get::<String>(row, "scopes")?;
    let projects = get::<String>(row, "projects")?;
    Ok(TokenRecord {
        id: get(row, "id")?,
        org_id: get(row, "org_id")?,
        name: get(row, "name")?,
        token_type: TokenType::parse(&token_type)
            .ok_or_else(|| corrupt("token type", &token_type))?,
        hint: get(row, "hint")?,
        workspace_id: get(row, "workspace_id")?,
        workspace_name: get(row, "workspace_name")?,
        owner_id: get(row, "owner_id")?,
        owner_username: get(row, "owner_username")?,
        created_by: get(row, "created_by")?,
        scopes: serde_json::from_str::<Vec<Scope>>(&scopes)
            .map_err(|_| corrupt("scopes", &scopes))?,
        projects: project_list(&projects)?,
        environment: get(row, "environment")?,
        created_at: time_of(row, "created_at")?,
        expires_at: opt_time_of(row, "expires_at")?,
        last_used_at: opt_time_of(row, "last_used_at")?,
        last_used_ip: get(row, "last_used_ip")?,
        state: StoredState::parse(&state).ok_or_else(|| corrupt("token state", &state))?,
        leaked: get(row, "leaked")?,
        policy: token_policy(row)?,
        uses: match get::<Option<i64>>(row, "uses_pool")? {
            Some(pool) => Some(UsesState {
                pool,
                period: get(row, "uses_period")?,
                held: get(row, "uses_held")?,
            }),
            None => None,
        },
        recoverable: get(row, "recoverable")?,
    })
}

/// A token's verify-time policy, from its columns.
fn token_policy(row: &impl SqlRow) -> StoreResult<TokenPolicy> {
    let metadata = match get::<Option<String>>(row, "metadata")? {
        Some(text) => Some(Metadata::from_stored(&text).ok_or_else(|| corrupt("metadata", &text))?),
        None => None,
    };
    let allowed_ips = match get::<Option<String>>(row, "allowed_ips")? {
        Some(text) => {
            let list: Vec<String> =
                serde_json::from_str(&text).map_err(|_| corrupt("allowed_ips", &text))?;
            Some(parse_allowed_ips(&list).map_err(|_| corrupt("allowed_ips", &text))?)
        }
        None => None,
    };
    let rate_limit = match (
        opt_u32_of(row, "rate_limit")?,
        opt_u32_of(row, "rate_window_secs")?,
    ) {
        (Some(limit), Some(window_secs)) => Some(RateLimit { limit, window_secs }),
        _ => None,
    };
    let uses = if get::<bool>(row, "uses_limited")? {
        let refill = match (
            get::<Option<i64>>(row, "refill_amount")?,
            get::<Option<String>>(row, "refill_interval")?,
        ) {
            (Some(amount), Some(interval)) => Some(Refill {
                amount,
                interval: RefillInterval::parse(&interval)
                    .ok_or_else(|| corrupt("refill_interval", &interval))?,
            }),
            _ => None,
        };
        Some(UsesPolicy { refill })
    } else {
        None
    };
    Ok(TokenPolicy {
        metadata,
        allowed_ips,
        rate_limit,
        uses,
    })
}

/// A secret; the columns are prefixed `s_` when selected next to a token.
pub(crate) fn secret(row: &impl SqlRow, prefix: &str) -> StoreResult<SecretRecord> {
    Ok(SecretRecord {
        token_id: get(row, &format!("{prefix}token_id"))?,
        hash: hash_of(get(row, &format!("{prefix}hash"))?)?,
        key_id: get(row, &format!("{prefix}key_id"))?,
        not_after: opt_time_of(row, &format!("{prefix}not_after"))?,
        hint: None,
        sealed: None,
    })
}

/// A session.
pub(crate) fn session(row: &impl SqlRow) -> StoreResult<SessionRecord> {
    Ok(SessionRecord {
        id: get(row, "id")?,
        user_id: get(row, "user_id")?,
        created_at: time_of(row, "created_at")?,
        last_seen_at: time_of(row, "last_seen_at")?,
        expires_at: time_of(row, "expires_at")?,
    })
}

/// An audit event.
pub(crate) fn audit_event(row: &impl SqlRow) -> StoreResult<AuditEvent> {
    let details = get::<String>(row, "details")?;
    Ok(AuditEvent {
        id: get(row, "id")?,
        action: get(row, "action")?,
        actor_id: get(row, "actor_id")?,
        actor_token_id: get(row, "actor_token_id")?,
        target_type: get(row, "target_type")?,
        target_id: get(row, "target_id")?,
        workspace_id: get(row, "workspace_id")?,
        subject_user_id: get(row, "subject_user_id")?,
        ip: get(row, "ip")?,
        details: serde_json::from_str(&details).map_err(|_| corrupt("audit details", &details))?,
        created_at: time_of(row, "created_at")?,
    })
}

/// An idempotency record.
pub(crate) fn idempotency(row: &impl SqlRow) -> StoreResult<IdempotencyRecord> {
    Ok(IdempotencyRecord {
        key: get(row, "key")?,
        request_hash: get(row, "request_hash")?,
        response: get(row, "response")?,
        created_at: time_of(row, "created_at")?,
    })
}

/// A signing key.
pub(crate) fn signing_key(row: &impl SqlRow) -> StoreResult<SigningKeyRecord> {
    Ok(SigningKeyRecord {
        id: get(row, "id")?,
        algorithm: get(row, "algorithm")?,
        public_key: get(row, "public_key")?,
        private_key: get(row, "private_key")?,
        created_at: time_of(row, "created_at")?,
        retire_at: time_of(row, "retire_at")?,
        expires_at: time_of(row, "expires_at")?,
    })
}

/// One change of the feed.
pub(crate) fn change(row: &impl SqlRow) -> StoreResult<Change> {
    let kind = get::<String>(row, "kind")?;
    Ok(Change {
        version: get(row, "version")?,
        kind: ChangeKind::parse(&kind).ok_or_else(|| corrupt("change kind", &kind))?,
        id: get(row, "entity_id")?,
    })
}

/// Decodes every row with `f`.
pub(crate) fn all<R: SqlRow, T>(
    rows: &[R],
    f: impl Fn(&R) -> StoreResult<T>,
) -> StoreResult<Vec<T>> {
    rows.iter().map(f).collect()
}
