//! The `latchkey` binary as a subprocess: first start prints once, restart keeps data,
//! `kill -9` after an acknowledged create keeps the token, SIGTERM flushes, no secret in
//! the data dir, bad keys stop the start, the committed OpenAPI file matches.

use crate::harness::sqlite_pass_only;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use latchkey_client::Client;
use latchkey_client::proto::{CreateTokenRequest, TokenType};

/// Why these tests run in the first pass of `scripts/test.sh` only.
const SQLITE_PASS: &str = "the binary as a subprocess on a SQLite data dir";

struct Proc {
    child: Child,
    url: String,
    stdout: String,
    stderr: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Drop for Proc {
    /// A failed assertion must not leave a server running.
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn spawn(dir: &Path, envs: &[(&str, &str)]) -> Proc {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_latchkey"));
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir)
        .env_remove("LATCHKEY_HASH_KEY")
        .env_remove("LATCHKEY_ADMIN_PASSWORD")
        .env_remove("LATCHKEY_ADMIN_TOKEN")
        .env("RUST_LOG", "info")
        .env("LATCHKEY_LOG_FORMAT", "text")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn latchkey");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let logged = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let keep = std::sync::Arc::clone(&logged);
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Ok(mut text) = keep.lock() {
                text.push_str(&line);
                text.push('\n');
            }
            if let Some(i) = line.find("address=") {
                let addr = line[i + 8..]
                    .split_whitespace()
                    .next()
                    .unwrap_or("")
                    .to_owned();
                let _ = tx.send(addr);
            }
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("server announced its address");
    Proc {
        child,
        url: format!("http://{addr}"),
        stdout: String::new(),
        stderr: logged,
    }
}

impl Proc {
    /// What the server logged so far.
    fn stderr(&self) -> String {
        self.stderr.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Reads whatever stdout holds once the process has exited.
    fn finish(mut self) -> String {
        let _ = self.child.wait();
        let mut out = std::mem::take(&mut self.stdout);
        if let Some(mut s) = self.child.stdout.take() {
            let _ = s.read_to_string(&mut out);
        }
        out
    }

    fn sigterm(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    }
}

fn password_from(stdout: &str) -> String {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("Admin password:"))
        .map(|s| s.trim().to_owned())
        .expect("Admin password line")
}

fn token_from(stdout: &str) -> String {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("API token:"))
        .map(|s| s.trim().to_owned())
        .expect("API token line")
}

#[tokio::test]
async fn first_start_prints_once_restart_keeps_data_and_sigterm_flushes() {
    if sqlite_pass_only(SQLITE_PASS) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let first = spawn(dir.path(), &[]);
    let client = Client::new(&first.url).unwrap();
    client.readyz().await.unwrap();
    first.sigterm();
    let out = first.finish();
    assert!(out.contains("Latchkey first start"), "{out}");
    let password = password_from(&out);
    assert_eq!(password.len(), 24);
    let token = token_from(&out);

    // The hash key file exists with mode 0600.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("hash.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        // The database (and its WAL) hold password and token hashes: owner-only too.
        for file in ["latchkey.db", "latchkey.db-wal"] {
            let path = dir.path().join(file);
            if path.exists() {
                let mode = std::fs::metadata(&path).unwrap().permissions().mode();
                assert_eq!(mode & 0o077, 0, "{file} is {mode:o}");
            }
        }
    }

    let second = spawn(dir.path(), &[]);
    let api = Client::with_token(&second.url, token.clone()).unwrap();
    let me = api.me().await.unwrap();
    assert_eq!(me.user.username, "admin");
    let console = Client::new(&second.url).unwrap();
    console.sign_in("admin", &password).await.unwrap();
    second.sigterm();
    let out = second.finish();
    assert!(
        !out.contains("first start"),
        "restart must not bootstrap again: {out}"
    );

    // No secret in clear anywhere in the data dir.
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        assert!(!text.contains(&token), "{} holds the token", path.display());
        assert!(
            !text.contains(&password),
            "{} holds the password",
            path.display()
        );
    }
}

#[tokio::test]
async fn kill_9_right_after_an_acknowledged_create_keeps_the_token() {
    if sqlite_pass_only(SQLITE_PASS) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let preset = "lkp_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA3Ae0o2";
    let mut server = spawn(
        dir.path(),
        &[
            ("LATCHKEY_ADMIN_PASSWORD", "preset password 123"),
            ("LATCHKEY_ADMIN_TOKEN", preset),
        ],
    );
    let admin = Client::with_token(&server.url, preset).unwrap();
    let me = admin.me().await.unwrap();
    let ws = me.memberships[0].workspace_id.clone();
    let created = admin
        .tokens()
        .create(&ws, &CreateTokenRequest::new("durable", TokenType::Client))
        .await
        .unwrap();
    server.child.kill().unwrap(); // SIGKILL
    let out = server.finish();
    assert!(
        !out.contains("preset password 123"),
        "a preset password is never echoed"
    );
    assert!(!out.contains(preset), "a preset token is never echoed");

    let again = spawn(dir.path(), &[]);
    let api = Client::with_token(&again.url, created.token.clone()).unwrap();
    api.list_projects(&ws).await.unwrap();
    again.sigterm();
    again.finish();
}

