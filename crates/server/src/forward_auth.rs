//! Forward-auth route policies: which request a proxy is asking about, and which rule
//! applies to it.
//!
//! A proxy (nginx `auth_request`, Traefik ForwardAuth, Caddy `forward_auth`, Envoy
//! ext_authz) asks `/auth/verify` about a request it holds. The original URI and method
//! reach us in headers (or, for Envoy, in the path after `/auth/verify`), and a client can
//! send the same headers itself: so only the headers of the configured proxy kind are
//! believed, only from `trusted_proxies`, and anything repeated, conflicting or odd is
//! refused rather than guessed at. Everything here is a pure function of its input so it
//! can be fuzzed.

use axum::http::{HeaderMap, HeaderName};
use serde::Deserialize;

use crate::config::ForwardAuthRoute;

/// The proxy in front of `/auth/verify`: decides which headers carry the original request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ProxyKind {
    /// nginx `auth_request` with the documented `X-Original-URI` / `X-Original-Method`.
    #[default]
    Nginx,
    /// Traefik ForwardAuth: `X-Forwarded-Uri` / `X-Forwarded-Method` (set by Traefik).
    Traefik,
    /// Caddy `forward_auth`: `X-Forwarded-Uri` / `X-Forwarded-Method` (set by Caddy).
    Caddy,
    /// Envoy ext_authz (HTTP service with `path_prefix: /auth/verify`): the original path
    /// follows `/auth/verify`, the method is the request's own.
    Envoy,
    /// Headers named by `forward_auth.uri_header` / `forward_auth.method_header`.
    Custom,
}

/// Header names that carry an original URI or method in some proxy's convention: any of
/// them that is not the configured one must agree with it, or the request is refused.
const URI_HEADERS: [&str; 2] = ["x-original-uri", "x-forwarded-uri"];
const METHOD_HEADERS: [&str; 2] = ["x-original-method", "x-forwarded-method"];

/// The prefix Envoy's `path_prefix` puts before the original path.
pub const ENVOY_PREFIX: &str = "/auth/verify";

impl ProxyKind {
    /// The preset's URI and method headers (`None` for Envoy: taken from the request).
    pub fn headers(self) -> Option<(&'static str, &'static str)> {
        match self {
            ProxyKind::Nginx => Some(("x-original-uri", "x-original-method")),
            ProxyKind::Traefik | ProxyKind::Caddy => {
                Some(("x-forwarded-uri", "x-forwarded-method"))
            }
            ProxyKind::Envoy | ProxyKind::Custom => None,
        }
    }
}

/// Why forward-auth cannot tell which request it is asked about (the `X-Latchkey-Reason`
/// of the 403).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TargetRefused {
    /// The caller is not in `trusted_proxies`, so its URI header means nothing.
    #[error("untrusted_proxy")]
    UntrustedProxy,
    /// No original URI was sent.
    #[error("missing_uri")]
    MissingUri,
    /// The URI header was sent more than once, or two URI headers disagree.
    #[error("ambiguous_uri")]
    AmbiguousUri,
    /// The URI is not one we can judge the way upstreams would (see [`normalize_path`]).
    #[error("bad_uri")]
    BadUri,
    /// No original method was sent.
    #[error("missing_method")]
    MissingMethod,
    /// The method header was sent more than once, or two method headers disagree.
    #[error("ambiguous_method")]
    AmbiguousMethod,
    /// Not an HTTP method token.
    #[error("bad_method")]
    BadMethod,
}

impl TargetRefused {
    /// The reason as a static header value.
    pub fn as_str(self) -> &'static str {
        match self {
            TargetRefused::UntrustedProxy => "untrusted_proxy",
            TargetRefused::MissingUri => "missing_uri",
            TargetRefused::AmbiguousUri => "ambiguous_uri",
            TargetRefused::BadUri => "bad_uri",
            TargetRefused::MissingMethod => "missing_method",
            TargetRefused::AmbiguousMethod => "ambiguous_method",
            TargetRefused::BadMethod => "bad_method",
        }
    }
}

