-- Recoverable secrets (DESIGN.md §8). Portable on purpose: the PostgreSQL backend has a
-- migration with the same number and name.

-- The token types whose secrets are kept recoverable: a bit set like `enabled_types`
-- (0: none, the default, so nothing changes for existing orgs).
ALTER TABLE orgs ADD COLUMN recoverable_types INTEGER NOT NULL DEFAULT 0;

-- A recoverable token's current secret, sealed by the application (ChaCha20-Poly1305
-- under a key derived from the hash key, bound to the token id): never the secret in
-- clear. NULL for every token that is not recoverable.
ALTER TABLE tokens ADD COLUMN sealed_secret BLOB;
