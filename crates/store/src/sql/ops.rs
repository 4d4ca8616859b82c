//! The write operations. Each runs inside one write transaction that the backend opened
//! ([`SqlBackend::write`]: on SQLite on the single writer connection, on PostgreSQL after
//! locking the change counter's row); every function here takes that transaction's
//! connection and leaves committing or rolling back to the backend. The statements are
//! the same text on both engines (`$n` placeholders, which SQLite accepts too); the two
//! that differ are the backend's own ([`SqlBackend::bump`],
//! [`SqlBackend::record_last_used`]).

use latchkey_core::policy::{
    Limits, TokenAction, check_action, check_restore, is_expired, limits_for,
};
use latchkey_core::token_policy::{
    self, BudgetKind, BudgetRow, BudgetRule, LeaseGrant, LeaseReport, LeaseRow, TokenPolicy,
    UsesPolicy,
};
use latchkey_core::{
    InstanceSettings, MembershipRecord, NewAuditEvent, OrgRecord, ProjectRecord, SecretRecord,
    SessionRecord, StoredState, TokenRecord, TokenSettings, UserRecord, WorkspaceRecord, new_id,
};
use latchkey_proto::{OrgRole, TokenType, WorkspaceRole};
use time::{Duration, OffsetDateTime};

use super::driver::{Arg, Conn, Fetch, Param, Statement};
use super::{SqlBackend, rows};
use crate::{
    BootstrapPlan, BulkRevoked, ChangeKind, IdempotencyRecord, LastUsed, Purged, Retention,
    RevokeSkipped, SigningKeyRecord, StoreError, StoreResult, TokenPolicyPatch, TokenUsage,
    USAGE_IPS_KEPT, UsageBatch, UserPatch,
};

/// How long an idempotent answer is kept (DESIGN.md §7: 24 h).
const IDEMPOTENCY_TTL: Duration = Duration::hours(24);

/// The message of a second legacy token for one user.
const LEGACY_TAKEN: &str = "this user already has a legacy token";

fn secs(t: OffsetDateTime) -> i64 {
    t.unix_timestamp()
}

fn opt_secs(t: Option<OffsetDateTime>) -> Option<i64> {
    t.map(secs)
}

fn json<T: serde::Serialize + ?Sized>(value: &T) -> StoreResult<String> {
    serde_json::to_string(value).map_err(|e| StoreError::Internal(format!("JSON encoding: {e}")))
}

/// The case-folded username that uniqueness and look-ups use.
pub(crate) fn username_key(username: &str) -> String {
    username.to_lowercase()
}

// --- shared steps -------------------------------------------------------------------

/// Bumps the change counter and records one change under the new version (the backend's
/// statement: [`SqlBackend::bump`]).
pub(crate) async fn bump<B: SqlBackend>(
    conn: &mut Conn<'_, B>,
    kind: ChangeKind,
    id: &str,
) -> StoreResult<i64> {
    B::bump(conn, kind, id).await
}

/// Writes an audit event (fresh id, `created_at = now`).
pub(crate) async fn audit<B: SqlBackend>(
    conn: &mut Conn<'_, B>,
    now: OffsetDateTime,
    event: &NewAuditEvent,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO audit_events (id, action, actor_id, actor_token_id, target_type, \
         target_id, workspace_id, subject_user_id, ip, details, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .arg(new_id())
    .arg(&event.action)
    .arg(&event.actor_id)
    .arg(&event.actor_token_id)
    .arg(&event.target_type)
    .arg(&event.target_id)
    .arg(&event.workspace_id)
    .arg(&event.subject_user_id)
    .arg(&event.ip)
    .arg(json(&event.details)?)
    .arg(secs(now))
    .run(conn)
    .await?;
    // A lifecycle event goes to the outbox in the same transaction as its change.
    super::events::outbox(conn, now, event).await
}

/// One user, inside the transaction.
pub(crate) async fn load_user<B: SqlBackend>(
    conn: &mut Conn<'_, B>,
    id: &str,
) -> StoreResult<UserRecord> {
    let row = sqlx::query(&format!("{} WHERE id = $1", rows::USER_SELECT))
        .arg(id)
        .optional(conn)
        .await?
        .ok_or(StoreError::NotFound("user"))?;
    rows::user(&row)
}

/// One token with its joined names, inside the transaction.
pub(crate) async fn load_token<B: SqlBackend>(
    conn: &mut Conn<'_, B>,
    id: &str,
) -> StoreResult<TokenRecord> {
    let row = sqlx::query(&format!("{} WHERE t.id = $1", rows::TOKEN_SELECT))
        .arg(id)
        .optional(conn)
        .await?
        .ok_or(StoreError::NotFound("token"))?;
    rows::token(&row)
}

async fn load_workspace<B: SqlBackend>(
    conn: &mut Conn<'_, B>,
    id: &str,
) -> StoreResult<WorkspaceRecord> {
    let row = sqlx::query(&format!("{} WHERE id = $1", rows::WORKSPACE_SELECT))
        .arg(id)
        .optional(conn)
        .await?
        .ok_or(StoreError::NotFound("workspace"))?;
    rows::workspace(&row)
}

async fn load_org<B: SqlBackend>(conn: &mut Conn<'_, B>, id: &str) -> StoreResult<OrgRecord> {
    let row = sqlx::query(&format!("{} WHERE id = $1", rows::ORG_SELECT))
        .arg(id)
        .optional(conn)
        .await?
        .ok_or(StoreError::NotFound("org"))?;
    rows::org(&row)
}

async fn load_membership<B: SqlBackend>(
    conn: &mut Conn<'_, B>,
    workspace_id: &str,
    user_id: &str,
) -> StoreResult<MembershipRecord> {
    let row = sqlx::query(&format!(
        "{} WHERE m.workspace_id = $1 AND m.user_id = $2",
        rows::MEMBERSHIP_SELECT
    ))
    .arg(workspace_id)
    .arg(user_id)
    .optional(conn)
    .await?
    .ok_or(StoreError::NotFound("membership"))?;
    rows::membership(&row)
}

/// Whether `sql` (a `SELECT COUNT(*) ... WHERE id = $1`) counts any row.
async fn exists<B: SqlBackend>(conn: &mut Conn<'_, B>, sql: &str, id: &str) -> StoreResult<bool> {
    let found: i64 = sqlx::query(sql).arg(id).scalar(conn).await?;
    Ok(found > 0)
}

async fn require_user<B: SqlBackend>(conn: &mut Conn<'_, B>, id: &str) -> StoreResult<()> {
    if exists(conn, "SELECT COUNT(*) FROM users WHERE id = $1", id).await? {
        Ok(())
    } else {
        Err(StoreError::NotFound("user"))
    }
}

async fn require_workspace<B: SqlBackend>(conn: &mut Conn<'_, B>, id: &str) -> StoreResult<()> {
    if exists(conn, "SELECT COUNT(*) FROM workspaces WHERE id = $1", id).await? {
        Ok(())
    } else {
        Err(StoreError::NotFound("workspace"))
    }
}

async fn insert_org<B: SqlBackend>(
    conn: &mut Conn<'_, B>,
    now: OffsetDateTime,
    org: &OrgRecord,
) -> StoreResult<()> {
    let s = &org.token_settings;
    sqlx::query(
        "INSERT INTO orgs (id, name, enabled_types, personal_token_ttl_days, \
         max_tokens_per_user, token_creators, recoverable_types, idle_revoke_days, \
         max_token_lifetime_days, approval_required_types, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .arg(&org.id)
    .arg(&org.name)
    .arg(i64::from(s.enabled_types))
    .arg(s.personal_token_ttl_days.map(i64::from))
    .arg(s.max_tokens_per_user.map(i64::from))
    .arg(s.token_creators.as_str())
    .arg(i64::from(s.recoverable_types))
    .arg(s.idle_revoke_days.map(i64::from))
    .arg(s.max_token_lifetime_days.map(i64::from))
    .arg(i64::from(s.approval_required_types))
    .arg(secs(now))
    .run(conn)
    .await?;
    Ok(())
}

async fn upsert_instance<B: SqlBackend>(
    conn: &mut Conn<'_, B>,
    settings: &InstanceSettings,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO instance_settings (id, max_active_tokens, default_token_lifetime_days) \
         VALUES (1, $1, $2) ON CONFLICT (id) DO UPDATE SET \
         max_active_tokens = excluded.max_active_tokens, \
         default_token_lifetime_days = excluded.default_token_lifetime_days",
    )
    .arg(settings.max_active_tokens.map(i64::from))
    .arg(i64::from(settings.default_token_lifetime_days))
    .run(conn)
    .await?;
    Ok(())
}

async fn insert_user<B: SqlBackend>(conn: &mut Conn<'_, B>, user: &UserRecord) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO users (id, org_id, username, username_key, display_name, email, role, \
         kind, active, password_hash, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .arg(&user.id)
    .arg(&user.org_id)
    .arg(&user.username)
    .arg(username_key(&user.username))
    .arg(&user.display_name)
    .arg(&user.email)
    .arg(user.role.as_str())
    .arg(user.kind.as_str())
    .arg(user.active)
    .arg(&user.password_hash)
    .arg(secs(user.created_at))
    .run(conn)
    .await?;
    Ok(())
}

async fn insert_workspace<B: SqlBackend>(
    conn: &mut Conn<'_, B>,
    workspace: &WorkspaceRecord,
) -> StoreResult<()> {
    sqlx::query("INSERT INTO workspaces (id, org_id, name, created_at) VALUES ($1, $2, $3, $4)")
        .arg(&workspace.id)
        .arg(&workspace.org_id)
        .arg(&workspace.name)
        .arg(secs(workspace.created_at))
        .run(conn)
        .await?;
    Ok(())
}

async fn upsert_member<B: SqlBackend>(
    conn: &mut Conn<'_, B>,
    now: OffsetDateTime,
    workspace_id: &str,
    user_id: &str,
    role: WorkspaceRole,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO memberships (workspace_id, user_id, role, created_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (workspace_id, user_id) DO UPDATE SET role = excluded.role",
    )
    .arg(workspace_id)
    .arg(user_id)
    .arg(role.as_str())
    .arg(secs(now))
    .run(conn)
    .await?;
    Ok(())
}

/// Inserts a token; `sealed` is its secret sealed for a later reveal (recoverable types).
async fn insert_token<B: SqlBackend>(
    conn: &mut Conn<'_, B>,
    token: &TokenRecord,
    sealed: Option<&[u8]>,
) -> StoreResult<()> {
    let policy = PolicyColumns::of(&token.policy)?;
    sqlx::query(
        "INSERT INTO tokens (id, org_id, name, token_type, hint, workspace_id, owner_id, \
         created_by, scopes, projects, environment, created_at, expires_at, last_used_at, \
         last_used_ip, state, leaked, metadata, allowed_ips, rate_limit, rate_window_secs, \
         uses_limited, refill_amount, refill_interval, sealed_secret) VALUES ($1, $2, $3, $4, \
         $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, \
         $23, $24, $25)",
    )
    .arg(&token.id)
    .arg(&token.org_id)
    .arg(&token.name)
    .arg(token.token_type.as_str())
    .arg(&token.hint)
    .arg(&token.workspace_id)
    .arg(&token.owner_id)
    .arg(&token.created_by)
    .arg(json(&token.scopes)?)
    .arg(json(&token.projects)?)
    .arg(&token.environment)
    .arg(secs(token.created_at))
    .arg(opt_secs(token.expires_at))
    .arg(opt_secs(token.last_used_at))
    .arg(&token.last_used_ip)
    .arg(token.state.as_str())
    .arg(token.leaked)
    .arg(policy.metadata)
    .arg(policy.allowed_ips)
    .arg(policy.rate_limit)
    .arg(policy.rate_window_secs)
    .arg(policy.uses_limited)
    .arg(policy.refill_amount)
    .arg(policy.refill_interval)
    .arg(sealed)
    .run(conn)
    .await?;
    if let Some(rule) = BudgetRule::of(&token.policy, BudgetKind::Uses) {
        let pool = token.uses.map_or(0, |u| u.pool);
        put_budget(
            conn,
            &token.id,
            BudgetKind::Uses,
            BudgetRow {
                period: rule.periods.index(secs(token.created_at)),
                pool,
            },
        )
        .await?;
    }
    Ok(())
}

/// A token's policy as column values.
struct PolicyColumns {
    metadata: Option<String>,
    allowed_ips: Option<String>,
    rate_limit: Option<i64>,
    rate_window_secs: Option<i64>,
    uses_limited: bool,
    refill_amount: Option<i64>,
    refill_interval: Option<&'static str>,
}

impl PolicyColumns {
    fn of(policy: &TokenPolicy) -> StoreResult<PolicyColumns> {
        let refill = policy.uses.and_then(|u| u.refill);
        Ok(PolicyColumns {
            metadata: policy.metadata.as_ref().map(|m| m.compact.clone()),
            allowed_ips: match &policy.allowed_ips {
                Some(nets) => Some(json(
                    &nets.iter().map(ToString::to_string).collect::<Vec<_>>(),
                )?),
                None => None,
            },
            rate_limit: policy.rate_limit.map(|r| i64::from(r.limit)),
            rate_window_secs: policy.rate_limit.map(|r| i64::from(r.window_secs)),
            uses_limited: policy.uses.is_some(),
            refill_amount: refill.map(|r| r.amount),
            refill_interval: refill.map(|r| r.interval.as_str()),
        })
    }
}

// --- budgets and leases -------------------------------------------------------------

/// Writes a budget's pool (insert or replace).
async fn put_budget<B: SqlBackend>(
    conn: &mut Conn<'_, B>,
    token_id: &str,
    kind: BudgetKind,
    row: BudgetRow,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO token_budgets (token_id, kind, period, pool) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (token_id, kind) DO UPDATE SET period = excluded.period, \
         pool = excluded.pool",
    )
    .arg(token_id)
    .arg(kind.as_str())
    .arg(row.period)
    .arg(row.pool)
    .run(conn)
    .await?;
    Ok(())
}

