//! Test helpers (feature `testing`): which PostgreSQL server the tests use, scratch
//! databases that are dropped after each test, and throwaway clusters started with the
//! system's `initdb`/`pg_ctl` (for tests that stop and start the server).
//!
//! The server, in order: `LATCHKEY_TEST_POSTGRES_URL` when set; else
//! `postgres://postgres@127.0.0.1:5432/postgres` when something listens there and lets
//! `postgres` in without a password; else a
//! throwaway cluster shared by the test process, when `initdb` and `pg_ctl` are installed
//! (on `PATH` or in Debian's `/usr/lib/postgresql/*/bin`). Otherwise tests skip with a
//! printed reason — a failure instead under `LATCHKEY_TEST_REQUIRE_ALL=1`.
//!
//! Clusters are never the machine's own service: they live in a temporary directory, on a
//! free port of 127.0.0.1, run as `postgres` when the tests run as root (`initdb` refuses
//! root), and are stopped when dropped or, failing that, by a watchdog once the test
//! process is gone.

// Test support: a broken test environment is reported by panicking, like any test failure.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use sqlx::Connection as _;
use sqlx::postgres::PgConnection;

/// The variable naming the server tests use (an admin URL: it must allow `CREATE DATABASE`).
pub const URL_ENV: &str = "LATCHKEY_TEST_POSTGRES_URL";
/// When `1`, tests that cannot find what they need fail instead of skipping.
pub const REQUIRE_ALL_ENV: &str = "LATCHKEY_TEST_REQUIRE_ALL";
/// The machine's server, tried when `LATCHKEY_TEST_POSTGRES_URL` is not set.
pub const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// Whether skipping is forbidden (`LATCHKEY_TEST_REQUIRE_ALL=1`).
pub fn require_all() -> bool {
    std::env::var(REQUIRE_ALL_ENV).is_ok_and(|v| v == "1")
}

/// Skips a test with a printed reason (returns `None`), or fails it under
/// `LATCHKEY_TEST_REQUIRE_ALL=1`.
pub fn skip<T>(reason: &str) -> Option<T> {
    assert!(
        !require_all(),
        "{reason} (and {REQUIRE_ALL_ENV}=1 forbids skipping)"
    );
    eprintln!("skipping: {reason}");
    None
}

/// The admin URL of the server tests use, found once per process; `Err` says why there is
/// none.
pub fn server_url() -> Result<String, String> {
    static SERVER: OnceLock<Result<String, String>> = OnceLock::new();
    SERVER.get_or_init(find_server).clone()
}

fn find_server() -> Result<String, String> {
    if let Ok(url) = std::env::var(URL_ENV)
        && !url.is_empty()
    {
        return Ok(url);
    }
    let listening = std::net::TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], 5432)),
        Duration::from_secs(1),
    )
    .is_ok();
    if listening && answers(DEFAULT_URL) {
        return Ok(DEFAULT_URL.to_owned());
    }
    // Kept for the whole process: statics are never dropped, so the watchdog stops it.
    static SHARED: OnceLock<Cluster> = OnceLock::new();
    match Cluster::start() {
        Ok(cluster) => Ok(SHARED.get_or_init(|| cluster).admin_url()),
        Err(why) => Err(format!(
            "no PostgreSQL for tests: {URL_ENV} is not set, nothing answers at \
             {DEFAULT_URL}, and no throwaway cluster could be started ({why})"
        )),
    }
}

/// Whether a server at `url` lets us in (it may listen and still want a password).
fn answers(url: &str) -> bool {
    let url = url.to_owned();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async {
            let connect = PgConnection::connect(&url);
            match tokio::time::timeout(Duration::from_secs(5), connect).await {
                Ok(Ok(conn)) => {
                    let _ = conn.close().await;
                    true
                }
                _ => false,
            }
        })
    })
    .join()
    .unwrap_or(false)
}

