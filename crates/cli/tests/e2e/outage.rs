//! PostgreSQL away (issue 20): with the network between the server and its database cut (a
//! TCP proxy in front of PostgreSQL that the test cuts and restores — the network fails,
//! not the database), every request that needs the store answers 503 `unavailable`
//! promptly, on every route, reads and writes, API and console alike; forward-auth answers
//! 401 with `X-Latchkey-Reason: unavailable` (proxies turn anything else into a 500). Once
//! the link is back, the same requests work again without a restart.
//!
//! Always on PostgreSQL (a database of its own), so it runs in the SQLite pass only.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use latchkey_client::proto::{CreateTokenRequest, CreateWebhookRequest, EventType, TokenType};
use latchkey_store_postgres::testing::TestDatabase;
use reqwest::Method;
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::task::{AbortHandle, JoinSet};

use crate::harness::{ADMIN_PASSWORD, TestServer, sqlite_pass_only};

/// How long a request may wait for a database connection in these tests…
const ACQUIRE_TIMEOUT_MS: u64 = 1000;
/// …and so how long an answer may take while the database is away ("promptly": the
/// acquire timeout plus room for a busy machine, far below a client's or proxy's timeout).
const PROMPT: Duration = Duration::from_secs(6);

// ---------------------------------------------------------------------------------------
// The link: a TCP proxy between the server and PostgreSQL.

/// A TCP proxy on 127.0.0.1 in front of `upstream`. [`Link::cut`] closes every connection
/// through it and stops listening (new connections are refused, as from a host that is
/// gone); [`Link::restore`] listens on the same port again.
pub struct Link {
    /// Where the server connects.
    pub addr: SocketAddr,
    upstream: SocketAddr,
    accept: Option<AbortHandle>,
    connections: Arc<Mutex<Vec<AbortHandle>>>,
}

fn listen_on(addr: SocketAddr) -> TcpListener {
    let socket = TcpSocket::new_v4().expect("socket");
    socket.set_reuseaddr(true).expect("SO_REUSEADDR");
    socket.bind(addr).expect("bind the link's port");
    socket.listen(128).expect("listen")
}

impl Link {
    /// A link to `upstream`, open.
    pub async fn open(upstream: SocketAddr) -> Link {
        let listener = listen_on(SocketAddr::from(([127, 0, 0, 1], 0)));
        let addr = listener.local_addr().expect("addr");
        let mut link = Link {
            addr,
            upstream,
            accept: None,
            connections: Arc::default(),
        };
        link.serve(listener);
        link
    }

    fn serve(&mut self, listener: TcpListener) {
        let upstream = self.upstream;
        let connections = Arc::clone(&self.connections);
        let task = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let piped = tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                if let Ok(mut open) = connections.lock() {
                    open.retain(|c| !c.is_finished());
                    open.push(piped.abort_handle());
                }
            }
        });
        self.accept = Some(task.abort_handle());
    }

    /// Closes every connection and refuses new ones.
    pub fn cut(&mut self) {
        if let Some(accept) = self.accept.take() {
            accept.abort();
        }
        if let Ok(mut open) = self.connections.lock() {
            for connection in open.drain(..) {
                connection.abort();
            }
        }
    }

    /// Accepts connections again, on the same port.
    pub fn restore(&mut self) {
        if self.accept.is_none() {
            let listener = listen_on(self.addr);
            self.serve(listener);
        }
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self.cut();
    }
}

/// `url` (`postgres://user@host:port/db?…`) with its host and port replaced by `addr`.
pub fn through(url: &str, addr: SocketAddr) -> String {
    let scheme_end = url.find("://").map_or(0, |i| i + 3);
    let rest = &url[scheme_end..];
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let user = authority.rfind('@').map_or("", |at| &authority[..=at]);
    format!(
        "{}{user}{addr}{}",
        &url[..scheme_end],
        &rest[authority_end..]
    )
}

