//! The token inventory (DESIGN.md §8 "Inventory"): every token the caller may see across
//! workspaces, filtered and paged or as one CSV file, and bulk revoke.
//!
//! What a caller sees is the one visibility rule (`Principal::visibility`, the store's
//! filter), so the inventory lists exactly what reads by id show; what a bulk revoke may
//! revoke is what a single revoke may (`Principal::can_manage` and the token's scopes).

use std::collections::HashSet;

use latchkey_core::policy::TokenAction;
use latchkey_core::{StoredState, TokenRecord};
use latchkey_proto::{
    BulkRevokeRequest, BulkRevokeResponse, MAX_BULK_REVOKE, Page, Scope, SkipReason, SkippedToken,
    Token, TokenState, TokenType,
};
use latchkey_store::{
    BulkRevoked, PageRequest, RevokeSkipped, StateFilter, StoreError, TokenFilter,
};
use serde::Deserialize;
use time::format_description::well_known::Rfc3339;
use time::{Date, OffsetDateTime, Time};

use crate::auth::Principal;
use crate::error::ApiError;
use crate::extract::PageParams;
use crate::state::AppState;

/// The longest `q` taken (a token name is at most 200 characters).
const MAX_Q: usize = 200;

/// How many tokens a CSV export reads from the store at a time.
const EXPORT_BATCH: u32 = 1000;

/// The query of `GET /api/v1/tokens`, as sent: every value is checked by
/// [`InventoryQuery::parse`], so that a bad one (an empty one too) is a 422 naming its
/// parameter. The console, whose forms send an empty value for "any", drops those first
/// ([`InventoryQuery::without_empty`]).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InventoryQuery {
    /// Token type.
    #[serde(rename = "type")]
    pub token_type: Option<String>,
    /// State as lists show it.
    pub state: Option<String>,
    /// Workspace id or name.
    pub workspace: Option<String>,
    /// Owner's user id or username.
    pub owner: Option<String>,
    /// Text the name contains (ASCII letters compared without case).
    pub q: Option<String>,
    /// RFC 3339 instant or `YYYY-MM-DD` (00:00 UTC).
    pub created_before: Option<String>,
    /// RFC 3339 instant or `YYYY-MM-DD`.
    pub expires_before: Option<String>,
    /// RFC 3339 instant or `YYYY-MM-DD`.
    pub last_used_before: Option<String>,
    /// `true` or `false`.
    pub never_used: Option<String>,
    /// `json` (the default) or `csv`.
    pub format: Option<String>,
    /// Page size.
    pub limit: Option<String>,
    /// Cursor.
    pub cursor: Option<String>,
}

/// The answer's form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InventoryFormat {
    /// One page in the list envelope.
    Json,
    /// Every matching token as CSV.
    Csv,
}

/// The inventory's filters, checked. Every one optional; together they all apply.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InventoryFilter {
    /// Only this type.
    pub token_type: Option<TokenType>,
    /// Only this state (as lists show it).
    pub state: Option<TokenState>,
    /// Only tokens acting in this workspace (id or name).
    pub workspace: Option<String>,
    /// Only tokens of this owner (user id or username).
    pub owner: Option<String>,
    /// Only names containing this.
    pub q: Option<String>,
    /// Only tokens created before.
    pub created_before: Option<OffsetDateTime>,
    /// Only tokens expiring before (never-expiring ones are left out).
    pub expires_before: Option<OffsetDateTime>,
    /// Only tokens last used before (never-used ones are left out).
    pub last_used_before: Option<OffsetDateTime>,
    /// `true`: only never-used tokens; `false`: only used ones.
    pub never_used: Option<bool>,
}

/// An RFC 3339 instant, or a date `YYYY-MM-DD` meaning its first instant in UTC.
fn instant(field: &str, value: &Option<String>) -> Result<Option<OffsetDateTime>, ApiError> {
    let Some(text) = value.as_deref() else {
        return Ok(None);
    };
    if let Ok(at) = OffsetDateTime::parse(text, &Rfc3339) {
        return Ok(Some(at));
    }
    let day = time::macros::format_description!("[year]-[month]-[day]");
    match Date::parse(text, &day) {
        Ok(date) => Ok(Some(date.with_time(Time::MIDNIGHT).assume_utc())),
        Err(_) => Err(ApiError::field(
            field,
            format!("{field} must be an RFC 3339 time or a date (YYYY-MM-DD)"),
        )),
    }
}

