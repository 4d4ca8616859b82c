//! The one place errors become HTTP responses: each variant has its status and stable code;
//! 401 and 403 carry an RFC 6750 `WWW-Authenticate`; internal details are logged, never sent.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use latchkey_proto::{ErrorBody, ErrorCode, ErrorDetail, Reason};
use latchkey_store::StoreError;

/// Every failure a request can end in.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ApiError {
    /// No credential, or one that is not accepted.
    #[error("{message}")]
    Unauthenticated {
        /// For the client.
        message: String,
        /// Whether a credential was presented (then `error="invalid_token"`).
        presented: bool,
        /// Why a presented token failed its check, when it did.
        reason: Option<latchkey_proto::Reason>,
    },
    /// A bad or dead token in a body (refresh).
    #[error("{0}")]
    InvalidToken(String),
    /// Authenticated but not allowed.
    #[error("{0}")]
    Forbidden(String),
    /// A token of a type that cannot do this.
    #[error("{0}")]
    TokenTypeNotAllowed(String),
    /// Missing, or not visible to the caller.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// State or uniqueness conflict.
    #[error("{0}")]
    Conflict(String),
    /// A limit would be exceeded.
    #[error("limit {limit} ({value}) reached")]
    LimitExceeded {
        /// The setting.
        limit: &'static str,
        /// Its value.
        value: u32,
    },
    /// Restore of a leaked token.
    #[error("{0}")]
    Leaked(String),
    /// A reveal of a secret that is not kept, or of a token that does not work now.
    #[error("{0}")]
    NotRecoverable(String),
    /// Lifetime longer than the policy.
    #[error("{message}")]
    LifetimeExceedsPolicy {
        /// The requested field (`expires_in_days` or `expires_at`).
        field: &'static str,
        /// Why.
        message: String,
    },
    /// A missing or invalid field.
    #[error("{message}")]
    InvalidField {
        /// The field.
        field: String,
        /// Why.
        message: String,
    },
    /// A workspace route called without a workspace.
    #[error("{0}")]
    WorkspaceRequired(String),
    /// Not JSON.
    #[error("{0}")]
    MalformedJson(String),
    /// Some other bad request.
    #[error("{0}")]
    BadRequest(String),
    /// Body over the limit.
    #[error("request body larger than {0} bytes")]
    PayloadTooLarge(usize),
    /// Wrong content type.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// A known route called with a method it does not take (the router adds `Allow`).
    #[error("method not allowed on this route")]
    MethodNotAllowed,
    /// A valid token refused by its own policy (`ip_not_allowed`, `usage_exceeded`:
    /// 403; `rate_limited`: 429).
    #[error("{}", crate::auth::reason_message(.0.reason))]
    TokenPolicy(PolicyRefusal),
    /// Throttled.
    #[error("too many requests; retry in {retry_after} seconds")]
    RateLimited {
        /// Seconds.
        retry_after: u64,
    },
    /// The store is away or this node is too stale.
    #[error("{0}")]
    Unavailable(String),
    /// A bug or corrupt data; the message is logged, not sent.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    /// An `invalid_field` error.
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> ApiError {
        ApiError::InvalidField {
            field: field.into(),
            message: message.into(),
        }
    }

    /// 401 without a credential.
    pub fn unauthenticated() -> ApiError {
        ApiError::Unauthenticated {
            message: "authentication required".into(),
            presented: false,
            reason: None,
        }
    }

    /// 403.
    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::Forbidden(message.into())
    }

    /// Status and code.
    pub fn status_and_code(&self) -> (StatusCode, ErrorCode) {
        match self {
            ApiError::Unauthenticated { .. } => {
                (StatusCode::UNAUTHORIZED, ErrorCode::Unauthenticated)
            }
            ApiError::InvalidToken(_) => (StatusCode::UNAUTHORIZED, ErrorCode::InvalidToken),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, ErrorCode::Forbidden),
            ApiError::TokenTypeNotAllowed(_) => {
                (StatusCode::FORBIDDEN, ErrorCode::TokenTypeNotAllowed)
            }
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, ErrorCode::NotFound),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, ErrorCode::Conflict),
            ApiError::LimitExceeded { .. } => (StatusCode::CONFLICT, ErrorCode::LimitExceeded),
            ApiError::Leaked(_) => (StatusCode::CONFLICT, ErrorCode::Leaked),
            ApiError::NotRecoverable(_) => (StatusCode::CONFLICT, ErrorCode::NotRecoverable),
            ApiError::LifetimeExceedsPolicy { .. } => (
                StatusCode::UNPROCESSABLE_ENTITY,
                ErrorCode::LifetimeExceedsPolicy,
            ),
            ApiError::InvalidField { .. } => {
                (StatusCode::UNPROCESSABLE_ENTITY, ErrorCode::InvalidField)
            }
            ApiError::WorkspaceRequired(_) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                ErrorCode::WorkspaceRequired,
            ),
            ApiError::MalformedJson(_) => (StatusCode::BAD_REQUEST, ErrorCode::MalformedJson),
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, ErrorCode::BadRequest),
            ApiError::PayloadTooLarge(_) => {
                (StatusCode::PAYLOAD_TOO_LARGE, ErrorCode::PayloadTooLarge)
            }
            ApiError::UnsupportedMediaType(_) => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                ErrorCode::UnsupportedMediaType,
            ),
            ApiError::MethodNotAllowed => {
                (StatusCode::METHOD_NOT_ALLOWED, ErrorCode::MethodNotAllowed)
            }
            ApiError::RateLimited { .. } => (StatusCode::TOO_MANY_REQUESTS, ErrorCode::RateLimited),
            ApiError::TokenPolicy(refusal) => match refusal.reason {
                Reason::RateLimited => (StatusCode::TOO_MANY_REQUESTS, ErrorCode::RateLimited),
                Reason::UsageExceeded => (StatusCode::FORBIDDEN, ErrorCode::UsageExceeded),
                _ => (StatusCode::FORBIDDEN, ErrorCode::IpNotAllowed),
            },
            ApiError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, ErrorCode::Unavailable),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, ErrorCode::Internal),
        }
    }

    /// The JSON body.
    pub fn body(&self) -> ErrorBody {
        let (_, code) = self.status_and_code();
        let message = match self {
            ApiError::Internal(_) => "internal error; see the server log".to_owned(),
            ApiError::LimitExceeded { limit, value } => {
                format!("limit reached: {limit} is {value}; revoke or delete a token first")
            }
            other => other.to_string(),
        };
        ErrorBody {
            error: ErrorDetail {
                code,
                message,
                field: match self {
                    ApiError::InvalidField { field, .. } => Some(field.clone()),
                    ApiError::LifetimeExceedsPolicy { field, .. } => Some((*field).to_owned()),
                    _ => None,
                },
                limit: match self {
                    ApiError::LimitExceeded { limit, .. } => Some((*limit).to_owned()),
                    _ => None,
                },
            },
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(what) => ApiError::NotFound(what),
            StoreError::Conflict(m) => ApiError::Conflict(m),
            StoreError::LimitExceeded { limit, value } => ApiError::LimitExceeded { limit, value },
            StoreError::LastOwner => ApiError::Conflict(e.to_string()),
            StoreError::Unavailable(m) => {
                tracing::warn!(error = %m, "store unavailable");
                ApiError::Unavailable("the database is unavailable; retry shortly".into())
            }
            StoreError::HashKeyMismatch { .. } | StoreError::Internal(_) => {
                ApiError::Internal(e.to_string())
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        if let ApiError::Internal(detail) = &self {
            tracing::error!(error = %detail, "internal error");
        }
        let mut response = (status, Json(self.body())).into_response();
        let headers = response.headers_mut();
        let challenge = match &self {
            ApiError::Unauthenticated {
                presented: false, ..
            } => Some(r#"Bearer realm="latchkey""#.to_owned()),
            ApiError::Unauthenticated { message, .. } | ApiError::InvalidToken(message) => {
                Some(format!(
                    r#"Bearer realm="latchkey", error="invalid_token", error_description="{}""#,
                    sanitize(message)
                ))
            }
            ApiError::Forbidden(message) | ApiError::TokenTypeNotAllowed(message) => Some(format!(
                r#"Bearer realm="latchkey", error="insufficient_scope", error_description="{}""#,
                sanitize(message)
            )),
            _ => None,
        };
        if let Some(value) = challenge.and_then(|c| HeaderValue::from_str(&c).ok()) {
            headers.insert(header::WWW_AUTHENTICATE, value);
        }
        if let ApiError::RateLimited { retry_after } = self {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
        }
        if code == ErrorCode::Unavailable {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if let ApiError::TokenPolicy(refusal) = self {
            refusal.put_headers(headers);
        }
        response
    }
}

/// A use a token's own policy refused, with what the answer's headers say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PolicyRefusal {
    /// `ip_not_allowed`, `usage_exceeded` or `rate_limited`.
    pub reason: Reason,
    /// Seconds until a use may work again (`Retry-After`), when known.
    pub retry_after: Option<u64>,
    /// The rate limit, for `RateLimit-Limit` / `RateLimit-Remaining` / `RateLimit-Reset`.
    pub rate: Option<RateHeaders>,
}

/// The `RateLimit-*` fields of an answer (IETF draft-ietf-httpapi-ratelimit-headers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateHeaders {
    /// Uses per window.
    pub limit: u32,
    /// Uses left in this window.
    pub remaining: u64,
    /// Seconds until the window ends.
    pub reset: u64,
}

impl PolicyRefusal {
    /// Adds `Retry-After` and the `RateLimit-*` headers.
    pub fn put_headers(&self, headers: &mut axum::http::HeaderMap) {
        if let Some(after) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(after));
        }
        if let Some(rate) = self.rate {
            headers.insert("ratelimit-limit", HeaderValue::from(rate.limit));
            headers.insert("ratelimit-remaining", HeaderValue::from(rate.remaining));
            headers.insert("ratelimit-reset", HeaderValue::from(rate.reset));
        }
    }
}

/// RFC 6750 `error_description` allows only a restricted character set.
fn sanitize(message: &str) -> String {
    message
        .chars()
        .filter(|c| (' '..='~').contains(c) && *c != '"' && *c != '\\')
        .collect()
}
