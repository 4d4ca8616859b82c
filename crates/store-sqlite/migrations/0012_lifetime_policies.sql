-- Lifetime policies (DESIGN.md §8): an org's idle-revoke period and its maximum token
-- lifetime, both in days, both NULL (off) by default. Portable on purpose: the other
-- backend has a migration with the same number and name.
ALTER TABLE orgs ADD COLUMN idle_revoke_days INTEGER;
ALTER TABLE orgs ADD COLUMN max_token_lifetime_days INTEGER;

-- When a revoked token was last restored (unix seconds): the idle sweep counts a token's
-- idle time from its last use, its creation or its last restore, whichever is latest,
-- so a restored idle token is not revoked again by the next sweep.
ALTER TABLE tokens ADD COLUMN restored_at INTEGER;
