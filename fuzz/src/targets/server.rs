//! The server's parsers: credential headers, forward-auth path normalisation and route
//! matching, every JSON request body, the TOML config, and access JWTs.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ed25519_dalek::{Signer as _, SigningKey};
use http::{HeaderMap, HeaderName, HeaderValue};
use latchkey_core::policy::{self, LifetimeRequest};
use latchkey_core::token;
use latchkey_core::{InstanceSettings, TokenSettings};
use latchkey_proto::{
    CreateProjectRequest, CreateTokenRequest, CreateUserRequest, CreateWebhookRequest,
    CreateWorkspaceRequest, PutMemberRequest, RefreshRequest, RotateTokenRequest, SignInRequest,
    TokenType, UpdateInstanceSettingsRequest, UpdateTokenSettingsRequest, UpdateUserRequest,
    UpdateWebhookRequest, VerifyRequest,
};
use latchkey_server::api::interop::LeakReport;
use latchkey_server::api::tokens::EmptyBody;
use latchkey_server::auth::{presented_secret, session_cookie};
use latchkey_server::config::{Config, ForwardAuthConfig, ForwardAuthRoute};
use latchkey_server::error::ApiError;
use latchkey_server::events::address;
use latchkey_server::extract::parse_json;
use latchkey_server::forward_auth::{self, ProxyKind, Target, matching_rule, normalize_path};
use latchkey_server::jwt::{self, AccessClaims, JwtError, UnverifiedJwt};
use latchkey_server::password::check_new_password;
use latchkey_server::service::{self, check_name};
use serde::Serialize;
use serde::de::DeserializeOwned;
use time::OffsetDateTime;

/// The fixed "now" of every target (2027-08-22T10:00:00Z).
const NOW: i64 = 1_818_842_400;

fn now() -> OffsetDateTime {
    latchkey_core::from_unix(NOW)
}

/// `name: value` lines as a header map (lines that are not a valid header are skipped).
fn header_lines<'a>(lines: impl Iterator<Item = &'a [u8]>) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for line in lines {
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            continue;
        };
        let (name, value) = (&line[..colon], &line[colon + 1..]);
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name),
            HeaderValue::from_bytes(value.trim_ascii_start()),
        ) {
            headers.append(name, value);
        }
    }
    headers
}

/// Credential headers: the first line lists the configured extra header names
/// (comma-separated, kept as the server keeps them), the rest are `name: value` headers.
pub fn credential_headers(data: &[u8]) {
    let mut lines = data.split(|b| *b == b'\n');
    let configured = lines.next().unwrap_or_default();
    let extra: Vec<HeaderName> = String::from_utf8_lossy(configured)
        .split(',')
        .filter_map(|h| HeaderName::from_bytes(h.trim().to_ascii_lowercase().as_bytes()).ok())
        .collect();
    let headers = header_lines(lines);
    if let Some(secret) = presented_secret(&headers, &extra) {
        assert_eq!(secret, secret.trim(), "the secret is trimmed");
        let from_a_header = headers
            .values()
            .any(|v| v.to_str().is_ok_and(|v| v.contains(secret)));
        assert!(from_a_header, "the secret is part of a header value");
        // What the server does next with a presented credential.
        if jwt::looks_like_jwt(secret) {
            let _ = UnverifiedJwt::parse(secret);
        } else {
            let _ = token::parse(secret);
        }
    } else {
        // Nothing presented: then no credential header holds a value.
        assert!(!headers.contains_key("x-api-key") || headers["x-api-key"].to_str().is_err());
    }
    if let Some(cookie) = session_cookie(&headers) {
        assert!(!cookie.is_empty() && !cookie.contains(';'));
        let _ = token::parse(cookie);
    }
}

/// What every normalised path looks like.
fn check_normalized(path: &str, case_sensitive: bool) {
    assert!(path.starts_with('/'), "{path:?}");
    if path != "/" {
        for segment in path[1..].split('/') {
            assert!(
                !matches!(segment, "" | "." | "..")
                    && !segment.ends_with('.')
                    && !segment.ends_with(' '),
                "segment {segment:?} of {path:?}"
            );
        }
    }
    assert!(
        !path
            .chars()
            .any(|c| c.is_control() || c == '\\' || c == ';'),
        "{path:?}"
    );
    if !case_sensitive {
        assert_eq!(path, path.to_lowercase());
    }
    if !path.contains(['%', '?', '#']) {
        assert_eq!(
            normalize_path(path, case_sensitive).as_deref(),
            Some(path),
            "normalising is idempotent"
        );
    }
}

