-- The queue's SQL, one named block per statement (loaded once by queue/store.py).
-- Parameters are psycopg placeholders; identifiers are fixed. The queue's NOTIFY
-- channel, actions_server_jobs, is named here only: new work (an empty payload)
-- and cancels (`cancel:<id>`).

-- name: enqueue
WITH new AS (
    SELECT * FROM unnest(
        %(kind)s::text[], %(name)s::text[], %(action)s::text[], %(payload)b::jsonb[],
        %(priority)s::smallint[], %(delay)s::float8[], %(run_at)s::timestamptz[],
        %(max_attempts)s::int[], %(unique_key)s::text[], %(event_id)s::bigint[],
        %(trace_id)s::text[], %(parent_run_id)s::text[], %(principal)b::jsonb[]
    ) WITH ORDINALITY AS n(kind, name, action, payload, priority, delay, run_at, max_attempts,
                           unique_key, event_id, trace_id, parent_run_id, principal, position)
), inserted AS (
    INSERT INTO actions_server.jobs AS j (kind, name, action, payload, priority, run_at,
        max_attempts, unique_key, event_id, trace_id, parent_run_id, principal)
    SELECT kind, name, action, payload, priority,
           coalesce(run_at, now() + make_interval(secs => coalesce(delay, 0))),
           max_attempts, unique_key, event_id, trace_id, parent_run_id, principal
    FROM new ORDER BY position
    ON CONFLICT (unique_key) WHERE unique_key IS NOT NULL AND status IN ('queued', 'running')
    DO NOTHING
    RETURNING j.id, j.unique_key
)
-- An uncorrelated sub-select runs once (an InitPlan): one NOTIFY however many rows.
SELECT id, unique_key, (SELECT pg_notify('actions_server_jobs', '')) FROM inserted;

-- name: enqueue_payloads
-- Many jobs alike but for their payload (push_many): the shared values go once.
WITH inserted AS (
    INSERT INTO actions_server.jobs AS j (kind, name, action, payload, priority, run_at,
        max_attempts, trace_id, parent_run_id, principal)
    SELECT %(kind)s, %(name)s, %(action)s, payload, %(priority)s,
           coalesce(%(run_at)s::timestamptz,
                    now() + make_interval(secs => coalesce(%(delay)s::float8, 0))),
           %(max_attempts)s, %(trace_id)s, %(parent_run_id)s, %(principal)s
    FROM unnest(%(payloads)b::jsonb[]) WITH ORDINALITY AS n(payload, position)
    ORDER BY position
    RETURNING j.id
)
SELECT id, (SELECT pg_notify('actions_server_jobs', '')) FROM inserted;

-- name: listen
LISTEN actions_server_jobs;

-- name: notify
SELECT pg_notify('actions_server_jobs', %s);

-- name: existing
SELECT id, unique_key FROM actions_server.jobs
WHERE unique_key = ANY(%s) AND status IN ('queued', 'running');

-- name: emit
-- Events and their deliveries (one per subscribed action) in one statement.
WITH recorded AS (
    INSERT INTO actions_server.events AS e (name, payload, trace_id, parent_run_id, principal)
    SELECT name, payload, %(trace_id)s, %(parent_run_id)s, %(principal)s
    FROM unnest(%(names)s::text[], %(payloads)b::jsonb[])
        WITH ORDINALITY AS n(name, payload, position)
    ORDER BY position
    RETURNING e.id, e.name, e.payload
), delivered AS (
    INSERT INTO actions_server.jobs (kind, name, action, payload, max_attempts, event_id,
        trace_id, parent_run_id, principal)
    SELECT 'event', r.name, s.action, r.payload, s.max_attempts, r.id,
           %(trace_id)s, %(parent_run_id)s, %(principal)s
    FROM recorded r
    JOIN unnest(%(events)s::text[], %(actions)s::text[], %(attempts)s::int[])
        WITH ORDINALITY AS s(event, action, max_attempts, position) ON s.event = r.name
    ORDER BY r.id, s.position
    RETURNING 1
)
SELECT (SELECT count(*) FROM recorded) AS events, count(*) AS deliveries,
       (SELECT pg_notify('actions_server_jobs', '') WHERE EXISTS (SELECT FROM delivered))
FROM delivered;

-- name: claim
-- The claim commits without waiting for its WAL flush (synchronous_commit off for
-- this statement's transaction, set by a one-time filter): a claim lost in a
-- PostgreSQL crash puts the job back in the queue, which at-least-once delivery
-- allows; the job's own completion commits synchronously, flushing the claim too.
-- The ids are taken as an array (an InitPlan), not joined from a CTE: for a claim of
-- more than a few dozen jobs the planner joined the CTE to a sequential scan of the
-- whole table, so that a claim's cost grew with the table (4 ms for 130 jobs among
-- 20,000 rows, against 1.4 ms by primary key).
UPDATE actions_server.jobs AS j
SET status = 'running', attempts = j.attempts + 1, locked_by = %(worker)s,
    locked_until = now() + make_interval(secs => %(lease)s), started_at = now(),
    claim = gen_random_uuid()