/// `url` with its database name replaced by `name` (query parameters kept).
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let base = match base[authority_start..].find('/') {
        Some(slash) => &base[..authority_start + slash],
        None => base,
    };
    match query {
        Some(query) => format!("{base}/{name}?{query}"),
        None => format!("{base}/{name}"),
    }
}

/// A scratch database with a unique name, dropped (with `FORCE`, so open connections do
/// not keep it) when this is dropped.
#[derive(Debug)]
pub struct TestDatabase {
    /// Its URL.
    pub url: String,
    name: String,
    admin_url: String,
    dropped: bool,
}

impl TestDatabase {
    /// A fresh database on the tests' server, or `None` (printed) when there is no server
    /// and skipping is allowed.
    pub async fn create() -> Option<TestDatabase> {
        let admin_url = match server_url() {
            Ok(url) => url,
            Err(why) => return skip(&why),
        };
        match TestDatabase::create_on(&admin_url).await {
            Ok(db) => Some(db),
            Err(why) => skip(&format!("cannot create a test database: {why}")),
        }
    }

    /// A fresh database on the server at `admin_url`.
    pub async fn create_on(admin_url: &str) -> Result<TestDatabase, String> {
        let name = format!("latchkey_test_{}", uuid::Uuid::now_v7().simple());
        let mut conn = PgConnection::connect(admin_url)
            .await
            .map_err(|e| format!("connecting to {admin_url}: {e}"))?;
        sqlx::query(&format!("CREATE DATABASE \"{name}\""))
            .execute(&mut conn)
            .await
            .map_err(|e| format!("CREATE DATABASE: {e}"))?;
        let _ = conn.close().await;
        Ok(TestDatabase {
            url: with_database(admin_url, &name),
            name,
            admin_url: admin_url.to_owned(),
            dropped: false,
        })
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Drops the database now.
    pub async fn drop_now(mut self) {
        self.dropped = true;
        drop_database(&self.admin_url, &self.name).await;
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if self.dropped {
            return;
        }
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        // `Drop` cannot await: drop it from a runtime of its own, on a thread of its own
        // (this one may be a runtime's worker).
        let done = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(drop_database(&admin_url, &name));
        })
        .join();
        if done.is_err() {
            eprintln!("could not drop test database {}", self.name);
        }
    }
}

async fn drop_database(admin_url: &str, name: &str) {
    let result = async {
        let mut conn = PgConnection::connect(admin_url).await?;
        sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
            .execute(&mut conn)
            .await?;
        conn.close().await
    };
    if let Err(e) = result.await {
        eprintln!("could not drop test database {name}: {e}");
    }
}

/// A throwaway PostgreSQL cluster in a temporary directory, on a free port of 127.0.0.1,
/// with trust authentication for `postgres`. Stopped and deleted when dropped.
#[derive(Debug)]
pub struct Cluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    run_as_postgres: bool,
}

