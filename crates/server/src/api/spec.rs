//! The served OpenAPI document and what the router takes from it: the handlers' `utoipa`
//! descriptions, completed here with what every operation shares (the forward-auth methods,
//! the error answers the middleware and extractors give), and the query parameters each
//! operation declares, which [`check_query`] holds requests to.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;

use axum::http::Method;
use serde_json::{Value, json};
use utoipa::OpenApi;

use crate::error::ApiError;
use latchkey_core::token_policy;

/// The methods forward-auth answers besides `GET` (see `forward_auth_methods` in the router).
const FORWARD_AUTH_METHODS: [&str; 5] = ["post", "put", "patch", "delete", "options"];

/// The operation extension that marks an operation taking any query string.
const ANY_QUERY: &str = "x-latchkey-any-query";

/// The document as JSON, built once.
static DOCUMENT: LazyLock<Value> = LazyLock::new(build);

/// The document as pretty JSON, built once (what `docs/openapi.json` holds).
static PRETTY: LazyLock<String> =
    LazyLock::new(|| serde_json::to_string_pretty(&*DOCUMENT).unwrap_or_default());

/// The query parameters an operation takes.
enum Declared {
    /// Exactly these names.
    Names(HashSet<String>),
    /// Anything (forward-auth: the original request's query rides along).
    Any,
}

/// Route as the document writes it → `METHOD` → the query parameters it declares (nested,
/// so that a request looks it up by borrowed strings).
static QUERY_PARAMS: LazyLock<HashMap<String, HashMap<String, Declared>>> = LazyLock::new(|| {
    let mut map = HashMap::new();
    let Some(paths) = DOCUMENT.get("paths").and_then(Value::as_object) else {
        return map;
    };
    for (path, item) in paths {
        let Some(item) = item.as_object() else {
            continue;
        };
        for (method, operation) in item {
            let params = operation
                .get("parameters")
                .and_then(Value::as_array)
                .map(Vec::as_slice)
                .unwrap_or_default();
            let query: Vec<&Value> = params
                .iter()
                .filter(|p| p.get("in").and_then(Value::as_str) == Some("query"))
                .collect();
            let declared = if operation.get(ANY_QUERY).is_some() {
                Declared::Any
            } else {
                Declared::Names(
                    query
                        .iter()
                        .filter_map(|p| p.get("name").and_then(Value::as_str))
                        .map(str::to_owned)
                        .collect(),
                )
            };
            map.entry(path.clone())
                .or_insert_with(HashMap::new)
                .insert(method.to_ascii_uppercase(), declared);
        }
    }
    map
});

/// The document as JSON.
pub fn document() -> &'static Value {
    &DOCUMENT
}

/// The document as pretty JSON.
pub fn pretty() -> &'static str {
    &PRETTY
}

/// Refuses a query parameter that the operation matched as `route` (the router's pattern,
/// e.g. `/api/v1/tokens/{id}`) does not declare: 422 `invalid_field` naming it, so that a
/// misspelt filter never silently answers unfiltered. Routes outside the document (the
/// console) are not checked here.
pub fn check_query(method: &Method, route: &str, query: &str) -> Result<(), ApiError> {
    let method = if method == Method::HEAD {
        "GET"
    } else {
        method.as_str()
    };
    // The router writes a catch-all segment `{*name}`, the document `{name}`.
    let route: Cow<str> = if route.contains("{*") {
        Cow::Owned(route.replace("{*", "{"))
    } else {
        Cow::Borrowed(route)
    };
    let Some(declared) = QUERY_PARAMS
        .get(route.as_ref())
        .and_then(|methods| methods.get(method))
    else {
        return Ok(());
    };
    let Declared::Names(names) = declared else {
        return Ok(());
    };
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query)
        .map_err(|_| ApiError::BadRequest("unparseable query string".into()))?;
    for (name, _) in pairs {
        if !names.contains(&name) {
            let mut known: Vec<&str> = names.iter().map(String::as_str).collect();
            known.sort_unstable();
            let takes = if known.is_empty() {
                "this operation takes no query parameters".to_owned()
            } else {
                format!("this operation takes {}", known.join(", "))
            };
            return Err(ApiError::InvalidField {
                message: format!("unknown query parameter {name}: {takes}"),
                field: name,
            });
        }
    }
    Ok(())
}