WHERE j.id = ANY(ARRAY(
    SELECT id FROM actions_server.jobs
    WHERE status = 'queued' AND run_at <= now()
      AND (SELECT set_config('synchronous_commit', 'off', true)) = 'off'
    ORDER BY priority DESC, run_at, id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
))
RETURNING j.id, j.claim, j.kind, j.action, j.payload, j.priority, j.run_at, j.attempts,
          j.max_attempts, j.trace_id, j.parent_run_id, j.principal;

-- name: complete
-- clock_timestamp(): a run completes its job in its own transaction, just before the
-- COMMIT; now() would say when that transaction began.
UPDATE actions_server.jobs
SET status = 'done', finished_at = clock_timestamp(), locked_by = NULL, locked_until = NULL
WHERE id = ANY(%(ids)s) AND claim = ANY(%(claims)s) AND status = 'running'
RETURNING id;

-- name: fail
-- A failure that was not the job's fault (`counts` false) gives the attempt back.
UPDATE actions_server.jobs AS j
SET status = CASE WHEN f.dead THEN 'dead' ELSE 'queued' END,
    attempts = CASE WHEN f.counts THEN j.attempts ELSE j.attempts - 1 END,
    run_at = CASE WHEN f.dead THEN j.run_at ELSE now() + make_interval(secs => f.delay) END,
    last_error = f.error,
    finished_at = CASE WHEN f.dead THEN now() END,
    locked_by = NULL, locked_until = NULL
FROM unnest(%(ids)s::bigint[], %(claims)s::uuid[], %(dead)s::bool[], %(delay)s::float8[],
            %(counts)s::bool[], %(error)b::jsonb[])
     AS f(id, claim, dead, delay, counts, error)
WHERE j.id = f.id AND j.claim = f.claim AND j.status = 'running';

-- name: heartbeat
-- Extends the leases; returns the jobs an operator asked to cancel meanwhile.
UPDATE actions_server.jobs SET locked_until = now() + make_interval(secs => %(lease)s)
WHERE id = ANY(%(ids)s) AND claim = ANY(%(claims)s) AND status = 'running'
RETURNING id, cancel_requested;

-- name: finish_cancelled
UPDATE actions_server.jobs
SET status = 'cancelled', finished_at = now(), locked_by = NULL, locked_until = NULL,
    last_error = jsonb_build_object('code', 'cancelled', 'message',
                                    'cancelled by an operator while it ran')
WHERE id = ANY(%(ids)s) AND claim = ANY(%(claims)s) AND status = 'running';

-- name: release
-- Told on the queue's channel, once, so that an idle worker takes them at once.
WITH released AS (
    UPDATE actions_server.jobs
    SET status = 'queued', attempts = attempts - 1, locked_by = NULL, locked_until = NULL,
        run_at = now()
    WHERE id = ANY(%(ids)s) AND claim = ANY(%(claims)s) AND status = 'running'
    RETURNING id
)
SELECT pg_notify('actions_server_jobs', '') WHERE EXISTS (SELECT FROM released);

-- name: reap
WITH expired AS (
    SELECT id FROM actions_server.jobs
    WHERE status = 'running' AND locked_until < now()
    FOR UPDATE SKIP LOCKED
)
UPDATE actions_server.jobs AS j
SET status = CASE WHEN j.cancel_requested THEN 'cancelled'
                  WHEN j.attempts >= j.max_attempts THEN 'dead' ELSE 'queued' END,
    finished_at = CASE WHEN j.cancel_requested OR j.attempts >= j.max_attempts THEN now() END,
    last_error = jsonb_build_object(
        'code', 'lease_expired',
        'message', 'the worker running it stopped before it finished (lease of ' || j.locked_by || ')'),
    locked_by = NULL, locked_until = NULL
FROM expired WHERE j.id = expired.id
RETURNING j.id;

-- name: tick
WITH tick AS (
    INSERT INTO actions_server.cron_ticks (action, fire_time) VALUES (%(action)s, %(fire_time)s)
    ON CONFLICT DO NOTHING
    RETURNING action
), job AS (
    INSERT INTO actions_server.jobs (kind, name, action, payload, max_attempts, run_at, trace_id,
                                     principal)
    SELECT 'cron', %(action)s, %(action)s, '{}'::jsonb, %(max_attempts)s, %(fire_time)s,
           %(trace_id)s, %(principal)s
    FROM tick
    RETURNING id
)
SELECT id, pg_notify('actions_server_jobs', '') FROM job;

