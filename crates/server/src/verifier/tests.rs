//! The verifier on a real in-memory SQLite store, with the clock moved instead of waited
//! for: invalidation (here and through the change feed), reads that race with an
//! invalidation, the negative cache, staleness, and single-flight misses.
//!
//! The store is real; [`Gated`] only counts the verifier's reads and can hold a read's
//! answer back after the store gave it (to order a race), or make reads fail (the store
//! away).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::time::Duration;

use latchkey_core::model::UserRecord;
use latchkey_proto::OrgRole;
use latchkey_store::UserPatch;
use latchkey_store::conformance::{self, World, event, t0, unlimited};
use latchkey_store_sqlite::SqliteStore;
use tokio::sync::watch;

use super::*;

/// The store reads the verifier makes, by kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Version,
    Changes,
    FindSecret,
    GetToken,
    User,
    Org,
    Hashes,
}

const OPS: usize = 7;

/// A real store behind the verifier's read seam: counts reads, can hold answers back,
/// can fail every read.
struct Gated {
    store: Arc<dyn Store>,
    calls: [AtomicUsize; OPS],
    held: [watch::Sender<bool>; OPS],
    waiting: [AtomicUsize; OPS],
    failing: AtomicBool,
}

impl Gated {
    fn new(store: Arc<dyn Store>) -> Arc<Gated> {
        Arc::new(Gated {
            store,
            calls: Default::default(),
            held: std::array::from_fn(|_| watch::channel(false).0),
            waiting: Default::default(),
            failing: AtomicBool::new(false),
        })
    }

    fn calls(&self, op: Op) -> usize {
        self.calls[op as usize].load(Ordering::SeqCst)
    }

    /// Answers of `op` wait (after the store has answered) until [`Gated::release`].
    fn hold(&self, op: Op) {
        self.held[op as usize].send_replace(true);
    }

    fn release(&self, op: Op) {
        self.held[op as usize].send_replace(false);
    }

    fn fail(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }

    /// Waits (polling, 10 s deadline) until `n` reads of `op` are held.
    async fn until_held(&self, op: Op, n: usize) {
        eventually(&format!("{n} held {op:?} reads"), || {
            self.waiting[op as usize].load(Ordering::SeqCst) == n
        })
        .await;
    }

    async fn read<T>(&self, op: Op, call: impl Future<Output = StoreResult<T>>) -> StoreResult<T> {
        self.calls[op as usize].fetch_add(1, Ordering::SeqCst);
        if self.failing.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable(
                "the test took the store away".into(),
            ));
        }
        let answer = call.await;
        let mut held = self.held[op as usize].subscribe();
        if *held.borrow_and_update() {
            self.waiting[op as usize].fetch_add(1, Ordering::SeqCst);
            let _ = held.wait_for(|h| !*h).await;
            self.waiting[op as usize].fetch_sub(1, Ordering::SeqCst);
        }
        answer
    }
}

#[async_trait::async_trait]
impl StoreReads for Arc<Gated> {
    async fn current_version(&self) -> StoreResult<i64> {
        self.read(Op::Version, self.store.current_version()).await
    }
    async fn changes_since(&self, after: i64, limit: u32) -> StoreResult<Vec<Change>> {
        self.read(Op::Changes, self.store.changes_since(after, limit))
            .await
    }
    async fn find_secret(
        &self,
        hash: &SecretHash,
    ) -> StoreResult<Option<(TokenRecord, SecretRecord)>> {
        self.read(Op::FindSecret, self.store.find_secret(hash))
            .await
    }
    async fn get_token(&self, id: &str) -> StoreResult<TokenRecord> {
        self.read(Op::GetToken, self.store.get_token(id)).await
    }
    async fn user_with_memberships(
        &self,
        id: &str,
    ) -> StoreResult<(UserRecord, Vec<MembershipRecord>)> {
        self.read(Op::User, async {
            Ok((
                self.store.get_user(id).await?,
                self.store.memberships_of(id).await?,
            ))
        })
        .await
    }
    async fn get_org(&self) -> StoreResult<OrgRecord> {
        self.read(Op::Org, self.store.get_org()).await
    }
    async fn secret_hashes(
        &self,
        after: Option<&SecretHash>,
        limit: u32,
    ) -> StoreResult<Vec<SecretHash>> {
        self.read(Op::Hashes, self.store.secret_hashes(after, limit))
            .await
    }
    async fn secret_hashes_of(&self, token_ids: &[String]) -> StoreResult<Vec<SecretHash>> {
        self.read(Op::Hashes, self.store.secret_hashes_of(token_ids))
            .await
    }
}

