//! The Rust SDK for Latchkey, the self-hosted API token service.
//!
//! One async [`Client`] with a method per route of the HTTP API (DESIGN.md §3), speaking the
//! wire types of [`latchkey_proto`] (re-exported as [`proto`]). It authenticates either with
//! a token — sent as `Authorization: Bearer` or any other form the server accepts, see
//! [`TokenHeader`] — or with the session cookie [`Client::sign_in`] obtains. Every failure
//! is an [`Error`]; a server error keeps its status and stable code. No token's secret ever
//! appears in an error or in `Debug` output.
//!
//! The short form, with an API token:
//!
//! ```no_run
//! # async fn run() -> Result<(), latchkey_client::Error> {
//! # const CLUSTER_URL: &str = "latchkey.example.com"; const API_TOKEN: &str = "lkp_...";
//! use latchkey_client::Client;
//!
//! let project = Client::with_token(CLUSTER_URL, API_TOKEN)?
//!     .create_project("Fraud Demo", Some("This is an Onboarding Demo"))
//!     .await?;
//! println!("created project {} in workspace {}", project.id, project.workspace_id);
//! # Ok(()) }
//! ```
//!
//! A token's whole life — sign in, create a token, use it, revoke it:
//!
//! ```no_run
//! use latchkey_client::proto::{CreateTokenRequest, Scope, TokenType};
//! use latchkey_client::{Client, PageQuery};
//!
//! # async fn run() -> Result<(), latchkey_client::Error> {
//! // 1. Sign in with a password; the session cookie authenticates the next calls.
//! let console = Client::new("http://127.0.0.1:8080")?;
//! console.sign_in("admin", "correct horse battery staple").await?;
//! let me = console.me().await?;
//! let workspace = &me.memberships[0].workspace_id;
//!
//! // 2. Create a personal token; its secret is in the answer, this once only.
//! let mut request = CreateTokenRequest::new("ci-token", TokenType::Personal);
//! request.scopes = Some(vec![Scope::ProjectsRead, Scope::ProjectsWrite]);
//! request.expires_in_days = Some(30);
//! let created = console.tokens().create(workspace, &request).await?;
//! println!("token {} ({}), expires {:?}", created.meta.name, created.meta.hint, created.meta.expires_at);
//!
//! // 3. Use it: a second client that authenticates with the token.
//! let api = Client::with_token("http://127.0.0.1:8080", created.token.clone())?;
//! let project = api.create_project("Fraud Demo", Some("This is an Onboarding Demo")).await?;
//! assert!(console.verify(&created.token).await?.valid);
//!
//! // 4. Revoke it: from now on it is refused (and can be restored before it expires).
//! console.tokens().revoke(&created.meta.id).await?;
//! let err = api.list_projects(&project.workspace_id).await.unwrap_err();
//! assert_eq!(err.status(), Some(401));
//! assert!(!console.verify(&created.token).await?.valid);
//!
//! // Lists are paginated: follow `next_cursor` with `PageQuery::next`.
//! let mut query = PageQuery::limit(100);
//! loop {
//!     let page = console.my_tokens(&query).await?;
//!     for token in &page.items {
//!         println!("{} {:?} {:?}", token.hint, token.token_type, token.state);
//!     }
//!     match query.next(&page) {
//!         Some(next) => query = next,
//!         None => break,
//!     }
//! }
//! console.sign_out().await?;
//! # Ok(()) }
//! ```
//!
//! A token's verify-time policy (DESIGN.md §8): metadata every check returns, the networks
//! it may be used from, a rate limit, and usage credits with a refill — set on create,
//! changed with [`Tokens::update`], read back by [`Client::verify_with`] (which also says
//! where a rate-limited token stands), and a 429 keeps its `Retry-After` and `RateLimit-*`
//! headers ([`Error::retry_after`], [`Error::rate_limit`]):
//!
//! ```no_run
//! use latchkey_client::proto::{
//!     CreateTokenRequest, RateLimit, Refill, RefillInterval, TokenType, UpdateTokenRequest,
//!     VerifyRequest,
//! };
//! # async fn run(admin: latchkey_client::Client, ws: &str) -> Result<(), latchkey_client::Error> {
//! let mut request = CreateTokenRequest::new("partner", TokenType::Client);
//! request.metadata = Some(serde_json::json!({"plan": "pro"}));
//! request.allowed_ips = Some(vec!["203.0.113.0/24".into(), "2001:db8::/32".into()]);
//! request.rate_limit = Some(RateLimit { limit: 100, window_secs: 60 });
//! request.remaining_uses = Some(10_000);
//! request.refill = Some(Refill { amount: 10_000, interval: RefillInterval::Monthly });
//! let created = admin.tokens().create(ws, &request).await?;
//!
//! // A resource server checks it, passing its own caller's address.
//! let answer = admin
//!     .verify_with(&VerifyRequest { token: created.token.clone(), ip: Some("203.0.113.9".into()) })
//!     .await?;
//! let plan = answer.response.token.and_then(|t| t.metadata);
//!
//! // Only the fields set change; `Some(None)` clears one.
//! admin.tokens().update(&created.meta.id, &UpdateTokenRequest {
//!     allowed_ips: Some(None),
//!     rate_limit: Some(Some(RateLimit { limit: 1000, window_secs: 3600 })),
//!     ..UpdateTokenRequest::default()
//! }).await?;
//!
//! let api = latchkey_client::Client::with_token("http://127.0.0.1:8080", created.token)?;
//! match api.list_projects(ws).await {
//!     Err(e) if e.is_rate_limited() => println!("retry in {:?}, {:?}", e.retry_after(), e.rate_limit()),
//!     other => { other?; }
//! }
//! # Ok(()) }
//! ```
//!
//! [`Client::from_env`] reads `LATCHKEY_URL` and `LATCHKEY_API_KEY`; [`Client::request`] is
//! the escape hatch for raw calls with the client's credentials applied.

#![warn(missing_docs)]

mod client;
mod error;

pub use client::{
    AuditQuery, Client, DEFAULT_TIMEOUT, ENV_API_KEY, ENV_URL, EXPIRY_WARNING, PageQuery,
    TokenHeader, TokenQuery, Tokens, VerifyAnswer, Webhooks, collect_all, expires_soon,
    token_expiration,
};
pub use error::{Error, RateLimitStatus, UNKNOWN_CODE, redact_secrets};
/// The wire types (re-export of `latchkey-proto`).
pub use latchkey_proto as proto;
/// The HTTP client underneath (re-export of `reqwest`), for [`Client::request`] and
/// [`Client::from_reqwest`].
pub use reqwest;
