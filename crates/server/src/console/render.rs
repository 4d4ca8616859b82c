//! Rendering: the page chrome shared by every template, what a page shows besides its own
//! data ([`View`]: status, banner, show-once dialog, a failed form's values), the signed
//! banners that follow a redirect ([`Flash`]), HTML responses, readable messages for
//! service errors, and times shown relative with the exact instant alongside.

use std::collections::HashMap;

use askama::Template;
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use time::OffsetDateTime;

use super::extract::{FormData, SignedIn};
use super::session::{encode, query_pairs};
use crate::error::ApiError;
use crate::state::AppState;

/// What every page's layout needs: title, who is signed in, the CSRF token, the banner,
/// the show-once dialog.
#[derive(Debug, Clone, Default)]
pub struct Chrome {
    /// The page title (before " · Latchkey").
    pub title: String,
    /// The signed-in user, for the navigation.
    pub user: Option<NavUser>,
    /// The CSRF token for forms on this page.
    pub csrf: String,
    /// This page's place (path and query): forms send it as `back`, and return to it.
    pub here: String,
    /// Which top-level section is current (`workspaces`, `organization`, `api-access`,
    /// `account`), for `aria-current`.
    pub section: &'static str,
    /// A banner at the top of the page.
    pub notice: Option<Notice>,
    /// A secret shown once, in a modal dialog.
    pub secret: Option<SecretDialog>,
    /// Cache-busting version of the assets.
    pub asset_version: &'static str,
}

impl Chrome {
    /// The path of this page's place.
    pub fn here_path(&self) -> &str {
        self.here.split(['?', '#']).next().unwrap_or("")
    }

    /// The query of this page's place, as pairs (for a GET form that comes back here).
    pub fn here_pairs(&self) -> Vec<(String, String)> {
        match self.here.parse::<Uri>() {
            Ok(uri) => query_list(&uri),
            Err(_) => Vec::new(),
        }
    }
}

/// The signed-in user as the navigation shows them.
#[derive(Debug, Clone)]
pub struct NavUser {
    /// Username.
    pub username: String,
    /// Org admin (or owner): sees Organization and API access.
    pub org_admin: bool,
    /// Org owner: sees Instance Settings.
    pub owner: bool,
}

/// A piece of a message: text, or an instant shown relative (`in 3 days`) inside a
/// `<time>` element whose title is the exact time.
#[derive(Debug, Clone)]
pub enum Part {
    /// Plain text (escaped when rendered).
    Text(String),
    /// An instant.
    Time(When),
}

/// A message banner: an error (`role="alert"`) or a confirmation (`role="status"`).
#[derive(Debug, Clone)]
pub struct Notice {
    /// Error (true) or success.
    pub error: bool,
    /// The message.
    pub parts: Vec<Part>,
}

impl Notice {
    /// An error banner.
    pub fn error(text: impl Into<String>) -> Notice {
        Notice {
            error: true,
            parts: vec![Part::Text(text.into())],
        }
    }

    /// A success banner.
    pub fn ok(text: impl Into<String>) -> Notice {
        Notice {
            error: false,
            parts: vec![Part::Text(text.into())],
        }
    }

    /// An error banner for a service error, its instants shown as human times.
    pub fn failure(e: &ApiError, now: OffsetDateTime) -> Notice {
        Notice {
            error: true,
            parts: humanize(&error_text(e), now),
        }
    }

    /// The message as plain text (relative times as shown).
    pub fn text(&self) -> String {
        self.parts
            .iter()
            .map(|p| match p {
                Part::Text(t) => t.as_str(),
                Part::Time(w) => w.relative.as_str(),
            })
            .collect()
    }
}

