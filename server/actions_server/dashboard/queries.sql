-- The dashboard's reads. Run ids are UUIDv7, so `id` ranges are time ranges and the
-- primary key (or (action, id)) serves every time filter.

-- name: action_stats
SELECT a.action, last.status AS last_status, last.started_at AS last_at,
       coalesce(stats.runs, 0) AS runs, coalesce(stats.errors, 0) AS errors, stats.p50, stats.p95
FROM unnest(%(actions)s::text[]) AS a(action)
LEFT JOIN LATERAL (
    SELECT status, started_at FROM actions_server.runs r
    WHERE r.action = a.action ORDER BY r.id DESC LIMIT 1
) last ON true
LEFT JOIN LATERAL (
    SELECT count(*) AS runs,
           count(*) FILTER (WHERE status = 'error') AS errors,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY duration_ms) AS p50,
           percentile_cont(0.95) WITHIN GROUP (ORDER BY duration_ms) AS p95
    FROM actions_server.runs r
    WHERE r.action = a.action AND r.id >= %(since)s
) stats ON true
ORDER BY a.action;

-- name: runs
SELECT id, action, trigger, status, started_at, duration_ms, attempt, trace_id, user_id,
       org_id, error ->> 'code' AS error_code
FROM actions_server.runs
WHERE (%(action)s::text IS NULL OR action = %(action)s)
  AND (%(status)s::text IS NULL OR status = %(status)s)
  AND (%(trigger)s::text IS NULL OR trigger = %(trigger)s)
  AND (%(trace_id)s::text IS NULL OR trace_id = %(trace_id)s)
  AND id >= %(since)s AND id < %(before)s
ORDER BY id DESC
LIMIT %(limit)s;

-- name: run
SELECT * FROM actions_server.runs WHERE id = %s;

-- name: run_logs
SELECT at, level, message, fields FROM actions_server.run_logs
WHERE run_id = %s ORDER BY id LIMIT 500;

-- name: run_tree
-- The runs a run caused through events and jobs, and theirs, ten levels deep at most.
WITH RECURSIVE tree AS (
    SELECT id, parent_id, action, trigger, status, started_at, duration_ms, 1 AS depth
    FROM actions_server.runs WHERE parent_id = %(id)s
    UNION ALL
    SELECT r.id, r.parent_id, r.action, r.trigger, r.status, r.started_at, r.duration_ms,
           t.depth + 1
    FROM actions_server.runs r JOIN tree t ON r.parent_id = t.id
    WHERE t.depth < 10
)
SELECT * FROM tree ORDER BY id LIMIT 500;

-- name: jobs
SELECT id, kind, name, action, status, priority, attempts, max_attempts, run_at, created_at,
       finished_at, last_error, unique_key, locked_by, trace_id, parent_run_id
FROM actions_server.jobs
WHERE status = %(status)s
ORDER BY CASE WHEN %(status)s = 'queued' THEN run_at END, id DESC
LIMIT %(limit)s;

-- name: cron_runs
SELECT a.action, recent.id, recent.status, recent.started_at, recent.duration_ms
FROM unnest(%(actions)s::text[]) AS a(action)
JOIN LATERAL (
    SELECT id, status, started_at, duration_ms FROM actions_server.runs r
    WHERE r.action = a.action AND r.trigger = 'cron' ORDER BY r.id DESC LIMIT 5
) recent ON true
ORDER BY a.action, recent.id DESC;

-- name: misfires
SELECT action, fire_time, noticed_at FROM actions_server.cron_misfires
ORDER BY noticed_at DESC LIMIT 100;

-- name: events
SELECT e.id, e.name, e.created_at, e.trace_id, e.parent_run_id,
       coalesce(
           (SELECT jsonb_agg(jsonb_build_object('id', j.id, 'action', j.action, 'status', j.status,
                                                'attempts', j.attempts) ORDER BY j.id)
            FROM actions_server.jobs j WHERE j.event_id = e.id),
           '[]'::jsonb) AS deliveries
FROM actions_server.events e
ORDER BY e.id DESC
LIMIT %(limit)s;
