//! The hot path: checksum → keyed hash → in-memory map of immutable grants.
//!
//! A grant is the snapshot of one secret's token as stored; it never changes in place.
//! Anything that can turn a token off invalidates its grants (here at once, on other nodes
//! through the change feed). What can change for many tokens at once — a user's active flag
//! and roles, the org's enabled types — lives in small maps consulted on every check, so
//! one change invalidates one entry. Unknown hashes are remembered (bounded) so a flood of
//! made-up tokens reaches the store at most once per distinct token.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::atomic::{AtomicI64, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::http::HeaderValue;
use dashmap::DashMap;
use latchkey_core::model::{MembershipRecord, StateContext, StoredState, TokenRecord};
use latchkey_core::token::{self, SecretKind};
use latchkey_core::token_policy::{BudgetKind, BudgetRule, TokenPolicy};
use latchkey_core::{HashKey, OrgRecord, ScopeSet, SecretHash, SecretRecord, UserRecord};
use latchkey_proto::{MembershipRef, OrgRole, Reason, TokenType, User, WorkspaceRole};
use latchkey_store::{Change, ChangeKind, Store, StoreError, StoreResult};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::sync::OnceCell;

use crate::fasthash::{FxBuild, SecretHashBuild};
use crate::metrics::{Metrics, StoreOp};
use crate::state::Clock;

#[cfg(test)]
mod tests;

/// The store reads the verifier makes, and nothing else: a narrow seam, so the tests in
/// `verifier/tests.rs` can hold a real store's answer back to order a race.
#[async_trait::async_trait]
pub(crate) trait StoreReads: Send + Sync {
    async fn current_version(&self) -> StoreResult<i64>;
    async fn changes_since(&self, after: i64, limit: u32) -> StoreResult<Vec<Change>>;
    async fn find_secret(
        &self,
        hash: &SecretHash,
    ) -> StoreResult<Option<(TokenRecord, SecretRecord)>>;
    async fn get_token(&self, id: &str) -> StoreResult<TokenRecord>;
    async fn user_with_memberships(
        &self,
        id: &str,
    ) -> StoreResult<(UserRecord, Vec<MembershipRecord>)>;
    async fn get_org(&self) -> StoreResult<OrgRecord>;
    async fn secret_hashes(
        &self,
        after: Option<&SecretHash>,
        limit: u32,
    ) -> StoreResult<Vec<SecretHash>>;
    async fn secret_hashes_of(&self, token_ids: &[String]) -> StoreResult<Vec<SecretHash>>;
}

#[async_trait::async_trait]
impl StoreReads for Arc<dyn Store> {
    async fn current_version(&self) -> StoreResult<i64> {
        self.as_ref().current_version().await
    }
    async fn changes_since(&self, after: i64, limit: u32) -> StoreResult<Vec<Change>> {
        self.as_ref().changes_since(after, limit).await
    }
    async fn find_secret(
        &self,
        hash: &SecretHash,
    ) -> StoreResult<Option<(TokenRecord, SecretRecord)>> {
        self.as_ref().find_secret(hash).await
    }
    async fn get_token(&self, id: &str) -> StoreResult<TokenRecord> {
        self.as_ref().get_token(id).await
    }
    async fn user_with_memberships(
        &self,
        id: &str,
    ) -> StoreResult<(UserRecord, Vec<MembershipRecord>)> {
        let user = self.as_ref().get_user(id).await?;
        let memberships = self.as_ref().memberships_of(id).await?;
        Ok((user, memberships))
    }
    async fn get_org(&self) -> StoreResult<OrgRecord> {
        self.as_ref().get_org().await
    }
    async fn secret_hashes(
        &self,
        after: Option<&SecretHash>,
        limit: u32,
    ) -> StoreResult<Vec<SecretHash>> {
        self.as_ref().secret_hashes(after, limit).await
    }
    async fn secret_hashes_of(&self, token_ids: &[String]) -> StoreResult<Vec<SecretHash>> {
        self.as_ref().secret_hashes_of(token_ids).await
    }
}

/// What one invalidation turned off, remembered for the store reads that were in flight
/// meanwhile: such a read caches its answer only if nothing it depends on was invalidated
/// (an unrelated token's revocation must not cost this token its cache entry — under a
/// steady write rate a coarse rule would keep slow reads from ever being cached).
#[derive(Debug, Clone)]
enum Invalidated {
    /// One token's grants.
    Token(Arc<str>),
    /// One user's view.
    User(Arc<str>),
    /// A secret was created here: an unknown hash may be known now.
    SecretCreated,
    /// Every cache.
    All,
}

/// How many invalidations are remembered; a read that outlived more than this many
/// treats them all as relevant (it is not cached, which is always correct).
const RECENT_INVALIDATIONS: usize = 1024;

/// The last [`RECENT_INVALIDATIONS`] invalidations, oldest first; `entries[i]` was made
/// at epoch `first_epoch + i`.
#[derive(Debug)]
struct RecentInvalidations {
    first_epoch: u64,
    entries: VecDeque<Invalidated>,
}

/// One secret's token, as it was when read from the store: what the checks and the
/// identity headers need, kept small (a node may hold millions). Ids shared by many
/// tokens (workspace, owner) are interned. Everything else (name, hint, last use, …) is
/// read from the store by the few answers that show it.
#[derive(Debug)]
pub struct Grant {
    /// The token's hot fields.
    pub token: GrantToken,
    /// Its scopes as a set.
    pub scopes: ScopeSet,
    /// When this particular secret stops working (rotated out), if it does.
    pub secret_not_after: Option<OffsetDateTime>,
    /// Its uses not yet handed to the usage buffer ([`crate::usage`]).
    usage: crate::usage::UsageCell,
    /// Its verify-time policy; `None` (nothing to check or count) for most tokens.
    pub policy: Option<Arc<GrantPolicy>>,
}