impl InventoryQuery {
    /// The same query without its empty values (an HTML form's "any").
    pub fn without_empty(mut self) -> InventoryQuery {
        for value in [
            &mut self.token_type,
            &mut self.state,
            &mut self.workspace,
            &mut self.owner,
            &mut self.q,
            &mut self.created_before,
            &mut self.expires_before,
            &mut self.last_used_before,
            &mut self.never_used,
            &mut self.format,
            &mut self.limit,
            &mut self.cursor,
        ] {
            if value.as_deref() == Some("") {
                *value = None;
            }
        }
        self
    }

    /// Checks every parameter: the filters, the answer's form and the page (checked
    /// whatever the form; a CSV answer holds every matching token, so it does not use the
    /// page).
    pub fn parse(&self) -> Result<(InventoryFilter, InventoryFormat, PageRequest), ApiError> {
        let filter = self.filter()?;
        let format = match self.format.as_deref() {
            None | Some("json") => InventoryFormat::Json,
            Some("csv") => InventoryFormat::Csv,
            Some(_) => return Err(ApiError::field("format", "format must be json or csv")),
        };
        let page = PageParams {
            limit: self.limit.clone(),
            cursor: self.cursor.clone(),
        }
        .to_page()?;
        Ok((filter, format, page))
    }

    /// Checks the filters alone.
    pub fn filter(&self) -> Result<InventoryFilter, ApiError> {
        let token_type = match self.token_type.as_deref() {
            None => None,
            Some(text) => Some(TokenType::parse(text).ok_or_else(|| {
                ApiError::field(
                    "type",
                    "type must be one of personal, legacy, client, frontend, admin",
                )
            })?),
        };
        let state = match self.state.as_deref() {
            None => None,
            Some(text) => Some(TokenState::parse(text).ok_or_else(|| {
                let names: Vec<&str> = TokenState::ALL.iter().map(|s| s.as_str()).collect();
                ApiError::field(
                    "state",
                    format!("state must be one of {}", names.join(", ")),
                )
            })?),
        };
        let workspace = match self.workspace.as_deref() {
            Some(w)
                if w.is_empty() || w.chars().count() > 200 || w.chars().any(char::is_control) =>
            {
                return Err(ApiError::field(
                    "workspace",
                    "workspace must be a workspace id or name",
                ));
            }
            other => other.map(str::to_owned),
        };
        let owner = match self.owner.as_deref() {
            Some(o) if !latchkey_core::is_id(o) && super::check_username(o).is_err() => {
                return Err(ApiError::field(
                    "owner",
                    "owner must be a user id or a username",
                ));
            }
            other => other.map(str::to_owned),
        };
        let q = match self.q.as_deref() {
            Some(q) if q.is_empty() || q.chars().count() > MAX_Q => {
                return Err(ApiError::field(
                    "q",
                    format!("q must be 1 to {MAX_Q} characters"),
                ));
            }
            other => other.map(str::to_owned),
        };
        let never_used = match self.never_used.as_deref() {
            None => None,
            Some("true") => Some(true),
            Some("false") => Some(false),
            Some(_) => {
                return Err(ApiError::field(
                    "never_used",
                    "never_used must be true or false",
                ));
            }
        };
        Ok(InventoryFilter {
            token_type,
            state,
            workspace,
            owner,
            q,
            created_before: instant("created_before", &self.created_before)?,
            expires_before: instant("expires_before", &self.expires_before)?,
            last_used_before: instant("last_used_before", &self.last_used_before)?,
            never_used,
        })
    }
}

/// A CSV cell: quoted when it holds a comma, a quote or a line break; and, so that a
/// spreadsheet never runs it as a formula, prefixed with `'` when it starts with `=`, `+`,
/// `-`, `@`, a tab or a carriage return.
fn csv_cell(out: &mut String, value: &str) {
    let guarded = value.starts_with(['=', '+', '-', '@', '\t', '\r']);
    let quoted = guarded || value.contains([',', '"', '\n', '\r']);
    if quoted {
        out.push('"');
    }
    if guarded {
        out.push('\'');
    }
    for c in value.chars() {
        if c == '"' {
            out.push('"');
        }
        out.push(c);
    }
    if quoted {
        out.push('"');
    }
}

/// The header of the inventory's CSV export.
pub const CSV_COLUMNS: [&str; 17] = [
    "id",
    "name",
    "type",
    "state",
    "workspace_id",
    "workspace_name",
    "owner_id",
    "owner_username",
    "created_by",
    "scopes",
    "projects",
    "environment",
    "hint",
    "created_at",
    "expires_at",
    "last_used_at",
    "last_used_ip",
];