/// The address PostgreSQL listens on, from a `postgres://` URL.
pub async fn address_of(url: &str) -> SocketAddr {
    let scheme_end = url.find("://").map_or(0, |i| i + 3);
    let rest = &url[scheme_end..];
    let authority = &rest[..rest.find(['/', '?']).unwrap_or(rest.len())];
    let host_port = authority.rsplit('@').next().unwrap_or(authority);
    let host_port = if host_port.contains(':') {
        host_port.to_owned()
    } else {
        format!("{host_port}:5432")
    };
    tokio::net::lookup_host(host_port.as_str())
        .await
        .expect("resolve the PostgreSQL host")
        .find(SocketAddr::is_ipv4)
        .expect("an IPv4 address for PostgreSQL")
}

// ---------------------------------------------------------------------------------------
// Every route, with what it needs.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Who {
    /// No credentials.
    Nobody,
    /// The admin's personal token (used before the cut, so the verifier has it cached).
    Admin,
    /// A client token never presented before the cut (the verifier must ask the store).
    Fresh,
    /// The admin's console session cookie.
    Browser,
}

#[derive(Clone, Debug)]
enum Body {
    Empty,
    Json(Value),
    Form(String),
}

/// What a route answers while the database is away.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Away {
    /// 503 with the JSON error code `unavailable`.
    Unavailable,
    /// The console's 503 page.
    Page,
    /// Forward-auth: 401 with `X-Latchkey-Reason: unavailable`.
    ForwardAuth,
    /// Needs no store: answers as usual.
    Serves,
    /// `/readyz`: 503, so the load balancer takes the node out.
    NotReady,
    /// Served from the verifier's cache (200), or 503 `unavailable`.
    Cached,
}

#[derive(Clone, Debug)]
struct Call {
    method: Method,
    path: String,
    who: Who,
    body: Body,
    away: Away,
}

struct Ids {
    org: String,
    ws: String,
    user: String,
    token: String,
    project: String,
    webhook: String,
    fresh_secret: String,
    admin_secret: String,
}

