//! [`Client`]: connection settings, credentials, and one method per API route.
//!
//! Every route method is a thin line over four private helpers — [`Client::build`] (URL,
//! timeout, credentials), [`send`] (status check, error parsing, JSON decoding) and
//! [`send_empty`] — so the request plumbing exists exactly once.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use latchkey_proto::{
    AuditEvent, CreateProjectRequest, CreateTokenRequest, CreateUserRequest,
    CreateWorkspaceRequest, CreatedToken, Health, InstanceSettings, Me, Member, Page, Project,
    PutMemberRequest, RefreshRequest, RefreshResponse, RevealedToken, RotateTokenRequest,
    SignInRequest, Token, TokenSettings, TokenUsage, UpdateInstanceSettingsRequest,
    UpdateTokenRequest, UpdateTokenSettingsRequest, UpdateUserRequest, User, UserKind,
    VerifyRequest, VerifyResponse, Workspace, WorkspaceRole,
};
use latchkey_proto::{BulkRevokeRequest, BulkRevokeResponse, TokenState, TokenType};
use latchkey_proto::{
    CreateWebhookRequest, CreatedWebhook, UpdateWebhookRequest, Webhook, WebhookDelivery,
};
use reqwest::cookie::{CookieStore, Jar};
use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderValue, ORIGIN};
use reqwest::{Method, RequestBuilder, Url};
use serde::Serialize;
use serde::de::DeserializeOwned;
use time::OffsetDateTime;

use crate::Error;
use crate::error::RateLimitStatus;

/// [`Client::verify_with`]'s answer: the verify response and what its headers said about
/// the token's rate limit.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifyAnswer {
    /// `valid`, the token (with its `metadata`) or the `reason`.
    pub response: VerifyResponse,
    /// `RateLimit-*` and `Retry-After`, for a token with a `rate_limit`.
    pub rate_limit: Option<RateLimitStatus>,
}

/// Environment variable holding the server's URL, read by [`Client::from_env`].
pub const ENV_URL: &str = "LATCHKEY_URL";
/// Environment variable holding the API token, read by [`Client::from_env`].
pub const ENV_API_KEY: &str = "LATCHKEY_API_KEY";
/// The request timeout unless [`Client::with_timeout`] says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Header carrying the CSRF proof on cookie-authenticated requests that change state.
const CSRF_HEADER: &str = "x-csrf-token";
/// Header carrying an idempotency key on rotate.
const IDEMPOTENCY_HEADER: &str = "idempotency-key";

/// How the token is presented to the server (DESIGN.md §3 accepts all of these).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum TokenHeader {
    /// `Authorization: Bearer <token>` (the default).
    #[default]
    Bearer,
    /// `Authorization: Token <token>` (the legacy-token form).
    Token,
    /// `X-API-Key: <token>`.
    XApiKey,
    /// `<name>: <token>`, for a header listed in the server's `api_key_headers`
    /// (e.g. `rime-api-key`).
    Custom(String),
}

/// Which page of a list to fetch: sent as the query parameters `limit` (default 50, at
/// most 200) and `cursor` (a previous page's `next_cursor`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PageQuery {
    /// Items per page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// Where to continue: the `next_cursor` of the page before.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

impl PageQuery {
    /// The first page, `limit` items long.
    pub fn limit(limit: u32) -> Self {
        PageQuery {
            limit: Some(limit),
            cursor: None,
        }
    }

    /// The page after `page`, the same length as asked for this one; `None` after the last.
    pub fn next<T>(&self, page: &Page<T>) -> Option<PageQuery> {
        page.next_cursor.as_ref().map(|cursor| PageQuery {
            limit: self.limit,
            cursor: Some(cursor.clone()),
        })
    }
}

/// Every item of a paged list, fetching page after page (200 items each) until the last —
/// what iterating a list does in the Python and TypeScript SDKs. A server that hands back
/// the cursor it was given ends the walk instead of looping.
///
/// ```no_run
/// # async fn run(client: latchkey_client::Client) -> Result<(), latchkey_client::Error> {
/// let every = latchkey_client::collect_all(|page| {
///     let client = &client;
///     async move { client.list_users(&page).await }
/// })
/// .await?;
/// # Ok(()) }
/// ```
pub async fn collect_all<T, F, Fut>(mut fetch: F) -> Result<Vec<T>, Error>
where
    F: FnMut(PageQuery) -> Fut,
    Fut: std::future::Future<Output = Result<Page<T>, Error>>,
{
    let mut items = Vec::new();
    let mut query = PageQuery::limit(200);
    loop {
        let page = fetch(query.clone()).await?;
        let next = query.next(&page).filter(|next| next.cursor != query.cursor);
        items.extend(page.items);
        match next {
            Some(next) => query = next,
            None => return Ok(items),
        }
    }
}

/// Filters for [`Client::audit_events`], sent as query parameters; every one optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AuditQuery {
    /// Events in this workspace (id).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workspace: Option<String>,
    /// Events done by this user (id).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    /// Events about, or done with, this token (id).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// Events of this action (`token.created`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// Events at or after this instant.
    #[serde(
        skip_serializing_if = "Option::is_none",
        with = "latchkey_proto::rfc3339::option"
    )]
    pub since: Option<OffsetDateTime>,
    /// Events before this instant.
    #[serde(
        skip_serializing_if = "Option::is_none",
        with = "latchkey_proto::rfc3339::option"
    )]
    pub until: Option<OffsetDateTime>,
    /// Items per page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// Where to continue: the `next_cursor` of the page before.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

/// Filters of the token inventory ([`Tokens::inventory`], `GET /api/v1/tokens`), sent as
/// query parameters; every one optional, all of them applying together.
///
/// ```no_run
/// # async fn run(client: latchkey_client::Client) -> Result<(), latchkey_client::Error> {
/// use latchkey_client::TokenQuery;
/// use latchkey_client::proto::{TokenState, TokenType};
/// let stale = TokenQuery {
///     token_type: Some(TokenType::Personal),
///     state: Some(TokenState::Active),
///     never_used: Some(true),
///     ..TokenQuery::default()
/// };
/// for token in client.tokens().inventory_all(&stale).await? {
///     println!("{} {}", token.id, token.name);
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TokenQuery {
    /// Only this type.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub token_type: Option<TokenType>,
    /// Only this state, as lists show it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<TokenState>,
    /// Only tokens acting in this workspace (id or name).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workspace: Option<String>,
    /// Only tokens of this owner (user id or username).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Only tokens whose name contains this (ASCII letters compared without case).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub q: Option<String>,
    /// Only tokens created before this instant.
    #[serde(
        skip_serializing_if = "Option::is_none",
        with = "latchkey_proto::rfc3339::option"
    )]
    pub created_before: Option<OffsetDateTime>,
    /// Only tokens expiring before this instant (never-expiring ones are left out).
    #[serde(
        skip_serializing_if = "Option::is_none",
        with = "latchkey_proto::rfc3339::option"
    )]
    pub expires_before: Option<OffsetDateTime>,
    /// Only tokens last used before this instant (never-used ones are left out).
    #[serde(
        skip_serializing_if = "Option::is_none",
        with = "latchkey_proto::rfc3339::option"
    )]
    pub last_used_before: Option<OffsetDateTime>,
    /// `Some(true)`: only tokens never used; `Some(false)`: only tokens used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub never_used: Option<bool>,
    /// Items per page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// Where to continue: the `next_cursor` of the page before.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

