//! The `latchkey` CLI as a subprocess against a real server: every client command in both
//! output modes, exit codes (0 / 1 API error / 2 usage or connection), `verify`'s 0/1/2,
//! `login`'s 0600 file, completions, `backup` restored into a fresh server, and
//! `admin reset-password` on the store (server running and stopped).
//!
//! The server runs in this process; each CLI call runs on a blocking thread so the server
//! keeps serving while the test waits for the subprocess.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use latchkey_client::AuditQuery;
use latchkey_client::proto::{
    OrgRole, TokenType, UpdateInstanceSettingsRequest, UpdateTokenSettingsRequest,
};
use serde_json::Value;

use crate::harness::{ADMIN_PASSWORD, TestServer, eventually, sqlite_pass_only};

/// A well-formed token (valid checksum) that no test server ever issued.
const UNKNOWN_TOKEN: &str = "lkp_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA3Ae0o2";

/// Variables that would make a run depend on the machine it runs on.
const CLEARED_ENV: [&str; 15] = [
    "LATCHKEY_URL",
    "LATCHKEY_PROFILE",
    "LATCHKEY_API_KEY",
    "LATCHKEY_CONFIG_DIR",
    "LATCHKEY_NEW_PASSWORD",
    "LATCHKEY_DATA_DIR",
    "LATCHKEY_DATABASE_URL",
    "LATCHKEY_CONFIG",
    "LATCHKEY_HASH_KEY",
    "LATCHKEY_HASH_KEY_FILE",
    "LATCHKEY_ADMIN_PASSWORD",
    "LATCHKEY_ADMIN_TOKEN",
    "LATCHKEY_LISTEN",
    "LATCHKEY_LOG_FORMAT",
    "XDG_CONFIG_HOME",
];

/// What a run printed and how it ended.
#[derive(Debug)]
struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Out {
    fn ok(&self) -> &Self {
        assert_eq!(self.code, 0, "expected success: {self:#?}");
        self
    }

    fn json(&self) -> Value {
        self.ok();
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not one JSON document ({e}): {self:#?}"))
    }

    /// Asserts the exit code and that stderr is one `error: …` line; returns that line.
    fn fails(&self, code: i32) -> &str {
        assert_eq!(self.code, code, "exit code: {self:#?}");
        let line = self.stderr.trim_end();
        assert!(
            line.starts_with("error: ") && !line.contains('\n'),
            "stderr must be one error line: {self:#?}"
        );
        line
    }

    /// The secret on the `Token:` line of table output.
    fn secret(&self) -> String {
        self.ok();
        let secrets: Vec<&str> = self
            .stdout
            .lines()
            .filter_map(|l| l.strip_prefix("Token: "))
            .collect();
        assert_eq!(secrets.len(), 1, "one Token: line: {self:#?}");
        secrets[0].trim().to_owned()
    }
}

/// A CLI invocation being built.
struct Run {
    program: Option<String>,
    args: Vec<String>,
    envs: Vec<(String, String)>,
    stdin: Option<String>,
}

impl Run {
    fn env(mut self, key: &str, value: impl AsRef<str>) -> Self {
        self.envs.push((key.into(), value.as_ref().into()));
        self
    }

    /// Runs `program args` instead of `latchkey` (e.g. `script` for a terminal).
    fn program(mut self, program: &str, args: &[&str]) -> Self {
        self.program = Some(program.into());
        self.args = args.iter().map(|a| (*a).to_owned()).collect();
        self
    }

    fn stdin(mut self, text: &str) -> Self {
        self.stdin = Some(text.into());
        self
    }

    async fn out(self) -> Out {
        let task = tokio::task::spawn_blocking(move || {
            let mut cmd = Command::new(
                self.program
                    .as_deref()
                    .unwrap_or(env!("CARGO_BIN_EXE_latchkey")),
            );
            cmd.args(&self.args);
            for key in CLEARED_ENV {
                cmd.env_remove(key);
            }
            for (k, v) in &self.envs {
                cmd.env(k, v);
            }
            cmd.stdin(if self.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
            let mut child = cmd.spawn().expect("spawn latchkey");
            if let Some(text) = &self.stdin {
                let mut pipe = child.stdin.take().unwrap();
                // A command may exit without reading its input (a usage error): its exit
                // code is the answer then, not the broken pipe.
                if let Err(e) = pipe.write_all(text.as_bytes()) {
                    assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "{e}");
                }
                drop(pipe);
            }
            let output = child.wait_with_output().unwrap();
            Out {
                code: output.status.code().unwrap_or(-1),
                stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            }
        });
        tokio::time::timeout(Duration::from_secs(120), task)
            .await
            .expect("the CLI finished in time")
            .unwrap()
    }
}

/// A test's CLI environment: a private config dir (so no run reads a real one).
struct Ctx {
    config_dir: tempfile::TempDir,
}

impl Ctx {
    fn new() -> Ctx {
        Ctx {
            config_dir: tempfile::tempdir().unwrap(),
        }
    }

    fn config_dir(&self) -> &Path {
        self.config_dir.path()
    }

    /// `latchkey ARGS` with the config dir set and nothing else from the environment.
    fn cmd(&self, args: &[&str]) -> Run {
        Run {
            program: None,
            args: args.iter().map(|a| (*a).to_owned()).collect(),
            envs: vec![(
                "LATCHKEY_CONFIG_DIR".into(),
                self.config_dir().display().to_string(),
            )],
            stdin: None,
        }
    }

    /// `latchkey ARGS --url URL --token TOKEN`.
    fn api(&self, server: &TestServer, token: &str, args: &[&str]) -> Run {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--url", &server.url, "--token", token]);
        self.cmd(&all)
    }

    /// As the bootstrap admin, in table mode.
    async fn admin(&self, server: &TestServer, args: &[&str]) -> Out {
        self.api(server, server.admin_token.as_deref().unwrap(), args)
            .out()
            .await
    }

    /// As the bootstrap admin, with `--output json`.
    async fn admin_json(&self, server: &TestServer, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.extend(["--output", "json"]);
        self.admin(server, &all).await.json()
    }
}

fn ids(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|t| t["id"].as_str().unwrap().to_owned())
        .collect()
}

/// A port nothing listens on.
async fn closed_port_url() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}")
}

#[tokio::test]
async fn cli_whoami_workspaces_and_projects_in_both_output_modes() {
    let server = TestServer::start().await;
    let ctx = Ctx::new();
    let ws = server.workspace1().await;

    let out = ctx.admin(&server, &["whoami"]).await;
    out.ok();
    assert!(out.stdout.contains("admin"), "{out:#?}");
    assert!(out.stdout.contains("Workspace 1"), "{out:#?}");
    assert!(out.stderr.is_empty(), "{out:#?}");
    let me = ctx.admin_json(&server, &["whoami"]).await;
    assert_eq!(me["username"], "admin");
    assert_eq!(me["memberships"][0]["workspace_name"], "Workspace 1");
    assert!(me["org"]["id"].is_string());

    let out = ctx.admin(&server, &["workspace", "list"]).await;
    out.ok();
    assert!(out.stdout.starts_with("ID"), "{out:#?}");
    assert!(out.stdout.contains("Workspace 1") && out.stdout.contains(&ws));
    let list = ctx.admin_json(&server, &["workspace", "list"]).await;
    assert!(ids(&list).contains(&ws), "{list}");
    assert!(list["next_cursor"].is_null());

    // No workspace: POST /projects, the token's workspace. Table output.
    let out = ctx
        .admin(
            &server,
            &[
                "project",
                "create",
                "--name",
                "Fraud Demo",
                "--description",
                "This is an Onboarding Demo",
            ],
        )
        .await;
    out.ok();
    assert!(out.stdout.contains("Fraud Demo"), "{out:#?}");
    assert!(out.stdout.contains(&ws), "{out:#?}");
    // By workspace name, JSON output: the API's project object.
    let project = ctx
        .admin_json(
            &server,
            &[
                "project",
                "create",
                "--name",
                "Second",
                "--workspace",
                "Workspace 1",
            ],
        )
        .await;
    assert_eq!(project["name"], "Second");
    assert_eq!(project["workspace_id"], ws.as_str());
    assert!(project["description"].is_null());

    // Lists: the token's workspace (GET /projects) and a named one.
    let out = ctx.admin(&server, &["project", "list"]).await;
    out.ok();
    assert!(out.stdout.contains("Fraud Demo") && out.stdout.contains("Second"));
    assert!(out.stdout.contains("This is an Onboarding Demo"));
    let list = ctx
        .admin_json(&server, &["project", "list", "--workspace", &ws])
        .await;
    assert_eq!(list["items"].as_array().unwrap().len(), 2);
    assert_eq!(list["items"][0]["name"], "Second", "newest first");

    // The environment variables work as the flags do.
    let out = ctx
        .cmd(&["whoami", "--output", "json"])
        .env("LATCHKEY_URL", &server.url)
        .env("LATCHKEY_API_KEY", server.admin_token.as_deref().unwrap())
        .out()
        .await;
    assert_eq!(out.json()["username"], "admin");
    // `--token -` reads it from stdin.
    let out = ctx
        .cmd(&["whoami", "--url", &server.url, "--token", "-"])
        .stdin(&format!("{}\n", server.admin_token.as_deref().unwrap()))
        .out()
        .await;
    out.ok();
    assert!(out.stdout.contains("admin"));
}

