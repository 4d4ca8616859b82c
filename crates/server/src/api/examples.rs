//! Examples for the OpenAPI document: one per schema that travels as a body, by its name
//! in `components/schemas` ([`schema`]), from which [`add`] gives every operation an
//! example of its request body and of its main success answer, its path parameters an
//! example id, and forward-auth's answers example headers.
//!
//! A new operation whose body or answer is a new schema needs that schema's example here;
//! `every_operation_has_an_example` (below) fails until it has one, and tests/openapi
//! checks each example against its schema (and schemathesis sends the request examples).

use serde_json::{Value, json};

const TOKEN_ID: &str = "0193a5c2-5e1f-7b2a-9c4d-8e6f1a2b3c4d";
const USER_ID: &str = "0193a5bf-7a8b-7c9d-8e0f-1a2b3c4d5e6f";
const ADMIN_ID: &str = "0193a5be-2b3c-7d4e-9f5a-6b7c8d9e0f1a";
const ORG_ID: &str = "0193a5bd-1a2b-7c3d-8e4f-5a6b7c8d9e0f";
const WORKSPACE_ID: &str = "0193a5c0-1d2e-7f3a-8b4c-5d6e7f8a9b0c";
const PROJECT_ID: &str = "0193a5c1-3e4f-7a5b-9c6d-7e8f9a0b1c2d";
const WEBHOOK_ID: &str = "0193a5c3-4f5a-7b6c-8d7e-9f0a1b2c3d4e";
const DELIVERY_ID: &str = "0193a5c4-5a6b-7c7d-9e8f-0a1b2c3d4e5f";
const EVENT_ID: &str = "0193a5c5-6b7c-7d8e-8f9a-1b2c3d4e5f6a";
const CREATED: &str = "2026-12-01T09:30:00Z";
const LAST_USED: &str = "2026-12-07T08:12:45Z";
const EXPIRES: &str = "2027-03-01T09:30:00Z";
const SECRET: &str = "lkc_3VqP9xR2mK7tW4nB8cY1dF6gH0jL5sA2QxZk9e";
const JWT: &str =
    "eyJhbGciOiJFZERTQSIsImtpZCI6IjIwMjYtMTIifQ.eyJzdWIiOiIwMTkzYTViZiJ9.c2lnbmF0dXJl";

/// An example id for a path parameter, by its name.
fn path_parameter(name: &str) -> Option<&'static str> {
    Some(match name {
        "id" => TOKEN_ID,
        "ws" => WORKSPACE_ID,
        "user" => USER_ID,
        "org" => ORG_ID,
        "delivery" => DELIVERY_ID,
        "original" => "api/orders/42",
        _ => return None,
    })
}

/// A path parameter's example where the parameter `id` names something other than a token.
fn id_of(path: &str) -> &'static str {
    if path.starts_with("/api/v1/users") {
        USER_ID
    } else if path.starts_with("/api/v1/webhooks") {
        WEBHOOK_ID
    } else if path.contains("/projects/") {
        PROJECT_ID
    } else {
        TOKEN_ID
    }
}

fn token() -> Value {
    json!({
        "id": TOKEN_ID,
        "name": "payments-deploy",
        "type": "client",
        "state": "active",
        "hint": "lkc_…Zk9e",
        "scopes": ["projects:read", "projects:write"],
        "projects": [PROJECT_ID],
        "workspace_id": WORKSPACE_ID,
        "workspace_name": "Payments",
        "owner_id": null,
        "owner_username": null,
        "environment": "production",
        "created_at": CREATED,
        "created_by": USER_ID,
        "expires_at": EXPIRES,
        "last_used_at": LAST_USED,
        "last_used_ip": "203.0.113.7",
        "metadata": {"customer": "acme", "plan": "pro"},
        "allowed_ips": ["203.0.113.0/24", "2001:db8::/32"],
        "rate_limit": {"limit": 100, "window_secs": 60},
        "remaining_uses": 9500,
        "refill": {"amount": 10000, "interval": "monthly"},
        "recoverable": false
    })
}

fn user() -> Value {
    json!({
        "id": USER_ID,
        "username": "alice",
        "display_name": "Alice Moreau",
        "email": "alice@example.com",
        "role": "member",
        "active": true,
        "created_at": CREATED
    })
}

