//! Latchkey's wire contract: every request and response body of the HTTP API, the enums
//! that appear on the wire, and the stable error codes.
//!
//! The server, the Rust SDK and the CLI all speak these types, so a field renamed here is a
//! breaking change for every client. DESIGN.md §3 is the human-readable version of this crate.

#![warn(missing_docs)]

mod enums;
mod error;
mod inventory;
mod objects;
mod requests;
mod webhooks;

pub use enums::*;
pub use error::*;
pub use inventory::*;
pub use objects::*;
pub use requests::*;
pub use webhooks::*;

/// Serde helpers for RFC 3339 timestamps (`2027-08-22T10:00:00Z`).
pub mod rfc3339 {
    pub use time::serde::rfc3339::*;
}

/// Distinguishes "field absent" (`None`) from "field explicitly null" (`Some(None)`) in
/// `PATCH` bodies, where `null` means "unlimited" or "use the default".
pub mod double_option {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    /// Deserializes a present field (even `null`) as `Some(..)`.
    pub fn deserialize<'de, T, D>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
    where
        T: Deserialize<'de>,
        D: Deserializer<'de>,
    {
        Option::<T>::deserialize(deserializer).map(Some)
    }

    /// Serializes `Some(None)` as `null`; `None` should be skipped by the caller.
    pub fn serialize<T, S>(value: &Option<Option<T>>, serializer: S) -> Result<S::Ok, S::Error>
    where
        T: Serialize,
        S: Serializer,
    {
        match value {
            Some(inner) => inner.serialize(serializer),
            None => serializer.serialize_none(),
        }
    }
}
