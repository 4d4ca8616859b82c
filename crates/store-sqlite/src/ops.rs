//! The write operations, each run inside one `BEGIN IMMEDIATE` transaction on the single
//! writer connection (see [`crate::SqliteStore`]): every function here takes that
//! transaction's connection and leaves committing or rolling back to the caller.

use latchkey_core::policy::{Limits, check_restore, limits_for};
use latchkey_core::{
    InstanceSettings, MembershipRecord, NewAuditEvent, OrgRecord, ProjectRecord, SecretRecord,
    SessionRecord, StoredState, TokenRecord, TokenSettings, UserRecord, WorkspaceRecord, new_id,
};
use latchkey_proto::{OrgRole, TokenType, WorkspaceRole};
use latchkey_store::{
    BootstrapPlan, ChangeKind, IdempotencyRecord, LastUsed, Purged, Retention, SigningKeyRecord,
    StoreError, StoreResult, UserPatch,
};
use sqlx::{Row, SqliteConnection};
use time::{Duration, OffsetDateTime};

use crate::error::db;
use crate::rows;

/// The writer's connection inside a transaction.
pub(crate) type Conn = SqliteConnection;

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

/// Bumps the change counter and records one change under the new version.
pub(crate) async fn bump(conn: &mut Conn, kind: ChangeKind, id: &str) -> StoreResult<i64> {
    let version: i64 = sqlx::query_scalar(
        "UPDATE change_counter SET version = version + 1 WHERE id = 1 RETURNING version",
    )
    .fetch_one(&mut *conn)
    .await
    .map_err(db)?;
    sqlx::query("INSERT INTO changes (version, kind, entity_id) VALUES (?, ?, ?)")
        .bind(version)
        .bind(kind.as_str())
        .bind(id)
        .execute(&mut *conn)
        .await
        .map_err(db)?;
    Ok(version)
}