/// Splits `text` at every RFC 3339 instant in it (as the service writes them) into text
/// and human times.
pub fn humanize(text: &str, now: OffsetDateTime) -> Vec<Part> {
    let mut parts = Vec::new();
    let mut rest = text;
    while let Some((start, end, at)) = find_instant(rest) {
        if start > 0 {
            parts.push(Part::Text(rest[..start].to_owned()));
        }
        parts.push(Part::Time(when(at, now)));
        rest = &rest[end..];
    }
    if !rest.is_empty() {
        parts.push(Part::Text(rest.to_owned()));
    }
    parts
}

/// The first `YYYY-MM-DDTHH:MM:SS(.f)Z` in `text`: its byte range and value.
fn find_instant(text: &str) -> Option<(usize, usize, OffsetDateTime)> {
    let bytes = text.as_bytes();
    let mut from = 0;
    while let Some(offset) = text[from..].find('T') {
        let t = from + offset;
        from = t + 1;
        let Some(start) = t.checked_sub(10) else {
            continue;
        };
        let z = text[t..].find('Z').map(|z| t + z)?;
        if z - t > 16 || !text.is_char_boundary(start) || !bytes[start].is_ascii_digit() {
            continue;
        }
        let candidate = &text[start..=z];
        if let Ok(at) =
            OffsetDateTime::parse(candidate, &time::format_description::well_known::Rfc3339)
        {
            return Some((start, z + 1, at));
        }
    }
    None
}

/// A secret shown once, in the modal dialog every page can carry (token create and rotate;
/// anything else with a secret to show once, such as a webhook's signing secret).
#[derive(Clone)]
pub struct SecretDialog {
    /// The secret.
    pub secret: String,
    /// The dialog's heading (the name follows it).
    pub heading: String,
    /// What the secret belongs to.
    pub name: String,
    /// What it is: names the read-only field and says how Latchkey keeps it.
    pub kind: SecretKind,
    /// When it expires, if it does (said only for tokens).
    pub expires: Option<When>,
    /// A further note (a rotation's grace period).
    pub note: Vec<Part>,
}

/// What a show-once secret is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretKind {
    /// An API token (Latchkey keeps a keyed hash).
    Token,
    /// A webhook endpoint's signing secret (Latchkey keeps it encrypted, to sign with).
    SigningSecret,
    /// A recoverable token's secret shown again (Latchkey keeps it encrypted; every
    /// reveal is audited).
    RevealedToken,
}

impl SecretKind {
    /// The read-only field's label.
    pub fn label(self) -> &'static str {
        match self {
            SecretKind::Token | SecretKind::RevealedToken => "Token",
            SecretKind::SigningSecret => "Signing secret",
        }
    }

    /// The warning's first sentence.
    pub fn warning_lead(self) -> &'static str {
        match self {
            SecretKind::Token => "Copy this token now.",
            SecretKind::SigningSecret => "Copy this signing secret now.",
            SecretKind::RevealedToken => "Keep this token secret.",
        }
    }

    /// The rest of the warning.
    pub fn warning(self) -> &'static str {
        match self {
            SecretKind::Token => "It will not be shown again: Latchkey keeps only a hash of it.",
            SecretKind::RevealedToken => {
                "Latchkey keeps this token's secret encrypted so that it can be revealed \
                 again; every reveal is recorded in the audit log."
            }
            SecretKind::SigningSecret => {
                "It will not be shown again. Your receiver needs it to verify the \
                 webhook-signature header of every delivery."
            }
        }
    }

    /// Whether the dialog says when the secret expires.
    pub fn has_expiry(self) -> bool {
        matches!(self, SecretKind::Token | SecretKind::RevealedToken)
    }
}

impl std::fmt::Debug for SecretDialog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretDialog")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// What a page shows besides its own data: how the answer came about. A page handler
/// builds one ([`View::page`] for a plain visit, [`View::failed`] after a form failed,
/// [`View::shown`] with a secret) and hands it to the page's `render`.
#[derive(Debug, Clone, Default)]
pub struct View {
    /// The answer's status.
    pub status: StatusCode,
    /// The banner.
    pub notice: Option<Notice>,
    /// A secret to show once.
    pub secret: Option<SecretDialog>,
    /// What a failed form held, to fill it in again.
    pub sticky: Option<FormData>,
    /// The page's place (path and query), without the banner's parameters.
    pub here: String,
}

