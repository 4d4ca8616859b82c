//! Console sessions: sign in (throttled, one answer for every failure) and sign out.

use latchkey_core::token::{self, SecretKind};
use latchkey_core::{NewAuditEvent, SessionRecord};
use latchkey_proto::User;
use serde_json::json;

use crate::auth::{Credential, Principal};
use crate::error::ApiError;
use crate::extract::ClientIp;
use crate::password::verify_password;
use crate::state::AppState;

/// A successful sign-in: the user and the session secret for the cookie.
pub struct SignedIn {
    /// The user.
    pub user: User,
    /// The cookie value (`lks_…`); only its keyed hash is stored.
    pub secret: String,
    /// Cookie lifetime in seconds.
    pub max_age_secs: u64,
}

/// How long an address an account signed in from passes that account's throttle.
const KNOWN_SIGN_IN_SECS: i64 = 30 * 86_400;
/// Most (account, address) pairs remembered per node.
const MAX_KNOWN_SIGN_INS: usize = 100_000;

impl AppState {
    /// The per-account throttle key: a keyed hash of the lower-cased username, so that
    /// neither memory nor the audit log holds what was typed.
    fn account_key(&self, username: &str) -> latchkey_core::SecretHash {
        let folded = username.to_lowercase();
        self.hash_key
            .hash_with_crate(format!("sign-in account\0{folded}").as_bytes())
    }

    /// Checks a username and password and opens a session.
    pub async fn sign_in(
        &self,
        username: &str,
        password: &str,
        ip: ClientIp,
    ) -> Result<SignedIn, ApiError> {
        let now = self.clock.now();
        let secs = now.unix_timestamp();
        let ip_key = ip.to_text().unwrap_or_default();
        let account = self.account_key(username);
        if let Some(retry_after) = self.sign_in_throttle.blocked(ip.0, secs) {
            return Err(ApiError::RateLimited { retry_after });
        }
        // Many failures for one account from anywhere slow that account down, but not from
        // an address it signed in from lately: an attacker cannot lock the user out.
        let known_here = self
            .known_sign_ins
            .get(&(account, ip.0))
            .is_some_and(|at| secs - *at < KNOWN_SIGN_IN_SECS);
        if !known_here
            && let Some(retry_after) = self.sign_in_account_throttle.blocked(account, secs)
        {
            tracing::info!(ip = %ip_key, "sign-in refused: too many failures for this account");
            return Err(ApiError::RateLimited { retry_after });
        }
        // Counted before the (slow) password check so that a burst cannot overrun the
        // limits; a success takes its own attempt back and clears nothing else.
        self.sign_in_throttle.record(ip.0, secs);
        self.sign_in_account_throttle.record(account, secs);
        let user = self.store.find_user_by_username(username).await?;
        let hash = match user.as_ref().and_then(|u| u.password_hash.clone()) {
            Some(hash) => hash,
            None => self.dummy_password_hash().await?,
        };
        let password_ok = verify_password(hash, password.to_owned()).await;
        let user = match user {
            // A service account never signs in (it has no password; the kind is checked
            // too, so an operator-set hash cannot open one).
            Some(u)
                if password_ok
                    && u.active
                    && u.password_hash.is_some()
                    && u.kind == latchkey_proto::UserKind::Human =>
            {
                u
            }
            other => {
                // What was typed is not kept: it may be a password typed in the wrong
                // box. A known account is named by its record; an unknown name only by a
                // keyed hash prefix (enough to see one name tried many times).
                let details = match &other {
                    Some(u) => json!({"username": u.username}),
                    None => json!({"unknown_username_hash": hex::encode(&account[..8])}),
                };
                let event = NewAuditEvent {
                    action: "session.sign_in_failed".into(),
                    actor_id: other.as_ref().map(|u| u.id.clone()),
                    subject_user_id: other.as_ref().map(|u| u.id.clone()),
                    ip: ip.to_text(),
                    details,
                    ..NewAuditEvent::default()
                };
                self.store.append_audit(now, event).await?;
                tracing::info!(ip = %ip_key, "sign-in failed");
                return Err(ApiError::Unauthenticated {
                    message: "invalid username or password".into(),
                    presented: false,
                    reason: None,
                });
            }
        };
        let secret = token::generate(SecretKind::Session);
        let max_age_secs = self.config.sessions.max_lifetime_secs;
        let session = SessionRecord {
            id: latchkey_core::new_id(),
            user_id: user.id.clone(),
            created_at: now,
            last_seen_at: now,
            expires_at: now
                + time::Duration::seconds(i64::try_from(max_age_secs).unwrap_or(604_800)),
        };
        let event = NewAuditEvent {
            action: "session.signed_in".into(),
            actor_id: Some(user.id.clone()),
            subject_user_id: Some(user.id.clone()),
            target_type: Some("session".into()),
            target_id: Some(session.id.clone()),
            ip: ip.to_text(),
            details: json!({}),
            ..NewAuditEvent::default()
        };
        self.store
            .create_session(now, session, self.hash_key.hash(&secret), event)
            .await?;
        self.sign_in_throttle.forgive(ip.0);
        self.sign_in_account_throttle.forgive(account);
        if self.known_sign_ins.len() >= MAX_KNOWN_SIGN_INS {
            self.known_sign_ins
                .retain(|_, at| secs - *at < KNOWN_SIGN_IN_SECS);
            if self.known_sign_ins.len() >= MAX_KNOWN_SIGN_INS {
                self.known_sign_ins.clear();
            }
        }
        self.known_sign_ins.insert((account, ip.0), secs);
        Ok(SignedIn {
            user: user.to_proto(),
            secret,
            max_age_secs,
        })
    }

    /// Ends the caller's session for good.
    pub async fn sign_out(&self, p: &Principal) -> Result<(), ApiError> {
        let Credential::Session { session_id } = &p.credential else {
            return Err(ApiError::BadRequest(
                "sign-out ends a console session; revoke a token to end it".into(),
            ));
        };
        let mut event = p.event("session.signed_out");
        event.target_type = Some("session".into());
        event.target_id = Some(session_id.clone());
        event.subject_user_id = p.user_id().map(str::to_owned);
        self.store
            .delete_session(self.clock.now(), session_id, Some(event))
            .await?;
        Ok(())
    }
}
