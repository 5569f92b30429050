-- The PostgreSQL KV backend. A logged table, on purpose: KV writes join the run's
-- transaction and apps keep real state there (idempotency keys, flags), which an
-- unlogged table would lose in a crash and never replicate to a standby.
-- COLLATE "C" lets prefix searches (LIKE 'p%') use the primary key's index.
CREATE TABLE actions_server.kv (
    key text COLLATE "C" PRIMARY KEY,
    value jsonb NOT NULL,
    expires_at timestamptz
);
CREATE INDEX kv_expires_at_idx ON actions_server.kv (expires_at) WHERE expires_at IS NOT NULL;

-- Rate limits count through the KV backend now (incr with a TTL).
DROP TABLE IF EXISTS actions_server.rate_limits;
