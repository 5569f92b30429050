"""The queue's SQL: every statement on `actions_server.jobs`, `events` and `cron_ticks`.

One module for the table family, as the style guide asks: the worker, the ctx
facades, the scheduler and the CLI call these functions and never write SQL of
their own. Every function takes the connection to run on, so that a push or an
emit can join the run's transaction and a job's completion can commit with its
handler's work.

Statuses: `queued` → `running` → `done`, or back to `queued` for a retry, or
`dead` after the last attempt; `cancelled` by an operator. A running job holds
a lease (`locked_by`, `locked_until`) that the worker's heartbeat extends; an
expired lease means the worker died, and the job goes back to the queue. Each
claim has a token (`claim`): acknowledgements name it, so a run that lost its
lease cannot finish, extend or release a later claim of the same job.
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from ..db.adapters import CheckedJsonb, FrameworkJsonbLoader
from ..db.pool import Connection
from ..db.sqlfile import load_queries

Q = load_queries(Path(__file__).with_name("queries.sql"))
UNFINISHED = ("queued", "running")


class Claim(NamedTuple):
    """One claim of one job: what the worker acknowledges."""

    job_id: int
    token: uuid.UUID


def claim_of(row: Mapping[str, Any]) -> Claim:
    """The claim of a claimed job's row."""
    return Claim(row["id"], row["claim"])


def _claim_params(claims: Sequence[Claim]) -> dict[str, list[Any]]:
    return {"ids": [c.job_id for c in claims], "claims": [c.token for c in claims]}


@dataclass(frozen=True, slots=True, kw_only=True)
class NewJob:
    kind: str  # job, event, cron
    name: str
    action: str
    payload: Any
    max_attempts: int
    priority: int = 0
    delay_seconds: float | None = None
    run_at: datetime.datetime | None = None
    unique_key: str | None = None
    event_id: int | None = None
    trace_id: str | None = None
    parent_run_id: str | None = None
    principal: Mapping[str, Any] = field(default_factory=dict)


async def enqueue(conn: Connection, jobs: Sequence[NewJob]) -> list[int]:
    """Insert `jobs` in one statement; the ids of those inserted.

    A job whose unique key is already held by an unfinished job is not added
    (`existing` finds the holder). The NOTIFY that wakes workers is sent when
    the surrounding transaction commits, once, however many rows went in.
    """
    if not jobs:
        return []
    columns: dict[str, list[Any]] = {
        "kind": [], "name": [], "action": [], "payload": [], "priority": [], "delay": [],
        "run_at": [], "max_attempts": [], "unique_key": [], "event_id": [], "trace_id": [],
        "parent_run_id": [], "principal": [],
    }  # fmt: skip
    for job in jobs:
        columns["kind"].append(job.kind)
        columns["name"].append(job.name)
        columns["action"].append(job.action)
        columns["payload"].append(CheckedJsonb(job.payload))
        columns["priority"].append(job.priority)
        columns["delay"].append(job.delay_seconds)
        columns["run_at"].append(job.run_at)
        columns["max_attempts"].append(job.max_attempts)
        columns["unique_key"].append(job.unique_key)
        columns["event_id"].append(job.event_id)
        columns["trace_id"].append(job.trace_id)
        columns["parent_run_id"].append(job.parent_run_id)
        columns["principal"].append(CheckedJsonb(dict(job.principal)))
    cursor = await conn.execute(Q["enqueue"], columns)
    return [row["id"] for row in await cursor.fetchall()]


async def listen(conn: Connection) -> None:
    """Subscribe `conn` to the queue's channel (the name lives in queries.sql only)."""
    await conn.execute(Q["listen"])


async def existing(conn: Connection, unique_keys: Sequence[str]) -> dict[str, int]:
    """The unfinished jobs holding these unique keys."""
    cursor = await conn.execute(Q["existing"], (list(unique_keys),))
    return {row["unique_key"]: row["id"] for row in await cursor.fetchall()}


