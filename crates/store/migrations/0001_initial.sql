{sqlite}-- Latchkey schema, version 1.
{postgres}-- Latchkey schema, version 1 (PostgreSQL).
--
{sqlite}-- Portable on purpose: the PostgreSQL backend has a migration with the same number and
{sqlite}-- name. Ids are TEXT (UUIDv7, so ORDER BY id is creation order), instants are INTEGER unix
{sqlite}-- seconds, hashes and key material are BLOB (BYTEA), JSON is TEXT, booleans are INTEGER 0/1.
{postgres}-- In lock-step with crates/store-sqlite/migrations/0001_initial.sql: the same tables and
{postgres}-- columns, in the same order, with the same names (the schema-parity test compares them).
{postgres}-- Only the types are PostgreSQL's own: ids are TEXT (UUIDv7, so ORDER BY id is creation
{postgres}-- order; every id has the same shape, so any collation orders them as bytes do), instants
{postgres}-- are BIGINT unix seconds, hashes and key material BYTEA, JSON is TEXT, flags BOOLEAN.
{postgres}-- Nothing here needs more than PostgreSQL-compatible distributed engines offer.

-- Facts about the store itself (the hash key's id, so another key is refused).
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- One row once the first start has happened: concurrent first starts race on this key.
CREATE TABLE bootstrap (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    done_at {INT} NOT NULL
);

-- The change feed. The counter is a row (not a sequence) so versions follow commit order:
{sqlite}-- every write updates it inside its transaction, which serialises writers.
{postgres}-- every write locks it first and updates it inside its transaction, which serialises
{postgres}-- writers the way SQLite's single writer does.
CREATE TABLE change_counter (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    version {INT} NOT NULL
);
INSERT INTO change_counter (id, version) VALUES (1, 0);

CREATE TABLE changes (
    version   {INT} PRIMARY KEY,
    kind      TEXT NOT NULL,
    entity_id TEXT NOT NULL
);

CREATE TABLE instance_settings (
    id                          INTEGER PRIMARY KEY CHECK (id = 1),
    max_active_tokens           {INT},
    default_token_lifetime_days {INT} NOT NULL
);

CREATE TABLE orgs (
    id                      TEXT PRIMARY KEY,
    name                    TEXT NOT NULL,
    enabled_types           {INT} NOT NULL,
    personal_token_ttl_days {INT},
    max_tokens_per_user     {INT},
    token_creators          TEXT NOT NULL,
    created_at              {INT} NOT NULL
);

-- `username_key` is the username case-folded by the application (Unicode lower case), so
-- uniqueness and look-ups are case-insensitive and identical on every backend.
CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    org_id        TEXT NOT NULL REFERENCES orgs (id),
    username      TEXT NOT NULL,
    username_key  TEXT NOT NULL UNIQUE,
    display_name  TEXT,
    email         TEXT,
    role          TEXT NOT NULL,
    active        {BOOL} NOT NULL,
    password_hash TEXT,
    created_at    {INT} NOT NULL
);
CREATE INDEX users_org ON users (org_id, id);

CREATE TABLE workspaces (
    id         TEXT PRIMARY KEY,
    org_id     TEXT NOT NULL REFERENCES orgs (id),
    name       TEXT NOT NULL,
    created_at {INT} NOT NULL,
    UNIQUE (org_id, name)
);

CREATE TABLE memberships (
    workspace_id TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    user_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role         TEXT NOT NULL,
    created_at   {INT} NOT NULL,
    PRIMARY KEY (workspace_id, user_id)
);
CREATE INDEX memberships_user ON memberships (user_id);
CREATE INDEX memberships_workspace_created ON memberships (workspace_id, created_at, user_id);

CREATE TABLE projects (
    id           TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    description  TEXT,
    created_by   TEXT,
    created_at   {INT} NOT NULL
);
CREATE INDEX projects_workspace ON projects (workspace_id, id);

