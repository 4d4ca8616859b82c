//! Request extractors that fail with our error shape: JSON bodies (415, 413, 400
//! `malformed_json`, 422 `invalid_field` with the field named), query strings, client IPs.

use std::net::{IpAddr, SocketAddr};

use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use serde::de::DeserializeOwned;

use crate::error::ApiError;
use crate::state::AppState;

/// A JSON body: requires `Content-Type: application/json`.
pub struct ApiJson<T>(pub T);

/// A JSON body that may be absent (empty body, any or no content type), for action
/// endpoints; absent means `T::default()`.
pub struct OptionalJson<T>(pub T);

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|mime| {
            let mime = mime.trim().to_ascii_lowercase();
            mime == "application/json"
                || (mime.starts_with("application/") && mime.ends_with("+json"))
        })
        .unwrap_or(false)
}

async fn read_body(req: Request, state: &AppState) -> Result<Bytes, ApiError> {
    Bytes::from_request(req, state)
        .await
        .map_err(|_| ApiError::PayloadTooLarge(state.config.max_body_bytes))
}

/// Parses JSON, telling syntax errors (400) from shape errors (422 with the field).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    // Syntax first (400), so that `{} trailing` is malformed rather than a missing field.
    if let Err(e) = serde_json::from_slice::<serde::de::IgnoredAny>(bytes) {
        return Err(ApiError::MalformedJson(format!(
            "the body is not valid JSON: {}",
            strip_position(&e.to_string())
        )));
    }
    // Every body is an object: serde would also read a struct from an array (`[1, 2]`).
    if bytes.trim_ascii_start().first() != Some(&b'{') {
        return Err(ApiError::field("body", "the body must be a JSON object"));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let mut parsed: Result<T, _> = serde_path_to_error::deserialize(&mut de);
    if parsed.is_err() {
        // JSON Schema counts `2.0` as an integer: retry with whole floats as integers.
        if let Ok(mut value) = serde_json::from_slice::<serde_json::Value>(bytes)
            && whole_floats_to_integers(&mut value)
            && let Ok(ok) = serde_path_to_error::deserialize::<_, T>(value)
        {
            parsed = Ok(ok);
        }
    }
    parsed.map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        match inner.classify() {
            serde_json::error::Category::Data => {
                let message = inner.to_string();
                let at_root = path == "." || path.is_empty();
                let field = match backticked(&message) {
                    // serde reports a missing field at its parent's path.
                    Some(name) if message.starts_with("missing field") => {
                        if at_root {
                            name.to_owned()
                        } else {
                            format!("{path}.{name}")
                        }
                    }
                    // An unknown field named `""` is reported as the body's, not as a field
                    // with no name (found by the json_requests fuzz target).
                    Some(name) if at_root && !name.is_empty() => name.to_owned(),
                    _ if at_root => "body".to_owned(),
                    _ => path,
                };
                let message = strip_position(&message);
                ApiError::InvalidField {
                    message: format!("invalid field {field}: {message}"),
                    field,
                }
            }
            _ => ApiError::MalformedJson(format!(
                "the body is not valid JSON: {}",
                strip_position(&inner.to_string())
            )),
        }
    })
}

/// Rewrites floats without a fractional part (`2.0`) as integers; whether any changed.
fn whole_floats_to_integers(value: &mut serde_json::Value) -> bool {
    use serde_json::Value;
    match value {
        Value::Number(n) if n.is_f64() => {
            let f = n.as_f64().unwrap_or(f64::NAN);
            let whole = f.fract() == 0.0 && f.abs() < 9.0e15;
            if whole {
                // In range and whole: the cast is exact.
                *value = Value::from(f as i64);
            }
            whole
        }
        Value::Array(items) => items
            .iter_mut()
            .fold(false, |any, v| whole_floats_to_integers(v) | any),
        Value::Object(map) => map
            .values_mut()
            .fold(false, |any, v| whole_floats_to_integers(v) | any),
        _ => false,
    }
}