async def enqueue_payloads(
    conn: Connection, template: NewJob, payloads: Sequence[Any]
) -> list[int]:
    """Insert one job like `template` per payload, in one statement; their ids, in order.

    For jobs with no unique key (a bulk push): the values they share are sent once.
    """
    cursor = await conn.execute(
        Q["enqueue_payloads"],
        {
            "kind": template.kind,
            "name": template.name,
            "action": template.action,
            "priority": template.priority,
            "run_at": template.run_at,
            "delay": template.delay_seconds,
            "max_attempts": template.max_attempts,
            "trace_id": template.trace_id,
            "parent_run_id": template.parent_run_id,
            "principal": CheckedJsonb(dict(template.principal)),
            "payloads": [CheckedJsonb(payload) for payload in payloads],
        },
    )
    # Ids come from one sequence in insertion order, which follows the payloads'.
    return sorted(row["id"] for row in await cursor.fetchall())


@dataclass(frozen=True, slots=True)
class Subscription:
    """An action that gets a delivery of each event `event`."""

    event: str
    action: str
    max_attempts: int


async def record_events(
    conn: Connection,
    events: Sequence[tuple[str, Any]],
    subscriptions: Sequence[Subscription],
    *,
    trace_id: str | None,
    parent_run_id: str | None,
    principal: Mapping[str, Any],
) -> int:
    """Insert `events` (name, payload) in their order and one delivery per subscription
    to each, in one statement; how many deliveries."""
    cursor = await conn.execute(
        Q["emit"],
        {
            "names": [name for name, _ in events],
            "payloads": [CheckedJsonb(payload) for _, payload in events],
            "events": [s.event for s in subscriptions],
            "actions": [s.action for s in subscriptions],
            "attempts": [s.max_attempts for s in subscriptions],
            "trace_id": trace_id,
            "parent_run_id": parent_run_id,
            "principal": CheckedJsonb(dict(principal)),
        },
    )
    row = await cursor.fetchone()
    return int(row["deliveries"]) if row else 0


# --- the worker's side ----------------------------------------------------------------


async def claim(
    conn: Connection, worker: str, limit: int, lease_seconds: float
) -> list[dict[str, Any]]:
    """Take up to `limit` due jobs, highest priority and oldest first, for `worker`."""
    cursor = conn.cursor()
    cursor.adapters.register_loader("jsonb", FrameworkJsonbLoader)
    await cursor.execute(Q["claim"], {"limit": limit, "worker": worker, "lease": lease_seconds})
    rows = await cursor.fetchall()
    rows.sort(key=claim_order)
    return rows


def claim_order(row: Mapping[str, Any]) -> tuple[int, float, int]:
    """The order jobs start in: highest priority first, then the longest due."""
    return (-row["priority"], row["run_at"].timestamp(), row["id"])


async def complete(conn: Connection, claims: Sequence[Claim]) -> set[int]:
    """Mark jobs done; the ids of those whose claim still held."""
    cursor = await conn.execute(Q["complete"], _claim_params(claims))
    return {row["id"] for row in await cursor.fetchall()}


@dataclass(frozen=True, slots=True, kw_only=True)
class Failure:
    claim: Claim
    dead: bool
    delay_seconds: float
    error: Mapping[str, Any]
    counts: bool = True  # False: not the job's fault, the attempt is given back


async def fail(conn: Connection, failures: Sequence[Failure]) -> None:
    """Send failed jobs back to the queue after their delay, or to `dead`."""
    if not failures:
        return
    await conn.execute(
        Q["fail"],
        {
            **_claim_params([f.claim for f in failures]),
            "dead": [f.dead for f in failures],
            "delay": [f.delay_seconds for f in failures],
            "counts": [f.counts for f in failures],
            "error": [CheckedJsonb(dict(f.error)) for f in failures],
        },
    )


async def heartbeat(
    conn: Connection, claims: Sequence[Claim], lease_seconds: float
) -> dict[int, bool]:
    """Extend the leases of `claims`: the ids still held, each with whether an operator
    asked to cancel it."""
    cursor = await conn.execute(Q["heartbeat"], {**_claim_params(claims), "lease": lease_seconds})
    return {row["id"]: row["cancel_requested"] for row in await cursor.fetchall()}


async def finish_cancelled(conn: Connection, claims: Sequence[Claim]) -> None:
    """Mark jobs whose runs were cancelled on an operator's request."""
    await conn.execute(Q["finish_cancelled"], _claim_params(claims))


async def release(conn: Connection, claims: Sequence[Claim]) -> None:
    """Give jobs this worker will not finish back to the queue (the attempt does not count)."""
    await conn.execute(Q["release"], _claim_params(claims))


