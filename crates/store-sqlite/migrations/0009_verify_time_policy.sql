-- Verify-time policy per token (DESIGN.md §8): metadata, allowed IPs, a rate limit and
-- usage credits with an optional refill, and the budgets nodes lease uses from. Portable
-- on purpose: the other backend has a migration with the same number and name.

-- The policy, on the token. `metadata` is compact JSON (an object, at most 4 KiB);
-- `allowed_ips` a JSON array of CIDRs; `uses_limited` says the token has usage credits
-- (its count is a budget below, never a column written per use).
ALTER TABLE tokens ADD COLUMN metadata TEXT;
ALTER TABLE tokens ADD COLUMN allowed_ips TEXT;
ALTER TABLE tokens ADD COLUMN rate_limit INTEGER;
ALTER TABLE tokens ADD COLUMN rate_window_secs INTEGER;
ALTER TABLE tokens ADD COLUMN uses_limited INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tokens ADD COLUMN refill_amount INTEGER;
ALTER TABLE tokens ADD COLUMN refill_interval TEXT;

-- A token's budget of one kind ('uses': usage credits; 'rate': the rate limit's current
-- window): the uses not leased to any node, and the period they belong to (a refill
-- interval or a rate window; 0 for credits that never refill). See
-- latchkey_core::token_policy.
CREATE TABLE token_budgets (
    token_id TEXT NOT NULL,
    kind     TEXT NOT NULL,
    period   INTEGER NOT NULL,
    pool     INTEGER NOT NULL,
    PRIMARY KEY (token_id, kind)
);

-- What one node holds leased of a budget: uses it may spend from memory until
-- `expires_at` (unix seconds) without asking the store, not yet reported spent.
CREATE TABLE token_leases (
    token_id   TEXT NOT NULL,
    kind       TEXT NOT NULL,
    node_id    TEXT NOT NULL,
    period     INTEGER NOT NULL,
    held       INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (token_id, kind, node_id)
);