#[tokio::test]
async fn cli_token_lifecycle_in_both_output_modes() {
    let server = TestServer::start().await;
    let ctx = Ctx::new();
    let ws = server.workspace1().await;
    let project = server
        .admin()
        .create_project("Fraud Demo", None)
        .await
        .unwrap();

    // Create, table mode: metadata, then the secret on its own labelled line.
    let out = ctx
        .admin(
            &server,
            &[
                "token",
                "create",
                "--workspace",
                "Workspace 1",
                "--name",
                "cli-personal",
                "--expires-in-days",
                "7",
                "--scope",
                "projects:read",
                "--scope",
                "tokens:read",
            ],
        )
        .await;
    let personal = out.secret();
    assert!(personal.starts_with("lkp_"), "{out:#?}");
    assert!(out.stdout.contains("cli-personal"));
    assert!(out.stdout.contains("projects:read tokens:read"), "{out:#?}");
    assert!(out.stderr.contains("only this once"), "{out:#?}");
    let me = server.with_token(&personal).me().await.unwrap();
    assert_eq!(me.user.username, "admin");
    let personal_id = server
        .admin()
        .verify(&personal)
        .await
        .unwrap()
        .token
        .unwrap()
        .id;

    // Create, JSON mode: the API's object with the secret as `token`; workspace by id,
    // a client token bound to a project (by name) and an environment.
    let created = ctx
        .admin_json(
            &server,
            &[
                "token",
                "create",
                "--workspace",
                &ws,
                "--name",
                "backend",
                "--type",
                "client",
                "--project",
                "Fraud Demo",
                "--environment",
                "production",
            ],
        )
        .await;
    let client_secret = created["token"].as_str().unwrap().to_owned();
    let client_id = created["id"].as_str().unwrap().to_owned();
    assert!(client_secret.starts_with("lkc_"));
    assert_eq!(created["type"], "client");
    assert_eq!(created["projects"][0], project.id.as_str());
    assert_eq!(created["environment"], "production");
    assert_eq!(created["workspace_id"], ws.as_str());
    assert!(
        server
            .with_token(&client_secret)
            .list_projects(&ws)
            .await
            .is_ok()
    );

    // List: mine (no workspace) and a workspace's.
    let out = ctx.admin(&server, &["token", "list"]).await;
    out.ok();
    assert!(out.stdout.starts_with("ID"), "{out:#?}");
    assert!(out.stdout.contains("cli-personal") && !out.stdout.contains(&personal));
    let mine = ctx.admin_json(&server, &["token", "list"]).await;
    assert!(ids(&mine).contains(&personal_id));
    assert!(
        !ids(&mine).contains(&client_id),
        "workspace tokens are not mine"
    );
    let in_ws = ctx
        .admin_json(&server, &["token", "list", "--workspace", "Workspace 1"])
        .await;
    assert!(ids(&in_ws).contains(&client_id) && ids(&in_ws).contains(&personal_id));
    assert!(
        !in_ws.to_string().contains(&client_secret),
        "lists never hold secrets"
    );

    // Get.
    let out = ctx.admin(&server, &["token", "get", &client_id]).await;
    out.ok();
    assert!(out.stdout.contains("backend") && out.stdout.contains("production"));
    assert!(!out.stdout.contains(&client_secret));
    let got = ctx.admin_json(&server, &["token", "get", &client_id]).await;
    assert_eq!(got["id"], client_id.as_str());
    assert!(got.get("token").is_none(), "get never shows the secret");

    // Revoke (table) and restore (json); verify follows.
    let out = ctx.admin(&server, &["token", "revoke", &client_id]).await;
    out.ok();
    assert!(out.stdout.contains("revoked"), "{out:#?}");
    let v = ctx
        .cmd(&["verify", &client_secret, "--url", &server.url])
        .out()
        .await;
    assert_eq!(v.code, 1, "{v:#?}");
    assert!(v.stdout.contains("invalid: revoked"), "{v:#?}");
    let restored = ctx
        .admin_json(&server, &["token", "restore", &client_id])
        .await;
    assert_eq!(restored["state"], "active");
    let v = ctx
        .cmd(&["verify", &client_secret, "--url", &server.url])
        .out()
        .await;
    assert_eq!(v.code, 0, "{v:#?}");

    // Rotate, JSON: a new secret under the same id; the old one stops (no grace).
    let rotated = ctx
        .admin_json(
            &server,
            &["token", "rotate", &client_id, "--grace-seconds", "0"],
        )
        .await;
    let new_secret = rotated["token"].as_str().unwrap().to_owned();
    assert_eq!(rotated["id"], client_id.as_str());
    assert_ne!(new_secret, client_secret);
    assert!(!server.admin().verify(&client_secret).await.unwrap().valid);
    assert!(server.admin().verify(&new_secret).await.unwrap().valid);
    // Rotate, table, with a grace period: the old secret keeps working for now.
    let out = ctx
        .admin(
            &server,
            &["token", "rotate", &client_id, "--grace-seconds", "3600"],
        )
        .await;
    let newest = out.secret();
    assert!(newest.starts_with("lkc_") && newest != new_secret);
    assert!(server.admin().verify(&new_secret).await.unwrap().valid);
    assert!(server.admin().verify(&newest).await.unwrap().valid);

    // Delete asks first; with no terminal to ask on it needs --yes (exit 2, nothing gone).
    let out = ctx.admin(&server, &["token", "delete", &client_id]).await;
    assert!(out.fails(2).contains("--yes"), "{out:#?}");
    assert!(server.admin().tokens().get(&client_id).await.is_ok());
    // Delete (table and json), then it is gone: exit 1, one error line.
    let out = ctx
        .admin(&server, &["token", "delete", &client_id, "--yes"])
        .await;
    out.ok();
    assert!(out.stdout.contains(&client_id));
    let deleted = ctx
        .admin_json(&server, &["token", "delete", &personal_id, "-y"])
        .await;
    assert_eq!(deleted["deleted"], true);
    let out = ctx.admin(&server, &["token", "get", &client_id]).await;
    let line = out.fails(1);
    assert!(line.ends_with("(not_found, HTTP 404)"), "{line}");
    assert!(out.stdout.is_empty());
}

