//! Conformance suite (filled in by the store implementation work).
