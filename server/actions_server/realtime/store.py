"""The realtime channels' SQL: every statement on `actions_server.channel_messages`,
`channel_instances` and `channel_presence` (the statements are in queries.sql).

Each function takes the connection to run on: a publish joins the run's
transaction, the listener reads on its own connection, presence is written on
short transactions beside the runs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from psycopg.types.json import Jsonb

from ..db.pool import Connection
from ..db.sqlfile import load_queries

Q = load_queries(Path(__file__).with_name("queries.sql"))

MESSAGE, PRESENCE = "message", "presence"


@dataclass(frozen=True, slots=True, kw_only=True)
class Outgoing:
    """A message to write: `payload` is JSON text already (encoded once, at publish)."""

    channel: str
    event: str | None
    payload: str
    kind: str = MESSAGE


class Stored(NamedTuple):
    """A message as the listener reads it; `payload` is its JSON text, as written."""

    id: int
    channel: str
    kind: str
    event: str | None
    payload: str


class Batch(NamedTuple):
    """What one read found, and the snapshot it was read under (as integers)."""

    rows: list[Stored]
    xmin: int
    xmax: int


class Presence(NamedTuple):
    channel: str
    ref: str
    key: str
    meta: Mapping[str, Any]


async def publish(conn: Connection, messages: Sequence[Outgoing]) -> None:
    """Write `messages` in one statement, in the transaction `conn` is in."""
    if not messages:
        return
    await conn.execute(
        Q["publish"],
        {
            "channel": [m.channel for m in messages],
            "kind": [m.kind for m in messages],
            "event": [m.event for m in messages],
            "payload": [m.payload for m in messages],
        },
    )


async def listen(conn: Connection) -> None:
    await conn.execute(Q["listen"])


async def latest(conn: Connection) -> int:
    """The highest message id written so far (0 when there is none)."""
    cursor = await conn.execute(Q["latest"])
    row = await cursor.fetchone()
    return int(row["id"]) if row else 0


async def read(conn: Connection, *, high: int, awaited: Sequence[int], limit: int) -> Batch:
    """Messages after `high`, and those of `awaited` that have appeared, in id order."""
    after = min(awaited) - 1 if awaited else high
    cursor = await conn.execute(
        Q["read"], {"after": after, "high": high, "awaited": list(awaited), "limit": limit}
    )
    rows = []
    xmin = xmax = 0
    for row in await cursor.fetchall():
        if row["id"] is None:
            xmin, xmax = int(row["xmin"]), int(row["xmax"])
        else:
            rows.append(
                Stored(row["id"], row["channel"], row["kind"], row["event"], row["payload"])
            )
    return Batch(rows, xmin, xmax)


async def prune(conn: Connection, *, keep_minutes: int) -> int:
    """Delete the messages older than `keep_minutes`; how many went."""
    cursor = await conn.execute(Q["prune"], (keep_minutes,))
    return cursor.rowcount


async def register(conn: Connection, instance: str) -> None:
    await conn.execute(Q["register"], (instance,))


async def alive(conn: Connection, instance: str) -> bool:
    """Say `instance` is alive; False when it had been reaped (it must register again)."""
    cursor = await conn.execute(Q["alive"], (instance,))
    return await cursor.fetchone() is not None


async def forget_instance(conn: Connection, instance: str) -> None:
    await conn.execute(Q["forget_instance"], (instance,))


async def reap(conn: Connection, timeout_seconds: float) -> list[Presence]:
    """Remove instances silent for `timeout_seconds` and every presence of an instance
    that is not registered; the presences removed."""
    cursor = await conn.execute(Q["reap"], (timeout_seconds,))
    return [_presence(row) for row in await cursor.fetchall()]


async def track(conn: Connection, instance: str, entries: Sequence[Presence]) -> list[Presence]:
    """Add presences of `instance`; those that were not there already."""
    if not entries:
        return []
    cursor = await conn.execute(
        Q["track"],
        {
            "channel": [e.channel for e in entries],
            "ref": [e.ref for e in entries],
            "instance": [instance] * len(entries),
            "key": [e.key for e in entries],
            "meta": [Jsonb(dict(e.meta)) for e in entries],
        },
    )
    return [_presence(row) for row in await cursor.fetchall()]


async def untrack(conn: Connection, refs: Sequence[tuple[str, str]]) -> list[Presence]:
    """Remove presences by (channel, ref); those that were there."""
    if not refs:
        return []
    cursor = await conn.execute(
        Q["untrack"], {"channel": [c for c, _ in refs], "ref": [r for _, r in refs]}
    )
    return [_presence(row) for row in await cursor.fetchall()]


async def presence(conn: Connection, channel: str) -> list[tuple[str, Mapping[str, Any]]]:
    """(key, meta) of everyone in `channel`, on every instance."""
    cursor = await conn.execute(Q["presence"], (channel,))
    return [(row["key"], row["meta"]) for row in await cursor.fetchall()]


def _presence(row: Mapping[str, Any]) -> Presence:
    return Presence(row["channel"], row["ref"], row["key"], row["meta"])