fn build() -> Value {
    let mut doc = serde_json::to_value(crate::api::ApiDoc::openapi()).unwrap_or(Value::Null);
    undescribed_routes(&mut doc);
    forward_auth(&mut doc);
    unique_operation_ids(&mut doc);
    constraints(&mut doc);
    error_answers(&mut doc);
    doc["servers"] = json!([{"url": "/", "description": "The server that serves this document"}]);
    security_schemes(&mut doc);
    crate::api::examples::add(&mut doc);
    doc
}

/// Every operation, as `(path, method, operation)`.
fn operations(doc: &mut Value) -> Vec<(String, String, &mut Value)> {
    let mut all = Vec::new();
    if let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) {
        for (path, item) in paths.iter_mut() {
            if let Some(item) = item.as_object_mut() {
                for (method, op) in item.iter_mut() {
                    all.push((path.clone(), method.clone(), op));
                }
            }
        }
    }
    all
}

/// Routes the handlers do not describe themselves: the refresh aliases (the path Django
/// REST framework SimpleJWT clients call, with and without the trailing slash), the
/// document itself and the Prometheus metrics.
fn undescribed_routes(doc: &mut Value) {
    let Some(refresh) = doc
        .pointer("/paths/~1api~1v1~1token~1refresh/post")
        .cloned()
    else {
        return;
    };
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for (path, id) in [
        ("/api/v1/token/refresh/", "refresh_slash"),
        ("/api/token/refresh", "refresh_alias"),
        ("/api/token/refresh/", "refresh_alias_slash"),
    ] {
        let mut op = refresh.clone();
        op["operationId"] = json!(id);
        op["description"] = json!("The same as `POST /api/v1/token/refresh` (an alias).");
        paths.insert(path.to_owned(), json!({"post": op}));
    }
    paths.insert(
        "/api/v1/openapi.json".to_owned(),
        json!({"get": {
            "tags": ["system"],
            "summary": "This document.",
            "operationId": "openapi",
            "security": [{}],
            "responses": {"200": {
                "description": "The OpenAPI 3.1 description of this API.",
                "content": {"application/json": {"schema": {"type": "object"}}}
            }}
        }}),
    );
    paths.insert(
        "/metrics".to_owned(),
        json!({"get": {
            "tags": ["system"],
            "summary": "Prometheus metrics (text exposition format 0.0.4).",
            "description": "Public by default. With `[metrics] require_scope` it takes a token with that scope (401 without a credential, 403 without the scope); with `[metrics] listen` it is served on that address only (404 here).",
            "operationId": "metrics",
            "security": [{}, {"bearer": []}, {"token": []}, {"api_key": []}],
            "responses": {
                "200": {
                    "description": "Metrics.",
                    "content": {"text/plain": {"schema": {"type": "string"}}}
                },
                "404": {"$ref": "#/components/responses/NotFound"}
            }
        }}),
    );
}

/// Handlers in different modules share names (`get`, `list`, `create` …): such an
/// operationId becomes `list_<tag>` or `<verb>_<tag without the s>` (`get_token`).
fn unique_operation_ids(doc: &mut Value) {
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (_, _, op) in operations(doc) {
        if let Some(id) = op.get("operationId").and_then(Value::as_str) {
            *seen.entry(id.to_owned()).or_default() += 1;
        }
    }
    for (_, _, op) in operations(doc) {
        let Some(id) = op.get("operationId").and_then(Value::as_str) else {
            continue;
        };
        if seen.get(id).copied().unwrap_or(0) < 2 {
            continue;
        }
        let tag = op
            .pointer("/tags/0")
            .and_then(Value::as_str)
            .unwrap_or("api");
        let new = if id == "list" {
            format!("list_{tag}")
        } else {
            format!("{id}_{}", tag.strip_suffix('s').unwrap_or(tag))
        };
        op["operationId"] = json!(new);
    }
}

