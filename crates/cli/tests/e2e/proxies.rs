//! The forward-auth recipes of docs/integrations.md, copied from the page by the test and
//! run as written: on a real nginx and a real Caddy, and for Traefik and Envoy (which cannot
//! be installed here) through an emulation of what their documentation says they send.
//! Every recipe faces the same attacks: a client-sent value for every `X-Latchkey-*` header,
//! a client-sent original URI, and the path tricks of issue 21.6.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use latchkey_client::proto::{CreateTokenRequest, RateLimit, TokenType};
use latchkey_server::forward_auth::ProxyKind;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::harness::{TestServer, eventually};

/// Every identity header a proxy could pass on, with the value a client forges for it.
const SPOOFED: [(&str, &str); 10] = [
    ("x-latchkey-user", "spoofed-admin"),
    ("x-latchkey-user-id", "spoofed-user-id"),
    ("x-latchkey-workspace", "spoofed-workspace"),
    ("x-latchkey-token-id", "spoofed-token-id"),
    ("x-latchkey-token-type", "admin"),
    ("x-latchkey-scopes", "admin tokens:write"),
    ("x-latchkey-environment", "production"),
    ("x-latchkey-projects", "every-project"),
    ("x-latchkey-metadata", "eyJyb2xlIjoiYWRtaW4ifQ"),
    ("x-latchkey-reason", "spoofed"),
];

// ---------------------------------------------------------------------------------------
// The page and its code blocks.

fn integrations_page() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/integrations.md");
    std::fs::read_to_string(path).expect("docs/integrations.md")
}

/// The first ```lang block after the heading that starts with `heading`.
fn code_block(heading: &str, lang: &str) -> String {
    let page = integrations_page();
    let start = page
        .lines()
        .position(|l| l.starts_with('#') && l.trim_start_matches('#').trim().starts_with(heading))
        .unwrap_or_else(|| panic!("no heading {heading:?} in docs/integrations.md"));
    let mut lines = page.lines().skip(start + 1);
    let fence = format!("```{lang}");
    lines
        .by_ref()
        .find(|l| l.trim() == fence)
        .unwrap_or_else(|| panic!("no ```{lang} block under {heading:?}"));
    let block: Vec<&str> = lines.take_while(|l| l.trim() != "```").collect();
    block.join("\n") + "\n"
}

/// Replaces a placeholder of a recipe, which must be there.
fn fill(recipe: &str, placeholder: &str, value: &str) -> String {
    assert!(
        recipe.contains(placeholder),
        "the recipe no longer contains {placeholder:?}:\n{recipe}"
    );
    recipe.replace(placeholder, value)
}

/// The `[forward_auth]` section and route policies of the page, for `kind`.
fn documented_policies(kind: ProxyKind) -> impl FnOnce(&mut latchkey_server::Config) {
    let documented: latchkey_server::Config =
        toml::from_str(&code_block("Route policies", "toml")).expect("the page's TOML parses");
    move |c| {
        c.trusted_proxies = documented.trusted_proxies;
        c.forward_auth = documented.forward_auth;
        c.forward_auth.proxy = kind;
    }
}

// ---------------------------------------------------------------------------------------
// Raw HTTP/1.1, so that odd request targets reach the proxy exactly as written.

struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn dechunk(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = body;
    while let Some(i) = rest.windows(2).position(|w| w == b"\r\n") {
        let size = std::str::from_utf8(&rest[..i])
            .ok()
            .and_then(|s| usize::from_str_radix(s.split(';').next().unwrap_or("").trim(), 16).ok())
            .unwrap_or(0);
        rest = &rest[i + 2..];
        if size == 0 || rest.len() < size {
            break;
        }
        out.extend_from_slice(&rest[..size]);
        rest = rest.get(size + 2..).unwrap_or_default();
    }
    out
}

