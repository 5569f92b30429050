-- Every run of every action (HTTP, event, job, cron, CLI), and the lines its
-- handler logged. Written in batches by the run recorder, read by the dashboard,
-- pruned by the hourly maintenance after runs.retention_days.
--
-- Run ids are UUIDv7, which sort by time: the primary key orders and ranges runs
-- by time (and pruning deletes a range of it), so started_at needs no index of its
-- own. Every index is paid for on every request recorded.
CREATE TABLE actions_server.runs (
    id uuid PRIMARY KEY,                 -- UUIDv7: time-ordered
    action text NOT NULL,
    trigger text NOT NULL,               -- api, cli, event, job, cron
    status text NOT NULL CHECK (status IN ('ok', 'rejected', 'error')),
    input jsonb,
    output jsonb,
    error jsonb,                         -- code, message, status, traceback (500s)
    started_at timestamptz NOT NULL,
    duration_ms double precision NOT NULL,
    attempt integer NOT NULL DEFAULT 1,
    trace_id text NOT NULL,
    parent_id uuid,                      -- the run that emitted the event or pushed the job
    job_id bigint,
    user_id text,
    org_id text
);
CREATE INDEX runs_action_idx ON actions_server.runs (action, id);
CREATE INDEX runs_parent_idx ON actions_server.runs (parent_id) WHERE parent_id IS NOT NULL;
CREATE INDEX runs_trace_idx ON actions_server.runs (trace_id);

CREATE TABLE actions_server.run_logs (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id uuid NOT NULL,                -- no foreign key: logs and runs arrive in separate batches
    at timestamptz NOT NULL,
    level text NOT NULL,
    message text NOT NULL,
    fields jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX run_logs_run_idx ON actions_server.run_logs (run_id, id);

-- Counting dead jobs (metrics, the dashboard) without reading every finished one.
CREATE INDEX jobs_dead_idx ON actions_server.jobs (finished_at) WHERE status = 'dead';
-- An event's deliveries (the dashboard's events page).
CREATE INDEX jobs_event_idx ON actions_server.jobs (event_id) WHERE event_id IS NOT NULL;
