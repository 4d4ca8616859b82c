-- Lifecycle events (DESIGN.md §8): webhook endpoints, the outbox of events, one delivery
-- row per event and recipient, and the expiry notices already sent. Portable on purpose:
{sqlite}-- the PostgreSQL backend has a migration with the same number and name.
{postgres}-- the SQLite backend has a migration with the same number and name.

-- Webhook endpoints. `secret` is the signing key encrypted by the application; `events`
-- is a JSON array of event types.
CREATE TABLE webhooks (
    id          TEXT PRIMARY KEY,
    org_id      TEXT NOT NULL,
    url         TEXT NOT NULL,
    description TEXT,
    events      TEXT NOT NULL,
    secret      {BLOB} NOT NULL,
    enabled     {BOOL} NOT NULL,
    created_at  {INT} NOT NULL,
    updated_at  {INT} NOT NULL
);

-- The outbox: every lifecycle event, written in the transaction of the change it reports.
-- `body` is the whole JSON message (`type`, `timestamp`, `data`); its id is `webhook-id`.
CREATE TABLE lifecycle_events (
    id         TEXT PRIMARY KEY,
    event_type TEXT NOT NULL,
    body       TEXT NOT NULL,
    created_at {INT} NOT NULL
);
CREATE INDEX lifecycle_events_created ON lifecycle_events (created_at);

-- One message to one recipient: a webhook endpoint (`channel` 'webhook') or a token
-- owner's address (`channel` 'email', `webhook_id` NULL). A node claims a due row by a
-- conditional UPDATE that sets a lease (`lease_owner`, `lease_until`); a lease that runs
-- out (the node died) lets another node claim it again.
CREATE TABLE deliveries (
    id              TEXT PRIMARY KEY,
    channel         TEXT NOT NULL,
    webhook_id      TEXT,
    recipient       TEXT,
    event_id        TEXT NOT NULL,
    event_type      TEXT NOT NULL,
    state           TEXT NOT NULL,
    attempts        {INT} NOT NULL,
    last_status     {INT},
    last_error      TEXT,
    last_attempt_at {INT},
    next_attempt_at {INT},
    attempt_log     TEXT NOT NULL,
    lease_owner     TEXT,
    lease_until     {INT},
    created_at      {INT} NOT NULL,
    give_up_at      {INT} NOT NULL
);
CREATE INDEX deliveries_due ON deliveries (state, channel, next_attempt_at);
CREATE INDEX deliveries_webhook ON deliveries (webhook_id, id);
CREATE INDEX deliveries_created ON deliveries (created_at);

-- Expiry notices sent: one row per token, expiry instant and threshold (30, 7, 1 days),
-- so each fires once, across restarts and nodes; a new expiry (rotation) starts afresh.
CREATE TABLE expiry_notices (
    token_id    TEXT NOT NULL,
    expires_at  {INT} NOT NULL,
    days_before {INT} NOT NULL,
    created_at  {INT} NOT NULL,
    PRIMARY KEY (token_id, expires_at, days_before)
);
