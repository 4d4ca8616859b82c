//! The token inventory: `GET /api/v1/tokens` (filters are query parameters) and
//! `POST /api/v1/tokens/bulk-revoke`.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The most ids one `POST /api/v1/tokens/bulk-revoke` takes.
pub const MAX_BULK_REVOKE: usize = 1000;

/// `POST /api/v1/tokens/bulk-revoke`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkRevokeRequest {
    /// Token ids, 1 to 1000.
    pub ids: Vec<String>,
}

/// What `POST /api/v1/tokens/bulk-revoke` did: every id asked for is in exactly one of the
/// two lists, in the order asked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BulkRevokeResponse {
    /// The tokens revoked now (one audit event each).
    pub revoked: Vec<String>,
    /// The ids left as they were, each with why.
    pub skipped: Vec<SkippedToken>,
}

/// An id that `POST /api/v1/tokens/bulk-revoke` left alone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SkippedToken {
    /// The id as asked.
    pub id: String,
    /// Why it was not revoked.
    pub reason: SkipReason,
}

/// Why a bulk revoke left a token alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// No such token, or one the caller may not see (the 404 of a single revoke).
    NotFound,
    /// The caller sees the token but may not revoke it (the 403 of a single revoke: role,
    /// or a token caller's scopes).
    Forbidden,
    /// It was revoked already.
    AlreadyRevoked,
    /// It is expired; expired is final.
    Expired,
    /// The id came earlier in the same request.
    Duplicate,
}

impl SkipReason {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::NotFound => "not_found",
            SkipReason::Forbidden => "forbidden",
            SkipReason::AlreadyRevoked => "already_revoked",
            SkipReason::Expired => "expired",
            SkipReason::Duplicate => "duplicate",
        }
    }
}
