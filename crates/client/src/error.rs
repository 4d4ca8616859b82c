//! The SDK's one error type, and how a server's error body becomes one.
//!
//! Nothing here ever holds a token's secret: server messages never contain one (DESIGN.md
//! §3), and every text this module copies from a response is passed through
//! [`redact_secrets`] first, in case a proxy or a decoding error echoes one back.

use std::borrow::Cow;

use latchkey_proto::ErrorCode;
use serde_json::Value;

/// The code given to an error response whose body is not Latchkey's `{"error": {...}}`
/// shape (a proxy's error page, a 503 from `/readyz`, ...).
pub const UNKNOWN_CODE: &str = "unknown";

/// How much of a non-JSON error body is kept as the message.
const MAX_BODY_SNIPPET: usize = 200;

/// Everything that can go wrong calling Latchkey.
///
/// ```no_run
/// # async fn run(client: &latchkey_client::Client) -> Result<(), latchkey_client::Error> {
/// match client.tokens().get("0197f0c4-0000-7000-8000-000000000000").await {
///     Ok(token) => println!("{} is {:?}", token.name, token.state),
///     Err(e) if e.is_not_found() => println!("no such token"),
///     Err(e) => return Err(e),
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The server answered with an error status. `code` is the server's stable error code
    /// (see [`ErrorCode`]), or [`UNKNOWN_CODE`] when the body was not Latchkey's error shape.
    #[error("{}", api_display(*status, code, message, field.as_deref(), limit.as_deref()))]
    Api {
        /// HTTP status.
        status: u16,
        /// Stable machine-readable code (`not_found`, `limit_exceeded`, ...), kept as the
        /// server sent it so codes newer than this SDK survive; see [`Error::error_code`].
        code: String,
        /// Human-readable explanation.
        message: String,
        /// For `invalid_field`: the field's name.
        field: Option<String>,
        /// For `limit_exceeded`: the setting that was hit.
        limit: Option<String>,
        /// For 429 (and 503): `Retry-After`, and for a token over its own `rate_limit` the
        /// `RateLimit-Limit` / `-Remaining` / `-Reset` headers; see [`Error::retry_after`].
        rate_limit: Option<Box<RateLimitStatus>>,
    },
    /// The request did not complete: connection refused, TLS, timeout, a request that could
    /// not be built, or a body that could not be read.
    #[error("request to Latchkey failed: {0}")]
    Transport(#[from] reqwest::Error),
    /// The server answered with a success status but a body this SDK cannot read.
    #[error("cannot decode Latchkey's answer (HTTP {status}): {message}")]
    Decode {
        /// HTTP status of the answer.
        status: u16,
        /// What did not match (secrets redacted).
        message: String,
    },
    /// The base URL is not usable.
    #[error("invalid Latchkey URL: {0}")]
    InvalidUrl(String),
    /// A required environment variable is not set (see [`crate::Client::from_env`]).
    #[error("environment variable {0} is not set (or empty)")]
    MissingEnv(&'static str),
}

fn api_display(
    status: u16,
    code: &str,
    message: &str,
    field: Option<&str>,
    limit: Option<&str>,
) -> String {
    let mut out = format!("HTTP {status} {code}: {message}");
    if let Some(field) = field {
        out.push_str(&format!(" (field: {field})"));
    }
    if let Some(limit) = limit {
        out.push_str(&format!(" (limit: {limit})"));
    }
    out
}

impl Error {
    /// Builds [`Error::Api`] from an error response's status and body. Latchkey's
    /// `{"error": {"code", "message", "field"?, "limit"?}}` is read field by field (so an
    /// unknown code or an extra field still parses); any other body gives the code
    /// [`UNKNOWN_CODE`] and, as message, the start of the body or the status's reason.
    pub fn from_response(status: u16, body: &[u8]) -> Error {
        Error::from_parts(status, None, body)
    }

    /// [`Error::from_response`] that also reads `Retry-After` and the `RateLimit-*`
    /// headers (see [`Error::rate_limit`]).
    pub fn from_response_with_headers(
        status: u16,
        headers: &reqwest::header::HeaderMap,
        body: &[u8],
    ) -> Error {
        Error::from_parts(status, RateLimitStatus::from_headers(headers), body)
    }

    fn from_parts(status: u16, rate_limit: Option<RateLimitStatus>, body: &[u8]) -> Error {
        if let Some(mut err) = parse_error_body(status, body) {
            if let Error::Api { rate_limit: rl, .. } = &mut err {
                *rl = rate_limit.map(Box::new);
            }
            return err;
        }
        let text = String::from_utf8_lossy(body);
        let text = text.trim();
        let message = if text.is_empty() {
            reqwest::StatusCode::from_u16(status)
                .ok()
                .and_then(|s| s.canonical_reason())
                .unwrap_or("error")
                .to_owned()
        } else {
            let snippet: String = text.chars().take(MAX_BODY_SNIPPET).collect();
            redact_secrets(&snippet).into_owned()
        };
        Error::Api {
            status,
            code: UNKNOWN_CODE.to_owned(),
            message,
            field: None,
            limit: None,
            rate_limit: rate_limit.map(Box::new),
        }
    }

    /// Builds [`Error::Decode`] from a JSON error, redacting anything that looks like a secret.
    pub(crate) fn decode(status: u16, err: &serde_json::Error) -> Error {
        Error::Decode {
            status,
            message: redact_secrets(&err.to_string()).into_owned(),
        }
    }

    /// The HTTP status, when there was an answer.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Api { status, .. } | Error::Decode { status, .. } => Some(*status),
            Error::Transport(e) => e.status().map(|s| s.as_u16()),
            Error::InvalidUrl(_) | Error::MissingEnv(_) => None,
        }
    }

    /// The server's error code as sent (`"not_found"`, ...), for [`Error::Api`] only.
    pub fn code(&self) -> Option<&str> {
        match self {
            Error::Api { code, .. } => Some(code),
            _ => None,
        }
    }

    /// The server's error code as an [`ErrorCode`], when it is one this SDK knows.
    pub fn error_code(&self) -> Option<ErrorCode> {
        self.code()
            .and_then(|c| serde_json::from_value(Value::String(c.to_owned())).ok())
    }

    /// The server's message, for [`Error::Api`] only.
    pub fn message(&self) -> Option<&str> {
        match self {
            Error::Api { message, .. } => Some(message),
            _ => None,
        }
    }

    /// The invalid field's name, for `invalid_field` errors.
    pub fn field(&self) -> Option<&str> {
        match self {
            Error::Api { field, .. } => field.as_deref(),
            _ => None,
        }
    }

    /// The limit that was hit, for `limit_exceeded` errors.
    pub fn limit(&self) -> Option<&str> {
        match self {
            Error::Api { limit, .. } => limit.as_deref(),
            _ => None,
        }
    }

    /// What the answer said about rate limiting: `Retry-After` and the `RateLimit-*`
    /// headers, when it carried any (a token over its own `rate_limit` gets all four).
    pub fn rate_limit(&self) -> Option<&RateLimitStatus> {
        match self {
            Error::Api { rate_limit, .. } => rate_limit.as_deref(),
            _ => None,
        }
    }

    /// How long the server asked to wait before trying again (`Retry-After`, in seconds).
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        self.rate_limit()
            .and_then(|r| r.retry_after)
            .map(std::time::Duration::from_secs)
    }

    fn api_status(&self) -> Option<u16> {
        match self {
            Error::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// 400: the request was malformed.
    pub fn is_bad_request(&self) -> bool {
        self.api_status() == Some(400)
    }

    /// 401: no credentials, or credentials that are not accepted.
    pub fn is_unauthenticated(&self) -> bool {
        self.api_status() == Some(401)
    }

    /// 403: authenticated, but not allowed.
    pub fn is_forbidden(&self) -> bool {
        self.api_status() == Some(403)
    }

    /// 404: no such object, or not visible to the caller.
    pub fn is_not_found(&self) -> bool {
        self.api_status() == Some(404)
    }

    /// 409: a conflict or a limit.
    pub fn is_conflict(&self) -> bool {
        self.api_status() == Some(409)
    }

    /// 422: a missing or invalid field, or a policy the request breaks.
    pub fn is_unprocessable(&self) -> bool {
        self.api_status() == Some(422)
    }

    /// 429: throttled, or the token is over its own `rate_limit` (see
    /// [`Error::retry_after`] and [`Error::rate_limit`]).
    pub fn is_rate_limited(&self) -> bool {
        self.api_status() == Some(429)
    }

    /// Code `limit_exceeded` (409, with [`Error::limit`] naming the setting).
    pub fn is_limit_exceeded(&self) -> bool {
        self.code() == Some(ErrorCode::LimitExceeded.as_str())
    }

    /// Code `invalid_field` (422, with [`Error::field`] naming the field).
    pub fn is_invalid_field(&self) -> bool {
        self.code() == Some(ErrorCode::InvalidField.as_str())
    }

    /// The request timed out.
    pub fn is_timeout(&self) -> bool {
        matches!(self, Error::Transport(e) if e.is_timeout())
    }

    /// The server could not be reached.
    pub fn is_connect(&self) -> bool {
        matches!(self, Error::Transport(e) if e.is_connect())
    }
}

/// Where a rate-limited token stands, from an answer's headers (DESIGN.md §8):
/// `RateLimit-Limit`, `RateLimit-Remaining`, `RateLimit-Reset` (seconds until the window
/// ends) and `Retry-After` (seconds; given once the limit is reached). Each is `None` when
/// its header is missing or not a whole number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RateLimitStatus {
    /// `RateLimit-Limit`: uses per window.
    pub limit: Option<u64>,
    /// `RateLimit-Remaining`: uses left in this window.
    pub remaining: Option<u64>,
    /// `RateLimit-Reset`: seconds until the window ends.
    pub reset: Option<u64>,
    /// `Retry-After`: seconds to wait before trying again.
    pub retry_after: Option<u64>,
}

