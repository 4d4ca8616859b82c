//! A token's own page, under the list it belongs to (`/workspaces/{ws}/settings/tokens/{id}`,
//! `/account/tokens/{id}`, `/api-access/tokens/{id}`; the row's name links to it): every fact
//! the row shows, and its projects, environment and last client IP, with the same actions,
//! which return to the list; and its verify-time policy with the form that edits it
//! ([`super::policy`]).

use askama::Template;
use axum::response::Response;
use latchkey_store::PageRequest;

use super::actions::TokenTarget;
use super::policy::{PolicyFacts, PolicyFields};
use super::{TokenPlace, TokenRow, token_row};
use crate::console::extract::{SignedIn, Visit};
use crate::console::pages::org_admins_only;
use crate::console::render::{Chrome, View, When, when};
use crate::error::ApiError;
use crate::state::AppState;

/// `{list}/{id}`.
#[derive(Template)]
#[template(path = "token_detail.html")]
pub struct TokenDetailPage {
    c: Chrome,
    /// Links above the heading, the list last.
    crumbs: Vec<(String, String)>,
    r: TokenRow,
    /// Where the actions post.
    action_base: String,
    /// The projects it is bound to, by name (empty: all of the workspace's).
    projects: Vec<String>,
    environment: Option<String>,
    last_used_ip: Option<String>,
    /// Personal and legacy tokens act for their owner; the others for the workspace.
    owned: bool,
    /// Its verify-time policy.
    policy: PolicyFacts,
    /// The policy form, for those who may manage the token.
    edit: Option<PolicyFields>,
    /// Its usage details (DESIGN.md §8).
    usage: UsageFacts,
}

/// The usage card: the recent client IPs and the days with uses, newest first.
pub struct UsageFacts {
    /// Uses over the 90 days shown.
    total: u64,
    /// The last distinct client IPs, newest first, with when each was last seen.
    ips: Vec<(String, When)>,
    /// `(YYYY-MM-DD, uses)` of the days with uses, newest first.
    days: Vec<(String, u64)>,
}

impl UsageFacts {
    fn of(usage: latchkey_proto::TokenUsage, now: time::OffsetDateTime) -> UsageFacts {
        UsageFacts {
            total: usage.daily.iter().map(|d| d.count).sum(),
            ips: usage
                .last_ips
                .into_iter()
                .map(|u| (u.ip, when(u.last_seen_at, now)))
                .collect(),
            days: usage
                .daily
                .into_iter()
                .rev()
                .filter(|d| d.count > 0)
                .map(|d| (d.date, d.count))
                .collect(),
        }
    }
}

impl TokenPlace {
    /// The console section (top navigation) the place is in.
    fn section(&self) -> &'static str {
        match self {
            TokenPlace::Workspace(_) => "workspaces",
            TokenPlace::Account => "account",
            TokenPlace::ApiAccess => "api-access",
            TokenPlace::ServiceAccount(_) => "organization",
        }
    }
}

/// `GET {list}/{id}`: the token's page, when the token belongs to that list and the caller
/// may see it (else the 404 page).
pub async fn page(target: TokenTarget, Visit { state, s, view }: Visit) -> Response {
    render(&state, &s, &target, view).await
}

/// The token's page with `view` (a banner; after a failed policy edit, the form as sent).
pub async fn render(
    state: &AppState,
    s: &SignedIn,
    target: &TokenTarget,
    mut view: View,
) -> Response {
    let section = target.place.section();
    if matches!(
        target.place,
        TokenPlace::ApiAccess | TokenPlace::ServiceAccount(_)
    ) && !s.is_org_admin()
    {
        return org_admins_only(s, section);
    }
    let page = build(state, s, target, &mut view).await;
    view.respond(s, section, page)
}

async fn build(
    state: &AppState,
    s: &SignedIn,
    target: &TokenTarget,
    view: &mut View,
) -> Result<TokenDetailPage, ApiError> {
    let token = state.get_token(&s.p, &target.id).await?;
    // The list is addressed as its own page addresses itself (a workspace by id).
    let (place, crumbs) = match &target.place {
        TokenPlace::Workspace(ws_ref) => {
            let ws = state.get_workspace(&s.p, ws_ref).await?;
            if token.workspace_id.as_deref() != Some(ws.id.as_str()) {
                return Err(ApiError::NotFound("token"));
            }
            let place = TokenPlace::Workspace(ws.id.clone());
            let crumbs = vec![
                (format!("/workspaces/{}", ws.id), ws.name),
                (
                    format!("/workspaces/{}/settings", ws.id),
                    "Settings".to_owned(),
                ),
                (place.url(), "API Access Tokens".to_owned()),
            ];
            (place, crumbs)
        }
        TokenPlace::Account => {
            if token.owner_id.as_deref() != Some(s.user.id.as_str()) {
                return Err(ApiError::NotFound("token"));
            }
            (
                TokenPlace::Account,
                vec![("/account".to_owned(), "Account & Settings".to_owned())],
            )
        }
        TokenPlace::ApiAccess => (
            TokenPlace::ApiAccess,
            vec![("/api-access".to_owned(), "API access".to_owned())],
        ),
        TokenPlace::ServiceAccount(id) => {
            if token.owner_id.as_deref() != Some(id.as_str()) {
                return Err(ApiError::NotFound("token"));
            }
            let place = TokenPlace::ServiceAccount(id.clone());
            let crumbs = vec![
                (
                    "/organization/service-accounts".to_owned(),
                    "Service accounts".to_owned(),
                ),
                (
                    place.url(),
                    token.owner_username.clone().unwrap_or_default(),
                ),
            ];
            (place, crumbs)
        }
    };
    let projects = match (&token.workspace_id, token.projects.is_empty()) {
        (Some(ws_id), false) => {
            let page = PageRequest {
                limit: 200,
                cursor: None,
            };
            let known = match state.list_projects(&s.p, ws_id, &page).await {
                Ok(listed) => listed.items,
                Err(ApiError::Forbidden(_)) => Vec::new(),
                Err(e) => return Err(e),
            };
            token
                .projects
                .iter()
                .map(|id| {
                    known
                        .iter()
                        .find(|p| &p.id == id)
                        .map_or_else(|| id.clone(), |p| p.name.clone())
                })
                .collect()
        }
        _ => Vec::new(),
    };
    let edit = state
        .may_manage_token(&s.p, &token)
        .then(|| PolicyFields::for_token(&token, view));
    // The actions come back to the list, at this token's row.
    view.here = place.url();
    let now = state.clock.now();
    let usage = UsageFacts::of(state.token_usage(&s.p, &token.id).await?, now);
    let r = token_row(state, s, &token, now);
    Ok(TokenDetailPage {
        c: s.chrome(format!("Token {}", token.name), place.section(), view),
        crumbs,
        action_base: place.action_base(),
        projects,
        environment: token.environment.clone(),
        last_used_ip: token.last_used_ip.clone(),
        owned: token.owner_id.is_some(),
        policy: PolicyFacts::of(&token),
        edit,
        usage,
        r,
    })
}
