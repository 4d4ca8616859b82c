//! What a token list shows: the search, the type and state filters, the sort and the page,
//! read from the page's query and written back into every link and form, so a page keeps
//! its place across actions. The service answers the lists (with its visibility rules);
//! this narrows and orders what it answered.

use std::collections::HashMap;
use std::future::Future;

use latchkey_proto::{Page, Token, TokenState, TokenType};
use latchkey_store::PageRequest;
use time::{Duration, OffsetDateTime};

use super::super::render::Choice;
use super::super::session::encode;
use crate::error::ApiError;
use crate::service::InventoryQuery;
use time::format_description::well_known::Rfc3339;

/// Rows a page shows.
pub const PAGE_SIZE: usize = 25;
/// Most tokens a list reads from the service before it stops (and says so).
pub const MAX_LISTED: usize = 2000;
/// A token expiring within this is badged "Expires soon".
pub const EXPIRES_SOON: Duration = Duration::days(7);

/// How a list is ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Sort {
    /// Created, newest first (the service's order).
    #[default]
    Newest,
    /// Created, oldest first.
    Oldest,
    /// Name, A to Z.
    Name,
    /// Name, Z to A.
    NameDesc,
    /// Expiry, soonest first; tokens that never expire last.
    Expires,
    /// Last use, most recent first; never used last.
    LastUsed,
    /// Last use, longest ago first; never used first.
    LeastUsed,
}

const SORTS: [(Sort, &str, &str); 7] = [
    (Sort::Newest, "newest", "Newest first"),
    (Sort::Oldest, "oldest", "Oldest first"),
    (Sort::Name, "name", "Name (A–Z)"),
    (Sort::NameDesc, "name-desc", "Name (Z–A)"),
    (Sort::Expires, "expires", "Expires soonest"),
    (Sort::LastUsed, "last-used", "Recently used"),
    (Sort::LeastUsed, "least-used", "Least recently used"),
];

impl Sort {
    fn parse(value: &str) -> Option<Sort> {
        SORTS
            .iter()
            .find(|(_, v, _)| *v == value)
            .map(|(s, _, _)| *s)
    }

    fn value(self) -> &'static str {
        SORTS
            .iter()
            .find(|(s, _, _)| *s == self)
            .map_or("newest", |(_, v, _)| v)
    }

    /// The column this sort orders by and its direction, for `aria-sort`.
    pub fn column(self) -> (&'static str, &'static str) {
        match self {
            Sort::Newest => ("created", "descending"),
            Sort::Oldest => ("created", "ascending"),
            Sort::Name => ("name", "ascending"),
            Sort::NameDesc => ("name", "descending"),
            Sort::Expires => ("expires", "ascending"),
            Sort::LastUsed => ("last-used", "descending"),
            Sort::LeastUsed => ("last-used", "ascending"),
        }
    }
}

/// Which tokens by state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateFilter {
    /// In this state.
    Is(TokenState),
    /// Active and expiring within [`EXPIRES_SOON`].
    ExpiresSoon,
}

const STATES: [(StateFilter, &str, &str); 6] = [
    (StateFilter::Is(TokenState::Active), "active", "Active"),
    (StateFilter::ExpiresSoon, "expires-soon", "Expires soon"),
    (StateFilter::Is(TokenState::Revoked), "revoked", "Revoked"),
    (StateFilter::Is(TokenState::Expired), "expired", "Expired"),
    (
        StateFilter::Is(TokenState::Suspended),
        "suspended",
        "Suspended",
    ),
    (
        StateFilter::Is(TokenState::TypeDisabled),
        "type_disabled",
        "Type disabled",
    ),
];

/// Whether `t` is active and expires within [`EXPIRES_SOON`] of `now`.
pub fn expires_soon(t: &Token, now: OffsetDateTime) -> bool {
    t.state == TokenState::Active
        && t.expires_at
            .is_some_and(|e| e > now && e - now <= EXPIRES_SOON)
}