/// Locks a budget's row for the rest of the transaction (an UPDATE that changes nothing:
/// portable, and on PostgreSQL a row lock that concurrent leases of the same budget wait
/// on) and reads it.
async fn lock_budget<B: SqlBackend>(
    conn: &mut Conn<'_, B>,
    token_id: &str,
    kind: BudgetKind,
) -> StoreResult<Option<BudgetRow>> {
    sqlx::query("UPDATE token_budgets SET pool = pool WHERE token_id = $1 AND kind = $2")
        .arg(token_id)
        .arg(kind.as_str())
        .run(conn)
        .await?;
    let row =
        sqlx::query("SELECT period, pool FROM token_budgets WHERE token_id = $1 AND kind = $2")
            .arg(token_id)
            .arg(kind.as_str())
            .optional(conn)
            .await?;
    match row {
        Some(row) => Ok(Some(BudgetRow {
            period: rows::get(&row, "period")?,
            pool: rows::get(&row, "pool")?,
        })),
        None => Ok(None),
    }
}

/// Every lease of a budget, by node.
async fn load_leases<B: SqlBackend>(
    conn: &mut Conn<'_, B>,
    token_id: &str,
    kind: BudgetKind,
) -> StoreResult<Vec<(String, LeaseRow)>> {
    let found = sqlx::query(
        "SELECT node_id, period, held, expires_at FROM token_leases \
         WHERE token_id = $1 AND kind = $2",
    )
    .arg(token_id)
    .arg(kind.as_str())
    .all(conn)
    .await?;
    found
        .iter()
        .map(|row| {
            Ok((
                rows::get(row, "node_id")?,
                LeaseRow {
                    period: rows::get(row, "period")?,
                    held: rows::get(row, "held")?,
                    expires_at: rows::get(row, "expires_at")?,
                },
            ))
        })
        .collect()
}

/// Writes (or, `None`, deletes) one node's lease.
async fn put_lease<B: SqlBackend>(
    conn: &mut Conn<'_, B>,
    token_id: &str,
    kind: BudgetKind,
    node: &str,
    lease: Option<LeaseRow>,
) -> StoreResult<()> {
    match lease {
        Some(l) => {
            sqlx::query(
                "INSERT INTO token_leases (token_id, kind, node_id, period, held, expires_at) \
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (token_id, kind, node_id) \
                 DO UPDATE SET period = excluded.period, held = excluded.held, \
                 expires_at = excluded.expires_at",
            )
            .arg(token_id)
            .arg(kind.as_str())
            .arg(node)
            .arg(l.period)
            .arg(l.held)
            .arg(l.expires_at)
            .run(conn)
            .await?;
        }
        None => {
            sqlx::query(
                "DELETE FROM token_leases WHERE token_id = $1 AND kind = $2 AND node_id = $3",
            )
            .arg(token_id)
            .arg(kind.as_str())
            .arg(node)
            .run(conn)
            .await?;
        }
    }
    Ok(())
}

/// Deletes a budget and its leases (`None`: both kinds).
async fn drop_budget<B: SqlBackend>(
    conn: &mut Conn<'_, B>,
    token_id: &str,
    kind: Option<BudgetKind>,
) -> StoreResult<()> {
    for table in ["token_leases", "token_budgets"] {
        match kind {
            Some(kind) => {
                sqlx::query(&format!(
                    "DELETE FROM {table} WHERE token_id = $1 AND kind = $2"
                ))
                .arg(token_id)
                .arg(kind.as_str())
                .run(conn)
                .await?;
            }
            None => {
                sqlx::query(&format!("DELETE FROM {table} WHERE token_id = $1"))
                    .arg(token_id)
                    .run(conn)
                    .await?;
            }
        }
    }
    Ok(())
}