fn calls(ids: &Ids) -> Vec<Call> {
    use Away::*;
    use Who::*;
    let Ids {
        org,
        ws,
        user,
        token,
        project,
        webhook,
        fresh_secret,
        ..
    } = ids;
    let delivery = "0190b5a0-0000-7000-8000-000000000000";
    let new_token = json!({"name": "during the outage", "type": "client"});
    let api = |method: Method, path: String, who: Who, body: Body| Call {
        method,
        path,
        who,
        body,
        away: Unavailable,
    };
    let page = |method: Method, path: String| Call {
        body: if method == Method::POST {
            Body::Form("name=x".into())
        } else {
            Body::Empty
        },
        method,
        path,
        who: Browser,
        away: Page,
    };
    let mut all = vec![
        api(
            Method::POST,
            "/api/v1/session".into(),
            Nobody,
            Body::Json(json!({"username": "admin", "password": ADMIN_PASSWORD})),
        ),
        // Answered from the verifier's cache (the admin's token was used before the cut),
        // within `verifier.max_staleness_secs`: either way is right.
        Call {
            method: Method::GET,
            path: "/api/v1/me".into(),
            who: Admin,
            body: Body::Empty,
            away: Cached,
        },
        api(Method::GET, "/api/v1/me".into(), Fresh, Body::Empty),
        api(Method::GET, "/api/v1/me".into(), Browser, Body::Empty),
        api(Method::GET, "/api/v1/me/tokens".into(), Admin, Body::Empty),
        api(
            Method::GET,
            "/api/v1/instance/settings".into(),
            Admin,
            Body::Empty,
        ),
        api(
            Method::PATCH,
            "/api/v1/instance/settings".into(),
            Admin,
            Body::Json(json!({"default_token_lifetime_days": 90})),
        ),
        api(
            Method::GET,
            format!("/api/v1/orgs/{org}/token-settings"),
            Admin,
            Body::Empty,
        ),
        api(
            Method::PATCH,
            format!("/api/v1/orgs/{org}/token-settings"),
            Admin,
            Body::Json(json!({"max_tokens_per_user": 50})),
        ),
        api(Method::GET, "/api/v1/users".into(), Admin, Body::Empty),
        api(
            Method::POST,
            "/api/v1/users".into(),
            Admin,
            Body::Json(json!({"username": "outage-user", "password": "a long enough password"})),
        ),
        api(
            Method::GET,
            format!("/api/v1/users/{user}"),
            Admin,
            Body::Empty,
        ),
        api(
            Method::PATCH,
            format!("/api/v1/users/{user}"),
            Admin,
            Body::Json(json!({"display_name": "Bea"})),
        ),
        api(Method::GET, "/api/v1/workspaces".into(), Admin, Body::Empty),
        api(
            Method::POST,
            "/api/v1/workspaces".into(),
            Admin,
            Body::Json(json!({"name": "Outage"})),
        ),
        api(
            Method::GET,
            format!("/api/v1/workspaces/{ws}"),
            Admin,
            Body::Empty,
        ),
        api(
            Method::GET,
            format!("/api/v1/workspaces/{ws}/members"),
            Admin,
            Body::Empty,
        ),
        api(
            Method::PUT,
            format!("/api/v1/workspaces/{ws}/members/{user}"),
            Admin,
            Body::Json(json!({"role": "member"})),
        ),
        api(
            Method::GET,
            format!("/api/v1/workspaces/{ws}/tokens"),
            Admin,
            Body::Empty,
        ),
        api(
            Method::POST,
            format!("/api/v1/workspaces/{ws}/tokens"),
            Admin,
            Body::Json(new_token.clone()),
        ),
        api(
            Method::GET,
            format!("/api/v1/workspaces/{ws}/projects"),
            Admin,
            Body::Empty,
        ),
        api(
            Method::POST,
            format!("/api/v1/workspaces/{ws}/projects"),
            Admin,
            Body::Json(json!({"name": "Outage project"})),
        ),
        api(Method::GET, "/projects".into(), Fresh, Body::Empty),
        api(
            Method::POST,
            "/projects".into(),
            Fresh,
            Body::Json(json!({"name": "Through the token"})),
        ),
        api(
            Method::POST,
            "/api/v1/tokens/verify".into(),
            Admin,
            Body::Json(json!({"token": fresh_secret})),
        ),
        api(
            Method::GET,
            format!("/api/v1/tokens/{token}"),
            Admin,
            Body::Empty,
        ),
        api(
            Method::POST,
            format!("/api/v1/tokens/{token}/revoke"),
            Admin,
            Body::Empty,
        ),
        api(
            Method::POST,
            format!("/api/v1/tokens/{token}/restore"),
            Admin,
            Body::Empty,
        ),
        api(
            Method::POST,
            format!("/api/v1/tokens/{token}/rotate"),
            Admin,
            Body::Empty,
        ),
        api(
            Method::GET,
            "/api/v1/audit-events".into(),
            Admin,
            Body::Empty,
        ),
        api(Method::GET, "/api/v1/webhooks".into(), Admin, Body::Empty),
        api(
            Method::POST,
            "/api/v1/webhooks".into(),
            Admin,
            Body::Json(json!({"url": "http://127.0.0.1:9/hook", "events": ["token.created"]})),
        ),
        api(
            Method::GET,
            format!("/api/v1/webhooks/{webhook}"),
            Admin,
            Body::Empty,
        ),
        api(
            Method::PATCH,
            format!("/api/v1/webhooks/{webhook}"),
            Admin,
            Body::Json(json!({"description": "renamed"})),
        ),
        api(
            Method::POST,
            format!("/api/v1/webhooks/{webhook}/test"),
            Admin,
            Body::Empty,
        ),
        api(
            Method::GET,
            format!("/api/v1/webhooks/{webhook}/deliveries"),
            Admin,
            Body::Empty,
        ),
        api(
            Method::POST,
            format!("/api/v1/webhooks/{webhook}/deliveries/{delivery}/redeliver"),
            Admin,
            Body::Empty,
        ),
        // The admin's token is cached and the signing keys are in memory: either way.
        Call {
            method: Method::POST,
            path: "/api/v1/token/refresh".into(),
            who: Nobody,
            body: Body::Json(json!({"refresh": ids.admin_secret})),
            away: Cached,
        },
        api(
            Method::POST,
            "/api/token/refresh".into(),
            Nobody,
            Body::Json(json!({"refresh": fresh_secret})),
        ),
        api(
            Method::POST,
            "/oauth/introspect".into(),
            Admin,
            Body::Form(format!("token={fresh_secret}")),
        ),
        api(
            Method::POST,
            "/oauth/revoke".into(),
            Fresh,
            Body::Form(format!("token={fresh_secret}")),
        ),
        api(
            Method::POST,
            "/api/v1/credentials/revoke".into(),
            Nobody,
            Body::Json(json!({"tokens": [fresh_secret]})),
        ),
        // The deleting ones last, for the pass after the outage.
        api(
            Method::DELETE,
            format!("/api/v1/workspaces/{ws}/projects/{project}"),
            Admin,
            Body::Empty,
        ),
        api(
            Method::DELETE,
            format!("/api/v1/webhooks/{webhook}"),
            Admin,
            Body::Empty,
        ),
        api(
            Method::DELETE,
            format!("/api/v1/workspaces/{ws}/members/{user}"),
            Admin,
            Body::Empty,
        ),
        api(
            Method::DELETE,
            format!("/api/v1/tokens/{token}"),
            Admin,
            Body::Empty,
        ),
    ];
    all.extend([
        Call {
            method: Method::GET,
            path: "/auth/verify".into(),
            who: Fresh,
            body: Body::Empty,
            away: ForwardAuth,
        },
        Call {
            method: Method::GET,
            path: "/auth/verify/app/reports".into(),
            who: Fresh,
            body: Body::Empty,
            away: ForwardAuth,
        },
        Call {
            method: Method::GET,
            path: "/healthz".into(),
            who: Nobody,
            body: Body::Empty,
            away: Serves,
        },
        Call {
            method: Method::GET,
            path: "/api/v1/openapi.json".into(),
            who: Nobody,
            body: Body::Empty,
            away: Serves,
        },
        Call {
            method: Method::GET,
            path: "/assets/app.css".into(),
            who: Nobody,
            body: Body::Empty,
            away: Serves,
        },
        Call {
            method: Method::GET,
            path: "/readyz".into(),
            who: Nobody,
            body: Body::Empty,
            away: NotReady,
        },
    ]);
    // The console: every page and form of a signed-in admin.
    for path in [
        "/".to_owned(),
        "/workspaces".into(),
        format!("/workspaces/{ws}"),
        format!("/workspaces/{ws}/settings"),
        format!("/workspaces/{ws}/settings/members"),
        format!("/workspaces/{ws}/settings/tokens"),
        "/account".into(),
        "/api-access".into(),
        "/organization".into(),
        "/organization/users".into(),
        "/organization/token-settings".into(),
        "/organization/instance".into(),
        "/organization/audit".into(),
        "/organization/webhooks".into(),
        format!("/organization/webhooks/{webhook}"),
    ] {
        all.push(page(Method::GET, path));
    }
    for path in [
        "/workspaces".to_owned(),
        format!("/workspaces/{ws}/projects"),
        format!("/workspaces/{ws}/settings/members"),
        format!("/workspaces/{ws}/settings/members/{user}/role"),
        format!("/workspaces/{ws}/settings/tokens"),
        "/account/tokens".into(),
        "/account/legacy".into(),
        "/api-access".into(),
        "/organization/users".into(),
        format!("/organization/users/{user}/role"),
        format!("/organization/users/{user}/deactivate"),
        format!("/organization/users/{user}/reactivate"),
        "/organization/token-settings".into(),
        "/organization/instance".into(),
        "/organization/webhooks".into(),
        format!("/organization/webhooks/{webhook}/test"),
        format!("/organization/webhooks/{webhook}/pause"),
        format!("/organization/webhooks/{webhook}/resume"),
        format!("/organization/webhooks/{webhook}/deliveries/{delivery}/redeliver"),
        format!("/workspaces/{ws}/settings/tokens/{token}/revoke"),
        format!("/workspaces/{ws}/settings/tokens/{token}/restore"),
        format!("/workspaces/{ws}/settings/tokens/{token}/rotate"),
        format!("/account/tokens/{token}/revoke"),
        format!("/api-access/tokens/{token}/revoke"),
        format!("/organization/webhooks/{webhook}/delete"),
        format!("/workspaces/{ws}/settings/members/{user}/remove"),
        format!("/workspaces/{ws}/settings/tokens/{token}/delete"),
    ] {
        all.push(page(Method::POST, path));
    }
    all
}

