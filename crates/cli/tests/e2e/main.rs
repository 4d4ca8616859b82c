//! Black-box tests: the real server on a random port over a real SQLite file, driven through
//! the Rust SDK, raw HTTP, and the `latchkey` binary as a subprocess. With
//! `LATCHKEY_TEST_BACKEND=postgres` the harness's servers run on PostgreSQL instead; the
//! `scale_out` tests always do (several nodes on one database).

// Test helpers outside #[test] functions may panic on setup failures: that is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod harness;

mod accounts;
mod approval;
mod auth;
mod cli;
mod errors;
mod events_crash;
mod governance;
mod interop;
mod inventory;
mod lifecycle;
mod lifetime;
mod oauth_clients;
mod observability;
pub mod outage;
mod policy;
mod policy_cluster;
mod process;
mod proxies;
mod recoverable;
pub mod scale_out;
mod sdk;
mod security;
mod store_crash;
mod usage;
mod users;
mod webhooks;
