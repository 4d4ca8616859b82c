//! Organization → Webhooks (org admins only; others get 403, by the [`OrgAdmin`]
//! extractor): the endpoints, a form that adds one (its signing secret shown once, in the
//! show-once dialog), and an endpoint's page with its deliveries. One route per action:
//! `…/{id}/edit`, `/test`, `/pause`, `/resume`, `/delete`, `…/deliveries/{delivery}/redeliver`.

use std::collections::HashMap;

use askama::Template;
use axum::extract::{FromRequest, FromRequestParts, Path, Request, State};
use axum::response::{IntoResponse, Response};
use latchkey_proto::{CreateWebhookRequest, EventType, UpdateWebhookRequest, Webhook};

use super::extract::{Form, FormData, OrgAdmin, SignedIn, Visit};
use super::page_request;
use super::render::{Chrome, Flash, Notice, SecretDialog, SecretKind, View, When, when, when_opt};
use super::session::encode;
use crate::error::ApiError;
use crate::state::AppState;

/// The list page's address.
const LIST: &str = "/organization/webhooks";

/// What an event type means, as the create form says it.
fn event_hint(t: EventType) -> &'static str {
    match t {
        EventType::TokenCreated => "a token was created",
        EventType::TokenRevoked => "a token was revoked",
        EventType::TokenRestored => "a revoked token was restored",
        EventType::TokenRotated => "a token got a new secret",
        EventType::TokenDeleted => "a token was deleted",
        EventType::TokenExpiring => "a token expires in 30, 7 or 1 days",
        EventType::TokenExpired => "a token expired",
        EventType::TokenLeaked => "a token was reported leaked and revoked",
        EventType::TokenRevealed => "a recoverable token's secret was revealed",
        EventType::UserDeactivated => "a user was deactivated",
        EventType::UserReactivated => "a user was reactivated",
    }
}

/// An event type checkbox.
pub struct EventChoice {
    value: &'static str,
    hint: &'static str,
    checked: bool,
}

/// One checkbox per event type, `chosen` ones checked.
fn event_choices(chosen: &[String]) -> Vec<EventChoice> {
    EventType::ALL
        .into_iter()
        .map(|t| EventChoice {
            value: t.as_str(),
            hint: event_hint(t),
            checked: chosen.iter().any(|c| c == t.as_str()),
        })
        .collect()
}

/// The form's checked event types.
fn form_events(data: &FormData) -> Result<Vec<EventType>, ApiError> {
    data.all("events")
        .iter()
        .map(|v| EventType::parse(v).ok_or_else(|| ApiError::field("events", "unknown event type")))
        .collect()
}

/// An endpoint as a row or a page's facts.
pub struct EndpointRow {
    id: String,
    url: String,
    description: String,
    events: Vec<&'static str>,
    enabled: bool,
    created: When,
}

fn endpoint_row(w: Webhook, now: time::OffsetDateTime) -> EndpointRow {
    EndpointRow {
        events: w.events.iter().map(|e| e.as_str()).collect(),
        id: w.id,
        url: w.url,
        description: w.description.unwrap_or_default(),
        enabled: w.enabled,
        created: when(w.created_at, now),
    }
}

/// `/organization/webhooks`.
#[derive(Template)]
#[template(path = "webhooks.html")]
pub struct WebhooksPage {
    c: Chrome,
    tab: &'static str,
    owner: bool,
    endpoints: Vec<EndpointRow>,
    url: String,
    description: String,
    events: Vec<EventChoice>,
    next_url: Option<String>,
}

/// Renders the list with `view` (a failed create fills the form in again).
async fn render_list(state: &AppState, s: &SignedIn, view: View) -> Response {
    let now = state.clock.now();
    let page = async {
        let cursor = view.query().get("cursor").cloned();
        let hooks = state
            .list_webhooks(&s.p, &page_request(100, cursor.as_ref()))
            .await?;
        let chosen = view.fields("events");
        Ok(WebhooksPage {
            c: s.chrome("Webhooks", "organization", &view),
            tab: "webhooks",
            owner: s.is_owner(),
            next_url: hooks
                .next_cursor
                .as_ref()
                .map(|cur| format!("{LIST}?cursor={}", encode(cur))),
            endpoints: hooks
                .items
                .into_iter()
                .map(|w| endpoint_row(w, now))
                .collect(),
            url: view.field("url").to_owned(),
            description: view.field("description").to_owned(),
            events: event_choices(&chosen),
        })
    }
    .await;
    view.respond(s, "organization", page)
}

/// `GET /organization/webhooks`.
pub async fn list(v: Visit<OrgAdmin>) -> Response {
    render_list(&v.state, &v.s, v.view).await
}