/// A token's verify-time policy as the checks need it (DESIGN.md §8). Grants of tokens
/// without one carry `None` and pay nothing for it.
#[derive(Debug)]
pub struct GrantPolicy {
    /// Networks it may be used from (`None`: anywhere).
    pub allowed_ips: Option<Box<[ipnet::IpNet]>>,
    /// Its rate limit's budget rule, and the limit (for `RateLimit-Limit`).
    pub rate: Option<(BudgetRule, u32)>,
    /// Its usage credits' budget rule.
    pub uses: Option<BudgetRule>,
    /// Its metadata.
    pub metadata: Option<serde_json::Map<String, serde_json::Value>>,
    /// `X-Latchkey-Metadata`: base64url (no padding) of the metadata's compact JSON.
    pub metadata_header: Option<HeaderValue>,
}

impl GrantPolicy {
    /// The policy of a stored token (`None` when it has none).
    pub fn of(policy: &TokenPolicy) -> Option<GrantPolicy> {
        if policy.is_empty() {
            return None;
        }
        use base64::Engine as _;
        Some(GrantPolicy {
            allowed_ips: policy.allowed_ips.clone().map(Vec::into_boxed_slice),
            rate: policy.rate_limit.map(|r| (BudgetRule::rate(r), r.limit)),
            uses: BudgetRule::of(policy, BudgetKind::Uses),
            metadata: policy.metadata.as_ref().map(|m| m.object.clone()),
            metadata_header: policy.metadata.as_ref().and_then(|m| {
                HeaderValue::from_str(
                    &base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&m.compact),
                )
                .ok()
            }),
        })
    }
}

/// The fields of a [`TokenRecord`] that checks read on every request.
#[derive(Debug, Clone)]
pub struct GrantToken {
    /// Id (shared, so recording last-used does not allocate).
    pub id: Arc<str>,
    /// Type.
    pub token_type: TokenType,
    /// Stored state.
    pub state: StoredState,
    /// Workspace it acts in (`None` for legacy tokens).
    pub workspace_id: Option<Arc<str>>,
    /// Owning user (`None` for workspace tokens).
    pub owner_id: Option<Arc<str>>,
    /// Creation time.
    pub created_at: OffsetDateTime,
    /// Expiry.
    pub expires_at: Option<OffsetDateTime>,
    /// Bound projects (empty: all).
    pub projects: Box<[String]>,
    /// Bound environment.
    pub environment: Option<Box<str>>,
}

/// A grant's `X-Latchkey-*` header values (built per answer: kept out of the grant so a
/// cached grant stays small).
#[derive(Debug, Clone)]
pub struct ForwardHeaders {
    /// `X-Latchkey-Token-Id`.
    pub token_id: Option<HeaderValue>,
    /// `X-Latchkey-Workspace`.
    pub workspace: Option<HeaderValue>,
    /// `X-Latchkey-Environment`.
    pub environment: Option<HeaderValue>,
    /// `X-Latchkey-Projects`.
    pub projects: Option<HeaderValue>,
}

impl Grant {
    /// The `Latchkey-Token-Expiration` value, built per answer: kept in the grant it cost
    /// about 70 bytes per cached token (the value and its heap buffer), for ≈ 20 ns saved.
    pub fn expiration_header(&self) -> Option<HeaderValue> {
        self.token.expires_at.map(rfc3339_header)
    }

    /// The token id.
    pub fn token_id(&self) -> &Arc<str> {
        &self.token.id
    }

    /// Its uses not yet flushed (see [`crate::usage::LastUsedBuffer::note`]).
    #[inline]
    pub fn usage(&self) -> &crate::usage::UsageCell {
        &self.usage
    }

    /// The forward-auth identity headers.
    pub fn forward_headers(&self) -> ForwardHeaders {
        let value = |text: &str| HeaderValue::from_str(text).ok();
        ForwardHeaders {
            token_id: value(&self.token.id),
            workspace: self.token.workspace_id.as_deref().and_then(value),
            environment: self.token.environment.as_deref().and_then(value),
            projects: (!self.token.projects.is_empty())
                .then(|| self.token.projects.join(","))
                .and_then(|p| value(&p)),
        }
    }
}

/// A user as the checks need them: active flag, org role, workspace roles.
#[derive(Debug, Clone)]
pub struct UserView {
    /// Id.
    pub id: String,
    /// Username.
    pub username: String,
    /// Org role.
    pub role: OrgRole,
    /// Active.
    pub active: bool,
    /// Workspace id → role.
    pub memberships: HashMap<String, WorkspaceRole>,
    /// The user as the API shows them (`/api/v1/me`).
    pub user: User,
    /// Memberships with workspace names, in the store's order (`/api/v1/me`).
    pub membership_refs: Vec<MembershipRef>,
    /// `X-Latchkey-User` and `X-Latchkey-User-Id`, built once.
    pub forward_headers: (Option<HeaderValue>, Option<HeaderValue>),
}

impl UserView {
    /// The user's role in a workspace.
    pub fn workspace_role(&self, workspace_id: Option<&str>) -> Option<WorkspaceRole> {
        workspace_id.and_then(|ws| self.memberships.get(ws).copied())
    }
}