impl TokenQuery {
    /// The same filters for `page` (its limit and cursor replace this query's).
    pub fn at(&self, page: &PageQuery) -> TokenQuery {
        TokenQuery {
            limit: page.limit,
            cursor: page.cursor.clone(),
            ..self.clone()
        }
    }
}

/// `format=csv` next to a [`TokenQuery`].
#[derive(Serialize)]
struct CsvFormat {
    format: &'static str,
}

/// An async Latchkey API client. Cheap to clone: clones share the connection pool and the
/// cookie store (so a session signed in on one is seen by all), each has its own token.
///
/// Credentials: when a token is set ([`Client::with_token`], [`Client::set_token`]) it is
/// sent on every call in the [`TokenHeader`] form chosen; otherwise calls rely on the
/// session cookie that [`Client::sign_in`] obtained. On cookie-authenticated calls that
/// change state the client sends `Origin` (the base URL's origin) and, when the server set
/// a readable CSRF cookie, its value as `X-CSRF-Token`.
///
/// ```no_run
/// use latchkey_client::Client;
/// # async fn run() -> Result<(), latchkey_client::Error> {
/// let client = Client::with_token("latchkey.example.com", "lkp_...")?;
/// let me = client.me().await?;
/// println!("signed in as {} in {}", me.user.username, me.org.name);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    /// The cookie store, when this client made its own `reqwest::Client` (for CSRF cookies).
    jar: Option<Arc<Jar>>,
    base: Url,
    token: Option<String>,
    token_header: TokenHeader,
    timeout: Duration,
    expiry: ExpiryWatch,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("base_url", &self.base.as_str())
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("token_header", &self.token_header)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A client for the server at `base_url`, with no credentials yet (see
    /// [`Client::sign_in`] and [`Client::set_token`]).
    ///
    /// A URL without a scheme means `https://`; a trailing slash is ignored; a path is kept
    /// as a prefix (`https://example.com/latchkey` calls `/latchkey/api/v1/...`). Only
    /// `http` and `https` are accepted, and no user name, password, query or fragment.
    ///
    /// ```no_run
    /// # fn run() -> Result<(), latchkey_client::Error> {
    /// let local = latchkey_client::Client::new("http://127.0.0.1:8080/")?;
    /// let hosted = latchkey_client::Client::new("latchkey.example.com")?; // https://
    /// # Ok(()) }
    /// ```
    pub fn new(base_url: &str) -> Result<Client, Error> {
        let base = normalize_base_url(base_url)?;
        let jar = Arc::new(Jar::default());
        let http = reqwest::Client::builder()
            .cookie_provider(Arc::clone(&jar))
            .user_agent(concat!("latchkey-client/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Client::assemble(http, Some(jar), base))
    }

    /// A client for `base_url` that authenticates with `token` (sent as
    /// `Authorization: Bearer` unless [`Client::with_token_header`] says otherwise).
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), latchkey_client::Error> {
    /// use latchkey_client::{Client, TokenHeader};
    /// let client = Client::with_token("http://127.0.0.1:8080", "lkl_...")?
    ///     .with_token_header(TokenHeader::Token);
    /// let project = client.create_project("Fraud Demo", None).await?;
    /// # Ok(()) }
    /// ```
    pub fn with_token(base_url: &str, token: impl Into<String>) -> Result<Client, Error> {
        let mut client = Client::new(base_url)?;
        client.set_token(Some(token.into()));
        Ok(client)
    }

    /// A client configured from the environment: [`ENV_URL`] (`LATCHKEY_URL`) and
    /// [`ENV_API_KEY`] (`LATCHKEY_API_KEY`), both required — without a token it fails here,
    /// naming the variable, rather than at its first call with a 401. A client for public
    /// calls only (verify, sign-in, health) is [`Client::new`].
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), latchkey_client::Error> {
    /// let client = latchkey_client::Client::from_env()?;
    /// println!("{:?}", client.me().await?.memberships);
    /// # Ok(()) }
    /// ```
    pub fn from_env() -> Result<Client, Error> {
        Client::from_env_values(std::env::var(ENV_URL).ok(), std::env::var(ENV_API_KEY).ok())
    }

    fn from_env_values(url: Option<String>, key: Option<String>) -> Result<Client, Error> {
        let url = url
            .filter(|u| !u.trim().is_empty())
            .ok_or(Error::MissingEnv(ENV_URL))?;
        let key = key
            .map(|k| k.trim().to_owned())
            .filter(|k| !k.is_empty())
            .ok_or(Error::MissingEnv(ENV_API_KEY))?;
        Client::with_token(&url, key)
    }

    /// A client over an existing `reqwest::Client` (its own proxy, TLS or pool settings).
    /// Give it a cookie store (`cookie_store(true)`) for [`Client::sign_in`] to work; the
    /// `X-CSRF-Token` echo needs a client made by [`Client::new`].
    pub fn from_reqwest(http: reqwest::Client, base_url: &str) -> Result<Client, Error> {
        Ok(Client::assemble(http, None, normalize_base_url(base_url)?))
    }

    fn assemble(http: reqwest::Client, jar: Option<Arc<Jar>>, base: Url) -> Client {
        Client {
            http,
            jar,
            base,
            token: None,
            token_header: TokenHeader::default(),
            timeout: DEFAULT_TIMEOUT,
            expiry: ExpiryWatch::default(),
        }
    }

    /// Sets (or, with `None`, clears) the token sent on every call. While a token is set it
    /// is what authenticates calls, whatever session cookie the client also holds.
    pub fn set_token(&mut self, token: Option<String>) {
        self.token = token;
    }

    /// This client, sending its token in the header form `header`.
    pub fn with_token_header(mut self, header: TokenHeader) -> Client {
        self.token_header = header;
        self
    }

    /// This client, giving up on a call after `timeout` (default [`DEFAULT_TIMEOUT`]).
    pub fn with_timeout(mut self, timeout: Duration) -> Client {
        self.timeout = timeout;
        self
    }

    /// This client, calling `hook` once (per client) with the token's expiry when an
    /// answer's `Latchkey-Token-Expiration` is less than [`EXPIRY_WARNING`] (7 days) away,
    /// so a CI job can say so before its token dies. The CLI prints a warning on stderr.
    ///
    /// ```no_run
    /// # fn run() -> Result<(), latchkey_client::Error> {
    /// let client = latchkey_client::Client::from_env()?
    ///     .on_token_expiring(|at| eprintln!("warning: the Latchkey token expires at {at}"));
    /// # Ok(()) }
    /// ```
    pub fn on_token_expiring(
        mut self,
        hook: impl Fn(OffsetDateTime) + Send + Sync + 'static,
    ) -> Client {
        self.expiry = ExpiryWatch {
            hook: Some(Arc::new(hook)),
            warned: Arc::default(),
        };
        self
    }

    /// Whether a token is set.
    pub fn has_token(&self) -> bool {
        self.token.is_some()
    }

    /// The header form the token is sent in.
    pub fn token_header(&self) -> &TokenHeader {
        &self.token_header
    }

    /// The normalized base URL (always ends in `/`).
    pub fn base_url(&self) -> &Url {
        &self.base
    }

    /// The per-call timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Escape hatch: a request to `path` (relative to the base URL, with or without a
    /// leading `/`, may carry a query) with this client's timeout and credentials applied,
    /// for calls the typed methods do not cover or tests that need the raw response.
    ///
    /// ```no_run
    /// # async fn run(client: &latchkey_client::Client) -> Result<(), latchkey_client::Error> {
    /// let resp = client.request(reqwest::Method::GET, "/api/v1/me").send().await?;
    /// let expiry = resp.headers().get("latchkey-token-expiration").cloned();
    /// # Ok(()) }
    /// ```
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.build(method, path, true)
    }

    /// The one place requests are made: URL, timeout, `Accept`, and credentials — the token
    /// when `with_token` and one is set, otherwise (for methods that change state) the
    /// `Origin` and CSRF proof that cookie-authenticated calls need.
    fn build(&self, method: Method, path: &str, with_token: bool) -> RequestBuilder {
        let url = join_path(&self.base, path);
        let unsafe_method = !method.is_safe();
        let rb = self
            .http
            .request(method, url)
            .timeout(self.timeout)
            .header(ACCEPT, "application/json");
        match (&self.token, with_token) {
            (Some(token), true) => self.apply_token(rb, token),
            _ if unsafe_method => self.apply_csrf(rb),
            _ => rb,
        }
    }

    fn apply_token(&self, rb: RequestBuilder, token: &str) -> RequestBuilder {
        let (name, value) = match &self.token_header {
            TokenHeader::Bearer => (AUTHORIZATION.as_str(), format!("Bearer {token}")),
            TokenHeader::Token => (AUTHORIZATION.as_str(), format!("Token {token}")),
            TokenHeader::XApiKey => ("x-api-key", token.to_owned()),
            TokenHeader::Custom(name) => (name.as_str(), token.to_owned()),
        };
        match HeaderValue::from_str(&value) {
            Ok(mut value) => {
                value.set_sensitive(true);
                rb.header(name, value)
            }
            // Let reqwest record the (secret-free) "failed to parse header value" error,
            // reported when the request is sent.
            Err(_) => rb.header(name, value),
        }
    }

    fn apply_csrf(&self, rb: RequestBuilder) -> RequestBuilder {
        let rb = rb.header(ORIGIN, self.base.origin().ascii_serialization());
        let csrf = self
            .jar
            .as_ref()
            .and_then(|jar| jar.cookies(&self.base))
            .and_then(|cookies| csrf_from_cookie_header(cookies.to_str().ok()?));
        match csrf.and_then(|v| HeaderValue::from_str(&v).ok()) {
            Some(mut value) => {
                value.set_sensitive(true);
                rb.header(CSRF_HEADER, value)
            }
            None => rb,
        }
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, Error> {
        send(&self.expiry, self.request(Method::GET, path)).await
    }

    async fn get_page<T: DeserializeOwned>(
        &self,
        path: &str,
        page: &PageQuery,
    ) -> Result<Page<T>, Error> {
        send(&self.expiry, self.request(Method::GET, path).query(page)).await
    }

    async fn with_body<B, T>(&self, method: Method, path: &str, body: &B) -> Result<T, Error>
    where
        B: Serialize + ?Sized,
        T: DeserializeOwned,
    {
        send(&self.expiry, self.request(method, path).json(body)).await
    }

    async fn post<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, Error> {
        self.with_body(Method::POST, path, body).await
    }

    async fn delete(&self, path: &str) -> Result<(), Error> {
        send_empty(&self.expiry, self.request(Method::DELETE, path)).await
    }

    // ---- session -------------------------------------------------------------------

    /// `POST /api/v1/session`: signs in with a username and password; later calls made
    /// without a token are authenticated by the session cookie this sets.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), latchkey_client::Error> {
    /// let client = latchkey_client::Client::new("http://127.0.0.1:8080")?;
    /// let user = client.sign_in("admin", "correct horse battery staple").await?;
    /// let tokens = client.my_tokens(&Default::default()).await?;
    /// client.sign_out().await?;
    /// # Ok(()) }
    /// ```
    pub async fn sign_in(&self, username: &str, password: &str) -> Result<User, Error> {
        let body = SignInRequest {
            username: username.to_owned(),
            password: password.to_owned(),
        };
        send(
            &self.expiry,
            self.build(Method::POST, "/api/v1/session", false)
                .json(&body),
        )
        .await
    }

    /// `DELETE /api/v1/session`: ends the session [`Client::sign_in`] started (204).
    pub async fn sign_out(&self) -> Result<(), Error> {
        send_empty(
            &self.expiry,
            self.build(Method::DELETE, "/api/v1/session", false),
        )
        .await
    }

    // ---- me ------------------------------------------------------------------------

    /// `GET /api/v1/me`: the caller, their organization and workspace memberships.
    pub async fn me(&self) -> Result<Me, Error> {
        self.get("/api/v1/me").await
    }

    /// `GET /api/v1/me/tokens`: the caller's own tokens in every workspace.
    pub async fn my_tokens(&self, page: &PageQuery) -> Result<Page<Token>, Error> {
        self.get_page("/api/v1/me/tokens", page).await
    }

    // ---- users ---------------------------------------------------------------------

    /// `GET /api/v1/users`: the organization's users (org admins).
    pub async fn list_users(&self, page: &PageQuery) -> Result<Page<User>, Error> {
        self.get_page("/api/v1/users", page).await
    }

    /// `GET /api/v1/users?kind=…`: one page of the users of `kind` (org admins);
    /// `UserKind::Service` lists the service accounts.
    pub async fn list_users_of_kind(
        &self,
        kind: UserKind,
        page: &PageQuery,
    ) -> Result<Page<User>, Error> {
        send(
            &self.expiry,
            self.request(Method::GET, "/api/v1/users")
                .query(&[("kind", kind.as_str())])
                .query(page),
        )
        .await
    }

    /// `POST /api/v1/users` with `kind` `service`: a service account named `username`
    /// (org role `member`, no password; it never signs in). Org admins create personal
    /// tokens for it with `owner_id`.
    pub async fn create_service_account(
        &self,
        username: &str,
        display_name: Option<&str>,
    ) -> Result<User, Error> {
        let mut request = CreateUserRequest::service(username);
        request.display_name = display_name.map(str::to_owned);
        self.create_user(&request).await
    }

    /// `POST /api/v1/users`: creates a user (org admins; only owners grant `owner`).
    pub async fn create_user(&self, request: &CreateUserRequest) -> Result<User, Error> {
        self.post("/api/v1/users", request).await
    }

    /// `PATCH /api/v1/users/{id}`: changes a user; `active: Some(false)` deactivates.
    pub async fn update_user(&self, id: &str, request: &UpdateUserRequest) -> Result<User, Error> {
        let path = format!("/api/v1/users/{}", Seg(id));
        self.with_body(Method::PATCH, &path, request).await
    }

    // ---- workspaces and members ----------------------------------------------------

    /// `GET /api/v1/workspaces`: the first page (up to 50) of the workspaces the caller
    /// sees; see [`Client::list_workspaces_page`] for more.
    pub async fn list_workspaces(&self) -> Result<Page<Workspace>, Error> {
        self.list_workspaces_page(&PageQuery::default()).await
    }

    /// `GET /api/v1/workspaces`, one page.
    pub async fn list_workspaces_page(&self, page: &PageQuery) -> Result<Page<Workspace>, Error> {
        self.get_page("/api/v1/workspaces", page).await
    }

    /// `POST /api/v1/workspaces`: creates a workspace (names are unique in the org).
    pub async fn create_workspace(&self, name: &str) -> Result<Workspace, Error> {
        let body = CreateWorkspaceRequest {
            name: name.to_owned(),
        };
        self.post("/api/v1/workspaces", &body).await
    }

    /// `GET /api/v1/workspaces/{id}`.
    pub async fn get_workspace(&self, id: &str) -> Result<Workspace, Error> {
        self.get(&format!("/api/v1/workspaces/{}", Seg(id))).await
    }

    /// `GET /api/v1/workspaces/{ws}/members`: the first page (up to 50) of members; see
    /// [`Client::list_members_page`] for more.
    pub async fn list_members(&self, workspace_id: &str) -> Result<Page<Member>, Error> {
        self.list_members_page(workspace_id, &PageQuery::default())
            .await
    }

    /// `GET /api/v1/workspaces/{ws}/members`, one page.
    pub async fn list_members_page(
        &self,
        workspace_id: &str,
        page: &PageQuery,
    ) -> Result<Page<Member>, Error> {
        let path = format!("/api/v1/workspaces/{}/members", Seg(workspace_id));
        self.get_page(&path, page).await
    }

    /// `PUT /api/v1/workspaces/{ws}/members/{user}`: adds the user or changes their role.
    pub async fn put_member(
        &self,
        workspace_id: &str,
        user_id: &str,
        role: WorkspaceRole,
    ) -> Result<Member, Error> {
        let path = format!(
            "/api/v1/workspaces/{}/members/{}",
            Seg(workspace_id),
            Seg(user_id)
        );
        self.with_body(Method::PUT, &path, &PutMemberRequest { role })
            .await
    }

    /// `DELETE /api/v1/workspaces/{ws}/members/{user}` (204).
    pub async fn remove_member(&self, workspace_id: &str, user_id: &str) -> Result<(), Error> {
        let path = format!(
            "/api/v1/workspaces/{}/members/{}",
            Seg(workspace_id),
            Seg(user_id)
        );
        self.delete(&path).await
    }

    // ---- tokens --------------------------------------------------------------------

    /// The token routes: create, list, get, update, revoke, restore, rotate, reveal, delete.
    ///
    /// ```no_run
    /// # async fn run(client: &latchkey_client::Client, ws: &str) -> Result<(), latchkey_client::Error> {
    /// use latchkey_client::proto::{CreateTokenRequest, TokenType};
    /// let created = client.tokens().create(ws, &CreateTokenRequest::new("ci", TokenType::Client)).await?;
    /// client.tokens().revoke(&created.meta.id).await?;
    /// # Ok(()) }
    /// ```
    pub fn tokens(&self) -> Tokens<'_> {
        Tokens { client: self }
    }

    /// `POST /api/v1/tokens/verify`: checks a secret; answers `valid` with the token (its
    /// `metadata` too), or the reason it does not work. A token with `allowed_ips` needs
    /// the address it is used from: see [`Client::verify_with`].
    pub async fn verify(&self, secret: &str) -> Result<VerifyResponse, Error> {
        let body = VerifyRequest {
            token: secret.to_owned(),
            ip: None,
        };
        self.post("/api/v1/tokens/verify", &body).await
    }

    /// `POST /api/v1/tokens/verify` with the whole request (`ip`: the address your own
    /// caller used, checked against the token's `allowed_ips`), answering with the
    /// `RateLimit-*` and `Retry-After` headers too. Every check is a use of a token with a
    /// `rate_limit` or `remaining_uses`.
    ///
    /// ```no_run
    /// # async fn run(client: &latchkey_client::Client, secret: String) -> Result<(), latchkey_client::Error> {
    /// use latchkey_client::proto::VerifyRequest;
    /// let answer = client
    ///     .verify_with(&VerifyRequest { token: secret, ip: Some("203.0.113.7".into()) })
    ///     .await?;
    /// match (&answer.response.token, answer.rate_limit) {
    ///     (Some(token), _) if answer.response.valid => println!("plan: {:?}", token.metadata),
    ///     (_, Some(rl)) => println!("{:?}; retry in {:?} s", answer.response.reason, rl.retry_after),
    ///     _ => println!("{:?}", answer.response.reason),
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn verify_with(&self, request: &VerifyRequest) -> Result<VerifyAnswer, Error> {
        let (response, headers) = send_with_headers(
            &self.expiry,
            self.request(Method::POST, "/api/v1/tokens/verify")
                .json(request),
        )
        .await?;
        Ok(VerifyAnswer {
            response,
            rate_limit: RateLimitStatus::from_headers(&headers),
        })
    }

    /// `POST /api/v1/token/refresh`: exchanges a personal token for a short-lived access
    /// JWT. Authenticated by the token in the body only (this client's own credentials are
    /// not sent).
    pub async fn refresh(&self, personal_token: &str) -> Result<RefreshResponse, Error> {
        let body = RefreshRequest {
            refresh: personal_token.to_owned(),
        };
        send(
            &self.expiry,
            self.build(Method::POST, "/api/v1/token/refresh", false)
                .json(&body),
        )
        .await
    }

    /// `POST /oauth/introspect` (RFC 7662, form `token=`): the caller needs the
    /// `introspect` scope, an admin token, or an org admin's session. Inactive tokens give
    /// exactly `{"active": false}`.
    pub async fn introspect(&self, token: &str) -> Result<serde_json::Value, Error> {
        send(
            &self.expiry,
            self.request(Method::POST, "/oauth/introspect")
                .form(&[("token", token)]),
        )
        .await
    }

    /// [`Client::introspect`] of a token used from `ip` (checked against its
    /// `allowed_ips`). An active answer carries the token's `metadata`.
    pub async fn introspect_from(&self, token: &str, ip: &str) -> Result<serde_json::Value, Error> {
        send(
            &self.expiry,
            self.request(Method::POST, "/oauth/introspect")
                .form(&[("token", token), ("ip", ip)]),
        )
        .await
    }

    /// `POST /oauth/revoke` (RFC 7009, form `token=`); a token may revoke itself.
    pub async fn oauth_revoke(&self, token: &str) -> Result<(), Error> {
        send_empty(
            &self.expiry,
            self.request(Method::POST, "/oauth/revoke")
                .form(&[("token", token)]),
        )
        .await
    }

    /// `POST /api/v1/credentials/revoke`: reports leaked secrets, revoking each that is a
    /// live token (202, the same answer whatever they were). Needs no other credential, so
    /// this client's own are not sent.
    pub async fn report_leaked(&self, tokens: &[String]) -> Result<(), Error> {
        let body = serde_json::json!({ "tokens": tokens });
        send_empty(
            &self.expiry,
            self.build(Method::POST, "/api/v1/credentials/revoke", false)
                .json(&body),
        )
        .await
    }

    // ---- projects ------------------------------------------------------------------

    /// `POST /projects`: creates a project in the workspace of the token in use.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), latchkey_client::Error> {
    /// # const CLUSTER_URL: &str = ""; const API_TOKEN: &str = "";
    /// let project = latchkey_client::Client::with_token(CLUSTER_URL, API_TOKEN)?
    ///     .create_project("Fraud Demo", Some("This is an Onboarding Demo"))
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub async fn create_project(
        &self,
        name: &str,
        description: Option<&str>,
    ) -> Result<Project, Error> {
        self.post("/projects", &project_body(name, description))
            .await
    }

    /// `POST /api/v1/workspaces/{ws}/projects`: creates a project in a given workspace.
    pub async fn create_project_in(
        &self,
        workspace_id: &str,
        name: &str,
        description: Option<&str>,
    ) -> Result<Project, Error> {
        let path = format!("/api/v1/workspaces/{}/projects", Seg(workspace_id));
        self.post(&path, &project_body(name, description)).await
    }

    /// `GET /api/v1/workspaces/{ws}/projects`: the first page (up to 50); see
    /// [`Client::list_projects_page`] for more.
    pub async fn list_projects(&self, workspace_id: &str) -> Result<Page<Project>, Error> {
        self.list_projects_page(workspace_id, &PageQuery::default())
            .await
    }

    /// `GET /api/v1/workspaces/{ws}/projects`, one page.
    pub async fn list_projects_page(
        &self,
        workspace_id: &str,
        page: &PageQuery,
    ) -> Result<Page<Project>, Error> {
        let path = format!("/api/v1/workspaces/{}/projects", Seg(workspace_id));
        self.get_page(&path, page).await
    }

    // ---- settings and audit --------------------------------------------------------

    /// `GET /api/v1/instance/settings` (the instance owner).
    pub async fn instance_settings(&self) -> Result<InstanceSettings, Error> {
        self.get("/api/v1/instance/settings").await
    }

    /// `PATCH /api/v1/instance/settings` (the instance owner).
    pub async fn update_instance_settings(
        &self,
        request: &UpdateInstanceSettingsRequest,
    ) -> Result<InstanceSettings, Error> {
        self.with_body(Method::PATCH, "/api/v1/instance/settings", request)
            .await
    }

    /// `GET /api/v1/orgs/{org}/token-settings` (org admins).
    pub async fn token_settings(&self, org_id: &str) -> Result<TokenSettings, Error> {
        self.get(&format!("/api/v1/orgs/{}/token-settings", Seg(org_id)))
            .await
    }

    /// `PATCH /api/v1/orgs/{org}/token-settings` (org admins).
    pub async fn update_token_settings(
        &self,
        org_id: &str,
        request: &UpdateTokenSettingsRequest,
    ) -> Result<TokenSettings, Error> {
        let path = format!("/api/v1/orgs/{}/token-settings", Seg(org_id));
        self.with_body(Method::PATCH, &path, request).await
    }

    /// `GET /api/v1/audit-events`: newest first, filtered by `query`.
    pub async fn audit_events(&self, query: &AuditQuery) -> Result<Page<AuditEvent>, Error> {
        send(
            &self.expiry,
            self.request(Method::GET, "/api/v1/audit-events")
                .query(query),
        )
        .await
    }

    // ---- health --------------------------------------------------------------------

    /// `GET /healthz`: the process is up.
    pub async fn healthz(&self) -> Result<Health, Error> {
        send(&self.expiry, self.build(Method::GET, "/healthz", false)).await
    }

    /// `GET /readyz`: the node can serve (store reachable, not stale); an error otherwise.
    pub async fn readyz(&self) -> Result<Health, Error> {
        send(&self.expiry, self.build(Method::GET, "/readyz", false)).await
    }
}

/// The webhook endpoint routes (org admins), from [`Client::webhooks`].
#[derive(Debug, Clone, Copy)]
pub struct Webhooks<'a> {
    client: &'a Client,
}