async def reap_expired(conn: Connection) -> list[int]:
    """Put back the jobs of workers that died holding them; their ids."""
    cursor = await conn.execute(Q["reap"])
    return [row["id"] for row in await cursor.fetchall()]


async def next_due(conn: Connection) -> datetime.datetime | None:
    cursor = await conn.execute(Q["next_due"])
    row = await cursor.fetchone()
    return row["due"] if row else None


# --- cron -------------------------------------------------------------------------------


async def enqueue_tick(
    conn: Connection,
    action: str,
    fire_time: datetime.datetime,
    *,
    max_attempts: int,
    trace_id: str,
    principal: Mapping[str, Any],
) -> int | None:
    """The job for one cron tick, or None when another instance enqueued it first."""
    params = {
        "action": action,
        "fire_time": fire_time,
        "max_attempts": max_attempts,
        "trace_id": trace_id,
        "principal": CheckedJsonb(dict(principal)),
    }
    cursor = await conn.execute(Q["tick"], params)
    row = await cursor.fetchone()
    return int(row["id"]) if row else None


async def claim_tick(conn: Connection, action: str, fire_time: datetime.datetime) -> bool:
    """Whether this instance is the first to take this tick (for work done in place)."""
    cursor = await conn.execute(Q["claim_tick"], (action, fire_time))
    return await cursor.fetchone() is not None


async def record_misfire(conn: Connection, action: str, fire_time: datetime.datetime) -> bool:
    """Record a tick this instance missed, unless another instance ran it; whether
    it was missed (by every instance so far)."""
    cursor = await conn.execute(Q["misfire"], {"action": action, "fire_time": fire_time})
    return await cursor.fetchone() is not None


# --- operators ---------------------------------------------------------------------------


async def list_jobs(conn: Connection, status: str | None, limit: int = 50) -> list[dict[str, Any]]:
    cursor = await conn.execute(Q["list"], {"status": status, "limit": limit})
    return await cursor.fetchall()


@dataclass(frozen=True, slots=True)
class Retried:
    queued: list[int]
    held: dict[int, int]  # job id → the unfinished job holding its unique key


async def retry(conn: Connection, job_id: int | None) -> Retried:
    """Queue a dead or cancelled job again (every dead one when `job_id` is None).

    A job whose unique key is held by an unfinished job stays put and is
    reported in `held`: queueing it would break the key's promise.
    """
    async with conn.transaction():
        cursor = await conn.execute(Q["retry"], {"id": job_id})
        queued = sorted(row["id"] for row in await cursor.fetchall())
        cursor = await conn.execute(Q["held"], {"id": job_id})
        held = {row["id"]: row["holder"] for row in await cursor.fetchall()}
        if queued:
            await conn.execute(Q["notify"], ("",))
    return Retried(queued, held)


CANCEL_PREFIX = "cancel:"  # a NOTIFY payload on the queue's channel: a running job to stop


async def cancel(conn: Connection, job_id: int) -> str | None:
    """Cancel a job: `cancelled` (it was waiting or dead), `requested` (it is running:
    its worker stops it at the handler's next await), or None (finished, or no such job)."""
    cursor = await conn.execute(Q["cancel"], {"id": job_id})
    row = await cursor.fetchone()
    return str(row["outcome"]) if row else None


async def count_by_state(conn: Connection) -> dict[str, int]:
    """How many jobs are queued, running and dead (each count uses a partial index)."""
    cursor = await conn.execute(Q["count_by_state"])
    row = await cursor.fetchone()
    return {k: int(v) for k, v in (row or {}).items()}


async def status_of(conn: Connection, job_id: int) -> str | None:
    cursor = await conn.execute("SELECT status FROM actions_server.jobs WHERE id = %s", (job_id,))
    row = await cursor.fetchone()
    return str(row["status"]) if row else None


async def prune(conn: Connection, *, keep_days: int, keep_dead_days: int) -> dict[str, int]:
    """Delete what is past its retention; how many rows of each kind went."""
    # A tick must outlive any job it could have created, or it could run again.
    keep_ticks = max(keep_days, keep_dead_days) * 2
    cursor = await conn.execute(
        Q["prune"], {"keep": keep_days, "keep_dead": keep_dead_days, "keep_ticks": keep_ticks}
    )
    row = await cursor.fetchone()
    return {k: int(v) for k, v in (row or {}).items()}