/// Query parameters that carry a [`Flash`]; a page's place leaves them out.
const FLASH_KEYS: [&str; 3] = ["done", "subject", "sig"];

impl View {
    /// A plain visit to `uri`: status 200, and the banner a redirect asked for.
    pub fn page(s: &SignedIn, uri: &Uri) -> View {
        View {
            notice: Flash::read(uri, &s.csrf),
            here: place_of(uri.path(), &query_list(uri)),
            ..View::default()
        }
    }

    /// A form sent from `form`'s page failed with `e`: the error's status and message, and
    /// the form filled in again.
    pub fn failed(state: &AppState, e: &ApiError, form: FormData) -> View {
        View {
            status: error_status(e),
            notice: Some(Notice::failure(e, state.clock.now())),
            here: form.back_or(""),
            sticky: Some(form),
            secret: None,
        }
    }

    /// An action sent from `back` failed with `e` (nothing to fill in again).
    pub fn refused(state: &AppState, e: &ApiError, back: String) -> View {
        View {
            status: error_status(e),
            notice: Some(Notice::failure(e, state.clock.now())),
            here: back,
            ..View::default()
        }
    }

    /// The page at `back` with a secret to show once and a banner.
    pub fn shown(back: String, secret: SecretDialog, notice: Notice) -> View {
        View {
            notice: Some(notice),
            secret: Some(secret),
            here: back,
            ..View::default()
        }
    }

    /// A field of the failed form, or "".
    pub fn field(&self, name: &str) -> &str {
        self.sticky.as_ref().and_then(|f| f.get(name)).unwrap_or("")
    }

    /// Every value of a repeated field of the failed form.
    pub fn fields(&self, name: &str) -> Vec<String> {
        self.sticky
            .as_ref()
            .map(|f| f.all(name))
            .unwrap_or_default()
    }

    /// The query of this page's place, as pairs.
    pub fn query(&self) -> HashMap<String, String> {
        match self.here.parse::<Uri>() {
            Ok(uri) => query_pairs(&uri),
            Err(_) => HashMap::new(),
        }
    }

    /// Renders `page` with this view's status, or the error page for `section`.
    pub fn respond<T: Template>(
        &self,
        s: &SignedIn,
        section: &'static str,
        page: Result<T, ApiError>,
    ) -> Response {
        match page {
            Ok(page) => html(self.status, &page),
            Err(e) => super::pages::error_page(s, section, &e),
        }
    }
}

fn query_list(uri: &Uri) -> Vec<(String, String)> {
    axum::extract::Query::<Vec<(String, String)>>::try_from_uri(uri)
        .map(|q| q.0)
        .unwrap_or_default()
}

/// `path?query` with the banner's parameters left out.
fn place_of(path: &str, pairs: &[(String, String)]) -> String {
    let query: Vec<String> = pairs
        .iter()
        .filter(|(k, _)| !FLASH_KEYS.contains(&k.as_str()))
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect();
    if query.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{}", query.join("&"))
    }
}

/// The banner a successful form leaves for the page it returns to: a fixed message by
/// `code`, naming what it acted on (`subject`), and the row to scroll to (`anchor`). The
/// subject travels in the redirect's query with an HMAC keyed by the session's CSRF
/// token, so a link made by somebody else cannot put their words on the page.
#[derive(Debug, Clone)]
pub struct Flash {
    code: &'static str,
    subject: Option<String>,
    anchor: Option<String>,
}

impl Flash {
    /// The banner `code` (see [`done_text`]).
    pub fn new(code: &'static str) -> Flash {
        Flash {
            code,
            subject: None,
            anchor: None,
        }
    }

    /// Names what was acted on.
    pub fn subject(mut self, subject: impl Into<String>) -> Flash {
        self.subject = Some(subject.into());
        self
    }