impl Client {
    /// The webhook endpoint routes: create (the secret is in the answer, once), list, get,
    /// update, delete, test, deliveries, redeliver.
    ///
    /// ```no_run
    /// # async fn run(client: &latchkey_client::Client) -> Result<(), latchkey_client::Error> {
    /// use latchkey_client::proto::{CreateWebhookRequest, EventType};
    /// let created = client.webhooks().create(&CreateWebhookRequest {
    ///     url: "https://hooks.example.com/latchkey".into(),
    ///     events: vec![EventType::TokenExpiring, EventType::TokenLeaked],
    ///     description: None,
    ///     enabled: None,
    /// }).await?;
    /// println!("verify deliveries with {}", created.secret);
    /// # Ok(()) }
    /// ```
    pub fn webhooks(&self) -> Webhooks<'_> {
        Webhooks { client: self }
    }
}

impl Webhooks<'_> {
    /// `POST /api/v1/webhooks` (201): the endpoint plus its signing secret, shown once.
    pub async fn create(&self, request: &CreateWebhookRequest) -> Result<CreatedWebhook, Error> {
        self.client.post("/api/v1/webhooks", request).await
    }

    /// `GET /api/v1/webhooks`: one page, newest first.
    pub async fn list(&self, page: &PageQuery) -> Result<Page<Webhook>, Error> {
        self.client.get_page("/api/v1/webhooks", page).await
    }

    /// Every endpoint, walking all pages.
    pub async fn list_all(&self) -> Result<Vec<Webhook>, Error> {
        collect_all(|page| async move { self.list(&page).await }).await
    }

    /// `GET /api/v1/webhooks/{id}`.
    pub async fn get(&self, id: &str) -> Result<Webhook, Error> {
        self.client
            .get(&format!("/api/v1/webhooks/{}", Seg(id)))
            .await
    }

    /// `PATCH /api/v1/webhooks/{id}`: only the fields set change.
    pub async fn update(&self, id: &str, request: &UpdateWebhookRequest) -> Result<Webhook, Error> {
        let path = format!("/api/v1/webhooks/{}", Seg(id));
        self.client.with_body(Method::PATCH, &path, request).await
    }

    /// `DELETE /api/v1/webhooks/{id}` (204), with its deliveries.
    pub async fn delete(&self, id: &str) -> Result<(), Error> {
        self.client
            .delete(&format!("/api/v1/webhooks/{}", Seg(id)))
            .await
    }

    /// `POST /api/v1/webhooks/{id}/test` (202): queues a `webhook.test` message.
    pub async fn test(&self, id: &str) -> Result<WebhookDelivery, Error> {
        let path = format!("/api/v1/webhooks/{}/test", Seg(id));
        send(
            &self.client.expiry,
            self.client.request(Method::POST, &path),
        )
        .await
    }

    /// `GET /api/v1/webhooks/{id}/deliveries`: one page, newest first, with attempts.
    pub async fn deliveries(
        &self,
        id: &str,
        page: &PageQuery,
    ) -> Result<Page<WebhookDelivery>, Error> {
        let path = format!("/api/v1/webhooks/{}/deliveries", Seg(id));
        self.client.get_page(&path, page).await
    }

    /// `POST /api/v1/webhooks/{id}/deliveries/{delivery}/redeliver` (202): the same
    /// message (same `webhook-id`) again, as a new delivery.
    pub async fn redeliver(&self, id: &str, delivery: &str) -> Result<WebhookDelivery, Error> {
        let path = format!(
            "/api/v1/webhooks/{}/deliveries/{}/redeliver",
            Seg(id),
            Seg(delivery)
        );
        send(
            &self.client.expiry,
            self.client.request(Method::POST, &path),
        )
        .await
    }
}