/// A list's search, filters, sort and page, as the query string holds them
/// (`q`, `type`, `state`, `sort`, `page`, and on the inventory pages `owner`, `workspace`,
/// `created_before`, `expires_before`, `last_used_before`, `never_used`). Unknown values
/// of the selects mean the default: this reads a browser's address bar, where a stale link
/// should still show a page. The inventory's typed filters are kept as written and checked
/// by the service ([`ListQuery::inventory`]), so a bad one is said, not dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListQuery {
    /// Name contains (case-insensitive).
    pub q: String,
    /// Only this type.
    pub token_type: Option<TokenType>,
    /// Only this state.
    pub state: Option<StateFilter>,
    /// Only this owner (username or user id; "" any).
    pub owner: String,
    /// Only this workspace (id; "" any).
    pub workspace: String,
    /// Only created before this date or instant ("" any).
    pub created_before: String,
    /// Only expiring before this date or instant ("" any).
    pub expires_before: String,
    /// Only last used before this date or instant ("" any).
    pub last_used_before: String,
    /// Only tokens never used.
    pub never_used: bool,
    /// The order.
    pub sort: Sort,
    /// 1-based page.
    pub page: usize,
}

impl Default for ListQuery {
    fn default() -> ListQuery {
        ListQuery {
            q: String::new(),
            token_type: None,
            state: None,
            owner: String::new(),
            workspace: String::new(),
            created_before: String::new(),
            expires_before: String::new(),
            last_used_before: String::new(),
            never_used: false,
            sort: Sort::Newest,
            page: 1,
        }
    }
}

impl ListQuery {
    /// Reads the query.
    pub fn from_query(query: &HashMap<String, String>) -> ListQuery {
        let get = |k: &str| query.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
        let text = |k: &str| get(k).unwrap_or("").chars().take(200).collect::<String>();
        ListQuery {
            q: text("q"),
            token_type: get("type").and_then(TokenType::parse),
            state: get("state")
                .and_then(|v| STATES.iter().find(|(_, name, _)| *name == v))
                .map(|(s, _, _)| *s),
            owner: text("owner"),
            workspace: text("workspace"),
            created_before: text("created_before"),
            expires_before: text("expires_before"),
            last_used_before: text("last_used_before"),
            never_used: get("never_used").is_some_and(|v| v == "true"),
            sort: get("sort").and_then(Sort::parse).unwrap_or_default(),
            page: get("page")
                .and_then(|p| p.parse::<usize>().ok())
                .filter(|p| *p >= 1)
                .unwrap_or(1),
        }
    }

    /// Whether anything narrows the list.
    pub fn filtered(&self) -> bool {
        !self.q.is_empty()
            || self.token_type.is_some()
            || self.state.is_some()
            || self.never_used
            || self.inventory_texts().iter().any(|(_, v)| !v.is_empty())
    }