/// A first start that cannot listen makes nothing (issue 22): no hash key, no admin, no
/// token lost unprinted; the next start that can listen prints credentials that work.
#[tokio::test]
async fn a_first_start_with_its_port_taken_makes_nothing_and_the_next_prints_working_credentials() {
    if sqlite_pass_only(SQLITE_PASS) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let out = Command::new(env!("CARGO_BIN_EXE_latchkey"))
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(dir.path())
        .env_remove("LATCHKEY_HASH_KEY")
        .env_remove("LATCHKEY_ADMIN_PASSWORD")
        .env_remove("LATCHKEY_ADMIN_TOKEN")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("cannot listen on 127.0.0.1:{port}")),
        "{err}"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        !stdout.contains("first start"),
        "nothing to print: {stdout}"
    );
    let made: Vec<_> = std::fs::read_dir(dir.path())
        .map(|d| d.map_while(Result::ok).map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(made.is_empty(), "the failed start made {made:?}");
    drop(taken);

    let next = spawn(dir.path(), &[]);
    next.sigterm();
    let out = next.finish();
    assert!(out.contains("Latchkey first start"), "{out}");
    let password = password_from(&out);
    let token = token_from(&out);
    let again = spawn(dir.path(), &[]);
    let me = Client::with_token(&again.url, token)
        .unwrap()
        .me()
        .await
        .unwrap();
    assert_eq!(me.user.username, "admin");
    Client::new(&again.url)
        .unwrap()
        .sign_in("admin", &password)
        .await
        .unwrap();
    // `--listen …:0`: the printed URL has the port the server really listens on.
    assert!(
        out.lines()
            .any(|l| l.starts_with("Console and API:") && !l.ends_with(":0")),
        "{out}"
    );
    again.sigterm();
    again.finish();
}

/// Nested settings come from `LATCHKEY_SECTION__KEY` in the real binary, and a
/// `LATCHKEY_*` name that is no setting is reported rather than silently dropped.
#[tokio::test]
async fn nested_settings_come_from_the_environment() {
    if sqlite_pass_only(SQLITE_PASS) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = spawn(
        dir.path(),
        &[
            ("LATCHKEY_THROTTLE__FAILED_TOKEN_CHECKS", "2"),
            ("LATCHKEY_THROTTLE__WINDOW_SECS", "3600"),
            ("LATCHKEY_PUBLICURL", "https://typo.example"),
        ],
    );
    let client = Client::new(&server.url).unwrap();
    let unknown = "lkp_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA3Ae0o2";
    for _ in 0..2 {
        assert!(!client.verify(unknown).await.unwrap().valid);
    }
    let err = client.verify(unknown).await.unwrap_err();
    assert_eq!(
        err.status(),
        Some(429),
        "the third failure is throttled: {err:?}"
    );
    assert!(
        server
            .stderr()
            .contains("LATCHKEY_PUBLICURL is not a Latchkey setting"),
        "{}",
        server.stderr()
    );
    server.sigterm();
    server.finish();

    // A bad value stops the start, naming the variable.
    let out = Command::new(env!("CARGO_BIN_EXE_latchkey"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .env("LATCHKEY_THROTTLE__WINDOW_SECS", "an hour")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("LATCHKEY_THROTTLE__WINDOW_SECS"), "{err}");
}

#[test]
fn malformed_hash_keys_stop_the_start() {
    if sqlite_pass_only(SQLITE_PASS) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for (k, v) in [
        ("LATCHKEY_HASH_KEY", "abc"),
        ("LATCHKEY_HASH_KEY", &"zz".repeat(32)),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_latchkey"))
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path())
            .env(k, v)
            .output()
            .unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("LATCHKEY_HASH_KEY"), "{err}");
    }
    // A key file with a trailing newline is fine; a different key than the store's is refused.
    let key_file = dir.path().join("key.txt");
    std::fs::write(&key_file, format!("{}\n", "ab".repeat(32))).unwrap();
    let data = dir.path().join("data");
    let ok = spawn(
        &data,
        &[("LATCHKEY_HASH_KEY_FILE", key_file.to_str().unwrap())],
    );
    ok.sigterm();
    ok.finish();
    let out = Command::new(env!("CARGO_BIN_EXE_latchkey"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .env("LATCHKEY_HASH_KEY", "cd".repeat(32))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("another hash key"));
}