/// The token routes, from [`Client::tokens`].
#[derive(Debug, Clone, Copy)]
pub struct Tokens<'a> {
    client: &'a Client,
}

impl Tokens<'_> {
    /// `POST /api/v1/workspaces/{ws}/tokens`: creates a token; the answer holds its secret
    /// (in `token`), shown this once.
    pub async fn create(
        &self,
        workspace_id: &str,
        request: &CreateTokenRequest,
    ) -> Result<CreatedToken, Error> {
        let path = format!("/api/v1/workspaces/{}/tokens", Seg(workspace_id));
        self.client.post(&path, request).await
    }

    /// The tokens the caller may see: in a workspace (`GET /api/v1/workspaces/{ws}/tokens`),
    /// or with `None` the caller's own (`GET /api/v1/me/tokens`).
    pub async fn list(
        &self,
        workspace_id: Option<&str>,
        page: &PageQuery,
    ) -> Result<Page<Token>, Error> {
        match workspace_id {
            Some(ws) => {
                let path = format!("/api/v1/workspaces/{}/tokens", Seg(ws));
                self.client.get_page(&path, page).await
            }
            None => self.client.my_tokens(page).await,
        }
    }

    /// Every token [`Tokens::list`] would show, all pages.
    pub async fn list_all(&self, workspace_id: Option<&str>) -> Result<Vec<Token>, Error> {
        collect_all(|page| async move { self.list(workspace_id, &page).await }).await
    }

    /// `GET /api/v1/tokens`: one page of every token the caller may see, across
    /// workspaces, matching `query`.
    pub async fn inventory(&self, query: &TokenQuery) -> Result<Page<Token>, Error> {
        send(
            &self.client.expiry,
            self.client
                .request(Method::GET, "/api/v1/tokens")
                .query(query),
        )
        .await
    }

    /// Every token [`Tokens::inventory`] matches, all pages (200 a page; `query`'s own
    /// limit and cursor are not used).
    pub async fn inventory_all(&self, query: &TokenQuery) -> Result<Vec<Token>, Error> {
        collect_all(|page| {
            let query = query.at(&page);
            async move { self.inventory(&query).await }
        })
        .await
    }

    /// `GET /api/v1/tokens?format=csv`: every token matching `query` as CSV (a header row,
    /// no secrets; `query`'s limit and cursor are not sent).
    pub async fn export_csv(&self, query: &TokenQuery) -> Result<String, Error> {
        let query = query.at(&PageQuery::default());
        let request = self
            .client
            .request(Method::GET, "/api/v1/tokens")
            .query(&query)
            .query(&CsvFormat { format: "csv" });
        let response = request.send().await?;
        self.client.expiry.observe(&response);
        let status = response.status().as_u16();
        let body = response.bytes().await?;
        if !(200..300).contains(&status) {
            return Err(Error::from_response(status, &body));
        }
        Ok(String::from_utf8_lossy(&body).into_owned())
    }

    /// `POST /api/v1/tokens/bulk-revoke`: revokes up to 1000 tokens in one transaction;
    /// every id comes back, in `revoked` or in `skipped` with why.
    pub async fn bulk_revoke(&self, ids: &[String]) -> Result<BulkRevokeResponse, Error> {
        let body = BulkRevokeRequest { ids: ids.to_vec() };
        self.client.post("/api/v1/tokens/bulk-revoke", &body).await
    }

    /// `GET /api/v1/tokens/{id}`: one token's metadata.
    pub async fn get(&self, id: &str) -> Result<Token, Error> {
        self.client
            .get(&format!("/api/v1/tokens/{}", Seg(id)))
            .await
    }

    /// `GET /api/v1/tokens/{id}/usage`: the last use, the last 5 distinct client
    /// addresses (newest first) and the uses per UTC day over the last 90 days (oldest
    /// first). Counted in memory by the nodes and written with their last-used flush, so
    /// other nodes' uses show up to `last_used_flush_secs` late. 404 for a token you may
    /// not see.
    pub async fn usage(&self, id: &str) -> Result<TokenUsage, Error> {
        self.client
            .get(&format!("/api/v1/tokens/{}/usage", Seg(id)))
            .await
    }

    /// `POST /api/v1/tokens/{id}/revoke`: turns the token off (it can be restored).
    pub async fn revoke(&self, id: &str) -> Result<Token, Error> {
        self.action(id, "revoke").await
    }

    /// `POST /api/v1/tokens/{id}/restore`: turns a revoked token back on (re-checks limits;
    /// a leaked token cannot be restored: 409 `leaked`).
    pub async fn restore(&self, id: &str) -> Result<Token, Error> {
        self.action(id, "restore").await
    }

    /// `POST /api/v1/tokens/{id}/approve`: a pending token becomes `active` (org admins
    /// other than its creator; 403 otherwise, 409 when it is not pending).
    pub async fn approve(&self, id: &str) -> Result<Token, Error> {
        self.action(id, "approve").await
    }

    /// `POST /api/v1/tokens/{id}/deny`: a pending token becomes `denied`, for good (the
    /// same callers and answers as [`Tokens::approve`]).
    pub async fn deny(&self, id: &str) -> Result<Token, Error> {
        self.action(id, "deny").await
    }

    async fn action(&self, id: &str, verb: &str) -> Result<Token, Error> {
        let path = format!("/api/v1/tokens/{}/{verb}", Seg(id));
        send(
            &self.client.expiry,
            self.client.request(Method::POST, &path),
        )
        .await
    }

    /// `POST /api/v1/tokens/{id}/rotate`: a new secret under the same id; the old one keeps
    /// working for `grace_seconds`. The answer holds the new secret.
    pub async fn rotate(
        &self,
        id: &str,
        request: &RotateTokenRequest,
    ) -> Result<CreatedToken, Error> {
        send(&self.client.expiry, self.rotate_request(id, request)).await
    }

    /// [`Tokens::rotate`] with an `Idempotency-Key`: a retry with the same key (and body)
    /// within 24 h gets the same answer, secret included, instead of rotating again.
    pub async fn rotate_with_idempotency_key(
        &self,
        id: &str,
        request: &RotateTokenRequest,
        idempotency_key: &str,
    ) -> Result<CreatedToken, Error> {
        let rb = self.rotate_request(id, request);
        send(
            &self.client.expiry,
            rb.header(IDEMPOTENCY_HEADER, idempotency_key),
        )
        .await
    }

    fn rotate_request(&self, id: &str, request: &RotateTokenRequest) -> RequestBuilder {
        let path = format!("/api/v1/tokens/{}/rotate", Seg(id));
        self.client.request(Method::POST, &path).json(request)
    }

    /// `PATCH /api/v1/tokens/{id}`: changes the token's verify-time policy (`metadata`,
    /// `allowed_ips`, `rate_limit`, `remaining_uses`, `refill`). Only the fields set
    /// change; `Some(None)` clears one. A token changing its own policy may only narrow it.
    ///
    /// ```no_run
    /// # async fn run(client: &latchkey_client::Client, id: &str) -> Result<(), latchkey_client::Error> {
    /// use latchkey_client::proto::{RateLimit, UpdateTokenRequest};
    /// let token = client.tokens().update(id, &UpdateTokenRequest {
    ///     rate_limit: Some(Some(RateLimit { limit: 100, window_secs: 60 })),
    ///     remaining_uses: Some(None), // unlimited from now on
    ///     ..UpdateTokenRequest::default()
    /// }).await?;
    /// # Ok(()) }
    /// ```
    pub async fn update(&self, id: &str, request: &UpdateTokenRequest) -> Result<Token, Error> {
        let path = format!("/api/v1/tokens/{}", Seg(id));
        self.client.with_body(Method::PATCH, &path, request).await
    }

    /// `POST /api/v1/tokens/{id}/reveal`: a recoverable token's current secret (see
    /// `recoverable_types` in the token settings). 409 `not_recoverable` when none is kept
    /// or the token does not work now; 403 for a personal or legacy token of someone else;
    /// 429 past the per-caller reveal throttle. Every reveal is audited.
    pub async fn reveal(&self, id: &str) -> Result<RevealedToken, Error> {
        let path = format!("/api/v1/tokens/{}/reveal", Seg(id));
        send(
            &self.client.expiry,
            self.client.request(Method::POST, &path),
        )
        .await
    }

    /// `DELETE /api/v1/tokens/{id}`: removes the token for good (204).
    pub async fn delete(&self, id: &str) -> Result<(), Error> {
        self.client
            .delete(&format!("/api/v1/tokens/{}", Seg(id)))
            .await
    }
}