/// Issue 22: tokens by name and short id, list filters and `--limit`, tables that fit 120
/// columns, `token delete` asking on a terminal, several saved servers.
/// `token list` with the inventory's server-side filters, `--all` over several pages and
/// `--format csv`; `token bulk-revoke` from arguments, a CSV file and stdin, with every skip
/// and its reason; `token reveal` of a recoverable token. Both output modes.
#[tokio::test]
async fn cli_inventory_filters_csv_bulk_revoke_and_reveal() {
    let server = TestServer::start().await;
    let ctx = Ctx::new();
    let ws = server.workspace1().await;
    let admin = server.admin();
    let owner = server.signed_in("admin", ADMIN_PASSWORD).await;
    let org = owner.me().await.unwrap().org.id;
    owner
        .update_instance_settings(&UpdateInstanceSettingsRequest {
            max_active_tokens: Some(None),
            ..UpdateInstanceSettingsRequest::default()
        })
        .await
        .unwrap();
    let a = server.token(&admin, &ws, "Inv-a", TokenType::Client).await;
    let b = server
        .token(&admin, &ws, "inv-b", TokenType::Personal)
        .await;
    let c = server
        .token(&admin, &ws, "inv-c", TokenType::Frontend)
        .await;
    let other = server.token(&admin, &ws, "other", TokenType::Client).await;
    admin.tokens().revoke(&c.meta.id).await.unwrap();
    let sorted = |page: &Value| {
        let mut all = ids(page);
        all.sort();
        all
    };
    let want = |tokens: &[&latchkey_client::proto::CreatedToken]| {
        let mut all: Vec<String> = tokens.iter().map(|t| t.meta.id.clone()).collect();
        all.sort();
        all
    };

    // Every filter goes to the server; --name (alias --q) ignores case.
    let list = |args: &'static [&'static str]| {
        let mut all = vec!["token", "list"];
        all.extend_from_slice(args);
        all
    };
    let by_name = ctx.admin_json(&server, &list(&["--name", "INV-"])).await;
    assert_eq!(sorted(&by_name), want(&[&a, &b, &c]));
    let q = ctx
        .admin_json(&server, &list(&["--q", "inv-", "-t", "client"]))
        .await;
    assert_eq!(ids(&q), vec![a.meta.id.clone()]);
    let clients = ctx
        .admin_json(&server, &list(&["--all", "--type", "client"]))
        .await;
    assert_eq!(sorted(&clients), want(&[&a, &other]));
    let revoked = ctx
        .admin_json(&server, &list(&["--all", "--state", "revoked"]))
        .await;
    assert_eq!(ids(&revoked), vec![c.meta.id.clone()]);
    let mine = ctx
        .admin_json(
            &server,
            &list(&["--owner", "admin", "--type", "personal", "--q", "inv"]),
        )
        .await;
    assert_eq!(ids(&mine), vec![b.meta.id.clone()]);
    let in_ws = ctx
        .admin_json(
            &server,
            &list(&["--all", "-w", "Workspace 1", "--name", "inv"]),
        )
        .await;
    assert_eq!(sorted(&in_ws), want(&[&a, &b, &c]));
    let unused = ctx
        .admin_json(&server, &list(&["--never-used", "--name", "inv"]))
        .await;
    assert_eq!(sorted(&unused), want(&[&a, &b, &c]));
    for args in [
        &["--all", "--created-before", "2000-01-01"][..],
        // (The bootstrap token these calls use is the one token used so far.)
        &[
            "--name",
            "inv",
            "--last-used-before",
            "2100-01-01T00:00:00Z",
        ][..],
        &["--all", "--expires-before", "2000-01-01T00:00:00Z"][..],
    ] {
        let none = ctx.admin_json(&server, &list(args)).await;
        assert_eq!(ids(&none), Vec::<String>::new(), "{args:?}");
    }
    let before_2100 = ctx
        .admin_json(
            &server,
            &list(&["--created-before", "2100-01-01", "--name", "inv"]),
        )
        .await;
    assert_eq!(sorted(&before_2100), want(&[&a, &b, &c]));
    let newest = ctx
        .admin_json(&server, &list(&["--all", "--limit", "1"]))
        .await;
    assert_eq!(ids(&newest), vec![other.meta.id.clone()], "newest first");
    let out = ctx.admin(&server, &list(&["--name", "inv"])).await;
    assert!(out.ok().stdout.contains("inv-b") && !out.stdout.contains("other"));
    // Bad input is a usage error (exit 2), nothing sent.
    for args in [
        &["--created-before", "yesterday"][..],
        &["--format", "xml"][..],
        &["--format", "csv", "--output", "json"][..],
        &["--format", "csv", "--limit", "2"][..],
    ] {
        let out = ctx.admin(&server, &list(args)).await;
        assert_eq!(out.code, 2, "{args:?}: {out:#?}");
    }

    // CSV: a header row, one line per match, no secret.
    let out = ctx
        .admin(&server, &list(&["--name", "inv", "--format", "csv"]))
        .await;
    let csv = &out.ok().stdout;
    let mut lines = csv.lines();
    assert!(
        lines.next().unwrap().starts_with("id,name,type,state"),
        "{csv}"
    );
    assert_eq!(lines.count(), 3, "{csv}");
    for t in [&a, &b, &c] {
        assert!(csv.contains(&t.meta.id) && !csv.contains(&t.token));
    }

    // Bulk revoke from arguments: every id answered, in order, each skip with its reason.
    const UNKNOWN_ID: &str = "00000000-0000-7000-8000-000000000000";
    let result = ctx
        .admin_json(
            &server,
            &[
                "token",
                "bulk-revoke",
                &a.meta.id,
                &c.meta.id,
                UNKNOWN_ID,
                &a.meta.id,
            ],
        )
        .await;
    assert_eq!(result["revoked"], serde_json::json!([a.meta.id]));
    assert_eq!(
        result["skipped"],
        serde_json::json!([
            {"id": c.meta.id, "reason": "already_revoked"},
            {"id": UNKNOWN_ID, "reason": "not_found"},
            {"id": a.meta.id, "reason": "duplicate"},
        ])
    );
    let out = ctx
        .admin(&server, &["token", "bulk-revoke", &a.meta.id, &b.meta.id])
        .await;
    let text = &out.ok().stdout;
    assert!(
        text.contains("already_revoked") && text.contains("Revoked 1, skipped 1."),
        "{text}"
    );
    assert_eq!(
        admin.tokens().get(&b.meta.id).await.unwrap().state,
        latchkey_client::proto::TokenState::Revoked
    );
    ctx.admin(&server, &["token", "bulk-revoke"]).await.fails(2);

    // More than a page: --all walks every page, and the CSV export feeds bulk-revoke.
    for n in 0..201 {
        server
            .token(&admin, &ws, &format!("bulk-{n}"), TokenType::Client)
            .await;
    }
    let every = ctx
        .admin_json(&server, &list(&["--all", "--name", "bulk-"]))
        .await;
    assert_eq!(ids(&every).len(), 201);
    let csv = ctx
        .admin(&server, &list(&["--name", "bulk-", "--format", "csv"]))
        .await
        .ok()
        .stdout
        .clone();
    let file = ctx.config_dir().join("stale.csv");
    std::fs::write(&file, &csv).unwrap();
    let result = ctx
        .admin_json(
            &server,
            &[
                "token",
                "bulk-revoke",
                "--from-file",
                file.to_str().unwrap(),
            ],
        )
        .await;
    assert_eq!(result["revoked"].as_array().unwrap().len(), 201);
    let active = ctx
        .admin_json(&server, &list(&["--name", "bulk-", "--state", "active"]))
        .await;
    assert!(ids(&active).is_empty());
    // Ids on stdin, one per line.
    let result = ctx
        .api(
            &server,
            server.admin_token.as_deref().unwrap(),
            &["token", "bulk-revoke", "--from-file", "-", "-o", "json"],
        )
        .stdin(&format!("{}\n{UNKNOWN_ID}\n", other.meta.id))
        .out()
        .await
        .json();
    assert_eq!(result["revoked"], serde_json::json!([other.meta.id]));
    assert_eq!(result["skipped"][0]["reason"], "not_found");

    // Reveal: a recoverable token's secret again; anything else is refused (exit 1).
    owner
        .update_token_settings(
            &org,
            &UpdateTokenSettingsRequest {
                recoverable_types: Some(vec![TokenType::Client]),
                ..UpdateTokenSettingsRequest::default()
            },
        )
        .await
        .unwrap();
    let kept = server.token(&admin, &ws, "kept", TokenType::Client).await;
    let out = ctx
        .admin(&server, &["token", "reveal", &kept.meta.id])
        .await;
    assert_eq!(out.secret(), kept.token);
    assert!(out.stderr.contains("audit"), "{out:#?}");
    let json = ctx
        .admin_json(&server, &["token", "reveal", "kept", "-w", "Workspace 1"])
        .await;
    assert_eq!(json["token"], kept.token.as_str());
    let line = ctx
        .admin(&server, &["token", "reveal", &a.meta.id])
        .await
        .fails(1)
        .to_owned();
    assert!(
        line.contains("not_recoverable") || line.contains("recover"),
        "{line}"
    );
}