/// Forward-auth path normalisation, and reading the original request from a proxy's
/// headers. First byte: bit 0 case-sensitive, bits 1–3 the proxy kind; then the first
/// line is the URI (also Envoy's path after `/auth/verify`), the second the request's own
/// method, the rest headers.
pub fn forward_auth_path(data: &[u8]) {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let case_sensitive = flags & 1 == 1;
    let mut lines = rest.split(|b| *b == b'\n');
    let raw = String::from_utf8_lossy(lines.next().unwrap_or_default()).into_owned();
    let method = String::from_utf8_lossy(lines.next().unwrap_or_default()).into_owned();
    for cs in [false, true] {
        if let Some(path) = normalize_path(&raw, cs) {
            check_normalized(&path, cs);
        }
    }
    // Case cannot dodge a case-insensitive rule, either way.
    assert_eq!(
        normalize_path(&raw.to_ascii_uppercase(), false),
        normalize_path(&raw.to_ascii_lowercase(), false),
        "{raw:?}"
    );
    let proxy = [
        ProxyKind::Nginx,
        ProxyKind::Traefik,
        ProxyKind::Caddy,
        ProxyKind::Envoy,
        ProxyKind::Custom,
    ][usize::from(flags >> 1) % 5];
    let config = ForwardAuthConfig {
        proxy,
        uri_header: (proxy == ProxyKind::Custom).then(|| "x-uri".to_owned()),
        method_header: (proxy == ProxyKind::Custom).then(|| "x-method".to_owned()),
        case_sensitive_paths: case_sensitive,
        ..ForwardAuthConfig::default()
    };
    let Ok(source) = config.target_source() else {
        panic!("a preset's target source is valid");
    };
    let headers = header_lines(lines);
    let request_path = format!("{}{raw}", forward_auth::ENVOY_PREFIX);
    if let Ok(target) =
        forward_auth::target(&source, &headers, &request_path, &method, case_sensitive)
    {
        check_normalized(&target.path, case_sensitive);
        assert!(!target.method.is_empty());
        assert_eq!(target.method, target.method.to_ascii_uppercase());
        let uri = match &source.uri_header {
            Some(name) => headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            None => Some(raw.clone()),
        };
        let expected = uri.and_then(|u| normalize_path(&u, case_sensitive));
        assert_eq!(expected.as_deref(), Some(target.path.as_str()));
    }
}

/// Forward-auth route matching. First byte: bit 0 case-sensitive, the rest the number of
/// rules; each rule line is `METHODS PATH` (`*`: any method, else comma-separated), each
/// later line a request `METHOD URI`.
pub fn forward_auth_routes(data: &[u8]) {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let case_sensitive = flags & 1 == 1;
    let rule_count = usize::from(flags >> 1) % 8;
    let text = String::from_utf8_lossy(rest);
    let mut lines = text.split('\n');
    let routes: Vec<ForwardAuthRoute> = lines
        .by_ref()
        .take(rule_count)
        .map(|line| {
            let (methods, path) = line.split_once(' ').unwrap_or(("*", line));
            ForwardAuthRoute {
                path: path.to_owned(),
                methods: (methods != "*").then(|| methods.split(',').map(str::to_owned).collect()),
                types: None,
                scopes: None,
            }
        })
        .collect();
    let index = |target: &Target| {
        matching_rule(&routes, target, case_sensitive)
            .and_then(|rule| routes.iter().position(|r| std::ptr::eq(r, rule)))
    };
    // A rule that the config accepts applies to its own path.
    let mut config = Config {
        trusted_proxies: "127.0.0.1/32".parse().into_iter().collect(),
        ..Config::default()
    };
    config.forward_auth.routes = routes.clone();
    config.forward_auth.case_sensitive_paths = case_sensitive;
    if config.validate().is_ok() {
        for (i, rule) in routes.iter().enumerate() {
            let method = match &rule.methods {
                Some(ms) => match ms.first() {
                    Some(m) => m.to_ascii_uppercase(),
                    None => continue,
                },
                None => "GET".to_owned(),
            };
            let path = normalize_path(&rule.path, case_sensitive);
            let Some(path) = path else {
                panic!("the config accepted a rule path that matches nothing: {rule:?}");
            };
            let hit = index(&Target { method, path });
            assert!(hit.is_some_and(|h| h <= i), "rule {i} {rule:?}: {hit:?}");
        }
    }
    for line in lines {
        let (method, uri) = line.split_once(' ').unwrap_or(("GET", line));
        let Some(path) = normalize_path(uri, case_sensitive) else {
            continue;
        };
        let target = Target {
            method: method.to_ascii_uppercase(),
            path,
        };
        let hit = index(&target);
        // A path below one a rule covers is covered as early.
        let child = Target {
            method: target.method.clone(),
            path: format!("{}/x", target.path.trim_end_matches('/')),
        };
        if let Some(h) = hit {
            assert!(
                index(&child).is_some_and(|c| c <= h),
                "{target:?} {child:?}"
            );
        }
        if !case_sensitive && let Some(upper) = normalize_path(&uri.to_ascii_uppercase(), false) {
            let flipped = Target {
                method: target.method.clone(),
                path: upper,
            };
            assert_eq!(index(&flipped), hit, "case changes the rule for {uri:?}");
        }
    }
}