/// How close an expiry must be for [`Client::on_token_expiring`]'s hook to fire.
pub const EXPIRY_WARNING: Duration = Duration::from_secs(7 * 86_400);

/// The token-expiry hook and whether it already fired.
#[derive(Clone, Default)]
struct ExpiryWatch {
    hook: Option<Arc<dyn Fn(OffsetDateTime) + Send + Sync>>,
    warned: Arc<std::sync::atomic::AtomicBool>,
}

impl fmt::Debug for ExpiryWatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExpiryWatch")
            .field("hook", &self.hook.is_some())
            .finish()
    }
}

impl ExpiryWatch {
    fn observe(&self, response: &reqwest::Response) {
        let Some(hook) = &self.hook else {
            return;
        };
        let Some(at) = token_expiration(response.headers()) else {
            return;
        };
        // The SDK runs in the caller's process, an edge of the system: it owns the wall
        // clock for this warning (clippy.toml bans reading it elsewhere).
        #[allow(clippy::disallowed_methods)]
        let now = OffsetDateTime::now_utc();
        if expires_soon(at, now) && !self.warned.swap(true, std::sync::atomic::Ordering::Relaxed) {
            hook(at);
        }
    }
}

/// The instant in `Latchkey-Token-Expiration`, if the answer carries one.
pub fn token_expiration(headers: &reqwest::header::HeaderMap) -> Option<OffsetDateTime> {
    let text = headers.get("latchkey-token-expiration")?.to_str().ok()?;
    OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()
}