#[tokio::test]
async fn cli_names_filters_tables_confirmation_and_profiles() {
    let server = TestServer::start().await;
    let ctx = Ctx::new();
    let ws = server.workspace1().await;
    let admin = server.admin();
    let long_name = format!("nightly-export-{}", "x".repeat(150));
    let backend = server
        .token(&admin, &ws, "backend-api", TokenType::Client)
        .await;
    let long = server
        .token(&admin, &ws, &long_name, TokenType::Frontend)
        .await;
    let personal = server
        .token(&admin, &ws, "laptop", TokenType::Personal)
        .await;
    admin.tokens().revoke(&long.meta.id).await.unwrap();

    // By name in a workspace, by name among my tokens, by the short id a table shows.
    let got = ctx
        .admin_json(
            &server,
            &["token", "get", "backend-api", "--workspace", "Workspace 1"],
        )
        .await;
    assert_eq!(got["id"], backend.meta.id.as_str());
    let mine = ctx.admin_json(&server, &["token", "get", "laptop"]).await;
    assert_eq!(mine["id"], personal.meta.id.as_str());
    let short = &backend.meta.id[backend.meta.id.len() - 8..];
    let by_short = ctx
        .admin_json(&server, &["token", "revoke", short, "-w", &ws])
        .await;
    assert_eq!(
        (by_short["id"].as_str(), by_short["state"].as_str()),
        (Some(backend.meta.id.as_str()), Some("revoked"))
    );
    ctx.admin_json(&server, &["token", "restore", "backend-api", "-w", &ws])
        .await;
    let out = ctx
        .admin(
            &server,
            &["token", "get", "no-such-token", "-w", "Workspace 1"],
        )
        .await;
    assert!(out.fails(1).contains("no token named"), "{out:#?}");
    // A name two tokens share is refused with both ids.
    let twin = server
        .token(&admin, &ws, "backend-api", TokenType::Client)
        .await;
    let out = ctx
        .admin(&server, &["token", "get", "backend-api", "-w", &ws])
        .await;
    let line = out.fails(2);
    assert!(
        line.contains(&twin.meta.id) && line.contains(&backend.meta.id),
        "{line}"
    );

    // Filters (applied by the CLI) and --limit.
    let revoked = ctx
        .admin_json(&server, &["token", "list", "-w", &ws, "--state", "revoked"])
        .await;
    assert_eq!(ids(&revoked), vec![long.meta.id.clone()]);
    let clients = ctx
        .admin_json(&server, &["token", "list", "-w", &ws, "--type", "client"])
        .await;
    let client_ids = ids(&clients);
    assert!(client_ids.contains(&twin.meta.id) && client_ids.contains(&backend.meta.id));
    assert!(
        clients["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["type"] == "client")
    );
    let two = ctx
        .admin_json(&server, &["token", "list", "-w", &ws, "--limit", "2"])
        .await;
    assert_eq!(
        ids(&two),
        vec![twin.meta.id.clone(), personal.meta.id.clone()],
        "newest first"
    );
    let one_client = ctx
        .admin_json(
            &server,
            &[
                "token", "list", "-w", &ws, "--type", "client", "--limit", "1",
            ],
        )
        .await;
    assert_eq!(ids(&one_client), vec![twin.meta.id.clone()]);
    let out = ctx
        .admin(&server, &["token", "list", "--state", "sleeping"])
        .await;
    assert_eq!(out.code, 2, "{out:#?}");

    // The table fits 120 columns: short ids, shortened names, relative times.
    let out = ctx.admin(&server, &["token", "list", "-w", &ws]).await;
    out.ok();
    for line in out.stdout.lines() {
        assert!(
            line.chars().count() <= 120,
            "{} columns: {line}",
            line.chars().count()
        );
    }
    assert!(out.stdout.contains(short) && !out.stdout.contains(&backend.meta.id));
    assert!(out.stdout.contains("nightly-export-") && !out.stdout.contains(&long_name));
    assert!(
        out.stdout.contains("just now") && out.stdout.contains("never"),
        "{}",
        out.stdout
    );
    let wide = ctx
        .admin(&server, &["token", "list", "-w", &ws, "--wide"])
        .await;
    assert!(wide.ok().stdout.contains(&long_name) && wide.stdout.contains(&backend.meta.id));

    // Delete asks on a terminal (a pty made by `script`): "n" keeps it, "y" deletes it.
    if std::path::Path::new("/usr/bin/script").exists() {
        let ask = |answer: &'static str| {
            let command = format!(
                "{} token delete {} --url {} --token {}",
                env!("CARGO_BIN_EXE_latchkey"),
                twin.meta.id,
                server.url,
                server.admin_token.as_deref().unwrap()
            );
            ctx.cmd(&[])
                .program("/usr/bin/script", &["-qec", &command, "/dev/null"])
                .stdin(answer)
        };
        let kept = ask("n\n").out().await;
        assert!(
            kept.stdout.contains("Delete token \"backend-api\""),
            "{kept:#?}"
        );
        assert!(kept.stdout.contains("Not deleted"), "{kept:#?}");
        assert!(admin.tokens().get(&twin.meta.id).await.is_ok());
        let gone = ask("y\n").out().await;
        assert!(gone.stdout.contains("Deleted token"), "{gone:#?}");
        assert!(admin.tokens().get(&twin.meta.id).await.is_err());
    } else {
        assert!(
            std::env::var("LATCHKEY_TEST_REQUIRE_ALL").as_deref() != Ok("1"),
            "SKIP: no /usr/bin/script (util-linux) to give the CLI a terminal"
        );
        eprintln!("SKIP: no /usr/bin/script (util-linux) to give the CLI a terminal");
    }

    // Several saved servers: two profiles, the first the default, --profile picks.
    let other = TestServer::start().await;
    let out = ctx
        .cmd(&["login", "--url", &server.url, "--token", "-"])
        .stdin(server.admin_token.as_deref().unwrap())
        .out()
        .await;
    assert!(out.ok().stdout.contains("profile \"default\""), "{out:#?}");
    ctx.cmd(&[
        "login",
        "--profile",
        "staging",
        "--url",
        &other.url,
        "--token",
        "-",
    ])
    .stdin(other.admin_token.as_deref().unwrap())
    .out()
    .await
    .ok();
    let listed = ctx
        .cmd(&["profile", "list", "-o", "json"])
        .out()
        .await
        .json();
    assert_eq!(listed["default"], "default");
    assert_eq!(listed["items"].as_array().unwrap().len(), 2);
    assert!(
        !listed
            .to_string()
            .contains(other.admin_token.as_deref().unwrap())
    );
    let table = ctx.cmd(&["profile", "list"]).out().await;
    assert!(table.ok().stdout.contains("staging") && table.stdout.contains("lkp_…"));
    let here = ctx
        .cmd(&["token", "get", "laptop", "-o", "json"])
        .out()
        .await
        .json();
    assert_eq!(here["id"], personal.meta.id.as_str());
    let there = ctx
        .cmd(&["token", "get", "laptop", "--profile", "staging"])
        .out()
        .await;
    assert!(there.fails(1).contains("no token named"), "{there:#?}");
    let via_env = ctx
        .cmd(&["whoami", "-o", "json"])
        .env("LATCHKEY_PROFILE", "staging")
        .out()
        .await
        .json();
    assert_eq!(via_env["username"], "admin");
    ctx.cmd(&["profile", "use", "staging"]).out().await.ok();
    let workspaces = ctx
        .cmd(&["workspace", "list", "-o", "json"])
        .out()
        .await
        .json();
    assert_eq!(
        workspaces["items"][0]["id"],
        other.workspace1().await.as_str()
    );
    let out = ctx.cmd(&["whoami", "--profile", "nope"]).out().await;
    assert!(out.fails(2).contains("no saved profile"), "{out:#?}");
    let out = ctx.cmd(&["logout", "--profile", "staging"]).out().await;
    assert!(
        out.ok()
            .stdout
            .contains("default profile is now \"default\""),
        "{out:#?}"
    );
    let back = ctx
        .cmd(&["token", "get", "laptop", "-o", "json"])
        .out()
        .await
        .json();
    assert_eq!(back["id"], personal.meta.id.as_str());
    other.stop().await;
}