/// Writes an audit event (fresh id, `created_at = now`).
pub(crate) async fn audit(
    conn: &mut Conn,
    now: OffsetDateTime,
    event: &NewAuditEvent,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO audit_events (id, action, actor_id, actor_token_id, target_type, \
         target_id, workspace_id, subject_user_id, ip, details, created_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(new_id())
    .bind(&event.action)
    .bind(&event.actor_id)
    .bind(&event.actor_token_id)
    .bind(&event.target_type)
    .bind(&event.target_id)
    .bind(&event.workspace_id)
    .bind(&event.subject_user_id)
    .bind(&event.ip)
    .bind(json(&event.details)?)
    .bind(secs(now))
    .execute(&mut *conn)
    .await
    .map_err(db)?;
    Ok(())
}

/// One user, inside the transaction.
pub(crate) async fn load_user(conn: &mut Conn, id: &str) -> StoreResult<UserRecord> {
    let row = sqlx::query(&format!("{} WHERE id = ?", rows::USER_SELECT))
        .bind(id)
        .fetch_optional(&mut *conn)
        .await
        .map_err(db)?
        .ok_or(StoreError::NotFound("user"))?;
    rows::user(&row)
}

/// One token with its joined names, inside the transaction.
pub(crate) async fn load_token(conn: &mut Conn, id: &str) -> StoreResult<TokenRecord> {
    let row = sqlx::query(&format!("{} WHERE t.id = ?", rows::TOKEN_SELECT))
        .bind(id)
        .fetch_optional(&mut *conn)
        .await
        .map_err(db)?
        .ok_or(StoreError::NotFound("token"))?;
    rows::token(&row)
}

async fn load_workspace(conn: &mut Conn, id: &str) -> StoreResult<WorkspaceRecord> {
    let row = sqlx::query(&format!("{} WHERE id = ?", rows::WORKSPACE_SELECT))
        .bind(id)
        .fetch_optional(&mut *conn)
        .await
        .map_err(db)?
        .ok_or(StoreError::NotFound("workspace"))?;
    rows::workspace(&row)
}

async fn load_org(conn: &mut Conn, id: &str) -> StoreResult<OrgRecord> {
    let row = sqlx::query(&format!("{} WHERE id = ?", rows::ORG_SELECT))
        .bind(id)
        .fetch_optional(&mut *conn)
        .await
        .map_err(db)?
        .ok_or(StoreError::NotFound("org"))?;
    rows::org(&row)
}

async fn load_membership(
    conn: &mut Conn,
    workspace_id: &str,
    user_id: &str,
) -> StoreResult<MembershipRecord> {
    let row = sqlx::query(&format!(
        "{} WHERE m.workspace_id = ? AND m.user_id = ?",
        rows::MEMBERSHIP_SELECT
    ))
    .bind(workspace_id)
    .bind(user_id)
    .fetch_optional(&mut *conn)
    .await
    .map_err(db)?
    .ok_or(StoreError::NotFound("membership"))?;
    rows::membership(&row)
}

async fn exists(conn: &mut Conn, sql: &str, id: &str) -> StoreResult<bool> {
    let found: Option<i64> = sqlx::query_scalar(sql)
        .bind(id)
        .fetch_optional(&mut *conn)
        .await
        .map_err(db)?;
    Ok(found.is_some())
}

async fn require_user(conn: &mut Conn, id: &str) -> StoreResult<()> {
    if exists(conn, "SELECT 1 FROM users WHERE id = ?", id).await? {
        Ok(())
    } else {
        Err(StoreError::NotFound("user"))
    }
}

async fn require_workspace(conn: &mut Conn, id: &str) -> StoreResult<()> {
    if exists(conn, "SELECT 1 FROM workspaces WHERE id = ?", id).await? {
        Ok(())
    } else {
        Err(StoreError::NotFound("workspace"))
    }
}

async fn insert_org(conn: &mut Conn, now: OffsetDateTime, org: &OrgRecord) -> StoreResult<()> {
    let s = &org.token_settings;
    sqlx::query(
        "INSERT INTO orgs (id, name, enabled_types, personal_token_ttl_days, \
         max_tokens_per_user, token_creators, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(&org.id)
    .bind(&org.name)
    .bind(i64::from(s.enabled_types))
    .bind(s.personal_token_ttl_days.map(i64::from))
    .bind(s.max_tokens_per_user.map(i64::from))
    .bind(s.token_creators.as_str())
    .bind(secs(now))
    .execute(&mut *conn)
    .await
    .map_err(db)?;
    Ok(())
}

async fn upsert_instance(conn: &mut Conn, settings: &InstanceSettings) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO instance_settings (id, max_active_tokens, default_token_lifetime_days) \
         VALUES (1, ?, ?) ON CONFLICT (id) DO UPDATE SET \
         max_active_tokens = excluded.max_active_tokens, \
         default_token_lifetime_days = excluded.default_token_lifetime_days",
    )
    .bind(settings.max_active_tokens.map(i64::from))
    .bind(i64::from(settings.default_token_lifetime_days))
    .execute(&mut *conn)
    .await
    .map_err(db)?;
    Ok(())
}

async fn insert_user(conn: &mut Conn, user: &UserRecord) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO users (id, org_id, username, username_key, display_name, email, role, \
         active, password_hash, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(&user.id)
    .bind(&user.org_id)
    .bind(&user.username)
    .bind(username_key(&user.username))
    .bind(&user.display_name)
    .bind(&user.email)
    .bind(user.role.as_str())
    .bind(user.active)
    .bind(&user.password_hash)
    .bind(secs(user.created_at))
    .execute(&mut *conn)
    .await
    .map_err(db)?;
    Ok(())
}

async fn insert_workspace(conn: &mut Conn, workspace: &WorkspaceRecord) -> StoreResult<()> {
    sqlx::query("INSERT INTO workspaces (id, org_id, name, created_at) VALUES (?, ?, ?, ?)")
        .bind(&workspace.id)
        .bind(&workspace.org_id)
        .bind(&workspace.name)
        .bind(secs(workspace.created_at))
        .execute(&mut *conn)
        .await
        .map_err(db)?;
    Ok(())
}

async fn upsert_member(
    conn: &mut Conn,
    now: OffsetDateTime,
    workspace_id: &str,
    user_id: &str,
    role: WorkspaceRole,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO memberships (workspace_id, user_id, role, created_at) VALUES (?, ?, ?, ?) \
         ON CONFLICT (workspace_id, user_id) DO UPDATE SET role = excluded.role",
    )
    .bind(workspace_id)
    .bind(user_id)
    .bind(role.as_str())
    .bind(secs(now))
    .execute(&mut *conn)
    .await
    .map_err(db)?;
    Ok(())
}

