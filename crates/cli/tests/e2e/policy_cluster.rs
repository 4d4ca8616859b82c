//! Verify-time budgets across a cluster (DESIGN.md §8, issue 15): three real `latchkey
//! serve` processes on one fresh PostgreSQL database (the `scale_out` helpers), load spread
//! over them round-robin.
//!
//! - A rate limit holds for the cluster: every full window admits between 0.9× and 1.1×
//!   the limit (the figures are printed; bench/RESULTS.md records a run).
//! - Usage credits are never over-spent, whatever happens to a node: over ten runs with a
//!   fresh token each, some clean, some with a node stopped gracefully (it gives its leased
//!   block back) and some with a node killed with `kill -9` (its block is stranded until the
//!   lease expires), the uses admitted are never more than granted; without a crash they
//!   are at least 99 % of it.
//!
//! Both need PostgreSQL (they skip with a printed reason without one) and run in the first
//! pass of `scripts/test.sh` only: their nodes are on PostgreSQL in either pass.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use crate::harness::sqlite_pass_only;
use crate::scale_out::{Deployment, Node, SQLITE_PASS, database, workspace1};

/// The two tests here each take the machine (three nodes and a load): one at a time, so
/// neither starves the other's load below what it measures.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Unix time in seconds, as a float: the nodes run on this machine's clock, so a window
/// (`floor(now / W)` on the server) can be told from the client side.
/// The nodes' windows follow the real wall clock (no test clock is injected into three
/// separate processes), so the client reads it too.
#[allow(clippy::disallowed_methods)]
fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// One call of the rate-limit load: (node, sent, received, answer).
type Call = (usize, f64, f64, Answer);

/// A node's last refusal and last admission.
type LastAnswers = (Option<Instant>, Option<Instant>);

/// Creates a client token in Workspace 1 with `policy` on `node`: the secret.
async fn token_with(node: &Node, admin_token: &str, policy: Value) -> String {
    let ws = workspace1(&node.with_token(admin_token)).await;
    let mut body = json!({"name": "cluster budget", "type": "client"});
    if let (Some(body), Some(policy)) = (body.as_object_mut(), policy.as_object()) {
        body.extend(policy.clone());
    }
    let resp = reqwest::Client::new()
        .post(format!("{}/api/v1/workspaces/{ws}/tokens", node.url))
        .bearer_auth(admin_token)
        .json(&body)
        .send()
        .await
        .expect("create token");
    assert_eq!(resp.status().as_u16(), 201);
    let created: Value = resp.json().await.expect("JSON");
    created["token"].as_str().expect("secret").to_owned()
}

/// What one `POST /api/v1/tokens/verify` answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    Admitted,
    /// `valid: false` with the given reason.
    Refused(&'static str),
    /// No answer (a node down), or not the answer of a budget.
    Other,
}

async fn verify(http: &reqwest::Client, url: &str, secret: &str) -> Answer {
    let Ok(resp) = http
        .post(format!("{url}/api/v1/tokens/verify"))
        .json(&json!({"token": secret}))
        .send()
        .await
    else {
        return Answer::Other;
    };
    if resp.status().as_u16() != 200 {
        return Answer::Other;
    }
    let Ok(body) = resp.json::<Value>().await else {
        return Answer::Other;
    };
    match (body["valid"].as_bool(), body["reason"].as_str()) {
        (Some(true), _) => Answer::Admitted,
        (Some(false), Some("rate_limited")) => Answer::Refused("rate_limited"),
        (Some(false), Some("usage_exceeded")) => Answer::Refused("usage_exceeded"),
        _ => Answer::Other,
    }
}

/// The three nodes of the deployment, started together.
async fn three_nodes(deployment: &Deployment) -> Vec<Node> {
    let mut nodes: Vec<Node> = ["a", "b", "c"]
        .iter()
        .map(|n| deployment.spawn(n))
        .collect();
    for node in &mut nodes {
        node.ready().await;
    }
    nodes
}

