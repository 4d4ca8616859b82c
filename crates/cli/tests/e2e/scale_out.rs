//! Several real `latchkey serve` processes on one PostgreSQL database behave as one
//! (docs/scale-out.md): tokens and JWTs made on one node work on the others; revocation,
//! deactivation and type disabling on one node are refused by the others promptly (polled
//! with a 5 s deadline; the figures are printed, not asserted); a node killed with
//! `kill -9` leaves the others serving; concurrent first starts bootstrap once; limits hold
//! under concurrent creates from two nodes; and a PostgreSQL restart (a throwaway cluster
//! of the test's own) is survived without restarting a node.
//!
//! Every test here needs PostgreSQL: without one it skips with a printed reason (a failure
//! under `LATCHKEY_TEST_REQUIRE_ALL=1`).

use crate::harness::sqlite_pass_only;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use latchkey_client::Client;
use latchkey_client::proto::{
    CreateTokenRequest, CreateUserRequest, OrgRole, TokenType, UpdateInstanceSettingsRequest,
    UpdateTokenSettingsRequest, UpdateUserRequest, WorkspaceRole,
};
use latchkey_core::token::{self, SecretKind};
use latchkey_server::{Config, HashKeySource, StartOptions};
use latchkey_store_postgres::PostgresStore;
use latchkey_store_postgres::testing::{self as pg, Cluster, TestDatabase};

/// Why these tests run in the first pass of `scripts/test.sh` only.
pub(crate) const SQLITE_PASS: &str = "its nodes run on PostgreSQL in either pass";

const PASSWORD: &str = "scale-out admin password";
/// Every node is reached through the same public URL (the load balancer's): it is the
/// issuer of access JWTs, so a JWT from one node verifies on the others.
const PUBLIC_URL: &str = "http://latchkey.test";

/// What every node of one deployment shares: the database, the hash key, the config.
pub(crate) struct Deployment {
    database_url: String,
    hash_key: String,
    pub(crate) admin_token: String,
    config: PathBuf,
    dir: tempfile::TempDir,
}

impl Deployment {
    pub(crate) fn new(database_url: &str, max_staleness_secs: u64) -> Deployment {
        Deployment::with_public_url(database_url, max_staleness_secs, PUBLIC_URL)
    }

    /// A deployment whose nodes get `public_url` (empty: none set).
    fn with_public_url(
        database_url: &str,
        max_staleness_secs: u64,
        public_url: &str,
    ) -> Deployment {
        Deployment::with_config(database_url, max_staleness_secs, public_url, "")
    }

    /// A deployment whose config file also holds `extra` (top-level keys).
    fn with_config(
        database_url: &str,
        max_staleness_secs: u64,
        public_url: &str,
        extra: &str,
    ) -> Deployment {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("latchkey.toml");
        std::fs::write(
            &config,
            format!(
                "{extra}public_url = \"{public_url}\"\n\
                 database_pool_size = 4\n\
                 [passwords]\nmemory_kib = 64\niterations = 1\n\
                 [throttle]\nsign_in_attempts = 10000\nfailed_token_checks = 100000\n\
                 [verifier]\nmax_staleness_secs = {max_staleness_secs}\n"
            ),
        )
        .expect("config");
        Deployment {
            database_url: database_url.to_owned(),
            hash_key: latchkey_core::HashKey::generate_hex(),
            admin_token: token::generate(SecretKind::Token(TokenType::Personal)),
            config,
            dir,
        }
    }

    /// Starts a node (not waiting for it).
    pub(crate) fn spawn(&self, name: &str) -> Node {
        let data_dir = self.dir.path().join(name);
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_latchkey"));
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(&data_dir)
            .arg("--database-url")
            .arg(&self.database_url)
            .arg("--config")
            .arg(&self.config)
            .env_remove("LATCHKEY_DATABASE_URL")
            .env_remove("LATCHKEY_HASH_KEY_FILE")
            .env_remove("LATCHKEY_CONFIG")
            .env("LATCHKEY_HASH_KEY", &self.hash_key)
            .env("LATCHKEY_ADMIN_PASSWORD", PASSWORD)
            .env("LATCHKEY_ADMIN_TOKEN", &self.admin_token)
            .env("LATCHKEY_LOG_FORMAT", "text")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn latchkey");
        let stdout = Arc::new(Mutex::new(String::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let out = child.stdout.take().expect("stdout");
        let err = child.stderr.take().expect("stderr");
        drain(out, Arc::clone(&stdout));
        drain(err, Arc::clone(&stderr));
        Node {
            name: name.to_owned(),
            child,
            url: String::new(),
            stdout,
            stderr,
        }
    }

    /// Starts a node and waits until it is ready.
    pub(crate) async fn node(&self, name: &str) -> Node {
        let mut node = self.spawn(name);
        node.ready().await;
        node
    }
}

/// Keeps reading a pipe (so the child never blocks on it) into `into`.
fn drain(pipe: impl std::io::Read + Send + 'static, into: Arc<Mutex<String>>) {
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            if let Ok(mut text) = into.lock() {
                text.push_str(&line);
                text.push('\n');
            }
        }
    });
}