#[tokio::test]
async fn cli_errors_exit_1_for_the_api_and_2_for_usage_and_connection() {
    let server = TestServer::start().await;
    let ctx = Ctx::new();

    // Bad flags: clap's usage errors, exit 2.
    for args in [
        vec!["token", "create", "--workspace", "Workspace 1"],
        vec!["token", "list", "--output", "yaml"],
        vec![
            "token",
            "create",
            "-w",
            "Workspace 1",
            "-n",
            "x",
            "--expires-in-days",
            "0",
        ],
        vec!["token", "create", "-w", "W", "-n", "x", "--scope", "nope"],
        vec!["token", "create", "-w", "W", "-n", "x", "--type", "root"],
        vec!["token", "rotate", "id", "--grace-seconds", "-1"],
        vec!["token", "frobnicate"],
        vec!["nonsense"],
    ] {
        let out = ctx.admin(&server, &args).await;
        assert_eq!(out.code, 2, "{args:?}: {out:#?}");
        assert!(out.stdout.is_empty(), "{args:?}: {out:#?}");
    }
    // No URL, no token: usage, exit 2, one line.
    let out = ctx.cmd(&["whoami"]).out().await;
    assert!(out.fails(2).contains("--url"), "{out:#?}");
    let out = ctx.cmd(&["whoami", "--url", &server.url]).out().await;
    assert!(out.fails(2).contains("token"), "{out:#?}");
    let out = ctx.cmd(&["whoami", "--url", "ftp://x"]).out().await;
    out.fails(2);

    // A token the server does not accept: the API's error, exit 1, one line.
    let out = ctx
        .api(&server, UNKNOWN_TOKEN, &["token", "list"])
        .out()
        .await;
    let line = out.fails(1);
    assert!(line.ends_with(", HTTP 401)"), "{line}");
    assert!(!line.contains(UNKNOWN_TOKEN), "{line}");
    assert!(out.stdout.is_empty());
    // The same in JSON mode: errors still go to stderr as one line.
    let out = ctx
        .api(&server, "not-a-token", &["whoami", "--output", "json"])
        .out()
        .await;
    out.fails(1);
    assert!(out.stdout.is_empty());
    // A refused request: more than the policy allows (422), exit 1.
    let out = ctx
        .admin(
            &server,
            &[
                "token",
                "create",
                "-w",
                "Workspace 1",
                "-n",
                "long",
                "--expires-in-days",
                "1000",
            ],
        )
        .await;
    assert!(
        out.fails(1)
            .ends_with("(lifetime_exceeds_policy, HTTP 422)"),
        "{out:#?}"
    );
    // An unknown workspace name: exit 1.
    let out = ctx
        .admin(&server, &["token", "list", "--workspace", "No Such Place"])
        .await;
    assert!(out.fails(1).contains("No Such Place"));

    // Nobody listening: a connection error, exit 2, one line.
    let closed = closed_port_url().await;
    let out = ctx
        .cmd(&["whoami", "--url", &closed, "--token", UNKNOWN_TOKEN])
        .out()
        .await;
    let line = out.fails(2);
    assert!(line.contains("cannot connect"), "{line}");
    assert!(!line.contains(UNKNOWN_TOKEN));
}

#[tokio::test]
async fn cli_verify_exits_0_valid_1_invalid_2_no_answer() {
    let server = TestServer::start().await;
    let ctx = Ctx::new();
    let token = server.admin_token.clone().unwrap();

    // Valid: exit 0, no credentials needed.
    let out = ctx
        .cmd(&["verify", &token, "--url", &server.url])
        .out()
        .await;
    out.ok();
    assert!(out.stdout.starts_with("valid"), "{out:#?}");
    assert!(out.stdout.contains("Workspace 1") && !out.stdout.contains(&token));
    let answer = ctx
        .cmd(&["verify", &token, "--url", &server.url, "-o", "json"])
        .out()
        .await
        .json();
    assert_eq!(answer["valid"], true);
    // Asked without a credential: the answer names no people (issue 21.10).
    assert_eq!(answer["token"]["owner_username"], serde_json::Value::Null);
    assert_eq!(answer["token"]["workspace_name"], "Workspace 1");
    // From stdin.
    let out = ctx
        .cmd(&["verify", "-", "--url", &server.url])
        .stdin(&format!("{token}\n"))
        .out()
        .await;
    out.ok();

    // Invalid: exit 1 with the reason, on stdout (an answer, not an error).
    let out = ctx
        .cmd(&["verify", "lkp_nope", "--url", &server.url])
        .out()
        .await;
    assert_eq!(out.code, 1, "{out:#?}");
    assert_eq!(out.stdout.trim(), "invalid: bad_format");
    let out = ctx
        .cmd(&["verify", "-", "--url", &server.url, "--output", "json"])
        .stdin(UNKNOWN_TOKEN)
        .out()
        .await;
    assert_eq!(out.code, 1, "{out:#?}");
    let answer: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(answer["valid"], false);
    assert_eq!(answer["reason"], "not_found");

    // No answer: exit 2.
    let closed = closed_port_url().await;
    let out = ctx.cmd(&["verify", &token, "--url", &closed]).out().await;
    out.fails(2);
    let out = ctx.cmd(&["verify", &token]).out().await;
    out.fails(2);
    let out = ctx.cmd(&["verify", "--url", &server.url]).out().await;
    assert_eq!(out.code, 2, "missing argument: {out:#?}");
    let out = ctx
        .cmd(&["verify", "-", "--url", &server.url, "--token", "-"])
        .stdin(&token)
        .out()
        .await;
    out.fails(2);
}

#[tokio::test]
async fn cli_login_keeps_url_and_token_in_a_0600_file() {
    let server = TestServer::start().await;
    let ctx = Ctx::new();
    let token = server.admin_token.clone().unwrap();
    let file = ctx.config_dir().join("config.toml");

    // A bad token is refused and nothing is written.
    let out = ctx
        .cmd(&["login", "--url", &server.url, "--token", "-"])
        .stdin(UNKNOWN_TOKEN)
        .out()
        .await;
    assert!(out.fails(1).contains("HTTP 401"));
    assert!(!file.exists());

    // The token from stdin (a pipe, no flag needed).
    let out = ctx
        .cmd(&["login", "--url", &server.url])
        .stdin(&format!("{token}\n"))
        .out()
        .await;
    out.ok();
    assert!(out.stdout.contains("admin"), "{out:#?}");
    assert!(!out.stdout.contains(&token));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "config file mode");
    }
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(
        text.contains(&token) && text.contains(&server.url),
        "{text}"
    );

    // Later commands need neither flag.
    let me = ctx.cmd(&["whoami", "-o", "json"]).out().await.json();
    assert_eq!(me["username"], "admin");
    let out = ctx.cmd(&["token", "list"]).out().await;
    out.ok();
    // The saved token is never sent to another server.
    let other = server.url.replace("127.0.0.1", "localhost");
    let out = ctx.cmd(&["whoami", "--url", &other]).out().await;
    assert!(out.fails(2).contains("no API token"), "{out:#?}");

    // Logging in again (JSON) replaces the file, still 0600; a workspace token works too.
    let client = server
        .token(
            &server.admin(),
            &server.workspace1().await,
            "ci",
            TokenType::Client,
        )
        .await;
    let doc = ctx
        .cmd(&[
            "login",
            "--url",
            &server.url,
            "--token",
            &client.token,
            "--output",
            "json",
        ])
        .out()
        .await
        .json();
    assert_eq!(doc["token"]["type"], "client");
    assert_eq!(doc["config_file"], file.display().to_string());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let projects = ctx.cmd(&["project", "list", "-o", "json"]).out().await;
    projects.json();

    // Logout removes the file; then there is no URL.
    let out = ctx.cmd(&["logout"]).out().await;
    out.ok();
    assert!(!file.exists());
    ctx.cmd(&["whoami"]).out().await.fails(2);
    let again = ctx.cmd(&["logout", "-o", "json"]).out().await.json();
    assert_eq!(again["logged_out"], false);
}

#[tokio::test]
async fn cli_completions_and_help() {
    let ctx = Ctx::new();
    for shell in ["bash", "zsh", "fish"] {
        let out = ctx.cmd(&["completions", shell]).out().await;
        out.ok();
        assert!(out.stdout.len() > 1000, "{shell}: {out:#?}");
        assert!(out.stdout.contains("latchkey"));
        assert!(out.stdout.contains("reset-password"), "{shell}");
    }
    assert_eq!(ctx.cmd(&["completions", "tcsh"]).out().await.code, 2);
    for args in [
        vec!["--help"],
        vec!["token", "create", "--help"],
        vec!["verify", "--help"],
        vec!["admin", "reset-password", "--help"],
        vec!["backup", "--help"],
    ] {
        let out = ctx
            .cmd(&args)
            .env("LATCHKEY_API_KEY", UNKNOWN_TOKEN)
            .out()
            .await;
        out.ok();
        assert!(out.stdout.contains("Example"), "{args:?}");
        assert!(
            !out.stdout.contains(UNKNOWN_TOKEN),
            "help never shows the token from the environment"
        );
    }
}