    /// The inventory's text filters, by their query names.
    fn inventory_texts(&self) -> [(&'static str, &String); 5] {
        [
            ("owner", &self.owner),
            ("workspace", &self.workspace),
            ("created_before", &self.created_before),
            ("expires_before", &self.expires_before),
            ("last_used_before", &self.last_used_before),
        ]
    }

    /// This list's filters as the inventory's query (`GET /api/v1/tokens`), in workspace
    /// `workspace` when the page is one workspace's (else the chosen one). "Expires soon"
    /// is active and expiring within [`EXPIRES_SOON`] of `now` (or before the chosen
    /// date, if sooner).
    pub fn inventory(&self, workspace: Option<&str>, now: OffsetDateTime) -> InventoryQuery {
        let some = |v: &String| (!v.is_empty()).then(|| v.clone());
        let mut query = InventoryQuery {
            token_type: self.token_type.map(|t| t.as_str().to_owned()),
            state: match self.state {
                None => None,
                Some(StateFilter::Is(s)) => Some(s.as_str().to_owned()),
                Some(StateFilter::ExpiresSoon) => Some(TokenState::Active.as_str().to_owned()),
            },
            workspace: workspace
                .map(str::to_owned)
                .or_else(|| some(&self.workspace)),
            owner: some(&self.owner),
            q: some(&self.q),
            created_before: some(&self.created_before),
            expires_before: some(&self.expires_before),
            last_used_before: some(&self.last_used_before),
            never_used: self.never_used.then(|| "true".to_owned()),
            ..InventoryQuery::default()
        };
        if self.state == Some(StateFilter::ExpiresSoon) {
            let soon = now + EXPIRES_SOON;
            let chosen = query.filter().ok().and_then(|f| f.expires_before);
            if chosen.is_none_or(|at| at > soon) {
                query.expires_before = soon.format(&Rfc3339).ok();
            }
        }
        query
    }

    /// The CSV export of what this list shows (every page): the inventory's address with
    /// `format=csv`.
    pub fn csv_url(&self, workspace: Option<&str>, now: OffsetDateTime) -> String {
        let query = self.inventory(workspace, now);
        let mut pairs = vec![("format", "csv".to_owned())];
        for (k, v) in [
            ("type", &query.token_type),
            ("state", &query.state),
            ("workspace", &query.workspace),
            ("owner", &query.owner),
            ("q", &query.q),
            ("created_before", &query.created_before),
            ("expires_before", &query.expires_before),
            ("last_used_before", &query.last_used_before),
            ("never_used", &query.never_used),
        ] {
            if let Some(v) = v {
                pairs.push((k, v.clone()));
            }
        }
        let query: Vec<String> = pairs
            .into_iter()
            .map(|(k, v)| format!("{k}={}", encode(&v)))
            .collect();
        format!("/api/v1/tokens?{}", query.join("&"))
    }

    /// This query as pairs, on page `page`; defaults left out.
    fn pairs_at(&self, page: usize) -> Vec<(&'static str, String)> {
        let mut pairs: Vec<(&'static str, String)> = Vec::new();
        if !self.q.is_empty() {
            pairs.push(("q", self.q.clone()));
        }
        if let Some(t) = self.token_type {
            pairs.push(("type", t.as_str().to_owned()));
        }
        if let Some(s) = self.state {
            let name = STATES
                .iter()
                .find(|(f, _, _)| *f == s)
                .map_or("", |(_, n, _)| n);
            pairs.push(("state", name.to_owned()));
        }
        for (k, v) in self.inventory_texts() {
            if !v.is_empty() {
                pairs.push((k, v.clone()));
            }
        }
        if self.never_used {
            pairs.push(("never_used", "true".to_owned()));
        }
        if self.sort != Sort::Newest {
            pairs.push(("sort", self.sort.value().to_owned()));
        }
        if page > 1 {
            pairs.push(("page", page.to_string()));
        }
        pairs
    }

    /// This query as pairs (for hidden fields of forms that open the page again).
    pub fn pairs(&self) -> Vec<(&'static str, String)> {
        self.pairs_at(self.page)
    }

    /// `base` with this query, on page `page`.
    pub fn url_at(&self, base: &str, page: usize) -> String {
        let pairs = self.pairs_at(page);
        if pairs.is_empty() {
            return base.to_owned();
        }
        let query: Vec<String> = pairs
            .into_iter()
            .map(|(k, v)| format!("{k}={}", encode(&v)))
            .collect();
        format!("{base}?{}", query.join("&"))
    }

    /// `base` with this query (this page).
    pub fn url(&self, base: &str) -> String {
        self.url_at(base, self.page)
    }

    fn matches(&self, t: &Token, now: OffsetDateTime) -> bool {
        let needle = self.q.to_lowercase();
        (needle.is_empty() || t.name.to_lowercase().contains(&needle))
            && self.token_type.is_none_or(|ty| t.token_type == ty)
            && match self.state {
                None => true,
                Some(StateFilter::Is(s)) => t.state == s,
                Some(StateFilter::ExpiresSoon) => expires_soon(t, now),
            }
    }

    /// Narrows, orders and pages `tokens` (newest first, as the service lists them).
    pub fn apply(&self, mut tokens: Vec<Token>, now: OffsetDateTime) -> Paged {
        tokens.retain(|t| self.matches(t, now));
        // Stable sorts: ties keep the newest first.
        match self.sort {
            Sort::Newest => {}
            Sort::Oldest => tokens.reverse(),
            Sort::Name => tokens.sort_by_cached_key(|t| t.name.to_lowercase()),
            Sort::NameDesc => {
                tokens.sort_by_cached_key(|t| std::cmp::Reverse(t.name.to_lowercase()))
            }
            Sort::Expires => tokens.sort_by_key(|t| (t.expires_at.is_none(), t.expires_at)),
            Sort::LastUsed => tokens.sort_by_key(|t| std::cmp::Reverse(t.last_used_at)),
            Sort::LeastUsed => tokens.sort_by_key(|t| t.last_used_at),
        }
        let total = tokens.len();
        let pages = total.div_ceil(PAGE_SIZE).max(1);
        let page = self.page.min(pages);
        let items = tokens
            .into_iter()
            .skip((page - 1) * PAGE_SIZE)
            .take(PAGE_SIZE)
            .collect();
        Paged {
            items,
            total,
            page,
            pages,
        }
    }

    /// The type filter's options (`types`: those the list can hold).
    pub fn type_choices(&self, types: &[TokenType]) -> Vec<Choice> {
        let mut out = vec![Choice::new("", "Any type", self.token_type.is_none())];
        out.extend(
            types
                .iter()
                .map(|t| Choice::new(t.as_str(), t.as_str(), self.token_type == Some(*t))),
        );
        out
    }

    /// The state filter's options.
    pub fn state_choices(&self) -> Vec<Choice> {
        let mut out = vec![Choice::new("", "Any state", self.state.is_none())];
        out.extend(
            STATES
                .iter()
                .map(|(f, v, label)| Choice::new(*v, *label, self.state == Some(*f))),
        );
        out
    }

    /// The sort's options.
    pub fn sort_choices(&self) -> Vec<Choice> {
        SORTS
            .iter()
            .map(|(s, v, label)| Choice::new(*v, *label, self.sort == *s))
            .collect()
    }
}

/// One page of a narrowed, ordered list.
#[derive(Debug, Clone)]
pub struct Paged {
    /// This page's tokens.
    pub items: Vec<Token>,
    /// How many matched.
    pub total: usize,
    /// This page (1-based, within the pages there are).
    pub page: usize,
    /// How many pages.
    pub pages: usize,
}

/// Every token a service list answers, page after page, up to [`MAX_LISTED`]; `true` when
/// it stopped there.
pub async fn read_all<F, Fut>(mut fetch: F) -> Result<(Vec<Token>, bool), ApiError>
where
    F: FnMut(PageRequest) -> Fut,
    Fut: Future<Output = Result<Page<Token>, ApiError>>,
{
    let mut items = Vec::new();
    let mut cursor = None;
    loop {
        let page = fetch(PageRequest { limit: 200, cursor }).await?;
        items.extend(page.items);
        match page.next_cursor {
            Some(next) if items.len() < MAX_LISTED => cursor = Some(next),
            Some(_) => return Ok((items, true)),
            None => return Ok((items, false)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(name: &str, created: i64, expires: Option<i64>, used: Option<i64>) -> Token {
        let at = |s: i64| latchkey_core::from_unix(1_800_000_000 + s);
        Token {
            id: format!("id-{name}"),
            name: name.into(),
            token_type: TokenType::Personal,
            hint: "lkp_…abcd".into(),
            workspace_id: None,
            workspace_name: None,
            owner_id: None,
            owner_username: None,
            created_by: None,
            scopes: Vec::new(),
            projects: Vec::new(),
            environment: None,
            created_at: at(created),
            expires_at: expires.map(at),
            last_used_at: used.map(at),
            last_used_ip: None,
            state: TokenState::Active,
            metadata: None,
            allowed_ips: None,
            rate_limit: None,
            remaining_uses: None,
            refill: None,
            recoverable: false,
        }
    }

    fn names(p: &Paged) -> Vec<&str> {
        p.items.iter().map(|t| t.name.as_str()).collect()
    }

    fn query(q: &[(&str, &str)]) -> ListQuery {
        ListQuery::from_query(
            &q.iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        )
    }

    #[test]
    fn sorts_filters_and_pages() {
        let now = latchkey_core::from_unix(1_800_000_000);
        let day = 86_400;
        // Newest first, as the service lists them.
        let list = vec![
            token("beta", -10, Some(3 * day), None),
            token("Alpha", -20, None, Some(-5)),
            token("gamma", -30, Some(30 * day), Some(-50)),
        ];
        let run = |q: &[(&str, &str)]| query(q).apply(list.clone(), now);
        assert_eq!(names(&run(&[])), ["beta", "Alpha", "gamma"]);
        assert_eq!(
            names(&run(&[("sort", "oldest")])),
            ["gamma", "Alpha", "beta"]
        );
        assert_eq!(names(&run(&[("sort", "name")])), ["Alpha", "beta", "gamma"]);
        assert_eq!(
            names(&run(&[("sort", "name-desc")])),
            ["gamma", "beta", "Alpha"]
        );
        assert_eq!(
            names(&run(&[("sort", "expires")])),
            ["beta", "gamma", "Alpha"]
        );
        assert_eq!(
            names(&run(&[("sort", "last-used")])),
            ["Alpha", "gamma", "beta"]
        );
        assert_eq!(
            names(&run(&[("sort", "least-used")])),
            ["beta", "gamma", "Alpha"]
        );
        assert_eq!(names(&run(&[("q", "ALP")])), ["Alpha"]);
        assert_eq!(names(&run(&[("state", "expires-soon")])), ["beta"]);
        assert_eq!(names(&run(&[("state", "revoked")])), Vec::<&str>::new());
        assert_eq!(names(&run(&[("type", "client")])), Vec::<&str>::new());
        // Unknown values are the defaults.
        assert_eq!(
            query(&[("sort", "sideways"), ("page", "-1")]),
            ListQuery::default()
        );
    }

    #[test]
    fn pages_clamp_and_urls_keep_the_place() {
        let now = latchkey_core::from_unix(1_800_000_000);
        let list: Vec<Token> = (0..60)
            .map(|i| token(&format!("t{i:02}"), -i, None, None))
            .collect();
        let p = query(&[("page", "3")]).apply(list.clone(), now);
        assert_eq!((p.page, p.pages, p.total, p.items.len()), (3, 3, 60, 10));
        let p = query(&[("page", "9")]).apply(list, now);
        assert_eq!(p.page, 3);
        let q = query(&[
            ("q", "a b&c"),
            ("state", "expires-soon"),
            ("sort", "name"),
            ("page", "2"),
        ]);
        assert_eq!(
            q.url("/account"),
            "/account?q=a%20b%26c&state=expires-soon&sort=name&page=2"
        );
        assert_eq!(
            q.url_at("/account", 1),
            "/account?q=a%20b%26c&state=expires-soon&sort=name"
        );
        assert_eq!(ListQuery::default().url("/api-access"), "/api-access");
    }

    #[test]
    fn inventory_filters_stay_on_every_page_and_reach_the_service() {
        let now = time::macros::datetime!(2030-01-01 12:00 UTC);
        let q = query(&[
            ("q", "ci"),
            ("owner", "mira"),
            ("created_before", "2030-01-02"),
            ("never_used", "true"),
            ("state", "expires-soon"),
            ("page", "2"),
        ]);
        assert!(q.filtered());
        assert_eq!(
            q.url_at("/api-access", 3),
            "/api-access?q=ci&state=expires-soon&owner=mira&created_before=2030-01-02\
             &never_used=true&page=3"
        );
        let asked = q.inventory(Some("ws1"), now);
        assert_eq!(asked.workspace.as_deref(), Some("ws1"));
        assert_eq!(asked.state.as_deref(), Some("active"));
        assert_eq!(
            asked.expires_before.as_deref(),
            Some("2030-01-08T12:00:00Z")
        );
        assert_eq!(asked.never_used.as_deref(), Some("true"));
        assert!(asked.filter().is_ok());
        assert_eq!(
            q.csv_url(Some("ws1"), now),
            "/api/v1/tokens?format=csv&state=active&workspace=ws1&owner=mira&q=ci\
             &created_before=2030-01-02&expires_before=2030-01-08T12%3A00%3A00Z&never_used=true"
        );
        // A sooner date of the person's own wins over "within 7 days"; a bad one is the
        // service's to refuse (named), not dropped.
        let sooner = query(&[("state", "expires-soon"), ("expires_before", "2030-01-03")]);
        assert_eq!(
            sooner.inventory(None, now).expires_before.as_deref(),
            Some("2030-01-03")
        );
        let bad = query(&[("last_used_before", "soon")]);
        assert!(matches!(
            bad.inventory(None, now).filter(),
            Err(ApiError::InvalidField { field, .. }) if field == "last_used_before"
        ));
    }

    #[test]
    fn expires_soon_is_within_seven_days_and_active() {
        let now = latchkey_core::from_unix(1_800_000_000);
        let day = 86_400;
        assert!(expires_soon(&token("a", 0, Some(7 * day), None), now));
        assert!(!expires_soon(&token("a", 0, Some(7 * day + 1), None), now));
        assert!(!expires_soon(&token("a", 0, None, None), now));
        let mut revoked = token("a", 0, Some(day), None);
        revoked.state = TokenState::Revoked;
        assert!(!expires_soon(&revoked, now));
    }
}
