-- Realtime channels (docs/realtime.md). A published message is a row written in
-- the publishing run's transaction; one NOTIFY on actions_server_channels per
-- committing transaction wakes every instance's listener, which reads the rows
-- after the last id it has seen (and the ids it is still waiting for: see
-- realtime/feed.py). `xid` is the writer's transaction id, taken before the
-- row's id. Rows are pruned after realtime.retention_minutes.
CREATE TABLE actions_server.channel_messages (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    xid xid8 NOT NULL,
    channel text NOT NULL,
    kind text NOT NULL CHECK (kind IN ('message', 'presence')),
    event text,
    payload json NOT NULL,             -- kept as written: delivered without re-encoding
    created_at timestamptz NOT NULL DEFAULT now()
);
-- Pruning by age; rows arrive in time order, so a BRIN index is enough.
CREATE INDEX channel_messages_created_idx ON actions_server.channel_messages USING brin (created_at);

-- Instances serving sockets, and who is in which channel on each. An instance
-- that stops updating seen_at for realtime.presence_timeout_seconds is reaped by
-- any other, and its sockets leave every presence.
CREATE TABLE actions_server.channel_instances (
    id text PRIMARY KEY,
    started_at timestamptz NOT NULL DEFAULT now(),
    seen_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE actions_server.channel_presence (
    channel text NOT NULL,
    ref text NOT NULL,                 -- one socket's one join
    instance text NOT NULL,
    key text NOT NULL,                 -- the user id (or anonymous:<socket>)
    meta jsonb NOT NULL,
    PRIMARY KEY (channel, ref)
);
CREATE INDEX channel_presence_instance_idx ON actions_server.channel_presence (instance);
