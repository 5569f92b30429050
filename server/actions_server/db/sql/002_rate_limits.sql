-- Fixed-window counters of the rate_limit guard. UNLOGGED: counters are
-- ephemeral, and losing them in a crash only resets some windows early.
CREATE UNLOGGED TABLE IF NOT EXISTS actions_server.rate_limits (
    key text PRIMARY KEY,
    window_start double precision NOT NULL,
    count integer NOT NULL,
    expires_at timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS rate_limits_expires_at_idx ON actions_server.rate_limits (expires_at);