/// Whether `expires_at` is less than [`EXPIRY_WARNING`] after `now` (the warning rule the
/// SDKs and the CLI share).
pub fn expires_soon(expires_at: OffsetDateTime, now: OffsetDateTime) -> bool {
    expires_at - now < EXPIRY_WARNING
}

/// Sends, turns an error status into [`Error::Api`], and decodes a success body as `T`.
async fn send<T: DeserializeOwned>(
    expiry: &ExpiryWatch,
    request: RequestBuilder,
) -> Result<T, Error> {
    Ok(send_with_headers(expiry, request).await?.0)
}

/// [`send`], also giving the answer's headers.
async fn send_with_headers<T: DeserializeOwned>(
    expiry: &ExpiryWatch,
    request: RequestBuilder,
) -> Result<(T, reqwest::header::HeaderMap), Error> {
    let response = request.send().await?;
    expiry.observe(&response);
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.bytes().await?;
    if !(200..300).contains(&status) {
        return Err(Error::from_response_with_headers(status, &headers, &body));
    }
    let value = serde_json::from_slice(&body).map_err(|e| Error::decode(status, &e))?;
    Ok((value, headers))
}

/// Sends and turns an error status into [`Error::Api`]; a success body is ignored.
async fn send_empty(expiry: &ExpiryWatch, request: RequestBuilder) -> Result<(), Error> {
    let response = request.send().await?;
    expiry.observe(&response);
    let status = response.status().as_u16();
    if !(200..300).contains(&status) {
        let headers = response.headers().clone();
        let body = response.bytes().await?;
        return Err(Error::from_response_with_headers(status, &headers, &body));
    }
    Ok(())
}