/// The server's JSON parse of a body: a value that serializes and parses back to itself,
/// or a 400/422 naming the field.
fn parse<T: DeserializeOwned + Serialize>(body: &[u8]) -> Option<T> {
    match parse_json::<T>(body) {
        Ok(value) => {
            let Ok(again) = serde_json::to_vec(&value) else {
                panic!("a parsed body serializes");
            };
            let back = match parse_json::<T>(&again) {
                Ok(back) => back,
                Err(e) => panic!("a serialized body parses back: {e}"),
            };
            assert_eq!(
                serde_json::to_value(&back).ok(),
                serde_json::to_value(&value).ok()
            );
            Some(value)
        }
        Err(e) => {
            check_refusal(&e);
            None
        }
    }
}

/// A refused body is a client error with a message, never a 5xx.
fn check_refusal(e: &ApiError) {
    let (status, _) = e.status_and_code();
    assert!(status.is_client_error(), "{status} for {e:?}");
    if let ApiError::InvalidField { field, message } = e {
        assert!(!field.is_empty() && !message.is_empty());
    }
}

/// A validation step: a refusal must be a client error.
fn ok<T>(result: Result<T, ApiError>) -> Option<T> {
    result.map_err(|e| check_refusal(&e)).ok()
}

fn check_expiry(token_type: TokenType, request: LifetimeRequest, settings: &TokenSettings) {
    let instance = InstanceSettings::default();
    let cap = Some(now() + time::Duration::days(30));
    for cap in [None, cap] {
        if let Ok(Some(at)) =
            policy::resolve_expiry(now(), token_type, request, settings, &instance, cap)
        {
            assert!(at > now());
            assert!(cap.is_none_or(|c| at <= c));
            assert!(
                settings
                    .max_token_lifetime_days
                    .is_none_or(|d| at <= now() + time::Duration::days(i64::from(d)))
            );
        }
    }
}

fn check_checked_name(field: &str, value: &str, max: usize) {
    if let Some(name) = ok(check_name(field, value, max)) {
        assert!(!name.is_empty() && name == name.trim() && name.chars().count() <= max);
    }
}

fn check_webhook_url(url: &str) {
    if let Ok(parsed) = address::parse_url(url) {
        assert!(matches!(parsed.scheme(), "http" | "https"));
        let _ = address::check_literal(&parsed, false);
        let _ = address::check_literal(&parsed, true);
    }
}

