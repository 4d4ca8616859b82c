//! The served OpenAPI document and what the router takes from it: the handlers' `utoipa`
//! descriptions, completed here with what every operation shares (the forward-auth methods,
//! the error answers the middleware and extractors give), and the query parameters each
//! operation declares, which [`check_query`] holds requests to.

use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;

use axum::http::Method;
use serde_json::{Value, json};
use utoipa::OpenApi;

use crate::error::ApiError;

/// The methods forward-auth answers besides `GET` (see `forward_auth_methods` in the router).
const FORWARD_AUTH_METHODS: [&str; 5] = ["post", "put", "patch", "delete", "options"];

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

/// `(METHOD, route as the router writes it)` → the query parameters it declares.
static QUERY_PARAMS: LazyLock<HashMap<(String, String), Declared>> = LazyLock::new(|| {
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
            let free_form = query
                .iter()
                .any(|p| p.pointer("/schema/type").and_then(Value::as_str) == Some("object"));
            let declared = if free_form {
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
            map.insert((method.to_ascii_uppercase(), path.clone()), declared);
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
    let key = (method.to_owned(), route.replace("{*", "{"));
    let Some(declared) = QUERY_PARAMS.get(&key) else {
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
    forward_auth(&mut doc);
    doc
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
    let free_query = json!({
        "name": "query",
        "in": "query",
        "description": "Any query string: the original request's, which Caddy and Envoy pass along.",
        "required": false,
        "style": "form",
        "explode": true,
        "schema": {"type": "object", "additionalProperties": {"type": "string"}}
    });
    let original = json!({
        "name": "original",
        "in": "path",
        "description": "The original request's path (Envoy ext_authz `path_prefix: /auth/verify`).",
        "required": true,
        "schema": {"type": "string"}
    });
    for (path, suffix, extra) in [
        ("/auth/verify", "", vec![free_query.clone()]),
        (
            "/auth/verify/{original}",
            "_envoy",
            vec![original, free_query],
        ),
    ] {
        let mut item = serde_json::Map::new();
        for method in std::iter::once("get").chain(FORWARD_AUTH_METHODS) {
            let mut op = get.clone();
            op["operationId"] = json!(format!("forward_auth{suffix}_{method}"));
            op["parameters"] = json!(extra);
            item.insert(method.to_owned(), op);
        }
        paths.insert(path.to_owned(), Value::Object(item));
    }
}