fn csv_row(out: &mut String, cells: &[&str]) {
    for (i, cell) in cells.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        csv_cell(out, cell);
    }
    out.push_str("\r\n");
}

fn rfc3339(at: Option<OffsetDateTime>) -> String {
    at.and_then(|t| t.format(&Rfc3339).ok()).unwrap_or_default()
}

fn csv_token(out: &mut String, t: &Token) {
    let scopes: Vec<&str> = t.scopes.iter().map(|s| s.as_str()).collect();
    let opt = |v: &Option<String>| v.clone().unwrap_or_default();
    let cells = [
        t.id.clone(),
        t.name.clone(),
        t.token_type.as_str().to_owned(),
        t.state.as_str().to_owned(),
        opt(&t.workspace_id),
        opt(&t.workspace_name),
        opt(&t.owner_id),
        opt(&t.owner_username),
        opt(&t.created_by),
        scopes.join(" "),
        t.projects.join(" "),
        opt(&t.environment),
        t.hint.clone(),
        rfc3339(Some(t.created_at)),
        rfc3339(t.expires_at),
        rfc3339(t.last_used_at),
        opt(&t.last_used_ip),
    ];
    let cells: Vec<&str> = cells.iter().map(String::as_str).collect();
    csv_row(out, &cells);
}

impl AppState {
    /// The store filter for `filter` as `p` sees it; `None` when nothing can match (a
    /// workspace or owner that does not exist, or that the caller cannot see: the same
    /// answer, so the filter tells nobody what exists).
    async fn inventory_store_filter(
        &self,
        p: &Principal,
        filter: &InventoryFilter,
    ) -> Result<Option<TokenFilter>, ApiError> {
        p.require_scope(Scope::TokensRead)?;
        let workspace_id = match &filter.workspace {
            None => None,
            Some(reference) => match self.resolve_workspace(p, reference).await {
                Ok(ws) => Some(ws.id),
                Err(ApiError::NotFound(_)) => return Ok(None),
                Err(e) => return Err(e),
            },
        };
        let owner_id = match &filter.owner {
            None => None,
            Some(reference) if latchkey_core::is_id(reference) => Some(reference.clone()),
            Some(username) => match self.store.find_user_by_username(username).await {
                Ok(Some(user)) => Some(user.id),
                Ok(None) => return Ok(None),
                Err(e) => return Err(e.into()),
            },
        };
        // The last-used filters read the store: write this node's pending uses first.
        if filter.last_used_before.is_some() || filter.never_used.is_some() {
            self.flush_usage().await?;
        }
        let state = filter.state.map(|state| StateFilter {
            state,
            now: self.clock.now(),
            disabled_types: TokenType::ALL
                .into_iter()
                .filter(|t| !self.verifier.type_enabled(*t))
                .collect(),
        });
        Ok(Some(TokenFilter {
            workspace_id,
            owner_id,
            visibility: Some(p.visibility()),
            token_type: filter.token_type,
            state,
            name_contains: filter.q.clone(),
            created_before: filter.created_before,
            expires_before: filter.expires_before,
            last_used_before: filter.last_used_before,
            never_used: filter.never_used,
        }))
    }

    /// One page of the tokens `p` may see that match `filter`, newest first.
    pub async fn list_inventory(
        &self,
        p: &Principal,
        filter: &InventoryFilter,
        page: &PageRequest,
    ) -> Result<Page<Token>, ApiError> {
        let now = self.clock.now();
        let Some(store_filter) = self.inventory_store_filter(p, filter).await? else {
            return Ok(Page {
                items: Vec::new(),
                next_cursor: None,
            });
        };
        let org = self.org().await?;
        let paged = self.store.list_tokens(&org.id, &store_filter, page).await?;
        self.token_views(paged, now).await
    }

    /// Every token `p` may see that matches `filter`, newest first.
    pub async fn inventory_all(
        &self,
        p: &Principal,
        filter: &InventoryFilter,
    ) -> Result<Vec<Token>, ApiError> {
        let now = self.clock.now();
        let Some(store_filter) = self.inventory_store_filter(p, filter).await? else {
            return Ok(Vec::new());
        };
        let org = self.org().await?;
        let mut all = Vec::new();
        let mut page = PageRequest::first(EXPORT_BATCH);
        loop {
            let paged = self
                .store
                .list_tokens(&org.id, &store_filter, &page)
                .await?;
            let next = paged.next_cursor.clone();
            all.extend(self.token_views(paged, now).await?.items);
            match next {
                Some(cursor) => page.cursor = Some(cursor),
                None => return Ok(all),
            }
        }
    }

