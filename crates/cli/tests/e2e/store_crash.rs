//! Nothing acknowledged is lost, nothing is left half-done (issue 13): the server is
//! killed with `kill -9` at a random moment, 20 times on SQLite and 20 times on
//! PostgreSQL, while concurrent clients create, revoke and rotate tokens through the API.
//! After every restart each acknowledged create is there, each acknowledged revoke holds,
//! each rotation left exactly one working secret (the last acknowledged one, or a newer
//! one whose answer the kill swallowed — never two, never none), and the audit log matches
//! the tokens' state: one `token.created` per token, a `token.revoked` for each revoked
//! token, as many `token.rotated` as rotations that took effect.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use latchkey_client::proto::{
    CreateTokenRequest, RotateTokenRequest, TokenState, TokenType, UpdateInstanceSettingsRequest,
};
use latchkey_client::{AuditQuery, Client};
use latchkey_store_postgres::testing::TestDatabase;

use crate::events_crash::Setup;
use crate::harness::sqlite_pass_only;

const KILLS: usize = 20;
const WORKERS: usize = 4;

/// What the clients know of one token: its acknowledged secrets in order (the last is the
/// one that must work unless a newer rotation took effect), whether a revoke was
/// acknowledged, and how many rotations and revokes were sent without an answer.
#[derive(Debug, Default, Clone)]
struct Known {
    secrets: Vec<String>,
    revoked: bool,
    rotations_unanswered: usize,
    revokes_unanswered: usize,
    /// Changed since the last check.
    touched: bool,
    /// A rotation took effect whose secret nobody got: checked no more by secret.
    secret_unknown: bool,
}

type Book = Arc<Mutex<BTreeMap<String, Known>>>;

/// A small deterministic generator (seeded per run and printed, so a failure can be
/// replayed with LATCHKEY_CRASH_SEED).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// One client: creates, revokes and rotates until the server stops answering. Before an
/// operation it notes it as unanswered, and turns that into the answer when one comes.
async fn worker(client: Client, ws: String, book: Book, acks: Arc<AtomicUsize>, seed: u64) {
    let mut rng = Rng(seed | 1);
    loop {
        // One operation in flight per token, picked and marked under one lock, so the
        // order of a token's acknowledged secrets is the order its rotations committed.
        let roll = rng.below(10);
        let pick = {
            let mut book = book.lock().unwrap();
            let idle: Vec<String> = book
                .iter()
                .filter(|(_, k)| {
                    !k.revoked
                        && !k.secret_unknown
                        && k.revokes_unanswered == 0
                        && k.rotations_unanswered == 0
                })
                .map(|(id, _)| id.clone())
                .collect();
            let pick =
                (!idle.is_empty()).then(|| idle[rng.below(idle.len() as u64) as usize].clone());
            if let Some(id) = &pick {
                let known = book.get_mut(id).unwrap();
                known.touched = true;
                match roll {
                    0..=3 => {}
                    4..=7 => known.rotations_unanswered += 1,
                    _ => known.revokes_unanswered += 1,
                }
            }
            pick
        };
        let answered = match (roll, pick) {
            (0..=3, _) | (_, None) => {
                let request = CreateTokenRequest::new("crash", TokenType::Client);
                match client.tokens().create(&ws, &request).await {
                    Ok(created) => {
                        book.lock().unwrap().insert(
                            created.meta.id,
                            Known {
                                secrets: vec![created.token],
                                touched: true,
                                ..Known::default()
                            },
                        );
                        true
                    }
                    Err(e) => e.status().is_some(),
                }
            }
            (4..=7, Some(id)) => {
                match client
                    .tokens()
                    .rotate(&id, &RotateTokenRequest::default())
                    .await
                {
                    Ok(rotated) => {
                        let mut book = book.lock().unwrap();
                        let known = book.get_mut(&id).unwrap();
                        known.rotations_unanswered -= 1;
                        known.secrets.push(rotated.token);
                        true
                    }
                    // Refused (a revoke won the race): took no effect.
                    Err(e) if e.status().is_some() => {
                        book.lock()
                            .unwrap()
                            .get_mut(&id)
                            .unwrap()
                            .rotations_unanswered -= 1;
                        true
                    }
                    Err(_) => false,
                }
            }
            (_, Some(id)) => match client.tokens().revoke(&id).await {
                Ok(_) => {
                    let mut book = book.lock().unwrap();
                    let known = book.get_mut(&id).unwrap();
                    known.revokes_unanswered -= 1;
                    known.revoked = true;
                    true
                }
                Err(e) if e.status().is_some() => {
                    book.lock()
                        .unwrap()
                        .get_mut(&id)
                        .unwrap()
                        .revokes_unanswered -= 1;
                    true
                }
                Err(_) => false,
            },
        };
        if !answered {
            // The server is gone: what was sent stays unanswered.
            return;
        }
        acks.fetch_add(1, Ordering::Relaxed);
    }
}