/// `POST /organization/webhooks`: adds an endpoint and answers with its page, the signing
/// secret in the show-once dialog.
pub async fn create(State(state): State<AppState>, Form { s, data }: Form<OrgAdmin>) -> Response {
    let result = async {
        let events = form_events(&data)?;
        let req = CreateWebhookRequest {
            url: data.get("url").unwrap_or("").trim().to_owned(),
            events,
            description: data.text("description"),
            enabled: None,
        };
        state.create_webhook(&s.p, req).await
    }
    .await;
    match result {
        Ok(created) => {
            let place = format!("{LIST}/{}", created.webhook.id);
            let url = created.webhook.url.clone();
            let dialog = SecretDialog {
                secret: created.secret,
                heading: "Webhook created".into(),
                name: url.clone(),
                kind: SecretKind::SigningSecret,
                expires: None,
                note: Vec::new(),
            };
            let notice = Notice::ok(format!("Webhook “{url}” created."));
            let view = View::shown(place, dialog, notice);
            render_endpoint(&state, &s, &created.webhook.id, view).await
        }
        Err(e) => render_list(&state, &s, View::failed(&state, &e, data)).await,
    }
}

/// A delivery as a row.
pub struct DeliveryRow {
    id: String,
    event_id: String,
    event_type: String,
    state: &'static str,
    state_label: &'static str,
    attempts: u32,
    last_status: String,
    last_error: String,
    next_attempt: Option<When>,
    created: When,
    log: Vec<AttemptRow>,
}

/// One attempt of a delivery.
pub struct AttemptRow {
    at: When,
    outcome: String,
}

/// `/organization/webhooks/{id}`.
#[derive(Template)]
#[template(path = "webhook.html")]
pub struct WebhookPage {
    c: Chrome,
    tab: &'static str,
    owner: bool,
    hook: EndpointRow,
    deliveries: Vec<DeliveryRow>,
    next_url: Option<String>,
    /// The edit form: the endpoint's values, or a failed edit's.
    url: String,
    description: String,
    events: Vec<EventChoice>,
}

/// An attempt's outcome: `HTTP 200`, `HTTP 503`, `timeout`, `connection refused`, ...
fn outcome(status: Option<u16>, error: Option<&str>) -> String {
    match (status, error) {
        (Some(status), Some(e)) if e != format!("HTTP {status}") => format!("HTTP {status}: {e}"),
        (Some(status), _) => format!("HTTP {status}"),
        (None, Some(e)) => e.to_owned(),
        (None, None) => "no answer".into(),
    }
}

fn state_label(state: latchkey_proto::DeliveryState) -> &'static str {
    match state {
        latchkey_proto::DeliveryState::Pending => "Pending",
        latchkey_proto::DeliveryState::Delivered => "Delivered",
        latchkey_proto::DeliveryState::Failed => "Failed",
    }
}

/// Renders endpoint `id`'s page with `view` (`?cursor=` pages its deliveries).
async fn render_endpoint(state: &AppState, s: &SignedIn, id: &str, view: View) -> Response {
    let now = state.clock.now();
    let page = async {
        let hook = state.get_webhook(&s.p, id).await?;
        let cursor = view.query().get("cursor").cloned();
        let deliveries = state
            .list_webhook_deliveries(&s.p, &hook.id, &page_request(50, cursor.as_ref()))
            .await?;
        let next_url = deliveries
            .next_cursor
            .as_ref()
            .map(|cur| format!("{LIST}/{}?cursor={}", hook.id, encode(cur)));
        Ok(WebhookPage {
            c: s.chrome(format!("Webhook {}", hook.url), "organization", &view),
            tab: "webhooks",
            owner: s.is_owner(),
            deliveries: deliveries
                .items
                .into_iter()
                .map(|d| DeliveryRow {
                    state: d.state.as_str(),
                    state_label: state_label(d.state),
                    attempts: d.attempts,
                    last_status: d.last_status.map(|s| s.to_string()).unwrap_or_default(),
                    // "HTTP 503" says no more than the status beside it.
                    last_error: d
                        .last_error
                        .filter(|e| d.last_status.is_none_or(|s| *e != format!("HTTP {s}")))
                        .unwrap_or_default(),
                    next_attempt: when_opt(d.next_attempt_at, now),
                    created: when(d.created_at, now),
                    log: d
                        .attempt_log
                        .into_iter()
                        .map(|a| AttemptRow {
                            at: when(a.at, now),
                            outcome: outcome(a.status, a.error.as_deref()),
                        })
                        .collect(),
                    id: d.id,
                    event_id: d.event_id,
                    event_type: d.event_type,
                })
                .collect(),
            url: match view.sticky {
                Some(_) => view.field("url").to_owned(),
                None => hook.url.clone(),
            },
            description: match view.sticky {
                Some(_) => view.field("description").to_owned(),
                None => hook.description.clone().unwrap_or_default(),
            },
            events: match view.sticky {
                Some(_) => event_choices(&view.fields("events")),
                None => event_choices(
                    &hook
                        .events
                        .iter()
                        .map(|e| e.as_str().to_owned())
                        .collect::<Vec<_>>(),
                ),
            },
            hook: endpoint_row(hook, now),
            next_url,
        })
    }
    .await;
    view.respond(s, "organization", page)
}