fn webhook() -> Value {
    json!({
        "id": WEBHOOK_ID,
        "url": "https://hooks.example.com/latchkey",
        "description": "Security channel",
        "events": ["token.created", "token.revoked", "token.leaked"],
        "enabled": true,
        "created_at": CREATED,
        "updated_at": CREATED
    })
}

/// `base` with `extra`'s fields added (an `allOf` of an object and more fields).
fn with(mut base: Value, extra: Value) -> Value {
    if let (Some(base), Some(extra)) = (base.as_object_mut(), extra.as_object()) {
        for (k, v) in extra {
            base.insert(k.clone(), v.clone());
        }
    }
    base
}

/// The example of schema `name` (`Page_X`: a page of one `X`), if it has one.
pub fn schema(name: &str) -> Option<Value> {
    if let Some(item) = name.strip_prefix("Page_") {
        return Some(json!({"items": [schema(item)?], "next_cursor": null}));
    }
    Some(match name {
        "Token" => token(),
        "CreatedToken" => with(token(), json!({"token": SECRET})),
        "User" => user(),
        "Me" => with(
            user(),
            json!({
                "org": {"id": ORG_ID, "name": "Example Corp"},
                "memberships": [{"workspace_id": WORKSPACE_ID, "workspace_name": "Payments", "role": "member"}]
            }),
        ),
        "Webhook" => webhook(),
        "CreatedWebhook" => with(
            webhook(),
            json!({"secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}),
        ),
        "WebhookDelivery" => json!({
            "id": DELIVERY_ID,
            "webhook_id": WEBHOOK_ID,
            "event_id": EVENT_ID,
            "event_type": "token.revoked",
            "state": "delivered",
            "attempts": 2,
            "last_status": 200,
            "last_error": null,
            "last_attempt_at": LAST_USED,
            "next_attempt_at": null,
            "created_at": CREATED,
            "attempt_log": [
                {"at": CREATED, "status": 503, "error": "HTTP 503"},
                {"at": LAST_USED, "status": 200, "error": null}
            ]
        }),
        "Workspace" => json!({
            "id": WORKSPACE_ID,
            "org_id": ORG_ID,
            "name": "Payments",
            "created_at": CREATED
        }),
        "Project" => json!({
            "id": PROJECT_ID,
            "workspace_id": WORKSPACE_ID,
            "name": "checkout-api",
            "description": "The checkout service",
            "created_by": USER_ID,
            "created_at": CREATED
        }),
        "Member" => json!({
            "workspace_id": WORKSPACE_ID,
            "user_id": USER_ID,
            "username": "alice",
            "role": "member",
            "created_at": CREATED
        }),
        "AuditEvent" => json!({
            "id": EVENT_ID,
            "action": "token.revoked",
            "actor_id": ADMIN_ID,
            "actor_token_id": null,
            "subject_user_id": null,
            "target_type": "token",
            "target_id": TOKEN_ID,
            "workspace_id": WORKSPACE_ID,
            "ip": "198.51.100.23",
            "details": {"name": "payments-deploy"},
            "created_at": LAST_USED
        }),
        "InstanceSettings" => {
            json!({"max_active_tokens": 10000, "default_token_lifetime_days": 90})
        }
        "TokenSettings" => json!({
            "enabled_types": ["personal", "client", "frontend", "admin"],
            "personal_token_ttl_days": 90,
            "max_tokens_per_user": 20,
            "token_creators": "members",
            "recoverable_types": ["legacy"],
            "idle_revoke_days": 90,
            "max_token_lifetime_days": 366,
            "approval_required_types": ["admin"]
        }),
        "Health" => json!({"status": "ok"}),
        "RefreshResponse" => json!({"access": JWT, "expires_in": 300}),
        "VerifyResponse" => json!({"valid": true, "reason": null, "token": token()}),
        // Request bodies.
        "CreateTokenRequest" => json!({
            "name": "payments-deploy",
            "type": "client",
            "scopes": ["projects:read", "projects:write"],
            "projects": [PROJECT_ID],
            "environment": "production",
            "expires_in_days": 90,
            "metadata": {"customer": "acme", "plan": "pro"},
            "allowed_ips": ["203.0.113.0/24", "2001:db8::/32"],
            "rate_limit": {"limit": 100, "window_secs": 60},
            "remaining_uses": 10000,
            "refill": {"amount": 10000, "interval": "monthly"}
        }),
        "UpdateTokenRequest" => json!({
            "allowed_ips": ["203.0.113.0/24", "2001:db8::/32"],
            "rate_limit": {"limit": 600, "window_secs": 60},
            "metadata": {"team": "payments"}
        }),
        "RevealedToken" => json!({"token": SECRET}),
        "TokenUsage" => {
            // 90 days, oldest first: a quiet start, then a few busy days.
            let daily: Vec<Value> = (0..90_u64)
                .map(|i| {
                    let day = time::Date::from_calendar_date(2026, time::Month::September, 9)
                        .map(|d| d + time::Duration::days(i64::try_from(i).unwrap_or(0)))
                        .map(|d| d.to_string())
                        .unwrap_or_default();
                    json!({"date": day, "count": if i < 80 { 0 } else { (i - 79) * 37 }})
                })
                .collect();
            json!({
                "last_used_at": LAST_USED,
                "last_ips": [
                    {"ip": "203.0.113.7", "last_seen_at": LAST_USED},
                    {"ip": "2001:db8::17", "last_seen_at": "2026-12-06T17:40:02Z"}
                ],
                "daily": daily
            })
        }
        "BulkRevokeRequest" => json!({"ids": [TOKEN_ID, PROJECT_ID]}),
        "BulkRevokeResponse" => json!({
            "revoked": [TOKEN_ID],
            "skipped": [{"id": PROJECT_ID, "reason": "not_found"}]
        }),
        "RotateTokenRequest" => json!({"expires_in_days": 90, "grace_seconds": 3600}),
        "CreateUserRequest" => json!({
            "username": "alice",
            "password": "correct horse battery staple",
            "role": "member",
            "display_name": "Alice Moreau",
            "email": "alice@example.com"
        }),
        "UpdateUserRequest" => json!({"role": "admin", "display_name": "Alice Moreau"}),
        "CreateWorkspaceRequest" => json!({"name": "Payments"}),
        "CreateProjectRequest" => {
            json!({"name": "checkout-api", "description": "The checkout service"})
        }
        "PutMemberRequest" => json!({"role": "member"}),
        "CreateWebhookRequest" => json!({
            "url": "https://hooks.example.com/latchkey",
            "events": ["token.created", "token.revoked", "token.leaked"],
            "description": "Security channel"
        }),
        "UpdateWebhookRequest" => json!({"enabled": false}),
        "UpdateInstanceSettingsRequest" => {
            json!({"max_active_tokens": 10000, "default_token_lifetime_days": 90})
        }
        "UpdateTokenSettingsRequest" => {
            json!({"personal_token_ttl_days": 90, "max_tokens_per_user": 20})
        }
        "SignInRequest" => json!({"username": "alice", "password": "correct horse battery staple"}),
        "RefreshRequest" => json!({"refresh": "lkp_8Hn2Qw5Er7Ty1Ui3Op6As9Df4Gh0Jk2Lz4Xc6V"}),
        "VerifyRequest" => json!({"token": SECRET, "ip": "203.0.113.7"}),
        "LeakReport" => json!({"tokens": [SECRET]}),
        "OAuthTokenForm" => json!({"token": SECRET, "token_type_hint": "access_token"}),
        _ => return None,
    })
}

/// Examples of the answers that are not a schema of their own, by operationId.
fn answer(operation_id: &str) -> Option<Value> {
    Some(match operation_id {
        "jwks" => json!({"keys": [{
            "kty": "OKP",
            "crv": "Ed25519",
            "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo",
            "kid": "2026-12",
            "use": "sig",
            "alg": "EdDSA"
        }]}),
        "oauth_metadata" => json!({
            "issuer": "https://latchkey.example.com",
            "jwks_uri": "https://latchkey.example.com/.well-known/jwks.json",
            "introspection_endpoint": "https://latchkey.example.com/oauth/introspect",
            "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "revocation_endpoint": "https://latchkey.example.com/oauth/revoke",
            "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "scopes_supported": ["projects:read", "projects:write", "tokens:read", "tokens:write", "members:read", "introspect", "admin", "metrics:read"],
            "response_types_supported": [],
            "grant_types_supported": [],
            "service_documentation": "https://latchkey.example.com/api/v1/openapi.json"
        }),
        "introspect" => json!({
            "active": true,
            "scope": "projects:read projects:write",
            "client_id": TOKEN_ID,
            "sub": WORKSPACE_ID,
            "token_type": "Bearer",
            "iat": 1_764_581_400,
            "exp": 1_772_357_400,
            "workspace_id": WORKSPACE_ID,
            "latchkey_type": "client",
            "environment": "production",
            "projects": [PROJECT_ID]
        }),
        "oauth_revoke" => json!({}),
        "inventory" => json!(format!(
            "id,name,type,state,workspace_id,workspace_name,owner_id,owner_username,created_by,\
             scopes,projects,environment,hint,created_at,expires_at,last_used_at,last_used_ip\r\n\
             {TOKEN_ID},payments-deploy,client,active,{WORKSPACE_ID},Payments,,,{USER_ID},\
             projects:read projects:write,{PROJECT_ID},production,lkc_…Zk9e,{CREATED},{EXPIRES},\
             {LAST_USED},203.0.113.7\r\n"
        )),
        "report_leaked" => json!({"status": "accepted", "received": 1}),
        "openapi" => {
            json!({"openapi": "3.1.0", "info": {"title": "Latchkey", "version": "1"}, "paths": {}})
        }
        "metrics" => json!(
            "# TYPE latchkey_build_info gauge\nlatchkey_build_info{version=\"1.0.0\",commit=\"95f0b48\"} 1\n"
        ),
        _ => return None,
    })
}

/// The JSON bodies of answers whose handlers do not name a schema: `(operationId, status,
/// schema)`, so that their examples have a media type to stand in.
fn unnamed_answers() -> Vec<(&'static str, &'static str, Value)> {
    let object = |required: &[&str]| json!({"type": "object", "required": required});
    vec![
        ("jwks", "200", object(&["keys"])),
        ("oauth_metadata", "200", object(&["issuer", "jwks_uri"])),
        ("introspect", "200", object(&["active"])),
        ("oauth_revoke", "200", object(&[])),
        ("report_leaked", "202", object(&["status", "received"])),
    ]
}

/// The example for a body of `schema` (a `$ref`, or `oneOf` a `$ref` and `null`).
fn for_schema(schema: &Value) -> Option<Value> {
    if let Some(name) = schema
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(|r| r.strip_prefix("#/components/schemas/"))
    {
        return self::schema(name);
    }
    schema
        .get("oneOf")
        .and_then(Value::as_array)?
        .iter()
        .find_map(for_schema)
}

/// The identity headers of an allowed forward-auth request, and the reason of a refusal.
fn forward_auth_headers(op: &mut Value) {
    let header = |description: &str, example: &str| json!({"description": description, "schema": {"type": "string"}, "example": example});
    if let Some(ok) = op.pointer_mut("/responses/200") {
        ok["headers"] = json!({
            "X-Latchkey-Token-Id": header("The token's id.", TOKEN_ID),
            "X-Latchkey-Token-Type": header("The token's type.", "client"),
            "X-Latchkey-Scopes": header("What it may do here, space-separated.", "projects:read projects:write"),
            "X-Latchkey-Workspace": header("The workspace it acts in.", WORKSPACE_ID),
            "X-Latchkey-Environment": header("The environment it is bound to, if any.", "production"),
            "X-Latchkey-Projects": header("The projects it is bound to, comma-separated, if any.", PROJECT_ID),
            "X-Latchkey-User": header("The owner's username (personal and legacy tokens).", "alice"),
            "X-Latchkey-User-Id": header("The owner's id (personal and legacy tokens).", USER_ID),
            "X-Latchkey-Metadata": header("The token's metadata: base64url (no padding) of its compact JSON, if it has any.", "eyJwbGFuIjoicHJvIn0")
        });
    }
    for status in ["401", "403"] {
        if let Some(refused) = op.pointer_mut(&format!("/responses/{status}")) {
            let example = if status == "401" {
                "expired"
            } else {
                "insufficient_scope"
            };
            refused["headers"] = json!({
                "X-Latchkey-Reason": header("Why the request is refused (403 also for a valid token its own policy refuses: ip_not_allowed, usage_exceeded, rate_limited).", example)
            });
            if status == "403" {
                let number = |description: &str, example: u64| json!({"description": description, "schema": {"type": "integer"}, "example": example});
                refused["headers"]["Retry-After"] = number(
                    "rate_limited, usage_exceeded with a refill: seconds until a use may work again.",
                    42,
                );
                refused["headers"]["RateLimit-Limit"] =
                    number("rate_limited: the token's uses per window.", 100);
                refused["headers"]["RateLimit-Remaining"] =
                    number("rate_limited: uses left in this window (0).", 0);
                refused["headers"]["RateLimit-Reset"] =
                    number("rate_limited: seconds until the window ends.", 42);
            }
        }
    }
}

/// Gives every operation its examples (see the module's comment).
pub fn add(doc: &mut Value) {
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for (path, item) in paths.iter_mut() {
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        for op in item.values_mut() {
            let id = op
                .get("operationId")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            for (operation_id, status, schema) in unnamed_answers() {
                if operation_id == id
                    && let Some(answer) = op.pointer_mut(&format!("/responses/{status}"))
                {
                    answer["content"] = json!({"application/json": {"schema": schema}});
                }
            }
            if let Some(params) = op.get_mut("parameters").and_then(Value::as_array_mut) {
                for p in params.iter_mut() {
                    if p.get("in").and_then(Value::as_str) != Some("path") {
                        continue;
                    }
                    let example = match p.get("name").and_then(Value::as_str) {
                        Some("id") => Some(id_of(path)),
                        Some(name) => path_parameter(name),
                        None => None,
                    };
                    if let Some(example) = example {
                        p["example"] = json!(example);
                    }
                }
            }
            if path.starts_with("/auth/verify") {
                forward_auth_headers(op);
            }
            if let Some(content) = op
                .pointer_mut("/requestBody/content")
                .and_then(Value::as_object_mut)
            {
                for media in content.values_mut() {
                    if let Some(example) = media.get("schema").and_then(for_schema) {
                        media["example"] = example;
                    }
                }
            }
            let main = op
                .get("responses")
                .and_then(Value::as_object)
                .and_then(|r| r.keys().filter(|s| s.starts_with('2')).min().cloned());
            if let Some(content) = main
                .and_then(|status| op.pointer_mut(&format!("/responses/{status}/content")))
                .and_then(Value::as_object_mut)
            {
                for media in content.values_mut() {
                    let example = media
                        .get("schema")
                        .and_then(for_schema)
                        .or_else(|| answer(&id));
                    if let Some(example) = example {
                        media["example"] = example;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    /// Every operation: each request body media type has an example, and so does each media
    /// type of its main (lowest 2xx) success answer and each path parameter; one with none
    /// of these but a 204 (forward-auth) has examples of its answer's headers.
    #[test]
    fn every_operation_has_an_example() {
        let doc = super::super::spec::document();
        let mut missing = Vec::new();
        let paths = doc["paths"].as_object().cloned().unwrap_or_default();
        assert!(!paths.is_empty());
        for (path, item) in paths {
            for (method, op) in item.as_object().cloned().unwrap_or_default() {
                let name = format!("{} {path} ({})", method.to_uppercase(), op["operationId"]);
                let mut examples = 0;
                let bodies = op
                    .pointer("/requestBody/content")
                    .and_then(Value::as_object);
                for (media, body) in bodies.into_iter().flatten() {
                    if body.get("example").is_none() {
                        missing.push(format!("{name}: request body {media}"));
                    }
                    examples += 1;
                }
                let responses = op["responses"].as_object().cloned().unwrap_or_default();
                let status = responses
                    .keys()
                    .filter(|s| s.starts_with('2'))
                    .min()
                    .cloned()
                    .unwrap_or_default();
                assert!(!status.is_empty(), "{name} answers no 2xx");
                let main = &responses[&status];
                let answers = main.get("content").and_then(Value::as_object);
                for (media, answer) in answers.into_iter().flatten() {
                    if answer.get("example").is_none() {
                        missing.push(format!("{name}: answer {media}"));
                    }
                    examples += 1;
                }
                for p in op["parameters"].as_array().cloned().unwrap_or_default() {
                    if p["in"] == "path" {
                        if p.get("example").is_none() {
                            missing.push(format!("{name}: path parameter {}", p["name"]));
                        }
                        examples += 1;
                    }
                }
                let headers = main.get("headers").and_then(Value::as_object);
                examples += headers
                    .into_iter()
                    .flatten()
                    .filter(|(_, h)| h.get("example").is_some())
                    .count();
                // A 204 without parameters (sign-out) has nothing to show.
                if examples == 0 && status != "204" {
                    missing.push(format!("{name}: nothing exemplified"));
                }
            }
        }
        assert!(
            missing.is_empty(),
            "operations without an example (add one in crates/server/src/api/examples.rs):\n{}",
            missing.join("\n")
        );
    }
}
