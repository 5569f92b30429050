-- The realtime channels' SQL, one named block per statement (loaded once by
-- realtime/store.py). The NOTIFY channel, actions_server_channels, is named here
-- only; its payload is empty: listeners read the rows.

-- name: publish
-- The transaction id is taken (and assigned, if the transaction had none) before
-- any row's id: feed.py relies on it to know when an id it has not seen can no
-- longer appear. Data-modifying CTEs run to completion; one NOTIFY per statement,
-- and PostgreSQL folds a transaction's identical NOTIFYs into one.
WITH tx AS MATERIALIZED (
    SELECT pg_current_xact_id() AS xid
), inserted AS (
    INSERT INTO actions_server.channel_messages (xid, channel, kind, event, payload)
    SELECT tx.xid, m.channel, m.kind, m.event, m.payload
    FROM tx, unnest(%(channel)s::text[], %(kind)s::text[], %(event)s::text[], %(payload)s::json[])
         WITH ORDINALITY AS m(channel, kind, event, payload, position)
    ORDER BY m.position
    RETURNING id
)
SELECT pg_notify('actions_server_channels', '') FROM (SELECT 1 FROM inserted LIMIT 1) AS written;

-- name: listen
LISTEN actions_server_channels;

-- name: latest
SELECT coalesce(max(id), 0) AS id FROM actions_server.channel_messages;

-- name: read
-- New rows and awaited ones, with the snapshot they were read under (one
-- statement, one snapshot): the row with a NULL id carries xmin and xmax.
SELECT NULL::bigint AS id, NULL::text AS channel, NULL::text AS kind, NULL::text AS event,
       NULL::text AS payload, pg_snapshot_xmin(s)::text AS xmin, pg_snapshot_xmax(s)::text AS xmax
FROM pg_current_snapshot() AS s
UNION ALL
(SELECT id, channel, kind, event, payload::text, NULL, NULL
 FROM actions_server.channel_messages
 WHERE id > %(after)s AND (id > %(high)s OR id = ANY(%(awaited)s))
 ORDER BY id
 LIMIT %(limit)s);

-- name: prune
DELETE FROM actions_server.channel_messages
WHERE created_at < now() - make_interval(mins => %s);

-- name: register
INSERT INTO actions_server.channel_instances (id) VALUES (%s)
ON CONFLICT (id) DO UPDATE SET seen_at = now();

-- name: alive
UPDATE actions_server.channel_instances SET seen_at = now() WHERE id = %s RETURNING id;

-- name: forget_instance
DELETE FROM actions_server.channel_instances WHERE id = %s;

-- name: reap
-- Instances gone silent, and every presence of an instance that is not registered
-- (those reaped just now, and any a late write of a reaped instance left behind).
WITH gone AS (
    DELETE FROM actions_server.channel_instances
    WHERE seen_at < now() - make_interval(secs => %s)
    RETURNING id
)
DELETE FROM actions_server.channel_presence AS p
WHERE p.instance IN (SELECT id FROM gone)
   OR NOT EXISTS (SELECT 1 FROM actions_server.channel_instances AS i WHERE i.id = p.instance)
RETURNING p.channel, p.ref, p.key, p.meta;

-- name: track
INSERT INTO actions_server.channel_presence (channel, ref, instance, key, meta)
SELECT * FROM unnest(%(channel)s::text[], %(ref)s::text[], %(instance)s::text[],
                     %(key)s::text[], %(meta)s::jsonb[])
ON CONFLICT (channel, ref) DO NOTHING
RETURNING channel, ref, key, meta;

-- name: untrack
DELETE FROM actions_server.channel_presence AS p
USING unnest(%(channel)s::text[], %(ref)s::text[]) AS u(channel, ref)
WHERE p.channel = u.channel AND p.ref = u.ref
RETURNING p.channel, p.ref, p.key, p.meta;

-- name: presence
SELECT key, meta FROM actions_server.channel_presence WHERE channel = %s ORDER BY key, ref;