async fn insert_token(conn: &mut Conn, token: &TokenRecord) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO tokens (id, org_id, name, token_type, hint, workspace_id, owner_id, \
         created_by, scopes, projects, environment, created_at, expires_at, last_used_at, \
         last_used_ip, state, leaked) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(&token.id)
    .bind(&token.org_id)
    .bind(&token.name)
    .bind(token.token_type.as_str())
    .bind(&token.hint)
    .bind(&token.workspace_id)
    .bind(&token.owner_id)
    .bind(&token.created_by)
    .bind(json(&token.scopes)?)
    .bind(json(&token.projects)?)
    .bind(&token.environment)
    .bind(secs(token.created_at))
    .bind(opt_secs(token.expires_at))
    .bind(opt_secs(token.last_used_at))
    .bind(&token.last_used_ip)
    .bind(token.state.as_str())
    .bind(token.leaked)
    .execute(&mut *conn)
    .await
    .map_err(db)?;
    Ok(())
}

/// Inserts a secret for `token_id` (the record's own `token_id` is not trusted).
async fn insert_secret(
    conn: &mut Conn,
    now: OffsetDateTime,
    token_id: &str,
    secret: &SecretRecord,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO token_secrets (hash, token_id, key_id, not_after, created_at) \
         VALUES (?, ?, ?, ?, ?)",
    )
    .bind(&secret.hash[..])
    .bind(token_id)
    .bind(&secret.key_id)
    .bind(opt_secs(secret.not_after))
    .bind(secs(now))
    .execute(&mut *conn)
    .await
    .map_err(db)?;
    Ok(())
}