#[test]
fn committed_openapi_matches_the_code() {
    if sqlite_pass_only(SQLITE_PASS) {
        return;
    }
    let out = Command::new(env!("CARGO_BIN_EXE_latchkey"))
        .arg("openapi")
        .output()
        .unwrap();
    assert!(out.status.success());
    let generated = String::from_utf8(out.stdout).unwrap();
    let committed_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json");
    let committed = std::fs::read_to_string(&committed_path).unwrap_or_default();
    assert!(
        generated.trim() == committed.trim(),
        "docs/openapi.json is out of date: run `cargo run -p latchkey-cli -- openapi > docs/openapi.json`"
    );
}

#[test]
fn migrate_prepares_a_store_without_serving() {
    if sqlite_pass_only(SQLITE_PASS) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_latchkey"))
        .args(["migrate", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("migrations applied"));
    assert!(dir.path().join("latchkey.db").exists());
    let bad = Command::new(env!("CARGO_BIN_EXE_latchkey"))
        .args(["serve", "--database-url", "mysql://nope"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unsupported database URL"));
}

/// `[metrics] listen` (from the environment): `/metrics` answers on its own address and
/// only there (the main address answers 404 for it, the metrics address for everything
/// else); a taken metrics port stops the start with the key named.
#[tokio::test]
async fn metrics_can_listen_on_their_own_address() {
    let dir = tempfile::tempdir().unwrap();
    let server = spawn(dir.path(), &[("LATCHKEY_METRICS__LISTEN", "127.0.0.1:0")]);
    let logged = server.stderr();
    let metrics = logged
        .lines()
        .find_map(|l| l.split_once(" metrics=").map(|(_, rest)| rest))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no metrics address logged:\n{logged}"))
        .to_owned();
    assert!(!metrics.ends_with(":0"), "{metrics}");
    let http = reqwest::Client::new();
    let own = http
        .get(format!("http://{metrics}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(own.status(), 200);
    assert!(
        own.text()
            .await
            .unwrap()
            .contains("# TYPE latchkey_http_requests_total counter")
    );
    let main = http
        .get(format!("{}/metrics", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(main.status(), 404, "not on the main address");
    let body: serde_json::Value = main.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_found");
    let elsewhere = http
        .get(format!("http://{metrics}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        elsewhere.status(),
        404,
        "the metrics address serves nothing else"
    );
    let health = http
        .get(format!("{}/healthz", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    server.sigterm();
    server.finish();

    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let fresh = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_latchkey"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(fresh.path())
        .env("LATCHKEY_METRICS__LISTEN", format!("127.0.0.1:{port}"))
        .env_remove("LATCHKEY_HASH_KEY")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("metrics.listen"), "{err}");
    assert!(
        String::from_utf8_lossy(&out.stdout).is_empty(),
        "no credentials were made, so none printed"
    );
    drop(taken);
}

/// Usage details buffered in memory (no flush for an hour) reach the store when the real
/// binary gets SIGTERM: after a restart the counts and the addresses (believed from the
/// trusted proxy's `X-Forwarded-For`) are there.
#[tokio::test]
async fn sigterm_flushes_buffered_usage() {
    if sqlite_pass_only(SQLITE_PASS) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("LATCHKEY_VERIFIER__LAST_USED_FLUSH_SECS", "3600"),
        ("LATCHKEY_TRUSTED_PROXIES", "127.0.0.1"),
    ];
    let first = spawn(dir.path(), &env);
    Client::new(&first.url).unwrap().readyz().await.unwrap();
    first.sigterm();
    let out = first.finish();
    let (token, password) = (token_from(&out), password_from(&out));

    let second = spawn(dir.path(), &env);
    let http = reqwest::Client::new();
    for ip in [
        "198.51.100.1",
        "198.51.100.2",
        "198.51.100.1",
        "198.51.100.3",
    ] {
        let status = http
            .get(format!("{}/api/v1/me", second.url))
            .bearer_auth(&token)
            .header("X-Forwarded-For", ip)
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 200);
    }
    second.sigterm();
    second.finish();

    let third = spawn(dir.path(), &env);
    let console = Client::new(&third.url).unwrap();
    console.sign_in("admin", &password).await.unwrap();
    // The admin's only token is the bootstrap one.
    let mine = console.tokens().list_all(None).await.unwrap();
    assert_eq!(mine.len(), 1, "{mine:?}");
    let usage = console.tokens().usage(&mine[0].id).await.unwrap();
    let total: u64 = usage.daily.iter().map(|d| d.count).sum();
    assert_eq!(
        total, 4,
        "the 4 uses before SIGTERM were flushed: {usage:?}"
    );
    let ips: Vec<&str> = usage.last_ips.iter().map(|u| u.ip.as_str()).collect();
    for ip in ["198.51.100.1", "198.51.100.2", "198.51.100.3"] {
        assert!(ips.contains(&ip), "{ip} in {ips:?}");
    }
    third.sigterm();
    third.finish();
}