/// Polls `check` every millisecond until it holds; fails after 10 s.
async fn eventually(what: &str, check: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

struct Fixture {
    store: Arc<dyn Store>,
    reads: Arc<Gated>,
    verifier: Arc<Verifier>,
    clock: Clock,
    world: World,
    key: HashKey,
}

const MAX_STALENESS_SECS: u64 = 30;

async fn fixture(unknown_cap: usize) -> Fixture {
    let sqlite = SqliteStore::open_url("sqlite::memory:").await.unwrap();
    let store: Arc<dyn Store> = Arc::new(sqlite);
    store.migrate().await.unwrap();
    let world = conformance::bootstrapped(store.as_ref()).await;
    // The wall clock at the fixtures' t0, plus an hour.
    let clock = Clock::default();
    clock.advance(t0().unix_timestamp() + 3600 - clock.now_secs());
    let key = HashKey::from_bytes(&[7; 32]);
    let reads = Gated::new(Arc::clone(&store));
    let verifier = Verifier::start_reading(
        key.clone(),
        Box::new(Arc::clone(&reads)),
        clock.clone(),
        unknown_cap,
        MAX_STALENESS_SECS,
    )
    .await
    .unwrap();
    Fixture {
        store,
        reads,
        verifier: Arc::new(verifier),
        clock,
        world,
        key,
    }
}

impl Fixture {
    /// A new secret of `token_type` (not stored).
    fn secret(token_type: TokenType) -> String {
        token::generate(SecretKind::Token(token_type))
    }

    /// Stores a token with `secret`, owned by `owner` (personal) or the workspace.
    async fn store_token(&self, secret: &str, owner: Option<&UserRecord>) -> TokenRecord {
        let token_type = match owner {
            Some(_) => TokenType::Personal,
            None => TokenType::Client,
        };
        let (record, mut secret_record) = conformance::token_record(
            &self.world.org.id,
            token_type,
            Some(&self.world.workspace),
            owner,
        );
        secret_record.hash = self.key.hash(secret);
        secret_record.key_id = self.key.id().to_owned();
        self.store
            .create_token(
                t0(),
                record,
                secret_record,
                &unlimited(),
                event("token.created"),
            )
            .await
            .unwrap()
    }

    /// A stored personal token of the admin: (record, secret).
    async fn token(&self) -> (TokenRecord, String) {
        let secret = Self::secret(TokenType::Personal);
        let record = self.store_token(&secret, Some(&self.world.admin)).await;
        (record, secret)
    }

    async fn verify(&self, secret: &str) -> Result<Verified, VerifyError> {
        self.verifier.verify(secret, self.clock.now()).await
    }

    /// Starts a check on another task (to hold its store read).
    fn verify_later(&self, secret: &str) -> tokio::task::JoinHandle<Result<Verified, VerifyError>> {
        let verifier = Arc::clone(&self.verifier);
        let clock = self.clock.clone();
        let secret = secret.to_owned();
        tokio::spawn(async move { verifier.verify(&secret, clock.now()).await })
    }

    async fn revoke_in_store(&self, id: &str) {
        self.store
            .revoke_token(t0(), id, false, event("token.revoked"))
            .await
            .unwrap();
    }

    async fn deactivate_in_store(&self, user_id: &str) {
        let patch = UserPatch {
            active: Some(false),
            ..UserPatch::default()
        };
        self.store
            .update_user(t0(), user_id, patch, event("user.deactivated"))
            .await
            .unwrap();
    }

    fn hits(&self) -> u64 {
        self.verifier.stats.hits.load(Ordering::SeqCst)
    }
}

fn reason(result: Result<Verified, VerifyError>) -> Option<Reason> {
    match result {
        Ok(_) => None,
        Err(VerifyError::Invalid(reason)) => Some(reason),
        Err(VerifyError::Unavailable) => panic!("unexpected Unavailable"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checked_token_is_answered_from_memory_until_it_is_invalidated() {
    let f = fixture(100).await;
    let (token, secret) = f.token().await;
    assert_eq!(reason(f.verify(&secret).await), None);
    assert_eq!(f.reads.calls(Op::FindSecret), 1);
    assert_eq!(f.reads.calls(Op::User), 1, "the owner's view is read once");
    assert_eq!(reason(f.verify(&secret).await), None);
    assert_eq!(
        f.reads.calls(Op::FindSecret),
        1,
        "the second check is a hit"
    );
    assert_eq!(f.hits(), 1);

    // Another node revokes it: memory does not know until told…
    f.revoke_in_store(&token.id).await;
    assert_eq!(reason(f.verify(&secret).await), None);
    // …by this node's own write path (at once)…
    f.verifier.invalidate_token(&token.id);
    assert_eq!(reason(f.verify(&secret).await), Some(Reason::Revoked));
    assert_eq!(f.reads.calls(Op::FindSecret), 2);

    // …or by the change feed.
    let (other, other_secret) = f.token().await;
    f.verifier.sync().await.unwrap();
    assert_eq!(reason(f.verify(&other_secret).await), None);
    f.revoke_in_store(&other.id).await;
    let summary = f.verifier.sync().await.unwrap();
    assert_eq!(summary.applied, 1, "{summary:?}");
    assert_eq!(reason(f.verify(&other_secret).await), Some(Reason::Revoked));

    // A user change through the feed: the owner's view is read again.
    let (_, third) = f.token().await;
    f.verifier.sync().await.unwrap();
    assert_eq!(reason(f.verify(&third).await), None);
    let member = conformance::add_user(f.store.as_ref(), &f.world, "member", OrgRole::Member).await;
    let owned_by_member = Fixture::secret(TokenType::Personal);
    f.store_token(&owned_by_member, Some(&member)).await;
    f.verifier.sync().await.unwrap();
    assert_eq!(reason(f.verify(&owned_by_member).await), None);
    f.deactivate_in_store(&member.id).await;
    f.verifier.sync().await.unwrap();
    assert_eq!(
        reason(f.verify(&owned_by_member).await),
        Some(Reason::Suspended)
    );

    // The wall clock moves past the expiry: answered from memory, no store read.
    let reads_before = f.reads.calls(Op::FindSecret);
    f.clock.advance(31 * 86_400);
    assert_eq!(reason(f.verify(&third).await), Some(Reason::Expired));
    assert_eq!(f.reads.calls(Op::FindSecret), reads_before);
}

/// The epoch race: a read that returned before an invalidation of its token but is
/// inserted after it must not be cached (it would keep a revoked token working here).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_that_raced_with_its_tokens_invalidation_is_not_cached() {
    let f = fixture(100).await;
    let (token, secret) = f.token().await;
    f.verifier.sync().await.unwrap();
    f.reads.hold(Op::FindSecret);
    let check = f.verify_later(&secret);
    f.reads.until_held(Op::FindSecret, 1).await;
    // The read has the token as active; now it is revoked (here) before the answer lands.
    f.revoke_in_store(&token.id).await;
    f.verifier.invalidate_token(&token.id);
    f.reads.release(Op::FindSecret);
    // The check began before the revocation: answering "valid" is linearizable…
    assert_eq!(reason(check.await.unwrap()), None);
    // …but the answer is not kept.
    assert_eq!(reason(f.verify(&secret).await), Some(Reason::Revoked));
    assert_eq!(f.reads.calls(Op::FindSecret), 2);

    // The same for a token read by id (an access JWT's `pat`).
    let (by_id, _) = f.token().await;
    f.reads.hold(Op::GetToken);
    let verifier = Arc::clone(&f.verifier);
    let now = f.clock.now();
    let id = by_id.id.clone();
    let check = tokio::spawn(async move { verifier.verify_token_id(&id, now).await });
    f.reads.until_held(Op::GetToken, 1).await;
    f.revoke_in_store(&by_id.id).await;
    f.verifier.invalidate_token(&by_id.id);
    f.reads.release(Op::GetToken);
    assert_eq!(reason(check.await.unwrap()), None);
    assert_eq!(
        reason(f.verifier.verify_token_id(&by_id.id, f.clock.now()).await),
        Some(Reason::Revoked)
    );

    // And for the owner's view: a deactivation during the read is not cached over.
    let member = conformance::add_user(f.store.as_ref(), &f.world, "m", OrgRole::Member).await;
    let secret = Fixture::secret(TokenType::Personal);
    f.store_token(&secret, Some(&member)).await;
    f.verifier.sync().await.unwrap();
    f.reads.hold(Op::User);
    let check = f.verify_later(&secret);
    f.reads.until_held(Op::User, 1).await;
    f.deactivate_in_store(&member.id).await;
    f.verifier.invalidate_user(&member.id);
    f.reads.release(Op::User);
    assert_eq!(reason(check.await.unwrap()), None);
    assert_eq!(reason(f.verify(&secret).await), Some(Reason::Suspended));
}

/// What made `scale_out::nodes_survive_a_postgresql_restart` flaky on a busy machine: a
/// read that overlapped *another* token's invalidation (the feed applying an unrelated
/// creation) was not cached, so the next check went to the store — which was gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_that_raced_with_unrelated_invalidations_is_cached() {
    let f = fixture(100).await;
    let (_, secret) = f.token().await;
    let (other, _) = f.token().await;
    let member = conformance::add_user(f.store.as_ref(), &f.world, "m", OrgRole::Member).await;
    f.verifier.sync().await.unwrap();
    f.reads.hold(Op::FindSecret);
    f.reads.hold(Op::User);
    let check = f.verify_later(&secret);
    f.reads.until_held(Op::FindSecret, 1).await;
    f.verifier.invalidate_token(&other.id);
    f.verifier.invalidate_user(&member.id);
    f.verifier.secret_created(&f.key.hash("some other secret"));
    f.reads.release(Op::FindSecret);
    f.reads.until_held(Op::User, 1).await;
    f.verifier.invalidate_token(&other.id);
    f.verifier.invalidate_user(&member.id);
    f.reads.release(Op::User);
    assert_eq!(reason(check.await.unwrap()), None);
    let hits = f.hits();
    assert_eq!(reason(f.verify(&secret).await), None);
    assert_eq!(f.hits(), hits + 1, "answered from memory");
    assert_eq!(f.reads.calls(Op::FindSecret), 1);
    assert_eq!(f.reads.calls(Op::User), 1);

    // A read that outlives more invalidations than are remembered is not cached (it cannot
    // tell whether one was about its token).
    let (_, long) = f.token().await;
    f.verifier.sync().await.unwrap();
    f.reads.hold(Op::FindSecret);
    let check = f.verify_later(&long);
    f.reads.until_held(Op::FindSecret, 1).await;
    for _ in 0..=RECENT_INVALIDATIONS {
        f.verifier.invalidate_token(&other.id);
    }
    f.reads.release(Op::FindSecret);
    assert_eq!(reason(check.await.unwrap()), None);
    let reads = f.reads.calls(Op::FindSecret);
    assert_eq!(reason(f.verify(&long).await), None);
    assert_eq!(f.reads.calls(Op::FindSecret), reads + 1, "read again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_tokens_reach_the_store_at_most_once() {
    let f = fixture(3).await;
    assert_eq!(
        reason(f.verify("lkp_not-a-token").await),
        Some(Reason::BadFormat)
    );
    assert_eq!(
        f.reads.calls(Op::FindSecret),
        0,
        "the checksum answers first"
    );

    let unknown = Fixture::secret(TokenType::Personal);
    for _ in 0..3 {
        assert_eq!(reason(f.verify(&unknown).await), Some(Reason::NotFound));
    }
    assert_eq!(f.reads.calls(Op::FindSecret), 1);
    assert_eq!(f.verifier.stats.negative_hits.load(Ordering::SeqCst), 2);

    // Created on this node: no longer unknown, at once.
    f.store_token(&unknown, Some(&f.world.admin)).await;
    f.verifier.secret_created(&f.key.hash(&unknown));
    assert_eq!(reason(f.verify(&unknown).await), None);

    // Created on another node: the feed's token change starts the negative cache over.
    let elsewhere = Fixture::secret(TokenType::Client);
    f.verifier.sync().await.unwrap();
    assert_eq!(reason(f.verify(&elsewhere).await), Some(Reason::NotFound));
    f.store_token(&elsewhere, None).await;
    assert_eq!(
        reason(f.verify(&elsewhere).await),
        Some(Reason::NotFound),
        "remembered until the feed says otherwise"
    );
    f.verifier.sync().await.unwrap();
    assert_eq!(reason(f.verify(&elsewhere).await), None);

    // Bounded: past the cap the negative cache starts over.
    for _ in 0..4 {
        let _ = f.verify(&Fixture::secret(TokenType::Personal)).await;
    }
    assert!(
        f.verifier.cached_unknown() <= 3,
        "{}",
        f.verifier.cached_unknown()
    );

    // A "not found" read while the secret was being created is not remembered.
    let racing = Fixture::secret(TokenType::Personal);
    f.reads.hold(Op::FindSecret);
    let check = f.verify_later(&racing);
    f.reads.until_held(Op::FindSecret, 1).await;
    f.store_token(&racing, Some(&f.world.admin)).await;
    f.verifier.secret_created(&f.key.hash(&racing));
    f.reads.release(Op::FindSecret);
    assert_eq!(reason(check.await.unwrap()), Some(Reason::NotFound));
    assert_eq!(reason(f.verify(&racing).await), None);

    // A failed read is not an answer: nothing is remembered, the next check reads again.
    let later = Fixture::secret(TokenType::Personal);
    f.reads.fail(true);
    assert_eq!(f.verify(&later).await.err(), Some(VerifyError::Unavailable));
    f.reads.fail(false);
    f.store_token(&later, Some(&f.world.admin)).await;
    assert_eq!(reason(f.verify(&later).await), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_has_not_heard_from_the_store_fails_closed() {
    let f = fixture(100).await;
    let (_, secret) = f.token().await;
    assert_eq!(reason(f.verify(&secret).await), None);
    assert!(f.verifier.is_fresh());

    // Just inside max_staleness: cached answers stand.
    f.clock
        .advance_elapsed(Duration::from_secs(MAX_STALENESS_SECS - 1));
    assert_eq!(reason(f.verify(&secret).await), None);
    // Past it, even a cached grant is refused, without a store read.
    f.clock.advance_elapsed(Duration::from_secs(2));
    assert!(!f.verifier.is_fresh());
    let reads = f.reads.calls(Op::FindSecret);
    assert_eq!(
        f.verify(&secret).await.err(),
        Some(VerifyError::Unavailable)
    );
    assert_eq!(f.reads.calls(Op::FindSecret), reads);
    // One successful read of the feed makes it fresh again.
    f.verifier.sync().await.unwrap();
    assert_eq!(reason(f.verify(&secret).await), None);

    // With the store away, reads of the feed fail and the node goes stale…
    f.reads.fail(true);
    assert!(f.verifier.sync().await.is_err());
    assert_eq!(
        reason(f.verify(&secret).await),
        None,
        "still inside the grace"
    );
    f.clock
        .advance_elapsed(Duration::from_secs(MAX_STALENESS_SECS + 1));
    assert!(f.verifier.sync().await.is_err());
    assert_eq!(
        f.verify(&secret).await.err(),
        Some(VerifyError::Unavailable)
    );
    // …and serves again as soon as the store answers.
    f.reads.fail(false);
    f.verifier.sync().await.unwrap();
    assert_eq!(reason(f.verify(&secret).await), None);
    // Moving the wall clock (expiry) does not make a node stale.
    f.clock.advance(3600);
    assert!(f.verifier.is_fresh());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_misses_of_one_token_share_one_store_read() {
    let f = fixture(100).await;
    let (_, secret) = f.token().await;
    let hash = f.key.hash(&secret);
    f.reads.hold(Op::FindSecret);
    let checks: Vec<_> = (0..8).map(|_| f.verify_later(&secret)).collect();
    f.reads.until_held(Op::FindSecret, 1).await;
    // Every check waits on the one read in flight (the map's cell plus eight waiters).
    eventually("eight checks waiting on one read", || {
        f.verifier
            .inflight
            .get(&hash)
            .is_some_and(|cell| Arc::strong_count(cell.value()) == 9)
    })
    .await;
    f.reads.release(Op::FindSecret);
    for check in checks {
        assert_eq!(reason(check.await.unwrap()), None);
    }
    assert_eq!(f.reads.calls(Op::FindSecret), 1);
    assert_eq!(f.verifier.stats.coalesced.load(Ordering::SeqCst), 7);
    assert!(f.verifier.inflight.is_empty(), "nothing left in flight");

    // A failed shared read fails every waiter, and the next check reads again.
    let (_, second) = f.token().await;
    f.reads.fail(true);
    let checks: Vec<_> = (0..4).map(|_| f.verify_later(&second)).collect();
    for check in checks {
        assert_eq!(check.await.unwrap().err(), Some(VerifyError::Unavailable));
    }
    f.reads.fail(false);
    assert_eq!(reason(f.verify(&second).await), None);
}

#[test]
fn rfc3339_header_matches_the_general_formatter() {
    let mut at = OffsetDateTime::UNIX_EPOCH;
    // Every month and day boundary, odd hours and seconds, far years.
    for step in 0..5_000i64 {
        at += time::Duration::seconds(86_399 * 7 + step * 3_601 + 17);
        let expected = at.format(&Rfc3339).unwrap();
        assert_eq!(rfc3339_header(at).to_str().unwrap(), expected);
    }
    let far = OffsetDateTime::from_unix_timestamp(253_402_300_799).unwrap();
    assert_eq!(
        rfc3339_header(far).to_str().unwrap(),
        "9999-12-31T23:59:59Z"
    );
    let offset = OffsetDateTime::from_unix_timestamp(1_798_759_800)
        .unwrap()
        .to_offset(time::UtcOffset::from_hms(2, 0, 0).unwrap());
    assert_eq!(
        rfc3339_header(offset).to_str().unwrap(),
        "2026-12-31T23:30:00Z"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_every_hash_known_a_flood_of_unknown_tokens_reads_no_secret() {
    let f = fixture(100).await;
    let (_, valid) = f.token().await;
    // Before the known set is in, an unknown token is looked up (the old behaviour).
    let early = Fixture::secret(TokenType::Personal);
    assert_eq!(reason(f.verify(&early).await), Some(Reason::NotFound));
    assert_eq!(f.reads.calls(Op::FindSecret), 1);

    f.verifier.load_known(1000).await.unwrap();
    assert!(f.verifier.knows_every_hash());
    // The bootstrap token and the admin's token.
    assert_eq!(f.verifier.known_hashes(), 2);
    let feed_reads = f.reads.calls(Op::Changes);
    let flood: Vec<_> = (0..200)
        .map(|_| f.verify_later(&Fixture::secret(TokenType::Client)))
        .collect();
    for check in flood {
        assert_eq!(reason(check.await.unwrap()), Some(Reason::NotFound));
    }
    assert_eq!(
        f.reads.calls(Op::FindSecret),
        1,
        "no secret lookup for any of the 200"
    );
    assert_eq!(f.verifier.stats.known_refusals.load(Ordering::SeqCst), 200);
    // They share the spaced feed reads (one per 2 ms at most), not one each.
    let catch_ups = f.reads.calls(Op::Changes) - feed_reads;
    assert!(
        catch_ups < 50,
        "{catch_ups} feed reads for 200 unknown tokens"
    );
    // A known token is unaffected.
    assert_eq!(reason(f.verify(&valid).await), None);
    assert_eq!(f.reads.calls(Op::FindSecret), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_made_on_another_node_a_moment_ago_is_not_refused_by_the_known_set() {
    let f = fixture(100).await;
    f.verifier.load_known(1000).await.unwrap();
    // Stored by "another node": no secret_created here, and the poller has not run.
    let (_, elsewhere) = f.token().await;
    assert_eq!(reason(f.verify(&elsewhere).await), None);
    assert_eq!(f.reads.calls(Op::FindSecret), 1);
    // Made here: known at once, without a feed read.
    let here = Fixture::secret(TokenType::Personal);
    f.store_token(&here, Some(&f.world.admin)).await;
    f.verifier.secret_created(&f.key.hash(&here));
    let feed_reads = f.reads.calls(Op::Changes);
    assert_eq!(reason(f.verify(&here).await), None);
    assert_eq!(f.reads.calls(Op::Changes), feed_reads);
    // The poller's sync adds what the feed names, too.
    f.verifier.sync().await.unwrap();
    let (_, synced) = f.token().await;
    f.verifier.sync().await.unwrap();
    let feed_reads = f.reads.calls(Op::Changes);
    assert_eq!(reason(f.verify(&synced).await), None);
    assert_eq!(
        f.reads.calls(Op::Changes),
        feed_reads,
        "known without a catch-up"
    );

    // Too many stored secrets for the bound: the set is not trusted, lookups as before.
    let bounded = fixture(100).await;
    bounded.token().await;
    bounded.verifier.load_known(1).await.unwrap();
    assert!(!bounded.verifier.knows_every_hash());
    assert_eq!(
        reason(bounded.verify(&Fixture::secret(TokenType::Client)).await),
        Some(Reason::NotFound)
    );
    assert_eq!(bounded.reads.calls(Op::FindSecret), 1);

    // The store away during a catch-up: not an answer either way (the lookup says so).
    let (_, unseen) = f.token().await;
    f.reads.fail(true);
    assert!(matches!(
        f.verify(&unseen).await,
        Err(VerifyError::Unavailable)
    ));
    f.reads.fail(false);
    assert_eq!(reason(f.verify(&unseen).await), None);
}
