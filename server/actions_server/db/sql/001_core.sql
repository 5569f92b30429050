-- actions-server's own tables live in schema actions_server.
-- This file is applied once, recorded in actions_server.migrations (scope 'framework').

CREATE TABLE IF NOT EXISTS actions_server.meta (
    key text PRIMARY KEY,
    value jsonb NOT NULL
);
