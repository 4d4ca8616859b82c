//! Benchmark helpers that are not criterion benches (see bench/README.md):
//!
//! ```text
//! cargo bench -p latchkey-server --bench loadtool -- bulk-load DATA_DIR COUNT TOKENS_FILE
//! cargo bench -p latchkey-server --bench loadtool -- cold-verify DATA_DIR TOKENS_FILE SAMPLES
//! cargo bench -p latchkey-server --bench loadtool -- grant-memory DATA_DIR TOKENS_FILE COUNT
//! cargo bench -p latchkey-server --bench loadtool -- single-flight CONCURRENCY
//! ```
//!
//! `bulk-load` bootstraps DATA_DIR (admin token in DATA_DIR/admin.token, the benchmarks'
//! fixed hash key) and imports COUNT personal tokens through the SQLite store's bulk
//! import (not the API), writing their secrets to TOKENS_FILE, one per line. Each command
//! prints one `RESULT` line.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use latchkey_core::token::{self, SecretKind};
use latchkey_core::{NewAuditEvent, SecretRecord, StoredState, TokenRecord};
use latchkey_proto::{Scope, TokenType};
use latchkey_server::verifier::VerifyError;
use latchkey_store_sqlite::SqliteStore;
use rand::{Rng, SeedableRng};

fn usage() -> ! {
    eprintln!(
        "usage: loadtool bulk-load DATA_DIR COUNT TOKENS_FILE | cold-verify DATA_DIR TOKENS_FILE SAMPLES \
         | grant-memory DATA_DIR TOKENS_FILE COUNT | single-flight CONCURRENCY"
    );
    std::process::exit(2)
}

fn main() {
    // `cargo bench` appends `--bench`.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let arg = |i: usize| args.get(i).cloned().unwrap_or_else(|| usage());
    match args.first().map(String::as_str) {
        Some("bulk-load") => rt.block_on(bulk_load(
            &PathBuf::from(arg(1)),
            arg(2).parse().unwrap_or_else(|_| usage()),
            &PathBuf::from(arg(3)),
        )),
        Some("cold-verify") => rt.block_on(cold_verify(
            &PathBuf::from(arg(1)),
            &PathBuf::from(arg(2)),
            arg(3).parse().unwrap_or_else(|_| usage()),
        )),
        Some("grant-memory") => rt.block_on(grant_memory(
            &PathBuf::from(arg(1)),
            &PathBuf::from(arg(2)),
            arg(3).parse().unwrap_or_else(|_| usage()),
        )),
        Some("single-flight") => {
            rt.block_on(single_flight(arg(1).parse().unwrap_or_else(|_| usage())))
        }
        Some("list") | None => {}
        Some(_) => usage(),
    }
}

fn admin_token(data_dir: &Path) -> String {
    let path = data_dir.join("admin.token");
    match std::fs::read_to_string(&path) {
        Ok(t) => t.trim().to_owned(),
        Err(_) => {
            std::fs::create_dir_all(data_dir).unwrap();
            let t = common::personal_token();
            std::fs::write(&path, format!("{t}\n")).unwrap();
            t
        }
    }
}

fn read_tokens(path: &Path) -> Vec<String> {
    std::io::BufReader::new(std::fs::File::open(path).unwrap())
        .lines()
        .map(Result::unwrap)
        .filter(|l| !l.is_empty())
        .collect()
}

async fn bulk_load(data_dir: &Path, count: usize, tokens_file: &Path) {
    let started = Instant::now();
    let admin = admin_token(data_dir);
    let state = common::state(data_dir, &admin).await;
    let store = SqliteStore::open(&data_dir.join("latchkey.db"))
        .await
        .unwrap();
    let org = state.store.get_org().await.unwrap();
    let ws = state
        .store
        .find_workspace_by_name(&org.id, "Workspace 1")
        .await
        .unwrap()
        .unwrap();
    let user = state
        .store
        .find_user_by_username("admin")
        .await
        .unwrap()
        .unwrap();
    let key = common::hash_key();
    let now = state.clock.now();
    let mut rng = rand::rngs::StdRng::from_entropy();
    let mut out = BufWriter::new(std::fs::File::create(tokens_file).unwrap());
    let mut done = 0;
    while done < count {
        let n = (count - done).min(20_000);
        let mut batch = Vec::with_capacity(n);
        for i in 0..n {
            let mut random = [0u8; token::RANDOM_LEN];
            for b in random.iter_mut() {
                *b = token::BASE62[rng.gen_range(0..62)];
            }
            let secret = token::assemble(SecretKind::Token(TokenType::Personal), &random);
            let id = latchkey_core::new_id();
            let record = TokenRecord {
                id: id.clone(),
                org_id: org.id.clone(),
                name: format!("bench-{}", done + i),
                token_type: TokenType::Personal,
                hint: token::hint(&secret),
                workspace_id: Some(ws.id.clone()),
                workspace_name: Some(ws.name.clone()),
                owner_id: Some(user.id.clone()),
                owner_username: Some(user.username.clone()),
                created_by: Some(user.id.clone()),
                scopes: vec![Scope::ProjectsRead, Scope::ProjectsWrite, Scope::TokensRead],
                projects: Vec::new(),
                environment: None,
                created_at: now,
                expires_at: Some(now + time::Duration::days(200)),
                last_used_at: None,
                last_used_ip: None,
                state: StoredState::Active,
                leaked: false,
                policy: Default::default(),
                uses: None,
                recoverable: false,
            };
            let secret_record = SecretRecord {
                token_id: id,
                hash: key.hash(&secret),
                key_id: key.id().to_owned(),
                not_after: None,
                hint: None,
                sealed: None,
            };
            writeln!(out, "{secret}").unwrap();
            batch.push((record, secret_record));
        }
        store
            .import_tokens(
                now,
                &batch,
                NewAuditEvent {
                    action: "token.imported".into(),
                    details: serde_json::json!({"count": n}),
                    ..NewAuditEvent::default()
                },
            )
            .await
            .unwrap();
        done += n;
    }
    out.flush().unwrap();
    store.close().await;
    println!(
        "RESULT bulk_load tokens={count} secs={:.1}",
        started.elapsed().as_secs_f64()
    );
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)].as_secs_f64() * 1e6
}