/// What the service checks, said in the schemas: `(schema, property, constraints)`.
fn body_constraints() -> Vec<(&'static str, &'static str, Value)> {
    // `check_name`: not blank after trimming, no control characters (Unicode Cc).
    let name = |max: u32| json!({"minLength": 1, "maxLength": max, "pattern": r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$"});
    let username = json!({"minLength": 1, "maxLength": 64, "pattern": "^[A-Za-z0-9._@-]+$"});
    let password = json!({"minLength": 8, "maxLength": 1024});
    let email = json!({"maxLength": 254, "pattern": r"^[^\s@]*@[^\s]*$"});
    let count = json!({"minimum": 1});
    // `parse_allowed_ips`: IPv4 or IPv6 addresses or CIDRs (IPv6 in its hexadecimal
    // forms; the parser also takes an embedded IPv4 tail, which the pattern leaves out).
    let octet = "(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])";
    let h = "[0-9a-fA-F]{1,4}";
    let v6 = format!(
        "({h}:){{7}}{h}|({h}:){{1,7}}:|({h}:){{1,6}}:{h}|({h}:){{1,5}}(:{h}){{1,2}}|\
         ({h}:){{1,4}}(:{h}){{1,3}}|({h}:){{1,3}}(:{h}){{1,4}}|({h}:){{1,2}}(:{h}){{1,5}}|\
         {h}:((:{h}){{1,6}})|:((:{h}){{1,7}}|:)"
    );
    let allowed_ips = json!({
        "minItems": 1,
        "maxItems": token_policy::MAX_ALLOWED_IPS,
        "items": {"type": "string", "anyOf": [
            {"format": "ipv4"},
            {"format": "ipv6"},
            {"pattern": format!("^({octet}\\.){{3}}{octet}/(3[0-2]|[12]?[0-9])$")},
            {"pattern": format!("^({v6})/(12[0-8]|1[01][0-9]|[1-9]?[0-9])$")},
        ]},
    });
    let uses = json!({"minimum": 0, "maximum": token_policy::MAX_USES});
    vec![
        ("CreateTokenRequest", "name", name(200)),
        ("CreateProjectRequest", "name", name(200)),
        (
            "CreateProjectRequest",
            "description",
            json!({"maxLength": 2000}),
        ),
        ("CreateWorkspaceRequest", "name", name(200)),
        ("CreateUserRequest", "username", username),
        ("CreateUserRequest", "password", password.clone()),
        ("CreateUserRequest", "email", email.clone()),
        ("CreateUserRequest", "display_name", name(200)),
        ("UpdateUserRequest", "display_name", name(200)),
        ("CreateWebhookRequest", "description", name(200)),
        ("UpdateWebhookRequest", "description", name(200)),
        ("UpdateUserRequest", "password", password),
        ("UpdateUserRequest", "email", email),
        (
            "CreateWebhookRequest",
            "url",
            json!({"format": "uri", "pattern": "^https?://"}),
        ),
        ("CreateWebhookRequest", "events", json!({"minItems": 1})),
        (
            "BulkRevokeRequest",
            "ids",
            json!({"minItems": 1, "maxItems": latchkey_proto::MAX_BULK_REVOKE}),
        ),
        (
            "UpdateWebhookRequest",
            "url",
            json!({"format": "uri", "pattern": "^https?://"}),
        ),
        ("UpdateWebhookRequest", "events", json!({"minItems": 1})),
        (
            "CreateTokenRequest",
            "expires_in_days",
            json!({"minimum": 1}),
        ),
        (
            "RotateTokenRequest",
            "expires_in_days",
            json!({"minimum": 1}),
        ),
        (
            "UpdateInstanceSettingsRequest",
            "max_active_tokens",
            count.clone(),
        ),
        (
            "UpdateInstanceSettingsRequest",
            "default_token_lifetime_days",
            json!({"minimum": 1, "maximum": crate::service::settings::MAX_DAYS}),
        ),
        ("UpdateTokenSettingsRequest", "max_tokens_per_user", count),
        ("CreateTokenRequest", "allowed_ips", allowed_ips.clone()),
        ("UpdateTokenRequest", "allowed_ips", allowed_ips),
        ("CreateTokenRequest", "remaining_uses", uses.clone()),
        ("UpdateTokenRequest", "remaining_uses", uses),
        (
            "RateLimit",
            "limit",
            json!({"minimum": 1, "maximum": token_policy::MAX_RATE_LIMIT}),
        ),
        (
            "RateLimit",
            "window_secs",
            json!({"minimum": 1, "maximum": token_policy::MAX_WINDOW_SECS}),
        ),
        (
            "Refill",
            "amount",
            json!({"minimum": 1, "maximum": token_policy::MAX_USES}),
        ),
        (
            "UpdateTokenSettingsRequest",
            "personal_token_ttl_days",
            json!({"minimum": 1, "maximum": crate::service::settings::MAX_DAYS}),
        ),
    ]
}

/// Query parameter constraints (what `PageParams` and the audit filter check) and the
/// body constraints of [`body_constraints`].
fn constraints(doc: &mut Value) {
    for (path, method, op) in operations(doc) {
        let inventory = path == "/api/v1/tokens" && method == "get";
        let Some(params) = op.get_mut("parameters").and_then(Value::as_array_mut) else {
            continue;
        };
        for p in params.iter_mut() {
            if p.get("name").and_then(Value::as_str) == Some("Idempotency-Key") {
                p["schema"] = json!({"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[!-~]+$"});
                continue;
            }
            if p.get("in").and_then(Value::as_str) != Some("query") {
                continue;
            }
            let name = p.get("name").and_then(Value::as_str);
            if inventory && let Some(schema) = name.and_then(inventory_param) {
                p["schema"] = schema;
                continue;
            }
            let schema = match name {
                Some("limit") => {
                    Some(json!({"type": "integer", "minimum": 1, "maximum": 200, "default": 50}))
                }
                Some("cursor") => Some(
                    json!({"type": "string", "format": "uuid", "description": "next_cursor of the previous page"}),
                ),
                Some("since" | "until") => Some(json!({"type": "string", "format": "date-time"})),
                Some("format") => {
                    Some(json!({"type": "string", "enum": ["json", "csv"], "default": "json"}))
                }
                _ => None,
            };
            if let Some(schema) = schema {
                p["schema"] = schema;
            }
        }
    }
    let Some(schemas) = doc.pointer_mut("/components/schemas") else {
        return;
    };
    unsigned_ranges(schemas);
    for (schema, property, extra) in body_constraints() {
        let Some(target) = schemas.pointer_mut(&format!("/{schema}/properties/{property}")) else {
            continue;
        };
        if let (Some(target), Some(extra)) = (target.as_object_mut(), extra.as_object()) {
            for (k, v) in extra {
                target.insert(k.clone(), v.clone());
            }
        }
    }
}

/// What `InventoryQuery::parse` takes for the inventory's text filters (`GET
/// /api/v1/tokens`); the others keep the schema of their type.
fn inventory_param(name: &str) -> Option<Value> {
    let instant = json!({"type": "string", "anyOf": [{"format": "date-time"}, {"format": "date"}]});
    match name {
        "workspace" => Some(
            json!({"type": "string", "minLength": 1, "maxLength": 200, "pattern": r"^[^\u0000-\u001f\u007f-\u009f]+$"}),
        ),
        "owner" => Some(json!({"type": "string", "pattern": "^[A-Za-z0-9._@-]{1,64}$"})),
        "q" => Some(json!({"type": "string", "minLength": 1, "maxLength": 200})),
        "created_before" | "expires_before" | "last_used_before" => Some(instant),
        _ => None,
    }
}

/// `u32` and `u64` fields come out as `int32` / `int64` with `minimum: 0`, which says
/// less than the server takes (`u32` reaches 4294967295): the range instead of the format.
fn unsigned_ranges(value: &mut Value) {
    match value {
        Value::Object(map) => {
            let unsigned = map.get("minimum").and_then(Value::as_u64) == Some(0);
            let max = match map.get("format").and_then(Value::as_str) {
                Some("int32") if unsigned => Some(json!(u32::MAX)),
                Some("int64") if unsigned => Some(json!(u64::MAX)),
                _ => None,
            };
            if let Some(max) = max {
                map.remove("format");
                map.insert("maximum".to_owned(), max);
            }
            for v in map.values_mut() {
                unsigned_ranges(v);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(unsigned_ranges),
        _ => {}
    }
}

/// The error answers every operation can give besides its own, by what it takes: the
/// authentication middleware (401, 403, 429), the extractors (400, 413, 415, 422), the
/// router (404 for an unknown id), the query check (422) and the store (503).
fn error_answers(doc: &mut Value) {
    let responses = json!({
        "BadRequest": "400 `malformed_json` (the body is not JSON) or `bad_request`.",
        "Unauthenticated": "401 `unauthenticated` or `invalid_token`, with `WWW-Authenticate`.",
        "Forbidden": "403 `forbidden` (role, scope, CSRF) or `token_type_not_allowed`, with `WWW-Authenticate`; or the token's own policy: `ip_not_allowed` (used from outside its `allowed_ips`), `usage_exceeded` (no `remaining_uses` left; `Retry-After` until the refill, if any).",
        "NotFound": "404 `not_found`: no such object, or one the caller may not see.",
        "Conflict": "409 `conflict`, `limit_exceeded` (with `limit`), `leaked` or `not_recoverable`.",
        "PayloadTooLarge": "413 `payload_too_large`: the body is over `max_body_bytes`.",
        "UnsupportedMediaType": "415 `unsupported_media_type`: the body's `Content-Type` is not the one this operation takes.",
        "Unprocessable": "422 `invalid_field` (the field or query parameter named in `field`), `lifetime_exceeds_policy` or `workspace_required`.",
        "RateLimited": "429 `rate_limited`, with `Retry-After`: too many failed checks from this address, or the token over its own `rate_limit` (then also `RateLimit-Limit`, `RateLimit-Remaining` and `RateLimit-Reset`).",
        "Unavailable": "503 `unavailable`: the database is unreachable; retry (`Retry-After`).",
    });
    let mut components = serde_json::Map::new();
    if let Some(responses) = responses.as_object() {
        for (name, description) in responses {
            components.insert(
                name.clone(),
                json!({
                    "description": description,
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
                }),
            );
        }
    }
    let security = doc.get("security").cloned().unwrap_or(json!([]));
    for (path, method, op) in operations(doc) {
        let forward_auth = path.starts_with("/auth/verify");
        let anonymous = op
            .get("security")
            .and_then(Value::as_array)
            .or(security.as_array())
            .is_some_and(|reqs| {
                reqs.iter()
                    .all(|r| r.as_object().is_some_and(|o| o.is_empty()))
            });
        let takes_body = op.get("requestBody").is_some();
        let has_path_params = op
            .get("parameters")
            .and_then(Value::as_array)
            .is_some_and(|ps| {
                ps.iter()
                    .any(|p| p.get("in").and_then(Value::as_str) == Some("path"))
            });
        let Some(answers) = op.get_mut("responses").and_then(Value::as_object_mut) else {
            continue;
        };
        let mut add = |status: &str, name: &str| {
            answers
                .entry(status.to_owned())
                .or_insert_with(|| json!({"$ref": format!("#/components/responses/{name}")}));
        };
        if forward_auth {
            // Proxies turn anything but 200/401/403 into a 500: forward-auth answers those
            // (its own description) and 405 for methods no proxied request carries.
            continue;
        }
        let _ = method;
        // A query parameter the operation does not declare.
        add("422", "Unprocessable");
        if !matches!(
            path.as_str(),
            "/healthz"
                | "/readyz"
                | "/api/v1/openapi.json"
                | "/metrics"
                | "/.well-known/jwks.json"
                | "/.well-known/oauth-authorization-server"
        ) {
            add("503", "Unavailable");
        }
        if !anonymous {
            add("401", "Unauthenticated");
            add("403", "Forbidden");
            add("429", "RateLimited");
        }
        if takes_body {
            add("400", "BadRequest");
            add("413", "PayloadTooLarge");
            add("415", "UnsupportedMediaType");
        }
        if has_path_params {
            add("404", "NotFound");
        }
    }
    if let Some(c) = doc.get_mut("components").and_then(Value::as_object_mut) {
        c.insert("responses".to_owned(), Value::Object(components));
    }
}

/// The ways to authenticate (DESIGN §3): `Authorization: Bearer` (a token or an access
/// JWT), `Authorization: Token`, `X-API-Key`, and the console's session cookie.
fn security_schemes(doc: &mut Value) {
    if let Some(schemes) = doc.pointer_mut("/components/securitySchemes") {
        schemes["bearer"] = json!({"type": "http", "scheme": "bearer", "description": "A token (`lkp_…`, `lks_…` …) or an access JWT from `/api/v1/token/refresh`."});
        schemes["token"] = json!({"type": "http", "scheme": "Token", "description": "`Authorization: Token <token>`, as Django REST framework clients send it."});
        schemes["api_key"] = json!({"type": "apiKey", "in": "header", "name": "X-API-Key", "description": "A token; the config's `api_key_headers` add more header names."});
        schemes["session"] = json!({"type": "apiKey", "in": "cookie", "name": crate::auth::SESSION_COOKIE, "description": "The console session (`POST /api/v1/session`); writes need the console's `Origin`."});
    }
    let everyone = json!([{"bearer": []}, {"token": []}, {"api_key": []}, {"session": []}]);
    doc["security"] = everyone.clone();
    for (_, _, op) in operations(doc) {
        // An operation open to anyone that also looks at a caller (`verify`: `(), bearer`
        // in its handler) takes every way of authenticating, not only `bearer`.
        if let Some(reqs) = op.get("security").and_then(Value::as_array)
            && reqs.iter().any(|r| r.get("bearer").is_some())
            && !reqs.iter().any(|r| r.get("token").is_some())
            && reqs.len() > 1
        {
            let mut reqs = reqs.clone();
            reqs.retain(|r| r.get("bearer").is_none());
            reqs.extend(everyone.as_array().cloned().unwrap_or_default());
            op["security"] = Value::Array(reqs);
        }
    }
}

/// Forward-auth answers on `/auth/verify` and, for Envoy, `/auth/verify/{original}`, with
/// every method a proxied request may carry: the `GET` description, once per method.
fn forward_auth(doc: &mut Value) {
    let Some(get) = doc.pointer("/paths/~1auth~1verify/get").cloned() else {
        return;
    };
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    let original = json!({
        "name": "original",
        "in": "path",
        "description": "The original request's path (Envoy ext_authz `path_prefix: /auth/verify`).",
        "required": true,
        "schema": {"type": "string"}
    });
    for (path, suffix, extra) in [
        ("/auth/verify", "", vec![]),
        ("/auth/verify/{original}", "_envoy", vec![original]),
    ] {
        let mut item = serde_json::Map::new();
        for method in std::iter::once("get").chain(FORWARD_AUTH_METHODS) {
            let mut op = get.clone();
            op["operationId"] = json!(format!("forward_auth{suffix}_{method}"));
            op["parameters"] = json!(extra);
            // Any query string is taken: it is the original request's, which Caddy and
            // Envoy pass along (see `check_query`).
            op[ANY_QUERY] = json!(true);
            item.insert(method.to_owned(), op);
        }
        paths.insert(path.to_owned(), Value::Object(item));
    }
}
