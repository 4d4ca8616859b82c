//! Nothing lost (issue 16): `kill -9` of the server during a burst of token changes, then a
//! restart — every acknowledged change is delivered at least once, and a message delivered
//! twice carries the same `webhook-id`. On PostgreSQL with two nodes: while both run, each
//! message is delivered exactly once (counted at the receiver: the lease claim keeps the
//! other node off); after `kill -9` of one during a burst, the survivor delivers everything
//! acknowledged, including what the dead node had claimed (once its lease ran out).

use crate::harness::sqlite_pass_only;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use latchkey_client::Client;
use latchkey_client::proto::{CreateTokenRequest, CreateWebhookRequest, EventType, TokenType};
use latchkey_core::token::{self, SecretKind};
use latchkey_store_postgres::testing::TestDatabase;

use crate::webhooks::Receiver;

/// Why these tests run in the first pass of `scripts/test.sh` only.
const SQLITE_PASS: &str =
    "subprocesses on a SQLite data dir, and PostgreSQL nodes of their own in either pass";

/// A `latchkey serve` process; killed when dropped.
pub(crate) struct Node {
    child: Child,
    url: String,
    stderr: Arc<Mutex<String>>,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Node {
    pub(crate) fn kill_9(&mut self) {
        self.child.kill().expect("SIGKILL");
        let _ = self.child.wait();
    }
}

pub(crate) struct Setup {
    dir: tempfile::TempDir,
    config: PathBuf,
    hash_key: String,
    admin_token: String,
    database_url: Option<String>,
}

impl Setup {
    pub(crate) fn new(database_url: Option<&str>) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("latchkey.toml");
        std::fs::write(
            &config,
            "public_url = \"http://latchkey.test\"\ndatabase_pool_size = 4\n\
             [passwords]\nmemory_kib = 64\niterations = 1\n\
             [throttle]\nsign_in_attempts = 10000\nfailed_token_checks = 100000\n\
             [webhooks]\nallow_private_addresses = true\npoll_interval_ms = 50\n\
             timeout_secs = 1\nlease_secs = 3\n",
        )
        .unwrap();
        Setup {
            dir,
            config,
            hash_key: latchkey_core::HashKey::generate_hex(),
            admin_token: token::generate(SecretKind::Token(TokenType::Personal)),
            database_url: database_url.map(str::to_owned),
        }
    }