    /// The element id to scroll to.
    pub fn anchor(mut self, id: impl Into<String>) -> Flash {
        self.anchor = Some(id.into());
        self
    }

    /// `place` with this banner in its query and the anchor as fragment.
    pub fn location(&self, place: &str, key: &str) -> String {
        let place = place.split('#').next().unwrap_or(place);
        let (path, pairs) = match place.parse::<Uri>() {
            Ok(uri) => (uri.path().to_owned(), query_list(&uri)),
            Err(_) => ("/workspaces".to_owned(), Vec::new()),
        };
        let mut location = place_of(&path, &pairs);
        location.push(if location.contains('?') { '&' } else { '?' });
        location.push_str("done=");
        location.push_str(self.code);
        if let Some(subject) = &self.subject {
            location.push_str("&subject=");
            location.push_str(&encode(subject));
            location.push_str("&sig=");
            location.push_str(&flash_sig(key, self.code, subject));
        }
        if let Some(anchor) = &self.anchor {
            location.push('#');
            location.push_str(&encode(anchor));
        }
        location
    }

    /// The banner `uri` carries, if any; the subject only when its signature holds.
    pub fn read(uri: &Uri, key: &str) -> Option<Notice> {
        let query = query_pairs(uri);
        let code = query.get("done")?;
        let subject = match (query.get("subject"), query.get("sig")) {
            (Some(subject), Some(sig))
                if !key.is_empty()
                    && latchkey_core::hash::constant_time_eq(
                        sig.as_bytes(),
                        flash_sig(key, code, subject).as_bytes(),
                    ) =>
            {
                Some(subject.as_str())
            }
            _ => None,
        };
        done_text(code, subject).map(Notice::ok)
    }
}

fn flash_sig(key: &str, code: &str, subject: &str) -> String {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key.as_bytes()) else {
        return String::new();
    };
    mac.update(b"console flash v1\0");
    mac.update(code.as_bytes());
    mac.update(b"\0");
    mac.update(subject.as_bytes());
    hex::encode(&mac.finalize().into_bytes()[..16])
}

/// The banner for `?done=…`: fixed texts, naming `subject` when there is one.
pub fn done_text(code: &str, subject: Option<&str>) -> Option<String> {
    let named = |what: &str, verb: &str, tail: &str| match subject {
        Some(n) => format!("{what} “{n}” {verb}.{tail}"),
        None => format!("{what} {verb}.{tail}"),
    };
    let role = || match subject {
        Some(n) => format!("Role of “{n}” changed."),
        None => "Role changed.".to_owned(),
    };
    Some(match code {
        "revoked" => named("Token", "revoked", " It stops working at once."),
        "restored" => named("Token", "restored", " It works again."),
        "approved" => named("Token", "approved", " It works from now on."),
        "denied" => named("Token", "denied", " It will never work."),
        "deleted" => named("Token", "deleted", ""),
        "policy-saved" => named("Policy of token", "saved", " It applies from the next use."),
        "workspace" => named("Workspace", "created", ""),
        "project" => named("Project", "created", ""),
        "member-added" => named("Member", "added", ""),
        "member-role" | "user-role" => role(),
        "member-removed" => named("Member", "removed", ""),
        "user-created" => named("User", "created", ""),
        "deactivated" => named(
            "User",
            "deactivated",
            " Their sessions and tokens stopped working.",
        ),
        "reactivated" => named("User", "reactivated", ""),
        "service-created" => named(
            "Service account",
            "created",
            " Add it to a workspace (Members), then create its tokens here.",
        ),
        "service-deactivated" => named(
            "Service account",
            "deactivated",
            " Its tokens stopped working, on every node.",
        ),
        "service-reactivated" => named(
            "Service account",
            "reactivated",
            " Its tokens that were not revoked or expired work again.",
        ),
        "webhook-test" => match subject {
            Some(n) => format!("Test message queued for “{n}”. It shows below once sent."),
            None => "Test message queued. It shows below once sent.".to_owned(),
        },
        "webhook-paused" => named("Webhook", "paused", " No new messages are queued for it."),
        "webhook-resumed" => named("Webhook", "resumed", ""),
        "webhook-updated" => named("Webhook", "saved", ""),
        "webhook-deleted" => named("Webhook", "deleted", ""),
        "redelivered" => match subject {
            Some(n) => format!("Delivery of {n} queued again."),
            None => "Delivery queued again.".to_owned(),
        },
        "saved" => "Settings saved. They apply from the next request.".to_owned(),
        // The subject is the whole outcome (what was revoked, what skipped and why), signed
        // like every subject; without a good signature only the fixed text shows.
        "bulk-revoked" => subject
            .map(str::to_owned)
            .unwrap_or_else(|| "The selected tokens were handled.".to_owned()),
        _ => return None,
    })
}