fn backticked(message: &str) -> Option<&str> {
    let start = message.find('`')? + 1;
    let len = message[start..].find('`')?;
    Some(&message[start..start + len])
}

fn strip_position(message: &str) -> String {
    match message.find(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

impl<T: DeserializeOwned> FromRequest<AppState> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        if !is_json(req.headers()) {
            return Err(ApiError::UnsupportedMediaType(
                "this endpoint takes Content-Type: application/json".into(),
            ));
        }
        let bytes = read_body(req, state).await?;
        parse_json(&bytes).map(ApiJson)
    }
}

impl<T: DeserializeOwned + Default> FromRequest<AppState> for OptionalJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let json = is_json(req.headers());
        let has_type = req.headers().contains_key(header::CONTENT_TYPE);
        let bytes = read_body(req, state).await?;
        // No body, or JSON `null` (what a client that serialises "no options" sends).
        let text = bytes.trim_ascii();
        if text.is_empty() || text == b"null" && json {
            return Ok(OptionalJson(T::default()));
        }
        if has_type && !json {
            return Err(ApiError::UnsupportedMediaType(
                "this endpoint takes Content-Type: application/json".into(),
            ));
        }
        parse_json(&bytes).map(OptionalJson)
    }
}

/// A form body (`application/x-www-form-urlencoded`), as OAuth endpoints take.
pub struct ApiForm<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for ApiForm<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let is_form = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|m| {
                m.trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            });
        if !is_form {
            return Err(ApiError::UnsupportedMediaType(
                "this endpoint takes Content-Type: application/x-www-form-urlencoded".into(),
            ));
        }
        let bytes = read_body(req, state).await?;
        serde_urlencoded::from_bytes(&bytes)
            .map(ApiForm)
            .map_err(|e| {
                let text = e.to_string();
                let field = backticked(&text).unwrap_or("body").to_owned();
                ApiError::InvalidField {
                    message: format!("invalid form field {field}: {text}"),
                    field,
                }
            })
    }
}

/// The client's IP: the peer address, or the `X-Forwarded-For` entry closest to us that is
/// not a trusted proxy, when the peer is one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub Option<IpAddr>);

impl std::fmt::Display for ClientIp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(ip) => ip.fmt(f),
            None => Ok(()),
        }
    }
}

impl ClientIp {
    /// As text for audit events.
    pub fn to_text(self) -> Option<String> {
        self.0.map(|ip| ip.to_string())
    }
}

/// The optional `ip` a verify or introspection caller passes (the address its own caller
/// used): 422 naming the field when it is not an IPv4 or IPv6 address.
pub fn used_from(text: Option<&str>) -> Result<Option<IpAddr>, ApiError> {
    text.map(|text| {
        text.trim().parse::<IpAddr>().map_err(|_| {
            ApiError::field(
                "ip",
                "ip must be an IPv4 or IPv6 address, such as 203.0.113.7",
            )
        })
    })
    .transpose()
}

/// Resolves the client IP from the peer address and headers.
pub fn client_ip(state: &AppState, peer: Option<IpAddr>, headers: &HeaderMap) -> ClientIp {
    let Some(peer) = peer else {
        return ClientIp(None);
    };
    if !state.config.is_trusted_proxy(peer) {
        return ClientIp(Some(peer));
    }
    let forwarded: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let ip = forwarded
        .iter()
        .rev()
        .find(|ip| !state.config.is_trusted_proxy(**ip))
        .or(forwarded.first())
        .copied()
        .unwrap_or(peer);
    ClientIp(Some(ip))
}

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ci| ci.0.ip());
        Ok(client_ip(state, peer, &parts.headers))
    }
}

/// `?limit=&cursor=` for lists: limit 1..=200, default 50.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct PageParams {
    /// Page size.
    pub limit: Option<String>,
    /// Cursor from the previous page.
    pub cursor: Option<String>,
}

