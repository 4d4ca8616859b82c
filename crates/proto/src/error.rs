use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Stable machine-readable error codes (DESIGN.md §7 "API details").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// No credentials, or credentials that are not accepted (401).
    Unauthenticated,
    /// A token in a body (refresh) that is bad or dead (401).
    InvalidToken,
    /// Authenticated but not allowed (403).
    Forbidden,
    /// A valid token of a type that cannot do this (403).
    TokenTypeNotAllowed,
    /// No such object, or not visible to the caller (404).
    NotFound,
    /// A uniqueness or state conflict (409).
    Conflict,
    /// A limit (named in `limit`) would be exceeded (409).
    LimitExceeded,
    /// The token was revoked by a leak report and can only be rotated (409).
    Leaked,
    /// The token's secret is not stored recoverably, or the token does not work now, so
    /// it cannot be revealed (409).
    NotRecoverable,
    /// A requested lifetime exceeds the policy (422).
    LifetimeExceedsPolicy,
    /// A missing or invalid field (named in `field`) (422).
    InvalidField,
    /// A legacy token tried a workspace-scoped route without a workspace (422).
    WorkspaceRequired,
    /// The body is not valid JSON (400).
    MalformedJson,
    /// Bad request that is not about one field (400).
    BadRequest,
    /// The body is larger than `max_body_bytes` (413).
    PayloadTooLarge,
    /// The body's content type is not the one this endpoint takes (415).
    UnsupportedMediaType,
    /// The route exists but not with this method (405, with `Allow` listing the methods).
    MethodNotAllowed,
    /// Throttled, or a token over its own `rate_limit` (429).
    RateLimited,
    /// A valid token used from an address outside its `allowed_ips` (403).
    IpNotAllowed,
    /// A valid token with no uses left (`remaining_uses` 0) (403).
    UsageExceeded,
    /// The store is unreachable or the node is too stale to answer (503).
    Unavailable,
    /// Something broke on the server (500); details are in the server log only.
    Internal,
}

impl ErrorCode {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::Unauthenticated => "unauthenticated",
            ErrorCode::InvalidToken => "invalid_token",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::TokenTypeNotAllowed => "token_type_not_allowed",
            ErrorCode::NotFound => "not_found",
            ErrorCode::Conflict => "conflict",
            ErrorCode::LimitExceeded => "limit_exceeded",
            ErrorCode::Leaked => "leaked",
            ErrorCode::NotRecoverable => "not_recoverable",
            ErrorCode::LifetimeExceedsPolicy => "lifetime_exceeds_policy",
            ErrorCode::InvalidField => "invalid_field",
            ErrorCode::WorkspaceRequired => "workspace_required",
            ErrorCode::MalformedJson => "malformed_json",
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::UnsupportedMediaType => "unsupported_media_type",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::IpNotAllowed => "ip_not_allowed",
            ErrorCode::UsageExceeded => "usage_exceeded",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Internal => "internal",
        }
    }
}

/// The body of every error response: `{"error": {...}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// What went wrong, for people (`message`) and programs (`code`, `field`, `limit`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable code.
    pub code: ErrorCode,
    /// Human-readable explanation; never contains a secret.
    pub message: String,
    /// For `invalid_field` and `lifetime_exceeds_policy`: the field's name (dotted path
    /// for nested fields).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// For `limit_exceeded`: the setting that was hit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<String>,
}