    /// Every token `p` may see that matches `filter`, as CSV: a header row
    /// ([`CSV_COLUMNS`]), then one row per token; no secrets.
    pub async fn inventory_csv(
        &self,
        p: &Principal,
        filter: &InventoryFilter,
    ) -> Result<String, ApiError> {
        let tokens = self.inventory_all(p, filter).await?;
        let mut out = String::with_capacity(256 * (tokens.len() + 1));
        csv_row(&mut out, &CSV_COLUMNS);
        for t in &tokens {
            csv_token(&mut out, t);
        }
        Ok(out)
    }

    /// Why `p` may not revoke `token` now, or `None` when it may: what a single revoke
    /// would answer (404 invisible, 403 not manageable or out of scope, 409 expired), and
    /// `already_revoked` where a single revoke is idempotent.
    fn bulk_skip(p: &Principal, token: &TokenRecord, now: OffsetDateTime) -> Option<SkipReason> {
        if !p.can_see(token) {
            return Some(SkipReason::NotFound);
        }
        if !p.has_scope(Scope::TokensWrite, token.workspace_id.as_deref()) || !p.can_manage(token) {
            return Some(SkipReason::Forbidden);
        }
        if latchkey_core::policy::check_action(
            TokenAction::Revoke,
            token.state,
            token.expires_at,
            now,
        )
        .is_err()
        {
            return Some(SkipReason::Expired);
        }
        // A denied token is as good as revoked (a revoke leaves it denied).
        matches!(token.state, StoredState::Revoked | StoredState::Denied)
            .then_some(SkipReason::AlreadyRevoked)
    }