impl PageParams {
    /// Validates into a store page request.
    pub fn to_page(&self) -> Result<latchkey_store::PageRequest, ApiError> {
        let limit = match &self.limit {
            None => 50,
            Some(text) => match text.parse::<u32>() {
                Ok(n) if (1..=200).contains(&n) => n,
                _ => {
                    return Err(ApiError::field(
                        "limit",
                        "limit must be a whole number from 1 to 200",
                    ));
                }
            },
        };
        let cursor = match &self.cursor {
            Some(c) if !latchkey_core::is_id(c) => {
                return Err(ApiError::field(
                    "cursor",
                    "cursor is not one this server gave",
                ));
            }
            other => other.clone(),
        };
        Ok(latchkey_store::PageRequest { limit, cursor })
    }
}

/// A query string parsed into `T`, failing with 422 `invalid_field`.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned> FromRequestParts<AppState> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or("");
        let de = serde_urlencoded_deserializer(query);
        de.map(ApiQuery)
    }
}

fn serde_urlencoded_deserializer<T: DeserializeOwned>(query: &str) -> Result<T, ApiError> {
    axum::extract::Query::<T>::try_from_uri(
        &format!("/?{query}")
            .parse()
            .map_err(|_| ApiError::BadRequest("unparseable query string".into()))?,
    )
    .map(|q| q.0)
    .map_err(|e| {
        let text = e.body_text();
        let field = backticked(&text).unwrap_or("query").to_owned();
        ApiError::InvalidField {
            message: format!("invalid query parameter {field}"),
            field,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use latchkey_proto::CreateTokenRequest;

    #[test]
    fn json_errors_name_the_field() {
        let e = parse_json::<CreateTokenRequest>(b"{").err().unwrap();
        assert!(matches!(e, ApiError::MalformedJson(_)));
        let e = parse_json::<CreateTokenRequest>(b"{}").err().unwrap();
        assert!(
            matches!(e, ApiError::InvalidField { ref field, .. } if field == "name"),
            "{e:?}"
        );
        let e = parse_json::<CreateTokenRequest>(br#"{"name":"a","type":"nope"}"#)
            .err()
            .unwrap();
        assert!(
            matches!(e, ApiError::InvalidField { ref field, .. } if field == "type"),
            "{e:?}"
        );
        let e = parse_json::<CreateTokenRequest>(br#"{"name":"a","bogus":1}"#)
            .err()
            .unwrap();
        assert!(
            matches!(e, ApiError::InvalidField { ref field, .. } if field == "bogus"),
            "{e:?}"
        );
        let e = parse_json::<CreateTokenRequest>(br#"{"name":"a","scopes":["x"]}"#)
            .err()
            .unwrap();
        assert!(
            matches!(e, ApiError::InvalidField { ref field, .. } if field.starts_with("scopes")),
            "{e:?}"
        );
        // A whole float is an integer (as JSON Schema says); a fraction is not.
        let req = parse_json::<CreateTokenRequest>(br#"{"name":"a","expires_in_days":7.0}"#);
        assert_eq!(req.ok().and_then(|r| r.expires_in_days), Some(7));
        let e = parse_json::<CreateTokenRequest>(br#"{"name":"a","expires_in_days":7.5}"#)
            .err()
            .unwrap();
        assert!(
            matches!(e, ApiError::InvalidField { ref field, .. } if field == "expires_in_days"),
            "{e:?}"
        );
        let e = parse_json::<CreateTokenRequest>(br#"{"name":"a","":null}"#)
            .err()
            .unwrap();
        assert!(
            matches!(e, ApiError::InvalidField { ref field, ref message }
                if field == "body" && message.contains("unknown field ``")),
            "{e:?}"
        );
        let e = parse_json::<CreateTokenRequest>(br#"[]"#).err().unwrap();
        assert!(matches!(e, ApiError::InvalidField { .. }), "{e:?}");
        let e = parse_json::<CreateTokenRequest>(br#"{"name":"a"} x"#)
            .err()
            .unwrap();
        assert!(matches!(e, ApiError::MalformedJson(_)), "{e:?}");
    }
}
