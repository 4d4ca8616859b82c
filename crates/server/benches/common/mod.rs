//! A server state over a fresh SQLite store, for the benchmarks.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use latchkey_core::HashKey;
use latchkey_core::token::{self, SecretKind};
use latchkey_proto::TokenType;
use latchkey_server::config::PasswordConfig;
use latchkey_server::{AppState, BootstrapOptions, Clock, Config, HashKeySource, StartOptions};

/// The hash key every benchmark uses, so a data dir made by one run can be reused.
pub const HASH_KEY_HEX: &str = "6c617463686b65792d62656e63686d61726b2d6b65792d6e6f742d7365637265";

/// A config over `data_dir` with cheap password hashing (only the bootstrap hashes one).
pub fn config(data_dir: &Path) -> Config {
    let mut config = Config {
        data_dir: data_dir.to_path_buf(),
        passwords: PasswordConfig {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        },
        ..Config::default()
    };
    config.throttle.failed_token_checks = u32::MAX;
    config.verifier.negative_cache_size = 10_000_000;
    config
}

/// Opens (bootstrapping on first use) the server state in `data_dir`; `admin_token` is the
/// first start's token.
pub async fn state(data_dir: &Path, admin_token: &str) -> AppState {
    let options = StartOptions {
        bootstrap: BootstrapOptions {
            admin_username: Some("admin".into()),
            admin_password: Some("benchmark-password".into()),
            admin_token: Some(admin_token.to_owned()),
        },
        hash_key: HashKeySource {
            hex: Some(HASH_KEY_HEX.to_owned()),
            file: None,
        },
        clock: Clock::default(),
    };
    let state = latchkey_server::prepare(config(data_dir), options)
        .await
        .expect("server state")
        .state;
    // What `serve`'s poller does: keep the verifier fresh (it fails closed when stale).
    let poller = state.clone();
    tokio::spawn(async move {
        loop {
            let _ = poller.verifier.sync().await;
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        }
    });
    state
}

/// A fresh well-formed personal token.
pub fn personal_token() -> String {
    token::generate(SecretKind::Token(TokenType::Personal))
}

/// `token` with its last checksum character changed (well-formed, bad checksum).
pub fn with_bad_checksum(token: &str) -> String {
    let mut bytes = token.as_bytes().to_vec();
    let last = bytes.len() - 1;
    bytes[last] = if bytes[last] == b'0' { b'1' } else { b'0' };
    String::from_utf8(bytes).unwrap()
}

/// A key like the server's, for the bare-HMAC baseline.
pub fn hash_key() -> HashKey {
    HashKey::from_hex(HASH_KEY_HEX).unwrap()
}