-- `scopes` and `projects` are JSON arrays of strings; `projects` empty means "all".
-- `workspace_id` is NULL for legacy tokens, `owner_id` NULL for workspace tokens.
CREATE TABLE tokens (
    id           TEXT PRIMARY KEY,
    org_id       TEXT NOT NULL REFERENCES orgs (id),
    name         TEXT NOT NULL,
    token_type   TEXT NOT NULL,
    hint         TEXT NOT NULL,
    workspace_id TEXT REFERENCES workspaces (id),
    owner_id     TEXT REFERENCES users (id),
    created_by   TEXT,
    scopes       TEXT NOT NULL,
    projects     TEXT NOT NULL,
    environment  TEXT,
    created_at   {INT} NOT NULL,
    expires_at   {INT},
    last_used_at {INT},
    last_used_ip TEXT,
    state        TEXT NOT NULL,
    leaked       {BOOL} NOT NULL DEFAULT {FALSE}
);
CREATE INDEX tokens_org ON tokens (org_id, id);
CREATE INDEX tokens_workspace ON tokens (workspace_id, id);
CREATE INDEX tokens_owner ON tokens (owner_id, id);
CREATE INDEX tokens_state_expiry ON tokens (state, expires_at);
-- At most one legacy token per user (deleted tokens are gone, so they do not count).
CREATE UNIQUE INDEX tokens_one_legacy_per_owner ON tokens (owner_id) WHERE token_type = 'legacy';

-- Keyed hashes of token secrets. A rotation with a grace period leaves two rows for one
-- token: the new one without `not_after`, the old one with it.
CREATE TABLE token_secrets (
    hash       {BLOB} PRIMARY KEY,
    token_id   TEXT NOT NULL REFERENCES tokens (id) ON DELETE CASCADE,
    key_id     TEXT NOT NULL,
    not_after  {INT},
    created_at {INT} NOT NULL
);
CREATE INDEX token_secrets_token ON token_secrets (token_id);
CREATE INDEX token_secrets_not_after ON token_secrets (not_after);

CREATE TABLE sessions (
    id           TEXT PRIMARY KEY,
    hash         {BLOB} NOT NULL UNIQUE,
    user_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at   {INT} NOT NULL,
    last_seen_at {INT} NOT NULL,
    expires_at   {INT} NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_id);

-- No foreign keys: the log outlives what it talks about.
CREATE TABLE audit_events (
    id              TEXT PRIMARY KEY,
    action          TEXT NOT NULL,
    actor_id        TEXT,
    actor_token_id  TEXT,
    target_type     TEXT,
    target_id       TEXT,
    workspace_id    TEXT,
    subject_user_id TEXT,
    ip              TEXT,
    details         TEXT NOT NULL,
    created_at      {INT} NOT NULL
);
CREATE INDEX audit_created ON audit_events (created_at, id);
CREATE INDEX audit_workspace ON audit_events (workspace_id, id);
CREATE INDEX audit_actor ON audit_events (actor_id, id);
CREATE INDEX audit_subject ON audit_events (subject_user_id, id);
CREATE INDEX audit_target ON audit_events (target_id, id);
CREATE INDEX audit_actor_token ON audit_events (actor_token_id, id);
CREATE INDEX audit_action ON audit_events (action, id);

-- Stored (encrypted) answers to requests carrying an `Idempotency-Key`.
CREATE TABLE idempotency (
    key          TEXT PRIMARY KEY,
    request_hash {BLOB} NOT NULL,
    response     {BLOB} NOT NULL,
    created_at   {INT} NOT NULL
);
CREATE INDEX idempotency_created ON idempotency (created_at);

-- JWT signing keys; `private_key` is encrypted by the application.
CREATE TABLE signing_keys (
    id          TEXT PRIMARY KEY,
    algorithm   TEXT NOT NULL,
    public_key  {BLOB} NOT NULL,
    private_key {BLOB} NOT NULL,
    created_at  {INT} NOT NULL,
    retire_at   {INT} NOT NULL,
    expires_at  {INT} NOT NULL
);
CREATE INDEX signing_keys_created ON signing_keys (created_at);