/// Where the original request's URI and method are read from.
#[derive(Debug, Clone)]
pub struct TargetSource {
    /// The proxy kind.
    pub proxy: ProxyKind,
    /// URI header (lowercase), unless the proxy is Envoy without an override.
    pub uri_header: Option<HeaderName>,
    /// Method header (lowercase), unless the proxy is Envoy without an override.
    pub method_header: Option<HeaderName>,
}

/// The request a proxy asks about, normalised for matching.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Upper-case method.
    pub method: String,
    /// Normalised path (see [`normalize_path`]).
    pub path: String,
}

/// The one value of a header, or why there is not exactly one usable value.
fn single<'a>(
    headers: &'a HeaderMap,
    name: &str,
    missing: TargetRefused,
    ambiguous: TargetRefused,
    bad: TargetRefused,
) -> Result<&'a str, TargetRefused> {
    let mut values = headers.get_all(name).iter();
    let first = values.next().ok_or(missing)?;
    if values.next().is_some() {
        return Err(ambiguous);
    }
    first.to_str().map_err(|_| bad)
}

/// Reads the original request from what a proxy sent: `request_path` is the path
/// (with query) this request came in on, `request_method` its method.
pub fn target(
    source: &TargetSource,
    headers: &HeaderMap,
    request_path: &str,
    request_method: &str,
    case_sensitive: bool,
) -> Result<Target, TargetRefused> {
    use TargetRefused::*;
    let raw_uri = match &source.uri_header {
        Some(name) => single(headers, name.as_str(), MissingUri, AmbiguousUri, BadUri)?,
        None => match request_path.strip_prefix(ENVOY_PREFIX) {
            Some(rest) if rest.starts_with('/') => rest,
            _ => return Err(MissingUri),
        },
    };
    let path = normalize_path(raw_uri, case_sensitive).ok_or(BadUri)?;
    // Another proxy's URI header that says something else: someone is lying.
    for other in URI_HEADERS {
        if source.uri_header.as_ref().is_some_and(|h| h == other) {
            continue;
        }
        for value in headers.get_all(other) {
            let agrees = value
                .to_str()
                .ok()
                .and_then(|v| normalize_path(v, case_sensitive))
                .is_some_and(|p| p == path);
            if !agrees {
                return Err(AmbiguousUri);
            }
        }
    }
    let method = match &source.method_header {
        Some(name) => single(
            headers,
            name.as_str(),
            MissingMethod,
            AmbiguousMethod,
            BadMethod,
        )?,
        None => request_method,
    };
    let method = method.trim();
    let is_token = !method.is_empty()
        && method.len() <= 32
        && method.bytes().all(|b| b.is_ascii_alphabetic() || b == b'-');
    if !is_token {
        return Err(BadMethod);
    }
    let method = method.to_ascii_uppercase();
    for other in METHOD_HEADERS {
        if source.method_header.as_ref().is_some_and(|h| h == other) {
            continue;
        }
        for value in headers.get_all(other) {
            let agrees = value
                .to_str()
                .is_ok_and(|v| v.trim().eq_ignore_ascii_case(&method));
            if !agrees {
                return Err(AmbiguousMethod);
            }
        }
    }
    Ok(Target { method, path })
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Normalises a request target the way common upstreams resolve it, or refuses it
/// (`None`) where they disagree with each other:
///
/// - absolute form (`http://host/p`) is judged by its path; any other target that does not
///   start with `/` is refused;
/// - the query and fragment are dropped; the path is percent-decoded once, and what still
///   looks percent-encoded after that (double encoding, `%252e`) is refused, as are bad
///   escapes and bytes that are not UTF-8;
/// - control characters (NUL included) and backslashes are refused (IIS and some
///   frameworks treat `\` as `/`);
/// - `;` path parameters are cut from each segment (Tomcat, Jetty, Spring: `/a;x/b` is
///   `/a/b`);
/// - a segment ending in `.` or a space is refused (Windows strips them: `admin.` is
///   `admin`);
/// - empty and `.` segments vanish, `..` removes the one before (never above the root);
/// - with `case_sensitive = false`, the result is lower-cased (for case-insensitive
///   upstreams, and so that a rule cannot be dodged by case either way).
pub fn normalize_path(raw: &str, case_sensitive: bool) -> Option<String> {
    let mut target = raw.split(['?', '#']).next().unwrap_or("");
    let lower = target
        .get(..8)
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    for scheme in ["http://", "https://"] {
        if lower.starts_with(scheme) {
            let after = &target[scheme.len()..];
            target = after.find('/').map_or("/", |i| &after[i..]);
        }
    }
    if !target.starts_with('/') {
        return None;
    }
    let bytes = target.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let (h, l) = (bytes.get(i + 1).copied()?, bytes.get(i + 2).copied()?);
            decoded.push(hex(h)? * 16 + hex(l)?);
            i += 3;
        } else {
            decoded.push(bytes[i]);
            i += 1;
        }
    }
    let text = String::from_utf8(decoded).ok()?;
    let double_encoded = text
        .as_bytes()
        .windows(3)
        .any(|w| w[0] == b'%' && hex(w[1]).is_some() && hex(w[2]).is_some());
    if double_encoded || text.chars().any(|c| c.is_control() || c == '\\') {
        return None;
    }
    let mut segments: Vec<&str> = Vec::new();
    for segment in text.split('/') {
        let segment = segment.split(';').next().unwrap_or("");
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s if s.ends_with('.') || s.ends_with(' ') => return None,
            s => segments.push(s),
        }
    }
    let mut out = String::with_capacity(text.len() + 1);
    out.push('/');
    out.push_str(&segments.join("/"));
    if !case_sensitive {
        out = out.to_lowercase();
    }
    Some(out)
}