/// Every JSON request body: the first byte picks the type, the rest is the body, parsed
/// as the server parses it and then put through the checks the service runs before it
/// touches the store.
pub fn json_requests(data: &[u8]) {
    let Some((&kind, body)) = data.split_first() else {
        return;
    };
    match kind % 16 {
        0 => {
            let _ = parse::<SignInRequest>(body);
        }
        1 => {
            if let Some(req) = parse::<CreateUserRequest>(body) {
                let _ = ok(service::check_username(&req.username));
                if let Some(password) = &req.password {
                    let _ = ok(check_new_password("password", password));
                }
                let _ = ok(service::check_email(&req.email));
                if let Some(Some(name)) = ok(service::check_display_name(&req.display_name)) {
                    assert_eq!(name, name.trim());
                }
            }
        }
        2 => {
            if let Some(req) = parse::<UpdateUserRequest>(body) {
                if let Some(pw) = &req.password {
                    let _ = ok(check_new_password("password", pw));
                }
                if let Some(v) = &req.display_name {
                    let _ = ok(service::check_display_name(v));
                }
                if let Some(v) = &req.email {
                    let _ = ok(service::check_email(v));
                }
            }
        }
        3 => {
            if let Some(req) = parse::<CreateWorkspaceRequest>(body) {
                check_checked_name("name", &req.name, 200);
            }
        }
        4 => {
            let _ = parse::<PutMemberRequest>(body);
        }
        5 => {
            if let Some(req) = parse::<CreateTokenRequest>(body) {
                check_checked_name("name", &req.name, 200);
                if let Some(Some(env)) = ok(service::check_environment(&req.environment)) {
                    assert!((1..=64).contains(&env.len()));
                }
                let request = LifetimeRequest {
                    days: req.expires_in_days,
                    at: req.expires_at,
                    created_at: None,
                };
                check_expiry(req.token_type, request, &TokenSettings::default());
            }
        }
        6 => {
            // An optional body: blank is the default.
            let req = if body.iter().all(u8::is_ascii_whitespace) {
                Some(RotateTokenRequest::default())
            } else {
                parse::<RotateTokenRequest>(body)
            };
            if let Some(req) = req
                && req.grace_seconds.unwrap_or(0) <= service::MAX_GRACE_SECONDS
            {
                let grace = req.grace_seconds.unwrap_or(0);
                let _ = now() + time::Duration::seconds(grace as i64);
                for token_type in TokenType::ALL {
                    let request = LifetimeRequest {
                        days: req.expires_in_days,
                        at: req.expires_at,
                        created_at: None,
                    };
                    check_expiry(token_type, request, &TokenSettings::default());
                }
            }
        }
        7 => {
            if let Some(req) = parse::<VerifyRequest>(body) {
                let _ = token::parse(&req.token);
            }
        }
        8 => {
            if let Some(req) = parse::<CreateProjectRequest>(body) {
                check_checked_name("name", &req.name, 200);
            }
        }
        9 => {
            if let Some(req) = parse::<UpdateInstanceSettingsRequest>(body) {
                if let Some(v) = req.max_active_tokens {
                    let _ = ok(service::check_count("max_active_tokens", v));
                }
                if let Some(d) = req.default_token_lifetime_days
                    && let Some(days) = ok(service::check_days("default_token_lifetime_days", d))
                {
                    let instance = InstanceSettings {
                        default_token_lifetime_days: days,
                        ..InstanceSettings::default()
                    };
                    let _ = policy::resolve_expiry(
                        now(),
                        TokenType::Personal,
                        LifetimeRequest {
                            days: None,
                            at: None,
                            created_at: None,
                        },
                        &TokenSettings::default(),
                        &instance,
                        None,
                    );
                }
            }
        }
        10 => {
            if let Some(req) = parse::<UpdateTokenSettingsRequest>(body) {
                let mut settings = TokenSettings::default();
                if let Some(Some(d)) = req.personal_token_ttl_days {
                    match ok(service::check_days("personal_token_ttl_days", d)) {
                        Some(days) => settings.personal_token_ttl_days = Some(days),
                        None => return,
                    }
                }
                if let Some(v) = req.max_tokens_per_user {
                    let _ = ok(service::check_count("max_tokens_per_user", v));
                }
                if let Some(types) = &req.enabled_types {
                    settings.enabled_types = types.iter().fold(0, |acc, t| acc | t.bit());
                }
                if let Some(v) = req.max_token_lifetime_days {
                    match ok(service::check_policy_days("max_token_lifetime_days", v)) {
                        Some(days) => settings.max_token_lifetime_days = days,
                        None => return,
                    }
                }
                if let Some(v) = req.idle_revoke_days {
                    let _ = ok(service::check_policy_days("idle_revoke_days", v));
                }
                let request = LifetimeRequest {
                    days: None,
                    at: None,
                    created_at: None,
                };
                check_expiry(TokenType::Personal, request, &settings);
            }
        }
        11 => {
            if let Some(req) = parse::<RefreshRequest>(body)
                && jwt::looks_like_jwt(&req.refresh)
            {
                let _ = UnverifiedJwt::parse(&req.refresh);
            }
        }
        12 => {
            if let Some(req) = parse::<CreateWebhookRequest>(body) {
                check_webhook_url(&req.url);
                let _ = ok(service::webhooks::check_events(&req.events));
                let _ = ok(service::webhooks::check_description(
                    req.description.as_deref(),
                ));
            }
        }
        13 => {
            if let Some(req) = parse::<UpdateWebhookRequest>(body) {
                if let Some(url) = &req.url {
                    check_webhook_url(url);
                }
                if let Some(events) = &req.events {
                    let _ = ok(service::webhooks::check_events(events));
                }
                if let Some(d) = &req.description {
                    let _ = ok(service::webhooks::check_description(d.as_deref()));
                }
            }
        }
        14 => {
            if let Some(report) = parse::<LeakReport>(body)
                && report.tokens.len() <= service::interop::MAX_LEAK_REPORT
            {
                for secret in &report.tokens {
                    if jwt::looks_like_jwt(secret) {
                        let _ = UnverifiedJwt::parse(secret);
                    } else {
                        let _ = token::parse(secret);
                    }
                }
            }
        }
        _ => {
            if !body.iter().all(u8::is_ascii_whitespace)
                && let Err(e) = parse_json::<EmptyBody>(body)
            {
                check_refusal(&e);
            }
        }
    }
}