/// A token that checked out.
#[derive(Debug, Clone)]
pub struct Verified {
    /// The grant.
    pub grant: Arc<Grant>,
    /// Its owner, for user-owned tokens.
    pub owner: Option<Arc<UserView>>,
}

/// Why a check did not succeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifyError {
    /// The token is not valid, for this reason.
    Invalid(Reason),
    /// The answer is unknown: the store is unreachable or this node is too stale.
    Unavailable,
}

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct VerifierStats {
    /// Checks answered from memory.
    pub hits: AtomicU64,
    /// Checks that read the store.
    pub misses: AtomicU64,
    /// Checks answered by the negative cache.
    pub negative_hits: AtomicU64,
    /// Rejected by the checksum.
    pub bad_format: AtomicU64,
    /// Misses that waited for another request's store read of the same hash.
    pub coalesced: AtomicU64,
    /// Checks refused because no stored secret has the hash (the known set), without a
    /// secret lookup.
    pub known_refusals: AtomicU64,
    /// Change-feed reads made for hashes the known set lacked (at most one per
    /// [`CATCH_UP_SPACING`], whatever the number of such checks).
    pub catch_up_reads: AtomicU64,
}

/// The least time between two catch-up reads for hashes the known set lacks: a flood of
/// made-up tokens costs the store at most one small feed read per this long.
pub const CATCH_UP_SPACING: std::time::Duration = std::time::Duration::from_millis(2);

/// Page size of the known set's load.
const KNOWN_PAGE: u32 = 10_000;

/// The first eight bytes of a hash: what the known set keeps (a collision only costs a
/// secret lookup, never a wrong answer).
#[inline]
fn known_key(hash: &SecretHash) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&hash[..8]);
    u64::from_le_bytes(word)
}

/// Every stored secret's hash (its first eight bytes), so a well-formed token that is in
/// no store row is refused from memory, not by a store read per distinct token. Loaded
/// once at start (until then every miss reads the store, as before), kept current by
/// local creations and by the change feed. Entries of deleted secrets may linger: one
/// costs a lookup that finds nothing, never a wrong answer.
#[derive(Debug, Default)]
struct KnownHashes {
    keys: dashmap::DashSet<u64, SecretHashBuild>,
    /// Set once the load finished: only then is absence an answer.
    ready: std::sync::atomic::AtomicBool,
    /// The bound the load was asked for (0: never loaded), for a reload.
    max: std::sync::atomic::AtomicUsize,
    catch_up: tokio::sync::Mutex<CatchUp>,
}

/// The last catch-up read for hashes the known set lacks.
#[derive(Debug, Default)]
struct CatchUp {
    /// When it started: a miss waits for one that started after it arrived, so a token
    /// made on another node a moment ago is found.
    started: Option<Instant>,
    /// When it failed, if it did: misses that waited behind a failed read go to the
    /// lookup path instead of each trying again in turn (no convoy while the store is
    /// away).
    failed_at: Option<Instant>,
}

/// The cached secrets of one token: almost always one (two during a rotation's grace).
#[derive(Debug)]
enum SecretHashes {
    One(SecretHash),
    More(Vec<SecretHash>),
}

impl SecretHashes {
    fn one(hash: SecretHash) -> SecretHashes {
        SecretHashes::One(hash)
    }

    /// Adds a hash unless it is listed already (a read whose grant was not cached after a
    /// race leaves its hash here; the next read of it must not list it twice).
    fn push(&mut self, hash: SecretHash) {
        if self.iter().any(|known| *known == hash) {
            return;
        }
        match self {
            SecretHashes::One(first) => *self = SecretHashes::More(vec![*first, hash]),
            SecretHashes::More(all) => all.push(hash),
        }
    }

    fn iter(&self) -> impl Iterator<Item = &SecretHash> {
        match self {
            SecretHashes::One(h) => std::slice::from_ref(h).iter(),
            SecretHashes::More(all) => all.iter(),
        }
    }
}

/// What one store read for a hash found; shared by concurrent misses of that hash.
type LoadResult = Result<Arc<Grant>, VerifyError>;

/// What one read of the change feed did.
#[derive(Debug, Clone, Copy, Default)]
pub struct SyncSummary {
    /// Changes applied.
    pub applied: usize,
    /// Whether JWT signing keys changed (the caller reloads them).
    pub signing_keys_changed: bool,
    /// Whether the feed had been purged past this node's position, so every cache was
    /// dropped.
    pub cache_dropped: bool,
}

/// The verifier. One per node.
pub struct Verifier {
    key: HashKey,
    store: Box<dyn StoreReads>,
    grants: DashMap<SecretHash, Arc<Grant>, SecretHashBuild>,
    hashes_by_token: DashMap<Arc<str>, SecretHashes, FxBuild>,
    /// Workspace and owner ids shared by the grants (bounded by users + workspaces).
    interned: DashMap<Arc<str>, (), FxBuild>,
    /// Grants by token id, for access JWTs whose `pat` is checked at every use.
    by_id: DashMap<String, Arc<Grant>, FxBuild>,
    unknown: DashMap<SecretHash, (), SecretHashBuild>,
    unknown_cap: usize,
    known: KnownHashes,
    /// Store reads in flight, by hash: concurrent misses of one hash share one read.
    inflight: DashMap<SecretHash, Arc<OnceCell<LoadResult>>, SecretHashBuild>,
    users: DashMap<String, Arc<UserView>, FxBuild>,
    enabled_types: AtomicU8,
    /// The org's maximum token lifetime in seconds (0: none), beside `enabled_types` so
    /// the hot path checks it with one load and no store read.
    max_lifetime_secs: AtomicI64,
    org: std::sync::RwLock<Option<Arc<OrgRecord>>>,
    /// Bumped by every invalidation (under `recent`'s lock), so a store read that raced
    /// with one it depends on is not cached.
    epoch: AtomicU64,
    /// What the recent epochs invalidated.
    recent: Mutex<RecentInvalidations>,
    version: AtomicI64,
    /// Monotonic time for staleness (tests move it).
    clock: Clock,
    last_heard_ms: AtomicU64,
    max_staleness_ms: u64,
    /// Counters.
    pub stats: VerifierStats,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("grants", &self.grants.len())
            .field("unknown", &self.unknown.len())
            .finish_non_exhaustive()
    }
}

