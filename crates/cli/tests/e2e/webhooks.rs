//! Lifecycle events (issue 16): webhook endpoints and their permissions, signed deliveries
//! to a real HTTP receiver on loopback, retries (5xx, timeout, refused), give-up after 24 h
//! (time moved), redelivery, SSRF refusals at create and at delivery time, redirects not
//! followed, expiry notices at 30/7/1 days once each (across a restart), metrics; email
//! notices to token owners through a plain SMTP sink on loopback (expiring, expired, leaked).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use latchkey_client::proto::{
    CreateTokenRequest, CreateWebhookRequest, DeliveryState, EventType, OrgRole, TokenType,
    UpdateWebhookRequest, WebhookDelivery,
};
use latchkey_client::{Client, PageQuery};
use serde_json::{Value, json};

use crate::harness::{TestServer, eventually};

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub headers: BTreeMap<String, String>,
    pub body: String,
}

impl Received {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).expect("JSON body")
    }

    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).map_or("", String::as_str)
    }
}

#[derive(Default)]
struct ReceiverState {
    got: Vec<Received>,
    /// Status to answer; 0 = hang (never answer); [`HOLD`] = 204 once [`Receiver::release`].
    status: u16,
    released: Arc<tokio::sync::Notify>,
}

/// The status that makes the receiver hold each request until the test releases it.
const HOLD: u16 = 1;

/// An HTTP receiver on 127.0.0.1:random that records every request and answers a status
/// the test sets.
pub struct Receiver {
    pub url: String,
    state: Arc<Mutex<ReceiverState>>,
    _task: tokio::task::JoinHandle<()>,
}

async fn receive(
    State(state): State<Arc<Mutex<ReceiverState>>>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: String,
) -> axum::response::Response {
    let (status, released) = {
        let mut s = state.lock().unwrap();
        s.got.push(Received {
            path: uri.path().to_owned(),
            headers: headers
                .iter()
                .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
                .collect(),
            body,
        });
        (s.status, Arc::clone(&s.released))
    };
    if status == 0 {
        std::future::pending::<()>().await;
    }
    if status == HOLD {
        released.notified().await;
        return StatusCode::NO_CONTENT.into_response();
    }
    if status == 307 {
        return (
            StatusCode::TEMPORARY_REDIRECT,
            [("location", "/elsewhere")],
            "",
        )
            .into_response();
    }
    StatusCode::from_u16(status)
        .unwrap_or(StatusCode::OK)
        .into_response()
}

impl Receiver {
    pub async fn start() -> Receiver {
        let state = Arc::new(Mutex::new(ReceiverState {
            got: Vec::new(),
            status: 204,
            released: Arc::default(),
        }));
        let app = axum::Router::new()
            .fallback(receive)
            .with_state(Arc::clone(&state));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver {
            url,
            state,
            _task: task,
        }
    }

    pub fn answer(&self, status: u16) {
        self.state.lock().unwrap().status = status;
    }

    /// Answers every request held by [`HOLD`].
    pub fn release(&self) {
        self.state.lock().unwrap().released.notify_waiters();
    }

    pub fn got(&self) -> Vec<Received> {
        self.state.lock().unwrap().got.clone()
    }

    /// Requests whose body has `type` = `event_type`.
    pub fn of_type(&self, event_type: &str) -> Vec<Received> {
        self.got()
            .into_iter()
            .filter(|r| r.json()["type"] == event_type)
            .collect()
    }
}

/// A server whose webhooks may reach loopback (the receiver), polling fast.
pub async fn events_server() -> TestServer {
    TestServer::start_with(|c| {
        c.webhooks.allow_private_addresses = true;
        c.webhooks.poll_interval_ms = 50;
        c.webhooks.timeout_secs = 2;
        c.webhooks.lease_secs = 10;
        c.verifier.expiry_sweep_secs = 1;
    })
    .await
}

pub fn hook_request(url: &str, events: &[EventType]) -> CreateWebhookRequest {
    CreateWebhookRequest {
        url: url.to_owned(),
        events: events.to_vec(),
        description: Some("test receiver".into()),
        enabled: None,
    }
}

async fn deliveries(admin: &Client, hook: &str) -> Vec<WebhookDelivery> {
    admin
        .webhooks()
        .deliveries(hook, &PageQuery::limit(200))
        .await
        .unwrap()
        .items
}

fn verify_signature(secret: &str, r: &Received) -> bool {
    let key = latchkey_core::events::parse_secret(secret).unwrap();
    let ts: i64 = r.header("webhook-timestamp").parse().unwrap();
    let expected = latchkey_core::events::sign(&key, r.header("webhook-id"), ts, r.body.as_bytes());
    r.header("webhook-signature")
        .split(' ')
        .any(|sig| sig == expected)
}

