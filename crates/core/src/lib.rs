//! Latchkey's domain, free of I/O and clocks: the token format, keyed hashing, the records
//! the store keeps, and every policy rule as a pure function that takes `now`.
//!
//! Everything here is unit-tested exactly because nothing here reads the time, the disk or
//! the network; the server reads the clock once per request and passes it in.

#![warn(missing_docs)]

pub mod events;
pub mod hash;
pub mod model;
pub mod policy;
pub mod scopes;
pub mod token;
pub mod token_policy;

pub use hash::{HashKey, SecretHash};
pub use model::*;
pub use scopes::ScopeSet;

use time::OffsetDateTime;

/// A new UUIDv7 id as a string: time-ordered, so "newest first" is "largest id first".
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// Whether `text` is a well-formed id (a UUID in canonical form).
pub fn is_id(text: &str) -> bool {
    text.len() == 36 && uuid::Uuid::parse_str(text).is_ok()
}

/// Drops sub-second precision: every stored and returned instant is whole seconds, so
/// RFC 3339 output is always of the form `2027-08-22T10:00:00Z`.
pub fn whole_seconds(t: OffsetDateTime) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(t.unix_timestamp()).unwrap_or(t)
}

/// Unix seconds to an instant (saturating at the representable range).
pub fn from_unix(secs: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(secs).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}