impl Cluster {
    /// `initdb` + `pg_ctl start`; `Err` says why not (no binaries, no `postgres` user to run
    /// them as root, a failure).
    pub fn start() -> Result<Cluster, String> {
        let bin = find_bin_dir().ok_or("initdb and pg_ctl are not installed")?;
        let run_as_postgres = is_root();
        let dir = tempfile::Builder::new()
            .prefix("latchkey-pg-")
            .tempdir()
            .map_err(|e| format!("temp dir: {e}"))?;
        if run_as_postgres {
            let uid =
                id_of(&["-u", "postgres"]).ok_or("running as root without a postgres user")?;
            let gid = id_of(&["-g", "postgres"]).ok_or("no postgres group")?;
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid))
                .map_err(|e| format!("chown: {e}"))?;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("free port: {e}"))?
            .port();
        let cluster = Cluster {
            dir,
            bin,
            port,
            run_as_postgres,
        };
        let data = cluster.data_dir();
        cluster.run(
            "initdb",
            &[
                "-D",
                path_str(&data)?,
                "-U",
                "postgres",
                "--auth=trust",
                "-N",
                "-E",
                "UTF8",
                "--locale=C",
            ],
        )?;
        cluster.watchdog();
        cluster.start_server()?;
        Ok(cluster)
    }

    /// `postgres://postgres@127.0.0.1:PORT/postgres`.
    pub fn admin_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops the server (fast shutdown: sessions are ended, like a service restart).
    pub fn stop(&self) -> Result<(), String> {
        let data = self.data_dir();
        self.run(
            "pg_ctl",
            &["-D", path_str(&data)?, "-m", "fast", "-w", "stop"],
        )
    }

    /// Starts the server again after [`Cluster::stop`], on the same port.
    pub fn start_server(&self) -> Result<(), String> {
        let data = self.data_dir();
        let log = self.dir.path().join("server.log");
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {} -k {} -c fsync=off -c max_connections=200",
            self.port,
            self.dir.path().display()
        );
        self.run(
            "pg_ctl",
            &[
                "-D",
                path_str(&data)?,
                "-l",
                path_str(&log)?,
                "-o",
                &options,
                "-w",
                "-t",
                "60",
                "start",
            ],
        )
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn command(&self, program: &str) -> Command {
        let exe = self.bin.join(program);
        if self.run_as_postgres {
            let mut cmd = Command::new("runuser");
            cmd.args(["-u", "postgres", "--"]).arg(exe);
            cmd
        } else {
            Command::new(exe)
        }
    }

    fn run(&self, program: &str, args: &[&str]) -> Result<(), String> {
        let output = self
            .command(program)
            .args(args)
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("{program}: {e}"))?;
        if output.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{program} {args:?} failed: {}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ))
        }
    }

    /// A shell that stops the server once this test process is gone (even on `kill -9`).
    fn watchdog(&self) {
        let pg_ctl = self.bin.join("pg_ctl");
        let prefix = if self.run_as_postgres {
            "runuser -u postgres -- "
        } else {
            ""
        };
        let script = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 1; done; \
             {prefix}'{pg_ctl}' -D '{data}' -m immediate stop >/dev/null 2>&1; \
             rm -rf '{dir}'",
            pid = std::process::id(),
            pg_ctl = pg_ctl.display(),
            data = self.data_dir().display(),
            dir = self.dir.path().display(),
        );
        let _ = Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Ok(data) = path_str(&self.data_dir()) {
            let _ = self
                .command("pg_ctl")
                .args(["-D", data, "-m", "immediate", "-w", "stop"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

fn path_str(path: &Path) -> Result<&str, String> {
    path.to_str()
        .ok_or_else(|| format!("{} is not UTF-8", path.display()))
}

/// A directory holding both `initdb` and `pg_ctl`: on `PATH`, else the newest of Debian's
/// `/usr/lib/postgresql/<version>/bin`.
pub fn find_bin_dir() -> Option<PathBuf> {
    let has_both = |dir: &Path| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file();
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            if has_both(&dir) {
                return Some(dir);
            }
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            Some((version, entry.path().join("bin")))
        })
        .filter(|(_, dir)| has_both(dir))
        .collect();
    versions.sort();
    versions.pop().map(|(_, dir)| dir)
}

fn is_root() -> bool {
    id_of(&["-u"]) == Some(0)
}

fn id_of(args: &[&str]) -> Option<u32> {
    let output = Command::new("id").args(args).output().ok()?;
    if !output.status.success() {
        return None;
    }
    String::from_utf8_lossy(&output.stdout).trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_names_are_replaced_in_urls() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/postgres", "x"),
            "postgres://postgres@127.0.0.1:5432/x"
        );
        assert_eq!(
            with_database("postgres://u:p@db/postgres?sslmode=disable", "x"),
            "postgres://u:p@db/x?sslmode=disable"
        );
        assert_eq!(
            with_database("postgresql://db:5433", "x"),
            "postgresql://db:5433/x"
        );
    }
}
