//! Black-box tests: the real server on a random port over a real SQLite file, driven through
//! the Rust SDK, raw HTTP, and the `latchkey` binary as a subprocess.

mod harness;

mod auth;
mod cli;
mod errors;
mod governance;
mod integration;
mod lifecycle;
mod process;
mod scale_out;
mod users;