fn project_body(name: &str, description: Option<&str>) -> CreateProjectRequest {
    CreateProjectRequest {
        name: name.to_owned(),
        description: description.map(str::to_owned),
    }
}

/// Parses a base URL: no scheme means `https://`; only http(s); no credentials, query or
/// fragment; the path (a prefix) always ends in `/`.
pub(crate) fn normalize_base_url(input: &str) -> Result<Url, Error> {
    let trimmed = input.trim();
    if trimmed.is_empty() {
        return Err(Error::InvalidUrl("the URL is empty".to_owned()));
    }
    // `Url::parse("host:8080")` would read `host` as a scheme, so look for `://` instead.
    let with_scheme = if trimmed.contains("://") {
        trimmed.to_owned()
    } else {
        format!("https://{trimmed}")
    };
    let mut url = Url::parse(&with_scheme).map_err(|e| Error::InvalidUrl(format!("{e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(Error::InvalidUrl(format!(
            "scheme {:?} is not http or https",
            url.scheme()
        )));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(Error::InvalidUrl("the URL has no host".to_owned()));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Error::InvalidUrl(
            "credentials in the URL are not supported; use a token".to_owned(),
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(Error::InvalidUrl(
            "the URL may not have a query or fragment".to_owned(),
        ));
    }
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(url)
}

/// `base` (ending in `/`) followed by `path` (leading `/` optional, may carry a query).
fn join_path(base: &Url, path: &str) -> String {
    format!("{}{}", base.as_str(), path.trim_start_matches('/'))
}

/// Finds a readable CSRF cookie (a name containing `csrf` or `xsrf`) in a `Cookie` header.
fn csrf_from_cookie_header(cookies: &str) -> Option<String> {
    cookies.split(';').find_map(|pair| {
        let (name, value) = pair.trim().split_once('=')?;
        let name = name.to_ascii_lowercase();
        (name.contains("csrf") || name.contains("xsrf")).then(|| value.to_owned())
    })
}

/// A path segment, percent-encoded so an id can never change the route.
struct Seg<'a>(&'a str);

