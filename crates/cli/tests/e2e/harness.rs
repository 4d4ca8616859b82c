//! Test harness: the real app on 127.0.0.1:0 over a fresh SQLite file in a temp dir, driven
//! through the Rust SDK (and raw HTTP for odd headers and bodies).
//!
//! With `LATCHKEY_TEST_BACKEND=postgres` every server gets a fresh PostgreSQL database
//! instead (dropped at the end; see `latchkey_store_postgres::testing` for which server),
//! so the whole black-box suite runs once more on PostgreSQL (`scripts/test.sh`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

use latchkey_client::Client;
use latchkey_client::proto::{CreateTokenRequest, CreatedToken, TokenType};
use latchkey_server::{AppState, BootstrapOptions, Clock, Config, HashKeySource, StartOptions};
use latchkey_store_postgres::testing::{self as pg, TestDatabase};
use tokio::sync::oneshot;

/// The preset administrator password used by every test server.
pub const ADMIN_PASSWORD: &str = "correct horse battery staple";

/// A running server.
pub struct TestServer {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// The app state (to move the clock, read the store).
    pub state: AppState,
    /// The data directory (kept alive for the test).
    pub dir: PathBuf,
    _tempdir: Option<tempfile::TempDir>,
    /// The bootstrap token (personal, admin, Workspace 1), when this start made it.
    pub admin_token: Option<String>,
    shutdown: Option<oneshot::Sender<()>>,
    handle: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    /// The PostgreSQL database (with `LATCHKEY_TEST_BACKEND=postgres`), dropped with us.
    database: Option<TestDatabase>,
}

/// Databases of stopped servers, by data dir, until a restart over that dir takes them.
static STOPPED: LazyLock<Mutex<HashMap<PathBuf, TestDatabase>>> = LazyLock::new(Default::default);

/// With `LATCHKEY_TEST_BACKEND=postgres`: the database for a server over `dir` — the one a
/// stopped server there left, else a fresh one — and `config` pointed at it.
async fn postgres_database(dir: &Path, config: &mut Config) -> Option<TestDatabase> {
    if !postgres_pass() {
        return None;
    }
    let left = STOPPED.lock().ok().and_then(|mut m| m.remove(dir));
    let database = match left {
        Some(database) => database,
        None => {
            let created = match pg::server_url() {
                Ok(url) => TestDatabase::create_on(&url).await,
                Err(why) => Err(why),
            };
            match created {
                Ok(database) => database,
                Err(why) => {
                    assert!(!pg::require_all(), "LATCHKEY_TEST_BACKEND=postgres: {why}");
                    eprintln!("LATCHKEY_TEST_BACKEND=postgres, but {why}: this server uses SQLite");
                    return None;
                }
            }
        }
    };
    config.database_url = database.url.clone();
    config.database_pool_size = 4;
    Some(database)
}

/// Whether this is the PostgreSQL pass of `scripts/test.sh` (`LATCHKEY_TEST_BACKEND=postgres`):
/// the black-box suite runs twice, every [`TestServer`] on SQLite and then on PostgreSQL.
pub fn postgres_pass() -> bool {
    std::env::var("LATCHKEY_TEST_BACKEND").ok().as_deref() == Some("postgres")
}

/// Declares a test that belongs to the first (SQLite) pass of `scripts/test.sh` only, for
/// the reason `why` (it is about the SQLite file itself, or it starts its own PostgreSQL
/// nodes in either pass, so a second run would prove nothing new). In the PostgreSQL pass
/// it prints `SKIP` with the reason and returns `true`, and the test returns: a skip, not a
/// failure, even under `LATCHKEY_TEST_REQUIRE_ALL=1`, because the test ran in the first pass.
///
/// ```ignore
/// if sqlite_pass_only("subprocesses on a SQLite data dir") { return; }
/// ```
#[must_use]
pub fn sqlite_pass_only(why: &str) -> bool {
    if !postgres_pass() {
        return false;
    }
    let name = std::thread::current()
        .name()
        .unwrap_or("this test")
        .to_owned();
    eprintln!("SKIP {name}: runs in the SQLite pass only ({why})");
    true
}

/// Configuration every test server uses: cheap Argon2, generous throttles, fast polling.
pub fn test_config(dir: &Path) -> Config {
    let mut config = Config {
        data_dir: dir.to_owned(),
        api_key_headers: vec!["rime-api-key".into()],
        ..Config::default()
    };
    config.passwords.memory_kib = 64;
    config.passwords.iterations = 1;
    config.throttle.sign_in_attempts = 1000;
    config.throttle.sign_in_failures_per_account = 1000;
    config.throttle.failed_token_checks = 10_000;
    config.throttle.reveals = 1000;
    config.verifier.poll_interval_ms = 100;
    config
}

impl TestServer {
    /// A fresh server with the default test configuration.
    pub async fn start() -> TestServer {
        Self::start_with(|_| {}).await
    }

    /// A fresh server after `tweak` adjusts the configuration.
    pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> TestServer {
        let tempdir = tempfile::tempdir().expect("tempdir");
        let dir = tempdir.path().to_owned();
        let mut server = Self::start_in(&dir, tweak, Clock::default()).await;
        server._tempdir = Some(tempdir);
        server
    }