    /// `POST /api/v1/tokens/bulk-revoke`: revokes, in one transaction, every listed token
    /// the caller may revoke, each with its own audit event; every other id is skipped
    /// with why. 1 to [`MAX_BULK_REVOKE`] ids.
    pub async fn bulk_revoke(
        &self,
        p: &Principal,
        req: BulkRevokeRequest,
    ) -> Result<BulkRevokeResponse, ApiError> {
        let now = self.clock.now();
        if req.ids.is_empty() || req.ids.len() > MAX_BULK_REVOKE {
            return Err(ApiError::field(
                "ids",
                format!("ids must hold 1 to {MAX_BULK_REVOKE} token ids"),
            ));
        }
        p.require_scope(Scope::TokensWrite)?;
        // Each id: skipped now, or asked of the store (which re-checks the state inside
        // the transaction, so a concurrent revoke or expiry is reported, not repeated).
        let mut verdicts: Vec<Option<SkipReason>> = Vec::with_capacity(req.ids.len());
        let mut requests = Vec::new();
        let mut seen = HashSet::with_capacity(req.ids.len());
        for id in &req.ids {
            if !seen.insert(id.as_str()) {
                verdicts.push(Some(SkipReason::Duplicate));
                continue;
            }
            if !latchkey_core::is_id(id) {
                verdicts.push(Some(SkipReason::NotFound));
                continue;
            }
            let token = match self.store.get_token(id).await {
                Ok(token) => token,
                Err(StoreError::NotFound(_)) => {
                    verdicts.push(Some(SkipReason::NotFound));
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            let skip = Self::bulk_skip(p, &token, now);
            if skip.is_none() {
                requests.push((
                    token.id.clone(),
                    Self::token_event(p, "token.revoked", &token),
                ));
            }
            verdicts.push(skip);
        }
        let mut outcomes = if requests.is_empty() {
            Vec::new()
        } else {
            self.store.revoke_tokens(now, requests).await?
        }
        .into_iter();
        let mut response = BulkRevokeResponse {
            revoked: Vec::new(),
            skipped: Vec::new(),
        };
        for (id, verdict) in req.ids.iter().zip(verdicts) {
            let reason = match verdict {
                Some(reason) => reason,
                None => match outcomes.next() {
                    Some(BulkRevoked::Revoked(token)) => {
                        self.verifier.invalidate_token(&token.id);
                        response.revoked.push(token.id);
                        continue;
                    }
                    Some(BulkRevoked::Skipped { why, .. }) => match why {
                        RevokeSkipped::NotFound => SkipReason::NotFound,
                        RevokeSkipped::AlreadyRevoked => SkipReason::AlreadyRevoked,
                        RevokeSkipped::Expired => SkipReason::Expired,
                    },
                    None => {
                        return Err(ApiError::Internal(
                            "the store answered fewer outcomes than asked".into(),
                        ));
                    }
                },
            };
            response.skipped.push(SkippedToken {
                id: id.clone(),
                reason,
            });
        }
        if !response.revoked.is_empty() {
            tracing::info!(
                revoked = response.revoked.len(),
                skipped = response.skipped.len(),
                "tokens revoked in bulk"
            );
        }
        Ok(response)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(value: &str) -> String {
        let mut out = String::new();
        csv_cell(&mut out, value);
        out
    }

    #[test]
    fn csv_cells_are_quoted_and_never_formulas() {
        assert_eq!(cell("plain"), "plain");
        assert_eq!(cell(""), "");
        assert_eq!(cell("a,b"), "\"a,b\"");
        assert_eq!(cell("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(cell("two\nlines"), "\"two\nlines\"");
        for formula in ["=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx"] {
            let out = cell(formula);
            assert!(out.starts_with("\"'"), "{formula:?} → {out:?}");
        }
        assert_eq!(cell("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(cell("a=b"), "a=b");
    }

    #[test]
    fn bad_values_name_their_parameter() {
        let bad = [
            (
                "type",
                InventoryQuery {
                    token_type: Some("root".into()),
                    ..Default::default()
                },
            ),
            (
                "state",
                InventoryQuery {
                    state: Some("dead".into()),
                    ..Default::default()
                },
            ),
            (
                "owner",
                InventoryQuery {
                    owner: Some("no spaces".into()),
                    ..Default::default()
                },
            ),
            (
                "q",
                InventoryQuery {
                    q: Some("x".repeat(201)),
                    ..Default::default()
                },
            ),
            (
                "created_before",
                InventoryQuery {
                    created_before: Some("yesterday".into()),
                    ..Default::default()
                },
            ),
            (
                "expires_before",
                InventoryQuery {
                    expires_before: Some("2030-13-01".into()),
                    ..Default::default()
                },
            ),
            (
                "last_used_before",
                InventoryQuery {
                    last_used_before: Some("1".into()),
                    ..Default::default()
                },
            ),
            (
                "never_used",
                InventoryQuery {
                    never_used: Some("yes".into()),
                    ..Default::default()
                },
            ),
            (
                "format",
                InventoryQuery {
                    format: Some("xml".into()),
                    ..Default::default()
                },
            ),
            (
                "limit",
                InventoryQuery {
                    format: Some("csv".into()),
                    limit: Some("500".into()),
                    ..Default::default()
                },
            ),
            (
                "limit",
                InventoryQuery {
                    limit: Some("0".into()),
                    ..Default::default()
                },
            ),
            (
                "cursor",
                InventoryQuery {
                    cursor: Some("x".into()),
                    ..Default::default()
                },
            ),
        ];
        for (field, query) in bad {
            match query.parse() {
                Err(ApiError::InvalidField { field: named, .. }) => assert_eq!(named, field),
                other => panic!("{field}: {other:?}"),
            }
        }
    }

    #[test]
    fn good_values_parse_and_empty_ones_are_absent() {
        let query = InventoryQuery {
            token_type: Some("client".into()),
            state: Some("type_disabled".into()),
            created_before: Some("2030-01-02".into()),
            expires_before: Some("2030-01-02T03:04:05Z".into()),
            never_used: Some("false".into()),
            owner: Some("".into()),
            format: Some("csv".into()),
            ..Default::default()
        };
        assert!(matches!(
            query.clone().parse(),
            Err(ApiError::InvalidField { field, .. }) if field == "owner"
        ));
        let (filter, format, _) = query.without_empty().parse().unwrap();
        assert_eq!(format, InventoryFormat::Csv);
        assert_eq!(filter.token_type, Some(TokenType::Client));
        assert_eq!(filter.state, Some(TokenState::TypeDisabled));
        assert_eq!(
            filter.created_before,
            Some(time::macros::datetime!(2030-01-02 00:00 UTC))
        );
        assert_eq!(
            filter.expires_before,
            Some(time::macros::datetime!(2030-01-02 03:04:05 UTC))
        );
        assert_eq!(filter.never_used, Some(false));
        assert_eq!(filter.owner, None);
    }
}