/// One option of a select, checkbox group or radio group.
#[derive(Debug, Clone)]
pub struct Choice {
    /// Submitted value.
    pub value: String,
    /// What a person reads.
    pub label: String,
    /// Pre-selected.
    pub selected: bool,
}

impl Choice {
    /// A choice.
    pub fn new(value: impl Into<String>, label: impl Into<String>, selected: bool) -> Choice {
        Choice {
            value: value.into(),
            label: label.into(),
            selected,
        }
    }
}

/// One choice per role in `roles` (value and label its wire name), `chosen` selected: a
/// role `<select>`.
pub fn role_choices<R: Copy + PartialEq>(
    roles: impl IntoIterator<Item = R>,
    name: fn(R) -> &'static str,
    chosen: R,
) -> Vec<Choice> {
    roles
        .into_iter()
        .map(|r| Choice::new(name(r), name(r), r == chosen))
        .collect()
}

/// Options grouped under a label (`<optgroup>`).
#[derive(Debug, Clone)]
pub struct ChoiceGroup {
    /// The group's label.
    pub label: String,
    /// Its options.
    pub choices: Vec<Choice>,
}

/// An instant as the console shows it: relative text, the exact time as a tooltip, and the
/// machine-readable value for `<time datetime>`.
#[derive(Debug, Clone)]
pub struct When {
    /// RFC 3339.
    pub iso: String,
    /// `2027-08-22 10:00:00 UTC`.
    pub exact: String,
    /// `in 269 days`, `3 hours ago`, `just now`.
    pub relative: String,
}

/// Formats `at` relative to `now`.
pub fn when(at: OffsetDateTime, now: OffsetDateTime) -> When {
    let iso = at
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let exact = format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    );
    When {
        iso,
        exact,
        relative: relative(at, now),
    }
}

/// `when` for an optional instant.
pub fn when_opt(at: Option<OffsetDateTime>, now: OffsetDateTime) -> Option<When> {
    at.map(|t| when(t, now))
}

fn relative(at: OffsetDateTime, now: OffsetDateTime) -> String {
    let secs = (at - now).whole_seconds();
    let future = secs > 0;
    let abs = secs.unsigned_abs();
    if abs < 60 {
        return "just now".into();
    }
    let (n, unit) = if abs < 3600 {
        (abs / 60, "minute")
    } else if abs < 86_400 {
        (abs / 3600, "hour")
    } else if abs < 2 * 365 * 86_400 {
        // Rounded: a token made "just now" for 90 days expires "in 90 days".
        ((abs + 43_200) / 86_400, "day")
    } else {
        (abs / (365 * 86_400), "year")
    };
    let unit = if n == 1 {
        unit.to_owned()
    } else {
        format!("{unit}s")
    };
    if future {
        format!("in {n} {unit}")
    } else {
        format!("{n} {unit} ago")
    }
}

/// A rendered page with the console's headers (`Cache-Control: no-store`: pages carry CSRF
/// tokens, and some carry a secret).
pub fn html(status: StatusCode, page: &impl Template) -> Response {
    match page.render() {
        Ok(body) => {
            let mut response = (status, body).into_response();
            let headers = response.headers_mut();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            );
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        }
        Err(e) => {
            tracing::error!(error = %e, "console template failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                "The page could not be rendered; see the server log.",
            )
                .into_response()
        }
    }
}