/// What one request answered.
#[derive(Debug)]
struct Answer {
    status: u16,
    code: Option<String>,
    reason: Option<String>,
    took: Duration,
}

#[derive(Clone)]
struct Credentials {
    admin: String,
    fresh: String,
    cookie: String,
}

async fn send(http: &reqwest::Client, base: &str, call: &Call, creds: &Credentials) -> Answer {
    let mut request = http.request(call.method.clone(), format!("{base}{}", call.path));
    request = match call.who {
        Who::Nobody => request,
        Who::Admin => request.bearer_auth(&creds.admin),
        Who::Fresh => request.bearer_auth(&creds.fresh),
        Who::Browser => request
            .header("cookie", &creds.cookie)
            .header("origin", base),
    };
    request = match &call.body {
        Body::Empty => request,
        Body::Json(value) => request.json(value),
        Body::Form(text) => request
            .header("content-type", "application/x-www-form-urlencoded")
            .body(text.clone()),
    };
    let started = Instant::now();
    let response = request.send().await.unwrap_or_else(|e| {
        panic!("{} {}: no answer: {e}", call.method, call.path);
    });
    let status = response.status().as_u16();
    let reason = response
        .headers()
        .get("x-latchkey-reason")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let text = response.text().await.unwrap_or_default();
    let took = started.elapsed();
    let code = serde_json::from_str::<Value>(&text)
        .ok()
        .and_then(|v| v["error"]["code"].as_str().map(str::to_owned));
    Answer {
        status,
        code,
        reason,
        took,
    }
}