/// Checks every token the clients touched against the restarted server, and resolves what
/// the kill left unanswered into what the server says took effect.
async fn check_and_settle(admin: &Client, book: &Book, round: usize) {
    let snapshot: Vec<(String, Known)> = book
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, k)| k.touched)
        .map(|(id, k)| (id.clone(), k.clone()))
        .collect();
    for (id, known) in snapshot {
        let token = admin
            .tokens()
            .get(&id)
            .await
            .unwrap_or_else(|e| panic!("round {round}: acknowledged token {id} is gone: {e}"));
        let revoked = token.state == TokenState::Revoked;
        if known.revoked {
            assert!(revoked, "round {round}: acknowledged revoke of {id} lost");
        } else if revoked {
            assert!(
                known.revokes_unanswered > 0,
                "round {round}: {id} revoked though nobody asked"
            );
        } else {
            assert_eq!(token.state, TokenState::Active, "round {round}: {id}");
        }
        let events = audit_of(admin, &id).await;
        let count = |action: &str| events.iter().filter(|a| a.as_str() == action).count();
        assert_eq!(count("token.created"), 1, "round {round}: {id}: {events:?}");
        assert_eq!(
            count("token.revoked"),
            usize::from(revoked),
            "round {round}: {id}: the audit log and the state disagree: {events:?}"
        );
        let acknowledged = known.secrets.len() - 1;
        let rotated = count("token.rotated");
        assert!(
            rotated >= acknowledged && rotated <= acknowledged + known.rotations_unanswered,
            "round {round}: {id}: {rotated} rotations audited, {acknowledged} acknowledged, \
             {} unanswered",
            known.rotations_unanswered
        );
        // Exactly one live secret: without grace, every older secret is dead; the last
        // acknowledged one works unless a newer (unanswered) rotation took effect.
        let mut working = Vec::new();
        for secret in &known.secrets {
            let answer = admin.verify(secret).await.unwrap();
            working.push(answer.valid);
        }
        let last = working.len() - 1;
        let expect_last = !revoked && rotated == acknowledged;
        assert_eq!(
            working[last], expect_last,
            "round {round}: {id}: last acknowledged secret (rotations audited {rotated}, \
             acknowledged {acknowledged}, revoked {revoked})"
        );
        assert!(
            working[..last].iter().all(|w| !w),
            "round {round}: {id}: a rotated-out secret still works: {working:?}"
        );
        let mut book = book.lock().unwrap();
        let entry = book.get_mut(&id).unwrap();
        entry.revoked = revoked;
        entry.revokes_unanswered = 0;
        entry.rotations_unanswered = 0;
        entry.touched = false;
        entry.secret_unknown = rotated > acknowledged;
    }
}