impl Verifier {
    /// A verifier over `store`, synced to the store's current change version; `clock`
    /// measures staleness (its monotonic reading).
    pub async fn start(
        key: HashKey,
        store: Arc<dyn Store>,
        clock: Clock,
        unknown_cap: usize,
        max_staleness_secs: u64,
    ) -> Result<Verifier, StoreError> {
        Verifier::start_reading(key, Box::new(store), clock, unknown_cap, max_staleness_secs).await
    }

    pub(crate) async fn start_reading(
        key: HashKey,
        store: Box<dyn StoreReads>,
        clock: Clock,
        unknown_cap: usize,
        max_staleness_secs: u64,
    ) -> Result<Verifier, StoreError> {
        let version = store.current_version().await?;
        let verifier = Verifier {
            key,
            store,
            grants: DashMap::default(),
            hashes_by_token: DashMap::default(),
            interned: DashMap::default(),
            by_id: DashMap::default(),
            unknown: DashMap::default(),
            unknown_cap: unknown_cap.max(1),
            known: KnownHashes::default(),
            inflight: DashMap::default(),
            users: DashMap::default(),
            enabled_types: AtomicU8::new(0),
            max_lifetime_secs: AtomicI64::new(0),
            org: std::sync::RwLock::new(None),
            epoch: AtomicU64::new(0),
            recent: Mutex::new(RecentInvalidations {
                first_epoch: 1,
                entries: VecDeque::new(),
            }),
            version: AtomicI64::new(version),
            clock,
            last_heard_ms: AtomicU64::new(0),
            max_staleness_ms: max_staleness_secs.saturating_mul(1000),
            stats: VerifierStats::default(),
            metrics: Arc::new(Metrics::default()),
        };
        verifier.refresh_org().await?;
        verifier.heard_from_store();
        Ok(verifier)
    }

    /// A grant for a store row, with workspace and owner ids interned.
    fn grant(&self, token: TokenRecord, secret: &SecretRecord) -> Grant {
        grant_with(token, secret, |s| {
            if let Some(shared) = self.interned.get(s) {
                return Arc::clone(shared.key());
            }
            let shared: Arc<str> = Arc::from(s);
            self.interned.insert(Arc::clone(&shared), ());
            shared
        })
    }

    /// Records store timings into `metrics` (the node's, shared with the HTTP layer).
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Verifier {
        self.metrics = metrics;
        self
    }

    /// The metrics store timings go to.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Times one store call.
    async fn timed<T>(
        &self,
        op: StoreOp,
        call: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let started = Instant::now();
        let result = call.await;
        self.metrics.observe_store(
            op,
            started.elapsed(),
            !matches!(
                result,
                Err(StoreError::Unavailable(_) | StoreError::Internal(_))
            ),
        );
        result
    }

    /// The hash key.
    pub fn hash_key(&self) -> &HashKey {
        &self.key
    }

    fn elapsed_ms(&self) -> u64 {
        self.clock.elapsed_ms()
    }

    /// Records an invalidation and moves the epoch past it. Callers remove what it turns
    /// off *after* this, and readers insert *before* [`Verifier::raced`]: so either the
    /// removal sees the inserted entry or the reader sees the invalidation.
    fn invalidated(&self, what: Invalidated) {
        let mut recent = match self.recent.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        self.epoch.fetch_add(1, Ordering::AcqRel);
        recent.entries.push_back(what);
        if recent.entries.len() > RECENT_INVALIDATIONS {
            recent.entries.pop_front();
            recent.first_epoch += 1;
        }
    }

    /// Whether an invalidation that `relevant` says matters happened after epoch `since`
    /// (or too many happened to tell). Called after the read's answer was inserted.
    fn raced(&self, since: u64, relevant: impl Fn(&Invalidated) -> bool) -> bool {
        // The common case, without the lock: no invalidation at all since the read began
        // (one that comes later removes what was inserted).
        if self.epoch.load(Ordering::Acquire) == since {
            return false;
        }
        let recent = match self.recent.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        let now = self.epoch.load(Ordering::Acquire);
        if now == since {
            return false;
        }
        if recent.first_epoch > since + 1 {
            return true;
        }
        let skip = usize::try_from(since + 1 - recent.first_epoch).unwrap_or(usize::MAX);
        recent.entries.iter().skip(skip).any(relevant)
    }

    fn heard_from_store(&self) {
        self.last_heard_ms
            .store(self.elapsed_ms(), Ordering::Relaxed);
    }

    /// Whether this node has heard from the store recently enough to trust its cache.
    pub fn is_fresh(&self) -> bool {
        self.elapsed_ms()
            .saturating_sub(self.last_heard_ms.load(Ordering::Relaxed))
            <= self.max_staleness_ms
    }

    /// Checks a secret.
    pub async fn verify(&self, secret: &str, now: OffsetDateTime) -> Result<Verified, VerifyError> {
        let hash = match self.check_cached(secret, now) {
            Cached::Answer(answer) => return answer,
            Cached::Miss(hash) => hash,
        };
        let grant = self.load(hash).await?;
        self.evaluate(grant, now).await
    }

