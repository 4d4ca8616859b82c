//! The console's stylesheet and script, compiled into the binary and served with long cache
//! lifetimes; pages link them with a content hash in the query so upgrades are picked up.

use std::sync::LazyLock;

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

const APP_CSS: &str = include_str!("../../assets/app.css");
const APP_JS: &str = include_str!("../../assets/app.js");

static VERSION: LazyLock<String> = LazyLock::new(|| {
    // FNV-1a over both files: enough to tell one build's assets from another's.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in APP_CSS.bytes().chain(APP_JS.bytes()) {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{hash:016x}")
});

/// The assets' version, for `?v=` in links.
pub fn version() -> &'static str {
    VERSION.as_str()
}

fn asset(body: &'static str, content_type: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    response
}

/// `GET /assets/app.css`.
pub async fn css() -> Response {
    asset(APP_CSS, "text/css; charset=utf-8")
}

/// `GET /assets/app.js`.
pub async fn js() -> Response {
    asset(APP_JS, "text/javascript; charset=utf-8")
}
