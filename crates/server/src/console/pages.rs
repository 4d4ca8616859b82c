//! Shared page pieces: the message page, how a failed page load is shown, and the banners
//! that follow a redirect after a successful form.

use askama::Template;
use axum::http::Uri;
use axum::response::Response;

use super::render::{Chrome, Notice, error_status, error_text, html};
use super::session::{Session, query_pairs};
use crate::error::ApiError;

/// A page with a heading and one message (errors, refusals).
#[derive(Template)]
#[template(path = "message.html")]
pub struct MessagePage {
    /// Layout.
    pub c: Chrome,
    /// Heading.
    pub heading: String,
    /// Message.
    pub message: String,
}

/// The page shown when a page cannot be shown: the error as a readable message, with the
/// navigation, and the error's status (403, 404, …).
pub fn error_page(s: &Session, section: &'static str, e: &ApiError) -> Response {
    let heading = match e {
        ApiError::Forbidden(_) | ApiError::TokenTypeNotAllowed(_) => "Not allowed",
        ApiError::NotFound(_) => "Not found",
        ApiError::Unavailable(_) => "Unavailable",
        _ => "Something went wrong",
    };
    let page = MessagePage {
        c: s.chrome(heading, section),
        heading: heading.to_owned(),
        message: error_text(e),
    };
    html(error_status(e), &page)
}

/// The 403 page for the organization's pages.
pub fn org_admins_only(s: &Session, section: &'static str) -> Response {
    error_page(
        s,
        section,
        &ApiError::forbidden("only organization admins can open this page"),
    )
}

/// The banner for `?done=…` after a form redirected back: fixed texts only, so the query
/// cannot put words on the page.
pub fn done_notice(uri: &Uri) -> Option<Notice> {
    let text = match query_pairs(uri).get("done").map(String::as_str)? {
        "revoked" => "Token revoked. It stops working at once.",
        "restored" => "Token restored. It works again.",
        "deleted" => "Token deleted.",
        "workspace" => "Workspace created.",
        "project" => "Project created.",
        "member-added" => "Member added.",
        "member-role" => "Role changed.",
        "member-removed" => "Member removed.",
        "user-created" => "User created.",
        "user-role" => "Role changed.",
        "deactivated" => "User deactivated. Their sessions and tokens stopped working.",
        "reactivated" => "User reactivated.",
        "saved" => "Settings saved. They apply from the next request.",
        _ => return None,
    };
    Some(Notice::ok(text))
}
