-- The PostgreSQL KV backend (actions_server.kv). An expired row is invisible to
-- every read and replaced by any write; maintenance deletes it later.

-- name: get
SELECT value FROM actions_server.kv
WHERE key = %(key)s AND (expires_at IS NULL OR expires_at > now());

-- name: get_many
SELECT key, value FROM actions_server.kv
WHERE key = ANY(%(keys)s) AND (expires_at IS NULL OR expires_at > now());

-- name: set
INSERT INTO actions_server.kv (key, value, expires_at)
VALUES (%(key)s, %(value)s, now() + make_interval(secs => %(ttl)s))
ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, expires_at = EXCLUDED.expires_at;

-- name: set_many
INSERT INTO actions_server.kv (key, value, expires_at)
SELECT k, v, now() + make_interval(secs => %(ttl)s) FROM unnest(%(keys)s::text[], %(values)s::jsonb[]) AS t(k, v)
ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, expires_at = EXCLUDED.expires_at;

-- name: delete
DELETE FROM actions_server.kv
WHERE key = %(key)s
RETURNING (expires_at IS NULL OR expires_at > now()) AS live;

-- name: incr
-- A value that is not an integer is left alone and the result is NULL: the
-- caller raises, and the run's transaction is not aborted by a failed cast.
INSERT INTO actions_server.kv AS kv (key, value, expires_at)
VALUES (%(key)s, to_jsonb(%(by)s::bigint), now() + make_interval(secs => %(ttl)s))
ON CONFLICT (key) DO UPDATE SET
    value = CASE
        WHEN kv.expires_at IS NOT NULL AND kv.expires_at <= now() THEN EXCLUDED.value
        WHEN jsonb_typeof(kv.value) = 'number' AND (kv.value #>> '{}') ~ '^-?[0-9]{1,18}$'
            THEN to_jsonb((kv.value #>> '{}')::bigint + %(by)s::bigint)
        ELSE kv.value
    END,
    expires_at = CASE
        WHEN kv.expires_at IS NOT NULL AND kv.expires_at <= now() THEN EXCLUDED.expires_at
        ELSE kv.expires_at
    END
RETURNING CASE
    WHEN jsonb_typeof(value) = 'number' AND (value #>> '{}') ~ '^-?[0-9]{1,18}$'
        THEN (value #>> '{}')::bigint
END AS value;

-- name: ttl
SELECT extract(epoch FROM expires_at - now()) AS seconds, expires_at IS NULL AS forever
FROM actions_server.kv
WHERE key = %(key)s AND (expires_at IS NULL OR expires_at > now());

-- name: keys
SELECT key FROM actions_server.kv
WHERE key LIKE %(pattern)s ESCAPE '\' AND (expires_at IS NULL OR expires_at > now())
ORDER BY key
LIMIT %(limit)s;