/// The budget rule of `kind` for a token as stored now (`None`: the token is gone or has
/// no such budget).
async fn stored_rule<B: SqlBackend>(
    conn: &mut Conn<'_, B>,
    token_id: &str,
    kind: BudgetKind,
) -> StoreResult<Option<BudgetRule>> {
    match load_token(conn, token_id).await {
        Ok(token) => Ok(BudgetRule::of(&token.policy, kind)),
        Err(StoreError::NotFound(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// A node leases up to `want` uses of a token's budget (see [`latchkey_core::token_policy::lease`]).
pub(crate) async fn lease_budget<B: SqlBackend>(
    conn: &mut Conn<'_, B>,
    now: i64,
    token_id: &str,
    kind: BudgetKind,
    node: &str,
    want: i64,
) -> StoreResult<Option<LeaseGrant>> {
    if kind == BudgetKind::Rate {
        // A rate budget starts full: make its row so that there is one to lock.
        sqlx::query(
            "INSERT INTO token_budgets (token_id, kind, period, pool) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (token_id, kind) DO NOTHING",
        )
        .arg(token_id)
        .arg(kind.as_str())
        .arg(i64::MIN)
        .arg(0i64)
        .run(conn)
        .await?;
    }
    let row = lock_budget(conn, token_id, kind).await?;
    let Some(rule) = stored_rule(conn, token_id, kind).await? else {
        return Ok(None);
    };
    let leases = load_leases(conn, token_id, kind).await?;
    let mine = leases.iter().find(|(n, _)| n == node).map(|(_, l)| *l);
    let out = token_policy::lease(row, mine, rule, now, want);
    put_budget(conn, token_id, kind, out.row).await?;
    put_lease(conn, token_id, kind, node, out.lease).await?;
    // Other nodes' leases that are void (an older period) or dead: the store counts them
    // spent, so their rows only cost space.
    for (other, lease) in &leases {
        if other != node && (lease.period != out.row.period || !lease.is_live(now)) {
            put_lease(conn, token_id, kind, other, None).await?;
        }
    }
    Ok(Some(out.grant))
}

/// Applies a node's reports (see [`latchkey_core::token_policy::settle`]); for each, until
/// when the node may spend what it keeps (`None`: stop).
pub(crate) async fn settle_leases<B: SqlBackend>(
    conn: &mut Conn<'_, B>,
    now: i64,
    node: &str,
    reports: &[LeaseReport],
) -> StoreResult<Vec<Option<i64>>> {
    // Rows are locked in one order (token, kind) whoever reports, so two nodes settling
    // at once cannot deadlock on PostgreSQL.
    let mut order: Vec<usize> = (0..reports.len()).collect();
    order.sort_by(|&a, &b| {
        (&reports[a].token_id, reports[a].kind.as_str())
            .cmp(&(&reports[b].token_id, reports[b].kind.as_str()))
    });
    let mut answers = vec![None; reports.len()];
    for index in order {
        let report = &reports[index];
        let row = lock_budget(conn, &report.token_id, report.kind).await?;
        let rule = stored_rule(conn, &report.token_id, report.kind).await?;
        let (Some(row), Some(rule)) = (row, rule) else {
            continue;
        };
        let mine = load_leases(conn, &report.token_id, report.kind)
            .await?
            .into_iter()
            .find(|(n, _)| n == node)
            .map(|(_, l)| l);
        let out = token_policy::settle(row, mine, report, rule, now);
        put_budget(conn, &report.token_id, report.kind, out.row).await?;
        put_lease(conn, &report.token_id, report.kind, node, out.lease).await?;
        answers[index] = out.valid_until;
    }
    Ok(answers)
}

/// Inserts a secret for `token_id` (the record's own `token_id` is not trusted).
async fn insert_secret<B: SqlBackend>(
    conn: &mut Conn<'_, B>,
    now: OffsetDateTime,
    token_id: &str,
    secret: &SecretRecord,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO token_secrets (hash, token_id, key_id, not_after, created_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .arg(&secret.hash[..])
    .arg(token_id)
    .arg(&secret.key_id)
    .arg(opt_secs(secret.not_after))
    .arg(secs(now))
    .run(conn)
    .await?;
    Ok(())
}

/// Whether one more active token fits in `limits`. A token counts while its stored state
/// is `active` or `pending` (a token waiting for approval holds its slot, so approving it
/// never fails on a limit) and it has not passed its expiry (the sweep may not have
/// marked it yet).
async fn check_limits<B: SqlBackend>(
    conn: &mut Conn<'_, B>,
    now: OffsetDateTime,
    limits: &Limits,
) -> StoreResult<()> {
    if let Some(max) = limits.max_active_tokens {
        let count: i64 = sqlx::query(
            "SELECT COUNT(*) FROM tokens WHERE state IN ('active', 'pending') \
             AND (expires_at IS NULL OR expires_at > $1)",
        )
        .arg(secs(now))
        .scalar(conn)
        .await?;
        if count >= i64::from(max) {
            return Err(StoreError::LimitExceeded {
                limit: "max_active_tokens",
                value: max,
            });
        }
    }
    if let Some((owner, max)) = &limits.max_tokens_per_user {
        let count: i64 = sqlx::query(
            "SELECT COUNT(*) FROM tokens WHERE owner_id = $1 \
             AND state IN ('active', 'pending') AND token_type IN ('personal', 'legacy') \
             AND (expires_at IS NULL OR expires_at > $2)",
        )
        .arg(owner)
        .arg(secs(now))
        .scalar(conn)
        .await?;
        if count >= i64::from(*max) {
            return Err(StoreError::LimitExceeded {
                limit: "max_tokens_per_user",
                value: *max,
            });
        }
    }
    Ok(())
}

/// The limits a token is under according to the stored settings (for reactivations that
/// the caller did not pass limits for).
async fn stored_limits<B: SqlBackend>(
    conn: &mut Conn<'_, B>,
    token: &TokenRecord,
) -> StoreResult<Limits> {
    let settings = match load_org(conn, &token.org_id).await {
        Ok(org) => org.token_settings,
        Err(StoreError::NotFound(_)) => TokenSettings {
            max_tokens_per_user: None,
            ..TokenSettings::default()
        },
        Err(e) => return Err(e),
    };
    let row = sqlx::query(rows::INSTANCE_SELECT).optional(conn).await?;
    let instance = match row {
        Some(row) => rows::instance(&row)?,
        None => InstanceSettings {
            max_active_tokens: None,
            ..InstanceSettings::default()
        },
    };
    Ok(limits_for(
        token.token_type,
        token.owner_id.as_deref(),
        &settings,
        &instance,
    ))
}

// --- lifecycle ----------------------------------------------------------------------

/// Records the hash key's id, or refuses another one.
pub(crate) async fn ensure_hash_key<B: SqlBackend>(
    conn: &mut Conn<'_, B>,
    key_id: &str,
) -> StoreResult<()> {
    let stored: Option<String> = sqlx::query("SELECT value FROM meta WHERE key = 'hash_key_id'")
        .optional_scalar(conn)
        .await?;
    match stored {
        Some(stored) if stored == key_id => Ok(()),
        Some(stored) => Err(StoreError::HashKeyMismatch { stored }),
        None => {
            sqlx::query("INSERT INTO meta (key, value) VALUES ('hash_key_id', $1)")
                .arg(key_id)
                .run(conn)
                .await?;
            Ok(())
        }
    }
}

/// The first start, guarded by the unique `bootstrap` row.
pub(crate) async fn bootstrap<B: SqlBackend>(
    conn: &mut Conn<'_, B>,
    now: OffsetDateTime,
    plan: &BootstrapPlan,
) -> StoreResult<bool> {
    let claimed = sqlx::query(
        "INSERT INTO bootstrap (id, done_at) VALUES (1, $1) ON CONFLICT (id) DO NOTHING",
    )
    .arg(secs(now))
    .run(conn)
    .await?;
    if claimed == 0 {
        return Ok(false);
    }
    insert_org(conn, now, &plan.org).await?;
    upsert_instance(conn, &plan.instance).await?;
    insert_user(conn, &plan.admin).await?;
    insert_workspace(conn, &plan.workspace).await?;
    upsert_member(
        conn,
        now,
        &plan.workspace.id,
        &plan.admin.id,
        plan.admin_workspace_role,
    )
    .await?;
    insert_token(conn, &plan.token, plan.secret.sealed.as_deref()).await?;
    insert_secret(conn, now, &plan.token.id, &plan.secret).await?;
    audit(conn, now, &plan.event).await?;
    bump(conn, ChangeKind::Instance, "").await?;
    bump(conn, ChangeKind::Org, &plan.org.id).await?;
    bump(conn, ChangeKind::User, &plan.admin.id).await?;
    bump(conn, ChangeKind::Token, &plan.token.id).await?;
    Ok(true)
}

// --- settings -----------------------------------------------------------------------

/// Replaces an org's token settings.
pub(crate) async fn update_token_settings<B: SqlBackend>(
    conn: &mut Conn<'_, B>,
    now: OffsetDateTime,
    org_id: &str,
    settings: &TokenSettings,
    event: &NewAuditEvent,
) -> StoreResult<OrgRecord> {
    let updated = sqlx::query(
        "UPDATE orgs SET enabled_types = $1, personal_token_ttl_days = $2, \
         max_tokens_per_user = $3, token_creators = $4, recoverable_types = $5, \
         idle_revoke_days = $6, max_token_lifetime_days = $7, approval_required_types = $8 \
         WHERE id = $9",
    )
    .arg(i64::from(settings.enabled_types))
    .arg(settings.personal_token_ttl_days.map(i64::from))
    .arg(settings.max_tokens_per_user.map(i64::from))
    .arg(settings.token_creators.as_str())
    .arg(i64::from(settings.recoverable_types))
    .arg(settings.idle_revoke_days.map(i64::from))
    .arg(settings.max_token_lifetime_days.map(i64::from))
    .arg(i64::from(settings.approval_required_types))
    .arg(org_id)
    .run(conn)
    .await?;
    if updated == 0 {
        return Err(StoreError::NotFound("org"));
    }
    erase_unrecoverable(conn, org_id, settings).await?;
    audit(conn, now, event).await?;
    bump(conn, ChangeKind::Org, org_id).await?;
    load_org(conn, org_id).await
}

/// Erases the sealed secrets of the org's tokens whose type `settings` no longer keeps
/// recoverable (in the settings change's transaction: off means gone at once); each
/// erased token is a change, since its `recoverable` flag is.
async fn erase_unrecoverable<B: SqlBackend>(
    conn: &mut Conn<'_, B>,
    org_id: &str,
    settings: &TokenSettings,
) -> StoreResult<()> {
    for dropped in TokenType::ALL
        .into_iter()
        .filter(|t| !settings.is_recoverable(*t))
    {
        let found = sqlx::query(
            "SELECT id FROM tokens WHERE org_id = $1 AND token_type = $2 \
             AND sealed_secret IS NOT NULL ORDER BY id",
        )
        .arg(org_id)
        .arg(dropped.as_str())
        .all(conn)
        .await?;
        if found.is_empty() {
            continue;
        }
        sqlx::query(
            "UPDATE tokens SET sealed_secret = NULL WHERE org_id = $1 AND token_type = $2 \
             AND sealed_secret IS NOT NULL",
        )
        .arg(org_id)
        .arg(dropped.as_str())
        .run(conn)
        .await?;
        for row in &found {
            let id: String = rows::get(row, "id")?;
            bump(conn, ChangeKind::Token, &id).await?;
        }
    }
    Ok(())
}

/// Replaces the instance settings.
pub(crate) async fn update_instance_settings<B: SqlBackend>(
    conn: &mut Conn<'_, B>,
    now: OffsetDateTime,
    settings: &InstanceSettings,
    event: &NewAuditEvent,
) -> StoreResult<InstanceSettings> {
    upsert_instance(conn, settings).await?;
    audit(conn, now, event).await?;
    bump(conn, ChangeKind::Instance, "").await?;
    let row = sqlx::query(rows::INSTANCE_SELECT).one(conn).await?;
    rows::instance(&row)
}

// --- users --------------------------------------------------------------------------

/// Creates a user.
pub(crate) async fn create_user<B: SqlBackend>(
    conn: &mut Conn<'_, B>,
    now: OffsetDateTime,
    user: &UserRecord,
    event: &NewAuditEvent,
) -> StoreResult<UserRecord> {
    insert_user(conn, user).await?;
    audit(conn, now, event).await?;
    bump(conn, ChangeKind::User, &user.id).await?;
    load_user(conn, &user.id).await
}

/// Applies a user patch, refusing to leave the org without an active owner.
pub(crate) async fn update_user<B: SqlBackend>(
    conn: &mut Conn<'_, B>,
    now: OffsetDateTime,
    id: &str,
    patch: &UserPatch,
    event: &NewAuditEvent,
) -> StoreResult<UserRecord> {
    let before = load_user(conn, id).await?;
    let mut after = before.clone();
    if let Some(active) = patch.active {
        after.active = active;
    }
    if let Some(role) = patch.role {
        after.role = role;
    }
    if let Some(display_name) = &patch.display_name {
        after.display_name.clone_from(display_name);
    }
    if let Some(email) = &patch.email {
        after.email.clone_from(email);
    }
    if let Some(hash) = &patch.password_hash {
        after.password_hash = Some(hash.clone());
    }
    sqlx::query(
        "UPDATE users SET active = $1, role = $2, display_name = $3, email = $4, \
         password_hash = $5 WHERE id = $6",
    )
    .arg(after.active)
    .arg(after.role.as_str())
    .arg(&after.display_name)
    .arg(&after.email)
    .arg(&after.password_hash)
    .arg(id)
    .run(conn)
    .await?;
    if patch.active == Some(false) || patch.password_hash.is_some() {
        sqlx::query("DELETE FROM sessions WHERE user_id = $1")
            .arg(id)
            .run(conn)
            .await?;
    }
    let was_owner = before.active && before.role == OrgRole::Owner;
    let is_owner = after.active && after.role == OrgRole::Owner;
    if was_owner && !is_owner {
        let owners: i64 = sqlx::query(
            "SELECT COUNT(*) FROM users WHERE org_id = $1 AND role = $2 AND active = $3",
        )
        .arg(&before.org_id)
        .arg(OrgRole::Owner.as_str())
        .arg(true)
        .scalar(conn)
        .await?;
        if owners == 0 {
            return Err(StoreError::LastOwner);
        }
    }
    audit(conn, now, event).await?;
    bump(conn, ChangeKind::User, id).await?;
    load_user(conn, id).await
}

// --- workspaces and members ---------------------------------------------------------

/// Creates a workspace, optionally with its creator as a member.
pub(crate) async fn create_workspace<B: SqlBackend>(
    conn: &mut Conn<'_, B>,
    now: OffsetDateTime,
    workspace: &WorkspaceRecord,
    creator: Option<&(String, WorkspaceRole)>,
    event: &NewAuditEvent,
) -> StoreResult<WorkspaceRecord> {
    insert_workspace(conn, workspace).await?;
    if let Some((user_id, role)) = creator {
        require_user(conn, user_id).await?;
        upsert_member(conn, now, &workspace.id, user_id, *role).await?;
        bump(conn, ChangeKind::User, user_id).await?;
    }
    audit(conn, now, event).await?;
    load_workspace(conn, &workspace.id).await
}

/// Adds a member or changes their role.
pub(crate) async fn put_member<B: SqlBackend>(
    conn: &mut Conn<'_, B>,
    now: OffsetDateTime,
    workspace_id: &str,
    user_id: &str,
    role: WorkspaceRole,
    event: &NewAuditEvent,
) -> StoreResult<MembershipRecord> {
    require_workspace(conn, workspace_id).await?;
    require_user(conn, user_id).await?;
    upsert_member(conn, now, workspace_id, user_id, role).await?;
    audit(conn, now, event).await?;
    bump(conn, ChangeKind::User, user_id).await?;
    load_membership(conn, workspace_id, user_id).await
}

/// Removes a member.
pub(crate) async fn remove_member<B: SqlBackend>(
    conn: &mut Conn<'_, B>,
    now: OffsetDateTime,
    workspace_id: &str,
    user_id: &str,
    event: &NewAuditEvent,
) -> StoreResult<()> {
    let removed = sqlx::query("DELETE FROM memberships WHERE workspace_id = $1 AND user_id = $2")
        .arg(workspace_id)
        .arg(user_id)
        .run(conn)
        .await?;
    if removed == 0 {
        return Err(StoreError::NotFound("membership"));
    }
    audit(conn, now, event).await?;
    bump(conn, ChangeKind::User, user_id).await?;
    Ok(())
}

// --- projects -----------------------------------------------------------------------

/// Creates a project.
pub(crate) async fn create_project<B: SqlBackend>(
    conn: &mut Conn<'_, B>,
    now: OffsetDateTime,
    project: &ProjectRecord,
    event: &NewAuditEvent,
) -> StoreResult<ProjectRecord> {
    require_workspace(conn, &project.workspace_id).await?;
    sqlx::query(
        "INSERT INTO projects (id, workspace_id, name, description, created_by, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .arg(&project.id)
    .arg(&project.workspace_id)
    .arg(&project.name)
    .arg(&project.description)
    .arg(&project.created_by)
    .arg(secs(project.created_at))
    .run(conn)
    .await?;
    audit(conn, now, event).await?;
    let row = sqlx::query(&format!("{} WHERE id = $1", rows::PROJECT_SELECT))
        .arg(&project.id)
        .one(conn)
        .await?;
    rows::project(&row)
}

/// Escapes `%`, `_` and `\` for a `LIKE ... ESCAPE '\'` pattern.
fn like_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Deletes a project; tokens bound only to it go too, tokens bound to it and others lose
/// the binding (never widened to "all projects"). Each such token change is audited
/// (`token.deleted` / `token.updated`, by the project event's actor).
pub(crate) async fn delete_project<B: SqlBackend>(
    conn: &mut Conn<'_, B>,
    now: OffsetDateTime,
    id: &str,
    event: &NewAuditEvent,
) -> StoreResult<Vec<String>> {
    let workspace_id: Option<String> =
        sqlx::query("SELECT workspace_id FROM projects WHERE id = $1")
            .arg(id)
            .optional_scalar(conn)
            .await?;
    if workspace_id.is_none() {
        return Err(StoreError::NotFound("project"));
    }
    // Prefilter on the JSON text, then decide on the parsed list.
    let pattern = format!("%{}%", like_escape(&json(id)?));
    let bound = sqlx::query(
        "SELECT id, projects, owner_id, workspace_id FROM tokens \
         WHERE projects LIKE $1 ESCAPE '\\' ORDER BY id",
    )
    .arg(pattern)
    .all(conn)
    .await?;
    let mut deleted = Vec::new();
    for row in bound {
        let token_id: String = rows::get(&row, "id")?;
        let projects: String = rows::get(&row, "projects")?;
        let projects = rows::project_list(&projects)?;
        if !projects.iter().any(|p| p == id) {
            continue;
        }
        let rest: Vec<String> = projects.into_iter().filter(|p| p != id).collect();
        let token_event = NewAuditEvent {
            action: if rest.is_empty() {
                "token.deleted"
            } else {
                "token.updated"
            }
            .to_owned(),
            actor_id: event.actor_id.clone(),
            actor_token_id: event.actor_token_id.clone(),
            target_type: Some("token".to_owned()),
            target_id: Some(token_id.clone()),
            workspace_id: rows::get(&row, "workspace_id")?,
            subject_user_id: rows::get(&row, "owner_id")?,
            ip: event.ip.clone(),
            details: serde_json::json!({ "project_deleted": id }),
        };
        if rest.is_empty() {
            // Audited first, so the lifecycle event can still read the token it reports.
            audit(conn, now, &token_event).await?;
            delete_token_rows(conn, &token_id).await?;
            deleted.push(token_id.clone());
        } else {
            sqlx::query("UPDATE tokens SET projects = $1 WHERE id = $2")
                .arg(json(&rest)?)
                .arg(&token_id)
                .run(conn)
                .await?;
            audit(conn, now, &token_event).await?;
        }
        bump(conn, ChangeKind::Token, &token_id).await?;
    }
    sqlx::query("DELETE FROM projects WHERE id = $1")
        .arg(id)
        .run(conn)
        .await?;
    audit(conn, now, event).await?;
    Ok(deleted)
}

// --- tokens -------------------------------------------------------------------------

/// Inserts a token and its secret within the limits; one legacy token per user.
pub(crate) async fn create_token<B: SqlBackend>(
    conn: &mut Conn<'_, B>,
    now: OffsetDateTime,
    token: &TokenRecord,
    secret: &SecretRecord,
    limits: &Limits,
    event: &NewAuditEvent,
) -> StoreResult<TokenRecord> {
    if token.token_type == TokenType::Legacy
        && let Some(owner) = &token.owner_id
    {
        let existing: i64 = sqlx::query(
            "SELECT COUNT(*) FROM tokens WHERE owner_id = $1 AND token_type = 'legacy'",
        )
        .arg(owner)
        .scalar(conn)
        .await?;
        if existing > 0 {
            return Err(StoreError::Conflict(LEGACY_TAKEN.to_owned()));
        }
    }
    if matches!(token.state, StoredState::Active | StoredState::Pending) {
        check_limits(conn, now, limits).await?;
    }
    insert_token(conn, token, secret.sealed.as_deref()).await?;
    insert_secret(conn, now, &token.id, secret).await?;
    audit(conn, now, event).await?;
    bump(conn, ChangeKind::Token, &token.id).await?;
    load_token(conn, &token.id).await
}

/// Inserts many tokens with their secrets at once (bulk import): no limit checks, one
/// audit event and one change for the whole batch.
pub(crate) async fn import_tokens<B: SqlBackend>(
    conn: &mut Conn<'_, B>,
    now: OffsetDateTime,
    tokens: &[(TokenRecord, SecretRecord)],
    event: &NewAuditEvent,
) -> StoreResult<()> {
    for (token, secret) in tokens {
        insert_token(conn, token, secret.sealed.as_deref()).await?;
        insert_secret(conn, now, &token.id, secret).await?;
    }
    audit(conn, now, event).await?;
    // One change for the batch: readers drop their negative caches (the id names no token).
    bump(conn, ChangeKind::Token, "").await?;
    Ok(())
}

/// Revokes (idempotently); `leaked` is sticky.
pub(crate) async fn revoke_token<B: SqlBackend>(
    conn: &mut Conn<'_, B>,
    now: OffsetDateTime,
    id: &str,
    leaked: bool,
    event: &NewAuditEvent,
) -> StoreResult<TokenRecord> {
    let token = load_token(conn, id).await?;
    // `expired` is final — stored, or past its expiry and not swept yet (the two behave
    // the same): a revoke (a leak report, the one caller that reaches an expired token)
    // leaves its state, but still records the leak.
    let state = if is_expired(token.state, token.expires_at, now) {
        token.state
    } else {
        revoked_state(token.state)
    };
    sqlx::query("UPDATE tokens SET state = $1, leaked = $2 WHERE id = $3")
        .arg(state.as_str())
        .arg(token.leaked || leaked)
        .arg(id)
        .run(conn)
        .await?;
    // A leaked secret is never revealed again (only a rotation brings the token back, with
    // a new secret): its sealed copy goes now. A plain revoke keeps it for a restore.
    if leaked || state == StoredState::Expired {
        erase_sealed(conn, id).await?;
    }
    audit(conn, now, event).await?;
    bump(conn, ChangeKind::Token, id).await?;
    load_token(conn, id).await
}

/// What a revoke leaves a live token in: `revoked`, except that a token never approved
/// (pending or denied) becomes `denied` — a revoked one could be restored, which would
/// skip the approval (a leak report or its creator's withdrawal is final for it).
fn revoked_state(state: StoredState) -> StoredState {
    match state {
        StoredState::Pending | StoredState::Denied => StoredState::Denied,
        _ => StoredState::Revoked,
    }
}

/// Revokes each requested token that is still active, in the caller's transaction; the
/// others are answered as skipped (see [`crate::Store::revoke_tokens`]).
pub(crate) async fn revoke_tokens<B: SqlBackend>(
    conn: &mut Conn<'_, B>,
    now: OffsetDateTime,
    requests: &[(String, NewAuditEvent)],
) -> StoreResult<Vec<BulkRevoked>> {
    let mut outcomes = Vec::with_capacity(requests.len());
    for (id, event) in requests {
        let skipped = |why| BulkRevoked::Skipped {
            id: id.clone(),
            why,
        };
        let mut token = match load_token(conn, id).await {
            Ok(token) => token,
            Err(StoreError::NotFound(_)) => {
                outcomes.push(skipped(RevokeSkipped::NotFound));
                continue;
            }
            Err(e) => return Err(e),
        };
        if is_expired(token.state, token.expires_at, now) {
            outcomes.push(skipped(RevokeSkipped::Expired));
            continue;
        }
        if matches!(token.state, StoredState::Revoked | StoredState::Denied) {
            outcomes.push(skipped(RevokeSkipped::AlreadyRevoked));
            continue;
        }
        let state = revoked_state(token.state);
        sqlx::query("UPDATE tokens SET state = $1 WHERE id = $2")
            .arg(state.as_str())
            .arg(id.as_str())
            .run(conn)
            .await?;
        audit(conn, now, event).await?;
        bump(conn, ChangeKind::Token, id).await?;
        token.state = state;
        outcomes.push(BulkRevoked::Revoked(Box::new(token)));
    }
    Ok(outcomes)
}

/// Re-approves a revoked token within the limits.
pub(crate) async fn restore_token<B: SqlBackend>(
    conn: &mut Conn<'_, B>,
    now: OffsetDateTime,
    id: &str,
    limits: &Limits,
    event: &NewAuditEvent,
) -> StoreResult<TokenRecord> {
    let token = load_token(conn, id).await?;
    check_restore(token.state, token.expires_at, token.leaked, now)
        .map_err(|denied| StoreError::Conflict(denied.to_string()))?;
    if token.state != StoredState::Revoked {
        return Err(StoreError::Conflict(
            "the token is not revoked; only a revoked token can be restored".to_owned(),
        ));
    }
    check_limits(conn, now, limits).await?;
    sqlx::query("UPDATE tokens SET state = $1, restored_at = $2 WHERE id = $3")
        .arg(StoredState::Active.as_str())
        .arg(secs(now))
        .arg(id)
        .run(conn)
        .await?;
    audit(conn, now, event).await?;
    bump(conn, ChangeKind::Token, id).await?;
    load_token(conn, id).await
}

/// Approves (→ `active`) or denies (→ `denied`, final) a pending token. The token holds
/// its limit slot while pending, so approving checks no limit.
pub(crate) async fn decide_token<B: SqlBackend>(
    conn: &mut Conn<'_, B>,
    now: OffsetDateTime,
    id: &str,
    approve: bool,
    event: &NewAuditEvent,
) -> StoreResult<TokenRecord> {
    let token = load_token(conn, id).await?;
    let action = if approve {
        TokenAction::Approve
    } else {
        TokenAction::Deny
    };
    check_action(action, token.state, token.expires_at, now)
        .map_err(|denied| StoreError::Conflict(denied.to_string()))?;
    let state = if approve {
        StoredState::Active
    } else {
        StoredState::Denied
    };
    sqlx::query("UPDATE tokens SET state = $1 WHERE id = $2 AND state = $3")
        .arg(state.as_str())
        .arg(id)
        .arg(StoredState::Pending.as_str())
        .run(conn)
        .await?;
    if !approve {
        // Denied is final: a kept secret would only ever be revealed for nothing.
        erase_sealed(conn, id).await?;
    }
    audit(conn, now, event).await?;
    bump(conn, ChangeKind::Token, id).await?;
    load_token(conn, id).await
}

/// Everything `rotate_token` takes.
pub(crate) struct Rotation<'a> {
    pub(crate) id: &'a str,
    pub(crate) new_secret: &'a SecretRecord,
    pub(crate) old_not_after: Option<OffsetDateTime>,
    pub(crate) expires_at: Option<Option<OffsetDateTime>>,
    pub(crate) idempotency: Option<&'a IdempotencyRecord>,
    pub(crate) event: &'a NewAuditEvent,
}

/// Replaces a token's secret (see the trait's documentation).
pub(crate) async fn rotate_token<B: SqlBackend>(
    conn: &mut Conn<'_, B>,
    now: OffsetDateTime,
    rotation: Rotation<'_>,
) -> StoreResult<TokenRecord> {
    let Rotation {
        id,
        new_secret,
        old_not_after,
        expires_at,
        idempotency,
        event,
    } = rotation;
    let token = load_token(conn, id).await?;
    if token.state == StoredState::Expired || token.expires_at.is_some_and(|e| e <= now) {
        return Err(StoreError::Conflict(
            "the token has expired; expired tokens cannot be rotated".to_owned(),
        ));
    }
    if token.state == StoredState::Denied {
        return Err(StoreError::Conflict(
            "the token was denied; denied is final, it cannot be rotated".to_owned(),
        ));
    }
    // A leak-revoked token comes back: it needs a slot like a restore. The caller passes
    // no limits here, so the stored settings decide.
    let state = if token.leaked {
        if token.state != StoredState::Active {
            let limits = stored_limits(conn, &token).await?;
            check_limits(conn, now, &limits).await?;
        }
        StoredState::Active
    } else {
        token.state
    };
    match old_not_after {
        Some(not_after) => {
            sqlx::query(
                "UPDATE token_secrets SET not_after = $1 WHERE token_id = $2 \
                 AND (not_after IS NULL OR not_after > $3)",
            )
            .arg(secs(not_after))
            .arg(id)
            .arg(secs(not_after))
            .run(conn)
            .await?;
        }
        None => {
            sqlx::query("DELETE FROM token_secrets WHERE token_id = $1")
                .arg(id)
                .run(conn)
                .await?;
        }
    }
    insert_secret(conn, now, id, new_secret).await?;
    let expires_at = expires_at.unwrap_or(token.expires_at);
    sqlx::query(
        "UPDATE tokens SET state = $1, leaked = $2, expires_at = $3, hint = COALESCE($4, hint), \
         sealed_secret = $5 WHERE id = $6",
    )
    .arg(state.as_str())
    .arg(false)
    .arg(opt_secs(expires_at))
    .arg(new_secret.hint.as_deref())
    .arg(new_secret.sealed.as_deref())
    .arg(id)
    .run(conn)
    .await?;
    if let Some(record) = idempotency {
        sqlx::query("DELETE FROM idempotency WHERE created_at < $1")
            .arg(secs(record.created_at - IDEMPOTENCY_TTL))
            .run(conn)
            .await?;
        sqlx::query(
            "INSERT INTO idempotency (key, request_hash, response, created_at) \
             VALUES ($1, $2, $3, $4)",
        )
        .arg(&record.key)
        .arg(&record.request_hash)
        .arg(&record.response)
        .arg(secs(record.created_at))
        .run(conn)
        .await?;
    }
    audit(conn, now, event).await?;
    bump(conn, ChangeKind::Token, id).await?;
    load_token(conn, id).await
}

/// Drops a token's sealed secret (it is no longer recoverable).
async fn erase_sealed<B: SqlBackend>(conn: &mut Conn<'_, B>, id: &str) -> StoreResult<()> {
    sqlx::query("UPDATE tokens SET sealed_secret = NULL WHERE id = $1")
        .arg(id)
        .run(conn)
        .await?;
    Ok(())
}

/// A recoverable token's sealed secret, with `event` written in the same transaction;
/// `None` (and nothing written) unless the token is active, not past its expiry at `now`,
/// and has one.
pub(crate) async fn reveal_token<B: SqlBackend>(
    conn: &mut Conn<'_, B>,
    now: OffsetDateTime,
    id: &str,
    event: &NewAuditEvent,
) -> StoreResult<Option<Vec<u8>>> {
    let row = sqlx::query("SELECT state, expires_at, sealed_secret FROM tokens WHERE id = $1")
        .arg(id)
        .optional(conn)
        .await?
        .ok_or(StoreError::NotFound("token"))?;
    let state: String = rows::get(&row, "state")?;
    let expires_at: Option<i64> = rows::get(&row, "expires_at")?;
    let sealed: Option<Vec<u8>> = rows::get(&row, "sealed_secret")?;
    let works = state == StoredState::Active.as_str() && expires_at.is_none_or(|e| e > secs(now));
    match sealed {
        Some(sealed) if works => {
            audit(conn, now, event).await?;
            Ok(Some(sealed))
        }
        _ => Ok(None),
    }
}

async fn delete_token_rows<B: SqlBackend>(conn: &mut Conn<'_, B>, id: &str) -> StoreResult<u64> {
    drop_budget(conn, id, None).await?;
    for table in ["token_usage_days", "token_usage_ips"] {
        sqlx::query(&format!("DELETE FROM {table} WHERE token_id = $1"))
            .arg(id)
            .run(conn)
            .await?;
    }
    sqlx::query("DELETE FROM token_secrets WHERE token_id = $1")
        .arg(id)
        .run(conn)
        .await?;
    sqlx::query("DELETE FROM tokens WHERE id = $1")
        .arg(id)
        .run(conn)
        .await
}

/// Deletes a token and its secrets.
pub(crate) async fn delete_token<B: SqlBackend>(
    conn: &mut Conn<'_, B>,
    now: OffsetDateTime,
    id: &str,
    event: &NewAuditEvent,
) -> StoreResult<()> {
    // Audited first, so the lifecycle event can still read the token it reports.
    load_token(conn, id).await?;
    audit(conn, now, event).await?;
    delete_token_rows(conn, id).await?;
    bump(conn, ChangeKind::Token, id).await?;
    Ok(())
}

/// Applies a change of a token's verify-time policy (see [`crate::TokenPolicyPatch`]).
pub(crate) async fn update_token_policy<B: SqlBackend>(
    conn: &mut Conn<'_, B>,
    now: OffsetDateTime,
    id: &str,
    patch: &TokenPolicyPatch,
    event: &NewAuditEvent,
) -> StoreResult<TokenRecord> {
    let token = load_token(conn, id).await?;
    let old = token.policy.clone();
    let mut policy = old.clone();
    if let Some(metadata) = &patch.metadata {
        policy.metadata = metadata.clone();
    }
    if let Some(allowed) = &patch.allowed_ips {
        policy.allowed_ips = allowed.clone();
    }
    if let Some(rate) = patch.rate_limit {
        policy.rate_limit = rate;
    }
    match patch.remaining_uses {
        Some(None) => policy.uses = None,
        Some(Some(_)) if policy.uses.is_none() => policy.uses = Some(UsesPolicy::default()),
        _ => {}
    }
    if let Some(refill) = patch.refill {
        match policy.uses.as_mut() {
            Some(uses) => uses.refill = refill,
            None if refill.is_some() => {
                return Err(StoreError::Conflict(
                    "a refill needs remaining_uses; set remaining_uses too".to_owned(),
                ));
            }
            None => {}
        }
    }
    let columns = PolicyColumns::of(&policy)?;
    sqlx::query(
        "UPDATE tokens SET metadata = $1, allowed_ips = $2, rate_limit = $3, \
         rate_window_secs = $4, uses_limited = $5, refill_amount = $6, refill_interval = $7 \
         WHERE id = $8",
    )
    .arg(columns.metadata)
    .arg(columns.allowed_ips)
    .arg(columns.rate_limit)
    .arg(columns.rate_window_secs)
    .arg(columns.uses_limited)
    .arg(columns.refill_amount)
    .arg(columns.refill_interval)
    .arg(id)
    .run(conn)
    .await?;
    let at = secs(now);
    // A new rate limit starts a fresh budget (nodes drop their blocks on the change).
    if policy.rate_limit != old.rate_limit {
        drop_budget(conn, id, Some(BudgetKind::Rate)).await?;
    }
    match (
        BudgetRule::of(&old, BudgetKind::Uses),
        BudgetRule::of(&policy, BudgetKind::Uses),
    ) {
        (_, None) => drop_budget(conn, id, Some(BudgetKind::Uses)).await?,
        (None, Some(rule)) => {
            let n = patch.remaining_uses.flatten().unwrap_or(0);
            drop_budget(conn, id, Some(BudgetKind::Uses)).await?;
            put_budget(
                conn,
                id,
                BudgetKind::Uses,
                BudgetRow {
                    period: rule.periods.index(at),
                    pool: n,
                },
            )
            .await?;
        }
        (Some(old_rule), Some(rule)) => {
            let row = lock_budget(conn, id, BudgetKind::Uses).await?;
            let leases: Vec<LeaseRow> = load_leases(conn, id, BudgetKind::Uses)
                .await?
                .into_iter()
                .map(|(_, l)| l)
                .collect();
            let current = token_policy::current_row(row, old_rule, at);
            let n = match patch.remaining_uses.flatten() {
                Some(n) => n,
                // Only the refill changed: keep what is left.
                None => {
                    let held: i64 = leases
                        .iter()
                        .filter(|l| l.period == current.period && l.is_live(at))
                        .map(|l| l.held)
                        .sum();
                    current.pool + held
                }
            };
            let mut next = token_policy::set_remaining(Some(current), &leases, old_rule, n, at);
            let period = rule.periods.index(at);
            if period != next.period {
                // Another kind of period (the refill changed): the nodes' blocks are void
                // and their returns no longer credited, so the pool keeps owing what they
                // held (uses they may still spend; never more than `n`).
                sqlx::query("DELETE FROM token_leases WHERE token_id = $1 AND kind = $2")
                    .arg(id)
                    .arg(BudgetKind::Uses.as_str())
                    .run(conn)
                    .await?;
                next.period = period;
            }
            put_budget(conn, id, BudgetKind::Uses, next).await?;
        }
    }
    audit(conn, now, event).await?;
    bump(conn, ChangeKind::Token, id).await?;
    load_token(conn, id).await
}

/// Merges last-used observations: the latest time wins, and the IP goes with it. The
/// batch is merged here first (per token, the latest; on a tie, the first seen), then
/// written by the backend's statement ([`SqlBackend::record_last_used`]), whose condition
/// keeps whatever a later flush (from another node) already wrote: flushes merge by `max`
/// and never regress.
pub(crate) async fn record_last_used<B: SqlBackend>(
    conn: &mut Conn<'_, B>,
    batch: &[LastUsed],
) -> StoreResult<()> {
    let latest = crate::latest_use_per_token(batch);
    B::record_last_used(conn, &latest).await
}

/// Rows per statement of a usage flush (three arguments each: far below both engines'
/// limits on arguments, while a flush of tens of thousands of tokens stays a few dozen
/// statements).
const USAGE_CHUNK: usize = 500;

/// A UTC day as stored: days since 1970-01-01.
pub(crate) fn day_number(day: time::Date) -> i64 {
    i64::from(day.to_julian_day() - OffsetDateTime::UNIX_EPOCH.date().to_julian_day())
}

/// A stored day number as the date.
fn day_of(number: i64) -> StoreResult<time::Date> {
    i32::try_from(number)
        .ok()
        .and_then(|n| n.checked_add(OffsetDateTime::UNIX_EPOCH.date().to_julian_day()))
        .and_then(|julian| time::Date::from_julian_day(julian).ok())
        .ok_or_else(|| StoreError::Internal(format!("stored usage day {number} is out of range")))
}

/// `WITH u (token_id, <columns>) AS (VALUES ($1, $2, $3), ...) ` for `rows`.
fn usage_values<'a>(columns: &str, rows: impl Iterator<Item = (&'a str, Param, i64)>) -> Statement {
    let mut statement = Statement::new(&format!("WITH u (token_id, {columns}) AS (VALUES "));
    for (i, (token_id, middle, last)) in rows.enumerate() {
        statement.push(if i == 0 { "(" } else { ", (" });
        statement
            .param(token_id)
            .push(", ")
            .param(middle)
            .push(", ")
            .param(last)
            .push(")");
    }
    statement.push(") ");
    statement
}

/// Writes one usage flush (see [`crate::Store::record_usage`]). Each part is merged here
/// first (per token and day, the sum; per token and address, the latest), so a statement
/// never touches a row twice (PostgreSQL refuses that in one `INSERT ... ON CONFLICT`).
pub(crate) async fn record_usage<B: SqlBackend>(
    conn: &mut Conn<'_, B>,
    batch: &UsageBatch,
) -> StoreResult<()> {
    if !batch.last_used.is_empty() {
        record_last_used(conn, &batch.last_used).await?;
    }
    let mut days: std::collections::BTreeMap<(&str, i64), i64> = Default::default();
    for used in &batch.days {
        let count = i64::try_from(used.count).unwrap_or(i64::MAX);
        let sum = days
            .entry((&used.token_id, day_number(used.day)))
            .or_default();
        *sum = sum.saturating_add(count);
    }
    let days: Vec<(&str, i64, i64)> = days.into_iter().map(|((t, d), n)| (t, d, n)).collect();
    for chunk in days.chunks(USAGE_CHUNK) {
        let rows = chunk.iter().map(|&(t, d, n)| (t, Param::Int(d), n));
        let mut statement = usage_values("day, count", rows);
        statement.push(
            "INSERT INTO token_usage_days (token_id, day, count) \
             SELECT u.token_id, u.day, u.count FROM u WHERE u.token_id IN (SELECT id FROM tokens) \
             ON CONFLICT (token_id, day) DO UPDATE SET count = token_usage_days.count + excluded.count",
        );
        statement.query().run(conn).await?;
    }
    let mut ips: std::collections::BTreeMap<(&str, &str), i64> = Default::default();
    for seen in &batch.ips {
        let at = secs(seen.at);
        let latest = ips.entry((&seen.token_id, &seen.ip)).or_insert(at);
        *latest = (*latest).max(at);
    }
    let ips: Vec<((&str, &str), i64)> = ips.into_iter().collect();
    for chunk in ips.chunks(USAGE_CHUNK) {
        let rows = chunk.iter().map(|&((t, ip), at)| (t, Param::from(ip), at));
        let mut statement = usage_values("ip, last_seen_at", rows);
        statement.push(
            "INSERT INTO token_usage_ips (token_id, ip, last_seen_at) \
             SELECT u.token_id, u.ip, u.last_seen_at FROM u \
             WHERE u.token_id IN (SELECT id FROM tokens) \
             ON CONFLICT (token_id, ip) DO UPDATE SET last_seen_at = CASE \
             WHEN excluded.last_seen_at > token_usage_ips.last_seen_at \
             THEN excluded.last_seen_at ELSE token_usage_ips.last_seen_at END",
        );
        statement.query().run(conn).await?;
        // Only the newest few per token are ever shown: trim the tokens just written.
        let mut trim = Statement::new(
            "DELETE FROM token_usage_ips WHERE (token_id, ip) IN (SELECT token_id, ip FROM \
             (SELECT token_id, ip, ROW_NUMBER() OVER (PARTITION BY token_id \
             ORDER BY last_seen_at DESC, ip) AS n FROM token_usage_ips WHERE token_id IN (",
        );
        let mut last = None;
        for &((token_id, _), _) in chunk {
            if last == Some(token_id) {
                continue;
            }
            if last.is_some() {
                trim.push(", ");
            }
            trim.param(token_id);
            last = Some(token_id);
        }
        trim.push(")) AS r WHERE r.n > ")
            .param(i64::try_from(USAGE_IPS_KEPT).unwrap_or(i64::MAX))
            .push(")");
        trim.query().run(conn).await?;
    }
    Ok(())
}

/// A token's stored usage from day `since` on (see [`crate::Store::token_usage`]).
pub(crate) async fn token_usage<B: SqlBackend>(
    conn: &mut Conn<'_, B>,
    id: &str,
    since: time::Date,
) -> StoreResult<TokenUsage> {
    let ips = sqlx::query(
        "SELECT ip, last_seen_at FROM token_usage_ips WHERE token_id = $1 \
         ORDER BY last_seen_at DESC, ip LIMIT $2",
    )
    .arg(id)
    .arg(i64::try_from(USAGE_IPS_KEPT).unwrap_or(i64::MAX))
    .all(conn)
    .await?;
    let days = sqlx::query(
        "SELECT day, count FROM token_usage_days WHERE token_id = $1 AND day >= $2 ORDER BY day",
    )
    .arg(id)
    .arg(day_number(since))
    .all(conn)
    .await?;
    let mut usage = TokenUsage::default();
    for row in ips {
        let at: i64 = rows::get(&row, "last_seen_at")?;
        usage
            .last_ips
            .push((rows::get(&row, "ip")?, latchkey_core::from_unix(at)));
    }
    for row in days {
        let count: i64 = rows::get(&row, "count")?;
        usage.daily.push((
            day_of(rows::get(&row, "day")?)?,
            u64::try_from(count).unwrap_or(0),
        ));
    }
    Ok(usage)
}

/// Marks active tokens past their expiry as `expired`, one `token.expired` event each.
pub(crate) async fn expire_tokens<B: SqlBackend>(
    conn: &mut Conn<'_, B>,
    now: OffsetDateTime,
) -> StoreResult<Vec<String>> {
    let due = sqlx::query(
        "SELECT id, owner_id, workspace_id, expires_at FROM tokens \
         WHERE state IN ('active', 'pending') \
         AND expires_at IS NOT NULL AND expires_at <= $1 ORDER BY id",
    )
    .arg(secs(now))
    .all(conn)
    .await?;
    let mut ids = Vec::with_capacity(due.len());
    for row in due {
        let id: String = rows::get(&row, "id")?;
        let expires_at: i64 = rows::get(&row, "expires_at")?;
        // Expired is final: the secret will never work again, so its sealed copy goes.
        sqlx::query("UPDATE tokens SET state = $1, sealed_secret = NULL WHERE id = $2")
            .arg(StoredState::Expired.as_str())
            .arg(&id)
            .run(conn)
            .await?;
        let event = NewAuditEvent {
            action: "token.expired".to_owned(),
            actor_id: None,
            actor_token_id: None,
            target_type: Some("token".to_owned()),
            target_id: Some(id.clone()),
            workspace_id: rows::get(&row, "workspace_id")?,
            subject_user_id: rows::get(&row, "owner_id")?,
            ip: None,
            details: serde_json::json!({ "expires_at": expires_at }),
        };
        audit(conn, now, &event).await?;
        bump(conn, ChangeKind::Token, &id).await?;
        ids.push(id);
    }
    Ok(ids)
}

/// Since when a token has been idle: the latest of its last use (never used: its
/// creation) and its last restore (portable SQL: no `GREATEST`/`MAX(a, b)`).
const IDLE_SINCE: &str = "CASE WHEN restored_at IS NOT NULL \
     AND restored_at > COALESCE(last_used_at, created_at) \
     THEN restored_at ELSE COALESCE(last_used_at, created_at) END";

/// Revokes the org's idle tokens, at most `limit` of them (see
/// [`crate::Store::revoke_idle_tokens`]). The conditional UPDATE decides, not the SELECT
/// before it: of nodes sweeping at once only one changes a row, and only the node that
/// changed it writes its audit event and change.
pub(crate) async fn revoke_idle_tokens<B: SqlBackend>(
    conn: &mut Conn<'_, B>,
    now: OffsetDateTime,
    org_id: &str,
    idle_days: u32,
    limit: u32,
) -> StoreResult<Vec<String>> {
    let idle_since = secs(now) - i64::from(idle_days) * 86_400;
    let due = sqlx::query(&format!(
        "SELECT id, name, token_type, owner_id, workspace_id, last_used_at FROM tokens \
         WHERE org_id = $1 AND state = 'active' AND (expires_at IS NULL OR expires_at > $2) \
         AND {IDLE_SINCE} <= $3 ORDER BY id LIMIT $4"
    ))
    .arg(org_id)
    .arg(secs(now))
    .arg(idle_since)
    .arg(i64::from(limit))
    .all(conn)
    .await?;
    let mut ids = Vec::with_capacity(due.len());
    for row in due {
        let id: String = rows::get(&row, "id")?;
        let changed = sqlx::query(&format!(
            "UPDATE tokens SET state = 'revoked' WHERE id = $1 AND state = 'active' \
             AND {IDLE_SINCE} <= $2"
        ))
        .arg(&id)
        .arg(idle_since)
        .run(conn)
        .await?;
        if changed != 1 {
            continue;
        }
        let last_used_at: Option<i64> = rows::get(&row, "last_used_at")?;
        let event = NewAuditEvent {
            action: "token.revoked".to_owned(),
            actor_id: None,
            actor_token_id: None,
            target_type: Some("token".to_owned()),
            target_id: Some(id.clone()),
            workspace_id: rows::get(&row, "workspace_id")?,
            subject_user_id: rows::get(&row, "owner_id")?,
            ip: None,
            details: serde_json::json!({
                "type": rows::get::<String>(&row, "token_type")?,
                "name": rows::get::<String>(&row, "name")?,
                "reason": "idle",
                "idle_revoke_days": idle_days,
                "last_used_at": last_used_at,
            }),
        };
        audit(conn, now, &event).await?;
        bump(conn, ChangeKind::Token, &id).await?;
        ids.push(id);
    }
    Ok(ids)
}

/// Deletes rotated-out secrets past their `not_after`.
pub(crate) async fn purge_rotated_secrets<B: SqlBackend>(
    conn: &mut Conn<'_, B>,
    now: OffsetDateTime,
) -> StoreResult<u64> {
    sqlx::query("DELETE FROM token_secrets WHERE not_after IS NOT NULL AND not_after <= $1")
        .arg(secs(now))
        .run(conn)
        .await
}

/// Deletes expired or idle sessions, old idempotent answers and change-feed rows older
/// than the kept window (see [`Store::purge_retired`](latchkey_store::Store::purge_retired)).
pub(crate) async fn purge_retired<B: SqlBackend>(
    conn: &mut Conn<'_, B>,
    retention: &Retention,
) -> StoreResult<Purged> {
    let sessions = sqlx::query("DELETE FROM sessions WHERE expires_at <= $1 OR last_seen_at <= $2")
        .arg(secs(retention.sessions_expired_at))
        .arg(secs(retention.sessions_idle_since))
        .run(conn)
        .await?;
    let idempotency = sqlx::query("DELETE FROM idempotency WHERE created_at < $1")
        .arg(secs(retention.idempotency_before))
        .run(conn)
        .await?;
    let keep = i64::try_from(retention.keep_changes.max(1)).unwrap_or(i64::MAX);
    let changes = sqlx::query(
        "DELETE FROM changes WHERE version <= (SELECT version FROM change_counter WHERE id = 1) - $1",
    )
    .arg(keep)
    .run(conn)
    .await?;
    let usage_days = sqlx::query("DELETE FROM token_usage_days WHERE day < $1")
        .arg(day_number(retention.usage_days_before))
        .run(conn)
        .await?;
    Ok(Purged {
        sessions,
        idempotency,
        changes,
        usage_days,
    })
}

// --- sessions -----------------------------------------------------------------------

/// Stores a session under its secret's hash.
pub(crate) async fn create_session<B: SqlBackend>(
    conn: &mut Conn<'_, B>,
    now: OffsetDateTime,
    session: &SessionRecord,
    hash: &[u8],
    event: &NewAuditEvent,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO sessions (id, hash, user_id, created_at, last_seen_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .arg(&session.id)
    .arg(hash)
    .arg(&session.user_id)
    .arg(secs(session.created_at))
    .arg(secs(session.last_seen_at))
    .arg(secs(session.expires_at))
    .run(conn)
    .await?;
    audit(conn, now, event).await
}

/// Moves a session's idle clock forward (never back); unknown sessions are ignored.
pub(crate) async fn touch_session<B: SqlBackend>(
    conn: &mut Conn<'_, B>,
    id: &str,
    now: OffsetDateTime,
) -> StoreResult<()> {
    sqlx::query("UPDATE sessions SET last_seen_at = $1 WHERE id = $2 AND last_seen_at < $3")
        .arg(secs(now))
        .arg(id)
        .arg(secs(now))
        .run(conn)
        .await?;
    Ok(())
}

/// Ends a session (idempotent).
pub(crate) async fn delete_session<B: SqlBackend>(
    conn: &mut Conn<'_, B>,
    now: OffsetDateTime,
    id: &str,
    event: Option<&NewAuditEvent>,
) -> StoreResult<()> {
    sqlx::query("DELETE FROM sessions WHERE id = $1")
        .arg(id)
        .run(conn)
        .await?;
    if let Some(event) = event {
        audit(conn, now, event).await?;
    }
    Ok(())
}

// --- signing keys -------------------------------------------------------------------

/// Adds a signing key unless one created after `not_before` exists.
pub(crate) async fn add_signing_key<B: SqlBackend>(
    conn: &mut Conn<'_, B>,
    key: &SigningKeyRecord,
    not_before: OffsetDateTime,
) -> StoreResult<bool> {
    let newer: i64 = sqlx::query("SELECT COUNT(*) FROM signing_keys WHERE created_at > $1")
        .arg(secs(not_before))
        .scalar(conn)
        .await?;
    if newer > 0 {
        return Ok(false);
    }
    sqlx::query(
        "INSERT INTO signing_keys (id, algorithm, public_key, private_key, created_at, \
         retire_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .arg(&key.id)
    .arg(&key.algorithm)
    .arg(&key.public_key)
    .arg(&key.private_key)
    .arg(secs(key.created_at))
    .arg(secs(key.retire_at))
    .arg(secs(key.expires_at))
    .run(conn)
    .await?;
    bump(conn, ChangeKind::SigningKeys, "").await?;
    Ok(true)
}