async fn cold_verify(data_dir: &Path, tokens_file: &Path, samples: usize) {
    let state = common::state(data_dir, &admin_token(data_dir)).await;
    let tokens = read_tokens(tokens_file);
    let now = state.clock.now();
    // The owner's view loads once; what is measured is the grant's cache miss.
    state.verifier.verify(&tokens[0], now).await.unwrap();
    let step = (tokens.len() / samples.max(1)).max(1);
    let mut times = Vec::with_capacity(samples);
    for t in tokens.iter().skip(1).step_by(step).take(samples) {
        let started = Instant::now();
        state.verifier.verify(t, now).await.unwrap();
        times.push(started.elapsed());
    }
    times.sort();
    println!(
        "RESULT cold_verify store=sqlite tokens={} n={} p50_us={:.1} p90_us={:.1} p99_us={:.1} p999_us={:.1} max_us={:.1}",
        tokens.len(),
        times.len(),
        percentile(&times, 0.5),
        percentile(&times, 0.9),
        percentile(&times, 0.99),
        percentile(&times, 0.999),
        percentile(&times, 1.0),
    );
}

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

async fn grant_memory(data_dir: &Path, tokens_file: &Path, count: usize) {
    let state = common::state(data_dir, &admin_token(data_dir)).await;
    let tokens = read_tokens(tokens_file);
    let count = count.min(tokens.len());
    let now = state.clock.now();
    // The secrets themselves are the client's; keep them out of the figure.
    let tokens: Vec<String> = tokens.into_iter().take(count).collect();
    state.verifier.verify(&tokens[0], now).await.unwrap();
    let before = rss_bytes();
    for t in &tokens {
        state.verifier.verify(t, now).await.unwrap();
    }
    let after = rss_bytes();
    let grants = state.verifier.cached_grants();
    println!(
        "RESULT grant_memory grants={grants} rss_before_mb={:.1} rss_after_mb={:.1} bytes_per_grant={:.0}",
        before as f64 / 1e6,
        after as f64 / 1e6,
        (after.saturating_sub(before)) as f64 / grants.max(1) as f64
    );
}

/// Many concurrent first checks of one unknown token, then of one valid token whose grant
/// was just dropped: each must reach the store once.
async fn single_flight(concurrency: usize) {
    let dir = tempfile::tempdir().unwrap();
    let admin = common::personal_token();
    let state = common::state(dir.path(), &admin).await;
    let now = state.clock.now();
    let unknown = common::personal_token();
    let misses = || state.verifier.stats.misses.load(Ordering::Relaxed);

    let before = misses();
    let barrier = Arc::new(tokio::sync::Barrier::new(concurrency));
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (state, barrier, unknown) = (state.clone(), Arc::clone(&barrier), unknown.clone());
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            state.verifier.verify(&unknown, now).await.map(|_| ())
        }));
    }
    for t in tasks {
        assert!(matches!(t.await.unwrap(), Err(VerifyError::Invalid(_))));
    }
    let unknown_reads = misses() - before;

    let id = state
        .verifier
        .verify(&admin, now)
        .await
        .unwrap()
        .grant
        .token
        .id
        .clone();
    state.verifier.invalidate_token(&id);
    let before = misses();
    let barrier = Arc::new(tokio::sync::Barrier::new(concurrency));
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (state, barrier, admin) = (state.clone(), Arc::clone(&barrier), admin.clone());
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            state.verifier.verify(&admin, now).await.map(|_| ())
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let valid_reads = misses() - before;
    println!(
        "RESULT single_flight concurrency={concurrency} store_reads_unknown={unknown_reads} store_reads_valid={valid_reads} coalesced_total={}",
        state.verifier.stats.coalesced.load(Ordering::Relaxed)
    );
}
