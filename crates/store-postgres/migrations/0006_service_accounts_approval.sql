-- Service accounts and approval (DESIGN.md §8), PostgreSQL. In lock-step with the SQLite
-- migration of the same number and name (the schema-parity test compares them).

-- A user's kind: 'human' (signs in with a password) or 'service' (never signs in; owns
-- personal tokens that org admins create for it). Every existing user is a human.
ALTER TABLE users ADD COLUMN kind TEXT NOT NULL DEFAULT 'human';
CREATE INDEX users_org_kind ON users (org_id, kind, id);

-- Bit set of token types (as `enabled_types`) whose new tokens wait for an org admin's
-- approval unless an org owner creates them. 0: none (today's behaviour).
ALTER TABLE orgs ADD COLUMN approval_required_types BIGINT NOT NULL DEFAULT 0;