/// The actions of the audit events about `token_id`.
async fn audit_of(admin: &Client, token_id: &str) -> Vec<String> {
    let mut actions = Vec::new();
    let mut query = AuditQuery {
        token: Some(token_id.to_owned()),
        limit: Some(200),
        ..AuditQuery::default()
    };
    loop {
        let page = admin.audit_events(&query).await.unwrap();
        actions.extend(
            page.items
                .into_iter()
                .filter(|e| e.target_id.as_deref() == Some(token_id))
                .map(|e| e.action),
        );
        match page.next_cursor {
            Some(cursor) => query.cursor = Some(cursor),
            None => return actions,
        }
    }
}

async fn kills_lose_nothing(database_url: Option<&str>, backend: &str) {
    // A fresh seed each run (LATCHKEY_CRASH_SEED replays one).
    let seed = std::env::var("LATCHKEY_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            use std::hash::{BuildHasher, Hasher};
            std::collections::hash_map::RandomState::new()
                .build_hasher()
                .finish()
        });
    eprintln!("{backend}: seed {seed}");
    let mut rng = Rng(seed | 1);
    let setup = Setup::new(database_url);
    let book: Book = Arc::default();
    let acks = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut node = setup.node("one").await;
    let admin = setup.admin(&node);
    admin
        .update_instance_settings(&UpdateInstanceSettingsRequest {
            max_active_tokens: Some(None),
            ..Default::default()
        })
        .await
        .unwrap();
    let ws = admin.me().await.unwrap().memberships[0]
        .workspace_id
        .clone();
    for round in 0..KILLS {
        let admin = setup.admin(&node);
        let workers: Vec<_> = (0..WORKERS)
            .map(|_| {
                let acks = Arc::clone(&acks);
                tokio::spawn(worker(
                    admin.clone(),
                    ws.clone(),
                    book.clone(),
                    acks,
                    rng.next(),
                ))
            })
            .collect();
        // A random moment: 0..300 ms after the round's first answer.
        let before = acks.load(Ordering::Relaxed);
        let deadline = Instant::now() + Duration::from_secs(30);
        while acks.load(Ordering::Relaxed) == before {
            assert!(
                Instant::now() < deadline,
                "round {round}: no answer within 30 s"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tokio::time::sleep(Duration::from_millis(rng.below(300))).await;
        node.kill_9();
        for w in workers {
            w.await.unwrap();
        }
        node = setup.node("one").await;
        check_and_settle(&setup.admin(&node), &book, round).await;
    }
    // Every acknowledged token is listed once, and nothing else was made.
    let admin = setup.admin(&node);
    let mut listed = Vec::new();
    let mut page = latchkey_client::PageQuery::limit(200);
    loop {
        let got = admin.tokens().list(Some(&ws), &page).await.unwrap();
        listed.extend(got.items.into_iter().map(|t| t.id));
        match got.next_cursor {
            Some(c) => page.cursor = Some(c),
            None => break,
        }
    }
    let book = book.lock().unwrap();
    for id in book.keys() {
        assert!(listed.contains(id), "{id} not listed");
    }
    let rotations: usize = book
        .values()
        .map(|k| k.secrets.len().saturating_sub(1))
        .sum();
    eprintln!(
        "{backend}: {KILLS} kills in {:?}: {} acknowledged creates ({} listed with unanswered \
         ones and the bootstrap token), {} acknowledged rotations, {} revoked",
        started.elapsed(),
        book.len(),
        listed.len(),
        rotations,
        book.values().filter(|k| k.revoked).count()
    );
    assert!(
        acks.load(Ordering::Relaxed) >= KILLS,
        "an answer before every kill"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_twenty_times_on_sqlite_loses_nothing_acknowledged() {
    if sqlite_pass_only("a subprocess on a SQLite data dir") {
        return;
    }
    kills_lose_nothing(None, "sqlite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_twenty_times_on_postgresql_loses_nothing_acknowledged() {
    if sqlite_pass_only("PostgreSQL nodes of its own, in either pass") {
        return;
    }
    let Some(db) = TestDatabase::create().await else {
        return;
    };
    kills_lose_nothing(Some(&db.url), "postgresql").await;
}