#[tokio::test]
async fn endpoints_are_for_org_admins_and_the_secret_is_shown_once() {
    let server = TestServer::start().await;
    let admin = server.admin();
    let (_, member) = server.user("webhook-member", OrgRole::Member).await;
    let (_, org_admin) = server.user("webhook-admin", OrgRole::Admin).await;

    // Loopback is refused unless the config allows it, naming the field.
    let err = admin
        .webhooks()
        .create(&hook_request(
            "http://127.0.0.1:9/x",
            &[EventType::TokenCreated],
        ))
        .await
        .unwrap_err();
    assert_eq!(
        (err.status(), err.field()),
        (Some(422), Some("url")),
        "{err}"
    );
    for url in [
        "http://localhost:9/",
        "http://[::1]/",
        "http://169.254.169.254/latest/meta-data",
        "http://10.0.0.1/",
        "http://192.168.1.1/",
        "ftp://example.com/",
        "not a url",
        "https://user:pw@example.com/",
    ] {
        let err = admin
            .webhooks()
            .create(&hook_request(url, &[EventType::TokenCreated]))
            .await
            .unwrap_err();
        assert_eq!(
            (err.status(), err.field()),
            (Some(422), Some("url")),
            "{url}: {err}"
        );
    }
    // Unknown event types and empty lists name the field.
    let raw = server
        .http()
        .post(format!("{}/api/v1/webhooks", server.url))
        .bearer_auth(server.admin_token.as_deref().unwrap())
        .json(&json!({"url": "http://93.184.215.14/", "events": ["token.exploded"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), 422);
    let body: Value = raw.json().await.unwrap();
    assert!(
        body["error"]["field"]
            .as_str()
            .unwrap()
            .starts_with("events"),
        "{body}"
    );
    let err = admin
        .webhooks()
        .create(&hook_request("http://93.184.215.14/", &[]))
        .await
        .unwrap_err();
    assert_eq!((err.status(), err.field()), (Some(422), Some("events")));

    // A public literal address passes the check (nothing is sent until an event happens).
    let created = org_admin
        .webhooks()
        .create(&hook_request(
            "http://93.184.215.14/hook",
            &[EventType::TokenRevoked, EventType::TokenCreated],
        ))
        .await
        .unwrap();
    assert!(created.secret.starts_with("whsec_"), "{}", created.secret);
    assert!(latchkey_core::events::parse_secret(&created.secret).is_ok());
    assert_eq!(
        created.webhook.events,
        vec![EventType::TokenCreated, EventType::TokenRevoked]
    );
    let id = created.webhook.id.clone();
    let raw = server
        .http()
        .get(format!("{}/api/v1/webhooks/{id}", server.url))
        .bearer_auth(server.admin_token.as_deref().unwrap())
        .send()
        .await
        .unwrap();
    let text = raw.text().await.unwrap();
    assert!(
        !text.contains("whsec_") && !text.contains("secret"),
        "{text}"
    );
    let listed = admin.webhooks().list_all().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0], created.webhook);

    // Members: 403 on every route; nobody: 401; unknown ids: 404.
    let anonymous = server.anonymous();
    for (client, status) in [(&member, 403), (&anonymous, 401)] {
        let hooks = client.webhooks();
        let req = hook_request("http://93.184.215.14/", &[EventType::TokenCreated]);
        assert_eq!(hooks.create(&req).await.unwrap_err().status(), Some(status));
        assert_eq!(
            hooks
                .list(&PageQuery::default())
                .await
                .unwrap_err()
                .status(),
            Some(status)
        );
        assert_eq!(hooks.get(&id).await.unwrap_err().status(), Some(status));
        assert_eq!(
            hooks
                .update(&id, &UpdateWebhookRequest::default())
                .await
                .unwrap_err()
                .status(),
            Some(status)
        );
        assert_eq!(hooks.test(&id).await.unwrap_err().status(), Some(status));
        assert_eq!(
            hooks
                .deliveries(&id, &PageQuery::default())
                .await
                .unwrap_err()
                .status(),
            Some(status)
        );
        assert_eq!(
            hooks.redeliver(&id, &id).await.unwrap_err().status(),
            Some(status)
        );
        assert_eq!(hooks.delete(&id).await.unwrap_err().status(), Some(status));
    }
    // A workspace admin token and an org admin's token without the admin scope: 403.
    let ws = server.workspace1().await;
    let ws_admin = server
        .token(&admin, &ws, "ws-admin", TokenType::Admin)
        .await;
    let mut narrow = CreateTokenRequest::new("narrow", TokenType::Personal);
    narrow.scopes = Some(vec![latchkey_client::proto::Scope::TokensRead]);
    let narrow = admin.tokens().create(&ws, &narrow).await.unwrap();
    for token in [&ws_admin.token, &narrow.token] {
        let client = server.with_token(token);
        assert_eq!(
            client.webhooks().get(&id).await.unwrap_err().status(),
            Some(403)
        );
    }
    let unknown = latchkey_core::new_id();
    for status in [
        admin.webhooks().get(&unknown).await.unwrap_err().status(),
        admin
            .webhooks()
            .get("not-an-id")
            .await
            .unwrap_err()
            .status(),
        admin.webhooks().test(&unknown).await.unwrap_err().status(),
        admin
            .webhooks()
            .redeliver(&id, &unknown)
            .await
            .unwrap_err()
            .status(),
        admin
            .webhooks()
            .delete(&unknown)
            .await
            .unwrap_err()
            .status(),
    ] {
        assert_eq!(status, Some(404));
    }

    // PATCH: bad input changes nothing; good input changes what it names.
    let err = admin
        .webhooks()
        .update(
            &id,
            &UpdateWebhookRequest {
                url: Some("http://127.0.0.2/".into()),
                ..UpdateWebhookRequest::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!((err.status(), err.field()), (Some(422), Some("url")));
    let err = admin
        .webhooks()
        .update(
            &id,
            &UpdateWebhookRequest {
                events: Some(vec![]),
                ..UpdateWebhookRequest::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!((err.status(), err.field()), (Some(422), Some("events")));
    assert_eq!(admin.webhooks().get(&id).await.unwrap(), created.webhook);
    let patched = admin
        .webhooks()
        .update(
            &id,
            &UpdateWebhookRequest {
                enabled: Some(false),
                description: Some(None),
                ..UpdateWebhookRequest::default()
            },
        )
        .await
        .unwrap();
    assert!(!patched.enabled);
    assert_eq!(patched.description, None);
    assert_eq!(patched.url, created.webhook.url);
    let audit = admin
        .audit_events(&latchkey_client::AuditQuery {
            action: Some("webhook.updated".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(audit.items.len(), 1);
    admin.webhooks().delete(&id).await.unwrap();
    assert_eq!(
        admin.webhooks().get(&id).await.unwrap_err().status(),
        Some(404)
    );
}

#[tokio::test]
async fn deliveries_are_signed_retried_and_redelivered() {
    let server = events_server().await;
    let receiver = Receiver::start().await;
    let admin = server.admin();
    let ws = server.workspace1().await;
    let created = admin
        .webhooks()
        .create(&hook_request(&receiver.url, &EventType::ALL))
        .await
        .unwrap();
    let hook = created.webhook.id.clone();

    // The test message.
    let test = admin.webhooks().test(&hook).await.unwrap();
    assert_eq!(test.event_type, "webhook.test");
    eventually("the test message arrives", || async {
        !receiver.of_type("webhook.test").is_empty()
    })
    .await;

    // A 503 is retried with backoff; the deliveries list shows the attempt.
    receiver.answer(503);
    let token = server.token(&admin, &ws, "hooked", TokenType::Client).await;
    eventually("the first attempt fails", || async {
        deliveries(&admin, &hook)
            .await
            .iter()
            .any(|d| d.event_type == "token.created" && d.attempts == 1)
    })
    .await;
    let failing = deliveries(&admin, &hook)
        .await
        .into_iter()
        .find(|d| d.event_type == "token.created")
        .unwrap();
    assert_eq!(failing.state, DeliveryState::Pending);
    assert_eq!(failing.last_status, Some(503));
    assert_eq!(failing.last_error.as_deref(), Some("HTTP 503"));
    assert_eq!(failing.attempt_log.len(), 1);
    let next = failing.next_attempt_at.unwrap();
    assert_eq!(
        next - failing.last_attempt_at.unwrap(),
        time::Duration::seconds(5)
    );
    // It waits for its time (the clock is not moved yet, so no second attempt soon)...
    receiver.answer(204);
    server.state.clock.advance(6);
    eventually("the retry is delivered", || async {
        deliveries(&admin, &hook)
            .await
            .iter()
            .any(|d| d.event_type == "token.created" && d.state == DeliveryState::Delivered)
    })
    .await;
    let got = receiver.of_type("token.created");
    assert_eq!(got.len(), 2, "one failed and one good attempt");
    assert_eq!(got[0].header("webhook-id"), got[1].header("webhook-id"));
    let body = got[1].json();
    assert_eq!(body["data"]["token"]["id"], token.meta.id.as_str());
    assert_eq!(body["data"]["token"]["name"], "hooked");
    assert!(body["data"]["token"].get("token").is_none());
    assert!(
        !got[1].body.contains(&token.token),
        "the secret never leaves"
    );
    assert!(verify_signature(&created.secret, &got[1]));
    assert_eq!(got[1].header("content-type"), "application/json");

    // Revoke, restore, rotate, delete: each arrives, in order, with a signature.
    admin.tokens().revoke(&token.meta.id).await.unwrap();
    admin.tokens().restore(&token.meta.id).await.unwrap();
    admin
        .tokens()
        .rotate(&token.meta.id, &Default::default())
        .await
        .unwrap();
    admin.tokens().delete(&token.meta.id).await.unwrap();
    for kind in [
        "token.revoked",
        "token.restored",
        "token.rotated",
        "token.deleted",
    ] {
        eventually(kind, || async { !receiver.of_type(kind).is_empty() }).await;
        let r = &receiver.of_type(kind)[0];
        assert!(verify_signature(&created.secret, r), "{kind}");
        assert_eq!(r.json()["data"]["token"]["id"], token.meta.id.as_str());
    }
    assert_eq!(
        receiver.of_type("token.deleted")[0].json()["data"]["token"]["name"],
        "hooked"
    );

    // Failing for 24 h marks the delivery failed; redeliver sends the same message again.
    receiver.answer(500);
    let doomed = server.token(&admin, &ws, "doomed", TokenType::Client).await;
    eventually("the doomed delivery fails once", || async {
        receiver
            .of_type("token.created")
            .iter()
            .any(|r| r.json()["data"]["token"]["id"] == doomed.meta.id.as_str())
    })
    .await;
    let doomed_delivery = || async {
        let all = deliveries(&admin, &hook).await;
        let events: Vec<_> = receiver
            .of_type("token.created")
            .into_iter()
            .filter(|r| r.json()["data"]["token"]["id"] == doomed.meta.id.as_str())
            .map(|r| r.header("webhook-id").to_owned())
            .collect();
        all.into_iter()
            .find(|d| events.first().is_some_and(|id| *id == d.event_id))
    };
    // Move time in steps of 9 h; each step makes the delivery due again.
    for step in 1..=3u32 {
        server.state.clock.advance(9 * 3600);
        eventually(&format!("attempt after step {step}"), || async {
            doomed_delivery().await.is_some_and(|d| d.attempts > step)
        })
        .await;
    }
    eventually("the delivery is given up after 24 h", || async {
        doomed_delivery()
            .await
            .is_some_and(|d| d.state == DeliveryState::Failed)
    })
    .await;
    let failed = doomed_delivery().await.unwrap();
    assert!(failed.attempts >= 2, "{failed:?}");
    assert_eq!(failed.next_attempt_at, None);
    assert_eq!(failed.attempt_log.len() as u32, failed.attempts);
    receiver.answer(200);
    let again = admin.webhooks().redeliver(&hook, &failed.id).await.unwrap();
    assert_eq!(again.event_id, failed.event_id);
    assert_ne!(again.id, failed.id);
    eventually("the redelivery arrives", || async {
        admin
            .webhooks()
            .deliveries(&hook, &PageQuery::limit(200))
            .await
            .unwrap()
            .items
            .iter()
            .any(|d| d.id == again.id && d.state == DeliveryState::Delivered)
    })
    .await;

    let metrics = server
        .http()
        .get(format!("{}/metrics", server.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for outcome in ["delivered", "retried", "failed"] {
        let line = metrics
            .lines()
            .find(|l| {
                l.starts_with(&format!(
                    "latchkey_webhook_deliveries_total{{outcome=\"{outcome}\"}}"
                ))
            })
            .unwrap_or_else(|| panic!("no {outcome} series"));
        let value: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
        assert!(value >= 1.0, "{line}");
    }
}

#[tokio::test]
async fn a_lease_that_runs_out_during_an_attempt_does_not_make_the_node_repeat_it() {
    let server = events_server().await;
    let receiver = Receiver::start().await;
    let admin = server.admin();
    let hook = admin
        .webhooks()
        .create(&hook_request(&receiver.url, &EventType::ALL))
        .await
        .unwrap()
        .webhook
        .id;
    receiver.answer(HOLD);
    admin.webhooks().test(&hook).await.unwrap();
    eventually("the attempt reaches the endpoint", || async {
        !receiver.of_type("webhook.test").is_empty()
    })
    .await;
    // The attempt is held; its 10 s lease runs out, and the node's next poll finds the
    // delivery claimable again. A token created after that is delivered by a later poll
    // (claims take the oldest due first), so once its event arrives the node has had its
    // chance to repeat the held attempt.
    server.state.clock.advance(11);
    let ws = server.workspace1().await;
    admin
        .tokens()
        .create(
            &ws,
            &CreateTokenRequest::new("after-the-lease", TokenType::Personal),
        )
        .await
        .unwrap();
    eventually(
        "a delivery claimed after the lease ran out arrives",
        || async { !receiver.of_type("token.created").is_empty() },
    )
    .await;
    assert_eq!(
        receiver.of_type("webhook.test").len(),
        1,
        "the node repeated its own attempt"
    );
    receiver.release();
    eventually("the held attempt is recorded", || async {
        deliveries(&admin, &hook)
            .await
            .iter()
            .any(|d| d.state == DeliveryState::Delivered)
    })
    .await;
    let delivery = deliveries(&admin, &hook).await.remove(0);
    assert_eq!(delivery.attempts, 1);
    assert_eq!(receiver.of_type("webhook.test").len(), 1);
}

#[tokio::test]
async fn timeouts_refusals_and_redirects_are_failures() {
    let server = events_server().await;
    let hanging = Receiver::start().await;
    hanging.answer(0);
    let redirecting = Receiver::start().await;
    redirecting.answer(307);
    // A port nobody listens on: bind, note the port, close.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/hook", listener.local_addr().unwrap())
    };
    let admin = server.admin();
    let mut hooks = Vec::new();
    for url in [&hanging.url, &redirecting.url, &closed] {
        let created = admin
            .webhooks()
            .create(&hook_request(url, &[EventType::UserDeactivated]))
            .await
            .unwrap();
        hooks.push(created.webhook.id);
    }
    let (user, _) = server.user("leaving", OrgRole::Member).await;
    admin
        .update_user(
            &user,
            &latchkey_client::proto::UpdateUserRequest {
                active: Some(false),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let expect = [
        Some("timeout"),
        Some("HTTP 307"),
        Some("connection refused"),
    ];
    for (hook, error) in hooks.iter().zip(expect) {
        eventually(&format!("an attempt fails with {error:?}"), || async {
            deliveries(&admin, hook)
                .await
                .iter()
                .any(|d| d.attempts == 1 && d.last_error.as_deref() == error)
        })
        .await;
        let d = &deliveries(&admin, hook).await[0];
        assert_eq!(d.state, DeliveryState::Pending, "{d:?}");
        assert!(d.next_attempt_at.is_some());
    }
    let got = redirecting.got();
    assert!(
        got.iter().all(|r| r.path == "/hook"),
        "redirect followed: {got:?}"
    );
    assert_eq!(
        hanging.got()[0].json()["data"]["user"]["username"],
        "leaving"
    );
}

#[tokio::test]
async fn private_addresses_are_refused_again_at_delivery_time() {
    // Configured while private addresses were allowed; the server then restarts without:
    // the delivery is refused at connection time (as after a DNS rebinding).
    let receiver = Receiver::start().await;
    let server = events_server().await;
    let admin = server.admin();
    let by_name = receiver.url.replace("127.0.0.1", "localhost");
    let mut hooks = Vec::new();
    for url in [&receiver.url, &by_name] {
        let created = admin
            .webhooks()
            .create(&hook_request(url, &[EventType::TokenCreated]))
            .await
            .unwrap();
        admin
            .webhooks()
            .update(
                &created.webhook.id,
                &UpdateWebhookRequest {
                    enabled: Some(true),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        hooks.push(created.webhook.id);
    }
    let clock = server.state.clock.clone();
    let admin_token = server.admin_token.clone().unwrap();
    let (dir, tempdir) = server.stop().await;
    let server = TestServer::start_in(
        &dir,
        |c| {
            c.webhooks.poll_interval_ms = 50;
            c.webhooks.timeout_secs = 2;
            c.webhooks.lease_secs = 10;
        },
        clock,
    )
    .await;
    let admin = server.with_token(&admin_token);
    let ws = admin.me().await.unwrap().memberships[0]
        .workspace_id
        .clone();
    server
        .token(&admin, &ws, "private", TokenType::Client)
        .await;
    for hook in &hooks {
        eventually("the attempt is refused", || async {
            deliveries(&admin, hook).await.iter().any(|d| {
                d.attempts >= 1
                    && d.last_error
                        .as_deref()
                        .is_some_and(|e| e.contains("allow_private_addresses"))
            })
        })
        .await;
    }
    assert!(
        receiver.got().is_empty(),
        "nothing reached the private address"
    );
    drop(tempdir);
}

#[tokio::test]
async fn expiry_notices_fire_at_30_7_and_1_days_once_each_across_a_restart() {
    let receiver = Receiver::start().await;
    let server = events_server().await;
    let admin = server.admin();
    let ws = server.workspace1().await;
    admin
        .webhooks()
        .create(&hook_request(
            &receiver.url,
            &[EventType::TokenExpiring, EventType::TokenExpired],
        ))
        .await
        .unwrap();
    let mut request = CreateTokenRequest::new("expiring", TokenType::Client);
    request.expires_in_days = Some(40);
    let token = admin.tokens().create(&ws, &request).await.unwrap();
    let notices = || {
        receiver
            .of_type("token.expiring")
            .into_iter()
            .filter(|r| r.json()["data"]["token"]["id"] == token.meta.id.as_str())
            .map(|r| r.json()["data"]["days_left"].as_i64().unwrap())
            .collect::<Vec<_>>()
    };
    let day = 86_400;
    // 10 days in: 30 days left.
    server.state.clock.advance(10 * day);
    eventually("the 30-day notice", || async { notices() == vec![30] }).await;
    let metrics = server
        .http()
        .get(format!("{}/metrics", server.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("latchkey_tokens_expiring{within=\"30d\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("latchkey_tokens_expiring{within=\"7d\"} 0"));
    server.state.clock.advance(day);
    // A restart in between; the sweep runs again and sends nothing new.
    let clock = server.state.clock.clone();
    let admin_token = server.admin_token.clone().unwrap();
    let (dir, tempdir) = server.stop().await;
    let server = TestServer::start_in(
        &dir,
        |c| {
            c.webhooks.allow_private_addresses = true;
            c.webhooks.poll_interval_ms = 50;
            c.verifier.expiry_sweep_secs = 1;
        },
        clock,
    )
    .await;
    server.state.clock.advance(22 * day);
    eventually("the 7-day notice", || async { notices() == vec![30, 7] }).await;
    server.state.clock.advance(6 * day);
    eventually("the 1-day notice", || async { notices() == vec![30, 7, 1] }).await;
    server.state.clock.advance(day + 60);
    eventually("token.expired", || async {
        !receiver.of_type("token.expired").is_empty()
    })
    .await;
    // More sweeps: nothing more.
    server.state.clock.advance(day);
    let admin = server.with_token(&admin_token);
    let metrics_seen = || async {
        server
            .http()
            .get(format!("{}/metrics", server.url))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
            .contains("latchkey_tokens_expiring{within=\"30d\"} 0")
    };
    eventually("the gauge drops", metrics_seen).await;
    assert_eq!(notices(), vec![30, 7, 1]);
    assert_eq!(receiver.of_type("token.expired").len(), 1);
    let audit = admin
        .audit_events(&latchkey_client::AuditQuery {
            action: Some("token.expiring".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(audit.items.len(), 3);
    drop(tempdir);
}

/// One message the SMTP sink accepted.
#[derive(Debug, Clone)]
pub struct Mail {
    pub to: Vec<String>,
    pub data: String,
}

impl Mail {
    /// The `Subject:` header (unfolded).
    pub fn subject(&self) -> String {
        let mut lines = self.data.split("\r\n");
        let mut subject = String::new();
        while let Some(line) = lines.next() {
            if let Some(rest) = line.strip_prefix("Subject: ") {
                subject.push_str(rest);
                for more in lines.by_ref() {
                    match more.strip_prefix(' ') {
                        Some(folded) => subject.push_str(folded),
                        None => break,
                    }
                }
                break;
            }
        }
        subject
    }
}

/// A plain SMTP server on 127.0.0.1:random that accepts every message (no TLS, no auth):
/// enough of RFC 5321 for lettre (EHLO, MAIL, RCPT, DATA, RSET, NOOP, QUIT).
pub struct SmtpSink {
    pub port: u16,
    mails: Arc<Mutex<Vec<Mail>>>,
    _task: tokio::task::JoinHandle<()>,
}

impl SmtpSink {
    pub async fn start() -> SmtpSink {
        use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let mails = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&mails);
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let sink = Arc::clone(&sink);
                tokio::spawn(async move {
                    let (read, mut write) = stream.into_split();
                    let mut lines = BufReader::new(read).lines();
                    let _ = write.write_all(b"220 sink ESMTP\r\n").await;
                    let mut to = Vec::new();
                    while let Ok(Some(line)) = lines.next_line().await {
                        let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
                        let reply: &[u8] = match verb.as_str() {
                            "EHLO" | "HELO" => b"250 sink\r\n",
                            "RCPT" => {
                                to.push(line[8..].trim().trim_matches(['<', '>']).to_owned());
                                b"250 OK\r\n"
                            }
                            "DATA" => {
                                let _ = write.write_all(b"354 go on\r\n").await;
                                let mut data = String::new();
                                while let Ok(Some(l)) = lines.next_line().await {
                                    if l == "." {
                                        break;
                                    }
                                    data.push_str(&l);
                                    data.push_str("\r\n");
                                }
                                sink.lock().unwrap().push(Mail {
                                    to: std::mem::take(&mut to),
                                    data,
                                });
                                b"250 accepted\r\n"
                            }
                            "QUIT" => {
                                let _ = write.write_all(b"221 bye\r\n").await;
                                break;
                            }
                            _ => b"250 OK\r\n",
                        };
                        if write.write_all(reply).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        SmtpSink {
            port,
            mails,
            _task: task,
        }
    }

    pub fn mails(&self) -> Vec<Mail> {
        self.mails.lock().unwrap().clone()
    }

    /// Subjects of the messages to `address`, in order.
    pub fn subjects_to(&self, address: &str) -> Vec<String> {
        self.mails()
            .iter()
            .filter(|m| m.to.iter().any(|t| t == address))
            .map(Mail::subject)
            .collect()
    }
}

#[tokio::test]
async fn owners_get_email_as_their_token_nears_expiry_and_expires_and_hooks_hear_of_leaks() {
    let sink = SmtpSink::start().await;
    let receiver = Receiver::start().await;
    let server = TestServer::start_with(|c| {
        c.webhooks.allow_private_addresses = true;
        c.webhooks.poll_interval_ms = 50;
        c.verifier.expiry_sweep_secs = 1;
        c.smtp = Some(latchkey_server::config::SmtpConfig {
            host: "127.0.0.1".into(),
            port: Some(sink.port),
            security: latchkey_server::config::SmtpSecurity::None,
            username: None,
            password: None,
            password_file: None,
            from: "Latchkey <latchkey@example.com>".into(),
            timeout_secs: 5,
        });
    })
    .await;
    let admin = server.admin();
    let ws = server.workspace1().await;
    admin
        .webhooks()
        .create(&hook_request(&receiver.url, &EventType::ALL))
        .await
        .unwrap();
    let owner = admin
        .create_user(&latchkey_client::proto::CreateUserRequest {
            username: "olive".into(),
            password: Some("password-of-olive".into()),
            kind: latchkey_client::proto::UserKind::Human,
            role: OrgRole::Member,
            display_name: None,
            email: Some("olive@example.com".into()),
        })
        .await
        .unwrap();
    admin
        .put_member(
            &ws,
            &owner.id,
            latchkey_client::proto::WorkspaceRole::Member,
        )
        .await
        .unwrap();
    let olive = server.signed_in("olive", "password-of-olive").await;
    let mut request = CreateTokenRequest::new("olive-ci", TokenType::Personal);
    request.expires_in_days = Some(8);
    let token = olive.tokens().create(&ws, &request).await.unwrap();
    let to = "olive@example.com";

    // Eight days to go: no notice yet (the 30-day one is not sent to a token made inside it).
    let day = 86_400;
    server.state.clock.advance(day + 60);
    eventually("the 7-day email", || async {
        !sink.subjects_to(to).is_empty()
    })
    .await;
    server.state.clock.advance(6 * day);
    eventually("the 1-day email", || async {
        sink.subjects_to(to).len() == 2
    })
    .await;
    server.state.clock.advance(day);
    eventually("the expired email", || async {
        sink.subjects_to(to).len() == 3
    })
    .await;
    assert_eq!(
        sink.subjects_to(to),
        [
            "Your API token \"olive-ci\" expires in 7 days",
            "Your API token \"olive-ci\" expires in 1 day",
            "Your API token \"olive-ci\" has expired",
        ]
    );
    let mail = &sink.mails()[0];
    assert!(
        mail.data.contains("From: Latchkey <latchkey@example.com>"),
        "{}",
        mail.data
    );
    assert!(
        !mail.data.contains(&token.token),
        "the secret is never mailed"
    );
    let webhook_days: Vec<i64> = receiver
        .of_type("token.expiring")
        .iter()
        .map(|r| r.json()["data"]["days_left"].as_i64().unwrap())
        .collect();
    assert_eq!(webhook_days, [7, 1]);
    assert_eq!(receiver.of_type("token.expired").len(), 1);

    // A leak report revokes a token: its owner is mailed, the endpoint told. (Eight days
    // on, olive's session has ended: she signs in again.)
    let olive = server.signed_in("olive", "password-of-olive").await;
    let mut leaky = CreateTokenRequest::new("olive-leaky", TokenType::Personal);
    leaky.expires_in_days = Some(90);
    let leaky = olive.tokens().create(&ws, &leaky).await.unwrap();
    server
        .anonymous()
        .report_leaked(std::slice::from_ref(&leaky.token))
        .await
        .unwrap();
    eventually("token.leaked at the endpoint", || async {
        !receiver.of_type("token.leaked").is_empty()
    })
    .await;
    let leaked = &receiver.of_type("token.leaked")[0];
    assert_eq!(leaked.json()["data"]["token"]["id"], leaky.meta.id.as_str());
    assert!(!leaked.body.contains(&leaky.token));
    eventually("the leak email", || async {
        sink.subjects_to(to).len() == 4
    })
    .await;
    assert!(sink.subjects_to(to)[3].contains("reported leaked"));

    // Deactivated and reactivated: both reach the endpoint (no email for these).
    for active in [false, true] {
        admin
            .update_user(
                &owner.id,
                &latchkey_client::proto::UpdateUserRequest {
                    active: Some(active),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
    }
    eventually("user.reactivated", || async {
        !receiver.of_type("user.reactivated").is_empty()
    })
    .await;
    for kind in ["user.deactivated", "user.reactivated"] {
        let got = receiver.of_type(kind);
        assert_eq!(got.len(), 1, "{kind}");
        assert_eq!(got[0].json()["data"]["user"]["username"], "olive");
    }
    assert_eq!(sink.subjects_to(to).len(), 4);
}

#[tokio::test]
async fn every_status_a_webhook_route_answers_is_in_the_openapi_document() {
    let server = TestServer::start().await;
    let admin_token = server.admin_token.clone().unwrap();
    let (member_id, member) = server.user("doc-member", OrgRole::Member).await;
    let ws = server.workspace1().await;
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
        .token(&member, &ws, "doc-member-token", TokenType::Personal)
        .await
        .token;
    let created = server
        .admin()
        .webhooks()
        .create(&hook_request(
            "http://93.184.215.14/hook",
            &[EventType::TokenCreated],
        ))
        .await
        .unwrap();
    let id = created.webhook.id.clone();
    let delivery = server.admin().webhooks().test(&id).await.unwrap().id;
    let unknown = latchkey_core::new_id();
    let http = server.http();
    let call = |method: &str, path: String, token: Option<&str>, body: Option<Value>| {
        let mut req = http.request(method.parse().unwrap(), format!("{}{path}", server.url));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        async move { req.send().await.unwrap().status().as_u16() }
    };
    let admin = Some(admin_token.as_str());
    let member = Some(member_token.as_str());
    let good = json!({"url": "http://93.184.215.14/other", "events": ["token.created"]});
    let bad = json!({"url": "http://127.0.0.1/", "events": ["token.created"]});
    let base = "/api/v1/webhooks";
    let one = |hook: &str| format!("{base}/{hook}");
    let mut seen: Vec<(&str, &str, u16)> = Vec::new();
    macro_rules! answers {
        ($template:expr, $method:expr, $path:expr, $token:expr, $body:expr, $want:expr) => {{
            let status = call($method, $path, $token, $body).await;
            assert_eq!(status, $want, "{} {}", $method, $template);
            seen.push(($template, $method, status));
        }};
    }
    let (list, item) = ("/api/v1/webhooks", "/api/v1/webhooks/{id}");
    let (test, deliveries, redeliver) = (
        "/api/v1/webhooks/{id}/test",
        "/api/v1/webhooks/{id}/deliveries",
        "/api/v1/webhooks/{id}/deliveries/{delivery}/redeliver",
    );
    answers!(list, "POST", base.into(), admin, Some(good.clone()), 201);
    answers!(list, "POST", base.into(), None, Some(good.clone()), 401);
    answers!(list, "POST", base.into(), member, Some(good.clone()), 403);
    answers!(list, "POST", base.into(), admin, Some(bad.clone()), 422);
    let raw = |method: &str, path: String, content_type: &str, body: &str| {
        let req = http
            .request(method.parse().unwrap(), format!("{}{path}", server.url))
            .bearer_auth(&admin_token)
            .header("content-type", content_type)
            .body(body.to_owned());
        async move { req.send().await.unwrap().status().as_u16() }
    };
    for (method, template, path) in [("POST", list, base.to_owned()), ("PATCH", item, one(&id))] {
        let status = raw(method, path.clone(), "application/json", "{\"url\": ").await;
        assert_eq!(status, 400, "{method} {template}");
        seen.push((template, method, status));
        let status = raw(method, path, "text/plain", "{}").await;
        assert_eq!(status, 415, "{method} {template}");
        seen.push((template, method, status));
    }
    answers!(list, "GET", base.into(), admin, None, 200);
    answers!(list, "GET", base.into(), None, None, 401);
    answers!(list, "GET", base.into(), member, None, 403);
    answers!(list, "GET", format!("{base}?limit=0"), admin, None, 422);
    answers!(item, "GET", one(&id), admin, None, 200);
    answers!(item, "GET", one(&id), None, None, 401);
    answers!(item, "GET", one(&id), member, None, 403);
    answers!(item, "GET", one(&unknown), admin, None, 404);
    let pause = json!({"enabled": false});
    answers!(item, "PATCH", one(&id), admin, Some(pause.clone()), 200);
    answers!(item, "PATCH", one(&id), None, Some(pause.clone()), 401);
    answers!(item, "PATCH", one(&id), member, Some(pause.clone()), 403);
    answers!(item, "PATCH", one(&unknown), admin, Some(pause), 404);
    answers!(
        item,
        "PATCH",
        one(&id),
        admin,
        Some(json!({"events": []})),
        422
    );
    answers!(test, "POST", format!("{}/test", one(&id)), admin, None, 202);
    answers!(test, "POST", format!("{}/test", one(&id)), None, None, 401);
    answers!(
        test,
        "POST",
        format!("{}/test", one(&id)),
        member,
        None,
        403
    );
    answers!(
        test,
        "POST",
        format!("{}/test", one(&unknown)),
        admin,
        None,
        404
    );
    let listed = format!("{}/deliveries", one(&id));
    answers!(deliveries, "GET", listed.clone(), admin, None, 200);
    answers!(deliveries, "GET", listed.clone(), None, None, 401);
    answers!(deliveries, "GET", listed.clone(), member, None, 403);
    answers!(
        deliveries,
        "GET",
        format!("{}/deliveries", one(&unknown)),
        admin,
        None,
        404
    );
    answers!(
        deliveries,
        "GET",
        format!("{listed}?limit=x"),
        admin,
        None,
        422
    );
    let again = format!("{}/deliveries/{delivery}/redeliver", one(&id));
    answers!(redeliver, "POST", again.clone(), admin, None, 202);
    answers!(redeliver, "POST", again.clone(), None, None, 401);
    answers!(redeliver, "POST", again.clone(), member, None, 403);
    let missing = format!("{}/deliveries/{unknown}/redeliver", one(&id));
    answers!(redeliver, "POST", missing, admin, None, 404);
    answers!(item, "DELETE", one(&id), None, None, 401);
    answers!(item, "DELETE", one(&id), member, None, 403);
    answers!(item, "DELETE", one(&id), admin, None, 204);
    answers!(item, "DELETE", one(&id), admin, None, 404);

    let doc: Value = serde_json::from_str(&latchkey_server::api::openapi_json()).unwrap();
    for (template, method, status) in seen {
        let responses = &doc["paths"][template][method.to_lowercase()]["responses"];
        assert!(
            responses.get(status.to_string()).is_some(),
            "{method} {template} answered {status}, which docs/openapi.json does not list: {responses}"
        );
        if status >= 400 {
            assert_eq!(
                responses[status.to_string()]["content"]["application/json"]["schema"]["$ref"],
                "#/components/schemas/ErrorBody",
                "{method} {template} {status}"
            );
        }
    }
}