impl RateLimitStatus {
    /// The status in `headers`; `None` when none of the four headers is there.
    pub fn from_headers(headers: &reqwest::header::HeaderMap) -> Option<RateLimitStatus> {
        let number =
            |name: &str| -> Option<u64> { headers.get(name)?.to_str().ok()?.trim().parse().ok() };
        let status = RateLimitStatus {
            limit: number("ratelimit-limit"),
            remaining: number("ratelimit-remaining"),
            reset: number("ratelimit-reset"),
            retry_after: number("retry-after"),
        };
        (status != RateLimitStatus::default()).then_some(status)
    }
}

/// Reads Latchkey's error shape leniently; `None` when the body is something else.
fn parse_error_body(status: u16, body: &[u8]) -> Option<Error> {
    let value: Value = serde_json::from_slice(body).ok()?;
    let detail = value.get("error")?.as_object()?;
    let code = detail.get("code")?.as_str()?.to_owned();
    let text = |key: &str| detail.get(key).and_then(Value::as_str);
    Some(Error::Api {
        status,
        code,
        message: redact_secrets(text("message").unwrap_or_default()).into_owned(),
        field: text("field").map(str::to_owned),
        limit: text("limit").map(str::to_owned),
        rate_limit: None,
    })
}

/// The token prefixes of DESIGN.md §2, each with what replaces such a token.
const TOKEN_PREFIXES: [(&str, &str); 5] = [
    ("lkp_", "lkp_<redacted>"),
    ("lkl_", "lkl_<redacted>"),
    ("lkc_", "lkc_<redacted>"),
    ("lkf_", "lkf_<redacted>"),
    ("lka_", "lka_<redacted>"),
];