/// Everything `calls` answer, sent at once (each waits for a connection on its own).
async fn send_all(server: &TestServer, calls: &[Call], creds: &Credentials) -> Vec<Answer> {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let mut set = JoinSet::new();
    for (i, call) in calls.iter().enumerate() {
        let (http, base, call, creds) = (
            http.clone(),
            server.url.clone(),
            call.clone(),
            creds.clone(),
        );
        set.spawn(async move { (i, send(&http, &base, &call, &creds).await) });
    }
    let mut answers: Vec<Option<Answer>> = (0..calls.len()).map(|_| None).collect();
    while let Some(done) = set.join_next().await {
        let (i, answer) = done.expect("request task");
        answers[i] = Some(answer);
    }
    answers.into_iter().map(Option::unwrap).collect()
}

/// The admin's console session cookie (`name=value`).
async fn session_cookie(server: &TestServer) -> String {
    let response = server
        .http()
        .post(format!("{}/api/v1/session", server.url))
        .json(&json!({"username": "admin", "password": ADMIN_PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let cookie = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or("").to_owned())
        .collect::<Vec<_>>()
        .join("; ");
    assert!(!cookie.is_empty(), "no session cookie");
    cookie
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_answers_503_promptly_while_postgresql_is_away_and_works_once_it_is_back() {
    if sqlite_pass_only("its server runs on PostgreSQL, through a link the test cuts") {
        return;
    }
    let Some(db) = TestDatabase::create().await else {
        return;
    };
    let mut link = Link::open(address_of(&db.url).await).await;
    let url = through(&db.url, link.addr);
    let server = TestServer::start_with(move |c| {
        c.database_url = url;
        c.database_pool_size = 4;
        c.database_acquire_timeout_ms = ACQUIRE_TIMEOUT_MS;
        c.webhooks.allow_private_addresses = true;
    })
    .await;
    let admin = server.admin();
    let ws = server.workspace1().await;
    let org = admin.me().await.unwrap().org.id;
    let (user, _) = server
        .user("bea", latchkey_client::proto::OrgRole::Member)
        .await;
    let token = admin
        .tokens()
        .create(&ws, &CreateTokenRequest::new("kept", TokenType::Client))
        .await
        .unwrap();
    let fresh = admin
        .tokens()
        .create(&ws, &CreateTokenRequest::new("fresh", TokenType::Client))
        .await
        .unwrap();
    let project = admin.create_project_in(&ws, "Reports", None).await.unwrap();
    let webhook = admin
        .webhooks()
        .create(&CreateWebhookRequest {
            url: "http://127.0.0.1:9/hook".into(),
            events: vec![EventType::TokenCreated],
            description: None,
            enabled: None,
        })
        .await
        .unwrap();
    let ids = Ids {
        org,
        ws,
        user,
        token: token.meta.id.clone(),
        project: project.id,
        webhook: webhook.webhook.id,
        fresh_secret: fresh.token.clone(),
        admin_secret: server.admin_token.clone().unwrap(),
    };
    let creds = Credentials {
        admin: ids.admin_secret.clone(),
        fresh: fresh.token.clone(),
        cookie: session_cookie(&server).await,
    };
    let calls = calls(&ids);

    link.cut();
    let answers = send_all(&server, &calls, &creds).await;
    let mut wrong = Vec::new();
    for (call, answer) in calls.iter().zip(&answers) {
        let right = match call.away {
            Away::Unavailable => {
                answer.status == 503 && answer.code.as_deref() == Some("unavailable")
            }
            Away::Page => answer.status == 503,
            Away::ForwardAuth => {
                answer.status == 401 && answer.reason.as_deref() == Some("unavailable")
            }
            Away::Serves => answer.status == 200,
            Away::NotReady => answer.status == 503,
            Away::Cached => {
                answer.status == 200
                    || (answer.status == 503 && answer.code.as_deref() == Some("unavailable"))
            }
        };
        if !right || answer.took > PROMPT {
            wrong.push(format!(
                "{} {} as {:?}: {} {:?} {:?} after {:?} (want {:?} within {PROMPT:?})",
                call.method,
                call.path,
                call.who,
                answer.status,
                answer.code,
                answer.reason,
                answer.took,
                call.away
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "while PostgreSQL was away:\n{}",
        wrong.join("\n")
    );

    // Back: the node serves again by itself, reads and writes, every route.
    link.restore();
    let back = Instant::now();
    loop {
        let created = admin
            .tokens()
            .create(
                &ids.ws,
                &CreateTokenRequest::new("after", TokenType::Client),
            )
            .await;
        match created {
            Ok(_) => break,
            Err(e) => {
                assert_eq!(e.status(), Some(503), "{e:?}");
                assert!(
                    back.elapsed() < Duration::from_secs(30),
                    "never served again"
                );
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    for call in &calls {
        let answer = send(&http, &server.url, call, &creds).await;
        assert!(
            answer.status < 500,
            "{} {} as {:?} after PostgreSQL came back: {answer:?}",
            call.method,
            call.path,
            call.who
        );
    }
    drop(server);
    drop(link);
}