    /// The hot path without the store: checksum, keyed hash, grant map, user map. Answers
    /// everything that memory knows; a miss returns the hash to read from the store.
    #[inline]
    pub fn check_cached(&self, secret: &str, now: OffsetDateTime) -> Cached {
        if !matches!(token::parse(secret), Ok(SecretKind::Token(_))) {
            self.stats.bad_format.fetch_add(1, Ordering::Relaxed);
            return Cached::Answer(Err(VerifyError::Invalid(Reason::BadFormat)));
        }
        if !self.is_fresh() {
            return Cached::Answer(Err(VerifyError::Unavailable));
        }
        let hash = self.key.hash(secret);
        let grant = match self.grants.get(&hash) {
            Some(entry) => Arc::clone(entry.value()),
            None => return Cached::Miss(hash),
        };
        match self.evaluate_cached(grant, now) {
            Some(answer) => {
                self.stats.hits.fetch_add(1, Ordering::Relaxed);
                Cached::Answer(answer)
            }
            // The owner is not in memory: take the slow path (rare: users stay cached).
            None => Cached::Miss(hash),
        }
    }

    /// The grant of a secret whatever its token's state (leak reports, RFC 7009
    /// revocation), through the same caches, negative cache, single flight and counted
    /// store reads as checks: `None` for malformed or unknown secrets.
    pub async fn find(&self, secret: &str) -> Result<Option<Arc<Grant>>, VerifyError> {
        if !matches!(token::parse(secret), Ok(SecretKind::Token(_))) {
            self.stats.bad_format.fetch_add(1, Ordering::Relaxed);
            return Ok(None);
        }
        match self.load(self.key.hash(secret)).await {
            Ok(grant) => Ok(Some(grant)),
            Err(VerifyError::Invalid(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Checks a token by id (the `pat` of an access JWT): same rules as a secret, without a
    /// secret's own rotation deadline.
    pub async fn verify_token_id(
        &self,
        id: &str,
        now: OffsetDateTime,
    ) -> Result<Verified, VerifyError> {
        if !self.is_fresh() {
            return Err(VerifyError::Unavailable);
        }
        let grant = match self.by_id.get(id) {
            Some(entry) => {
                self.stats.hits.fetch_add(1, Ordering::Relaxed);
                Arc::clone(entry.value())
            }
            None => {
                self.stats.misses.fetch_add(1, Ordering::Relaxed);
                let epoch = self.epoch.load(Ordering::Acquire);
                let token = match self
                    .timed(StoreOp::GetToken, self.store.get_token(id))
                    .await
                {
                    Ok(t) => t,
                    Err(StoreError::NotFound(_)) => {
                        return Err(VerifyError::Invalid(Reason::NotFound));
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "verifier could not read the store");
                        return Err(VerifyError::Unavailable);
                    }
                };
                let secret = SecretRecord {
                    token_id: token.id.clone(),
                    hash: [0; 32],
                    key_id: String::new(),
                    not_after: None,
                    hint: None,
                    sealed: None,
                };
                let grant = Arc::new(self.grant(token, &secret));
                self.by_id.insert(id.to_owned(), Arc::clone(&grant));
                if self.raced(epoch, |w| touches_token(w, id)) {
                    self.by_id
                        .remove_if(id, |_, cached| Arc::ptr_eq(cached, &grant));
                }
                grant
            }
        };
        self.evaluate(grant, now).await
    }

    async fn load(&self, hash: SecretHash) -> Result<Arc<Grant>, VerifyError> {
        if let Some(entry) = self.grants.get(&hash) {
            self.stats.hits.fetch_add(1, Ordering::Relaxed);
            return Ok(Arc::clone(entry.value()));
        }
        if self.unknown.contains_key(&hash) {
            self.stats.negative_hits.fetch_add(1, Ordering::Relaxed);
            return Err(VerifyError::Invalid(Reason::NotFound));
        }
        if self.known_absent(&hash).await {
            self.stats.known_refusals.fetch_add(1, Ordering::Relaxed);
            return Err(VerifyError::Invalid(Reason::NotFound));
        }
        // Single flight: the first miss of a hash reads the store; misses of the same hash
        // that arrive meanwhile wait for that read instead of making their own. (The map's
        // guard is dropped before any await.)
        let cell = Arc::clone(
            self.inflight
                .entry(hash)
                .or_insert_with(|| Arc::new(OnceCell::new()))
                .value(),
        );
        let mut led = false;
        let result = cell
            .get_or_init(|| {
                led = true;
                self.load_from_store(hash)
            })
            .await
            .clone();
        if !led {
            self.stats.coalesced.fetch_add(1, Ordering::Relaxed);
        }
        self.inflight
            .remove_if(&hash, |_, current| Arc::ptr_eq(current, &cell));
        result
    }

    async fn load_from_store(&self, hash: SecretHash) -> LoadResult {
        self.stats.misses.fetch_add(1, Ordering::Relaxed);
        let epoch = self.epoch.load(Ordering::Acquire);
        let found = self
            .timed(StoreOp::FindSecret, self.store.find_secret(&hash))
            .await
            .map_err(|e| {
                tracing::warn!(error = %e, "verifier could not read the store");
                VerifyError::Unavailable
            })?;
        let Some((token, secret)) = found else {
            if self.unknown.len() >= self.unknown_cap {
                self.unknown.clear();
            }
            self.unknown.insert(hash, ());
            // Any token change or new secret may be this hash's: do not remember it as
            // unknown then.
            if self.raced(epoch, |w| !matches!(w, Invalidated::User(_))) {
                self.unknown.remove(&hash);
            }
            return Err(VerifyError::Invalid(Reason::NotFound));
        };
        let grant = Arc::new(self.grant(token, &secret));
        self.hashes_by_token
            .entry(Arc::clone(&grant.token.id))
            .and_modify(|hashes| hashes.push(hash))
            .or_insert_with(|| SecretHashes::one(hash));
        self.grants.insert(hash, Arc::clone(&grant));
        if self.raced(epoch, |w| touches_token(w, &grant.token.id)) {
            self.grants
                .remove_if(&hash, |_, cached| Arc::ptr_eq(cached, &grant));
        }
        Ok(grant)
    }

    /// [`Verifier::evaluate`] when the owner (if any) is in memory; `None` otherwise.
    #[inline]
    fn evaluate_cached(
        &self,
        grant: Arc<Grant>,
        now: OffsetDateTime,
    ) -> Option<Result<Verified, VerifyError>> {
        let owner = match &grant.token.owner_id {
            Some(id) => Some(Arc::clone(self.users.get(&**id)?.value())),
            None => None,
        };
        Some(self.decide(grant, owner, now))
    }

    #[inline]
    fn decide(
        &self,
        grant: Arc<Grant>,
        owner: Option<Arc<UserView>>,
        now: OffsetDateTime,
    ) -> Result<Verified, VerifyError> {
        let ctx = StateContext {
            owner_active: owner.as_ref().is_none_or(|u| u.active),
            type_enabled: self.enabled_types.load(Ordering::Relaxed) & grant.token.token_type.bit()
                != 0,
        };
        latchkey_core::policy::check_token(
            grant.token.state,
            grant.token.expires_at,
            grant.secret_not_after,
            now,
            ctx,
        )
        .map_err(VerifyError::Invalid)?;
        // After `suspended` (and `pending`), before the token's own policy (DESIGN.md §8).
        if latchkey_core::policy::exceeds_max_lifetime(
            grant.token.created_at,
            self.max_lifetime_secs.load(Ordering::Relaxed),
            now,
        ) {
            return Err(VerifyError::Invalid(Reason::LifetimePolicy));
        }
        Ok(Verified { grant, owner })
    }

    async fn evaluate(
        &self,
        grant: Arc<Grant>,
        now: OffsetDateTime,
    ) -> Result<Verified, VerifyError> {
        let owner = match &grant.token.owner_id {
            Some(id) => Some(self.user(id).await.map_err(|e| match e {
                StoreError::NotFound(_) => VerifyError::Invalid(Reason::NotFound),
                _ => VerifyError::Unavailable,
            })?),
            None => None,
        };
        self.decide(grant, owner, now)
    }

    /// A user's current view, from memory or the store.
    pub async fn user(&self, id: &str) -> Result<Arc<UserView>, StoreError> {
        if let Some(view) = self.users.get(id) {
            return Ok(Arc::clone(view.value()));
        }
        let epoch = self.epoch.load(Ordering::Acquire);
        let (user, memberships) = self
            .timed(StoreOp::LoadUser, self.store.user_with_memberships(id))
            .await?;
        let view = Arc::new(user_view(&user, &memberships));
        self.users.insert(id.to_owned(), Arc::clone(&view));
        let relevant = |w: &Invalidated| match w {
            Invalidated::User(user) => **user == *id,
            Invalidated::All => true,
            Invalidated::Token(_) | Invalidated::SecretCreated => false,
        };
        if self.raced(epoch, relevant) {
            self.users
                .remove_if(id, |_, cached| Arc::ptr_eq(cached, &view));
        }
        Ok(view)
    }

    /// Whether the org enables a type (as the hot path sees it).
    pub fn type_enabled(&self, token_type: latchkey_proto::TokenType) -> bool {
        self.enabled_types.load(Ordering::Relaxed) & token_type.bit() != 0
    }

    /// The org as last read.
    pub fn org(&self) -> Option<Arc<OrgRecord>> {
        self.org.read().ok().and_then(|g| g.clone())
    }

    /// Re-reads the org's settings.
    pub async fn refresh_org(&self) -> Result<(), StoreError> {
        match self.store.get_org().await {
            Ok(org) => {
                self.enabled_types
                    .store(org.token_settings.enabled_types, Ordering::Relaxed);
                self.max_lifetime_secs.store(
                    org.token_settings.max_token_lifetime_secs(),
                    Ordering::Relaxed,
                );
                if let Ok(mut slot) = self.org.write() {
                    *slot = Some(Arc::new(org));
                }
                Ok(())
            }
            // Before the first start's bootstrap there is no org yet: nothing is enabled.
            Err(StoreError::NotFound(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Forgets a token's grants (revoke, restore, rotate, delete, expiry).
    pub fn invalidate_token(&self, token_id: &str) {
        self.invalidated(Invalidated::Token(Arc::from(token_id)));
        self.by_id.remove(token_id);
        if let Some((_, hashes)) = self.hashes_by_token.remove(token_id) {
            for hash in hashes.iter() {
                self.grants.remove(hash);
            }
        }
    }

    /// Forgets every cached grant, user view and unknown hash, and rereads the org.
    pub async fn forget_all(&self) -> Result<(), StoreError> {
        self.invalidated(Invalidated::All);
        self.grants.clear();
        self.hashes_by_token.clear();
        self.by_id.clear();
        self.users.clear();
        self.unknown.clear();
        // Secrets made in the gap are not in the known set: distrust it until reloaded.
        self.known.ready.store(false, Ordering::Release);
        self.refresh_org().await
    }

    /// Forgets a user's view (state, role or membership change).
    pub fn invalidate_user(&self, user_id: &str) {
        self.invalidated(Invalidated::User(Arc::from(user_id)));
        self.users.remove(user_id);
    }

    /// A secret was just created here: it is no longer unknown.
    pub fn secret_created(&self, hash: &SecretHash) {
        self.known.keys.insert(known_key(hash));
        self.invalidated(Invalidated::SecretCreated);
        self.unknown.remove(hash);
    }

    /// Loads the known set (every stored secret's hash) page by page, then trusts it.
    /// Run once, in the background, after start; until it finishes misses read the store.
    /// `max` bounds its memory (about 16 bytes a hash): a store with more secrets keeps
    /// the old behaviour, and says so.
    pub async fn load_known(&self, max: usize) -> Result<(), StoreError> {
        self.known.max.store(max, Ordering::Relaxed);
        let mut after: Option<SecretHash> = None;
        let mut loaded = 0usize;
        loop {
            let page = self
                .timed(
                    StoreOp::SecretHashes,
                    self.store.secret_hashes(after.as_ref(), KNOWN_PAGE),
                )
                .await?;
            loaded += page.len();
            if loaded > max {
                self.known.keys.clear();
                tracing::warn!(
                    max,
                    "more stored secrets than verifier.known_hashes_max: unknown tokens are \
                     looked up in the store one by one"
                );
                return Ok(());
            }
            for hash in &page {
                self.known.keys.insert(known_key(hash));
            }
            match page.last() {
                Some(last) if page.len() == KNOWN_PAGE as usize => after = Some(*last),
                _ => break,
            }
        }
        self.known.ready.store(true, Ordering::Release);
        tracing::info!(secrets = loaded, "verifier knows every stored secret hash");
        Ok(())
    }

    /// Whether `hash` is surely no stored secret's: the known set is loaded, lacks it,
    /// and still lacks it after a read of the change feed that started after this check
    /// arrived (so a token created on another node a moment ago is not refused). The
    /// feed reads are shared and spaced by [`CATCH_UP_SPACING`]. `false` when in doubt.
    async fn known_absent(&self, hash: &SecretHash) -> bool {
        let key = known_key(hash);
        if !self.known.ready.load(Ordering::Acquire) || self.known.keys.contains(&key) {
            return false;
        }
        let arrived = Instant::now();
        let mut last = self.known.catch_up.lock().await;
        if self.known.keys.contains(&key) || last.failed_at.is_some_and(|at| at >= arrived) {
            return false;
        }
        if last.started.is_none_or(|started| started < arrived) {
            if let Some(started) = last.started {
                let next = started + CATCH_UP_SPACING;
                if next > Instant::now() {
                    tokio::time::sleep_until(next.into()).await;
                }
            }
            last.started = Some(Instant::now());
            self.stats.catch_up_reads.fetch_add(1, Ordering::Relaxed);
            if !self.catch_up().await {
                last.failed_at = Some(Instant::now());
                return false;
            }
        }
        drop(last);
        !self.known.keys.contains(&key)
    }

    /// Adds the secrets of tokens the feed names past this node's position (which the
    /// poller has not applied yet) to the known set; `false` when that could not be done
    /// completely (the store failed, or too much is pending).
    async fn catch_up(&self) -> bool {
        const PENDING: u32 = 1000;
        let after = self.version.load(Ordering::Acquire);
        let Ok(changes) = self
            .timed(
                StoreOp::ChangesSince,
                self.store.changes_since(after, PENDING),
            )
            .await
        else {
            return false;
        };
        if changes.len() >= PENDING as usize {
            return false;
        }
        self.add_known_of(&changes).await.is_ok()
    }

    /// Adds the current secrets of the tokens `changes` name to the known set.
    async fn add_known_of(&self, changes: &[Change]) -> Result<(), StoreError> {
        let ids: Vec<String> = changes
            .iter()
            .filter(|c| c.kind == ChangeKind::Token)
            .map(|c| c.id.clone())
            .collect();
        if ids.is_empty() {
            return Ok(());
        }
        let hashes = self
            .timed(StoreOp::SecretHashes, self.store.secret_hashes_of(&ids))
            .await?;
        for hash in &hashes {
            self.known.keys.insert(known_key(hash));
        }
        Ok(())
    }

    /// Whether the known set is loaded and trusted (see [`Verifier::load_known`]).
    pub fn knows_every_hash(&self) -> bool {
        self.known.ready.load(Ordering::Acquire)
    }

    /// Number of hashes in the known set.
    pub fn known_hashes(&self) -> usize {
        self.known.keys.len()
    }

    /// Reads the change feed once and applies it. Called by the poller.
    pub async fn sync(&self) -> Result<SyncSummary, StoreError> {
        let mut summary = SyncSummary::default();
        loop {
            let after = self.version.load(Ordering::Acquire);
            let changes = self
                .timed(StoreOp::ChangesSince, self.store.changes_since(after, 1000))
                .await?;
            let count = changes.len();
            if changes
                .first()
                .is_some_and(|first| first.version > after + 1)
            {
                // The feed was purged past this node's position (it was away longer than
                // the kept window): what changed meanwhile is unknown, so nothing cached
                // can be trusted.
                self.forget_all().await?;
                let max = self.known.max.load(Ordering::Relaxed);
                if max > 0 {
                    self.load_known(max).await?;
                }
                summary.signing_keys_changed = true;
                summary.cache_dropped = true;
                tracing::warn!(
                    after,
                    first = changes.first().map(|c| c.version),
                    "change feed purged past this node's position; dropped every cache"
                );
            }
            // New secrets join the known set before the changes are applied: a check that
            // the feed's position lets through to the set must find them there.
            self.add_known_of(&changes).await?;
            for change in &changes {
                self.apply(change).await?;
                summary.signing_keys_changed |= change.kind == ChangeKind::SigningKeys;
            }
            summary.applied += count;
            if let Some(last) = changes.last() {
                self.version.store(last.version, Ordering::Release);
            }
            if count < 1000 {
                break;
            }
        }
        self.heard_from_store();
        Ok(summary)
    }

    async fn apply(&self, change: &Change) -> Result<(), StoreError> {
        match change.kind {
            ChangeKind::Token => {
                self.invalidate_token(&change.id);
                // The change may be a token created elsewhere whose hash we remember as
                // unknown; creations are rare next to checks, so start the negative cache over.
                self.unknown.clear();
            }
            ChangeKind::User => self.invalidate_user(&change.id),
            ChangeKind::Org => self.refresh_org().await?,
            ChangeKind::Instance | ChangeKind::SigningKeys => {}
        }
        Ok(())
    }

    /// The change version this node has applied.
    pub fn version(&self) -> i64 {
        self.version.load(Ordering::Acquire)
    }

    /// Number of cached grants.
    pub fn cached_grants(&self) -> usize {
        self.grants.len()
    }

    /// Number of cached user views.
    pub fn cached_users(&self) -> usize {
        self.users.len()
    }

    /// Number of remembered unknown hashes.
    pub fn cached_unknown(&self) -> usize {
        self.unknown.len()
    }

    /// Time since this node last heard from the store.
    pub fn staleness(&self) -> std::time::Duration {
        std::time::Duration::from_millis(
            self.elapsed_ms()
                .saturating_sub(self.last_heard_ms.load(Ordering::Relaxed)),
        )
    }
}

/// Whether an invalidation turns off what a read of token `id` found.
fn touches_token(what: &Invalidated, id: &str) -> bool {
    match what {
        Invalidated::Token(token) => **token == *id,
        Invalidated::All => true,
        Invalidated::User(_) | Invalidated::SecretCreated => false,
    }
}

fn user_view(user: &UserRecord, memberships: &[MembershipRecord]) -> UserView {
    UserView {
        id: user.id.clone(),
        username: user.username.clone(),
        role: user.role,
        active: user.active,
        memberships: memberships
            .iter()
            .map(|m| (m.workspace_id.clone(), m.role))
            .collect(),
        user: user.to_proto(),
        membership_refs: memberships
            .iter()
            .map(MembershipRecord::to_membership_ref)
            .collect(),
        forward_headers: (
            HeaderValue::from_str(&user.username).ok(),
            HeaderValue::from_str(&user.id).ok(),
        ),
    }
}

/// Builds a grant from a store row (ids not interned; see [`Verifier::grant`]).
pub fn grant_from(token: TokenRecord, secret: &SecretRecord) -> Grant {
    grant_with(token, secret, |s| Arc::from(s))
}

fn grant_with(
    token: TokenRecord,
    secret: &SecretRecord,
    intern: impl Fn(&str) -> Arc<str>,
) -> Grant {
    let policy = GrantPolicy::of(&token.policy).map(Arc::new);
    Grant {
        policy,
        token: GrantToken {
            id: Arc::from(token.id.as_str()),
            token_type: token.token_type,
            state: token.state,
            workspace_id: token.workspace_id.as_deref().map(&intern),
            owner_id: token.owner_id.as_deref().map(&intern),
            created_at: token.created_at,
            expires_at: token.expires_at,
            projects: token.projects.into_boxed_slice(),
            environment: token.environment.map(String::into_boxed_str),
        },
        scopes: token.scopes.iter().copied().collect(),
        secret_not_after: secret.not_after,
        usage: Default::default(),
    }
}

/// What memory alone says about a secret.
#[derive(Debug)]
pub enum Cached {
    /// The answer.
    Answer(Result<Verified, VerifyError>),
    /// Not in memory: the store must be asked about this hash.
    Miss(SecretHash),
}

/// `at` as RFC 3339 in UTC with whole seconds (`2027-08-23T10:00:00Z`, how every instant is
/// written on the wire), formatted on the stack rather than through the general formatter.
pub fn rfc3339_header(at: OffsetDateTime) -> HeaderValue {
    let at = at.to_offset(time::UtcOffset::UTC);
    let year = at.year();
    if !(0..=9999).contains(&year) {
        let text = at.format(&Rfc3339).unwrap_or_default();
        return HeaderValue::try_from(text).unwrap_or_else(|_| HeaderValue::from_static(""));
    }
    let mut buf = *b"0000-00-00T00:00:00Z";
    let fields: [(usize, usize, u32); 6] = [
        (0, 4, year.unsigned_abs()),
        (5, 2, u32::from(u8::from(at.month()))),
        (8, 2, u32::from(at.day())),
        (11, 2, u32::from(at.hour())),
        (14, 2, u32::from(at.minute())),
        (17, 2, u32::from(at.second())),
    ];
    for (start, width, mut value) in fields {
        for slot in buf[start..start + width].iter_mut().rev() {
            // `value % 10` is a single digit.
            *slot = b'0' + (value % 10) as u8;
            value /= 10;
        }
    }
    HeaderValue::from_bytes(&buf).unwrap_or_else(|_| HeaderValue::from_static(""))
}