#[tokio::test]
async fn cli_backup_while_serving_restores_into_a_fresh_server() {
    if sqlite_pass_only("`latchkey backup` copies the SQLite file") {
        return;
    }
    let server = TestServer::start().await;
    let ctx = Ctx::new();
    let ws = server.workspace1().await;
    let before = server
        .token(&server.admin(), &ws, "before", TokenType::Client)
        .await;
    let out_dir = tempfile::tempdir().unwrap();
    let backup = out_dir.path().join("latchkey-backup.db");
    let backup_arg = backup.display().to_string();
    let data_dir = server.dir.display().to_string();

    let out = ctx
        .cmd(&["backup", &backup_arg, "--data-dir", &data_dir])
        .out()
        .await;
    out.ok();
    assert!(out.stdout.contains("Backup written"), "{out:#?}");
    let key_copy = PathBuf::from(format!("{backup_arg}.hash.key"));
    assert_eq!(
        std::fs::read(&key_copy).unwrap(),
        std::fs::read(server.dir.join("hash.key")).unwrap()
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for file in [&backup, &key_copy] {
            let mode = std::fs::metadata(file).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{}", file.display());
        }
    }
    // Never overwrites; JSON mode says where everything went.
    let out = ctx
        .cmd(&["backup", &backup_arg, "--data-dir", &data_dir])
        .out()
        .await;
    assert!(out.fails(1).contains("already exists"));
    let second = out_dir.path().join("second.db").display().to_string();
    let doc = ctx
        .cmd(&["backup", &second, "--data-dir", &data_dir, "-o", "json"])
        .out()
        .await
        .json();
    assert_eq!(doc["backup"], second.as_str());
    assert_eq!(doc["hash_key"], format!("{second}.hash.key"));
    assert!(doc["bytes"].as_u64().unwrap() > 0);
    // No database there: exit 1.
    let empty = tempfile::tempdir().unwrap();
    let out = ctx
        .cmd(&[
            "backup",
            &out_dir.path().join("x.db").display().to_string(),
            "--data-dir",
            &empty.path().display().to_string(),
        ])
        .out()
        .await;
    assert!(out.fails(1).contains("no database"));

    // A token made after the backup is not in it.
    let after = server
        .token(&server.admin(), &ws, "after", TokenType::Client)
        .await;

    // Restore: a fresh data dir with the backup as latchkey.db and the key as hash.key.
    let restored_dir = tempfile::tempdir().unwrap();
    std::fs::copy(&backup, restored_dir.path().join("latchkey.db")).unwrap();
    std::fs::copy(&key_copy, restored_dir.path().join("hash.key")).unwrap();
    let restored = TestServer::start_in(restored_dir.path(), |_| {}, Default::default()).await;
    assert!(
        restored.admin_token.is_none(),
        "a restore is not a first start"
    );
    let api = restored.with_token(&before.token);
    api.list_projects(&ws).await.unwrap();
    let bootstrap = restored.with_token(server.admin_token.as_deref().unwrap());
    assert_eq!(bootstrap.me().await.unwrap().user.username, "admin");
    let err = restored
        .with_token(&after.token)
        .list_projects(&ws)
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(401));
    restored
        .signed_in("admin", ADMIN_PASSWORD)
        .await
        .me()
        .await
        .unwrap();
}