-- name: misfire
-- A tick that another instance took in time (its row in cron_ticks) was not missed.
INSERT INTO actions_server.cron_misfires (action, fire_time)
SELECT %(action)s, %(fire_time)s
WHERE NOT EXISTS (
    SELECT 1 FROM actions_server.cron_ticks
    WHERE action = %(action)s AND fire_time = %(fire_time)s
)
ON CONFLICT DO NOTHING
RETURNING action;

-- name: list
SELECT id, kind, name, action, status, priority, attempts, max_attempts, run_at, created_at,
       finished_at, last_error, unique_key
FROM actions_server.jobs
WHERE (%(status)s::text IS NULL OR status = %(status)s)
ORDER BY id DESC LIMIT %(limit)s;

-- name: retry
-- One job (`id`) or every dead one (`id` NULL). A job whose unique key an
-- unfinished job holds stays where it is (`held` reports it), and of several dead
-- jobs sharing a key only the newest goes back.
WITH candidates AS (
    SELECT id, unique_key,
           row_number() OVER (PARTITION BY unique_key ORDER BY id DESC) AS newest
    FROM actions_server.jobs
    WHERE CASE WHEN %(id)s::bigint IS NULL THEN status = 'dead'
               ELSE id = %(id)s AND status IN ('dead', 'cancelled') END
), chosen AS (
    SELECT c.id FROM candidates c
    WHERE c.unique_key IS NULL
       OR (c.newest = 1 AND NOT EXISTS (
               SELECT 1 FROM actions_server.jobs o
               WHERE o.unique_key = c.unique_key AND o.status IN ('queued', 'running')))
)
UPDATE actions_server.jobs AS j
SET status = 'queued', attempts = 0, run_at = now(), finished_at = NULL
FROM chosen WHERE j.id = chosen.id
RETURNING j.id;

-- name: held
SELECT d.id, o.id AS holder
FROM actions_server.jobs d
JOIN actions_server.jobs o ON o.unique_key = d.unique_key AND o.status IN ('queued', 'running')
WHERE CASE WHEN %(id)s::bigint IS NULL THEN d.status = 'dead'
           ELSE d.id = %(id)s AND d.status IN ('dead', 'cancelled') END
ORDER BY d.id;

-- name: cancel
-- A job waiting (or dead) is cancelled at once; a running one is asked to stop, and
-- the workers are told on the queue's channel (`cancel:<id>`).
WITH stopped AS (
    UPDATE actions_server.jobs SET status = 'cancelled', finished_at = now()
    WHERE id = %(id)s AND status IN ('queued', 'dead')
    RETURNING id, 'cancelled' AS outcome
), asked AS (
    UPDATE actions_server.jobs SET cancel_requested = true
    WHERE id = %(id)s AND status = 'running'
    RETURNING id, 'requested' AS outcome
)
SELECT id, outcome FROM stopped
UNION ALL
SELECT id, outcome FROM asked WHERE pg_notify('actions_server_jobs', 'cancel:' || id) IS NOT NULL;

-- name: prune
WITH done AS (
    DELETE FROM actions_server.jobs
    WHERE (status IN ('done', 'cancelled') AND finished_at < now() - make_interval(days => %(keep)s))
       OR (status = 'dead' AND finished_at < now() - make_interval(days => %(keep_dead)s))
    RETURNING 1
), events AS (
    DELETE FROM actions_server.events WHERE created_at < now() - make_interval(days => %(keep)s)
    RETURNING 1
), ticks AS (
    DELETE FROM actions_server.cron_ticks WHERE fire_time < now() - make_interval(days => %(keep_ticks)s)
    RETURNING 1
), misfires AS (
    DELETE FROM actions_server.cron_misfires WHERE noticed_at < now() - make_interval(days => %(keep)s)
    RETURNING 1
), kv AS (
    DELETE FROM actions_server.kv WHERE expires_at <= now()
    RETURNING 1
)
SELECT (SELECT count(*) FROM done) AS jobs, (SELECT count(*) FROM events) AS events,
       (SELECT count(*) FROM ticks) AS ticks, (SELECT count(*) FROM misfires) AS misfires,
       (SELECT count(*) FROM kv) AS expired_kv;

-- name: next_due
SELECT min(run_at) AS due FROM actions_server.jobs WHERE status = 'queued';

-- name: claim_tick
INSERT INTO actions_server.cron_ticks (action, fire_time) VALUES (%s, %s)
ON CONFLICT DO NOTHING
RETURNING action;

-- name: count_by_state
SELECT (SELECT count(*) FROM actions_server.jobs WHERE status = 'queued') AS queued,
       (SELECT count(*) FROM actions_server.jobs WHERE status = 'running') AS running,
       (SELECT count(*) FROM actions_server.jobs WHERE status = 'dead') AS dead;
