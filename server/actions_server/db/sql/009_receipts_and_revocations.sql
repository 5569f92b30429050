-- Receipts: what a run with an idempotency key (the Idempotency-Key header, or a
-- webhook's delivery id) answered, written in the run's own transaction. A retry
-- finds it and gets the same answer without running the action again; a failed
-- run leaves none, so the retry runs. Pruned after expires_at.
CREATE TABLE actions_server.receipts (
    scope text NOT NULL,          -- "<action>|<caller>" for idempotency keys, "webhook|<action>"
    key text NOT NULL,
    fingerprint text,             -- of the request, for keys a client chose
    status smallint NOT NULL,
    headers jsonb NOT NULL DEFAULT '{}',
    body bytea,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    PRIMARY KEY (scope, key)
);
CREATE INDEX receipts_expiry_idx ON actions_server.receipts (expires_at);

-- Tokens taken back before they expire: one token by its jti, or every token of a
-- user issued before a moment. Every instance keeps these in memory, refreshed on
-- NOTIFY, so a request pays no round trip for the check.
CREATE TABLE actions_server.revoked_tokens (
    jti text PRIMARY KEY,
    expires_at timestamptz NOT NULL,
    revoked_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE actions_server.revoked_users (
    user_id text PRIMARY KEY,
    before timestamptz NOT NULL,   -- tokens issued (iat) before this are refused
    revoked_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX revoked_tokens_at_idx ON actions_server.revoked_tokens (revoked_at);
CREATE INDEX revoked_users_at_idx ON actions_server.revoked_users (revoked_at);