    /// A server over an existing data directory (restart).
    pub async fn start_in(dir: &Path, tweak: impl FnOnce(&mut Config), clock: Clock) -> TestServer {
        let mut config = test_config(dir);
        let database = postgres_database(dir, &mut config).await;
        tweak(&mut config);
        let options = StartOptions {
            bootstrap: BootstrapOptions {
                admin_username: None,
                admin_password: Some(ADMIN_PASSWORD.into()),
                admin_token: None,
            },
            hash_key: HashKeySource::default(),
            clock,
        };
        let prepared = latchkey_server::prepare(config, options)
            .await
            .expect("server prepares");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let (tx, rx) = oneshot::channel::<()>();
        let state = prepared.state.clone();
        let handle = tokio::spawn(latchkey_server::serve(listener, prepared.state, async {
            let _ = rx.await;
        }));
        let server = TestServer {
            url,
            state,
            dir: dir.to_owned(),
            _tempdir: None,
            admin_token: prepared.bootstrapped.and_then(|b| b.generated_token),
            shutdown: Some(tx),
            handle: Some(handle),
            database,
        };
        server.wait_ready().await;
        server
    }

    async fn wait_ready(&self) {
        let client = self.anonymous();
        for _ in 0..200 {
            if client.readyz().await.is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("server at {} never became ready", self.url);
    }

    /// Stops the server gracefully (drains, flushes) and keeps the data dir for a restart.
    pub async fn stop(mut self) -> (PathBuf, Option<tempfile::TempDir>) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(handle) = self.handle.take() {
            handle.await.expect("serve task").expect("serve result");
        }
        if let Some(database) = self.database.take()
            && let Ok(mut stopped) = STOPPED.lock()
        {
            stopped.insert(self.dir.clone(), database);
        }
        (self.dir.clone(), self._tempdir.take())
    }

    /// Whether this server runs on PostgreSQL (`LATCHKEY_TEST_BACKEND=postgres`).
    pub fn on_postgres(&self) -> bool {
        self.database.is_some()
    }

    /// A client without credentials (a fresh cookie store).
    pub fn anonymous(&self) -> Client {
        Client::new(&self.url).expect("client")
    }

    /// A client with a token.
    pub fn with_token(&self, token: &str) -> Client {
        Client::with_token(&self.url, token).expect("client")
    }

    /// The admin, by the bootstrap token.
    pub fn admin(&self) -> Client {
        self.with_token(self.admin_token.as_deref().expect("bootstrap token"))
    }

    /// A client signed in with a password.
    pub async fn signed_in(&self, username: &str, password: &str) -> Client {
        let client = self.anonymous();
        client.sign_in(username, password).await.expect("sign in");
        client
    }

    /// A plain HTTP client for raw requests.
    pub fn http(&self) -> reqwest::Client {
        reqwest::Client::new()
    }

    /// The body of an unauthenticated `GET /metrics` (public by default).
    pub async fn metrics_text(&self) -> String {
        self.http()
            .get(format!("{}/metrics", self.url))
            .send()
            .await
            .expect("GET /metrics")
            .text()
            .await
            .expect("metrics body")
    }

    /// The id of "Workspace 1".
    pub async fn workspace1(&self) -> String {
        let me = self.admin().me().await.expect("me");
        me.memberships
            .iter()
            .find(|m| m.workspace_name == "Workspace 1")
            .expect("Workspace 1 membership")
            .workspace_id
            .clone()
    }

    /// Creates a user with `role` and returns (id, a signed-in client).
    pub async fn user(
        &self,
        username: &str,
        role: latchkey_client::proto::OrgRole,
    ) -> (String, Client) {
        let user = self
            .admin()
            .create_user(&latchkey_client::proto::CreateUserRequest {
                username: username.into(),
                password: Some("password-of-".to_owned() + username),
                kind: latchkey_client::proto::UserKind::Human,
                role,
                display_name: None,
                email: None,
            })
            .await
            .expect("create user");
        let client = self
            .signed_in(username, &("password-of-".to_owned() + username))
            .await;
        (user.id, client)
    }

    /// Creates a token of `token_type` named `name` in `ws` as `client`.
    pub async fn token(
        &self,
        client: &Client,
        ws: &str,
        name: &str,
        token_type: TokenType,
    ) -> CreatedToken {
        client
            .tokens()
            .create(ws, &CreateTokenRequest::new(name, token_type))
            .await
            .expect("create token")
    }
}

/// A second node beside `a` on the same PostgreSQL database (its hash key, its clock), or
/// `None` on the SQLite pass (two nodes need one shared database; the caller skips).
pub async fn second_node(a: &TestServer) -> Option<(TestServer, tempfile::TempDir)> {
    if !a.on_postgres() {
        eprintln!("SKIP: two nodes need the PostgreSQL pass (one shared database)");
        return None;
    }
    let b_dir = tempfile::tempdir().unwrap();
    std::fs::copy(a.dir.join("hash.key"), b_dir.path().join("hash.key")).unwrap();
    let url = a.state.config.database_url.clone();
    let b = TestServer::start_in(
        b_dir.path(),
        |c| c.database_url = url,
        a.state.clock.clone(),
    )
    .await;
    Some((b, b_dir))
}

/// Polls `check` until it is true or 10 s pass.
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..400 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("timed out waiting for: {what}");
}
