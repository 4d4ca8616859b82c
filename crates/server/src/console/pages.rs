//! Shared page pieces: the message page, and how a page that cannot be shown is answered.

use askama::Template;
use axum::http::StatusCode;
use axum::response::Response;

use super::extract::SignedIn;
use super::render::{Chrome, View, error_status, error_text, html};
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
pub fn error_page(s: &SignedIn, section: &'static str, e: &ApiError) -> Response {
    let heading = match e {
        ApiError::Forbidden(_) | ApiError::TokenTypeNotAllowed(_) => "Not allowed",
        ApiError::NotFound(_) => "Not found",
        ApiError::Unavailable(_) => "Unavailable",
        _ => "Something went wrong",
    };
    let page = MessagePage {
        c: s.chrome(heading, section, &View::default()),
        heading: heading.to_owned(),
        message: error_text(e),
    };
    html(error_status(e), &page)
}

/// The 403 page for the organization's pages.
pub fn org_admins_only(s: &SignedIn, section: &'static str) -> Response {
    error_page(
        s,
        section,
        &ApiError::forbidden("only organization admins can open this page"),
    )
}

/// A bare message page (no navigation), for failures before a session is known.
pub fn message_page(status: StatusCode, heading: &str, message: &str) -> Response {
    let page = MessagePage {
        c: Chrome {
            title: heading.to_owned(),
            asset_version: super::assets::version(),
            ..Chrome::default()
        },
        heading: heading.to_owned(),
        message: message.to_owned(),
    };
    html(status, &page)
}