/// A `303 See Other` to a console path.
pub fn see_other(location: &str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

/// A person-readable name for a form field the service named.
fn field_label(field: &str) -> &str {
    match field {
        "name" => "Name",
        "type" => "Type",
        "scopes" => "Scopes",
        "projects" => "Projects",
        "environment" => "Environment",
        "expires_in_days" => "Expires in (days)",
        "expires_at" => "Expiry",
        "expiry" => "Expiration",
        "workspace" => "Workspace",
        "owner_id" | "owner" => "Owner",
        "created_before" => "Created before",
        "expires_before" => "Expires before",
        "last_used_before" => "Last used before",
        "ids" => "Revoke selected",
        "grace_seconds" => "Grace period",
        "metadata" => "Metadata (JSON)",
        "allowed_ips" => "Allowed IPs",
        "rate_limit" | "rate_limit.limit" => "Rate limit (uses)",
        "rate_limit.window_secs" => "Window (seconds)",
        "remaining_uses" => "Remaining uses",
        "refill" | "refill.interval" => "Refill",
        "refill.amount" => "Refill amount",
        "username" => "Username",
        "password" => "Password",
        "email" => "Email",
        "display_name" => "Display name",
        "personal_token_ttl_days" => "Personal access token TTL (days)",
        "max_tokens_per_user" => "Max tokens per user",
        "idle_revoke_days" => "Revoke tokens unused for (days)",
        "max_token_lifetime_days" => "Maximum token lifetime (days)",
        "max_active_tokens" => "Max active tokens",
        "default_token_lifetime_days" => "Default token lifetime (days)",
        "url" => "Endpoint URL",
        "events" => "Events",
        "description" => "Description",
        "since" => "From",
        "until" => "Until",
        "cursor" => "Page",
        "limit" => "Page size",
        other => other,
    }
}

fn limit_label(limit: &str) -> &str {
    match limit {
        "max_tokens_per_user" => "Max tokens per user",
        "max_active_tokens" => "Max active tokens (for the whole instance)",
        other => other,
    }
}

fn capitalize(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// A readable message for a service error, as the console's banner shows it.
pub fn error_text(e: &ApiError) -> String {
    match e {
        ApiError::Unauthenticated { .. } => "Your session has ended. Sign in again.".into(),
        ApiError::Forbidden(m) | ApiError::TokenTypeNotAllowed(m) => {
            format!("Not allowed: {m}.")
        }
        ApiError::NotFound(what) => format!("{} not found.", capitalize(what)),
        ApiError::LimitExceeded { limit, value } => format!(
            "Limit reached: {} is {value}. Revoke or delete a token first, or ask an \
             administrator to raise the limit.",
            limit_label(limit)
        ),
        ApiError::InvalidField { field, message } => {
            format!("{}: {}.", field_label(field), capitalize(message))
        }
        ApiError::RateLimited { retry_after } => {
            format!("Too many attempts. Try again in {retry_after} seconds.")
        }
        ApiError::Internal(_) => "Something went wrong on the server; see the server log.".into(),
        ApiError::PayloadTooLarge(_) => "The form is too large.".into(),
        // "… ends at <instant>": the banner shows the instant as "in 270 days".
        ApiError::LifetimeExceedsPolicy { message, .. } => {
            format!("{}.", capitalize(&message.replace(" ends at ", " ends ")))
        }
        other => format!("{}.", capitalize(&other.to_string())),
    }
    .replace("..", ".")
}

/// The status a failed form answers with.
pub fn error_status(e: &ApiError) -> StatusCode {
    e.status_and_code().0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_times_read_naturally() {
        let now = latchkey_core::from_unix(1_800_000_000);
        let rel = |secs: i64| relative(now + time::Duration::seconds(secs), now);
        assert_eq!(rel(0), "just now");
        assert_eq!(rel(-30), "just now");
        assert_eq!(rel(90), "in 1 minute");
        assert_eq!(rel(-7200), "2 hours ago");
        assert_eq!(rel(270 * 86_400 - 5), "in 270 days");
        assert_eq!(rel(-(86_400 + 43_199)), "1 day ago");
        assert_eq!(rel(-(86_400 + 43_200)), "2 days ago");
        assert_eq!(rel(-86_400), "1 day ago");
        assert_eq!(rel(3 * 365 * 86_400), "in 3 years");
    }

    #[test]
    fn instants_in_messages_become_human_times() {
        let now = latchkey_core::from_unix(1_800_000_000);
        let parts = humanize(
            "ends at 2027-01-18T08:00:00Z, then T-Z and 2027-01-15T08:00:00Z",
            now,
        );
        let shown: Vec<String> = parts
            .iter()
            .map(|p| match p {
                Part::Text(t) => t.clone(),
                Part::Time(w) => format!("<{}|{}>", w.relative, w.iso),
            })
            .collect();
        assert_eq!(
            shown,
            [
                "ends at ",
                "<in 3 days|2027-01-18T08:00:00Z>",
                ", then T-Z and ",
                "<just now|2027-01-15T08:00:00Z>",
            ]
        );
        assert!(matches!(
            humanize("no times", now).as_slice(),
            [Part::Text(_)]
        ));
        assert!(humanize("", now).is_empty());
        let e = ApiError::LifetimeExceedsPolicy {
            field: "expires_in_days",
            message: "the longest lifetime allowed here ends at 2027-01-18T08:00:00Z".into(),
        };
        assert_eq!(
            Notice::failure(&e, now).text(),
            "The longest lifetime allowed here ends in 3 days."
        );
    }

    #[test]
    fn flash_names_the_subject_only_when_signed_for_this_session() {
        let key = "session-csrf";
        let flash = Flash::new("revoked").subject("ci & <b>").anchor("token-1");
        let location = flash.location("/account?q=ci&done=deleted&page=2#old", key);
        assert!(
            location
                .starts_with("/account?q=ci&page=2&done=revoked&subject=ci%20%26%20%3Cb%3E&sig=")
        );
        assert!(location.ends_with("#token-1"));
        let uri: Uri = location
            .split('#')
            .next()
            .unwrap_or("")
            .parse()
            .unwrap_or_default();
        let text = |uri: &Uri, key: &str| Flash::read(uri, key).map(|n| n.text());
        assert_eq!(
            text(&uri, key).as_deref(),
            Some("Token “ci & <b>” revoked. It stops working at once.")
        );
        // Another session, or a changed subject: the fixed text without the name.
        assert_eq!(
            text(&uri, "other").as_deref(),
            Some("Token revoked. It stops working at once.")
        );
        let forged: Uri = uri
            .to_string()
            .replace("subject=ci", "subject=evil")
            .parse()
            .unwrap_or_default();
        assert_eq!(
            text(&forged, key).as_deref(),
            Some("Token revoked. It stops working at once.")
        );
        let unknown: Uri = "/account?done=anything".parse().unwrap_or_default();
        assert_eq!(text(&unknown, key), None);
    }

    #[test]
    fn errors_read_as_sentences() {
        let e = ApiError::LimitExceeded {
            limit: "max_tokens_per_user",
            value: 10,
        };
        assert!(error_text(&e).starts_with("Limit reached: Max tokens per user is 10."));
        let e = ApiError::field("name", "name must not be empty");
        assert_eq!(error_text(&e), "Name: Name must not be empty.");
        let e = ApiError::forbidden("personal tokens are disabled in this organization");
        assert_eq!(
            error_text(&e),
            "Not allowed: personal tokens are disabled in this organization."
        );
        assert_eq!(error_text(&ApiError::NotFound("token")), "Token not found.");
    }
}
