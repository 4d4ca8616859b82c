//! The first start: organization, "Workspace 1", the administrator and one token, exactly
//! once (the store guards it with a unique row).

use latchkey_core::model::{SecretRecord, StoredState, TokenRecord};
use latchkey_core::policy::user_scopes;
use latchkey_core::token::{self, SecretKind};
use latchkey_core::{
    InstanceSettings, NewAuditEvent, OrgRecord, TokenSettings, UserRecord, WorkspaceRecord,
};
use latchkey_proto::{OrgRole, TokenType, WorkspaceRole};
use latchkey_store::BootstrapPlan;
use serde_json::json;

use crate::StartError;
use crate::password::{generate_password, hash_password};
use crate::state::AppState;

/// What the first start may be given (from `LATCHKEY_ADMIN_*`).
#[derive(Clone, Default)]
pub struct BootstrapOptions {
    /// Administrator username (default `admin`).
    pub admin_username: Option<String>,
    /// Preset administrator password (never echoed).
    pub admin_password: Option<String>,
    /// Preset initial token (must be a well-formed personal token).
    pub admin_token: Option<String>,
}

impl std::fmt::Debug for BootstrapOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BootstrapOptions")
            .field("admin_username", &self.admin_username)
            .field(
                "admin_password",
                &self.admin_password.as_ref().map(|_| "<preset>"),
            )
            .field(
                "admin_token",
                &self.admin_token.as_ref().map(|_| "<preset>"),
            )
            .finish()
    }
}

/// What the first start made, to print once.
pub struct Bootstrapped {
    /// The administrator's username.
    pub admin_username: String,
    /// The generated password (`None` when preset).
    pub generated_password: Option<String>,
    /// The initial token (`None` when preset).
    pub generated_token: Option<String>,
    /// The initial token's workspace.
    pub workspace_name: String,
}

/// Runs the first start unless it already happened; returns what to print.
pub async fn bootstrap(
    state: &AppState,
    opts: &BootstrapOptions,
) -> Result<Option<Bootstrapped>, StartError> {
    if state.store.get_org().await.is_ok() {
        return Ok(None);
    }
    let username = opts
        .admin_username
        .clone()
        .unwrap_or_else(|| "admin".into());
    if username.is_empty() || username.len() > 64 {
        return Err(StartError::Invalid(
            "LATCHKEY_ADMIN_USERNAME must be 1-64 characters".into(),
        ));
    }
    let (password, generated_password) = match &opts.admin_password {
        Some(p) if p.chars().count() >= 8 => (p.clone(), None),
        Some(_) => {
            return Err(StartError::Invalid(
                "LATCHKEY_ADMIN_PASSWORD must be at least 8 characters".into(),
            ));
        }
        None => {
            let p = generate_password();
            (p.clone(), Some(p))
        }
    };
    let (secret, generated_token) = match &opts.admin_token {
        Some(t) => match token::parse(t) {
            Ok(SecretKind::Token(TokenType::Personal)) => (t.clone(), None),
            _ => {
                return Err(StartError::Invalid(
                    "LATCHKEY_ADMIN_TOKEN must be a well-formed personal token (lkp_ + 32 base62 + 6 checksum characters)".into(),
                ));
            }
        },
        None => {
            let t = token::generate(SecretKind::Token(TokenType::Personal));
            (t.clone(), Some(t))
        }
    };
    let now = state.clock.now();
    let password_hash = hash_password(&state.config.passwords, password)
        .await
        .map_err(|e| StartError::Invalid(e.to_string()))?;
    let instance = InstanceSettings::default();
    let org = OrgRecord {
        id: latchkey_core::new_id(),
        name: "Default organization".into(),
        token_settings: TokenSettings::default(),
    };
    let workspace = WorkspaceRecord {
        id: latchkey_core::new_id(),
        org_id: org.id.clone(),
        name: "Workspace 1".into(),
        created_at: now,
    };
    let admin = UserRecord {
        id: latchkey_core::new_id(),
        org_id: org.id.clone(),
        username: username.clone(),
        display_name: Some("Administrator".into()),
        email: None,
        role: OrgRole::Owner,
        kind: latchkey_proto::UserKind::Human,
        active: true,
        password_hash: Some(password_hash),
        created_at: now,
    };
    let token_record = TokenRecord {
        id: latchkey_core::new_id(),
        org_id: org.id.clone(),
        name: "Initial admin token".into(),
        token_type: TokenType::Personal,
        hint: token::hint(&secret),
        workspace_id: Some(workspace.id.clone()),
        workspace_name: Some(workspace.name.clone()),
        owner_id: Some(admin.id.clone()),
        owner_username: Some(admin.username.clone()),
        created_by: Some(admin.id.clone()),
        scopes: user_scopes(OrgRole::Owner, Some(WorkspaceRole::Admin)).to_vec(),
        projects: Vec::new(),
        environment: None,
        created_at: now,
        expires_at: Some(
            now + time::Duration::days(i64::from(instance.default_token_lifetime_days)),
        ),
        last_used_at: None,
        last_used_ip: None,
        state: StoredState::Active,
        leaked: false,
        policy: Default::default(),
        uses: None,
        recoverable: false,
    };
    let secret_record = SecretRecord {
        token_id: token_record.id.clone(),
        hash: state.hash_key.hash(&secret),
        key_id: state.hash_key.id().to_owned(),
        not_after: None,
        hint: None,
        sealed: None,
    };
    let event = NewAuditEvent {
        action: "instance.bootstrapped".into(),
        actor_id: None,
        target_type: Some("user".into()),
        target_id: Some(admin.id.clone()),
        workspace_id: Some(workspace.id.clone()),
        subject_user_id: Some(admin.id.clone()),
        details: json!({"admin_username": admin.username, "token_id": token_record.id}),
        ..NewAuditEvent::default()
    };
    let plan = BootstrapPlan {
        org,
        workspace: workspace.clone(),
        admin,
        admin_workspace_role: WorkspaceRole::Admin,
        token: token_record,
        secret: secret_record,
        instance,
        event,
    };
    let done = state.store.bootstrap(now, plan).await?;
    state.verifier.refresh_org().await?;
    Ok(done.then_some(Bootstrapped {
        admin_username: username,
        generated_password,
        generated_token,
        workspace_name: workspace.name,
    }))
}