impl fmt::Display for Seg<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in self.0.bytes() {
            if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'~') {
                write!(f, "{}", byte as char)?;
            } else {
                write!(f, "%{byte:02X}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(s: &str) -> String {
        match normalize_base_url(s) {
            Ok(u) => u.to_string(),
            Err(e) => format!("ERR {e}"),
        }
    }

    #[test]
    fn base_url_normalisation() {
        assert_eq!(
            norm("latchkey.example.com"),
            "https://latchkey.example.com/"
        );
        assert_eq!(
            norm("latchkey.example.com:8443/"),
            "https://latchkey.example.com:8443/"
        );
        assert_eq!(norm("localhost:8080"), "https://localhost:8080/");
        assert_eq!(norm("http://127.0.0.1:8080"), "http://127.0.0.1:8080/");
        assert_eq!(norm("http://127.0.0.1:8080/"), "http://127.0.0.1:8080/");
        assert_eq!(norm("  HTTPS://Example.COM  "), "https://example.com/");
        assert_eq!(
            norm("https://example.com/latchkey"),
            "https://example.com/latchkey/"
        );
        assert_eq!(
            norm("https://example.com/latchkey/"),
            "https://example.com/latchkey/"
        );
        assert_eq!(norm("[::1]:9000"), "https://[::1]:9000/");
    }

    #[test]
    fn base_url_rejections() {
        for bad in [
            "",
            "   ",
            "ftp://example.com",
            "https://",
            "https://user:secret@example.com",
            "https://example.com/?x=1",
            "https://example.com/#top",
            "http://exa mple.com",
        ] {
            assert!(
                matches!(normalize_base_url(bad), Err(Error::InvalidUrl(_))),
                "{bad:?} was accepted"
            );
        }
        // The rejection of credentials does not echo them.
        let e = norm("https://user:secret@example.com");
        assert!(!e.contains("secret"), "{e}");
    }

    #[test]
    fn paths_join_under_the_base() {
        let root = normalize_base_url("http://h:1").ok();
        let pre = normalize_base_url("http://h:1/lk").ok();
        let (Some(root), Some(pre)) = (root, pre) else {
            panic!("bases did not parse")
        };
        assert_eq!(join_path(&root, "/api/v1/me"), "http://h:1/api/v1/me");
        assert_eq!(join_path(&root, "healthz"), "http://h:1/healthz");
        assert_eq!(
            join_path(&pre, "/api/v1/me?x=1"),
            "http://h:1/lk/api/v1/me?x=1"
        );
    }

    #[test]
    fn segments_are_encoded() {
        assert_eq!(
            Seg("0197f0c4-aaaa-7bbb-8ccc-0123456789ab").to_string(),
            "0197f0c4-aaaa-7bbb-8ccc-0123456789ab"
        );
        assert_eq!(Seg("a/b?c#d e").to_string(), "a%2Fb%3Fc%23d%20e");
        assert_eq!(Seg("..").to_string(), "%2E%2E");
        assert_eq!(Seg("é").to_string(), "%C3%A9");
    }

    fn query_of<Q: Serialize>(query: &Q) -> String {
        let client = Client::new("http://h:1").unwrap();
        let req = client
            .request(Method::GET, "/x")
            .query(query)
            .build()
            .unwrap();
        req.url().query().unwrap_or_default().to_owned()
    }

    #[test]
    fn query_strings() {
        assert_eq!(query_of(&PageQuery::default()), "");
        let page = PageQuery {
            limit: Some(10),
            cursor: Some("a b&c".into()),
        };
        assert_eq!(query_of(&page), "limit=10&cursor=a+b%26c");
        let audit = AuditQuery {
            actor: Some("u1".into()),
            since: Some(time::macros::datetime!(2027-08-22 10:00 UTC)),
            limit: Some(5),
            ..AuditQuery::default()
        };
        assert_eq!(
            query_of(&audit),
            "actor=u1&since=2027-08-22T10%3A00%3A00Z&limit=5"
        );
    }

    #[test]
    fn page_query_next() {
        let page = Page::<u8> {
            items: vec![],
            next_cursor: Some("c2".into()),
        };
        let q = PageQuery::limit(20);
        assert_eq!(
            q.next(&page),
            Some(PageQuery {
                limit: Some(20),
                cursor: Some("c2".into())
            })
        );
        let last = Page::<u8> {
            items: vec![],
            next_cursor: None,
        };
        assert_eq!(q.next(&last), None);
    }

    #[test]
    fn csrf_cookie_lookup() {
        assert_eq!(
            csrf_from_cookie_header("latchkey_session=abc; latchkey_csrf=xyz"),
            Some("xyz".into())
        );
        assert_eq!(csrf_from_cookie_header("XSRF-TOKEN=t1"), Some("t1".into()));
        assert_eq!(csrf_from_cookie_header("session=abc"), None);
    }

    #[test]
    fn env_configuration() {
        assert!(matches!(
            Client::from_env_values(None, Some("lkp_x".into())),
            Err(Error::MissingEnv(ENV_URL))
        ));
        assert!(matches!(
            Client::from_env_values(Some(" ".into()), None),
            Err(Error::MissingEnv(ENV_URL))
        ));
        assert!(matches!(
            Client::from_env_values(Some("example.com".into()), Some(" ".into())),
            Err(Error::MissingEnv(ENV_API_KEY))
        ));
        assert!(matches!(
            Client::from_env_values(Some("example.com".into()), None),
            Err(Error::MissingEnv(ENV_API_KEY))
        ));
        let c = Client::from_env_values(Some("example.com".into()), Some("lkp_x".into()));
        assert!(c.as_ref().is_ok_and(|c| c.has_token()), "{c:?}");
    }

    #[test]
    fn debug_redacts_the_token() {
        let secret = "lkp_supersecretsupersecretsupersecret123456";
        let Ok(client) = Client::with_token("example.com", secret) else {
            panic!("client did not build")
        };
        let shown = format!("{client:?}");
        assert!(!shown.contains(secret), "{shown}");
        assert!(shown.contains("<redacted>"), "{shown}");
        assert!(shown.contains("https://example.com/"), "{shown}");
    }

    #[test]
    fn requests_carry_the_token_in_the_chosen_header() {
        let Ok(client) = Client::with_token("http://h:1", "lkp_t") else {
            panic!("client did not build")
        };
        let header_of = |c: &Client| {
            let req = c.request(Method::GET, "/x").build().ok()?;
            let hs = req.headers();
            Some(
                [AUTHORIZATION.as_str(), "x-api-key", "rime-api-key"]
                    .iter()
                    .filter_map(|h| Some(format!("{h}: {}", hs.get(*h)?.to_str().ok()?)))
                    .collect::<Vec<_>>()
                    .join(", "),
            )
        };
        assert_eq!(
            header_of(&client).as_deref(),
            Some("authorization: Bearer lkp_t")
        );
        let c = client.clone().with_token_header(TokenHeader::Token);
        assert_eq!(header_of(&c).as_deref(), Some("authorization: Token lkp_t"));
        let c = client.clone().with_token_header(TokenHeader::XApiKey);
        assert_eq!(header_of(&c).as_deref(), Some("x-api-key: lkp_t"));
        let c = client
            .clone()
            .with_token_header(TokenHeader::Custom("rime-api-key".into()));
        assert_eq!(header_of(&c).as_deref(), Some("rime-api-key: lkp_t"));

        // The token header is marked sensitive, so reqwest's Debug hides it.
        let req = client.request(Method::GET, "/x").build().ok();
        assert!(!format!("{req:?}").contains("lkp_t"));

        // Without a token: no credentials on reads, Origin on writes.
        let mut anon = client.clone();
        anon.set_token(None);
        let get = anon.request(Method::GET, "/x").build().ok();
        assert!(get.is_some_and(|r| r.headers().get(ORIGIN).is_none()));
        let post = anon.request(Method::POST, "/x").build().ok();
        assert_eq!(
            post.and_then(|r| r.headers().get(ORIGIN)?.to_str().ok().map(str::to_owned)),
            Some("http://h:1".to_owned())
        );
    }
}
