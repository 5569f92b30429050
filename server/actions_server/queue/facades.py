"""`ctx.queue` and `ctx.event`: jobs and events written with the run's transaction.

`push` inserts at once, in the run's transaction, and returns the job id.
`emit` is a plain call, so a forgotten `await` cannot drop an event: it is
buffered and written, with one delivery per subscribed action, just before the
run commits (awaiting its result works too and changes nothing). Either way a
rolled-back run leaves no job and no event behind, and a committed one loses
none. Each job and delivery carries the run's trace id, its run id as parent,
and its principal, under which the action it reaches will run.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Generator, Mapping
from typing import TYPE_CHECKING, Any

from .. import metrics
from ..errors import ActionsServerError
from ..jsonutil import dumps
from ..registry import Registry
from . import store

if TYPE_CHECKING:
    from ..scope import RunScope

JOB_PREFIX = "job."
UNIQUE_RACE_TRIES = 3


class QueueError(ActionsServerError):
    """A push or an emit that cannot be done as asked: a bug in the calling handler."""


class Emitted:
    """What `ctx.event.emit` returns: awaiting it completes at once."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __await__(self) -> Generator[None, None, None]:
        return
        yield  # a generator that finishes at once: `await emitted` is harmless

    def __repr__(self) -> str:
        return f"<Emitted {self.name!r}>"


class EventBuffer:
    """The events a run emitted, written just before it commits."""

    __slots__ = ("_events",)

    def __init__(self) -> None:
        self._events: list[tuple[str, Any]] = []

    def add(self, name: str, payload: Any) -> None:
        self._events.append((name, payload))

    def __bool__(self) -> bool:
        return bool(self._events)

    def mark(self) -> Callable[[], None]:
        """A function that forgets what is emitted from now on (a savepoint rolled back)."""
        size = len(self._events)

        def rewind() -> None:
            del self._events[size:]

        return rewind

    async def flush(self, ctx: RunScope, registry: Registry) -> None:
        events, self._events = self._events, []
        if not events:
            return
        conn = await ctx.db.connection()
        principal = ctx.auth.as_principal().to_json()
        for name, payload in events:
            event_id = await store.record_event(
                conn,
                name,
                payload,
                trace_id=ctx.run.trace_id,
                parent_run_id=ctx.run.id,
                principal=principal,
            )
            deliveries = [
                store.NewJob(
                    kind="event",
                    name=name,
                    action=action.name,
                    payload=payload,
                    max_attempts=action.retry.attempts,
                    event_id=event_id,
                    trace_id=ctx.run.trace_id,
                    parent_run_id=ctx.run.id,
                    principal=principal,
                )
                for action in registry.subscriptions.get(name, ())
            ]
            await store.enqueue(conn, deliveries)
            if deliveries:
                metrics.count_event_deliveries(name, len(deliveries))


class Events:
    """`ctx.event`."""

    __slots__ = ("_buffer",)

    def __init__(self, buffer: EventBuffer) -> None:
        self._buffer = buffer

    def emit(self, name: str, payload: Any = None) -> Emitted:
        """Record event `name`; every action subscribed with `event: name` gets it once."""
        if not isinstance(name, str) or not name:
            raise QueueError("an event needs a name")
        if name.startswith(JOB_PREFIX):
            raise QueueError(f"{name!r}: names starting with 'job.' are jobs; use ctx.queue.push")
        payload = {} if payload is None else payload
        _check_json(name, payload)
        self._buffer.add(name, payload)
        return Emitted(name)


class Queue:
    """`ctx.queue`."""

    __slots__ = ("_ctx", "_registry")

    def __init__(self, ctx: RunScope, registry: Registry) -> None:
        self._ctx = ctx
        self._registry = registry

    async def push(
        self,
        name: str,
        payload: Any = None,
        *,
        delay: float | datetime.timedelta | None = None,
        run_at: datetime.datetime | None = None,
        priority: int = 0,
        max_attempts: int | None = None,
        unique_key: str | None = None,
    ) -> int:
        """Queue job `name` for the actions triggered by `event: job.<name>`; its id.

        With several such actions, one job per action is queued and the first id
        is returned. With `unique_key`, a job is not queued while an unfinished
        one holds the key: the id is that job's.
        """
        actions = self._registry.subscriptions.get(JOB_PREFIX + name, ())
        if not actions:
            raise QueueError(
                f"no action handles job {name!r}: give one the trigger `event: job.{name}`"
            )
        if delay is not None and run_at is not None:
            raise QueueError("push() takes delay or run_at, not both")
        if run_at is not None and run_at.tzinfo is None:
            raise QueueError("run_at must be timezone-aware (e.g. datetime.now(timezone.utc))")
        if max_attempts is not None and max_attempts < 1:
            raise QueueError("max_attempts must be at least 1")
        seconds = delay.total_seconds() if isinstance(delay, datetime.timedelta) else delay
        payload = {} if payload is None else payload
        _check_json(name, payload)
        ctx = self._ctx
        principal = ctx.auth.as_principal().to_json()
        jobs = [
            store.NewJob(
                kind="job",
                name=name,
                action=action.name,
                payload=payload,
                max_attempts=max_attempts or action.retry.attempts,
                priority=priority,
                delay_seconds=seconds,
                run_at=run_at,
                unique_key=unique_key
                if len(actions) == 1
                else _per_action(unique_key, action.name),
                trace_id=ctx.run.trace_id,
                parent_run_id=ctx.run.id,
                principal=principal,
            )
            for action in actions
        ]
        conn = await ctx.db.connection()
        keys = [j.unique_key for j in jobs if j.unique_key]
        for _ in range(UNIQUE_RACE_TRIES):
            ids = await store.enqueue(conn, jobs)
            if ids:
                return ids[0]
            held = await store.existing(conn, keys)
            if held:
                return min(held.values())
            # The holder finished between the insert and the lookup: the key is free now.
        raise QueueError(f"{name!r}: unique_key {unique_key!r} is contended; try again")


def _per_action(unique_key: str | None, action: str) -> str | None:
    return None if unique_key is None else f"{unique_key}|{action}"


def _check_json(name: str, payload: Any) -> None:
    if not isinstance(payload, Mapping):
        raise QueueError(
            f"{name!r}: the payload must be a JSON object (a dict), not {type(payload).__name__}"
        )
    try:
        dumps(payload)
    except TypeError as exc:
        raise QueueError(f"{name!r}: the payload is not JSON: {exc}") from None