/// Limit and window of the rate test. The window is long enough that the leases of a
/// window (about 16·ln(L/16) + 16 of them over the cluster, as each grant is at most a
/// sixteenth of what is left) fit in its first part even when every store round trip is
/// slow on a loaded machine; the rate (20/s) is low enough that the callers offer several
/// times the limit even on a starved machine (~40 calls/s seen with the whole suite
/// running), so every block a node holds is spent before the window ends and the count is
/// the limit, not less. Admission is never more: no node spends what it has not leased.
const LIMIT: u64 = 100;
const WINDOW_SECS: u64 = 5;
/// Full windows measured.
const WINDOWS: u64 = 3;
/// Concurrent callers of the rate test.
const CALLERS: usize = 24;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limit_holds_for_a_cluster_of_three_nodes() {
    if sqlite_pass_only(SQLITE_PASS) {
        return;
    }
    let _alone = ONE_AT_A_TIME.lock().await;
    let Some(db) = database().await else { return };
    let deployment = Deployment::new(&db.url, 30);
    let nodes = three_nodes(&deployment).await;
    let urls: Arc<Vec<String>> = Arc::new(nodes.iter().map(|n| n.url.clone()).collect());
    let secret = token_with(
        &nodes[0],
        &deployment.admin_token,
        json!({"rate_limit": {"limit": LIMIT, "window_secs": WINDOW_SECS}}),
    )
    .await;
    // Warm every node's cache of the token (a use each, in a window not measured).
    let http = reqwest::Client::new();
    for url in urls.iter() {
        assert_ne!(verify(&http, url, &secret).await, Answer::Other);
    }

    // Start at the next window boundary; measure WINDOWS full windows after it.
    let w = WINDOW_SECS as f64;
    let first = (unix_now() / w).floor() + 1.0;
    let start_at = first * w;
    let end_at = start_at + w * WINDOWS as f64;
    tokio::time::sleep(Duration::from_secs_f64((start_at - unix_now()).max(0.0))).await;

    // (node, sent, received, answer) of every call.
    let log: Arc<Mutex<Vec<Call>>> = Arc::default();
    let mut tasks = Vec::new();
    // Callers spread round-robin over the nodes, offering several times the limit per
    // window even when each call takes tens of milliseconds on a loaded machine.
    for caller in 0..CALLERS {
        let (urls, log, secret, http) = (
            Arc::clone(&urls),
            Arc::clone(&log),
            secret.clone(),
            http.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut i = caller;
            while unix_now() < end_at {
                let node = i % urls.len();
                i += 1;
                let sent = unix_now();
                let answer = verify(&http, &urls[node], &secret).await;
                let received = unix_now();
                if let Ok(mut log) = log.lock() {
                    log.push((node, sent, received, answer));
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }));
    }
    for task in tasks {
        task.await.expect("caller");
    }
    let log = log.lock().expect("log").clone();

    // A call is counted in the window it was answered in: once a window's uses are gone
    // every node refuses until the next, so a call sent before a boundary and admitted is
    // admitted in the new window. Calls sent and answered in different windows are shown.
    let window_of = |t: f64| (t / w).floor() as i64;
    let mut per_window = vec![0u64; WINDOWS as usize];
    let mut refused = vec![0u64; WINDOWS as usize];
    let mut per_node = [0u64; 3];
    let (mut straddling, mut other) = (0u64, 0u64);
    for &(node, sent, received, answer) in &log {
        let k = window_of(received) - first as i64;
        if !(0..WINDOWS as i64).contains(&k) {
            continue;
        }
        match answer {
            Answer::Admitted => {
                per_window[k as usize] += 1;
                per_node[node] += 1;
                if window_of(sent) != window_of(received) {
                    straddling += 1;
                }
            }
            Answer::Refused(reason) => {
                assert_eq!(reason, "rate_limited");
                refused[k as usize] += 1;
            }
            Answer::Other => other += 1,
        }
    }
    eprintln!(
        "rate limit {LIMIT} per {WINDOW_SECS} s over 3 nodes: admitted per window {per_window:?} \
         (refused {refused:?}); admitted per node {per_node:?}; {straddling} admitted calls \
         straddled a boundary; {other} other answers; {} calls",
        log.len()
    );
    assert_eq!(other, 0, "every call is admitted or refused rate_limited");
    let (low, high) = (LIMIT * 9 / 10, LIMIT * 11 / 10);
    for (k, &n) in per_window.iter().enumerate() {
        assert!(
            (low..=high).contains(&n),
            "window {k} admitted {n}, not within {low}..={high}: {per_window:?}"
        );
        assert!(refused[k] > 0, "window {k} was not loaded past its limit");
    }
    for (node, &n) in per_node.iter().enumerate() {
        assert!(n > 0, "node {node} admitted nothing: {per_node:?}");
    }
    drop(nodes);
    db.drop_now().await;
}

/// Credits granted per run of the credits test.
const CREDITS: u64 = 200;
/// Runs of the credits test (a third clean, a third with a graceful stop, a third with a
/// `kill -9`).
const RUNS: usize = 10;