async fn raw(addr: SocketAddr, method: &str, target: &str, headers: &[(String, String)]) -> Answer {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let mut request =
        format!("{method} {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    if method != "GET" && method != "HEAD" {
        request.push_str("Content-Length: 0\r\n");
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut bytes = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut bytes))
        .await
        .expect("answer within 30 s")
        .expect("read");
    let split = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(bytes.len());
    let head = String::from_utf8_lossy(&bytes[..split]).into_owned();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let body = bytes.get(split + 4..).unwrap_or_default();
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.contains("chunked"));
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_vec()
    };
    Answer {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

fn addr_of(url: &str) -> SocketAddr {
    url.trim_start_matches("http://")
        .parse()
        .expect("host:port")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

// ---------------------------------------------------------------------------------------
// The upstream: echoes the X-Latchkey-* headers it received, so the test sees what an
// application behind the proxy would believe.

/// What the upstream saw, when the request reached it.
type Seen = BTreeMap<String, Vec<String>>;

async fn echo_upstream() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().fallback(|headers: axum::http::HeaderMap| async move {
        let mut seen = Seen::new();
        for (name, value) in &headers {
            if name.as_str().starts_with("x-latchkey-") {
                seen.entry(name.as_str().to_owned())
                    .or_default()
                    .push(String::from_utf8_lossy(value.as_bytes()).into_owned());
            }
        }
        axum::Json(serde_json::json!({"echo": "upstream", "seen": seen}))
    });
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

/// The headers the upstream saw, or `None` when the request never reached it.
fn upstream_saw(answer: &Answer) -> Option<Seen> {
    let doc: serde_json::Value = serde_json::from_str(&answer.body).ok()?;
    (doc["echo"] == "upstream").then(|| serde_json::from_value(doc["seen"].clone()).ok())?
}

// ---------------------------------------------------------------------------------------
// The proxies.

/// A proxy process, stopped (with its workers) when dropped.
struct ProxyProcess {
    child: Child,
    name: &'static str,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

/// The processes of process group `pgid` (a proxy started as its group's leader: the
/// master and every worker it ever forked, also once the master is gone).
fn group_members(pgid: u32) -> Vec<u32> {
    let Ok(out) = Command::new("pgrep")
        .args(["-g", &pgid.to_string()])
        .output()
    else {
        return Vec::new();
    };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// Polls `done` every 20 ms until it holds or `within` has passed; whether it held.
fn poll_until(within: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + within;
    loop {
        if done() {
            return true;
        }
        if std::time::Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl ProxyProcess {
    /// SIGTERM to the master (nginx's then stops its workers), waits, and checks that no
    /// process of its group outlived it; what did is killed and returned.
    ///
    /// The proxy runs as the leader of its own process group, so a worker is found even
    /// when it was forked after any list of children could have been taken (the leak of
    /// issue 20: a master killed while starting left a worker running, master gone).
    fn stop(&mut self) -> Vec<u32> {
        let pgid = self.child.id();
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = Command::new("kill")
                .args(["-TERM", &pgid.to_string()])
                .status();
            let exited = poll_until(Duration::from_secs(20), || {
                !matches!(self.child.try_wait(), Ok(None))
            });
            if !exited {
                let _ = self.child.kill();
            }
            let _ = self.child.wait();
        }
        poll_until(Duration::from_secs(20), || group_members(pgid).is_empty());
        let left = group_members(pgid);
        if !left.is_empty() {
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{pgid}")])
                .status();
        }
        left
    }
}

impl Drop for ProxyProcess {
    fn drop(&mut self) {
        let left = self.stop();
        if !left.is_empty() && !std::thread::panicking() {
            panic!("{} left processes behind: {left:?}", self.name);
        }
    }
}

fn find_binary(names: &[&str]) -> Option<PathBuf> {
    names.iter().map(PathBuf::from).find(|p| p.exists())
}

/// Skips (or, under `LATCHKEY_TEST_REQUIRE_ALL=1`, fails) when a proxy is not installed.
fn require(binary: Option<PathBuf>, what: &str) -> Option<PathBuf> {
    if binary.is_none() {
        let why =
            format!("SKIP: {what} is not installed (apt-get install {what}; .ci/run does it)");
        assert!(
            std::env::var("LATCHKEY_TEST_REQUIRE_ALL").as_deref() != Ok("1"),
            "{why}"
        );
        eprintln!("{why}");
    }
    binary
}

async fn wait_listening(process: &mut ProxyProcess, addr: SocketAddr) {
    for _ in 0..800 {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return;
        }
        if let Ok(Some(status)) = process.child.try_wait() {
            panic!(
                "{} exited ({status}): {}",
                process.name,
                std::fs::read_to_string(&process.log).unwrap_or_default()
            );
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!(
        "{} did not listen on {addr}: {}",
        process.name,
        std::fs::read_to_string(&process.log).unwrap_or_default()
    );
}

async fn start_nginx(
    binary: &Path,
    latchkey: SocketAddr,
    upstream: SocketAddr,
) -> (ProxyProcess, SocketAddr) {
    let recipe = code_block("nginx", "nginx");
    let recipe = fill(&recipe, "latchkey:8080", &latchkey.to_string());
    let recipe = fill(&recipe, "http://upstream;", &format!("http://{upstream};"));
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let d = dir.path().display();
    let conf = format!(
        "worker_processes 1;\ndaemon off;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
         events {{ worker_connections 64; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {d}/body; proxy_temp_path {d}/proxy;\n  \
         fastcgi_temp_path {d}/fcgi; uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;\n  \
         server {{\n    listen 127.0.0.1:{port};\n{recipe}\n  }}\n}}\n"
    );
    let conf_path = dir.path().join("nginx.conf");
    std::fs::write(&conf_path, conf).unwrap();
    let child = Command::new(binary)
        .arg("-c")
        .arg(&conf_path)
        .arg("-p")
        .arg(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .expect("start nginx");
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut process = ProxyProcess {
        child,
        name: "nginx",
        log: dir.path().join("error.log"),
        _dir: dir,
    };
    wait_listening(&mut process, addr).await;
    // nginx binds its port before it handles signals and forks its worker: a SIGTERM in
    // between is lost (the master then waits forever). Up means the worker runs.
    let master = process.child.id();
    eventually("nginx's worker runs", || async {
        group_members(master).len() > 1
    })
    .await;
    (process, addr)
}

async fn start_caddy(
    binary: &Path,
    latchkey: SocketAddr,
    upstream: SocketAddr,
) -> (ProxyProcess, SocketAddr) {
    let port = free_port();
    let recipe = code_block("Caddy", "caddyfile");
    let recipe = fill(
        &recipe,
        "app.example.com",
        &format!("http://127.0.0.1:{port}"),
    );
    let recipe = fill(&recipe, "latchkey:8080", &latchkey.to_string());
    let recipe = fill(&recipe, "upstream:8000", &upstream.to_string());
    let dir = tempfile::tempdir().unwrap();
    let caddyfile = format!("{{\n  admin off\n  auto_https off\n}}\n{recipe}");
    let path = dir.path().join("Caddyfile");
    std::fs::write(&path, caddyfile).unwrap();
    let log = dir.path().join("caddy.log");
    let child = Command::new(binary)
        .args(["run", "--adapter", "caddyfile", "--config"])
        .arg(&path)
        .env("HOME", dir.path())
        .env("XDG_DATA_HOME", dir.path().join("data"))
        .env("XDG_CONFIG_HOME", dir.path().join("config"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .process_group(0)
        .spawn()
        .expect("start caddy");
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut process = ProxyProcess {
        child,
        name: "caddy",
        log,
        _dir: dir,
    };
    wait_listening(&mut process, addr).await;
    (process, addr)
}

/// The path of a request target, as a proxy that parsed it would hold it.
fn path_of(target: &str) -> &str {
    for scheme in ["http://", "https://"] {
        if let Some(after) = target.strip_prefix(scheme) {
            return after.find('/').map_or("/", |i| &after[i..]);
        }
    }
    target
}

/// The value after `key:` on the recipe's line holding it, unquoted.
fn yaml_value(recipe: &str, key: &str) -> Option<String> {
    recipe.lines().find_map(|l| {
        let rest = l.trim().strip_prefix(key)?.strip_prefix(':')?;
        Some(rest.trim().trim_matches('"').to_owned())
    })
}

fn set_header(headers: &mut Vec<(String, String)>, name: &str, value: &str) {
    headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
    headers.push((name.to_owned(), value.to_owned()));
}

/// Traefik's ForwardAuth middleware as its documentation (and source) describes it: a `GET`
/// to `address` with the client's headers, `X-Forwarded-*` set by Traefik (not trusted
/// from the client with `trustForwardHeader: false`); on 2xx, the request headers matching
/// `authResponseHeadersRegex` are removed and the answer's matching ones copied; otherwise
/// the answer goes back to the client.
struct Traefik {
    address: String,
    regex: Option<String>,
    listed: Vec<String>,
}

impl Traefik {
    fn from_docs() -> Traefik {
        let recipe = code_block("Traefik", "yaml");
        let address = yaml_value(&recipe, "address").expect("address in the Traefik recipe");
        assert_eq!(
            yaml_value(&recipe, "trustForwardHeader").as_deref(),
            Some("false")
        );
        let listed = yaml_value(&recipe, "authResponseHeaders")
            .map(|v| {
                v.trim_matches(['[', ']'])
                    .split(',')
                    .map(|s| s.trim().trim_matches('"').to_owned())
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        Traefik {
            address,
            regex: yaml_value(&recipe, "authResponseHeadersRegex"),
            listed,
        }
    }

    /// Whether `name` matches the recipe's regex. The test understands the one form the
    /// recipe uses, `(?i)^prefix`; anything else fails the test rather than guess.
    fn regex_matches(&self, name: &str) -> bool {
        let Some(regex) = &self.regex else {
            return false;
        };
        let prefix = regex
            .strip_prefix("(?i)^")
            .unwrap_or_else(|| panic!("the emulation reads only (?i)^prefix, not {regex:?}"));
        name.to_ascii_lowercase()
            .starts_with(&prefix.to_ascii_lowercase())
    }

    async fn send(
        &self,
        latchkey: SocketAddr,
        upstream: SocketAddr,
        method: &str,
        target: &str,
        client_headers: &[(String, String)],
    ) -> Answer {
        let auth_path = fill(&self.address, "http://latchkey:8080", "");
        let mut forward: Vec<(String, String)> = client_headers.to_vec();
        set_header(&mut forward, "X-Forwarded-For", "127.0.0.1");
        set_header(&mut forward, "X-Forwarded-Method", method);
        set_header(&mut forward, "X-Forwarded-Proto", "http");
        set_header(&mut forward, "X-Forwarded-Host", "app.example.com");
        set_header(&mut forward, "X-Forwarded-Uri", path_of(target));
        let auth = raw(latchkey, "GET", &auth_path, &forward).await;
        if !(200..300).contains(&auth.status) {
            return auth;
        }
        let mut request: Vec<(String, String)> = client_headers.to_vec();
        for name in &self.listed {
            request.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
            if let Some(v) = auth.header(name) {
                request.push((name.clone(), v.to_owned()));
            }
        }
        if self.regex.is_some() {
            request.retain(|(n, _)| !self.regex_matches(n));
            for (n, v) in &auth.headers {
                if self.regex_matches(n) {
                    request.push((n.clone(), v.clone()));
                }
            }
        }
        raw(upstream, method, target, &request).await
    }
}

/// Envoy with the recipe's filters as Envoy documents them: `header_mutation` removes the
/// listed request headers; `ext_authz` (HTTP service) sends the original method to
/// `path_prefix` + the original path with only `allowed_headers`; on 200 the answer's
/// headers matching `allowed_upstream_headers` are set on the upstream request, otherwise
/// the answer goes back to the client.
struct Envoy {
    removed: Vec<String>,
    path_prefix: String,
    allowed: Vec<String>,
    upstream_prefixes: Vec<String>,
}

fn patterns(line: &str, kind: &str) -> Vec<String> {
    line.split(&format!("{kind}:"))
        .skip(1)
        .filter_map(|p| p.split(['}', ',']).next())
        .map(|p| p.trim().to_owned())
        .collect()
}

impl Envoy {
    fn from_docs() -> Envoy {
        let recipe = code_block("Envoy", "yaml");
        let removed = recipe
            .lines()
            .filter_map(|l| l.trim().strip_prefix("- remove:"))
            .map(|s| s.trim().to_owned())
            .collect();
        let mut lines = recipe.lines();
        let allowed_line = lines
            .by_ref()
            .skip_while(|l| !l.contains("allowed_headers:"))
            .nth(1)
            .expect("allowed_headers patterns");
        let upstream_line = recipe
            .lines()
            .skip_while(|l| !l.contains("allowed_upstream_headers:"))
            .nth(1)
            .expect("allowed_upstream_headers patterns");
        Envoy {
            removed,
            path_prefix: yaml_value(&recipe, "path_prefix").expect("path_prefix"),
            allowed: patterns(allowed_line, "exact"),
            upstream_prefixes: patterns(upstream_line, "prefix"),
        }
    }

    async fn send(
        &self,
        latchkey: SocketAddr,
        upstream: SocketAddr,
        method: &str,
        target: &str,
        client_headers: &[(String, String)],
    ) -> Answer {
        let mut request: Vec<(String, String)> = client_headers.to_vec();
        request.retain(|(n, _)| !self.removed.iter().any(|r| r.eq_ignore_ascii_case(n)));
        let mut check: Vec<(String, String)> = request
            .iter()
            .filter(|(n, _)| self.allowed.iter().any(|a| a.eq_ignore_ascii_case(n)))
            .cloned()
            .collect();
        // The connection manager (use_remote_address) appends the client's address.
        set_header(&mut check, "x-forwarded-for", "127.0.0.1");
        let auth_path = format!("{}{}", self.path_prefix, path_of(target));
        let auth = raw(latchkey, method, &auth_path, &check).await;
        if auth.status != 200 {
            return auth;
        }
        for (n, v) in &auth.headers {
            if self
                .upstream_prefixes
                .iter()
                .any(|p| n.starts_with(p.as_str()))
            {
                set_header(&mut request, n, v);
            }
        }
        raw(upstream, method, target, &request).await
    }
}

enum Proxy {
    Real(ProxyProcess, SocketAddr),
    Traefik(Traefik),
    Envoy(Envoy),
}

struct Rig {
    server: TestServer,
    latchkey: SocketAddr,
    upstream: SocketAddr,
    proxy: Proxy,
    kind: ProxyKind,
}

impl Rig {
    async fn send(&self, method: &str, target: &str, headers: &[(String, String)]) -> Answer {
        match &self.proxy {
            Proxy::Real(_, addr) => raw(*addr, method, target, headers).await,
            Proxy::Traefik(t) => {
                t.send(self.latchkey, self.upstream, method, target, headers)
                    .await
            }
            Proxy::Envoy(e) => {
                e.send(self.latchkey, self.upstream, method, target, headers)
                    .await
            }
        }
    }

    /// What Latchkey itself answers for `token` (asked the way this proxy kind asks).
    async fn direct(&self, token: &str, path: &str) -> Answer {
        let auth = ("Authorization".to_owned(), format!("Bearer {token}"));
        let (target, extra) = match self.kind {
            ProxyKind::Envoy => (format!("/auth/verify{path}"), vec![]),
            ProxyKind::Nginx => (
                "/auth/verify".to_owned(),
                vec![
                    ("X-Original-URI".to_owned(), path.to_owned()),
                    ("X-Original-Method".to_owned(), "GET".to_owned()),
                ],
            ),
            _ => (
                "/auth/verify".to_owned(),
                vec![
                    ("X-Forwarded-Uri".to_owned(), path.to_owned()),
                    ("X-Forwarded-Method".to_owned(), "GET".to_owned()),
                ],
            ),
        };
        let mut headers = vec![auth];
        headers.extend(extra);
        raw(self.latchkey, "GET", &target, &headers).await
    }
}

async fn rig(kind: ProxyKind) -> Option<Rig> {
    let binary = match kind {
        ProxyKind::Nginx => require(find_binary(&["/usr/sbin/nginx", "/usr/bin/nginx"]), "nginx")?,
        ProxyKind::Caddy => require(
            find_binary(&["/usr/bin/caddy", "/usr/local/bin/caddy"]),
            "caddy",
        )?,
        _ => PathBuf::new(),
    };
    let server = TestServer::start_with(documented_policies(kind)).await;
    let latchkey = addr_of(&server.url);
    let upstream = echo_upstream().await;
    let proxy = match kind {
        ProxyKind::Nginx => {
            let (p, addr) = start_nginx(&binary, latchkey, upstream).await;
            Proxy::Real(p, addr)
        }
        ProxyKind::Caddy => {
            let (p, addr) = start_caddy(&binary, latchkey, upstream).await;
            Proxy::Real(p, addr)
        }
        ProxyKind::Traefik => Proxy::Traefik(Traefik::from_docs()),
        ProxyKind::Envoy => Proxy::Envoy(Envoy::from_docs()),
        ProxyKind::Custom => unreachable!("no custom recipe"),
    };
    Some(Rig {
        server,
        latchkey,
        upstream,
        proxy,
        kind,
    })
}

fn with_token(token: &str, more: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut headers = vec![("Authorization".to_owned(), format!("Bearer {token}"))];
    headers.extend(more.iter().map(|(n, v)| ((*n).to_owned(), (*v).to_owned())));
    headers
}

/// The attacks every recipe must hold against.
async fn recipe_holds(kind: ProxyKind) {
    let Some(rig) = rig(kind).await else {
        return;
    };
    let admin = rig.server.admin();
    let ws = rig.server.workspace1().await;
    let project = admin.create_project_in(&ws, "Reports", None).await.unwrap();
    let mut req = CreateTokenRequest::new("bound", TokenType::Client);
    req.projects = Some(vec![project.id.clone()]);
    req.environment = Some("staging".into());
    let client = admin.tokens().create(&ws, &req).await.unwrap();
    let pat = rig.server.admin_token.clone().unwrap();

    // No token: 401, the upstream never sees the request.
    let answer = rig.send("GET", "/app", &[]).await;
    assert_eq!(answer.status, 401, "{kind:?}: {}", answer.body);
    assert!(upstream_saw(&answer).is_none());

    // A forged value for every X-Latchkey-* header, with a personal and a bound client
    // token: the upstream sees exactly Latchkey's answer, never the client's values.
    for token in [pat.as_str(), client.token.as_str()] {
        let answer = rig.send("GET", "/app", &with_token(token, &SPOOFED)).await;
        assert_eq!(answer.status, 200, "{kind:?}: {}", answer.body);
        let seen = upstream_saw(&answer).expect("the upstream answered");
        let direct = rig.direct(token, "/app").await;
        assert_eq!(direct.status, 200);
        for (name, forged) in SPOOFED {
            let expected: Vec<String> =
                direct.header(name).map(str::to_owned).into_iter().collect();
            let got = seen.get(name).cloned().unwrap_or_default();
            assert_eq!(
                got, expected,
                "{kind:?}: {name} reached the upstream as {got:?}"
            );
            assert!(!got.iter().any(|v| v == forged), "{kind:?}: forged {name}");
        }
    }
    // Sanity of the identity itself: the bound token's binding, no user for it.
    let answer = rig
        .send("GET", "/app", &with_token(&client.token, &SPOOFED))
        .await;
    let seen = upstream_saw(&answer).unwrap();
    assert_eq!(seen["x-latchkey-token-type"], ["client"]);
    assert_eq!(seen["x-latchkey-environment"], ["staging"]);
    assert_eq!(
        seen["x-latchkey-projects"],
        std::slice::from_ref(&project.id)
    );
    assert!(!seen.contains_key("x-latchkey-user"), "{kind:?}: {seen:?}");

    // Route policies from the page: a client token is kept out of /api/admin/, whatever
    // original URI or method the client claims.
    let forged_target: Vec<(&str, &str)> = vec![
        ("X-Original-URI", "/"),
        ("X-Original-Method", "GET"),
        ("X-Forwarded-Uri", "/"),
        ("X-Forwarded-Method", "GET"),
        ("X-Envoy-Original-Path", "/"),
    ];
    for extra in [vec![], forged_target.clone()] {
        let answer = rig
            .send(
                "GET",
                "/api/admin/users",
                &with_token(&client.token, &extra),
            )
            .await;
        assert_eq!(answer.status, 403, "{kind:?} {extra:?}: {}", answer.body);
        assert!(upstream_saw(&answer).is_none());
    }
    let answer = rig
        .send("GET", "/api/admin/users", &with_token(&pat, &[]))
        .await;
    assert_eq!(answer.status, 200, "{kind:?}: {}", answer.body);
    // Methods: writes to /api/reports/ need projects:write; reads are open.
    let answer = rig
        .send("POST", "/api/reports/1", &with_token(&client.token, &[]))
        .await;
    assert_eq!(answer.status, 403, "{kind:?}: {}", answer.body);
    let answer = rig
        .send("GET", "/api/reports/1", &with_token(&client.token, &[]))
        .await;
    assert_eq!(answer.status, 200, "{kind:?}: {}", answer.body);

    // Issue 21.6: paths that name /api/admin/ to some upstream never get through with a
    // client token (Latchkey refuses them, or the proxy does).
    for target in [
        "/API/admin/users",
        "/api/ADMIN/users",
        "/api/admin;x/users",
        "/api/admin;jsessionid=1",
        "/api\\admin/users",
        "/api%5Cadmin/users",
        "/api/admin%00/users",
        "/api/admin./users",
        "/api/admin%2e/users",
        "/api/admin%20/users",
        "/api/%252e/admin/users",
        "/api/x/../admin/users",
        "/api/x/%2e%2e/admin/users",
        "/api//admin/users",
        "/api/%61dmin/users",
        "http://app.example.com/api/admin/users",
    ] {
        let answer = rig
            .send("GET", target, &with_token(&client.token, &[]))
            .await;
        // (Caddy answers an absolute-form request for another host with an empty 200 of
        // its own, without asking anyone: that is not the upstream.)
        assert!(
            upstream_saw(&answer).is_none() && (answer.status != 200 || answer.body.is_empty()),
            "{kind:?}: {target} got {} through to the upstream",
            answer.status
        );
    }

    // Revoked: 401 at once.
    admin.tokens().revoke(&client.meta.id).await.unwrap();
    let answer = rig
        .send("GET", "/app", &with_token(&client.token, &[]))
        .await;
    assert_eq!(answer.status, 401, "{kind:?}");
    if let Proxy::Real(mut process, _) = rig.proxy {
        let left = process.stop();
        assert!(left.is_empty(), "{kind:?} left processes behind: {left:?}");
    }
}

#[tokio::test]
async fn the_nginx_recipe_holds_on_a_real_nginx() {
    recipe_holds(ProxyKind::Nginx).await;
}

#[tokio::test]
async fn the_caddy_recipe_holds_on_a_real_caddy() {
    recipe_holds(ProxyKind::Caddy).await;
}

#[tokio::test]
async fn the_traefik_recipe_holds_against_traefik_s_documented_behaviour() {
    recipe_holds(ProxyKind::Traefik).await;
}

#[tokio::test]
async fn the_envoy_recipe_holds_against_envoy_s_documented_behaviour() {
    recipe_holds(ProxyKind::Envoy).await;
}

/// Issue 15: behind the real nginx of the recipe, a token over its rate limit, out of uses
/// or used from elsewhere is refused with 403 and `X-Latchkey-Reason` reaching the client
/// (with `Retry-After` and `RateLimit-*` over a rate limit), never nginx's 500; concurrent
/// requests admit exactly the limit (one node), and no refused request reaches the upstream.
#[tokio::test]
async fn behind_a_real_nginx_policy_refusals_are_403_with_the_reason_never_500() {
    let Some(rig) = rig(ProxyKind::Nginx).await else {
        return;
    };
    let rig = std::sync::Arc::new(rig);
    let admin = rig.server.admin();
    let ws = rig.server.workspace1().await;
    let create = |name: &'static str, edit: fn(&mut CreateTokenRequest)| {
        let admin = admin.clone();
        let ws = ws.clone();
        async move {
            let mut req = CreateTokenRequest::new(name, TokenType::Client);
            edit(&mut req);
            admin.tokens().create(&ws, &req).await.unwrap().token
        }
    };
    const LIMIT: u64 = 5;
    const DAY: i64 = 86_400;
    let limited = create("limited", |r| {
        r.rate_limit = Some(RateLimit {
            limit: LIMIT,
            window_secs: DAY.unsigned_abs(),
        })
    })
    .await;

    // 24 concurrent requests through nginx: 200 or 403, nothing else.
    let window = rig.server.state.clock.now_secs() / DAY;
    let mut sent = tokio::task::JoinSet::new();
    for _ in 0..24 {
        let rig = std::sync::Arc::clone(&rig);
        let headers = with_token(&limited, &[]);
        sent.spawn(async move { rig.send("GET", "/app", &headers).await });
    }
    let mut admitted = 0;
    let mut refused = Vec::new();
    while let Some(answer) = sent.join_next().await {
        let answer = answer.unwrap();
        match answer.status {
            200 => {
                assert!(upstream_saw(&answer).is_some(), "{}", answer.body);
                admitted += 1;
            }
            403 => {
                assert!(upstream_saw(&answer).is_none(), "{}", answer.body);
                refused.push(answer);
            }
            other => panic!("nginx answered {other}: {}", answer.body),
        }
    }
    // (Unless the test ran across midnight UTC, when the day's window started again.)
    if rig.server.state.clock.now_secs() / DAY == window {
        assert_eq!(admitted, LIMIT, "admitted through nginx");
    }
    let answer = rig.send("GET", "/app", &with_token(&limited, &[])).await;
    assert_eq!(answer.status, 403, "{}", answer.body);
    refused.push(answer);
    for answer in &refused {
        assert_eq!(answer.header("x-latchkey-reason"), Some("rate_limited"));
        let retry: i64 = answer.header("retry-after").unwrap().parse().unwrap();
        assert!((1..=DAY).contains(&retry), "Retry-After {retry}");
        assert_eq!(answer.header("ratelimit-limit"), Some("5"));
        assert_eq!(answer.header("ratelimit-remaining"), Some("0"));
        assert_eq!(
            answer.header("ratelimit-reset"),
            answer.header("retry-after")
        );
    }

    // Out of uses, and from an address the token may not be used from (nginx sends its
    // client's, 127.0.0.1): 403 with the reason too.
    let credits = create("credits", |r| r.remaining_uses = Some(2)).await;
    for _ in 0..2 {
        let answer = rig.send("GET", "/app", &with_token(&credits, &[])).await;
        assert_eq!(answer.status, 200, "{}", answer.body);
    }
    let elsewhere = create("elsewhere", |r| {
        r.allowed_ips = Some(vec!["203.0.113.0/24".into()])
    })
    .await;
    for (token, reason) in [(&credits, "usage_exceeded"), (&elsewhere, "ip_not_allowed")] {
        let answer = rig.send("GET", "/app", &with_token(token, &[])).await;
        assert_eq!(answer.status, 403, "{reason}: {}", answer.body);
        assert_eq!(answer.header("x-latchkey-reason"), Some(reason));
        assert!(upstream_saw(&answer).is_none());
    }
    // An admitted answer carries no refusal headers.
    let plain = create("plain", |_| {}).await;
    let answer = rig.send("GET", "/app", &with_token(&plain, &[])).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    for name in ["x-latchkey-reason", "retry-after", "ratelimit-limit"] {
        assert_eq!(answer.header(name), None, "{name}");
    }
    let Ok(rig) = std::sync::Arc::try_unwrap(rig) else {
        panic!("a request still holds the rig");
    };
    if let Proxy::Real(mut process, _) = rig.proxy {
        let left = process.stop();
        assert!(left.is_empty(), "nginx left processes behind: {left:?}");
    }
}