#[tokio::test]
async fn cli_admin_reset_password_running_and_stopped() {
    if sqlite_pass_only("operator commands on the SQLite data dir") {
        return;
    }
    let server = TestServer::start().await;
    let ctx = Ctx::new();
    let (alice_id, session) = server.user("alice", OrgRole::Member).await;
    let old = "password-of-alice";
    let data_dir = server.dir.display().to_string();
    // The server's argon2 settings come from the same config file `serve` would read.
    let config = server.dir.join("cli-test.toml");
    std::fs::write(
        &config,
        "[passwords]\nmemory_kib = 64\niterations = 1\nparallelism = 1\n",
    )
    .unwrap();
    let config = config.display().to_string();
    let reset = |user: &str| {
        ctx.cmd(&[
            "admin",
            "reset-password",
            user,
            "--data-dir",
            &data_dir,
            "--config",
            &config,
        ])
    };

    // From LATCHKEY_NEW_PASSWORD, while the server runs.
    let out = reset("alice")
        .env("LATCHKEY_NEW_PASSWORD", "brand new password 1")
        .out()
        .await;
    out.ok();
    assert!(out.stdout.contains("alice"), "{out:#?}");
    assert!(!out.stdout.contains("brand new password 1"));
    let err = server.anonymous().sign_in("alice", old).await.unwrap_err();
    assert_eq!(err.status(), Some(401));
    server.signed_in("alice", "brand new password 1").await;
    // The session from before has ended.
    eventually("the old session ends", || {
        let session = session.clone();
        async move { session.me().await.is_err_and(|e| e.status() == Some(401)) }
    })
    .await;
    // Hashed with the configured settings; audited as a CLI reset with no actor.
    let user = server.state.store.get_user(&alice_id).await.unwrap();
    let hash = user.password_hash.unwrap();
    assert!(hash.contains("m=64,t=1,p=1"), "{hash}");
    let admin = server.signed_in("admin", ADMIN_PASSWORD).await;
    let events = admin
        .audit_events(&AuditQuery {
            action: Some("user.password_reset".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(events.items.len(), 1);
    assert_eq!(events.items[0].actor_id, None);
    assert_eq!(
        events.items[0].target_id.as_deref(),
        Some(alice_id.as_str())
    );
    assert_eq!(events.items[0].details["via"], "cli");

    // --generate: made and printed once (table: its own line).
    let out = reset("alice").arg("--generate").out().await;
    out.ok();
    let generated = out
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("New password: "))
        .unwrap()
        .to_owned();
    assert_eq!(generated.len(), 24);
    assert!(generated.chars().all(|c| c.is_ascii_alphanumeric()));
    server.signed_in("alice", &generated).await;
    // --generate in JSON; by user id.
    let doc = reset(&alice_id)
        .arg("--generate")
        .arg("--output")
        .arg("json")
        .out()
        .await
        .json();
    assert_eq!(doc["user"]["username"], "alice");
    let from_json = doc["password"].as_str().unwrap().to_owned();
    server.signed_in("alice", &from_json).await;
    assert!(
        server
            .anonymous()
            .sign_in("alice", &generated)
            .await
            .is_err()
    );

    // From stdin when it is not a terminal.
    reset("alice").stdin("piped password 3\n").out().await.ok();
    server.signed_in("alice", "piped password 3").await;

    // Too short: usage error, nothing changes. Unknown user: exit 1.
    let out = reset("alice")
        .env("LATCHKEY_NEW_PASSWORD", "short")
        .out()
        .await;
    assert!(out.fails(2).contains("8"), "{out:#?}");
    server.signed_in("alice", "piped password 3").await;
    let out = reset("nobody")
        .env("LATCHKEY_NEW_PASSWORD", "long enough password")
        .out()
        .await;
    assert!(out.fails(1).contains("nobody"));

    // With the server stopped, then started again on the same data.
    let (dir, keep) = server.stop().await;
    let out = reset("alice")
        .env("LATCHKEY_NEW_PASSWORD", "while stopped 4")
        .out()
        .await;
    out.ok();
    let again = TestServer::start_in(&dir, |_| {}, Default::default()).await;
    again.signed_in("alice", "while stopped 4").await;
    assert!(
        again
            .anonymous()
            .sign_in("alice", "piped password 3")
            .await
            .is_err()
    );
    drop(again.stop().await);
    drop(keep);
}

impl Run {
    fn arg(mut self, arg: &str) -> Self {
        self.args.push(arg.into());
        self
    }
}

#[tokio::test]
async fn cli_webhooks_and_the_expiring_token_warning() {
    let server = crate::webhooks::events_server().await;
    let receiver = crate::webhooks::Receiver::start().await;
    let ctx = Ctx::new();
    let ws = server.workspace1().await;

    let out = ctx
        .admin(
            &server,
            &[
                "webhook",
                "create",
                &receiver.url,
                "--event",
                "token.created",
            ],
        )
        .await;
    out.ok();
    let secret = out
        .stdout
        .lines()
        .find(|l| l.starts_with("whsec_"))
        .unwrap_or_else(|| panic!("no secret line: {out:#?}"))
        .to_owned();
    assert!(latchkey_core::events::parse_secret(&secret).is_ok());
    let list = ctx.admin_json(&server, &["webhook", "list"]).await;
    let id = list["items"][0]["id"].as_str().unwrap().to_owned();
    assert!(!list.to_string().contains("whsec_"), "{list}");
    let out = ctx.admin(&server, &["webhook", "list"]).await;
    assert!(out.ok().stdout.contains(&id), "{out:#?}");

    // Unknown event types are a usage error naming the choices; no endpoint is made.
    let out = ctx
        .admin(
            &server,
            &["webhook", "create", &receiver.url, "--event", "nope"],
        )
        .await;
    assert!(out.fails(2).contains("token.expiring"), "{out:#?}");

    ctx.admin(
        &server,
        &[
            "token",
            "create",
            "--workspace",
            &ws,
            "--name",
            "hooked",
            "--type",
            "client",
        ],
    )
    .await
    .ok();
    let deliveries = || async {
        ctx.admin_json(&server, &["webhook", "deliveries", &id])
            .await
    };
    eventually("the delivery", || async {
        deliveries().await["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["event_type"] == "token.created" && d["state"] == "delivered")
    })
    .await;
    let out = ctx.admin(&server, &["webhook", "deliveries", &id]).await;
    assert!(out.ok().stdout.contains("delivered"), "{out:#?}");
    let delivery = deliveries().await["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let again = ctx
        .admin_json(&server, &["webhook", "redeliver", &id, &delivery])
        .await;
    assert_eq!(again["state"], "pending");
    ctx.admin(&server, &["webhook", "test", &id]).await.ok();
    eventually("redelivery and test message", || async {
        receiver.of_type("token.created").len() == 2 && receiver.of_type("webhook.test").len() == 1
    })
    .await;
    ctx.admin(&server, &["webhook", "update", &id, "--disable"])
        .await
        .ok();
    let got = ctx.admin_json(&server, &["webhook", "get", &id]).await;
    assert_eq!(got["enabled"], false);

    // Members may not manage webhooks: an API error, exit 1.
    let (member_id, member) = server.user("cli-hook-member", OrgRole::Member).await;
    server
        .admin()
        .put_member(
            &ws,
            &member_id,
            latchkey_client::proto::WorkspaceRole::Member,
        )
        .await
        .unwrap();
    let member_token = server
        .token(&member, &ws, "member-pat", TokenType::Personal)
        .await
        .token;
    let out = ctx
        .api(&server, &member_token, &["webhook", "list"])
        .out()
        .await;
    assert!(
        out.fails(1).contains("forbidden") || out.stderr.contains("403"),
        "{out:#?}"
    );
    ctx.admin(&server, &["webhook", "delete", &id]).await.ok();

    // A token expiring within 7 days is warned about on stderr; the command still works.
    let soon = ctx
        .admin_json(
            &server,
            &[
                "token",
                "create",
                "--workspace",
                &ws,
                "--name",
                "soon",
                "--type",
                "client",
                "--expires-in-days",
                "3",
            ],
        )
        .await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let out = ctx
        .api(&server, &soon, &["project", "list", "--workspace", &ws])
        .out()
        .await;
    out.ok();
    assert!(
        out.stderr.contains("warning: the API token in use expires"),
        "{out:#?}"
    );
    assert_eq!(out.stderr.matches("warning:").count(), 1, "{out:#?}");
    let later = ctx
        .admin_json(
            &server,
            &[
                "token",
                "create",
                "--workspace",
                &ws,
                "--name",
                "later",
                "--type",
                "client",
                "--expires-in-days",
                "30",
            ],
        )
        .await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let out = ctx
        .api(&server, &later, &["project", "list", "--workspace", &ws])
        .out()
        .await;
    out.ok();
    assert!(out.stderr.is_empty(), "{out:#?}");
}

#[tokio::test]
async fn user_create_service_and_token_create_for_its_owner() {
    let server = TestServer::start().await;
    let ctx = Ctx::new();
    let ws = server.workspace1().await;
    let made = ctx
        .admin(
            &server,
            &[
                "user",
                "create",
                "ci-bot",
                "--service",
                "--display-name",
                "CI",
                "--output",
                "json",
            ],
        )
        .await
        .json();
    assert_eq!(made["kind"], "service");
    assert_eq!(made["display_name"], "CI");
    let id = made["id"].as_str().unwrap().to_owned();
    // A person needs a password (a usage error, nothing sent).
    ctx.admin(&server, &["user", "create", "pat"])
        .await
        .fails(2);
    let listed = ctx
        .admin(
            &server,
            &["user", "list", "--kind", "service", "--output", "json"],
        )
        .await
        .json();
    assert_eq!(listed["items"].as_array().unwrap().len(), 1);
    let table = ctx.admin(&server, &["user", "list"]).await;
    assert!(table.ok().stdout.contains("service"), "{table:?}");
    server
        .admin()
        .put_member(&ws, &id, latchkey_client::proto::WorkspaceRole::Member)
        .await
        .unwrap();
    let created = ctx
        .admin(
            &server,
            &[
                "token",
                "create",
                "--workspace",
                "Workspace 1",
                "--name",
                "deploy",
                "--owner",
                "CI-BOT",
                "--output",
                "json",
            ],
        )
        .await
        .json();
    assert_eq!(created["owner_username"], "ci-bot");
    let secret = created["token"].as_str().unwrap().to_owned();
    assert!(server.with_token(&secret).me().await.is_ok());
    let unknown = ctx
        .admin(
            &server,
            &[
                "token",
                "create",
                "-w",
                "Workspace 1",
                "-n",
                "x",
                "--owner",
                "nobody",
            ],
        )
        .await;
    assert!(unknown.fails(1).contains("nobody"));
    let off = ctx.admin(&server, &["user", "deactivate", "ci-bot"]).await;
    assert!(off.ok().stdout.contains("deactivated"), "{off:?}");
    assert_eq!(
        server.with_token(&secret).me().await.unwrap_err().status(),
        Some(401)
    );
    ctx.admin(&server, &["user", "reactivate", &id]).await.ok();
    assert!(server.with_token(&secret).me().await.is_ok());
}

/// `token create` with the verify-time policy flags, `token show` with the policy lines,
/// `token update` (set, `--clear`), and the usage errors for flags that cannot be read
/// (exit 2) or values the server refuses (exit 1, naming the field).
#[tokio::test]
async fn cli_token_policy_flags_update_and_show() {
    let server = TestServer::start().await;
    let ctx = Ctx::new();

    let created = ctx
        .admin_json(
            &server,
            &[
                "token",
                "create",
                "-w",
                "Workspace 1",
                "-n",
                "cli-partner",
                "--type",
                "client",
                "--metadata",
                r#"{"plan":"pro"}"#,
                "--allowed-ip",
                "203.0.113.0/24",
                "--allowed-ip",
                "2001:db8::/32",
                "--rate-limit",
                "100/1m",
                "--remaining-uses",
                "50",
                "--refill",
                "50/monthly",
            ],
        )
        .await;
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created["metadata"], serde_json::json!({"plan": "pro"}));
    assert_eq!(
        created["allowed_ips"],
        serde_json::json!(["203.0.113.0/24", "2001:db8::/32"])
    );
    assert_eq!(
        created["rate_limit"],
        serde_json::json!({"limit": 100, "window_secs": 60})
    );
    assert_eq!(created["remaining_uses"], 50);
    assert_eq!(
        created["refill"],
        serde_json::json!({"amount": 50, "interval": "monthly"})
    );

    // `token show` (an alias of `get`) prints the policy.
    let shown = ctx.admin(&server, &["token", "show", &id]).await;
    shown.ok();
    for line in [
        r#"{"plan":"pro"}"#,
        "203.0.113.0/24 2001:db8::/32",
        "100 per 60 s",
        "to 50 monthly",
    ] {
        assert!(shown.stdout.contains(line), "{line:?} missing: {shown:#?}");
    }

    // Update: a new rate limit, the allowed IPs and the refill cleared.
    let updated = ctx
        .admin_json(
            &server,
            &[
                "token",
                "update",
                &id,
                "--rate-limit",
                "1/d",
                "--clear",
                "allowed_ips",
                "--clear",
                "refill",
            ],
        )
        .await;
    assert_eq!(updated["allowed_ips"], Value::Null);
    assert_eq!(updated["refill"], Value::Null);
    assert_eq!(
        updated["rate_limit"],
        serde_json::json!({"limit": 1, "window_secs": 86_400})
    );
    assert_eq!(updated["metadata"], serde_json::json!({"plan": "pro"}));
    // By name in a workspace, table output.
    let out = ctx
        .admin(
            &server,
            &[
                "token",
                "update",
                "cli-partner",
                "-w",
                "Workspace 1",
                "--metadata",
                r#"{"plan":"enterprise"}"#,
            ],
        )
        .await;
    out.ok();
    assert!(out.stdout.contains(r#"{"plan":"enterprise"}"#), "{out:#?}");

    // Flags the CLI cannot read: usage errors (exit 2), nothing sent.
    for bad in [
        &["--rate-limit", "100"][..],
        &["--rate-limit", "100/60x"],
        &["--refill", "5/weekly"],
        &["--metadata", "{plan}"],
    ] {
        let mut args = vec!["token", "update", id.as_str()];
        args.extend_from_slice(bad);
        let out = ctx.admin(&server, &args).await;
        assert_eq!(out.code, 2, "{bad:?}: {out:#?}");
    }
    let out = ctx.admin(&server, &["token", "update", &id]).await;
    assert!(out.fails(2).contains("nothing to change"), "{out:#?}");
    let out = ctx
        .admin(
            &server,
            &[
                "token",
                "update",
                &id,
                "--rate-limit",
                "5/s",
                "--clear",
                "rate_limit",
            ],
        )
        .await;
    assert!(out.fails(2).contains("contradict"), "{out:#?}");

    // Values the server refuses: exit 1 with the field named, nothing changed.
    for (flags, field) in [
        (&["--allowed-ip", "10.0.0.0/33"][..], "allowed_ips"),
        (&["--rate-limit", "0/60s"], "rate_limit.limit"),
        (&["--rate-limit", "5/2d"], "rate_limit.window_secs"),
        (&["--remaining-uses=-1"], "remaining_uses"),
        (&["--metadata", "[1]"], "metadata"),
    ] {
        let mut args = vec!["token", "update", id.as_str()];
        args.extend_from_slice(flags);
        let out = ctx.admin(&server, &args).await;
        let line = out.fails(1);
        assert!(line.contains(field), "{flags:?}: {line}");
    }
    let now = ctx.admin_json(&server, &["token", "get", &id]).await;
    assert_eq!(now["metadata"], serde_json::json!({"plan": "enterprise"}));
    server.stop().await;
}

/// `verify --ip` against a token's allowed IPs, and a rate-limited token's answer saying
/// when to retry (exit 1 both).
#[tokio::test]
async fn cli_verify_with_ip_and_over_the_rate_limit() {
    let server = TestServer::start().await;
    let ctx = Ctx::new();
    let created = ctx
        .admin_json(
            &server,
            &[
                "token",
                "create",
                "-w",
                "Workspace 1",
                "-n",
                "cli-addressed",
                "--type",
                "client",
                "--metadata",
                r#"{"plan":"pro"}"#,
                "--allowed-ip",
                "203.0.113.0/24",
                "--rate-limit",
                "2/1d",
            ],
        )
        .await;
    let secret = created["token"].as_str().unwrap().to_owned();

    // From an allowed address valid (with the metadata), from another the reason.
    let out = ctx
        .cmd(&[
            "verify",
            &secret,
            "--ip",
            "203.0.113.5",
            "--url",
            &server.url,
        ])
        .out()
        .await;
    out.ok();
    assert!(out.stdout.contains(r#"{"plan":"pro"}"#), "{out:#?}");
    let out = ctx
        .cmd(&[
            "verify",
            &secret,
            "--ip",
            "198.51.100.5",
            "--url",
            &server.url,
        ])
        .out()
        .await;
    assert_eq!(out.code, 1, "{out:#?}");
    assert_eq!(out.stdout.trim(), "invalid: ip_not_allowed");

    // Over the rate limit (2 a day, one spent above): verify says so, with when to retry.
    let mut last = None;
    for _ in 0..3 {
        let out = ctx
            .cmd(&[
                "verify",
                &secret,
                "--ip",
                "203.0.113.5",
                "--url",
                &server.url,
            ])
            .out()
            .await;
        let done = out.code == 1;
        last = Some(out);
        if done {
            break;
        }
    }
    let last = last.unwrap();
    assert_eq!(last.code, 1, "{last:#?}");
    assert!(
        last.stdout.starts_with("invalid: rate_limited (retry in "),
        "{last:#?}"
    );
    server.stop().await;
}

/// `token usage`: the last use, the recent addresses and the days with uses as tables;
/// the whole answer (90 days) as JSON; a token you may not see is an API error (exit 1).
#[tokio::test]
async fn cli_token_usage_in_both_output_modes() {
    let server = TestServer::start().await;
    let ctx = Ctx::new();
    let ws = server.workspace1().await;
    let admin = server.admin();
    let used = server.token(&admin, &ws, "used", TokenType::Personal).await;
    let idle = server.token(&admin, &ws, "idle", TokenType::Client).await;
    for _ in 0..3 {
        server.with_token(&used.token).me().await.unwrap();
    }
    let out = ctx.admin(&server, &["token", "usage", &used.meta.id]).await;
    out.ok();
    assert!(out.stdout.contains("Uses (90 days)  3"), "{out:#?}");
    assert!(out.stdout.contains("ADDRESS"), "{out:#?}");
    assert!(out.stdout.contains("127.0.0.1"), "{out:#?}");
    let today = server.state.clock.now().date().to_string();
    assert!(
        out.stdout
            .lines()
            .any(|l| l.starts_with(&today) && l.ends_with(" 3")),
        "{out:#?}"
    );
    let json = ctx
        .admin_json(&server, &["token", "usage", "used", "-w", "Workspace 1"])
        .await;
    let daily = json["daily"].as_array().unwrap();
    assert_eq!(daily.len(), 90);
    assert_eq!(
        daily
            .iter()
            .map(|d| d["count"].as_u64().unwrap())
            .sum::<u64>(),
        3
    );
    assert_eq!(json["last_ips"][0]["ip"], "127.0.0.1");

    let out = ctx.admin(&server, &["token", "usage", &idle.meta.id]).await;
    out.ok();
    assert!(out.stdout.contains("Last used       never"), "{out:#?}");
    assert!(
        out.stdout.contains("No client addresses recorded."),
        "{out:#?}"
    );
    assert!(
        out.stdout.contains("No uses in the last 90 days."),
        "{out:#?}"
    );

    let line = ctx
        .api(
            &server,
            &used.token,
            &["token", "usage", "00000000-0000-7000-8000-000000000000"],
        )
        .out()
        .await
        .fails(1)
        .to_owned();
    assert!(
        line.contains("not found") || line.contains("not_found"),
        "{line}"
    );
}

/// `token approve` / `token deny` (DESIGN.md §8 Approval): an org admin's pending admin
/// token approved by the owner (JSON), another denied (table), and a denied one cannot be
/// approved (exit 1, the server's conflict on stderr).
#[tokio::test]
async fn cli_token_approve_and_deny() {
    use latchkey_client::proto::CreateTokenRequest;
    let server = TestServer::start().await;
    let ctx = Ctx::new();
    let ws = server.workspace1().await;
    let owner = server.admin();
    let org = owner.me().await.unwrap().org.id;
    owner
        .update_token_settings(
            &org,
            &UpdateTokenSettingsRequest {
                approval_required_types: Some(vec![TokenType::Admin]),
                ..UpdateTokenSettingsRequest::default()
            },
        )
        .await
        .unwrap();
    let (_, ops) = server.user("ops", OrgRole::Admin).await;
    let mut ids = Vec::new();
    for name in ["deploy", "other"] {
        let made = ops
            .tokens()
            .create(&ws, &CreateTokenRequest::new(name, TokenType::Admin))
            .await
            .unwrap();
        assert_eq!(made.meta.state.as_str(), "pending");
        ids.push(made.meta.id);
    }
    let approved = ctx
        .admin_json(&server, &["token", "approve", &ids[0]])
        .await;
    assert_eq!(approved["state"], "active");
    let out = ctx.admin(&server, &["token", "deny", &ids[1]]).await;
    out.ok();
    assert!(out.stdout.contains("denied"), "{out:#?}");
    let out = ctx.admin(&server, &["token", "approve", &ids[1]]).await;
    assert_eq!(out.code, 1, "{out:#?}");
    assert!(out.stderr.contains("denied"), "{out:#?}");
    assert_eq!(
        owner.tokens().get(&ids[1]).await.unwrap().state.as_str(),
        "denied"
    );
}
