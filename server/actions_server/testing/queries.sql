-- The test kit (actions_server.testing): time travel and what a drain ran.
-- Moving the clock on by N seconds moves every stored deadline back by N seconds,
-- which is the same thing as far as the app can tell.

-- name: travel_kv
UPDATE actions_server.kv
SET expires_at = expires_at - make_interval(secs => %(seconds)s)
WHERE expires_at IS NOT NULL;

-- name: travel_jobs
UPDATE actions_server.jobs
SET run_at = run_at - make_interval(secs => %(seconds)s)
WHERE status = 'queued';

-- name: attempts
SELECT id, attempts FROM actions_server.jobs;

-- name: busy
SELECT count(*) AS n FROM actions_server.jobs
WHERE status = 'running' OR (status = 'queued' AND run_at <= now());

-- name: ran
SELECT id, action, kind, status, payload, attempts, last_error
FROM actions_server.jobs
WHERE id = ANY(%(ids)s)
ORDER BY id;

-- name: outbox
SELECT id, sender, recipients, cc, bcc, reply_to, subject, template, text_body, html_body
FROM actions_server.mail_outbox
ORDER BY id;
