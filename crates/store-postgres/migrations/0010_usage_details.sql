-- Usage details (DESIGN.md §8): uses per token per UTC day and the addresses a token was
-- used from lately, counted in memory and added by the last-used flush (never a write per
-- request). Portable on purpose: the other backend has a migration with the same number
-- and name.

-- Uses of a token on one UTC day (`day`: days since 1970-01-01). The housekeeping sweep
-- deletes days older than the 90 the API shows.
CREATE TABLE token_usage_days (
    token_id TEXT NOT NULL,
    day      BIGINT NOT NULL,
    count    BIGINT NOT NULL,
    PRIMARY KEY (token_id, day)
);

-- The addresses a token was used from, with when last (unix seconds): each flush keeps
-- the 5 newest per token.
CREATE TABLE token_usage_ips (
    token_id     TEXT NOT NULL,
    ip           TEXT NOT NULL,
    last_seen_at BIGINT NOT NULL,
    PRIMARY KEY (token_id, ip)
);
