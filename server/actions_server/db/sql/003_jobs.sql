-- The queue: jobs pushed by handlers, event deliveries and cron ticks are all rows
-- of one table, claimed with FOR UPDATE SKIP LOCKED.
CREATE TABLE actions_server.jobs (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind text NOT NULL CHECK (kind IN ('job', 'event', 'cron')),
    name text NOT NULL,                 -- the job's name, the event's name, or the cron action
    action text NOT NULL,               -- the action that runs it
    payload jsonb NOT NULL,
    status text NOT NULL DEFAULT 'queued'
        CHECK (status IN ('queued', 'running', 'done', 'dead', 'cancelled')),
    priority smallint NOT NULL DEFAULT 0,   -- higher runs first
    run_at timestamptz NOT NULL DEFAULT now(),
    attempts integer NOT NULL DEFAULT 0,
    max_attempts integer NOT NULL CHECK (max_attempts >= 1),
    unique_key text,
    locked_by text,
    locked_until timestamptz,
    event_id bigint,
    trace_id text,
    parent_run_id text,
    principal jsonb NOT NULL DEFAULT '{}',
    last_error jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    started_at timestamptz,
    finished_at timestamptz
);

-- What workers claim: queued jobs in the order they run.
CREATE INDEX jobs_ready_idx ON actions_server.jobs (priority DESC, run_at, id) WHERE status = 'queued';
-- Leases to reap when a worker died.
CREATE INDEX jobs_running_idx ON actions_server.jobs (locked_until) WHERE status = 'running';
-- At most one unfinished job per unique key.
CREATE UNIQUE INDEX jobs_unique_key_idx ON actions_server.jobs (unique_key)
    WHERE unique_key IS NOT NULL AND status IN ('queued', 'running');
-- Pruning and listing by age.
CREATE INDEX jobs_finished_idx ON actions_server.jobs (finished_at) WHERE finished_at IS NOT NULL;

-- Every event emitted, whether or not anything subscribes (the dashboard lists them).
CREATE TABLE actions_server.events (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name text NOT NULL,
    payload jsonb NOT NULL,
    trace_id text,
    parent_run_id text,
    principal jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX events_created_at_idx ON actions_server.events (created_at);

-- One row per cron action and scheduled fire time: every instance tries to
-- insert it and only the first succeeds, so each tick runs once in the cluster.
-- Kept longer than finished jobs, so a tick can never run twice.
CREATE TABLE actions_server.cron_ticks (
    action text NOT NULL,
    fire_time timestamptz NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (action, fire_time)
);

-- Ticks the scheduler skipped because they were missed by more than the grace.
CREATE TABLE actions_server.cron_misfires (
    action text NOT NULL,
    fire_time timestamptz NOT NULL,
    noticed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (action, fire_time)
);