/// The first rule that applies to `target`, if any: a rule's `path` is a prefix matched at
/// a segment boundary (compared as [`normalize_path`] would write it).
pub fn matching_rule<'a>(
    routes: &'a [ForwardAuthRoute],
    target: &Target,
    case_sensitive: bool,
) -> Option<&'a ForwardAuthRoute> {
    routes.iter().find(|rule| {
        let prefix =
            normalize_path(&rule.path, case_sensitive).unwrap_or_else(|| rule.path.clone());
        let prefix = prefix.trim_end_matches('/');
        let path = target.path.as_str();
        let path_ok = prefix.is_empty()
            || path == prefix
            || path
                .strip_prefix(prefix)
                .is_some_and(|rest| rest.starts_with('/'));
        let method_ok = rule
            .methods
            .as_ref()
            .is_none_or(|ms| ms.iter().any(|m| m.eq_ignore_ascii_case(&target.method)));
        path_ok && method_ok
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(raw: &str) -> Option<String> {
        normalize_path(raw, false)
    }

    #[test]
    fn paths_are_decoded_and_dot_segments_resolved() {
        assert_eq!(
            n("/api/client/../admin/x?y=1").as_deref(),
            Some("/api/admin/x")
        );
        assert_eq!(n("/api/%61dmin/").as_deref(), Some("/api/admin"));
        assert_eq!(n("/api/client/%2e%2e/admin").as_deref(), Some("/api/admin"));
        assert_eq!(n("/../../etc").as_deref(), Some("/etc"));
        assert_eq!(n("//api//admin/").as_deref(), Some("/api/admin"));
        assert_eq!(n("/").as_deref(), Some("/"));
    }

    #[test]
    fn what_upstreams_read_differently_is_normalised_or_refused() {
        // Issue 21.6: each of these reached an /api/admin/ upstream while dodging the rule.
        assert_eq!(n("/API/admin/x").as_deref(), Some("/api/admin/x"));
        assert_eq!(
            normalize_path("/API/admin/x", true).as_deref(),
            Some("/API/admin/x")
        );
        assert_eq!(n("/api/admin;x/y").as_deref(), Some("/api/admin/y"));
        assert_eq!(n("/api/admin;jsessionid=1").as_deref(), Some("/api/admin"));
        assert_eq!(
            n("http://evil/api/admin/x").as_deref(),
            Some("/api/admin/x")
        );
        assert_eq!(n("HTTPS://evil").as_deref(), Some("/"));
        for refused in [
            "/api\\admin/x",
            "/api%5Cadmin/x",
            "/api/admin%00/x",
            "/api/admin./x",
            "/api/admin%2e/x",
            "/api/admin%20/x",
            "/api/admin /x",
            "/api/%252e/admin/x",
            "/a/%zz",
            "/a/%4",
            "/a/%ff",
            "api/admin",
            "*",
            "",
            "/a\tb",
        ] {
            assert_eq!(n(refused), None, "{refused:?}");
        }
    }

    fn rules() -> Vec<ForwardAuthRoute> {
        toml::from_str::<crate::config::ForwardAuthConfig>(
            r#"
            [[routes]]
            path = "/api/admin/"
            [[routes]]
            path = "/api/client"
            methods = ["POST"]
            "#,
        )
        .map(|c| c.routes)
        .unwrap_or_default()
    }

    #[test]
    fn rules_match_at_segment_boundaries_by_method() {
        let routes = rules();
        let t = |method: &str, path: &str| Target {
            method: method.into(),
            path: normalize_path(path, false).unwrap_or_default(),
        };
        let hit =
            |method, path| matching_rule(&routes, &t(method, path), false).map(|r| r.path.as_str());
        assert_eq!(hit("GET", "/api/admin"), Some("/api/admin/"));
        assert_eq!(hit("GET", "/API/Admin/x"), Some("/api/admin/"));
        assert_eq!(hit("GET", "/api/administrator"), None);
        assert_eq!(hit("POST", "/api/client/x"), Some("/api/client"));
        assert_eq!(hit("GET", "/api/client/x"), None);
    }

    #[test]
    fn only_the_configured_headers_are_believed_and_must_agree() {
        let source = TargetSource {
            proxy: ProxyKind::Traefik,
            uri_header: Some(HeaderName::from_static("x-forwarded-uri")),
            method_header: Some(HeaderName::from_static("x-forwarded-method")),
        };
        let mut h = HeaderMap::new();
        let get = |h: &HeaderMap| target(&source, h, "/auth/verify", "GET", false);
        assert_eq!(get(&h), Err(TargetRefused::MissingUri));
        h.insert("x-forwarded-uri", "/api/admin/x".parse().unwrap());
        assert_eq!(get(&h), Err(TargetRefused::MissingMethod));
        h.insert("x-forwarded-method", "delete".parse().unwrap());
        assert_eq!(
            get(&h),
            Ok(Target {
                method: "DELETE".into(),
                path: "/api/admin/x".into()
            })
        );
        // The Traefik bypass of issue 21.2: a client-sent X-Original-URI.
        let mut spoofed = h.clone();
        spoofed.insert("x-original-uri", "/".parse().unwrap());
        assert_eq!(get(&spoofed), Err(TargetRefused::AmbiguousUri));
        let mut agreeing = h.clone();
        agreeing.insert("x-original-uri", "/api/admin/x?q=1".parse().unwrap());
        assert!(get(&agreeing).is_ok());
        let mut repeated = h.clone();
        repeated.append("x-forwarded-uri", "/".parse().unwrap());
        assert_eq!(get(&repeated), Err(TargetRefused::AmbiguousUri));
        let mut methods = h.clone();
        methods.insert("x-original-method", "GET".parse().unwrap());
        assert_eq!(get(&methods), Err(TargetRefused::AmbiguousMethod));
        let mut bad = h.clone();
        bad.insert("x-forwarded-method", "GET /".parse().unwrap());
        assert_eq!(get(&bad), Err(TargetRefused::BadMethod));
    }

    #[test]
    fn envoy_sends_the_path_after_the_prefix_and_its_own_method() {
        let source = TargetSource {
            proxy: ProxyKind::Envoy,
            uri_header: None,
            method_header: None,
        };
        let h = HeaderMap::new();
        assert_eq!(
            target(&source, &h, "/auth/verify/api/admin/x?y=1", "PATCH", false),
            Ok(Target {
                method: "PATCH".into(),
                path: "/api/admin/x".into()
            })
        );
        assert_eq!(
            target(&source, &h, "/auth/verify", "GET", false),
            Err(TargetRefused::MissingUri)
        );
        assert_eq!(
            target(&source, &h, "/auth/verifyx", "GET", false),
            Err(TargetRefused::MissingUri)
        );
    }
}