    pub(crate) async fn node(&self, name: &str) -> Node {
        let data_dir: PathBuf = self.dir.path().join(name);
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_latchkey"));
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(&data_dir)
            .arg("--config")
            .arg(&self.config)
            .env_remove("LATCHKEY_DATABASE_URL")
            .env_remove("LATCHKEY_HASH_KEY_FILE")
            .env_remove("LATCHKEY_CONFIG")
            .env("LATCHKEY_HASH_KEY", &self.hash_key)
            .env("LATCHKEY_ADMIN_PASSWORD", "crash test admin password")
            .env("LATCHKEY_ADMIN_TOKEN", &self.admin_token)
            .env("LATCHKEY_LOG_FORMAT", "text")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some(url) = &self.database_url {
            cmd.arg("--database-url").arg(url);
        }
        let mut child = cmd.spawn().expect("spawn latchkey");
        let stderr = Arc::new(Mutex::new(String::new()));
        let pipe = child.stderr.take().unwrap();
        let into = Arc::clone(&stderr);
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                if let Ok(mut text) = into.lock() {
                    text.push_str(&line);
                    text.push('\n');
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        let url = loop {
            let text = stderr.lock().unwrap().clone();
            if let Some(i) = text.find("address=") {
                let addr = text[i + 8..].split_whitespace().next().unwrap_or("");
                break format!("http://{addr}");
            }
            assert!(
                matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline,
                "node {name} never listened:\n{text}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let client = Client::new(&url).unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        while client.readyz().await.is_err() {
            assert!(Instant::now() < deadline, "node {name} never became ready");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Node { child, url, stderr }
    }

    pub(crate) fn admin(&self, node: &Node) -> Client {
        Client::with_token(&node.url, &self.admin_token).unwrap()
    }
}

/// Creates tokens on `nodes` in turn until `stop` is set; returns the ids acknowledged.
async fn burst(
    clients: Vec<Client>,
    ws: String,
    stop: Arc<std::sync::atomic::AtomicBool>,
    acknowledged: Arc<Mutex<Vec<String>>>,
) {
    let mut i = 0usize;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) && i < 2000 {
        let client = &clients[i % clients.len()];
        let request = CreateTokenRequest::new(format!("burst-{i}"), TokenType::Client);
        if let Ok(created) = client.tokens().create(&ws, &request).await {
            acknowledged.lock().unwrap().push(created.meta.id);
        }
        i += 1;
    }
}

/// Token id → the `webhook-id`s of the `token.created` messages received for it, and how
/// many messages arrived in all.
fn received(receiver: &Receiver) -> (BTreeMap<String, BTreeSet<String>>, usize) {
    let got = receiver.of_type("token.created");
    let mut by_token: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for r in &got {
        let id = r.json()["data"]["token"]["id"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        by_token
            .entry(id)
            .or_default()
            .insert(r.header("webhook-id").to_owned());
    }
    (by_token, got.len())
}

async fn until_all_delivered(receiver: &Receiver, acknowledged: &[String], within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let (by_token, _) = received(receiver);
        let missing: Vec<&String> = acknowledged
            .iter()
            .filter(|id| !by_token.contains_key(*id))
            .collect();
        if missing.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {} acknowledged changes never delivered, e.g. {:?}",
            missing.len(),
            acknowledged.len(),
            &missing[..missing.len().min(3)]
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn subscribe(admin: &Client, receiver: &Receiver) {
    admin
        .webhooks()
        .create(&CreateWebhookRequest {
            url: receiver.url.clone(),
            events: vec![EventType::TokenCreated],
            description: None,
            enabled: None,
        })
        .await
        .unwrap();
}

async fn workspace1(admin: &Client) -> String {
    admin.me().await.unwrap().memberships[0]
        .workspace_id
        .clone()
}

/// Waits until at least `n` creates were acknowledged.
async fn until_acknowledged(acknowledged: &Mutex<Vec<String>>, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while acknowledged.lock().unwrap().len() < n {
        assert!(Instant::now() < deadline, "the burst is stuck");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn stop_flag() -> Arc<std::sync::atomic::AtomicBool> {
    Arc::new(std::sync::atomic::AtomicBool::new(false))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_a_burst_then_restart_delivers_every_acknowledged_change() {
    if sqlite_pass_only(SQLITE_PASS) {
        return;
    }
    let receiver = Receiver::start().await;
    let setup = Setup::new(None);
    let mut node = setup.node("one").await;
    let admin = setup.admin(&node);
    subscribe(&admin, &receiver).await;
    let ws = workspace1(&admin).await;
    let acknowledged = Arc::new(Mutex::new(Vec::new()));
    let stop = stop_flag();
    let task = tokio::spawn(burst(
        vec![admin.clone(), admin.clone()],
        ws.clone(),
        Arc::clone(&stop),
        Arc::clone(&acknowledged),
    ));
    until_acknowledged(&acknowledged, 40).await;
    node.kill_9();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    task.await.unwrap();
    let acknowledged = acknowledged.lock().unwrap().clone();
    let before_restart = received(&receiver).0.len();
    // The same data dir, the same hash key.
    let node = setup.node("one").await;
    until_all_delivered(&receiver, &acknowledged, Duration::from_secs(60)).await;
    let (by_token, _) = received(&receiver);
    for (token, ids) in &by_token {
        assert_eq!(
            ids.len(),
            1,
            "token {token}: repeats must carry one webhook-id"
        );
    }
    eprintln!(
        "kill -9 after {} acknowledged creates: {before_restart} delivered before, all after restart",
        acknowledged.len()
    );
    drop(node);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_postgresql_nodes_deliver_each_message_once_and_survive_kill_9_of_one() {
    if sqlite_pass_only(SQLITE_PASS) {
        return;
    }
    let Some(db) = TestDatabase::create().await else {
        return;
    };
    let receiver = Receiver::start().await;
    let setup = Setup::new(Some(&db.url));
    let mut a = setup.node("a").await;
    let b = setup.node("b").await;
    let (admin_a, admin_b) = (setup.admin(&a), setup.admin(&b));
    subscribe(&admin_a, &receiver).await;
    let ws = workspace1(&admin_a).await;

    // Both nodes running: every message exactly once.
    let acknowledged = Arc::new(Mutex::new(Vec::new()));
    let stop = stop_flag();
    let task = tokio::spawn(burst(
        vec![admin_a.clone(), admin_b.clone()],
        ws.clone(),
        Arc::clone(&stop),
        Arc::clone(&acknowledged),
    ));
    until_acknowledged(&acknowledged, 60).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    task.await.unwrap();
    let first = acknowledged.lock().unwrap().clone();
    until_all_delivered(&receiver, &first, Duration::from_secs(60)).await;
    let (by_token, total) = received(&receiver);
    assert_eq!(
        total,
        first.len(),
        "with two live nodes each message arrives once ({} messages for {} changes)",
        total,
        first.len()
    );
    assert_eq!(by_token.len(), first.len());

    // kill -9 of A during a burst on both: B delivers everything acknowledged.
    let acknowledged = Arc::new(Mutex::new(Vec::new()));
    let stop = stop_flag();
    let task = tokio::spawn(burst(
        vec![admin_a.clone(), admin_b.clone()],
        ws.clone(),
        Arc::clone(&stop),
        Arc::clone(&acknowledged),
    ));
    until_acknowledged(&acknowledged, 40).await;
    a.kill_9();
    // A few more on B alone.
    let more = acknowledged.lock().unwrap().len() + 10;
    until_acknowledged(&acknowledged, more).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    task.await.unwrap();
    let second = acknowledged.lock().unwrap().clone();
    until_all_delivered(&receiver, &second, Duration::from_secs(60)).await;
    let (by_token, total) = received(&receiver);
    for (token, ids) in &by_token {
        assert_eq!(
            ids.len(),
            1,
            "token {token}: repeats must carry one webhook-id"
        );
    }
    let repeats = total - by_token.len();
    eprintln!(
        "two nodes: {} changes once each; after kill -9 of one, {} more delivered, {repeats} repeated (claimed by the dead node)",
        first.len(),
        second.len()
    );
    assert!(
        b.stderr.lock().unwrap().contains("latchkey listening"),
        "b kept running"
    );
    drop((a, b));
    db.drop_now().await;
}