/// `GET /organization/webhooks/{id}`.
pub async fn show(Path(id): Path<String>, v: Visit<OrgAdmin>) -> Response {
    render_endpoint(&v.state, &v.s, &id, v.view).await
}

/// A form an org admin posted about endpoint `{id}` (its page's and its row's actions):
/// what each action takes, and where it answers ([`EndpointForm::finish`]).
pub struct EndpointForm {
    state: AppState,
    /// The endpoint, as the address names it.
    id: String,
    s: SignedIn,
    data: FormData,
}

impl FromRequest<AppState> for EndpointForm {
    type Rejection = Response;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Response> {
        let (mut parts, body) = req.into_parts();
        let id = match Path::<HashMap<String, String>>::from_request_parts(&mut parts, state).await
        {
            Ok(Path(mut params)) => params.remove("id").unwrap_or_default(),
            Err(e) => return Err(e.into_response()),
        };
        let Form {
            s: OrgAdmin(s),
            data,
        } = Form::<OrgAdmin>::from_request(Request::from_parts(parts, body), state).await?;
        Ok(EndpointForm {
            state: state.clone(),
            id,
            s,
            data,
        })
    }
}

impl EndpointForm {
    /// Back to the form's place with `flash`, or the endpoint's page with the refusal (the
    /// list's, when the endpoint is gone).
    async fn finish(&self, result: Result<Flash, ApiError>) -> Response {
        let (state, s) = (&self.state, &self.s);
        let back = self.data.back_or(&format!("{LIST}/{}", self.id));
        match result {
            Ok(flash) => s.done(&back, flash),
            Err(e @ ApiError::NotFound("webhook")) => {
                render_list(state, s, View::refused(state, &e, LIST.to_owned())).await
            }
            Err(e) => render_endpoint(state, s, &self.id, View::refused(state, &e, back)).await,
        }
    }
}

/// `POST /organization/webhooks/{id}/test`: queues a `webhook.test` message.
pub async fn send_test(f: EndpointForm) -> Response {
    let result = async {
        let hook = f.state.get_webhook(&f.s.p, &f.id).await?;
        f.state.test_webhook(&f.s.p, &hook.id).await?;
        Ok(Flash::new("webhook-test")
            .subject(hook.url)
            .anchor("deliveries"))
    }
    .await;
    f.finish(result).await
}

/// `POST /organization/webhooks/{id}/edit`: URL, event types and description.
pub async fn edit(f: EndpointForm) -> Response {
    let EndpointForm { state, id, s, data } = f;
    let result = async {
        let req = UpdateWebhookRequest {
            url: Some(data.get("url").unwrap_or("").trim().to_owned()),
            events: Some(form_events(&data)?),
            description: Some(data.text("description")),
            enabled: None,
        };
        state.update_webhook(&s.p, &id, req).await
    }
    .await;
    match result {
        Ok(w) => s.done(
            &format!("{LIST}/{}", w.id),
            Flash::new("webhook-updated").subject(w.url),
        ),
        Err(e @ ApiError::NotFound("webhook")) => {
            render_list(&state, &s, View::refused(&state, &e, LIST.to_owned())).await
        }
        Err(e) => render_endpoint(&state, &s, &id, View::failed(&state, &e, data)).await,
    }
}

/// `POST /organization/webhooks/{id}/pause` (`set_enabled::<false>`) and `…/resume`
/// (`set_enabled::<true>`): one route each, one handler.
pub async fn set_enabled<const ENABLED: bool>(f: EndpointForm) -> Response {
    let req = UpdateWebhookRequest {
        enabled: Some(ENABLED),
        ..UpdateWebhookRequest::default()
    };
    let code = if ENABLED {
        "webhook-resumed"
    } else {
        "webhook-paused"
    };
    let result = f
        .state
        .update_webhook(&f.s.p, &f.id, req)
        .await
        .map(|w| Flash::new(code).subject(w.url));
    f.finish(result).await
}

/// `POST /organization/webhooks/{id}/delete`: back to the list.
pub async fn delete(f: EndpointForm) -> Response {
    let result = async {
        let hook = f.state.get_webhook(&f.s.p, &f.id).await?;
        f.state.delete_webhook(&f.s.p, &hook.id).await?;
        Ok(hook.url)
    }
    .await;
    match result {
        Ok(url) => f.s.done(LIST, Flash::new("webhook-deleted").subject(url)),
        Err(e) => f.finish(Err(e)).await,
    }
}

/// `POST /organization/webhooks/{id}/deliveries/{delivery}/redeliver`.
pub async fn redeliver(Path((_, delivery)): Path<(String, String)>, f: EndpointForm) -> Response {
    let result = f.state.redeliver(&f.s.p, &f.id, &delivery).await.map(|d| {
        Flash::new("redelivered")
            .subject(d.event_type)
            .anchor(format!("delivery-{}", d.id))
    });
    f.finish(result).await
}