/// What happens to a node in the middle of one run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mishap {
    None,
    /// SIGTERM: it drains and gives its block back, then restarts.
    GracefulStop,
    /// `kill -9`: its block is stranded until the lease expires; it restarts.
    Kill,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_credits_are_never_overspent_by_three_nodes_even_with_kill_9() {
    if sqlite_pass_only(SQLITE_PASS) {
        return;
    }
    let _alone = ONE_AT_A_TIME.lock().await;
    let Some(db) = database().await else { return };
    let deployment = Deployment::new(&db.url, 30);
    let mut nodes = three_nodes(&deployment).await;
    let http = reqwest::Client::new();
    let started = Instant::now();
    let mut results = Vec::new();
    for run in 0..RUNS {
        let run_started = Instant::now();
        let mishap = match run % 3 {
            0 => Mishap::None,
            1 => Mishap::GracefulStop,
            _ => Mishap::Kill,
        };
        // The node that suffers it: b or c (a stays up to create the tokens).
        let victim = 1 + run % 2;
        let secret = token_with(
            &nodes[0],
            &deployment.admin_token,
            json!({"remaining_uses": CREDITS}),
        )
        .await;
        // The live nodes' URLs (`None` while one is down).
        let urls: Arc<RwLock<Vec<Option<String>>>> = Arc::new(RwLock::new(
            nodes.iter().map(|n| Some(n.url.clone())).collect(),
        ));
        let admitted = Arc::new(AtomicU64::new(0));
        // Calls without an answer (to a node going down) or not a budget's.
        let others = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        // Per node: the instant of its last refusal and of its last admission.
        let last: Arc<Mutex<[LastAnswers; 3]>> = Arc::default();
        let mut tasks = Vec::new();
        for caller in 0..6usize {
            let (urls, admitted, others, stop, last, secret, http) = (
                Arc::clone(&urls),
                Arc::clone(&admitted),
                Arc::clone(&others),
                Arc::clone(&stop),
                Arc::clone(&last),
                secret.clone(),
                http.clone(),
            );
            tasks.push(tokio::spawn(async move {
                let mut i = caller;
                while !stop.load(Ordering::Relaxed) {
                    let node = i % 3;
                    i += 1;
                    let url = urls.read().ok().and_then(|u| u[node].clone());
                    let Some(url) = url else {
                        tokio::time::sleep(Duration::from_millis(3)).await;
                        continue;
                    };
                    let answer = verify(&http, &url, &secret).await;
                    if let Ok(mut last) = last.lock() {
                        match answer {
                            Answer::Admitted => {
                                admitted.fetch_add(1, Ordering::Relaxed);
                                last[node].1 = Some(Instant::now());
                            }
                            Answer::Refused(reason) => {
                                assert_eq!(reason, "usage_exceeded");
                                last[node].0 = Some(Instant::now());
                            }
                            Answer::Other => {
                                others.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(3)).await;
                }
            }));
        }

        // Half-way through, the mishap; then until every live node has refused for over
        // a second with no admission anywhere (a node told "none left" asks the store
        // again after a second, so a block given back meanwhile is spent before this).
        let mut done_mishap = mishap == Mishap::None;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            tokio::time::sleep(Duration::from_millis(20)).await;
            assert!(
                Instant::now() < deadline,
                "run {run} never ran out: {} admitted; (last refused, last admitted) per node \
                 {:?}",
                admitted.load(Ordering::Relaxed),
                last.lock().map(|l| l
                    .iter()
                    .map(|(r, a)| (r.map(|r| r.elapsed()), a.map(|a| a.elapsed())))
                    .collect::<Vec<_>>())
            );
            if !done_mishap && admitted.load(Ordering::Relaxed) >= CREDITS / 2 {
                done_mishap = true;
                if let Ok(mut urls) = urls.write() {
                    urls[victim] = None;
                }
                let node = &mut nodes[victim];
                tokio::task::block_in_place(|| match mishap {
                    Mishap::GracefulStop => {
                        let stopped = node.stop_gracefully(Duration::from_secs(20));
                        assert!(
                            stopped.is_some(),
                            "run {run}: node {victim} did not stop within 20 s of SIGTERM:\n{}",
                            node.stderr()
                        );
                    }
                    _ => node.kill_9(),
                });
                let mut restarted = deployment.spawn(if victim == 1 { "b" } else { "c" });
                restarted.ready().await;
                if let Ok(mut urls) = urls.write() {
                    urls[victim] = Some(restarted.url.clone());
                }
                *node = restarted;
                continue;
            }
            let settled = last.lock().map(|last| {
                let quiet = |t: Option<Instant>| t.is_none_or(|t| t.elapsed().as_millis() > 1200);
                last.iter().all(|(refused, admitted)| {
                    refused.is_some_and(|r| admitted.is_none_or(|a| r > a)) && quiet(*admitted)
                })
            });
            if done_mishap && settled.unwrap_or(false) {
                break;
            }
        }
        stop.store(true, Ordering::Relaxed);
        for task in tasks {
            task.await.expect("caller");
        }
        let n = admitted.load(Ordering::Relaxed);
        let others = others.load(Ordering::Relaxed);
        eprintln!(
            "run {run} ({mishap:?} of node {victim}): {n} of {CREDITS} credits admitted, \
             {others} calls without a budget's answer, {:.1} s",
            run_started.elapsed().as_secs_f64()
        );
        results.push((mishap, n));
        assert!(
            n <= CREDITS,
            "run {run} ({mishap:?}): {n} admitted of {CREDITS} granted"
        );
        if mishap != Mishap::Kill {
            assert!(
                n * 100 >= CREDITS * 99,
                "run {run} ({mishap:?}): only {n} of {CREDITS} admitted"
            );
        }
    }
    eprintln!(
        "usage credits over {RUNS} runs in {:.1} s: {results:?}",
        started.elapsed().as_secs_f64()
    );
    drop(nodes);
    db.drop_now().await;
}