/// The config: the input up to a line `#ENV` is the TOML file, each later `NAME=value` line
/// an environment variable; loaded and validated as at start, and a valid config's
/// derived values computed.
pub fn config(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let (file, env) = text.split_once("\n#ENV\n").unwrap_or((&text, ""));
    let env: Vec<(String, String)> = env
        .lines()
        .filter_map(|line| line.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let path = std::path::Path::new("fuzz.toml");
    let Ok(loaded) = Config::load_text(Some((path, file)), env) else {
        return;
    };
    let config = loaded.config;
    if config.validate().is_err() {
        return;
    }
    let _ = config.public_url();
    let _ = config.database_url();
    let _ = config.behind_tls();
    let _ = config.sessions.idle_timeout();
    let _ = config.is_trusted_proxy(std::net::IpAddr::from([127, 0, 0, 1]));
    let Ok(source) = config.forward_auth.target_source() else {
        panic!("a validated config has a target source");
    };
    let _ = source;
    // What the server writes out (`config show`, the defaults tree) reads back the same.
    if let Ok(tree) = toml::Table::try_from(&config) {
        let again = toml::to_string(&tree).unwrap_or_default();
        let back = match Config::load_text(Some((path, &again)), Vec::new()) {
            Ok(back) => back.config,
            Err(e) => panic!("a serialized config loads back: {e}\n{again}"),
        };
        assert_eq!(toml::Table::try_from(&back).ok(), Some(tree));
    }
}

const ISSUER: &str = "https://latchkey.example";

fn test_key() -> SigningKey {
    SigningKey::from_bytes(&[7; 32])
}

/// Access JWTs. First byte even: the rest is a presented JWT, parsed and verified against
/// a fixed key. Odd: the rest is `header JSON \n claims JSON`, signed with the fixed key,
/// then verified (so the claim checks behind the signature are reached); the same JWT
/// with its signature changed must fail.
pub fn jwt(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let key = test_key();
    let vk = key.verifying_key();
    if mode % 2 == 0 {
        let text = String::from_utf8_lossy(rest);
        let _ = jwt::looks_like_jwt(&text);
        if let Ok(unverified) = UnverifiedJwt::parse(&text) {
            let _ = unverified.kid();
            let _ = unverified.verify(&vk, ISSUER, NOW);
        }
        return;
    }
    let split = rest.iter().position(|b| *b == b'\n').unwrap_or(rest.len());
    let (header, claims) = (&rest[..split], rest.get(split + 1..).unwrap_or_default());
    let signing_input = format!("{}.{}", B64.encode(header), B64.encode(claims));
    let signature = key.sign(signing_input.as_bytes()).to_bytes();
    let jwt = format!("{signing_input}.{}", B64.encode(signature));
    let verified = UnverifiedJwt::parse(&jwt).and_then(|u| u.verify(&vk, ISSUER, NOW));
    if let Ok(claims) = &verified {
        check_claims(claims);
    }
    if verified.is_ok() || verified == Err(JwtError::Expired) {
        let mut forged = signature;
        forged[usize::from(mode) % 64] ^= 1 << (mode % 8);
        let forged = format!("{signing_input}.{}", B64.encode(forged));
        let refused = UnverifiedJwt::parse(&forged).and_then(|u| u.verify(&vk, ISSUER, NOW));
        assert!(refused.is_err(), "a changed signature is refused");
        let other = SigningKey::from_bytes(&[8; 32]).verifying_key();
        let refused = UnverifiedJwt::parse(&jwt).and_then(|u| u.verify(&other, ISSUER, NOW));
        assert!(refused.is_err(), "another key's JWT is refused");
    }
}

fn check_claims(claims: &AccessClaims) {
    assert_eq!(claims.iss, ISSUER);
    assert_eq!(claims.aud, "latchkey");
    assert!(claims.exp > NOW);
    assert!(claims.iat <= NOW + 60);
    assert!(
        claims
            .exp
            .checked_sub(claims.iat)
            .is_some_and(|ttl| ttl <= 901)
    );
}
