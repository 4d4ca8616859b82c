//! Rendering: the page chrome shared by every template, HTML responses, readable messages
//! for service errors, and times shown relative with the exact instant alongside.

use askama::Template;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use time::OffsetDateTime;

use crate::error::ApiError;

/// What every page's layout needs: title, who is signed in, the CSRF token, the banner.
#[derive(Debug, Clone, Default)]
pub struct Chrome {
    /// The page title (before " · Latchkey").
    pub title: String,
    /// The signed-in user, for the navigation.
    pub user: Option<NavUser>,
    /// The CSRF token for forms on this page.
    pub csrf: String,
    /// Which top-level section is current (`workspaces`, `organization`, `api-access`,
    /// `account`), for `aria-current`.
    pub section: &'static str,
    /// A banner at the top of the page.
    pub notice: Option<Notice>,
    /// Cache-busting version of the assets.
    pub asset_version: &'static str,
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

/// A message banner: an error (`role="alert"`) or a confirmation (`role="status"`).
#[derive(Debug, Clone)]
pub struct Notice {
    /// Error (true) or success.
    pub error: bool,
    /// The text (escaped when rendered).
    pub text: String,
}

impl Notice {
    /// An error banner.
    pub fn error(text: impl Into<String>) -> Notice {
        Notice {
            error: true,
            text: text.into(),
        }
    }

    /// A success banner.
    pub fn ok(text: impl Into<String>) -> Notice {
        Notice {
            error: false,
            text: text.into(),
        }
    }
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
        (abs / 86_400, "day")
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
        "owner_id" => "Owner",
        "grace_seconds" => "Grace period",
        "username" => "Username",
        "password" => "Password",
        "email" => "Email",
        "display_name" => "Display name",
        "personal_token_ttl_days" => "Personal access token TTL (days)",
        "max_tokens_per_user" => "Max tokens per user",
        "max_active_tokens" => "Max active tokens",
        "default_token_lifetime_days" => "Default token lifetime (days)",
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
        assert_eq!(rel(270 * 86_400 - 5), "in 269 days");
        assert_eq!(rel(-86_400), "1 day ago");
        assert_eq!(rel(3 * 365 * 86_400), "in 3 years");
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
