//! The hot path, in process, against its physical floor: one HMAC-SHA256 over the token.
//!
//! `cargo bench -p latchkey-server --bench verifier` (see bench/README.md). Every figure
//! is meant to be read as a ratio to `baseline/hmac_sha256` from the same run.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use criterion::{Criterion, criterion_group, criterion_main};
use latchkey_core::token;
use latchkey_proto::{CreateTokenRequest, RateLimit, TokenType};
use latchkey_server::extract::ClientIp;
use latchkey_server::verifier::Cached;
use tower::ServiceExt as _;

/// Polls a future once: the cached path never waits, so anything else is a bug here.
fn ready<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(out) => out,
        Poll::Pending => panic!("the cached path awaited"),
    }
}

fn benches(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let token = common::personal_token();
    let state = rt.block_on(common::state(dir.path(), &token));
    let verifier = &state.verifier;
    let key = common::hash_key();
    let now = state.clock.now();
    let bad = common::with_bad_checksum(&token);
    let unknown = common::personal_token();
    // Warm: the grant and its owner in memory, the unknown token in the negative cache.
    // The node's first change-feed read after start drops what was cached before it (and
    // a new token's own entry drops its first grant), so warm until the grant stays: ten
    // hits in a row 100 ms apart (slow runs, e.g. under callgrind, take longer).
    let mut hits = 0;
    for _ in 0..600 {
        match verifier.check_cached(&token, now) {
            Cached::Answer(Ok(_)) => hits += 1,
            _ => {
                hits = 0;
                rt.block_on(verifier.verify(&token, now)).unwrap();
            }
        }
        if hits == 10 {
            break;
        }
        rt.block_on(async { tokio::time::sleep(Duration::from_millis(100)).await });
    }
    assert!(rt.block_on(verifier.verify(&unknown, now)).is_err());
    let token_id = rt
        .block_on(verifier.verify(&token, now))
        .unwrap()
        .grant
        .token
        .id
        .clone();

    let mut g = c.benchmark_group("baseline");
    // One HMAC-SHA256 over the token with the key's ipad/opad states precomputed, as the
    // `hmac` crate computes it: the baseline the targets are stated against.
    g.bench_function("hmac_sha256", |b| {
        b.iter(|| key.hash_with_crate(black_box(token.as_bytes())))
    });
    // The same HMAC as the verifier computes it: exactly two SHA-256 compressions.
    g.bench_function("hmac_sha256_two_block", |b| {
        b.iter(|| key.hash(black_box(&token)))
    });
    g.bench_function("checksum", |b| b.iter(|| token::parse(black_box(&token))));
    g.finish();

    let mut g = c.benchmark_group("verify");
    g.bench_function("hit", |b| {
        b.iter(|| ready(verifier.verify(black_box(&token), now)).unwrap())
    });
    g.bench_function("hit_sync", |b| {
        b.iter(|| match verifier.check_cached(black_box(&token), now) {
            Cached::Answer(answer) => answer.unwrap(),
            Cached::Miss(_) => panic!("miss"),
        })
    });
    g.bench_function("bad_checksum", |b| {
        b.iter(|| ready(verifier.verify(black_box(&bad), now)).unwrap_err())
    });
    g.bench_function("unknown_negative_cached", |b| {
        b.iter(|| ready(verifier.verify(black_box(&unknown), now)).unwrap_err())
    });
    g.bench_function("authenticate_token_hit", |b| {
        let ip = ClientIp(Some([127, 0, 0, 1].into()));
        b.iter(|| ready(state.authenticate_token(black_box(&token), ip)).unwrap())
    });
    // A cold verify: the grant is dropped before each check, so each one reads SQLite
    // (`find_secret`) and builds a grant; the owner stays cached as in production.
    g.bench_function("miss_sqlite", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                verifier.invalidate_token(&token_id);
                let started = Instant::now();
                rt.block_on(verifier.verify(black_box(&token), now))
                    .unwrap();
                total += started.elapsed();
            }
            total
        })
    });
    g.finish();

    // Verify-time policy (issue 15): two client tokens of the same workspace, one without
    // any policy field and one with a rate limit too high to be reached, checked by the
    // API's path (`authenticate_token`) and by forward-auth through the router. The
    // difference is what a rate limit costs per check.
    let ip = ClientIp(Some([127, 0, 0, 1].into()));
    let admin = rt.block_on(state.authenticate_token(&token, ip)).unwrap();
    let client_token = |rate_limit| {
        let mut req = CreateTokenRequest::new("bench-client", TokenType::Client);
        req.rate_limit = rate_limit;
        rt.block_on(state.create_token(&admin, "Workspace 1", req))
            .unwrap()
            .token
    };
    let plain = client_token(None);
    let limited = client_token(Some(RateLimit {
        limit: 1_000_000_000,
        window_secs: 86_400,
    }));
    // The change-feed entry of each token's creation reaches this node's verifier after
    // the first use and drops the grant that use cached (one reload per new token); warm
    // again once it has, so the benchmark measures the cached path.
    for t in [&plain, &limited] {
        rt.block_on(state.authenticate_token(t, ip)).unwrap();
    }
    rt.block_on(async { tokio::time::sleep(Duration::from_secs(2)).await });
    for t in [&plain, &limited] {
        rt.block_on(state.authenticate_token(t, ip)).unwrap();
    }
    let mut g = c.benchmark_group("policy");
    for (name, t) in [("plain", &plain), ("rate_limited", &limited)] {
        g.bench_function(format!("authenticate_client_{name}"), |b| {
            // block_on, not `ready`: a rate-limited use leases its next block from the
            // store when this node's runs out, now and then (not per use), and awaits it.
            b.iter(|| {
                rt.block_on(state.authenticate_token(black_box(t), ip))
                    .unwrap()
            })
        });
    }
    g.finish();

    // The whole axum stack in process (middleware, handler, response), no socket: what a
    // request costs Latchkey itself on top of what hyper and the kernel cost.
    let app = latchkey_server::app(state.clone());
    let mut g = c.benchmark_group("router");
    for (name, path) in [("auth_verify", "/auth/verify"), ("me", "/api/v1/me")] {
        g.bench_function(name, |b| {
            b.iter(|| {
                let request = Request::get(path)
                    .header(header::AUTHORIZATION, format!("Bearer {token}"))
                    .body(Body::empty())
                    .unwrap();
                let response = rt.block_on(app.clone().oneshot(request)).unwrap();
                assert_eq!(response.status(), StatusCode::OK);
                response
            })
        });
    }
    for (name, t) in [("plain", &plain), ("rate_limited", &limited)] {
        g.bench_function(format!("auth_verify_client_{name}"), |b| {
            b.iter(|| {
                let request = Request::get("/auth/verify")
                    .header(header::AUTHORIZATION, format!("Bearer {t}"))
                    .body(Body::empty())
                    .unwrap();
                let response = rt.block_on(app.clone().oneshot(request)).unwrap();
                assert_eq!(response.status(), StatusCode::OK);
                response
            })
        });
    }
    g.bench_function("baseline_empty_runtime_block_on", |b| {
        b.iter(|| rt.block_on(async { black_box(1) }))
    });
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args()
}

criterion_group! {
    name = verifier;
    config = config();
    targets = benches
}
criterion_main!(verifier);