/// One `latchkey serve` process; killed when dropped.
pub(crate) struct Node {
    name: String,
    child: Child,
    pub(crate) url: String,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
}

impl Node {
    pub(crate) fn stderr(&self) -> String {
        self.stderr.lock().map(|s| s.clone()).unwrap_or_default()
    }

    fn stdout(&self) -> String {
        self.stdout.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Waits for the announced address, then for `/readyz`.
    pub(crate) async fn ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(exit) = self.child.try_wait().expect("try_wait") {
                panic!("node {} exited ({exit}):\n{}", self.name, self.stderr());
            }
            let text = self.stderr();
            if let Some(i) = text.find("address=") {
                let addr = text[i + 8..].split_whitespace().next().unwrap_or("");
                self.url = format!("http://{addr}");
                break;
            }
            assert!(
                Instant::now() < deadline,
                "node {} never listened:\n{text}",
                self.name
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let client = self.anonymous();
        for _ in 0..1000 {
            if client.readyz().await.is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("node {} never became ready:\n{}", self.name, self.stderr());
    }

    fn anonymous(&self) -> Client {
        Client::new(&self.url).expect("client")
    }

    pub(crate) fn with_token(&self, token: &str) -> Client {
        Client::with_token(&self.url, token).expect("client")
    }

    fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// `kill -9`.
    pub(crate) fn kill_9(&mut self) {
        self.child.kill().expect("SIGKILL");
        let _ = self.child.wait();
    }

    /// SIGTERM, then waits up to `within` for the graceful exit (it drains and gives back
    /// what it leased): how long it took, or `None` (then it is killed).
    pub(crate) fn stop_gracefully(&mut self, within: Duration) -> Option<Duration> {
        let started = Instant::now();
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill -TERM");
        assert!(status.success());
        while started.elapsed() < within {
            if let Ok(Some(_)) = self.child.try_wait() {
                return Some(started.elapsed());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        self.kill_9();
        None
    }

    /// The HTTP status `token` gets at `GET /api/v1/me` on this node.
    async fn status_of(&self, token: &str) -> u16 {
        match self.with_token(token).me().await {
            Ok(_) => 200,
            Err(e) => e.status().unwrap_or(0),
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A scratch database, or `None` when the test skips.
pub(crate) async fn database() -> Option<TestDatabase> {
    TestDatabase::create().await
}

pub(crate) async fn workspace1(admin: &Client) -> String {
    let me = admin.me().await.expect("me");
    me.memberships
        .iter()
        .find(|m| m.workspace_name == "Workspace 1")
        .expect("Workspace 1")
        .workspace_id
        .clone()
}

async fn create_token(
    client: &Client,
    ws: &str,
    name: &str,
    token_type: TokenType,
) -> (String, String) {
    let created = client
        .tokens()
        .create(ws, &CreateTokenRequest::new(name, token_type))
        .await
        .expect("create token");
    (created.meta.id, created.token)
}

/// Polls until `node` answers `want` for `token`, up to `within`; returns how long it took.
async fn until_status(node: &Node, token: &str, want: u16, within: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let got = node.status_of(token).await;
        if got == want {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < within,
            "node {} still answers {got} (not {want}) after {within:?}",
            node.name
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// One unlabelled sample from a node's `/metrics`.
async fn metric(node: &Node, name: &str, token: &str) -> f64 {
    let text = reqwest::Client::new()
        .get(format!("{}/metrics", node.url))
        .bearer_auth(token)
        .send()
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("metrics body");
    text.lines()
        .find_map(|line| {
            line.strip_prefix(name)?
                .strip_prefix(' ')?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("{name} not in /metrics of {}", node.name))
}

/// Polls until `node` has applied every change `leader` has (10 s deadline).
async fn until_caught_up(node: &Node, leader: &Node, token: &str) {
    const VERSION: &str = "latchkey_change_feed_version";
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let want = metric(leader, VERSION, token).await;
        if metric(node, VERSION, token).await >= want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "node {} never caught up with {}",
            node.name,
            leader.name
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_and_jwts_made_on_one_node_work_on_the_others() {
    if sqlite_pass_only(SQLITE_PASS) {
        return;
    }
    let Some(db) = database().await else { return };
    let deployment = Deployment::new(&db.url, 30);
    let a = deployment.node("a").await;
    let b = deployment.node("b").await;
    let admin_a = a.with_token(&deployment.admin_token);
    let ws = workspace1(&admin_a).await;

    let (_, on_a) = create_token(&admin_a, &ws, "made on a", TokenType::Personal).await;
    assert_eq!(
        b.with_token(&on_a)
            .me()
            .await
            .expect("a's token on b")
            .user
            .username,
        "admin"
    );
    let (_, client_on_b) = create_token(
        &b.with_token(&deployment.admin_token),
        &ws,
        "made on b",
        TokenType::Client,
    )
    .await;
    b.with_token(&client_on_b)
        .list_projects(&ws)
        .await
        .expect("b's token on b");
    a.with_token(&client_on_b)
        .list_projects(&ws)
        .await
        .expect("b's token on a");

    // An access JWT signed on one node verifies on the other: the signing keys are in the
    // store (encrypted under the shared hash key) and the issuer is the shared public URL.
    let jwt = a
        .anonymous()
        .refresh(&on_a)
        .await
        .expect("JWT from a")
        .access;
    let me = b.with_token(&jwt).me().await.expect("a's JWT on b");
    assert_eq!(me.user.username, "admin");
    let jwt_b = b
        .anonymous()
        .refresh(&on_a)
        .await
        .expect("JWT from b")
        .access;
    a.with_token(&jwt_b).me().await.expect("b's JWT on a");
    drop((a, b));
    db.drop_now().await;
}

/// Two nodes with no `public_url`, each on its own address: an access JWT from one is
/// accepted by the other, because the default issuer is one both derive from the shared
/// hash key (`urn:latchkey:<key id>`), not each node's listen address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_public_url_a_jwt_from_one_node_is_accepted_by_the_other() {
    if sqlite_pass_only(SQLITE_PASS) {
        return;
    }
    let Some(db) = database().await else { return };
    let deployment = Deployment::with_public_url(&db.url, 30, "");
    let a = deployment.node("a").await;
    let b = deployment.node("b").await;
    assert_ne!(a.url, b.url);
    let pat = &deployment.admin_token;
    let from_a = a.anonymous().refresh(pat).await.expect("JWT from a").access;
    let from_b = b.anonymous().refresh(pat).await.expect("JWT from b").access;
    let issuer = |jwt: &str| -> String {
        use base64::Engine as _;
        let claims = jwt.split('.').nth(1).expect("claims");
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(claims)
            .expect("base64url");
        let claims: serde_json::Value = serde_json::from_slice(&bytes).expect("JSON");
        claims["iss"].as_str().expect("iss").to_owned()
    };
    assert_eq!(issuer(&from_a), issuer(&from_b));
    assert!(
        issuer(&from_a).starts_with("urn:latchkey:"),
        "{}",
        issuer(&from_a)
    );
    let me = b.with_token(&from_a).me().await.expect("a's JWT on b");
    assert_eq!(me.user.username, "admin");
    a.with_token(&from_b).me().await.expect("b's JWT on a");
    // Introspection on the other node says active too.
    let answer = b
        .with_token(pat)
        .introspect(&from_a)
        .await
        .expect("introspect a's JWT on b");
    assert_eq!(answer["active"], true, "{answer}");
    drop((a, b));
    db.drop_now().await;
}

/// Revoke on A → B answers 401, 20 times, each within the generous deadline of DESIGN §7
/// (5 s). The figures (milliseconds on an idle machine) are printed for bench/RESULTS.md
/// (`cargo test --test e2e scale_out::revocation -- --nocapture`), not asserted: a busy
/// machine must not fail the test.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_on_one_node_is_refused_by_the_other_promptly() {
    if sqlite_pass_only(SQLITE_PASS) {
        return;
    }
    let Some(db) = database().await else { return };
    let deployment = Deployment::new(&db.url, 30);
    let a = deployment.node("a").await;
    let b = deployment.node("b").await;
    let admin_a = a.with_token(&deployment.admin_token);
    let ws = workspace1(&admin_a).await;

    let mut samples = Vec::new();
    for i in 0..20 {
        let (id, secret) =
            create_token(&admin_a, &ws, &format!("revoked {i}"), TokenType::Personal).await;
        // B has the grant cached: the answer must change because of the invalidation,
        // not because of a cache miss.
        assert_eq!(b.status_of(&secret).await, 200);
        assert_eq!(b.status_of(&secret).await, 200);
        admin_a.tokens().revoke(&id).await.expect("revoke on a");
        samples.push(until_status(&b, &secret, 401, Duration::from_secs(5)).await);
    }
    samples.sort();
    let pick = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    println!(
        "revocation A→B over {} runs (ms, from A's acknowledgement to B's first 401): \
         min {:.1} median {:.1} p90 {:.1} max {:.1}; all: {:?}",
        samples.len(),
        millis(samples[0]),
        millis(pick(0.5)),
        millis(pick(0.9)),
        millis(samples[samples.len() - 1]),
        samples
            .iter()
            .map(|d| (millis(*d) * 10.0).round() / 10.0)
            .collect::<Vec<_>>()
    );
    drop((a, b));
    db.drop_now().await;
}

/// What an engine without `LISTEN/NOTIFY` (CockroachDB, YugabyteDB) would give: node B
/// runs in-process on a store with notices off, so it learns of A's revocations only by
/// its periodic catch-up read (`poll_interval_ms`, 1 s by default). The bound becomes the
/// poll interval plus one read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_notices_catch_up_polling_alone_bounds_revocation() {
    if sqlite_pass_only(SQLITE_PASS) {
        return;
    }
    let Some(db) = database().await else { return };
    let deployment = Deployment::new(&db.url, 30);
    let a = deployment.node("a").await;
    let admin_a = a.with_token(&deployment.admin_token);
    let ws = workspace1(&admin_a).await;

    let store = PostgresStore::connect(&db.url, 4)
        .await
        .expect("connect")
        .with_notices(false);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = Config {
        data_dir: dir.path().to_owned(),
        database_url: db.url.clone(),
        public_url: PUBLIC_URL.into(),
        ..Config::default()
    };
    config.verifier.poll_interval_ms = 1000;
    let options = StartOptions {
        hash_key: HashKeySource {
            hex: Some(deployment.hash_key.clone()),
            file: None,
        },
        ..StartOptions::default()
    };
    let prepared = latchkey_server::prepare_with_store(config, Arc::new(store), options)
        .await
        .expect("node b prepares");
    assert!(prepared.bootstrapped.is_none());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(latchkey_server::serve(listener, prepared.state, async {
        let _ = stopped.await;
    }));
    let status_on_b = |secret: String| {
        let client = Client::with_token(&url, secret).expect("client");
        async move {
            match client.me().await {
                Ok(_) => 200,
                Err(e) => e.status().unwrap_or(0),
            }
        }
    };

    let mut samples = Vec::new();
    for i in 0..5 {
        let (id, secret) =
            create_token(&admin_a, &ws, &format!("polled {i}"), TokenType::Personal).await;
        assert_eq!(status_on_b(secret.clone()).await, 200);
        admin_a.tokens().revoke(&id).await.expect("revoke on a");
        let started = Instant::now();
        while status_on_b(secret.clone()).await != 401 {
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "catch-up polling never saw the revocation"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        samples.push(started.elapsed());
    }
    samples.sort();
    println!(
        "revocation A→B by catch-up polling alone (poll_interval_ms = 1000), {} runs (ms): \
         min {:.1} median {:.1} max {:.1}",
        samples.len(),
        millis(samples[0]),
        millis(samples[samples.len() / 2]),
        millis(samples[samples.len() - 1]),
    );
    let _ = stop.send(());
    serving.await.expect("serve task").expect("serve");
    drop(a);
    db.drop_now().await;
}

/// Deactivation, a role change and disabling a type, each made on one node, are applied
/// by the other promptly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_and_org_changes_on_one_node_are_applied_by_the_other() {
    if sqlite_pass_only(SQLITE_PASS) {
        return;
    }
    let Some(db) = database().await else { return };
    let deployment = Deployment::new(&db.url, 30);
    let a = deployment.node("a").await;
    let b = deployment.node("b").await;
    let admin_b = b.with_token(&deployment.admin_token);
    let ws = workspace1(&admin_b).await;
    let bob = admin_b
        .create_user(&CreateUserRequest {
            username: "bob".into(),
            password: Some("bob's password".into()),
            kind: latchkey_client::proto::UserKind::Human,
            role: OrgRole::Admin,
            display_name: None,
            email: None,
        })
        .await
        .expect("create bob");
    admin_b
        .put_member(&ws, &bob.id, WorkspaceRole::Member)
        .await
        .expect("bob joins");
    // Bob signs in on A as a browser would, through the public URL: with `public_url` set,
    // cookie-authenticated writes must come from that origin (issue 21.12).
    let browser = reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .expect("http client");
    let signed_in = browser
        .post(format!("{}/api/v1/session", a.url))
        .json(&serde_json::json!({"username": "bob", "password": "bob's password"}))
        .send()
        .await
        .expect("bob signs in on a");
    assert_eq!(signed_in.status(), 200);
    let create = |origin: &'static str| {
        browser
            .post(format!("{}/api/v1/workspaces/{ws}/tokens", a.url))
            .header("origin", origin)
            .json(&serde_json::json!({"name": "bob's", "type": "personal"}))
            .send()
    };
    // The node's own address is not the public origin.
    let own_origin = Box::leak(a.url.clone().into_boxed_str());
    assert_eq!(create(own_origin).await.expect("create").status(), 403);
    let created: serde_json::Value = create(PUBLIC_URL)
        .await
        .expect("create")
        .json()
        .await
        .expect("json");
    let bobs = created["token"].as_str().expect("secret").to_owned();
    assert_eq!(a.status_of(&bobs).await, 200);
    // Bob is an org admin on A: he may list users.
    a.with_token(&bobs)
        .list_users(&Default::default())
        .await
        .expect("admin bob");

    // A role change on B: A stops letting bob act as an org admin.
    admin_b
        .update_user(
            &bob.id,
            &UpdateUserRequest {
                role: Some(OrgRole::Member),
                ..Default::default()
            },
        )
        .await
        .expect("demote bob");
    let started = Instant::now();
    loop {
        match a.with_token(&bobs).list_users(&Default::default()).await {
            Err(e) if e.status() == Some(403) => break,
            _ => assert!(
                started.elapsed() < Duration::from_secs(5),
                "A still treats bob as an admin"
            ),
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    println!(
        "role change B→A applied after {:.1} ms",
        millis(started.elapsed())
    );

    // Deactivation on B: A refuses bob's token.
    admin_b
        .update_user(
            &bob.id,
            &UpdateUserRequest {
                active: Some(false),
                ..Default::default()
            },
        )
        .await
        .expect("deactivate bob");
    let took = until_status(&a, &bobs, 401, Duration::from_secs(5)).await;
    println!("deactivation B→A applied after {:.1} ms", millis(took));

    // Disabling a type on A: B refuses tokens of that type.
    let admin_a = a.with_token(&deployment.admin_token);
    let (_, client_token) = create_token(&admin_a, &ws, "client", TokenType::Client).await;
    assert_eq!(
        b.with_token(&client_token)
            .list_projects(&ws)
            .await
            .map(|_| 200)
            .unwrap_or(0),
        200
    );
    let org = admin_a.me().await.expect("me").org.id;
    let enabled: Vec<TokenType> = TokenType::ALL
        .into_iter()
        .filter(|t| *t != TokenType::Client)
        .collect();
    admin_a
        .update_token_settings(
            &org,
            &UpdateTokenSettingsRequest {
                enabled_types: Some(enabled),
                ..Default::default()
            },
        )
        .await
        .expect("disable client tokens");
    let started = Instant::now();
    loop {
        match b.with_token(&client_token).list_projects(&ws).await {
            Err(e) if e.status() == Some(401) => break,
            _ => assert!(
                started.elapsed() < Duration::from_secs(5),
                "B still accepts a disabled type"
            ),
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    println!(
        "type disabling A→B applied after {:.1} ms",
        millis(started.elapsed())
    );
    drop((a, b));
    db.drop_now().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_with_sigkill_leaves_the_others_serving() {
    if sqlite_pass_only(SQLITE_PASS) {
        return;
    }
    let Some(db) = database().await else { return };
    let deployment = Deployment::new(&db.url, 30);
    let mut a = deployment.node("a").await;
    let b = deployment.node("b").await;
    let admin_a = a.with_token(&deployment.admin_token);
    let ws = workspace1(&admin_a).await;
    let (_, made_on_a) = create_token(&admin_a, &ws, "made on a", TokenType::Personal).await;
    assert_eq!(a.status_of(&made_on_a).await, 200);

    a.kill_9();
    assert!(!a.is_running());
    assert!(b.anonymous().readyz().await.is_ok());
    // Acknowledged on A means committed in the shared database: B knows the token.
    assert_eq!(b.status_of(&made_on_a).await, 200);
    let admin_b = b.with_token(&deployment.admin_token);
    let (id, made_on_b) = create_token(&admin_b, &ws, "made on b", TokenType::Personal).await;
    assert_eq!(b.status_of(&made_on_b).await, 200);
    admin_b.tokens().revoke(&id).await.expect("revoke on b");
    assert_eq!(b.status_of(&made_on_b).await, 401);

    // A replacement node joins; it is not a first start.
    let c = deployment.node("c").await;
    assert_eq!(c.status_of(&made_on_a).await, 200);
    assert_eq!(c.status_of(&made_on_b).await, 401);
    assert!(!c.stdout().contains("first start"), "{}", c.stdout());
    drop((a, b, c));
    db.drop_now().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_first_start_of_three_nodes_bootstraps_once() {
    if sqlite_pass_only(SQLITE_PASS) {
        return;
    }
    let Some(db) = database().await else { return };
    let deployment = Deployment::new(&db.url, 30);
    // All three start at once on the empty database: all migrate, one bootstraps.
    let mut nodes: Vec<Node> = ["a", "b", "c"]
        .iter()
        .map(|n| deployment.spawn(n))
        .collect();
    for node in &mut nodes {
        node.ready().await;
    }
    let banners = || {
        nodes
            .iter()
            .filter(|n| n.stdout().contains("Latchkey first start"))
            .count()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while banners() == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(banners(), 1, "exactly one node bootstraps");
    for node in &nodes {
        let me = node
            .with_token(&deployment.admin_token)
            .me()
            .await
            .expect("admin everywhere");
        assert_eq!(me.user.username, "admin");
    }
    let admin = nodes[2].with_token(&deployment.admin_token);
    let users = admin.list_users(&Default::default()).await.expect("users");
    assert_eq!(users.items.len(), 1, "one administrator");
    let tokens = admin.my_tokens(&Default::default()).await.expect("tokens");
    assert_eq!(tokens.items.len(), 1, "one initial token");
    let workspaces = admin.list_workspaces().await.expect("workspaces");
    assert_eq!(workspaces.items.len(), 1, "one Workspace 1");
    drop(nodes);
    db.drop_now().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_creates_at_a_limit_from_two_nodes_do_not_overshoot() {
    if sqlite_pass_only(SQLITE_PASS) {
        return;
    }
    let Some(db) = database().await else { return };
    let deployment = Deployment::new(&db.url, 30);
    let a = deployment.node("a").await;
    let b = deployment.node("b").await;
    let admin_a = a.with_token(&deployment.admin_token);
    let admin_b = b.with_token(&deployment.admin_token);
    let ws = workspace1(&admin_a).await;
    // The bootstrap token holds one slot; five are free.
    admin_a
        .update_instance_settings(&UpdateInstanceSettingsRequest {
            max_active_tokens: Some(Some(6)),
            ..Default::default()
        })
        .await
        .expect("limit");
    let attempts: Vec<_> = (0..20)
        .map(|i| {
            let client = if i % 2 == 0 {
                admin_a.clone()
            } else {
                admin_b.clone()
            };
            let ws = ws.clone();
            tokio::spawn(async move {
                client
                    .tokens()
                    .create(
                        &ws,
                        &CreateTokenRequest::new(format!("race {i}"), TokenType::Client),
                    )
                    .await
            })
        })
        .collect();
    let mut created = 0;
    for attempt in attempts {
        match attempt.await.expect("task") {
            Ok(_) => created += 1,
            Err(e) => assert!(e.is_limit_exceeded(), "unexpected error: {e:?}"),
        }
    }
    assert_eq!(created, 5, "the limit holds across nodes");
    drop((a, b));
    db.drop_now().await;
}

/// PostgreSQL restarts under two running nodes (a throwaway cluster, never the machine's
/// own): while it is away requests fail cleanly with 503 and `/readyz` says so; cached
/// grants are trusted for `max_staleness_secs` and then refused (fail closed); when it is
/// back, the same processes serve again, and revocations propagate again promptly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_survive_a_postgresql_restart() {
    if sqlite_pass_only(SQLITE_PASS) {
        return;
    }
    let cluster = match Cluster::start() {
        Ok(cluster) => cluster,
        Err(why) => {
            let _: Option<()> = pg::skip(&format!("no throwaway PostgreSQL cluster: {why}"));
            return;
        }
    };
    let db = TestDatabase::create_on(&cluster.admin_url())
        .await
        .expect("database");
    // max_staleness 10 s: long enough that stopping the cluster (which pg_ctl waits for)
    // on a loaded 2-core machine still leaves the cached grant inside its grace.
    let deployment = Deployment::new(&db.url, 10);
    let mut a = deployment.node("a").await;
    let mut b = deployment.node("b").await;
    let admin_a = a.with_token(&deployment.admin_token);
    let ws = workspace1(&admin_a).await;
    let (_, cached) = create_token(&admin_a, &ws, "cached on b", TokenType::Personal).await;
    let (_, uncached) = create_token(&admin_a, &ws, "never seen by b", TokenType::Personal).await;
    // B applies the creations from the feed (each invalidates that token on B): a check
    // racing with the invalidation of its own token is rightly not cached, so wait until B
    // has caught up, then check — from then on the grant is in B's memory.
    until_caught_up(&b, &a, &deployment.admin_token).await;
    assert_eq!(b.status_of(&cached).await, 200);
    assert!(
        metric(
            &b,
            "latchkey_verifier_cached_grants",
            &deployment.admin_token
        )
        .await
            >= 1.0,
        "B holds the grant"
    );

    // The grace (max_staleness, 10 s) runs from B's last successful read of the feed,
    // which B's poller (every second) made shortly before the stop began — later on a
    // slow stop. So the timings below count from the start of the stop, with GRACE_FLOOR
    // for a poll or two that a loaded machine delays: `pg_ctl stop` itself may take
    // seconds there, and a cached grant refused once the grace can have run out is right.
    const GRACE_FLOOR: Duration = Duration::from_secs(7);
    let stopping = Instant::now();
    cluster.stop().expect("stop PostgreSQL");
    let stopped = Instant::now();
    // Within max_staleness the cached grant is still trusted.
    let status = b.status_of(&cached).await;
    assert!(
        status == 200 || stopping.elapsed() >= GRACE_FLOOR,
        "cached grants have a grace: {status} {:.1} s after the stop began ({:.1} s to stop)",
        stopping.elapsed().as_secs_f64(),
        (stopped - stopping).as_secs_f64()
    );
    // Writes and cache misses: 503, promptly.
    let err = admin_a
        .tokens()
        .create(
            &ws,
            &CreateTokenRequest::new("while down", TokenType::Personal),
        )
        .await
        .expect_err("no database");
    assert_eq!(err.status(), Some(503), "{err:?}");
    assert_eq!(b.status_of(&uncached).await, 503);
    let ready = b.anonymous().readyz().await;
    assert!(ready.is_err(), "/readyz is 503 while the database is away");
    // After max_staleness without a successful read of the feed, it is refused too.
    until_status(&b, &cached, 503, Duration::from_secs(30)).await;
    println!(
        "fail-closed {:.1} s after the stop began ({:.1} s to stop)",
        stopping.elapsed().as_secs_f64(),
        (stopped - stopping).as_secs_f64()
    );
    assert!(
        stopping.elapsed() >= GRACE_FLOOR,
        "not before max_staleness"
    );

    cluster.start_server().expect("start PostgreSQL");
    let restarted = Instant::now();
    // The same processes serve again.
    until_status(&b, &cached, 200, Duration::from_secs(60)).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    let (id, fresh) = loop {
        match admin_a
            .tokens()
            .create(
                &ws,
                &CreateTokenRequest::new("after restart", TokenType::Personal),
            )
            .await
        {
            Ok(created) => break (created.meta.id, created.token),
            Err(e) => {
                assert_eq!(e.status(), Some(503), "{e:?}");
                assert!(
                    Instant::now() < deadline,
                    "A never recovered: {}",
                    a.stderr()
                );
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    println!(
        "serving again {:.1} s after PostgreSQL came back",
        restarted.elapsed().as_secs_f64()
    );
    assert!(b.anonymous().readyz().await.is_ok());
    assert!(a.is_running() && b.is_running(), "no node was restarted");
    // Notices flow again after the listeners reconnected.
    assert_eq!(b.status_of(&fresh).await, 200);
    admin_a.tokens().revoke(&id).await.expect("revoke");
    let took = until_status(&b, &fresh, 401, Duration::from_secs(5)).await;
    // If B's listener has not reconnected yet (it retries every second at most), the
    // catch-up read still brings the change within a poll interval.
    println!("revocation A→B after the restart: {:.1} ms", millis(took));
    drop((a, b));
    db.drop_now().await;
    drop(cluster);
}

/// A real PgBouncer (Debian's) in front of the tests' PostgreSQL, in transaction pooling
/// mode, on a free port, with its own ini and user list in a temp dir; run as `postgres`
/// when we are root (PgBouncer refuses to run as root). Stopped (its process group) when
/// dropped.
struct PgBouncer {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl PgBouncer {
    fn start(upstream: std::net::SocketAddr) -> Option<PgBouncer> {
        use std::os::unix::process::CommandExt as _;
        let binary = ["/usr/sbin/pgbouncer", "/usr/bin/pgbouncer"]
            .into_iter()
            .map(PathBuf::from)
            .find(|p| p.exists());
        let Some(binary) = binary else {
            return pg::skip(
                "pgbouncer is not installed (apt-get install pgbouncer; .ci/run does it)",
            );
        };
        let dir = tempfile::tempdir().expect("tempdir");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let d = dir.path().display();
        std::fs::write(dir.path().join("userlist.txt"), "\"postgres\" \"\"\n").unwrap();
        std::fs::write(
            dir.path().join("pgbouncer.ini"),
            format!(
                "[databases]\n* = host={host} port={up}\n\
                 [pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {port}\n\
                 unix_socket_dir =\nauth_type = trust\nauth_file = {d}/userlist.txt\n\
                 pool_mode = transaction\nmax_client_conn = 200\ndefault_pool_size = 4\n\
                 ignore_startup_parameters = extra_float_digits\n\
                 logfile = {d}/pgbouncer.log\npidfile = {d}/pgbouncer.pid\n",
                host = upstream.ip(),
                up = upstream.port(),
            ),
        )
        .unwrap();
        let root = Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
        let mut cmd = if root {
            let _ = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status();
            let mut cmd = Command::new("runuser");
            cmd.args(["-u", "postgres", "--"]).arg(&binary);
            cmd
        } else {
            Command::new(&binary)
        };
        let child = cmd
            .arg(dir.path().join("pgbouncer.ini"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("start pgbouncer");
        let bouncer = PgBouncer {
            child,
            port,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "pgbouncer did not listen: {}",
                std::fs::read_to_string(bouncer._dir.path().join("pgbouncer.log"))
                    .unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(bouncer)
    }
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let quiet = |signal: &str| {
            let _ = Command::new("kill")
                .args([signal, "--", &group])
                .stderr(Stdio::null())
                .status();
        };
        quiet("-TERM");
        let _ = self.child.wait();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Command::new("pgrep")
            .args(["-g", &self.child.id().to_string()])
            .output()
            .is_ok_and(|o| !o.stdout.is_empty())
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(20));
        }
        quiet("-KILL");
    }
}

/// Two nodes on PostgreSQL behind PgBouncer in transaction pooling mode
/// (`database_transaction_pooling`: no named prepared statements, every read in a
/// transaction), `LISTEN` on the direct `listen_database_url`: first start, tokens made and
/// used, a JWT, settings, a revocation on one node refused by the other promptly — with
/// catch-up polling slowed to a minute, so only the notice through the direct connection
/// can bring it in time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_pgbouncer_in_transaction_mode_everything_works_and_revocation_reaches_the_other_node()
 {
    if sqlite_pass_only(SQLITE_PASS) {
        return;
    }
    let Some(db) = database().await else { return };
    let upstream = crate::outage::address_of(&db.url).await;
    let Some(bouncer) = PgBouncer::start(upstream) else {
        return;
    };
    let pooled = crate::outage::through(
        &db.url,
        std::net::SocketAddr::from(([127, 0, 0, 1], bouncer.port)),
    );
    let extra = format!(
        "database_transaction_pooling = true\nlisten_database_url = \"{}\"\n",
        db.url
    );
    let deployment = Deployment::with_config(&pooled, 30, PUBLIC_URL, &extra);
    let config = std::fs::read_to_string(&deployment.config).unwrap();
    std::fs::write(
        &deployment.config,
        config.replace("[verifier]\n", "[verifier]\npoll_interval_ms = 60000\n"),
    )
    .unwrap();
    let a = deployment.node("a").await;
    let b = deployment.node("b").await;
    let admin_a = a.with_token(&deployment.admin_token);
    let admin_b = b.with_token(&deployment.admin_token);
    let ws = workspace1(&admin_a).await;
    for round in 0..3 {
        let (_, pat) =
            create_token(&admin_a, &ws, &format!("pat {round}"), TokenType::Personal).await;
        assert_eq!(
            b.with_token(&pat)
                .me()
                .await
                .expect("a's token on b")
                .user
                .username,
            "admin"
        );
        let jwt = a.anonymous().refresh(&pat).await.expect("JWT").access;
        b.with_token(&jwt).me().await.expect("a's JWT on b");
        let (id, client) = create_token(
            &admin_b,
            &ws,
            &format!("second {round}"),
            TokenType::Personal,
        )
        .await;
        until_status(&a, &client, 200, Duration::from_secs(5)).await;
        admin_a.tokens().get(&id).await.expect("read on a");
        admin_a.tokens().revoke(&id).await.expect("revoke on a");
        // Polling is slowed to a minute: only the notice (LISTEN on the direct URL) can
        // bring the revocation to b within the deadline.
        let took = until_status(&b, &client, 401, Duration::from_secs(5)).await;
        println!(
            "revocation through PgBouncer reached b after {:.1} ms",
            millis(took)
        );
        admin_b.tokens().restore(&id).await.expect("restore on b");
        until_status(&a, &client, 200, Duration::from_secs(5)).await;
    }
    let listed = admin_b
        .tokens()
        .list(Some(&ws), &Default::default())
        .await
        .expect("list on b");
    assert!(listed.items.len() >= 6, "{}", listed.items.len());
    drop((a, b));
    drop(bouncer);
    db.drop_now().await;
}

/// A service account deactivated on one node: its tokens, cached on the other, stop there
/// promptly (the user change travels the change feed), and come back on reactivation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deactivating_a_service_account_on_one_node_stops_its_tokens_on_the_other() {
    if sqlite_pass_only(SQLITE_PASS) {
        return;
    }
    let Some(db) = database().await else { return };
    let deployment = Deployment::new(&db.url, 30);
    let a = deployment.node("a").await;
    let b = deployment.node("b").await;
    let admin_a = a.with_token(&deployment.admin_token);
    let ws = workspace1(&admin_a).await;
    let bot = admin_a
        .create_service_account("ci-bot", None)
        .await
        .expect("service account");
    admin_a
        .put_member(&ws, &bot.id, WorkspaceRole::Member)
        .await
        .expect("member");
    let mut req = CreateTokenRequest::new("deploy", TokenType::Personal);
    req.owner_id = Some(bot.id.clone());
    let made = admin_a
        .tokens()
        .create(&ws, &req)
        .await
        .expect("token for it");
    // B has the grant and the owner cached.
    assert_eq!(b.status_of(&made.token).await, 200);
    assert_eq!(b.status_of(&made.token).await, 200);
    let off = UpdateUserRequest {
        active: Some(false),
        ..Default::default()
    };
    admin_a
        .update_user(&bot.id, &off)
        .await
        .expect("deactivate on a");
    let took = until_status(&b, &made.token, 401, Duration::from_secs(5)).await;
    println!("service account deactivation A→B: {:.1} ms", millis(took));
    let on = UpdateUserRequest {
        active: Some(true),
        ..Default::default()
    };
    admin_a
        .update_user(&bot.id, &on)
        .await
        .expect("reactivate on a");
    until_status(&b, &made.token, 200, Duration::from_secs(5)).await;
    drop((a, b));
    db.drop_now().await;
}