/// Whether one more active token fits in `limits`. A token counts while its stored state
/// is `active` and it has not passed its expiry (the sweep may not have marked it yet).
async fn check_limits(conn: &mut Conn, now: OffsetDateTime, limits: &Limits) -> StoreResult<()> {
    if let Some(max) = limits.max_active_tokens {
        let count: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM tokens WHERE state = 'active' \
             AND (expires_at IS NULL OR expires_at > ?)",
        )
        .bind(secs(now))
        .fetch_one(&mut *conn)
        .await
        .map_err(db)?;
        if count >= i64::from(max) {
            return Err(StoreError::LimitExceeded {
                limit: "max_active_tokens",
                value: max,
            });
        }
    }
    if let Some((owner, max)) = &limits.max_tokens_per_user {
        let count: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM tokens WHERE owner_id = ? AND state = 'active' \
             AND token_type IN ('personal', 'legacy') \
             AND (expires_at IS NULL OR expires_at > ?)",
        )
        .bind(owner)
        .bind(secs(now))
        .fetch_one(&mut *conn)
        .await
        .map_err(db)?;
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
async fn stored_limits(conn: &mut Conn, token: &TokenRecord) -> StoreResult<Limits> {
    let settings = match load_org(conn, &token.org_id).await {
        Ok(org) => org.token_settings,
        Err(StoreError::NotFound(_)) => TokenSettings {
            max_tokens_per_user: None,
            ..TokenSettings::default()
        },
        Err(e) => return Err(e),
    };
    let row = sqlx::query(
        "SELECT max_active_tokens, default_token_lifetime_days FROM instance_settings \
         WHERE id = 1",
    )
    .fetch_optional(&mut *conn)
    .await
    .map_err(db)?;
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
pub(crate) async fn ensure_hash_key(conn: &mut Conn, key_id: &str) -> StoreResult<()> {
    let stored: Option<String> =
        sqlx::query_scalar("SELECT value FROM meta WHERE key = 'hash_key_id'")
            .fetch_optional(&mut *conn)
            .await
            .map_err(db)?;
    match stored {
        Some(stored) if stored == key_id => Ok(()),
        Some(stored) => Err(StoreError::HashKeyMismatch { stored }),
        None => {
            sqlx::query("INSERT INTO meta (key, value) VALUES ('hash_key_id', ?)")
                .bind(key_id)
                .execute(&mut *conn)
                .await
                .map_err(db)?;
            Ok(())
        }
    }
}

/// The first start, guarded by the unique `bootstrap` row.
pub(crate) async fn bootstrap(
    conn: &mut Conn,
    now: OffsetDateTime,
    plan: &BootstrapPlan,
) -> StoreResult<bool> {
    let claimed = sqlx::query(
        "INSERT INTO bootstrap (id, done_at) VALUES (1, ?) ON CONFLICT (id) DO NOTHING",
    )
    .bind(secs(now))
    .execute(&mut *conn)
    .await
    .map_err(db)?
    .rows_affected();
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
    insert_token(conn, &plan.token).await?;
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
pub(crate) async fn update_token_settings(
    conn: &mut Conn,
    now: OffsetDateTime,
    org_id: &str,
    settings: &TokenSettings,
    event: &NewAuditEvent,
) -> StoreResult<OrgRecord> {
    let updated = sqlx::query(
        "UPDATE orgs SET enabled_types = ?, personal_token_ttl_days = ?, \
         max_tokens_per_user = ?, token_creators = ? WHERE id = ?",
    )
    .bind(i64::from(settings.enabled_types))
    .bind(settings.personal_token_ttl_days.map(i64::from))
    .bind(settings.max_tokens_per_user.map(i64::from))
    .bind(settings.token_creators.as_str())
    .bind(org_id)
    .execute(&mut *conn)
    .await
    .map_err(db)?
    .rows_affected();
    if updated == 0 {
        return Err(StoreError::NotFound("org"));
    }
    audit(conn, now, event).await?;
    bump(conn, ChangeKind::Org, org_id).await?;
    load_org(conn, org_id).await
}

/// Replaces the instance settings.
pub(crate) async fn update_instance_settings(
    conn: &mut Conn,
    now: OffsetDateTime,
    settings: &InstanceSettings,
    event: &NewAuditEvent,
) -> StoreResult<InstanceSettings> {
    upsert_instance(conn, settings).await?;
    audit(conn, now, event).await?;
    bump(conn, ChangeKind::Instance, "").await?;
    let row = sqlx::query(
        "SELECT max_active_tokens, default_token_lifetime_days FROM instance_settings \
         WHERE id = 1",
    )
    .fetch_one(&mut *conn)
    .await
    .map_err(db)?;
    rows::instance(&row)
}

// --- users --------------------------------------------------------------------------

/// Creates a user.
pub(crate) async fn create_user(
    conn: &mut Conn,
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
pub(crate) async fn update_user(
    conn: &mut Conn,
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
        "UPDATE users SET active = ?, role = ?, display_name = ?, email = ?, \
         password_hash = ? WHERE id = ?",
    )
    .bind(after.active)
    .bind(after.role.as_str())
    .bind(&after.display_name)
    .bind(&after.email)
    .bind(&after.password_hash)
    .bind(id)
    .execute(&mut *conn)
    .await
    .map_err(db)?;
    if patch.active == Some(false) || patch.password_hash.is_some() {
        sqlx::query("DELETE FROM sessions WHERE user_id = ?")
            .bind(id)
            .execute(&mut *conn)
            .await
            .map_err(db)?;
    }
    let was_owner = before.active && before.role == OrgRole::Owner;
    let is_owner = after.active && after.role == OrgRole::Owner;
    if was_owner && !is_owner {
        let owners: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM users WHERE org_id = ? AND role = ? AND active = ?",
        )
        .bind(&before.org_id)
        .bind(OrgRole::Owner.as_str())
        .bind(true)
        .fetch_one(&mut *conn)
        .await
        .map_err(db)?;
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
pub(crate) async fn create_workspace(
    conn: &mut Conn,
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
pub(crate) async fn put_member(
    conn: &mut Conn,
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
pub(crate) async fn remove_member(
    conn: &mut Conn,
    now: OffsetDateTime,
    workspace_id: &str,
    user_id: &str,
    event: &NewAuditEvent,
) -> StoreResult<()> {
    let removed = sqlx::query("DELETE FROM memberships WHERE workspace_id = ? AND user_id = ?")
        .bind(workspace_id)
        .bind(user_id)
        .execute(&mut *conn)
        .await
        .map_err(db)?
        .rows_affected();
    if removed == 0 {
        return Err(StoreError::NotFound("membership"));
    }
    audit(conn, now, event).await?;
    bump(conn, ChangeKind::User, user_id).await?;
    Ok(())
}

// --- projects -----------------------------------------------------------------------

/// Creates a project.
pub(crate) async fn create_project(
    conn: &mut Conn,
    now: OffsetDateTime,
    project: &ProjectRecord,
    event: &NewAuditEvent,
) -> StoreResult<ProjectRecord> {
    require_workspace(conn, &project.workspace_id).await?;
    sqlx::query(
        "INSERT INTO projects (id, workspace_id, name, description, created_by, created_at) \
         VALUES (?, ?, ?, ?, ?, ?)",
    )
    .bind(&project.id)
    .bind(&project.workspace_id)
    .bind(&project.name)
    .bind(&project.description)
    .bind(&project.created_by)
    .bind(secs(project.created_at))
    .execute(&mut *conn)
    .await
    .map_err(db)?;
    audit(conn, now, event).await?;
    let row = sqlx::query(&format!("{} WHERE id = ?", rows::PROJECT_SELECT))
        .bind(&project.id)
        .fetch_one(&mut *conn)
        .await
        .map_err(db)?;
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
pub(crate) async fn delete_project(
    conn: &mut Conn,
    now: OffsetDateTime,
    id: &str,
    event: &NewAuditEvent,
) -> StoreResult<Vec<String>> {
    let workspace_id: Option<String> =
        sqlx::query_scalar("SELECT workspace_id FROM projects WHERE id = ?")
            .bind(id)
            .fetch_optional(&mut *conn)
            .await
            .map_err(db)?;
    if workspace_id.is_none() {
        return Err(StoreError::NotFound("project"));
    }
    // Prefilter on the JSON text, then decide on the parsed list.
    let pattern = format!("%{}%", like_escape(&json(id)?));
    let bound = sqlx::query(
        "SELECT id, projects, owner_id, workspace_id FROM tokens \
         WHERE projects LIKE ? ESCAPE '\\' ORDER BY id",
    )
    .bind(pattern)
    .fetch_all(&mut *conn)
    .await
    .map_err(db)?;
    let mut deleted = Vec::new();
    for row in bound {
        let token_id: String = row.try_get("id").map_err(db)?;
        let projects: String = row.try_get("projects").map_err(db)?;
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
            workspace_id: row.try_get("workspace_id").map_err(db)?,
            subject_user_id: row.try_get("owner_id").map_err(db)?,
            ip: event.ip.clone(),
            details: serde_json::json!({ "project_deleted": id }),
        };
        if rest.is_empty() {
            delete_token_rows(conn, &token_id).await?;
            deleted.push(token_id.clone());
        } else {
            sqlx::query("UPDATE tokens SET projects = ? WHERE id = ?")
                .bind(json(&rest)?)
                .bind(&token_id)
                .execute(&mut *conn)
                .await
                .map_err(db)?;
        }
        audit(conn, now, &token_event).await?;
        bump(conn, ChangeKind::Token, &token_id).await?;
    }
    sqlx::query("DELETE FROM projects WHERE id = ?")
        .bind(id)
        .execute(&mut *conn)
        .await
        .map_err(db)?;
    audit(conn, now, event).await?;
    Ok(deleted)
}

// --- tokens -------------------------------------------------------------------------

/// Inserts a token and its secret within the limits; one legacy token per user.
pub(crate) async fn create_token(
    conn: &mut Conn,
    now: OffsetDateTime,
    token: &TokenRecord,
    secret: &SecretRecord,
    limits: &Limits,
    event: &NewAuditEvent,
) -> StoreResult<TokenRecord> {
    if token.token_type == TokenType::Legacy
        && let Some(owner) = &token.owner_id
    {
        let existing: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM tokens WHERE owner_id = ? AND token_type = 'legacy'",
        )
        .bind(owner)
        .fetch_one(&mut *conn)
        .await
        .map_err(db)?;
        if existing > 0 {
            return Err(StoreError::Conflict(LEGACY_TAKEN.to_owned()));
        }
    }
    if token.state == StoredState::Active {
        check_limits(conn, now, limits).await?;
    }
    insert_token(conn, token).await?;
    insert_secret(conn, now, &token.id, secret).await?;
    audit(conn, now, event).await?;
    bump(conn, ChangeKind::Token, &token.id).await?;
    load_token(conn, &token.id).await
}

/// Inserts many tokens with their secrets at once (bulk import): no limit checks, one
/// audit event and one change for the whole batch.
pub(crate) async fn import_tokens(
    conn: &mut Conn,
    now: OffsetDateTime,
    tokens: &[(TokenRecord, SecretRecord)],
    event: &NewAuditEvent,
) -> StoreResult<()> {
    for (token, secret) in tokens {
        insert_token(conn, token).await?;
        insert_secret(conn, now, &token.id, secret).await?;
    }
    audit(conn, now, event).await?;
    // One change for the batch: readers drop their negative caches (the id names no token).
    bump(conn, ChangeKind::Token, "").await?;
    Ok(())
}

/// Revokes (idempotently); `leaked` is sticky.
pub(crate) async fn revoke_token(
    conn: &mut Conn,
    now: OffsetDateTime,
    id: &str,
    leaked: bool,
    event: &NewAuditEvent,
) -> StoreResult<TokenRecord> {
    let token = load_token(conn, id).await?;
    // `expired` is final: a revoke leaves it (but still records a leak report).
    let state = match token.state {
        StoredState::Active | StoredState::Revoked => StoredState::Revoked,
        StoredState::Expired => StoredState::Expired,
    };
    sqlx::query("UPDATE tokens SET state = ?, leaked = ? WHERE id = ?")
        .bind(state.as_str())
        .bind(token.leaked || leaked)
        .bind(id)
        .execute(&mut *conn)
        .await
        .map_err(db)?;
    audit(conn, now, event).await?;
    bump(conn, ChangeKind::Token, id).await?;
    load_token(conn, id).await
}

/// Re-approves a revoked token within the limits.
pub(crate) async fn restore_token(
    conn: &mut Conn,
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
    sqlx::query("UPDATE tokens SET state = ? WHERE id = ?")
        .bind(StoredState::Active.as_str())
        .bind(id)
        .execute(&mut *conn)
        .await
        .map_err(db)?;
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
pub(crate) async fn rotate_token(
    conn: &mut Conn,
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
                "UPDATE token_secrets SET not_after = ? WHERE token_id = ? \
                 AND (not_after IS NULL OR not_after > ?)",
            )
            .bind(secs(not_after))
            .bind(id)
            .bind(secs(not_after))
            .execute(&mut *conn)
            .await
            .map_err(db)?;
        }
        None => {
            sqlx::query("DELETE FROM token_secrets WHERE token_id = ?")
                .bind(id)
                .execute(&mut *conn)
                .await
                .map_err(db)?;
        }
    }
    insert_secret(conn, now, id, new_secret).await?;
    let expires_at = expires_at.unwrap_or(token.expires_at);
    sqlx::query(
        "UPDATE tokens SET state = ?, leaked = ?, expires_at = ?, hint = COALESCE(?, hint) \
         WHERE id = ?",
    )
    .bind(state.as_str())
    .bind(false)
    .bind(opt_secs(expires_at))
    .bind(new_secret.hint.as_deref())
    .bind(id)
    .execute(&mut *conn)
    .await
    .map_err(db)?;
    if let Some(record) = idempotency {
        sqlx::query("DELETE FROM idempotency WHERE created_at < ?")
            .bind(secs(record.created_at - IDEMPOTENCY_TTL))
            .execute(&mut *conn)
            .await
            .map_err(db)?;
        sqlx::query(
            "INSERT INTO idempotency (key, request_hash, response, created_at) \
             VALUES (?, ?, ?, ?)",
        )
        .bind(&record.key)
        .bind(&record.request_hash)
        .bind(&record.response)
        .bind(secs(record.created_at))
        .execute(&mut *conn)
        .await
        .map_err(db)?;
    }
    audit(conn, now, event).await?;
    bump(conn, ChangeKind::Token, id).await?;
    load_token(conn, id).await
}

async fn delete_token_rows(conn: &mut Conn, id: &str) -> StoreResult<u64> {
    sqlx::query("DELETE FROM token_secrets WHERE token_id = ?")
        .bind(id)
        .execute(&mut *conn)
        .await
        .map_err(db)?;
    Ok(sqlx::query("DELETE FROM tokens WHERE id = ?")
        .bind(id)
        .execute(&mut *conn)
        .await
        .map_err(db)?
        .rows_affected())
}

/// Deletes a token and its secrets.
pub(crate) async fn delete_token(
    conn: &mut Conn,
    now: OffsetDateTime,
    id: &str,
    event: &NewAuditEvent,
) -> StoreResult<()> {
    if delete_token_rows(conn, id).await? == 0 {
        return Err(StoreError::NotFound("token"));
    }
    audit(conn, now, event).await?;
    bump(conn, ChangeKind::Token, id).await?;
    Ok(())
}

/// Merges last-used observations: the latest time wins, and the IP goes with it.
pub(crate) async fn record_last_used(conn: &mut Conn, batch: &[LastUsed]) -> StoreResult<()> {
    // One statement per chunk rather than one per token: every statement is a round trip
    // to the connection's thread, and under traffic spread over many tokens a flush holds
    // tens of thousands of them.
    let rows = latchkey_store::latest_use_per_token(batch);
    for chunk in rows.chunks(LAST_USED_CHUNK) {
        let json = serde_json::to_string(chunk)
            .map_err(|e| StoreError::Internal(format!("encoding last-used batch: {e}")))?;
        sqlx::query(
            "UPDATE tokens SET last_used_at = u.at, last_used_ip = u.ip \
             FROM (SELECT json_extract(value, '$[0]') AS id, \
                          json_extract(value, '$[1]') AS at, \
                          json_extract(value, '$[2]') AS ip \
                   FROM json_each(?)) AS u \
             WHERE tokens.id = u.id \
             AND (tokens.last_used_at IS NULL OR tokens.last_used_at < u.at)",
        )
        .bind(json)
        .execute(&mut *conn)
        .await
        .map_err(db)?;
    }
    Ok(())
}

/// Last-used rows per `UPDATE` statement.
const LAST_USED_CHUNK: usize = 5_000;

/// Marks active tokens past their expiry as `expired`, one `token.expired` event each.
pub(crate) async fn expire_tokens(
    conn: &mut Conn,
    now: OffsetDateTime,
) -> StoreResult<Vec<String>> {
    let due = sqlx::query(
        "SELECT id, owner_id, workspace_id, expires_at FROM tokens WHERE state = 'active' \
         AND expires_at IS NOT NULL AND expires_at <= ? ORDER BY id",
    )
    .bind(secs(now))
    .fetch_all(&mut *conn)
    .await
    .map_err(db)?;
    let mut ids = Vec::with_capacity(due.len());
    for row in due {
        let id: String = row.try_get("id").map_err(db)?;
        let expires_at: i64 = row.try_get("expires_at").map_err(db)?;
        sqlx::query("UPDATE tokens SET state = ? WHERE id = ?")
            .bind(StoredState::Expired.as_str())
            .bind(&id)
            .execute(&mut *conn)
            .await
            .map_err(db)?;
        let event = NewAuditEvent {
            action: "token.expired".to_owned(),
            actor_id: None,
            actor_token_id: None,
            target_type: Some("token".to_owned()),
            target_id: Some(id.clone()),
            workspace_id: row.try_get("workspace_id").map_err(db)?,
            subject_user_id: row.try_get("owner_id").map_err(db)?,
            ip: None,
            details: serde_json::json!({ "expires_at": expires_at }),
        };
        audit(conn, now, &event).await?;
        bump(conn, ChangeKind::Token, &id).await?;
        ids.push(id);
    }
    Ok(ids)
}

/// Deletes rotated-out secrets past their `not_after`.
pub(crate) async fn purge_rotated_secrets(
    conn: &mut Conn,
    now: OffsetDateTime,
) -> StoreResult<u64> {
    Ok(
        sqlx::query("DELETE FROM token_secrets WHERE not_after IS NOT NULL AND not_after <= ?")
            .bind(secs(now))
            .execute(&mut *conn)
            .await
            .map_err(db)?
            .rows_affected(),
    )
}

/// Deletes expired or idle sessions, old idempotent answers and change-feed rows older
/// than the kept window (see [`Store::purge_retired`](latchkey_store::Store::purge_retired)).
pub(crate) async fn purge_retired(conn: &mut Conn, retention: &Retention) -> StoreResult<Purged> {
    let sessions = sqlx::query("DELETE FROM sessions WHERE expires_at <= ? OR last_seen_at <= ?")
        .bind(secs(retention.sessions_expired_at))
        .bind(secs(retention.sessions_idle_since))
        .execute(&mut *conn)
        .await
        .map_err(db)?
        .rows_affected();
    let idempotency = sqlx::query("DELETE FROM idempotency WHERE created_at < ?")
        .bind(secs(retention.idempotency_before))
        .execute(&mut *conn)
        .await
        .map_err(db)?
        .rows_affected();
    let keep = i64::try_from(retention.keep_changes.max(1)).unwrap_or(i64::MAX);
    let changes = sqlx::query(
        "DELETE FROM changes WHERE version <= (SELECT version FROM change_counter WHERE id = 1) - ?",
    )
    .bind(keep)
    .execute(&mut *conn)
    .await
    .map_err(db)?
    .rows_affected();
    Ok(Purged {
        sessions,
        idempotency,
        changes,
    })
}

// --- sessions -----------------------------------------------------------------------

/// Stores a session under its secret's hash.
pub(crate) async fn create_session(
    conn: &mut Conn,
    now: OffsetDateTime,
    session: &SessionRecord,
    hash: &[u8],
    event: &NewAuditEvent,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO sessions (id, hash, user_id, created_at, last_seen_at, expires_at) \
         VALUES (?, ?, ?, ?, ?, ?)",
    )
    .bind(&session.id)
    .bind(hash)
    .bind(&session.user_id)
    .bind(secs(session.created_at))
    .bind(secs(session.last_seen_at))
    .bind(secs(session.expires_at))
    .execute(&mut *conn)
    .await
    .map_err(db)?;
    audit(conn, now, event).await
}

/// Moves a session's idle clock forward (never back); unknown sessions are ignored.
pub(crate) async fn touch_session(
    conn: &mut Conn,
    id: &str,
    now: OffsetDateTime,
) -> StoreResult<()> {
    sqlx::query("UPDATE sessions SET last_seen_at = ? WHERE id = ? AND last_seen_at < ?")
        .bind(secs(now))
        .bind(id)
        .bind(secs(now))
        .execute(&mut *conn)
        .await
        .map_err(db)?;
    Ok(())
}

/// Ends a session (idempotent).
pub(crate) async fn delete_session(
    conn: &mut Conn,
    now: OffsetDateTime,
    id: &str,
    event: Option<&NewAuditEvent>,
) -> StoreResult<()> {
    sqlx::query("DELETE FROM sessions WHERE id = ?")
        .bind(id)
        .execute(&mut *conn)
        .await
        .map_err(db)?;
    if let Some(event) = event {
        audit(conn, now, event).await?;
    }
    Ok(())
}

// --- signing keys -------------------------------------------------------------------

/// Adds a signing key unless one created after `not_before` exists.
pub(crate) async fn add_signing_key(
    conn: &mut Conn,
    key: &SigningKeyRecord,
    not_before: OffsetDateTime,
) -> StoreResult<bool> {
    let newer: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM signing_keys WHERE created_at > ?")
        .bind(secs(not_before))
        .fetch_one(&mut *conn)
        .await
        .map_err(db)?;
    if newer > 0 {
        return Ok(false);
    }
    sqlx::query(
        "INSERT INTO signing_keys (id, algorithm, public_key, private_key, created_at, \
         retire_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(&key.id)
    .bind(&key.algorithm)
    .bind(&key.public_key)
    .bind(&key.private_key)
    .bind(secs(key.created_at))
    .bind(secs(key.retire_at))
    .bind(secs(key.expires_at))
    .execute(&mut *conn)
    .await
    .map_err(db)?;
    bump(conn, ChangeKind::SigningKeys, "").await?;
    Ok(true)
}