/// Shortest run of base62 characters after a prefix that is treated as a secret (the
/// 32 random characters; a full token has 38).
const MIN_SECRET_BODY: usize = 32;

/// Replaces anything that looks like a Latchkey token (`lkp_` + 32 or more base62
/// characters, and any `[0-9A-Za-z_]` run after them) or a JWT (`eyJ…`.`…`.`…`) with a
/// redaction mark. Borrowed when there is nothing to redact.
pub fn redact_secrets(text: &str) -> Cow<'_, str> {
    let mut out = String::new();
    let mut copied = 0; // bytes of `text` already accounted for in `out`
    let mut i = 0;
    let bytes = text.as_bytes();
    while i < bytes.len() {
        if let Some((len, mark)) = secret_at(&text[i..]) {
            out.push_str(&text[copied..i]);
            out.push_str(mark);
            i += len;
            copied = i;
        } else {
            // Advance one whole character to stay on a char boundary.
            i += text[i..].chars().next().map_or(1, char::len_utf8);
        }
    }
    if copied == 0 {
        return Cow::Borrowed(text);
    }
    out.push_str(&text[copied..]);
    Cow::Owned(out)
}

/// The byte length of the secret starting at the beginning of `s`, if one does, and the
/// mark to put in its place.
fn secret_at(s: &str) -> Option<(usize, &'static str)> {
    if let Some(mark) = TOKEN_PREFIXES
        .iter()
        .find_map(|(p, mark)| s.starts_with(p).then_some(*mark))
    {
        // Greedy over `_` too, so tokens run together are hidden whole.
        let body = s[4..]
            .bytes()
            .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_')
            .count();
        return (body >= MIN_SECRET_BODY).then_some((4 + body, mark));
    }
    if s.starts_with("eyJ") {
        let is_b64url = |b: &u8| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_';
        let mut len = 0;
        for part in 0..3 {
            if part > 0 {
                if s.as_bytes().get(len) != Some(&b'.') {
                    return None;
                }
                len += 1;
            }
            let run = s.as_bytes()[len..]
                .iter()
                .take_while(|b| is_b64url(b))
                .count();
            // The header and payload are never empty; the signature may be (alg none).
            if run == 0 && part < 2 {
                return None;
            }
            len += run;
        }
        return Some((len, "<redacted jwt>"));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_latchkey_error_body() {
        let body = br#"{"error":{"code":"limit_exceeded","message":"too many tokens","limit":"max_tokens_per_user"}}"#;
        let err = Error::from_response(409, body);
        assert_eq!(err.status(), Some(409));
        assert_eq!(err.code(), Some("limit_exceeded"));
        assert_eq!(err.error_code(), Some(ErrorCode::LimitExceeded));
        assert_eq!(err.message(), Some("too many tokens"));
        assert_eq!(err.limit(), Some("max_tokens_per_user"));
        assert_eq!(err.field(), None);
        assert!(err.is_conflict());
        assert!(err.is_limit_exceeded());
        assert!(!err.is_not_found());
        assert_eq!(
            err.to_string(),
            "HTTP 409 limit_exceeded: too many tokens (limit: max_tokens_per_user)"
        );
    }

    #[test]
    fn parses_field_and_unknown_codes_and_extra_keys() {
        let body =
            br#"{"error":{"code":"invalid_field","message":"bad","field":"name","extra":1}}"#;
        let err = Error::from_response(422, body);
        assert!(err.is_invalid_field());
        assert!(err.is_unprocessable());
        assert_eq!(err.field(), Some("name"));

        let err = Error::from_response(418, br#"{"error":{"code":"teapot","message":"short"}}"#);
        assert_eq!(err.code(), Some("teapot"));
        assert_eq!(err.error_code(), None);

        // No message at all still parses.
        let err = Error::from_response(404, br#"{"error":{"code":"not_found"}}"#);
        assert!(err.is_not_found());
        assert_eq!(err.message(), Some(""));
    }

    #[test]
    fn rate_limit_headers() {
        use reqwest::header::{HeaderMap, HeaderValue};
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("retry-after", "17"),
            ("ratelimit-limit", "100"),
            ("ratelimit-remaining", "0"),
            ("ratelimit-reset", " 17 "),
        ] {
            headers.insert(name, HeaderValue::from_static(value));
        }
        let body = br#"{"error":{"code":"rate_limited","message":"over the token's rate limit"}}"#;
        let err = Error::from_response_with_headers(429, &headers, body);
        assert!(err.is_rate_limited());
        assert_eq!(err.retry_after(), Some(std::time::Duration::from_secs(17)));
        assert_eq!(
            err.rate_limit().copied(),
            Some(RateLimitStatus {
                limit: Some(100),
                remaining: Some(0),
                reset: Some(17),
                retry_after: Some(17),
            })
        );
        // Only Retry-After (a throttle), unreadable values, or nothing at all.
        let mut throttle = HeaderMap::new();
        throttle.insert("retry-after", HeaderValue::from_static("3"));
        throttle.insert("ratelimit-limit", HeaderValue::from_static("many"));
        let err = Error::from_response_with_headers(429, &throttle, b"");
        assert_eq!(err.code(), Some(UNKNOWN_CODE));
        assert_eq!(err.rate_limit().and_then(|r| r.limit), None);
        assert_eq!(err.retry_after(), Some(std::time::Duration::from_secs(3)));
        assert_eq!(RateLimitStatus::from_headers(&HeaderMap::new()), None);
        assert_eq!(Error::from_response(429, body).rate_limit(), None);
    }

    #[test]
    fn other_bodies_become_unknown() {
        let err = Error::from_response(502, b"");
        assert_eq!(err.code(), Some(UNKNOWN_CODE));
        assert_eq!(err.status(), Some(502));
        assert_eq!(err.message(), Some("Bad Gateway"));

        let err = Error::from_response(503, br#"{"status":"store unavailable"}"#);
        assert_eq!(err.code(), Some(UNKNOWN_CODE));
        assert_eq!(err.message(), Some(r#"{"status":"store unavailable"}"#));

        let err = Error::from_response(500, br#"{"error":"boom"}"#);
        assert_eq!(err.code(), Some(UNKNOWN_CODE));

        let long = "x".repeat(1000);
        let err = Error::from_response(500, long.as_bytes());
        assert_eq!(err.message().map(str::len), Some(MAX_BODY_SNIPPET));

        let err = Error::from_response(599, b"");
        assert_eq!(err.message(), Some("error"));
    }

    #[test]
    fn error_bodies_never_carry_secrets() {
        let secret = format!("lkp_{}", "A1b2".repeat(9) + "zz");
        let body = format!("<html>bad token {secret} here</html>");
        let err = Error::from_response(502, body.as_bytes());
        let shown = format!("{err} {err:?}");
        assert!(!shown.contains(&secret), "{shown}");
        assert!(shown.contains("lkp_<redacted> here"), "{shown}");

        let body = format!(r#"{{"error":{{"code":"forbidden","message":"no {secret}"}}}}"#);
        let err = Error::from_response(403, body.as_bytes());
        assert!(!format!("{err:?}").contains(&secret));
    }

    #[test]
    fn decode_errors_are_redacted() {
        let secret = format!("lka_{}", "Z".repeat(38));
        let json = format!(r#"{{"valid": "{secret}"}}"#);
        let e = serde_json::from_str::<latchkey_proto::VerifyResponse>(&json)
            .err()
            .map(|e| Error::decode(200, &e));
        let shown = format!("{e:?}");
        assert!(shown.contains("Decode"), "{shown}");
        assert!(!shown.contains(&secret), "{shown}");
    }

    #[test]
    fn redaction() {
        assert!(matches!(redact_secrets("nothing here"), Cow::Borrowed(_)));
        // Too short to be a token: left alone.
        assert_eq!(redact_secrets("lkp_short"), "lkp_short");
        let tok = format!("lkc_{}", "9".repeat(38));
        assert_eq!(
            redact_secrets(&format!("a {tok}, b")),
            "a lkc_<redacted>, b"
        );
        assert_eq!(redact_secrets(&format!("{tok}{tok}")), "lkc_<redacted>");
        let jwt = "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ4In0.c2ln-_";
        assert_eq!(
            redact_secrets(&format!("jwt={jwt};")),
            "jwt=<redacted jwt>;"
        );
        // Not a JWT: no dots.
        assert_eq!(redact_secrets("eyJustWords"), "eyJustWords");
        // Multi-byte text around a secret.
        assert_eq!(redact_secrets(&format!("é{tok}ü")), "élkc_<redacted>ü");
    }
}
